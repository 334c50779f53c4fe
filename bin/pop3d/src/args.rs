//! The command line: `mxa-pop3d [-c FILE] [--stdio]` (DESIGN.md).

use std::path::PathBuf;

/// The usage line.
pub const USAGE: &str = "usage: mxa-pop3d [-c FILE] [--stdio]";

/// Parsed flags.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    /// `-c FILE`.
    pub config: Option<PathBuf>,
    /// `--stdio`: one session on stdin and stdout (inetd, tcpserver,
    /// systemd `Accept=yes`).
    pub stdio: bool,
    /// `-h`, `--help`.
    pub help: bool,
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-c" | "--config" => {
                let f = it.next().ok_or("-c needs a FILE")?;
                a.config = Some(PathBuf::from(f));
            }
            s if s.starts_with("-c") && s.len() > 2 => a.config = Some(PathBuf::from(&s[2..])),
            s if s.starts_with("--config=") => {
                a.config = Some(PathBuf::from(&s["--config=".len()..]));
            }
            "--stdio" => a.stdio = true,
            "-h" | "--help" => a.help = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags() {
        assert_eq!(
            p(&["-c", "/etc/x.toml", "--stdio"]),
            Ok(Args {
                config: Some("/etc/x.toml".into()),
                stdio: true,
                help: false
            })
        );
        assert_eq!(p(&["-c/x"]).map(|a| a.config), Ok(Some("/x".into())));
        assert!(p(&["-c"]).is_err());
        assert!(p(&["--bogus"]).is_err());
        assert!(p(&["-h"]).is_ok_and(|a| a.help));
    }
}
