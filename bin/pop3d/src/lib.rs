//! mxa-pop3d: the POP3 server on Maildir (see mxa-pop3d(8)). The protocol
//! is [`mxa_pop3::Session`]; this crate does the I/O around it: listeners
//! from `[pop3d] listen` (STLS offered when `[smtpd] tls_cert` is set) and
//! `pop3s` (implicit TLS), or one session on stdin and stdout (`--stdio`),
//! connection limits, the users file, and the log.
//!
//! Start-up order (DESIGN.md): read the config, the certificate and the
//! users file, bind, then drop root to `user` before reading from any
//! client.

pub mod args;
pub mod serve;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mxa_cli::exit;
use mxa_daemon::limits::{Limiter, Refusal};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use args::Args;
use serve::{Client, Ctx};

/// How long open sessions get to end after SIGTERM (they are told to stop
/// at their next wait for input) before the process exits anyway.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The reply to a connection over the limits, before closing it.
const TOO_MANY: &[u8] = b"-ERR [SYS/TEMP] Too many connections, try later\r\n";

/// Writes one log line (DESIGN.md: `key=value` on stderr).
pub(crate) fn log(pairs: &[(&str, &dyn std::fmt::Display)]) {
    mxa_cli::log("mxa-pop3d", pairs);
}

/// Runs mxa-pop3d with `args`; returns the exit status.
pub fn run(args: &Args) -> i32 {
    let config = match mxa_config::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mxa-pop3d: {e}");
            return exit::CONFIG;
        }
    };
    let tls = match (&config.smtpd.tls_cert, &config.smtpd.tls_key) {
        (Some(cert), Some(key)) => match mxa_daemon::tls::server_config(cert, key) {
            Ok(c) => Some(tokio_rustls::TlsAcceptor::from(c)),
            Err(e) => {
                eprintln!("mxa-pop3d: smtpd.tls_cert: {e}");
                return exit::CONFIG;
            }
        },
        _ => None,
    };
    let accounts = match mxa_daemon::auth::Accounts::new(&config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mxa-pop3d: {e}");
            return exit::CONFIG;
        }
    };
    let ctx = Arc::new(Ctx {
        config,
        accounts,
        tls,
    });
    if args.stdio {
        return run_stdio(ctx);
    }
    run_listeners(ctx)
}

/// One thread runs every session, as an event loop; what blocks (password
/// hashes, Maildir scans and removals, reads of large messages) runs on
/// tokio's blocking pool. Measured with bench/pop3d.sh, this serves a
/// client faster and with less CPU than a multi-threaded runtime handing
/// each command between threads.
fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("mxa-pop3d: cannot start the runtime: {e}");
            exit::SOFTWARE
        })
}

fn drop_root(ctx: &Ctx) -> Result<(), i32> {
    mxa_daemon::drop_root(&ctx.config.user).map_err(|e| {
        eprintln!("mxa-pop3d: user: {e}");
        exit::CONFIG
    })
}

/// `--stdio`: one session on stdin and stdout.
fn run_stdio(ctx: Arc<Ctx>) -> i32 {
    let ip = mxa_daemon::stdio_peer().or_else(stdin_peer);
    if let Err(code) = drop_root(&ctx) {
        return code;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let signals = match Signals::new() {
            Ok(s) => s,
            Err(code) => return code,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        spawn_signal_watch(signals, stop_tx);
        let stream = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
        let client = Client {
            ip,
            implicit_tls: false,
        };
        match serve::session(ctx, stream, client, stop_rx).await {
            Ok(_) => exit::OK,
            Err(_) => exit::IOERR,
        }
    })
}

/// The peer of a socket on stdin (inetd sets no variable); None for a
/// pipe or a terminal, which are local.
fn stdin_peer() -> Option<IpAddr> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    std::net::TcpStream::from(fd)
        .peer_addr()
        .ok()
        .map(|a| a.ip())
}

/// The daemon: every listener until SIGTERM or SIGINT.
fn run_listeners(ctx: Arc<Ctx>) -> i32 {
    let p = &ctx.config.pop3d;
    if !p.pop3s.is_empty() && ctx.tls.is_none() {
        eprintln!(
            "mxa-pop3d: pop3d.pop3s: implicit TLS needs a certificate (smtpd.tls_cert and smtpd.tls_key); set them, or pop3s = []"
        );
        return exit::CONFIG;
    }
    if p.listen.is_empty() && p.pop3s.is_empty() {
        eprintln!("mxa-pop3d: pop3d.listen and pop3d.pop3s are both empty: nothing to serve");
        return exit::CONFIG;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        // Signals first: once bound, a client (or a test) may connect and
        // a service manager may send SIGTERM at once.
        let stopped = match Signals::new() {
            Ok(s) => s,
            Err(code) => return code,
        };
        let p = &ctx.config.pop3d;
        let (plain, tls) = match (mxa_daemon::bind(&p.listen), mxa_daemon::bind(&p.pop3s)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("mxa-pop3d: {e}");
                return exit::UNAVAILABLE;
            }
        };
        if let Err(code) = drop_root(&ctx) {
            return code;
        }
        let s = &ctx.config.smtpd;
        let limiter = Limiter::new(
            s.max_connections,
            s.max_connections_per_client,
            s.trusted_networks.clone(),
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for (listener, implicit) in plain
            .into_iter()
            .map(|l| (l, false))
            .chain(tls.into_iter().map(|l| (l, true)))
        {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("mxa-pop3d: {e}");
                    return exit::UNAVAILABLE;
                }
            };
            let addr = listener
                .local_addr()
                .map_or_else(|_| "?".to_string(), |a| a.to_string());
            log(&[
                ("event", &"listen"),
                ("address", &addr),
                ("tls", &if implicit { "implicit" } else { "stls" }),
            ]);
            tasks.push(tokio::spawn(accept_loop(
                Arc::clone(&ctx),
                listener,
                implicit,
                Arc::clone(&limiter),
                stop_rx.clone(),
            )));
        }
        stopped.wait().await;
        log(&[("event", &"stop"), ("sessions", &limiter.open())]);
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while limiter.open() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        exit::OK
    })
}

async fn accept_loop(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    implicit: bool,
    limiter: Arc<Limiter>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => Some(r),
            _ = stop.wait_for(|s| *s) => None,
        };
        let (mut stream, peer): (tokio::net::TcpStream, SocketAddr) = match accepted {
            None => return,
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                // EMFILE and the like: wait a moment rather than spin.
                log(&[("event", &"accept-failed"), ("error", &e)]);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = peer.ip().to_canonical();
        let permit = match limiter.acquire(ip) {
            Ok(p) => p,
            Err(why) => {
                let reason = match why {
                    Refusal::Total => "total",
                    Refusal::PerClient => "per-client",
                };
                log(&[("event", &"refused"), ("client", &ip), ("reason", &reason)]);
                if !implicit {
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(5),
                            stream.write_all(TOO_MANY),
                        )
                        .await;
                    });
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctx = Arc::clone(&ctx);
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = Client {
                ip: Some(ip),
                implicit_tls: implicit,
            };
            let _ = serve::session(ctx, stream, client, stop).await;
            drop(permit);
        });
    }
}

/// SIGTERM and SIGINT, registered before anything can send them.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, i32> {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Ok(Signals { term, int }),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("mxa-pop3d: cannot handle signals: {e}");
                Err(exit::SOFTWARE)
            }
        }
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

fn spawn_signal_watch(signals: Signals, stop: watch::Sender<bool>) {
    tokio::spawn(async move {
        signals.wait().await;
        let _ = stop.send(true);
    });
}
