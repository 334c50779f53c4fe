//! Writing one message into the spool as it arrives: the `Received:` line
//! first (it names the queue id, known once the spool file exists), then
//! the body with CRLF turned into the spool's LF, then the commit, which
//! fsyncs and links (spool invariant 1) off the async threads. A spool
//! that cannot be written (disk full, permissions) makes the message
//! fail with a temporary error at its end, never lose it silently.

use std::io::Write;

use mxa_smtp::server::Envelope as SmtpEnvelope;
use mxa_spool::{Envelope, Injection, QueueId, Recipient, Spool};

/// A message being received.
#[derive(Debug)]
pub struct Store {
    inj: Option<Injection<'static>>,
    /// The first error; the rest of the message is read and dropped.
    error: Option<String>,
    /// The last chunk ended with CR: its LF may start the next one.
    pending_cr: bool,
}

impl Store {
    /// Starts a message whose `Received:` line `received(id)` makes.
    pub fn begin(spool: &'static Spool, received: impl FnOnce(&QueueId) -> String) -> Store {
        match spool.begin() {
            Ok(mut inj) => {
                let line = received(inj.id());
                let error = inj.write_all(line.as_bytes()).err().map(|e| e.to_string());
                Store {
                    inj: Some(inj),
                    error,
                    pending_cr: false,
                }
            }
            Err(e) => Store {
                inj: None,
                error: Some(e.to_string()),
                pending_cr: false,
            },
        }
    }

    /// The id the message will have, when the spool file exists.
    #[cfg(test)]
    pub fn id(&self) -> Option<&QueueId> {
        self.inj.as_ref().map(Injection::id)
    }

    /// Appends body octets (CRLF line ends, as the session hands them).
    pub fn write(&mut self, crlf: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let Some(inj) = &mut self.inj else { return };
        let mut out = Vec::with_capacity(crlf.len() + 1);
        let mut bytes = crlf;
        if self.pending_cr {
            self.pending_cr = false;
            if bytes.first() != Some(&b'\n') {
                out.push(b'\r');
            }
        }
        if bytes.last() == Some(&b'\r') {
            self.pending_cr = true;
            bytes = &bytes[..bytes.len() - 1];
        }
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&b| b == b'\r') {
            out.extend_from_slice(&rest[..i]);
            if rest.get(i + 1) != Some(&b'\n') {
                out.push(b'\r');
            }
            rest = &rest[i + 1..];
        }
        out.extend_from_slice(rest);
        if let Err(e) = inj.write_all(&out) {
            self.error = Some(e.to_string());
        }
    }

    /// Makes the message durable and queued for `envelope`; Ok only once
    /// it is on disk. Blocking: run it off the async threads.
    pub fn commit(mut self, envelope: &Envelope) -> Result<QueueId, String> {
        if self.pending_cr {
            self.pending_cr = false;
            self.write(b"");
            if let Some(inj) = &mut self.inj
                && let Err(e) = inj.write_all(b"\r")
            {
                self.error = Some(e.to_string());
            }
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        let inj = self.inj.ok_or("no spool file")?;
        inj.commit(envelope).map_err(|e| e.to_string())
    }
}

/// The spool's envelope for what the session accepted. `origin` says where
/// it came from (shown by `mxa-queue show`).
pub fn envelope(env: &SmtpEnvelope, origin: String) -> Envelope {
    let lower = |s: &Option<String>| s.as_ref().map(|v| v.to_ascii_lowercase());
    let mut e = Envelope::new(env.sender.clone(), Vec::new());
    e.origin = Some(origin);
    e.ret = lower(&env.ret);
    e.envid = env.envid.clone();
    e.body = env.eightbit.then(|| "8bitmime".to_string());
    e.smtputf8 = env.smtputf8;
    e.recipients = env
        .recipients
        .iter()
        .map(|r| {
            let mut x = Recipient::new(r.address.clone());
            x.notify = lower(&r.notify);
            x.orcpt = r.orcpt.clone();
            x
        })
        .collect();
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool() -> (&'static Spool, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool: &'static Spool = Box::leak(Box::new(Spool::new(dir.path().join("spool"))));
        (spool, dir)
    }

    #[test]
    fn crlf_becomes_lf_across_chunks() {
        let (spool, _dir) = spool();
        let mut s = Store::begin(spool, |id| format!("Received: x id {id}\n"));
        let id = s.id().expect("id").clone();
        for chunk in [
            &b"Subject: a\r"[..],
            b"\n\r\nline one\r\nline\rtwo\r",
            b"\n",
        ] {
            s.write(chunk);
        }
        let env = Envelope::new("a@example.org", vec!["b@example.org".to_string()]);
        let got = s.commit(&env).expect("commit");
        assert_eq!(got, id);
        let data = std::fs::read(spool.data_path(&id)).expect("data");
        assert_eq!(
            String::from_utf8_lossy(&data),
            format!("Received: x id {id}\nSubject: a\n\nline one\nline\rtwo\n")
        );
    }

    #[test]
    fn a_spool_that_cannot_be_written_fails_the_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("spool"), "a file, not a folder").expect("write");
        let spool: &'static Spool = Box::leak(Box::new(Spool::new(dir.path().join("spool"))));
        let mut s = Store::begin(spool, |_| String::new());
        s.write(b"x\r\n");
        let env = Envelope::new("", vec!["b@example.org".to_string()]);
        assert!(s.commit(&env).is_err());
    }
}
