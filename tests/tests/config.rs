//! A wrong config is refused by every program with file, line and key, and
//! exit status 78 (EX_CONFIG); nothing starts half-configured.

use std::process::Command;

use mxa_tests::{System, bin, run_with_input, stderr};

#[test]
fn every_program_refuses_a_bad_value_with_file_line_and_key() {
    let sys = System::new();
    let text = std::fs::read_to_string(&sys.config).expect("read");
    let bad = text.replace(
        "max_message_size = \"10M\"",
        "max_message_size = \"10 megs\"",
    );
    std::fs::write(&sys.config, &bad).expect("write");
    let line = bad
        .lines()
        .position(|l| l.starts_with("max_message_size"))
        .expect("line")
        + 1;
    let want = format!("{}:{line}: smtpd.max_message_size:", sys.config.display());
    for (prog, args) in [
        ("mxa-sendmail", &["a@b.example"][..]),
        ("mxa-queue", &["list"][..]),
        ("mxa", &["up", sys.root().to_str().expect("utf8")][..]),
    ] {
        let out = sys.run(prog, args, b"Subject: x\n\ny\n");
        assert_eq!(out.status.code(), Some(78), "{prog}: {}", stderr(&out));
        assert!(stderr(&out).contains(&want), "{prog}: {}", stderr(&out));
    }
    assert!(sys.spool().list().expect("list").is_empty());
}

#[test]
fn unknown_key_and_missing_named_file() {
    let sys = System::new();
    let text = std::fs::read_to_string(&sys.config).expect("read");
    std::fs::write(
        &sys.config,
        format!("{text}\n[queue]\nrelay_host = \"smtp.example\"\n"),
    )
    .expect("write");
    let out = sys.run("mxa-queue", &["list"], b"");
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("queue.relay_host"),
        "{}",
        stderr(&out)
    );

    std::fs::write(
        &sys.config,
        text.replace("users = \"users\"", "users = \"no-such-users\""),
    )
    .expect("write");
    let out = sys.run("mxa-sendmail", &["a@b.example"], b"x\n");
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains(&format!("{}:3: users:", sys.config.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_users_file_line_names_the_users_file() {
    let sys = System::new();
    std::fs::write(
        sys.root().join("users"),
        "# users\ntest@example.test:plaintext-password\n",
    )
    .expect("write");
    let out = sys.run("mxa-queue", &["list"], b"");
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains(&format!("{}:2:", sys.root().join("users").display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn no_config_at_all_runs_on_defaults_and_flags() {
    // No -c, no MXA_CONFIG: /etc/mxa/mxa.toml is absent on a test machine,
    // so the defaults apply and --help works without any file.
    let out = run_with_input(
        Command::new(bin("mxa-queue"))
            .arg("--help")
            .env_remove("MXA_CONFIG"),
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
}
