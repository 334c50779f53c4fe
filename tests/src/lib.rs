//! The harness that mxa's end-to-end tests share: a temporary system
//! ([`System`]: config, users file, spool, mailroot, certificate, free
//! loopback ports), the built programs ([`bin`]), daemons started and waited
//! for ([`Daemon`]), and real peers from Debian's packages ([`peer`]), which
//! fail the test when `MXA_REQUIRE_PEERS=1` (as CI sets) and skip loudly
//! otherwise.

pub mod dovecot;
pub mod postfix;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Password of the user `test@example.test` in every [`System`].
pub const PASSWORD: &str = "correct horse battery staple";
/// The local domain of every [`System`].
pub const DOMAIN: &str = "example.test";

/// The folder holding the built programs (target/debug or target/release),
/// built once per test run with the same profile as the tests.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/<test-binary>
        let exe = std::env::current_exe().expect("current_exe");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["build", "--workspace", "--bins", "--quiet"]);
        // What `cargo test` set for this test binary is not the outer
        // build's environment: ring's build script reruns when
        // CARGO_MANIFEST_DIR changes, and everything above it relinks.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_BIN_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                ]
                .contains(&&*k)
                || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*k)
            {
                c.env_remove(&*k);
            }
        }
        if release {
            c.arg("--release");
        }
        let status = c.status().expect("run cargo build");
        assert!(status.success(), "cargo build --bins failed");
        dir
    })
}

/// Path of a built program.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Whether CI demands every peer (`MXA_REQUIRE_PEERS=1`).
pub fn peers_required() -> bool {
    std::env::var("MXA_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Finds a real peer program on PATH. Missing: panics under
/// `MXA_REQUIRE_PEERS=1`, else prints a SKIP line and returns None.
pub fn peer(name: &str) -> Option<PathBuf> {
    // Daemons and their tools (postfix, smtp-sink, dnsmasq) live in sbin,
    // which an ordinary user's PATH may lack.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/sbin"].map(PathBuf::from));
    let found = dirs.map(|d| d.join(name)).find(|p| p.is_file());
    if found.is_none() {
        skip_or_fail(&format!(
            "peer {name} is not installed (.ci/run installs it)"
        ));
    }
    found
}

/// True when running as root; otherwise fails under `MXA_REQUIRE_PEERS=1`
/// and skips loudly.
pub fn require_root(what: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        skip_or_fail(&format!("{what} needs root"));
    }
    root
}

fn skip_or_fail(why: &str) {
    assert!(!peers_required(), "MXA_REQUIRE_PEERS=1 but {why}");
    eprintln!("SKIP: {why}");
}

/// A free port on 127.0.0.1 (TCP and UDP), for a daemon to bind.
///
/// Taken below the kernel's ephemeral range (32768 and up), so that no
/// outgoing connection can be given it between this check and the
/// daemon's bind, and from a cursor that only moves forward within the
/// process (starting at a place that depends on the process id), so that
/// two tests never get the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20000;
    const SPAN: u32 = 12000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = u16::try_from(LOW + n % SPAN).expect("port");
        let tcp = TcpListener::bind(("127.0.0.1", port)).is_ok();
        if tcp && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN);
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// Ports of a [`System`]'s listeners.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// MTA (25).
    pub smtp: u16,
    /// Submission (587).
    pub submission: u16,
    /// Submissions (465).
    pub submissions: u16,
    /// POP3 (110).
    pub pop3: u16,
    /// POP3S (995).
    pub pop3s: u16,
}

/// A complete mxa system in a temporary folder.
#[derive(Debug)]
pub struct System {
    /// The folder; removed on drop.
    pub dir: tempfile::TempDir,
    /// `mxa.toml` in it.
    pub config: PathBuf,
    /// Ports of the listeners.
    pub ports: Ports,
}

impl System {
    /// A system with the default test config.
    pub fn new() -> System {
        System::with_extra("")
    }

