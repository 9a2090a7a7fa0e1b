//! Every raw libc call of the crate, each wrapped safely, citing its man page.
//!
//! The rest of the crate calls these wrappers and never `libc` directly. The SIGBUS guard is the
//! delicate part: see [`SigbusGuard`].

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

// ---------------------------------------------------------------------------------------------
// Opening a table file: refuse what is not one before anything can block on it.
// ---------------------------------------------------------------------------------------------

/// A table path that names something other than a regular file; both programs' error types
/// carry it as it is, so the message is the same everywhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is {kind}, not a table file", path.display())]
pub struct NotRegular {
    pub path: PathBuf,
    pub kind: lab_cli::file::FileKind,
}

/// A table path that is a symbolic link to nothing. Every command, `create` included, says so
/// (`create` would otherwise say the name exists and every other command that it does not).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is a symbolic link to {}, which does not exist; create the table there (or remove the \
     link)",
    path.display(),
    target.display()
)]
pub struct DanglingLink {
    pub path: PathBuf,
    /// Where the link points, joined to the link's directory when relative.
    pub target: PathBuf,
}

/// `Some` when `path` is a symbolic link whose target does not exist.
pub fn dangling_link(path: &Path) -> Option<DanglingLink> {
    Some(DanglingLink {
        target: lab_cli::file::dangling_target(path)?,
        path: path.to_path_buf(),
    })
}

/// Opens an existing table file, read-only or read-write (`write`), refusing what is not a
/// regular file before it can block ([`lab_cli::file::open_regular`]): the refusals carry the
/// path, worded for a table.
pub fn open_regular(path: &Path, write: bool) -> Result<File, OpenFailure> {
    use lab_cli::file::OpenFailure as Failure;
    lab_cli::file::open_regular(path, write).map_err(|failure| match failure {
        Failure::NotRegular(kind) => OpenFailure::NotRegular(NotRegular {
            path: path.to_path_buf(),
            kind,
        }),
        Failure::Dangling(target) => OpenFailure::Dangling(DanglingLink {
            path: path.to_path_buf(),
            target,
        }),
        Failure::Os(error) => OpenFailure::Os(error),
    })
}

/// Why [`open_regular`] failed.
#[derive(Debug)]
pub enum OpenFailure {
    /// The path names a FIFO, directory, device or socket.
    NotRegular(NotRegular),
    /// The path is a symbolic link to nothing.
    Dangling(DanglingLink),
    /// `open(2)` failed for any other reason (the caller names the path).
    Os(io::Error),
}

/// `flock(2)`: takes an exclusive (`exclusive`) or shared lock on the whole file. With `wait`
/// false, returns `Ok(false)` instead of blocking when another process holds a conflicting lock.
pub fn flock(file: &impl AsRawFd, exclusive: bool, wait: bool) -> io::Result<bool> {
    let mut op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    if !wait {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: flock takes a descriptor and flags; the descriptor is open (borrowed from a
        // live File) and no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !wait => return Ok(false),
            _ => return Err(err),
        }
    }
}

