//! IMAP runs for an account, through async-imap: connect (TLS on connect,
//! or STARTTLS), LOGIN, then per folder: SELECT, check UIDVALIDITY against
//! the state, `UID SEARCH ALL`, and for each message not yet delivered
//! `UID FETCH … (UID BODY.PEEK[])` (PEEK: nothing is marked read before it
//! is delivered), deliver, record; then per batch `UID STORE +FLAGS.SILENT
//! (\Seen)` with keep, else `(\Seen \Deleted)` and `UID EXPUNGE` (RFC 4315,
//! UIDPLUS) or, without UIDPLUS, EXPUNGE. `--idle` waits with IDLE (RFC
//! 2177) between runs and reconnects with back-off.
//!
//! UIDVALIDITY policy (RFC 3501 §2.3.1.1: a new UIDVALIDITY means the old
//! UIDs mean nothing): with `keep = false` the folder only holds what was
//! not yet fetched, so the state is reset and the folder fetched in full
//! (only a message delivered but not yet expunged when the change came can
//! be delivered twice); with `keep = true` the folder is held: nothing is
//! fetched from it, each run logs `event=uidvalidity-changed policy=hold`
//! and exits 69, until the state file it names is removed (then the
//! folder is fetched in full) — never a silent full duplicate.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use async_imap::Session;
use futures_util::StreamExt;
use mxa_fetch_lib::state::ImapState;
use mxa_fetch_lib::url::Security;
use mxa_runner::mda::Outcome;

use crate::deliver::Source;
use crate::error::Error;
use crate::net::{self, Conn, IO_TIMEOUT};
use crate::pipeline::Pipeline;
use crate::{Account, Counts, Options};

/// Messages per `UID FETCH`: their flags are set, and expunged, after each
/// batch, so a cut connection leaves at most this many delivered but not
/// yet flagged (the state keeps them from being delivered again).
const BATCH: usize = 50;
/// How long one IDLE lasts before it is renewed (RFC 2177 §3 asks for at
/// most 29 minutes; Dovecot says "Still here" every 2 minutes, so a link
/// that died silently is noticed within this).
const IDLE_WAIT: Duration = Duration::from_secs(5 * 60);
/// After a deferred delivery, `--idle` tries again this soon.
const RETRY_DEFERRED: Duration = Duration::from_secs(60);
/// Back-off between reconnections: doubled from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);

type Sess = Session<Conn>;

/// Runs `f` with the I/O deadline.
async fn t<T, E: Into<Error>>(f: impl Future<Output = Result<T, E>>) -> Result<T, Error> {
    tokio::time::timeout(IO_TIMEOUT, f)
        .await
        .map_err(|_| Error::Temporary("IMAP: timed out".into()))?
        .map_err(Into::into)
}

/// A logged-in session.
struct Connected {
    sess: Sess,
    received: Vec<u8>,
    uidplus: bool,
    idle: bool,
    /// RFC 6851.
    moves: bool,
    /// UIDNEXT of the first folder when the last run selected it: a
    /// message that arrives before IDLE starts shows as a higher one.
    uid_next: Option<u32>,
}

