//! Whether the program was started with its stdout closed (`prog >&-`).
//!
//! Rust's runtime, before `main`, reopens a closed descriptor 0, 1 or 2 on `/dev/null`, so a
//! program started with `>&-` writes its results into `/dev/null` without an error, and a
//! `dup` of fd 1 succeeds: nothing in `main` can tell. A program that gives something up once
//! it is written (`channel recv` releases messages from the ring) would then lose it. So this
//! module looks at fd 1 earlier, from an `.init_array` constructor, which the C runtime runs
//! before Rust's own start-up; [`stdout_usable`] reports what it saw.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by [`check_stdout_at_start`] when fd 1 was not open as the process started.
static STDOUT_CLOSED_AT_START: AtomicBool = AtomicBool::new(false);

/// Runs before Rust's start-up (which would put `/dev/null` on a closed fd 1): notes whether
/// fd 1 is open. Only an atomic store; no allocation, no std I/O.
extern "C" fn check_stdout_at_start() {
    // SAFETY: fcntl(F_GETFD) only reads the descriptor flags of fd 1; it takes no pointer and
    // changes nothing. It fails with EBADF exactly when fd 1 is not open.
    let flags = unsafe { libc::fcntl(libc::STDOUT_FILENO, libc::F_GETFD) };
    if flags == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF) {
        STDOUT_CLOSED_AT_START.store(true, Ordering::Relaxed);
    }
}

/// The constructor entry: the dynamic loader (or the static start-up code) calls every
/// function pointer in `.init_array` before `main`.
#[used]
#[link_section = ".init_array"]
static CHECK_STDOUT_AT_START: extern "C" fn() = check_stdout_at_start;

/// `Ok` unless the program was started with stdout closed; then the error is EBADF ("Bad file
/// descriptor"), for the caller's `error: cannot write to stdout: …` line (exit 1). Call it
/// before doing anything that the output is meant to report (consuming, creating, changing).
pub fn stdout_usable() -> io::Result<()> {
    // Naming the constructor's static here keeps it (and its `.init_array` entry) in every
    // program that calls this function, whatever the linker drops from lab-cli otherwise.
    std::hint::black_box(&CHECK_STDOUT_AT_START);
    if STDOUT_CLOSED_AT_START.load(Ordering::Relaxed) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(())
}

/// Ignores SIGXFSZ, whose default action kills the process (status 153, no message) when a
/// write or `ftruncate` would pass the file size limit (`ulimit -f`, RLIMIT_FSIZE). Ignored,
/// the call fails with EFBIG instead ("File too large"), which the program reports as its
/// error and cleans up after. Call it first thing in `main` of a program that writes files.
pub fn ignore_file_size_signal() -> io::Result<()> {
    // SAFETY: setting SIGXFSZ's disposition to SIG_IGN installs no handler code and touches no
    // memory of ours; signal(2) has no other precondition.
    let previous = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
