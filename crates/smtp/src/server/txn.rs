//! The transaction verbs (MAIL, RCPT, DATA, BDAT) and the reading of the
//! message body that follows DATA and BDAT.

use std::borrow::Cow;

use smtp_proto::{MailFrom, RcptTo};

use super::codes;
use super::input::{Body, Scanned};
use super::verbs::Answer;
use super::{Action, Envelope, Phase, Recipient, Session, Txn};
use crate::reply::Reply;

/// MAIL parameters we do not offer, as smtp-proto flags (BINARYMIME,
/// REQUIRETLS, CONPERM, DELIVERBY).
const MAIL_UNSUPPORTED: u64 = smtp_proto::MAIL_BODY_BINARYMIME
    | smtp_proto::MAIL_REQUIRETLS
    | smtp_proto::MAIL_CONPERM
    | smtp_proto::MAIL_BY_NOTIFY
    | smtp_proto::MAIL_BY_RETURN
    | smtp_proto::MAIL_BY_TRACE;

/// RCPT parameters we do not offer (CONNEG, RRVS).
const RCPT_UNSUPPORTED: u64 =
    smtp_proto::RCPT_CONNEG | smtp_proto::RCPT_RRVS_REJECT | smtp_proto::RCPT_RRVS_CONTINUE;

impl Session {
    /// MAIL (RFC 5321 §4.1.1.2): after EHLO or HELO, outside a
    /// transaction, after AUTH where it is required; then the parameters.
    pub(super) fn mail(&mut self, from: &MailFrom<Cow<'_, str>>) -> Answer {
        let Some((helo, esmtp)) = &self.helo else {
            return codes::BAD_SEQUENCE.with("send EHLO first").into();
        };
        if self.txn.is_some() {
            return codes::BAD_SEQUENCE.with("sender already given").into();
        }
        if self.config.auth_required && self.user.is_none() {
            return codes::AUTH_REQUIRED.into();
        }
        if let (Some(user), Some(owns)) = (&self.user, &self.owns)
            && !from.address.is_empty()
            && !(owns.0)(user, &from.address)
        {
            return codes::SENDER_NOT_OWNED
                .with(format!("<{}> is not {user}'s", from.address))
                .into();
        }
        let unsupported = from.flags & MAIL_UNSUPPORTED != 0
            || from.trans_id.is_some()
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.by != 0
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0;
        let any = from.flags != 0 || from.size != 0 || from.env_id.is_some() || from.auth.is_some();
        if unsupported || (any && !esmtp) {
            return codes::PARAM_UNSUPPORTED.into();
        }
        let size = from.size as u64;
        if size > self.config.max_message_size {
            return codes::TOO_BIG.into();
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !from.address.is_ascii() {
            return codes::NEEDS_SMTPUTF8.into();
        }
        let ret = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
            Some("FULL".to_string())
        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Some("HDRS".to_string())
        } else {
            None
        };
        let env = Envelope {
            helo: helo.clone(),
            esmtp: *esmtp,
            sender: from.address.to_string(),
            declared_size: (size > 0).then_some(size),
            eightbit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            smtputf8,
            ret,
            envid: from.env_id.as_ref().map(|e| e.to_string()),
            ..Envelope::default()
        };
        self.txn = Some(Txn {
            env,
            body: None,
            aborted: false,
        });
        codes::SENDER_OK.into()
    }

