//! One mail transaction (RFC 5321 §3.3): pre-flight checks, MAIL with its
//! parameters (RFC 1870, 6152, 6531, 3461), RCPT, DATA, the final reply;
//! pipelined (RFC 2920) when the server offers it.

use std::collections::VecDeque;

use super::{Capabilities, Client, Envelope, Outcome, RcptResult, Step, encode, synthetic};
use crate::reply::Reply;

/// The transaction's state with one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// No reply yet.
    Open,
    /// RCPT got 2xx; the reply after the message decides.
    Accepted,
    /// Decided.
    Final(RcptResult),
}

/// The replies still due, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    Rset,
    Mail,
    Rcpt(usize),
    Data,
    /// The final reply after the message.
    Message,
    /// The reply after the ".\r\n" sent to a 354 that had no recipient.
    StrayDot,
}

/// A transaction in progress.
#[derive(Debug)]
pub(super) struct Txn {
    env: Envelope,
    slots: Vec<Slot>,
    pub(super) pending: VecDeque<Expect>,
    /// MAIL was sent: a transaction may be open on the server.
    mail_sent: bool,
    /// MAIL was refused: pipelined replies still due are only consumed.
    mail_refused: bool,
    /// The final reply after the message arrived: nothing open on the server.
    complete: bool,
}

impl Txn {
    pub(super) fn new(env: Envelope) -> Txn {
        let slots = vec![Slot::Open; env.recipients.len()];
        Txn {
            env,
            slots,
            pending: VecDeque::new(),
            mail_sent: false,
            mail_refused: false,
            complete: false,
        }
    }

    /// Every recipient not yet final gets `reason` (4xx defers, 5xx fails).
    pub(super) fn abandon(mut self, reason: &Reply) -> Outcome {
        self.refuse_open(reason);
        self.outcome()
    }

    fn outcome(self) -> Outcome {
        let results = self.slots.into_iter().map(|slot| match slot {
            Slot::Final(result) => result,
            // Not reached: every path to Done decides every slot.
            Slot::Open | Slot::Accepted => {
                RcptResult::Deferred(synthetic::internal("recipient left without a reply"))
            }
        });
        Outcome {
            results: results.collect(),
        }
    }

    /// Open and accepted recipients get the refusal `r`.
    fn refuse_open(&mut self, r: &Reply) {
        for slot in &mut self.slots {
            if !matches!(slot, Slot::Final(_)) {
                *slot = Slot::Final(RcptResult::refusal(r));
            }
        }
    }

    /// The final reply after the message decides for every accepted
    /// recipient (RFC 5321 §4.1.1.4); the server's transaction is over.
    fn on_message(&mut self, r: &Reply) {
        self.complete = true;
        for slot in &mut self.slots {
            if *slot == Slot::Accepted {
                let result = if r.class() == 2 {
                    RcptResult::Delivered(r.clone())
                } else {
                    RcptResult::refusal(r)
                };
                *slot = Slot::Final(result);
            }
        }
    }

    fn next_open(&self, from: usize) -> Option<usize> {
        (from..self.slots.len()).find(|&i| self.slots[i] == Slot::Open)
    }

    fn any_accepted(&self) -> bool {
        self.slots.contains(&Slot::Accepted)
    }

    /// What can be decided before sending anything: addresses and
    /// parameters that cannot go into a command, SMTPUTF8 the server lacks
    /// (RFC 6531 §3.2: no downgrade), a message over the declared SIZE
    /// (RFC 1870 §6.1). Safe to run twice.
    fn preflight(&mut self, caps: &Capabilities) {
        let env = &self.env;
        let for_all = if !encode::is_address(&env.sender) {
            Some(synthetic::bad_sender())
        } else if env.ret.as_deref().is_some_and(|r| encode::ret(r).is_none()) {
            Some(synthetic::bad_parameter("RET"))
        } else if env.envid.as_deref().is_some_and(encode::has_control) {
            Some(synthetic::bad_parameter("ENVID"))
        } else if (env.smtputf8 || !env.sender.is_ascii()) && !caps.smtputf8 {
            Some(synthetic::smtputf8_unsupported())
        } else {
            match (caps.size, env.size) {
                (Some(limit), Some(size)) if limit > 0 && size > limit => {
                    Some(synthetic::too_big(limit))
                }
                _ => None,
            }
        };
        if let Some(reason) = for_all {
            self.refuse_open(&reason);
            return;
        }
        for i in 0..self.slots.len() {
            if self.slots[i] == Slot::Open
                && let Some(reason) = self.check_recipient(i, caps)
            {
                self.slots[i] = Slot::Final(RcptResult::Failed(reason));
            }
        }
    }

