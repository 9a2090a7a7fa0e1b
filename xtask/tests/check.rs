//! `cargo xtask check DIR` on submissions written the course's way (C, built by a Makefile):
//! the fixtures in `tests/submissions/` are copied into a fresh DIR under the course's program
//! names, and each is judged as it should be. Racers race to 50,000,000 (`TARGET` in the
//! Makefile) so the races are short.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use common::FIXTURES;

/// Whether `cc`, `make` and `strace` are here to build and judge the fixtures; without them
/// (outside CI) the test is skipped with a notice.
fn can_build() -> bool {
    common::tools_present("check", &[common::CC, common::MAKE, common::STRACE])
}

struct Checked {
    status: Option<i32>,
    stderr: String,
    doc: Value,
    pid: u32,
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

/// Runs `xtask check DIR --json ARGS` (with `env`), and asserts it left nothing behind: no
/// scratch directory, no process started from it.
fn check(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Checked {
    let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("check")
        .arg(dir)
        .arg("--json")
        .args(args)
        .envs(env.iter().copied())
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
    let checked = Checked {
        status: out.status.code(),
        stderr,
        doc,
        pid,
    };
    assert_nothing_left(checked.pid);
    checked
}

/// No scratch directory of check `pid` is left, and no process runs from one.
fn assert_nothing_left(pid: u32) {
    let scratch = std::env::temp_dir().join(format!("mmap-lab-check-{pid}"));
    assert!(!scratch.exists(), "{} was left behind", scratch.display());
    let needle = format!("mmap-lab-check-{pid}/");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        // A zombie has an empty cmdline; anything alive from the scratch directory is a leak.
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&needle),
            "process {} of the check still runs: {}",
            entry.file_name().to_string_lossy(),
            String::from_utf8_lossy(&cmdline)
        );
    }
}

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(contents(&p));
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

#[test]
fn a_correct_submission_passes_every_check_and_is_not_changed() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[
        ("reader_ok", "reader"),
        ("writer_ok", "writer"),
        ("racer_racy", "racer"),
        ("racer_lock", "racer_atomic"),
        ("probe_ok", "probe"),
    ]);
    let before = contents(sub.path());
    let records = tempfile::tempdir().unwrap();
    let md = records.path().join("check.md");
    let c = check(sub.path(), &["--markdown", md.to_str().unwrap()], &[]);
    assert_eq!(c.status, Some(0), "{}\n{}", c.doc, c.stderr);
    assert_eq!(contents(sub.path()), before, "DIR was changed");
    assert_eq!(c.doc["submission"], sub.path().to_str().unwrap());
    assert_eq!(c.doc["build"]["ran"], true);
    assert_eq!(c.doc["build"]["status"], 0);
    for id in [
        "step1.probe",
        "step2.reader",
        "step3.writer",
        "step5.racer",
        "step5.atomic-racer",
    ] {
        assert_eq!(c.verdict(id).0, "pass", "{id}: {}", c.check(id));
        assert!(!c.check(id)["evidence"].as_array().unwrap().is_empty());
        assert!(c.check(id)["program"]
            .as_str()
            .unwrap()
            .starts_with(sub.path().to_str().unwrap()));
    }
    let keys: Vec<&String> = c
        .check("step2.reader")
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, ["evidence", "id", "program", "reason", "verdict"]);
    // The writer ran until the file had grown twice from each of the three starts.
    let writer = c.check("step3.writer")["evidence"].to_string();
    assert!(writer.contains("grew 2 times"), "{writer}");
    assert!(writer.contains("ftruncate + mremap"), "{writer}");
    // The racers' runtimes by participants are recorded.
    for id in ["step5.racer", "step5.atomic-racer"] {
        let e = c.check(id)["evidence"].to_string();
        assert!(
            e.contains("final participant's runtime by participants: 1: "),
            "{e}"
        );
    }
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("| `step3.writer` | **pass** |"), "{md}");
}

