//! What a caller hands us, made ready to look up: an address literal
//! (RFC 5321 §4.1.3) or a domain in A-labels (RFC 5890 §2.3.2.1, converted
//! as RFC 5891 §4 asks, by the UTS #46 mapping that browsers and mail
//! programs share).

use std::net::{IpAddr, Ipv6Addr};

use crate::DnsError;

/// A destination, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An address literal or a bare IP address: no DNS needed.
    Literal(IpAddr),
    /// A domain in A-labels, lower case, without the trailing dot.
    Domain(String),
}

/// Parses `input`: `[192.0.2.1]`, `[IPv6:2001:db8::1]` (the tag in any
/// case; `[2001:db8::1]` is accepted too, as relayhost settings write it),
/// a bare IP address (never a real domain: no top-level domain is all
/// digits, RFC 3696 §2), or a domain, possibly in U-labels and with one
/// trailing dot.
pub(crate) fn parse(input: &str) -> Result<Target, DnsError> {
    let bad = || DnsError::BadName(input.to_string());
    let text = input.trim();
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(bad)?;
        return literal(inner).map(Target::Literal).ok_or_else(bad);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Target::Literal(ip));
    }
    a_labels(text).map(Target::Domain).ok_or_else(bad)
}

/// The inside of an address literal's brackets.
fn literal(inner: &str) -> Option<IpAddr> {
    // "IPv6:" is a Standardized-tag; ABNF literals match in any case.
    let tagged = inner
        .get(..5)
        .filter(|tag| tag.eq_ignore_ascii_case("IPv6:"))
        .map(|_| &inner[5..]);
    match tagged {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => inner.parse::<IpAddr>().ok(),
    }
}

/// A domain as A-labels, or None when it is not a host name: UTS #46
/// processing with the STD3 rules (letters, digits, hyphens only) and DNS
/// lengths checked (63 octets a label, 253 in all), which is
/// `domain_to_ascii_strict`.
fn a_labels(domain: &str) -> Option<String> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || domain.starts_with('.') || domain.contains("..") {
        return None;
    }
    let ascii = idna::domain_to_ascii_strict(domain).ok()?;
    // UTS #46 maps a few characters (such as U+3002, the ideographic full
    // stop) to label separators: check the result, not only the input.
    let labels_ok = ascii.split('.').all(|label| !label.is_empty());
    (labels_ok && !ascii.is_empty()).then_some(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(s: &str) -> Target {
        Target::Domain(s.to_string())
    }

    fn ip(s: &str) -> Target {
        Target::Literal(s.parse().expect("test address"))
    }

    // RFC 5321 §4.1.3 address literals, and the bare forms we also take.
    #[test]
    fn literals() {
        let table = [
            ("[192.0.2.1]", ip("192.0.2.1")),
            ("[IPv6:2001:db8::1]", ip("2001:db8::1")),
            ("[ipv6:2001:DB8::1]", ip("2001:db8::1")),
            ("[IPV6:::ffff:192.0.2.1]", ip("::ffff:192.0.2.1")),
            ("[2001:db8::1]", ip("2001:db8::1")),
            ("192.0.2.7", ip("192.0.2.7")),
            ("::1", ip("::1")),
            (" [192.0.2.1] ", ip("192.0.2.1")),
        ];
        for (input, want) in table {
            assert_eq!(parse(input).ok(), Some(want), "{input}");
        }
    }

    #[test]
    fn bad_literals() {
        for input in [
            "[192.0.2.1",
            "[192.0.2.256]",
            "[IPv6:192.0.2.1]",
            "[IPv6:]",
            "[]",
            "[x-tag:whatever]",
            "[example.org]",
        ] {
            assert!(
                matches!(parse(input), Err(DnsError::BadName(ref s)) if s == input),
                "{input}"
            );
        }
    }

    // RFC 5890 §2.3.2.1 A-labels; RFC 5891 §4 conversion (UTS #46 mapping:
    // case folded, full-width and ideographic stops mapped).
    #[test]
    fn domains() {
        let table = [
            ("example.org", "example.org"),
            ("Example.ORG.", "example.org"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("BÜCHER.example", "xn--bcher-kva.example"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
            ("例え。テスト", "xn--r8jz45g.xn--zckzah"),
            ("localhost", "localhost"),
            ("mx-1.example", "mx-1.example"),
        ];
        for (input, want) in table {
            assert_eq!(parse(input).ok(), Some(domain(want)), "{input}");
        }
    }

    #[test]
    fn bad_domains() {
        let long_label = format!("{}.example", "a".repeat(64));
        let long_name = format!("{}example", "abcdefghi.".repeat(25));
        for input in [
            "",
            ".",
            "..",
            ".example.org",
            "example..org",
            "under_score.example",
            "space here.example",
            "user@example.org",
            "-leading.example",
            "trailing-.example",
            "xn--a.example",
            &long_label,
            &long_name,
        ] {
            assert!(
                matches!(parse(input), Err(DnsError::BadName(_))),
                "{input:?} parsed as {:?}",
                parse(input)
            );
        }
    }
}
