//! One pass over the queue: each message is claimed, its local recipients
//! expanded through the aliases, each due recipient tried, failures bounced
//! (the bounce queued before the recipient is marked failed), success
//! reports queued for NOTIFY=SUCCESS, a delay warning sent once, and the
//! message removed when nothing is left to do.
//! The envelope is rewritten after every delivery (and at the end of the
//! message, when anything changed), so a crash repeats at
//! most the delivery in progress (DESIGN.md invariants 4 and 5). A success
//! report owed is written with the delivery (`success` in the envelope)
//! and cleared once the report is queued: a crash in between sends it at
//! the next pass, and a message leaves the queue only when none is owed.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Mutex;

use mxa_config::{Config, Users};
use mxa_spool::{Claim, Envelope, QueueId, Recipient, Spool, State, Success, TMP_MAX_AGE};

use crate::aliases::{Aliases, Target};
use crate::bounce::{self, Action, Diagnostic, Entry, Nature, Report};
use crate::mda::{self, Outcome, Parts};
use crate::remote::Remote;
use crate::{deliver_file, schedule};

const PROG: &str = "mxa-queue";

/// Which recipients a pass tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every pending and deferred recipient (`flush`, `sendmail -q`).
    All,
    /// Only those whose next try has come (`flush --due`, `run`).
    Due,
}

/// What a pass did, and what it left.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Recipients delivered.
    pub delivered: usize,
    /// Recipients deferred.
    pub deferred: usize,
    /// Recipients failed (bounced).
    pub failed: usize,
    /// Recipients still waiting after the pass (pending or deferred).
    pub waiting: usize,
    /// Messages another runner held.
    pub busy: usize,
    /// The earliest next try among waiting recipients.
    pub next_due: Option<u64>,
}

