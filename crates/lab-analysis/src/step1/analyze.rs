//! Evidence → Findings, with no I/O: which bit is which, where the switch is, what each malloc
//! asked the kernel for, and what `tcache_count=0` changed. Every number here comes from a tag,
//! a region, a strace line or a probe's bisection in the [`Evidence`]; glibc's arithmetic is
//! used only to check the measurements, never to produce them.

use anyhow::Context as _;
use lab_trace::markers::{self, Segment};
use serde::Serialize;

use super::allocator::{self, AllocatorFindings};
use super::unmeasured::{self, NotMeasured};
use super::wire::{
    self, parse_hex, Allocations, Fastbins, FreeAttempt, FreeBitReport, LargeMallocAttempt,
    ThresholdReport,
};
use super::{EnvVar, Evidence, FailedRun, Outcome, Run, Traced};

/// The tunable that sets glibc's mmap threshold (mallopt(3) `M_MMAP_THRESHOLD`). Set through
/// `GLIBC_TUNABLES` because that wins over `MALLOC_MMAP_THRESHOLD_` (and a later entry of
/// `GLIBC_TUNABLES` over an earlier one), so the setting holds whatever the environment has.
pub const MMAP_THRESHOLD_TUNABLE: &str = "glibc.malloc.mmap_threshold";

/// The value `GLIBC_TUNABLES=tunables` gives `name` (its last entry), if any.
pub fn tunable_value<'a>(tunables: &'a str, name: &str) -> Option<&'a str> {
    tunables
        .split(':')
        .filter_map(|t| t.split_once('='))
        .rfind(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Chunk sizes step by this many bytes (glibc's MALLOC_ALIGNMENT on x86-64): the next chunk size
/// after a heap chunk of `s` bytes is `s + 16`.
pub const CHUNK_STEP: u64 = 16;

/// The three flag bits of a size field.
pub const FLAG_NAMES: [&str; 3] = ["PREV_INUSE", "IS_MMAPPED", "NON_MAIN_ARENA"];

/// What step 1's evidence establishes.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    /// Which malloc the probe read (glibc version, the object malloc came from, page size).
    pub glibc: Option<wire::Allocator>,
    /// The probe's refusal of a malloc that is not glibc's; then nothing else is known.
    pub foreign_allocator: Option<String>,
    /// The bit of the NEXT chunk's tag that says whether a chunk is in use (1) or free (0).
    pub prev_inuse_bit: Option<u32>,
    /// The bit set exactly in the chunks /proc/self/maps places in an mmap region.
    pub is_mmapped_bit: Option<u32>,
    /// The smallest request malloc served with mmap while the heap had no free space for it.
    pub threshold_request: Option<u64>,
    /// The smallest chunk size malloc served with mmap.
    pub threshold_chunk_size: Option<u64>,
    /// The traced sweep: every request with the system call it caused.
    pub sweep: Option<Sweep>,
    /// The x → L pairs: each mmapped request of the sweep and the page edge, with its length.
    pub mmap_lengths: Vec<MmapLength>,
    /// How L follows from x, checked on every pair.
    pub formula: Option<Formula>,
    /// Two requests 8 bytes apart at a page edge.
    pub page_edge: Option<PageEdge>,
    /// `free-bit` as the environment had it.
    pub free_bit: Option<FreeBit>,
    /// `free-bit` under `glibc.malloc.tcache_count=0`.
    pub free_bit_no_tcache: Option<FreeBit>,
    /// What `tcache_count=0` changed, size by size.
    pub tcache_comparison: Option<TcacheComparison>,
    /// What blurs the threshold: the top chunk, heap growth, the dynamic threshold, a setting.
    pub threshold_effects: Option<ThresholdEffects>,
    /// `--allocator PATH`: where that allocator starts asking the kernel for each request.
    pub allocator: Option<AllocatorFindings>,
    /// A second thread's chunk: NON_MAIN_ARENA and its arena's heap (`null`: not measured).
    pub thread_arena: Option<wire::ThreadArenaFindings>,
    /// The probe runs that failed, each as one line saying why (absent when none did).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_runs: Vec<String>,
    /// The questions (1.1–1.4) this run could not answer, each with its measured reason
    /// (absent when every question was answered, or the probe refused this malloc).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_measured: Vec<NotMeasured>,
}

impl Findings {
    /// Why `question` (`1.1` … `1.4`) has no answer in this run, if it has none for a measured
    /// reason.
    pub fn not_measured(&self, question: &str) -> Option<&str> {
        self.not_measured
            .iter()
            .find(|n| n.question == question)
            .map(|n| n.reason.as_str())
    }
}

/// The traced sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    pub rows: Vec<SweepRow>,
    pub heap_rows: usize,
    pub mmap_rows: usize,
    /// Low bits (0–2) whose value equals "region is mmap" in every row.
    pub bits_following_region: Vec<u32>,
    pub largest_heap_request: Option<u64>,
    pub smallest_mmap_request: Option<u64>,
    /// Rows whose malloc moved the program break with brk.
    pub brk_rows: usize,
    /// Rows in an mmap region with no anonymous mmap paired to them (unexpected).
    pub unpaired_mmap_rows: usize,
    /// One marker line, to show how the pairing works.
    pub marker_example: Option<String>,
}

