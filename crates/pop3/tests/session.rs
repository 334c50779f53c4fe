//! Whole POP3 sessions in memory, as transcripts (see `support`). Each
//! test names the RFC section it follows.

mod support;

use proptest::prelude::*;
use support::{local, remote, run};

const GREETING: &str = "S: +OK pop.example.org POP3 mxa ready";

/// A login as me@example.org into a maildrop of two messages.
const LOGIN: &str = "
    C: USER me@example.org
    S: +OK Send your password
    C: PASS secret
    A: auth me@example.org secret
    E: auth ok
    A: open me@example.org
    E: open 100.A.h:120 200.B.h:30
    S: +OK Logged in, maildrop has 2 messages (150 octets)
";

fn with_login(rest: &str) -> String {
    format!("{GREETING}\n{LOGIN}\n{rest}")
}

// RFC 1939 §4-§6: a whole session, USER/PASS, STAT, LIST, UIDL, RETR,
// DELE, QUIT and the update.
#[test]
fn retrieve_and_delete() {
    let s = run(
        local(),
        &with_login(
            r"
        C: STAT
        S: +OK 2 150
        C: LIST
        S: +OK Listing follows
        D: 1 120
        D: 2 30
        D: .
        C: UIDL 2
        S: +OK 2 200.B.h
        C: UIDL
        S: +OK Listing follows
        D: 1 100.A.h
        D: 2 200.B.h
        D: .
        C: RETR 1
        A: fetch 1
        E: fetched Subject: x\n\n.hidden dot\nend
        S: +OK Message follows, octets: 30
        D: Subject: x
        D:
        D: ..hidden dot
        D: end
        D: .
        C: DELE 1
        S: +OK Message deleted
        C: STAT
        S: +OK 1 30
        C: LIST 1
        S: -ERR No such message
        C: RETR 1
        S: -ERR No such message
        C: QUIT
        A: update 1
        E: updated ok
        S: +OK mxa POP3 server signing off, messages deleted: 1
        A: close
    ",
        ),
    );
    assert_eq!(s.counts(), (1, 1));
    assert_eq!(s.user(), Some("me@example.org"));
}

// RFC 1939 §5 (RSET) and §6: a dropped connection removes nothing — the
// session only asks for Update on QUIT.
#[test]
fn rset_unmarks_and_quit_updates_nothing() {
    run(
        local(),
        &with_login(
            "
        C: DELE 1
        S: +OK Message deleted
        C: DELE 2
        S: +OK Message deleted
        C: RSET
        S: +OK Maildrop has 2 messages (150 octets)
        C: DELE 2
        S: +OK Message deleted
        C: DELE 2
        S: -ERR No such message
        C: RSET
        S: +OK Maildrop has 2 messages (150 octets)
        C: QUIT
        A: update
        E: updated ok
        S: +OK mxa POP3 server signing off
        A: close
    ",
        ),
    );
}

#[test]
fn update_failure_is_reported() {
    run(
        local(),
        &with_login(
            "
        C: DELE 2
        S: +OK Message deleted
        C: QUIT
        A: update 2
        E: updated fail
        S: -ERR [SYS/TEMP] Some deleted messages not removed
        A: close
    ",
        ),
    );
}

// A timeout or a shutdown in TRANSACTION ends the session without Update.
#[test]
fn timeout_removes_nothing() {
    run(
        local(),
        &with_login(
            "
        C: DELE 1
        S: +OK Message deleted
        E: timeout
        S: -ERR Idle for too long, closing connection
        A: close
    ",
        ),
    );
}

// RFC 1939 §7: TOP.
#[test]
fn top() {
    run(
        local(),
        &with_login(
            r"
        C: TOP 2 1
        A: fetch 2 top 1
        E: fetched A: 1\n\nl1\nl2\n
        S: +OK Message follows, octets: 16
        D: A: 1
        D:
        D: l1
        D: .
        C: TOP 2
        S: -ERR Syntax error: TOP msg n
        C: TOP 2 -1
        S: -ERR Syntax error: TOP msg n
        C: TOP 3 0
        S: -ERR No such message
    ",
        ),
    );
}

// RFC 2449 §5: CAPA differs by state and by transport.
#[test]
fn capa() {
    run(
        local(),
        &format!(
            "{GREETING}
        C: CAPA
        S: +OK Capability list follows
        D: TOP
        D: UIDL
        D: RESP-CODES
        D: AUTH-RESP-CODE
        D: PIPELINING
        D: STLS
        D: USER
        D: SASL PLAIN
        D: IMPLEMENTATION mxa
        D: .
        {LOGIN}
        C: CAPA
        S: +OK Capability list follows
        D: TOP
        D: UIDL
        D: RESP-CODES
        D: AUTH-RESP-CODE
        D: PIPELINING
        D: IMPLEMENTATION mxa
        D: ."
        ),
    );
    run(
        remote(),
        &format!(
            "{GREETING}
        C: CAPA
        S: +OK Capability list follows
        D: TOP
        D: UIDL
        D: RESP-CODES
        D: AUTH-RESP-CODE
        D: PIPELINING
        D: STLS
        D: IMPLEMENTATION mxa
        D: ."
        ),
    );
}

