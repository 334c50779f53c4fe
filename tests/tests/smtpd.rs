//! mxa-smtpd against real clients: swaks, Python's smtplib, raw dialogues
//! for what no client sends (BDAT, smuggling payloads, hostile input).
//! Every accepted message is looked for in the spool, byte for byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mxa_tests::{DOMAIN, Daemon, PASSWORD, System, peer, run_with_input, stdout};

/// A raw SMTP dialogue for what real clients will not send.
struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let (raw, greeting) = Raw::open(port);
        assert!(greeting.starts_with("220 "), "{greeting}");
        raw
    }

    /// A connection and its first reply, whatever that is.
    fn open(port: u16) -> (Raw, String) {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let w = s.try_clone().expect("clone");
        let mut raw = Raw {
            r: BufReader::new(s),
            w,
        };
        let greeting = raw.reply();
        (raw, greeting)
    }

    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write");
    }

    /// One whole reply, lines joined by "\n" (empty when the server closed).
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.r.read_line(&mut line) {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            all.push_str(line.trim_end());
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
            all.push('\n');
        }
    }

    /// Sends `cmd` + CRLF and returns the reply.
    fn cmd(&mut self, cmd: &str) -> String {
        self.send(format!("{cmd}\r\n").as_bytes());
        self.reply()
    }
}

fn user() -> String {
    format!("test@{DOMAIN}")
}

fn swaks(args: &[&str]) -> Option<(bool, String)> {
    let swaks = peer("swaks")?;
    let out = run_with_input(
        Command::new(swaks).args(args).args(["--timeout", "60"]),
        b"",
    );
    Some((out.status.success(), stdout(&out)))
}

/// The data file of the message queued under `id` (from "queued as ID").
fn queued_id(transcript: &str) -> String {
    transcript
        .split("queued as ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no queue id in:\n{transcript}"))
        .to_string()
}

fn data(sys: &System, id: &str) -> String {
    String::from_utf8(std::fs::read(sys.spool_dir().join("data").join(id)).expect("data"))
        .expect("utf-8")
}

fn envelope(sys: &System, id: &str) -> String {
    std::fs::read_to_string(sys.spool_dir().join("env").join(id)).expect("envelope")
}

