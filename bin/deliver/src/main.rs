//! mxa-deliver: see mxa-deliver(8). Thin: flags, environment, the library,
//! an exit status.

use std::io::Write;

use mxa_deliver::args::{self, USAGE};
use mxa_deliver::{Env, exit, run};

fn main() {
    let args = match args::parse(&mxa_cli::args()) {
        Ok(a) if a.help => {
            println!("{USAGE}");
            std::process::exit(exit::OK);
        }
        Ok(a) => a,
        Err(m) => {
            eprintln!("mxa-deliver: {m}");
            std::process::exit(exit::USAGE);
        }
    };
    match run(&args, Env::from_process(), std::io::stdin().lock()) {
        Ok(paths) => {
            if args.verbose {
                let mut out = std::io::stdout().lock();
                for p in paths {
                    // A closed stdout does not undo a delivery.
                    let _ = writeln!(out, "{}", p.display());
                }
            }
            std::process::exit(exit::OK);
        }
        Err(f) => {
            eprintln!("mxa-deliver: {}", f.msg);
            std::process::exit(f.code);
        }
    }
}
