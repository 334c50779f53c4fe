//! Remote delivery: where a domain's mail goes (`[queue] routes`, else the
//! relayhost, else its MX hosts), and one SMTP session per destination,
//! driven by mxa-smtp's client state machine over a blocking socket, with
//! STARTTLS (opportunistic to MX hosts, verified to a relayhost). All
//! recipients of one domain share a transaction.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use mxa_config::Config;
use mxa_smtp::client::{self, Client, RcptResult, Step};
use mxa_smtp::reply::Parser;
use mxa_spool::{Envelope, QueueId};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::mda::Outcome;
use crate::tls::Tls;

const PROG: &str = "mxa-queue";
/// RFC 5321 §4.5.3.2 asks for 5 minutes per command and 10 after the data;
/// one bound for every read keeps the code simple and stays in that range.
const IO_TIMEOUT: Duration = Duration::from_secs(300);
/// How long to wait for a TCP connection before trying the next address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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
        let smtp_env = client::Envelope {
            sender: env.sender.clone(),
            recipients: idxs
                .iter()
                .map(|&i| env.recipients[i].address.clone())
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
        let mut last = String::from("4.4.1 no answer from any mail server of the domain");
        for (name, addrs) in &dest.hosts {
            for addr in addrs {
                let conn = match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
                    Ok(c) => c,
                    Err(e) => {
                        last = format!("4.4.1 connection to {name} [{}] failed: {e}", addr.ip());
                        continue;
                    }
                };
                let (outcome, dsn) =
                    self.session(config, id, conn, name, &dest, smtp_env.clone(), data);
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

    /// One SMTP session; any I/O error ends it with every recipient not yet
    /// final deferred. Also says whether the server (its last EHLO reply)
    /// offered DSN, so that NOTIFY went along.
    #[allow(clippy::too_many_arguments)]
    fn session(
        &self,
        config: &Config,
        id: &QueueId,
        conn: TcpStream,
        name: &str,
        dest: &Destination,
        env: client::Envelope,
        data: &[u8],
    ) -> (client::Outcome, bool) {
        let mut client = Client::new(client::Config {
            helo: config.hostname.clone(),
            tls: dest.tls,
            auth: dest.auth.clone(),
        });
        let mut done = None;
        let outcome = match self.drive(id, conn, name, dest, &mut client, env, data, &mut done) {
            Ok(o) => o,
            // After Done (a failed QUIT, say) the transaction's outcome stands.
            Err(e) => done.unwrap_or_else(|| client.connection_error(&e.to_string())),
        };
        (outcome, client.capabilities().dsn)
    }

    #[allow(clippy::too_many_arguments)]
    fn drive(
        &self,
        id: &QueueId,
        conn: TcpStream,
        name: &str,
        dest: &Destination,
        client: &mut Client,
        env: client::Envelope,
        data: &[u8],
        outcome: &mut Option<client::Outcome>,
    ) -> io::Result<client::Outcome> {
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        let tls_config = if dest.verify {
            self.tls.verified().map_err(io::Error::other)?
        } else {
            self.tls.opportunistic.clone()
        };
        let tls_config = &tls_config;
        let mut stream = if dest.tls == client::Tls::AlreadyOn {
            Conn::Tls(Box::new(handshake(conn, name, tls_config)?))
        } else {
            Conn::Plain(conn)
        };
        let mut parser = Parser::default();
        let mut buf = vec![0u8; 16 * 1024];
        let mut step = client.start(env);
        loop {
            step = match step {
                Step::Send(bytes) => {
                    stream.write_all(&bytes)?;
                    stream.flush()?;
                    Step::Wait
                }
                Step::SendData => {
                    // dot_stuff ends with the terminating ".\r\n".
                    stream.write_all(&client::dot_stuff(data))?;
                    stream.flush()?;
                    Step::Wait
                }
                Step::StartTls => {
                    // Anything the server sent after its 220 would be
                    // plaintext smuggled into the TLS session (CVE-2011-0411).
                    if !parser.is_empty() {
                        return Err(io::Error::other("data after the STARTTLS reply"));
                    }
                    let Conn::Plain(tcp) = stream else {
                        return Err(io::Error::other("STARTTLS inside TLS"));
                    };
                    let tls = handshake(tcp, name, tls_config)?;
                    log_tls(id, name, &tls.conn);
                    stream = Conn::Tls(Box::new(tls));
                    client.tls_established()
                }
                Step::Done(o) => {
                    *outcome = Some(o);
                    client.quit()
                }
                Step::Close => {
                    return outcome
                        .take()
                        .ok_or_else(|| io::Error::other("the server closed the session"));
                }
                Step::Wait => match parser.next() {
                    Some(Ok(reply)) => client.on_reply(reply),
                    Some(Err(e)) => return Err(io::Error::other(e.to_string())),
                    None => {
                        let n = stream.read(&mut buf)?;
                        if n == 0 {
                            return outcome.take().ok_or_else(|| {
                                io::Error::other("connection closed by the server")
                            });
                        }
                        parser.feed(&buf[..n]);
                        Step::Wait
                    }
                },
            };
        }
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

/// A plain or TLS connection.
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}
