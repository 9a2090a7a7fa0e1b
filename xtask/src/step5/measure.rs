//! Step 5's measurements: the machine, the calibration, the protocol trace, the sweep and the
//! disassembly, into [`Evidence`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use lab_trace::procstat;
use lab_trace::Syscall;

use super::launch::{self, Bounds, Launch};
use super::objdump;
use crate::model::Ctx;
use crate::out;
use lab_analysis::step5::{
    CalibrationRun, Disassembly, Evidence, Machine, Mode, RaceRecord, RaceRun, Racer, Sizing,
    Traced, COURSE_FILE,
};

/// How long a race of one should last: a full run, and `--quick`.
const GOAL_SECONDS: f64 = 1.0;
const QUICK_GOAL_SECONDS: f64 = 0.2;
/// A calibration race is long enough when its loop ran this long (timer and start-up noise are
/// then small against it).
const CALIBRATION_SECONDS: f64 = 0.05;
/// The target of the traced 1-participant run of our racer (only its system calls matter).
const TRACED_TARGET: i64 = 1000;
/// The calls that show the protocol on the race file.
const PROTOCOL_CALLS: &str = "stat,lstat,newfstatat,statx,access,faccessat,faccessat2,openat,\
                              open,creat,flock,lseek,write,ftruncate,mmap,munmap,link,linkat,\
                              unlink,unlinkat,rename,renameat,renameat2,close";

pub fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
    ctx.build_release(&["race"])?;
    let race = ctx.bin("race");
    let machine = machine()?;
    let theirs = match &ctx.options.racer {
        Some(path) => {
            if ctx.options.target.is_some() {
                bail!("--target is for our racer; the target of --racer is fixed in its code");
            }
            Some(their_racer(path)?)
        }
        None => None,
    };
    let counts = counts(ctx.quick, machine.affinity.len());
    let scratch = ctx.scratch("step5")?;
    let (racer, sizing, protocol, races) = match &theirs {
        Some(program) => {
            let args = ctx.options.args.clone();
            out::progress(&format!("tracing `{} 1` (its protocol)", program.display()));
            let protocol = trace_protocol(program, &args, scratch.path())?;
            let mut races = Vec::new();
            for &n in &counts {
                out::progress(&format!("race: {n} instance(s) of {}", program.display()));
                let run = run_one(program, n, &args, scratch.path(), &format!("racer-{n}"))?;
                races.push(RaceRecord {
                    participants: n,
                    mode: Mode::Racer,
                    target: None,
                    run,
                });
            }
            let racer = Racer::Theirs {
                program: program.clone(),
                args,
            };
            (racer, Sizing::InTheRacer, protocol, races)
        }
        None => {
            let protocol =
                trace_protocol(&race, &our_args(Mode::Racy, TRACED_TARGET), scratch.path())?;
            let sizing = size(ctx, &race, scratch.path())?;
            let races = sweep(&race, &counts, &sizing, scratch.path())?;
            (
                Racer::Ours {
                    program: race.clone(),
                },
                sizing,
                protocol,
                races,
            )
        }
    };
    let mut loops = objdump::functions(&race, &["race_racy", "race_atomic"]).into_iter();
    let (their_listing, their_locked) = match theirs.as_deref().map(objdump::locked_instructions) {
        Some((listing, locked)) => (Some(listing), locked),
        None => (None, None),
    };
    let disassembly = Disassembly {
        racy: loops.next().context("no listing")?,
        atomic: loops.next().context("no listing")?,
        theirs: their_listing,
        their_locked,
    };
    Ok(Evidence {
        machine,
        racer,
        sizing,
        protocol,
        races,
        disassembly,
    })
}

/// The participant counts: 1 to 10, or (quick) 1, 2 and one more than the CPUs the racers may
/// use, so that at least one race has more racers than CPUs.
fn counts(quick: bool, cpus: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = if quick {
        vec![1, 2, (cpus + 1).clamp(3, 10)]
    } else {
        (1..=10).collect()
    };
    counts.dedup();
    counts
}

fn machine() -> anyhow::Result<Machine> {
    let stat = procstat::read_stat().context("cannot read /proc/stat")?;
    Ok(Machine {
        affinity: procstat::read_cpus_allowed(None).context("cannot read the affinity mask")?,
        cpus_online: stat.iter().filter(|t| t.cpu.is_some()).count(),
        clock_ticks_per_second: rustix::param::clock_ticks_per_second(),
        cache_line: std::fs::read_to_string(
            "/sys/devices/system/cpu/cpu0/cache/index0/coherency_line_size",
        )
        .ok()
        .and_then(|s| s.trim().parse().ok()),
    })
}

