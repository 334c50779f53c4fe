//! Who may send what where: RCPT verdicts (local users, aliases and
//! catch-alls, postmaster, relay by trusted network or AUTH) and the
//! `Received:` line.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use mxa_config::Config;
use mxa_daemon::auth::Accounts;
use mxa_runner::aliases::Aliases;
use mxa_smtp::server::{Envelope, Verdict};

/// The aliases file, read again when it changes; a file that became wrong
/// keeps the last good version.
#[derive(Debug)]
pub struct AliasFile {
    path: Option<PathBuf>,
    state: Mutex<(Option<SystemTime>, Option<Aliases>)>,
}

impl AliasFile {
    /// The aliases of `config` (none without the key). A wrong file is an
    /// error at start, like every config error.
    pub fn new(config: &Config) -> Result<AliasFile, String> {
        let file = AliasFile {
            path: config.aliases.clone(),
            state: Mutex::new((None, None)),
        };
        if let Some(p) = &file.path
            && p.exists()
        {
            let a = Aliases::load(p).map_err(|e| e.to_string())?;
            *file.state.lock().unwrap_or_else(PoisonError::into_inner) = (modified(p), Some(a));
        }
        Ok(file)
    }

    fn knows(&self, address: &str, domains: &[String], delimiters: &str) -> bool {
        let Some(path) = &self.path else { return false };
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = modified(path);
        if now != st.0 {
            st.0 = now;
            match Aliases::load(path) {
                Ok(a) => st.1 = Some(a),
                // The file is gone: no aliases any more.
                Err(_) if now.is_none() => st.1 = None,
                Err(e) => {
                    eprintln!("mxa-smtpd: aliases not reloaded, keeping the last good ones: {e}")
                }
            }
        }
        st.1.as_ref()
            .is_some_and(|a| a.knows_with(address, domains, delimiters))
    }
}

impl AliasFile {
    /// Whether `address`'s own alias (not a catch-all) reaches `login`,
    /// directly or through other aliases.
    fn reaches(&self, address: &str, domains: &[String], delimiters: &str, login: &str) -> bool {
        // Reloads the file when it changed; false without an alias.
        if !self.knows(address, domains, delimiters) {
            return false;
        }
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(a) = st.1.as_ref() else {
            return false;
        };
        if a.is_catch_all(address, domains) {
            return false;
        }
        matches!(
            a.expand_with(address, domains, delimiters),
            Ok(Some(targets)) if targets.iter().any(|t| matches!(
                t,
                mxa_runner::aliases::Target::Address(x) if x.eq_ignore_ascii_case(login)
            ))
        )
    }
}

/// Whether the user logged in as `login` may send as `sender` (Postfix's
/// reject_sender_login_mismatch): the login itself, the login with an
/// extension (`user+tag@domain`, with `[deliver] recipient_delimiter`), or
/// an address of a local domain whose alias (not a catch-all) reaches the
/// login. Compared case-insensitively, as the users file's logins are.
pub fn owns(config: &Config, aliases: &AliasFile, login: &str, sender: &str) -> bool {
    if sender.eq_ignore_ascii_case(login) {
        return true;
    }
    let Some((local, domain)) = sender.rsplit_once('@') else {
        return false;
    };
    let delimiters = config.deliver.recipient_delimiter.as_str();
    if let Some(i) = local.find(|c| !delimiters.is_empty() && delimiters.contains(c))
        && i > 0
        && format!("{}@{domain}", &local[..i]).eq_ignore_ascii_case(login)
    {
        return true;
    }
    config.is_local_domain(domain) && aliases.reaches(sender, &config.domains, delimiters, login)
}

fn modified(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The verdict on recipient `address` for a client that is `trusted`
/// (in `trusted_networks`, or local under `--stdio`) or `authenticated`.
pub fn recipient(
    config: &Config,
    accounts: &Accounts,
    aliases: &AliasFile,
    address: &str,
    trusted: bool,
    authenticated: bool,
) -> Verdict {
    let Some((local, domain)) = address.rsplit_once('@') else {
        // RFC 5321 §4.5.1: "postmaster" alone is the only bare local part.
        return if address.eq_ignore_ascii_case("postmaster") {
            Verdict::Local
        } else {
            Verdict::Unknown
        };
    };
    if !config.is_local_domain(domain) {
        return if trusted || authenticated {
            Verdict::RelayAllowed
        } else {
            Verdict::RelayDenied
        };
    }
    let delimiters = config.deliver.recipient_delimiter.as_str();
    let base = local
        .find(|c| !delimiters.is_empty() && delimiters.contains(c))
        .map_or(local, |i| &local[..i]);
    if base.eq_ignore_ascii_case("postmaster") {
        return Verdict::Local;
    }
    let user = accounts
        .with_users(|u| u.find(address).is_some() || u.find(&format!("{base}@{domain}")).is_some());
    if user || aliases.knows(address, &config.domains, delimiters) {
        Verdict::Local
    } else {
        Verdict::Unknown
    }
}

/// The `with` keyword of `Received:` (RFC 5321 §4.4, RFC 3848, RFC 6531).
pub fn protocol(env: &Envelope) -> String {
    let mut p = String::from(match (env.smtputf8, env.esmtp) {
        (true, _) => "UTF8SMTP",
        (false, true) => "ESMTP",
        (false, false) => "SMTP",
    });
    if env.tls.is_some() {
        p.push('S');
    }
    if env.auth_user.is_some() {
        p.push('A');
    }
    p
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
pub fn literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("[{v4}]"),
            None => format!("[IPv6:{v6}]"),
        },
        IpAddr::V4(v4) => format!("[{v4}]"),
    }
}

