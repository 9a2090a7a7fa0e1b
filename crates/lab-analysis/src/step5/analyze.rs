//! Step 5's decisions, from the evidence alone: every number the answers quote comes from here.

use serde::Serialize;

use super::disasm;
use super::{
    CalibrationRun, Counters, End, Evidence, Listing, Mode, Observation, RaceRecord, Sizing, Traced,
};

/// What step 5's evidence establishes.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    /// One row per race, in the order run (the `--json` contract).
    pub races: Vec<RaceFinding>,
    pub sizing: SizingFinding,
    /// The CPUs the racers were allowed on (the union of their affinity masks).
    pub mask: Vec<u32>,
    pub lost: LostFinding,
    /// How the final participant's runtime varies with participants, one per mode.
    pub runtime: Vec<RuntimeTrend>,
    /// Atomic against racy, at each participant count both ran.
    pub atomic_vs_racy: Vec<ModePair>,
    /// Races with more racers than CPUs in their affinity mask: (participants, mode).
    pub more_racers_than_cpus: Vec<(usize, Mode)>,
    /// Races (of any size) in which the racers had at least [`SHORT_GAP`] CPU less than they
    /// could have used. The one definition: the busy-machine header counts those that other
    /// processes or steal explain ([`Shortage::busy`]), and the same races are marked `*`.
    pub shortages: Vec<Shortage>,
    pub observer: ObserverFinding,
    pub protocol: Option<ProtocolFinding>,
    /// Our `race_atomic` and `race_racy` loops (`None`: no disassembly).
    pub atomic_loop: Option<LoopFinding>,
    pub racy_loop: Option<LoopFinding>,
    /// Someone else's racer: its lock-prefixed instructions (`None`: ours ran, or no objdump).
    pub their_locked: Option<Vec<String>>,
    /// Someone else's racer judged as the TA's check judges it (`None`: ours ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub racer: Option<super::judge::RacerJudgment>,
    pub cache_line: Option<CacheLineFinding>,
}

/// One race.
#[derive(Debug, Clone, Serialize)]
pub struct RaceFinding {
    pub participants: usize,
    pub mode: Mode,
    pub target: Option<i64>,
    /// `total` at the end (from the lab's mapping, or our racer's summary if the lab missed it).
    pub total: Option<i64>,
    pub sum_of_winnings: Option<i64>,
    /// `sum_of_winnings - total`: increments of total another racer overwrote.
    pub lost_updates: Option<i64>,
    /// `lost_updates / sum_of_winnings`: the share of the increments made that were lost.
    pub lost_share: Option<f64>,
    /// `winnings[0..participants]`.
    pub winnings: Vec<i64>,
    /// The last instance started, from its start to its end (what `time` says of it).
    pub final_participant_seconds: Option<f64>,
    /// That runtime per increment of total, in ns (= its seconds for a race to 1,000,000,000).
    pub ns_per_increment: Option<f64>,
    /// Every instance's runtime, in the order started.
    pub instance_seconds: Vec<f64>,
    pub cpu: Option<CpuUse>,
    pub outcome: Outcome,
    /// Our racer's own summary agreed with what the lab's mapping read (`None`: no summary).
    pub summary_agrees: Option<bool>,
    /// The first instance removed racecourse.bin.
    pub file_removed: bool,
}

/// CPUs (CPU-seconds per second of the race), from `/proc/stat` and `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    /// The CPUs in the racers' affinity mask.
    pub allowed: usize,
    /// The racers' own CPU time (user + system) over the race's wall time.
    pub racers: f64,
    /// Busy time of the allowed CPUs not spent by the racers or the lab: other processes.
    pub others: f64,
    /// The lab itself (it polls while it watches).
    pub lab: f64,
    /// Time the hypervisor gave to something else while these CPUs wanted to run.
    pub steal: f64,
}

/// How a race ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Finished,
    /// Instances the lab killed because nothing moved.
    Hung {
        pids: Vec<u32>,
        stalled_seconds: f64,
    },
    /// Instances that exited with an error or a signal: the race went on without them, so
    /// its counters are not a race of `participants` (no loss or share is taken from it).
    Failed {
        failures: Vec<Failure>,
    },
    /// Every instance exited 0, but the lab never saw the race file's counters (a race of 2 or
    /// more: as the check's "no race"): nothing was raced.
    NoRace {
        reason: String,
    },
}

