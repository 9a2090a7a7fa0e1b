//! Runs the real malloc-probe binary against the real glibc malloc and checks its JSON against
//! glibc's arithmetic, its findings, and its failure paths.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_malloc-probe");

/// A temporary directory for one test, removed when dropped (also when the test fails).
fn tempdir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("malloc-probe-{name}-"))
        .tempdir()
        .unwrap()
}

fn probe(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir.path());
    // Each test controls the allocator settings itself.
    cmd.env_remove("GLIBC_TUNABLES")
        .env_remove("MALLOC_MMAP_THRESHOLD_")
        .env_remove("LD_PRELOAD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("malloc-probe runs")
}

fn json(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = probe(dir, args, env);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("exactly one JSON document on stdout")
}

/// glibc's request2size on 64-bit: request plus the size field, rounded up to 16, at least 32.
fn request2size(x: u64) -> u64 {
    ((x + 8 + 15) & !15).max(32)
}

fn hex(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn alloc_rows_follow_glibc_arithmetic_for_many_sizes() {
    let dir = tempdir("alloc");
    let mut sizes: Vec<String> = Vec::new();
    for x in [
        0u64, 1, 8, 23, 24, 25, 40, 41, 100, 1000, 1024, 4095, 4096, 65535, 100_000,
    ] {
        sizes.push(x.to_string());
    }
    // Page edges, where the extra 8 bytes of an mmapped chunk spill into one more page.
    for pages in [40u64, 64, 200] {
        for d in [-24i64, -16, -9, -8, 0, 1] {
            sizes.push(((pages * 4096) as i64 + d).to_string());
        }
    }
    sizes.push("1MiB".into());
    sizes.push("3M".into());
    let args: Vec<&str> = ["--json", "alloc"]
        .into_iter()
        .chain(sizes.iter().map(String::as_str))
        .collect();
    let doc = json(&dir, &args, &[]);
    let page = doc["allocator"]["page_size"].as_u64().unwrap();
    let rows = doc["allocations"].as_array().unwrap();
    assert_eq!(rows.len(), sizes.len());
    let (mut heap, mut mmap) = (0, 0);
    for r in rows {
        let x = r["request"].as_u64().unwrap();
        let addr = hex(&r["address"]);
        let tag = hex(&r["tag"]);
        let chunk = r["chunk_size"].as_u64().unwrap();
        assert_eq!(
            chunk,
            tag & !7,
            "chunk_size is the tag without its flag bits"
        );
        assert_eq!(addr % 16, 0, "malloc returns 16-byte aligned pointers");
        match r["region"].as_str().unwrap() {
            "heap" => {
                heap += 1;
                assert_eq!(r["is_mmapped"], false);
                if r["from_top"] == true {
                    assert_eq!(chunk, request2size(x), "request {x}");
                } else {
                    // A free-list chunk may keep a remainder smaller than MINSIZE.
                    assert!(chunk >= request2size(x) && chunk < request2size(x) + 32);
                }
            }
            "mmap" => {
                mmap += 1;
                assert_eq!(r["is_mmapped"], true, "request {x}");
                assert_eq!(addr % page, 16, "pointer 16 bytes past a page start");
                let want = (request2size(x) + 8).div_ceil(page) * page;
                assert_eq!(chunk, want, "mmapped length for request {x}");
                assert_eq!(r["mapped_length"].as_u64(), Some(want));
            }
            other => panic!("unexpected region {other} for request {x}"),
        }
        assert_eq!(r["matches_glibc_arithmetic"], true, "request {x}");
        if x <= 4096 {
            assert_eq!(r["region"], "heap", "a small request comes from the heap");
        }
        if x >= 1 << 20 {
            assert_eq!(r["region"], "mmap", "no top chunk holds {x} bytes");
        }
    }
    assert!(heap >= 10 && mmap >= 3, "heap {heap}, mmap {mmap}");
    let lens = doc["findings"]["mapped_lengths"].as_array().unwrap();
    assert_eq!(lens.len(), mmap);
}

#[test]
fn sweep_finds_the_mmap_bit_and_the_region_flip() {
    let dir = tempdir("sweep");
    let doc = json(&dir, &["--json", "sweep", "--max", "2MiB"], &[]);
    let f = &doc["findings"];
    assert_eq!(f["is_mmapped_bit"], 1);
    let rows = doc["allocations"].as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["phase"] == "fine"),
        "a fine sweep ran"
    );
    for r in rows {
        assert_eq!(r["is_mmapped"] == true, r["region"] == "mmap");
    }
    let lens = f["mapped_lengths"].as_array().unwrap();
    assert!(!lens.is_empty());
    assert!(lens.iter().all(|l| l["matches"] == true));
}

