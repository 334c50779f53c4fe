//! mxa: the front of the mail system. `mxa up [DIR]` runs a complete local
//! system; `mxa X ARGS` runs `mxa-X ARGS`. See mxa(1).

mod init;
mod up;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use mxa_cli::exit;

const USAGE: &str =
    "usage: mxa up [DIR]          run a complete local mail system (default DIR ./var)
       mxa PROGRAM [ARGS...]  run mxa-PROGRAM: sendmail, queue, smtpd, deliver, fetch, pop3d
       mxa --version";

fn main() {
    let args = mxa_cli::args();
    let code = match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            if args.is_empty() {
                exit::USAGE
            } else {
                exit::OK
            }
        }
        Some("-V" | "--version") => {
            println!("mxa {}", env!("CARGO_PKG_VERSION"));
            exit::OK
        }
        Some("up") => match &args[1..] {
            [] => up::up(PathBuf::from("var")),
            [dir] if !dir.starts_with('-') => up::up(PathBuf::from(dir)),
            _ => {
                eprintln!("{USAGE}");
                exit::USAGE
            }
        },
        Some(name) => run_program(name, &args[1..]),
    };
    std::process::exit(code);
}

/// `mxa X ARGS` replaces itself with `mxa-X ARGS`, as git does.
fn run_program(name: &str, args: &[String]) -> i32 {
    if name.contains('/') || name.starts_with('-') {
        eprintln!("mxa: {name}: not a program name\n{USAGE}");
        return exit::USAGE;
    }
    let prog = format!("mxa-{name}");
    match mxa_cli::find_program(&prog) {
        Some(path) => {
            let err = std::process::Command::new(path).args(args).exec();
            eprintln!("mxa: {prog}: {err}");
            exit::UNAVAILABLE
        }
        None => {
            eprintln!("mxa: {prog} is not installed (looked beside mxa and on PATH)\n{USAGE}");
            exit::UNAVAILABLE
        }
    }
}
