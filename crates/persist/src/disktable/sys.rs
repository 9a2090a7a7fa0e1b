//! Every raw libc call of [`crate::disktable`], each wrapped safely and citing its man page.
//!
//! The rest of the module calls these wrappers and never `libc` directly. Wrappers the crate
//! already has (`page_size`, `flock`, `fadvise_dontneed`) are re-exported from [`crate::sys`]
//! rather than written twice. The delicate part is [`Map`]: a file mapping reached only through
//! atomics, because another process may write or truncate the file while it is mapped; it
//! registers with the crate's one SIGBUS guard ([`crate::sys::SigbusGuard`]), which turns "the
//! file was truncated under the mapping" into an error instead of a death.
//! [`store_i32_may_fault`] is the naive writer's store, which is meant to fault.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

use crate::sys::SigbusGuard;
pub use crate::sys::{fadvise_dontneed, fallocate, flock, page_size};

/// What `fstat(2)` says about an open file: its length. (Whether it is a regular file was
/// settled when it was opened: [`crate::sys::open_regular`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub len: u64,
}

/// `fstat(2)`. (std's `File::metadata` calls `statx(2)`; the course asks for fstat, and a trace
/// of this program should show the call the course names.)
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is writable storage for one `struct stat`; the descriptor is open (borrowed).
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat returned 0, so it filled `st` (and zeroed() made every byte valid anyway).
    let st = unsafe { st.assume_init() };
    Ok(Stat {
        len: u64::try_from(st.st_size).unwrap_or(0),
    })
}

