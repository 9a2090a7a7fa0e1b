//! Running one race: N instances of a racer in a scratch directory, watched.
//!
//! The first instance is started alone: with the course's protocol the first instance is the one
//! for which `stat("racecourse.bin")` fails, and it creates the file without `O_EXCL`, so two
//! instances started at the very same moment can both find no file and both lead (both set
//! `participants = N`: the count then never reaches 0). Once the file exists, is 96 bytes and
//! holds a count (or the race has begun), the other N-1 are started one at a time, each as soon
//! as the one before it has taken its arrival ([`wait_for_arrival`]): the course's racer takes
//! it with a plain load and store of the count, so two instances arriving at the same moment can
//! lose one (the count never reaches 0 and every racer spins until the lab kills them).
//!
//! The lab maps the file itself, read-only ([`SharedView`]), and watches the counters: a race in
//! which nothing moves for [`Bounds::stall`] while instances still run is hung (a racer that lost
//! an arrival spins forever), and they are killed. Each instance's end is seen with
//! `waitid(WNOWAIT)`, its final CPU time read from its zombie's `/proc/PID/stat`, and only then is
//! it reaped. `/proc/stat` is read just before the first start and just after the last end.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use lab_trace::procstat::{self, CpuTimes, ProcessStat};
use lab_trace::shared::SharedView;

use crate::interrupt;
use lab_analysis::step5::{
    Counters, CpuWindow, End, Instance, Observation, Overlap, RaceRun, COURSE_FILE,
};

/// `sizeof(struct RaceCourse)`.
const COURSE_SIZE: usize = 96;
/// How often the lab looks at the instances and the counters while a race runs.
const POLL: Duration = Duration::from_millis(2);
/// How much of an instance's output is kept.
const OUTPUT_KEEP: usize = 4096;

/// How long to wait for what.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// For the first instance to create and set up the race file.
    pub appear: Duration,
    /// With nothing in the file moving and instances still running: they are hung.
    pub stall: Duration,
    /// For the whole race, whatever moves.
    pub limit: Duration,
}

impl Bounds {
    pub const RACE: Bounds = Bounds {
        appear: Duration::from_secs(10),
        stall: Duration::from_secs(10),
        limit: Duration::from_secs(900),
    };
}

/// One race to run: `program N ARGS...` in `dir`, N times.
pub struct Launch<'a> {
    pub program: &'a Path,
    pub participants: usize,
    pub args: Vec<String>,
    /// The working directory, where `racecourse.bin` appears (empty before the race).
    pub dir: &'a Path,
    /// Run the first instance under `strace -f -e trace=FILTER -o OUT`.
    pub trace: Option<(&'a str, PathBuf)>,
    pub bounds: Bounds,
}

/// An instance while it runs.
struct Running {
    child: Child,
    started: f64,
    stdout: PathBuf,
    stderr: PathBuf,
    done: Option<Ended>,
}

/// What the lab read of an instance when it ended (before reaping it).
struct Ended {
    at: f64,
    end: End,
    stat: Option<ProcessStat>,
    affinity: Option<Vec<u32>>,
}

/// The instances; every one still running is killed (its whole process group) and reaped when
/// this is dropped, so no error path leaves a racer behind. Each is started and ended through
/// [`interrupt`]'s registry, so a Ctrl-C of the lab kills them too.
struct Instances(Vec<Running>);

impl Drop for Instances {
    fn drop(&mut self) {
        for r in self.0.iter_mut().filter(|r| r.done.is_none()) {
            let _ = interrupt::end_group(&mut r.child);
        }
    }
}