fn python(script: &str) -> Option<(bool, String)> {
    let py = peer("python3")?;
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

#[test]
fn swaks_plain_and_pipelined_to_a_local_user() {
    let sys = System::new();
    let _d = sys.smtpd();
    let port = sys.ports.smtp.to_string();
    let server = format!("127.0.0.1:{port}");
    for extra in [&[][..], &["--pipeline"][..]] {
        let mut args = vec![
            "--server",
            &server,
            "--from",
            "alice@remote.test",
            "--to",
            "test@example.test",
            "--header",
            "Subject: plain",
            "--body",
            "line one\n.starts with a dot\nline three",
        ];
        args.extend_from_slice(extra);
        let Some((ok, out)) = swaks(&args) else {
            return;
        };
        assert!(ok, "{out}");
        let id = queued_id(&out);
        let d = data(&sys, &id);
        assert!(d.starts_with("Received: from "), "{d}");
        assert!(d.contains(&format!("with ESMTP id {id}")), "{d}");
        assert!(d.contains("(localhost [127.0.0.1])"), "{d}");
        assert!(d.contains("\tfor <test@example.test>; "), "{d}");
        assert!(d.contains("Subject: plain\n"), "{d}");
        assert!(
            d.contains("\nline one\n.starts with a dot\nline three\n"),
            "{d}"
        );
        assert!(!d.contains('\r'), "the spool stores LF line ends");
        let e = envelope(&sys, &id);
        assert!(e.contains("sender <alice@remote.test>"), "{e}");
        assert!(e.contains("rcpt <test@example.test>"), "{e}");
        assert!(e.contains("origin smtp ip=127.0.0.1"), "{e}");
        // Started as root, it wrote the spool as `user` (nobody): it had
        // dropped root before reading from the client.
        if nix::unistd::geteuid().is_root() {
            use std::os::unix::fs::MetadataExt;
            let nobody = nix::unistd::User::from_name("nobody")
                .ok()
                .flatten()
                .expect("nobody");
            let meta = std::fs::metadata(sys.spool_dir().join("data").join(&id)).expect("meta");
            assert_eq!(meta.uid(), nobody.uid.as_raw(), "written as nobody");
        }
    }
    let log = sys.smtpd_log();
    assert!(log.contains("event=queued"), "{log}");
    assert!(log.contains("event=connect"), "{log}");
}

#[test]
fn swaks_submission_starttls_auth_plain_and_login_and_implicit_tls() {
    let sys = System::new();
    let _d = sys.smtpd();
    let sub = format!("127.0.0.1:{}", sys.ports.submission);
    let subs = format!("127.0.0.1:{}", sys.ports.submissions);
    let u = user();
    let runs: [(&str, &str, &[&str]); 3] = [
        (&sub, "PLAIN", &["-tls"]),
        (&sub, "LOGIN", &["-tls"]),
        (&subs, "PLAIN", &["--tls-on-connect"]),
    ];
    for (server, mech, tls) in runs {
        let mut args = vec![
            "--server",
            server,
            "--auth",
            mech,
            "--auth-user",
            &u,
            "--auth-password",
            PASSWORD,
            "--from",
            &u,
            "--to",
            "friend@remote.test",
        ];
        args.extend_from_slice(tls);
        let Some((ok, out)) = swaks(&args) else {
            return;
        };
        assert!(ok, "{mech} {tls:?}: {out}");
        let id = queued_id(&out);
        let d = data(&sys, &id);
        assert!(d.contains("with ESMTPSA id"), "{d}");
        assert!(d.contains("(using TLSv1."), "{d}");
        assert!(envelope(&sys, &id).contains("rcpt <friend@remote.test>"));
    }
    let log = sys.smtpd_log();
    assert!(log.contains("event=tls"), "{log}");
    assert!(log.contains("result=ok"), "{log}");
}

#[test]
fn refusals() {
    let sys = System::new();
    // Loopback is not trusted here, so it is a stranger on the internet.
    sys.set("trusted_networks", "[]");
    sys.set("max_recipients", "3");
    let _d = sys.smtpd();
    let server = format!("127.0.0.1:{}", sys.ports.smtp);
    // Relay without AUTH: 554 5.7.1.
    let Some((ok, out)) = swaks(&["--server", &server, "--to", "x@remote.test"]) else {
        return;
    };
    assert!(!ok);
    assert!(out.contains("554 5.7.1"), "{out}");
    // Unknown local user: 550 5.1.1.
    let (ok, out) = swaks(&["--server", &server, "--to", "nobody@example.test"]).expect("swaks");
    assert!(!ok);
    assert!(out.contains("550 5.1.1"), "{out}");
    // AUTH before TLS on submission: not offered, and refused if tried.
    let mut r = Raw::connect(sys.ports.submission);
    let ehlo = r.cmd("EHLO client.test");
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    let a = r.cmd("AUTH PLAIN AHRlc3RAZXhhbXBsZS50ZXN0AHNlY3JldA==");
    assert!(a.starts_with("530 5.7.0") || a.starts_with("503"), "{a}");
    let m = r.cmd("MAIL FROM:<test@example.test>");
    assert!(m.starts_with("530 5.7.0"), "MAIL without AUTH: {m}");
    drop(r);
    // Wrong password over TLS: 535 5.7.8.
    let sub = format!("127.0.0.1:{}", sys.ports.submission);
    let (ok, out) = swaks(&[
        "--server",
        &sub,
        "-tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        &user(),
        "--auth-password",
        "wrong",
        "--to",
        "x@remote.test",
    ])
    .expect("swaks");
    assert!(!ok);
    assert!(out.contains("535 5.7.8"), "{out}");
    // Too many recipients: 452 4.5.3 beyond max_recipients.
    let mut r = Raw::connect(sys.ports.smtp);
    // (a stranger waits for the greeting: Raw::connect did)
    assert!(r.cmd("EHLO client.test").starts_with("250"));
    assert!(r.cmd("MAIL FROM:<a@remote.test>").starts_with("250"));
    for _ in 0..3 {
        assert!(r.cmd("RCPT TO:<test@example.test>").starts_with("250"));
    }
    let over = r.cmd("RCPT TO:<test@example.test>");
    assert!(over.starts_with("452 4.5.3"), "{over}");
    assert!(r.cmd("RSET").starts_with("250"));
    // A line over 1,000 octets: 500 5.5.2.
    let long = format!("MAIL FROM:<{}@remote.test>", "a".repeat(1100));
    let l = r.cmd(&long);
    assert!(l.starts_with("500 5.5.2"), "{l}");
    assert!(r.cmd("NOOP").starts_with("250"), "the session goes on");
    // Path tricks are unknown users, never relayed or written anywhere.
    assert!(r.cmd("MAIL FROM:<a@remote.test>").starts_with("250"));
    for trick in [
        "../../etc/passwd@example.test",
        "test%remote.test@example.test",
    ] {
        let v = r.cmd(&format!("RCPT TO:<{trick}>"));
        let refused = v.starts_with("550 5.1.1") || v.starts_with("501 5.1.3");
        assert!(refused, "{trick}: {v}");
    }
    let v = r.cmd("RCPT TO:<@remote.test:x@remote.test>");
    assert!(
        v.starts_with("554 5.7.1") || v.starts_with("501"),
        "source route: {v}"
    );
    drop(r);
    assert!(sys.queued().is_empty(), "nothing was queued");
    let log = sys.smtpd_log();
    assert!(log.contains("result=relay-denied"), "{log}");
    assert!(log.contains("result=failed"), "{log}");
}

#[test]
fn a_client_talking_before_the_greeting_is_refused() {
    let sys = System::new();
    sys.set("trusted_networks", "[]");
    let _d = sys.smtpd();
    let mut s = TcpStream::connect(("127.0.0.1", sys.ports.smtp)).expect("connect");
    s.write_all(b"EHLO spam.test\r\nMAIL FROM:<a@b.test>\r\n")
        .expect("write");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    assert!(all.starts_with("554 5.5.1"), "{all}");
    assert!(sys.smtpd_log().contains("event=pregreet"));
}

#[test]
fn bdat_8bitmime_and_smtputf8() {
    let sys = System::new();
    let users = sys.root().join("users");
    let mut text = std::fs::read_to_string(&users).expect("users");
    text.push_str(&format!("pelé@{DOMAIN}:{}\n", mxa_tests::hash(PASSWORD)));
    std::fs::write(&users, text).expect("users");
    let _d = sys.smtpd();
    let mut r = Raw::connect(sys.ports.smtp);
    let ehlo = r.cmd("EHLO client.test");
    for ext in [
        "CHUNKING",
        "8BITMIME",
        "SMTPUTF8",
        "PIPELINING",
        "SIZE",
        "DSN",
    ] {
        assert!(ehlo.contains(ext), "{ext}: {ehlo}");
    }
    // BDAT in two chunks, the first ending in the middle of a CRLF.
    let body1 = "Subject: chunked\r\n\r\nfirst half\r";
    let body2 = "\nsecond half\r\n";
    assert!(
        r.cmd("MAIL FROM:<a@remote.test> BODY=8BITMIME")
            .starts_with("250")
    );
    assert!(r.cmd("RCPT TO:<test@example.test>").starts_with("250"));
    r.send(format!("BDAT {}\r\n{body1}", body1.len()).as_bytes());
    assert!(r.reply().starts_with("250"));
    r.send(format!("BDAT {} LAST\r\n{body2}", body2.len()).as_bytes());
    let done = r.reply();
    assert!(done.starts_with("250 2.0.0"), "{done}");
    let id = queued_id(&done);
    assert!(data(&sys, &id).ends_with("Subject: chunked\n\nfirst half\nsecond half\n"));
    assert!(envelope(&sys, &id).contains("body 8bitmime"));
    drop(r);

    // SMTPUTF8 and 8-bit content through Python's smtplib.
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port})
s.ehlo("client.test")
msg = "From: Zoë <zoe@remote.test>\r\nTo: pelé@{DOMAIN}\r\nSubject: olá\r\n\r\nçà et là\r\n".encode("utf-8")
r = s.sendmail("zoë@remote.test", ["pelé@{DOMAIN}"], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
print("refused", r)
s.quit()
"#,
        port = sys.ports.smtp
    );
    let Some((ok, out)) = python(&script) else {
        return;
    };
    assert!(ok, "{out}");
    let q = sys.queued();
    let (_, env, data) = q.last().expect("queued");
    assert!(env.contains("sender <zoë@remote.test>"), "{env}");
    assert!(env.contains("rcpt <pelé@example.test>"), "{env}");
    assert!(env.contains("smtputf8"), "{env}");
    let d = String::from_utf8(data.clone()).expect("utf-8 kept as is");
    assert!(d.contains("with UTF8SMTP id"), "{d}");
    assert!(d.ends_with("Subject: olá\n\nçà et là\n"), "{d}");
    // Without SMTPUTF8 a UTF-8 address is refused.
    let mut r = Raw::connect(sys.ports.smtp);
    assert!(r.cmd("EHLO client.test").starts_with("250"));
    let m = r.cmd("MAIL FROM:<zoë@remote.test>");
    assert!(m.starts_with("553 5.6.7"), "{m}");
}