/// One malloc of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    pub request: u64,
    /// "heap" or "mmap", from /proc/self/maps.
    pub region: String,
    pub tag: u64,
    pub chunk_size: u64,
    pub address: u64,
    pub syscall: SyscallMade,
    /// The raw strace lines between this malloc's marker and the next.
    pub calls: Vec<String>,
}

/// The system call a malloc made, from the trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SyscallMade {
    /// An anonymous mmap whose mapping holds the returned block.
    Mmap {
        length: u64,
        start: u64,
        raw: String,
    },
    /// brk moved the program break by `growth` bytes.
    Brk { growth: u64 },
    /// No system call: the heap had room.
    None,
}

/// One request x and the length L malloc asked mmap for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MmapLength {
    pub request: u64,
    pub length: u64,
    /// L - x.
    pub overhead: u64,
    /// glibc's `align_up(align_up(x + 8, 16) + 8, page)`, for checking.
    pub formula_length: u64,
    /// The length the chunk's own header records (prev_size + size), if the probe read it.
    pub tag_length: Option<u64>,
    /// The returned pointer minus the mapping's start.
    pub pointer_offset: u64,
    /// The strace line.
    pub raw: String,
}

/// How L follows from x, over every pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Formula {
    pub mmaps: usize,
    pub page_size: u64,
    /// Pairs where L = glibc's formula.
    pub formula_holds: usize,
    /// Pairs where the chunk header records L too.
    pub tag_agrees: usize,
    /// Pairs where the pointer is 16 bytes past the mapping's start.
    pub pointer_16: usize,
    pub overhead_min: u64,
    pub overhead_max: u64,
    /// Pairs where L = x.
    pub length_is_request: usize,
    /// Every pair satisfies L = the smallest multiple of the page ≥ x + h for each h with
    /// `lo < h ≤ hi`: the bytes malloc adds to x, pinned down by the measurements alone.
    pub added_bytes: Option<(u64, u64)>,
}

/// The page edge: the extra word of an mmapped chunk, seen as one more page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageEdge {
    pub below: EdgeAlloc,
    pub above: EdgeAlloc,
    pub page_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeAlloc {
    pub request: u64,
    pub region: String,
    /// The paired mmap's length, if it was mmapped.
    pub length: Option<u64>,
    pub raw: Option<String>,
}

/// One `free-bit` run.
#[derive(Debug, Clone, Serialize)]
pub struct FreeBit {
    /// `GLIBC_TUNABLES` as this run had it.
    pub tunables: Option<String>,
    pub attempts: Vec<Freed>,
    /// The one bit that changed (1 → 0) in B's tag whenever freeing A changed anything.
    pub prev_inuse_bit: Option<u32>,
    /// The first request whose free changed B's tag, and its chunk size.
    pub first_change: Option<(u64, u64)>,
    /// The largest chunk freed, before that one, without any change.
    pub largest_silent_chunk: Option<u64>,
    /// Frees after which A's own tag was the same.
    pub own_tag_unchanged: usize,
    /// A's second word after the free when every silent free left the same value there (the
    /// tcache's key) and there were at least two.
    pub shared_second_word: Option<String>,
    /// The course's "malloc 10000 bytes after it": a small A freed, then a large malloc.
    pub large_malloc: LargeMalloc,
}

/// A small chunk A freed, then one large malloc, with B (A's neighbour) reread after each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LargeMalloc {
    pub request: u64,
    pub chunk_size: u64,
    pub large_request: u64,
    /// Where the large block landed ("heap" or "mmap", from /proc/self/maps).
    pub large_region: String,
    /// Where free put A, judged from what it wrote into A (as for every attempt).
    pub freed_into: FreedInto,
    /// B's tag while A was in use, after free(A), after the large malloc.
    pub tag_b: [u64; 3],
    pub changed_by_free: Vec<u32>,
    pub changed_by_malloc: Vec<u32>,
    /// B's prev_size after the large malloc, and whether it is A's chunk size.
    pub prev_size_after_malloc: u64,
    pub prev_size_is_a_after_malloc: bool,
    /// Free chunks in the fastbins (mallinfo2) before free(A), after it, after the malloc.
    pub fastbin_chunks: Option<[u64; 3]>,
    /// The fastbins held chunks after free(A) and none after the large malloc.
    pub fastbins_emptied_by_malloc: Option<bool>,
    /// A's two words were the same after the large malloc as after free(A).
    pub a_untouched_by_malloc: bool,
    /// A's second word after the large malloc, and what it points into.
    pub second_word_after_malloc: String,
    pub second_word_after_malloc_points_into: String,
    /// What happened to A's in-use bit (the run's in-use bit, from the attempts).
    pub outcome: LargeMallocOutcome,
}

/// What happened to A's in-use bit (in B's tag) through free(A) and the large malloc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LargeMallocOutcome {
    /// free(A) left it set and the large malloc cleared it (and changed nothing else in B).
    ClearedByMalloc,
    /// Set after free(A) and still set after the large malloc: B's tag did not change.
    StillInUse,
    /// free(A) already cleared it.
    ClearedByFree,
    /// Anything else, or no in-use bit was found in this run.
    Unclear,
}

