//! The envelope: a small text file, one `key value` line each, that `cat`
//! shows. Lines after a `rcpt` line describe that recipient. Values are
//! escaped so that any string survives (`\\`, and `\xHH` for control
//! characters), which makes the format lossless: see the round-trip
//! property test at the bottom.
//!
//! ```text
//! mxa-envelope 1
//! created 1763922000
//! sender <alice@example.org>
//! origin local uid=1000
//! ret hdrs
//! envid QQ314159
//! rcpt <bob@example.net>
//! state deferred
//! attempts 2
//! next 1763925600
//! reply 451 4.7.1 greylisted, try again later
//! notify failure,delay
//! ```
//!
//! A recipient delivered with NOTIFY=SUCCESS (RFC 3461) whose success
//! report is still to be queued carries `success delivered` (delivered
//! here) or `success relayed` (handed to a server that does not offer
//! DSN); the runner writes it with the delivery and removes it once the
//! report is queued, so a crash between the two loses no report and a
//! later pass sends none twice.

use std::fmt::Write as _;

use serde::Serialize;

/// The first line of every envelope; bumped if the format ever changes.
pub const MAGIC: &str = "mxa-envelope 1";

/// Where a recipient stands. DESIGN.md's states, with `deferred` meaning
/// "deferred until `next_try`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not yet tried, or released from hold.
    Pending,
    /// Tried and failed temporarily; tried again at `next_try`.
    Deferred,
    /// Done.
    Delivered,
    /// Failed permanently (its bounce is queued before the message leaves).
    Failed,
    /// Set aside by `mxa-queue hold`; not tried until released.
    Held,
}

impl State {
    /// The word used in the envelope and in `mxa-queue list`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Deferred => "deferred",
            State::Delivered => "delivered",
            State::Failed => "failed",
            State::Held => "held",
        }
    }

    fn parse(s: &str) -> Option<State> {
        Some(match s {
            "pending" => State::Pending,
            "deferred" => State::Deferred,
            "delivered" => State::Delivered,
            "failed" => State::Failed,
            "held" => State::Held,
            _ => return None,
        })
    }

    /// Delivered and failed recipients are final: nothing more is tried.
    pub fn is_final(self) -> bool {
        matches!(self, State::Delivered | State::Failed)
    }
}

/// The success report (RFC 3464 `Action:`) owed for a delivered
/// recipient whose NOTIFY includes SUCCESS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Success {
    /// Delivered here (the MDA, a file, a command): `Action: delivered`.
    Delivered,
    /// Accepted by a server that does not offer DSN, so that NOTIFY could
    /// not go along (RFC 3461 §5.2.2): `Action: relayed`.
    Relayed,
}

impl Success {
    /// The word used in the envelope and in the report's `Action:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Success::Delivered => "delivered",
            Success::Relayed => "relayed",
        }
    }

    fn parse(s: &str) -> Option<Success> {
        match s {
            "delivered" => Some(Success::Delivered),
            "relayed" => Some(Success::Relayed),
            _ => None,
        }
    }
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// The address, without angle brackets.
    pub address: String,
    /// Where it stands.
    pub state: State,
    /// Delivery attempts made.
    pub attempts: u32,
    /// Unix time of the next attempt, for deferred recipients.
    pub next_try: Option<u64>,
    /// The last reply from the remote server or the MDA.
    pub last_reply: Option<String>,
    /// DSN NOTIFY (RFC 3461), as given.
    pub notify: Option<String>,
    /// DSN ORCPT (RFC 3461), as given.
    pub orcpt: Option<String>,
    /// The local address this one was expanded from (an alias or a
    /// `.forward`), so that bounces name what the sender wrote and a
    /// `|command` or `/file` target is only ever one an alias file gave.
    pub parent: Option<String>,
    /// A success report owed to the sender, not yet queued (see the
    /// module's documentation).
    pub success: Option<Success>,
}

impl Recipient {
    /// A pending recipient with no DSN parameters.
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            state: State::Pending,
            attempts: 0,
            next_try: None,
            last_reply: None,
            notify: None,
            orcpt: None,
            parent: None,
            success: None,
        }
    }
}

