//! xtask's few system calls, through `rustix` (safe wrappers), so the crate forbids unsafe code:
//! signalling the processes it started and the page size.

use std::io;

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

/// The page size (`getpagesize(2)`).
pub fn page_size() -> u64 {
    rustix::param::page_size() as u64
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
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two() && page_size() >= 4096);
    }
}
