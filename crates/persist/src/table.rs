//! [`Table`] (read through a shared read-only mapping) and [`TableMut`] (write through a
//! `MAP_SHARED` or, for the contrast, `MAP_PRIVATE` mapping).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use memmap2::{Advice, MmapMut, MmapRaw};

use crate::format::{
    self, encode_record, invalid, key_hash, record_len, slot_word, slots_desc, Header, Invalid,
    LiveSlot, Mem, Probe, Slot, VerifyReport, View, FLAG_DIRTY, FLAG_RETIRED, HEADER_LEN,
    H_ARENA_END, H_FILE_LEN, H_FLAGS, H_LIVE, H_SLOTS, H_USED, MAX_FILE_LEN, MAX_SLOTS, MIN_SLOTS,
    TOMBSTONE, VERSION,
};
use crate::sys::{self, SharedMem, SigbusGuard};

/// Everything that can go wrong; each message names the file and the reason.
///
/// The underlying `io::Error` is part of the message, not a `source()`: `anyhow`'s `{:#}`
/// would otherwise print it twice ("Is a directory (os error 21): Is a directory").
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {}: {error}", path.display())]
    Open { path: PathBuf, error: io::Error },
    /// A FIFO, directory, device or socket: refused before anything could block on it.
    #[error(transparent)]
    NotRegular(#[from] sys::NotRegular),
    /// A symbolic link to nothing.
    #[error(transparent)]
    Dangling(#[from] sys::DanglingLink),
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
        "{}: no space left on device ({})",
        path.display(),
        no_space_detail(*bytes, scratch.as_deref())
    )]
    NoSpace {
        /// The table.
        path: PathBuf,
        bytes: u64,
        /// During a compaction: the scratch copy that could not be made (it was removed).
        scratch: Option<PathBuf>,
    },
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
    /// A table of the previous format version: read-only until `persist compact` upgrades it.
    #[error(
        "{} is a version {version} table; run 'persist compact {}' to upgrade it (read-only \
         until then)",
        path.display(),
        path.display()
    )]
    OldVersion { path: PathBuf, version: u32 },
}

/// What the write API did to the file, for showing the growth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteStats {
    /// Times the file was grown (ftruncate + mremap).
    pub file_growths: u64,
    /// Times the slot array was rebuilt (rehash into a new, larger array in the arena).
    pub rehashes: u64,
    /// Times the table was compacted into a new file renamed over the old one.
    pub compactions: u64,
}

/// The header's numbers, for `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// The format version (2: read-only, `persist compact` upgrades it; 3: this build's).
    #[serde(default)]
    pub version: u32,
    pub file_bytes: u64,
    pub entries: u64,
    pub used_slots: u64,
    pub slot_count: u64,
    pub slots_offset: u64,
    pub arena_end: u64,
    /// Bytes held by live records (a hint the writers keep).
    pub live_record_bytes: u64,
    /// Arena bytes holding nothing live (overwritten or deleted records, old slot arrays):
    /// what `persist compact` gives back. Computed from the hints.
    pub garbage_bytes: u64,
    pub dirty: bool,
}

