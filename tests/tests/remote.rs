//! Remote delivery by the queue runner, against real peers: Postfix's
//! smtp-sink as the destination (through `[queue] routes`), and MX
//! resolution against dnsmasq on loopback.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mxa_spool::State;
use mxa_tests::{System, free_port, logged_id, peer, stderr, stdout, wait_for_port};

/// smtp-sink on a loopback port, dumping each transaction into `dir`.
struct Sink {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Sink {
    fn start(root: &Path, extra: &[&str]) -> Option<Sink> {
        let bin = peer("smtp-sink")?;
        let dir = root.join(format!("sink-{}", free_port()));
        fs::create_dir_all(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        let port = free_port();
        let mut c = Command::new(bin);
        if nix::unistd::geteuid().is_root() {
            c.args(["-u", "nobody"]);
        }
        let child = c
            .args(extra)
            .arg("-d")
            .arg(format!("{}/%Y%m%d%H%M%S.", dir.display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("50")
            .stdin(Stdio::null())
            .spawn()
            .expect("smtp-sink");
        assert!(
            wait_for_port(port, std::time::Duration::from_secs(10)),
            "smtp-sink did not listen"
        );
        Some(Sink { child, port, dir })
    }

    fn count(&self) -> usize {
        fs::read_dir(&self.dir).map(|d| d.count()).unwrap_or(0)
    }

    fn messages(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn system_routed_to(port: u16) -> System {
    routed_with(port, "")
}

/// As [`system_routed_to`], with more `[queue]` lines.
fn routed_with(port: u16, queue: &str) -> System {
    System::with_extra(&format!(
        "\n[queue]\nroutes = {{ \"remote.test\" = \"127.0.0.1:{port}\" }}\n{queue}\n"
    ))
}

fn send(sys: &System, args: &[&str], msg: &str) -> String {
    let mut a = vec!["-v", "-i"];
    a.extend_from_slice(args);
    let out = sys.run("mxa-sendmail", &a, msg.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    logged_id(&stderr(&out)).expect("id")
}

#[test]
fn delivers_to_a_remote_server_in_one_transaction_per_domain() {
    let sys0 = System::new();
    let Some(sink) = Sink::start(sys0.root(), &[]) else {
        return;
    };
    let sys = system_routed_to(sink.port);
    send(
        &sys,
        &[
            "-f",
            "test@example.test",
            "a@remote.test",
            "b@remote.test",
            "test@example.test",
        ],
        "Subject: out\n\nhello world\n",
    );
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let msgs = sink.messages();
    assert_eq!(
        msgs.len(),
        1,
        "both remote recipients in one transaction: {msgs:?}"
    );
    let m = &msgs[0];
    assert!(
        m.contains("X-Rcpt-Args: <a@remote.test>") && m.contains("X-Rcpt-Args: <b@remote.test>"),
        "{m}"
    );
    assert!(m.contains("X-Mail-Args: <test@example.test>"), "{m}");
    assert!(
        m.contains("Subject: out") && m.contains("hello world"),
        "{m}"
    );
    assert!(
        stderr(&out).contains("event=delivered") && stderr(&out).contains("to=<a@remote.test>")
    );
    assert!(sys.spool().list().expect("list").is_empty());
}

/// DESIGN.md: no process reads the network as root. A root runner hands
/// remote delivery to a child that becomes `user`; if that account does not
/// exist, the mail waits rather than go out as root.
#[test]
fn remote_delivery_never_runs_as_root() {
    if !mxa_tests::require_root("checking privilege separation") {
        return;
    }
    let sys0 = System::new();
    let Some(sink) = Sink::start(sys0.root(), &[]) else {
        return;
    };
    let sys = system_routed_to(sink.port);
    let cfg = fs::read_to_string(&sys.config).expect("config");
    fs::write(
        &sys.config,
        cfg.replace("user = \"nobody\"", "user = \"no-such-account-mxa\""),
    )
    .expect("config");
    send(&sys, &["a@remote.test"], "Subject: x\n\ny\n");
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("remote delivery never runs as root"),
        "{}",
        stderr(&out)
    );
    assert!(sink.messages().is_empty());
}

#[test]
fn a_451_is_retried_and_shown_deferred() {
    let sys0 = System::new();
    let Some(sink) = Sink::start(
        sys0.root(),
        &["-r", "RCPT", "-b", "451 4.7.1 greylisted, come back later"],
    ) else {
        return;
    };
    let sys = system_routed_to(sink.port);
    let id = send(&sys, &["a@remote.test"], "Subject: later\n\nx\n");
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let list = stdout(&sys.run("mxa-queue", &["list"], b""));
    assert!(
        list.contains("<a@remote.test> deferred 20") && list.contains("451 4.7.1 greylisted"),
        "{list}"
    );
    let env = sys
        .spool()
        .envelope(&mxa_spool::QueueId::parse(&id).expect("id"))
        .expect("env");
    assert_eq!(
        (env.recipients[0].state, env.recipients[0].attempts),
        (State::Deferred, 1)
    );
    assert!(sink.messages().is_empty());
}

#[test]
fn a_550_bounces_to_the_local_sender() {
    let sys0 = System::new();
    let Some(sink) = Sink::start(
        sys0.root(),
        &["-f", "RCPT", "-B", "550 5.1.1 no such user here"],
    ) else {
        return;
    };
    let sys = system_routed_to(sink.port);
    send(
        &sys,
        &["-f", "test@example.test", "nobody@remote.test"],
        "Subject: to nobody\n\nx\n",
    );
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert!(
        stderr(&out).contains("event=failed") && stderr(&out).contains("event=bounce"),
        "{}",
        stderr(&out)
    );
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let new = sys.root().join("mail/example.test/test/new");
    let files: Vec<PathBuf> = fs::read_dir(&new)
        .expect("Maildir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1);
    let report = fs::read_to_string(&files[0]).expect("read");
    assert!(
        report.contains("Action: failed") && report.contains("Status: 5.1.1"),
        "{report}"
    );
    assert!(
        report.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user here"),
        "{report}"
    );
    // RFC 3464 §2.3.5: the server that said so (the route's host).
    assert!(report.contains("Remote-MTA: dns; 127.0.0.1"), "{report}");
}

/// RFC 3461 §5.2.2: NOTIFY=SUCCESS to a server without DSN (smtp-sink -N)
/// cannot go along, so we report the hand-over: one success report with
/// `Action: relayed` and the server's reply, delivered to the local sender,
/// and no second one at the next flush.
#[test]
fn notify_success_to_a_server_without_dsn_is_reported_relayed() {
    let sys0 = System::new();
    let Some(sink) = Sink::start(sys0.root(), &["-N"]) else {
        return;
    };
    let sys = system_routed_to(sink.port);
    let id = send(
        &sys,
        &[
            "-N",
            "success,failure",
            "-f",
            "test@example.test",
            "a@remote.test",
        ],
        "Subject: over there\n\nx\n",
    );
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("event=success-report id={id}")),
        "{}",
        stderr(&out)
    );
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    assert!(!msgs[0].contains("NOTIFY="), "no DSN offered: {}", msgs[0]);
    for _ in 0..2 {
        let out = sys.run("mxa-queue", &["flush"], b"");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            !stderr(&out).contains("event=success-report"),
            "{}",
            stderr(&out)
        );
    }
    let new = sys.root().join("mail/example.test/test/new");
    let files: Vec<PathBuf> = fs::read_dir(&new)
        .expect("Maildir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "exactly one report");
    let report = fs::read_to_string(&files[0]).expect("read");
    assert!(
        report.contains("Final-Recipient: rfc822; a@remote.test\nAction: relayed\nStatus: 2."),
        "{report}"
    );
    assert!(report.contains("Diagnostic-Code: smtp; 250"), "{report}");
    assert!(report.contains("Subject: Relayed: over there"), "{report}");
    assert_eq!(sink.messages().len(), 1, "the message went once");
}

/// A server that offers DSN (smtp-sink by default) gets NOTIFY and ORCPT
/// with the recipient; the success report is then its job, not ours.
#[test]
fn notify_success_to_a_server_with_dsn_goes_along() {
    let sys0 = System::new();
    let Some(sink) = Sink::start(sys0.root(), &[]) else {
        return;
    };
    let sys = system_routed_to(sink.port);
    send(
        &sys,
        &[
            "-N",
            "success,failure",
            "-f",
            "test@example.test",
            "a@remote.test",
        ],
        "Subject: over there\n\nx\n",
    );
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("event=success-report"),
        "{}",
        stderr(&out)
    );
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    assert!(
        msgs[0].contains("NOTIFY=SUCCESS,FAILURE"),
        "NOTIFY went along: {}",
        msgs[0]
    );
    assert!(
        sys.spool().list().expect("list").is_empty(),
        "no report queued"
    );
}

/// Issue #5: MX resolution against a real DNS server: a domain's MX host,
/// a domain with no MX but an A record (implicit MX), and a null MX
/// (RFC 7505), which fails at once.
#[test]
fn mx_lookup_implicit_mx_and_null_mx() {
    let sys0 = System::new();
    let Some(sink) = Sink::start(sys0.root(), &[]) else {
        return;
    };
    let Some(dns) = mxa_tests::Dnsmasq::start(&[
        "--mx-host=mx.test,mail.mx.test,10",
        "--host-record=mail.mx.test,127.0.0.1",
        "--host-record=implicit.test,127.0.0.1",
        "--mx-host=nullmx.test,.,0",
    ]) else {
        return;
    };
    let sys = System::with_extra(&format!("\n[queue]\nsmtp_port = {}\n", sink.port));
    let cfg = fs::read_to_string(&sys.config).expect("config");
    let cfg = cfg.replace("\"127.0.0.1:9\"", &format!("\"127.0.0.1:{}\"", dns.port));
    fs::write(&sys.config, cfg).expect("config");
    send(
        &sys,
        &[
            "-f",
            "test@example.test",
            "a@mx.test",
            "b@implicit.test",
            "c@nullmx.test",
        ],
        "Subject: dns\n\nx\n",
    );
    let out = sys.run("mxa-queue", &["flush"], b"");
    let err = stderr(&out);
    assert!(
        err.contains("event=delivered") && err.contains("to=<a@mx.test>"),
        "{err}"
    );
    assert!(err.contains("to=<b@implicit.test>"), "{err}");
    assert!(
        err.contains("event=failed")
            && err.contains("to=<c@nullmx.test>")
            && err.contains("5.1.10"),
        "{err}"
    );
    assert_eq!(sink.messages().len(), 2, "one transaction per domain");
    // The null MX bounce reaches the local sender.
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let new = sys.root().join("mail/example.test/test/new");
    assert_eq!(fs::read_dir(&new).expect("Maildir").count(), 1);
}

/// `[queue] relayhost` with Postfix's bracket rule: every remote domain goes
/// to that one host, no MX lookup.
#[test]
fn a_relayhost_takes_every_remote_domain() {
    let sys0 = System::new();
    let Some(sink) = Sink::start(sys0.root(), &[]) else {
        return;
    };
    let sys = System::with_extra(&format!(
        "\n[queue]\nrelayhost = \"[127.0.0.1]:{}\"\n",
        sink.port
    ));
    send(
        &sys,
        &["a@one.example", "b@two.example"],
        "Subject: via relay\n\nx\n",
    );
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        sink.messages().len(),
        2,
        "one transaction per domain, both to the relayhost"
    );
}

/// Issue #5: SIGKILL the runner during a load of 1,000 messages to a sink,
/// restart it: every message delivered at least once, none lost;
/// duplicates (deliveries in progress at the kill) are counted.
#[test]
fn a_runner_killed_during_a_remote_load_loses_nothing() {
    let sys0 = System::new();
    let Some(sink) = Sink::start(sys0.root(), &[]) else {
        return;
    };
    let sys = routed_with(sink.port, "max_connections = 4");
    let n = 1000;
    let spool = sys.spool();
    for i in 0..n {
        let mut env = mxa_spool::Envelope::new("test@example.test", [format!("r{i}@remote.test")]);
        env.origin = Some("load test".into());
        spool
            .inject(
                &env,
                format!("Subject: load {i}\nX-Token: {i}\n\nx\n").as_bytes(),
            )
            .expect("inject");
    }
    let mut runner = sys
        .cmd("mxa-queue")
        .arg("flush")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("flush");
    let t = std::time::Instant::now();
    while sink.count() < n / 4 && t.elapsed() < std::time::Duration::from_secs(120) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    runner.kill().expect("SIGKILL");
    runner.wait().expect("wait");
    let at_kill = sink.count();
    assert!(at_kill < n, "killed mid-load");
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (missing, dups) = mxa_tests::tally_tokens(sink.messages(), n);
    assert!(missing.is_empty(), "lost: {missing:?}");
    eprintln!("killed after {at_kill} of {n}; {dups} delivered twice");
    assert!(
        dups <= 4,
        "at most the deliveries in progress (4 workers) repeat: {dups}"
    );
    assert!(sys.spool().list().expect("list").is_empty());
}
