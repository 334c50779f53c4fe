//! Transcript tests of the session: greeting, EHLO/HELO, PIPELINING,
//! STARTTLS (RFC 3207), AUTH (RFC 4954).
#![allow(clippy::unwrap_used)]

mod support;

use mxa_smtp::client::{Config, RcptResult, Tls};
use support::{config, env, run, run_client};

fn with_auth(tls: Tls) -> Config {
    Config {
        auth: Some(("alice".into(), "s3cret".into())),
        ..config(tls)
    }
}

/// RFC 5321 §3.3, one command per reply.
#[test]
fn plain_delivery_without_pipelining() {
    let outcomes = run(
        config(Tls::Opportunistic),
        vec![env("alice@example.org", &["bob@example.net"])],
        "
        A: start
        S: 220 mx.example.net ESMTP
        C: EHLO client.example
        S: 250-mx.example.net greets client.example
        S: 250 8BITMIME
        C: MAIL FROM:<alice@example.org>
        S: 250 2.1.0 ok
        C: RCPT TO:<bob@example.net>
        S: 250 2.1.5 ok
        C: DATA
        S: 354 go ahead
        C: <message>
        S: 250 2.0.0 queued as 4F2A
        C: <done delivered:250>
        A: quit
        C: QUIT
        S: 221 2.0.0 bye
        C: <close>
        ",
    );
    assert_eq!(
        outcomes[0].results[0].reply().text(),
        "250 2.0.0 queued as 4F2A"
    );
}

/// RFC 2920 §3.1: MAIL, the RCPTs and DATA in one write.
#[test]
fn pipelining_sends_one_group() {
    let mut e = env("", &["bob@example.net", "carol@example.net"]);
    e.size = Some(500);
    run(
        config(Tls::Never),
        vec![e],
        "
        A: start
        S: 220 mx.example.net ESMTP
        C: EHLO client.example
        S: 250-mx.example.net
        S: 250-PIPELINING
        S: 250-STARTTLS
        S: 250 SIZE 1000000
        C: MAIL FROM:<> SIZE=500
        C: RCPT TO:<bob@example.net>
        C: RCPT TO:<carol@example.net>
        C: DATA
        S: 250 2.1.0 ok
        S: 250 2.1.5 ok
        S: 250 2.1.5 ok
        S: 354 go ahead
        C: <message>
        S: 250 2.0.0 ok
        C: <done delivered:250 delivered:250>
        ",
    );
}

/// The session may be set up before any transaction is given.
#[test]
fn ready_before_start() {
    run(
        config(Tls::Never),
        vec![env("a@example.org", &["b@example.net"])],
        "
        S: 220 mx.example.net ESMTP
        C: EHLO client.example
        S: 250 mx.example.net
        C: <done>
        A: start
        C: MAIL FROM:<a@example.org>
        ",
    );
}

/// RFC 3207 §4.2: after TLS, EHLO again, and forget what was offered
/// before (here PIPELINING, gone after the handshake).
#[test]
fn starttls_opportunistic() {
    let (client, _) = run_client(
        config(Tls::Opportunistic),
        vec![env("a@example.org", &["b@example.net"])],
        "
        A: start
        S: 220 mx.example.net ESMTP
        C: EHLO client.example
        S: 250-mx.example.net
        S: 250-PIPELINING
        S: 250 STARTTLS
        C: STARTTLS
        S: 220 2.0.0 ready to start TLS
        C: <starttls>
        C: EHLO client.example
        S: 250-mx.example.net
        S: 250 SIZE 10000
        C: MAIL FROM:<a@example.org>
        ",
    );
    assert!(client.tls_active());
    assert!(!client.capabilities().pipelining && !client.capabilities().starttls);
    assert_eq!(client.capabilities().size, Some(10_000));
}

/// RFC 3207 §4: 454 to STARTTLS; opportunistic goes on in clear.
#[test]
fn starttls_refused_continues_in_clear() {
    let (client, _) = run_client(
        config(Tls::Opportunistic),
        vec![env("a@example.org", &["b@example.net"])],
        "
        A: start
        S: 220 mx.example.net ESMTP
        C: EHLO client.example
        S: 250-mx.example.net
        S: 250 STARTTLS
        C: STARTTLS
        S: 454 4.7.0 TLS not available due to temporary reason
        C: MAIL FROM:<a@example.org>
        ",
    );
    assert!(!client.tls_active());
}

