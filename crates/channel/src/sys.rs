//! The raw libc calls of this crate, each behind a safe wrapper that cites its man page:
//! `futex(2)` (shared, not process-private), `fcntl(2)` open-file-description locks,
//! `sched_setaffinity(2)`/`sched_getaffinity(2)`, and `sigaction(2)` handlers that turn Ctrl-C
//! into a flag the waiting loops poll (and SIGBUS into a one-line error).
//!
//! `posix_fallocate(3)` reserves a new ring's blocks and `linkat(2)` names a ring made without
//! a name (`O_TMPFILE`). Everything else (open, ftruncate, link, mmap) goes through `std` and
//! `memmap2`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// What a `FUTEX_WAIT` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FutexWait {
    /// Woken by a `FUTEX_WAKE` (or spuriously: callers re-check their condition anyway).
    Woken,
    /// The timeout elapsed.
    TimedOut,
    /// The word no longer held the expected value when the kernel looked (`EAGAIN`).
    Changed,
    /// A signal arrived (`EINTR`).
    Interrupted,
}

/// `futex(2)` `FUTEX_WAIT` on a word that may live in a `MAP_SHARED` mapping: sleeps while
/// `*word == expected`, for at most `timeout`. The operation is the *shared* one (no
/// `FUTEX_PRIVATE_FLAG`), so the kernel keys the wait queue on the file page and offset, and a
/// `FUTEX_WAKE` from another process mapping the same file reaches this sleeper.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<FutexWait> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of the call (the kernel
    // reads it atomically and compares); `ts` is a valid timespec on our stack; the remaining
    // arguments are unused by FUTEX_WAIT.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if rc == 0 {
        return Ok(FutexWait::Woken);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ETIMEDOUT) => Ok(FutexWait::TimedOut),
        Some(libc::EAGAIN) => Ok(FutexWait::Changed),
        Some(libc::EINTR) => Ok(FutexWait::Interrupted),
        _ => Err(err),
    }
}

