//! One POP3 run for an account: connect (TLS on connect, or STLS), log in
//! (AUTH PLAIN when offered, else USER/PASS), list with UIDL, then for
//! each message not in the state: RETR, deliver, record, DELE (unless
//! keep); QUIT commits the deletions (RFC 1939 §6). RETR and DELE are
//! pipelined when the server offers PIPELINING (RFC 2449 §6.6).
//!
//! A message recorded but still on the server (the connection was cut
//! before QUIT) is deleted without being fetched again.

use std::collections::{HashSet, VecDeque};

use mxa_fetch_lib::pop3::{self, Client, Command, Reply};
use mxa_fetch_lib::state::Pop3State;
use mxa_fetch_lib::url::Security;
use mxa_runner::mda::Outcome;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::deliver::Source;
use crate::error::Error;
use crate::net::{self, Conn, IO_TIMEOUT};
use crate::pipeline::Pipeline;
use crate::{Account, Counts, Options};

/// RETR commands in flight at once with PIPELINING: enough to keep the
/// link busy while a message is being delivered, few enough that a
/// stopped run reads little it does not use.
const WINDOW: usize = 8;
/// The state is fdatasync'd at least this often (and always before QUIT):
/// after a crash of the machine, at most this many messages are delivered
/// twice; a killed process repeats none.
const SYNC_EVERY: usize = 64;

struct Session {
    conn: Conn,
    client: Client,
    buf: Vec<u8>,
}

impl Session {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let w = async {
            self.conn.write_all(bytes).await?;
            self.conn.flush().await
        };
        tokio::time::timeout(IO_TIMEOUT, w)
            .await
            .map_err(|_| Error::Temporary("POP3: write timed out".into()))?
            .map_err(|e| Error::Temporary(format!("POP3: write: {e}")))
    }

    async fn reply(&mut self) -> Result<Reply, Error> {
        loop {
            if let Some(r) = self
                .client
                .next_reply()
                .map_err(|e| Error::Protocol(format!("POP3: {e}")))?
            {
                return Ok(r);
            }
            let n = tokio::time::timeout(IO_TIMEOUT, self.conn.read(&mut self.buf))
                .await
                .map_err(|_| Error::Temporary("POP3: read timed out".into()))?
                .map_err(|e| Error::Temporary(format!("POP3: read: {e}")))?;
            if n == 0 {
                return Err(Error::Temporary("POP3: connection closed".into()));
            }
            self.client.feed(&self.buf[..n]);
        }
    }

    async fn command(&mut self, cmd: &Command<'_>) -> Result<Reply, Error> {
        let bytes = self.client.send(cmd);
        self.write(&bytes).await?;
        self.reply().await
    }

    async fn capa(&mut self) -> Result<Vec<String>, Error> {
        Ok(match self.command(&Command::Capa).await? {
            Reply::Ok { body: Some(b), .. } => pop3::capabilities(&b),
            _ => Vec::new(),
        })
    }
}

/// What a pipelined reply answers.
enum Sent {
    Retr(usize),
    Dele(u32),
}

/// Connects, starts TLS and logs in; returns the session, the
/// capabilities and the `Received:` field for this session's messages.
async fn connect(acct: &Account, opts: &Options) -> Result<(Session, Vec<String>, Vec<u8>), Error> {
    let url = &acct.url;
    let (tcp, peer) = net::connect(&url.host, url.port).await?;
    let implicit = url.security == Security::Implicit;
    let conn = if implicit {
        opts.tls.handshake(tcp, &url.host).await?
    } else {
        Conn::Plain(tcp)
    };
    let mut s = Session {
        conn,
        client: Client::new(),
        buf: vec![0; 64 * 1024],
    };
    if let Reply::Err(t) = s.reply().await? {
        return Err(Error::Temporary(format!("POP3 greeting: -ERR {t}")));
    }
    let mut caps = s.capa().await?;
    let mut starttls = false;
    if url.security == Security::StartTls && !opts.no_starttls {
        if !pop3::has_capability(&caps, "STLS") {
            return Err(Error::Tls(
                "the server offers no STLS (use pop3s://, or --no-starttls to log in in clear)"
                    .into(),
            ));
        }
        if let Reply::Err(t) = s.command(&Command::Stls).await? {
            return Err(Error::Tls(format!("STLS refused: {t}")));
        }
        if s.client.has_buffered() {
            return Err(Error::Protocol(
                "POP3: data after the STLS reply, before TLS (an injection attempt?)".into(),
            ));
        }
        let Conn::Plain(tcp) = s.conn else {
            return Err(Error::Protocol("STLS inside TLS".into()));
        };
        s.conn = opts.tls.handshake(tcp, &url.host).await?;
        s.client = Client::default();
        starttls = true;
        caps = s.capa().await?; // RFC 2595 §4: capabilities may change
    }
    login(&mut s, acct, &caps).await?;
    let source = Source {
        host: url.host.clone(),
        peer,
        protocol: "POP3",
        tls: s.conn.tls_info(),
        starttls,
        login: url.user.clone(),
    };
    let received = source.received(&opts.hostname);
    Ok((s, caps, received))
}

