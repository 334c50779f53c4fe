//! Command lines to verbs: syntax by smtp-proto, then one function per
//! verb that checks its preconditions before changing any state, and
//! answers. The transaction verbs are in `txn.rs`, AUTH in `auth.rs`.

use smtp_proto::{Error as SyntaxError, Request};

use super::codes::{self, Code};
use super::input::LineError;
use super::{Action, Phase, Session};
use crate::reply::Reply;

/// What a verb answers; [`Session::answer`] queues it.
#[derive(Debug)]
pub(super) enum Answer {
    /// A reply.
    Reply(Reply),
    /// A reply, then an action (354 then MessageBegin, 220 then StartTls).
    Then(Reply, Action),
    /// An action for the caller, whose outcome brings the reply.
    Ask(Action),
    /// Nothing yet (a BDAT chunk is read first).
    Nothing,
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer::Reply(reply)
    }
}

impl From<Code> for Answer {
    fn from(code: Code) -> Answer {
        Answer::Reply(code.reply())
    }
}

impl Session {
    /// Handle one line of input in a line phase; false when none is whole.
    pub(super) fn line(&mut self) -> bool {
        let (max, bare_lf) = (self.config.max_line, self.config.bare_lf);
        let Some(line) = self.lines.next(&mut self.input, max, bare_lf) else {
            return false;
        };
        // Whatever was expected, the next line is a command again unless
        // the handler says otherwise.
        let phase = std::mem::replace(&mut self.phase, Phase::Command);
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                self.reply(match e {
                    LineError::TooLong => codes::LINE_TOO_LONG.reply(),
                    LineError::BareLf => codes::BARE_LF.reply(),
                    LineError::BareCr => codes::BARE_CR.reply(),
                });
                return true;
            }
        };
        let answer = match phase {
            Phase::AuthPlain => self.plain_response(&line),
            Phase::AuthLoginUser => self.login_user(&line),
            Phase::AuthLoginPassword(user) => self.login_password(user, &line),
            _ => self.command(&line),
        };
        self.answer(answer);
        true
    }

    /// Queue what a verb answered.
    fn answer(&mut self, answer: Answer) {
        match answer {
            Answer::Reply(reply) => self.reply(reply),
            Answer::Then(reply, action) => {
                self.reply(reply);
                self.actions.push_back(action);
            }
            Answer::Ask(action) => self.actions.push_back(action),
            Answer::Nothing => {}
        }
    }

    /// Parse a command line and run its verb.
    fn command(&mut self, line: &[u8]) -> Answer {
        let mut wire = Vec::with_capacity(line.len() + 2);
        wire.extend_from_slice(line);
        wire.extend_from_slice(b"\r\n");
        let request = match Request::parse(&mut wire.iter()) {
            Ok(request) => request,
            Err(e) => return syntax_error(e).into(),
        };
        match request {
            Request::Ehlo { host } => self.ehlo(&host, true),
            Request::Helo { host } => self.ehlo(&host, false),
            Request::Mail { from } => self.mail(&from),
            Request::Rcpt { to } => self.rcpt(&to, line),
            Request::Data => self.data_verb(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat_verb(chunk_size as u64, is_last),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, &initial_response),
            Request::StartTls => self.starttls(),
            Request::Rset => self.rset(),
            Request::Noop { .. } => codes::OK.into(),
            Request::Vrfy { .. } => codes::VRFY.into(),
            Request::Help { .. } => codes::HELP.into(),
            Request::Quit => self.quit(),
            Request::Lhlo { .. }
            | Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => codes::NOT_IMPLEMENTED.into(),
        }
    }

    /// EHLO and HELO (RFC 5321 §4.1.1.1): no precondition; both reset the
    /// transaction (§4.1.4). HELO's reply lists no extension.
    fn ehlo(&mut self, host: &str, esmtp: bool) -> Answer {
        self.abort_message();
        self.txn = None;
        self.helo = Some((host.to_string(), esmtp));
        let mut lines = vec![self.config.hostname.clone()];
        if esmtp {
            lines.extend(self.capabilities());
        }
        Reply { code: 250, lines }.into()
    }

    /// The EHLO keywords offered now.
    fn capabilities(&self) -> Vec<String> {
        let mut caps = vec![
            "PIPELINING".to_string(),
            format!("SIZE {}", self.config.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if self.config.tls_available && self.tls.is_none() {
            caps.push("STARTTLS".into());
        }
        if self.auth_usable() && self.user.is_none() {
            caps.push("AUTH PLAIN LOGIN".into());
        }
        caps.extend(["CHUNKING".into(), "DSN".into()]);
        caps
    }

    /// STARTTLS (RFC 3207 §4): offered, not on yet, outside a transaction.
    /// Anything the client pipelined after it is dropped (§4.2).
    fn starttls(&mut self) -> Answer {
        if self.tls.is_some() {
            return codes::BAD_SEQUENCE.with("TLS already active").into();
        }
        if !self.config.tls_available {
            return codes::NOT_IMPLEMENTED.into();
        }
        if self.txn.is_some() {
            return codes::BAD_SEQUENCE.with("transaction under way").into();
        }
        self.input.clear();
        self.phase = Phase::Tls;
        Answer::Then(codes::READY_TLS.reply(), Action::StartTls)
    }

    /// RSET (RFC 5321 §4.1.1.5): always allowed.
    fn rset(&mut self) -> Answer {
        self.abort_message();
        self.txn = None;
        codes::OK.into()
    }

    /// QUIT (RFC 5321 §4.1.1.10): always allowed; a transaction not ended
    /// is dropped.
    fn quit(&mut self) -> Answer {
        self.abort_message();
        self.txn = None;
        self.phase = Phase::Closed;
        Answer::Then(codes::BYE.reply(), Action::Close)
    }
}

/// The reply to a line smtp-proto cannot parse.
fn syntax_error(e: SyntaxError) -> Reply {
    match e {
        SyntaxError::UnknownCommand => codes::UNKNOWN_COMMAND.reply(),
        SyntaxError::InvalidSenderAddress => codes::BAD_SENDER.reply(),
        SyntaxError::InvalidRecipientAddress => codes::BAD_RECIPIENT.reply(),
        SyntaxError::SyntaxError { syntax } => codes::SYNTAX.with(syntax),
        SyntaxError::InvalidParameter { param } => codes::SYNTAX.with(param),
        SyntaxError::UnsupportedParameter { param } => codes::PARAM_UNSUPPORTED.with(param),
        SyntaxError::NeedsMoreData { .. }
        | SyntaxError::ResponseTooLong
        | SyntaxError::InvalidResponse { .. } => codes::SYNTAX.reply(),
    }
}
