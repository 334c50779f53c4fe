//! mxa-maildir: the local delivery writer of mxa (used by mxa-deliver).
//!
//! Main types: [`Maildir`] (a mailbox in the Maildir format, with its
//! Maildir++ folders), [`mbox::append`] (delivery to an mbox file) and
//! [`Error`]. It implements the Maildir spec by D. J. Bernstein
//! (<https://cr.yp.to/proto/maildir.html>: write in `tmp/`, then link into
//! `new/`), the Maildir++ folder layout of Courier and Dovecot (folders as
//! `.Name` directories holding a `maildirfolder` file, names in modified
//! UTF-7 of RFC 3501 §5.1.3), Dovecot's unique names with `,S=` and `,W=`
//! sizes, and the mboxrd format (`>From ` quoting) with dot-lock and fcntl
//! locking, as Debian's mail programs expect. Every file that must survive
//! a crash goes through [`mxa_durable::Durable`]: fsync of the file, then
//! of the directory that names it (which no Maildir writer we read does).

mod folder;
mod lock;
pub mod mbox;
mod name;

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mxa_durable::{Durable, Publish};

use folder::FolderName;

/// Mode of every directory we create: the mailbox is its owner's alone,
/// whatever the umask (Courier's maildirmake and Dovecot do the same).
const DIR_MODE: u32 = 0o700;
/// Mode of every file we create.
const FILE_MODE: u32 = 0o600;

/// What can go wrong. [`Error::is_temporary`] tells a caller that must
/// choose between deferring (exit 75) and bouncing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// A directory or file that must not be a symbolic link is one (a
    /// Maildir's `tmp/`, `new/` or `cur/`; an mbox file).
    #[error("{0}: is a symbolic link, refusing to deliver through it")]
    Symlink(PathBuf),
    /// A folder name that cannot be a Maildir++ folder.
    #[error("invalid folder name {0:?}")]
    BadFolder(String),
    /// A lock (dot-lock or fcntl) stayed held by another process for the
    /// whole timeout.
    #[error("{0}: still locked by another process")]
    LockTimeout(PathBuf),
}

impl Error {
    /// True when the same delivery may succeed later: a full disk or quota,
    /// an I/O error, a busy lock. False for symlinks, bad folder names,
    /// permission errors and the few errors that only a change of
    /// configuration cures (a name too long, a path through a non-directory,
    /// a mailbox that is a directory or a device).
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Io { source, .. } => !self.is_permission() && !is_permanent_errno(source),
            Error::LockTimeout(_) => true,
            Error::Symlink(_) | Error::BadFolder(_) => false,
        }
    }

    /// True for EACCES and EPERM.
    pub fn is_permission(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied)
    }
}

fn is_permanent_errno(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENAMETOOLONG | libc::ELOOP | libc::EISDIR | libc::ENOTDIR | libc::EINVAL)
    )
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// A Maildir: `root` holding `tmp/`, `new/` and `cur/`. Making the value does
/// no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maildir {
    root: PathBuf,
}

