//! The SMTP client: one connection as a state machine that takes replies and
//! answers with the next [`Step`]; the caller does all I/O.
//!
//! Contracts the caller relies on:
//! - every [`Envelope`] given to [`Client::start`] gets exactly one
//!   [`Step::Done`], with one [`RcptResult`] per recipient in order — from
//!   `start` itself, from `on_reply`, or as [`Client::connection_error`]'s
//!   return value (which is empty once the transaction's `Done` was given:
//!   a connection lost during QUIT changes nothing);
//! - [`Step::Done`] with no results (`Outcome::default()`) means the session
//!   is set up, or refused, with no transaction started: call `start` or
//!   `quit`;
//! - after a session is refused (greeting other than 220, TLS or AUTH
//!   failure) or lost (421, connection error), `start` answers at once with
//!   `Done` carrying the reason for every recipient, and `quit` sends QUIT
//!   when the server still listens, else returns [`Step::Close`];
//! - [`Step::SendData`]: the caller writes [`dot_stuff`]`(message)` and
//!   nothing else — its output already ends with the terminating ".\r\n";
//!   the machine then expects the final reply. The machine never includes
//!   the message in a `Send`. (The one `Send` of ".\r\n" the machine makes
//!   itself is for a server that answered 354 although no recipient was
//!   accepted.)

mod encode;
mod session;
mod synthetic;
mod transaction;

use std::fmt;

use crate::reply::Reply;
pub use encode::dot_stuff;
use transaction::Txn;

/// What the EHLO reply offered (RFC 5321 §4.1.1.1; each field names its RFC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 3207.
    pub starttls: bool,
    /// RFC 1870: the declared limit; `Some(0)` when SIZE is offered with no
    /// limit (or an unreadable one).
    pub size: Option<u64>,
    /// RFC 6152.
    pub eightbitmime: bool,
    /// RFC 6531.
    pub smtputf8: bool,
    /// RFC 3461.
    pub dsn: bool,
    /// RFC 3030 (noted; this client does not use BDAT).
    pub chunking: bool,
    /// RFC 2034.
    pub enhanced_status_codes: bool,
    /// RFC 4954: mechanism names, upper-case.
    pub auth: Vec<String>,
}

/// When to use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// STARTTLS when offered; in clear when not offered or refused.
    Opportunistic,
    /// STARTTLS or nothing: all recipients deferred otherwise.
    Required,
    /// Never STARTTLS.
    Never,
    /// Implicit TLS: the I/O layer did it before the greeting.
    AlreadyOn,
}

/// One transaction: MAIL FROM with parameters, RCPT TOs, then the message.
/// Addresses are bare (`user@example.org`, no angle brackets).
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// The reverse path; "" is the null sender `<>`.
    pub sender: String,
    /// The forward paths.
    pub recipients: Vec<String>,
    /// The message size with CRLF line ends (RFC 1870 SIZE=).
    pub size: Option<u64>,
    /// The message has 8-bit content (BODY=8BITMIME when offered).
    pub eightbit: bool,
    /// The message needs SMTPUTF8 (UTF-8 headers). A non-ASCII address
    /// needs it too, whatever this says.
    pub smtputf8: bool,
    /// RFC 3461 RET: "FULL" or "HDRS".
    pub ret: Option<String>,
    /// RFC 3461 ENVID, unencoded (the client applies xtext).
    pub envid: Option<String>,
    /// RFC 3461 NOTIFY per recipient: "NEVER" or a comma list of SUCCESS,
    /// FAILURE, DELAY. Same order as `recipients`; may be shorter.
    pub notify: Vec<Option<String>>,
    /// RFC 3461 ORCPT per recipient: the original address, unencoded, with
    /// or without a leading "rfc822;". Same order; may be shorter.
    pub orcpt: Vec<Option<String>>,
}

/// The client's settings.
#[derive(Clone)]
pub struct Config {
    /// The name sent with EHLO / HELO.
    pub helo: String,
    /// When to use TLS.
    pub tls: Tls,
    /// User and password: AUTH PLAIN if offered, else LOGIN; only once TLS
    /// is on (otherwise every recipient is deferred).
    pub auth: Option<(String, String)>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("helo", &self.helo)
            .field("tls", &self.tls)
            .field(
                "auth",
                &self.auth.as_ref().map(|(user, _)| (user, "<password>")),
            )
            .finish()
    }
}

