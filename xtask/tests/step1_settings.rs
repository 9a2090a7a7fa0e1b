//! Step 1 live, under malloc settings that defeat part of the probe: the real lab, the real
//! probe under the real strace, each setting given as a user would (`MALLOC_*`,
//! `GLIBC_TUNABLES`, `ulimit -v`). Every question the run could measure is answered; the others
//! say "not measured" with the reason, naming the setting; run-all goes on past a step that
//! fails and says so in its glance and its exit status.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `run-step 1 --quick` with `env` set (on top of this process's environment, with every malloc
/// setting of it removed so that only `env` counts).
fn step1(env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["run-step", "1", "--quick"]).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k == "GLIBC_TUNABLES" || k == "LD_PRELOAD" || k.starts_with("MALLOC_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

/// The `A:` line answering `question` (its `Q:` line starts with it).
fn answer<'a>(stdout: &'a str, question: &str) -> &'a str {
    let mut lines = stdout.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with(&format!("Q: {question}")))
        .unwrap_or_else(|| panic!("no question {question:?} in:\n{stdout}"));
    lines.next().expect("an answer line")
}

const FREE: &str = "Which bit (and value) corresponds to free/in-use?";
const MMAP_BIT: &str = "Which bit corresponds to heap/mmap?";
const SWITCH: &str = "At what exact size does malloc switch from the heap to mmap?";
const LENGTH: &str = "For a request of x bytes, does malloc ask mmap for x bytes";

/// The run succeeded and printed nothing on stderr but progress lines.
fn succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    for l in stderr.lines() {
        assert!(l.starts_with("[xtask]"), "not a progress line: {l}");
    }
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn a_top_pad_or_huge_pages_leave_every_question_answered() {
    if !common::tools_present(
        "a_top_pad_or_huge_pages_leave_every_question_answered",
        &[common::STRACE],
    ) {
        return;
    }
    for (name, value) in [
        ("MALLOC_TOP_PAD_", "1048576"),
        ("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1"),
    ] {
        let out = succeeded(&step1(&[(name, value)]));
        let setting = format!("{name}={value}");
        assert!(
            out.contains(&format!("Malloc settings every run inherited: {setting}.")),
            "{out}"
        );
        assert!(
            answer(&out, FREE).starts_with("A: Bit 0"),
            "{setting}: {out}"
        );
        assert!(
            answer(&out, MMAP_BIT).starts_with("A: Bit 1"),
            "{setting}: {out}"
        );
        assert!(
            answer(&out, SWITCH).starts_with("A: malloc switches to mmap at a request of"),
            "{setting}: {}",
            answer(&out, SWITCH)
        );
        assert!(
            answer(&out, LENGTH).starts_with("A: Something different"),
            "{setting}: {out}"
        );
        assert!(!out.contains("Not measured"), "{setting}: {out}");
    }
}

#[test]
fn with_mmap_max_0_the_mmap_questions_say_mmap_was_never_used() {
    if !common::tools_present(
        "with_mmap_max_0_the_mmap_questions_say_mmap_was_never_used",
        &[common::STRACE],
    ) {
        return;
    }
    let out = succeeded(&step1(&[("MALLOC_MMAP_MAX_", "0")]));
    assert!(answer(&out, FREE).starts_with("A: Bit 0"), "{out}");
    let never = "A: Not measured in this run: with MALLOC_MMAP_MAX_=0 malloc never used mmap up to";
    for q in [MMAP_BIT, SWITCH, LENGTH] {
        assert!(
            answer(&out, q).starts_with(never),
            "{q}: {}",
            answer(&out, q)
        );
    }
    assert!(
        answer(&out, SWITCH).ends_with("there is no threshold to find."),
        "{}",
        answer(&out, SWITCH)
    );
}

#[test]
fn under_an_address_space_limit_below_64_mib_every_question_is_answered() {
    if !common::tools_present(
        "under_an_address_space_limit_below_64_mib_every_question_is_answered",
        &[common::STRACE],
    ) {
        return;
    }
    // Built (and malloc-probe in release) before the limit: cargo cannot compile under it.
    succeeded(&step1(&[]));
    // 60000 KiB: malloc(64 MiB), the bisection's first upper bound, returns NULL.
    let out = Command::new("sh")
        .args(["-c", "ulimit -v 60000 && exec \"$0\" run-step 1 --quick"])
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = succeeded(&out);
    assert!(
        out.contains("address-space limit: RLIMIT_AS=61440000 bytes (ulimit -v 60000)"),
        "{out}"
    );
    assert!(answer(&out, FREE).starts_with("A: Bit 0"), "{out}");
    assert!(answer(&out, MMAP_BIT).starts_with("A: Bit 1"), "{out}");
    assert!(
        answer(&out, SWITCH).starts_with("A: malloc switches to mmap at a request of"),
        "{}",
        answer(&out, SWITCH)
    );
    assert!(
        answer(&out, LENGTH).starts_with("A: Something different"),
        "{out}"
    );
}

/// Recorded evidence for steps 2–6 and a step 1 file that is not step 1's evidence, gathered as
/// `run-all --evidence` reads them.
fn steps_with_step1_broken() -> tempfile::TempDir {
    let sets = [
        (2, "course-table"),
        (3, "course-table"),
        (4, "foobar-ours-root"),
        (5, "two-cpus-one-busy"),
        (6, "channel-two-cpus"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (step, set) in sets {
        let file = format!("step{step}.json");
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/evidence")
            .join(set)
            .join(&file);
        std::fs::copy(from, dir.path().join(&file)).unwrap();
    }
    std::fs::write(
        dir.path().join("step1.json"),
        r#"{"step": 1, "version": 1, "evidence": {"nothing": "here"}}"#,
    )
    .unwrap();
    dir
}

#[test]
fn run_all_goes_on_past_a_failed_step_and_says_so_in_the_glance_and_the_status() {
    let dir = steps_with_step1_broken();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run-all", "--evidence"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // One line on stderr: which step failed and why.
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: step 1 failed, its questions read \"not measured\": ")
            && lines[0].contains("is not step 1's evidence"),
        "{stderr}"
    );
    // Steps 2 to 6 still ran.
    for step in 2..=6 {
        assert!(
            stdout.contains(&format!("== Step {step} ")),
            "step {step}: {stdout}"
        );
    }
    let (_, glance) = stdout
        .rsplit_once("== Answers at a glance ")
        .expect("no glance block");
    let glance: Vec<&str> = glance.lines().skip(1).collect();
    assert_eq!(glance.len(), 17, "{glance:?}");
    for l in &glance {
        assert!(l.chars().count() <= 200, "longer than 200: {l}");
        if l.starts_with("1.") {
            assert!(l.contains(": not measured: step 1 failed: "), "{l}");
        } else {
            assert!(!l.contains("not measured"), "{l}");
        }
    }
}

#[test]
fn run_all_with_no_evidence_directory_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run-all", "--evidence"])
        .arg(&missing)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("is not a directory"), "{stderr}");
}

#[test]
fn run_all_help_says_a_failed_step_does_not_stop_the_others() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run-all", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap().replace('\n', " ");
    for said in [
        "A step that fails does not stop the later ones",
        "\"not measured: step N failed: …\"",
        "the exit status is 1",
    ] {
        assert!(help.contains(said), "{said:?} not in: {help}");
    }
}
