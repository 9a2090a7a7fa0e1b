//! Step 5: processes racing on counters in one shared file mapping (`crates/race`, or someone
//! else's racer with `--racer PATH [-- ARGS]`).
//!
//! - xtask's `step5::measure` reads the machine (the affinity mask the racers inherit, the
//!   clock tick, the cache line), sizes the races from short calibration races so that a full
//!   race lasts about a second (`--quick`: 0.2 s; `--target` overrides), traces one 1-participant
//!   race to show the protocol's system calls on `racecourse.bin`, then runs the sweep: for each
//!   participant count and mode, N instances in a scratch directory (xtask's `launch`: the first alone,
//!   then the others one arrival at a time once it has set up the file), the file mapped read-only by the lab as an
//!   observer, every instance timed and its CPU time read from `/proc/PID/stat`, `/proc/stat`
//!   read around the race. A racer that stops making progress is killed after a bound. Last, the
//!   race loops are disassembled (`objdump -d`).
//! - [`analyze`](analyze::analyze) decides from that evidence alone: lost updates, the final
//!   participant's runtime by participants and mode, how many CPUs the racers had and what the
//!   machine's other processes used of the racers' CPUs (only what was measured), which locked
//!   instruction the atomic loop executes, and what the protocol trace shows.
//! - [`explain`](explain::explain) formats the findings: the tables, the assignment's questions
//!   and the course's, the pictures.
//!
//! xtask's `bench` (`cargo xtask bench race`) times the Rust racer against the C racer
//! (`crates/race/c/racer.c`, `cc -O2`).

pub mod analyze;
mod answers;
pub mod disasm;
pub mod explain;
pub mod glance;
pub mod judge;
pub mod picture;

use std::path::PathBuf;

use lab_trace::procstat::{CpuTimes, ProcessStat};
use lab_trace::Syscall;
use serde::{Deserialize, Serialize};

use crate::{Block, Step};

pub use analyze::Findings;

/// Step 5 in the measure → analyze → explain shape.
pub struct Step5;

impl Step for Step5 {
    const NUMBER: u8 = 5;
    const TITLE: &'static str = "Inter-process communication through a shared mapping: the race";
    type Evidence = Evidence;
    type Findings = Findings;
    type Pictures = picture::Data;

    fn analyze(evidence: &Evidence) -> anyhow::Result<Findings> {
        analyze::analyze(evidence)
    }

    fn explain(findings: &Findings, evidence: &Evidence) -> Vec<Block> {
        explain::explain(findings, evidence)
    }

    fn pictures(findings: &Findings, _: &Evidence) -> picture::Data {
        picture::Data::from_findings(findings)
    }

    fn glance(findings: &Findings) -> Vec<crate::Glance> {
        glance::glance(findings)
    }
}

/// The name of the race file every racer of the course uses, in its working directory.
pub const COURSE_FILE: &str = "racecourse.bin";

/// How `total` was incremented in a race.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Our racer, `--mode racy`: a load and a separate store (the C program's `total++`).
    Racy,
    /// Our racer, `--mode atomic`: `fetch_add`, one locked read-modify-write.
    Atomic,
    /// Someone else's racer (`--racer`): whatever its code does.
    Racer,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Racy => "racy",
            Mode::Atomic => "atomic",
            Mode::Racer => "racer",
        }
    }
}

/// Everything step 5 read from the machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    pub machine: Machine,
    /// Whose racer raced.
    pub racer: Racer,
    /// How the races were sized.
    pub sizing: Sizing,
    /// One 1-participant race under strace: the calls on the race file.
    pub protocol: Traced,
    /// The sweep, in the order run.
    pub races: Vec<RaceRecord>,
    /// The race loops as `objdump -d` shows them.
    pub disassembly: Disassembly,
}

/// What the machine offered the racers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// The CPUs the lab may run on (its affinity mask, `Cpus_allowed_list`); racers inherit it.
    pub affinity: Vec<u32>,
    /// The CPUs `/proc/stat` lists (online).
    pub cpus_online: usize,
    /// `USER_HZ`: the unit of `/proc/stat` and `/proc/PID/stat` times.
    pub clock_ticks_per_second: u64,
    /// The L1 data cache line, from sysfs (`None`: the kernel does not say).
    pub cache_line: Option<usize>,
}

/// Our `race` binary, or someone else's racer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Racer {
    Ours { program: PathBuf },
    Theirs { program: PathBuf, args: Vec<String> },
}

/// How the targets were chosen.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sizing {
    /// From short 1-participant races: a race of one should last `goal_seconds`.
    Calibrated {
        goal_seconds: f64,
        runs: Vec<CalibrationRun>,
        racy_target: i64,
        atomic_target: i64,
    },
    /// `--target`.
    Given { target: i64 },
    /// Someone else's racer: its target is in its code.
    InTheRacer,
}

