//! `step5.racer` / `step5.atomic-racer`: the racer raced with 1, 2 and 3 participants, each race
//! in a fresh directory, every instance confined and traced (its calls that write paths only, so
//! the race loop runs at full speed).
//!
//! The first instance is started alone: with the course's protocol it is the one for which
//! `stat("racecourse.bin")` fails, and it creates the file without `O_EXCL`, so instances
//! started at the very same moment could all lead. Once the lab can map the file (read-only, as
//! an observer) and it holds a count, the others are started back to back. The race is bounded
//! by its progress, not by wall time: when nothing in the file moves for [`STALL`], every
//! instance is killed. A race whose instances hang before it began, with participants left
//! (a plain `participants -= 1` lost an arrival: the course's own protocol), is run once more,
//! and so is a race the lab saw no racing in ([`Race::not_raced`]: a starved instance).

use std::path::Path;
use std::time::{Duration, Instant};

use super::judge::{self, Check, Race, RaceOutcome, RacerKind};
use super::sandbox::{Job, Sandbox};
use crate::step5::launch::{
    arrivals_left, counters, wait_for_arrival, wait_for_setup, watch, Missed,
};
use lab_analysis::step5::COURSE_FILE;

/// Nothing in the race file moved for this long: the racers are hung.
const STALL: Duration = Duration::from_secs(10);
/// The first instance must have set up the race file within this long.
const APPEAR: Duration = Duration::from_secs(10);
/// The calls each instance is traced for: those that write a path (rare, so the race loop runs
/// at full speed).
fn filter() -> String {
    format!("open,openat,{}", judge::PATH_WRITE_FILTER)
}

pub fn check(
    sandbox: &Sandbox,
    program: &Path,
    shown: Option<String>,
    kind: RacerKind,
) -> anyhow::Result<Check> {
    let mut races = Vec::new();
    for n in 1..=3 {
        let mut one = race(sandbox, program, n)?;
        let lost_arrival = matches!(one.outcome, RaceOutcome::Hung { .. })
            && one.total == Some(0)
            && one.participants_left.is_some_and(|p| p > 0);
        // A race in which the lab saw no racing (a participant made no increment, or they took
        // turns) is run once more: a loaded machine may have starved one instance. A racer
        // that does not race does not race twice.
        if lost_arrival || (one.outcome == RaceOutcome::Finished && one.not_raced().is_some()) {
            one = race(sandbox, program, n)?;
        }
        let stop = one.outcome != RaceOutcome::Finished || one.total == Some(0);
        races.push(one);
        if stop {
            break;
        }
    }
    // A racy racer whose instances happened not to overlap (a loaded machine) gets a second
    // chance to show its losses; the atomic one is judged on every race it ran.
    let finished = races.len() == 3 && races.iter().all(|r| r.outcome == RaceOutcome::Finished);
    let lost = races
        .iter()
        .any(|r| r.participants >= 2 && r.lost().is_some_and(|l| l > 0));
    if kind == RacerKind::Racy && finished && !lost {
        for n in 2..=3 {
            races.push(race(sandbox, program, n)?);
        }
    }
    let locked = crate::step5::objdump::objdump(program)
        .map(|text| crate::step5::objdump::race_instructions(&text));
    Ok(judge::judge_racer(
        shown,
        kind,
        &races,
        match &locked {
            Ok(l) => Ok(l.as_slice()),
            Err(why) => Err(why.as_str()),
        },
    ))
}

/// One instance while it runs.
struct Instance {
    job: Job,
    trace: std::path::PathBuf,
    started: Instant,
    ended: Option<(Instant, String)>,
}

