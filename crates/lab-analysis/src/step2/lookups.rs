//! The lab's extension of step 2: random lookups in a `persist` table through one read-only
//! mapping. Builds a sample table (`persist load`), drops it from the page cache (`persist
//! residency --evict`: fsync + `posix_fadvise(POSIX_FADV_DONTNEED)`, since
//! `/proc/sys/vm/drop_caches` needs root), looks random keys up under strace, and reads the
//! residency again: the single mmap of the table's descriptor, no read/pread of it, the page
//! faults the lookups took (getrusage, as `persist` prints it), and how few pages mincore finds
//! resident.
use std::path::Path;

use lab_trace::fds::{self, READ_CALLS};
use serde::{Deserialize, Serialize};

use crate::disktable::sample_kv;
use crate::disktable::traced::TracedRun;
use crate::Block;

use persist::doc::{Got, Loaded};
use persist::Residency;

/// The sample table's file name.
pub const TABLE: &str = "sample.tbl";

/// What the lookups showed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    /// `persist --json load` of the sample entries.
    pub load: Loaded,
    /// `persist --json residency --evict`.
    pub evict: Residency,
    /// The sample entries looked up (their keys and values follow from [`sample_kv`]).
    pub picked: Vec<u64>,
    /// `persist --json get FILE KEY...` under strace, and its document.
    pub get: TracedRun,
    pub got: Got,
    /// `persist --json residency` afterwards.
    pub after: Residency,
}

/// Whether the eviction worked (mincore shows fewer pages resident).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Eviction {
    Fadvise,
    None,
}

/// What the lookups establish.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Findings {
    pub entries: u64,
    pub file_bytes: u64,
    pub lookups: u64,
    /// Keys whose value was not the one loaded.
    pub wrong_values: Vec<String>,
    /// The table's descriptor (openat's result).
    pub fd: Option<i64>,
    pub mmap_calls: usize,
    /// The first mmap's length, protection and flags.
    pub mmap_len: Option<u64>,
    pub mmap_prot: Option<String>,
    pub mmap_flags: Option<String>,
    pub read_calls_on_table_fd: usize,
    /// Reads of other descriptors (the loader reading libraries).
    pub read_calls_elsewhere: usize,
    pub eviction: Eviction,
    pub pages_total: u64,
    /// Resident pages just after loading, after the eviction, and after the lookups.
    pub pages_resident_loaded: u64,
    pub pages_resident_before: u64,
    pub pages_resident_after: u64,
    pub pages_added: u64,
    pub pages_per_lookup: f64,
    pub minor_faults: u64,
    pub major_faults: u64,
    /// Evidence against the design (one mmap, no reads, few pages), if any.
    pub contradictions: Vec<String>,
}

/// Decides, from the evidence alone.
pub fn analyze(e: &Evidence) -> Findings {
    let is_table = |p: &str| Path::new(p).file_name().is_some_and(|n| n == TABLE);
    let calls = fds::file_calls(&e.get.trace.calls, is_table);
    let mmaps: Vec<_> = calls.iter().filter(|c| c.name == "mmap").collect();
    let reads = fds::count(&calls, READ_CALLS);
    let all_reads = e
        .get
        .trace
        .calls
        .iter()
        .filter(|c| READ_CALLS.contains(&c.name.as_str()))
        .count();
    let wrong_values = e
        .picked
        .iter()
        .zip(
            e.got
                .results
                .iter()
                .map(Some)
                .chain(std::iter::repeat(None)),
        )
        .filter(|(&i, got)| got.map(|g| g.value.as_str()) != Some(sample_kv(i).1.as_str()))
        .map(|(&i, _)| sample_kv(i).0)
        .collect();
    let eviction = if e.evict.eviction == "fadvise"
        && e.evict.pages_resident_after < e.evict.pages_resident_before
    {
        Eviction::Fadvise
    } else {
        Eviction::None
    };
    let before = e.evict.pages_resident_after;
    let after = e.after.pages_resident_before;
    let added = after.saturating_sub(before);
    let lookups = e.picked.len() as u64;
    let mut contradictions = Vec::new();
    if mmaps.len() != 1 || reads != 0 {
        contradictions.push(format!(
            "the design says one mmap and no reads; the trace shows {} mmaps and {reads} reads",
            mmaps.len()
        ));
    }
    if eviction == Eviction::Fadvise && e.got.faults.major == 0 {
        contradictions.push(
            "no major fault although the file had been evicted: something else read it back".into(),
        );
    }
    if added > 3 * lookups + 1 {
        contradictions.push(
            "more pages came in than the lookups touch (at most 2 each + the header): \
             read-around was not disabled, or another process read the file"
                .into(),
        );
    }
    let arg = |i: usize| {
        mmaps
            .first()
            .and_then(|m| m.args.get(i))
            .map(|s| s.trim().to_string())
    };
    Findings {
        entries: e.load.stats.entries,
        file_bytes: e.load.stats.file_bytes,
        lookups,
        wrong_values,
        fd: calls.first().and_then(|c| c.ret),
        mmap_calls: mmaps.len(),
        mmap_len: mmaps.first().and_then(|m| m.arg_u64(1)),
        mmap_prot: arg(2),
        mmap_flags: arg(3),
        read_calls_on_table_fd: reads,
        read_calls_elsewhere: all_reads - reads,
        eviction,
        pages_total: e.evict.pages_total,
        pages_resident_loaded: e.evict.pages_resident_before,
        pages_resident_before: before,
        pages_resident_after: after,
        pages_added: added,
        pages_per_lookup: added as f64 / lookups.max(1) as f64,
        minor_faults: e.got.faults.minor,
        major_faults: e.got.faults.major,
        contradictions,
    }
}

