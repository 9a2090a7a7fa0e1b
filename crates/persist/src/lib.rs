//! Steps 2 and 3 of the lab: a persistent hash table of byte-string keys to byte-string values
//! that lives in one file and is used through `mmap(2)`, never `read(2)`/`write(2)`.
//!
//! Readers ([`Table`]) map the file read-only and return values as slices borrowed from the
//! mapping: a lookup makes no system call and copies nothing; the kernel pages in only the
//! pages a lookup touches. Writers ([`TableMut`]) map it `MAP_SHARED` and store into it: the
//! stores land in the page cache, so another process's plain `read(2)` sees them at once, and
//! the file grows with `ftruncate(2)` + `mremap(2)` when full. `MAP_PRIVATE`
//! ([`WriteOptions::private`]) is the contrast: the same stores never reach the file.
//!
//! Run it: `persist create t.tbl; persist put t.tbl hello world; persist get t.tbl hello`, or
//! `cargo xtask run-step 2` / `run-step 3` to see the system calls. `persist --help` lists all.
//!
//! # File layout (version 1; all integers little-endian)
//!
//! The file is a 64-byte header followed by an *arena*: a bump-allocated region that holds
//! records and slot arrays, every item 8-byte aligned. Nothing in the file is a pointer; every
//! reference is a byte offset from the start of the file, so the mapping address does not matter.
//!
//! ```text
//! header (one cache line)
//!  off size field
//!    0   8  magic        "DISKTBL\0"
//!    8   4  version      1
//!   12   4  header_len   64
//!   16   8  file_len     length of the table the last writer mapped (the file may be longer:
//!                        free space a failed or killed growth left; never shorter)
//!   24   8  slots        slot array descriptor: (offset / 8) << 8 | log2(slot count),
//!                        one word so that one 8-byte store switches to a new array
//!   32   8  arena_end    first free byte of the arena; everything from here to file_len is free
//!   40   8  live         number of keys
//!   48   8  used         slots that are not empty (live + deleted)
//!   56   4  flags        bit 0 DIRTY: a writer has the table open (or was killed)
//!   60   4  reserved     0
//!
//! slot array: 2^n slots of 8 bytes (open addressing, linear probing, load <= 1/2)
//!    word == 0                  empty: ends a probe
//!    low 32 bits == 1           deleted (a tombstone; offset 8 lies in the header, never a record)
//!    otherwise                  high 32 bits = high half of the key's hash (the tag),
//!                               low 32 bits  = record offset / 8
//!
//! record (at an 8-aligned offset in the arena)
//!    0   4  key_len
//!    4   4  value_len
//!    8   4  check        32-bit hash of key and value (detects flipped bytes)
//!   12   4  reserved     0
//!   16   .  key bytes, then value bytes, then zero padding to a multiple of 8
//! ```
//!
//! A lookup hashes the key (`format::key_hash`), reads the slot at `hash & (count - 1)` and
//! walks forward until an empty slot; only a slot whose tag equals the key's high 32 hash bits
//! costs a visit to the record. At load ≤ 1/2 that is about 1.5 slot reads for a hit, usually in
//! the same cache line (8 slots per line), plus the record: two cache lines, two pages at most,
//! and no allocation.
//!
//! Mapping advice: [`Table::open`] and bulk writers ask for `MADV_HUGEPAGE`, so a big table's
//! page cache comes in 2 MiB folios mapped with 2 MiB pages (fewer TLB misses on random
//! lookups); the `persist get` command opens with `MADV_RANDOM` instead ([`Access::Random`]),
//! so that a cold lookup reads exactly the pages it touches and nothing around them.
//!
//! # Invariants and untrusted files
//!
//! `Header::parse` checks magic, version, header length, flags, that the file is at least
//! `file_len` long, that the arena end and the slot array lie inside it. Every record offset
//! and length read from a slot is checked against the arena before use; probe loops are bounded
//! by the slot count. A damaged file is [`Error::Invalid`] (`FILE is not a valid table:
//! REASON`), never a panic or an out-of-bounds read. A file truncated by another process
//! *while mapped* raises SIGBUS on access; a handler (`sys::SigbusGuard`) maps a zero page over
//! the hole so the access completes, and the operation returns the same kind of error, naming
//! the cause it measured (the file is shorter now: truncated; it is not: the file system could
//! not supply the page).
//!
//! The header's counts (`live`, `used`) are hints, untrusted even when DIRTY is clear: a writer
//! recounts from the slots when they are impossible or would go below zero, and sizes nothing
//! by them. Scans of a slot array (verify, list, recount, rehash) skip the holes of a sparse
//! file (`lseek(2)` `SEEK_DATA`/`SEEK_HOLE`; a hole reads as empty slots), so a header claiming
//! 2^31 slots in a 4 KiB sparse file costs what the file holds, not what it claims.
//!
//! # Crash safety and locking
//!
//! Writers take an exclusive `flock(2)`, readers a shared one. A write first sizes the file
//! (ftruncate, then mremap, then records `file_len`), reserves the blocks it will store into
//! (`fallocate(2)`, in chunks), writes the record into that free space, advances `arena_end`,
//! and only then publishes the record with one 8-byte release store into its slot. A killed
//! writer therefore leaves either the old or the new value, never a torn one; the header's
//! counts may lag, which the DIRTY flag tells the next writer (it recounts).
//!
//! A full disk is an error (`FILE: no space left on device`) from the reservation, before any
//! store; a failed `mremap` leaves the header recording the old length (the file may be left
//! longer: readers accept that, the next writer records it). Nothing ever shrinks the file.
//!
//! # What a production system would do differently
//!
//! It would survive power loss, not just a killed process: ordered `msync`s (or a write-ahead
//! log) around the publishing store and a checksum over the header. It would reclaim the space
//! of overwritten records and old slot arrays (compaction into a new file and `rename(2)`),
//! let readers run during writes (copy-on-write pages as LMDB does, or a seqlock) instead of
//! excluding them with `flock`, and use a keyed hash against hash-flooding inputs.

pub mod disktable;
mod format;
#[doc(hidden)]
pub mod fuzz;
pub mod pread;
mod sys;
mod table;

pub use format::{key_hash, Invalid, VerifyReport, HEADER_LEN, MAGIC, VERSION};
pub use sys::{faults, page_size, Faults};
pub use table::{
    page_cache_residency, Access, Error, Residency, Stats, Table, TableMut, WriteOptions,
    WriteStats, DEFAULT_SLOTS_LOG2,
};
