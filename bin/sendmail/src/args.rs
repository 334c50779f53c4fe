//! sendmail(8) command-line flags, parsed as sendmail and Postfix do:
//! single letters, values attached (`-fme@x`) or in the next word (`-f me@x`),
//! `-o` and `-b` followed by a letter, unknown historical flags ignored.

/// What the invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `-bm` (the default): read a message and queue it.
    Deliver,
    /// `-bp`: list the queue (mailq).
    List,
    /// `-q`: flush the queue.
    Flush,
    /// `-bs`: SMTP on stdin/stdout.
    Smtp,
    /// `-bi` / `-I` (newaliases): nothing to rebuild.
    NewAliases,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Mode of operation.
    pub mode: Mode,
    /// `-c FILE` (or `-C FILE`).
    pub config: Option<String>,
    /// `-t`: recipients from the header.
    pub extract: bool,
    /// `-i` / `-oi`: a line with a single dot does not end the message.
    pub ignore_dots: bool,
    /// `-f` / `-r`: envelope sender (`""` or `<>` for the null sender).
    pub sender: Option<String>,
    /// `-F`: full name for a generated `From:`.
    pub full_name: Option<String>,
    /// `-v`: print the queue id.
    pub verbose: bool,
    /// `-N`: DSN NOTIFY for every recipient.
    pub notify: Option<String>,
    /// `-R`: DSN RET.
    pub ret: Option<String>,
    /// `-V`: DSN ENVID.
    pub envid: Option<String>,
    /// `-B`: body type.
    pub body: Option<String>,
    /// Recipients given as operands.
    pub recipients: Vec<String>,
}

/// Flags that take a value and mean something to mxa.
const VALUE_FLAGS: &[u8] = b"cCfrFNRVB";
/// Historical flags that take a value and are ignored (sendmail's `-h hops`,
/// `-L label`, `-X log`, `-O option=value`, `-e mode`, `-p protocol`).
const IGNORED_VALUE_FLAGS: &[u8] = b"hLXOep";
/// Historical flags without a value, ignored (`-m`, `-n`, `-U`, `-G`, `-x`).
const IGNORED_FLAGS: &[u8] = b"mnUGx";

/// Parses the words after the program name.
pub fn parse(words: &[String]) -> Result<Args, String> {
    let mut a = Args {
        mode: Mode::Deliver,
        config: None,
        extract: false,
        ignore_dots: false,
        sender: None,
        full_name: None,
        verbose: false,
        notify: None,
        ret: None,
        envid: None,
        body: None,
        recipients: Vec::new(),
    };
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        if w == "--" {
            a.recipients.extend(words[i..].iter().cloned());
            break;
        }
        if !w.starts_with('-') || w == "-" {
            a.recipients.push(w.clone());
            continue;
        }
        let flag = w.as_bytes()[1];
        let rest = &w[2..];
        match flag {
            b't' if rest.is_empty() => a.extract = true,
            b'i' if rest.is_empty() => a.ignore_dots = true,
            b'v' if rest.is_empty() => a.verbose = true,
            b'I' if rest.is_empty() => a.mode = Mode::NewAliases,
            b'q' => a.mode = Mode::Flush, // -q, -q30m, -qR…: one flush
            b'o' => match rest {
                "i" => a.ignore_dots = true,
                "" => return Err("-o needs an option letter".into()),
                _ => {} // -odb, -oem, -oee, -om…: sendmail tuning, ignored
            },
            b'b' => {
                a.mode = match rest {
                    "m" => Mode::Deliver,
                    "p" => Mode::List,
                    "s" => Mode::Smtp,
                    "i" => Mode::NewAliases,
                    _ => {
                        return Err(format!(
                            "-b{rest}: unsupported mode (use -bm, -bp, -bs or -bi)"
                        ));
                    }
                }
            }
            f if VALUE_FLAGS.contains(&f) || IGNORED_VALUE_FLAGS.contains(&f) => {
                let value = if rest.is_empty() {
                    let v = words
                        .get(i)
                        .ok_or_else(|| format!("-{} needs a value", f as char))?;
                    i += 1;
                    v.clone()
                } else {
                    rest.to_string()
                };
                let slot = match f {
                    b'c' | b'C' => &mut a.config,
                    b'f' | b'r' => &mut a.sender,
                    b'F' => &mut a.full_name,
                    b'N' => &mut a.notify,
                    b'R' => &mut a.ret,
                    b'V' => &mut a.envid,
                    b'B' => &mut a.body,
                    _ => continue,
                };
                *slot = Some(value);
            }
            f if IGNORED_FLAGS.contains(&f) => {}
            _ => return Err(format!("{w}: unknown flag")),
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Args, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    // The invocations cron, mutt, git send-email, PHP's mail() and
    // Debian's mailx actually use.
    #[test]
    fn common_invocations() {
        let a = p("-oi -t").expect("parse");
        assert!(a.extract && a.ignore_dots && a.recipients.is_empty());
        let a = p("-FCronDaemon -i -B8BITMIME -oem root").expect("parse");
        assert_eq!(a.full_name.as_deref(), Some("CronDaemon"));
        assert_eq!(a.body.as_deref(), Some("8BITMIME"));
        assert_eq!(a.recipients, ["root"]);
        let a = p("-f me@example.org -t -i").expect("parse");
        assert_eq!(a.sender.as_deref(), Some("me@example.org"));
        let a = p("-rme@x -- -odd@y").expect("parse");
        assert_eq!(a.sender.as_deref(), Some("me@x"));
        assert_eq!(a.recipients, ["-odd@y"]);
        assert_eq!(p("-bp").expect("parse").mode, Mode::List);
        assert_eq!(p("-q").expect("parse").mode, Mode::Flush);
        assert_eq!(p("-q30m").expect("parse").mode, Mode::Flush);
        assert_eq!(p("-bs").expect("parse").mode, Mode::Smtp);
        assert_eq!(
            p("-c /x/mxa.toml a@b").expect("parse").config.as_deref(),
            Some("/x/mxa.toml")
        );
        let a = p("-N success,failure -R hdrs -V abc a@b").expect("parse");
        assert_eq!(
            (a.notify.as_deref(), a.ret.as_deref(), a.envid.as_deref()),
            (Some("success,failure"), Some("hdrs"), Some("abc"))
        );
    }

    #[test]
    fn refusals() {
        assert!(p("-f").is_err());
        assert!(p("-bz").is_err());
        assert!(p("-k").is_err());
    }
}
