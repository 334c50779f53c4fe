use super::*;
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const T: u64 = 1_795_458_000; // Mon Nov 23 18:20:00 2026 UTC
const SHORT: Duration = Duration::from_millis(300);

/// asctime(3): "Www Mmm dd hh:mm:ss yyyy", day padded with a space.
#[test]
fn asctime_table() {
    let cases = [
        (0, "Thu Jan  1 00:00:00 1970"),
        (951_782_400, "Tue Feb 29 00:00:00 2000"),
        (1_000_000_000, "Sun Sep  9 01:46:40 2001"),
        (1_234_567_890, "Fri Feb 13 23:31:30 2009"),
        (T, "Mon Nov 23 18:20:00 2026"),
        (253_402_300_799, "Fri Dec 31 23:59:59 9999"),
    ];
    for (t, want) in cases {
        assert_eq!(asctime(t), want, "{t}");
    }
}

/// mboxrd: every line matching ^>*From  gets one more '>'; nothing else
/// changes; the message ends with a line end and an empty line.
#[test]
fn mboxrd_table() {
    let head = "From a@example.org Mon Nov 23 18:20:00 2026\n";
    let cases: &[(&str, &str)] = &[
        ("S: x\n\nbody\n", "S: x\n\nbody\n\n"),
        ("S: x\n\nno end", "S: x\n\nno end\n\n"),
        ("", "\n\n"),
        ("\nFrom here\n", "\n>From here\n\n"),
        ("\n>From here\n", "\n>>From here\n\n"),
        ("\n>>From here\n", "\n>>>From here\n\n"),
        ("From: header\n", "From: header\n\n"),
        (
            "\nFromage\n From x\nfrom x\n",
            "\nFromage\n From x\nfrom x\n\n",
        ),
        ("\n>From\n", "\n>From\n\n"),
        ("\nFrom x", "\n>From x\n\n"),
    ];
    for &(msg, body) in cases {
        let got = mboxrd("a@example.org", T, msg.as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("{head}{body}"),
            "{msg:?}"
        );
    }
}

#[test]
fn from_line_sender() {
    let cases = [
        ("", "MAILER-DAEMON"),
        ("<>", "MAILER-DAEMON"),
        ("a@b", "a@b"),
        ("\"a b\"@c", "\"a_b\"@c"),
        ("a\tb\r\n", "a_b__"),
    ];
    for (sender, want) in cases {
        let got = mboxrd(sender, 0, b"x\n");
        let want = format!("From {want} Thu Jan  1 00:00:00 1970\nx\n\n");
        assert_eq!(String::from_utf8_lossy(&got), want, "{sender:?}");
    }
}

#[test]
fn append_twice_gives_two_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("mbox");
    append(&mbox, "a@x", T, b"S: 1\n\nFrom me\n", SHORT).expect("first");
    append(&mbox, "", T + 61, b"S: 2\n\nhi", SHORT).expect("second");
    let got = fs::read_to_string(&mbox).expect("read");
    assert_eq!(
        got,
        "From a@x Mon Nov 23 18:20:00 2026\nS: 1\n\n>From me\n\n\
         From MAILER-DAEMON Mon Nov 23 18:21:01 2026\nS: 2\n\nhi\n\n"
    );
    let meta = fs::metadata(&mbox).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert!(!lock::lock_path(&mbox).exists(), "dot-lock left behind");
}

#[test]
fn existing_mode_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("mbox");
    fs::write(&mbox, b"").expect("write");
    fs::set_permissions(&mbox, fs::Permissions::from_mode(0o660)).expect("chmod");
    append(&mbox, "a@x", T, b"x\n", SHORT).expect("append");
    let mode = fs::metadata(&mbox).expect("stat").permissions().mode();
    assert_eq!(mode & 0o7777, 0o660);
}

#[test]
fn symlinked_mbox_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("target");
    fs::write(&target, b"precious\n").expect("write");
    let mbox = dir.path().join("mbox");
    std::os::unix::fs::symlink(&target, &mbox).expect("symlink");
    let err = append(&mbox, "a@x", T, b"x\n", SHORT).expect_err("symlink");
    assert!(matches!(err, Error::Symlink(ref p) if p == &mbox), "{err}");
    assert!(!err.is_temporary());
    assert_eq!(fs::read(&target).expect("read"), b"precious\n");
    // A dangling symlink must not create its target either.
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).expect("symlink");
    let err = append(&dangling, "a@x", T, b"x\n", SHORT).expect_err("dangling");
    assert!(matches!(err, Error::Symlink(_)), "{err}");
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn hard_linked_or_special_mbox_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = dir.path().join("other");
    fs::write(&other, b"").expect("write");
    let mbox = dir.path().join("mbox");
    fs::hard_link(&other, &mbox).expect("link");
    let err = append(&mbox, "a@x", T, b"x\n", SHORT).expect_err("two links");
    assert!(
        matches!(err, Error::Io { .. }) && !err.is_temporary(),
        "{err}"
    );
    let err = append(dir.path(), "a@x", T, b"x\n", SHORT).expect_err("a directory");
    assert!(!err.is_temporary(), "{err}");
    assert_eq!(fs::read(&other).expect("read"), b"");
}

