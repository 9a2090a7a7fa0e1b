//! SIGTERM and SIGINT of the lab while its racers run (`run-step 5 --racer`, `check`): the racers
//! are in process groups of their own (a Ctrl-C does not reach them), so the lab itself must kill
//! them and remove its scratch directory (and a check's cgroups) before it exits, with one line
//! and the status 128 + the signal.

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The course's racer protocol, `racer.h`, is here.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/submissions");

/// The course's protocol (`tests/submissions/racer.h`), then (with `$RACER_FILL` = N) fills
/// its working directory with N empty files, writes its pid into `$RACER_PIDS/PID` and spins
/// for ever: the race never ends by itself.
const SPINNING_RACER: &str = r#"
#include "racer.h"
int main(int argc, char **argv) {
    int id, first;
    start_race(argc, argv, &id, &first);
    char name[4096];
    const char *fill = getenv("RACER_FILL");
    for (int i = 0; fill && i < atoi(fill); i++) {
        snprintf(name, sizeof name, "fill-%d-%d", (int)getpid(), i);
        close(open(name, O_CREAT | O_WRONLY, 0644));
    }
    snprintf(name, sizeof name, "%s/%d", getenv("RACER_PIDS"), (int)getpid());
    fclose(fopen(name, "w"));
    for (;;)
        ;
}
"#;

