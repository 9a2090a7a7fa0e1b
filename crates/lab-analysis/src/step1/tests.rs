//! Findings asserted on recorded evidence (`xtask/tests/evidence/NAME/step1.json`, each made with
//! `cargo xtask run-step 1 --quick --save-evidence DIR` on glibc 2.36, x86-64, 4 KiB pages):
//!
//! - `glibc-2.36-default`: nothing set in the environment.
//! - `glibc-2.36-mmap-threshold-65536`: run with `MALLOC_MMAP_THRESHOLD_=65536`.
//! - `glibc-2.36-tcache-count-0`: run with `GLIBC_TUNABLES=glibc.malloc.tcache_count=0`, so the
//!   "default" free-bit run already had no tcache.
//! - `preloaded-malloc-shim`: run with `LD_PRELOAD` of a shim whose malloc/free/calloc/realloc
//!   call glibc's `__libc_*` (built like [`SHIM`]): malloc is no longer glibc's symbol, so the
//!   probe refuses.
//! - `glibc-2.36-jemalloc-thread-arena`: run with
//!   `--allocator /usr/lib/x86_64-linux-gnu/libjemalloc.so.2` (jemalloc 5.3, Debian 12), so it
//!   has the thread arena and jemalloc's traced ladders; the others were recorded before either
//!   existed and load them as "not measured".
//! - `glibc-2.36-arena-max-1`: run with `MALLOC_ARENA_MAX=1`: the second thread gets the main
//!   arena, its chunk lies in [heap].
//! - `glibc-2.36-mmap-threshold-33554432`: run with `MALLOC_MMAP_THRESHOLD_=33554432`: the
//!   16 MiB block the threshold probe frees first comes from the heap, and the 1 MiB sweep has
//!   no mmap row.
//!
//! None was edited by hand. The three measured sets were recorded again (same commands) when
//! `free-bit` gained its last attempt, a 24-byte chunk freed and then malloc(10000). The live
//! tests run the real probe under the real strace.
//!
//! Here: the Findings and the narrative; the pictures, the measurement and live runs are
//! tested in xtask's `step1::tests`.

use std::path::{Path, PathBuf};

use crate::step1::analyze::{analyze, glibc_mmap_len, FreedInto, LargeMallocOutcome};
use crate::step1::explain::flag_names;
use crate::step1::Step1;
use crate::step1::{wire, Evidence, Findings, Outcome};
use crate::{Block, Step as _};

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(crate::testkit::XTASK_DIR)
        .join("tests/evidence")
        .join(name)
}

fn evidence(name: &str) -> Evidence {
    crate::testkit::load(&fixture_dir(name), 1).unwrap_or_else(|e| panic!("fixture {name}: {e:#}"))
}

fn findings(name: &str) -> Findings {
    analyze(&evidence(name)).unwrap_or_else(|e| panic!("fixture {name}: {e:#}"))
}

fn answers(f: &Findings, ev: &Evidence) -> Vec<String> {
    Step1::explain(f, ev)
        .into_iter()
        .filter_map(|b| match b {
            Block::Answer(a) => Some(a.answer),
            _ => None,
        })
        .collect()
}

/// The default fixture with the large-malloc attempt of the run without the tcache edited in
/// memory (tags, words, fastbin counts), for outcomes this glibc does not produce.
fn large_malloc_variant(edit: impl Fn(&mut wire::LargeMallocAttempt)) -> Findings {
    let mut ev = evidence("glibc-2.36-default");
    let Outcome::Measured(m) = &mut ev.outcome else {
        panic!("measured fixture")
    };
    edit(&mut m.free_bit_no_tcache.as_mut().unwrap().doc.large_malloc);
    analyze(&ev).unwrap()
}