/// One free of `free-bit`, read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Freed {
    pub request: u64,
    pub chunk_size: u64,
    pub tag_b_before: u64,
    pub tag_b_after: u64,
    pub b_changed_bits: Vec<u32>,
    /// B's prev_size holds A's chunk size after the free (glibc writes it for a free chunk).
    pub prev_size_written: bool,
    pub freed_into: FreedInto,
    /// A's second word after the free, and what it points into.
    pub second_word_after: String,
    pub second_word_points_into: String,
}

/// Where free() put A, judged from what it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FreedInto {
    /// A real bin: A's in-use bit (in B's tag) was cleared.
    Bin,
    /// No bit changed, and free wrote A's second word (the tcache entry's key).
    Tcache,
    /// No bit changed, and free wrote only A's first word (the fastbin's fd link).
    Fastbin,
    /// None of the above.
    Unclear,
}

/// `free-bit` with and without the tcache, size by size.
#[derive(Debug, Clone, Serialize)]
pub struct TcacheComparison {
    /// `GLIBC_TUNABLES` of the run without the tcache.
    pub tunables: String,
    /// `GLIBC_TUNABLES` of the default run (the inherited environment), if set.
    pub baseline_tunables: Option<String>,
    pub sizes: Vec<SizeComparison>,
    /// Requests whose free changed the in-use bit only without the tcache.
    pub now_change: Vec<u64>,
    /// Requests whose free changed it in neither run.
    pub still_silent: Vec<u64>,
    /// Where free put those still-silent chunks without the tcache.
    pub still_silent_into: Vec<FreedInto>,
    /// Requests whose free changed it in both runs.
    pub change_in_both: Vec<u64>,
    /// Some free of the default run went to the tcache (it was on there).
    pub default_used_tcache: bool,
    /// Requests whose free changed it only with the tcache (unexpected).
    pub stopped_changing: Vec<u64>,
    /// The course's hint: freeing a 1000-byte request, in both runs.
    pub free_1000: Option<SizeComparison>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SizeComparison {
    pub request: u64,
    pub chunk_size: u64,
    pub default_changed: bool,
    pub default_into: FreedInto,
    pub no_tcache_changed: bool,
    pub no_tcache_into: FreedInto,
    /// B's tag before → after the free, without the tcache.
    pub no_tcache_tag_b: (u64, u64),
}

/// What blurs the threshold, from the `threshold` runs.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdEffects {
    /// Probes of the bisection (fresh processes, top chunk drained).
    pub probes: usize,
    /// Every heap probe's request was below every mmap probe's.
    pub consistent: bool,
    pub top_after_drain: Option<u64>,
    pub largest_heap_request: Option<u64>,
    pub largest_heap_chunk_size: Option<u64>,
    /// The probes within 64 bytes of the threshold.
    pub near: Vec<ProbeRow>,
    pub with_room: WithRoom,
    pub dynamic: DynamicThreshold,
    /// The environment setting that fixed the threshold, as the probe saw it.
    pub explicit_setting: Option<String>,
    /// The run with `glibc.malloc.mmap_threshold` set (`null`: it failed).
    pub tuned: Option<Tuned>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeRow {
    pub request: u64,
    pub top: Option<u64>,
    pub region: String,
    pub tag: String,
    pub chunk_size: u64,
    pub brk_growth: u64,
}

/// The threshold request right after a heap growth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithRoom {
    pub grow_request: Option<u64>,
    pub grow_chunk_size: Option<u64>,
    pub grow_brk_growth: Option<u64>,
    pub top_after_growth: Option<u64>,
    pub request: u64,
    pub region: String,
    pub chunk_size: u64,
}

/// After freeing an mmapped block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DynamicThreshold {
    pub freed_request: u64,
    /// The mapping's length when the block freed first was mmapped (`None`: it was not, or the
    /// probe recorded none).
    pub freed_mapped_length: Option<u64>,
    /// Where the block freed first lay (`heap`, `mmap`; `None`: the probe recorded none).
    pub freed_region: Option<String>,
    /// Where the threshold request landed after the free.
    pub region_after_free: String,
    pub new_threshold_request: u64,
    pub new_threshold_chunk_size: u64,
    pub moved: bool,
    /// The new threshold chunk size is exactly the freed mapping's length.
    pub raised_to_freed_length: bool,
}

/// The threshold found with `glibc.malloc.mmap_threshold` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tuned {
    /// `GLIBC_TUNABLES` as the run had it.
    pub tunables: Option<String>,
    /// The mmap_threshold it set.
    pub setting: Option<u64>,
    pub threshold_request: u64,
    pub threshold_chunk_size: u64,
    /// The chunk size found is the setting.
    pub follows: bool,
}

