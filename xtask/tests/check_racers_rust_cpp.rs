//! Racers written in Rust and C++ against `cargo xtask check DIR`: the check reads their own
//! code, not the runtime linked into them. A Rust binary carries std (its mutexes' `xchg`, its
//! reference counts' `lock decq`); g++ -O2 addresses total as `0x0(%rbp)`, and at -O0 the loop
//! calls an out-of-line `fetch_add`. The fixtures are in `tests/racers_other_langs`, built here
//! with rustc (no crates) and g++.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

const RUSTC: common::Tool = ("rustc", "--version", "install Rust with rustup");
const CXX: common::Tool = ("g++", "--version", "apt-get install g++");

/// The races' target, as the C fixtures' Makefile sets it.
const TARGET: &str = "50000000";

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/racers_other_langs");

fn can_build(test: &str, compiler: common::Tool) -> bool {
    common::tools_present(test, &[compiler, common::STRACE, common::OBJDUMP])
}

/// Runs a compiler; panics with its stderr when it fails.
fn build(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rustc -O` of the fixture `src` into `dir/out`, raced to [`TARGET`].
fn rustc(dir: &Path, src: &str, out: &str) {
    build(
        Command::new("rustc")
            .env("RACE_TARGET", TARGET)
            .args(["-O", "--edition", "2021", "-o"])
            .arg(dir.join(out))
            .arg(Path::new(FIXTURES).join(src)),
    );
}

/// `g++ -std=c++20 OPT` of the fixture `src` into `dir/out`, raced to [`TARGET`].
fn gxx(dir: &Path, opt: &str, src: &str, out: &str) {
    build(
        Command::new("g++")
            .args(["-std=c++20", opt, &format!("-DTARGET={TARGET}L"), "-o"])
            .arg(dir.join(out))
            .arg(Path::new(FIXTURES).join(src)),
    );
}

/// `xtask check DIR --json ARGS` (`--racer P`, `--atomic-racer P`: the fixtures are built under
/// other names than the defaults, so only the racers named run).
fn check(dir: &Path, args: &[&str]) -> Value {
    common::check_json(None, dir, args)
}

/// The verdict and reason of check `id`, with its evidence for the failure messages.
fn verdict(doc: &Value, id: &str) -> (String, String) {
    let (v, reason) = common::verdict(doc, id);
    (
        v,
        format!("{reason}\n{}", common::check_entry(doc, id)["evidence"]),
    )
}

/// A1: the racy Rust racer (relaxed load, then store) and the atomic one (`fetch_add`) pass:
/// std's `lock decq` and its mutex's `xchg` are not theirs, and a stack slot `0x8(%rsp)` is not
/// total. A Rust racer "atomic" by a mutex of its own in the shared file (a swap in a loop)
/// still fails as a spin lock.
#[test]
fn rust_racers_pass_and_a_mutex_locked_one_fails_as_a_spin_lock() {
    let test = "rust_racers_pass_and_a_mutex_locked_one_fails_as_a_spin_lock";
    if !can_build(test, RUSTC) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    rustc(dir.path(), "racer.rs", "racy");
    rustc(dir.path(), "racer_atomic.rs", "atomic");
    rustc(dir.path(), "racer_mutex.rs", "mutex");
    let doc = check(dir.path(), &["--racer", "racy", "--atomic-racer", "atomic"]);
    let (v, why) = verdict(&doc, "step5.racer");
    assert_eq!(v, "pass", "{why}");
    assert!(
        why.contains("its loop writes total without a lock (`"),
        "{why}"
    );
    assert!(
        !why.contains("(%rsp) (no lock) (in a loop) (on total)"),
        "{why}"
    );
    let (v, why) = verdict(&doc, "step5.atomic-racer");
    assert_eq!(v, "pass", "{why}");
    assert!(
        why.contains("its loop increments total with `lock "),
        "{why}"
    );
    assert!(why.contains("<racer_atomic::main> lock "), "{why}");
    let doc = check(dir.path(), &["--atomic-racer", "mutex"]);
    let (v, why) = verdict(&doc, "step5.atomic-racer");
    assert_eq!(v, "fail", "{why}");
    assert!(
        why.starts_with("lost no update (") && why.contains("but by a spin lock (`xchg"),
        "{why}"
    );
    assert!(why.contains("in a loop of racer_mutex::"), "{why}");
}

/// A2: C++ racers: the racy one (total++ through a volatile pointer, -O2), the atomic one
/// (`std::atomic_ref<long>::fetch_add`) at -O2 (`lock addq $0x1,0x0(%rbp)` with g++ 12) and at
/// -O0 (the `lock xadd` in the out-of-line fetch_add its loop calls) all pass.
#[test]
fn cpp_racers_pass_at_o2_and_o0() {
    let test = "cpp_racers_pass_at_o2_and_o0";
    if !can_build(test, CXX) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    gxx(dir.path(), "-O2", "racer.cpp", "racy");
    gxx(dir.path(), "-O2", "racer_atomic.cpp", "atomic_o2");
    gxx(dir.path(), "-O0", "racer_atomic.cpp", "atomic_o0");
    let doc = check(
        dir.path(),
        &["--racer", "racy", "--atomic-racer", "atomic_o2"],
    );
    let (v, why) = verdict(&doc, "step5.racer");
    assert_eq!(v, "pass", "{why}");
    assert!(
        why.contains("its loop writes total without a lock (`"),
        "{why}"
    );
    let (v, why) = verdict(&doc, "step5.atomic-racer");
    assert_eq!(v, "pass", "{why}");
    assert!(
        why.contains("its loop increments total with `lock "),
        "{why}"
    );
    let doc = check(dir.path(), &["--atomic-racer", "atomic_o0"]);
    let (v, why) = verdict(&doc, "step5.atomic-racer");
    assert_eq!(v, "pass", "{why}");
    assert!(
        why.contains("its loop increments total with `lock xadd")
            && why.contains("(called from a loop of main) (on total)"),
        "{why}"
    );
}
