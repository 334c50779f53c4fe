//! `mxa up`: creates a complete system, runs what its config enables with
//! prefixed logs, and passes SIGINT/SIGTERM on.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use mxa_tests::bin;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Spawns `c` and returns a channel of its stdout and stderr lines.
fn spawn_lines(c: &mut Command) -> (Child, Receiver<String>) {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (tx, rx) = channel();
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| drop(tx.send(format!("out {l}"))))
    });
    std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| drop(tx2.send(format!("err {l}"))))
    });
    (child, rx)
}

/// Collects lines until one contains `want`; panics after 20 s.
fn wait_line(rx: &Receiver<String>, seen: &mut Vec<String>, want: &str) {
    while !seen.iter().any(|l| l.contains(want)) {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no line with {want:?}; got {seen:#?}"),
        }
    }
}

fn signal_and_wait(child: &mut Child, sig: Signal) -> Option<i32> {
    kill(Pid::from_raw(child.id() as i32), sig).expect("kill");
    child.wait().expect("wait").code()
}

#[test]
fn creates_a_complete_system_and_stops_on_sigterm() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("var");
    let (mut child, rx) = spawn_lines(
        Command::new(bin("mxa"))
            .arg("up")
            .arg(&dir)
            .env_remove("MXA_CONFIG"),
    );
    let mut seen = Vec::new();
    wait_line(&rx, &mut seen, "password: ");
    for want in [
        "test@localhost",
        "smtp        127.0.0.1:2525",
        "submission  127.0.0.1:2587",
        "submissions 127.0.0.1:2465",
        "pop3        127.0.0.1:2110",
        "pop3s       127.0.0.1:2995",
    ] {
        wait_line(&rx, &mut seen, want);
    }
    let password = seen
        .iter()
        .find_map(|l| l.split("password: ").nth(1))
        .expect("password")
        .trim()
        .to_string();
    assert!(password.len() >= 12, "{password}");
    for f in ["mxa.toml", "users", "cert.pem", "key.pem"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert!(dir.join("spool").is_dir() && dir.join("mail").is_dir());
    for private in ["users", "key.pem"] {
        let mode = std::fs::metadata(dir.join(private))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{private} readable by others");
    }
    let users = std::fs::read_to_string(dir.join("users")).expect("users");
    assert!(users.contains("test@localhost:$argon2id$"), "{users}");
    assert!(
        !users.contains(&password),
        "the password is stored hashed only"
    );
    // The system it made is a working one: mail queued with mxa-sendmail
    // reaches the test user's Maildir through the queue runner it runs.
    wait_line(&rx, &mut seen, "queue | mxa-queue: event=started");
    let out = mxa_tests::run_with_input(
        Command::new(bin("mxa"))
            .args(["sendmail", "-c"])
            .arg(dir.join("mxa.toml"))
            .arg("test@localhost"),
        b"Subject: hi\n\nhello\n",
    );
    assert!(out.status.success(), "{}", mxa_tests::stderr(&out));
    wait_line(&rx, &mut seen, "event=delivered");
    let new = dir.join("mail/localhost/test/new");
    assert_eq!(std::fs::read_dir(&new).expect("Maildir").count(), 1);
    assert_eq!(signal_and_wait(&mut child, Signal::SIGTERM), Some(143));

    // A second start reuses the system and prints no password.
    let (mut child, rx) = spawn_lines(
        Command::new(bin("mxa"))
            .arg("up")
            .arg(&dir)
            .env_remove("MXA_CONFIG"),
    );
    let mut seen = Vec::new();
    wait_line(&rx, &mut seen, "pop3s");
    std::thread::sleep(Duration::from_millis(200));
    seen.extend(rx.try_iter());
    assert!(!seen.iter().any(|l| l.contains("password")), "{seen:#?}");
    assert_eq!(signal_and_wait(&mut child, Signal::SIGINT), Some(130));
}

/// Stand-in daemons (shell scripts beside a copy of mxa) show the
/// supervision: enabled programs started with the config, output prefixed,
/// SIGTERM passed on, and one daemon's death stopping the rest.
#[test]
fn supervises_daemons_prefixes_their_logs_and_forwards_signals() {
    let sys = mxa_tests::System::new();
    let bindir = sys.root().join("bin");
    std::fs::create_dir(&bindir).expect("mkdir");
    std::fs::copy(bin("mxa"), bindir.join("mxa")).expect("copy");
    // The trap comes first: once the test has seen a line, SIGTERM is handled.
    let script = "#!/bin/sh\ntrap 'echo got TERM; exit 0' TERM\necho \"started MXA_CONFIG=$MXA_CONFIG args=$*\"\necho 'a line on stderr' >&2\nwhile :; do sleep 0.05; done\n";
    for name in ["mxa-smtpd", "mxa-pop3d"] {
        std::fs::write(bindir.join(name), script).expect("write");
        std::fs::set_permissions(bindir.join(name), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let (mut child, rx) = spawn_lines(
        Command::new(bindir.join("mxa"))
            .arg("up")
            .arg(sys.root())
            .env_remove("MXA_CONFIG"),
    );
    let mut seen = Vec::new();
    let config = sys.config.display().to_string();
    wait_line(
        &rx,
        &mut seen,
        &format!("out smtpd | started MXA_CONFIG={config} args=-c {config}"),
    );
    wait_line(
        &rx,
        &mut seen,
        &format!("out pop3d | started MXA_CONFIG={config}"),
    );
    wait_line(&rx, &mut seen, "err smtpd | a line on stderr");
    assert_eq!(signal_and_wait(&mut child, Signal::SIGTERM), Some(143));
    seen.extend(rx.iter());
    assert!(
        seen.iter().any(|l| l == "out smtpd | got TERM"),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l == "out pop3d | got TERM"),
        "{seen:#?}"
    );

    // A daemon that dies takes the system down with a non-zero status.
    std::fs::write(
        bindir.join("mxa-pop3d"),
        "#!/bin/sh\nsleep 0.5\necho 'cannot bind' >&2\nexit 3\n",
    )
    .expect("write");
    let (mut child, rx) = spawn_lines(
        Command::new(bindir.join("mxa"))
            .arg("up")
            .arg(sys.root())
            .env_remove("MXA_CONFIG"),
    );
    let status = child.wait().expect("wait").code();
    let seen: Vec<String> = rx.iter().collect();
    assert_eq!(status, Some(1), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l.contains("pop3d stopped (exit status: 3)")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l == "out smtpd | got TERM"),
        "{seen:#?}"
    );
}

#[test]
fn front_runs_programs_and_refuses_unknown_ones() {
    let out = Command::new(bin("mxa"))
        .args(["queue", "--help"])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Inspect and manage the mxa queue"));
    let out = Command::new(bin("mxa"))
        .arg("no-such-program")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(69));
    let out = Command::new(bin("mxa"))
        .arg("../../bin/sh")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
}
