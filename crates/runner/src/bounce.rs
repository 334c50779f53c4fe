//! Bounces, delay warnings and success reports: the delivery status
//! notifications (RFC 3464) that the queue runner queues from the null
//! sender when recipients fail, are delayed, or (for senders who asked
//! with NOTIFY=SUCCESS, RFC 3461) are delivered or relayed.
//!
//! A report is a `multipart/report; report-type=delivery-status` (RFC 6522)
//! with `Auto-Submitted: auto-replied` (RFC 3834): first a human-readable
//! part per configured language (in `multipart/alternative` when there are
//! several) that tells a non-technical sender what happened and what to do,
//! then the `message/delivery-status` fields, then the original message
//! (`message/rfc822`) or only its header (`text/rfc822-headers`) when the
//! sender asked for RET=HDRS, for delay warnings and success reports (RET
//! applies to failure reports only, RFC 3461 §4.3), and for originals over
//! 10 MiB or with lines over 998 octets.

mod text;

use std::hash::{DefaultHasher, Hash, Hasher};

use mxa_message::{Parsed, rfc5322_date};

/// Why a recipient is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Failed for good: a bounce.
    Failed,
    /// Still being retried: a delay warning.
    Delayed,
    /// Delivered here: a success report (RFC 3464 §2.3.3).
    Delivered,
    /// Accepted by a server that does not offer DSN: a success report
    /// saying the message left the DSN-aware path (RFC 3461 §5.2.2).
    Relayed,
}

/// What a whole report is about, from its entries (one report never mixes
/// failures, delays and successes; a failure wins, then a delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nature {
    /// A bounce.
    Failure,
    /// A delay warning.
    Delay,
    /// A success report.
    Success,
}

impl Nature {
    /// The nature of a report on `entries`.
    pub(crate) fn of(entries: &[Entry]) -> Nature {
        let has = |a: Action| entries.iter().any(|e| e.action == a);
        if has(Action::Failed) {
            Nature::Failure
        } else if has(Action::Delayed) {
            Nature::Delay
        } else {
            Nature::Success
        }
    }
}

/// What the remote or the MDA said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic {
    /// The remote's reply, e.g. `550 5.1.1 <bob@x>: user unknown`; the lines
    /// of a multi-line reply are joined by `\n`.
    Smtp(String),
    /// The MDA's stderr, one line.
    Unix(String),
    /// Nothing was said.
    None,
}

/// One reported recipient.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The address, without angle brackets.
    pub address: String,
    /// DSN ORCPT as stored (`rfc822;bob@x`).
    pub orcpt: Option<String>,
    /// Failed, delayed, delivered or relayed.
    pub action: Action,
    /// The enhanced status code (`5.1.1`), see [`status_of`].
    pub status: String,
    /// The reply or the MDA's complaint.
    pub diagnostic: Diagnostic,
    /// The host that gave the reply.
    pub remote_mta: Option<String>,
}

/// Everything a report says.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// Our name: `Reporting-MTA:`, `From: MAILER-DAEMON@hostname`.
    pub hostname: &'a str,
    /// The queue id of the original message.
    pub queue_id: &'a str,
    /// The original's envelope: sender (`To:` of the report), envid, ret,
    /// created (`Arrival-Date:`).
    pub envelope: &'a mxa_spool::Envelope,
    /// The recipients reported.
    pub entries: Vec<Entry>,
    /// Languages of the human-readable part, in order (`en`, `fr`).
    pub languages: &'a [String],
    /// Unix time now (`Date:`, `Last-Attempt-Date:`).
    pub now: u64,
    /// For delay warnings: until when we retry (`Will-Retry-Until:`).
    pub retry_until: Option<u64>,
}

/// Above this size only the original's header is returned.
const MAX_RETURNED: usize = 10 * 1024 * 1024;

