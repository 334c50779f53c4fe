//! Every reply the server sends, as named constants: code, RFC 3463
//! enhanced status code, text. RFC 2034 §3 puts the enhanced code on every
//! reply except the greeting and the replies to HELO and EHLO; 334 and 354
//! are not final replies and carry none either (RFC 3463 has no class 3).

use crate::reply::Reply;

/// A reply template: the code and its text, the enhanced code first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The three-digit reply code.
    pub code: u16,
    /// The text, starting with the enhanced status code where there is one.
    pub text: &'static str,
}

impl Code {
    const fn new(code: u16, text: &'static str) -> Code {
        Code { code, text }
    }

    /// The reply as is.
    pub fn reply(self) -> Reply {
        Reply::new(self.code, self.text)
    }

    /// The reply with a detail appended: `501 5.5.4 Syntax error: EHLO domain`.
    pub fn with(self, detail: impl std::fmt::Display) -> Reply {
        Reply::new(self.code, format!("{}: {detail}", self.text))
    }

    /// The reply with a word appended: `250 2.0.0 OK queued as ID`.
    pub fn and(self, word: impl std::fmt::Display) -> Reply {
        Reply::new(self.code, format!("{} {word}", self.text))
    }
}

// Session.
/// Before the greeting (RFC 5321 §4.3.1), after it the client talks.
pub const PREGREET: Code = Code::new(554, "5.5.1 Protocol error: talked before the greeting");
/// QUIT.
pub const BYE: Code = Code::new(221, "2.0.0 Bye");
/// NOOP, RSET and other plain successes.
pub const OK: Code = Code::new(250, "2.0.0 OK");
/// VRFY (RFC 5321 §3.5.3): we never disclose whether a user exists.
pub const VRFY: Code = Code::new(252, "2.5.0 Cannot VRFY user, but will accept message");
/// HELP.
pub const HELP: Code = Code::new(214, "2.0.0 See RFC 5321");
/// Too many errors in one session: the client is dropped.
pub const TOO_MANY_ERRORS: Code = Code::new(421, "4.7.0 Too many errors, closing connection");

// Syntax.
/// An unknown verb.
pub const UNKNOWN_COMMAND: Code = Code::new(500, "5.5.1 Command unrecognized");
/// A known verb we do not implement (EXPN, ETRN, ATRN, BURL, LHLO).
pub const NOT_IMPLEMENTED: Code = Code::new(502, "5.5.1 Command not implemented");
/// A line over the limit (RFC 5321 §4.5.3.1.4–6).
pub const LINE_TOO_LONG: Code = Code::new(500, "5.5.2 Line too long");
/// A command line ending in a bare LF under `bare_lf = reject`.
pub const BARE_LF: Code = Code::new(500, "5.5.2 Bare LF received, lines must end with CRLF");
/// A bare CR in a command line (RFC 5321 §2.3.8).
pub const BARE_CR: Code = Code::new(500, "5.5.2 Bare CR received");
/// A command's arguments that do not parse.
pub const SYNTAX: Code = Code::new(501, "5.5.4 Syntax error");
/// A MAIL FROM address that does not parse.
pub const BAD_SENDER: Code = Code::new(501, "5.1.7 Bad sender address syntax");
/// A RCPT TO address that does not parse.
pub const BAD_RECIPIENT: Code = Code::new(501, "5.1.3 Bad recipient address syntax");
/// A parameter we do not offer (RFC 5321 §4.1.1.11).
pub const PARAM_UNSUPPORTED: Code = Code::new(555, "5.5.4 Parameter not supported");
/// A non-ASCII address without SMTPUTF8 (RFC 6531 §3.5).
pub const NEEDS_SMTPUTF8: Code = Code::new(553, "5.6.7 Non-ASCII address needs SMTPUTF8");
/// A verb out of sequence.
pub const BAD_SEQUENCE: Code = Code::new(503, "5.5.1 Bad sequence of commands");