/// The racer built with `cc` into `dir`.
fn build_racer(dir: &Path, name: &str) -> PathBuf {
    let src = dir.join("spin.c");
    std::fs::write(&src, SPINNING_RACER).unwrap();
    let exe = dir.join(name);
    let status = Command::new("cc")
        .args(["-O2", "-I", FIXTURES, "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success(), "cc failed: {status:?}");
    exe
}

/// Whether `pid` still runs (a zombie waiting for whoever adopted it does not).
fn runs(pid: u32) -> bool {
    lab_trace::procstat::ProcessStat::read(pid).is_ok_and(|s| s.state != 'Z' && s.state != 'X')
}

/// Polls `done` every 10 ms for at most `limit`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Fails the test unless each of `pids` has stopped running within 10 s of the lab's `signal`.
fn assert_gone(pids: impl IntoIterator<Item = u32>, what: &str, signal: &str) {
    for pid in pids {
        assert!(
            wait_for(Duration::from_secs(10), || !runs(pid)),
            "{what} {pid} still runs after the lab's {signal}"
        );
    }
}

/// A temporary directory for one test, removed when dropped.
fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// The racers that wrote their pid into the directory, SIGKILLed when the test ends, so that a
/// failing lab leaves no spinner behind.
struct KillRacers(PathBuf);

impl Drop for KillRacers {
    fn drop(&mut self) {
        kill_all(&racers(&self.0));
    }
}

/// Processes SIGKILLed when the test ends, so that a failing lab leaves none behind.
struct KillPids(Vec<u32>);

impl Drop for KillPids {
    fn drop(&mut self) {
        kill_all(&self.0);
    }
}

fn kill_all(pids: &[u32]) {
    for &pid in pids {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// The pids the racers wrote into `pids`.
fn racers(pids: &Path) -> Vec<u32> {
    std::fs::read_dir(pids)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Starts the lab with `args` and `env`, its stderr into `stderr_path`.
fn start_lab(
    args: &[&std::ffi::OsStr],
    env: &[(&str, &Path)],
    stderr_path: &Path,
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr_path).unwrap())
        .spawn()
        .unwrap()
}

/// Fails the test: the lab ended, or ran too long, before any racer (or program) started.
fn no_racer(lab: &mut std::process::Child, stderr_path: &Path) -> ! {
    let _ = lab.kill();
    let _ = lab.wait();
    panic!(
        "no racer started: {}",
        std::fs::read_to_string(stderr_path).unwrap_or_default()
    );
}

/// Sends `signal` to the lab and waits (at most 30 s) for it to exit.
fn signal_and_wait(
    lab: &mut std::process::Child,
    (number, name): (i32, &str),
) -> std::process::ExitStatus {
    send(lab.id(), number);
    wait_exit(lab, name)
}

/// The lab exited with 128 + the signal, its last line on stderr and only error saying it was
/// interrupted and removed `scratch`, which is gone.
fn assert_interrupted(
    exit: std::process::ExitStatus,
    stderr_path: &Path,
    (number, name): (i32, &str),
    scratch: &Path,
) {
    let stderr = std::fs::read_to_string(stderr_path).unwrap();
    assert_eq!(exit.code(), Some(128 + number), "{exit:?}\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let prefix = format!("error: interrupted ({name}); killed ");
    assert!(errors[0].starts_with(&prefix), "{stderr}");
    assert!(
        errors[0].ends_with(&format!("removed {}", scratch.display())),
        "{stderr}"
    );
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!scratch.exists(), "{} left behind", scratch.display());
}

/// Runs the lab with `args` (the spinning racer's `$RACER_PIDS` set to `pids`), sends `signal`
/// to it once a racer runs, and checks what it did and left: exit status 128 + the signal, one
/// line saying so, no racer running, no scratch directory (the racer's working directory is in
/// it, `depth` levels down) and no cgroup of the racer left.
fn interrupt(args: &[&std::ffi::OsStr], pids: &Path, depth: usize, signal: (i32, &str)) {
    let _teardown = KillRacers(pids.to_path_buf());
    let Racing {
        mut lab,
        running,
        scratch,
        stderr_path,
    } = race_lab(args, pids, &[], depth);
    // Its own cgroup, when the lab made one (check, as root).
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", running[0]))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .find(|p| p.contains("mmap-lab-check-"))
        .map(|p| p.to_string());
    let exit = signal_and_wait(&mut lab, signal);
    assert_interrupted(exit, &stderr_path, signal, &scratch);
    assert_gone(racers(pids), "racer", signal.1);
    if let Some(path) = cgroup {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        for mount in mounts.lines().filter(|l| l.contains(" - cgroup")) {
            let point = mount.split_whitespace().nth(4).unwrap();
            let dir = Path::new(point).join(path.trim_start_matches('/'));
            assert!(!dir.exists(), "cgroup {} left behind", dir.display());
        }
    }
}

/// A lab whose racers race: the lab, the racers' pids, its scratch directory, its stderr's file.
struct Racing {
    lab: std::process::Child,
    running: Vec<u32>,
    scratch: PathBuf,
    stderr_path: PathBuf,
}

/// Starts the lab with `args` (and `env`; the spinning racer's `$RACER_PIDS` set to `pids`) and
/// waits for a racer to run; the scratch is the racer's working directory `depth` levels up.
fn race_lab(args: &[&std::ffi::OsStr], pids: &Path, env: &[(&str, &Path)], depth: usize) -> Racing {
    let stderr_path = pids.with_extension("stderr");
    let env = [&[("RACER_PIDS", pids)], env].concat();
    let mut lab = start_lab(args, &env, &stderr_path);
    // `run-step 5` builds our racer first (release mode): a cold build may take minutes.
    let appeared = wait_for(Duration::from_secs(600), || {
        !racers(pids).is_empty() || lab.try_wait().unwrap().is_some()
    });
    let running = racers(pids);
    if !appeared || running.is_empty() {
        no_racer(&mut lab, &stderr_path);
    }
    let race_dir = std::fs::read_link(format!("/proc/{}/cwd", running[0])).unwrap();
    let scratch = race_dir.ancestors().nth(depth).unwrap().to_path_buf();
    assert!(
        scratch
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains(&lab.id().to_string()),
        "{} is not the lab's scratch",
        scratch.display()
    );
    Racing {
        lab,
        running,
        scratch,
        stderr_path,
    }
}

/// The spinning racer built in `dir`, the directory its instances write their pids into, and
/// the arguments of `run-step 5 --quick --racer` with it.
fn spinning_race(dir: &Path) -> (PathBuf, Vec<std::ffi::OsString>) {
    let racer = build_racer(dir, "spin");
    let pids = dir.join("pids");
    std::fs::create_dir(&pids).unwrap();
    let mut args: Vec<std::ffi::OsString> = ["run-step", "5", "--quick", "--racer"]
        .map(Into::into)
        .to_vec();
    args.push(racer.into());
    (pids, args)
}

/// The live processes whose parent is `parent`, with their working directories.
fn children_of(parent: u32) -> Vec<(u32, PathBuf)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            lab_trace::procstat::ProcessStat::read(pid)
                .is_ok_and(|s| s.ppid == parent && s.state != 'Z')
        })
        .filter_map(|pid| Some((pid, std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?)))
        .collect()
}

/// Waits (at most `limit`) for step 4's foo to run under strace, a child of the lab's child:
/// (strace's pid, foo's, strace's working directory: the step's scratch).
fn wait_for_foo(
    lab: &mut std::process::Child,
    stderr_path: &Path,
    limit: Duration,
) -> (u32, u32, PathBuf) {
    let is_foo = |pid: u32| {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "foo"))
    };
    let mut traced = Vec::new();
    let started = wait_for(limit, || {
        traced = children_of(lab.id())
            .into_iter()
            .flat_map(|(strace, cwd)| {
                children_of(strace)
                    .into_iter()
                    .map(move |p| (strace, p.0, cwd.clone()))
            })
            .filter(|&(_, pid, _)| is_foo(pid))
            .collect();
        !traced.is_empty() || lab.try_wait().unwrap().is_some()
    });
    if !started || traced.is_empty() {
        no_racer(lab, stderr_path);
    }
    traced.remove(0)
}

