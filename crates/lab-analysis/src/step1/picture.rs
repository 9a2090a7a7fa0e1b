//! The data of step 1's pictures, built from the [`Findings`] (xtask draws them): request
//! against chunk size and mmap length with the threshold marked, what `tcache_count=0`
//! changed in free-bit, and a second thread's heap inside its reservation.

use super::analyze::{FreedInto, LargeMalloc, LargeMallocOutcome, SyscallMade};
use super::wire::parse_hex;
use super::Findings;

/// Step 1's picture data: the chunk chart when the sweep ran, the free-bit comparison when both
/// free-bit runs did; none when the probe refused a malloc that is not glibc's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pictures {
    pub chunks: Option<ChunksPicture>,
    pub free_bit: Option<FreeBitPicture>,
    pub thread_heap: Option<ThreadHeapPicture>,
}

/// The picture data of these findings.
pub fn pictures(f: &Findings) -> Pictures {
    if f.foreign_allocator.is_some() {
        return Pictures::default();
    }
    Pictures {
        chunks: ChunksPicture::from_findings(f),
        free_bit: FreeBitPicture::from_findings(f),
        thread_heap: ThreadHeapPicture::from_findings(f),
    }
}

/// A thread arena's heap: the read-write part in use at the start of its reservation, the
/// `PROT_NONE` rest after it, and whether each thread's chunk had NON_MAIN_ARENA.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadHeapPicture {
    pub start: u64,
    pub rw_bytes: u64,
    pub reservation_bytes: u64,
    pub a_bit_thread: bool,
    pub a_bit_main: bool,
}

impl ThreadHeapPicture {
    pub fn from_findings(f: &Findings) -> Option<ThreadHeapPicture> {
        let t = f.thread_arena.as_ref()?;
        let (start, end) = t.heap_mapping.as_deref()?.split_once('-')?;
        let (start, end) = (parse_hex(start)?, parse_hex(end)?);
        Some(ThreadHeapPicture {
            start,
            rw_bytes: end.checked_sub(start)?,
            reservation_bytes: t.heap_reservation_bytes?,
            a_bit_thread: t.a_bit_thread,
            a_bit_main: t.a_bit_main,
        })
    }
}

/// One allocation of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    pub request: u64,
    pub chunk_size: u64,
    pub mmapped: bool,
    /// The length of the mmap call paired with it.
    pub mmap_len: Option<u64>,
}

/// Request size against chunk size and mmap length, the threshold marked.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunksPicture {
    pub rows: Vec<ChunkRow>,
    /// Rows in neither [heap] nor an mmap region (not drawn).
    pub skipped: usize,
    pub threshold_request: Option<u64>,
    pub threshold_chunk_size: Option<u64>,
}

impl ChunksPicture {
    pub fn from_findings(f: &Findings) -> Option<ChunksPicture> {
        let sweep = f.sweep.as_ref()?;
        let rows: Vec<ChunkRow> = sweep
            .rows
            .iter()
            .filter(|r| r.region == "heap" || r.region == "mmap")
            .map(|r| ChunkRow {
                request: r.request,
                chunk_size: r.chunk_size,
                mmapped: r.region == "mmap",
                mmap_len: match r.syscall {
                    SyscallMade::Mmap { length, .. } => Some(length),
                    _ => None,
                },
            })
            .collect();
        Some(ChunksPicture {
            skipped: sweep.rows.len() - rows.len(),
            rows,
            threshold_request: f.threshold_request,
            threshold_chunk_size: f.threshold_chunk_size,
        })
    }
}

/// One request of free-bit, in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct FreeBitColumn {
    pub request: u64,
    pub chunk_size: u64,
    /// The large request made after free(A), for the course's "malloc 10000 bytes after it";
    /// the dots then show A's bit after that malloc.
    pub then_malloc: Option<u64>,
    /// (bit changed, where A went) with the tcache and without it.
    pub default: (bool, FreedInto),
    pub no_tcache: (bool, FreedInto),
}

impl FreeBitColumn {
    /// The column's label: the request and its chunk, or the request and the malloc after it.
    pub fn label(&self) -> String {
        match self.then_malloc {
            Some(m) => format!("{} + {m}", self.request),
            None => format!("{} ({})", self.request, self.chunk_size),
        }
    }
}

/// A's bit once the large malloc has run, and where A was then.
fn after_large_malloc(l: &LargeMalloc) -> (bool, FreedInto) {
    match l.outcome {
        LargeMallocOutcome::ClearedByMalloc => (true, FreedInto::Bin),
        LargeMallocOutcome::ClearedByFree => (true, l.freed_into),
        LargeMallocOutcome::StillInUse | LargeMallocOutcome::Unclear => (false, l.freed_into),
    }
}

/// free-bit with and without the tcache: which frees cleared the in-use bit.
#[derive(Debug, Clone, PartialEq)]
pub struct FreeBitPicture {
    pub tunables: String,
    pub columns: Vec<FreeBitColumn>,
}

impl FreeBitPicture {
    pub fn from_findings(f: &Findings) -> Option<FreeBitPicture> {
        let c = f.tcache_comparison.as_ref()?;
        let mut columns: Vec<FreeBitColumn> = c
            .sizes
            .iter()
            .map(|s| FreeBitColumn {
                request: s.request,
                chunk_size: s.chunk_size,
                then_malloc: None,
                default: (s.default_changed, s.default_into),
                no_tcache: (s.no_tcache_changed, s.no_tcache_into),
            })
            .collect();
        if let (Some(d), Some(n)) = (&f.free_bit, &f.free_bit_no_tcache) {
            let (d, n) = (&d.large_malloc, &n.large_malloc);
            columns.push(FreeBitColumn {
                request: d.request,
                chunk_size: d.chunk_size,
                then_malloc: Some(d.large_request),
                default: after_large_malloc(d),
                no_tcache: after_large_malloc(n),
            });
        }
        Some(FreeBitPicture {
            tunables: c.tunables.clone(),
            columns,
        })
    }
}
