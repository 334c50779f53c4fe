//! Transcript tests of whole server sessions (RFC 5321 and its extensions).
#![allow(clippy::unwrap_used)]

mod server_support;

use mxa_smtp::server::{BareLf, Config, Session};
use server_support::{config, run, run_session};

const EHLO_REPLY: &str = "
S: 250-mx.example.org
S: 250-PIPELINING
S: 250-SIZE 36700160
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250 DSN";

/// A session greeted, after `EHLO client.example` answered with EHLO_REPLY.
fn greeted(rest: &str) -> String {
    format!("S: 220 mx.example.org ESMTP mxa\nC: EHLO client.example\n{EHLO_REPLY}\n{rest}")
}

#[test]
fn plain_transaction() {
    let envs = run(
        config(),
        &greeted(
            "
            C: MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=id+2Bone
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+40example.org
            A: rcpt bob@example.org
            E: rcpt local
            S: 250 2.1.5 Recipient OK
            C: DATA
            S: 354 End data with <CR><LF>.<CR><LF>
            A: begin
            C: Subject: hi
            C:
            C: ..dot
            C: .
            A: data Subject: hi\\r\\n\\r\\n.dot\\r\\n
            A: end <alice@example.net> bob@example.org
            E: stored 0001
            S: 250 2.0.0 OK queued as 0001
            C: QUIT
            S: 221 2.0.0 Bye
            A: close",
        ),
    );
    let env = &envs[0];
    assert_eq!(env.helo, "client.example");
    assert_eq!(env.declared_size, Some(100));
    assert_eq!(env.size, 21);
    assert!(env.eightbit);
    assert_eq!(env.ret.as_deref(), Some("HDRS"));
    assert_eq!(env.envid.as_deref(), Some("id+one"));
    let rcpt = &env.recipients[0];
    assert!(rcpt.local);
    assert_eq!(rcpt.notify.as_deref(), Some("SUCCESS,FAILURE"));
    assert_eq!(rcpt.orcpt.as_deref(), Some("rfc822;bob@example.org"));
}

// RFC 2920: a group of commands in one write, replies in order; the
// session waits for the recipient verdict before reading on.
#[test]
fn pipelining() {
    run(
        config(),
        &greeted(
            "
            C: MAIL FROM:<>
            C: RCPT TO:<a@example.org>
            C: RCPT TO:<b@example.net>
            C: RCPT TO:<c@example.org>
            C: DATA
            S: 250 2.1.0 Sender OK
            A: rcpt a@example.org
            E: rcpt local
            S: 250 2.1.5 Recipient OK
            A: rcpt b@example.net
            E: rcpt denied
            S: 554 5.7.1 Relay access denied
            A: rcpt c@example.org
            E: rcpt unknown
            S: 550 5.1.1 No such user here
            S: 354 End data with <CR><LF>.<CR><LF>
            A: begin
            R: x\\r\\n.\\r\\n
            A: data x\\r\\n
            A: end <> a@example.org
            E: stored q1
            S: 250 2.0.0 OK queued as q1",
        ),
    );
}

#[test]
fn helo_lists_no_extension_and_refuses_parameters() {
    run(
        config(),
        "
        S: 220 mx.example.org ESMTP mxa
        C: HELO client.example
        S: 250 mx.example.org
        C: MAIL FROM:<a@example.net> SIZE=10
        S: 555 5.5.4 Parameter not supported
        C: BDAT 3 LAST
        R: abc
        S: 503 5.5.1 Bad sequence of commands: send EHLO first
        C: MAIL FROM:<a@example.net>
        S: 250 2.1.0 Sender OK",
    );
}

#[test]
fn sequence_errors() {
    run(
        config(),
        "
        S: 220 mx.example.org ESMTP mxa
        C: MAIL FROM:<a@example.net>
        S: 503 5.5.1 Bad sequence of commands: send EHLO first
        C: EHLO c
        S: 250-mx.example.org
        S: 250-PIPELINING
        S: 250-SIZE 36700160
        S: 250-8BITMIME
        S: 250-SMTPUTF8
        S: 250-ENHANCEDSTATUSCODES
        S: 250-CHUNKING
        S: 250 DSN
        C: RCPT TO:<a@example.org>
        S: 503 5.5.1 Bad sequence of commands: need MAIL first
        C: DATA
        S: 503 5.5.1 Bad sequence of commands: need MAIL first
        C: MAIL FROM:<a@example.net>
        S: 250 2.1.0 Sender OK
        C: DATA
        S: 554 5.5.1 No valid recipients
        C: RSET
        S: 250 2.0.0 OK
        C: NOOP
        S: 250 2.0.0 OK
        C: VRFY bob
        S: 252 2.5.0 Cannot VRFY user, but will accept message
        C: EXPN list
        S: 502 5.5.1 Command not implemented
        C: HELP
        S: 214 2.0.0 See RFC 5321
        C: FOO
        S: 500 5.5.1 Command unrecognized",
    );
}

#[test]
fn pregreet_refused() {
    run(
        config(),
        "
        C: EHLO early
        S: 554 5.5.1 Protocol error: talked before the greeting
        A: close",
    );
}

