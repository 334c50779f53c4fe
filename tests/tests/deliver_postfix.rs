//! mxa-deliver under a real Postfix (Debian's, a private instance on
//! loopback): as `mailbox_command`, as a `pipe(8)` transport with
//! `flags=DRhu`, and deferring (not bouncing) on a temporary failure.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mxa_tests::postfix::{PF_DOMAIN, Postfix, TEST_USER, test_user, wait_until};
use mxa_tests::{bin, peer, stdout};

const WAIT: Duration = Duration::from_secs(30);

fn swaks(pf: &Postfix, to: &str, subject: &str) {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", pf.smtp_port)])
        .args(["--to", to, "--from", "alice@example.net"])
        .args(["--header", &format!("Subject: {subject}")])
        .output()
        .expect("swaks");
    assert!(out.status.success(), "swaks:\n{}", stdout(&out));
}

fn delivered(pf: &Postfix, md: &Path) -> Vec<String> {
    let read = || -> Vec<String> {
        fs::read_dir(md.join("new"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        wait_until(WAIT, || !read().is_empty()),
        "nothing in {}\n{}",
        md.display(),
        pf.log()
    );
    read()
}

#[test]
fn as_mailbox_command() {
    if peer("swaks").is_none() {
        return;
    }
    let cmd = format!("{} -n {{dir}}/out/Maildir", bin("mxa-deliver").display());
    let Some(pf) = Postfix::start(&[("mailbox_command", &cmd)], "") else {
        return;
    };
    let out = pf.user_dir(&test_user(), "out");
    swaks(
        &pf,
        &format!("{TEST_USER}@{PF_DOMAIN}"),
        "via mailbox_command",
    );
    let msgs = delivered(&pf, &out.join("Maildir"));
    let m = &msgs[0];
    assert!(m.starts_with("Return-Path: <alice@example.net>\n"), "{m}");
    assert_eq!(
        m.matches("Delivered-To:").count(),
        1,
        "Postfix's own line is kept, not doubled: {m}"
    );
    assert!(m.contains("Subject: via mailbox_command"), "{m}");
    assert!(!m.starts_with("From "), "the mbox From line is removed");
    assert!(pf.log().contains("status=sent"), "{}", pf.log());
}

#[test]
fn as_a_pipe_transport() {
    if peer("swaks").is_none() {
        return;
    }
    let master = format!(
        "mxa unix - n n - - pipe\n  flags=DRhu null_sender= user={TEST_USER} argv={} -n -f ${{sender}} -a ${{recipient}} {{dir}}/out/Maildir",
        bin("mxa-deliver").display()
    );
    let main = [
        ("local_transport", "mxa"),
        ("mxa_destination_recipient_limit", "1"),
    ];
    let Some(pf) = Postfix::start(&main, &master) else {
        return;
    };
    let out = pf.user_dir(&test_user(), "out");
    swaks(&pf, &format!("{TEST_USER}@{PF_DOMAIN}"), "via pipe");
    let msgs = delivered(&pf, &out.join("Maildir"));
    let m = &msgs[0];
    assert!(m.starts_with("Return-Path: <alice@example.net>\n"), "{m}");
    assert_eq!(
        m.matches(&format!("Delivered-To: {TEST_USER}@{PF_DOMAIN}"))
            .count(),
        1,
        "{m}"
    );
    assert!(
        pf.log().contains("relay=mxa") && pf.log().contains("status=sent"),
        "{}",
        pf.log()
    );
}

/// Issue #4: an unwritable Maildir is a temporary failure: Postfix defers
/// the message, it does not bounce it.
#[test]
fn an_unwritable_maildir_makes_postfix_defer() {
    if peer("swaks").is_none() {
        return;
    }
    let cmd = format!("{} -n {{dir}}/locked/Maildir", bin("mxa-deliver").display());
    let Some(pf) = Postfix::start(&[("mailbox_command", &cmd)], "") else {
        return;
    };
    let locked = pf.dir.path().join("locked");
    fs::create_dir_all(&locked).expect("mkdir"); // root's, 0755: the user cannot write
    swaks(&pf, &format!("{TEST_USER}@{PF_DOMAIN}"), "cannot be filed");
    let q = pf
        .wait_deferred(WAIT)
        .unwrap_or_else(|| panic!("not deferred: {:?}\n{}", pf.queue(), pf.log()));
    let v: serde_json::Value = serde_json::from_str(&q.json).expect("postqueue JSON");
    assert_eq!(v["queue_name"], "deferred");
    assert!(!pf.log().contains("status=bounced"), "{}", pf.log());
    assert!(
        wait_until(Duration::from_secs(5), || pf.log().contains("mxa-deliver")),
        "{}",
        pf.log()
    );
}
