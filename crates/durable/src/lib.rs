//! mxa-durable: the one way mxa puts a file on disk so that it survives a
//! crash.
//!
//! Every durable write in mxa (spool data, spool envelopes, Maildir messages)
//! goes through [`Durable`]: write under a temporary name in the same file
//! system, fsync the file, publish it under its final name (a hard link that
//! never replaces, or a rename that does), then fsync the directory that holds
//! the final name. Only after the last step may the caller acknowledge
//! anything.
//!
//! The [`Fault`] hook is the test seam: it is consulted before each [`Step`]
//! and may return an error (ENOSPC, EIO) as the kernel would. On any error the
//! primitive removes what it created, so a failed write leaves nothing visible
//! under the final name.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One step of a durable write, as seen by the [`Fault`] hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Creating the temporary file (O_CREAT|O_EXCL).
    Create,
    /// A write into the temporary file.
    Write,
    /// fsync(2) of the file.
    SyncFile,
    /// link(2) or rename(2) to the final name.
    Publish,
    /// fsync(2) of the directory holding the final name.
    SyncDir,
    /// unlink(2) of a published name (removal).
    Remove,
}

impl Step {
    /// Every step, in the order a write performs them.
    pub const ALL: [Step; 6] = [
        Step::Create,
        Step::Write,
        Step::SyncFile,
        Step::Publish,
        Step::SyncDir,
        Step::Remove,
    ];
}

/// A hook called before each step; an error returned is treated exactly as if
/// the system call had failed with it.
pub type Fault = Arc<dyn Fn(Step, &Path) -> io::Result<()> + Send + Sync>;

/// How a finished temporary file takes its final name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// link(2) then unlink of the temporary name: fails with EEXIST rather
    /// than replace a file (new spool files, Maildir deliveries).
    NoReplace,
    /// rename(2): atomically replaces the old file (spool envelopes).
    Replace,
}

mod group {
    //! Group commit of directory fsyncs (see [`super::Durable::sync_dir`]).
    use std::collections::HashMap;
    use std::fs::File;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

    #[derive(Debug, Default)]
    struct State {
        /// Tickets handed out so far.
        next: u64,
        /// Every ticket below this is covered by a successful fsync.
        synced: u64,
        /// An fsync is under way.
        running: bool,
    }

    #[derive(Debug, Default)]
    struct Group {
        state: Mutex<State>,
        done: Condvar,
    }

