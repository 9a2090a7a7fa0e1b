//! Following one file through a trace: its `openat`, every call on the descriptor that openat
//! returned (until it is closed), the `mmap`s of that descriptor, and the `mremap`, `munmap`,
//! `msync`, `madvise` and `mincore` of the addresses those mmaps (and later mremaps) returned.
//!
//! A trace recorded with `strace -y` names the file behind every descriptor argument
//! (`read(3</tmp/x/table.bin>, …)`), in every thread and child, whatever name or route gave the
//! descriptor (`dup`, a reopen of `/proc/self/fd/N`, a descriptor inherited over fork): a call is
//! then the file's when one of its descriptors is, and no descriptor bookkeeping is needed. A
//! trace without `-y` (recorded evidence) is followed by descriptor number, per process: two
//! processes' descriptor 3 are not confused, but a thread's or a child's calls on an inherited
//! descriptor are not seen. Mapped addresses are followed across the whole trace (threads share
//! them, and a fork()ed child keeps its parent's mappings at the same addresses).

use std::collections::HashSet;

use crate::strace::Syscall;

/// System calls that read a descriptor.
pub const READ_CALLS: &[&str] = &["read", "pread64", "readv", "preadv", "preadv2"];
/// System calls that write a descriptor.
pub const WRITE_CALLS: &[&str] = &["write", "pwrite64", "writev", "pwritev", "pwritev2"];
/// System calls that move bytes from one descriptor to another, with the argument index of the
/// source and of the destination: reading the file through them is reading it.
pub const TRANSFER_CALLS: &[(&str, usize, usize)] = &[
    ("copy_file_range", 0, 2),
    ("sendfile", 1, 0),
    ("sendfile64", 1, 0),
    ("splice", 0, 2),
    ("tee", 0, 1),
];
/// io_uring's calls: a program that reads or writes through a submission ring makes no read or
/// write call a trace could show.
pub const URING_CALLS: &[&str] = &["io_uring_setup", "io_uring_enter", "io_uring_register"];
/// Kernel AIO's calls: an `IOCB_CMD_PREAD`/`IOCB_CMD_PWRITE` submitted by `io_submit` reads or
/// writes a descriptor with no read or write call (and, on Linux 6.18, no inotify event).
pub const AIO_CALLS: &[&str] = &[
    "io_setup",
    "io_submit",
    "io_getevents",
    "io_pgetevents",
    "io_cancel",
    "io_destroy",
];
/// The calls that rename or link a file (another file put in its place, or it under another
/// name).
pub const RENAME_CALLS: &[&str] = &["rename", "renameat", "renameat2", "link", "linkat"];
/// The calls that start a process or thread with flags (`fork`/`vfork` take none).
pub const CLONE_CALLS: &[&str] = &["clone", "clone3"];
/// `CLONE_UNTRACED`'s bit, for flags strace printed as a number.
const CLONE_UNTRACED: i64 = 0x0080_0000;

