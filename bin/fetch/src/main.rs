//! mxa-fetch: parses the command line and runs; see mxa-fetch(1).

use clap::Parser;
use mxa_fetch::args::Args;

fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => mxa_cli::exit::USAGE,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    std::process::exit(mxa_fetch::run(args));
}
