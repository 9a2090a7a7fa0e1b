//! The edges of issue 32, with real processes, files and signals: a closed stdout is an error
//! before recv takes anything from the ring; a file size limit (RLIMIT_FSIZE) is one error
//! line, not a SIGXFSZ death; SIGTERM and SIGHUP are named and give 128 + the signal.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const CHANNEL: &str = env!("CARGO_BIN_EXE_channel");

fn dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("channel-test-{name}-"))
        .tempdir()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `sh -c SCRIPT channel ARGS...` (the script runs the binary as "$0" "$@") with `stdin`,
/// killed if it takes longer than 30 s.
fn sh(script: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(CHANNEL)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin);
    drop(input);
    finish(child)
}

const PLAIN: &str = r#"exec "$0" "$@""#;

/// Asserts `out` is a failure with status 1 and one `error:` line containing `needle`.
fn one_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| !l.starts_with("channel:")).collect();
    assert_eq!(out.status.code(), Some(1), "status {:?}: {err}", out.status);
    assert_eq!(errors.len(), 1, "one error line: {err:?}");
    assert!(errors[0].starts_with("error: "), "{err:?}");
    assert!(errors[0].contains(needle), "{err:?} lacks {needle:?}");
}

fn numbers(n: u32) -> Vec<u8> {
    (1..=n)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn recv_with_stdout_closed_takes_nothing_from_the_ring() {
    let d = dir("closed-stdout");
    let ring = d.path().join("rc1");
    let input = numbers(1000);
    let out = sh(PLAIN, &["send", "--file", s(&ring)], &input);
    assert!(out.status.success(), "{out:?}");
    for json in [false, true] {
        let mut args = vec!["recv", "--file", s(&ring)];
        if json {
            args.push("--json");
        }
        let out = sh(r#"exec "$0" "$@" >&-"#, &args, b"");
        one_error(&out, "cannot write to stdout: Bad file descriptor");
        assert!(ring.exists(), "recv with stdout closed removed the ring");
    }
    // info too refuses; it never changes the ring anyway.
    let out = sh(r#"exec "$0" "$@" >&-"#, &["info", "--file", s(&ring)], b"");
    one_error(&out, "cannot write to stdout");
    // Every message is still there for a receiver with a stdout.
    let out = sh(PLAIN, &["recv", "--file", s(&ring)], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, input);
    assert!(!ring.exists());
    // With stdout closed a recv that would create the ring does not.
    let out = sh(r#"exec "$0" "$@" >&-"#, &["recv", "--file", s(&ring)], b"");
    one_error(&out, "cannot write to stdout");
    assert!(!ring.exists(), "recv with stdout closed created the ring");
    // send writes to stdout only with --json.
    let out = sh(
        r#"exec "$0" "$@" >&-"#,
        &["send", "--json", "--file", s(&ring)],
        b"x\n",
    );
    one_error(&out, "cannot write to stdout");
    assert!(
        !ring.exists(),
        "send --json with stdout closed created the ring"
    );
    let out = sh(
        r#"exec "$0" "$@" >&-"#,
        &["send", "--file", s(&ring)],
        b"x\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(ring.exists());
}

#[test]
fn a_file_size_limit_is_one_error_line_not_a_sigxfsz_death() {
    let d = dir("fsize");
    let ring = d.path().join("ring");
    // 8 blocks is at most 8 KiB: a ring of 64 KiB cannot be made.
    let limited = r#"ulimit -f 8 && exec "$0" "$@""#;
    let out = sh(
        limited,
        &["send", "--capacity", "64K", "--file", s(&ring)],
        b"x\n",
    );
    one_error(&out, "File too large");
    assert!(
        !ring.exists(),
        "send under ulimit -f left {}",
        ring.display()
    );
    let out = sh(
        limited,
        &["recv", "--capacity", "64K", "--file", s(&ring)],
        b"",
    );
    one_error(&out, "File too large");
    assert!(
        !ring.exists(),
        "recv under ulimit -f left {}",
        ring.display()
    );
}

/// Polls the ring's header until `cond` holds (30 s at most).
fn wait_for_ring(path: &Path, what: &str, cond: impl Fn(&channel::Info) -> bool) {
    let start = Instant::now();
    while !channel::inspect(path).is_ok_and(|i| cond(&i)) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts `channel ARGS --file RING` with piped stdio.
fn start(args: &[&str], ring: &Path) -> std::process::Child {
    Command::new(CHANNEL)
        .args(args)
        .arg("--file")
        .arg(ring)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn kill(child: &std::process::Child, sig: libc::c_int) {
    // SAFETY: kill(2) with the pid of a child we started and have not reaped yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0);
}

/// Waits (30 s at most) for `child` to exit and returns its output.
fn finish(mut child: std::process::Child) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("channel did not exit in 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn sigterm_and_sighup_are_named_and_exit_128_plus_the_signal() {
    let d = dir("signals");
    let ring = d.path().join("ring");
    for (sig, name, status) in [
        (libc::SIGTERM, "SIGTERM", 143),
        (libc::SIGHUP, "SIGHUP", 129),
        (libc::SIGINT, "Ctrl-C", 130),
    ] {
        // A receiver alone, waiting: the signal removes the ring it created.
        let recv = start(&["recv"], &ring);
        let pid = recv.id();
        wait_for_ring(&ring, "the receiver", |i| i.receiver == Some(pid));
        kill(&recv, sig);
        let out = finish(recv);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{name}: {err}");
        assert!(
            err.contains(&format!("stopped by {name};")),
            "{name}: {err}"
        );
        assert!(!ring.exists(), "{name}: the receiver removed its ring");

        // A sender in read(2) on its stdin (kept open): the stream stops; the ring stays with
        // what was sent, for a receiver.
        let mut send = start(&["send"], &ring);
        let mut stdin = send.stdin.take().unwrap();
        stdin.write_all(b"one\n").unwrap();
        stdin.flush().unwrap();
        let pid = send.id();
        wait_for_ring(&ring, "the sender's message", |i| {
            i.sender == Some(pid) && i.unread > 0
        });
        kill(&send, sig);
        let out = finish(send);
        drop(stdin);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{name}: {err}");
        assert!(
            err.contains(&format!("sent 1 messages (4 bytes), stopped by {name};")),
            "{name}: {err}"
        );
        let info = channel::inspect(&ring).unwrap();
        assert!(info.stopped && !info.closed, "{name}: {info:?}");
        std::fs::remove_file(&ring).unwrap();
    }
}
