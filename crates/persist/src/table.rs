//! [`Table`] (read through a shared read-only mapping) and [`TableMut`] (write through a
//! `MAP_SHARED` or, for the contrast, `MAP_PRIVATE` mapping).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap, MmapMut};

use crate::format::{
    self, invalid, key_hash, record_check, record_len, slot_word, slots_desc, Header, Invalid,
    Probe, Slot, VerifyReport, View, FLAG_DIRTY, HEADER_LEN, H_ARENA_END, H_FILE_LEN, H_FLAGS,
    H_LIVE, H_SLOTS, H_USED, MAX_FILE_LEN, MAX_SLOTS_LOG2, MIN_SLOTS_LOG2, RECORD_HEAD, TOMBSTONE,
};
use crate::sys::{self, SigbusGuard};

/// Everything that can go wrong; each message names the file and the reason.
///
/// The underlying `io::Error` is part of the message, not a `source()`: `anyhow`'s `{:#}`
/// would otherwise print it twice ("Is a directory (os error 21): Is a directory").
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {}: {error}", path.display())]
    Open { path: PathBuf, error: io::Error },
    #[error("cannot open {}: it is a directory, not a table", path.display())]
    Directory { path: PathBuf },
    #[error("{} is not a valid table: {reason}", path.display())]
    Invalid { path: PathBuf, reason: Invalid },
    #[error("{} already exists; remove it or choose another name", path.display())]
    Exists { path: PathBuf },
    #[error(
        "{} is locked by another writer; retry later, or drop --no-wait to wait for it",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error("{}: {op} failed: {error}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        error: io::Error,
    },
    #[error(
        "{}: no space left on device (could not reserve {bytes} bytes for the table; nothing \
         was written: it holds every put that returned)",
        path.display()
    )]
    NoSpace { path: PathBuf, bytes: u64 },
    #[error(
        "{}: cannot map the grown table: mremap to {new_len} bytes failed: {error}; the file \
         was extended, but the table still records {old_len} bytes and is intact",
        path.display()
    )]
    Remap {
        path: PathBuf,
        old_len: u64,
        new_len: u64,
        error: io::Error,
    },
    #[error(
        "{}: the table is full and a MAP_PRIVATE mapping cannot grow it (growing needs \
         ftruncate, which would change the file); write without --private first",
        path.display()
    )]
    PrivateCannotGrow { path: PathBuf },
    #[error("{}: {what} is too large for this format", path.display())]
    TooLarge { path: PathBuf, what: String },
}

/// What the write API did to the file, for showing the growth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteStats {
    /// Times the file was grown (ftruncate + mremap).
    pub file_growths: u64,
    /// Times the slot array was doubled (rehash into a new array in the arena).
    pub rehashes: u64,
}

/// The header's numbers, for `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub file_bytes: u64,
    pub entries: u64,
    pub used_slots: u64,
    pub slot_count: u64,
    pub slots_offset: u64,
    pub arena_end: u64,
    pub dirty: bool,
}

impl From<Header> for Stats {
    fn from(h: Header) -> Stats {
        Stats {
            file_bytes: h.file_len,
            entries: h.live,
            used_slots: h.used,
            slot_count: h.slot_count(),
            slots_offset: h.slots_off,
            arena_end: h.arena_end,
            dirty: h.dirty(),
        }
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |error| Error::Io {
        path: path.to_path_buf(),
        op,
        error,
    }
}

fn invalid_err(path: &Path) -> impl FnOnce(Invalid) -> Error + '_ {
    move |reason| Error::Invalid {
        path: path.to_path_buf(),
        reason,
    }
}

/// The error for a bus error caught while the file was mapped. The cause is measured, not
/// assumed: a file now shorter than the mapped length was truncated under us; otherwise the
/// page could not be read or written (a full or failing file system).
fn bus_error(path: &Path, file: &File, expected: u64) -> Error {
    let now = file.metadata().map(|m| m.len());
    let reason = match now {
        Ok(now) if now < expected => invalid!(
            "another process truncated it to {now} bytes while it was mapped (expected \
             {expected} bytes; the SIGBUS was caught)"
        ),
        Ok(now) => invalid!(
            "a page of its mapping could not be read or written (SIGBUS caught) although the \
             file is {now} bytes long, as expected: the file system may be full or failing"
        ),
        Err(e) => invalid!(
            "a page of its mapping could not be read or written (SIGBUS caught), and fstat \
             failed too: {e}"
        ),
    };
    Error::Invalid {
        path: path.to_path_buf(),
        reason,
    }
}

