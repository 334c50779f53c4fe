//! mxa-spool: the queue directory shared by every mxa program.
//!
//! Main types: [`Spool`] (a spool directory), [`Injection`] (a message being
//! queued), [`Claim`] (exclusive right to work on a queued message),
//! [`Envelope`] and [`QueueId`], and [`Waiter`] (the wake-up signal).
//!
//! # The protocol
//!
//! ```text
//! <spool>/tmp/<id>.data    message being written            (injector)
//! <spool>/tmp/<id>.env.*   envelope being written           (injector, runner)
//! <spool>/data/<id>        message, immutable once linked    (injector)
//! <spool>/env/<id>         envelope; its presence = queued   (injector, runner)
//! ```
//!
//! **Injection** (mxa-sendmail, mxa-postdrop, mxa-smtpd), in this order:
//! 1. write the message and the envelope into unnamed O_TMPFILE files in
//!    `tmp/` (a crash frees them; no unlink once linked), or, where the
//!    file system has none, into `tmp/<id>.data` (O_EXCL) and
//!    `tmp/<id>.env.<n>`;
//! 2. fsync both files; link the data file to `data/<id>`, then the
//!    envelope to `env/<id>` (never replacing);
//! 3. fsync `data/`, then `env/` (one fsync each may serve several
//!    concurrent injections: group commit);
//! 4. only now acknowledge (SMTP 250, exit 0).
//!
//! A crash before 3 completes may leave `env/<id>`, `data/<id>`, both or
//! neither; nobody acknowledged the message. An orphan `data/<id>` and
//! `tmp/*` files are removed by [`Spool::cleanup`] once 36 hours old; an
//! `env/<id>` without its data file (never a live state: data is linked
//! first and removed last) at the next cleanup. A crash after 3 leaves a
//! complete queued message. Every failure reported by a step removes what
//! the injection made, so a failed injection leaves nothing.
//!
//! **Claim** (mxa-queue): `flock(LOCK_EX|LOCK_NB)` on `data/<id>`, which is
//! never replaced, so the lock always covers the one message. The kernel
//! drops the lock when its holder dies: no stale lock survives a crash, and
//! two runners never work on the same message, hence the same recipient, at
//! once. `hold`, `release` and `delete` claim too.
//!
//! **Update** (runner, hold, release): while claimed, write a new envelope to
//! `tmp/`, fsync, rename over `env/<id>`, fsync `env/`. A crash leaves the
//! old or the new envelope, both complete; at worst a delivery made just
//! before the crash is repeated (invariant 5).
//!
//! **Removal** (runner once every recipient is final and bounces are queued;
//! `mxa-queue delete`): while claimed, unlink `env/<id>`, fsync `env/`, then
//! unlink `data/<id>`. A crash in between leaves an orphan data file,
//! invisible and swept after 36 hours.
//!
//! **Wake-up**: a running queue runner watches `env/` with inotify
//! ([`Waiter`]); the link of step 3 wakes it. Nothing needs to signal it, so
//! an injector without write access to any FIFO still wakes it.

mod envelope;
mod id;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mxa_durable::{Durable, Publish, TempFile};
use nix::fcntl::{Flock, FlockArg};

pub use envelope::{Envelope, MAGIC, Recipient, State, Success};
pub use id::{ID_LEN, QueueId};

/// Temporary files and orphans older than this are removed (DESIGN.md,
/// invariant 2). Longer than any injection or delivery can take.
pub const TMP_MAX_AGE: Duration = Duration::from_secs(36 * 3600);

/// Modes, set whatever the umask: the daemon's group may enter and write the
/// folders (setgid, so files take the spool's group), and read the files;
/// others get nothing.
const DIR_MODE: u32 = 0o2770;
const FILE_MODE: u32 = 0o640;

