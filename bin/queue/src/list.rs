//! `mxa-queue list`: the format scripts rely on (DESIGN.md). A message line
//! is `ID AGE SIZE <SENDER>`; each recipient line is indented and holds
//! `<ADDRESS> STATE NEXT-TRY LAST-REPLY`, where NEXT-TRY is an RFC 3339 UTC
//! time, `now` or `-`, and LAST-REPLY runs to the end of the line (`-` when
//! none).

use std::io::Write;

use mxa_spool::{Envelope, QueueId, Spool, State};
use serde_json::json;

use crate::{Failure, io_failure};

pub fn list(spool: &Spool, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    let now = mxa_spool::now();
    let mut items = Vec::new();
    for id in spool.list()? {
        // A message may leave the queue while we read it: skip it.
        let (env, size) = match (spool.envelope(&id), std::fs::metadata(spool.data_path(&id))) {
            (Ok(env), Ok(meta)) => (env, meta.len()),
            (Err(mxa_spool::Error::NotFound(_)), _) => continue,
            (Err(e), _) => return Err(e.into()),
            (Ok(_), Err(_)) => continue,
        };
        if json {
            items.push(to_json(&id, &env, size, now));
        } else {
            write_text(out, &id, &env, size, now).map_err(io_failure)?;
        }
    }
    if json {
        let text = serde_json::to_string_pretty(&items)
            .map_err(|e| Failure(mxa_cli::exit::SOFTWARE, e.to_string()))?;
        writeln!(out, "{text}").map_err(io_failure)?;
    }
    Ok(())
}

fn write_text(
    out: &mut impl Write,
    id: &QueueId,
    env: &Envelope,
    size: u64,
    now: u64,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{id} {} {size} <{}>",
        age(now.saturating_sub(env.created)),
        env.sender
    )?;
    for r in &env.recipients {
        let reply = r
            .last_reply
            .as_deref()
            .map(one_line)
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "    <{}> {} {} {reply}",
            r.address,
            r.state.as_str(),
            next_try(r.state, r.next_try, now)
        )?;
    }
    Ok(())
}

fn next_try(state: State, next: Option<u64>, now: u64) -> String {
    match (state, next) {
        (State::Pending | State::Deferred, Some(t)) if t > now => mxa_message::rfc3339(t),
        (State::Pending | State::Deferred, _) => "now".into(),
        _ => "-".into(),
    }
}

/// Replies may span lines (multi-line SMTP replies): keep one line.
fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Age as its largest unit: 42s, 5m, 3h, 2d.
fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn to_json(id: &QueueId, env: &Envelope, size: u64, now: u64) -> serde_json::Value {
    let rcpts: Vec<_> = env
        .recipients
        .iter()
        .map(|r| {
            json!({
                "address": r.address,
                "state": r.state.as_str(),
                "attempts": r.attempts,
                "next_try": r.next_try,
                "last_reply": r.last_reply,
                "notify": r.notify,
                "orcpt": r.orcpt,
            })
        })
        .collect();
    json!({
        "id": id.as_str(),
        "created": env.created,
        "age_seconds": now.saturating_sub(env.created),
        "size": size,
        "sender": env.sender,
        "origin": env.origin,
        "recipients": rcpts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(7300), "2h");
        assert_eq!(age(3 * 86400 + 5), "3d");
    }

    #[test]
    fn next_try_words() {
        assert_eq!(
            next_try(State::Deferred, Some(1_795_457_100), 0),
            "2026-11-23T18:05:00Z"
        );
        assert_eq!(next_try(State::Deferred, Some(5), 10), "now");
        assert_eq!(next_try(State::Pending, None, 10), "now");
        assert_eq!(next_try(State::Held, None, 10), "-");
        assert_eq!(next_try(State::Delivered, Some(50), 10), "-");
    }

    #[test]
    fn text_format() {
        let mut env = Envelope::new("a@b", ["c@d".to_string()]);
        env.created = 100;
        env.recipients[0].last_reply = Some("451 4.7.1 try\r\nlater".into());
        env.recipients[0].state = State::Deferred;
        let id = QueueId::generate();
        let mut out = Vec::new();
        write_text(&mut out, &id, &env, 42, 160).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            format!("{id} 1m 42 <a@b>\n    <c@d> deferred now 451 4.7.1 try / later\n")
        );
    }
}