async fn connect(acct: &Account, opts: &Options) -> Result<Connected, Error> {
    let url = &acct.url;
    let (tcp, peer) = net::connect(&url.host, url.port).await?;
    let conn = if url.security == Security::Implicit {
        opts.tls.handshake(tcp, &url.host).await?
    } else {
        Conn::Plain(tcp)
    };
    let mut client = async_imap::Client::new(conn);
    let greeting = tokio::time::timeout(IO_TIMEOUT, client.read_response())
        .await
        .map_err(|_| Error::Temporary("IMAP: no greeting".into()))?
        .map_err(|e| Error::Temporary(format!("IMAP greeting: {e}")))?;
    if greeting.is_none() {
        return Err(Error::Temporary("IMAP: closed before the greeting".into()));
    }
    let mut starttls = false;
    if url.security == Security::StartTls && !opts.no_starttls {
        tokio::time::timeout(
            IO_TIMEOUT,
            client.run_command_and_check_ok("STARTTLS", None),
        )
        .await
        .map_err(|_| Error::Temporary("IMAP: STARTTLS timed out".into()))?
        .map_err(|e| {
            Error::Tls(format!(
                "STARTTLS refused ({e}): use imaps://, or --no-starttls to log in in clear"
            ))
        })?;
        // Whatever the server sent after its reply is dropped with the
        // plain connection's buffer (RFC 2595 §8's lesson).
        let Conn::Plain(tcp) = client.into_inner() else {
            return Err(Error::Protocol("STARTTLS inside TLS".into()));
        };
        client = async_imap::Client::new(opts.tls.handshake(tcp, &url.host).await?);
        starttls = true;
    }
    let source = Source {
        host: url.host.clone(),
        peer,
        protocol: "IMAP",
        tls: client.get_ref().tls_info(),
        starttls,
        login: url.user.clone(),
    };
    // AUTHENTICATE PLAIN when offered: the password goes in base64, with
    // no quoting for LOGIN to get wrong (quotes, backslashes, 8-bit).
    let offered = capabilities_before_login(&mut client).await?;
    let plain = offered.iter().any(|c| c.eq_ignore_ascii_case("AUTH=PLAIN"));
    if !plain
        && offered
            .iter()
            .any(|c| c.eq_ignore_ascii_case("LOGINDISABLED"))
    {
        return Err(Error::Auth(
            "the server disables LOGIN here and offers no AUTH=PLAIN (TLS needed?)".into(),
        ));
    }
    let login = async {
        if plain {
            let auth = Plain {
                user: url.user.clone(),
                password: acct.password.clone(),
            };
            client.authenticate("PLAIN", auth).await
        } else {
            client.login(&url.user, &acct.password).await
        }
    };
    let mut sess = tokio::time::timeout(IO_TIMEOUT, login)
        .await
        .map_err(|_| Error::Temporary("IMAP: login timed out".into()))?
        .map_err(|(e, _)| match e {
            async_imap::error::Error::No(m)
                if m.contains("[UNAVAILABLE]") || m.contains("[SERVERBUG]") =>
            {
                Error::Temporary(format!("IMAP login: {m}"))
            }
            async_imap::error::Error::No(m) | async_imap::error::Error::Bad(m) => Error::Auth(m),
            e => Error::from(e),
        })?;
    if opts.verbose {
        let how = if plain { "AUTHENTICATE PLAIN" } else { "LOGIN" };
        acct.log(&[("event", &"login"), ("command", &how)]);
    }
    let caps = t(sess.capabilities()).await?;
    if let Some(dest) = &acct.move_to {
        // The folder moved into is made when missing; one that exists
        // already answers NO, which is fine.
        match t(sess.create(dest)).await {
            Ok(()) => acct.log(&[("event", &"created"), ("folder", dest)]),
            Err(Error::Temporary(m)) if m.starts_with("IMAP: NO") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Connected {
        sess,
        received: source.received(&opts.hostname),
        uidplus: caps.has_str("UIDPLUS"),
        idle: caps.has_str("IDLE"),
        moves: caps.has_str("MOVE"),
        uid_next: None,
    })
}

/// SASL PLAIN (RFC 4616): authorization identity empty, then the login
/// and the password.
struct Plain {
    user: String,
    password: String,
}

impl async_imap::Authenticator for Plain {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8];
        r.extend_from_slice(self.user.as_bytes());
        r.push(0);
        r.extend_from_slice(self.password.as_bytes());
        r
    }
}

/// The CAPABILITY list before login (after STARTTLS, when it was used):
/// async-imap asks only once logged in.
async fn capabilities_before_login(
    client: &mut async_imap::Client<Conn>,
) -> Result<Vec<String>, Error> {
    use async_imap::imap_proto::{Capability, Response, Status};
    use tokio::io::AsyncWriteExt;
    const TAG: &str = "mxa0";
    let io = |e: std::io::Error| Error::Temporary(format!("IMAP CAPABILITY: {e}"));
    let stream = client.get_mut();
    stream
        .write_all(format!("{TAG} CAPABILITY\r\n").as_bytes())
        .await
        .map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut caps = Vec::new();
    loop {
        let r = tokio::time::timeout(IO_TIMEOUT, client.read_response())
            .await
            .map_err(|_| Error::Temporary("IMAP: CAPABILITY timed out".into()))?
            .map_err(io)?
            .ok_or_else(|| Error::Temporary("IMAP: closed during CAPABILITY".into()))?;
        match r.parsed() {
            Response::Capabilities(list) => {
                caps.extend(list.iter().map(|c| match c {
                    Capability::Imap4rev1 => "IMAP4rev1".to_string(),
                    Capability::Auth(a) => format!("AUTH={a}"),
                    Capability::Atom(a) => a.to_string(),
                }));
            }
            Response::Done { tag, status, .. } if tag.0 == TAG => {
                if *status != Status::Ok {
                    return Err(Error::Protocol("IMAP: CAPABILITY refused".into()));
                }
                return Ok(caps);
            }
            _ => {} // untagged data of no interest here
        }
    }
}

