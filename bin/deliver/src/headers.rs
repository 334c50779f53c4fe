//! The header rules of DESIGN.md: `Return-Path:` replaced or added,
//! `Delivered-To:` added unless the calling MTA already did, and a mail loop
//! refused.
//!
//! Postfix's local(8) and pipe(8) (flags R, O, D) prepend `Return-Path:`,
//! `X-Original-To:` and `Delivered-To:`. Among those leading trace fields, a
//! `Delivered-To:` naming our recipient is the MTA's own; any other one for
//! the same recipient means the message has been here before: a loop.

use mxa_message::{Field, Parsed};

const TRACE: [&str; 3] = ["Return-Path", "X-Original-To", "Delivered-To"];

/// The message came back to a recipient it was already delivered to.
#[derive(Debug, PartialEq, Eq)]
pub struct Loop;

/// The address in a field value, without angle brackets, for comparison.
fn addr(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(v)
}

/// Whether two addresses are the same recipient: local parts exactly (RFC
/// 5321 §2.4 leaves them case-sensitive), domains in any case.
pub fn same_address(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => a == b,
    }
}

/// Applies the rules to `msg`; `recipient` None adds no `Delivered-To:`
/// (a delivery to a named Maildir with no recipient known).
pub fn prepare(msg: &mut Parsed, sender: &str, recipient: Option<&str>) -> Result<(), Loop> {
    if let Some(rcpt) = recipient {
        let lead = msg
            .fields
            .iter()
            .take_while(|f| TRACE.iter().any(|t| f.is(t)))
            .count();
        let is_ours = |f: &Field| f.is("Delivered-To") && same_address(addr(&f.value()), rcpt);
        let mta = msg.fields[..lead].iter().position(is_ours);
        let loops = msg
            .fields
            .iter()
            .enumerate()
            .any(|(i, f)| Some(i) != mta && is_ours(f));
        if loops {
            return Err(Loop);
        }
        if mta.is_none() {
            msg.fields.insert(0, Field::new("Delivered-To", rcpt));
        }
    }
    msg.remove("Return-Path");
    msg.fields
        .insert(0, Field::new("Return-Path", &format!("<{sender}>")));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str, sender: &str, rcpt: Option<&str>) -> Result<String, Loop> {
        let mut m = Parsed::parse(input.as_bytes());
        prepare(&mut m, sender, rcpt)?;
        Ok(String::from_utf8(m.to_bytes()).expect("utf8"))
    }

    #[test]
    fn adds_trace_fields() {
        let out = run("Subject: x\n\nbody\n", "a@b", Some("c@d")).expect("ok");
        assert_eq!(
            out,
            "Return-Path: <a@b>\nDelivered-To: c@d\nSubject: x\n\nbody\n"
        );
        let out = run("Subject: x\n\nbody\n", "", None).expect("ok");
        assert_eq!(out, "Return-Path: <>\nSubject: x\n\nbody\n");
    }

    // Postfix pipe(8) flags DRO: Delivered-To and X-Original-To at the top.
    #[test]
    fn keeps_the_mta_s_own_delivered_to_and_replaces_return_path() {
        let input = "Return-Path: <old@x>\nX-Original-To: c@d\nDelivered-To: c@D\nReceived: by mx\nSubject: x\n\nb\n";
        let out = run(input, "new@y", Some("c@d")).expect("ok");
        assert_eq!(
            out,
            "Return-Path: <new@y>\nX-Original-To: c@d\nDelivered-To: c@D\nReceived: by mx\nSubject: x\n\nb\n"
        );
    }

    #[test]
    fn refuses_loops() {
        // Delivered here before, then forwarded back: lower in the header.
        assert_eq!(
            run(
                "Received: by mx\nDelivered-To: c@d\nSubject: x\n\nb\n",
                "a@b",
                Some("c@d")
            ),
            Err(Loop)
        );
        // The MTA's line plus an older one.
        assert_eq!(
            run(
                "Delivered-To: c@d\nReceived: x\nDelivered-To: <c@d>\n\nb\n",
                "a@b",
                Some("c@d")
            ),
            Err(Loop)
        );
        // Two at the top: one is the MTA's, the other a loop.
        assert_eq!(
            run(
                "Delivered-To: c@d\nDelivered-To: c@d\n\nb\n",
                "a@b",
                Some("c@d")
            ),
            Err(Loop)
        );
        // Another recipient's Delivered-To is no loop; the local part's case matters.
        assert!(
            run(
                "Received: x\nDelivered-To: e@d\nDelivered-To: C@d\n\nb\n",
                "a@b",
                Some("c@d")
            )
            .is_ok()
        );
    }
}
