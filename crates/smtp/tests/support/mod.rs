//! Transcript harness: drives a [`Client`] with a dialogue as an SMTP log
//! shows it, as Stalwart's session tests do.
//!
//! ```text
//! A: start          the client's next call: start (the next envelope),
//! A: quit           quit, or
//! A: lost <why>     connection_error (its outcome is checked by the next C: <done>)
//! S: 250-line       server lines; consecutive ones arrive together, and the
//! S: 250 line       client must be waiting for each reply in them
//! C: MAIL FROM:<>   client lines; consecutive ones must be exactly one Send
//! C: <starttls>     Step::StartTls (the harness then calls tls_established)
//! C: <message>      Step::SendData
//! C: <done delivered:250 deferred:450 failed:550>   Step::Done, per recipient
//! C: <close>        Step::Close
//! ```
//!
//! Every step the client returns must be accounted for by the script.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;

use mxa_smtp::client::{Client, Config, Envelope, Outcome, RcptResult, Step, Tls};
use mxa_smtp::reply::Parser;

/// A config for `client.example`.
pub fn config(tls: Tls) -> Config {
    Config {
        helo: "client.example".into(),
        tls,
        auth: None,
    }
}

/// An envelope from `sender` to `recipients`, no parameters.
pub fn env(sender: &str, recipients: &[&str]) -> Envelope {
    Envelope {
        sender: sender.into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        ..Envelope::default()
    }
}

/// Run `script` against a client with `config`; `envs` are started in turn
/// by `A: start`. Returns every outcome seen.
pub fn run(config: Config, envs: Vec<Envelope>, script: &str) -> Vec<Outcome> {
    run_client(config, envs, script).1
}

/// [`run`], also returning the client for a look at its state.
pub fn run_client(config: Config, envs: Vec<Envelope>, script: &str) -> (Client, Vec<Outcome>) {
    let mut t = Transcript {
        client: Client::new(config),
        parser: Parser::default(),
        envs: envs.into(),
        step: Some(Step::Wait),
        outcomes: Vec::new(),
        pending_lost: None,
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
        let group_end = |prefix: &str| {
            let more = lines[i..]
                .iter()
                .take_while(|(_, l)| l.starts_with(prefix) && !is_marker(l));
            i + more.count()
        };
        match kind {
            "A:" => t.action(n, rest),
            "S:" => {
                let end = group_end("S:");
                t.server(n, &lines[i..end]);
                i = end;
                continue;
            }
            "C:" if is_marker(line) => t.marker(n, rest),
            "C:" => {
                let end = group_end("C:");
                t.client(n, &lines[i..end]);
                i = end;
                continue;
            }
            _ => panic!("line {n}: what is {line:?}?"),
        }
        i += 1;
    }
    assert!(
        t.step.is_none() || t.step == Some(Step::Wait),
        "script ended with {:?} unaccounted for",
        t.step
    );
    (t.client, t.outcomes)
}

fn is_marker(line: &str) -> bool {
    line.starts_with("C: <") && line.ends_with('>')
}

struct Transcript {
    client: Client,
    parser: Parser,
    envs: VecDeque<Envelope>,
    /// The client's last step, None once consumed by the script.
    step: Option<Step>,
    outcomes: Vec<Outcome>,
    /// The outcome of `A: lost`, checked by the next `C: <done …>`.
    pending_lost: Option<Outcome>,
}

impl Transcript {
    fn idle(&self) -> bool {
        matches!(self.step, None | Some(Step::Wait))
    }

    fn action(&mut self, n: usize, what: &str) {
        assert!(
            self.idle() || what.starts_with("lost"),
            "line {n}: {what} while the client said {}",
            show(&self.step)
        );
        let verb = what.split_once(' ').map_or(what, |(verb, _)| verb);
        match verb {
            "start" => {
                let env = self
                    .envs
                    .pop_front()
                    .unwrap_or_else(|| panic!("line {n}: no envelope left"));
                self.step = Some(self.client.start(env));
            }
            "quit" => self.step = Some(self.client.quit()),
            "lost" => {
                let why = what.strip_prefix("lost ").unwrap_or("");
                self.pending_lost = Some(self.client.connection_error(why));
                self.step = None;
            }
            _ => panic!("line {n}: unknown action {what:?}"),
        }
    }

    fn server(&mut self, n: usize, lines: &[(usize, &str)]) {
        for (_, line) in lines {
            self.parser.feed(line[2..].trim_start().as_bytes());
            self.parser.feed(b"\r\n");
        }
        for reply in &mut self.parser {
            let reply = reply.unwrap_or_else(|e| panic!("line {n}: bad reply in script: {e}"));
            assert!(
                self.step == Some(Step::Wait),
                "line {n}: server sends {} while the client said {}",
                reply.text(),
                show(&self.step)
            );
            self.step = Some(self.client.on_reply(reply));
        }
    }

    fn client(&mut self, n: usize, lines: &[(usize, &str)]) {
        let mut want = String::new();
        for (_, line) in lines {
            want.push_str(line[2..].strip_prefix(' ').unwrap_or(&line[2..]));
            want.push_str("\r\n");
        }
        let want = Some(Step::Send(want.into_bytes()));
        assert!(
            self.step == want,
            "line {n}: expected {}, client said {}",
            show(&want),
            show(&self.step)
        );
        self.step = Some(Step::Wait);
    }

    fn marker(&mut self, n: usize, marker: &str) {
        let inner = &marker[1..marker.len() - 1];
        let (name, args) = inner.split_once(' ').unwrap_or((inner, ""));
        let step = self.step.take();
        let wrong = |want: &str| -> Outcome {
            panic!("line {n}: expected {want}, client said {}", show(&step))
        };
        match name {
            "starttls" if step == Some(Step::StartTls) => {
                self.step = Some(self.client.tls_established())
            }
            "message" if step == Some(Step::SendData) => self.step = Some(Step::Wait),
            "close" if step == Some(Step::Close) => {}
            "done" => {
                let outcome = match (step.clone(), self.pending_lost.take()) {
                    (None, Some(lost)) => lost,
                    (Some(Step::Done(outcome)), None) => outcome,
                    _ => wrong(marker),
                };
                check_outcome(n, &outcome, args);
                self.outcomes.push(outcome);
            }
            _ => {
                wrong(marker);
            }
        }
    }
}

/// `args`: one `kind:code` per recipient, such as `delivered:250`.
fn check_outcome(n: usize, outcome: &Outcome, args: &str) {
    let got: Vec<String> = outcome
        .results
        .iter()
        .map(|r| {
            let kind = match r {
                RcptResult::Delivered(_) => "delivered",
                RcptResult::Deferred(_) => "deferred",
                RcptResult::Failed(_) => "failed",
            };
            format!("{kind}:{}", r.reply().code)
        })
        .collect();
    let want: Vec<&str> = args.split_whitespace().collect();
    assert_eq!(got, want, "line {n}: outcome {outcome:?}");
}

fn show(step: &Option<Step>) -> String {
    match step {
        Some(Step::Send(bytes)) => format!("Send({:?})", String::from_utf8_lossy(bytes)),
        other => format!("{other:?}"),
    }
}
