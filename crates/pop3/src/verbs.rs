//! Command lines to verbs, one function per verb: each checks its state
//! and arguments before changing anything, and answers with a reply or an
//! action for the caller. RFC 1939 §3: keywords are case-insensitive,
//! arguments are separated by a single space (we accept runs of blanks).

use crate::codes::{self, Reply};
use crate::session::{Action, Phase, Secret, Session};

/// What a verb answers.
#[derive(Debug)]
enum Answer {
    /// A reply.
    Reply(Reply),
    /// A reply to a protocol error (counted).
    Error(Reply),
    /// A reply, then an action (STLS's +OK then StartTls).
    Then(Reply, Action),
    /// An action whose outcome brings the reply.
    Ask(Action),
    /// Already queued (QUIT's last reply and Close).
    Nothing,
}

impl From<Reply> for Answer {
    fn from(r: Reply) -> Answer {
        Answer::Reply(r)
    }
}

impl From<codes::Code> for Answer {
    fn from(c: codes::Code) -> Answer {
        Answer::Reply(c.reply())
    }
}

fn error(c: codes::Code) -> Answer {
    Answer::Error(c.reply())
}

impl Session {
    /// Handle one line of input.
    pub(crate) fn line(&mut self, line: &[u8]) {
        let answer = if matches!(self.phase, Phase::AuthResponse) {
            self.phase = Phase::Authorization { user: None };
            self.plain_response(line)
        } else {
            self.command(line)
        };
        match answer {
            Answer::Reply(r) => self.reply(r),
            Answer::Error(r) => self.error(r),
            Answer::Then(r, a) => {
                self.reply(r);
                self.act(a);
            }
            Answer::Ask(a) => self.act(a),
            Answer::Nothing => {}
        }
    }

    fn command(&mut self, line: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(line);
        let (verb, rest) = match text.split_once(' ') {
            Some((v, r)) => (v, r),
            None => (text.as_ref(), ""),
        };
        let verb = verb.to_ascii_uppercase();
        let args: Vec<&str> = rest.split_ascii_whitespace().collect();
        let in_auth = matches!(self.phase, Phase::Authorization { .. });
        match verb.as_str() {
            "CAPA" => self.capa(),
            "QUIT" => self.quit(),
            "STLS" | "USER" | "PASS" | "AUTH" | "APOP" if !in_auth => error(codes::BAD_STATE),
            "STLS" => self.stls(&args),
            "USER" => self.user_verb(rest),
            // PASS takes the rest of the line: a password may hold spaces
            // (RFC 1939 §7).
            "PASS" => self.pass(rest),
            "AUTH" => self.auth(&args),
            "APOP" => codes::NO_APOP.into(),
            "STAT" | "LIST" | "RETR" | "DELE" | "NOOP" | "RSET" | "TOP" | "UIDL" if in_auth => {
                error(codes::BAD_STATE)
            }
            "STAT" => self.stat(&args),
            "LIST" => self.list(&args),
            "RETR" => self.retr(&args),
            "DELE" => self.dele(&args),
            "NOOP" => self.noop(&args),
            "RSET" => self.rset(&args),
            "TOP" => self.top(&args),
            "UIDL" => self.uidl(&args),
            _ => error(codes::UNKNOWN_COMMAND),
        }
    }

    /// USER, PASS and AUTH may be used now: over TLS, or from this machine.
    fn login_allowed(&self) -> bool {
        self.tls || self.config.client_local
    }

    /// CAPA (RFC 2449 §5): what may be used in the current state.
    fn capa(&mut self) -> Answer {
        let mut caps = vec!["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"];
        if matches!(self.phase, Phase::Authorization { .. }) {
            if self.config.tls_available && !self.tls {
                caps.push("STLS");
            }
            if self.login_allowed() {
                caps.extend(["USER", "SASL PLAIN"]);
            }
        }
        caps.push("IMPLEMENTATION mxa");
        codes::CAPA.reply().with_lines(caps).into()
    }

    /// QUIT (RFC 1939 §6, §5): in TRANSACTION, enter UPDATE.
    fn quit(&mut self) -> Answer {
        if matches!(self.phase, Phase::Transaction) {
            let deleted: Vec<usize> = (0..self.deleted.len())
                .filter(|&i| self.deleted[i])
                .collect();
            self.phase = Phase::Updating;
            return Answer::Ask(Action::Update { deleted });
        }
        self.fatal(codes::BYE.reply());
        Answer::Nothing
    }

