//! mxa-smtpd: see mxa-smtpd(8). The SMTP receiver (port 25: mail for the
//! local domains, relay for `trusted_networks`) and submission server
//! (587 with STARTTLS, 465 with implicit TLS: AUTH, then relay for the
//! user). Binds as root, then drops to `user` before reading from anyone.

mod conn;
mod policy;
mod store;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mxa_cli::exit;
use mxa_config::Config;
use mxa_daemon::auth::Accounts;
use mxa_daemon::limits::{Limiter, Refusal};
use mxa_smtp::server::{BareLf, Config as SessionConfig};
use mxa_spool::Spool;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use conn::Client;

const PROG: &str = "mxa-smtpd";

/// How long transactions in flight may go on after SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

const USAGE: &str = "usage: mxa-smtpd [-c FILE] [--stdio [--submission]]";

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 25: local domains, relay only for trusted networks; STARTTLS.
    Mta,
    /// Port 587: STARTTLS, then AUTH before MAIL.
    Submission,
    /// Port 465: TLS at once, then AUTH before MAIL.
    Submissions,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Mta => "smtp",
            Role::Submission => "submission",
            Role::Submissions => "submissions",
        }
    }
}

/// What every connection shares.
pub struct Ctx {
    config: Config,
    spool: &'static Spool,
    accounts: Accounts,
    aliases: policy::AliasFile,
    tls: Option<TlsAcceptor>,
    /// Made on the first client from outside loopback.
    resolver: std::sync::OnceLock<Option<mxa_dns::Resolver>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("spool", &self.spool)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Ctx {
    fn session_config(&self, role: Role) -> SessionConfig {
        let s = &self.config.smtpd;
        let mut c = SessionConfig::new(self.config.hostname.clone());
        c.max_message_size = s.max_message_size;
        c.max_recipients = usize::try_from(s.max_recipients).unwrap_or(usize::MAX);
        c.bare_lf = match s.bare_lf {
            mxa_config::BareLf::Normalize => BareLf::Normalize,
            mxa_config::BareLf::Reject => BareLf::Reject,
        };
        c.tls_available = self.tls.is_some();
        match role {
            Role::Mta => {}
            Role::Submission => {
                c.auth_offered = true;
                c.auth_required = true;
            }
            Role::Submissions => {
                c.auth_offered = true;
                c.auth_required = true;
                c.tls_implicit = true;
            }
        }
        c
    }

    /// The client's name for `Received:`: "localhost" on loopback, else
    /// its forward-confirmed reverse DNS name, else "unknown" (as
    /// Postfix). Blocking (DNS): run it off the async threads.
    fn client_name(&self, ip: IpAddr) -> String {
        let v4 = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            other => other,
        };
        if v4.is_loopback() {
            return "localhost".into();
        }
        let resolver = self
            .resolver
            .get_or_init(|| mxa_dns::Resolver::new(&self.config.dns.nameservers).ok());
        resolver
            .as_ref()
            .and_then(|r| r.client_name(ip))
            .unwrap_or_else(|| "unknown".into())
    }
}

/// Writes one log line.
pub fn log(pairs: &[(&str, &dyn std::fmt::Display)]) {
    mxa_cli::log(PROG, pairs);
}

