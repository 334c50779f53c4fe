//! mxa-message: the raw RFC 5322 header handling that mxa programs share:
//! splitting a message into header fields and body ([`Parsed`]), finding,
//! removing and adding fields without touching the bytes of the others,
//! line-end normalisation, and the `Date:` format.
//!
//! Parsing of field *contents* (address lists) is left to mail-parser; this
//! crate only finds field boundaries (RFC 5322 §2.2: a field is a name, a
//! colon, and a body that may continue on lines starting with white space).

/// One header field, with its raw bytes (name, colon, body, continuation
/// lines and the final LF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field name as written.
    pub name: String,
    /// The whole field, ending in LF.
    pub raw: Vec<u8>,
}

impl Field {
    /// A field made from a name and an (already folded) value.
    pub fn new(name: &str, value: &str) -> Field {
        Field {
            name: name.to_string(),
            raw: format!("{name}: {value}\n").into_bytes(),
        }
    }

    /// Whether the name is `name`, ignoring case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The value, unfolded (continuation line breaks removed), trimmed.
    pub fn value(&self) -> String {
        let raw = String::from_utf8_lossy(&self.raw);
        let v = raw.split_once(':').map(|(_, v)| v).unwrap_or("");
        v.replace("\r\n", "").replace('\n', "").trim().to_string()
    }
}

/// A message split into its header fields and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The fields, in order.
    pub fields: Vec<Field>,
    /// Everything after the blank line that ends the header (or after the
    /// first line that is not a field, when there is no blank line).
    pub body: Vec<u8>,
}

impl Parsed {
    /// Splits a message with LF line ends. A leading mbox `From ` line is
    /// dropped: it is no header (Postfix's sendmail drops it too).
    pub fn parse(msg: &[u8]) -> Parsed {
        let (fields, start) = Parsed::header(msg);
        Parsed {
            fields,
            body: msg[start..].to_vec(),
        }
    }

    /// [`Parsed::parse`] of an owned message: the body keeps the buffer
    /// (no copy of a large message).
    pub fn parse_owned(mut msg: Vec<u8>) -> Parsed {
        let (fields, start) = Parsed::header(&msg);
        msg.drain(..start);
        Parsed { fields, body: msg }
    }

    /// The header fields and the offset where the body starts.
    fn header(msg: &[u8]) -> (Vec<Field>, usize) {
        let mut rest = msg;
        if rest.starts_with(b"From ") {
            rest = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(&[][..], |i| &rest[i + 1..]);
        }
        let mut fields: Vec<Field> = Vec::new();
        loop {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let line = &rest[..end];
            if line.is_empty() {
                break;
            }
            if line == b"\n" {
                rest = &rest[end..];
                break;
            }
            let continuation = matches!(line[0], b' ' | b'\t');
            match (continuation, fields.last_mut(), field_name(line)) {
                (true, Some(f), _) => f.raw.extend_from_slice(line),
                (false, _, Some(name)) => fields.push(Field {
                    name,
                    raw: line.to_vec(),
                }),
                _ => break, // not a header line: the body starts here
            }
            rest = &rest[end..];
        }
        for f in &mut fields {
            if !f.raw.ends_with(b"\n") {
                f.raw.push(b'\n');
            }
        }
        (fields, msg.len() - rest.len())
    }

    /// Whether a field named `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.is(name))
    }

    /// The first field named `name`.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.is(name))
    }

    /// Removes every field named `name`.
    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|f| !f.is(name));
    }

    /// The header alone: the fields and the blank line that ends them.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.fields.iter().map(|f| f.raw.len()).sum::<usize>() + 1);
        for f in &self.fields {
            out.extend_from_slice(&f.raw);
        }
        out.push(b'\n');
        out
    }

    /// The message again: fields, blank line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 1024);
        for f in &self.fields {
            out.extend_from_slice(&f.raw);
        }
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }
}

/// The name of a field line (`Name:`), if the line is one. Field names are
/// printable US-ASCII except colon (RFC 5322 §2.2).
fn field_name(line: &[u8]) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let ok = !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b));
    ok.then(|| String::from_utf8_lossy(name).into_owned())
}

/// Turns CRLF line ends into LF, the form mxa stores; a final line without
/// an end gets one.
pub fn to_lf(input: &[u8]) -> Vec<u8> {
    to_lf_owned(input.to_vec())
}

/// [`to_lf`] in place: a message that already has LF line ends (the usual
/// case) is returned as it is, without a copy.
pub fn to_lf_owned(mut v: Vec<u8>) -> Vec<u8> {
    if v.contains(&b'\r') {
        let mut w = 0;
        for r in 0..v.len() {
            if v[r] == b'\r' && v.get(r + 1) == Some(&b'\n') {
                continue;
            }
            v[w] = v[r];
            w += 1;
        }
        v.truncate(w);
    }
    if !v.is_empty() && !v.ends_with(b"\n") {
        v.push(b'\n');
    }
    v
}

/// An RFC 5322 date (`Mon, 23 Nov 2026 18:20:00 +0000`) for a Unix time,
/// in UTC.
pub fn rfc5322_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, hh, mm, ss) = civil(unix);
    let wd = DAYS[((unix / 86400) % 7) as usize];
    format!(
        "{wd}, {d:02} {} {y} {hh:02}:{mm:02}:{ss:02} +0000",
        MONTHS[(m - 1) as usize]
    )
}

/// An RFC 3339 UTC time (`2026-11-23T18:20:00Z`) for a Unix time.
pub fn rfc3339(unix: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(unix);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Year, month, day, hour, minute, second of a Unix time (proleptic
/// Gregorian calendar; Howard Hinnant's days-to-civil algorithm).
fn civil(unix: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = unix / 86400;
    let secs = unix % 86400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 5322 §2.2.3: folded fields keep their continuation lines.
    #[test]
    fn splits_fields_and_body() {
        let m = Parsed::parse(b"To: a@b,\n  c@d\nSubject: x\n\nbody\n\nmore\n");
        assert_eq!(m.fields.len(), 2);
        assert_eq!(m.fields[0].value(), "a@b,  c@d");
        assert_eq!(m.body, b"body\n\nmore\n");
        assert_eq!(
            m.to_bytes(),
            b"To: a@b,\n  c@d\nSubject: x\n\nbody\n\nmore\n"
        );
    }

    #[test]
    fn body_without_header() {
        let m = Parsed::parse(b"just text\nmore\n");
        assert!(m.fields.is_empty());
        assert_eq!(m.to_bytes(), b"\njust text\nmore\n");
    }

    #[test]
    fn drops_mbox_from_line_and_removes_fields() {
        let mut m = Parsed::parse(b"From a@b Mon Jan  1 00:00:00 2026\nBcc: x@y\nTo: z@w\n\nhi\n");
        assert!(m.has("bcc"));
        m.remove("BCC");
        assert_eq!(m.to_bytes(), b"To: z@w\n\nhi\n");
    }

    #[test]
    fn header_only_message() {
        let m = Parsed::parse(b"Subject: x");
        assert_eq!(m.to_bytes(), b"Subject: x\n\n");
    }

    #[test]
    fn crlf_to_lf() {
        assert_eq!(to_lf(b"a\r\nb\r\n"), b"a\nb\n");
        assert_eq!(to_lf(b"a\rb"), b"a\rb\n");
        assert_eq!(to_lf(b""), b"");
    }

    #[test]
    fn date_format() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_457_100),
            "Mon, 23 Nov 2026 18:05:00 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc3339(1_795_457_100), "2026-11-23T18:05:00Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
