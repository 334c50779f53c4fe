//! mxa-queue: inspect and manage the queue. See mxa-queue(8).

mod list;

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mxa_cli::exit;
use mxa_config::Config;
use mxa_runner::{Mode, Runner};
use mxa_spool::{QueueId, Spool, State};

const PROG: &str = "mxa-queue";

/// Longest sleep of `run` between passes, whatever the schedule says
/// (a changed users or aliases file is seen at the next pass).
const IDLE_PASS: Duration = Duration::from_secs(60);

/// How long delete, hold and release wait for a message that a runner is
/// delivering, before they give up with EX_TEMPFAIL.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(
    name = "mxa-queue",
    version,
    about = "Inspect and manage the mxa queue"
)]
struct Cli {
    /// The config file (default: $MXA_CONFIG, else /etc/mxa/mxa.toml).
    #[arg(short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// One line per message (id, age, size, sender), one indented line per recipient.
    List {
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// The envelope and the header of a message.
    Show { id: String },
    /// Remove a message from the queue, without a bounce.
    Delete { id: String },
    /// Set a message aside: its recipients are not tried until released.
    Hold { id: String },
    /// Put a held message back in the queue, to be tried now.
    Release { id: String },
    /// Try every queued recipient now and wait (0: none left, 75: some left).
    Flush {
        /// Only what the back-off schedule says is due.
        #[arg(long)]
        due: bool,
    },
    /// Stay up and deliver as messages arrive.
    Run,
    /// Internal: one domain's remote delivery, for a runner started as root.
    #[command(name = "smtp-out", hide = true)]
    SmtpOut,
}

/// An error and its exit status, printed once by main.
#[derive(Debug)]
struct Failure(i32, String);

impl From<mxa_spool::Error> for Failure {
    fn from(e: mxa_spool::Error) -> Failure {
        use mxa_spool::Error as E;
        let code = match &e {
            E::NotFound(_) => exit::NOINPUT,
            E::Busy(_) => exit::TEMPFAIL,
            E::BadEnvelope { .. } => exit::DATAERR,
            _ if e.is_permission() => exit::NOPERM,
            E::Io { .. } => exit::IOERR,
        };
        Failure(code, e.to_string())
    }
}

fn main() {
    // clap exits 2 on a bad command line; sysexits says 64.
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let code = if e.use_stderr() {
            exit::USAGE
        } else {
            exit::OK
        };
        let _ = e.print();
        std::process::exit(code);
    });
    let code = match run(cli) {
        Ok(code) => code,
        Err(Failure(code, msg)) => {
            if !msg.is_empty() {
                eprintln!("{PROG}: {msg}");
            }
            code
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32, Failure> {
    let config =
        Config::load(cli.config.as_deref()).map_err(|e| Failure(exit::CONFIG, e.to_string()))?;
    let spool = Spool::new(&config.spool);
    let mut out = io::stdout().lock();
    let written = match cli.cmd {
        Cmd::List { json } => list::list(&spool, json, &mut out),
        Cmd::Show { id } => show(&spool, &parse_id(&id)?, &mut out),
        Cmd::Delete { id } => {
            let id = parse_id(&id)?;
            spool.claim_wait(&id, CLAIM_WAIT)?.remove()?;
            mxa_cli::log(PROG, &[("event", &"deleted"), ("id", &id)]);
            Ok(())
        }
        Cmd::Hold { id } => set_held(&spool, &parse_id(&id)?, true),
        Cmd::Release { id } => set_held(&spool, &parse_id(&id)?, false),
        Cmd::Flush { due } => return flush(config, spool, due),
        Cmd::Run => return run_daemon(config, spool),
        Cmd::SmtpOut => {
            // The helper's threads write their answers themselves.
            drop(out);
            let stdout = io::BufWriter::new(io::stdout());
            let r = mxa_runner::smtp_out::serve(&config, io::stdin().lock(), stdout);
            return r
                .map(|()| exit::OK)
                .map_err(|e| Failure(exit::SOFTWARE, e.to_string()));
        }
    };
    written.map(|()| exit::OK)
}

fn parse_id(s: &str) -> Result<QueueId, Failure> {
    QueueId::parse(s).ok_or_else(|| {
        Failure(
            exit::USAGE,
            format!("{s:?} is not a queue id (mxa-queue list shows them)"),
        )
    })
}

/// A write error on stdout. A closed pipe (`mxa-queue list | head`) is not
/// an error: exit 0 quietly, as ripgrep does.
fn io_failure(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure(exit::OK, String::new())
    } else {
        Failure(exit::IOERR, e.to_string())
    }
}

/// The envelope as stored, a blank line, then the message header.
fn show(spool: &Spool, id: &QueueId, out: &mut impl Write) -> Result<(), Failure> {
    let env = spool.envelope(id)?;
    let mut data = Vec::new();
    spool
        .open_data(id)?
        .read_to_end(&mut data)
        .map_err(io_failure)?;
    let end = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(data.len(), |i| i + 1);
    writeln!(out, "id {id}").map_err(io_failure)?;
    out.write_all(env.to_text().as_bytes())
        .map_err(io_failure)?;
    writeln!(out).map_err(io_failure)?;
    out.write_all(&data[..end]).map_err(io_failure)
}

fn set_held(spool: &Spool, id: &QueueId, hold: bool) -> Result<(), Failure> {
    let mut claim = spool.claim_wait(id, CLAIM_WAIT)?;
    let mut env = claim.envelope().clone();
    let mut changed = 0;
    for r in env.recipients.iter_mut().filter(|r| !r.state.is_final()) {
        let new = if hold {
            State::Held
        } else if r.state == State::Held {
            State::Pending
        } else {
            continue;
        };
        if r.state != new {
            r.state = new;
            r.next_try = None;
            changed += 1;
        }
    }
    claim.update(env)?;
    let event = if hold { "held" } else { "released" };
    mxa_cli::log(
        PROG,
        &[("event", &event), ("id", id), ("recipients", &changed)],
    );
    Ok(())
}

/// One pass, then exit: 0 when nothing is left waiting, 75 when something
/// is (DESIGN.md). Messages another runner holds count as waiting.
fn flush(config: Config, spool: Spool, due: bool) -> Result<i32, Failure> {
    let runner = Runner {
        workers: config.queue.max_connections,
        spool,
        config,
    };
    let mode = if due { Mode::Due } else { Mode::All };
    let sum = runner.pass(mode).map_err(|e| Failure(exit::TEMPFAIL, e))?;
    mxa_cli::log(
        PROG,
        &[
            ("event", &"flushed"),
            ("delivered", &sum.delivered),
            ("deferred", &sum.deferred),
            ("failed", &sum.failed),
            ("waiting", &(sum.waiting + sum.busy)),
        ],
    );
    Ok(if sum.waiting + sum.busy == 0 {
        exit::OK
    } else {
        exit::TEMPFAIL
    })
}

/// Stays up: a pass when something is queued (the spool's inotify wake-up)
/// or falls due, at least every [`IDLE_PASS`]; SIGTERM or SIGINT ends it
/// after the delivery in progress.
fn run_daemon(config: Config, spool: Spool) -> Result<i32, Failure> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| Failure(exit::SOFTWARE, e.to_string()))?;
    }
    let waiter = spool.waiter()?;
    let runner = Runner {
        workers: config.queue.max_connections,
        spool,
        config,
    };
    mxa_cli::log(
        PROG,
        &[
            ("event", &"started"),
            ("spool", &runner.spool.root().display()),
        ],
    );
    while !stop.load(Ordering::Relaxed) {
        let wait = match runner.pass(Mode::Due) {
            Ok(sum) => {
                let now = mxa_spool::now();
                let until = sum
                    .next_due
                    .map_or(IDLE_PASS.as_secs(), |t| t.saturating_sub(now));
                Duration::from_secs(until.clamp(1, IDLE_PASS.as_secs()))
            }
            Err(e) => {
                mxa_cli::log(PROG, &[("event", &"error"), ("error", &e)]);
                IDLE_PASS
            }
        };
        waiter.wait(wait);
    }
    mxa_cli::log(PROG, &[("event", &"stopped")]);
    Ok(exit::OK)
}
