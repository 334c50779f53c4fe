//! Server replies (RFC 5321 §4.2) and their incremental parser.
//!
//! [`Reply`] is shared by both sides: the client parses it with [`Parser`],
//! the server writes it with [`Reply::to_wire`].

use std::fmt;

/// Longest reply line accepted, without its CRLF. RFC 5321 §4.5.3.1.5 allows
/// 512 octets; real servers exceed that with long EHLO keyword lists or
/// policy URLs, so we take four times as much and no more.
pub const MAX_LINE: usize = 2048;

/// Most lines in one reply. An EHLO reply, the longest in practice, has
/// about 15; 100 lines of [`MAX_LINE`] bound a reply to about 200 KiB.
pub const MAX_LINES: usize = 100;

/// A reply that cannot be parsed. Every variant means the peer does not
/// speak SMTP correctly: the caller gives the connection up and treats it as
/// a temporary failure ([`crate::client::Client::connection_error`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line longer than [`MAX_LINE`].
    #[error("reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A reply of more than [`MAX_LINES`] lines.
    #[error("reply of more than {MAX_LINES} lines")]
    TooManyLines,
    /// A line that does not start with a reply code (RFC 5321 §4.2: first
    /// digit 2–5, second 0–5, third 0–9).
    #[error("reply line without a valid code: {0:?}")]
    BadCode(String),
    /// A line whose code differs from the earlier lines of its reply.
    #[error("reply line with code {found} inside a reply with code {expected}")]
    CodeMismatch {
        /// The code of the reply's first line.
        expected: u16,
        /// The code of this line.
        found: u16,
    },
    /// A code followed by something other than space, `-` or the line end.
    #[error("reply line with a bad separator after the code: {0:?}")]
    BadSeparator(String),
}