impl Outcome {
    /// A race whose counters are a race of its participants: every instance ran to its end.
    pub fn raced(&self) -> bool {
        *self == Outcome::Finished
    }
}

/// An instance that exited with an error or was killed by a signal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub pid: u32,
    /// Which instance: 1 for the first started.
    pub started: usize,
    /// Its id by the count-down (`id = participants` at arrival, the lab starting each instance
    /// once the one before had arrived): participants + 1 - started.
    pub id: usize,
    /// "was killed by signal 6 (SIGABRT)", "exited with status 1".
    pub how: String,
    /// The last line it wrote on stderr.
    pub said: String,
}

/// "signal 6 (SIGABRT)": the common signals by name, as Linux numbers them on x86-64.
pub fn signal_text(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return format!("signal {signal}"),
    };
    format!("signal {signal} ({name})")
}

#[derive(Debug, Clone, Serialize)]
pub struct SizingFinding {
    /// `calibrated`, `given` (--target) or `in the racer`.
    pub how: &'static str,
    pub goal_seconds: Option<f64>,
    pub calibration: Vec<CalibrationRun>,
    pub racy_target: Option<i64>,
    pub atomic_target: Option<i64>,
    /// The shortest finished race: (participants, mode, final participant's seconds).
    pub shortest: Option<(usize, Mode, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LostFinding {
    /// Mode of the races that can lose updates (racy, or someone else's racer).
    pub lossy_mode: Mode,
    /// A single racer's sum of winnings equalled total.
    pub alone_exact: Option<bool>,
    /// Races of 2 or more in `lossy_mode`, and how many of them lost updates.
    pub multi: usize,
    pub multi_lossy: usize,
    /// The smallest and largest lost share among those that lost.
    pub share_range: Option<(f64, f64)>,
    /// Atomic races, and those of them that lost updates (participants).
    pub atomic_races: usize,
    pub atomic_lossy: Vec<usize>,
    /// Races that did not end at their target: (participants, mode, total).
    pub off_target: Vec<(usize, Mode, i64)>,
    /// Mean lost share of races in which every racer had a CPU, and of those that took turns.
    pub mean_share_own_cpu: Option<f64>,
    pub mean_share_taking_turns: Option<f64>,
    /// Races with racers that won nothing: (participants, how many won nothing).
    pub idle_racers: Vec<(usize, usize)>,
}

/// The final participant's runtime against participants, for one mode.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeTrend {
    pub mode: Mode,
    pub target: Option<i64>,
    pub points: Vec<RuntimePoint>,
    /// seconds(2) / seconds(1); `None` too when the race of 1 was short of CPU
    /// ([`RuntimeTrend::starved_baseline`]).
    pub two_over_one: Option<f64>,
    /// The CPU the race of 1 had, when it was short of CPU: it is then no baseline, and
    /// nothing is compared with it.
    pub starved_baseline: Option<f64>,
    /// The races with more participants than allowed CPUs: fewest and most seconds.
    pub beyond_cpus: Option<(f64, f64)>,
    /// ns per increment *made* (lost ones included) at 1 and at 2 participants (`None` with a
    /// starved baseline).
    pub ns_per_made: Option<(f64, f64)>,
}

/// One race's final participant.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimePoint {
    pub participants: usize,
    pub seconds: f64,
    /// Per increment of total, ns.
    pub ns_per_increment: f64,
    /// Increments made (sum of winnings) per increment of total: 1 when nothing was lost.
    pub made_per_total: f64,
    /// Its racers had at least [`SHORT_GAP`] CPU less than they could have used, and what
    /// covers the gap (`None`: they had what they could use, or it was not measured).
    pub short_of_cpu: Option<Cause>,
}

/// Atomic against racy at one participant count, per increment of total.
#[derive(Debug, Clone, Serialize)]
pub struct ModePair {
    pub participants: usize,
    pub racy_ns: f64,
    pub atomic_ns: f64,
}