#[test]
fn default_glibc_bits_threshold_and_lengths() {
    let f = findings("glibc-2.36-default");
    assert_eq!(f.foreign_allocator, None);
    assert_eq!(f.prev_inuse_bit, Some(0));
    assert_eq!(f.is_mmapped_bit, Some(1));
    assert_eq!(f.threshold_request, Some(131_049));
    assert_eq!(f.threshold_chunk_size, Some(131_072));
    let s = f.sweep.as_ref().unwrap();
    assert_eq!(s.bits_following_region, vec![1]);
    assert_eq!((s.heap_rows, s.mmap_rows), (27, 52));
    assert_eq!(s.unpaired_mmap_rows, 0);
    assert_eq!(s.largest_heap_request, Some(131_072));
    assert_eq!(s.smallest_mmap_request, Some(131_080));
    // x -> L: every mmapped request paired with its mmap, L per glibc's formula, and the
    // measurements alone pin the bytes malloc adds to x to (16, 24].
    let fm = f.formula.as_ref().unwrap();
    assert_eq!(fm.mmaps, 54);
    assert_eq!(fm.formula_holds, fm.mmaps);
    assert_eq!(fm.tag_agrees, fm.mmaps);
    assert_eq!(fm.pointer_16, fm.mmaps);
    assert_eq!(fm.length_is_request, 0);
    assert_eq!(fm.added_bytes, Some((16, 24)));
    let first = &f.mmap_lengths[0];
    assert_eq!((first.request, first.length), (196_608, 200_704));
    let e = f.page_edge.as_ref().unwrap();
    assert_eq!((e.below.request, e.below.length), (139_240, Some(139_264)));
    assert_eq!((e.above.request, e.above.length), (139_248, Some(143_360)));
    let t = f.threshold_effects.as_ref().unwrap();
    assert!(t.consistent);
    assert_eq!(t.top_after_drain, Some(32));
    assert_eq!(t.with_room.region, "heap");
    assert!(t.dynamic.moved && t.dynamic.raised_to_freed_length);
    assert_eq!(t.dynamic.new_threshold_chunk_size, 524_288);
    assert_eq!(t.explicit_setting, None);
    assert_eq!(
        (
            t.tuned.as_ref().unwrap().setting,
            t.tuned.as_ref().unwrap().follows
        ),
        (Some(65_536), true)
    );
}

#[test]
fn default_glibc_free_bit_with_and_without_the_tcache() {
    let f = findings("glibc-2.36-default");
    let fb = f.free_bit.as_ref().unwrap();
    assert_eq!(fb.tunables, None);
    assert_eq!(fb.first_change, Some((1048, 1056)));
    assert_eq!(fb.largest_silent_chunk, Some(1040));
    assert_eq!(fb.own_tag_unchanged, fb.attempts.len());
    assert!(fb.shared_second_word.is_some(), "the tcache key");
    let no = f.free_bit_no_tcache.as_ref().unwrap();
    assert_eq!(no.tunables.as_deref(), Some("glibc.malloc.tcache_count=0"));
    assert_eq!(no.prev_inuse_bit, Some(0));
    assert_eq!(no.first_change, Some((1000, 1008)));
    let c = f.tcache_comparison.as_ref().unwrap();
    assert_eq!(c.now_change, vec![1000, 1032]);
    assert_eq!(c.still_silent, vec![24, 100]);
    assert_eq!(c.still_silent_into, vec![FreedInto::Fastbin; 2]);
    assert_eq!(c.change_in_both, vec![1048, 1100, 1500, 4000]);
    assert!(c.stopped_changing.is_empty());
    assert!(c.default_used_tcache);
    let k = c.free_1000.as_ref().unwrap();
    assert_eq!(
        (k.default_changed, k.default_into, k.no_tcache_changed),
        (false, FreedInto::Tcache, true)
    );
    assert_eq!(k.no_tcache_tag_b, (0x21, 0x20));
}

