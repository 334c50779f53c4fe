use super::*;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use mxa_durable::Step;
use nix::sys::stat::{Mode, umask};

/// umask is per process: tests that change it run one at a time.
static UMASK: Mutex<()> = Mutex::new(());

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("stat").mode() & 0o7777
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn new_maildir() -> (tempfile::TempDir, Maildir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(dir.path().join("Maildir"));
    md.create().expect("create");
    (dir, md)
}

#[test]
fn create_is_0700_whatever_the_umask() {
    let _g = UMASK.lock().unwrap_or_else(|e| e.into_inner());
    for mask in [0o022, 0o077] {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = Maildir::new(dir.path().join("a/b/Maildir"));
        let old = umask(Mode::from_bits_truncate(mask));
        let res = md.create();
        umask(old);
        res.expect("create");
        for p in [
            "a",
            "a/b",
            "a/b/Maildir",
            "a/b/Maildir/tmp",
            "a/b/Maildir/new",
            "a/b/Maildir/cur",
        ] {
            assert_eq!(mode(&dir.path().join(p)), 0o700, "{p} under umask {mask:o}");
        }
        assert!(md.exists());
    }
}

#[test]
fn create_is_idempotent_and_keeps_modes() {
    let (_dir, md) = new_maildir();
    fs::set_permissions(md.root(), fs::Permissions::from_mode(0o750)).expect("chmod");
    md.create().expect("again");
    assert_eq!(mode(md.root()), 0o750);
    assert!(md.exists());
    fs::remove_dir(md.root().join("cur")).expect("rmdir");
    assert!(!md.exists());
    md.create().expect("repair");
    assert!(md.exists());
}

#[test]
fn create_refuses_a_file_in_the_way() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("Maildir"), b"").expect("write");
    let err = Maildir::new(dir.path().join("Maildir"))
        .create()
        .expect_err("file");
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn folder_paths() {
    let md = Maildir::new("/home/u/Maildir");
    let cases = [
        ("Junk", "/home/u/Maildir/.Junk"),
        ("Lists.rust", "/home/u/Maildir/.Lists.rust"),
        ("Lists/rust", "/home/u/Maildir/.Lists.rust"),
        ("Inbox", "/home/u/Maildir"),
    ];
    for (name, want) in cases {
        assert_eq!(
            md.folder(name).expect(name).root(),
            Path::new(want),
            "{name}"
        );
    }
    for name in ["", ".Junk", "a..b", "a/", "a\u{1}"] {
        assert!(
            matches!(md.folder(name), Err(Error::BadFolder(_))),
            "{name:?}"
        );
    }
    assert!(
        !Path::new("/home/u/Maildir/.Junk").exists(),
        "folder() created something"
    );
}

#[test]
fn create_folder_makes_a_maildirplusplus_folder() {
    let (_dir, md) = new_maildir();
    let f = md.create_folder("Lists/rust").expect("create");
    assert_eq!(f.root(), md.root().join(".Lists.rust"));
    assert!(f.exists());
    assert_eq!(
        fs::read(f.root().join("maildirfolder")).expect("marker"),
        b""
    );
    assert_eq!(mode(&f.root().join("maildirfolder")), 0o600);
    assert_eq!(mode(f.root()), 0o700);
    // No subscription file existed: none is made.
    assert!(!md.root().join("subscriptions").exists());
    assert_eq!(md.create_folder("INBOX").expect("inbox"), md);
}

#[test]
fn create_folder_subscribes_once() {
    let (_dir, md) = new_maildir();
    let subs = md.root().join("subscriptions");
    fs::write(&subs, b"INBOX\nLists.rust\n").expect("write");
    fs::set_permissions(&subs, fs::Permissions::from_mode(0o640)).expect("chmod");
    md.create_folder("Junk").expect("create");
    md.create_folder("Junk").expect("again");
    // Already listed, though the folder did not exist: not added twice.
    md.create_folder("Lists/rust").expect("listed");
    md.create_folder("Entwürfe").expect("utf-8");
    assert_eq!(
        fs::read_to_string(&subs).expect("read"),
        "INBOX\nLists.rust\nJunk\nEntw&APw-rfe\n"
    );
    assert_eq!(mode(&subs), 0o640);
    assert!(!md.root().join("subscriptions.lock").exists());
}