#[test]
fn message_size_limit() {
    let sys = System::new();
    sys.set("max_message_size", "\"20K\"");
    let _d = sys.smtpd();
    let mut r = Raw::connect(sys.ports.smtp);
    assert!(r.cmd("EHLO client.test").contains("SIZE 20480"));
    let big = r.cmd("MAIL FROM:<a@remote.test> SIZE=30000");
    assert!(big.starts_with("552 5.3.4"), "{big}");
    // Exactly at the limit (CRLF line ends, as the size is counted),
    // then one line more without a SIZE= declaration.
    let line = format!("{}\r\n", "x".repeat(98));
    let header = "Subject: size\r\n\r\n";
    let fill = 20480 - header.len();
    let mut at = header.to_string() + &line.repeat(fill / 100);
    at.push_str(&"y".repeat(fill % 100 - 2));
    at.push_str("\r\n");
    assert_eq!(at.len(), 20480);
    for (body, want) in [(at.clone(), "250 2.0.0"), (at.clone() + &line, "552 5.3.4")] {
        assert!(r.cmd("MAIL FROM:<a@remote.test>").starts_with("250"));
        assert!(r.cmd("RCPT TO:<test@example.test>").starts_with("250"));
        assert!(r.cmd("DATA").starts_with("354"));
        r.send(body.as_bytes());
        let end = r.cmd(".");
        assert!(end.starts_with(want), "{want}: {end}");
    }
    assert_eq!(sys.queued().len(), 1);
}