/// Runs the race and returns what was seen. Errors are the lab's own failures (cannot start the
/// program, cannot read /proc); a racer that fails or hangs is a result.
pub fn race(launch: &Launch<'_>) -> anyhow::Result<RaceRun> {
    let course = launch.dir.join(COURSE_FILE);
    let stat_before = procstat::read_stat().context("cannot read /proc/stat")?;
    let lab_before = own_ticks()?;
    let t0 = Instant::now();
    let mut instances = Instances(Vec::with_capacity(launch.participants));
    instances.0.push(start(launch, 0, 0.0)?);
    let setup = wait_for_setup(&course, launch.bounds.appear, t0, || {
        poll_ends(&mut instances, t0)
    })?;
    if setup.missed == Some(Missed::TimedOut) {
        kill_all(&mut instances, t0, launch.bounds.appear.as_secs_f64())?;
    }
    if setup.missed.is_none() {
        // The first instance's own arrival (the count it set, taken down by one) comes first.
        let n = i32::try_from(launch.participants).ok();
        wait_for_arrival(setup.view.as_ref(), n, || poll_ends(&mut instances, t0))?;
        for i in 1..launch.participants {
            let left = arrivals_left(setup.view.as_ref());
            let at = t0.elapsed().as_secs_f64();
            instances.0.push(start(launch, i, at)?);
            wait_for_arrival(setup.view.as_ref(), left, || poll_ends(&mut instances, t0))?;
        }
    }
    let watched = watch(
        setup.view.as_ref(),
        launch.participants,
        launch.bounds.stall,
        launch.bounds.limit,
        t0,
        || Ok((poll_ends(&mut instances, t0)?, false)),
    )?;
    if let Some(quiet) = watched.quiet {
        kill_all(&mut instances, t0, quiet)?;
    }
    let race_started_at = watched.race_started_at;
    let stat_after = procstat::read_stat().context("cannot read /proc/stat")?;
    let lab_ticks = own_ticks()?.saturating_sub(lab_before);

    let overlap = (launch.participants > 1 && setup.view.is_some()).then_some(watched.overlap);
    let observer = match (setup.view, setup.missed) {
        (Some(v), _) => Observation::Mapped {
            mapped_at: setup.mapped_at,
            race_started_at,
            last: counters(&v).context("the race file's mapping is shorter than 96 bytes")?,
            name_gone: !course.exists(),
            maps_line: own_maps_line(v.address()),
        },
        (None, reason) => Observation::Missed {
            reason: match reason {
                Some(Missed::Ended) if course.exists() => {
                    "the first instance ended with racecourse.bin shorter than its 96 bytes"
                }
                Some(Missed::Ended) => {
                    "the first instance ended before racecourse.bin appeared with its 96 bytes \
                     (the lab looked every 100 µs from its start)"
                }
                Some(Missed::TimedOut) => {
                    "the first instance did not set up racecourse.bin in time"
                }
                None => "racecourse.bin never appeared with its 96 bytes",
            }
            .to_string(),
        },
    };
    let file_left = course.exists();
    if file_left {
        std::fs::remove_file(&course)
            .with_context(|| format!("cannot remove {}", course.display()))?;
    }
    let instances = finish(std::mem::take(&mut instances.0))?;
    let seconds = instances.iter().map(|i| i.ended).fold(0.0, f64::max);
    let cpus = mask_of(&instances)?;
    let pick = |stat: &[CpuTimes]| -> Vec<CpuTimes> {
        stat.iter()
            .filter(|t| t.cpu.is_some_and(|c| cpus.contains(&c)))
            .copied()
            .collect()
    };
    Ok(RaceRun {
        instances,
        observer,
        cpu: CpuWindow {
            seconds,
            before: pick(&stat_before),
            after: pick(&stat_after),
            lab_ticks,
        },
        file_left,
        overlap,
    })
}

/// What the lab had once the first instance set the race up (or failed to).
pub(crate) struct Setup {
    /// The lab's mapping of the race file.
    pub view: Option<SharedView>,
    /// When it was mapped, seconds after the first start.
    pub mapped_at: f64,
    /// Why the other instances must not be started.
    pub missed: Option<Missed>,
}

/// How the first instance failed to set the race up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missed {
    /// It ended before the file held a count.
    Ended,
    /// It was still running after the bound, the file without a count.
    TimedOut,
}

