//! Local delivery: the `[queue] mda` command as DESIGN.md defines it, split
//! into words as a shell would and run without one, with `{sender}`,
//! `{recipient}`, `{user}`, `{domain}`, `{extension}` and `{maildir}`
//! replaced and Postfix's environment set. Exit 0 is delivered; 75, a
//! signal or the timeout deferred; any other code failed, with the
//! command's stderr as the reason.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mxa_config::{Config, Users};

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: delivered here (the MDA, a file, a command).
    Delivered,
    /// Accepted by a remote server, with its reply; `dsn` says whether it
    /// offered DSN (RFC 3461), in which case NOTIFY and ORCPT went along and
    /// any success report is that server's to send.
    Relayed {
        /// The server's final reply, with `(from HOST)`.
        reply: String,
        /// The server offered DSN.
        dsn: bool,
    },
    /// Try again later, for this reason.
    Deferred(String),
    /// Will never work, for this reason.
    Failed(String),
}

/// The parts of a local recipient the command line and environment use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The whole address.
    pub recipient: String,
    /// The local part without its extension.
    pub user: String,
    /// The extension (`+ext`), or empty.
    pub extension: String,
    /// The domain, lower-cased.
    pub domain: String,
    /// The Maildir the users file or the mailroot gives.
    pub maildir: PathBuf,
    /// The users-file `home`, if any.
    pub home: Option<PathBuf>,
}

impl Parts {
    /// Takes `recipient` apart with the configured delimiter.
    pub fn new(recipient: &str, config: &Config, users: &Users) -> Parts {
        let (local, domain) = recipient.rsplit_once('@').unwrap_or((recipient, ""));
        let delims = &config.deliver.recipient_delimiter;
        let cut = local
            .find(|c| !delims.is_empty() && delims.contains(c))
            .filter(|&i| i > 0);
        let (user, extension) = match cut {
            Some(i) => (&local[..i], &local[i + 1..]),
            None => (local, ""),
        };
        let domain = domain.to_ascii_lowercase();
        let entry = users.find(&format!("{user}@{domain}"));
        let maildir = entry
            .and_then(|e| e.maildir.clone())
            .unwrap_or_else(|| config.mailroot.join(&domain).join(user));
        Parts {
            recipient: recipient.to_string(),
            user: user.to_string(),
            extension: extension.to_string(),
            domain,
            maildir,
            home: entry.and_then(|e| e.home.clone()),
        }
    }

    fn fill(&self, word: &str, sender: &str) -> String {
        word.replace("{sender}", sender)
            .replace("{recipient}", &self.recipient)
            .replace("{user}", &self.user)
            .replace("{domain}", &self.domain)
            .replace("{extension}", &self.extension)
            .replace("{maildir}", &self.maildir.to_string_lossy())
    }
}

/// The command line for one recipient.
pub fn command_line(config: &Config, parts: &Parts, sender: &str) -> Result<Vec<String>, String> {
    let words = mxa_cli::split_words(&config.queue.mda).map_err(|e| format!("[queue] mda: {e}"))?;
    if words.is_empty() {
        return Err("[queue] mda is empty".into());
    }
    Ok(words.iter().map(|w| parts.fill(w, sender)).collect())
}

/// Runs the MDA for one recipient with the message on stdin.
pub fn deliver(
    config: &Config,
    parts: &Parts,
    sender: &str,
    orig: Option<&str>,
    data: &[u8],
) -> Outcome {
    let words = match command_line(config, parts, sender) {
        Ok(w) => w,
        Err(e) => return Outcome::Deferred(e),
    };
    // A bare program name is looked for beside mxa-queue first, so a build
    // tree or an install prefix uses its own mxa-deliver.
    let prog = if words[0].contains('/') {
        PathBuf::from(&words[0])
    } else {
        mxa_cli::find_program(&words[0]).unwrap_or_else(|| PathBuf::from(&words[0]))
    };
    let mut c = Command::new(prog);
    c.args(&words[1..])
        .env("SENDER", sender)
        .env("RECIPIENT", &parts.recipient)
        .env("ORIGINAL_RECIPIENT", orig.unwrap_or(&parts.recipient))
        .env("LOCAL", &parts.user)
        .env("DOMAIN", &parts.domain)
        .env("EXTENSION", &parts.extension)
        .env("USER", &parts.user);
    if let Some(h) = &parts.home {
        c.env("HOME", h);
    }
    if let Some(f) = &config.file {
        c.env("MXA_CONFIG", f);
    }
    run(&mut c, data, config.deliver.command_timeout)
}

