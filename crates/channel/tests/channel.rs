//! The `channel` binary, live: real processes sharing a real ring file. Each test works in its
//! own temporary directory and waits for conditions (a ring header field, a line of output, an
//! exit) with a timeout; nothing sleeps in place of synchronisation. Elapsed times are printed,
//! never asserted.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use channel::bench::{BenchReport, Placement, Transport};
use channel::report::RecvLine;

const CHANNEL: &str = env!("CARGO_BIN_EXE_channel");
const TIMEOUT: Duration = Duration::from_secs(30);

/// A temporary directory; processes started through it are killed when it is dropped.
struct Dir {
    tmp: tempfile::TempDir,
    children: Vec<Child>,
}

impl Dir {
    fn new(name: &str) -> Dir {
        Dir {
            tmp: tempfile::Builder::new()
                .prefix(&format!("channel-test-{name}-"))
                .tempdir()
                .unwrap(),
            children: Vec::new(),
        }
    }

    fn ring(&self) -> PathBuf {
        self.tmp.path().join("ring")
    }

    /// `channel ARGS... --file RING` with piped stdio, started.
    fn start(&mut self, args: &[&str]) -> usize {
        self.start_with_stdout(args, Stdio::piped())
    }

    /// `channel ARGS... --file RING` with piped stdin and stderr, started.
    fn start_with_stdout(&mut self, args: &[&str], stdout: Stdio) -> usize {
        let child = Command::new(CHANNEL)
            .args(args)
            .arg("--file")
            .arg(self.ring())
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    /// `channel send` of `input`, to its end, which must succeed.
    fn send_all(&mut self, input: &[u8]) {
        let send = self.start(&["send"]);
        self.child(send)
            .stdin
            .take()
            .unwrap()
            .write_all(input)
            .unwrap();
        let (sent, _) = self.finish(send);
        assert!(sent.status.success(), "{:?}", stderr_lines(&sent));
    }

    fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
    }

    /// Waits for a child to exit (killing it after the timeout) and collects its output.
    fn finish(&mut self, i: usize) -> (Output, Duration) {
        let start = Instant::now();
        let child = &mut self.children[i];
        drop(child.stdin.take());
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if start.elapsed() > TIMEOUT {
                child.kill().unwrap();
                panic!("a channel process did not exit within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let Some(mut o) = child.stdout.take() {
            o.read_to_end(&mut stdout).unwrap();
        }
        if let Some(mut e) = child.stderr.take() {
            e.read_to_end(&mut stderr).unwrap();
        }
        let status = child.wait().unwrap();
        (
            Output {
                status,
                stdout,
                stderr,
            },
            start.elapsed(),
        )
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls the ring's header until `cond` holds.
fn wait_for_ring(path: &Path, what: &str, cond: impl Fn(&channel::Info) -> bool) -> channel::Info {
    let start = Instant::now();
    loop {
        if let Ok(info) = channel::inspect(path) {
            if cond(&info) {
                return info;
            }
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn stderr_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

fn the_error_line(o: &Output) -> String {
    let lines = stderr_lines(o);
    let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "expected one error line: {lines:?}");
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{lines:?}"
    );
    errors[0].clone()
}

fn sigint(child: &Child) {
    // SAFETY: kill(2) with a pid of a child we started and have not reaped yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
}

#[test]
fn send_and_recv_move_stdin_to_stdout_byte_for_byte() {
    let mut dir = Dir::new("e2e");
    // Lines of many lengths, one longer than a 4 KiB ring takes (split into pieces), and a
    // last line without a newline.
    let mut input = Vec::new();
    for i in 0..3000u32 {
        let len = (i * 7919) % 300;
        input.extend((0..len).map(|j| b'a' + ((i + j) % 26) as u8));
        input.push(b'\n');
    }
    input.extend(vec![b'L'; 10_000]);
    input.push(b'\n');
    input.extend_from_slice(b"the end, without a newline");
    let recv = dir.start(&["recv", "--capacity", "4K"]);
    let send = dir.start(&["send", "--capacity", "4K", "--json"]);
    // Feed and drain concurrently: the ring holds 4 KiB and the pipes 64 KiB.
    let mut stdout = dir.child(recv).stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).unwrap();
        out
    });
    let mut stdin = dir.child(send).stdin.take().unwrap();
    {
        let input = input.clone();
        std::thread::spawn(move || stdin.write_all(&input).unwrap());
    }
    let (sent, _) = dir.finish(send);
    assert!(sent.status.success(), "{:?}", stderr_lines(&sent));
    let report: channel::report::SendReport = serde_json::from_slice(&sent.stdout).unwrap();
    assert_eq!(report.bytes, input.len() as u64);
    assert_eq!(
        report.messages,
        3000 + 5 + 1,
        "10,000 bytes in 2040-byte pieces: 5"
    );
    let (received, _) = dir.finish(recv);
    assert!(received.status.success(), "{:?}", stderr_lines(&received));
    let output = reader.join().unwrap();
    assert_eq!(output.len(), input.len());
    assert!(output == input, "the output differs from the input");
    assert!(!dir.ring().exists(), "the last side out removes the ring");
}

#[test]
fn recv_json_prints_one_object_per_message_and_an_end() {
    let mut dir = Dir::new("json");
    dir.send_all(b"one\ntwo\n");
    assert!(
        dir.ring().exists(),
        "unread messages keep the ring for a receiver"
    );
    let recv = dir.start(&["recv", "--json"]);
    let (out, _) = dir.finish(recv);
    assert!(out.status.success(), "{:?}", stderr_lines(&out));
    let lines: Vec<RecvLine> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            RecvLine::Message {
                seq: 1,
                bytes: 4,
                text: "one".into(),
                lossy: false,
            },
            RecvLine::Message {
                seq: 2,
                bytes: 4,
                text: "two".into(),
                lossy: false,
            },
            RecvLine::End {
                reason: "closed".into(),
                messages: 2,
                bytes: 8,
                removed: true
            },
        ]
    );
    assert!(!dir.ring().exists());
}

