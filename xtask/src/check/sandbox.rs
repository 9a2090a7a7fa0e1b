//! Running a submitted program so that it cannot take the lab down: bounded in time, output,
//! processes and memory, and every process it started killed when its run is over.
//!
//! Each run is `sh -c JOIN … -- prlimit … -- [strace …] PROGRAM ARGS`: the shell writes its own
//! pid into a fresh cgroup (pids.max, memory limit) and execs, so the program and everything it
//! forks are in that cgroup from their first instruction; `prlimit(1)` sets the rlimits (no core
//! files, a file-size bound, and, where no cgroup could be made, a process and address-space
//! bound). At the end every process of the cgroup is killed (cgroup v2: `cgroup.kill`; v1: kill
//! each pid of `cgroup.procs` until it is empty), the shell's process group too, and the cgroup
//! removed. Without root (no cgroup) the process group and RLIMIT_NPROC bound it instead: a
//! program that leaves its process group (setsid) is then out of the lab's reach, which the
//! check's notes say. The group is started and ended through [`crate::interrupt`], so a Ctrl-C
//! or SIGTERM of the lab kills it too.
//!
//! HOME and TMPDIR point into the scratch directory, so the usual places a program writes stay
//! in it; writes elsewhere are found in the trace ([`super::judge::outside_writes`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cgroupfs::{join, keyed, own_path, parse_mounts, v1_mount};
use crate::disktable_steps::run::Drain;
use crate::{interrupt, sys};

/// At most this much of each of a program's stdout and stderr is kept.
pub const KEEP_BYTES: usize = 16 << 20;
/// A program's processes (threads count too) in its cgroup.
const PIDS_MAX: u32 = 128;
/// Its memory (cgroup limit; address-space rlimit without a cgroup).
const MEMORY_BYTES: u64 = 1 << 30;
/// The largest file it may write (RLIMIT_FSIZE): strace's trace file obeys it too.
const FILE_BYTES: u64 = 1 << 30;
/// A trace longer than this ends the run (a program making system calls without end).
pub const TRACE_BYTES: u64 = 256 << 20;
/// The name every cgroup and scratch directory of the check starts with.
pub const PREFIX: &str = "mmap-lab-check-";

/// Where the submission's processes are confined.
#[derive(Debug, Clone)]
enum Place {
    /// Cgroup v1: the directories (pids, memory) to make each run's cgroup in.
    V1 {
        pids: PathBuf,
        memory: Option<PathBuf>,
    },
    /// Cgroup v2: the directory to make each run's cgroup in.
    V2 { parent: PathBuf },
    /// No cgroup: rlimits and the process group only.
    Rlimits { why: String },
}

/// The sandbox of one check run: its scratch directory and how processes are confined.
pub struct Sandbox {
    scratch: PathBuf,
    place: Place,
}

impl Sandbox {
    /// Prepares `HOME` and `TMPDIR` in `scratch` and finds a cgroup to confine programs in.
    pub fn new(scratch: &Path) -> anyhow::Result<Sandbox> {
        for d in ["home", "tmp", "traces"] {
            std::fs::create_dir_all(scratch.join(d))
                .with_context(|| format!("cannot create {}", scratch.join(d).display()))?;
        }
        Ok(Sandbox {
            scratch: scratch.to_path_buf(),
            place: find_place(),
        })
    }

    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// How programs are confined, in one line (for the report's notes).
    pub fn describe(&self) -> String {
        match &self.place {
            Place::V1 { memory, .. } => format!(
                "each run in its own cgroup (v1: pids.max {PIDS_MAX}{})",
                if memory.is_some() {
                    ", memory 1 GiB"
                } else {
                    ""
                }
            ),
            Place::V2 { .. } => {
                format!("each run in its own cgroup (v2: pids.max {PIDS_MAX}, memory.max 1 GiB)")
            }
            Place::Rlimits { why } => format!(
                "no cgroup ({why}): rlimits (processes, 1 GiB of address space) and the process \
                 group bound each run"
            ),
        }
    }

