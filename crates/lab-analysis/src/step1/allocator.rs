//! Another allocator, judged from strace alone: `malloc-probe --allocator PATH kernel-calls`
//! mallocs a ladder of sizes (several times each) and frees every block, a marker before each
//! call, under `strace -f`. Each malloc's segment of the trace says whether it asked the kernel
//! for memory (an anonymous `mmap`, or `brk` moving the break) and how much; each free's segment
//! says whether the memory went back (`munmap`, `madvise(MADV_DONTNEED|MADV_FREE)`) or was kept.
//! No header, tag or documentation of the allocator is used to decide anything; the documented
//! figure ([`documented`]) is printed beside the measured one as context.
//!
//! The search is coarse, then fine: round 1 doubles the size from 1 KiB to 64 MiB; each later
//! round ([`next_round`]) tries 16 evenly spaced sizes between the last size that did not switch
//! and the first that did, in a fresh process.

use std::collections::BTreeMap;

use lab_trace::markers::{self, Segment};
use lab_trace::Syscall;
use serde::{Deserialize, Serialize};

use super::wire::{parse_hex, KernelCallsReport};
use super::Traced;

/// The system calls an allocator's kernel requests and returns are made of.
pub const KEPT_CALLS: [&str; 5] = ["brk", "mmap", "munmap", "madvise", "mremap"];

/// How many rounds at most (1 coarse, then fine ones), and the finest step a round goes to.
pub const MAX_ROUNDS: usize = 5;
pub const FINEST_STEP: u64 = 16;
/// Sizes tried per fine round.
pub const FINE_SIZES: u64 = 16;

/// What `run-step 1 --allocator PATH` measured: the allocator and each round's traced ladder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllocatorEvidence {
    /// The shared object as given, made absolute.
    pub path: String,
    /// Its name: the SONAME (else the file name) without `lib` and `.so…`.
    pub name: String,
    pub rounds: Vec<Traced<KernelCallsReport>>,
}

/// `findings.allocator` (DESIGN.md, "Beyond glibc's main arena"): exactly these keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllocatorFindings {
    pub path: String,
    pub name: String,
    /// The smallest request for which every one of several mallocs made its own kernel call.
    pub switch_request: Option<u64>,
    /// The call those mallocs made.
    pub syscall: Option<KernelCall>,
    /// For each request at or above the switch: the bytes its kernel call asked for (the median
    /// malloc's, over the repeats).
    pub mapped_per_request: Vec<MappedPerRequest>,
    /// What free did with those blocks.
    pub returned_on_free: Option<Returned>,
    /// The allocator's own documented figure: context, not the answer.
    pub documented: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelCall {
    Mmap,
    Brk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Returned {
    Munmap,
    Madvise,
    Kept,
}

impl Returned {
    pub fn name(self) -> &'static str {
        match self {
            Returned::Munmap => "munmap",
            Returned::Madvise => "madvise",
            Returned::Kept => "kept",
        }
    }
}

impl KernelCall {
    pub fn name(self) -> &'static str {
        match self {
            KernelCall::Mmap => "mmap",
            KernelCall::Brk => "brk",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedPerRequest {
    pub request: u64,
    pub bytes: u64,
}

/// One malloc of a ladder, as the trace shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderCall {
    pub request: u64,
    /// The kernel call it made and the bytes asked for (mmap lengths, or how far brk moved the
    /// break), if any.
    pub call: Option<(KernelCall, u64)>,
    pub returned_null: bool,
    /// What freeing it did (`None`: not freed, malloc returned NULL).
    pub freed: Option<Returned>,
    /// The raw strace lines of its malloc and of its free.
    pub raw: Vec<String>,
}

/// One size of a round: how many of its mallocs made their own kernel call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderStep {
    pub request: u64,
    pub mallocs: usize,
    pub with_call: usize,
    pub nulls: usize,
    pub calls: Vec<LadderCall>,
}

impl LadderStep {
    /// Every malloc of this size made its own kernel call.
    pub fn all_called(&self) -> bool {
        self.mallocs > 0 && self.with_call == self.mallocs
    }
}

