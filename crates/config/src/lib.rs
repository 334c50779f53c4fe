//! mxa-config: the one configuration file of mxa, `mxa.toml` (see
//! mxa.toml(5) and DESIGN.md). Main types: [`Config`] and its sections,
//! [`Users`] (the users file), [`ConfigError`].
//!
//! Lookup: `-c FILE`, else `$MXA_CONFIG`, else `/etc/mxa/mxa.toml`; with
//! none present the defaults apply. A file named by `-c` or `MXA_CONFIG`
//! that is missing is an error. Every error names the file, the line, the
//! key and what was expected; programs exit 78 (EX_CONFIG) on it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default config file.
pub const DEFAULT_FILE: &str = "/etc/mxa/mxa.toml";

/// A refused configuration.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {key}: {msg}", file.display())]
pub struct ConfigError {
    /// The file (config or users file).
    pub file: PathBuf,
    /// 1-based line; 0 when the error is about the file as a whole.
    pub line: usize,
    /// The key (`smtpd.timeout`, `fetch[1].url`), or what stands for it.
    pub key: String,
    /// What was expected.
    pub msg: String,
}

/// `bare_lf` of `[smtpd]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLf {
    /// Turn a bare LF into CRLF (the default, as Postfix does).
    Normalize,
    /// Refuse it.
    Reject,
}

/// An IP network (`127.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// The network address.
    pub addr: std::net::IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

/// `relayhost` of `[queue]`, Postfix's syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayhost {
    /// The host name or address.
    pub host: String,
    /// The port (25 when not given).
    pub port: u16,
    /// False when the host was written in brackets: no MX lookup.
    pub mx_lookup: bool,
}

/// The whole configuration, defaults applied and paths made absolute.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// HELO name, `Received:`, bounces. Default: the system's host name.
    pub hostname: String,
    /// Local domains, lower-cased.
    pub domains: Vec<String>,
    /// The users file.
    pub users: Option<PathBuf>,
    /// The aliases file.
    pub aliases: Option<PathBuf>,
    /// The spool folder. Default `/var/spool/mxa`.
    pub spool: PathBuf,
    /// Maildirs of users whose entry names none. Default `/var/mail`.
    pub mailroot: PathBuf,
    /// Account daemons run as when started as root. Default `mxa`.
    pub user: String,
    /// `[smtpd]`.
    pub smtpd: Smtpd,
    /// `[queue]`.
    pub queue: Queue,
    /// `[dns]`.
    pub dns: Dns,
    /// `[pop3d]`.
    pub pop3d: Pop3d,
    /// `[deliver]`.
    pub deliver: Deliver,
    /// `[[fetch]]`.
    pub fetch: Vec<Fetch>,
}

/// `[smtpd]`.
#[derive(Debug, Clone)]
pub struct Smtpd {
    /// MTA listeners. Default `["[::]:25"]`.
    pub listen: Vec<SocketAddr>,
    /// Submission (STARTTLS) listeners. Default `["[::]:587"]`.
    pub submission: Vec<SocketAddr>,
    /// Implicit-TLS submission listeners. Default `["[::]:465"]`.
    pub submissions: Vec<SocketAddr>,
    /// Certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Default 35M.
    pub max_message_size: u64,
    /// Default 100.
    pub max_recipients: u32,
    /// Default 5m.
    pub timeout: Duration,
    /// Default 1000.
    pub max_connections: u32,
    /// Default 50.
    pub max_connections_per_client: u32,
    /// Default `127.0.0.0/8`, `::1/128`.
    pub trusted_networks: Vec<IpNet>,
    /// Default normalize.
    pub bare_lf: BareLf,
}

/// `[queue]`.
#[derive(Debug, Clone)]
pub struct Queue {
    /// Default `mxa-deliver`.
    pub mda: String,
    /// Default none.
    pub relayhost: Option<Relayhost>,
    /// Default none.
    pub relayhost_password_file: Option<PathBuf>,
    /// Default 25.
    pub smtp_port: u16,
    /// Domain (lower-cased) → `host:port`.
    pub routes: BTreeMap<String, (String, u16)>,
    /// Default 5d.
    pub lifetime: Duration,
    /// Default 4h.
    pub delay_warning: Duration,
    /// Default `["en", "fr"]`.
    pub bounce_languages: Vec<String>,
    /// Deliveries at once (local or remote), and so SMTP connections in
    /// use at once; idle cached connections count too. Default 20.
    pub max_connections: usize,
    /// SMTP connections at once to one destination (a domain's mail
    /// servers, a route, the relayhost). Default 10.
    pub max_connections_per_destination: usize,
}

