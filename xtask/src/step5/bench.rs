//! `cargo xtask bench race [--quick] [--json]`: the Rust racer against the C racer
//! (`crates/race/c/racer.c`, carried in the lab and built with `cc -O2`), same target, 1 and 2
//! participants in each mode, median of several runs, the two languages alternated run by run;
//! each cell judged against the goal Rust/C <= 1.05x; then where both racers' loops lie in
//! 64-byte lines.
//! `--json` prints one document ([`RaceBench`], DESIGN.md's shape) on stdout, the rest on stderr.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use super::launch::{self, Bounds, Launch};
use super::objdump::{self, LoopPlacement, CODE_LINE};
use crate::model::Ctx;
use crate::{out, say};
use lab_analysis::step5::{End, Listing, Mode};

/// The goal of issue 25: Rust's CPU time per increment at most this many times C's, per cell.
pub const GOAL_RATIO: f64 = 1.05;

/// The functions whose loops are raced, in both binaries.
pub const LOOP_FUNCTIONS: [&str; 2] = ["race_racy", "race_atomic"];

/// How big a benchmark run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// Every race's target (every cell, both languages).
    pub target: i64,
    /// Runs per language per cell (the median is reported).
    pub runs: usize,
}

impl Sizing {
    /// The full run, or `--quick`'s (for a smoke test: its figures are noisy).
    pub fn new(quick: bool) -> Sizing {
        if quick {
            Sizing {
                target: 10_000_000,
                runs: 3,
            }
        } else {
            Sizing {
                target: 100_000_000,
                runs: 9,
            }
        }
    }
}

/// `cargo xtask bench race --json`, DESIGN.md's document: ns per increment made, medians of
/// alternated runs; ratio = Rust / C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaceBench {
    pub target: i64,
    pub rows: Vec<BenchRow>,
}

/// One cell: `participants` racers of one language in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchRow {
    pub participants: usize,
    /// `racy` or `atomic`.
    pub mode: Mode,
    pub rust_cpu_ns: f64,
    pub c_cpu_ns: f64,
    pub rust_wall_ns: f64,
    pub c_wall_ns: f64,
    pub ratio_cpu: f64,
    pub ratio_wall: f64,
    /// Runs per language (each median is of this many).
    pub runs: usize,
}

impl BenchRow {
    /// Whether the cell meets the goal: Rust's CPU time per increment at most [`GOAL_RATIO`]
    /// times C's (below 1, Rust was faster: met). CPU time, because other processes on a busy
    /// machine stretch the wall clock of whichever language they happen to interrupt.
    pub fn goal_met(&self) -> bool {
        self.ratio_cpu <= GOAL_RATIO
    }
}

/// Per-increment times of one cell's runs, in ns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    pub rust_wall: Vec<f64>,
    pub c_wall: Vec<f64>,
    pub rust_cpu: Vec<f64>,
    pub c_cpu: Vec<f64>,
}

impl Samples {
    /// The cell's row: medians and their ratios.
    pub fn row(&self, participants: usize, mode: Mode) -> BenchRow {
        let [rust_wall_ns, c_wall_ns, rust_cpu_ns, c_cpu_ns] =
            [&self.rust_wall, &self.c_wall, &self.rust_cpu, &self.c_cpu].map(|v| median(v));
        BenchRow {
            participants,
            mode,
            rust_cpu_ns,
            c_cpu_ns,
            rust_wall_ns,
            c_wall_ns,
            ratio_cpu: rust_cpu_ns / c_cpu_ns,
            ratio_wall: rust_wall_ns / c_wall_ns,
            runs: self.rust_cpu.len().min(self.c_cpu.len()),
        }
    }

    /// The ratio of the best (lowest) CPU times of a single-racer cell: the two loops at their
    /// best, whatever mode a shared virtual machine ran each run in. `None` for two racers:
    /// their time per increment is mostly how long the two contended for the counters' line,
    /// which the scheduler decides run by run (one racer that ran alone for most of its loop
    /// makes a run 20 times cheaper), so their best runs compare two placements, not two loops.
    pub fn best_ratio_cpu(&self, participants: usize) -> Option<f64> {
        let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        (participants == 1).then(|| best(&self.rust_cpu) / best(&self.c_cpu))
    }
}