#[test]
fn python_smtplib_every_way_in() {
    let sys = System::new();
    let _d = sys.smtpd();
    let cert = sys.root().join("cert.pem");
    let script = format!(
        r#"
import smtplib, ssl
from email.message import EmailMessage
ctx = ssl.create_default_context(cafile="{cert}")
ctx.check_hostname = False
def msg(subject):
    m = EmailMessage()
    m["From"] = "test@{DOMAIN}"
    m["To"] = "friend@remote.test"
    m["Subject"] = subject
    m.set_content("Hello from smtplib.\n")
    return m
# Port 25 from a trusted network: relays without AUTH.
with smtplib.SMTP("127.0.0.1", {smtp}) as s:
    s.send_message(msg("plain"), to_addrs=["test@{DOMAIN}"])
with smtplib.SMTP("127.0.0.1", {sub}) as s:
    s.starttls(context=ctx)
    s.login("test@{DOMAIN}", "{PASSWORD}")
    s.send_message(msg("starttls"))
with smtplib.SMTP_SSL("127.0.0.1", {subs}, context=ctx) as s:
    s.login("test@{DOMAIN}", "{PASSWORD}")
    s.send_message(msg("ssl"))
try:
    with smtplib.SMTP_SSL("127.0.0.1", {subs}, context=ctx) as s:
        s.login("test@{DOMAIN}", "not the password")
    print("LOGIN ACCEPTED")
except smtplib.SMTPAuthenticationError as e:
    print("refused", e.smtp_code)
"#,
        cert = cert.display(),
        smtp = sys.ports.smtp,
        sub = sys.ports.submission,
        subs = sys.ports.submissions,
    );
    let Some((ok, out)) = python(&script) else {
        return;
    };
    assert!(ok, "{out}");
    assert!(out.contains("refused 535"), "{out}");
    let q = sys.queued();
    assert_eq!(q.len(), 3, "{out}");
    for (subject, proto) in [
        ("plain", "ESMTP"),
        ("starttls", "ESMTPSA"),
        ("ssl", "ESMTPSA"),
    ] {
        let found = q.iter().any(|(_, _, d)| {
            let d = String::from_utf8_lossy(d);
            d.contains(&format!("Subject: {subject}\n")) && d.contains(&format!("with {proto} id"))
        });
        assert!(found, "{subject}");
    }
}

