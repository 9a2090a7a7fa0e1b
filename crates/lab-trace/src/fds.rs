//! Following one file through a trace: its `openat`, every call on the descriptor that openat
//! returned (until it is closed), the `mmap`s of that descriptor, and the `mremap`, `munmap`,
//! `msync`, `madvise` and `mincore` of the addresses those mmaps (and later mremaps) returned.
//! Tracked per process, so two processes' descriptor 3 are not confused.

use std::collections::HashSet;

use crate::strace::Syscall;

/// System calls that read a descriptor.
pub const READ_CALLS: &[&str] = &["read", "pread64", "readv", "preadv", "preadv2"];
/// System calls that write a descriptor.
pub const WRITE_CALLS: &[&str] = &["write", "pwrite64", "writev", "pwritev", "pwritev2"];

/// The calls of `calls` that concern a file whose opened path satisfies `is_file`.
pub fn file_calls(calls: &[Syscall], is_file: impl Fn(&str) -> bool) -> Vec<&Syscall> {
    let mut fds: HashSet<(Option<u32>, i64)> = HashSet::new();
    let mut addrs: HashSet<(Option<u32>, u64)> = HashSet::new();
    let mut out = Vec::new();
    for c in calls {
        let pid = c.pid;
        let fd_arg = |i: usize| c.arg_i64(i).is_some_and(|fd| fds.contains(&(pid, fd)));
        let hit = match c.name.as_str() {
            "openat" | "open" | "creat" => {
                let idx = usize::from(c.name == "openat");
                if c.arg_str(idx).is_some_and(&is_file) && c.ok() {
                    if let Some(fd) = c.ret {
                        fds.insert((pid, fd));
                    }
                    true
                } else {
                    false
                }
            }
            "mmap" => {
                let mine = fd_arg(4);
                if mine && c.ok() {
                    if let Some(a) = c.ret_u64() {
                        addrs.insert((pid, a));
                    }
                }
                mine
            }
            "mremap" => {
                let mine = c.arg_u64(0).is_some_and(|a| addrs.contains(&(pid, a)));
                if mine && c.ok() {
                    if let (Some(old), Some(new)) = (c.arg_u64(0), c.ret_u64()) {
                        addrs.remove(&(pid, old));
                        addrs.insert((pid, new));
                    }
                }
                mine
            }
            "munmap" | "msync" | "madvise" | "mincore" => {
                c.arg_u64(0).is_some_and(|a| addrs.contains(&(pid, a)))
            }
            "close" => {
                let mine = fd_arg(0);
                if mine {
                    if let Some(fd) = c.arg_i64(0) {
                        fds.remove(&(pid, fd));
                    }
                }
                mine
            }
            "dup" | "dup2" | "dup3" | "fcntl" if fd_arg(0) && c.ok() => {
                // A duplicate refers to the same file (fcntl only for F_DUPFD*).
                if c.name != "fcntl" || c.args.get(1).is_some_and(|a| a.starts_with("F_DUPFD")) {
                    if let Some(fd) = c.ret {
                        fds.insert((pid, fd));
                    }
                }
                true
            }
            _ => fd_arg(0),
        };
        if hit {
            out.push(c);
        }
    }
    out
}

/// How many of `calls` are among `names`.
pub fn count(calls: &[&Syscall], names: &[&str]) -> usize {
    calls
        .iter()
        .filter(|c| names.contains(&c.name.as_str()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strace::parse;

    #[test]
    fn follows_a_file_through_its_descriptor_and_mapping() {
        let calls = parse(
            "\
10 openat(AT_FDCWD, \"t.tbl\", O_RDWR) = 3
10 openat(AT_FDCWD, \"other\", O_RDONLY) = 4
10 fstat(3, {st_mode=S_IFREG|0644, st_size=4096, ...}) = 0
10 read(4, \"x\", 1) = 1
10 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = 0x7f0000000000
10 ftruncate(3, 8192) = 0
10 mremap(0x7f0000000000, 4096, 8192, MREMAP_MAYMOVE) = 0x7f1000000000
10 msync(0x7f1000000000, 8192, MS_SYNC) = 0
10 dup(3) = 5
10 write(5, \"y\", 1) = 1
10 close(3) = 0
10 write(3, \"z\", 1) = -1 EBADF (Bad file descriptor)
11 read(3, \"q\", 1) = 1
",
        );
        let mine = file_calls(&calls, |p| p == "t.tbl");
        let names: Vec<&str> = mine.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "openat",
                "fstat",
                "mmap",
                "ftruncate",
                "mremap",
                "msync",
                "dup",
                "write",
                "close"
            ]
        );
        assert_eq!(count(&mine, WRITE_CALLS), 1);
        assert_eq!(count(&mine, READ_CALLS), 0);
    }
}
