//! A private Dovecot on loopback, for the tests of mxa-fetch (and any
//! client of POP3 or IMAP): its own config, run, state and mail folders in
//! one temporary folder, `dovecot -F -c FILE`, passwd-file
//! authentication, one user [`DC_USER`] whose Maildir is
//! [`Dovecot::maildir`], and POP3, POP3S, IMAP and IMAPS listeners on free
//! ports. TLS uses a certificate for `localhost` and `127.0.0.1` signed by
//! a private CA made here with rcgen ([`Dovecot::ca`], for `--ca`).
//!
//! The master runs as root (it needs Debian's `dovecot` and `dovenull`
//! users for its internal and login processes); mail is accessed as
//! `nobody`, which owns the Maildir. Without root or without the package,
//! [`Dovecot::start`] returns None after [`peer`]'s skip-or-fail.
//!
//! ```no_run
//! use mxa_tests::dovecot::Dovecot;
//! let Some(dc) = Dovecot::start() else { return };
//! dc.add_message(b"Subject: hi\n\nbody\n");
//! // fetch from pop3://test%40example.test@127.0.0.1:{dc.ports.pop3} ...
//! ```

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::unistd::User;
use tempfile::TempDir;

use crate::{free_port, peer, require_root, wait_for_port};

/// The one user of every instance.
pub const DC_USER: &str = "test@example.test";
/// Its password.
pub const DC_PASSWORD: &str = "dovecot test password";

/// Listener ports.
#[derive(Debug, Clone, Copy)]
pub struct DcPorts {
    /// POP3 with STLS.
    pub pop3: u16,
    /// POP3 over TLS.
    pub pop3s: u16,
    /// IMAP with STARTTLS.
    pub imap: u16,
    /// IMAP over TLS.
    pub imaps: u16,
}

/// A running Dovecot; stopped (SIGTERM, which stops its children too) and
/// removed on drop.
#[derive(Debug)]
pub struct Dovecot {
    /// The instance's folder.
    pub dir: TempDir,
    /// Its ports.
    pub ports: DcPorts,
    child: Child,
    uid: u32,
    gid: u32,
}

const CONF: &str = "\
# Written by the mxa test harness (tests/src/dovecot.rs).
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
instance_name = mxa-test-{port}
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
{dh}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}
userdb {
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}
mail_location = maildir:{dir}/mail/%u
first_valid_uid = 1
pop3_uidl_format = %08Xu%08Xv
service imap-login {
  inet_listener imap {
    port = {imap}
  }
  inet_listener imaps {
    port = {imaps}
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = {pop3}
  }
  inet_listener pop3s {
    port = {pop3s}
    ssl = yes
  }
}
";

