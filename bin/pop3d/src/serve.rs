//! One client session: the I/O around [`mxa_pop3::Session`] (see its loop),
//! with the users file, the Maildir, TLS, the idle timeout and the log.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mxa_daemon::auth::{Accounts, failure_delay};
use mxa_pop3::maildrop::{self, Maildrop};
use mxa_pop3::{Action, IDLE_TIMEOUT, OpenError, Session};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::log;
use mxa_daemon::conn::Conn;

/// Longest TLS handshake (implicit or after STLS).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest single write to the client: a client that stops reading is
/// dropped after as long as one that stops writing.
const WRITE_TIMEOUT: Duration = IDLE_TIMEOUT;

/// Replies are written once this much is waiting, else when the session
/// waits for input (so pipelined commands get one write).
const FLUSH_AT: usize = 64 * 1024;

/// Messages up to this size are read on the session's own thread; larger
/// ones on the blocking pool, so that a big read does not stall others.
const INLINE_READ: u64 = 256 * 1024;

/// What every session shares.
pub struct Ctx {
    /// The configuration.
    pub config: mxa_config::Config,
    /// The users file.
    pub accounts: Accounts,
    /// TLS, when a certificate is configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("config", &self.config.file)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Who is connected, and how.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client's address, when known.
    pub ip: Option<IpAddr>,
    /// TLS was set up before the session (port 995).
    pub implicit_tls: bool,
}

impl Client {
    /// Loopback (or a pipe, with no address): USER/PASS without TLS.
    fn local(&self) -> bool {
        self.ip.is_none_or(|ip| ip.to_canonical().is_loopback())
    }
}

/// How the session ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The session closed (QUIT, too many errors, a timeout, a shutdown).
    Closed(&'static str),
    /// The client went away.
    Eof,
}

/// The state of one session's I/O.
struct Run<S> {
    ctx: Arc<Ctx>,
    conn: Conn<S>,
    session: Session,
    out: Vec<u8>,
    id: String,
    maildrop: Option<Arc<Maildrop>>,
    sizes: Vec<u64>,
    failures: u32,
    reason: &'static str,
}

/// Runs one session on `stream`, up to its end; logs connect, TLS,
/// logins and the disconnect.
pub async fn session<S>(
    ctx: Arc<Ctx>,
    stream: S,
    client: Client,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<End>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = mxa_daemon::session_id();
    let ip = client
        .ip
        .map_or_else(|| "local".to_string(), |i| i.to_string());
    log(&[("event", &"connect"), ("session", &id), ("client", &ip)]);
    let config = mxa_pop3::Config {
        tls_available: ctx.tls.is_some(),
        tls_implicit: client.implicit_tls,
        client_local: client.local(),
        ..mxa_pop3::Config::new(ctx.config.hostname.clone())
    };
    let mut run = Run {
        ctx,
        conn: Conn::Plain(stream),
        session: Session::new(config),
        out: Vec::with_capacity(8192),
        id,
        maildrop: None,
        sizes: Vec::new(),
        failures: 0,
        reason: "closed",
    };
    let result = run.main(&client, &mut shutdown).await;
    let (retrieved, deleted) = run.session.counts();
    let user = run.session.user().unwrap_or("").to_string();
    let end = match &result {
        Ok(End::Eof) => "eof",
        Ok(End::Closed(why)) => why,
        Err(_) => "error",
    };
    let err = result
        .as_ref()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let mut pairs: Vec<(&str, &dyn std::fmt::Display)> = vec![
        ("event", &"disconnect"),
        ("session", &run.id),
        ("reason", &end),
        ("user", &user),
        ("retrieved", &retrieved),
        ("deleted", &deleted),
    ];
    if !err.is_empty() {
        pairs.push(("error", &err));
    }
    log(&pairs);
    result
}

