//! `mxa up`: creates the local system if needed, then runs every daemon its
//! config enables, in the foreground, their log lines prefixed with the
//! daemon's name, until SIGINT or SIGTERM, which it passes on and waits for.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mxa_cli::exit;
use mxa_config::Config;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use crate::init;

/// How long daemons get to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A daemon `mxa up` can run, and when the config enables it. Programs join
/// this table as their issues land.
struct Daemon {
    name: &'static str,
    program: &'static str,
    args: &'static [&'static str],
    enabled: fn(&Config) -> bool,
}

const DAEMONS: &[Daemon] = &[
    Daemon {
        name: "queue",
        program: "mxa-queue",
        args: &["run"],
        enabled: |_| true,
    },
    Daemon {
        name: "smtpd",
        program: "mxa-smtpd",
        args: &[],
        enabled: |c| {
            !(c.smtpd.listen.is_empty()
                && c.smtpd.submission.is_empty()
                && c.smtpd.submissions.is_empty())
        },
    },
    Daemon {
        name: "pop3d",
        program: "mxa-pop3d",
        args: &[],
        enabled: |c| !(c.pop3d.listen.is_empty() && c.pop3d.pop3s.is_empty()),
    },
];

/// Runs `mxa up DIR`; returns the exit status.
pub fn up(dir: PathBuf) -> i32 {
    let file = dir.join("mxa.toml");
    if !file.exists() {
        match init::create(&dir) {
            Ok(password) => announce_new(&dir, &password),
            Err(e) => {
                eprintln!("mxa: creating a system in {}: {e}", dir.display());
                return exit::CANTCREAT;
            }
        }
    }
    let file = std::path::absolute(&file).unwrap_or(file);
    let config = match Config::from_file(&file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mxa: {e}");
            return exit::CONFIG;
        }
    };
    print_services(&config);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mxa: {e}");
            return exit::SOFTWARE;
        }
    };
    rt.block_on(supervise(&config, &file))
}

fn announce_new(dir: &Path, password: &str) {
    println!("mxa: created a complete mail system in {}", dir.display());
    println!("  config      {}", dir.join("mxa.toml").display());
    println!("  address     {}", init::ADDRESS);
    println!("  password: {password}");
    println!("  (shown once; the users file keeps only its hash)");
}

fn print_services(c: &Config) {
    let groups = [
        ("smtp", &c.smtpd.listen),
        ("submission", &c.smtpd.submission),
        ("submissions", &c.smtpd.submissions),
        ("pop3", &c.pop3d.listen),
        ("pop3s", &c.pop3d.pop3s),
    ];
    for (name, addrs) in groups {
        for a in addrs {
            println!("  {name:<11} {a}");
        }
    }
}

async fn supervise(config: &Config, file: &Path) -> i32 {
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        _ => {
            eprintln!("mxa: cannot install signal handlers");
            return exit::SOFTWARE;
        }
    };
    let mut children: Vec<(&'static str, Child)> = Vec::new();
    let mut forwarders = Vec::new();
    for d in DAEMONS.iter().filter(|d| (d.enabled)(config)) {
        let Some(path) = mxa_cli::find_program(d.program) else {
            println!("mxa: {} is not installed; {} skipped", d.program, d.name);
            continue;
        };
        // The children stay in our process group, so a terminal's ^C reaches
        // them too; we forward SIGTERM for kill(1) and service managers.
        let spawned = Command::new(path)
            .arg("-c")
            .arg(file)
            .args(d.args)
            .env("MXA_CONFIG", file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            Ok(mut child) => {
                forwarders.extend(forward(d.name, child.stdout.take(), false));
                forwarders.extend(forward(d.name, child.stderr.take(), true));
                println!("mxa: started {} (pid {})", d.name, child.id().unwrap_or(0));
                children.push((d.name, child));
            }
            Err(e) => {
                eprintln!("mxa: starting {}: {e}", d.program);
                stop(&mut children).await;
                return exit::UNAVAILABLE;
            }
        }
    }
    if children.is_empty() {
        println!(
            "mxa: no daemon to run yet; waiting for ^C (mxa-sendmail and mxa-queue work on this system now)"
        );
    }
    let code = tokio::select! {
        _ = int.recv() => 130,
        _ = term.recv() => 143,
        (name, status) = first_exit(&mut children) => {
            let success = status.as_ref().is_ok_and(|s| s.success());
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            eprintln!("mxa: {name} stopped ({status}); stopping the others");
            if success { exit::OK } else { 1 }
        }
    };
    stop(&mut children).await;
    // Print the last lines the daemons wrote while stopping. A grandchild
    // still holding a pipe open must not keep us up: bounded wait.
    for f in forwarders {
        let _ = tokio::time::timeout(Duration::from_secs(1), f).await;
    }
    code
}

/// Copies a child's stdout or stderr to ours, one line at a time, prefixed
/// with its name. A closed output of ours is not a reason to stop anything.
fn forward(
    name: &'static str,
    out: Option<impl AsyncRead + Unpin + Send + 'static>,
    to_stderr: bool,
) -> Option<tokio::task::JoinHandle<()>> {
    use std::io::Write;
    let out = out?;
    Some(tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = if to_stderr {
                writeln!(std::io::stderr().lock(), "{name:<6}| {line}")
            } else {
                writeln!(std::io::stdout().lock(), "{name:<6}| {line}")
            };
        }
    }))
}

async fn first_exit(
    children: &mut [(&'static str, Child)],
) -> (&'static str, std::io::Result<std::process::ExitStatus>) {
    if children.is_empty() {
        return std::future::pending().await;
    }
    let waits = children
        .iter_mut()
        .map(|(name, c)| Box::pin(async move { (*name, c.wait().await) }));
    futures_select_all(waits.collect()).await
}

/// The first of several futures to finish.
async fn futures_select_all<F: std::future::Future + Unpin>(mut futs: Vec<F>) -> F::Output {
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// SIGTERM to every child still running, then wait; SIGKILL after the grace.
async fn stop(children: &mut [(&'static str, Child)]) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for (_, c) in children.iter() {
        if let Some(pid) = c.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for (name, c) in children.iter_mut() {
        match tokio::time::timeout(STOP_GRACE, c.wait()).await {
            Ok(_) => println!("mxa: {name} stopped"),
            Err(_) => {
                eprintln!(
                    "mxa: {name} did not stop in {}s; killing it",
                    STOP_GRACE.as_secs()
                );
                let _ = c.kill().await;
            }
        }
    }
}