/// The calls of `calls` that concern a file whose opened path satisfies `is_file`.
pub fn file_calls(calls: &[Syscall], is_file: impl Fn(&str) -> bool) -> Vec<&Syscall> {
    let mut fds: HashSet<(Option<u32>, i64)> = HashSet::new();
    let mut addrs: HashSet<u64> = HashSet::new();
    let mut out = Vec::new();
    for c in calls {
        let pid = c.pid;
        // Under `strace -y` a descriptor argument names its file; otherwise it is looked up.
        let fd_arg = |i: usize| match c.fd_path(i) {
            Some(path) => is_file(path),
            None => c.arg_i64(i).is_some_and(|fd| fds.contains(&(pid, fd))),
        };
        let hit = match c.name.as_str() {
            "openat" | "open" | "creat" => {
                let idx = usize::from(c.name == "openat");
                let named = match &c.ret_path {
                    // What was opened, whatever name opened it (`/proc/self/fd/3`, a link).
                    Some(path) => is_file(path),
                    None => c.arg_str(idx).is_some_and(&is_file),
                };
                if named && c.ok() {
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
                        addrs.insert(a);
                    }
                }
                mine
            }
            "mremap" => {
                let mine = c.arg_u64(0).is_some_and(|a| addrs.contains(&a));
                if mine && c.ok() {
                    if let (Some(old), Some(new)) = (c.arg_u64(0), c.ret_u64()) {
                        addrs.remove(&old);
                        addrs.insert(new);
                    }
                }
                mine
            }
            // Their first argument is no descriptor (an AIO context, a count, clone's stack).
            name if AIO_CALLS.contains(&name) || CLONE_CALLS.contains(&name) => false,
            "munmap" | "msync" | "madvise" | "mincore" => {
                c.arg_u64(0).is_some_and(|a| addrs.contains(&a))
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
            // truncate(2) by name.
            "truncate" => c.arg_str(0).is_some_and(&is_file),
            // A file renamed or linked onto the file's name replaces it; the file renamed or
            // linked away goes on under another name.
            "rename" | "link" => (0..2).any(|i| c.arg_str(i).is_some_and(&is_file)) && c.ok(),
            "renameat" | "renameat2" | "linkat" => {
                [1, 3].iter().any(|i| c.arg_str(*i).is_some_and(&is_file)) && c.ok()
            }
            name => match TRANSFER_CALLS.iter().find(|(n, _, _)| *n == name) {
                Some((_, src, dst)) => fd_arg(*src) || fd_arg(*dst),
                None => fd_arg(0),
            },
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

/// How a file was read and written by system calls, from [`file_calls`]'s selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Io {
    /// [`READ_CALLS`], and [`TRANSFER_CALLS`] from the file.
    pub reads: usize,
    /// [`WRITE_CALLS`], and [`TRANSFER_CALLS`] into the file.
    pub writes: usize,
    /// Of those, the transfers (copy_file_range, sendfile, splice, tee).
    pub transfers: usize,
    /// Successful renames or links onto the file's name (a new file in its place) or of it.
    pub renames: usize,
    /// The names of the calls that read it, and of those that wrote it, in order of first use.
    pub read_names: Vec<String>,
    pub write_names: Vec<String>,
}

fn note(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|n| n == name) {
        names.push(name.to_string());
    }
}

/// Counts the reads and writes among `mine` (the file's calls, by [`file_calls`] with the same
/// `is_file`). A transfer's direction comes from its annotated descriptors (`strace -y`); in a
/// trace without them, from which argument [`file_calls`] matched, descriptor by number: the
/// source when the first argument is the file's (or is not known), else the destination.
pub fn io(mine: &[&Syscall], is_file: impl Fn(&str) -> bool) -> Io {
    let mut io = Io {
        reads: count(mine, READ_CALLS),
        writes: count(mine, WRITE_CALLS),
        ..Io::default()
    };
    for c in mine {
        if READ_CALLS.contains(&c.name.as_str()) {
            note(&mut io.read_names, &c.name);
        }
        if WRITE_CALLS.contains(&c.name.as_str()) {
            note(&mut io.write_names, &c.name);
        }
        if RENAME_CALLS.contains(&c.name.as_str()) {
            io.renames += 1;
            continue;
        }
        let Some((_, src, dst)) = TRANSFER_CALLS.iter().find(|(n, _, _)| *n == c.name) else {
            continue;
        };
        io.transfers += 1;
        let annotated = |i: usize| c.fd_path(i).map(&is_file);
        let (from, to) = match (annotated(*src), annotated(*dst)) {
            (Some(from), Some(to)) => (from, to),
            _ => (*src == 0, *src != 0),
        };
        if from {
            io.reads += 1;
            note(&mut io.read_names, &c.name);
        }
        if to {
            io.writes += 1;
            note(&mut io.write_names, &c.name);
        }
    }
    io
}

/// How many of `calls` are among `names` and succeeded.
fn successful(calls: &[Syscall], names: &[&str]) -> usize {
    calls
        .iter()
        .filter(|c| names.contains(&c.name.as_str()) && c.ok())
        .count()
}

/// How many of `calls` (the whole trace) are io_uring calls that succeeded (a ring was made or
/// used).
pub fn uring_calls(calls: &[Syscall]) -> usize {
    successful(calls, URING_CALLS)
}

/// How many of `calls` (the whole trace) are kernel AIO calls that succeeded (a context was made
/// or used).
pub fn aio_calls(calls: &[Syscall]) -> usize {
    successful(calls, AIO_CALLS)
}

/// The `clone`/`clone3` calls of `calls` that asked for `CLONE_UNTRACED` and did not fail: each
/// started a process (or thread) that `strace -f` does not follow, whose calls the trace lacks.
/// strace prints the flags as `flags=CLONE_UNTRACED|SIGCHLD` (clone) or
/// `{flags=CLONE_UNTRACED, exit_signal=SIGCHLD, …}` (clone3); a flag strace did not name is a
/// number, whose bit counts too.
pub fn untraced_clones(calls: &[Syscall]) -> Vec<&Syscall> {
    calls
        .iter()
        .filter(|c| CLONE_CALLS.contains(&c.name.as_str()) && c.errno.is_none())
        .filter(|c| {
            let args = c.args.join(", ");
            let Some(at) = args.find("flags=") else {
                return false;
            };
            let rest = &args[at + "flags=".len()..];
            let flags = &rest[..rest.find([',', '}']).unwrap_or(rest.len())];
            flags.split('|').map(str::trim).any(|f| {
                f == "CLONE_UNTRACED"
                    || crate::strace::parse_number(f).is_some_and(|n| n & CLONE_UNTRACED != 0)
            })
        })
        .collect()
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

    #[test]
    fn under_strace_y_every_thread_child_and_name_of_the_file_counts() {
        let calls = parse(
            "\
20 openat(AT_FDCWD</w>, \"table.bin\", O_RDONLY) = 3</w/table.bin>
20 mmap(NULL, 48, PROT_READ, MAP_SHARED, 3</w/table.bin>, 0) = 0x7f0000000000
21 pread64(3</w/table.bin>, \"\\5\\0\"..., 48, 0) = 48
22 read(3</w/table.bin>,  <unfinished ...>
20 read(4<pipe:[1]>, \"x\", 1) = 1
22 <... read resumed>\"\", 4096) = 0
20 openat(AT_FDCWD</w>, \"/proc/self/fd/3\", O_RDONLY) = 4</w/table.bin>
20 readv(4</w/table.bin>, [{iov_base=\"\", iov_len=4}], 1) = 4
20 openat(AT_FDCWD</w>, \"copy\", O_RDWR|O_CREAT, 0600) = 5</w/copy>
20 copy_file_range(3</w/table.bin>, [0], 5</w/copy>, [0], 48, 0) = 48
20 sendfile(3</w/table.bin>, 5</w/copy>, NULL, 48) = 48
20 read(5</w/copy>, \"x\", 1) = 1
21 mremap(0x7f0000000000, 48, 8192, MREMAP_MAYMOVE) = 0x7f1000000000
22 munmap(0x7f1000000000, 8192) = 0
20 rename(\"next\", \"table.bin\") = 0
20 io_uring_setup(8, 0x7ffd0000) = 6<anon_inode:[io_uring]>
",
        );
        let is = |p: &str| p.ends_with("/table.bin") || p == "table.bin";
        let mine = file_calls(&calls, is);
        let names: Vec<&str> = mine.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "openat",
                "mmap",
                "pread64",
                "read",
                "openat",
                "readv",
                "copy_file_range",
                "sendfile",
                "mremap",
                "munmap",
                "rename"
            ]
        );
        let io = io(&mine, is);
        assert_eq!(
            (io.reads, io.writes, io.transfers, io.renames),
            (4, 1, 2, 1)
        );
        assert_eq!(
            io.read_names,
            ["pread64", "read", "readv", "copy_file_range"]
        );
        assert_eq!(io.write_names, ["sendfile"]);
        assert_eq!(mine[0].ret, Some(3));
        assert_eq!(mine[0].ret_path.as_deref(), Some("/w/table.bin"));
        assert_eq!(mine[1].arg_i64(4), Some(3));
        assert_eq!(uring_calls(&calls), 1);
    }

    #[test]
    fn kernel_aio_and_untraced_clones_are_found_as_strace_y_prints_them() {
        let calls = parse(
            "\
30 openat(AT_FDCWD</w>, \"table.bin\", O_RDWR) = 3</w/table.bin>
30 io_setup(3, [0x7f14bece9000]) = 0
30 io_submit(0x7f14bece9000, 1, [{aio_data=0, aio_lio_opcode=IOCB_CMD_PREAD, aio_fildes=3</w/table.bin>, aio_buf=0x5614, aio_nbytes=20, aio_offset=0}]) = 1
30 io_getevents(0x7f14bece9000, 1, 1, [{data=0, obj=0x7fff, res=20, res2=0}], NULL) = 1
30 io_destroy(0x7f14bece9000) = 0
30 io_cancel(0x7f14bece9000, 0x7fff, 0x7ffe) = -1 EINVAL (Invalid argument)
30 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f5d, parent_tid=0x7f5d, exit_signal=0, stack=0x7f5c, stack_size=0x7fff80, tls=0x7f5d} => {parent_tid=[31]}, 88) = 31
30 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f5d) = 32
30 clone(child_stack=NULL, flags=CLONE_UNTRACED|SIGCHLD) = 33
30 clone3({flags=CLONE_UNTRACED, exit_signal=SIGCHLD, stack=NULL, stack_size=0}, 88) = 34
30 clone(child_stack=NULL, flags=0x800000|SIGCHLD) = 35
30 clone(child_stack=NULL, flags=CLONE_UNTRACED|CLONE_NEWUSER|SIGCHLD) = -1 EPERM (Operation not permitted)
",
        );
        // Four AIO calls succeeded (io_cancel failed); the table's calls are its openat only
        // (io_setup's count 3 is no descriptor).
        assert_eq!(aio_calls(&calls), 4);
        assert_eq!(uring_calls(&calls), 0);
        let mine = file_calls(&calls, |p| p.ends_with("/table.bin"));
        assert_eq!(mine.len(), 1);
        // pthread_create's clone3 and fork()'s clone are followed; the three CLONE_UNTRACED
        // ones that succeeded are not (the failed one started nothing).
        let untraced: Vec<Option<i64>> = untraced_clones(&calls).iter().map(|c| c.ret).collect();
        assert_eq!(untraced, [Some(33), Some(34), Some(35)]);
    }

    #[test]
    fn descriptors_split_from_their_strace_y_paths() {
        use crate::strace::split_fd_path;
        assert_eq!(split_fd_path("3</a b/t.bin>"), ("3", Some("/a b/t.bin")));
        assert_eq!(split_fd_path("AT_FDCWD</w>"), ("AT_FDCWD", Some("/w")));
        assert_eq!(split_fd_path("5<pipe:[12]>"), ("5", Some("pipe:[12]")));
        assert_eq!(split_fd_path("3"), ("3", None));
        assert_eq!(split_fd_path("\"<x>\""), ("\"<x>\"", None));
        let c = &parse("1 openat(AT_FDCWD</w>, \"t\", O_RDONLY) = -1 ENOENT (No such file)\n")[0];
        assert_eq!(
            (c.ret, c.errno.as_deref(), c.ret_path.as_deref()),
            (Some(-1), Some("ENOENT"), None)
        );
        assert_eq!(c.arg_plain(0), Some("AT_FDCWD"));
        // As strace 6.1 prints a descriptor whose file was unlinked or renamed over.
        let gone = &parse("1 ftruncate(3</w/table.bin>(deleted), 8) = 0\n")[0];
        assert_eq!(
            (gone.arg_i64(0), gone.fd_path(0)),
            (Some(3), Some("/w/table.bin"))
        );
    }
}