/// `flock(2)` with `LOCK_UN`: releases this descriptor's lock.
pub fn unlock(file: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: flock takes a descriptor and flags; the descriptor is open (borrowed from a live
    // File) and no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `posix_fadvise(2)` with `POSIX_FADV_DONTNEED`: asks the kernel to drop the file's clean
/// pages from the page cache (call `fsync` first: dirty pages are not dropped).
pub fn fadvise_dontneed(file: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: plain integer arguments on an open descriptor; no memory is passed.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// `fallocate(2)` with mode 0: allocates the blocks of `[offset, offset + len)` so that later
/// stores through a shared mapping cannot fail for lack of space (a store into an unallocated
/// page of a full file system raises SIGBUS instead). Extends the file if the range ends past
/// it. Errors as the man page lists them: `ENOSPC`, and `EOPNOTSUPP` where the file system
/// cannot allocate ahead (the caller then goes without a reservation).
///
/// This calls `fallocate(2)` directly rather than `posix_fallocate(3)`, whose glibc fallback
/// for such file systems writes zeros with `pwrite(2)`: the table is never written with write
/// calls.
pub fn fallocate(file: &impl AsRawFd, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    loop {
        // SAFETY: integer arguments on an open descriptor (borrowed from a live File); no memory
        // is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, off, n) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// The parts of `[start, end)` of the file that hold data, per `lseek(2)` `SEEK_DATA` /
/// `SEEK_HOLE`. A hole reads as zeros, so a scan for non-zero words may skip it: this keeps
/// the work of scanning a huge, sparse slot array proportional to what the file really holds.
/// Where the file system cannot tell (`EINVAL`), the whole range is returned.
pub fn data_ranges(file: &impl AsRawFd, start: u64, end: u64) -> Vec<(u64, u64)> {
    let fd = file.as_raw_fd();
    let seek = |off: u64, whence: libc::c_int| -> Option<u64> {
        let off = libc::off_t::try_from(off).ok()?;
        // SAFETY: lseek takes integers on an open descriptor and passes no memory. It moves the
        // descriptor's offset, which this crate never uses (it never reads or writes the file).
        let r = unsafe { libc::lseek(fd, off, whence) };
        u64::try_from(r).ok()
    };
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let Some(data) = seek(at, libc::SEEK_DATA) else {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENXIO) {
                break; // no data past `at`: the rest is a hole
            }
            return vec![(start, end)]; // cannot tell: scan everything
        };
        if data >= end {
            break;
        }
        let hole = seek(data, libc::SEEK_HOLE).unwrap_or(end).min(end);
        if hole <= data {
            return vec![(start, end)];
        }
        out.push((data.max(start), hole));
        at = hole;
    }
    out
}

/// The system page size, `sysconf(3)` `_SC_PAGESIZE`, cached after the first call: the SIGBUS
/// handler needs it, and sysconf is not async-signal-safe (the handler's installer calls this
/// first, so the handler only ever loads the cached value).
pub fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf has no memory arguments and no preconditions.
            let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let n = if n > 0 { n as usize } else { 4096 };
            PAGE.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

/// `mincore(2)`: how many pages of the mapped range `[start, start + len)` are resident in the
/// page cache. `start` must be the start of a live mapping of at least `len` bytes (mincore
/// reads no memory of the range, only the page tables and page cache).
pub fn resident_pages(start: *const u8, len: usize) -> io::Result<usize> {
    if len == 0 {
        return Ok(0);
    }
    let page = page_size();
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: the caller passes a live mapping that starts at a page boundary (every mapping
    // does); `vec` has one byte per page of the range, as mincore(2) requires. mincore only
    // writes into `vec`.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, len, vec.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(vec.iter().filter(|b| **b & 1 != 0).count())
}

/// Page faults of this process so far, from `getrusage(2)` `RUSAGE_SELF`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Served without I/O (page already in the page cache, or a fresh zero page).
    pub minor: u64,
    /// Needed I/O to read the page in.
    pub major: u64,
}

/// `getrusage(2)` for this process: minor and major fault counts.
pub fn faults() -> Faults {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` points to writable memory of the right size for one rusage; getrusage fills
    // it and cannot fail for RUSAGE_SELF with a valid pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return Faults::default();
    }
    // SAFETY: getrusage returned 0, so it initialised `ru` (and zeroed() already made every
    // byte a valid integer).
    let ru = unsafe { ru.assume_init() };
    Faults {
        minor: ru.ru_minflt as u64,
        major: ru.ru_majflt as u64,
    }
}

/// Hints the CPU to bring the cache line at `p` into the cache (`prefetcht0` on x86-64; a
/// no-op elsewhere). Never faults, whatever `p` is: a prefetch is a hint, not an access.
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch instructions never fault and have no architectural effect; any address
    // is allowed (an invalid one is simply ignored). SSE is part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A read-only shared mapping that other processes write, seen as table bytes
/// ([`crate::format::Mem`]): words through acquire atomic loads, never a reference; byte
/// slices only of published records, which nothing writes again.
#[derive(Clone, Copy)]
pub struct SharedMem<'a> {
    ptr: *const u8,
    len: u64,
    _life: std::marker::PhantomData<&'a memmap2::MmapRaw>,
}

impl<'a> SharedMem<'a> {
    /// Views the whole of `map`.
    pub fn new(map: &'a memmap2::MmapRaw) -> SharedMem<'a> {
        SharedMem {
            ptr: map.as_ptr(),
            len: map.len() as u64,
            _life: std::marker::PhantomData,
        }
    }

    /// The address of byte `at` (for prefetching only; never dereferenced).
    pub fn addr(&self, at: u64) -> *const u8 {
        self.ptr.wrapping_add(at as usize)
    }
}

impl<'a> crate::format::Mem<'a> for SharedMem<'a> {
    fn len(&self) -> u64 {
        self.len
    }

    #[inline]
    fn word(&self, at: u64) -> u64 {
        if at % 8 != 0 || at.checked_add(8).map_or(true, |end| end > self.len) {
            return 0;
        }
        // SAFETY: `at + 8 <= len`, so the word lies inside the mapping, which `'a` keeps
        // mapped; the mapping is page-aligned and `at` a multiple of 8, so the pointer is
        // aligned for u64. Other processes store to these words only with atomic 8-byte
        // stores, and this process never holds a reference to them: an atomic load is the
        // only access.
        let cell = unsafe { AtomicU64::from_ptr(self.ptr.add(at as usize) as *mut u64) };
        u64::from_le(cell.load(Ordering::Acquire))
    }

    #[inline]
    fn prefetch(&self, at: u64) {
        prefetch(self.addr(at));
    }

    #[inline]
    fn bytes(&self, at: u64, len: u64) -> Option<&'a [u8]> {
        let end = at.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `[at, at + len)` lies inside the mapping, which `'a` keeps mapped. The
        // format's protocol: callers take byte ranges only of records reached through a
        // published slot, bounds-checked against an arena end loaded after the slot and kept
        // clear of the current slot array; a published record is never written again (writers
        // only append past the arena end; compaction writes a new file). So nothing writes
        // these bytes while the slice lives. A truncation by a foreign process raises SIGBUS,
        // which the guard turns into zero pages and an error.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.add(at as usize), len as usize) })
    }
}

/// Publishes `value` at byte `offset` of a writable mapping with one 8-byte release store, so
/// every earlier write to the mapping is ordered before it (the crash-safety commit point).
///
/// Panics if `offset` is not 8-aligned or out of bounds (callers compute it from a validated
/// header; a panic here is a bug, not bad input).
pub fn publish_u64(map: &mut [u8], offset: usize, value: u64) {
    assert!(
        offset % 8 == 0 && offset + 8 <= map.len(),
        "publish out of bounds"
    );
    let p = map.as_mut_ptr().wrapping_add(offset);
    assert!(p as usize % 8 == 0, "mapping is not 8-aligned");
    // SAFETY: `p` is in bounds of `map` (checked above), 8-aligned (checked above: mappings
    // are page-aligned and `offset` is a multiple of 8), and we hold `&mut` to the whole
    // mapping, so no other reference in this process aliases it during the store.
    let cell = unsafe { AtomicU64::from_ptr(p.cast::<u64>()) };
    cell.store(value, Ordering::Release);
}

/// Stores `bytes` (a multiple of 8 long) at `offset` of `map` as 8-byte release stores, for
/// space that readers may still be loading words from (see `publish_u64`).
pub fn publish_words(map: &mut [u8], offset: usize, bytes: &[u8]) {
    assert!(bytes.len() % 8 == 0, "publish_words of a partial word");
    for (i, w) in bytes.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        publish_u64(map, offset + i * 8, u64::from_le_bytes(word));
    }
}