/// What can go wrong with the spool. Each variant says whether trying again
/// later may help ([`Error::is_temporary`]).
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
    /// No message with this id is queued.
    #[error("no message {0} in the queue")]
    NotFound(QueueId),
    /// Another process holds the message.
    #[error("message {0} is being worked on by another process")]
    Busy(QueueId),
    /// An envelope file could not be read.
    #[error("{path}:{line}: damaged envelope: {msg}")]
    BadEnvelope {
        /// The envelope file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

impl Error {
    /// True when the same operation may succeed later (busy, disk full, I/O).
    pub fn is_temporary(&self) -> bool {
        !matches!(self, Error::NotFound(_) | Error::BadEnvelope { .. })
    }

    /// True for permission errors (an ordinary user facing the system spool).
    pub fn is_permission(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied)
    }
}

type Result<T> = std::result::Result<T, Error>;

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// The current Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A spool directory. Creating the value does no I/O; the folders are made on
/// the first injection, so an empty or missing spool is an empty queue.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    durable: Durable,
}

impl Spool {
    /// The spool at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Spool {
        Spool {
            root: root.into(),
            durable: Durable::default(),
        }
    }

    /// The same spool writing through `durable` (the test seam).
    pub fn with_durable(mut self, durable: Durable) -> Spool {
        self.durable = durable;
        self
    }

    /// The spool's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Path of a message's data file (`data/<id>`).
    pub fn data_path(&self, id: &QueueId) -> PathBuf {
        self.dir("data").join(id.as_str())
    }

    /// Path of a message's envelope (`env/<id>`).
    pub fn env_path(&self, id: &QueueId) -> PathBuf {
        self.dir("env").join(id.as_str())
    }

    /// Creates the spool's folders if missing.
    pub fn create_dirs(&self) -> Result<()> {
        for d in ["", "tmp", "data", "env"] {
            let p = self.dir(d);
            match fs::DirBuilder::new().mode(DIR_MODE & 0o777).create(&p) {
                Ok(()) => {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&p, fs::Permissions::from_mode(DIR_MODE))
                        .map_err(io_err("chmod", &p))?;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("mkdir", &p)(e)),
            }
        }
        Ok(())
    }

    /// Starts queuing a message: allocates its id and creates its temporary
    /// data file. Write the message into the result, then
    /// [`Injection::commit`]. Dropping it uncommitted removes everything.
    pub fn begin(&self) -> Result<Injection<'_>> {
        self.create_dirs()?;
        // O_EXCL makes a colliding id an error; 40 random bits make a retry
        // all but certain to succeed.
        let mut last = None;
        for _ in 0..8 {
            let id = QueueId::generate();
            let tmp = self.dir("tmp").join(format!("{id}.data"));
            match self.durable.create_unnamed(&tmp, FILE_MODE) {
                Ok(file) => {
                    return Ok(Injection {
                        spool: self,
                        id,
                        file,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(io_err("create", &tmp)(e)),
            }
        }
        Err(io_err("create", &self.dir("tmp"))(
            last.unwrap_or_else(|| io::Error::other("id collision")),
        ))
    }

    /// Queues `data` for `envelope` in one call.
    pub fn inject(&self, envelope: &Envelope, data: &[u8]) -> Result<QueueId> {
        let mut inj = self.begin()?;
        inj.write_all(data)
            .map_err(io_err("write", &self.dir("tmp")))?;
        inj.commit(envelope)
    }

    /// The ids of queued messages, oldest first. A missing spool is empty.
    pub fn list(&self) -> Result<Vec<QueueId>> {
        let dir = self.dir("env");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read_dir", &dir)(e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("read_dir", &dir))?;
            if let Some(id) = entry.file_name().to_str().and_then(QueueId::parse) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Reads a message's envelope without claiming it (a snapshot).
    pub fn envelope(&self, id: &QueueId) -> Result<Envelope> {
        read_envelope(&self.env_path(id), id)
    }

    /// Opens a message's data for reading.
    pub fn open_data(&self, id: &QueueId) -> Result<File> {
        let p = self.data_path(id);
        File::open(&p).map_err(|e| not_found_or(e, id, "open", &p))
    }

    /// Claims a message; `Err(Busy)` if another process holds it.
    pub fn claim(&self, id: &QueueId) -> Result<Claim<'_>> {
        let p = self.data_path(id);
        if !self.env_path(id).exists() {
            return Err(Error::NotFound(id.clone()));
        }
        let file = File::open(&p).map_err(|e| not_found_or(e, id, "open", &p))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                Error::Busy(id.clone())
            } else {
                io_err("flock", &p)(io::Error::from(errno))
            }
        })?;
        // The message may have been removed between our check and the lock.
        let envelope = self.envelope(id)?;
        Ok(Claim {
            spool: self,
            id: id.clone(),
            _lock: lock,
            envelope,
        })
    }

    /// Claims a message, retrying while it is busy for at most `wait`.
    pub fn claim_wait(&self, id: &QueueId, wait: Duration) -> Result<Claim<'_>> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match self.claim(id) {
                Err(Error::Busy(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// Removes temporary files, and data files without an envelope, whose
    /// modification time is older than `max_age` (36 hours in production).
    /// Returns how many were removed.
    pub fn cleanup(&self, max_age: Duration) -> Result<usize> {
        let cutoff = SystemTime::now().checked_sub(max_age).unwrap_or(UNIX_EPOCH);
        let mut removed = 0;
        for d in ["tmp", "data"] {
            let dir = self.dir(d);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read_dir", &dir)(e)),
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                let mtime = UNIX_EPOCH + Duration::from_secs(meta.mtime().max(0) as u64);
                if mtime > cutoff {
                    continue;
                }
                if d == "data" {
                    let queued = entry
                        .file_name()
                        .to_str()
                        .and_then(QueueId::parse)
                        .is_some_and(|id| self.env_path(&id).exists());
                    if queued {
                        continue;
                    }
                }
                if fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
            }
        }
        // An envelope without its data file is never a live state (data is
        // linked first and removed last): it is what a crash before the
        // directory fsyncs of an injection can leave. Nothing was
        // acknowledged for it; it goes at once, whatever its age.
        if let Ok(entries) = fs::read_dir(self.dir("env")) {
            for entry in entries.flatten() {
                let orphan = entry
                    .file_name()
                    .to_str()
                    .and_then(QueueId::parse)
                    .is_some_and(|id| !self.data_path(&id).exists());
                if orphan && fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// A waiter woken when a message is queued or an envelope replaced.
    pub fn waiter(&self) -> Result<Waiter> {
        self.create_dirs()?;
        Waiter::new(&self.dir("env"))
    }

    fn write_envelope(&self, id: &QueueId, env: &Envelope, how: Publish) -> io::Result<()> {
        let n: u32 = rand_u32();
        let tmp = self.dir("tmp").join(format!("{id}.env.{n:08x}"));
        self.durable.write_file(
            &tmp,
            &self.env_path(id),
            FILE_MODE,
            how,
            env.to_text().as_bytes(),
        )
    }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_ne_bytes(b) ^ std::process::id()
}

fn not_found_or(e: io::Error, id: &QueueId, op: &'static str, p: &Path) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::NotFound(id.clone())
    } else {
        io_err(op, p)(e)
    }
}

fn read_envelope(path: &Path, id: &QueueId) -> Result<Envelope> {
    let mut text = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| not_found_or(e, id, "read", path))?;
    Envelope::parse(&text).map_err(|(line, msg)| Error::BadEnvelope {
        path: path.to_path_buf(),
        line,
        msg,
    })
}

/// A message being queued. Implements [`Write`] for its data.
#[derive(Debug)]
pub struct Injection<'a> {
    spool: &'a Spool,
    id: QueueId,
    file: TempFile,
}

