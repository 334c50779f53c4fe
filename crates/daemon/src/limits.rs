//! Connections in total and per client address (`[smtpd] max_connections`,
//! `max_connections_per_client`; clients in `trusted_networks` are exempt
//! from the second).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use mxa_config::IpNet;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server has `max_connections` already.
    Total,
    /// This address has `max_connections_per_client` already.
    PerClient,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_ip: HashMap<IpAddr, u32>,
}

/// Counts open connections; see the module documentation.
#[derive(Debug)]
pub struct Limiter {
    total: u32,
    per_client: u32,
    exempt: Vec<IpNet>,
    counts: Mutex<Counts>,
}

/// One counted connection; released on drop.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    ip: IpAddr,
}

impl Limiter {
    /// A limiter of `total` connections, `per_client` per address except
    /// for addresses in `exempt`.
    pub fn new(total: u32, per_client: u32, exempt: Vec<IpNet>) -> Arc<Limiter> {
        Arc::new(Limiter {
            total,
            per_client,
            exempt,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Counts a connection from `ip`, or says why not.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if c.total >= self.total {
            return Err(Refusal::Total);
        }
        let exempt = self.exempt.iter().any(|n| n.contains(ip));
        let n = c.per_ip.entry(ip).or_insert(0);
        if !exempt && *n >= self.per_client {
            return Err(Refusal::PerClient);
        }
        *n += 1;
        c.total += 1;
        Ok(Permit {
            limiter: Arc::clone(self),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn per_client_and_total() {
        let trusted = vec!["127.0.0.0/8".parse().expect("network")];
        let l = Limiter::new(4, 2, trusted);
        let a1 = l.acquire(ip("192.0.2.1")).expect("first");
        let _a2 = l.acquire(ip("192.0.2.1")).expect("second");
        assert_eq!(l.acquire(ip("192.0.2.1")).err(), Some(Refusal::PerClient));
        drop(a1);
        let _a3 = l.acquire(ip("192.0.2.1")).expect("a slot freed");
        // Trusted clients are exempt from the per-client limit, not the total.
        let _t1 = l.acquire(ip("127.0.0.1")).expect("trusted");
        let _t2 = l.acquire(ip("127.0.0.1")).expect("trusted");
        assert_eq!(l.acquire(ip("127.0.0.1")).err(), Some(Refusal::Total));
        assert_eq!(l.open(), 4);
    }
}
