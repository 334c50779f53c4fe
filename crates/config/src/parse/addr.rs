//! Addresses as written in mxa.toml: listeners, hosts, domains,
//! the relayhost, routes, name servers and fetch URLs. Each parser's `Err`
//! is the message: what was expected, and what was found.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::Relayhost;

/// Checks a domain name and lower-cases it: dot-separated labels of
/// letters, digits, `-` and `_`, 1 to 63 characters each, at most 253 in all.
pub(crate) fn check_domain(s: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "expected a domain name such as \"example.org\", found {s:?} ({why})"
        ))
    };
    if s.is_empty() {
        return bad("empty");
    }
    if s.contains('@') {
        return bad("a domain has no @");
    }
    if s.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return bad("a blank or a control character");
    }
    if s.len() > 253 {
        return bad("longer than 253 characters");
    }
    for label in s.split('.') {
        if label.is_empty() {
            return bad("an empty label");
        }
        if label.len() > 63 {
            return bad("a label longer than 63 characters");
        }
        if !label
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            return bad("only letters, digits, - and _ between dots");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with -");
        }
    }
    Ok(s.to_lowercase())
}

/// Checks a host: an IP address or a domain name (lower-cased).
fn check_host(s: &str) -> Result<String, String> {
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(ip.to_string()),
        Err(_) => check_domain(s),
    }
}

/// A port, 1 to 65535.
fn port(s: &str, whole: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "expected a port from 1 to 65535 after the last :, found {s:?} in {whole:?}"
        )),
    }
}

/// Splits `[host]:port`, `[host]`, `host:port`, `host` into the host, the
/// port if given, and whether brackets were used. A bare IPv6 address is a
/// host without a port.
fn split_host_port(s: &str) -> Result<(&str, Option<u16>, bool), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("expected ] after [{rest}"));
        };
        let p = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(port(p, s)?),
                None => {
                    return Err(format!(
                        "expected :PORT or nothing after ], found {after:?}"
                    ));
                }
            },
        };
        // Postfix writes an IPv6 relayhost as [ipv6:2001:db8::1].
        let host = host
            .strip_prefix("ipv6:")
            .or_else(|| host.strip_prefix("IPv6:"))
            .unwrap_or(host);
        return Ok((host, p, true));
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok((s, None, false));
    }
    match s.split_once(':') {
        Some((host, p)) => Ok((host, Some(port(p, s)?), false)),
        None => Ok((s, None, false)),
    }
}

/// `relayhost`, as Postfix writes it: `[host]:port`, `[host]`,
/// `host:port`, `host`. Brackets, or an IP address, turn MX lookups off.
pub(crate) fn parse_relayhost(s: &str) -> Result<Relayhost, String> {
    let expected = "expected \"[host]:port\", \"[host]\", \"host:port\" or \"host\"";
    let (host, p, brackets) = split_host_port(s).map_err(|m| format!("{expected}: {m}"))?;
    let host = check_host(host).map_err(|m| format!("{expected}: {m}"))?;
    let is_ip = host.parse::<IpAddr>().is_ok();
    Ok(Relayhost {
        host,
        port: p.unwrap_or(25),
        mx_lookup: !brackets && !is_ip,
    })
}

/// A route's value: `host:port`, `[v6]:port` (`host` alone: `default_port`).
pub(crate) fn parse_route(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let expected = "expected \"host:port\" or \"[IPv6]:port\"";
    let (host, p, _) = split_host_port(s).map_err(|m| format!("{expected}: {m}"))?;
    let host = check_host(host).map_err(|m| format!("{expected}: {m}"))?;
    Ok((host, p.unwrap_or(default_port)))
}

/// A listener: `"[::]:25"`, `"127.0.0.1:2525"`.
pub(crate) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!(
            "expected an address and port such as \"[::]:25\" or \"127.0.0.1:2525\", found {s:?}"
        )
    })
}

/// A name server: `"IP"`, `"IP:PORT"`, `"[IPv6]:PORT"`; port 53 by default.
pub(crate) fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    let bad = || {
        format!(
            "expected \"IP\" or \"IP:PORT\" such as \"192.0.2.53\" or \"[2001:db8::53]:53\", found {s:?}"
        )
    };
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    if let Some(ip) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return ip
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, 53))
            .map_err(|_| bad());
    }
    match s.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(a),
        _ => Err(bad()),
    }
}