impl<S: AsyncRead + AsyncWrite + Unpin> Run<S> {
    async fn main(
        &mut self,
        client: &Client,
        shutdown: &mut watch::Receiver<bool>,
    ) -> io::Result<End> {
        if client.implicit_tls {
            self.handshake().await?;
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(action) = self.session.poll() {
                if self.act(action).await? {
                    self.flush().await?;
                    let _ = self.conn.shutdown().await;
                    return Ok(End::Closed(self.reason));
                }
            }
            self.flush().await?;
            if !self.session.wants_input() {
                // Nothing to read and nothing to do cannot happen; closing
                // is the safe answer if it ever does.
                return Ok(End::Closed("stuck"));
            }
            let read = tokio::select! {
                r = tokio::time::timeout(IDLE_TIMEOUT, self.conn.read(&mut buf)) => Some(r),
                _ = shutdown.wait_for(|stop| *stop) => None,
            };
            let Some(read) = read else {
                self.reason = "shutdown";
                self.session.shutdown();
                continue;
            };
            match read {
                Err(_) => {
                    self.reason = "timeout";
                    self.session.timed_out();
                }
                Ok(Ok(0)) => return Ok(End::Eof),
                Ok(Ok(n)) => self.session.feed(&buf[..n]),
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Performs one action; true when the connection is to be closed.
    async fn act(&mut self, action: Action) -> io::Result<bool> {
        match action {
            Action::Reply(r) => {
                r.to_wire(&mut self.out);
                if self.out.len() >= FLUSH_AT {
                    self.flush().await?;
                }
            }
            Action::StartTls => {
                self.flush().await?;
                self.handshake().await?;
                self.session.tls_established();
            }
            Action::CheckAuth { user, password } => {
                let ctx = Arc::clone(&self.ctx);
                let u = user.clone();
                let ok = tokio::task::spawn_blocking(move || ctx.accounts.check(&u, &password.0))
                    .await
                    .unwrap_or(false);
                if !ok {
                    self.failures += 1;
                    log(&[
                        ("event", &"login-failed"),
                        ("session", &self.id),
                        ("user", &user),
                        ("reason", &"password"),
                    ]);
                    self.flush().await?;
                    tokio::time::sleep(failure_delay(self.failures)).await;
                }
                self.session.auth_checked(ok);
            }
            Action::OpenMaildrop { user } => self.open(&user).await,
            Action::Fetch { index, .. } => self.fetch(index).await,
            Action::Update { deleted } => self.update(deleted).await,
            Action::Close => {
                if self.reason == "closed" {
                    self.reason = "quit";
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn handshake(&mut self) -> io::Result<()> {
        let Some(acceptor) = self.ctx.tls.clone() else {
            return Err(io::Error::other("TLS asked for without a certificate"));
        };
        let (version, cipher) =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, self.conn.start_tls(&acceptor))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
        log(&[
            ("event", &"tls"),
            ("session", &self.id),
            ("version", &version),
            ("cipher", &cipher),
        ]);
        Ok(())
    }

    async fn open(&mut self, user: &str) {
        let path = maildir_of(&self.ctx, user);
        let opened = tokio::task::spawn_blocking(move || Maildrop::open(&path))
            .await
            .unwrap_or_else(|e| {
                Err(maildrop::Error::Io {
                    op: "open",
                    path: PathBuf::new(),
                    source: io::Error::other(e.to_string()),
                })
            });
        match opened {
            Ok((drop, messages)) => {
                let octets: u64 = messages.iter().map(|m| m.size).sum();
                log(&[
                    ("event", &"login"),
                    ("session", &self.id),
                    ("user", &user),
                    ("maildir", &drop.root().display()),
                    ("messages", &messages.len()),
                    ("octets", &octets),
                ]);
                self.sizes = messages.iter().map(|m| m.size).collect();
                self.maildrop = Some(Arc::new(drop));
                self.session.maildrop_opened(Ok(messages));
            }
            Err(e) => {
                let (reason, err) = match &e {
                    maildrop::Error::InUse(_) => ("in-use", OpenError::InUse),
                    maildrop::Error::Io { .. } => ("maildir", OpenError::Failed(e.to_string())),
                };
                log(&[
                    ("event", &"login-failed"),
                    ("session", &self.id),
                    ("user", &user),
                    ("reason", &reason),
                    ("error", &e),
                ]);
                self.session.maildrop_opened(Err(err));
            }
        }
    }

    async fn fetch(&mut self, index: usize) {
        let Some(drop) = self.maildrop.clone() else {
            return self.session.fetched(Err("no maildrop".into()));
        };
        let small = self.sizes.get(index).is_some_and(|&s| s <= INLINE_READ);
        let read = if small {
            drop.read(index)
        } else {
            tokio::task::spawn_blocking(move || drop.read(index))
                .await
                .unwrap_or_else(|e| {
                    Err(maildrop::Error::Io {
                        op: "read",
                        path: PathBuf::new(),
                        source: io::Error::other(e.to_string()),
                    })
                })
        };
        if let Err(e) = &read {
            log(&[
                ("event", &"read-failed"),
                ("session", &self.id),
                ("error", e),
            ]);
        }
        self.session.fetched(read.map_err(|e| e.to_string()));
    }

    async fn update(&mut self, deleted: Vec<usize>) {
        let Some(drop) = self.maildrop.clone() else {
            return self.session.updated(Ok(()));
        };
        let result = if deleted.is_empty() {
            Ok(0)
        } else {
            tokio::task::spawn_blocking(move || drop.remove(&deleted))
                .await
                .unwrap_or_else(|e| {
                    Err(maildrop::Error::Io {
                        op: "remove",
                        path: PathBuf::new(),
                        source: io::Error::other(e.to_string()),
                    })
                })
        };
        let (retrieved, marked) = self.session.counts();
        match &result {
            Ok(n) => log(&[
                ("event", &"update"),
                ("session", &self.id),
                ("retrieved", &retrieved),
                ("deleted", &n),
            ]),
            Err(e) => log(&[
                ("event", &"update-failed"),
                ("session", &self.id),
                ("marked", &marked),
                ("error", e),
            ]),
        }
        self.session
            .updated(result.map(|_| ()).map_err(|e| e.to_string()));
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.conn.write_all(&self.out).await?;
            self.conn.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))??;
        self.out.clear();
        Ok(())
    }
}

/// The Maildir of `user` as mxa-deliver finds it: the users file's maildir
/// field, else `<mailroot>/<domain>/<local>/` with the domain lower-cased.
pub fn maildir_of(ctx: &Ctx, user: &str) -> PathBuf {
    let by_root = || {
        let (local, domain) = user.rsplit_once('@').unwrap_or((user, ""));
        ctx.config.mailroot.join(domain.to_lowercase()).join(local)
    };
    ctx.accounts
        .with_users(|u| u.find(user).and_then(|e| e.maildir.clone()))
        .unwrap_or_else(by_root)
}
