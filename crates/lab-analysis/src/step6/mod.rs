//! Step 6 (beyond the assignment): shared memory done right — `crates/channel`, a
//! single-producer single-consumer ring in a `MAP_SHARED` file mapping, against a pipe, a Unix
//! socket and the floor of one word on one cache line.
//!
//! - xtask's `step6::measure` builds `channel`, runs single benchmark cells under
//!   `strace -f` ([`calls`]: every call counted per process; each cell twice, with two numbers
//!   of round trips, so that set-up and tear-down cancel out), runs `channel bench --json`
//!   (`--quick`: fewer sizes and shorter cells), and streams numbered lines of random length
//!   through a small ring with `channel send` and `channel recv --json` ([`stream`]), checking
//!   every message against what was sent.
//! - [`analyze`](analyze::analyze) decides from that alone: system calls per message per
//!   transport (and which), futex waits and wakes, how many times faster than a pipe and a
//!   socket, how far from the cache-line floor, what one CPU changes, the goals
//!   (`channel::bench::goals`, the crate's own pure function), and what the stream lost.
//! - [`explain`](explain::explain) formats it: the counts, the table, the answers, the goals
//!   met or not. xtask draws two pictures (latency and throughput against message size, log
//!   scales) from the benchmark.
//!
//! A production system would not measure this per run: it would keep the benchmark in CI on
//! a quiet, pinned machine (the numbers here share two CPUs with whatever else runs) and
//! alert on regressions, and count system calls with `perf trace -s` or eBPF, which do not
//! slow the traced program the way ptrace does.

pub mod analyze;
pub mod calls;
pub mod explain;
pub mod picture;
pub mod stream;

use std::path::PathBuf;

use channel::bench::{BenchReport, Placement, Transport};
use lab_trace::procstat::CpuTimes;
use serde::{Deserialize, Serialize};

use crate::{Block, Step};

pub use analyze::Findings;

/// Step 6 in the measure → analyze → explain shape.
pub struct Step6;

impl Step for Step6 {
    const NUMBER: u8 = 6;
    const TITLE: &'static str =
        "Shared memory done right: a channel between two processes, against pipes and sockets";
    type Evidence = Evidence;
    type Findings = Findings;
    type Pictures = picture::Data;

    fn analyze(evidence: &Evidence) -> anyhow::Result<Findings> {
        analyze::analyze(evidence)
    }

    fn explain(findings: &Findings, evidence: &Evidence) -> Vec<Block> {
        explain::explain(findings, evidence)
    }

    fn pictures(_: &Findings, evidence: &Evidence) -> picture::Data {
        picture::Data::from_report(&evidence.bench)
    }
}

/// Everything step 6 read from the machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    /// The short version (`--quick`) ran.
    pub quick: bool,
    /// The `channel` binary.
    pub program: PathBuf,
    /// Benchmark cells run under strace, or why there are none.
    pub traces: Traces,
    /// `channel bench --json` (`--quick` with `--quick`).
    pub bench: BenchReport,
    /// Numbered lines streamed through a small ring and checked.
    pub stream: stream::Stream,
    /// What else the machine ran while `channel bench` ran (absent in recordings made before
    /// it was kept: then whether the machine was quiet is not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<BenchLoad>,
}

/// The machine around `channel bench`: `/proc/stat` of the CPUs it may use, its own CPU time
/// and the load average, so the step can say a busy machine first, with its figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchLoad {
    /// `USER_HZ`: the unit of the tick counts.
    pub clock_ticks_per_second: u64,
    /// Wall time of `channel bench`.
    pub seconds: f64,
    /// The `cpuN` lines of the CPUs the lab may use (the bench inherits the mask), before and
    /// after.
    pub before: Vec<CpuTimes>,
    pub after: Vec<CpuTimes>,
    /// CPU time of `channel bench` and the peers it started and reaped (the lab's children's
    /// time, `cutime + cstime` of `/proc/self/stat`, after minus before), ticks.
    pub bench_ticks: u64,
    /// The lab's own CPU time in the window (it waits for the bench), ticks.
    pub lab_ticks: u64,
    /// The 1-minute load average (`/proc/loadavg`) before and after.
    pub loadavg_before: f64,
    pub loadavg_after: f64,
}

/// The traced cells.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Traces {
    Traced { cells: Vec<TracedCell> },
    Unavailable { reason: String },
}

/// One benchmark cell (`channel bench --only T --size S --placement P --messages M`) run
/// under strace twice: with few round trips and with many.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracedCell {
    pub transport: Transport,
    pub placement: Placement,
    pub size: u64,
    /// The shorter run first.
    pub runs: Vec<TracedRun>,
}

/// One traced run of a cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracedRun {
    /// The command line, for the reader.
    pub command: String,
    /// Round trips: one message there and one back each.
    pub round_trips: u64,
    /// Every system call counted, per process.
    pub counts: calls::Counts,
    /// A few strace lines from the middle of the long run, of the calls whose count grew by
    /// at least one per four extra round trips since the short run (none for a transport
    /// that makes no call per message; always none for the short run).
    pub sample: Vec<String>,
}

#[cfg(test)]
mod tests;
