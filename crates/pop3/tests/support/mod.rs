//! Transcript harness: a POP3 dialogue as a log shows it.
//!
//! ```text
//! C: USER a@b          a client line (CRLF added); consecutive C: lines are
//!                      fed together, as a pipelining client sends them
//! R: a\nb              raw bytes with \r \n \\ escapes, fed as they are
//! S: +OK ...           a status line the server writes
//! D: 1 120             a line of the last multi-line reply, as on the wire
//!                      (dot-stuffed; the final "." too)
//! A: auth USER PASS    another action: tls, auth USER PASS, open USER,
//!                      fetch N [top M], update 1,2 (1-based), close
//! E: auth ok           an outcome fed back: tls, auth ok|fail,
//!                      open UID:SIZE ... | open in-use | open fail,
//!                      fetched TEXT (escaped) | fetched fail,
//!                      updated ok|fail, timeout, shutdown
//! ```
//!
//! Every output must be accounted for by the script, in order; at the end
//! none may be left.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;

use mxa_pop3::{Action, Config, Message, OpenError, Session};

/// A client on this machine, TLS available.
pub fn local() -> Config {
    Config {
        tls_available: true,
        client_local: true,
        ..Config::new("pop.example.org")
    }
}

/// A client off this machine, TLS available.
pub fn remote() -> Config {
    Config {
        tls_available: true,
        ..Config::new("pop.example.org")
    }
}

/// Runs `script` against a new session and returns it.
pub fn run(config: Config, script: &str) -> Session {
    let mut s = Session::new(config);
    let mut out: VecDeque<String> = VecDeque::new();
    let lines: Vec<(usize, &str)> = script
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut i = 0;
    while i < lines.len() {
        let (n, line) = lines[i];
        let (kind, rest) = line.split_at(2);
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        match kind {
            "C:" | "R:" => {
                drain(&mut s, &mut out);
                assert!(out.is_empty(), "line {n}: unexpected output {out:?}");
                let mut bytes = Vec::new();
                while let Some(&(_, l)) = lines.get(i) {
                    if let Some(t) = l.strip_prefix("C:") {
                        bytes.extend_from_slice(t.strip_prefix(' ').unwrap_or(t).as_bytes());
                        bytes.extend_from_slice(b"\r\n");
                    } else if let Some(t) = l.strip_prefix("R:") {
                        bytes.extend(unescape(t.strip_prefix(' ').unwrap_or(t)));
                    } else {
                        break;
                    }
                    i += 1;
                }
                s.feed(&bytes);
                continue;
            }
            "S:" | "D:" | "A:" => {
                drain(&mut s, &mut out);
                let got = out.pop_front();
                assert_eq!(got.as_deref().map(str::trim_end), Some(line), "line {n}");
            }
            "E:" => {
                drain(&mut s, &mut out);
                assert!(out.is_empty(), "line {n}: unexpected output {out:?}");
                event(&mut s, rest, n);
            }
            _ => panic!("line {n}: bad script line {line:?}"),
        }
        i += 1;
    }
    drain(&mut s, &mut out);
    assert!(out.is_empty(), "left over: {out:?}");
    s
}

fn drain(s: &mut Session, out: &mut VecDeque<String>) {
    while let Some(a) = s.poll() {
        match a {
            Action::Reply(r) => {
                let mut wire = Vec::new();
                r.to_wire(&mut wire);
                let text = String::from_utf8_lossy(&wire).into_owned();
                let mut parts = text.split("\r\n");
                out.push_back(format!("S: {}", parts.next().unwrap()));
                if r.body.is_some() {
                    for p in parts.filter(|_| true) {
                        out.push_back(format!("D: {p}"));
                    }
                    // The split leaves an empty piece after the last CRLF.
                    out.pop_back();
                }
            }
            Action::StartTls => out.push_back("A: tls".into()),
            Action::CheckAuth { user, password } => {
                out.push_back(format!("A: auth {user} {}", password.0));
            }
            Action::OpenMaildrop { user } => out.push_back(format!("A: open {user}")),
            Action::Fetch { index, top } => out.push_back(match top {
                Some(m) => format!("A: fetch {} top {m}", index + 1),
                None => format!("A: fetch {}", index + 1),
            }),
            Action::Update { deleted } => {
                let list: Vec<String> = deleted.iter().map(|i| (i + 1).to_string()).collect();
                out.push_back(format!("A: update {}", list.join(",")));
            }
            Action::Close => out.push_back("A: close".into()),
        }
    }
}

fn event(s: &mut Session, e: &str, n: usize) {
    let (word, rest) = e.split_once(' ').unwrap_or((e, ""));
    match (word, rest) {
        ("tls", _) => s.tls_established(),
        ("auth", "ok") => s.auth_checked(true),
        ("auth", "fail") => s.auth_checked(false),
        ("open", "in-use") => s.maildrop_opened(Err(OpenError::InUse)),
        ("open", "fail") => s.maildrop_opened(Err(OpenError::Failed("test".into()))),
        ("open", list) => s.maildrop_opened(Ok(list
            .split_whitespace()
            .map(|m| {
                let (uid, size) = m.rsplit_once(':').unwrap();
                Message {
                    uid: uid.into(),
                    size: size.parse().unwrap(),
                }
            })
            .collect())),
        ("fetched", "fail") => s.fetched(Err("test".into())),
        ("fetched", text) => s.fetched(Ok(unescape(text))),
        ("updated", "ok") => s.updated(Ok(())),
        ("updated", "fail") => s.updated(Err("test".into())),
        ("timeout", _) => s.timed_out(),
        ("shutdown", _) => s.shutdown(),
        _ => panic!("line {n}: bad event {e:?}"),
    }
}

/// `\r`, `\n`, `\\` and `\0` escapes.
pub fn unescape(t: &str) -> Vec<u8> {
    let mut v = Vec::new();
    let mut chars = t.bytes();
    while let Some(c) = chars.next() {
        if c == b'\\' {
            match chars.next() {
                Some(b'r') => v.push(b'\r'),
                Some(b'n') => v.push(b'\n'),
                Some(b'0') => v.push(0),
                Some(o) => v.push(o),
                None => v.push(b'\\'),
            }
        } else {
            v.push(c);
        }
    }
    v
}
