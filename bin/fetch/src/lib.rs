//! mxa-fetch: fetches mail from POP3 and IMAP servers and hands each
//! message to an MDA, a Maildir or mxa's spool, exactly once: a message is
//! delivered, then recorded in the account's state ([`mxa_fetch_lib::state`]),
//! and only then deleted or flagged on the server.
//!
//! Modules: [`args`] (the command line), [`net`] (TCP and TLS),
//! [`pop3`] and [`imap`] (one run of each protocol), [`deliver`] (the
//! three targets and the `Received:` line), [`error`] (why a run stopped,
//! and its exit status). [`run`] is what `main` calls.

pub mod args;
pub mod deliver;
pub mod error;
pub mod imap;
pub mod net;
pub mod pipeline;
pub mod pop3;

use std::cell::Cell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use mxa_cli::exit;
use mxa_config::Config;
use mxa_fetch_lib::url::{Protocol, Url};

use args::Args;
use deliver::Deliverer;
use error::{Error, worse};

/// The program's name in logs.
pub const PROGRAM: &str = "mxa-fetch";
/// How often `--idle` polls a POP3 account (POP3 has no IDLE).
const POP3_POLL: Duration = Duration::from_secs(5 * 60);

/// One account, ready to fetch.
#[derive(Debug)]
pub struct Account {
    /// The `[[fetch]]` name; None for a URL given on the command line.
    pub name: Option<String>,
    /// The server and login.
    pub url: Url,
    /// The password.
    pub password: String,
    /// Leave messages on the server (IMAP: marked `\Seen`).
    pub keep: bool,
    /// IMAP folders, at least one.
    pub folders: Vec<String>,
    /// IMAP: move delivered messages here instead of deleting them.
    pub move_to: Option<String>,
    /// Wait with IDLE.
    pub idle: bool,
    /// Where messages go.
    pub deliverer: std::sync::Arc<Deliverer>,
    /// The folder of this account's state files.
    pub state_dir: PathBuf,
}

impl Account {
    fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.url.to_string())
    }

    /// Logs one event of this account.
    pub fn log(&self, pairs: &[(&str, &dyn std::fmt::Display)]) {
        let label = self.label();
        let mut all: Vec<(&str, &dyn std::fmt::Display)> = vec![("account", &label)];
        all.extend_from_slice(pairs);
        mxa_cli::log(PROGRAM, &all);
    }

    /// The progress line of a run (unless `-q`).
    pub fn report(&self, opts: &Options, c: &Counts) {
        if opts.quiet {
            return;
        }
        let url = self.url.to_string();
        let server: &[(&str, &dyn std::fmt::Display)] = match self.name {
            Some(_) => &[("server", &url)],
            None => &[],
        };
        let mut pairs = server.to_vec();
        pairs.extend_from_slice(&[
            ("new", &c.new as &dyn std::fmt::Display),
            ("delivered", &c.delivered),
            ("failed", &c.failed),
            ("deferred", &c.deferred),
        ]);
        self.log(&pairs);
    }
}

/// Settings of the whole run.
#[derive(Debug)]
pub struct Options {
    /// TLS client configuration.
    pub tls: net::Tls,
    /// `--no-starttls`: plain schemes stay in clear.
    pub no_starttls: bool,
    /// `-q`.
    pub quiet: bool,
    /// `-v`: one line per delivered message.
    pub verbose: bool,
    /// Our name, for `Received:`.
    pub hostname: String,
}

/// What one run of an account did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Messages not delivered before.
    pub new: usize,
    /// Delivered now.
    pub delivered: usize,
    /// Refused by the MDA (or the server) for good; left on the server.
    pub failed: usize,
    /// Deferred by the MDA: the run stopped there.
    pub deferred: usize,
    /// IMAP folders held by a UIDVALIDITY change, or that cannot be
    /// selected.
    pub held: usize,
}

impl Counts {
    /// The exit status these counts call for.
    pub fn exit_code(&self) -> i32 {
        let mut code = exit::OK;
        if self.deferred > 0 {
            code = worse(code, exit::TEMPFAIL);
        }
        if self.failed > 0 {
            code = worse(code, exit::DATAERR);
        }
        if self.held > 0 {
            code = worse(code, exit::UNAVAILABLE);
        }
        code
    }
}

/// A progress bar on a terminal, for large first fetches.
#[derive(Debug)]
pub struct Progress {
    label: Option<String>,
    total: usize,
    shown: Cell<usize>,
}

impl Progress {
    /// Shown when stderr is a terminal, `-q` is off and there are at least
    /// 100 messages.
    pub fn new(acct: &Account, opts: &Options, total: usize) -> Progress {
        let on = !opts.quiet && total >= 100 && std::io::stderr().is_terminal();
        Progress {
            label: on.then(|| acct.label()),
            total,
            shown: Cell::new(usize::MAX),
        }
    }

