//! Tests of each transition of the protocol and of each recovery.

use super::*;
use std::collections::HashSet;
use std::sync::Arc;

use mxa_durable::Step;

fn spool() -> (tempfile::TempDir, Spool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Spool::new(dir.path().join("spool"));
    (dir, s)
}

fn env() -> Envelope {
    Envelope::new(
        "alice@example.org",
        [
            "bob@example.net".to_string(),
            "carol@example.com".to_string(),
        ],
    )
}

fn visible_files(s: &Spool) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in ["data", "env", "tmp"] {
        if let Ok(rd) = fs::read_dir(s.dir(d)) {
            v.extend(rd.flatten().map(|e| e.path()));
        }
    }
    v
}

#[test]
fn missing_spool_is_empty() {
    let (_d, s) = spool();
    assert!(s.list().expect("list").is_empty());
    assert_eq!(s.cleanup(TMP_MAX_AGE).expect("cleanup"), 0);
}

#[test]
fn inject_then_read_back() {
    let (_d, s) = spool();
    let id = s.inject(&env(), b"Subject: hi\n\nbody\n").expect("inject");
    assert_eq!(s.list().expect("list"), vec![id.clone()]);
    assert_eq!(s.envelope(&id).expect("env"), env_with_created(&s, &id));
    let mut data = String::new();
    s.open_data(&id)
        .expect("data")
        .read_to_string(&mut data)
        .expect("read");
    assert_eq!(data, "Subject: hi\n\nbody\n");
    // Nothing is left in tmp/ after a successful injection.
    assert_eq!(fs::read_dir(s.dir("tmp")).expect("tmp").count(), 0);
}

fn env_with_created(s: &Spool, id: &QueueId) -> Envelope {
    let mut e = env();
    e.created = s.envelope(id).expect("env").created;
    e
}

#[test]
fn dropped_injection_leaves_nothing() {
    let (_d, s) = spool();
    {
        let mut inj = s.begin().expect("begin");
        inj.write_all(b"half a mess").expect("write");
    }
    assert!(s.list().expect("list").is_empty());
    assert!(visible_files(&s).is_empty(), "{:?}", visible_files(&s));
}

/// Issue #2: ENOSPC or EIO at each step of the durable write, for the data
/// file and for the envelope, reports failure and leaves nothing visible.
#[test]
fn faults_at_every_step_leave_nothing() {
    for target in ["data", "env"] {
        for step in [
            Step::Create,
            Step::Write,
            Step::SyncFile,
            Step::Publish,
            Step::SyncDir,
        ] {
            for errno in [nix::errno::Errno::ENOSPC, nix::errno::Errno::EIO] {
                let (_d, s) = spool();
                let t = target.to_string();
                let fault: mxa_durable::Fault = Arc::new(move |st, p: &Path| {
                    let hit = if t == "data" {
                        p.to_string_lossy().contains(".data")
                            || p.ends_with("data")
                            || p.parent().is_some_and(|d| d.ends_with("data"))
                    } else {
                        p.to_string_lossy().contains(".env")
                            || p.ends_with("env")
                            || p.parent().is_some_and(|d| d.ends_with("env"))
                    };
                    if st == step && hit {
                        Err(io::Error::from(errno))
                    } else {
                        Ok(())
                    }
                });
                let s = s.with_durable(Durable::with_fault(fault));
                let r = s.inject(&env(), b"Subject: x\n\nbody\n");
                assert!(
                    r.is_err(),
                    "{target} {step:?} {errno}: injection reported success"
                );
                assert!(
                    s.list().expect("list").is_empty(),
                    "{target} {step:?}: message visible"
                );
                let left = visible_files(&s);
                assert!(left.is_empty(), "{target} {step:?} {errno}: left {left:?}");
            }
        }
    }
}

#[test]
fn claim_is_exclusive_and_released_on_drop() {
    let (_d, s) = spool();
    let id = s.inject(&env(), b"x\n").expect("inject");
    let c = s.claim(&id).expect("claim");
    assert!(matches!(s.claim(&id), Err(Error::Busy(_))));
    drop(c);
    s.claim(&id).expect("claim again");
}

