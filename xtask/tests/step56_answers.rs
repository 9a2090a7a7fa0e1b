//! Steps 5 and 6 answer from what happened, never hiding a cause or inventing one (review 32).
//!
//! Step 5 with real C racers built with `cc`: one that races and aborts as id 2 (the answers
//! name the participant that died and take no loss from its races), one that exits at once (the
//! answers say nothing was raced, never an empty list).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A racer of the course's protocol (racer.h) with total++, that aborts as id 2 once it has won
/// 100,000 increments.
const CRASHY: &str = r#"#include "racer.h"
#include <stdlib.h>
int main(int argc, char **argv) {
    int id, first;
    volatile struct RaceCourse *rc = start_race(argc, argv, &id, &first);
    while (rc->total < TARGET) {
        rc->total++;
        rc->winnings[id - 1]++;
        if (id == 2 && rc->winnings[id - 1] == 100000)
            abort();
    }
    return end_race(rc, id, first);
}
"#;

/// A "racer" that exits at once, having made no race file.
const QUIT: &str = "int main(void) { return 0; }\n";

/// Builds `source` as `dir/name` with the course's racer.h and a small target.
fn build(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let exe = dir.join(name);
    let status = Command::new("cc")
        .args(["-O2", "-DTARGET=20000000L", "-I", common::FIXTURES, "-o"])
        .arg(&exe)
        .arg(&c)
        .status()
        .unwrap();
    assert!(status.success(), "cc {name}.c failed");
    exe
}

/// `run-step 5 --quick --json --racer NAME` with `source` built as NAME: the report (blocks and
/// findings), or `None` (the test skipped) without the tools it needs.
fn run_step5(test: &str, name: &str, source: &str) -> Option<serde_json::Value> {
    if !common::tools_present(test, &[common::CC, common::STRACE, common::OBJDUMP]) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run-step", "5", "--quick", "--json", "--racer"])
        .arg(build(dir.path(), name, source))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// The answer to the question that starts with `question`.
fn answer<'a>(report: &'a serde_json::Value, question: &str) -> &'a str {
    report["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| {
            b["kind"] == "answer"
                && b["question"]
                    .as_str()
                    .is_some_and(|q| q.starts_with(question))
        })
        .and_then(|b| b["answer"].as_str())
        .unwrap_or_else(|| panic!("no answer to {question:?} in {report}"))
}

const SUM: &str = "What do you observe about the sum of winnings";
const BY_N: &str = "How does this vary with the number of participants?";

#[test]
fn a_participant_that_died_is_named_and_its_races_give_no_loss() {
    let test = "a_participant_that_died_is_named_and_its_races_give_no_loss";
    let Some(report) = run_step5(test, "crashy", CRASHY) else {
        return;
    };
    let races = report["findings"]["races"].as_array().unwrap();
    let died: Vec<&serde_json::Value> = races
        .iter()
        .filter(|r| r["outcome"]["kind"] == "failed")
        .collect();
    assert!(!died.is_empty(), "{races:?}");
    for r in &died {
        let failure = &r["outcome"]["failures"][0];
        assert_eq!(failure["id"], 2, "{r}");
        assert!(
            failure["how"]
                .as_str()
                .unwrap()
                .contains("signal 6 (SIGABRT)"),
            "{r}"
        );
    }
    let sum = answer(&report, SUM);
    let n = died[0]["participants"].as_u64().unwrap();
    assert!(
        sum.contains(&format!("in the race of {n}, instance "))
            && sum.contains("(id 2 by arrival, pid ")
            && sum.contains("was killed by signal 6 (SIGABRT)"),
        "{sum}"
    );
    // A race someone died in gives no loss and no share.
    assert!(!sum.contains("exceeded the total in"), "{sum}");
    let by_n = answer(&report, BY_N);
    assert!(
        by_n.contains(&format!("{n}: none (a participant died)")),
        "{by_n}"
    );
}

#[test]
fn a_racer_that_exits_at_once_raced_nothing_and_the_answers_say_so() {
    let test = "a_racer_that_exits_at_once_raced_nothing_and_the_answers_say_so";
    let Some(report) = run_step5(test, "quit", QUIT) else {
        return;
    };
    let races = report["findings"]["races"].as_array().unwrap();
    for r in races.iter().filter(|r| r["participants"] != 1) {
        assert_eq!(r["outcome"]["kind"], "no_race", "{r}");
        assert!(r["final_participant_seconds"].is_null(), "{r}");
        let reason = r["outcome"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("before racecourse.bin appeared with its 96 bytes"),
            "{reason}"
        );
    }
    let sum = answer(&report, SUM);
    assert!(sum.starts_with("Nothing was raced"), "{sum}");
    assert!(
        sum.contains("never opened racecourse.bin with O_CREAT"),
        "{sum}"
    );
    let by_n = answer(&report, BY_N);
    assert!(by_n.starts_with("Not measured"), "{by_n}");
    // Never an empty list or sentence.
    for b in report["blocks"].as_array().unwrap() {
        let a = b["answer"].as_str().unwrap_or("");
        assert!(
            !a.contains("[]") && !a.contains(": .") && !a.contains(": ,"),
            "{a}"
        );
    }
}
