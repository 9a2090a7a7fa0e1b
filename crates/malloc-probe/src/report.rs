//! The `--json` documents of `malloc-probe`, one type per subcommand, each with its
//! `findings`: what the run established (DESIGN.md, "Step 1"). Bits are numbered from 0.
//!
//! Every field is required when deserialising. `Option` fields that have no value in a run
//! (`top_size` when the top chunk could not be located, `is_mmapped_bit` when no bit follows the
//! region, ...) are written as `null` and must be present: serde would otherwise read a missing
//! `Option` as `None` silently, so they carry `deserialize_with = "lab_trace::nullable"`.

use serde::{Deserialize, Serialize};

use crate::tag::Tag;

/// Which malloc this process uses, and the settings that move the threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocator {
    /// The object `malloc` comes from (`dladdr(3)`), e.g. `/lib/x86_64-linux-gnu/libc.so.6`.
    pub malloc_object: String,
    /// `gnu_get_libc_version(3)`.
    pub glibc_version: String,
    pub page_size: usize,
    /// `GLIBC_TUNABLES=…mmap_threshold…` or `MALLOC_MMAP_THRESHOLD_=…` as set, else `null`.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub explicit_threshold: Option<String>,
}

/// One allocation, interpreted: a row of `alloc` and `sweep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub request: usize,
    pub address: String,
    /// The raw size field, `0x…`.
    pub tag: String,
    /// The tag with the three flag bits cleared.
    pub chunk_size: u64,
    pub prev_inuse: bool,
    pub is_mmapped: bool,
    pub non_main_arena: bool,
    /// The flags by name, as heap debuggers print them.
    pub flags: String,
    /// "heap" or "mmap", from /proc/self/maps (never inferred from the bit); "other" else.
    pub region: String,
    /// The top chunk's size right after this malloc, when located.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub top_size: Option<u64>,
    /// How far this malloc moved the program break.
    pub brk_growth: usize,
    /// For a chunk in an mmap region: the length of its mapping (chunk size plus offset).
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub mapped_length: Option<u64>,
    /// For a chunk in an mmap region: whether the chunk starts on a page boundary.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub page_aligned: Option<bool>,
    /// Whether the chunk was carved from the top chunk.
    pub from_top: bool,
    /// What glibc's arithmetic predicts for this region: `request2size` for a heap chunk,
    /// `align_up(request2size + 8, page)` for an mmapped one.
    pub predicted_size: u64,
    pub matches_glibc_arithmetic: bool,
    /// `sweep` only: "coarse" or "fine" (absent in `alloc`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phase: Option<String>,
}

/// A tag as the probe writes it (`0x…`); `None` for anything else (a document edited or made
/// by another program), never a made-up 0.
fn hex_tag(s: &str) -> Option<Tag> {
    lab_trace::parse_hex(s).map(Tag)
}

impl Row {
    /// The raw tag as a number (`None` if the document's tag is not `0x…` hex).
    pub fn tag_value(&self) -> Option<Tag> {
        hex_tag(&self.tag)
    }
}

/// For each mmapped row: the mapped length and how it follows from the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappedLength {
    pub request: usize,
    pub address: String,
    pub mapped_length: u64,
    /// mapped_length - request.
    pub overhead: u64,
    /// The pointer's offset from the start of the mapping (the chunk header).
    pub header: u64,
    /// align_up(align_up(request + 8, 16) + 8, page).
    pub predicted: u64,
    pub matches: bool,
}

/// `malloc-probe --json alloc SIZE...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocReport {
    pub allocator: Allocator,
    pub allocations: Vec<Row>,
    pub findings: AllocFindings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocFindings {
    /// For each mmapped allocation, the length that was mapped.
    pub mapped_lengths: Vec<MappedLength>,
}

