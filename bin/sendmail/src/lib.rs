//! mxa-sendmail: the sendmail(8) interface of mxa, and mxa-postdrop, the
//! setgid helper through which an ordinary user hands a message to a spool
//! they may not write (as Postfix's postdrop does).
//!
//! Modules: [`args`] (the flags), [`message`] (reading stdin, recipients
//! from the header, the fields sendmail adds), [`handoff`] (the small format
//! between mxa-sendmail and mxa-postdrop) and [`inject`] (the one function
//! that writes a local submission into the spool, adding the `Received:`
//! line that names the submitting uid).

pub mod args;
pub mod handoff;
pub mod inject;
pub mod message;

pub use mxa_cli::exit;

/// An error with its exit status, printed once by `main`.
#[derive(Debug)]
pub struct Failure {
    /// sysexits code.
    pub code: i32,
    /// What went wrong, for stderr.
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

impl From<mxa_spool::Error> for Failure {
    fn from(e: mxa_spool::Error) -> Failure {
        let code = if e.is_permission() {
            exit::CANTCREAT
        } else if e.is_temporary() {
            exit::TEMPFAIL
        } else {
            exit::SOFTWARE
        };
        Failure::new(code, e.to_string())
    }
}

impl From<mxa_config::ConfigError> for Failure {
    fn from(e: mxa_config::ConfigError) -> Failure {
        Failure::new(exit::CONFIG, e.to_string())
    }
}
