//! What the xtask integration tests share: the check that the outside tools a test runs are
//! here, skipping the test with a one-line notice when one is missing (outside CI only).

// Each test binary compiles this module on its own and uses only the tools it needs.
#![allow(dead_code)]

use std::process::{Command, Stdio};

/// A tool a test needs: its name, an argument that makes it print and exit, how to install it.
pub type Tool = (&'static str, &'static str, &'static str);

pub const CC: Tool = ("cc", "--version", "apt-get install gcc");
pub const MAKE: Tool = ("make", "--version", "apt-get install make");
pub const STRACE: Tool = ("strace", "-V", "apt-get install strace");
pub const READELF: Tool = ("readelf", "--version", "apt-get install binutils");
pub const OBJDUMP: Tool = ("objdump", "--version", "apt-get install binutils");
pub const SETPRIV: Tool = ("setpriv", "--version", "apt-get install util-linux");
pub const UNSHARE: Tool = ("unshare", "--version", "apt-get install util-linux");

/// Whether every one of `tools` runs here. Outside CI a missing one skips `test` with a
/// notice naming it and how to install it; under `CI` a missing tool fails the test.
pub fn tools_present(test: &str, tools: &[Tool]) -> bool {
    for &(tool, arg, install) in tools {
        let runs = Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !runs {
            skip(test, &format!("needs {tool}; install it with `{install}`"));
            return false;
        }
    }
    true
}

/// Skips `test` for `why` with a one-line notice on stderr; under `CI`, which must be able to
/// run every test, it fails the test instead.
pub fn skip(test: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {why} (CI must be able to run it)"
    );
    use std::io::Write as _;
    // Straight to stderr: libtest hides what eprintln! prints in a passing test.
    let _ = writeln!(std::io::stderr(), "skipped: {test} {why}");
}

/// The C fixtures of the check's tests: a course-shaped submission's Makefile, headers and
/// programs (`xtask/tests/submissions`).
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/submissions");

/// A submission directory holding the Makefile, the headers (table.h, racer.h) and
/// `fixture.c` as `name.c` for each pair.
pub fn submission(programs: &[(&str, &str)]) -> tempfile::TempDir {
    let fixtures = std::path::Path::new(FIXTURES);
    let dir = tempfile::Builder::new()
        .prefix("xtask-check-sub-")
        .tempdir()
        .unwrap();
    for f in ["Makefile", "table.h", "racer.h"] {
        std::fs::copy(fixtures.join(f), dir.path().join(f)).unwrap();
    }
    for (fixture, name) in programs {
        std::fs::copy(
            fixtures.join(format!("{fixture}.c")),
            dir.path().join(format!("{name}.c")),
        )
        .unwrap();
    }
    dir
}

/// Processes still running one of the programs in `dir` (their /proc/PID/exe lies below it):
/// what a test that ran programs from `dir` must find empty at its end.
pub fn left_running(dir: &std::path::Path) -> Vec<(u32, std::path::PathBuf)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            exe.starts_with(dir).then_some((pid, exe))
        })
        .collect()
}

/// A lab run that must fail: exit status 1, exactly one `error:` line on stderr, no panic, and
/// nothing left running from `dir`. Returns the error line.
pub fn one_error_line(out: &std::process::Output, dir: &std::path::Path) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "stderr: {stderr}");
    assert!(left_running(dir).is_empty(), "{:?}", left_running(dir));
    errors[0].to_string()
}

/// Runs `cc args` in `dir`; a failing compile fails the test with cc's stderr.
pub fn cc(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("cc")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The check `id` of an `xtask check --json` document.
pub fn check_entry<'a>(doc: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {doc}"))
}

/// The verdict and reason of check `id` in an `xtask check --json` document.
pub fn verdict(doc: &serde_json::Value, id: &str) -> (String, String) {
    let c = check_entry(doc, id);
    (
        c["verdict"].as_str().unwrap().to_string(),
        c["reason"].as_str().unwrap().to_string(),
    )
}

/// `xtask check DIR --json ARGS` (with `TMPDIR` set to `tmp` when given): its one JSON document.
pub fn check_json(
    tmp: Option<&std::path::Path>,
    dir: &std::path::Path,
    args: &[&str],
) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    if let Some(tmp) = tmp {
        cmd.env("TMPDIR", tmp);
    }
    let out = cmd
        .arg("check")
        .arg(dir)
        .arg("--json")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
