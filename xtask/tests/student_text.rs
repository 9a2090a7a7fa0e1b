//! What a student reads, on recorded evidence: `run-all` ends with `== Answers at a glance`
//! (one line per course question, within 200 characters, numbers from the run), every step
//! prints its answers before its evidence, the default output stays short, and `--verbose` adds
//! the raw material.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One recorded evidence set per step, gathered into one directory as `run-all --evidence`
/// reads it.
const SETS: [(u8, &str); 6] = [
    (1, "glibc-2.36-default"),
    (2, "course-table"),
    (3, "course-table"),
    (4, "foobar-ours-root"),
    (5, "two-cpus-one-busy"),
    (6, "channel-two-cpus"),
];

fn evidence(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/evidence")
        .join(name)
}

fn all_steps() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (step, set) in SETS {
        let file = format!("step{step}.json");
        std::fs::copy(evidence(set).join(&file), dir.path().join(&file)).unwrap();
    }
    dir
}

fn xtask(args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg("--evidence")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn run_all_ends_with_the_answers_at_a_glance() {
    let dir = all_steps();
    let out = xtask(&["run-all"], dir.path());
    let (_, glance) = out
        .rsplit_once("== Answers at a glance ")
        .expect("no glance block");
    let lines: Vec<&str> = glance.lines().skip(1).collect();
    let numbers: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        numbers,
        [
            "1.1", "1.2", "1.3", "1.4", "2.1", "3.1", "3.2", "3.3", "4.1", "4.2", "4.3", "5.1",
            "5.2", "5.3", "5.4", "5.5", "5.6"
        ],
        "{glance}"
    );
    for l in &lines {
        assert!(l.chars().count() <= 200, "longer than 200: {l}");
        assert!(!l.contains("not measured"), "{l}");
    }
    // The whole run, glance included, stays under 400 lines (it was 788 on these recordings).
    assert!(out.lines().count() <= 400, "{} lines", out.lines().count());
    // This run's numbers: the threshold of the recorded glibc, the races' lost shares.
    assert!(lines[2].contains("malloc(131049)"), "{}", lines[2]);
    assert!(lines[12].contains("2: 29.4%, 3: 46.2%"), "{}", lines[12]);
}

#[test]
fn each_step_prints_its_answers_first_and_keeps_the_raw_material_for_verbose() {
    let dir = all_steps();
    for (step, _) in SETS {
        let n = step.to_string();
        let short = xtask(&["run-step", &n], dir.path());
        let long = xtask(&["run-step", &n, "--verbose"], dir.path());
        let count = short.lines().count();
        // Short: a screenful or two per step (the raw strace lines and table rows are behind
        // --verbose); the full text keeps them.
        assert!(
            count <= 110,
            "step {step}: {count} lines by default:\n{short}"
        );
        assert!(
            long.lines().count() > count,
            "step {step}: --verbose added nothing"
        );
        assert!(
            short.contains("(--verbose adds the raw material: "),
            "step {step}"
        );
        assert!(!short.contains("(1 lines)"), "step {step}: {short}");
        // The answers come before the evidence.
        let answers = short.find("\nQ: ").expect("no answer");
        if let Some(evidence) = short.find("\n    ") {
            assert!(
                answers < evidence,
                "step {step}: evidence before the answers"
            );
        }
    }
}
