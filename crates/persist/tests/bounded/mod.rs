//! Running a program under a deadline: a regression that makes it block fails the test (the
//! process is killed) instead of hanging it.

#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Far longer than any command under test needs; reached only when one blocks.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Reads a child's pipe to its end on a thread (so a chatty child never blocks on a full pipe).
pub fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for `child` until DEADLINE; past it, kills it (SIGKILL) and fails the test.
pub fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} was still running after {DEADLINE:?} (blocked?); killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `bin args` with stdin from /dev/null, bounded by DEADLINE: status and stderr.
pub fn run_bounded(bin: &str, args: &[&str]) -> (ExitStatus, String) {
    let what = format!("{bin} {args:?}");
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_bounded(&mut child, &what);
    let _ = out.join();
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    (status, err)
}
