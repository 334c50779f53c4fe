//! The hand-over from mxa-sendmail to mxa-postdrop on a pipe: the envelope
//! in the spool's own text format, a blank line, then the message. The
//! helper trusts none of it: it resets what only the spool may set (times,
//! states, origin) and checks every address again.

use std::io::{BufRead, Read};

use mxa_spool::{Envelope, State};

use crate::message::check_address;
use crate::{Failure, exit};

/// Longest envelope part accepted (a million bytes is some 10,000
/// recipients; the queue is no place for more in one message).
pub const MAX_ENVELOPE: u64 = 1 << 20;

/// Encodes an envelope and message for the helper.
pub fn encode(env: &Envelope, message: &[u8]) -> Vec<u8> {
    let mut out = env.to_text().into_bytes();
    out.push(b'\n');
    out.extend_from_slice(message);
    out
}

/// Decodes what mxa-sendmail sent. `limit` bounds the message part.
pub fn decode(
    input: &mut impl BufRead,
    hostname: &str,
    limit: u64,
) -> Result<(Envelope, Vec<u8>), Failure> {
    let bad = |m: String| Failure::new(exit::DATAERR, format!("bad hand-over: {m}"));
    let mut head = Vec::new();
    let mut lim = input.by_ref().take(MAX_ENVELOPE);
    loop {
        let start = head.len();
        let n = lim
            .read_until(b'\n', &mut head)
            .map_err(|e| bad(e.to_string()))?;
        if n == 0 {
            return Err(bad("no blank line after the envelope".into()));
        }
        if &head[start..] == b"\n" {
            head.truncate(start);
            break;
        }
    }
    let text = String::from_utf8(head).map_err(|_| bad("envelope is not UTF-8".into()))?;
    let mut env = Envelope::parse(&text).map_err(|(l, m)| bad(format!("line {l}: {m}")))?;
    if !env.sender.is_empty() {
        env.sender = check_address(&env.sender, hostname).map_err(bad)?;
    }
    crate::message::check_dsn(&env).map_err(bad)?;
    if env.recipients.is_empty() {
        return Err(Failure::new(exit::USAGE, "no recipients"));
    }
    for r in &mut env.recipients {
        r.address = check_address(&r.address, hostname).map_err(bad)?;
        r.state = State::Pending;
        r.attempts = 0;
        r.next_try = None;
        r.last_reply = None;
        r.orcpt = None;
        // Only the queue runner's alias expansion may set a parent: it is
        // what makes a `|command` or `/file` recipient deliverable.
        r.parent = None;
        r.success = None;
    }
    env.origin = None;
    env.warned = false;
    let mut message = Vec::new();
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut message)
        .map_err(|e| bad(e.to_string()))?;
    if message.len() as u64 > limit {
        return Err(Failure::new(
            exit::DATAERR,
            format!("message larger than max_message_size ({limit} bytes)"),
        ));
    }
    Ok((env, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_resets_trusted_fields() {
        let mut env = Envelope::new("me@h", ["you@x".to_string()]);
        env.recipients[0].state = State::Delivered;
        env.origin = Some("smtp 192.0.2.1".into());
        env.recipients[0].parent = Some("alias@h".into());
        let wire = encode(&env, b"Subject: x\n\nbody\n");
        let (got, msg) = decode(&mut &wire[..], "h", 1000).expect("decode");
        assert_eq!(got.recipients[0].state, State::Pending);
        assert_eq!(got.origin, None);
        assert_eq!(got.recipients[0].parent, None);
        assert_eq!(msg, b"Subject: x\n\nbody\n");
    }

    #[test]
    fn refuses_bad_input() {
        assert!(decode(&mut &b"garbage"[..], "h", 10).is_err());
        let env = Envelope::new("me@h", ["-oQ/tmp/x@y".to_string()]);
        assert!(decode(&mut &encode(&env, b"x")[..], "h", 10).is_err());
        let env = Envelope::new("me@h", Vec::new());
        assert_eq!(
            decode(&mut &encode(&env, b"x")[..], "h", 10)
                .expect_err("no rcpt")
                .code,
            exit::USAGE
        );
        let env = Envelope::new("me@h", ["a@b".to_string()]);
        assert_eq!(
            decode(&mut &encode(&env, &[b'x'; 20])[..], "h", 10)
                .expect_err("big")
                .code,
            exit::DATAERR
        );
    }
}
