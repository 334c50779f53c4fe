//! Transcript tests of transactions: per-recipient results (RFC 5321
//! §3.3), pipelining (RFC 2920), SIZE (RFC 1870), SMTPUTF8 (RFC 6531),
//! DSN (RFC 3461), reuse, lost connections, unsafe input.
#![allow(clippy::unwrap_used)]

mod support;

use mxa_smtp::client::{Envelope, RcptResult, Tls};
use mxa_smtp::reply::Reply;
use support::{config, env, run};

/// The session preamble for a server offering `keywords` (one per line).
fn hello(keywords: &[&str]) -> String {
    let mut s = String::from("A: start\nS: 220 mx.example.net ESMTP\nC: EHLO client.example\n");
    let n = keywords.len();
    s.push_str(if n == 0 {
        "S: 250 mx.example.net\n"
    } else {
        "S: 250-mx.example.net\n"
    });
    for (i, k) in keywords.iter().enumerate() {
        let sep = if i + 1 == n { ' ' } else { '-' };
        s.push_str(&format!("S: 250{sep}{k}\n"));
    }
    s
}

fn three() -> Envelope {
    env(
        "a@example.org",
        &["b1@example.net", "b2@example.net", "b3@example.net"],
    )
}

#[test]
fn mixed_recipient_results() {
    let script = hello(&[])
        + "
        C: MAIL FROM:<a@example.org>
        S: 250 2.1.0 ok
        C: RCPT TO:<b1@example.net>
        S: 250 2.1.5 ok
        C: RCPT TO:<b2@example.net>
        S: 450 4.2.1 mailbox busy
        C: RCPT TO:<b3@example.net>
        S: 550 5.1.1 no such user
        C: DATA
        S: 354 go ahead
        C: <message>
        S: 250 2.0.0 queued
        C: <done delivered:250 deferred:450 failed:550>
        ";
    let outcomes = run(config(Tls::Never), vec![three()], &script);
    let results = &outcomes[0].results;
    assert_eq!(
        results[0],
        RcptResult::Delivered(Reply::new(250, "2.0.0 queued"))
    );
    assert_eq!(
        results[1],
        RcptResult::Deferred(Reply::new(450, "4.2.1 mailbox busy"))
    );
    assert_eq!(results[2].reply().enhanced().as_deref(), Some("5.1.1"));
}

#[test]
fn mixed_recipient_results_pipelined() {
    let script = hello(&["PIPELINING"])
        + "
        C: MAIL FROM:<a@example.org>
        C: RCPT TO:<b1@example.net>
        C: RCPT TO:<b2@example.net>
        C: RCPT TO:<b3@example.net>
        C: DATA
        S: 250 2.1.0 ok
        S: 250 2.1.5 ok
        S: 450 4.2.1 mailbox busy
        S: 550 5.1.1 no such user
        S: 354 go ahead
        C: <message>
        S: 250 2.0.0 queued
        C: <done delivered:250 deferred:450 failed:550>
        ";
    run(config(Tls::Never), vec![three()], &script);
}

/// No recipient accepted: no DATA, and RSET before the next transaction.
#[test]
fn all_recipients_refused_sends_no_message() {
    let script = hello(&[])
        + "
        C: MAIL FROM:<a@example.org>
        S: 250 ok
        C: RCPT TO:<b@example.net>
        S: 550 5.1.1 no such user
        C: <done failed:550>
        A: start
        C: RSET
        S: 250 2.0.0 ok
        C: MAIL FROM:<a@example.org>
        ";
    let e = env("a@example.org", &["b@example.net"]);
    run(config(Tls::Never), vec![e.clone(), e], &script);
}