impl Injection<'_> {
    /// The id the message will have.
    pub fn id(&self) -> &QueueId {
        &self.id
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.file.len()
    }

    /// Makes the message durable and queued (steps 2 and 3 of the protocol).
    /// When this returns Ok the message may be acknowledged; on Err nothing
    /// of it is visible.
    ///
    /// Both files are written and fsync'd, then linked (data first), then
    /// each directory is fsync'd once: two journal commits rather than four
    /// on the usual file systems, and the directory fsyncs are shared with
    /// concurrent injections ([`mxa_durable::Durable::sync_dir`]). A
    /// crash before the directory fsyncs may leave either name or none;
    /// nothing was acknowledged then, and an envelope whose data file is
    /// missing is such a leftover, removed by [`Spool::cleanup`].
    pub fn commit(self, envelope: &Envelope) -> Result<QueueId> {
        let Injection { spool, id, file } = self;
        let data = spool.data_path(&id);
        let env = spool.env_path(&id);
        let n: u32 = rand_u32();
        let env_tmp = spool.dir("tmp").join(format!("{id}.env.{n:08x}"));
        let mut etmp = spool
            .durable
            .create_unnamed(&env_tmp, FILE_MODE)
            .map_err(io_err("queue envelope", &env_tmp))?;
        etmp.write_all(envelope.to_text().as_bytes())
            .map_err(io_err("queue envelope", &env_tmp))?;
        // Both files synced before either is linked, then both links, then
        // the folders: on a journalling file system that is two commits.
        let mut file = file;
        file.sync().map_err(io_err("queue data", &data))?;
        etmp.sync().map_err(io_err("queue envelope", &env_tmp))?;
        file.link_unsynced(&data)
            .map_err(io_err("queue data", &data))?;
        if let Err(e) = etmp.link_unsynced(&env) {
            let _ = fs::remove_file(&data);
            return Err(io_err("queue envelope", &env)(e));
        }
        let synced = spool
            .durable
            .sync_dir(&spool.dir("data"))
            .map_err(io_err("queue data", &data))
            .and_then(|()| {
                spool
                    .durable
                    .sync_dir(&spool.dir("env"))
                    .map_err(io_err("queue envelope", &env))
            });
        if let Err(e) = synced {
            let _ = fs::remove_file(&env);
            let _ = fs::remove_file(&data);
            return Err(e);
        }
        Ok(id)
    }
}

