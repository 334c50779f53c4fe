//! Transcript harness for the server: a dialogue as an SMTP log shows it.
//!
//! ```text
//! C: MAIL FROM:<a@b>   a client line (CRLF added); consecutive C: lines are
//!                      fed together, as a pipelining client sends them
//! R: a\n.\nb           raw bytes, with \r \n \\ escapes, fed as they are
//! S: 250 2.1.0 OK      a reply line the server writes
//! A: rcpt a@b          another action: starttls, auth MECH user password,
//!                      rcpt ADDR, begin, data BYTES (escaped; consecutive
//!                      chunks joined), abort, end SENDER RCPT,RCPT, close
//! E: rcpt local        an event from the I/O layer: greeted, tls,
//!                      auth ok|fail, rcpt local|unknown|relay|denied|temp,
//!                      stored ID | stored fail
//! ```
//!
//! The greeting is taken as written (`greeting_sent`) when the script
//! reads it; a C: line before that is a pregreet. Every action the session
//! gives must be accounted for by the script, in order.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;

use mxa_smtp::server::{Action, Config, Envelope, Session, Verdict};

/// A port-25 config for `mx.example.org`.
pub fn config() -> Config {
    Config::new("mx.example.org")
}

/// Run `script` against a new session; returns the envelopes handed over.
pub fn run(config: Config, script: &str) -> Vec<Envelope> {
    run_session(config, script).1
}

/// [`run`], also returning the session.
pub fn run_session(config: Config, script: &str) -> (Session, Vec<Envelope>) {
    run_with(config, |_| {}, script)
}

/// [`run_session`] with `setup` applied to the new session.
pub fn run_with(
    config: Config,
    setup: impl FnOnce(&mut Session),
    script: &str,
) -> (Session, Vec<Envelope>) {
    let mut session = Session::new(config);
    setup(&mut session);
    let mut t = Transcript {
        session,
        out: VecDeque::new(),
        envelopes: Vec::new(),
        greeted: false,
    };
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
                let mut bytes = Vec::new();
                while let Some(&(_, l)) = lines.get(i) {
                    let Some(text) = l.strip_prefix("C:").or(l.strip_prefix("R:")) else {
                        break;
                    };
                    let text = text.strip_prefix(' ').unwrap_or(text);
                    if l.starts_with("C:") {
                        bytes.extend_from_slice(text.as_bytes());
                        bytes.extend_from_slice(b"\r\n");
                    } else {
                        bytes.extend(unescape(text));
                    }
                    i += 1;
                }
                // Not drained first: the greeting may still be unwritten.
                assert!(t.out.is_empty(), "line {n}: unexpected output {:?}", t.out);
                t.session.feed(&bytes);
                continue;
            }
            "S:" | "A:" => {
                t.drain();
                let got = t.out.pop_front();
                assert_eq!(got.as_deref(), Some(line), "line {n}");
            }
            "E:" => {
                t.drain();
                assert!(t.out.is_empty(), "line {n}: unexpected output {:?}", t.out);
                t.event(n, rest);
            }
            _ => panic!("line {n}: bad script line {line:?}"),
        }
        i += 1;
    }
    t.drain();
    assert!(
        t.out.is_empty(),
        "unexpected output at the end: {:?}",
        t.out
    );
    (t.session, t.envelopes)
}

struct Transcript {
    session: Session,
    /// Output lines produced and not yet matched.
    out: VecDeque<String>,
    envelopes: Vec<Envelope>,
    greeted: bool,
}

impl Transcript {
    /// Poll every action into `out`.
    fn drain(&mut self) {
        while let Some(action) = self.session.poll() {
            match action {
                Action::Reply(reply) => {
                    let wire = String::from_utf8(reply.to_wire()).unwrap();
                    self.out.extend(
                        wire.lines()
                            .map(|l| format!("S: {l}").trim_end().to_string()),
                    );
                    if !self.greeted {
                        self.greeted = true;
                        self.session.greeting_sent();
                    }
                }
                Action::MessageData(bytes) => {
                    let text = escape(&bytes);
                    match self.out.back_mut() {
                        Some(last) if last.starts_with("A: data ") => last.push_str(&text),
                        _ => self.out.push_back(format!("A: data {text}")),
                    }
                }
                Action::MessageEnd { envelope } => {
                    let rcpts: Vec<&str> = envelope
                        .recipients
                        .iter()
                        .map(|r| r.address.as_str())
                        .collect();
                    self.out
                        .push_back(format!("A: end <{}> {}", envelope.sender, rcpts.join(",")));
                    self.envelopes.push(envelope);
                }
                Action::StartTls => self.out.push_back("A: starttls".into()),
                Action::CheckAuth {
                    mechanism,
                    user,
                    password,
                } => self
                    .out
                    .push_back(format!("A: auth {mechanism:?} {user} {}", password.0)),
                Action::CheckRecipient(a) => self.out.push_back(format!("A: rcpt {a}")),
                Action::MessageBegin { .. } => self.out.push_back("A: begin".into()),
                Action::MessageAbort => self.out.push_back("A: abort".into()),
                Action::Close => self.out.push_back("A: close".into()),
            }
        }
    }

    fn event(&mut self, n: usize, what: &str) {
        let s = &mut self.session;
        match what.split_once(' ').unwrap_or((what, "")) {
            ("greeted", _) => s.greeting_sent(),
            ("tls", _) => s.tls_established("TLSv1.3", "TLS13_AES_128_GCM_SHA256"),
            ("auth", ok) => s.auth_checked(ok == "ok"),
            ("rcpt", v) => s.recipient_checked(match v {
                "local" => Verdict::Local,
                "unknown" => Verdict::Unknown,
                "relay" => Verdict::RelayAllowed,
                "denied" => Verdict::RelayDenied,
                "temp" => Verdict::TemporaryFailure,
                _ => panic!("line {n}: bad verdict {v:?}"),
            }),
            ("stored", "fail") => s.message_stored(Err("disk full".into())),
            ("stored", id) => s.message_stored(Ok(id.into())),
            _ => panic!("line {n}: bad event {what:?}"),
        }
    }
}

/// `\r`, `\n` and `\\` escapes to bytes.
pub fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = text.bytes();
    while let Some(c) = chars.next() {
        if c != b'\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    out
}

/// Bytes to the escaped form [`unescape`] reads.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\\' => out.push_str("\\\\"),
            _ => out.push(char::from(b)),
        }
    }
    out
}