/// `malloc-probe --json sweep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepReport {
    pub allocator: Allocator,
    pub allocations: Vec<Row>,
    pub findings: SweepFindings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFindings {
    /// The one tag bit set in every mmap row and clear in every heap row (`null` if not one).
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub is_mmapped_bit: Option<u32>,
    /// Every low bit that follows the region.
    pub bits_following_region: Vec<u32>,
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub largest_heap_request: Option<usize>,
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub smallest_mmap_request: Option<usize>,
    pub mapped_lengths: Vec<MappedLength>,
}

/// One attempt of the free-bit experiment: allocate A, B and a guard, free A, reread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeAttempt {
    pub request_a: usize,
    pub chunk_size_a: u64,
    pub address_a: String,
    /// Whether the neighbour B is the block malloc(24) returned right after A (else it is
    /// another allocated chunk that already followed A).
    pub b_is_fresh_block: bool,
    pub tag_a_before: String,
    pub tag_a_after: String,
    pub tag_b_before: String,
    pub tag_b_after: String,
    /// Bits of B's tag that changed when A was freed.
    pub b_changed_bits: Vec<u32>,
    /// Bits of A's own tag that changed.
    pub a_changed_bits: Vec<u32>,
    /// B's prev_size word after the free (glibc writes A's size there once A is truly free).
    pub b_prev_size_after: String,
    /// A's first two user words before/after the free (free-list links once freed).
    pub a_words_before: [String; 2],
    pub a_words_after: [String; 2],
    /// Where A's second word points after the free (`[heap]`: the tcache; libc: main_arena).
    pub a_word1_points_into: String,
}

/// What glibc's fastbins held, from mallinfo2(3): `smblks` (free chunks in fastbins) and
/// `fsmblks` (their bytes). Chunks in the tcache are not counted (malloc counts them as in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fastbins {
    pub chunks: usize,
    pub bytes: usize,
}

/// The course's second hint ("… or malloc 10000 bytes after it"): a small A (with an allocated
/// B right after it) is freed, then one large malloc is made, and B's tag and A's first two
/// words are reread after each step. No allocation happens between a step and its reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LargeMallocAttempt {
    pub request_a: usize,
    pub chunk_size_a: u64,
    pub address_a: String,
    /// B's tag while A is in use, after free(A), and after the large malloc.
    pub tag_b_before: String,
    pub tag_b_after_free: String,
    pub tag_b_after_malloc: String,
    /// Bits of B's tag that free(A) changed, and that the large malloc changed afterwards.
    pub b_changed_bits_by_free: Vec<u32>,
    pub b_changed_bits_by_malloc: Vec<u32>,
    /// B's prev_size word after free(A) and after the large malloc.
    pub b_prev_size_after_free: String,
    pub b_prev_size_after_malloc: String,
    /// A's first two user words: before the free, after it, after the large malloc.
    pub a_words_before: [String; 2],
    pub a_words_after_free: [String; 2],
    pub a_words_after_malloc: [String; 2],
    /// Where A's second word points after the free, and after the large malloc.
    pub a_word1_after_free_points_into: String,
    pub a_word1_after_malloc_points_into: String,
    /// The large request, the pointer malloc returned for it, its tag and its region.
    pub large_request: usize,
    pub large_address: String,
    pub large_tag: String,
    pub large_region: String,
    /// The fastbins before free(A), after it, and after the large malloc (`null` without
    /// mallinfo2, glibc < 2.33).
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub fastbins_before_free: Option<Fastbins>,
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub fastbins_after_free: Option<Fastbins>,
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub fastbins_after_malloc: Option<Fastbins>,
}

impl LargeMallocAttempt {
    /// B's tag while A is in use, after free(A), after the large malloc (`None` where the
    /// document's tag is not `0x…` hex).
    pub fn tags_b(&self) -> [Option<Tag>; 3] {
        [
            hex_tag(&self.tag_b_before),
            hex_tag(&self.tag_b_after_free),
            hex_tag(&self.tag_b_after_malloc),
        ]
    }

    /// Whether the large malloc cleared `bit` of B's tag after free(A) had left it set (`None`
    /// when free(A) had already cleared it: then there is nothing left to clear; `None` too when
    /// a tag is not hex: then nothing can be said).
    pub fn malloc_cleared(&self, bit: u32) -> Option<bool> {
        let [_, Some(after_free), Some(after_malloc)] = self.tags_b() else {
            return None;
        };
        after_free.bit(bit).then(|| !after_malloc.bit(bit))
    }
}