#[test]
fn a_tuned_threshold_gives_other_threshold_findings() {
    let f = findings("glibc-2.36-mmap-threshold-65536");
    let default = findings("glibc-2.36-default");
    assert_eq!(f.threshold_request, Some(65_513));
    assert_eq!(f.threshold_chunk_size, Some(65_536));
    assert_ne!(f.threshold_request, default.threshold_request);
    let t = f.threshold_effects.as_ref().unwrap();
    assert!(t
        .explicit_setting
        .as_deref()
        .is_some_and(|s| s.contains("MALLOC_MMAP_THRESHOLD_=65536")));
    // An explicit setting turns the dynamic threshold off.
    assert!(!t.dynamic.moved);
    assert_eq!(
        (
            t.tuned.as_ref().unwrap().setting,
            t.tuned.as_ref().unwrap().follows
        ),
        (Some(32_768), true)
    );
    assert_eq!(t.tuned.as_ref().unwrap().threshold_request, 32_745);
    let s = f.sweep.as_ref().unwrap();
    assert_eq!(s.smallest_mmap_request, Some(65_544));
    // The bits, the length formula and the large malloc do not depend on the threshold.
    assert_eq!((f.prev_inuse_bit, f.is_mmapped_bit), (Some(0), Some(1)));
    let l = &f.free_bit_no_tcache.as_ref().unwrap().large_malloc;
    assert_eq!(l.outcome, LargeMallocOutcome::ClearedByMalloc);
    let fm = f.formula.as_ref().unwrap();
    assert_eq!(fm.formula_holds, fm.mmaps);
    assert_eq!(fm.added_bytes, Some((16, 24)));
}

#[test]
fn without_the_tcache_already_nothing_changes() {
    let f = findings("glibc-2.36-tcache-count-0");
    let c = f.tcache_comparison.as_ref().unwrap();
    assert_eq!(
        c.baseline_tunables.as_deref(),
        Some("glibc.malloc.tcache_count=0")
    );
    assert_eq!(c.tunables, "glibc.malloc.tcache_count=0");
    assert!(c.now_change.is_empty());
    assert!(!c.default_used_tcache);
    assert_eq!(c.still_silent, vec![24, 100]);
    assert_eq!(
        f.free_bit.as_ref().unwrap().first_change,
        Some((1000, 1008))
    );
    let answers = answers(&f, &evidence("glibc-2.36-tcache-count-0"));
    assert!(answers[4].contains("no request changed the in-use bit"));
    assert!(!answers[4].contains("did not keep them"), "{}", answers[4]);
}

#[test]
fn a_large_malloc_after_a_small_free_clears_the_bit_only_without_the_tcache() {
    let f = findings("glibc-2.36-default");
    // Without the tcache: free(A) put A on a fastbin and left B's tag alone; malloc(10000)
    // emptied the fastbins, cleared B's PREV_INUSE and wrote A's size into B's prev_size.
    let l = &f.free_bit_no_tcache.as_ref().unwrap().large_malloc;
    assert_eq!((l.request, l.chunk_size, l.large_request), (24, 32, 10_000));
    assert_eq!(l.freed_into, FreedInto::Fastbin);
    assert_eq!(l.tag_b, [0x21, 0x21, 0x20]);
    assert!(l.changed_by_free.is_empty());
    assert_eq!(l.changed_by_malloc, vec![0]);
    assert_eq!(l.prev_size_after_malloc, 0x20);
    assert!(l.prev_size_is_a_after_malloc);
    assert_eq!(l.fastbin_chunks, Some([0, 1, 0]));
    assert_eq!(l.fastbins_emptied_by_malloc, Some(true));
    assert_eq!(l.second_word_after_malloc_points_into, "libc.so.6");
    assert_eq!(l.large_region, "heap");
    assert_eq!(l.outcome, LargeMallocOutcome::ClearedByMalloc);
    // With the tcache: A went to the tcache and malloc(10000) changed nothing.
    let d = &f.free_bit.as_ref().unwrap().large_malloc;
    assert_eq!(d.freed_into, FreedInto::Tcache);
    assert_eq!(d.tag_b, [0x21, 0x21, 0x21]);
    assert_eq!(d.fastbin_chunks, Some([0, 0, 0]));
    assert_eq!(d.fastbins_emptied_by_malloc, Some(false));
    assert!(d.a_untouched_by_malloc);
    assert_eq!(d.outcome, LargeMallocOutcome::StillInUse);
    let a = answers(&f, &evidence("glibc-2.36-default"));
    assert!(!a[5].contains("not measured"), "{}", a[5]);
    assert!(a[5].contains(
        "Malloc 10000 bytes after it: without the tcache, free(malloc(24)) (chunk 32) put A on \
         a fastbin and left B's tag at 0x21; malloc(10000) then turned it into 0x20 — \
         PREV_INUSE cleared — wrote 0x20 (A's size) into B's prev_size"
    ));
    assert!(a[5].contains("mallinfo2 counted 0 -> 1 -> 0 fastbin chunks: the large request"));
    assert!(a[5].contains(
        "In the default run, free(malloc(24)) (chunk 32) put A into the tcache and left B's tag \
         at 0x21, and malloc(10000) left it at 0x21: A stays marked in use — the tcache held it"
    ));
}