/// Dovecot 2.3's version 2 file: header "V\t2\n\n", TAB between levels.
#[test]
fn create_folder_subscribes_in_dovecot_v2_and_courier_forms() {
    let (_dir, md) = new_maildir();
    let subs = md.root().join("subscriptions");
    let courier = md.root().join("courierimapsubscribed");
    fs::write(&subs, b"V\t2\n\nINBOX\n").expect("write");
    fs::write(&courier, b"INBOX").expect("write");
    md.create_folder("Lists.rust").expect("create");
    assert_eq!(
        fs::read_to_string(&subs).expect("read"),
        "V\t2\n\nINBOX\nLists\trust\n"
    );
    assert_eq!(
        fs::read_to_string(&courier).expect("read"),
        "INBOX\nINBOX.Lists.rust\n"
    );
}

#[test]
fn create_folder_waits_for_a_held_subscription_lock_then_fails() {
    let (_dir, md) = new_maildir();
    let subs = md.root().join("subscriptions");
    fs::write(&subs, b"INBOX\n").expect("write");
    fs::write(md.root().join("subscriptions.lock"), b"").expect("lock");
    let err = md.create_folder("Junk").expect_err("locked");
    assert!(
        matches!(err, Error::LockTimeout(_)) && err.is_temporary(),
        "{err}"
    );
    // Subscribing comes first: no folder, so the next try subscribes.
    assert!(!md.root().join(".Junk").exists());
    fs::remove_file(md.root().join("subscriptions.lock")).expect("unlock");
    md.create_folder("Junk").expect("create");
    assert_eq!(fs::read_to_string(&subs).expect("read"), "INBOX\nJunk\n");
}

#[test]
fn create_folder_subscription_faults_leave_the_file_whole() {
    for step in [Step::Create, Step::Write, Step::SyncFile, Step::Publish] {
        let (_dir, md) = new_maildir();
        let subs = md.root().join("subscriptions");
        fs::write(&subs, b"INBOX\n").expect("write");
        let err = md
            .create_folder_with("Junk", &failing_at(step, libc::EIO))
            .expect_err("fault");
        assert!(err.is_temporary(), "{step:?}: {err}");
        assert_eq!(fs::read(&subs).expect("read"), b"INBOX\n", "{step:?}");
        assert_eq!(
            names(md.root()),
            ["cur", "new", "subscriptions", "tmp"],
            "{step:?}"
        );
    }
}

/// Maildir spec: "<time>.<unique>.<host>"; Dovecot's unique part and sizes.
fn check_name(name: &str, size: u64, vsize: u64) {
    let (secs, rest) = name.split_once(".M").expect("secs.M");
    assert!(secs.parse::<u64>().expect("secs") > 1_600_000_000, "{name}");
    let (usecs, rest) = rest.split_once('P').expect("P");
    assert!(usecs.parse::<u32>().expect("usecs") < 1_000_000, "{name}");
    let (pid, rest) = rest.split_once('Q').expect("Q");
    assert_eq!(pid, std::process::id().to_string());
    let (counter, rest) = rest.split_once('R').expect("R");
    counter.parse::<u64>().expect("counter");
    let (random, rest) = rest.split_once('.').expect(".host");
    assert_eq!(random.len(), 16, "{name}");
    assert!(random.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    let want = format!(",S={size},W={vsize}");
    assert!(rest.ends_with(&want), "{name} lacks {want}");
    let host = &rest[..rest.len() - want.len()];
    assert!(!host.is_empty() && !host.contains(['/', ':']), "{name}");
}

#[test]
fn deliver_writes_new_with_sizes_in_the_name() {
    let (_dir, md) = new_maildir();
    let msg = b"Subject: hi\n\nbody\n";
    let path = md.deliver(msg, &Durable::default()).expect("deliver");
    assert_eq!(path.parent(), Some(md.root().join("new").as_path()));
    assert_eq!(fs::read(&path).expect("read"), msg);
    assert_eq!(mode(&path), 0o600);
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    check_name(&name, 18, 21);
    assert!(names(&md.root().join("tmp")).is_empty());
    assert!(names(&md.root().join("cur")).is_empty());
}

#[test]
fn deliver_through_a_symlinked_root() {
    let (dir, md) = new_maildir();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(md.root(), &link).expect("symlink");
    let path = Maildir::new(&link)
        .deliver(b"x\n", &Durable::default())
        .expect("deliver");
    assert!(path.starts_with(&link));
    assert_eq!(names(&md.root().join("new")).len(), 1);
}

#[test]
fn deliver_refuses_symlinked_subdirectories() {
    for sub in ["tmp", "new", "cur"] {
        let (dir, md) = new_maildir();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).expect("mkdir");
        let p = md.root().join(sub);
        fs::remove_dir(&p).expect("rmdir");
        std::os::unix::fs::symlink(&elsewhere, &p).expect("symlink");
        let err = md.deliver(b"x\n", &Durable::default()).expect_err(sub);
        assert!(
            matches!(err, Error::Symlink(ref q) if q == &p),
            "{sub}: {err}"
        );
        assert!(!err.is_temporary());
        assert!(
            names(&elsewhere).is_empty(),
            "{sub}: wrote through the link"
        );
        for other in ["tmp", "new", "cur"] {
            assert!(names(&md.root().join(other)).is_empty(), "{sub}: {other}");
        }
    }
}