/// `malloc-probe --json free-bit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeBitReport {
    pub allocator: Allocator,
    pub attempts: Vec<FreeAttempt>,
    /// After the attempts: a small chunk freed, then a large malloc.
    pub large_malloc: LargeMallocAttempt,
    pub findings: FreeBitFindings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeBitFindings {
    /// The bit of the NEXT chunk's tag that freeing A cleared (`null`: no attempt changed
    /// exactly one bit).
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub prev_inuse_bit: Option<u32>,
    /// The bit's value while A is in use (1) and once it is free (0), when the bit was found.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub in_use_value: Option<u8>,
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub free_value: Option<u8>,
    /// The largest chunk whose free changed no bit (tcache and fastbins keep it "in use").
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub largest_chunk_freed_without_change: Option<u64>,
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub first_request_that_changed_the_bit: Option<usize>,
    /// Whether the large malloc cleared that bit in B's tag after free(A) had left it set
    /// (`null` when the bit was not found, or free(A) had already cleared it).
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub large_malloc_cleared_the_bit: Option<bool>,
}

/// What draining the top chunk did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drain {
    pub top_before: u64,
    pub filler_request: usize,
    pub top_after: u64,
}

/// What one child process (`probe-one`, internal to `threshold`) measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildOut {
    /// The mmapped block allocated and freed first (`--free-first`), before freeing.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub freed_first: Option<Row>,
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub drain: Option<Drain>,
    /// The block allocated to grow the heap first (`--grow-first`).
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub grow: Option<Row>,
    /// The request under test.
    pub row: Row,
}

/// The threshold measurement, with the three effects that blur the switch separated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Effect 1 removed: every probe ran with the top chunk drained to MINSIZE.
    pub drained_probes: Vec<ChildOut>,
    pub threshold_request: usize,
    pub largest_heap_request: usize,
    pub largest_heap_chunk_size: u64,
    /// The smallest chunk size that is mmapped: the next chunk size above the largest heap
    /// chunk (chunk sizes step by 16).
    pub threshold_chunk_size: u64,
    /// Effect 2: the same request right after a heap growth, when the top has room.
    pub with_room: ChildOut,
    /// Effect 3: after freeing an mmapped block.
    pub dynamic: Dynamic,
    /// GLIBC_TUNABLES / MALLOC_MMAP_THRESHOLD_ as set in the environment.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub explicit_setting: Option<String>,
}

/// Effect 3: freeing an mmapped chunk raises the threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dynamic {
    pub freed_request: usize,
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub freed_mapped_length: Option<u64>,
    /// The threshold request, asked again after the free (drained top).
    pub same_request_after_free: ChildOut,
    pub new_threshold_request: usize,
    pub new_threshold_chunk_size: u64,
    pub moved: bool,
    pub probes: usize,
}

/// `malloc-probe --json threshold`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdReport {
    pub allocator: Allocator,
    pub threshold: Threshold,
    pub findings: ThresholdFindings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdFindings {
    /// The smallest request malloc serves with mmap whenever the heap has no room for it.
    pub threshold_request: usize,
    /// The same switch as a chunk size (glibc compares chunk sizes).
    pub threshold_chunk_size: u64,
    pub largest_heap_request: usize,
    /// The top chunk left after draining it, in the first drained probe.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub top_after_drain: Option<u64>,
    /// The top chunk right after a heap growth (effect 2).
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub top_after_growth: Option<u64>,
    /// Where `threshold_request` landed right after that growth: "heap" or "mmap".
    pub with_room_region: String,
    pub dynamic_threshold_request: usize,
    pub dynamic_threshold_chunk_size: u64,
    pub dynamic_threshold_moved: bool,
}

