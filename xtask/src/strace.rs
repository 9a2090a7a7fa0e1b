//! strace for the steps not yet moved to `lab_trace` directly: the parser and runner live in
//! `crates/lab-trace`; this keeps the old call shapes (`Traced::calls`, anyhow errors).
//! TRANSITIONAL: removed when every step uses `lab_trace::run` itself.

use std::ffi::OsStr;
use std::path::Path;

use anyhow::bail;

pub use lab_trace::run::command;
#[cfg(test)]
pub use lab_trace::strace::parse;
pub use lab_trace::strace::Syscall;

/// Checks once that strace is installed and allowed to trace; the error says how to fix it.
pub fn check() -> anyhow::Result<()> {
    Ok(lab_trace::run::check()?)
}

/// Reads and parses a strace output file.
pub fn parse_file(path: &Path) -> anyhow::Result<Vec<Syscall>> {
    Ok(lab_trace::run::parse_file(path)?.calls)
}

/// The result of [`run`].
pub struct Traced {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub calls: Vec<Syscall>,
}

/// Runs `prog args` to completion under strace (stdin closed) and parses the trace; a program
/// killed by a signal is an error here.
pub fn run<I, S>(prog: &Path, args: I, filter: &str, scratch: &Path) -> anyhow::Result<Traced>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let t = lab_trace::run::run(prog, args, filter, scratch)?;
    if t.status.code().is_none() {
        bail!("{} under strace died: {}", prog.display(), t.status);
    }
    Ok(Traced {
        status: t.status,
        stdout: t.stdout,
        stderr: t.stderr,
        calls: t.trace.calls,
    })
}