/// Fetches what is new for `acct`, adding to `counts`.
pub async fn fetch(acct: &Account, opts: &Options, counts: &mut Counts) -> Result<(), Error> {
    let url = &acct.url;
    let (mut s, caps, received) = connect(acct, opts).await?;
    let listing = match s.command(&Command::Uidl).await? {
        Reply::Ok { body: Some(b), .. } => {
            pop3::parse_uidl(&b).map_err(|e| Error::Protocol(format!("POP3: {e}")))?
        }
        Reply::Ok { .. } => return Err(Error::Protocol("POP3: UIDL without a list".into())),
        Reply::Err(t) => {
            return Err(Error::Protocol(format!(
                "the server has no UIDL ({t}): mxa-fetch needs it to fetch each message once"
            )));
        }
    };
    let state_path = acct.state_dir.join(url.state_key());
    let mut state = Pop3State::load(&state_path)?;
    let todo: Vec<&(u32, String)> = listing.iter().filter(|(_, u)| !state.is_done(u)).collect();
    counts.new += todo.len();
    let window = if pop3::has_capability(&caps, "PIPELINING") {
        WINDOW
    } else {
        1
    };

    let mut out = Vec::new();
    let mut sent: VecDeque<Sent> = VecDeque::new();
    if !acct.keep {
        // Recorded earlier, but the QUIT that would have removed them never
        // came: remove them now, unfetched.
        for (n, _) in listing.iter().filter(|(_, u)| state.is_done(u)) {
            out.extend(s.client.send(&Command::Dele(*n)));
            sent.push_back(Sent::Dele(*n));
        }
    }
    let mut deleted: HashSet<u32> = HashSet::new();
    let (mut next, mut in_flight, mut stop) = (0, 0, false);
    let progress = crate::Progress::new(acct, opts, todo.len());
    let mut pipe = Pipeline::new(acct.deliverer.clone(), received);
    let run: Result<(), Error> = async {
        loop {
            while !stop && in_flight < window && next < todo.len() {
                out.extend(s.client.send(&Command::Retr(todo[next].0)));
                sent.push_back(Sent::Retr(next));
                next += 1;
                in_flight += 1;
            }
            if !out.is_empty() {
                s.write(&out).await?;
                out.clear();
            }
            let done = if let Some(what) = sent.pop_front() {
                let reply = s.reply().await?;
                match what {
                    Sent::Dele(n) => {
                        match reply {
                            Reply::Ok { .. } => {
                                deleted.insert(n);
                            }
                            Reply::Err(t) => {
                                acct.log(&[("event", &"dele-refused"), ("msg", &n), ("reply", &t)]);
                            }
                        }
                        None
                    }
                    Sent::Retr(i) => {
                        in_flight -= 1;
                        if stop {
                            continue; // read and dropped: the run is over
                        }
                        match reply {
                            Reply::Ok { body: Some(b), .. } => pipe.push(i, b).await,
                            Reply::Ok { .. } => {
                                return Err(Error::Protocol("RETR without a body".into()));
                            }
                            Reply::Err(t) => {
                                // Deleted by another client since UIDL, or locked.
                                counts.failed += 1;
                                let uidl = &todo[i].1;
                                acct.log(&[
                                    ("event", &"retr-refused"),
                                    ("uidl", uidl),
                                    ("reply", &t),
                                ]);
                                None
                            }
                        }
                    }
                }
            } else if let Some(d) = pipe.pop().await {
                Some(d)
            } else {
                break;
            };
            let Some((i, outcome)) = done else { continue };
            let (n, uidl) = todo[i];
            match settle(acct, opts, &mut state, counts, uidl, outcome)? {
                Settled::Delivered if !acct.keep => {
                    out.extend(s.client.send(&Command::Dele(*n)));
                    sent.push_back(Sent::Dele(*n));
                }
                Settled::Deferred => stop = true,
                _ => {}
            }
            progress.tick(counts.delivered + counts.failed);
        }
        Ok(())
    }
    .await;
    if let Err(e) = run {
        // Deliveries still in flight when the connection failed are
        // finished and recorded, so the next run does not repeat them.
        while let Some((i, outcome)) = pipe.pop().await {
            settle(acct, opts, &mut state, counts, &todo[i].1, outcome)?;
        }
        return Err(e);
    }
    progress.done();
    // The records must be on disk before QUIT commits the DELEs.
    state.sync()?;
    let committed = matches!(s.command(&Command::Quit).await, Ok(Reply::Ok { .. }));
    let on_server: Vec<String> = listing
        .iter()
        .filter(|(n, _)| !(committed && deleted.contains(n)))
        .map(|(_, u)| u.clone())
        .collect();
    state.compact(&on_server)?;
    if !committed && !deleted.is_empty() {
        return Err(Error::Temporary(
            "POP3: no reply to QUIT: the server keeps the messages deleted in this session, the next run removes them".into(),
        ));
    }
    Ok(())
}

