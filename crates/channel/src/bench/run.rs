//! The runner: for each placement, transport and size, start a peer process (fork+exec of the
//! `channel` binary, hidden subcommand `bench-peer`), pin both, measure round trips
//! (ping-pong) and one-way throughput, and return a [`BenchReport`].
//!
//! Iteration counts are set by the clock: each phase first runs untimed for a tenth of the
//! cell's budget (warming caches, faulting the ring's pages in, waking the peer), then runs until
//! the budget has elapsed (and at least `min` operations), reading the clock only between
//! chunks of operations that double in size. A count is never extrapolated from a first batch:
//! one slow wake-up of a sleeping peer (milliseconds on a busy or virtual machine) would make
//! that batch look slow and shrink the run to a handful of messages whose time is mostly that
//! one wake-up. `--messages M` skips all of that and runs exactly M round trips, so
//! `strace -f -c` counts system calls per message.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::transport::{
    check_interrupt, command, read_message, set_command, spin_until, Mailbox, CMD_ECHO, CMD_ONEWAY,
    CMD_QUIT, CMD_READY, MAILBOX_EMPTY, MAILBOX_QUIT, MAILBOX_READY,
};
use super::{
    fmt_ns, fmt_ratio, fmt_size, BenchReport, FloorRun, Futex, Machine, Placement, Row, Rtt,
    Transport,
};
use crate::ring::{capacity_for, DEFAULT_SPIN};
use crate::{Options, Receiver, Sender, Stats, Wait};

/// The default message sizes: 8 B, 64 B, 4 KiB, 64 KiB, 1 MiB.
pub const SIZES: [u64; 5] = [8, 64, 4096, 65536, 1 << 20];
/// `--quick` sizes: the ones the goals need.
pub const QUICK_SIZES: [u64; 3] = [64, 4096, 1 << 20];
/// The floor goal's alternated runs by default: the issue asks for 9 of 9.
pub const FLOOR_RUNS: u32 = 9;
/// The smallest ring the benchmark uses (bigger when a message needs it: 4 MiB for 1 MiB).
pub const MIN_BENCH_CAPACITY: u64 = 256 * 1024;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shorter budgets and fewer sizes.
    pub quick: bool,
    /// Transports, in order.
    pub transports: Vec<Transport>,
    /// Message sizes (`None`: [`SIZES`] or [`QUICK_SIZES`]). The cacheline transport always
    /// moves one 8-byte word.
    pub sizes: Option<Vec<u64>>,
    /// Placements (`None`: two-cpus when two CPUs are available, and one-cpu).
    pub placements: Option<Vec<Placement>>,
    /// Exactly this many round trips per cell, no calibration, no one-way phase.
    pub messages: Option<u64>,
    /// ring-wait's spin budget (`None`: 20 µs on two CPUs, 0 on one CPU).
    pub spin: Option<Duration>,
    /// The floor goal's alternated runs ([`FloorRun`]): `None` runs [`FLOOR_RUNS`] of them
    /// when the run has both of the goal's cells (cacheline and ring-spin 64 B on two CPUs, no
    /// `--messages`), `Some(n)` exactly `n` whatever cells were chosen (0: none).
    pub repeat: Option<u32>,
    /// The `channel` executable (for the peer process).
    pub exe: PathBuf,
    /// Where the ring and mailbox files go (a temporary directory is made inside).
    pub dir: PathBuf,
}

/// How one cell was run: what was chosen and what the futex counters say.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CellNote {
    pub transport: Transport,
    pub placement: Placement,
    pub size: u64,
    /// The runner's CPU and the peer's.
    pub cpus: (usize, usize),
    pub round_trips: u64,
    /// One-way messages timed (0 with `--messages`).
    pub one_way_messages: u64,
    /// Ring transports: the ring's capacity.
    pub ring_capacity: Option<u64>,
    /// ring-wait: the spin budget before sleeping, ns.
    pub spin_budget_ns: Option<u64>,
    /// Ring transports: futex sleeps (`FUTEX_WAIT`) of the runner and of the peer.
    pub sleeps: Option<(u64, u64)>,
    /// Ring transports: futex wakes (`FUTEX_WAKE`) of the runner and of the peer.
    pub wakes: Option<(u64, u64)>,
    /// Ring transports: futex waits ended by their timeout, runner and peer.
    pub timeouts: Option<(u64, u64)>,
}