/// What one marked malloc asked the kernel for.
fn kernel_call(seg: &Segment) -> Option<(KernelCall, u64)> {
    let mmapped: u64 = seg
        .calls
        .iter()
        .filter(|c| c.name == "mmap" && c.ok() && c.arg_flags(3).contains(&"MAP_ANONYMOUS"))
        .filter_map(|c| c.arg_u64(1))
        .sum();
    if mmapped > 0 {
        return Some((KernelCall::Mmap, mmapped));
    }
    match seg.brk_growth() {
        0 => None,
        grew => Some((KernelCall::Brk, grew)),
    }
}

/// What one marked free gave back.
fn returned(seg: &Segment) -> Returned {
    let ok = |name: &str| seg.calls.iter().any(|c: &Syscall| c.name == name && c.ok());
    let advised = seg.calls.iter().any(|c| {
        c.name == "madvise"
            && c.ok()
            && c.arg_flags(2)
                .iter()
                .any(|f| *f == "MADV_DONTNEED" || *f == "MADV_FREE")
    });
    if ok("munmap") {
        Returned::Munmap
    } else if advised {
        Returned::Madvise
    } else {
        Returned::Kept
    }
}

/// A round's ladder, size by size, from its trace and document. The k-th `malloc N` marker is
/// the k-th malloc of the document; the k-th `free N` marker frees the k-th block that was not
/// NULL.
pub fn ladder(run: &Traced<KernelCallsReport>) -> anyhow::Result<Vec<LadderStep>> {
    let segs = markers::segments(&run.trace.calls, &KEPT_CALLS);
    let mallocs: Vec<&Segment> = segs.iter().filter(|s| s.word == "malloc").collect();
    let frees: Vec<&Segment> = segs.iter().filter(|s| s.word == "free").collect();
    let doc = &run.doc.mallocs;
    if mallocs.len() != doc.len() {
        anyhow::bail!(
            "the trace has {} malloc markers but the probe made {} mallocs",
            mallocs.len(),
            doc.len()
        );
    }
    let mut frees = frees.into_iter();
    let mut steps: Vec<LadderStep> = Vec::new();
    for (seg, m) in mallocs.into_iter().zip(doc) {
        if seg.n != m.request as u64 {
            anyhow::bail!(
                "marker `malloc {}` stands where malloc({}) was made: the trace is out of order",
                seg.n,
                m.request
            );
        }
        let returned_null = m.address.as_deref().and_then(parse_hex).is_none();
        let free = if returned_null { None } else { frees.next() };
        let mut raw: Vec<String> = seg.calls.iter().map(|c| c.raw.clone()).collect();
        raw.extend(
            free.iter()
                .flat_map(|f| f.calls.iter().map(|c| c.raw.clone())),
        );
        let call = LadderCall {
            request: seg.n,
            call: kernel_call(seg),
            returned_null,
            freed: free.map(returned),
            raw,
        };
        match steps.last_mut() {
            Some(s) if s.request == call.request => s.push(call),
            _ => {
                let mut s = LadderStep {
                    request: call.request,
                    mallocs: 0,
                    with_call: 0,
                    nulls: 0,
                    calls: Vec::new(),
                };
                s.push(call);
                steps.push(s);
            }
        }
    }
    Ok(steps)
}

impl LadderStep {
    fn push(&mut self, c: LadderCall) {
        self.mallocs += 1;
        self.with_call += usize::from(c.call.is_some());
        self.nulls += usize::from(c.returned_null);
        self.calls.push(c);
    }
}

/// The switch of one round: the first size from which every size of the round had every malloc
/// make its own kernel call, with the size before it (the bracket a finer round searches).
pub fn round_switch(steps: &[LadderStep]) -> Option<(Option<u64>, u64)> {
    let first = steps
        .iter()
        .rposition(|s| !s.all_called())
        .map_or(0, |i| i + 1);
    let s = steps.get(first)?;
    Some((first.checked_sub(1).map(|i| steps[i].request), s.request))
}

/// The bracket after all rounds: the last size known not to switch (from this round, else from
/// the rounds before) and the switch of the last round that found one.
fn bracket(rounds: &[Vec<LadderStep>]) -> Option<(Option<u64>, u64)> {
    let mut found: Option<(Option<u64>, u64)> = None;
    for r in rounds {
        if let Some((lo, hi)) = round_switch(r) {
            let before = found.and_then(|(lo, _)| lo).filter(|&l| l < hi);
            found = Some((lo.or(before), hi));
        }
    }
    found
}

