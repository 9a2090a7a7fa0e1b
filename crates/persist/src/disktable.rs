//! Steps 2 and 3 as the course defines them: `struct disktable { long count; int value[]; }` in
//! a file, read and extended through `mmap(2)` only.
//!
//! # What the course asks
//!
//! The course hands out `table.bin`: an 8-byte `long count`, then `int` values, little-endian
//! (x86-64). Its file has count 1083 and value\[i\] = i, but it is longer than the count needs
//! (114,340 bytes, room for 28,583 ints): more values follow, then zeros. Step 2: open and map
//! the file, its length from `fstat(2)`, cast the pointer and print every value "without a
//! hardcoded size or element count" — that is, trust `count`, bounded by the file's size. Step
//! 3: each run adds 300 values, value\[i\] = i, and updates count "using only mmap"; after a few
//! runs a first attempt crashes ("Can you work out why? HINT: ftruncate and mremap").
//!
//! # How this module answers
//!
//! - [`Table::open_read`] opens the file, takes its length from `fstat(2)`, checks that it can
//!   hold a count at all, maps it `PROT_READ`/`MAP_SHARED` and checks the count against the
//!   length ([`check`]): a damaged file is [`Error::Invalid`] with a [`Reason`], never an
//!   out-of-bounds read. The values are then loaded straight from the mapping; no `read(2)`
//!   touches the table (the tests count the calls under strace).
//! - [`Table::append`] maps the file `PROT_READ|PROT_WRITE`/`MAP_SHARED`, stores the values and
//!   publishes the new count last. Only when the file's capacity runs out does it grow the file
//!   (`ftruncate(2)`, to at least twice its length) and then the mapping (`mremap(2)` with
//!   `MREMAP_MAYMOVE`: the kernel may move it, and [`AppendReport`] shows where).
//! - [`naive_append`] is the first attempt, kept on purpose: it maps the file's length and
//!   stores past its end. Why that crashes, and with which signal, depends on where the store
//!   lands (see [`NaiveMode`]): in the last page of the mapping but past the end of the file it
//!   lands in memory and is never saved; in a mapped page wholly past the end of the file it
//!   raises SIGBUS; past the end of the mapping it raises SIGSEGV. The fix is what `append`
//!   does: make the file long enough first (ftruncate), then make the mapping cover it (mremap).
//! - A file cut short by another process while it is mapped raises SIGBUS on the next access
//!   to a page past its new end. The crate's one SIGBUS handler (`crate::sys::SigbusGuard`,
//!   which [`crate::Table`] uses too) maps a zero page over the hole so the access completes,
//!   and the operation reports [`Reason::ShrankWhileMapped`].
//! - Every open of an existing table goes through `crate::sys::open_regular`: a FIFO, directory,
//!   device or socket is refused before anything can block on it. `create` and `append`
//!   reserve the bytes they will store (`fallocate(2)`) before storing, so a full disk is
//!   [`Error::NoSpace`] and not a SIGBUS; what a failed command made is removed or cut back.
//!
//! Run it: `disktable create --course table.bin; disktable print table.bin; disktable append
//! table.bin`, or `cargo xtask run-step 2` / `run-step 3`, which trace it.
//!
//! # What a production system would do differently
//!
//! It would put a magic number and version in front of the count (this format cannot tell a
//! table from any other file of the right length), grow by whole pages or more at a time (as
//! `append` does) rather than by 300 ints, `msync(2)` before reporting success when the data
//! must survive a power cut, and check the count against the values with a checksum. Readers
//! that must not stop while a writer grows the file would map a fixed large window once
//! (`mmap` far more than the file, growing only the file) instead of remapping, so that
//! pointers stay valid, as LMDB does.

mod naive;
mod sys;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use naive::{naive_append, NaiveMode, NaiveOutcome, NaivePlan};
pub use sys::{page_size, Advice};

/// Bytes of the `long count` in front of the values.
pub const COUNT_BYTES: u64 = 8;
/// Bytes of one `int` value.
pub const VALUE_BYTES: u64 = 4;
/// The course's table: its count,
pub const COURSE_COUNT: u64 = 1083;
/// its length in bytes (room for 28,583 values),
pub const COURSE_FILE_BYTES: u64 = 114_340;
/// and how many values `create --course` fills with value\[i\] = i: the course's file continues
/// past the count up to value\[7999\] = 7999, then zeros. A correct reader prints `count`
/// values whatever this is.
pub const COURSE_FILL: u64 = 8000;
/// Values one `append` adds unless told otherwise (the course's 300).
pub const DEFAULT_APPEND: u64 = 300;

/// How many values a file of `file_bytes` bytes holds.
pub fn capacity(file_bytes: u64) -> u64 {
    file_bytes.saturating_sub(COUNT_BYTES) / VALUE_BYTES
}

/// The byte offset of value\[i\].
pub fn value_offset(i: u64) -> u64 {
    COUNT_BYTES + VALUE_BYTES * i
}

