//! What the lab holds that outlives it if it dies: children it started in process groups of
//! their own (racers, sandboxed and traced programs, the browser) and its scratch directories.
//!
//! A child in its own process group is not in the terminal's foreground group, so a Ctrl-C
//! reaches only the lab; a SIGTERM or SIGHUP reaches only the lab anyway. Left to the default
//! action, the lab would die and leave its racers spinning and its scratch on disk. So every such
//! child is started through [`spawn_group`] and ended through [`end_group`], every scratch
//! directory is created through [`create_dir`] and removed through [`remove_dir`] (and a check
//! run's cgroup is registered with [`on_interrupt`]), each updating one process-wide registry
//! under one lock; and [`install`] starts a thread that, on SIGINT, SIGTERM or SIGHUP, takes
//! that lock (and keeps it), kills every registered group, empties and removes the registered
//! cgroups, removes every registered directory, prints one line and exits with 128 + the
//! signal's number.
//!
//! The lock is what makes the order hold: a child is registered before anyone else can see it
//! (spawned under the lock), deregistered only after its group was killed (so a group id the
//! thread kills still names a group: its leader is not reaped yet); and once the thread has the
//! lock, the rest of the lab stops at its next spawn, reap or scratch operation, so it cannot go
//! on to report a race the thread has just killed, or to run the next step. The main thread
//! also stops where it would report or end on its own ([`settle`]: before every error line, at
//! the end of `main`, before each step of `run-all`) once a signal has arrived, so a child the
//! thread killed never becomes a second error line or another exit status. A second signal
//! during the cleanup changes nothing: the cleanup is bounded (kills, a few tries per removal,
//! at most seconds for a cgroup to empty) and always runs to its end, then the lab exits with
//! the first signal's line and status (it used to exit at once, leaving what it had not yet
//! killed or removed).
//!
//! A production supervisor would do the same with a pidfd per child and a cgroup per run.

