//! mxa-pop3: the POP3 server of mxa-pop3d as a state machine with no I/O,
//! and the Maildir maildrop it serves.
//!
//! Main types: [`Session`] (client bytes and the outcomes of what it asked
//! for in, [`Action`]s out; see its module for the loop), its policy in
//! [`Config`], every reply in [`codes`] as a typed [`Reply`], and
//! [`maildrop::Maildrop`] (the one module here that does file I/O: the
//! session lock, `new/` to `cur/`, the snapshot of `cur/`, reading and
//! removing messages), whose errors are [`maildrop::Error`].
//! [`wire::encode`] turns a message file into its RETR or TOP form (CRLF
//! line ends, dot-stuffed, terminated).
//!
//! Standards: RFC 1939 (POP3), RFC 2449 (CAPA, response codes), RFC 2595
//! (STLS), RFC 5034 and RFC 4616 (AUTH PLAIN), RFC 3206 (`[AUTH]`,
//! `[SYS/TEMP]`), RFC 4648 (base64); the Maildir layout of
//! <https://cr.yp.to/proto/maildir.html> with Dovecot's `,S=`/`,W=` sizes.

pub mod codes;
pub mod maildrop;
mod session;
mod verbs;
pub mod wire;

pub use codes::Reply;
pub use session::{
    Action, Config, IDLE_TIMEOUT, MAX_AUTH_FAILURES, MAX_ERRORS, MAX_LINE, Message, OpenError,
    Secret, Session,
};
