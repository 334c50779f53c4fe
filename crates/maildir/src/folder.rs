//! Maildir++ folder names and the subscription files of IMAP servers.
//!
//! Maildir++ keeps every folder of a mailbox as a Maildir directly under its
//! root, named `.` followed by the folder's path with `.` between levels:
//! `Lists/rust` is `<root>/.Lists.rust`. Dovecot (LAYOUT=Maildir++, its
//! default) and Courier both store the name in modified UTF-7 (RFC 3501
//! §5.1.3), so `Entwürfe` is `.Entw&APw-rfe`.
//!
//! Dovecot's `subscriptions` file lists storage names (the same modified
//! UTF-7 names, `.` between levels) one per line; since Dovecot 2.3 a file
//! starting with the header `V<TAB>2<LF><LF>` puts a TAB between levels
//! instead. Courier's `courierimapsubscribed` lists `INBOX.<name>`. Both
//! servers rewrite the file under `<file>.lock` (created O_EXCL) and rename
//! it into place; we do the same, so neither loses the other's change.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use mxa_durable::{Durable, Publish};

use crate::{Error, io_err, lock};

/// Longest directory name (NAME_MAX on Linux and the BSDs).
const NAME_MAX: usize = 255;

/// How long to wait for another process's lock on a subscription file.
/// Dovecot holds it for the time of one rewrite (milliseconds); a lock
/// unchanged for `SUBSCRIPTIONS_STALE` is left by a dead process, the age
/// after which Dovecot breaks it too (SUBSCRIPTION_FILE_CHANGE_TIMEOUT).
const SUBSCRIPTIONS_WAIT: Duration = Duration::from_secs(10);
const SUBSCRIPTIONS_STALE: Duration = Duration::from_secs(30);

/// Dovecot's header of a version 2 subscription file.
const DOVECOT_V2_HEADER: &[u8] = b"V\t2\n\n";

/// A valid folder name, split into levels, each in modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FolderName {
    levels: Vec<String>,
}

impl FolderName {
    /// Checks and splits `name` (`/` or `.` between levels). `Ok(None)` is
    /// INBOX, in any case: the top-level Maildir itself, as in IMAP.
    pub(crate) fn parse(name: &str) -> Result<Option<FolderName>, Error> {
        let bad = || Error::BadFolder(name.to_owned());
        if name.eq_ignore_ascii_case("INBOX") {
            return Ok(None);
        }
        if name.is_empty()
            || name.starts_with('.')
            || name.contains("..")
            || name.chars().any(char::is_control)
        {
            return Err(bad());
        }
        let levels: Vec<String> = name.split(['/', '.']).map(mutf7).collect();
        if levels.iter().any(String::is_empty) {
            return Err(bad());
        }
        let f = FolderName { levels };
        if f.dir_name().len() > NAME_MAX {
            return Err(bad());
        }
        Ok(Some(f))
    }

    /// The directory under the root: `.Lists.rust`.
    pub(crate) fn dir_name(&self) -> String {
        format!(".{}", self.dotted())
    }

    /// The storage name: `Lists.rust`.
    pub(crate) fn dotted(&self) -> String {
        self.levels.join(".")
    }

    /// The line for Dovecot's `subscriptions`, in the file's version.
    fn dovecot_line(&self, v2: bool) -> String {
        if v2 {
            self.levels.join("\t")
        } else {
            self.dotted()
        }
    }
}

/// Modified UTF-7 (RFC 3501 §5.1.3): printable ASCII stands for itself but
/// `&`, written `&-`; any other run of characters is `&`, their UTF-16BE in
/// base64 with `,` for `/` and no padding, then `-`.
pub(crate) fn mutf7(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run: Vec<u16> = Vec::new();
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            flush_run(&mut out, &mut run);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            run.extend_from_slice(c.encode_utf16(&mut [0; 2]));
        }
    }
    flush_run(&mut out, &mut run);
    out
}