// RFC 2595 §3.4 and §4: off this machine, no USER, PASS or AUTH before
// STLS; after it, they work and CAPA offers them.
#[test]
fn plaintext_login_refused_off_loopback() {
    let s = run(
        remote(),
        &format!(
            "{GREETING}
        C: USER me@example.org
        S: -ERR [AUTH] Plaintext authentication disallowed on non-secure connections, use STLS
        C: PASS secret
        S: -ERR [AUTH] Plaintext authentication disallowed on non-secure connections, use STLS
        C: AUTH PLAIN AG1lQGV4YW1wbGUub3JnAHNlY3JldA==
        S: -ERR [AUTH] Plaintext authentication disallowed on non-secure connections, use STLS
        C: STLS
        S: +OK Begin TLS negotiation
        A: tls
        E: tls
        C: STLS
        S: -ERR STLS not available
        {LOGIN}"
        ),
    );
    assert!(s.tls_active());
}

// RFC 2595 §4 (and CVE-2011-0411): commands pipelined behind STLS are
// dropped, not run after the handshake.
#[test]
fn nothing_survives_stls() {
    run(
        remote(),
        &format!(
            "{GREETING}
        C: STLS
        C: USER me@example.org
        S: +OK Begin TLS negotiation
        A: tls
        R: PASS secret\\r\\n
        E: tls
        C: NOOP
        S: -ERR Command not valid in this state"
        ),
    );
}

// With implicit TLS (port 995), a remote client may log in at once and
// STLS is not offered.
#[test]
fn implicit_tls() {
    let config = mxa_pop3::Config {
        tls_implicit: true,
        ..remote()
    };
    run(config, &with_login(""));
}

// RFC 5034 §4, RFC 4616: AUTH PLAIN with and without an initial response,
// cancellation, an authzid other than the user, and the mechanism list.
#[test]
fn auth_plain() {
    run(
        local(),
        &format!(
            "{GREETING}
        C: AUTH
        S: +OK Mechanisms follow
        D: PLAIN
        D: .
        C: AUTH CRAM-MD5
        S: -ERR Unrecognized authentication mechanism
        C: AUTH PLAIN
        S: +
        C: *
        S: -ERR Authentication cancelled
        C: AUTH PLAIN b3RoZXJAZXhhbXBsZS5vcmcAbWVAZXhhbXBsZS5vcmcAc2VjcmV0
        S: -ERR Cannot decode the authentication response
        C: AUTH PLAIN !!!
        S: -ERR Cannot decode the authentication response
        C: AUTH PLAIN
        S: +
        C: bWVAZXhhbXBsZS5vcmcAbWVAZXhhbXBsZS5vcmcAcGFzcyB3b3Jk
        A: auth me@example.org pass word
        E: auth ok
        A: open me@example.org
        E: open
        S: +OK Logged in, maildrop has 0 messages (0 octets)
        C: STAT
        S: +OK 0 0"
        ),
    );
}

// RFC 3206 §4 and RFC 1939 §7: a refused password; three end the session.
// PASS holds the rest of the line, spaces included.
#[test]
fn wrong_passwords() {
    run(
        local(),
        &format!(
            "{GREETING}
        C: PASS secret
        S: -ERR Send USER first
        C: USER me@example.org
        S: +OK Send your password
        C: PASS not it
        A: auth me@example.org not it
        E: auth fail
        S: -ERR [AUTH] Authentication failed
        C: PASS again
        S: -ERR Send USER first
        C: USER me@example.org
        C: PASS nope
        S: +OK Send your password
        A: auth me@example.org nope
        E: auth fail
        S: -ERR [AUTH] Authentication failed
        C: AUTH PLAIN AG1lQGV4YW1wbGUub3JnAHNlY3JldA==
        A: auth me@example.org secret
        E: auth fail
        S: -ERR [AUTH] Too many authentication failures
        A: close"
        ),
    );
}

