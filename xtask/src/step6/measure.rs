//! Step 6's measurements: benchmark cells under strace, the benchmark, the checked stream.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use channel::bench::{BenchReport, Placement, Transport};

use super::stream;
use crate::model::Ctx;
use crate::out;
use lab_analysis::step6::stream::CAPACITY;
use lab_analysis::step6::{calls, BenchLoad, Evidence, TracedCell, TracedRun, Traces};
use lab_trace::procstat::{self, CpuTimes};

/// The message size of the traced cells (the goals' size).
const TRACED_SIZE: u64 = 64;
/// Strace lines kept per traced run, to show.
const SAMPLE_LINES: usize = 6;
/// Lines streamed through the small ring: quick, full.
const STREAM_LINES: (u64, u64) = (10_000, 50_000);
/// The stream is killed after this long.
const STREAM_BOUND: Duration = Duration::from_secs(120);

pub fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
    ctx.build_release(&["channel"])?;
    let program = ctx.bin("channel");
    let scratch = ctx.scratch("step6")?;
    let cpus = lab_trace::procstat::read_cpus_allowed(None)
        .context("cannot read this process's CPU affinity")?;
    let traces = match lab_trace::run::check() {
        Ok(()) => {
            let mut cells = Vec::new();
            for (transport, placement, round_trips) in plan(cpus.len() >= 2, ctx.quick) {
                out::progress(&format!(
                    "strace -f: {} on {}, {} B messages, {} and {} round trips",
                    transport.name(),
                    placement.name(),
                    TRACED_SIZE,
                    round_trips[0],
                    round_trips[1]
                ));
                cells.push(trace_cell(
                    &program,
                    transport,
                    placement,
                    round_trips,
                    scratch.path(),
                )?);
            }
            Traces::Traced { cells }
        }
        Err(e) => Traces::Unavailable {
            reason: e.to_string(),
        },
    };
    out::progress(&format!(
        "channel bench --json{} (timings share this machine's CPUs with everything else)",
        if ctx.quick { " --quick" } else { "" }
    ));
    let (bench, load) = bench_with_load(&program, ctx.quick, &cpus)?;
    let lines = if ctx.quick {
        STREAM_LINES.0
    } else {
        STREAM_LINES.1
    };
    out::progress(&format!(
        "streaming {lines} numbered lines through a {} B ring (channel send | channel recv)",
        CAPACITY
    ));
    let stream = stream::run(&program, scratch.path(), lines, STREAM_BOUND)?;
    Ok(Evidence {
        quick: ctx.quick,
        program,
        traces,
        bench,
        stream,
        load: Some(load),
    })
}

/// `channel bench` with what else the machine ran meanwhile: `/proc/stat` of the CPUs in
/// `cpus`, the bench's own CPU time (its and its reaped peers', the lab's children's time), the
/// lab's, and the load average, before and after.
fn bench_with_load(
    program: &Path,
    quick: bool,
    cpus: &[u32],
) -> anyhow::Result<(BenchReport, BenchLoad)> {
    let ours = |stat: Vec<CpuTimes>| -> Vec<CpuTimes> {
        stat.into_iter()
            .filter(|t| t.cpu.is_some_and(|c| cpus.contains(&c)))
            .collect()
    };
    let loadavg_before = loadavg()?;
    let (lab_before, children_before) = own_and_children_ticks()?;
    let before = ours(procstat::read_stat().context("cannot read /proc/stat")?);
    let t0 = Instant::now();
    let report = bench(program, quick)?;
    let seconds = t0.elapsed().as_secs_f64();
    let after = ours(procstat::read_stat().context("cannot read /proc/stat")?);
    let (lab_after, children_after) = own_and_children_ticks()?;
    let load = BenchLoad {
        clock_ticks_per_second: rustix::param::clock_ticks_per_second(),
        seconds,
        before,
        after,
        bench_ticks: children_after.saturating_sub(children_before),
        lab_ticks: lab_after.saturating_sub(lab_before),
        loadavg_before,
        loadavg_after: loadavg()?,
    };
    Ok((report, load))
}

/// The 1-minute load average, the first field of `/proc/loadavg`.
fn loadavg() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").context("cannot read /proc/loadavg")?;
    parse_loadavg(&text).with_context(|| format!("/proc/loadavg is not a load average: {text:?}"))
}

fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The lab's own CPU time and its reaped children's (`utime + stime`, `cutime + cstime` of
/// `/proc/self/stat`), ticks.
fn own_and_children_ticks() -> anyhow::Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc/self/stat")?;
    parse_own_and_children(&text)
        .with_context(|| format!("/proc/self/stat has no CPU times: {text:?}"))
}