    /// RCPT (RFC 5321 §4.1.1.3): after MAIL, before the body, within
    /// `max_recipients`; then the caller decides on the address.
    pub(super) fn rcpt(&mut self, to: &RcptTo<Cow<'_, str>>, line: &[u8]) -> Answer {
        let Some(txn) = &self.txn else {
            return codes::BAD_SEQUENCE.with("need MAIL first").into();
        };
        if txn.body.is_some() {
            return codes::BAD_SEQUENCE.into();
        }
        if txn.env.recipients.len() >= self.config.max_recipients {
            return codes::TOO_MANY_RECIPIENTS.into();
        }
        // smtp-proto gives "" for both <> and <postmaster> (§4.5.1).
        let address = if !to.address.is_empty() {
            to.address.to_string()
        } else if is_postmaster(line) {
            "postmaster".to_string()
        } else {
            return codes::BAD_RECIPIENT.into();
        };
        if !txn.env.smtputf8 && !address.is_ascii() {
            return codes::NEEDS_SMTPUTF8.into();
        }
        let esmtp = self.helo.as_ref().is_some_and(|(_, e)| *e);
        if to.flags & RCPT_UNSUPPORTED != 0
            || to.rrvs != 0
            || (!esmtp && (to.flags != 0 || to.orcpt.is_some()))
        {
            return codes::PARAM_UNSUPPORTED.into();
        }
        self.phase = Phase::RecipientCheck(Recipient {
            address: address.clone(),
            local: false,
            notify: notify(to.flags),
            orcpt: to.orcpt.as_ref().map(|o| format!("rfc822;{o}")),
        });
        Answer::Ask(Action::CheckRecipient(address))
    }

    /// DATA (RFC 5321 §4.1.1.4): after at least one accepted RCPT, not
    /// after BDAT.
    pub(super) fn data_verb(&mut self) -> Answer {
        let (bare_lf, max) = (self.config.bare_lf, self.config.max_message_size);
        let Some(txn) = &mut self.txn else {
            return codes::BAD_SEQUENCE.with("need MAIL first").into();
        };
        if txn.body.is_some() {
            return codes::BAD_SEQUENCE.with("BDAT under way").into();
        }
        if txn.env.recipients.is_empty() {
            return codes::NO_RECIPIENTS.into();
        }
        txn.body = Some(Body::new(true, bare_lf, max));
        self.phase = Phase::Data;
        let envelope = self.transaction().unwrap_or_default();
        Answer::Then(codes::START_DATA.reply(), Action::MessageBegin { envelope })
    }

    /// BDAT (RFC 3030 §2): the chunk's octets are read whatever the
    /// verdict, so that none of them is taken for a command; a refused
    /// chunk is answered once read.
    pub(super) fn bdat_verb(&mut self, size: u64, last: bool) -> Answer {
        let refuse = self.bdat_refusal();
        if refuse.is_none()
            && let Some(txn) = &mut self.txn
            && txn.body.is_none()
        {
            let (bare_lf, max) = (self.config.bare_lf, self.config.max_message_size);
            txn.body = Some(Body::new(false, bare_lf, max));
            let envelope = self.transaction().unwrap_or_default();
            self.actions.push_back(Action::MessageBegin { envelope });
        }
        self.phase = Phase::Bdat {
            size,
            left: size,
            last,
            refuse,
        };
        Answer::Nothing
    }

    /// BDAT's preconditions: EHLO (CHUNKING is an extension), a sender and
    /// at least one recipient.
    fn bdat_refusal(&self) -> Option<Reply> {
        let esmtp = self.helo.as_ref().is_some_and(|(_, e)| *e);
        match &self.txn {
            _ if !esmtp => Some(codes::BAD_SEQUENCE.with("send EHLO first")),
            None => Some(codes::BAD_SEQUENCE.with("need MAIL first")),
            Some(txn) if txn.env.recipients.is_empty() => Some(codes::NO_RECIPIENTS.reply()),
            Some(_) => None,
        }
    }

    /// Read DATA body octets; false when waiting for more or for the caller.
    pub(super) fn data(&mut self) -> bool {
        let Some(body) = self.txn.as_mut().and_then(|t| t.body.as_mut()) else {
            self.phase = Phase::Command;
            return true;
        };
        let mut out = Vec::new();
        let (used, stop) = body.scan(&self.input, &mut out);
        let too_big = body.too_big;
        self.input.drain(..used);
        if !out.is_empty() {
            self.actions.push_back(Action::MessageData(out));
        }
        if too_big {
            self.abort_message();
        }
        match stop {
            Scanned::More => false,
            Scanned::Refused => {
                self.fatal(codes::BAD_CONTENT.reply());
                false
            }
            Scanned::End => self.end_message(),
        }
    }

