//! mxa-daemon: what the network daemons (mxa-smtpd, mxa-pop3d) share.
//!
//! - [`auth`]: passwords checked against the users file (argon2, SHA-crypt,
//!   bcrypt), with the same work for unknown users and a growing delay
//!   after failures;
//! - [`tls`]: the rustls server configuration from `[smtpd] tls_cert` and
//!   `tls_key`, and how a session describes its TLS;
//! - [`limits`]: connections in total and per client address;
//! - [`conn::Conn`]: a connection that may turn into TLS halfway;
//! - [`bind`], [`drop_root`], [`stdio_peer`], [`session_id`]: the start of
//!   a daemon's life (bind as root, drop to `user` before reading from any
//!   client) and what inetd-style invocation passes in the environment.

pub mod auth;
pub mod conn;
pub mod limits;
pub mod tls;

use std::ffi::CString;
use std::net::{IpAddr, SocketAddr, TcpListener};

/// Binds every address, non-blocking (ready for
/// `tokio::net::TcpListener::from_std`). An IPv6 wildcard also takes IPv4
/// where the system allows it (Linux's default `bindv6only = 0`).
pub fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, String> {
    addrs
        .iter()
        .map(|a| {
            let l = TcpListener::bind(a).map_err(|e| format!("cannot listen on {a}: {e}"))?;
            l.set_nonblocking(true)
                .map_err(|e| format!("cannot listen on {a}: {e}"))?;
            Ok(l)
        })
        .collect()
}

/// Becomes the account `user` (its uid, gid and groups) when running as
/// root; does nothing otherwise. Refuses to go on as root: nothing that
/// reads from the network does. Callers add what it means for them.
pub fn drop_root(user: &str) -> Result<(), String> {
    use nix::unistd::{User, geteuid, initgroups, setgid, setuid};
    if !geteuid().is_root() {
        return Ok(());
    }
    let u = User::from_name(user)
        .ok()
        .flatten()
        .ok_or_else(|| format!("the account {user:?} (the `user` key) does not exist"))?;
    if u.uid.is_root() {
        return Err(format!("`user` is {user:?}, which is root"));
    }
    let name = CString::new(u.name.clone()).map_err(|e| e.to_string())?;
    initgroups(&name, u.gid).map_err(|e| format!("initgroups: {e}"))?;
    setgid(u.gid).map_err(|e| format!("setgid: {e}"))?;
    setuid(u.uid).map_err(|e| format!("setuid: {e}"))?;
    if nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_ok() {
        return Err("could not drop root for good".into());
    }
    Ok(())
}

/// The client's address under inetd, tcpserver (`TCPREMOTEIP`) or a CGI-ish
/// super-server (`REMOTE_ADDR`), when one of them is set and valid.
pub fn stdio_peer() -> Option<IpAddr> {
    ["TCPREMOTEIP", "REMOTE_ADDR"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find_map(|v| v.trim().parse().ok())
}

/// A short id for one client session, unique enough to follow it through
/// the log: 12 Crockford base-32 characters (seconds and 30 random bits).
pub fn session_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut rnd = [0u8; 4];
    // Without randomness the time part still tells sessions apart in
    // most logs; a session id is not a secret.
    let _ = getrandom::fill(&mut rnd);
    let v = ((secs & 0x3FFF_FFFF) << 30) | u64::from(u32::from_le_bytes(rnd) & 0x3FFF_FFFF);
    (0..12)
        .rev()
        .map(|i| char::from(ALPHABET[((v >> (i * 5)) & 31) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_differ_and_are_short() {
        let a = session_id();
        let b = session_id();
        assert_eq!(a.len(), 12);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn binds_a_free_port() {
        let l = bind(&["127.0.0.1:0".parse().expect("address")]).expect("bind");
        assert_eq!(l.len(), 1);
        let taken = l[0].local_addr().expect("address");
        let err = bind(&[taken]).expect_err("the port is taken");
        assert!(err.contains(&taken.to_string()), "{err}");
    }
}
