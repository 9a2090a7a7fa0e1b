//! Step 6's findings, decided from the evidence alone.

use channel::bench::{
    self, BenchReport, CellValue, GoalOutcome, Machine, Metric, Placement, RowRatios, Transport,
};
use serde::Serialize;

use super::calls::{is_futex_wait, is_futex_wake, Counts, Side};
use super::{Evidence, TracedCell, Traces};

/// Fewer calls per message than this is "no system call per message": one in twenty messages
/// or fewer, which is what time-driven calls (a liveness check every 100 ms) amount to.
pub const NO_CALLS_BELOW: f64 = 0.05;
/// The message size the latency answers compare (the goals' size).
pub const COMPARE_SIZE: u64 = 64;

/// What step 6's evidence establishes.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    /// System calls per message, from strace.
    pub syscalls: Syscalls,
    pub machine: Machine,
    /// The placement the comparisons use: two-cpus when it was measured, else one-cpu.
    pub primary: Placement,
    pub placements: Vec<Placement>,
    /// Every row against the pipe and the floor (`channel::bench::ratios`).
    pub ratios: Vec<RowRatios>,
    /// The goals on this run's numbers (`channel::bench::goals`).
    pub goals: Vec<GoalOutcome>,
    /// Round trips at [`COMPARE_SIZE`] on the primary placement: pipe or socket over ring
    /// (how many times faster the ring is).
    pub faster: Vec<Ratio>,
    /// The ring over the cache-line floor, two CPUs (`None`: not measured there).
    pub floor: Option<Floor>,
    /// What one CPU changes (`None`: no one-cpu rows).
    pub one_cpu: Option<OneCpu>,
    /// One-way bytes/s at the largest size: ring over pipe (how many times more).
    pub throughput: Vec<Ratio>,
    /// The stream through the small ring: what arrived, checked.
    pub integrity: Integrity,
    /// What else the machine ran while the benchmark ran (`None`: not recorded).
    pub load: Option<Load>,
}

/// Other processes using this much CPU (or the hypervisor stealing it), on average over the
/// benchmark, make a busy machine: the same gap step 5 calls racers short of CPU.
pub const BUSY_CPU: f64 = 0.3;

/// The CPUs around `channel bench`, in CPU-seconds per second of its wall time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Load {
    pub seconds: f64,
    /// The CPUs the bench could use.
    pub allowed: usize,
    /// The bench itself (its process and its peers).
    pub bench: f64,
    /// Busy time of those CPUs neither the bench nor the lab used: other processes.
    pub others: f64,
    /// Time the hypervisor ran something else while these CPUs wanted to run.
    pub steal: f64,
    /// Idle time of those CPUs.
    pub idle: f64,
    pub loadavg_before: f64,
    pub loadavg_after: f64,
    /// Other processes or steal took at least [`BUSY_CPU`]: every timing includes waiting for
    /// a CPU, and no cause is read from the timings.
    pub busy: bool,
}

fn load(l: &super::BenchLoad) -> Option<Load> {
    let hz = l.clock_ticks_per_second.max(1) as f64;
    if l.seconds <= 0.0 || l.after.is_empty() {
        return None;
    }
    let (mut busy, mut steal, mut idle) = (0u64, 0u64, 0u64);
    for after in &l.after {
        let before = l.before.iter().find(|b| b.cpu == after.cpu)?;
        let d = after.since(before);
        busy += d.busy();
        steal += d.steal;
        idle += d.idle + d.iowait;
    }
    let per_s = |ticks: u64| ticks as f64 / hz / l.seconds;
    let others = per_s(busy.saturating_sub(l.bench_ticks + l.lab_ticks));
    let steal = per_s(steal);
    Some(Load {
        seconds: l.seconds,
        allowed: l.after.len(),
        bench: per_s(l.bench_ticks),
        others,
        steal,
        idle: per_s(idle),
        loadavg_before: l.loadavg_before,
        loadavg_after: l.loadavg_after,
        busy: others + steal >= BUSY_CPU,
    })
}

/// `numerator / denominator`, both measured in this run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    pub numerator: CellValue,
    pub denominator: CellValue,
    pub ratio: f64,
}

