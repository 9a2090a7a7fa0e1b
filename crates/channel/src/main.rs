//! `channel`: two processes talking through shared memory done right — a single-producer
//! single-consumer ring of messages in a `MAP_SHARED` file mapping, with release/acquire
//! publication, zero-copy receive, and a shared futex for sleeping — and a benchmark that
//! measures it against pipes, Unix sockets and the cache-line floor on this machine.
//!
//! Run it in two terminals:
//!
//! ```text
//! channel recv demo            # terminal 1: prints what arrives (/dev/shm/demo)
//! channel send demo            # terminal 2: type lines; Ctrl-D ends the stream
//! channel bench --quick        # round trips and throughput, goals met or not
//! ```
//!
//! Whichever starts first creates the ring file; the last to leave removes it (unless unread
//! messages remain for a later receiver). Ctrl-C leaves cleanly: a sender's Ctrl-C ends the
//! stream like Ctrl-D; a receiver's lets a blocked sender report it. The library docs
//! (`channel::ring`) explain the layout, why the borrow of a received message is sound, and
//! why no wake-up is lost.
//!
//! A production system would not hand-roll this: it would use iceoryx2 (or Aeron, or a
//! `memfd` ring passed over a Unix socket) for many publishers and subscribers, typed payloads
//! written in place through a shared-memory allocator, and event notification that can wait on
//! many channels at once; it would name shared memory with `memfd_create` rather than a file
//! in `/dev/shm` that a crash can leave behind; and it would run its benchmarks on an idle,
//! pinned machine with repeated runs. The crate docs list the rest.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use channel::bench::{self, peer::PeerArgs, Placement, Transport};
use channel::report::{RecvLine, SendReport};
use channel::{Error, Options, Receiver, Sender, Wait};
use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  channel recv demo                 # terminal 1: print messages from /dev/shm/demo
  channel send demo                 # terminal 2: each line typed is one message (Ctrl-D ends)
  seq 1000000 | channel send --file ./ring.bin & channel recv --file ./ring.bin | tail -1
  channel info demo                 # the ring's header: capacity, head, tail, who is attached
  channel bench --quick             # latency and throughput of every transport, goals
  channel bench --json              # the same as one JSON document
  strace -f -c channel bench --only ring-spin --size 64 --placement two-cpus --messages 100000
                                    # system calls per message (none while spinning)

A RING without '/' is a name under /dev/shm (like shm_open(3)); with a '/' it is a path.
Each line is one message; a line longer than the ring takes (half its capacity) is sent in
pieces, which recv prints back to back, so recv's output is send's input byte for byte.
Exit status: 0 done, 1 runtime error (damaged ring, peer gone, busy), 2 usage, 128+N stopped
by signal N: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP (each leaves the ring as Ctrl-C does).";

const RECV_NOTES: &str = "\
Nothing is lost if recv is killed (even by SIGKILL): a message leaves the ring only after its
bytes were written to stdout, so the next recv starts with the first message not yet written.
A kill between a write to stdout and the release of the messages it carried (a batch of at
most 16 KiB, or one longer message) makes the next recv print those messages again, and a kill
in the middle of a write may leave its last line cut short before they are printed again.

At the end of the stream (the sender closed the channel and everything was received) the
ring's head must equal its tail; anything else is a damaged ring: one error line, exit 1, and
the file is kept.

With --json a message's text is UTF-8: bytes that are not valid UTF-8 become U+FFFD, and that
message's object then has \"lossy\":true (absent otherwise); without --json the bytes are
printed as they came.

Examples:
  channel recv demo                 # print messages from /dev/shm/demo until the sender closes
  channel recv --json demo          # one JSON object per message, then {\"end\":{...}}
  seq 1000000 | channel send --file ./ring.bin & channel recv --file ./ring.bin | tail -1

A RING without '/' is a name under /dev/shm (like shm_open(3)); with a '/' it is a path.
Exit status: 0 done, 1 runtime error (damaged ring, peer gone, busy, stdout not writable or
closed), 2 usage, 128+N stopped by signal N: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP.";

