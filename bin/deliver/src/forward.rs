//! `.forward` (sendmail's and Postfix local(8)'s rules): one or more
//! targets per line, separated by commas or blanks; `#` comment lines; a
//! line starting with a blank continues the one before. Targets:
//! `|command` (to the end of the line unless quoted), `/path/` (a Maildir),
//! `/path` (an mbox), `\user` (the recipient's own mailbox, not forwarded
//! again), anything else an address to forward to. A `.forward` that others
//! may write is ignored with a warning, as sendmail does.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One target of a `.forward`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Forward to this address.
    Address(String),
    /// Run this command (through `sh -c`, as sendmail does) with the message.
    Command(String),
    /// Deliver to this Maildir.
    Maildir(PathBuf),
    /// Append to this mbox.
    Mbox(PathBuf),
    /// The recipient's own mailbox.
    Own,
}

/// Reads `home/.forward` as the user `uid`. None: no usable file (absent,
/// empty, or refused with a warning on stderr).
pub fn read(home: &Path, uid: u32) -> Option<Vec<Target>> {
    let path = home.join(".forward");
    let meta = std::fs::symlink_metadata(&path).ok()?;
    let warn = |why: &str| {
        mxa_cli::log(
            "mxa-deliver",
            &[
                ("event", &"forward-ignored"),
                ("file", &path.display()),
                ("reason", &why),
            ],
        );
        None
    };
    if !meta.is_file() {
        return warn("not a regular file");
    }
    if meta.mode() & 0o022 != 0 {
        return warn("writable by group or others");
    }
    if meta.uid() != uid && meta.uid() != 0 {
        return warn("owned by another user");
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let targets = parse(&text);
    (!targets.is_empty()).then_some(targets)
}

/// Parses the text of a `.forward`.
pub fn parse(text: &str) -> Vec<Target> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        match lines.last_mut() {
            Some(prev) if line.starts_with([' ', '\t']) => {
                prev.push(' ');
                prev.push_str(line.trim());
            }
            _ => lines.push(line.trim().to_string()),
        }
    }
    lines
        .iter()
        .flat_map(|l| items(l))
        .filter_map(|i| target(&i))
        .collect()
}

/// Splits a line into items at commas and blanks, keeping quoted items and
/// an unquoted `|command` (which runs to the end of the line) whole.
fn items(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            out.push(q[..end].to_string());
            rest = q.get(end + 1..).unwrap_or("");
        } else if rest.starts_with('|') {
            out.push(rest.to_string());
            break;
        } else {
            let end = rest.find([',', ' ', '\t']).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

fn target(item: &str) -> Option<Target> {
    let item = item.trim();
    Some(match item.chars().next()? {
        '|' => Target::Command(item[1..].trim().to_string()),
        '\\' => Target::Own,
        '/' if item.ends_with('/') => Target::Maildir(PathBuf::from(item)),
        '/' => Target::Mbox(PathBuf::from(item)),
        _ => Target::Address(
            item.trim_start_matches('<')
                .trim_end_matches('>')
                .to_string(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Target::*;

    #[test]
    fn every_kind_of_line() {
        let text = "# keep a copy\n\\bob, alice@example.net\n\"|/usr/bin/vacation -a bob bob\"\n|/usr/bin/procmail -f-\n/home/bob/Archive/\n/home/bob/mbox\ncarol@example.org,\n  dan@example.com\n";
        assert_eq!(
            parse(text),
            vec![
                Own,
                Address("alice@example.net".into()),
                Command("/usr/bin/vacation -a bob bob".into()),
                Command("/usr/bin/procmail -f-".into()),
                Maildir("/home/bob/Archive/".into()),
                Mbox("/home/bob/mbox".into()),
                Address("carol@example.org".into()),
                Address("dan@example.com".into()),
            ]
        );
        assert!(parse("# nothing\n\n").is_empty());
    }
}
