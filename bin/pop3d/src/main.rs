//! mxa-pop3d: see mxa-pop3d(8). Thin: flags, the library, an exit status.

use mxa_pop3d::args::{self, USAGE};

fn main() {
    let args = match args::parse(&mxa_cli::args()) {
        Ok(a) if a.help => {
            println!("{USAGE}");
            std::process::exit(mxa_cli::exit::OK);
        }
        Ok(a) => a,
        Err(m) => {
            eprintln!("mxa-pop3d: {m}\n{USAGE}");
            std::process::exit(mxa_cli::exit::USAGE);
        }
    };
    std::process::exit(mxa_pop3d::run(&args));
}
