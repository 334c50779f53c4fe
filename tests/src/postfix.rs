//! A private Postfix instance on loopback, for tests that need Postfix as a
//! real peer: local(8) running `mailbox_command`, pipe(8) transports, and
//! relaying to mxa.
//!
//! Everything lives in one temporary folder (`etc/` is the
//! config_directory, `queue/` the queue_directory, `data/` the
//! data_directory, `mail/` the mail_spool_directory, `maillog` the log), so
//! instances run side by side and beside a system Postfix without touching
//! it. It needs root (the master runs as root, the daemons as `postfix`, as
//! Debian's package sets up) and Debian's `postfix` package; without either
//! [`Postfix::start`] returns None after [`peer`]'s skip-or-fail.
//!
//! Mail for other domains (bounces too) fails at once through
//! `default_transport = error`, so no test looks up DNS: a test that relays
//! to mxa sets `relayhost = [127.0.0.1]:PORT` and `default_transport = smtp`.
//! Mail for the local domain [`PF_DOMAIN`] goes to local(8), whose commands
//! run as the recipient: use [`test_user`] (created on first use) as the
//! recipient and [`Postfix::user_dir`] for a folder it may write.
//!
//! ```no_run
//! use mxa_tests::postfix::{Postfix, test_user, wait_until};
//! # use std::time::Duration;
//! let cmd = "/bin/sh -c 'cat > {dir}/out/msg'"; // runs as the recipient
//! let Some(pf) = Postfix::start(&[("mailbox_command", cmd)], "") else {
//!     return; // skipped: no postfix, or not root
//! };
//! let out = pf.user_dir(&test_user(), "out"); // {dir} is pf.dir
//! pf.send("mxatest@pf.example.test", b"Subject: hi\n\nbody\n");
//! assert!(pf.wait_queue_empty(Duration::from_secs(20)), "{}", pf.log());
//! assert!(wait_until(Duration::from_secs(5), || out.join("msg").exists()));
//! ```

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::unistd::User;
use tempfile::TempDir;

use crate::{free_port, peer, require_root, run_with_input, wait_for_port};

/// The local domain (in `mydestination`) of every instance.
pub const PF_DOMAIN: &str = "pf.example.test";
/// The system user that [`test_user`] creates.
pub const TEST_USER: &str = "mxatest";

/// The master daemon, in Debian's daemon_directory; `-t` says whether it runs.
const MASTER: &str = "/usr/lib/postfix/sbin/master";

/// The harness's main.cf; `{dir}` is the instance's folder.
const MAIN_CF: &str = "\
# Written by the mxa test harness (tests/src/postfix.rs).
compatibility_level = 3.6
config_directory = {dir}/etc
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_spool_directory = {dir}/mail
maillog_file = {dir}/maillog
# Postfix refuses a maillog_file outside these prefixes.
maillog_file_prefixes = {dir}
myhostname = mx.pf.example.test
mydomain = pf.example.test
mydestination = pf.example.test, localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
default_transport = error:remote delivery is off in tests
alias_maps =
recipient_delimiter = +
biff = no
# Deferred mail is retried within seconds. A backoff of 1s races: qmgr may
# scan the message while the delivery agent still holds its lock, and then
# parks it for 60s in incoming.
queue_run_delay = 1s
minimal_backoff_time = 2s
maximal_backoff_time = 10s
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME
";

/// The standard services of master.cf, none chrooted.
const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// One message in the queue, from `postqueue -j`.
#[derive(Debug, Clone)]
pub struct Queued {
    /// `incoming`, `active`, `deferred`, `hold` or `maildrop`.
    pub queue: String,
    /// Postfix's queue id.
    pub id: String,
    /// The whole JSON object (recipients[].delay_reason is in it).
    pub json: String,
}

/// A running private Postfix; stopped and removed on drop (its log is
/// printed first when the test is panicking).
#[derive(Debug)]
pub struct Postfix {
    /// The instance's folder.
    pub dir: TempDir,
    /// Its SMTP listener on 127.0.0.1.
    pub smtp_port: u16,
}