/// The first instance alone, until the file holds a count (or the race began). `poll` notes
/// the instances that ended and returns how many still run. Shared by run-step 5's races and
/// the check's.
pub(crate) fn wait_for_setup(
    course: &Path,
    appear: Duration,
    t0: Instant,
    mut poll: impl FnMut() -> anyhow::Result<usize>,
) -> anyhow::Result<Setup> {
    let mut setup = Setup {
        view: None,
        mapped_at: 0.0,
        missed: None,
    };
    loop {
        if setup.view.is_none() {
            if let Ok(v) = SharedView::open(course, COURSE_SIZE) {
                setup.view = Some(v);
                setup.mapped_at = t0.elapsed().as_secs_f64();
            }
        }
        if let Some(v) = &setup.view {
            if counters(v).is_some_and(|c| c.participants != 0 || c.total != 0) {
                return Ok(setup);
            }
        }
        if poll()? == 0 {
            setup.missed = Some(Missed::Ended);
            return Ok(setup);
        }
        if t0.elapsed() > appear {
            setup.missed = Some(Missed::TimedOut);
            return Ok(setup);
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// How long the lab waits for a started instance to take its arrival before it starts the next
/// anyway (a racer of another protocol may never change the count).
const ARRIVAL: Duration = Duration::from_secs(2);

/// The arrivals the race file still waits for (its count), when the lab has it mapped and the
/// race has not begun.
pub(crate) fn arrivals_left(view: Option<&SharedView>) -> Option<i32> {
    view.and_then(counters)
        .filter(|c| c.total == 0 && c.participants > 0)
        .map(|c| c.participants)
}

/// After starting one more instance: waits (at most [`ARRIVAL`]) until the count has gone below
/// `left`, the race has begun, or no instance runs (`poll` returns how many still run).
pub(crate) fn wait_for_arrival(
    view: Option<&SharedView>,
    left: Option<i32>,
    mut poll: impl FnMut() -> anyhow::Result<usize>,
) -> anyhow::Result<()> {
    let (Some(view), Some(left)) = (view, left) else {
        return Ok(());
    };
    let t = Instant::now();
    while t.elapsed() < ARRIVAL {
        if counters(view).is_some_and(|c| c.participants < left || c.total != 0) {
            return Ok(());
        }
        if poll()? == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(())
}

/// How watching a race ended.
pub(crate) struct Watched {
    /// When `total` was first seen non-zero, seconds after `t0`.
    pub race_started_at: Option<f64>,
    /// Nothing in the file moved for this long (more than the stall bound), or the race passed
    /// its overall limit (`over_limit`); the instances still run (the caller kills them).
    pub quiet: Option<f64>,
    pub over_limit: bool,
    /// Between successive reads: intervals in which the winnings of some id, and of two or
    /// more of the first `ids`, grew.
    pub overlap: Overlap,
}

/// Watches until every instance has ended (`poll` returns how many still run, and whether to
/// stop now), or nothing in the file moved for `stall`, or the race passed `limit`. Shared by
/// run-step 5's races and the check's.
pub(crate) fn watch(
    view: Option<&SharedView>,
    ids: usize,
    stall: Duration,
    limit: Duration,
    t0: Instant,
    mut poll: impl FnMut() -> anyhow::Result<(usize, bool)>,
) -> anyhow::Result<Watched> {
    let mut watched = Watched {
        race_started_at: None,
        quiet: None,
        over_limit: false,
        overlap: Overlap::default(),
    };
    let mut last_seen = view.and_then(counters);
    let mut moved = Instant::now();
    loop {
        let (running, stop) = poll()?;
        if running == 0 {
            return Ok(watched);
        }
        if let Some(v) = view {
            let now = counters(v);
            if watched.race_started_at.is_none() && now.as_ref().is_some_and(|c| c.total != 0) {
                watched.race_started_at = Some(t0.elapsed().as_secs_f64());
            }
            if let (Some(a), Some(b)) = (&now, &last_seen) {
                let grew = a
                    .winnings
                    .iter()
                    .zip(&b.winnings)
                    .take(ids)
                    .filter(|(a, b)| a > b)
                    .count();
                watched.overlap.moving += usize::from(grew > 0);
                watched.overlap.together += usize::from(grew > 1);
            }
            if now != last_seen {
                last_seen = now;
                moved = Instant::now();
            }
        }
        if view.is_some() && moved.elapsed() > stall {
            watched.quiet = Some(moved.elapsed().as_secs_f64());
            return Ok(watched);
        }
        if t0.elapsed() > limit {
            watched.quiet = Some(t0.elapsed().as_secs_f64());
            watched.over_limit = true;
            return Ok(watched);
        }
        if stop {
            return Ok(watched);
        }
        std::thread::sleep(POLL);
    }
}

/// Starts instance `index` (in its own process group, so that killing it kills what it started).
fn start(launch: &Launch<'_>, index: usize, at: f64) -> anyhow::Result<Running> {
    let stdout = launch.dir.join(format!(".out-{index}"));
    let stderr = launch.dir.join(format!(".err-{index}"));
    let mut cmd = match (&launch.trace, index) {
        (Some((filter, out)), 0) => {
            lab_trace::run::command(launch.program, [] as [&str; 0], filter, out)
        }
        _ => Command::new(launch.program),
    };
    cmd.arg(launch.participants.to_string())
        .args(&launch.args)
        .current_dir(launch.dir)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).context("cannot create an output file")?)
        .stderr(File::create(&stderr).context("cannot create an output file")?);
    let child = interrupt::spawn_group(&mut cmd)
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", launch.program.display()))?;
    Ok(Running {
        child,
        started: at,
        stdout,
        stderr,
        done: None,
    })
}

/// The counters of the mapped race file.
pub(crate) fn counters(view: &SharedView) -> Option<Counters> {
    Some(Counters {
        participants: view.load_i32(0)?,
        total: view.load_i64(8)?,
        winnings: (0..10)
            .map(|i| view.load_i64(16 + 8 * i))
            .collect::<Option<_>>()?,
    })
}

/// Notes every instance that has ended since the last call (its final `/proc/PID/stat` and
/// affinity, read before reaping it); returns how many still run. What an ended instance left
/// running in its process group (a helper it forked) is killed as it is reaped: the race is
/// over for it, and a leftover would spin on and hold the race file after the lab reports.
fn poll_ends(instances: &mut Instances, t0: Instant) -> anyhow::Result<usize> {
    let mut running = 0;
    for r in instances.0.iter_mut().filter(|r| r.done.is_none()) {
        // Has it exited? It stays a zombie: /proc/PID/stat readable, its group id its own.
        if !interrupt::exited(&r.child).context("waitid failed on a racer")? {
            running += 1;
            continue;
        }
        let ended = t0.elapsed().as_secs_f64();
        let stat = ProcessStat::read(r.child.id()).ok();
        let affinity = procstat::read_cpus_allowed(Some(r.child.id())).ok();
        let status = interrupt::end_group(&mut r.child).context("cannot reap a racer")?;
        let end = match (status.code(), status.signal()) {
            (Some(code), _) => End::Exited { code },
            (None, Some(signal)) => End::Signalled { signal },
            (None, None) => End::Signalled { signal: 0 },
        };
        r.done = Some(Ended {
            at: ended,
            end,
            stat,
            affinity,
        });
    }
    Ok(running)
}

/// Kills every instance still running (it is hung: nothing moved for `quiet` seconds).
fn kill_all(instances: &mut Instances, t0: Instant, quiet: f64) -> anyhow::Result<()> {
    for r in instances.0.iter_mut().filter(|r| r.done.is_none()) {
        let stat = ProcessStat::read(r.child.id()).ok();
        let affinity = procstat::read_cpus_allowed(Some(r.child.id())).ok();
        interrupt::end_group(&mut r.child).context("cannot reap a killed racer")?;
        r.done = Some(Ended {
            at: t0.elapsed().as_secs_f64(),
            end: End::Hung {
                stalled_seconds: quiet,
            },
            stat,
            affinity,
        });
    }
    Ok(())
}

/// The ended instances, with what they printed.
fn finish(running: Vec<Running>) -> anyhow::Result<Vec<Instance>> {
    running
        .into_iter()
        .map(|r| {
            let done = r.done.context("an instance was never reaped")?;
            Ok(Instance {
                pid: r.child.id(),
                started: r.started,
                ended: done.at,
                end: done.end,
                stat: done.stat,
                affinity: done.affinity,
                stdout: tail(&r.stdout),
                stderr: tail(&r.stderr),
                report: None,
            })
        })
        .collect()
}

/// The last [`OUTPUT_KEEP`] bytes of a file (lossy UTF-8), removed afterwards.
fn tail(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let _ = std::fs::remove_file(path);
    let from = bytes.len().saturating_sub(OUTPUT_KEEP);
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

/// The CPUs any instance was allowed on (the lab's own mask if none could be read).
fn mask_of(instances: &[Instance]) -> anyhow::Result<Vec<u32>> {
    let mut cpus: Vec<u32> = instances
        .iter()
        .filter_map(|i| i.affinity.as_deref())
        .flatten()
        .copied()
        .collect();
    if cpus.is_empty() {
        cpus = procstat::read_cpus_allowed(None).context("cannot read the affinity mask")?;
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// This process's CPU time so far (all threads), clock ticks.
fn own_ticks() -> anyhow::Result<u64> {
    Ok(ProcessStat::read(std::process::id())
        .context("cannot read /proc/self/stat")?
        .cpu_ticks())
}

/// The line of `/proc/self/maps` for the mapping that starts at `address`.
fn own_maps_line(address: u64) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let prefix = format!("{address:x}-");
    maps.lines()
        .find(|l| l.starts_with(&prefix))
        .map(str::to_string)
}