/// Why a file shorter than the header is invalid.
fn short_file(len: u64) -> Invalid {
    if len == 0 {
        invalid!("the file is empty")
    } else {
        invalid!("the file is {len} bytes, shorter than the {HEADER_LEN}-byte header")
    }
}

fn open_file(path: &Path, write: bool) -> Result<File, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|error| match error.raw_os_error() {
            Some(libc::EISDIR) => Error::Directory {
                path: path.to_path_buf(),
            },
            _ => Error::Open {
                path: path.to_path_buf(),
                error,
            },
        })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::Directory {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

fn file_len(path: &Path, file: &File) -> Result<u64, Error> {
    file.metadata()
        .map(|m| m.len())
        .map_err(io_err(path, "fstat"))
}

/// A table opened for reading: one read-only `MAP_SHARED` mapping of the whole file, and a
/// shared `flock` so no writer of this crate changes it meanwhile. Lookups never copy.
pub struct Table {
    // Declared before `map` so it is dropped (unregistered) before the mapping goes away.
    guard: SigbusGuard,
    map: Mmap,
    hdr: Header,
    file: File,
    path: PathBuf,
}

impl Table {
    /// Opens and validates a table for many lookups ([`Access::HugePages`]). Waits while a
    /// writer holds the lock.
    pub fn open(path: impl AsRef<Path>) -> Result<Table, Error> {
        Table::open_for(path, Access::HugePages)
    }

    /// Opens and validates a table, telling the kernel how it will be accessed before the
    /// first byte is touched (so even the header's page fault reads no more than it should).
    pub fn open_for(path: impl AsRef<Path>, access: Access) -> Result<Table, Error> {
        let path = path.as_ref();
        let file = open_file(path, false)?;
        sys::flock(&file, false, true).map_err(io_err(path, "flock"))?;
        let len = file_len(path, &file)?;
        if len < HEADER_LEN {
            // Too short to map meaningfully (an empty file cannot be mapped at all).
            return Err(invalid_err(path)(short_file(len)));
        }
        let map = sys::map_read(&file).map_err(io_err(path, "mmap"))?;
        let advice = match access {
            Access::Normal => None,
            Access::HugePages => Some(Advice::HugePage),
            Access::Random => Some(Advice::Random),
            Access::Sequential => Some(Advice::Sequential),
        };
        if let Some(a) = advice {
            map.advise(a).map_err(io_err(path, "madvise"))?;
        }
        let guard = SigbusGuard::register(map.as_ptr(), map.len());
        let parsed = Header::parse(&map, len);
        if guard.faulted() {
            return Err(bus_error(path, &file, len));
        }
        let hdr = parsed.map_err(invalid_err(path))?;
        Ok(Table {
            guard,
            map,
            hdr,
            file,
            path: path.to_path_buf(),
        })
    }

    fn view(&self) -> View<'_> {
        View {
            bytes: &self.map[..self.hdr.file_len as usize],
            hdr: self.hdr,
        }
    }

    /// Returns an error if the file was truncated under the mapping since it was opened.
    /// Values returned earlier are only trustworthy if this still says `Ok` after using them.
    pub fn check(&self) -> Result<(), Error> {
        if self.guard.faulted() {
            return Err(bus_error(&self.path, &self.file, self.hdr.file_len));
        }
        Ok(())
    }

    /// Looks a key up. The value is a slice of the mapping: no copy, no system call.
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>, Error> {
        let found = self.view().get(key);
        self.check()?;
        found.map_err(invalid_err(&self.path))
    }

    /// The ranges of slot indices that may hold something (the rest lies in holes).
    fn slot_ranges(&self) -> Vec<(u64, u64)> {
        let (off, count) = (self.hdr.slots_off, self.hdr.slot_count());
        let data = sys::data_ranges(&self.file, off, off + count * 8);
        format::slot_ranges(&data, off, count)
    }

    /// Calls `f` with every entry (slot order). Each record is copied out of the mapping and
    /// checked (no bus error while copying) before `f` sees it, so a file truncated during the
    /// scan never hands out zero bytes as an entry.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<(), Error> {
        let ranges = self.slot_ranges();
        let mut buf = Vec::new();
        for rec in self.view().iter(&ranges) {
            let rec = rec.map_err(invalid_err(&self.path));
            self.check()?;
            let rec = rec?;
            buf.clear();
            buf.extend_from_slice(rec.key);
            buf.extend_from_slice(rec.value);
            self.check()?;
            let (k, v) = buf.split_at(rec.key.len());
            f(k, v);
        }
        self.check()
    }

    /// Checks the whole table: every slot's record is in bounds, outside the slot array, passes
    /// its check, carries the slot's tag, is reachable by a lookup and unique; and the counts.
    /// Scans only the parts of the slot array that hold data (holes read as empty slots).
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        let report = self.view().verify(&self.slot_ranges());
        self.check()?;
        report.map_err(invalid_err(&self.path))
    }

    /// The header's numbers.
    pub fn stats(&self) -> Stats {
        self.hdr.into()
    }

    /// The mapped bytes (the whole file).
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Pages of the file resident in the page cache now (`mincore(2)` over the mapping).
    pub fn resident_pages(&self) -> Result<usize, Error> {
        sys::resident_pages(&self.map).map_err(io_err(&self.path, "mincore"))
    }

    /// The open file (for `fsync`/`posix_fadvise` by the caller).
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// How a reader will access the table, passed to `madvise(2)` before the first access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The kernel's default read-around on a page fault.
    Normal,
    /// `MADV_HUGEPAGE`: map the page cache's 2 MiB folios with 2 MiB pages where it has them,
    /// so random lookups in a big table miss the TLB far less (the default of [`Table::open`]).
    HugePages,
    /// `MADV_RANDOM`: a fault reads only its page (lookups).
    Random,
    /// `MADV_SEQUENTIAL`: aggressive read-ahead (list, verify).
    Sequential,
}

