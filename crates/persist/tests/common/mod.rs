//! Helpers shared by the integration tests: a temporary directory per test, running the
//! binary, and a tiny PRNG.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

#[path = "../tmpfs/mod.rs"]
mod tmpfs;
#[allow(unused_imports)]
pub use tmpfs::{skip_unless_ci as skip, Tmpfs};

/// A fresh directory removed (with its contents) when dropped, also when the test fails.
pub fn tempdir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("persist-test-{name}-"))
        .tempdir()
        .unwrap()
}

pub const BIN: &str = env!("CARGO_BIN_EXE_persist");

/// Runs `persist ARGS` with `stdin` and returns its output.
pub fn persist(args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("persist runs");
    let mut pipe = child.stdin.take().unwrap();
    let _ = pipe.write_all(stdin);
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// Runs `persist ARGS`, asserts success, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = persist(args, b"");
    assert!(
        out.status.success(),
        "persist {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `persist ARGS`, asserts it fails with `code` and a one-line `error: ` message
/// containing `needle`; returns stderr.
pub fn fails(args: &[&str], code: i32, needle: &str) -> String {
    let out = persist(args, b"");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "persist {args:?}: {err}");
    assert!(
        err.contains(needle),
        "persist {args:?}: {err:?} lacks {needle:?}"
    );
    assert!(
        !err.contains("panicked"),
        "persist {args:?} panicked: {err}"
    );
    if code == 1 {
        assert!(err.starts_with("error: "), "{err:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    }
    err
}

/// xorshift64*.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The seed: `PERSIST_TEST_SEED` if set (to replay a failure), else the clock. Printed so a
/// failing run can be replayed.
pub fn seed() -> u64 {
    let s = std::env::var("PERSIST_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("PERSIST_TEST_SEED={s}");
    s | 1
}

/// Builds a table at `path` through the library with `n` entries `k{i}` -> `v{i}-...`.
pub fn build(path: &Path, n: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut t = persist::TableMut::create(path, 3).unwrap();
    let mut kv = Vec::new();
    for i in 0..n {
        let k = format!("k{i}").into_bytes();
        let v = format!("v{i}-{}", "x".repeat((i % 13) as usize)).into_bytes();
        t.put(&k, &v).unwrap();
        kv.push((k, v));
    }
    t.close().unwrap();
    kv
}

/// Whether the tests run as root (needed to mount a tmpfs, or to give a file away).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The slot array a version 3 table's header names: (byte offset, slot count). The descriptor
/// at offset 24 holds the offset / 8 in its high half and the count in its low half.
#[allow(dead_code)]
pub fn slot_array(b: &[u8]) -> (usize, usize) {
    let desc = u64::from_le_bytes(b[24..32].try_into().unwrap());
    (((desc >> 32) * 8) as usize, (desc & 0xffff_ffff) as usize)
}
