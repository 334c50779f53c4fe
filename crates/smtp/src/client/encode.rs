//! Wire encodings and the checks that keep input out of command syntax:
//! dot-stuffing (RFC 5321 §4.5.2), base64 (RFC 4648 §4), xtext (RFC 3461
//! §4), utf-8-addr-xtext (RFC 6533 §3).

/// What ends the message data (RFC 5321 §4.1.1.4).
pub(super) const DATA_END: &[u8] = b".\r\n";

/// A message (LF or CRLF line ends) as the whole of what follows a 354:
/// CRLF line ends, a dot doubled at the start of a line (RFC 5321 §4.5.2),
/// the last line ended, and the terminating ".\r\n" — included, so the
/// caller writes this and nothing else. A CR not followed by LF ends a line
/// too (RFC 5321 §2.3.8 forbids a bare CR on the wire, and turning it into
/// a line end keeps line lengths bounded where dropping it would join lines).
pub fn dot_stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 40 + 5);
    let mut line_start = true;
    let mut bytes = msg.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\r' | b'\n' => {
                if b == b'\r' {
                    bytes.next_if_eq(&b'\n');
                }
                out.extend_from_slice(b"\r\n");
                line_start = true;
            }
            _ => {
                if line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                line_start = false;
            }
        }
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(DATA_END);
    out
}

/// Base64 with padding (RFC 4648 §4), for AUTH.
pub(super) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |n: u32, shift: u32| char::from(ALPHABET[(n >> shift & 63) as usize]);
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = b(0) << 16 | b(1) << 8 | b(2);
        out.push(sextet(n, 18));
        out.push(sextet(n, 12));
        out.push(if chunk.len() > 1 { sextet(n, 6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(n, 0) } else { '=' });
    }
    out
}

/// xtext (RFC 3461 §4): '!' to '~' as is except '+' and '=', every other
/// byte as "+HH".
pub(super) fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The ORCPT value: "rfc822;" and the xtext of an ASCII address, or for a
/// non-ASCII one "utf-8;" and its utf-8-addr-xtext (RFC 6533 §3: every
/// character other than printable ASCII, '+', '=' and '\' as `\x{HEX}`),
/// which stays ASCII whether or not SMTPUTF8 is in use. A leading
/// "rfc822;" in `original` is taken as the type, not doubled.
pub(super) fn orcpt(original: &str) -> String {
    let addr = match original.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("rfc822;") => &original[7..],
        _ => original,
    };
    if addr.is_ascii() {
        return format!("rfc822;{}", xtext(addr));
    }
    let mut out = String::from("utf-8;");
    for c in addr.chars() {
        if c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\') {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:02X}}}", u32::from(c)));
        }
    }
    out
}

/// An address that can go between angle brackets: no control characters
/// (no CR or LF to end the command early) and no '<' or '>' (which would
/// end the path and let the rest pass for parameters). "" only for the null
/// sender: the caller decides.
pub(super) fn is_address(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() || c == '<' || c == '>')
}

/// A HELO name: one word, printable.
pub(super) fn is_helo_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// RET (RFC 3461 §4.3), upper-cased, or None when invalid.
pub(super) fn ret(s: &str) -> Option<&'static str> {
    ["FULL", "HDRS"]
        .into_iter()
        .find(|v| s.eq_ignore_ascii_case(v))
}

/// NOTIFY (RFC 3461 §4.1): "NEVER", or a comma list of SUCCESS, FAILURE
/// and DELAY; upper-cased, or None when invalid.
pub(super) fn notify(s: &str) -> Option<String> {
    let upper = s.to_ascii_uppercase();
    if upper == "NEVER" {
        return Some(upper);
    }
    let ok = upper
        .split(',')
        .all(|w| matches!(w, "SUCCESS" | "FAILURE" | "DELAY"));
    ok.then_some(upper)
}

/// True when `s` holds a control character (CR, LF, NUL…).
pub(super) fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10 test vectors.
    #[test]
    fn base64_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    /// RFC 3461 §4: '+', '=', space and non-ASCII bytes are hex-encoded.
    #[test]
    fn xtext_table() {
        let cases = [
            ("abc@example.org", "abc@example.org"),
            ("a+b=c", "a+2Bb+3Dc"),
            ("a b", "a+20b"),
            ("é", "+C3+A9"),
            ("~!", "~!"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(xtext(plain), encoded, "{plain:?}");
        }
    }

    /// RFC 3461 §4.2 and RFC 6533 §3.
    #[test]
    fn orcpt_table() {
        let cases = [
            ("a+b@example.org", "rfc822;a+2Bb@example.org"),
            ("RFC822;a@example.org", "rfc822;a@example.org"),
            ("jöe+x@example.org", "utf-8;j\\x{F6}e\\x{2B}x@example.org"),
            (
                "用户@例子.中国",
                "utf-8;\\x{7528}\\x{6237}@\\x{4F8B}\\x{5B50}.\\x{4E2D}\\x{56FD}",
            ),
        ];
        for (plain, encoded) in cases {
            assert_eq!(orcpt(plain), encoded, "{plain:?}");
        }
    }

    #[test]
    fn parameter_checks() {
        assert_eq!(ret("hdrs"), Some("HDRS"));
        assert_eq!(ret("FULL "), None);
        assert_eq!(notify("success,delay").as_deref(), Some("SUCCESS,DELAY"));
        assert_eq!(notify("never").as_deref(), Some("NEVER"));
        assert_eq!(notify("NEVER,DELAY"), None);
        assert_eq!(notify("SUCCESS FAILURE"), None);
        assert_eq!(notify(""), None);
        assert!(is_address("\"john doe\"@example.org"));
        assert!(!is_address("a@b> NOTIFY=NEVER"));
        assert!(!is_address("a@b\r\nRSET"));
        assert!(!is_helo_name("client example"));
        assert!(is_helo_name("[192.0.2.1]"));
    }
}
