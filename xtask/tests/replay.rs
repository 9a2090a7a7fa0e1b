//! Replay stays exact: every recorded evidence set in `tests/evidence/<name>/stepN.json`,
//! explained again by `cargo xtask run-step N --evidence DIR --json`, prints byte for byte the
//! report recorded in `tests/replay/<name>-stepN.json` (the `--json` document: its blocks and
//! its `findings`) and `tests/replay/<name>-stepN.txt` (the terminal rendering, on stderr under
//! `--json`). The expected files were generated on the code before the analysis moved out of
//! xtask into `lab-analysis`; a change to any answer, number or block shows here as a diff.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// Every (evidence set, step) pair recorded under `tests/evidence`.
fn recorded() -> Vec<(String, u8)> {
    let mut sets = Vec::new();
    for entry in std::fs::read_dir(dir("evidence")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        for step in 1..=6u8 {
            if entry.path().join(format!("step{step}.json")).is_file() {
                sets.push((name.clone(), step));
            }
        }
    }
    sets.sort();
    sets
}

/// The first line where two texts differ, for a readable failure.
fn first_difference(expected: &str, got: &str) -> String {
    for (i, (e, g)) in expected.lines().zip(got.lines()).enumerate() {
        if e != g {
            return format!("line {}:\n  expected: {e}\n  got:      {g}", i + 1);
        }
    }
    format!(
        "lengths differ: expected {} lines, got {}",
        expected.lines().count(),
        got.lines().count()
    )
}

#[test]
fn every_recorded_evidence_set_replays_to_the_recorded_report() {
    let sets = recorded();
    assert!(sets.len() >= 21, "found only {} recorded sets", sets.len());
    let mut failures = Vec::new();
    for (name, step) in &sets {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["run-step", &step.to_string(), "--json", "--evidence"])
            .arg(dir("evidence").join(name))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        if !out.status.success() {
            failures.push(format!("{name} step {step}: failed: {stderr}"));
            continue;
        }
        for (ext, got) in [("json", &stdout), ("txt", &stderr)] {
            let file = dir("replay").join(format!("{name}-step{step}.{ext}"));
            let expected = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            if &expected != got {
                failures.push(format!(
                    "{name} step {step} ({ext}) differs from {}: {}",
                    file.display(),
                    first_difference(&expected, got)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every expected file belongs to a recorded set (none is left over from a removed one).
    let expected = std::fs::read_dir(dir("replay")).unwrap().count();
    assert_eq!(
        expected,
        2 * sets.len(),
        "tests/replay has files of no recorded set"
    );
}