// ---------------------------------------------------------------------------------------------
// SIGBUS: a mapped file truncated by another process.
// ---------------------------------------------------------------------------------------------
//
// The one SIGBUS handler of the process, serving the table's mappings and the disktable's
// (`disktable::sys::Map`) alike: a second handler would replace this one's sigaction.
//
// Why a zero page and not sigsetjmp/siglongjmp: jumping out of a signal handler across Rust
// frames skips their destructors and is undefined behaviour in Rust. Instead the handler makes
// the faulting access *succeed*: it maps an anonymous zero page over the faulting page with
// MAP_FIXED (that page's file bytes no longer exist, so nothing is lost) and returns; the load
// re-executes and reads 0, or the store lands in the private page and is discarded. It records
// the first fault address in the mapping's slot, and the operation checks the slot before
// trusting what it read and reports a clear error. The handler does only async-signal-safe
// work: atomic loads and stores, mmap(2) and sigaction(2).

const GUARD_SLOTS: usize = 256;

struct GuardSlot {
    start: AtomicUsize,
    len: AtomicUsize,
    /// The first faulting address inside the range, 0 for none (a registered range never
    /// starts at address 0, so a fault inside it is never at 0).
    fault_addr: AtomicUsize,
    in_use: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // used only as the array initialiser below
const EMPTY_SLOT: GuardSlot = GuardSlot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    fault_addr: AtomicUsize::new(0),
    in_use: AtomicBool::new(false),
};

