//! mxa-fetch end to end, against a private Dovecot (tests/src/dovecot.rs):
//! POP3 and IMAP, STARTTLS and TLS on connect with a private CA, into a
//! Maildir, through mxa-deliver and into the spool; exactly once across
//! reruns, failing MDAs, a connection cut mid-run, IDLE, and certificates
//! that do not verify.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mxa_tests::dovecot::{DC_PASSWORD, DC_USER, Dovecot, maildir_messages};
use mxa_tests::{bin, stderr, stdout, tally_tokens};

/// A deterministic message of mixed size with an `X-Token:` header: most
/// are a few KiB, one in four tens of KiB, one in twenty a few hundred
/// KiB. Bodies have lines that start with "." (dot-stuffing on the wire)
/// and with "From ".
fn message(token: usize) -> Vec<u8> {
    let mut seed = (token as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let size = match token % 20 {
        0 => 200_000 + (next() % 300_000) as usize,
        1..=5 => 10_000 + (next() % 40_000) as usize,
        _ => 1_000 + (next() % 3_000) as usize,
    };
    let mut m = format!(
        "Return-Path: <sender{token}@example.net>\nFrom: Sender <sender{token}@example.net>\nTo: {DC_USER}\nSubject: message {token}\nMessage-ID: <{token}.fetch@example.net>\nX-Token: {token}\n\n"
    )
    .into_bytes();
    let mut line = 0;
    while m.len() < size {
        let n = 20 + (next() % 70) as usize;
        let word: String = (0..n)
            .map(|i| char::from(b'a' + ((next() as usize + i) % 26) as u8))
            .collect();
        match line % 17 {
            3 => m.extend_from_slice(b".leading dot\n"),
            7 => m.extend_from_slice(b"From the start of a line\n"),
            11 => m.extend_from_slice(b".\n"),
            _ => {
                m.extend_from_slice(word.as_bytes());
                m.push(b'\n');
            }
        }
        line += 1;
    }
    m
}

/// Fills the Dovecot Maildir with messages `0..n`; returns them by token.
fn fill(dc: &Dovecot, range: std::ops::Range<usize>) -> HashMap<usize, Vec<u8>> {
    range
        .map(|t| {
            let m = message(t);
            dc.add_message(&m);
            (t, m)
        })
        .collect()
}

/// The user the tests run mxa-fetch as: `nobody`, since mxa-fetch started
/// as root becomes the config's `user` (and without a config refuses).
fn nobody() -> (u32, u32) {
    let u = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("the user nobody");
    (u.uid.as_raw(), u.gid.as_raw())
}

/// mxa-fetch as `nobody`, with no config.
fn fetch_cmd() -> Command {
    let mut c = Command::new(bin("mxa-fetch"));
    if nix::unistd::geteuid().is_root() {
        let (uid, gid) = nobody();
        c.uid(uid).gid(gid);
    }
    c.env_remove("MXA_CONFIG");
    c
}

/// mxa-fetch with no config, its state in `state`, the password in the
/// environment.
fn fetch(state: &Path, args: &[&str]) -> Output {
    let mut c = fetch_cmd();
    c.args(args)
        .env_remove("MXA_CONFIG")
        .env("XDG_STATE_HOME", state)
        .env("MXA_PASSWORD", DC_PASSWORD)
        .stdin(Stdio::null());
    c.output().expect("run mxa-fetch")
}

/// The X-Token of a message.
fn token(m: &[u8]) -> usize {
    String::from_utf8_lossy(m)
        .lines()
        .find_map(|l| l.strip_prefix("X-Token: "))
        .and_then(|t| t.parse().ok())
        .expect("an X-Token header")
}

/// A delivered message without the fields mxa-fetch (`Received:`) and
/// mxa-deliver (`Return-Path:`, `Delivered-To:`) put on top, checking
/// that the `Received:` is there and names the retrieval.
fn strip_added(m: &[u8], protocol: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(m);
    let mut rest: &str = &text;
    let mut received = None;
    while let Some((first, tail)) = rest.split_once('\n') {
        let name = first.split(':').next().unwrap_or("");
        if !["Received", "Delivered-To", "Return-Path"].contains(&name) {
            break;
        }
        // A field and its continuation lines.
        let mut end = first.len() + 1;
        for l in tail.split_inclusive('\n') {
            if l.starts_with('\t') || l.starts_with(' ') {
                end += l.len();
            } else {
                break;
            }
        }
        if name == "Received" {
            received = Some(rest[..end].to_string());
        }
        if name == "Return-Path" && rest[end..].starts_with("From: Sender") {
            break; // the original's own Return-Path (mxa-deliver replaced it)
        }
        rest = &rest[end..];
    }
    let received = received.expect("a Received: field");
    assert!(
        received.contains("(mxa-fetch) with ")
            && received.contains(protocol)
            && received.contains("for <test@example.test>"),
        "{received}"
    );
    rest.as_bytes().to_vec()
}

/// Checks that `md` holds each message of `sent` exactly once, its bytes
/// as sent apart from the fields added on top (and, through mxa-deliver,
/// its Return-Path, which mxa-deliver writes again from the sender).
fn assert_exactly_once(md: &Path, sent: &HashMap<usize, Vec<u8>>, protocol: &str) {
    let got = maildir_messages(md);
    let (missing, extra) = tally_tokens(
        got.iter()
            .map(|(_, m)| String::from_utf8_lossy(m).into_owned()),
        sent.len(),
    );
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert_eq!(extra, 0, "delivered twice");
    assert_eq!(got.len(), sent.len());
    for (name, m) in &got {
        let t = token(m);
        let body = strip_added(m, protocol);
        let want = &sent[&t];
        let want_rest = want
            .strip_prefix(format!("Return-Path: <sender{t}@example.net>\n").as_bytes())
            .expect("sent with a Return-Path");
        assert!(
            body == *want || body == want_rest,
            "{name}: message {t} differs from what was sent"
        );
    }
}

/// A folder in the Dovecot instance's folder that mxa-fetch (run as
/// `nobody`) may write.
fn fresh_dir(dc: &Dovecot, name: &str) -> PathBuf {
    let p = dc.root().join(name);
    fs::create_dir_all(&p).expect("mkdir");
    if nix::unistd::geteuid().is_root() {
        let (uid, gid) = nobody();
        chown(&p, Some(uid), Some(gid)).expect("chown");
    }
    p
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr(o)
    );
}

