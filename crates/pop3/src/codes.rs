//! Every reply the server sends, as named constants: `+OK` or `-ERR`, an
//! RFC 2449 §8 response code where one applies (`[AUTH]` and `[SYS/TEMP]`
//! of RFC 3206, `[IN-USE]` of RFC 2449 §8.1.2), and the text.

use std::fmt;

/// The status indicator of a reply (RFC 1939 §3), or the continuation of
/// a SASL exchange (RFC 5034 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `+OK`.
    Ok,
    /// `-ERR`.
    Err,
    /// `+ `, a server challenge (always empty for PLAIN).
    Continue,
}

/// A reply: the status line, and for multi-line replies the body lines,
/// already in wire form (CRLF, dot-stuffed, ending with `.` CRLF).
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    /// `+OK`, `-ERR` or `+ `.
    pub status: Status,
    /// The text after the status, response code included.
    pub text: String,
    /// The lines of a multi-line reply, in wire form.
    pub body: Option<Vec<u8>>,
}

impl Reply {
    /// Appends the reply, as sent, to `out`.
    pub fn to_wire(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.status {
            Status::Ok => b"+OK",
            Status::Err => b"-ERR",
            Status::Continue => b"+ ",
        });
        if !self.text.is_empty() {
            out.push(b' ');
            out.extend_from_slice(self.text.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if let Some(body) = &self.body {
            out.extend_from_slice(body);
        }
    }

    /// True for `+OK`.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// The continuation `+ ` (an empty SASL challenge).
    pub fn continuation() -> Reply {
        Reply {
            status: Status::Continue,
            text: String::new(),
            body: None,
        }
    }

    /// The status line without its CRLF (for logs and tests).
    pub fn status_line(&self) -> String {
        let mut v = Vec::new();
        Reply {
            body: None,
            ..self.clone()
        }
        .to_wire(&mut v);
        v.truncate(v.len() - 2);
        String::from_utf8_lossy(&v).into_owned()
    }

    /// This reply with a multi-line body made of `lines` (each without its
    /// line end; dot-stuffed here).
    pub fn with_lines<S: AsRef<[u8]>>(mut self, lines: impl IntoIterator<Item = S>) -> Reply {
        let mut body = Vec::new();
        for l in lines {
            let l = l.as_ref();
            if l.first() == Some(&b'.') {
                body.push(b'.');
            }
            body.extend_from_slice(l);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b".\r\n");
        self.body = Some(body);
        self
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A message body would drown the rest; its size says enough.
        match &self.body {
            Some(b) => write!(f, "Reply({:?} + {} octets)", self.status_line(), b.len()),
            None => write!(f, "Reply({:?})", self.status_line()),
        }
    }
}

/// A reply template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// `+OK` or `-ERR`.
    pub ok: bool,
    /// The text, response code first where there is one.
    pub text: &'static str,
}

impl Code {
    const fn ok(text: &'static str) -> Code {
        Code { ok: true, text }
    }

    const fn err(text: &'static str) -> Code {
        Code { ok: false, text }
    }

    /// The reply as is.
    pub fn reply(self) -> Reply {
        Reply {
            status: if self.ok { Status::Ok } else { Status::Err },
            text: self.text.to_string(),
            body: None,
        }
    }

    /// The reply with a detail appended: `-ERR Syntax error: LIST [msg]`.
    pub fn with(self, detail: impl fmt::Display) -> Reply {
        Reply {
            status: if self.ok { Status::Ok } else { Status::Err },
            text: format!("{}: {detail}", self.text),
            body: None,
        }
    }

    /// The reply with words after it: `+OK 2 320`.
    pub fn and(self, words: impl fmt::Display) -> Reply {
        let text = if self.text.is_empty() {
            words.to_string()
        } else {
            format!("{} {words}", self.text)
        };
        Reply {
            status: if self.ok { Status::Ok } else { Status::Err },
            text,
            body: None,
        }
    }
}

