//! mxa-pop3d end to end: the real daemon, real Maildirs, and real clients
//! (Python's poplib, curl, fetchmail, getmail6) retrieving 200 messages
//! that must come out as they went in, apart from line ends.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mxa_tests::{Daemon, PASSWORD, System, peer, run_with_input, stderr, stdout};

const USER: &str = "test@example.test";

/// The test user's Maildir (mxa-deliver's rule: `<mailroot>/<domain>/<local>/`).
fn maildir(sys: &System) -> PathBuf {
    sys.root().join("mail/example.test/test")
}

/// Message `i` of a test maildrop: header, and a body with what POP3 must
/// carry unchanged: lines starting with dots, a lone dot, empty lines,
/// 8-bit text, a long line, "From " at a line start.
fn message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "Return-Path: <alice@example.net>\nFrom: Alice <alice@example.net>\nTo: {USER}\nSubject: message {i}\nMessage-ID: <{i}@example.net>\n\nHello {i}.\n"
    );
    match i % 5 {
        0 => m.push_str(".\n..\n.leading dot\n\n\nend\n"),
        1 => m.push_str("Grüße, ça va ? — 8-bit text\nFrom the other side\n"),
        2 => m.push_str(&format!("{}\n", "x".repeat(900))),
        3 => m.push_str(&"line\n".repeat(i % 40 + 1)),
        _ => m.push_str(". \n.\t\n"),
    }
    m.into_bytes()
}

/// Writes `n` messages into the test user's Maildir as a delivery agent
/// would: most in `new/` with Dovecot-style names (`,S=` and `,W=`), some
/// in `cur/` already, some without sizes in the name, some stored with
/// CRLF line ends. Returns their contents.
fn fill(sys: &System, n: usize) -> Vec<Vec<u8>> {
    let md = maildir(sys);
    for d in ["tmp", "new", "cur"] {
        fs::create_dir_all(md.join(d)).expect("mkdir");
    }
    let mut all = Vec::new();
    for i in 0..n {
        let mut msg = message(i);
        if i % 11 == 0 {
            msg = String::from_utf8(msg)
                .expect("utf8")
                .replace('\n', "\r\n")
                .into_bytes();
        }
        let lf = msg.iter().filter(|&&b| b == b'\n').count();
        let crlf = msg.windows(2).filter(|w| w == b"\r\n").count();
        let w = msg.len() + lf - crlf;
        let unique = format!(
            "{}.M{i}P{}Q{i}.mxa-test",
            1_700_000_000 + i,
            std::process::id()
        );
        let path = match i % 7 {
            0 => md.join("cur").join(format!("{unique}:2,S")),
            1 => md.join("new").join(&unique),
            _ => md
                .join("new")
                .join(format!("{unique},S={},W={w}", msg.len())),
        };
        fs::write(&path, &msg).expect("write message");
        all.push(msg);
    }
    give_to_daemon(sys);
    all
}

/// Started as root, mxa-pop3d drops to `user` ("nobody" in the test
/// config): the Maildir must be that account's, as a real install has it.
fn give_to_daemon(sys: &System) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("getpwnam")
        .expect("the account nobody");
    fs::set_permissions(sys.root(), fs::Permissions::from_mode(0o711)).expect("chmod");
    fs::set_permissions(sys.root().join("mail"), fs::Permissions::from_mode(0o711)).expect("chmod");
    let mut stack = vec![sys.root().join("mail/example.test")];
    while let Some(p) = stack.pop() {
        nix::unistd::chown(&p, Some(nobody.uid), Some(nobody.gid)).expect("chown");
        if p.is_dir() {
            stack.extend(fs::read_dir(&p).expect("list").flatten().map(|e| e.path()));
        }
    }
}

/// Every message file of the Maildir (new/ and cur/).
fn stored(sys: &System) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in ["new", "cur"] {
        if let Ok(rd) = fs::read_dir(maildir(sys).join(d)) {
            v.extend(rd.flatten().map(|e| e.path()));
        }
    }
    v.sort();
    v
}

/// Contents with CRLF made LF, counted: a multiset to compare.
fn normalized<I: IntoIterator<Item = Vec<u8>>>(msgs: I) -> BTreeMap<Vec<u8>, usize> {
    let mut m = BTreeMap::new();
    for msg in msgs {
        let mut out = Vec::with_capacity(msg.len());
        let mut i = 0;
        while i < msg.len() {
            if msg[i] == b'\r' && msg.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            out.push(msg[i]);
            i += 1;
        }
        *m.entry(out).or_insert(0) += 1;
    }
    m
}

