//! Remote delivery: where a domain's mail goes (`[queue] routes`, else the
//! relayhost, else its MX hosts), and SMTP sessions driven by mxa-smtp's
//! client state machine over blocking sockets, with STARTTLS
//! (opportunistic to MX hosts, verified to a relayhost). All recipients of
//! one domain share a transaction. A session that ends ready for more is
//! kept idle in the pass's [`Pool`] and carries the next message for the
//! same server; the pool also bounds the connections open at once.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mxa_config::Config;
use mxa_smtp::client::{self, Client, RcptResult, Step};
use mxa_smtp::reply::Parser;
use mxa_spool::{Envelope, QueueId};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::mda::Outcome;
use crate::pool::{Idle, Pool};
use crate::tls::Tls;

const PROG: &str = "mxa-queue";
/// RFC 5321 §4.5.3.2 asks for 5 minutes per command and 10 after the data;
/// one bound for every read keeps the code simple and stays in that range.
const IO_TIMEOUT: Duration = Duration::from_secs(300);
/// How long to wait for a TCP connection before trying the next address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long QUIT may take when a connection is closed.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// A place to deliver a domain's mail. No Debug: it holds the relayhost's
/// password.
struct Destination {
    /// Host names (for TLS and logs) and their addresses, in order.
    hosts: Vec<(String, Vec<SocketAddr>)>,
    tls: client::Tls,
    verify: bool,
    auth: Option<(String, String)>,
}

/// Remote delivery, set up once per pass.
pub struct Remote {
    resolver: mxa_dns::Resolver,
    tls: Tls,
    /// The relayhost's credentials, read when the runner is set up (before
    /// `smtp-out` gives up root, so the file may stay root's, mode 0600).
    credentials: Result<Option<(String, String)>, String>,
    /// Connections open, idle ones among them.
    pool: Pool<Session>,
    /// Numbers connections in the log (`conn=`).
    serial: AtomicU64,
    /// Our name for EHLO.
    helo: String,
}

/// One SMTP connection and where its client stands.
struct Session {
    stream: Conn,
    client: Client,
    parser: Parser,
    serial: u64,
}

/// How a transaction on a connection ended.
enum Ran {
    /// With an outcome for every recipient, and whether the server offered
    /// DSN.
    Done(client::Outcome, bool),
    /// A reused connection broke before the message was sent: nothing
    /// happened, try a fresh one.
    Stale,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the relayhost's password.
        f.debug_struct("Remote")
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// The resolver (`[dns] nameservers`) and TLS configurations.
    pub fn new(config: &Config) -> Result<Remote, String> {
        let resolver =
            mxa_dns::Resolver::new(&config.dns.nameservers).map_err(|e| e.to_string())?;
        Ok(Remote {
            resolver,
            tls: Tls::new()?,
            credentials: relay_credentials(config),
            pool: Pool::new(
                config.queue.max_connections,
                config.queue.max_connections_per_destination,
            ),
            serial: AtomicU64::new(0),
            helo: config.hostname.clone(),
        })
    }

    /// Delivers `data` to the recipients `idxs` of `env`, all in `domain`;
    /// one outcome per index, in order.
    pub fn deliver(
        &self,
        config: &Config,
        id: &QueueId,
        domain: &str,
        env: &Envelope,
        idxs: &[usize],
        data: &[u8],
    ) -> Vec<Outcome> {
        let dest = match self.destination(config, domain) {
            Ok(d) => d,
            Err(o) => return vec![o; idxs.len()],
        };
        // An IDN domain goes in A-labels, so that only a UTF-8 local part
        // needs SMTPUTF8.
        let smtp_env = client::Envelope {
            sender: mxa_dns::ascii_domain(&env.sender),
            recipients: idxs
                .iter()
                .map(|&i| mxa_dns::ascii_domain(&env.recipients[i].address))
                .collect(),
            // RFC 1870: the size on the wire, with CRLF line ends.
            size: Some(data.len() as u64 + data.iter().filter(|&&b| b == b'\n').count() as u64),
            eightbit: data.iter().any(|&b| b >= 0x80),
            smtputf8: env.smtputf8,
            ret: env.ret.clone(),
            envid: env.envid.clone(),
            notify: idxs
                .iter()
                .map(|&i| env.recipients[i].notify.clone())
                .collect(),
            orcpt: idxs
                .iter()
                .map(|&i| env.recipients[i].orcpt.clone())
                .collect(),
        };
        let key = destination_key(config, domain);
        let mut last = String::from("4.4.1 no answer from any mail server of the domain");
        for (name, addrs) in &dest.hosts {
            for addr in addrs {
                let (outcome, dsn) =
                    match self.attempt(id, &key, name, *addr, &dest, &smtp_env, data) {
                        Ok(r) => r,
                        Err(why) => {
                            last = why;
                            continue;
                        }
                    };
                // Nothing delivered and nothing refused for good (a 4xx
                // greeting, a broken connection, greylisting): the next
                // server may do better. A connection lost after the final
                // dot may have delivered already: the next server then
                // delivers a second copy (RFC 1047), the price of never
                // losing one.
                let first_deferred = match outcome.results.first() {
                    Some(RcptResult::Deferred(r)) => Some(r.text()),
                    _ => None,
                };
                if let Some(text) = first_deferred
                    && outcome
                        .results
                        .iter()
                        .all(|r| matches!(r, RcptResult::Deferred(_)))
                {
                    last = format!("{text} (from {name})");
                    continue;
                }
                return outcome
                    .results
                    .into_iter()
                    .map(|r| convert(r, name, dsn))
                    .collect();
            }
        }
        vec![Outcome::Deferred(last); idxs.len()]
    }

