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
//!
//! None was edited by hand. The three measured sets were recorded again (same commands) when
//! `free-bit` gained its last attempt, a 24-byte chunk freed and then malloc(10000). The live
//! tests run the real probe under the real strace.
//!
//! Here: what xtask adds (the pictures, the measurement, live runs, reading recorded files);
//! the Findings and the narrative alone are asserted in `lab_analysis::step1`'s tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::measure::{self, malloc_environment, with_tunable, Probe};

use lab_analysis::step1::analyze::{analyze, glibc_mmap_len, mmap_lengths_of, tunable_value};
use lab_analysis::step1::Step1;
use lab_analysis::step1::{wire, EnvVar, Evidence, Findings, Outcome, Traced};
use lab_analysis::Block;

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/evidence")
        .join(name)
}

fn evidence(name: &str) -> Evidence {
    crate::evidence::load(&fixture_dir(name), 1).unwrap_or_else(|e| panic!("fixture {name}: {e:#}"))
}

const FIXTURES: [&str; 4] = [
    "glibc-2.36-default",
    "glibc-2.36-mmap-threshold-65536",
    "glibc-2.36-tcache-count-0",
    "preloaded-malloc-shim",
];

fn answers(f: &Findings, ev: &Evidence) -> Vec<String> {
    crate::model::tests::explained::<Step1>(f, ev)
        .blocks
        .into_iter()
        .filter_map(|b| match b {
            Block::Answer(a) => Some(a.answer),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Live: the real probe under the real strace.
/// A debug malloc-probe built by cargo for these tests (once).
pub(crate) fn probe_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = crate::build::workspace_root();
        let target = crate::build::target_dir(&root).expect("cargo metadata");
        let status = crate::build::cargo()
            .args(["build", "--quiet", "-p", "malloc-probe"])
            .current_dir(&root)
            .status()
            .expect("cargo build runs");
        assert!(status.success(), "cargo build -p malloc-probe failed");
        target.join("debug").join("malloc-probe")
    })
    .clone()
}

/// Whether strace can run here; without it (outside CI) a live test says so and skips.
pub(crate) fn strace_or_skip(test: &str) -> bool {
    match lab_trace::run::check() {
        Ok(()) => true,
        Err(e) => {
            crate::testing::skip(test, &format!("needs strace: {e}"));
            false
        }
    }
}