/// What the I/O layer must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes (one or several pipelined commands, CRLF-terminated),
    /// then read.
    Send(Vec<u8>),
    /// The server said 220 to STARTTLS: do the TLS handshake, then call
    /// [`Client::tls_established`].
    StartTls,
    /// Write [`dot_stuff`]`(message)`, which ends with the final ".\r\n"
    /// (write nothing after it); then read.
    SendData,
    /// Read more and feed replies.
    Wait,
    /// The transaction is over: call [`Client::start`] or [`Client::quit`].
    Done(Outcome),
    /// Send nothing more; close the connection.
    Close,
}

/// The fate of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    /// The final reply to the message was 2xx (that reply).
    Delivered(Reply),
    /// Try again later, with the reply that says why.
    Deferred(Reply),
    /// Refused for good: bounce, with the reply that says why.
    Failed(Reply),
}

impl RcptResult {
    /// The reply, whatever the result.
    pub fn reply(&self) -> &Reply {
        match self {
            RcptResult::Delivered(r) | RcptResult::Deferred(r) | RcptResult::Failed(r) => r,
        }
    }

    /// A refusal by its class: 5xx fails, 4xx defers, and anything else —
    /// a positive reply where a refusal was expected — defers as a
    /// protocol error.
    fn refusal(r: &Reply) -> RcptResult {
        match r.class() {
            5 => RcptResult::Failed(r.clone()),
            4 => RcptResult::Deferred(r.clone()),
            _ => RcptResult::Deferred(synthetic::unexpected(r)),
        }
    }
}

/// The result of one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Same order as [`Envelope::recipients`].
    pub results: Vec<RcptResult>,
}

impl Outcome {
    /// Every one of `n` recipients gets the refusal `reason`.
    fn all(n: usize, reason: &Reply) -> Outcome {
        Outcome {
            results: vec![RcptResult::refusal(reason); n],
        }
    }
}

/// Where the session is; each state is named for what it expects next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// The 220 banner.
    Greeting,
    /// The reply to EHLO.
    Ehlo,
    /// The reply to HELO (after EHLO got 5xx).
    Helo,
    /// The reply to STARTTLS.
    StartTls,
    /// The caller's [`Client::tls_established`].
    Handshake,
    /// 235 to `AUTH PLAIN <initial response>`.
    AuthPlain,
    /// 334 asking for the user name (AUTH LOGIN).
    AuthLoginUser,
    /// 334 asking for the password (AUTH LOGIN).
    AuthLoginPassword,
    /// 235 after the password (AUTH LOGIN).
    AuthLoginDone,
    /// Transactions: replies to the commands the transaction has queued.
    Ready,
    /// The session cannot carry mail (the reason); QUIT is still possible.
    Refused(Reply),
    /// The reply to QUIT.
    Quitting,
    /// The connection is over (the reason, for later `start` calls).
    Closed(Reply),
}

/// One SMTP connection.
#[derive(Debug)]
pub struct Client {
    config: Config,
    state: State,
    caps: Capabilities,
    tls_active: bool,
    /// STARTTLS was refused once on this connection: do not ask again.
    starttls_refused: bool,
    /// The transaction being carried out, or waiting for the session.
    txn: Option<Txn>,
    /// The last transaction was aborted after MAIL: send RSET first.
    needs_rset: bool,
}

impl Client {
    /// A client for a fresh connection; it expects the 220 greeting first.
    pub fn new(config: Config) -> Client {
        let tls_active = config.tls == Tls::AlreadyOn;
        Client {
            config,
            state: State::Greeting,
            caps: Capabilities::default(),
            tls_active,
            starttls_refused: false,
            txn: None,
            needs_rset: false,
        }
    }