/// RFC 2920 §3.1: the DATA of a pipelined group is refused (503/554) when
/// no RCPT succeeded; that reply is not anyone's result.
#[test]
fn all_recipients_refused_pipelined() {
    let script = hello(&["PIPELINING"])
        + "
        C: MAIL FROM:<a@example.org>
        C: RCPT TO:<b1@example.net>
        C: RCPT TO:<b2@example.net>
        C: RCPT TO:<b3@example.net>
        C: DATA
        S: 250 ok
        S: 550 5.1.1 no
        S: 451 4.3.0 later
        S: 550 5.1.1 no
        S: 554 5.5.1 no valid recipients
        C: <done failed:550 deferred:451 failed:550>
        A: start
        C: RSET
        S: 250 ok
        C: MAIL FROM:<a@example.org>
        C: RCPT TO:<b1@example.net>
        C: RCPT TO:<b2@example.net>
        C: RCPT TO:<b3@example.net>
        C: DATA
        ";
    run(config(Tls::Never), vec![three(), three()], &script);
}

/// A broken server answers 354 though no RCPT succeeded: end the empty
/// message at once.
#[test]
fn stray_354_gets_a_dot() {
    let script = hello(&["PIPELINING"])
        + "
        C: MAIL FROM:<a@example.org>
        C: RCPT TO:<b@example.net>
        C: DATA
        S: 250 ok
        S: 550 5.1.1 no
        S: 354 go ahead
        C: .
        S: 250 ok
        C: <done failed:550>
        ";
    run(
        config(Tls::Never),
        vec![env("a@example.org", &["b@example.net"])],
        &script,
    );
}

/// MAIL refused: every recipient gets its reply; pipelined RCPT and DATA
/// replies are consumed.
#[test]
fn mail_refused_pipelined() {
    let script = hello(&["PIPELINING"])
        + "
        C: MAIL FROM:<a@example.org>
        C: RCPT TO:<b1@example.net>
        C: RCPT TO:<b2@example.net>
        C: RCPT TO:<b3@example.net>
        C: DATA
        S: 451 4.7.1 greylisted
        S: 503 5.5.1 need MAIL
        S: 503 5.5.1 need MAIL
        S: 503 5.5.1 need MAIL
        S: 503 5.5.1 need MAIL
        C: <done deferred:451 deferred:451 deferred:451>
        ";
    run(config(Tls::Never), vec![three()], &script);
}

#[test]
fn mail_refused() {
    let script = hello(&[])
        + "
        C: MAIL FROM:<a@example.org>
        S: 553 5.7.1 sender rejected
        C: <done failed:553 failed:553 failed:553>
        ";
    run(config(Tls::Never), vec![three()], &script);
}

#[test]
fn final_reply_451_defers() {
    let script = hello(&[])
        + "
        C: MAIL FROM:<a@example.org>
        S: 250 ok
        C: RCPT TO:<b@example.net>
        S: 250 ok
        C: DATA
        S: 354 go ahead
        C: <message>
        S: 451 4.3.0 try again later
        C: <done deferred:451>
        A: start
        C: MAIL FROM:<a@example.org>
        ";
    let e = env("a@example.org", &["b@example.net"]);
    run(config(Tls::Never), vec![e.clone(), e], &script);
}

#[test]
fn data_refused_fails_accepted_recipients() {
    let script = hello(&[])
        + "
        C: MAIL FROM:<a@example.org>
        S: 250 ok
        C: RCPT TO:<b1@example.net>
        S: 250 ok
        C: RCPT TO:<b2@example.net>
        S: 450 4.2.1 busy
        C: RCPT TO:<b3@example.net>
        S: 250 ok
        C: DATA
        S: 554 5.7.1 no DATA for you
        C: <done failed:554 deferred:450 failed:554>
        ";
    run(config(Tls::Never), vec![three()], &script);
}

