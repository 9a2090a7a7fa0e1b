//! The raw system calls of the benchmark's machine measurements, each behind a safe wrapper:
//! an anonymous mapping with page-size advice (`mmap(2)`, `madvise(2)`, `munmap(2)`), a
//! hardware cache-miss counter (`perf_event_open(2)`, `ioctl(2)`, `read(2)`), and the calling
//! process's CPU time (`clock_gettime(2)` with `CLOCK_PROCESS_CPUTIME_ID`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// 2 MiB: the x86-64 huge page a PMD maps.
pub const HUGE_PAGE: usize = 2 << 20;

/// Which pages an [`AnonMap`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    /// `MADV_NOHUGEPAGE`: 4 KiB pages only.
    Small,
    /// A 2 MiB-aligned mapping with `MADV_HUGEPAGE` (transparent huge pages; whether the
    /// kernel gave them is seen in `/proc/self/smaps`, never assumed).
    Huge,
}

/// A private anonymous mapping of `len` bytes (a multiple of 2 MiB for [`Pages::Huge`]),
/// advised before its first touch and unmapped on drop.
pub struct AnonMap {
    ptr: *mut u8,
    len: usize,
}

impl AnonMap {
    /// `mmap(2)` + `madvise(2)`. For huge pages it maps 2 MiB more, then unmaps the unaligned
    /// head and tail, so the region starts on a 2 MiB boundary (the kernel maps a huge page
    /// only where a whole aligned 2 MiB lies inside the mapping).
    pub fn new(len: usize, pages: Pages) -> io::Result<AnonMap> {
        let len = len.next_multiple_of(HUGE_PAGE).max(HUGE_PAGE);
        let extra = if pages == Pages::Huge { HUGE_PAGE } else { 0 };
        // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing
        // aliases nothing; the result is checked against MAP_FAILED before use.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len + extra,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = raw as usize;
        let start = if extra == 0 {
            base
        } else {
            base.next_multiple_of(HUGE_PAGE)
        };
        let map = AnonMap {
            ptr: start as *mut u8,
            len,
        };
        if extra != 0 {
            let (head, tail) = (start - base, base + len + extra - (start + len));
            // SAFETY: both ranges lie inside the mapping made above and outside [start,
            // start + len), which is all `map` covers; nothing points into them.
            unsafe {
                if head > 0 {
                    libc::munmap(raw, head);
                }
                if tail > 0 {
                    libc::munmap((start + len) as *mut libc::c_void, tail);
                }
            }
        }
        let advice = match pages {
            Pages::Small => libc::MADV_NOHUGEPAGE,
            Pages::Huge => libc::MADV_HUGEPAGE,
        };
        // SAFETY: advice on our own mapping, whose bounds are exactly `map`'s; it changes no
        // memory contents.
        if unsafe { libc::madvise(map.ptr.cast(), map.len, advice) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(map)
    }

    /// Address of the first byte (to find the mapping in `/proc/self/smaps`).
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: at least one huge page is mapped).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping as 64-bit words (zero-filled until written).
    pub fn words_mut(&mut self) -> &mut [u64] {
        // SAFETY: the mapping is `len` readable and writable bytes, page-aligned (so aligned
        // for u64), private to this process and owned by `self`, so the `&mut self` borrow
        // makes this slice the only access for its lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<u64>(), self.len / 8) }
    }
}

impl Drop for AnonMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range this value owns; no slice of it outlives `self`
        // (`words_mut` borrows `self`).
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// The calling process's CPU time so far (user + system, all threads), in seconds.
pub fn process_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_PROCESS_CPUTIME_ID always exists on
    // Linux, and on the impossible failure `ts` stays zero.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The calling thread's CPU time so far, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`): time
/// this thread ran, not time it waited for a CPU another process held.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as in `process_cpu_seconds`, for the calling thread's clock.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `struct perf_event_attr` up to `config1` (`PERF_ATTR_SIZE_VER0`, 64 bytes): enough for a
/// counting event, and every kernel since 2.6.31 accepts it.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit 0 disabled, bit 5 exclude_kernel, bit 6 exclude_hv.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const PERF_TYPE_HW_CACHE: u32 = 3;
const PERF_COUNT_HW_CACHE_LL: u64 = 2;
const PERF_COUNT_HW_CACHE_DTLB: u64 = 3;
const PERF_COUNT_HW_CACHE_OP_READ: u64 = 0;
const PERF_COUNT_HW_CACHE_RESULT_MISS: u64 = 1;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_DISABLE: libc::c_ulong = 0x2401;
const PERF_EVENT_IOC_RESET: libc::c_ulong = 0x2403;

/// Which hardware cache event a [`Counter`] counts (read misses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    /// Last-level cache read misses: loads that went to memory.
    LastLevel,
    /// Data TLB read misses: loads that needed a page walk.
    DataTlb,
}

/// One hardware event counted for this thread, user space only (`perf_event_open(2)`).
pub struct Counter {
    fd: OwnedFd,
}