fn failing_at(step: Step, errno: i32) -> Durable {
    Durable::with_fault(Arc::new(move |s, _| {
        if s == step {
            Err(io::Error::from_raw_os_error(errno))
        } else {
            Ok(())
        }
    }))
}

/// A fault at any step leaves nothing in new/ (nor in tmp/), and ENOSPC,
/// EIO and EDQUOT are temporary (the MTA defers and tries again).
#[test]
fn deliver_faults_leave_nothing() {
    let (_dir, md) = new_maildir();
    for step in Step::ALL {
        for errno in [libc::ENOSPC, libc::EIO, libc::EDQUOT] {
            match md.deliver(b"x\n", &failing_at(step, errno)) {
                // Delivery does not remove anything: that step never runs.
                Ok(p) if step == Step::Remove => fs::remove_file(p).expect("rm"),
                Ok(p) => panic!("{step:?} did not fail: {}", p.display()),
                Err(err) => {
                    assert!(err.is_temporary(), "{step:?}: {err}");
                    assert!(
                        matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(errno))
                    );
                }
            }
            assert!(
                names(&md.root().join("new")).is_empty(),
                "{step:?} left new/"
            );
            assert!(
                names(&md.root().join("tmp")).is_empty(),
                "{step:?} left tmp/"
            );
        }
    }
}

#[test]
fn deliver_into_a_missing_maildir_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Maildir::new(dir.path().join("none"))
        .deliver(b"x\n", &Durable::default())
        .expect_err("missing");
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

/// 10,000 deliveries from 8 threads: 10,000 distinct, well-formed names.
#[test]
fn deliver_names_are_unique() {
    const THREADS: usize = 8;
    const EACH: usize = 1250;
    let (_dir, md) = new_maildir();
    let md = Arc::new(md);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let md = Arc::clone(&md);
            std::thread::spawn(move || {
                let d = Durable::default();
                let msg = format!("X-Thread: {t}\n\nbody\n");
                for _ in 0..EACH {
                    md.deliver(msg.as_bytes(), &d).expect("deliver");
                }
                EACH
            })
        })
        .collect();
    let total: usize = workers.into_iter().map(|w| w.join().expect("thread")).sum();
    assert_eq!(total, THREADS * EACH);
    let new = names(&md.root().join("new"));
    assert_eq!(new.len(), THREADS * EACH);
    assert_eq!(new.iter().collect::<HashSet<_>>().len(), new.len());
    for n in &new {
        check_name(n, 18, 21);
    }
}

#[test]
fn error_classes() {
    let io = |errno| Error::Io {
        op: "x",
        path: PathBuf::from("/p"),
        source: io::Error::from_raw_os_error(errno),
    };
    let cases = [
        (io(libc::ENOSPC), true, false),
        (io(libc::EIO), true, false),
        (io(libc::EDQUOT), true, false),
        (io(libc::EAGAIN), true, false),
        (io(libc::ENOENT), true, false),
        (io(libc::EROFS), true, false),
        (io(libc::EACCES), false, true),
        (io(libc::EPERM), false, true),
        (io(libc::ENAMETOOLONG), false, false),
        (io(libc::ENOTDIR), false, false),
        (io(libc::EISDIR), false, false),
        (Error::LockTimeout("/p".into()), true, false),
        (Error::Symlink("/p".into()), false, false),
        (Error::BadFolder("..".into()), false, false),
    ];
    for (e, temporary, permission) in cases {
        assert_eq!(e.is_temporary(), temporary, "{e}");
        assert_eq!(e.is_permission(), permission, "{e}");
    }
}