/// What [`page_cache_residency`] saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Residency {
    pub pages_total: u64,
    pub pages_resident_before: u64,
    /// `"fadvise"` if the eviction was asked for and the kernel accepted it, else `"none"`.
    pub eviction: &'static str,
    pub pages_resident_after: u64,
    /// Why the eviction did not happen, if it was asked for and failed.
    pub note: String,
}

/// Counts the file's pages in the page cache (`mincore(2)` over a mapping that is never
/// touched, so measuring changes nothing) and, with `evict`, drops them first with `fsync(2)`
/// then `posix_fadvise(POSIX_FADV_DONTNEED)`. Works on any file, valid table or not.
pub fn page_cache_residency(path: impl AsRef<Path>, evict: bool) -> Result<Residency, Error> {
    let path = path.as_ref();
    let file = open_file(path, false)?;
    let len = file_len(path, &file)?;
    let page = sys::page_size() as u64;
    let count = |file: &File| -> Result<u64, Error> {
        if len == 0 {
            return Ok(0);
        }
        let map = sys::map_read(file).map_err(io_err(path, "mmap"))?;
        Ok(sys::resident_pages(&map).map_err(io_err(path, "mincore"))? as u64)
    };
    let before = count(&file)?;
    let (mut eviction, mut note) = ("none", String::new());
    if evict {
        match file.sync_all().and_then(|_| sys::fadvise_dontneed(&file)) {
            Ok(()) => eviction = "fadvise",
            Err(e) => note = format!("fsync/posix_fadvise failed: {e}"),
        }
    }
    Ok(Residency {
        pages_total: len.div_ceil(page),
        pages_resident_before: before,
        eviction,
        pages_resident_after: count(&file)?,
        note,
    })
}

/// How to open a table for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Map `MAP_PRIVATE`: writes stay in this process (the file is opened read-only).
    pub private: bool,
    /// Wait for another writer's lock instead of failing with [`Error::Locked`].
    pub wait: bool,
    /// `MADV_HUGEPAGE` on the mapping: pages the writer brings into the page cache come in
    /// 2 MiB folios where the file system supports them, which readers can then map with 2 MiB
    /// pages. The cost: `msync` writes back whole folios.
    pub huge_pages: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            private: false,
            wait: true,
            huge_pages: true,
        }
    }
}