#[test]
fn free_bit_finds_prev_inuse_after_the_naive_attempt_shows_nothing() {
    let dir = tempdir("freebit");
    let doc = json(&dir, &["--json", "free-bit"], &[]);
    assert_eq!(doc["findings"]["prev_inuse_bit"], 0);
    let attempts = doc["attempts"].as_array().unwrap();
    let naive = &attempts[0];
    assert_eq!(naive["request_a"], 24);
    assert_eq!(naive["b_changed_bits"].as_array().unwrap().len(), 0);
    assert_eq!(naive["tag_a_before"], naive["tag_a_after"]);
    let first = doc["findings"]["first_request_that_changed_the_bit"]
        .as_u64()
        .unwrap();
    let a = attempts.iter().find(|a| a["request_a"] == first).unwrap();
    assert_eq!(a["b_changed_bits"], serde_json::json!([0]));
    assert_eq!(hex(&a["tag_b_after"]) & 1, 0);
    assert_eq!(
        hex(&a["b_prev_size_after"]),
        a["chunk_size_a"].as_u64().unwrap(),
        "the neighbour's prev_size holds A's size once A is really free"
    );
}

/// The course's other hint: a 24-byte A freed (B's in-use bit stays), then malloc(10000).
fn large_malloc(env: &[(&str, &str)]) -> malloc_probe::FreeBitReport {
    let dir = tempdir("large");
    let out = probe(&dir, &["--json", "free-bit"], env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a typed free-bit report")
}

#[test]
fn a_large_malloc_consolidates_a_fastbin_chunk_without_the_tcache() {
    let doc = large_malloc(&[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")]);
    let l = &doc.large_malloc;
    assert_eq!(
        (l.request_a, l.chunk_size_a, l.large_request),
        (24, 32, 10_000)
    );
    // free(A) put A on a fastbin and left B's tag alone...
    assert!(l.b_changed_bits_by_free.is_empty(), "{l:?}");
    let (before, after_free, after_malloc) = (
        l.fastbins_before_free.unwrap(),
        l.fastbins_after_free.unwrap(),
        l.fastbins_after_malloc.unwrap(),
    );
    assert_eq!(after_free.chunks, before.chunks + 1, "{l:?}");
    assert_eq!(after_free.bytes, before.bytes + 32, "{l:?}");
    // ...and malloc(10000) emptied the fastbins, cleared PREV_INUSE and wrote prev_size.
    assert_eq!(after_malloc.chunks, 0, "{l:?}");
    assert_eq!(l.b_changed_bits_by_malloc, vec![0], "{l:?}");
    assert_eq!(hex(&Value::from(l.b_prev_size_after_malloc.clone())), 32);
    assert_eq!(
        l.a_word1_after_malloc_points_into, "libc.so.6",
        "a bin of main_arena"
    );
    assert_eq!(l.large_region, "heap");
    assert_eq!(doc.findings.large_malloc_cleared_the_bit, Some(true));
}

#[test]
fn a_large_malloc_clears_the_bit_exactly_when_a_went_to_a_fastbin() {
    // With the tcache on, A normally goes to the tcache, which malloc(10000) does not touch; if
    // that tcache bin were full, A would go to a fastbin and be consolidated. Either way the
    // bit changes with the large malloc exactly when the fastbins had taken A.
    for env in [
        &[][..],
        &[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")],
    ] {
        let doc = large_malloc(env);
        let l = &doc.large_malloc;
        assert!(l.b_changed_bits_by_free.is_empty(), "{env:?}: {l:?}");
        let took = l.fastbins_after_free.unwrap().chunks > l.fastbins_before_free.unwrap().chunks;
        assert_eq!(l.malloc_cleared(0), Some(took), "{env:?}: {l:?}");
        assert_eq!(doc.findings.large_malloc_cleared_the_bit, Some(took));
        if !took {
            assert_eq!(l.tag_b_after_malloc, l.tag_b_before, "{env:?}");
            assert_eq!(l.a_words_after_malloc, l.a_words_after_free, "{env:?}");
        }
    }
}

#[test]
fn threshold_is_exact_and_stable_across_runs() {
    let dir = tempdir("threshold");
    let a = json(&dir, &["--json", "threshold"], &[]);
    let b = json(&dir, &["--json", "threshold"], &[]);
    let (fa, fb) = (&a["findings"], &b["findings"]);
    assert_eq!(fa["threshold_request"], fb["threshold_request"]);
    assert_eq!(fa["threshold_chunk_size"], fb["threshold_chunk_size"]);
    let r = fa["threshold_request"].as_u64().unwrap();
    let c = fa["threshold_chunk_size"].as_u64().unwrap();
    assert_eq!(request2size(r), c);
    assert!(request2size(r - 1) < c);
    assert_eq!(fa["top_after_drain"], 32);
    // Freeing an mmapped chunk raised the threshold to that chunk's size.
    let d = &a["threshold"]["dynamic"];
    assert_eq!(d["moved"], true);
    assert_eq!(d["new_threshold_chunk_size"], d["freed_mapped_length"]);
}

#[test]
fn threshold_follows_the_tunables() {
    let dir = tempdir("tunable");
    let env = [("MALLOC_MMAP_THRESHOLD_", "65536")];
    let doc = json(&dir, &["--json", "threshold"], &env);
    let f = &doc["findings"];
    assert_eq!(f["threshold_chunk_size"], 65536);
    assert_eq!(
        request2size(f["threshold_request"].as_u64().unwrap()),
        65536
    );
    assert_eq!(
        f["dynamic_threshold_moved"], false,
        "an explicit setting is fixed"
    );

    let env = [("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=300000")];
    let doc = json(&dir, &["--json", "threshold"], &env);
    assert_eq!(doc["findings"]["threshold_chunk_size"], 300000);
}

/// The threshold's findings with no setting but `env` (and `limit`, an RLIMIT_AS in bytes).
fn threshold_under(dir: &TempDir, env: &[(&str, &str)], limit: Option<u64>) -> Value {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(BIN);
    cmd.args(["--json", "threshold"]).current_dir(dir.path());
    for (k, _) in std::env::vars() {
        if k == "GLIBC_TUNABLES" || k == "LD_PRELOAD" || k.starts_with("MALLOC_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    if let Some(bytes) = limit {
        // SAFETY: pre_exec runs between fork and exec; setrlimit(2) is async-signal-safe and
        // the closure touches nothing but its own copy of `bytes`.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{env:?} {limit:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["findings"].clone()
}

#[test]
fn a_top_pad_huge_pages_or_an_address_space_limit_still_give_the_same_switch() {
    let dir = tempdir("threshold-settings");
    let plain = threshold_under(&dir, &[], None);
    let switch = |f: &Value| {
        (
            f["threshold_request"].clone(),
            f["threshold_chunk_size"].clone(),
        )
    };
    // A top pad keeps the top large: a free chunk larger than the top took the filler before
    // the probe kept such blocks and drained again. hugetlb=1 aligns heap growth to huge pages.
    for env in [
        [("MALLOC_TOP_PAD_", "1048576")],
        [("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")],
    ] {
        let f = threshold_under(&dir, &env, None);
        assert_eq!(switch(&f), switch(&plain), "{env:?}");
        assert_eq!(f["top_after_drain"], 32, "{env:?}");
    }
    // 60000 KiB: malloc(64 MiB), the bisection's first upper bound, returns NULL.
    let f = threshold_under(&dir, &[], Some(60_000 * 1024));
    assert_eq!(switch(&f), switch(&plain));
}

#[test]
fn bad_input_is_a_one_line_usage_error() {
    let dir = tempdir("usage");
    for args in [
        &["alloc", "abc"][..],
        &["alloc"],
        &["alloc", "2T"],
        &["alloc", "99999999999999999999"],
        &["sweep", "--max", "8"],
        &["frobnicate"],
    ] {
        let out = probe(&dir, args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error:"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
    // The limit is said in TiB, so a size in TiB past it is "too large", not "not a size".
    for size in ["2T", "2TiB"] {
        let out = probe(&dir, &["alloc", size], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is too large; the limit is 1 TiB"),
            "{size}: {err}"
        );
    }
}

#[test]
fn malloc_failure_is_a_runtime_error() {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(BIN);
    cmd.args(["alloc", "24", "4GiB"]);
    // SAFETY: pre_exec runs between fork and exec; setrlimit(2) is async-signal-safe and the
    // closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: malloc(4294967296) returned NULL"),
        "{err}"
    );
}

#[test]
fn help_has_examples_and_output_survives_a_closed_pipe() {
    let dir = tempdir("help");
    let out = probe(&dir, &["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:") && help.contains("malloc-probe threshold"));

    // `malloc-probe sweep | head -1`: no panic when stdout closes early.
    let mut child = Command::new(BIN)
        .arg("sweep")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
}

/// Builds a tiny bump allocator to LD_PRELOAD: it exports malloc/free/calloc/realloc and the
/// aligned variants, so it replaces glibc's malloc entirely.
fn build_shim(dir: &Path) -> PathBuf {
    let src = dir.join("shim.c");
    std::fs::write(
        &src,
        r#"
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
static char *arena, *next, *end;
static void *bump(size_t n, size_t align) {
    if (!arena) {
        arena = mmap(0, 1UL << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (arena == MAP_FAILED) return 0;
        next = arena; end = arena + (1UL << 30);
    }
    if (align < 16) align = 16;
    char *p = (char *)(((size_t)next + 8 + align - 1) & ~(align - 1));
    if (p + n > end) return 0;
    ((size_t *)p)[-1] = n;
    next = p + n;
    return p;
}
void *malloc(size_t n) { return bump(n, 16); }
void free(void *p) { (void)p; }
void *calloc(size_t a, size_t b) { void *p = bump(a * b, 16); if (p) memset(p, 0, a * b); return p; }
void *realloc(void *p, size_t n) {
    void *q = bump(n, 16);
    if (p && q) { size_t old = ((size_t *)p)[-1]; memcpy(q, p, old < n ? old : n); }
    return q;
}
int posix_memalign(void **out, size_t align, size_t n) { *out = bump(n, align); return *out ? 0 : 12; }
void *aligned_alloc(size_t align, size_t n) { return bump(n, align); }
void *memalign(size_t align, size_t n) { return bump(n, align); }
"#,
    )
    .unwrap();
    let so = dir.join("libshim.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .expect("a C compiler (cc) is installed: Rust needs it as its linker");
    assert!(status.success(), "cc failed to build the malloc shim");
    so
}

#[test]
fn a_foreign_allocator_is_detected_not_misread() {
    let dir = tempdir("shim");
    let so = build_shim(dir.path());
    let so = so.to_str().unwrap();
    for sub in [
        &["alloc", "24", "200000"][..],
        &["--json", "threshold"],
        &["sweep"],
    ] {
        let out = probe(&dir, sub, &[("LD_PRELOAD", so)]);
        assert_eq!(out.status.code(), Some(1), "{sub:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: malloc comes from"), "{err}");
        assert!(err.contains("libshim.so"), "names the allocator: {err}");
        assert!(out.stdout.is_empty(), "no tags printed");
    }
}

/// `/dev/full`, opened for writing: every write fails with ENOSPC.
fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
}

#[test]
fn a_full_stdout_is_an_error_and_status_1_never_a_silent_0() {
    let dir = tempdir("full-stdout");
    for args in [
        &["alloc", "24"][..],
        &["--json", "alloc", "24"],
        &["sweep", "--max", "64K"],
        &["--json", "free-bit"],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .stdout(dev_full())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end(),
            "error: cannot write to stdout: No space left on device (os error 28)",
            "{args:?}"
        );
    }
}

#[test]
fn a_full_stderr_is_no_panic() {
    let dir = tempdir("full-stderr");
    // Output intact, status 0: only the notes are lost.
    let out = Command::new(BIN)
        .args(["--json", "alloc", "24"])
        .current_dir(dir.path())
        .stderr(dev_full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["allocations"][0]["request"], 24);
    // Both full: an error that cannot be told still shows in the status (1, not a panic's 101).
    let out = Command::new(BIN)
        .args(["alloc", "24"])
        .current_dir(dir.path())
        .stdout(dev_full())
        .stderr(dev_full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// The document of `args`, read as the typed report xtask reads (a missing field fails).
fn typed<T: serde::de::DeserializeOwned>(dir: &TempDir, args: &[&str]) -> T {
    let out = probe(dir, args, &[]);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?} does not match its type: {e}"))
}

#[test]
fn every_subcommand_prints_its_typed_report_with_findings() {
    use malloc_probe::{AllocReport, FreeBitReport, SweepReport, ThresholdReport};
    let dir = tempdir("typed");
    let alloc: AllocReport = typed(&dir, &["--json", "alloc", "24", "200000"]);
    assert_eq!(alloc.allocations.len(), 2);
    assert_eq!(alloc.findings.mapped_lengths.len(), 1, "200000 is mmapped");
    assert_eq!(alloc.findings.mapped_lengths[0].request, 200_000);
    let sweep: SweepReport = typed(&dir, &["--json", "sweep"]);
    assert_eq!(sweep.findings.is_mmapped_bit, Some(1));
    let free: FreeBitReport = typed(&dir, &["--json", "free-bit"]);
    assert_eq!(free.findings.prev_inuse_bit, Some(0));
    let t: ThresholdReport = typed(&dir, &["--json", "threshold"]);
    assert_eq!(t.findings.threshold_request, t.threshold.threshold_request);
    assert_eq!(
        t.findings.threshold_chunk_size,
        t.threshold.threshold_chunk_size
    );
}

/// A threshold above the block the probe frees (16 MiB under 32 MiB): that block comes from the
/// heap, and the text says no mapping was freed instead of a `?`-byte mapping.
#[test]
fn threshold_above_the_freed_block_says_no_mapping_was_freed() {
    let dir = tempdir("threshold-above");
    let out = probe(
        &dir,
        &["threshold"],
        &[("MALLOC_MMAP_THRESHOLD_", "33554432")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("the freed block came from the heap, not mmapped: no mapping was freed"),
        "{text}"
    );
    assert!(!text.contains("?-byte"), "{text}");
    assert!(!text.contains("(mmapped), free it"), "{text}");
}
