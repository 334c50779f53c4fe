//! The spam filter: an outside classifier (spamc, `bogofilter -p -e`,
//! `rspamc --mime`) reads the message and prints it back with its verdict
//! in a header. Spam goes to `.Junk`. A filter that fails defers the
//! delivery (75): mail is never lost to a broken filter.

use std::process::Command;
use std::time::Duration;

use mxa_message::Parsed;

use crate::{Failure, command, exit};

/// What the filter decided.
#[derive(Debug)]
pub struct Verdict {
    /// The message as the filter printed it (or as it was, if it printed
    /// nothing).
    pub message: Parsed,
    /// Whether it is spam.
    pub spam: bool,
}

/// Runs `cmd` (split as a shell would, run without one) on `msg`.
/// Exit 0: the verdict is in the header (`X-Spam-Flag: YES`,
/// `X-Bogosity: Spam`); exit 1: spam (as `spamc -E` says it; run bogofilter with `-e`, which
/// makes it exit 0 for ham and spam alike);
/// anything else, a signal or the timeout: failure, 75.
pub fn run(cmd: &str, msg: &Parsed, timeout: Duration) -> Result<Verdict, Failure> {
    let fail = |m: String| {
        Failure::new(
            exit::TEMPFAIL,
            format!("filter {cmd:?} failed ({m}); delivery deferred"),
        )
    };
    let words = mxa_cli::split_words(cmd).map_err(fail)?;
    let (prog, args) = words
        .split_first()
        .ok_or_else(|| fail("empty command".into()))?;
    let input = msg.to_bytes();
    let limit = input.len() * 2 + (1 << 20);
    let out = command::run(Command::new(prog).args(args), &input, timeout, Some(limit))
        .map_err(|e| fail(e.to_string()))?;
    let code = match out.status {
        Some(s) => s.code(),
        None => return Err(fail(out.reason())),
    };
    let spam_by_code = match code {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(fail(out.reason())),
    };
    // A filter that prints a message hands back its version; one that
    // prints nothing (a pure classifier) leaves the message as it was.
    let message = if out.stdout.is_empty() {
        msg.clone()
    } else {
        Parsed::parse(&mxa_message::to_lf(&out.stdout))
    };
    if message.fields.is_empty() {
        return Err(fail("it printed something that is not a message".into()));
    }
    let spam = spam_by_code || is_spam(&message);
    Ok(Verdict { message, spam })
}

/// The verdict headers of SpamAssassin, rspamd (`--mime`) and bogofilter.
fn is_spam(m: &Parsed) -> bool {
    m.fields.iter().any(|f| {
        let v = f.value().to_ascii_lowercase();
        (f.is("X-Spam-Flag") && v.starts_with("yes"))
            || (f.is("X-Spam") && v.starts_with("yes"))
            || (f.is("X-Bogosity") && v.starts_with("spam"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_headers() {
        for (h, spam) in [
            ("X-Spam-Flag: YES", true),
            ("X-Spam-Flag: NO", false),
            ("X-Bogosity: Spam, tests=bogofilter", true),
            ("X-Bogosity: Ham, tests=bogofilter", false),
            ("X-Spam: yes", true),
        ] {
            let m = Parsed::parse(format!("{h}\nSubject: x\n\nb\n").as_bytes());
            assert_eq!(is_spam(&m), spam, "{h}");
        }
    }

    #[test]
    fn exit_codes() {
        let m = Parsed::parse(b"Subject: x\n\nb\n");
        let t = Duration::from_secs(10);
        assert!(!run("cat", &m, t).expect("cat").spam);
        assert!(
            run("sh -c 'cat; exit 1'", &m, t)
                .expect("spam by code")
                .spam
        );
        assert!(
            run("sed 's/^Subject/X-Spam-Flag: YES\\nSubject/'", &m, t)
                .expect("sed")
                .spam
        );
        assert_eq!(
            run("sh -c 'exit 3'", &m, t).expect_err("3").code,
            exit::TEMPFAIL
        );
        assert_eq!(
            run("sh -c 'kill -9 $$'", &m, t).expect_err("killed").code,
            exit::TEMPFAIL
        );
        assert_eq!(
            run("sleep 5", &m, Duration::from_millis(100))
                .expect_err("slow")
                .code,
            exit::TEMPFAIL
        );
        assert_eq!(
            run("no-such-filter-mxa", &m, t).expect_err("missing").code,
            exit::TEMPFAIL
        );
        assert_eq!(
            run("echo not a message", &m, t).expect_err("junk").code,
            exit::TEMPFAIL
        );
    }
}