/// One run over every folder of `acct`.
pub async fn fetch(acct: &Account, opts: &Options, counts: &mut Counts) -> Result<(), Error> {
    let mut c = connect(acct, opts).await?;
    let r = fetch_folders(&mut c, acct, opts, counts).await;
    if r.is_ok() {
        let _ = t(c.sess.logout()).await;
    }
    r
}

async fn fetch_folders(
    c: &mut Connected,
    acct: &Account,
    opts: &Options,
    counts: &mut Counts,
) -> Result<(), Error> {
    for folder in &acct.folders {
        if fetch_folder(c, acct, opts, folder, counts).await? {
            break; // a deferred delivery stops the run
        }
    }
    Ok(())
}

/// Fetches one folder; true when a deferred delivery stopped the run.
async fn fetch_folder(
    c: &mut Connected,
    acct: &Account,
    opts: &Options,
    folder: &str,
    counts: &mut Counts,
) -> Result<bool, Error> {
    let mbox = match tokio::time::timeout(IO_TIMEOUT, c.sess.select(folder)).await {
        Err(_) => return Err(Error::Temporary("IMAP: SELECT timed out".into())),
        Ok(Err(async_imap::error::Error::No(m))) => {
            counts.held += 1;
            acct.log(&[
                ("event", &"select-refused"),
                ("folder", &folder),
                ("reply", &m),
            ]);
            return Ok(false);
        }
        Ok(r) => r?,
    };
    if acct.folders.first().is_some_and(|f| f == folder) {
        c.uid_next = mbox.uid_next;
    }
    let v = mbox
        .uid_validity
        .ok_or_else(|| Error::Protocol(format!("IMAP: {folder}: no UIDVALIDITY")))?;
    let path = acct
        .state_dir
        .join(acct.url.state_key())
        .join(mxa_fetch_lib::url::file_name(folder));
    let mut state = ImapState::load(&path)?;
    if !uidvalidity_policy(acct, folder, &mut state, v)? {
        counts.held += 1;
        return Ok(false);
    }
    let mut on_server: BTreeSet<u32> = t(c.sess.uid_search("ALL")).await?.into_iter().collect();
    let todo: Vec<u32> = on_server
        .iter()
        .copied()
        .filter(|&u| !state.is_done(u))
        .collect();
    counts.new += todo.len();
    if !acct.keep {
        // Delivered and recorded, but the run ended before the expunge.
        let leftover: Vec<u32> = on_server
            .iter()
            .copied()
            .filter(|&u| state.is_done(u))
            .collect();
        if !leftover.is_empty() {
            flag(c, acct, &leftover, &mut on_server).await?;
        }
    }
    let progress = crate::Progress::new(acct, opts, todo.len());
    let mut pipe = Pipeline::new(acct.deliverer.clone(), c.received.clone());
    let mut tally = Tally::default();
    for batch in todo.chunks(BATCH) {
        let wanted: BTreeSet<u32> = batch.iter().copied().collect();
        let run: Result<(), Error> = async {
            let stream = t(c.sess.uid_fetch(uid_set(batch), "(UID BODY.PEEK[])")).await?;
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = tokio::time::timeout(IO_TIMEOUT, stream.next())
                .await
                .map_err(|_| Error::Temporary("IMAP: FETCH timed out".into()))?
            {
                let f = item?;
                let (Some(uid), Some(body)) = (f.uid, f.body()) else {
                    continue; // an unsolicited FETCH (flags changed)
                };
                if tally.stop || !wanted.contains(&uid) {
                    continue;
                }
                if let Some(d) = pipe.push(uid, mxa_message::to_lf(body)).await {
                    tally.settle(acct, opts, folder, &mut state, counts, d)?;
                    progress.tick(counts.delivered + counts.failed);
                }
            }
            Ok(())
        }
        .await;
        // Deliveries still in flight are finished and recorded, even when
        // the connection failed, so the next run does not repeat them.
        while let Some(d) = pipe.pop().await {
            tally.settle(acct, opts, folder, &mut state, counts, d)?;
            progress.tick(counts.delivered + counts.failed);
        }
        run?;
        if !tally.done.is_empty() {
            state.sync()?; // recorded on disk before the server forgets
            let done = std::mem::take(&mut tally.done);
            flag(c, acct, &done, &mut on_server).await?;
        }
        if tally.stop {
            break;
        }
    }
    progress.done();
    state.compact(&on_server)?;
    Ok(tally.stop)
}

