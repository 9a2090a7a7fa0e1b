//! Reading the cgroup file system: where the hierarchies are mounted (mountinfo), which cgroup
//! a process is in (/proc/self/cgroup), counters (`KEY N` lines), and the cgroups a killed run
//! of the lab left behind. Step 2's memory cgroup and the check's sandbox both use it.

use std::path::{Path, PathBuf};

/// `root/path`, for a cgroup path of /proc/self/cgroup (which starts with `/`).
pub fn join(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// The cgroup mounts of /proc/self/mountinfo.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mounts {
    pub v2: Option<PathBuf>,
    pub v1_memory: Option<PathBuf>,
}

/// Reads the cgroup2 mount and the v1 mount with the memory controller from mountinfo text.
pub fn parse_mounts(mountinfo: &str) -> Mounts {
    Mounts {
        v2: mounts(mountinfo)
            .find(|(fstype, _, _)| *fstype == "cgroup2")
            .map(|(_, mountpoint, _)| PathBuf::from(mountpoint)),
        v1_memory: v1_mount(mountinfo, "memory"),
    }
}

/// The mount point of the cgroup v1 hierarchy holding `controller`, from mountinfo text.
pub fn v1_mount(mountinfo: &str, controller: &str) -> Option<PathBuf> {
    mounts(mountinfo)
        .find(|(fstype, _, options)| {
            *fstype == "cgroup" && options.split(',').any(|o| o == controller)
        })
        .map(|(_, mountpoint, _)| PathBuf::from(mountpoint))
}

/// (fstype, mount point, super options) of each mountinfo line.
fn mounts(mountinfo: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    mountinfo.lines().filter_map(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
        let (left, right) = line.split_once(" - ")?;
        let mountpoint = left.split_whitespace().nth(4)?;
        let mut right = right.split_whitespace();
        let fstype = right.next()?;
        Some((fstype, mountpoint, right.nth(1).unwrap_or("")))
    })
}

/// Our cgroup's path from /proc/self/cgroup text: the v2 line (`0::/path`) for `None`, the v1
/// line listing `controller` otherwise.
pub fn own_path(proc_cgroup: &str, controller: Option<&str>) -> Option<String> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match controller {
            None => id == "0" && controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        hit.then(|| path.to_string())
    })
}

/// The entries of `dir` named `{prefix}{pid}…` whose pid is not ours and no longer runs.
pub fn stale(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(prefix)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| {
                    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
                })
        })
        .map(|e| e.path())
        .collect()
}

/// `KEY N` lines (memory.stat, memory.events, memory.oom_control).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}