#[test]
fn with_tcache_count_0_inherited_both_large_mallocs_clear_the_bit() {
    let f = findings("glibc-2.36-tcache-count-0");
    for fb in [&f.free_bit, &f.free_bit_no_tcache] {
        let l = &fb.as_ref().unwrap().large_malloc;
        assert_eq!(l.freed_into, FreedInto::Fastbin);
        assert_eq!(l.outcome, LargeMallocOutcome::ClearedByMalloc);
        assert_eq!(l.tag_b, [0x21, 0x21, 0x20]);
    }
    let a = answers(&f, &evidence("glibc-2.36-tcache-count-0"));
    assert!(a[5].contains("In the default run, free(malloc(24)) (chunk 32) put A on a fastbin"));
    assert!(!a[5].contains("A stays marked in use"), "{}", a[5]);
}

#[test]
fn large_malloc_outcomes_follow_the_tags_not_a_script() {
    // free(A) itself clears the bit (as with glibc.malloc.mxfast=0: no fastbins).
    let f = large_malloc_variant(|l| {
        l.tag_b_after_free = "0x20".into();
        l.b_changed_bits_by_free = vec![0];
        l.b_changed_bits_by_malloc = vec![];
    });
    let l = &f.free_bit_no_tcache.as_ref().unwrap().large_malloc;
    assert_eq!(l.outcome, LargeMallocOutcome::ClearedByFree);
    assert_eq!(l.freed_into, FreedInto::Bin);
    let a = answers(&f, &evidence("glibc-2.36-default"));
    assert!(
        a[5].contains("already cleared the bit itself (B's tag 0x21 -> 0x20)"),
        "{}",
        a[5]
    );
    // The large malloc changes nothing: still in use, and the fastbins not emptied.
    let f = large_malloc_variant(|l| {
        l.tag_b_after_malloc = "0x21".into();
        l.b_changed_bits_by_malloc = vec![];
        l.fastbins_after_malloc = l.fastbins_after_free;
        l.a_words_after_malloc = l.a_words_after_free.clone();
    });
    let l = &f.free_bit_no_tcache.as_ref().unwrap().large_malloc;
    assert_eq!(l.outcome, LargeMallocOutcome::StillInUse);
    assert_eq!(l.fastbins_emptied_by_malloc, Some(false));
    // Another bit changes too: not the single PREV_INUSE change.
    let f = large_malloc_variant(|l| {
        l.tag_b_after_malloc = "0x24".into();
        l.b_changed_bits_by_malloc = vec![0, 2];
    });
    let l = &f.free_bit_no_tcache.as_ref().unwrap().large_malloc;
    assert_eq!(l.outcome, LargeMallocOutcome::Unclear);
    // No mallinfo2 (glibc < 2.33): the counts are unknown, the tags still decide.
    let f = large_malloc_variant(|l| l.fastbins_after_malloc = None);
    let l = &f.free_bit_no_tcache.as_ref().unwrap().large_malloc;
    assert_eq!(
        (l.fastbin_chunks, l.fastbins_emptied_by_malloc),
        (None, None)
    );
    assert_eq!(l.outcome, LargeMallocOutcome::ClearedByMalloc);
    let a = answers(&f, &evidence("glibc-2.36-default"));
    assert!(
        a[5].contains("mallinfo2 was not available to count the fastbins."),
        "{}",
        a[5]
    );
}