/// Two processes passing messages through a ring in shared memory, and a benchmark.
#[derive(Parser)]
#[command(name = "channel", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send stdin's lines, one message each, into the ring.
    #[command(after_help = EXAMPLES)]
    Send {
        #[command(flatten)]
        ring: RingArgs,
        /// Data-area size if this side creates the ring (power of two, 4K to 1G, e.g. 64K, 1M).
        #[arg(long, value_parser = parse_capacity, default_value = "1M")]
        capacity: u64,
        /// Print one JSON document on stdout when done: {"file","messages","bytes",...}.
        #[arg(long)]
        json: bool,
    },
    /// Print the messages that arrive, until the sender closes the channel.
    #[command(after_help = RECV_NOTES)]
    Recv {
        #[command(flatten)]
        ring: RingArgs,
        /// Data-area size if this side creates the ring (power of two, 4K to 1G, e.g. 64K, 1M).
        #[arg(long, value_parser = parse_capacity, default_value = "1M")]
        capacity: u64,
        /// One JSON object per line: {"message":{"seq","bytes","text"}} ... {"end":{...}};
        /// "lossy":true in a message whose bytes were not UTF-8 (its text has U+FFFD).
        #[arg(long)]
        json: bool,
    },
    /// Show a ring file's header without joining it.
    #[command(after_help = EXAMPLES)]
    Info {
        #[command(flatten)]
        ring: RingArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Measure round trips and throughput: ring vs pipe vs socket vs the cache-line floor.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
    #[command(hide = true)]
    BenchPeer(PeerCli),
}

const BENCH_EXAMPLES: &str = "\
Examples:
  channel bench                      # 8 B .. 1 MiB, every transport, two-cpus and one-cpu
  channel bench --quick --json       # 64 B, 4 KiB, 1 MiB; the BenchReport JSON document
  channel bench --only pipe --size 64 --placement two-cpus --messages 10000
                                     # exactly 10000 round trips of one cell (for strace -c)
  channel bench --only ring-spin --size 64 --placement two-cpus --repeat 9
                                     # the floor goal alone: 9 alternated runs, 9 of 9 needed

Transports: cacheline (one word on one cache line: the floor), ring-spin, ring-wait (spin
20 µs, then futex; on one CPU no spinning), pipe, unix-socket. Two real processes: the peer is
this binary started again (fork+exec). Iteration counts are sized by measured time and printed
on stderr. Rings are sized to their messages (at least 256 KiB; 4 MiB for 1 MiB messages), so
no message is split. With --messages, msgs_per_s is round trips per second (no one-way phase).
The floor goal (ring-spin 64 B round trip within 1.5x of the cache-line floor, two CPUs) is
decided by alternated runs: the floor's cell, then ring-spin 64 B's, again and again (--repeat,
9 by default), so that a busy moment of the machine falls on both; it is met when every run
is, and their ratios are printed with min, median and max.";

