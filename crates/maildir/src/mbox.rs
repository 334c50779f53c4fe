//! Delivery to an mbox file, as Debian's mail programs (mutt, procmail,
//! Postfix's local(8)) read and write it.
//!
//! The format is mboxrd: each message starts with a line `From <sender>
//! <asctime date>`, ends with an empty line, and every line matching
//! `^>*From ` inside it gets one more `>` (a reader removes one), so the
//! quoting can be undone exactly. Two locks guard the file, in Postfix's
//! and procmail's order: the dot-lock `<mbox>.lock`, then an fcntl(2)
//! write lock on the file itself. Debian policy (§11.6) asks for both.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use mxa_durable::Durable;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};

use crate::{Error, FILE_MODE, io_err, lock};

/// A dot-lock older than this is left by a dead process and is removed, as
/// liblockfile (Debian's dotlockfile, mutt) does. Longer than any delivery
/// holds it.
pub const DOTLOCK_STALE: Duration = Duration::from_secs(5 * 60);

/// Appends `msg` (LF line ends, no leading `From ` line) to the mbox at
/// `path` as one mboxrd message: a `From <sender> <date>` line (`sender`
/// empty or `<>` is written MAILER-DAEMON; spaces and control characters in
/// it become `_`, since readers split that line on spaces; the date is
/// `unix_time` as asctime(3) writes it in UTC), the message with `>From `
/// quoting, a final line end if it had none, and an empty line.
///
/// Takes the dot-lock `<path>.lock` (O_EXCL, retried until `timeout`, a
/// lock older than [`DOTLOCK_STALE`] removed; skipped, as Postfix's local(8)
/// does, when the directory does not let us create it: EACCES), then an
/// fcntl(2) write lock on the file (retried until the same deadline); both
/// are released before returning. The file is opened with
/// O_APPEND|O_NOFOLLOW ([`Error::Symlink`] for a symbolic link), created
/// with mode 0600 if missing, and must be a regular file with one link. If
/// writing or the fsync fails, the file is truncated back to its length
/// before, so that no half message stays to run into the next one.
pub fn append(
    path: &Path,
    sender: &str,
    unix_time: u64,
    msg: &[u8],
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let text = mboxrd(sender, unix_time, msg);
    let _dotlock = DotLock::take(&lock::lock_path(path), timeout)?;
    // Declared after the dot-lock, so dropped (and its fcntl lock released)
    // before the dot-lock is removed.
    let file = open(path)?;
    fcntl_lock(&file, path, deadline)?;
    let start = file.metadata().map_err(io_err("fstat", path))?.len();
    append_or_truncate(&file, start, &text, &mut &file).map_err(io_err("append", path))
}

/// The message as it goes into the mbox.
pub(crate) fn mboxrd(sender: &str, unix_time: u64, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 64 + 100);
    out.extend_from_slice(
        format!("From {} {}\n", from_sender(sender), asctime(unix_time)).as_bytes(),
    );
    for line in msg.split_inclusive(|&b| b == b'\n') {
        if strip_gt(line).starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if !msg.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// `line` without its leading `>` characters.
fn strip_gt(line: &[u8]) -> &[u8] {
    let n = line.iter().take_while(|&&b| b == b'>').count();
    &line[n..]
}

/// The envelope sender as the `From ` line shows it.
fn from_sender(sender: &str) -> String {
    if sender.is_empty() || sender == "<>" {
        return "MAILER-DAEMON".to_owned();
    }
    sender
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// `unix_time` as asctime(3) writes it, in UTC: `Mon Nov 23 18:20:00 2026`
/// (day of month padded with a space to two characters).
pub(crate) fn asctime(unix_time: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = (unix_time / 86_400, unix_time % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[((days + 4) % 7) as usize], // 1970-01-01 was a Thursday.
        MONTHS[(m - 1) as usize],
        d,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        y
    )
}

/// Year, month (1–12) and day (1–31) of the day `days` after 1970-01-01, in
/// the proleptic Gregorian calendar (Howard Hinnant's days_from_civil,
/// inverted: eras of 400 years, years starting on 1 March).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A held dot-lock; dropping it removes the file.
#[derive(Debug)]
struct DotLock(PathBuf);

impl DotLock {
    /// Takes `lock`, or returns None when its directory does not let us
    /// create files (a /var/mail we may not write into: the fcntl lock then
    /// guards alone, as with Postfix's local(8)).
    fn take(lock: &Path, timeout: Duration) -> Result<Option<DotLock>, Error> {
        let create = || {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(lock)?;
            // liblockfile writes the holder's pid; it helps whoever
            // finds the lock.
            writeln!(f, "{}", std::process::id())
        };
        match lock::dotlock(lock, timeout, DOTLOCK_STALE, create) {
            Ok(()) => Ok(Some(DotLock(lock.to_path_buf()))),
            Err(e) if e.is_permission() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Opens the mbox for appending, creating it (mode 0600) if missing.
/// O_NONBLOCK keeps a FIFO planted in its place from blocking the open; it
/// changes nothing for a regular file, and anything else is refused.
fn open(path: &Path) -> Result<File, Error> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let opts = |create_new| {
        let mut o = OpenOptions::new();
        o.append(true)
            .create_new(create_new)
            .mode(FILE_MODE)
            .custom_flags(flags);
        o
    };
    let refused = |e: io::Error| match e.raw_os_error() {
        Some(libc::ELOOP) => Error::Symlink(path.to_path_buf()),
        _ => io_err("open", path)(e),
    };
    let file = match opts(true).open(path) {
        Ok(f) => {
            // New: exact mode whatever the umask, and a durable name.
            f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
                .map_err(io_err("chmod", path))?;
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            Durable::default()
                .sync_dir(dir)
                .map_err(io_err("fsync", dir))?;
            f
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            opts(false).open(path).map_err(refused)?
        }
        Err(e) => return Err(refused(e)),
    };
    let meta = file.metadata().map_err(io_err("fstat", path))?;
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        // A device, a FIFO, or a hard link planted to make us write into
        // another file: refuse, as Postfix's safe_open does.
        let why = io::Error::from_raw_os_error(libc::EINVAL);
        return Err(io_err("not a regular file with one link", path)(why));
    }
    Ok(file)
}

/// Takes an fcntl(2) write lock on the whole file, retrying until
/// `deadline`. Closing the file releases it.
fn fcntl_lock(file: &File, path: &Path, deadline: Instant) -> Result<(), Error> {
    let whole = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0, // to the end, however far it grows
        l_pid: 0,
    };
    loop {
        match fcntl(file, FcntlArg::F_SETLK(&whole)) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            // Held by another process (POSIX allows either errno).
            Err(Errno::EAGAIN | Errno::EACCES) => {}
            Err(e) => return Err(io_err("fcntl lock", path)(e.into())),
        }
        if Instant::now() >= deadline {
            return Err(Error::LockTimeout(path.to_path_buf()));
        }
        thread::sleep(lock::RETRY_PAUSE);
    }
}

/// Writes `buf` through `out` (which appends to `file`) and fsyncs `file`.
/// On any failure truncates `file` back to `start`, its length before, so
/// that readers never see a partial message (which would swallow the next
/// one), and returns the first error.
pub(crate) fn append_or_truncate(
    file: &File,
    start: u64,
    buf: &[u8],
    out: &mut dyn Write,
) -> io::Result<()> {
    let res = out.write_all(buf).and_then(|()| file.sync_all());
    if let Err(e) = res {
        // Best effort: if this fails too, the first error is the one to
        // report, and nothing better can be done.
        let _ = file.set_len(start);
        let _ = file.sync_all();
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