static GUARDS: [GuardSlot; GUARD_SLOTS] = [EMPTY_SLOT; GUARD_SLOTS];
static INSTALL: Once = Once::new();
static INSTALLED_OK: AtomicBool = AtomicBool::new(false);
/// The action that was installed before ours (Rust's runtime installs one for stack overflows),
/// as raw bytes, restored for faults that are not ours.
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

/// Registers a mapped range with the SIGBUS handler. A bus error inside the range (the file was
/// truncated under the mapping) no longer kills the process: the handler maps an anonymous zero
/// page over the faulting page, so the access completes and reads zeros, and records the
/// faulting address, which [`SigbusGuard::faulted`] and [`SigbusGuard::fault_addr`] report.
/// The operation then turns it into a clear error.
///
/// A fault outside every registered range restores the previous action and returns, so the
/// access faults again and gets the default behaviour (a core dump), as it would without us.
///
/// Drop the guard before unmapping the range: a registered range that is no longer ours would
/// have its faults patched over.
pub struct SigbusGuard {
    slot: Option<usize>,
}

impl SigbusGuard {
    /// Installs the handler (once per process) and registers `[start, start+len)`.
    /// If all guard slots are busy, or the handler cannot be installed, the guard is inert and a
    /// truncation kills the process with SIGBUS as it would without it.
    pub fn register(start: *const u8, len: usize) -> SigbusGuard {
        INSTALL.call_once(install_handler);
        if !INSTALLED_OK.load(Ordering::Acquire) {
            return SigbusGuard { slot: None };
        }
        for (i, g) in GUARDS.iter().enumerate() {
            if g.in_use
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                g.fault_addr.store(0, Ordering::Relaxed);
                g.len.store(len, Ordering::Relaxed);
                g.start.store(start as usize, Ordering::Release);
                return SigbusGuard { slot: Some(i) };
            }
        }
        SigbusGuard { slot: None }
    }

    /// Moves the registered range (after a remap).
    pub fn update(&self, start: *const u8, len: usize) {
        if let Some(i) = self.slot {
            GUARDS[i].start.store(0, Ordering::Release);
            GUARDS[i].len.store(len, Ordering::Relaxed);
            GUARDS[i].start.store(start as usize, Ordering::Release);
        }
    }

    /// Whether a bus error hit the registered range since registration.
    #[inline]
    pub fn faulted(&self) -> bool {
        self.fault_addr().is_some()
    }

    /// The address of the first bus error in the registered range since registration, if any.
    #[inline]
    pub fn fault_addr(&self) -> Option<usize> {
        let addr = GUARDS[self.slot?].fault_addr.load(Ordering::Acquire);
        (addr != 0).then_some(addr)
    }
}

impl Drop for SigbusGuard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            GUARDS[i].start.store(0, Ordering::Release);
            GUARDS[i].len.store(0, Ordering::Relaxed);
            GUARDS[i].in_use.store(false, Ordering::Release);
        }
    }
}

/// `sigaction(2)`: installs [`on_sigbus`] with `SA_SIGINFO`, saving the previous action.
fn install_handler() {
    page_size(); // cache it now: the handler cannot call sysconf
                 // SAFETY: a zeroed sigaction is a valid "no handler, no flags, empty mask" value.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_sigbus as *const () as usize;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `sa.sa_mask` is a valid sigset_t owned by us.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: PREVIOUS is written only here, inside Once::call_once, before the handler that
    // reads it is installed; `addr_of_mut!` avoids creating a reference to the static mut.
    let prev = unsafe { (*std::ptr::addr_of_mut!(PREVIOUS)).as_mut_ptr() };
    // SAFETY: `sa` is a fully initialised sigaction whose handler has the SA_SIGINFO
    // signature; `prev` points to writable storage for the old action.
    let rc = unsafe { libc::sigaction(libc::SIGBUS, &sa, prev) };
    INSTALLED_OK.store(rc == 0, Ordering::Release);
}