/// Runs `c` with `data` on stdin and classifies how it ended.
pub fn run(c: &mut Command, data: &[u8], timeout: Duration) -> Outcome {
    let mut child = match c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(ch) => ch,
        Err(e) => return Outcome::Deferred(format!("cannot run {:?}: {e}", c.get_program())),
    };
    let mut stdin = child.stdin.take();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&data);
        }
    });
    let err = child.stderr.take().map(|e| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = e.take(4096).read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let _ = writer.join();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string();
    let why = |how: String| if line.is_empty() { how } else { line.clone() };
    match status {
        None => Outcome::Deferred(format!("timed out after {}s", timeout.as_secs())),
        Some(s) => match s.code() {
            Some(0) => Outcome::Delivered,
            Some(75) => Outcome::Deferred(why(s.to_string())),
            None => Outcome::Deferred(why(s.to_string())),
            // sysexits to RFC 3463, so the bounce explains it well.
            Some(code) => Outcome::Failed(format!("{} {}", exit_status(code), why(s.to_string()))),
        },
    }
}

/// The enhanced status code for an MDA's sysexits code.
fn exit_status(code: i32) -> &'static str {
    match code {
        67 => "5.1.1",      // EX_NOUSER: no such mailbox
        65 => "5.6.0",      // EX_DATAERR: the message (e.g. a mail loop)
        77 => "5.7.1",      // EX_NOPERM
        73 | 74 => "5.3.0", // cannot create, I/O error
        _ => "5.3.0",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mda: &str) -> Config {
        let mut c = Config::default();
        c.queue.mda = mda.to_string();
        c.mailroot = PathBuf::from("/var/mail");
        c
    }

    #[test]
    fn placeholders_are_replaced_in_each_word() {
        let c = config(
            "procmail -d {user} -a '{extension}' --to={recipient} {maildir} {domain} -f {sender}",
        );
        let p = Parts::new("bob+lists@Example.org", &c, &Users::default());
        let line = command_line(&c, &p, "alice@x").expect("line");
        assert_eq!(
            line,
            [
                "procmail",
                "-d",
                "bob",
                "-a",
                "lists",
                "--to=bob+lists@Example.org",
                "/var/mail/example.org/bob",
                "example.org",
                "-f",
                "alice@x"
            ]
        );
    }

    #[test]
    fn exit_codes_decide() {
        let t = Duration::from_secs(10);
        let sh = |s: &str| {
            let mut c = Command::new("sh");
            c.arg("-c").arg(s);
            c
        };
        assert_eq!(run(&mut sh("cat >/dev/null"), b"x", t), Outcome::Delivered);
        assert_eq!(
            run(&mut sh("echo 'disk full' >&2; exit 75"), b"x", t),
            Outcome::Deferred("disk full".into())
        );
        assert_eq!(
            run(&mut sh("echo 'no such user' >&2; exit 67"), b"x", t),
            Outcome::Failed("5.1.1 no such user".into())
        );
        assert!(matches!(
            run(&mut sh("kill -9 $$"), b"x", t),
            Outcome::Deferred(_)
        ));
        assert!(
            matches!(run(&mut sh("sleep 5"), b"x", Duration::from_millis(100)), Outcome::Deferred(m) if m.contains("timed out"))
        );
        assert!(matches!(
            run(&mut Command::new("/nonexistent/mda"), b"x", t),
            Outcome::Deferred(_)
        ));
    }
}
