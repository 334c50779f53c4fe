//! Tests of the reports, read back with mail-parser.

use super::*;
use mail_parser::{MessageParser, MimeHeaders, PartType};

const ORIGINAL: &[u8] = b"From: Alice <alice@example.org>\nTo: bob@example.net\n\
Subject: =?UTF-8?Q?D=C3=A9jeuner_vendredi?=\nMessage-ID: <m1@example.org>\n\n\
Hello Bob, see you on Friday.\n";
const CREATED: u64 = 1_763_922_000; // Sun, 23 Nov 2025 18:20:00 +0000
const USER_UNKNOWN: &str = "550 5.1.1 <bob@example.net>: user unknown";

fn entry(action: Action, reply: &str) -> Entry {
    Entry {
        address: "bob@example.net".into(),
        orcpt: Some("rfc822;bob@example.net".into()),
        action,
        status: status_of(reply, "5.0.0"),
        diagnostic: Diagnostic::Smtp(reply.into()),
        remote_mta: Some("mx.example.net".into()),
    }
}

/// A report on `entries`, five days after the message came, parsed
/// back: the raw bytes, and (type, language, text) of every part.
fn report(ret: Option<&str>, langs: &[&str], entries: Vec<Entry>) -> (Vec<u8>, Vec<Part>) {
    let mut env = mxa_spool::Envelope::new("alice@example.org", ["bob@example.net".into()]);
    (env.created, env.envid) = (CREATED, Some("QQ314159".into()));
    env.ret = ret.map(str::to_string);
    let langs: Vec<String> = langs.iter().map(|s| s.to_string()).collect();
    let r = Report {
        hostname: "mx.example.org",
        queue_id: "01JQ5Z8ABC",
        envelope: &env,
        entries,
        languages: &langs,
        now: CREATED + 5 * 86_400,
        retry_until: Some(CREATED + 5 * 86_400),
    };
    let raw = build(&r, ORIGINAL);
    assert!(raw.split(|&b| b == b'\n').all(|l| l.len() <= 998) && !raw.contains(&b'\r'));
    let parts = parts(&raw);
    (raw, parts)
}

type Part = (String, String, String);

/// mail-parser's view of a report: checks the top, then lists the parts.
fn parts(raw: &[u8]) -> Vec<Part> {
    let m = MessageParser::default().parse(raw).expect("parses");
    let ct = m.content_type().expect("content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    assert_eq!(m.header_raw("Auto-Submitted"), Some(" auto-replied\n"));
    let mut out = Vec::new();
    for p in &m.parts[1..] {
        let ct = p.content_type().expect("part type");
        let ty = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
        let lang = p.content_language().as_text_list().map(|l| l.join(","));
        let lang = lang.or_else(|| p.content_language().as_text().map(str::to_string));
        let text = match &p.body {
            PartType::Message(inner) => String::from_utf8_lossy(inner.raw_message()).into(),
            PartType::Multipart(_) => String::new(),
            _ => String::from_utf8_lossy(p.contents()).into(),
        };
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = if ty == "text/plain" { flat } else { text };
        out.push((ty, lang.unwrap_or_default(), text));
    }
    out
}

#[test]
fn english_failure_with_full_original() {
    let (raw, parts) = report(None, &["en"], vec![entry(Action::Failed, USER_UNKNOWN)]);
    let types: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        types,
        ["text/plain", "message/delivery-status", "message/rfc822"]
    );
    assert_eq!(parts[0].1, "en");
    let human = &parts[0].2;
    assert!(human.contains("Subject: Déjeuner vendredi"), "{human}");
    assert!(human.contains("This address does not exist"), "{human}");
    assert!(human.contains("answered: 550 5.1.1 <bob@example.net>: user unknown"));
    let dsn = &parts[1].2;
    for line in [
        "Reporting-MTA: dns; mx.example.org",
        "Original-Envelope-Id: QQ314159",
        "Arrival-Date: Sun, 23 Nov 2025 18:20:00 +0000",
        "Original-Recipient: rfc822;bob@example.net",
        "Final-Recipient: rfc822; bob@example.net",
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; mx.example.net",
        "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: user unknown",
        "Last-Attempt-Date: Fri, 28 Nov 2025 18:20:00 +0000",
    ] {
        assert!(dsn.lines().any(|l| l == line), "{line} in {dsn}");
    }
    assert!(!dsn.contains("Will-Retry-Until"));
    assert!(parts[2].2.ends_with("\n\nHello Bob, see you on Friday.\n"));
    let text = String::from_utf8(raw).expect("utf-8");
    assert!(text.starts_with("From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\n"));
    assert!(text.contains("\nTo: <alice@example.org>\n"));
    assert!(text.contains("\nMessage-ID: <01JQ5Z8ABC.1764354000.report@mx.example.org>\n"));
}