    /// STLS (RFC 2595 §4): once, when a certificate is configured.
    fn stls(&mut self, args: &[&str]) -> Answer {
        if !args.is_empty() {
            return Answer::Error(codes::SYNTAX.with("STLS takes no argument"));
        }
        if self.tls || !self.config.tls_available {
            return codes::NO_TLS.into();
        }
        self.phase = Phase::Tls;
        Answer::Then(codes::BEGIN_TLS.reply(), Action::StartTls)
    }

    /// USER (RFC 1939 §7): +OK whether or not the account exists.
    fn user_verb(&mut self, rest: &str) -> Answer {
        if !self.login_allowed() {
            return codes::TLS_FIRST.into();
        }
        let name = rest.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Answer::Error(codes::SYNTAX.with("USER name"));
        }
        self.phase = Phase::Authorization {
            user: Some(name.to_string()),
        };
        codes::SEND_PASS.into()
    }

    /// PASS (RFC 1939 §7): right after USER.
    fn pass(&mut self, password: &str) -> Answer {
        if !self.login_allowed() {
            return codes::TLS_FIRST.into();
        }
        let Phase::Authorization { user: Some(user) } =
            std::mem::replace(&mut self.phase, Phase::Authorization { user: None })
        else {
            return error(codes::USER_FIRST);
        };
        self.check(user, password.to_string())
    }

    /// AUTH (RFC 5034 §4): PLAIN only, with or without an initial response;
    /// without a mechanism, the list of them.
    fn auth(&mut self, args: &[&str]) -> Answer {
        if !self.login_allowed() {
            return codes::TLS_FIRST.into();
        }
        self.phase = Phase::Authorization { user: None };
        match args {
            [] => codes::AUTH_LIST.reply().with_lines(["PLAIN"]).into(),
            [m, ..] if !m.eq_ignore_ascii_case("PLAIN") => codes::AUTH_MECHANISM.into(),
            [_] => {
                self.phase = Phase::AuthResponse;
                // An empty challenge: "+ " (RFC 5034 §4).
                Answer::Reply(Reply::continuation())
            }
            [_, initial] => self.plain_response(initial.as_bytes()),
            _ => Answer::Error(codes::SYNTAX.with("AUTH mechanism [initial-response]")),
        }
    }

    /// The PLAIN message (RFC 4616 §2): authzid NUL authcid NUL passwd; an
    /// authzid other than the authcid is not supported.
    fn plain_response(&mut self, line: &[u8]) -> Answer {
        let decoded = match line {
            b"*" => return codes::AUTH_CANCELLED.into(),
            b"=" => Vec::new(),
            _ => match base64_decode(line) {
                Some(d) => d,
                None => return codes::AUTH_MALFORMED.into(),
            },
        };
        let mut parts = decoded.split(|&b| b == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return codes::AUTH_MALFORMED.into();
        };
        if user.is_empty() || (!authzid.is_empty() && authzid != user) {
            return codes::AUTH_MALFORMED.into();
        }
        let (Ok(user), Ok(password)) = (
            String::from_utf8(user.to_vec()),
            String::from_utf8(password.to_vec()),
        ) else {
            return codes::AUTH_MALFORMED.into();
        };
        self.check(user, password)
    }

    fn check(&mut self, user: String, password: String) -> Answer {
        self.phase = Phase::AuthCheck(user.clone());
        Answer::Ask(Action::CheckAuth {
            user,
            password: Secret(password),
        })
    }

    /// The index of message number `arg` (1-based) if it exists and is not
    /// marked deleted.
    fn message(&self, arg: &str) -> Result<usize, Answer> {
        let n: usize = match arg.parse() {
            Ok(n) if arg.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(Answer::Error(codes::SYNTAX.with("not a message number"))),
        };
        match n.checked_sub(1) {
            Some(i) if i < self.messages.len() && !self.deleted[i] => Ok(i),
            _ => Err(codes::NO_SUCH_MESSAGE.into()),
        }
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.messages.len()).filter(|&i| !self.deleted[i])
    }

    /// "count octets" of the messages not marked deleted.
    fn drop_listing(&self) -> String {
        let octets: u64 = self.live().map(|i| self.messages[i].size).sum();
        format!("{} {octets}", self.live().count())
    }

    /// STAT (RFC 1939 §5).
    fn stat(&mut self, args: &[&str]) -> Answer {
        if !args.is_empty() {
            return Answer::Error(codes::SYNTAX.with("STAT takes no argument"));
        }
        codes::OK.and(self.drop_listing()).into()
    }

    /// LIST [msg] (RFC 1939 §5).
    fn list(&mut self, args: &[&str]) -> Answer {
        match args {
            [] => codes::LISTING
                .reply()
                .with_lines(
                    self.live()
                        .map(|i| format!("{} {}", i + 1, self.messages[i].size)),
                )
                .into(),
            [arg] => match self.message(arg) {
                Ok(i) => codes::OK
                    .and(format!("{} {}", i + 1, self.messages[i].size))
                    .into(),
                Err(a) => a,
            },
            _ => Answer::Error(codes::SYNTAX.with("LIST [msg]")),
        }
    }

    /// UIDL [msg] (RFC 1939 §7).
    fn uidl(&mut self, args: &[&str]) -> Answer {
        match args {
            [] => codes::LISTING
                .reply()
                .with_lines(
                    self.live()
                        .map(|i| format!("{} {}", i + 1, self.messages[i].uid)),
                )
                .into(),
            [arg] => match self.message(arg) {
                Ok(i) => codes::OK
                    .and(format!("{} {}", i + 1, self.messages[i].uid))
                    .into(),
                Err(a) => a,
            },
            _ => Answer::Error(codes::SYNTAX.with("UIDL [msg]")),
        }
    }

    /// RETR msg (RFC 1939 §5).
    fn retr(&mut self, args: &[&str]) -> Answer {
        let [arg] = args else {
            return Answer::Error(codes::SYNTAX.with("RETR msg"));
        };
        match self.message(arg) {
            Ok(index) => {
                self.phase = Phase::Fetching { top: None };
                Answer::Ask(Action::Fetch { index, top: None })
            }
            Err(a) => a,
        }
    }

    /// TOP msg n (RFC 1939 §7).
    fn top(&mut self, args: &[&str]) -> Answer {
        let [arg, n] = args else {
            return Answer::Error(codes::SYNTAX.with("TOP msg n"));
        };
        let Some(n) = n
            .parse::<u64>()
            .ok()
            .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return Answer::Error(codes::SYNTAX.with("TOP msg n"));
        };
        match self.message(arg) {
            Ok(index) => {
                self.phase = Phase::Fetching { top: Some(n) };
                Answer::Ask(Action::Fetch {
                    index,
                    top: Some(n),
                })
            }
            Err(a) => a,
        }
    }

    /// DELE msg (RFC 1939 §5): a mark, acted on only by QUIT.
    fn dele(&mut self, args: &[&str]) -> Answer {
        let [arg] = args else {
            return Answer::Error(codes::SYNTAX.with("DELE msg"));
        };
        match self.message(arg) {
            Ok(i) => {
                self.deleted[i] = true;
                codes::DELETED.into()
            }
            Err(a) => a,
        }
    }

    /// NOOP (RFC 1939 §5).
    fn noop(&mut self, args: &[&str]) -> Answer {
        if !args.is_empty() {
            return Answer::Error(codes::SYNTAX.with("NOOP takes no argument"));
        }
        codes::OK.reply().into()
    }

    /// RSET (RFC 1939 §5): every deletion mark is removed.
    fn rset(&mut self, args: &[&str]) -> Answer {
        if !args.is_empty() {
            return Answer::Error(codes::SYNTAX.with("RSET takes no argument"));
        }
        self.deleted.iter_mut().for_each(|d| *d = false);
        codes::RESET
            .and(format!(
                "{} messages ({} octets)",
                self.messages.len(),
                self.messages.iter().map(|m| m.size).sum::<u64>()
            ))
            .into()
    }
}

/// Base64 (RFC 4648 §4); padding optional.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // Masked to 8 bits, so the cast keeps every bit.
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}