/// What became of a delivery.
enum Settled {
    Delivered,
    Deferred,
    Failed,
}

/// Records a delivered message (its line appended; fdatasync'd every
/// [`SYNC_EVERY`] and before QUIT), counts and logs the others.
fn settle(
    acct: &Account,
    opts: &Options,
    state: &mut Pop3State,
    counts: &mut Counts,
    uidl: &str,
    outcome: Outcome,
) -> Result<Settled, Error> {
    Ok(match outcome {
        // Relayed comes from remote SMTP delivery only, never an MDA.
        Outcome::Delivered | Outcome::Relayed { .. } => {
            state.record(uidl)?;
            counts.delivered += 1;
            if counts.delivered.is_multiple_of(SYNC_EVERY) {
                state.sync()?;
            }
            if opts.verbose {
                acct.log(&[("event", &"delivered"), ("uidl", &uidl)]);
            }
            Settled::Delivered
        }
        Outcome::Deferred(why) => {
            counts.deferred += 1;
            acct.log(&[("event", &"deferred"), ("uidl", &uidl), ("reason", &why)]);
            Settled::Deferred
        }
        Outcome::Failed(why) => {
            counts.failed += 1;
            acct.log(&[("event", &"failed"), ("uidl", &uidl), ("reason", &why)]);
            Settled::Failed
        }
    })
}

async fn login(s: &mut Session, acct: &Account, caps: &[String]) -> Result<(), Error> {
    let user = acct.url.user.as_str();
    let pass = acct.password.as_str();
    let reply = if pop3::has_sasl(caps, "PLAIN") {
        s.command(&Command::AuthPlain { user, pass }).await?
    } else {
        match s.command(&Command::User(user)).await? {
            Reply::Ok { .. } => s.command(&Command::Pass(pass)).await?,
            r => r,
        }
    };
    match reply {
        Reply::Ok { .. } => Ok(()),
        // RFC 3206: these say "later", not "wrong password".
        Reply::Err(t) if t.starts_with("[SYS/TEMP]") || t.starts_with("[IN-USE]") => {
            Err(Error::Temporary(format!("POP3 login: {t}")))
        }
        Reply::Err(t) => Err(Error::Auth(t)),
    }
}
