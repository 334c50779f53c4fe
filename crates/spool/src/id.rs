//! Queue ids: 19 characters of Crockford base32, the first 11 the
//! microseconds since the Unix epoch, the last 8 random. Fixed width and an
//! alphabet in ASCII order make string order equal to time order; 40 random
//! bits make two ids of the same microsecond differ, and injection creates
//! the id's files with O_EXCL, so a collision is retried, never merged.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TIME_CHARS: usize = 11; // 55 bits of microseconds: until the year 3111
const RANDOM_CHARS: usize = 8; // 40 bits
/// Length of every queue id.
pub const ID_LEN: usize = TIME_CHARS + RANDOM_CHARS;

/// A queue id, validated: safe to use as a file name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(String);

impl QueueId {
    /// A new id for the current time.
    pub fn generate() -> QueueId {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let mut rnd = [0u8; 5];
        // getrandom fails only where no entropy source exists at all; the
        // O_EXCL create still guarantees uniqueness then, so fall back to
        // the pid and a counter rather than fail an injection.
        if getrandom::fill(&mut rnd).is_err() {
            let v = fallback_random();
            rnd.copy_from_slice(&v.to_be_bytes()[3..]);
        }
        let r = rnd.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let mut s = String::with_capacity(ID_LEN);
        push_base32(&mut s, micros, TIME_CHARS);
        push_base32(&mut s, r, RANDOM_CHARS);
        QueueId(s)
    }

    /// Parses an id given by a user or found in the spool; refuses anything
    /// that is not exactly an id (so no path can be smuggled in).
    pub fn parse(s: &str) -> Option<QueueId> {
        let ok = s.len() == ID_LEN && s.bytes().all(|b| ALPHABET.contains(&b));
        ok.then(|| QueueId(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Microseconds since the epoch at which the id was made.
    pub fn micros(&self) -> u64 {
        self.0.as_bytes()[..TIME_CHARS].iter().fold(0u64, |acc, b| {
            let v = ALPHABET.iter().position(|a| a == b).unwrap_or(0) as u64;
            (acc << 5) | v
        })
    }
}

fn push_base32(s: &mut String, v: u64, chars: usize) {
    for i in (0..chars).rev() {
        let digit = ((v >> (5 * i)) & 31) as usize;
        s.push(ALPHABET[digit] as char);
    }
}

fn fallback_random() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    (u64::from(std::process::id()) << 20) ^ COUNTER.fetch_add(1, Ordering::Relaxed)
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sort_by_time() {
        let mut prev = QueueId::generate();
        for _ in 0..1000 {
            let id = QueueId::generate();
            assert_eq!(id.as_str().len(), ID_LEN);
            assert_ne!(id, prev);
            assert!(id.micros() >= prev.micros());
            if id.micros() > prev.micros() {
                assert!(id > prev, "{id} sorts before {prev}");
            }
            prev = id;
        }
    }

    #[test]
    fn parse_refuses_paths_and_junk() {
        let id = QueueId::generate();
        assert_eq!(QueueId::parse(id.as_str()), Some(id));
        for bad in [
            "",
            "../../etc/passwd",
            "0123456789ABCDEFGHI/",
            "0123456789abcdefghj",
            "0123456789ABCDEFGHU",
        ] {
            assert!(QueueId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn micros_round_trip() {
        let mut s = String::new();
        push_base32(&mut s, 1_763_922_000_123_456, TIME_CHARS);
        s.push_str("00000000");
        let id = QueueId::parse(&s).expect("valid");
        assert_eq!(id.micros(), 1_763_922_000_123_456);
    }
}