    /// One transaction with the server at `addr`: on an idle connection
    /// to it when the pool has one, else on a new one (within the limits).
    /// `Err` is why no connection could be made.
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        id: &QueueId,
        key: &str,
        name: &str,
        addr: SocketAddr,
        dest: &Destination,
        env: &client::Envelope,
        data: &[u8],
    ) -> Result<(client::Outcome, bool), String> {
        let mut close = Vec::new();
        let idle = self.pool.take(key, addr, &mut close);
        self.close_all(close);
        if let Some(idle) = idle {
            mxa_cli::log(
                PROG,
                &[
                    ("event", &"reuse"),
                    ("id", id),
                    ("host", &name),
                    ("addr", &addr),
                    ("conn", &idle.conn.serial),
                    ("uses", &idle.uses),
                ],
            );
            let (opened, uses) = (idle.opened, idle.uses);
            match self.transaction(
                id, key, addr, name, dest, idle.conn, opened, uses, env, data,
            ) {
                Ran::Done(o, dsn) => return Ok((o, dsn)),
                Ran::Stale => {}
            }
        }
        let mut close = Vec::new();
        self.pool.reserve(key, &mut close);
        self.close_all(close);
        let session = match self.connect(name, addr, dest) {
            Ok(s) => s,
            Err(e) => {
                self.pool.release(key);
                return Err(format!(
                    "4.4.1 connection to {name} [{}] failed: {e}",
                    addr.ip()
                ));
            }
        };
        mxa_cli::log(
            PROG,
            &[
                ("event", &"connect"),
                ("id", id),
                ("host", &name),
                ("addr", &addr),
                ("conn", &session.serial),
            ],
        );
        match self.transaction(
            id,
            key,
            addr,
            name,
            dest,
            session,
            Instant::now(),
            0,
            env,
            data,
        ) {
            Ran::Done(o, dsn) => Ok((o, dsn)),
            // Only a reused connection is stale.
            Ran::Stale => Err("4.4.2 connection lost".into()),
        }
    }

    /// A new connection, with TLS at once for implicit TLS.
    fn connect(&self, name: &str, addr: SocketAddr, dest: &Destination) -> io::Result<Session> {
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        let stream = if dest.tls == client::Tls::AlreadyOn {
            let config = self.tls_config(dest)?;
            Conn::Tls(Box::new(handshake(tcp, name, &config)?))
        } else {
            Conn::Plain(tcp)
        };
        Ok(Session {
            stream,
            client: Client::new(client::Config {
                helo: self.helo.clone(),
                tls: dest.tls,
                auth: dest.auth.clone(),
            }),
            parser: Parser::default(),
            serial: self.serial.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }

    fn tls_config(&self, dest: &Destination) -> io::Result<Arc<ClientConfig>> {
        if dest.verify {
            self.tls.verified().map_err(io::Error::other)
        } else {
            Ok(self.tls.opportunistic.clone())
        }
    }

    /// Runs `env` on `session`, then keeps the session idle in the pool if
    /// it can carry more, or closes it and releases its place.
    #[allow(clippy::too_many_arguments)]
    fn transaction(
        &self,
        id: &QueueId,
        key: &str,
        addr: SocketAddr,
        name: &str,
        dest: &Destination,
        mut session: Session,
        opened: Instant,
        uses: u32,
        env: &client::Envelope,
        data: &[u8],
    ) -> Ran {
        let mut sent = false;
        let step = session.client.start(env.clone());
        match self.drive(id, &mut session, name, dest, step, data, &mut sent) {
            Ok(outcome) => {
                let dsn = session.client.capabilities().dsn;
                // A reused connection that the server is closing (421
                // before the message: an idle timeout, a restart) says
                // nothing about the message: a fresh one will.
                let closing = !session.client.is_ready()
                    && outcome
                        .results
                        .iter()
                        .all(|r| matches!(r, RcptResult::Deferred(_)));
                if uses > 0 && !sent && closing {
                    quit(session);
                    self.pool.release(key);
                    return Ran::Stale;
                }
                if session.client.is_ready() {
                    self.pool
                        .put(Idle::new(key, addr, session, opened, uses + 1));
                } else {
                    quit(session);
                    self.pool.release(key);
                }
                Ran::Done(outcome, dsn)
            }
            Err(e) => {
                let outcome = session.client.connection_error(&e.to_string());
                let dsn = session.client.capabilities().dsn;
                drop(session);
                self.pool.release(key);
                if uses > 0 && !sent {
                    Ran::Stale
                } else {
                    Ran::Done(outcome, dsn)
                }
            }
        }
    }

    fn close_all(&self, sessions: Vec<Session>) {
        for s in sessions {
            quit(s);
        }
    }

    fn destination(&self, config: &Config, domain: &str) -> Result<Destination, Outcome> {
        let q = &config.queue;
        let dns_fail = |e: mxa_dns::DnsError| {
            let msg = format!("{} {e}", e.status());
            if e.is_temporary() {
                Outcome::Deferred(msg)
            } else {
                Outcome::Failed(msg)
            }
        };
        if let Some((host, port)) = q.routes.get(&domain.to_ascii_lowercase()) {
            let addrs = self.addresses(host).map_err(dns_fail)?;
            let hosts = vec![(
                host.clone(),
                addrs
                    .into_iter()
                    .map(|a| SocketAddr::new(a, *port))
                    .collect(),
            )];
            return Ok(Destination {
                hosts,
                tls: client::Tls::Opportunistic,
                verify: false,
                auth: None,
            });
        }
        if let Some(rh) = &q.relayhost {
            let hosts = if rh.mx_lookup {
                self.resolver
                    .mail_hosts(&rh.host)
                    .map_err(dns_fail)?
                    .into_iter()
                    .map(|h| (h.name, h.addrs))
                    .collect()
            } else {
                vec![(rh.host.clone(), self.addresses(&rh.host).map_err(dns_fail)?)]
            };
            let hosts = hosts
                .into_iter()
                .map(|(n, a): (String, Vec<IpAddr>)| {
                    (
                        n,
                        a.into_iter()
                            .map(|ip| SocketAddr::new(ip, rh.port))
                            .collect(),
                    )
                })
                .collect();
            let auth = self.credentials.clone().map_err(Outcome::Deferred)?;
            let tls = if rh.port == 465 {
                client::Tls::AlreadyOn
            } else if auth.is_some() {
                client::Tls::Required
            } else {
                client::Tls::Opportunistic
            };
            return Ok(Destination {
                hosts,
                tls,
                verify: true,
                auth,
            });
        }
        let hosts = self
            .resolver
            .mail_hosts(domain)
            .map_err(dns_fail)?
            .into_iter()
            .map(|h| {
                (
                    h.name,
                    h.addrs
                        .into_iter()
                        .map(|ip| SocketAddr::new(ip, q.smtp_port))
                        .collect(),
                )
            })
            .collect();
        Ok(Destination {
            hosts,
            tls: client::Tls::Opportunistic,
            verify: false,
            auth: None,
        })
    }

    fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, mxa_dns::DnsError> {
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => Ok(vec![ip]),
            Err(_) => self.resolver.addresses(host),
        }
    }

    /// Feeds the client from `step` until its transaction is done. `sent`
    /// tells whether the message went out (a reused connection that broke
    /// before is retried on a fresh one).
    #[allow(clippy::too_many_arguments)]
    fn drive(
        &self,
        id: &QueueId,
        session: &mut Session,
        name: &str,
        dest: &Destination,
        mut step: Step,
        data: &[u8],
        sent: &mut bool,
    ) -> io::Result<client::Outcome> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            step = match step {
                Step::Send(bytes) => {
                    session.stream.write_all(&bytes)?;
                    session.stream.flush()?;
                    Step::Wait
                }
                Step::SendData => {
                    *sent = true;
                    // dot_stuff ends with the terminating ".\r\n".
                    session.stream.write_all(&client::dot_stuff(data))?;
                    session.stream.flush()?;
                    Step::Wait
                }
                Step::StartTls => {
                    // Anything the server sent after its 220 would be
                    // plaintext smuggled into the TLS session (CVE-2011-0411).
                    if !session.parser.is_empty() {
                        return Err(io::Error::other("data after the STARTTLS reply"));
                    }
                    let Conn::Plain(tcp) = std::mem::replace(&mut session.stream, Conn::Gone)
                    else {
                        return Err(io::Error::other("STARTTLS inside TLS"));
                    };
                    let tls = handshake(tcp, name, &self.tls_config(dest)?)?;
                    log_tls(id, name, &tls.conn);
                    session.stream = Conn::Tls(Box::new(tls));
                    session.client.tls_established()
                }
                Step::Done(o) => return Ok(o),
                Step::Close => return Err(io::Error::other("the server closed the session")),
                Step::Wait => match session.parser.next() {
                    Some(Ok(reply)) => session.client.on_reply(reply),
                    Some(Err(e)) => return Err(io::Error::other(e.to_string())),
                    None => {
                        let n = session.stream.read(&mut buf)?;
                        if n == 0 {
                            return Err(io::Error::other("connection closed by the server"));
                        }
                        session.parser.feed(&buf[..n]);
                        Step::Wait
                    }
                },
            };
        }
    }
}

