//! Outgoing SMTP connections of one pass: how many are open, in total and
//! per destination (`[queue] max_connections`,
//! `max_connections_per_destination`), and the idle ones kept for the
//! next message to the same server, as Postfix's connection cache does.
//!
//! A destination is where the runner was told to send a domain's mail: the
//! relayhost, a route (`host:port`), or the domain itself (its MX hosts).
//! A connection is counted from [`Pool::reserve`] until [`Pool::release`],
//! idle time included. The pool holds connections of any type `C`; closing
//! one (QUIT) is the caller's business, outside the pool's lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An idle connection is closed when it has waited this long: servers
/// drop idle clients too, and a stale one only costs a retry.
pub const IDLE_MAX: Duration = Duration::from_secs(5);
/// A connection is not reused after this many transactions or this age,
/// so one long-lived session does not hold a destination for ever.
pub const USES_MAX: u32 = 100;
/// See [`USES_MAX`].
pub const AGE_MAX: Duration = Duration::from_secs(300);

/// The connection limits and the idle connections.
#[derive(Debug)]
pub struct Pool<C> {
    max_total: usize,
    max_per_destination: usize,
    state: Mutex<State<C>>,
    freed: Condvar,
}

#[derive(Debug)]
struct State<C> {
    total: usize,
    per_destination: HashMap<String, usize>,
    idle: Vec<Idle<C>>,
}

/// A connection waiting for its next transaction.
#[derive(Debug)]
pub struct Idle<C> {
    /// The destination it counts against.
    pub destination: String,
    /// The server's address.
    pub addr: SocketAddr,
    /// The connection.
    pub conn: C,
    /// When it was opened.
    pub opened: Instant,
    /// Transactions it has carried.
    pub uses: u32,
    since: Instant,
}

impl<C> Idle<C> {
    /// A connection to keep: `uses` transactions so far, opened at `opened`.
    pub fn new(
        destination: &str,
        addr: SocketAddr,
        conn: C,
        opened: Instant,
        uses: u32,
    ) -> Idle<C> {
        Idle {
            destination: destination.to_string(),
            addr,
            conn,
            opened,
            uses,
            since: Instant::now(),
        }
    }

    fn stale(&self, now: Instant) -> bool {
        now.duration_since(self.since) > IDLE_MAX
            || now.duration_since(self.opened) > AGE_MAX
            || self.uses >= USES_MAX
    }
}

