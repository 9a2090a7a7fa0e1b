//! Live: other allocators measured through strace alone (`--allocator`), the odd ones (an
//! allocator that never calls the kernel), musl built with `musl-gcc`, and the thread arena.
//! jemalloc, tcmalloc and mimalloc come from the distribution (`apt-get install libjemalloc2
//! libgoogle-perftools4 libmimalloc2.0`): a test whose library is absent says it skipped, and
//! fails under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use lab_analysis::step1::allocator::{self, AllocatorEvidence, KernelCall, Returned};
use lab_analysis::step1::wire::KernelCallsReport;
use lab_analysis::step1::Traced;

use super::measure::{self, Probe};
use super::tests::{probe_binary, strace_or_skip};
use crate::testing::skip;
use lab_analysis::step1::Step1;

/// The library whose SONAME starts with `prefix` (`libjemalloc.so`), from `ldconfig -p`, else
/// from the usual library directories of any distribution.
fn find_library(prefix: &str) -> Option<PathBuf> {
    let cache = Command::new("ldconfig")
        .arg("-p")
        .output()
        .or_else(|_| Command::new("/sbin/ldconfig").arg("-p").output());
    if let Ok(out) = cache {
        let text = String::from_utf8_lossy(&out.stdout);
        let found = text
            .lines()
            .filter(|l| l.trim_start().starts_with(prefix))
            .filter(|l| !cfg!(target_arch = "x86_64") || l.contains("x86-64"))
            .find_map(|l| l.split_once("=> ").map(|(_, p)| PathBuf::from(p.trim())));
        if found.as_deref().is_some_and(Path::is_file) {
            return found;
        }
    }
    let arch = format!("{}-linux-gnu", std::env::consts::ARCH);
    let dirs = [
        format!("/usr/lib/{arch}"),
        format!("/lib/{arch}"),
        "/usr/lib64".into(),
        "/lib64".into(),
        "/usr/lib".into(),
        "/usr/local/lib".into(),
    ];
    dirs.iter().find_map(|d| {
        let mut names: Vec<PathBuf> = std::fs::read_dir(d)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .collect();
        names.sort();
        names.into_iter().next()
    })
}

fn cc(dir: &Path, compiler: &str, args: &[&str]) -> bool {
    Command::new(compiler)
        .args(args)
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success())
}

/// Measures the allocator at `path` as `run-step 1 --allocator` does.
fn measure_allocator(path: &Path, dir: &Path) -> AllocatorEvidence {
    let probe = Probe {
        path: probe_binary(),
        environment: vec![],
    };
    measure::measure_allocator(&probe, path, dir).expect("the ladder runs under strace")
}

/// jemalloc, tcmalloc or mimalloc: a switch is found, with its call, bytes and free.
fn live_allocator(test: &str, prefix: &str, name: &str, package: &str) {
    if !strace_or_skip(test) {
        return;
    }
    let Some(lib) = find_library(prefix) else {
        return skip(test, &format!("no {prefix}*; apt-get install {package}"));
    };
    let dir = crate::report::tests::tempdir(test);
    let e = measure_allocator(&lib, dir.path());
    assert_eq!(e.name, name);
    let f = allocator::analyze(&e).unwrap();
    let switch = f
        .switch_request
        .unwrap_or_else(|| panic!("{name}: no switch: {}", allocator::no_switch_reason(&e)));
    assert!(
        (4096..=64 << 20).contains(&switch),
        "{name}: switch {switch}"
    );
    assert!(f.syscall.is_some(), "{name}: {f:?}");
    assert!(f.returned_on_free.is_some(), "{name}: {f:?}");
    assert!(
        f.mapped_per_request
            .first()
            .is_some_and(|m| m.request == switch),
        "{name}: {f:?}"
    );
    // A kernel call that made room for the whole request asks for at least the request.
    for m in &f.mapped_per_request {
        assert!(m.bytes >= m.request, "{name}: {m:?}");
    }
    assert!(f.documented.contains(name), "{}", f.documented);
    // A finer round ran and its sizes lie in the coarse bracket.
    assert!(
        e.rounds.len() >= 2,
        "{name}: only {} round(s)",
        e.rounds.len()
    );
}

#[test]
fn live_jemalloc() {
    live_allocator(
        "live_jemalloc",
        "libjemalloc.so",
        "jemalloc",
        "libjemalloc2",
    );
}

#[test]
fn live_tcmalloc() {
    live_allocator(
        "live_tcmalloc",
        "libtcmalloc.so",
        "tcmalloc",
        "libgoogle-perftools4",
    );
}

#[test]
fn live_mimalloc() {
    live_allocator(
        "live_mimalloc",
        "libmimalloc.so",
        "mimalloc",
        "libmimalloc2.0",
    );
}