    /// `n` messages handled.
    pub fn tick(&self, n: usize) {
        let Some(label) = &self.label else { return };
        let pct = n * 100 / self.total.max(1);
        if pct != self.shown.get() {
            self.shown.set(pct);
            let bar = "#".repeat(pct / 4);
            eprint!("\r{PROGRAM}: {label} [{bar:<25}] {n}/{}", self.total);
        }
    }

    /// Ends the bar's line.
    pub fn done(&self) {
        if self.label.is_some() && self.shown.get() != usize::MAX {
            eprintln!();
        }
    }
}

/// Runs `mxa-fetch` and returns its exit status.
pub fn run(args: Args) -> i32 {
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{PROGRAM}: {e}");
            return exit::CONFIG;
        }
    };
    // No process reads the network as root (SECURITY.md): the password
    // command, the Maildir, the state and every connection belong to the
    // `user` account.
    if let Err(e) = drop_root(&config) {
        eprintln!("{PROGRAM}: {e}");
        return exit::NOPERM;
    }
    if args.insecure {
        mxa_cli::log(
            PROGRAM,
            &[
                ("event", &"insecure"),
                (
                    "warning",
                    &"--insecure: server certificates are NOT verified; anyone on the path can read the mail and the password",
                ),
            ],
        );
    }
    let tls = match net::Tls::new(args.ca.as_deref(), args.insecure) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{PROGRAM}: --ca: {e}");
            return exit::CONFIG;
        }
    };
    let accounts = match args::accounts(&args, &config) {
        Ok(a) => a,
        Err((code, msg)) => {
            eprintln!("{PROGRAM}: {msg}");
            return code;
        }
    };
    let opts = Options {
        tls,
        no_starttls: args.no_starttls,
        quiet: args.quiet,
        verbose: args.verbose,
        hostname: config.hostname.clone(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{PROGRAM}: {e}");
            return exit::SOFTWARE;
        }
    };
    let idle = args.idle || (!args.once && accounts.iter().any(|a| a.idle));
    rt.block_on(async {
        if idle {
            let runs = accounts.iter().map(|a| idle_account(a, &opts));
            futures_util::future::join_all(runs)
                .await
                .into_iter()
                .fold(exit::OK, worse)
        } else {
            let mut code = exit::OK;
            for a in &accounts {
                code = worse(code, once(a, &opts).await);
            }
            code
        }
    })
}

/// One run of one account; its exit status.
async fn once(acct: &Account, opts: &Options) -> i32 {
    let mut counts = Counts::default();
    let r = match acct.url.protocol {
        Protocol::Pop3 => pop3::fetch(acct, opts, &mut counts).await,
        Protocol::Imap => imap::fetch(acct, opts, &mut counts).await,
    };
    acct.report(opts, &counts);
    match r {
        Ok(()) => counts.exit_code(),
        Err(e) => {
            acct.log(&[("event", &"error"), ("error", &e)]);
            worse(counts.exit_code(), e.exit_code())
        }
    }
}

/// `--idle` for one account: IMAP waits with IDLE, POP3 polls.
async fn idle_account(acct: &Account, opts: &Options) -> i32 {
    match acct.url.protocol {
        Protocol::Imap => {
            let e: Error = imap::idle(acct, opts).await;
            acct.log(&[("event", &"error"), ("error", &e)]);
            e.exit_code()
        }
        Protocol::Pop3 => loop {
            let code = once(acct, opts).await;
            if ![exit::OK, exit::TEMPFAIL, exit::DATAERR, error::PROTOCOL].contains(&code) {
                return code;
            }
            tokio::time::sleep(POP3_POLL).await;
        },
    }
}

/// Becomes the config's `user` account when running as root (a no-op
/// otherwise), before anything else is read or run.
fn drop_root(config: &Config) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    // The caller's HOME would name root's state folder.
    if config.file.is_none() {
        return Err("started as root without a config file: mxa-fetch never reads the network as root, and has no `user` account to become; give -c FILE (it becomes its `user`, state under its spool) or run it as the mailbox owner".into());
    }
    mxa_daemon::drop_root(&config.user).map_err(|e| {
        format!("started as root: {e}; mxa-fetch never reads the network as root; run it as the mailbox owner")
    })
}

/// Runs a password command: the first line of its output.
pub fn password_from(cmd: &str) -> Result<String, String> {
    let words = mxa_cli::split_words(cmd)?;
    let Some(prog) = words.first() else {
        return Err("the password command is empty".into());
    };
    let out = std::process::Command::new(prog)
        .args(&words[1..])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {prog:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the password command {prog:?} failed: {}",
            out.status
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").to_string())
}
