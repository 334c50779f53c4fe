//! Regression: a pipelined client can end the transaction in the same
//! input as it begins it (BDAT LAST in one packet, or everything at once
//! on stdin); the envelope for the `Received:` line must come with
//! MessageBegin, since the session has moved on by the time the caller
//! handles it.

use mxa_smtp::server::{Action, Config, Session, Verdict};

#[test]
fn message_begin_carries_the_transaction() {
    for (verb, body) in [
        ("DATA", "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"),
        ("BDAT", "BDAT 18 LAST\r\nSubject: x\r\n\r\nhi\r\n"),
    ] {
        let mut s = Session::new(Config::new("mx.example.org"));
        let _ = s.poll();
        s.greeting_sent();
        let input = format!(
            "EHLO client.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\n{body}"
        );
        s.feed(input.as_bytes());
        let mut begun = None;
        while let Some(a) = s.poll() {
            match a {
                Action::CheckRecipient(_) => s.recipient_checked(Verdict::Local),
                Action::MessageBegin { envelope } => begun = Some(envelope),
                Action::MessageEnd { .. } => s.message_stored(Ok("ID".into())),
                _ => {}
            }
        }
        let env = begun.unwrap_or_else(|| panic!("{verb}: no MessageBegin"));
        assert_eq!(env.helo, "client.example", "{verb}");
        assert!(env.esmtp, "{verb}");
        assert_eq!(env.sender, "a@example.net", "{verb}");
        assert_eq!(env.recipients.len(), 1, "{verb}");
        assert!(!s.in_transaction(), "{verb}: the transaction is over");
    }
}