pub fn analyze(evidence: &Evidence) -> anyhow::Result<Findings> {
    let beyond = Beyond {
        allocator: evidence
            .allocator
            .as_ref()
            .map(allocator::analyze)
            .transpose()
            .context("cannot read the allocator's ladder")?,
        thread_arena: evidence
            .thread_arena
            .as_ref()
            .map(|r| r.doc.findings.clone()),
    };
    let m = match &evidence.outcome {
        Outcome::Refused(r) => return Ok(refused(&r.error, beyond)),
        Outcome::Measured(m) => m,
    };
    let page = (m.sweep.doc.allocator.page_size as u64).max(1);
    let sweep = sweep(&m.sweep, page).context("cannot pair the sweep's mallocs with the trace")?;
    let edge = match &m.page_edge {
        Some(run) => page_edge(run, page).context("cannot pair the page-edge mallocs")?,
        None => None,
    };
    let mut mmap_lengths = mmap_lengths_of(&m.sweep, page)?;
    if let Some(run) = &m.page_edge {
        mmap_lengths.extend(mmap_lengths_of(run, page)?);
    }
    let read_free_bit = |run: &Option<Run<FreeBitReport>>| {
        run.as_ref()
            .map(|r| free_bit_run(r, &evidence.environment))
            .transpose()
    };
    let free_bit = read_free_bit(&m.free_bit)?;
    let free_bit_no_tcache = read_free_bit(&m.free_bit_no_tcache)?;
    let (threshold_request, threshold_chunk_size, effects) = match &m.threshold {
        Some(run) => {
            let (r, c, e) = threshold(run, m.tuned_threshold.as_ref());
            (r, c, Some(e))
        }
        None => (None, None, None),
    };
    let formula = formula(&mmap_lengths, page);
    let not_measured = not_measured(
        evidence,
        &sweep,
        free_bit.is_none(),
        effects.is_none(),
        formula.is_none(),
    );
    Ok(Findings {
        glibc: Some(m.sweep.doc.allocator.clone()),
        foreign_allocator: None,
        // The default run's in-use bit; the course's run (no tcache) when only it ran.
        prev_inuse_bit: free_bit
            .as_ref()
            .or(free_bit_no_tcache.as_ref())
            .and_then(|fb| fb.prev_inuse_bit),
        is_mmapped_bit: match sweep.bits_following_region.as_slice() {
            [b] if sweep.heap_rows > 0 && sweep.mmap_rows > 0 => Some(*b),
            _ => None,
        },
        threshold_request,
        threshold_chunk_size,
        formula,
        mmap_lengths,
        page_edge: edge,
        tcache_comparison: match (&free_bit, &free_bit_no_tcache) {
            (Some(d), Some(n)) => Some(compare(d, n)),
            _ => None,
        },
        free_bit,
        free_bit_no_tcache,
        threshold_effects: effects,
        sweep: Some(sweep),
        allocator: beyond.allocator,
        thread_arena: beyond.thread_arena,
        failed_runs: evidence
            .failed
            .iter()
            .map(|f| unmeasured::why_failed(f, &evidence.environment, evidence.address_space_limit))
            .collect(),
        not_measured,
    })
}

/// The questions a failed run or a one-sided sweep left without an answer, each with why.
fn not_measured(
    evidence: &Evidence,
    sweep: &Sweep,
    no_free_bit: bool,
    no_threshold: bool,
    no_length: bool,
) -> Vec<NotMeasured> {
    let (env, limit) = (&evidence.environment, evidence.address_space_limit);
    // The run of `what` in the inherited environment (not the tuned or no-tcache one) that failed.
    let failed = |what: &str| -> Option<&FailedRun> {
        evidence
            .failed
            .iter()
            .find(|f| f.subcommand() == what && f.env.is_empty())
            .or_else(|| evidence.failed.iter().find(|f| f.subcommand() == what))
    };
    let why_failed = |what: &str| failed(what).map(|f| unmeasured::why_failed(f, env, limit));
    let largest = sweep.rows.iter().map(|r| r.request).max().unwrap_or(0);
    let no_mmap = || unmeasured::why_no_mmap(largest, &evidence.failed, env, limit);
    let mut out = Vec::new();
    let mut add = |question: &str, reason: Option<String>| {
        if let Some(reason) = reason {
            out.push(NotMeasured {
                question: question.into(),
                reason,
            });
        }
    };
    if no_free_bit {
        add("1.1", why_failed("free-bit"));
    }
    // A sweep that merely ended below a measured threshold keeps its own answer (it points to
    // 1.3's probes); with no threshold either, mmap was never seen at all.
    if sweep.mmap_rows == 0 && no_threshold {
        add(
            "1.2",
            Some(format!("{}: no mmapped chunk's tag to compare", no_mmap())),
        );
    }
    if no_threshold {
        add("1.3", why_failed("threshold"));
    }
    if no_length {
        let reason = if sweep.mmap_rows == 0 {
            Some(format!("{}: no mmap length to compare with x", no_mmap()))
        } else {
            why_failed("alloc")
        };
        add("1.4", reason);
    }
    out
}

/// What step 1 measures beyond glibc's main arena, when it was measured.
struct Beyond {
    allocator: Option<AllocatorFindings>,
    thread_arena: Option<wire::ThreadArenaFindings>,
}

