//! Reading the message from stdin and completing it as sendmail does:
//! recipients from `To:`/`Cc:`/`Bcc:` (or their `Resent-` forms) with `-t`,
//! `Bcc:` removed, `From:`, `Date:` and `Message-ID:` added when missing.

use std::io::{self, BufRead};

use mxa_message::{Field, Parsed};

use crate::{Failure, exit};

/// Reads the message from `input`. Without `ignore_dots` a line holding a
/// single `.` ends it, as sendmail without `-i`. Line ends become LF. More
/// than `limit` bytes is an error (nothing is queued).
pub fn read_message(
    input: &mut impl BufRead,
    ignore_dots: bool,
    limit: u64,
) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = io::Read::take(&mut *input, limit.saturating_add(2))
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::new(exit::NOINPUT, format!("reading standard input: {e}")))?;
        if n == 0 {
            break;
        }
        if !ignore_dots && matches!(line.as_slice(), b".\n" | b".\r\n" | b".") {
            break;
        }
        out.extend_from_slice(&line);
        if out.len() as u64 > limit {
            return Err(Failure::new(
                exit::DATAERR,
                format!("message larger than max_message_size ({limit} bytes); nothing queued"),
            ));
        }
    }
    Ok(mxa_message::to_lf(&out))
}

/// Checks an address given by the user and qualifies a bare local part with
/// `hostname` (cron's `MAILTO=root`). Angle brackets are removed.
pub fn check_address(raw: &str, hostname: &str) -> Result<String, String> {
    let a = raw.trim_matches([' ', '\t']);
    let a = a
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(a);
    if a.is_empty() {
        return Err(format!("{raw:?}: empty address"));
    }
    if a.starts_with('-') {
        return Err(format!("{raw:?}: an address may not start with '-'"));
    }
    if a.chars()
        .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | ',' | '(' | ')'))
    {
        return Err(format!("{raw:?}: not a mail address"));
    }
    match a.rsplit_once('@') {
        None => Ok(format!("{a}@{hostname}")),
        // An '@' in the local part is only valid inside a quoted string.
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && (!local.contains('@')
                    || (local.len() > 1 && local.starts_with('"') && local.ends_with('"'))) =>
        {
            Ok(a.to_string())
        }
        Some(_) => Err(format!("{raw:?}: not a mail address")),
    }
}

/// Checks the DSN parameters (RFC 3461 §4, RFC 6152) given with `-N`,
/// `-R`, `-V` and `-B`, so that nothing unchecked reaches an SMTP line later.
pub fn check_dsn(env: &mxa_spool::Envelope) -> Result<(), String> {
    if let Some(r) = &env.ret
        && !matches!(r.as_str(), "full" | "hdrs")
    {
        return Err(format!("-R {r}: expected full or hdrs"));
    }
    if let Some(b) = &env.body
        && !matches!(b.as_str(), "7bit" | "8bitmime" | "binarymime")
    {
        return Err(format!("-B {b}: expected 7BIT, 8BITMIME or BINARYMIME"));
    }
    if let Some(e) = &env.envid {
        // §4.4: at most 100 characters, printable US-ASCII.
        if e.is_empty() || e.len() > 100 || !e.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(format!(
                "-V {e:?}: expected 1 to 100 printable ASCII characters"
            ));
        }
    }
    for n in env.recipients.iter().filter_map(|r| r.notify.as_deref()) {
        let words: Vec<&str> = n.split(',').collect();
        let ok = words == ["never"]
            || words
                .iter()
                .all(|w| matches!(*w, "success" | "failure" | "delay"));
        if !ok {
            return Err(format!(
                "-N {n}: expected never, or a list of success, failure and delay"
            ));
        }
    }
    Ok(())
}

/// The addresses in the recipient fields of the header: `Resent-To`,
/// `Resent-Cc`, `Resent-Bcc` when any `Resent-` field is present (RFC 5322
/// §3.6.6), else `To`, `Cc`, `Bcc`.
pub fn header_recipients(msg: &Parsed) -> Vec<String> {
    let resent = msg
        .fields
        .iter()
        .any(|f| f.name.to_ascii_lowercase().starts_with("resent-"));
    let names: &[&str] = if resent {
        &["Resent-To", "Resent-Cc", "Resent-Bcc"]
    } else {
        &["To", "Cc", "Bcc"]
    };
    let parser = mail_parser::MessageParser::default();
    let mut out = Vec::new();
    for f in msg.fields.iter().filter(|f| names.iter().any(|n| f.is(n))) {
        // Hand mail-parser the one field under the name To, so its RFC 5322
        // address-list parser (groups, comments, quoting) does the work.
        let one = format!("To: {}\n\n", f.value());
        let Some(parsed) = parser.parse_headers(one.as_bytes()) else {
            continue;
        };
        if let Some(list) = parsed.to() {
            out.extend(list.iter().filter_map(|a| a.address()).map(str::to_string));
        }
    }
    out
}

/// The header fields sendmail adds when missing.
#[derive(Debug)]
pub struct Completion<'a> {
    /// The envelope sender, for `From:`.
    pub sender: &'a str,
    /// `-F`, or the user's name from the password file.
    pub full_name: Option<&'a str>,
    /// For `Message-ID:`.
    pub hostname: &'a str,
    /// Unix time, for `Date:`.
    pub now: u64,
}

