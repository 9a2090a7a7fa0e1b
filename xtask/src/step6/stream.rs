//! Running the stream: `channel send` into `channel recv --json`, two processes, killed if they
//! take longer than a bound. What the stream is and how its output is checked are
//! `lab_analysis::step6::stream`'s.

use channel::report::SendReport;
use lab_analysis::step6::stream::clip;
use std::io::{BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use lab_analysis::step6::stream::{check, line, Stream, CAPACITY};

/// Kills a child still running when dropped (an error on the way).
struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Streams `n` lines from `channel send` to `channel recv --json` through a ring in `dir`, both
/// started at once; either is killed if the stream takes longer than `bound`.
pub fn run(channel: &Path, dir: &Path, n: u64, bound: Duration) -> anyhow::Result<Stream> {
    let input = dir.join("lines.txt");
    let mut text = String::new();
    for i in 1..=n {
        text.push_str(&line(i));
        text.push('\n');
    }
    std::fs::write(&input, &text).with_context(|| format!("cannot write {}", input.display()))?;
    // Both run in `dir`: the ring's name is relative, the commands short.
    let ring = "stream.ring";
    let args = |role: &str| {
        [
            role,
            "--file",
            ring,
            "--capacity",
            &CAPACITY.to_string(),
            "--json",
        ]
        .map(String::from)
    };
    let (recv_args, send_args) = (args("recv"), args("send"));
    let started = Instant::now();
    let recv = Running::start(channel, dir, &recv_args, Stdio::null())?;
    let input_file =
        std::fs::File::open(&input).with_context(|| format!("cannot open {}", input.display()))?;
    let send = Running::start(channel, dir, &send_args, input_file.into())?;
    let send_out = send.finish(started, bound)?;
    let recv_out = recv.finish(started, bound)?;
    let seconds = started.elapsed().as_secs_f64();
    let send: SendReport = serde_json::from_str(send_out.trim())
        .with_context(|| format!("channel send --json printed {:?}", clip(&send_out, 80)))?;
    let c = check(&recv_out, n)?;
    let _ = std::fs::remove_file(dir.join(ring));
    Ok(Stream {
        commands: vec![
            format!("channel {} < lines.txt", send_args.join(" ")),
            format!("channel {}", recv_args.join(" ")),
        ],
        capacity: CAPACITY,
        lines_written: n,
        bytes_written: text.len() as u64,
        send,
        received: c.received,
        received_bytes: c.received_bytes,
        matched: c.matched,
        first_mismatch: c.first_mismatch,
        end: c.end,
        seconds,
    })
}

/// A `channel` process whose stdout and stderr are read on threads (a full pipe must not
/// stall a process we wait for).
struct Running {
    what: String,
    child: Reaped,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
}

impl Running {
    fn start(channel: &Path, dir: &Path, args: &[String], stdin: Stdio) -> anyhow::Result<Running> {
        let what = format!("channel {}", args[0]);
        let mut child = Command::new(channel)
            .current_dir(dir)
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        let out = read_all(child.stdout.take().expect("piped"));
        let err = read_all(child.stderr.take().expect("piped"));
        Ok(Running {
            what,
            child: Reaped(Some(child)),
            out,
            err,
        })
    }

    /// Waits (until `bound` after `started`, then kills it) and returns its stdout; a failure
    /// is an error with its last line of stderr.
    fn finish(mut self, started: Instant, bound: Duration) -> anyhow::Result<String> {
        let status = wait(&mut self.child, started, bound, &self.what)?;
        let (out, err) = (join(self.out)?, join(self.err)?);
        if !status.success() {
            bail!("{} failed ({status}): {}", self.what, last_line(&err));
        }
        Ok(out)
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(&mut r).read_to_string(&mut s);
        s
    })
}

fn wait(
    child: &mut Reaped,
    started: Instant,
    bound: Duration,
    what: &str,
) -> anyhow::Result<std::process::ExitStatus> {
    let c = child.0.as_mut().expect("running");
    loop {
        if let Some(status) = c.try_wait()? {
            child.0 = None;
            return Ok(status);
        }
        if started.elapsed() > bound {
            bail!(
                "{what} did not finish within {:.1} s (killed)",
                bound.as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn join(h: std::thread::JoinHandle<String>) -> anyhow::Result<String> {
    h.join()
        .map_err(|_| anyhow::anyhow!("a reader thread panicked"))
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("(nothing on stderr)").trim()
}
