//! Transcript tests of the POP3 client, byte strings in and out.

use super::*;

fn ok(text: &str) -> Reply {
    Reply::Ok {
        text: text.into(),
        body: None,
    }
}

fn feed_all(c: &mut Client, bytes: &[u8]) -> Vec<Reply> {
    c.feed(bytes);
    let mut out = Vec::new();
    while let Some(r) = c.next_reply().expect("reply") {
        out.push(r);
    }
    out
}

// RFC 1939 §4 (greeting), §7 (USER/PASS), RFC 2449 §5 (CAPA).
#[test]
fn greeting_capa_and_login() {
    let mut c = Client::new();
    assert_eq!(
        feed_all(&mut c, b"+OK Dovecot ready.\r\n"),
        [ok("Dovecot ready.")]
    );
    assert_eq!(c.send(&Command::Capa), b"CAPA\r\n");
    let r = feed_all(
        &mut c,
        b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nSTLS\r\nSASL PLAIN LOGIN\r\nPIPELINING\r\n.\r\n",
    );
    let Some(Reply::Ok {
        body: Some(body), ..
    }) = r.first()
    else {
        panic!("{r:?}")
    };
    let caps = capabilities(body);
    assert!(has_capability(&caps, "STLS"));
    assert!(has_capability(&caps, "PIPELINING"));
    assert!(has_sasl(&caps, "PLAIN"));
    assert!(!has_sasl(&caps, "CRAM-MD5"));
    assert_eq!(c.send(&Command::User("a@b")), b"USER a@b\r\n");
    assert_eq!(c.send(&Command::Pass("p w")), b"PASS p w\r\n");
    let r = feed_all(&mut c, b"+OK\r\n-ERR [AUTH] Authentication failed.\r\n");
    assert_eq!(
        r,
        [ok(""), Reply::Err("[AUTH] Authentication failed.".into())]
    );
    assert_eq!(c.pending(), 0);
}

// RFC 5034 §4: "AUTH PLAIN" with the initial response, authzid empty.
#[test]
fn auth_plain_initial_response() {
    let cmd = Command::AuthPlain {
        user: "tim",
        pass: "tanstaaftanstaaf",
    };
    assert_eq!(cmd.encode(), b"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
}

// RFC 1939 §3: dot-stuffing, CRLF, the terminating ".", split reads.
#[test]
fn retr_unstuffs_and_uses_lf_across_split_reads() {
    let mut c = Client::new();
    feed_all(&mut c, b"+OK hi\r\n");
    c.send(&Command::Retr(1));
    let wire = b"+OK 40 octets\r\nSubject: x\r\n\r\n..leading dot\r\n.\r\n";
    let mut got = Vec::new();
    for b in wire.chunks(3) {
        c.feed(b);
        while let Some(r) = c.next_reply().expect("reply") {
            got.push(r);
        }
    }
    assert_eq!(
        got,
        [Reply::Ok {
            text: "40 octets".into(),
            body: Some(b"Subject: x\n\n.leading dot\n".to_vec())
        }]
    );
}

// RFC 2449 §6.6: pipelined commands get their replies in order, and an
// -ERR to a multi-line command is one line.
#[test]
fn pipelined_replies_in_order() {
    let mut c = Client::new();
    feed_all(&mut c, b"+OK\r\n");
    let mut out = c.send(&Command::Retr(1));
    out.extend(c.send(&Command::Retr(2)));
    out.extend(c.send(&Command::Dele(1)));
    assert_eq!(out, b"RETR 1\r\nRETR 2\r\nDELE 1\r\n");
    let r = feed_all(
        &mut c,
        b"+OK\r\na\r\n.\r\n-ERR no such message\r\n+OK deleted\r\n",
    );
    assert_eq!(
        r,
        [
            Reply::Ok {
                text: "".into(),
                body: Some(b"a\n".to_vec())
            },
            Reply::Err("no such message".into()),
            ok("deleted")
        ]
    );
}

#[test]
fn refuses_what_is_not_pop3() {
    let mut c = Client::new();
    c.feed(b"* OK IMAP4rev1\r\n");
    assert!(matches!(c.next_reply(), Err(Error::Malformed(_))));
    let mut c = Client::new();
    feed_all(&mut c, b"+OK\r\n");
    c.feed(b"+OK surprise\r\n");
    assert!(matches!(c.next_reply(), Err(Error::Unexpected(_))));
    let mut c = Client::new();
    c.feed(&vec![b'x'; MAX_STATUS_LINE + 1]);
    assert_eq!(c.next_reply(), Err(Error::LineTooLong));
}

// RFC 2595 §8 / CVE-2011-0411: bytes after the STLS reply are suspect.
#[test]
fn bytes_after_stls_reply_are_visible() {
    let mut c = Client::new();
    feed_all(&mut c, b"+OK\r\n");
    c.send(&Command::Stls);
    c.feed(b"+OK Begin TLS\r\n+OK injected\r\n");
    assert_eq!(c.next_reply(), Ok(Some(ok("Begin TLS"))));
    assert!(c.has_buffered());
}

// RFC 1939 §7 (UIDL), §5 (LIST).
#[test]
fn uidl_and_list_bodies() {
    assert_eq!(
        parse_uidl(b"1 whqtswO00WBw418f9t5JxYwZ\n2 QhdPYR:00WBw1Ph7x7\n").expect("uidl"),
        [
            (1, "whqtswO00WBw418f9t5JxYwZ".to_string()),
            (2, "QhdPYR:00WBw1Ph7x7".to_string())
        ]
    );
    assert!(parse_uidl(b"1\n").is_err());
    assert!(parse_uidl(b"x y\n").is_err());
    assert_eq!(
        parse_list(b"1 120\n2 200\n").expect("list"),
        [(1, 120), (2, 200)]
    );
}

mod properties {
    use super::super::*;
    use proptest::prelude::*;

    /// A multi-line body as a server sends it: CRLF, dot-stuffed, ".".
    fn wire(lines: &[String]) -> Vec<u8> {
        let mut w = b"+OK\r\n".to_vec();
        for l in lines {
            if l.starts_with('.') {
                w.push(b'.');
            }
            w.extend_from_slice(l.as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b".\r\n");
        w
    }

    proptest! {
        // RFC 1939 §3: whatever the lines and however the bytes are split
        // into reads, RETR gives back the lines, unstuffed, with LF.
        #[test]
        fn retr_round_trips_across_any_split(
            lines in proptest::collection::vec("[.a-zA-Z0-9 ]{0,40}", 0..20),
            cuts in proptest::collection::vec(1usize..64, 0..10),
        ) {
            let w = wire(&lines);
            let mut c = Client::new();
            c.feed(b"+OK\r\n");
            let greeting = matches!(c.next_reply(), Ok(Some(Reply::Ok { .. })));
            prop_assert!(greeting, "the greeting");
            c.send(&Command::Retr(1));
            let mut got = None;
            let mut rest = &w[..];
            for cut in cuts.iter().chain(std::iter::once(&usize::MAX)) {
                let (now, later) = rest.split_at((*cut).min(rest.len()));
                c.feed(now);
                rest = later;
                if let Some(r) = c.next_reply().expect("valid") {
                    got = Some(r);
                }
            }
            let want: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
            prop_assert_eq!(got, Some(Reply::Ok { text: String::new(), body: Some(want) }));
        }

        // Any bytes from a server: an error or replies, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut c = Client::new();
            c.send(&Command::Capa);
            c.send(&Command::Retr(1));
            c.feed(&data);
            for _ in 0..8 {
                if !matches!(c.next_reply(), Ok(Some(_))) {
                    break;
                }
            }
        }
    }
}
