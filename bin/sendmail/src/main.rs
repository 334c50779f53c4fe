//! mxa-sendmail: sendmail(8) for scripts, cron and mail clients. See
//! mxa-sendmail(8). Thin: flags, config, then the library.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use mxa_config::Config;
use mxa_message::Parsed;
use mxa_sendmail::args::{self, Args, Mode};
use mxa_sendmail::message::{self, Completion, check_address};
use mxa_sendmail::{Failure, exit, handoff, inject};
use mxa_spool::{Envelope, Spool};
use nix::unistd::{User, getuid};

const PROG: &str = "mxa-sendmail";

fn main() {
    match run(&mxa_cli::args()) {
        Ok(()) => std::process::exit(exit::OK),
        Err(f) => {
            eprintln!("{PROG}: {}", f.msg);
            std::process::exit(f.code);
        }
    }
}

fn run(words: &[String]) -> Result<(), Failure> {
    let args = args::parse(words).map_err(|m| Failure::new(exit::USAGE, m))?;
    let config = Config::load(args.config.as_deref().map(Path::new))?;
    match args.mode {
        Mode::List => exec_program(&config, "mxa-queue", &["list"]),
        Mode::Flush => exec_program(&config, "mxa-queue", &["flush"]),
        // A local SMTP session: mxa-smtpd on stdin/stdout, with no client
        // address, so the caller is local and trusted (as sendmail -bs).
        Mode::Smtp => exec_program(&config, "mxa-smtpd", &["--stdio"]),
        Mode::NewAliases => {
            // mxa-queue reads the aliases file itself: there is no database.
            Ok(())
        }
        Mode::Deliver => submit(&args, &config),
    }
}

/// `-bp` and `-q` are mxa-queue's `list` and `flush`; `-bs` is
/// `mxa-smtpd --stdio`, told of no remote client.
fn exec_program(config: &Config, name: &str, cmd: &[&str]) -> Result<(), Failure> {
    let prog = mxa_cli::find_program(name)
        .ok_or_else(|| Failure::new(exit::UNAVAILABLE, format!("{name} not found")))?;
    let mut c = Command::new(prog);
    if let Some(f) = &config.file {
        c.arg("-c").arg(f);
    }
    let err = c
        .args(cmd)
        .env_remove("TCPREMOTEIP")
        .env_remove("REMOTE_ADDR")
        .exec();
    Err(Failure::new(
        exit::UNAVAILABLE,
        format!("running {name}: {err}"),
    ))
}

fn submit(args: &Args, config: &Config) -> Result<(), Failure> {
    let host = config.hostname.as_str();
    let uid = getuid();
    let pw = User::from_uid(uid).ok().flatten();
    let login = pw
        .as_ref()
        .map_or_else(|| format!("uid{uid}"), |u| u.name.clone());
    let sender = match args.sender.as_deref() {
        Some("" | "<>") => String::new(),
        Some(s) => check_address(s, host).map_err(|m| Failure::new(exit::USAGE, m))?,
        None => format!("{login}@{host}"),
    };
    let raw = message::read_message(
        &mut std::io::stdin().lock(),
        args.ignore_dots,
        config.smtpd.max_message_size,
    )?;
    let mut msg = Parsed::parse(&raw);
    let mut rcpts: Vec<String> = Vec::new();
    let from_header = if args.extract {
        message::header_recipients(&msg)
    } else {
        Vec::new()
    };
    for r in args.recipients.iter().chain(&from_header) {
        let a = check_address(r, host).map_err(|m| Failure::new(exit::USAGE, m))?;
        if !rcpts.contains(&a) {
            rcpts.push(a);
        }
    }
    if rcpts.is_empty() {
        return Err(Failure::new(
            exit::USAGE,
            "no recipients: give addresses, or -t with To:, Cc: or Bcc: in the message",
        ));
    }
    let gecos = pw.as_ref().and_then(|u| {
        u.gecos
            .to_str()
            .ok()
            .map(|g| g.split(',').next().unwrap_or("").to_string())
    });
    let from_addr = if sender.is_empty() {
        format!("{login}@{host}")
    } else {
        sender.clone()
    };
    let completion = Completion {
        sender: &from_addr,
        full_name: args.full_name.as_deref().or(gecos.as_deref()),
        hostname: host,
        now: mxa_spool::now(),
    };
    message::complete(&mut msg, &completion);
    let data = msg.to_bytes();
    let mut env = Envelope::new(sender, rcpts);
    env.ret = args.ret.as_ref().map(|r| r.to_ascii_lowercase());
    env.envid = args.envid.clone();
    env.body = args.body.as_ref().map(|b| b.to_ascii_lowercase());
    env.smtputf8 = !env.sender.is_ascii() || env.recipients.iter().any(|r| !r.address.is_ascii());
    for r in &mut env.recipients {
        r.notify = args.notify.as_ref().map(|n| n.to_ascii_lowercase());
    }
    message::check_dsn(&env).map_err(|m| Failure::new(exit::USAGE, m))?;
    let spool = Spool::new(&config.spool);
    let id = match inject::inject_local(&spool, host, uid.as_raw(), &mut env, &data) {
        Ok(id) => id.to_string(),
        // The spool is not ours to write: hand over to the setgid helper.
        Err(f) if f.code == exit::CANTCREAT => postdrop(config, &env, &data)?,
        Err(f) => return Err(f),
    };
    if args.verbose {
        let n = env.recipients.len();
        mxa_cli::log(
            PROG,
            &[
                ("event", &"queued"),
                ("id", &id),
                ("from", &format!("<{}>", env.sender)),
                ("nrcpt", &n),
                ("size", &data.len()),
            ],
        );
    }
    Ok(())
}

/// Runs mxa-postdrop, writes the hand-over to it, and returns the queue id
/// it printed.
fn postdrop(config: &Config, env: &Envelope, data: &[u8]) -> Result<String, Failure> {
    let prog = mxa_cli::find_program("mxa-postdrop").ok_or_else(|| {
        Failure::new(
            exit::CANTCREAT,
            format!(
                "cannot write the spool {} and mxa-postdrop is not installed",
                config.spool.display()
            ),
        )
    })?;
    let mut c = Command::new(prog);
    if let Some(f) = &config.file {
        c.arg("-c").arg(f);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(exit::UNAVAILABLE, format!("running mxa-postdrop: {e}")))?;
    let wire = handoff::encode(env, data);
    // A write error means the helper stopped reading; its exit status says why.
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(&wire);
    }
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    let status = child
        .wait()
        .map_err(|e| Failure::new(exit::SOFTWARE, format!("waiting for mxa-postdrop: {e}")))?;
    match status.code() {
        Some(0) => Ok(out.trim().to_string()),
        // mxa-postdrop printed its own reason on stderr.
        Some(code) => Err(Failure::new(
            code,
            "mxa-postdrop refused the message; nothing was queued",
        )),
        None => Err(Failure::new(
            exit::TEMPFAIL,
            format!("mxa-postdrop died ({status}); nothing was queued"),
        )),
    }
}