    fn check_recipient(&self, i: usize, caps: &Capabilities) -> Option<Reply> {
        let rcpt = &self.env.recipients[i];
        if rcpt.is_empty() || !encode::is_address(rcpt) {
            return Some(synthetic::bad_recipient());
        }
        if self.notify(i).is_some_and(|n| encode::notify(n).is_none()) {
            return Some(synthetic::bad_parameter("NOTIFY"));
        }
        if self.orcpt(i).is_some_and(encode::has_control) {
            return Some(synthetic::bad_parameter("ORCPT"));
        }
        (!rcpt.is_ascii() && !caps.smtputf8).then(synthetic::smtputf8_unsupported)
    }

    fn notify(&self, i: usize) -> Option<&str> {
        self.env.notify.get(i).and_then(Option::as_deref)
    }

    fn orcpt(&self, i: usize) -> Option<&str> {
        self.env.orcpt.get(i).and_then(Option::as_deref)
    }

    /// SMTPUTF8 on MAIL: the message or an address still to be sent needs it.
    fn needs_smtputf8(&self) -> bool {
        let open_utf8 =
            |(i, slot): (usize, &Slot)| *slot == Slot::Open && !self.env.recipients[i].is_ascii();
        self.env.smtputf8
            || !self.env.sender.is_ascii()
            || self.slots.iter().enumerate().any(open_utf8)
    }

    fn mail_command(&self, caps: &Capabilities) -> String {
        let env = &self.env;
        let mut cmd = format!("MAIL FROM:<{}>", env.sender);
        if let (Some(_), Some(size)) = (caps.size, env.size) {
            cmd.push_str(&format!(" SIZE={size}"));
        }
        // Without 8BITMIME the message goes as is (RFC 6152 §3 leaves a
        // downgrade to the client; most servers take 8-bit anyway).
        if env.eightbit && caps.eightbitmime {
            cmd.push_str(" BODY=8BITMIME");
        }
        if self.needs_smtputf8() {
            cmd.push_str(" SMTPUTF8");
        }
        if caps.dsn {
            if let Some(ret) = env.ret.as_deref().and_then(encode::ret) {
                cmd.push_str(&format!(" RET={ret}"));
            }
            if let Some(envid) = &env.envid {
                cmd.push_str(&format!(" ENVID={}", encode::xtext(envid)));
            }
        }
        cmd.push_str("\r\n");
        cmd
    }

    fn rcpt_command(&self, i: usize, caps: &Capabilities) -> String {
        let mut cmd = format!("RCPT TO:<{}>", self.env.recipients[i]);
        if caps.dsn {
            if let Some(notify) = self.notify(i).and_then(encode::notify) {
                cmd.push_str(&format!(" NOTIFY={notify}"));
            }
            if let Some(orcpt) = self.orcpt(i) {
                cmd.push_str(&format!(" ORCPT={}", encode::orcpt(orcpt)));
            }
        }
        cmd.push_str("\r\n");
        cmd
    }
}