/// The sizes of the next, finer round, or `None` when the search is done: 16 sizes evenly spaced
/// in (last size without the switch, first size with it], rounded to 16 bytes.
pub fn next_round(rounds: &[Vec<LadderStep>]) -> Option<Vec<u64>> {
    if rounds.len() >= MAX_ROUNDS {
        return None;
    }
    let (Some(lo), hi) = bracket(rounds)? else {
        return None;
    };
    let step = (hi - lo) / FINE_SIZES;
    if step < FINEST_STEP {
        return None;
    }
    let mut sizes: Vec<u64> = (1..=FINE_SIZES)
        .map(|i| (lo + i * step).div_ceil(16) * 16)
        .chain([hi])
        .filter(|&s| s > lo && s <= hi)
        .collect();
    sizes.dedup();
    Some(sizes)
}

/// The switch over all rounds: the last round that found one (a finer round that finds none,
/// against the coarse one, leaves the coarser answer).
fn switch_of(rounds: &[Vec<LadderStep>]) -> Option<u64> {
    bracket(rounds).map(|(_, hi)| hi)
}

/// The allocator's own documented figure, by name: context for the measured answer (the
/// measured one is the answer). Sources: jemalloc(3) `opt.oversize_threshold` and the size
/// classes; gperftools' tcmalloc.html; mimalloc's `include/mimalloc/types.h`; musl's
/// `src/malloc/mallocng/meta.h`.
pub fn documented(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    let text = if n.starts_with("jemalloc") {
        "jemalloc 5: sizes above 14 KiB are \"large\" size classes served as extents of whole \
         pages from the arena's retained memory; requests of opt.oversize_threshold (8 MiB by \
         default) and more go to a dedicated arena whose pages are purged at once on free"
    } else if n.starts_with("tcmalloc") {
        "tcmalloc (gperftools): objects above 256 KiB are large objects, whole pages served \
         directly by the central page heap, not by the per-thread caches"
    } else if n.starts_with("mimalloc") {
        "mimalloc 2: objects above MI_LARGE_OBJ_SIZE_MAX (half a 32 MiB segment, 16 MiB on \
         64-bit) are huge: each gets a segment of its own, mapped from the OS"
    } else if n.contains("musl") {
        "musl (mallocng): requests above MMAP_THRESHOLD = 131052 bytes (~128 KiB) are served \
         by an mmap of their own and unmapped on free"
    } else if n == "c" || n == "glibc" {
        "glibc: M_MMAP_THRESHOLD, 128 KiB by default and raised dynamically by frees of mmapped \
         chunks (mallopt(3))"
    } else {
        "no documented figure known to the lab for this allocator"
    };
    text.to_string()
}

/// The documented figure as a request size, to compare with the measured switch.
pub fn documented_threshold(name: &str) -> Option<u64> {
    let n = name.to_ascii_lowercase();
    if n.starts_with("jemalloc") {
        Some(8 << 20)
    } else if n.starts_with("tcmalloc") {
        Some(256 << 10)
    } else if n.starts_with("mimalloc") {
        Some(16 << 20)
    } else if n.contains("musl") {
        Some(131_052)
    } else if n == "c" || n == "glibc" {
        Some(128 << 10)
    } else {
        None
    }
}

/// The name of an allocator from its SONAME or file name: `libjemalloc.so.2` → `jemalloc`.
pub fn name_of(soname_or_file: &str) -> String {
    let base = soname_or_file.rsplit('/').next().unwrap_or(soname_or_file);
    let base = base.strip_prefix("lib").unwrap_or(base);
    let base = base.split(".so").next().unwrap_or(base);
    base.to_string()
}