    /// A system whose config ends with `extra` (more tables).
    pub fn with_extra(extra: &str) -> System {
        let dir = tempfile::Builder::new()
            .prefix("mxa-test-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path();
        let ports = Ports {
            smtp: free_port(),
            submission: free_port(),
            submissions: free_port(),
            pop3: free_port(),
            pop3s: free_port(),
        };
        std::fs::create_dir_all(root.join("mail")).expect("mkdir");
        std::fs::write(
            root.join("users"),
            format!("test@{DOMAIN}:{}\n", hash(PASSWORD)),
        )
        .expect("users");
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("certificate");
        std::fs::write(root.join("cert.pem"), cert.cert.pem()).expect("cert");
        std::fs::write(root.join("key.pem"), cert.signing_key.serialize_pem()).expect("key");
        let text = format!(
            r#"hostname = "mx.{DOMAIN}"
domains = ["{DOMAIN}"]
users = "users"
spool = "spool"
mailroot = "mail"
user = "nobody"

[smtpd]
listen = ["127.0.0.1:{}"]
submission = ["127.0.0.1:{}"]
submissions = ["127.0.0.1:{}"]
tls_cert = "cert.pem"
tls_key = "key.pem"
max_message_size = "10M"

[pop3d]
listen = ["127.0.0.1:{}"]
pop3s = ["127.0.0.1:{}"]

# Tests never ask a DNS server off this machine: lookups go to a closed
# loopback port and fail as temporary, unless a test runs dnsmasq.
[dns]
nameservers = ["127.0.0.1:9"]
{extra}"#,
            ports.smtp, ports.submission, ports.submissions, ports.pop3, ports.pop3s
        );
        let config = root.join("mxa.toml");
        std::fs::write(&config, text).expect("config");
        System { dir, config, ports }
    }

    /// The system's folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The spool folder.
    pub fn spool_dir(&self) -> PathBuf {
        self.root().join("spool")
    }

    /// The spool, through the library.
    pub fn spool(&self) -> mxa_spool::Spool {
        mxa_spool::Spool::new(self.spool_dir())
    }

    /// A command for program `name` with `MXA_CONFIG` pointing at this system.
    pub fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(bin(name));
        c.env("MXA_CONFIG", &self.config);
        c
    }

    /// Sets one key of the config: replaces the line `key = …` (the first
    /// one, in whatever table) with `key = value`, or adds it at the top of
    /// `[smtpd]` when absent.
    pub fn set(&self, key: &str, value: &str) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let line = format!("{key} = {value}");
        let out = if text.lines().any(|l| l.starts_with(&format!("{key} ="))) {
            let mut done = false;
            text.lines()
                .map(|l| {
                    if !done && l.starts_with(&format!("{key} =")) {
                        done = true;
                        line.clone()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        } else {
            text.replacen("[smtpd]\n", &format!("[smtpd]\n{line}\n"), 1)
        };
        std::fs::write(&self.config, out).expect("config");
    }

    /// The spool folder, made and given to `nobody` (the config's `user`)
    /// when running as root, so that a daemon that dropped root can write
    /// it; the runner, as root, can too.
    pub fn spool_for_daemons(&self) -> PathBuf {
        let dir = self.spool_dir();
        std::fs::create_dir_all(&dir).expect("mkdir spool");
        if nix::unistd::geteuid().is_root() {
            let nobody = nix::unistd::User::from_name("nobody")
                .ok()
                .flatten()
                .expect("the account nobody");
            nix::unistd::chown(&dir, Some(nobody.uid), Some(nobody.gid)).expect("chown spool");
            // setgid: folders made inside by root keep nobody's group.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2770))
                .expect("chmod spool");
        }
        dir
    }

    /// Starts mxa-smtpd on the system's three ports (after
    /// [`System::spool_for_daemons`]); killed on drop. Its log goes to
    /// `smtpd.log` in the system's folder.
    pub fn smtpd(&self) -> Daemon {
        self.spool_for_daemons();
        let log = std::fs::File::create(self.root().join("smtpd.log")).expect("log file");
        let path = self.root().join("smtpd.log");
        let d = Daemon::start_logged(
            self.cmd("mxa-smtpd").stderr(log),
            self.ports.smtp,
            Some(&path),
        );
        for p in [self.ports.submission, self.ports.submissions] {
            assert!(wait_for_port(p, Duration::from_secs(10)), "port {p}");
        }
        d
    }

    /// mxa-smtpd's log so far.
    pub fn smtpd_log(&self) -> String {
        std::fs::read_to_string(self.root().join("smtpd.log")).unwrap_or_default()
    }

    /// The queued messages: (id, envelope text, data), oldest first.
    pub fn queued(&self) -> Vec<(String, String, Vec<u8>)> {
        let spool = self.spool_dir();
        let mut ids: Vec<String> = std::fs::read_dir(spool.join("env"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let env = std::fs::read_to_string(spool.join("env").join(&id)).expect("envelope");
                let data = std::fs::read(spool.join("data").join(&id)).expect("data");
                (id, env, data)
            })
            .collect()
    }

    /// Runs `name ARGS` with `stdin` and returns its output.
    pub fn run(&self, name: &str, args: &[&str], stdin: &[u8]) -> Output {
        run_with_input(self.cmd(name).args(args), stdin)
    }
}

impl Default for System {
    fn default() -> System {
        System::new()
    }
}

/// Runs a command with `stdin` written to it and returns its output.
pub fn run_with_input(c: &mut Command, stdin: &[u8]) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin);
    }
    child.wait_with_output().expect("wait")
}