impl Client {
    /// The session is ready and a transaction waits: RSET if the last one
    /// was aborted, then MAIL (with pipelining: MAIL, every RCPT and DATA
    /// in one write).
    pub(super) fn begin(&mut self) -> Step {
        let Some(txn) = self.txn.as_mut() else {
            return Step::Done(Outcome::default());
        };
        txn.preflight(&self.caps);
        let Some(first) = txn.next_open(0) else {
            return self.finish();
        };
        if std::mem::take(&mut self.needs_rset) {
            txn.pending.push_back(Expect::Rset);
            return Step::Send(b"RSET\r\n".to_vec());
        }
        txn.mail_sent = true;
        let mut out = txn.mail_command(&self.caps);
        txn.pending.push_back(Expect::Mail);
        if self.caps.pipelining {
            for i in first..txn.slots.len() {
                if txn.slots[i] == Slot::Open {
                    out.push_str(&txn.rcpt_command(i, &self.caps));
                    txn.pending.push_back(Expect::Rcpt(i));
                }
            }
            out.push_str("DATA\r\n");
            txn.pending.push_back(Expect::Data);
        }
        Step::Send(out.into_bytes())
    }

    /// A reply during a transaction, matched with the oldest command due.
    pub(super) fn on_txn_reply(&mut self, r: Reply) -> Step {
        let pipelining = self.caps.pipelining;
        let Some(txn) = self.txn.as_mut() else {
            return self.stop(synthetic::unexpected(&r), true);
        };
        let Some(expect) = txn.pending.pop_front() else {
            return self.stop(synthetic::unexpected(&r), true);
        };
        match expect {
            Expect::Rset if r.class() == 2 => self.begin(),
            Expect::Rset => self.stop(synthetic::unexpected(&r), false),
            Expect::Mail if r.class() == 2 => {
                if pipelining {
                    Step::Wait
                } else {
                    self.send_next_rcpt(0)
                }
            }
            Expect::Mail => {
                txn.refuse_open(&r);
                txn.mail_refused = true;
                if txn.pending.is_empty() {
                    self.finish()
                } else {
                    Step::Wait
                }
            }
            Expect::Rcpt(i) => {
                if !txn.mail_refused {
                    let accepted = r.class() == 2;
                    txn.slots[i] = if accepted {
                        Slot::Accepted
                    } else {
                        Slot::Final(RcptResult::refusal(&r))
                    };
                }
                if pipelining {
                    Step::Wait
                } else {
                    self.send_next_rcpt(i + 1)
                }
            }
            Expect::Data => self.on_data(&r),
            Expect::Message => {
                txn.on_message(&r);
                self.finish()
            }
            Expect::StrayDot => self.finish(),
        }
    }

    /// Without pipelining: RCPT for the next recipient from `from` on, else
    /// DATA if one was accepted, else the transaction is over.
    fn send_next_rcpt(&mut self, from: usize) -> Step {
        let Some(txn) = self.txn.as_mut() else {
            return Step::Done(Outcome::default());
        };
        if let Some(i) = txn.next_open(from) {
            txn.pending.push_back(Expect::Rcpt(i));
            return Step::Send(txn.rcpt_command(i, &self.caps).into_bytes());
        }
        if txn.any_accepted() {
            txn.pending.push_back(Expect::Data);
            return Step::Send(b"DATA\r\n".to_vec());
        }
        self.finish()
    }

    /// 354 → the message. A refusal is every accepted recipient's. With
    /// pipelining, DATA is sent even when MAIL or every RCPT fails: its
    /// reply (503, 554) is then ignored, and a broken server's 354 gets an
    /// empty message, ended at once (RFC 2920 §3.1).
    fn on_data(&mut self, r: &Reply) -> Step {
        let Some(txn) = self.txn.as_mut() else {
            return Step::Done(Outcome::default());
        };
        let go = !txn.mail_refused && txn.any_accepted();
        if r.class() == 3 {
            if go {
                txn.pending.push_back(Expect::Message);
                return Step::SendData;
            }
            txn.pending.push_back(Expect::StrayDot);
            return Step::Send(encode::DATA_END.to_vec());
        }
        if go {
            txn.refuse_open(r);
        }
        self.finish()
    }

    /// The transaction is over. RSET will precede the next one if this one
    /// may have left a transaction open on the server.
    fn finish(&mut self) -> Step {
        let Some(txn) = self.txn.take() else {
            return Step::Done(Outcome::default());
        };
        self.needs_rset = txn.mail_sent && !txn.complete;
        Step::Done(txn.outcome())
    }
}