fn refused(error: &str, beyond: Beyond) -> Findings {
    Findings {
        glibc: None,
        allocator: beyond.allocator,
        thread_arena: beyond.thread_arena,
        foreign_allocator: Some(error.to_string()),
        prev_inuse_bit: None,
        is_mmapped_bit: None,
        threshold_request: None,
        threshold_chunk_size: None,
        sweep: None,
        mmap_lengths: Vec::new(),
        formula: None,
        page_edge: None,
        free_bit: None,
        free_bit_no_tcache: None,
        tcache_comparison: None,
        threshold_effects: None,
        failed_runs: Vec::new(),
        not_measured: Vec::new(),
    }
}

/// The `malloc N` segments of a traced run, one per allocation, checked against the document.
fn malloc_segments<D: Allocations>(run: &Traced<D>) -> anyhow::Result<Vec<Segment>> {
    let segs: Vec<Segment> = markers::segments(&run.trace.calls, &["brk", "mmap", "munmap"])
        .into_iter()
        .filter(|s| s.word == "malloc")
        .collect();
    let rows = run.doc.allocations();
    if segs.len() != rows.len() {
        anyhow::bail!(
            "the trace has {} malloc markers but the probe made {} allocations",
            segs.len(),
            rows.len()
        );
    }
    if let Some((s, r)) = segs.iter().zip(rows).find(|(s, r)| s.n != r.request as u64) {
        anyhow::bail!(
            "marker `malloc {}` stands where allocation {} was made: the trace is out of order",
            s.n,
            r.request
        );
    }
    Ok(segs)
}

/// The mmap that holds a row's block: an anonymous mapping starting less than a page before it.
fn paired_mmap<'a>(seg: &'a Segment, row: &wire::Row, page: u64) -> Option<&'a lab_trace::Syscall> {
    seg.anonymous_mmap_before(parse_hex(&row.address)?, page)
}

fn sweep(run: &Traced<wire::SweepReport>, page: u64) -> anyhow::Result<Sweep> {
    let segs = malloc_segments(run)?;
    let rows: Vec<SweepRow> = run
        .doc
        .allocations
        .iter()
        .zip(&segs)
        .map(|(row, seg)| sweep_row(row, seg, page))
        .collect::<anyhow::Result<_>>()?;
    let requests = |name: &'static str| {
        rows.iter()
            .filter(move |r| r.region == name)
            .map(|r| r.request)
    };
    let heap_rows = requests("heap").count();
    let mmap_rows = requests("mmap").count();
    let classified = || {
        rows.iter()
            .filter(|r| r.region == "heap" || r.region == "mmap")
    };
    let bits_following_region = (0..3)
        .filter(|&b| classified().all(|r| (r.tag >> b) & 1 == u64::from(r.region == "mmap")))
        .collect();
    Ok(Sweep {
        heap_rows,
        mmap_rows,
        bits_following_region,
        largest_heap_request: requests("heap").max(),
        smallest_mmap_request: requests("mmap").min(),
        brk_rows: rows
            .iter()
            .filter(|r| matches!(r.syscall, SyscallMade::Brk { .. }))
            .count(),
        unpaired_mmap_rows: rows
            .iter()
            .filter(|r| r.region == "mmap" && !matches!(r.syscall, SyscallMade::Mmap { .. }))
            .count(),
        marker_example: run
            .trace
            .calls
            .iter()
            .find(|c| markers::marker(c).is_some())
            .map(|c| c.raw.clone()),
        rows,
    })
}

fn sweep_row(row: &wire::Row, seg: &Segment, page: u64) -> anyhow::Result<SweepRow> {
    let address = parse_hex(&row.address).with_context(|| {
        format!(
            "address {:?} of malloc({}) is not hex",
            row.address, row.request
        )
    })?;
    let tag = parse_hex(&row.tag)
        .with_context(|| format!("tag {:?} of malloc({}) is not hex", row.tag, row.request))?;
    let request = row.request as u64;
    let syscall = match paired_mmap(seg, row, page) {
        Some(m) => SyscallMade::Mmap {
            length: m.arg_u64(1).context("an mmap without a length")?,
            start: m.ret_u64().unwrap_or(0),
            raw: m.raw.clone(),
        },
        None if seg.brk_growth() > 0 => SyscallMade::Brk {
            growth: seg.brk_growth(),
        },
        None => SyscallMade::None,
    };
    Ok(SweepRow {
        request,
        region: row.region.clone(),
        tag,
        chunk_size: row.chunk_size,
        address,
        syscall,
        calls: seg.calls.iter().map(|c| c.raw.clone()).collect(),
    })
}

/// glibc's mmapped chunk length for a request: `align_up(align_up(x + 8, 16) + 8, page)`
/// (`sysmalloc` in malloc.c). Used to check the measured lengths, never to produce them.
pub fn glibc_mmap_len(x: u64, page: u64) -> u64 {
    let chunk = ((x + 8 + 15) & !15).max(32);
    (chunk + 8).div_ceil(page) * page
}