#[test]
fn tls_required_but_not_offered_defers() {
    let outcomes = run(
        config(Tls::Required),
        vec![
            env("a@example.org", &["b@example.net", "c@example.net"]),
            env("a@example.org", &["d@example.net"]),
        ],
        "
        A: start
        S: 220 mx.example.net ESMTP
        C: EHLO client.example
        S: 250-mx.example.net
        S: 250 8BITMIME
        C: <done deferred:451 deferred:451>
        A: start
        C: <done deferred:451>
        A: quit
        C: QUIT
        S: 221 2.0.0 bye
        C: <close>
        ",
    );
    assert_eq!(
        outcomes[0].results[0].reply().enhanced().as_deref(),
        Some("4.7.0")
    );
}

#[test]
fn tls_required_and_refused_defers() {
    let outcomes = run(
        config(Tls::Required),
        vec![env("a@example.org", &["b@example.net"])],
        "
        A: start
        S: 220 mx.example.net ESMTP
        C: EHLO client.example
        S: 250-mx.example.net
        S: 250 STARTTLS
        C: STARTTLS
        S: 554 5.7.0 no TLS for you
        C: <done deferred:451>
        ",
    );
    let text = outcomes[0].results[0].reply().text();
    assert!(
        text.contains("TLS required but STARTTLS refused: 554 5.7.0 no TLS for you"),
        "{text}"
    );
}

/// RFC 4954 §4 with RFC 4616's PLAIN as initial response, only once TLS
/// is on: AUTH is offered after the handshake here.
#[test]
fn auth_plain_after_starttls() {
    run(
        with_auth(Tls::Opportunistic),
        vec![env("a@example.org", &["b@example.net"])],
        "
        A: start
        S: 220 smarthost.example ESMTP
        C: EHLO client.example
        S: 250-smarthost.example
        S: 250 STARTTLS
        C: STARTTLS
        S: 220 go ahead
        C: <starttls>
        C: EHLO client.example
        S: 250-smarthost.example
        S: 250 AUTH LOGIN PLAIN
        C: AUTH PLAIN AGFsaWNlAHMzY3JldA==
        S: 235 2.7.0 authenticated
        C: MAIL FROM:<a@example.org>
        ",
    );
}

/// LOGIN when PLAIN is not offered: 334 challenges, base64 answers.
#[test]
fn auth_login() {
    run(
        with_auth(Tls::AlreadyOn),
        vec![env("a@example.org", &["b@example.net"])],
        "
        A: start
        S: 220 smarthost.example ESMTP
        C: EHLO client.example
        S: 250-smarthost.example
        S: 250 AUTH=LOGIN
        C: AUTH LOGIN
        S: 334 VXNlcm5hbWU6
        C: YWxpY2U=
        S: 334 UGFzc3dvcmQ6
        C: czNjcmV0
        S: 235 2.7.0 ok
        C: MAIL FROM:<a@example.org>
        ",
    );
}

/// 535 defers every recipient, of this and of later transactions: the
/// login is at fault, not the messages (as Postfix's
/// smtp_sasl_auth_soft_bounce); the server's words are kept.
#[test]
fn auth_failure_defers_with_the_servers_reply() {
    let outcomes = run(
        with_auth(Tls::AlreadyOn),
        vec![
            env("a@example.org", &["b@example.net"]),
            env("a@example.org", &["c@example.net"]),
        ],
        "
        A: start
        S: 220 smarthost.example ESMTP
        C: EHLO client.example
        S: 250-smarthost.example
        S: 250 AUTH PLAIN
        C: AUTH PLAIN AGFsaWNlAHMzY3JldA==
        S: 535 5.7.8 authentication credentials invalid
        C: <done deferred:451>
        A: start
        C: <done deferred:451>
        A: quit
        C: QUIT
        S: 221 bye
        C: <close>
        ",
    );
    assert_eq!(
        outcomes[1].results[0],
        RcptResult::Deferred(mxa_smtp::reply::Reply::new(
            451,
            "4.7.0 the server refused our login: 535 5.7.8 authentication credentials invalid"
        ))
    );
}