/// The whole report message, LF line ends, ready to queue (the runner
/// prepends nothing). Its [`Nature`] comes from the entries.
pub fn build(report: &Report<'_>, original: &[u8]) -> Vec<u8> {
    let lf;
    let original = if original.windows(2).any(|w| w == b"\r\n") {
        lf = mxa_message::to_lf(original);
        &lf[..]
    } else {
        original
    };
    let parsed = Parsed::parse(original);
    let nature = Nature::of(&report.entries);
    let ret = report.envelope.ret.as_deref();
    let hdrs = ret.is_some_and(|r| r.eq_ignore_ascii_case("hdrs"));
    // A message with lines over 998 octets could only travel as BINARYMIME:
    // its header is enough.
    let full = nature == Nature::Failure && !hdrs && original.len() <= MAX_RETURNED;
    let full = full && encoding(original) != "binary";
    let subject = parsed
        .get("Subject")
        .map(|f| text::decode_words(&f.value()).trim().to_string())
        .filter(|s| !s.is_empty());
    let langs = text::languages(report.languages);
    let stem = boundary_stem(report, original);
    let (outer, alt) = (format!("{stem}_r"), format!("{stem}_a"));
    let host = report.hostname;

    let mut body = String::new();
    body.push_str("This is a delivery status notification in MIME format (RFC 3464).\n\n");
    body.push_str(&format!("--{outer}\n"));
    if langs.len() > 1 {
        body.push_str(&format!(
            "Content-Type: multipart/alternative;\n\tboundary=\"{alt}\"\n\
             Content-Transfer-Encoding: 8bit\n\n"
        ));
    }
    for &lang in &langs {
        if langs.len() > 1 {
            body.push_str(&format!("--{alt}\n"));
        }
        body.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: 8bit\n\
             Content-Language: {}\n\
             Content-Description: Notification\n\n",
            lang.tag()
        ));
        body.push_str(&text::human(report, lang, subject.as_deref(), full));
        body.push('\n');
    }
    if langs.len() > 1 {
        body.push_str(&format!("--{alt}--\n\n"));
    }
    body.push_str(&format!(
        "--{outer}\nContent-Type: message/delivery-status\n\
         Content-Description: Delivery report\n\n"
    ));
    body.push_str(&delivery_status(report));
    body.push_str(&format!("\n--{outer}\n"));

    let mut body = body.into_bytes();
    let returned = if full {
        parsed.to_bytes()
    } else {
        parsed
            .fields
            .iter()
            .flat_map(|f| f.raw.iter().copied())
            .collect()
    };
    let (ctype, what) = match full {
        true => ("message/rfc822", "Undelivered message"),
        false => ("text/rfc822-headers", "Message header"),
    };
    body.extend_from_slice(
        format!(
            "Content-Type: {ctype}\nContent-Transfer-Encoding: {}\n\
             Content-Description: {what}\n\n",
            encoding(&returned)
        )
        .as_bytes(),
    );
    body.extend_from_slice(&returned);
    if !returned.is_empty() && !returned.ends_with(b"\n") {
        body.push(b'\n');
    }
    body.extend_from_slice(format!("\n--{outer}--\n").as_bytes());

    let mut out = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\n\
         To: <{}>\n\
         Subject: {}\n\
         Date: {}\n\
         Message-ID: <{}.{}.{}@{host}>\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\
         \tboundary=\"{outer}\"\n\
         Content-Transfer-Encoding: {}\n\n",
        report.envelope.sender,
        text::encode_words(&text::subject(&langs, report, subject.as_deref())),
        rfc5322_date(report.now),
        report.queue_id,
        report.now,
        // A bounce, a warning and a success report made in the same pass
        // for the same message must not share a Message-ID.
        match nature {
            Nature::Failure => "report",
            Nature::Delay => "delay",
            Nature::Success => "success",
        },
        encoding(&body),
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The `message/delivery-status` fields (RFC 3464 §2.2, §2.3).
fn delivery_status(r: &Report<'_>) -> String {
    let mut s = String::new();
    field(&mut s, "Reporting-MTA", &format!("dns; {}", r.hostname));
    if let Some(id) = &r.envelope.envid {
        field(&mut s, "Original-Envelope-Id", id);
    }
    field(&mut s, "Arrival-Date", &rfc5322_date(r.envelope.created));
    for e in &r.entries {
        s.push('\n');
        if let Some(o) = &e.orcpt {
            match o.contains(';') {
                true => field(&mut s, "Original-Recipient", o),
                false => field(&mut s, "Original-Recipient", &format!("rfc822;{o}")),
            }
        }
        // RFC 6533 §3: a UTF-8 address is of type utf-8, escaped as below.
        let atype = if e.address.is_ascii() {
            "rfc822"
        } else {
            "utf-8"
        };
        field(
            &mut s,
            "Final-Recipient",
            &format!("{atype}; {}", e.address),
        );
        let action = match e.action {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        };
        field(&mut s, "Action", action);
        field(&mut s, "Status", &e.status);
        if let Some(m) = &e.remote_mta {
            field(&mut s, "Remote-MTA", &format!("dns; {m}"));
        }
        match &e.diagnostic {
            Diagnostic::Smtp(t) => field(&mut s, "Diagnostic-Code", &format!("smtp; {t}")),
            Diagnostic::Unix(t) => field(&mut s, "Diagnostic-Code", &format!("x-unix; {t}")),
            Diagnostic::None => {}
        }
        field(&mut s, "Last-Attempt-Date", &rfc5322_date(r.now));
        if let (Action::Delayed, Some(u)) = (e.action, r.retry_until) {
            field(&mut s, "Will-Retry-Until", &rfc5322_date(u));
        }
    }
    s
}

