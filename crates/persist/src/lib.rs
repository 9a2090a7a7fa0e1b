//! Steps 2 and 3 of the lab: a persistent hash table of byte-string keys to byte-string values
//! that lives in one file and is used through `mmap(2)`, never `read(2)`/`write(2)`.
//!
//! Readers ([`Table`]) map the file read-only, take no lock, and return values as slices
//! borrowed from the mapping: a lookup makes no system call and copies nothing; the kernel pages
//! in only the pages a lookup touches. [`Table::get_many`] overlaps the cache misses of a batch
//! of lookups. Writers ([`TableMut`]) map it `MAP_SHARED` and store into it: the stores land in
//! the page cache, so another process's plain `read(2)` sees them at once, and the file grows
//! with `ftruncate(2)` + `mremap(2)` when full. [`TableMut::compact`] gives back the space of
//! overwritten and deleted entries (a new file renamed over the old). `MAP_PRIVATE`
//! ([`WriteOptions::private`]) is the contrast: the same stores never reach the file.
//!
//! Run it: `persist create t.tbl; persist put t.tbl hello world; persist get t.tbl hello`, or
//! `cargo xtask run-step 2` / `run-step 3` to see the system calls. `persist --help` lists all.
//!
//! # File layout (version 3; all integers little-endian)
//!
//! The file is a 64-byte header followed by an *arena*: a bump-allocated region that holds
//! records and slot arrays, every item 8-byte aligned. Nothing in the file is a pointer; every
//! reference is a byte offset from the start of the file, so the mapping address does not matter.
//!
//! ```text
//! header (one cache line)
//!  off size field
//!    0   8  magic        "DISKTBL\0"
//!    8   4  version      3 (2 is read, never written: see below; 1 is refused)
//!   12   4  header_len   64
//!   16   8  file_len     length of the table the last writer mapped (the file may be longer:
//!                        free space a failed or killed growth left; never shorter)
//!   24   8  slots        slot array descriptor: (offset / 8) << 32 | slot count (8 ..= 2^32-1),
//!                        one word so that one 8-byte store switches to a new array
//!   32   8  arena_end    first free byte of the arena; everything from here to file_len is free
//!   40   8  live         number of keys (a hint: see below)
//!   48   8  used         slots that are not empty (live + deleted) (a hint)
//!   56   4  flags        bit 0 DIRTY: a writer has the table open (or was killed)
//!                        bit 1 RETIRED: compacted into a new file renamed over the path
//!   60   4  live_words   bytes held by live records / 8 (a hint: garbage = arena - slot
//!                        array - live records decides when to compact)
//!
//! slot array: any number n of 8-byte slots (open addressing, linear probing, wrapping at n;
//!             a writer rehashes at load 4/5 into an array at load 1/2)
//!    word == 0                  empty: ends a probe
//!    low 32 bits == 1           deleted (a tombstone; offset 8 lies in the header, never a record)
//!    otherwise  bits  0..32     record offset / 8
//!               bits 32..40     the key's length, 255 for 255 and longer
//!               bits 40..64     fingerprint: bits 0..24 of the key's hash
//!    home slot of a key with hash h: (h * n) >> 64 (128-bit product: the high bits of h scaled
//!    to n, no division, any n); the fingerprint uses the low bits, which the home hardly
//!    depends on.
//!
//! record (at an 8-aligned offset in the arena)
//!    0   4  check        32-bit hash of key and value (detects flipped bytes)
//!    4   2  key_len      if 0xffff: a long head, below
//!    6   2  value_len
//!    8   .  key bytes, then value bytes, then zero padding to a multiple of 8
//!  long head (a key of 65,535 bytes or more, or a value over 65,535 bytes):
//!    0   4  check, 4 2 0xffff, 6 2 0xffff, 8 4 key_len, 12 4 value_len, 16 . key, value, padding
//! ```
//!
//! A lookup hashes the key (`format::key_hash`), reads the slot at its home and walks forward
//! to an empty slot. A slot is only followed to its record when its upper 32 bits equal the
//! key's fingerprint and length, so a lookup of an absent key, and a fingerprint collision
//! with a key of another length, is settled inside the slot array (8 slots per cache line;
//! a false match costs one record visit in 2^24 for keys of the same length). A hit costs the
//! home slot's line (about 3 slots at load 4/5, rarely a second line) and the record's line:
//! two cache misses, no allocation, no system call.
//!
//! ## What changed from version 2, and why
//!
//! Version 2 kept the high 32 bits of the hash as the tag, `hash & (2^n - 1)` as the home, a
//! power-of-two array at load <= 1/2, and a 16-byte record head (key_len u32, value_len u32,
//! check u32, reserved u32). At 1,000,000 keys of the benchmark (an 11-byte key, a ~21-byte
//! value) its file was 128 MiB, 134 bytes per entry, where LMDB's is 58.7 MiB. The causes and
//! what version 3 does about each:
//!
//! - the file doubled when it grew: it now grows by an eighth (16 KiB to 1 GiB per step);
//! - each rehash left the old slot array in the arena as garbage, as large as all earlier ones
//!   together: a writer now fills a replaced array's space with new records (below: readers
//!   still probing it notice);
//! - load <= 1/2 in a power-of-two array (at exactly 1M keys, 2^21 slots: load 0.48): any
//!   count now, rehash at load 4/5 into load 1/2 (a step of about 1.6);
//! - 16 bytes of record head for 32 bytes of data: 8 now (a 48-byte record becomes 40).
//!
//! Measured (`persist load` of the benchmark's 1M keys in random order): 51.3 MiB, 57.7 MiB
//! after the benchmark's 100,000 overwrites (version 2: 128 MiB both).
//!
//! Version 2 tables are still read: [`Table`] opens them (get, list, stats, verify: the
//! version decides the home, the tag and the record head); every writer refuses them with
//! [`Error::OldVersion`] (`FILE is a version 2 table; run 'persist compact FILE' to upgrade
//! it (read-only until then)`) before changing a byte, and [`TableMut::compact`] (opened with
//! [`TableMut::open_to_upgrade`]) copies every entry into a version 3 file renamed over it.
//! Version 1 (version 2 without `live_words` and RETIRED) is refused ("unsupported version 1").
//!
//! ## Reusing a replaced slot array, safely
//!
//! After a rehash publishes the new descriptor, the writer puts new records into the old
//! array's space before it advances the arena end (in this session: the space is forgotten
//! when the writer closes, garbage until a compaction). A reader that loaded the old
//! descriptor may still be probing there, so: the writer stores those records as 8-byte
//! release stores, after the descriptor's release store; a reader checks that the descriptor
//! is unchanged (an acquire load) *after* loading a slot and before following it to a record,
//! and again before answering "absent" (`format::View::stale`). A slot word loaded from a
//! reused array was written after the new descriptor, so the check after it sees the new
//! descriptor: the reader drops what it read and looks the key up again in the new array.
//! Records themselves are never written again once published, wherever they lie.
//!
//! Mapping advice: [`Table::open`] and bulk writers ask for `MADV_HUGEPAGE`, so a big table's
//! page cache comes in 2 MiB folios mapped with 2 MiB pages (fewer TLB misses on random
//! lookups) where the file system gives it large folios; the `persist get` command opens with
//! `MADV_RANDOM` instead ([`Access::RandomPages`]), so that a cold lookup reads exactly the
//! pages it touches and nothing around them. [`Access::Random`], for many cold lookups, also
//! asks `MADV_WILLNEED` for the current slot array (read in at once, in large reads), so that
//! a cold lookup's one major fault is its record's page.
//!
//! Batches: [`Table::get_many_into_depth`] is software-pipelined: while key `i` is finished,
//! the record of key `i + d` and the home slot line of key `i + 2d` are prefetched, so about
//! `2d` misses are in flight ([`DEFAULT_DEPTH`] = 8; size it by the machine's memory-level
//! parallelism).
//!
//! # Readers never wait; what they see
//!
//! A reader takes no lock, so it never waits for a writer and a writer never waits for it.
//! Everything a writer changes in place — header words and slot words — is a naturally aligned
//! 8-byte word written with one atomic release store and read with an atomic acquire load; the
//! reader never holds a `&[u8]` over them. A record, once published, is never written again:
//! writers only append past the arena end (or into a replaced slot array's space, which a
//! reader checks for: see above), and a rehash builds a new slot array beside the old one. So a lookup that races with any write — a put, an overwrite, a
//! delete, a growth, a rehash, a compaction — returns, for its key, the value before or the
//! value after that write: never a torn record, a wrong value or an error. A reader whose
//! mapping is shorter than a file a writer grew maps it again (a header recording more than
//! the mapping holds is never called a truncation before that remap: `verify`, which waits
//! for a writer's lock, remaps after the wait); one whose file was compacted
//! away (RETIRED) opens the path again; older mappings stay mapped until the reader is dropped,
//! so values it returned stay valid. Nothing ever shrinks a table's file.
//!
//! It is per key, not a snapshot: two lookups, or the entries of one scan, may straddle a
//! write. LMDB's readers instead see a consistent snapshot of the whole database as of the start
//! of their read transaction (multi-version concurrency: a writer copies the B-tree pages it
//! changes and leaves the old ones to open readers), at the cost of that copy on every write
//! and of old pages held while a long reader stays open. Here a writer changes one slot in
//! place; a reader who needs several keys from one instant must take the writers' lock, as
//! `verify` does.
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
//! Whole-table scans (list, verify, compaction, rehash) read the file in order, never at
//! random: the slot array front to back, collecting the live slots' record offsets (8 bytes
//! each), then the records in ascending offset. A table much larger than the memory the
//! process may use (a small memory cgroup) is so read once, as a `dd` of it would be, instead
//! of page by page in hash order with each page dropped before its neighbours are used.
//! Verify's reachability check reads the slot array a second time in order rather than
//! probing (see `View::verify`).
//!
//! # Crash safety, locking and compaction
//!
//! Writers exclude each other with an exclusive `flock(2)` (a second waits, or with
//! `--no-wait` fails); readers take none; `verify` takes it shared, to check one instant. A
//! write first sizes the file
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
//! Compaction ([`TableMut::compact`], `persist compact`, and on its own when a write would grow
//! a file whose arena (of at least 1 MiB) is more than half garbage) copies the live entries
//! into `FILE.persist-compact` (a shortened name with a hash for a name over 239 bytes),
//! fsyncs it, renames it over `FILE`, then sets RETIRED in the old file. Readers of the old
//! file keep a valid mapping and move over on their next lookup; a writer that was waiting for
//! the old file's lock compares the inode its path names with the one it locked and opens the
//! path again. The new file keeps the old one's identity: a path
//! that is a symlink is followed (link after link) and the file it names is replaced, the
//! scratch file made beside it, so a link stays a link; owner, group and mode are copied to
//! the scratch file (`fchown`, `fchmod`) before the rename, or the compaction fails. Killed
//! before the rename, the old file is whole (the next writer removes the scratch file, which
//! `verify` and `stats` report until then); after it, the new one is. (Killed between the rename
//! and RETIRED, readers that had the old file open go on reading it as it was at the rename
//! until they open the table again.)
//!
//! # What a production system would do differently
//!
//! It would survive power loss, not just a killed process: ordered `msync`s (or a write-ahead
//! log) around the publishing store and a checksum over the header. It would offer snapshots
//! to readers that need several keys from one instant (an epoch or MVCC scheme), compact in
//! the background without holding the writers' lock for the whole copy, and use a keyed hash
//! against hash-flooding inputs.

pub mod bench;
pub mod disktable;
pub mod doc;
mod format;
#[doc(hidden)]
pub mod fuzz;
pub mod pread;
mod sys;
mod table;

pub use format::shown;
pub use format::{
    key_hash, record_check, Invalid, VerifyReport, HEADER_LEN, MAGIC, VERSION, VERSION_READ_ONLY,
};
pub use sys::{faults, page_size, Faults};
pub use table::{
    compact_path, compact_scratch, page_cache_residency, Access, CompactStats, Error, Residency,
    Scratch, Stats, Table, TableMut, WriteOptions, WriteStats, DEFAULT_DEPTH, DEFAULT_SLOTS_LOG2,
    MAX_DEPTH,
};