/// `ftruncate(2)`: sets the file's length (growing it with zeros, or cutting it).
pub fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
    loop {
        // SAFETY: plain integer arguments on an open descriptor; no memory is passed.
        let rc = unsafe { libc::ftruncate(fd.as_raw_fd(), len) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// `fsync(2)`: writes the file's dirty pages back (allowed on a read-only descriptor).
pub fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: an integer argument on an open descriptor; no memory is passed.
    let rc = unsafe { libc::fsync(fd.as_raw_fd()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setrlimit(2)` `RLIMIT_CORE` = 0: a crash this program provokes on purpose leaves no core
/// file behind (with a `core_pattern` that pipes to a helper, the helper is told the limit).
pub fn disable_core_dumps() -> io::Result<()> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid rlimit read by the call; lowering a limit needs no privilege.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether any page of `[addr, addr+len)` is mapped in this process, from `mincore(2)`: it
/// fails with `ENOMEM` when part of the range is unmapped. Only a query; nothing is touched.
pub fn range_is_mapped(addr: usize, len: usize) -> bool {
    let page = page_size();
    let start = addr & !(page - 1);
    let pages = (addr + len - start).div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: mincore only inspects the page tables for the range (it never dereferences it)
    // and writes one byte per page into `vec`, which has exactly that many. `start` is
    // page-aligned as mincore requires.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, pages * page, vec.as_mut_ptr()) };
    rc == 0
}

/// Which access pattern to announce with `madvise(2)` (it steers read-ahead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// `MADV_NORMAL`: the kernel's default read-around.
    Normal,
    /// `MADV_RANDOM`: read in exactly the pages that are touched.
    Random,
    /// `MADV_SEQUENTIAL`: read ahead aggressively.
    Sequential,
}

/// `mmap(2)` `len` bytes of `fd` from offset 0, `MAP_SHARED`, at an address the kernel picks.
fn mmap_shared(fd: BorrowedFd<'_>, len: usize, prot: libc::c_int) -> io::Result<*mut libc::c_void> {
    // SAFETY: a fresh mapping at an address the kernel picks (no MAP_FIXED), so no existing
    // memory is replaced; the descriptor is open. The result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p)
}

// ---------------------------------------------------------------------------------------------
// Map: a shared file mapping reached only through atomics.
// ---------------------------------------------------------------------------------------------

/// A `MAP_SHARED` mapping of a file, `PROT_READ` or `PROT_READ|PROT_WRITE`, unmapped on drop.
///
/// The bytes are never exposed as `&[u8]`: another process may store into the same page cache
/// pages at any time (a student's writer, a second `disktable append` that ignores the lock),
/// which a Rust reference forbids. Every access is an atomic load or store of an aligned `i32`
/// or `i64`, which is defined even while another process writes.
///
/// A file can also be cut short by another process while mapped; touching a page that lies
/// wholly past the new end raises SIGBUS. Every `Map` registers its range with the crate's
/// SIGBUS guard ([`SigbusGuard`]), whose handler maps a zero page over the faulting page (so the access completes and
/// reads zeros) and records the fault; [`Map::fault`] reports it and callers turn it into an
/// error. Accessors are bounds-checked: an index outside the mapping panics (a bug, not input).
pub struct Map {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    /// `None` only during drop, which unregisters it before unmapping.
    guard: Option<SigbusGuard>,
}

// SAFETY: Map owns its mapping exclusively (the pointer is never shared outside it except
// through the atomic accessors), and the guard is a slot in a global atomic registry. Moving it to
// another thread is fine; the SIGBUS handler runs on whichever thread touches the memory.
unsafe impl Send for Map {}

/// Makes the page holding `p` writable and backed, changing no byte: an atomic `or` of 0, which
/// leaves the value as it is even if another process stores to it at the same time.
///
/// Written as the instruction itself: `AtomicI32::fetch_add(0, Relaxed)` with its result unused
/// is a no-op to the optimizer, which removed it in release builds (the page was never touched).
fn touch_for_write(p: *mut i32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `p` is an aligned i32 inside a PROT_WRITE mapping (the caller's `cell` checks
    // the bounds and alignment); `lock or` of 0 reads and writes it back unchanged, atomically.
    unsafe {
        std::arch::asm!("lock or dword ptr [{p}], 0", p = in(reg) p, options(nostack));
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above; elsewhere the compare-exchange of a value with itself is a write that
    // the optimizer keeps (its result is used).
    unsafe {
        let a = AtomicI32::from_ptr(p);
        let v = a.load(Ordering::Relaxed);
        let _ =
            std::hint::black_box(a.compare_exchange(v, v, Ordering::Relaxed, Ordering::Relaxed));
    }
}

impl Map {
    /// `mmap(2)` `len` bytes of `fd` from offset 0, `MAP_SHARED`, read-only or read-write.
    /// `len` must be > 0 (callers check the file's length first).
    pub fn file(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<Map> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map 0 bytes",
            ));
        }
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let p = mmap_shared(fd, len, prot)?;
        let ptr = NonNull::new(p.cast::<u8>()).expect("mmap returned NULL without MAP_FIXED");
        let guard = Some(SigbusGuard::register(ptr.as_ptr(), len));
        Ok(Map {
            ptr,
            len,
            writable,
            guard,
        })
    }

    /// `mremap(2)` with `MREMAP_MAYMOVE` to `new_len` bytes (call after growing the file with
    /// `ftruncate`). The kernel may move the mapping; [`Map::addr`] then changes.
    pub fn remap(&mut self, new_len: usize) -> io::Result<()> {
        // SAFETY: `self.ptr`/`self.len` describe a mapping this Map owns; nothing outside Map
        // holds a pointer into it (accessors hand out values, not references), and we hold
        // `&mut self`, so no access runs concurrently. On success the old range is gone and the
        // new one is recorded below before any access.
        let p = unsafe {
            libc::mremap(
                self.ptr.as_ptr().cast(),
                self.len,
                new_len,
                libc::MREMAP_MAYMOVE,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.ptr = NonNull::new(p.cast::<u8>()).expect("mremap returned NULL");
        self.len = new_len;
        if let Some(guard) = &self.guard {
            guard.update(self.ptr.as_ptr(), new_len);
        }
        Ok(())
    }

    /// The mapping's address (it changes when `remap` moves it).
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// The length asked of mmap/mremap (the kernel maps whole pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// `madvise(2)` over the whole mapping.
    pub fn advise(&self, advice: Advice) -> io::Result<()> {
        let a = match advice {
            Advice::Normal => libc::MADV_NORMAL,
            Advice::Random => libc::MADV_RANDOM,
            Advice::Sequential => libc::MADV_SEQUENTIAL,
        };
        // SAFETY: the range is this Map's live mapping; these advice values only steer
        // read-ahead and never change the contents.
        let rc = unsafe { libc::madvise(self.ptr.as_ptr().cast(), self.len, a) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `mincore(2)`: how many of the mapping's pages are resident in the page cache.
    pub fn resident_pages(&self) -> io::Result<usize> {
        // The range is this Map's live mapping, as `resident_pages` requires.
        crate::sys::resident_pages(self.ptr.as_ptr(), self.len)
    }

    /// The byte offset of the first SIGBUS caught in this mapping (the file was truncated
    /// under it), if any.
    pub fn fault(&self) -> Option<usize> {
        let addr = self.guard.as_ref()?.fault_addr()?;
        Some(addr.wrapping_sub(self.addr()))
    }

    fn cell<T>(&self, offset: usize) -> *mut T {
        let size = std::mem::size_of::<T>();
        assert!(
            offset % size == 0 && offset.checked_add(size).is_some_and(|e| e <= self.len),
            "access at {offset} outside the {}-byte mapping",
            self.len
        );
        // In bounds (checked above); aligned because the mapping is page-aligned and `offset`
        // is a multiple of the size.
        self.ptr.as_ptr().wrapping_add(offset).cast::<T>()
    }

    /// Loads the `i64` at byte `offset` (acquire: pairs with [`Map::store_i64`]).
    pub fn load_i64(&self, offset: usize) -> i64 {
        let p = self.cell::<i64>(offset);
        // SAFETY: `p` is in bounds and 8-aligned (checked by `cell`) inside a mapping that
        // lives as long as `self`; other processes may write it concurrently, which atomics
        // allow. A truncated file raises SIGBUS here, handled by the guard (zero page).
        unsafe { AtomicI64::from_ptr(p) }.load(Ordering::Acquire)
    }

    /// Loads the `i32` at byte `offset`.
    pub fn load_i32(&self, offset: usize) -> i32 {
        let p = self.cell::<i32>(offset);
        // SAFETY: as in `load_i64`, with 4-byte alignment.
        unsafe { AtomicI32::from_ptr(p) }.load(Ordering::Relaxed)
    }

    /// Touches every page of `[start, end)` for writing without changing a byte: an atomic add
    /// of 0 to one aligned `i32` in each page. A page the file system cannot provide (a full
    /// disk, where `fallocate(2)` could not reserve ahead) raises SIGBUS there, which the
    /// guard catches: check [`Map::fault`] afterwards. Panics on a read-only mapping.
    pub fn prefault(&self, start: usize, end: usize) {
        assert!(self.writable, "prefault of a read-only mapping");
        let page = page_size();
        let end = end.min(self.len);
        let mut at = start.next_multiple_of(4);
        while at + 4 <= end {
            let p = self.cell::<i32>(at);
            touch_for_write(p);
            at = (at / page + 1) * page;
        }
    }

    /// Stores the `i32` at byte `offset`. Panics on a read-only mapping.
    pub fn store_i32(&self, offset: usize, value: i32) {
        assert!(self.writable, "store into a read-only mapping");
        let p = self.cell::<i32>(offset);
        // SAFETY: as in `load_i32`; the mapping is PROT_WRITE (checked above).
        unsafe { AtomicI32::from_ptr(p) }.store(value, Ordering::Relaxed);
    }

    /// Stores the `i64` at byte `offset` with release ordering: every earlier store to the
    /// mapping is visible before it (the count is published after the values it counts).
    pub fn store_i64(&self, offset: usize, value: i64) {
        assert!(self.writable, "store into a read-only mapping");
        let p = self.cell::<i64>(offset);
        // SAFETY: as in `load_i64`; the mapping is PROT_WRITE (checked above).
        unsafe { AtomicI64::from_ptr(p) }.store(value, Ordering::Release);
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // Unregister first: a registered range that is no longer ours must not be patched.
        drop(self.guard.take());
        // SAFETY: the range is the mapping this Map owns; no pointer into it survives (the
        // accessors return values), and the guard was unregistered first.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

// ---------------------------------------------------------------------------------------------
// The naive writer's raw memory: addresses, not Rust objects.
// ---------------------------------------------------------------------------------------------

/// `mmap(2)` exactly as a first attempt does: `len` bytes of `fd`, `PROT_READ|PROT_WRITE`,
/// `MAP_SHARED`, no SIGBUS guard. With `keep_next_page_unmapped`, the range is first reserved
/// one page longer (an anonymous `PROT_NONE` mapping), the file is mapped over its start with
/// `MAP_FIXED`, and the extra page is unmapped again: the page right after the mapping is then
/// certainly unmapped, so a store there is a SIGSEGV instead of landing in whatever mapping the
/// kernel happened to place next to ours. Returns the address. The mapping is never unmapped
/// (the naive writer ends with the process).
pub fn map_naive(
    fd: BorrowedFd<'_>,
    len: usize,
    keep_next_page_unmapped: bool,
) -> io::Result<usize> {
    let page = page_size();
    let rounded = len.div_ceil(page) * page;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    if !keep_next_page_unmapped {
        return mmap_shared(fd, len, prot).map(|p| p as usize);
    }
    // SAFETY: a fresh anonymous PROT_NONE reservation at a kernel-chosen address.
    let r = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            rounded + page,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if r == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: MAP_FIXED replaces only pages of the reservation made just above, which nothing
    // else uses.
    let p = unsafe {
        libc::mmap(
            r,
            len,
            prot,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the last page of our own reservation, which nothing else uses.
    let rc = unsafe { libc::munmap((r as usize + rounded) as *mut libc::c_void, page) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(p as usize)
}

/// Stores `value` at `addr` with one 4-byte machine store, the way C's `t->value[i] = i` does,
/// whether or not the address is backed: the CPU faults if it is not, and the kernel sends
/// SIGBUS (a mapped page past the end of the file) or SIGSEGV (no mapping), whose default
/// action ends the process.
///
/// On x86-64 and aarch64 the store is one instruction in inline assembly, so the compiler
/// neither sees nor reasons about an access outside any Rust allocation.
///
/// # Safety
///
/// `addr` must be 4-aligned and must not hold memory that Rust code in this process uses (the
/// naive writer passes addresses in its own file mapping or in the unmapped page after it).
pub unsafe fn store_i32_may_fault(addr: usize, value: i32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller guarantees `addr` is not Rust-owned memory; the asm touches only the
    // 4 bytes at `addr`, uses no stack and leaves the flags alone.
    unsafe {
        std::arch::asm!(
            "mov dword ptr [{addr}], {value:e}",
            addr = in(reg) addr,
            value = in(reg) value,
            options(nostack, preserves_flags)
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        std::arch::asm!(
            "str {value:w}, [{addr}]",
            addr = in(reg) addr,
            value = in(reg) value,
            options(nostack, preserves_flags)
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    // SAFETY: as above; a volatile store is not elided or merged.
    unsafe {
        std::ptr::write_volatile(addr as *mut i32, value);
    }
}