/// A run's result: the report and how each cell was run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: BenchReport,
    pub notes: Vec<CellNote>,
    /// Why a placement was left out (one CPU only).
    pub skipped: Vec<String>,
}

/// Time budgets of one cell.
#[derive(Debug, Clone, Copy)]
struct Budget {
    target: Duration,
    min: u64,
    max: u64,
}

/// Reads the machine: CPU model, CPUs online and allowed, kernel.
pub fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "model name" | "Model" | "cpu model" | "Hardware")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cpus_allowed = crate::allowed_cpus().unwrap_or_default();
    let cpus_online = read("/sys/devices/system/cpu/online")
        .and_then(|s| count_cpu_list(s.trim()))
        .unwrap_or(cpus_allowed.len());
    let kernel = match (
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
    ) {
        (Some(os), Some(rel)) => format!("{} {} {}", os.trim(), rel.trim(), std::env::consts::ARCH),
        _ => "unknown".into(),
    };
    Machine {
        cpu_model,
        cpus_online,
        cpus_allowed,
        kernel,
    }
}

/// Counts a kernel CPU list like "0-3,8,10-11".
fn count_cpu_list(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()? - a.parse::<usize>().ok()? + 1,
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(n)
}

/// Runs the benchmark. `progress` receives one line per cell (what was chosen).
pub fn run(config: &Config, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Outcome> {
    let machine = machine();
    let original = crate::allowed_cpus().context("sched_getaffinity failed")?;
    if original.is_empty() {
        bail!("sched_getaffinity returned no CPU");
    }
    let mut skipped = Vec::new();
    let placements = match &config.placements {
        Some(p) => {
            if p.contains(&Placement::TwoCpus) && original.len() < 2 {
                bail!(
                    "two-cpus needs two CPUs; this process may run on {} only (CPU {})",
                    original.len(),
                    original[0]
                );
            }
            p.clone()
        }
        None if original.len() >= 2 => vec![Placement::TwoCpus, Placement::OneCpu],
        None => {
            skipped.push(format!(
                "two-cpus: this machine (or this process's affinity) offers one CPU only (CPU \
                 {}); only one-cpu was measured",
                original[0]
            ));
            vec![Placement::OneCpu]
        }
    };
    let sizes = config.sizes.clone().unwrap_or_else(|| {
        if config.quick {
            QUICK_SIZES.to_vec()
        } else {
            SIZES.to_vec()
        }
    });
    if let Some(bad) = sizes.iter().find(|&&s| !(8..=(64 << 20)).contains(&s)) {
        bail!("message size {bad} is out of range (8 bytes to 64 MiB)");
    }
    let only_cacheline = config.transports == [Transport::Cacheline];
    if only_cacheline && config.sizes.as_ref().is_some_and(|s| s != &[8]) {
        bail!("cacheline moves one 8-byte word; use --size 8 (or no --size)");
    }
    let (rtt_budget, tput_budget) = budgets(config.quick);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut floor_runs = Vec::new();
    let result = (|| {
        for &placement in &placements {
            let cpus = match placement {
                Placement::TwoCpus => (original[0], original[1]),
                Placement::OneCpu => (original[0], original[0]),
            };
            for &transport in &config.transports {
                let cell_sizes: Vec<u64> = if transport == Transport::Cacheline {
                    vec![8]
                } else {
                    sizes.clone()
                };
                for size in cell_sizes {
                    let cell = Cell {
                        transport,
                        placement,
                        size,
                        cpus,
                    };
                    let (row, note) = run_cell(config, &cell, rtt_budget, Some(tput_budget))
                        .with_context(|| {
                            format!(
                                "{} {} {}",
                                transport.name(),
                                placement.name(),
                                fmt_size(size)
                            )
                        })?;
                    progress(&describe(&note, &row));
                    rows.push(row);
                    notes.push(note);
                }
            }
        }
        floor_runs = alternated_floor_runs(
            config,
            &original,
            &placements,
            &sizes,
            rtt_budget,
            progress,
            &mut skipped,
        )?;
        Ok::<(), anyhow::Error>(())
    })();
    // Back to where we started, whatever happened.
    let restored = crate::set_affinity(&original);
    result?;
    restored.context("cannot restore this process's CPU affinity")?;
    Ok(Outcome {
        report: BenchReport {
            machine,
            rows,
            floor_runs,
        },
        notes,
        skipped,
    })
}

/// The floor goal's alternated runs ([`Config::repeat`]), each reported to `progress`; a note in
/// `skipped` when they were asked for but the run has no two CPUs.
fn alternated_floor_runs(
    config: &Config,
    original: &[usize],
    placements: &[Placement],
    sizes: &[u64],
    rtt_budget: Budget,
    progress: &mut dyn FnMut(&str),
    skipped: &mut Vec<String>,
) -> anyhow::Result<Vec<FloorRun>> {
    let repeat = match config.repeat {
        Some(n) => n,
        None if has_floor_cells(config, placements, sizes) => FLOOR_RUNS,
        None => 0,
    };
    let mut runs = Vec::new();
    if repeat == 0 {
        return Ok(runs);
    }
    if !placements.contains(&Placement::TwoCpus) {
        skipped.push(format!(
            "the floor goal's {repeat} alternated runs: they need two CPUs (two-cpus)"
        ));
        return Ok(runs);
    }
    let cpus = (original[0], original[1]);
    for i in 1..=repeat {
        let run = floor_run(config, cpus, rtt_budget)
            .with_context(|| format!("the floor goal's alternated run {i}"))?;
        progress(&format!(
            "floor run {i}/{repeat}: cacheline 8 B {}, ring-spin 64 B {} -> {} [{}]",
            fmt_ns(run.floor_ns),
            fmt_ns(run.ring_spin_ns),
            fmt_ratio(run.ratio),
            run.verdict()
        ));
        runs.push(run);
    }
    Ok(runs)
}

/// The round-trip and one-way budgets of a cell.
fn budgets(quick: bool) -> (Budget, Budget) {
    if quick {
        (
            Budget {
                target: Duration::from_millis(25),
                min: 10,
                max: 200_000,
            },
            Budget {
                target: Duration::from_millis(25),
                min: 10,
                max: 1_000_000,
            },
        )
    } else {
        (
            Budget {
                target: Duration::from_millis(150),
                min: 20,
                max: 1_000_000,
            },
            Budget {
                target: Duration::from_millis(150),
                min: 20,
                max: 10_000_000,
            },
        )
    }
}

/// Does the run measure both cells of the floor goal (so it gets the alternated runs)?
fn has_floor_cells(config: &Config, placements: &[Placement], sizes: &[u64]) -> bool {
    config.messages.is_none()
        && placements.contains(&Placement::TwoCpus)
        && config.transports.contains(&Transport::Cacheline)
        && config.transports.contains(&Transport::RingSpin)
        && sizes.contains(&64)
}

/// One alternated run of the floor goal: the cache-line floor's cell, then ring-spin 64 B's,
/// round trips only (no one-way phase), each with its own peer process and warm-up.
fn floor_run(
    config: &Config,
    cpus: (usize, usize),
    rtt_budget: Budget,
) -> anyhow::Result<FloorRun> {
    let median = |transport, size| {
        let cell = Cell {
            transport,
            placement: Placement::TwoCpus,
            size,
            cpus,
        };
        run_cell(config, &cell, rtt_budget, None).map(|(row, _)| row.rtt_ns.median)
    };
    let floor = median(Transport::Cacheline, 8)?;
    let spin = median(Transport::RingSpin, 64)?;
    let after = median(Transport::Cacheline, 8)?;
    Ok(FloorRun::new(floor, spin).with_floor_after(after))
}

/// The progress line of one cell.
pub fn describe(note: &CellNote, row: &Row) -> String {
    let mut s = format!(
        "{:<9} {:<11} {:>7}: {} round trips",
        note.placement.name(),
        note.transport.name(),
        fmt_size(note.size),
        note.round_trips
    );
    if note.one_way_messages > 0 {
        s.push_str(&format!(", {} one-way messages", note.one_way_messages));
    }
    s.push_str(&format!(" (CPUs {} and {})", note.cpus.0, note.cpus.1));
    if let Some(c) = note.ring_capacity {
        s.push_str(&format!(", ring {}", fmt_size(c)));
    }
    if let Some(ns) = note.spin_budget_ns {
        s.push_str(&format!(", spin {} µs then futex", ns as f64 / 1e3));
    }
    if let (Some(sl), Some(wk)) = (note.sleeps, note.wakes) {
        s.push_str(&format!(
            "; futex sleeps {}+{}, wakes {}+{} (runner+peer)",
            sl.0, sl.1, wk.0, wk.1
        ));
    }
    if let Some(to) = note.timeouts {
        s.push_str(&format!(", timeouts {}+{}", to.0, to.1));
    }
    s.push_str(&format!(" -> rtt median {:.0} ns", row.rtt_ns.median));
    s
}

struct Cell {
    transport: Transport,
    placement: Placement,
    size: u64,
    cpus: (usize, usize),
}

/// The peer process; killed if still running when dropped (an error mid-cell).
struct Peer {
    child: Option<Child>,
}

impl Peer {
    fn exited(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Some(status) = c.try_wait()? {
                self.child = None;
                bail!("the bench peer exited early ({status})");
            }
        }
        Ok(())
    }

    fn wait(mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            let status = c.wait()?;
            if !status.success() {
                bail!("the bench peer failed ({status})");
            }
        }
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The runner's end of one transport. One per cell, never moved while measuring: boxing the
/// large ring variant would only add a pointer chase to the timed path.
#[allow(clippy::large_enum_variant)]
enum Client {
    Ring {
        tx: Sender,
        rx: Receiver,
    },
    Cacheline {
        mailbox: Mailbox,
        seq: u64,
    },
    Pipe {
        w: ChildStdin,
        r: ChildStdout,
        reply: Vec<u8>,
    },
    Socket {
        s: UnixStream,
        reply: Vec<u8>,
    },
}

impl Client {
    /// One message there, its echo back.
    fn ping(&mut self, msg: &mut [u8], peer: &mut Peer) -> anyhow::Result<()> {
        set_command(msg, CMD_ECHO);
        match self {
            Client::Ring { tx, rx } => {
                tx.send(msg)?;
                let reply = rx.recv()?.context("the bench peer closed the ring")?;
                if reply.len() != msg.len() || command(&reply) != CMD_ECHO {
                    bail!(
                        "the bench peer echoed {} bytes, not {}",
                        reply.len(),
                        msg.len()
                    );
                }
            }
            Client::Cacheline { mailbox, seq } => {
                *seq += 1;
                let word = mailbox.word();
                word.store(*seq, Ordering::Release);
                spin_until(
                    || word.load(Ordering::Acquire) == MAILBOX_EMPTY,
                    || {
                        check_interrupt()?;
                        peer.exited()
                    },
                )?;
            }
            Client::Pipe { w, r, reply } => {
                w.write_all(msg)?;
                if !read_message(r, reply)? {
                    bail!("the bench peer closed its pipe");
                }
            }
            Client::Socket { s, reply } => {
                s.write_all(msg)?;
                if !read_message(s, reply)? {
                    bail!("the bench peer closed its socket");
                }
            }
        }
        Ok(())
    }

    /// One message there, no reply.
    fn oneway(&mut self, msg: &mut [u8], peer: &mut Peer) -> anyhow::Result<()> {
        match self {
            // A one-slot mailbox: the next word waits for the slot to empty.
            Client::Cacheline { .. } => self.ping(msg, peer),
            Client::Ring { tx, .. } => {
                set_command(msg, CMD_ONEWAY);
                Ok(tx.send(msg)?)
            }
            Client::Pipe { w, .. } => {
                set_command(msg, CMD_ONEWAY);
                Ok(w.write_all(msg)?)
            }
            Client::Socket { s, .. } => {
                set_command(msg, CMD_ONEWAY);
                Ok(s.write_all(msg)?)
            }
        }
    }

    /// Tells the peer to stop; ring peers answer with their (sleeps, wakes).
    fn finish(self) -> anyhow::Result<Option<(Stats, Stats)>> {
        match self {
            Client::Ring { mut tx, mut rx } => {
                let mut quit = [0u8; 8];
                set_command(&mut quit, CMD_QUIT);
                tx.send(&quit)?;
                let peer = {
                    let reply = rx.recv()?.context("the bench peer closed the ring")?;
                    if reply.len() != 24 {
                        bail!(
                            "the bench peer's statistics are {} bytes, not 24",
                            reply.len()
                        );
                    }
                    let word =
                        |i: usize| u64::from_le_bytes(reply[i..i + 8].try_into().expect("8 bytes"));
                    Stats {
                        sleeps: word(0),
                        wakes: word(8),
                        timeouts: word(16),
                    }
                };
                let (t, r) = (tx.stats(), rx.stats());
                let mine = Stats {
                    sleeps: t.sleeps + r.sleeps,
                    wakes: t.wakes + r.wakes,
                    timeouts: t.timeouts + r.timeouts,
                };
                tx.close()?;
                rx.close()?;
                Ok(Some((mine, peer)))
            }
            Client::Cacheline { mailbox, .. } => {
                mailbox.word().store(MAILBOX_QUIT, Ordering::Release);
                Ok(None)
            }
            // Closing our end is the end of the stream for the peer.
            Client::Pipe { w, .. } => {
                drop(w);
                Ok(None)
            }
            Client::Socket { s, .. } => {
                s.shutdown(std::net::Shutdown::Write)?;
                Ok(None)
            }
        }
    }
}

/// Polls `ready` (every millisecond) until it holds, the peer exits, or 20 s pass.
fn handshake(
    peer: &mut Peer,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready()? {
        check_interrupt()?;
        peer.exited()?;
        if Instant::now() > deadline {
            bail!("the bench peer did not get ready within 20 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn spawn(cmd: &mut Command) -> anyhow::Result<Peer> {
    let child = cmd
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the bench peer")?;
    Ok(Peer { child: Some(child) })
}

fn setup(config: &Config, cell: &Cell, dir: &Path) -> anyhow::Result<(Client, Peer, CellNote)> {
    let mut cmd = Command::new(&config.exe);
    cmd.arg("bench-peer")
        .arg("--transport")
        .arg(cell.transport.name())
        .arg("--size")
        .arg(cell.size.to_string())
        .arg("--cpu")
        .arg(cell.cpus.1.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut note = CellNote {
        transport: cell.transport,
        placement: cell.placement,
        size: cell.size,
        cpus: cell.cpus,
        round_trips: 0,
        one_way_messages: 0,
        ring_capacity: None,
        spin_budget_ns: None,
        sleeps: None,
        wakes: None,
        timeouts: None,
    };
    match cell.transport {
        Transport::RingSpin | Transport::RingWait => {
            let spinning = cell.transport == Transport::RingSpin;
            let spin = if spinning {
                Duration::ZERO
            } else {
                config.spin.unwrap_or(match cell.placement {
                    Placement::TwoCpus => DEFAULT_SPIN,
                    Placement::OneCpu => Duration::ZERO,
                })
            };
            let capacity = capacity_for(cell.size).max(MIN_BENCH_CAPACITY);
            let opts = Options {
                capacity,
                wait: if spinning { Wait::Spin } else { Wait::Futex },
                spin: Some(spin),
                interrupt: Some(crate::interrupt_flag()),
                ..Options::default()
            };
            let (there, back) = (dir.join("there.ring"), dir.join("back.ring"));
            let tx = Sender::open(&there, opts)?;
            let mut rx = Receiver::open(&back, opts)?;
            cmd.arg("--path-in")
                .arg(&there)
                .arg("--path-out")
                .arg(&back)
                .arg("--spin-ns")
                .arg(spin.as_nanos().to_string());
            let mut peer = spawn(&mut cmd)?;
            handshake(&mut peer, || match rx.try_recv()? {
                Some(m) if command(&m) == CMD_READY => Ok(true),
                Some(_) => bail!("the bench peer's first message is not READY"),
                None => Ok(false),
            })?;
            note.ring_capacity = Some(capacity);
            note.spin_budget_ns = (!spinning).then_some(spin.as_nanos() as u64);
            Ok((Client::Ring { tx, rx }, peer, note))
        }
        Transport::Cacheline => {
            let path = dir.join("mailbox");
            let mailbox = Mailbox::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            cmd.arg("--path-in").arg(&path);
            let mut peer = spawn(&mut cmd)?;
            let word = mailbox.word();
            handshake(&mut peer, || {
                Ok(word.load(Ordering::Acquire) == MAILBOX_READY)
            })?;
            Ok((Client::Cacheline { mailbox, seq: 0 }, peer, note))
        }
        Transport::Pipe => {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
            let mut peer = spawn(&mut cmd)?;
            let child = peer.child.as_mut().expect("just spawned");
            let w = child.stdin.take().context("no pipe to the peer")?;
            let mut r = child.stdout.take().context("no pipe from the peer")?;
            expect_ready(&mut r)?;
            let reply = vec![0u8; cell.size as usize];
            Ok((Client::Pipe { w, r, reply }, peer, note))
        }
        Transport::UnixSocket => {
            let (mut s, theirs) = UnixStream::pair().context("socketpair failed")?;
            cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
            let peer = spawn(&mut cmd)?;
            expect_ready(&mut s)?;
            let reply = vec![0u8; cell.size as usize];
            Ok((Client::Socket { s, reply }, peer, note))
        }
    }
}

fn expect_ready(r: &mut impl Read) -> anyhow::Result<()> {
    let mut ready = [0u8; 8];
    if !read_message(r, &mut ready)? || command(&ready) != CMD_READY {
        bail!("the bench peer did not start (no READY)");
    }
    Ok(())
}

/// Runs `chunk_of(k)` (k operations) in chunks of 1, 2, 4, ... operations until `budget.target`
/// has elapsed on `now` and at least `budget.min` operations ran, or `budget.max` did; returns
/// the operations run. A chunk stops doubling once it takes a hundredth of the target (or
/// reaches 4096), so the clock is read rarely and the run overshoots the target by little.
/// `now` is the time since some origin (a parameter so that tests can pass a fake clock).
fn run_for(
    budget: Budget,
    mut now: impl FnMut() -> Duration,
    mut chunk_of: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let start = now();
    let mut chunk = 1u64;
    let mut done = 0u64;
    loop {
        let k = chunk.min(budget.max - done);
        let t0 = now();
        chunk_of(k)?;
        let t1 = now();
        done += k;
        let elapsed = t1.saturating_sub(start);
        if done >= budget.max || (done >= budget.min && elapsed >= budget.target) {
            return Ok(done);
        }
        if t1.saturating_sub(t0) < budget.target / 100 && chunk < 4096 {
            chunk *= 2;
        }
    }
}

/// [`run_for`] on the monotonic clock.
fn run_for_real(
    budget: Budget,
    chunk_of: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let origin = Instant::now();
    run_for(budget, || origin.elapsed(), chunk_of)
}

/// The untimed warm-up before a phase: a tenth of its budget, at least one operation.
fn warm_up(budget: Budget) -> Budget {
    Budget {
        target: budget.target / 10,
        min: 1,
        max: budget.max,
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64
}

fn median(sorted: &[u64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2] as f64
    } else {
        (sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0
    }
}

/// Runs one cell: round trips, then (with `tput_budget`) one-way throughput.
fn run_cell(
    config: &Config,
    cell: &Cell,
    rtt_budget: Budget,
    tput_budget: Option<Budget>,
) -> anyhow::Result<(Row, CellNote)> {
    crate::set_affinity(&[cell.cpus.0])
        .with_context(|| format!("cannot pin the runner to CPU {}", cell.cpus.0))?;
    let dir = tempfile::Builder::new()
        .prefix("channel-bench-")
        .tempdir_in(&config.dir)
        .with_context(|| format!("cannot make a directory in {}", config.dir.display()))?;
    let (mut client, mut peer, mut note) = setup(config, cell, dir.path())?;
    // Both sides have the files open and mapped: remove them now, so that nothing is left
    // behind whatever happens next.
    dir.close()
        .context("cannot remove the bench's temporary files")?;
    let mut msg = vec![0xA5u8; cell.size as usize];

    let mut samples = Vec::new();
    let mut timed_pings = |n: u64, client: &mut Client, peer: &mut Peer, msg: &mut [u8]| {
        for _ in 0..n {
            let t0 = Instant::now();
            client.ping(msg, peer)?;
            samples.push(t0.elapsed().as_nanos() as u64);
        }
        Ok::<(), anyhow::Error>(())
    };
    let start = Instant::now();
    let round_trips = match config.messages {
        Some(m) => {
            timed_pings(m, &mut client, &mut peer, &mut msg)?;
            m
        }
        None => {
            run_for_real(warm_up(rtt_budget), |n| {
                (0..n).try_for_each(|_| client.ping(&mut msg, &mut peer))
            })?;
            run_for_real(rtt_budget, |n| {
                timed_pings(n, &mut client, &mut peer, &mut msg)
            })?
        }
    };
    let pingpong = start.elapsed();
    samples.sort_unstable();
    let rtt = Rtt {
        median: median(&samples),
        p99: percentile(&samples, 99.0),
    };

    let msgs_per_s = match (config.messages, tput_budget) {
        // One message each way per round trip: report round trips per second.
        (Some(_), _) | (None, None) => round_trips as f64 / pingpong.as_secs_f64(),
        (None, Some(tput_budget)) => {
            // Untimed: the peer is awake and its ring warm when the clock starts. The ping at
            // the end of each part returns after the peer took every message before it.
            run_for_real(warm_up(tput_budget), |k| {
                (0..k).try_for_each(|_| client.oneway(&mut msg, &mut peer))
            })?;
            client.ping(&mut msg, &mut peer)?;
            let t0 = Instant::now();
            let n = run_for_real(tput_budget, |k| {
                (0..k).try_for_each(|_| client.oneway(&mut msg, &mut peer))
            })?;
            client.ping(&mut msg, &mut peer)?;
            let took = t0.elapsed();
            note.one_way_messages = n;
            (n + 1) as f64 / took.as_secs_f64()
        }
    };
    note.round_trips = round_trips;
    let mut futex = None;
    if let Some((mine, theirs)) = client.finish()? {
        note.sleeps = Some((mine.sleeps, theirs.sleeps));
        note.wakes = Some((mine.wakes, theirs.wakes));
        note.timeouts = Some((mine.timeouts, theirs.timeouts));
        futex = Some(Futex {
            runner: mine.into(),
            peer: theirs.into(),
        });
    }
    peer.wait()?;
    let row = Row {
        transport: cell.transport,
        placement: cell.placement,
        size: cell.size,
        rtt_ns: rtt,
        msgs_per_s,
        bytes_per_s: msgs_per_s * cell.size as f64,
        futex,
    };
    Ok((row, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(median(&v), 50.5);
        assert_eq!(percentile(&[7], 99.0), 7.0);
        assert_eq!(median(&[1, 2, 9]), 2.0);
    }

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("x"), None);
    }

    /// A fake clock: `chunk_of` advances it by a fixed cost per chunk plus a cost per operation.
    fn fake_run(budget: Budget, first_chunk: Duration, per_op: Duration) -> (u64, u64) {
        let clock = std::cell::Cell::new(Duration::ZERO);
        let chunks = std::cell::Cell::new(0u64);
        let n = run_for(
            budget,
            || clock.get(),
            |k| {
                let stall = if chunks.get() == 0 {
                    first_chunk
                } else {
                    Duration::ZERO
                };
                chunks.set(chunks.get() + 1);
                clock.set(clock.get() + stall + per_op * k as u32);
                Ok(())
            },
        )
        .unwrap();
        (n, chunks.get())
    }

    #[test]
    fn a_slow_first_operation_does_not_shrink_the_run() {
        let budget = Budget {
            target: Duration::from_millis(25),
            min: 10,
            max: 1_000_000,
        };
        // The first message waits 4 ms for a sleeping peer to be scheduled, then each takes
        // 50 ns. Sizing the run from that first batch (as the benchmark once did) gave the
        // minimum of 10 messages, and a throughput of ~2,700 msgs/s; running to the deadline
        // times about (25 - 4) ms / 50 ns of them.
        let (n, chunks) = fake_run(budget, Duration::from_millis(4), Duration::from_nanos(50));
        assert!((400_000..=430_000).contains(&n), "{n}");
        assert!(
            chunks < 200,
            "the clock is read per chunk, not per message: {chunks}"
        );
        // Without the stall: the whole target.
        let (n, _) = fake_run(budget, Duration::ZERO, Duration::from_nanos(50));
        assert!((500_000..=520_000).contains(&n), "{n}");
    }

    #[test]
    fn runs_end_within_min_and_max() {
        let budget = Budget {
            target: Duration::from_millis(10),
            min: 5,
            max: 1000,
        };
        // Slow operations: the deadline passes after 2, the minimum still holds.
        let (n, _) = fake_run(budget, Duration::ZERO, Duration::from_millis(6));
        assert_eq!(n, 5);
        // Fast operations: capped at max exactly.
        let (n, _) = fake_run(budget, Duration::ZERO, Duration::from_nanos(1));
        assert_eq!(n, 1000);
    }
}