/// The lock lives in the kernel: a process that dies holding it frees it.
#[test]
fn claim_of_a_dead_process_is_free() {
    let (_d, s) = spool();
    let id = s.inject(&env(), b"x\n").expect("inject");
    let path = s.data_path(&id);
    // flock(1) from util-linux holds the lock in a child we then kill.
    let child = std::process::Command::new("flock")
        .arg("-o")
        .arg(&path)
        .arg("sleep")
        .arg("30")
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIP: flock(1) not installed");
        return;
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(matches!(s.claim(&id), Err(Error::Busy(_))));
    child.kill().expect("kill");
    child.wait().expect("wait");
    s.claim_wait(&id, Duration::from_secs(5))
        .expect("free after death");
}

#[test]
fn update_replaces_envelope_atomically() {
    let (_d, s) = spool();
    let id = s.inject(&env(), b"x\n").expect("inject");
    let mut c = s.claim(&id).expect("claim");
    let mut e = c.envelope().clone();
    e.recipients[0].state = State::Deferred;
    e.recipients[0].attempts = 1;
    e.recipients[0].next_try = Some(42);
    e.recipients[0].last_reply = Some("451 4.7.1 later".into());
    c.update(e.clone()).expect("update");
    drop(c);
    assert_eq!(s.envelope(&id).expect("env"), e);
    assert_eq!(fs::read_dir(s.dir("tmp")).expect("tmp").count(), 0);
}

#[test]
fn remove_takes_the_message_out() {
    let (_d, s) = spool();
    let id = s.inject(&env(), b"x\n").expect("inject");
    s.claim(&id).expect("claim").remove().expect("remove");
    assert!(s.list().expect("list").is_empty());
    assert!(visible_files(&s).is_empty());
    assert!(matches!(s.claim(&id), Err(Error::NotFound(_))));
    assert!(matches!(s.envelope(&id), Err(Error::NotFound(_))));
}

#[test]
fn cleanup_sweeps_only_old_leftovers() {
    let (_d, s) = spool();
    let queued = s.inject(&env(), b"x\n").expect("inject");
    s.create_dirs().expect("dirs");
    let orphan = QueueId::generate();
    fs::write(s.data_path(&orphan), b"orphan").expect("write");
    fs::write(s.dir("tmp").join("junk.data"), b"junk").expect("write");
    // Young leftovers stay: an injection may be writing them right now.
    assert_eq!(s.cleanup(TMP_MAX_AGE).expect("cleanup"), 0);
    // Made "old" by a zero max age, they go; the queued message stays.
    assert_eq!(s.cleanup(Duration::ZERO).expect("cleanup"), 2);
    assert!(!s.data_path(&orphan).exists());
    assert_eq!(s.list().expect("list"), vec![queued.clone()]);
    assert!(s.data_path(&queued).exists());
}

/// What a crash between the links and the directory fsyncs of an
/// injection may leave: an envelope without data, never acknowledged.
#[test]
fn cleanup_removes_an_envelope_without_data_at_once() {
    let (_d, s) = spool();
    let kept = s.inject(&env(), b"x\n").expect("inject");
    let broken = s.inject(&env(), b"y\n").expect("inject");
    fs::remove_file(s.data_path(&broken)).expect("remove data");
    assert_eq!(s.cleanup(TMP_MAX_AGE).expect("cleanup"), 1);
    assert_eq!(s.list().expect("list"), vec![kept]);
    assert!(!s.env_path(&broken).exists());
}

#[test]
fn waiter_wakes_on_injection() {
    let (_d, s) = spool();
    let w = s.waiter().expect("waiter");
    assert!(!w.wait(Duration::from_millis(50)));
    let s2 = s.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        s2.inject(&env(), b"x\n").expect("inject");
    });
    assert!(w.wait(Duration::from_secs(10)), "not woken");
    t.join().expect("join");
}

#[test]
fn concurrent_injections_get_distinct_ids() {
    let (_d, s) = spool();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|_| s.inject(&env(), b"x\n").expect("inject"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: HashSet<QueueId> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("join"))
        .collect();
    assert_eq!(ids.len(), 400);
    assert_eq!(s.list().expect("list").len(), 400);
}

#[test]
fn damaged_envelope_is_reported_with_its_line() {
    let (_d, s) = spool();
    let id = s.inject(&env(), b"x\n").expect("inject");
    fs::write(s.env_path(&id), "mxa-envelope 1\nsender <>\nbogus 1\n").expect("write");
    match s.envelope(&id) {
        Err(Error::BadEnvelope { line, .. }) => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
}
