//! Creating the complete local system of `mxa up` (DESIGN.md): `mxa.toml`,
//! `users` with `test@localhost` and a random password, a self-signed
//! certificate, `spool/` and `mail/`, on 127.0.0.1 ports 2525, 2587, 2465,
//! 2110 and 2995.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use argon2::password_hash::{PasswordHasher, SaltString};

/// The test account.
pub const ADDRESS: &str = "test@localhost";

const CONFIG: &str = r#"# Made by `mxa up` to try mxa on this machine; see mxa.toml(5).
hostname = "localhost"
domains  = ["localhost"]
users    = "users"
spool    = "spool"
mailroot = "mail"

[smtpd]
listen      = ["127.0.0.1:2525"]
submission  = ["127.0.0.1:2587"]
submissions = ["127.0.0.1:2465"]
tls_cert    = "cert.pem"
tls_key     = "key.pem"

[pop3d]
listen = ["127.0.0.1:2110"]
pop3s  = ["127.0.0.1:2995"]
"#;

/// Creates the system in `dir`; returns the password, which is stored only
/// hashed. `mxa.toml` is written last, so an interrupted run starts over.
pub fn create(dir: &Path) -> io::Result<String> {
    let mkdir = |p: &Path| match fs::DirBuilder::new().recursive(true).mode(0o750).create(p) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    };
    mkdir(dir)?;
    mkdir(&dir.join("spool"))?;
    mkdir(&dir.join("mail"))?;
    let password = random_password()?;
    let hash = hash_password(&password)?;
    write_private(
        &dir.join("users"),
        &format!("# address:hash[:maildir[:home]], see mxa.toml(5)\n{ADDRESS}:{hash}\n"),
    )?;
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(io::Error::other)?;
    fs::write(dir.join("cert.pem"), cert.cert.pem())?;
    write_private(&dir.join("key.pem"), &cert.signing_key.serialize_pem())?;
    let mut config = CONFIG.to_string();
    if let Some(user) = daemon_account() {
        // Started as root: the network daemons drop to `nobody`, which
        // must reach and write the spool (mxa-queue, as root, can anyway).
        fs::set_permissions(dir, fs::Permissions::from_mode(0o751))?;
        let spool = dir.join("spool");
        nix::unistd::chown(&spool, Some(user.uid), Some(user.gid)).map_err(io::Error::from)?;
        fs::set_permissions(&spool, fs::Permissions::from_mode(0o2770))?;
        // The mailboxes are that account's too: mxa-deliver, run as root
        // by mxa-queue, becomes the owner of the folder above a new
        // Maildir, and mxa-pop3d (as `nobody`) must read and remove mail.
        let mail = dir.join("mail");
        nix::unistd::chown(&mail, Some(user.uid), Some(user.gid)).map_err(io::Error::from)?;
        config = config.replace(
            "mailroot = \"mail\"\n",
            "mailroot = \"mail\"\n# started as root: the daemons that read the network run as this account\nuser     = \"nobody\"\n",
        );
    }
    fs::write(dir.join("mxa.toml"), config)?;
    Ok(password)
}

/// The account daemons drop to when `mxa up` runs as root: `nobody`.
fn daemon_account() -> Option<nix::unistd::User> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    nix::unistd::User::from_name("nobody").ok().flatten()
}

fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    io::Write::write_all(&mut f, text.as_bytes())
}

/// 16 characters of letters and digits: about 95 bits.
fn random_password() -> io::Result<String> {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::new();
    while out.len() < 16 {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(io::Error::other)?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % CHARS.len();
        out.extend(
            b.iter()
                .filter(|&&x| usize::from(x) < limit)
                .map(|&x| CHARS[usize::from(x) % CHARS.len()] as char),
        );
    }
    out.truncate(16);
    Ok(out)
}

/// An argon2id hash in the PHC form the users file takes (`$argon2id$…`).
pub fn hash_password(password: &str) -> io::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(io::Error::other)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| io::Error::other(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_valid_system() {
        let dir = tempfile_dir();
        let pw = create(&dir).expect("create");
        assert_eq!(pw.len(), 16);
        let config = mxa_config::Config::from_file(&dir.join("mxa.toml")).expect("valid config");
        assert_eq!(config.smtpd.listen[0].port(), 2525);
        let users = config.load_users().expect("users");
        assert!(users.entries[0].hash.starts_with("$argon2id$"));
        let _ = fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("random");
        std::env::temp_dir().join(format!("mxa-init-{}", u64::from_ne_bytes(b)))
    }
}
