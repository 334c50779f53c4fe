//! Errors of the toml crate (syntax, unknown key, wrong type), turned into a
//! [`ConfigError`] with the line, the dotted key and a plain message.

use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::ctx::line_of;
use crate::ConfigError;

/// The error `e` of parsing `text`, read from `file`.
pub(crate) fn toml_error(text: &str, file: &Path, e: &toml::de::Error) -> ConfigError {
    let at = e.span().map_or(0, |s| s.start);
    let line = if e.span().is_some() {
        line_of(text, at)
    } else {
        0
    };
    // The document parses: the error is about a key or a value, which the
    // parsed tree places exactly. Otherwise it is a syntax error.
    let (mut key, msg) = match DeTable::parse(text) {
        Ok(doc) => {
            let key = find(doc.get_ref(), "", at).unwrap_or_else(|| text_key(text, line));
            let mut msg = plain(e.message());
            if key == "fetch" {
                msg = msg.replace(
                    "a list such as [\"a\", \"b\"]",
                    "[[fetch]] tables, one per account",
                );
            }
            (key, msg)
        }
        Err(_) => (
            text_key(text, line),
            format!("TOML syntax: {}", e.message()),
        ),
    };
    if let Some(field) = e
        .message()
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        key = join(&key, field);
    }
    ConfigError {
        file: file.to_path_buf(),
        line,
        key,
        msg,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn contains(span: std::ops::Range<usize>, at: usize) -> bool {
    span.contains(&at) || (span.is_empty() && span.start == at)
}

/// The dotted key, in `table` at `path`, whose key or value holds `at`.
fn find(table: &DeTable<'_>, path: &str, at: usize) -> Option<String> {
    table.iter().find_map(|(k, v)| {
        let kp = join(path, k.get_ref());
        if contains(k.span(), at) {
            Some(kp)
        } else {
            find_value(v, &kp, at)
        }
    })
}

fn find_value(v: &toml::Spanned<DeValue<'_>>, kp: &str, at: usize) -> Option<String> {
    let inner = match v.get_ref() {
        DeValue::Table(t) => find(t, kp, at),
        DeValue::Array(a) => a.iter().enumerate().find_map(|(i, e)| match e.get_ref() {
            DeValue::Table(_) => find_value(e, &format!("{kp}[{}]", i + 1), at),
            _ => find_value(e, kp, at),
        }),
        _ => None,
    };
    inner.or_else(|| contains(v.span(), at).then(|| kp.to_string()))
}

/// serde's words made plain: "unknown key; expected one of a, b", "expected
/// a string, found integer 3".
fn plain(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let expected = rest.split_once(", expected ").map_or("", |(_, e)| e);
        let names: Vec<&str> = expected
            .trim_start_matches("one of ")
            .split(", ")
            .flat_map(|s| s.split(" or "))
            .map(|s| s.trim_matches('`'))
            .filter(|s| !s.is_empty())
            .collect();
        return format!("unknown key; expected one of {}", names.join(", "));
    }
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return format!("missing: this table needs {field}");
    }
    for p in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = msg
            .strip_prefix(p)
            .and_then(|r| r.split_once(", expected "))
        {
            return format!(
                "expected {}, found {}",
                words(expected),
                words(found).replace('`', "")
            );
        }
    }
    msg.to_string()
}

fn words(s: &str) -> String {
    match s {
        "a sequence" => "a list such as [\"a\", \"b\"]".into(),
        "sequence" => "a list".into(),
        "map" | "a map" => "a table".into(),
        "a boolean" => "true or false".into(),
        s if s.starts_with("struct Raw") => "a table".into(),
        s => s.to_string(),
    }
}

/// A key guessed from the text: the key on `line` in the section of the
/// nearest `[section]` or `[[fetch]]` header above it.
pub(crate) fn text_key(text: &str, line: usize) -> String {
    let mut section = String::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut current = "";
    for (i, l) in text.lines().enumerate().take(line.max(1)) {
        current = l;
        if let Some((name, array)) = header(l) {
            section = if array {
                let n = match counts.iter_mut().find(|(s, _)| *s == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        counts.push((name.clone(), 1));
                        1
                    }
                };
                format!("{name}[{n}]")
            } else {
                name
            };
            if i + 1 == line {
                return section;
            }
        }
    }
    match key_on(current) {
        Some(k) => join(&section, &k),
        None if section.is_empty() => "toml".to_string(),
        None => section,
    }
}

/// `[name]` → `(name, false)`; `[[name]]` → `(name, true)`.
fn header(l: &str) -> Option<(String, bool)> {
    let t = l.trim_start();
    let (inner, array) = match t.strip_prefix("[[") {
        Some(r) => (r.split_once("]]")?.0, true),
        None => (t.strip_prefix('[')?.split_once(']')?.0, false),
    };
    let name: Vec<&str> = inner
        .split('.')
        .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\''))
        .collect();
    let name = name.join(".");
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "_-.".contains(c));
    ok.then_some((name, array))
}

/// The key a line starts with: the text before `=`, or its first word.
fn key_on(l: &str) -> Option<String> {
    let t = l.trim();
    let head = t
        .split_once('=')
        .map_or_else(|| t.split_whitespace().next().unwrap_or(""), |(k, _)| k);
    let parts: Vec<&str> = head
        .split('.')
        .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\''))
        .collect();
    let key = parts.join(".");
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || "_-.".contains(c));
    ok.then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_text() {
        let text = "a = 1\n[smtpd]\ntimeout = 5m\n\n[[fetch]]\nname = \"x\"\n[[fetch]]\n  url = 3\n[queue.routes]\n\"example.org\" = 1\njunk\n";
        let cases = [
            (1, "a"),
            (2, "smtpd"),
            (3, "smtpd.timeout"),
            (4, "smtpd"),
            (5, "fetch[1]"),
            (6, "fetch[1].name"),
            (7, "fetch[2]"),
            (8, "fetch[2].url"),
            (10, "queue.routes.example.org"),
            (11, "queue.routes.junk"),
        ];
        for (line, key) in cases {
            assert_eq!(text_key(text, line), key, "line {line}");
        }
        assert_eq!(text_key("= 3\n", 1), "toml");
        assert_eq!(text_key("[smtpd]\n= 3\n", 2), "smtpd");
    }

    #[test]
    fn plain_words() {
        let cases = [
            (
                "unknown field `x`, expected one of `a`, `b`, `c`",
                "unknown key; expected one of a, b, c",
            ),
            (
                "unknown field `x`, expected `a` or `b`",
                "unknown key; expected one of a, b",
            ),
            (
                "invalid type: string \"x\", expected a sequence",
                "expected a list such as [\"a\", \"b\"], found string \"x\"",
            ),
            (
                "invalid type: integer `3`, expected struct RawSmtpd",
                "expected a table, found integer 3",
            ),
            (
                "invalid type: map, expected a sequence",
                "expected a list such as [\"a\", \"b\"], found a table",
            ),
            ("missing field `name`", "missing: this table needs name"),
            ("something else", "something else"),
        ];
        for (m, want) in cases {
            assert_eq!(plain(m), want);
        }
    }
}