/// Bytes a table of `count` values needs, or `None` if that does not fit in 64 bits.
pub fn bytes_needed(count: u64) -> Option<u64> {
    count.checked_mul(VALUE_BYTES)?.checked_add(COUNT_BYTES)
}

/// Why a file is not a valid disktable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("the file is {len} bytes, shorter than the 8-byte count")]
    TooShort { len: u64 },
    #[error("the file is {len} bytes, more than this machine can map")]
    TooLargeToMap { len: u64 },
    #[error("count is {count}, negative")]
    NegativeCount { count: i64 },
    #[error("count {count} overflows: 8 + 4 x count does not fit in 64 bits")]
    Overflow { count: i64 },
    #[error(
        "count {count} needs {needs} bytes but the file has {len} (room for {capacity} values)"
    )]
    CountTooLarge {
        count: i64,
        needs: u64,
        len: u64,
        capacity: u64,
    },
    #[error("the file shrank while mapped (now {len_now} bytes{}; count {count} needs {needs})",
        match offset { Some(o) => format!(", the access at byte {o} raised SIGBUS, caught"), None => String::new() })]
    ShrankWhileMapped {
        count: i64,
        needs: u64,
        len_now: u64,
        offset: Option<usize>,
    },
}

/// Checks a count read from a file of `len` bytes: the rules a reader that "trusts count,
/// bounded by the file's size" applies. Returns the bytes the count needs. Pure, no I/O.
pub fn check(len: u64, count: i64) -> Result<u64, Reason> {
    if len < COUNT_BYTES {
        return Err(Reason::TooShort { len });
    }
    let Ok(n) = u64::try_from(count) else {
        return Err(Reason::NegativeCount { count });
    };
    let needs = bytes_needed(n).ok_or(Reason::Overflow { count })?;
    if needs > len {
        return Err(Reason::CountTooLarge {
            count,
            needs,
            len,
            capacity: capacity(len),
        });
    }
    Ok(needs)
}

/// Everything that can go wrong; each message names the file.
///
/// An underlying `io::Error` is part of the message, not a `source()`: `anyhow`'s `{:#}` would
/// otherwise print it twice ("Is a directory (os error 21): Is a directory (os error 21)").
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {}: {error}", path.display())]
    Open { path: PathBuf, error: io::Error },
    /// A FIFO, directory, device or socket: refused before anything could block on it.
    #[error(transparent)]
    NotRegular(#[from] crate::sys::NotRegular),
    /// A symbolic link to nothing.
    #[error(transparent)]
    Dangling(#[from] crate::sys::DanglingLink),
    #[error("{} is not a valid disktable: {reason}", path.display())]
    Invalid { path: PathBuf, reason: Reason },
    #[error("{} already exists; remove it or choose another name", path.display())]
    Exists { path: PathBuf },
    #[error("{}: {op} failed: {error}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        error: io::Error,
    },
    #[error("{}: cannot append {n} values: {why}", path.display())]
    TooMany { path: PathBuf, n: u64, why: String },
    #[error("{what}")]
    Shape { what: String },
    /// `fallocate(2)` (or, where it is not supported, touching the pages) found no room for
    /// the bytes a command was about to store. `what`: for what, and what was left.
    #[error("{}: no space left on device: cannot reserve {bytes} bytes for {what}", path.display())]
    NoSpace {
        path: PathBuf,
        bytes: u64,
        what: String,
    },
    /// A SIGBUS (caught) at an offset the file still covers: not a truncation, the file system
    /// could not provide the page.
    #[error(
        "{}: the access at byte {offset} raised SIGBUS (caught) though the file is {len} bytes: \
         the file system could not provide the page (it may be full or failing)",
        path.display()
    )]
    Unbacked {
        path: PathBuf,
        offset: usize,
        len: u64,
    },
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |error| Error::Io {
        path: path.to_path_buf(),
        op,
        error,
    }
}

