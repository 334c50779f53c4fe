//! Framing of what the client sends: command lines, and the message body
//! after DATA (dot-unstuffed, RFC 5321 §4.5.2) or BDAT (RFC 3030).
//!
//! The body rules are the defence against SMTP smuggling (CVE-2023-51764,
//! -51765, -51766): only `<CR><LF>.<CR><LF>` ends DATA; a `.` line ended by
//! a bare LF, or following a line ended by one, is content; a bare LF in
//! content becomes CRLF (or ends the session under `bare_lf = reject`), and
//! a bare CR always ends the session. So what we store has CRLF line ends
//! only, and no server we relay to can find a second message in it.

use super::BareLf;

/// Why a command line is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LineError {
    /// Longer than the limit (CRLF included).
    TooLong,
    /// Ended by a bare LF under `bare_lf = reject`.
    BareLf,
    /// A CR not followed by LF inside the line.
    BareCr,
}

/// Splits the input into command lines, bounded by a maximum length.
#[derive(Debug, Default)]
pub(super) struct Lines {
    /// Dropping the rest of an over-long line, already reported.
    skipping: bool,
}

impl Lines {
    /// The next whole line from the front of `buf`, without its line end;
    /// `None` when `buf` holds no whole line. `max` counts the CRLF.
    pub(super) fn next(
        &mut self,
        buf: &mut Vec<u8>,
        max: usize,
        bare_lf: BareLf,
    ) -> Option<Result<Vec<u8>, LineError>> {
        loop {
            let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                if self.skipping {
                    buf.clear();
                } else if buf.len() >= max {
                    // Whatever follows, this line ends past the limit.
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
            let crlf = line.last() == Some(&b'\r');
            if crlf {
                line.pop();
            } else if bare_lf == BareLf::Reject {
                return Some(Err(LineError::BareLf));
            }
            if line.contains(&b'\r') {
                return Some(Err(LineError::BareCr));
            }
            return Some(Ok(line));
        }
    }
}

/// Where the body scanner stands. `after_crlf`: the line began after a
/// real CRLF (or at the start of the data), so a `.` line ending in CRLF
/// there is the end of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    LineStart { after_crlf: bool },
    Dot { after_crlf: bool },
    DotCr { after_crlf: bool },
    Mid,
    Cr,
}

/// What [`Body::scan`] stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scanned {
    /// All input used; the body goes on.
    More,
    /// `<CR><LF>.<CR><LF>`: the DATA body is complete.
    End,
    /// A bare CR, or a bare LF under `bare_lf = reject`.
    Refused,
}

/// The message body being read: DATA (dot-unstuffed, ends at the
/// terminator) or BDAT chunks (no dots, no terminator). Holds at most the
/// state of one pending `.` and CR, never a line, so memory stays bounded.
#[derive(Debug)]
pub(super) struct Body {
    at: At,
    /// DATA rather than BDAT.
    dots: bool,
    bare_lf: BareLf,
    /// Octets of the message so far, as stored (CRLF line ends).
    pub(super) size: u64,
    max: u64,
    /// Past `max`: nothing more is emitted; the message will be refused.
    pub(super) too_big: bool,
}

impl Body {
    /// A DATA body (`dots`) or a BDAT one, refused past `max` octets.
    pub(super) fn new(dots: bool, bare_lf: BareLf, max: u64) -> Body {
        Body {
            at: At::LineStart { after_crlf: true },
            dots,
            bare_lf,
            size: 0,
            max,
            too_big: false,
        }
    }

    /// Scan `input`, appending the message octets to `out`; returns how
    /// many input bytes were used (all of them unless it stopped early).
    pub(super) fn scan(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Scanned) {
        for (i, &b) in input.iter().enumerate() {
            if let Some(stop) = self.step(b, out) {
                return (i + 1, stop);
            }
        }
        (input.len(), Scanned::More)
    }