/// Printable ASCII only, for text a client chose (its HELO name).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .take(255)
        .collect()
}

/// The `Received:` line (LF-ended, folded) for a message received now.
/// `client` is the name the client's address resolves to (or "unknown"),
/// `peer` its address (none for a local `--stdio` session).
pub fn received(
    hostname: &str,
    env: &Envelope,
    client: &str,
    peer: Option<IpAddr>,
    id: &str,
    now: u64,
) -> String {
    let from = match peer {
        Some(ip) => format!(
            "from {} ({} {})",
            clean(&env.helo),
            clean(client),
            literal(ip)
        ),
        None => format!("from {} (local)", clean(&env.helo)),
    };
    let mut s = format!(
        "Received: {from}\n\tby {hostname} (mxa) with {} id {id}",
        protocol(env)
    );
    if let Some(t) = &env.tls {
        s.push_str(&format!(
            "\n\t(using {} with cipher {})",
            t.version, t.cipher
        ));
    }
    if let [one] = env.recipients.as_slice() {
        s.push_str(&format!("\n\tfor <{}>", one.address));
    }
    s.push_str(&format!("; {}\n", mxa_message::rfc5322_date(now)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxa_config::Users;
    use mxa_smtp::server::{Recipient, TlsInfo};
    use std::path::Path;

    fn config(aliases: Option<PathBuf>) -> Config {
        Config {
            domains: vec!["example.org".into()],
            aliases,
            ..Config::default()
        }
    }

    #[test]
    fn verdicts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let apath = dir.path().join("aliases");
        std::fs::write(&apath, "info: bob\n@other.org: bob@example.org\n").expect("write");
        let mut c = config(Some(apath));
        c.domains.push("other.org".into());
        let users =
            Users::parse("bob@example.org:$6$x$y\n", Path::new("/etc/mxa/users")).expect("users");
        let acc = Accounts::from_users(users);
        let al = AliasFile::new(&c).expect("aliases");
        let v = |a: &str, trusted, auth| recipient(&c, &acc, &al, a, trusted, auth);
        assert_eq!(v("bob@example.org", false, false), Verdict::Local);
        assert_eq!(v("bob@EXAMPLE.ORG", false, false), Verdict::Local);
        assert_eq!(v("bob+lists@example.org", false, false), Verdict::Local);
        assert_eq!(v("info@example.org", false, false), Verdict::Local);
        assert_eq!(
            v("anything@other.org", false, false),
            Verdict::Local,
            "catch-all"
        );
        assert_eq!(v("Postmaster@example.org", false, false), Verdict::Local);
        assert_eq!(v("postmaster", false, false), Verdict::Local);
        assert_eq!(v("alice@example.org", false, false), Verdict::Unknown);
        assert_eq!(v("alice@example.org", true, true), Verdict::Unknown);
        // Path tricks are just unknown local parts, never relayed.
        assert_eq!(
            v("../../etc/passwd@example.org", false, false),
            Verdict::Unknown
        );
        assert_eq!(
            v("bob%remote.test@example.org", false, false),
            Verdict::Unknown
        );
        assert_eq!(v("carol@remote.test", false, false), Verdict::RelayDenied);
        assert_eq!(v("carol@remote.test", true, false), Verdict::RelayAllowed);
        assert_eq!(v("carol@remote.test", false, true), Verdict::RelayAllowed);
        assert_eq!(
            v("bob@example.org.remote.test", false, false),
            Verdict::RelayDenied
        );
    }

    #[test]
    fn received_line() {
        let env = Envelope {
            helo: "client.example\r\nX-Injected: 1".into(),
            esmtp: true,
            recipients: vec![Recipient {
                address: "bob@example.org".into(),
                local: true,
                notify: None,
                orcpt: None,
            }],
            tls: Some(TlsInfo {
                version: "TLSv1.3".into(),
                cipher: "TLS13_AES_256_GCM_SHA384".into(),
            }),
            auth_user: Some("bob@example.org".into()),
            ..Envelope::default()
        };
        let ip: IpAddr = "2001:db8::1".parse().expect("ip");
        let r = received("mx.example.org", &env, "unknown", Some(ip), "ID123", 0);
        assert_eq!(
            r,
            "Received: from client.example??X-Injected:?1 (unknown [IPv6:2001:db8::1])\n\
             \tby mx.example.org (mxa) with ESMTPSA id ID123\n\
             \t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\n\
             \tfor <bob@example.org>; Thu, 01 Jan 1970 00:00:00 +0000\n"
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(literal(mapped), "[192.0.2.7]");
        let plain = Envelope {
            helo: "h".into(),
            ..Envelope::default()
        };
        assert_eq!(protocol(&plain), "SMTP");
        let utf8 = Envelope {
            smtputf8: true,
            esmtp: true,
            ..Envelope::default()
        };
        assert_eq!(protocol(&utf8), "UTF8SMTP");
    }
}
