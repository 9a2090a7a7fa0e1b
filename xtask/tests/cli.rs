//! `cargo xtask` from the outside: usage errors, replay errors and unwritable output, none of
//! which runs a step.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    stderr
}

#[test]
fn a_flag_for_another_step_is_a_one_line_usage_error() {
    let out = xtask(&["run-step", "1", "--target", "5"]);
    assert_eq!(out.status.code(), Some(2));
    let e = one_line_error(&out);
    assert!(e.contains("--target is for step 5, not step 1"), "{e}");
    let out = xtask(&["run-step", "2", "--foo", "a", "--bar", "b"]);
    assert_eq!(out.status.code(), Some(2));
    one_line_error(&out);
    let out = xtask(&["run-step", "4", "--", "x"]);
    assert_eq!(out.status.code(), Some(2));
    one_line_error(&out);
    let out = xtask(&["run-step", "2", "--allocator", "/lib/libc.so.6"]);
    assert_eq!(out.status.code(), Some(2));
    let e = one_line_error(&out);
    assert!(e.contains("--allocator is for step 1, not step 2"), "{e}");
}

#[test]
fn an_allocator_that_is_no_shared_object_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a library\n").unwrap();
    for (path, says) in [
        (text.as_path(), "not an ELF file"),
        (dir.path(), "is a directory"),
    ] {
        let out = xtask(&["run-step", "1", "--allocator", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{path:?}");
        let e = one_line_error(&out);
        assert!(e.contains(says), "{e}");
    }
}

#[test]
fn steps_out_of_range_and_half_pairs_are_usage_errors() {
    for args in [
        &["run-step", "0"][..],
        &["run-step", "99"],
        &["run-step", "4", "--foo", "x"],
        &["run-step", "1", "--evidence", "a", "--save-evidence", "b"],
    ] {
        let out = xtask(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        one_line_error(&out);
    }
}

#[test]
fn an_unknown_benchmark_is_a_usage_error_naming_the_choices() {
    let out = xtask(&["bench", "foo"]);
    assert_eq!(out.status.code(), Some(2));
    let e = one_line_error(&out);
    assert!(e.contains("'foo'") && e.contains("persist, race"), "{e}");
}

#[test]
fn replaying_missing_evidence_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = xtask(&["run-step", "1", "--evidence", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let e = one_line_error(&out);
    assert!(e.contains("cannot read recorded evidence"), "{e}");
    assert!(e.contains("step1.json"), "{e}");
}

#[test]
fn replaying_foreign_evidence_is_an_error_not_a_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("step1.json"),
        r#"{"step": 1, "version": 1, "evidence": {"nothing": "here"}}"#,
    )
    .unwrap();
    let out = xtask(&["run-step", "1", "--evidence", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let e = one_line_error(&out);
    assert!(e.contains("is not step 1's evidence"), "{e}");
    assert!(e.contains("missing field"), "{e}");
}

#[test]
fn help_that_cannot_be_written_is_not_a_success() {
    let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--help")
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    one_line_error(&out);
}

#[test]
fn help_into_a_closed_pipe_ends_quietly_with_status_0() {
    // `cargo xtask --help | head -1`, made certain: the reader is gone before the first write.
    for args in [
        &["--help"][..],
        &["run-step", "--help"],
        &["check", "--help"],
    ] {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        drop(read);
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .stdout(write)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn a_program_or_racer_that_cannot_be_executed_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("reader.c");
    std::fs::write(&source, "int main(void) { return 0; }\n").unwrap();
    let dangling = dir.path().join("reader");
    std::os::unix::fs::symlink(dir.path().join("no-such-reader"), &dangling).unwrap();
    let cases = [
        (Path::new("/etc/passwd"), "is not executable"),
        (source.as_path(), "is not executable"),
        (dir.path(), "is a directory, not a program"),
        (dangling.as_path(), "a symbolic link to"),
        (Path::new("/nonexistent/reader"), "no such file"),
    ];
    for (path, says) in cases {
        let path = path.to_str().unwrap();
        for (step, flag) in [("2", "--program"), ("3", "--program"), ("5", "--racer")] {
            let out = xtask(&["run-step", step, "--quick", flag, path]);
            assert_eq!(out.status.code(), Some(2), "{step} {flag} {path}");
            let e = one_line_error(&out);
            assert!(e.starts_with(&format!("error: {flag} {path}")), "{e}");
            assert!(e.contains(says), "{e}");
            // Refused up front: no step heading, no verdict, nothing measured.
            assert!(
                out.stdout.is_empty(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}