/// Each fixture handed in alone as `name` fails check `id` with a reason containing its
/// expected words; `more` looks at the rest of the report.
fn each_fails(id: &str, name: &str, cases: &[(&str, &str)], more: impl Fn(&str, &Checked)) {
    if !can_build() {
        return;
    }
    for (fixture, expected) in cases {
        let sub = common::submission(&[(fixture, name)]);
        let c = check(sub.path(), &[], &[]);
        assert_eq!(c.status, Some(1), "{fixture}: {}", c.doc);
        let (verdict, reason) = c.verdict(id);
        assert_eq!(verdict, "fail", "{fixture}");
        assert!(reason.contains(expected), "{fixture}: {reason}");
        more(fixture, &c);
    }
}

#[test]
fn readers_that_hard_code_trust_the_size_or_read_fail_with_their_reason() {
    let cases = [
        ("reader_hardcoded", "hard-coded"),
        ("reader_trusts_size", "it trusts the file size, not count"),
        ("reader_read", "instead of mapping it"),
    ];
    each_fails("step2.reader", "reader", &cases, |_, c| {
        // The programs it does not have are not tested, not failed.
        assert_eq!(c.verdict("step3.writer").0, "not-tested");
    });
}

#[test]
fn writers_that_store_past_the_mapping_rewrite_forget_or_write_fail() {
    let cases = [
        ("writer_naive", "run 1 from "),
        ("writer_rewrites", "earlier values must stay as they were"),
        ("writer_forgets_count", "it forgets to update count"),
        ("writer_write", "write() calls on the table"),
    ];
    each_fails("step3.writer", "writer", &cases, |fixture, c| {
        if fixture == "writer_naive" {
            // The naive writer stores past the mapping or past the file's end.
            let reason = c.verdict("step3.writer").1;
            assert!(
                reason.starts_with("killed by SIGSEGV")
                    || reason.starts_with("killed by SIGBUS")
                    || reason.starts_with("count says"),
                "{reason}"
            );
        }
    });
}

#[test]
fn racers_passed_as_the_other_kind_and_a_skeleton_fail() {
    if !can_build() {
        return;
    }
    // Each racer named by the flag for the other.
    let sub = common::submission(&[("racer_racy", "racer"), ("racer_lock", "racer_atomic")]);
    let c = check(
        sub.path(),
        &["--racer", "racer_atomic", "--atomic-racer", "racer"],
        &[],
    );
    assert_eq!(c.status, Some(1), "{}", c.doc);
    let (verdict, reason) = c.verdict("step5.atomic-racer");
    assert_eq!(verdict, "fail");
    // It loses updates; on a loaded machine its instances may not overlap, and then its code
    // (no locked instruction) is what fails it.
    assert!(
        reason.contains("total is not incremented atomically")
            || reason.contains("no locked instruction on total"),
        "{reason}"
    );
    let (verdict, reason) = c.verdict("step5.racer");
    assert_eq!(verdict, "fail");
    assert!(reason.starts_with("lost no update"), "{reason}");

    let sub = common::submission(&[("racer_skeleton", "racer")]);
    let c = check(sub.path(), &[], &[]);
    assert_eq!(c.status, Some(1));
    let (verdict, reason) = c.verdict("step5.racer");
    assert_eq!(verdict, "fail");
    assert!(reason.starts_with("total stayed 0"), "{reason}");
}

#[test]
fn a_probe_that_prints_the_wrong_word_fails() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[("probe_wrong_word", "probe")]);
    let c = check(sub.path(), &[], &[]);
    assert_eq!(c.status, Some(1), "{}", c.doc);
    let (verdict, reason) = c.verdict("step1.probe");
    assert_eq!(verdict, "fail");
    assert!(reason.contains("does not hold its tag"), "{reason}");
}

/// `fixture` handed in alone as the reader (with `env`): the check fails `step2.reader`; its
/// reason (`None`: the tools are missing). `check` asserts no process of the check survives it.
fn reader_fails(fixture: &str, env: &[(&str, &str)]) -> Option<String> {
    if !can_build() {
        return None;
    }
    let sub = common::submission(&[(fixture, "reader")]);
    let c = check(sub.path(), &[], env);
    assert_eq!(c.status, Some(1), "{fixture}: {}", c.doc);
    let (verdict, reason) = c.verdict("step2.reader");
    assert_eq!(verdict, "fail", "{fixture}");
    Some(reason)
}