#[test]
fn recv_json_marks_a_message_that_was_not_utf8_as_lossy() {
    let mut dir = Dir::new("recv-json-lossy");
    dir.send_all(b"ok\nbad\xff\n");
    let recv = dir.start(&["recv", "--json"]);
    let (out, _) = dir.finish(recv);
    assert!(out.status.success(), "{:?}", stderr_lines(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    // A valid message has no "lossy" key at all: the shape consumers already parse.
    assert_eq!(
        lines[0],
        serde_json::json!({"message": {"seq": 1, "bytes": 3, "text": "ok"}})
    );
    assert_eq!(
        lines[1],
        serde_json::json!({"message": {"seq": 2, "bytes": 5, "text": "bad\u{fffd}", "lossy": true}})
    );
    let parsed: RecvLine = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert!(matches!(parsed, RecvLine::Message { lossy: true, .. }));
}

#[test]
fn a_sender_killed_mid_stream_is_reported_by_the_receiver() {
    let mut dir = Dir::new("kill-sender");
    let recv = dir.start(&["recv"]);
    let send = dir.start(&["send"]);
    let mut stdin = dir.child(send).stdin.take().unwrap();
    stdin.write_all(b"first line\n").unwrap();
    // The receiver printed it: the stream is under way.
    let stdout = dir.child(recv).stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    assert_eq!(lines.recv_timeout(TIMEOUT).unwrap(), "first line");
    let killed = Instant::now();
    dir.child(send).kill().unwrap(); // SIGKILL: no chance to close the stream.
    let (out, _) = dir.finish(recv);
    let noticed = killed.elapsed();
    eprintln!("the receiver reported the dead sender after {noticed:?} (goal: within 1 s)");
    assert_eq!(out.status.code(), Some(1), "{:?}", stderr_lines(&out));
    let line = the_error_line(&out);
    assert!(line.contains("died without closing"), "{line}");
    assert!(
        !dir.ring().exists(),
        "the survivor, last out, removes the empty ring"
    );
}

#[test]
fn a_receiver_killed_while_the_sender_waits_for_space_is_reported() {
    let mut dir = Dir::new("kill-receiver");
    let ring = dir.ring();
    // The receiver's stdout is a pipe nobody reads: it blocks once the pipe is full, holding
    // the ring full too.
    let recv = dir.start(&["recv", "--capacity", "4K"]);
    wait_for_ring(&ring, "the receiver to attach", |i| i.receiver.is_some());
    let send = dir.start(&["send"]);
    let mut stdin = dir.child(send).stdin.take().unwrap();
    std::thread::spawn(move || {
        let line = [b'x'; 999];
        for _ in 0..2000 {
            if stdin
                .write_all(&line)
                .and_then(|_| stdin.write_all(b"\n"))
                .is_err()
            {
                break;
            }
        }
    });
    // Three 1008-byte records always fit in 4 KiB, whatever the padding; then it is full.
    wait_for_ring(&ring, "the ring to fill up", |i| i.unread >= 3 * 1008);
    let killed = Instant::now();
    dir.child(recv).kill().unwrap();
    let (out, _) = dir.finish(send);
    eprintln!(
        "the sender reported the dead receiver after {:?} (goal: within 1 s)",
        killed.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{:?}", stderr_lines(&out));
    let line = the_error_line(&out);
    assert!(line.contains("the receiver (pid"), "{line}");
    assert!(
        line.contains("did not read are still in the ring"),
        "{line}"
    );
    // Unread data is never thrown away silently: the ring stays, and says so.
    let info = channel::inspect(&ring).unwrap();
    assert!(info.unread > 0 && info.sender.is_none() && info.receiver.is_none());
}

#[test]
fn a_second_sender_is_refused_with_one_line() {
    let mut dir = Dir::new("two-senders");
    let first = dir.start(&["send"]);
    let pid = dir.child(first).id();
    wait_for_ring(&dir.ring(), "the first sender to attach", |i| {
        i.sender == Some(pid)
    });
    let second = dir.start(&["send"]);
    let (out, _) = dir.finish(second);
    assert_eq!(out.status.code(), Some(1));
    let line = the_error_line(&out);
    assert!(
        line.contains(&format!(
            "already has a sender (pid {pid}); only one sender at a time"
        )),
        "{line}"
    );
    let (out, _) = dir.finish(first);
    assert!(out.status.success(), "{:?}", stderr_lines(&out));
    assert!(!dir.ring().exists());
}

#[test]
fn damaged_and_foreign_files_get_one_line_exit_1_and_stay_untouched() {
    let dir = Dir::new("damaged");
    let valid_but_resized = dir.tmp.path().join("resized");
    {
        let mut tx = channel::Sender::open(
            &valid_but_resized,
            channel::Options {
                capacity: 4096,
                ..Default::default()
            },
        )
        .unwrap();
        tx.send(b"keep me").unwrap();
        tx.close().unwrap();
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&valid_but_resized)
        .unwrap()
        .set_len(6000)
        .unwrap();
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "empty",
            dir.tmp.path().join("empty"),
            "less than the 4096-byte header",
        ),
        (
            "short",
            dir.tmp.path().join("short"),
            "less than the 4096-byte header",
        ),
        ("foreign", dir.tmp.path().join("foreign"), "bad magic"),
        (
            "resized",
            valid_but_resized.clone(),
            "a ring of capacity 4096 has 8192",
        ),
    ];
    std::fs::write(&cases[0].1, b"").unwrap();
    std::fs::write(&cases[1].1, b"hello\n").unwrap();
    std::fs::write(&cases[2].1, vec![b'#'; 10_000]).unwrap();
    for (name, path, reason) in &cases {
        let before = std::fs::read(path).unwrap();
        for cmd in ["recv", "send", "info"] {
            let out = Command::new(CHANNEL)
                .args([cmd, "--file"])
                .arg(path)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{cmd} on {name}");
            let line = the_error_line(&out);
            let expected = format!("error: {} is not a valid channel ring: ", path.display());
            assert!(line.starts_with(&expected), "{cmd} on {name}: {line}");
            assert!(line.contains(reason), "{cmd} on {name}: {line}");
        }
        assert_eq!(std::fs::read(path).unwrap(), before, "{name} was modified");
    }
}

#[test]
fn usage_errors_are_one_line_with_status_2() {
    for args in [
        &["bench", "--size", "12Q"][..],
        &["frobnicate"],
        &["send", "--capacity", "lots"],
        &["bench", "--only", "carrier-pigeon"],
        &["bench", "--repeat", "100"],
        &["bench", "--repeat", "-1"],
    ] {
        let out = Command::new(CHANNEL).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
        assert!(text.starts_with("error: "), "{args:?}: {text}");
    }
}

/// (A bad `--capacity` was a runtime error too until issue 22 made it a usage error: see
/// `a_capacity_that_is_no_power_of_two_is_a_usage_error`.)
#[test]
fn a_cacheline_of_64_bytes_is_a_runtime_error() {
    let out = Command::new(CHANNEL)
        .args(["bench", "--only", "cacheline", "--size", "64"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(the_error_line(&out).contains("use --size 8"));
}

#[test]
fn ctrl_c_leaves_cleanly_a_sender_interrupted_stops_the_stream() {
    let mut dir = Dir::new("ctrl-c");
    let ring = dir.ring();
    let recv = dir.start(&["recv"]);
    let send = dir.start(&["send"]);
    let send_pid = dir.child(send).id();
    wait_for_ring(&ring, "both to attach", |i| {
        i.sender == Some(send_pid) && i.receiver.is_some()
    });
    // The sender sits in read(2) on its stdin (kept open): Ctrl-C.
    let stdin = dir.child(send).stdin.take().unwrap();
    sigint(dir.child(send));
    let (out, _) = dir.finish(send);
    drop(stdin);
    assert_eq!(out.status.code(), Some(130), "{:?}", stderr_lines(&out));
    let (out, _) = dir.finish(recv);
    // Its input was not all sent: the receiver says so instead of reporting a whole stream.
    assert_eq!(out.status.code(), Some(1), "{:?}", stderr_lines(&out));
    assert!(
        the_error_line(&out).contains("the sender stopped before the end of its stream"),
        "{:?}",
        stderr_lines(&out)
    );
    assert!(!ring.exists());

    // A receiver alone, waiting: Ctrl-C removes the ring it created.
    let recv = dir.start(&["recv"]);
    let pid = dir.child(recv).id();
    wait_for_ring(&ring, "the receiver to attach", |i| i.receiver == Some(pid));
    sigint(dir.child(recv));
    let (out, _) = dir.finish(recv);
    assert_eq!(out.status.code(), Some(130), "{:?}", stderr_lines(&out));
    assert!(!ring.exists(), "the interrupted receiver removed its ring");
}

fn bench_json(args: &[&str]) -> BenchReport {
    let out = Command::new(CHANNEL)
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bench_runs_exactly_one_cell_on_one_cpu_through_the_futex() {
    for transport in ["ring-wait", "pipe", "unix-socket"] {
        let report = bench_json(&[
            "--only",
            transport,
            "--size",
            "64",
            "--placement",
            "one-cpu",
            "--messages",
            "300",
        ]);
        assert_eq!(report.rows.len(), 1, "{transport}");
        let row = &report.rows[0];
        assert_eq!(row.transport, Transport::from_name(transport).unwrap());
        assert_eq!((row.placement, row.size), (Placement::OneCpu, 64));
        assert!(row.rtt_ns.median > 0.0 && row.rtt_ns.p99 >= row.rtt_ns.median);
        assert!(row.msgs_per_s > 0.0);
        assert!((row.bytes_per_s / (row.msgs_per_s * 64.0) - 1.0).abs() < 1e-9);
        assert!(!report.machine.cpus_allowed.is_empty());
    }
}

#[test]
fn bench_on_two_cpus_measures_the_floor_and_the_spinning_ring() {
    let cpus = channel::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        use std::io::Write as _;
        // Straight to stderr: libtest hides what eprintln! prints in a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: this process may run on one CPU only ({cpus:?}); two-cpus needs two"
        );
        return;
    }
    for (transport, size) in [("cacheline", "8"), ("ring-spin", "1M")] {
        let report = bench_json(&[
            "--only",
            transport,
            "--size",
            size,
            "--placement",
            "two-cpus",
            "--messages",
            "200",
        ]);
        assert_eq!(report.rows.len(), 1);
        assert_eq!(report.rows[0].placement, Placement::TwoCpus);
    }
}

/// The floor goal's alternated runs: `--repeat N` runs the floor's cell and ring-spin 64 B's
/// N times, whatever `--only` says, and the goal is decided by them; without two CPUs they
/// are skipped with a note.
#[test]
fn bench_repeat_alternates_the_floor_and_ring_spin_runs() {
    let cpus = channel::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: this process may run on one CPU only ({cpus:?}); the floor runs need two"
        );
        assert!(
            !matches!(std::env::var_os("CI"), Some(v) if v == "true"),
            "CI must run the two-CPU bench"
        );
        return;
    }
    let report = bench_json(&[
        "--only",
        "ring-spin",
        "--size",
        "64",
        "--placement",
        "two-cpus",
        "--messages",
        "200",
        "--repeat",
        "2",
    ]);
    assert_eq!(report.rows.len(), 1);
    assert_eq!(report.floor_runs.len(), 2);
    for run in &report.floor_runs {
        assert!(run.floor_ns > 0.0 && run.ring_spin_ns > 0.0, "{run:?}");
        assert!((run.ratio - run.ring_spin_ns / run.floor_ns).abs() < 1e-9);
        assert_eq!(run.met, run.ratio <= 1.5);
    }
    let goal = channel::bench::goals(&report)
        .into_iter()
        .find(|g| g.id() == channel::bench::GoalId::SpinNearFloor)
        .unwrap();
    assert_eq!(
        goal.met(),
        Some(report.floor_runs.iter().all(|r| r.met)),
        "{goal:?}"
    );
    // One CPU only: no runs, and a note that says why.
    let out = Command::new(CHANNEL)
        .args([
            "bench",
            "--only",
            "pipe",
            "--size",
            "64",
            "--placement",
            "one-cpu",
        ])
        .args(["--messages", "20", "--repeat", "2", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: BenchReport = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.floor_runs.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("they need two CPUs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ctrl_c_stops_the_bench_and_leaves_no_file_behind() {
    let dir = Dir::new("bench-ctrl-c");
    let mut bench = Command::new(CHANNEL)
        .args(["bench", "--quick", "--dir"])
        .arg(dir.tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first cell is done, then interrupt the second one mid-flight.
    let mut stderr = BufReader::new(bench.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "bench ended early"
        );
        if line.contains("round trips") {
            break;
        }
    }
    sigint(&bench);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = bench.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("channel: interrupted"), "{rest}");
    let left: Vec<_> = std::fs::read_dir(dir.tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

// ---- Issue 22: nothing lost at the edges ----

/// xorshift64*: reproducible pseudo-random delays and amounts (the seed is printed).
struct Rng(u64);

impl Rng {
    fn from_clock() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(nanos | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// A line on stderr that `cargo test` shows even for a passing test.
fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn sigkill(child: &Child) {
    // SAFETY: kill(2) with a pid of a child we started and have not reaped yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0);
}

/// A pipe whose buffer holds one page (`pipe2(2)`, `fcntl(2)` `F_SETPIPE_SZ`), so that a
/// writer blocks after 4 KiB instead of 64 KiB: (read end, write end).
fn one_page_pipe() -> (std::fs::File, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (read, write) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours.
    let rc = unsafe { libc::fcntl(fds[0], libc::F_SETPIPE_SZ, 4096) };
    assert_eq!(rc, 4096, "F_SETPIPE_SZ");
    (read, write)
}

/// Waits for `child` to exit, killing it (and failing) after `limit`.
fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `channel ARGS...` with no stdin, stdout to `stdout`, bounded by `limit`; stderr collected.
fn run_bounded(args: &[&std::ffi::OsStr], stdout: Stdio, limit: Duration) -> Output {
    let child = Command::new(CHANNEL)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    collect(child, limit, &format!("channel {args:?}"))
}

/// Waits for `child` to exit (bounded, see [`wait_exit`]), then reads what it left in its
/// piped stdout and stderr (small outputs: a pipe holds 64 KiB).
fn collect(mut child: Child, limit: Duration, what: &str) -> Output {
    let status = wait_exit(&mut child, limit, what);
    let read = |pipe: Option<&mut dyn Read>| {
        let mut bytes = Vec::new();
        if let Some(p) = pipe {
            p.read_to_end(&mut bytes).unwrap();
        }
        bytes
    };
    let stdout = read(child.stdout.as_mut().map(|p| p as &mut dyn Read));
    let stderr = read(child.stderr.as_mut().map(|p| p as &mut dyn Read));
    Output {
        status,
        stdout,
        stderr,
    }
}

fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(Into::into).collect()
}

fn run_channel(args: &[std::ffi::OsString], stdout: Stdio) -> Output {
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    run_bounded(&refs, stdout, Duration::from_secs(10))
}

/// What one receiver printed before it was killed (or ended), split into whole lines and a
/// final partial line (a write the kill cut short).
struct Segment {
    lines: Vec<u64>,
    partial: Vec<u8>,
}

fn parse_segment(out: &[u8]) -> Segment {
    let cut = out.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let lines = out[..cut]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| std::str::from_utf8(l).unwrap().parse().unwrap())
        .collect();
    Segment {
        lines,
        partial: out[cut..].to_vec(),
    }
}

/// Checks the concatenated output of successive receivers: within a receiver the lines run
/// on one by one; the next receiver starts at most one past where the previous one stopped (a
/// later start is a gap: lines lost), and may repeat a span before it. Returns (lines lost,
/// lines repeated).
fn gaps_and_repeats(segments: &[Segment], total: u64) -> (u64, u64) {
    let (mut lost, mut repeated) = (0, 0);
    let mut next = 1u64; // The first line nobody printed yet.
    for (k, s) in segments.iter().enumerate() {
        for pair in s.lines.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "receiver {k} skipped within its output"
            );
        }
        if let Some(&first) = s.lines.first() {
            if first > next {
                lost += first - next;
            }
            let last = *s.lines.last().unwrap();
            repeated += (next.min(last + 1)).saturating_sub(first);
            next = next.max(last + 1);
        }
        // A write cut short by the kill: a prefix of the line that follows.
        let after = s.lines.last().map_or(1, |l| l + 1);
        let expected = format!("{after:07}\n");
        assert!(
            expected.as_bytes().starts_with(&s.partial),
            "receiver {k} ended with {:?}, not a prefix of line {after}",
            String::from_utf8_lossy(&s.partial)
        );
    }
    assert!(
        next > total,
        "the last receiver stopped at line {next} of {total}"
    );
    (lost, repeated)
}

/// Issue 22: `recv` killed by SIGKILL must lose nothing. A closed stream of numbered lines
/// waits in the ring; receivers are started one after the other, their stdout a one-page pipe
/// that this test reads a random amount from before killing them (so most kills hit a
/// receiver blocked in write(2), the rest one busy copying); the last one runs to the end.
#[test]
fn a_receiver_killed_at_any_instant_loses_no_message() {
    const LINES: u64 = 60_000; // 16-byte records: 960,000 bytes, inside a 1 MiB ring.
    const KILLS: usize = 20;
    let mut dir = Dir::new("kill-recv");
    let send = dir.start(&["send", "--capacity", "1M"]);
    {
        let mut stdin = dir.child(send).stdin.take().unwrap();
        let input: String = (1..=LINES).map(|i| format!("{i:07}\n")).collect();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let (sent, _) = dir.finish(send);
    assert!(sent.status.success(), "{:?}", stderr_lines(&sent));
    let mut rng = Rng::from_clock();
    notice(&format!("kill-recv: seed {}", rng.0));
    let mut segments = Vec::new();
    let started = Instant::now();
    for k in 0..=KILLS {
        let (mut stdout, write_end) = one_page_pipe();
        let recv = dir.start_with_stdout(&["recv"], Stdio::from(write_end));
        let child = dir.child(recv);
        let mut out = Vec::new();
        if k < KILLS {
            // Read a random amount (0 to 24 KiB) of what it prints: a real condition, the
            // output growing; then a random moment (up to 2 ms) and SIGKILL.
            let want = rng.below(24 * 1024) as usize;
            let mut buf = [0u8; 1024];
            while out.len() < want {
                let n = stdout
                    .read(&mut buf[..(want - out.len()).min(1024)])
                    .unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            let delay = rng.below(2000);
            if delay > 0 {
                std::thread::sleep(Duration::from_micros(delay));
            }
            sigkill(child);
        }
        // What is in the pipe reached stdout: read it to the end.
        stdout.read_to_end(&mut out).unwrap();
        let status = wait_exit(child, TIMEOUT, "a receiver");
        if k == KILLS {
            assert!(status.success(), "the last receiver failed");
        }
        segments.push(parse_segment(&out));
    }
    let (lost, repeated) = gaps_and_repeats(&segments, LINES);
    notice(&format!(
        "kill-recv: {KILLS} SIGKILLs in {:?}: {lost} of {LINES} lines lost, {repeated} repeated",
        started.elapsed()
    ));
    assert_eq!(lost, 0, "lines lost across {KILLS} killed receivers");
    assert!(
        !dir.ring().exists(),
        "the last receiver removes the drained ring"
    );
}

/// Writes `value` at `offset` of a ring file (as a damaged or hostile file would have it).
fn poke_u64(path: &Path, offset: u64, value: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&value.to_le_bytes(), offset).unwrap();
}

/// A closed ring of two messages (32 bytes of records), made by the library.
fn closed_ring(path: &Path) {
    let mut tx = channel::Sender::open(
        path,
        channel::Options {
            capacity: 4096,
            ..Default::default()
        },
    )
    .unwrap();
    tx.send(b"one").unwrap();
    tx.send(b"two").unwrap();
    tx.close().unwrap();
}

/// A [`closed_ring`] named `name` in `dir`, then damaged: `value` stored at file `offset`.
fn damaged_ring(dir: &Path, name: &str, offset: u64, value: u64) -> PathBuf {
    let path = dir.join(name);
    closed_ring(&path);
    poke_u64(&path, offset, value);
    path
}

/// The ring at `path` still has the `head`, `tail` and records it had as `before` (the
/// fields a joining side writes, its pid and session count, may differ).
fn assert_positions_and_records_kept(before: &[u8], path: &Path, what: &str) {
    let after = std::fs::read(path).unwrap();
    let (head, tail, data) = (256..264, 128..136, 4096..);
    assert!(
        after[head.clone()] == before[head]
            && after[tail.clone()] == before[tail]
            && after[data.clone()] == before[data],
        "{what}: the ring's positions or records changed"
    );
}

#[test]
fn a_damaged_ring_at_the_end_of_a_stream_is_kept_and_reported() {
    const HEAD: u64 = 256;
    const DATA: u64 = 4096;
    let dir = Dir::new("end-damaged");
    // head passed tail: as if released bytes were never sent.
    let passed = damaged_ring(dir.tmp.path(), "passed", HEAD, 48);
    // tail says two records are there, but the stamp at head is wrong.
    let unstamped = damaged_ring(dir.tmp.path(), "unstamped", DATA, 0x1234);
    for (path, reason) in [
        (&passed, "head 48 is past tail 32"),
        (&unstamped, "tail 32 says a record starts at 0"),
    ] {
        let before = std::fs::read(path).unwrap();
        let mut args = os(&["recv", "--file"]);
        args.push(path.into());
        let out = run_channel(&args, Stdio::null());
        assert_eq!(out.status.code(), Some(1), "{:?}", stderr_lines(&out));
        let line = the_error_line(&out);
        assert!(line.contains(" is damaged: "), "{line}");
        assert!(line.contains(reason), "{line}");
        assert!(path.exists(), "the damaged ring was removed: {line}");
        // Kept as it was: head, tail and the records (joining wrote only the receiver's pid
        // and session count).
        assert_positions_and_records_kept(&before, path, &line);
    }
}

#[test]
fn an_unwritable_stdout_is_one_line_and_exit_1_for_every_command() {
    let dir = Dir::new("dev-full");
    let ring = dir.tmp.path().join("ring");
    closed_ring(&ring);
    let ring_arg = |cmd: &[&str]| {
        let mut a = os(cmd);
        a.push("--file".into());
        a.push(ring.clone().into());
        a
    };
    let fresh = dir.tmp.path().join("fresh");
    let mut send_json = os(&["send", "--json", "--file"]);
    send_json.push(fresh.clone().into());
    let cases = [
        ring_arg(&["info"]),
        ring_arg(&["info", "--json"]),
        send_json,
        os(&[
            "bench",
            "--only",
            "pipe",
            "--size",
            "64",
            "--placement",
            "one-cpu",
            "--messages",
            "10",
        ]),
        os(&[
            "bench",
            "--only",
            "pipe",
            "--size",
            "64",
            "--placement",
            "one-cpu",
            "--messages",
            "10",
            "--json",
        ]),
        ring_arg(&["recv"]),
    ];
    for args in &cases {
        let full = std::fs::File::create("/dev/full").unwrap();
        let out = run_channel(args, Stdio::from(full));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {:?}",
            stderr_lines(&out)
        );
        let line = the_error_line(&out);
        assert_eq!(
            line, "error: cannot write to stdout: No space left on device (os error 28)",
            "{args:?}"
        );
    }
    // recv released nothing it could not write: both messages are still there.
    let info = channel::inspect(&ring).unwrap();
    assert_eq!(info.unread, 32, "{info:?}");
    assert!(!fresh.exists(), "send removed its empty ring");
}

#[test]
fn a_fifo_or_a_directory_is_refused_at_once() {
    let dir = Dir::new("fifo");
    let fifo = dir.tmp.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for cmd in ["info", "recv", "send"] {
        let mut args = os(&[cmd, "--file"]);
        args.push(fifo.clone().into());
        let out = run_channel(&args, Stdio::null());
        assert_eq!(
            out.status.code(),
            Some(1),
            "{cmd}: {:?}",
            stderr_lines(&out)
        );
        assert_eq!(
            the_error_line(&out),
            format!(
                "error: {} is not a valid channel ring: it is a FIFO, not a regular file",
                fifo.display()
            ),
            "{cmd}"
        );
    }
    let d = dir.tmp.path();
    let mut args = os(&["info", "--file"]);
    args.push(d.into());
    let out = run_channel(&args, Stdio::null());
    assert_eq!(
        the_error_line(&out),
        format!(
            "error: {} is not a valid channel ring: it is a directory, not a regular file",
            d.display()
        )
    );
}

/// OS errors name their cause once, and the user's path, never an internal temporary name.
#[test]
fn io_errors_print_the_cause_once_and_the_users_path() {
    let dir = Dir::new("io-errors");
    let d = dir.tmp.path();
    for cmd in ["send", "recv"] {
        let mut args = os(&[cmd, "--file"]);
        args.push(d.into());
        let out = run_channel(&args, Stdio::null());
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            the_error_line(&out),
            format!(
                "error: {} is not a valid channel ring: it is a directory, not a regular file",
                d.display()
            )
        );
    }
    let missing = d.join("no/such/dir/x");
    let mut args = os(&["send", "--file"]);
    args.push(missing.clone().into());
    let out = run_channel(&args, Stdio::null());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        the_error_line(&out),
        format!(
            "error: cannot create {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn a_dangling_symlink_is_one_clear_line_at_once() {
    let dir = Dir::new("dangling");
    let link = dir.tmp.path().join("link");
    let target = dir.tmp.path().join("gone");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for cmd in ["send", "recv", "info"] {
        let mut args = os(&[cmd, "--file"]);
        args.push(link.clone().into());
        let started = Instant::now();
        let out = run_channel(&args, Stdio::null());
        eprintln!("{cmd} answered after {:?}", started.elapsed());
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            the_error_line(&out),
            format!(
                "error: {} is a symbolic link to {}, which does not exist; remove the link or \
                 name the ring file itself",
                link.display(),
                target.display()
            ),
            "{cmd}"
        );
    }
    let mut left: Vec<_> = std::fs::read_dir(dir.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["link"], "files left behind");
}

#[test]
fn a_capacity_that_is_no_power_of_two_is_a_usage_error() {
    let dir = Dir::new("capacity");
    let ring = dir.tmp.path().join("new");
    for (cmd, value) in [
        ("recv", "3000"),
        ("send", "3000"),
        ("recv", "2K"),
        ("send", "2G"),
    ] {
        let mut args = os(&[cmd, "--capacity", value, "--file"]);
        args.push(ring.clone().into());
        let out = run_channel(&args, Stdio::null());
        assert_eq!(
            out.status.code(),
            Some(2),
            "{cmd} {value}: {:?}",
            stderr_lines(&out)
        );
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(&format!(
                "'{value}' is not a power of two between 4K and 1G (e.g. 4K, 64K, 1M)"
            )),
            "{text}"
        );
        assert!(!ring.exists());
    }
}