impl Drop for Remote {
    /// The end of the pass: QUIT on every idle connection.
    fn drop(&mut self) {
        self.close_all(self.pool.drain());
    }
}

/// QUIT, if the server still listens, and close; errors change nothing.
fn quit(mut s: Session) {
    if let Conn::Plain(t) = &s.stream {
        let _ = t.set_read_timeout(Some(QUIT_TIMEOUT));
    } else if let Conn::Tls(t) = &s.stream {
        let _ = t.sock.set_read_timeout(Some(QUIT_TIMEOUT));
    }
    let mut buf = [0u8; 512];
    let mut step = s.client.quit();
    loop {
        step = match step {
            Step::Send(bytes) => {
                if s.stream
                    .write_all(&bytes)
                    .and_then(|()| s.stream.flush())
                    .is_err()
                {
                    return;
                }
                Step::Wait
            }
            Step::Wait => match s.parser.next() {
                Some(Ok(reply)) => s.client.on_reply(reply),
                Some(Err(_)) => return,
                None => match s.stream.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        s.parser.feed(&buf[..n]);
                        Step::Wait
                    }
                    _ => return,
                },
            },
            _ => return,
        };
    }
}

/// What the connection limits and the idle connections are counted by:
/// the route's server, the relayhost, or the domain (its MX hosts).
fn destination_key(config: &Config, domain: &str) -> String {
    let domain = domain.to_ascii_lowercase();
    if let Some((host, port)) = config.queue.routes.get(&domain) {
        format!("route {host}:{port}")
    } else if config.queue.relayhost.is_some() {
        "relayhost".into()
    } else {
        domain
    }
}