#[test]
fn recorded_evidence_round_trips() {
    let ev = evidence("glibc-2.36-default");
    let text = serde_json::to_string(&ev).unwrap();
    let back: Evidence = serde_json::from_str(&text).unwrap();
    let (a, b) = (analyze(&ev).unwrap(), analyze(&back).unwrap());
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        serde_json::to_value(&b).unwrap()
    );
}

#[test]
fn an_odd_tag_in_the_free_bit_document_is_an_error_naming_it_not_a_zero() {
    let mut ev = evidence("glibc-2.36-default");
    let Outcome::Measured(m) = &mut ev.outcome else {
        panic!("measured fixture")
    };
    m.free_bit.as_mut().unwrap().doc.attempts[0].tag_b_after = "garbage".into();
    let e = analyze(&ev).unwrap_err();
    assert!(
        format!("{e:#}").contains("free-bit's tag_b_after \"garbage\""),
        "{e:#}"
    );
    let mut ev = evidence("glibc-2.36-default");
    let Outcome::Measured(m) = &mut ev.outcome else {
        panic!("measured fixture")
    };
    m.free_bit_no_tcache
        .as_mut()
        .unwrap()
        .doc
        .large_malloc
        .tag_b_after_malloc = "0xzz".into();
    let e = analyze(&ev).unwrap_err();
    assert!(
        format!("{e:#}").contains("tag_b_after_malloc \"0xzz\""),
        "{e:#}"
    );
}

#[test]
fn a_trace_that_does_not_match_the_allocations_is_an_error() {
    let mut ev = evidence("glibc-2.36-default");
    let Outcome::Measured(m) = &mut ev.outcome else {
        panic!("measured fixture")
    };
    // Lose the last marker: the probe made one allocation more than the trace shows.
    let calls = &mut m.sweep.trace.calls;
    let last = calls
        .iter()
        .rposition(|c| lab_trace::markers::marker(c).is_some_and(|m| m.word == "malloc"))
        .unwrap();
    calls.remove(last);
    let e = analyze(&ev).unwrap_err();
    assert!(
        format!("{e:#}").contains("malloc markers but the probe made"),
        "{e:#}"
    );
}

#[test]
fn glibc_formula_checks() {
    assert_eq!(glibc_mmap_len(131072, 4096), 135168);
    assert_eq!(glibc_mmap_len(135152, 4096), 139264);
    assert_eq!(glibc_mmap_len(200000, 4096), 200704);
}

#[test]
fn flags_are_named_like_heap_debuggers_do() {
    assert_eq!(flag_names(0x21), "PREV_INUSE");
    assert_eq!(flag_names(0x21002), "IS_MMAPPED");
    assert_eq!(flag_names(0x25), "PREV_INUSE | NON_MAIN_ARENA");
    assert_eq!(flag_names(0x50), "-");
}

#[test]
fn evidence_recorded_before_the_thread_arena_loads_as_not_measured() {
    for name in ["glibc-2.36-default", "preloaded-malloc-shim"] {
        let ev = evidence(name);
        assert!(
            ev.thread_arena.is_none() && ev.allocator.is_none(),
            "{name}"
        );
        let f = findings(name);
        assert_eq!(f.thread_arena, None, "{name}");
        assert_eq!(f.allocator, None, "{name}");
    }
}

