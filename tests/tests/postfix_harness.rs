//! The private-Postfix harness itself: local(8) with `mailbox_command`, a
//! pipe(8) transport, a temporary failure that defers, and two instances at
//! once. Needs root and Debian's postfix and swaks (skips loudly without,
//! fails under `MXA_REQUIRE_PEERS=1`).

use std::fs;
use std::process::Command;
use std::time::Duration;

use mxa_tests::postfix::{PF_DOMAIN, Postfix, TEST_USER, test_user, wait_until};
use mxa_tests::{peer, stdout};

const WAIT: Duration = Duration::from_secs(20);

/// Starts an instance after checking for swaks too, with the test user.
fn start(main_cf: &[(&str, &str)], master_cf: &str) -> Option<(Postfix, nix::unistd::User)> {
    peer("swaks")?;
    let pf = Postfix::start(main_cf, master_cf)?;
    Some((pf, test_user()))
}

/// Sends one message over SMTP to `to` with swaks; asserts it was queued.
fn swaks(pf: &Postfix, to: &str) {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", pf.smtp_port)])
        .args(["--to", to, "--from", "a@b.example"])
        .args(["--header", "Subject: harness test"])
        .output()
        .expect("swaks");
    let text = stdout(&out);
    assert!(
        out.status.success() && text.contains("250 2.0.0 Ok: queued"),
        "swaks:\n{text}"
    );
}

/// Waits for a file that a delivery writes and returns its text.
fn delivered(pf: &Postfix, path: &std::path::Path) -> String {
    assert!(
        pf.wait_queue_empty(WAIT) && wait_until(WAIT, || path.exists()),
        "no delivery to {}\n{}",
        path.display(),
        pf.log()
    );
    fs::read_to_string(path).expect("read delivered message")
}

#[test]
fn mailbox_command_delivers_as_the_recipient() {
    let cmd = "/bin/sh -c 'id -un > {dir}/out/who; cat > {dir}/out/msg'";
    let Some((pf, user)) = start(&[("mailbox_command", cmd)], "") else {
        return;
    };
    let out = pf.user_dir(&user, "out");
    swaks(&pf, &format!("{TEST_USER}@{PF_DOMAIN}"));
    let msg = delivered(&pf, &out.join("msg"));
    assert!(msg.contains("Subject: harness test"), "{msg}");
    assert!(msg.contains("Return-Path: <a@b.example>"), "{msg}");
    assert!(
        msg.contains(&format!("Delivered-To: {TEST_USER}@{PF_DOMAIN}")),
        "{msg}"
    );
    let who = fs::read_to_string(out.join("who")).expect("who");
    assert_eq!(who.trim(), TEST_USER);
    assert!(pf.log().contains("status=sent"), "{}", pf.log());
}

#[test]
fn pipe_transport_delivers() {
    let master = "mxapipe unix - n n - - pipe\n  \
                  flags=DRhu user=mxatest argv=/bin/dd status=none of={dir}/out/pipe-${user}";
    let main = [
        ("local_transport", "mxapipe"),
        ("mxapipe_destination_recipient_limit", "1"),
    ];
    let Some((pf, user)) = start(&main, master) else {
        return;
    };
    let out = pf.user_dir(&user, "out");
    // Flag u lower-cases ${user}; D and R add the headers.
    let to = format!("{}@{PF_DOMAIN}", TEST_USER.to_uppercase());
    swaks(&pf, &to);
    let msg = delivered(&pf, &out.join(format!("pipe-{TEST_USER}")));
    assert!(msg.contains("Subject: harness test"), "{msg}");
    assert!(msg.contains("Return-Path: <a@b.example>"), "{msg}");
    assert!(msg.contains(&format!("Delivered-To: {to}")), "{msg}");
    assert!(pf.log().contains("relay=mxapipe"), "{}", pf.log());
}

#[test]
fn exit_75_defers_and_is_retried() {
    let cmd = "/bin/sh -c 'echo mailbox busy >&2; exit 75'";
    let Some((pf, _user)) = start(&[("mailbox_command", cmd)], "") else {
        return;
    };
    pf.send(
        &format!("{TEST_USER}@{PF_DOMAIN}"),
        b"Subject: defer\n\nx\n",
    );
    let q = pf.wait_deferred(WAIT);
    let q = q.unwrap_or_else(|| panic!("not deferred: {:?}\n{}", pf.queue(), pf.log()));
    let v: serde_json::Value = serde_json::from_str(&q.json).expect("postqueue JSON");
    assert_eq!(v["queue_name"], "deferred");
    let rcpt = &v["recipients"][0];
    assert_eq!(rcpt["address"], format!("{TEST_USER}@{PF_DOMAIN}"));
    let reason = rcpt["delay_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("mailbox busy"), "{reason}");
    // Retried within seconds (minimal_backoff_time = 1s), never bounced.
    let attempts = || pf.log().matches("status=deferred").count();
    assert!(wait_until(WAIT, || attempts() >= 2), "{}", pf.log());
    assert!(!pf.log().contains("status=bounced"), "{}", pf.log());
    assert_eq!(pf.queue().len(), 1);
}

#[test]
fn two_instances_run_at_once() {
    let cmd = "/bin/sh -c 'cat > {dir}/out/msg'";
    let Some((a, user)) = start(&[("mailbox_command", cmd)], "") else {
        return;
    };
    let b = Postfix::start(&[("mailbox_command", cmd)], "").expect("second instance");
    assert_ne!(a.smtp_port, b.smtp_port);
    for pf in [&a, &b] {
        let out = pf.user_dir(&user, "out");
        swaks(pf, &format!("{TEST_USER}@{PF_DOMAIN}"));
        assert!(delivered(pf, &out.join("msg")).contains("harness test"));
    }
    assert!(a.postconf().contains(&a.dir.path().display().to_string()));
}
