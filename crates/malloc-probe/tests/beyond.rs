//! Beyond glibc's main arena, on the real binary: `thread-arena` against the real glibc, and
//! `--allocator` with paths that cannot be preloaded and with an allocator that crashes at load
//! (built with `cc` here).

use std::process::{Command, Output};

use malloc_probe::{ThreadArenaReport, ThreadHeap};

const BIN: &str = env!("CARGO_BIN_EXE_malloc-probe");

fn probe(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("LD_PRELOAD")
        .env_remove("GLIBC_TUNABLES")
        .output()
        .expect("malloc-probe runs")
}

/// stderr, which must be exactly one line starting with `error: `.
fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    err
}

/// Builds `lib{name}.so` from `source` with `cc` in `dir`.
fn build_so(dir: &std::path::Path, name: &str, source: &str) -> std::path::PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let lib = dir.join(format!("lib{name}.so"));
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status();
    assert!(
        built.is_ok_and(|s| s.success()),
        "cc builds lib{name}.so (Rust needs cc to link anyway)"
    );
    lib
}

#[test]
fn a_second_threads_chunk_has_non_main_arena_and_an_aligned_heap() {
    let out = probe(&["--json", "thread-arena"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: ThreadArenaReport = serde_json::from_slice(&out.stdout).unwrap();
    let f = &r.findings;
    assert!(f.a_bit_thread, "{r:?}");
    assert!(!f.a_bit_main, "{r:?}");
    let thread_addr = lab_trace::parse_hex(&r.thread_chunk.address).unwrap();
    let heap = ThreadHeap::find(r.maps.iter().map(String::as_str), thread_addr)
        .expect("an anonymous rw mapping holds the thread's chunk");
    assert_eq!(
        f.heap_mapping.as_deref(),
        Some(format!("{:#x}-{:#x}", heap.rw.0, heap.rw.1).as_str())
    );
    let bytes = f.heap_reservation_bytes.unwrap();
    // The reservation is the heap's alignment unit: a power of two the start is a multiple of,
    // and much more than the read-write part in use.
    assert!(bytes.is_power_of_two(), "{bytes}");
    assert_eq!(heap.rw.0 % bytes, 0);
    assert!(heap.reserved.is_some(), "{heap:?}");
    assert!(bytes > heap.rw.1 - heap.rw.0);
    // The main thread's chunk is in [heap], not in the thread's mapping.
    let main_addr = lab_trace::parse_hex(&r.main_chunk.address).unwrap();
    assert!(!(heap.rw.0..heap.rw.1).contains(&main_addr));
}

#[test]
fn an_allocator_path_that_is_no_shared_object_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.so");
    std::fs::write(&text, "just text\n").unwrap();
    let missing = dir.path().join("absent.so");
    for (path, says) in [
        (text.as_path(), "not an ELF file"),
        (dir.path(), "is a directory"),
        (missing.as_path(), "does not exist"),
    ] {
        let out = probe(&["--allocator", path.to_str().unwrap(), "kernel-calls"]);
        assert_eq!(out.status.code(), Some(2), "{path:?}");
        let err = one_line_error(&out);
        assert!(err.contains(says), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn an_allocator_that_crashes_at_load_is_named_with_its_signal() {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_so(
        dir.path(),
        "crash",
        "#include <stdlib.h>\n\
         __attribute__((constructor)) static void crash_at_load(void) { abort(); }\n\
         void *malloc(unsigned long n) { (void)n; return 0; }\n",
    );
    let out = Command::new(BIN)
        .args([
            "--json",
            "--allocator",
            lib.to_str().unwrap(),
            "kernel-calls",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // Nothing left behind: no core file in the working directory.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["crash.c", "libcrash.so"]);
    let err = one_line_error(&out);
    assert!(err.contains("SIGABRT"), "{err}");
    assert!(err.contains("libcrash.so"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn kernel_calls_under_glibc_lists_every_malloc() {
    let out = probe(&[
        "--json",
        "kernel-calls",
        "--sizes",
        "1K,200K",
        "--repeat",
        "2",
    ]);
    assert!(out.status.success());
    let r: malloc_probe::KernelCallsReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r.preloaded, None);
    assert_eq!(r.repeat, 2);
    let requests: Vec<usize> = r.mallocs.iter().map(|m| m.request).collect();
    assert_eq!(requests, [1024, 1024, 204_800, 204_800]);
    assert!(r.mallocs.iter().all(|m| m.address.is_some()));
}

#[test]
fn an_allocator_that_hangs_at_load_is_killed_with_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_so(
        dir.path(),
        "hang",
        "#include <unistd.h>\n\
         __attribute__((constructor)) static void hang_at_load(void) { for (;;) pause(); }\n",
    );
    let out = probe(&[
        "--allocator",
        lib.to_str().unwrap(),
        "--allocator-timeout",
        "1",
        "kernel-calls",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_line_error(&out);
    assert!(err.contains("did not finish within 1 s"), "{err}");
}
