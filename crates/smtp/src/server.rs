//! The SMTP server: one session as a state machine with no I/O. The caller
//! (mxa-smtpd) feeds it the client's bytes and the outcome of what it was
//! asked to do, and performs the [`Action`]s it hands out, in order.
//!
//! ```text
//! session = Session::new(config)       // queues the 220 greeting
//! loop:
//!   while let Some(action) = session.poll():
//!     Reply(r)            -> write r.to_wire()
//!                            (after the first: session.greeting_sent())
//!     StartTls            -> TLS handshake; session.tls_established(version, cipher)
//!     CheckAuth{..}       -> verify against the users file; session.auth_checked(ok)
//!     CheckRecipient(a)   -> look a up; session.recipient_checked(verdict)
//!     MessageBegin{..}    -> open a spool file, write the Received: line
//!     MessageData(bytes)  -> append them
//!     MessageAbort        -> drop the spool file
//!     MessageEnd{envelope}-> fsync, queue; session.message_stored(Ok(id) | Err(why))
//!     Close               -> close the connection; stop
//!   if session.wants_input(): read; session.feed(bytes)
//! ```
//!
//! Pregreet: bytes fed before [`Session::greeting_sent`] end the session
//! with 554 5.5.1. To catch such clients the caller may wait a moment
//! before writing the greeting, feeding whatever arrives meanwhile.
//!
//! Standards: RFC 5321, RFC 2920 (PIPELINING), RFC 1870 (SIZE), RFC 6152
//! (8BITMIME), RFC 6531 (SMTPUTF8), RFC 2034 and RFC 3463 (enhanced status
//! codes), RFC 3207 (STARTTLS), RFC 4954 and RFC 4616 (AUTH PLAIN; LOGIN
//! as draft-murchison-sasl-login), RFC 3030 (CHUNKING), RFC 3461 (DSN).

mod auth;
pub mod codes;
mod input;
mod txn;
mod verbs;

use std::collections::VecDeque;
use std::fmt;

use crate::reply::Reply;
use input::{Body, Lines};

/// Longest command line, CRLF included: RFC 5321 §4.5.3.1.6's text line.
/// (§4.5.3.1.4 allows commands only 512, but real clients send longer MAIL
/// lines with several parameters; the text-line limit is what we enforce.)
pub const MAX_LINE: usize = 1000;

/// Errors (5xx replies) before the session is dropped with 421. Ten is
/// Postfix's `smtpd_hard_error_limit` lowered: an honest client makes one or
/// two; a scanner or a dictionary attack makes many.
pub const MAX_ERRORS: u32 = 10;

/// Refused AUTH attempts before the session is dropped with 421 (the
/// caller adds a delay before each 535 to slow guessing further).
pub const MAX_AUTH_FAILURES: u32 = 3;

/// What a bare LF (a line end without CR) means (DESIGN.md `bare_lf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLf {
    /// Taken as CRLF, in commands and in content.
    Normalize,
    /// A command so ended is refused; in content it ends the session.
    Reject,
}

/// The session's policy.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our name, in the greeting and the EHLO reply.
    pub hostname: String,
    /// Largest message accepted, in octets with CRLF line ends.
    pub max_message_size: u64,
    /// Most recipients in one transaction.
    pub max_recipients: usize,
    /// See [`BareLf`].
    pub bare_lf: BareLf,
    /// Offer AUTH PLAIN and LOGIN.
    pub auth_offered: bool,
    /// MAIL only after a successful AUTH (submission ports); implies
    /// `auth_offered`.
    pub auth_required: bool,
    /// AUTH only once TLS is on (offered and accepted only then).
    pub auth_needs_tls: bool,
    /// STARTTLS can be offered (a certificate is configured).
    pub tls_available: bool,
    /// TLS was set up before the session began (port 465).
    pub tls_implicit: bool,
    /// See [`MAX_ERRORS`].
    pub max_errors: u32,
    /// See [`MAX_LINE`].
    pub max_line: usize,
}

impl Config {
    /// The defaults of a port-25 MTA named `hostname`: 35 MiB, 100
    /// recipients (DESIGN.md), no AUTH, no TLS until a certificate is set.
    pub fn new(hostname: impl Into<String>) -> Config {
        Config {
            hostname: hostname.into(),
            max_message_size: 35 << 20,
            max_recipients: 100,
            bare_lf: BareLf::Normalize,
            auth_offered: false,
            auth_required: false,
            auth_needs_tls: true,
            tls_available: false,
            tls_implicit: false,
            max_errors: MAX_ERRORS,
            max_line: MAX_LINE,
        }
    }
}

