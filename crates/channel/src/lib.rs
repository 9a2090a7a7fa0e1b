//! Step 6, beyond the assignment: shared memory done right. Two processes talk through a
//! single-producer single-consumer ring of variable-size messages in a `MAP_SHARED` mapping of
//! one file (under `/dev/shm` by default), and a benchmark measures it against a pipe, a Unix
//! socket and the floor of two CPUs passing one word on one cache line.
//!
//! Step 5 showed shared memory going wrong: every racer wrote `total` with a load and a
//! separate store, and updates were lost. Here every field has exactly one writer (the sender
//! writes `tail` and the data, the receiver writes `head`), and ordering is explicit: the
//! sender publishes a message with a *release* store of `tail` after writing it, the receiver
//! reads `tail` with an *acquire* load before reading the message. Nothing is lost, and a
//! message costs no system call at all while both sides are busy.
//!
//! What it shows ([`ring`] has the details and the arguments):
//! - atomics over [`memmap2::MmapRaw`], never a `&[u8]` over bytes the other process writes;
//! - zero-copy receive: [`Receiver::recv`] returns a [`Message`] borrowed from the mapping,
//!   released to the sender when dropped;
//! - waiting: spin for a bounded time, then sleep on a *shared* futex in the mapping, woken
//!   only when a flag says the other side sleeps (no lost wake-up; see [`ring`]);
//! - one sender and one receiver at a time (open-file-description locks), and a survivor that
//!   reports a dead peer within a second;
//! - a damaged or foreign file rejected with a one-line reason.
//!
//! A message is at most half the ring's capacity (less 16 bytes of headers), so that it is
//! always contiguous in the mapping. The benchmark sizes each ring to its messages (4 MiB for
//! 1 MiB messages: no splitting); `channel send` splits a line longer than that into pieces
//! that `channel recv` prints back to back.
//!
//! Run it: `channel recv demo` in one terminal, `channel send demo` in another, type lines.
//! `channel bench` measures round-trip latency and throughput of every transport (`--quick`
//! for a short run, `--json` for [`bench::BenchReport`]); `channel bench --only ring-spin
//! --size 64 --messages 10000` runs one cell exactly, for `strace -f -c`.
//! `cargo xtask run-step 6` explains it all.
//!
//! ```no_run
//! use channel::{Options, Receiver, Sender};
//! use std::path::Path;
//! let path = Path::new("/dev/shm/demo");
//! let mut tx = Sender::open(path, Options::default())?;
//! tx.send(b"hello")?;
//! let mut rx = Receiver::open(path, Options::default())?;
//! let msg = rx.recv()?.expect("a message");
//! assert_eq!(&*msg, b"hello");
//! # Ok::<(), channel::Error>(())
//! ```
//!
//! What a production system would do differently: use a maintained zero-copy IPC library such
//! as iceoryx2 (or Aeron, or a `memfd`-backed ring) that adds what this teaching version leaves
//! out — many publishers and subscribers with typed, versioned payloads; a shared-memory
//! allocator so messages are written in place instead of copied in (our `send` copies once);
//! `memfd_create` or anonymous shared memory passed over a Unix socket instead of a name in
//! `/dev/shm`; robust recovery when a peer dies mid-message (we only report it); event
//! notification through eventfd or io_uring so a reader can wait on many channels and sockets
//! at once; and backpressure policies other than "block the sender".

pub mod bench;
pub mod fuzz;
pub mod ring;
mod sys;

pub use ring::{
    capacity_for, inspect, max_message, Error, Info, Leave, Message, Options, Receiver, Role,
    Sender, Stats, Wait, DEFAULT_CAPACITY,
};

/// Set when SIGINT, SIGTERM or SIGHUP arrived, once [`install_interrupt_handlers`] ran. Pass
/// it as [`Options::interrupt`] so waits end with [`Error::Interrupted`].
pub fn interrupt_flag() -> &'static std::sync::atomic::AtomicBool {
    &sys::INTERRUPTED
}

/// The signal that set [`interrupt_flag`] first (SIGINT, SIGTERM or SIGHUP), if one did.
pub fn interrupt_signal() -> Option<i32> {
    match sys::FIRST_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Installs the handlers behind [`interrupt_flag`] (a second signal exits at once), and a
/// SIGBUS handler that turns a file truncated under the mapping into a one-line error, exit 1.
pub fn install_interrupt_handlers() -> std::io::Result<()> {
    sys::install_interrupt_handlers()
}

/// Waits (at most `timeout`) until `fd` has input; `false` on timeout or signal (`poll(2)`).
pub fn wait_readable(
    fd: &impl std::os::fd::AsRawFd,
    timeout: std::time::Duration,
) -> std::io::Result<bool> {
    sys::wait_readable(fd, timeout)
}

/// The CPUs this thread may run on (`sched_getaffinity(2)`).
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    sys::allowed_cpus()
}

/// Restricts this thread to `cpus` (`sched_setaffinity(2)`); in a single-threaded program,
/// the whole process.
pub fn set_affinity(cpus: &[usize]) -> std::io::Result<()> {
    sys::set_affinity(cpus)
}

/// The `--json` documents of `channel send`, `recv` and `info`, defined once for xtask.
pub mod report {
    use serde::{Deserialize, Serialize};

    /// `channel send --json`: one document when the sender leaves.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SendReport {
        pub file: std::path::PathBuf,
        /// Messages sent (a line is one message; a line longer than the ring takes is split).
        pub messages: u64,
        pub bytes: u64,
        /// Stopped by Ctrl-C: the stream was left stopped, not closed (the receiver prints
        /// what was sent, then says the stream stopped before its end).
        pub interrupted: bool,
        /// Bytes still unread when the sender left.
        pub unread: u64,
        /// The file was removed (no receiver left and nothing unread).
        pub removed: bool,
    }

    /// `channel recv --json`: one object per line, a message or the end.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum RecvLine {
        /// A message: its number (from 1), length, and text (lossy UTF-8, without a final
        /// newline). `lossy` is true (and only then present) when the bytes were not valid
        /// UTF-8, so `text` has U+FFFD in place of what could not be decoded.
        Message {
            seq: u64,
            bytes: u64,
            text: String,
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            lossy: bool,
        },
        /// The last line.
        End {
            /// "closed" (the sender closed the channel) or "interrupted".
            reason: String,
            messages: u64,
            bytes: u64,
            removed: bool,
        },
    }
}