/// Fields 14–17 of `/proc/PID/stat` (proc(5)): utime, stime, cutime, cstime. The command name
/// (field 2) may hold spaces and parentheses, so the fields are counted after its last `)`.
fn parse_own_and_children(text: &str) -> Option<(u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (the state) is the first after the name: field n is at index n - 3.
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    match fields[..] {
        [utime, stime, cutime, cstime] => Some((utime + stime, cutime + cstime)),
        _ => None,
    }
}

/// The cells to trace and their two round-trip counts. On two CPUs: every transport on two
/// CPUs, and ring-wait on one (where it sleeps every time). On one CPU only: every transport
/// there, the spinning ones with few round trips (each hand-off waits for the scheduler to
/// preempt the spinner: milliseconds).
fn plan(two_cpus: bool, quick: bool) -> Vec<(Transport, Placement, [u64; 2])> {
    let many = if quick { [100, 600] } else { [1000, 6000] };
    let few = [2, 12];
    if two_cpus {
        let mut cells: Vec<_> = Transport::ALL
            .into_iter()
            .map(|t| (t, Placement::TwoCpus, many))
            .collect();
        cells.push((Transport::RingWait, Placement::OneCpu, many));
        cells
    } else {
        Transport::ALL
            .into_iter()
            .map(|t| {
                let n = match t {
                    Transport::Cacheline | Transport::RingSpin => few,
                    _ => many,
                };
                (t, Placement::OneCpu, n)
            })
            .collect()
    }
}

fn trace_cell(
    program: &Path,
    transport: Transport,
    placement: Placement,
    round_trips: [u64; 2],
    scratch: &Path,
) -> anyhow::Result<TracedCell> {
    let size = if transport == Transport::Cacheline {
        8
    } else {
        TRACED_SIZE
    };
    let mut runs: Vec<TracedRun> = Vec::new();
    for n in round_trips {
        let args: Vec<String> = [
            "bench",
            "--only",
            transport.name(),
            "--size",
            &size.to_string(),
            "--placement",
            placement.name(),
            "--messages",
            &n.to_string(),
            "--json",
        ]
        .map(String::from)
        .to_vec();
        let traced = lab_trace::run::run(program, &args, "all", scratch)?;
        let command = format!("strace -f channel {}", args.join(" "));
        if !traced.status.success() {
            bail!(
                "`{command}` failed ({}): {}",
                traced.status,
                traced.stderr.lines().last().unwrap_or("").trim()
            );
        }
        let report: BenchReport = serde_json::from_str(traced.stdout.trim())
            .with_context(|| format!("`{command}` printed no BenchReport"))?;
        if report.rows.len() != 1 {
            bail!("`{command}` measured {} cells, not 1", report.rows.len());
        }
        let counts = calls::count(&traced.trace);
        // The long run shows the calls that grew since the short one.
        let sample = match runs.first() {
            Some(short) => {
                let keys = calls::growing(&short.counts, &counts, n - short.round_trips);
                calls::sample(&traced.trace, &keys, SAMPLE_LINES)
            }
            None => Vec::new(),
        };
        runs.push(TracedRun {
            command,
            round_trips: n,
            counts,
            sample,
        });
        let _ = std::fs::remove_file(&traced.trace_file);
    }
    Ok(TracedCell {
        transport,
        placement,
        size,
        runs,
    })
}

/// `channel bench --json [--quick]`; its progress goes to our stderr.
fn bench(program: &Path, quick: bool) -> anyhow::Result<BenchReport> {
    let mut cmd = Command::new(program);
    cmd.args(["bench", "--json"]);
    if quick {
        cmd.arg("--quick");
    }
    let output = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !output.status.success() {
        bail!("channel bench failed ({})", output.status);
    }
    serde_json::from_slice(&output.stdout).context("channel bench --json is not a BenchReport")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_and_children_times_are_read_after_the_command_name() {
        // A command name with a space and a parenthesis; utime 7, stime 3, cutime 120, cstime 30.
        let stat = "4242 (x) y) S 1 4242 4242 0 -1 4194304 100 0 0 0 7 3 120 30 20 0 1 0 99 0 0";
        assert_eq!(parse_own_and_children(stat), Some((10, 150)));
        assert_eq!(parse_own_and_children("4242 (x) S 1"), None);
        assert_eq!(parse_loadavg("4.81 3.02 2.50 3/412 9999\n"), Some(4.81));
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn the_plan_traces_every_transport_and_ring_wait_asleep() {
        let two = plan(true, true);
        assert_eq!(two.len(), 6);
        assert!(two.contains(&(Transport::RingWait, Placement::OneCpu, [100, 600])));
        let one = plan(false, false);
        assert!(one.iter().all(|c| c.1 == Placement::OneCpu));
        assert!(one.contains(&(Transport::RingSpin, Placement::OneCpu, [2, 12])));
        assert!(one.contains(&(Transport::Pipe, Placement::OneCpu, [1000, 6000])));
    }
}