/// RFC 5321 §3.8: 421 anywhere ends the connection; this transaction and
/// any later one are deferred.
#[test]
fn service_closing_mid_transaction() {
    let script = hello(&["PIPELINING"])
        + "
        C: MAIL FROM:<a@example.org>
        C: RCPT TO:<b1@example.net>
        C: RCPT TO:<b2@example.net>
        C: RCPT TO:<b3@example.net>
        C: DATA
        S: 250 ok
        S: 550 5.1.1 no such user
        S: 421 4.3.2 shutting down
        C: <done failed:550 deferred:421 deferred:421>
        A: start
        C: <done deferred:421 deferred:421 deferred:421>
        A: quit
        C: <close>
        ";
    run(config(Tls::Never), vec![three(), three()], &script);
}

/// Two transactions on one connection; no RSET after a completed one.
#[test]
fn connection_reuse() {
    let script = hello(&[])
        + "
        C: MAIL FROM:<a@example.org>
        S: 250 ok
        C: RCPT TO:<b@example.net>
        S: 250 ok
        C: DATA
        S: 354 go ahead
        C: <message>
        S: 250 2.0.0 first
        C: <done delivered:250>
        A: start
        C: MAIL FROM:<>
        S: 250 ok
        C: RCPT TO:<c@example.net>
        S: 250 ok
        C: DATA
        S: 354 go ahead
        C: <message>
        S: 250 2.0.0 second
        C: <done delivered:250>
        A: quit
        C: QUIT
        S: 221 2.0.0 bye
        C: <close>
        ";
    let envs = vec![
        env("a@example.org", &["b@example.net"]),
        env("", &["c@example.net"]),
    ];
    let outcomes = run(config(Tls::Never), envs, &script);
    assert_eq!(outcomes[1].results[0].reply().text(), "250 2.0.0 second");
}

/// A read timeout while the message is in flight: accepted recipients are
/// deferred, refused ones keep their result; later starts are deferred.
#[test]
fn connection_error_defers_what_is_open() {
    let script = hello(&[])
        + "
        C: MAIL FROM:<a@example.org>
        S: 250 ok
        C: RCPT TO:<b1@example.net>
        S: 250 ok
        C: RCPT TO:<b2@example.net>
        S: 550 5.1.1 no
        C: RCPT TO:<b3@example.net>
        S: 250 ok
        C: DATA
        S: 354 go ahead
        C: <message>
        A: lost read timeout
        C: <done deferred:451 failed:550 deferred:451>
        A: start
        C: <done deferred:451 deferred:451 deferred:451>
        A: quit
        C: <close>
        ";
    let outcomes = run(config(Tls::Never), vec![three(), three()], &script);
    assert_eq!(
        outcomes[0].results[0].reply().text(),
        "451 4.4.2 read timeout"
    );
}

/// RFC 6531 §3.2: no downgrade; MAIL is not even sent.
#[test]
fn smtputf8_needed_but_missing() {
    let mut e = env("a@example.org", &["b@example.net"]);
    e.smtputf8 = true;
    let script = hello(&["PIPELINING", "8BITMIME"]) + "C: <done failed:550>";
    let outcomes = run(config(Tls::Never), vec![e], &script);
    let reply = outcomes[0].results[0].reply();
    assert_eq!(
        reply.text(),
        "550 5.6.7 the receiving server does not support SMTPUTF8, which this message needs"
    );
}

/// Only the recipient with a UTF-8 address needs SMTPUTF8.
#[test]
fn smtputf8_address_fails_alone() {
    let e = env("a@example.org", &["jöe@example.net", "b@example.net"]);
    let script = hello(&[])
        + "
        C: MAIL FROM:<a@example.org>
        S: 250 ok
        C: RCPT TO:<b@example.net>
        ";
    run(config(Tls::Never), vec![e], &script);
}

#[test]
fn smtputf8_offered() {
    let mut e = env("jöe@example.org", &["b@example.net"]);
    e.eightbit = true;
    let script =
        hello(&["SMTPUTF8", "8BITMIME"]) + "C: MAIL FROM:<jöe@example.org> BODY=8BITMIME SMTPUTF8";
    run(config(Tls::Never), vec![e], &script);
}

