//! The ring: file layout, joining and leaving, sending, zero-copy receiving, and waiting.
//!
//! # File layout
//!
//! ```text
//! offset   written by     contents
//! 0        creator, once  magic "MMLABRNG", version, header length (4096), capacity
//! 128      sender         tail (bytes ever published), sender pid, sender sessions, closed
//!                         (0 open, 1 the sender closed the stream, 2 it stopped before its end)
//! 256      receiver       head (bytes ever released), receiver pid, receiver sessions
//! 384      both           recv_waiting: the receiver's futex word (1 = it sleeps or is about to)
//! 512      both           send_waiting: the sender's futex word
//! 4096     sender         data: `capacity` bytes (a power of two) of records
//! ```
//!
//! Each group sits on its own 128-byte block: the sender's stores to `tail` never invalidate the
//! line the receiver writes `head` on (no false sharing, and adjacent-line prefetchers on x86
//! pair lines in 128 bytes). `head` and `tail` only grow; `position & (capacity - 1)` is the
//! offset in the data area.
//!
//! A record is an 8-byte header followed by the payload, padded to 8 bytes. The header holds
//! the payload length (with a padding bit) and a *stamp* derived from the record's position,
//! different in every lap and never zero. A record never wraps: when it does not fit before the
//! end of the data area the sender writes a padding record to the end and starts at offset 0,
//! so every message is contiguous in the mapping and can be borrowed as one `&[u8]`. A record
//! is at most half the capacity less 8 bytes, which guarantees that an empty ring can always
//! take it.
//!
//! # Publishing and consuming
//!
//! The sender copies the payload in (a raw copy: the receiver does not look at those bytes
//! yet), zeroes the header slot where the *next* record will start, then publishes with a
//! *release* store of the record's header. The receiver *acquire*-loads the header at `head`:
//! once it carries the stamp of that position, everything written before the release (the
//! payload, the zeroed next slot) is visible, and it may read the record. The header slot at
//! `head` always holds zero or a header stamped for this very position — stale bytes of an
//! earlier lap can never pass for a record there. Publishing in the record itself (rather than
//! only through `tail`) means the receiver's wait ends with the record's first cache line in
//! hand: one cache-line transfer for a small message instead of two (`tail`, then the data).
//! The sender still stores `tail` (release) after each record: a later sender continues from it
//! (moving past records a killed sender published without storing `tail`), and `unread`
//! counts come from it.
//!
//! A receiver that copies messages out (as `channel recv` does, into stdout) keeps them
//! ([`Message::keep`]) instead of releasing each one, and releases the batch
//! ([`Receiver::release`]) only after the copy reached its destination: a receiver killed in
//! between leaves the messages in the ring for the next one. At the end of a closed stream
//! `head` (all that was read) must equal `tail` (all that was sent); anything else is a
//! damaged ring, reported and kept.
//!
//! The receiver releases a record with a release store of `head`; the sender acquire-loads
//! `head` (only when its cached copy says the ring is full) before reusing those bytes. Each
//! field has one writer: no read-modify-write races, nothing lost (compare step 5, where every
//! racer wrote `total`).
//!
//! # Why borrowing a message is sound
//!
//! [`Message`] derefs to a `&[u8]` over the mapping. The sender writes a byte of the data area
//! only inside `[tail, head + capacity)`, with `head` as last published by the receiver; the
//! receiver publishes a new `head` only when the [`Message`] is dropped. So while a message is
//! borrowed its bytes are outside every region the sender may write: nobody writes them until
//! the borrow ends. (This rests on the peer following the protocol. A hostile process that maps
//! the file could change them; the receiver never trusts a length or offset from the file
//! without a bounds check, so the worst it could see is changed payload bytes.)
//!
//! # Waiting, and why no wake-up is lost
//!
//! A side that finds nothing to do spins (bounded by [`Options::spin`]), then sleeps with
//! `FUTEX_WAIT` on its own waiting word. The receiver does, in this order:
//! `recv_waiting = 1; fence(SeqCst); if the header at head is published { recv_waiting = 0; go }
//! else FUTEX_WAIT(recv_waiting, 1)`; the sender, after publishing: `header = h (release);
//! tail = t (release); fence(SeqCst); if recv_waiting == 1 { recv_waiting = 0; FUTEX_WAKE }`.
//! The two SeqCst fences are ordered one way or the other: if the receiver's comes first, the
//! sender's load sees `recv_waiting == 1` and wakes it; if the sender's comes first, the
//! receiver's load sees the published header and does not sleep. If the sender clears the word
//! before the receiver reaches `FUTEX_WAIT`, the kernel finds the word is no longer 1 and
//! returns at once (`EAGAIN`): the compare and the enqueue are atomic with respect to
//! `FUTEX_WAKE`. Either way the receiver cannot sleep past a published message. The sender
//! waiting for space is the mirror image with `send_waiting` and `head`. A side only calls
//! `FUTEX_WAKE` when the flag says someone sleeps, so a busy channel makes no system calls at
//! all. The futex is shared (no `FUTEX_PRIVATE_FLAG`): the two processes map the same file
//! page, and the kernel keys the wait on that page.
//!
//! # Who is there
//!
//! Roles are open-file-description locks (`fcntl(2)` `F_OFD_SETLK`) on single bytes of the
//! file: byte 0 the sender, byte 1 the receiver, byte 2 a short membership lock held while a
//! side joins or leaves. A second sender fails to take byte 0 and gets [`Error::Busy`]. The
//! kernel drops a dead process's locks, so a sleeping side checks the peer's byte
//! (`F_OFD_GETLK`) every [`Options::peer_check`] (100 ms): the survivor of a killed peer reports
//! it well within a second. A sender that leaves sets `closed` first: the receiver then drains
//! the ring and sees the end of the stream ([`Sender::close`]), or, when the sender stopped
//! before the end of its stream ([`Sender::abort`], a `Sender` dropped unclosed), reports
//! [`Error::SenderStopped`]: a stream cut short is never taken for a whole one.
//!
//! # Who creates and who removes the file
//!
//! Whichever side comes first creates it: a file without a name in its directory
//! (`O_TMPFILE`) is sized (every block reserved with `posix_fallocate(3)`, so a full disk is an
//! error here and not a SIGBUS at the first message) and initialised, then `linkat(2)`ed into
//! place, which fails if the name exists. So the name only ever refers to a complete ring, two
//! sides starting at once agree on one file, and a creator killed at any instant leaves
//! nothing (file systems without `O_TMPFILE` use a temporary name beside it instead). The last side to leave removes it when `head == tail` (a sender that
//! finished before any receiver came leaves its messages for the next receiver). Only regular
//! files are rings: an existing name is opened with `O_NONBLOCK` (a FIFO does not block) and
//! refused unless `fstat` says it is a regular file.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lab_cli::file::{open_regular, FileKind, OpenFailure};
use memmap2::{MmapOptions, MmapRaw};

use crate::sys;

/// "MMLABRNG", little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"MMLABRNG");
/// The layout version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Bytes before the data area: one page.
pub const HEADER_LEN: u64 = 4096;
/// The smallest data area.
pub const MIN_CAPACITY: u64 = 4096;
/// The largest data area (records are at most half of it, and lengths are 32-bit).
pub const MAX_CAPACITY: u64 = 1 << 30;
/// The data area a new ring gets unless told otherwise: 1 MiB.
pub const DEFAULT_CAPACITY: u64 = 1 << 20;
/// Bytes of a record header.
pub const RECORD_HEADER: u64 = 8;
/// Turns a spinning receiver spends on the record header alone before its general wait: a
/// few microseconds at most (each turn is one load and one pause), far more than a round trip
/// between two CPUs.
const FAST_SPINS: u32 = 256;

/// `closed`: the sender ended the stream ([`Sender::close`]): a receiver that drained the ring
/// has seen every message of it.
const ENDED: u32 = 1;
/// `closed`: the sender left before the end of its stream ([`Sender::abort`], or a `Sender`
/// dropped without [`Sender::close`]: an error or an interrupt stopped it). A receiver drains
/// the ring, then reports it rather than an end (an older receiver, reading any non-zero as
/// closed, takes it for an end).
const STOPPED: u32 = 2;

/// The high bit of a record header's stamp: a published header is never zero.
const STAMP_BIT: u32 = 0x8000_0000;
/// The high bit of a record header's length word: this record is padding to the end of the
/// data area.
const PADDING_BIT: u32 = 0x8000_0000;

/// The stamp of a record that starts at `position`: differs from the stamp of any record that
/// started at the same offset in an earlier lap (capacity / 8 < 2^31), and is never 0.
#[inline]
fn stamp(position: u64) -> u32 {
    STAMP_BIT | ((position >> 3) as u32 & !STAMP_BIT)
}

/// A record header: stamp in the high 32 bits, length (and the padding bit) in the low 32.
#[inline]
fn record_word(position: u64, len: u64, padding: bool) -> u64 {
    let len_word = len as u32 | if padding { PADDING_BIT } else { 0 };
    (u64::from(stamp(position)) << 32) | u64::from(len_word)
}

mod off {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const HEADER_LEN: usize = 12;
    pub const CAPACITY: usize = 16;
    pub const TAIL: usize = 128;
    pub const SENDER_PID: usize = 136;
    pub const SENDER_SESSIONS: usize = 140;
    pub const CLOSED: usize = 144;
    pub const HEAD: usize = 256;
    pub const RECEIVER_PID: usize = 264;
    pub const RECEIVER_SESSIONS: usize = 268;
    pub const RECV_WAITING: usize = 384;
    pub const SEND_WAITING: usize = 512;
}

const LOCK_SENDER: u64 = 0;
const LOCK_RECEIVER: u64 = 1;
const LOCK_MEMBERSHIP: u64 = 2;

/// Which end of the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Sender,
    Receiver,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Sender => "sender",
            Role::Receiver => "receiver",
        })
    }
}

impl Role {
    fn lock_byte(self) -> u64 {
        match self {
            Role::Sender => LOCK_SENDER,
            Role::Receiver => LOCK_RECEIVER,
        }
    }

    fn peer(self) -> Role {
        match self {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        }
    }
}

