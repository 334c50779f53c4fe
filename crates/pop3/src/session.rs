//! The POP3 server: one session as a state machine with no I/O. The caller
//! (mxa-pop3d) feeds it the client's bytes and the outcome of what it was
//! asked to do, and performs the [`Action`]s it hands out, in order.
//!
//! ```text
//! session = Session::new(config)       // queues the +OK greeting
//! loop:
//!   while let Some(action) = session.poll():
//!     Reply(r)             -> write r.to_wire()
//!     StartTls             -> TLS handshake; session.tls_established()
//!     CheckAuth{..}        -> verify against the users file (on failure,
//!                             wait auth::failure_delay first);
//!                             session.auth_checked(ok)
//!     OpenMaildrop{user}   -> lock the Maildir, new/ to cur/, list cur/;
//!                             session.maildrop_opened(Ok(messages) | Err(e))
//!     Fetch{index, top}    -> read the message file; session.fetched(Ok(bytes) | Err)
//!     Update{deleted}      -> remove those messages; session.updated(Ok | Err)
//!     Close                -> close the connection; stop
//!   if session.wants_input(): read (within IDLE_TIMEOUT); session.feed(bytes)
//! ```
//!
//! States (RFC 1939 §3): AUTHORIZATION until a login succeeds and the
//! maildrop is opened, then TRANSACTION; QUIT there enters UPDATE (the
//! [`Action::Update`]); a connection that ends any other way removes
//! nothing. Commands may be pipelined (RFC 2449 §6.6): input that arrives
//! while the caller works is kept and read afterwards.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::codes::{self, Reply};
use crate::wire::{LineError, Lines};

/// Longest command line, CRLF included. RFC 2449 §4 allows commands 255
/// octets; an AUTH PLAIN initial response (RFC 5034 §4) with a long
/// address and password needs more, so lines up to 1024 octets are read.
pub const MAX_LINE: usize = 1024;

/// Protocol errors (unknown commands, commands out of state, syntax)
/// before the session is dropped: an honest client makes one or two.
pub const MAX_ERRORS: u32 = 10;

/// Refused logins before the session is dropped (the caller waits a
/// growing delay before each refusal as well).
pub const MAX_AUTH_FAILURES: u32 = 3;

/// RFC 1939 §3: the autologout timer is at least 10 minutes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The session's policy.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our name, in the greeting.
    pub hostname: String,
    /// STLS can be offered (a certificate is configured).
    pub tls_available: bool,
    /// TLS was set up before the session began (port 995).
    pub tls_implicit: bool,
    /// The client is on this machine (loopback, or a pipe): USER, PASS and
    /// AUTH are accepted without TLS. Off it, only after STLS (RFC 2595 §3.4).
    pub client_local: bool,
    /// See [`MAX_LINE`].
    pub max_line: usize,
    /// See [`MAX_ERRORS`].
    pub max_errors: u32,
}

impl Config {
    /// The policy for a client off this machine on a port without TLS
    /// available: logins refused until a certificate is configured.
    pub fn new(hostname: impl Into<String>) -> Config {
        Config {
            hostname: hostname.into(),
            tls_available: false,
            tls_implicit: false,
            client_local: false,
            max_line: MAX_LINE,
            max_errors: MAX_ERRORS,
        }
    }
}

/// A password; its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// One message of the maildrop, as the caller found it at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The unique-id listing (RFC 1939 §7, UIDL): 1 to 70 octets in
    /// 0x21..=0x7E, the same in every session.
    pub uid: String,
    /// Octets with CRLF line ends, before dot-stuffing.
    pub size: u64,
}

/// Why [`Action::OpenMaildrop`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Another session holds the maildrop: `-ERR [IN-USE]`.
    InUse,
    /// Anything else (the reason is for the log): `-ERR [SYS/TEMP]`.
    Failed(String),
}

