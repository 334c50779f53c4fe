//! One client connection: the I/O around [`mxa_smtp::server::Session`].
//! Replies are batched and written before each read (PIPELINING); every
//! read and write is bounded by `[smtpd] timeout`; STARTTLS swaps the
//! stream for a TLS one in place.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mxa_daemon::conn::Conn as Io;
use mxa_smtp::reply::Reply;
use mxa_smtp::server::{Action, Session, Verdict};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::store::{self, Store};
use crate::{Ctx, Role, log, policy};

/// How long a port-25 client from outside `trusted_networks` must wait
/// for the greeting; one that talks first is a spam engine (pregreet).
pub const PREGREET_WAIT: Duration = Duration::from_millis(800);

/// Read buffer: small, since an idle connection keeps it.
const READ_BUF: usize = 8 * 1024;

/// Who is on the other end.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its address; none for a local `--stdio` session.
    pub ip: Option<IpAddr>,
    /// In `trusted_networks` (or local): may relay without AUTH.
    pub trusted: bool,
    /// The session id of the log lines.
    pub sid: String,
}

/// Why a connection ended early.
enum End {
    /// The client closed, or the socket failed.
    Lost(String),
    /// A read or write took longer than the timeout.
    Timeout,
    /// The server is stopping.
    Shutdown,
}

/// Serves one connection to its end.
pub async fn serve<S>(
    stream: S,
    ctx: Arc<Ctx>,
    role: Role,
    client: Client,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The client's name, looked up (for Received:) before the greeting,
    // as Postfix does; loopback and local sessions need no DNS.
    let client_name = match client.ip {
        Some(ip) => {
            let c = Arc::clone(&ctx);
            tokio::task::spawn_blocking(move || c.client_name(ip))
                .await
                .unwrap_or_else(|_| "unknown".into())
        }
        None => "local".into(),
    };
    let mut conn = Conn {
        client_name,
        io: Io::Plain(stream),
        out: Vec::new(),
        ctx,
        client,
        shutdown,
        store: None,
        auth_failures: 0,
        messages: 0,
    };
    let end = conn.run(role).await;
    let sid = conn.client.sid.clone();
    match end {
        Ok(()) => log(&[
            ("event", &"disconnect"),
            ("session", &sid),
            ("messages", &conn.messages),
        ]),
        Err(End::Lost(why)) => log(&[
            ("event", &"disconnect"),
            ("session", &sid),
            ("messages", &conn.messages),
            ("lost", &why),
        ]),
        Err(End::Timeout) => log(&[("event", &"timeout"), ("session", &sid)]),
        Err(End::Shutdown) => log(&[("event", &"shutdown"), ("session", &sid)]),
    }
    let _ = conn.io.shutdown().await;
}

