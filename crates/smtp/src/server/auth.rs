//! AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN: the exchange only; the
//! caller checks the credentials ([`Action::CheckAuth`]) so that the users
//! file and the constant-time comparison stay out of this crate.

use super::codes::{self, Code};
use super::verbs::Answer;
use super::{Action, Mechanism, Phase, Secret, Session};

impl Session {
    /// AUTH can be used now: offered, and TLS on where it must be.
    pub(super) fn auth_usable(&self) -> bool {
        (self.config.auth_offered || self.config.auth_required)
            && (self.tls.is_some() || !self.config.auth_needs_tls)
    }

    /// AUTH (RFC 4954 §4): offered, after EHLO, once, outside a
    /// transaction, over TLS where required; PLAIN or LOGIN.
    pub(super) fn auth(&mut self, mechanism: u64, initial: &str) -> Answer {
        if !self.config.auth_offered && !self.config.auth_required {
            return codes::NOT_IMPLEMENTED.into();
        }
        if !self.helo.as_ref().is_some_and(|(_, esmtp)| *esmtp) {
            return codes::BAD_SEQUENCE.with("send EHLO first").into();
        }
        if self.user.is_some() {
            return codes::BAD_SEQUENCE.with("already authenticated").into();
        }
        if self.txn.is_some() {
            return codes::BAD_SEQUENCE.with("transaction under way").into();
        }
        if !self.auth_usable() {
            return codes::TLS_FIRST.into();
        }
        let mechanism = match mechanism {
            smtp_proto::AUTH_PLAIN => Mechanism::Plain,
            smtp_proto::AUTH_LOGIN => Mechanism::Login,
            _ => return codes::AUTH_MECHANISM.into(),
        };
        match (mechanism, initial) {
            (Mechanism::Plain, "") => {
                self.phase = Phase::AuthPlain;
                codes::AUTH_PROMPT.into()
            }
            (Mechanism::Plain, response) => self.plain_response(response.as_bytes()),
            (Mechanism::Login, "") => {
                self.phase = Phase::AuthLoginUser;
                codes::LOGIN_USER.into()
            }
            (Mechanism::Login, response) => self.login_user(response.as_bytes()),
        }
    }

    /// The PLAIN message (RFC 4616 §2): authzid NUL authcid NUL passwd; an
    /// authzid other than the authcid is not supported.
    pub(super) fn plain_response(&mut self, line: &[u8]) -> Answer {
        let decoded = match decode_response(line) {
            Ok(decoded) => decoded,
            Err(code) => return code.into(),
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
        self.check(Mechanism::Plain, user, password)
    }

    /// The LOGIN user name; the password prompt follows.
    pub(super) fn login_user(&mut self, line: &[u8]) -> Answer {
        let user = match decode_response(line).map(String::from_utf8) {
            Ok(Ok(user)) if !user.is_empty() => user,
            Ok(_) => return codes::AUTH_MALFORMED.into(),
            Err(code) => return code.into(),
        };
        self.phase = Phase::AuthLoginPassword(user);
        codes::LOGIN_PASSWORD.into()
    }

    /// The LOGIN password.
    pub(super) fn login_password(&mut self, user: String, line: &[u8]) -> Answer {
        match decode_response(line).map(String::from_utf8) {
            Ok(Ok(password)) => self.check(Mechanism::Login, user, password),
            Ok(Err(_)) => codes::AUTH_MALFORMED.into(),
            Err(code) => code.into(),
        }
    }

    /// Hand the credentials to the caller.
    fn check(&mut self, mechanism: Mechanism, user: String, password: String) -> Answer {
        self.phase = Phase::AuthCheck(user.clone());
        Answer::Ask(Action::CheckAuth {
            mechanism,
            user,
            password: Secret(password),
        })
    }
}

/// A client response: `*` cancels (RFC 4954 §4), `=` is empty, else base64.
fn decode_response(line: &[u8]) -> Result<Vec<u8>, Code> {
    match line {
        b"*" => Err(codes::AUTH_CANCELLED),
        b"=" => Ok(Vec::new()),
        _ => base64_decode(line).ok_or(codes::AUTH_MALFORMED),
    }
}

/// Base64 (RFC 4648 §4); padding optional, as some LOGIN clients omit it.
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
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // Masked to 8 bits, so the cast keeps every bit.
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    // RFC 4648 §10 test vectors.
    #[test]
    fn base64_vectors() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Zm9vYg", "foob"),
        ];
        for (text, want) in cases {
            assert_eq!(
                base64_decode(text.as_bytes()).as_deref(),
                Some(want.as_bytes())
            );
        }
        assert_eq!(base64_decode(b"Z"), None);
        assert_eq!(base64_decode(b"Zm9v!"), None);
    }
}
