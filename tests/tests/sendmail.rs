//! mxa-sendmail as scripts and cron use it, end to end: the real binary,
//! a real spool, then mxa-queue to look at what was queued.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use mxa_spool::State;
use mxa_tests::{System, bin, logged_id, run_with_input, stderr, stdout};

const HEREDOC: &str = "From: Alice <alice@example.test>
To: Bob <bob@example.net>, carol@example.org
Cc: dan@example.com
Bcc: secret@example.net
Subject: quarterly report

Numbers inside.
.
This line follows a lone dot and must survive -i.
";

#[test]
fn t_and_i_from_a_here_document() {
    let sys = System::new();
    let out = sys.run("mxa-sendmail", &["-t", "-i", "-v"], HEREDOC.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let id = logged_id(&stderr(&out)).expect("-v prints id=");
    let list = sys.run("mxa-queue", &["list"], b"");
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    let mut lines = text.lines();
    let first = lines.next().expect("a message line");
    assert_eq!(first.split_whitespace().next(), Some(id.as_str()));
    let login = nix::unistd::User::from_uid(nix::unistd::getuid())
        .expect("getpwuid")
        .expect("user")
        .name;
    assert!(
        first.ends_with(&format!(" <{login}@mx.example.test>")),
        "{first}"
    );
    let rcpts: Vec<&str> = lines
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(
        rcpts,
        [
            "<bob@example.net>",
            "<carol@example.org>",
            "<dan@example.com>",
            "<secret@example.net>"
        ]
    );
    assert!(
        text.lines()
            .skip(1)
            .all(|l| l.starts_with("    ") && l.contains(" pending now -")),
        "{text}"
    );

    let show = sys.run("mxa-queue", &["show", &id], b"");
    assert!(show.status.success(), "{}", stderr(&show));
    let shown = stdout(&show);
    assert!(shown.contains("rcpt <secret@example.net>"), "{shown}");
    assert!(shown.contains("Subject: quarterly report"), "{shown}");
    assert!(!shown.contains("Bcc:"), "Bcc must be removed: {shown}");

    let data = fs::read_to_string(sys.spool_dir().join("data").join(&id)).expect("data");
    let uid = nix::unistd::getuid().as_raw();
    assert!(
        data.starts_with(&format!(
            "Received: by mx.example.test (mxa-sendmail, from userid {uid})\n\tid {id}; "
        )),
        "{data}"
    );
    assert!(
        data.contains("\nDate: ") && data.contains("\nMessage-ID: <"),
        "{data}"
    );
    assert!(
        data.ends_with("Numbers inside.\n.\nThis line follows a lone dot and must survive -i.\n"),
        "{data}"
    );
}

#[test]
fn without_i_a_lone_dot_ends_the_message() {
    let sys = System::new();
    let out = sys.run(
        "mxa-sendmail",
        &["-v", "bob@example.net"],
        HEREDOC.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let id = logged_id(&stderr(&out)).expect("id");
    let data = fs::read_to_string(sys.spool_dir().join("data").join(&id)).expect("data");
    assert!(data.ends_with("Numbers inside.\n"), "{data}");
    // Without -t the header's recipients are not used, and Bcc is still removed.
    let env = sys
        .spool()
        .envelope(&mxa_spool::QueueId::parse(&id).expect("id"))
        .expect("env");
    assert_eq!(env.recipients.len(), 1);
    assert!(!data.contains("Bcc:"));
}

#[test]
fn adds_from_date_and_message_id_and_qualifies_bare_names() {
    let sys = System::new();
    let out = sys.run(
        "mxa-sendmail",
        &["-v", "-F", "Cron Daemon", "-f", "daemon", "root"],
        b"Subject: cron\n\nran\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let id = logged_id(&stderr(&out)).expect("id");
    let qid = mxa_spool::QueueId::parse(&id).expect("id");
    let env = sys.spool().envelope(&qid).expect("env");
    assert_eq!(env.sender, "daemon@mx.example.test");
    assert_eq!(env.recipients[0].address, "root@mx.example.test");
    assert_eq!(env.recipients[0].state, State::Pending);
    let data = fs::read_to_string(sys.spool().data_path(&qid)).expect("data");
    assert!(
        data.contains("\nFrom: Cron Daemon <daemon@mx.example.test>\n"),
        "{data}"
    );
}

#[test]
fn null_sender_and_dsn_flags() {
    let sys = System::new();
    let out = sys.run(
        "mxa-sendmail",
        &[
            "-v",
            "-f",
            "<>",
            "-N",
            "failure,delay",
            "-R",
            "hdrs",
            "-V",
            "ENV1",
            "a@example.net",
        ],
        b"Subject: x\n\ny\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let qid = mxa_spool::QueueId::parse(&logged_id(&stderr(&out)).expect("id")).expect("id");
    let env = sys.spool().envelope(&qid).expect("env");
    assert_eq!(env.sender, "");
    assert_eq!(env.ret.as_deref(), Some("hdrs"));
    assert_eq!(env.envid.as_deref(), Some("ENV1"));
    assert_eq!(env.recipients[0].notify.as_deref(), Some("failure,delay"));
}

#[test]
fn no_recipient_is_a_usage_error_and_queues_nothing() {
    let sys = System::new();
    let out = sys.run("mxa-sendmail", &["-t"], b"Subject: nobody\n\nbody\n");
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("no recipients"));
    assert!(sys.spool().list().expect("list").is_empty());
}

#[test]
fn bad_addresses_and_flags_are_refused() {
    let sys = System::new();
    for args in [
        &["-k", "a@b"][..],
        &["a b@c"][..],
        &["-f", "x@y@z", "a@b"][..],
        &["-bz"][..],
    ] {
        let out = sys.run("mxa-sendmail", args, b"Subject: x\n\ny\n");
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
    }
    assert!(sys.spool().list().expect("list").is_empty());
}

#[test]
fn oversized_message_is_refused_whole() {
    let sys = System::with_extra("");
    fs::write(
        &sys.config,
        fs::read_to_string(&sys.config)
            .expect("read")
            .replace("\"10M\"", "\"1K\""),
    )
    .expect("write");
    let big = format!("Subject: big\n\n{}\n", "x".repeat(4096));
    let out = sys.run("mxa-sendmail", &["a@example.net"], big.as_bytes());
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(sys.spool().list().expect("list").is_empty());
    assert!(
        fs::read_dir(sys.spool_dir().join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[test]
fn unreadable_config_is_a_config_error() {
    let sys = System::new();
    let out = run_with_input(
        Command::new(bin("mxa-sendmail")).args(["-c", "/nonexistent/mxa.toml", "a@b"]),
        b"x\n",
    );
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("/nonexistent/mxa.toml"));
    let out = run_with_input(
        Command::new(bin("mxa-sendmail"))
            .env("MXA_CONFIG", sys.root().join("missing.toml"))
            .arg("a@b"),
        b"x\n",
    );
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(sys.spool().list().expect("list").is_empty());
}

#[test]
fn bp_lists_the_queue() {
    let sys = System::new();
    let out = sys.run(
        "mxa-sendmail",
        &["-v", "a@example.net"],
        b"Subject: x\n\ny\n",
    );
    let id = logged_id(&stderr(&out)).expect("id");
    let bp = sys.run("mxa-sendmail", &["-bp"], b"");
    assert!(bp.status.success(), "{}", stderr(&bp));
    assert!(stdout(&bp).starts_with(&id), "{}", stdout(&bp));
}

#[test]
fn crlf_input_is_stored_with_lf() {
    let sys = System::new();
    let out = sys.run(
        "mxa-sendmail",
        &["-v", "-i", "a@example.net"],
        b"Subject: x\r\n\r\nline one\r\nline two\r\n",
    );
    let id = logged_id(&stderr(&out)).expect("id");
    let data = fs::read(sys.spool_dir().join("data").join(&id)).expect("data");
    assert!(!data.contains(&b'\r'));
    assert!(data.ends_with(b"\n\nline one\nline two\n"));
}

/// An ordinary user queues through the setgid helper into a spool that only
/// root and the spool's group may enter, and cannot touch what is queued.
#[test]
fn ordinary_user_queues_through_setgid_postdrop() {
    if !mxa_tests::require_root("switching to an ordinary user") {
        return;
    }
    let t = tempfile::Builder::new()
        .prefix("mxa-postdrop-")
        .tempdir()
        .expect("tempdir");
    let root = t.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).expect("chmod");
    let bindir = root.join("bin");
    fs::create_dir(&bindir).expect("mkdir");
    // The group of the spool: Debian's `mail` group (gid 8), which nobody
    // is not a member of.
    let gid = 8;
    for p in ["mxa-sendmail", "mxa-postdrop", "mxa-queue"] {
        fs::copy(bin(p), bindir.join(p)).expect("copy");
    }
    let postdrop = bindir.join("mxa-postdrop");
    nix::unistd::chown(&postdrop, None, Some(nix::unistd::Gid::from_raw(gid))).expect("chgrp");
    fs::set_permissions(&postdrop, fs::Permissions::from_mode(0o2755)).expect("setgid");
    let spool = root.join("spool");
    fs::create_dir(&spool).expect("mkdir");
    nix::unistd::chown(&spool, None, Some(nix::unistd::Gid::from_raw(gid))).expect("chgrp");
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o2770)).expect("chmod");
    let config = root.join("mxa.toml");
    fs::write(
        &config,
        format!(
            "hostname = \"mx.example.test\"\nspool = \"{}\"\n",
            spool.display()
        ),
    )
    .expect("config");

    let as_nobody = |args: &[&str], input: &[u8]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(args);
        run_with_input(&mut c, input)
    };
    let sendmail = bindir.join("mxa-sendmail");
    let cfg = config.to_str().expect("utf8");
    let out = as_nobody(
        &[
            sendmail.to_str().expect("utf8"),
            "-c",
            cfg,
            "-t",
            "-i",
            "-v",
        ],
        HEREDOC.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let id = logged_id(&stderr(&out)).expect("id");

    // Root sees it, complete, with the trace line naming uid 65534.
    let s = mxa_spool::Spool::new(&spool);
    let qid = mxa_spool::QueueId::parse(&id).expect("id");
    let env = s.envelope(&qid).expect("queued");
    assert_eq!(env.origin.as_deref(), Some("local uid=65534"));
    assert_eq!(env.recipients.len(), 4);
    let data = fs::read_to_string(s.data_path(&qid)).expect("data");
    assert!(
        data.starts_with("Received: by mx.example.test (mxa-sendmail, from userid 65534)"),
        "{data}"
    );
    let meta = fs::metadata(s.data_path(&qid)).expect("meta");
    assert_eq!(meta.gid(), gid, "files belong to the spool's group");
    assert_eq!(meta.mode() & 0o007, 0, "others have no access");

    // The user can neither list, read, change nor remove queued mail.
    let list = as_nobody(
        &[
            bindir.join("mxa-queue").to_str().expect("utf8"),
            "-c",
            cfg,
            "list",
        ],
        b"",
    );
    assert_eq!(list.status.code(), Some(77), "{}", stderr(&list));
    let data_path = s.data_path(&qid);
    let dp = data_path.to_str().expect("utf8");
    for attack in [
        vec!["cat", dp],
        vec!["rm", "-f", dp],
        vec!["sh", "-c", &format!("echo x >> {dp}")],
    ] {
        let out = as_nobody(&attack, b"");
        assert!(!out.status.success(), "{attack:?} succeeded");
    }
    assert_eq!(fs::read_to_string(&data_path).expect("data"), data);

    // A config the user controls is not trusted by the setgid helper.
    let own = root.join("own.toml");
    fs::write(
        &own,
        format!(
            "hostname = \"spoofed.example\"\nspool = \"{}\"\n",
            spool.display()
        ),
    )
    .expect("write");
    nix::unistd::chown(&own, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let out = as_nobody(
        &[
            sendmail.to_str().expect("utf8"),
            "-c",
            own.to_str().expect("utf8"),
            "a@b.example",
        ],
        b"x\n",
    );
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert_eq!(s.list().expect("list").len(), 1);
}
