use super::*;

#[test]
fn pop3_records_survive_reload_and_compaction() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("acct").join("pop3-u@h-110");
    let mut s = Pop3State::load(&p).expect("load");
    assert!(!s.is_done("a"));
    s.record("a").expect("record");
    s.record("b").expect("record");
    s.record("c").expect("record");
    let s2 = Pop3State::load(&p).expect("reload");
    assert!(s2.is_done("a") && s2.is_done("b") && s2.is_done("c"));
    s.compact(&["b".to_string(), "x".to_string()])
        .expect("compact");
    let text = fs::read_to_string(&p).expect("read");
    assert_eq!(text, "mxa-fetch-state 1 pop3\nuidl b\n");
    s.record("x").expect("record after compaction");
    let s3 = Pop3State::load(&p).expect("reload");
    assert!(s3.is_done("b") && s3.is_done("x") && !s3.is_done("a"));
}

#[test]
fn a_torn_last_line_is_ignored_and_garbage_refused() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("s");
    fs::write(&p, "mxa-fetch-state 1 pop3\nuidl a\nuidl b").expect("write");
    let s = Pop3State::load(&p).expect("load");
    assert!(s.is_done("a") && !s.is_done("b") && !s.is_done("b"));
    fs::write(&p, "mxa-fetch-state 1 pop3\nhello\n").expect("write");
    let e = Pop3State::load(&p).expect_err("corrupt");
    assert!(e.to_string().contains(":2:"), "{e}");
    fs::write(&p, "something else\n").expect("write");
    assert!(Pop3State::load(&p).is_err());
    assert!(ImapState::load(&p).is_err());
}

#[test]
fn imap_through_and_holes() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("imap-u@h-143.INBOX");
    let mut s = ImapState::load(&p).expect("load");
    assert_eq!(s.uidvalidity(), None);
    s.reset(77).expect("reset");
    for u in [1, 2, 4, 5] {
        s.record(u).expect("record");
    }
    // 3 was refused by the MDA: it stays, and is the only one not done.
    let s2 = ImapState::load(&p).expect("reload");
    assert_eq!(s2.uidvalidity(), Some(77));
    assert!(s2.is_done(2) && !s2.is_done(3) && s2.is_done(5) && !s2.is_done(6));
    assert_eq!(s2.last_uid(), 5);
    s.compact(&BTreeSet::from([3, 4, 5])).expect("compact");
    assert_eq!(
        fs::read_to_string(&p).expect("read"),
        "mxa-fetch-state 1 imap\nuidvalidity 77\nthrough 2\nuid 4\nuid 5\n"
    );
    s.record(3).expect("record");
    s.compact(&BTreeSet::from([3, 4, 5])).expect("compact");
    assert_eq!(
        fs::read_to_string(&p).expect("read"),
        "mxa-fetch-state 1 imap\nuidvalidity 77\nthrough 5\n"
    );
    let s3 = ImapState::load(&p).expect("reload");
    assert!(s3.is_done(5) && !s3.is_done(6));
    // Everything expunged: through stays at the last UID known.
    s.compact(&BTreeSet::new()).expect("compact");
    assert!(ImapState::load(&p).expect("reload").is_done(5));
    s.reset(78).expect("reset");
    let s4 = ImapState::load(&p).expect("reload");
    assert_eq!(s4.uidvalidity(), Some(78));
    assert!(!s4.is_done(1));
}
