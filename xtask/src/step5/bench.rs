//! `cargo xtask bench race`: the Rust racer against the C racer (`crates/race/c/racer.c`, built
//! with `cc -O2`), same target, 1 and 2 participants in each mode, median of several runs, the
//! two languages alternated run by run; then both racy loops disassembled.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use super::launch::{self, Bounds, Launch};
use super::objdump;
use crate::model::Ctx;
use crate::{out, say};
use lab_analysis::step5::{disasm, End, Listing, Mode};

/// The benchmark's target (every cell, both languages).
const BENCH_TARGET: i64 = 100_000_000;
/// Runs per benchmark cell (the median is reported).
const BENCH_RUNS: usize = 9;

/// Builds the C racer with `cc -O2` into `dir`.
fn build_c_racer(root: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let src = root.join("crates/race/c/racer.c");
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
    scratch: &Path,
) -> anyhow::Result<(f64, f64, i64)> {
    let dir = scratch.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut args: Vec<String> = ["--mode", mode.name(), "--target"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(BENCH_TARGET.to_string());
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

/// The first three fields of /proc/loadavg.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Per-increment times of one cell: (Rust wall, C wall, Rust cpu, C cpu) in ns, median, and the
/// ratio of the best CPU times.
fn cell(
    rust: &Path,
    c: &Path,
    n: usize,
    mode: Mode,
    scratch: &Path,
) -> anyhow::Result<([f64; 4], f64)> {
    let mut samples: [Vec<f64>; 4] = Default::default();
    for run in 0..BENCH_RUNS {
        out::progress(&format!(
            "{} x{n} run {}/{BENCH_RUNS}",
            mode.name(),
            run + 1
        ));
        let order = if run % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_rust in order {
            let exe = if is_rust { rust } else { c };
            let (wall, cpu, made) = timed_race(exe, is_rust, n, mode, scratch)?;
            let k = usize::from(!is_rust);
            samples[k].push(wall * 1e9 / made as f64);
            samples[2 + k].push(cpu * 1e9 / made as f64);
        }
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let best_ratio = best(&samples[2]) / best(&samples[3]);
    let medians = samples.map(|mut v| median(&mut v));
    Ok((medians, best_ratio))
}

/// `cargo xtask bench race`.
pub fn bench(ctx: &Ctx) -> anyhow::Result<()> {
    let root = ctx.layout.source_root("bench race")?;
    ctx.build_release(&["race"])?;
    let race = ctx.bin("race");
    let scratch = ctx.scratch("bench-race")?;
    let c_exe = build_c_racer(root, scratch.path())?;
    out::heading("Benchmark: the Rust racer against the C racer (cc -O2)");
    say!(
        "target {BENCH_TARGET}, median of {BENCH_RUNS} runs per cell, the two languages \
         alternated run by run. Each cell is time per increment made (ns), because two racy \
         racers make a varying number of increments to reach the target (every lost update is \
         made again): wall = the longest race loop among the instances (CLOCK_MONOTONIC, \
         start-up not counted) / increments made; cpu = the racers' CPU time in their loops \
         (CLOCK_PROCESS_CPUTIME_ID, which other processes on a busy machine do not inflate) / \
         increments made. {} CPU(s) allowed; load average before: {}.",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        loadavg()
    );
    let mut table = String::from(
        "| participants | mode | Rust wall ns/incr | C wall ns/incr | Rust/C wall | \
         Rust cpu ns/incr | C cpu ns/incr | Rust/C cpu | Rust/C best cpu |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut outside = Vec::new();
    for mode in [Mode::Racy, Mode::Atomic] {
        for n in [1usize, 2] {
            let ([rw, cw, rc, cc], best_ratio) = cell(&race, &c_exe, n, mode, scratch.path())?;
            let (wall, cpu) = (rw / cw, rc / cc);
            if (wall - 1.0).abs() > 0.05 || (cpu - 1.0).abs() > 0.05 {
                outside.push(format!(
                    "{} x{n} (wall {wall:.3}, cpu {cpu:.3}, best cpu {best_ratio:.3})",
                    mode.name()
                ));
            }
            let _ = writeln!(
                table,
                "| {n} | {} | {rw:.3} | {cw:.3} | {wall:.3} | {rc:.3} | {cc:.3} | {cpu:.3} | \
                 {best_ratio:.3} |",
                mode.name(),
            );
        }
    }
    say!("{}", table.trim_end());
    say!("load average after: {}", loadavg());
    if outside.is_empty() {
        say!("Every cell's median is within 5% of C, by wall and by CPU time.");
    } else {
        say!(
            "Cells whose median is more than 5% from C: {} (below 1 means Rust was faster). \
             Two-racer cells also depend on how the scheduler placed the racers, and a load \
             average above the CPU count means other processes took turns on them; the \
             single-racer loop's speed on a shared virtual machine can also jump between modes \
             from run to run for either binary, so compare the best runs too.",
            outside.join(", ")
        );
    }
    out::subheading("The racy loops, disassembled (objdump -d)");
    for exe in [&race, &c_exe] {
        show_loop(exe);
    }
    Ok(())
}

/// Prints `race_racy` of `exe` and where its loop lies in 64-byte lines.
fn show_loop(exe: &Path) {
    match objdump::functions(exe, &["race_racy"]).pop() {
        Some(Listing::Text { text, .. }) => {
            say!("{text}");
            let insns = disasm::parse(&text);
            let span = disasm::loop_body(&insns).and_then(|body| {
                let last = body.last()?.address;
                let end = insns.iter().find(|i| i.address > last)?.address;
                Some((body.first()?.address, end))
            });
            if let Some((start, end)) = span {
                let lines = (end - 1) / 64 - start / 64 + 1;
                say!(
                    "loop: {start:#x}..{end:#x}, {} bytes, in {lines} 64-byte line(s)\n",
                    end - start
                );
            }
        }
        Some(Listing::Unavailable { reason }) => say!("({reason})"),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