fn open_err(path: &Path, error: io::Error) -> Error {
    if error.kind() == io::ErrorKind::AlreadyExists {
        match crate::sys::dangling_link(path) {
            Some(d) => Error::Dangling(d),
            None => Error::Exists {
                path: path.to_path_buf(),
            },
        }
    } else {
        Error::Open {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// Opens an existing table, read-only or read-write, through [`crate::sys::open_regular`]: a
/// FIFO, directory, device or socket is refused before anything can block on it.
fn open_existing(path: &Path, write: bool) -> Result<File, Error> {
    crate::sys::open_regular(path, write).map_err(|failure| match failure {
        crate::sys::OpenFailure::NotRegular(e) => Error::NotRegular(e),
        crate::sys::OpenFailure::Dangling(e) => Error::Dangling(e),
        crate::sys::OpenFailure::Os(error) => open_err(path, error),
    })
}

/// The `0x…` form used for addresses in every JSON document.
pub fn fmt_hex(addr: u64) -> String {
    format!("{addr:#x}")
}

// ---------------------------------------------------------------------------------------------
// JSON documents (the binary prints them; `cargo xtask` reads them back).
// ---------------------------------------------------------------------------------------------

/// `disktable create --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReport {
    pub count: u64,
    /// How many values the file holds.
    pub capacity: u64,
    /// value\[i\] = i for i < filled; zeros after.
    pub filled: u64,
    pub file_bytes: u64,
}

/// `disktable print --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrintReport {
    pub count: u64,
    /// How many values the file holds: (file_bytes - 8) / 4.
    pub capacity: u64,
    /// value\[0..count), read from the mapping.
    pub values: Vec<i32>,
    /// The file's length from fstat(2).
    pub file_bytes: u64,
    /// Where the file was mapped (`0x…`) and how many bytes were asked of mmap.
    pub map_address: String,
    pub map_len: u64,
    /// Pages the mapping spans.
    pub pages: u64,
    /// Pages resident in the page cache (mincore(2)) right after mmap, before any access,
    /// and after all values were read.
    pub resident_pages_before: u64,
    pub resident_pages_after: u64,
}

impl PrintReport {
    /// This document as `serde_json` pretty-prints it, cut around the values: the text up to
    /// and including `"values": [`, and from the `]` that closes them. A printer streams the
    /// values between the two (one per line, indented 4, comma-separated, as the pretty printer
    /// would) instead of collecting them: a table of 2^33 values would need 34 GB in memory.
    /// `values` must be empty; the fields after `values` (`resident_pages_after`) are measured
    /// after the values are read, so take the tail from a report filled in then.
    pub fn json_around_values(&self) -> (String, String) {
        const OPEN: &str = "\"values\": [";
        assert!(
            self.values.is_empty(),
            "json_around_values streams the values itself"
        );
        let text = serde_json::to_string_pretty(self).expect("numbers and strings encode");
        // Only a string could contain the marker, and the one string is a `0x…` address.
        let at = text.find(OPEN).expect("the document has values") + OPEN.len();
        (text[..at].to_string(), text[at..].to_string())
    }
}

/// `disktable append --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendReport {
    pub count_before: u64,
    pub count_after: u64,
    /// Whether the file had to grow (capacity ran out): ftruncate + mremap happened.
    pub grew: bool,
    /// The file's length afterwards.
    pub file_bytes: u64,
    pub file_bytes_before: u64,
    pub capacity_before: u64,
    pub capacity_after: u64,
    /// The mapping's address before and after mremap (equal when it did not grow).
    pub map_address_before: String,
    pub map_address_after: String,
    /// Whether mremap moved the mapping (MREMAP_MAYMOVE).
    pub moved: bool,
}

// ---------------------------------------------------------------------------------------------
// Creating a table.
// ---------------------------------------------------------------------------------------------

/// What `create` makes: `count`, value\[i\] = i for i < `fill`, in a file of `file_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub count: u64,
    pub fill: u64,
    pub file_bytes: u64,
}

impl Shape {
    /// The course's table: count 1083, 114,340 bytes, values past count, then zeros.
    pub const COURSE: Shape = Shape {
        count: COURSE_COUNT,
        fill: COURSE_FILL,
        file_bytes: COURSE_FILE_BYTES,
    };

    /// A shape, checked: `fill >= count`, values fit in an `int`, and the file holds them.
    /// `file_bytes` `None`: whole pages, at least one, enough for `fill` values.
    pub fn new(count: u64, fill: Option<u64>, file_bytes: Option<u64>) -> Result<Shape, String> {
        let fill = fill.unwrap_or(count);
        if fill < count {
            return Err(format!(
                "--fill {fill} is less than --count {count}: value[0..count) must be filled"
            ));
        }
        if fill > i32::MAX as u64 + 1 {
            return Err(format!(
                "{fill} values: value[i] = i does not fit in an int past {}",
                i32::MAX
            ));
        }
        let needs = bytes_needed(fill).expect("fill <= 2^31");
        let file_bytes = match file_bytes {
            Some(b) => b,
            None => {
                let page = page_size() as u64;
                needs.div_ceil(page).max(1) * page
            }
        };
        if file_bytes < needs {
            return Err(format!(
                "a file of {file_bytes} bytes cannot hold {fill} values (needs {needs})"
            ));
        }
        if i64::try_from(file_bytes).is_err() {
            return Err(format!("{file_bytes} bytes is too large for a file"));
        }
        Ok(Shape {
            count,
            fill,
            file_bytes,
        })
    }
}