fn handshake(
    tcp: TcpStream,
    name: &str,
    config: &Arc<ClientConfig>,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    // An address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") names an IP.
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let bare = bare
        .strip_prefix("IPv6:")
        .or_else(|| bare.strip_prefix("ipv6:"))
        .unwrap_or(bare);
    let server =
        ServerName::try_from(bare.to_string()).map_err(|e| io::Error::other(e.to_string()))?;
    let conn = ClientConnection::new(config.clone(), server).map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

fn log_tls(id: &QueueId, host: &str, c: &ClientConnection) {
    let version = c
        .protocol_version()
        .map_or("?".into(), |v| format!("{v:?}"));
    let cipher = c
        .negotiated_cipher_suite()
        .map_or("?".into(), |s| format!("{:?}", s.suite()));
    mxa_cli::log(
        PROG,
        &[
            ("event", &"tls"),
            ("id", id),
            ("host", &host),
            ("version", &version),
            ("cipher", &cipher),
        ],
    );
}

fn convert(r: RcptResult, host: &str, dsn: bool) -> Outcome {
    match r {
        RcptResult::Delivered(r) => Outcome::Relayed {
            reply: format!("{} (from {host})", r.text()),
            dsn,
        },
        RcptResult::Deferred(r) => Outcome::Deferred(format!("{} (from {host})", r.text())),
        RcptResult::Failed(r) => Outcome::Failed(format!("{} (from {host})", r.text())),
    }
}

/// `relayhost_password_file`: one line `user:password`.
fn relay_credentials(config: &Config) -> Result<Option<(String, String)>, String> {
    let Some(p) = &config.queue.relayhost_password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(p).map_err(|e| format!("4.3.5 {}: {e}", p.display()))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    match line.split_once(':') {
        Some((u, pw)) if !u.is_empty() => Ok(Some((u.to_string(), pw.to_string()))),
        _ => Err(format!(
            "4.3.5 {}: expected one line user:password",
            p.display()
        )),
    }
}

/// A plain or TLS connection (`Gone` while STARTTLS swaps one for the
/// other).
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Gone,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection gone")
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
            Conn::Gone => Err(gone()),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
            Conn::Gone => Err(gone()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::Gone => Err(gone()),
        }
    }
}