use std::io::{self, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::sys;

/// A scratch directory, with the directories above it that creating it made (removed after it,
/// when left empty).
#[derive(Clone)]
struct Dir {
    path: PathBuf,
    prune: Vec<PathBuf>,
}

/// Anything else to undo on an interrupt (a cgroup to empty and remove).
type UndoFn = Box<dyn Fn() + Send>;

/// The process groups (their leaders' pids, unreaped), what else to undo, and the scratch
/// directories held now.
struct Held {
    groups: Vec<u32>,
    undo: Vec<(u64, UndoFn)>,
    next_undo: u64,
    dirs: Vec<Dir>,
}

static HELD: Mutex<Held> = Mutex::new(Held {
    groups: Vec::new(),
    undo: Vec::new(),
    next_undo: 0,
    dirs: Vec::new(),
});

/// The registry, whatever a thread that panicked while holding it left (plain lists: still
/// consistent).
fn held() -> MutexGuard<'static, Held> {
    HELD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts `cmd` as the leader of a new process group (`setpgid(0, 0)` in the child), registered
/// before the lock is released: a signal cannot come between the start and the registration.
/// End it with [`end_group`].
pub fn spawn_group(cmd: &mut Command) -> io::Result<Child> {
    let mut held = held();
    let child = cmd.process_group(0).spawn()?;
    held.groups.push(child.id());
    Ok(child)
}

/// Has `child` exited? `waitid(2)` with `WNOWAIT`: it is not reaped, so it stays a zombie, its
/// `/proc/PID/stat` readable and its pid (so its group id) still its own.
pub fn exited(child: &Child) -> io::Result<bool> {
    use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    Ok(waitid(WaitId::Pid(Pid::from_child(child)), opts)?.is_some())
}

/// Ends a child started by [`spawn_group`]: SIGKILLs its whole process group, then reaps it.
/// Anything still in the group is the child's leftover (a helper it forked and did not wait
/// for), or the child itself when it still runs. The group is killed before the leader is
/// reaped: until then its pid, hence the group id, cannot be reused (Linux would also keep the
/// number while a member lives, but not once the group is empty, and this order needs no such
/// argument). Returns the exit status. (How many were left is [`live_members`], asked before.)
pub fn end_group(child: &mut Child) -> io::Result<ExitStatus> {
    let pgid = child.id();
    // ESRCH: nothing left in the group, which is the usual case.
    let _ = sys::kill_group(pgid);
    held().groups.retain(|&g| g != pgid);
    let status = child.wait();
    // The leader is reaped, but a member killed with it (the program strace ran) may still be
    // tearing down: wait, bounded, until no live member is left, so nothing of ours outlives
    // this. The signal-0 probe first (ESRCH, the usual case, needs no scan of /proc); then
    // live_members, since an orphaned zombie stays in its group until its new parent reaps it,
    // and some init processes (this VM's) never do.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while sys::group_exists(pgid)
        && live_members(&[pgid]) > 0
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    status
}

/// Runs `undo` if a signal ends the lab while the returned guard lives (after the groups are
/// killed, before the directories are removed); dropping the guard deregisters it.
pub fn on_interrupt(undo: impl Fn() + Send + 'static) -> Undo {
    let mut held = held();
    let id = held.next_undo;
    held.next_undo += 1;
    held.undo.push((id, Box::new(undo)));
    Undo(id)
}

/// Registered by [`on_interrupt`]; deregisters it when dropped.
pub struct Undo(u64);

impl Drop for Undo {
    fn drop(&mut self) {
        held().undo.retain(|(id, _)| *id != self.0);
    }
}

/// Creates the scratch directory `path` (and its missing parents), registered in the same
/// critical section, so an interrupt at any moment removes it; the parents this made are
/// removed after it when empty.
pub fn create_dir(path: &Path) -> io::Result<()> {
    let mut held = held();
    let prune = path
        .ancestors()
        .skip(1)
        .take_while(|dir| !dir.exists())
        .map(Path::to_path_buf)
        .collect();
    // Another scratch's removal may take an empty parent away between create_dir_all's steps.
    let mut created = std::fs::create_dir_all(path);
    for _ in 0..3 {
        match &created {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                created = std::fs::create_dir_all(path);
            }
            _ => break,
        }
    }
    if created.is_ok() {
        held.dirs.push(Dir {
            path: path.to_path_buf(),
            prune,
        });
    } else {
        drop(held);
        remove(&Dir {
            path: path.to_path_buf(),
            prune,
        });
    }
    created
}

/// Removes a scratch directory made by [`create_dir`] (with everything in it, and the empty
/// parents it made), then deregisters it.
pub fn remove_dir(path: &Path) {
    let dir = held().dirs.iter().find(|d| d.path == path).cloned();
    remove(&dir.unwrap_or_else(|| Dir {
        path: path.to_path_buf(),
        prune: Vec::new(),
    }));
    held().dirs.retain(|d| d.path != path);
}

fn remove(dir: &Dir) {
    // A child killed a moment ago may still be writing into it: a few tries.
    for _ in 0..5 {
        match std::fs::remove_dir_all(&dir.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => continue,
            _ => break,
        }
    }
    // remove_dir fails on a directory another run is using: only empty ones go.
    for parent in &dir.prune {
        let _ = std::fs::remove_dir(parent);
    }
}

/// How many live (not zombie) processes are in the process groups `pgids`, from `/proc`.
pub fn live_members(pgids: &[u32]) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|p| p.parse::<u32>().ok());
            state != Some("Z") && state != Some("X") && pgrp.is_some_and(|p| pgids.contains(&p))
        })
        .count()
}

/// Set by the signal handler itself, the moment SIGINT, SIGTERM or SIGHUP arrives (before the
/// interrupt thread is woken), once [`install`] ran.
static SIGNALLED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// For the main thread, where it would print an error, end the process or start a step: once a
/// signal has arrived, never returns (the interrupt thread cleans up, prints the one line and
/// exits with 128 + the signal). Otherwise returns at once.
pub fn settle() {
    if SIGNALLED.get().is_some_and(|s| s.load(Ordering::SeqCst)) {
        loop {
            std::thread::park();
        }
    }
}