/// An LD_PRELOAD shim whose allocator calls glibc's own: malloc is no longer glibc's symbol.
const SHIM: &str = "\
#include <stddef.h>
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
void *malloc(size_t n) { return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void *calloc(size_t n, size_t m) { return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
";

#[test]
fn a_foreign_malloc_is_refused_and_nothing_is_concluded() {
    let ev = evidence("preloaded-malloc-shim");
    assert!(ev.environment.iter().any(|v| v.name == "LD_PRELOAD"));
    let f = analyze(&ev).unwrap();
    assert!(f
        .foreign_allocator
        .as_deref()
        .is_some_and(|e| e.contains("not from glibc")));
    assert_eq!(f.prev_inuse_bit, None);
    assert_eq!(f.is_mmapped_bit, None);
    assert_eq!(f.threshold_request, None);
    assert!(f.mmap_lengths.is_empty());
    let x = crate::model::tests::explained::<Step1>(&f, &ev);
    assert!(x.pictures.is_empty());
    let a = answers(&f, &ev);
    assert_eq!(a.len(), 6);
    assert!(a.iter().all(|a| a.starts_with("Not answered in this run")));
}

#[test]
fn every_fixture_is_explained_with_six_answers_and_its_pictures() {
    for name in FIXTURES {
        let ev = evidence(name);
        let f = analyze(&ev).unwrap();
        let x = crate::model::tests::explained::<Step1>(&f, &ev);
        let n = x
            .blocks
            .iter()
            .filter(|b| matches!(b, Block::Answer(_)))
            .count();
        assert_eq!(n, 6, "{name}");
        for p in &x.pictures {
            assert!(p.svg.is_ok(), "{name}: {} has no picture", p.file);
        }
        let measured = matches!(ev.outcome, Outcome::Measured(_));
        assert_eq!(x.pictures.len(), if measured { 2 } else { 0 }, "{name}");
        // The findings serialise (they are the `--json` report's `findings`).
        serde_json::to_value(&f).unwrap();
    }
}

#[test]
fn default_answers_quote_this_run() {
    let ev = evidence("glibc-2.36-default");
    let f = analyze(&ev).unwrap();
    let a = answers(&f, &ev);
    assert!(a[0].starts_with("Bit 0 (value 0x1, PREV_INUSE) of the NEXT chunk's tag"));
    assert!(a[1].starts_with("Bit 1 (value 0x2, IS_MMAPPED)"));
    assert!(a[2].contains("a request of 131049 bytes, i.e. a chunk size of 131072"));
    assert!(a[3].contains("16 < h ≤ 24"));
    assert!(a[4].contains("freeing requests 1000, 1032 (chunks 1008, 1040) now clears"));
    assert!(a[4].contains(
        "Requests 24, 100 (chunks 32, 112) still change nothing: free put them on a fastbin"
    ));
    assert!(a[5].contains("B's tag went 0x21 -> 0x20"));
    let x = crate::model::tests::explained::<Step1>(&f, &ev);
    let pics: Vec<&str> = x.pictures.iter().map(|p| p.file.as_str()).collect();
    assert_eq!(pics, ["step1-chunks.svg", "step1-free-bit.svg"]);
    assert_eq!(x.pictures[0].marks, ("circle", 79));
    // 8 requests plus "24, then malloc(10000)", in both runs.
    assert_eq!(x.pictures[1].marks, ("circle", 18));
}

#[test]
fn a_missing_field_in_recorded_evidence_is_named() {
    let tmp = crate::report::tests::tempdir("step1-missing");
    let text =
        std::fs::read_to_string(fixture_dir("glibc-2.36-default").join("step1.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let row = &mut doc["evidence"]["outcome"]["sweep"]["doc"]["allocations"][3];
    row.as_object_mut().unwrap().remove("mapped_length");
    std::fs::write(tmp.path().join("step1.json"), doc.to_string()).unwrap();
    let e = crate::evidence::load::<Evidence>(tmp.path(), 1).unwrap_err();
    assert!(
        format!("{e:#}").contains("missing field `mapped_length`"),
        "{e:#}"
    );
}

#[test]
fn tunables_are_added_after_what_the_environment_sets() {
    let none: Vec<EnvVar> = Vec::new();
    assert_eq!(
        with_tunable(&none, "glibc.malloc.tcache_count=0").to_string(),
        "GLIBC_TUNABLES=glibc.malloc.tcache_count=0"
    );
    let env = vec![EnvVar::new(
        "GLIBC_TUNABLES",
        "glibc.malloc.mmap_threshold=65536",
    )];
    assert_eq!(
        with_tunable(&env, "glibc.malloc.mmap_threshold=32768").value,
        "glibc.malloc.mmap_threshold=65536:glibc.malloc.mmap_threshold=32768"
    );
    // Already the last word: unchanged.
    let env = vec![EnvVar::new("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")];
    assert_eq!(
        with_tunable(&env, "glibc.malloc.tcache_count=0").value,
        "glibc.malloc.tcache_count=0"
    );
    assert_eq!(tunable_value("a=1:b=2:a=3", "a"), Some("3"));
    assert_eq!(tunable_value("a=1", "b"), None);
    let vars = [
        ("PATH", "/bin"),
        ("MALLOC_ARENA_MAX", "2"),
        ("GLIBC_TUNABLES", "x=1"),
        ("LD_PRELOAD", "/lib/x.so"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let env = malloc_environment(vars.into_iter());
    let names: Vec<&str> = env.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["GLIBC_TUNABLES", "LD_PRELOAD", "MALLOC_ARENA_MAX"]);
}

#[test]
fn live_pairing_of_the_real_probe() {
    if !strace_or_skip("live_pairing_of_the_real_probe") {
        return;
    }
    let dir = crate::report::tests::tempdir("step1-live");
    let probe = Probe {
        path: probe_binary(),
        environment: Vec::new(),
    };
    let traced: Traced<wire::AllocReport> = probe
        .traced(
            &["--json", "--mark", "alloc", "24", "300000", "1MiB"],
            Vec::new(),
            dir.path(),
        )
        .expect("the probe runs under strace");
    let page = traced.doc.allocator.page_size as u64;
    let pairs = mmap_lengths_of(&traced, page).unwrap();
    // 1 MiB can never come from the top chunk: it is mmapped, length per glibc's formula.
    let mib = pairs
        .iter()
        .find(|p| p.request == 1 << 20)
        .expect("1 MiB paired");
    assert_eq!(mib.length, glibc_mmap_len(1 << 20, page));
    assert_eq!(mib.tag_length, Some(mib.length));
    assert_eq!(mib.pointer_offset, 16);
    // Every mmapped row is paired, no heap row is.
    for row in &traced.doc.allocations {
        let paired = pairs.iter().any(|p| p.request == row.request as u64);
        assert_eq!(paired, row.region == "mmap", "malloc({})", row.request);
    }
}

#[test]
fn live_a_preloaded_malloc_is_refused() {
    if !strace_or_skip("live_a_preloaded_malloc_is_refused") {
        return;
    }
    let dir = crate::report::tests::tempdir("step1-shim");
    let src = dir.path().join("shim.c");
    let lib = dir.path().join("libshim.so");
    std::fs::write(&src, SHIM).unwrap();
    let cc = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status();
    match cc {
        Ok(s) if s.success() => {}
        other => panic!("cc could not build the shim ({other:?}); Rust needs cc to link anyway"),
    }
    let probe = Probe {
        path: probe_binary(),
        environment: vec![EnvVar::new("LD_PRELOAD", lib.to_string_lossy())],
    };
    let ev = measure::measure_with(&probe, true, dir.path()).expect("a refusal is evidence");
    let Outcome::Refused(r) = &ev.outcome else {
        panic!("the probe read tags under a foreign malloc")
    };
    assert_eq!(r.status, Some(1));
    assert!(r.error.contains("libshim.so"), "{}", r.error);
    let f = analyze(&ev).unwrap();
    assert!(f.foreign_allocator.is_some());
    assert_eq!(f.prev_inuse_bit, None);
}

/// The real probe's `threshold` under `MALLOC_MMAP_THRESHOLD_=33554432`, explained in place of
/// the default fixture's: the block it frees first (16 MiB) comes from the heap, so the answer
/// says no mapping was freed, with no `?` for the missing length.
#[test]
fn live_a_threshold_above_the_freed_block_is_explained_without_a_freed_mapping() {
    let setting = EnvVar::new("MALLOC_MMAP_THRESHOLD_", "33554432");
    let probe = Probe {
        path: probe_binary(),
        environment: vec![setting.clone()],
    };
    let run: lab_analysis::step1::Run<wire::ThresholdReport> = probe
        .run(&["--json", "threshold"], vec![])
        .expect("the threshold probe runs");
    let d = &run.doc.threshold.dynamic;
    assert_eq!(d.freed_mapped_length, None, "{d:?}");
    let mut ev = evidence("glibc-2.36-default");
    ev.environment = vec![setting];
    let Outcome::Measured(m) = &mut ev.outcome else {
        panic!("measured fixture")
    };
    m.threshold = Some(run);
    let f = analyze(&ev).unwrap();
    let answers = answers(&f, &ev);
    let a = answers
        .iter()
        .find(|a| a.starts_with("malloc switches to mmap"))
        .expect("the threshold answer");
    assert!(a.contains("could not be shown"), "{a}");
    assert!(a.contains("came from the heap"), "{a}");
    assert!(!a.contains('?'), "{a}");
}