/// Creates a new table of this shape (the file must not exist), written through a
/// `MAP_SHARED` mapping: `ftruncate` to the length, then stores. On failure nothing is left.
pub fn create(path: impl AsRef<Path>, shape: Shape) -> Result<CreateReport, Error> {
    let path = path.as_ref();
    let shape = Shape::new(shape.count, Some(shape.fill), Some(shape.file_bytes))
        .map_err(|what| Error::Shape { what })?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| open_err(path, e))?;
    let result = fill_new(path, &file, shape);
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn fill_new(path: &Path, file: &File, shape: Shape) -> Result<CreateReport, Error> {
    sys::flock(file, true, true).map_err(io_err(path, "flock"))?;
    sys::ftruncate(file.as_fd(), shape.file_bytes).map_err(io_err(path, "ftruncate"))?;
    let no_space = || Error::NoSpace {
        path: path.to_path_buf(),
        bytes: shape.file_bytes,
        what: "the new table; it was removed".into(),
    };
    let reserved = reserve(file, 0, shape.file_bytes).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSPC) => no_space(),
        _ => io_err(path, "fallocate")(e),
    })?;
    let len = usize::try_from(shape.file_bytes).expect("64-bit");
    let map = sys::Map::file(file.as_fd(), len, true).map_err(io_err(path, "mmap"))?;
    if !reserved {
        map.prefault(0, len);
        if map.fault().is_some() {
            return Err(no_space());
        }
    }
    for i in 0..shape.fill {
        map.store_i32(value_offset(i) as usize, i as i32);
    }
    map.store_i64(0, shape.count as i64);
    if let Some(offset) = map.fault() {
        return Err(shrank(path, file, shape.count as i64, Some(offset)));
    }
    Ok(CreateReport {
        count: shape.count,
        capacity: capacity(shape.file_bytes),
        filled: shape.fill,
        file_bytes: shape.file_bytes,
    })
}