#[test]
fn a_reader_that_hangs_is_killed_and_fails() {
    let Some(reason) = reader_fails("reader_hangs", &[]) else {
        return;
    };
    assert!(
        reason.starts_with("was still running after 10 s and was killed"),
        "{reason}"
    );
}

#[test]
fn a_reader_that_forks_sleepers_fails_and_they_are_all_killed() {
    let Some(reason) = reader_fails("reader_forks", &[]) else {
        return;
    };
    // With a cgroup the lab counts them; without one (not root) it cannot.
    assert!(
        reason.starts_with("exited but left 50 processes running")
            || reason.starts_with("exited but left processes running"),
        "{reason}"
    );
}

#[test]
fn a_reader_that_floods_or_writes_outside_its_directory_fails() {
    let Some(reason) = reader_fails("reader_floods", &[]) else {
        return;
    };
    assert!(reason.starts_with("flooded its output"), "{reason}");
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("planted");
    let env = [("OUTSIDE", target.to_str().unwrap())];
    let reason = reader_fails("reader_outside", &env).unwrap();
    assert!(
        reason.starts_with("wrote outside its scratch directory") && reason.contains("planted"),
        "{reason}"
    );
}

#[test]
fn a_program_the_makefile_does_not_build_fails_the_check() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[("reader_ok", "reader")]);
    std::fs::write(sub.path().join("writer.c"), "int main(void) { return 0 }\n").unwrap();
    let c = check(sub.path(), &[], &[]);
    assert_eq!(c.status, Some(1), "{}", c.doc);
    assert_eq!(c.doc["build"]["ran"], true);
    assert_ne!(c.doc["build"]["status"], 0);
    assert!(c.doc["build"]["log_tail"]
        .as_str()
        .unwrap()
        .contains("error"));
    let (verdict, reason) = c.verdict("step3.writer");
    assert_eq!(verdict, "fail");
    assert!(reason.contains(": make failed with status"), "{reason}");
    // Built before make stopped: judged as usual.
    assert_eq!(c.verdict("step2.reader").0, "pass");
    // Missing after a failed build fails too: make may have stopped before building it.
    assert_eq!(c.verdict("step5.racer").0, "fail");
    // The probe is optional: never failed for being absent.
    assert_eq!(c.verdict("step1.probe").0, "not-tested");
}

/// `xtask check ARGS`: a usage error (exit 2) of one line on stderr, nothing on stdout; the line.
fn usage_error(args: &[&std::ffi::OsStr]) -> String {
    let mut xtask = Command::new(env!("CARGO_BIN_EXE_xtask"));
    xtask.arg("check").args(args);
    usage_error_of(xtask)
}

/// What `command` (an `xtask check`, perhaps run as another user) printed: a usage error (exit
/// 2) of one line on stderr, nothing on stdout; the line.
fn usage_error_of(mut command: Command) -> String {
    let out = command.stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(out.stdout.is_empty());
    stderr
}

#[test]
fn a_missing_or_wrong_dir_is_a_one_line_usage_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    for dir in [Path::new("/nonexistent/submission"), file.path()] {
        let stderr = usage_error(&[dir.as_os_str()]);
        assert!(
            stderr.starts_with("error: ") && stderr.contains(dir.to_str().unwrap()),
            "{stderr}"
        );
    }
    // A flag that names no program in DIR nor here; a Markdown copy that cannot be written.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().as_os_str();
    let stderr = usage_error(&[
        d,
        "--markdown".as_ref(),
        "/nonexistent/dir/check.md".as_ref(),
    ]);
    assert!(
        stderr.contains("--markdown /nonexistent/dir/check.md"),
        "{stderr}"
    );
    let stderr = usage_error(&[d, "--atomic-racer".as_ref(), "no/such/racer".as_ref()]);
    assert!(
        stderr.starts_with("error: --atomic-racer no/such/racer: no such program"),
        "{stderr}"
    );
}