#[test]
fn the_thread_arena_and_jemalloc_as_recorded() {
    let ev = evidence("glibc-2.36-jemalloc-thread-arena");
    let f = findings("glibc-2.36-jemalloc-thread-arena");
    let t = f.thread_arena.as_ref().expect("measured");
    assert!(t.a_bit_thread && !t.a_bit_main);
    assert_eq!(
        t.heap_mapping.as_deref(),
        Some("0x7f9b34000000-0x7f9b34021000")
    );
    assert_eq!(t.heap_reservation_bytes, Some(64 << 20));
    let a = f.allocator.as_ref().expect("measured");
    assert_eq!(a.name, "jemalloc");
    assert_eq!(a.switch_request, Some(8 << 20));
    assert_eq!(a.syscall, Some(crate::step1::allocator::KernelCall::Mmap));
    assert_eq!(
        a.returned_on_free,
        Some(crate::step1::allocator::Returned::Madvise)
    );
    assert_eq!(
        a.mapped_per_request.first().map(|m| m.bytes),
        Some(12 << 20)
    );
    let answers = answers(&f, &ev);
    assert_eq!(answers.len(), 8);
    assert!(
        answers[6].starts_with("The second thread's malloc(1000) has NON_MAIN_ARENA"),
        "{}",
        answers[6]
    );
    assert!(
        answers[6].contains("67108864 bytes (64 MiB)"),
        "{}",
        answers[6]
    );
    assert!(
        answers[7].starts_with("jemalloc made its own mmap for every malloc from 8388608"),
        "{}",
        answers[7]
    );
    assert!(
        answers[7].contains("the measurement agrees"),
        "{}",
        answers[7]
    );
}

/// The answer's sentences carry no `?` standing for a missing figure.
fn assert_no_question_mark(answers: &[String]) {
    for a in answers {
        assert!(!a.contains('?'), "a `?` in: {a}");
    }
}

#[test]
fn one_arena_allowed_the_thread_chunk_in_heap_follows_from_the_setting() {
    let name = "glibc-2.36-arena-max-1";
    let ev = evidence(name);
    let f = findings(name);
    let t = f.thread_arena.as_ref().expect("measured");
    assert!(!t.a_bit_thread && !t.a_bit_main);
    assert_eq!(t.heap_mapping, None);
    let answers = answers(&f, &ev);
    let a = answers
        .iter()
        .find(|a| a.starts_with("The second thread's malloc("))
        .expect("the thread answer");
    assert!(a.contains("it lies in [heap]"), "{a}");
    assert!(
        a.contains("the same mapping as the main thread's chunk"),
        "{a}"
    );
    assert!(a.contains("MALLOC_ARENA_MAX=1"), "{a}");
    assert!(a.contains("with one arena allowed"), "{a}");
    assert!(!a.contains("contradicts"), "{a}");
    assert_no_question_mark(&answers);
}

#[test]
fn the_arena_limit_is_read_from_tunables_before_the_variable() {
    use crate::step1::beyond::{answer_thread, arena_max_setting};
    use crate::step1::EnvVar;
    let tunable = EnvVar::new(
        "GLIBC_TUNABLES",
        "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=1",
    );
    let var = EnvVar::new("MALLOC_ARENA_MAX", "4");
    assert_eq!(
        arena_max_setting(&[var.clone(), tunable.clone()]),
        Some((format!("GLIBC_TUNABLES={}", tunable.value), 1))
    );
    assert_eq!(
        arena_max_setting(std::slice::from_ref(&var)),
        Some(("MALLOC_ARENA_MAX=4".to_string(), 4))
    );
    assert_eq!(arena_max_setting(&[]), None);
    let doc = &evidence("glibc-2.36-arena-max-1").thread_arena.unwrap().doc;
    let a = answer_thread(doc, &[tunable]);
    assert!(
        a.contains("glibc.malloc.arena_max=1, one arena at most"),
        "{a}"
    );
    // Without the setting, the same chunk in [heap] is reported, and its cause as not measured.
    let a = answer_thread(doc, &[]);
    assert!(a.contains("it lies in [heap]"), "{a}");
    assert!(a.contains("the environment set no arena limit"), "{a}");
    assert!(a.contains("did not show why"), "{a}");
    assert!(!a.contains("contradicts"), "{a}");
}