/// The SIGBUS handler. Only async-signal-safe work: atomics, `mmap(2)`, `sigaction(2)` (the
/// page size was cached by [`install_handler`], so [`page_size`] only loads an atomic here).
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for a handler installed with SA_SIGINFO;
    // si_addr is the faulting address for SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = page_size();
    for g in GUARDS.iter() {
        let start = g.start.load(Ordering::Acquire);
        let len = g.len.load(Ordering::Relaxed);
        if start != 0 && addr >= start && addr < start.saturating_add(len) {
            let page_addr = addr & !(page - 1);
            // SAFETY: `page_addr` lies inside a mapping that a live SigbusGuard registered (it
            // is unregistered before the mapping is unmapped), so MAP_FIXED replaces only one
            // page of that mapping, whose file bytes are gone anyway. The new page is private
            // and zero.
            let p = unsafe {
                libc::mmap(
                    page_addr as *mut libc::c_void,
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                let _ = g
                    .fault_addr
                    .compare_exchange(0, addr, Ordering::AcqRel, Ordering::Relaxed);
                return;
            }
            break;
        }
    }
    // Not ours (or we could not patch it): restore the previous action and return; the access
    // faults again and gets the behaviour it would have had without us.
    // SAFETY: PREVIOUS was fully written by sigaction before this handler was installed and is
    // never written again; sigaction is async-signal-safe.
    unsafe {
        let prev = (*std::ptr::addr_of!(PREVIOUS)).as_ptr();
        libc::sigaction(libc::SIGBUS, prev, std::ptr::null_mut());
    }
}

// ---------------------------------------------------------------------------------------------
// Mappings (memmap2 wraps mmap(2); its constructors are unsafe for the reason below).
// ---------------------------------------------------------------------------------------------

// Why the mapping constructors below are sound to call here: memmap2's `map*` functions are
// unsafe because another process may change or truncate the file while it is mapped, which
// Rust's `&[u8]`/`&mut [u8]` do not expect. This crate's protocol: writers hold an exclusive
// `flock(2)`, so a writer's mapping is changed by no other process; readers take no lock and
// use raw mappings (`map_read_raw`), reaching the words writers change only through atomics
// and slicing only records that are never written again. Truncation by a process that ignores
// the protocol raises SIGBUS, which [`SigbusGuard`] turns into an error instead of a crash.

/// `mmap(2)` the whole file read-only, `MAP_SHARED`, for a reader that takes no lock: a raw
/// mapping, reached only through [`SharedMem`] (atomic words, slices of published records),
/// or only measured (mincore).
pub fn map_read_raw(file: &std::fs::File) -> io::Result<memmap2::MmapRaw> {
    memmap2::MmapOptions::new().map_raw_read_only(file)
}

/// `mmap(2)` the whole file read-write, `MAP_SHARED`: stores reach the page cache, so other
/// processes (and the file) see them without any write(2).
pub fn map_shared(file: &std::fs::File) -> io::Result<memmap2::MmapMut> {
    // SAFETY: see the protocol above: exclusive flock held by the caller (readers in other
    // processes only read), SIGBUS guarded.
    unsafe { memmap2::MmapOptions::new().map_mut(file) }
}

/// `mmap(2)` the whole file read-write, `MAP_PRIVATE`: the first store to a page copies it
/// (copy-on-write) and the file never sees the change.
pub fn map_private(file: &std::fs::File) -> io::Result<memmap2::MmapMut> {
    // SAFETY: see the protocol above: a shared flock held by the caller keeps writers out
    // (readers only read), SIGBUS guarded. Pages we have written are private copies and cannot
    // change underneath us at all.
    unsafe { memmap2::MmapOptions::new().map_copy(file) }
}

/// `mremap(2)` a shared mapping to `new_len` bytes (it may move), after the file was grown.
pub fn remap(map: &mut memmap2::MmapMut, new_len: usize) -> io::Result<()> {
    // SAFETY: memmap2 requires that no pointer into the old mapping survives the call: we hold
    // `&mut` to the mapping, so no borrowed slice exists, and the caller re-registers the SIGBUS
    // guard with the new address right after.
    unsafe { map.remap(new_len, memmap2::RemapOptions::new().may_move(true)) }
}
