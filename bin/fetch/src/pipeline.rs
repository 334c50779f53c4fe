//! Deliveries in flight. An MDA runs one message at a time, in order, as
//! Postfix runs it (so "75 on the 10th message" stops the run right
//! there); a Maildir or the spool take up to [`PARALLEL`] messages at once
//! on blocking threads, so that their fsyncs overlap with each other and
//! with the network. Results are taken in the order the messages came.

use std::collections::VecDeque;
use std::sync::Arc;

use mxa_runner::mda::Outcome;
use tokio::task::JoinHandle;

use crate::deliver::Deliverer;

/// In-process deliveries at once: enough to keep a disk's queue busy
/// (each waits on two fsyncs), few enough to bound memory to a few
/// messages.
pub const PARALLEL: usize = 4;

/// Deliveries started and not yet taken, each with its key (a POP3 index,
/// an IMAP UID).
#[derive(Debug)]
pub struct Pipeline<K> {
    deliverer: Arc<Deliverer>,
    received: Arc<[u8]>,
    in_flight: VecDeque<(K, JoinHandle<Outcome>)>,
    max: usize,
}

impl<K> Pipeline<K> {
    /// Deliveries through `deliverer`, each with `received` on top.
    pub fn new(deliverer: Arc<Deliverer>, received: Vec<u8>) -> Pipeline<K> {
        let max = if deliverer.is_in_process() {
            PARALLEL
        } else {
            1
        };
        Pipeline {
            deliverer,
            received: received.into(),
            in_flight: VecDeque::new(),
            max,
        }
    }

    /// Starts delivering `msg`; when that fills the pipeline, waits for
    /// the oldest delivery and returns it.
    pub async fn push(&mut self, key: K, msg: Vec<u8>) -> Option<(K, Outcome)> {
        if self.max == 1 {
            return Some((key, self.deliverer.deliver(&self.received, &msg)));
        }
        let (d, r) = (self.deliverer.clone(), self.received.clone());
        let h = tokio::task::spawn_blocking(move || d.deliver(&r, &msg));
        self.in_flight.push_back((key, h));
        if self.in_flight.len() >= self.max {
            self.pop().await
        } else {
            None
        }
    }

    /// Waits for the oldest delivery in flight, if any.
    pub async fn pop(&mut self) -> Option<(K, Outcome)> {
        let (key, h) = self.in_flight.pop_front()?;
        let outcome = h
            .await
            .unwrap_or_else(|e| Outcome::Deferred(format!("delivery thread: {e}")));
        Some((key, outcome))
    }
}
