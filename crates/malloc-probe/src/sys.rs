//! Every raw libc call of malloc-probe: malloc(3), free(3), reads of allocator metadata,
//! sbrk(2), write(2) markers, dladdr(3). The rest of the crate uses the safe wrappers here.
//!
//! Reading the word before a pointer is only meaningful (and only known to be mapped) when the
//! allocator is glibc's ptmalloc. [`Glibc::detect`] checks that once; every metadata read needs
//! the resulting [`Glibc`] token, so no code path can read tags of a foreign allocator.

use std::ffi::{c_void, CStr};
use std::ptr::NonNull;

use malloc_probe::tag::{Tag, SIZE_SZ};

/// Proof that `malloc` in this process is glibc's (see [`Glibc::detect`]).
#[derive(Debug)]
pub struct Glibc {
    pub version: String,
    pub malloc_object: String,
}

/// Who provides malloc here, when it is not glibc.
#[derive(Debug)]
pub struct NotGlibc {
    pub reason: String,
}

/// A block returned by glibc's malloc and not yet freed.
#[derive(Debug)]
pub struct Block {
    ptr: NonNull<u8>,
}

impl Block {
    /// The address malloc returned.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Keeps the block allocated until the process exits. (A `Block` has no `Drop`: only
    /// [`Glibc::free`] frees, so dropping one leaks it too; this names the intent.)
    pub fn leak(self) {}
}

/// The object file that contains `addr`, via dladdr(3).
#[cfg(target_os = "linux")]
fn object_of(addr: *const c_void) -> Option<String> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr(3) only reads `addr` as a number and fills `info`, which is valid for writes.
    let ok = unsafe { libc::dladdr(addr, info.as_mut_ptr()) };
    if ok == 0 {
        return None;
    }
    // SAFETY: dladdr returned non-zero, so it initialised `info` (zeroed before in any case).
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader, alive while the object
    // stays loaded (libc and the allocator are never unloaded).
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(name.to_string_lossy().into_owned())
}

impl Glibc {
    /// Checks that `malloc` resolves into the same object as glibc's `gnu_get_libc_version`:
    /// an LD_PRELOADed jemalloc or a musl build fails this, and then no tag is ever read.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    pub fn detect() -> Result<Glibc, NotGlibc> {
        let malloc_object =
            object_of(libc::malloc as *const c_void).unwrap_or_else(|| "an unknown object".into());
        let libc_object = object_of(libc::gnu_get_libc_version as *const c_void);
        // SAFETY: gnu_get_libc_version(3) returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) }
            .to_string_lossy()
            .into_owned();
        match libc_object {
            Some(l) if l == malloc_object => Ok(Glibc {
                version,
                malloc_object,
            }),
            other => Err(NotGlibc {
                reason: format!(
                    "malloc comes from {malloc_object}, not from glibc ({})",
                    other.unwrap_or_else(|| "libc.so.6".into())
                ),
            }),
        }
    }

    /// Not glibc at all (musl, another OS): there are no ptmalloc tags to read.
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    pub fn detect() -> Result<Glibc, NotGlibc> {
        Err(NotGlibc {
            reason: "this build does not use glibc (e.g. musl), whose malloc has no ptmalloc \
                     boundary tags"
                .into(),
        })
    }

    /// malloc(3). `None` when it returns NULL.
    pub fn malloc(&self, size: usize) -> Option<Block> {
        // SAFETY: malloc(3) has no preconditions; a NULL result is handled.
        let p = unsafe { libc::malloc(size) };
        NonNull::new(p.cast::<u8>()).map(|ptr| Block { ptr })
    }

    /// free(3); consumes the block so it cannot be freed twice.
    pub fn free(&self, block: Block) {
        // SAFETY: `block` came from malloc and, being moved in, has not been freed before.
        unsafe { libc::free(block.ptr.as_ptr().cast::<c_void>()) }
    }

    /// The boundary tag: the size field, the word just before the pointer.
    pub fn tag(&self, block: &Block) -> Tag {
        let at = block.ptr.as_ptr().wrapping_sub(SIZE_SZ).cast::<u64>();
        // SAFETY: with glibc (proved by `self`), a live block's chunk header lies right before
        // the pointer in the same mapping (heap: the chunk header; mmap: the pointer is 16 bytes
        // past the page-aligned start), and malloc's pointers are 16-byte aligned, so the 8
        // bytes at ptr-8 are mapped, readable and aligned. Volatile: the allocator owns them.
        Tag(unsafe { at.read_volatile() })
    }

    /// The word 16 bytes before the pointer: `prev_size` (or, for an mmapped chunk, the offset
    /// of the chunk in its mapping).
    pub fn prev_size(&self, block: &Block) -> u64 {
        let at = block.ptr.as_ptr().wrapping_sub(2 * SIZE_SZ).cast::<u64>();
        // SAFETY: as for `tag`: the chunk starts 16 bytes before the pointer, inside the same
        // mapping (for a heap chunk it is the previous chunk's last word, still in [heap]).
        unsafe { at.read_volatile() }
    }

    /// One word of the main heap at `addr`, if `[heap_start, program break)` holds all 8 bytes.
    /// Used for the top chunk's tag, a freed chunk's words and a neighbour's tag.
    pub fn heap_word(&self, heap_start: usize, addr: usize) -> Option<u64> {
        let brk = program_break();
        if addr < heap_start || addr.checked_add(8)? > brk || addr % 8 != 0 {
            return None;
        }
        // SAFETY: [heap_start, brk) is the brk heap, mapped read-write for the whole process
        // life; this process is single-threaded while measuring, so nothing shrinks it between
        // the bound check above and the read. The address is 8-byte aligned.
        Some(unsafe { (addr as *const u64).read_volatile() })
    }
}

