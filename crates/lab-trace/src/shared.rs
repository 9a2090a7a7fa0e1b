//! Watching a file that other processes write through their own `MAP_SHARED` mappings: the lab
//! maps it too, read-only, and reads the counters as they change (`mmap(2)`).
//!
//! A `MAP_SHARED` mapping of a file is the file's page-cache pages themselves, so this process
//! sees every store another process makes through its mapping, with no system call. And the
//! mapping holds a reference to the file: after the last process unlinks it (`unlink(2)` removes
//! the name, not the inode), the mapping still reads the same pages until it is unmapped — the
//! observer reads the final counters of a race whose leader already deleted the file.
//!
//! The bytes are reached only through atomic loads ([`SharedView::load_i64`]) over a raw mapping
//! ([`memmap2::MmapRaw`]): no `&[u8]` ever covers memory another process writes. Opened
//! read-only and mapped `PROT_READ`, the view shows in `/proc/PID/maps` as `r--s`, which tells a
//! participant that scans /proc for who holds the file that this is an observer, not a racer.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

/// The first `len` bytes of a file, mapped `PROT_READ`, `MAP_SHARED`.
pub struct SharedView {
    map: MmapRaw,
    dev: u64,
    ino: u64,
}

impl SharedView {
    /// Opens `path` read-only and maps its first `len` bytes, once it is at least that long: a
    /// shorter file is an error (`UnexpectedEof`), because touching a mapped page past the end
    /// of the file raises SIGBUS. (Were the file truncated while mapped, a load past its new end
    /// would raise SIGBUS too; the programs the lab watches only ever grow their files.)
    pub fn open(path: &Path, len: usize) -> io::Result<SharedView> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.len() < len as u64 || len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} is {} bytes, not yet {len}", path.display(), meta.len()),
            ));
        }
        // The mapping keeps the file referenced; the descriptor can go.
        let map = MmapOptions::new().len(len).map_raw_read_only(&file)?;
        Ok(SharedView {
            map,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The mapped length.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: [`SharedView::open`] refuses an empty mapping.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Where the mapping starts in this process (to find its line in `/proc/self/maps`).
    pub fn address(&self) -> u64 {
        self.map.as_ptr() as u64
    }

    /// The device and inode of the mapped file (the name may be gone).
    pub fn file_key(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// The `i64` at `offset` (a multiple of 8, inside the mapping), as another process last
    /// stored it; `None` for an offset outside the mapping or misaligned.
    pub fn load_i64(&self, offset: usize) -> Option<i64> {
        if offset % 8 != 0 || offset.checked_add(8)? > self.len() {
            return None;
        }
        // SAFETY: the mapping starts at a page boundary, so `offset % 8 == 0` makes the pointer
        // 8-byte aligned, and `offset + 8 <= len` keeps all 8 bytes inside the mapping, which
        // lives as long as `self` (the returned reference does not outlive this call's borrow).
        // The memory is read-only to us: `std::sync::atomic` permits relaxed/acquire loads of
        // an 8-byte atomic on read-only memory, and we do nothing else. Other processes write
        // it concurrently through their own mappings: that is what atomics are for.
        let atomic = unsafe { AtomicI64::from_ptr(self.map.as_mut_ptr().add(offset).cast()) };
        Some(atomic.load(Ordering::Acquire))
    }

    /// The `i32` at `offset` (a multiple of 4, inside the mapping); see [`SharedView::load_i64`].
    pub fn load_i32(&self, offset: usize) -> Option<i32> {
        if offset % 4 != 0 || offset.checked_add(4)? > self.len() {
            return None;
        }
        // SAFETY: as in `load_i64`, with 4-byte alignment and bounds.
        let atomic = unsafe { AtomicI32::from_ptr(self.map.as_mut_ptr().add(offset).cast()) };
        Some(atomic.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sees_writes_through_the_file_and_outlives_its_name() {
        let dir = tempfile::Builder::new()
            .prefix("lab-trace-shared-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("course.bin");
        let mut bytes = vec![0u8; 96];
        bytes[0..4].copy_from_slice(&7i32.to_ne_bytes());
        bytes[8..16].copy_from_slice(&1_000_000_000i64.to_ne_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let view = SharedView::open(&path, 96).unwrap();
        assert_eq!(view.len(), 96);
        assert!(!view.is_empty());
        assert_eq!(view.load_i32(0), Some(7));
        assert_eq!(view.load_i64(8), Some(1_000_000_000));
        // A write to the file is the same page: the view sees it without a system call.
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(16)).unwrap();
        f.write_all(&42i64.to_ne_bytes()).unwrap();
        assert_eq!(view.load_i64(16), Some(42));
        // Unlinked: the name is gone, the mapping still reads the pages.
        let key = view.file_key();
        std::fs::remove_file(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(view.load_i64(8), Some(1_000_000_000));
        assert_eq!(view.file_key(), key);
    }

    #[test]
    fn refuses_short_files_and_bad_offsets() {
        let dir = tempfile::Builder::new()
            .prefix("lab-trace-shared-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("short.bin");
        std::fs::write(&path, [0u8; 10]).unwrap();
        let e = SharedView::open(&path, 96).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(SharedView::open(&dir.path().join("none"), 96).is_err());
        let view = SharedView::open(&path, 8).unwrap();
        assert_eq!(view.load_i64(0), Some(0));
        assert_eq!(view.load_i64(8), None);
        assert_eq!(view.load_i64(4), None);
        assert_eq!(view.load_i32(6), None);
        assert_eq!(view.load_i32(usize::MAX - 1), None);
    }
}