/// The x → L pairs of a traced run: every allocation paired with an anonymous mmap.
pub fn mmap_lengths_of<D: Allocations>(
    run: &Traced<D>,
    page: u64,
) -> anyhow::Result<Vec<MmapLength>> {
    let segs = malloc_segments(run)?;
    let mut out = Vec::new();
    for (row, seg) in run.doc.allocations().iter().zip(&segs) {
        let Some(m) = paired_mmap(seg, row, page) else {
            continue;
        };
        let (Some(length), Some(start), Some(address)) =
            (m.arg_u64(1), m.ret_u64(), parse_hex(&row.address))
        else {
            continue;
        };
        out.push(MmapLength {
            request: row.request as u64,
            length,
            overhead: length.saturating_sub(row.request as u64),
            formula_length: glibc_mmap_len(row.request as u64, page),
            tag_length: row.mapped_length,
            pointer_offset: address - start,
            raw: m.raw.clone(),
        });
    }
    Ok(out)
}

fn formula(pairs: &[MmapLength], page: u64) -> Option<Formula> {
    if pairs.is_empty() {
        return None;
    }
    let count = |f: &dyn Fn(&MmapLength) -> bool| pairs.iter().filter(|p| f(p)).count();
    // L = align_up(x + h, page)  <=>  L - page < x + h <= L  <=>  L - page - x < h <= L - x.
    let lo = pairs
        .iter()
        .map(|p| p.length as i64 - page as i64 - p.request as i64)
        .max()?;
    let hi = pairs
        .iter()
        .map(|p| p.length as i64 - p.request as i64)
        .min()?;
    Some(Formula {
        mmaps: pairs.len(),
        page_size: page,
        formula_holds: count(&|p| p.length == p.formula_length),
        tag_agrees: count(&|p| p.tag_length == Some(p.length)),
        pointer_16: count(&|p| p.pointer_offset == 16),
        overhead_min: pairs.iter().map(|p| p.overhead).min()?,
        overhead_max: pairs.iter().map(|p| p.overhead).max()?,
        length_is_request: count(&|p| p.length == p.request),
        added_bytes: (lo < hi && hi >= 0).then(|| (lo.max(0) as u64, hi as u64)),
    })
}

fn page_edge(run: &Traced<wire::AllocReport>, page: u64) -> anyhow::Result<Option<PageEdge>> {
    let segs = malloc_segments(run)?;
    let allocs: Vec<EdgeAlloc> = run
        .doc
        .allocations
        .iter()
        .zip(&segs)
        .map(|(row, seg)| {
            let m = paired_mmap(seg, row, page);
            EdgeAlloc {
                request: row.request as u64,
                region: row.region.clone(),
                length: m.and_then(|m| m.arg_u64(1)),
                raw: m.map(|m| m.raw.clone()),
            }
        })
        .collect();
    Ok(match <[EdgeAlloc; 2]>::try_from(allocs) {
        Ok([below, above]) => Some(PageEdge {
            below,
            above,
            page_size: page,
        }),
        Err(_) => None,
    })
}

fn tunables(env: &[EnvVar]) -> Option<String> {
    env.iter()
        .rev()
        .find(|v| v.name == "GLIBC_TUNABLES")
        .map(|v| v.value.clone())
}

/// One `free-bit` run: the in-use bit, where the first change came, where each chunk went.
fn free_bit_run(run: &Run<FreeBitReport>, environment: &[EnvVar]) -> anyhow::Result<FreeBit> {
    let attempts: Vec<Freed> = run
        .doc
        .attempts
        .iter()
        .map(freed)
        .collect::<anyhow::Result<_>>()?;
    let changed: Vec<&Freed> = attempts
        .iter()
        .filter(|a| !a.b_changed_bits.is_empty())
        .collect();
    // The in-use bit: the single bit every change cleared (1 -> 0) in B's tag.
    let prev_inuse_bit = match changed.first().map(|a| a.b_changed_bits.as_slice()) {
        Some([b]) => {
            let b = *b;
            changed
                .iter()
                .all(|a| {
                    a.b_changed_bits == [b]
                        && (a.tag_b_before >> b) & 1 == 1
                        && (a.tag_b_after >> b) & 1 == 0
                })
                .then_some(b)
        }
        _ => None,
    };
    let first = attempts.iter().position(|a| !a.b_changed_bits.is_empty());
    let silent = &attempts[..first.unwrap_or(attempts.len())];
    let seconds: Vec<&str> = silent
        .iter()
        .map(|a| a.second_word_after.as_str())
        .collect();
    let shared_second_word = (seconds.len() >= 2 && seconds.iter().all(|w| *w == seconds[0]))
        .then(|| seconds[0].to_string());
    // The run's own GLIBC_TUNABLES replaces the inherited one.
    let env: Vec<EnvVar> = environment.iter().chain(&run.env).cloned().collect();
    Ok(FreeBit {
        large_malloc: large_malloc(&run.doc.large_malloc, prev_inuse_bit)?,
        tunables: tunables(&env),
        prev_inuse_bit,
        first_change: first.map(|i| (attempts[i].request, attempts[i].chunk_size)),
        largest_silent_chunk: silent.iter().map(|a| a.chunk_size).max(),
        own_tag_unchanged: run
            .doc
            .attempts
            .iter()
            .filter(|a| a.tag_a_before == a.tag_a_after)
            .count(),
        shared_second_word,
        attempts,
    })
}