/// The `key=value` of the progress line.
fn counted(o: &Output, key: &str) -> usize {
    let e = stderr(o);
    let line = e
        .lines()
        .rfind(|l| l.contains(" new="))
        .unwrap_or_else(|| panic!("no progress line in {e}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

#[test]
fn pop3_starttls_into_a_maildir_exactly_once_and_the_server_empties() {
    let Some(dc) = Dovecot::start() else { return };
    let sent = fill(&dc, 0..500);
    let (state, out) = (fresh_dir(&dc, "state"), fresh_dir(&dc, "out"));
    let url = dc.url("pop3", dc.ports.pop3);
    let ca = dc.ca();
    let args = [
        url.as_str(),
        "--ca",
        ca.to_str().expect("utf8"),
        "--maildir",
        out.to_str().expect("utf8"),
    ];
    let o = fetch(&state, &args);
    ok(&o);
    assert_eq!(counted(&o, "new"), 500);
    assert_eq!(counted(&o, "delivered"), 500);
    assert_exactly_once(&out, &sent, "POP3");
    assert!(dc.messages().is_empty(), "keep = false leaves nothing");
    // A second run finds nothing new.
    let o = fetch(&state, &args);
    ok(&o);
    assert_eq!(counted(&o, "new"), 0);
    assert_eq!(maildir_messages(&out).len(), 500);
}

/// Runs `args` and checks the result: every message once, each run's
/// progress line.
fn fetch_all(dc: &Dovecot, url: &str, extra: &[&str], n: usize, protocol: &str) -> PathBuf {
    let (state, out) = (fresh_dir(dc, "state"), fresh_dir(dc, "out"));
    let sent = fill(dc, 0..n);
    let ca = dc.ca();
    let mut args = vec![url, "--ca", ca.to_str().expect("utf8")];
    args.extend_from_slice(extra);
    let deliver = format!("{} {}", bin("mxa-deliver").display(), out.display());
    let target = if extra.contains(&"--maildir") {
        vec![]
    } else {
        vec!["--mda", deliver.as_str()]
    };
    let mut all = args.clone();
    all.extend_from_slice(&target);
    let o = fetch(&state, &all);
    ok(&o);
    assert_eq!(counted(&o, "new"), n, "{}", stderr(&o));
    assert_eq!(counted(&o, "delivered"), n);
    assert_exactly_once(&out, &sent, protocol);
    let o = fetch(&state, &all);
    ok(&o);
    assert_eq!(counted(&o, "new"), 0, "a second run fetches nothing");
    assert_eq!(maildir_messages(&out).len(), n);
    out
}

#[test]
fn imaps_through_mxa_deliver_with_keep_leaves_the_server_untouched_and_seen() {
    let Some(dc) = Dovecot::start() else { return };
    let url = format!("{}/INBOX", dc.url("imaps", dc.ports.imaps));
    fetch_all(&dc, &url, &["--keep"], 500, "IMAP");
    let left = dc.messages();
    assert_eq!(left.len(), 500, "keep = true deletes nothing");
    for (name, m) in &left {
        assert!(
            name.contains(":2,") && name.split(":2,").nth(1).is_some_and(|f| f.contains('S')),
            "{name}: not marked \\Seen"
        );
        assert!(
            !name.split(":2,").nth(1).is_some_and(|f| f.contains('T')),
            "{name}: marked deleted"
        );
        assert_eq!(*m, message(token(m)), "the server's copy is untouched");
    }
}

#[test]
fn pop3s_through_mxa_deliver_with_keep_leaves_the_server_untouched() {
    let Some(dc) = Dovecot::start() else { return };
    let url = dc.url("pop3s", dc.ports.pop3s);
    fetch_all(&dc, &url, &["--keep"], 500, "POP3");
    let left = dc.messages();
    assert_eq!(left.len(), 500, "keep = true deletes nothing");
    for (_, m) in &left {
        assert_eq!(*m, message(token(m)), "the server's copy is untouched");
    }
}

#[test]
fn imap_starttls_into_a_maildir_and_the_folder_empties() {
    let Some(dc) = Dovecot::start() else { return };
    let url = dc.url("imap", dc.ports.imap);
    let out = dc.root().join("out");
    fetch_all(
        &dc,
        &url,
        &["--maildir", out.to_str().expect("utf8")],
        500,
        "IMAP",
    );
    assert!(dc.messages().is_empty(), "keep = false leaves nothing");
    let (_, first) = &maildir_messages(&out)[0];
    let text = String::from_utf8_lossy(first);
    assert!(text.contains("STARTTLS)"), "{text:.400}");
}

/// An MDA that runs mxa-deliver into `out`, except on call `fail_call` or
/// for the message with `X-Token: fail_token`, where it exits `code`.
fn flaky_mda(dir: &Path, out: &Path, fail_call: usize, fail_token: usize, code: i32) -> String {
    let script = dir.join("mda.sh"); // `dir` is writable by the MDA's user
    fs::write(
        &script,
        format!(
            r#"#!/bin/sh
tmp=$(mktemp)
cat > "$tmp"
n=$(cat "{count}" 2>/dev/null || echo 0)
n=$((n+1))
echo "$n" > "{count}"
if [ "$n" -eq {fail_call} ] || grep -q '^X-Token: {fail_token}$' "$tmp"; then
  rm -f "$tmp"
  echo "mda says no ({code})" >&2
  exit {code}
fi
{deliver} {out} < "$tmp"
rc=$?
rm -f "$tmp"
exit $rc
"#,
            count = dir.join("count").display(),
            deliver = bin("mxa-deliver").display(),
            out = out.display(),
        ),
    )
    .expect("script");
    format!("sh {}", script.display())
}

fn mda_75_on_the_tenth_stops_and_the_next_run_delivers_the_rest(scheme: &str) {
    let Some(dc) = Dovecot::start() else { return };
    let port = if scheme == "pop3s" {
        dc.ports.pop3s
    } else {
        dc.ports.imaps
    };
    let url = dc.url(scheme, port);
    let sent = fill(&dc, 0..30);
    let (state, out) = (fresh_dir(&dc, "state"), fresh_dir(&dc, "out"));
    let mda = flaky_mda(&fresh_dir(&dc, "mda"), &out, 10, usize::MAX, 75);
    let ca = dc.ca();
    let ca = ca.to_str().expect("utf8");
    let o = fetch(&state, &[&url, "--ca", ca, "--mda", &mda]);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert_eq!(counted(&o, "delivered"), 9);
    assert_eq!(counted(&o, "deferred"), 1);
    assert!(stderr(&o).contains("event=deferred"), "{}", stderr(&o));
    assert_eq!(maildir_messages(&out).len(), 9);
    assert_eq!(dc.messages().len(), 21, "the server keeps messages 10..");
    // The next run, with the same MDA now past its failure, delivers the rest.
    let o = fetch(&state, &[&url, "--ca", ca, "--mda", &mda]);
    ok(&o);
    assert_eq!(counted(&o, "new"), 21);
    assert_exactly_once(&out, &sent, if scheme == "pop3s" { "POP3" } else { "IMAP" });
    assert!(dc.messages().is_empty());
}

#[test]
fn pop3_mda_75_on_the_tenth_stops_and_the_next_run_delivers_the_rest() {
    mda_75_on_the_tenth_stops_and_the_next_run_delivers_the_rest("pop3s");
}

#[test]
fn imap_mda_75_on_the_tenth_stops_and_the_next_run_delivers_the_rest() {
    mda_75_on_the_tenth_stops_and_the_next_run_delivers_the_rest("imaps");
}

fn mda_67_on_one_message_leaves_it_on_the_server(scheme: &str) {
    let Some(dc) = Dovecot::start() else { return };
    let port = if scheme == "pop3s" {
        dc.ports.pop3s
    } else {
        dc.ports.imaps
    };
    let url = dc.url(scheme, port);
    fill(&dc, 0..30);
    let (state, out) = (fresh_dir(&dc, "state"), fresh_dir(&dc, "out"));
    let mda = flaky_mda(&fresh_dir(&dc, "mda"), &out, 0, 5, 67);
    let ca = dc.ca();
    let ca = ca.to_str().expect("utf8");
    let o = fetch(&state, &[&url, "--ca", ca, "--mda", &mda]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert_eq!(counted(&o, "delivered"), 29);
    assert_eq!(counted(&o, "failed"), 1);
    assert!(stderr(&o).contains("event=failed"), "{}", stderr(&o));
    let got = maildir_messages(&out);
    assert_eq!(got.len(), 29);
    assert!(got.iter().all(|(_, m)| token(m) != 5));
    let left = dc.messages();
    assert_eq!(left.len(), 1, "only the refused message stays");
    assert_eq!(token(&left[0].1), 5);
    // It is tried again on the next run (and refused again), nothing else.
    let o = fetch(&state, &[&url, "--ca", ca, "--mda", &mda]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert_eq!(counted(&o, "new"), 1);
    assert_eq!(maildir_messages(&out).len(), 29);
}

#[test]
fn pop3_mda_67_on_one_message_leaves_it_on_the_server() {
    mda_67_on_one_message_leaves_it_on_the_server("pop3s");
}

#[test]
fn imap_mda_67_on_one_message_leaves_it_on_the_server() {
    mda_67_on_one_message_leaves_it_on_the_server("imaps");
}

/// A TCP proxy to `target` on loopback; its first connection is cut after
/// `cut` bytes from the server.
fn cutting_proxy(target: u16, cut: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for (i, c) in l.incoming().enumerate() {
            let Ok(client) = c else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let limit = if i == 0 { cut } else { usize::MAX };
            let (c2, s2) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || pump(c2, s2, usize::MAX));
            std::thread::spawn(move || pump(server, client, limit));
        }
    });
    port
}

fn pump(mut from: TcpStream, mut to: TcpStream, limit: usize) {
    let mut buf = [0u8; 16384];
    let mut sent = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = n.min(limit - sent);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
        if sent >= limit {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

fn cut_connection_loses_nothing(scheme: &str) {
    let Some(dc) = Dovecot::start() else { return };
    let port = if scheme == "pop3" {
        dc.ports.pop3
    } else {
        dc.ports.imap
    };
    let sent = fill(&dc, 0..200);
    let total: usize = sent.values().map(Vec::len).sum();
    let proxy = cutting_proxy(port, total / 2);
    let (state, out) = (fresh_dir(&dc, "state"), fresh_dir(&dc, "out"));
    let ca = dc.ca();
    let ca = ca.to_str().expect("utf8");
    let md = out.to_str().expect("utf8");
    let o = fetch(
        &state,
        &[&dc.url(scheme, proxy), "--ca", ca, "--maildir", md],
    );
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let first = maildir_messages(&out).len();
    assert!(first > 0 && first < 200, "cut mid-run: {first} delivered");
    // The rerun (through the proxy, which no longer cuts) completes.
    let o = fetch(
        &state,
        &[&dc.url(scheme, proxy), "--ca", ca, "--maildir", md],
    );
    ok(&o);
    assert_exactly_once(&out, &sent, if scheme == "pop3" { "POP3" } else { "IMAP" });
    assert!(dc.messages().is_empty(), "the rerun removed everything");
}

#[test]
fn pop3_connection_cut_mid_run_loses_nothing() {
    cut_connection_loses_nothing("pop3");
}

#[test]
fn imap_connection_cut_mid_run_loses_nothing() {
    cut_connection_loses_nothing("imap");
}

/// Polls `f` until true or the (generous) deadline.
fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn idle_delivers_a_message_added_while_it_waits() {
    let Some(dc) = Dovecot::start() else { return };
    let mut sent = fill(&dc, 0..3);
    let (state, out) = (fresh_dir(&dc, "state"), fresh_dir(&dc, "out"));
    let log = dc.root().join("fetch.log");
    let mut child = fetch_cmd()
        .args([
            "--idle",
            &dc.url("imaps", dc.ports.imaps),
            "--ca",
            dc.ca().to_str().expect("utf8"),
            "--maildir",
            out.to_str().expect("utf8"),
        ])
        .env("XDG_STATE_HOME", &state)
        .env("MXA_PASSWORD", DC_PASSWORD)
        .stdin(Stdio::null())
        .stderr(fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn mxa-fetch --idle");
    let got = |n: usize| maildir_messages(&out).len() == n;
    let first = wait_until(Duration::from_secs(60), || got(3));
    let m = message(3);
    dc.add_message(&m);
    sent.insert(3, m);
    let second = first && wait_until(Duration::from_secs(60), || got(4));
    let _ = child.kill();
    let _ = child.wait();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(first, "the first run: {text}");
    assert!(second, "the message added while idling: {text}");
    assert_exactly_once(&out, &sent, "IMAP");
    assert!(dc.messages().is_empty());
}

#[test]
fn a_certificate_that_does_not_verify_is_refused_unless_ca_or_insecure() {
    let Some(dc) = Dovecot::start() else { return };
    fill(&dc, 0..3);
    let (state, out) = (fresh_dir(&dc, "state"), fresh_dir(&dc, "out"));
    let md = out.to_str().expect("utf8");
    for url in [
        dc.url("imaps", dc.ports.imaps),
        dc.url("imap", dc.ports.imap),
        dc.url("pop3s", dc.ports.pop3s),
        dc.url("pop3", dc.ports.pop3),
    ] {
        let o = fetch(&state, &[&url, "--maildir", md]);
        assert_eq!(o.status.code(), Some(69), "{url}: {}", stderr(&o));
        assert!(stderr(&o).contains("certificate"), "{url}: {}", stderr(&o));
        assert!(maildir_messages(&out).is_empty());
    }
    assert_eq!(dc.messages().len(), 3);
    // --insecure fetches, loudly.
    let o = fetch(
        &state,
        &[
            &dc.url("pop3s", dc.ports.pop3s),
            "--insecure",
            "--maildir",
            md,
        ],
    );
    ok(&o);
    assert!(stderr(&o).contains("event=insecure"), "{}", stderr(&o));
    assert_eq!(maildir_messages(&out).len(), 3);
    // --no-starttls logs in in clear, and Received: says so.
    fill(&dc, 3..5);
    let imap = dc.url("imap", dc.ports.imap);
    let o = fetch(&state, &[&imap, "--no-starttls", "--maildir", md]);
    ok(&o);
    let got = maildir_messages(&out);
    assert_eq!(got.len(), 5);
    for (_, m) in got.iter().filter(|(_, m)| token(m) >= 3) {
        let text = String::from_utf8_lossy(m);
        assert!(text.contains("with IMAP\n\t(no TLS)"), "{text:.300}");
    }
}

/// The tokens of the messages in `sys`'s spool, sorted, each checked:
/// queued for someone@example.test from its sender, byte-identical to what
/// was sent apart from the added header (fetched over POP3).
fn queued_tokens(sys: &mxa_tests::System, sent: &HashMap<usize, Vec<u8>>) -> Vec<usize> {
    let spool = sys.spool();
    let mut tokens = Vec::new();
    for id in &spool.list().expect("list") {
        let env = spool.envelope(id).expect("envelope");
        assert_eq!(env.recipients.len(), 1);
        assert_eq!(env.recipients[0].address, "someone@example.test");
        let mut data = Vec::new();
        spool
            .open_data(id)
            .expect("data")
            .read_to_end(&mut data)
            .expect("read");
        let t = token(&data);
        assert_eq!(env.sender, format!("sender{t}@example.net"));
        assert_eq!(strip_added(&data, "POP3"), sent[&t]);
        tokens.push(t);
    }
    tokens.sort();
    tokens
}

#[test]
fn config_accounts_queue_into_the_spool_and_keep_state_under_it() {
    let Some(dc) = Dovecot::start() else { return };
    let sent = fill(&dc, 0..5);
    let pw = dc.root().join("pw");
    fs::write(&pw, format!("{DC_PASSWORD}\nsecond line ignored\n")).expect("pw");
    let out = fresh_dir(&dc, "out");
    let sys = mxa_tests::System::with_extra(&format!(
        r#"
[[fetch]]
name = "pop"
url = "{pop}"
password_command = "cat {pw}"
queue_to = "someone@example.test"
keep = true

[[fetch]]
name = "imap"
url = "{imap}/INBOX"
password_command = "cat {pw}"
maildir = "{out}"
"#,
        pop = dc.url("pop3s", dc.ports.pop3s),
        imap = dc.url("imaps", dc.ports.imaps),
        pw = pw.display(),
        out = out.display(),
    ));
    // Started as root, mxa-fetch becomes the config's `user` (nobody here)
    // before it reads anything: that user needs the spool.
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(sys.root(), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::create_dir_all(sys.spool_dir()).expect("mkdir");
        let (uid, gid) = nobody();
        chown(sys.spool_dir(), Some(uid), Some(gid)).expect("chown");
    }
    let ca = dc.ca();
    let run = |args: &[&str]| {
        let mut c = sys.cmd("mxa-fetch");
        c.args(["--ca", ca.to_str().expect("utf8")])
            .args(args)
            .env_remove("MXA_PASSWORD")
            .stdin(Stdio::null());
        c.output().expect("run")
    };
    // Only the account named: POP3, kept, into the spool.
    let o = run(&["--once", "pop"]);
    ok(&o);
    assert!(
        stderr(&o).contains("account=pop server=pop3s://"),
        "{}",
        stderr(&o)
    );
    let spool = sys.spool();
    assert_eq!(queued_tokens(&sys, &sent), [0, 1, 2, 3, 4]);
    assert_eq!(dc.messages().len(), 5, "keep = true");
    let state = sys.spool_dir().join(format!(
        "fetch/pop/pop3-test@example.test@127.0.0.1-{}",
        dc.ports.pop3s
    ));
    let text = fs::read_to_string(&state).expect("state under <spool>/fetch/<account>/");
    assert!(text.starts_with("mxa-fetch-state 1 pop3\n"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("uidl ")).count(), 5);
    // All accounts: POP3 has nothing new, IMAP takes everything.
    let o = run(&["--once"]);
    ok(&o);
    assert!(
        stderr(&o).contains("account=pop server=pop3s://"),
        "{}",
        stderr(&o)
    );
    assert_eq!(counted(&o, "new"), 5, "the last line is the IMAP account's");
    assert_eq!(spool.list().expect("list").len(), 5, "nothing twice");
    assert_exactly_once(&out, &sent, "IMAP");
    assert!(dc.messages().is_empty());
    // An unknown account is a usage error.
    let o = run(&["nosuch"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
}

#[test]
fn a_refused_login_exits_77_and_a_url_without_target_64() {
    let Some(dc) = Dovecot::start() else { return };
    fill(&dc, 0..2);
    let state = fresh_dir(&dc, "state");
    let out = fresh_dir(&dc, "out");
    let ca = dc.ca();
    for (scheme, port) in [("pop3s", dc.ports.pop3s), ("imaps", dc.ports.imaps)] {
        let mut c = fetch_cmd();
        c.args([
            &dc.url(scheme, port),
            "--ca",
            ca.to_str().expect("utf8"),
            "--maildir",
            out.to_str().expect("utf8"),
        ])
        .env("XDG_STATE_HOME", &state)
        .env("MXA_PASSWORD", "wrong");
        let o = c.output().expect("run");
        assert_eq!(o.status.code(), Some(77), "{scheme}: {}", stderr(&o));
    }
    assert_eq!(dc.messages().len(), 2);
    let o = fetch(&state, &[&dc.url("pop3s", dc.ports.pop3s)]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    // Root without a config has no `user` to become: refused, unconnected.
    let o = Command::new(bin("mxa-fetch"))
        .args([&dc.url("pop3s", dc.ports.pop3s), "--maildir"])
        .arg(&out)
        .env_remove("MXA_CONFIG")
        .env("MXA_PASSWORD", DC_PASSWORD)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert!(stderr(&o).contains("never reads the network as root"));
    assert_eq!(dc.messages().len(), 2);
}

/// Gives the INBOX a new UIDVALIDITY, as a restored backup or a rebuilt
/// index would.
fn change_uidvalidity(dc: &Dovecot, v: u32) -> bool {
    let Some(doveadm) = mxa_tests::peer("doveadm") else {
        return false;
    };
    let o = Command::new(doveadm)
        .arg("-c")
        .arg(dc.root().join("dovecot.conf"))
        .args(["mailbox", "update", "-u", DC_USER, "--uid-validity"])
        .arg(v.to_string())
        .arg("INBOX")
        .output()
        .expect("doveadm");
    assert!(o.status.success(), "doveadm: {}{}", stderr(&o), dc.log());
    true
}

#[test]
fn a_new_uidvalidity_holds_a_kept_folder_and_refetches_an_emptied_one() {
    let Some(dc) = Dovecot::start() else { return };
    let url = dc.url("imaps", dc.ports.imaps);
    let ca = dc.ca();
    let ca = ca.to_str().expect("utf8");
    let mut sent = fill(&dc, 0..5);
    // keep = true: held, loudly, nothing fetched twice.
    let (state, out) = (fresh_dir(&dc, "state"), fresh_dir(&dc, "out"));
    let md = out.to_str().expect("utf8");
    ok(&fetch(
        &state,
        &[&url, "--ca", ca, "--keep", "--maildir", md],
    ));
    assert_eq!(maildir_messages(&out).len(), 5);
    if !change_uidvalidity(&dc, 4242) {
        return;
    }
    let o = fetch(&state, &[&url, "--ca", ca, "--keep", "--maildir", md]);
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("event=uidvalidity-changed")
            && e.contains("new=4242")
            && e.contains("policy=hold"),
        "{e}"
    );
    assert_eq!(maildir_messages(&out).len(), 5, "no silent duplicate");
    // keep = false: the folder holds only what is new, fetched in full.
    let (state2, out2) = (fresh_dir(&dc, "state2"), fresh_dir(&dc, "out2"));
    let md2 = out2.to_str().expect("utf8");
    ok(&fetch(&state2, &[&url, "--ca", ca, "--maildir", md2]));
    for t in 5..8 {
        let m = message(t);
        dc.add_message(&m);
        sent.insert(t, m);
    }
    assert!(change_uidvalidity(&dc, 4343));
    let o = fetch(&state2, &[&url, "--ca", ca, "--maildir", md2]);
    ok(&o);
    let e = stderr(&o);
    assert!(e.contains("policy=refetch") && e.contains("new=3"), "{e}");
    assert_exactly_once(&out2, &sent, "IMAP");
}

/// A provider's own `Delivered-To: <login>` (as Gmail writes on every
/// message) must not make the MDA see a mail loop: mxa-fetch renames it
/// `X-Original-Delivered-To:` for the MDA.
#[test]
fn the_providers_delivered_to_is_not_a_loop_for_mxa_deliver() {
    let Some(dc) = Dovecot::start() else { return };
    for i in 0..3 {
        dc.add_message(
            format!("Delivered-To: {DC_USER}\nReturn-Path: <a@example.net>\nSubject: provider {i}\n\nbody {i}\n")
                .as_bytes(),
        );
    }
    let (state, out) = (fresh_dir(&dc, "state"), fresh_dir(&dc, "out"));
    let url = dc.url("pop3s", dc.ports.pop3s);
    let ca = dc.ca();
    let deliver = format!("{} {}", bin("mxa-deliver").display(), out.display());
    let o = fetch(
        &state,
        &[
            url.as_str(),
            "--ca",
            ca.to_str().expect("utf8"),
            "--mda",
            &deliver,
        ],
    );
    ok(&o);
    let got = maildir_messages(&out);
    assert_eq!(got.len(), 3, "{}", stderr(&o));
    for (_, m) in got {
        let m = String::from_utf8_lossy(&m);
        assert!(
            m.contains(&format!("X-Original-Delivered-To: {DC_USER}\n")),
            "{m}"
        );
        assert!(m.contains(&format!("Delivered-To: {DC_USER}\n")), "{m}");
    }
}

/// A large first fetch shows a progress bar when stderr is a terminal
/// (run under script(1), which gives it a pseudo-terminal), and none
/// otherwise.
#[test]
fn a_progress_bar_on_a_terminal_only() {
    let Some(script) = mxa_tests::peer("script") else {
        return;
    };
    let Some(dc) = Dovecot::start() else { return };
    let url = dc.url("pop3s", dc.ports.pop3s);
    let ca = dc.ca();
    let mut bars = Vec::new();
    for terminal in [true, false] {
        fill(&dc, 0..120);
        let (state, out) = (
            fresh_dir(&dc, &format!("state-{terminal}")),
            fresh_dir(&dc, &format!("out-{terminal}")),
        );
        let args = [
            bin("mxa-fetch").display().to_string(),
            url.clone(),
            "--ca".into(),
            ca.display().to_string(),
            "--maildir".into(),
            out.display().to_string(),
        ];
        let o = if terminal {
            // script runs the command line with its output on a pty and
            // copies it to its own stdout.
            let mut c = Command::new(&script);
            if nix::unistd::geteuid().is_root() {
                let (uid, gid) = nobody();
                c.uid(uid).gid(gid);
            }
            c.args(["-qec", &args.join(" "), "/dev/null"])
                .env_remove("MXA_CONFIG")
                .env("XDG_STATE_HOME", &state)
                .env("MXA_PASSWORD", DC_PASSWORD)
                .stdin(Stdio::null())
                .output()
                .expect("script")
        } else {
            fetch(
                &state,
                &args[1..].iter().map(String::as_str).collect::<Vec<_>>(),
            )
        };
        ok(&o);
        assert_eq!(maildir_messages(&out).len(), 120);
        let text = format!("{}{}", stdout(&o), stderr(&o));
        bars.push(text.contains("[#########################] 120/120"));
    }
    assert_eq!(bars, [true, false], "a bar on the terminal only");
}

/// Ad hoc `--queue-to ADDRESS` (DESIGN.md's flag): each message goes into
/// mxa's spool for that address. And a `--maildir` that cannot be created
/// exits 73 (EX_CANTCREAT), with every message left on the server.
#[test]
fn ad_hoc_queue_to_and_a_maildir_that_cannot_be_created() {
    let Some(dc) = Dovecot::start() else { return };
    let sent = fill(&dc, 0..3);
    let sys = mxa_tests::System::new();
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(sys.root(), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::create_dir_all(sys.spool_dir()).expect("mkdir");
        let (uid, gid) = nobody();
        chown(sys.spool_dir(), Some(uid), Some(gid)).expect("chown");
    }
    let ca = dc.ca();

    // A Maildir under a regular file: 73, nothing fetched.
    let file = fresh_dir(&dc, "blocker").join("a-file");
    fs::write(&file, "not a folder\n").expect("file");
    let state = fresh_dir(&dc, "state");
    let bad = file.join("Maildir");
    let o = fetch(
        &state,
        &[
            &dc.url("imaps", dc.ports.imaps),
            "--ca",
            ca.to_str().expect("utf8"),
            "--maildir",
            bad.to_str().expect("utf8"),
        ],
    );
    assert_eq!(o.status.code(), Some(73), "{}", stderr(&o));
    assert!(stderr(&o).contains("a-file"), "{}", stderr(&o));
    assert_eq!(dc.messages().len(), 3, "nothing taken");

    // --queue-to: into the spool, for that address.
    let o = sys
        .cmd("mxa-fetch")
        .args([
            &dc.url("pop3s", dc.ports.pop3s),
            "--ca",
            ca.to_str().expect("utf8"),
            "--queue-to",
            "someone@example.test",
        ])
        .env("MXA_PASSWORD", DC_PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    ok(&o);
    assert_eq!(queued_tokens(&sys, &sent), [0, 1, 2], "{}", stderr(&o));
    assert!(dc.messages().is_empty(), "keep is off by default");
}

/// `--move-to FOLDER` (IMAP, RFC 6851 MOVE, which Dovecot offers): each
/// delivered message leaves INBOX for the folder, made when missing,
/// marked seen; a second run fetches nothing. POP3 and keep refuse it.
#[test]
fn imap_move_to_a_folder_after_delivery() {
    let Some(dc) = Dovecot::start() else { return };
    let sent = fill(&dc, 0..20);
    let (state, out) = (fresh_dir(&dc, "state"), fresh_dir(&dc, "out"));
    let ca = dc.ca();
    let url = dc.url("imaps", dc.ports.imaps);
    let args = [
        url.as_str(),
        "--ca",
        ca.to_str().expect("utf8"),
        "--maildir",
        out.to_str().expect("utf8"),
        "--move-to",
        "Archive",
    ];
    let o = fetch(&state, &args);
    ok(&o);
    assert_eq!(counted(&o, "delivered"), 20);
    assert_exactly_once(&out, &sent, "IMAP");
    assert!(dc.messages().is_empty(), "INBOX emptied");
    let archive = maildir_messages(&dc.maildir().join(".Archive"));
    assert_eq!(archive.len(), 20, "moved, not deleted");
    let mut tokens: Vec<usize> = archive.iter().map(|(_, m)| token(m)).collect();
    tokens.sort();
    assert_eq!(tokens, (0..20).collect::<Vec<_>>());
    for (name, _) in &archive {
        assert!(name.contains(":2,") && name.contains('S'), "seen: {name}");
    }
    // Nothing new, and the folder exists already.
    let o = fetch(&state, &args);
    ok(&o);
    assert_eq!(counted(&o, "new"), 0);
    assert_eq!(maildir_messages(&dc.maildir().join(".Archive")).len(), 20);
    // POP3 has no folders; keep contradicts a move.
    let pop = dc.url("pop3s", dc.ports.pop3s);
    for bad in [
        vec![
            pop.as_str(),
            "--maildir",
            out.to_str().expect("utf8"),
            "--move-to",
            "A",
        ],
        vec![
            url.as_str(),
            "--maildir",
            out.to_str().expect("utf8"),
            "--move-to",
            "A",
            "--keep",
        ],
    ] {
        let o = fetch(&state, &bad);
        assert_eq!(o.status.code(), Some(64), "{bad:?}: {}", stderr(&o));
    }
}

/// IMAP logs in with AUTHENTICATE PLAIN when offered, so a password with
/// quotes, backslashes, spaces and non-ASCII letters goes through as is.
#[test]
fn imap_authenticate_plain_carries_any_password() {
    let Some(dc) = Dovecot::start() else { return };
    let user = "odd@example.test";
    let password = "a \"quoted\" back\\slash pässwörd";
    dc.add_user(user, password);
    let (state, out) = (fresh_dir(&dc, "state"), fresh_dir(&dc, "out"));
    let ca = dc.ca();
    let o = fetch_cmd()
        .args([
            &format!("imaps://odd%40example.test@127.0.0.1:{}", dc.ports.imaps),
            "--ca",
            ca.to_str().expect("utf8"),
            "--maildir",
            out.to_str().expect("utf8"),
            "-v",
        ])
        .env("XDG_STATE_HOME", &state)
        .env("MXA_PASSWORD", password)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    ok(&o);
    let e = stderr(&o);
    assert!(
        e.contains("event=login") && e.contains("AUTHENTICATE PLAIN"),
        "{e}"
    );
    assert_eq!(counted(&o, "new"), 0);
    // And a wrong one is still refused.
    let o = fetch_cmd()
        .args([
            &format!("imaps://odd%40example.test@127.0.0.1:{}", dc.ports.imaps),
            "--ca",
            ca.to_str().expect("utf8"),
            "--maildir",
            out.to_str().expect("utf8"),
        ])
        .env("XDG_STATE_HOME", &state)
        .env("MXA_PASSWORD", "a \"quoted\"")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
}