#[test]
fn auth_temporary_failure_defers() {
    run(
        with_auth(Tls::AlreadyOn),
        vec![env("a@example.org", &["b@example.net"])],
        "
        A: start
        S: 220 smarthost.example ESMTP
        C: EHLO client.example
        S: 250-smarthost.example
        S: 250 AUTH PLAIN
        C: AUTH PLAIN AGFsaWNlAHMzY3JldA==
        S: 454 4.7.0 temporary authentication failure
        C: <done deferred:454>
        ",
    );
}

/// Credentials never go in clear.
#[test]
fn auth_without_tls_defers() {
    let outcomes = run(
        with_auth(Tls::Opportunistic),
        vec![env("a@example.org", &["b@example.net"])],
        "
        A: start
        S: 220 smarthost.example ESMTP
        C: EHLO client.example
        S: 250-smarthost.example
        S: 250 AUTH PLAIN LOGIN
        C: <done deferred:451>
        ",
    );
    assert!(
        outcomes[0].results[0]
            .reply()
            .text()
            .contains("AUTH needs TLS")
    );
}

/// RFC 5321 §3.2: a server without ESMTP refuses EHLO; HELO follows and no
/// extension (here SIZE) is used.
#[test]
fn ehlo_refused_falls_back_to_helo() {
    let mut e = env("a@example.org", &["b@example.net"]);
    e.size = Some(100);
    e.eightbit = true;
    run(
        config(Tls::Opportunistic),
        vec![e],
        "
        A: start
        S: 220 old.example.net SMTP
        C: EHLO client.example
        S: 500 5.5.1 command unrecognized
        C: HELO client.example
        S: 250 old.example.net
        C: MAIL FROM:<a@example.org>
        ",
    );
}

/// RFC 5321 §3.1: a 554 greeting means no service; the client QUITs.
/// The recipients are deferred, not failed: this server refused the
/// session, not the message (the next MX may take it; as Postfix's
/// smtp_skip_5xx_greeting).
#[test]
fn greeting_554_defers() {
    run(
        config(Tls::Opportunistic),
        vec![env("a@example.org", &["b@example.net", "c@example.net"])],
        "
        A: start
        S: 554 5.3.2 no SMTP service here
        C: <done deferred:451 deferred:451>
        A: quit
        C: QUIT
        S: 221 bye
        C: <close>
        ",
    );
}

/// A 421 greeting: the server is closing; nothing more is sent.
#[test]
fn greeting_421_defers_and_closes() {
    run(
        config(Tls::Opportunistic),
        vec![
            env("a@example.org", &["b@example.net"]),
            env("a@example.org", &["c@example.net"]),
        ],
        "
        A: start
        S: 421 4.3.2 too busy, try later
        C: <done deferred:421>
        A: start
        C: <done deferred:421>
        A: quit
        C: <close>
        ",
    );
}

/// Without a transaction, a 421 greeting just closes.
#[test]
fn greeting_421_without_transaction_closes() {
    run(config(Tls::Never), vec![], "S: 421 4.3.2 busy\nC: <close>");
}

#[test]
fn ehlo_temporary_failure_defers() {
    run(
        config(Tls::Never),
        vec![env("a@example.org", &["b@example.net"])],
        "
        A: start
        S: 220 mx.example.net ESMTP
        C: EHLO client.example
        S: 450 4.7.1 slow down
        C: <done deferred:450>
        ",
    );
}

/// A HELO name that would break the command line is a configuration error.
#[test]
fn bad_helo_name_defers() {
    let cfg = Config {
        helo: "client\r\nRSET".into(),
        ..config(Tls::Never)
    };
    let outcomes = run(
        cfg,
        vec![env("a@example.org", &["b@example.net"])],
        "
        A: start
        S: 220 mx.example.net ESMTP
        C: <done deferred:451>
        ",
    );
    assert_eq!(
        outcomes[0].results[0].reply().enhanced().as_deref(),
        Some("4.3.5")
    );
}

/// The password stays out of debug output.
#[test]
fn config_debug_hides_password() {
    let shown = format!("{:?}", with_auth(Tls::Required));
    assert!(
        shown.contains("alice") && !shown.contains("s3cret"),
        "{shown}"
    );
}