impl ThresholdFindings {
    /// The findings `threshold` establishes, read from its measurement.
    pub fn of(t: &Threshold) -> ThresholdFindings {
        ThresholdFindings {
            threshold_request: t.threshold_request,
            threshold_chunk_size: t.threshold_chunk_size,
            largest_heap_request: t.largest_heap_request,
            top_after_drain: t
                .drained_probes
                .first()
                .and_then(|c| c.drain.as_ref())
                .map(|d| d.top_after),
            top_after_growth: t.with_room.grow.as_ref().and_then(|g| g.top_size),
            with_room_region: t.with_room.row.region.clone(),
            dynamic_threshold_request: t.dynamic.new_threshold_request,
            dynamic_threshold_chunk_size: t.dynamic.new_threshold_chunk_size,
            dynamic_threshold_moved: t.dynamic.moved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row {
            request: 200_000,
            address: "0x7f0000000010".into(),
            tag: "0x31002".into(),
            chunk_size: 0x31000,
            prev_inuse: false,
            is_mmapped: true,
            non_main_arena: false,
            flags: "IS_MMAPPED".into(),
            region: "mmap".into(),
            top_size: None,
            brk_growth: 0,
            mapped_length: Some(0x31000),
            page_aligned: Some(true),
            from_top: false,
            predicted_size: 0x31000,
            matches_glibc_arithmetic: true,
            phase: None,
        }
    }

    fn alloc_report() -> AllocReport {
        AllocReport {
            allocator: Allocator {
                malloc_object: "/lib/x86_64-linux-gnu/libc.so.6".into(),
                glibc_version: "2.36".into(),
                page_size: 4096,
                explicit_threshold: None,
            },
            allocations: vec![row()],
            findings: AllocFindings {
                mapped_lengths: vec![],
            },
        }
    }

    #[test]
    fn round_trips_with_nulls_written_out() {
        let r = alloc_report();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""top_size":null"#), "{text}");
        assert!(text.contains(r#""explicit_threshold":null"#), "{text}");
        assert!(!text.contains("phase"), "alloc rows have no phase: {text}");
        assert_eq!(serde_json::from_str::<AllocReport>(&text).unwrap(), r);
        assert_eq!(r.allocations[0].tag_value().unwrap().chunk_size(), 0x31000);
    }

    #[test]
    fn a_missing_field_is_an_error_naming_it_even_a_nullable_one() {
        for (path, field) in [
            (&["allocations", "0"][..], "top_size"),
            (&["allocations", "0"], "chunk_size"),
            (&["allocator"], "explicit_threshold"),
            (&["findings"], "mapped_lengths"),
        ] {
            let mut v = serde_json::to_value(alloc_report()).unwrap();
            let mut obj = &mut v;
            for p in path {
                obj = match p.parse::<usize>() {
                    Ok(i) => &mut obj[i],
                    Err(_) => &mut obj[*p],
                };
            }
            obj.as_object_mut().unwrap().remove(field);
            let e = serde_json::from_value::<AllocReport>(v)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("missing field `{field}`")), "{e}");
        }
    }

    fn free_bit_report() -> FreeBitReport {
        let s = |v: &str| v.to_string();
        FreeBitReport {
            allocator: alloc_report().allocator,
            attempts: vec![],
            large_malloc: LargeMallocAttempt {
                request_a: 24,
                chunk_size_a: 32,
                address_a: s("0x5000010"),
                tag_b_before: s("0x21"),
                tag_b_after_free: s("0x21"),
                tag_b_after_malloc: s("0x20"),
                b_changed_bits_by_free: vec![],
                b_changed_bits_by_malloc: vec![0],
                b_prev_size_after_free: s("0x0"),
                b_prev_size_after_malloc: s("0x20"),
                a_words_before: [s("0x0"), s("0x0")],
                a_words_after_free: [s("0x5000"), s("0x0")],
                a_words_after_malloc: [s("0x7f0000001cd0"), s("0x7f0000001cd0")],
                a_word1_after_free_points_into: s("no mapping: not an address"),
                a_word1_after_malloc_points_into: s("libc.so.6"),
                large_request: 10_000,
                large_address: s("0x5000400"),
                large_tag: s("0x2721"),
                large_region: s("heap"),
                fastbins_before_free: Some(Fastbins {
                    chunks: 0,
                    bytes: 0,
                }),
                fastbins_after_free: Some(Fastbins {
                    chunks: 1,
                    bytes: 32,
                }),
                fastbins_after_malloc: None,
            },
            findings: FreeBitFindings {
                prev_inuse_bit: Some(0),
                in_use_value: Some(1),
                free_value: Some(0),
                largest_chunk_freed_without_change: Some(112),
                first_request_that_changed_the_bit: Some(1000),
                large_malloc_cleared_the_bit: Some(true),
            },
        }
    }

    #[test]
    fn a_tag_that_is_not_hex_is_no_tag_not_zero() {
        assert_eq!(hex_tag("0x21"), Some(Tag(0x21)));
        assert_eq!(hex_tag("zz"), None);
        assert_eq!(hex_tag(""), None);
        let mut l = free_bit_report().large_malloc;
        assert_eq!(l.malloc_cleared(0), Some(true));
        l.tag_b_after_malloc = "not a tag".into();
        assert_eq!(l.tags_b()[2], None);
        assert_eq!(
            l.malloc_cleared(0),
            None,
            "nothing can be said from a broken tag"
        );
    }

    #[test]
    fn the_large_malloc_attempt_is_required_field_by_field() {
        let r = free_bit_report();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""fastbins_after_malloc":null"#), "{text}");
        assert_eq!(serde_json::from_str::<FreeBitReport>(&text).unwrap(), r);
        assert_eq!(r.large_malloc.malloc_cleared(0), Some(true));
        assert_eq!(
            r.large_malloc.malloc_cleared(1),
            None,
            "bit 1 was never set"
        );
        for (path, field) in [
            (&["large_malloc"][..], "fastbins_after_malloc"),
            (&["large_malloc"], "tag_b_after_malloc"),
            (&[], "large_malloc"),
            (&["findings"], "large_malloc_cleared_the_bit"),
        ] {
            let mut v = serde_json::to_value(&r).unwrap();
            let obj = path.iter().fold(&mut v, |o, p| &mut o[*p]);
            obj.as_object_mut().unwrap().remove(field);
            let e = serde_json::from_value::<FreeBitReport>(v)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("missing field `{field}`")), "{e}");
        }
    }

    #[test]
    fn an_odd_field_is_an_error_too() {
        let mut v = serde_json::to_value(alloc_report()).unwrap();
        v["findings"]["mapped_length"] = serde_json::json!([]);
        let e = serde_json::from_value::<AllocReport>(v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `mapped_length`"), "{e}");
    }
}