struct Args {
    config: Option<PathBuf>,
    stdio: bool,
    submission: bool,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        config: None,
        stdio: false,
        submission: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-c" => a.config = Some(it.next().ok_or("-c needs a FILE")?.into()),
            s if s.starts_with("-c") => a.config = Some(s[2..].into()),
            "--stdio" => a.stdio = true,
            "--submission" => a.submission = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.submission && !a.stdio {
        return Err("--submission goes with --stdio".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse_args(&mxa_cli::args()) {
        Ok(a) => a,
        Err(m) if m.is_empty() => {
            println!("{USAGE}");
            std::process::exit(exit::OK);
        }
        Err(m) => {
            eprintln!("{PROG}: {m}\n{USAGE}");
            std::process::exit(exit::USAGE);
        }
    };
    std::process::exit(run(&args));
}

fn fail(code: i32, msg: impl std::fmt::Display) -> i32 {
    eprintln!("{PROG}: {msg}");
    code
}

fn run(args: &Args) -> i32 {
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(exit::CONFIG, e),
    };
    // Everything that may need root is read now: the key, the users file.
    let tls = match (&config.smtpd.tls_cert, &config.smtpd.tls_key) {
        (Some(c), Some(k)) => match mxa_daemon::tls::server_config(c, k) {
            Ok(t) => Some(TlsAcceptor::from(t)),
            Err(e) => return fail(exit::CONFIG, e),
        },
        (None, None) => None,
        _ => return fail(exit::CONFIG, "tls_cert and tls_key go together"),
    };
    let accounts = match Accounts::new(&config) {
        Ok(a) => a,
        Err(e) => return fail(exit::CONFIG, e),
    };
    let aliases = match policy::AliasFile::new(&config) {
        Ok(a) => a,
        Err(e) => return fail(exit::CONFIG, e),
    };
    let listeners = if args.stdio {
        Vec::new()
    } else {
        let roles = [
            (Role::Mta, &config.smtpd.listen),
            (Role::Submission, &config.smtpd.submission),
            (Role::Submissions, &config.smtpd.submissions),
        ];
        let mut all = Vec::new();
        for (role, addrs) in roles {
            match mxa_daemon::bind(addrs) {
                Ok(ls) => all.extend(ls.into_iter().map(|l| (role, l))),
                Err(e) => return fail(exit::UNAVAILABLE, e),
            }
        }
        if all.iter().any(|(r, _)| *r == Role::Submissions) && tls.is_none() {
            return fail(
                exit::CONFIG,
                "submissions (port 465) needs tls_cert and tls_key",
            );
        }
        all
    };
    if let Err(e) = mxa_daemon::drop_root(&config.user) {
        return fail(exit::NOPERM, e);
    }
    let spool: &'static Spool = Box::leak(Box::new(Spool::new(config.spool.clone())));
    let ctx = Arc::new(Ctx {
        config,
        spool,
        accounts,
        aliases,
        tls,
        resolver: std::sync::OnceLock::new(),
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mxa-smtpd")
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(exit::SOFTWARE, e),
    };
    if args.stdio {
        runtime.block_on(stdio(ctx, args.submission))
    } else {
        runtime.block_on(daemon(ctx, listeners))
    }
}

/// One session on stdin and stdout (inetd, tcpserver, systemd
/// `Accept=yes`, `mxa-sendmail -bs`).
async fn stdio(ctx: Arc<Ctx>, submission: bool) -> i32 {
    let ip = mxa_daemon::stdio_peer();
    let trusted = ip.is_none_or(|ip| {
        ctx.config
            .smtpd
            .trusted_networks
            .iter()
            .any(|n| n.contains(ip))
    });
    let client = Client {
        ip,
        trusted,
        sid: mxa_daemon::session_id(),
    };
    let role = if submission {
        Role::Submission
    } else {
        Role::Mta
    };
    log(&[
        ("event", &"connect"),
        ("session", &client.sid),
        (
            "ip",
            &ip.map_or_else(|| "local".to_string(), |i| i.to_string()),
        ),
        ("service", &format!("{}-stdio", role.name())),
    ]);
    let (_tx, rx) = watch::channel(false);
    let io = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
    conn::serve(io, ctx, role, client, rx).await;
    exit::OK
}

/// The listeners, until SIGTERM or SIGINT; then transactions in flight get
/// [`DRAIN`] to finish.
async fn daemon(ctx: Arc<Ctx>, listeners: Vec<(Role, std::net::TcpListener)>) -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let s = &ctx.config.smtpd;
    let limiter = Limiter::new(
        s.max_connections,
        s.max_connections_per_client,
        s.trusted_networks.clone(),
    );
    let (tx, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (role, l) in listeners {
        let l = match TcpListener::from_std(l) {
            Ok(l) => l,
            Err(e) => return fail(exit::UNAVAILABLE, e),
        };
        if let Ok(a) = l.local_addr() {
            log(&[
                ("event", &"listening"),
                ("service", &role.name()),
                ("address", &a),
            ]);
        }
        tasks.push(tokio::spawn(accept_loop(
            l,
            role,
            Arc::clone(&ctx),
            Arc::clone(&limiter),
            rx.clone(),
        )));
    }
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return fail(exit::SOFTWARE, "cannot catch signals");
    };
    let signal = tokio::select! {
        _ = term.recv() => "TERM",
        _ = int.recv() => "INT",
    };
    log(&[
        ("event", &"stopping"),
        ("signal", &signal),
        ("open", &limiter.open()),
    ]);
    let _ = tx.send(true);
    for t in tasks {
        t.abort();
    }
    let deadline = Instant::now() + DRAIN;
    while limiter.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log(&[("event", &"stopped"), ("open", &limiter.open())]);
    exit::OK
}

async fn accept_loop(
    l: TcpListener,
    role: Role,
    ctx: Arc<Ctx>,
    limiter: Arc<Limiter>,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let (mut sock, addr) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: wait instead of spinning.
                log(&[("event", &"accept-failed"), ("error", &e)]);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = addr.ip();
        let sid = mxa_daemon::session_id();
        let permit = match limiter.acquire(ip) {
            Ok(p) => p,
            Err(why) => {
                let what = match why {
                    Refusal::Total => "too-many-connections",
                    Refusal::PerClient => "too-many-connections-from-client",
                };
                log(&[
                    ("event", &"refused"),
                    ("session", &sid),
                    ("ip", &ip),
                    ("reason", &what),
                ]);
                let text = format!(
                    "421 4.7.0 {} Too many connections, try again later\r\n",
                    ctx.config.hostname
                );
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        sock.write_all(text.as_bytes()),
                    )
                    .await;
                });
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let trusted = ctx
            .config
            .smtpd
            .trusted_networks
            .iter()
            .any(|n| n.contains(ip));
        log(&[
            ("event", &"connect"),
            ("session", &sid),
            ("ip", &ip),
            ("port", &addr.port()),
            ("service", &role.name()),
        ]);
        let client = Client {
            ip: Some(ip),
            trusted,
            sid,
        };
        let ctx = Arc::clone(&ctx);
        let rx = shutdown.clone();
        tokio::spawn(async move {
            conn::serve(sock, ctx, role, client, rx).await;
            drop(permit);
        });
    }
}