/// Everything that can go wrong. Messages name the file and the reason, on one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OS error is part of this message and deliberately not a `source()`: a caller that
    /// prints the chain (`anyhow`'s `{:#}`) would print it twice.
    #[error("{what} {}: {cause}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        cause: io::Error,
    },
    #[error(
        "cannot create {}: no space left on {} (a ring of capacity {capacity} needs {needs} \
         bytes)", path.display(), mount.display()
    )]
    NoSpace {
        path: PathBuf,
        /// The mount point of the full file system.
        mount: PathBuf,
        capacity: u64,
        needs: u64,
    },
    #[error(
        "{} is a symbolic link to {}, which does not exist; remove the link or name the ring \
         file itself", path.display(), target.display()
    )]
    DanglingLink { path: PathBuf, target: PathBuf },
    #[error("{} is not a valid channel ring: {reason}", path.display())]
    NotARing { path: PathBuf, reason: String },
    #[error("{} is damaged: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{} already has a {role} (pid {pid}); only one {role} at a time", path.display())]
    Busy { path: PathBuf, role: Role, pid: u32 },
    #[error(
        "a message of {len} bytes is larger than this ring takes ({max} bytes: half the \
         capacity of {capacity} bytes, less 16 bytes of headers); create the ring with a larger \
         capacity"
    )]
    TooLarge {
        len: usize,
        max: usize,
        capacity: u64,
    },
    #[error("the sender (pid {pid}) died without closing {}", path.display())]
    SenderDied { path: PathBuf, pid: u32 },
    #[error(
        "the sender stopped before the end of its stream (an error or an interrupt ended it); \
         everything it sent was received from {}",
        path.display()
    )]
    SenderStopped { path: PathBuf },
    #[error("the receiver{} left {}; {unread} bytes it did not read are still in the ring",
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), path.display())]
    ReceiverGone {
        path: PathBuf,
        pid: Option<u32>,
        unread: u64,
    },
    #[error("interrupted")]
    Interrupted,
}

/// How a side waits when there is nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Spin (with the CPU's pause hint) and never sleep: lowest latency, one CPU burnt per
    /// waiting side, and a disaster when both sides share one CPU.
    Spin,
    /// Spin for [`Options::spin`], then sleep on the shared futex.
    Futex,
}

/// How to open a ring.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Data-area bytes if this side creates the file (a power of two, 4 KiB to 1 GiB).
    pub capacity: u64,
    /// Spin only, or spin then sleep.
    pub wait: Wait,
    /// How long to spin before sleeping ([`Wait::Futex`]). `None`: 20 µs, or 0 when this thread
    /// may run on one CPU only (spinning there only delays the peer it is waiting for).
    pub spin: Option<Duration>,
    /// Checked in every waiting loop; when set, the wait ends with [`Error::Interrupted`].
    pub interrupt: Option<&'static AtomicBool>,
    /// How often a waiting side checks that its peer is still alive.
    pub peer_check: Duration,
    /// Create the file if it does not exist (otherwise a missing file is an error).
    pub create: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            capacity: DEFAULT_CAPACITY,
            wait: Wait::Futex,
            spin: None,
            interrupt: None,
            peer_check: Duration::from_millis(100),
            create: true,
        }
    }
}

/// The spin budget used when [`Options::spin`] is `None`.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

impl Options {
    /// The spin budget that applies for this thread now.
    pub fn effective_spin(&self) -> Duration {
        match (self.wait, self.spin) {
            (Wait::Spin, _) => Duration::MAX,
            (Wait::Futex, Some(d)) => d,
            (Wait::Futex, None) => match sys::allowed_cpus() {
                Ok(cpus) if cpus.len() <= 1 => Duration::ZERO,
                _ => DEFAULT_SPIN,
            },
        }
    }
}

/// How often a side slept and woke the other (each is one `futex` system call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `FUTEX_WAIT` calls made by this side.
    pub sleeps: u64,
    /// `FUTEX_WAKE` calls made by this side.
    pub wakes: u64,
    /// `FUTEX_WAIT` calls that ended by their timeout ([`Options::peer_check`]) rather than a
    /// wake: a sleep nobody ended. With a live, busy peer these should be (close to) none; a
    /// count near `sleeps` means wake-ups are lost.
    pub timeouts: u64,
}

/// What leaving the ring did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leave {
    /// The file was removed (this side was the last one and nothing was unread).
    pub removed: bool,
    /// Bytes published and not yet released when this side left.
    pub unread: u64,
    /// The other side was still attached.
    pub peer_present: bool,
}

/// A snapshot of a ring file's header, for `channel info`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Info {
    pub path: PathBuf,
    pub capacity: u64,
    pub max_message: u64,
    pub head: u64,
    pub tail: u64,
    pub unread: u64,
    pub closed: bool,
    /// The last sender left before the end of its stream (an error or an interrupt stopped it).
    #[serde(default)]
    pub stopped: bool,
    /// Pid of the attached sender (`None`: no process holds the sender's lock).
    pub sender: Option<u32>,
    pub receiver: Option<u32>,
    /// A pid recorded by a sender that is gone without closing (it died).
    pub dead_sender: Option<u32>,
}

/// The mapped file.
struct Ring {
    path: PathBuf,
    file: File,
    map: MmapRaw,
    capacity: u64,
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |cause| Error::Io {
        path: path.to_path_buf(),
        what,
        cause,
    }
}

/// The largest payload a ring of `capacity` bytes takes: a record (header included) of at
/// most half the capacity less 8 bytes, so that an empty ring always has room for it, the
/// padding before it, and the zeroed header slot after it.
#[inline]
pub fn max_message(capacity: u64) -> u64 {
    capacity / 2 - 2 * RECORD_HEADER
}

/// The bytes a message of `len` takes in the ring (header plus payload padded to 8).
#[inline]
pub fn record_len(len: u64) -> u64 {
    RECORD_HEADER + len.div_ceil(8) * 8
}

/// The smallest capacity whose rings take messages of `len` bytes.
pub fn capacity_for(len: u64) -> u64 {
    (2 * record_len(len)).next_power_of_two().max(MIN_CAPACITY)
}

/// Checks the fixed part of a header (the first 24 bytes) against the file's length; returns
/// the capacity. Pure, so damaged headers are unit-tested without files.
pub fn check_header(bytes: &[u8], file_len: u64) -> Result<u64, String> {
    if file_len < HEADER_LEN {
        return Err(format!(
            "the file has {file_len} bytes, less than the {HEADER_LEN}-byte header"
        ));
    }
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let magic = u64_at(off::MAGIC);
    if magic != MAGIC {
        return Err(format!(
            "bad magic {:?} (expected \"MMLABRNG\")",
            String::from_utf8_lossy(&magic.to_le_bytes())
        ));
    }
    let version = u32_at(off::VERSION);
    if version != VERSION {
        return Err(format!("version {version}, this program reads {VERSION}"));
    }
    let header_len = u32_at(off::HEADER_LEN);
    if u64::from(header_len) != HEADER_LEN {
        return Err(format!("header length {header_len}, expected {HEADER_LEN}"));
    }
    let capacity = u64_at(off::CAPACITY);
    if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(format!(
            "capacity {capacity} is not a power of two between {MIN_CAPACITY} and {MAX_CAPACITY}"
        ));
    }
    if file_len != HEADER_LEN + capacity {
        return Err(format!(
            "the file has {file_len} bytes; a ring of capacity {capacity} has {}",
            HEADER_LEN + capacity
        ));
    }
    Ok(capacity)
}

/// The largest `head` or `tail` a ring may hold: 2^62 bytes, centuries of sending, and far
/// enough from `u64::MAX` that no position arithmetic of a record or a lap overflows.
pub const MAX_POSITION: u64 = 1 << 62;

/// Checks head and tail as read from the file.
fn check_positions(head: u64, tail: u64, capacity: u64) -> Result<(), String> {
    if head % 8 != 0 || tail % 8 != 0 {
        return Err(format!("head {head} or tail {tail} is not a multiple of 8"));
    }
    if head > MAX_POSITION || tail > MAX_POSITION {
        return Err(format!(
            "head {head} or tail {tail} is beyond {MAX_POSITION} (2^62) bytes"
        ));
    }
    // `tail` may trail `head` by what a sender killed between publishing a record and storing
    // `tail` left behind (the receiver goes by the records themselves); never by a lap.
    if tail.abs_diff(head) > capacity {
        return Err(format!(
            "head {head} and tail {tail} are inconsistent for capacity {capacity}"
        ));
    }
    Ok(())
}

/// Why an existing ring file did not open ([`lab_cli::file::open_regular`], which refuses what
/// is not a regular file before it can block), worded for a ring.
fn open_error(path: &Path, failure: OpenFailure) -> Error {
    match failure {
        OpenFailure::NotRegular(kind) => not_regular(path, kind),
        OpenFailure::Dangling(target) => Error::DanglingLink {
            path: path.to_path_buf(),
            target,
        },
        OpenFailure::Os(e) => io_err(path, "cannot open")(e),
    }
}

/// The refusal of a path that names a FIFO, directory, device or socket.
fn not_regular(path: &Path, kind: FileKind) -> Error {
    Error::NotARing {
        path: path.to_path_buf(),
        reason: format!("it is {kind}, not a regular file"),
    }
}

/// Checks that an open file is a regular file with a valid fixed header (`fstat(2)`, one
/// `pread(2)`); returns the capacity and the file's length.
fn read_header(path: &Path, file: &File) -> Result<(u64, u64), Error> {
    let not_a_ring = |reason: String| Error::NotARing {
        path: path.to_path_buf(),
        reason,
    };
    let meta = file.metadata().map_err(io_err(path, "cannot stat"))?;
    if let Some(kind) = FileKind::of(meta.file_type()) {
        return Err(not_regular(path, kind));
    }
    let len = meta.len();
    let mut header = [0u8; 24];
    if len >= HEADER_LEN {
        file.read_exact_at(&mut header, 0)
            .map_err(io_err(path, "cannot read"))?;
    }
    let capacity = check_header(&header, len).map_err(not_a_ring)?;
    Ok((capacity, len))
}