/// The TLS parameters the caller negotiated, for the envelope and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Such as "TLSv1.3".
    pub version: String,
    /// Such as "TLS13_AES_256_GCM_SHA384".
    pub cipher: String,
}

/// A password; its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// An AUTH mechanism we offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616.
    Plain,
    /// draft-murchison-sasl-login.
    Login,
}

/// The caller's answer to [`Action::CheckRecipient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A local address the users or aliases file knows (or postmaster).
    Local,
    /// A local-domain address nobody knows: 550 5.1.1.
    Unknown,
    /// A remote address this client may relay to (trusted or authenticated).
    RelayAllowed,
    /// A remote address this client may not relay to: 554 5.7.1.
    RelayDenied,
    /// Cannot tell now: 451 4.3.0.
    TemporaryFailure,
}

/// One accepted recipient, with its RFC 3461 parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address, without angle brackets ("postmaster" alone is allowed).
    pub address: String,
    /// The verdict said [`Verdict::Local`].
    pub local: bool,
    /// NOTIFY: "NEVER" or a comma list of SUCCESS, FAILURE, DELAY.
    pub notify: Option<String>,
    /// ORCPT, decoded, with its type: "rfc822;user@example.org".
    pub orcpt: Option<String>,
}

/// One transaction, as handed over with [`Action::MessageEnd`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The EHLO or HELO name the client gave.
    pub helo: String,
    /// It came with EHLO (for the `with` clause of `Received:`).
    pub esmtp: bool,
    /// The reverse path; "" is the null sender.
    pub sender: String,
    /// Accepted recipients, in order.
    pub recipients: Vec<Recipient>,
    /// SIZE= as declared at MAIL (RFC 1870).
    pub declared_size: Option<u64>,
    /// Octets of the message as stored, CRLF line ends.
    pub size: u64,
    /// BODY=8BITMIME (RFC 6152).
    pub eightbit: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// RET: "FULL" or "HDRS" (RFC 3461).
    pub ret: Option<String>,
    /// ENVID, xtext-decoded (RFC 3461).
    pub envid: Option<String>,
    /// The authenticated user, if any.
    pub auth_user: Option<String>,
    /// The TLS parameters, when on.
    pub tls: Option<TlsInfo>,
}

/// What the caller must do next; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write this reply.
    Reply(Reply),
    /// The 220 to STARTTLS was the reply before: do the handshake, then
    /// [`Session::tls_established`].
    StartTls,
    /// Verify these credentials, then [`Session::auth_checked`]. Take the
    /// same time whether or not the user exists.
    CheckAuth {
        /// How they came.
        mechanism: Mechanism,
        /// The login (the full address).
        user: String,
        /// The password.
        password: Secret,
    },
    /// Decide on this recipient, then [`Session::recipient_checked`].
    CheckRecipient(String),
    /// A message begins: open a spool file. The transaction as known so
    /// far (HELO name, sender, recipients, user, TLS), for the
    /// `Received:` line that goes first: pipelined input may have ended
    /// the transaction before the caller sees this action.
    MessageBegin {
        /// The transaction so far.
        envelope: Envelope,
    },
    /// Message octets: CRLF line ends, dot-unstuffed.
    MessageData(Vec<u8>),
    /// The message begun is refused: drop what was written.
    MessageAbort,
    /// The message is complete: store it, then [`Session::message_stored`].
    MessageEnd {
        /// The transaction.
        envelope: Envelope,
    },
    /// Close the connection.
    Close,
}

/// What the session waits for from the caller, or reads next.
#[derive(Debug)]
enum Phase {
    /// Command lines.
    Command,
    /// The PLAIN response after a 334.
    AuthPlain,
    /// The LOGIN user name after a 334.
    AuthLoginUser,
    /// The LOGIN password after a 334, for this user.
    AuthLoginPassword(String),
    /// The DATA body.
    Data,
    /// A BDAT chunk: its size, octets left, LAST, and the reply that
    /// refuses it once read (its octets must be read all the same).
    Bdat {
        size: u64,
        left: u64,
        last: bool,
        refuse: Option<Reply>,
    },
    /// [`Action::StartTls`] given.
    Tls,
    /// [`Action::CheckAuth`] given, for this user.
    AuthCheck(String),
    /// [`Action::CheckRecipient`] given, for this recipient.
    RecipientCheck(Recipient),
    /// [`Action::MessageEnd`] given.
    Storing,
    /// [`Action::Close`] given.
    Closed,
}