/// The envelope of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope {
    /// Unix time at which the message was queued.
    pub created: u64,
    /// The envelope sender; empty for the null sender `<>`.
    pub sender: String,
    /// Where the message came from (`local uid=1000`, `smtp 192.0.2.1`).
    pub origin: Option<String>,
    /// DSN RET (`full` or `hdrs`).
    pub ret: Option<String>,
    /// DSN ENVID.
    pub envid: Option<String>,
    /// BODY= of MAIL FROM (`7bit`, `8bitmime`, `binarymime`).
    pub body: Option<String>,
    /// Whether the message needs SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// Whether the delay warning was sent.
    pub warned: bool,
    /// The recipients, in the order given.
    pub recipients: Vec<Recipient>,
}

impl Envelope {
    /// An envelope for `sender` and `recipients`, created now.
    pub fn new(
        sender: impl Into<String>,
        recipients: impl IntoIterator<Item = String>,
    ) -> Envelope {
        Envelope {
            created: crate::now(),
            sender: sender.into(),
            origin: None,
            ret: None,
            envid: None,
            body: None,
            smtputf8: false,
            warned: false,
            recipients: recipients.into_iter().map(Recipient::new).collect(),
        }
    }

    /// Whether every recipient is delivered or failed.
    pub fn is_done(&self) -> bool {
        self.recipients.iter().all(|r| r.state.is_final())
    }

    /// The envelope as text.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(256);
        let mut line = |k: &str, v: &str| {
            let _ = writeln!(s, "{k} {}", escape(v));
        };
        line("created", &self.created.to_string());
        line("sender", &format!("<{}>", self.sender));
        opt(&mut line, "origin", &self.origin);
        opt(&mut line, "ret", &self.ret);
        opt(&mut line, "envid", &self.envid);
        opt(&mut line, "body", &self.body);
        if self.smtputf8 {
            line("smtputf8", "yes");
        }
        if self.warned {
            line("warned", "yes");
        }
        for r in &self.recipients {
            line("rcpt", &format!("<{}>", r.address));
            line("state", r.state.as_str());
            line("attempts", &r.attempts.to_string());
            if let Some(t) = r.next_try {
                line("next", &t.to_string());
            }
            opt(&mut line, "reply", &r.last_reply);
            opt(&mut line, "notify", &r.notify);
            opt(&mut line, "orcpt", &r.orcpt);
            opt(&mut line, "parent", &r.parent);
            if let Some(s) = r.success {
                line("success", s.as_str());
            }
        }
        format!("{MAGIC}\n{s}")
    }

    /// Parses an envelope; the error names the 1-based line and what is wrong.
    pub fn parse(text: &str) -> Result<Envelope, (usize, String)> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, MAGIC)) => {}
            _ => return Err((1, format!("expected {MAGIC:?}"))),
        }
        let mut env = Envelope::new("", Vec::new());
        let mut have_sender = false;
        for (i, raw) in lines {
            let n = i + 1;
            let (key, value) = raw.split_once(' ').unwrap_or((raw, ""));
            let value = unescape(value).ok_or((n, "bad escape".to_string()))?;
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| (n, format!("{key}: expected a number")))
            };
            let rcpt = env.recipients.last_mut();
            match (key, rcpt) {
                (
                    "created" | "sender" | "origin" | "ret" | "envid" | "body" | "smtputf8"
                    | "warned",
                    Some(_),
                ) => {
                    return Err((n, format!("{key} after a rcpt line")));
                }
                ("created", _) => env.created = num(&value)?,
                ("sender", _) => {
                    env.sender =
                        bracketed(&value).ok_or((n, "sender: expected <address>".into()))?;
                    have_sender = true;
                }
                ("origin", _) => env.origin = Some(value),
                ("ret", _) => env.ret = Some(value),
                ("envid", _) => env.envid = Some(value),
                ("body", _) => env.body = Some(value),
                ("smtputf8", _) => env.smtputf8 = value == "yes",
                ("warned", _) => env.warned = value == "yes",
                ("rcpt", _) => {
                    let a = bracketed(&value).ok_or((n, "rcpt: expected <address>".into()))?;
                    env.recipients.push(Recipient::new(a));
                }
                ("state", Some(r)) => {
                    r.state = State::parse(&value).ok_or((n, format!("unknown state {value:?}")))?
                }
                ("attempts", Some(r)) => r.attempts = num(&value)?.try_into().unwrap_or(u32::MAX),
                ("next", Some(r)) => r.next_try = Some(num(&value)?),
                ("reply", Some(r)) => r.last_reply = Some(value),
                ("notify", Some(r)) => r.notify = Some(value),
                ("orcpt", Some(r)) => r.orcpt = Some(value),
                ("parent", Some(r)) => r.parent = Some(value),
                ("success", Some(r)) => {
                    r.success = Some(
                        Success::parse(&value)
                            .ok_or((n, format!("unknown success report {value:?}")))?,
                    )
                }
                (
                    "state" | "attempts" | "next" | "reply" | "notify" | "orcpt" | "parent"
                    | "success",
                    None,
                ) => {
                    return Err((n, format!("{key} before any rcpt")));
                }
                _ => return Err((n, format!("unknown key {key:?}"))),
            }
        }
        if !have_sender {
            return Err((1, "no sender line".into()));
        }
        Ok(env)
    }
}