impl<C> Pool<C> {
    /// A pool with these limits (each at least 1).
    pub fn new(max_total: usize, max_per_destination: usize) -> Pool<C> {
        Pool {
            max_total: max_total.max(1),
            max_per_destination: max_per_destination.max(1),
            state: Mutex::new(State {
                total: 0,
                per_destination: HashMap::new(),
                idle: Vec::new(),
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // A worker that panicked leaves counts that are still right.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection to `addr` for `destination`, if one is fresh
    /// enough; stale ones found on the way are handed back in `close`
    /// (already released).
    pub fn take(&self, destination: &str, addr: SocketAddr, close: &mut Vec<C>) -> Option<Idle<C>> {
        let mut st = self.lock();
        self.expire(&mut st, close);
        let i = st
            .idle
            .iter()
            .position(|c| c.destination == destination && c.addr == addr)?;
        Some(st.idle.swap_remove(i))
    }

    /// Counts a new connection to `destination`, waiting while either
    /// limit is reached. Idle connections make room first: the oldest idle
    /// one of the destination when the destination is full, else the
    /// oldest of any when the total is; those are handed back in `close`.
    pub fn reserve(&self, destination: &str, close: &mut Vec<C>) {
        let mut st = self.lock();
        loop {
            self.expire(&mut st, close);
            let mine = st.per_destination.get(destination).copied().unwrap_or(0);
            if mine >= self.max_per_destination {
                if let Some(i) = st.idle.iter().position(|c| c.destination == destination) {
                    let idle = st.idle.remove(i);
                    Self::uncount(&mut st, &idle.destination);
                    close.push(idle.conn);
                    continue;
                }
            } else if st.total >= self.max_total {
                if !st.idle.is_empty() {
                    let idle = st.idle.remove(0);
                    Self::uncount(&mut st, &idle.destination);
                    close.push(idle.conn);
                    continue;
                }
            } else {
                st.total += 1;
                *st.per_destination
                    .entry(destination.to_string())
                    .or_insert(0) += 1;
                return;
            }
            // Every counted connection is in use: wait for one to end (a
            // timeout only to look again at idle ones gone stale).
            st = self
                .freed
                .wait_timeout(st, IDLE_MAX)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Keeps `idle` for a later transaction (still counted).
    pub fn put(&self, idle: Idle<C>) {
        self.lock().idle.push(idle);
        // A worker waiting on this destination's limit may take it.
        self.freed.notify_all();
    }

    /// A connection of `destination` is closed (or was never opened).
    pub fn release(&self, destination: &str) {
        Self::uncount(&mut self.lock(), destination);
        self.freed.notify_all();
    }

    /// Every idle connection, released, to close (the end of a pass).
    pub fn drain(&self) -> Vec<C> {
        let mut st = self.lock();
        let idle: Vec<Idle<C>> = st.idle.drain(..).collect();
        for c in &idle {
            Self::uncount(&mut st, &c.destination);
        }
        drop(st);
        self.freed.notify_all();
        idle.into_iter().map(|c| c.conn).collect()
    }

    /// Open connections: (total, to `destination`).
    pub fn open(&self, destination: &str) -> (usize, usize) {
        let st = self.lock();
        let mine = st.per_destination.get(destination).copied().unwrap_or(0);
        (st.total, mine)
    }

    fn expire(&self, st: &mut State<C>, close: &mut Vec<C>) {
        let now = Instant::now();
        let mut i = 0;
        while i < st.idle.len() {
            if st.idle[i].stale(now) {
                let idle = st.idle.remove(i);
                Self::uncount(st, &idle.destination);
                close.push(idle.conn);
            } else {
                i += 1;
            }
        }
    }

    fn uncount(st: &mut State<C>, destination: &str) {
        st.total = st.total.saturating_sub(1);
        if let Some(n) = st.per_destination.get_mut(destination) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.per_destination.remove(destination);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn an_idle_connection_is_taken_by_its_destination_and_address_only() {
        let pool: Pool<u32> = Pool::new(10, 10);
        let mut close = Vec::new();
        pool.reserve("a.example", &mut close);
        pool.put(Idle::new("a.example", addr(25), 7, Instant::now(), 1));
        assert!(pool.take("b.example", addr(25), &mut close).is_none());
        assert!(pool.take("a.example", addr(26), &mut close).is_none());
        let got = pool.take("a.example", addr(25), &mut close).expect("idle");
        assert_eq!((got.conn, got.uses), (7, 1));
        assert_eq!(pool.open("a.example"), (1, 1), "still counted while in use");
        pool.release("a.example");
        assert_eq!(pool.open("a.example"), (0, 0));
        assert!(close.is_empty());
    }

    #[test]
    fn a_full_destination_closes_its_idle_connection_to_open_another() {
        let pool: Pool<u32> = Pool::new(10, 1);
        let mut close = Vec::new();
        pool.reserve("a.example", &mut close);
        pool.put(Idle::new("a.example", addr(25), 1, Instant::now(), 1));
        pool.reserve("a.example", &mut close);
        assert_eq!(close, [1]);
        assert_eq!(pool.open("a.example"), (1, 1));
    }

    #[test]
    fn a_full_pool_closes_the_oldest_idle_connection() {
        let pool: Pool<u32> = Pool::new(2, 5);
        let mut close = Vec::new();
        for (d, c) in [("a.example", 1), ("b.example", 2)] {
            pool.reserve(d, &mut close);
            pool.put(Idle::new(d, addr(25), c, Instant::now(), 1));
        }
        pool.reserve("c.example", &mut close);
        assert_eq!(close, [1]);
        assert_eq!(pool.open("c.example"), (2, 1));
        assert_eq!(pool.drain(), [2]);
        assert_eq!(pool.open("b.example"), (1, 0));
    }

    #[test]
    fn worn_connections_are_not_reused() {
        let pool: Pool<u32> = Pool::new(10, 10);
        let mut close = Vec::new();
        pool.reserve("a.example", &mut close);
        pool.put(Idle::new(
            "a.example",
            addr(25),
            1,
            Instant::now(),
            USES_MAX,
        ));
        assert!(pool.take("a.example", addr(25), &mut close).is_none());
        assert_eq!(close, [1]);
        assert_eq!(pool.open("a.example"), (0, 0));
    }

    #[test]
    fn a_worker_waits_for_a_busy_destination_and_never_exceeds_its_limit() {
        let pool: Arc<Pool<u32>> = Arc::new(Pool::new(100, 2));
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (pool, busy, most) = (pool.clone(), busy.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let mut close = Vec::new();
                        pool.reserve("a.example", &mut close);
                        let n = busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        most.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                        busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        pool.release("a.example");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("worker");
        }
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 2);
        assert_eq!(pool.open("a.example"), (0, 0));
    }
}
