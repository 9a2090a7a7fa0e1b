//! Step 5: processes racing on counters in one shared file mapping (`crates/race`).
//!
//! `run` first traces one `race 1` to show the protocol's system calls on the race file
//! (`O_CREAT|O_EXCL`, `flock`, `lseek` + `write`, `mmap(MAP_SHARED)`, `unlink`), then sweeps the
//! number of participants (1..=10; with `--quick` 1, 2 and cores+1) in both modes, launching all
//! the instances of a race at once, and tabulates total, sum of winnings, lost updates, time and
//! increments per second. The answers are computed from that table and from this machine's core
//! count and cache-line size (read, not assumed).
//!
//! `bench` times the Rust racer against the C racer (`crates/race/c/racer.c`, built with
//! `cc -O2`) on one target, 1 and 2 participants in each mode, median of several runs, and shows
//! both racy loops disassembled.
//!
//! `data` shape (for the report): `{"cores":N,"target":N,"rows":[{"participants":N,
//! "mode":"racy"|"atomic","total":N,"sum_of_winnings":N,"lost_updates":N,"lost_share":F,
//! "seconds":F,"increments_per_second":F}]}` where `lost_share = lost_updates /
//! sum_of_winnings` (the share of the increments made that were lost), `seconds` is the longest
//! race loop among the instances (as each measured it), and `increments_per_second =
//! sum_of_winnings / seconds` (every increment made, lost or not).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::model::{Answer, Ctx, Evidence, StepReport};
use crate::{out, say, strace};

/// The full sweep's target: large enough for many scheduler time slices per race, small enough
/// for the 20 races to finish within a minute or two on two cores. `race` itself defaults to
/// the assignment's 1,000,000,000.
const SWEEP_TARGET: i64 = 200_000_000;
/// The quick sweep's target.
const QUICK_TARGET: i64 = 50_000_000;
/// The benchmark's target (every cell, both languages).
const BENCH_TARGET: i64 = 100_000_000;
/// Runs per benchmark cell (the median is reported).
const BENCH_RUNS: usize = 9;
/// No single race may take longer than this.
const RACE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Racy,
    Atomic,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Racy => "racy",
            Mode::Atomic => "atomic",
        }
    }
}

/// One finished race.
struct RaceRun {
    participants: usize,
    mode: Mode,
    total: i64,
    sum_of_winnings: i64,
    lost_updates: i64,
    /// winnings[id-1] as the first instance read them.
    winnings: Vec<i64>,
    /// The longest race loop among the instances.
    seconds: f64,
    /// The CPU time all the instances spent in their race loops, added up.
    cpu_total: f64,
    /// Each instance's JSON line.
    lines: Vec<String>,
}

impl RaceRun {
    fn lost_share(&self) -> f64 {
        if self.sum_of_winnings > 0 {
            self.lost_updates as f64 / self.sum_of_winnings as f64
        } else {
            0.0
        }
    }

    /// How many CPUs the race had on average: the racers' CPU time over the race's wall time.
    fn cpus_used(&self) -> f64 {
        if self.seconds > 0.0 {
            self.cpu_total / self.seconds
        } else {
            0.0
        }
    }

    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.sum_of_winnings as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Started racers; killed and reaped on drop, so no error path leaves a process behind.
struct Racers(Vec<Child>);

impl Drop for Racers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A racer program: the Rust `race` (takes `--json`) or the C `racer` (always JSON).
struct Racer<'a> {
    exe: &'a Path,
    json_flag: bool,
}