/// The strace counts, or why there are none.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Syscalls {
    Counted {
        cells: Vec<CellCalls>,
        /// Every spinning cell (cacheline, ring-spin) makes no call per message.
        spinning_makes_none: Option<bool>,
        /// The pipe's write and read calls per message (two CPUs if traced there).
        pipe_write_read: Option<(f64, f64)>,
    },
    Unavailable {
        reason: String,
    },
}

/// One traced cell: what one more message costs in system calls.
#[derive(Debug, Clone, Serialize)]
pub struct CellCalls {
    pub transport: Transport,
    pub placement: Placement,
    pub size: u64,
    /// Round trips of the short and the long run.
    pub round_trips: [u64; 2],
    /// The long run's extra messages (two per extra round trip: there and back).
    pub extra_messages: u64,
    /// Per message, the calls whose count differs between the runs, most frequent first.
    pub per_message: Vec<Rate>,
    pub total_per_message: f64,
    /// The cell is [`measured`](CellCalls::measured) and [`CellCalls::total_per_message`] is
    /// below [`NO_CALLS_BELOW`].
    pub none_per_message: bool,
    /// The counts that fell by at least [`NO_CALLS_BELOW`] per extra message from the short
    /// run to the long one, and by how many calls (`all calls` for the sum). A count cannot
    /// shrink with more messages, so such a fall is noise as large as the costs measured: the
    /// cell is not measured. A smaller fall (a harness's `clock_nanosleep` or `wait4` a few
    /// calls down over a thousand messages) is zero, like a smaller rise.
    pub shrank: Vec<(String, u64)>,
    /// No count [`shrank`](CellCalls::shrank): the per-message figures mean what they say.
    pub measured: bool,
    pub futex_waits_per_message: f64,
    pub futex_wakes_per_message: f64,
    /// The long run's futex waits; how many returned at once because the word had already
    /// changed (`EAGAIN`: the other side cleared the flag between the announcement and the
    /// call), and how many ended because nobody woke them (`ETIMEDOUT`: the side slept its
    /// whole liveness interval).
    pub waits: u64,
    pub waits_changed: u64,
    pub waits_timed_out: u64,
    /// The long run's futex wakes, and how many woke nobody (returned 0).
    pub wakes: u64,
    pub wakes_woke_none: u64,
    /// Futex calls per message at all (at least [`NO_CALLS_BELOW`] waits or wakes).
    pub slept: bool,
    /// No more wakes than waits in the long run.
    pub wakes_within_waits: bool,
    /// How the long run's waits ended.
    pub timeouts: Timeouts,
}

/// How many futex waits ended by timeout rather than a wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timeouts {
    /// There were no waits.
    NoWaits,
    /// None: every sleeper was woken (or never slept).
    None,
    /// Some, at most half.
    Few,
    /// More than half: sleepers were not woken when a message arrived.
    Most,
}

/// Calls of one key per message: in all, by the runner and by the peer.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    pub key: String,
    pub per_message: f64,
    pub runner: f64,
    pub peer: f64,
}

/// How close the ring comes to one word on one cache line (two CPUs).
#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    /// ring-spin over the floor, and ring-wait over the floor, at [`COMPARE_SIZE`].
    pub spin: Option<Ratio>,
    pub wait: Option<Ratio>,
    /// ring-spin's round trip minus the floor's, ns: what the ring's bookkeeping and the
    /// message's bytes cost on top of moving one line each way.
    pub spin_overhead_ns: Option<f64>,
    /// When the bench ran the floor goal's alternated runs: how many. `spin` is then the
    /// median measured run's (floor and ring back to back, one machine state), not two cells
    /// of the table, which may lie in two of this VM's states.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spin_from_runs: Option<usize>,
}

/// What one CPU changes, at [`COMPARE_SIZE`].
#[derive(Debug, Clone, Serialize)]
pub struct OneCpu {
    /// ring-spin over ring-wait on one CPU.
    pub spin_over_wait: Option<Ratio>,
    /// ring-spin is slower than ring-wait there.
    pub spin_worse_than_wait: Option<bool>,
    /// ring-wait over pipe on one CPU.
    pub wait_over_pipe: Option<Ratio>,
    /// Each transport on one CPU over itself on two (empty without two-cpus rows).
    pub slowdown: Vec<Ratio>,
    /// The transports faster on one CPU than on two, and those slower.
    pub faster_on_one: Vec<Transport>,
    pub slower_on_one: Vec<Transport>,
}

