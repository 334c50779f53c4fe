//! The one place a local submission enters the spool. Both mxa-sendmail
//! (when it may write the spool) and mxa-postdrop (when it may not) call
//! [`inject_local`], so the `Received:` line naming the submitting uid is
//! always written by the process that knows the uid for certain.

use std::io::Write;

use mxa_spool::{Envelope, QueueId, Spool};

use crate::Failure;

/// Queues `message` (LF line ends, header already completed) for
/// `envelope`, prepending the trace line. `uid` is the real uid of the
/// submitter. Returns once the message is durable.
pub fn inject_local(
    spool: &Spool,
    hostname: &str,
    uid: u32,
    envelope: &mut Envelope,
    message: &[u8],
) -> Result<QueueId, Failure> {
    let mut inj = spool.begin()?;
    let id = inj.id().clone();
    let now = mxa_spool::now();
    // RFC 5321 §4.4 leaves the form of a local submission's trace to us;
    // this is Postfix's ("by HOST (…, from userid N) id ID; DATE").
    let received = format!(
        "Received: by {hostname} (mxa-sendmail, from userid {uid})\n\tid {id}; {}\n",
        mxa_message::rfc5322_date(now)
    );
    let io = |e: std::io::Error| {
        Failure::from(mxa_spool::Error::Io {
            op: "write",
            path: spool.root().join("tmp"),
            source: e,
        })
    };
    inj.write_all(received.as_bytes()).map_err(io)?;
    inj.write_all(message).map_err(io)?;
    envelope.created = now;
    envelope.origin = Some(format!("local uid={uid}"));
    Ok(inj.commit(envelope)?)
}