/// `findings.allocator` from the evidence.
pub fn analyze(e: &AllocatorEvidence) -> anyhow::Result<AllocatorFindings> {
    let rounds: Vec<Vec<LadderStep>> = e.rounds.iter().map(ladder).collect::<Result<_, _>>()?;
    let switch_request = switch_of(&rounds);
    let at_or_above = |s: &&LadderStep| switch_request.is_some_and(|t| s.request >= t);
    // Each request once: the finest round's measurement of it wins.
    let mut by_request: BTreeMap<u64, &LadderStep> = BTreeMap::new();
    for s in rounds.iter().flatten().filter(at_or_above) {
        by_request.insert(s.request, s);
    }
    let switched: Vec<&LadderCall> = by_request
        .values()
        .flat_map(|s| &s.calls)
        .filter(|c| c.call.is_some())
        .collect();
    let syscall = most_common(switched.iter().filter_map(|c| c.call.map(|(k, _)| k)));
    let mapped_per_request = by_request
        .values()
        .filter(|s| s.all_called())
        .filter_map(|s| {
            let mut bytes: Vec<u64> = s.calls.iter().filter_map(|c| c.call.map(|k| k.1)).collect();
            bytes.sort_unstable();
            Some(MappedPerRequest {
                request: s.request,
                bytes: *bytes.get((bytes.len().max(1) - 1) / 2)?,
            })
        })
        .collect();
    let returned_on_free = most_common(switched.iter().filter_map(|c| c.freed));
    Ok(AllocatorFindings {
        path: e.path.clone(),
        name: e.name.clone(),
        switch_request,
        syscall,
        mapped_per_request,
        returned_on_free,
        documented: documented(&e.name),
    })
}

/// The value seen most often (ties: the smallest in `Ord`, i.e. the first variant).
fn most_common<T: Ord + Copy>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: BTreeMap<T, usize> = BTreeMap::new();
    for i in items {
        *counts.entry(i).or_default() += 1;
    }
    let best = counts.values().copied().max()?;
    counts.into_iter().find(|(_, n)| *n == best).map(|(k, _)| k)
}

/// The last size seen not to switch and the switch, over every round of the evidence: the
/// switch lies in (that size, the switch].
pub fn search_bracket(e: &AllocatorEvidence) -> Option<(Option<u64>, u64)> {
    let rounds: Vec<Vec<LadderStep>> = e.rounds.iter().filter_map(|r| ladder(r).ok()).collect();
    bracket(&rounds)
}