struct Conn<S> {
    /// See [`crate::Ctx::client_name`].
    client_name: String,
    io: Io<S>,
    out: Vec<u8>,
    ctx: Arc<Ctx>,
    client: Client,
    shutdown: watch::Receiver<bool>,
    store: Option<Store>,
    auth_failures: u32,
    messages: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn<S> {
    async fn run(&mut self, role: Role) -> Result<(), End> {
        let ctx = Arc::clone(&self.ctx);
        if role == Role::Submissions {
            self.handshake().await?;
        }
        let mut session = Session::new(ctx.session_config(role));
        if let Io::Tls(t) = &self.io {
            let (v, c) = mxa_daemon::tls::describe(t.get_ref().1);
            session.tls_established(&v, &c);
        }
        let mut buf = vec![0u8; READ_BUF];
        if role == Role::Mta && !self.client.trusted {
            // Pregreet: anything sent before the greeting ends the session.
            if let Ok(r) = tokio::time::timeout(PREGREET_WAIT, self.io.read(&mut buf)).await {
                match r {
                    Ok(0) => return Err(End::Lost("closed before the greeting".into())),
                    Ok(n) => {
                        log(&[("event", &"pregreet"), ("session", &self.client.sid)]);
                        session.feed(&buf[..n]);
                    }
                    Err(e) => return Err(End::Lost(e.to_string())),
                }
            }
        }
        let mut greeted = false;
        loop {
            while let Some(action) = session.poll() {
                match action {
                    Action::Reply(r) => {
                        self.reply(&r);
                        if !greeted {
                            greeted = true;
                            self.flush().await?;
                            session.greeting_sent();
                        }
                    }
                    Action::StartTls => {
                        self.flush().await?;
                        self.handshake().await?;
                        if let Io::Tls(t) = &self.io {
                            let (v, c) = mxa_daemon::tls::describe(t.get_ref().1);
                            session.tls_established(&v, &c);
                        }
                    }
                    Action::CheckAuth {
                        mechanism,
                        user,
                        password,
                    } => {
                        let acc = Arc::clone(&ctx);
                        let login = user.clone();
                        let ok = tokio::task::spawn_blocking(move || {
                            acc.accounts.check(&login, &password.0)
                        })
                        .await
                        .unwrap_or(false);
                        let mech = format!("{mechanism:?}").to_ascii_uppercase();
                        if ok {
                            log(&[
                                ("event", &"auth"),
                                ("session", &self.client.sid),
                                ("user", &user),
                                ("mechanism", &mech),
                                ("result", &"ok"),
                            ]);
                            let (c, sid) = (Arc::clone(&ctx), self.client.sid.clone());
                            session.check_senders(move |login, sender| {
                                let ok = policy::owns(&c.config, &c.aliases, login, sender);
                                if !ok {
                                    log(&[
                                        ("event", &"mail"),
                                        ("session", &sid),
                                        ("from", &sender),
                                        ("user", &login),
                                        ("result", &"not-owned"),
                                    ]);
                                }
                                ok
                            });
                        } else {
                            self.auth_failures += 1;
                            log(&[
                                ("event", &"auth"),
                                ("session", &self.client.sid),
                                ("user", &user),
                                ("mechanism", &mech),
                                ("result", &"failed"),
                            ]);
                            self.flush().await?;
                            tokio::time::sleep(mxa_daemon::auth::failure_delay(self.auth_failures))
                                .await;
                        }
                        session.auth_checked(ok);
                    }
                    Action::CheckRecipient(address) => {
                        let v = policy::recipient(
                            &ctx.config,
                            &ctx.accounts,
                            &ctx.aliases,
                            &address,
                            self.client.trusted,
                            session.authenticated().is_some(),
                        );
                        let result = match v {
                            Verdict::Local => "local",
                            Verdict::RelayAllowed => "relay",
                            Verdict::Unknown => "unknown-user",
                            Verdict::RelayDenied => "relay-denied",
                            Verdict::TemporaryFailure => "tempfail",
                        };
                        log(&[
                            ("event", &"rcpt"),
                            ("session", &self.client.sid),
                            ("to", &address),
                            ("result", &result),
                        ]);
                        session.recipient_checked(v);
                    }
                    Action::MessageBegin { envelope: env } => {
                        let (client, hostname) =
                            (self.client_name.clone(), self.ctx.config.hostname.clone());
                        let ip = self.client.ip;
                        self.store = Some(Store::begin(ctx.spool, |id| {
                            policy::received(
                                &hostname,
                                &env,
                                &client,
                                ip,
                                id.as_str(),
                                mxa_spool::now(),
                            )
                        }));
                    }
                    Action::MessageData(bytes) => {
                        if let Some(s) = &mut self.store {
                            s.write(&bytes);
                        }
                    }
                    Action::MessageAbort => self.store = None,
                    Action::MessageEnd { envelope } => {
                        let result = self.commit(envelope).await;
                        session.message_stored(result);
                    }
                    Action::Close => {
                        self.flush().await?;
                        return Ok(());
                    }
                }
            }
            self.flush().await?;
            if session.is_closed() || !session.wants_input() {
                return Ok(());
            }
            let n = self.read(&mut buf, &session).await?;
            session.feed(&buf[..n]);
        }
    }

    /// Queues reply `r`, logging refusals.
    fn reply(&mut self, r: &Reply) {
        if r.code >= 400 {
            log(&[
                ("event", &"reply"),
                ("session", &self.client.sid),
                ("reply", &r.text()),
            ]);
        }
        self.out.extend_from_slice(&r.to_wire());
    }

    async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let timeout = self.ctx.config.smtpd.timeout;
        match tokio::time::timeout(timeout, async {
            self.io.write_all(&out).await?;
            self.io.flush().await
        })
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Lost(e.to_string())),
            Err(_) => Err(End::Timeout),
        }
    }

    /// Reads what the client sent; at the timeout says so (421 4.4.2) and
    /// ends; when the server stops between transactions says so (421
    /// 4.3.2) and ends.
    async fn read(&mut self, buf: &mut [u8], session: &Session) -> Result<usize, End> {
        let timeout = self.ctx.config.smtpd.timeout;
        let idle = !session.in_transaction();
        let stopping = async {
            if !idle {
                return std::future::pending().await;
            }
            while !*self.shutdown.borrow_and_update() {
                if self.shutdown.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        let r = tokio::select! {
            r = tokio::time::timeout(timeout, self.io.read(buf)) => r,
            () = stopping => {
                let hostname = self.ctx.config.hostname.clone();
                let bye = Reply::new(421, format!("4.3.2 {hostname} Service shutting down, try again later"));
                self.out.extend_from_slice(&bye.to_wire());
                let _ = self.flush().await;
                return Err(End::Shutdown);
            }
        };
        match r {
            Ok(Ok(0)) => Err(End::Lost("closed by the client".into())),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(End::Lost(e.to_string())),
            Err(_) => {
                let hostname = self.ctx.config.hostname.clone();
                let bye = Reply::new(421, format!("4.4.2 {hostname} Error: timeout exceeded"));
                self.out.extend_from_slice(&bye.to_wire());
                let _ = self.flush().await;
                Err(End::Timeout)
            }
        }
    }

    /// The TLS handshake (STARTTLS, or at once on port 465).
    async fn handshake(&mut self) -> Result<(), End> {
        let Some(acceptor) = self.ctx.tls.clone() else {
            return Err(End::Lost("TLS without a certificate".into()));
        };
        if !matches!(self.io, Io::Plain(_)) {
            return Err(End::Lost("TLS twice".into()));
        }
        match tokio::time::timeout(self.ctx.config.smtpd.timeout, self.io.start_tls(&acceptor))
            .await
        {
            Ok(Ok((v, c))) => {
                log(&[
                    ("event", &"tls"),
                    ("session", &self.client.sid),
                    ("version", &v),
                    ("cipher", &c),
                ]);
                Ok(())
            }
            Ok(Err(e)) => {
                log(&[
                    ("event", &"tls-failed"),
                    ("session", &self.client.sid),
                    ("error", &e),
                ]);
                Err(End::Lost(format!("TLS handshake: {e}")))
            }
            Err(_) => Err(End::Timeout),
        }
    }

    /// Stores the message: Ok(queue id) once it is on disk.
    async fn commit(&mut self, env: mxa_smtp::server::Envelope) -> Result<String, String> {
        let Some(store) = self.store.take() else {
            return Err("no message".into());
        };
        let ip = self
            .client
            .ip
            .map_or_else(|| "local".to_string(), |i| i.to_string());
        let mut origin = format!(
            "smtp ip={ip} helo={} session={}",
            env.helo.escape_debug(),
            self.client.sid
        );
        if let Some(u) = &env.auth_user {
            origin.push_str(&format!(" auth={u}"));
        }
        let spool_env = store::envelope(&env, origin);
        let result = tokio::task::spawn_blocking(move || store.commit(&spool_env))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        match &result {
            Ok(id) => {
                self.messages += 1;
                log(&[
                    ("event", &"queued"),
                    ("session", &self.client.sid),
                    ("id", id),
                    ("from", &format!("<{}>", env.sender)),
                    ("rcpts", &env.recipients.len()),
                    ("size", &env.size),
                ]);
            }
            Err(e) => log(&[
                ("event", &"store-failed"),
                ("session", &self.client.sid),
                ("error", e),
            ]),
        }
        result.map(|id| id.to_string())
    }
}