/// The files of a folder, read.
fn read_all(dir: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v.iter().map(|p| fs::read(p).expect("read")).collect()
}

fn start(sys: &System) -> Daemon {
    Daemon::start(
        Command::new(mxa_tests::bin("mxa-pop3d"))
            .arg("-c")
            .arg(&sys.config)
            .env_remove("MXA_CONFIG"),
        sys.ports.pop3,
    )
}

/// A minimal POP3 client for the dialogues the peers cannot script.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut c = Client {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
        };
        let greeting = c.line();
        assert!(greeting.starts_with("+OK"), "{greeting}");
        c
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read");
        l.trim_end().to_string()
    }

    fn cmd(&mut self, c: &str) -> String {
        self.w
            .write_all(format!("{c}\r\n").as_bytes())
            .expect("write");
        self.line()
    }

    fn multi(&mut self, c: &str) -> Vec<String> {
        let first = self.cmd(c);
        assert!(first.starts_with("+OK"), "{c}: {first}");
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            if l == "." {
                return lines;
            }
            lines.push(l);
        }
    }

    fn login(port: u16) -> Client {
        let mut c = Client::connect(port);
        assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
        let r = c.cmd(&format!("PASS {PASSWORD}"));
        assert!(r.starts_with("+OK"), "{r}");
        c
    }

    fn count(&mut self) -> usize {
        let r = self.cmd("STAT");
        r.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("STAT: {r}"))
    }
}

const POPLIB: &str = r#"
import os, poplib, ssl, sys
mode, port, user, pw, cafile, outdir = sys.argv[1:]
ctx = ssl.create_default_context(cafile=cafile)
if mode == "ssl":
    p = poplib.POP3_SSL("127.0.0.1", int(port), context=ctx)
else:
    p = poplib.POP3("127.0.0.1", int(port))
if mode == "stls":
    p.stls(context=ctx)