/// The first three fields of /proc/loadavg.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[m],
        _ => (v[m - 1] + v[m]) / 2.0,
    }
}

/// One cell's runs, the two languages alternated run by run.
fn cell(
    rust: &Path,
    c: &Path,
    n: usize,
    mode: Mode,
    sizing: Sizing,
    scratch: &Path,
) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    for run in 0..sizing.runs {
        out::progress(&format!(
            "{} x{n} run {}/{}",
            mode.name(),
            run + 1,
            sizing.runs
        ));
        let order = if run % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_rust in order {
            let exe = if is_rust { rust } else { c };
            let (wall, cpu, made) = timed_race(exe, is_rust, n, mode, sizing.target, scratch)?;
            let (wall_ns, cpu_ns) = (wall * 1e9 / made as f64, cpu * 1e9 / made as f64);
            if is_rust {
                samples.rust_wall.push(wall_ns);
                samples.rust_cpu.push(cpu_ns);
            } else {
                samples.c_wall.push(wall_ns);
                samples.c_cpu.push(cpu_ns);
            }
        }
    }
    Ok(samples)
}

/// `cargo xtask bench race [--quick] [--json]`.
pub fn bench(ctx: &Ctx, json: bool) -> anyhow::Result<()> {
    let sizing = Sizing::new(ctx.quick);
    ctx.build_release(&["race"])?;
    let race = ctx.bin("race");
    let scratch = ctx.scratch("bench-race")?;
    let c_exe = build_c_racer(scratch.path())?;
    out::heading("Benchmark: the Rust racer against the C racer (cc -O2)");
    say!(
        "target {}, median of {} runs per cell, the two languages alternated run by run. Each \
         cell is time per increment made (ns), because two racy racers make a varying number of \
         increments to reach the target (every lost update is made again): wall = the longest \
         race loop among the instances (CLOCK_MONOTONIC, start-up not counted) / increments \
         made; cpu = the racers' CPU time in their loops (CLOCK_PROCESS_CPUTIME_ID, which other \
         processes on a busy machine do not inflate) / increments made. Goal: Rust/C cpu at \
         most {GOAL_RATIO:.2}x in every cell (below 1, Rust was faster). {} CPU(s) allowed; \
         load average before: {}.",
        sizing.target,
        sizing.runs,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        loadavg()
    );
    let mut cells = Vec::new();
    for mode in [Mode::Racy, Mode::Atomic] {
        for n in [1usize, 2] {
            let samples = cell(&race, &c_exe, n, mode, sizing, scratch.path())?;
            cells.push((samples.row(n, mode), samples.best_ratio_cpu(n)));
        }
    }
    let load_after = loadavg();
    say!("{}", verdict(&cells));
    say!("{}", table(&cells).trim_end());
    say!("load average after: {load_after}");
    say!(
        "Two-racer cells also depend on how the scheduler placed the racers, and a load average \
         above the CPU count means other processes took turns on them; the single-racer loop's \
         speed on a shared virtual machine can also jump between modes from run to run for \
         either binary, so compare its best runs too (not given for two racers: their best run \
         is the one the scheduler let contend least)."
    );
    out::subheading(&format!(
        "Where the loops lie ({CODE_LINE}-byte lines; objdump -d)"
    ));
    for (language, exe) in [("Rust", &race), ("C", &c_exe)] {
        show_loops(language, exe);
    }
    if json {
        out::json(&RaceBench {
            target: sizing.target,
            rows: cells.into_iter().map(|(row, _)| row).collect(),
        })?;
    }
    Ok(())
}

/// The answer in one line: how many cells meet the goal, and which do not.
fn verdict(cells: &[(BenchRow, Option<f64>)]) -> String {
    let missed: Vec<String> = cells
        .iter()
        .filter(|(row, _)| !row.goal_met())
        .map(|(row, _)| {
            format!(
                "{} x{} ({:.3}x)",
                row.mode.name(),
                row.participants,
                row.ratio_cpu
            )
        })
        .collect();
    let met = cells.len() - missed.len();
    let mut line = format!(
        "Goal Rust/C cpu <= {GOAL_RATIO:.2}x: met in {met} of {} cells",
        cells.len()
    );
    if !missed.is_empty() {
        let _ = write!(line, "; not met: {}", missed.join(", "));
    }
    line.push('.');
    line
}