#[test]
fn too_many_recipients() {
    let mut cfg = config();
    cfg.max_recipients = 1;
    run(
        cfg,
        &greeted(
            "
            C: MAIL FROM:<a@example.net>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<b@example.org>
            A: rcpt b@example.org
            E: rcpt local
            S: 250 2.1.5 Recipient OK
            C: RCPT TO:<Postmaster>
            S: 452 4.5.3 Too many recipients",
        ),
    );
}

#[test]
fn postmaster_without_domain() {
    run(
        config(),
        &greeted(
            "
            C: MAIL FROM:<a@example.net>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<PostMaster>
            A: rcpt postmaster
            E: rcpt local
            S: 250 2.1.5 Recipient OK
            C: RCPT TO:<>
            S: 501 5.1.3 Bad recipient address syntax",
        ),
    );
}

#[test]
fn size_limits() {
    let mut cfg = config();
    cfg.max_message_size = 10;
    run(
        cfg,
        "
        S: 220 mx.example.org ESMTP mxa
        C: EHLO c
        S: 250-mx.example.org
        S: 250-PIPELINING
        S: 250-SIZE 10
        S: 250-8BITMIME
        S: 250-SMTPUTF8
        S: 250-ENHANCEDSTATUSCODES
        S: 250-CHUNKING
        S: 250 DSN
        C: MAIL FROM:<a@example.net> SIZE=11
        S: 552 5.3.4 Message size exceeds fixed limit
        C: MAIL FROM:<a@example.net>
        S: 250 2.1.0 Sender OK
        C: RCPT TO:<b@example.org>
        A: rcpt b@example.org
        E: rcpt local
        S: 250 2.1.5 Recipient OK
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        A: begin
        C: 0123456789
        C: .
        A: data 0123456789
        A: abort
        S: 552 5.3.4 Message size exceeds fixed limit
        C: MAIL FROM:<a@example.net>
        S: 250 2.1.0 Sender OK",
    );
}

#[test]
fn long_line_refused() {
    let long = format!("NOOP {}", "x".repeat(995));
    let ok = format!("NOOP {}", "x".repeat(993));
    run(
        config(),
        &greeted(&format!(
            "
            C: {long}
            S: 500 5.5.2 Line too long
            C: {ok}
            S: 250 2.0.0 OK"
        )),
    );
}

// A bare CR in a command; a bare LF accepted or refused per bare_lf.
#[test]
fn command_line_ends() {
    run(
        config(),
        &greeted(
            "
            R: NOOP\\n
            S: 250 2.0.0 OK
            R: NO\\rOP\\r\\n
            S: 500 5.5.2 Bare CR received",
        ),
    );
    let mut cfg = config();
    cfg.bare_lf = BareLf::Reject;
    run(
        cfg,
        &greeted(
            "
            R: NOOP\\n
            S: 500 5.5.2 Bare LF received, lines must end with CRLF",
        ),
    );
}

#[test]
fn too_many_errors_disconnects() {
    let mut cfg = config();
    cfg.max_errors = 2;
    run(
        cfg,
        "
        S: 220 mx.example.org ESMTP mxa
        C: FOO
        C: BAR
        C: NOOP
        S: 500 5.5.1 Command unrecognized
        S: 500 5.5.1 Command unrecognized
        S: 421 4.7.0 Too many errors, closing connection
        A: close",
    );
}

#[test]
fn bdat_chunks() {
    let envs = run(
        config(),
        &greeted(
            "
            C: MAIL FROM:<a@example.net>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<b@example.org>
            A: rcpt b@example.org
            E: rcpt local
            S: 250 2.1.5 Recipient OK
            R: BDAT 5\\r\\n.a\\r\\nb
            A: begin
            A: data .a\\r\\nb
            S: 250 2.0.0 Chunk received, octets 5
            R: BDAT 3 LAST\\r\\nc\\r\\nNOOP\\r\\n
            A: data c\\r\\n
            A: end <a@example.net> b@example.org
            E: stored q2
            S: 250 2.0.0 OK queued as q2
            S: 250 2.0.0 OK",
        ),
    );
    assert_eq!(envs[0].size, 8);
}

// RFC 3030 §2: a refused BDAT still has its octets read, never as commands.
#[test]
fn refused_bdat_chunk_is_skipped() {
    run(
        config(),
        &greeted(
            "
            R: BDAT 14\\r\\nMAIL FROM:<x>\\n
            S: 503 5.5.1 Bad sequence of commands: need MAIL first",
        ),
    );
}

#[test]
fn session_ends_without_panic_on_quit_mid_data() {
    let (session, _) = run_session(
        config(),
        &greeted(
            "
            C: QUIT
            S: 221 2.0.0 Bye
            A: close",
        ),
    );
    assert!(session.is_closed());
    assert!(!session.wants_input());
}

#[test]
fn implicit_tls_offers_auth() {
    let mut cfg = Config::new("mx.example.org");
    cfg.tls_implicit = true;
    cfg.tls_available = true;
    cfg.auth_required = true;
    let session = Session::new(cfg);
    assert!(session.tls_active());
}