impl Maildir {
    /// The Maildir at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Maildir {
        Maildir { root: root.into() }
    }

    /// Its root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the root (and missing parents), `tmp/`, `new/` and `cur/`,
    /// each with mode 0700 whatever the umask; directories that already
    /// exist keep their mode. Each new name is made durable (fsync of the
    /// directory holding it). Idempotent, and safe against another process
    /// creating the same directories at the same time.
    pub fn create(&self) -> Result<(), Error> {
        // The usual case, an existing Maildir, costs one stat per folder.
        if self.exists() {
            return Ok(());
        }
        mkdir_all(&self.root)?;
        for sub in ["tmp", "new", "cur"] {
            mkdir(&self.root, &self.root.join(sub))?;
        }
        Ok(())
    }

    /// Whether the root and its `tmp/`, `new/` and `cur/` are directories
    /// (following symlinks).
    pub fn exists(&self) -> bool {
        ["tmp", "new", "cur"]
            .iter()
            .all(|s| self.root.join(s).is_dir())
    }

    /// The Maildir++ folder `name` of this (top-level) Maildir: "Junk" is
    /// `<root>/.Junk`, "Lists.rust" and "Lists/rust" are
    /// `<root>/.Lists.rust`, as Dovecot and Courier lay them out; non-ASCII
    /// is written in modified UTF-7 as they do ("Entwürfe" is
    /// `.Entw&APw-rfe`). "INBOX", in any case, is this Maildir itself.
    /// Refuses ([`Error::BadFolder`]) names that are empty, start with `.`,
    /// contain `..`, a control character or an empty level, or whose
    /// directory name would exceed 255 bytes. Creates nothing.
    pub fn folder(&self, name: &str) -> Result<Maildir, Error> {
        Ok(match FolderName::parse(name)? {
            None => self.clone(),
            Some(f) => Maildir::new(self.root.join(f.dir_name())),
        })
    }

    /// Returns the folder `name` (see [`Maildir::folder`]), creating it if
    /// it does not exist: [`Maildir::create`] plus an empty `maildirfolder`
    /// file, which Maildir++ uses to tell a folder from a top-level Maildir
    /// (quota, Dovecot's LDA). When it creates the folder, it also adds it
    /// to this Maildir's `subscriptions` (Dovecot, in that file's version)
    /// and `courierimapsubscribed` (Courier, as `INBOX.<name>`) if they
    /// exist and do not list it, durably and under the servers' own lock,
    /// so that IMAP clients show it. The subscription comes first: a failure
    /// then leaves no folder behind, and the next delivery tries again.
    pub fn create_folder(&self, name: &str) -> Result<Maildir, Error> {
        self.create_folder_with(name, &Durable::default())
    }

    fn create_folder_with(&self, name: &str, durable: &Durable) -> Result<Maildir, Error> {
        let Some(f) = FolderName::parse(name)? else {
            self.create()?;
            return Ok(self.clone());
        };
        let md = Maildir::new(self.root.join(f.dir_name()));
        if !md.exists() {
            folder::subscribe(&self.root, &f, durable)?;
        }
        md.create()?;
        let marker = md.root.join("maildirfolder");
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&marker)
            .map_err(io_err("create", &marker))?;
        durable
            .sync_dir(&md.root)
            .map_err(io_err("fsync", &md.root))?;
        Ok(md)
    }

    /// Delivers `msg` (LF line ends; written as is) into `new/` and returns
    /// the path written. The file is created in `tmp/` with O_EXCL and mode
    /// 0600, written, fsync'd, linked into `new/` without ever replacing a
    /// file, `new/` is fsync'd, and the name in `tmp/` removed, all through
    /// `durable`. Its name is unique (see the `name` module: time, pid,
    /// counter, random bits, host, `,S=<size>,W=<size with CRLF>`).
    ///
    /// Refuses ([`Error::Symlink`]) when `tmp/`, `new/` or `cur/` is a
    /// symbolic link, which could point anywhere; the root itself may be one
    /// (admins link `~/Maildir` elsewhere). On any error nothing is left in
    /// `new/` or `tmp/`.
    pub fn deliver(&self, msg: &[u8], durable: &Durable) -> Result<PathBuf, Error> {
        self.deliver_parts(&[msg], durable)
    }

    /// [`Maildir::deliver`] of a message given in pieces (a header built
    /// apart and the body as read), so a large message is never copied
    /// whole just to be written.
    pub fn deliver_parts(&self, msg: &[&[u8]], durable: &Durable) -> Result<PathBuf, Error> {
        for sub in ["tmp", "new", "cur"] {
            let p = self.root.join(sub);
            if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Error::Symlink(p));
            }
        }
        // A CRLF split across two pieces is not counted as one; mxa writes
        // LF only, so this never matters in practice.
        let (size, vsize) = msg
            .iter()
            .map(|m| name::sizes(m))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        let parts = name::Parts::now(size, vsize).map_err(io_err("unique name", &self.root))?;
        let file = parts.name();
        let tmp = self.root.join("tmp").join(&file);
        let dest = self.root.join("new").join(&file);
        let mut t = durable
            .create_unnamed(&tmp, FILE_MODE)
            .map_err(io_err("create", &tmp))?;
        for piece in msg {
            t.write_all(piece).map_err(io_err("write", &tmp))?;
        }
        t.publish(&dest, Publish::NoReplace)
            .map_err(io_err("deliver", &dest))?;
        Ok(dest)
    }
}

/// Creates `path` and its missing parents with [`DIR_MODE`].
fn mkdir_all(path: &Path) -> Result<(), Error> {
    if path.is_dir() {
        return Ok(());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if parent != path {
        mkdir_all(parent)?;
    }
    mkdir(parent, path)
}

/// Creates the directory `path` (whose parent is `parent`) with exactly
/// [`DIR_MODE`] and fsyncs `parent`; an existing directory is left as is.
fn mkdir(parent: &Path, path: &Path) -> Result<(), Error> {
    match DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => {
            // mkdir(2) applied the umask; the mode must not depend on it.
            fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
                .map_err(io_err("chmod", path))?;
            Durable::default()
                .sync_dir(parent)
                .map_err(io_err("fsync", parent))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(io_err("mkdir", path)(e)),
    }
}

#[cfg(test)]
mod tests;