p.user(user)
p.pass_(pw)
count, size = p.stat()
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    with open(os.path.join(outdir, "%05d" % i), "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
uidl = p.uidl()[1]
with open(os.path.join(outdir, "UIDL"), "wb") as f:
    f.write(b"\n".join(uidl) + b"\n")
p.quit()
"#;

/// Runs the poplib script; returns the messages and the UIDL listing.
fn poplib(sys: &System, python: &Path, mode: &str, port: u16) -> (Vec<Vec<u8>>, String) {
    let out = tempfile::tempdir().expect("tempdir");
    let o = Command::new(python)
        .args(["-c", POPLIB, mode, &port.to_string(), USER, PASSWORD])
        .arg(sys.root().join("cert.pem"))
        .arg(out.path())
        .output()
        .expect("python3");
    assert!(o.status.success(), "poplib {mode}: {}", stderr(&o));
    let uidl = fs::read_to_string(out.path().join("UIDL")).expect("UIDL");
    fs::remove_file(out.path().join("UIDL")).expect("rm");
    (read_all(out.path()), uidl)
}

// Python's poplib, plain (loopback), after STLS, and on implicit TLS:
// every one of 200 messages comes out as stored; UIDL is the same in
// every session, and equals the unique part of each file name.
#[test]
fn poplib_plain_stls_and_ssl_retrieve_200_messages() {
    let Some(python) = peer("python3") else {
        return;
    };
    let sys = System::new();
    let sent = fill(&sys, 200);
    let names_before: Vec<String> = stored(&sys)
        .iter()
        .map(|p| {
            let n = p.file_name().expect("name").to_string_lossy().into_owned();
            n.split([',', ':']).next().expect("unique").to_string()
        })
        .collect();
    let _d = start(&sys);
    let mut uidls = Vec::new();
    for (mode, port) in [
        ("plain", sys.ports.pop3),
        ("stls", sys.ports.pop3),
        ("ssl", sys.ports.pop3s),
    ] {
        let (got, uidl) = poplib(&sys, &python, mode, port);
        assert_eq!(got.len(), 200, "{mode}");
        assert!(
            normalized(got) == normalized(sent.clone()),
            "{mode}: content differs"
        );
        uidls.push(uidl);
    }
    assert_eq!(uidls[0], uidls[1]);
    assert_eq!(uidls[1], uidls[2]);
    let mut uids: Vec<String> = uidls[0]
        .lines()
        .map(|l| l.split_whitespace().nth(1).expect("uid").to_string())
        .collect();
    uids.sort();
    let mut want = names_before;
    want.sort();
    assert_eq!(uids, want, "UIDL is the Maildir unique name");
    // Nothing was deleted; everything moved to cur/.
    assert_eq!(stored(&sys).len(), 200);
    assert_eq!(
        fs::read_dir(maildir(&sys).join("new"))
            .expect("new")
            .count(),
        0
    );
}

// curl pop3:// (loopback, plain) and pop3s:// with the test CA: LIST,
// then all 200 messages over one connection each.
#[test]
fn curl_pop3_and_pop3s_retrieve_200_messages() {
    let Some(curl) = peer("curl") else {
        return;
    };
    let sys = System::new();
    let sent = fill(&sys, 200);
    let _d = start(&sys);
    for (scheme, port) in [("pop3", sys.ports.pop3), ("pop3s", sys.ports.pop3s)] {
        let out = tempfile::tempdir().expect("tempdir");
        let base = format!("{scheme}://127.0.0.1:{port}");
        let list = Command::new(&curl)
            .args(["-sS", "--cacert"])
            .arg(sys.root().join("cert.pem"))
            .args(["-u", &format!("{USER}:{PASSWORD}"), &format!("{base}/")])
            .output()
            .expect("curl");
        assert!(list.status.success(), "{scheme} LIST: {}", stderr(&list));
        assert_eq!(stdout(&list).lines().count(), 200, "{scheme} LIST");
        let o = Command::new(&curl)
            .args(["-sS", "--cacert"])
            .arg(sys.root().join("cert.pem"))
            .args(["-u", &format!("{USER}:{PASSWORD}")])
            .arg(format!("{base}/[1-200]"))
            .arg("-o")
            .arg(out.path().join("msg_#1"))
            .output()
            .expect("curl");
        assert!(o.status.success(), "{scheme}: {}", stderr(&o));
        let got = read_all(out.path());
        assert_eq!(got.len(), 200, "{scheme}");
        assert!(
            normalized(got) == normalized(sent.clone()),
            "{scheme}: content differs"
        );
    }
    // curl with --ssl-reqd on pop3:// uses STLS.
    let o = Command::new(&curl)
        .args(["-sS", "--ssl-reqd", "--cacert"])
        .arg(sys.root().join("cert.pem"))
        .args(["-u", &format!("{USER}:{PASSWORD}")])
        .arg(format!("pop3://127.0.0.1:{}/1", sys.ports.pop3))
        .output()
        .expect("curl");
    assert!(o.status.success(), "STLS: {}", stderr(&o));
    assert!(stdout(&o).contains("Subject: message 0"), "{}", stdout(&o));
}

// fetchmail on implicit TLS (the test CA as its certificate file), every
// message handed to an MDA, then deleted: the Maildir is empty after.
#[test]
fn fetchmail_retrieves_200_messages_and_deletes_them() {
    let Some(fetchmail) = peer("fetchmail") else {
        return;
    };
    let sys = System::new();
    let sent = fill(&sys, 200);
    let _d = start(&sys);
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    let mda = work.path().join("mda.sh");
    fs::write(
        &mda,
        format!(
            "#!/bin/sh\nf=$(mktemp {}/msg.XXXXXX) && cat > \"$f\"\n",
            out.display()
        ),
    )
    .expect("mda");
    fs::set_permissions(&mda, fs::Permissions::from_mode(0o755)).expect("chmod");
    let rc = work.path().join("fetchmailrc");
    fs::write(
        &rc,
        format!(
            "set no syslog\npoll localhost port {} protocol pop3 uidl\n  user \"{USER}\" password \"{PASSWORD}\"\n  ssl sslcertck sslcertfile \"{}\"\n  mda \"{}\"\n  fetchall nokeep\n",
            sys.ports.pop3s,
            sys.root().join("cert.pem").display(),
            mda.display()
        ),
    )
    .expect("rc");
    fs::set_permissions(&rc, fs::Permissions::from_mode(0o600)).expect("chmod");
    let o = Command::new(&fetchmail)
        .arg("-f")
        .arg(&rc)
        .args(["--invisible", "--nosoftbounce", "-v"])
        .env("HOME", work.path())
        .env("FETCHMAILHOME", work.path())
        .output()
        .expect("fetchmail");
    assert!(
        o.status.success(),
        "fetchmail: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let got = read_all(&out);
    assert_eq!(got.len(), 200);
    assert!(normalized(got) == normalized(sent), "content differs");
    assert!(stored(&sys).is_empty(), "fetchmail deleted them");
}

// getmail6 over POP3 with STLS... getmail's SimplePOP3SSLRetriever uses
// implicit TLS: 200 messages into a Maildir, deleted on the server.
#[test]
fn getmail_retrieves_200_messages_and_deletes_them() {
    let Some(getmail) = peer("getmail") else {
        return;
    };
    let sys = System::new();
    let sent = fill(&sys, 200);
    let _d = start(&sys);
    let work = tempfile::tempdir().expect("tempdir");
    let dest = work.path().join("Maildir");
    for d in ["tmp", "new", "cur"] {
        fs::create_dir_all(dest.join(d)).expect("mkdir");
    }
    // getmail refuses to write a Maildir as root: run it as an ordinary
    // user (its `user` option would fork a writer per message instead).
    let as_nobody = nix::unistd::geteuid().is_root().then(|| {
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("getpwnam")
            .expect("nobody");
        fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        for d in [work.path().to_path_buf(), dest.clone()]
            .into_iter()
            .chain(["tmp", "new", "cur"].map(|d| dest.join(d)))
        {
            nix::unistd::chown(&d, Some(nobody.uid), Some(nobody.gid)).expect("chown");
        }
        nobody
    });
    let rc = work.path().join("getmailrc");
    fs::write(
        &rc,
        format!(
            "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = localhost\nport = {}\nusername = {USER}\npassword = {PASSWORD}\nca_certs = {}\ntimeout = 15\n\n[destination]\ntype = Maildir\npath = {}/\n\n[options]\nread_all = true\ndelete = true\ndelivered_to = false\nreceived = false\nverbose = 0\n",
            sys.ports.pop3s,
            sys.root().join("cert.pem").display(),
            dest.display()
        ),
    )
    .expect("rc");
    // getmail forks a writer per message and can miss its SIGCHLD when the
    // child ends before the parent waits ("waiting child pid N timed out",
    // a race in getmailcore/baseclasses.py, seen on a loaded machine). Such
    // a run is started again: messages it filed and deleted are not served
    // again, and those filed but not deleted come again, so the check is
    // on the set of messages; any other failure fails the test.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut c = Command::new(&getmail);
        if let Some(u) = &as_nobody {
            use std::os::unix::process::CommandExt;
            c.uid(u.uid.as_raw())
                .gid(u.gid.as_raw())
                .env("HOME", work.path());
        }
        let o = c
            .arg("--getmaildir")
            .arg(work.path())
            .arg("--rcfile")
            .arg(&rc)
            .output()
            .expect("getmail");
        if o.status.success() {
            break;
        }
        let lost_child = stderr(&o).contains("waiting child pid");
        assert!(
            lost_child && attempts < 3,
            "getmail (attempt {attempts}): {}\n{}",
            stdout(&o),
            stderr(&o)
        );
        eprintln!("getmail lost its delivery child, running it again");
    }
    let got = read_all(&dest.join("new"));
    assert!(got.len() >= 200, "{}", got.len());
    let once = |m: BTreeMap<Vec<u8>, usize>| m.into_keys().collect::<Vec<_>>();
    assert!(
        once(normalized(got)) == once(normalized(sent)),
        "content differs"
    );
    assert!(stored(&sys).is_empty(), "getmail deleted them");
}

// RFC 1939 §6: DELE marks, QUIT removes; a dropped connection removes
// nothing. UIDL of the rest stays the same across sessions.
#[test]
fn dele_then_quit_removes_and_a_dropped_connection_does_not() {
    let sys = System::new();
    fill(&sys, 5);
    let _d = start(&sys);
    let mut c = Client::login(sys.ports.pop3);
    let uidl_before = c.multi("UIDL");
    assert_eq!(c.cmd("DELE 1"), "+OK Message deleted");
    assert_eq!(c.cmd("DELE 2"), "+OK Message deleted");
    drop(c);
    // The server may still be ending that session: its lock goes with it.
    let mut c = login_when_free(sys.ports.pop3);
    assert_eq!(c.count(), 5, "a dropped connection removed nothing");
    assert_eq!(c.multi("UIDL"), uidl_before);
    assert_eq!(c.cmd("DELE 1"), "+OK Message deleted");
    let bye = c.cmd("QUIT");
    assert!(bye.starts_with("+OK"), "{bye}");
    assert_eq!(stored(&sys).len(), 4);
    let mut c = login_when_free(sys.ports.pop3);
    assert_eq!(c.count(), 4);
    let uidl_after = c.multi("UIDL");
    let uid = |l: &String| l.split_whitespace().nth(1).map(str::to_string);
    let before: Vec<_> = uidl_before.iter().skip(1).filter_map(uid).collect();
    let after: Vec<_> = uidl_after.iter().filter_map(uid).collect();
    assert_eq!(before, after, "the other messages keep their UIDs");
}

/// Logs in, retrying while the mailbox is still held by a session that
/// the server has not finished ending.
fn login_when_free(port: u16) -> Client {
    for _ in 0..100 {
        let mut c = Client::connect(port);
        assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
        let r = c.cmd(&format!("PASS {PASSWORD}"));
        if r.starts_with("+OK") {
            return c;
        }
        assert!(r.contains("[IN-USE]"), "{r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the mailbox stayed in use");
}

// The maildrop is a snapshot at login: a message delivered meanwhile
// shows at the next login only. A second session meanwhile gets [IN-USE].
#[test]
fn delivered_during_a_session_shows_at_the_next_login() {
    let sys = System::new();
    fill(&sys, 3);
    let _d = start(&sys);
    let mut c = Client::login(sys.ports.pop3);
    assert_eq!(c.count(), 3);
    let out = run_with_input(
        sys.cmd("mxa-deliver")
            .args(["-f", "bob@example.net", "-a", USER])
            .env_remove("RECIPIENT")
            .env_remove("SENDER"),
        b"Subject: late\n\nlate\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    give_to_daemon(&sys);
    assert_eq!(c.count(), 3, "not visible in this session");
    assert_eq!(c.multi("LIST").len(), 3);
    // RFC 2449 §8.1.2: a second session on the same mailbox.
    let mut second = Client::connect(sys.ports.pop3);
    second.cmd(&format!("USER {USER}"));
    let r = second.cmd(&format!("PASS {PASSWORD}"));
    assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let mut c = login_when_free(sys.ports.pop3);
    assert_eq!(c.count(), 4);
    let last = c.multi("RETR 4");
    assert!(last.iter().any(|l| l == "Subject: late"), "{last:?}");
}

// Refusals: a wrong password ([AUTH]), commands out of state, an unknown
// user answered like a wrong password.
#[test]
fn refusals() {
    let sys = System::new();
    fill(&sys, 1);
    let _d = start(&sys);
    let mut c = Client::connect(sys.ports.pop3);
    assert_eq!(c.cmd("STAT"), "-ERR Command not valid in this state");
    assert_eq!(c.cmd("RETR 1"), "-ERR Command not valid in this state");
    assert_eq!(c.cmd("PASS x"), "-ERR Send USER first");
    assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
    assert_eq!(c.cmd("PASS wrong"), "-ERR [AUTH] Authentication failed");
    assert!(c.cmd("USER nobody@example.test").starts_with("+OK"));
    assert_eq!(
        c.cmd(&format!("PASS {PASSWORD}")),
        "-ERR [AUTH] Authentication failed"
    );
    let mut c = Client::login(sys.ports.pop3);
    assert_eq!(c.cmd("USER x"), "-ERR Command not valid in this state");
    assert_eq!(c.cmd("RETR 9"), "-ERR No such message");
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

// --stdio (inetd, tcpserver, systemd Accept=yes): one session on stdin and
// stdout; a pipe is a local client, so USER/PASS need no TLS.
#[test]
fn stdio_mode() {
    let sys = System::new();
    fill(&sys, 2);
    let script =
        format!("CAPA\r\nUSER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nTOP 1 0\r\nDELE 1\r\nQUIT\r\n");
    let out = run_with_input(
        Command::new(mxa_tests::bin("mxa-pop3d"))
            .arg("--stdio")
            .arg("-c")
            .arg(&sys.config)
            .env_remove("TCPREMOTEIP")
            .env_remove("REMOTE_ADDR"),
        script.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("+OK mx.example.test POP3 mxa ready\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nSTLS\r\n"), "{text}");
    assert!(
        text.contains("+OK Logged in, maildrop has 2 messages"),
        "{text}"
    );
    assert!(text.contains("\r\n+OK 2 "), "{text}");
    assert!(text.contains("Subject: message 0\r\n"), "{text}");
    assert!(
        text.ends_with("+OK mxa POP3 server signing off, messages deleted: 1\r\n"),
        "{text}"
    );
    assert_eq!(stored(&sys).len(), 1);
    let log = stderr(&out);
    for event in [
        "event=connect",
        "event=login",
        "event=update",
        "event=disconnect",
    ] {
        assert!(log.contains(event), "{event}: {log}");
    }
    // From an address off this machine (as tcpserver says), no USER
    // before STLS.
    let out = run_with_input(
        Command::new(mxa_tests::bin("mxa-pop3d"))
            .arg("--stdio")
            .arg("-c")
            .arg(&sys.config)
            .env("TCPREMOTEIP", "192.0.2.7"),
        format!("USER {USER}\r\nQUIT\r\n").as_bytes(),
    );
    let text = stdout(&out);
    assert!(
        text.contains("-ERR [AUTH] Plaintext authentication disallowed"),
        "{text}"
    );
}

// A wrong config exits 78 naming file, line and key; SIGTERM stops the
// daemon cleanly (exit 0).
#[test]
fn config_errors_and_sigterm() {
    let sys = System::with_extra("");
    let bad = sys.root().join("bad.toml");
    fs::write(&bad, "[pop3d]\nlisten = [\"not an address\"]\n").expect("write");
    let o = Command::new(mxa_tests::bin("mxa-pop3d"))
        .arg("-c")
        .arg(&bad)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.toml:2: pop3d.listen"),
        "{}",
        stderr(&o)
    );
    let mut d = start(&sys);
    if nix::unistd::geteuid().is_root() {
        // Bound as root, then `user` (nobody) in every thread before any
        // client is served: the kernel queues connections from the bind
        // on, but the greeting comes only once root is gone.
        drop(Client::connect(sys.ports.pop3));
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("getpwnam")
            .expect("nobody")
            .uid
            .to_string();
        let tasks = format!("/proc/{}/task", d.child.id());
        for t in fs::read_dir(&tasks).expect("tasks").flatten() {
            let status = fs::read_to_string(t.path().join("status")).expect("status");
            let uids = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .expect("Uid line");
            assert!(
                uids.split_whitespace().all(|u| u == nobody),
                "{}: {uids}",
                t.path().display()
            );
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = d.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let mut s = String::new();
    let _ = d.child.stderr.take().map(|mut e| e.read_to_string(&mut s));
}

// mxa-fetch retrieves all 200 messages over pop3s with keep = false (its
// default) and leaves the maildrop empty.
#[test]
fn mxa_fetch_retrieves_everything_and_leaves_the_maildrop_empty() {
    let fetch = mxa_tests::bin("mxa-fetch");
    assert!(fetch.exists(), "mxa-fetch is part of the workspace");
    let sys = System::new();
    fill(&sys, 200);
    let _d = start(&sys);
    let state = tempfile::tempdir().expect("tempdir");
    let out = state.path().join("Maildir");
    let mut c = Command::new(fetch);
    if nix::unistd::geteuid().is_root() {
        // Started as root, mxa-fetch wants a config to drop to; run it as
        // an ordinary user instead, as a user's crontab would.
        use std::os::unix::process::CommandExt;
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("getpwnam")
            .expect("nobody");
        fs::set_permissions(state.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        nix::unistd::chown(state.path(), Some(nobody.uid), Some(nobody.gid)).expect("chown");
        c.uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
    }
    let o = c
        .arg(format!("pop3s://{USER}@127.0.0.1:{}", sys.ports.pop3s))
        .arg("--ca")
        .arg(sys.root().join("cert.pem"))
        .arg("--maildir")
        .arg(&out)
        .env_remove("MXA_CONFIG")
        .env("XDG_STATE_HOME", state.path())
        .env("MXA_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("mxa-fetch");
    assert!(o.status.success(), "mxa-fetch: {}", stderr(&o));
    let got = read_all(&out.join("new"));
    assert_eq!(got.len(), 200);
    for i in [0, 99, 199] {
        let subject = format!("Subject: message {i}\n");
        assert!(
            got.iter()
                .any(|m| String::from_utf8_lossy(m).contains(&subject)),
            "message {i} missing"
        );
    }
    assert!(stored(&sys).is_empty(), "keep = false removes them");
}