/// The cells as a Markdown table, each with its goal met or not met.
fn table(cells: &[(BenchRow, Option<f64>)]) -> String {
    let mut table = format!(
        "| participants | mode | Rust wall ns/incr | C wall ns/incr | Rust/C wall | \
         Rust cpu ns/incr | C cpu ns/incr | Rust/C cpu | Rust/C best cpu | \
         goal cpu <= {GOAL_RATIO:.2}x |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (r, best_ratio) in cells {
        let _ = writeln!(
            table,
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} |",
            r.participants,
            r.mode.name(),
            r.rust_wall_ns,
            r.c_wall_ns,
            r.ratio_wall,
            r.rust_cpu_ns,
            r.c_cpu_ns,
            r.ratio_cpu,
            best_ratio.map_or("-".to_string(), |b| format!("{b:.3}")),
            if r.goal_met() { "met" } else { "not met" },
        );
    }
    table
}

/// One raced function of a binary: its listing and where its loop lies.
#[derive(Debug)]
pub struct RacedLoop {
    pub function: &'static str,
    /// objdump's listing of the function, when objdump could give it.
    pub listing: Option<String>,
    /// Where its loop lies, or why that cannot be told.
    pub placement: Result<LoopPlacement, String>,
}

/// The raced functions of `exe` ([`LOOP_FUNCTIONS`]) and where their loops lie.
pub fn raced_loops(exe: &Path) -> Vec<RacedLoop> {
    LOOP_FUNCTIONS
        .iter()
        .zip(objdump::functions(exe, &LOOP_FUNCTIONS))
        .map(|(&function, listing)| match listing {
            Listing::Text { text, .. } => RacedLoop {
                function,
                placement: objdump::loop_placement(&text)
                    .ok_or_else(|| format!("no loop in the listing of {function}")),
                listing: Some(text),
            },
            Listing::Unavailable { reason } => RacedLoop {
                function,
                listing: None,
                placement: Err(reason),
            },
        })
        .collect()
}

/// Where each raced loop of `exe` lies: the racy loop's listing, then one line per loop.
fn show_loops(language: &str, exe: &Path) {
    for raced in raced_loops(exe) {
        if let (Some(text), "race_racy") = (&raced.listing, raced.function) {
            say!("{text}");
        }
        match &raced.placement {
            Ok(p) => say!("{language} {}: {}", raced.function, p.describe()),
            Err(reason) => say!("{language} {}: ({reason})", raced.function),
        }
    }
    say!();
}

/// The C racer's source (`crates/race/c/racer.c`), carried in the lab itself so that an
/// installed `mmap-lab bench race` needs no source tree, only `cc`.
const C_RACER_SOURCE: &str = include_str!("../../../crates/race/c/racer.c");