/// Each payload tries to end DATA early and smuggle a second message.
#[test]
fn smtp_smuggling_never_queues_a_second_message() {
    let payloads: [&[u8]; 4] = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n"];
    for bare_lf in ["normalize", "reject"] {
        let sys = System::new();
        sys.set("bare_lf", &format!("\"{bare_lf}\""));
        let _d = sys.smtpd();
        for p in payloads {
            let mut r = Raw::connect(sys.ports.smtp);
            assert!(r.cmd("EHLO client.test").starts_with("250"));
            assert!(r.cmd("MAIL FROM:<a@remote.test>").starts_with("250"));
            assert!(r.cmd("RCPT TO:<test@example.test>").starts_with("250"));
            assert!(r.cmd("DATA").starts_with("354"));
            let mut m = b"Subject: first\r\n\r\nbody".to_vec();
            m.extend_from_slice(p);
            m.extend_from_slice(
                b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<test@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n",
            );
            r.send(&m);
            // Whatever the server does (takes it all as one message, or
            // refuses), the rest of the session must not queue another.
            let _ = r.reply();
            let _ = r.cmd("QUIT");
        }
        let q = sys.queued();
        assert!(q.len() <= payloads.len(), "{bare_lf}: {} queued", q.len());
        for (_, env, data) in &q {
            assert!(!env.contains("evil@remote.test"), "{bare_lf}: {env}");
            let d = String::from_utf8_lossy(data);
            assert!(d.contains("Subject: first"), "{d}");
        }
    }
}

#[test]
fn postfix_relays_to_mxa_smtpd() {
    use mxa_tests::postfix::{Postfix, wait_until};
    let sys = System::new();
    let _d = sys.smtpd();
    let relay = format!("[127.0.0.1]:{}", sys.ports.smtp);
    let Some(pf) = Postfix::start(
        &[
            ("relayhost", &relay),
            ("default_transport", "smtp"),
            ("smtp_tls_security_level", "may"),
        ],
        "tlsmgr unix - - n 1000? 1 tlsmgr\n",
    ) else {
        return;
    };
    let mut msg = b"Subject: via Postfix\nX-Token: 42\n\n".to_vec();
    for i in 0..200 {
        msg.extend_from_slice(format!("line {i} {}\n", "z".repeat(i % 90)).as_bytes());
    }
    // (Postfix's sendmail without -i ends the input at a lone ".")
    msg.extend_from_slice(b"..\n. \n.x\n");
    pf.send("test@example.test", &msg);
    let arrived = wait_until(Duration::from_secs(60), || !sys.queued().is_empty());
    assert!(
        arrived,
        "postfix log:\n{}\nsmtpd log:\n{}",
        pf.log(),
        sys.smtpd_log()
    );
    let (_, env, data) = &sys.queued()[0];
    assert!(env.contains("rcpt <test@example.test>"), "{env}");
    let d = String::from_utf8_lossy(data);
    assert!(d.starts_with("Received: from "), "{d}");
    assert!(d.contains("with ESMTPS id"), "Postfix used STARTTLS: {d}");
    let body = String::from_utf8_lossy(&msg[msg.iter().position(|&b| b == b'\n').expect("nl")..])
        .into_owned();
    let tail = body.split("\n\n").nth(1).expect("body");
    assert!(d.ends_with(tail), "the body arrived intact:\n{d}");
}

