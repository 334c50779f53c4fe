//! One delivery, from the message on stdin to the files written.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mxa_config::Config;
use mxa_durable::Durable;
use mxa_maildir::Maildir;
use mxa_message::Parsed;

use crate::args::Args;
use crate::forward::{self, Target};
use crate::target::{self, Mailbox, Recipient};
use crate::{Failure, command, exit, filter, headers, privs};

/// How long an mbox lock is waited for before the delivery is deferred.
const MBOX_LOCK_WAIT: Duration = Duration::from_secs(30);

/// The environment Postfix's local(8) and pipe(8) set, read once.
#[derive(Debug, Default, Clone)]
pub struct Env {
    /// `SENDER`.
    pub sender: Option<String>,
    /// `RECIPIENT`.
    pub recipient: Option<String>,
    /// `ORIGINAL_RECIPIENT`.
    pub original_recipient: Option<String>,
    /// `EXTENSION`.
    pub extension: Option<String>,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// `USER`.
    pub user: Option<String>,
}

impl Env {
    /// Reads the process environment.
    pub fn from_process() -> Env {
        Env::from_vars(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `var`. Without `RECIPIENT`, `LOCAL`
    /// and `DOMAIN` together make the recipient (`LOCAL@DOMAIN`), as
    /// local(8) sets them for a mailbox_command.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Env {
        let nonempty = |k: &str| var(k).filter(|v| !v.is_empty());
        let recipient = nonempty("RECIPIENT").or_else(|| {
            let (l, d) = (nonempty("LOCAL")?, nonempty("DOMAIN")?);
            Some(format!("{l}@{d}"))
        });
        Env {
            sender: var("SENDER"),
            recipient,
            original_recipient: var("ORIGINAL_RECIPIENT"),
            extension: var("EXTENSION"),
            home: var("HOME").filter(|h| !h.is_empty()).map(PathBuf::from),
            user: var("USER").or_else(|| var("LOGNAME")),
        }
    }
}

#[cfg(test)]
mod env_tests {
    use super::Env;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_vars(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        })
    }

    #[test]
    fn recipient_from_recipient_or_local_and_domain() {
        let e = env(&[
            ("RECIPIENT", "a@x.org"),
            ("LOCAL", "b"),
            ("DOMAIN", "y.org"),
        ]);
        assert_eq!(e.recipient.as_deref(), Some("a@x.org"));
        let e = env(&[("LOCAL", "b+ext"), ("DOMAIN", "y.org")]);
        assert_eq!(e.recipient.as_deref(), Some("b+ext@y.org"));
        let e = env(&[("RECIPIENT", ""), ("LOCAL", "b")]);
        assert_eq!(e.recipient, None);
    }
}

/// Everything one delivery needs, worked out before any mailbox file is
/// touched.
struct Job {
    config: Config,
    sender: String,
    rcpt: Option<Recipient>,
    mailbox: Mailbox,
    message: Parsed,
    env: Env,
}

/// Delivers the message read from `input`; returns the files written.
pub fn run(args: &Args, env: Env, input: impl Read) -> Result<Vec<PathBuf>, Failure> {
    let config = Config::load(args.config.as_deref())?;
    let raw = read_all(input, config.smtpd.max_message_size.saturating_mul(2))?;
    let from_line = from_line_sender(&raw);
    let sender = args
        .sender
        .clone()
        .or_else(|| env.sender.clone())
        .or(from_line)
        .unwrap_or_default();
    let sender = sender
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    let address = args.recipient.clone().or_else(|| env.recipient.clone());
    let rcpt = match &address {
        Some(a) => Some(Recipient::parse(
            a,
            &config.deliver.recipient_delimiter,
            env.extension.clone(),
        )?),
        None if args.maildir.is_some() => None,
        None => {
            return Err(Failure::new(
                exit::USAGE,
                "no recipient: give -a ADDRESS, $RECIPIENT, or a MAILDIR",
            ));
        }
    };
    let mut message = Parsed::parse_owned(raw);
    headers::prepare(&mut message, &sender, address.as_deref()).map_err(|_| {
        let who = address.clone().unwrap_or_default();
        Failure::new(exit::DATAERR, format!("mail loop: the message was already delivered to {who} (Delivered-To:); nothing written"))
    })?;
    let mailbox = match (&args.maildir, &rcpt) {
        (Some(m), _) => Mailbox {
            maildir: m.clone(),
            home: None,
            account: None,
        },
        (None, Some(r)) => target::resolve(
            &config,
            &config.load_users()?,
            r,
            env.home.clone(),
            env.user.clone(),
        )?,
        (None, None) => unreachable_no_target()?,
    };
    let uid = privs::become_owner(&mailbox)?;
    let mut job = Job {
        config,
        sender,
        rcpt,
        mailbox,
        message,
        env,
    };
    let filter_cmd = args
        .filter
        .clone()
        .or_else(|| job.config.deliver.filter.clone())
        // `--filter ""` turns a configured filter off for this delivery.
        .filter(|f| !f.trim().is_empty());
    let mut spam = false;
    if let Some(cmd) = filter_cmd {
        let v = filter::run(&cmd, &job.message, job.config.deliver.command_timeout)?;
        job.message = v.message;
        spam = v.spam;
    }
    let forward = match (&job.mailbox.home, args.no_forward || args.maildir.is_some()) {
        (Some(home), false) => forward::read(home, uid),
        _ => None,
    };
    match forward {
        Some(targets) => job.forward(&targets, args, spam),
        None => job.own(args, spam).map(|p| vec![p]),
    }
}

