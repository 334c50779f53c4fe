//! A POP3 client with no I/O. [`Client::send`] turns a [`Command`] into the
//! bytes to write and remembers what kind of reply it expects (one line, or
//! a multi-line reply for CAPA, UIDL, LIST and RETR: RFC 1939 §3, RFC 2449
//! §5); [`Client::feed`] takes bytes as read and [`Client::next_reply`]
//! returns the replies in order. Several commands may be sent before their
//! replies are read (RFC 2449 §6.6, PIPELINING).
//!
//! A multi-line body comes back dot-unstuffed with LF line ends, the form
//! mxa stores (RFC 1939 §3: lines end in CRLF, a line starting with `.`
//! has it doubled, `.` alone ends the reply).

use std::collections::VecDeque;

/// The longest status line we accept (RFC 2449 §4 allows 512 octets; some
/// servers write longer texts).
pub const MAX_STATUS_LINE: usize = 8192;

/// A command of RFC 1939, 2449, 2595 or 5034.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// RFC 2449 §5.
    Capa,
    /// RFC 2595 §4.
    Stls,
    /// RFC 5034 with an initial response: authorization id empty.
    AuthPlain {
        /// The login.
        user: &'a str,
        /// The password.
        pass: &'a str,
    },
    /// RFC 1939 §7.
    User(&'a str),
    /// RFC 1939 §7.
    Pass(&'a str),
    /// RFC 1939 §7, all messages.
    Uidl,
    /// RFC 1939 §5, all messages.
    List,
    /// RFC 1939 §5.
    Retr(u32),
    /// RFC 1939 §5.
    Dele(u32),
    /// RFC 1939 §5.
    Noop,
    /// RFC 1939 §6: commits the deletions.
    Quit,
}

impl Command<'_> {
    fn multi_line(&self) -> bool {
        matches!(
            self,
            Command::Capa | Command::Uidl | Command::List | Command::Retr(_)
        )
    }

    /// The command line, CRLF included.
    pub fn encode(&self) -> Vec<u8> {
        let s = match self {
            Command::Capa => "CAPA".to_string(),
            Command::Stls => "STLS".to_string(),
            Command::AuthPlain { user, pass } => {
                let mut raw = vec![0u8];
                raw.extend_from_slice(user.as_bytes());
                raw.push(0);
                raw.extend_from_slice(pass.as_bytes());
                format!("AUTH PLAIN {}", crate::base64(&raw))
            }
            Command::User(u) => format!("USER {u}"),
            Command::Pass(p) => format!("PASS {p}"),
            Command::Uidl => "UIDL".to_string(),
            Command::List => "LIST".to_string(),
            Command::Retr(n) => format!("RETR {n}"),
            Command::Dele(n) => format!("DELE {n}"),
            Command::Noop => "NOOP".to_string(),
            Command::Quit => "QUIT".to_string(),
        };
        let mut v = s.into_bytes();
        v.extend_from_slice(b"\r\n");
        v
    }
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK text`, with the body of a multi-line reply.
    Ok {
        /// The text after `+OK`.
        text: String,
        /// The lines of a multi-line reply (dot-unstuffed, LF line ends).
        body: Option<Vec<u8>>,
    },
    /// `-ERR text`.
    Err(String),
}

/// What the server sent that is not POP3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A status line that starts with neither `+OK` nor `-ERR`.
    #[error("not a POP3 reply: {0:?}")]
    Malformed(String),
    /// A status line longer than [`MAX_STATUS_LINE`].
    #[error("a reply line longer than {MAX_STATUS_LINE} bytes")]
    LineTooLong,
    /// Bytes arrived when no reply was expected.
    #[error("the server sent {0:?} when no reply was expected")]
    Unexpected(String),
}

/// The client's reading state.
#[derive(Debug, Default)]
pub struct Client {
    buf: Vec<u8>,
    pos: usize,
    /// For each reply still to come: whether it is multi-line.
    expect: VecDeque<bool>,
    /// A multi-line reply being read: its status text and lines so far.
    partial: Option<(String, Vec<u8>)>,
}

impl Client {
    /// A client that expects the server's greeting first.
    pub fn new() -> Client {
        Client {
            expect: VecDeque::from([false]),
            ..Client::default()
        }
    }

    /// Queues `cmd` and returns the bytes to write.
    pub fn send(&mut self, cmd: &Command<'_>) -> Vec<u8> {
        self.expect.push_back(cmd.multi_line());
        cmd.encode()
    }

    /// Replies still expected.
    pub fn pending(&self) -> usize {
        self.expect.len()
    }

    /// Whether bytes were read that no reply has consumed yet. After STLS
    /// this must be false: anything the server sent before the handshake
    /// could have been injected by a man in the middle (RFC 2595 §8's
    /// lesson, CVE-2011-0411).
    pub fn has_buffered(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// Adds bytes as read from the server.
    pub fn feed(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete reply, or None until more bytes are fed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, Error> {
        loop {
            let Some(line) = self.take_line() else {
                if self.partial.is_none() && self.buf.len() - self.pos > MAX_STATUS_LINE {
                    return Err(Error::LineTooLong);
                }
                return Ok(None);
            };
            if let Some((_, body)) = &mut self.partial {
                if line == b"." {
                    let (text, body) = self.partial.take().unwrap_or_default();
                    self.expect.pop_front();
                    return Ok(Some(Reply::Ok {
                        text,
                        body: Some(body),
                    }));
                }
                let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
                body.extend_from_slice(unstuffed);
                body.push(b'\n');
                continue;
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            let Some(&multi) = self.expect.front() else {
                return Err(Error::Unexpected(text));
            };
            if let Some(rest) = strip_status(&text, "+OK") {
                if multi {
                    self.partial = Some((rest.to_string(), Vec::new()));
                    continue;
                }
                self.expect.pop_front();
                return Ok(Some(Reply::Ok {
                    text: rest.to_string(),
                    body: None,
                }));
            }
            if let Some(rest) = strip_status(&text, "-ERR") {
                self.expect.pop_front();
                return Ok(Some(Reply::Err(rest.to_string())));
            }
            return Err(Error::Malformed(text));
        }
    }

    /// The next line without its CRLF (or bare LF), if one is complete.
    fn take_line(&mut self) -> Option<Vec<u8>> {
        let rest = &self.buf[self.pos..];
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let end = if nl > 0 && rest[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let line = rest[..end].to_vec();
        self.pos += nl + 1;
        Some(line)
    }
}

/// `+OK text` → `text` (the status word is case-insensitive in practice).
fn strip_status<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let head = line.get(..word.len())?;
    if !head.eq_ignore_ascii_case(word) {
        return None;
    }
    let rest = &line[word.len()..];
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix(' ')
    }
}

/// The capabilities of a CAPA body, upper-cased (RFC 2449 §5: one a line,
/// the name first).
pub fn capabilities(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| l.trim().to_ascii_uppercase())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Whether `caps` has `name` (the first word of a line).
pub fn has_capability(caps: &[String], name: &str) -> bool {
    caps.iter()
        .any(|c| c.split_whitespace().next() == Some(name))
}

/// Whether the SASL line of `caps` offers `mech` (RFC 2449 §6.3).
pub fn has_sasl(caps: &[String], mech: &str) -> bool {
    caps.iter().any(|c| {
        let mut w = c.split_whitespace();
        w.next() == Some("SASL") && w.any(|m| m == mech)
    })
}

/// Message numbers and unique ids of a UIDL body (RFC 1939 §7: `n uid`,
/// the uid 1 to 70 characters from 0x21 to 0x7E).
pub fn parse_uidl(body: &[u8]) -> Result<Vec<(u32, String)>, Error> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            match (w.next().and_then(|n| n.parse().ok()), w.next(), w.next()) {
                (Some(n), Some(u), None) if u.bytes().all(|b| (0x21..=0x7e).contains(&b)) => {
                    Ok((n, u.to_string()))
                }
                _ => Err(Error::Malformed(format!("UIDL line {l:?}"))),
            }
        })
        .collect()
}

/// Message numbers and sizes (octets with CRLF) of a LIST body.
pub fn parse_list(body: &[u8]) -> Result<Vec<(u32, u64)>, Error> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            match (
                w.next().and_then(|n| n.parse().ok()),
                w.next().and_then(|n| n.parse().ok()),
            ) {
                (Some(n), Some(s)) => Ok((n, s)),
                _ => Err(Error::Malformed(format!("LIST line {l:?}"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