impl Summary {
    fn add(&mut self, o: &Summary) {
        self.delivered += o.delivered;
        self.deferred += o.deferred;
        self.failed += o.failed;
        self.waiting += o.waiting;
        self.busy += o.busy;
        self.next_due = match (self.next_due, o.next_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// The queue runner.
#[derive(Debug)]
pub struct Runner {
    /// The spool.
    pub spool: Spool,
    /// The configuration.
    pub config: Config,
    /// Messages worked on at once.
    pub workers: usize,
}

/// What every message of a pass shares.
struct Ctx<'a> {
    runner: &'a Runner,
    users: Users,
    aliases: Option<Aliases>,
    mode: Mode,
    now: u64,
    /// Built on first use: a pass with no remote recipient, or a root
    /// runner (whose smtp-out children build their own), needs none.
    remote: std::sync::OnceLock<Result<Remote, String>>,
    /// A root runner's `smtp-out` helper, started on first use: one for
    /// the pass, so its connection pool covers every worker.
    smtp_out: std::sync::OnceLock<Result<crate::smtp_out::Helper, String>>,
}

impl Runner {
    /// Runs one pass. Errors are those of the spool or the config files
    /// (users, aliases) as a whole; a recipient's failure is its own.
    pub fn pass(&self, mode: Mode) -> Result<Summary, String> {
        let removed = self.spool.cleanup(TMP_MAX_AGE).map_err(|e| e.to_string())?;
        if removed > 0 {
            mxa_cli::log(PROG, &[("event", &"cleanup"), ("removed", &removed)]);
        }
        let users = self.config.load_users().map_err(|e| e.to_string())?;
        let aliases = match &self.config.aliases {
            Some(p) => Some(Aliases::load(p).map_err(|e| e.to_string())?),
            None => None,
        };
        let ids: VecDeque<QueueId> = self.spool.list().map_err(|e| e.to_string())?.into();
        let ctx = Ctx {
            runner: self,
            users,
            aliases,
            mode,
            now: mxa_spool::now(),
            remote: std::sync::OnceLock::new(),
            smtp_out: std::sync::OnceLock::new(),
        };
        let queue = Mutex::new(ids);
        let total = Mutex::new(Summary::default());
        std::thread::scope(|s| {
            for _ in 0..self.workers.max(1) {
                s.spawn(|| {
                    loop {
                        let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                        let Some(id) = next else { break };
                        let sum = ctx.message(&id);
                        if let Ok(mut t) = total.lock() {
                            t.add(&sum);
                        }
                    }
                });
            }
        });
        total.into_inner().map_err(|e| e.to_string())
    }
}

impl Ctx<'_> {
    fn message(&self, id: &QueueId) -> Summary {
        let mut sum = Summary::default();
        let mut claim = match self.runner.spool.claim(id) {
            Ok(c) => c,
            Err(mxa_spool::Error::Busy(_)) => {
                sum.busy = 1;
                return sum;
            }
            Err(mxa_spool::Error::NotFound(_)) => return sum,
            Err(e) => {
                mxa_cli::log(PROG, &[("event", &"error"), ("id", id), ("error", &e)]);
                sum.waiting = 1;
                return sum;
            }
        };
        let worked = self.work(&mut claim, &mut sum);
        let env = match &worked {
            Ok(env) => env,
            Err(e) => {
                mxa_cli::log(PROG, &[("event", &"error"), ("id", id), ("error", e)]);
                claim.envelope()
            }
        };
        for r in env
            .recipients
            .iter()
            .filter(|r| matches!(r.state, State::Pending | State::Deferred))
        {
            sum.waiting += 1;
            let t = r.next_try.unwrap_or(self.now);
            sum.next_due = Some(sum.next_due.map_or(t, |d| d.min(t)));
        }
        if finished(env) {
            match claim.remove() {
                Ok(()) => mxa_cli::log(PROG, &[("event", &"removed"), ("id", id)]),
                Err(e) => mxa_cli::log(PROG, &[("event", &"error"), ("id", id), ("error", &e)]),
            }
        }
        sum
    }

    /// Works on the due recipients of a claimed message; returns the
    /// envelope as it now stands. A message left with nothing to do is
    /// not written again: removing it is the durable record.
    fn work(&self, claim: &mut Claim<'_>, sum: &mut Summary) -> Result<Envelope, mxa_spool::Error> {
        let id = claim.id().clone();
        let mut env = claim.envelope().clone();
        if self.expand(&id, &mut env) {
            claim.update(env.clone())?;
        }
        let mut data = Vec::new();
        claim
            .data()?
            .read_to_end(&mut data)
            .map_err(|e| mxa_spool::Error::Io {
                op: "read",
                path: self.runner.spool.data_path(&id),
                source: e,
            })?;
        let mut failed: Vec<(usize, String)> = Vec::new();
        let due: Vec<usize> = (0..env.recipients.len())
            .filter(|&i| {
                let r = &env.recipients[i];
                let due = match self.mode {
                    Mode::All => true,
                    Mode::Due => r.next_try.is_none_or(|t| t <= self.now),
                };
                matches!(r.state, State::Pending | State::Deferred) && due
            })
            .collect();
        let (remote, local): (Vec<usize>, Vec<usize>) = due
            .into_iter()
            .partition(|&i| self.is_remote(&env.recipients[i]));
        for i in local {
            let outcome = self.deliver(&env, &env.recipients[i], &data);
            self.apply(claim, &mut env, i, outcome, &mut failed, sum)?;
        }
        // All recipients of one domain in one transaction.
        let mut by_domain: Vec<(String, Vec<usize>)> = Vec::new();
        for i in remote {
            let d = env.recipients[i]
                .address
                .rsplit_once('@')
                .map_or("", |(_, d)| d)
                .to_ascii_lowercase();
            match by_domain.iter_mut().find(|(x, _)| *x == d) {
                Some((_, v)) => v.push(i),
                None => by_domain.push((d, vec![i])),
            }
        }
        for (domain, idxs) in by_domain {
            let config = &self.runner.config;
            let outcomes = if nix::unistd::geteuid().is_root() {
                // Never read the network as root: a child that drops to
                // `user` does it (see smtp_out).
                let helper = self.smtp_out.get_or_init(|| {
                    crate::smtp_out::Helper::spawn(config).map_err(|e| e.to_string())
                });
                match helper {
                    Ok(h) => h.deliver(&id, &domain, &env, &idxs, &data),
                    Err(e) => {
                        let why = format!("4.3.0 the SMTP helper failed: {e}");
                        vec![Outcome::Deferred(why); idxs.len()]
                    }
                }
            } else {
                match self.remote.get_or_init(|| Remote::new(config)) {
                    Ok(r) => r.deliver(config, &id, &domain, &env, &idxs, &data),
                    Err(e) => vec![Outcome::Deferred(format!("4.3.0 {e}")); idxs.len()],
                }
            };
            for (i, o) in idxs.into_iter().zip(outcomes) {
                self.apply(claim, &mut env, i, o, &mut failed, sum)?;
            }
        }
        if !failed.is_empty() {
            self.bounce(&id, &mut env, &failed, &data, sum);
        }
        self.succeed(&id, &mut env, &data);
        self.warn_delay(&id, &mut env, &data);
        // Only a real change is written: a rewrite would wake `run`'s own
        // inotify watch and turn an idle queue into a busy loop. A message
        // now finished is removed next, which records it.
        if env != *claim.envelope() && !finished(&env) {
            claim.update(env.clone())?;
        }
        Ok(env)
    }

    /// Records one attempt's outcome: a delivery at once and durably (a
    /// crash must not repeat it), with the success report it owes the
    /// sender, a deferral with its next try, a failure into `failed`,
    /// bounced at the end of the message.
    fn apply(
        &self,
        claim: &mut Claim<'_>,
        env: &mut Envelope,
        i: usize,
        outcome: Outcome,
        failed: &mut Vec<(usize, String)>,
        sum: &mut Summary,
    ) -> Result<(), mxa_spool::Error> {
        let id = claim.id().clone();
        let expired = self.now.saturating_sub(env.created) >= self.lifetime();
        // A report is never reported on: the null sender gets none.
        let null_sender = env.sender.is_empty();
        let r = &mut env.recipients[i];
        r.attempts = r.attempts.saturating_add(1);
        let wants_success = !null_sender
            && r.notify
                .as_deref()
                .is_some_and(|n| n.split(',').any(|w| w.trim() == "success"));
        match outcome {
            Outcome::Delivered | Outcome::Relayed { .. } => {
                // RFC 3461 §5.2.2: a server that offers DSN took NOTIFY
                // along, and reports success itself; one that does not
                // leaves us to say the message was relayed.
                let (success, reply) = match outcome {
                    Outcome::Relayed { reply, dsn } => ((!dsn).then_some(Success::Relayed), reply),
                    _ => (Some(Success::Delivered), "delivered".to_string()),
                };
                r.state = State::Delivered;
                r.next_try = None;
                r.last_reply = Some(reply);
                r.success = success.filter(|_| wants_success);
                sum.delivered += 1;
                log_rcpt("delivered", &id, r, "");
                // Written at once, so that a crash later in the message
                // does not repeat it; unless it was the last thing to do,
                // and the message's removal, next, records it.
                if !(failed.is_empty() && finished(env)) {
                    claim.update(env.clone())?;
                }
            }
            Outcome::Deferred(why) if !expired => {
                r.state = State::Deferred;
                r.next_try = Some(schedule::next_try(self.now, r.attempts));
                r.last_reply = Some(why.clone());
                sum.deferred += 1;
                log_rcpt("deferred", &id, r, &why);
            }
            Outcome::Deferred(why) => {
                let span = mxa_config::format_duration(self.runner.config.queue.lifetime);
                failed.push((
                    i,
                    format!("4.4.7 gave up after {span} of trying; last error: {why}"),
                ));
            }
            Outcome::Failed(why) => failed.push((i, why)),
        }
        Ok(())
    }

    /// A recipient for another host: not in `domains`, not our host name,
    /// and not an alias's command or file.
    fn is_remote(&self, r: &Recipient) -> bool {
        let special = r.parent.is_some() && r.address.starts_with(['|', '/']);
        !special && !self.is_local(&r.address)
    }

    fn lifetime(&self) -> u64 {
        self.runner.config.queue.lifetime.as_secs()
    }

    fn is_local(&self, address: &str) -> bool {
        match address.rsplit_once('@') {
            None => true,
            Some((_, d)) => {
                self.runner.config.is_local_domain(d)
                    || d.eq_ignore_ascii_case(&self.runner.config.hostname)
            }
        }
    }

    /// Replaces each new local recipient that has an alias by its targets.
    /// Returns whether the envelope changed.
    fn expand(&self, id: &QueueId, env: &mut Envelope) -> bool {
        let Some(aliases) = &self.aliases else {
            return false;
        };
        let domains = &self.runner.config.domains;
        let mut out: Vec<Recipient> = Vec::with_capacity(env.recipients.len());
        let mut changed = false;
        for r in env.recipients.drain(..) {
            let fresh = r.state == State::Pending
                && r.attempts == 0
                && r.parent.is_none()
                && self.is_local(&r.address);
            let targets = if fresh {
                aliases.expand(&r.address, domains)
            } else {
                Ok(None)
            };
            match targets {
                Ok(Some(targets)) => {
                    changed = true;
                    mxa_cli::log(
                        PROG,
                        &[
                            ("event", &"expanded"),
                            ("id", id),
                            ("to", &format!("<{}>", r.address)),
                            ("targets", &targets.len()),
                        ],
                    );
                    for t in targets {
                        let address = match t {
                            Target::Address(a) => a,
                            Target::Command(c) => format!("|{c}"),
                            Target::File(p) => p.to_string_lossy().into_owned(),
                        };
                        let mut child = Recipient::new(address);
                        child.notify = r.notify.clone();
                        child.orcpt = r
                            .orcpt
                            .clone()
                            .or_else(|| Some(format!("rfc822;{}", r.address)));
                        child.parent = Some(r.address.clone());
                        out.push(child);
                    }
                }
                Ok(None) => out.push(r),
                Err(e) => {
                    mxa_cli::log(
                        PROG,
                        &[("event", &"alias-error"), ("id", id), ("error", &e)],
                    );
                    out.push(r);
                }
            }
        }
        env.recipients = out;
        changed
    }

    /// Tries one local recipient (a user, or an alias's command or file).
    fn deliver(&self, env: &Envelope, r: &Recipient, data: &[u8]) -> Outcome {
        let config = &self.runner.config;
        if let Some(parent) = &r.parent {
            if let Some(cmd) = r.address.strip_prefix('|') {
                return deliver_file::command(config, cmd, &env.sender, parent, data);
            }
            if r.address.starts_with('/') {
                return deliver_file::file(&r.address, &env.sender, parent, data);
            }
        }
        let parts = Parts::new(&r.address, config, &self.users);
        let orig = r
            .orcpt
            .as_deref()
            .map(|o| o.split_once(';').map_or(o, |(_, a)| a));
        mda::deliver(config, &parts, &env.sender, orig, data)
    }

    /// Queues one bounce for the recipients in `failed`, then marks them
    /// failed. If the bounce cannot be queued they stay as they were, to be
    /// tried (and bounced) again.
    fn bounce(
        &self,
        id: &QueueId,
        env: &mut Envelope,
        failed: &[(usize, String)],
        data: &[u8],
        sum: &mut Summary,
    ) {
        let wants = |r: &Recipient| r.notify.as_deref().is_none_or(|n| n.contains("failure"));
        let entries: Vec<Entry> = failed
            .iter()
            .filter(|(i, _)| wants(&env.recipients[*i]))
            .map(|(i, why)| entry(&env.recipients[*i], Action::Failed, why))
            .collect();
        let queued = if env.sender.is_empty() || entries.is_empty() {
            Ok(None) // RFC 3461/5321 §4.5.5: never bounce a bounce
        } else {
            self.queue_report(id, env, entries, data, None).map(Some)
        };
        // On an error (queue_report logged it) they stay as they were.
        if let Ok(report_id) = queued {
            for (i, why) in failed {
                let r = &mut env.recipients[*i];
                r.state = State::Failed;
                r.next_try = None;
                r.last_reply = Some(why.clone());
                sum.failed += 1;
                let note = report_id
                    .as_ref()
                    .map_or("no bounce".to_string(), |b| format!("bounce {b}"));
                log_rcpt("failed", id, r, &format!("{why} ({note})"));
            }
        }
    }

    /// Queues one success report for the delivered recipients that still
    /// owe one (NOTIFY=SUCCESS, see [`Ctx::apply`]), then clears what they
    /// owe. None for the null sender (a report is never reported on). If
    /// the report cannot be queued they keep owing it, for the next pass.
    fn succeed(&self, id: &QueueId, env: &mut Envelope, data: &[u8]) {
        let owed: Vec<usize> = (0..env.recipients.len())
            .filter(|&i| env.recipients[i].success.is_some())
            .collect();
        if owed.is_empty() {
            return;
        }
        if !env.sender.is_empty() {
            let entries: Vec<Entry> = owed
                .iter()
                .map(|&i| success_entry(&env.recipients[i]))
                .collect();
            if self.queue_report(id, env, entries, data, None).is_err() {
                return; // queue_report logged why
            }
        }
        for i in owed {
            env.recipients[i].success = None;
        }
    }

    /// One delay warning per message, once it is `delay_warning` old, for
    /// the deferred recipients whose NOTIFY does not exclude it.
    fn warn_delay(&self, id: &QueueId, env: &mut Envelope, data: &[u8]) {
        let age = self.now.saturating_sub(env.created);
        if env.warned
            || env.sender.is_empty()
            || age < self.runner.config.queue.delay_warning.as_secs()
        {
            return;
        }
        let wants = |r: &Recipient| r.notify.as_deref().is_none_or(|n| n.contains("delay"));
        let entries: Vec<Entry> = env
            .recipients
            .iter()
            .filter(|r| r.state == State::Deferred && wants(r))
            .map(|r| entry(r, Action::Delayed, r.last_reply.as_deref().unwrap_or("")))
            .collect();
        if entries.is_empty() {
            return;
        }
        let until = env.created + self.lifetime();
        if self
            .queue_report(id, env, entries, data, Some(until))
            .is_ok()
        {
            env.warned = true;
        }
    }

    fn queue_report(
        &self,
        id: &QueueId,
        env: &Envelope,
        entries: Vec<Entry>,
        data: &[u8],
        until: Option<u64>,
    ) -> Result<QueueId, mxa_spool::Error> {
        let config = &self.runner.config;
        let report = Report {
            hostname: &config.hostname,
            queue_id: id.as_str(),
            envelope: env,
            entries,
            languages: &config.queue.bounce_languages,
            now: self.now,
            retry_until: until,
        };
        let kind = match Nature::of(&report.entries) {
            Nature::Failure => "bounce",
            Nature::Delay => "delay-warning",
            Nature::Success => "success-report",
        };
        let msg = bounce::build(&report, data);
        let mut benv = Envelope::new("", [env.sender.clone()]);
        benv.origin = Some(format!("report on {id}"));
        let bid = match self.runner.spool.inject(&benv, &msg) {
            Ok(b) => b,
            Err(e) => {
                mxa_cli::log(
                    PROG,
                    &[
                        ("event", &"error"),
                        ("id", id),
                        ("error", &format!("queuing the {kind}: {e}")),
                    ],
                );
                return Err(e);
            }
        };
        mxa_cli::log(
            PROG,
            &[
                ("event", &kind),
                ("id", id),
                ("report", &bid),
                ("to", &format!("<{}>", env.sender)),
            ],
        );
        Ok(bid)
    }
}

fn leading_status(why: &str) -> Option<String> {
    let word = why.split_whitespace().next()?;
    let mut parts = word.split('.');
    let class = parts.next()?;
    let ok = matches!(class, "2" | "4" | "5")
        && parts.clone().count() == 2
        && parts.all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| word.to_string())
}