/// Removes `Bcc:` (and `Resent-Bcc:`) and adds `From:`, `Date:` and
/// `Message-ID:` when missing (RFC 5322 §3.6 requires From and Date).
pub fn complete(msg: &mut Parsed, c: &Completion<'_>) {
    msg.remove("Bcc");
    msg.remove("Resent-Bcc");
    let mut add = Vec::new();
    if !msg.has("From") {
        let from = match c.full_name {
            Some(n) if !n.is_empty() => format!("{} <{}>", quote_name(n), c.sender),
            _ => c.sender.to_string(),
        };
        add.push(Field::new("From", &from));
    }
    if !msg.has("Date") {
        add.push(Field::new("Date", &mxa_message::rfc5322_date(c.now)));
    }
    if !msg.has("Message-ID") {
        add.push(Field::new(
            "Message-ID",
            &format!("<{}.{}@{}>", c.now, unique(), c.hostname),
        ));
    }
    msg.fields.extend(add);
}

/// A display name as an RFC 5322 phrase: quoted unless it is plain atoms.
fn quote_name(n: &str) -> String {
    let n: String = n.chars().filter(|c| !c.is_control()).collect();
    if n.chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c))
    {
        n
    } else {
        format!("\"{}\"", n.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn unique() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads all of stdin for tests and callers without a BufRead.
pub fn read_all(input: impl io::Read, ignore_dots: bool, limit: u64) -> Result<Vec<u8>, Failure> {
    read_message(&mut io::BufReader::new(input), ignore_dots, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_ends_message_unless_i() {
        let input = b"Subject: x\n\nline\n.\nafter\n";
        assert_eq!(
            read_all(&input[..], false, 1000).expect("read"),
            b"Subject: x\n\nline\n"
        );
        assert_eq!(read_all(&input[..], true, 1000).expect("read"), input);
        assert_eq!(
            read_all(&b"a\r\n.\r\n"[..], false, 1000).expect("read"),
            b"a\n"
        );
    }

    #[test]
    fn dsn_parameters() {
        let mut env = mxa_spool::Envelope::new("a@b", ["c@d".to_string()]);
        assert!(check_dsn(&env).is_ok());
        env.recipients[0].notify = Some("success,delay".into());
        env.ret = Some("hdrs".into());
        env.envid = Some("QQ314159".into());
        env.body = Some("8bitmime".into());
        assert!(check_dsn(&env).is_ok());
        for (field, bad) in [
            ("notify", "never,success"),
            ("notify", "sometimes"),
            ("ret", "some"),
            ("envid", "a b"),
            ("body", "utf8"),
        ] {
            let mut e = env.clone();
            match field {
                "notify" => e.recipients[0].notify = Some(bad.into()),
                "ret" => e.ret = Some(bad.into()),
                "envid" => e.envid = Some(bad.into()),
                _ => e.body = Some(bad.into()),
            }
            assert!(check_dsn(&e).is_err(), "{field} {bad}");
        }
    }

    #[test]
    fn size_limit() {
        let e = read_all(&[b'x'; 100][..], true, 50).expect_err("too big");
        assert_eq!(e.code, exit::DATAERR);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            check_address("root", "h.example").expect("ok"),
            "root@h.example"
        );
        assert_eq!(check_address("<a@b.c>", "h").expect("ok"), "a@b.c");
        assert_eq!(
            check_address("ü@bücher.de", "h").expect("ok"),
            "ü@bücher.de"
        );
        for bad in ["", "-oops@x", "a b@c", "a@", "@b", "a@b\n", "a@b@c", "<>"] {
            assert!(check_address(bad, "h").is_err(), "{bad:?}");
        }
    }

    // RFC 5322 §3.4: groups, display names, comments.
    #[test]
    fn recipients_from_header() {
        let m = Parsed::parse(
            b"To: Bob <bob@x.org>, carol@y.org\nCc: friends: dan@z.org, \"E, F\" <ef@z.org>;\nBcc: hidden@w.org\nSubject: hi\n\nbody\n",
        );
        assert_eq!(
            header_recipients(&m),
            [
                "bob@x.org",
                "carol@y.org",
                "dan@z.org",
                "ef@z.org",
                "hidden@w.org"
            ]
        );
    }

    #[test]
    fn resent_fields_win() {
        let m = Parsed::parse(b"To: old@x\nResent-To: new@y\nResent-Bcc: secret@z\n\nb\n");
        assert_eq!(header_recipients(&m), ["new@y", "secret@z"]);
    }

    #[test]
    fn completes_header() {
        let mut m = Parsed::parse(b"To: a@b\nBcc: c@d\n\nbody\n");
        complete(
            &mut m,
            &Completion {
                sender: "me@h",
                full_name: Some("Jo \"X\" Doe"),
                hostname: "h",
                now: 0,
            },
        );
        let out = String::from_utf8(m.to_bytes()).expect("utf8");
        assert!(!out.contains("Bcc"));
        assert!(out.contains("From: \"Jo \\\"X\\\" Doe\" <me@h>\n"), "{out}");
        assert!(out.contains("Date: Thu, 01 Jan 1970 00:00:00 +0000\n"));
        assert!(out.contains("Message-ID: <0."));
        // Present fields are kept as they are.
        let mut m = Parsed::parse(b"From: x@y\nDate: whenever\nMessage-ID: <a@b>\n\nb\n");
        let before = m.to_bytes();
        complete(
            &mut m,
            &Completion {
                sender: "me@h",
                full_name: None,
                hostname: "h",
                now: 0,
            },
        );
        assert_eq!(m.to_bytes(), before);
    }
}