// Session.
/// A plain success (NOOP, USER, RSET lead-in, a multi-line reply's start).
pub const OK: Code = Code::ok("");
/// QUIT in the AUTHORIZATION state, or in TRANSACTION with nothing to remove.
pub const BYE: Code = Code::ok("mxa POP3 server signing off");
/// QUIT in TRANSACTION: the deleted messages are gone (count follows).
pub const BYE_DELETED: Code = Code::ok("mxa POP3 server signing off, messages deleted:");
/// QUIT in TRANSACTION when some deleted message could not be removed
/// (RFC 1939 §6: the server answers -ERR).
pub const UPDATE_FAILED: Code = Code::err("[SYS/TEMP] Some deleted messages not removed");
/// CAPA's lead-in (RFC 2449 §5).
pub const CAPA: Code = Code::ok("Capability list follows");
/// Too many errors in one session: the client is dropped.
pub const TOO_MANY_ERRORS: Code = Code::err("Too many errors, closing connection");
/// The server is stopping (SIGTERM) while the client was idle.
pub const SHUTDOWN: Code = Code::err("[SYS/TEMP] Server shutting down");
/// No command within the idle timeout (RFC 1939 §3: the autologout timer).
pub const TIMEOUT: Code = Code::err("Idle for too long, closing connection");

// Syntax and state.
/// An unknown verb.
pub const UNKNOWN_COMMAND: Code = Code::err("Unknown command");
/// A known verb in a state where it is not valid (RFC 1939 §3).
pub const BAD_STATE: Code = Code::err("Command not valid in this state");
/// A line over the limit (RFC 2449 §4).
pub const LINE_TOO_LONG: Code = Code::err("Line too long");
/// Arguments that do not parse.
pub const SYNTAX: Code = Code::err("Syntax error");
/// APOP: we keep no plaintext passwords to compute its digest with.
pub const NO_APOP: Code = Code::err("APOP not supported, use USER/PASS or AUTH PLAIN");

// Authorization.
/// USER accepted (whether or not the account exists, RFC 1939 §13).
pub const SEND_PASS: Code = Code::ok("Send your password");
/// PASS without USER.
pub const USER_FIRST: Code = Code::err("Send USER first");
/// USER, PASS or AUTH before TLS from a client off this machine (RFC 2595
/// §3.4, as Dovecot answers it).
pub const TLS_FIRST: Code =
    Code::err("[AUTH] Plaintext authentication disallowed on non-secure connections, use STLS");
/// Credentials refused; the same reply whatever was wrong (RFC 3206 §4).
pub const AUTH_FAILED: Code = Code::err("[AUTH] Authentication failed");
/// Too many refused credentials in one session.
pub const AUTH_TOO_MANY: Code = Code::err("[AUTH] Too many authentication failures");
/// A mechanism other than PLAIN.
pub const AUTH_MECHANISM: Code = Code::err("Unrecognized authentication mechanism");
/// The client answered `*` (RFC 5034 §4).
pub const AUTH_CANCELLED: Code = Code::err("Authentication cancelled");
/// A response that is not base64, or not a PLAIN message.
pub const AUTH_MALFORMED: Code = Code::err("Cannot decode the authentication response");
/// AUTH without a mechanism: the list of mechanisms follows.
pub const AUTH_LIST: Code = Code::ok("Mechanisms follow");
/// Logged in; the maildrop's size follows (RFC 1939 §7, PASS).
pub const LOGGED_IN: Code = Code::ok("Logged in, maildrop has");
/// Another session holds the maildrop (RFC 2449 §8.1.2).
pub const IN_USE: Code = Code::err("[IN-USE] Mailbox is in use by another POP3 session");
/// The maildrop could not be opened (RFC 3206 §4).
pub const OPEN_FAILED: Code = Code::err("[SYS/TEMP] Cannot open the mailbox now, try later");

// TLS (RFC 2595).
/// STLS accepted.
pub const BEGIN_TLS: Code = Code::ok("Begin TLS negotiation");
/// STLS when TLS is on already, or not available.
pub const NO_TLS: Code = Code::err("STLS not available");

// Transaction.
/// A message number that does not name a message, or one marked deleted.
pub const NO_SUCH_MESSAGE: Code = Code::err("No such message");
/// DELE accepted.
pub const DELETED: Code = Code::ok("Message deleted");
/// RSET: the marks are gone; the maildrop's size follows.
pub const RESET: Code = Code::ok("Maildrop has");
/// A message that cannot be read now (removed by another program...).
pub const READ_FAILED: Code = Code::err("[SYS/TEMP] Cannot read the message");
/// RETR and TOP's lead-in; the size follows.
pub const MESSAGE_FOLLOWS: Code = Code::ok("Message follows, octets:");
/// LIST and UIDL without argument.
pub const LISTING: Code = Code::ok("Listing follows");