/// Builds the C racer with `cc -O2` into `dir` (its source written there first).
pub(crate) fn build_c_racer(dir: &Path) -> anyhow::Result<PathBuf> {
    let src = dir.join("racer.c");
    std::fs::write(&src, C_RACER_SOURCE)
        .with_context(|| format!("cannot write {}", src.display()))?;
    let exe = dir.join("racer");
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!("cc is not installed; install a C compiler (`apt-get install gcc`)")
            } else {
                anyhow::anyhow!("cannot run cc: {e}")
            }
        })?;
    if !out.status.success() {
        bail!(
            "cc -O2 {} failed: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(exe)
}

/// One race of `n` racers of `exe` (ours takes `--json`; the C racer always prints it): the
/// longest race loop among the instances and their CPU time in it, and the increments made.
fn timed_race(
    exe: &Path,
    json_flag: bool,
    n: usize,
    mode: Mode,
    target: i64,
    scratch: &Path,
) -> anyhow::Result<(f64, f64, i64)> {
    let dir = scratch.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut args: Vec<String> = ["--mode", mode.name(), "--target"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(target.to_string());
    if json_flag {
        args.push("--json".into());
    }
    let run = launch::race(&Launch {
        program: exe,
        participants: n,
        args,
        dir: &dir,
        trace: None,
        bounds: Bounds::RACE,
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    let (mut wall, mut cpu, mut made) = (0.0f64, 0.0f64, 0i64);
    for i in &run.instances {
        if i.end != (End::Exited { code: 0 }) {
            bail!(
                "{} ended with {:?}: {}",
                exe.display(),
                i.end,
                i.stderr.trim()
            );
        }
        let r: race::Report = serde_json::from_str(i.stdout.trim())
            .with_context(|| format!("{} printed an odd report: {:?}", exe.display(), i.stdout))?;
        wall = wall.max(r.seconds);
        cpu += r.cpu_seconds;
        made += r.winnings;
    }
    Ok((wall, cpu, made.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    fn samples(rust_cpu: &[f64], c_cpu: &[f64]) -> Samples {
        Samples {
            rust_wall: rust_cpu.iter().map(|x| x * 2.0).collect(),
            c_wall: c_cpu.to_vec(),
            rust_cpu: rust_cpu.to_vec(),
            c_cpu: c_cpu.to_vec(),
        }
    }

    /// The document has DESIGN.md's fields, no others, and reads back as it was written.
    #[test]
    fn the_json_document_has_exactly_the_designed_fields() {
        let doc = RaceBench {
            target: 100_000_000,
            rows: vec![
                samples(&[0.5, 0.6, 0.7], &[0.5, 0.5, 0.5]).row(1, Mode::Racy),
                samples(&[2.4, 2.4, 2.4], &[2.0, 2.4, 2.4]).row(2, Mode::Atomic),
            ],
        };
        let value = serde_json::to_value(&doc).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&value), ["rows", "target"]);
        assert_eq!(value["target"], 100_000_000);
        let mut designed = [
            "participants",
            "mode",
            "rust_cpu_ns",
            "c_cpu_ns",
            "rust_wall_ns",
            "c_wall_ns",
            "ratio_cpu",
            "ratio_wall",
            "runs",
        ];
        designed.sort();
        let row = &value["rows"][0];
        assert_eq!(keys(row), designed);
        assert_eq!(row["participants"], 1);
        assert_eq!(row["mode"], "racy");
        assert_eq!(value["rows"][1]["mode"], "atomic");
        assert_eq!(row["runs"], 3);
        assert_eq!(row["rust_cpu_ns"], 0.6);
        assert_eq!(row["c_cpu_ns"], 0.5);
        assert_eq!(row["rust_wall_ns"], 1.2);
        assert!((row["ratio_cpu"].as_f64().unwrap() - 1.2).abs() < 1e-12);
        assert!((row["ratio_wall"].as_f64().unwrap() - 2.4).abs() < 1e-12);
        let back: RaceBench = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(back, doc);
        let mut extra = value;
        extra["rows"][0]["best"] = 1.into();
        assert!(serde_json::from_value::<RaceBench>(extra).is_err());
    }

    /// Rust/C at most 1.05 is met (below 1 too: Rust faster); above it is not, and the verdict
    /// and the table say which cell missed.
    #[test]
    fn each_cell_is_judged_against_the_goal() {
        let cells: Vec<(BenchRow, Option<f64>)> = [
            (1, Mode::Racy, 0.80),
            (2, Mode::Racy, 1.05),
            (1, Mode::Atomic, 1.06),
            (2, Mode::Atomic, 1.67),
        ]
        .into_iter()
        .map(|(n, mode, ratio)| {
            let s = samples(&[ratio], &[1.0]);
            (s.row(n, mode), s.best_ratio_cpu(n))
        })
        .collect();
        let met: Vec<bool> = cells.iter().map(|(r, _)| r.goal_met()).collect();
        assert_eq!(met, [true, true, false, false]);
        assert_eq!(
            verdict(&cells),
            "Goal Rust/C cpu <= 1.05x: met in 2 of 4 cells; not met: atomic x1 (1.060x), \
             atomic x2 (1.670x)."
        );
        let text = table(&cells);
        let judged: Vec<&str> = text
            .lines()
            .skip(2)
            .map(|l| l.trim_end_matches(" |").rsplit("| ").next().unwrap())
            .collect();
        assert_eq!(judged, ["met", "met", "not met", "not met"], "{text}");
        // The best runs are compared for one racer only (two racers' best is a placement).
        let best: Vec<&str> = text
            .lines()
            .skip(2)
            .map(|l| l.split(" | ").nth(8).unwrap())
            .collect();
        assert_eq!(best, ["0.800", "-", "1.060", "-"], "{text}");
    }
}
