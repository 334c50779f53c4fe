//! Checking one value: its type, its form, the line it is on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Spanned, Value};

use super::{L, V};
use crate::ConfigError;
use crate::units::{DURATION_EXPECTED, SIZE_EXPECTED, parse_duration, parse_size};

/// The file being checked.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    text: &'a str,
    file: &'a Path,
    dir: PathBuf,
}

/// How a value reads in a message: `"5 minutes"`, `300`, `a list`.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "a list".into(),
        Value::Table(_) => "a table".into(),
    }
}

/// The 1-based line of byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(text: &'a str, file: &'a Path) -> Ctx<'a> {
        Ctx {
            text,
            file,
            dir: crate::users::folder_of(file),
        }
    }

    /// An error about the value spanning `at`.
    pub(crate) fn err<T>(&self, at: &Spanned<T>, key: &str, msg: String) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: line_of(self.text, at.span().start),
            key: key.to_string(),
            msg,
        }
    }

    /// A string, any.
    pub(crate) fn string(&self, v: &V, key: &str) -> Result<String, ConfigError> {
        match v.get_ref() {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.err(
                v,
                key,
                format!("expected a string, found {}", describe(other)),
            )),
        }
    }

    /// A non-empty string; `what` is how it should look.
    pub(crate) fn nonempty(&self, v: &V, key: &str, what: &str) -> Result<String, ConfigError> {
        let s = self.string(v, key)?;
        if s.trim().is_empty() {
            return Err(self.err(v, key, format!("expected {what}, found {s:?}")));
        }
        Ok(s)
    }

    /// A non-empty string without blanks or control characters.
    pub(crate) fn word(&self, v: &V, key: &str, what: &str) -> Result<String, ConfigError> {
        let s = self.nonempty(v, key, what)?;
        if s.contains(|c: char| c.is_whitespace() || c.is_control() || c == '@') {
            return Err(self.err(
                v,
                key,
                format!("expected {what} (no blank, no @), found {s:?}"),
            ));
        }
        Ok(s)
    }

    /// A string checked and converted by `f`, whose `Err` is the message.
    pub(crate) fn check<T>(
        &self,
        v: &V,
        key: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let s = self.string(v, key)?;
        f(&s).map_err(|m| self.err(v, key, m))
    }

    /// Each string of a list, checked by `f`; errors carry the element's line.
    pub(crate) fn each<T>(
        &self,
        l: &L,
        key: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
        l.get_ref().iter().map(|v| self.check(v, key, &f)).collect()
    }

    /// A list of non-empty strings.
    pub(crate) fn strings(&self, l: &L, key: &str) -> Result<Vec<String>, ConfigError> {
        self.each(l, key, |s| {
            if s.is_empty() {
                Err("expected a non-empty string, found \"\"".into())
            } else {
                Ok(s.to_string())
            }
        })
    }

    /// A whole number from `min` to `max`.
    pub(crate) fn uint(&self, v: &V, key: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
        let what = if max == 65_535 {
            "a port"
        } else {
            "a whole number"
        };
        match v.get_ref() {
            Value::Integer(i) => match u64::try_from(*i) {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(self.err(
                    v,
                    key,
                    format!("expected {what} from {min} to {max}, found {i}"),
                )),
            },
            other => Err(self.err(
                v,
                key,
                format!(
                    "expected {what} from {min} to {max}, found {}",
                    describe(other)
                ),
            )),
        }
    }

    /// `true` or `false`.
    pub(crate) fn boolean(&self, v: &V, key: &str) -> Result<bool, ConfigError> {
        match v.get_ref() {
            Value::Boolean(b) => Ok(*b),
            other => Err(self.err(
                v,
                key,
                format!("expected true or false, found {}", describe(other)),
            )),
        }
    }

    /// A size above zero: a string such as `"35M"`, or an integer (bytes).
    pub(crate) fn size(&self, v: &V, key: &str) -> Result<u64, ConfigError> {
        let n = match v.get_ref() {
            Value::String(s) => parse_size(s).map_err(|m| self.err(v, key, m))?,
            Value::Integer(i) => u64::try_from(*i)
                .map_err(|_| self.err(v, key, format!("{SIZE_EXPECTED}, found {i}")))?,
            other => {
                return Err(self.err(
                    v,
                    key,
                    format!("{SIZE_EXPECTED}, found {}", describe(other)),
                ));
            }
        };
        if n == 0 {
            return Err(self.err(
                v,
                key,
                format!("expected a size above 0, found {}", describe(v.get_ref())),
            ));
        }
        Ok(n)
    }

    /// A duration above zero, as a string such as `"5m"`.
    pub(crate) fn duration(&self, v: &V, key: &str) -> Result<Duration, ConfigError> {
        let d = match v.get_ref() {
            Value::String(s) => parse_duration(s).map_err(|m| self.err(v, key, m))?,
            Value::Integer(i) => {
                let msg =
                    format!("{DURATION_EXPECTED}, found {i} (write it as a string: \"{i}s\")");
                return Err(self.err(v, key, msg));
            }
            other => {
                return Err(self.err(
                    v,
                    key,
                    format!("{DURATION_EXPECTED}, found {}", describe(other)),
                ));
            }
        };
        if d.is_zero() {
            return Err(self.err(
                v,
                key,
                format!(
                    "expected a duration above 0, found {}",
                    describe(v.get_ref())
                ),
            ));
        }
        Ok(d)
    }

    /// `p` made absolute against the config file's folder.
    pub(crate) fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// A folder path, which need not exist yet.
    pub(crate) fn folder(&self, v: &V, key: &str) -> Result<PathBuf, ConfigError> {
        let s = self.nonempty(v, key, "a folder path")?;
        Ok(self.resolve(&s))
    }

    /// A file that must exist; `""` is none.
    pub(crate) fn existing_file(&self, v: &V, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        let s = self.string(v, key)?;
        if s.is_empty() {
            return Ok(None);
        }
        let p = self.resolve(&s);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => Err(self.err(
                v,
                key,
                format!("{} is a folder, expected a file", p.display()),
            )),
            Ok(_) => Ok(Some(p)),
            Err(e) => Err(self.err(v, key, format!("{}: {}", super::io_msg(&e), p.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let t = "a\nbc\n\nd";
        let cases = [(0, 1), (1, 1), (2, 2), (4, 2), (5, 3), (6, 4), (99, 4)];
        for (off, line) in cases {
            assert_eq!(line_of(t, off), line, "offset {off}");
        }
    }

    #[test]
    fn describes() {
        assert_eq!(
            describe(&Value::String("5 minutes".into())),
            "\"5 minutes\""
        );
        assert_eq!(describe(&Value::Integer(-3)), "-3");
        assert_eq!(describe(&Value::Boolean(true)), "true");
        assert_eq!(describe(&Value::Array(vec![])), "a list");
        assert_eq!(describe(&Value::Table(toml::Table::new())), "a table");
    }
}