/// RFC 6152: BODY=8BITMIME only when offered.
#[test]
fn eightbit_without_8bitmime() {
    let mut e = env("a@example.org", &["b@example.net"]);
    e.eightbit = true;
    let script = hello(&["SIZE"]) + "C: MAIL FROM:<a@example.org>";
    run(config(Tls::Never), vec![e], &script);
}

/// RFC 1870 §6.1: over the declared limit, MAIL is not sent.
#[test]
fn size_too_big() {
    let mut e = env("a@example.org", &["b@example.net", "c@example.net"]);
    e.size = Some(5000);
    let script = hello(&["SIZE 1000"]) + "C: <done failed:552 failed:552>";
    let outcomes = run(config(Tls::Never), vec![e], &script);
    assert_eq!(
        outcomes[0].results[0].reply().text(),
        "552 5.3.4 message larger than the server accepts (1000 bytes)"
    );
}

/// RFC 3461 §4: RET, ENVID (xtext), NOTIFY, ORCPT (type;xtext).
#[test]
fn dsn_parameters() {
    let e = Envelope {
        ret: Some("hdrs".into()),
        envid: Some("q1+a=b".into()),
        notify: vec![Some("success,failure".into()), None, Some("never".into())],
        orcpt: vec![Some("b1+tag@example.net".into())],
        ..three()
    };
    let script = hello(&["DSN", "PIPELINING"])
        + "
        C: MAIL FROM:<a@example.org> RET=HDRS ENVID=q1+2Ba+3Db
        C: RCPT TO:<b1@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b1+2Btag@example.net
        C: RCPT TO:<b2@example.net>
        C: RCPT TO:<b3@example.net> NOTIFY=NEVER
        C: DATA
        ";
    run(config(Tls::Never), vec![e.clone()], &script);
    // Not offered: not sent.
    let script = hello(&["PIPELINING"])
        + "
        C: MAIL FROM:<a@example.org>
        C: RCPT TO:<b1@example.net>
        C: RCPT TO:<b2@example.net>
        C: RCPT TO:<b3@example.net>
        C: DATA
        ";
    run(config(Tls::Never), vec![e], &script);
}

/// Nothing from the envelope can end a command line or add a parameter.
#[test]
fn unsafe_input_refused() {
    let bad_sender = env(
        "a@example.org>\r\nRCPT TO:<x@evil.example",
        &["b@example.net"],
    );
    run(
        config(Tls::Never),
        vec![bad_sender],
        &(hello(&[]) + "C: <done failed:501>"),
    );

    let mut bad_rcpt = env(
        "a@example.org",
        &["b@example.net> NOTIFY=NEVER", "", "c@example.net"],
    );
    bad_rcpt.notify = vec![None, None, Some("SUCCESS\r\nRSET".into())];
    let script = hello(&["DSN"])
        + "
        C: <done failed:501 failed:501 failed:501>
        ";
    run(config(Tls::Never), vec![bad_rcpt], &script);

    let mut bad_envid = env("a@example.org", &["b@example.net"]);
    bad_envid.envid = Some("x\ny".into());
    run(
        config(Tls::Never),
        vec![bad_envid],
        &(hello(&["DSN"]) + "C: <done failed:501>"),
    );
}

/// A caller bug: a second start before the first Done defers the second.
#[test]
fn second_start_while_busy_defers_it() {
    let script = "A: start\nA: start\nC: <done deferred:451>\n";
    let e = env("a@example.org", &["b@example.net"]);
    run(config(Tls::Never), vec![e.clone(), e], script);
}

#[test]
fn no_recipients_is_done_at_once() {
    let script = hello(&[]) + "C: <done>\nA: start\nC: <done>";
    let e = env("a@example.org", &[]);
    run(config(Tls::Never), vec![e.clone(), e], &script);
}