/// A table opened for writing: an exclusive `flock`, one `MAP_SHARED` mapping (or
/// `MAP_PRIVATE` for the contrast), every change a store into the mapping, never `write(2)`.
///
/// Crash safety (a writer killed at any instant leaves a valid table with every put that
/// returned): the file is grown (ftruncate) before the new length is mapped and recorded; a
/// record is written into free arena space; the arena end is advanced; and only then is the
/// record published by one 8-byte store into its slot. A new slot array is filled before one
/// 8-byte store of the header's slot descriptor switches to it. The header's counts and the
/// DIRTY flag tell the next writer whether it must recount.
///
/// A full disk: every store lands in space reserved beforehand with `fallocate(2)` (on growth,
/// and in chunks inside the file), so running out of space is an [`Error::NoSpace`] before
/// anything is written, never a SIGBUS in the middle of a record. Should a bus error hit a
/// store anyway, it is noticed before the store is published, and the writer refuses to go on.
pub struct TableMut {
    guard: SigbusGuard,
    map: MmapMut,
    hdr: Header,
    file: File,
    path: PathBuf,
    private: bool,
    stats: WriteStats,
    closed: bool,
    /// The file's length as this writer last set or saw it (may exceed `hdr.file_len` after a
    /// growth failed half-way).
    file_bytes: u64,
    /// Bytes below this offset are known to be allocated on disk (reserved with fallocate, or
    /// below the arena end, where everything has been written).
    reserved_end: u64,
    /// The file system cannot reserve space ahead (`EOPNOTSUPP`): go on without.
    reserve_unsupported: bool,
}

/// Default size of a new table's slot array (2^6 = 64 slots): small, so growth is visible.
pub const DEFAULT_SLOTS_LOG2: u32 = 6;

/// Space reserved ahead inside the file, at least (1 MiB): one `fallocate` per megabyte of puts.
const RESERVE_CHUNK: u64 = 1 << 20;

impl TableMut {
    /// Creates a new, empty table (fails if the file exists). `slots_log2` sizes the initial
    /// slot array (2^slots_log2 slots); it grows by itself.
    pub fn create(path: impl AsRef<Path>, slots_log2: u32) -> Result<TableMut, Error> {
        TableMut::create_with(path, slots_log2, WriteOptions::default())
    }