#[derive(Args)]
struct RingArgs {
    /// The ring: a name under /dev/shm, or a path if it contains '/'.
    #[arg(default_value = "mmap-lab-channel", conflicts_with = "file")]
    ring: String,
    /// The ring file, anywhere (instead of RING).
    #[arg(long)]
    file: Option<PathBuf>,
    /// spin: never sleep (burns a CPU while waiting); futex: spin briefly, then sleep.
    #[arg(long, value_enum, default_value_t = WaitArg::Futex)]
    wait: WaitArg,
    /// Spin this many microseconds before sleeping (futex; default 20, 0 on one CPU).
    #[arg(long)]
    spin_us: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum WaitArg {
    Spin,
    Futex,
}

#[derive(Args)]
struct BenchArgs {
    /// Fewer sizes (64 B, 4 KiB, 1 MiB) and shorter cells.
    #[arg(long)]
    quick: bool,
    /// Print the BenchReport as one JSON document on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
    /// Measure this transport only.
    #[arg(long, value_enum)]
    only: Option<TransportArg>,
    /// Message size (repeatable; e.g. 64, 4K, 1M).
    #[arg(long = "size", value_parser = parse_size)]
    sizes: Vec<u64>,
    /// two-cpus or one-cpu (repeatable; default both, or one-cpu on a one-CPU machine).
    #[arg(long = "placement", value_enum)]
    placements: Vec<PlacementArg>,
    /// Run exactly this many round trips per cell: no calibration, no one-way phase.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    messages: Option<u64>,
    /// ring-wait: spin this many microseconds before sleeping (default 20 on two CPUs, 0 on one).
    #[arg(long)]
    spin_us: Option<u64>,
    /// The floor goal's alternated runs: the cache-line floor, then ring-spin 64 B (two CPUs),
    /// N times; the goal is met when every run is within 1.5x (default 9 when the run has both
    /// cells, else none; 0: none).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=99))]
    repeat: Option<u32>,
    /// Directory for the temporary ring files (default /dev/shm, else the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    Cacheline,
    RingSpin,
    RingWait,
    Pipe,
    UnixSocket,
}

impl From<TransportArg> for Transport {
    fn from(t: TransportArg) -> Transport {
        match t {
            TransportArg::Cacheline => Transport::Cacheline,
            TransportArg::RingSpin => Transport::RingSpin,
            TransportArg::RingWait => Transport::RingWait,
            TransportArg::Pipe => Transport::Pipe,
            TransportArg::UnixSocket => Transport::UnixSocket,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum PlacementArg {
    TwoCpus,
    OneCpu,
}

#[derive(Args)]
struct PeerCli {
    #[arg(long, value_enum)]
    transport: TransportArg,
    #[arg(long)]
    size: u64,
    #[arg(long)]
    cpu: usize,
    #[arg(long)]
    path_in: Option<PathBuf>,
    #[arg(long)]
    path_out: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    spin_ns: u64,
}

/// Parses "64", "4K", "4KiB", "1M", "1MiB", "1G".
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let not_a_size = || format!("'{s}' is not a size (e.g. 64, 4K, 1M)");
    let (digits, mult) = match t.find(|c: char| !c.is_ascii_digit()) {
        None => (t, 1),
        // No digits before it (a sign, a letter): not a number with a unit.
        Some(0) => return Err(not_a_size()),
        Some(i) => {
            let unit = t[i..].trim().to_ascii_lowercase();
            let mult = match unit.as_str() {
                "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                _ => return Err(format!("unknown unit '{}' (use K, M or G)", &t[i..])),
            };
            (&t[..i], mult)
        }
    };
    let n: u64 = digits.parse().map_err(|_| not_a_size())?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// A ring's data-area size: a size (see [`parse_size`]) that is a power of two from 4 KiB to
/// 1 GiB, checked here so that a bad value is a usage error whether or not the ring exists.
fn parse_capacity(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    let range = channel::ring::MIN_CAPACITY..=channel::ring::MAX_CAPACITY;
    if !n.is_power_of_two() || !range.contains(&n) {
        return Err(format!(
            "'{s}' is not a power of two between 4K and 1G (e.g. 4K, 64K, 1M)"
        ));
    }
    Ok(n)
}

/// How every stdout failure reads (`/dev/full`, a closed pipe): "cannot write to stdout: No
/// space left on device (os error 28)", exit 1.
const STDOUT_ERROR: &str = "cannot write to stdout";

/// Writes `text` to stdout and flushes it; an error instead of `println!`'s panic.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context(STDOUT_ERROR)
}

/// A line on stderr; a closed stderr is not worth a panic.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// What stopped the program, as the messages say it, and its exit status, 128 + the signal:
/// Ctrl-C (SIGINT) 130, SIGHUP 129, SIGTERM 143. The cleanup is the same for all three.
fn stop_signal() -> (&'static str, ExitCode) {
    let (name, sig) = match channel::interrupt_signal() {
        Some(libc::SIGTERM) => ("SIGTERM", libc::SIGTERM),
        Some(libc::SIGHUP) => ("SIGHUP", libc::SIGHUP),
        _ => ("Ctrl-C", libc::SIGINT),
    };
    (name, ExitCode::from(128 + sig as u8))
}

fn main() -> ExitCode {
    let cli: Cli = match lab_cli::parse() {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Whatever failed after Ctrl-C (a wait, a pipe the peer closed when it got the
            // same signal) failed because of it.
            if interrupted()
                || e.downcast_ref::<Error>()
                    .is_some_and(|e| matches!(e, Error::Interrupted))
            {
                let (name, status) = stop_signal();
                note!("channel: interrupted by {name}");
                return status;
            }
            note!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    channel::install_interrupt_handlers().context("cannot install signal handlers")?;
    // Past `ulimit -f` growing the ring fails with EFBIG (one error line), not SIGXFSZ.
    lab_cli::out::ignore_file_size_signal().context("cannot ignore SIGXFSZ")?;
    // A command whose results go to stdout refuses a closed one before it joins a ring:
    // `recv >&-` would otherwise release every message into nowhere (see lab_cli::out).
    let writes_stdout = match &cli.command {
        Cmd::Send { json, .. } => *json,
        Cmd::Recv { .. } | Cmd::Info { .. } | Cmd::Bench(_) => true,
        Cmd::BenchPeer(_) => false,
    };
    if writes_stdout {
        lab_cli::out::stdout_usable().context(STDOUT_ERROR)?;
    }
    match cli.command {
        Cmd::Send {
            ring,
            capacity,
            json,
        } => send(&ring, capacity, json),
        Cmd::Recv {
            ring,
            capacity,
            json,
        } => recv(&ring, capacity, json),
        Cmd::Info { ring, json } => info(&ring, json),
        Cmd::Bench(args) => bench_cmd(&args),
        Cmd::BenchPeer(p) => {
            bench::peer::main(&PeerArgs {
                transport: p.transport.into(),
                size: p.size,
                cpu: p.cpu,
                path_in: p.path_in,
                path_out: p.path_out,
                spin_ns: p.spin_ns,
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

impl RingArgs {
    fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(f) = &self.file {
            return Ok(f.clone());
        }
        if self.ring.contains('/') {
            return Ok(PathBuf::from(&self.ring));
        }
        if self.ring.is_empty() || self.ring == "." || self.ring == ".." {
            anyhow::bail!("'{}' is not a ring name", self.ring);
        }
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            anyhow::bail!("there is no /dev/shm here; give a path instead (--file ./ring.bin)");
        }
        Ok(shm.join(&self.ring))
    }

    fn options(&self, capacity: u64) -> Options {
        Options {
            capacity,
            wait: match self.wait {
                WaitArg::Spin => Wait::Spin,
                WaitArg::Futex => Wait::Futex,
            },
            spin: self.spin_us.map(Duration::from_micros),
            interrupt: Some(channel::interrupt_flag()),
            ..Options::default()
        }
    }
}

fn interrupted() -> bool {
    channel::interrupt_flag().load(Ordering::Relaxed)
}

fn send(args: &RingArgs, capacity: u64, json: bool) -> anyhow::Result<ExitCode> {
    let path = args.path()?;
    let mut tx = Sender::open(&path, args.options(capacity))?;
    let max = tx.max_message();
    note!(
        "channel: sending to {} (ring of {} bytes, messages up to {max} bytes); one message per \
         line, Ctrl-D ends",
        path.display(),
        tx.capacity()
    );
    if !tx.peer_present()? {
        note!(
            "channel: no receiver yet; messages wait in the ring (start: channel recv {})",
            path.display()
        );
    }
    // An error on the way drops `tx` unclosed: the receiver learns the stream stopped early.
    let sent = send_stdin(&mut tx)?;
    // Ctrl-C: the input was not all sent, so the stream did not end; it stopped.
    let leave = if sent.interrupted {
        tx.abort()?
    } else {
        tx.close()?
    };
    let Sent {
        messages,
        bytes,
        interrupted,
    } = sent;
    let report = SendReport {
        file: path.clone(),
        messages,
        bytes,
        interrupted,
        unread: leave.unread,
        removed: leave.removed,
    };
    note!(
        "channel: sent {messages} messages ({bytes} bytes){}; {}",
        if interrupted {
            format!(", stopped by {}", stop_signal().0)
        } else {
            String::new()
        },
        sender_left(&path, &leave, !interrupted)
    );
    if json {
        print_stdout(&format!("{}\n", serde_json::to_string(&report)?))?;
    }
    Ok(if interrupted {
        stop_signal().1
    } else {
        ExitCode::SUCCESS
    })
}

/// What `send` took from stdin.
#[derive(Default)]
struct Sent {
    messages: u64,
    bytes: u64,
    /// Ctrl-C stopped it (what was read but not yet sent is dropped).
    interrupted: bool,
}

/// Sends stdin's lines into the ring, one message each (a line longer than a message goes in
/// full-size pieces, and a last line without a newline as it is), until the end of stdin or
/// Ctrl-C.
fn send_stdin(tx: &mut Sender) -> anyhow::Result<Sent> {
    // A raw descriptor (no BufReader): poll(2) then sees every byte that is not yet read.
    let mut stdin = std::fs::File::from(
        std::os::fd::AsFd::as_fd(&std::io::stdin())
            .try_clone_to_owned()
            .context("cannot duplicate stdin")?,
    );
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut sent = Sent::default();
    let mut send_chunk = |tx: &mut Sender, chunk: &[u8]| -> Result<(), Error> {
        tx.send(chunk)?;
        sent.messages += 1;
        sent.bytes += chunk.len() as u64;
        Ok(())
    };
    let max = tx.max_message();
    let mut was_interrupted = false;
    loop {
        // Wait for input in slices of 100 ms, so that Ctrl-C is seen even if it arrives just
        // before a blocking read would have started.
        if interrupted() {
            was_interrupted = true;
            break;
        }
        if !channel::wait_readable(&stdin, Duration::from_millis(100))
            .context("cannot poll stdin")?
        {
            continue;
        }
        let n = match stdin.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                if interrupted() {
                    was_interrupted = true;
                    break;
                }
                continue;
            }
            Err(e) => return Err(e).context("cannot read stdin"),
        };
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
            let line_end = start + pos + 1;
            for chunk in pending[start..line_end].chunks(max) {
                match send_chunk(tx, chunk) {
                    Err(Error::Interrupted) => {
                        was_interrupted = true;
                    }
                    other => other?,
                }
            }
            start = line_end;
            if was_interrupted {
                break;
            }
        }
        pending.drain(..start);
        // A line longer than a message: send what we have in full-size pieces.
        while pending.len() >= max && !was_interrupted {
            let rest = pending.split_off(max);
            match send_chunk(tx, &pending) {
                Err(Error::Interrupted) => was_interrupted = true,
                other => other?,
            }
            pending = rest;
        }
        if was_interrupted || interrupted() {
            was_interrupted = true;
            break;
        }
    }
    if !pending.is_empty() && !was_interrupted {
        send_chunk(tx, &pending)?;
    }
    sent.interrupted = was_interrupted;
    Ok(sent)
}

/// How a sender's leaving reads: removed, left for the receiver attached or to come, or kept.
/// `ended`: it closed the stream (else it stopped before the end of its input).
fn sender_left(path: &Path, leave: &channel::Leave, ended: bool) -> String {
    if leave.removed {
        format!("removed {}", path.display())
    } else if leave.peer_present && leave.unread > 0 {
        format!("the receiver has {} bytes still to read", leave.unread)
    } else if leave.peer_present && ended {
        "the receiver is still attached; it sees the end of the stream".to_string()
    } else if leave.peer_present {
        "the receiver is still attached; it sees that the stream stopped before its end".to_string()
    } else if leave.unread > 0 {
        format!(
            "{} unread bytes stay in {} for a receiver",
            leave.unread,
            path.display()
        )
    } else {
        format!("{} stays", path.display())
    }
}

fn recv(args: &RingArgs, capacity: u64, json: bool) -> anyhow::Result<ExitCode> {
    let path = args.path()?;
    let mut rx = Receiver::open(&path, args.options(capacity))?;
    note!("channel: receiving from {}", path.display());
    if !rx.peer_present()? && !rx.sender_closed() {
        note!(
            "channel: no sender yet; waiting (start: channel send {})",
            path.display()
        );
    }
    // A raw descriptor, no std buffer: when `write_all` returns, the bytes are in the kernel
    // (the pipe, the file), and only then are their messages released.
    let mut out = std::fs::File::from(
        std::os::fd::AsFd::as_fd(&std::io::stdout())
            .try_clone_to_owned()
            .context("cannot duplicate stdout")?,
    );
    let mut pending: Vec<u8> = Vec::with_capacity(RECV_BATCH);
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut format = |pending: &mut Vec<u8>, msg: &[u8]| -> anyhow::Result<()> {
        messages += 1;
        bytes += msg.len() as u64;
        if json {
            let text = String::from_utf8_lossy(msg.strip_suffix(b"\n").unwrap_or(msg));
            let line = RecvLine::Message {
                seq: messages,
                bytes: msg.len() as u64,
                lossy: matches!(text, std::borrow::Cow::Owned(_)),
                text: text.into_owned(),
            };
            serde_json::to_writer(&mut *pending, &line)?;
            pending.push(b'\n');
        } else {
            pending.extend_from_slice(msg);
        }
        Ok(())
    };
    let mut reason = "closed";
    loop {
        // Copy what is there into `pending`, keeping each message in the ring, until the ring
        // is empty or a batch is full; write the batch, then release its messages. A kill
        // before the release leaves them for the next receiver (repeated, never lost).
        let next = match rx.try_recv() {
            Ok(Some(m)) => {
                format(&mut pending, &m)?;
                m.keep();
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        let got = match next {
            Ok(got) => got,
            Err(e) => {
                // A damaged record: print every good message before it, then say so.
                write_then_release(&mut out, &mut pending, &mut rx)?;
                return Err(e.into());
            }
        };
        if got {
            if pending.len() >= RECV_BATCH {
                write_then_release(&mut out, &mut pending, &mut rx)?;
            }
            continue;
        }
        // Nothing more for now: show what we have (and free its room) before waiting.
        write_then_release(&mut out, &mut pending, &mut rx)?;
        match rx.recv() {
            Ok(Some(m)) => {
                format(&mut pending, &m)?;
                m.keep();
            }
            Ok(None) => break,
            Err(Error::Interrupted) => {
                reason = "interrupted";
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    write_then_release(&mut out, &mut pending, &mut rx)?;
    let leave = rx.close()?;
    if json {
        let end = RecvLine::End {
            reason: reason.into(),
            messages,
            bytes,
            removed: leave.removed,
        };
        let mut line = serde_json::to_vec(&end)?;
        line.push(b'\n');
        out.write_all(&line).context(STDOUT_ERROR)?;
    }
    note!(
        "channel: {}; received {messages} messages ({bytes} bytes){}",
        if reason == "closed" {
            "the sender closed the channel".to_string()
        } else {
            format!("stopped by {}", stop_signal().0)
        },
        receiver_left(&path, &leave)
    );
    Ok(if reason == "closed" {
        ExitCode::SUCCESS
    } else {
        stop_signal().1
    })
}

/// How a receiver's leaving reads: the file removed, unread bytes kept for the next
/// receiver, or nothing to say.
fn receiver_left(path: &Path, leave: &channel::Leave) -> String {
    if leave.removed {
        format!("; removed {}", path.display())
    } else if leave.unread > 0 {
        format!(
            "; {} unread bytes stay in {} for the next receiver",
            leave.unread,
            path.display()
        )
    } else {
        String::new()
    }
}

/// The most `recv` copies out of the ring before writing it to stdout (one longer message
/// makes a batch of its own): the most a kill can make the next `recv` print twice.
const RECV_BATCH: usize = 16 * 1024;

/// Writes the batch to stdout, then releases the messages it carried (and clears it).
fn write_then_release(
    out: &mut std::fs::File,
    pending: &mut Vec<u8>,
    rx: &mut Receiver,
) -> anyhow::Result<()> {
    out.write_all(pending).context(STDOUT_ERROR)?;
    pending.clear();
    rx.release();
    Ok(())
}

fn info(args: &RingArgs, json: bool) -> anyhow::Result<ExitCode> {
    let path = args.path()?;
    let i = channel::inspect(&path)?;
    if json {
        print_stdout(&format!("{}\n", serde_json::to_string(&i)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    print_stdout(&render_info(&i))?;
    Ok(ExitCode::SUCCESS)
}

/// `channel info`'s text.
fn render_info(i: &channel::Info) -> String {
    let who = |pid: Option<u32>| match pid {
        Some(p) => format!("pid {p}"),
        None => "none".into(),
    };
    let mut text = format!(
        "{}: channel ring\ncapacity {} bytes (messages up to {} bytes)\n\
         head {} tail {}: {} bytes unread{}\nsender: {}\nreceiver: {}\n",
        i.path.display(),
        i.capacity,
        i.max_message,
        i.head,
        i.tail,
        i.unread,
        if i.closed {
            "; the sender closed the stream"
        } else if i.stopped {
            "; the sender stopped before the end of its stream"
        } else {
            ""
        },
        who(i.sender),
        who(i.receiver)
    );
    if let Some(p) = i.dead_sender {
        text += &format!("a sender (pid {p}) died without closing the stream\n");
    }
    text
}

fn bench_cmd(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    let config = bench::Config {
        quick: args.quick,
        transports: match args.only {
            Some(t) => vec![t.into()],
            None => Transport::ALL.to_vec(),
        },
        sizes: (!args.sizes.is_empty()).then(|| args.sizes.clone()),
        placements: (!args.placements.is_empty()).then(|| {
            args.placements
                .iter()
                .map(|p| match p {
                    PlacementArg::TwoCpus => Placement::TwoCpus,
                    PlacementArg::OneCpu => Placement::OneCpu,
                })
                .collect()
        }),
        messages: args.messages,
        spin: args.spin_us.map(Duration::from_micros),
        repeat: args.repeat,
        exe: std::env::current_exe().context("cannot find this program's executable")?,
        dir,
    };
    let machine = bench::run::machine();
    note!("channel bench: {}", bench::render_machine(&machine));
    note!(
        "channel bench: timings are as noisy as this machine is busy; each cell's counts are \
         sized by measured time{}",
        if args.messages.is_some() {
            " (here: fixed by --messages)"
        } else {
            ""
        }
    );
    let outcome = bench::run(&config, &mut |line| note!("  {line}"))?;
    for s in &outcome.skipped {
        note!("channel bench: skipped {s}");
    }
    if args.json {
        print_stdout(&format!("{}\n", serde_json::to_string(&outcome.report)?))?;
    } else {
        let mut text = bench::render(&outcome.report);
        for s in &outcome.skipped {
            text += &format!("skipped {s}\n");
        }
        print_stdout(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("abc").is_err());
        // A sign is no unit: '-1' is not a size at all.
        for bad in ["-1", "+4K", "-4K"] {
            assert_eq!(
                parse_size(bad),
                Err(format!("'{bad}' is not a size (e.g. 64, 4K, 1M)"))
            );
        }
    }
}
