//! Who has a race file open or mapped: the evidence `fuser(1)` and `lsof(8)` use, read from
//! `/proc` (`proc(5)`).
//!
//! The course's racer takes no lock, so a `flock(2)` cannot tell a live race from a stale file
//! when one of its instances plays: only the kernel's own record of who holds the file can. A
//! process holds it when one of its `/proc/PID/maps` lines names the file's device and inode (a
//! mapping, which outlives `close` and even `unlink`), or one of its `/proc/PID/fd/N` links leads
//! to the same inode (an open descriptor not mapped yet). A participant maps the file read-write
//! and shared (`rw-s`); an observer that only watches (the lab's `run-step 5`) maps it read-only,
//! and is told apart by that.
//!
//! Only processes whose `/proc` entries this user may read are seen: those of the same user, or
//! all of them as root. Maps lines are parsed by `lab_trace::maps`, the lab's one maps reader;
//! the matching is pure (text in, facts out) and tested on recorded lines.

use std::fs::File;
use std::io::{self, Read as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use lab_trace::maps::MapsLine;

/// What identifies the race file in `/proc`: its inode and device, as `stat(2)` gives them and as
/// `/proc/PID/maps` prints them (the two differ on overlayfs and btrfs, so both are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileKey {
    pub ino: u64,
    /// `(major, minor)` of `st_dev`.
    pub dev: (u32, u32),
    /// `(major, minor)` as this process's own maps line for its mapping prints it, once mapped.
    pub maps_dev: Option<(u32, u32)>,
    /// The file's name as the kernel resolves it (`/proc/PID/fd` links show it), for a cheap
    /// first filter before a `stat`.
    pub name: Option<String>,
}

impl FileKey {
    /// The key of an open file (`fstat(2)`), named by its resolved `path`.
    pub fn of(file: &File, path: &Path) -> io::Result<FileKey> {
        let meta = file.metadata()?;
        let dev = meta.dev();
        let name = std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        Ok(FileKey {
            ino: meta.ino(),
            dev: (libc::major(dev), libc::minor(dev)),
            maps_dev: None,
            name,
        })
    }

    /// Whether a parsed maps line maps this file.
    pub fn matches(&self, m: &MapsLine<'_>) -> bool {
        m.inode == self.ino && m.inode != 0 && (m.dev == self.dev || Some(m.dev) == self.maps_dev)
    }
}

/// Whether a maps line is a shared mapping that may be written: how a participant maps the
/// race course (`rw-s`); an observer maps it `r--s`.
pub fn shared_writable(m: &MapsLine<'_>) -> bool {
    m.perms[1] == b'w' && m.perms[3] == b's'
}

/// How a maps file (its whole text) holds the file: `None` if no line maps it, else whether some
/// mapping of it is shared and writable.
pub fn maps_hold(maps: &str, key: &FileKey) -> Option<bool> {
    let mut held = None;
    for m in maps.lines().filter_map(MapsLine::parse) {
        if key.matches(&m) {
            held = Some(held.unwrap_or(false) || shared_writable(&m));
        }
    }
    held
}

/// Whether an fdinfo text (`/proc/PID/fdinfo/N`) says the descriptor may write: its `flags:`
/// line, in octal, has an access mode other than `O_RDONLY`. `None` if there is no such line.
pub fn fdinfo_writable(fdinfo: &str) -> Option<bool> {
    let flags = fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(str::trim)?;
    let flags = u32::from_str_radix(flags, 8).ok()?;
    Some(flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32)
}

/// One process that has the file open or mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// It maps the file shared and writable (a participant, not an observer).
    pub maps_writable: bool,
    /// It maps the file at all.
    pub maps: bool,
    /// It has a descriptor open on the file that may write.
    pub fd_writable: bool,
    /// It has a descriptor open on the file.
    pub fd: bool,
}

impl Holder {
    /// A participant (or one about to be): a writable shared mapping, or, before it maps the
    /// file, a descriptor open for writing. An observer maps the file read-only.
    pub fn is_racer(&self) -> bool {
        self.maps_writable || (!self.maps && self.fd_writable)
    }
}

/// Every process but this one that has the file open or mapped, by pid.
pub fn scan(key: &FileKey) -> Vec<Holder> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut buf = String::new();
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = PathBuf::from("/proc").join(entry.file_name());
        let mapped = read_into(&base.join("maps"), &mut buf)
            .ok()
            .and_then(|()| maps_hold(&buf, key));
        let (fd, fd_writable) = fds_holding(&base, key, &mut buf);
        if mapped.is_some() || fd {
            found.push(Holder {
                pid,
                maps_writable: mapped == Some(true),
                maps: mapped.is_some(),
                fd_writable,
                fd,
            });
        }
    }
    found.sort_by_key(|h| h.pid);
    found
}

/// Whether process `pid` maps the file shared and writable (is still a racer in it). A process
/// that has ended (or is a zombie, whose maps are empty) does not.
pub fn pid_maps_writable(pid: u32, key: &FileKey) -> bool {
    let mut buf = String::new();
    read_into(&PathBuf::from(format!("/proc/{pid}/maps")), &mut buf).is_ok()
        && maps_hold(&buf, key) == Some(true)
}

