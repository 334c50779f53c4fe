//! Alias targets that are not addresses: `|command` and `/file`
//! (aliases(5)), delivered by the runner as the runner's user, with
//! `Return-Path:` and a `Delivered-To:` naming the alias, so that a
//! message that comes back through it is recognised as a loop downstream.

use std::process::Command;
use std::time::Duration;

use mxa_config::Config;
use mxa_durable::Durable;
use mxa_maildir::Maildir;
use mxa_message::{Field, Parsed};

use crate::mda::{self, Outcome};

/// How long an mbox lock is waited for.
const LOCK_WAIT: Duration = Duration::from_secs(30);

fn traced(data: &[u8], sender: &str, alias: &str) -> Vec<u8> {
    let mut m = Parsed::parse(data);
    m.remove("Return-Path");
    m.fields.insert(0, Field::new("Delivered-To", alias));
    m.fields
        .insert(0, Field::new("Return-Path", &format!("<{sender}>")));
    m.to_bytes()
}

/// `|command`, through `sh -c` as sendmail and Postfix run alias commands.
pub fn command(config: &Config, cmd: &str, sender: &str, alias: &str, data: &[u8]) -> Outcome {
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(cmd)
        .env("SENDER", sender)
        .env("RECIPIENT", alias);
    mda::run(
        &mut c,
        &traced(data, sender, alias),
        config.deliver.command_timeout,
    )
}

/// `/path/` (a Maildir) or `/path` (an mbox).
pub fn file(path: &str, sender: &str, alias: &str, data: &[u8]) -> Outcome {
    let msg = traced(data, sender, alias);
    let r = if path.ends_with('/') {
        let m = Maildir::new(path);
        m.create()
            .and_then(|()| m.deliver(&msg, &Durable::default()))
            .map(|_| ())
    } else {
        mxa_maildir::mbox::append(
            std::path::Path::new(path),
            sender,
            mxa_spool::now(),
            &msg,
            LOCK_WAIT,
        )
    };
    match r {
        Ok(()) => Outcome::Delivered,
        Err(e) if e.is_temporary() || e.is_permission() => {
            Outcome::Deferred(format!("{path}: {e}"))
        }
        Err(e) => Outcome::Failed(format!("{path}: {e}")),
    }
}