#[test]
fn english_and_french_alternatives() {
    let (raw, parts) = report(
        Some("full"),
        &["en", "fr"],
        vec![entry(Action::Failed, USER_UNKNOWN)],
    );
    let m = MessageParser::default().parse(&raw).expect("parses");
    let first = &m.parts[m.parts[0].sub_parts().expect("multipart")[0] as usize];
    assert_eq!(
        first.content_type().and_then(|c| c.subtype()),
        Some("alternative")
    );
    assert_eq!(first.sub_parts().map(<[_]>::len), Some(2));
    let texts: Vec<_> = parts.iter().filter(|p| p.0 == "text/plain").collect();
    assert_eq!(texts.len(), 2);
    assert_eq!((texts[0].1.as_str(), texts[1].1.as_str()), ("en", "fr"));
    assert!(
        texts[1].2.contains("Cette adresse n'existe pas"),
        "{}",
        texts[1].2
    );
    assert!(texts[1].2.contains("Objet : Déjeuner vendredi"));
    let subject = "Undelivered mail returned to sender / Message non distribué";
    assert_eq!(m.subject(), Some(subject));
    assert!(parts.iter().any(|p| p.0 == "message/rfc822"));
}

#[test]
fn ret_hdrs_returns_the_header_only() {
    let (raw, parts) = report(
        Some("HDRS"),
        &["fr"],
        vec![entry(Action::Failed, USER_UNKNOWN)],
    );
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].1, "fr");
    assert_eq!(parts[2].0, "text/rfc822-headers");
    assert!(parts[2].2.contains("Message-ID: <m1@example.org>"));
    assert!(!String::from_utf8_lossy(&raw).contains("see you on Friday"));
}

#[test]
fn delay_warning() {
    let reply = "451-4.7.1 greylisted\n451 4.7.1 try again later";
    let (raw, parts) = report(None, &["en"], vec![entry(Action::Delayed, reply)]);
    let dsn = &parts[1].2;
    assert!(dsn.contains("\nAction: delayed\nStatus: 4.7.1\n"), "{dsn}");
    assert!(dsn.contains("Diagnostic-Code: smtp; 451-4.7.1 greylisted\n 451 4.7.1 try"));
    assert!(dsn.contains("\nWill-Retry-Until: Fri, 28 Nov 2025 18:20:00 +0000\n"));
    let human = &parts[0].2;
    assert!(
        human.contains("until 28 November 2025 at 18:20 UTC"),
        "{human}"
    );
    assert!(human.contains("You do not need to do anything."));
    assert_eq!(parts[2].0, "text/rfc822-headers");
    assert!(!String::from_utf8_lossy(&raw).contains("see you on Friday"));
}

#[test]
fn long_and_local_diagnostics() {
    let long = format!("550 5.7.1 {}", "x ".repeat(200) + &"y".repeat(3000));
    let unix = Entry {
        address: "carol@example.org".into(),
        orcpt: None,
        action: Action::Failed,
        status: status_of("procmail: Couldn't write", "5.3.0"),
        diagnostic: Diagnostic::Unix("procmail: Impossible d'écrire".into()),
        remote_mta: None,
    };
    let entries = vec![entry(Action::Failed, &long), unix];
    let (_, parts) = report(None, &["en", "fr"], entries);
    let dsn = &parts[3].2;
    assert!(dsn.contains("\nStatus: 5.7.1\n") && dsn.contains("\nStatus: 5.3.0\n"));
    assert!(dsn.contains("Diagnostic-Code: x-unix; procmail: Impossible d'\\x{E9}crire"));
    assert_eq!(parts[0].0, "multipart/alternative");
    assert!(parts[1].2.contains("spam filter"));
    assert!(parts[1].2.contains("administrator of mx.example.org"));
    assert!(parts[2].2.contains("Impossible d'écrire") && parts[2].2.contains("anti-spam"));
}

#[test]
fn status_codes() {
    for (reply, fallback, want) in [
        ("550 5.1.1 x", "5.0.0", "5.1.1"),
        ("550 4.1.1 x", "5.0.0", "5.0.0"),
        ("451 4.7.1 x", "4.0.0", "4.7.1"),
        ("452-4.2.2 full\n452 4.2.2 full", "4.0.0", "4.2.2"),
        ("554 no code here", "4.0.0", "5.0.0"),
        ("421 closing", "5.0.0", "4.0.0"),
        ("250 ok", "5.0.0", "5.0.0"),
        ("250 2.1.5 ok", "5.0.0", "2.1.5"),
        ("550 5.1.1234 x", "5.0.0", "5.0.0"),
        ("550", "4.0.0", "5.0.0"),
        ("x-unix text", "5.3.0", "5.3.0"),
        ("5500 5.1.1 x", "5.3.0", "5.3.0"),
    ] {
        assert_eq!(status_of(reply, fallback), want, "{reply}");
    }
}