/// Why there is no switch, from the rounds (for the explanation).
pub fn no_switch_reason(e: &AllocatorEvidence) -> String {
    let rounds: Vec<Vec<LadderStep>> = e.rounds.iter().filter_map(|r| ladder(r).ok()).collect();
    let steps: Vec<&LadderStep> = rounds.iter().flatten().collect();
    let mallocs: usize = steps.iter().map(|s| s.mallocs).sum();
    let with_call: usize = steps.iter().map(|s| s.with_call).sum();
    let nulls: usize = steps.iter().map(|s| s.nulls).sum();
    let (lo, hi) = (
        steps.iter().map(|s| s.request).min().unwrap_or(0),
        steps.iter().map(|s| s.request).max().unwrap_or(0),
    );
    let mut why = if with_call == 0 {
        format!("none of its {mallocs} mallocs from {lo} to {hi} bytes made a kernel call")
    } else {
        format!(
            "{with_call} of its {mallocs} mallocs from {lo} to {hi} bytes made a kernel call, \
             but at no size up to {hi} did every malloc make its own"
        )
    };
    if nulls > 0 {
        why.push_str(&format!("; {nulls} returned NULL"));
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_trace::strace::parse_trace;
    use malloc_probe::LadderMalloc;

    /// A traced ladder from strace lines; `mallocs` are (request, returned NULL).
    fn run(mallocs: &[(usize, bool)], trace: &str) -> Traced<KernelCallsReport> {
        Traced {
            args: vec![],
            env: vec![],
            doc: KernelCallsReport {
                preloaded: Some("/x/libtest.so".into()),
                malloc_object: "/x/libtest.so".into(),
                repeat: 2,
                mallocs: mallocs
                    .iter()
                    .map(|&(request, null)| LadderMalloc {
                        request,
                        address: (!null).then(|| "0x1000".to_string()),
                    })
                    .collect(),
                page_size: 4096,
            },
            trace: parse_trace(trace),
        }
    }

    const M: &str = "mmap(NULL, 8392704, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n";

    fn marker(word: &str, n: u64) -> String {
        let text = format!("{word} {n}");
        format!(
            "write(-1, \"{text}\", {}) = -1 EBADF (Bad file descriptor)\n",
            text.len()
        )
    }

    #[test]
    fn the_switch_is_where_every_malloc_maps_and_frees_unmap() {
        let mut t = String::new();
        t += &marker("malloc", 4096);
        t += &marker("malloc", 4096);
        t += M;
        t += &marker("malloc", 8388608);
        t += M;
        t += &marker("malloc", 8388608);
        t += M;
        for n in [4096, 4096] {
            t += &marker("free", n);
        }
        for _ in 0..2 {
            t += &marker("free", 8388608);
            t += "munmap(0x7f0000000000, 8392704) = 0\n";
        }
        let e = AllocatorEvidence {
            path: "/x/libtest.so".into(),
            name: "test".into(),
            rounds: vec![run(
                &[
                    (4096, false),
                    (4096, false),
                    (8388608, false),
                    (8388608, false),
                ],
                &t,
            )],
        };
        let f = analyze(&e).unwrap();
        assert_eq!(f.switch_request, Some(8388608));
        assert_eq!(f.syscall, Some(KernelCall::Mmap));
        assert_eq!(
            f.mapped_per_request,
            vec![MappedPerRequest {
                request: 8388608,
                bytes: 8392704
            }]
        );
        assert_eq!(f.returned_on_free, Some(Returned::Munmap));
        let rounds = vec![ladder(&e.rounds[0]).unwrap()];
        let next = next_round(&rounds).unwrap();
        assert_eq!(next.len(), 16);
        assert!(next.iter().all(|&s| s > 4096 && s <= 8388608), "{next:?}");
    }

    #[test]
    fn an_allocator_that_never_calls_the_kernel_has_no_switch() {
        let mut t = String::new();
        t += &marker("malloc", 1024);
        t += &marker("malloc", 1024);
        t += &marker("malloc", 67108864);
        t += &marker("malloc", 67108864);
        t += &marker("free", 1024);
        t += &marker("free", 1024);
        let e = AllocatorEvidence {
            path: "/x/libstatic.so".into(),
            name: "static".into(),
            rounds: vec![run(
                &[
                    (1024, false),
                    (1024, false),
                    (67108864, true),
                    (67108864, true),
                ],
                &t,
            )],
        };
        let f = analyze(&e).unwrap();
        assert_eq!(f.switch_request, None);
        assert_eq!(f.syscall, None);
        assert_eq!(f.returned_on_free, None);
        assert!(f.mapped_per_request.is_empty());
        let why = no_switch_reason(&e);
        assert!(why.contains("none of its 4 mallocs"), "{why}");
        assert!(why.contains("2 returned NULL"), "{why}");
        assert_eq!(next_round(&[ladder(&e.rounds[0]).unwrap()]), None);
    }

    /// A round where each size in `called` made its own mmap (both mallocs) and the others none.
    fn round(sizes: &[(usize, bool)]) -> Vec<LadderStep> {
        let mut t = String::new();
        let mut mallocs = Vec::new();
        for &(size, called) in sizes {
            for _ in 0..2 {
                t += &marker("malloc", size as u64);
                if called {
                    t += M;
                }
                mallocs.push((size, false));
            }
        }
        ladder(&run(&mallocs, &t)).unwrap()
    }

    #[test]
    fn a_fine_round_that_switches_at_once_keeps_the_coarse_lower_bound() {
        let coarse = round(&[(1024, false), (8192, true)]);
        let fine = round(&[(1536, true), (8192, true)]);
        let rounds = vec![coarse, fine];
        assert_eq!(bracket(&rounds), Some((Some(1024), 1536)));
        let next = next_round(&rounds).unwrap();
        assert_eq!(next.first(), Some(&1056));
        assert_eq!(next.last(), Some(&1536));
        // A round that finds no switch leaves the previous answer.
        let mut rounds = rounds;
        rounds.push(round(&[(1100, false), (1200, false)]));
        assert_eq!(switch_of(&rounds), Some(1536));
    }

    #[test]
    fn names_come_from_the_soname() {
        assert_eq!(name_of("libjemalloc.so.2"), "jemalloc");
        assert_eq!(name_of("/usr/lib/libmimalloc.so.2.0"), "mimalloc");
        assert_eq!(name_of("libtcmalloc_minimal.so.4"), "tcmalloc_minimal");
        assert!(documented("tcmalloc_minimal").contains("256 KiB"));
    }
}
