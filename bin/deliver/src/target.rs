//! Finding the mailbox of a recipient (DESIGN.md): the users file (its
//! maildir field, else `<mailroot>/<domain>/<local>/`), else a system
//! user's `$HOME/Maildir`, else, for a domain of `domains`,
//! `<mailroot>/<domain>/<local>/` (postmaster with no alias). The local part
//! is checked before it becomes part of any path.

use std::path::{Path, PathBuf};

use mxa_config::{Config, Users};
use nix::unistd::User;

use crate::{Failure, exit};

/// Longest local part that may name a folder (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL: usize = 64;
/// Longest domain (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;

/// A recipient address taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// As given.
    pub address: String,
    /// The local part without the extension.
    pub user: String,
    /// The extension (`folder` of `user+folder`), if any.
    pub extension: Option<String>,
    /// The domain, lower-cased; empty for a bare user name.
    pub domain: String,
}

impl Recipient {
    /// Splits `address` with `delimiters` (Postfix's recipient_delimiter:
    /// the first of these characters separates user and extension);
    /// `extension` from the environment wins when given. Refuses what could
    /// escape a mail folder.
    pub fn parse(
        address: &str,
        delimiters: &str,
        extension: Option<String>,
    ) -> Result<Recipient, Failure> {
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        check_part(local, MAX_LOCAL, "local part", address)?;
        if !domain.is_empty() {
            check_part(domain, MAX_DOMAIN, "domain", address)?;
        }
        let split = local
            .find(|c| delimiters.contains(c))
            .filter(|_| !delimiters.is_empty());
        let (user, ext) = match split {
            Some(i) if i > 0 => (&local[..i], Some(local[i + 1..].to_string())),
            _ => (local, None),
        };
        let extension = extension
            .filter(|e| !e.is_empty())
            .or(ext.filter(|e| !e.is_empty()));
        Ok(Recipient {
            address: address.to_string(),
            user: user.to_string(),
            extension,
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// `user@domain`, without the extension: the key of the users file.
    pub fn base(&self) -> String {
        if self.domain.is_empty() {
            self.user.clone()
        } else {
            format!("{}@{}", self.user, self.domain)
        }
    }
}

/// A local part or domain that will name a folder: no `/`, no `.`/`..`, no
/// leading dot, no control characters, bounded length.
fn check_part(s: &str, max: usize, what: &str, address: &str) -> Result<(), Failure> {
    let bad = s.is_empty()
        || s.len() > max
        || s.contains('/')
        || s.starts_with('.')
        || s.contains("..")
        || s.chars().any(|c| c.is_control());
    if bad {
        let msg = format!(
            "{address:?}: refused: the {what} is empty, too long, or holds '/', '..' or control characters"
        );
        return Err(Failure::new(exit::NOUSER, msg));
    }
    Ok(())
}

/// Where a recipient's mail goes.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// The Maildir.
    pub maildir: PathBuf,
    /// Where `.forward` is read, if anywhere.
    pub home: Option<PathBuf>,
    /// The system account, when the recipient is one.
    pub account: Option<User>,
}

/// Finds the mailbox of `rcpt`. `home` and `user_env` are `$HOME` and
/// `$USER` as the caller set them (Postfix's local(8) sets both).
pub fn resolve(
    config: &Config,
    users: &Users,
    rcpt: &Recipient,
    home: Option<PathBuf>,
    user_env: Option<String>,
) -> Result<Mailbox, Failure> {
    let by_mailroot = |c: &Config| c.mailroot.join(&rcpt.domain).join(&rcpt.user);
    if let Some(e) = users.find(&rcpt.base()) {
        let maildir = e.maildir.clone().unwrap_or_else(|| by_mailroot(config));
        return Ok(Mailbox {
            maildir,
            home: e.home.clone(),
            account: None,
        });
    }
    if let Some(acct) = system_account(rcpt, home.as_deref(), user_env.as_deref(), config) {
        let home = acct.dir.clone();
        return Ok(Mailbox {
            maildir: home.join("Maildir"),
            home: Some(home),
            account: Some(acct),
        });
    }
    // RFC 5321 §4.5.1: postmaster always reaches someone (DESIGN.md).
    if config.file.is_some()
        && config.is_local_domain(&rcpt.domain)
        && rcpt.user.eq_ignore_ascii_case("postmaster")
    {
        return Ok(Mailbox {
            maildir: by_mailroot(config),
            home: None,
            account: None,
        });
    }
    Err(Failure::new(
        exit::NOUSER,
        format!("{}: no such user here", rcpt.address),
    ))
}

/// The system account of a recipient whose domain is ours (in `domains`,
/// the host name, or none), named by its user part. Not running as root,
/// that can only be the caller itself (Postfix's mailbox_command runs as
/// the user with `$HOME` and `$USER` set; a shell pipeline delivers to its
/// own user); with no config at all, any address is the caller's.
fn system_account(
    rcpt: &Recipient,
    home: Option<&Path>,
    user_env: Option<&str>,
    c: &Config,
) -> Option<User> {
    let ours = rcpt.domain.is_empty()
        || c.is_local_domain(&rcpt.domain)
        || rcpt.domain.eq_ignore_ascii_case(&c.hostname);
    if nix::unistd::geteuid().is_root() {
        return if ours {
            User::from_name(&rcpt.user).ok().flatten()
        } else {
            None
        };
    }
    let me = User::from_uid(nix::unistd::geteuid()).ok().flatten()?;
    let named_me = rcpt.user == me.name || user_env.is_some_and(|u| u == rcpt.user && u == me.name);
    if !(named_me || c.file.is_none()) {
        return None;
    }
    let dir = home
        .map(Path::to_path_buf)
        .unwrap_or_else(|| me.dir.clone());
    Some(User { dir, ..me })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_extensions() {
        let r = Recipient::parse("bob+lists@Example.ORG", "+", None).expect("ok");
        assert_eq!(
            (r.user.as_str(), r.extension.as_deref(), r.domain.as_str()),
            ("bob", Some("lists"), "example.org")
        );
        assert_eq!(r.base(), "bob@example.org");
        let r = Recipient::parse("bob-x@e", "+-", None).expect("ok");
        assert_eq!(r.extension.as_deref(), Some("x"));
        let r = Recipient::parse("bob+x@e", "", None).expect("ok");
        assert_eq!((r.user.as_str(), r.extension), ("bob+x", None));
        let r = Recipient::parse("bob@e", "+", Some("env".into())).expect("ok");
        assert_eq!(r.extension.as_deref(), Some("env"));
        let r = Recipient::parse("+x@e", "+", None).expect("ok");
        assert_eq!(r.user, "+x");
    }

    #[test]
    fn refuses_hostile_recipients() {
        let long = format!("{}@example.org", "a".repeat(300));
        for bad in [
            "../x@e",
            "a/b@e",
            "..@e",
            ".hidden@e",
            "a\nb@e",
            "a\x01@e",
            "@e",
            "a@../e",
            "a@e/f",
            long.as_str(),
        ] {
            let e = Recipient::parse(bad, "+", None).expect_err(bad);
            assert_eq!(e.code, exit::NOUSER, "{bad:?}");
        }
    }
}