#[test]
fn a_named_program_that_cannot_be_executed_is_a_usage_error_before_any_run() {
    // No Makefile: nothing can change what the flags name, so they are judged up front.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("reader.c"),
        "int main(void) { return 0; }\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let d = dir.path().as_os_str();
    let stderr = usage_error(&[d, "--reader".as_ref(), "reader.c".as_ref()]);
    let source = dir.path().join("reader.c");
    assert!(
        stderr.starts_with(&format!(
            "error: --reader {} is not executable",
            source.display()
        )),
        "{stderr}"
    );
    let stderr = usage_error(&[d, "--writer".as_ref(), "bin".as_ref()]);
    assert!(stderr.contains("is a directory, not a program"), "{stderr}");
}

#[test]
fn a_markdown_path_no_one_may_write_is_refused_before_any_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().as_os_str();
    // Not even root: /proc/1 is no directory anyone may create in; /proc passes root's access
    // but holds no file of ours.
    for (md, says) in [
        ("/proc/1/x.md", "cannot create it in /proc/1: "),
        ("/proc/x.md", "cannot create it in /proc: "),
        ("/proc/version", "cannot write it: "),
    ] {
        let stderr = usage_error(&[d, "--markdown".as_ref(), md.as_ref()]);
        assert!(
            stderr.starts_with(&format!("error: --markdown {md}: {says}")),
            "{stderr}"
        );
    }
}

/// An existing `--markdown` path that is not a regular file is refused before anything runs:
/// a FIFO (the check used to run, then block at its end opening a FIFO no one reads) and a
/// socket (it used to fail at the end). Bounded: a check that does not refuse is killed.
#[test]
fn a_markdown_path_that_is_a_fifo_or_a_socket_is_refused_before_any_run() {
    let sub = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("check.md");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .unwrap();
    let socket = dir.path().join("socket.md");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    for (md, kind) in [(&fifo, "a FIFO"), (&socket, "a socket")] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("check")
            .arg(sub.path())
            .arg("--markdown")
            .arg(md)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > std::time::Duration::from_secs(60) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("check --markdown {} was not refused up front", md.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: --markdown {}: is {kind}, not a regular file",
                md.display()
            )),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    use std::os::unix::fs::FileTypeExt;
    let t = std::fs::metadata(&fifo).unwrap().file_type();
    assert!(t.is_fifo(), "the FIFO was left as it was");
}

#[test]
fn a_markdown_path_on_a_read_only_mount_is_refused_even_for_root() {
    const TEST: &str = "a_markdown_path_on_a_read_only_mount_is_refused_even_for_root";
    if !rustix::process::geteuid().is_root() {
        common::skip(TEST, "needs root (to mount a read-only tmpfs)");
        return;
    }
    if !common::tools_present(TEST, &[common::UNSHARE]) {
        return;
    }
    let sub = tempfile::tempdir().unwrap();
    let mnt = tempfile::tempdir().unwrap();
    // In a mount namespace of its own, gone with it: a tmpfs holding old.md, made read-only.
    let script = r#"mount -t tmpfs -o size=1m tmpfs "$1" && echo old > "$1/old.md" &&
        mount -o remount,ro "$1" || exit 99
        "$0" check "$2" --markdown "$1/new.md"; echo "new: $?"
        "$0" check "$2" --markdown "$1/old.md"; echo "old: $?"
        ls "$1"; cat "$1/old.md""#;
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script, env!("CARGO_BIN_EXE_xtask")])
        .args([mnt.path(), sub.path()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(99) || !out.status.success() && stdout.is_empty() {
        common::skip(
            TEST,
            &format!("cannot mount a tmpfs here: {}", stderr.trim()),
        );
        return;
    }
    // Both refused at once (exit 2), nothing created, old.md as it was.
    assert_eq!(stdout, "new: 2\nold: 2\nold.md\nold\n", "{stderr}");
    let m = mnt.path().display();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "error: --markdown {m}/new.md: cannot create it in {m}: Read-only file system"
        )),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "error: --markdown {m}/old.md: cannot write it: Read-only file system"
        )),
        "{stderr}"
    );
}

