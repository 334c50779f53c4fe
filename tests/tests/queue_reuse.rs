//! mxa-queue's outgoing connections (issue #5): several messages for one
//! server share a connection, the per-destination limit holds, and a
//! cached connection the server has dropped costs a retry, never a
//! deferral.
//!
//! The servers: Postfix's smtp-sink (its `-c` counters tell sessions from
//! messages), and for what smtp-sink cannot do (hold a transaction open,
//! drop a connection between transactions) a small SMTP responder in
//! Python that records what it saw.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mxa_tests::{System, free_port, peer, stderr, wait_for_port};

fn routed(port: u16, queue: &str) -> System {
    System::with_extra(&format!(
        "\n[queue]\nroutes = {{ \"remote.test\" = \"127.0.0.1:{port}\" }}\n{queue}\n"
    ))
}

fn inject(sys: &System, n: usize) {
    let spool = sys.spool();
    for i in 0..n {
        let env = mxa_spool::Envelope::new("test@example.test", [format!("r{i}@remote.test")]);
        spool
            .inject(&env, format!("Subject: m{i}\n\nbody {i}\n").as_bytes())
            .expect("inject");
    }
}

fn flush(sys: &System) -> String {
    let out = sys.run("mxa-queue", &["flush"], b"");
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    log
}

/// smtp-sink with its running counters in a file.
struct Sink {
    child: Child,
    port: u16,
    counters: PathBuf,
}

impl Sink {
    fn start(root: &Path) -> Option<Sink> {
        let bin = peer("smtp-sink")?;
        let port = free_port();
        let counters = root.join(format!("sink-{port}.out"));
        let out = fs::File::create(&counters).expect("counters");
        let mut c = Command::new(bin);
        if nix::unistd::geteuid().is_root() {
            c.args(["-u", "nobody"]);
        }
        let child = c
            .arg("-c")
            .arg(format!("127.0.0.1:{port}"))
            .arg("50")
            .stdin(Stdio::null())
            .stdout(out)
            .spawn()
            .expect("smtp-sink");
        assert!(wait_for_port(port, Duration::from_secs(10)), "smtp-sink");
        Some(Sink {
            child,
            port,
            counters,
        })
    }