fn success(action: Action, reply: Option<&str>) -> Entry {
    Entry {
        address: "bob@example.net".into(),
        orcpt: Some("rfc822;bob@example.net".into()),
        action,
        status: reply.map_or("2.0.0".into(), |r| status_of(r, "2.0.0")),
        diagnostic: reply.map_or(Diagnostic::None, |r| Diagnostic::Smtp(r.into())),
        remote_mta: None,
    }
}

/// RFC 3464 §2.3.3: `Action: delivered`, status 2.0.0; RFC 3461 §4.3: RET
/// applies to failure reports only, so even RET=FULL returns the header.
#[test]
fn success_report_delivered_in_english_and_french() {
    let (raw, parts) = report(
        Some("FULL"),
        &["en", "fr"],
        vec![success(Action::Delivered, None)],
    );
    let types: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        types,
        [
            "multipart/alternative",
            "text/plain",
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ]
    );
    let (en, fr) = (&parts[1], &parts[2]);
    assert_eq!((en.1.as_str(), fr.1.as_str()), ("en", "fr"));
    assert!(en.2.contains("You asked to be told when your message reached"));
    assert!(
        en.2.contains("* bob@example.net Delivered: your message is in the recipient's mailbox on this server (mx.example.org)"),
        "{}",
        en.2
    );
    assert!(en.2.contains("Subject: Déjeuner vendredi"));
    assert!(!en.2.contains("answered"), "{}", en.2);
    assert!(
        fr.2.contains("Distribué : votre message est dans la boîte aux lettres"),
        "{}",
        fr.2
    );
    assert!(fr.2.contains("Objet : Déjeuner vendredi"));
    let dsn = &parts[3].2;
    for line in [
        "Reporting-MTA: dns; mx.example.org",
        "Original-Envelope-Id: QQ314159",
        "Original-Recipient: rfc822;bob@example.net",
        "Final-Recipient: rfc822; bob@example.net",
        "Action: delivered",
        "Status: 2.0.0",
    ] {
        assert!(dsn.lines().any(|l| l == line), "{line} in {dsn}");
    }
    assert!(!dsn.contains("Diagnostic-Code") && !dsn.contains("Will-Retry-Until"));
    assert!(parts[4].2.contains("Message-ID: <m1@example.org>"));
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("see you on Friday"), "{text}");
    assert!(text.contains("\nMessage-ID: <01JQ5Z8ABC.1764354000.success@mx.example.org>\n"));
    let m = MessageParser::default().parse(&raw[..]).expect("parses");
    assert_eq!(
        m.subject(),
        Some("Delivered: Déjeuner vendredi / Distribué : Déjeuner vendredi")
    );
}

/// RFC 3461 §5.2.2: handed to a server without DSN, the report says
/// `relayed`, with that server's reply.
#[test]
fn success_report_relayed() {
    let reply = "250 2.0.0 Ok: queued as 4Xyz (from mx.example.net)";
    for (lang, subject, says) in [
        (
            "en",
            "Relayed: Déjeuner vendredi",
            "Handed over to the recipient's mail server, which accepted it.",
        ),
        (
            "fr",
            "Transmis : Déjeuner vendredi",
            "Transmis au serveur de messagerie du destinataire, qui l'a accepté.",
        ),
    ] {
        let (raw, parts) = report(None, &[lang], vec![success(Action::Relayed, Some(reply))]);
        let types: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(
            types,
            [
                "text/plain",
                "message/delivery-status",
                "text/rfc822-headers"
            ]
        );
        assert_eq!(parts[0].1, lang);
        assert!(parts[0].2.contains(says), "{}", parts[0].2);
        assert!(parts[0].2.contains("250 2.0.0 Ok: queued as 4Xyz"));
        let dsn = &parts[1].2;
        assert!(dsn.contains("\nAction: relayed\nStatus: 2.0.0\n"), "{dsn}");
        assert!(dsn.contains(&format!("\nDiagnostic-Code: smtp; {reply}\n")));
        let m = MessageParser::default().parse(&raw[..]).expect("parses");
        assert_eq!(m.subject(), Some(subject));
        assert!(!String::from_utf8_lossy(&raw).contains("see you on Friday"));
    }
}

/// Two recipients delivered: the second's text points at the first.
#[test]
fn success_report_for_several_recipients() {
    let mut carol = success(Action::Delivered, None);
    carol.address = "carol@example.net".into();
    let (_, parts) = report(None, &["en"], vec![success(Action::Delivered, None), carol]);
    assert!(
        parts[0]
            .2
            .contains("* carol@example.net Same as for bob@example.net above."),
        "{}",
        parts[0].2
    );
    assert_eq!(parts[1].2.matches("Action: delivered").count(), 2);
}
