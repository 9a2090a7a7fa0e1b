//! xtask's few system calls, through `rustix` (safe wrappers), so the crate forbids unsafe code:
//! signalling the processes it started, the page size, and asking what this user may do with a
//! path (`access(2)`, `statfs(2)`).

use std::io;
use std::path::Path;

pub use rustix::process::Signal;

fn pid_of(pid: u32) -> io::Result<rustix::process::Pid> {
    i32::try_from(pid)
        .ok()
        // kill(0, …) and kill(-1, …) would hit our own group or every process.
        .filter(|&p| p > 1)
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "refusing to signal pid 0 or 1"))
}

/// `kill(2)`: sends `sig` to process `pid` (a child we started and have not reaped).
pub fn kill(pid: u32, sig: Signal) -> io::Result<()> {
    Ok(rustix::process::kill_process(pid_of(pid)?, sig)?)
}

/// Sends SIGKILL to the process group `pgid` (`kill(2)` with a negative pid). The caller passes
/// the id of a child it spawned as the leader of its own group (`CommandExt::process_group(0)`)
/// and has not yet reaped, so the id still names that group.
pub fn kill_group(pgid: u32) -> io::Result<()> {
    Ok(rustix::process::kill_process_group(
        pid_of(pgid)?,
        Signal::KILL,
    )?)
}

/// Whether any process, a zombie too, is in the process group `pgid` (`kill(2)` with signal 0
/// and a negative pid: ESRCH when none is).
pub fn group_exists(pgid: u32) -> bool {
    pid_of(pgid).is_ok_and(|pid| rustix::process::test_kill_process_group(pid).is_ok())
}

/// The page size (`getpagesize(2)`).
pub fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// `access(path, X_OK)`: whether this (real) user may execute `path`. Unlike the mode bits it
/// also says no for a `noexec` mount, and for root it still needs an execute bit.
pub fn may_execute(path: &Path) -> io::Result<()> {
    Ok(rustix::fs::access(path, rustix::fs::Access::EXEC_OK)?)
}

/// `access(path, W_OK)`: whether this (real) user may write `path` (create files in it, for a
/// directory), asked without creating anything. A read-only mount says no even to root.
pub fn may_write(path: &Path) -> io::Result<()> {
    Ok(rustix::fs::access(path, rustix::fs::Access::WRITE_OK)?)
}

/// File systems made by the kernel, where `access` may say yes to root but no file of ours can
/// be created (`/proc/x.md`: ENOENT, `/sys/x.md`: EACCES), from `linux/magic.h`.
const PSEUDO_FILE_SYSTEMS: &[(rustix::fs::FsWord, &str)] = &[
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x1cd1, "devpts"),
    (0xcafe_4a11, "bpf"),
    (0x6165_676c, "pstore"),
    (0x6e73_6673, "nsfs"),
];

/// The name of the kernel-made file system `dir` is on (`statfs(2)`), if it is one of
/// [`PSEUDO_FILE_SYSTEMS`]; `None` for any other (or when `statfs` fails).
pub fn pseudo_file_system(dir: &Path) -> Option<&'static str> {
    let kind = rustix::fs::statfs(dir).ok()?.f_type;
    PSEUDO_FILE_SYSTEMS
        .iter()
        .find(|(magic, _)| *magic == kind)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    #[test]
    fn refuses_dangerous_ids() {
        assert!(kill_group(0).is_err());
        assert!(kill_group(1).is_err());
        assert!(kill(u32::MAX, Signal::INT).is_err());
    }

    #[test]
    fn kills_a_whole_group() {
        // A shell that starts a grandchild; both are in the new group.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        kill_group(child.id()).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9));
    }

    #[test]
    fn kernel_file_systems_are_named_and_others_are_not() {
        assert_eq!(pseudo_file_system(Path::new("/proc")), Some("proc"));
        assert_eq!(pseudo_file_system(Path::new("/proc/self")), Some("proc"));
        assert_eq!(pseudo_file_system(&std::env::temp_dir()), None);
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two() && page_size() >= 4096);
    }
}
