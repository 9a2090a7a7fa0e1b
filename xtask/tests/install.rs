//! `cargo xtask install`: the installed `mmap-lab` runs steps and `bench race` from an unrelated
//! directory, with neither cargo nor the target directory on `PATH` and no cargo environment,
//! finding its programs beside its own executable; and relative path arguments are the
//! caller's, in `cargo xtask` and `mmap-lab` alike. Needs `strace` for the live runs and `cc`
//! for the benchmark: without them (outside CI) the test says it skipped that part.
//!
//! The install uses `--debug` (cargo install's flag): the dev-profile builds `cargo test` has
//! made already, so the test does not spend minutes on a release build of the driver.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.stdin(Stdio::null());
    cmd
}

/// `program` with a bare environment: a system PATH (no cargo, no target dir), its own HOME.
fn bare(program: &Path, cwd: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .current_dir(cwd)
        .stdin(Stdio::null());
    cmd
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether strace runs here; outside CI a missing one skips the test with a notice.
fn strace_present(test: &str) -> bool {
    common::tools_present(test, &[common::STRACE])
}

/// The course's table.bin, written byte by byte: count 1083, value[i] = i up to 7999, then
/// zeros, 114,340 bytes.
fn course_table(path: &Path) {
    let mut bytes = 1083i64.to_le_bytes().to_vec();
    for i in 0..8000i32 {
        bytes.extend_from_slice(&i.to_le_bytes());
    }
    bytes.resize(114_340, 0);
    std::fs::write(path, bytes).unwrap();
}

/// A recorded evidence set copied to `dir/name` (a directory named relative to `dir`).
fn copy_evidence(set: &str, dir: &Path, name: &str) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/evidence")
        .join(set);
    std::fs::create_dir(dir.join(name)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(name).join(entry.file_name())).unwrap();
    }
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap()
}

/// Everything under `dir`, relative to it.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            if path.is_dir() {
                todo.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn installed_mmap_lab_runs_steps_from_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, cwd, home) = (
        tmp.path().join("root"),
        tmp.path().join("student"),
        tmp.path().join("home"),
    );
    std::fs::create_dir(&cwd).unwrap();
    std::fs::create_dir(&home).unwrap();
    // A relative --root is the caller's too.
    let out = xtask()
        .args(["install", "--debug", "--root", "root"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let said = ok(out, "cargo xtask install");
    let exe = root.join("bin/mmap-lab");
    assert!(said.contains(&exe.display().to_string()), "{said}");
    for file in [
        "malloc-probe",
        "persist",
        "disktable",
        "libfoobar.so",
        "foo",
        "bar",
        "race",
        "channel",
    ] {
        assert!(root.join("lib/mmap-lab").join(file).is_file(), "{file}");
    }

    let help = ok(
        bare(&exe, &cwd, &home).arg("--help").output().unwrap(),
        "--help",
    );
    assert!(help.contains("Usage: mmap-lab"), "{help}");
    assert!(help.contains("mmap-lab run-step 1"), "{help}");
    assert!(!help.contains("cargo xtask"), "{help}");

    // Replay needs no tool: relative --evidence, resolved in the student's directory.
    copy_evidence("course-table", &cwd, "ev");
    let replayed = ok(
        bare(&exe, &cwd, &home)
            .args(["run-step", "2", "--evidence", "ev", "--json"])
            .output()
            .unwrap(),
        "mmap-lab run-step 2 --evidence ev",
    );
    assert_eq!(json(&replayed)["step"], 2);

    if strace_present("installed_mmap_lab_runs_steps_from_anywhere") {
        let s1 = ok(
            bare(&exe, &cwd, &home)
                .args(["run-step", "1", "--quick"])
                .output()
                .unwrap(),
            "mmap-lab run-step 1 --quick",
        );
        assert!(s1.contains("Step 1"), "{s1}");
        // foo and bar find libfoobar.so beside them (RUNPATH $ORIGIN), in the install.
        let s4 = ok(
            bare(&exe, &cwd, &home)
                .args(["run-step", "4", "--quick", "--json"])
                .output()
                .unwrap(),
            "mmap-lab run-step 4 --quick",
        );
        let library = root.join("lib/mmap-lab/libfoobar.so");
        let programs = &json(&s4)["findings"]["programs"];
        assert_eq!(programs.as_array().map(Vec::len), Some(2), "{s4}");
        for p in programs.as_array().unwrap() {
            assert_eq!(p["library"], library.display().to_string(), "{p}");
        }
        // A relative --table, the caller's.
        course_table(&cwd.join("table.bin"));
        let s2 = ok(
            bare(&exe, &cwd, &home)
                .args(["run-step", "2", "--quick", "--table", "table.bin"])
                .output()
                .unwrap(),
            "mmap-lab run-step 2 --quick --table table.bin",
        );
        let given = format!("The table: {} (--table)", cwd.join("table.bin").display());
        assert!(s2.contains(&given), "{s2}");
    }
    // The benchmark of the two racers needs no source tree either: the C racer's source comes
    // with the lab and is built with cc in a scratch directory (it used to refuse to run).
    if common::tools_present("installed_mmap_lab_runs_steps_from_anywhere", &[common::CC]) {
        let bench = ok(
            bare(&exe, &cwd, &home)
                .args(["bench", "race", "--quick", "--json"])
                .output()
                .unwrap(),
            "mmap-lab bench race --quick --json",
        );
        let rows = json(&bench)["rows"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 4, "{bench}");
        for row in rows {
            assert!(row["c_cpu_ns"].as_f64().is_some_and(|ns| ns > 0.0), "{row}");
        }
    }
    // Nothing left behind: not in HOME (the work directory is made on demand and removed),
    // not in the student's directory.
    assert_eq!(listing(&home), Vec::<PathBuf>::new());
    let mut left = listing(&cwd);
    left.retain(|p| !p.starts_with("ev"));
    left.retain(|p| p != Path::new("table.bin"));
    assert_eq!(left, Vec::<PathBuf>::new());
}

#[test]
fn cargo_xtask_reads_relative_paths_from_the_callers_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    copy_evidence("course-table", cwd, "recorded");
    let from_here = ok(
        xtask()
            .args(["run-step", "3", "--evidence", "recorded", "--json"])
            .current_dir(cwd)
            .output()
            .unwrap(),
        "cargo xtask run-step 3 --evidence recorded",
    );
    let absolute = ok(
        xtask()
            .args(["run-step", "3", "--json", "--evidence"])
            .arg(cwd.join("recorded"))
            .output()
            .unwrap(),
        "cargo xtask run-step 3 --evidence ABSOLUTE",
    );
    assert_eq!(json(&from_here), json(&absolute));

    // --save-evidence too, on a live run of the quickest step.
    if strace_present("cargo_xtask_reads_relative_paths_from_the_callers_directory") {
        ok(
            xtask()
                .args(["run-step", "1", "--quick", "--save-evidence", "saved"])
                .current_dir(cwd)
                .output()
                .unwrap(),
            "cargo xtask run-step 1 --quick --save-evidence saved",
        );
        assert!(cwd.join("saved/step1.json").is_file());
    }

    // A relative path that names nothing here is reported as the caller's path.
    let out = xtask()
        .args(["run-step", "2", "--table", "missing.bin"])
        .current_dir(cwd)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&cwd.join("missing.bin").display().to_string()),
        "{stderr}"
    );
    // An empty path is a usage error on one line.
    let out = xtask()
        .args(["run-step", "2", "--table", ""])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: --table"), "{stderr}");
}
