//! Passwords, checked against the users file (DESIGN.md: `address:hash`,
//! crypt(3)-style hashes as `mkpasswd` or `openssl passwd -6` write them).
//!
//! An unknown or locked login costs the same work as a known one (a dummy
//! argon2id hash is verified), so timing does not tell which addresses
//! exist. The caller adds [`failure_delay`] before answering a failure.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use mxa_config::{Config, Users};

/// Whether `password` matches `hash`: argon2id/argon2i/argon2d (PHC form),
/// SHA-crypt `$6$` and `$5$`, bcrypt `$2y$`, `$2b$`, `$2a$`. Anything else
/// (a locked `!…` or `*` entry, an unknown scheme) never matches.
pub fn verify_hash(hash: &str, password: &str) -> bool {
    if hash.starts_with("$argon2") {
        PasswordHash::new(hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    } else if hash.starts_with("$6$") {
        sha_crypt::sha512_check(password, hash).is_ok()
    } else if hash.starts_with("$5$") {
        sha_crypt::sha256_check(password, hash).is_ok()
    } else if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else {
        false
    }
}

/// The delay before answering the `failures`-th failed login of a
/// session: 1, 2, then 4 seconds. It slows guessing; the protocol layers
/// also disconnect after a few failures.
pub fn failure_delay(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        1 => Duration::from_secs(1),
        2 => Duration::from_secs(2),
        _ => Duration::from_secs(4),
    }
}

#[derive(Debug)]
struct Loaded {
    users: Users,
    modified: Option<SystemTime>,
}

/// The accounts of the users file, read again when it changes.
#[derive(Debug)]
pub struct Accounts {
    path: Option<PathBuf>,
    loaded: Mutex<Loaded>,
    dummy: String,
}

impl Accounts {
    /// The accounts of `config`'s users file (none without one). Reads it
    /// now: call before dropping root if only root can read it.
    pub fn new(config: &Config) -> Result<Accounts, mxa_config::ConfigError> {
        let users = config.load_users()?;
        let modified = config.users.as_ref().and_then(|p| modified(p));
        Ok(Accounts {
            path: config.users.clone(),
            loaded: Mutex::new(Loaded { users, modified }),
            dummy: dummy_hash(),
        })
    }

    /// Accounts from a users list (tests, `--stdio` tools).
    pub fn from_users(users: Users) -> Accounts {
        Accounts {
            path: None,
            loaded: Mutex::new(Loaded {
                users,
                modified: None,
            }),
            dummy: dummy_hash(),
        }
    }

    /// Whether `login` (the full address) may log in with `password`.
    /// Blocking, tens of milliseconds (run it off the async threads); the
    /// same work whether or not the account exists.
    pub fn check(&self, login: &str, password: &str) -> bool {
        let hash = self.with_users(|u| {
            u.find(login)
                .filter(|e| !e.locked())
                .map(|e| e.hash.clone())
        });
        match hash {
            Some(h) => verify_hash(&h, password),
            None => {
                let _ = verify_hash(&self.dummy, password);
                false
            }
        }
    }

    /// Runs `f` on the current users, reading the file again first if it
    /// changed. A file that became unreadable or wrong keeps the last good
    /// version (and says so on stderr).
    pub fn with_users<T>(&self, f: impl FnOnce(&Users) -> T) -> T {
        let mut l = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(path) = &self.path {
            let now = modified(path);
            if now != l.modified {
                match Users::load(path) {
                    Ok(users) => {
                        l.users = users;
                        l.modified = now;
                    }
                    Err(e) => {
                        eprintln!("users file not reloaded, keeping the last good one: {e}");
                        l.modified = now;
                    }
                }
            }
        }
        f(&l.users)
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// An argon2id hash of a random password, with the default parameters
/// (those `mxa up` and most tools write), for unknown logins.
fn dummy_hash() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    let salt = SaltString::encode_b64(&bytes).ok();
    salt.and_then(|s| {
        argon2::Argon2::default()
            .hash_password(&bytes, &s)
            .ok()
            .map(|h| h.to_string())
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn argon(pw: &str) -> String {
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        argon2::Argon2::default()
            .hash_password(pw.as_bytes(), &salt)
            .expect("hash")
            .to_string()
    }

    #[test]
    fn every_scheme() {
        let a = argon("secret");
        assert!(verify_hash(&a, "secret"));
        assert!(!verify_hash(&a, "Secret"));
        // `openssl passwd -6 -salt saltsalt secret`
        let six = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        assert!(verify_hash(six, "secret"));
        assert!(!verify_hash(six, "secrets"));
        // `openssl passwd -5 -salt saltsalt secret`
        let five = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
        assert!(verify_hash(five, "secret"));
        assert!(!verify_hash(five, "secre"));
        let b = bcrypt::hash("secret", 4).expect("bcrypt");
        assert!(verify_hash(&b, "secret"));
        let y = b.replacen("$2b$", "$2y$", 1);
        assert!(verify_hash(&y, "secret"));
        assert!(!verify_hash(&y, "nope"));
        for bad in ["", "*", "!", "!$6$x$y", "plain", "$1$abc$def"] {
            assert!(!verify_hash(bad, "secret"), "{bad}");
            assert!(!verify_hash(bad, ""), "{bad}");
        }
    }

    #[test]
    fn accounts_check_and_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        std::fs::write(
            &path,
            format!(
                "me@Example.org:{}\nlocked@example.org:!{}\n",
                argon("pw"),
                argon("pw")
            ),
        )
        .expect("write");
        let config = Config {
            users: Some(path.clone()),
            ..Config::default()
        };
        let acc = Accounts::new(&config).expect("accounts");
        assert!(acc.check("me@example.org", "pw"));
        assert!(acc.check("me@EXAMPLE.ORG", "pw"));
        assert!(!acc.check("Me@example.org", "pw"), "local parts are exact");
        assert!(!acc.check("me@example.org", "wrong"));
        assert!(!acc.check("nobody@example.org", "pw"));
        assert!(!acc.check("locked@example.org", "pw"));
        // A changed file is read again (mtime moved on explicitly: the
        // rewrite may land within the same timestamp tick).
        std::fs::write(&path, format!("new@example.org:{}\n", argon("pw2"))).expect("write");
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(later))
            .expect("touch");
        assert!(acc.check("new@example.org", "pw2"));
        assert!(!acc.check("me@example.org", "pw"));
        // A broken file keeps the last good one.
        std::fs::write(&path, "garbage without a hash\n").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(later + Duration::from_secs(5)))
            .expect("touch");
        assert!(acc.check("new@example.org", "pw2"));
        assert!(Path::new(&path).exists());
    }

    #[test]
    fn delays_grow() {
        assert_eq!(failure_delay(0), Duration::ZERO);
        assert!(failure_delay(1) < failure_delay(2));
        assert!(failure_delay(2) < failure_delay(3));
        assert_eq!(failure_delay(3), failure_delay(30));
    }
}
