//! The maildrop of one POP3 session: a Maildir, as qmail-pop3d and Dovecot
//! serve it. This is the one module of the crate that does file I/O.
//!
//! At login ([`Maildrop::open`]):
//! 1. the session lock is taken: an exclusive, non-blocking flock(2) on
//!    `<maildir>/mxa-pop3d.lock`, held until the session ends (the kernel
//!    drops it if the process dies, so no stale lock is ever left). A
//!    second session on the same mailbox gets [`Error::InUse`], which the
//!    server answers with `-ERR [IN-USE]` (RFC 2449 §8.1.2);
//! 2. every message of `new/` is renamed into `cur/` with the info `:2,`
//!    appended (the Maildir spec: a reader that has seen a message moves
//!    it), so that the maildrop is one folder;
//! 3. `cur/` is listed once: that list, sorted by the delivery time at the
//!    start of each name and then by name, is the maildrop for the whole
//!    session. Mail delivered meanwhile lands in `new/` and shows at the
//!    next login.
//!
//! Sizes: a file name's `,W=` (the size with CRLF line ends, as mxa-deliver
//! and Dovecot write it) when present; otherwise the file is read and
//! counted with every LF as CRLF. (`,S=` is the size of the file itself,
//! LF line ends, not what POP3 announces, so it is not used.)
//!
//! Unique ids (UIDL): the unique part of the file name, before the first
//! `,` (size fields) or `:` (info), which a move from `new/` to `cur/` and
//! flag changes leave alone: the same id in every session, from this server
//! and from any other reading the name the same way. A unique part that is
//! longer than 70 octets or holds octets outside 0x21..=0x7E (RFC 1939 §7)
//! is replaced by 32 hex digits of a fixed hash of it.
//!
//! Removal ([`Maildrop::remove`], QUIT in TRANSACTION only): the files are
//! unlinked, then `cur/` is fsync'd so that a crash right after the `+OK`
//! does not bring them back.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::Message;

/// The session lock's file name, in the Maildir's top folder.
pub const LOCK_FILE: &str = "mxa-pop3d.lock";

/// Longest unique-id listing (RFC 1939 §7).
const MAX_UID: usize = 70;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another session holds the lock.
    #[error("{0}: mailbox in use by another POP3 session")]
    InUse(PathBuf),
    /// A system call failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// One open maildrop: the lock and the files of the snapshot.
#[derive(Debug)]
pub struct Maildrop {
    root: PathBuf,
    files: Vec<PathBuf>,
    _lock: Option<Flock<File>>,
}

impl Maildrop {
    /// Opens the Maildir `root` for a session (see the module
    /// documentation): the messages, numbered from 1 in this order. A
    /// Maildir that does not exist yet is an empty maildrop.
    pub fn open(root: &Path) -> Result<(Maildrop, Vec<Message>), Error> {
        match fs::metadata(root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let drop = Maildrop {
                    root: root.to_path_buf(),
                    files: Vec::new(),
                    _lock: None,
                };
                return Ok((drop, Vec::new()));
            }
            Err(e) => return Err(io_err("stat", root)(e)),
            Ok(_) => {}
        }
        let lock = lock(root)?;
        let cur = root.join("cur");
        move_new(root, &cur)?;
        let mut found = list(&cur)?;
        found.sort_by(|a, b| (a.time, a.name.as_bytes()).cmp(&(b.time, b.name.as_bytes())));
        let mut seen = std::collections::HashSet::new();
        let mut messages = Vec::with_capacity(found.len());
        let mut files = Vec::with_capacity(found.len());
        for f in found {
            let path = cur.join(&f.name);
            let size = match f.vsize {
                Some(s) => s,
                None => match fs::read(&path) {
                    Ok(bytes) => crate::wire::wire_size(&bytes),
                    // Gone meanwhile (another reader): not in the snapshot.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err("read", &path)(e)),
                },
            };
            let mut uid = f.uid;
            if !seen.insert(uid.clone()) {
                // Two files with one unique part (a copy made by hand): the
                // second gets the hash of its whole name.
                uid = hash_uid(f.name.as_bytes());
                seen.insert(uid.clone());
            }
            messages.push(Message { uid, size });
            files.push(path);
        }
        let drop = Maildrop {
            root: root.to_path_buf(),
            files,
            _lock: Some(lock),
        };
        Ok((drop, messages))
    }

    /// The Maildir.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of message `index` (0-based).
    pub fn path(&self, index: usize) -> Option<&Path> {
        self.files.get(index).map(PathBuf::as_path)
    }

    /// The file of message `index`, as stored.
    pub fn read(&self, index: usize) -> Result<Vec<u8>, Error> {
        let path = self.path(index).ok_or_else(|| Error::Io {
            op: "read",
            path: self.root.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "no such message"),
        })?;
        fs::read(path).map_err(io_err("read", path))
    }

    /// Removes messages (0-based indexes); a file already gone counts as
    /// removed. Returns how many were removed, or the first failure after
    /// trying them all.
    pub fn remove(&self, indexes: &[usize]) -> Result<usize, Error> {
        let mut first_err = None;
        let mut removed = 0;
        for &i in indexes {
            let Some(path) = self.path(i) else { continue };
            match fs::remove_file(path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => removed += 1,
                Err(e) => {
                    first_err.get_or_insert(io_err("unlink", path)(e));
                }
            }
        }
        if removed > 0 {
            let cur = self.root.join("cur");
            File::open(&cur)
                .and_then(|d| d.sync_all())
                .map_err(io_err("fsync", &cur))?;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

/// Takes the session lock.
fn lock(root: &Path) -> Result<Flock<File>, Error> {
    let path = root.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("open lock", &path))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == Errno::EWOULDBLOCK {
            Error::InUse(root.to_path_buf())
        } else {
            io_err("flock", &path)(io::Error::from(errno))
        }
    })
}

