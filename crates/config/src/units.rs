//! Sizes (`35M`: bytes, or K, M, G as powers of 1024) and durations (`5m`:
//! a number with s, m, h or d), as written in mxa.toml and on command lines.

use std::time::Duration;

/// What a size looks like, for error messages.
pub(crate) const SIZE_EXPECTED: &str =
    "expected a size such as \"35M\" (bytes, or a number with K, M or G)";

/// What a duration looks like, for error messages.
pub(crate) const DURATION_EXPECTED: &str =
    "expected a duration such as \"5m\" (a number with s, m, h or d)";

/// Splits `"35M"` into `(Some(35), "M")`; the number is ASCII digits only,
/// `None` when it overflows.
fn split_number(s: &str) -> Option<(Option<u64>, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((s[..end].parse::<u64>().ok(), &s[end..]))
}

/// Parses a size: `"1000"` (bytes), `"64K"`, `"35M"`, `"2G"` (powers of
/// 1024; lower-case accepted). Surrounding blanks are ignored; anything else
/// (a sign, a fraction, a space inside, another unit, overflow) is refused
/// with a message saying what was expected.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("{SIZE_EXPECTED}, found {s:?}");
    let (n, unit) = split_number(t).ok_or_else(bad)?;
    let mult: u64 = match unit {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        _ => return Err(bad()),
    };
    n.and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses a duration: a whole number followed by `s`, `m`, `h` or `d`
/// (`"90s"`, `"5m"`, `"4h"`, `"5d"`). The unit is required.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("{DURATION_EXPECTED}, found {s:?}");
    let (n, unit) = split_number(t).ok_or_else(bad)?;
    let mult: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.and_then(|n| n.checked_mul(mult))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

/// Writes a duration in the largest unit that divides it exactly: `"5d"`,
/// `"4h"`, `"5m"`, `"90s"`; zero is `"0s"`. Fractions of a second are
/// dropped. The result reads back with [`parse_duration`].
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs.is_multiple_of(n) {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("1000", 1000),
            ("1K", 1024),
            ("64k", 65_536),
            ("35M", 35 * 1024 * 1024),
            ("35m", 35 * 1024 * 1024),
            ("2G", 2 << 30),
            ("1g", 1 << 30),
            (" 10M ", 10 << 20),
            ("17179869183G", 17_179_869_183 << 30),
        ];
        for (s, want) in ok {
            assert_eq!(parse_size(s), Ok(*want), "{s:?}");
        }
        for s in [
            "",
            " ",
            "M",
            "-1",
            "+1",
            "1.5M",
            "10 M",
            "10MB",
            "10KiB",
            "10T",
            "1e6",
            "abc",
            "0x10",
            "17179869184G",
            "99999999999999999999",
            "1_000",
        ] {
            let e = parse_size(s).expect_err(s);
            assert!(e.contains("size"), "{s:?}: {e}");
        }
        assert_eq!(
            parse_size("35 MB").expect_err("junk"),
            "expected a size such as \"35M\" (bytes, or a number with K, M or G), found \"35 MB\""
        );
    }

    #[test]
    fn durations() {
        let ok: &[(&str, u64)] = &[
            ("0s", 0),
            ("90s", 90),
            ("5m", 300),
            ("4h", 14_400),
            ("5d", 432_000),
            (" 1d", 86_400),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(*want)), "{s:?}");
        }
        for s in [
            "",
            "5",
            "m",
            "5 m",
            "5 minutes",
            "5min",
            "5M",
            "5H",
            "1w",
            "-5m",
            "1.5h",
            "h5",
            "999999999999999999d",
        ] {
            let e = parse_duration(s).expect_err(s);
            assert!(e.contains("duration"), "{s:?}: {e}");
        }
        assert_eq!(
            parse_duration("5 minutes").expect_err("junk"),
            "expected a duration such as \"5m\" (a number with s, m, h or d), found \"5 minutes\""
        );
    }

    #[test]
    fn formats() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1s"),
            (90, "90s"),
            (300, "5m"),
            (5400, "90m"),
            (14_400, "4h"),
            (90_000, "25h"),
            (432_000, "5d"),
            (86_401, "86401s"),
        ];
        for (secs, want) in cases {
            let d = Duration::from_secs(*secs);
            assert_eq!(format_duration(d), *want);
            assert_eq!(parse_duration(want), Ok(d), "round trip {want}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s");
    }
}