fn race(sandbox: &Sandbox, program: &Path, n: usize) -> anyhow::Result<Race> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static RACE: AtomicU32 = AtomicU32::new(0);
    let dir = sandbox
        .scratch()
        .join(format!("race-{}", RACE.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir)?;
    let course = dir.join(COURSE_FILE);
    let args = [n.to_string()];
    let filter = filter();
    let start = |instances: &mut Vec<Instance>| -> anyhow::Result<()> {
        let trace = sandbox.trace_file();
        let job = sandbox.spawn(program, &args, &dir, Some((&filter, &trace)), &[])?;
        instances.push(Instance {
            job,
            trace,
            started: Instant::now(),
            ended: None,
        });
        Ok(())
    };
    let mut instances = Vec::new();
    start(&mut instances)?;
    // The first instance alone, until the lab can map the file and it holds a count.
    let t0 = Instant::now();
    let setup = wait_for_setup(&course, APPEAR, t0, || poll(&mut instances))?;
    let view = setup.view;
    let no_race = match setup.missed {
        Some(Missed::TimedOut) => {
            Some("the first instance did not set up racecourse.bin within 10 s")
        }
        // Alone, a racer may finish before the lab maps its file: a race it did not see, not a
        // failure (the races of 2 and 3 wait for each other, and are seen).
        Some(Missed::Ended)
            if view.is_none()
                && !(n == 1
                    && instances[0]
                        .ended
                        .as_ref()
                        .is_some_and(|(_, how)| how == "exited with status 0")) =>
        {
            Some("the first instance ended without setting up racecourse.bin")
        }
        _ => None,
    };
    if no_race.is_none() && poll(&mut instances)? > 0 {
        // One at a time, after the first's own arrival: the course's racer takes its arrival
        // with a plain load and store.
        let count = i32::try_from(n).ok();
        wait_for_arrival(view.as_ref(), count, || poll(&mut instances))?;
        for _ in 1..n {
            let left = arrivals_left(view.as_ref());
            start(&mut instances)?;
            wait_for_arrival(view.as_ref(), left, || poll(&mut instances))?;
        }
    }
    // Watch until every instance has ended, nothing moves for STALL, or one floods.
    let mut flooded = None;
    let mut overlap = judge::Overlap::default();
    let hung = match no_race {
        None => {
            let watched = watch(view.as_ref(), n, STALL, Duration::MAX, t0, || {
                let running = poll(&mut instances)?;
                flooded = instances
                    .iter()
                    .position(|i| i.job.output_bytes() > super::sandbox::KEEP_BYTES as u64);
                Ok((running, flooded.is_some()))
            })?;
            overlap = watched.overlap;
            watched.quiet
        }
        Some(_) => None,
    };
    for i in instances.iter_mut().filter(|i| i.ended.is_none()) {
        i.job.kill();
        i.ended = Some((Instant::now(), "was killed".into()));
    }
    let end = view.as_ref().and_then(counters);
    let sampled = (n > 1 && end.is_some() && no_race.is_none()).then_some(overlap);
    let outside_writes = wrap_up(&mut instances, sandbox, &dir);
    let outcome = outcome(&instances, no_race, hung, flooded);
    let final_participant_seconds = instances
        .last()
        .filter(|_| outcome == RaceOutcome::Finished)
        .and_then(|i| {
            i.ended
                .as_ref()
                .map(|(at, _)| (*at - i.started).as_secs_f64())
        });
    drop(view);
    drop(instances);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Race {
        participants: n,
        outcome,
        participants_left: end.as_ref().map(|c| c.participants),
        total: end.as_ref().map(|c| c.total),
        winnings: end.map(|c| c.winnings[..n].to_vec()).unwrap_or_default(),
        final_participant_seconds,
        outside_writes,
        overlap: sampled,
    })
}

/// How the race ended: it never began (`no_race`), hung, one instance failed or flooded
/// (`flooded`: its index), or it finished.
fn outcome(
    instances: &[Instance],
    no_race: Option<&str>,
    hung: Option<f64>,
    flooded: Option<usize>,
) -> RaceOutcome {
    let failed = match flooded {
        Some(i) => Some(format!(
            "(the {}th started) flooded its output and was killed",
            i + 1
        )),
        None => instances
            .iter()
            .filter_map(|i| i.ended.as_ref())
            .find(|(_, how)| how != "exited with status 0")
            .map(|(_, how)| how.clone()),
    };
    match (no_race, hung, failed) {
        (Some(reason), _, _) => RaceOutcome::NoRace {
            reason: match instances.first().and_then(|i| i.ended.as_ref()) {
                Some((_, how)) => format!("{reason} (it {how})"),
                None => reason.to_string(),
            },
        },
        (None, Some(stalled_seconds), _) => RaceOutcome::Hung { stalled_seconds },
        (None, None, Some(how)) => RaceOutcome::Failed { how },
        (None, None, None) => RaceOutcome::Finished,
    }
}

/// Notes on each failed instance what it said last on stderr (`usage: racer N`), and returns
/// what the instances wrote outside the scratch directory (their traces are removed).
fn wrap_up(instances: &mut [Instance], sandbox: &Sandbox, dir: &Path) -> Vec<String> {
    // What a failed instance said last on stderr (`usage: racer N`).
    for i in instances.iter_mut() {
        let said = i.job.stderr();
        let last = said.lines().rev().find(|l| !l.trim().is_empty());
        if let (Some((_, how)), Some(last)) = (i.ended.as_mut(), last) {
            if how != "exited with status 0" {
                let last: String = last.trim().chars().take(120).collect();
                how.push_str(&format!(" (stderr: {last:?})"));
            }
        }
    }
    let scratch = sandbox.scratch().display().to_string();
    let cwd = dir.display().to_string();
    let mut outside_writes = Vec::new();
    for i in instances.iter() {
        let trace = lab_trace::run::parse_file(&i.trace).unwrap_or_default();
        outside_writes.extend(judge::outside_writes(&trace, &scratch, &cwd));
        let _ = std::fs::remove_file(&i.trace);
    }
    outside_writes
}

/// Notes the instances that ended since the last call; returns how many still run.
fn poll(instances: &mut [Instance]) -> anyhow::Result<usize> {
    let mut running = 0;
    for i in instances.iter_mut().filter(|i| i.ended.is_none()) {
        match i.job.try_wait()? {
            Some(status) => {
                use std::os::unix::process::ExitStatusExt as _;
                let how = match (status.code(), status.signal()) {
                    (Some(c), _) => format!("exited with status {c}"),
                    (None, Some(s)) => format!(
                        "was killed by {}",
                        crate::disktable_steps::run::signal_name(s)
                    ),
                    (None, None) => "ended".into(),
                };
                i.ended = Some((Instant::now(), how));
            }
            None => running += 1,
        }
    }
    Ok(running)
}
