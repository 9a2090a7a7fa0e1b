//! Decoding a glibc boundary tag, and glibc's size arithmetic (used to *check* measurements,
//! never to produce an answer).
//!
//! On 64-bit glibc the word before the pointer malloc returns is the chunk's size field. Chunk
//! sizes are multiples of 16, so the three low bits are free for flags (`malloc/malloc.c`):
//! bit 0 `PREV_INUSE`, bit 1 `IS_MMAPPED`, bit 2 `NON_MAIN_ARENA`.

/// `SIZE_SZ`: the size of the size field.
pub const SIZE_SZ: usize = std::mem::size_of::<usize>();
/// `MALLOC_ALIGNMENT` on x86-64 and aarch64 glibc: `2 * SIZE_SZ`.
pub const MALLOC_ALIGNMENT: usize = 2 * SIZE_SZ;
/// `MINSIZE`: the smallest chunk (fd and bk pointers plus the two size words).
pub const MINSIZE: usize = 4 * SIZE_SZ;
/// The three flag bits glibc keeps in the size field.
pub const FLAG_MASK: u64 = 0b111;

/// The names heap debuggers (pwndbg, gef) give the flag bits, by bit number.
pub const FLAG_NAMES: [&str; 3] = ["PREV_INUSE", "IS_MMAPPED", "NON_MAIN_ARENA"];

/// A raw size field, as read from memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag(pub u64);

impl Tag {
    /// The chunk size: the tag with the three flag bits cleared.
    pub fn chunk_size(self) -> u64 {
        self.0 & !FLAG_MASK
    }

    /// Whether bit `bit` (0 = lowest) is set.
    pub fn bit(self, bit: u32) -> bool {
        self.0 >> bit & 1 == 1
    }

    pub fn prev_inuse(self) -> bool {
        self.bit(0)
    }

    pub fn is_mmapped(self) -> bool {
        self.bit(1)
    }

    pub fn non_main_arena(self) -> bool {
        self.bit(2)
    }

    /// The set flags by name, `PREV_INUSE | IS_MMAPPED`, or `-` for none.
    pub fn flag_names(self) -> String {
        let names: Vec<&str> = (0..3)
            .filter(|&b| self.bit(b))
            .map(|b| FLAG_NAMES[b as usize])
            .collect();
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(" | ")
        }
    }
}

/// Rounds `n` up to a multiple of `to` (a power of two).
pub fn align_up(n: usize, to: usize) -> usize {
    debug_assert!(to.is_power_of_two());
    n.saturating_add(to - 1) & !(to - 1)
}

/// glibc's `request2size`: the chunk size a heap request of `req` bytes gets (the request plus
/// the size field, rounded up to `MALLOC_ALIGNMENT`, at least `MINSIZE`).
pub fn request2size(req: usize) -> usize {
    let n = align_up(req.saturating_add(SIZE_SZ), MALLOC_ALIGNMENT);
    n.max(MINSIZE)
}

/// glibc's `sysmalloc_mmap` length: the heap chunk size plus one more `SIZE_SZ` (an mmapped
/// chunk has no next chunk whose `prev_size` it could borrow), rounded up to whole pages.
pub fn mmap_len(req: usize, page: usize) -> usize {
    align_up(request2size(req) + SIZE_SZ, page)
}

/// The bits that differ between two tags, as bit numbers.
pub fn changed_bits(before: Tag, after: Tag) -> Vec<u32> {
    let x = before.0 ^ after.0;
    (0..64).filter(|b| x >> b & 1 == 1).collect()
}

/// Writes `prefix` followed by `n` in decimal into `buf` without allocating; returns the bytes.
pub fn fmt_marker<'a>(buf: &'a mut [u8; 48], prefix: &[u8], n: usize) -> &'a [u8] {
    let mut len = prefix.len().min(24);
    buf[..len].copy_from_slice(&prefix[..len]);
    let mut digits = [0u8; 20];
    let mut d = 0;
    let mut v = n;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[len] = digits[d];
        len += 1;
    }
    &buf[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_heap_and_mmap_tags() {
        let heap = Tag(0x91);
        assert_eq!(heap.chunk_size(), 0x90);
        assert!(heap.prev_inuse() && !heap.is_mmapped() && !heap.non_main_arena());
        assert_eq!(heap.flag_names(), "PREV_INUSE");
        let mapped = Tag(0x21002);
        assert_eq!(mapped.chunk_size(), 0x21000);
        assert!(!mapped.prev_inuse() && mapped.is_mmapped());
        assert_eq!(mapped.flag_names(), "IS_MMAPPED");
        assert_eq!(Tag(0x35).flag_names(), "PREV_INUSE | NON_MAIN_ARENA");
        assert_eq!(Tag(0x30).flag_names(), "-");
    }

    #[test]
    fn request2size_matches_glibc_table() {
        // malloc.c: "request2size": 0..24 -> 32, 25..40 -> 48, and so on.
        assert_eq!(request2size(0), 32);
        assert_eq!(request2size(24), 32);
        assert_eq!(request2size(25), 48);
        assert_eq!(request2size(40), 48);
        assert_eq!(request2size(41), 64);
        assert_eq!(request2size(131048), 131056);
        assert_eq!(request2size(131049), 131072);
    }

    #[test]
    fn mmap_len_adds_a_word_then_rounds_to_pages() {
        assert_eq!(mmap_len(131072, 4096), 135168);
        assert_eq!(
            mmap_len(135152, 4096),
            139264,
            "nb + 8 spills into a new page"
        );
        assert_eq!(mmap_len(135144, 4096), 135168);
        assert_eq!(mmap_len(1 << 20, 4096), (1 << 20) + 4096);
    }

    #[test]
    fn changed_bits_and_markers() {
        assert_eq!(changed_bits(Tag(0x21), Tag(0x20)), vec![0]);
        assert!(changed_bits(Tag(0x21), Tag(0x21)).is_empty());
        let mut buf = [0u8; 48];
        assert_eq!(fmt_marker(&mut buf, b"malloc ", 131072), b"malloc 131072");
        assert_eq!(fmt_marker(&mut buf, b"m ", 0), b"m 0");
        assert_eq!(align_up(1, 4096), 4096);
        assert_eq!(align_up(4096, 4096), 4096);
    }
}