    /// (sessions, messages) so far: the last `sess=N ... mesg=N` line.
    fn counts(&self) -> (usize, usize) {
        let text = fs::read_to_string(&self.counters).unwrap_or_default();
        let last = text
            .split('\r')
            .rfind(|l| l.contains("sess="))
            .unwrap_or("");
        let field = |k: &str| {
            last.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (field("sess="), field("mesg="))
    }

    /// Waits until the counters stop moving, then returns them.
    fn settled(&self) -> (usize, usize) {
        let mut last = self.counts();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = self.counts();
            if now == last {
                return now;
            }
            last = now;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn messages_for_one_server_share_a_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(sink) = Sink::start(dir.path()) else {
        return;
    };
    // The readiness probe was a session of its own.
    let (s0, m0) = sink.settled();
    assert_eq!(m0, 0);

    // One worker: one connection carries every message.
    let sys = routed(sink.port, "max_connections = 1");
    inject(&sys, 20);
    let log = flush(&sys);
    let (s1, m1) = sink.settled();
    assert_eq!(m1 - m0, 20, "every message arrived: {log}");
    assert_eq!(s1 - s0, 1, "one session for 20 messages: {log}");
    assert_eq!(log.matches("event=reuse").count(), 19, "{log}");
    assert!(sys.spool().list().expect("list").is_empty());

    // The default concurrency: fewer sessions than messages all the same.
    let sys = routed(sink.port, "");
    inject(&sys, 60);
    let log = flush(&sys);
    let (s2, m2) = sink.settled();
    assert_eq!(m2 - m1, 60, "{log}");
    assert!(s2 - s1 < 60, "{} sessions for 60 messages: {log}", s2 - s1);
}

/// An SMTP responder that records the most connections it had at once;
/// `--slow` holds each DATA for a second, `--drop` closes each connection
/// after its first message (as a server's idle timeout would), `--421`
/// answers the command after the first message with 421 and closes.
const RESPONDER: &str = r#"
import socket, sys, threading, time
port, record, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
state = {"now": 0, "most": 0, "sessions": 0, "messages": 0}

def save():
    with open(record + ".tmp", "w") as f:
        f.write("%d %d %d\n" % (state["most"], state["sessions"], state["messages"]))
    import os
    os.replace(record + ".tmp", record)

def serve(c):
    with lock:
        state["now"] += 1
        state["sessions"] += 1
        state["most"] = max(state["most"], state["now"])
        save()
    f = c.makefile("rb")
    done = 0
    counted = True
    try:
        if mode == "554":
            c.sendall(b"554 5.3.2 responder: no SMTP service here\r\n")
        else:
            c.sendall(b"220 responder ESMTP\r\n")
        while True:
            line = f.readline()
            if not line:
                break
            cmd = line.strip().upper()
            if cmd.startswith(b"RCPT"):
                with open(record + ".rcpt", "ab") as r:
                    r.write(line)
            if done and mode == "421":
                c.sendall(b"421 4.4.2 responder: idle too long\r\n")
                break
            if cmd.startswith(b"EHLO"):
                c.sendall(b"250-responder\r\n250 PIPELINING\r\n")
            elif cmd == b"DATA":
                c.sendall(b"354 go on\r\n")
                while f.readline() not in (b".\r\n", b""):
                    pass
                if mode == "slow":
                    time.sleep(1)
                with lock:
                    state["messages"] += 1
                    save()
                c.sendall(b"250 2.0.0 taken\r\n")
                done += 1
                if mode == "drop":
                    break
            elif cmd == b"QUIT":
                # Ended as far as the client is concerned: counted out
                # before the 221, which the client may act on at once.
                with lock:
                    state["now"] -= 1
                    counted = False
                    save()
                c.sendall(b"221 2.0.0 bye\r\n")
                break
            else:
                c.sendall(b"250 2.0.0 ok\r\n")
    except OSError:
        pass
    finally:
        c.close()
        if counted:
            with lock:
                state["now"] -= 1
                save()

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
save()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

struct Responder {
    child: Child,
    port: u16,
    record: PathBuf,
}

impl Responder {
    fn start(root: &Path, mode: &str) -> Option<Responder> {
        let python = peer("python3")?;
        let port = free_port();
        let script = root.join("responder.py");
        fs::write(&script, RESPONDER).expect("script");
        let record = root.join(format!("responder-{port}"));
        let child = Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(&record)
            .arg(mode)
            .stdin(Stdio::null())
            .spawn()
            .expect("python3");
        assert!(wait_for_port(port, Duration::from_secs(10)), "responder");
        Some(Responder {
            child,
            port,
            record,
        })
    }

    /// (most connections at once, sessions, messages).
    fn record(&self) -> (usize, usize, usize) {
        let text = fs::read_to_string(&self.record).unwrap_or_default();
        let v: Vec<usize> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (v[0], v[1], v[2])
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_per_destination_limit_holds_and_binds() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let Some(limited) = Responder::start(dir.path(), "slow") else {
        return;
    };
    let sys = routed(
        limited.port,
        "max_connections = 8\nmax_connections_per_destination = 2",
    );
    inject(&sys, 12);
    let log = flush(&sys);
    let (most, _, messages) = limited.record();
    assert_eq!(messages, 12, "{log}");
    assert!(most <= 2, "{most} connections at once to one destination");

    // The same load with the limit at the total: more at once, so the
    // limit above is what held them to 2.
    let Some(open) = Responder::start(dir.path(), "slow") else {
        return;
    };
    let sys = routed(
        open.port,
        "max_connections = 8\nmax_connections_per_destination = 8",
    );
    inject(&sys, 12);
    flush(&sys);
    let (most, _, messages) = open.record();
    assert_eq!(messages, 12);
    assert!(
        most > 2,
        "only {most} connections at once without the limit"
    );
}

#[test]
fn a_cached_connection_the_server_dropped_costs_a_retry_not_a_deferral() {
    for mode in ["drop", "421"] {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let Some(server) = Responder::start(dir.path(), mode) else {
            return;
        };
        let sys = routed(server.port, "max_connections = 1");
        inject(&sys, 5);
        let log = flush(&sys);
        assert!(!log.contains("deferred=1"), "{mode}: {log}");
        let (_, sessions, messages) = server.record();
        assert_eq!(messages, 5, "{mode}: {log}");
        // The readiness probe, then one session per message.
        assert_eq!(sessions, 6, "{mode}: {log}");
        assert!(
            log.contains("event=reuse"),
            "{mode}: the runner tried: {log}"
        );
        assert!(sys.spool().list().expect("list").is_empty(), "{mode}");
    }
}

/// An IDN domain goes out in A-labels (RFC 5890), so a server without
/// SMTPUTF8 (this one offers none) takes the message.
#[test]
fn an_idn_domain_goes_out_in_a_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let Some(server) = Responder::start(dir.path(), "plain") else {
        return;
    };
    let sys = System::with_extra(&format!(
        "\n[queue]\nrelayhost = \"[127.0.0.1]:{}\"\n",
        server.port
    ));
    let env = mxa_spool::Envelope::new("test@example.test", ["anna@bücher.test".to_string()]);
    sys.spool()
        .inject(&env, b"Subject: idn\n\nx\n")
        .expect("inject");
    let log = flush(&sys);
    assert_eq!(server.record().2, 1, "{log}");
    let rcpts = fs::read_to_string(server.record.with_extension("rcpt")).expect("rcpt log");
    assert!(
        rcpts.contains("RCPT TO:<anna@xn--bcher-kva.test>"),
        "{rcpts}"
    );
}

/// A server that greets with 554 refuses the session, not the message: the
/// recipient is deferred with its words (Postfix's smtp_skip_5xx_greeting),
/// never bounced.
#[test]
fn a_5xx_greeting_defers_rather_than_bounces() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let Some(server) = Responder::start(dir.path(), "554") else {
        return;
    };
    let sys = routed(server.port, "");
    inject(&sys, 1);
    let out = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let list = mxa_tests::stdout(&sys.run("mxa-queue", &["list"], b""));
    assert!(list.contains("deferred"), "{list}");
    assert!(
        list.contains("4.3.2 the server refused the session: 554 5.3.2"),
        "{list}"
    );
    assert!(!stderr(&out).contains("event=bounce"), "{}", stderr(&out));
}