    /// [`TableMut::create`] with options (`private` is ignored: a new table is always shared).
    pub fn create_with(
        path: impl AsRef<Path>,
        slots_log2: u32,
        opts: WriteOptions,
    ) -> Result<TableMut, Error> {
        let path = path.as_ref();
        let log2 = slots_log2.clamp(MIN_SLOTS_LOG2, 30);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|error| match error.kind() {
                io::ErrorKind::AlreadyExists => Error::Exists {
                    path: path.to_path_buf(),
                },
                _ => Error::Open {
                    path: path.to_path_buf(),
                    error,
                },
            })?;
        let made = Self::init(path, file, log2, opts.huge_pages);
        if made.is_err() {
            let _ = std::fs::remove_file(path);
        }
        made
    }

    fn init(path: &Path, file: File, log2: u32, huge: bool) -> Result<TableMut, Error> {
        sys::flock(&file, true, true).map_err(io_err(path, "flock"))?;
        let slots_bytes = (1u64 << log2) * 8;
        let arena_end = HEADER_LEN + slots_bytes;
        let page = sys::page_size() as u64;
        let len = arena_end.div_ceil(page) * page;
        file.set_len(len).map_err(io_err(path, "ftruncate"))?;
        let reserve_unsupported = match sys::fallocate(&file, 0, len) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => true,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                return Err(Error::NoSpace {
                    path: path.to_path_buf(),
                    bytes: len,
                })
            }
            Err(e) => return Err(io_err(path, "fallocate")(e)),
        };
        let mut map = sys::map_shared(&file).map_err(io_err(path, "mmap"))?;
        if huge {
            // Best effort: without transparent huge pages the table works the same.
            let _ = map.advise(Advice::HugePage);
        }
        let guard = SigbusGuard::register(map.as_ptr(), map.len());
        let hdr = Header {
            file_len: len,
            slots_off: HEADER_LEN,
            slots_log2: log2,
            arena_end,
            live: 0,
            used: 0,
            flags: FLAG_DIRTY,
        };
        // Everything but the magic first, then the magic: a crash in between leaves a file
        // that is rejected as "not a persist table" rather than a half-made one.
        let mut head = [0u8; HEADER_LEN as usize];
        hdr.encode(&mut head);
        map[8..HEADER_LEN as usize].copy_from_slice(&head[8..]);
        sys::publish_u64(&mut map, 0, u64::from_le_bytes(format::MAGIC));
        let t = TableMut {
            guard,
            map,
            hdr,
            file,
            path: path.to_path_buf(),
            private: false,
            stats: WriteStats::default(),
            closed: false,
            file_bytes: len,
            reserved_end: len,
            reserve_unsupported,
        };
        t.check()?;
        Ok(t)
    }

    /// Opens an existing table for writing. Takes the writers' lock (waiting, or failing with
    /// [`Error::Locked`] when `!opts.wait`); recounts if the previous writer was killed or the
    /// header's counts are impossible, and records the length of a file that a failed or
    /// killed growth left longer than the header says.
    pub fn open(path: impl AsRef<Path>, opts: WriteOptions) -> Result<TableMut, Error> {
        let path = path.as_ref();
        let file = open_file(path, !opts.private)?;
        // A private mapping changes nothing in the file: a shared lock is enough.
        let exclusive = !opts.private;
        if !sys::flock(&file, exclusive, opts.wait).map_err(io_err(path, "flock"))? {
            return Err(Error::Locked {
                path: path.to_path_buf(),
            });
        }
        let len = file_len(path, &file)?;
        if len < HEADER_LEN {
            return Err(invalid_err(path)(short_file(len)));
        }
        let map_fn = if opts.private {
            sys::map_private
        } else {
            sys::map_shared
        };
        let map = map_fn(&file).map_err(io_err(path, "mmap"))?;
        if opts.huge_pages {
            let _ = map.advise(Advice::HugePage);
        }
        let guard = SigbusGuard::register(map.as_ptr(), map.len());
        let parsed = Header::parse(&map, len);
        if guard.faulted() {
            return Err(bus_error(path, &file, len));
        }
        let hdr = parsed.map_err(invalid_err(path))?;
        let mut t = TableMut {
            guard,
            map,
            hdr,
            file,
            path: path.to_path_buf(),
            private: opts.private,
            stats: WriteStats::default(),
            closed: false,
            file_bytes: len,
            // Everything below the arena end has been written, so it is allocated; free space
            // past it is reserved (fallocate) before the first store into it.
            reserved_end: hdr.arena_end,
            reserve_unsupported: false,
        };
        t.hdr.flags |= FLAG_DIRTY;
        let flags = u64::from(t.hdr.flags);
        sys::publish_u64(&mut t.map, H_FLAGS, flags);
        if hdr.dirty() || !hdr.counts_plausible() {
            t.recount()?;
        }
        // A growth that failed after ftruncate, or a writer killed between ftruncate and
        // recording the length, left the file longer than the header says: the space past the
        // recorded length is free. Record it rather than truncating: a reader may have the
        // file mapped at that length, and nothing may shrink a file a reader has mapped.
        let usable = len.min(MAX_FILE_LEN) & !7;
        if usable > t.hdr.file_len && !t.private {
            t.hdr.file_len = usable;
            sys::publish_u64(&mut t.map, H_FILE_LEN, usable);
        }
        t.check()?;
        Ok(t)
    }

    /// The ranges of slot indices of the current array that may hold something: the rest lies
    /// in holes of a sparse file and reads as empty.
    fn slot_ranges(&self) -> Vec<(u64, u64)> {
        let (off, count) = (self.hdr.slots_off, self.hdr.slot_count());
        let data = sys::data_ranges(&self.file, off, off + count * 8);
        format::slot_ranges(&data, off, count)
    }

    /// Recounts live and used slots: after a writer was killed, or when the header's counts
    /// cannot be true. The counts come from the slots themselves.
    fn recount(&mut self) -> Result<(), Error> {
        let ranges = self.slot_ranges();
        let (live, used) = self.view().count_slots(&ranges);
        self.check()?;
        self.hdr.live = live;
        self.hdr.used = used;
        self.write_counts();
        Ok(())
    }

    fn view(&self) -> View<'_> {
        let len = (self.hdr.file_len as usize).min(self.map.len());
        View {
            bytes: &self.map[..len],
            hdr: self.hdr,
        }
    }

    /// Returns an error if a bus error hit the mapping (the file was truncated under it, or a
    /// page could not be written).
    pub fn check(&self) -> Result<(), Error> {
        if self.guard.faulted() {
            return Err(bus_error(&self.path, &self.file, self.hdr.file_len));
        }
        Ok(())
    }

    fn write_counts(&mut self) {
        let (live, used) = (self.hdr.live, self.hdr.used);
        sys::publish_u64(&mut self.map, H_LIVE, live);
        sys::publish_u64(&mut self.map, H_USED, used);
    }

    /// Looks a key up in this writer's view (zero copy).
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>, Error> {
        let found = self.view().get(key);
        self.check()?;
        found.map_err(invalid_err(&self.path))
    }

    /// Makes sure `[arena_end, end)` may be stored into: the file and the mapping are at least
    /// `end` bytes long (growing them: ftruncate, mremap, then record the length), and the
    /// space is allocated on disk (fallocate), so no store can fail for lack of space.
    ///
    /// Space is reserved in chunks ahead of the arena end (1 MiB to 32 MiB, an eighth of the
    /// arena): one `fallocate` per chunk of puts, and never gigabytes for a file whose header
    /// claims a huge sparse arena.
    fn ensure_space(&mut self, end: u64) -> Result<(), Error> {
        if end > self.hdr.file_len {
            self.grow(end)?;
        }
        if end > self.reserved_end && !self.private {
            let page = sys::page_size() as u64;
            self.reserved_end = self.reserved_end.max(self.hdr.arena_end);
            let used = self.reserved_end.saturating_sub(HEADER_LEN);
            let chunk = (used / 8).clamp(RESERVE_CHUNK, 32 * RESERVE_CHUNK);
            let round = |n: u64| n.div_ceil(page).saturating_mul(page).min(self.hdr.file_len);
            let want = round(end.max(self.reserved_end.saturating_add(chunk)));
            let need = round(end);
            self.reserve(want, need)?;
        }
        Ok(())
    }

    /// Reserves (fallocate) `[reserved_end, want)`, or at least `[reserved_end, need)` when the
    /// file system has not room for `want`.
    fn reserve(&mut self, want: u64, need: u64) -> Result<(), Error> {
        if self.reserve_unsupported || need <= self.reserved_end {
            self.reserved_end = self.reserved_end.max(need);
            return Ok(());
        }
        let from = self.reserved_end;
        let mut result = sys::fallocate(&self.file, from, want - from).map(|_| want);
        if matches!(&result, Err(e) if e.raw_os_error() == Some(libc::ENOSPC)) && need < want {
            result = sys::fallocate(&self.file, from, need - from).map(|_| need);
        }
        match result {
            Ok(end) => {
                self.reserved_end = end;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                // No way to reserve here: stores into holes may still fail, and the SIGBUS
                // guard turns that into an error before anything is published.
                self.reserve_unsupported = true;
                self.reserved_end = need;
                Ok(())
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) => {
                Err(Error::NoSpace {
                    path: self.path.clone(),
                    bytes: need - from,
                })
            }
            Err(e) => Err(io_err(&self.path, "fallocate")(e)),
        }
    }

    /// Grows the file and the mapping to hold at least `end` bytes: ftruncate (only ever
    /// larger), mremap, then record the new length in the header. If a step fails the header
    /// still records the old length and the table is intact; the file may be left longer,
    /// which readers accept and the next writer records.
    fn grow(&mut self, end: u64) -> Result<(), Error> {
        if self.private {
            return Err(Error::PrivateCannotGrow {
                path: self.path.clone(),
            });
        }
        if end > MAX_FILE_LEN {
            return Err(Error::TooLarge {
                path: self.path.clone(),
                what: format!("a table of {end} bytes (the limit is {MAX_FILE_LEN})"),
            });
        }
        let page = sys::page_size() as u64;
        let old_len = self.hdr.file_len;
        let grown = old_len.saturating_mul(2).min(old_len + (1 << 30));
        let new_len = (end.max(grown).div_ceil(page) * page).min(MAX_FILE_LEN / page * page);
        if new_len > self.file_bytes {
            self.file
                .set_len(new_len)
                .map_err(io_err(&self.path, "ftruncate"))?;
            self.file_bytes = new_len;
        }
        if self.map.len() < new_len as usize {
            sys::remap(&mut self.map, new_len as usize).map_err(|error| Error::Remap {
                path: self.path.clone(),
                old_len,
                new_len,
                error,
            })?;
            self.guard.update(self.map.as_ptr(), self.map.len());
        }
        self.hdr.file_len = new_len;
        sys::publish_u64(&mut self.map, H_FILE_LEN, new_len);
        self.stats.file_growths += 1;
        self.check()
    }

    /// Makes room for `len` bytes at the arena end (growing and reserving as needed); returns
    /// the offset. The space is not published until [`Self::publish_arena_end`].
    fn alloc(&mut self, len: u64) -> Result<u64, Error> {
        let off = self.hdr.arena_end;
        let end = off.checked_add(len).ok_or_else(|| Error::TooLarge {
            path: self.path.clone(),
            what: "the arena".into(),
        })?;
        self.ensure_space(end)?;
        Ok(off)
    }

    fn publish_arena_end(&mut self, end: u64) {
        self.hdr.arena_end = end;
        sys::publish_u64(&mut self.map, H_ARENA_END, end);
    }

    fn publish_slot(&mut self, index: u64, word: u64) {
        let at = self.hdr.slots_off + index * 8;
        sys::publish_u64(&mut self.map, at as usize, word);
    }

    /// Probes for a key the writer is about to insert; an over-full array (which only a file
    /// whose counts lied can have) is rehashed first.
    fn probe_for_insert(&mut self, key: &[u8], h: u64) -> Result<Probe, Error> {
        let mut probe = self.view().probe(key, h).map_err(invalid_err(&self.path))?;
        self.check()?;
        let needs_rehash = match probe {
            Probe::Absent { empty: true, .. } => (self.hdr.used + 1) * 2 > self.hdr.slot_count(),
            Probe::Absent { empty: false, .. } => false,
            Probe::Saturated => true,
            Probe::Found { .. } => false,
        };
        if needs_rehash {
            self.rehash()?;
            probe = self.view().probe(key, h).map_err(invalid_err(&self.path))?;
            self.check()?;
        }
        Ok(probe)
    }

    /// Inserts or replaces `key`. Returns whether an old value was replaced. When it returns,
    /// the change is in the page cache (visible to every process; durable across a crash of
    /// this process, and across power loss only after [`Self::sync`]).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool, Error> {
        self.check()?;
        if key.len() > u32::MAX as usize || value.len() > u32::MAX as usize {
            return Err(Error::TooLarge {
                path: self.path.clone(),
                what: "a key or value over 4 GiB".into(),
            });
        }
        let rec_len = record_len(key.len(), value.len()).ok_or_else(|| Error::TooLarge {
            path: self.path.clone(),
            what: "the record".into(),
        })?;
        let h = key_hash(key);
        let probe = self.probe_for_insert(key, h)?;
        // Write the record into reserved free space, advance the arena end, then publish.
        let off = self.alloc(rec_len)?;
        let at = off as usize;
        let rec = &mut self.map[at..at + rec_len as usize];
        rec[0..4].copy_from_slice(&(key.len() as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&(value.len() as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&record_check(key, value).to_le_bytes());
        rec[12..16].fill(0);
        let k0 = RECORD_HEAD as usize;
        rec[k0..k0 + key.len()].copy_from_slice(key);
        rec[k0 + key.len()..k0 + key.len() + value.len()].copy_from_slice(value);
        rec[k0 + key.len() + value.len()..].fill(0);
        // A store that hit a bus error went into a zero page the handler put in its place,
        // not into the file: never publish it.
        self.check()?;
        self.publish_arena_end(off + rec_len);
        let replaced = match probe {
            Probe::Found { index } => {
                self.publish_slot(index, slot_word(h, off));
                true
            }
            Probe::Absent { index, empty } => {
                self.publish_slot(index, slot_word(h, off));
                self.hdr.live += 1;
                if empty {
                    self.hdr.used += 1;
                }
                self.write_counts();
                if !self.hdr.counts_plausible() {
                    self.recount()?;
                }
                false
            }
            Probe::Saturated => {
                // probe_for_insert rehashed into an array with free slots: cannot happen.
                return Err(invalid_err(&self.path)(invalid!(
                    "the slot array has no empty slot"
                )));
            }
        };
        self.check()?;
        Ok(replaced)
    }

    /// Deletes `key` (one store of a tombstone into its slot). Returns whether it was there.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.check()?;
        let probe = self
            .view()
            .probe(key, key_hash(key))
            .map_err(invalid_err(&self.path))?;
        self.check()?;
        match probe {
            Probe::Found { index } => {
                self.publish_slot(index, u64::from(TOMBSTONE));
                match self.hdr.live.checked_sub(1) {
                    Some(live) if self.hdr.counts_plausible() => {
                        self.hdr.live = live;
                        self.write_counts();
                    }
                    // The counts were wrong (a key was found where the header counted none):
                    // take them from the slots.
                    _ => self.recount()?,
                }
                self.check()?;
                Ok(true)
            }
            Probe::Absent { .. } | Probe::Saturated => Ok(false),
        }
    }

    /// Builds a new slot array in the arena from the live entries (dropping tombstones): twice
    /// the size, or the same size when tombstones rather than live keys filled it. Then switches
    /// the header to it with one 8-byte store.
    ///
    /// Sized by the live slots it counts, never by the header's counts (which may lie), and
    /// scanning only the parts of the old array that hold data.
    fn rehash(&mut self) -> Result<(), Error> {
        let ranges = self.slot_ranges();
        let (live, _) = self.view().count_slots(&ranges);
        self.check()?;
        let mut log2 = if (live + 1) * 4 <= self.hdr.slot_count() {
            self.hdr.slots_log2
        } else {
            self.hdr.slots_log2 + 1
        };
        while (live + 1) * 2 > 1u64 << log2 {
            log2 += 1;
        }
        if log2 > MAX_SLOTS_LOG2 {
            return Err(Error::TooLarge {
                path: self.path.clone(),
                what: "the slot array".into(),
            });
        }
        let count = 1u64 << log2;
        let off = self.alloc(count * 8)?;
        let (a0, a1) = (off as usize, (off + count * 8) as usize);
        self.map[a0..a1].fill(0); // the space may hold a killed writer's half-written record
        let mask = count - 1;
        let old = self.hdr;
        let mut moved = 0u64;
        for &(a, b) in &ranges {
            for i in a..b.min(old.slot_count()) {
                let view = self.view();
                let word = view.slot_word(i);
                let Slot::Full { offset, .. } = Slot::decode(word) else {
                    continue;
                };
                let rec = view.record(offset).map_err(invalid_err(&self.path))?;
                let h = key_hash(rec.key);
                let mut j = h & mask;
                // Terminates: fewer than half the slots are taken.
                loop {
                    let at = a0 + (j * 8) as usize;
                    if self.map[at..at + 8] == [0u8; 8] {
                        self.map[at..at + 8].copy_from_slice(&word.to_le_bytes());
                        break;
                    }
                    j = (j + 1) & mask;
                }
                moved += 1;
            }
        }
        self.check()?;
        self.publish_arena_end(off + count * 8);
        sys::publish_u64(&mut self.map, H_SLOTS, slots_desc(off, log2));
        self.hdr.slots_off = off;
        self.hdr.slots_log2 = log2;
        self.hdr.live = moved;
        self.hdr.used = moved;
        self.write_counts();
        self.stats.rehashes += 1;
        self.check()
    }

    /// `msync(2)` with `MS_SYNC`: waits until the mapping's dirty pages are on disk.
    pub fn sync(&self) -> Result<(), Error> {
        self.map.flush().map_err(io_err(&self.path, "msync"))?;
        self.check()
    }

    /// Closes cleanly: clears the DIRTY flag (one store). Dropping does the same, ignoring
    /// errors; call this to see them.
    pub fn close(mut self) -> Result<(), Error> {
        self.check()?;
        self.finish();
        self.check()
    }

    fn finish(&mut self) {
        if !self.closed {
            self.closed = true;
            self.hdr.flags &= !FLAG_DIRTY;
            let flags = u64::from(self.hdr.flags);
            sys::publish_u64(&mut self.map, H_FLAGS, flags);
        }
    }

    /// Growth so far.
    pub fn write_stats(&self) -> WriteStats {
        self.stats
    }

    /// The header's numbers.
    pub fn stats(&self) -> Stats {
        self.hdr.into()
    }

    /// Whether this is the `MAP_PRIVATE` contrast.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Checks the whole table.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        let report = self.view().verify(&self.slot_ranges());
        self.check()?;
        report.map_err(invalid_err(&self.path))
    }
}

impl Drop for TableMut {
    fn drop(&mut self) {
        if !self.guard.faulted() {
            self.finish();
        }
    }
}