/// Renames every message of `new/` into `cur/` with the info `:2,`.
fn move_new(root: &Path, cur: &Path) -> Result<(), Error> {
    let new = root.join("new");
    let entries = match fs::read_dir(&new) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", &new)(e)),
    };
    let mut cur_ready = false;
    for entry in entries {
        let entry = entry.map_err(io_err("list", &new))?;
        let name = entry.file_name();
        if name.as_bytes().starts_with(b".") {
            continue;
        }
        if !cur_ready {
            match fs::DirBuilder::new().mode(0o700).create(cur) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(io_err("mkdir", cur)(e));
                }
                _ => cur_ready = true,
            }
        }
        let mut target = name.clone();
        if !name.as_bytes().contains(&b':') {
            target.push(":2,");
        }
        match fs::rename(entry.path(), cur.join(&target)) {
            Ok(()) => {}
            // Moved by another reader meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("rename", &entry.path())(e)),
        }
    }
    Ok(())
}

/// A file of `cur/`, parsed.
#[derive(Debug)]
struct Found {
    name: std::ffi::OsString,
    /// The leading seconds of the name (0 when it has none).
    time: u64,
    uid: String,
    vsize: Option<u64>,
}

/// The messages of `cur/`, unsorted.
fn list(cur: &Path) -> Result<Vec<Found>, Error> {
    let entries = match fs::read_dir(cur) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", cur)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", cur))?;
        let name = entry.file_name();
        if name.as_bytes().starts_with(b".") {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        found.push(parse_name(&name));
    }
    Ok(found)
}

/// The unique id, delivery time and `,W=` size of a Maildir file name.
fn parse_name(name: &OsStr) -> Found {
    let bytes = name.as_bytes();
    let base = bytes.split(|&b| b == b':').next().unwrap_or(bytes);
    let mut fields = base.split(|&b| b == b',');
    let unique = fields.next().unwrap_or(base);
    let vsize = fields
        .filter_map(|f| f.strip_prefix(b"W="))
        .find_map(|v| std::str::from_utf8(v).ok()?.parse().ok());
    let time = unique
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .try_fold(0u64, |t, &b| {
            t.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        })
        .unwrap_or(u64::MAX);
    let valid = !unique.is_empty()
        && unique.len() <= MAX_UID
        && unique.iter().all(|&b| (0x21..=0x7e).contains(&b));
    let uid = if valid {
        String::from_utf8_lossy(unique).into_owned()
    } else {
        hash_uid(unique)
    };
    Found {
        name: name.to_owned(),
        time,
        uid,
        vsize,
    }
}

/// 32 hex digits of two FNV-1a 64-bit hashes of `bytes` (fixed forever:
/// unique ids must not change between versions).
fn hash_uid(bytes: &[u8]) -> String {
    let fnv = |seed: u64| {
        bytes.iter().fold(seed, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn names() {
        let f = parse_name(OsStr::new("1732400000.M1P2Q3R4.host,S=10,W=12:2,S"));
        assert_eq!(
            (f.uid.as_str(), f.time, f.vsize),
            ("1732400000.M1P2Q3R4.host", 1_732_400_000, Some(12))
        );
        let f = parse_name(OsStr::new("1.2.host"));
        assert_eq!((f.uid.as_str(), f.vsize), ("1.2.host", None));
        let long = "9".repeat(80);
        let f = parse_name(OsStr::new(&long));
        assert_eq!(f.uid.len(), 32);
        assert_eq!(f.uid, hash_uid(long.as_bytes()));
        let f = parse_name(OsStr::new("a b"));
        assert!(f.uid.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn open_moves_new_lists_cur_and_locks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = dir.path().join("Maildir");
        write(&md.join("new/200.A.h,S=3,W=99"), "b\nc");
        write(&md.join("cur/100.B.h:2,S"), "a\n");
        write(&md.join("new/.hidden"), "x");
        fs::create_dir_all(md.join("tmp")).expect("tmp");
        write(&md.join("tmp/300.C.h"), "not yet delivered\n");
        let (drop, msgs) = Maildrop::open(&md).expect("open");
        assert_eq!(
            msgs,
            vec![
                Message {
                    uid: "100.B.h".into(),
                    size: 3
                },
                Message {
                    uid: "200.A.h".into(),
                    size: 99
                },
            ]
        );
        assert!(md.join("cur/200.A.h,S=3,W=99:2,").exists());
        assert!(md.join("new/.hidden").exists());
        // A second session is refused while the first holds the lock.
        assert!(matches!(Maildrop::open(&md), Err(Error::InUse(_))));
        assert_eq!(drop.read(0).expect("read"), b"a\n");
        assert_eq!(drop.remove(&[1]).expect("remove"), 1);
        drop_it(drop);
        let (_again, msgs) = Maildrop::open(&md).expect("the lock went with the session");
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].uid, "100.B.h");
    }

    fn drop_it(d: Maildrop) {
        drop(d);
    }

    #[test]
    fn missing_maildir_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_d, msgs) = Maildrop::open(&dir.path().join("none")).expect("open");
        assert!(msgs.is_empty());
        assert!(!dir.path().join("none").exists());
    }
}
