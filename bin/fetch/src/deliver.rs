//! Handing a fetched message on: to the MDA command (run as mxa-queue runs
//! `[queue] mda`, through mxa-runner), into a Maildir (through
//! mxa-maildir, as mxa-deliver writes), or into mxa's spool. Every message
//! gets a `Received:` line first, naming the server, the protocol and TLS.

use std::net::SocketAddr;
use std::path::PathBuf;

use mxa_config::{Config, FetchTarget};
use mxa_durable::Durable;
use mxa_maildir::Maildir;
use mxa_runner::mda::{self, Outcome, Parts};
use mxa_spool::{Envelope, Spool};

use crate::error::Error;

/// Where messages go, ready to take them.
#[derive(Debug)]
pub struct Deliverer {
    how: How,
    login: String,
}

#[derive(Debug)]
enum How {
    /// The MDA, with `[queue] mda` set to the command.
    Mda {
        config: Box<Config>,
        parts: Parts,
    },
    Maildir(Maildir),
    Queue {
        spool: Spool,
        to: String,
    },
}

impl Deliverer {
    /// Checks `target` and makes what it needs (a Maildir's folders).
    /// `login` is the account's login: the MDA's `{recipient}`.
    pub fn new(target: &FetchTarget, config: &Config, login: &str) -> Result<Deliverer, Error> {
        let how = match target {
            FetchTarget::Mda(cmd) => {
                let words =
                    mxa_cli::split_words(cmd).map_err(|e| Error::Config(format!("mda: {e}")))?;
                if words.is_empty() {
                    return Err(Error::Config("mda: the command is empty".into()));
                }
                let users = config
                    .load_users()
                    .map_err(|e| Error::Config(e.to_string()))?;
                let mut c = config.clone();
                c.queue.mda = cmd.clone();
                let parts = Parts::new(login, &c, &users);
                How::Mda {
                    config: Box::new(c),
                    parts,
                }
            }
            FetchTarget::Maildir(dir) => {
                let md = Maildir::new(dir.clone());
                md.create()
                    .map_err(|e| Error::CantCreate(format!("maildir {}: {e}", dir.display())))?;
                How::Maildir(md)
            }
            FetchTarget::QueueTo(to) => How::Queue {
                spool: Spool::new(config.spool.clone()),
                to: to.clone(),
            },
        };
        Ok(Deliverer {
            how,
            login: login.to_string(),
        })
    }

    /// Delivers `msg` (LF line ends) with `received` (one header field, LF)
    /// put before it.
    pub fn deliver(&self, received: &[u8], msg: &[u8]) -> Outcome {
        match &self.how {
            How::Mda { config, parts } => {
                let sender = return_path(msg);
                let msg = rename_delivered_to(msg, &self.login);
                let mut data = Vec::with_capacity(received.len() + msg.len());
                data.extend_from_slice(received);
                data.extend_from_slice(&msg);
                mda::deliver(config, parts, &sender, None, &data)
            }
            How::Maildir(md) => match md.deliver_parts(&[received, msg], &Durable::default()) {
                Ok(_) => Outcome::Delivered,
                Err(e) if e.is_temporary() => Outcome::Deferred(e.to_string()),
                Err(e) => Outcome::Failed(e.to_string()),
            },
            How::Queue { spool, to } => {
                let mut data = Vec::with_capacity(received.len() + msg.len());
                data.extend_from_slice(received);
                data.extend_from_slice(msg);
                let env = Envelope::new(return_path(msg), [to.clone()]);
                match spool.inject(&env, &data) {
                    Ok(_) => Outcome::Delivered,
                    Err(e) if e.is_temporary() => Outcome::Deferred(e.to_string()),
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
        }
    }

    /// Whether messages are written in this process (a Maildir, the spool)
    /// rather than by an MDA.
    pub fn is_in_process(&self) -> bool {
        !matches!(self.how, How::Mda { .. })
    }

    /// The login, for logs.
    pub fn login(&self) -> &str {
        &self.login
    }
}

/// Where a message came from, for its `Received:` line.
#[derive(Debug, Clone)]
pub struct Source {
    /// The server's name as configured.
    pub host: String,
    /// Its address.
    pub peer: SocketAddr,
    /// `POP3` or `IMAP`.
    pub protocol: &'static str,
    /// TLS version and cipher, if any.
    pub tls: Option<String>,
    /// Whether TLS came with STLS/STARTTLS rather than on connect.
    pub starttls: bool,
    /// The login.
    pub login: String,
}

impl Source {
    /// The `Received:` field (RFC 5321 §4.4 form, folded, LF line ends).
    pub fn received(&self, by: &str) -> Vec<u8> {
        let tls = match &self.tls {
            Some(t) if self.starttls => format!("{t}, STARTTLS"),
            Some(t) => format!("{t}, implicit TLS"),
            None => "no TLS".to_string(),
        };
        let date = mxa_message::rfc5322_date(mxa_spool::now());
        format!(
            "Received: from {} ([{}])\n\tby {by} (mxa-fetch) with {}\n\t({tls})\n\tfor <{}>; {date}\n",
            self.host,
            self.peer.ip(),
            self.protocol,
            self.login
        )
        .into_bytes()
    }
}

/// The message with each `Delivered-To:` field of the header that names
/// `login` renamed `X-Original-Delivered-To:`. The provider's own trace
/// (Gmail and Postfix write it) would otherwise look like a mail loop to
/// an MDA run for that same address (mxa-deliver, Postfix's local(8) and
/// dovecot-lda all refuse such a message), as fetchmail's `dropdelivered`
/// knows; the line is kept under another name rather than dropped.
pub fn rename_delivered_to<'a>(msg: &'a [u8], login: &str) -> std::borrow::Cow<'a, [u8]> {
    const NAME: &[u8] = b"delivered-to:";
    let mut hits = Vec::new();
    let mut pos = 0;
    for line in msg.split(|&b| b == b'\n') {
        if line.is_empty() || line == b"\r" {
            break;
        }
        if line.len() > NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME) {
            let v = String::from_utf8_lossy(&line[NAME.len()..]);
            let v = v.trim().trim_start_matches('<').trim_end_matches('>');
            if v.eq_ignore_ascii_case(login) {
                hits.push(pos);
            }
        }
        pos += line.len() + 1;
    }
    if hits.is_empty() {
        return std::borrow::Cow::Borrowed(msg);
    }
    let mut out = Vec::with_capacity(msg.len() + hits.len() * 11);
    let mut from = 0;
    for h in hits {
        out.extend_from_slice(&msg[from..h]);
        out.extend_from_slice(b"X-Original-");
        from = h;
    }
    out.extend_from_slice(&msg[from..]);
    std::borrow::Cow::Owned(out)
}