/// Under an address-space limit (`ulimit -v 60000`) glibc can make no thread heap, and the
/// second thread's chunk is mmapped on its own (tag 0x1002): that is said, not "a thread heap
/// … which contradicts glibc's thread arenas" (review 32, seen live).
#[test]
fn a_thread_chunk_mmapped_on_its_own_is_said_to_be_in_no_arena() {
    use crate::step1::beyond::answer_thread;
    let mut doc = evidence("glibc-2.36-arena-max-1").thread_arena.unwrap().doc;
    doc.thread_chunk.tag = "0x1002".into();
    let a = answer_thread(&doc, &[]);
    assert!(
        a.contains("its tag has IS_MMAPPED (0x2): the chunk is a mapping of its own"),
        "{a}"
    );
    assert!(a.contains("no thread arena at all"), "{a}");
    assert!(
        !a.contains("contradicts") && !a.contains("it lies in"),
        "{a}"
    );
}

#[test]
fn a_threshold_above_the_freed_block_says_no_mapping_was_freed() {
    let name = "glibc-2.36-mmap-threshold-33554432";
    let ev = evidence(name);
    let f = findings(name);
    let t = f.threshold_effects.as_ref().expect("measured");
    assert_eq!(t.dynamic.freed_mapped_length, None);
    assert_eq!(t.dynamic.freed_region.as_deref(), Some("heap"));
    assert!(!t.dynamic.moved);
    let s = f.sweep.as_ref().expect("swept");
    assert_eq!(s.mmap_rows, 0);
    let answers = answers(&f, &ev);
    let a = answers
        .iter()
        .find(|a| a.starts_with("malloc switches to mmap"))
        .expect("the threshold answer");
    assert!(a.contains("could not be shown"), "{a}");
    assert!(a.contains("came from the heap"), "{a}");
    assert!(a.contains("MALLOC_MMAP_THRESHOLD_=33554432"), "{a}");
    assert!(!a.contains("did NOT move"), "{a}");
    assert!(a.contains("did not reach the switch"), "{a}");
    assert_no_question_mark(&answers);
    let text: String = Step1::explain(&f, &ev)
        .into_iter()
        .filter_map(|b| match b {
            Block::Evidence(e) => Some(e.text),
            _ => None,
        })
        .collect();
    assert!(
        text.contains("a 16777216-byte block from the heap, not mmapped"),
        "{text}"
    );
    assert!(!text.contains("mapping ?"), "{text}");
}

/// The default fixture as a run whose `threshold` failed the way it does under
/// `MALLOC_TOP_PAD_=1048576` (its tuned run then never starts), its error recorded.
fn threshold_failed_under_top_pad() -> Evidence {
    let mut ev = evidence("glibc-2.36-default");
    ev.environment = vec![crate::step1::EnvVar::new("MALLOC_TOP_PAD_", "1048576")];
    let Outcome::Measured(m) = &mut ev.outcome else {
        panic!("measured fixture")
    };
    m.threshold = None;
    m.tuned_threshold = None;
    ev.failed.push(crate::step1::FailedRun {
        args: vec!["--json".into(), "threshold".into()],
        env: vec![],
        status: Some(1),
        error: "child malloc-probe probe-one 131049 failed (exit status: 1): error: the filler \
                block did not come from the top chunk (0x5569f6023730 != 0x5569f60a36e0); \
                cannot control the heap here"
            .into(),
    });
    ev
}

