//! Injections per second through mxa-spool, beside the raw rate of the same
//! disk for one durable file (create + write + fsync + rename + directory
//! fsync) of the same size, measured in the same run.
//!
//! `cargo bench -p mxa-spool --bench inject [-- N SIZE DIR]`
//! (default 2000 messages of 4096 bytes, in a temporary folder under the
//! target directory, so on the disk the spool would use).
//!
//! An injection makes two durable files (data and envelope), so a ratio
//! near 0.5 means the spool adds nothing beyond the fsyncs it needs.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use mxa_spool::{Envelope, Spool};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let size: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4096);
    let base = args
        .get(2)
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("mxa-bench-")
        .tempdir_in(base)
        .expect("tempdir");
    let msg = message(size);

    let raw = raw_rate(&dir.path().join("raw"), n, &msg);
    let spool = spool_rate(&dir.path().join("spool"), n, &msg);
    println!("messages: {n} of {size} bytes in {}", dir.path().display());
    println!("raw durable files/s:     {raw:>9.0}  (create+write+fsync+rename+dir fsync)");
    println!("spool injections/s:      {spool:>9.0}  (data + envelope, each durable)");
    println!("ratio spool/raw:         {:>9.2}", spool / raw);
}

fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: a@example.org\nTo: b@example.net\nSubject: bench\n\n".to_vec();
    while m.len() < size {
        m.extend_from_slice(b"The quick brown fox jumps over the lazy dog, again and again.\n");
    }
    m.truncate(size);
    m
}

fn raw_rate(dir: &Path, n: usize, msg: &[u8]) -> f64 {
    fs::create_dir_all(dir).expect("mkdir");
    let t = Instant::now();
    for i in 0..n {
        let tmp = dir.join(format!("t{i}"));
        let mut f = File::create_new(&tmp).expect("create");
        f.write_all(msg).expect("write");
        f.sync_all().expect("fsync");
        drop(f);
        fs::rename(&tmp, dir.join(format!("f{i}"))).expect("rename");
        File::open(dir)
            .and_then(|d| d.sync_all())
            .expect("dir fsync");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn spool_rate(dir: &Path, n: usize, msg: &[u8]) -> f64 {
    let spool = Spool::new(dir);
    let env = Envelope::new("a@example.org", ["b@example.net".to_string()]);
    let t = Instant::now();
    for _ in 0..n {
        spool.inject(&env, msg).expect("inject");
    }
    n as f64 / t.elapsed().as_secs_f64()
}
