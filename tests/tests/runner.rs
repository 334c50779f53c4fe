//! The queue runner with local delivery, end to end: mxa-sendmail queues,
//! `mxa-queue flush` or `run` delivers through the configured MDA.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mxa_spool::{QueueId, State};
use mxa_tests::{System, logged_id, stderr, stdout};

fn send(sys: &System, args: &[&str], msg: &str) -> String {
    let mut a = vec!["-v", "-i"];
    a.extend_from_slice(args);
    let out = sys.run("mxa-sendmail", &a, msg.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    logged_id(&stderr(&out)).expect("id")
}

fn flush(sys: &System, args: &[&str]) -> Output {
    let mut a = vec!["flush"];
    a.extend_from_slice(args);
    sys.run("mxa-queue", &a, b"")
}

fn maildir_files(md: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .flat_map(|d| {
            fs::read_dir(md.join(d))
                .map(|r| r.flatten().map(|e| e.path()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    v.sort();
    v
}

fn with_queue(extra: &str) -> System {
    System::with_extra(&format!("\n[queue]\n{extra}\n"))
}

#[test]
fn flush_delivers_local_mail_through_mxa_deliver() {
    let sys = System::new();
    let id = send(
        &sys,
        &["-f", "alice@example.net", "test@example.test"],
        "Subject: hello\n\nlocal mail\n",
    );
    let out = flush(&sys, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("event=delivered id={id} to=<test@example.test>")),
        "{}",
        stderr(&out)
    );
    let files = maildir_files(&sys.root().join("mail/example.test/test"));
    assert_eq!(files.len(), 1);
    let text = fs::read_to_string(&files[0]).expect("read");
    assert!(
        text.starts_with(
            "Return-Path: <alice@example.net>\nDelivered-To: test@example.test\nReceived: "
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("id {id};")),
        "the queue id is in the Received: line"
    );
    assert!(
        sys.spool().list().expect("list").is_empty(),
        "delivered messages leave the queue"
    );
}

#[test]
fn a_deferring_mda_is_retried_on_schedule() {
    let sys = with_queue("mda = \"/bin/sh -c 'cat >/dev/null; echo mailbox locked >&2; exit 75'\"");
    let id = send(&sys, &["test@example.test"], "Subject: later\n\nx\n");
    let out = flush(&sys, &[]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let qid = QueueId::parse(&id).expect("id");
    let env = sys.spool().envelope(&qid).expect("still queued");
    let r = &env.recipients[0];
    assert_eq!(
        (r.state, r.attempts, r.last_reply.as_deref()),
        (State::Deferred, 1, Some("mailbox locked"))
    );
    let next = r.next_try.expect("next try");
    let wait = next - mxa_spool::now();
    assert!(
        (4 * 60..=6 * 60).contains(&wait),
        "first retry about 5 minutes later: {wait}s"
    );
    let list = stdout(&sys.run("mxa-queue", &["list"], b""));
    assert!(
        list.contains("<test@example.test> deferred 20") && list.contains("mailbox locked"),
        "{list}"
    );
    // --due leaves it alone; a plain flush tries it now.
    assert_eq!(flush(&sys, &["--due"]).status.code(), Some(75));
    assert_eq!(
        sys.spool().envelope(&qid).expect("env").recipients[0].attempts,
        1
    );
    assert_eq!(flush(&sys, &[]).status.code(), Some(75));
    assert_eq!(
        sys.spool().envelope(&qid).expect("env").recipients[0].attempts,
        2
    );
}

/// Issue #5: a failed recipient yields a bounce in the sender's local
/// Maildir, which Python's email package reads as an RFC 3464 report.
#[test]
fn a_failing_mda_bounces_to_the_sender() {
    let Some(python) = mxa_tests::peer("python3") else {
        return;
    };
    let sys = with_queue(
        "mda = \"/bin/sh -c 'cat >/dev/null; echo no mailbox for {user} >&2; exit 67'\"",
    );
    let id = send(
        &sys,
        &["-f", "test@example.test", "nobody-here@example.test"],
        "Subject: to nobody\n\nhello?\n",
    );
    let out = flush(&sys, &[]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "event=failed id={id} to=<nobody-here@example.test>"
        )),
        "{err}"
    );
    assert!(err.contains("event=bounce"), "{err}");
    // The bounce is now queued for test@example.test; deliver it for real.
    let cfg = fs::read_to_string(&sys.config).expect("config");
    fs::write(
        &sys.config,
        cfg.replace("mda = \"/bin/sh", "# mda = \"/bin/sh"),
    )
    .expect("config");
    let out = flush(&sys, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let files = maildir_files(&sys.root().join("mail/example.test/test"));
    assert_eq!(files.len(), 1, "the bounce reached the sender");
    let script = r#"
import email, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
assert m.get_content_type() == 'multipart/report', m.get_content_type()
assert m.get_param('report-type') == 'delivery-status'
assert m['Auto-Submitted'].startswith('auto-replied')
parts = list(m.iter_parts())
human = parts[0]
langs = [p['Content-Language'] for p in human.iter_parts()] if human.is_multipart() else [human['Content-Language']]
assert langs == ['en', 'fr'], langs
status = parts[1]
assert status.get_content_type() == 'message/delivery-status'
blocks = status.get_payload()
rcpt = blocks[1]
assert rcpt['Action'] == 'failed', rcpt['Action']
assert rcpt['Status'].startswith('5.'), rcpt['Status']
assert 'no mailbox for nobody-here' in rcpt['Diagnostic-Code'], rcpt['Diagnostic-Code']
assert 'nobody-here@example.test' in rcpt['Final-Recipient']
assert parts[2].get_content_type() in ('message/rfc822', 'text/rfc822-headers')
print('ok')
"#;
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&files[0])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(&files[0]).unwrap_or_default()
    );
}

#[test]
fn aliases_and_postmaster() {
    let sys = System::new();
    let root = sys.root();
    fs::write(
        root.join("aliases"),
        format!(
            "# aliases(5)\ninfo: test, \"|cat > {0}/piped.eml\", {0}/archive.mbox\nsales: info\n",
            root.display()
        ),
    )
    .expect("aliases");
    let cfg = fs::read_to_string(&sys.config).expect("config");
    fs::write(
        &sys.config,
        cfg.replacen(
            "spool = \"spool\"",
            "spool = \"spool\"\naliases = \"aliases\"",
            1,
        ),
    )
    .expect("config");
    send(
        &sys,
        &["-f", "alice@example.net", "sales@example.test"],
        "Subject: for sales\n\nan order\n",
    );
    send(
        &sys,
        &["-f", "alice@example.net", "postmaster@example.test"],
        "Subject: abuse report\n\nreport\n",
    );
    let out = flush(&sys, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let inbox = maildir_files(&root.join("mail/example.test/test"));
    assert_eq!(inbox.len(), 1, "sales -> info -> test");
    let text = fs::read_to_string(&inbox[0]).expect("read");
    assert!(text.contains("Subject: for sales"));
    assert!(
        fs::read_to_string(root.join("piped.eml"))
            .expect("|command ran")
            .contains("Subject: for sales")
    );
    let mbox = fs::read_to_string(root.join("archive.mbox")).expect("mbox");
    assert!(mbox.starts_with("From alice@example.net "), "{mbox}");
    let pm = maildir_files(&root.join("mail/example.test/postmaster"));
    assert_eq!(pm.len(), 1, "postmaster reaches someone without an alias");
}

#[test]
fn procmail_as_the_mda() {
    let Some(procmail) = mxa_tests::peer("procmail") else {
        return;
    };
    let sys = System::new();
    let rc = sys.root().join("procmailrc");
    fs::write(&rc, "LOGFILE=/dev/null\nDEFAULT=$1\n").expect("rc");
    // procmail makes the Maildir but not the folders above it.
    fs::create_dir_all(sys.root().join("mail/example.test")).expect("mkdir");
    let cfg = fs::read_to_string(&sys.config).expect("config");
    let mda = format!("{} -m {} {{maildir}}/", procmail.display(), rc.display());
    fs::write(&sys.config, format!("{cfg}\n[queue]\nmda = \"{mda}\"\n")).expect("config");
    send(
        &sys,
        &["test@example.test"],
        "Subject: via procmail\n\nhi\n",
    );
    let out = flush(&sys, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let files = maildir_files(&sys.root().join("mail/example.test/test"));
    assert_eq!(files.len(), 1);
    assert!(
        fs::read_to_string(&files[0])
            .expect("read")
            .contains("Subject: via procmail")
    );
}

#[test]
fn run_delivers_as_soon_as_mail_is_queued_and_stops_on_sigterm() {
    let sys = System::new();
    let mut runner = sys
        .cmd("mxa-queue")
        .arg("run")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    send(&sys, &["test@example.test"], "Subject: quick\n\nx\n");
    let md = sys.root().join("mail/example.test/test");
    while maildir_files(&md).is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t.elapsed();
    assert_eq!(maildir_files(&md).len(), 1, "not delivered");
    assert!(
        took < Duration::from_secs(5),
        "woken by the spool, not by a timer: {took:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(runner.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = runner.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
}

/// Issue #5: SIGKILL the runner during a load, restart it: every recipient
/// delivered at least once, none lost; duplicates are counted.
#[test]
fn a_killed_runner_loses_nothing() {
    let sys = System::with_extra("\n[queue]\nmax_connections = 4\n");
    let n = 300;
    for i in 0..n {
        send(
            &sys,
            &["test@example.test"],
            &format!("Subject: load {i}\nX-Token: {i}\n\nx\n"),
        );
    }
    let mut runner = sys
        .cmd("mxa-queue")
        .arg("flush")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("flush");
    let md = sys.root().join("mail/example.test/test");
    let t = Instant::now();
    while maildir_files(&md).len() < n / 3 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    runner.kill().expect("SIGKILL");
    runner.wait().expect("wait");
    let at_kill = maildir_files(&md).len();
    assert!(at_kill < n, "the runner was killed mid-load");
    let out = flush(&sys, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (missing, dups) = mxa_tests::tally_tokens(
        maildir_files(&md)
            .iter()
            .map(|f| fs::read_to_string(f).expect("read")),
        n,
    );
    assert!(missing.is_empty(), "lost: {missing:?}");
    eprintln!("killed after {at_kill} of {n} deliveries; {dups} delivered twice");
    assert!(
        dups <= 4,
        "at most the deliveries in progress (4 workers) repeat: {dups}"
    );
    assert!(sys.spool().list().expect("list").is_empty());
}

/// Checks a success report with Python's email package: the languages,
/// the `Action:` and `Status:` of `recipient`, and the header returned.
fn python_checks_success_report(file: &Path, action: &str, recipient: &str) {
    let Some(python) = mxa_tests::peer("python3") else {
        return;
    };
    let script = r#"
import email, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
action, rcpt_addr = sys.argv[2], sys.argv[3]
assert m.get_content_type() == 'multipart/report', m.get_content_type()
assert m.get_param('report-type') == 'delivery-status'
assert m['Auto-Submitted'].startswith('auto-replied')
assert str(m['Subject']).startswith('Delivered: ' if action == 'delivered' else 'Relayed: '), m['Subject']
parts = list(m.iter_parts())
human = parts[0]
langs = [p['Content-Language'] for p in human.iter_parts()] if human.is_multipart() else [human['Content-Language']]
assert langs == ['en', 'fr'], langs
status = parts[1]
assert status.get_content_type() == 'message/delivery-status'
blocks = status.get_payload()
assert len(blocks) == 2, len(blocks)
rcpt = blocks[1]
assert rcpt['Action'] == action, rcpt['Action']
assert rcpt['Status'].startswith('2.'), rcpt['Status']
assert rcpt_addr in rcpt['Final-Recipient'], rcpt['Final-Recipient']
assert parts[2].get_content_type() == 'text/rfc822-headers', parts[2].get_content_type()
print('ok')
"#;
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(file)
        .arg(action)
        .arg(recipient)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(file).unwrap_or_default()
    );
}

/// RFC 3461 NOTIFY=SUCCESS: delivered locally, the sender gets one success
/// report (`Action: delivered`), and only one however often the queue is
/// flushed.
#[test]
fn notify_success_gets_one_report_even_after_a_second_flush() {
    let sys = System::new();
    let id = send(
        &sys,
        &[
            "-N",
            "success,failure",
            "-f",
            "test@example.test",
            "postmaster@example.test",
        ],
        "Subject: please confirm\n\nDid it arrive?\n",
    );
    let out = flush(&sys, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("event=success-report id={id} report=")),
        "{err}"
    );
    assert_eq!(err.matches("event=success-report").count(), 1, "{err}");
    let pm = maildir_files(&sys.root().join("mail/example.test/postmaster"));
    assert_eq!(pm.len(), 1, "the message itself was delivered");
    // The original is gone; the report waits in the queue for the sender.
    let queued = sys.queued();
    assert_eq!(queued.len(), 1, "only the report is queued");
    assert!(
        queued[0].1.contains("sender <>\n") && queued[0].1.contains("rcpt <test@example.test>")
    );
    for _ in 0..2 {
        let out = flush(&sys, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            !stderr(&out).contains("event=success-report"),
            "{}",
            stderr(&out)
        );
    }
    assert!(sys.spool().list().expect("list").is_empty());
    let inbox = maildir_files(&sys.root().join("mail/example.test/test"));
    assert_eq!(inbox.len(), 1, "exactly one success report");
    let text = fs::read_to_string(&inbox[0]).expect("read");
    assert!(text.starts_with("Return-Path: <>\n"), "{text}");
    assert!(
        text.contains("Action: delivered\nStatus: 2.0.0\n"),
        "{text}"
    );
    assert!(text.contains("Subject: please confirm"), "{text}");
    assert!(!text.contains("Did it arrive?"), "header only: {text}");
    python_checks_success_report(&inbox[0], "delivered", "postmaster@example.test");
}

/// Without NOTIFY (default: FAILURE,DELAY) a delivery is reported to no
/// one; and a message from the null sender never gets a report, whatever
/// its NOTIFY.
#[test]
fn no_success_report_without_notify_success_or_for_the_null_sender() {
    let sys = System::new();
    send(
        &sys,
        &["-f", "test@example.test", "postmaster@example.test"],
        "Subject: plain\n\nx\n",
    );
    send(
        &sys,
        &[
            "-N",
            "failure",
            "-f",
            "test@example.test",
            "postmaster@example.test",
        ],
        "Subject: failure only\n\nx\n",
    );
    send(
        &sys,
        &["-N", "success", "-f", "<>", "postmaster@example.test"],
        "Subject: a report itself\n\nx\n",
    );
    for _ in 0..2 {
        let out = flush(&sys, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            !stderr(&out).contains("event=success-report"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(
        maildir_files(&sys.root().join("mail/example.test/postmaster")).len(),
        3
    );
    assert!(maildir_files(&sys.root().join("mail/example.test/test")).is_empty());
    assert!(sys.spool().list().expect("list").is_empty());
}

/// A crash after a delivery was recorded but before its success report was
/// queued leaves `success delivered` in the envelope: the next pass sends
/// the report, then lets the message go.
#[test]
fn a_success_report_owed_at_a_crash_is_sent_at_the_next_pass() {
    let sys = System::new();
    let mut env = mxa_spool::Envelope::new("test@example.test", ["bob@example.test".into()]);
    let r = &mut env.recipients[0];
    r.state = State::Delivered;
    r.attempts = 1;
    r.last_reply = Some("delivered".into());
    r.notify = Some("success".into());
    r.success = Some(mxa_spool::Success::Delivered);
    let id = sys
        .spool()
        .inject(&env, b"Subject: before the crash\n\nx\n")
        .expect("inject");
    assert!(sys.queued()[0].1.contains("\nsuccess delivered\n"));
    let out = flush(&sys, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("event=success-report id={id}")),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(&format!("event=removed id={id}")),
        "{}",
        stderr(&out)
    );
    let out = flush(&sys, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let inbox = maildir_files(&sys.root().join("mail/example.test/test"));
    assert_eq!(inbox.len(), 1);
    let text = fs::read_to_string(&inbox[0]).expect("read");
    assert!(
        text.contains("Final-Recipient: rfc822; bob@example.test\nAction: delivered\n"),
        "{text}"
    );
    assert!(sys.spool().list().expect("list").is_empty());
}
