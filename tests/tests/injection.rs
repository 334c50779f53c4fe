//! Invariants 1, 2 and 6 of DESIGN.md with the real mxa-sendmail: killed at
//! random moments, many at once, nothing acknowledged is lost and nothing
//! half-written is ever visible.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use mxa_spool::QueueId;
use mxa_tests::{System, logged_id, stderr};

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random");
    u64::from_ne_bytes(b)
}

/// A message whose content proves it complete: a token header and a last
/// line naming the same token, with a body of a known size in between.
fn message(token: usize, body: usize) -> Vec<u8> {
    let mut m =
        format!("Subject: crash {token}\nX-Token: {token}\nX-Body: {body}\n\n").into_bytes();
    m.extend(
        std::iter::repeat_n(b'x', body)
            .collect::<Vec<_>>()
            .chunks(70)
            .flat_map(|c| [c, b"\n"].concat()),
    );
    m.extend(format!("END-{token}\n").as_bytes());
    m
}

/// Checks a queued message is complete; returns its token.
fn check_complete(sys: &System, id: &QueueId) -> usize {
    let env = sys
        .spool()
        .envelope(id)
        .unwrap_or_else(|e| panic!("{id}: envelope unreadable: {e}"));
    assert_eq!(env.recipients.len(), 1, "{id}");
    let mut data = String::new();
    sys.spool()
        .open_data(id)
        .expect("data")
        .read_to_string(&mut data)
        .expect("read");
    let token: usize = data
        .lines()
        .find_map(|l| l.strip_prefix("X-Token: "))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{id}: no token: {data:.200}"));
    let body: usize = data
        .lines()
        .find_map(|l| l.strip_prefix("X-Body: "))
        .and_then(|t| t.parse().ok())
        .expect("body size");
    assert!(
        data.ends_with(&format!("\nEND-{token}\n")),
        "{id}: truncated"
    );
    let xs: usize = data
        .lines()
        .filter(|l| !l.is_empty() && l.bytes().all(|b| b == b'x'))
        .map(str::len)
        .sum();
    assert_eq!(xs, body, "{id}: body of wrong size");
    token
}

fn spawn_sendmail(sys: &System, token: usize, body: usize) -> std::process::Child {
    let mut child = sys
        .cmd("mxa-sendmail")
        .args(["-i", "-v", "crash@example.net"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Under 64 KiB: the whole message fits in the pipe, so this never blocks.
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(&message(token, body));
    drop(stdin);
    child
}

/// Issue #2: 200 injections, each killed with SIGKILL at a random moment,
/// leave every message complete or absent, and every success present.
#[test]
fn killed_injections_leave_complete_messages_or_nothing() {
    let sys = System::new();
    mxa_tests::bin_dir(); // build first: the timing below is the injection's alone
    // Measure how long one injection takes (the median of 9), to spread the
    // kills over its whole life: exec, reading, writing, each fsync.
    let mut times: Vec<Duration> = (0..9)
        .map(|i| {
            let t = Instant::now();
            let out = spawn_sendmail(&sys, 1_000_000 + i, 40_000)
                .wait_with_output()
                .expect("wait");
            assert!(out.status.success(), "{}", stderr(&out));
            t.elapsed()
        })
        .collect();
    times.sort();
    let typical = times[4];
    let mut succeeded: HashMap<String, usize> = HashMap::new();
    let mut killed = 0;
    for token in 0..200 {
        let body = (random_u64() % 45_000) as usize;
        let mut child = spawn_sendmail(&sys, token, body);
        let delay = Duration::from_micros(random_u64() % (typical.as_micros() as u64 * 2 + 1));
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let out = child.wait_with_output().expect("wait");
        if out.status.success() {
            let id = logged_id(&stderr(&out)).expect("an acknowledged injection prints its id");
            succeeded.insert(id, token);
        } else {
            killed += 1;
        }
    }
    eprintln!(
        "typical injection {typical:?}; {} acknowledged, {killed} killed first",
        succeeded.len()
    );
    let ids = sys.spool().list().expect("list");
    let mut seen = HashSet::new();
    for id in &ids {
        let token = check_complete(&sys, id);
        assert!(seen.insert(token), "token {token} queued twice");
    }
    for (id, token) in &succeeded {
        let qid = QueueId::parse(id).expect("id");
        assert!(
            ids.contains(&qid),
            "acknowledged {id} (token {token}) was lost"
        );
        assert_eq!(check_complete(&sys, &qid), *token);
    }
    assert!(
        killed > 0,
        "no injection was interrupted: the test proved nothing"
    );
}

/// Issue #2: 8 processes injecting 100 messages each: 800 distinct ids, 800
/// complete messages.
#[test]
fn eight_writers_times_one_hundred() {
    let sys = std::sync::Arc::new(System::new());
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let sys = sys.clone();
            std::thread::spawn(move || {
                (0..100)
                    .map(|i| {
                        let token = w * 1000 + i;
                        let out = spawn_sendmail(&sys, token, 500 + i)
                            .wait_with_output()
                            .expect("wait");
                        assert!(out.status.success(), "{}", stderr(&out));
                        (logged_id(&stderr(&out)).expect("id"), token)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<(String, usize)> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    let distinct: HashSet<&String> = results.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), 800);
    let ids = sys.spool().list().expect("list");
    assert_eq!(ids.len(), 800);
    for (id, token) in &results {
        assert_eq!(
            check_complete(&sys, &QueueId::parse(id).expect("id")),
            *token
        );
    }
    // Ids sort by time: the list is in id order and every id is well formed.
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}
