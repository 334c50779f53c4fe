//! Message files to their wire form, and framing of the client's lines.
//!
//! A Maildir file holds LF line ends (as mxa-deliver, Dovecot and mutt
//! write them), sometimes CRLF. On the wire every line ends with CRLF, a
//! line starting with `.` gets one more (RFC 1939 §3, "byte-stuffed"), and
//! `.` CRLF ends the reply. The size a POP3 server announces counts the
//! octets with CRLF line ends, before stuffing (RFC 1939 §5, §11).

/// The size of `msg` on the wire before dot-stuffing: every LF not
/// preceded by CR counts as two octets. Matches the `,W=` of mxa-deliver
/// and Dovecot.
pub fn wire_size(msg: &[u8]) -> u64 {
    let lf = msg.iter().filter(|&&b| b == b'\n').count() as u64;
    let crlf = if msg.contains(&b'\r') {
        msg.windows(2).filter(|w| w == b"\r\n").count() as u64
    } else {
        0
    };
    msg.len() as u64 + lf - crlf
}

/// Appends the multi-line body of RETR (`top` None) or `TOP n m` (`top`
/// Some(m): the header, the blank line, then `m` lines of the body, RFC 1939
/// §7) to `out`: CRLF line ends, dot-stuffed, ending with `.` CRLF. A last
/// line without a line end gets one.
pub fn encode(msg: &[u8], top: Option<u64>, out: &mut Vec<u8>) {
    out.reserve(msg.len() + msg.len() / 16 + 8);
    let mut in_body = false;
    let mut body_lines = 0u64;
    let mut rest = msg;
    while !rest.is_empty() {
        if let Some(max) = top
            && in_body
            && body_lines >= max
        {
            break;
        }
        let (line, next) = match memchr_lf(rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        if in_body {
            body_lines += 1;
        } else if line.is_empty() {
            in_body = true;
        }
        rest = next;
    }
    out.extend_from_slice(b".\r\n");
}

fn memchr_lf(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

/// Why a line was not returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineError {
    /// Longer than the limit (line end included).
    TooLong,
}

/// Splits the client's input into lines (CRLF, or a bare LF as many
/// clients' test scripts send), bounded by a maximum length; the rest of
/// an over-long line is dropped once reported.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    skipping: bool,
}

impl Lines {
    /// The next whole line at the front of `buf`, without its line end.
    pub(crate) fn next(
        &mut self,
        buf: &mut Vec<u8>,
        max: usize,
    ) -> Option<Result<Vec<u8>, LineError>> {
        loop {
            let Some(end) = memchr_lf(buf) else {
                if self.skipping {
                    buf.clear();
                } else if buf.len() >= max {
                    buf.clear();
                    self.skipping = true;
                    return Some(Err(LineError::TooLong));
                }
                return None;
            };
            let mut line: Vec<u8> = buf.drain(..=end).collect();
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if line.len() > max {
                return Some(Err(LineError::TooLong));
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Some(Ok(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(msg: &[u8], top: Option<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(msg, top, &mut out);
        out
    }

    // RFC 1939 §3: byte-stuffing and the terminator; §11: CRLF.
    #[test]
    fn retr_form() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b"a\r\nb\n", b"a\r\nb\r\n.\r\n"),
            (b".\n..x\n", b"..\r\n...x\r\n.\r\n"),
            (b"S: x\n\n.\n", b"S: x\r\n\r\n..\r\n.\r\n"),
            (b"a\rb\n", b"a\rb\r\n.\r\n"),
            (b"\n\n", b"\r\n\r\n.\r\n"),
        ];
        for (msg, want) in cases {
            assert_eq!(enc(msg, None), *want, "{msg:?}");
        }
    }

    // RFC 1939 §7, TOP: the header, the blank line, n body lines.
    #[test]
    fn top_form() {
        let msg = b"A: 1\nB: 2\n\nl1\nl2\n.l3\n";
        assert_eq!(enc(msg, Some(0)), b"A: 1\r\nB: 2\r\n\r\n.\r\n");
        assert_eq!(enc(msg, Some(1)), b"A: 1\r\nB: 2\r\n\r\nl1\r\n.\r\n");
        assert_eq!(
            enc(msg, Some(9)),
            b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n..l3\r\n.\r\n"
        );
        // A message without a body: all of it.
        assert_eq!(enc(b"A: 1\n", Some(0)), b"A: 1\r\n.\r\n");
    }

    #[test]
    fn sizes_count_crlf() {
        assert_eq!(wire_size(b""), 0);
        assert_eq!(wire_size(b"ab\n"), 4);
        assert_eq!(wire_size(b"ab\r\n"), 4);
        assert_eq!(wire_size(b"a\nb\r\nc"), 7);
        for msg in [&b"x\ny\n\n.z\n"[..], b"a\r\nb\nc", b"\n"] {
            // The announced size is the encoded form minus stuffing and
            // terminator, when the file ends with a line end.
            let stuffed = msg
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"."))
                .count();
            let encoded = enc(msg, None).len() - 3 - stuffed;
            if msg.ends_with(b"\n") {
                assert_eq!(wire_size(msg), encoded as u64, "{msg:?}");
            }
        }
    }

    #[test]
    fn lines_are_bounded() {
        let mut lines = Lines::default();
        let mut buf = b"STAT\r\nNOOP\nxxxxxxxxxxxxxxxxxxxxxxxxx\r\nQUIT\r\nQU".to_vec();
        assert_eq!(lines.next(&mut buf, 10), Some(Ok(b"STAT".to_vec())));
        assert_eq!(lines.next(&mut buf, 10), Some(Ok(b"NOOP".to_vec())));
        assert_eq!(lines.next(&mut buf, 10), Some(Err(LineError::TooLong)));
        assert_eq!(lines.next(&mut buf, 10), Some(Ok(b"QUIT".to_vec())));
        assert_eq!(lines.next(&mut buf, 10), None);
        let mut buf = b"0123456789abc".to_vec();
        assert_eq!(lines.next(&mut buf, 10), Some(Err(LineError::TooLong)));
        buf.extend_from_slice(b"def\r\nSTAT\r\n");
        assert_eq!(lines.next(&mut buf, 10), Some(Ok(b"STAT".to_vec())));
    }
}