// Transaction.
/// MAIL accepted.
pub const SENDER_OK: Code = Code::new(250, "2.1.0 Sender OK");
/// MAIL FROM an address the authenticated user does not own.
pub const SENDER_NOT_OWNED: Code = Code::new(
    553,
    "5.7.1 Sender address not owned by the authenticated user",
);
/// RCPT accepted.
pub const RECIPIENT_OK: Code = Code::new(250, "2.1.5 Recipient OK");
/// A local recipient nobody knows.
pub const UNKNOWN_USER: Code = Code::new(550, "5.1.1 No such user here");
/// A remote recipient from a client that may not relay.
pub const RELAY_DENIED: Code = Code::new(554, "5.7.1 Relay access denied");
/// The recipient could not be checked now (users file unreadable…).
pub const RECIPIENT_TEMPFAIL: Code = Code::new(451, "4.3.0 Cannot check recipient now, try later");
/// One recipient more than `max_recipients` (RFC 5321 §4.5.3.1.8).
pub const TOO_MANY_RECIPIENTS: Code = Code::new(452, "4.5.3 Too many recipients");
/// DATA or BDAT with no accepted recipient (RFC 2920 §3.1).
pub const NO_RECIPIENTS: Code = Code::new(554, "5.5.1 No valid recipients");
/// SIZE over the limit, declared or read (RFC 1870 §6).
pub const TOO_BIG: Code = Code::new(552, "5.3.4 Message size exceeds fixed limit");
/// The go-ahead for the DATA body.
pub const START_DATA: Code = Code::new(354, "End data with <CR><LF>.<CR><LF>");
/// The message is on disk (spool invariant 1); the queue id follows.
pub const QUEUED: Code = Code::new(250, "2.0.0 OK queued as");
/// The message could not be stored.
pub const STORE_TEMPFAIL: Code = Code::new(452, "4.3.1 Cannot store the message now, try later");
/// A BDAT chunk that is not the last (RFC 3030 §2); the octet count follows.
pub const CHUNK_OK: Code = Code::new(250, "2.0.0 Chunk received, octets");
/// A bare CR, or a bare LF under `bare_lf = reject`, in the message: the
/// session ends so that nothing after it can be read as a command.
pub const BAD_CONTENT: Code = Code::new(554, "5.6.0 Bare CR or LF in message, closing connection");

// TLS (RFC 3207) and AUTH (RFC 4954).
/// STARTTLS accepted.
pub const READY_TLS: Code = Code::new(220, "2.0.0 Ready to start TLS");
/// AUTH before STARTTLS where AUTH needs TLS.
pub const TLS_FIRST: Code = Code::new(530, "5.7.0 Must issue a STARTTLS command first");
/// MAIL before AUTH on a submission port.
pub const AUTH_REQUIRED: Code = Code::new(530, "5.7.0 Authentication required");
/// A mechanism other than PLAIN and LOGIN.
pub const AUTH_MECHANISM: Code = Code::new(504, "5.5.4 Unrecognized authentication type");
/// The client answered `*`.
pub const AUTH_CANCELLED: Code = Code::new(501, "5.0.0 Authentication cancelled");
/// A response that is not base64, or not a PLAIN message.
pub const AUTH_MALFORMED: Code = Code::new(501, "5.5.2 Cannot decode response");
/// Credentials accepted.
pub const AUTH_OK: Code = Code::new(235, "2.7.0 Authentication successful");
/// Credentials refused; the same reply whatever was wrong with them.
pub const AUTH_FAILED: Code = Code::new(535, "5.7.8 Authentication credentials invalid");
/// Too many refused credentials in one session.
pub const AUTH_TOO_MANY: Code = Code::new(421, "4.7.0 Too many authentication failures");
/// The PLAIN prompt (RFC 4616: an empty challenge).
pub const AUTH_PROMPT: Code = Code::new(334, "");
/// The LOGIN prompts, base64 of "Username:" and "Password:".
pub const LOGIN_USER: Code = Code::new(334, "VXNlcm5hbWU6");
/// See [`LOGIN_USER`].
pub const LOGIN_PASSWORD: Code = Code::new(334, "UGFzc3dvcmQ6");
