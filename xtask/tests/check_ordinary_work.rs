//! `cargo xtask check DIR` on ordinary student work that is right, or wrong only in form: a
//! writer that grows the file before its one mapping or inside a larger window, a reader with a
//! summary line, a probe that prints the flag bits or the tag twice (all pass); a reader that
//! prints the table backwards and a probe that prints the tag in decimal (fail, told why);
//! programs built into `bin/`, a submission a TA who is not root cannot wholly read, and one
//! program that does not compile among others that do.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn can_build() -> bool {
    common::tools_present(
        "check_ordinary_work",
        &[common::CC, common::MAKE, common::STRACE],
    )
}

/// What one `xtask check DIR --json` printed and how it exited.
struct Checked {
    status: Option<i32>,
    stderr: String,
    doc: Value,
}

impl Checked {
    fn check(&self, id: &str) -> &Value {
        common::check_entry(&self.doc, id)
    }

    /// The check's verdict and reason.
    fn verdict(&self, id: &str) -> (String, String) {
        common::verdict(&self.doc, id)
    }
}

/// Runs `command` (an `xtask check DIR --json`, perhaps as another user) and asserts that no
/// scratch directory of it is left.
fn run(mut command: Command) -> Checked {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}); stderr: {stderr}"));
    let scratch = std::env::temp_dir().join(format!("mmap-lab-check-{pid}"));
    assert!(!scratch.exists(), "{} was left behind", scratch.display());
    Checked {
        status: out.status.code(),
        stderr,
        doc,
    }
}

fn xtask_check(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.arg("check").arg(dir).arg("--json");
    c
}

fn check(dir: &Path) -> Checked {
    run(xtask_check(dir))
}

/// Each (id, expected verdict, words its reason holds) of `c`.
fn assert_verdicts(c: &Checked, expected: &[(&str, &str, &str)]) {
    for (id, verdict, words) in expected {
        let (v, reason) = c.verdict(id);
        assert_eq!(&v, verdict, "{id}: {reason}\n{}", c.check(id));
        assert!(reason.contains(words), "{id}: {reason}");
    }
}

#[test]
fn a_writer_that_grows_before_mapping_a_reader_with_a_footer_and_a_probe_with_its_bits_pass() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[
        ("writer_grows_first", "writer"),
        ("reader_footer", "reader"),
        ("probe_bits", "probe"),
    ]);
    let c = check(sub.path());
    assert_eq!(c.status, Some(0), "{}\n{}", c.doc, c.stderr);
    assert_verdicts(
        &c,
        &[
            ("step3.writer", "pass", "grew the file"),
            ("step2.reader", "pass", "printed exactly value[0..count)"),
            ("step1.probe", "pass", "mmapped chunk"),
        ],
    );
    let reader = c.check("step2.reader")["evidence"].to_string();
    assert!(reader.contains("then a footer of 2 numbers"), "{reader}");
    let writer = c.check("step3.writer")["evidence"].to_string();
    assert!(writer.contains("grew 2 times"), "{writer}");
}

#[test]
fn a_writer_in_a_1_gib_window_and_a_probe_printing_the_tag_twice_pass() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[("writer_big_window", "writer"), ("probe_twice", "probe")]);
    let c = check(sub.path());
    assert_eq!(c.status, Some(0), "{}\n{}", c.doc, c.stderr);
    assert_verdicts(
        &c,
        &[
            ("step3.writer", "pass", "grew the file"),
            ("step1.probe", "pass", "mmapped chunk"),
        ],
    );
}

#[test]
fn a_reversed_reader_and_a_decimal_probe_fail_with_what_they_did() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[("reader_reverse", "reader"), ("probe_decimal", "probe")]);
    let c = check(sub.path());
    assert_eq!(c.status, Some(1), "{}\n{}", c.doc, c.stderr);
    assert_verdicts(
        &c,
        &[
            ("step2.reader", "fail", "but not in table order: in reverse"),
            (
                "step1.probe",
                "fail",
                "in decimal: print the tag in hex, with %lx",
            ),
        ],
    );
    let (_, reason) = c.verdict("step1.probe");
    assert!(reason.contains("prints "), "{reason}");
    // Every line of the evidence counts its numbers in the singular or plural as fits.
    let evidence = c.check("step2.reader")["evidence"].to_string();
    assert!(!evidence.contains("printed 1 numbers"), "{evidence}");
}

/// A submission whose Makefile builds its programs into `bin/`: DIR holds table.h, reader.c
/// (reader_ok.c) and a Makefile that puts the program in bin/.
fn bin_submission() -> tempfile::TempDir {
    let sub = common::submission(&[("reader_ok", "reader")]);
    std::fs::write(
        sub.path().join("Makefile"),
        "all: bin/reader\n\nbin/%: %.c table.h\n\tmkdir -p bin\n\t$(CC) -O2 -o $@ $<\n",
    )
    .unwrap();
    sub
}