/// An argon2id hash for the users file.
pub fn hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("random");
    let salt = SaltString::encode_b64(&salt).expect("salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

/// dnsmasq on loopback, serving a `test.` zone made of `records` (its
/// command-line options: `--mx-host=…`, `--host-record=…`, which also
/// makes the PTR records); killed on drop.
#[derive(Debug)]
pub struct Dnsmasq {
    child: Child,
    /// Its UDP and TCP port on 127.0.0.1.
    pub port: u16,
}

impl Dnsmasq {
    /// Starts it, or None when dnsmasq is missing (see [`peer`]).
    pub fn start(records: &[&str]) -> Option<Dnsmasq> {
        let bin = peer("dnsmasq")?;
        let port = free_port();
        let child = Command::new(bin)
            .args([
                "--no-daemon",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
            ])
            .args(["--conf-file=/dev/null", "--local=/test/"])
            .arg(format!("--port={port}"))
            .args(records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "dnsmasq did not listen"
        );
        Some(Dnsmasq { child, port })
    }

    /// Points `sys`'s `[dns] nameservers` at this server.
    pub fn serve(&self, sys: &System) {
        let cfg = std::fs::read_to_string(&sys.config).expect("config");
        let cfg = cfg.replace("\"127.0.0.1:9\"", &format!("\"127.0.0.1:{}\"", self.port));
        std::fs::write(&sys.config, cfg).expect("config");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon child, killed on drop.
#[derive(Debug)]
pub struct Daemon {
    /// The process.
    pub child: Child,
}

impl Daemon {
    /// Spawns `c` and waits until `port` accepts connections.
    pub fn start(c: &mut Command, port: u16) -> Daemon {
        Daemon::start_logged(c, port, None)
    }

    /// As [`Daemon::start`]; if it exits first, the panic shows `log`.
    pub fn start_logged(c: &mut Command, port: u16, log: Option<&Path>) -> Daemon {
        let child = c.stdin(Stdio::null()).spawn().expect("spawn daemon");
        let mut d = Daemon { child };
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                let text = log.map(std::fs::read_to_string).and_then(Result::ok);
                panic!(
                    "daemon for port {port} exited before listening: {status}\n{}",
                    text.unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < end,
                "daemon did not listen on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Text of a process's stderr, for assertions.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Text of a process's stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Tallies the `X-Token: N` headers of delivered messages against tokens
/// `0..n`: returns the tokens never delivered and the number of extra
/// copies (the at-least-once cost of a crash).
pub fn tally_tokens<S: AsRef<str>>(
    texts: impl IntoIterator<Item = S>,
    n: usize,
) -> (Vec<usize>, usize) {
    let mut seen = std::collections::HashMap::new();
    for t in texts {
        let tok: usize = t
            .as_ref()
            .lines()
            .find_map(|l| l.strip_prefix("X-Token: "))
            .and_then(|t| t.parse().ok())
            .expect("an X-Token header");
        *seen.entry(tok).or_insert(0usize) += 1;
    }
    let missing = (0..n).filter(|i| !seen.contains_key(i)).collect();
    (missing, seen.values().map(|c| c - 1).sum())
}

/// The `id=` value of a log line (as `mxa-sendmail -v` prints).
pub fn logged_id(text: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("id="))
        .map(str::to_string)
}