/// mallinfo2(3), looked up with dlsym(3) so that a glibc older than 2.33 (no mallinfo2) just
/// yields `None`. It allocates nothing and changes no bin: it only walks them (malloc.c
/// `int_mallinfo`, which consolidates only an arena that was never initialised).
fn mallinfo2() -> Option<libc::mallinfo2> {
    // SAFETY: dlsym(3) with RTLD_DEFAULT and a NUL-terminated name has no other precondition.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"mallinfo2".as_ptr()) };
    if f.is_null() {
        return None;
    }
    // SAFETY: glibc's `mallinfo2` has exactly this signature (`struct mallinfo2 mallinfo2(void)`,
    // mallinfo2(3)), and `f` is its address.
    let mallinfo2: extern "C" fn() -> libc::mallinfo2 = unsafe { std::mem::transmute(f) };
    Some(mallinfo2())
}

/// The size of the main arena's top chunk as glibc reports it: `keepcost` of mallinfo2(3).
pub fn mallinfo_keepcost() -> Option<usize> {
    mallinfo2().map(|m| m.keepcost)
}

/// The free chunks in fastbins and their bytes: `smblks` and `fsmblks` of mallinfo2(3).
pub fn mallinfo_fastbins() -> Option<(usize, usize)> {
    mallinfo2().map(|m| (m.smblks, m.fsmblks))
}

/// The current program break, sbrk(2) with an increment of 0 (no system call once malloc has
/// run: glibc caches the break).
pub fn program_break() -> usize {
    // SAFETY: sbrk(0) changes nothing; it returns the cached break.
    unsafe { libc::sbrk(0) as usize }
}

/// The page size, sysconf(3) `_SC_PAGESIZE`.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// A marker visible in strace: write(2) to fd -1 fails with EBADF and does nothing else, but
/// strace prints its buffer (`write(-1, "malloc 131072", 13) = -1 EBADF`). Does not allocate.
pub fn mark(msg: &[u8]) {
    // SAFETY: `msg` is valid for `msg.len()` bytes; fd -1 is never open, so nothing is written.
    let _ = unsafe { libc::write(-1, msg.as_ptr().cast::<c_void>(), msg.len()) };
}

/// The process's `malloc`, whoever provides it (glibc, or an allocator preloaded with
/// `--allocator`): only malloc(3) and free(3), never a read of allocator metadata, so it needs
/// no [`Glibc`] token.
#[derive(Debug, Clone, Copy)]
pub struct AnyMalloc;

impl AnyMalloc {
    /// malloc(3). `None` when it returns NULL.
    pub fn malloc(self, size: usize) -> Option<Block> {
        // SAFETY: malloc(3) has no preconditions; a NULL result is handled.
        let p = unsafe { libc::malloc(size) };
        NonNull::new(p.cast::<u8>()).map(|ptr| Block { ptr })
    }

    /// free(3); consumes the block so it cannot be freed twice.
    pub fn free(self, block: Block) {
        // SAFETY: `block` came from this process's malloc and, being moved in, was not freed.
        unsafe { libc::free(block.ptr.as_ptr().cast::<c_void>()) }
    }

    /// The object `malloc` resolves to (`dladdr(3)`): the preloaded allocator when it took over.
    pub fn object(self) -> String {
        object_of(libc::malloc as *const c_void).unwrap_or_else(|| "an unknown object".into())
    }
}

/// Makes `cmd`'s process start with no core dump allowed (`RLIMIT_CORE` 0, setrlimit(2)): an
/// allocator that crashes the probe must not leave a core file in the caller's directory.
pub fn without_core_dumps(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed; it makes one setrlimit(2) call (async-signal-safe) on a limit value on
    // its stack, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &none) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