/// `[dns]`.
#[derive(Debug, Clone, Default)]
pub struct Dns {
    /// Empty: the system resolver. Port 53 when not given.
    pub nameservers: Vec<SocketAddr>,
}

/// `[deliver]`: mxa-deliver's settings.
#[derive(Debug, Clone)]
pub struct Deliver {
    /// Separates the user from the extension (`user+folder`), as Postfix's
    /// `recipient_delimiter`. Default `+`; empty turns subaddressing off.
    pub recipient_delimiter: String,
    /// A spam classifier run on every message (`spamc`, `bogofilter -p -e`,
    /// `rspamc --mime`). Default none.
    pub filter: Option<String>,
    /// Longest run of a filter or a `.forward` `|command`. Default 10m.
    pub command_timeout: Duration,
}

/// `[pop3d]`.
#[derive(Debug, Clone)]
pub struct Pop3d {
    /// Default `["[::]:110"]`.
    pub listen: Vec<SocketAddr>,
    /// Default `["[::]:995"]`.
    pub pop3s: Vec<SocketAddr>,
}

/// Where `mxa-fetch` hands a fetched message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchTarget {
    /// A command, as `[queue] mda`.
    Mda(String),
    /// A Maildir.
    Maildir(PathBuf),
    /// The spool, for this address.
    QueueTo(String),
}

/// One `[[fetch]]` table.
#[derive(Debug, Clone)]
pub struct Fetch {
    /// Unique name of the account.
    pub name: String,
    /// `pop3://`, `pop3s://`, `imap://` or `imaps://` URL.
    pub url: String,
    /// Command printing the password.
    pub password_command: Option<String>,
    /// Exactly one of mda, maildir, queue_to; default mda `mxa-deliver`.
    pub target: FetchTarget,
    /// Keep messages on the server. Default false.
    pub keep: bool,
    /// IMAP folders to fetch. Default: the URL's folder, else INBOX.
    pub folders: Vec<String>,
    /// Wait with IMAP IDLE. Default false.
    pub idle: bool,
    /// IMAP: move delivered messages into this folder rather than delete
    /// them. Default none.
    pub move_to: Option<String>,
}

/// One line of the users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// The address, as written (the login).
    pub address: String,
    /// crypt(3)-style hash.
    pub hash: String,
    /// The Maildir, if given (absolute).
    pub maildir: Option<PathBuf>,
    /// Where `.forward` is read, if given (absolute).
    pub home: Option<PathBuf>,
}

/// The users file.
#[derive(Debug, Clone, Default)]
pub struct Users {
    /// The entries, in file order.
    pub entries: Vec<UserEntry>,
}

mod parse;
mod units;
mod users;

pub use units::{format_duration, parse_duration, parse_size};

impl Config {
    /// Loads the configuration: `explicit` (from `-c`), else `$MXA_CONFIG`,
    /// else [`DEFAULT_FILE`] if it exists, else the defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let env = std::env::var_os("MXA_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        match (explicit, env) {
            (Some(file), _) => Config::from_file(file),
            // A file that cannot be read is named by where it came from.
            (None, Some(file)) => Config::from_file(&file).map_err(|mut e| {
                if e.line == 0 && e.file == file {
                    e.key = "MXA_CONFIG".into();
                }
                e
            }),
            (None, None) if Path::new(DEFAULT_FILE).exists() => {
                Config::from_file(Path::new(DEFAULT_FILE))
            }
            (None, None) => Ok(Config::default()),
        }
    }

    /// Reads and validates one file.
    pub fn from_file(file: &Path) -> Result<Config, ConfigError> {
        parse::from_file(file)
    }

    /// Parses `text` as if read from `file` (relative paths resolve against
    /// `file`'s folder; named files must exist).
    pub fn from_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
        parse::from_str(text, file)
    }

    /// Whether `domain` is local (case-insensitive).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The users file, read now (it may change while a daemon runs).
    pub fn load_users(&self) -> Result<Users, ConfigError> {
        match &self.users {
            Some(p) => Users::load(p),
            None => Ok(Users::default()),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        parse::defaults()
    }
}
