//! Session set-up, one handler per expected reply: greeting, EHLO (HELO),
//! STARTTLS (RFC 3207), AUTH PLAIN / LOGIN (RFC 4954, RFC 4616).

use super::{Capabilities, Client, Outcome, State, Step, Tls, encode, synthetic};
use crate::reply::Reply;

impl Client {
    /// 220 → EHLO. Anything else refuses the session: RFC 5321 §3.1 has the
    /// client QUIT after a 554 greeting (a 421 never gets here: it closes).
    /// A greeting other than 220 refuses the session, not the message: a
    /// 5xx one defers too (as Postfix's smtp_skip_5xx_greeting), so the
    /// next server is tried and the message waits if none takes it.
    pub(super) fn on_greeting(&mut self, r: &Reply) -> Step {
        if r.code != 220 {
            let reason = if r.class() == 5 {
                synthetic::session_refused(r)
            } else {
                r.clone()
            };
            return self.stop(reason, false);
        }
        if !encode::is_helo_name(&self.config.helo) {
            return self.stop(synthetic::bad_config("HELO name"), false);
        }
        self.send_ehlo()
    }

    pub(super) fn send_ehlo(&mut self) -> Step {
        self.state = State::Ehlo;
        Step::Send(format!("EHLO {}\r\n", self.config.helo).into_bytes())
    }

    /// 2xx → capabilities; 5xx → HELO, a server without ESMTP (RFC 5321
    /// §3.2); 4xx → refused.
    pub(super) fn on_ehlo(&mut self, r: &Reply) -> Step {
        match r.class() {
            2 => {
                self.caps = parse_capabilities(&r.lines);
                self.after_hello()
            }
            5 => {
                self.state = State::Helo;
                Step::Send(format!("HELO {}\r\n", self.config.helo).into_bytes())
            }
            _ => self.stop(r.clone(), false),
        }
    }

    pub(super) fn on_helo(&mut self, r: &Reply) -> Step {
        if r.class() != 2 {
            return self.stop(r.clone(), false);
        }
        self.caps = Capabilities::default();
        self.after_hello()
    }

    /// STARTTLS when wanted, offered and not yet on; then AUTH.
    fn after_hello(&mut self) -> Step {
        let wanted = matches!(self.config.tls, Tls::Opportunistic | Tls::Required);
        if wanted && !self.tls_active {
            if self.caps.starttls && !self.starttls_refused {
                self.state = State::StartTls;
                return Step::Send(b"STARTTLS\r\n".to_vec());
            }
            if self.config.tls == Tls::Required {
                return self.stop(synthetic::tls_not_offered(), false);
            }
        }
        self.authenticate()
    }

    /// 220 → handshake. Else continue in clear, unless TLS is required.
    pub(super) fn on_starttls(&mut self, r: &Reply) -> Step {
        if r.code == 220 {
            self.state = State::Handshake;
            return Step::StartTls;
        }
        if self.config.tls == Tls::Required {
            return self.stop(synthetic::tls_refused(r), false);
        }
        self.starttls_refused = true;
        self.authenticate()
    }

    /// AUTH when configured: only over TLS, PLAIN with an initial response
    /// when offered, else LOGIN.
    fn authenticate(&mut self) -> Step {
        let Some((user, password)) = &self.config.auth else {
            return self.ready();
        };
        if !self.tls_active {
            return self.stop(synthetic::auth_needs_tls(), false);
        }
        // PLAIN separates its fields with NUL (RFC 4616 §2).
        if user.is_empty() || user.contains('\0') || password.contains('\0') {
            return self.stop(synthetic::bad_config("AUTH user or password"), false);
        }
        let offered = |m: &str| self.caps.auth.iter().any(|a| a == m);
        if offered("PLAIN") {
            let token = encode::base64(format!("\0{user}\0{password}").as_bytes());
            self.state = State::AuthPlain;
            Step::Send(format!("AUTH PLAIN {token}\r\n").into_bytes())
        } else if offered("LOGIN") {
            self.state = State::AuthLoginUser;
            Step::Send(b"AUTH LOGIN\r\n".to_vec())
        } else {
            self.stop(synthetic::auth_not_offered(), false)
        }
    }