/// The transaction under way.
#[derive(Debug)]
struct Txn {
    env: Envelope,
    /// The body being read, once DATA or the first BDAT is accepted.
    body: Option<Body>,
    /// [`Action::MessageAbort`] given.
    aborted: bool,
}

/// One SMTP session.
#[derive(Debug)]
pub struct Session {
    config: Config,
    phase: Phase,
    actions: VecDeque<Action>,
    /// Bytes fed and not yet used.
    input: Vec<u8>,
    lines: Lines,
    greeted: bool,
    /// The EHLO (true) or HELO (false) name; cleared by STARTTLS.
    helo: Option<(String, bool)>,
    tls: Option<TlsInfo>,
    /// The authenticated user.
    user: Option<String>,
    /// Which senders the authenticated user may use.
    owns: Option<SenderCheck>,
    txn: Option<Txn>,
    errors: u32,
    auth_failures: u32,
}

/// Whether the authenticated user may use a sender address (the caller's
/// policy, given by [`Session::check_senders`]).
pub struct SenderCheck(Box<OwnsFn>);

/// `owns(login, sender)`.
type OwnsFn = dyn Fn(&str, &str) -> bool + Send + Sync;

impl std::fmt::Debug for SenderCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SenderCheck")
    }
}

impl Session {
    /// A session whose greeting is the first action.
    pub fn new(config: Config) -> Session {
        let greeting = Reply::new(220, format!("{} ESMTP mxa", config.hostname));
        let tls = config.tls_implicit.then(TlsInfo::default);
        Session {
            config,
            phase: Phase::Command,
            actions: VecDeque::from([Action::Reply(greeting)]),
            input: Vec::new(),
            lines: Lines::default(),
            greeted: false,
            helo: None,
            tls,
            user: None,
            owns: None,
            txn: None,
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
        if !self.greeted {
            self.actions.clear();
            return self.fatal(codes::PREGREET.reply());
        }
        if matches!(self.phase, Phase::Tls) {
            // Plaintext sent after STARTTLS must not pass for encrypted
            // (RFC 3207 §4.2, CVE-2011-0411).
            return;
        }
        self.input.extend_from_slice(bytes);
        self.pump();
    }

    /// The greeting has been written; bytes fed from now on are commands.
    pub fn greeting_sent(&mut self) {
        self.greeted = true;
    }

    /// The handshake after [`Action::StartTls`] succeeded (or, with
    /// `tls_implicit`, the parameters of the one done before the session).
    /// RFC 3207 §4.2: everything learnt before is forgotten; EHLO again.
    pub fn tls_established(&mut self, version: &str, cipher: &str) {
        let info = TlsInfo {
            version: version.into(),
            cipher: cipher.into(),
        };
        if matches!(self.phase, Phase::Tls) {
            self.tls = Some(info);
            self.helo = None;
            self.user = None;
            self.txn = None;
            self.input.clear();
            self.lines = Lines::default();
            self.phase = Phase::Command;
        } else if self.config.tls_implicit {
            self.tls = Some(info);
        }
    }

    /// After AUTH, MAIL FROM must be an address that `owns(login, sender)`
    /// accepts, else `553 5.7.1` (as Postfix's
    /// reject_sender_login_mismatch); the null sender is always accepted.
    /// Without it, an authenticated user may use any sender.
    pub fn check_senders(&mut self, owns: impl Fn(&str, &str) -> bool + Send + Sync + 'static) {
        self.owns = Some(SenderCheck(Box::new(owns)));
    }

    /// The outcome of [`Action::CheckAuth`].
    pub fn auth_checked(&mut self, ok: bool) {
        if !matches!(self.phase, Phase::AuthCheck(_)) {
            return;
        }
        let Phase::AuthCheck(user) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return;
        };
        if ok {
            self.user = Some(user);
            self.reply(codes::AUTH_OK.reply());
        } else {
            self.auth_failures += 1;
            if self.auth_failures >= MAX_AUTH_FAILURES {
                return self.fatal(codes::AUTH_TOO_MANY.reply());
            }
            self.reply(codes::AUTH_FAILED.reply());
        }
        self.pump();
    }