/// The stream through the small ring.
#[derive(Debug, Clone, Serialize)]
pub struct Integrity {
    pub lines: u64,
    pub sent: u64,
    pub received: u64,
    /// Received messages equal to the line sent at their place.
    pub matched: u64,
    /// Lines that did not arrive intact and in place.
    pub lost: u64,
    pub all_intact_in_order: bool,
    pub first_mismatch: Option<String>,
    /// How the receiver's stream ended (`closed`, `interrupted`), if it said.
    pub end_reason: Option<String>,
    pub capacity: u64,
    /// Payload bytes received over the ring's capacity: how many times, at least, every byte
    /// of the data area was reused.
    pub laps: f64,
    pub seconds: f64,
}

pub fn analyze(ev: &Evidence) -> anyhow::Result<Findings> {
    let report = &ev.bench;
    let mut placements: Vec<Placement> = Vec::new();
    for r in &report.rows {
        if !placements.contains(&r.placement) {
            placements.push(r.placement);
        }
    }
    if placements.is_empty() {
        anyhow::bail!("channel bench measured nothing (no rows)");
    }
    let primary = if placements.contains(&Placement::TwoCpus) {
        Placement::TwoCpus
    } else {
        Placement::OneCpu
    };
    Ok(Findings {
        syscalls: syscalls(&ev.traces),
        machine: report.machine.clone(),
        primary,
        placements,
        ratios: bench::ratios(report),
        goals: bench::goals(report),
        faster: faster(report, primary),
        floor: floor(report),
        one_cpu: one_cpu(report),
        throughput: throughput(report, primary),
        integrity: integrity(&ev.stream),
        load: ev.load.as_ref().and_then(load),
    })
}

fn syscalls(traces: &Traces) -> Syscalls {
    let cells = match traces {
        Traces::Unavailable { reason } => {
            return Syscalls::Unavailable {
                reason: reason.clone(),
            }
        }
        Traces::Traced { cells } => cells,
    };
    let cells: Vec<CellCalls> = cells.iter().filter_map(cell_calls).collect();
    let spinning: Vec<&CellCalls> = cells
        .iter()
        .filter(|c| matches!(c.transport, Transport::Cacheline | Transport::RingSpin))
        .collect();
    let pipe = cells
        .iter()
        .filter(|c| c.transport == Transport::Pipe)
        .min_by_key(|c| c.placement != Placement::TwoCpus);
    let rate = |c: &CellCalls, key: &str| {
        c.per_message
            .iter()
            .find(|r| r.key == key)
            .map_or(0.0, |r| r.per_message)
    };
    Syscalls::Counted {
        spinning_makes_none: (!spinning.is_empty())
            .then(|| spinning.iter().all(|c| c.none_per_message)),
        pipe_write_read: pipe.map(|p| (rate(p, "write"), rate(p, "read"))),
        cells,
    }
}