fn opt(line: &mut impl FnMut(&str, &str), key: &str, v: &Option<String>) {
    if let Some(v) = v {
        line(key, v);
    }
}

fn bracketed(v: &str) -> Option<String> {
    v.strip_prefix('<')?.strip_suffix('>').map(str::to_string)
}

/// Escapes `\` and control characters so a value stays on one line.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn unescape(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                let b = u32::from_str_radix(&hex, 16).ok()?;
                out.push(char::from_u32(b)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state() -> impl Strategy<Value = State> {
        prop_oneof![
            Just(State::Pending),
            Just(State::Deferred),
            Just(State::Delivered),
            Just(State::Failed),
            Just(State::Held)
        ]
    }

    prop_compose! {
        fn recipient()(address in ".*", state in state(), attempts in any::<u32>(),
                       next_try in any::<Option<u64>>(), last_reply in any::<Option<String>>(),
                       notify in any::<Option<String>>(), orcpt in any::<Option<String>>(),
                       parent in any::<Option<String>>(),
                       success in proptest::option::of(prop_oneof![
                           Just(Success::Delivered), Just(Success::Relayed)])) -> Recipient {
            Recipient { address, state, attempts, next_try, last_reply, notify, orcpt, parent, success }
        }
    }

    prop_compose! {
        fn envelope()(created in any::<u64>(), sender in ".*", origin in any::<Option<String>>(),
                      ret in any::<Option<String>>(), envid in any::<Option<String>>(),
                      body in any::<Option<String>>(), smtputf8 in any::<bool>(), warned in any::<bool>(),
                      recipients in proptest::collection::vec(recipient(), 0..5)) -> Envelope {
            Envelope { created, sender, origin, ret, envid, body, smtputf8, warned, recipients }
        }
    }

    proptest! {
        #[test]
        fn round_trip(env in envelope()) {
            let text = env.to_text();
            prop_assert_eq!(Envelope::parse(&text), Ok(env));
        }
    }

    #[test]
    fn reads_a_written_example() {
        let text = "mxa-envelope 1\ncreated 5\nsender <>\nrcpt <b@x>\nstate deferred\nattempts 2\nnext 9\nreply 451 4.7.1 try\\x0alater\n";
        let env = Envelope::parse(text).expect("parse");
        assert_eq!(env.sender, "");
        assert_eq!(env.recipients[0].state, State::Deferred);
        assert_eq!(
            env.recipients[0].last_reply.as_deref(),
            Some("451 4.7.1 try\nlater")
        );
    }

    #[test]
    fn refuses_damage() {
        for (text, line) in [
            ("", 1),
            ("mxa-envelope 1\ncreated 1\n", 1),
            ("mxa-envelope 1\nsender <>\nstate pending\n", 3),
            ("mxa-envelope 1\nsender <>\nrcpt <a>\nstate lost\n", 4),
            ("mxa-envelope 1\nsender <>\nfrobnicate 1\n", 3),
            ("mxa-envelope 1\nsender a@b\n", 2),
            ("mxa-envelope 1\nsender <>\nrcpt <a>\nenvid x\n", 4),
            ("mxa-envelope 1\nsender <>\nrcpt <a>\nsuccess maybe\n", 4),
            ("mxa-envelope 1\nsender <>\nsuccess relayed\n", 3),
        ] {
            assert_eq!(
                Envelope::parse(text).map_err(|e| e.0),
                Err(line),
                "{text:?}"
            );
        }
    }
}