    /// The outcome of [`Action::CheckRecipient`].
    pub fn recipient_checked(&mut self, verdict: Verdict) {
        if !matches!(self.phase, Phase::RecipientCheck(_)) {
            return;
        }
        let Phase::RecipientCheck(mut rcpt) = std::mem::replace(&mut self.phase, Phase::Command)
        else {
            return;
        };
        let reply = match verdict {
            Verdict::Local | Verdict::RelayAllowed => {
                rcpt.local = verdict == Verdict::Local;
                if let Some(txn) = &mut self.txn {
                    txn.env.recipients.push(rcpt);
                }
                codes::RECIPIENT_OK.reply()
            }
            Verdict::Unknown => codes::UNKNOWN_USER.reply(),
            Verdict::RelayDenied => codes::RELAY_DENIED.reply(),
            Verdict::TemporaryFailure => codes::RECIPIENT_TEMPFAIL.reply(),
        };
        self.reply(reply);
        self.pump();
    }

    /// The outcome of [`Action::MessageEnd`]: the queue id once the message
    /// is on disk (spool invariant 1), or why it could not be stored.
    pub fn message_stored(&mut self, result: Result<String, String>) {
        if !matches!(self.phase, Phase::Storing) {
            return;
        }
        self.phase = Phase::Command;
        self.txn = None;
        let reply = match result {
            Ok(id) => codes::QUEUED.and(id),
            Err(_) => codes::STORE_TEMPFAIL.reply(),
        };
        self.reply(reply);
        self.pump();
    }

    /// True when the session can use more input now: not waiting for the
    /// caller, not closed. Read only then, so that input stays bounded.
    pub fn wants_input(&self) -> bool {
        matches!(
            self.phase,
            Phase::Command
                | Phase::AuthPlain
                | Phase::AuthLoginUser
                | Phase::AuthLoginPassword(_)
                | Phase::Data
                | Phase::Bdat { .. }
        )
    }

    /// [`Action::Close`] has been given.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The authenticated user, for relay decisions.
    pub fn authenticated(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// A transaction is under way (MAIL given, not yet ended or reset):
    /// a server that is stopping lets it finish.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// The transaction under way as known so far (HELO name, sender,
    /// recipients), with the session's user and TLS; `None` outside one.
    pub fn transaction(&self) -> Option<Envelope> {
        self.txn.as_ref().map(|t| Envelope {
            auth_user: self.user.clone(),
            tls: self.tls.clone(),
            ..t.env.clone()
        })
    }

    /// TLS is on.
    pub fn tls_active(&self) -> bool {
        self.tls.is_some()
    }

    /// Use buffered input until the session waits for input or the caller.
    fn pump(&mut self) {
        loop {
            let progressed = match self.phase {
                Phase::Command
                | Phase::AuthPlain
                | Phase::AuthLoginUser
                | Phase::AuthLoginPassword(_) => self.line(),
                Phase::Data => self.data(),
                Phase::Bdat { .. } => self.bdat(),
                _ => false,
            };
            if !progressed {
                return;
            }
        }
    }

    /// Queue a reply; a 5xx counts as an error, and too many end the session.
    fn reply(&mut self, reply: Reply) {
        let error = reply.code >= 500;
        self.actions.push_back(Action::Reply(reply));
        if error && !self.is_closed() {
            self.errors += 1;
            if self.errors >= self.config.max_errors {
                self.fatal(codes::TOO_MANY_ERRORS.reply());
            }
        }
    }

    /// Queue a last reply and close.
    fn fatal(&mut self, reply: Reply) {
        if self.is_closed() {
            return;
        }
        self.abort_message();
        self.actions.push_back(Action::Reply(reply));
        self.actions.push_back(Action::Close);
        self.phase = Phase::Closed;
    }

    /// Give [`Action::MessageAbort`] if a message was begun and not ended.
    fn abort_message(&mut self) {
        if let Some(txn) = &mut self.txn
            && txn.body.is_some()
            && !txn.aborted
            && !matches!(self.phase, Phase::Storing)
        {
            txn.aborted = true;
            self.actions.push_back(Action::MessageAbort);
        }
    }
}
