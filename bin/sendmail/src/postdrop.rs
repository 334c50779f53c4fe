//! mxa-postdrop: the setgid helper through which mxa-sendmail, run by a user
//! who may not write the spool, queues a message. See mxa-postdrop(8).
//!
//! Installed setgid to the spool's group (never setuid). It trusts nothing
//! from its caller: it reads the hand-over from stdin and checks it again,
//! writes the `Received:` line with the caller's real uid itself, and, while
//! privileged, ignores `MXA_CONFIG` and reads only a config file owned by
//! root and writable by no one else.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mxa_config::{Config, DEFAULT_FILE};
use mxa_sendmail::{Failure, exit, handoff, inject};
use mxa_spool::Spool;
use nix::sys::stat::{Mode, umask};
use nix::unistd::{getegid, geteuid, getgid, getuid};

const PROG: &str = "mxa-postdrop";

fn main() {
    match run(&mxa_cli::args()) {
        Ok(id) => println!("{id}"),
        Err(f) => {
            eprintln!("{PROG}: {}", f.msg);
            std::process::exit(f.code);
        }
    }
}

fn run(words: &[String]) -> Result<String, Failure> {
    // Files for the spool's group to read, nothing for others, whatever
    // umask the caller had.
    umask(Mode::from_bits_truncate(0o027));
    let privileged = getegid() != getgid() || geteuid() != getuid();
    let file = match words {
        [] => None,
        [c, f] if c == "-c" => Some(PathBuf::from(f)),
        _ => {
            return Err(Failure::new(
                exit::USAGE,
                "usage: mxa-postdrop [-c FILE] < hand-over",
            ));
        }
    };
    let config = match (file, privileged) {
        (Some(f), true) => trusted(&f)?,
        (Some(f), false) => Config::from_file(&f)?,
        (None, true) if Path::new(DEFAULT_FILE).exists() => trusted(Path::new(DEFAULT_FILE))?,
        (None, true) => Config::default(),
        (None, false) => Config::load(None)?,
    };
    let (mut env, msg) = handoff::decode(
        &mut std::io::stdin().lock(),
        &config.hostname,
        config.smtpd.max_message_size,
    )?;
    let spool = Spool::new(&config.spool);
    let id = inject::inject_local(&spool, &config.hostname, getuid().as_raw(), &mut env, &msg)?;
    Ok(id.to_string())
}

/// A setgid program must not let its caller choose where it writes: a config
/// is trusted only when root owns it and no one else may change it. The
/// file is opened once, and the checks and the read are made on that open
/// file, so it cannot be swapped between them.
fn trusted(f: &Path) -> Result<Config, Failure> {
    let cant = |e: std::io::Error| Failure::new(exit::CONFIG, format!("{}: {e}", f.display()));
    let mut file = std::fs::File::open(f).map_err(cant)?;
    let m = file.metadata().map_err(cant)?;
    if m.uid() != 0 || m.mode() & 0o022 != 0 {
        return Err(Failure::new(
            exit::NOPERM,
            format!(
                "{}: not owned by root or writable by others; a setgid program does not trust it",
                f.display()
            ),
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(cant)?;
    Ok(Config::from_str(&text, f)?)
}