fn entry(r: &Recipient, action: Action, why: &str) -> Entry {
    let smtp = why.len() > 3 && why.as_bytes()[..3].iter().all(u8::is_ascii_digit);
    let fallback = if action == Action::Failed {
        "5.0.0"
    } else {
        "4.0.0"
    };
    // A local reason may start with its own enhanced code ("5.1.1 no such
    // user", "4.4.7 gave up"): RFC 3463's x.y.z with x of 2, 4 or 5.
    let status = leading_status(why).unwrap_or_else(|| bounce::status_of(why, fallback));
    let diagnostic = if smtp {
        Diagnostic::Smtp(why.to_string())
    } else if why.is_empty() {
        Diagnostic::None
    } else {
        Diagnostic::Unix(why.to_string())
    };
    let address = r
        .parent
        .clone()
        .filter(|_| r.address.starts_with(['|', '/']))
        .unwrap_or_else(|| r.address.clone());
    Entry {
        address,
        orcpt: r.orcpt.clone(),
        action,
        status,
        diagnostic,
        remote_mta: if smtp { remote_mta(why) } else { None },
    }
}

/// The server a remote reply came from: `remote::convert` ends each with
/// ` (from HOST)`, and a bounce's own words may follow it.
fn remote_mta(reply: &str) -> Option<String> {
    let (_, rest) = reply.rsplit_once(" (from ")?;
    let host = rest.split(')').next()?;
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| host.to_string())
}