/// An allocator serving every request from static buffers: small ones from one pool (so the
/// probe's own Rust allocations keep working), large ones from another until it runs out.
pub const STATIC_ALLOCATOR: &str = r#"
#include <errno.h>
#include <stddef.h>
#include <string.h>
#define SMALL (64 << 10)
static char small_pool[16 << 20] __attribute__((aligned(4096)));
static char large_pool[32 << 20] __attribute__((aligned(4096)));
static size_t small_used, large_used;
static void *bump(char *pool, size_t size, size_t *used, size_t align, size_t n) {
    size_t start = (*used + align - 1) & ~(align - 1);
    if (n == 0) n = 1;
    if (n > size || start > size - n) { errno = ENOMEM; return NULL; }
    *used = start + n;
    return pool + start;
}
static void *take(size_t align, size_t n) {
    if (align < 16) align = 16;
    if (n < SMALL) return bump(small_pool, sizeof small_pool, &small_used, align, n);
    return bump(large_pool, sizeof large_pool, &large_used, align, n);
}
void *malloc(size_t n) { return take(16, n); }
void free(void *p) { (void)p; }
void *calloc(size_t a, size_t b) {
    if (b && a > (size_t)-1 / b) { errno = ENOMEM; return NULL; }
    return take(16, a * b); /* never handed out before, so still zero */
}
static size_t room(void *p) {
    char *c = p;
    if (c >= small_pool && c < small_pool + sizeof small_pool) return small_pool + sizeof small_pool - c;
    return large_pool + sizeof large_pool - c;
}
void *realloc(void *p, size_t n) {
    void *q = take(16, n);
    if (q && p) memcpy(q, p, n < room(p) ? n : room(p));
    return q;
}
int posix_memalign(void **out, size_t align, size_t n) {
    void *p = take(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
void *aligned_alloc(size_t align, size_t n) { return take(align, n); }
void *memalign(size_t align, size_t n) { return take(align, n); }
"#;

#[test]
fn live_an_allocator_that_never_calls_the_kernel_has_an_honest_null() {
    let test = "live_an_allocator_that_never_calls_the_kernel_has_an_honest_null";
    if !strace_or_skip(test) {
        return;
    }
    let dir = crate::report::tests::tempdir("step1-static-allocator");
    std::fs::write(dir.path().join("static.c"), STATIC_ALLOCATOR).unwrap();
    assert!(
        cc(
            dir.path(),
            "cc",
            &["-shared", "-fPIC", "-O1", "-o", "libstatic.so", "static.c"]
        ),
        "cc builds the static allocator (Rust needs cc to link anyway)"
    );
    let e = measure_allocator(&dir.path().join("libstatic.so"), dir.path());
    let f = allocator::analyze(&e).unwrap();
    assert_eq!(f.name, "static");
    assert_eq!(f.switch_request, None, "{f:?}");
    assert_eq!(f.syscall, None);
    assert_eq!(f.returned_on_free, None);
    assert!(f.mapped_per_request.is_empty());
    let why = allocator::no_switch_reason(&e);
    assert!(why.starts_with("none of its"), "{why}");
    assert!(why.contains("returned NULL"), "{why}");
    // No finer round: there is no bracket to search.
    assert_eq!(e.rounds.len(), 1);
}

/// The ladder in C, for a static musl build: the same markers and the same JSON document as
/// `malloc-probe kernel-calls` (argv: repeat, then the sizes).
const MUSL_LADDER: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void mark(const char *word, size_t n) {
    char buf[48];
    int len = snprintf(buf, sizeof buf, "%s %zu", word, n);
    if (write(-1, buf, len) != -1) abort();
}
int main(int argc, char **argv) {
    int repeat = atoi(argv[1]), sizes = argc - 2, n = sizes * repeat;
    size_t *req = calloc(n, sizeof *req);
    void **got = calloc(n, sizeof *got);
    if (!req || !got) return 1;
    for (int i = 0; i < n; i++) {
        req[i] = strtoull(argv[2 + i / repeat], 0, 10);
        mark("malloc", req[i]);
        got[i] = malloc(req[i]);
    }
    for (int i = 0; i < n; i++)
        if (got[i]) { mark("free", req[i]); free(got[i]); }
    mark("done", 0);
    printf("{\"preloaded\": null, \"malloc_object\": \"musl (static)\", \"repeat\": %d, \"mallocs\": [", repeat);
    for (int i = 0; i < n; i++) {
        if (got[i]) printf("%s{\"request\": %zu, \"address\": \"%p\"}", i ? ", " : "", req[i], got[i]);
        else printf("%s{\"request\": %zu, \"address\": null}", i ? ", " : "", req[i]);
    }
    printf("], \"page_size\": %ld}\n", sysconf(_SC_PAGESIZE));
    return 0;
}
"#;

#[test]
fn live_musl_through_the_same_analysis() {
    let test = "live_musl_through_the_same_analysis";
    if !strace_or_skip(test) {
        return;
    }
    if Command::new("musl-gcc").arg("--version").output().is_err() {
        return skip(test, "musl-gcc is missing; apt-get install musl-tools");
    }
    let dir = crate::report::tests::tempdir("step1-musl");
    std::fs::write(dir.path().join("ladder.c"), MUSL_LADDER).unwrap();
    assert!(
        cc(
            dir.path(),
            "musl-gcc",
            &["-static", "-O1", "-o", "musl-ladder", "ladder.c"]
        ),
        "musl-gcc builds the ladder"
    );
    let program = dir.path().join("musl-ladder");
    let mut rounds: Vec<Traced<KernelCallsReport>> = Vec::new();
    let mut ladders = Vec::new();
    let mut sizes: Vec<u64> = (10..=26).map(|k| 1u64 << k).collect();
    loop {
        let args: Vec<String> = std::iter::once("4".to_string())
            .chain(sizes.iter().map(u64::to_string))
            .collect();
        let t = lab_trace::run::run_command(&program, measure::ALLOCATOR_FILTER, dir.path(), |c| {
            c.args(&args);
        })
        .expect("strace runs the musl ladder");
        assert!(t.status.success(), "{}", t.stderr);
        let run = Traced {
            args: args.clone(),
            env: vec![],
            doc: serde_json::from_str(&t.stdout).expect("the ladder's JSON"),
            trace: t.trace,
        };
        ladders.push(allocator::ladder(&run).unwrap());
        rounds.push(run);
        match allocator::next_round(&ladders) {
            Some(next) => sizes = next,
            None => break,
        }
    }
    let e = AllocatorEvidence {
        path: program.display().to_string(),
        name: "musl".into(),
        rounds,
    };
    let f = allocator::analyze(&e).unwrap();
    let switch = f.switch_request.expect("musl maps large requests");
    // Every request above musl's MMAP_THRESHOLD (131052) gets its own mmap, so the switch lies
    // at or below the first ladder size above it (smaller size classes may be mapped one by one
    // too: mallocng maps a new group for them while few are in use).
    assert!(switch <= 131072, "{f:?}");
    assert!(
        f.mapped_per_request.iter().all(|m| m.bytes >= m.request),
        "{f:?}"
    );
    assert_eq!(f.syscall, Some(KernelCall::Mmap));
    assert_eq!(f.returned_on_free, Some(Returned::Munmap));
}

#[test]
fn the_recorded_thread_heap_is_drawn() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/evidence/glibc-2.36-jemalloc-thread-arena");
    let ev: lab_analysis::step1::Evidence = crate::evidence::load(&dir, 1).unwrap();
    let f = lab_analysis::step1::analyze::analyze(&ev).unwrap();
    let x = crate::model::tests::explained::<Step1>(&f, &ev);
    assert_eq!(x.pictures.len(), 3);
    let heap = &x.pictures[2];
    assert_eq!(heap.file, "step1-thread-heap.svg");
    let svg = heap.svg.as_ref().unwrap();
    assert!(svg.matches("<rect").count() >= 3, "{svg}");
    assert!(heap.caption.contains("0x7f9b34000000"), "{}", heap.caption);
}

/// The real probe's `thread-arena` with one arena allowed, set either way glibc reads it: the
/// second thread's chunk lies in [heap], and the answer follows from the setting.
#[test]
fn live_one_arena_allowed_puts_the_thread_chunk_in_the_main_heap() {
    use lab_analysis::step1::beyond::answer_thread;
    use lab_analysis::step1::wire::ThreadArenaReport;
    use lab_analysis::step1::{EnvVar, Run};
    for (setting, shown) in [
        (EnvVar::new("MALLOC_ARENA_MAX", "1"), "MALLOC_ARENA_MAX=1"),
        (
            EnvVar::new("GLIBC_TUNABLES", "glibc.malloc.arena_max=1"),
            "GLIBC_TUNABLES=glibc.malloc.arena_max=1",
        ),
    ] {
        let probe = Probe {
            path: probe_binary(),
            environment: vec![setting.clone()],
        };
        let run: Run<ThreadArenaReport> = probe
            .run(&["--json", "thread-arena"], vec![])
            .expect("thread-arena runs");
        assert!(!run.doc.findings.a_bit_thread, "{shown}: {:?}", run.doc);
        let a = answer_thread(&run.doc, &[setting]);
        assert!(a.contains("it lies in [heap]"), "{shown}: {a}");
        assert!(a.contains(shown), "{shown}: {a}");
        assert!(a.contains("with one arena allowed"), "{shown}: {a}");
        assert!(!a.contains("contradicts"), "{shown}: {a}");
    }
}