impl From<Header> for Stats {
    fn from(h: Header) -> Stats {
        Stats {
            version: h.version,
            file_bytes: h.file_len,
            entries: h.live,
            used_slots: h.used,
            slot_count: h.slot_count(),
            slots_offset: h.slots_off,
            arena_end: h.arena_end,
            live_record_bytes: h.live_bytes,
            garbage_bytes: h.garbage(),
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
    sys::open_regular(path, write).map_err(|failure| match failure {
        sys::OpenFailure::NotRegular(e) => Error::NotRegular(e),
        sys::OpenFailure::Dangling(e) => Error::Dangling(e),
        sys::OpenFailure::Os(error) => Error::Open {
            path: path.to_path_buf(),
            error,
        },
    })
}

fn file_len(path: &Path, file: &File) -> Result<u64, Error> {
    file.metadata()
        .map(|m| m.len())
        .map_err(io_err(path, "fstat"))
}

/// The identity of a file: device and inode, to tell whether a path still names it.
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// Whether `path` still names the open `file` (a compaction renames a new file over it).
fn still_named(path: &Path, file: &File) -> Result<bool, Error> {
    let open = file.metadata().map_err(io_err(path, "fstat"))?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(file_id(&named) == file_id(&open)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(Error::Open {
            path: path.to_path_buf(),
            error,
        }),
        Err(e) => Err(io_err(path, "stat")(e)),
    }
}

/// One read-only mapping of one file: the table's current file, or an older mapping kept
/// alive because values handed out may still point into it.
struct Mapping {
    // Declared before `map` so it is unregistered before the mapping goes away.
    guard: SigbusGuard,
    map: MmapRaw,
    file: File,
    id: (u64, u64),
}

impl Mapping {
    /// Opens `path` and maps the whole file (no lock: readers never wait for writers).
    fn open(path: &Path, access: Access) -> Result<Mapping, Error> {
        let file = open_file(path, false)?;
        Mapping::map(path, file, access)
    }

    fn map(path: &Path, file: File, access: Access) -> Result<Mapping, Error> {
        let meta = file.metadata().map_err(io_err(path, "fstat"))?;
        let len = meta.len();
        if len < HEADER_LEN {
            // Too short to map meaningfully (an empty file cannot be mapped at all).
            return Err(invalid_err(path)(short_file(len)));
        }
        let map = sys::map_read_raw(&file).map_err(io_err(path, "mmap"))?;
        let advice = match access {
            Access::Normal => None,
            Access::HugePages => Some(Advice::HugePage),
            Access::Random | Access::RandomPages => Some(Advice::Random),
            Access::Sequential => Some(Advice::Sequential),
        };
        if let Some(a) = advice {
            map.advise(a).map_err(io_err(path, "madvise"))?;
        }
        let guard = SigbusGuard::register(map.as_ptr(), map.len());
        let m = Mapping {
            guard,
            map,
            file,
            id: file_id(&meta),
        };
        if access == Access::Random {
            m.keep_index_resident();
        }
        Ok(m)
    }

    /// For [`Access::Random`]: asks the kernel to read the current slot array in now
    /// (`MADV_WILLNEED`, asynchronous: one large read instead of a 4 KiB fault per probe), so
    /// that a cold lookup's only major fault is its record's page (`MADV_RANDOM` stays on the
    /// rest). At most [`WILLNEED_MAX`] bytes, so a hostile header claiming a huge array in a
    /// sparse file costs no more. Advice only: a failure changes nothing but speed.
    fn keep_index_resident(&self) {
        let Ok(hdr) = Header::load(self.mem(), self.len()) else {
            return;
        };
        let page = sys::page_size() as u64;
        let start = hdr.slots_off / page * page;
        let end = hdr
            .slots_end()
            .min(start + WILLNEED_MAX)
            .div_ceil(page)
            .saturating_mul(page)
            .min(self.len());
        if start < end {
            let _ = self
                .map
                .advise_range(Advice::WillNeed, start as usize, (end - start) as usize);
        }
    }

    fn mem(&self) -> SharedMem<'_> {
        SharedMem::new(&self.map)
    }

    /// For a scan that probes ([`Table::verify`]): with [`Access::Sequential`], gives the
    /// current slot array back the kernel's normal read-around and page ageing. The records
    /// are read in file order (sequential: the advice fits them), but probes read slots here
    /// and there, and pages of a `MADV_SEQUENTIAL` range are the first reclaimed under memory
    /// pressure: in a small memory cgroup the array would be read from disk again and again.
    /// Advice only; a failure changes nothing but speed, so it is ignored.
    fn advise_slot_array(&self, hdr: &Header, access: Access) {
        if access != Access::Sequential {
            return;
        }
        let page = sys::page_size() as u64;
        let start = hdr.slots_off / page * page;
        let end = hdr.slots_end().div_ceil(page) * page;
        let end = end.min(self.len());
        if start < end {
            let _ = self
                .map
                .advise_range(Advice::Normal, start as usize, (end - start) as usize);
        }
    }

    fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// An error if a bus error hit this mapping (the file was truncated under it, or a page
    /// could not be read).
    fn check(&self, path: &Path) -> Result<(), Error> {
        if self.guard.faulted() {
            return Err(bus_error(path, &self.file, self.len()));
        }
        Ok(())
    }

    /// Loads and validates the header as it is now.
    fn header(&self, path: &Path) -> Result<Header, Error> {
        let hdr = Header::load(self.mem(), self.len());
        self.check(path)?;
        hdr.map_err(invalid_err(path))
    }

    /// Opens the file at `path`, maps it and validates its header. The one way a reader opens
    /// a file ([`Table::open_for`], and [`Table::refresh`] after a compaction): a writer may
    /// grow the file between the fstat that sized the mapping and the header load (the header
    /// then records more bytes than were mapped), so as long as the file is longer now than
    /// the mapping, it is mapped again, at most [`MAX_REFRESH`] times. A header that is wrong
    /// for a file that did not grow is the error.
    fn open_valid(path: &Path, access: Access) -> Result<Mapping, Error> {
        let mut mapping = Mapping::open(path, access)?;
        let mut grown = 0;
        loop {
            match mapping.header(path) {
                Ok(_) => return Ok(mapping),
                Err(e) if grown < MAX_REFRESH => {
                    let now = file_len(path, &mapping.file)?;
                    if now <= mapping.len() {
                        return Err(e);
                    }
                    let file = mapping.file.try_clone().map_err(io_err(path, "dup"))?;
                    mapping = Mapping::map(path, file, access)?;
                    grown += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A table opened for reading: a read-only `MAP_SHARED` mapping of the whole file and no lock,
/// so a reader never waits for a writer and a writer never waits for a reader. Lookups never
/// copy: values are slices of the mapping.
///
/// # What a reader sees while a writer writes
///
/// Each lookup reads the header's slot descriptor and arena end, then one slot word, with
/// acquire loads; a writer writes a record into free space, advances the arena end, and only
/// then publishes the record with one release store into its slot. A published record is
/// never written again. So a lookup returns, per key, the value before or after any write
/// running at the same time — never a torn record, a wrong value or an error. It is not a
/// snapshot: two lookups (or the entries of one [`Table::for_each`]) may straddle a write.
/// When the writer grew the file past this reader's mapping, the reader maps the file again;
/// when a compaction renamed a new file over the path (the old one is marked retired), the
/// reader opens the path again. Older mappings stay mapped until the `Table` is dropped, so a
/// value returned earlier stays valid.
pub struct Table {
    path: PathBuf,
    access: Access,
    /// The mapping lookups use: always one of the boxes in `mappings`.
    current: AtomicPtr<Mapping>,
    /// Every mapping this reader made, never shrunk before drop (values may point into any).
    /// Boxed so that `current` stays valid when the vector reallocates.
    #[allow(clippy::vec_box)]
    mappings: Mutex<Vec<Box<Mapping>>>,
}

/// How many times one operation follows a growth or a compaction before giving up on the
/// newest file (it then answers from the mapping it has, which is still valid).
const MAX_REFRESH: usize = 8;

/// How many times one lookup starts again because the slot array it probed was replaced
/// (see [`View::stale`]); each time means a whole rehash ran meanwhile.
const MAX_STALE: usize = 1000;

/// The most of a slot array [`Access::Random`] asks the kernel to read in at open.
const WILLNEED_MAX: u64 = 1 << 30;

impl Table {
    /// Opens and validates a table for many lookups ([`Access::HugePages`]). Never waits: a
    /// writer may be writing it meanwhile.
    pub fn open(path: impl AsRef<Path>) -> Result<Table, Error> {
        Table::open_for(path, Access::HugePages)
    }

    /// Opens and validates a table, telling the kernel how it will be accessed before the
    /// first byte is touched (so even the header's page fault reads no more than it should).
    pub fn open_for(path: impl AsRef<Path>, access: Access) -> Result<Table, Error> {
        let path = path.as_ref();
        let mut mapping = Box::new(Mapping::open_valid(path, access)?);
        let current: *mut Mapping = &mut *mapping;
        Ok(Table {
            path: path.to_path_buf(),
            access,
            current: AtomicPtr::new(current),
            mappings: Mutex::new(vec![mapping]),
        })
    }

    fn current(&self) -> &Mapping {
        let p = self.current.load(Ordering::Acquire);
        // SAFETY: `current` always points into a `Box<Mapping>` held by `self.mappings`, which
        // never removes a box before `self` is dropped (and a box's contents never move), so
        // the pointee lives as long as `&self`. It is only ever read through shared references.
        unsafe { &*p }
    }

    /// Makes `m` current if no other thread has moved on meanwhile; keeps it alive either way.
    fn install(&self, m: Mapping) {
        let mut all = self.mappings.lock().unwrap_or_else(|e| e.into_inner());
        let mut b = Box::new(m);
        let p: *mut Mapping = &mut *b;
        all.push(b);
        self.current.store(p, Ordering::Release);
    }

    /// After a lookup found the mapping too short or the file retired: maps the grown file, or
    /// opens the file a compaction renamed over the path. Returns whether anything changed.
    fn refresh(&self, m: &Mapping, hdr: Option<&Header>) -> Result<bool, Error> {
        if hdr.is_some_and(Header::retired) {
            return match Mapping::open_valid(&self.path, self.access) {
                Ok(next) if next.id != m.id => {
                    self.install(next);
                    Ok(true)
                }
                // The path is gone or names this same file: keep reading this one (it stays
                // valid: a retired file is never written again).
                Ok(_) | Err(Error::Open { .. } | Error::Dangling(_)) => Ok(false),
                Err(e) => Err(e),
            };
        }
        let now = file_len(&self.path, &m.file)?;
        if now <= m.len() {
            return Ok(false);
        }
        let file = m.file.try_clone().map_err(io_err(&self.path, "dup"))?;
        self.install(Mapping::map(&self.path, file, self.access)?);
        Ok(true)
    }

    /// The current mapping and its header as it is now, following growth and compaction.
    fn snapshot(&self) -> Result<(&Mapping, Header), Error> {
        let mut refreshes = 0;
        loop {
            let m = self.current();
            match m.header(&self.path) {
                Ok(h) if h.retired() && refreshes < MAX_REFRESH => {
                    refreshes += 1;
                    if !self.refresh(m, Some(&h))? {
                        return Ok((m, h));
                    }
                }
                Ok(h) => return Ok((m, h)),
                Err(e) if refreshes < MAX_REFRESH => {
                    refreshes += 1;
                    if !self.refresh(m, None)? {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `f` on a view of the table as it is now; if it fails because this reader's
    /// mapping is behind the file (grown, or compacted), catches up and tries again.
    fn with_view<'s, T>(
        &'s self,
        mut f: impl FnMut(View<SharedMem<'s>>) -> Result<T, Invalid>,
    ) -> Result<T, Error> {
        let (mut refreshes, mut stale) = (0, 0);
        loop {
            let (m, hdr) = self.snapshot()?;
            let view = View { mem: m.mem(), hdr };
            let result = f(view);
            m.check(&self.path)?;
            match result {
                Ok(v) => return Ok(v),
                // A rehash replaced the slot array meanwhile: start again on the new one.
                Err(_) if view.stale() && stale < MAX_STALE => stale += 1,
                Err(e) => {
                    refreshes += 1;
                    if refreshes > MAX_REFRESH || !self.refresh(m, None)? {
                        return Err(invalid_err(&self.path)(e));
                    }
                }
            }
        }
    }

    /// Returns an error if a bus error hit any of this reader's mappings since it was opened
    /// (the file was truncated under it, or a page could not be read). Values returned earlier
    /// are only trustworthy if this still says `Ok` after using them.
    pub fn check(&self) -> Result<(), Error> {
        let all = self.mappings.lock().unwrap_or_else(|e| e.into_inner());
        for m in all.iter() {
            m.check(&self.path)?;
        }
        Ok(())
    }

    /// Looks a key up. The value is a slice of the mapping: no copy, no system call (unless
    /// the file grew past this reader's mapping, or was compacted: then it maps it anew).
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>, Error> {
        self.fast_view(|view| view.get(key))
    }

    /// The distinct `line`-byte lines of the file a lookup of `key` reads (slots probed and
    /// the record's head, key and value; the header's line not counted), or `None` when the
    /// key is absent: the misses a cold-cache get takes, counted from the layout.
    pub fn lines_read(&self, key: &[u8], line: u64) -> Result<Option<u32>, Error> {
        self.with_view(|view| view.lines_read(key, key_hash(key), line))
    }

    /// [`Table::with_view`] after trying the fast path: three header words loaded, no
    /// retries. Anything unusual (a grown or compacted file, a damaged one, a bus error) goes
    /// the careful way.
    #[inline]
    fn fast_view<'s, T>(
        &'s self,
        mut f: impl FnMut(View<SharedMem<'s>>) -> Result<T, Invalid>,
    ) -> Result<T, Error> {
        let m = self.current();
        if let Some(hdr) = Header::load_live(m.mem(), m.len()) {
            if let Ok(found) = f(View { mem: m.mem(), hdr }) {
                if !m.guard.faulted() {
                    return Ok(found);
                }
            }
        }
        self.with_view(f)
    }

    /// Looks many keys up at once, overlapping their cache misses (software-pipelined: see
    /// [`Table::get_many_into_depth`], at [`DEFAULT_DEPTH`]). The values are slices of the
    /// mapping, in the order of `keys`.
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<&[u8]>>, Error> {
        let mut out = Vec::with_capacity(keys.len());
        self.get_many_into(keys, &mut out)?;
        Ok(out)
    }

    /// [`Table::get_many`] into a vector the caller reuses (cleared first).
    pub fn get_many_into<'s, K: AsRef<[u8]>>(
        &'s self,
        keys: &[K],
        out: &mut Vec<Option<&'s [u8]>>,
    ) -> Result<(), Error> {
        self.get_many_into_depth(keys, out, DEFAULT_DEPTH)
    }

    /// [`Table::get_many_into`] with `depth` lookups in flight (clamped to 1..=[`MAX_DEPTH`]):
    /// while key `i` is finished, the record of key `i + depth` and the home slot line of key
    /// `i + 2 * depth` are being fetched (prefetch instructions), so about `2 * depth` cache
    /// misses overlap. Size it by the machine's memory-level parallelism: too few leaves the
    /// memory idle, too many evicts prefetched lines before they are used.
    pub fn get_many_into_depth<'s, K: AsRef<[u8]>>(
        &'s self,
        keys: &[K],
        out: &mut Vec<Option<&'s [u8]>>,
        depth: usize,
    ) -> Result<(), Error> {
        const RING: usize = 4 * MAX_DEPTH;
        let d = depth.clamp(1, MAX_DEPTH);
        out.clear();
        // A ring of the hashes of keys i..i+2d (each hashed once).
        let mut hashes = [0u64; RING];
        for chunk in keys.chunks(PIPELINE_CHUNK) {
            let start = out.len();
            self.fast_view(|view| {
                out.truncate(start);
                let n = chunk.len();
                let slot_line = |h: u64| view.mem.prefetch(view.slot_at(view.hdr.home(h)));
                let record = |h: u64, key_len: usize| {
                    if let Some(offset) = view.candidate(h, key_len) {
                        view.prefetch_record(offset);
                    }
                };
                for (j, k) in chunk.iter().enumerate().take(2 * d) {
                    hashes[j % RING] = key_hash(k.as_ref());
                    slot_line(hashes[j % RING]);
                }
                for (j, k) in chunk.iter().enumerate().take(d) {
                    record(hashes[j % RING], k.as_ref().len());
                }
                for (i, k) in chunk.iter().enumerate() {
                    if let Some(far) = chunk.get(i + 2 * d) {
                        let h = key_hash(far.as_ref());
                        hashes[(i + 2 * d) % RING] = h;
                        slot_line(h);
                    }
                    if let Some(near) = chunk.get(i + d) {
                        record(hashes[(i + d) % RING], near.as_ref().len());
                    }
                    out.push(view.get_hashed(k.as_ref(), hashes[i % RING])?);
                }
                debug_assert_eq!(out.len(), start + n);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The ranges of slot indices that may hold something (the rest lies in holes).
    fn slot_ranges(m: &Mapping, hdr: &Header) -> Vec<(u64, u64)> {
        let (off, count) = (hdr.slots_off, hdr.slot_count());
        let data = sys::data_ranges(&m.file, off, off + count * 8);
        format::slot_ranges(&data, off, count)
    }

    /// Calls `f` with every entry, in file order: the slot array is read front to back once
    /// (collecting the live slots' record offsets, 8 bytes each), then the records in
    /// ascending offset, so the scan reads the file in order however the keys hash. Each
    /// record is copied out of the mapping and checked (no bus error while copying) before `f`
    /// sees it, so a file truncated during the scan never hands out zero bytes as an entry.
    ///
    /// Takes no lock and is not a snapshot: an entry not written during the scan is seen
    /// exactly once, with its value; an entry overwritten during the scan is seen once, with
    /// the old or the new value (a published record is never written again, so the old one is
    /// still there to read); one inserted or deleted during it may or may not be seen. The
    /// scan walks the slot array current when it started (a rehash or compaction meanwhile
    /// leaves it intact).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<(), Error> {
        // The live slots of the current array, read while it was current: a writer reuses a
        // replaced array's space for records, so a scan that straddled a rehash starts again.
        let mut stale = 0;
        let (mut m, hdr, live) = loop {
            let (m, hdr) = self.snapshot()?;
            let ranges = Table::slot_ranges(m, &hdr);
            let view = View { mem: m.mem(), hdr };
            let live = view.scan_slots(&ranges).live;
            m.check(&self.path)?;
            if !view.stale() {
                break (m, hdr, live);
            }
            stale += 1;
            if stale > MAX_STALE {
                return Err(invalid_err(&self.path)(format::stale_view()));
            }
        };
        let mut buf = Vec::new();
        let mut refreshes = 0;
        let mut prev = None;
        for slot in live {
            LiveSlot::distinct(prev.replace(slot), slot).map_err(invalid_err(&self.path))?;
            let offset = slot.offset();
            let rec = loop {
                // A record a writer published after this mapping was made may lie past its
                // end: read it through the newest mapping of this same file.
                let rec = View { mem: m.mem(), hdr }.checked_record(offset);
                m.check(&self.path)?;
                match rec {
                    Ok(r) => break r,
                    Err(e) => {
                        refreshes += 1;
                        let same_file = |n: &Mapping| n.id == m.id;
                        if refreshes > MAX_REFRESH
                            || !self.refresh(m, None)?
                            || !same_file(self.current())
                        {
                            return Err(invalid_err(&self.path)(e));
                        }
                        m = self.current();
                    }
                }
            };
            buf.clear();
            buf.extend_from_slice(rec.key);
            buf.extend_from_slice(rec.value);
            m.check(&self.path)?;
            let (k, v) = buf.split_at(rec.key.len());
            f(k, v);
        }
        m.check(&self.path)
    }

    /// Checks the whole table: every slot's record is in bounds, outside the slot array, passes
    /// its check, carries the slot's tag, is reachable by a lookup and unique; and the counts.
    /// Scans only the parts of the slot array that hold data (holes read as empty slots).
    ///
    /// Unlike lookups, this checks the table at one instant, so it takes the writers' lock
    /// (shared: several verifies run together) and waits while a writer writes.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        Ok(self.verify_noting_scratch()?.0)
    }

    /// [`Table::verify`], and the scratch file an interrupted compaction left beside the table,
    /// if any: looked for while the lock keeps writers out, so no compaction is running and a
    /// scratch file there was left by one that was killed.
    pub fn verify_noting_scratch(&self) -> Result<(VerifyReport, Option<Scratch>), Error> {
        let mut refreshes = 0;
        loop {
            let (locked_map, _) = self.snapshot()?;
            sys::flock(&locked_map.file, false, true).map_err(io_err(&self.path, "flock"))?;
            // A writer may have grown the file past this mapping while we waited for the lock:
            // a header recording more than the mapping holds is first mapped again (the lock
            // now keeps writers out, so one remap sees the final length). Only a file still
            // shorter than its header after that was truncated.
            let mut m = locked_map;
            let mut locked = m.header(&self.path);
            let mut grown = 0;
            while locked.is_err() && grown < MAX_REFRESH && self.refresh(m, None)? {
                grown += 1;
                m = self.current();
                locked = m.header(&self.path);
            }
            let result = match locked {
                Ok(hdr) if hdr.retired() && refreshes < MAX_REFRESH => None,
                Ok(hdr) => {
                    let ranges = Table::slot_ranges(m, &hdr);
                    m.advise_slot_array(&hdr, self.access);
                    let report = View { mem: m.mem(), hdr }.verify(&ranges);
                    let scratch = compact_scratch(&self.path);
                    Some(
                        m.check(&self.path)
                            .and(report.map_err(invalid_err(&self.path)))
                            .map(|r| (r, scratch)),
                    )
                }
                Err(e) => Some(Err(e)),
            };
            let _ = sys::unlock(&locked_map.file);
            match result {
                Some(r) => return r,
                None => {
                    // Compacted while we waited for the lock: check the new file.
                    refreshes += 1;
                    self.snapshot()?;
                }
            }
        }
    }

    /// The header's numbers now (loaded with atomic loads; a writer may change them).
    pub fn stats(&self) -> Result<Stats, Error> {
        Ok(self.snapshot()?.1.into())
    }

    /// How many mappings this reader has made: 1 at open, one more each time it caught up
    /// with a grown file or followed a compaction to the new file.
    pub fn mappings(&self) -> usize {
        self.mappings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Length of the current mapping (the file's length when it was mapped).
    pub fn mapped_len(&self) -> u64 {
        self.current().len()
    }

    /// Address of the current mapping (to find it in `/proc/self/smaps`); never dereference.
    pub fn mapping_addr(&self) -> usize {
        self.current().map.as_ptr() as usize
    }

    /// Pages of the file resident in the page cache now (`mincore(2)` over the mapping).
    pub fn resident_pages(&self) -> Result<usize, Error> {
        let m = self.current();
        sys::resident_pages(m.map.as_ptr(), m.map.len()).map_err(io_err(&self.path, "mincore"))
    }

    /// The current file (for `fsync`/`posix_fadvise` by the caller).
    pub fn file(&self) -> &File {
        &self.current().file
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
    /// `MADV_RANDOM` for many cold lookups: a fault reads only its page, and the current slot
    /// array is read in at open (`MADV_WILLNEED`), so each cold lookup's one major fault is its
    /// record's page.
    Random,
    /// `MADV_RANDOM` alone: every page, the slot array's included, is read when a lookup first
    /// touches it and nothing around it (`persist get` and `stats`: step 2 shows that a lookup
    /// reads only the pages it touches).
    RandomPages,
    /// `MADV_SEQUENTIAL`: aggressive read-ahead, and pages reclaimed first (list, verify,
    /// which read the file in order; verify gives its slot array, which it probes, normal
    /// advice again).
    Sequential,
}

/// What [`page_cache_residency`] saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Residency {
    pub pages_total: u64,
    pub pages_resident_before: u64,
    /// `"fadvise"` if the eviction was asked for and the kernel accepted it, else `"none"`.
    pub eviction: String,
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
        let map = sys::map_read_raw(file).map_err(io_err(path, "mmap"))?;
        Ok(sys::resident_pages(map.as_ptr(), map.len()).map_err(io_err(path, "mincore"))? as u64)
    };
    let before = count(&file)?;
    let (mut eviction, mut note) = ("none".to_string(), String::new());
    if evict {
        match file.sync_all().and_then(|_| sys::fadvise_dontneed(&file)) {
            Ok(()) => eviction = "fadvise".into(),
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
    /// When the file must grow and more than half of its arena is garbage (and the arena is
    /// at least 1 MiB), compact instead ([`TableMut::compact`]).
    pub auto_compact: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            private: false,
            wait: true,
            huge_pages: true,
            auto_compact: true,
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
    /// Whether bulk writes asked for huge pages (kept for the file a compaction makes).
    huge_pages: bool,
    /// Compact on growth when more than half the arena is garbage.
    auto_compact: bool,
    /// The space of slot arrays a rehash of this session replaced, `(start, end)`, that new
    /// records fill before the arena grows (readers still probing such an array notice: see
    /// [`View::stale`]). Forgotten when the writer closes: garbage until a compaction.
    free: Vec<(u64, u64)>,
    /// A record being stored (reused so a put allocates nothing).
    buf: Vec<u8>,
}

/// Lookups in flight in [`Table::get_many_into`] (see [`Table::get_many_into_depth`]).
pub const DEFAULT_DEPTH: usize = 8;

/// The most lookups [`Table::get_many_into_depth`] keeps in flight.
pub const MAX_DEPTH: usize = 64;

/// Keys looked up per view in [`Table::get_many_into_depth`] (a lookup that must start again,
/// after a growth or a rehash, redoes at most this many).
const PIPELINE_CHUNK: usize = 1024;

/// Default size of a new table's slot array (2^6 = 64 slots): small, so growth is visible.
pub const DEFAULT_SLOTS_LOG2: u32 = 6;

/// Space reserved ahead inside the file, at least (1 MiB): one `fallocate` per megabyte of puts.
const RESERVE_CHUNK: u64 = 1 << 20;

/// A writer compacts on its own only arenas of at least this many bytes (below it, the
/// garbage is not worth a new file).
const AUTO_COMPACT_MIN: u64 = 1 << 20;

/// The scratch file a compaction of the table `path` names builds before renaming it over the
/// table: `FILE.persist-compact` beside the file itself, `FILE` being `path` with its symlinks
/// followed (`resolve_links`; `path` as it is when they cannot be). One left by a killed
/// compactor is removed by the next writer (which holds the lock, so no compaction can be
/// running).
pub fn compact_path(path: &Path) -> PathBuf {
    scratch_beside(&resolve_links(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// The parenthesis of [`Error::NoSpace`]: what could not be reserved, and that the table still
/// holds every put that returned (during a compaction: that it was not compacted at all).
fn no_space_detail(bytes: u64, scratch: Option<&Path>) -> String {
    match scratch {
        None => format!(
            "could not reserve {bytes} bytes for the table; nothing was written: it holds \
             every put that returned"
        ),
        Some(copy) => format!(
            "could not reserve {bytes} bytes for its compacted copy {}, which was removed; \
             nothing was compacted: the table is unchanged and holds every put that returned",
            copy.display()
        ),
    }
}

/// The length a compacted copy asks for: what its slots and records `need`, and an eighth more
/// for the puts that follow, capped at the replaced file's `old_len` (but never below `need`).
fn headroom(need: u64, old_len: u64) -> u64 {
    need.saturating_add(need / 8).min(old_len).max(need)
}

/// The scratch file's suffix.
const SCRATCH_SUFFIX: &str = ".persist-compact";

/// The longest file name Linux file systems accept (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// `FILE.persist-compact` for the file (not a link) `file`, when that name fits in `NAME_MAX`
/// bytes (a table name of up to 239 bytes). A longer table name's scratch name is its first
/// 222 bytes, a dot, 16 hex digits of a hash of the whole name, then `.persist-compact`: 255
/// bytes, and the same every time for the same name, so that the next writer (and `verify`,
/// `stats`) finds what a killed compaction left.
fn scratch_beside(file: &Path) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let table = file.file_name().unwrap_or_default().as_bytes();
    let mut name = if table.len() + SCRATCH_SUFFIX.len() <= NAME_MAX {
        table.to_vec()
    } else {
        let hash = format!(".{:016x}", key_hash(table));
        let mut short = table[..NAME_MAX - SCRATCH_SUFFIX.len() - hash.len()].to_vec();
        short.extend_from_slice(hash.as_bytes());
        short
    };
    name.extend_from_slice(SCRATCH_SUFFIX.as_bytes());
    file.with_file_name(std::ffi::OsString::from_vec(name))
}

/// The path of the file `path` names, its last component's symlinks followed one after the
/// other (a relative link's target is taken from the link's directory), so that a
/// compaction renames its new file over the file a link points to, in that file's directory,
/// and never over the link. Directories on the way are left to the kernel (joined, never
/// normalised: `..` after a linked directory means what the kernel says it means). A path that
/// is not a link comes back as it is.
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    // The kernel's own limit on links followed in one lookup (ELOOP past it).
    for _ in 0..40 {
        if !std::fs::symlink_metadata(&p)?.file_type().is_symlink() {
            return Ok(p);
        }
        let target = std::fs::read_link(&p)?;
        p = match p.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// A scratch file beside a table (`FILE.persist-compact`): what a compaction killed before its
/// rename leaves until the next writer removes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scratch {
    /// Its path (beside the file the table's path names, links followed).
    pub path: PathBuf,
    /// Its length in bytes (up to the size of the table it was a copy of).
    pub bytes: u64,
}

/// The scratch file beside the table `path` names, if there is one. Looked at, never removed:
/// only a writer, holding the lock, knows that no compaction is running.
pub fn compact_scratch(path: &Path) -> Option<Scratch> {
    let path = compact_path(path);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    Some(Scratch {
        path,
        bytes: meta.len(),
    })
}

/// Gives the compacted copy `new` the owner, group and mode of the table `old` it replaces
/// (`fchown(2)` first, which may clear set-id bits, then `fchmod(2)`), so that a compaction
/// changes who may read and write the table in no way. Not being allowed to (a user who is not
/// root compacting a table whose owner or group is not theirs) is an error: the compaction is
/// abandoned and the table left as it was.
fn keep_identity(old: &File, new: &File) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (was, is) = (old.metadata()?, new.metadata()?);
    if (was.uid(), was.gid()) != (is.uid(), is.gid()) {
        std::os::unix::fs::fchown(new, Some(was.uid()), Some(was.gid()))?;
    }
    new.set_permissions(std::fs::Permissions::from_mode(was.mode() & 0o7777))
}

/// [`Error::OldVersion`] if `path` is a table of the previous format version (for a write
/// command aimed at it, which must name the upgrade rather than only refuse).
fn old_version(path: &Path) -> Option<Error> {
    let version = Table::open_for(path, Access::Normal)
        .ok()?
        .stats()
        .ok()?
        .version;
    (version != VERSION).then(|| Error::OldVersion {
        path: path.to_path_buf(),
        version,
    })
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompactStats {
    pub entries: u64,
    pub file_bytes_before: u64,
    pub file_bytes_after: u64,
    pub arena_bytes_before: u64,
    pub arena_bytes_after: u64,
}

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
        let count = 1u64 << slots_log2.clamp(3, 30);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|error| match error.kind() {
                io::ErrorKind::AlreadyExists => match sys::dangling_link(path) {
                    Some(d) => Error::Dangling(d),
                    None => old_version(path).unwrap_or_else(|| Error::Exists {
                        path: path.to_path_buf(),
                    }),
                },
                _ => Error::Open {
                    path: path.to_path_buf(),
                    error,
                },
            })?;
        let made = Self::init(path, file, count, opts, 0);
        if made.is_err() {
            let _ = std::fs::remove_file(path);
        }
        made
    }

    /// Creates a new table whose file is `len` bytes from the start (space reserved), for a
    /// compaction that knows how much it will copy.
    fn create_with_len(
        path: &Path,
        slots: u64,
        opts: WriteOptions,
        len: u64,
    ) -> Result<TableMut, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|error| Error::Open {
                path: path.to_path_buf(),
                error,
            })?;
        if len > MAX_FILE_LEN {
            return Err(Error::TooLarge {
                path: path.to_path_buf(),
                what: format!("a table of {len} bytes (the limit is {MAX_FILE_LEN})"),
            });
        }
        Self::init(path, file, slots, opts, len)
    }

    /// Sizes and fills a new file: `min_len` bytes at least (a compaction sizes its file for
    /// everything it will copy), all of it reserved with fallocate.
    fn init(
        path: &Path,
        file: File,
        slots: u64,
        opts: WriteOptions,
        min_len: u64,
    ) -> Result<TableMut, Error> {
        let huge = opts.huge_pages;
        sys::flock(&file, true, true).map_err(io_err(path, "flock"))?;
        let slots_bytes = slots * 8;
        let arena_end = HEADER_LEN + slots_bytes;
        let page = sys::page_size() as u64;
        let len = arena_end.max(min_len).div_ceil(page) * page;
        file.set_len(len).map_err(io_err(path, "ftruncate"))?;
        let reserve_unsupported = match sys::fallocate(&file, 0, len) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => true,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                return Err(Error::NoSpace {
                    path: path.to_path_buf(),
                    bytes: len,
                    scratch: None,
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
            version: VERSION,
            desc: slots_desc(HEADER_LEN, slots),
            slots_off: HEADER_LEN,
            slots,
            arena_end,
            live: 0,
            used: 0,
            live_bytes: 0,
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
            huge_pages: huge,
            auto_compact: opts.auto_compact,
            free: Vec::new(),
            buf: Vec::new(),
        };
        t.check()?;
        Ok(t)
    }

    /// Opens an existing table for writing. Takes the writers' lock (waiting, or failing with
    /// [`Error::Locked`] when `!opts.wait`). If the file was compacted while this writer
    /// waited (a new file renamed over the path: the inode the path names is no longer the
    /// one locked), it opens the path again. Recounts if the previous writer was killed or the
    /// header's counts are impossible, records the length of a file that a failed or killed
    /// growth left longer than the header says, and removes a killed compaction's scratch file.
    ///
    /// A table of the previous version ([`format::VERSION_READ_ONLY`]) is refused with
    /// [`Error::OldVersion`] before anything is written: see [`TableMut::open_to_upgrade`].
    pub fn open(path: impl AsRef<Path>, opts: WriteOptions) -> Result<TableMut, Error> {
        Self::open_any(path.as_ref(), opts, false)
    }

    /// [`TableMut::open`], accepting a table of the previous version too, for
    /// [`TableMut::compact`] to upgrade it (its `put` and `delete` refuse until then).
    pub fn open_to_upgrade(path: impl AsRef<Path>, opts: WriteOptions) -> Result<TableMut, Error> {
        Self::open_any(path.as_ref(), opts, true)
    }

    fn open_any(path: &Path, opts: WriteOptions, upgrade: bool) -> Result<TableMut, Error> {
        let mut renamed = 0;
        let file = loop {
            let file = open_file(path, !opts.private)?;
            // A private mapping changes nothing in the file: a shared lock is enough.
            let exclusive = !opts.private;
            if !sys::flock(&file, exclusive, opts.wait).map_err(io_err(path, "flock"))? {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                });
            }
            if still_named(path, &file)? {
                break file;
            }
            renamed += 1;
            if renamed > 100 {
                return Err(io_err(path, "open")(io::Error::other(
                    "the file was replaced 100 times while this writer waited for its lock",
                )));
            }
        };
        if !opts.private {
            // We hold the lock of the file the path names: no compaction is running, so a
            // scratch file is what a killed one left.
            let _ = std::fs::remove_file(compact_path(path));
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
        if hdr.version != VERSION && !upgrade {
            return Err(Error::OldVersion {
                path: path.to_path_buf(),
                version: hdr.version,
            });
        }
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
            huge_pages: opts.huge_pages,
            auto_compact: opts.auto_compact,
            free: Vec::new(),
            buf: Vec::new(),
        };
        // The path names this file, so it is not retired (a flag left by a compactor killed
        // before... cannot be: it renames first, then marks the old file). Clear a stray one.
        t.hdr.flags = (t.hdr.flags | FLAG_DIRTY) & !FLAG_RETIRED;
        t.write_flags();
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

    /// Recounts live and used slots and the bytes of live records: after a writer was killed,
    /// or when the header's counts cannot be true. The counts come from the slots themselves.
    fn recount(&mut self) -> Result<(), Error> {
        let ranges = self.slot_ranges();
        let view = self.view();
        let (live, used) = view.count_slots(&ranges);
        let mut live_bytes = 0u64;
        for rec in view.iter(&ranges) {
            // A damaged record counts nothing; verify reports it.
            live_bytes += rec.map_or(0, |r| r.len);
        }
        self.check()?;
        self.hdr.live = live;
        self.hdr.used = used;
        self.hdr.live_bytes = live_bytes;
        self.write_counts();
        Ok(())
    }

    /// This writer's view: plain reads are fine, no other process writes this mapping.
    fn view(&self) -> View<&[u8]> {
        let len = (self.hdr.file_len as usize).min(self.map.len());
        View {
            mem: &self.map[..len],
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
        self.write_flags();
    }

    /// Stores the word holding the flags and the live-record words (one 8-byte store).
    fn write_flags(&mut self) {
        let words = u64::from(u32::try_from(self.hdr.live_bytes / 8).unwrap_or(u32::MAX));
        let word = words << 32 | u64::from(self.hdr.flags);
        sys::publish_u64(&mut self.map, H_FLAGS, word);
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
                    scratch: None,
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
        // Steps of an eighth (16 KiB to 1 GiB): the file stays within an eighth of its data.
        let grown = old_len + (old_len / 8).clamp(1 << 14, 1 << 30);
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
        // A bus error first: a truncated file reads as zeros, which no probe makes sense of.
        let probe = self.view().probe(key, h);
        self.check()?;
        let mut probe = probe.map_err(invalid_err(&self.path))?;
        let needs_rehash = match probe {
            Probe::Absent { empty: true, .. } => {
                (self.hdr.used + 1) * 5 > self.hdr.slot_count() * 4
            }
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

    /// The bytes the record in slot `index` takes (0 if it cannot be read: a damaged record).
    fn record_len_at(&self, index: u64) -> u64 {
        let view = self.view();
        match Slot::decode(view.slot_word(index)) {
            Slot::Full { offset, .. } => view.record(offset).map_or(0, |r| r.len),
            _ => 0,
        }
    }

    /// Compacts first if storing `extra` more bytes would grow the file while more than half
    /// of the arena is garbage.
    fn maybe_compact(&mut self, extra: u64) -> Result<(), Error> {
        let h = &self.hdr;
        let arena = h.arena_end - HEADER_LEN;
        let grows = h.arena_end.saturating_add(extra) > h.file_len;
        if !self.auto_compact
            || self.private
            || !grows
            || arena < AUTO_COMPACT_MIN
            || h.garbage() * 2 <= arena
        {
            return Ok(());
        }
        // A compaction that fails leaves the table as it was (it fails before the rename or
        // not at all): go on growing it as usual, and do not try again in this session (no
        // room on the disk, an unwritable directory for the scratch file...). A bus error is
        // still noticed by the write's own checks.
        if self.compact().is_err() {
            self.auto_compact = false;
        }
        Ok(())
    }

    /// Inserts or replaces `key`. Returns whether an old value was replaced. When it returns,
    /// the change is in the page cache (visible to every process; durable across a crash of
    /// this process, and across power loss only after [`Self::sync`]).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool, Error> {
        self.check()?;
        self.writable()?;
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
        self.maybe_compact(rec_len)?;
        let h = key_hash(key);
        let probe = self.probe_for_insert(key, h)?;
        let old_len = match probe {
            Probe::Found { index, .. } => self.record_len_at(index),
            _ => 0,
        };
        // Write the record into free space (a replaced slot array's, else reserved space past
        // the arena end, which is then advanced), then publish it.
        let reused = self.take_free(rec_len);
        let off = match reused {
            Some(off) => off,
            None => self.alloc(rec_len)?,
        };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.resize(rec_len as usize, 0);
        encode_record(key, value, &mut buf);
        if reused.is_some() {
            // Readers may still probe the replaced array here: word stores only (release, so
            // that a reader who loads one sees the new slot descriptor after it).
            sys::publish_words(&mut self.map, off as usize, &buf);
        } else {
            self.map[off as usize..(off + rec_len) as usize].copy_from_slice(&buf);
        }
        self.buf = buf;
        // A store that hit a bus error went into a zero page the handler put in its place,
        // not into the file: never publish it.
        self.check()?;
        if reused.is_none() {
            self.publish_arena_end(off + rec_len);
        }
        self.hdr.live_bytes = (self.hdr.live_bytes + rec_len).saturating_sub(old_len);
        let word = slot_word(self.hdr.tag(h, key.len()), off);
        let replaced = match probe {
            Probe::Found { index, .. } => {
                self.publish_slot(index, word);
                self.write_flags();
                true
            }
            Probe::Absent { index, empty } => {
                self.publish_slot(index, word);
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

    /// `len` bytes of the space of a replaced slot array, if one has that much left.
    fn take_free(&mut self, len: u64) -> Option<u64> {
        let i = self.free.iter().position(|&(a, b)| b - a >= len)?;
        let (a, b) = self.free[i];
        if b - a == len {
            self.free.swap_remove(i);
        } else {
            self.free[i].0 = a + len;
        }
        Some(a)
    }

    /// An error unless this table is of the version this build writes.
    fn writable(&self) -> Result<(), Error> {
        if self.hdr.version != VERSION {
            return Err(Error::OldVersion {
                path: self.path.clone(),
                version: self.hdr.version,
            });
        }
        Ok(())
    }

    /// Deletes `key` (one store of a tombstone into its slot). Returns whether it was there.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        self.check()?;
        self.writable()?;
        let probe = self.view().probe(key, key_hash(key));
        self.check()?;
        match probe.map_err(invalid_err(&self.path))? {
            Probe::Found { index, .. } => {
                let old_len = self.record_len_at(index);
                self.publish_slot(index, u64::from(TOMBSTONE));
                self.hdr.live_bytes = self.hdr.live_bytes.saturating_sub(old_len);
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

    /// Builds a new slot array in the arena from the live entries (dropping tombstones): at load
    /// 1/2, or the same size when tombstones rather than live keys filled it. Then switches the
    /// header to it with one 8-byte store. Readers that loaded the old descriptor may go on
    /// probing the old array; its space then takes new records ([`TableMut::put`]), which
    /// such a reader notices before trusting a slot ([`View::stale`]) and looks again.
    ///
    /// Sized by the live slots it counts, never by the header's counts (which may lie), and
    /// scanning only the parts of the old array that hold data.
    fn rehash(&mut self) -> Result<(), Error> {
        let ranges = self.slot_ranges();
        let (live, _) = self.view().count_slots(&ranges);
        self.check()?;
        // Load 1/2 after the rehash (a step of about 1.6 from the 4/5 that calls it), or the
        // same size when deleted slots rather than live keys filled the array.
        let (old_off, old_count) = (self.hdr.slots_off, self.hdr.slot_count());
        let want = (live + 1).saturating_mul(2).max(MIN_SLOTS);
        let count = if want <= old_count { old_count } else { want };
        if count > MAX_SLOTS {
            return Err(Error::TooLarge {
                path: self.path.clone(),
                what: "the slot array".into(),
            });
        }
        let off = self.alloc(count * 8)?;
        let (a0, a1) = (off as usize, (off + count * 8) as usize);
        self.map[a0..a1].fill(0); // the space may hold a killed writer's half-written record
        let (mut moved, mut live_bytes) = (0u64, 0u64);
        // The records in file order (each key must be read to find its new home slot): the
        // file is read front to back once, not in the order the keys hash.
        let live = self.view().scan_slots(&ranges).live;
        for slot in live {
            let view = self.view();
            let word = view.slot_word(slot.index());
            let rec = view
                .record(slot.offset())
                .map_err(invalid_err(&self.path))?;
            let h = key_hash(rec.key);
            live_bytes += rec.len;
            let mut j = format::home_v3(h, count);
            // Terminates: fewer than half the slots are taken.
            loop {
                let at = a0 + (j * 8) as usize;
                if self.map[at..at + 8] == [0u8; 8] {
                    self.map[at..at + 8].copy_from_slice(&word.to_le_bytes());
                    break;
                }
                j = if j + 1 == count { 0 } else { j + 1 };
            }
            moved += 1;
        }
        self.check()?;
        self.publish_arena_end(off + count * 8);
        let desc = slots_desc(off, count);
        sys::publish_u64(&mut self.map, H_SLOTS, desc);
        self.hdr.desc = desc;
        self.hdr.slots_off = off;
        self.hdr.slots = count;
        // From now on the old array is free space for records (after this store of the
        // descriptor: a reader who sees a record word there sees the new descriptor too).
        self.free.push((old_off, old_off + old_count * 8));
        self.hdr.live = moved;
        self.hdr.used = moved;
        self.hdr.live_bytes = live_bytes;
        self.write_counts();
        self.stats.rehashes += 1;
        self.check()
    }

    /// Writes a compacted copy of the table — every live entry, a slot array sized for them,
    /// nothing else — into `PATH.persist-compact`, makes it durable (fsync), and renames it
    /// over `PATH`; then marks the old file retired and goes on writing the new one.
    ///
    /// Readers that have the old file mapped keep a valid mapping (it is never written again
    /// nor shrunk) and move to the new file on their next lookup (they see the retired flag).
    /// A writer waiting for the old file's lock notices the rename once it has the lock and
    /// opens the path again. Killed at any instant, nothing is lost: before the rename the old
    /// file is untouched and whole (the next writer removes the scratch file); after it, the
    /// new file holds everything.
    pub fn compact(&mut self) -> Result<CompactStats, Error> {
        if self.private {
            return Err(Error::PrivateCannotGrow {
                path: self.path.clone(),
            });
        }
        self.check()?;
        let before = self.hdr;
        let ranges = self.slot_ranges();
        let (mut live, mut bytes) = (0u64, 0u64);
        for rec in self.view().iter(&ranges) {
            let rec = rec.map_err(invalid_err(&self.path))?;
            live += 1;
            bytes += rec.len;
        }
        self.check()?;
        // Room to grow: slots at load 1/2 (the writer rehashes at 4/5), and an eighth more
        // arena than the records need, but never a file longer than the one it replaces when
        // the records fit in that (a table with nothing to give back keeps its length). So a
        // slot array smaller than load 1/2 wants is kept as it is while the entries fit in it
        // (below the 4/5 at which the next put would rehash): the old file held that array
        // and every live record, so the copy needs no more than the old length.
        // (A version 2 table's records shrink by 8 bytes each.)
        let want = (live + 1).saturating_mul(2).max(MIN_SLOTS);
        let old_slots = before.slot_count();
        let slots = if want > old_slots && (live + 1).saturating_mul(5) <= old_slots * 4 {
            old_slots
        } else {
            want
        };
        if slots > MAX_SLOTS {
            return Err(Error::TooLarge {
                path: self.path.clone(),
                what: "the slot array".into(),
            });
        }
        let need = HEADER_LEN + slots * 8 + bytes;
        // The new file replaces the file the path names, links followed, in that file's
        // directory: renamed over a link, it would make the link a second table.
        let target = self.compaction_target()?;
        let tmp = scratch_beside(&target);
        let _ = std::fs::remove_file(&tmp);
        let opts = WriteOptions {
            private: false,
            wait: true,
            huge_pages: self.huge_pages,
            auto_compact: self.auto_compact,
        };
        let built = TableMut::create_with_len(&tmp, slots, opts, headroom(need, before.file_len))
            .and_then(|mut new| {
                keep_identity(&self.file, &new.file).map_err(io_err(
                    &target,
                    "keeping its owner, group and mode on the compacted copy (fchown/fchmod)",
                ))?;
                for rec in self.view().iter(&ranges) {
                    let rec = rec.map_err(invalid_err(&self.path))?;
                    new.put(rec.key, rec.value)?;
                }
                self.check()?;
                // Durable before it replaces the old file: a power loss must not leave the path
                // naming a file whose data never reached the disk.
                new.file.sync_all().map_err(io_err(&tmp, "fsync"))?;
                std::fs::rename(&tmp, &target).map_err(io_err(&target, "rename"))?;
                Ok(new)
            });
        let mut new = match built {
            Ok(new) => new,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                // The error names the table, not the scratch copy nobody asked for.
                return Err(match e {
                    Error::NoSpace { bytes, .. } => Error::NoSpace {
                        path: self.path.clone(),
                        bytes,
                        scratch: Some(tmp),
                    },
                    e => e,
                });
            }
        };
        if let Some(dir) = target.parent() {
            // The rename itself durable too (best effort: some file systems refuse).
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        // Readers of the old file: move on. Then the old writer state is dropped (unmapping
        // the old file and releasing its lock, which wakes writers waiting for it).
        self.hdr.flags |= FLAG_RETIRED;
        self.write_flags();
        new.path = self.path.clone();
        new.stats = self.stats;
        new.stats.compactions += 1;
        let after = new.hdr;
        drop(std::mem::replace(self, new));
        Ok(CompactStats {
            entries: live,
            file_bytes_before: before.file_len,
            file_bytes_after: after.file_len,
            arena_bytes_before: before.arena_end - HEADER_LEN,
            arena_bytes_after: after.arena_end - HEADER_LEN,
        })
    }

    /// The file this writer's path names, links followed: what a compaction replaces. An
    /// error if that is not the file this writer holds (a link changed since it was opened),
    /// or if the file has other hard links: the new file would take one name and leave the
    /// others on the old file, two tables from then on.
    fn compaction_target(&self) -> Result<PathBuf, Error> {
        use std::os::unix::fs::MetadataExt;
        let links = self
            .file
            .metadata()
            .map_err(io_err(&self.path, "fstat"))?
            .nlink();
        if links > 1 {
            return Err(io_err(&self.path, "compact")(io::Error::other(format!(
                "the table has {links} hard links, and a compaction would leave all but one \
                 on the old file; nothing was compacted (remove the other links first)"
            ))));
        }
        let target = resolve_links(&self.path).map_err(io_err(&self.path, "readlink"))?;
        if !still_named(&target, &self.file)? {
            return Err(io_err(&self.path, "compact")(io::Error::other(format!(
                "{} no longer names the table this writer opened (a link was changed); \
                 nothing was compacted",
                target.display()
            ))));
        }
        Ok(target)
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
            self.write_flags();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn a_long_table_names_scratch_is_shortened_the_same_way_every_time() {
        let dir = Path::new("/d");
        let name = |n: usize, c: &str| dir.join(format!("{}.tbl", c.repeat(n - 4)));
        // Up to 239 bytes: FILE.persist-compact, as documented.
        for n in [1 + 4, 239] {
            let t = name(n, "n");
            let mut want = t.clone().into_os_string();
            want.push(".persist-compact");
            assert_eq!(scratch_beside(&t), PathBuf::from(want), "{n}");
        }
        // Longer: 255 bytes, the name's start, a hash of the whole of it, the suffix.
        for n in [240, 250, 255] {
            let t = name(n, "n");
            let s = scratch_beside(&t);
            let file = s.file_name().unwrap().as_bytes();
            assert_eq!(file.len(), NAME_MAX, "{n}");
            assert!(file.starts_with(&t.file_name().unwrap().as_bytes()[..200]));
            assert!(file.ends_with(b".persist-compact"));
            assert_eq!(s.parent(), Some(dir));
            assert_eq!(s, scratch_beside(&t), "deterministic");
        }
        // Two long names that share their first 250 bytes have different scratch names.
        let (a, b) = (
            name(255, "n"),
            dir.join(format!("{}x.tbl", "n".repeat(250))),
        );
        assert_ne!(scratch_beside(&a), scratch_beside(&b));
        // Bytes that are not UTF-8 are kept as they are.
        let odd = dir.join(std::ffi::OsStr::from_bytes(&[0xe9; 250]));
        let s = scratch_beside(&odd);
        assert!(s.file_name().unwrap().as_bytes().starts_with(&[0xe9; 222]));
    }
}