/// What the caller must do next; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write this reply.
    Reply(Reply),
    /// The `+OK` to STLS was the reply before: do the handshake, then
    /// [`Session::tls_established`] (or close on failure).
    StartTls,
    /// Verify these credentials, then [`Session::auth_checked`]. Take the
    /// same time whether or not the user exists.
    CheckAuth {
        /// The login (the full address).
        user: String,
        /// The password.
        password: Secret,
    },
    /// The login succeeded: open (and lock) this user's maildrop, then
    /// [`Session::maildrop_opened`].
    OpenMaildrop {
        /// The login, as checked.
        user: String,
    },
    /// Read message `index` (0-based, in the order given to
    /// [`Session::maildrop_opened`]), then [`Session::fetched`]. `top` is
    /// TOP's line count (the session cuts the message; the caller may
    /// stop reading after the header and that many lines).
    Fetch {
        /// The message.
        index: usize,
        /// TOP's line count; None for RETR.
        top: Option<u64>,
    },
    /// QUIT in TRANSACTION (UPDATE, RFC 1939 §6): remove these messages
    /// (0-based indexes), then [`Session::updated`].
    Update {
        /// The messages marked deleted.
        deleted: Vec<usize>,
    },
    /// Close the connection.
    Close,
}

/// Where the session stands; the names say what it waits for.
#[derive(Debug)]
pub(crate) enum Phase {
    /// AUTHORIZATION: commands; `user` is what USER gave.
    Authorization { user: Option<String> },
    /// The AUTH PLAIN response after a `+ ` continuation.
    AuthResponse,
    /// [`Action::StartTls`] given.
    Tls,
    /// [`Action::CheckAuth`] given, for this user.
    AuthCheck(String),
    /// [`Action::OpenMaildrop`] given, for this user.
    Opening(String),
    /// TRANSACTION: commands.
    Transaction,
    /// [`Action::Fetch`] given.
    Fetching { top: Option<u64> },
    /// [`Action::Update`] given.
    Updating,
    /// [`Action::Close`] given.
    Closed,
}

/// One POP3 session.
#[derive(Debug)]
pub struct Session {
    pub(crate) config: Config,
    pub(crate) phase: Phase,
    actions: VecDeque<Action>,
    /// Bytes fed and not yet used.
    pub(crate) input: Vec<u8>,
    lines: Lines,
    pub(crate) tls: bool,
    /// The logged-in user.
    pub(crate) user: Option<String>,
    pub(crate) messages: Vec<Message>,
    pub(crate) deleted: Vec<bool>,
    /// Messages sent whole by RETR, for the log.
    pub(crate) retrieved: usize,
    errors: u32,
    auth_failures: u32,
}

impl Session {
    /// A session whose greeting is the first action.
    pub fn new(config: Config) -> Session {
        let greeting = codes::OK.and(format!("{} POP3 mxa ready", config.hostname));
        let tls = config.tls_implicit;
        Session {
            config,
            phase: Phase::Authorization { user: None },
            actions: VecDeque::from([Action::Reply(greeting)]),
            input: Vec::new(),
            lines: Lines::default(),
            tls,
            user: None,
            messages: Vec::new(),
            deleted: Vec::new(),
            retrieved: 0,
            errors: 0,
            auth_failures: 0,
        }
    }

    /// The next thing to do, in order; `None`: read (if [`Self::wants_input`]).
    pub fn poll(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || matches!(self.phase, Phase::Closed) {
            return;
        }
        if matches!(self.phase, Phase::Tls) {
            // Plaintext sent after STLS must not pass for encrypted
            // (RFC 2595 §3.1; the STARTTLS injection of CVE-2011-0411).
            return;
        }
        self.input.extend_from_slice(bytes);
        self.pump();
    }

    /// True when the session can use more input now: not waiting for the
    /// caller, not closed. Read only then, so that input stays bounded.
    pub fn wants_input(&self) -> bool {
        matches!(
            self.phase,
            Phase::Authorization { .. } | Phase::AuthResponse | Phase::Transaction
        )
    }

    /// [`Action::Close`] has been given.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The logged-in user, once the maildrop is open.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// TLS is on.
    pub fn tls_active(&self) -> bool {
        self.tls
    }

    /// Messages sent whole (RETR) and messages marked deleted, for the log.
    pub fn counts(&self) -> (usize, usize) {
        (self.retrieved, self.deleted.iter().filter(|&&d| d).count())
    }

    /// The handshake after [`Action::StartTls`] succeeded. Whatever the
    /// client sent before it is forgotten (RFC 2595 §4).
    pub fn tls_established(&mut self) {
        if matches!(self.phase, Phase::Tls) {
            self.tls = true;
            self.input.clear();
            self.lines = Lines::default();
            self.phase = Phase::Authorization { user: None };
        }
    }