#[test]
fn programs_built_into_bin_are_found_and_a_run_that_tests_nothing_is_no_pass() {
    if !can_build() {
        return;
    }
    let sub = bin_submission();
    let c = check(sub.path());
    assert_eq!(c.status, Some(0), "{}\n{}", c.doc, c.stderr);
    assert_verdicts(&c, &[("step2.reader", "pass", "printed exactly")]);
    let reader = c.check("step2.reader");
    assert!(reader["program"].as_str().unwrap().ends_with("/bin/reader"));
    assert_eq!(
        reader["evidence"][0],
        "found as bin/reader (no reader at the top of the submission)"
    );
    // A program elsewhere is named, with the flag that takes it; nothing tested exits 1.
    std::fs::write(
        sub.path().join("Makefile"),
        "all: tools/reader\n\ntools/%: %.c table.h\n\tmkdir -p tools\n\t$(CC) -O2 -o $@ $<\n",
    )
    .unwrap();
    let c = check(sub.path());
    assert_eq!(c.status, Some(1), "{}\n{}", c.doc, c.stderr);
    assert_verdicts(
        &c,
        &[(
            "step2.reader",
            "not-tested",
            "no program named reader in the submission (after make); tools/reader exists: use \
             --reader tools/reader",
        )],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("check")
        .arg(sub.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.starts_with("nothing was tested")),
        "{text}"
    );
}

#[test]
fn a_compile_error_in_one_program_fails_it_alone() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[("racer_lock", "racer_atomic"), ("probe_ok", "probe")]);
    std::fs::write(sub.path().join("racer.c"), "int main(void) { return 0 }\n").unwrap();
    let c = check(sub.path());
    assert_eq!(c.status, Some(1), "{}\n{}", c.doc, c.stderr);
    assert_verdicts(
        &c,
        &[
            (
                "step5.racer",
                "fail",
                "make failed with status 2: racer.c:1:",
            ),
            ("step5.atomic-racer", "pass", "lock"),
            ("step1.probe", "pass", "mmapped chunk"),
        ],
    );
    let (_, reason) = c.verdict("step5.racer");
    assert!(reason.contains("error"), "{reason}");
    let evidence = c.check("step5.racer")["evidence"].to_string();
    assert!(evidence.contains("racer] Error"), "{evidence}");
}

#[test]
fn as_a_ta_who_is_not_root_unreadable_entries_are_skipped_and_named() {
    if !can_build() || !common::tools_present("check_ordinary_work", &[common::SETPRIV]) {
        return;
    }
    if !rustix::process::geteuid().is_root() {
        common::skip(
            "as_a_ta_who_is_not_root_unreadable_entries_are_skipped_and_named",
            "needs root to run the check as another user (setpriv)",
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    let sub = common::submission(&[("reader_ok", "reader"), ("writer_ok", "writer")]);
    let dir = sub.path();
    std::fs::create_dir(dir.join(".git")).unwrap();
    std::fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::create_dir(dir.join("notes")).unwrap();
    for (path, m) in [
        (dir.to_path_buf(), 0o755),
        (dir.join(".git"), 0o700),
        (dir.join("notes"), 0o700),
        (dir.join("reader.c"), 0o600),
        (dir.join("writer.c"), 0o644),
        (dir.join("Makefile"), 0o644),
        (dir.join("table.h"), 0o644),
        (dir.join("racer.h"), 0o644),
    ] {
        mode(&path, m).unwrap();
    }
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .arg("check")
        .arg(dir)
        .arg("--json")
        .current_dir("/");
    let c = run(command);
    assert_eq!(c.status, Some(0), "{}\n{}", c.doc, c.stderr);
    assert_verdicts(
        &c,
        &[
            (
                "step2.reader",
                "not-tested",
                "reader.c could not be read (Permission denied)",
            ),
            ("step3.writer", "pass", "grew the file"),
        ],
    );
    // Named in one line, the .git directory left out without a word.
    let skipped: Vec<&str> = c.doc["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped.iter().all(|s| s.ends_with(": Permission denied")));
    assert!(skipped
        .iter()
        .any(|s| s.ends_with("/notes: Permission denied")));
    let noted: Vec<&str> = c
        .stderr
        .lines()
        .filter(|l| l.contains("cannot be read"))
        .collect();
    assert_eq!(noted.len(), 1, "{}", c.stderr);
    assert!(!c.stderr.contains(".git"), "{}", c.stderr);
}
