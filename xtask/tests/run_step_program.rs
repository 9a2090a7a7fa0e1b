//! `cargo xtask run-step 3 --program` and `run-step 5 --racer` judge a submitted program with
//! the check's judgments (the C fixtures of `tests/submissions/`, built with `cc`): the naive
//! writer and the correct one get different verdicts, a lock-incq racer's zero losses are
//! explained by its locked instruction, a skeleton is "total stayed 0". run-step exits 0
//! whatever the verdict.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/submissions");

/// Builds `tests/submissions/NAME.c` into `dir/NAME`, or `None` (with a notice, outside CI)
/// when cc or strace is missing.
fn build(dir: &Path, name: &str) -> Option<PathBuf> {
    let have = ["cc", "strace"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have cc and strace"
        );
        use std::io::Write as _;
        // Straight to stderr: libtest hides what eprintln! prints in a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: cc or strace missing (apt-get install gcc strace)"
        );
        return None;
    }
    let exe = dir.join(name);
    let status = Command::new("cc")
        .args(["-O2", "-DTARGET=50000000L", "-I", FIXTURES, "-o"])
        .arg(&exe)
        .arg(Path::new(FIXTURES).join(format!("{name}.c")))
        .status()
        .unwrap();
    assert!(status.success(), "cc {name}.c failed");
    Some(exe)
}

/// `xtask run-step STEP --quick --json FLAG PROGRAM`: (findings, the human text on stderr).
fn run_step(step: &str, flag: &str, program: &Path) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run-step", step, "--quick", "--json", flag])
        .arg(program)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "run-step {step} {flag}: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    (report["findings"].clone(), stderr)
}

/// Runs `a` and `b` at once (each a run-step of its own).
fn both<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = s.spawn(b);
        (a.join().unwrap(), b.join().unwrap())
    })
}

#[test]
fn run_step_3_runs_a_writer_until_the_file_grew_and_fails_the_naive_one() {
    let dir = tempfile::tempdir().unwrap();
    let (Some(naive), Some(ok)) = (
        build(dir.path(), "writer_naive"),
        build(dir.path(), "writer_ok"),
    ) else {
        return;
    };
    let ((naive, naive_text), (ok, _)) = both(
        || run_step("3", "--program", &naive),
        || run_step("3", "--program", &ok),
    );
    let v = &naive["program"]["verdict"];
    assert_eq!(v["verdict"], "fail", "{v}");
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains("past the file's end"), "{reason}");
    // One run from the step's table has room: the first run alone looked fine.
    assert_eq!(naive["program"]["appended_300"], true);
    assert!(naive_text.contains("FAIL: count says"), "{naive_text}");
    let v = &ok["program"]["verdict"];
    assert_eq!(v["verdict"], "pass", "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("grew the file 1 time"),
        "{v}"
    );
    assert_eq!(ok["program"]["values_ok"], true);
}

#[test]
fn run_step_5_names_the_lock_of_an_atomic_racer_and_a_skeleton_that_never_increments() {
    let dir = tempfile::tempdir().unwrap();
    let (Some(lock), Some(skeleton)) = (
        build(dir.path(), "racer_lock"),
        build(dir.path(), "racer_skeleton"),
    ) else {
        return;
    };
    let ((lock, lock_text), (skeleton, skeleton_text)) = both(
        || run_step("5", "--racer", &lock),
        || run_step("5", "--racer", &skeleton),
    );
    let j = &lock["racer"];
    assert_eq!(j["check"]["verdict"], "pass", "{j}");
    assert_eq!(j["check"]["id"], "step5.atomic-racer");
    let insn = j["locked_on_total"].as_str().unwrap();
    assert!(insn.starts_with("lock "), "{insn}");
    assert!(
        lock_text.contains(&format!("its loop increments total with `{insn}`")),
        "{lock_text}"
    );
    assert!(
        !lock_text.contains("no two racers stood between"),
        "{lock_text}"
    );
    // The lock-incq runtime question has the given racer's numbers.
    assert!(
        lock_text.contains(&format!("increments total with `{insn}`: by participants")),
        "{lock_text}"
    );
    let j = &skeleton["racer"];
    assert_eq!(j["check"]["verdict"], "fail", "{j}");
    assert_eq!(j["never_incremented"], true);
    assert!(
        j["check"]["reason"]
            .as_str()
            .unwrap()
            .contains("total stayed 0"),
        "{j}"
    );
    assert!(skeleton_text.contains("total stayed 0"), "{skeleton_text}");
    assert!(
        !skeleton_text.contains("no two racers stood between"),
        "{skeleton_text}"
    );
}