/// What a batch's deliveries came to.
#[derive(Debug, Default)]
struct Tally {
    /// Delivered and recorded, to be flagged.
    done: Vec<u32>,
    /// A delivery was deferred: the run stops.
    stop: bool,
}

impl Tally {
    /// Takes the outcome of one delivery.
    fn settle(
        &mut self,
        acct: &Account,
        opts: &Options,
        folder: &str,
        state: &mut ImapState,
        counts: &mut Counts,
        (uid, outcome): (u32, Outcome),
    ) -> Result<(), Error> {
        match outcome {
            // Relayed comes from remote SMTP delivery only, never an MDA.
            Outcome::Delivered | Outcome::Relayed { .. } => {
                state.record(uid)?;
                self.done.push(uid);
                counts.delivered += 1;
                if opts.verbose {
                    acct.log(&[("event", &"delivered"), ("folder", &folder), ("uid", &uid)]);
                }
            }
            Outcome::Deferred(why) => {
                counts.deferred += 1;
                self.stop = true;
                acct.log(&[
                    ("event", &"deferred"),
                    ("folder", &folder),
                    ("uid", &uid),
                    ("reason", &why),
                ]);
            }
            Outcome::Failed(why) => {
                counts.failed += 1;
                acct.log(&[
                    ("event", &"failed"),
                    ("folder", &folder),
                    ("uid", &uid),
                    ("reason", &why),
                ]);
            }
        }
        Ok(())
    }
}

/// Applies the UIDVALIDITY policy (see the module's documentation) to the
/// folder's state: false when the folder is held.
fn uidvalidity_policy(
    acct: &Account,
    folder: &str,
    state: &mut ImapState,
    v: u32,
) -> Result<bool, Error> {
    let path = state.path().to_path_buf();
    match state.uidvalidity() {
        None => state.reset(v)?,
        Some(old) if old == v => {}
        Some(old) if acct.keep => {
            acct.log(&[
                ("event", &"uidvalidity-changed"),
                ("folder", &folder),
                ("old", &old),
                ("new", &v),
                ("policy", &"hold"),
                ("state", &path.display()),
                (
                    "fix",
                    &"remove the state file to fetch the folder again in full",
                ),
            ]);
            return Ok(false);
        }
        Some(old) => {
            acct.log(&[
                ("event", &"uidvalidity-changed"),
                ("folder", &folder),
                ("old", &old),
                ("new", &v),
                ("policy", &"refetch"),
            ]);
            state.reset(v)?;
        }
    }
    Ok(true)
}

/// Marks delivered messages: `\Seen` with keep, else deleted and
/// expunged; those expunged leave `on_server`.
async fn flag(
    c: &mut Connected,
    acct: &Account,
    uids: &[u32],
    on_server: &mut BTreeSet<u32>,
) -> Result<(), Error> {
    let set = uid_set(uids);
    if let Some(dest) = &acct.move_to {
        return move_to(c, &set, dest, uids, on_server).await;
    }
    let flags = if acct.keep {
        "+FLAGS.SILENT (\\Seen)"
    } else {
        "+FLAGS.SILENT (\\Seen \\Deleted)"
    };
    {
        let s = t(c.sess.uid_store(&set, flags)).await?;
        let mut s = std::pin::pin!(s);
        while let Some(r) = tokio::time::timeout(IO_TIMEOUT, s.next())
            .await
            .map_err(|_| Error::Temporary("IMAP: STORE timed out".into()))?
        {
            r?;
        }
    }
    if acct.keep {
        return Ok(());
    }
    if c.uidplus {
        let s = t(c.sess.uid_expunge(&set)).await?;
        let mut s = std::pin::pin!(s);
        while let Some(r) = tokio::time::timeout(IO_TIMEOUT, s.next())
            .await
            .map_err(|_| Error::Temporary("IMAP: EXPUNGE timed out".into()))?
        {
            r?;
        }
    } else {
        // Without UIDPLUS this also removes messages another client marked
        // \Deleted, as any IMAP client's EXPUNGE would.
        let s = t(c.sess.expunge()).await?;
        let mut s = std::pin::pin!(s);
        while let Some(r) = tokio::time::timeout(IO_TIMEOUT, s.next())
            .await
            .map_err(|_| Error::Temporary("IMAP: EXPUNGE timed out".into()))?
        {
            r?;
        }
    }
    for u in uids {
        on_server.remove(u);
    }
    Ok(())
}