/// What a fetch URL says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FetchUrl {
    /// `imap` or `imaps` (else POP3).
    pub(crate) imap: bool,
}

/// Checks a `[[fetch]] url`: scheme pop3, pop3s, imap or imaps, an optional
/// user, a host, an optional port, and for IMAP an optional folder.
pub(crate) fn check_fetch_url(s: &str) -> Result<FetchUrl, String> {
    let expected = "expected a URL such as \"imaps://me@imap.example.net/INBOX\" or \"pop3s://me@pop.example.net\"";
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!("{expected}, found {s:?}"));
    };
    let imap = match scheme.to_ascii_lowercase().as_str() {
        "pop3" | "pop3s" => false,
        "imap" | "imaps" => true,
        _ => {
            return Err(format!(
                "expected a URL with scheme pop3, pop3s, imap or imaps, found {scheme:?} in {s:?}"
            ));
        }
    };
    if s.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{expected}, found {s:?} (a blank or a control character)"
        ));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hostport = match authority.rsplit_once('@') {
        Some(("", _)) => return Err(format!("{expected}, found {s:?} (empty user)")),
        Some((user, _)) if user.contains(':') => {
            return Err("a password does not go in the URL: use password_command".to_string());
        }
        Some((_, hp)) => hp,
        None => authority,
    };
    let (host, _, _) = split_host_port(hostport).map_err(|m| format!("{expected}: {m}"))?;
    if host.is_empty() {
        return Err(format!("{expected}, found {s:?} (no host)"));
    }
    check_host(host).map_err(|m| format!("{expected}: {m}"))?;
    if !imap && !path.is_empty() {
        return Err(format!("a {scheme} URL has no folder, found {s:?}"));
    }
    Ok(FetchUrl { imap })
}