#[test]
fn held_dotlock_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("mbox");
    let lockfile = lock::lock_path(&mbox);
    fs::write(&lockfile, b"1\n").expect("lock");
    let t0 = Instant::now();
    let err = append(&mbox, "a@x", T, b"x\n", SHORT).expect_err("locked");
    assert!(t0.elapsed() >= SHORT);
    assert!(
        matches!(err, Error::LockTimeout(ref p) if p == &lockfile),
        "{err}"
    );
    assert!(err.is_temporary());
    assert!(!mbox.exists(), "wrote without the lock");
    assert!(lockfile.exists(), "removed another holder's lock");
}

#[test]
fn stale_dotlock_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("mbox");
    let lockfile = lock::lock_path(&mbox);
    let f = File::create(&lockfile).expect("lock");
    let old = std::time::SystemTime::now() - DOTLOCK_STALE - Duration::from_secs(1);
    f.set_modified(old).expect("utime");
    drop(f);
    append(&mbox, "a@x", T, b"x\n", SHORT).expect("stale lock broken");
    assert!(!lockfile.exists());
}

/// Holds an fcntl lock on `path` from another process (fcntl locks are per
/// process, so a thread of ours could not stand in), until killed.
fn hold_fcntl_lock(path: &Path) -> Option<Child> {
    let script = "import fcntl, sys, time\n\
                  f = open(sys.argv[1], 'a')\n\
                  fcntl.lockf(f, fcntl.LOCK_EX)\n\
                  print('locked', flush=True)\n\
                  time.sleep(60)\n";
    let mut child = match Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipped: no python3 ({e})");
            return None;
        }
    };
    let mut line = String::new();
    let out = child.stdout.take().expect("piped stdout");
    BufReader::new(out).read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "locked");
    Some(child)
}

#[test]
fn held_fcntl_lock_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("mbox");
    fs::write(&mbox, b"").expect("create");
    fs::set_permissions(&mbox, fs::Permissions::from_mode(0o600)).expect("chmod");
    let Some(mut child) = hold_fcntl_lock(&mbox) else {
        return;
    };
    let t0 = Instant::now();
    let res = append(&mbox, "a@x", T, b"x\n", SHORT);
    let _ = child.kill();
    let _ = child.wait();
    let err = res.expect_err("locked");
    assert!(t0.elapsed() >= SHORT);
    assert!(
        matches!(err, Error::LockTimeout(ref p) if p == &mbox),
        "{err}"
    );
    assert_eq!(fs::read(&mbox).expect("read"), b"");
    assert!(!lock::lock_path(&mbox).exists(), "dot-lock left behind");
    // Once the holder is gone, delivery goes through.
    append(&mbox, "a@x", T, b"x\n", SHORT).expect("unlocked");
}

/// A writer that lets `n` bytes through to the file, then fails as a full
/// disk would.
struct FailAfter<'a> {
    file: &'a File,
    n: usize,
}

impl Write for FailAfter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.n == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let k = buf.len().min(self.n);
        let k = (&mut &*self.file).write(&buf[..k])?;
        self.n -= k;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn failed_write_truncates_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mbox");
    fs::write(&path, b"From a Thu Jan  1 00:00:00 1970\nold\n\n").expect("write");
    let file = OpenOptions::new().append(true).open(&path).expect("open");
    let start = file.metadata().expect("stat").len();
    for n in [0, 1, 10] {
        let mut out = FailAfter { file: &file, n };
        let err = append_or_truncate(&file, start, &[b'x'; 100], &mut out).expect_err("ENOSPC");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(fs::metadata(&path).expect("stat").len(), start, "n={n}");
    }
    // And the next append lands right after the old message.
    append_or_truncate(&file, start, b"new\n", &mut &file).expect("append");
    let got = fs::read_to_string(&path).expect("read");
    assert_eq!(got, "From a Thu Jan  1 00:00:00 1970\nold\n\nnew\n");
}

/// Without write access to the mbox's directory (a /var/mail we are not
/// allowed to create files in) the fcntl lock guards alone.
#[test]
fn unwritable_directory_skips_the_dotlock() {
    if nix::unistd::geteuid().is_root() {
        eprintln!("skipped: root may always create the dot-lock");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mbox = dir.path().join("mbox");
    fs::write(&mbox, b"").expect("create");
    fs::set_permissions(&mbox, fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o500)).expect("chmod");
    let res = append(&mbox, "a@x", T, b"x\n", SHORT);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    res.expect("append without dot-lock");
    assert!(fs::read(&mbox).expect("read").ends_with(b"x\n\n"));
}

proptest::proptest! {
    /// mboxrd is reversible: removing one '>' from each line matching
    /// ^>+From  gives the message back, and no line of the body starts a
    /// message of its own.
    #[test]
    fn mboxrd_round_trips(
        lines in proptest::collection::vec("(>{0,3}(From |From|from |F)?[a-z >]{0,5})", 0..20)
    ) {
        let msg = lines.join("\n") + "\n";
        let out = String::from_utf8(mboxrd("a@b", T, msg.as_bytes())).expect("utf-8");
        let (_, body) = out.split_once('\n').expect("From line");
        let body = body.strip_suffix('\n').expect("empty line at the end");
        proptest::prop_assert!(!body.lines().any(|l| l.starts_with("From ")));
        let unquoted: String = body
            .split_inclusive('\n')
            .map(|l| match l.strip_prefix('>') {
                Some(rest) if strip_gt(rest.as_bytes()).starts_with(b"From ") => rest,
                _ => l,
            })
            .collect();
        proptest::prop_assert_eq!(unquoted, msg);
    }
}