    /// Queue a transaction, before or after the greeting. Returns `Wait`
    /// while the session is being set up, the first commands when it is
    /// ready, or `Done` when nothing need be sent (refused session, or every
    /// recipient refused by the pre-flight checks). One transaction at a
    /// time: a second `start` before the first one's `Done` is a caller bug,
    /// answered with `Done` deferring the second envelope.
    pub fn start(&mut self, env: Envelope) -> Step {
        let n = env.recipients.len();
        if self.txn.is_some() {
            return Step::Done(Outcome::all(n, &synthetic::busy()));
        }
        match &self.state {
            State::Refused(reason) | State::Closed(reason) => {
                return Step::Done(Outcome::all(n, reason));
            }
            State::Quitting => return Step::Done(Outcome::all(n, &synthetic::closed())),
            _ => {}
        }
        self.txn = Some(Txn::new(env));
        if self.state == State::Ready {
            self.begin()
        } else {
            Step::Wait
        }
    }

    /// Feed each parsed reply, in order.
    pub fn on_reply(&mut self, r: Reply) -> Step {
        if r.code == 421 && !matches!(self.state, State::Quitting | State::Closed(_)) {
            // RFC 5321 §3.8: the server is closing the connection.
            return self.stop(r, true);
        }
        match self.state.clone() {
            State::Greeting => self.on_greeting(&r),
            State::Ehlo => self.on_ehlo(&r),
            State::Helo => self.on_helo(&r),
            State::StartTls => self.on_starttls(&r),
            State::AuthPlain | State::AuthLoginDone => self.on_auth_done(&r),
            State::AuthLoginUser => self.on_auth_login(&r, false),
            State::AuthLoginPassword => self.on_auth_login(&r, true),
            State::Ready => self.on_txn_reply(r),
            State::Quitting => {
                self.state = State::Closed(synthetic::closed());
                Step::Close
            }
            State::Handshake | State::Refused(_) => self.stop(synthetic::unexpected(&r), true),
            State::Closed(_) => Step::Close,
        }
    }

    /// After the TLS handshake: EHLO again, with the capabilities forgotten
    /// (RFC 3207 §4.2). Called at any other time it is a caller bug, and
    /// the connection is given up.
    pub fn tls_established(&mut self) -> Step {
        if self.state != State::Handshake {
            return self.stop(
                synthetic::internal("tls_established without STARTTLS"),
                true,
            );
        }
        self.tls_active = true;
        self.caps = Capabilities::default();
        self.send_ehlo()
    }

    /// `Send(QUIT)`, then `Close` after its reply. Only between transactions:
    /// during a transaction or the session set-up it returns `Close` at once
    /// (and the caller should take [`Client::connection_error`]'s outcome).
    pub fn quit(&mut self) -> Step {
        match self.state {
            State::Ready | State::Refused(_) if self.txn.is_none() => {
                self.state = State::Quitting;
                Step::Send(b"QUIT\r\n".to_vec())
            }
            State::Quitting => Step::Wait,
            _ => {
                if !matches!(self.state, State::Closed(_)) {
                    self.state = State::Closed(synthetic::closed());
                }
                Step::Close
            }
        }
    }

    /// The session is set up and between transactions: a new
    /// [`Client::start`] may go out on this connection (connection reuse).
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready && self.txn.is_none()
    }

    /// What the last EHLO reply offered (nothing after HELO).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// TLS is on: after a successful STARTTLS, or [`Tls::AlreadyOn`].
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The connection broke (read or write error, timeout, TLS failure):
    /// every recipient of the current transaction not yet final becomes
    /// Deferred with `451 4.4.2 <why>`. The connection is over.
    pub fn connection_error(&mut self, why: &str) -> Outcome {
        let reason = synthetic::connection_lost(why);
        self.state = State::Closed(reason.clone());
        match self.txn.take() {
            Some(txn) => txn.abandon(&reason),
            None => Outcome::default(),
        }
    }

    /// End the session with `reason`: the current transaction (if any) is
    /// done with it, and so will be any later one. `close`: the connection
    /// is unusable (else the server still listens and QUIT is possible).
    /// A positive `reason` (250 to a greeting) is stored as a protocol error.
    fn stop(&mut self, reason: Reply, close: bool) -> Step {
        let reason = if matches!(reason.class(), 4 | 5) {
            reason
        } else {
            synthetic::unexpected(&reason)
        };
        self.state = if close {
            State::Closed(reason.clone())
        } else {
            State::Refused(reason.clone())
        };
        match self.txn.take() {
            Some(txn) => Step::Done(txn.abandon(&reason)),
            None if close => Step::Close,
            None => Step::Done(Outcome::default()),
        }
    }
}