// RFC 2449 §8.1.2 and RFC 3206: a locked maildrop, a failed open; the
// client may try again.
#[test]
fn in_use_and_open_failure() {
    run(
        local(),
        &format!(
            "{GREETING}
        C: USER me@example.org
        S: +OK Send your password
        C: PASS secret
        A: auth me@example.org secret
        E: auth ok
        A: open me@example.org
        E: open in-use
        S: -ERR [IN-USE] Mailbox is in use by another POP3 session
        C: STAT
        S: -ERR Command not valid in this state
        C: AUTH PLAIN AG1lQGV4YW1wbGUub3JnAHNlY3JldA==
        A: auth me@example.org secret
        E: auth ok
        A: open me@example.org
        E: open fail
        S: -ERR [SYS/TEMP] Cannot open the mailbox now, try later
        C: QUIT
        S: +OK mxa POP3 server signing off
        A: close"
        ),
    );
}

// RFC 1939 §3: commands out of state, unknown commands, syntax; too many
// errors end the session.
#[test]
fn out_of_state_and_errors() {
    let mut script = format!(
        "{GREETING}
        C: STAT
        S: -ERR Command not valid in this state
        C: RETR 1
        S: -ERR Command not valid in this state
        C: NOOP
        S: -ERR Command not valid in this state
        C: APOP me@example.org c4c9334bac560ecc979e58001b3e22fb
        S: -ERR APOP not supported, use USER/PASS or AUTH PLAIN
        {LOGIN}
        C: USER other@example.org
        S: -ERR Command not valid in this state
        C: STLS
        S: -ERR Command not valid in this state
        C: RETR x
        S: -ERR Syntax error: not a message number
        C: RETR +1
        S: -ERR Syntax error: not a message number
        C: LIST 1 2
        S: -ERR Syntax error: LIST [msg]
        C: RETR 0
        S: -ERR No such message
        C: noop
        S: +OK
        "
    );
    // 8 errors so far (No such message is not a protocol error); two
    // more end it.
    script.push_str(
        "
        C: XYZZY
        S: -ERR Unknown command
        C: XYZZY
        S: -ERR Unknown command
        S: -ERR Too many errors, closing connection
        A: close",
    );
    run(local(), &script);
}

// RFC 2449 §4: a line over the limit is refused, and the session goes on
// with the next one.
#[test]
fn long_lines() {
    let long = "X".repeat(3000);
    run(
        local(),
        &format!(
            "{GREETING}
        C: {long}
        S: -ERR Line too long
        C: QUIT
        S: +OK mxa POP3 server signing off
        A: close"
        ),
    );
}

// RFC 2449 §6.6: pipelined commands, and a bare LF as a line end.
#[test]
fn pipelining() {
    run(
        local(),
        &format!(
            "{GREETING}
        C: USER me@example.org
        C: PASS secret
        C: STAT
        R: LIST 2\\nQUIT\\r\\n
        S: +OK Send your password
        A: auth me@example.org secret
        E: auth ok
        A: open me@example.org
        E: open a:1 b:2
        S: +OK Logged in, maildrop has 2 messages (3 octets)
        S: +OK 2 3
        S: +OK 2 2
        A: update
        E: updated ok
        S: +OK mxa POP3 server signing off
        A: close"
        ),
    );
}

#[test]
fn fetch_failure() {
    run(
        local(),
        &with_login(
            "
        C: RETR 2
        A: fetch 2
        E: fetched fail
        S: -ERR [SYS/TEMP] Cannot read the message
        C: QUIT
        A: update
        E: updated ok
        S: +OK mxa POP3 server signing off
        A: close",
        ),
    );
}

proptest! {
    // Arbitrary input, in any state the client can reach, never panics
    // and never makes the session hold more than a line of input.
    #[test]
    fn arbitrary_input_never_panics(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
        login in any::<bool>(),
        local_client in any::<bool>(),
    ) {
        let config = if local_client { local() } else { remote() };
        let mut s = mxa_pop3::Session::new(config);
        if login {
            s.feed(b"USER me@example.org\r\nPASS secret\r\n");
        }
        for c in &chunks {
            while let Some(a) = s.poll() {
                match a {
                    mxa_pop3::Action::CheckAuth { .. } => s.auth_checked(true),
                    mxa_pop3::Action::OpenMaildrop { .. } => s.maildrop_opened(Ok(vec![
                        mxa_pop3::Message { uid: "u1".into(), size: 5 },
                    ])),
                    mxa_pop3::Action::Fetch { .. } => s.fetched(Ok(c.clone())),
                    mxa_pop3::Action::Update { .. } => s.updated(Ok(())),
                    mxa_pop3::Action::StartTls => s.tls_established(),
                    _ => {}
                }
            }
            if s.is_closed() {
                break;
            }
            s.feed(c);
        }
    }
}

// RFC 5034 §4: the empty challenge is "+" SP CRLF exactly (the harness
// trims line ends, so this is checked here).
#[test]
fn continuation_wire_form() {
    let mut out = Vec::new();
    mxa_pop3::Reply::continuation().to_wire(&mut out);
    assert_eq!(out, b"+ \r\n");
}