fn unreachable_no_target() -> Result<Mailbox, Failure> {
    Err(Failure::new(exit::USAGE, "no recipient and no MAILDIR"))
}

/// Reads the message, at most `limit` bytes (twice `max_message_size`:
/// room for the trace fields MTAs add, and no unbounded memory).
fn read_all(input: impl Read, limit: u64) -> Result<Vec<u8>, Failure> {
    let mut raw = Vec::new();
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(|e| Failure::new(exit::TEMPFAIL, format!("reading the message: {e}")))?;
    if raw.len() as u64 > limit {
        let msg = format!("message larger than {limit} bytes; nothing written");
        return Err(Failure::new(exit::DATAERR, msg));
    }
    if raw.is_empty() {
        return Err(Failure::new(
            exit::DATAERR,
            "empty message on standard input; nothing written",
        ));
    }
    Ok(mxa_message::to_lf_owned(raw))
}

/// The address of a leading mbox `From ` line (Postfix's mailbox_command
/// gets one), used as the sender when none is given.
fn from_line_sender(raw: &[u8]) -> Option<String> {
    let line = raw.strip_prefix(b"From ")?;
    let end = line.iter().position(|&b| b == b' ' || b == b'\n')?;
    let s = String::from_utf8_lossy(&line[..end]).into_owned();
    Some(if s == "MAILER-DAEMON" {
        String::new()
    } else {
        s
    })
}

impl Job {
    /// The recipient's own mailbox: `.Junk` for spam, else `-m FOLDER`
    /// (created on demand), else the extension's folder when it exists.
    fn own(&self, args: &Args, spam: bool) -> Result<PathBuf, Failure> {
        let top = Maildir::new(&self.mailbox.maildir);
        top.create()?;
        let dir = if spam {
            top.create_folder("Junk")?
        } else if let Some(f) = &args.folder {
            top.create_folder(f).map_err(|e| match e {
                mxa_maildir::Error::BadFolder(_) => {
                    Failure::new(exit::USAGE, format!("-m {f}: {e}"))
                }
                e => Failure::from(e),
            })?
        } else {
            self.extension_folder(&top).unwrap_or(top)
        };
        let header = self.message.header_bytes();
        Ok(dir.deliver_parts(&[&header, &self.message.body], &Durable::default())?)
    }

    /// `user+folder`: `.folder` when it exists (any case), never created
    /// from what a sender wrote.
    fn extension_folder(&self, top: &Maildir) -> Option<Maildir> {
        let ext = self.rcpt.as_ref()?.extension.as_deref()?;
        let exact = top.folder(ext).ok().filter(Maildir::exists);
        exact.or_else(|| {
            let want = format!(".{ext}").to_lowercase();
            let found = std::fs::read_dir(top.root())
                .ok()?
                .flatten()
                .find(|e| e.file_name().to_string_lossy().to_lowercase() == want)?;
            let name = found.file_name().to_string_lossy()[1..].to_string();
            top.folder(&name).ok().filter(Maildir::exists)
        })
    }

    /// Delivers to every target of a `.forward`. All are tried; if any
    /// failed, the worst failure is returned (temporary first, so the MTA
    /// retries; targets that succeeded may then get a second copy).
    fn forward(
        &self,
        targets: &[Target],
        args: &Args,
        spam: bool,
    ) -> Result<Vec<PathBuf>, Failure> {
        let mut written = Vec::new();
        let mut failures: Vec<Failure> = Vec::new();
        let bytes = self.message.to_bytes();
        for t in targets {
            let r = match t {
                Target::Own => self.own(args, spam).map(Some),
                Target::Maildir(p) => {
                    let m = Maildir::new(p);
                    m.create()
                        .and_then(|()| m.deliver(&bytes, &Durable::default()))
                        .map(Some)
                        .map_err(Failure::from)
                }
                Target::Mbox(p) => {
                    mxa_maildir::mbox::append(p, &self.sender, mxa_now(), &bytes, MBOX_LOCK_WAIT)
                        .map(|()| Some(p.clone()))
                        .map_err(Failure::from)
                }
                Target::Command(c) => self.pipe(c, &bytes).map(|()| None),
                Target::Address(a) => self.resend(a, &bytes).map(|()| None),
            };
            match r {
                Ok(p) => written.extend(p),
                Err(f) => {
                    let target = describe(t);
                    let pairs: [(&str, &dyn std::fmt::Display); 3] = [
                        ("event", &"forward-failed"),
                        ("target", &target),
                        ("reason", &f.msg),
                    ];
                    mxa_cli::log("mxa-deliver", &pairs);
                    failures.push(f);
                }
            }
        }
        let worst = failures
            .iter()
            .position(|f| f.code == exit::TEMPFAIL)
            .or((!failures.is_empty()).then_some(0));
        match worst {
            Some(i) => Err(failures.swap_remove(i)),
            None => Ok(written),
        }
    }