/// The difference between a cell's long and short run, per extra message.
fn cell_calls(cell: &TracedCell) -> Option<CellCalls> {
    let (short, long) = match cell.runs.as_slice() {
        [a, b] if b.round_trips > a.round_trips => (a, b),
        _ => return None,
    };
    let extra_messages = 2 * (long.round_trips - short.round_trips);
    let per = |a: u64, b: u64| (b as f64 - a as f64) / extra_messages as f64;
    let side_rate = |side: Side, key: &str| {
        let get = |c: &Counts| c.side(side).get(key).copied().unwrap_or(0);
        per(get(&short.counts), get(&long.counts))
    };
    let mut keys: Vec<&String> = [&short.counts, &long.counts]
        .iter()
        .flat_map(|c| [&c.runner, &c.peer, &c.other])
        .flat_map(|m| m.keys())
        .collect();
    keys.sort();
    keys.dedup();
    let mut per_message: Vec<Rate> = keys
        .into_iter()
        .filter_map(|k| {
            let total = per(short.counts.of(k), long.counts.of(k));
            (total != 0.0).then(|| Rate {
                key: k.clone(),
                per_message: total,
                runner: side_rate(Side::Runner, k),
                peer: side_rate(Side::Peer, k),
            })
        })
        .collect();
    per_message.sort_by(|a, b| b.per_message.total_cmp(&a.per_message));
    let total_per_message = per(short.counts.total(), long.counts.total());
    let sum_where = |pred: fn(&str) -> bool| {
        per_message
            .iter()
            .filter(|r| pred(&r.key))
            .map(|r| r.per_message)
            .sum::<f64>()
    };
    let long_where = |pred: &dyn Fn(&str) -> bool| {
        [Side::Runner, Side::Peer, Side::Other]
            .iter()
            .flat_map(|&s| long.counts.side(s).iter())
            .filter(|(k, _)| pred(k))
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let fell = |a: u64, b: u64| (per(a, b) <= -NO_CALLS_BELOW + f64::EPSILON).then(|| a - b);
    let mut shrank: Vec<(String, u64)> = per_message
        .iter()
        .filter_map(|r| {
            Some((
                r.key.clone(),
                fell(short.counts.of(&r.key), long.counts.of(&r.key))?,
            ))
        })
        .collect();
    shrank.extend(
        fell(short.counts.total(), long.counts.total()).map(|n| ("all calls".to_string(), n)),
    );
    let futex_waits_per_message = sum_where(is_futex_wait);
    let futex_wakes_per_message = sum_where(is_futex_wake);
    let waits = long_where(&|k| is_futex_wait(k));
    let waits_timed_out = long_where(&|k| is_futex_wait(k) && k.ends_with("ETIMEDOUT"));
    let wakes = long_where(&|k| is_futex_wake(k));
    Some(CellCalls {
        transport: cell.transport,
        placement: cell.placement,
        size: cell.size,
        round_trips: [short.round_trips, long.round_trips],
        extra_messages,
        slept: futex_waits_per_message.abs() >= NO_CALLS_BELOW
            || futex_wakes_per_message.abs() >= NO_CALLS_BELOW,
        wakes_within_waits: wakes <= waits,
        timeouts: match (waits, waits_timed_out) {
            (0, _) => Timeouts::NoWaits,
            (_, 0) => Timeouts::None,
            (w, t) if t * 2 > w => Timeouts::Most,
            _ => Timeouts::Few,
        },
        futex_waits_per_message,
        futex_wakes_per_message,
        waits,
        waits_changed: long_where(&|k| is_futex_wait(k) && k.ends_with("EAGAIN")),
        waits_timed_out,
        wakes,
        wakes_woke_none: long_where(&|k| is_futex_wake(k) && k.ends_with("= 0")),
        none_per_message: shrank.is_empty() && total_per_message.abs() < NO_CALLS_BELOW,
        measured: shrank.is_empty(),
        shrank,
        total_per_message,
        per_message,
    })
}

/// A cell's value; `size` `None` means the placement's floor (whatever its size).
fn value(
    report: &BenchReport,
    transport: Transport,
    placement: Placement,
    size: Option<u64>,
    metric: Metric,
) -> Option<CellValue> {
    let row = match size {
        Some(s) => report.row(transport, placement, s),
        None => report.floor(placement),
    }?;
    let value = match metric {
        Metric::RttMedianNs => row.rtt_ns.median,
        Metric::BytesPerS => row.bytes_per_s,
    };
    (value.is_finite() && value > 0.0).then_some(CellValue {
        transport,
        placement,
        size: row.size,
        metric,
        value,
    })
}

fn ratio(numerator: Option<CellValue>, denominator: Option<CellValue>) -> Option<Ratio> {
    let (n, d) = (numerator?, denominator?);
    Some(Ratio {
        numerator: n,
        denominator: d,
        ratio: n.value / d.value,
    })
}

fn rtt(report: &BenchReport, t: Transport, p: Placement) -> Option<CellValue> {
    let size = (t != Transport::Cacheline).then_some(COMPARE_SIZE);
    value(report, t, p, size, Metric::RttMedianNs)
}

/// Pipe and socket round trips over the ring's: how many times faster the ring is.
fn faster(report: &BenchReport, p: Placement) -> Vec<Ratio> {
    let mut out = Vec::new();
    for ring in [Transport::RingSpin, Transport::RingWait] {
        for other in [Transport::Pipe, Transport::UnixSocket] {
            out.extend(ratio(rtt(report, other, p), rtt(report, ring, p)));
        }
    }
    out
}

fn floor(report: &BenchReport) -> Option<Floor> {
    let p = Placement::TwoCpus;
    let floor = rtt(report, Transport::Cacheline, p)?;
    let spin_cell = rtt(report, Transport::RingSpin, p);
    let run = report.median_floor_run();
    let spin = match run {
        Some(r) => ratio(
            spin_cell.map(|c| CellValue {
                value: r.ring_spin_ns,
                ..c
            }),
            Some(CellValue {
                value: r.floor_ns,
                ..floor
            }),
        ),
        None => ratio(spin_cell, Some(floor)),
    };
    Some(Floor {
        spin_overhead_ns: spin.map(|r| r.numerator.value - r.denominator.value),
        spin,
        wait: ratio(rtt(report, Transport::RingWait, p), Some(floor)),
        spin_from_runs: run.map(|_| report.floor_runs.len()),
    })
}

fn one_cpu(report: &BenchReport) -> Option<OneCpu> {
    let one = Placement::OneCpu;
    if !report.rows.iter().any(|r| r.placement == one) {
        return None;
    }
    let spin_over_wait = ratio(
        rtt(report, Transport::RingSpin, one),
        rtt(report, Transport::RingWait, one),
    );
    let slowdown: Vec<Ratio> = Transport::ALL
        .into_iter()
        .filter_map(|t| ratio(rtt(report, t, one), rtt(report, t, Placement::TwoCpus)))
        .collect();
    let (faster, slower): (Vec<&Ratio>, Vec<&Ratio>) = slowdown.iter().partition(|r| r.ratio < 1.0);
    let transports = |rs: Vec<&Ratio>| rs.iter().map(|r| r.numerator.transport).collect();
    Some(OneCpu {
        spin_worse_than_wait: spin_over_wait.map(|r| r.ratio > 1.0),
        spin_over_wait,
        wait_over_pipe: ratio(
            rtt(report, Transport::RingWait, one),
            rtt(report, Transport::Pipe, one),
        ),
        faster_on_one: transports(faster),
        slower_on_one: transports(slower),
        slowdown,
    })
}

/// The ring's one-way bytes/s over the pipe's at the largest size both measured.
fn throughput(report: &BenchReport, p: Placement) -> Vec<Ratio> {
    let largest = report
        .rows
        .iter()
        .filter(|r| r.placement == p && r.transport == Transport::Pipe)
        .map(|r| r.size)
        .max();
    let Some(size) = largest else {
        return Vec::new();
    };
    let bps = |t| value(report, t, p, Some(size), Metric::BytesPerS);
    [
        Transport::RingSpin,
        Transport::RingWait,
        Transport::UnixSocket,
    ]
    .into_iter()
    .filter_map(|t| ratio(bps(t), bps(Transport::Pipe)))
    .collect()
}

fn integrity(s: &super::stream::Stream) -> Integrity {
    use channel::report::RecvLine;
    Integrity {
        lines: s.lines_written,
        sent: s.send.messages,
        received: s.received,
        matched: s.matched,
        lost: s.lines_written.saturating_sub(s.matched),
        all_intact_in_order: s.matched == s.lines_written
            && s.received == s.lines_written
            && s.first_mismatch.is_none(),
        first_mismatch: s.first_mismatch.clone(),
        end_reason: match &s.end {
            Some(RecvLine::End { reason, .. }) => Some(reason.clone()),
            _ => None,
        },
        capacity: s.capacity,
        laps: if s.capacity > 0 {
            s.received_bytes as f64 / s.capacity as f64
        } else {
            0.0
        },
        seconds: s.seconds,
    }
}