/// `malloc-probe [--allocator PATH] --json kernel-calls`: the allocation ladder, run with
/// whatever malloc the process has (under `--allocator`, the preloaded one) and never reading a
/// tag. Every malloc is preceded by a `write(-1, "malloc N")` marker and every free by
/// `write(-1, "free N")`, so the kernel calls each made are read from strace, not from here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelCallsReport {
    /// The `--allocator` path as preloaded (absolute), or `null` when malloc is the process's own.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub preloaded: Option<String>,
    /// The object `malloc` resolved to in the measuring process (`dladdr(3)`).
    pub malloc_object: String,
    /// How many mallocs of each size were made, one after another.
    pub repeat: usize,
    /// Every malloc, in order (all of them first, then every block freed in the same order).
    pub mallocs: Vec<LadderMalloc>,
    pub page_size: usize,
}

/// One malloc of the ladder and what it returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderMalloc {
    pub request: usize,
    /// The pointer returned, `0x…`, or `null` when malloc returned NULL (then nothing is freed).
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub address: Option<String>,
}

/// `malloc-probe --json thread-arena`: one block malloc'd by the main thread and one by a second
/// thread, their tags, and `/proc/self/maps` read while both were alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadArenaReport {
    pub allocator: Allocator,
    pub request: usize,
    pub main_chunk: ArenaChunk,
    pub thread_chunk: ArenaChunk,
    /// Every line of `/proc/self/maps`, read after the second thread's malloc.
    pub maps: Vec<String>,
    pub findings: ThreadArenaFindings,
}

