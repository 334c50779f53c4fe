//! Why an account's run ended early, and the exit status each reason
//! gives (sysexits(3), as mxa-fetch(1) lists them).

use mxa_cli::exit;

/// EX_PROTOCOL of sysexits(3): the server broke the protocol.
pub const PROTOCOL: i32 = 76;

/// Why a session ended before its work was done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection failed, was cut or timed out; the server said "try
    /// later". Nothing is lost: the next run goes on.
    #[error("{0}")]
    Temporary(String),
    /// The certificate did not verify, or the server offers no STARTTLS.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server refused the login.
    #[error("login refused: {0}")]
    Auth(String),
    /// The server said something that is not the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The state file cannot be read or written: fetching on could deliver
    /// twice, so the account stops.
    #[error("state: {0}")]
    State(#[from] mxa_fetch_lib::state::Error),
    /// No password, an unusable MDA command.
    #[error("{0}")]
    Config(String),
    /// The Maildir to write cannot be created (EX_CANTCREAT).
    #[error("{0}")]
    CantCreate(String),
}

impl Error {
    /// The exit status.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Temporary(_) => exit::TEMPFAIL,
            Error::Tls(_) => exit::UNAVAILABLE,
            Error::Auth(_) => exit::NOPERM,
            Error::Protocol(_) => PROTOCOL,
            Error::State(_) => exit::IOERR,
            Error::Config(_) => exit::CONFIG,
            Error::CantCreate(_) => exit::CANTCREAT,
        }
    }

    /// Whether `--idle` should reconnect after it (with back-off).
    pub fn is_temporary(&self) -> bool {
        matches!(self, Error::Temporary(_) | Error::Protocol(_))
    }
}

impl From<async_imap::error::Error> for Error {
    fn from(e: async_imap::error::Error) -> Error {
        use async_imap::error::Error as E;
        match e {
            E::Io(e) => Error::Temporary(format!("IMAP: {e}")),
            E::ConnectionLost => Error::Temporary("IMAP: connection lost".into()),
            E::No(m) => Error::Temporary(format!("IMAP: NO {m}")),
            e => Error::Protocol(format!("IMAP: {e}")),
        }
    }
}

/// Exit statuses, most serious first: a run over several accounts exits
/// with the first of these that any account ended with.
pub const SEVERITY: [i32; 9] = [
    exit::CONFIG,
    exit::CANTCREAT,
    exit::IOERR,
    exit::NOPERM,
    exit::UNAVAILABLE,
    PROTOCOL,
    exit::DATAERR,
    exit::TEMPFAIL,
    exit::OK,
];

/// The more serious of two exit statuses.
pub fn worse(a: i32, b: i32) -> i32 {
    let rank = |c| SEVERITY.iter().position(|&s| s == c).unwrap_or(0);
    if rank(a) <= rank(b) { a } else { b }
}
