//! The replies this client makes up when the decision is its own, in one
//! place. Codes per RFC 3463: 4.x.x when trying later may help (the server
//! may change, or the configuration), 5.x.x when it cannot.

use crate::reply::Reply;

/// The connection broke (RFC 3463 4.4.2 "bad connection").
pub(super) fn connection_lost(why: &str) -> Reply {
    Reply::new(451, format!("4.4.2 {}", one_line(why)))
}

/// The connection was closed (QUIT) before this transaction could run.
pub(super) fn closed() -> Reply {
    Reply::new(451, "4.4.2 connection closed")
}

/// A reply of the wrong kind, such as 250 to a greeting or 334 to RCPT
/// (4.5.0 "other or undefined protocol status").
pub(super) fn unexpected(r: &Reply) -> Reply {
    Reply::new(451, format!("4.5.0 unexpected reply: {}", r.text()))
}

/// A caller bug (4.3.0 "other or undefined mail system status").
pub(super) fn internal(what: &str) -> Reply {
    Reply::new(451, format!("4.3.0 internal error: {what}"))
}

/// `start` while a transaction is in progress.
pub(super) fn busy() -> Reply {
    internal("a transaction is already in progress on this connection")
}

/// A setting that cannot go into a command (4.3.5 "system incorrectly
/// configured"): deferred, since the administrator can fix it.
pub(super) fn bad_config(what: &str) -> Reply {
    Reply::new(451, format!("4.3.5 invalid {what} in the configuration"))
}

/// TLS required, STARTTLS not in the EHLO reply (4.7.0 "other or undefined
/// security status").
pub(super) fn tls_not_offered() -> Reply {
    Reply::new(
        451,
        "4.7.0 TLS required but the server does not offer STARTTLS",
    )
}

/// TLS required, STARTTLS answered with `r`.
pub(super) fn tls_refused(r: &Reply) -> Reply {
    Reply::new(
        451,
        format!("4.7.0 TLS required but STARTTLS refused: {}", r.text()),
    )
}

/// A 5xx greeting `r` (4.3.2 "system not accepting network messages"):
/// this server will not talk to us, which says nothing of the message.
pub(super) fn session_refused(r: &Reply) -> Reply {
    Reply::new(
        451,
        format!("4.3.2 the server refused the session: {}", r.text()),
    )
}

/// AUTH refused with `r`: our credentials, not the message, are at fault,
/// so the message waits while the administrator fixes them (as Postfix's
/// `smtp_sasl_auth_soft_bounce`), with the server's words.
pub(super) fn auth_refused(r: &Reply) -> Reply {
    Reply::new(
        451,
        format!("4.7.0 the server refused our login: {}", r.text()),
    )
}

/// AUTH configured, TLS off: credentials are never sent in clear.
pub(super) fn auth_needs_tls() -> Reply {
    Reply::new(451, "4.7.0 AUTH needs TLS, and TLS is not active")
}

/// AUTH configured, neither PLAIN nor LOGIN offered.
pub(super) fn auth_not_offered() -> Reply {
    Reply::new(
        451,
        "4.7.0 AUTH configured but the server offers neither PLAIN nor LOGIN",
    )
}

/// RFC 6531 §3.2: a message that needs SMTPUTF8 is not downgraded.
pub(super) fn smtputf8_unsupported() -> Reply {
    Reply::new(
        550,
        "5.6.7 the receiving server does not support SMTPUTF8, which this message needs",
    )
}

/// RFC 1870 §6.1: the message is over the server's declared SIZE.
pub(super) fn too_big(limit: u64) -> Reply {
    Reply::new(
        552,
        format!("5.3.4 message larger than the server accepts ({limit} bytes)"),
    )
}

/// A sender address that cannot be put in a command (5.1.7 "bad sender's
/// mailbox address syntax").
pub(super) fn bad_sender() -> Reply {
    Reply::new(
        501,
        "5.1.7 sender address with control characters or angle brackets",
    )
}

/// The same for a recipient (5.1.3 "bad destination mailbox address syntax").
pub(super) fn bad_recipient() -> Reply {
    Reply::new(
        501,
        "5.1.3 recipient address empty or with control characters or angle brackets",
    )
}

/// A DSN parameter that is not valid RFC 3461 (5.5.4 "invalid command
/// arguments").
pub(super) fn bad_parameter(name: &str) -> Reply {
    Reply::new(501, format!("5.5.4 invalid {name} parameter"))
}

/// `s` with control characters (CR, LF…) turned into spaces: it goes into
/// a reply's text.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