#[test]
fn a_failed_threshold_run_leaves_only_the_switch_not_measured_with_its_reason() {
    let ev = threshold_failed_under_top_pad();
    let f = analyze(&ev).unwrap();
    assert_eq!((f.threshold_request, f.threshold_chunk_size), (None, None));
    assert!(f.threshold_effects.is_none());
    // 1.1, 1.2 and 1.4 still come from free-bit and the sweep.
    assert_eq!((f.prev_inuse_bit, f.is_mmapped_bit), (Some(0), Some(1)));
    assert!(f.formula.is_some());
    let why = f.not_measured("1.3").expect("1.3 not measured");
    assert!(
        why.contains("could not drain the top chunk under MALLOC_TOP_PAD_=1048576"),
        "{why}"
    );
    for q in ["1.1", "1.2", "1.4"] {
        assert_eq!(f.not_measured(q), None, "{q}");
    }
    assert_eq!(f.failed_runs.len(), 1);
    let glance = Step1::glance(&f);
    assert!(
        glance[2]
            .text
            .starts_with("not measured: `threshold` could not drain"),
        "{:?}",
        glance[2]
    );
    for g in [&glance[0], &glance[1], &glance[3]] {
        assert!(!g.text.contains("not measured"), "{g:?}");
    }
    for g in &glance {
        assert!(
            g.line().chars().count() <= crate::report::GLANCE_MAX,
            "{}",
            g.line()
        );
    }
    let a = answers(&f, &ev);
    assert!(
        a[2].starts_with("Not measured in this run: `threshold` could not drain"),
        "{}",
        a[2]
    );
    assert!(a[0].starts_with("Bit 0"), "{}", a[0]);
}

#[test]
fn a_sweep_that_ends_below_a_measured_threshold_is_not_called_unmeasured() {
    // MALLOC_MMAP_THRESHOLD_=33554432: no mmap row in the 1 MiB sweep, but the threshold and
    // the page edge were measured; 1.2 keeps its own answer pointing to 1.3's probes.
    let f = findings("glibc-2.36-mmap-threshold-33554432");
    assert_eq!(f.sweep.as_ref().unwrap().mmap_rows, 0);
    assert!(f.not_measured.is_empty(), "{:?}", f.not_measured);
    assert!(f.failed_runs.is_empty());
}

#[test]
fn a_sweep_with_no_mmap_row_under_mmap_max_0_says_why_for_the_mmap_questions() {
    let mut ev = threshold_failed_under_top_pad();
    ev.environment = vec![crate::step1::EnvVar::new("MALLOC_MMAP_MAX_", "0")];
    ev.failed[0].error = "no request up to 67108864 bytes was served by mmap (is mmap disabled, \
                          e.g. GLIBC_TUNABLES=glibc.malloc.mmap_max=0?)"
        .into();
    let Outcome::Measured(m) = &mut ev.outcome else {
        panic!("measured fixture")
    };
    // Keep only the sweep's heap rows, with their markers, as MALLOC_MMAP_MAX_=0 leaves it.
    let heap: Vec<u64> = m
        .sweep
        .doc
        .allocations
        .iter()
        .filter(|r| r.region == "heap")
        .map(|r| r.request as u64)
        .collect();
    m.sweep.doc.allocations.retain(|r| r.region == "heap");
    m.sweep.trace.calls.retain(|c| {
        !matches!(lab_trace::markers::marker(c), Some(k) if k.word == "malloc" && !heap.contains(&k.n))
    });
    m.page_edge = None;
    let f = analyze(&ev).unwrap();
    let never = "with MALLOC_MMAP_MAX_=0 malloc never used mmap up to 64 MiB";
    assert_eq!(
        f.not_measured("1.2"),
        Some(format!("{never}: no mmapped chunk's tag to compare").as_str())
    );
    assert_eq!(
        f.not_measured("1.3"),
        Some(format!("{never}: there is no threshold to find").as_str())
    );
    assert_eq!(
        f.not_measured("1.4"),
        Some(format!("{never}: no mmap length to compare with x").as_str())
    );
    assert_eq!(f.not_measured("1.1"), None);
    let glance = Step1::glance(&f);
    assert!(!glance[0].text.contains("not measured"), "{:?}", glance[0]);
    for g in &glance[1..] {
        assert!(
            g.text.starts_with(&format!("not measured: {never}")),
            "{g:?}"
        );
    }
}