/// Someone else's racer, as an absolute path (it runs in a scratch directory).
fn their_racer(path: &Path) -> anyhow::Result<PathBuf> {
    crate::disktable_steps::program::executable(path)
        .map_err(|why| anyhow::anyhow!("--racer {why}"))
}

/// Our racer's arguments after N.
fn our_args(mode: Mode, target: i64) -> Vec<String> {
    let mode = if mode == Mode::Atomic {
        "atomic"
    } else {
        "racy"
    };
    ["--mode", mode, "--target", &target.to_string(), "--json"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--join-timeout".to_string(), "120".to_string()])
        .collect()
}

/// Runs one race in a fresh subdirectory of `scratch`.
fn run_one(
    program: &Path,
    n: usize,
    args: &[String],
    scratch: &Path,
    name: &str,
) -> anyhow::Result<RaceRun> {
    let dir = scratch.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let run = launch::race(&Launch {
        program,
        participants: n,
        args: args.to_vec(),
        dir: &dir,
        trace: None,
        bounds: Bounds::RACE,
    });
    let _ = std::fs::remove_dir_all(&dir);
    run
}

/// Our racer's `--json` documents, into the instances (a missing field is an error naming it).
fn with_reports(mut run: RaceRun) -> anyhow::Result<RaceRun> {
    for i in &mut run.instances {
        if i.end == (lab_analysis::step5::End::Exited { code: 0 }) {
            let report: race::Report =
                serde_json::from_str(i.stdout.trim()).with_context(|| {
                    format!(
                        "race (pid {}) printed an odd report: {:?}",
                        i.pid,
                        i.stdout.trim()
                    )
                })?;
            i.report = Some(report);
        }
    }
    Ok(run)
}

/// Chooses the targets: `--target`, or from calibration races of one.
fn size(ctx: &Ctx, race: &Path, scratch: &Path) -> anyhow::Result<Sizing> {
    if let Some(target) = ctx.options.target {
        if target < 1 {
            bail!("--target must be at least 1, not {target}");
        }
        return Ok(Sizing::Given { target });
    }
    let goal_seconds = if ctx.quick {
        QUICK_GOAL_SECONDS
    } else {
        GOAL_SECONDS
    };
    let mut runs = Vec::new();
    let mut targets = [0i64; 2];
    for (slot, mode) in [Mode::Racy, Mode::Atomic].into_iter().enumerate() {
        let mut target: i64 = 4_000_000;
        loop {
            out::progress(&format!("calibrating: 1 {} racer to {target}", mode.name()));
            let run = with_reports(run_one(
                race,
                1,
                &our_args(mode, target),
                scratch,
                "calibrate",
            )?)?;
            let seconds = run
                .instances
                .first()
                .and_then(|i| i.report.as_ref())
                .map(|r| r.seconds)
                .context("the calibration race of one failed")?;
            runs.push(CalibrationRun {
                mode,
                target,
                seconds,
            });
            if seconds >= CALIBRATION_SECONDS || target >= 1 << 40 {
                targets[slot] = scaled(target, seconds, goal_seconds);
                break;
            }
            let factor = (2.0 * CALIBRATION_SECONDS / seconds.max(1e-6)).clamp(2.0, 50.0);
            target = (target as f64 * factor) as i64;
        }
    }
    Ok(Sizing::Calibrated {
        goal_seconds,
        runs,
        racy_target: targets[0],
        atomic_target: targets[1],
    })
}

/// The target that takes `goal` seconds at the rate `target / seconds`, to two significant
/// digits (at least 1,000).
pub fn scaled(target: i64, seconds: f64, goal: f64) -> i64 {
    let wanted = target as f64 * goal / seconds.max(1e-9);
    let magnitude = 10f64.powi(wanted.log10().floor() as i32 - 1).max(1.0);
    let rounded = (wanted / magnitude).round() * magnitude;
    (rounded.min(race::DEFAULT_TARGET as f64 * 1000.0) as i64).max(1000)
}

/// The sweep: every count in racy mode, then in atomic mode.
fn sweep(
    race: &Path,
    counts: &[usize],
    sizing: &Sizing,
    scratch: &Path,
) -> anyhow::Result<Vec<RaceRecord>> {
    let mut races = Vec::new();
    for mode in [Mode::Racy, Mode::Atomic] {
        let target = match (sizing, mode) {
            (Sizing::Calibrated { racy_target, .. }, Mode::Racy) => *racy_target,
            (Sizing::Calibrated { atomic_target, .. }, _) => *atomic_target,
            (Sizing::Given { target }, _) => *target,
            (Sizing::InTheRacer, _) => bail!("our racer needs a target"),
        };
        for &n in counts {
            out::progress(&format!(
                "race: {n} participant(s), {}, to {target}",
                mode.name()
            ));
            let name = format!("{}-{n}", mode.name());
            let run = with_reports(run_one(race, n, &our_args(mode, target), scratch, &name)?)?;
            races.push(RaceRecord {
                participants: n,
                mode,
                target: Some(target),
                run,
            });
        }
    }
    Ok(races)
}

/// Runs a 1-participant race with its first (only) instance under strace and keeps the calls
/// that touched the race file.
fn trace_protocol(program: &Path, args: &[String], scratch: &Path) -> anyhow::Result<Traced> {
    if let Err(e) = lab_trace::run::check() {
        return Ok(Traced::Unavailable {
            reason: e.to_string(),
        });
    }
    let dir = scratch.join("traced");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let out = scratch.join("protocol.strace");
    let run = launch::race(&Launch {
        program,
        participants: 1,
        args: args.to_vec(),
        dir: &dir,
        trace: Some((PROTOCOL_CALLS, out.clone())),
        bounds: Bounds::RACE,
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    let trace = lab_trace::run::parse_file(&out)?;
    let command = format!(
        "{} 1 {}",
        program
            .file_name()
            .map_or("racer".into(), |n| n.to_string_lossy()),
        args.join(" ")
    );
    if let Some(i) = run.instances.first() {
        if !matches!(i.end, lab_analysis::step5::End::Exited { code: 0 }) {
            return Ok(Traced::Unavailable {
                reason: format!(
                    "`{command}` under strace ended with {:?}: {}",
                    i.end,
                    i.stderr.trim()
                ),
            });
        }
    }
    Ok(Traced::Traced {
        command: command.trim_end().to_string(),
        calls: on_course_file(&trace.calls),
    })
}

/// The calls that touched the race file: by name (stat, link, unlink…), or through the
/// descriptor an `openat` of it returned and that descriptor's mappings ([`lab_trace::fds`]).
/// Our racer prepares the file under a temporary name containing the course's (`.racecourse.bin.PID.new`).
pub fn on_course_file(calls: &[Syscall]) -> Vec<Syscall> {
    let is_course = |p: &str| {
        Path::new(p)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(COURSE_FILE))
    };
    let by_fd = lab_trace::fds::file_calls(calls, is_course);
    calls
        .iter()
        .filter(|c| {
            by_fd.iter().any(|f| std::ptr::eq(*f, *c))
                || (names_a_path(&c.name)
                    && (0..c.args.len()).any(|i| c.arg_str(i).is_some_and(is_course)))
        })
        .cloned()
        .collect()
}

/// Calls that take a path (not a descriptor, not a buffer that could hold the name).
fn names_a_path(call: &str) -> bool {
    ["stat", "access", "link", "rename"]
        .iter()
        .any(|k| call.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_scale_to_the_goal_with_two_digits() {
        assert_eq!(scaled(4_000_000, 0.05, 1.0), 80_000_000);
        assert_eq!(scaled(100_000_000, 0.048, 1.0), 2_100_000_000);
        assert_eq!(scaled(4_000_000, 0.0123, 0.2), 65_000_000);
        assert_eq!(scaled(10, 1.0, 0.2), 1000);
    }

    #[test]
    fn quick_counts_exceed_the_cpus() {
        assert_eq!(counts(true, 2), vec![1, 2, 3]);
        assert_eq!(counts(true, 1), vec![1, 2, 3]);
        assert_eq!(counts(true, 4), vec![1, 2, 5]);
        assert_eq!(counts(true, 64), vec![1, 2, 10]);
        assert_eq!(counts(false, 2).len(), 10);
    }

    #[test]
    fn follows_the_race_file_by_name_descriptor_and_mapping() {
        let calls = lab_trace::strace::parse(
            r#"100 newfstatat(AT_FDCWD, "racecourse.bin", 0x7ffc, 0) = -1 ENOENT (No such file or directory)
100 openat(AT_FDCWD, "racecourse.bin", O_RDWR|O_CREAT, 0755) = 3
100 ftruncate(3, 96) = 0
100 write(1, "hello", 5) = 5
100 write(2, "racecourse.bin", 14) = 14
100 mmap(NULL, 96, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = 0x7f0000000000
100 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY) = 4
100 close(4) = 0
100 unlink("racecourse.bin") = 0
"#,
        );
        let kept = on_course_file(&calls);
        let names: Vec<&str> = kept.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["newfstatat", "openat", "ftruncate", "mmap", "unlink"]
        );
    }
}