/// Where free put A: a real bin when B's tag changed; else the tcache when free wrote A's
/// second word (the tcache entry's key), a fastbin when it wrote only the first (the fd link).
fn freed_into(b_changed: bool, before: &[String; 2], after: &[String; 2]) -> FreedInto {
    if b_changed {
        FreedInto::Bin
    } else if after[1] != before[1] {
        FreedInto::Tcache
    } else if after[0] != before[0] {
        FreedInto::Fastbin
    } else {
        FreedInto::Unclear
    }
}

fn large_malloc(l: &LargeMallocAttempt, bit: Option<u32>) -> anyhow::Result<LargeMalloc> {
    let hex = |s: &str, what: &str| hex_field(s, what, l.request_a);
    let tag_b = [
        hex(&l.tag_b_before, "tag_b_before")?,
        hex(&l.tag_b_after_free, "tag_b_after_free")?,
        hex(&l.tag_b_after_malloc, "tag_b_after_malloc")?,
    ];
    let set = |tag: u64, b: u32| (tag >> b) & 1 == 1;
    let outcome = match bit {
        Some(b) if set(tag_b[0], b) && !set(tag_b[1], b) => LargeMallocOutcome::ClearedByFree,
        Some(b)
            if set(tag_b[1], b)
                && !set(tag_b[2], b)
                && l.b_changed_bits_by_malloc == [b]
                && l.b_changed_bits_by_free.is_empty() =>
        {
            LargeMallocOutcome::ClearedByMalloc
        }
        Some(b) if set(tag_b[0], b) && tag_b[0] == tag_b[1] && tag_b[1] == tag_b[2] => {
            LargeMallocOutcome::StillInUse
        }
        _ => LargeMallocOutcome::Unclear,
    };
    let chunks = |f: &Option<Fastbins>| f.map(|f| f.chunks as u64);
    let fastbin_chunks = match (
        chunks(&l.fastbins_before_free),
        chunks(&l.fastbins_after_free),
        chunks(&l.fastbins_after_malloc),
    ) {
        (Some(a), Some(b), Some(c)) => Some([a, b, c]),
        _ => None,
    };
    Ok(LargeMalloc {
        request: l.request_a as u64,
        chunk_size: l.chunk_size_a,
        large_request: l.large_request as u64,
        large_region: l.large_region.clone(),
        freed_into: freed_into(
            !l.b_changed_bits_by_free.is_empty(),
            &l.a_words_before,
            &l.a_words_after_free,
        ),
        tag_b,
        changed_by_free: l.b_changed_bits_by_free.clone(),
        changed_by_malloc: l.b_changed_bits_by_malloc.clone(),
        prev_size_after_malloc: hex(&l.b_prev_size_after_malloc, "b_prev_size_after_malloc")?,
        prev_size_is_a_after_malloc: parse_hex(&l.b_prev_size_after_malloc) == Some(l.chunk_size_a),
        fastbins_emptied_by_malloc: fastbin_chunks.map(|[_, free, malloc]| free > 0 && malloc == 0),
        fastbin_chunks,
        a_untouched_by_malloc: l.a_words_after_malloc == l.a_words_after_free,
        second_word_after_malloc: l.a_words_after_malloc[1].clone(),
        second_word_after_malloc_points_into: l.a_word1_after_malloc_points_into.clone(),
        outcome,
    })
}

/// A `0x…` field of free-bit's document; anything else is an error that names it.
fn hex_field(s: &str, what: &str, request: usize) -> anyhow::Result<u64> {
    parse_hex(s).with_context(|| format!("free-bit's {what} {s:?} (malloc({request})) is not hex"))
}

fn freed(a: &FreeAttempt) -> anyhow::Result<Freed> {
    let hex = |s: &str, what: &str| hex_field(s, what, a.request_a);
    let changed = !a.b_changed_bits.is_empty();
    let freed_into = freed_into(changed, &a.a_words_before, &a.a_words_after);
    Ok(Freed {
        request: a.request_a as u64,
        chunk_size: a.chunk_size_a,
        tag_b_before: hex(&a.tag_b_before, "tag_b_before")?,
        tag_b_after: hex(&a.tag_b_after, "tag_b_after")?,
        b_changed_bits: a.b_changed_bits.clone(),
        prev_size_written: parse_hex(&a.b_prev_size_after) == Some(a.chunk_size_a),
        freed_into,
        second_word_after: a.a_words_after[1].clone(),
        second_word_points_into: a.a_word1_points_into.clone(),
    })
}

