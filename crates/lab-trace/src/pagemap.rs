//! `/proc/PID/pagemap` (kernel `Documentation/admin-guide/mm/pagemap.rst`): one 64-bit entry per
//! virtual page. Bit 63 present, 62 swapped, 61 file-page or shared-anon, 56 exclusively
//! mapped, 55 soft-dirty, bits 0–54 the page frame number (PFN). Without CAP_SYS_ADMIN the
//! kernel zeroes the PFN, so two processes' frames can be compared only as root.

use std::os::unix::fs::FileExt as _;

use serde::{Deserialize, Serialize};

/// One pagemap entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageEntry(pub u64);

impl PageEntry {
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    const FILE_OR_SHARED: u64 = 1 << 61;
    const EXCLUSIVE: u64 = 1 << 56;
    const PFN_MASK: u64 = (1 << 55) - 1;

    pub fn present(self) -> bool {
        self.0 & Self::PRESENT != 0
    }

    pub fn swapped(self) -> bool {
        self.0 & Self::SWAPPED != 0
    }

    /// A page of a file (page cache) or shared anonymous memory.
    pub fn file_or_shared(self) -> bool {
        self.0 & Self::FILE_OR_SHARED != 0
    }

    /// Mapped by this process only.
    pub fn exclusive(self) -> bool {
        self.0 & Self::EXCLUSIVE != 0
    }

    /// The frame, if present and readable (the kernel shows 0 to unprivileged readers).
    pub fn pfn(self) -> Option<u64> {
        let pfn = self.0 & Self::PFN_MASK;
        (self.present() && pfn != 0).then_some(pfn)
    }
}

/// Decodes pagemap bytes (little-endian 8-byte entries).
pub fn decode(bytes: &[u8]) -> Vec<PageEntry> {
    bytes
        .chunks_exact(8)
        .map(|c| PageEntry(u64::from_le_bytes(c.try_into().expect("8 bytes"))))
        .collect()
}

/// The entries of the pages of `[start, end)` in process `pid` ("self" for our own).
pub fn read(
    pid: impl std::fmt::Display,
    start: u64,
    end: u64,
    page: u64,
) -> std::io::Result<Vec<PageEntry>> {
    let f = std::fs::File::open(format!("/proc/{pid}/pagemap"))?;
    let n = usize::try_from(end.saturating_sub(start) / page)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; n * 8];
    f.read_exact_at(&mut buf, start / page * 8)?;
    Ok(decode(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_bits() {
        let root = PageEntry((1 << 63) | (1 << 61) | 0x249621);
        assert!(root.present() && root.file_or_shared() && !root.exclusive());
        assert_eq!(root.pfn(), Some(0x249621));
        let unprivileged = PageEntry((1 << 63) | (1 << 56));
        assert!(unprivileged.present() && unprivileged.exclusive());
        assert_eq!(unprivileged.pfn(), None);
        assert!(!PageEntry(0).present());
        let entries = decode(&[root.0.to_le_bytes(), 0u64.to_le_bytes()].concat());
        assert_eq!(entries, vec![root, PageEntry(0)]);
    }

    #[test]
    fn our_touched_stack_page_is_present() {
        let x = [7u8; 64];
        let addr = std::hint::black_box(&x) as *const _ as u64;
        let page = 4096; // entries are per base page; any page size divides into 4 KiB here
        let e = read("self", addr / page * page, addr / page * page + page, page).unwrap();
        assert!(e[0].present());
    }
}
