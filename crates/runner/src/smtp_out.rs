//! Remote delivery in a process of its own, for a runner started as root:
//! no mxa process reads the network as root (DESIGN.md), so the runner
//! hands its remote deliveries to `mxa-queue smtp-out`, which becomes
//! `[user]` before it connects anywhere, as qmail's qmail-remote runs as
//! its own user. The runner keeps root for local delivery, where
//! mxa-deliver becomes each mailbox's owner.
//!
//! One helper serves a whole pass, so that its connection pool (limits,
//! idle connections reused for the next message) covers every worker.
//! Requests and answers are framed as `N LENGTH\n` and LENGTH bytes, N
//! pairing an answer with its request; the helper works on several at
//! once. A request: the queue id, the domain, the envelope (only the
//! recipients to try) in the spool's text format, a blank line, the
//! message. An answer: one line per recipient, in order, `relayed dsn
//! REPLY` (the server offered DSN), `relayed - REPLY` (it did not),
//! `deferred REASON` or `failed REASON`. The helper ends, closing its idle
//! connections, when its input does.

use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use mxa_config::Config;
use mxa_spool::{Envelope, QueueId};

use crate::mda::Outcome;
use crate::remote::Remote;

/// The hidden subcommand of mxa-queue that runs [`serve`].
pub const SUBCOMMAND: &str = "smtp-out";

type Waiting = Arc<Mutex<HashMap<u64, mpsc::Sender<Vec<Outcome>>>>>;