    /// The outcome of [`Action::CheckAuth`].
    pub fn auth_checked(&mut self, ok: bool) {
        if !matches!(self.phase, Phase::AuthCheck(_)) {
            return;
        }
        let Phase::AuthCheck(user) = std::mem::replace(&mut self.phase, Phase::Closed) else {
            return;
        };
        if ok {
            self.phase = Phase::Opening(user.clone());
            self.actions.push_back(Action::OpenMaildrop { user });
            return;
        }
        self.phase = Phase::Authorization { user: None };
        self.auth_failures += 1;
        if self.auth_failures >= MAX_AUTH_FAILURES {
            return self.fatal(codes::AUTH_TOO_MANY.reply());
        }
        self.reply(codes::AUTH_FAILED.reply());
        self.pump();
    }

    /// The outcome of [`Action::OpenMaildrop`]: the messages, in the order
    /// they are numbered from 1.
    pub fn maildrop_opened(&mut self, result: Result<Vec<Message>, OpenError>) {
        if !matches!(self.phase, Phase::Opening(_)) {
            return;
        }
        let Phase::Opening(user) = std::mem::replace(&mut self.phase, Phase::Closed) else {
            return;
        };
        match result {
            Ok(messages) => {
                let octets: u64 = messages.iter().map(|m| m.size).sum();
                let reply =
                    codes::LOGGED_IN.and(format!("{} messages ({octets} octets)", messages.len()));
                self.deleted = vec![false; messages.len()];
                self.messages = messages;
                self.user = Some(user);
                self.phase = Phase::Transaction;
                self.reply(reply);
            }
            // RFC 1939 §7 (PASS): the client may try again or QUIT.
            Err(e) => {
                self.phase = Phase::Authorization { user: None };
                self.reply(match e {
                    OpenError::InUse => codes::IN_USE.reply(),
                    OpenError::Failed(_) => codes::OPEN_FAILED.reply(),
                });
            }
        }
        self.pump();
    }

    /// The outcome of [`Action::Fetch`]: the message file as stored.
    pub fn fetched(&mut self, result: Result<Vec<u8>, String>) {
        let Phase::Fetching { top } = self.phase else {
            return;
        };
        self.phase = Phase::Transaction;
        let reply = match result {
            Ok(bytes) => {
                let mut body = Vec::new();
                crate::wire::encode(&bytes, top, &mut body);
                if top.is_none() {
                    self.retrieved += 1;
                }
                let size = crate::wire::wire_size(&bytes);
                let mut r = codes::MESSAGE_FOLLOWS.and(size);
                r.body = Some(body);
                r
            }
            Err(_) => codes::READ_FAILED.reply(),
        };
        self.reply(reply);
        self.pump();
    }

    /// The outcome of [`Action::Update`]; the session ends either way.
    pub fn updated(&mut self, result: Result<(), String>) {
        if !matches!(self.phase, Phase::Updating) {
            return;
        }
        let reply = match result {
            Ok(()) => match self.counts().1 {
                0 => codes::BYE.reply(),
                n => codes::BYE_DELETED.and(n),
            },
            Err(_) => codes::UPDATE_FAILED.reply(),
        };
        self.phase = Phase::Authorization { user: None };
        self.fatal(reply);
    }

    /// The idle timeout passed: a last reply, then close. Nothing is removed.
    pub fn timed_out(&mut self) {
        self.fatal(codes::TIMEOUT.reply());
    }

    /// The server is stopping: a last reply, then close. Nothing is removed.
    pub fn shutdown(&mut self) {
        self.fatal(codes::SHUTDOWN.reply());
    }

    /// Use buffered input until the session waits for input or the caller.
    pub(crate) fn pump(&mut self) {
        while self.wants_input() {
            let max = self.config.max_line;
            let Some(line) = self.lines.next(&mut self.input, max) else {
                return;
            };
            match line {
                Ok(line) => self.line(&line),
                Err(LineError::TooLong) => self.error(codes::LINE_TOO_LONG.reply()),
            }
        }
    }

    /// Queue a reply.
    pub(crate) fn reply(&mut self, reply: Reply) {
        self.actions.push_back(Action::Reply(reply));
    }

    /// Queue an action.
    pub(crate) fn act(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    /// Queue a reply to a protocol error; too many end the session.
    pub(crate) fn error(&mut self, reply: Reply) {
        self.reply(reply);
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.fatal(codes::TOO_MANY_ERRORS.reply());
        }
    }

    /// Queue a last reply and close.
    pub(crate) fn fatal(&mut self, reply: Reply) {
        if self.is_closed() {
            return;
        }
        self.actions.push_back(Action::Reply(reply));
        self.actions.push_back(Action::Close);
        self.phase = Phase::Closed;
    }
}
