//! mxa-deliver as the users it serves: `.forward` as an ordinary user, root
//! becoming the mailbox owner, an unwritable Maildir deferring, and 200
//! deliveries killed at random moments.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mxa_tests::{System, bin, run_with_input, stderr};

const NOBODY: u32 = 65534;

fn as_nobody(sys: &System, args: &[&str], input: &[u8]) -> Output {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin("mxa-deliver"))
        .args(args)
        .env("MXA_CONFIG", &sys.config)
        .env_remove("HOME");
    run_with_input(&mut c, input)
}

fn chown_tree(p: &Path, uid: u32) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(p)
        .status()
        .expect("chown");
    assert!(st.success());
}

fn new_files(md: &Path) -> Vec<PathBuf> {
    fs::read_dir(md.join("new"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

const MSG: &[u8] = b"From: alice@example.net\nTo: test@example.test\nSubject: forward me\n\nFrom here on, a body.\n";

/// Issue #4: `.forward` with each kind of line, run as an ordinary user;
/// the forwarded copy is queued for the right recipient; a group-writable
/// `.forward` is ignored.
#[test]
fn dot_forward_every_kind_of_line_as_an_ordinary_user() {
    if !mxa_tests::require_root("running mxa-deliver as an ordinary user") {
        return;
    }
    let sys = System::new();
    let home = sys.root().join("home");
    fs::create_dir(&home).expect("mkdir");
    let users = format!(
        "test@example.test:{}::{}\n",
        mxa_tests::hash("pw"),
        home.display()
    );
    fs::write(sys.root().join("users"), users).expect("users");
    let h = home.display();
    let forward = format!(
        "# every kind of line\n\\test@example.test, fwd@example.net\n\"|cat > {h}/piped.eml\"\n{h}/Archive/\n{h}/mbox\n"
    );
    fs::write(home.join(".forward"), forward).expect("forward");
    chown_tree(sys.root(), NOBODY);

    let out = as_nobody(
        &sys,
        &["-f", "alice@example.net", "-a", "test@example.test"],
        MSG,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let own = sys.root().join("mail/example.test/test");
    assert_eq!(
        new_files(&own).len(),
        1,
        "\\user keeps a copy in the own mailbox"
    );
    let piped = fs::read_to_string(home.join("piped.eml")).expect("|command ran");
    assert!(
        piped.contains("Delivered-To: test@example.test\n")
            && piped.contains("Subject: forward me"),
        "{piped}"
    );
    assert_eq!(
        new_files(&home.join("Archive")).len(),
        1,
        "/path/ is a Maildir"
    );
    let mbox = fs::read_to_string(home.join("mbox")).expect("mbox");
    assert!(mbox.starts_with("From alice@example.net "), "{mbox}");
    assert!(
        mbox.contains("\n>From here on, a body.\n"),
        "mboxrd quoting: {mbox}"
    );
    for f in [home.join("piped.eml"), home.join("mbox")] {
        assert_eq!(
            fs::metadata(&f).expect("meta").uid(),
            NOBODY,
            "written as the user"
        );
    }
    let ids = sys.spool().list().expect("list");
    assert_eq!(ids.len(), 1, "the forwarded copy is queued");
    let env = sys.spool().envelope(&ids[0]).expect("env");
    assert_eq!(
        env.sender, "alice@example.net",
        "with the original envelope sender"
    );
    assert_eq!(env.recipients.len(), 1);
    assert_eq!(env.recipients[0].address, "fwd@example.net");

    // Group-writable: ignored with a warning; the mail goes to the mailbox.
    fs::set_permissions(home.join(".forward"), fs::Permissions::from_mode(0o664)).expect("chmod");
    let out = as_nobody(
        &sys,
        &["-f", "alice@example.net", "-a", "test@example.test"],
        MSG,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("event=forward-ignored")
            && stderr(&out).contains("writable by group or others"),
        "{}",
        stderr(&out)
    );
    assert_eq!(new_files(&own).len(), 2);
    assert_eq!(
        sys.spool().list().expect("list").len(),
        1,
        "nothing forwarded"
    );
}

#[test]
fn root_becomes_the_mailbox_owner() {
    if !mxa_tests::require_root("changing users") {
        return;
    }
    let sys = System::new();
    let domain_dir = sys.root().join("mail/example.test");
    fs::create_dir_all(&domain_dir).expect("mkdir");
    chown_tree(&domain_dir, NOBODY);
    let out = run_with_input(
        sys.cmd("mxa-deliver")
            .args(["-v", "-a", "test@example.test"])
            .env_remove("RECIPIENT"),
        MSG,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let file = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(fs::metadata(&file).expect("meta").uid(), NOBODY);
    assert_eq!(
        fs::metadata(domain_dir.join("test/new"))
            .expect("meta")
            .uid(),
        NOBODY
    );
}

/// Issue #4: an unwritable Maildir is a temporary failure (75), so the MTA
/// defers instead of bouncing.
#[test]
fn an_unwritable_maildir_defers() {
    if !mxa_tests::require_root("switching to an ordinary user") {
        return;
    }
    let sys = System::new();
    chown_tree(sys.root(), NOBODY);
    let md = sys.root().join("mail/example.test/test");
    fs::create_dir_all(&md).expect("mkdir");
    for d in ["tmp", "new", "cur"] {
        fs::create_dir_all(md.join(d)).expect("mkdir");
    }
    chown_tree(&md, 0); // root's, mode 0755: nobody cannot write
    let out = as_nobody(&sys, &["-a", "test@example.test"], MSG);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(new_files(&md).is_empty());
}

/// Issue #4: killed with SIGKILL at random moments (200 times), the MDA
/// never leaves a partial file in new/ or cur/.
#[test]
fn killed_deliveries_never_leave_partial_files() {
    let sys = System::new();
    let md = sys.root().join("crash");
    mxa_tests::bin_dir();
    let spawn = |n: usize| {
        let mut body = format!("Subject: crash {n}\n\n").into_bytes();
        for _ in 0..(n % 40) * 20 {
            body.extend_from_slice(
                b"0123456789012345678901234567890123456789012345678901234567890123456789\n",
            );
        }
        body.extend_from_slice(format!("END-{n}\n").as_bytes());
        let mut child = sys
            .cmd("mxa-deliver")
            .args(["-a", "test@example.test"])
            .arg(&md)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Under 64 KiB: fits in the pipe, never blocks.
        let _ = std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &body);
        child
    };
    let mut times: Vec<Duration> = (0..9)
        .map(|i| {
            let t = Instant::now();
            assert!(spawn(i).wait().expect("wait").success());
            t.elapsed()
        })
        .collect();
    times.sort();
    let typical = times[4].as_micros() as u64;
    let (mut killed, mut done) = (0, 0);
    for n in 0..200 {
        let mut child = spawn(n);
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).expect("random");
        std::thread::sleep(Duration::from_micros(
            u64::from_ne_bytes(r) % (typical * 2 + 1),
        ));
        let _ = child.kill();
        if child.wait().expect("wait").success() {
            done += 1
        } else {
            killed += 1
        }
    }
    eprintln!("typical delivery {typical}us: {done} completed, {killed} killed first");
    assert!(
        killed > 0,
        "no delivery was interrupted: the test proved nothing"
    );
    let mut seen = 0;
    for dir in ["new", "cur"] {
        for f in fs::read_dir(md.join(dir)).expect("dir").flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let data = fs::read(f.path()).expect("read");
            let size: usize = name
                .split(",S=")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .and_then(|s| s.parse().ok())
                .expect("S=");
            assert_eq!(data.len(), size, "{name}: partial file");
            let text = String::from_utf8_lossy(&data);
            let n = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: crash "))
                .expect("subject");
            assert!(text.ends_with(&format!("END-{n}\n")), "{name}: truncated");
            seen += 1;
        }
    }
    assert!(
        seen >= done,
        "every completed delivery is there: {seen} < {done}"
    );
}