/// The runner's side: one helper process for a pass.
pub struct Helper {
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    waiting: Waiting,
    next: AtomicU64,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helper")
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl Helper {
    /// Starts `mxa-queue smtp-out` with this config.
    pub fn spawn(config: &Config) -> io::Result<Helper> {
        let exe = std::env::current_exe()?;
        let mut c = Command::new(exe);
        if let Some(f) = &config.file {
            c.arg("-c").arg(f).env("MXA_CONFIG", f);
        }
        let mut child = c
            .arg(SUBCOMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no pipe"))?;
        let waiting: Waiting = Arc::default();
        let w = waiting.clone();
        let reader = std::thread::spawn(move || {
            let mut r = io::BufReader::new(stdout);
            while let Ok(Some((n, body))) = read_frame(&mut r) {
                let answer = String::from_utf8_lossy(&body)
                    .lines()
                    .map(parse_line)
                    .collect();
                let tx = w.lock().ok().and_then(|mut m| m.remove(&n));
                if let Some(tx) = tx {
                    let _ = tx.send(answer);
                }
            }
            // The helper is gone: whoever still waits gets an error.
            if let Ok(mut m) = w.lock() {
                m.clear();
            }
        });
        Ok(Helper {
            child,
            stdin: Mutex::new(stdin),
            waiting,
            next: AtomicU64::new(0),
            reader: Some(reader),
        })
    }

    /// Delivers one domain's recipients through the helper; one outcome
    /// per index.
    pub fn deliver(
        &self,
        id: &QueueId,
        domain: &str,
        env: &Envelope,
        idxs: &[usize],
        data: &[u8],
    ) -> Vec<Outcome> {
        let deferred = |why: String| vec![Outcome::Deferred(format!("4.3.0 {why}")); idxs.len()];
        let mut sub = env.clone();
        sub.recipients = idxs.iter().map(|&i| env.recipients[i].clone()).collect();
        let mut body = format!("{id}\n{domain}\n{}\n", sub.to_text()).into_bytes();
        body.extend_from_slice(data);
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        if let Ok(mut m) = self.waiting.lock() {
            m.insert(n, tx);
        }
        let sent = match self.stdin.lock() {
            Ok(mut g) => match g.as_mut() {
                Some(w) => write_frame(w, n, &body),
                None => Err(io::Error::other("closed")),
            },
            Err(_) => Err(io::Error::other("poisoned")),
        };
        if let Err(e) = sent {
            if let Ok(mut m) = self.waiting.lock() {
                m.remove(&n);
            }
            return deferred(format!("the SMTP helper failed: {e}"));
        }
        match rx.recv() {
            Ok(v) if v.len() == idxs.len() => v,
            Ok(_) => deferred("the SMTP helper gave a short answer".into()),
            Err(_) => deferred("the SMTP helper ended".into()),
        }
    }
}

impl Drop for Helper {
    /// Closes the helper's input: it finishes, QUITs its idle connections
    /// and exits.
    fn drop(&mut self) {
        if let Ok(mut g) = self.stdin.lock() {
            g.take();
        }
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn write_frame(w: &mut impl Write, n: u64, body: &[u8]) -> io::Result<()> {
    w.write_all(format!("{n} {}\n", body.len()).as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

/// The next frame, or `None` at the end of the input.
fn read_frame(r: &mut impl BufRead) -> io::Result<Option<(u64, Vec<u8>)>> {
    let mut head = String::new();
    if r.read_line(&mut head)? == 0 {
        return Ok(None);
    }
    let bad = || io::Error::other(format!("bad frame header {head:?}"));
    let (n, len) = head.trim_end().split_once(' ').ok_or_else(bad)?;
    let n: u64 = n.parse().map_err(|_| bad())?;
    let len: usize = len.parse().map_err(|_| bad())?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some((n, body)))
}

fn parse_line(line: &str) -> Outcome {
    let (word, why) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "delivered" => Outcome::Delivered,
        "relayed" => {
            let (dsn, reply) = why.split_once(' ').unwrap_or((why, ""));
            Outcome::Relayed {
                reply: reply.to_string(),
                dsn: dsn == "dsn",
            }
        }
        "failed" => Outcome::Failed(why.to_string()),
        _ => Outcome::Deferred(why.to_string()),
    }
}

/// The helper's side: drop root, then answer each request as it comes,
/// several at once, until the input ends.
pub fn serve(config: &Config, input: impl Read, output: impl Write + Send) -> io::Result<()> {
    // Everything that needs root (the relayhost's password file) is read
    // first; nothing is resolved or connected before root is dropped.
    let remote = Remote::new(config);
    let ready = match (drop_root(config), remote) {
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(r)) => Ok(r),
    };
    let output = Mutex::new(output);
    let mut input = io::BufReader::new(input);
    std::thread::scope(|s| -> io::Result<()> {
        while let Some((n, body)) = read_frame(&mut input)? {
            let (ready, output) = (&ready, &output);
            s.spawn(move || {
                let answer = answer(config, ready, &body);
                if let Ok(mut o) = output.lock() {
                    // A runner that went away reads nothing more.
                    let _ = write_frame(&mut *o, n, answer.as_bytes());
                }
            });
        }
        Ok(())
    })
}

/// One request's answer lines (none for a request that cannot be read).
fn answer(config: &Config, remote: &Result<Remote, String>, body: &[u8]) -> String {
    let mut parts = body.splitn(2, |&b| b == b'\n');
    let id = parts
        .next()
        .and_then(|l| QueueId::parse(&String::from_utf8_lossy(l)));
    let rest = parts.next().unwrap_or_default();
    let mut parts = rest.splitn(2, |&b| b == b'\n');
    let domain = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let rest = parts.next().unwrap_or_default();
    // The envelope ends at the first blank line.
    let split = rest.windows(2).position(|w| w == b"\n\n");
    let (Some(id), Some(at)) = (id, split) else {
        return String::new();
    };
    let Ok(env) = Envelope::parse(&String::from_utf8_lossy(&rest[..=at])) else {
        return String::new();
    };
    let data = &rest[at + 2..];
    let n = env.recipients.len();
    let outcomes = match remote {
        Err(e) => vec![Outcome::Deferred(format!("4.3.0 {e}")); n],
        Ok(r) => r.deliver(
            config,
            &id,
            &domain,
            &env,
            &(0..n).collect::<Vec<_>>(),
            data,
        ),
    };
    let one = |s: &str| s.replace(['\r', '\n'], " ");
    let mut out = String::new();
    for o in outcomes {
        let line = match o {
            Outcome::Delivered => "delivered".to_string(),
            Outcome::Relayed { reply, dsn } => {
                let dsn = if dsn { "dsn" } else { "-" };
                format!("relayed {dsn} {}", one(&reply))
            }
            Outcome::Deferred(w) => format!("deferred {}", one(&w)),
            Outcome::Failed(w) => format!("failed {}", one(&w)),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Becomes `[user]` when running as root (a no-op otherwise).
fn drop_root(config: &Config) -> Result<(), String> {
    mxa_daemon::drop_root(&config.user)
        .map_err(|e| format!("{e}; remote delivery never runs as root"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pair_answers_with_requests() {
        let mut wire = Vec::new();
        write_frame(&mut wire, 7, b"one\ntwo\n").expect("write");
        write_frame(&mut wire, 8, b"").expect("write");
        let mut r = io::BufReader::new(&wire[..]);
        assert_eq!(
            read_frame(&mut r).expect("read"),
            Some((7, b"one\ntwo\n".to_vec()))
        );
        assert_eq!(read_frame(&mut r).expect("read"), Some((8, Vec::new())));
        assert_eq!(read_frame(&mut r).expect("read"), None);
        assert!(read_frame(&mut io::BufReader::new(&b"x 3\nabc"[..])).is_err());
        assert!(read_frame(&mut io::BufReader::new(&b"1 9\nabc"[..])).is_err());
    }

    #[test]
    fn a_request_that_cannot_be_read_gets_an_empty_answer() {
        let config = Config::default();
        let remote = Err("not used".to_string());
        assert_eq!(answer(&config, &remote, b"not an id\nx\n\n"), "");
        let id = QueueId::parse("1K0ZC06VQ7S739RYJRA").expect("id");
        let env = Envelope::new("a@example.org", ["b@example.net".to_string()]);
        let body = format!("{id}\nexample.net\n{}\nmessage\n", env.to_text());
        assert_eq!(
            answer(&config, &remote, body.as_bytes()),
            "deferred 4.3.0 not used\n"
        );
    }

    #[test]
    fn answer_lines() {
        assert_eq!(
            parse_line("relayed dsn 250 2.0.0 Ok (from mx.example.net)"),
            Outcome::Relayed {
                reply: "250 2.0.0 Ok (from mx.example.net)".into(),
                dsn: true
            }
        );
        assert_eq!(
            parse_line("relayed - 250 Ok"),
            Outcome::Relayed {
                reply: "250 Ok".into(),
                dsn: false
            }
        );
        assert_eq!(
            parse_line("failed 550 5.1.1 no (from h)"),
            Outcome::Failed("550 5.1.1 no (from h)".into())
        );
        assert!(matches!(parse_line("garbage"), Outcome::Deferred(_)));
    }
}