impl Dovecot {
    /// Starts an instance, or None (skipped) without Dovecot or root.
    pub fn start() -> Option<Dovecot> {
        let bin = peer("dovecot")?;
        if !require_root("a private Dovecot") {
            return None;
        }
        let nobody = User::from_name("nobody")
            .ok()
            .flatten()
            .expect("the user nobody");
        let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
        let dir = tempfile::Builder::new()
            .prefix("mxa-dovecot-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path();
        // Dovecot's unprivileged processes walk into it.
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).expect("chmod");
        let ports = DcPorts {
            pop3: free_port(),
            pop3s: free_port(),
            imap: free_port(),
            imaps: free_port(),
        };
        let (ca, cert, key) = certificates();
        fs::write(root.join("ca.pem"), ca).expect("ca");
        fs::write(root.join("cert.pem"), cert).expect("cert");
        fs::write(root.join("key.pem"), key).expect("key");
        fs::write(
            root.join("passwd"),
            format!("{DC_USER}:{{PLAIN}}{DC_PASSWORD}\n"),
        )
        .expect("passwd");
        fs::set_permissions(root.join("passwd"), fs::Permissions::from_mode(0o644)).expect("chmod");
        for sub in ["run", "state"] {
            fs::create_dir(root.join(sub)).expect("mkdir");
        }
        for sub in ["home", "mail"] {
            fs::create_dir(root.join(sub)).expect("mkdir");
            chown(root.join(sub), Some(uid), Some(gid)).expect("chown");
        }
        let dh = Path::new("/usr/share/dovecot/dh.pem");
        let conf = CONF
            .replace("{dir}", &root.display().to_string())
            .replace("{port}", &ports.pop3.to_string())
            .replace(
                "{dh}",
                &if dh.exists() {
                    format!("ssl_dh = <{}", dh.display())
                } else {
                    String::new()
                },
            )
            .replace("{uid}", &uid.to_string())
            .replace("{gid}", &gid.to_string())
            .replace("{pop3}", &ports.pop3.to_string())
            .replace("{pop3s}", &ports.pop3s.to_string())
            .replace("{imap}", &ports.imap.to_string())
            .replace("{imaps}", &ports.imaps.to_string());
        fs::write(root.join("dovecot.conf"), conf).expect("conf");
        let child = Command::new(bin)
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(root.join("stderr")).expect("stderr file"),
            ))
            .spawn()
            .expect("spawn dovecot");
        let dc = Dovecot {
            dir,
            ports,
            child,
            uid,
            gid,
        };
        for p in [ports.pop3, ports.pop3s, ports.imap, ports.imaps] {
            assert!(
                wait_for_port(p, Duration::from_secs(20)),
                "dovecot did not listen on {p}: {}",
                dc.log()
            );
        }
        let md = dc.maildir();
        for sub in ["", "tmp", "new", "cur"] {
            let p = md.join(sub);
            fs::create_dir_all(&p).expect("mkdir");
            chown(&p, Some(uid), Some(gid)).expect("chown");
        }
        Some(dc)
    }

    /// The instance's folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.root().join("ca.pem")
    }

    /// The user's Maildir.
    pub fn maildir(&self) -> PathBuf {
        self.root().join("mail").join(DC_USER)
    }

    /// Puts a message (LF line ends) into the Maildir's `new/`, as an MDA
    /// would: written in `tmp/`, renamed into `new/`, owned by `nobody`.
    pub fn add_message(&self, msg: &[u8]) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("1700000000.M{n}P{}.mxatest", std::process::id());
        let tmp = self.maildir().join("tmp").join(&name);
        let dest = self.maildir().join("new").join(&name);
        fs::write(&tmp, msg).expect("write message");
        chown(&tmp, Some(self.uid), Some(self.gid)).expect("chown");
        fs::rename(&tmp, &dest).expect("rename");
        dest
    }

    /// The messages in the Maildir (`new/` and `cur/`), with their names.
    pub fn messages(&self) -> Vec<(String, Vec<u8>)> {
        maildir_messages(&self.maildir())
    }

    /// Adds a login to the passwd file (read again by Dovecot when it
    /// changes).
    pub fn add_user(&self, user: &str, password: &str) {
        let path = self.root().join("passwd");
        let mut text = fs::read_to_string(&path).expect("passwd");
        text.push_str(&format!("{user}:{{PLAIN}}{password}\n"));
        fs::write(&path, text).expect("passwd");
    }

    /// Dovecot's log.
    pub fn log(&self) -> String {
        let mut s = fs::read_to_string(self.root().join("dovecot.log")).unwrap_or_default();
        s.push_str(&fs::read_to_string(self.root().join("stderr")).unwrap_or_default());
        s
    }

    /// A POP3 or IMAP URL for the user: `scheme` with `port`.
    pub fn url(&self, scheme: &str, port: u16) -> String {
        format!("{scheme}://test%40example.test@127.0.0.1:{port}")
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// The files of a Maildir's `new/` and `cur/`, sorted by name.
pub fn maildir_messages(md: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(rd) = fs::read_dir(md.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            out.push((name, fs::read(e.path()).expect("read message")));
        }
    }
    out.sort();
    out
}

/// A CA certificate, and a server certificate and key it signed, in PEM.
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mxa test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("server certificate");
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}
