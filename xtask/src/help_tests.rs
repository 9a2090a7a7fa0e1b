//! Every program of the lab ends `--help` and `--version` quietly with status 0 when whoever
//! reads its output stops early (`persist --help | head -1`), as its data commands do.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Every program built from the workspace that parses a command line (package, program), with
/// the help and version requests it answers: its own and a subcommand's.
const PROGRAMS: &[(&str, &str, &[&[&str]])] = &[
    (
        "persist",
        "persist",
        &[&["--help"], &["--version"], &["list", "--help"]],
    ),
    (
        "persist",
        "disktable",
        &[&["--help"], &["--version"], &["help", "print"]],
    ),
    (
        "channel",
        "channel",
        &[&["--help"], &["--version"], &["recv", "--help"]],
    ),
    ("race", "race", &[&["--help"], &["--version"]]),
    (
        "malloc-probe",
        "malloc-probe",
        &[&["--help"], &["-V"], &["alloc", "--help"]],
    ),
    ("foo", "foo", &[&["--help"]]),
    ("bar", "bar", &[&["-h"]]),
];

/// A pipe's write end whose read end is already closed: the first write fails with EPIPE.
pub fn closed_pipe() -> Stdio {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    drop(read);
    Stdio::from(write)
}

fn assert_quiet_success(exe: &Path, args: &[&str], out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{} {args:?}: {:?}, stderr: {}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{} {args:?} said: {}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `exe args` into a pipe whose reader is gone before it starts, then into one whose
/// reader reads the first line and closes it (as `| head -1`).
fn help_into_closed_pipes(exe: &Path, args: &[&str]) {
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_quiet_success(exe, args, &out);
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.trim().is_empty(), "{} {args:?}", exe.display());
    // The reader is dropped: anything written from now on meets a closed pipe.
    let out = child.wait_with_output().unwrap();
    assert_quiet_success(exe, args, &out);
}

#[test]
fn help_and_version_into_a_closed_pipe_end_quietly_with_status_0() {
    let ctx = crate::model::Ctx::new(false).unwrap();
    let mut packages: Vec<&str> = PROGRAMS.iter().map(|p| p.0).collect();
    packages.dedup();
    ctx.build_release(&packages).unwrap();
    for &(_, name, requests) in PROGRAMS {
        for args in requests {
            help_into_closed_pipes(&ctx.bin(name), args);
        }
    }
}
