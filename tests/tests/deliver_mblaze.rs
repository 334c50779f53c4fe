//! What mxa-deliver writes is a Maildir as mail readers see it: mblaze
//! (Debian's `mblaze`) lists, scans, shows, incorporates and flags it.

use std::path::Path;
use std::process::Command;

use mxa_tests::{System, peer, run_with_input, stderr};

fn mblaze(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .env("MBLAZE", "/nonexistent")
        .output()
        .expect(tool);
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.is_empty()).collect()
}

#[test]
fn mblaze_reads_folders_messages_and_flags() {
    let Some(_) = peer("mlist") else { return };
    let sys = System::new();
    let md = sys.root().join("Maildir");
    let m = md.to_str().expect("utf8");
    for i in 1..=3 {
        let msg = format!("From: Alice <alice@example.net>\nSubject: note {i}\n\nbody {i}\n");
        let out = run_with_input(
            sys.cmd("mxa-deliver")
                .args(["-f", "alice@example.net", "-a", "test@example.test", m]),
            msg.as_bytes(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = run_with_input(
        sys.cmd("mxa-deliver")
            .args(["-a", "test@example.test", "-m", "Lists/rust", m]),
        b"Subject: rust list\n\nhi\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let dirs = mblaze("mdirs", &[m]);
    assert_eq!(
        lines(&dirs),
        [m.to_string(), format!("{m}/.Lists.rust")],
        "{dirs}"
    );
    let all = mblaze("mlist", &[m]);
    assert_eq!(lines(&all).len(), 3, "{all}");
    assert_eq!(lines(&mblaze("mlist", &["-s", m])).len(), 3, "all unseen");
    let mut subjects: Vec<String> = lines(&all)
        .iter()
        .map(|f| lines(&mblaze("mscan", &["-f", "%s", f]))[0].to_string())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["note 1", "note 2", "note 3"]);
    let shown = mblaze(
        "mshow",
        &[
            "-H",
            lines(&mblaze("mlist", &[&format!("{m}/.Lists.rust")]))[0],
        ],
    );
    assert!(
        shown.starts_with("Return-Path: <>\nDelivered-To: test@example.test\nSubject: rust list\n"),
        "{shown}"
    );

    // minc moves new/ to cur/ (":2," suffix); mflag -S marks one seen.
    let cur = mblaze("minc", &[m]);
    let cur = lines(&cur);
    assert_eq!(cur.len(), 3);
    assert!(
        cur.iter()
            .all(|p| Path::new(p).parent() == Some(&md.join("cur")) && p.ends_with(":2,")),
        "{cur:?}"
    );
    let flagged = mblaze("mflag", &["-S", cur[0]]);
    assert!(lines(&flagged)[0].ends_with(":2,S"), "{flagged}");
    assert_eq!(lines(&mblaze("mlist", &["-S", m])).len(), 1, "one seen");
    assert_eq!(lines(&mblaze("mlist", &["-s", m])).len(), 2, "two unseen");
}