    fn group(dir: &Path) -> Arc<Group> {
        static GROUPS: OnceLock<Mutex<HashMap<PathBuf, Arc<Group>>>> = OnceLock::new();
        let map = GROUPS.get_or_init(Mutex::default);
        let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(dir.to_path_buf()).or_default())
    }

    pub(super) fn sync(dir: &Path) -> io::Result<()> {
        let g = group(dir);
        let mut st = g.state.lock().unwrap_or_else(PoisonError::into_inner);
        // The caller's change to the directory happened before this ticket.
        let ticket = st.next;
        st.next += 1;
        loop {
            if st.synced > ticket {
                return Ok(());
            }
            if !st.running {
                // Lead: this fsync covers every ticket handed out so far.
                st.running = true;
                let upto = st.next;
                drop(st);
                let r = File::open(dir).and_then(|f| f.sync_all());
                st = g.state.lock().unwrap_or_else(PoisonError::into_inner);
                st.running = false;
                if r.is_ok() {
                    st.synced = st.synced.max(upto);
                }
                g.done.notify_all();
                // On failure the waiters try again themselves.
                r?;
                continue;
            }
            st = g.done.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn concurrent_syncs_all_return() {
            let dir = tempfile::tempdir().expect("tempdir");
            let threads: Vec<_> = (0..16)
                .map(|i| {
                    let d = dir.path().to_path_buf();
                    std::thread::spawn(move || {
                        for j in 0..20 {
                            std::fs::write(d.join(format!("{i}.{j}")), b"x").expect("write");
                            super::sync(&d).expect("sync");
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("thread");
            }
            let missing = dir.path().join("none");
            assert!(super::sync(&missing).is_err(), "a missing folder fails");
        }
    }
}

/// The durable-write primitive. Cheap to clone; production code uses
/// `Durable::default()`, tests use [`Durable::with_fault`].
#[derive(Clone, Default)]
pub struct Durable {
    fault: Option<Fault>,
}

impl fmt::Debug for Durable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("fault", &self.fault.is_some())
            .finish()
    }
}

impl Durable {
    /// A primitive whose every step first asks `fault`.
    pub fn with_fault(fault: Fault) -> Self {
        Durable { fault: Some(fault) }
    }

    fn check(&self, step: Step, path: &Path) -> io::Result<()> {
        match &self.fault {
            Some(f) => f(step, path),
            None => Ok(()),
        }
    }

    /// Creates `tmp` exclusively with exactly `mode` (whatever the umask: a
    /// daemon reading the file must not depend on its writer's umask) and
    /// returns it for writing. Dropping the result without
    /// [`TempFile::publish`] removes it.
    pub fn create(&self, tmp: &Path, mode: u32) -> io::Result<TempFile> {
        use std::os::unix::fs::PermissionsExt;
        self.check(Step::Create, tmp)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(tmp)?;
        if let Err(e) = file.set_permissions(fs::Permissions::from_mode(mode)) {
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        Ok(TempFile {
            durable: self.clone(),
            path: tmp.to_path_buf(),
            file: Some(file),
            len: 0,
            synced: false,
            unnamed: false,
        })
    }

    /// As [`Durable::create`], but without a name while it is written: an
    /// O_TMPFILE inode in `tmp`'s directory, which a crash frees and which
    /// needs no unlink once linked into place (two directory operations
    /// fewer per file: on a busy spool the directory lock and the inode
    /// allocator are where the time goes). `tmp` still names it in errors
    /// and fault checks, and is used as a plain temporary name where the
    /// system has no O_TMPFILE (or no `/proc/self/fd` to link it by).
    pub fn create_unnamed(&self, tmp: &Path, mode: u32) -> io::Result<TempFile> {
        use std::os::unix::fs::PermissionsExt;
        if !unnamed_supported() {
            return self.create(tmp, mode);
        }
        self.check(Step::Create, tmp)?;
        let opened = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(mode)
            .open(parent(tmp));
        let file = match opened {
            Ok(f) => f,
            // The file system has no O_TMPFILE.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) =>
            {
                return self.create(tmp, mode);
            }
            Err(e) => return Err(e),
        };
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        Ok(TempFile {
            durable: self.clone(),
            path: tmp.to_path_buf(),
            file: Some(file),
            len: 0,
            synced: false,
            unnamed: true,
        })
    }

    /// Writes `bytes` durably to `dest` through the temporary name `tmp`.
    pub fn write_file(
        &self,
        tmp: &Path,
        dest: &Path,
        mode: u32,
        how: Publish,
        bytes: &[u8],
    ) -> io::Result<()> {
        let mut t = self.create(tmp, mode)?;
        t.write_all(bytes)?;
        t.publish(dest, how)
    }

    /// fsync(2) of a directory, so that the names in it survive a crash.
    ///
    /// Group commit: when several threads of the process sync the same
    /// directory at once, one fsync that starts after a caller's change
    /// covers it, so concurrent writers (mxa-smtpd's sessions) share the
    /// directory fsyncs instead of queueing one each. A caller returns Ok
    /// only once an fsync that began after it called has succeeded.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Step::SyncDir, dir)?;
        group::sync(dir)
    }

    /// Removes `path` and makes the removal durable.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        self.check(Step::Remove, path)?;
        fs::remove_file(path)?;
        self.sync_dir(parent(path))
    }
}

/// O_TMPFILE files are linked into place through `/proc/self/fd`, which
/// needs no privilege (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
fn unnamed_supported() -> bool {
    static PROC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Gives the open unnamed file `file` the name `dest` (never replacing).
fn link_unnamed(file: &File, dest: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let from = format!("/proc/self/fd/{}", file.as_raw_fd());
    nix::unistd::linkat(
        nix::fcntl::AT_FDCWD,
        from.as_str(),
        nix::fcntl::AT_FDCWD,
        dest,
        nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
    )
    .map_err(io::Error::from)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A file being written under a temporary name. Removed on drop unless
/// published.
#[derive(Debug)]
pub struct TempFile {
    durable: Durable,
    path: PathBuf,
    file: Option<File>,
    len: u64,
    /// [`TempFile::sync`] was called and nothing was written since.
    synced: bool,
    /// An O_TMPFILE inode: `path` only names it, nothing is there yet.
    unnamed: bool,
}

impl TempFile {
    /// The temporary path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// fsyncs the file, gives it the name `dest`, and fsyncs `dest`'s
    /// directory. On error nothing is left under `dest` (for
    /// [`Publish::NoReplace`]) and the temporary file is removed.
    pub fn publish(mut self, dest: &Path, how: Publish) -> io::Result<()> {
        let d = self.durable.clone();
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("file already closed"))?;
        d.check(Step::SyncFile, &self.path)?;
        file.sync_all()?;
        d.check(Step::Publish, dest)?;
        match how {
            Publish::NoReplace => {
                if self.unnamed {
                    link_unnamed(&file, dest)?;
                } else {
                    fs::hard_link(&self.path, dest)?;
                }
                drop(file);
                // From here the file is visible under `dest`: undo on failure.
                if let Err(e) = d.sync_dir(parent(dest)) {
                    let _ = fs::remove_file(dest);
                    return Err(e);
                }
                // The temporary name is now redundant; a crash that leaves it
                // is cleaned up by the owner's sweep of its temporary area.
                if !self.unnamed {
                    let _ = fs::remove_file(&self.path);
                }
            }
            Publish::Replace => {
                if self.unnamed {
                    // Rename needs a name: the temporary one, as a named
                    // file has.
                    link_unnamed(&file, &self.path)?;
                    self.unnamed = false;
                }
                drop(file);
                fs::rename(&self.path, dest)?;
                self.path = PathBuf::new();
                d.sync_dir(parent(dest))?;
            }
        }
        self.path = PathBuf::new();
        Ok(())
    }
}

impl TempFile {
    /// [`publish`](Self::publish) without its last step: fsyncs the file
    /// and links it under `dest` (never replacing), but leaves the fsync of
    /// `dest`'s directory to the caller, who may then make several names
    /// durable with one [`Durable::sync_dir`] each directory, and must
    /// remove `dest` itself if that fails. On error nothing is left under
    /// `dest` and the temporary file is removed.
    pub fn link_unsynced(mut self, dest: &Path) -> io::Result<()> {
        self.sync()?;
        let d = self.durable.clone();
        let file = self.file.take();
        d.check(Step::Publish, dest)?;
        if self.unnamed {
            let file = file.ok_or_else(|| io::Error::other("file already closed"))?;
            link_unnamed(&file, dest)?;
        } else {
            drop(file);
            fs::hard_link(&self.path, dest)?;
            let _ = fs::remove_file(&self.path);
        }
        self.path = PathBuf::new();
        Ok(())
    }

    /// fsync(2) of the file now (once; [`link_unsynced`](Self::link_unsynced)
    /// then skips it). Syncing several files before linking any lets the
    /// file system commit them together.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.synced {
            return Ok(());
        }
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| io::Error::other("file already closed"))?;
        self.durable.check(Step::SyncFile, &self.path)?;
        file.sync_all()?;
        self.synced = true;
        Ok(())
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.durable.check(Step::Write, &self.path)?;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("file already closed"))?;
        let n = file.write(buf)?;
        self.len += n as u64;
        self.synced = false;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // An unnamed file goes with its descriptor.
        if !self.unnamed && !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_unnamed_file_has_no_name_until_it_is_linked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tmp, out) = (dir.path().join("tmp"), dir.path().join("out"));
        fs::create_dir_all(&tmp).expect("mkdir");
        fs::create_dir_all(&out).expect("mkdir");
        let d = Durable::default();
        let mut f = d
            .create_unnamed(&tmp.join("x.data"), 0o640)
            .expect("create");
        f.write_all(b"hello").expect("write");
        assert!(
            names(&tmp).is_empty() || !unnamed_supported(),
            "{:?}",
            names(&tmp)
        );
        f.link_unsynced(&out.join("x")).expect("link");
        assert_eq!(fs::read(out.join("x")).expect("read"), b"hello");
        assert!(names(&tmp).is_empty(), "{:?}", names(&tmp));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(out.join("x"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        // Never replaces.
        let mut g = d
            .create_unnamed(&tmp.join("y.data"), 0o640)
            .expect("create");
        g.write_all(b"other").expect("write");
        let e = g.link_unsynced(&out.join("x")).expect_err("exists");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(out.join("x")).expect("read"), b"hello");
        assert!(names(&tmp).is_empty(), "{:?}", names(&tmp));
    }

    #[test]
    fn an_unnamed_file_dropped_or_published_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Durable::default();
        {
            let mut f = d
                .create_unnamed(&dir.path().join("a.tmp"), 0o600)
                .expect("create");
            f.write_all(b"dropped").expect("write");
        }
        assert!(names(dir.path()).is_empty());
        let mut f = d
            .create_unnamed(&dir.path().join("b.tmp"), 0o600)
            .expect("create");
        f.write_all(b"kept").expect("write");
        fs::write(dir.path().join("dest"), b"old").expect("old");
        f.publish(&dir.path().join("dest"), Publish::Replace)
            .expect("publish");
        assert_eq!(names(dir.path()), ["dest"]);
        assert_eq!(fs::read(dir.path().join("dest")).expect("read"), b"kept");
    }

    fn failing_at(step: Step, errno: i32) -> Durable {
        Durable::with_fault(Arc::new(move |s, _| {
            if s == step {
                Err(io::Error::from_raw_os_error(errno))
            } else {
                Ok(())
            }
        }))
    }

    #[test]
    fn writes_and_publishes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tmp, dest) = (dir.path().join("t"), dir.path().join("d"));
        Durable::default()
            .write_file(&tmp, &dest, 0o600, Publish::NoReplace, b"hello")
            .expect("write");
        assert_eq!(fs::read(&dest).expect("read"), b"hello");
        assert!(!tmp.exists());
    }

    #[test]
    fn no_replace_refuses_existing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tmp, dest) = (dir.path().join("t"), dir.path().join("d"));
        fs::write(&dest, b"old").expect("write");
        let err = Durable::default()
            .write_file(&tmp, &dest, 0o600, Publish::NoReplace, b"new")
            .expect_err("must refuse");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&dest).expect("read"), b"old");
        assert!(!tmp.exists());
    }

    #[test]
    fn replace_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tmp, dest) = (dir.path().join("t"), dir.path().join("d"));
        fs::write(&dest, b"old").expect("write");
        Durable::default()
            .write_file(&tmp, &dest, 0o600, Publish::Replace, b"new")
            .expect("write");
        assert_eq!(fs::read(&dest).expect("read"), b"new");
    }

    /// Each step failing with ENOSPC or EIO leaves neither the final name nor
    /// the temporary one.
    #[test]
    fn every_fault_leaves_nothing() {
        for step in [
            Step::Create,
            Step::Write,
            Step::SyncFile,
            Step::Publish,
            Step::SyncDir,
        ] {
            for errno in [libc_enospc(), libc_eio()] {
                let dir = tempfile::tempdir().expect("tempdir");
                let (tmp, dest) = (dir.path().join("t"), dir.path().join("d"));
                let err = failing_at(step, errno)
                    .write_file(&tmp, &dest, 0o600, Publish::NoReplace, b"x")
                    .expect_err("must fail");
                assert_eq!(err.raw_os_error(), Some(errno), "{step:?}");
                assert!(!dest.exists(), "{step:?} left the final name");
                assert!(!tmp.exists(), "{step:?} left the temporary name");
            }
        }
    }

    #[test]
    fn steps_run_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let d = Durable::with_fault(Arc::new(move |s, _| {
            s2.lock().expect("lock").push(s);
            Ok(())
        }));
        let dir = tempfile::tempdir().expect("tempdir");
        d.write_file(
            &dir.path().join("t"),
            &dir.path().join("d"),
            0o600,
            Publish::NoReplace,
            b"x",
        )
        .expect("write");
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(
            seen,
            vec![
                Step::Create,
                Step::Write,
                Step::SyncFile,
                Step::Publish,
                Step::SyncDir
            ]
        );
    }

    // ENOSPC and EIO are 28 and 5 on every Linux architecture.
    fn libc_enospc() -> i32 {
        28
    }
    fn libc_eio() -> i32 {
        5
    }
}
