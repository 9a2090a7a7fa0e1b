//! Which mapping an address lies in, from `/proc/self/maps` (proc(5)): the region of a chunk is
//! read from the kernel's view, never inferred from the chunk's IS_MMAPPED bit.
//!
//! The probe reads the file between a `malloc` it measures and the interpretation, so the read
//! must not allocate (an allocation would move the very heap being measured): [`MapsSnapshot`]
//! owns a buffer reserved before any measurement, `read_self` fills it with `open(2)`/`read(2)`
//! only, and lines are parsed in place by `lab_trace::maps::MapsLine::parse`, which borrows
//! from the text and allocates nothing.

use std::io::Read as _;

use anyhow::{bail, Context as _};
use lab_trace::maps::MapsLine;

/// Where an address lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// The `[heap]` mapping (grown with brk).
    Heap,
    /// An anonymous mapping: what mmap(MAP_ANONYMOUS) returns.
    Mmap,
    /// Anything else (a file, the stack) or unmapped.
    Other,
}

impl Region {
    pub fn name(self) -> &'static str {
        match self {
            Region::Heap => "heap",
            Region::Mmap => "mmap",
            Region::Other => "other",
        }
    }

    /// The region of a parsed maps line.
    pub fn of(line: &MapsLine<'_>) -> Region {
        match line.path {
            "[heap]" => Region::Heap,
            "" => Region::Mmap,
            _ => Region::Other,
        }
    }
}

/// The text of `/proc/self/maps`, read into storage reserved beforehand.
pub struct MapsSnapshot {
    buf: Vec<u8>,
    len: usize,
}

/// Room for the maps text of a process like this one (a few dozen mappings of ~100 bytes), with
/// a wide margin; callers add ~128 bytes per block they will keep (each mmapped one adds a line).
pub const MAPS_CAPACITY: usize = 1 << 20;

impl MapsSnapshot {
    /// Reserves `capacity` bytes now (this allocates: call it before measuring).
    pub fn with_capacity(capacity: usize) -> MapsSnapshot {
        MapsSnapshot {
            buf: vec![0; capacity],
            len: 0,
        }
    }

    /// A snapshot of recorded text (tests).
    #[cfg(test)]
    pub fn of_text(text: &str) -> MapsSnapshot {
        MapsSnapshot {
            buf: text.as_bytes().to_vec(),
            len: text.len(),
        }
    }

    /// Reads `/proc/self/maps` into the reserved buffer, replacing the previous snapshot.
    /// Allocates nothing: `File::open` builds the C path on the stack, `read(2)` fills the
    /// buffer in place.
    pub fn read_self(&mut self) -> anyhow::Result<()> {
        let mut f = std::fs::File::open("/proc/self/maps")
            .context("cannot read /proc/self/maps (is /proc mounted?)")?;
        self.len = 0;
        loop {
            if self.len == self.buf.len() {
                bail!(
                    "/proc/self/maps is larger than the {} bytes reserved for it",
                    self.buf.len()
                );
            }
            match f.read(&mut self.buf[self.len..]) {
                Ok(0) => return Ok(()),
                Ok(n) => self.len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("cannot read /proc/self/maps"),
            }
        }
    }