/// One block and its boundary tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArenaChunk {
    pub address: String,
    pub tag: String,
}

/// What `thread-arena` established (DESIGN.md, "Beyond glibc's main arena").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadArenaFindings {
    /// NON_MAIN_ARENA (bit 2, 0x4) in the second thread's chunk.
    pub a_bit_thread: bool,
    /// NON_MAIN_ARENA in the main thread's chunk.
    pub a_bit_main: bool,
    /// The read-write mapping that holds the thread's chunk, `0x…-0x…`.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub heap_mapping: Option<String>,
    /// That mapping plus the `---p` reservation right after it, within the alignment of its
    /// start (see [`ThreadHeap::find`]): the whole reservation, in bytes.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub heap_reservation_bytes: Option<u64>,
}

/// A thread arena's heap as `/proc/self/maps` shows it: the read-write part glibc has handed
/// out, and the `PROT_NONE` rest of its reservation (`new_heap` in malloc/arena.c maps
/// HEAP_MAX_SIZE aligned to HEAP_MAX_SIZE and `mprotect`s only what is used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadHeap {
    /// The read-write mapping holding the chunk.
    pub rw: (u64, u64),
    /// The `---p` mapping right after it, cut at the start's alignment, if there is one.
    pub reserved: Option<(u64, u64)>,
    /// The largest power of two dividing the heap's start.
    pub start_alignment: u64,
}

impl ThreadHeap {
    /// Finds the heap holding `addr` in the lines of `/proc/self/maps`. The reservation is the
    /// read-write mapping plus the `---p` mapping that follows it without a gap; the kernel may
    /// merge that with an unrelated `PROT_NONE` neighbour, so it is cut at the next multiple of
    /// the start's alignment (what glibc aligned the heap to). `None` when no anonymous
    /// read-write mapping holds `addr`.
    pub fn find<'a>(maps: impl IntoIterator<Item = &'a str>, addr: u64) -> Option<ThreadHeap> {
        let lines: Vec<lab_trace::maps::MapsLine<'a>> = maps
            .into_iter()
            .filter_map(lab_trace::maps::MapsLine::parse)
            .collect();
        let i = lines.iter().position(|m| m.contains(addr))?;
        let rw = &lines[i];
        if !rw.path.is_empty() || &rw.perms[..2] != b"rw" {
            return None;
        }
        let start_alignment = 1u64 << rw.start.trailing_zeros().min(63);
        let limit = rw.start.saturating_add(start_alignment);
        let reserved = lines
            .get(i + 1)
            .filter(|n| n.start == rw.end && &n.perms == b"---p" && n.path.is_empty())
            .map(|n| (n.start, n.end.min(limit)))
            .filter(|(s, e)| e > s);
        Some(ThreadHeap {
            rw: (rw.start, rw.end),
            reserved,
            start_alignment,
        })
    }

    /// The whole reservation: the read-write part and the `---p` rest.
    pub fn reservation_bytes(&self) -> u64 {
        self.reserved.map_or(self.rw.1, |r| r.1) - self.rw.0
    }
}

impl ThreadArenaFindings {
    /// The findings of a `thread-arena` measurement: the tags' NON_MAIN_ARENA bits and the heap
    /// found in the recorded maps.
    pub fn of(main_tag: Tag, thread_tag: Tag, thread_addr: u64, maps: &[String]) -> Self {
        let heap = ThreadHeap::find(maps.iter().map(String::as_str), thread_addr);
        ThreadArenaFindings {
            a_bit_thread: thread_tag.non_main_arena(),
            a_bit_main: main_tag.non_main_arena(),
            heap_mapping: heap.map(|h| format!("{:#x}-{:#x}", h.rw.0, h.rw.1)),
            heap_reservation_bytes: heap.map(|h| h.reservation_bytes()),
        }
    }
}