/// A server reply (RFC 5321 §4.2): code and text lines (without the "250-"
/// prefixes and CRLF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code, 200–559 when parsed.
    pub code: u16,
    /// The text of each line; a parsed reply has at least one (maybe empty).
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply, such as `Reply::new(250, "2.0.0 OK")`.
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// The first digit: 2 (done), 3 (go on), 4 (try later), 5 (refused).
    pub fn class(&self) -> u8 {
        // Three digits at most, so the quotient fits in a u8.
        u8::try_from(self.code / 100 % 10).unwrap_or(0)
    }

    /// A 2xx or 3xx reply.
    pub fn is_positive(&self) -> bool {
        matches!(self.class(), 2 | 3)
    }

    /// A 5xx reply.
    pub fn is_permanent(&self) -> bool {
        self.class() == 5
    }

    /// The enhanced status code (RFC 3463 §2: `class.subject.detail`, with
    /// 1–3 digits for the last two) that starts the text, when its class is
    /// the reply's: "5.1.1" for `550 5.1.1 no such user`.
    pub fn enhanced(&self) -> Option<String> {
        let first = self.lines.first()?;
        let token = first.split(' ').next()?;
        enhanced_class(token)
            .filter(|&class| class == self.class())
            .map(|_| token.to_string())
    }

    /// One line for logs, envelopes and `Diagnostic-Code:` (RFC 3464):
    /// `550 5.1.1 no such user`, further lines joined with " / " (an
    /// enhanced code repeated on them is left out).
    pub fn text(&self) -> String {
        let mut out = self.code.to_string();
        let mut lines = self.lines.iter();
        if let Some(first) = lines.next()
            && !first.is_empty()
        {
            out.push(' ');
            out.push_str(first);
        }
        let repeated = self.enhanced().map(|e| e + " ");
        for line in lines {
            out.push_str(" / ");
            match &repeated {
                Some(prefix) if line.starts_with(prefix.as_str()) => {
                    out.push_str(&line[prefix.len()..]);
                }
                _ => out.push_str(line),
            }
        }
        out
    }

    /// The reply as a server sends it: `250-first\r\n250 last\r\n`.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{sep}{line}\r\n", self.code).as_bytes());
        }
        if self.lines.is_empty() {
            out.extend_from_slice(format!("{}\r\n", self.code).as_bytes());
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// The class digit of an RFC 3463 code such as "5.1.1", or None.
fn enhanced_class(token: &str) -> Option<u8> {
    let mut parts = token.split('.');
    let class = match parts.next()? {
        "2" => 2,
        "4" => 4,
        "5" => 5,
        _ => return None,
    };
    let digits = |p: Option<&str>| {
        p.is_some_and(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    (digits(parts.next()) && digits(parts.next()) && parts.next().is_none()).then_some(class)
}

/// Incremental parser: feed bytes as they arrive, take whole replies out
/// with [`Iterator::next`] (`None` means "feed more"; the iterator resumes
/// after the next [`Parser::feed`]).
///
/// Bounded: a line over [`MAX_LINE`] bytes or a reply of more than
/// [`MAX_LINES`] lines is an error; so is a malformed line (no valid code,
/// code mismatch between lines, bad separator). After an error the parser
/// starts afresh at the next line (at the next reply after too many lines),
/// but the caller should give the connection up. Lines end in CRLF; a bare
/// LF is accepted too. Text is decoded as UTF-8 (invalid bytes replaced) and
/// control characters other than tab become '?', so that a reply can go into
/// a log line or a bounce unchanged.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes not yet parsed: at most one partial line once `next` returns None.
    buf: Vec<u8>,
    /// The code and lines of the reply being read.
    code: Option<u16>,
    lines: Vec<String>,
    /// Dropping the rest of an over-long line.
    skip_line: bool,
    /// Dropping the rest of a reply with too many lines.
    skip_reply: bool,
}

impl Parser {
    /// Append bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// True when nothing is buffered: every byte fed has been returned as
    /// part of a reply, and no partial line or reply waits. Check it when
    /// the 220 to STARTTLS arrives: anything after that reply came in clear
    /// and must not be read as if it came over TLS (RFC 3207 §4.2,
    /// CVE-2011-0411); give the connection up if it is false.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.code.is_none()
    }

    /// Parse one line; a whole reply when it was the last.
    fn line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let shown = || String::from_utf8_lossy(line).into_owned();
        let code = parse_code(line).ok_or_else(|| ReplyError::BadCode(shown()))?;
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(ReplyError::BadSeparator(shown())),
        };
        if self.skip_reply {
            self.skip_reply = !last;
            return Ok(None);
        }
        if let Some(expected) = self.code
            && expected != code
        {
            return Err(ReplyError::CodeMismatch {
                expected,
                found: code,
            });
        }
        if self.lines.len() == MAX_LINES {
            self.skip_reply = !last;
            return Err(ReplyError::TooManyLines);
        }
        self.code = Some(code);
        self.lines
            .push(clean_text(line.get(4..).unwrap_or_default()));
        if !last {
            return Ok(None);
        }
        self.code = None;
        Ok(Some(Reply {
            code,
            lines: std::mem::take(&mut self.lines),
        }))
    }

    /// Forget the reply being read and return `e`.
    fn fail(&mut self, e: ReplyError) -> ReplyError {
        self.code = None;
        self.lines.clear();
        e
    }
}

impl Iterator for Parser {
    type Item = Result<Reply, ReplyError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.skip_line {
                    self.buf.clear();
                } else if self.buf.len() > MAX_LINE + 1 {
                    // +1: the CR of a line of exactly MAX_LINE bytes.
                    self.buf.clear();
                    self.skip_line = true;
                    return Some(Err(self.fail(ReplyError::LineTooLong)));
                }
                return None;
            };
            let mut line: Vec<u8> = self.buf.drain(..=end).collect();
            if std::mem::take(&mut self.skip_line) {
                continue;
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > MAX_LINE {
                return Some(Err(self.fail(ReplyError::LineTooLong)));
            }
            match self.line(&line) {
                Ok(Some(reply)) => return Some(Ok(reply)),
                Ok(None) => {}
                Err(e) => return Some(Err(self.fail(e))),
            }
        }
    }
}

/// The code at the start of a line, within RFC 5321 §4.2's ranges.
fn parse_code(line: &[u8]) -> Option<u16> {
    match line {
        [a @ b'2'..=b'5', b @ b'0'..=b'5', c @ b'0'..=b'9', ..] => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// Reply text safe for logs and headers: UTF-8, no control characters.
fn clean_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}
