//! `cargo xtask report` from the outside: the failure paths that need no step to run.

use std::path::Path;
use std::process::Command;

fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

/// Without Chromium on PATH, `--check` stops before running any step, with a one-line error
/// saying how to install it, and exit status 1.
#[test]
fn check_without_chromium_says_how_to_install_it() {
    // A PATH that holds cargo (for `cargo metadata`) and nothing else.
    let cargo = Path::new(env!("CARGO"));
    let tmp = tempfile::Builder::new()
        .prefix("xtask-report-cli-")
        .tempdir()
        .unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(cargo, bin.join("cargo")).unwrap();
    let out = xtask()
        .args(["report", "--quick", "--check"])
        .env("PATH", &bin)
        .env("CARGO", cargo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.starts_with("error: --check needs Chromium")
            && stderr.contains("apt-get install chromium"),
        "stderr: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    // No step ran: nothing was built or traced, stdout is empty.
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_option_is_a_usage_error() {
    let out = xtask().args(["report", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--bogus'"));
}
