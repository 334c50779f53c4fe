//! mxa-smtp: the SMTP client and server as state machines with no I/O, and
//! the reply types they share.
//!
//! Main types: [`reply::Reply`] (a server reply: code and text lines) and
//! [`reply::Parser`] (bytes in, replies out, bounded);
//! [`client::Client`] (one SMTP connection, driven by replies, answering with
//! a [`client::Step`]), [`client::Envelope`] (one transaction),
//! [`client::Outcome`] (one [`client::RcptResult`] per recipient) and
//! [`client::dot_stuff`] (a message to its wire form). The only error type
//! is [`ReplyError`]: a reply that cannot be parsed. Everything that goes
//! wrong in a session is expressed as a [`reply::Reply`] per recipient —
//! the server's, or a synthetic one with an RFC 3463 code when the decision
//! is ours — because that is what a bounce or a log line needs.
//!
//! The caller (the queue runner) owns the socket and TLS, and runs this loop:
//!
//! ```text
//! step = client.start(envelope)                // before or after the greeting
//! loop match step:
//!   Send(bytes)  -> write bytes; step = Wait
//!   Wait         -> read; parser.feed(bytes);
//!                   for each reply: step = client.on_reply(reply)   (stop at a step other than Wait)
//!   StartTls     -> TLS handshake; step = client.tls_established()
//!   SendData     -> write dot_stuff(message) (it ends with ".\r\n"); step = Wait
//!   Done(outcome)-> record it; step = client.start(next) or client.quit()
//!   Close        -> close the socket; stop
//! on a read/write error or timeout: outcome = client.connection_error(why)
//! ```
//!
//! The server side is [`server::Session`] (client bytes and I/O-layer
//! events in, [`server::Action`]s out; see its module for the loop), with
//! its policy in [`server::Config`] and every reply in [`server::codes`].
//! Command syntax is parsed by the `smtp-proto` crate; line framing, the
//! DATA body (the SMTP smuggling defences) and the verbs are ours.
//!
//! Standards: RFC 5321 (SMTP), RFC 3207 (STARTTLS), RFC 2920 (PIPELINING),
//! RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 and RFC 6533 (SMTPUTF8),
//! RFC 3461 (DSN parameters, xtext), RFC 4954 and RFC 4616 (AUTH, PLAIN),
//! RFC 3463 (enhanced status codes), RFC 4648 (base64).

pub mod client;
pub mod reply;
pub mod server;

pub use reply::ReplyError;