/// Reserves `[start, end)` of the file for the stores a command is about to make through its
/// mapping, with `fallocate(2)`: a store into a page a full file system cannot provide raises
/// SIGBUS, so the space is claimed first, where running out is a plain `ENOSPC`. `Ok(false)`
/// where the file system cannot allocate ahead (`EOPNOTSUPP`): the caller then touches the
/// pages through its mapping ([`sys::Map::prefault`]) before storing anything, which finds a
/// full disk as a caught SIGBUS instead.
fn reserve(file: &File, start: u64, end: u64) -> io::Result<bool> {
    match sys::fallocate(file, start, end.saturating_sub(start)) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The error for a SIGBUS (or a length check) that says the mapping lost its file: another
/// process cut the file short, or — when the file still covers the faulting offset — the file
/// system could not provide the page.
fn shrank(path: &Path, file: &File, count: i64, offset: Option<usize>) -> Error {
    let len_now = sys::fstat(file.as_fd()).map(|s| s.len).unwrap_or(0);
    if let Some(offset) = offset.filter(|o| (*o as u64) < len_now) {
        return Error::Unbacked {
            path: path.to_path_buf(),
            offset,
            len: len_now,
        };
    }
    Error::Invalid {
        path: path.to_path_buf(),
        reason: Reason::ShrankWhileMapped {
            count,
            needs: bytes_needed(count.max(0) as u64).unwrap_or(u64::MAX),
            len_now,
            offset,
        },
    }
}

/// Drops the file's pages from the page cache, so that `mincore(2)` afterwards shows what a
/// reader reads in: `fsync(2)` first (dirty pages, e.g. of a table just created, cannot be
/// dropped; writing them back changes no byte of the file), then
/// `posix_fadvise(POSIX_FADV_DONTNEED)`. No effect on tmpfs, whose pages are the file.
pub fn evict(path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    let file = open_existing(path, false)?;
    sys::fsync(file.as_fd()).map_err(io_err(path, "fsync"))?;
    sys::fadvise_dontneed(&file).map_err(io_err(path, "posix_fadvise"))
}

// ---------------------------------------------------------------------------------------------
// An open table.
// ---------------------------------------------------------------------------------------------

/// A disktable file, open and mapped (read-only for [`Table::open_read`], read-write for
/// [`Table::open_write`]), with its count checked against its length.
pub struct Table {
    path: PathBuf,
    file: File,
    map: sys::Map,
    file_bytes: u64,
    count: u64,
    resident_at_map: usize,
}

impl Table {
    /// Opens for reading: `O_RDONLY`, a shared `flock(2)` (an `append` holds an exclusive one),
    /// length from `fstat(2)`, `mmap(2)` `PROT_READ` `MAP_SHARED` of that length, `madvise` if
    /// `advice` is not `Normal`, then the count is loaded and checked. Nothing is ever written.
    pub fn open_read(path: impl AsRef<Path>, advice: Advice) -> Result<Table, Error> {
        let path = path.as_ref();
        let file = open_existing(path, false)?;
        sys::flock(&file, false, true).map_err(io_err(path, "flock"))?;
        Table::map(path, file, false, advice)
    }

    /// Opens for appending: `O_RDWR`, an exclusive `flock(2)`, `fstat`, `mmap` `PROT_READ |
    /// PROT_WRITE` `MAP_SHARED`, count loaded and checked.
    pub fn open_write(path: impl AsRef<Path>) -> Result<Table, Error> {
        let path = path.as_ref();
        let file = open_existing(path, true)?;
        sys::flock(&file, true, true).map_err(io_err(path, "flock"))?;
        Table::map(path, file, true, Advice::Normal)
    }

    fn map(path: &Path, file: File, writable: bool, advice: Advice) -> Result<Table, Error> {
        let invalid = |reason| Error::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let st = sys::fstat(file.as_fd()).map_err(io_err(path, "fstat"))?;
        if st.len < COUNT_BYTES {
            return Err(invalid(Reason::TooShort { len: st.len }));
        }
        let len =
            usize::try_from(st.len).map_err(|_| invalid(Reason::TooLargeToMap { len: st.len }))?;
        let map = sys::Map::file(file.as_fd(), len, writable).map_err(io_err(path, "mmap"))?;
        if advice != Advice::Normal {
            map.advise(advice).map_err(io_err(path, "madvise"))?;
        }
        // Readers report residency (the evidence that print reads in only what it touches).
        let resident_at_map = if writable {
            0
        } else {
            map.resident_pages().map_err(io_err(path, "mincore"))?
        };
        let raw_count = map.load_i64(0);
        if let Some(offset) = map.fault() {
            return Err(shrank(path, &file, raw_count, Some(offset)));
        }
        check(st.len, raw_count).map_err(invalid)?;
        Ok(Table {
            path: path.to_path_buf(),
            file,
            map,
            file_bytes: st.len,
            count: raw_count as u64,
            resident_at_map,
        })
    }

    /// The count, as checked when the table was opened (or after the last append).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The file's length from `fstat` when opened (or after growing).
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// How many values the file holds.
    pub fn capacity(&self) -> u64 {
        capacity(self.file_bytes)
    }

    /// The mapping's address and the length asked of mmap/mremap.
    pub fn map_address(&self) -> u64 {
        self.map.addr() as u64
    }

    pub fn map_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Pages of the mapping resident in the page cache (`mincore(2)`), now, and right after
    /// mmap before the count was read (measured by readers only; 0 for a writer).
    pub fn resident_pages(&self) -> Result<u64, Error> {
        self.map
            .resident_pages()
            .map(|n| n as u64)
            .map_err(io_err(&self.path, "mincore"))
    }

    pub fn resident_pages_at_map(&self) -> u64 {
        self.resident_at_map as u64
    }

    /// Errors if the file was cut short under the mapping: a SIGBUS was caught, or the file
    /// is now shorter than the count needs (loads from the last page past the new end read
    /// zeros without any fault, so the length is checked too).
    fn check_intact(&self) -> Result<(), Error> {
        let needs = bytes_needed(self.count).expect("checked at open");
        let fault = self.map.fault();
        let len_now = sys::fstat(self.file.as_fd())
            .map_err(io_err(&self.path, "fstat"))?
            .len;
        if fault.is_some() || len_now < needs {
            return Err(shrank(&self.path, &self.file, self.count as i64, fault));
        }
        Ok(())
    }

    /// Calls `f` with value\[0..count) in order, in chunks loaded from the mapping; before each
    /// chunk is handed over, checks that no SIGBUS hit the mapping, and at the end that the
    /// file still holds `count` values. A truncation stops it with [`Reason::ShrankWhileMapped`].
    pub fn for_each_chunk<E: From<Error>>(
        &self,
        mut f: impl FnMut(&[i32]) -> Result<(), E>,
    ) -> Result<(), E> {
        const CHUNK: u64 = 4096;
        let mut buf = Vec::with_capacity(CHUNK.min(self.count) as usize);
        let mut i = 0;
        while i < self.count {
            let end = (i + CHUNK).min(self.count);
            buf.clear();
            buf.extend((i..end).map(|j| self.map.load_i32(value_offset(j) as usize)));
            if let Some(offset) = self.map.fault() {
                return Err(shrank(&self.path, &self.file, self.count as i64, Some(offset)).into());
            }
            f(&buf)?;
            i = end;
        }
        self.check_intact()?;
        Ok(())
    }

    /// value\[0..count) collected, checked as in [`Table::for_each_chunk`]. Only for tables
    /// known to be small: `disktable print` streams through `for_each_chunk` instead.
    pub fn values(&self) -> Result<Vec<i32>, Error> {
        let mut all = Vec::new();
        self.for_each_chunk(|chunk| {
            all.extend_from_slice(chunk);
            Ok::<(), Error>(())
        })?;
        Ok(all)
    }

    /// The part of [`Table::append`] that can fail half-way: grows the file to `new_len` if
    /// that is longer, reserves the bytes the values will take (and the grown part), maps
    /// them, stores value\[before..after). The count is not touched. When twice the length
    /// does not fit on the disk but what the values need does, it grows by that much only.
    fn grow_and_store(&mut self, before: u64, after: u64, new_len: u64) -> Result<(), Error> {
        let old_len = self.file_bytes;
        let needs = bytes_needed(after).expect("after <= 2^31");
        let grow_to = |table: &mut Table, len: u64| -> Result<(), Error> {
            sys::ftruncate(table.file.as_fd(), len).map_err(io_err(&table.path, "ftruncate"))?;
            table.file_bytes = len;
            Ok(())
        };
        // The values' bytes and, when growing, the whole new capacity: a reader may trust it.
        let start = value_offset(before);
        let mut end = needs;
        if new_len > old_len {
            grow_to(self, new_len)?;
            end = new_len;
        }
        let mut reserved = reserve(&self.file, start, end);
        let page = page_size() as u64;
        let least = needs.div_ceil(page) * page;
        let no_space = |e: &io::Error| e.raw_os_error() == Some(libc::ENOSPC);
        if reserved.as_ref().is_err_and(no_space) && new_len > old_len && least < new_len {
            grow_to(self, least)?;
            end = least;
            reserved = reserve(&self.file, start, end);
        }
        let path = &self.path;
        let no_space_err = || Error::NoSpace {
            path: path.clone(),
            bytes: end - start,
            what: format!(
                "{} more values; the table is unchanged (count {before})",
                after - before
            ),
        };
        let reserved = reserved.map_err(|e| {
            if no_space(&e) {
                no_space_err()
            } else {
                io_err(path, "fallocate")(e)
            }
        })?;
        if self.file_bytes > old_len {
            let len = usize::try_from(self.file_bytes).expect("64-bit");
            self.map.remap(len).map_err(io_err(path, "mremap"))?;
        }
        if !reserved {
            self.map.prefault(start as usize, end as usize);
            if self.map.fault().is_some() {
                return Err(no_space_err());
            }
        }
        for i in before..after {
            self.map.store_i32(value_offset(i) as usize, i as i32);
        }
        if let Some(offset) = self.map.fault() {
            return Err(shrank(path, &self.file, before as i64, Some(offset)));
        }
        Ok(())
    }

    /// After a failed [`Table::grow_and_store`]: gives back what it grew (the file to
    /// `old_len` again, if it is still the length we made it; the mapping too), so that the
    /// table is as it was — the count was never changed.
    fn roll_back(&mut self, old_len: u64) {
        if self.file_bytes <= old_len {
            return;
        }
        if sys::fstat(self.file.as_fd()).is_ok_and(|st| st.len == self.file_bytes) {
            let _ = sys::ftruncate(self.file.as_fd(), old_len);
        }
        if self.map.len() as u64 > old_len {
            let _ = self.map.remap(old_len as usize);
        }
        self.file_bytes = old_len;
    }

    /// Appends value\[i\] = i for i in count..count+n through the mapping, and then publishes
    /// count+n (one release store, so a crash in between leaves the old count, a valid table).
    /// Grows only when the capacity runs out: `ftruncate` to max(what is needed, twice the
    /// length), rounded up to whole pages, then `mremap(MREMAP_MAYMOVE)`. Before any store the
    /// bytes the values take (and, when growing, the whole new capacity) are reserved with
    /// `fallocate(2)`; when twice the length does not fit, the file grows only by what the
    /// values need. A full disk is [`Error::NoSpace`], and the file is cut back to its old
    /// length, so a failed append leaves the table as it was.
    pub fn append(&mut self, n: u64) -> Result<AppendReport, Error> {
        let too_many = |why: String| Error::TooMany {
            path: self.path.clone(),
            n,
            why,
        };
        let before = self.count;
        let after = before
            .checked_add(n)
            .filter(|a| *a <= i32::MAX as u64 + 1)
            .ok_or_else(|| {
                too_many(format!(
                    "value[i] = i does not fit in an int past {}",
                    i32::MAX
                ))
            })?;
        let file_bytes_before = self.file_bytes;
        let address_before = self.map.addr() as u64;
        let grew = after > capacity(self.file_bytes);
        let new_len = if grew {
            let needs = bytes_needed(after).expect("after <= 2^31");
            let page = page_size() as u64;
            needs.max(self.file_bytes.saturating_mul(2)).div_ceil(page) * page
        } else {
            self.file_bytes
        };
        if let Err(e) = self.grow_and_store(before, after, new_len) {
            self.roll_back(file_bytes_before);
            return Err(e);
        }
        self.map.store_i64(0, after as i64);
        self.count = after;
        self.check_intact()?;
        let address_after = self.map.addr() as u64;
        Ok(AppendReport {
            count_before: before,
            count_after: after,
            grew,
            file_bytes: self.file_bytes,
            file_bytes_before,
            capacity_before: capacity(file_bytes_before),
            capacity_after: capacity(self.file_bytes),
            map_address_before: fmt_hex(address_before),
            map_address_after: fmt_hex(address_after),
            moved: address_after != address_before,
        })
    }
}

/// Opens the table for writing and appends `n` values (see [`Table::append`]).
pub fn append(path: impl AsRef<Path>, n: u64) -> Result<AppendReport, Error> {
    Table::open_write(path)?.append(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("disktable-unit-")
            .tempdir()
            .unwrap()
    }

    /// Writes raw bytes (the test's own file, with std's write: not the code under test).
    fn raw(dir: &tempfile::TempDir, name: &str, count: i64, len: usize) -> PathBuf {
        let mut bytes = vec![0u8; len];
        let head = count.to_le_bytes();
        let n = len.min(8);
        bytes[..n].copy_from_slice(&head[..n]);
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn check_applies_every_rule_in_order() {
        assert_eq!(check(7, 0), Err(Reason::TooShort { len: 7 }));
        assert_eq!(check(8, 0), Ok(8));
        assert_eq!(check(8, -1), Err(Reason::NegativeCount { count: -1 }));
        assert_eq!(
            check(u64::MAX, 1 << 62),
            Err(Reason::Overflow { count: 1 << 62 })
        );
        assert_eq!(
            check(u64::MAX, i64::MAX),
            Err(Reason::Overflow { count: i64::MAX })
        );
        // (2^62 - 3) * 4 + 8 = 2^64 - 4: fits, but no file is that long.
        assert!(matches!(
            check(COURSE_FILE_BYTES, (1 << 62) - 3),
            Err(Reason::CountTooLarge { .. })
        ));
        assert_eq!(check(COURSE_FILE_BYTES, 28_583), Ok(COURSE_FILE_BYTES));
        assert_eq!(
            check(COURSE_FILE_BYTES, 28_584),
            Err(Reason::CountTooLarge {
                count: 28_584,
                needs: 114_344,
                len: COURSE_FILE_BYTES,
                capacity: 28_583
            })
        );
    }

    #[test]
    fn the_course_shape_has_its_numbers() {
        assert_eq!(capacity(COURSE_FILE_BYTES), 28_583);
        assert_eq!(value_offset(1083), 4340);
        let s = Shape::new(0, None, None).unwrap();
        assert_eq!(s.file_bytes, page_size() as u64);
        assert!(Shape::new(10, Some(5), None).is_err());
        assert!(Shape::new(10, None, Some(40)).is_err());
        assert_eq!(Shape::new(10, None, Some(48)).unwrap().file_bytes, 48);
    }

    #[test]
    fn create_print_append_round_trip() {
        let d = dir();
        let p = d.path().join("t.bin");
        let c = create(&p, Shape::COURSE).unwrap();
        assert_eq!(c.capacity, 28_583);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), COURSE_FILE_BYTES);
        let t = Table::open_read(&p, Advice::Normal).unwrap();
        assert_eq!(t.count(), 1083);
        let v = t.values().unwrap();
        assert_eq!(v, (0..1083).collect::<Vec<i32>>());
        drop(t);
        // The bytes, read with std (not mmap): the C layout.
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(i64::from_le_bytes(bytes[..8].try_into().unwrap()), 1083);
        let at = |i: usize| i32::from_le_bytes(bytes[8 + 4 * i..12 + 4 * i].try_into().unwrap());
        assert_eq!(at(7999), 7999);
        assert_eq!(at(8000), 0);
        assert_eq!(at(28_582), 0);

        let r = append(&p, 300).unwrap();
        assert_eq!((r.count_before, r.count_after, r.grew), (1083, 1383, false));
        assert_eq!(r.file_bytes, COURSE_FILE_BYTES);
        // Fill to the last value the file holds: still no growth.
        let r = append(&p, 28_583 - 1383).unwrap();
        assert!(!r.grew);
        assert_eq!(r.count_after, 28_583);
        // One more: the capacity ran out.
        let r = append(&p, 1).unwrap();
        assert!(r.grew);
        assert_eq!(r.file_bytes, 2 * 114_688);
        assert_eq!(r.capacity_after, (2 * 114_688 - 8) / 4);
        let t = Table::open_read(&p, Advice::Normal).unwrap();
        assert_eq!(t.values().unwrap(), (0..28_584).collect::<Vec<i32>>());
    }

    #[test]
    fn create_refuses_an_existing_file_and_keeps_it() {
        let d = dir();
        let p = raw(&d, "t.bin", 5, 100);
        assert!(matches!(
            create(&p, Shape::COURSE),
            Err(Error::Exists { .. })
        ));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 100);
    }

    #[test]
    fn damaged_tables_are_invalid_with_their_reason() {
        let d = dir();
        let cases = [
            (raw(&d, "short", 0, 5), "shorter than the 8-byte count"),
            (raw(&d, "empty", 0, 0), "the file is 0 bytes"),
            (raw(&d, "neg", -3, 64), "count is -3, negative"),
            (raw(&d, "big", 100, 64), "count 100 needs 408 bytes"),
            (raw(&d, "ovf", 1 << 62, 64), "overflows"),
        ];
        for (p, needle) in cases {
            for r in [
                Table::open_read(&p, Advice::Normal).err(),
                Table::open_write(&p).err(),
            ] {
                let e = r.expect("invalid").to_string();
                assert!(e.contains("is not a valid disktable: "), "{e}");
                assert!(e.contains(needle), "{e} lacks {needle}");
            }
        }
        let e = Table::open_read(d.path(), Advice::Normal).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!("{} is a directory, not a table file", d.path().display())
        );
    }

    #[test]
    fn a_table_truncated_while_mapped_is_an_error_not_a_sigbus() {
        let d = dir();
        let p = d.path().join("t.bin");
        create(&p, Shape::new(5000, None, Some(6 * 4096)).unwrap()).unwrap();
        let t = Table::open_read(&p, Advice::Normal).unwrap();
        // Another handle (as another process would) cuts the file to one page.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let e = t.values().unwrap_err().to_string();
        assert!(e.contains("shrank while mapped (now 4096 bytes"), "{e}");
        assert!(e.contains("raised SIGBUS, caught"), "{e}");
        // The second page is the first wholly past the new end.
        assert!(e.contains("byte 4096 "), "{e}");
    }

    /// The crate has one SIGBUS handler: a disktable mapping and a persist table mapping in the
    /// same process both turn a truncation into an error (two handlers would replace each
    /// other's sigaction, and one of them would die of SIGBUS).
    #[test]
    fn a_disktable_and_a_persist_table_in_one_process_share_the_sigbus_guard() {
        let d = dir();
        let dt = d.path().join("t.bin");
        create(&dt, Shape::new(5000, None, Some(6 * 4096)).unwrap()).unwrap();
        let pt = d.path().join("t.tbl");
        let mut w = crate::TableMut::create(&pt, 10).unwrap();
        let keys: Vec<Vec<u8>> = (0..2000).map(|i| format!("key{i}").into_bytes()).collect();
        for k in &keys {
            w.put(k, &[7u8; 100]).unwrap();
        }
        w.close().unwrap();
        let disk = Table::open_read(&dt, Advice::Normal).unwrap();
        let table = crate::Table::open(&pt).unwrap();
        for p in [&dt, &pt] {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(4096)
                .unwrap();
        }
        let e = disk.values().unwrap_err().to_string();
        assert!(e.contains("raised SIGBUS, caught"), "{e}");
        let e = keys
            .iter()
            .find_map(|k| table.get(k).err())
            .expect("a key past the cut")
            .to_string();
        assert!(e.contains("truncated it to 4096 bytes"), "{e}");
    }

    #[test]
    fn a_shrink_inside_the_last_page_is_caught_by_the_length_check() {
        let d = dir();
        let p = d.path().join("t.bin");
        create(&p, Shape::new(1000, None, Some(4096)).unwrap()).unwrap();
        let t = Table::open_read(&p, Advice::Normal).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(100)
            .unwrap();
        // Loads past the new end but in the same page read zeros without a fault.
        let e = t.values().unwrap_err().to_string();
        assert!(
            e.contains("shrank while mapped (now 100 bytes; count 1000 needs 4008)"),
            "{e}"
        );
    }

    /// The fallback where fallocate(2) is not supported: touching each page changes no byte,
    /// and a page that cannot be had raises SIGBUS, caught, at that page.
    #[test]
    fn prefault_changes_no_byte_and_finds_the_first_page_that_cannot_be_had() {
        let d = dir();
        let p = d.path().join("t.bin");
        create(&p, Shape::new(5000, None, Some(6 * 4096)).unwrap()).unwrap();
        let before = std::fs::read(&p).unwrap();
        let t = Table::open_write(&p).unwrap();
        t.map.prefault(0, 6 * 4096);
        assert_eq!(t.map.fault(), None);
        drop(t);
        assert_eq!(std::fs::read(&p).unwrap(), before);

        let t = Table::open_write(&p).unwrap();
        let cut = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        cut.set_len(4096 + 100).unwrap();
        t.map.prefault(8, 6 * 4096);
        assert_eq!(
            t.map.fault(),
            Some(8192),
            "the first page wholly past the end"
        );
        // A fault inside what the file still covers is not blamed on a truncation.
        let e = shrank(&p, &t.file, 5000, Some(4096)).to_string();
        assert!(
            e.contains("raised SIGBUS (caught) though the file is 4196 bytes"),
            "{e}"
        );
        assert!(
            e.contains("the file system could not provide the page"),
            "{e}"
        );
        let e = shrank(&p, &t.file, 5000, Some(8192)).to_string();
        assert!(e.contains("shrank while mapped (now 4196 bytes"), "{e}");
    }

    #[test]
    fn an_append_that_would_overflow_int_is_refused_without_change() {
        let d = dir();
        let p = d.path().join("t.bin");
        create(&p, Shape::new(10, None, None).unwrap()).unwrap();
        let e = append(&p, u64::MAX).unwrap_err().to_string();
        assert!(e.contains("does not fit in an int"), "{e}");
        assert_eq!(Table::open_read(&p, Advice::Normal).unwrap().count(), 10);
    }
}