/// Appends `Name: value`, in US-ASCII (other characters as RFC 6533's
/// `\x{HHHH}`), each line of a multi-line value on a continuation line, and
/// folded at spaces to stay near 78 columns and always within 998 octets.
fn field(out: &mut String, name: &str, value: &str) {
    let mut ascii = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\n' => ascii.push('\n'),
            c if c.is_control() => ascii.push(' '),
            c if c.is_ascii() => ascii.push(c),
            c => ascii.push_str(&format!("\\x{{{:X}}}", u32::from(c))),
        }
    }
    let lines = ascii.split('\n').map(str::trim).filter(|l| !l.is_empty());
    for (i, line) in lines.enumerate() {
        match i {
            0 => fold(out, &format!("{name}: {line}")),
            _ => fold(out, &format!(" {line}")),
        }
    }
}

/// Appends an ASCII line folded before spaces (RFC 5322 §2.2.3) when it
/// would pass 78 columns, and broken inside a word that passes 990.
fn fold(out: &mut String, line: &str) {
    let mut col = 0;
    for (i, word) in line.split(' ').enumerate() {
        if i > 0 {
            if col + 1 + word.len() > 78 && col > 1 && !word.is_empty() {
                out.push('\n');
                col = 0;
            }
            out.push(' ');
            col += 1;
        }
        for c in word.chars() {
            if col >= 990 {
                out.push_str("\n ");
                col = 1;
            }
            out.push(c);
            col += 1;
        }
    }
    out.push('\n');
}

/// The Content-Transfer-Encoding that describes `data` (RFC 2045 §2.7-2.9).
fn encoding(data: &[u8]) -> &'static str {
    if data.split(|&b| b == b'\n').any(|l| l.len() > 998) {
        "binary"
    } else if !data.is_ascii() {
        "8bit"
    } else {
        "7bit"
    }
}

/// The common start of the report's boundaries: the queue id and random
/// hex, checked not to occur in the original.
fn boundary_stem(r: &Report<'_>, original: &[u8]) -> String {
    let id: String = r
        .queue_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(32)
        .collect();
    let mut attempt = 0u64;
    loop {
        let mut rnd = [0u8; 8];
        if getrandom::fill(&mut rnd).is_err() {
            let mut h = DefaultHasher::new();
            (r.queue_id, r.now, attempt, original.len()).hash(&mut h);
            rnd = h.finish().to_be_bytes();
        }
        let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let stem = format!("=_mxa_{id}_{hex}");
        if !original.windows(stem.len()).any(|w| w == stem.as_bytes()) {
            return stem;
        }
        attempt += 1;
    }
}

/// The enhanced status code (RFC 3463) at the start of a reply's text
/// (`550 5.1.1 ...` gives `5.1.1`) when its class agrees with the reply
/// code's first digit; else `5.0.0` for a 5xx reply, `4.0.0` for a 4xx one,
/// and `fallback` for any other text (an MDA's complaint, a 2xx or 3xx
/// reply that carries no code).
pub fn status_of(reply: &str, fallback: &str) -> String {
    let reply = reply.trim_start();
    let b = reply.as_bytes();
    let class = match b {
        [c @ b'2'..=b'5', b'0'..=b'9', b'0'..=b'9', rest @ ..]
            if matches!(rest.first(), None | Some(b' ' | b'-' | b'\r' | b'\n')) =>
        {
            *c
        }
        _ => return fallback.to_string(),
    };
    let word = reply.get(4..).and_then(|t| t.split_whitespace().next());
    if let Some(code) = word.filter(|w| is_enhanced(w, class)) {
        return code.to_string();
    }
    match class {
        b'5' => "5.0.0",
        b'4' => "4.0.0",
        _ => fallback,
    }
    .to_string()
}

/// Whether `w` is `class.subject.detail` (RFC 3463: 1 to 3 digits each).
fn is_enhanced(w: &str, class: u8) -> bool {
    let parts: Vec<&str> = w.split('.').collect();
    let digits = |p: &str| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 3
        && parts[0].as_bytes() == [class]
        && matches!(class, b'2' | b'4' | b'5')
        && digits(parts[1])
        && digits(parts[2])
}

#[cfg(test)]
mod tests;
