//! Children the lab starts in process groups of their own (racers, check runs, disktable runs,
//! the browser): started through [`spawn_group`], which registers the group, and ended through
//! [`end_group`], which kills the whole group before reaping its leader, so nothing a child
//! forked and left running outlives it.

use std::io;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::sys;

/// The process groups (their leaders' pids, unreaped) of the children running now.
struct Held {
    groups: Vec<u32>,
}

static HELD: Mutex<Held> = Mutex::new(Held { groups: Vec::new() });

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
/// argument). Returns the exit status and how many live processes the group still had.
pub fn end_group(child: &mut Child) -> io::Result<(ExitStatus, usize)> {
    let pgid = child.id();
    let left = live_members(&[pgid]);
    // ESRCH: nothing left in the group, which is the usual case.
    let _ = sys::kill_group(pgid);
    held().groups.retain(|&g| g != pgid);
    Ok((child.wait()?, left))
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let (status, left) = end_group(&mut child).unwrap();
        assert!(status.success());
        assert_eq!(left, 1, "the sleeper was in the group");
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
        let (status, left) = end_group(&mut child).unwrap();
        assert_eq!(left, 2);
        assert!(!status.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while live_members(&[pgid]) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(live_members(&[pgid]), 0);
    }
}
