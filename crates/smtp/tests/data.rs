//! The message on the wire (RFC 5321 §4.5.2 dot-stuffing, §2.3.8 line
//! ends), and property tests of the client as a whole.
#![allow(clippy::unwrap_used)]

use mxa_smtp::client::{Client, Config, Envelope, Step, Tls, dot_stuff};
use mxa_smtp::reply::Reply;
use proptest::prelude::*;

#[test]
fn dot_stuff_table() {
    let cases: [(&[u8], &[u8]); 14] = [
        (b"", b".\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
        (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
        (b"a\nb", b"a\r\nb\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b".leading\n..two\n", b"..leading\r\n...two\r\n.\r\n"),
        (b"a\n.\nb\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b"\r\n.\r\n", b"\r\n..\r\n.\r\n"),
        (b"x.y\n. z\n", b"x.y\r\n.. z\r\n.\r\n"),
        // A bare CR ends a line (RFC 5321 §2.3.8 forbids it on the wire).
        (b"a\rb\n", b"a\r\nb\r\n.\r\n"),
        (b"a\r\r\nb", b"a\r\n\r\nb\r\n.\r\n"),
        (b"a\r", b"a\r\n.\r\n"),
        (b"a\r.b", b"a\r\n..b\r\n.\r\n"),
    ];
    for (input, want) in cases {
        assert_eq!(
            String::from_utf8_lossy(&dot_stuff(input)),
            String::from_utf8_lossy(want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// The wire form is what the server un-stuffs back into the message.
fn unstuff(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in wire.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

proptest! {
    #[test]
    fn dot_stuff_properties(msg in prop::collection::vec(prop::sample::select(b"ab.\r\n".to_vec()), 0..60)) {
        let wire = dot_stuff(&msg);
        let wire = wire.strip_suffix(b".\r\n").unwrap();
        // Only CRLF line ends, the last line ended, no line that is a lone
        // dot (which would end the message early).
        for (i, &b) in wire.iter().enumerate() {
            prop_assert_eq!(b == b'\r', wire.get(i + 1) == Some(&b'\n'));
            prop_assert_eq!(b == b'\n', i > 0 && wire[i - 1] == b'\r');
        }
        prop_assert!(wire.is_empty() || wire.ends_with(b"\r\n"));
        prop_assert!(!wire.split(|&b| b == b'\n').any(|l| l == b".\r"));
        // Un-stuffed, it is the message with CRLF line ends.
        let mut normal = Vec::new();
        let mut it = msg.iter().peekable();
        while let Some(&b) = it.next() {
            match b {
                b'\r' => { it.next_if_eq(&&b'\n'); normal.extend_from_slice(b"\r\n"); }
                b'\n' => normal.extend_from_slice(b"\r\n"),
                _ => normal.push(b),
            }
        }
        if !normal.is_empty() && !normal.ends_with(b"\r\n") {
            normal.extend_from_slice(b"\r\n");
        }
        prop_assert_eq!(unstuff(wire), normal);
    }

    /// Whatever a server answers, in whatever order the caller calls: no
    /// panic, every Done has one result per recipient (or none, for "set
    /// up"), and a closed client stays closed.
    #[test]
    fn client_survives_any_dialogue(events in prop::collection::vec(event(), 0..40), tls in 0usize..4) {
        let tls = [Tls::Opportunistic, Tls::Required, Tls::Never, Tls::AlreadyOn][tls];
        let auth = Some(("u".to_string(), "p".to_string())).filter(|_| tls == Tls::AlreadyOn);
        let mut client = Client::new(Config { helo: "c.example".into(), tls, auth });
        let mut closed = false;
        for ev in events {
            let step = match ev {
                Event::Reply(code, text) => client.on_reply(Reply::new(code, text)),
                Event::Start => client.start(envelope()),
                Event::Quit => client.quit(),
                Event::Tls => client.tls_established(),
                Event::Lost => Step::Done(client.connection_error("lost")),
            };
            if let Step::Done(o) = &step {
                prop_assert!(o.results.is_empty() || o.results.len() == 3, "{:?}", o);
            }
            if closed {
                prop_assert!(matches!(step, Step::Close | Step::Done(_)), "{:?}", step);
            }
            closed |= step == Step::Close;
        }
    }
}

#[derive(Debug, Clone)]
enum Event {
    Reply(u16, String),
    Start,
    Quit,
    Tls,
    Lost,
}

fn event() -> impl Strategy<Value = Event> {
    let codes = prop::sample::select(vec![
        220, 221, 235, 250, 334, 354, 421, 450, 451, 454, 500, 503, 535, 550, 554,
    ]);
    let text = prop::sample::select(vec!["ok", "mx\nPIPELINING", "5.1.1 no", "x"]);
    prop_oneof![
        8 => (codes, text).prop_map(|(c, t)| Event::Reply(c, t.to_string())),
        2 => Just(Event::Start),
        1 => Just(Event::Quit),
        1 => Just(Event::Tls),
        1 => Just(Event::Lost),
    ]
}

fn envelope() -> Envelope {
    Envelope {
        sender: "a@example.org".into(),
        recipients: vec![
            "b@example.net".into(),
            "c@example.net".into(),
            "d@example.net".into(),
        ],
        size: Some(10),
        ..Envelope::default()
    }
}