    /// `|command`: through `sh -c`, as sendmail and Postfix run them, as the
    /// user, with Postfix's environment and a deadline.
    fn pipe(&self, cmd: &str, bytes: &[u8]) -> Result<(), Failure> {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(cmd);
        self.set_env(&mut c);
        let out = command::run(&mut c, bytes, self.config.deliver.command_timeout, None)
            .map_err(|e| Failure::new(exit::TEMPFAIL, format!("|{cmd}: {e}")))?;
        match out.status.and_then(|s| s.code()) {
            Some(0) => Ok(()),
            Some(exit::TEMPFAIL) | None => Err(Failure::new(
                exit::TEMPFAIL,
                format!("|{cmd}: {}", out.reason()),
            )),
            Some(_) => Err(Failure::new(
                exit::UNAVAILABLE,
                format!("|{cmd}: {}", out.reason()),
            )),
        }
    }

    /// An address: queued again through mxa-sendmail with the original
    /// envelope sender (SRS comes with a later issue).
    fn resend(&self, to: &str, bytes: &[u8]) -> Result<(), Failure> {
        let prog = mxa_cli::find_program("mxa-sendmail").ok_or_else(|| {
            Failure::new(
                exit::TEMPFAIL,
                "forwarding needs mxa-sendmail, which is not installed",
            )
        })?;
        let mut c = Command::new(prog);
        if let Some(f) = &self.config.file {
            c.arg("-c").arg(f);
        }
        let sender = if self.sender.is_empty() {
            "<>"
        } else {
            self.sender.as_str()
        };
        c.args(["-i", "-f", sender, "--", to]);
        let out = command::run(&mut c, bytes, self.config.deliver.command_timeout, None)
            .map_err(|e| Failure::new(exit::TEMPFAIL, format!("forwarding to {to}: {e}")))?;
        match out.status.and_then(|s| s.code()) {
            Some(0) => Ok(()),
            Some(exit::USAGE | exit::DATAERR) => Err(Failure::new(
                exit::DATAERR,
                format!("forwarding to {to}: {}", out.reason()),
            )),
            _ => Err(Failure::new(
                exit::TEMPFAIL,
                format!("forwarding to {to}: {}", out.reason()),
            )),
        }
    }

    /// Postfix's local(8) environment for commands.
    fn set_env(&self, c: &mut Command) {
        c.env("SENDER", &self.sender);
        if let Some(r) = &self.rcpt {
            let local = r
                .address
                .rsplit_once('@')
                .map_or(r.address.as_str(), |(l, _)| l);
            c.env("RECIPIENT", &r.address)
                .env("LOCAL", local)
                .env("DOMAIN", &r.domain);
            c.env("EXTENSION", r.extension.as_deref().unwrap_or(""));
            c.env("USER", &r.user).env("LOGNAME", &r.user);
        }
        if let Some(o) = &self.env.original_recipient {
            c.env("ORIGINAL_RECIPIENT", o);
        }
        if let Some(h) = &self.mailbox.home {
            c.env("HOME", h);
        }
        if let Some(a) = &self.mailbox.account {
            c.env("USER", &a.name)
                .env("LOGNAME", &a.name)
                .env("SHELL", &a.shell);
        }
    }
}

/// A `.forward` target as its line wrote it.
fn describe(t: &Target) -> String {
    match t {
        Target::Address(a) => a.clone(),
        Target::Command(c) => format!("|{c}"),
        Target::Maildir(p) | Target::Mbox(p) => p.display().to_string(),
        Target::Own => "\\user".into(),
    }
}

fn mxa_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_line_gives_the_sender() {
        assert_eq!(
            from_line_sender(b"From bob@x.org  Mon Nov 23 18:20:00 2026\nSubject: x\n"),
            Some("bob@x.org".into())
        );
        assert_eq!(
            from_line_sender(b"From MAILER-DAEMON Mon Nov 23 18:20:00 2026\n"),
            Some(String::new())
        );
        assert_eq!(from_line_sender(b"Subject: x\n"), None);
    }
}