/// The narrative.
pub fn explain(f: &Findings, e: &Evidence) -> Vec<Block> {
    let is_table = |p: &str| Path::new(p).file_name().is_some_and(|n| n == TABLE);
    let calls = fds::file_calls(&e.get.trace.calls, is_table);
    let fd = crate::known(f.fd);
    let mut blocks = vec![
        Block::heading("persist: a hash table in a file, looked up through the mapping"),
        Block::text(format!(
            "persist load wrote {} entries: the file is {} bytes ({} KiB). mincore: {} of {} \
             pages resident just after writing; {}",
            f.entries,
            f.file_bytes,
            f.file_bytes / 1024,
            f.pages_resident_loaded,
            f.pages_total,
            match f.eviction {
                Eviction::Fadvise => format!(
                    "fsync + posix_fadvise(POSIX_FADV_DONTNEED) (which evicts one file, as any user \
                     may) left {}.",
                    f.pages_resident_before
                ),
                Eviction::None => format!(
                    "eviction did not work here ({}): {} pages are still resident, so the \
                     lookups find their pages in memory and take minor, not major, faults.",
                    if e.evict.note.is_empty() {
                        "mincore shows no change"
                    } else {
                        &e.evict.note
                    },
                    f.pages_resident_before
                ),
            }
        )),
        Block::raw(
            format!(
                "strace of persist get ({} keys): the table's descriptor and mapping",
                f.lookups
            ),
            calls
                .iter()
                .map(|c| format!("{}\n", c.raw))
                .collect::<String>(),
        ),
        Block::text(format!(
            "=> {} mmap of descriptor {fd}{}, {} read/pread of it (the process made {} reads \
             on other descriptors: the loader reading its libraries).",
            f.mmap_calls,
            match (&f.mmap_len, &f.mmap_prot, &f.mmap_flags) {
                (Some(len), Some(prot), Some(flags)) => format!(" ({len} bytes, {prot}, {flags})"),
                _ => String::new(),
            },
            f.read_calls_on_table_fd,
            f.read_calls_elsewhere
        )),
        Block::raw(
            "persist --json get: faults (getrusage) and residency (mincore)",
            format!(
                "lookups {}\nfaults: minor {}, major {}\npages_total {}\npages_resident_after {}\n",
                e.got.lookups,
                e.got.faults.minor,
                e.got.faults.major,
                e.got.pages_total,
                e.got.pages_resident_after
            ),
        ),
    ];
    for c in &f.contradictions {
        blocks.push(Block::text(format!("!! This contradicts the design: {c}.")));
    }
    if !f.wrong_values.is_empty() {
        blocks.push(Block::text(format!(
            "!! persist get returned wrong values for {:?}",
            f.wrong_values
        )));
    }
    blocks.push(Block::answer(
        "How does `persist get` read the table?",
        format!(
            "Through {} mmap of the whole file ({} bytes) on descriptor {fd}; {} read/pread \
             calls on that descriptor. Values are slices of the mapping ({} of {} looked-up \
             values correct).",
            f.mmap_calls,
            f.file_bytes,
            f.read_calls_on_table_fd,
            f.lookups as usize - f.wrong_values.len(),
            f.lookups
        ),
    ));
    blocks.push(Block::answer(
        "How much of the file did the lookups load?",
        format!(
            "{} lookups in a {}-entry table made {} pages resident ({} before, {} after, of \
             {}: {:.1} pages per lookup; {}); {} major and {} minor faults.",
            f.lookups,
            f.entries,
            f.pages_added,
            f.pages_resident_before,
            f.pages_resident_after,
            f.pages_total,
            f.pages_per_lookup,
            match f.eviction {
                Eviction::Fadvise => "MADV_RANDOM turned read-around off",
                Eviction::None => {
                    "the eviction did not work, so the pages were there already and this does \
                     not show how much the lookups read in"
                }
            },
            f.major_faults,
            f.minor_faults
        ),
    ));
    blocks
}
