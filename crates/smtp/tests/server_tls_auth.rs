//! STARTTLS (RFC 3207) and AUTH (RFC 4954, RFC 4616) transcripts.
#![allow(clippy::unwrap_used)]

mod server_support;

use mxa_smtp::server::Config;
use server_support::{config, run, run_session, run_with};

/// A submission port: STARTTLS, then AUTH required.
fn submission() -> Config {
    let mut cfg = config();
    cfg.tls_available = true;
    cfg.auth_required = true;
    cfg
}

const GREETING: &str = "S: 220 mx.example.org ESMTP mxa";

/// The EHLO reply with `extra` keywords between ENHANCEDSTATUSCODES and
/// CHUNKING.
fn ehlo_reply(extra: &[&str]) -> String {
    let mut lines = vec![
        "S: 250-mx.example.org",
        "S: 250-PIPELINING",
        "S: 250-SIZE 36700160",
        "S: 250-8BITMIME",
        "S: 250-SMTPUTF8",
        "S: 250-ENHANCEDSTATUSCODES",
    ];
    let extra: Vec<String> = extra.iter().map(|e| format!("S: 250-{e}")).collect();
    lines.extend(extra.iter().map(String::as_str));
    lines.extend(["S: 250-CHUNKING", "S: 250 DSN"]);
    lines.join("\n")
}

/// Greeted, STARTTLS done, EHLO again: AUTH offered.
fn over_tls(rest: &str) -> String {
    format!(
        "{GREETING}
        C: EHLO c
        {}
        C: STARTTLS
        S: 220 2.0.0 Ready to start TLS
        A: starttls
        E: tls
        C: EHLO c
        {}
        {rest}",
        ehlo_reply(&["STARTTLS"]),
        ehlo_reply(&["AUTH PLAIN LOGIN"]),
    )
}

// RFC 3207 §4.2: after the handshake the session starts afresh, and what
// was pipelined after STARTTLS in clear is dropped.
#[test]
fn starttls_resets_state() {
    let (session, _) = run_session(
        submission(),
        &format!(
            "{GREETING}
            C: EHLO c
            {}
            C: AUTH PLAIN AGFAcA==
            S: 530 5.7.0 Must issue a STARTTLS command first
            C: STARTTLS
            C: MAIL FROM:<injected@example.net>
            S: 220 2.0.0 Ready to start TLS
            A: starttls
            E: tls
            C: MAIL FROM:<a@example.net>
            S: 503 5.5.1 Bad sequence of commands: send EHLO first
            C: EHLO c
            {}
            C: STARTTLS
            S: 503 5.5.1 Bad sequence of commands: TLS already active",
            ehlo_reply(&["STARTTLS"]),
            ehlo_reply(&["AUTH PLAIN LOGIN"]),
        ),
    );
    assert!(session.tls_active());
}

#[test]
fn starttls_not_offered_without_certificate() {
    run(
        config(),
        &format!(
            "{GREETING}
            C: EHLO c
            {}
            C: STARTTLS
            S: 502 5.5.1 Command not implemented",
            ehlo_reply(&[]),
        ),
    );
}

#[test]
fn auth_required_before_mail() {
    run(
        submission(),
        &over_tls(
            "C: MAIL FROM:<a@example.net>
            S: 530 5.7.0 Authentication required",
        ),
    );
}

#[test]
fn auth_plain_initial_response() {
    // "\0user@example.org\0secret"
    let envs = run(
        submission(),
        &over_tls(
            "C: AUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0
            A: auth Plain user@example.org secret
            E: auth ok
            S: 235 2.7.0 Authentication successful
            C: AUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0
            S: 503 5.5.1 Bad sequence of commands: already authenticated
            C: MAIL FROM:<user@example.org>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<far@example.net>
            A: rcpt far@example.net
            E: rcpt relay
            S: 250 2.1.5 Recipient OK
            C: BDAT 0 LAST
            A: begin
            A: end <user@example.org> far@example.net
            E: stored q3
            S: 250 2.0.0 OK queued as q3",
        ),
    );
    assert_eq!(envs[0].auth_user.as_deref(), Some("user@example.org"));
    assert_eq!(envs[0].tls.as_ref().unwrap().version, "TLSv1.3");
    assert!(!envs[0].recipients[0].local);
}

#[test]
fn auth_plain_continuation_and_failure() {
    run(
        submission(),
        &over_tls(
            "C: AUTH PLAIN
            S: 334
            C: AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0
            A: auth Plain user@example.org secret
            E: auth fail
            S: 535 5.7.8 Authentication credentials invalid
            C: AUTH PLAIN
            S: 334
            C: *
            S: 501 5.0.0 Authentication cancelled
            C: AUTH PLAIN !!!
            S: 501 5.5.2 Cannot decode response
            C: AUTH CRAM-MD5
            S: 504 5.5.4 Unrecognized authentication type",
        ),
    );
}

#[test]
fn auth_login() {
    run(
        submission(),
        &over_tls(
            "C: AUTH LOGIN
            S: 334 VXNlcm5hbWU6
            C: dXNlckBleGFtcGxlLm9yZw==
            S: 334 UGFzc3dvcmQ6
            C: c2VjcmV0
            A: auth Login user@example.org secret
            E: auth ok
            S: 235 2.7.0 Authentication successful",
        ),
    );
}

// Repeated failures end the session (the caller also delays each 535).
#[test]
fn auth_failures_disconnect() {
    let mut script = String::new();
    for n in 1..=3 {
        script.push_str(
            "C: AUTH LOGIN dXNlckBleGFtcGxlLm9yZw==
            S: 334 UGFzc3dvcmQ6
            C: d3Jvbmc=
            A: auth Login user@example.org wrong
            E: auth fail\n",
        );
        script.push_str(if n < 3 {
            "S: 535 5.7.8 Authentication credentials invalid\n"
        } else {
            "S: 421 4.7.0 Too many authentication failures\nA: close\n"
        });
    }
    run(submission(), &over_tls(&script));
}

#[test]
fn implicit_tls_offers_auth_at_once() {
    let mut cfg = submission();
    cfg.tls_implicit = true;
    run(
        cfg,
        &format!(
            "{GREETING}
            C: EHLO c
            {}",
            ehlo_reply(&["AUTH PLAIN LOGIN"]),
        ),
    );
}

// After AUTH, MAIL FROM must be the user's (the caller's policy says
// which); the null sender always passes; the refusal is 553 5.7.1.
#[test]
fn sender_not_owned_by_the_login_is_refused() {
    let (_, envelopes) = run_with(
        submission(),
        |s| s.check_senders(|user, sender| sender.eq_ignore_ascii_case(user)),
        &over_tls(
            "C: AUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0
            A: auth Plain user@example.org secret
            E: auth ok
            S: 235 2.7.0 Authentication successful
            C: MAIL FROM:<boss@example.org>
            S: 553 5.7.1 Sender address not owned by the authenticated user: <boss@example.org> is not user@example.org's
            C: MAIL FROM:<>
            S: 250 2.1.0 Sender OK
            C: RSET
            S: 250 2.0.0 OK
            C: MAIL FROM:<User@Example.org>
            S: 250 2.1.0 Sender OK",
        ),
    );
    assert!(envelopes.is_empty());
}
