//! mxa-cli: the small things every mxa program's `main` shares: the
//! sysexits(3) codes ([`exit`]), finding a sibling program such as
//! `mxa-queue` ([`find_program`]), and the one-line `key=value` log format
//! of DESIGN.md ([`log`]).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::PathBuf;

/// sysexits(3) codes, as mail programs use them.
pub mod exit {
    /// Done.
    pub const OK: i32 = 0;
    /// Bad flags or operands, no recipient.
    pub const USAGE: i32 = 64;
    /// Malformed input data.
    pub const DATAERR: i32 = 65;
    /// An input (file, queue id) does not exist or cannot be read.
    pub const NOINPUT: i32 = 66;
    /// Unknown user.
    pub const NOUSER: i32 = 67;
    /// A service or mode not available.
    pub const UNAVAILABLE: i32 = 69;
    /// Internal error.
    pub const SOFTWARE: i32 = 70;
    /// Cannot create an output file.
    pub const CANTCREAT: i32 = 73;
    /// Input/output error.
    pub const IOERR: i32 = 74;
    /// Temporary failure: try again later.
    pub const TEMPFAIL: i32 = 75;
    /// Permission denied.
    pub const NOPERM: i32 = 77;
    /// Configuration error.
    pub const CONFIG: i32 = 78;
}

/// Finds program `name`: first beside the running executable (so a build
/// tree or an install prefix uses its own programs), then on `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| is_executable(p));
    beside.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    })
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Formats one log line: `program: key=value key=value`, values quoted
/// when they hold spaces, quotes or control characters, so that every line
/// splits the same way with grep, awk or a log shipper.
pub fn log_line(program: &str, pairs: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut s = format!("{program}:");
    for (k, v) in pairs {
        let v = v.to_string();
        let plain = !v.is_empty()
            && !v
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=');
        if plain {
            let _ = write!(s, " {k}={v}");
        } else {
            let _ = write!(s, " {k}={}", quote(&v));
        }
    }
    s
}

/// Writes [`log_line`] to stderr.
pub fn log(program: &str, pairs: &[(&str, &dyn std::fmt::Display)]) {
    eprintln!("{}", log_line(program, pairs));
}

fn quote(v: &str) -> String {
    let mut q = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(q, "\\x{:02x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Splits a command line into words as a POSIX shell would (quotes and
/// backslashes), without running a shell: no variables, globs or pipes.
/// This is how DESIGN.md runs configured commands (`[queue] mda`,
/// `--filter`).
pub fn split_words(cmd: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(n) => cur.push(n),
                    None => cur.push('\\'),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                        None => return Err(format!("unterminated ' in {cmd:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        // Inside double quotes a backslash escapes only these.
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                            Some('\n') => {}
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err(format!("unterminated \" in {cmd:?}")),
                        },
                        Some(n) => cur.push(n),
                        None => return Err(format!("unterminated \" in {cmd:?}")),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// The program's arguments as strings, non-UTF-8 bytes replaced (no mail
/// address or flag of ours needs them).
pub fn args() -> Vec<String> {
    std::env::args_os()
        .skip(1)
        .map(|a| OsStr::to_string_lossy(&a).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_quote_what_needs_it() {
        let line = log_line(
            "mxa-x",
            &[
                ("event", &"queued"),
                ("id", &"01AB"),
                ("reply", &"451 4.7.1 \"later\""),
            ],
        );
        assert_eq!(
            line,
            r#"mxa-x: event=queued id=01AB reply="451 4.7.1 \"later\"""#
        );
        assert_eq!(log_line("p", &[("from", &"")]), r#"p: from="""#);
    }

    // POSIX.1-2017 XCU 2.2 (quoting).
    #[test]
    fn splits_like_a_shell() {
        let ok = |s: &str, want: &[&str]| assert_eq!(split_words(s).expect(s), want, "{s}");
        ok("procmail -d {user}", &["procmail", "-d", "{user}"]);
        ok(
            "  dovecot-lda   -f {sender} ",
            &["dovecot-lda", "-f", "{sender}"],
        );
        ok("a 'b c' \"d e\" f\\ g", &["a", "b c", "d e", "f g"]);
        ok("x'y'\"z\"", &["xyz"]);
        ok("\"a\\\"b\\\\c\\n\"", &["a\"b\\c\\n"]);
        ok("'' \"\"", &["", ""]);
        ok("", &[]);
        assert!(split_words("a 'b").is_err());
        assert!(split_words("a \"b").is_err());
    }

    #[test]
    fn finds_programs_on_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-mxa").is_none());
    }
}