/// The live processes of the process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            // (5) pgrp, after the command name's last ')', the state and the ppid.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let pgrp = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<u32>().ok());
            pgrp == Some(pgid) && runs(pid)
        })
        .collect()
}

/// Sends signal `number` to process `pid` (a child of the test not yet reaped).
fn send(pid: u32, number: i32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    let sig = rustix::process::Signal::from_named_raw(number).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

/// Waits (at most 30 s) for the lab to exit.
fn wait_exit(lab: &mut std::process::Child, after: &str) -> std::process::ExitStatus {
    if !wait_for(Duration::from_secs(30), || {
        lab.try_wait().unwrap().is_some()
    }) {
        let _ = lab.kill();
        let _ = lab.wait();
        panic!("the lab did not exit within 30 s of {after}");
    }
    lab.wait().unwrap()
}

/// `run-step 5 --racer` with the spinning racer, interrupted by `signal`.
fn interrupt_the_race(signal: (i32, &str)) {
    if !common::tools_present("interrupt", &[common::CC]) {
        return;
    }
    let dir = tempdir("xtask-interrupt-");
    let (pids, args) = spinning_race(dir.path());
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    // The racers run in SCRATCH/racer-N or SCRATCH/traced.
    interrupt(&args, &pids, 1, signal);
}

#[test]
fn sigterm_kills_the_racers_and_removes_the_scratch() {
    interrupt_the_race((15, "SIGTERM"));
}

#[test]
fn sigint_kills_the_racers_and_removes_the_scratch() {
    interrupt_the_race((2, "SIGINT"));
}

#[test]
fn sighup_kills_the_racers_and_removes_the_scratch() {
    interrupt_the_race((1, "SIGHUP"));
}

/// `check DIR` of a submission whose racer spins for ever, interrupted while it races: the
/// racer (confined, traced, in its own group and, as root, its own cgroup) is killed, the
/// scratch copy and the cgroup removed.
#[test]
fn sigterm_of_check_kills_the_racer_and_removes_the_scratch() {
    if !common::tools_present("interrupt", &[common::CC, common::STRACE]) {
        return;
    }
    let dir = tempdir("xtask-interrupt-check-");
    let sub = dir.path().join("submission");
    std::fs::create_dir(&sub).unwrap();
    build_racer(&sub, "racer");
    let pids = dir.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    let args = [std::ffi::OsStr::new("check"), sub.as_os_str()];
    // The racer runs in SCRATCH/race-N.
    interrupt(&args, &pids, 1, (15, "SIGTERM"));
}

/// `bench race --quick`, interrupted once its racers race (in SCRATCH/bench): the racers killed,
/// the scratch (with the C racer built in it) removed.
#[test]
fn sigint_of_bench_race_kills_the_racers_and_removes_the_scratch() {
    if !common::tools_present("interrupt", &[common::CC]) {
        return;
    }
    let dir = tempdir("xtask-interrupt-bench-");
    let stderr_path = dir.path().join("stderr");
    let args = ["bench", "race", "--quick"].map(std::ffi::OsStr::new);
    let mut lab = start_lab(&args, &[], &stderr_path);
    let mut racing = Vec::new();
    // It builds our racer (release mode) and the C one first.
    let started = wait_for(Duration::from_secs(600), || {
        racing = children_of(lab.id())
            .into_iter()
            .filter(|(_, cwd)| cwd.ends_with("bench"))
            .collect();
        !racing.is_empty() || lab.try_wait().unwrap().is_some()
    });
    if !started || racing.is_empty() {
        no_racer(&mut lab, &stderr_path);
    }
    let scratch = racing[0].1.parent().unwrap().to_path_buf();
    let exit = signal_and_wait(&mut lab, (2, "SIGINT"));
    assert_interrupted(exit, &stderr_path, (2, "SIGINT"), &scratch);
    assert_gone(racing.into_iter().map(|(pid, _)| pid), "racer", "SIGINT");
}

/// `run-step 4 --foo foo --bar bar` (our programs, as someone else's: their stdout goes to a
/// file, so nothing ends them when the lab dies), interrupted while foo runs under strace: strace
/// and foo are in a process group of their own (foo runs until it is stopped), killed by the lab,
/// and the scratch removed.
#[test]
fn sigterm_of_step_4_kills_foo_and_removes_the_scratch() {
    if !common::tools_present("interrupt", &[common::STRACE]) {
        return;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--quiet", "--release", "-p", "foo", "-p", "bar"])
        .status()
        .unwrap();
    assert!(built.success(), "cargo build failed: {built:?}");
    let release = Path::new(env!("CARGO_BIN_EXE_xtask"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("release");
    let dir = tempdir("xtask-interrupt-step4-");
    let stderr_path = dir.path().join("stderr");
    let (foo, bar) = (release.join("foo"), release.join("bar"));
    let args = ["run-step", "4", "--quick", "--foo"].map(std::ffi::OsStr::new);
    let args = [
        &args[..],
        &[foo.as_os_str(), "--bar".as_ref(), bar.as_os_str()],
    ]
    .concat();
    let mut lab = start_lab(&args, &[], &stderr_path);
    let (strace, foo, scratch) = wait_for_foo(&mut lab, &stderr_path, Duration::from_secs(120));
    let teardown = KillPids(vec![strace, foo]);
    let exit = signal_and_wait(&mut lab, (15, "SIGTERM"));
    assert_interrupted(exit, &stderr_path, (15, "SIGTERM"), &scratch);
    assert_gone(teardown.0.iter().copied(), "process", "SIGTERM");
}

/// A second SIGINT while the lab cleans up after the first changes nothing: the cleanup runs to
/// its end, the line and the status are the first signal's, no racer runs, the scratch is gone.
/// The racers fill the scratch with 20,000 files each first, so that its removal (the last part
/// of the cleanup, after the racers are killed) lasts long enough to signal the lab during it:
/// the racer dead while the lab still runs and its scratch is still there. (The lab used to exit
/// at once on a second signal, leaving the rest of its scratch.)
#[test]
fn a_second_sigint_during_the_cleanup_changes_nothing() {
    if !common::tools_present("interrupt", &[common::CC]) {
        return;
    }
    let dir = tempdir("xtask-interrupt-twice-");
    let (pids, args) = spinning_race(dir.path());
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let _teardown = KillRacers(pids.clone());
    // The racers run in SCRATCH/racer-N or SCRATCH/traced.
    let Racing {
        mut lab,
        running,
        scratch,
        stderr_path,
    } = race_lab(&args, &pids, &[("RACER_FILL", "20000".as_ref())], 1);
    send(lab.id(), 2);
    // The cleanup has begun once the racer is killed (groups first, directories last).
    let killed = wait_for(Duration::from_secs(30), || {
        !runs(running[0]) || lab.try_wait().unwrap().is_some()
    });
    assert!(killed, "the racer still runs 30 s after the lab's SIGINT");
    let cleaning = lab.try_wait().unwrap().is_none() && scratch.exists();
    if cleaning {
        send(lab.id(), 2);
    }
    let during = cleaning && scratch.exists();
    let exit = wait_exit(&mut lab, "two SIGINTs");
    assert_interrupted(exit, &stderr_path, (2, "SIGINT"), &scratch);
    assert_gone(racers(&pids), "racer", "SIGINT");
    assert!(
        during,
        "the cleanup ended before the second SIGINT could be sent: nothing was tested"
    );
}

/// `run-all --quick` stopped by a terminal's Ctrl-C (SIGINT to the lab's whole process group)
/// during step 4, while foo runs under strace in a group of its own: exit status 130 and the
/// one line, strace and foo killed, nothing left in the lab's group, the step's scratch removed,
/// and nothing of step 5 started or printed (a child that died of the Ctrl-C must not turn into
/// an error line or another status either).
#[test]
fn ctrl_c_of_run_all_during_step_4_starts_no_later_step() {
    if !common::tools_present("interrupt", &[common::CC, common::STRACE]) {
        return;
    }
    let dir = tempdir("xtask-interrupt-run-all-");
    let (stdout_path, stderr_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut lab = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run-all", "--quick"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let group = lab.id();
    // Steps 1 to 3 first (and their release builds: minutes when cold).
    let (strace, foo, scratch) = wait_for_foo(&mut lab, &stderr_path, Duration::from_secs(900));
    let _teardown = KillPids(vec![strace, foo]);
    let pgid = rustix::process::Pid::from_raw(group as i32).unwrap();
    rustix::process::kill_process_group(pgid, rustix::process::Signal::INT).unwrap();
    let exit = wait_exit(&mut lab, "Ctrl-C");
    assert_interrupted(exit, &stderr_path, (2, "SIGINT"), &scratch);
    assert_gone([strace, foo], "process", "Ctrl-C");
    assert!(
        wait_for(Duration::from_secs(10), || group_members(group).is_empty()),
        "left in the lab's group: {:?}",
        group_members(group)
    );
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(stdout.contains("== Step 4 "), "{stdout}");
    assert!(!stdout.contains("== Step 5 "), "{stdout}");
    assert!(!stderr.contains("building race"), "step 5 began: {stderr}");
}
