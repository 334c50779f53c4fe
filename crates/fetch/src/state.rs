//! What mxa-fetch has delivered, so that nothing is fetched twice.
//!
//! Each POP3 login at a server, and each IMAP folder of a login at a
//! server, has one small text file, a journal of lines:
//!
//! ```text
//! mxa-fetch-state 1 pop3        mxa-fetch-state 1 imap
//! uidl 000000a14f3c2a8e         uidvalidity 1732400000
//! uidl 000000a24f3c2a91         through 1200
//!                               uid 1205
//! ```
//!
//! A delivered message is recorded by appending its line (one write(2), so
//! a killed process loses nothing of it); [`Pop3State::sync`] and
//! [`ImapState::sync`] fdatasync the appended lines, which the caller does
//! before it deletes or flags anything on the server (POP3: before QUIT,
//! which commits the DELEs; IMAP: before each STORE), so a crash of the
//! machine can repeat at most the deliveries since the last sync, and
//! never lose one. At the end of a run the journal is compacted (written
//! to a temporary name, fsync'd, renamed over the old one, directory
//! fsync'd, through mxa-durable) to what the server still holds. A crash
//! during an append leaves at most a last line without its LF, which
//! loading ignores: that one message is fetched again, never lost.
//!
//! For IMAP, `through N` says every UID up to N is done; `uid` lines name
//! UIDs above it that are done while a lower one is not (a message the MDA
//! refused stays on the server and is tried again next run). The state is
//! valid for one UIDVALIDITY (RFC 3501 §2.3.1.1); what happens when it
//! changes is the caller's policy.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use mxa_durable::{Durable, Publish};

/// Mode of state files: they name the messages of a mailbox.
const FILE_MODE: u32 = 0o600;

/// An unreadable or unwritable state file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A line that is not one of ours.
    #[error("{path}:{line}: {msg}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// The journal file under both kinds of state.
#[derive(Debug)]
struct Journal {
    path: PathBuf,
    kind: &'static str,
    append: Option<File>,
    /// Lines appended since the last fdatasync.
    dirty: bool,
    durable: Durable,
}

impl Journal {
    /// Opens `path` and returns its record lines (header checked, a torn
    /// last line dropped). A missing file has none.
    fn load(path: &Path, kind: &'static str) -> Result<(Journal, Vec<String>), Error> {
        let j = Journal {
            path: path.to_path_buf(),
            kind,
            append: None,
            dirty: false,
            durable: Durable::default(),
        };
        let text = match fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((j, Vec::new())),
            Err(e) => return Err(io_err("read", path)(e)),
        };
        let complete = match text.iter().rposition(|&b| b == b'\n') {
            Some(i) => &text[..=i],
            None => &[][..],
        };
        let text = String::from_utf8_lossy(complete);
        let mut lines = text.lines();
        let header = format!("mxa-fetch-state 1 {kind}");
        match lines.next() {
            Some(h) if h == header => {}
            None => {}
            Some(h) => {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    line: 1,
                    msg: format!("expected {header:?}, found {h:?}"),
                });
            }
        }
        Ok((j, lines.map(str::to_string).collect()))
    }

    fn corrupt(&self, line: usize, msg: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            line: line + 2,
            msg,
        }
    }

    /// Appends `line` in one write; [`Journal::sync`] makes it durable. The
    /// first record creates the file through [`Journal::rewrite`], so its
    /// name is durable at once.
    fn append(&mut self, line: &str) -> Result<(), Error> {
        if self.append.is_none() {
            if !self.path.exists() {
                return self.rewrite(&[line.to_string()]);
            }
            let f = OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(io_err("open", &self.path))?;
            self.append = Some(f);
        }
        let f = self.append.as_mut().ok_or_else(|| Error::Io {
            op: "append",
            path: self.path.clone(),
            source: io::Error::other("no file"),
        })?;
        f.write_all(format!("{line}\n").as_bytes())
            .map_err(io_err("append", &self.path))?;
        self.dirty = true;
        Ok(())
    }

    /// fdatasync of what was appended.
    fn sync(&mut self) -> Result<(), Error> {
        if let (true, Some(f)) = (self.dirty, &self.append) {
            f.sync_data().map_err(io_err("fdatasync", &self.path))?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Replaces the file with the header and `lines`, atomically.
    fn rewrite(&mut self, lines: &[String]) -> Result<(), Error> {
        self.sync()?;
        self.append = None;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_dirs(dir)?;
        let mut text = format!("mxa-fetch-state 1 {}\n", self.kind);
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp); // left by a crashed run of the same pid
        self.durable
            .write_file(
                &tmp,
                &self.path,
                FILE_MODE,
                Publish::Replace,
                text.as_bytes(),
            )
            .map_err(io_err("write", &self.path))
    }
}

impl Drop for Journal {
    /// A run that ends early still syncs what it recorded.
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

/// Creates `dir` and its parents (mode 0700), fsyncing each parent that
/// gained a name.
fn create_dirs(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dirs(parent)?;
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => Durable::default()
                .sync_dir(parent)
                .map_err(io_err("fsync", parent)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_err("mkdir", dir)(e)),
        }
    } else {
        Ok(())
    }
}

