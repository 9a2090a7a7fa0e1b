//! The report's only raw syscall: ending a browser that did not finish in time, with every
//! process it started.

use std::io;

/// Sends SIGKILL to the process group `pgid` (`kill(2)` with a negative pid).
///
/// The caller passes the id of a child it spawned as the leader of its own group
/// (`CommandExt::process_group(0)`) and has not yet reaped, so the id still names that group.
pub fn kill_group(pgid: u32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "process group id too large"))?;
    if pgid <= 1 {
        // kill(0, …) and kill(-1, …) would hit our own group or every process.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal process group 0 or 1",
        ));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; pgid > 1, so the call
    // targets exactly that process group and never our own group or every process.
    let rc = unsafe { libc::kill(-pgid, libc::SIGKILL) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_dangerous_ids() {
        assert!(kill_group(0).is_err());
        assert!(kill_group(1).is_err());
    }

    #[test]
    fn kills_a_whole_group() {
        use std::os::unix::process::CommandExt;
        // A shell that starts a grandchild; both are in the new group.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        kill_group(child.id()).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
