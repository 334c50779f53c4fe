//! Running an outside command (a filter, a `.forward` `|command`) with the
//! message on stdin, a deadline, and bounded capture of what it prints.

use std::io::{self, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Most bytes of stderr kept for the failure line.
const STDERR_KEEP: usize = 4096;

/// What a command did.
#[derive(Debug)]
pub struct Outcome {
    /// Its exit status; None when it was killed for running too long.
    pub status: Option<ExitStatus>,
    /// What it printed on stdout (when captured).
    pub stdout: Vec<u8>,
    /// The start of what it printed on stderr.
    pub stderr: String,
}

impl Outcome {
    /// The first line of stderr, or how it ended, for a one-line reason.
    pub fn reason(&self) -> String {
        let line = self
            .stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let how = match self.status {
            None => "timed out".to_string(),
            Some(s) => s.to_string(),
        };
        if line.is_empty() {
            how
        } else {
            format!("{how}: {line}")
        }
    }
}

/// Runs `cmd` with `input` on stdin; captures stdout up to `stdout_max`
/// bytes when given (more is an error), kills it after `timeout`.
pub fn run(
    cmd: &mut Command,
    input: &[u8],
    timeout: Duration,
    stdout_max: Option<usize>,
) -> io::Result<Outcome> {
    let capture = stdout_max.is_some();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take();
    let input = input.to_vec();
    // A filter may print before reading everything: write from a thread.
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&input); // EPIPE: it did not want it all
        }
    });
    let out = child.stdout.take().map(|o| {
        let max = stdout_max.unwrap_or(0) as u64 + 1;
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = o.take(max).read_to_end(&mut v);
            v
        })
    });
    let err = child.stderr.take().map(|e| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = e.take(STDERR_KEEP as u64).read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = writer.join();
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    if let Some(max) = stdout_max
        && stdout.len() > max
    {
        return Err(io::Error::other(format!("printed more than {max} bytes")));
    }
    Ok(Outcome {
        status,
        stdout,
        stderr,
    })
}