/// The UIDLs delivered from one POP3 login at one server.
#[derive(Debug)]
pub struct Pop3State {
    journal: Journal,
    done: HashSet<String>,
}

impl Pop3State {
    /// Reads the state at `path` (none yet: nothing delivered).
    pub fn load(path: &Path) -> Result<Pop3State, Error> {
        let (journal, lines) = Journal::load(path, "pop3")?;
        let mut done = HashSet::new();
        for (i, l) in lines.iter().enumerate() {
            match l.strip_prefix("uidl ") {
                Some(u) if !u.is_empty() => {
                    done.insert(u.to_string());
                }
                _ => return Err(journal.corrupt(i, format!("expected \"uidl ID\", found {l:?}"))),
            }
        }
        Ok(Pop3State { journal, done })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.journal.path
    }

    /// Whether the message with this UIDL was delivered.
    pub fn is_done(&self, uidl: &str) -> bool {
        self.done.contains(uidl)
    }

    /// Records a delivery; [`Pop3State::sync`] before QUIT.
    pub fn record(&mut self, uidl: &str) -> Result<(), Error> {
        self.journal.append(&format!("uidl {uidl}"))?;
        self.done.insert(uidl.to_string());
        Ok(())
    }

    /// Makes the records durable.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.journal.sync()
    }

    /// Keeps only the UIDLs still on the server (a deleted message never
    /// comes back under the same UIDL: RFC 1939 §7).
    pub fn compact(&mut self, on_server: &[String]) -> Result<(), Error> {
        let keep: Vec<String> = on_server
            .iter()
            .filter(|u| self.done.contains(*u))
            .map(|u| format!("uidl {u}"))
            .collect();
        if keep.len() == self.done.len() && self.journal.path.exists() {
            return Ok(());
        }
        self.journal.rewrite(&keep)?;
        self.done = on_server
            .iter()
            .filter(|u| self.done.contains(*u))
            .cloned()
            .collect();
        Ok(())
    }
}

/// The UIDs delivered from one IMAP folder, for one UIDVALIDITY.
#[derive(Debug)]
pub struct ImapState {
    journal: Journal,
    uidvalidity: Option<u32>,
    through: u32,
    done: BTreeSet<u32>,
}

impl ImapState {
    /// Reads the state at `path` (none yet: nothing delivered).
    pub fn load(path: &Path) -> Result<ImapState, Error> {
        let (journal, lines) = Journal::load(path, "imap")?;
        let mut s = ImapState {
            journal,
            uidvalidity: None,
            through: 0,
            done: BTreeSet::new(),
        };
        for (i, l) in lines.iter().enumerate() {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            let n: Option<u32> = v.parse().ok();
            match (k, n) {
                ("uidvalidity", Some(n)) if i == 0 => s.uidvalidity = Some(n),
                ("through", Some(n)) => s.through = s.through.max(n),
                ("uid", Some(n)) => {
                    s.done.insert(n);
                }
                _ => {
                    return Err(s.journal.corrupt(
                        i,
                        format!("expected \"uidvalidity N\" first, then \"through N\" or \"uid N\", found {l:?}"),
                    ));
                }
            }
        }
        Ok(s)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.journal.path
    }

    /// The UIDVALIDITY the state is for (None: no state yet).
    pub fn uidvalidity(&self) -> Option<u32> {
        self.uidvalidity
    }

    /// Forgets everything and starts over for `uidvalidity`, durably.
    pub fn reset(&mut self, uidvalidity: u32) -> Result<(), Error> {
        self.journal
            .rewrite(&[format!("uidvalidity {uidvalidity}")])?;
        self.uidvalidity = Some(uidvalidity);
        self.through = 0;
        self.done.clear();
        Ok(())
    }

    /// The highest UID known to be done (0: none).
    pub fn last_uid(&self) -> u32 {
        self.done.last().copied().unwrap_or(0).max(self.through)
    }

    /// Whether the message with this UID was delivered.
    pub fn is_done(&self, uid: u32) -> bool {
        uid <= self.through || self.done.contains(&uid)
    }

    /// Records a delivery; [`ImapState::sync`] before flagging it.
    pub fn record(&mut self, uid: u32) -> Result<(), Error> {
        self.journal.append(&format!("uid {uid}"))?;
        self.done.insert(uid);
        Ok(())
    }

    /// Makes the records durable.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.journal.sync()
    }

    /// Rewrites the state from the UIDs still in the folder: `through` rises
    /// to just below the lowest UID there that is not done.
    pub fn compact(&mut self, on_server: &BTreeSet<u32>) -> Result<(), Error> {
        let Some(v) = self.uidvalidity else {
            return Ok(());
        };
        let first_undone = on_server.iter().copied().find(|&u| !self.is_done(u));
        let through = match first_undone {
            Some(u) => self.through.max(u - 1),
            None => self.last_uid().max(on_server.last().copied().unwrap_or(0)),
        };
        let done: BTreeSet<u32> = self
            .done
            .iter()
            .copied()
            .filter(|&u| u > through && on_server.contains(&u))
            .collect();
        let mut lines = vec![format!("uidvalidity {v}"), format!("through {through}")];
        lines.extend(done.iter().map(|u| format!("uid {u}")));
        self.journal.rewrite(&lines)?;
        self.through = through;
        self.done = done;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
