//! mxa-deliver's flags (DESIGN.md): `[-c FILE] [-f SENDER] [-a RECIPIENT]
//! [-m FOLDER] [-n] [-v] [--filter CMD] [MAILDIR]`, values attached
//! (`-fme@x`) or in the next word, as getopt(3) takes them.

use std::path::PathBuf;

/// The parsed command line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    /// `-c FILE`.
    pub config: Option<PathBuf>,
    /// `-f SENDER` (empty or `<>`: the null sender).
    pub sender: Option<String>,
    /// `-a RECIPIENT`.
    pub recipient: Option<String>,
    /// `-m FOLDER`: deliver into this Maildir++ folder, created on demand.
    pub folder: Option<String>,
    /// `-n`: do not read `.forward`.
    pub no_forward: bool,
    /// `-v`: print the path of each file written.
    pub verbose: bool,
    /// `--filter CMD`.
    pub filter: Option<String>,
    /// The Maildir operand.
    pub maildir: Option<PathBuf>,
    /// `-h`/`--help`.
    pub help: bool,
}

/// The usage line.
pub const USAGE: &str = "usage: mxa-deliver [-c FILE] [-f SENDER] [-a RECIPIENT] [-m FOLDER] [-n] [-v] [--filter CMD] [MAILDIR]";

/// Parses the words after the program name.
pub fn parse(words: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut i = 0;
    let mut operands = Vec::new();
    while i < words.len() {
        let w = &words[i];
        i += 1;
        if w == "--" {
            operands.extend(words[i..].iter().cloned());
            break;
        }
        if w == "--filter" || w.starts_with("--filter=") {
            let v = match w.strip_prefix("--filter=") {
                Some(v) => v.to_string(),
                None => next(words, &mut i, w)?,
            };
            a.filter = Some(v);
            continue;
        }
        if w == "--help" || w == "-h" {
            a.help = true;
            continue;
        }
        if !w.starts_with('-') || w == "-" {
            operands.push(w.clone());
            continue;
        }
        let (flag, rest) = (&w[1..2], &w[2..]);
        match flag {
            "n" | "v" if rest.is_empty() => {
                if flag == "n" {
                    a.no_forward = true
                } else {
                    a.verbose = true
                }
            }
            "c" | "f" | "a" | "m" => {
                let v = if rest.is_empty() {
                    next(words, &mut i, w)?
                } else {
                    rest.to_string()
                };
                match flag {
                    "c" => a.config = Some(PathBuf::from(v)),
                    "f" => a.sender = Some(v),
                    "a" => a.recipient = Some(v),
                    _ => a.folder = Some(v),
                }
            }
            _ => return Err(format!("{w}: unknown flag\n{USAGE}")),
        }
    }
    match operands.as_slice() {
        [] => {}
        [m] => a.maildir = Some(PathBuf::from(m)),
        _ => return Err(format!("one MAILDIR at most\n{USAGE}")),
    }
    Ok(a)
}

fn next(words: &[String], i: &mut usize, flag: &str) -> Result<String, String> {
    let v = words
        .get(*i)
        .cloned()
        .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
    *i += 1;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Result<Args, String> {
        parse(&s.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    // The invocations Postfix's examples use (mailbox_command, pipe(8)).
    #[test]
    fn postfix_invocations() {
        let a = p(&["-f", "", "-a", "bob@example.org", "-n"]).expect("parse");
        assert_eq!(a.sender.as_deref(), Some(""));
        assert_eq!(a.recipient.as_deref(), Some("bob@example.org"));
        assert!(a.no_forward);
        let a = p(&["-fme@x", "-mLists/rust", "-v", "/home/bob/Maildir"]).expect("parse");
        assert_eq!(a.sender.as_deref(), Some("me@x"));
        assert_eq!(a.folder.as_deref(), Some("Lists/rust"));
        assert_eq!(a.maildir, Some(PathBuf::from("/home/bob/Maildir")));
        let a = p(&["--filter", "spamc -x", "--", "-odd"]).expect("parse");
        assert_eq!(a.filter.as_deref(), Some("spamc -x"));
        assert_eq!(a.maildir, Some(PathBuf::from("-odd")));
    }

    #[test]
    fn refusals() {
        assert!(p(&["-f"]).is_err());
        assert!(p(&["-x"]).is_err());
        assert!(p(&["a", "b"]).is_err());
    }
}