    /// The text read (lines that are not valid UTF-8 are skipped by the parser's caller).
    fn lines(&self) -> impl Iterator<Item = MapsLine<'_>> {
        self.buf[..self.len]
            .split(|&b| b == b'\n')
            .filter_map(|l| std::str::from_utf8(l).ok())
            .filter_map(MapsLine::parse)
    }

    /// The mapping that contains `addr`.
    pub fn find(&self, addr: usize) -> Option<MapsLine<'_>> {
        self.lines().find(|m| m.contains(addr as u64))
    }

    /// The `[heap]` mapping, if the process has one.
    pub fn heap(&self) -> Option<MapsLine<'_>> {
        self.lines().find(|m| m.path == "[heap]")
    }

    /// The region `addr` lies in.
    pub fn region(&self, addr: usize) -> Region {
        self.find(addr).map_or(Region::Other, |m| Region::of(&m))
    }

    /// A short description of the mapping holding `addr` (`libc.so.6`, `[heap]`, `anonymous`).
    /// Allocates: for the explanation, after measuring.
    pub fn describe(&self, addr: usize) -> String {
        match self.find(addr) {
            Some(m) if m.path.is_empty() => "anonymous mapping".to_string(),
            Some(m) => m.path.rsplit('/').next().unwrap_or(m.path).to_string(),
            None => "no mapping: not an address".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SAMPLE: &str = "\
55d7a2a00000-55d7a2a21000 r--p 00000000 08:01 123  /usr/bin/malloc-probe
55d7a3e4c000-55d7a3e6d000 rw-p 00000000 00:00 0                          [heap]
7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 
7f1c2b000000-7f1c2b028000 r--p 00000000 08:01 456                        /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn classifies_heap_anonymous_and_files() {
        let maps = MapsSnapshot::of_text(SAMPLE);
        assert_eq!(maps.lines().count(), 5);
        assert_eq!(maps.region(0x55d7a3e4c010), Region::Heap);
        assert_eq!(
            maps.region(0x55d7a3e6d000),
            Region::Other,
            "end is exclusive"
        );
        assert_eq!(maps.region(0x7f1c2a000010), Region::Mmap);
        assert_eq!(maps.region(0x7f1c2b000010), Region::Other);
        assert_eq!(maps.region(0x7ffd1c000010), Region::Other);
        assert_eq!(maps.region(0x10), Region::Other);
        assert_eq!(maps.describe(0x7f1c2b000010), "libc.so.6");
        assert_eq!(maps.describe(0x7f1c2a000010), "anonymous mapping");
        assert_eq!(maps.heap().unwrap().start, 0x55d7a3e4c000);
    }

    #[test]
    fn live_maps_know_our_own_code_and_a_reread_replaces_the_snapshot() {
        let mut maps = MapsSnapshot::with_capacity(MAPS_CAPACITY);
        maps.read_self().unwrap();
        let code = live_maps_know_our_own_code_and_a_reread_replaces_the_snapshot as fn() as usize;
        let exe = std::env::current_exe().unwrap();
        let m = maps.find(code).expect("our code is mapped");
        assert_eq!(Path::new(m.path), exe);
        assert_eq!(m.perms[2], b'x');
        assert_eq!(maps.region(code), Region::Other);
        let first_len = maps.len;
        maps.read_self().unwrap();
        assert!(maps.len > 0 && maps.len.abs_diff(first_len) < first_len);
    }

    /// Counts this thread's allocations through Rust's allocator (tests of this binary only).
    mod counting {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            pub static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
        }

        pub struct Counting;

        // SAFETY: every call is forwarded unchanged to the System allocator, which upholds the
        // GlobalAlloc contract; the counter is a const-initialised thread-local Cell (no
        // allocation, no destructor), so counting cannot recurse into the allocator.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                ALLOCATIONS.with(|c| c.set(c.get() + 1));
                // SAFETY: forwarded with the caller's layout (its contract is ours).
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                // SAFETY: `ptr` came from System.alloc with this layout (alloc above).
                unsafe { System.dealloc(ptr, layout) }
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                ALLOCATIONS.with(|c| c.set(c.get() + 1));
                // SAFETY: forwarded with the caller's arguments (its contract is ours).
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        }

        #[global_allocator]
        static GLOBAL: Counting = Counting;
    }

    #[test]
    fn reading_and_looking_up_allocate_nothing() {
        let mut maps = MapsSnapshot::with_capacity(MAPS_CAPACITY);
        let code = reading_and_looking_up_allocate_nothing as fn() as usize;
        let before = counting::ALLOCATIONS.with(|c| c.get());
        maps.read_self().unwrap();
        let region = maps.region(code);
        let heap = maps.heap().map(|h| h.start);
        let after = counting::ALLOCATIONS.with(|c| c.get());
        assert_eq!(after - before, 0, "read_self, region and heap allocated");
        assert_eq!(region, Region::Other);
        assert!(heap.is_some());
        // The counter does count: describe() builds a String.
        let _ = maps.describe(code);
        assert!(counting::ALLOCATIONS.with(|c| c.get()) > after);
    }

    #[test]
    fn a_buffer_too_small_is_an_error_not_a_reallocation() {
        let mut maps = MapsSnapshot::with_capacity(64);
        let e = maps.read_self().unwrap_err().to_string();
        assert!(e.contains("larger than the 64 bytes reserved"), "{e}");
        assert_eq!(maps.buf.capacity(), 64);
    }
}
