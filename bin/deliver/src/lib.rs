//! mxa-deliver: the MDA of mxa. It reads one message on stdin and files it
//! into a Maildir (or the targets of a `.forward`), for mxa-queue, for
//! Postfix (`mailbox_command`, a `pipe(8)` transport) and for shells.
//!
//! Modules: [`args`] (flags), [`headers`] (Return-Path, Delivered-To, loop
//! detection), [`target`] (finding the mailbox), [`privs`] (becoming the
//! mailbox owner), [`filter`] (spam classifiers), [`forward`] (`.forward`),
//! [`command`] (running outside commands). The files themselves are written
//! by the mxa-maildir crate, through mxa-durable.

pub mod args;
pub mod command;
pub mod filter;
pub mod forward;
pub mod headers;
pub mod privs;
pub mod target;

mod deliver;

pub use deliver::{Env, run};
pub use mxa_cli::exit;

/// A failure with its sysexits code: one line on stderr, which Postfix puts
/// into its log or the bounce.
#[derive(Debug)]
pub struct Failure {
    /// sysexits code.
    pub code: i32,
    /// The reason.
    pub msg: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: i32, msg: impl Into<String>) -> Failure {
        Failure {
            code,
            msg: msg.into(),
        }
    }
}

impl From<mxa_config::ConfigError> for Failure {
    fn from(e: mxa_config::ConfigError) -> Failure {
        Failure::new(exit::CONFIG, e.to_string())
    }
}

impl From<mxa_maildir::Error> for Failure {
    /// Disk full, I/O errors, lock timeouts and permission problems defer
    /// (an unwritable Maildir is fixed by its administrator, and the mail
    /// waits); a symlink where a folder should be is refused for good.
    fn from(e: mxa_maildir::Error) -> Failure {
        let code = match &e {
            mxa_maildir::Error::Symlink(_) => exit::CANTCREAT,
            mxa_maildir::Error::BadFolder(_) => exit::DATAERR,
            _ if e.is_temporary() || e.is_permission() => exit::TEMPFAIL,
            _ => exit::CANTCREAT,
        };
        Failure::new(code, e.to_string())
    }
}
