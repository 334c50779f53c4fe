//! [`IpNet`]: `trusted_networks` entries, parsed, shown and matched.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::IpNet;

impl IpNet {
    /// Whether `ip` is in the network. An IPv4-mapped IPv6 address
    /// (`::ffff:192.0.2.1`, as a `[::]` socket sees IPv4 clients) is
    /// matched as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    /// `"192.0.2.0/24"`, `"2001:db8::/32"`; a bare address is a /32 or /128.
    /// Host bits set (`"192.0.2.1/24"`) are an error.
    fn from_str(s: &str) -> Result<IpNet, String> {
        let expected =
            "expected a network such as \"192.0.2.0/24\", \"2001:db8::/32\" or an address";
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("{expected}, found {s:?}"))?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => {
                    return Err(format!(
                        "{expected}, found {s:?} (the prefix length is 0 to {max})"
                    ));
                }
            },
        };
        let net = IpNet { addr, prefix };
        let base = match addr {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        };
        if base != addr {
            return Err(format!(
                "{s:?} has host bits set: expected the network address, {base}/{prefix}"
            ));
        }
        Ok(net)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let ok = [
            ("127.0.0.0/8", "127.0.0.0/8"),
            ("192.0.2.1", "192.0.2.1/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::1/128", "::1/128"),
            ("::1", "::1/128"),
            ("2001:db8::/32", "2001:db8::/32"),
        ];
        for (s, want) in ok {
            assert_eq!(
                s.parse::<IpNet>().map(|n| n.to_string()).as_deref(),
                Ok(want),
                "{s}"
            );
        }
        let bad = [
            (
                "192.0.2.1/24",
                "has host bits set: expected the network address, 192.0.2.0/24",
            ),
            ("2001:db8::1/32", "2001:db8::/32"),
            ("10.0.0.0/33", "prefix length is 0 to 32"),
            ("::/129", "prefix length is 0 to 128"),
            ("10.0.0.0/", "prefix length"),
            ("10.0.0.0/+8", "prefix length"),
            ("10.0.0/8", "expected a network"),
            ("localhost", "expected a network"),
        ];
        for (s, msg) in bad {
            let e = s.parse::<IpNet>().expect_err(s);
            assert!(e.contains(msg), "{s}: {e}");
        }
        let net = |s: &str| s.parse::<IpNet>().expect(s);
        let ip = |s: &str| s.parse::<IpAddr>().expect(s);
        let cases = [
            ("127.0.0.0/8", "127.1.2.3", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("127.0.0.0/8", "::1", false),
            ("::1/128", "::1", true),
            ("::1/128", "127.0.0.1", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("::/0", "2001:db8::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
        ];
        for (n, a, want) in cases {
            assert_eq!(net(n).contains(ip(a)), want, "{a} in {n}");
        }
    }
}