    /// 334 → the user name (`password` false) or the password, base64.
    pub(super) fn on_auth_login(&mut self, r: &Reply, password: bool) -> Step {
        if r.code != 334 {
            return self.auth_failed(r);
        }
        let Some((user, pass)) = &self.config.auth else {
            return self.stop(synthetic::internal("AUTH LOGIN without credentials"), true);
        };
        let (secret, next) = if password {
            (pass, State::AuthLoginDone)
        } else {
            (user, State::AuthLoginPassword)
        };
        let line = format!("{}\r\n", encode::base64(secret.as_bytes()));
        self.state = next;
        Step::Send(line.into_bytes())
    }

    /// 235 → ready.
    pub(super) fn on_auth_done(&mut self, r: &Reply) -> Step {
        if r.class() == 2 {
            return self.ready();
        }
        self.auth_failed(r)
    }

    /// Defers, whatever the code: a refused login is the configuration's
    /// fault, not the message's (see [`synthetic::auth_refused`]). A 334
    /// where none is due leaves the server waiting for a line of ours: only
    /// closing gets out of that.
    fn auth_failed(&mut self, r: &Reply) -> Step {
        let close = r.class() == 3;
        let reason = if r.class() == 5 {
            synthetic::auth_refused(r)
        } else {
            r.clone()
        };
        self.stop(reason, close)
    }

    /// The session is set up: the waiting transaction, if any, begins.
    fn ready(&mut self) -> Step {
        self.state = State::Ready;
        if self.txn.is_some() {
            self.begin()
        } else {
            Step::Done(Outcome::default())
        }
    }
}

/// The EHLO keywords (RFC 5321 §4.1.1.1): every line after the first is a
/// keyword and its parameters.
fn parse_capabilities(lines: &[String]) -> Capabilities {
    let mut caps = Capabilities::default();
    for line in lines.iter().skip(1) {
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        let keyword = keyword.to_ascii_uppercase();
        match keyword.as_str() {
            "PIPELINING" => caps.pipelining = true,
            "STARTTLS" => caps.starttls = true,
            "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
            "8BITMIME" => caps.eightbitmime = true,
            "SMTPUTF8" => caps.smtputf8 = true,
            "DSN" => caps.dsn = true,
            "CHUNKING" => caps.chunking = true,
            "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
            _ => {
                // "AUTH=LOGIN PLAIN" is the pre-RFC 4954 form some servers
                // still send alongside "AUTH LOGIN PLAIN".
                let first = match keyword.strip_prefix("AUTH") {
                    Some("") => None,
                    Some(rest) if rest.starts_with('=') => Some(rest[1..].to_string()),
                    _ => continue,
                };
                for m in first.into_iter().chain(words.map(str::to_ascii_uppercase)) {
                    if !m.is_empty() && !caps.auth.contains(&m) {
                        caps.auth.push(m);
                    }
                }
            }
        }
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ehlo_keywords() {
        let caps = parse_capabilities(&lines(&[
            "mx.example.org greets you",
            "pipelining",
            "SIZE 35882577",
            "8BITMIME",
            "STARTTLS",
            "AUTH login Plain",
            "AUTH=LOGIN XOAUTH2",
            "ENHANCEDSTATUSCODES",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
            "X-UNKNOWN 1",
            "AUTHX",
        ]));
        assert!(caps.pipelining && caps.starttls && caps.eightbitmime && caps.smtputf8);
        assert!(caps.dsn && caps.chunking && caps.enhanced_status_codes);
        assert_eq!(caps.size, Some(35_882_577));
        assert_eq!(caps.auth, ["LOGIN", "PLAIN", "XOAUTH2"]);
    }

    #[test]
    fn size_without_limit_and_greeting_line_ignored() {
        let caps = parse_capabilities(&lines(&["STARTTLS", "SIZE"]));
        assert!(
            !caps.starttls,
            "the first line is the greeting, not a keyword"
        );
        assert_eq!(caps.size, Some(0));
        assert_eq!(
            parse_capabilities(&lines(&["x", "SIZE lots"])).size,
            Some(0)
        );
    }
}
