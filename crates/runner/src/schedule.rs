//! When to try again. After the n-th failed attempt a recipient waits
//! 5 min, 15 min, 30 min, 1 h, 2 h, then every 4 h, each ±10 % so that
//! messages deferred together do not all come back at the same second; it
//! gives up once the message is older than `[queue] lifetime`.

use std::time::Duration;

const STEPS: [u64; 6] = [5 * 60, 15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600];

/// The wait after `attempts` failed attempts (1 = the first), without jitter.
pub fn backoff(attempts: u32) -> Duration {
    let i = (attempts.max(1) as usize - 1).min(STEPS.len() - 1);
    Duration::from_secs(STEPS[i])
}

/// Unix time of the next attempt after `attempts` failures at `now`, with
/// ±10 % jitter.
pub fn next_try(now: u64, attempts: u32) -> u64 {
    let base = backoff(attempts).as_secs();
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    let span = base / 5; // 20 %: from -10 % to +10 %
    let jitter = u64::from(u32::from_ne_bytes(r)) % (span + 1);
    now + base - base / 10 + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_stays_at_four_hours() {
        let mins: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs() / 60).collect();
        assert_eq!(mins, [5, 15, 30, 60, 120, 240, 240, 240]);
        assert_eq!(backoff(0), backoff(1));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for n in 1..10 {
            let t = next_try(1000, n) - 1000;
            let b = backoff(n).as_secs();
            assert!(t >= b - b / 10 && t <= b + b / 10, "{n}: {t} vs {b}");
        }
    }
}
