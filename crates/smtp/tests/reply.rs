//! Table tests of the reply parser (RFC 5321 §4.2) and of `Reply`'s
//! accessors (RFC 3463), and property tests: arbitrary bytes never panic,
//! and what a server writes parses back.
#![allow(clippy::unwrap_used)]

use mxa_smtp::ReplyError;
use mxa_smtp::reply::{MAX_LINE, MAX_LINES, Parser, Reply};
use proptest::prelude::*;

type Parsed = Result<Reply, ReplyError>;

fn parse_all(bytes: &[u8]) -> Vec<Parsed> {
    let mut p = Parser::default();
    p.feed(bytes);
    p.collect()
}

fn reply(code: u16, lines: &[&str]) -> Result<Reply, ReplyError> {
    Ok(Reply {
        code,
        lines: lines.iter().map(|l| l.to_string()).collect(),
    })
}

/// RFC 5321 §4.2: `Reply-line = *( Reply-code "-" [ textstring ] CRLF )
/// Reply-code [ SP textstring ] CRLF`, codes `%x32-35 %x30-35 %x30-39`.
#[test]
fn parser_table() {
    let bad_code = |s: &str| Err(ReplyError::BadCode(s.into()));
    let cases: Vec<(&[u8], Vec<Parsed>)> = vec![
        (b"250 OK\r\n", vec![reply(250, &["OK"])]),
        (
            b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 10\r\n",
            vec![reply(250, &["mx.example", "PIPELINING", "SIZE 10"])],
        ),
        (b"250\r\n", vec![reply(250, &[""])]),
        (b"250-\r\n250 last\r\n", vec![reply(250, &["", "last"])]),
        (b"220 bare LF\n", vec![reply(220, &["bare LF"])]),
        (
            b"250 a\r\n354 b\r\n",
            vec![reply(250, &["a"]), reply(354, &["b"])],
        ),
        (b"250 two  spaces \r\n", vec![reply(250, &["two  spaces "])]),
        (b"250 ctl\x01\x1b[31m\r\n", vec![reply(250, &["ctl??[31m"])]),
        (b"250 bare\rCR\r\n", vec![reply(250, &["bare?CR"])]),
        (b"250 tab\there\r\n", vec![reply(250, &["tab\there"])]),
        (b"550 caf\xe9\r\n", vec![reply(550, &["caf\u{fffd}"])]),
        (
            b"250-a\r\n251 b\r\n",
            vec![Err(ReplyError::CodeMismatch {
                expected: 250,
                found: 251,
            })],
        ),
        (b"25 short\r\n", vec![bad_code("25 short")]),
        (b"\r\n", vec![bad_code("")]),
        (b"OK 250\r\n", vec![bad_code("OK 250")]),
        (b"650 no class 6\r\n", vec![bad_code("650 no class 6")]),
        (b"160 no class 1\r\n", vec![bad_code("160 no class 1")]),
        (
            b"260 second digit 6\r\n",
            vec![bad_code("260 second digit 6")],
        ),
        (
            b"250_x\r\n",
            vec![Err(ReplyError::BadSeparator("250_x".into()))],
        ),
        // After an error the parser starts afresh at the next line.
        (
            b"xx\r\n250 ok\r\n",
            vec![bad_code("xx"), reply(250, &["ok"])],
        ),
        (b"250 no line end yet", vec![]),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse_all(input),
            want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// Bytes after the 220 to STARTTLS, even part of a line, must show
/// (RFC 3207 §4.2: they would be read as if they came over TLS).
#[test]
fn parser_is_empty_after_whole_replies_only() {
    let mut p = Parser::default();
    assert!(p.is_empty());
    p.feed(b"220 go ahead\r\n");
    assert!(p.next().is_some() && p.is_empty());
    p.feed(b"220 go ahead\r\n250 smug");
    assert!(p.next().is_some() && p.next().is_none());
    assert!(!p.is_empty(), "a partial line is buffered");
    let mut p = Parser::default();
    p.feed(b"250-first\r\n");
    assert!(
        p.next().is_none() && !p.is_empty(),
        "a partial reply is held"
    );
}

/// Bytes arriving one at a time give the same replies.
#[test]
fn parser_byte_by_byte() {
    let input = b"250-mx.example\r\n250 8BITMIME\r\n354 go\r\n";
    let mut p = Parser::default();
    let mut got = Vec::new();
    for b in input {
        p.feed(&[*b]);
        got.extend(&mut p);
    }
    assert_eq!(
        got,
        vec![reply(250, &["mx.example", "8BITMIME"]), reply(354, &["go"])]
    );
}

#[test]
fn parser_line_limit() {
    let at_limit = format!("250 {}\r\n", "x".repeat(MAX_LINE - 4));
    assert!(parse_all(at_limit.as_bytes())[0].is_ok());
    let over = format!("250 {}\r\n250 next\r\n", "x".repeat(MAX_LINE - 3));
    assert_eq!(
        parse_all(over.as_bytes()),
        vec![Err(ReplyError::LineTooLong), reply(250, &["next"])]
    );

    // A long line still arriving is refused before its end, and skipped.
    let mut p = Parser::default();
    p.feed(&[b'x'; MAX_LINE * 2]);
    assert_eq!(p.next(), Some(Err(ReplyError::LineTooLong)));
    p.feed(&[b'x'; MAX_LINE * 2]);
    assert_eq!(p.next(), None);
    p.feed(b"xx\r\n221 bye\r\n");
    assert_eq!(p.next(), Some(reply(221, &["bye"])));
}

#[test]
fn parser_lines_limit() {
    let many = |n: usize| {
        let mut s = "250-x\r\n".repeat(n - 1);
        s.push_str("250 end\r\n221 bye\r\n");
        s
    };
    let ok = parse_all(many(MAX_LINES).as_bytes());
    assert_eq!(ok[0].as_ref().unwrap().lines.len(), MAX_LINES);
    // The rest of the over-long reply is skipped; the next one is read.
    let over = parse_all(many(MAX_LINES + 5).as_bytes());
    assert_eq!(
        over,
        vec![Err(ReplyError::TooManyLines), reply(221, &["bye"])]
    );
}

/// RFC 3463 §2: `class.subject.detail`, class matching the reply's.
#[test]
fn enhanced_codes() {
    let cases = [
        (550, "5.1.1 no such user", Some("5.1.1")),
        (250, "2.0.0", Some("2.0.0")),
        (451, "4.123.999 x", Some("4.123.999")),
        (550, "4.1.1 wrong class", None),
        (550, "5.1 too short", None),
        (550, "5.1.1.1 too long", None),
        (550, "5.1.1234 detail too long", None),
        (550, "5.x.1 not digits", None),
        (550, "no code", None),
        (354, "3.0.0 no class 3", None),
    ];
    for (code, text, want) in cases {
        assert_eq!(
            Reply::new(code, text).enhanced().as_deref(),
            want,
            "{code} {text}"
        );
    }
}

#[test]
fn classes_and_text() {
    let r = Reply {
        code: 550,
        lines: vec![
            "5.1.1 no such".into(),
            "5.1.1 user here".into(),
            "see x".into(),
        ],
    };
    assert_eq!(
        (r.class(), r.is_positive(), r.is_permanent()),
        (5, false, true)
    );
    assert_eq!(r.text(), "550 5.1.1 no such / user here / see x");
    assert_eq!(r.to_string(), r.text());
    assert!(Reply::new(354, "go").is_positive() && !Reply::new(451, "x").is_positive());
    assert_eq!(Reply::new(250, "").text(), "250");
    assert_eq!(
        Reply {
            code: 221,
            lines: vec![]
        }
        .text(),
        "221"
    );
}

#[test]
fn to_wire() {
    let r = Reply {
        code: 250,
        lines: vec!["mx".into(), "PIPELINING".into()],
    };
    assert_eq!(r.to_wire(), b"250-mx\r\n250 PIPELINING\r\n");
    assert_eq!(
        Reply {
            code: 221,
            lines: vec![]
        }
        .to_wire(),
        b"221\r\n"
    );
}

proptest! {
    /// The parser is fed whatever the network sends: it must never panic,
    /// and what it returns respects its bounds.
    #[test]
    fn parser_never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20)) {
        let mut p = Parser::default();
        for chunk in &chunks {
            p.feed(chunk);
            for r in (&mut p).flatten() {
                prop_assert!((200..=559).contains(&r.code));
                prop_assert!(!r.lines.is_empty() && r.lines.len() <= MAX_LINES);
            }
        }
    }

    /// Structured noise reaches the deeper paths: codes, separators, limits.
    #[test]
    fn parser_never_panics_on_reply_like_input(
        lines in prop::collection::vec("[2-6][0-6][0-9][ -_]?[a-z\r]{0,5}", 0..150),
        long in 0usize..3000,
    ) {
        let mut p = Parser::default();
        for (i, l) in lines.iter().enumerate() {
            p.feed(l.as_bytes());
            if i == lines.len() / 2 {
                p.feed(&vec![b'y'; long]);
            }
            p.feed(if i % 3 == 0 { b"\n" } else { b"\r\n" });
            for _ in &mut p {}
        }
    }

    /// What a server writes with `to_wire` parses back unchanged.
    #[test]
    fn wire_round_trip(
        code in (2u16..=5, 0u16..=5, 0u16..=9).prop_map(|(a, b, c)| a * 100 + b * 10 + c),
        lines in prop::collection::vec("[ -~]{0,60}", 1..10),
    ) {
        let r = Reply { code, lines };
        let mut p = Parser::default();
        p.feed(&r.to_wire());
        prop_assert_eq!(p.next(), Some(Ok(r)));
        prop_assert_eq!(p.next(), None);
    }
}
