//! Account URLs: `pop3://user@host[:port]`, `pop3s://…`,
//! `imap://user@host[:port][/FOLDER]`, `imaps://…` (RFC 1939 §3 and RFC
//! 5092 name the ports; the user is percent-decoded as RFC 3986 §2.1 says,
//! so `me%40example.org@host` logs in as `me@example.org`, and so does
//! `me@example.org@host`: the host follows the last `@`; a URL without a
//! user leaves the choice of login to the caller).

use std::fmt;

/// Which protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// POP3.
    Pop3,
    /// IMAP4rev1.
    Imap,
}

/// How TLS starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// On connect (`pop3s`, `imaps`).
    Implicit,
    /// With STLS or STARTTLS after the greeting (`pop3`, `imap`).
    StartTls,
}

/// A parsed account URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The protocol.
    pub protocol: Protocol,
    /// How TLS starts.
    pub security: Security,
    /// The login, percent-decoded; empty when the URL names none (the
    /// caller then chooses one, as fetchmail uses the local user's name).
    pub user: String,
    /// The host name or address (IPv6 without brackets).
    pub host: String,
    /// The port, the scheme's default when not given.
    pub port: u16,
    /// The IMAP folder of the path, percent-decoded, if any.
    pub folder: Option<String>,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?}: {why}")]
pub struct Error {
    /// The URL as given.
    pub url: String,
    /// What is wrong.
    pub why: String,
}

impl Url {
    /// Parses `s`.
    pub fn parse(s: &str) -> Result<Url, Error> {
        let err = |why: &str| Error {
            url: s.to_string(),
            why: why.to_string(),
        };
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| err("expected scheme://user@host"))?;
        let (protocol, security, port) = match scheme.to_ascii_lowercase().as_str() {
            "pop3" => (Protocol::Pop3, Security::StartTls, 110),
            "pop3s" => (Protocol::Pop3, Security::Implicit, 995),
            "imap" => (Protocol::Imap, Security::StartTls, 143),
            "imaps" => (Protocol::Imap, Security::Implicit, 993),
            _ => return Err(err("the scheme must be pop3, pop3s, imap or imaps")),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
        if user.is_empty() && authority.contains('@') {
            return Err(err("empty user"));
        }
        if user.contains(':') {
            return Err(err(
                "a password does not go in the URL: use --password-command or MXA_PASSWORD",
            ));
        }
        let user = decode(user).ok_or_else(|| err("bad %-escape in the user"))?;
        let (host, port) = split_host_port(hostport, port).map_err(|w| err(&w))?;
        let folder = match (protocol, path) {
            (_, "") => None,
            (Protocol::Pop3, _) => return Err(err("a POP3 URL has no folder")),
            (Protocol::Imap, p) => {
                Some(decode(p).ok_or_else(|| err("bad %-escape in the folder"))?)
            }
        };
        Ok(Url {
            protocol,
            security,
            user,
            host,
            port,
            folder,
        })
    }

    /// The scheme's name, as in the URL (`imaps`).
    pub fn scheme(&self) -> &'static str {
        match (self.protocol, self.security) {
            (Protocol::Pop3, Security::StartTls) => "pop3",
            (Protocol::Pop3, Security::Implicit) => "pop3s",
            (Protocol::Imap, Security::StartTls) => "imap",
            (Protocol::Imap, Security::Implicit) => "imaps",
        }
    }

    /// A name for the state of this login at this server, safe as a file
    /// name: `pop3s-user@host-995` with anything but letters, digits and
    /// `@.-_+` written as `%XX`.
    pub fn state_key(&self) -> String {
        let proto = match self.protocol {
            Protocol::Pop3 => "pop3",
            Protocol::Imap => "imap",
        };
        encode(&format!(
            "{proto}-{}@{}-{}",
            self.user, self.host, self.port
        ))
    }
}

impl fmt::Display for Url {
    /// The URL without any password, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "{}://{}@{host}:{}",
            self.scheme(),
            encode(&self.user),
            self.port
        )?;
        if let Some(folder) = &self.folder {
            write!(f, "/{}", encode(folder))?;
        }
        Ok(())
    }
}

fn split_host_port(s: &str, default: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ]")?;
        match after {
            "" => (h, None),
            a => (
                h,
                Some(a.strip_prefix(':').ok_or("expected :PORT after ]")?),
            ),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        None => default,
        Some(p) => p
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("bad port {p:?}"))?,
    };
    Ok((host.to_string(), port))
}

/// RFC 3986 §2.1 percent-decoding; None for a bad escape or non-UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A file name for `s` (a folder name): [`encode`]d, and never `.` or `..`.
pub fn file_name(s: &str) -> String {
    match encode(s) {
        e if e.starts_with('.') => format!("%2E{}", &e[1..]),
        e => e,
    }
}

/// Percent-encodes all but letters, digits and `@.-_+`.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"@.-_+".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_ports_users_folders() {
        let u = Url::parse("imaps://me%40example.org@imap.example.net/INBOX").expect("url");
        assert_eq!(u.protocol, Protocol::Imap);
        assert_eq!(u.security, Security::Implicit);
        assert_eq!(u.user, "me@example.org");
        assert_eq!(u.host, "imap.example.net");
        assert_eq!(u.port, 993);
        assert_eq!(u.folder.as_deref(), Some("INBOX"));
        let u = Url::parse("pop3://me@example.org@127.0.0.1:1110").expect("url");
        assert_eq!(
            (u.protocol, u.security),
            (Protocol::Pop3, Security::StartTls)
        );
        assert_eq!(
            (u.user.as_str(), u.host.as_str(), u.port),
            ("me@example.org", "127.0.0.1", 1110)
        );
        assert_eq!(u.state_key(), "pop3-me@example.org@127.0.0.1-1110");
        assert_eq!(u.to_string(), "pop3://me@example.org@127.0.0.1:1110");
        let u = Url::parse("imap://u@[::1]:1143/Lists%2Frust").expect("url");
        assert_eq!((u.host.as_str(), u.port), ("::1", 1143));
        assert_eq!(u.folder.as_deref(), Some("Lists/rust"));
        assert_eq!(u.state_key(), "imap-u@%3A%3A1-1143");
        assert_eq!(Url::parse("pop3s://u@h").expect("url").port, 995);
        assert_eq!(Url::parse("imap://u@h").expect("url").port, 143);
        let u = Url::parse("imaps://h/INBOX").expect("url without a user");
        assert_eq!((u.user.as_str(), u.host.as_str()), ("", "h"));
    }

    #[test]
    fn refusals() {
        for bad in [
            "http://u@h",
            "pop3://@h",
            "pop3://u:pw@h",
            "pop3://u@h/INBOX",
            "imap://u@h:0",
            "imap://u@h:x",
            "imap://u@",
            "imap://u%4@h",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