/// A small tmpfs mounted in a temporary directory, unmounted when dropped (on every path).
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// `None` (with a notice) when this process may not mount; fails under CI=true.
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::Builder::new()
            .prefix("channel-test-tmpfs-")
            .tempdir()
            .unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallFs { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but a tmpfs cannot be mounted: {why}"
                );
                notice(&format!(
                    "skipped: cannot mount a small tmpfs (needs root): {why}"
                ));
                None
            }
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_file_system_is_named_and_nothing_is_left_behind() {
    let Some(fs) = SmallFs::mount("64k") else {
        return;
    };
    let ring = fs.dir.path().join("ring");
    let mut child = Command::new(CHANNEL)
        .args(["send", "--capacity", "1M", "--file"])
        .arg(&ring)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        // 200 KB of lines: more than the file system holds, less than the ring.
        let mut stdin = child.stdin.take().unwrap();
        let input: String = (0..20_000).map(|i| format!("{i:09}\n")).collect();
        let _ = stdin.write_all(input.as_bytes()); // The sender may be gone already.
    }
    let out = collect(child, Duration::from_secs(10), "send on a full disk");
    assert_eq!(out.status.code(), Some(1), "{:?}", stderr_lines(&out));
    assert_eq!(
        the_error_line(&out),
        format!(
            "error: cannot create {}: no space left on {} (a ring of capacity 1048576 needs \
             1052672 bytes)",
            ring.display(),
            fs.dir.path().display()
        )
    );
    let left: Vec<_> = std::fs::read_dir(fs.dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn recv_prints_the_messages_before_a_damaged_record_then_reports_it() {
    let dir = Dir::new("damaged-record");
    let ring = dir.tmp.path().join("ring");
    closed_ring(&ring);
    // The second record (at data offset 16) claims 2 GiB: stamp of position 16, huge length.
    poke_u64(&ring, 4096 + 16, (0x8000_0002u64 << 32) | 0x7fff_fff0);
    let mut args = os(&["recv", "--file"]);
    args.push(ring.clone().into());
    let out = run_channel(&args, Stdio::piped());
    assert_eq!(out.status.code(), Some(1), "{:?}", stderr_lines(&out));
    assert_eq!(out.stdout, b"one");
    let line = the_error_line(&out);
    assert!(
        line.ends_with("is damaged: a record of 2147483632 bytes at offset 16 does not fit"),
        "{line}"
    );
    let info = channel::inspect(&ring).unwrap();
    assert_eq!(
        (info.head, info.tail),
        (16, 32),
        "only the printed message was released"
    );
}

// ---- Issue 22 review: the neighbours of the edges above ----

/// `channel send ARGS... --file RING` fed `input` on stdin, bounded.
fn send_lines(ring: &Path, input: &[u8]) -> Output {
    let mut child = Command::new(CHANNEL)
        .args(["send", "--file"])
        .arg(ring)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(input); // It may refuse before reading.
    collect(child, Duration::from_secs(10), "channel send")
}

/// A sender joining a damaged ring refuses it before sending anything: a message put behind
/// a `head` no record starts at could never be received, yet the sender would report it sent.
#[test]
fn a_sender_refuses_a_damaged_ring_instead_of_sending_into_it() {
    const HEAD: u64 = 256;
    let dir = Dir::new("send-damaged");
    // head 8 is inside the first record: tail says records follow, no stamp is there.
    let inside = damaged_ring(dir.tmp.path(), "inside", HEAD, 8);
    // head 48 passed tail 32: bytes released that were never sent.
    let passed = damaged_ring(dir.tmp.path(), "passed", HEAD, 48);
    for (ring, reason) in [
        (&inside, "tail 32 says a record starts at 8"),
        (&passed, "head 48 is past tail 32"),
    ] {
        let before = std::fs::read(ring).unwrap();
        for input in [&b""[..], b"three\nfour\n"] {
            let out = send_lines(ring, input);
            assert_eq!(out.status.code(), Some(1), "{:?}", stderr_lines(&out));
            let line = the_error_line(&out);
            assert!(
                line.contains(" is damaged: ") && line.contains(reason),
                "{line}"
            );
            assert_positions_and_records_kept(&before, ring, &line);
        }
    }
}

/// A ring reached through a symbolic link: leaving never removes the user's link (and with it
/// the only name by which the others find the ring), nor leaves the link's target behind
/// while removing the link. Both stay; the drained ring is ready for the next session.
#[test]
fn a_ring_reached_through_a_symlink_keeps_the_link_and_the_ring() {
    let dir = Dir::new("ring-link");
    let real = dir.tmp.path().join("real");
    let link = dir.tmp.path().join("link");
    std::os::unix::fs::symlink("real", &link).unwrap();
    closed_ring(&real);
    for round in 0..2 {
        let out = send_lines(&link, format!("a{round}\nb{round}\n").as_bytes());
        assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
        let mut args = os(&["recv", "--file"]);
        args.push(link.clone().into());
        let out = run_channel(&args, Stdio::piped());
        assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
        let first = if round == 0 { "onetwo" } else { "" };
        assert_eq!(
            out.stdout,
            format!("{first}a{round}\nb{round}\n").as_bytes()
        );
        assert!(
            std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
            "round {round}: the link was removed: {:?}",
            stderr_lines(&out)
        );
        let info = channel::inspect(&real).unwrap();
        assert_eq!(info.unread, 0, "round {round}: {info:?}");
    }
}

/// A socket or a directory given to send or recv is named as such, as `info` names it.
#[test]
fn a_socket_or_a_directory_is_named_by_every_command() {
    let dir = Dir::new("socket");
    let sock = dir.tmp.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let d = dir.tmp.path().join("d");
    std::fs::create_dir(&d).unwrap();
    for (path, kind) in [(&sock, "a socket"), (&d, "a directory")] {
        for cmd in ["send", "recv", "info"] {
            let mut args = os(&[cmd, "--file"]);
            args.push(path.into());
            let out = run_channel(&args, Stdio::null());
            assert_eq!(
                out.status.code(),
                Some(1),
                "{cmd}: {:?}",
                stderr_lines(&out)
            );
            assert_eq!(
                the_error_line(&out),
                format!(
                    "error: {} is not a valid channel ring: it is {kind}, not a regular file",
                    path.display()
                ),
                "{cmd}"
            );
        }
    }
}

/// A creator killed at any instant leaves no half-made file: the ring has no name until it is
/// complete (`O_TMPFILE`, then `linkat(2)`), so a kill leaves either nothing or a whole ring.
/// Each round kills the sender as soon as anything appears in the directory (before the fix,
/// the temporary `.ring.PID.N.creating` appeared first and stayed), or at a random instant.
#[test]
fn a_creator_killed_at_any_instant_leaves_nothing_half_made() {
    // On tmpfs, reserving 64 MiB takes tens of milliseconds: a wide window to kill in.
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("channel-test-kill-create-")
        .tempdir_in(base)
        .unwrap();
    let ring = dir.path().join("ring");
    let entries = || -> Vec<String> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let mut rng = Rng::from_clock();
    notice(&format!("creator kills: seed {}", rng.0));
    let (mut complete, mut empty) = (0, 0);
    for round in 0..12 {
        let mut child = Command::new(CHANNEL)
            .args(["send", "--capacity", "64M", "--file"])
            .arg(&ring)
            .stdin(Stdio::piped()) // Held open: the sender stays until killed.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let limit = Duration::from_micros(rng.below(40_000));
        let start = Instant::now();
        // Odd rounds: as soon as a name appears; even rounds: at a random instant.
        while start.elapsed() < limit || round % 2 == 1 {
            if round % 2 == 1 && !entries().is_empty() {
                break;
            }
            if child.try_wait().unwrap().is_some() || start.elapsed() > TIMEOUT {
                break;
            }
            std::thread::yield_now();
        }
        sigkill(&child);
        let _ = child.wait();
        match entries().as_slice() {
            [] => empty += 1,
            [name] if name == "ring" => {
                let info = channel::inspect(&ring).unwrap();
                assert_eq!(info.capacity, 64 << 20, "round {round}");
                std::fs::remove_file(&ring).unwrap();
                complete += 1;
            }
            left => panic!("round {round}: a killed creator left {left:?}"),
        }
    }
    notice(&format!(
        "creator kills: {empty} left nothing, {complete} a complete ring"
    ));
}

/// A sender that gives up (its receiver left with the ring full) stops the stream rather than
/// closing it: the next receiver prints what is left in the ring and then says the stream
/// stopped before its end (exit 1) — before, it said "the sender closed the channel" and exited
/// 0 with most of the input never sent.
#[test]
fn a_sender_stopped_by_an_error_leaves_the_stream_stopped_not_closed() {
    let mut dir = Dir::new("stopped");
    let ring = dir.ring();
    let send = dir.start(&["send", "--capacity", "4K"]);
    let send_pid = dir.child(send).id();
    wait_for_ring(&ring, "the sender to attach", |i| {
        i.sender == Some(send_pid)
    });
    // More lines than the ring holds, fed from a thread (the sender stops reading when it fails).
    let mut stdin = dir.child(send).stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let lines: String = (0..200_000).map(|i| format!("{i}\n")).collect();
        let _ = stdin.write_all(lines.as_bytes());
    });
    let recv = dir.start(&["recv"]);
    let recv_pid = dir.child(recv).id();
    wait_for_ring(&ring, "the receiver to read", |i| {
        i.receiver == Some(recv_pid) && i.head > 0
    });
    dir.child(recv).kill().unwrap();
    let (out, _) = dir.finish(recv);
    assert!(out.status.code().is_none(), "killed");
    let (out, _) = dir.finish(send);
    feeder.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{:?}", stderr_lines(&out));
    assert!(
        the_error_line(&out).contains("left"),
        "{:?}",
        stderr_lines(&out)
    );
    let info = channel::inspect(&ring).unwrap();
    assert!(info.stopped && !info.closed, "{info:?}");
    let again = dir.start(&["recv"]);
    let (out, _) = dir.finish(again);
    assert_eq!(out.status.code(), Some(1), "{:?}", stderr_lines(&out));
    assert!(
        the_error_line(&out).contains("the sender stopped before the end of its stream"),
        "{:?}",
        stderr_lines(&out)
    );
    // What was left in the ring was printed: whole lines, in order.
    let text = String::from_utf8(out.stdout).unwrap();
    let got: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert!(!got.is_empty());
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    assert!(!ring.exists(), "the drained ring is removed");
}
