//! mxa-runner: the queue runner behind `mxa-queue run` and `mxa-queue
//! flush`. It takes what mxa-smtpd and mxa-sendmail queued and gets every
//! recipient delivered, deferred or bounced, never lost.
//!
//! Modules: [`aliases`] (aliases(5) expansion), [`bounce`] (RFC 3464
//! delivery status notifications in plain words), [`schedule`] (back-off),
//! [`mda`] (running the local delivery command), [`pass`] (one pass over
//! the queue), [`pool`] (connection limits and reuse), [`remote`] (SMTP to MX hosts, routes or a relayhost, with
//! mxa-dns and mxa-smtp's client) and [`smtp_out`] (the same, in a child
//! that drops root first).

pub mod aliases;
pub mod bounce;
pub mod deliver_file;
pub mod mda;
pub mod pass;
pub mod pool;
pub mod remote;
pub mod schedule;
pub mod smtp_out;
pub mod tls;

pub use pass::{Mode, Runner, Summary};