/// One calibration race: a single racer to `target`, its race loop took `seconds`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CalibrationRun {
    pub mode: Mode,
    pub target: i64,
    pub seconds: f64,
}

/// One race: N instances of the racer, watched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaceRecord {
    pub participants: usize,
    pub mode: Mode,
    /// The target we gave (`None`: the racer's own).
    pub target: Option<i64>,
    pub run: RaceRun,
}

/// What xtask's `launch::race` saw of one race.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaceRun {
    /// In the order started (the first alone, the rest once it had set up the file).
    pub instances: Vec<Instance>,
    /// The lab's own read-only mapping of the race file.
    pub observer: Observation,
    /// CPU time around the race.
    pub cpu: CpuWindow,
    /// `racecourse.bin` still existed after every instance had ended (the lab removed it).
    pub file_left: bool,
    /// What the lab's reads of the winnings showed while the race ran (absent in recordings
    /// made before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
}

/// The lab's reads of the race file while a race ran (every few ms): whether the instances made
/// increments at the same time or took turns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlap {
    /// Intervals between two successive reads in which some id's winnings grew.
    pub moving: usize,
    /// Of those, the intervals in which the winnings of two or more ids grew.
    pub together: usize,
}

/// One instance of the racer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    pub pid: u32,
    /// When it was started, seconds after the first instance was.
    pub started: f64,
    /// When it was seen to end (or was killed), seconds after the first instance was started.
    pub ended: f64,
    pub end: End,
    /// Its `/proc/PID/stat` once it had exited and before it was reaped (final CPU times).
    pub stat: Option<ProcessStat>,
    /// The CPUs it was allowed to run on (`Cpus_allowed_list`, read at the same moment).
    pub affinity: Option<Vec<u32>>,
    /// What it printed (at most the last few KiB of each).
    pub stdout: String,
    pub stderr: String,
    /// Our racer's `--json` document (`None` for someone else's racer).
    pub report: Option<race::Report>,
}

/// How an instance ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum End {
    Exited {
        code: i32,
    },
    Signalled {
        signal: i32,
    },
    /// Killed by the lab: nothing in the race file moved for `stalled_seconds` (or the race
    /// passed the overall bound) while it still ran.
    Hung {
        stalled_seconds: f64,
    },
}

/// The counters of `struct RaceCourse` as the observer read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub participants: i32,
    pub total: i64,
    pub winnings: Vec<i64>,
}

/// What the lab's read-only mapping of the race file showed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    Mapped {
        /// When the lab mapped the file, seconds after the first instance was started.
        mapped_at: f64,
        /// When `total` was first seen non-zero.
        race_started_at: Option<f64>,
        /// The counters after every instance had ended.
        last: Counters,
        /// Whether `racecourse.bin` was gone (unlinked) when `last` was read.
        name_gone: bool,
        /// The lab's own `/proc/self/maps` line of the mapping at that moment.
        maps_line: Option<String>,
    },
    /// The lab could not map it (the race ended before the file appeared, or never created).
    Missed { reason: String },
}

/// `/proc/stat` around a race, for the CPUs the racers could use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CpuWindow {
    /// From starting the first instance to the last one's end.
    pub seconds: f64,
    /// The `cpuN` lines of the racers' CPUs before and after.
    pub before: Vec<CpuTimes>,
    pub after: Vec<CpuTimes>,
    /// The lab's own CPU time in the window (it polls while it watches), clock ticks.
    pub lab_ticks: u64,
}

/// A program run under strace (or why not).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Traced {
    Traced {
        /// The command line, for the reader.
        command: String,
        /// The calls that touched the race file (by name, descriptor or mapping), in order.
        calls: Vec<Syscall>,
    },
    Unavailable {
        reason: String,
    },
}

/// `objdump -d` of the race loops.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Disassembly {
    /// Our `race` binary's `race_racy` and `race_atomic` (always: the course's question is about
    /// our atomic mode).
    pub racy: Listing,
    pub atomic: Listing,
    /// Someone else's racer: every lock-prefixed instruction in it, with its function.
    pub theirs: Option<Listing>,
    /// Someone else's racer: its lock-prefixed instructions, each with whether it lies in a loop
    /// and aims at total (absent in recordings made before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub their_locked: Option<Vec<disasm::LockedInsn>>,
}

/// Lines of `objdump -d --no-show-raw-insn` output, or why there are none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Listing {
    Text { binary: PathBuf, text: String },
    Unavailable { reason: String },
}

#[cfg(test)]
mod tests;
