//! Unique names of delivered files.
//!
//! The Maildir spec ("How a message is delivered") asks for a name made of
//! the time, something unique to the delivering process, and the host name,
//! with `/` and `:` in the host name written `\057` and `\072`. We follow
//! Dovecot's refinement of it:
//!
//! ```text
//! <secs>.M<usecs>P<pid>Q<counter>R<random hex>.<host>,S=<size>,W=<vsize>
//! ```
//!
//! `M` (microseconds), `P` (pid) and `Q` (a counter of deliveries made by
//! this process) make the name unique on one host as long as clocks do not
//! step back; `R` (64 random bits) keeps it unique when they do, or when two
//! containers share a pid space and a host name. `S=` is the size of the file
//! and `W=` its size with CRLF line ends (RFC 1939 §11 counts octets that
//! way), which lets Dovecot and POP3 servers skip reading the file.

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Deliveries made by this process so far (the `Q` part).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Size of `msg` as written (`S=`) and with every bare LF counted as CRLF
/// (`W=`). The message is meant to hold LF line ends only; a CR LF pair
/// already in it is counted once, so `W=` stays right either way.
pub(crate) fn sizes(msg: &[u8]) -> (u64, u64) {
    // Counting whole-slice first lets the compiler vectorise the common
    // case (LF-only files, as mxa writes them); CRLF pairs are rare.
    let lf = msg.iter().filter(|&&b| b == b'\n').count() as u64;
    let crlf = if msg.contains(&b'\r') {
        msg.windows(2).filter(|w| w == b"\r\n").count() as u64
    } else {
        0
    };
    let size = msg.len() as u64;
    (size, size + lf - crlf)
}

/// The parts of a unique name; [`Parts::name`] formats them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parts {
    pub secs: u64,
    pub usecs: u32,
    pub pid: u32,
    pub counter: u64,
    pub random: u64,
    pub host: String,
    pub size: u64,
    pub vsize: u64,
}

impl Parts {
    /// Parts for a new delivery of a message of these sizes, now.
    pub(crate) fn now(size: u64, vsize: u64) -> io::Result<Parts> {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| io::Error::other("system clock is before 1970"))?;
        let random = getrandom::u64().map_err(io::Error::from)?;
        Ok(Parts {
            secs: since.as_secs(),
            usecs: since.subsec_micros(),
            pid: std::process::id(),
            counter: COUNTER.fetch_add(1, Ordering::Relaxed) + 1,
            random,
            host: hostname().to_owned(),
            size,
            vsize,
        })
    }

    /// The file name for new/.
    pub(crate) fn name(&self) -> String {
        format!(
            "{}.M{}P{}Q{}R{:016x}.{},S={},W={}",
            self.secs,
            self.usecs,
            self.pid,
            self.counter,
            self.random,
            escape_host(&self.host),
            self.size,
            self.vsize
        )
    }
}

/// The host name as the Maildir spec wants it in a file name: `/` becomes
/// `\057` and `:` becomes `\072` (`:` starts the info part, `/` would make a
/// path). Nothing else needs escaping: Dovecot finds the sizes by looking
/// for `,S=` and `,W=`, which no host name can contain (no `=`).
pub(crate) fn escape_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            c => out.push(c),
        }
    }
    out
}

/// This host's name, read once. A host without a usable name still gets
/// unique file names (time, pid, counter and random bits), so a failure of
/// gethostname(2) is not an error: "localhost" stands in.
fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        nix::unistd::gethostname()
            .ok()
            .map(|h| h.to_string_lossy().into_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `S=` is the octet count; `W=` counts each LF line end as CRLF (RFC
    /// 1939 §11: the size a POP3 client sees).
    #[test]
    fn sizes_table() {
        let cases: &[(&[u8], u64, u64)] = &[
            (b"", 0, 0),
            (b"a", 1, 1),
            (b"a\n", 2, 3),
            (b"Subject: x\n\nbody\n", 17, 20),
            (b"\n\n\n", 3, 6),
            // Already CRLF: counted once.
            (b"a\r\nb\n", 5, 6),
            // A lone CR is not a line end.
            (b"a\rb", 3, 3),
        ];
        for &(msg, s, w) in cases {
            assert_eq!(sizes(msg), (s, w), "{:?}", String::from_utf8_lossy(msg));
        }
    }

    /// Maildir spec: "replace / with \057 and : with \072".
    #[test]
    fn host_escapes() {
        let cases = [
            ("mx.example.org", "mx.example.org"),
            ("a/b", "a\\057b"),
            ("a:b", "a\\072b"),
            ("/:", "\\057\\072"),
        ];
        for (host, want) in cases {
            assert_eq!(escape_host(host), want, "{host}");
        }
    }

    /// Dovecot's layout: secs.M<usecs>P<pid>Q<n>R<hex>.host,S=..,W=..
    #[test]
    fn name_layout() {
        let p = Parts {
            secs: 1_790_000_000,
            usecs: 42,
            pid: 4711,
            counter: 3,
            random: 0xdead_beef,
            host: "mx:1/a".into(),
            size: 10,
            vsize: 12,
        };
        assert_eq!(
            p.name(),
            "1790000000.M42P4711Q3R00000000deadbeef.mx\\0721\\057a,S=10,W=12"
        );
    }

    #[test]
    fn now_counts_up() {
        let a = Parts::now(1, 2).expect("parts");
        let b = Parts::now(1, 2).expect("parts");
        assert!(b.counter > a.counter);
        assert_eq!(a.pid, std::process::id());
        assert!(!a.host.is_empty());
    }
}