    /// Read BDAT chunk octets; false when waiting for more or for the caller.
    pub(super) fn bdat(&mut self) -> bool {
        let Phase::Bdat { left, refuse, .. } = &mut self.phase else {
            return false;
        };
        let take = usize::try_from(*left).map_or(self.input.len(), |l| l.min(self.input.len()));
        if *left > 0 && take == 0 {
            return false;
        }
        *left -= take as u64;
        let chunk_done = *left == 0;
        let mut stop = Scanned::More;
        if refuse.is_none()
            && let Some(body) = self.txn.as_mut().and_then(|t| t.body.as_mut())
        {
            let mut out = Vec::new();
            stop = body.scan(&self.input[..take], &mut out).1;
            if !out.is_empty() {
                self.actions.push_back(Action::MessageData(out));
            }
        }
        self.input.drain(..take);
        if stop == Scanned::Refused {
            self.fatal(codes::BAD_CONTENT.reply());
            return false;
        }
        if !chunk_done {
            return false;
        }
        self.chunk_done()
    }

    /// A whole BDAT chunk is read: answer it.
    fn chunk_done(&mut self) -> bool {
        let Phase::Bdat {
            size, last, refuse, ..
        } = std::mem::replace(&mut self.phase, Phase::Command)
        else {
            return true;
        };
        if let Some(reply) = refuse {
            self.reply(reply);
            return true;
        }
        let body = self.txn.as_ref().and_then(|t| t.body.as_ref());
        if body.is_some_and(|b| b.too_big) {
            self.abort_message();
            return self.end_message();
        }
        if !last {
            self.reply(codes::CHUNK_OK.and(size));
            return true;
        }
        if body.is_some_and(|b| b.finish() == Scanned::Refused) {
            self.fatal(codes::BAD_CONTENT.reply());
            return false;
        }
        self.end_message()
    }

    /// The body is complete: refuse it if too big, else hand it over.
    fn end_message(&mut self) -> bool {
        let Some(mut txn) = self.txn.take() else {
            self.phase = Phase::Command;
            return true;
        };
        let Some(body) = txn.body.take() else {
            self.phase = Phase::Command;
            return true;
        };
        if body.too_big {
            self.phase = Phase::Command;
            self.reply(codes::TOO_BIG.reply());
            return true;
        }
        txn.env.size = body.size;
        txn.env.auth_user = self.user.clone();
        txn.env.tls = self.tls.clone();
        self.phase = Phase::Storing;
        self.actions
            .push_back(Action::MessageEnd { envelope: txn.env });
        false
    }
}

/// RCPT TO:<postmaster> in any case (RFC 5321 §4.5.1).
fn is_postmaster(line: &[u8]) -> bool {
    let line = line.to_ascii_lowercase();
    line.windows(12).any(|w| w == b"<postmaster>")
}

/// The NOTIFY value from smtp-proto's flags.
fn notify(flags: u64) -> Option<String> {
    if flags & smtp_proto::RCPT_NOTIFY_NEVER != 0 {
        return Some("NEVER".into());
    }
    let words: Vec<&str> = [
        (smtp_proto::RCPT_NOTIFY_SUCCESS, "SUCCESS"),
        (smtp_proto::RCPT_NOTIFY_FAILURE, "FAILURE"),
        (smtp_proto::RCPT_NOTIFY_DELAY, "DELAY"),
    ]
    .into_iter()
    .filter(|(flag, _)| flags & flag != 0)
    .map(|(_, word)| word)
    .collect();
    (!words.is_empty()).then(|| words.join(","))
}