impl Counter {
    /// Opens a disabled counter of `event` read misses for the calling thread on any CPU.
    /// Fails with the kernel's error where hardware events are not available (a VM without
    /// a virtual PMU says ENOENT or EOPNOTSUPP) or not permitted (EACCES, EPERM:
    /// `/proc/sys/kernel/perf_event_paranoid`).
    pub fn open(event: CacheEvent) -> io::Result<Counter> {
        let cache = match event {
            CacheEvent::LastLevel => PERF_COUNT_HW_CACHE_LL,
            CacheEvent::DataTlb => PERF_COUNT_HW_CACHE_DTLB,
        };
        let attr = PerfEventAttr {
            type_: PERF_TYPE_HW_CACHE,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: cache
                | (PERF_COUNT_HW_CACHE_OP_READ << 8)
                | (PERF_COUNT_HW_CACHE_RESULT_MISS << 16),
            flags: 1 | (1 << 5) | (1 << 6),
            ..PerfEventAttr::default()
        };
        // SAFETY: perf_event_open(attr, pid 0 = this thread, cpu -1 = any, group -1, flags 0)
        // only reads `attr`, a valid perf_event_attr of the size it states; the result is a new
        // descriptor or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                0,
                -1,
                -1,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor the kernel just returned to us and nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        Ok(Counter { fd })
    }

    fn ioctl(&self, request: libc::c_ulong) -> io::Result<()> {
        // SAFETY: a perf ioctl without argument on our own perf event descriptor.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), request, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Zeroes the count and starts counting.
    pub fn start(&self) -> io::Result<()> {
        self.ioctl(PERF_EVENT_IOC_RESET)?;
        self.ioctl(PERF_EVENT_IOC_ENABLE)
    }

    /// Stops counting and returns the count since [`Counter::start`].
    pub fn stop(&self) -> io::Result<u64> {
        self.ioctl(PERF_EVENT_IOC_DISABLE)?;
        let mut count = 0u64;
        // SAFETY: reads at most 8 bytes into `count`, a valid u64 (read_format 0: the value).
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if n != std::mem::size_of::<u64>() as isize {
            return Err(io::Error::last_os_error());
        }
        Ok(count)
    }
}

/// Why [`Counter::open`] failed, in words: the kernel's errno read as "not supported here"
/// (ENOENT, EOPNOTSUPP, ENODEV: no hardware PMU, as in most VMs) or "not permitted" (EACCES,
/// EPERM: `perf_event_paranoid`), with the errno's name.
pub fn describe_perf_error(e: &io::Error) -> String {
    let paranoid = || {
        std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
            .map_or("unreadable".into(), |s| s.trim().to_string())
    };
    match e.raw_os_error() {
        Some(libc::ENOENT) => "hardware events not supported on this machine (ENOENT)".into(),
        Some(libc::EOPNOTSUPP) => {
            "hardware events not supported on this machine (EOPNOTSUPP)".into()
        }
        Some(libc::ENODEV) => "hardware events not supported on this machine (ENODEV)".into(),
        Some(libc::EACCES) => format!(
            "not permitted (EACCES; /proc/sys/kernel/perf_event_paranoid = {})",
            paranoid()
        ),
        Some(libc::EPERM) => format!(
            "not permitted (EPERM; /proc/sys/kernel/perf_event_paranoid = {})",
            paranoid()
        ),
        _ => format!("failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perf_error_says_unsupported_or_not_permitted() {
        let say = |errno| describe_perf_error(&io::Error::from_raw_os_error(errno));
        assert_eq!(
            say(libc::ENOENT),
            "hardware events not supported on this machine (ENOENT)"
        );
        assert!(say(libc::EACCES).starts_with("not permitted (EACCES; "));
        assert!(say(libc::EINVAL).starts_with("failed: "));
    }

    #[test]
    fn an_anonymous_mapping_is_aligned_zeroed_and_writable() {
        for pages in [Pages::Small, Pages::Huge] {
            let mut m = AnonMap::new(3 << 20, pages).unwrap();
            assert_eq!(m.len(), 4 << 20, "rounded up to whole huge pages");
            if pages == Pages::Huge {
                assert_eq!(m.addr() % HUGE_PAGE, 0);
            }
            let w = m.words_mut();
            assert!(w.iter().all(|&x| x == 0));
            w[0] = 7;
            *w.last_mut().unwrap() = 9;
            assert_eq!(w[0] + w[w.len() - 1], 16);
        }
    }

    #[test]
    fn the_perf_attr_is_the_kernels_first_version_and_cpu_time_advances() {
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 64);
        let t0 = process_cpu_seconds();
        let mut x = 0u64;
        while process_cpu_seconds() - t0 < 0.01 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(process_cpu_seconds() > t0);
        // Whatever the machine allows, opening a counter answers: a count or an OS error.
        match Counter::open(CacheEvent::LastLevel) {
            Ok(c) => {
                c.start().unwrap();
                c.stop().unwrap();
            }
            Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
        }
    }
}
