//! Every man page renders without a warning (`groff -man -ww -z`), and every
//! program has one.

use std::process::Command;

#[test]
fn man_pages_render_cleanly() {
    let Some(groff) = mxa_tests::peer("groff") else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../man");
    let mut pages = 0;
    for entry in std::fs::read_dir(&dir).expect("man/") {
        let path = entry.expect("entry").path();
        let out = Command::new(&groff)
            .args(["-man", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("groff");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        pages += 1;
    }
    for page in [
        "mxa.1",
        "mxa.7",
        "mxa.toml.5",
        "mxa-sendmail.8",
        "mxa-postdrop.8",
        "mxa-queue.8",
        "mxa-deliver.8",
        "mxa-smtpd.8",
        "mxa-pop3d.8",
        "mxa-fetch.1",
    ] {
        assert!(dir.join(page).exists(), "man/{page} is missing");
    }
    assert!(pages >= 7);
}