/// The mount point of the file system `path` would be created on: the highest ancestor of
/// its directory on the same device (`stat(2)`), for naming a full disk.
fn mount_point(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut dir = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    let Ok(dev) = std::fs::metadata(&dir).map(|m| m.dev()) else {
        return dir;
    };
    while let Some(up) = dir.parent() {
        if std::fs::metadata(up).map(|m| m.dev()).ok() != Some(dev) {
            break;
        }
        dir = up.to_path_buf();
    }
    dir
}

/// A new file without a name in the directory `path` would be created in (`O_TMPFILE`,
/// `open(2)`), readable and writable by its owner only.
fn open_unnamed(path: &Path) -> io::Result<File> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
}

/// `O_TMPFILE` is not there: a file system (or kernel) without it.
fn unnamed_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
    )
}

/// A failure to create the ring at `path`: a full file system named with what the ring needs,
/// anything else with the user's path (never a temporary name, gone when they read it).
fn creation_error(path: &Path, capacity: u64, e: io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        Error::NoSpace {
            path: path.to_path_buf(),
            mount: mount_point(path),
            capacity,
            needs: HEADER_LEN + capacity,
        }
    } else {
        io_err(path, "cannot create")(e)
    }
}

/// Reserves every block of a new ring (a full file system is `ENOSPC` here, not a SIGBUS at the
/// first store into a page it cannot back) and writes its fixed header.
fn fill_new_ring(file: &File, capacity: u64) -> io::Result<()> {
    sys::reserve(file, HEADER_LEN + capacity)?;
    let mut header = [0u8; 24];
    header[off::MAGIC..off::MAGIC + 8].copy_from_slice(&MAGIC.to_le_bytes());
    header[off::VERSION..off::VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
    header[off::HEADER_LEN..off::HEADER_LEN + 4]
        .copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    header[off::CAPACITY..off::CAPACITY + 8].copy_from_slice(&capacity.to_le_bytes());
    // Nobody else can see the file yet: a plain write is fine here.
    file.write_all_at(&header, 0)
}

impl Ring {
    /// The damaged-ring error for this file.
    fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    #[inline]
    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.map.len());
        // SAFETY: the pointer is inside the live mapping owned by `self` (bounds asserted
        // above), 8-aligned (the mapping is page-aligned and the offset a multiple of 8), and
        // every access to these bytes, by this process or the peer, is atomic.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(offset).cast()) }
    }

    #[inline]
    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.map.len());
        // SAFETY: as in `u64_at`, with 4-byte alignment.
        unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(offset).cast()) }
    }

    #[inline]
    fn tail(&self) -> &AtomicU64 {
        self.u64_at(off::TAIL)
    }
    #[inline]
    fn head(&self) -> &AtomicU64 {
        self.u64_at(off::HEAD)
    }
    fn closed(&self) -> &AtomicU32 {
        self.u32_at(off::CLOSED)
    }
    fn pid(&self, role: Role) -> &AtomicU32 {
        self.u32_at(match role {
            Role::Sender => off::SENDER_PID,
            Role::Receiver => off::RECEIVER_PID,
        })
    }
    fn sessions(&self, role: Role) -> &AtomicU32 {
        self.u32_at(match role {
            Role::Sender => off::SENDER_SESSIONS,
            Role::Receiver => off::RECEIVER_SESSIONS,
        })
    }
    #[inline]
    fn waiting(&self, role: Role) -> &AtomicU32 {
        self.u32_at(match role {
            Role::Sender => off::SEND_WAITING,
            Role::Receiver => off::RECV_WAITING,
        })
    }

    /// The header of the record at data offset `offset` (8-aligned, below the capacity).
    #[inline]
    fn record_header(&self, offset: u64) -> &AtomicU64 {
        debug_assert!(offset % 8 == 0 && offset < self.capacity);
        self.u64_at((HEADER_LEN + offset) as usize)
    }

    /// A pointer to data offset `offset`.
    #[inline]
    fn data_ptr(&self, offset: u64) -> *mut u8 {
        assert!(offset <= self.capacity);
        // SAFETY: HEADER_LEN + offset <= HEADER_LEN + capacity == the mapping's length.
        unsafe { self.map.as_mut_ptr().add((HEADER_LEN + offset) as usize) }
    }

    fn peer_present(&self, me: Role) -> Result<bool, Error> {
        sys::byte_locked_by_other(&self.file, me.peer().lock_byte())
            .map_err(io_err(&self.path, "cannot test the lock of"))
    }

    /// Wakes the `role` side if its waiting word says it sleeps (see the module docs). The
    /// look is inline (one load on every message); the wake, rare, is not.
    #[inline]
    fn wake_if_waiting(&self, role: Role, stats: &mut Stats) -> Result<(), Error> {
        if self.waiting(role).load(Ordering::Relaxed) != 0 {
            return self.wake(role, stats);
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn wake(&self, role: Role, stats: &mut Stats) -> Result<(), Error> {
        let word = self.waiting(role);
        if word.swap(0, Ordering::Relaxed) != 0 {
            stats.wakes += 1;
            sys::futex_wake(word, 1).map_err(io_err(&self.path, "futex wake failed on"))?;
        }
        Ok(())
    }

    /// Maps an open file after checking its header; nothing is written.
    fn map(path: &Path, file: File) -> Result<Ring, Error> {
        let (capacity, len) = read_header(path, &file)?;
        let not_a_ring = |reason: String| Error::NotARing {
            path: path.to_path_buf(),
            reason,
        };
        let map = MmapOptions::new()
            .len(len as usize)
            .map_raw(&file)
            .map_err(io_err(path, "cannot map"))?;
        let ring = Ring {
            path: path.to_path_buf(),
            file,
            map,
            capacity,
        };
        let (head, tail) = (
            ring.head().load(Ordering::Acquire),
            ring.tail().load(Ordering::Acquire),
        );
        check_positions(head, tail, capacity).map_err(not_a_ring)?;
        Ok(ring)
    }

    /// Creates a complete ring without a name and links it into place at `path` (where the file
    /// system cannot, under a temporary name: [`Ring::create_named`]). Returns `None` when
    /// `path` appeared meanwhile.
    fn create(path: &Path, capacity: u64) -> Result<Option<File>, Error> {
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(Error::NotARing {
                path: path.to_path_buf(),
                reason: format!(
                    "cannot create it with capacity {capacity}: not a power of two between \
                     {MIN_CAPACITY} and {MAX_CAPACITY}"
                ),
            });
        }
        let no_space = |e| creation_error(path, capacity, e);
        let linked = |e: io::Error| match e.kind() {
            io::ErrorKind::AlreadyExists => Ok(false),
            _ => Err(io_err(path, "cannot link the new ring to")(e)),
        };
        // Without a name until it is complete (`O_TMPFILE`): a creator killed at any instant,
        // even while reserving a gigabyte, leaves nothing behind.
        let file = match open_unnamed(path) {
            Ok(file) if Path::new("/proc/self/fd").is_dir() => file,
            Ok(_) => return Ring::create_named(path, capacity),
            Err(e) if unnamed_unsupported(&e) => return Ring::create_named(path, capacity),
            Err(e) => return Err(no_space(e)),
        };
        fill_new_ring(&file, capacity).map_err(no_space)?;
        let created = sys::link_unnamed(&file, path).map_or_else(linked, |()| Ok(true))?;
        Ok(created.then_some(file))
    }

    /// [`Ring::create`] where the file system has no `O_TMPFILE`: the ring is made under a
    /// temporary name beside `path` and linked into place. Only a kill (SIGKILL) between the
    /// two leaves the temporary name behind.
    fn create_named(path: &Path, capacity: u64) -> Result<Option<File>, Error> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ring".into());
        // Unique per process and per call: two threads of one process may create at once.
        static CREATIONS: AtomicU64 = AtomicU64::new(0);
        let tmp = path.with_file_name(format!(
            ".{name}.{}.{}.creating",
            std::process::id(),
            CREATIONS.fetch_add(1, Ordering::Relaxed)
        ));
        let no_space = |e| creation_error(path, capacity, e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(no_space)?;
        let result = (|| {
            fill_new_ring(&file, capacity).map_err(no_space)?;
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(io_err(path, "cannot link the new ring to")(e)),
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        Ok(result?.then_some(file))
    }

    /// Opens `path`, creating it if missing; holds the membership lock and this role's lock
    /// on return.
    fn join(path: &Path, role: Role, capacity: u64, create: bool) -> Result<Ring, Error> {
        for _attempt in 0..100 {
            let file = match open_regular(path, true) {
                Ok(f) => f,
                // (A dangling link is `Dangling`, never created: link(2) would not replace it.)
                Err(OpenFailure::Os(e)) if create && e.kind() == io::ErrorKind::NotFound => {
                    match Ring::create(path, capacity)? {
                        Some(f) => f,
                        None => continue, // Someone else created it first: open theirs.
                    }
                }
                Err(failure) => return Err(open_error(path, failure)),
            };
            let ring = Ring::map(path, file)?;
            sys::lock_byte(&ring.file, LOCK_MEMBERSHIP).map_err(io_err(path, "cannot lock"))?;
            let nlink = ring
                .file
                .metadata()
                .map_err(io_err(path, "cannot stat"))?
                .nlink();
            if nlink == 0 {
                continue; // The last side removed it between our open and our lock.
            }
            let got = sys::try_lock_byte(&ring.file, role.lock_byte())
                .map_err(io_err(path, "cannot lock"))?;
            if !got {
                return Err(Error::Busy {
                    path: path.to_path_buf(),
                    role,
                    pid: ring.pid(role).load(Ordering::Relaxed),
                });
            }
            // Positions again, now that no side can be joining or leaving.
            let (head, tail) = (
                ring.head().load(Ordering::Acquire),
                ring.tail().load(Ordering::Acquire),
            );
            check_positions(head, tail, ring.capacity).map_err(|reason| Error::NotARing {
                path: path.to_path_buf(),
                reason,
            })?;
            return Ok(ring);
        }
        Err(Error::Io {
            path: path.to_path_buf(),
            what: "gave up joining (created and removed again and again)",
            cause: io::Error::from(io::ErrorKind::TimedOut),
        })
    }

    fn unlock_membership(&self) -> Result<(), Error> {
        sys::unlock_byte(&self.file, LOCK_MEMBERSHIP).map_err(io_err(&self.path, "cannot unlock"))
    }

    /// Leaves: `before_unlock` clears this side's fields; removes the file if the peer is
    /// absent and nothing is unread.
    /// `end` is what a sender leaves in `closed` ([`ENDED`] or [`STOPPED`]); a receiver's is
    /// ignored.
    fn leave(&self, role: Role, end: u32, stats: &mut Stats) -> Result<Leave, Error> {
        sys::lock_byte(&self.file, LOCK_MEMBERSHIP).map_err(io_err(&self.path, "cannot lock"))?;
        if role == Role::Sender {
            self.closed().store(end, Ordering::Release);
        }
        self.pid(role).store(0, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        // Let a sleeping peer notice at once (the end of the stream, or that we left).
        self.wake_if_waiting(role.peer(), stats)?;
        sys::unlock_byte(&self.file, role.lock_byte())
            .map_err(io_err(&self.path, "cannot unlock"))?;
        let peer_present = self.peer_present(role)?;
        let unread = self
            .tail()
            .load(Ordering::Acquire)
            .saturating_sub(self.head().load(Ordering::Acquire));
        let mut removed = false;
        // Exactly equal: a `head` past `tail` is no empty ring but a damaged one (or one a
        // killed sender left before storing `tail`), kept for a look.
        let drained = self.tail().load(Ordering::Acquire) == self.head().load(Ordering::Acquire);
        if !peer_present && drained {
            removed = self.remove_if_still_linked()?;
        }
        self.unlock_membership()?;
        Ok(Leave {
            removed,
            unread,
            peer_present,
        })
    }

    /// Unlinks the path if it still names this file (another ring may have been created there
    /// after a user removed ours).
    fn remove_if_still_linked(&self) -> Result<bool, Error> {
        // Reached through a symbolic link: unlinking the path would remove the user's link
        // (the name the others find the ring by) and leave the ring behind it. Both stay; the
        // drained ring is ready for the next session.
        if self.path.is_symlink() {
            return Ok(false);
        }
        let mine = self
            .file
            .metadata()
            .map_err(io_err(&self.path, "cannot stat"))?;
        if mine.nlink() == 0 {
            return Ok(false);
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if m.dev() == mine.dev() && m.ino() == mine.ino() => {
                std::fs::remove_file(&self.path).map_err(io_err(&self.path, "cannot remove"))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// How closely `wait_until`'s `ready` looks: [`Look::Quick`] on most turns of the spin loop,
/// where it reads only what the peer writes to end this wait (the record header at `head`, or
/// `head`), [`Look::Full`] on the first turn, every 16th, and always before and after a sleep,
/// where it also reads words on lines the peer writes for other reasons (`closed`, on the
/// line of `tail`). A spinning side that read `closed` on every turn would pull the `tail`
/// line out of the sender's cache after each of its `tail` stores: one more cache-line
/// transfer per message, on the sender's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    Quick,
    Full,
}

/// Spins, then sleeps on `role`'s futex word, until `ready` returns something. `alive` runs
/// every `peer_check` while waiting and fails when the peer is gone.
fn wait_until<T>(
    ring: &Ring,
    role: Role,
    opts: &Options,
    spin: Duration,
    stats: &mut Stats,
    mut ready: impl FnMut(&Ring, Look) -> Result<Option<T>, Error>,
    mut alive: impl FnMut(&Ring) -> Result<(), Error>,
) -> Result<T, Error> {
    let start = Instant::now();
    let mut last_check = start;
    let mut spins: u32 = 0;
    let mut sleeping = opts.wait == Wait::Futex && spin.is_zero();
    let word = ring.waiting(role);
    let interrupted = || opts.interrupt.is_some_and(|f| f.load(Ordering::Relaxed));
    loop {
        let look = if sleeping || spins % 16 == 0 {
            Look::Full
        } else {
            Look::Quick
        };
        if let Some(t) = ready(ring, look)? {
            return Ok(t);
        }
        if interrupted() {
            return Err(Error::Interrupted);
        }
        if !sleeping {
            // Spin phase: no system calls (the clock is read through the vDSO, every 16 turns).
            spins = spins.wrapping_add(1);
            if spins % 16 == 0 {
                let now = Instant::now();
                if opts.wait == Wait::Spin {
                    if now - last_check >= opts.peer_check {
                        alive(ring)?;
                        last_check = now;
                    }
                } else if now - start >= spin {
                    sleeping = true;
                    continue;
                }
            }
            std::hint::spin_loop();
            continue;
        }
        // Sleep phase: announce, re-check, sleep (see "no wake-up is lost" in the module docs).
        word.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let again = ready(ring, Look::Full);
        if !matches!(again, Ok(None)) {
            word.store(0, Ordering::Relaxed);
            if let Some(t) = again? {
                return Ok(t);
            }
        }
        stats.sleeps += 1;
        let outcome = sys::futex_wait(word, 1, opts.peer_check);
        // Awake: withdraw the announcement (the waker may have cleared it already).
        word.store(0, Ordering::Relaxed);
        let outcome = outcome.map_err(io_err(&ring.path, "futex wait failed on"))?;
        if outcome == sys::FutexWait::TimedOut {
            stats.timeouts += 1;
        }
        if outcome == sys::FutexWait::TimedOut || last_check.elapsed() >= opts.peer_check {
            alive(ring)?;
            last_check = Instant::now();
        }
    }
}

/// What a side knows about its peer, read under the membership lock so that no side joins or
/// leaves between the reads.
struct PeerStatus {
    present: bool,
    pid: u32,
    sessions: u32,
    closed: bool,
}

impl Ring {
    fn peer_status(&self, me: Role) -> Result<PeerStatus, Error> {
        sys::lock_byte(&self.file, LOCK_MEMBERSHIP).map_err(io_err(&self.path, "cannot lock"))?;
        let present = self.peer_present(me);
        let status = PeerStatus {
            present: false,
            pid: self.pid(me.peer()).load(Ordering::Relaxed),
            sessions: self.sessions(me.peer()).load(Ordering::Relaxed),
            closed: self.closed().load(Ordering::Acquire) != 0,
        };
        self.unlock_membership()?;
        Ok(PeerStatus {
            present: present?,
            ..status
        })
    }
}

/// The record published at `position`, as (length, is padding); `None` while its header slot
/// does not carry the stamp of this position (not yet published). An acquire load: after it,
/// the record's payload is visible.
fn published(ring: &Ring, position: u64) -> Option<(u64, bool)> {
    let word = ring
        .record_header(position & (ring.capacity - 1))
        .load(Ordering::Acquire);
    decode(word, position)
}

/// A record header read at `position`, as [`published`] describes it.
#[inline]
fn decode(word: u64, position: u64) -> Option<(u64, bool)> {
    if (word >> 32) as u32 != stamp(position) {
        return None;
    }
    let len_word = word as u32;
    Some((
        u64::from(len_word & !PADDING_BIT),
        len_word & PADDING_BIT != 0,
    ))
}

/// Fails when `tail` says a record starts at `head` but none is published there.
fn unpublished_record(ring: &Ring, head: u64) -> Result<(), Error> {
    let tail = ring.tail().load(Ordering::Acquire);
    if tail > head && published(ring, head).is_none() {
        return Err(ring.corrupt(format!(
            "tail {tail} says a record starts at {head}, but its header {:#018x} is not one",
            ring.record_header(head & (ring.capacity - 1))
                .load(Ordering::Acquire)
        )));
    }
    Ok(())
}

/// At the end of a closed stream `head` (all the receiver read) must equal `tail` (all the
/// sender wrote): a `head` past `tail` released bytes never sent; a `tail` past it holds
/// bytes no record at `head` leads to. Either way the ring is damaged, not drained.
fn end_of_stream(ring: &Ring, head: u64) -> Result<(), Error> {
    head_leads_to_tail(ring, head, "at the end of the stream ")
}

/// `head` must not be past `tail`, and when `tail` is past it a record must start at it:
/// otherwise no receiver can ever reach what lies before `tail`. `when` prefixes the reason.
fn head_leads_to_tail(ring: &Ring, head: u64, when: &str) -> Result<(), Error> {
    let tail = ring.tail().load(Ordering::Acquire);
    if head > tail {
        return Err(ring.corrupt(format!("{when}head {head} is past tail {tail}")));
    }
    unpublished_record(ring, head)
}

/// A published record, checked against the ring.
struct Published {
    len: u64,
    padding: bool,
    /// The bytes it takes: header and padded payload, or (padding) up to the end of the data
    /// area. A multiple of 8, so positions stay 8-aligned.
    step: u64,
}

/// The record published at `position`, if any, checked so that whatever the file says, no
/// offset outside the data area is ever derived from it: padding reaches exactly the end of
/// the data area, a message fits before it and within [`max_message`]. Anything else is a
/// damaged ring. The receiver reads with it and a joining sender recovers `tail` with it.
fn checked_record(ring: &Ring, position: u64) -> Result<Option<Published>, Error> {
    let Some((len, padding)) = published(ring, position) else {
        return Ok(None);
    };
    check_record(ring, position, len, padding).map(Some)
}

/// [`checked_record`] of a header already read.
#[inline]
fn check_record(ring: &Ring, position: u64, len: u64, padding: bool) -> Result<Published, Error> {
    let cap = ring.capacity;
    let offset = position & (cap - 1);
    let step = if padding { len } else { record_len(len) };
    let fits = if padding {
        len == cap - offset
    } else {
        len <= max_message(cap) && offset + step <= cap
    };
    if !fits {
        return Err(bad_record(ring, offset, len, padding));
    }
    Ok(Published { len, padding, step })
}

/// Why a record header [`check_record`] refused does not fit: out of the message path.
#[cold]
#[inline(never)]
fn bad_record(ring: &Ring, offset: u64, len: u64, padding: bool) -> Error {
    ring.corrupt(if padding {
        format!("padding of {len} bytes at offset {offset} does not reach the end")
    } else {
        format!("a record of {len} bytes at offset {offset} does not fit")
    })
}

/// Where a joining sender continues: the stored `tail`, moved past any record a previous sender
/// published before dying between the header and the `tail` store.
fn recover_tail(ring: &Ring, head: u64) -> Result<u64, Error> {
    let cap = ring.capacity;
    let mut tail = ring.tail().load(Ordering::Acquire);
    while let Some(r) = checked_record(ring, tail)? {
        if tail + r.step > head + cap {
            return Err(ring.corrupt(format!(
                "a record of {} bytes at position {tail} runs past head {head} plus the \
                 capacity",
                r.len
            )));
        }
        tail += r.step;
    }
    ring.tail().store(tail, Ordering::Release);
    Ok(tail)
}

/// The refusal of a message of `len` bytes, out of the message path.
#[cold]
#[inline(never)]
fn too_large(len: usize, capacity: u64) -> Error {
    Error::TooLarge {
        len,
        max: max_message(capacity) as usize,
        capacity,
    }
}

/// The sending end of a ring.
pub struct Sender {
    ring: Ring,
    opts: Options,
    spin: Duration,
    /// Our copy of `tail` (we are its only writer).
    tail: u64,
    /// The last `head` we loaded: reloaded only when it says the ring is full, so the sender
    /// does not pull the receiver's cache line on every message.
    head_cached: u64,
    /// A receiver was attached at some point of this session (and its pid).
    receiver_seen: Option<u32>,
    receiver_sessions_at_join: u32,
    stats: Stats,
    left: bool,
}

impl Sender {
    /// Joins the ring at `path` as its sender, creating the file if it does not exist.
    pub fn open(path: &Path, opts: Options) -> Result<Sender, Error> {
        let ring = Ring::join(path, Role::Sender, opts.capacity, opts.create)?;
        ring.closed().store(0, Ordering::Relaxed);
        ring.pid(Role::Sender)
            .store(std::process::id(), Ordering::Relaxed);
        ring.sessions(Role::Sender).fetch_add(1, Ordering::Relaxed);
        let receiver_present = ring.peer_present(Role::Sender);
        let receiver_sessions_at_join = ring.sessions(Role::Receiver).load(Ordering::Relaxed);
        let receiver_pid = ring.pid(Role::Receiver).load(Ordering::Relaxed);
        let unlocked = ring.unlock_membership();
        let receiver_present = receiver_present?;
        unlocked?;
        let head_cached = ring.head().load(Ordering::Acquire);
        let tail = recover_tail(&ring, head_cached)?;
        // A message sent behind a `head` that leads nowhere would never be received, yet be
        // reported sent: refuse the damaged ring before writing a byte of it.
        head_leads_to_tail(&ring, head_cached, "")?;
        Ok(Sender {
            ring,
            spin: opts.effective_spin(),
            opts,
            tail,
            head_cached,
            receiver_seen: receiver_present.then_some(receiver_pid),
            receiver_sessions_at_join,
            stats: Stats::default(),
            left: false,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.ring.path
    }

    /// The ring's data-area size.
    pub fn capacity(&self) -> u64 {
        self.ring.capacity
    }

    /// The largest message [`Sender::send`] accepts.
    pub fn max_message(&self) -> usize {
        max_message(self.ring.capacity) as usize
    }

    /// The spin budget in use before sleeping (`Duration::MAX` for [`Wait::Spin`]).
    pub fn spin_budget(&self) -> Duration {
        self.spin
    }

    /// Sleeps and wakes so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Is a receiver attached now? (One `fcntl` call.)
    pub fn peer_present(&self) -> Result<bool, Error> {
        self.ring.peer_present(Role::Sender)
    }

    /// Free bytes according to `head`, or a damaged-ring error.
    #[inline]
    fn free(&self, head: u64) -> Result<u64, Error> {
        if head > self.tail || self.tail - head > self.ring.capacity || head % 8 != 0 {
            return Err(self.inconsistent_head(head));
        }
        Ok(self.ring.capacity - (self.tail - head))
    }

    #[cold]
    #[inline(never)]
    fn inconsistent_head(&self, head: u64) -> Error {
        self.ring.corrupt(format!(
            "the receiver's head {head} is inconsistent with tail {}",
            self.tail
        ))
    }

    /// Sends one message, waiting for space if the ring is full.
    #[inline(always)]
    pub fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        let cap = self.ring.capacity;
        let max = max_message(cap);
        if msg.len() as u64 > max {
            return Err(too_large(msg.len(), cap));
        }
        let rec = record_len(msg.len() as u64);
        let offset = self.tail & (cap - 1);
        let pad = if cap - offset < rec { cap - offset } else { 0 };
        let need = pad + rec;
        // Room for the record, its padding, and the next record's header slot.
        if self.free(self.head_cached)? < need + RECORD_HEADER {
            self.head_cached = self.ring.head().load(Ordering::Acquire);
            if self.free(self.head_cached)? < need + RECORD_HEADER {
                self.wait_for_space(need + RECORD_HEADER)?;
            }
        }
        let position = self.tail + pad;
        let start = position & (cap - 1);
        let dst = self.ring.data_ptr(start + RECORD_HEADER);
        // SAFETY: `dst..dst+len` lies in the data area (start + rec <= cap by construction) and
        // in the free region [tail, head + capacity): the receiver does not read it before the
        // release store of its header below publishes it, and does not write the data area at
        // all. The source is a live slice in our own memory, so the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), dst, msg.len()) };
        // The next record's header slot reads 0 until that record is published, so stale bytes
        // of an earlier lap can never pass for a header there.
        self.ring
            .record_header((self.tail + need) & (cap - 1))
            .store(0, Ordering::Relaxed);
        // Publish: the release store makes the payload and the zeroed slot visible to a
        // receiver that acquire-loads this header.
        self.ring.record_header(start).store(
            record_word(position, msg.len() as u64, false),
            Ordering::Release,
        );
        if pad > 0 {
            // The padding the receiver meets first goes last, after the message it skips to.
            self.ring
                .record_header(offset)
                .store(record_word(self.tail, pad, true), Ordering::Release);
        }
        self.tail += need;
        // For accounting (unread bytes, a later sender), not for the receiver's fast path.
        self.ring.tail().store(self.tail, Ordering::Release);
        fence(Ordering::SeqCst);
        self.ring.wake_if_waiting(Role::Receiver, &mut self.stats)
    }

    #[inline(never)]
    fn wait_for_space(&mut self, need: u64) -> Result<(), Error> {
        let Sender {
            ring,
            opts,
            spin,
            tail,
            head_cached,
            receiver_seen,
            receiver_sessions_at_join,
            stats,
            ..
        } = self;
        let tail = *tail;
        let cap = ring.capacity;
        let head = wait_until(
            ring,
            Role::Sender,
            opts,
            *spin,
            stats,
            |ring, _| {
                let head = ring.head().load(Ordering::Acquire);
                Ok((head <= tail && cap - (tail - head) >= need).then_some(head))
            },
            |ring| {
                let peer = ring.peer_status(Role::Sender)?;
                if peer.present {
                    receiver_seen.get_or_insert(peer.pid);
                    return Ok(());
                }
                if receiver_seen.is_some() || peer.sessions != *receiver_sessions_at_join {
                    return Err(Error::ReceiverGone {
                        path: ring.path.clone(),
                        pid: *receiver_seen,
                        unread: tail.saturating_sub(ring.head().load(Ordering::Acquire)),
                    });
                }
                Ok(()) // No receiver has come yet: keep waiting for one.
            },
        )?;
        *head_cached = head;
        Ok(())
    }

    /// Leaves the ring at the end of the stream: marks it closed (the receiver sees its end
    /// after draining), and removes the file if the receiver is gone and nothing is unread.
    pub fn close(mut self) -> Result<Leave, Error> {
        self.left = true;
        self.ring.leave(Role::Sender, ENDED, &mut self.stats)
    }

    /// Leaves the ring before the end of the stream (an error or an interrupt stopped the
    /// sending): the receiver drains what was sent, then gets [`Error::SenderStopped`] instead
    /// of an end, so it never takes a stream cut short for a whole one. A sender that joins
    /// later continues the stream. Dropping a `Sender` without [`Sender::close`] does this.
    pub fn abort(mut self) -> Result<Leave, Error> {
        self.left = true;
        self.ring.leave(Role::Sender, STOPPED, &mut self.stats)
    }
}

impl Drop for Sender {
    /// Not closed: the stream stopped before its end (an early return on an error, a panic).
    fn drop(&mut self) {
        if !self.left {
            let _ = self.ring.leave(Role::Sender, STOPPED, &mut self.stats);
        }
    }
}

/// A record found in the ring, not yet borrowed.
#[derive(Clone, Copy)]
struct Record {
    offset: u64,
    len: u64,
    end: u64,
}

/// The receiving end of a ring.
pub struct Receiver {
    ring: Ring,
    opts: Options,
    spin: Duration,
    /// Where the next record starts: past every message received, including padding skipped
    /// and messages kept ([`Message::keep`]) but not yet released.
    read: u64,
    /// Where the record of the message borrowed last ends (its [`Message`] moves `read` there).
    borrowed_end: u64,
    stats: Stats,
    left: bool,
}

/// A message borrowed from the mapping: no copy was made. Dropping it releases its bytes
/// (and those of every message kept before it) to the sender; [`Message::keep`] ends the
/// borrow without releasing. See the module docs for why the borrow is sound.
pub struct Message<'a> {
    rx: &'a mut Receiver,
    ptr: *const u8,
    len: usize,
}

impl Deref for Message<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is a published record inside the live mapping (bounds checked
        // in `next_record`); the sender does not write it until `head` passes it, which only
        // happens when this Message is dropped, so no one writes these bytes while the slice
        // lives. The mapping outlives the slice: the slice borrows `self`, which borrows the
        // Receiver owning the mapping.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Message<'_> {
    /// Ends the borrow without releasing the message: the receiver moves past it, but its
    /// bytes stay reserved (the sender does not reuse them, and a receiver that dies before
    /// [`Receiver::release`] leaves it in the ring for the next one). Copy what you need first.
    /// `channel recv` keeps each message until its bytes were written to stdout.
    ///
    /// Release before [`Receiver::recv`] waits: a ring full of kept messages leaves the sender
    /// no room for the next one.
    pub fn keep(self) {
        self.rx.read = self.rx.borrowed_end;
        // Not dropped: nothing is released (the borrow of the receiver ends here all the same).
        std::mem::forget(self);
    }
}

impl Drop for Message<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        let end = self.rx.borrowed_end;
        self.rx.release_to(end);
    }
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message").field("len", &self.len).finish()
    }
}

impl Receiver {
    /// Joins the ring at `path` as its receiver, creating the file if it does not exist.
    pub fn open(path: &Path, opts: Options) -> Result<Receiver, Error> {
        let ring = Ring::join(path, Role::Receiver, opts.capacity, opts.create)?;
        ring.pid(Role::Receiver)
            .store(std::process::id(), Ordering::Relaxed);
        ring.sessions(Role::Receiver)
            .fetch_add(1, Ordering::Relaxed);
        ring.unlock_membership()?;
        let read = ring.head().load(Ordering::Relaxed);
        Ok(Receiver {
            ring,
            spin: opts.effective_spin(),
            opts,
            read,
            borrowed_end: read,
            stats: Stats::default(),
            left: false,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.ring.path
    }

    /// The ring's data-area size.
    pub fn capacity(&self) -> u64 {
        self.ring.capacity
    }

    /// The spin budget in use before sleeping (`Duration::MAX` for [`Wait::Spin`]).
    pub fn spin_budget(&self) -> Duration {
        self.spin
    }

    /// Sleeps and wakes so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Is a sender attached now? (One `fcntl` call.)
    pub fn peer_present(&self) -> Result<bool, Error> {
        self.ring.peer_present(Role::Receiver)
    }

    /// Has the last sender left the stream, closed or stopped before its end (the receiver
    /// ends once the ring is drained, or reports [`Error::SenderStopped`])?
    pub fn sender_closed(&self) -> bool {
        self.ring.closed().load(Ordering::Acquire) != 0
    }

    /// The next published record, skipping padding; `None` when the ring is empty.
    fn next_record(&mut self) -> Result<Option<Record>, Error> {
        loop {
            let Some(r) = checked_record(&self.ring, self.read)? else {
                return Ok(None);
            };
            if r.padding {
                self.read += r.step;
                continue;
            }
            return Ok(Some(Record {
                offset: self.read & (self.ring.capacity - 1),
                len: r.len,
                end: self.read + r.step,
            }));
        }
    }

    #[inline]
    fn borrow(&mut self, r: Record) -> Message<'_> {
        let ptr = self.ring.data_ptr(r.offset + RECORD_HEADER);
        self.borrowed_end = r.end;
        Message {
            rx: self,
            ptr,
            len: r.len as usize,
        }
    }

    /// Releases everything up to `end` (a record's end, at or past `read`).
    #[inline]
    fn release_to(&mut self, end: u64) {
        self.read = end;
        self.ring.head().store(end, Ordering::Release);
        fence(Ordering::SeqCst);
        // A failed wake (it cannot fail with a valid address) would be seen by the sender's
        // periodic check; Drop cannot return it.
        let _ = self.ring.wake_if_waiting(Role::Sender, &mut self.stats);
    }

    /// Releases every message kept ([`Message::keep`]) since the last release, in one store
    /// of `head`.
    pub fn release(&mut self) {
        if self.kept() > 0 {
            self.release_to(self.read);
        }
    }

    /// Bytes of the ring received but kept, not yet released (records and padding).
    pub fn kept(&self) -> u64 {
        self.read - self.ring.head().load(Ordering::Relaxed)
    }

    /// The next message if one is published, without waiting.
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>, Error> {
        Ok(self.next_record()?.map(|r| self.borrow(r)))
    }

    /// The next message, waiting for one; `None` at the end of the stream (the sender closed
    /// the channel and everything it sent was received).
    #[inline(always)]
    pub fn recv(&mut self) -> Result<Option<Message<'_>>, Error> {
        if let Some(r) = self.spin_for_message()? {
            return Ok(Some(self.borrow(r)));
        }
        self.recv_slow()
    }

    /// [`Receiver::recv`] once the fast path found nothing (or padding first).
    #[inline(never)]
    fn recv_slow(&mut self) -> Result<Option<Message<'_>>, Error> {
        loop {
            if let Some(r) = self.next_record()? {
                return Ok(Some(self.borrow(r)));
            }
            if !self.wait_for_data()? {
                return Ok(None);
            }
        }
    }

    /// The fast path of [`Receiver::recv`]: looks at the header slot at `read`, and when this
    /// receiver spins at all, spins on that one word for up to [`FAST_SPINS`] turns before the
    /// general wait (which also watches `closed`, the peer and the interrupt flag). Nothing
    /// but the record header is read while the message is awaited, so the sender's stores
    /// reach the receiver in one cache-line transfer and the receiver acts on the header it
    /// loaded. `None`: no message yet, or padding first (the general path skips it).
    #[inline]
    fn spin_for_message(&self) -> Result<Option<Record>, Error> {
        let offset = self.read & (self.ring.capacity - 1);
        let word = self.ring.record_header(offset);
        let turns = if self.spin.is_zero() { 1 } else { FAST_SPINS };
        for _ in 0..turns {
            if let Some((len, padding)) = decode(word.load(Ordering::Acquire), self.read) {
                let r = check_record(&self.ring, self.read, len, padding)?;
                return Ok((!padding).then_some(Record {
                    offset,
                    len,
                    end: self.read + r.step,
                }));
            }
            std::hint::spin_loop();
        }
        Ok(None)
    }

    /// Waits until `tail` moves (`true`) or the stream ended (`false`).
    fn wait_for_data(&mut self) -> Result<bool, Error> {
        let head = self.read;
        let Receiver {
            ring,
            opts,
            spin,
            stats,
            ..
        } = self;
        wait_until(
            ring,
            Role::Receiver,
            opts,
            *spin,
            stats,
            |ring, look| {
                if published(ring, head).is_some() {
                    return Ok(Some(true));
                }
                let end = ring.closed().load(Ordering::Acquire);
                if look == Look::Full && end != 0 {
                    // The sender publishes before it closes: one more look.
                    if published(ring, head).is_some() {
                        return Ok(Some(true));
                    }
                    // The end: a closing sender stored `tail` after its last record, so
                    // anything but `head == tail` means bytes the receiver cannot account for.
                    end_of_stream(ring, head)?;
                    if end == STOPPED {
                        return Err(Error::SenderStopped {
                            path: ring.path.clone(),
                        });
                    }
                    return Ok(Some(false));
                }
                Ok(None)
            },
            |ring| {
                // The sender stores `tail` after publishing the records before it: if `tail`
                // says there is more and the header at `head` still does not, the file was
                // damaged (a stalled receiver would otherwise wait forever).
                if ring.tail().load(Ordering::Acquire) > head {
                    unpublished_record(ring, head)?;
                }
                let peer = ring.peer_status(Role::Receiver)?;
                if peer.present || peer.closed || peer.pid == 0 {
                    // Alive; or closed (the next look at the ring ends the stream); or no
                    // sender has come yet (keep waiting for one).
                    return Ok(());
                }
                Err(Error::SenderDied {
                    path: ring.path.clone(),
                    pid: peer.pid,
                })
            },
        )
    }

    /// Leaves the ring; removes the file if the sender is gone and nothing is unread.
    pub fn close(mut self) -> Result<Leave, Error> {
        self.left = true;
        self.ring.leave(Role::Receiver, 0, &mut self.stats)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if !self.left {
            let _ = self.ring.leave(Role::Receiver, 0, &mut self.stats);
        }
    }
}

/// Reads a ring file's header without joining it (nothing is written).
pub fn inspect(path: &Path) -> Result<Info, Error> {
    let file = open_regular(path, false).map_err(|f| open_error(path, f))?;
    let (capacity, _) = read_header(path, &file)?;
    let mut fields = [0u8; 4096];
    file.read_exact_at(&mut fields, 0)
        .map_err(io_err(path, "cannot read"))?;
    let u64_at = |o: usize| u64::from_le_bytes(fields[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |o: usize| u32::from_le_bytes(fields[o..o + 4].try_into().expect("4 bytes"));
    let (head, tail) = (u64_at(off::HEAD), u64_at(off::TAIL));
    check_positions(head, tail, capacity).map_err(|reason| Error::NotARing {
        path: path.to_path_buf(),
        reason,
    })?;
    let held = |byte| {
        sys::byte_locked_by_other(&file, byte).map_err(io_err(path, "cannot test the lock of"))
    };
    let sender_alive = held(LOCK_SENDER)?;
    let receiver_alive = held(LOCK_RECEIVER)?;
    let sender_pid = u32_at(off::SENDER_PID);
    let end = u32_at(off::CLOSED);
    Ok(Info {
        path: path.to_path_buf(),
        capacity,
        max_message: max_message(capacity),
        head,
        tail,
        unread: tail.saturating_sub(head),
        closed: end == ENDED,
        stopped: end == STOPPED,
        sender: sender_alive.then_some(sender_pid),
        receiver: receiver_alive.then_some(u32_at(off::RECEIVER_PID)),
        dead_sender: (!sender_alive && end == 0 && sender_pid != 0).then_some(sender_pid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::thread;

    const TIMEOUT: Duration = Duration::from_secs(30);

    /// xorshift64*: a reproducible stream of pseudo-random numbers.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.next() as u8;
            }
        }
    }

    fn opts(capacity: u64) -> Options {
        Options {
            capacity,
            ..Options::default()
        }
    }

    /// Polls `cond` until it holds or the timeout passes.
    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
            thread::yield_now();
        }
    }

    #[test]
    fn a_long_random_stream_arrives_in_order_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let mut tx = Sender::open(&path, opts(MIN_CAPACITY)).unwrap();
        let max = tx.max_message();
        let mut rx = Receiver::open(&path, opts(MIN_CAPACITY)).unwrap();
        const TOTAL: usize = 4 << 20;
        let sender = thread::spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            let mut sizes = Rng(42);
            let mut data = vec![0u8; max];
            let mut sent = 0;
            while sent < TOTAL {
                let len = (sizes.next() as usize % (max + 1)).min(TOTAL - sent);
                rng.fill(&mut data[..len]);
                tx.send(&data[..len]).unwrap();
                sent += len;
            }
            tx.close().unwrap()
        });
        let mut expect = Rng(0x9E37_79B9_7F4A_7C15);
        let mut got = 0;
        let mut messages = 0;
        while let Some(m) = rx.recv().unwrap() {
            for &b in m.iter() {
                assert_eq!(b, expect.next() as u8, "byte {got} differs");
                got += 1;
            }
            messages += 1;
        }
        assert_eq!(got, TOTAL);
        // With a 4 KiB ring, 4 MiB went round it about a thousand times.
        assert!(messages > 1000, "{messages}");
        let leave = sender.join().unwrap();
        assert!(leave.peer_present);
        let leave = rx.close().unwrap();
        assert!(leave.removed, "the last side out removes the file");
        assert!(!path.exists());
    }

    /// The receiver's fast path spins on the one header slot at `read`. When the sender wraps,
    /// what appears there is padding (published after the message at offset 0): the receiver
    /// must skip it and return the message, not take the padding for one or wait past it.
    /// Lock-step, so that the receiver is already waiting on the slot when each record comes.
    #[test]
    fn a_receiver_spinning_on_the_header_slot_skips_padding_to_the_wrapped_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let spin = Options {
            wait: Wait::Spin,
            ..opts(MIN_CAPACITY)
        };
        let mut rx = Receiver::open(&path, spin).unwrap();
        let mut tx = Sender::open(&path, spin).unwrap();
        const N: u32 = 400;
        let taken = std::sync::Arc::new(AtomicU32::new(0));
        let taken2 = taken.clone();
        let receiver = thread::spawn(move || {
            let mut padding_seen = 0;
            for i in 0..N {
                let before = rx.read;
                let m = rx.recv().unwrap().expect("a message");
                assert_eq!(&*m, &message(i)[..], "message {i}");
                let start = m.ptr as usize - m.rx.ring.data_ptr(0) as usize - 8;
                if start as u64 != before & (MIN_CAPACITY - 1) {
                    assert_eq!(start, 0, "only a wrap moves a message off the slot");
                    padding_seen += 1;
                }
                drop(m);
                taken2.store(i + 1, Ordering::Release);
            }
            padding_seen
        });
        // 300 to 1200 bytes: a 4 KiB ring wraps every few messages, at varying offsets.
        fn message(i: u32) -> Vec<u8> {
            let len = 300 + (i as usize * 97) % 900;
            (0..len).map(|k| (k as u32 ^ i) as u8).collect()
        }
        for i in 0..N {
            tx.send(&message(i)).unwrap();
            wait_for("the receiver to take it", || {
                taken.load(Ordering::Acquire) == i + 1
            });
        }
        let padding_seen = receiver.join().unwrap();
        assert!(padding_seen > 50, "only {padding_seen} wraps");
    }

    #[test]
    fn messages_of_every_size_wrap_the_ring_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let mut rx = Receiver::open(&path, opts(MIN_CAPACITY)).unwrap();
        let mut tx = Sender::open(&path, opts(1 << 20)).unwrap();
        assert_eq!(
            tx.capacity(),
            MIN_CAPACITY,
            "the creator chose the capacity"
        );
        let max = tx.max_message();
        assert_eq!(max, 2032);
        let sender = thread::spawn(move || {
            // Every size twice, so that records start at every offset of the ring.
            for round in 0..2u8 {
                for len in 0..=max {
                    let msg: Vec<u8> = (0..len).map(|i| (i as u8) ^ (len as u8) ^ round).collect();
                    tx.send(&msg).unwrap();
                }
            }
            let too_big = vec![0u8; max + 1];
            match tx.send(&too_big) {
                Err(Error::TooLarge { len, max: m, .. }) => assert_eq!((len, m), (max + 1, max)),
                other => panic!("expected TooLarge, got {other:?}"),
            }
            tx.close().unwrap();
        });
        for round in 0..2u8 {
            for len in 0..=max {
                let m = rx.recv().unwrap().expect("a message");
                assert_eq!(m.len(), len);
                assert!(
                    m.iter()
                        .enumerate()
                        .all(|(i, &b)| b == (i as u8) ^ (len as u8) ^ round),
                    "message of {len} bytes damaged"
                );
            }
        }
        sender.join().unwrap();
        assert!(rx.recv().unwrap().is_none(), "the sender closed the stream");
    }

    /// `keep` moves past a message without releasing it; `release` (or dropping a later
    /// message) releases everything kept before it in one store of `head`.
    #[test]
    fn kept_messages_stay_reserved_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let mut tx = Sender::open(&path, opts(MIN_CAPACITY)).unwrap();
        let mut rx = Receiver::open(&path, opts(MIN_CAPACITY)).unwrap();
        for m in [&b"one"[..], b"two", b"three", b"four"] {
            tx.send(m).unwrap();
        }
        let head = || rx_head(&path);
        let m = rx.recv().unwrap().unwrap();
        assert_eq!(&*m, b"one");
        m.keep();
        let m = rx.recv().unwrap().unwrap();
        assert_eq!(&*m, b"two");
        m.keep();
        assert_eq!((rx.kept(), head()), (32, 0), "kept, not released");
        rx.release();
        assert_eq!((rx.kept(), head()), (0, 32));
        let m = rx.recv().unwrap().unwrap();
        assert_eq!(&*m, b"three");
        m.keep();
        // Dropping the next message releases it and the kept one before it.
        assert_eq!(&*rx.recv().unwrap().unwrap(), b"four");
        assert_eq!((rx.kept(), head()), (0, 64));
        tx.close().unwrap();
        assert!(rx.recv().unwrap().is_none());
    }

    /// `head` as another process would read it from the file.
    fn rx_head(path: &Path) -> u64 {
        inspect(path).unwrap().head
    }

    #[test]
    fn a_second_sender_or_receiver_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let _tx = Sender::open(&path, opts(MIN_CAPACITY)).unwrap();
        let _rx = Receiver::open(&path, opts(MIN_CAPACITY)).unwrap();
        match Sender::open(&path, opts(MIN_CAPACITY)) {
            Err(
                e @ Error::Busy {
                    role: Role::Sender,
                    pid,
                    ..
                },
            ) => {
                assert_eq!(pid, std::process::id());
                assert!(e.to_string().contains("already has a sender"), "{e}");
            }
            Err(e) => panic!("expected Busy, got {e}"),
            Ok(_) => panic!("a second sender was accepted"),
        }
        assert!(matches!(
            Receiver::open(&path, opts(MIN_CAPACITY)),
            Err(Error::Busy {
                role: Role::Receiver,
                ..
            })
        ));
    }

    #[test]
    fn unread_messages_keep_the_file_for_a_later_receiver() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let mut tx = Sender::open(&path, opts(MIN_CAPACITY)).unwrap();
        tx.send(b"one").unwrap();
        tx.send(b"two").unwrap();
        let leave = tx.close().unwrap();
        assert_eq!(
            leave,
            Leave {
                removed: false,
                unread: 32,
                peer_present: false
            }
        );
        let info = inspect(&path).unwrap();
        assert_eq!((info.unread, info.closed, info.sender), (32, true, None));
        let mut rx = Receiver::open(&path, opts(MIN_CAPACITY)).unwrap();
        assert_eq!(&*rx.recv().unwrap().unwrap(), b"one");
        assert_eq!(&*rx.recv().unwrap().unwrap(), b"two");
        assert!(rx.recv().unwrap().is_none());
        assert!(rx.close().unwrap().removed);
        assert!(!path.exists());
    }

    #[test]
    fn a_sleeping_receiver_is_woken_through_the_shared_futex() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        // No spinning, and no periodic wake-up during the test: only FUTEX_WAKE can end the
        // sleep.
        let spin0 = Options {
            spin: Some(Duration::ZERO),
            peer_check: Duration::from_secs(600),
            ..opts(MIN_CAPACITY)
        };
        let mut rx = Receiver::open(&path, spin0).unwrap();
        let mut tx = Sender::open(&path, spin0).unwrap();
        let receiver = thread::spawn(move || {
            let got = rx.recv().unwrap().map(|m| m.to_vec());
            (got, rx.stats())
        });
        // Wait until the receiver announced that it sleeps, then send.
        wait_for("the receiver to sleep", || {
            tx.ring.waiting(Role::Receiver).load(Ordering::SeqCst) == 1
        });
        tx.send(b"wake up").unwrap();
        let (got, stats) = receiver.join().unwrap();
        assert_eq!(got.as_deref(), Some(&b"wake up"[..]));
        assert!(stats.sleeps >= 1, "{stats:?}");
        assert_eq!(tx.stats().wakes, 1);
        assert_eq!(tx.ring.waiting(Role::Receiver).load(Ordering::SeqCst), 0);
    }

    /// A one-way stream with no spinning at all, so that each side sleeps whenever it gets
    /// ahead of the other (the receiver on an empty ring, the sender on a full small one), on
    /// two threads that may run on two CPUs. A lost wake-up would show as a sleep ended by the
    /// liveness timeout instead of by the peer: counted by the ring itself, so nothing here
    /// depends on timing. The timeout is 2 s, far beyond any scheduling delay, so a timeout is
    /// a wake that never came (and the test still ends if one is lost).
    #[test]
    fn a_one_way_stream_without_spinning_loses_no_wake_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let spin0 = Options {
            spin: Some(Duration::ZERO),
            peer_check: Duration::from_secs(2),
            ..opts(MIN_CAPACITY)
        };
        let mut rx = Receiver::open(&path, spin0).unwrap();
        let mut tx = Sender::open(&path, spin0).unwrap();
        const N: u32 = 20_000;
        let sender = thread::spawn(move || {
            for i in 0..N {
                // 4 to 400 bytes: a 4 KiB ring fills within a few dozen messages.
                let sent = tx.send(&i.to_le_bytes().repeat(1 + i as usize % 100));
                if sent.is_err() || tx.stats().timeouts > 0 {
                    break; // Lost already (or the receiver gave up): fail after one timeout.
                }
            }
            let stats = tx.stats();
            tx.close().unwrap();
            stats
        });
        let mut n = 0u32;
        while let Some(m) = rx.recv().unwrap() {
            assert_eq!(&*m, &n.to_le_bytes().repeat(1 + n as usize % 100)[..]);
            n += 1;
            if m.rx.stats().timeouts > 0 {
                break;
            }
        }
        let got = rx.stats();
        drop(rx);
        let sent = sender.join().unwrap();
        assert!(
            sent.sleeps + got.sleeps > 0,
            "nobody slept: {sent:?} {got:?}"
        );
        assert_eq!(
            (sent.timeouts, got.timeouts),
            (0, 0),
            "sleeps ended by the timeout, not a wake: sender {sent:?}, receiver {got:?}"
        );
        assert_eq!(n, N);
    }

    #[test]
    fn a_full_ring_makes_the_sender_wait_until_the_receiver_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        // No spinning, and no periodic wake-up during the test: only FUTEX_WAKE can end the
        // sleep.
        let spin0 = Options {
            spin: Some(Duration::ZERO),
            peer_check: Duration::from_secs(600),
            ..opts(MIN_CAPACITY)
        };
        let mut tx = Sender::open(&path, spin0).unwrap();
        let mut rx = Receiver::open(&path, spin0).unwrap();
        let big = vec![7u8; tx.max_message()];
        tx.send(&big).unwrap();
        tx.send(&big).unwrap(); // Exactly full now.
        let sender = thread::spawn(move || {
            tx.send(b"third").unwrap();
            tx.stats()
        });
        wait_for("the sender to sleep", || {
            rx.ring.waiting(Role::Sender).load(Ordering::SeqCst) == 1
        });
        {
            let held = rx.recv().unwrap().unwrap();
            assert_eq!(held.len(), big.len());
            // While we hold the message the sender still cannot reuse its bytes.
            assert!(rx_free_view(&held) < record_len(5) + RECORD_HEADER);
        }
        let stats = sender.join().unwrap();
        assert!(stats.sleeps >= 1, "{stats:?}");
        assert_eq!(rx.recv().unwrap().unwrap().len(), big.len());
        assert_eq!(&*rx.recv().unwrap().unwrap(), b"third");
    }

    /// Free bytes as the sender would compute them from the published head.
    fn rx_free_view(m: &Message<'_>) -> u64 {
        let ring = &m.rx.ring;
        ring.capacity - (ring.tail().load(Ordering::SeqCst) - ring.head().load(Ordering::SeqCst))
    }

    #[test]
    fn a_wait_ends_when_the_interrupt_flag_is_set() {
        static FLAG: AtomicBool = AtomicBool::new(false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let o = Options {
            spin: Some(Duration::ZERO),
            interrupt: Some(&FLAG),
            ..opts(MIN_CAPACITY)
        };
        let mut rx = Receiver::open(&path, o).unwrap();
        let watcher = Sender::open(&path, o).unwrap();
        let receiver = thread::spawn(move || matches!(rx.recv(), Err(Error::Interrupted)));
        wait_for("the receiver to sleep", || {
            watcher.ring.waiting(Role::Receiver).load(Ordering::SeqCst) == 1
        });
        FLAG.store(true, Ordering::SeqCst);
        // The flag is seen at the next periodic check (100 ms) at the latest.
        assert!(receiver.join().unwrap());
    }

    #[test]
    fn the_ring_delivers_on_one_cpu_with_the_futex_fallback() {
        let cpu = sys::allowed_cpus().unwrap()[0];
        let dir = tempfile::tempdir().unwrap();
        let there = dir.path().join("there");
        let back = dir.path().join("back");
        let (t2, b2) = (there.clone(), back.clone());
        // The echo side, pinned to the same CPU as the pinging side.
        let echo = thread::spawn(move || {
            sys::set_affinity(&[cpu]).unwrap();
            let mut rx = Receiver::open(&t2, opts(MIN_CAPACITY)).unwrap();
            let mut tx = Sender::open(&b2, opts(MIN_CAPACITY)).unwrap();
            assert_eq!(rx.spin_budget(), Duration::ZERO, "no spinning on one CPU");
            let mut n = 0;
            while let Some(m) = rx.recv().unwrap() {
                tx.send(&m).unwrap();
                n += 1;
            }
            (n, rx.stats().sleeps + tx.stats().sleeps)
        });
        sys::set_affinity(&[cpu]).unwrap();
        let mut tx = Sender::open(&there, opts(MIN_CAPACITY)).unwrap();
        let mut rx = Receiver::open(&back, opts(MIN_CAPACITY)).unwrap();
        for i in 0u32..2000 {
            let msg = i.to_le_bytes().repeat(1 + i as usize % 100);
            tx.send(&msg).unwrap();
            let reply = rx.recv().unwrap().expect("an echo");
            assert_eq!(&*reply, &msg[..]);
        }
        tx.close().unwrap();
        let (echoed, echo_sleeps) = echo.join().unwrap();
        assert_eq!(echoed, 2000);
        // One CPU: whoever waits must sleep for the other to run (which side depends on the
        // scheduler's wake-up preemption).
        assert!(
            rx.stats().sleeps + echo_sleeps > 0,
            "nobody slept on one CPU"
        );
    }

    #[test]
    fn damaged_headers_are_rejected_with_a_reason() {
        let mut good = [0u8; 24];
        good[..8].copy_from_slice(&MAGIC.to_le_bytes());
        good[8..12].copy_from_slice(&VERSION.to_le_bytes());
        good[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        good[16..24].copy_from_slice(&8192u64.to_le_bytes());
        assert_eq!(check_header(&good, HEADER_LEN + 8192), Ok(8192));
        let reason = |bytes: &[u8], len| check_header(bytes, len).unwrap_err();
        assert!(reason(&good, 100).contains("less than the 4096-byte header"));
        assert!(reason(&good, HEADER_LEN + 4096).contains("a ring of capacity 8192 has 12288"));
        let mut foreign = good;
        foreign[..8].copy_from_slice(b"#!/bin/s");
        assert!(reason(&foreign, HEADER_LEN + 8192).contains("bad magic \"#!/bin/s\""));
        let mut v2 = good;
        v2[8] = 2;
        assert!(reason(&v2, HEADER_LEN + 8192).contains("version 2"));
        let mut odd = good;
        odd[16..24].copy_from_slice(&5000u64.to_le_bytes());
        assert!(reason(&odd, HEADER_LEN + 5000).contains("not a power of two"));
        assert_eq!(
            check_positions(16, 8, 4096),
            Ok(()),
            "tail may trail a little"
        );
        assert!(check_positions(8192, 0, 4096)
            .unwrap_err()
            .contains("inconsistent"));
        assert!(check_positions(0, 8192, 4096)
            .unwrap_err()
            .contains("inconsistent"));
        assert!(check_positions(3, 8, 4096)
            .unwrap_err()
            .contains("multiple of 8"));
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_wild_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let mut tx = Sender::open(&path, opts(MIN_CAPACITY)).unwrap();
        tx.send(b"hello").unwrap();
        // Scribble a huge length into the record header, as a hostile process could.
        tx.ring
            .record_header(0)
            .store(record_word(0, 0x7FFF_FFF0, false), Ordering::SeqCst);
        let mut rx = Receiver::open(&path, opts(MIN_CAPACITY)).unwrap();
        match rx.recv() {
            Err(e @ Error::Corrupt { .. }) => {
                assert!(e.to_string().contains("is damaged"), "{e}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // A header that is no header at all, while `tail` says a record is there: found by the
        // waiting receiver's periodic check instead of waiting forever.
        tx.ring.record_header(0).store(0x1234, Ordering::SeqCst);
        assert!(matches!(rx.recv(), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn a_sender_killed_between_a_record_and_tail_is_recovered_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let mut tx = Sender::open(&path, opts(MIN_CAPACITY)).unwrap();
        tx.send(b"first").unwrap();
        // As if killed after publishing the record, before storing tail.
        tx.ring.tail().store(0, Ordering::SeqCst);
        let mut rx = Receiver::open(&path, opts(MIN_CAPACITY)).unwrap();
        assert_eq!(&*rx.try_recv().unwrap().unwrap(), b"first");
        assert!(rx.try_recv().unwrap().is_none());
        drop(tx);
        // head (16) is now past the stored tail (0): still a valid ring.
        let info = inspect(&path).unwrap();
        assert_eq!((info.head, info.tail, info.unread), (16, 0, 0));
        let mut tx = Sender::open(&path, opts(MIN_CAPACITY)).unwrap();
        assert_eq!(
            tx.tail, 16,
            "the next sender continues after the published record"
        );
        tx.send(b"second").unwrap();
        assert_eq!(&*rx.recv().unwrap().unwrap(), b"second");
    }

    #[test]
    fn two_sides_starting_at_once_meet_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..50u32 {
            let path = dir.path().join(format!("ring{round}"));
            let p2 = path.clone();
            let sender = thread::spawn(move || {
                let mut tx = Sender::open(&p2, opts(MIN_CAPACITY)).unwrap();
                tx.send(&round.to_le_bytes()).unwrap();
            });
            let mut rx = Receiver::open(&path, opts(MIN_CAPACITY)).unwrap();
            let start = Instant::now();
            let got = loop {
                if let Some(m) = rx.try_recv().unwrap() {
                    break m.to_vec();
                }
                assert!(
                    start.elapsed() < TIMEOUT,
                    "round {round}: the two sides missed"
                );
                thread::yield_now();
            };
            assert_eq!(got, round.to_le_bytes());
            sender.join().unwrap();
            assert!(rx.close().unwrap().removed);
            let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert!(leftovers.is_empty(), "round {round}: {leftovers:?}");
        }
    }

    #[test]
    fn capacities_fit_their_messages() {
        assert_eq!(record_len(0), 8);
        assert_eq!(record_len(1), 16);
        assert_eq!(record_len(64), 72);
        assert_eq!(capacity_for(1 << 20), 4 << 20);
        assert!(max_message(capacity_for(1 << 20)) >= 1 << 20);
        assert_eq!(capacity_for(8), MIN_CAPACITY);
    }
}