fn flush_run(out: &mut String, run: &mut Vec<u16>) {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    if run.is_empty() {
        return;
    }
    let bytes: Vec<u8> = run.drain(..).flat_map(u16::to_be_bytes).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        // 1, 2 or 3 bytes give 2, 3 or 4 characters.
        for i in 0..=chunk.len() {
            out.push(char::from(B64[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out.push('-');
}

/// Adds `folder` to whichever subscription files `root` has. A file that
/// does not exist is not created (the server would have made it if the
/// user used subscriptions); a symlink is left alone rather than replaced
/// by a file, since it is not ours to break and a missing subscription only
/// hides a folder from some IMAP clients.
pub(crate) fn subscribe(root: &Path, folder: &FolderName, durable: &Durable) -> Result<(), Error> {
    let dovecot = root.join("subscriptions");
    if is_regular(&dovecot) {
        add_line(&dovecot, durable, |old| {
            folder.dovecot_line(old.starts_with(DOVECOT_V2_HEADER))
        })?;
    }
    let courier = root.join("courierimapsubscribed");
    if is_regular(&courier) {
        add_line(&courier, durable, |_| format!("INBOX.{}", folder.dotted()))?;
    }
    Ok(())
}

fn is_regular(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// Rewrites `path` with the line `line(old contents)` added, unless it is
/// already there, under the lock `<path>.lock`, which is also the new file
/// before it is renamed into place (as Dovecot's file_dotlock_replace does).
/// The new file keeps the old one's mode and, when we may, its owner.
fn add_line(
    path: &Path,
    durable: &Durable,
    line: impl FnOnce(&[u8]) -> String,
) -> Result<(), Error> {
    let lock = lock::lock_path(path);
    let meta = fs::metadata(path).map_err(io_err("stat", path))?;
    let mode = meta.mode() & 0o7777;
    let mut tmp = lock::dotlock(&lock, SUBSCRIPTIONS_WAIT, SUBSCRIPTIONS_STALE, || {
        durable.create(&lock, mode)
    })?;
    // Read under the lock: another writer may have changed it meanwhile.
    let old = fs::read(path).map_err(io_err("read", path))?;
    let line = line(&old);
    let Some(new) = with_line(&old, &line) else {
        return Ok(()); // Already subscribed; dropping `tmp` frees the lock.
    };
    tmp.write_all(&new).map_err(io_err("write", &lock))?;
    keep_owner(&lock, &meta)?;
    tmp.publish(path, Publish::Replace)
        .map_err(io_err("replace", path))
}

/// Gives the new file `lock` the owner and group of the old one (`meta`),
/// so that root running us does not take the user's file away from the
/// user's IMAP server. When we own the old file but could not give the new
/// one its group (a group we are not in), the file stays readable by its
/// owner, which is all the server needs: that failure is ignored.
fn keep_owner(lock: &Path, meta: &fs::Metadata) -> Result<(), Error> {
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    if (meta.uid(), meta.gid()) == (uid, gid) {
        return Ok(());
    }
    match std::os::unix::fs::chown(lock, Some(meta.uid()), Some(meta.gid())) {
        Err(_) if meta.uid() == uid => Ok(()),
        res => res.map_err(io_err("chown", lock)),
    }
}

/// `old` with `line` appended as a line of its own, or None when one of its
/// lines already is `line`.
fn with_line(old: &[u8], line: &str) -> Option<Vec<u8>> {
    if old.split(|&b| b == b'\n').any(|l| l == line.as_bytes()) {
        return None;
    }
    let mut new = old.to_vec();
    if !new.is_empty() && !new.ends_with(b"\n") {
        new.push(b'\n');
    }
    new.extend_from_slice(line.as_bytes());
    new.push(b'\n');
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> Option<String> {
        FolderName::parse(name)
            .ok()
            .map(|f| f.map_or("INBOX".into(), |f| f.dir_name()))
    }

    /// Maildir++ (Courier's and Dovecot's layout): one level of directories,
    /// `.` between hierarchy levels; `/` is accepted as the separator.
    #[test]
    fn folder_dirs() {
        let cases = [
            ("Junk", ".Junk"),
            ("Lists.rust", ".Lists.rust"),
            ("Lists/rust", ".Lists.rust"),
            ("a/b.c", ".a.b.c"),
            ("Sent Messages", ".Sent Messages"),
            ("inbox", "INBOX"),
            ("INBOX", "INBOX"),
            ("INBOX/Junk", ".INBOX.Junk"),
            // RFC 3501 §5.1.3: non-ASCII in modified UTF-7, & as &-.
            ("Entwürfe", ".Entw&APw-rfe"),
            ("A&B", ".A&-B"),
        ];
        for (name, want) in cases {
            assert_eq!(dir(name).as_deref(), Some(want), "{name}");
        }
    }

    #[test]
    fn folder_refusals() {
        let long = "x".repeat(255);
        let cases = [
            "",
            ".",
            ".Junk",
            "..",
            "a..b",
            "a/../b",
            "../x",
            "a/",
            "/a",
            "a//b",
            "a.",
            "a/.b",
            "a\nb",
            "a\tb",
            "a\u{7f}",
            "a\u{85}b",
            long.as_str(),
        ];
        for name in cases {
            let err = FolderName::parse(name).expect_err(name);
            assert!(
                matches!(err, Error::BadFolder(ref n) if n == name),
                "{name}"
            );
        }
        assert!(FolderName::parse(&"x".repeat(254)).is_ok());
    }

    /// RFC 3501 §5.1.3 and RFC 2152 examples, and characters outside the BMP
    /// (a surrogate pair).
    #[test]
    fn mutf7_table() {
        let cases = [
            ("", ""),
            ("plain", "plain"),
            ("&", "&-"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("ü", "&APw-"),
            ("Ünïcödé", "&ANw-n&AO8-c&APY-d&AOk-"),
            ("😀", "&2D3eAA-"),
        ];
        for (utf8, want) in cases {
            assert_eq!(mutf7(utf8), want, "{utf8}");
        }
    }

    #[test]
    fn with_line_table() {
        let cases = [
            ("", "A", Some("A\n")),
            ("INBOX\n", "A", Some("INBOX\nA\n")),
            ("INBOX", "A", Some("INBOX\nA\n")),
            ("A\nB\n", "A", None),
            ("AB\n", "A", Some("AB\nA\n")),
            ("V\t2\n\nx\ty\n", "x\ty", None),
        ];
        for (old, line, want) in cases {
            let got = with_line(old.as_bytes(), line);
            assert_eq!(
                got.as_deref(),
                want.map(str::as_bytes),
                "{old:?} + {line:?}"
            );
        }
    }
}
