//! mxa-smtpd under load: Postfix's smtp-source, and clients whose server
//! is SIGKILLed mid-work. Every message acknowledged with 250 must be in
//! the spool, whole.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mxa_tests::{System, peer, stderr};

#[test]
fn smtp_source_load_is_queued_whole() {
    let Some(source) = peer("smtp-source") else {
        return;
    };
    let sys = System::new();
    let _d = sys.smtpd();
    let (sessions, messages) = (20, 600);
    let out = Command::new(source)
        .args(["-s", &sessions.to_string(), "-m", &messages.to_string()])
        .args([
            "-l",
            "4096",
            "-f",
            "load@remote.test",
            "-t",
            "test@example.test",
        ])
        .arg(format!("127.0.0.1:{}", sys.ports.smtp))
        .output()
        .expect("smtp-source");
    // smtp-source stops with an error message at the first reply that is
    // not the expected one; so a clean run means 600 acknowledgements.
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let q = sys.queued();
    assert_eq!(q.len(), messages, "one queued message per acknowledgement");
    // smtp-source sends the same body each time: every stored body is it.
    let body = |d: &[u8]| -> Vec<u8> {
        let s = d.windows(2).position(|w| w == b"\n\n").expect("header end");
        d[s + 2..].to_vec()
    };
    let first = body(&q[0].2);
    assert!(first.len() >= 4000, "{}", first.len());
    assert!(first.starts_with(b"1XXXX"));
    for (id, env, data) in &q {
        assert_eq!(body(data), first, "{id}");
        let text = String::from_utf8_lossy(data);
        assert!(text.starts_with("Received: from "), "{text}");
        assert!(text.contains(&format!(" id {id}\n")), "{text}");
        assert!(env.contains("rcpt <test@example.test>"), "{env}");
    }
    let log = sys.smtpd_log();
    assert_eq!(log.matches("event=queued").count(), messages);
}

/// Clients send numbered messages; the server is SIGKILLed under them.
#[test]
fn sigkill_loses_no_acknowledged_message() {
    let sys = System::new();
    let mut d = sys.smtpd();
    let port = sys.ports.smtp;
    let acked: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..6 {
        let (acked, next, stop) = (acked.clone(), next.clone(), stop.clone());
        clients.push(std::thread::spawn(move || {
            let _ = client(port, &acked, &next, &stop);
        }));
    }
    // Let some messages through, then kill the server mid-work.
    let enough = mxa_tests::postfix::wait_until(Duration::from_secs(120), || {
        acked.lock().expect("lock").len() >= 150
    });
    assert!(enough, "too few messages acknowledged");
    d.child.kill().expect("SIGKILL");
    let _ = d.child.wait();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client");
    }
    let acked = acked.lock().expect("lock").clone();
    let q: HashMap<String, Vec<u8>> = sys
        .queued()
        .into_iter()
        .map(|(id, _, data)| (id, data))
        .collect();
    for (id, token) in &acked {
        let data = q
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged {id} (token {token}) is not in the spool"));
        let text = String::from_utf8_lossy(data);
        assert!(
            text.ends_with(&format!("X-Token: {token}\n\n{}", body(*token))),
            "{id} is not whole: {text}"
        );
    }
    // Every message in the spool is whole (no half-written one visible).
    for (id, data) in &q {
        let text = String::from_utf8_lossy(data);
        let token: usize = text
            .split("X-Token: ")
            .nth(1)
            .and_then(|r| r.split('\n').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{id}: no token"));
        assert!(text.ends_with(&body(token)), "{id} is not whole");
    }
    assert!(acked.len() >= 150);
}

fn body(token: usize) -> String {
    (0..40)
        .map(|i| format!("token {token} line {i} {}\n", "y".repeat((token + i) % 70)))
        .collect()
}

/// Sends numbered messages until told to stop or the server goes away;
/// records the id of each one acknowledged.
fn client(
    port: u16,
    acked: &Mutex<HashMap<String, usize>>,
    next: &AtomicUsize,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut reply = || -> std::io::Result<String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(all);
            }
        }
    };
    reply()?;
    w.write_all(b"EHLO load.test\r\n")?;
    reply()?;
    while !stop.load(Ordering::SeqCst) {
        let token = next.fetch_add(1, Ordering::SeqCst);
        w.write_all(b"MAIL FROM:<load@remote.test>\r\nRCPT TO:<test@example.test>\r\nDATA\r\n")?;
        for _ in 0..3 {
            reply()?;
        }
        let data = format!("X-Token: {token}\n\n{}", body(token)).replace('\n', "\r\n");
        w.write_all(data.as_bytes())?;
        w.write_all(b".\r\n")?;
        let end = reply()?;
        if let Some(id) = end.strip_prefix("250 2.0.0 OK queued as ") {
            acked
                .lock()
                .expect("lock")
                .insert(id.trim().to_string(), token);
        }
    }
    Ok(())
}