impl fmt::Display for Relayhost {
    /// Postfix's syntax again: `[host]:port` or `host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mx_lookup {
            write!(f, "{}:{}", self.host, self.port)
        } else {
            write!(f, "[{}]:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rh(host: &str, port: u16, mx_lookup: bool) -> Relayhost {
        Relayhost {
            host: host.into(),
            port,
            mx_lookup,
        }
    }

    #[test]
    fn domains() {
        for (s, want) in [
            ("example.org", "example.org"),
            ("Mx.Example.ORG", "mx.example.org"),
            ("localhost", "localhost"),
            ("xn--bcher-kva.de", "xn--bcher-kva.de"),
            ("Bücher.de", "bücher.de"),
            ("_dmarc.a-b.c", "_dmarc.a-b.c"),
        ] {
            assert_eq!(check_domain(s).as_deref(), Ok(want), "{s}");
        }
        for s in [
            "",
            "a b.org",
            "me@example.org",
            "example.org.",
            ".org",
            "a..b",
            "-a.org",
            "a-.org",
            "a/b",
            "[192.0.2.1]",
            &"a".repeat(64),
            &"a.".repeat(127),
        ] {
            let e = check_domain(s).expect_err(s);
            assert!(e.starts_with("expected a domain name"), "{s}: {e}");
        }
    }

    #[test]
    fn relayhosts() {
        let ok = [
            ("[smtp.example.net]:587", rh("smtp.example.net", 587, false)),
            ("[smtp.example.net]", rh("smtp.example.net", 25, false)),
            ("smtp.example.net:2525", rh("smtp.example.net", 2525, true)),
            ("Example.NET", rh("example.net", 25, true)),
            ("[192.0.2.1]:465", rh("192.0.2.1", 465, false)),
            ("192.0.2.1", rh("192.0.2.1", 25, false)),
            ("192.0.2.1:26", rh("192.0.2.1", 26, false)),
            ("[2001:db8::1]:587", rh("2001:db8::1", 587, false)),
            ("[ipv6:2001:db8::1]", rh("2001:db8::1", 25, false)),
            ("2001:db8::1", rh("2001:db8::1", 25, false)),
        ];
        for (s, want) in ok {
            let got = parse_relayhost(s).expect(s);
            assert_eq!(got, want, "{s}");
            assert_eq!(
                parse_relayhost(&got.to_string()),
                Ok(want),
                "display of {s}"
            );
        }
        for s in [
            "[smtp.example.net",
            "[h]x",
            "[h]:0",
            "h:99999",
            "h:",
            "h:x",
            "a b",
            "[]:25",
            ":25",
            "me@h",
        ] {
            let e = parse_relayhost(s).expect_err(s);
            assert!(e.starts_with("expected \"[host]:port\""), "{s}: {e}");
        }
    }

    #[test]
    fn routes() {
        let ok = [
            ("mx.example.net:2525", 25, ("mx.example.net", 2525)),
            ("[2001:db8::1]:26", 25, ("2001:db8::1", 26)),
            ("[mx.example.net]:27", 25, ("mx.example.net", 27)),
            ("127.0.0.1:2526", 25, ("127.0.0.1", 2526)),
            ("mx.example.net", 2500, ("mx.example.net", 2500)),
        ];
        for (s, dflt, (h, p)) in ok {
            assert_eq!(parse_route(s, dflt), Ok((h.to_string(), p)), "{s}");
        }
        for s in ["mx:0", "mx:", "a b:25", "[::1", ""] {
            assert!(parse_route(s, 25).is_err(), "{s}");
        }
    }

    #[test]
    fn listeners_and_nameservers() {
        for (s, want) in [
            ("[::]:25", "[::]:25"),
            ("127.0.0.1:2525", "127.0.0.1:2525"),
            ("0.0.0.0:0", "0.0.0.0:0"),
        ] {
            assert_eq!(parse_listen(s).map(|a| a.to_string()).as_deref(), Ok(want));
        }
        for s in [":25", "*:25", "25", "[::]", "localhost:25", "127.0.0.1", ""] {
            assert!(parse_listen(s).expect_err(s).contains("\"[::]:25\""), "{s}");
        }
        let ok = [
            ("192.0.2.53", "192.0.2.53:53"),
            ("192.0.2.53:5353", "192.0.2.53:5353"),
            ("2001:db8::53", "[2001:db8::53]:53"),
            ("[2001:db8::53]", "[2001:db8::53]:53"),
            ("[2001:db8::53]:5353", "[2001:db8::53]:5353"),
        ];
        for (s, want) in ok {
            assert_eq!(
                parse_nameserver(s).map(|a| a.to_string()).as_deref(),
                Ok(want),
                "{s}"
            );
        }
        for s in [
            "ns.example.net",
            "192.0.2.53:0",
            "192.0.2.53:x",
            "[2001:db8::53",
            "",
        ] {
            assert!(
                parse_nameserver(s)
                    .expect_err(s)
                    .starts_with("expected \"IP\""),
                "{s}"
            );
        }
    }

    #[test]
    fn fetch_urls() {
        let ok = [
            ("imaps://me@imap.example.net/INBOX", true),
            ("imap://imap.example.net", true),
            ("IMAPS://me@example.org@imap.example.net:993/", true),
            ("pop3s://me@pop.example.net", false),
            ("pop3://pop.example.net:110", false),
            ("pop3://pop.example.net/", false),
            ("imaps://[2001:db8::1]:993/Lists/rust", true),
            ("pop3s://192.0.2.1", false),
        ];
        for (s, imap) in ok {
            assert_eq!(check_fetch_url(s), Ok(FetchUrl { imap }), "{s}");
        }
        let bad = [
            (
                "https://example.net",
                "scheme pop3, pop3s, imap or imaps, found \"https\"",
            ),
            ("imap.example.net", "expected a URL"),
            ("imaps://", "no host"),
            ("imaps://me@", "no host"),
            ("imaps://@host", "empty user"),
            ("imaps://me:secret@host", "password_command"),
            ("pop3s://me@host/INBOX", "has no folder"),
            ("imaps://host:0", "port"),
            ("imaps://ho st", "blank"),
            ("imaps://bad_host!", "domain name"),
        ];
        for (s, msg) in bad {
            let e = check_fetch_url(s).expect_err(s);
            assert!(e.contains(msg), "{s}: {e}");
        }
    }
}