/// A delivered recipient in a success report: `Action: delivered` and
/// 2.0.0 (RFC 3464 §2.3.3), or `Action: relayed` with the remote's
/// enhanced code and its reply as `Diagnostic-Code`.
fn success_entry(r: &Recipient) -> Entry {
    let mut mta = None;
    let (action, status, diagnostic) = match r.success {
        Some(Success::Relayed) => {
            let reply = r.last_reply.clone().unwrap_or_default();
            let status = bounce::status_of(&reply, "2.0.0");
            let status = if status.starts_with('2') {
                status
            } else {
                "2.0.0".to_string()
            };
            mta = remote_mta(&reply);
            let diagnostic = match reply.is_empty() {
                true => Diagnostic::None,
                false => Diagnostic::Smtp(reply),
            };
            (Action::Relayed, status, diagnostic)
        }
        _ => (Action::Delivered, "2.0.0".to_string(), Diagnostic::None),
    };
    let address = r
        .parent
        .clone()
        .filter(|_| r.address.starts_with(['|', '/']))
        .unwrap_or_else(|| r.address.clone());
    Entry {
        address,
        orcpt: r.orcpt.clone(),
        action,
        status,
        diagnostic,
        remote_mta: mta,
    }
}

fn log_rcpt(event: &str, id: &QueueId, r: &Recipient, why: &str) {
    let to = format!("<{}>", r.address);
    if why.is_empty() {
        mxa_cli::log(
            PROG,
            &[
                ("event", &event),
                ("id", id),
                ("to", &to),
                ("attempts", &r.attempts),
            ],
        );
    } else {
        mxa_cli::log(
            PROG,
            &[
                ("event", &event),
                ("id", id),
                ("to", &to),
                ("attempts", &r.attempts),
                ("reason", &why),
            ],
        );
    }
}

/// Nothing left to do for the message: every recipient is final and no
/// success report is owed. It is removed.
fn finished(env: &Envelope) -> bool {
    env.is_done() && env.recipients.iter().all(|r| r.success.is_none())
}

#[cfg(test)]
mod tests {
    use super::remote_mta;

    #[test]
    fn the_remote_mta_of_a_reply() {
        assert_eq!(
            remote_mta("550 5.1.1 no such user (from mx.example.net)").as_deref(),
            Some("mx.example.net")
        );
        assert_eq!(
            remote_mta("550 5.1.1 no (from [192.0.2.1]) (bounce 1K0)").as_deref(),
            Some("[192.0.2.1]")
        );
        assert_eq!(remote_mta("5.1.1 no such user here"), None);
    }
}