    /// After the last BDAT chunk: a CR still waiting for its LF is bare.
    pub(super) fn finish(&self) -> Scanned {
        match self.at {
            At::Cr | At::DotCr { .. } => Scanned::Refused,
            _ => Scanned::More,
        }
    }

    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> Option<Scanned> {
        match (self.at, b) {
            (At::LineStart { after_crlf }, b'.') if self.dots => self.at = At::Dot { after_crlf },
            (At::Dot { after_crlf }, b'\r') => self.at = At::DotCr { after_crlf },
            (At::DotCr { after_crlf: true }, b'\n') => return Some(Scanned::End),
            // A "." line after a bare LF: content, unstuffed to an empty line.
            (At::DotCr { after_crlf: false } | At::Cr, b'\n') => {
                self.emit(b"\r\n", out);
                self.at = At::LineStart { after_crlf: true };
            }
            (At::DotCr { .. } | At::Cr, _) => return Some(Scanned::Refused),
            (_, b'\r') => self.at = At::Cr,
            (_, b'\n') => {
                if self.bare_lf == BareLf::Reject {
                    return Some(Scanned::Refused);
                }
                self.emit(b"\r\n", out);
                self.at = At::LineStart { after_crlf: false };
            }
            // After a leading dot, this drops the dot (RFC 5321 §4.5.2).
            (_, other) => {
                self.emit(&[other], out);
                self.at = At::Mid;
            }
        }
        None
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.size += bytes.len() as u64;
        if self.size > self.max {
            self.too_big = true;
        }
        if !self.too_big {
            out.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(input: &[u8], bare_lf: BareLf) -> (Vec<u8>, usize, Scanned) {
        let mut body = Body::new(true, bare_lf, 1 << 20);
        let mut out = Vec::new();
        let (used, stop) = body.scan(input, &mut out);
        (out, used, stop)
    }

    // RFC 5321 §4.1.1.4 and §4.5.2: the terminator, and unstuffing.
    #[test]
    fn data_ends_only_at_crlf_dot_crlf() {
        let cases: &[(&[u8], &[u8], Scanned)] = &[
            (b".\r\n", b"", Scanned::End),
            (b"a\r\n.\r\nMAIL", b"a\r\n", Scanned::End),
            (b"..x\r\n.\r\n", b".x\r\n", Scanned::End),
            (b"a\n.\nMAIL", b"a\r\n\r\nMAIL", Scanned::More),
            (b"a\n.\r\nMAIL", b"a\r\n\r\nMAIL", Scanned::More),
            (b"a\r\n.\nMAIL", b"a\r\n\r\nMAIL", Scanned::More),
            (b"a\r.\r", b"a", Scanned::Refused),
        ];
        for (input, want, stop) in cases {
            let (out, _, got) = data(input, BareLf::Normalize);
            assert_eq!((out.as_slice(), got), (*want, *stop), "{input:?}");
        }
    }

    #[test]
    fn bare_lf_refused_under_reject() {
        let (_, used, stop) = data(b"a\nb\r\n", BareLf::Reject);
        assert_eq!((used, stop), (2, Scanned::Refused));
    }

    #[test]
    fn lines_bounded_and_checked() {
        let mut lines = Lines::default();
        let mut buf = b"NOOP\r\nNOOP\nNO\rOP\r\n".to_vec();
        let mut next = || lines.next(&mut buf, 10, BareLf::Normalize);
        assert_eq!(next(), Some(Ok(b"NOOP".to_vec())));
        assert_eq!(next(), Some(Ok(b"NOOP".to_vec())));
        assert_eq!(next(), Some(Err(LineError::BareCr)));
        assert_eq!(next(), None);
        let mut buf = b"12345678901\r\nQUIT\r\n".to_vec();
        assert_eq!(
            lines.next(&mut buf, 10, BareLf::Reject),
            Some(Err(LineError::TooLong))
        );
        assert_eq!(
            lines.next(&mut buf, 10, BareLf::Reject),
            Some(Ok(b"QUIT".to_vec()))
        );
    }
}