/// `futex(2)` `FUTEX_WAKE` (shared): wakes up to `count` processes sleeping on `word`; returns
/// how many were woken.
pub fn futex_wake(word: &AtomicU32, count: i32) -> io::Result<usize> {
    // SAFETY: FUTEX_WAKE only uses the address as a key (the word need not be read); the
    // pointer comes from a live reference. The timeout/second-address arguments are unused.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

fn one_byte_lock(kind: libc::c_short, byte: u64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct of integers; all-zero is a valid value to fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl.l_pid = 0; // Required to be 0 for open-file-description locks.
    fl
}

fn fcntl_lock(file: &File, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
    // SAFETY: fcntl(2) with an F_OFD_* command reads (and for GETLK writes) one `flock`
    // struct through a valid, exclusively borrowed pointer; the descriptor is owned by `file`.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, fl as *mut libc::flock) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fcntl(2)` `F_OFD_SETLK`: try to take a write lock on one byte of `file`, without waiting.
/// Open-file-description locks belong to the open file (not the process, unlike classic POSIX
/// locks), so two descriptors in one process conflict like two processes do, and the kernel
/// drops the lock when the description is closed — including when the process dies.
/// Returns `false` when another open file description holds the byte.
pub fn try_lock_byte(file: &File, byte: u64) -> io::Result<bool> {
    let mut fl = one_byte_lock(libc::F_WRLCK as libc::c_short, byte);
    match fcntl_lock(file, libc::F_OFD_SETLK, &mut fl) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `fcntl(2)` `F_OFD_SETLKW`: take a write lock on one byte, waiting for it (retried on EINTR).
pub fn lock_byte(file: &File, byte: u64) -> io::Result<()> {
    loop {
        let mut fl = one_byte_lock(libc::F_WRLCK as libc::c_short, byte);
        match fcntl_lock(file, libc::F_OFD_SETLKW, &mut fl) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `fcntl(2)` `F_OFD_SETLK` with `F_UNLCK`: release one byte.
pub fn unlock_byte(file: &File, byte: u64) -> io::Result<()> {
    let mut fl = one_byte_lock(libc::F_UNLCK as libc::c_short, byte);
    fcntl_lock(file, libc::F_OFD_SETLK, &mut fl)
}

/// `fcntl(2)` `F_OFD_GETLK`: does another open file description hold a lock on this byte?
/// This is the liveness test of the peer: its lock disappears when it dies.
pub fn byte_locked_by_other(file: &File, byte: u64) -> io::Result<bool> {
    let mut fl = one_byte_lock(libc::F_WRLCK as libc::c_short, byte);
    fcntl_lock(file, libc::F_OFD_GETLK, &mut fl)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// `posix_fallocate(3)`: gives `file` a length of at least `len` bytes with every block
/// allocated, so that later stores through a mapping cannot fail for lack of space (a SIGBUS).
/// A full file system is `ENOSPC` here. glibc falls back to writing a byte per block where
/// `fallocate(2)` is not supported; where even that fails (`EOPNOTSUPP`, `EINVAL`), zeros are
/// written over the whole length (`pwrite(2)`), so a full disk is still `ENOSPC` here.
pub fn reserve(file: &File, len: u64) -> io::Result<()> {
    let off_len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    loop {
        // SAFETY: posix_fallocate takes a descriptor owned by `file` and two integers; it
        // touches no memory of ours.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, off_len) };
        match rc {
            0 => return Ok(()),
            libc::EINTR => continue,
            libc::EOPNOTSUPP | libc::EINVAL => return write_zeros(file, len),
            // It returns the error number instead of setting errno.
            _ => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

/// `linkat(2)` with `AT_SYMLINK_FOLLOW` from `/proc/self/fd/N`: gives the file `file`, opened
/// with `O_TMPFILE` and so without a name, the name `path`. Fails with `EEXIST` if `path`
/// exists (a link never replaces anything), so two creators racing get one ring.
pub fn link_unnamed(file: &File, path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let to = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both strings are NUL-terminated and outlive the call; linkat(2) only reads them.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Allocates `len` bytes of `file` the slow way: zeros written over all of it.
fn write_zeros(file: &File, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = [0u8; 64 * 1024];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

/// `sched_getaffinity(2)` for this process: the CPUs it may run on, in increasing order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most size_of::<cpu_set_t>() bytes into `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET reads the set for an index below its capacity.
    Ok((0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// `sched_setaffinity(2)` for this process: run only on `cpus`.
pub fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    for &c in cpus {
        if c >= max {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: CPU_SET writes one bit of `set` for an index below its capacity.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: the kernel reads size_of::<cpu_set_t>() bytes from the valid `set`.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `prctl(2)` `PR_SET_PDEATHSIG`: the kernel sends this process SIGKILL when its parent dies,
/// so a benchmark peer spinning on a cache line never outlives the benchmark.
pub fn kill_me_when_parent_dies() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and reads no memory.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `poll(2)` on one descriptor for input, for at most `timeout`: `true` when readable (or at
/// end of file or error, which the next read reports). A signal returns `false` early, so the
/// caller can look at its interrupt flag without racing a blocking read.
pub fn wait_readable(fd: &impl AsRawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: poll(2) reads and writes exactly one pollfd through a valid, exclusively
    // borrowed pointer.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(rc > 0)
}

/// Set by the first SIGINT/SIGTERM/SIGHUP once [`install_interrupt_handlers`] ran; the waiting
/// loops poll it (pass it as `Options::interrupt`) so the program leaves the ring cleanly.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SIGNALS_SEEN: AtomicUsize = AtomicUsize::new(0);
/// The number of the first of those signals (0 before any), for the exit status 128 + it.
pub static FIRST_SIGNAL: AtomicI32 = AtomicI32::new(0);

fn write_stderr(msg: &[u8]) {
    // SAFETY: write(2) reads `msg.len()` bytes from a live slice; it is async-signal-safe.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}

extern "C" fn on_interrupt(sig: libc::c_int) {
    // Before the flag: whoever sees the flag set finds the signal's number too.
    let _ = FIRST_SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
    if SIGNALS_SEEN.fetch_add(1, Ordering::SeqCst) >= 1 {
        // A second Ctrl-C while the first is being handled: the user insists.
        write_stderr(b"channel: interrupted twice; exiting at once\n");
        // SAFETY: _exit(2) is async-signal-safe and never returns.
        unsafe { libc::_exit(128 + sig) }
    }
}

extern "C" fn on_sigbus(_sig: libc::c_int) {
    write_stderr(
        b"error: the ring file was truncated while mapped, or its file system could not back \
          it (SIGBUS); remove it and start again\n",
    );
    // SAFETY: _exit(2) is async-signal-safe and never returns.
    unsafe { libc::_exit(1) }
}

fn install(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value to fill in. No
    // SA_RESTART: a blocking read(2) of stdin or futex wait returns EINTR so the flag is seen.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as libc::sighandler_t;
    // SAFETY: sa_mask is a valid sigset_t owned by `sa`.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: `sa` is fully initialised; the handlers only touch lock-free atomics and call
    // async-signal-safe functions (write, _exit).
    let rc = unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `sigaction(2)`: SIGINT, SIGTERM and SIGHUP set [`INTERRUPTED`] (a second one exits at once);
/// SIGBUS (the file truncated under the mapping) prints a one-line error and exits 1.
pub fn install_interrupt_handlers() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        install(sig, on_interrupt)?;
    }
    install(libc::SIGBUS, on_sigbus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ofd_locks_conflict_between_two_descriptors_of_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let a = File::options().read(true).write(true).open(&path).unwrap();
        let b = File::options().read(true).write(true).open(&path).unwrap();
        assert!(!byte_locked_by_other(&b, 0).unwrap());
        assert!(try_lock_byte(&a, 0).unwrap());
        assert!(byte_locked_by_other(&b, 0).unwrap());
        assert!(!try_lock_byte(&b, 0).unwrap());
        // Another byte is independent.
        assert!(try_lock_byte(&b, 1).unwrap());
        unlock_byte(&a, 0).unwrap();
        assert!(!byte_locked_by_other(&b, 0).unwrap());
        drop(b); // Closing the description drops its locks.
        assert!(!byte_locked_by_other(&a, 1).unwrap());
    }

    #[test]
    fn futex_wait_returns_at_once_when_the_word_changed_and_times_out_otherwise() {
        let word = AtomicU32::new(5);
        assert_eq!(
            futex_wait(&word, 4, Duration::from_millis(10)).unwrap(),
            FutexWait::Changed
        );
        assert_eq!(
            futex_wait(&word, 5, Duration::from_millis(1)).unwrap(),
            FutexWait::TimedOut
        );
        assert_eq!(futex_wake(&word, 1).unwrap(), 0);
    }

    #[test]
    fn reserve_and_its_fallback_allocate_every_block() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        for (name, fallback) in [("posix_fallocate", false), ("zeros", true)] {
            let path = dir.path().join(name);
            let file = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .unwrap();
            let len = 200 * 1024 + 8;
            if fallback {
                write_zeros(&file, len).unwrap();
            } else {
                reserve(&file, len).unwrap();
            }
            let meta = file.metadata().unwrap();
            assert_eq!(meta.len(), len, "{name}");
            // st_blocks counts 512-byte units actually allocated: not a sparse file.
            assert!(
                meta.blocks() * 512 >= len,
                "{name}: {} blocks",
                meta.blocks()
            );
        }
    }

    #[test]
    fn affinity_round_trips() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        set_affinity(&cpus).unwrap();
        assert_eq!(allowed_cpus().unwrap(), cpus);
    }
}