/// Whether process `pid` runs the same program as this one (`/proc/PID/exe` and
/// `/proc/self/exe` lead to the same file): one of our racers, not the course's.
pub fn same_program(pid: u32) -> bool {
    let exe = |p: &str| std::fs::metadata(format!("/proc/{p}/exe")).ok();
    match (exe(&pid.to_string()), exe("self")) {
        (Some(a), Some(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether the process at `base` (`/proc/PID`) has a descriptor on the file, and whether one of
/// them may write.
fn fds_holding(base: &Path, key: &FileKey, buf: &mut String) -> (bool, bool) {
    let Ok(fds) = std::fs::read_dir(base.join("fd")) else {
        return (false, false);
    };
    let (mut any, mut writable) = (false, false);
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        // `/proc/PID/fd/N -> /dir/racecourse.bin` (or `... (deleted)` once unlinked).
        let target = target.to_string_lossy();
        let name = target.trim_end_matches(" (deleted)").rsplit('/').next();
        if key.name.is_some() && name != key.name.as_deref() {
            continue;
        }
        // stat(2) through the magic link reaches the inode itself, wherever it is.
        let Ok(meta) = std::fs::metadata(fd.path()) else {
            continue;
        };
        if meta.ino() != key.ino || (libc::major(meta.dev()), libc::minor(meta.dev())) != key.dev {
            continue;
        }
        any = true;
        let info = base.join("fdinfo").join(fd.file_name());
        if read_into(&info, buf).is_ok() && fdinfo_writable(buf) != Some(false) {
            writable = true;
        }
    }
    (any, writable)
}

fn read_into(path: &Path, buf: &mut String) -> io::Result<()> {
    buf.clear();
    File::open(path)?.read_to_string(buf).map(drop)
}

/// The `(major, minor)` device this process's own maps line prints for the mapping that starts
/// at `start` (the race course it mapped), if `/proc/self/maps` has it.
pub fn own_maps_dev(start: u64) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/self/maps").ok()?;
    text.lines()
        .filter_map(MapsLine::parse)
        .find(|m| m.start == start)
        .map(|m| m.dev)
}

/// The pids of `holders`, as `"123, 456"`.
pub fn pid_list(holders: &[Holder]) -> String {
    let pids: Vec<String> = holders.iter().map(|h| h.pid.to_string()).collect();
    pids.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt as _;

    /// Recorded from a C racer (`rw-s`), an observer (`r--s`) and unrelated mappings.
    const MAPS: &str = "\
55e1c0a00000-55e1c0a01000 r--p 00000000 fd:01 2883912                    /tmp/r/racer
7f61e8a00000-7f61e8a28000 r--p 00000000 fd:01 1838                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f61e8c2e000-7f61e8c2f000 rw-s 00000000 fd:01 2883915                    /tmp/r/racecourse.bin
7f61e8c30000-7f61e8c31000 r--s 00000000 fd:01 2883916                    /tmp/r/other race.bin (deleted)
7ffd4d9e1000-7ffd4d9e3000 rw-p 00000000 00:00 0                          [stack]
";

    fn key(ino: u64) -> FileKey {
        FileKey {
            ino,
            dev: (0xfd, 1),
            maps_dev: None,
            name: None,
        }
    }

    #[test]
    fn perms_say_participant_or_observer() {
        let line = |i: usize| MapsLine::parse(MAPS.lines().nth(i).unwrap()).unwrap();
        assert!(shared_writable(&line(2)), "rw-s");
        assert!(!shared_writable(&line(3)), "r--s");
        assert!(!shared_writable(&line(4)), "rw-p is private");
    }

    #[test]
    fn a_participant_maps_it_rw_shared_an_observer_read_only() {
        assert_eq!(maps_hold(MAPS, &key(2883915)), Some(true));
        assert_eq!(maps_hold(MAPS, &key(2883916)), Some(false));
        assert_eq!(maps_hold(MAPS, &key(999)), None);
        // The same inode on another device is another file...
        let mut other = key(2883915);
        other.dev = (8, 1);
        assert_eq!(maps_hold(MAPS, &other), None);
        // ... unless this process saw its own mapping of the file printed with that device
        // (overlayfs prints the lower device in maps, stat gives the overlay's).
        other.maps_dev = Some((0xfd, 1));
        assert_eq!(maps_hold(MAPS, &other), Some(true));
        // Anonymous memory has inode 0 and never matches.
        assert_eq!(maps_hold(MAPS, &key(0)), None);
    }

    #[test]
    fn fdinfo_flags_say_whether_a_descriptor_writes() {
        let rdwr = "pos:\t0\nflags:\t0100002\nmnt_id:\t30\nino:\t2883915\n";
        let rdonly = "pos:\t0\nflags:\t0100000\nmnt_id:\t30\n";
        assert_eq!(fdinfo_writable(rdwr), Some(true));
        assert_eq!(fdinfo_writable(rdonly), Some(false));
        assert_eq!(fdinfo_writable("pos:\t0\n"), None);
    }

    #[test]
    fn a_live_child_holding_the_file_is_found_and_an_unheld_file_is_not() {
        let dir = tempfile::Builder::new()
            .prefix("race-holders-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("rc.bin");
        std::fs::write(&path, [0u8; 96]).unwrap();
        let file = File::open(&path).unwrap();
        let key = FileKey::of(&file, &path).unwrap();
        assert_eq!(key.name.as_deref(), Some("rc.bin"));
        assert!(scan(&key).is_empty(), "only this process has it open");
        // A child keeps it open for writing (no mapping): `sleep` with a descriptor on it.
        let rw = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(rw)
            .spawn()
            .unwrap();
        let found = scan(&key);
        let _ = child.kill();
        let _ = child.wait();
        let pid = child.id();
        let h = found.iter().find(|h| h.pid == pid).copied();
        assert_eq!(
            h,
            Some(Holder {
                pid,
                maps_writable: false,
                maps: false,
                fd_writable: true,
                fd: true
            }),
            "{found:?}"
        );
        assert!(h.unwrap().is_racer());
        dir.close().unwrap();
    }
}
