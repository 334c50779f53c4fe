//! Remote delivery in a process of its own, for a runner started as root:
//! no mxa process reads the network as root (DESIGN.md), so the runner
//! hands each domain's delivery to `mxa-queue smtp-out`, which becomes
//! `[user]` before it connects anywhere, as qmail's qmail-remote runs as
//! its own user. The runner keeps root for local delivery, where
//! mxa-deliver becomes each mailbox's owner.
//!
//! The hand-over on stdin: the queue id, the domain, the envelope (only the
//! recipients to try) in the spool's text format, a blank line, the
//! message. The answer on stdout: one line per recipient, in order,
//! `relayed dsn REPLY` (the server offered DSN), `relayed - REPLY` (it did
//! not), `deferred REASON` or `failed REASON`.

use std::io::{self, BufRead, Read, Write};
use std::process::{Command, Stdio};

use mxa_config::Config;
use mxa_spool::{Envelope, QueueId};

use crate::mda::Outcome;
use crate::remote::Remote;

/// The hidden subcommand of mxa-queue that runs [`serve`].
pub const SUBCOMMAND: &str = "smtp-out";

/// Runs one domain's delivery in a child process; one outcome per index.
pub fn deliver(
    config: &Config,
    id: &QueueId,
    domain: &str,
    env: &Envelope,
    idxs: &[usize],
    data: &[u8],
) -> Vec<Outcome> {
    match spawn(config, id, domain, env, idxs, data) {
        Ok(v) if v.len() == idxs.len() => v,
        Ok(_) => {
            vec![Outcome::Deferred("4.3.0 the SMTP helper gave a short answer".into()); idxs.len()]
        }
        Err(e) => vec![Outcome::Deferred(format!("4.3.0 the SMTP helper failed: {e}")); idxs.len()],
    }
}

fn spawn(
    config: &Config,
    id: &QueueId,
    domain: &str,
    env: &Envelope,
    idxs: &[usize],
    data: &[u8],
) -> io::Result<Vec<Outcome>> {
    let mut sub = env.clone();
    sub.recipients = idxs.iter().map(|&i| env.recipients[i].clone()).collect();
    let mut input = format!("{id}\n{domain}\n{}\n", sub.to_text()).into_bytes();
    input.extend_from_slice(data);
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
    let mut stdin = child.stdin.take();
    let writer = std::thread::spawn(move || stdin.as_mut().map(|s| s.write_all(&input)));
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut out)?;
    }
    let _ = writer.join();
    child.wait()?;
    Ok(out.lines().map(parse_line).collect())
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

/// The child's side: drop root, read the hand-over, deliver, answer.
pub fn serve(config: &Config, input: impl Read, mut output: impl Write) -> io::Result<()> {
    let mut input = io::BufReader::new(input);
    let line = |r: &mut io::BufReader<_>| -> io::Result<String> {
        let mut s = String::new();
        r.read_line(&mut s)?;
        Ok(s.trim_end().to_string())
    };
    let id = QueueId::parse(&line(&mut input)?).ok_or_else(|| io::Error::other("bad queue id"))?;
    let domain = line(&mut input)?;
    let mut text = String::new();
    loop {
        let l = line(&mut input)?;
        if l.is_empty() {
            break;
        }
        text.push_str(&l);
        text.push('\n');
    }
    let env = Envelope::parse(&text)
        .map_err(|(n, m)| io::Error::other(format!("envelope line {n}: {m}")))?;
    let mut data = Vec::new();
    input.read_to_end(&mut data)?;
    let n = env.recipients.len();
    // Everything that needs root (the relayhost's password file) is read
    // first; nothing is resolved or connected before root is dropped.
    let remote = Remote::new(config);
    let outcomes = match (drop_root(config), remote) {
        (Err(e), _) | (Ok(()), Err(e)) => vec![Outcome::Deferred(format!("4.3.0 {e}")); n],
        (Ok(()), Ok(r)) => r.deliver(
            config,
            &id,
            &domain,
            &env,
            &(0..n).collect::<Vec<_>>(),
            &data,
        ),
    };
    for o in outcomes {
        let one = |s: &str| s.replace(['\r', '\n'], " ");
        match o {
            Outcome::Delivered => writeln!(output, "delivered")?,
            Outcome::Relayed { reply, dsn } => {
                let dsn = if dsn { "dsn" } else { "-" };
                writeln!(output, "relayed {dsn} {}", one(&reply))?
            }
            Outcome::Deferred(w) => writeln!(output, "deferred {}", one(&w))?,
            Outcome::Failed(w) => writeln!(output, "failed {}", one(&w))?,
        }
    }
    output.flush()
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