/// Launches `n` instances at once on `file` and waits for them all (bounded).
fn run_race(
    racer: &Racer<'_>,
    file: &Path,
    n: usize,
    mode: Mode,
    target: i64,
) -> anyhow::Result<RaceRun> {
    let mut racers = Racers(Vec::with_capacity(n));
    for _ in 0..n {
        let mut cmd = Command::new(racer.exe);
        cmd.arg(n.to_string())
            .arg("--file")
            .arg(file)
            .args(["--mode", mode.name(), "--target", &target.to_string()])
            .args(["--join-timeout", "120"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if racer.json_flag {
            cmd.arg("--json");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", racer.exe.display()))?;
        racers.0.push(child);
    }
    let deadline = Instant::now() + RACE_TIMEOUT;
    while racers
        .0
        .iter_mut()
        .any(|c| matches!(c.try_wait(), Ok(None)))
    {
        if Instant::now() >= deadline {
            bail!(
                "a race of {n} ({}) did not finish within {} s",
                mode.name(),
                RACE_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut lines = Vec::new();
    let mut summary: Option<Value> = None;
    let mut seconds = 0.0f64;
    let mut cpu_total = 0.0f64;
    for child in std::mem::take(&mut racers.0) {
        let output = child
            .wait_with_output()
            .context("cannot collect a racer's output")?;
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !output.status.success() {
            bail!(
                "{} failed ({}): {}",
                racer.exe.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let v: Value = serde_json::from_str(&stdout)
            .with_context(|| format!("a racer printed invalid JSON: {stdout:?}"))?;
        seconds = seconds.max(v["seconds"].as_f64().unwrap_or(0.0));
        cpu_total += v["cpu_seconds"].as_f64().unwrap_or(0.0);
        if v.get("summary").is_some() {
            summary = Some(v["summary"].clone());
        }
        lines.push(stdout);
    }
    let s = summary
        .context("no instance reported a summary (the first one did not see everyone finish)")?;
    let num = |k: &str| {
        s[k].as_i64()
            .with_context(|| format!("summary without {k}"))
    };
    Ok(RaceRun {
        participants: n,
        mode,
        total: num("total")?,
        sum_of_winnings: num("sum_of_winnings")?,
        lost_updates: num("lost_updates")?,
        winnings: s["winnings"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default(),
        seconds,
        cpu_total,
        lines,
    })
}

/// The number of CPUs this process may run on (`sched_getaffinity(2)`, and cgroup quotas, as
/// `std::thread::available_parallelism` reads them).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The L1 data cache's line size from sysfs; `None` if the kernel does not say.
fn cache_line() -> Option<usize> {
    std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index0/coherency_line_size")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn fmt_millions(x: f64) -> String {
    format!("{:.1} M", x / 1e6)
}

fn table(rows: &[RaceRun]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:>12} {:>6} {:>13} {:>16} {:>14} {:>7} {:>8} {:>12} {:>9}",
        "participants",
        "mode",
        "total",
        "sum of winnings",
        "lost updates",
        "lost %",
        "time s",
        "incr/s",
        "CPUs used"
    );
    for r in rows {
        let _ = writeln!(
            t,
            "{:>12} {:>6} {:>13} {:>16} {:>14} {:>6.2}% {:>8.3} {:>12} {:>9.2}",
            r.participants,
            r.mode.name(),
            r.total,
            r.sum_of_winnings,
            r.lost_updates,
            100.0 * r.lost_share(),
            r.seconds,
            fmt_millions(r.rate()),
            r.cpus_used()
        );
    }
    t
}

/// Traces `race 1` and keeps the lines that touch the race file.
fn trace_protocol(race: &Path, dir: &Path) -> anyhow::Result<String> {
    strace::check()?;
    let file = dir.join("traced.bin");
    let traced = strace::run(
        race,
        [
            "1".as_ref(),
            "--target".as_ref(),
            "1000".as_ref(),
            "--file".as_ref(),
            file.as_os_str(),
        ],
        "openat,flock,lseek,write,mmap,munmap,unlink,close",
        dir,
    )?;
    if !traced.status.success() {
        bail!("race 1 under strace failed: {}", traced.stderr.trim());
    }
    let name = file.to_string_lossy().into_owned();
    let mut fd: Option<i64> = None;
    let mut text = String::new();
    for c in &traced.calls {
        let on_file = match c.name.as_str() {
            "openat" if c.arg_str(1) == Some(name.as_str()) => {
                fd = c.ret;
                true
            }
            "unlink" => c.arg_str(0) == Some(name.as_str()),
            "mmap" => fd.is_some() && c.arg_i64(4) == fd,
            "flock" | "lseek" | "write" | "close" => fd.is_some() && c.arg_i64(0) == fd,
            _ => false,
        };
        if on_file {
            let _ = writeln!(text, "{}", c.raw);
            if c.name == "close" {
                fd = None;
            }
        }
    }
    Ok(text)
}

/// Step 5: the sweep, the table and the answers computed from it.
pub fn run(ctx: &Ctx) -> anyhow::Result<StepReport> {
    ctx.build_release(&["race"])?;
    let race = ctx.bin("race");
    let scratch = ctx.scratch("step5")?;
    let cores = cores();
    let line = cache_line();
    let target = if ctx.quick {
        QUICK_TARGET
    } else {
        SWEEP_TARGET
    };
    let mut counts: Vec<usize> = if ctx.quick {
        vec![1, 2, (cores + 1).min(10)]
    } else {
        (1..=10).collect()
    };
    counts.dedup();
    let mut evidence = Vec::new();

    out::subheading("The protocol's system calls on the race file (strace of `race 1`)");
    match trace_protocol(&race, scratch.path()) {
        Ok(text) => {
            say!("{}", text.trim_end());
            evidence.push(Evidence {
                title: "strace of `race 1`: the calls on the race file".into(),
                text,
            });
        }
        Err(e) => say!("(no trace: {e:#})"),
    }

    out::subheading(&format!(
        "The sweep: {} races to total = {target}, all instances of a race launched at once",
        counts.len() * 2
    ));
    say!(
        "This machine: {cores} CPU(s) available to this process (sched_getaffinity); cache line \
         {}.",
        line.map_or(
            "size unknown (sysfs does not say)".to_string(),
            |l| format!("{l} bytes")
        )
    );
    let rust = Racer {
        exe: &race,
        json_flag: true,
    };
    let mut rows = Vec::new();
    for mode in [Mode::Racy, Mode::Atomic] {
        for &n in &counts {
            out::progress(&format!("race: {n} participant(s), {} mode", mode.name()));
            let file = scratch.path().join(format!("race-{n}-{}.bin", mode.name()));
            rows.push(run_race(&rust, &file, n, mode, target)?);
            if file.exists() {
                bail!("the first instance left {} behind", file.display());
            }
        }
    }
    let tbl = table(&rows);
    say!("{}", tbl.trim_end());
    evidence.push(Evidence {
        title: format!("The sweep (target {target}, {cores} CPUs)"),
        text: tbl,
    });
    let mut by_id = String::new();
    for r in &rows {
        let _ = writeln!(
            by_id,
            "{:>2} {:<6} winnings by id: {:?}",
            r.participants,
            r.mode.name(),
            r.winnings
        );
    }
    evidence.push(Evidence {
        title: "Winnings by id, per race".into(),
        text: by_id.clone(),
    });
    if let Some(r) = rows
        .iter()
        .filter(|r| r.mode == Mode::Racy)
        .max_by_key(|r| r.participants)
    {
        evidence.push(Evidence {
            title: format!("The {} racy racers' own JSON lines", r.participants),
            text: r.lines.join("\n"),
        });
    }

    let answers = answers(&rows, cores, line, target);
    out::subheading("Answers, from the table above");
    for a in &answers {
        say!("Q: {}\nA: {}\n", a.question, a.answer);
    }
    let data = json!({
        "cores": cores,
        "target": target,
        "rows": rows.iter().map(|r| json!({
            "participants": r.participants,
            "mode": r.mode.name(),
            "total": r.total,
            "sum_of_winnings": r.sum_of_winnings,
            "lost_updates": r.lost_updates,
            "lost_share": r.lost_share(),
            "seconds": r.seconds,
            "increments_per_second": r.rate(),
        })).collect::<Vec<_>>(),
    });
    Ok(crate::model::legacy(
        5,
        "Inter-process communication through a shared mapping: the race",
        answers,
        evidence,
        data,
    ))
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// The answers, computed from the rows (nothing here is fixed text about the outcome).
fn answers(rows: &[RaceRun], cores: usize, line: Option<usize>, target: i64) -> Vec<Answer> {
    let racy: Vec<&RaceRun> = rows.iter().filter(|r| r.mode == Mode::Racy).collect();
    let atomic: Vec<&RaceRun> = rows.iter().filter(|r| r.mode == Mode::Atomic).collect();
    let racy_multi: Vec<&&RaceRun> = racy.iter().filter(|r| r.participants > 1).collect();
    let racy_lossy = racy_multi.iter().filter(|r| r.lost_updates > 0).count();
    let atomic_lossy: Vec<&&RaceRun> = atomic.iter().filter(|r| r.lost_updates != 0).collect();
    let off_target: Vec<&RaceRun> = rows.iter().filter(|r| r.total != target).collect();
    let single: Vec<&&RaceRun> = racy.iter().filter(|r| r.participants == 1).collect();

    // Q1: sum of winnings vs total.
    let mut q1 = String::new();
    if off_target.is_empty() {
        let _ = write!(q1, "Every race ended with total = {target}, the target. ");
    } else {
        let _ = write!(
            q1,
            "{} race(s) ended with total != target ({}). ",
            off_target.len(),
            off_target
                .iter()
                .map(|r| format!("{} {}: {}", r.participants, r.mode.name(), r.total))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(r) = single.first() {
        let _ = write!(
            q1,
            "Alone (1 racy participant) the sum of winnings was {} against a total of {}: {}. ",
            r.sum_of_winnings,
            r.total,
            if r.lost_updates == 0 {
                "equal, nothing to race against"
            } else {
                "NOT equal, which no interleaving explains"
            }
        );
    }
    if racy_lossy > 0 {
        let lossy: Vec<&&&RaceRun> = racy_multi.iter().filter(|r| r.lost_updates > 0).collect();
        let lo = lossy
            .iter()
            .map(|r| r.lost_share())
            .fold(f64::INFINITY, f64::min);
        let hi = lossy.iter().map(|r| r.lost_share()).fold(0.0, f64::max);
        let _ = write!(
            q1,
            "With 2 or more racy participants the sum of winnings exceeded the total in \
             {racy_lossy} of {} races: between {} and {} of the increments made were lost (the \
             largest: {} increments made for a total of {}). Each participant's own winnings are \
             exact (only it writes them), but `total++` is a load and a separate store: when two \
             racers load the same value, both store value+1 and one increment of total \
             disappears. ",
            racy_multi.len(),
            pct(lo),
            pct(hi),
            lossy.iter().map(|r| r.sum_of_winnings).max().unwrap_or(0),
            target
        );
    }
    if racy_lossy < racy_multi.len() {
        let _ = write!(
            q1,
            "In {} of {} racy race(s) with 2 or more participants no update was lost{}: the \
             racers never stood between a load and a store at the same time (one finished \
             before another got a CPU); a larger --target makes them overlap. ",
            racy_multi.len() - racy_lossy,
            racy_multi.len(),
            if racy_lossy == 0 {
                ", against the expectation"
            } else {
                ""
            }
        );
    }
    if atomic_lossy.is_empty() {
        let _ = write!(
            q1,
            "In atomic mode (fetch_add, a `lock xadd`) sum = total in all {} races: nothing lost.",
            atomic.len()
        );
    } else {
        let _ = write!(
            q1,
            "Unexpected: atomic mode lost updates in {} race(s), which contradicts fetch_add's \
             guarantee; look for a foreign writer of the file.",
            atomic_lossy.len()
        );
    }

    // Q2: how it varies with participants.
    let shares: Vec<String> = racy
        .iter()
        .map(|r| format!("{}: {}", r.participants, pct(r.lost_share())))
        .collect();
    // Split by what each race really had: a CPU per racer, or racers taking turns on fewer.
    let own_cpu = |r: &RaceRun| r.participants as f64 <= r.cpus_used() + 0.5;
    let within: Vec<f64> = racy_multi
        .iter()
        .filter(|r| own_cpu(r))
        .map(|r| r.lost_share())
        .collect();
    let beyond: Vec<f64> = racy_multi
        .iter()
        .filter(|r| !own_cpu(r))
        .map(|r| r.lost_share())
        .collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            None
        } else {
            Some(v.iter().sum::<f64>() / v.len() as f64)
        }
    };
    let mut q2 = format!(
        "Lost share by number of racy participants: {}. ",
        shares.join(", ")
    );
    match (mean(&within), mean(&beyond)) {
        (Some(a), Some(b)) => {
            let verdict = if b > a * 1.05 {
                "higher: racers that take turns on a CPU lose more, because a racer preempted \
                 between its load and its store later writes back an old total, undoing every \
                 increment the others made while it was off the CPU"
                    .to_string()
            } else if b < a * 0.95 {
                "lower, against the expectation that preempted racers writing back old totals \
                 lose more (a racer that has a CPU to itself for a whole time slice loses nothing \
                 in that slice)"
                    .to_string()
            } else {
                "about the same".to_string()
            };
            let _ = write!(
                q2,
                "Races in which every racer had a CPU (see the CPUs used column) lost {} on \
                 average; races whose racers outnumbered the CPUs they had, and took turns, lost \
                 {} — {verdict}. ",
                pct(a),
                pct(b),
            );
        }
        (Some(a), None) => {
            let _ = write!(
                q2,
                "Every racer had a CPU of its own in these races; they lost {} on average. ",
                pct(a)
            );
        }
        (None, Some(b)) => {
            let _ = write!(
                q2,
                "In no race here did every racer have a CPU (see the CPUs used column): the \
                 racers took turns, and the updates were lost when a racer preempted between its \
                 load and its store wrote back an old total, {} on average. ",
                pct(b)
            );
        }
        (None, None) => {}
    }
    let idle: Vec<String> = racy
        .iter()
        .filter_map(|r| {
            let z = r.winnings.iter().filter(|&&w| w == 0).count();
            (z > 0).then(|| format!("{} of {}", z, r.participants))
        })
        .collect();
    if !idle.is_empty() {
        let _ = write!(
            q2,
            "Some racers never won anything ({}): the race ended before they got a CPU. ",
            idle.join(", ")
        );
    }
    let rate = |m: Mode, n: usize| {
        rows.iter()
            .find(|r| r.mode == m && r.participants == n)
            .map(RaceRun::rate)
    };
    for m in [Mode::Racy, Mode::Atomic] {
        if let (Some(one), Some(two)) = (rate(m, 1), rate(m, 2)) {
            let _ = write!(
                q2,
                "{} mode: {} increments/s alone, {} with 2 participants ({:.1}x {}). ",
                m.name(),
                fmt_millions(one),
                fmt_millions(two),
                if two > 0.0 { one / two } else { 0.0 },
                if one >= two { "slower" } else { "faster" }
            );
        }
    }

    // Cores: what the races actually got, from the racers' own CPU time.
    let used: Vec<String> = rows
        .iter()
        .filter(|r| r.participants > 1)
        .map(|r| format!("{} {}: {:.2}", r.participants, r.mode.name(), r.cpus_used()))
        .collect();
    let starved: Vec<String> = rows
        .iter()
        .filter(|r| r.participants > 1 && r.cpus_used() < r.participants.min(cores) as f64 - 0.5)
        .map(|r| {
            format!(
                "{} {} ({:.2})",
                r.participants,
                r.mode.name(),
                r.cpus_used()
            )
        })
        .collect();
    let mut q3 = format!(
        "This process may run on {cores} CPU(s) (read with sched_getaffinity), so at most \
         {cores} racers execute at the same instant. CPUs each race actually had (the racers' CPU \
         time added up, over the race's wall time): {}. ",
        if used.is_empty() {
            "no race with 2 or more participants".to_string()
        } else {
            used.join(", ")
        }
    );
    if starved.is_empty() {
        let _ = write!(
            q3,
            "Every race with 2 or more racers got about min(racers, {cores}) CPUs. "
        );
    } else {
        let _ = write!(
            q3,
            "These races had fewer CPUs than racers and this machine offers: {} — other processes \
             were running, so their racers took turns on fewer CPUs, and their losses came more \
             from preemption than from parallel cores. ",
            starved.join(", ")
        );
    }
    let _ = write!(
        q3,
        "In racy mode a loss needs two racers between their load and their store at the same \
         time: {}",
        if cores == 1 {
            "on one CPU that happens only when a racer is preempted between the two.".to_string()
        } else {
            format!(
                "on {cores} CPUs that happens in parallel for up to {cores} racers, and by \
                 preemption for every racer beyond {cores}; a race of {} or more is time-shared, \
                 so its increments per second are those of {cores} CPUs, not of its racers.",
                cores + 1
            )
        }
    );

    // The cache line.
    let q4 = match line {
        Some(l) => {
            let total_line = 8 / l;
            let same: Vec<usize> = (1..=10)
                .filter(|id| (16 + 8 * (id - 1)) / l == total_line)
                .collect();
            let mut s = format!(
                "With {l}-byte cache lines, `total` (offset 8) shares line {total_line} with \
                 `participants` and the winnings of ids {}; ",
                same.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if same.len() < 10 {
                let _ = write!(
                    s,
                    "ids {}-10 have theirs on the next line. ",
                    same.len() + 1
                );
            }
            let _ = write!(
                s,
                "Every increment writes that line, and a core must own a line exclusively to \
                 write it, so with two racers on two cores the line moves between the cores at \
                 (nearly) every increment: a racer's stores to its own winnings steal the line \
                 from the other racer just like its stores to total do (false sharing). "
            );
            let pair = rows
                .iter()
                .find(|r| r.mode == Mode::Racy && r.participants == 2);
            if let (Some(one), Some(pair)) = (rate(Mode::Racy, 1), pair) {
                let _ = write!(
                    s,
                    "Measured here: {} racy increments/s alone (the line stays in one core's \
                     L1; each load of total is served by store-to-load forwarding) against {} \
                     with two racers ({:.1}x), which had {:.2} CPUs between them. ",
                    fmt_millions(one),
                    fmt_millions(pair.rate()),
                    if pair.rate() > 0.0 {
                        one / pair.rate()
                    } else {
                        0.0
                    },
                    pair.cpus_used()
                );
                if pair.cpus_used() < 1.5 {
                    let _ = write!(
                        s,
                        "With about one CPU the two racers mostly took turns, so the line seldom \
                         moved: this run does not show the ping-pong (other processes held the \
                         second CPU); run it again on an idle machine to see it. "
                    );
                }
            }
            let _ = write!(
                s,
                "It also widens the window between a racer's load and its store of total (the \
                 store waits for the line), which is where updates are lost. Padding each \
                 counter to its own line would remove the false sharing — but the struct's \
                 layout is the assignment's, kept byte for byte."
            );
            s
        }
        None => "The kernel does not report the cache-line size here (no sysfs entry), so which \
                 winnings share total's line cannot be computed."
            .to_string(),
    };

    vec![
        Answer {
            question: "What do you observe about the sum of winnings vs. the reported total?"
                .into(),
            answer: q1,
        },
        Answer {
            question: "How does this vary with the number of participants?".into(),
            answer: q2,
        },
        Answer {
            question: format!("What do the {cores} CPU(s) of this machine do to the result?"),
            answer: q3,
        },
        Answer {
            question: "Why does it matter that total and winnings share a cache line?".into(),
            answer: q4,
        },
    ]
}

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

/// The disassembly of the first function whose name contains `name`, from `objdump -d`.
fn disassemble(exe: &Path, name: &str) -> Option<String> {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(exe)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text
        .lines()
        .skip_while(|l| !(l.ends_with(">:") && l.contains(name)));
    let head = lines.next()?;
    let body: Vec<&str> = lines
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.contains("int3") && !l.contains("nop"))
        .collect();
    Some(format!("{head}\n{}", body.join("\n")))
}

/// The loop in a disassembly: from the target of the last backward jump to the instruction
/// after that jump, as (start, end) addresses.
fn loop_span(disassembly: &str) -> Option<(u64, u64)> {
    let insns: Vec<(u64, &str)> = disassembly
        .lines()
        .filter_map(|l| {
            let (addr, rest) = l.trim().split_once(':')?;
            Some((u64::from_str_radix(addr.trim(), 16).ok()?, rest.trim()))
        })
        .collect();
    let (i, target) = insns
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, (addr, insn))| {
            let mut parts = insn.split_whitespace();
            let op = parts.next()?;
            let target = u64::from_str_radix(parts.next()?, 16).ok()?;
            (op.starts_with('j') && target < *addr).then_some((i, target))
        })?;
    let end = insns.get(i + 1).map(|(a, _)| *a)?;
    Some((target, end))
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

/// `cargo xtask bench race`: the Rust racer against the C racer, same target, same run.
pub fn bench(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.build_release(&["race"])?;
    let race = ctx.bin("race");
    let scratch = ctx.scratch("bench-race")?;
    let c_exe = build_c_racer(&ctx.root, scratch.path())?;
    let rust = Racer {
        exe: &race,
        json_flag: true,
    };
    let c = Racer {
        exe: &c_exe,
        json_flag: false,
    };
    out::heading("Benchmark: the Rust racer against the C racer (cc -O2)");
    say!(
        "target {BENCH_TARGET}, median of {BENCH_RUNS} runs per cell, the two languages \
         alternated run by run. Each cell is time per increment made (ns), because two racy \
         racers make a varying number of increments to reach the target (every lost update is \
         made again): wall = the longest race loop among the instances (CLOCK_MONOTONIC, \
         start-up not counted) / increments made; cpu = the racers' CPU time in their loops \
         (CLOCK_PROCESS_CPUTIME_ID, which other processes on a busy machine do not inflate) / \
         increments made. {} CPU(s); load average before: {}.",
        cores(),
        loadavg()
    );
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| participants | mode | Rust wall ns/incr | C wall ns/incr | Rust/C wall | \
         Rust cpu ns/incr | C cpu ns/incr | Rust/C cpu | Rust/C best cpu |"
    );
    let _ = writeln!(table, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut outside = Vec::new();
    for mode in [Mode::Racy, Mode::Atomic] {
        for n in [1usize, 2] {
            let (mut rw, mut cw, mut rc, mut cc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for run in 0..BENCH_RUNS {
                out::progress(&format!(
                    "{} x{n} run {}/{BENCH_RUNS}",
                    mode.name(),
                    run + 1
                ));
                let order: [(&Racer<'_>, bool); 2] = if run % 2 == 0 {
                    [(&rust, true), (&c, false)]
                } else {
                    [(&c, false), (&rust, true)]
                };
                for (who, is_rust) in order {
                    let file = scratch.path().join("bench.bin");
                    let r = run_race(who, &file, n, mode, BENCH_TARGET)?;
                    let made = r.sum_of_winnings.max(1) as f64;
                    let (wall, cpu) = (r.seconds * 1e9 / made, r.cpu_total * 1e9 / made);
                    if is_rust {
                        rw.push(wall);
                        rc.push(cpu);
                    } else {
                        cw.push(wall);
                        cc.push(cpu);
                    }
                }
            }
            let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
            let best_ratio = best(&rc) / best(&cc);
            let (rw, cw, rc, cc) = (
                median(&mut rw),
                median(&mut cw),
                median(&mut rc),
                median(&mut cc),
            );
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
    for (exe, name) in [(&race, "race_racy"), (&c_exe, "race_racy")] {
        match disassemble(exe, name) {
            Some(text) => {
                say!("{text}");
                if let Some((start, end)) = loop_span(&text) {
                    let lines = (end - 1) / 64 - start / 64 + 1;
                    say!(
                        "loop: {start:#x}..{end:#x}, {} bytes, in {lines} 64-byte line(s)\n",
                        end - start
                    );
                }
            }
            None => say!("(objdump could not show {name} in {})", exe.display()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, mode: Mode, total: i64, sum: i64) -> RaceRun {
        RaceRun {
            participants: n,
            mode,
            total,
            sum_of_winnings: sum,
            lost_updates: sum - total,
            winnings: vec![sum / n as i64; n],
            seconds: 1.0,
            cpu_total: n.min(2) as f64,
            lines: Vec::new(),
        }
    }

    #[test]
    fn answers_follow_the_measurements() {
        let rows = vec![
            row(1, Mode::Racy, 100, 100),
            row(2, Mode::Racy, 100, 150),
            row(3, Mode::Racy, 100, 400),
            row(1, Mode::Atomic, 100, 100),
            row(2, Mode::Atomic, 100, 100),
        ];
        let a = answers(&rows, 2, Some(64), 100);
        assert!(
            a[0].answer.contains("exceeded the total in 2 of 2 races"),
            "{}",
            a[0].answer
        );
        assert!(
            a[0].answer.contains("between 33.3% and 75.0%"),
            "{}",
            a[0].answer
        );
        assert!(a[0].answer.contains("sum = total in all 2 races"));
        assert!(
            a[1].answer.contains("2: 33.3%, 3: 75.0%"),
            "{}",
            a[1].answer
        );
        assert!(a[1].answer.contains("higher"), "{}", a[1].answer);
        assert!(
            a[3].answer.contains("ids 1, 2, 3, 4, 5, 6"),
            "{}",
            a[3].answer
        );
        assert!(a[2].question.contains("2 CPU(s)"));
    }

    #[test]
    fn answers_say_when_the_system_contradicts_the_theory() {
        let rows = vec![row(2, Mode::Racy, 100, 100), row(2, Mode::Atomic, 100, 130)];
        let a = answers(&rows, 4, Some(128), 100);
        assert!(
            a[0].answer.contains("In 1 of 1 racy race(s)"),
            "{}",
            a[0].answer
        );
        assert!(
            a[0].answer.contains("against the expectation"),
            "{}",
            a[0].answer
        );
        assert!(!a[0].answer.contains("exceeded"), "{}", a[0].answer);
        assert!(
            a[0].answer.contains("Unexpected: atomic mode lost updates"),
            "{}",
            a[0].answer
        );
        // 128-byte lines: every winnings slot shares total's line.
        assert!(
            a[3].answer.contains("ids 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;"),
            "{}",
            a[3].answer
        );
    }

    #[test]
    fn answers_report_the_cpus_the_races_really_had() {
        let mut busy = row(2, Mode::Racy, 100, 150);
        busy.cpu_total = 1.0; // Two racers, one CPU's worth of time: something else ran.
        let a = answers(&[row(1, Mode::Racy, 100, 100), busy], 2, Some(64), 100);
        assert!(a[2].answer.contains("2 racy: 1.00"), "{}", a[2].answer);
        let no_own_cpu = "In no race here did every racer have a CPU";
        assert!(a[1].answer.contains(no_own_cpu), "{}", a[1].answer);
        let no_ping_pong = "this run does not show the ping-pong";
        assert!(a[3].answer.contains(no_ping_pong), "{}", a[3].answer);
        assert!(
            a[2].answer.contains("fewer CPUs than racers"),
            "{}",
            a[2].answer
        );
        let a = answers(&[row(2, Mode::Racy, 100, 150)], 2, Some(64), 100);
        assert!(
            a[2].answer.contains("got about min(racers, 2) CPUs"),
            "{}",
            a[2].answer
        );
    }

    #[test]
    fn finds_the_loop_of_a_disassembly() {
        let text = "0000000000001dc0 <race_racy>:
    1dc0:\tmov    (%rdi),%rax
    1dc6:\tjge    1de3 <race_racy+0x23>
    1dd0:\tadd    $0x1,%rax
    1dde:\tcmp    %rdx,%rax
    1de1:\tjl     1dd0 <race_racy+0x10>
    1de3:\tret";
        assert_eq!(loop_span(text), Some((0x1dd0, 0x1de3)));
        assert_eq!(loop_span("1dc0:\tret"), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
