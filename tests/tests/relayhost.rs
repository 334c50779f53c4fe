//! `[queue] relayhost` with AUTH over STARTTLS against a real submission
//! server (issue #5): another mxa system's mxa-smtpd on its submission
//! port, which requires STARTTLS, then AUTH, before it relays. The
//! relayhost's certificate is verified: the runner trusts it through
//! `SSL_CERT_FILE`, as OpenSSL's tools do.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use mxa_tests::{PASSWORD, System, stderr, stdout};

/// The relayhost's certificate where the runner's `user` (nobody) can
/// read it: the systems' own folders are private.
fn trusted_cert(relay: &System, dir: &tempfile::TempDir) -> PathBuf {
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let ca = dir.path().join("relay-ca.pem");
    fs::copy(relay.root().join("cert.pem"), &ca).expect("copy cert");
    fs::set_permissions(&ca, fs::Permissions::from_mode(0o644)).expect("chmod");
    ca
}

/// A system whose relayhost is `relay`'s submission port, logging in with
/// `password`.
fn relaying_to(relay: &System, password: &str) -> System {
    let sys = System::with_extra(&format!(
        "\n[queue]\nrelayhost = \"[127.0.0.1]:{}\"\nrelayhost_password_file = \"relay-password\"\n",
        relay.ports.submission
    ));
    fs::write(
        sys.root().join("relay-password"),
        format!("test@example.test:{password}\n"),
    )
    .expect("password file");
    sys
}

fn send_and_flush(sys: &System, ca: &PathBuf) -> std::process::Output {
    let out = sys.run(
        "mxa-sendmail",
        &["-i", "-f", "test@example.test", "friend@remote.test"],
        b"Subject: through the relayhost\n\nhello\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    sys.cmd("mxa-queue")
        .env("SSL_CERT_FILE", ca)
        .arg("flush")
        .output()
        .expect("flush")
}

#[test]
fn relayhost_auth_over_starttls_to_a_submission_server() {
    let relay = System::new();
    let _smtpd = relay.smtpd();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = trusted_cert(&relay, &dir);

    let sys = relaying_to(&relay, PASSWORD);
    let out = send_and_flush(&sys, &ca);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("event=tls"),
        "STARTTLS to the relayhost: {log}"
    );
    assert!(sys.spool().list().expect("list").is_empty());

    // The relayhost took it from the authenticated user, over TLS.
    let queued = relay.queued();
    assert_eq!(queued.len(), 1, "{}", relay.smtpd_log());
    let (_, envelope, data) = &queued[0];
    assert!(envelope.contains("friend@remote.test"), "{envelope}");
    let data = String::from_utf8_lossy(data);
    assert!(data.contains("with ESMTPSA"), "{data}");
    assert!(data.contains("Subject: through the relayhost"), "{data}");
    let smtpd = relay.smtpd_log();
    assert!(
        smtpd.contains("event=auth") && smtpd.contains("user=test@example.test"),
        "{smtpd}"
    );
}

#[test]
fn a_wrong_relayhost_password_defers_and_says_why() {
    let relay = System::new();
    let _smtpd = relay.smtpd();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = trusted_cert(&relay, &dir);

    let sys = relaying_to(&relay, "not the password");
    let out = send_and_flush(&sys, &ca);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(relay.queued().is_empty());
    let list = sys.run("mxa-queue", &["list"], b"");
    let text = stdout(&list);
    assert!(text.contains("friend@remote.test"), "{text}");
    assert!(text.contains("deferred"), "kept, not bounced: {text}");
    assert!(
        text.contains("535"),
        "the server's refusal is shown: {text}"
    );
}

#[test]
fn an_unverified_relayhost_certificate_defers() {
    let relay = System::new();
    let _smtpd = relay.smtpd();
    let sys = relaying_to(&relay, PASSWORD);
    // No SSL_CERT_FILE: the self-signed certificate is not trusted.
    let out = sys.run(
        "mxa-sendmail",
        &["-i", "-f", "test@example.test", "friend@remote.test"],
        b"Subject: x\n\nx\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = sys
        .cmd("mxa-queue")
        .env("SSL_CERT_FILE", "/nonexistent")
        .env("SSL_CERT_DIR", "/nonexistent")
        .arg("flush")
        .output()
        .expect("flush");
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(
        relay.queued().is_empty(),
        "nothing sent to an unverified relayhost"
    );
    let text = stdout(&sys.run("mxa-queue", &["list"], b""));
    assert!(text.contains("deferred"), "{text}");
}