/// Installs the handling of SIGINT, SIGTERM and SIGHUP for the whole process: once, in `main`.
pub fn install() -> io::Result<()> {
    let signalled = SIGNALLED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // Registered before the iterator, so its flag is set before the thread is woken.
        // Further signals only set it again: nothing ends the lab before the cleanup has.
        signal_hook::flag::register(sig, Arc::clone(signalled))?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let line = clean_up(sig);
                // SIGHUP: the terminal may be gone; nothing to do if the line cannot be written.
                let _ = std::io::stderr().write_all(line.as_bytes());
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

/// Kills every registered group and removes every registered directory, holding the registry
/// (never released: the process exits next). Returns the line to print.
fn clean_up(sig: i32) -> String {
    let held = held();
    let killed = live_members(&held.groups);
    for &pgid in &held.groups {
        let _ = sys::kill_group(pgid);
    }
    for (_, undo) in &held.undo {
        undo();
    }
    for dir in &held.dirs {
        remove(dir);
    }
    let line = interrupted_line(sig, killed, &held.dirs);
    std::mem::forget(held);
    line
}

fn interrupted_line(sig: i32, killed: usize, dirs: &[Dir]) -> String {
    let name = match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    };
    let plural = if killed == 1 { "" } else { "es" };
    let mut line = format!("error: interrupted ({name}); killed {killed} child process{plural}");
    // Only the outermost directories: one inside another went with it.
    let shown: Vec<String> = dirs
        .iter()
        .filter(|d| {
            !dirs
                .iter()
                .any(|o| o.path != d.path && d.path.starts_with(&o.path))
        })
        .map(|d| d.path.display().to_string())
        .collect();
    if !shown.is_empty() {
        line += &format!(", removed {}", shown.join(", "));
    }
    line + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_signal_the_count_and_the_outer_directories() {
        let dir = |p: &str| Dir {
            path: PathBuf::from(p),
            prune: Vec::new(),
        };
        let dirs = [
            dir("/t/xtask-scratch/step5-1-0"),
            dir("/t/xtask-scratch/step5-1-0/x"),
        ];
        assert_eq!(
            interrupted_line(SIGTERM, 3, &dirs),
            "error: interrupted (SIGTERM); killed 3 child processes, removed \
             /t/xtask-scratch/step5-1-0\n"
        );
        assert_eq!(
            interrupted_line(SIGINT, 1, &[]),
            "error: interrupted (SIGINT); killed 1 child process\n"
        );
    }

    #[test]
    fn ending_a_group_kills_what_its_leader_left_running() {
        // The shell starts a sleeper in its group and exits at once.
        let mut child = spawn_group(
            Command::new("sh")
                .args(["-c", "sleep 300 >/dev/null & echo $!"])
                .stdout(std::process::Stdio::piped()),
        )
        .unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).ok();
        let sleeper: u32 = out.trim().parse().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !exited(&child).unwrap() {
            assert!(
                std::time::Instant::now() < deadline,
                "the shell did not exit"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(held().groups.contains(&child.id()));
        assert_eq!(
            live_members(&[child.id()]),
            1,
            "the sleeper was in the group"
        );
        let status = end_group(&mut child).unwrap();
        assert!(status.success());
        assert!(!held().groups.contains(&child.id()));
        crate::testing::wait_gone(sleeper);
    }

    #[test]
    fn group_members_are_counted() {
        let mut child = spawn_group(Command::new("sh").args(["-c", "sleep 30 & wait"])).unwrap();
        let pgid = child.id();
        // The shell, and the sleep once the shell has started it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while live_members(&[pgid]) < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(live_members(&[pgid]), 2);
        let status = end_group(&mut child).unwrap();
        assert!(!status.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while live_members(&[pgid]) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(live_members(&[pgid]), 0);
    }

    #[test]
    fn a_scratch_directory_and_the_parents_it_made_are_removed() {
        let top = tempfile::tempdir().unwrap();
        let path = top.path().join("a/b/scratch");
        create_dir(&path).unwrap();
        std::fs::write(path.join("f"), "x").unwrap();
        assert!(held().dirs.iter().any(|d| d.path == path));
        remove_dir(&path);
        assert!(!top.path().join("a").exists());
        assert!(!held().dirs.iter().any(|d| d.path == path));
    }
}
