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
        let child = Command::new(CHANNEL)
            .args(args)
            .arg("--file")
            .arg(self.ring())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.len() - 1
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
    let send = dir.start(&["send"]);
    dir.child(send)
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\n")
        .unwrap();
    let (sent, _) = dir.finish(send);
    assert!(sent.status.success(), "{:?}", stderr_lines(&sent));
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
                text: "one".into()
            },
            RecvLine::Message {
                seq: 2,
                bytes: 4,
                text: "two".into()
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
    ] {
        let out = Command::new(CHANNEL).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
        assert!(text.starts_with("error: "), "{args:?}: {text}");
    }
}

#[test]
fn a_bad_capacity_and_a_cacheline_of_64_bytes_are_runtime_errors() {
    let mut dir = Dir::new("bad-capacity");
    let send = dir.start(&["send", "--capacity", "5000"]);
    let (out, _) = dir.finish(send);
    assert_eq!(out.status.code(), Some(1));
    assert!(the_error_line(&out).contains("not a power of two"));
    let out = Command::new(CHANNEL)
        .args(["bench", "--only", "cacheline", "--size", "64"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(the_error_line(&out).contains("use --size 8"));
}

#[test]
fn ctrl_c_leaves_cleanly_a_sender_interrupted_ends_the_stream() {
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
    assert!(
        out.status.success(),
        "the receiver saw the end of the stream: {:?}",
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