#[test]
fn idle_connections_do_not_block_a_new_client_and_silence_is_cut() {
    let sys = System::new();
    sys.set("timeout", "\"3s\"");
    sys.set("max_connections", "600");
    let _d = sys.smtpd();
    // 500 idle connections (from a trusted address, so the per-client
    // limit does not apply; the total one is 600).
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(TcpStream::connect(("127.0.0.1", sys.ports.smtp)).expect("connect"));
    }
    let server = format!("127.0.0.1:{}", sys.ports.smtp);
    let Some((ok, out)) = swaks(&["--server", &server, "--to", "test@example.test"]) else {
        return;
    };
    assert!(ok, "{out}");
    assert_eq!(sys.queued().len(), 1);
    // A silent client is told so and dropped once the timeout passes.
    let mut s = idle.pop().expect("one");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    assert!(all.starts_with("220 "), "{all}");
    assert!(all.contains("421 4.4.2"), "{all}");
}

#[test]
fn stdio_mode_for_inetd() {
    let sys = System::new();
    sys.spool_for_daemons();
    let dialogue = b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<test@example.test>\r\nDATA\r\nSubject: inetd\r\n\r\nhi\r\n.\r\nQUIT\r\n";
    let out = run_with_input(
        sys.cmd("mxa-smtpd")
            .arg("--stdio")
            .env("TCPREMOTEIP", "127.0.0.1"),
        dialogue,
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let id = queued_id(&text);
    let d = data(&sys, &id);
    assert!(d.contains("(localhost [127.0.0.1])"), "{d}");
    assert!(d.ends_with("Subject: inetd\n\nhi\n"), "{d}");
}

#[test]
fn sigterm_lets_the_transaction_in_flight_finish() {
    let sys = System::new();
    let mut d: Daemon = sys.smtpd();
    let mut r = Raw::connect(sys.ports.smtp);
    assert!(r.cmd("EHLO client.test").starts_with("250"));
    assert!(r.cmd("MAIL FROM:<a@remote.test>").starts_with("250"));
    assert!(r.cmd("RCPT TO:<test@example.test>").starts_with("250"));
    assert!(r.cmd("DATA").starts_with("354"));
    r.send(b"Subject: in flight\r\n\r\nfirst part\r\n");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(d.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    // New connections are refused once it stops listening...
    let stopped = mxa_tests::postfix::wait_until(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", sys.ports.submission)).is_err()
    });
    assert!(stopped, "still listening");
    // ...but the message under way is finished and queued.
    let end = r.cmd("second part\r\n.");
    assert!(end.starts_with("250 2.0.0"), "{end}");
    let bye = r.reply();
    assert!(bye.starts_with("421 4.3.2") || bye.is_empty(), "{bye}");
    let status = d.child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    let q = sys.queued();
    assert_eq!(q.len(), 1);
    assert!(String::from_utf8_lossy(&q[0].2).ends_with("first part\nsecond part\n"));
    assert!(Path::new(&sys.spool_dir()).exists());
}

/// `mxa-sendmail -bs`: a local SMTP session, trusted (it may relay).
#[test]
fn sendmail_bs_is_a_local_smtp_session() {
    let sys = System::new();
    sys.spool_for_daemons();
    let dialogue = b"HELO localhost\r\nMAIL FROM:<test@example.test>\r\nRCPT TO:<friend@remote.test>\r\nDATA\r\nSubject: -bs\r\n\r\nhi\r\n.\r\nQUIT\r\n";
    let out = run_with_input(
        sys.cmd("mxa-sendmail")
            .arg("-bs")
            .env("TCPREMOTEIP", "192.0.2.1"),
        dialogue,
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("250 2.1.5"), "relay allowed locally: {text}");
    let id = queued_id(&text);
    let d = data(&sys, &id);
    assert!(d.contains("from localhost (local)"), "{d}");
    assert!(d.contains("with SMTP id"), "{d}");
}

/// The whole inbound chain: swaks → mxa-smtpd → spool → mxa-queue →
/// mxa-deliver → Maildir, the message intact behind its trace lines.
#[test]
fn swaks_to_smtpd_to_queue_to_maildir() {
    let sys = System::new();
    let _d = sys.smtpd();
    let server = format!("127.0.0.1:{}", sys.ports.smtp);
    let Some((ok, out)) = swaks(&[
        "--server",
        &server,
        "--from",
        "alice@remote.test",
        "--to",
        "test@example.test",
        "--header",
        "Subject: end to end",
        "--body",
        "all the way\n.dot line\n",
    ]) else {
        return;
    };
    assert!(ok, "{out}");
    let id = queued_id(&out);
    let flush = sys.run("mxa-queue", &["flush"], b"");
    assert_eq!(
        flush.status.code(),
        Some(0),
        "{}",
        mxa_tests::stderr(&flush)
    );
    assert!(sys.queued().is_empty(), "delivered and removed");
    let new = sys.root().join("mail/example.test/test/new");
    let files: Vec<_> = std::fs::read_dir(&new)
        .expect("Maildir new/")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1);
    let m = std::fs::read_to_string(&files[0]).expect("message");
    assert!(m.starts_with("Return-Path: <alice@remote.test>\n"), "{m}");
    assert!(m.contains("Delivered-To: test@example.test\n"), "{m}");
    assert!(m.contains(&format!("with ESMTP id {id}\n")), "{m}");
    assert!(m.contains("Subject: end to end\n"), "{m}");
    assert!(m.contains("\nall the way\n.dot line\n"), "{m}");
}

