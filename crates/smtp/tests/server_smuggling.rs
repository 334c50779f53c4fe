//! Hostile input: SMTP smuggling (CVE-2023-51764, -51765, -51766), dot
//! transparency (RFC 5321 §4.5.2) against the client's `dot_stuff`, and
//! arbitrary bytes.
#![allow(clippy::unwrap_used)]

use mxa_smtp::client::dot_stuff;
use mxa_smtp::server::{Action, BareLf, Config, Session, Verdict};
use proptest::prelude::*;

/// Feed `chunks` to a greeted session, answering every request as a
/// friendly I/O layer would (recipients local, messages stored, AUTH
/// refused); returns every action.
fn drive(config: Config, chunks: &[&[u8]]) -> Vec<Action> {
    let mut session = Session::new(config);
    let mut actions = Vec::new();
    let mut queued = 0;
    let mut pump = |session: &mut Session, actions: &mut Vec<Action>| {
        while let Some(action) = session.poll() {
            match &action {
                Action::CheckRecipient(_) => session.recipient_checked(Verdict::Local),
                Action::CheckAuth { .. } => session.auth_checked(false),
                Action::StartTls => session.tls_established("TLSv1.3", "x"),
                Action::MessageEnd { .. } => {
                    queued += 1;
                    session.message_stored(Ok(format!("q{queued}")));
                }
                _ => {}
            }
            actions.push(action);
        }
    };
    pump(&mut session, &mut actions);
    session.greeting_sent();
    for chunk in chunks {
        if session.is_closed() {
            break;
        }
        session.feed(chunk);
        pump(&mut session, &mut actions);
    }
    actions
}

fn count(actions: &[Action], pred: impl Fn(&Action) -> bool) -> usize {
    actions.iter().filter(|a| pred(a)).count()
}

fn ends(actions: &[Action]) -> usize {
    count(actions, |a| matches!(a, Action::MessageEnd { .. }))
}

fn senders_accepted(actions: &[Action]) -> usize {
    count(
        actions,
        |a| matches!(a, Action::Reply(r) if r.lines[0].starts_with("2.1.0")),
    )
}

/// A session whose message body holds `payload` then a whole fake
/// transaction, ended by a real terminator.
fn smuggling_session(payload: &[u8]) -> Vec<u8> {
    let mut s = b"EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n\
        Subject: real\r\n\r\nbody"
        .to_vec();
    s.extend_from_slice(payload);
    s.extend_from_slice(
        b"MAIL FROM:<x@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nfake\r\n.\r\nQUIT\r\n",
    );
    s
}

const BARE_LF_PAYLOADS: [&[u8]; 3] = [b"\n.\n", b"\n.\r\n", b"\r\n.\n"];

// Normalize: the fake transaction is content of the one real message.
#[test]
fn smuggled_terminators_are_content_under_normalize() {
    for payload in BARE_LF_PAYLOADS {
        let wire = smuggling_session(payload);
        for split in 0..wire.len() {
            let actions = drive(Config::new("mx"), &[&wire[..split], &wire[split..]]);
            assert_eq!(ends(&actions), 1, "{payload:?} split at {split}");
            assert_eq!(
                senders_accepted(&actions),
                1,
                "{payload:?} split at {split}"
            );
            let data: Vec<u8> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::MessageData(d) => Some(d.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            let text = String::from_utf8(data).unwrap();
            assert!(text.contains("MAIL FROM:<x@example.net>\r\n"), "{text:?}");
            // Stored with CRLF line ends only.
            assert!(!text.replace("\r\n", "").contains(['\r', '\n']), "{text:?}");
        }
    }
}

// Reject, and a bare CR always: the message is refused and the session
// closed before anything after it is read as a command.
#[test]
fn smuggled_terminators_refused() {
    let mut reject = Config::new("mx");
    reject.bare_lf = BareLf::Reject;
    let cases: Vec<(&[u8], Config)> = BARE_LF_PAYLOADS
        .into_iter()
        .map(|p| (p, reject.clone()))
        .chain([
            (&b"\r.\r"[..], Config::new("mx")),
            (&b"\r.\r"[..], reject.clone()),
        ])
        .collect();
    for (payload, config) in cases {
        let wire = smuggling_session(payload);
        let actions = drive(config, &[&wire]);
        assert_eq!(ends(&actions), 0, "{payload:?}");
        assert_eq!(senders_accepted(&actions), 1, "{payload:?}");
        assert_eq!(actions.last(), Some(&Action::Close), "{payload:?}");
        let reply = actions.iter().rev().find_map(|a| match a {
            Action::Reply(r) => Some(r.code),
            _ => None,
        });
        assert_eq!(reply, Some(554), "{payload:?}");
        assert_eq!(count(&actions, |a| *a == Action::MessageAbort), 1);
    }
}

/// The message octets of a session that sends `stuffed` after DATA.
fn received(stuffed: &[u8]) -> Vec<u8> {
    let mut wire = b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n".to_vec();
    wire.extend_from_slice(stuffed);
    let actions = drive(Config::new("mx"), &[&wire]);
    assert_eq!(ends(&actions), 1);
    actions
        .into_iter()
        .filter_map(|a| match a {
            Action::MessageData(d) => Some(d),
            _ => None,
        })
        .flatten()
        .collect()
}

/// What dot_stuff's output means, undone the simple way: lines, each
/// leading dot dropped.
fn unstuff(stuffed: &[u8]) -> Vec<u8> {
    let body = &stuffed[..stuffed.len() - 3];
    let mut out = Vec::new();
    for line in body.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let line = line.strip_suffix(b"\r").unwrap();
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
    }
    out
}

proptest! {
    #[test]
    fn dot_stuffing_round_trips(msg in proptest::collection::vec(
        prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..300)) {
        let stuffed = dot_stuff(&msg);
        prop_assert_eq!(received(&stuffed), unstuff(&stuffed));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        chunks in proptest::collection::vec(proptest::collection::vec(
            prop_oneof![
                Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b' '), any::<u8>(),
            ], 0..64), 0..20),
        prefix in prop_oneof![
            Just(&b""[..]),
            Just(&b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n"[..]),
            Just(&b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nBDAT 40\r\n"[..]),
            Just(&b"EHLO c\r\nAUTH LOGIN\r\n"[..]),
        ],
        reject in any::<bool>(),
    ) {
        let mut config = Config::new("mx");
        config.max_line = 40;
        config.max_message_size = 100;
        config.auth_offered = true;
        config.auth_needs_tls = false;
        config.tls_available = true;
        if reject {
            config.bare_lf = BareLf::Reject;
        }
        let mut all: Vec<&[u8]> = vec![prefix];
        all.extend(chunks.iter().map(Vec::as_slice));
        let actions = drive(config, &all);
        prop_assert!(count(&actions, |a| *a == Action::Close) <= 1);
    }
}
