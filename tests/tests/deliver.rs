//! mxa-deliver end to end: the real binary, real Maildirs, as root and as
//! an ordinary user.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mxa_tests::{System, bin, run_with_input, stderr, stdout};

const MSG: &[u8] = b"From: Alice <alice@example.net>\nTo: test@example.test\nSubject: hello\n\nHi there.\nFrom the other side.\n";

fn deliver(sys: &System, args: &[&str], input: &[u8]) -> Output {
    run_with_input(
        sys.cmd("mxa-deliver")
            .args(args)
            .env_remove("RECIPIENT")
            .env_remove("SENDER"),
        input,
    )
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn mailbox(sys: &System) -> PathBuf {
    sys.root().join("mail/example.test/test")
}

#[test]
fn delivers_into_the_users_maildir_with_trace_fields() {
    let sys = System::new();
    let out = deliver(
        &sys,
        &["-v", "-f", "alice@example.net", "-a", "test@example.test"],
        MSG,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let path = PathBuf::from(stdout(&out).trim());
    assert_eq!(path.parent(), Some(mailbox(&sys).join("new").as_path()));
    let text = fs::read_to_string(&path).expect("read");
    assert!(
        text.starts_with(
            "Return-Path: <alice@example.net>\nDelivered-To: test@example.test\nFrom: Alice"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("Hi there.\nFrom the other side.\n"),
        "mbox quoting has no place in a Maildir: {text}"
    );
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let size = text.len();
    let lines = text.matches('\n').count();
    assert!(
        name.contains(&format!(",S={size},W={}", size + lines)),
        "{name}"
    );
    for d in ["tmp", "new", "cur"] {
        let mode = fs::metadata(mailbox(&sys).join(d))
            .expect(d)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{d}");
    }
    assert!(files(&mailbox(&sys).join("tmp")).is_empty());
}

#[test]
fn postfix_environment_and_mbox_from_line() {
    let sys = System::new();
    let input = [
        b"From bounce@lists.example  Mon Nov 23 18:20:00 2026\n".as_slice(),
        MSG,
    ]
    .concat();
    let out = run_with_input(
        sys.cmd("mxa-deliver")
            .arg("-v")
            .env("RECIPIENT", "test@example.test")
            .env_remove("SENDER"),
        &input,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = fs::read_to_string(stdout(&out).trim()).expect("read");
    assert!(
        text.starts_with(
            "Return-Path: <bounce@lists.example>\nDelivered-To: test@example.test\nFrom: Alice"
        ),
        "{text}"
    );
    assert!(
        !text.contains("From bounce@"),
        "the mbox From line is removed"
    );
}

#[test]
fn the_mta_s_delivered_to_is_kept_and_a_loop_is_refused() {
    let sys = System::new();
    let top = [b"Delivered-To: test@example.test\n".as_slice(), MSG].concat();
    let out = deliver(&sys, &["-v", "-a", "test@example.test", "-f", "a@b"], &top);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = fs::read_to_string(stdout(&out).trim()).expect("read");
    assert_eq!(text.matches("Delivered-To:").count(), 1, "{text}");

    let looped = b"Return-Path: <a@b>\nReceived: by mx.example.test\nDelivered-To: test@example.test\nSubject: again\n\nx\n";
    let before = files(&mailbox(&sys).join("new")).len();
    let out = deliver(&sys, &["-a", "test@example.test", "-f", "a@b"], looped);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("mail loop"), "{}", stderr(&out));
    assert_eq!(
        files(&mailbox(&sys).join("new")).len(),
        before,
        "nothing written"
    );
}

#[test]
fn explicit_maildir_folders_and_subaddressing() {
    let sys = System::new();
    let md = sys.root().join("explicit/Maildir");
    let out = deliver(
        &sys,
        &["-v", "-m", "Lists/rust", md.to_str().expect("utf8")],
        MSG,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .trim()
            .starts_with(md.join(".Lists.rust/new").to_str().expect("utf8")),
        "{}",
        stdout(&out)
    );
    assert!(md.join(".Lists.rust/maildirfolder").exists());

    // test+news: into .news only when it exists.
    let out = deliver(&sys, &["-v", "-a", "test+news@example.test"], MSG);
    assert!(stdout(&out).contains("/test/new/"), "{}", stdout(&out));
    fs::create_dir_all(mailbox(&sys).join(".News")).expect("mkdir");
    for d in ["tmp", "new", "cur"] {
        fs::create_dir_all(mailbox(&sys).join(".News").join(d)).expect("mkdir");
    }
    let out = deliver(&sys, &["-v", "-a", "test+news@example.test"], MSG);
    assert!(
        stdout(&out).contains("/test/.News/new/"),
        "{}",
        stdout(&out)
    );
    // A sender cannot make us create folders: test+x goes to the inbox.
    let out = deliver(&sys, &["-v", "-a", "test+evil@example.test"], MSG);
    assert!(stdout(&out).contains("/test/new/"));
    assert!(!mailbox(&sys).join(".evil").exists());
}

#[test]
fn hostile_recipients_are_refused_and_nothing_is_written() {
    let sys = System::new();
    let long = format!("{}@example.test", "a".repeat(300));
    for r in [
        "../x@example.test",
        "a/b@example.test",
        "x\u{1}y@example.test",
        "..@example.test",
        long.as_str(),
    ] {
        let out = deliver(&sys, &["-a", r], MSG);
        assert_eq!(out.status.code(), Some(67), "{r:?}: {}", stderr(&out));
    }
    for unknown in ["nobody-here@example.net", "ghost@example.test"] {
        let out = deliver(&sys, &["-a", unknown], MSG);
        assert_eq!(out.status.code(), Some(67), "{unknown}: {}", stderr(&out));
    }
    assert!(
        files(&sys.root().join("mail")).is_empty(),
        "{:?}",
        files(&sys.root().join("mail"))
    );
}

/// RFC 5321 §4.5.1: postmaster reaches someone even without a users entry.
#[test]
fn postmaster_without_an_entry_goes_to_the_mailroot() {
    let sys = System::new();
    let out = deliver(&sys, &["-v", "-a", "PostMaster@example.test"], MSG);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("/mail/example.test/PostMaster/new/"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_symlinked_tmp_is_not_followed() {
    let sys = System::new();
    let md = sys.root().join("md");
    let outside = sys.root().join("outside");
    fs::create_dir_all(&outside).expect("mkdir");
    fs::create_dir_all(md.join("new")).expect("mkdir");
    fs::create_dir_all(md.join("cur")).expect("mkdir");
    std::os::unix::fs::symlink(&outside, md.join("tmp")).expect("symlink");
    let out = deliver(
        &sys,
        &["-a", "test@example.test", md.to_str().expect("utf8")],
        MSG,
    );
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(files(&outside).is_empty());
    assert!(files(&md.join("new")).is_empty());
}

#[test]
fn spam_goes_to_junk_and_a_broken_filter_defers() {
    let sys = System::new();
    let flag = "sed -e '1i\\\nX-Spam-Flag: YES'";
    let out = deliver(
        &sys,
        &["-v", "-a", "test@example.test", "--filter", flag],
        MSG,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("/test/.Junk/new/"),
        "{}",
        stdout(&out)
    );
    let ham = deliver(
        &sys,
        &["-v", "-a", "test@example.test", "--filter", "cat"],
        MSG,
    );
    assert!(stdout(&ham).contains("/test/new/"));
    let before = files(&mailbox(&sys).join("new")).len();
    for broken in [
        "sh -c 'kill -SEGV $$'",
        "false-filter-that-does-not-exist",
        "sh -c 'exit 2'",
    ] {
        let out = deliver(&sys, &["-a", "test@example.test", "--filter", broken], MSG);
        assert_eq!(out.status.code(), Some(75), "{broken}: {}", stderr(&out));
    }
    assert_eq!(files(&mailbox(&sys).join("new")).len(), before);
}

#[test]
fn crlf_input_is_stored_with_lf() {
    let sys = System::new();
    let out = deliver(
        &sys,
        &["-v", "-a", "test@example.test"],
        b"Subject: x\r\n\r\nline\r\n",
    );
    let text = fs::read(stdout(&out).trim()).expect("read");
    assert!(!text.contains(&b'\r'));
}

#[test]
fn no_recipient_and_bad_flags_are_usage_errors() {
    let sys = System::new();
    assert_eq!(deliver(&sys, &[], MSG).status.code(), Some(64));
    assert_eq!(deliver(&sys, &["-z"], MSG).status.code(), Some(64));
    let out = run_with_input(
        Command::new(bin("mxa-deliver")).args(["-c", "/nonexistent.toml", "-a", "x@y"]),
        MSG,
    );
    assert_eq!(out.status.code(), Some(78));
}
