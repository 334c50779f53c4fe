//! The command line: `mxa-fetch [-c FILE] [--once | --idle] [ACCOUNT...]`
//! and `mxa-fetch URL (--mda CMD | --maildir DIR | --queue-to ADDRESS)`.

use std::path::PathBuf;

use clap::Parser;
use mxa_cli::exit;
use mxa_config::{Config, FetchTarget};
use mxa_fetch_lib::url::Url;

use crate::Account;
use crate::deliver::{Deliverer, state_dir};

/// Fetches mail from POP3 and IMAP servers and delivers each message once.
#[derive(Debug, Parser)]
#[command(name = "mxa-fetch", version)]
pub struct Args {
    /// The config file (else $MXA_CONFIG, else /etc/mxa/mxa.toml).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// One run, even for accounts with idle = true.
    #[arg(long, conflicts_with = "idle")]
    pub once: bool,
    /// Stay up: IMAP accounts wait with IDLE, POP3 accounts are polled.
    #[arg(long)]
    pub idle: bool,
    /// Deliver by running CMD with each message on stdin.
    #[arg(long, value_name = "CMD", conflicts_with_all = ["maildir", "queue_to"])]
    pub mda: Option<String>,
    /// Deliver into the Maildir DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "queue_to")]
    pub maildir: Option<PathBuf>,
    /// Queue each message in mxa's spool for ADDRESS.
    #[arg(long = "queue-to", value_name = "ADDRESS")]
    pub queue_to: Option<String>,
    /// Run CMD for the password (its first line of output); else $MXA_PASSWORD.
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,
    /// Trust the CA certificates in FILE (PEM) besides the system's.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Do not verify server certificates (tests only).
    #[arg(long)]
    pub insecure: bool,
    /// On pop3:// and imap://, do not start TLS: log in in clear.
    #[arg(long)]
    pub no_starttls: bool,
    /// Leave the messages on the server.
    #[arg(long, conflicts_with = "move_to")]
    pub keep: bool,
    /// IMAP: move each delivered message into FOLDER instead of deleting it.
    #[arg(long = "move-to", value_name = "FOLDER")]
    pub move_to: Option<String>,
    /// IMAP folder to fetch (repeatable); default the URL's, else INBOX.
    #[arg(long = "folder", value_name = "FOLDER")]
    pub folders: Vec<String>,
    /// No progress lines.
    #[arg(short, long)]
    pub quiet: bool,
    /// A line for each message delivered.
    #[arg(short, long)]
    pub verbose: bool,
    /// A URL (pop3s://user@host, imaps://user@host/INBOX, ...), or names of
    /// [[fetch]] accounts (default: all).
    #[arg(value_name = "URL | ACCOUNT")]
    pub targets: Vec<String>,
}

/// The target the flags name, if any.
fn flag_target(a: &Args) -> Result<Option<FetchTarget>, (i32, String)> {
    Ok(match (&a.mda, &a.maildir, &a.queue_to) {
        (Some(c), _, _) => Some(FetchTarget::Mda(c.clone())),
        (_, Some(d), _) => {
            let d = std::path::absolute(d).map_err(|e| (exit::USAGE, format!("--maildir: {e}")))?;
            Some(FetchTarget::Maildir(d))
        }
        (_, _, Some(q)) => {
            if !q.contains('@') {
                return Err((exit::USAGE, format!("--queue-to: {q:?} is not an address")));
            }
            Some(FetchTarget::QueueTo(q.clone()))
        }
        _ => None,
    })
}

/// The password: `command` (the account's, else `--password-command`),
/// else `$MXA_PASSWORD`.
fn password(command: Option<&str>) -> Result<String, (i32, String)> {
    match command {
        Some(c) => crate::password_from(c).map_err(|e| (exit::CONFIG, format!("password: {e}"))),
        None => std::env::var("MXA_PASSWORD").map_err(|_| {
            (
                exit::USAGE,
                "no password: give --password-command CMD, password_command in the account, or MXA_PASSWORD"
                    .to_string(),
            )
        }),
    }
}

/// The accounts to fetch, from the operands, the flags and the config.
pub fn accounts(a: &Args, config: &Config) -> Result<Vec<Account>, (i32, String)> {
    let base = state_dir(config).map_err(|e| (exit::CONFIG, e.to_string()))?;
    let target = flag_target(a)?;
    let mk = |name: Option<String>,
              url: Url,
              folders: &[String],
              keep: bool,
              move_to: Option<&String>,
              idle: bool,
              target: &FetchTarget,
              pw: Option<&str>|
     -> Result<Account, (i32, String)> {
        let mut url = url;
        if url.user.is_empty() {
            // As fetchmail does: the login defaults to the local user.
            url.user = ["USER", "LOGNAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
                .ok_or((
                    exit::USAGE,
                    format!("{url}: no user in the URL, and neither USER nor LOGNAME is set"),
                ))?;
        }
        let folders = if !a.folders.is_empty() {
            a.folders.clone()
        } else if !folders.is_empty() {
            folders.to_vec()
        } else {
            vec![url.folder.clone().unwrap_or_else(|| "INBOX".into())]
        };
        let move_to = a.move_to.clone().or_else(|| move_to.cloned());
        if move_to.is_some() && url.protocol != mxa_fetch_lib::url::Protocol::Imap {
            return Err((exit::USAGE, format!("{url}: --move-to is for IMAP only")));
        }
        if move_to.is_some() && (keep || a.keep) {
            return Err((exit::USAGE, "--move-to and keep exclude each other".into()));
        }
        let deliverer = Deliverer::new(target, config, &url.user)
            .map_err(|e| (e.exit_code(), e.to_string()))?;
        let state_dir = match &name {
            Some(n) => base.join(n),
            None => base.clone(),
        };
        Ok(Account {
            name,
            password: password(pw.or(a.password_command.as_deref()))?,
            url,
            keep: keep || a.keep,
            folders,
            move_to,
            idle,
            deliverer: std::sync::Arc::new(deliverer),
            state_dir,
        })
    };
    if let Some(first) = a.targets.first().filter(|t| t.contains("://")) {
        if a.targets.len() > 1 {
            return Err((exit::USAGE, "give one URL, or account names".into()));
        }
        let url = Url::parse(first).map_err(|e| (exit::USAGE, e.to_string()))?;
        let Some(target) = target else {
            return Err((
                exit::USAGE,
                "a URL needs --mda CMD, --maildir DIR or --queue-to ADDRESS".into(),
            ));
        };
        return Ok(vec![mk(
            None,
            url,
            &[],
            false,
            None,
            a.idle,
            &target,
            None,
        )?]);
    }
    if config.fetch.is_empty() {
        return Err((
            exit::USAGE,
            "nothing to fetch: give a URL, or add [[fetch]] accounts to the config".into(),
        ));
    }
    for t in &a.targets {
        if !config.fetch.iter().any(|f| &f.name == t) {
            return Err((exit::USAGE, format!("no [[fetch]] account named {t:?}")));
        }
    }
    config
        .fetch
        .iter()
        .filter(|f| a.targets.is_empty() || a.targets.contains(&f.name))
        .map(|f| {
            // The config's URL was checked when it was read; this parser
            // is stricter only about things the config refused already.
            let url = Url::parse(&f.url).map_err(|e| (exit::CONFIG, e.to_string()))?;
            let target = target.as_ref().unwrap_or(&f.target);
            mk(
                Some(f.name.clone()),
                url,
                &f.folders,
                f.keep,
                f.move_to.as_ref(),
                f.idle,
                target,
                f.password_command.as_deref(),
            )
        })
        .collect()
}