#[test]
fn a_markdown_path_this_user_may_not_write_is_refused_before_any_run() {
    const TEST: &str = "a_markdown_path_this_user_may_not_write_is_refused_before_any_run";
    use std::os::unix::fs::PermissionsExt as _;
    let root = rustix::process::geteuid().is_root();
    if root && !common::tools_present(TEST, &[common::SETPRIV]) {
        return;
    }
    // Root runs the check as nobody (uid 65534) in a directory of root's; anyone else in a
    // directory of their own made read-only. DIR may be read by either.
    let sub = tempfile::tempdir().unwrap();
    std::fs::set_permissions(sub.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let records = tempfile::tempdir().unwrap();
    let old = records.path().join("old.md");
    std::fs::write(&old, "old\n").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o444)).unwrap();
    let mode = if root { 0o755 } else { 0o555 };
    std::fs::set_permissions(records.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    let check = |md: &Path| {
        let mut command = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_xtask"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_xtask"))
        };
        command
            .arg("check")
            .arg(sub.path())
            .arg("--markdown")
            .arg(md);
        usage_error_of(command)
    };
    let new = records.path().join("new.md");
    let stderr = check(&new);
    let r = records.path().display();
    assert!(
        stderr.starts_with(&format!(
            "error: --markdown {}: cannot create it in {r}: Permission denied",
            new.display()
        )),
        "{stderr}"
    );
    let stderr = check(&old);
    assert!(
        stderr.starts_with(&format!(
            "error: --markdown {}: cannot write it: Permission denied",
            old.display()
        )),
        "{stderr}"
    );
    // Nothing left behind, nothing changed.
    assert!(!new.exists());
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "old\n");
    std::fs::set_permissions(records.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// `run-step 3 --program` and `run-step 5 --racer` judge with the check's judgments: the naive
// writer and the correct one get different verdicts, a lock-incq racer's zero losses are
// explained by its locked instruction, a skeleton is "total stayed 0". run-step exits 0
// whatever the verdict.

/// Builds `tests/submissions/NAME.c` into `dir/NAME` with cc, or `None` (with a notice, outside
/// CI) when the tools are missing.
fn build(dir: &Path, name: &str) -> Option<PathBuf> {
    if !can_build() {
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

/// Builds the fixtures `a` and `b` and runs `run-step STEP --quick --json FLAG` on each, both at
/// once: their (findings, text), or `None` when the tools are missing.
fn run_pair(step: &str, flag: &str, a: &str, b: &str) -> Option<[(Value, String); 2]> {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (build(dir.path(), a)?, build(dir.path(), b)?);
    Some(std::thread::scope(|s| {
        let a = s.spawn(|| run_step(step, flag, &a));
        let b = s.spawn(|| run_step(step, flag, &b));
        [a.join().unwrap(), b.join().unwrap()]
    }))
}

#[test]
fn run_step_3_runs_a_writer_until_the_file_grew_and_fails_the_naive_one() {
    let Some([(naive, naive_text), (ok, _)]) =
        run_pair("3", "--program", "writer_naive", "writer_ok")
    else {
        return;
    };
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
    let Some([(lock, lock_text), (skeleton, skeleton_text)]) =
        run_pair("5", "--racer", "racer_lock", "racer_skeleton")
    else {
        return;
    };
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

#[test]
fn run_step_2_names_a_hard_coded_reader_and_one_that_prints_past_count() {
    let Some([(hard, hard_text), (past, past_text)]) =
        run_pair("2", "--program", "reader_hardcoded", "reader_trusts_size")
    else {
        return;
    };
    let v = &hard["program"]["verdict"];
    assert_eq!(v["verdict"], "fail", "{v}");
    assert!(v["reason"].as_str().unwrap().contains("hard-coded"), "{v}");
    assert!(hard_text.contains("A: On this table yes"), "{hard_text}");
    let v = &past["program"]["verdict"];
    assert_eq!(v["verdict"], "fail", "{v}");
    assert_eq!(past["program"]["printed_past_count"], true);
    assert!(
        past_text.contains("A: No: the 1083 values of the file appear"),
        "{past_text}"
    );
}