impl Postfix {
    /// Starts an instance whose main.cf is the harness's defaults with
    /// `main_cf_extra` set on top (a key given replaces the default), and
    /// whose master.cf is the standard services, smtpd on
    /// 127.0.0.1:[`Postfix::smtp_port`], then `master_cf_extra`; `{dir}` in
    /// either stands for the instance's folder. Returns once the SMTP port
    /// accepts connections; panics if Postfix fails.
    pub fn start(main_cf_extra: &[(&str, &str)], master_cf_extra: &str) -> Option<Postfix> {
        peer("postfix")?;
        if !require_root("a private Postfix") {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("mxa-postfix-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        // The daemons run as `postfix` and must reach the queue; `postfix
        // start` chdirs to it before it makes the folders inside.
        let dirs = [("", 0o755), ("etc", 0o755), ("queue", 0o755)];
        for (sub, m) in dirs.into_iter().chain([("mail", 0o1777)]) {
            fs::create_dir_all(root.join(sub)).expect("mkdir");
            fs::set_permissions(root.join(sub), fs::Permissions::from_mode(m)).expect("chmod");
        }
        let d = root.display().to_string();
        let mut main = String::new();
        for l in MAIN_CF.lines() {
            if !main_cf_extra
                .iter()
                .any(|(k, _)| l.starts_with(&format!("{k} =")))
            {
                main += &format!("{l}\n");
            }
        }
        for (k, v) in main_cf_extra {
            main += &format!("{k} = {v}\n");
        }
        fs::write(root.join("etc/main.cf"), main.replace("{dir}", &d)).expect("main.cf");
        let smtp_port = free_port();
        let master =
            format!("127.0.0.1:{smtp_port} inet n - n - - smtpd\n{MASTER_CF}{master_cf_extra}\n");
        fs::write(root.join("etc/master.cf"), master.replace("{dir}", &d)).expect("master.cf");
        // Postfix re-reads a config file until it is 2 s old ("cool down").
        let past = std::time::SystemTime::now() - Duration::from_secs(60);
        for f in ["etc/main.cf", "etc/master.cf"] {
            let file = fs::File::options().write(true).open(root.join(f));
            file.and_then(|f| f.set_modified(past)).expect("set mtime");
        }
        let pf = Postfix { dir, smtp_port };
        let out = pf.run("postfix", &["start"]);
        let text = format!("{}{}", crate::stdout(&out), crate::stderr(&out));
        assert!(out.status.success(), "postfix start: {text}\n{}", pf.log());
        assert!(
            wait_for_port(smtp_port, Duration::from_secs(20)),
            "postfix smtpd does not listen on {smtp_port}\n{}",
            pf.log()
        );
        Some(pf)
    }

    /// The config_directory, for `-c` (postfix, postqueue, postconf) or
    /// `-C` (sendmail).
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let mut c = Command::new(program);
        run_with_input(c.arg("-c").arg(self.config_dir()).args(args), b"")
    }

    /// `postconf -n`: the settings in force, for debugging.
    pub fn postconf(&self) -> String {
        crate::stdout(&self.run("postconf", &["-n"]))
    }

    /// The instance's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Submits `message` for `to` through Postfix's sendmail (pickup), with
    /// sender `sender@b.example`; panics if sendmail fails.
    pub fn send(&self, to: &str, message: &[u8]) {
        let mut c = Command::new("/usr/sbin/sendmail");
        c.arg("-C").arg(self.config_dir());
        let out = run_with_input(c.args(["-f", "sender@b.example", "--", to]), message);
        assert!(out.status.success(), "sendmail: {}", crate::stderr(&out));
    }

    /// The queue's messages (`postqueue -j`).
    pub fn queue(&self) -> Vec<Queued> {
        let out = self.run("postqueue", &["-j"]);
        assert!(out.status.success(), "postqueue: {}", crate::stderr(&out));
        crate::stdout(&out)
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| Queued {
                queue: json_str(l, "queue_name"),
                id: json_str(l, "queue_id"),
                json: l.to_string(),
            })
            .collect()
    }

    /// Waits until the queue is empty.
    pub fn wait_queue_empty(&self, timeout: Duration) -> bool {
        wait_until(timeout, || self.queue().is_empty())
    }

    /// Waits until a message is in the `deferred` queue and returns it.
    pub fn wait_deferred(&self, timeout: Duration) -> Option<Queued> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.queue().into_iter().find(|q| q.queue == "deferred");
            found.is_some()
        });
        found
    }

    /// `postqueue -f`: retries deferred mail now. Not at once after a
    /// deferral: qmgr parks a message that a delivery agent still holds for
    /// 60 s (log: "skipped, still being delivered").
    pub fn flush(&self) {
        self.run("postqueue", &["-f"]);
    }

    /// A folder `name` in the instance's folder owned by `user`, for what
    /// local(8) or pipe(8) run as that user to write.
    pub fn user_dir(&self, user: &User, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::create_dir_all(&p).expect("mkdir");
        chown(&p, Some(user.uid.as_raw()), Some(user.gid.as_raw())).expect("chown");
        p
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let dir = self.dir.path().display();
            eprintln!("--- postfix log ({dir}):\n{}", self.log());
        }
        // `postfix stop` checks once a second whether the master is gone:
        // `abort` sends the same SIGTERM, and this checks more often.
        let _ = self.run("postfix", &["abort"]);
        let running = || {
            let mut c = Command::new(MASTER);
            c.arg("-c").arg(self.config_dir()).arg("-t");
            c.stderr(Stdio::null()).status().is_ok_and(|s| !s.success())
        };
        if !wait_until(Duration::from_secs(10), || !running()) {
            let _ = self.run("postfix", &["stop"]); // kills it
        }
    }
}

/// The system user [`TEST_USER`] (home `/home/mxatest`), created with
/// useradd on first use. Needs root.
pub fn test_user() -> User {
    static USER: OnceLock<User> = OnceLock::new();
    USER.get_or_init(|| {
        let find = || User::from_name(TEST_USER).expect("getpwnam");
        if let Some(u) = find() {
            return u;
        }
        // Another test binary may create it at the same time: look again.
        let _ = Command::new("useradd")
            .args(["--create-home", "--home-dir", "/home/mxatest"])
            .args(["--shell", "/bin/sh", TEST_USER])
            .status();
        find().expect("useradd mxatest")
    })
    .clone()
}

/// Polls `f` every 25 ms until it is true or `timeout` has passed.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The string value of `"key": "value"` in postqueue's JSON (queue names
/// and ids need no unescaping).
fn json_str(line: &str, key: &str) -> String {
    let pat = format!("\"{key}\": \"");
    line.split_once(&pat)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_string())
        .unwrap_or_default()
}