/// `move_to`: marks the delivered messages `\\Seen`, then moves them into
/// `dest` with `UID MOVE` (RFC 6851), or without MOVE with `UID COPY` then
/// deletion and expunge. They leave `on_server`. A cut in between leaves
/// them recorded as delivered: the next run moves them, never delivers
/// them again.
async fn move_to(
    c: &mut Connected,
    set: &str,
    dest: &str,
    uids: &[u32],
    on_server: &mut BTreeSet<u32>,
) -> Result<(), Error> {
    store(c, set, "+FLAGS.SILENT (\\Seen)").await?;
    if c.moves {
        t(c.sess.uid_mv(set, dest)).await?;
    } else {
        t(c.sess.uid_copy(set, dest)).await?;
        store(c, set, "+FLAGS.SILENT (\\Deleted)").await?;
        if c.uidplus {
            drain(t(c.sess.uid_expunge(set)).await?).await?;
        } else {
            drain(t(c.sess.expunge()).await?).await?;
        }
    }
    for u in uids {
        on_server.remove(u);
    }
    Ok(())
}

async fn store(c: &mut Connected, set: &str, flags: &str) -> Result<(), Error> {
    let s = t(c.sess.uid_store(set, flags)).await?;
    drain(s).await
}

/// Reads a command's responses to the end.
async fn drain<T>(
    s: impl futures_util::Stream<Item = async_imap::error::Result<T>>,
) -> Result<(), Error> {
    let mut s = std::pin::pin!(s);
    while let Some(r) = tokio::time::timeout(IO_TIMEOUT, s.next())
        .await
        .map_err(|_| Error::Temporary("IMAP: timed out".into()))?
    {
        r?;
    }
    Ok(())
}

/// `--idle`: runs, then waits with IDLE on the first folder for new mail,
/// forever; reconnects after a temporary error with back-off. Returns only
/// on an error that waiting does not cure (login refused, bad state).
pub async fn idle(acct: &Account, opts: &Options) -> Error {
    let mut backoff = BACKOFF_FIRST;
    loop {
        let e = idle_session(acct, opts, &mut backoff).await;
        if !e.is_temporary() {
            return e;
        }
        acct.log(&[
            ("event", &"reconnect"),
            ("after", &format!("{}s", backoff.as_secs())),
            ("reason", &e),
        ]);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn idle_session(acct: &Account, opts: &Options, backoff: &mut Duration) -> Error {
    let mut c = match connect(acct, opts).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    *backoff = BACKOFF_FIRST;
    let first = acct
        .folders
        .first()
        .cloned()
        .unwrap_or_else(|| "INBOX".into());
    loop {
        let mut counts = Counts::default();
        if let Err(e) = fetch_folders(&mut c, acct, opts, &mut counts).await {
            return e;
        }
        if counts.new > 0 || counts.deferred > 0 {
            acct.report(opts, &counts);
        }
        let wait = if counts.deferred > 0 {
            RETRY_DEFERRED
        } else {
            IDLE_WAIT
        };
        if !c.idle {
            // No IDLE: poll.
            tokio::time::sleep(wait).await;
            continue;
        }
        match t(c.sess.select(&first)).await {
            Err(e) => return e,
            // Mail came between the run and now: run again before waiting.
            Ok(m) if m.uid_next.is_some() && m.uid_next != c.uid_next => continue,
            Ok(_) => {}
        }
        let mut h = c.sess.idle();
        if let Err(e) = t(h.init()).await {
            return e;
        }
        let (fut, _stop) = h.wait_with_timeout(wait);
        if let Err(e) = fut.await {
            return e.into();
        }
        c.sess = match t(h.done()).await {
            Ok(s) => s,
            Err(e) => return e,
        };
    }
}

/// An IMAP UID set (RFC 3501 §9 sequence-set) of sorted UIDs, with ranges.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn uid_sets_use_ranges() {
        assert_eq!(super::uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(super::uid_set(&[4]), "4");
        assert_eq!(super::uid_set(&[]), "");
    }
}
