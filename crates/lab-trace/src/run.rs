//! Running a program under `strace(1)`: `strace -f -o FILE -e trace=LIST -- PROG ARGS`, then
//! [`crate::strace::parse_trace`] on FILE.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;

use crate::strace::{self, Trace};

/// Why strace could not give us a trace.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TraceError {
    #[error(
        "strace is not installed; install it with `apt-get install strace` (Debian/Ubuntu) \
         or `dnf install strace` (Fedora)"
    )]
    Missing,
    #[error(
        "strace is not allowed to trace here ({0}); allow ptrace (kernel.yama.ptrace_scope, or \
         CAP_SYS_PTRACE in a container)"
    )]
    Denied(String),
    #[error("{what}: {reason}")]
    Failed { what: String, reason: String },
}

impl TraceError {
    fn failed(what: impl Into<String>, reason: impl std::fmt::Display) -> TraceError {
        TraceError::Failed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// Checks once that strace is installed and allowed to trace; the error says how to fix it.
pub fn check() -> Result<(), TraceError> {
    static CHECKED: OnceLock<Result<(), TraceError>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let out = Command::new("strace")
                .args(["-o", "/dev/null", "-e", "trace=none", "--", "true"])
                .stdin(Stdio::null())
                .output();
            match out {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(TraceError::Missing),
                Err(e) => Err(TraceError::failed("cannot run strace", e)),
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => {
                    let msg = String::from_utf8_lossy(&o.stderr);
                    if msg.contains("Operation not permitted") {
                        Err(TraceError::Denied(
                            msg.lines().next().unwrap_or("").trim().to_string(),
                        ))
                    } else {
                        Err(TraceError::failed("strace failed", msg.trim()))
                    }
                }
            }
        })
        .clone()
}

/// A command that runs `prog args` under `strace -f -o out -e trace=filter`.
/// The caller spawns it (several can run at once) and then [`parse_file`]s `out`.
pub fn command<I, S>(prog: &Path, args: I, filter: &str, out: &Path) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command_with(prog, args, filter, out, &[])
}

/// Like [`command`], with `strace -y`: every descriptor argument is printed with the path of
/// its file (`read(3</tmp/t.bin>, …)`), which [`crate::fds::file_calls`] follows into every
/// thread and child and through every name the file is opened by.
pub fn command_with_fd_paths<I, S>(prog: &Path, args: I, filter: &str, out: &Path) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command_with(prog, args, filter, out, &["-y"])
}

fn command_with<I, S>(prog: &Path, args: I, filter: &str, out: &Path, flags: &[&str]) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("strace");
    cmd.arg("-f")
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg("-e")
        .arg(format!("trace={filter}"))
        .arg("--")
        .arg(prog);
    cmd.args(args);
    cmd
}

/// Reads and parses a strace output file.
pub fn parse_file(path: &Path) -> Result<Trace, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        TraceError::failed(format!("cannot read strace output {}", path.display()), e)
    })?;
    Ok(strace::parse_trace(&text))
}

/// The result of [`run`]: how the program ended, what it printed, and its trace.
#[derive(Debug)]
pub struct Traced {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub trace: Trace,
    /// The raw strace output file (kept in the scratch directory the caller gave).
    pub trace_file: PathBuf,
}

/// Runs `prog args` to completion under strace (stdin closed) and parses the trace, written
/// into `scratch`. A program killed by a signal is a result (the trace says which), not an error.
pub fn run<I, S>(prog: &Path, args: I, filter: &str, scratch: &Path) -> Result<Traced, TraceError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_command(prog, filter, scratch, |cmd| {
        cmd.args(args);
    })
}

/// Like [`run`], letting `setup` add arguments, environment and a working directory to the
/// traced command (it is `strace … -- prog`, so arguments added go to the program).
pub fn run_command(
    prog: &Path,
    filter: &str,
    scratch: &Path,
    setup: impl FnOnce(&mut Command),
) -> Result<Traced, TraceError> {
    check()?;
    let trace_file = scratch.join(format!(
        "{}.strace",
        prog.file_name().and_then(OsStr::to_str).unwrap_or("prog")
    ));
    let mut cmd = command(prog, [] as [&str; 0], filter, &trace_file);
    cmd.stdin(Stdio::null());
    setup(&mut cmd);
    let output = cmd
        .output()
        .map_err(|e| TraceError::failed(format!("cannot run strace on {}", prog.display()), e))?;
    let trace = parse_file(&trace_file)?;
    Ok(Traced {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        trace,
        trace_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_trace_of_true_shows_its_mmaps() {
        // A live run of the real strace: the loader maps libc into /bin/true.
        let dir = tempfile::Builder::new()
            .prefix("lab-trace-test-")
            .tempdir()
            .unwrap();
        let traced = match run(
            Path::new("/bin/true"),
            [] as [&str; 0],
            "openat,mmap",
            dir.path(),
        ) {
            Err(TraceError::Missing) if std::env::var_os("CI").is_none() => {
                use std::io::Write as _;
                // Straight to stderr: libtest hides what eprintln! prints in a passing test.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped: strace is not installed (apt-get install strace)"
                );
                return;
            }
            other => other.expect("strace runs (CI installs it)"),
        };
        assert!(traced.status.success());
        let calls = &traced.trace.calls;
        assert!(calls
            .iter()
            .any(|c| c.name == "openat" && c.arg_str(1).is_some_and(|p| p.contains("libc.so"))));
        assert!(calls.iter().any(|c| c.name == "mmap" && c.ok()));
        assert!(traced.trace.exits.iter().any(|e| e.code == Some(0)));
    }

    #[test]
    fn a_signal_death_is_traced_not_an_error() {
        let dir = tempfile::Builder::new()
            .prefix("lab-trace-test-")
            .tempdir()
            .unwrap();
        let traced = match run(
            Path::new("/bin/sh"),
            ["-c", "kill -SEGV $$"],
            "none",
            dir.path(),
        ) {
            Err(TraceError::Missing) if std::env::var_os("CI").is_none() => {
                use std::io::Write as _;
                // Straight to stderr: libtest hides what eprintln! prints in a passing test.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped: strace is not installed (apt-get install strace)"
                );
                return;
            }
            other => other.expect("strace runs (CI installs it)"),
        };
        use std::os::unix::process::ExitStatusExt;
        // strace re-raises the tracee's fatal signal on itself.
        assert_eq!(traced.status.signal(), Some(libc::SIGSEGV));
        assert!(traced.trace.signals.iter().any(|s| s.name == "SIGSEGV"));
        assert!(traced
            .trace
            .exits
            .iter()
            .any(|e| e.killed_by.as_deref() == Some("SIGSEGV")));
    }
}
