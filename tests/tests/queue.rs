//! mxa-queue's inspection commands on a real spool, in the format DESIGN.md
//! fixes for scripts.

use mxa_spool::{QueueId, State};
use mxa_tests::{System, logged_id, stderr, stdout};

fn queue_one(sys: &System, rcpts: &[&str]) -> String {
    let mut args = vec!["-v", "-f", "alice@example.test"];
    args.extend_from_slice(rcpts);
    let out = sys.run(
        "mxa-sendmail",
        &args,
        b"Subject: inspect me\nX-Marker: 42\n\nbody\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    logged_id(&stderr(&out)).expect("id")
}

#[test]
fn list_shows_messages_and_recipients_in_the_contract_format() {
    let sys = System::new();
    let a = queue_one(&sys, &["bob@example.net", "carol@example.org"]);
    let b = queue_one(&sys, &["dan@example.com"]);
    // A deferred recipient with a reply, as the runner will write it.
    let spool = sys.spool();
    let qa = QueueId::parse(&a).expect("id");
    let mut claim = spool.claim(&qa).expect("claim");
    let mut env = claim.envelope().clone();
    env.recipients[1].state = State::Deferred;
    env.recipients[1].attempts = 1;
    env.recipients[1].next_try = Some(4_102_444_800); // 2100-01-01
    env.recipients[1].last_reply = Some("451 4.7.1 greylisted, come back later".into());
    claim.update(env).expect("update");
    drop(claim);

    let out = sys.run("mxa-queue", &["list"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    let head: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(head[0], a);
    assert!(
        head[1].ends_with('s') || head[1].ends_with('m'),
        "age: {}",
        head[1]
    );
    assert!(head[2].parse::<u64>().expect("size") > 40);
    assert_eq!(head[3], "<alice@example.test>");
    assert_eq!(lines[1], "    <bob@example.net> pending now -");
    assert_eq!(
        lines[2],
        "    <carol@example.org> deferred 2100-01-01T00:00:00Z 451 4.7.1 greylisted, come back later"
    );
    assert!(lines[3].starts_with(&b), "ids sort by time: {text}");

    let out = sys.run("mxa-queue", &["list", "--json"], b"");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json[0]["id"], a.as_str());
    assert_eq!(json[0]["sender"], "alice@example.test");
    assert_eq!(json[0]["recipients"][1]["state"], "deferred");
    assert_eq!(json[0]["recipients"][1]["attempts"], 1);
    assert_eq!(
        json[0]["recipients"][1]["last_reply"],
        "451 4.7.1 greylisted, come back later"
    );
    assert_eq!(json[1]["id"], b.as_str());
}

#[test]
fn show_prints_envelope_and_header() {
    let sys = System::new();
    let id = queue_one(&sys, &["bob@example.net"]);
    let out = sys.run("mxa-queue", &["show", &id], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("id {id}\nmxa-envelope 1\n")),
        "{text}"
    );
    assert!(text.contains("sender <alice@example.test>\n"));
    assert!(text.contains("rcpt <bob@example.net>\nstate pending\n"));
    assert!(text.contains("X-Marker: 42\n"));
    assert!(
        !text.contains("body\n"),
        "show prints the header only: {text}"
    );
}

#[test]
fn hold_release_delete() {
    let sys = System::new();
    let id = queue_one(&sys, &["bob@example.net", "carol@example.org"]);
    let qid = QueueId::parse(&id).expect("id");
    let out = sys.run("mxa-queue", &["hold", &id], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        sys.spool()
            .envelope(&qid)
            .expect("env")
            .recipients
            .iter()
            .all(|r| r.state == State::Held)
    );
    assert!(stdout(&sys.run("mxa-queue", &["list"], b"")).contains("<bob@example.net> held - -"));
    // Nothing left to try: flush has nothing waiting.
    assert_eq!(sys.run("mxa-queue", &["flush"], b"").status.code(), Some(0));

    let out = sys.run("mxa-queue", &["release", &id], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        sys.spool()
            .envelope(&qid)
            .expect("env")
            .recipients
            .iter()
            .all(|r| r.state == State::Pending)
    );
    assert_eq!(
        sys.run("mxa-queue", &["flush"], b"").status.code(),
        Some(75)
    );

    let out = sys.run("mxa-queue", &["delete", &id], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("event=deleted id={id}")));
    assert!(sys.spool().list().expect("list").is_empty());
    assert!(!sys.spool().data_path(&qid).exists());
}

#[test]
fn a_message_being_delivered_is_not_deleted_under_the_runner() {
    let sys = System::new();
    let id = queue_one(&sys, &["bob@example.net"]);
    let spool = sys.spool();
    let claim = spool
        .claim(&QueueId::parse(&id).expect("id"))
        .expect("claim");
    let t = std::time::Instant::now();
    let out = sys.run("mxa-queue", &["delete", &id], b"");
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(5),
        "it waited for the claim"
    );
    drop(claim);
    assert_eq!(sys.spool().list().expect("list").len(), 1);
}

#[test]
fn unknown_and_malformed_ids_are_clear_errors() {
    let sys = System::new();
    let missing = QueueId::generate().to_string();
    for cmd in ["show", "delete", "hold", "release"] {
        let out = sys.run("mxa-queue", &[cmd, &missing], b"");
        assert_eq!(out.status.code(), Some(66), "{cmd}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("no message {missing} in the queue")),
            "{}",
            stderr(&out)
        );
        let out = sys.run("mxa-queue", &[cmd, "../../etc/passwd"], b"");
        assert_eq!(out.status.code(), Some(64), "{cmd}: {}", stderr(&out));
        assert!(stderr(&out).contains("is not a queue id"));
    }
    let out = sys.run("mxa-queue", &["frobnicate"], b"");
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn empty_or_missing_spool_is_an_empty_queue() {
    let sys = System::new();
    let out = sys.run("mxa-queue", &["list"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let out = sys.run("mxa-queue", &["list", "--json"], b"");
    assert_eq!(stdout(&out).trim(), "[]");
    assert_eq!(sys.run("mxa-queue", &["flush"], b"").status.code(), Some(0));
}

#[test]
fn flush_sweeps_old_temporary_files() {
    let sys = System::new();
    queue_one(&sys, &["bob@example.net"]);
    let old = sys.spool_dir().join("tmp").join("0000000000000000000.data");
    std::fs::write(&old, b"half").expect("write");
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(48 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .expect("open")
        .set_modified(two_days_ago)
        .expect("mtime");
    let young = sys.spool_dir().join("tmp").join("1111111111111111111.data");
    std::fs::write(&young, b"in progress").expect("write");
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(
        out.status.code(),
        Some(75),
        "one message stays queued: {}",
        stderr(&out)
    );
    assert!(!old.exists(), "a 48-hour-old temporary file is removed");
    assert!(
        young.exists(),
        "a young one may be an injection in progress"
    );
}

#[test]
fn list_piped_into_head_is_not_an_error() {
    let sys = System::new();
    // 3,000 recipient lines: more than a pipe holds, so mxa-queue is still
    // writing when head exits.
    let rcpts: Vec<String> = (0..3000).map(|i| format!("user{i}@example.net")).collect();
    queue_one(&sys, &rcpts.iter().map(String::as_str).collect::<Vec<_>>());
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} list | head -n 1; exit ${{PIPESTATUS[0]}}",
            mxa_tests::bin("mxa-queue").display()
        ))
        .env("MXA_CONFIG", &sys.config)
        .output()
        .expect("sh");
    assert!(out.status.success());
    assert!(!stderr(&out).contains("Broken pipe"), "{}", stderr(&out));
}