/// The address of the first `Return-Path:` field in the header, without
/// angle brackets; empty (the null sender) when there is none.
pub fn return_path(msg: &[u8]) -> String {
    for line in msg.split(|&b| b == b'\n') {
        if line.is_empty() || line == b"\r" {
            break;
        }
        if line.len() > 12 && line[..12].eq_ignore_ascii_case(b"return-path:") {
            let v = String::from_utf8_lossy(&line[12..]);
            let v = v.trim();
            let v = v.strip_prefix('<').unwrap_or(v);
            let v = v.split('>').next().unwrap_or("");
            return v.trim().to_string();
        }
    }
    String::new()
}

/// The folder of state files: `<spool>/fetch/` with a config file, else
/// `$XDG_STATE_HOME/mxa/fetch/` (default `~/.local/state/mxa/fetch/`).
pub fn state_dir(config: &Config) -> Result<PathBuf, Error> {
    if config.file.is_some() {
        return Ok(config.spool.join("fetch"));
    }
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".local/state"),
            None => {
                return Err(Error::Config(
                    "neither a config file, nor XDG_STATE_HOME, nor HOME: nowhere to keep state"
                        .into(),
                ));
            }
        },
    };
    Ok(base.join("mxa").join("fetch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_path_of_the_header_only() {
        assert_eq!(
            return_path(b"Return-Path: <a@b.example>\nSubject: x\n\nReturn-Path: <c@d>\n"),
            "a@b.example"
        );
        assert_eq!(return_path(b"return-path:<>\n\n"), "");
        assert_eq!(return_path(b"Subject: x\n\nReturn-Path: <c@d>\n"), "");
    }

    #[test]
    fn the_providers_delivered_to_is_renamed_for_the_mda() {
        let msg = b"Delivered-To: Me@Example.net\nReceived: x\nDelivered-To: <other@example.net>\ndelivered-to: <me@example.net>\nSubject: s\n\nDelivered-To: me@example.net\n";
        let out = super::rename_delivered_to(msg, "me@example.net");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "X-Original-Delivered-To: Me@Example.net\nReceived: x\nDelivered-To: <other@example.net>\nX-Original-delivered-to: <me@example.net>\nSubject: s\n\nDelivered-To: me@example.net\n"
        );
        let plain = b"Subject: s\n\nbody\n";
        assert!(matches!(
            super::rename_delivered_to(plain, "me@example.net"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn received_names_server_protocol_and_tls() {
        let s = Source {
            host: "pop.example.net".into(),
            peer: "192.0.2.1:995".parse().expect("addr"),
            protocol: "POP3",
            tls: Some("TLSv1.3 TLS13_AES_256_GCM_SHA384".into()),
            starttls: false,
            login: "me@example.net".into(),
        };
        let r = String::from_utf8(s.received("mx.example.org")).expect("utf8");
        assert!(r.starts_with("Received: from pop.example.net ([192.0.2.1])\n\tby mx.example.org (mxa-fetch) with POP3\n\t(TLSv1.3 TLS13_AES_256_GCM_SHA384, implicit TLS)\n\tfor <me@example.net>; "), "{r}");
        assert!(r.ends_with(" +0000\n"));
    }
}