/// A race whose racers had at least [`SHORT_GAP`] CPU less than min(participants, allowed CPUs), and what
/// else used it.
#[derive(Debug, Clone, Serialize)]
pub struct Shortage {
    pub participants: usize,
    pub mode: Mode,
    pub could_use: usize,
    pub cpu: CpuUse,
    /// Which measurement accounts for most of the gap.
    pub cause: Cause,
}

impl Shortage {
    /// Other processes or the hypervisor took the CPU: a busy machine (marked `*`).
    pub fn busy(&self) -> bool {
        self.cause.busy()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Other processes' busy time on the racers' CPUs covers at least half the gap.
    OtherProcesses,
    /// The hypervisor's steal time covers at least half of it.
    Steal,
    /// Neither: the CPUs were idle part of the time (the racers waited, or the counts are
    /// too coarse for a short race).
    Unexplained,
}

impl Cause {
    /// Other processes or the hypervisor: a busy machine.
    pub fn busy(self) -> bool {
        self != Cause::Unexplained
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ObserverFinding {
    pub races: usize,
    pub mapped: usize,
    /// Races whose final counters the lab read after racecourse.bin's name was gone.
    pub read_after_unlink: usize,
    /// One `/proc/self/maps` line of the lab's mapping after the unlink (`(deleted)`).
    pub deleted_line: Option<String>,
    /// (participants, mode, why) of races the lab could not map.
    pub missed: Vec<(usize, Mode, String)>,
}

/// What the traced 1-participant run did to the race file.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolFinding {
    pub command: String,
    /// A stat of racecourse.bin failed (ENOENT) before the file was created.
    pub looked_first: bool,
    /// The name opened with O_CREAT, and the flags.
    pub created: Option<(String, String)>,
    pub exclusive: bool,
    /// `ftruncate` or `lseek+write`, and the size.
    pub sized_by: Option<(String, u64)>,
    /// The mmap of the file: length and flags.
    pub mapped: Option<(u64, String)>,
    pub flock: bool,
    /// Published under its name with link(2) after being prepared under another.
    pub linked: bool,
    pub unlinked: bool,
}

/// One race loop, from the disassembly.
#[derive(Debug, Clone, Serialize)]
pub struct LoopFinding {
    pub symbol: String,
    pub start: u64,
    pub end: u64,
    pub instructions: Vec<String>,
    /// Lock-prefixed instructions in the loop.
    pub locked: Vec<String>,
    /// Instructions in the loop that read or write `total` (the first argument, `(%rdi)`).
    pub total_accesses: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheLineFinding {
    pub bytes: usize,
    /// The ids whose `winnings[id-1]` lies on total's line.
    pub ids_with_total: Vec<usize>,
}

pub fn analyze(ev: &Evidence) -> anyhow::Result<Findings> {
    let hz = ev.machine.clock_ticks_per_second.max(1) as f64;
    let races: Vec<RaceFinding> = ev.races.iter().map(|r| race(r, hz)).collect();
    let mut mask: Vec<u32> = ev
        .races
        .iter()
        .flat_map(|r| r.run.instances.iter())
        .filter_map(|i| i.affinity.clone())
        .flatten()
        .collect();
    if mask.is_empty() {
        mask = ev.machine.affinity.clone();
    }
    mask.sort_unstable();
    mask.dedup();
    let allowed = mask.len();
    Ok(Findings {
        sizing: sizing(&ev.sizing, &races),
        lost: lost(&races),
        runtime: [Mode::Racy, Mode::Atomic, Mode::Racer]
            .into_iter()
            .filter_map(|m| runtime(&races, m, allowed))
            .collect(),
        atomic_vs_racy: atomic_vs_racy(&races),
        more_racers_than_cpus: races
            .iter()
            .filter(|r| r.participants > allowed)
            .map(|r| (r.participants, r.mode))
            .collect(),
        shortages: races.iter().filter_map(short_of_cpu).collect(),
        observer: observer(ev),
        protocol: protocol(&ev.protocol),
        atomic_loop: loop_finding(&ev.disassembly.atomic),
        racy_loop: loop_finding(&ev.disassembly.racy),
        their_locked: match &ev.disassembly.theirs {
            Some(Listing::Text { text, .. }) => Some(
                text.lines()
                    .filter(|l| !l.ends_with(">:"))
                    .map(|l| l.trim().to_string())
                    .collect(),
            ),
            _ => None,
        },
        racer: match &ev.racer {
            super::Racer::Theirs { program, .. } => Some(super::judge::judge_their_racer(
                &program.display().to_string(),
                &ev.races,
                ev.disassembly.their_locked.as_deref(),
            )),
            super::Racer::Ours { .. } => None,
        },
        cache_line: ev.machine.cache_line.map(cache_line),
        mask,
        races,
    })
}

/// The counters a race ended with: the lab's mapping, else our racer's summary.
fn final_counters(r: &RaceRecord) -> Option<Counters> {
    if let Observation::Mapped { last, .. } = &r.run.observer {
        return Some(last.clone());
    }
    let s = r
        .run
        .instances
        .iter()
        .find_map(|i| i.report.as_ref()?.summary.clone())?;
    Some(Counters {
        participants: 0,
        total: s.total,
        winnings: s.winnings,
    })
}

fn race(r: &RaceRecord, hz: f64) -> RaceFinding {
    let n = r.participants;
    let counters = final_counters(r);
    let winnings: Vec<i64> = counters
        .as_ref()
        .map(|c| c.winnings.iter().take(n).copied().collect())
        .unwrap_or_default();
    let total = counters.as_ref().map(|c| c.total);
    let sum = counters.as_ref().map(|_| winnings.iter().sum::<i64>());
    let lost = total.zip(sum).map(|(t, s)| s - t);
    let outcome = outcome(r);
    let last = r
        .run
        .instances
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.started.total_cmp(&b.1.started).then(a.0.cmp(&b.0)))
        .map(|(_, i)| i);
    let final_seconds = last
        .filter(|_| outcome == Outcome::Finished)
        .map(|i| i.ended - i.started);
    let summary = r
        .run
        .instances
        .iter()
        .find_map(|i| i.report.as_ref()?.summary.as_ref());
    RaceFinding {
        participants: n,
        mode: r.mode,
        target: r.target,
        total,
        sum_of_winnings: sum,
        lost_updates: lost,
        lost_share: lost
            .zip(sum)
            .filter(|(_, s)| *s > 0)
            .map(|(l, s)| l as f64 / s as f64),
        final_participant_seconds: final_seconds,
        // A participant that made no increment did not race: the final participant's runtime
        // then says nothing per increment (it may have exited the moment the race began).
        ns_per_increment: final_seconds
            .zip(total)
            .filter(|(_, t)| *t > 0)
            .filter(|_| winnings.iter().all(|w| *w > 0))
            .map(|(s, t)| s * 1e9 / t as f64),
        instance_seconds: r
            .run
            .instances
            .iter()
            .map(|i| i.ended - i.started)
            .collect(),
        cpu: cpu_use(r, hz),
        summary_agrees: summary
            .map(|s| Some(s.total) == total && s.winnings.iter().take(n).eq(winnings.iter())),
        file_removed: !r.run.file_left,
        outcome,
        winnings,
    }
}

fn outcome(r: &RaceRecord) -> Outcome {
    let hung: Vec<&super::Instance> = r
        .run
        .instances
        .iter()
        .filter(|i| matches!(i.end, End::Hung { .. }))
        .collect();
    if let Some(first) = hung.first() {
        let End::Hung { stalled_seconds } = first.end else {
            unreachable!("filtered on Hung")
        };
        return Outcome::Hung {
            pids: hung.iter().map(|i| i.pid).collect(),
            stalled_seconds,
        };
    }
    let failures: Vec<Failure> = r
        .run
        .instances
        .iter()
        .enumerate()
        .filter(|(_, i)| i.end != End::Exited { code: 0 })
        .map(|(k, i)| Failure {
            pid: i.pid,
            started: k + 1,
            id: (r.participants + 1).saturating_sub(k + 1),
            how: match i.end {
                End::Exited { code } => format!("exited with status {code}"),
                End::Signalled { signal } => format!("was killed by {}", signal_text(signal)),
                End::Hung { .. } => "hung".to_string(),
            },
            said: i.stderr.lines().last().unwrap_or("").trim().to_string(),
        })
        .collect();
    match &r.run.observer {
        _ if !failures.is_empty() => Outcome::Failed { failures },
        Observation::Missed { reason } if r.participants > 1 => Outcome::NoRace {
            reason: reason.clone(),
        },
        _ => Outcome::Finished,
    }
}

/// Racers that had this much CPU less than min(participants, allowed CPUs) were short of CPU.
pub const SHORT_GAP: f64 = 0.3;

/// A race shorter than this many clock ticks is too short to say how many CPUs it had (each
/// process's time is counted in whole ticks).
pub const MIN_TICKS: f64 = 10.0;

/// CPU use over the race, from the `/proc/stat` lines of the allowed CPUs and the racers' times
/// (`None` for a race shorter than [`MIN_TICKS`]).
fn cpu_use(r: &RaceRecord, hz: f64) -> Option<CpuUse> {
    let w = &r.run.cpu;
    if w.seconds * hz < MIN_TICKS || w.before.is_empty() {
        return None;
    }
    let (mut busy, mut steal) = (0u64, 0u64);
    for after in &w.after {
        let before = w.before.iter().find(|b| b.cpu == after.cpu)?;
        let d = after.since(before);
        busy += d.busy();
        steal += d.steal;
    }
    let racers: u64 = r
        .run
        .instances
        .iter()
        .filter_map(|i| i.stat.as_ref())
        .map(|s| s.cpu_ticks())
        .sum();
    let per_s = |ticks: u64| ticks as f64 / hz / w.seconds;
    Some(CpuUse {
        allowed: w.after.len(),
        racers: per_s(racers),
        others: per_s(busy.saturating_sub(racers + w.lab_ticks)),
        lab: per_s(w.lab_ticks),
        steal: per_s(steal),
    })
}

fn sizing(s: &Sizing, races: &[RaceFinding]) -> SizingFinding {
    let shortest = races
        .iter()
        .filter_map(|r| Some((r.participants, r.mode, r.final_participant_seconds?)))
        .min_by(|a, b| a.2.total_cmp(&b.2));
    let target_of = |m: Mode| races.iter().find(|r| r.mode == m).and_then(|r| r.target);
    let (how, goal, calibration) = match s {
        Sizing::Calibrated {
            goal_seconds, runs, ..
        } => ("calibrated", Some(*goal_seconds), runs.clone()),
        Sizing::Given { .. } => ("given", None, Vec::new()),
        Sizing::InTheRacer => ("in the racer", None, Vec::new()),
    };
    SizingFinding {
        how,
        goal_seconds: goal,
        calibration,
        racy_target: target_of(Mode::Racy),
        atomic_target: target_of(Mode::Atomic),
        shortest,
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn lost(races: &[RaceFinding]) -> LostFinding {
    let lossy_mode = if races.iter().any(|r| r.mode == Mode::Racer) {
        Mode::Racer
    } else {
        Mode::Racy
    };
    // A race a participant died in (or that never began) is not a race of its participants:
    // its counters give no loss and no share.
    let lossy: Vec<&RaceFinding> = races
        .iter()
        .filter(|r| r.mode == lossy_mode && r.outcome.raced())
        .collect();
    let multi: Vec<&&RaceFinding> = lossy
        .iter()
        .filter(|r| r.participants > 1 && r.lost_updates.is_some())
        .collect();
    let shares: Vec<f64> = multi
        .iter()
        .filter(|r| r.lost_updates > Some(0))
        .filter_map(|r| r.lost_share)
        .collect();
    let own_cpu = |r: &RaceFinding| {
        r.cpu
            .is_some_and(|c| r.participants as f64 <= c.racers + 0.5)
    };
    let share_where = |own: bool| -> Vec<f64> {
        multi
            .iter()
            .filter(|r| r.cpu.is_some() && own_cpu(r) == own)
            .filter_map(|r| r.lost_share)
            .collect()
    };
    let atomic: Vec<&RaceFinding> = races
        .iter()
        .filter(|r| r.mode == Mode::Atomic && r.outcome.raced())
        .collect();
    LostFinding {
        lossy_mode,
        alone_exact: lossy
            .iter()
            .find(|r| r.participants == 1)
            .and_then(|r| r.lost_updates)
            .map(|l| l == 0),
        multi: multi.len(),
        multi_lossy: shares.len(),
        share_range: (!shares.is_empty()).then(|| {
            (
                shares.iter().copied().fold(f64::INFINITY, f64::min),
                shares.iter().copied().fold(0.0, f64::max),
            )
        }),
        atomic_races: atomic.len(),
        atomic_lossy: atomic
            .iter()
            .filter(|r| r.lost_updates.is_some_and(|l| l != 0))
            .map(|r| r.participants)
            .collect(),
        off_target: races
            .iter()
            .filter_map(|r| {
                let (t, total) = (r.target?, r.total?);
                (t != total).then_some((r.participants, r.mode, total))
            })
            .collect(),
        mean_share_own_cpu: mean(&share_where(true)),
        mean_share_taking_turns: mean(&share_where(false)),
        idle_racers: lossy
            .iter()
            .filter_map(|r| {
                let idle = r.winnings.iter().filter(|&&w| w == 0).count();
                (idle > 0 && r.total.is_some()).then_some((r.participants, idle))
            })
            .collect(),
    }
}

fn runtime(races: &[RaceFinding], mode: Mode, allowed: usize) -> Option<RuntimeTrend> {
    let of_mode: Vec<&RaceFinding> = races.iter().filter(|r| r.mode == mode).collect();
    let points: Vec<RuntimePoint> = of_mode
        .iter()
        .filter_map(|r| {
            Some(RuntimePoint {
                participants: r.participants,
                seconds: r.final_participant_seconds?,
                ns_per_increment: r.ns_per_increment?,
                made_per_total: r.sum_of_winnings? as f64 / r.total?.max(1) as f64,
                short_of_cpu: short_of_cpu(r).map(|s| s.cause),
            })
        })
        .collect();
    if points.is_empty() {
        return None;
    }
    let starved_baseline = of_mode
        .iter()
        .find(|r| r.participants == 1)
        .and_then(|r| Some(short_of_cpu(r)?.cpu.racers));
    let at = |n: usize| points.iter().find(|p| p.participants == n);
    let baseline = || at(1).filter(|_| starved_baseline.is_none());
    let beyond: Vec<f64> = points
        .iter()
        .filter(|p| p.participants > allowed)
        .map(|p| p.seconds)
        .collect();
    Some(RuntimeTrend {
        mode,
        target: of_mode.first().and_then(|r| r.target),
        two_over_one: baseline().zip(at(2)).map(|(a, b)| b.seconds / a.seconds),
        starved_baseline,
        beyond_cpus: (!beyond.is_empty()).then(|| {
            (
                beyond.iter().copied().fold(f64::INFINITY, f64::min),
                beyond.iter().copied().fold(0.0, f64::max),
            )
        }),
        ns_per_made: baseline().zip(at(2)).map(|(a, b)| {
            (
                a.ns_per_increment / a.made_per_total,
                b.ns_per_increment / b.made_per_total,
            )
        }),
        points,
    })
}

fn atomic_vs_racy(races: &[RaceFinding]) -> Vec<ModePair> {
    races
        .iter()
        .filter(|r| r.mode == Mode::Racy)
        .filter_map(|racy| {
            let atomic = races
                .iter()
                .find(|a| a.mode == Mode::Atomic && a.participants == racy.participants)?;
            Some(ModePair {
                participants: racy.participants,
                racy_ns: racy.ns_per_increment?,
                atomic_ns: atomic.ns_per_increment?,
            })
        })
        .collect()
}

/// A race (of any size) whose racers had at least [`SHORT_GAP`] CPU less than they could have used, and
/// which measurement covers the gap.
fn short_of_cpu(r: &RaceFinding) -> Option<Shortage> {
    let cpu = r.cpu?;
    let could_use = r.participants.min(cpu.allowed);
    let gap = could_use as f64 - cpu.racers;
    if gap < SHORT_GAP {
        return None;
    }
    let cause = if cpu.others + cpu.lab >= gap / 2.0 {
        Cause::OtherProcesses
    } else if cpu.steal >= gap / 2.0 {
        Cause::Steal
    } else {
        Cause::Unexplained
    };
    Some(Shortage {
        participants: r.participants,
        mode: r.mode,
        could_use,
        cpu,
        cause,
    })
}

fn observer(ev: &Evidence) -> ObserverFinding {
    let mut f = ObserverFinding {
        races: ev.races.len(),
        mapped: 0,
        read_after_unlink: 0,
        deleted_line: None,
        missed: Vec::new(),
    };
    for r in &ev.races {
        match &r.run.observer {
            Observation::Mapped {
                name_gone,
                maps_line,
                ..
            } => {
                f.mapped += 1;
                if *name_gone {
                    f.read_after_unlink += 1;
                    if f.deleted_line.is_none() {
                        f.deleted_line = maps_line.clone();
                    }
                }
            }
            Observation::Missed { reason } => {
                f.missed.push((r.participants, r.mode, reason.clone()));
            }
        }
    }
    f
}

fn protocol(t: &Traced) -> Option<ProtocolFinding> {
    let Traced::Traced { command, calls } = t else {
        return None;
    };
    let is_stat =
        |n: &str| n.contains("stat") || n.starts_with("access") || n.starts_with("faccess");
    let create = calls.iter().find(|c| {
        c.name.starts_with("open") && c.ok() && c.args.iter().any(|a| a.contains("O_CREAT"))
    });
    let created_at = create.map_or(calls.len(), |c| {
        calls.iter().position(|x| std::ptr::eq(x, c)).unwrap_or(0)
    });
    let flags = create
        .and_then(|c| c.args.iter().find(|a| a.contains("O_CREAT")))
        .cloned();
    let ftruncate = calls.iter().find(|c| c.name == "ftruncate" && c.ok());
    let lseek = calls.iter().find(|c| c.name == "lseek" && c.ok());
    let sized_by = match (ftruncate, lseek) {
        (Some(c), _) => c.arg_u64(1).map(|n| ("ftruncate".to_string(), n)),
        (None, Some(c)) => c.ret_u64().map(|at| ("lseek+write".to_string(), at + 1)),
        _ => None,
    };
    let mmap = calls.iter().find(|c| c.name == "mmap" && c.ok());
    Some(ProtocolFinding {
        command: command.clone(),
        looked_first: calls[..created_at]
            .iter()
            .any(|c| is_stat(&c.name) && c.errno.as_deref() == Some("ENOENT")),
        created: create.zip(flags.clone()).map(|(c, f)| {
            let idx = usize::from(c.name == "openat");
            (c.arg_str(idx).unwrap_or("?").to_string(), f)
        }),
        exclusive: flags.is_some_and(|f| f.contains("O_EXCL")),
        sized_by,
        mapped: mmap.and_then(|c| Some((c.arg_u64(1)?, c.args.get(3)?.trim().to_string()))),
        flock: calls.iter().any(|c| c.name == "flock" && c.ok()),
        linked: calls.iter().any(|c| c.name.starts_with("link") && c.ok()),
        unlinked: calls.iter().any(|c| {
            c.name.starts_with("unlink")
                && c.ok()
                && c.args
                    .iter()
                    .any(|a| a.trim() == format!("\"{}\"", super::COURSE_FILE))
        }),
    })
}

fn loop_finding(listing: &Listing) -> Option<LoopFinding> {
    let Listing::Text { text, .. } = listing else {
        return None;
    };
    let insns = disasm::parse(text);
    let body = disasm::loop_body(&insns)?;
    let texts = |f: &dyn Fn(&disasm::Insn) -> bool| -> Vec<String> {
        body.iter()
            .filter(|i| f(i))
            .map(|i| i.text.clone())
            .collect()
    };
    Some(LoopFinding {
        symbol: disasm::symbol(text).unwrap_or("?").to_string(),
        start: body.first()?.address,
        end: body.last()?.address,
        instructions: texts(&|_| true),
        locked: texts(&|i| i.is_locked()),
        total_accesses: texts(&|i| i.touches_first_argument()),
    })
}

/// `total` is at offset 8, `winnings[id-1]` at 16 + 8 (id-1): which share total's line.
fn cache_line(bytes: usize) -> CacheLineFinding {
    let line = |offset: usize| offset / bytes.max(1);
    CacheLineFinding {
        bytes,
        ids_with_total: (1..=10)
            .filter(|id| line(16 + 8 * (id - 1)) == line(8))
            .collect(),
    }
}

/// Used by the explanation: the races of a mode.
pub fn of_mode(races: &[RaceFinding], mode: Mode) -> impl Iterator<Item = &RaceFinding> {
    races.iter().filter(move |r| r.mode == mode)
}