impl Write for Injection<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Exclusive right to work on one queued message, released on drop (and by
/// the kernel if the holder dies).
#[derive(Debug)]
pub struct Claim<'a> {
    spool: &'a Spool,
    id: QueueId,
    _lock: Flock<File>,
    envelope: Envelope,
}

impl Claim<'_> {
    /// The message's id.
    pub fn id(&self) -> &QueueId {
        &self.id
    }

    /// The envelope as read when claimed, or as last updated.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Opens the message data for reading.
    pub fn data(&self) -> Result<File> {
        self.spool.open_data(&self.id)
    }

    /// Replaces the envelope durably.
    pub fn update(&mut self, envelope: Envelope) -> Result<()> {
        self.spool
            .write_envelope(&self.id, &envelope, Publish::Replace)
            .map_err(io_err("update envelope", &self.spool.env_path(&self.id)))?;
        self.envelope = envelope;
        Ok(())
    }

    /// Removes the message from the spool: envelope first, then data.
    pub fn remove(self) -> Result<()> {
        let env = self.spool.env_path(&self.id);
        self.spool
            .durable
            .remove(&env)
            .map_err(io_err("remove", &env))?;
        let data = self.spool.data_path(&self.id);
        // An orphan data file left by a crash here is swept by cleanup.
        let _ = fs::remove_file(&data);
        Ok(())
    }
}

/// Wakes a queue runner when an envelope appears or changes in `env/`.
#[derive(Debug)]
pub struct Waiter {
    inotify: nix::sys::inotify::Inotify,
}

impl Waiter {
    fn new(dir: &Path) -> Result<Waiter> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let map = |e: nix::errno::Errno| io_err("inotify", dir)(io::Error::from(e));
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(map)?;
        inotify
            .add_watch(dir, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
            .map_err(map)?;
        Ok(Waiter { inotify })
    }

    /// Waits until something is queued or `timeout` passes; true if woken.
    pub fn wait(&self, timeout: Duration) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
        let ready = poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        )
        .unwrap_or(0)
            > 0;
        if ready {
            // Drain every pending event: one wake-up per batch is enough.
            while matches!(self.inotify.read_events(), Ok(ev) if !ev.is_empty()) {}
        }
        ready
    }
}

#[cfg(test)]
mod tests;
