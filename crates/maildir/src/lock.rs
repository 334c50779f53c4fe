//! Dot-locks: a file `<name>.lock` created with O_EXCL, the oldest lock
//! convention of Unix mail, which every mbox reader and Dovecot's
//! subscription file writer honour.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::Error;

/// Pause between two tries of a held lock: short against the timeouts
/// callers give (seconds), long enough not to spin.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// `<path>.lock`.
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Calls `take` until it returns something other than EEXIST (the lock is
/// held). A lock whose last change is older than `stale` is left over by a
/// dead process: it is removed and the lock taken again at once. Gives
/// [`Error::LockTimeout`] when `timeout` has passed.
pub(crate) fn dotlock<T>(
    lock: &Path,
    timeout: Duration,
    stale: Duration,
    mut take: impl FnMut() -> io::Result<T>,
) -> Result<T, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        match take() {
            Ok(t) => return Ok(t),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::Io {
                    op: "create lock",
                    path: lock.to_path_buf(),
                    source,
                });
            }
        }
        if is_stale(lock, stale) {
            // Another process may remove it at the same moment, or a new
            // holder may just have taken it: the race liblockfile accepts
            // too, narrowed by re-reading the age just before.
            let _ = fs::remove_file(lock);
            continue;
        }
        if Instant::now() >= deadline {
            return Err(Error::LockTimeout(lock.to_path_buf()));
        }
        thread::sleep(RETRY_PAUSE);
    }
}

/// Whether the lock file was last changed more than `stale` ago.
fn is_stale(lock: &Path, stale: Duration) -> bool {
    let Ok(meta) = fs::symlink_metadata(lock) else {
        return false;
    };
    match meta.modified().map(|m| SystemTime::now().duration_since(m)) {
        Ok(Ok(age)) => age > stale,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{File, OpenOptions};

    fn excl(path: &Path) -> io::Result<File> {
        OpenOptions::new().write(true).create_new(true).open(path)
    }

    #[test]
    fn lock_path_appends() {
        assert_eq!(
            lock_path(Path::new("/var/mail/joe")),
            Path::new("/var/mail/joe.lock")
        );
    }

    #[test]
    fn free_lock_is_taken_and_held_one_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("m.lock");
        let short = Duration::from_millis(120);
        let hour = Duration::from_secs(3600);
        dotlock(&lock, short, hour, || excl(&lock)).expect("free");
        let t0 = Instant::now();
        let err = dotlock(&lock, short, hour, || excl(&lock)).expect_err("held");
        assert!(
            matches!(err, Error::LockTimeout(ref p) if p == &lock),
            "{err}"
        );
        assert!(t0.elapsed() >= short);
    }

    #[test]
    fn stale_lock_is_broken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("m.lock");
        let f = excl(&lock).expect("create");
        let old = SystemTime::now() - Duration::from_secs(600);
        f.set_modified(old).expect("utime");
        drop(f);
        dotlock(&lock, Duration::ZERO, Duration::from_secs(300), || {
            excl(&lock)
        })
        .expect("stale lock broken");
    }

    #[test]
    fn other_errors_are_io() {
        let lock = Path::new("/nonexistent-dir-mxa/x.lock");
        let err = dotlock(lock, Duration::ZERO, Duration::ZERO, || excl(lock)).expect_err("no dir");
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }
}