#[test]
fn connections_per_client_are_limited() {
    let sys = System::new();
    sys.set("trusted_networks", "[]");
    sys.set("max_connections_per_client", "3");
    let _d = sys.smtpd();
    // The readiness probes of sys.smtpd() hold a slot until the server
    // has seen them close: take the three slots as they come free.
    let mut held: Vec<Raw> = Vec::new();
    let full = mxa_tests::postfix::wait_until(Duration::from_secs(10), || {
        let (raw, greeting) = Raw::open(sys.ports.smtp);
        if greeting.starts_with("220 ") {
            held.push(raw);
        }
        held.len() == 3
    });
    assert!(
        full,
        "three connections from one client were not all greeted"
    );
    let mut s = TcpStream::connect(("127.0.0.1", sys.ports.smtp)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    assert!(all.starts_with("421 4.7.0"), "{all}");
    drop(held);
    // Once they are gone, the client is welcome again.
    let ok = mxa_tests::postfix::wait_until(Duration::from_secs(10), || {
        let mut s = TcpStream::connect(("127.0.0.1", sys.ports.smtp)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut b = [0u8; 3];
        s.read_exact(&mut b).is_ok() && &b == b"220"
    });
    assert!(ok);
    assert!(
        sys.smtpd_log()
            .contains("reason=too-many-connections-from-client")
    );
}

/// The client's name in `Received:` is its forward-confirmed reverse DNS
/// name; a PTR that its own name does not confirm gives "unknown".
#[test]
fn received_names_the_client_by_confirmed_reverse_dns() {
    let Some(dns) = mxa_tests::Dnsmasq::start(&[
        "--host-record=client.example.test,192.0.2.10",
        "--ptr-record=11.2.0.192.in-addr.arpa,client.example.test",
    ]) else {
        return;
    };
    let sys = System::new();
    dns.serve(&sys);
    sys.spool_for_daemons();
    let dialogue = b"EHLO liar.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<test@example.test>\r\nDATA\r\nSubject: rdns\r\n\r\nhi\r\n.\r\nQUIT\r\n";
    for (ip, name) in [
        ("192.0.2.10", "client.example.test"),
        ("192.0.2.11", "unknown"),
    ] {
        // A stranger waits for the greeting (pregreet), then talks.
        let mut child = sys
            .cmd("mxa-smtpd")
            .arg("--stdio")
            .env("TCPREMOTEIP", ip)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut greeting = String::new();
        stdout.read_line(&mut greeting).expect("greeting");
        assert!(greeting.starts_with("220 "), "{greeting}");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(dialogue)
            .expect("write");
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).expect("read");
        let _ = child.wait();
        let id = queued_id(&rest);
        let d = data(&sys, &id);
        assert!(
            d.starts_with(&format!("Received: from liar.test ({name} [{ip}])\n")),
            "{d}"
        );
    }
}

/// Submission: after AUTH, MAIL FROM must be the login's own address, an
/// extension of it, or an alias that reaches it; the null sender passes;
/// anything else is 553 5.7.1 (Postfix's reject_sender_login_mismatch).
/// A trusted client without AUTH is not concerned.
#[test]
fn submission_refuses_a_sender_the_login_does_not_own() {
    let sys = System::new();
    std::fs::write(
        sys.root().join("aliases"),
        "sales: test, boss@remote.test\nboss: boss@remote.test\n",
    )
    .expect("aliases");
    let cfg = std::fs::read_to_string(&sys.config).expect("config");
    std::fs::write(
        &sys.config,
        cfg.replacen(
            "spool = \"spool\"",
            "spool = \"spool\"\naliases = \"aliases\"",
            1,
        ),
    )
    .expect("config");
    let _d = sys.smtpd();
    let sub = format!("127.0.0.1:{}", sys.ports.submission);
    let u = user();
    let try_from = |from: &str| {
        swaks(&[
            "--server",
            &sub,
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            &u,
            "--auth-password",
            PASSWORD,
            "--from",
            from,
            "--to",
            "friend@remote.test",
        ])
    };
    for from in [
        u.as_str(),
        "TEST@example.test",
        "test+lists@example.test",
        "sales@example.test",
        "<>",
    ] {
        let Some((ok, out)) = try_from(from) else {
            return;
        };
        assert!(ok, "{from:?} is the login's: {out}");
    }
    for from in [
        "boss@example.test",
        "someone@remote.test",
        "test@remote.test",
    ] {
        let Some((ok, out)) = try_from(from) else {
            return;
        };
        assert!(!ok, "{from:?} is not the login's: {out}");
        assert!(
            out.contains("553 5.7.1 Sender address not owned by the authenticated user"),
            "{out}"
        );
    }
    let log = sys.smtpd_log();
    assert!(
        log.contains("event=mail")
            && log.contains("from=boss@example.test")
            && log.contains("result=not-owned"),
        "{log}"
    );

    // Python's smtplib, the way a script submits: the same rule.
    let Some(py) = peer("python3") else {
        return;
    };
    let script = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", {port})
s.starttls(context=ctx)
s.login("{u}", "{PASSWORD}")
try:
    s.sendmail("boss@example.test", ["friend@remote.test"], "Subject: x\r\n\r\nx\r\n")
    print("accepted")
except smtplib.SMTPSenderRefused as e:
    print("refused", e.smtp_code, e.smtp_error.decode())
s.sendmail("{u}", ["friend@remote.test"], "Subject: mine\r\n\r\nx\r\n")
print("own ok")
s.quit()
"#,
        port = sys.ports.submission
    );
    let out = run_with_input(Command::new(py).arg("-c").arg(&script), b"");
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("refused 553 5.7.1"), "{text}");
    assert!(text.contains("own ok"), "{text}");

    // A trusted client on the MTA port, without AUTH, sends as anyone.
    let mta = format!("127.0.0.1:{}", sys.ports.smtp);
    let Some((ok, out)) = swaks(&[
        "--server",
        &mta,
        "--from",
        "boss@example.test",
        "--to",
        "friend@remote.test",
    ]) else {
        return;
    };
    assert!(ok, "{out}");
}