    /// A fresh file name for a trace.
    pub fn trace_file(&self) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        self.scratch
            .join("traces")
            .join(format!("run-{}.strace", N.fetch_add(1, Ordering::Relaxed)))
    }

    /// Starts `program args` in `cwd`, confined, under `strace -f -y -e trace=FILTER -o FILE` when
    /// `trace` is given. stdin is /dev/null; stdout and stderr are drained (the first
    /// [`KEEP_BYTES`] kept).
    pub fn spawn(
        &self,
        program: &Path,
        args: &[String],
        cwd: &Path,
        trace: Option<(&str, &Path)>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Job> {
        let cgroup = match &self.place {
            Place::Rlimits { .. } => None,
            place => Some(Cgroup::create(place).context("cannot make a cgroup for the run")?),
        };
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(
                "n=$1; shift; while [ \"$n\" -gt 0 ]; do echo $$ > \"$1\" || exit 125; shift; \
                 n=$((n-1)); done; exec \"$@\"",
            )
            .arg("sh");
        let procs: Vec<PathBuf> = cgroup.as_ref().map(Cgroup::procs_files).unwrap_or_default();
        cmd.arg(procs.len().to_string()).args(&procs);
        cmd.arg("prlimit")
            .arg("--core=0")
            .arg(format!("--fsize={FILE_BYTES}"));
        if let Place::Rlimits { .. } = self.place {
            cmd.arg(format!("--nproc={}", own_processes() + u64::from(PIDS_MAX)))
                .arg(format!("--as={}", 4 * MEMORY_BYTES));
        }
        cmd.arg("--");
        if let Some((filter, out)) = trace {
            // -y: every descriptor argument with its file's path, so the table's calls are
            // found in every thread and child, by whatever name it was opened.
            cmd.args(["strace", "-f", "-y", "-o"])
                .arg(out)
                .arg("-e")
                .arg(format!("trace={filter}"))
                .arg("--");
        }
        cmd.arg(program)
            .args(args)
            .current_dir(cwd)
            .env("HOME", self.scratch.join("home"))
            .env("TMPDIR", self.scratch.join("tmp"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group, registered with the lab's interrupt handling: without a cgroup
        // the group is how the lab reaches every process of the run, and either way a Ctrl-C or
        // SIGTERM of the lab kills the run before the lab exits.
        let mut child = interrupt::spawn_group(&mut cmd)
            .with_context(|| format!("cannot start {}", program.display()))?;
        let stdout = Drain::start(child.stdout.take(), KEEP_BYTES);
        let stderr = Drain::start(child.stderr.take(), KEEP_BYTES);
        Ok(Job {
            child,
            cgroup,
            stdout,
            stderr,
            started: Instant::now(),
            status: None,
            traced: trace.is_some(),
        })
    }
}

/// A running program; killed (all its processes) and reaped when dropped.
pub struct Job {
    child: Child,
    cgroup: Option<Cgroup>,
    stdout: Drain,
    stderr: Drain,
    pub started: Instant,
    status: Option<ExitStatus>,
    traced: bool,
}

impl Job {
    /// Its status, once the first process (strace, under a trace) has exited; what that left in
    /// its process group is killed as it is reaped.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.status.is_none()
            && interrupt::exited(&self.child).context("cannot wait for a run")?
        {
            let status = interrupt::end_group(&mut self.child).context("cannot reap a run")?;
            self.status = Some(status);
        }
        Ok(self.status)
    }

    /// Bytes it wrote to stdout and stderr so far.
    pub fn output_bytes(&self) -> u64 {
        self.stdout.bytes() + self.stderr.bytes()
    }

    /// Kills every process of the run and reaps the first; returns how many of the program's
    /// processes were killed (`None`: not counted, without a cgroup).
    pub fn kill(&mut self) -> Option<usize> {
        let killed = self.cgroup.as_ref().map(Cgroup::kill_all);
        if self.status.is_none() {
            self.status = interrupt::end_group(&mut self.child).ok();
        }
        // strace itself is in the cgroup too: it is not one of the program's processes.
        killed.map(|n| n.saturating_sub(usize::from(self.traced)))
    }

    /// Kills what is left of it and returns what it printed on stderr (at most [`KEEP_BYTES`]).
    pub fn stderr(&mut self) -> String {
        self.kill();
        self.stderr.take()
    }

    /// Waits for its end: killed at `deadline`, or when its output passes [`KEEP_BYTES`], or
    /// when `trace` grows past [`TRACE_BYTES`]. Then every process left is killed.
    pub fn wait(mut self, deadline: Duration, trace: Option<&Path>) -> anyhow::Result<Finished> {
        let mut stop = Stop::Ended;
        loop {
            if self.try_wait()?.is_some() {
                break;
            }
            let out = self.output_bytes();
            if out > KEEP_BYTES as u64 {
                stop = Stop::Flooded { bytes: out };
                break;
            }
            let traced = trace
                .and_then(|t| std::fs::metadata(t).ok())
                .map_or(0, |m| m.len());
            if traced > TRACE_BYTES {
                stop = Stop::TraceFlooded { bytes: traced };
                break;
            }
            if self.started.elapsed() >= deadline {
                stop = Stop::TimedOut {
                    seconds: deadline.as_secs_f64(),
                    killed: None,
                };
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let oom_kills = self.cgroup.as_ref().and_then(Cgroup::oom_kills);
        let killed = self.kill();
        if let Stop::TimedOut { killed: k, .. } = &mut stop {
            *k = killed;
        }
        let stdout = self.stdout.take();
        let stderr = self.stderr.take();
        Ok(Finished {
            status: self.status,
            oom_kills,
            stop,
            stdout,
            stderr,
        })
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why a run stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// Its first process exited by itself.
    Ended,
    TimedOut {
        seconds: f64,
        killed: Option<usize>,
    },
    Flooded {
        bytes: u64,
    },
    TraceFlooded {
        bytes: u64,
    },
}

/// A run that is over: every process of it killed and reaped.
#[derive(Debug)]
pub struct Finished {
    pub status: Option<ExitStatus>,
    /// Processes of the run the OOM killer ended at the memory limit (`None`: not counted).
    pub oom_kills: Option<u64>,
    pub stop: Stop,
    pub stdout: String,
    pub stderr: String,
}

/// One run's cgroup (one directory per v1 hierarchy), emptied and removed when dropped, or by
/// the lab's interrupt handling when a signal ends the lab first.
struct Cgroup {
    dirs: Vec<PathBuf>,
    v2: bool,
    undo: Option<interrupt::Undo>,
}

impl Cgroup {
    fn create(place: &Place) -> anyhow::Result<Cgroup> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (parents, v2): (Vec<&PathBuf>, bool) = match place {
            Place::V1 { pids, memory } => (std::iter::once(pids).chain(memory).collect(), false),
            Place::V2 { parent } => (vec![parent], true),
            Place::Rlimits { .. } => anyhow::bail!("no cgroup hierarchy"),
        };
        let mut cg = Cgroup {
            dirs: Vec::new(),
            v2,
            undo: None,
        };
        for parent in parents {
            let dir = parent.join(&name);
            std::fs::create_dir(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            cg.dirs.push(dir);
        }
        let (dirs, v2) = (cg.dirs.clone(), cg.v2);
        cg.undo = Some(interrupt::on_interrupt(move || {
            drop(Cgroup {
                dirs: dirs.clone(),
                v2,
                undo: None,
            })
        }));
        let write = |dir: &Path, file: &str, value: &str| {
            std::fs::write(dir.join(file), value)
                .with_context(|| format!("cannot write {}", dir.join(file).display()))
        };
        let pids = PIDS_MAX.to_string();
        let memory = MEMORY_BYTES.to_string();
        if v2 {
            write(&cg.dirs[0], "pids.max", &pids)?;
            write(&cg.dirs[0], "memory.max", &memory)?;
        } else {
            write(&cg.dirs[0], "pids.max", &pids)?;
            if let Some(dir) = cg.dirs.get(1) {
                write(dir, "memory.limit_in_bytes", &memory)?;
            }
        }
        Ok(cg)
    }

    /// How many of its processes the kernel's OOM killer ended (`None`: no memory controller).
    fn oom_kills(&self) -> Option<u64> {
        let (dir, file) = match (self.v2, self.dirs.get(1)) {
            (true, _) => (&self.dirs[0], "memory.events"),
            (false, Some(memory)) => (memory, "memory.oom_control"),
            (false, None) => return None,
        };
        let text = std::fs::read_to_string(dir.join(file)).ok()?;
        keyed(&text, "oom_kill")
    }

    fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dirs[0].join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILLs every process in it until it is empty (bounded); returns how many it held.
    fn kill_all(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        if self.v2 {
            seen.extend(self.pids());
            let _ = std::fs::write(self.dirs[0].join("cgroup.kill"), "1");
        }
        let start = Instant::now();
        loop {
            let pids = self.pids();
            if pids.is_empty() || start.elapsed() > Duration::from_secs(5) {
                break;
            }
            for pid in pids {
                seen.insert(pid);
                let _ = sys::kill(pid, sys::Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        seen.len()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.kill_all();
        for dir in &self.dirs {
            // Killed processes leave the list a moment after they are reaped.
            let start = Instant::now();
            while std::fs::remove_dir(dir).is_err()
                && dir.exists()
                && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Finds where to make cgroups (root, a pids controller), or says why there is none.
fn find_place() -> Place {
    if !rustix::process::geteuid().is_root() {
        return Place::Rlimits {
            why: "not root".into(),
        };
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let usable = |dir: &Path| {
        let probe = dir.join(format!("{PREFIX}probe-{}", std::process::id()));
        let ok = std::fs::create_dir(&probe).is_ok();
        let _ = std::fs::remove_dir(&probe);
        ok
    };
    if let (Some(root), Some(path)) = (v1_mount(&mountinfo, "pids"), own_path(&own, Some("pids"))) {
        let pids = join(&root, &path);
        if usable(&pids) {
            let memory = parse_mounts(&mountinfo)
                .v1_memory
                .zip(own_path(&own, Some("memory")))
                .map(|(root, path)| join(&root, &path))
                .filter(|d| usable(d));
            return Place::V1 { pids, memory };
        }
    }
    if let (Some(root), Some(path)) = (parse_mounts(&mountinfo).v2, own_path(&own, None)) {
        let parent = join(&root, &path);
        let control = parent.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&control).unwrap_or_default();
        let has = |c: &str| enabled.split_whitespace().any(|x| x == c);
        let enabled =
            (has("pids") && has("memory")) || std::fs::write(&control, "+pids +memory").is_ok();
        if enabled && usable(&parent) {
            remove_stale(&parent, true);
            return Place::V2 { parent };
        }
        return Place::Rlimits {
            why: format!(
                "cannot enable the pids and memory controllers under {}",
                parent.display()
            ),
        };
    }
    Place::Rlimits {
        why: "no cgroup hierarchy with a pids controller".into(),
    }
}

/// Empties and removes the cgroups a check that was killed left in `parent` (named after a pid
/// that no longer runs).
fn remove_stale(parent: &Path, v2: bool) {
    for dir in stale(parent) {
        drop(Cgroup {
            dirs: vec![dir],
            v2,
            undo: None,
        });
    }
}

/// The entries of `dir` named `PREFIX{pid}…` whose pid no longer runs.
pub fn stale(dir: &Path) -> Vec<PathBuf> {
    crate::cgroupfs::stale(dir, PREFIX)
}

/// How many processes this user runs now (RLIMIT_NPROC counts them all).
fn own_processes() -> u64 {
    let uid = rustix::process::getuid().as_raw();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("status"))
                        .ok()
                        .and_then(|s| {
                            s.lines()
                                .find(|l| l.starts_with("Uid:"))
                                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
                        })
                        == Some(uid)
                })
                .count() as u64
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v1_mounts_by_controller() {
        let text = "\
30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
32 25 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            v1_mount(text, "pids"),
            Some(PathBuf::from("/sys/fs/cgroup/pids"))
        );
        assert_eq!(v1_mount(text, "cpu"), None);
    }

    #[test]
    fn a_run_that_forks_sleepers_is_killed_whole() {
        let scratch = std::env::temp_dir().join(format!("{PREFIX}unit-{}", std::process::id()));
        let sandbox = Sandbox::new(&scratch).unwrap();
        // Forks 5 sleepers, and waits for them: the run never ends by itself.
        let job = sandbox
            .spawn(
                Path::new("sh"),
                &[
                    "-c".into(),
                    "for i in 1 2 3 4 5; do sleep 300 & echo $!; done; wait".into(),
                ],
                &scratch,
                None,
                &[],
            )
            .unwrap();
        let finished = job.wait(Duration::from_millis(500), None).unwrap();
        assert!(
            matches!(finished.stop, Stop::TimedOut { .. }),
            "{:?}",
            finished.stop
        );
        let sleepers: Vec<u32> = finished
            .stdout
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        assert_eq!(sleepers.len(), 5);
        for pid in sleepers {
            // Gone, or a zombie waiting for whoever adopted it to reap it.
            if let Ok(stat) = lab_trace::procstat::ProcessStat::read(pid) {
                assert!(
                    stat.state == 'Z' || stat.comm != "sleep",
                    "sleeper {pid} of the run survived: {stat:?}"
                );
            }
        }
        std::fs::remove_dir_all(&scratch).unwrap();
    }
}
