//! What an inotify watch on the table saw during one run, without any tracer: the kernel's
//! own account of system calls on the file, which a program cannot hide by noticing strace.
//!
//! Measured on Linux 6.18 (the lab's VM): loads and stores through a `MAP_SHARED` mapping of
//! the file, `msync` and `mremap` raise no event; `read`, `pread`, `sendfile`,
//! `copy_file_range` from the file (also through a `/proc/self/fd/N` reopen) and io_uring's
//! `IORING_OP_READ` raise `IN_ACCESS`; `MAP_POPULATE`, `madvise(WILLNEED)`, `posix_fadvise`,
//! `readahead`, `mincore`, `fsync` and `lseek` raise nothing; `write`, `pwrite` raise
//! `IN_MODIFY`, and so do every `ftruncate` (to a larger size or the same one) and `fallocate`. The kernel merges an event with an identical one still queued, so the counts say
//! "at least": only zero and non-zero are judged.

use serde::{Deserialize, Serialize};

/// The events seen on the table file during one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEvents {
    /// `IN_ACCESS`: the file was read by a system call (not through a mapping).
    pub access: u32,
    /// `IN_MODIFY`: written by a system call, or truncated (not stores through a mapping).
    pub modify: u32,
    /// Another file has the table's name after the run (its inode changed), or the table was
    /// moved or deleted (`IN_MOVE_SELF`, `IN_DELETE_SELF`).
    pub replaced: bool,
    /// The event queue overflowed (`IN_Q_OVERFLOW`): some events were lost.
    pub overflow: bool,
}

impl FileEvents {
    /// One phrase for the evidence line: `inotify: 0 read and 0 write events on the file`.
    pub fn describe(&self) -> String {
        format!(
            "inotify: {} read and {} write/truncate events on the file{}{}",
            self.access,
            self.modify,
            if self.replaced {
                ", and the file was replaced"
            } else {
                ""
            },
            if self.overflow {
                " (the queue overflowed)"
            } else {
                ""
            }
        )
    }
}