fn compare(default: &FreeBit, no_tcache: &FreeBit) -> TcacheComparison {
    let sizes: Vec<SizeComparison> = default
        .attempts
        .iter()
        .filter_map(|d| {
            let n = no_tcache.attempts.iter().find(|n| n.request == d.request)?;
            Some(SizeComparison {
                request: d.request,
                chunk_size: d.chunk_size,
                default_changed: !d.b_changed_bits.is_empty(),
                default_into: d.freed_into,
                no_tcache_changed: !n.b_changed_bits.is_empty(),
                no_tcache_into: n.freed_into,
                no_tcache_tag_b: (n.tag_b_before, n.tag_b_after),
            })
        })
        .collect();
    let pick = |f: &dyn Fn(&SizeComparison) -> bool| -> Vec<u64> {
        sizes.iter().filter(|s| f(s)).map(|s| s.request).collect()
    };
    TcacheComparison {
        tunables: no_tcache.tunables.clone().unwrap_or_default(),
        baseline_tunables: default.tunables.clone(),
        now_change: pick(&|s| !s.default_changed && s.no_tcache_changed),
        still_silent: pick(&|s| !s.default_changed && !s.no_tcache_changed),
        still_silent_into: sizes
            .iter()
            .filter(|s| !s.default_changed && !s.no_tcache_changed)
            .map(|s| s.no_tcache_into)
            .collect(),
        change_in_both: pick(&|s| s.default_changed && s.no_tcache_changed),
        default_used_tcache: sizes.iter().any(|s| s.default_into == FreedInto::Tcache),
        stopped_changing: pick(&|s| s.default_changed && !s.no_tcache_changed),
        free_1000: sizes.iter().find(|s| s.request == 1000).cloned(),
        sizes,
    }
}

/// The threshold from the bisection's probes (each in a fresh process with the top chunk
/// drained), and the effects measured beside it.
fn threshold(
    run: &Run<ThresholdReport>,
    tuned_run: Option<&Run<ThresholdReport>>,
) -> (Option<u64>, Option<u64>, ThresholdEffects) {
    let t = &run.doc.threshold;
    let probes = &t.drained_probes;
    let region = |name: &'static str| probes.iter().filter(move |c| c.row.region == name);
    let largest_heap = region("heap").max_by_key(|c| c.row.request);
    let smallest_mmap = region("mmap").map(|c| c.row.request as u64).min();
    let consistent = match (largest_heap, smallest_mmap) {
        (Some(h), Some(m)) => (h.row.request as u64) < m,
        _ => false,
    };
    let (request, chunk) = match (consistent, largest_heap, smallest_mmap) {
        (true, Some(h), Some(m)) => (Some(m), Some(h.row.chunk_size + CHUNK_STEP)),
        _ => (None, None),
    };
    let effects = ThresholdEffects {
        probes: probes.len(),
        consistent,
        top_after_drain: probes
            .iter()
            .find_map(|c| c.drain.as_ref().map(|d| d.top_after)),
        largest_heap_request: largest_heap.map(|h| h.row.request as u64),
        largest_heap_chunk_size: largest_heap.map(|h| h.row.chunk_size),
        near: near(probes, request),
        with_room: with_room(&t.with_room),
        dynamic: dynamic(&t.dynamic, request),
        explicit_setting: t.explicit_setting.clone(),
        tuned: tuned_run.map(tuned),
    };
    (request, chunk, effects)
}

fn near(probes: &[wire::ChildOut], threshold: Option<u64>) -> Vec<ProbeRow> {
    let Some(t) = threshold else {
        return Vec::new();
    };
    probes
        .iter()
        .filter(|c| (c.row.request as u64).abs_diff(t) <= 64)
        .map(|c| ProbeRow {
            request: c.row.request as u64,
            top: c.drain.as_ref().map(|d| d.top_after),
            region: c.row.region.clone(),
            tag: c.row.tag.clone(),
            chunk_size: c.row.chunk_size,
            brk_growth: c.row.brk_growth as u64,
        })
        .collect()
}

fn with_room(w: &wire::ChildOut) -> WithRoom {
    WithRoom {
        grow_request: w.grow.as_ref().map(|g| g.request as u64),
        grow_chunk_size: w.grow.as_ref().map(|g| g.chunk_size),
        grow_brk_growth: w.grow.as_ref().map(|g| g.brk_growth as u64),
        top_after_growth: w.grow.as_ref().and_then(|g| g.top_size),
        request: w.row.request as u64,
        region: w.row.region.clone(),
        chunk_size: w.row.chunk_size,
    }
}

fn dynamic(d: &wire::Dynamic, threshold: Option<u64>) -> DynamicThreshold {
    DynamicThreshold {
        freed_request: d.freed_request as u64,
        freed_mapped_length: d.freed_mapped_length,
        freed_region: d
            .same_request_after_free
            .freed_first
            .as_ref()
            .map(|f| f.region.clone()),
        region_after_free: d.same_request_after_free.row.region.clone(),
        new_threshold_request: d.new_threshold_request as u64,
        new_threshold_chunk_size: d.new_threshold_chunk_size,
        moved: threshold.is_some_and(|t| t != d.new_threshold_request as u64),
        raised_to_freed_length: d.freed_mapped_length == Some(d.new_threshold_chunk_size),
    }
}

fn tuned(run: &Run<ThresholdReport>) -> Tuned {
    let tunables = tunables(&run.env);
    let setting = tunables
        .as_deref()
        .and_then(|t| tunable_value(t, MMAP_THRESHOLD_TUNABLE))
        .and_then(|v| v.parse().ok());
    let t = &run.doc.threshold;
    Tuned {
        tunables,
        setting,
        threshold_request: t.threshold_request as u64,
        threshold_chunk_size: t.threshold_chunk_size,
        follows: setting == Some(t.threshold_chunk_size),
    }
}
