//! The raw libc calls of this crate, each behind a safe wrapper: `flock(2)` for liveness, and
//! `sigaction(2)` handlers for an interrupt (SIGINT, SIGTERM, SIGHUP) or a file truncated under
//! the mapping (SIGBUS): a racer still waiting for the start gives its place back
//! ([`crate::place::give_back`]), and the race file this instance created is removed.
//!
//! One assembler directive lives here too: [`align_code_to_cache_line`], which places the race
//! loops.
//!
//! Everything else (open with `O_CREAT|O_EXCL`, `lseek(2)`, `write(2)`, `mmap(2)`) goes through
//! `std` and `memmap2`, which need no unsafe code here.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU64, Ordering};

use crate::place;

/// A race course mapping and this instance's id in it, for the signal handler: set while the
/// mapping lives (its owner clears it before unmapping), taken (swapped out) by the handler.
struct Remembered {
    base: AtomicPtr<u8>,
    id: AtomicI32,
}

impl Remembered {
    const fn new() -> Remembered {
        Remembered {
            base: AtomicPtr::new(std::ptr::null_mut()),
            id: AtomicI32::new(0),
        }
    }

    fn set(&self, base: *mut u8, id: i32) {
        self.id.store(id, Ordering::SeqCst);
        self.base.store(base, Ordering::SeqCst);
    }

    /// Forgets `base` if it is the one remembered.
    fn clear(&self, base: *mut u8) {
        let _ = self.base.compare_exchange(
            base,
            std::ptr::null_mut(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// The remembered mapping and id, forgotten from now on. Async-signal-safe.
    fn take(&self) -> Option<(*mut u8, i32)> {
        let base = self.base.swap(std::ptr::null_mut(), Ordering::SeqCst);
        (!base.is_null()).then(|| (base, self.id.load(Ordering::SeqCst)))
    }
}

/// The race course this instance waits in (none when it is not waiting), and its id: what the
/// signal handler needs to give the place back.
static SEAT: Remembered = Remembered::new();

/// While set, SIGINT, SIGTERM and SIGHUP are only recorded (in [`PENDING`]) for the waiting loop
/// to act on: leaving while waiting needs /proc (who else is there), which a handler cannot read.
static DEFER: AtomicBool = AtomicBool::new(false);
static PENDING: AtomicI32 = AtomicI32::new(0);

/// Turns deferral of interrupts on or off. Turned off with one pending, the interrupt is acted
/// on at once as if it had just arrived.
pub fn defer_interrupts(on: bool) {
    DEFER.store(on, Ordering::SeqCst);
    if !on {
        let sig = PENDING.swap(0, Ordering::SeqCst);
        if sig != 0 {
            on_signal(sig);
        }
    }
}

/// The interrupt that arrived while deferred, if any (taken: it is reported once).
pub fn pending_interrupt() -> Option<i32> {
    match PENDING.swap(0, Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Remembers that this instance holds place `id` in the race course mapped at `base`, so that an
/// interrupt before the start gives it back.
///
/// The caller must call [`leave_seat`] before `base` is unmapped.
pub fn take_seat(base: *mut u8, id: i32) {
    SEAT.set(base, id);
}

/// Forgets the place taken at `base` (the race started, or the mapping is about to go). A signal
/// handled after this does not touch the mapping.
pub fn leave_seat(base: *mut u8) {
    SEAT.clear(base);
}

/// Gives the remembered place back, if any and if the race has not started. Async-signal-safe.
fn give_back_seat() -> Option<i32> {
    let (base, id) = SEAT.take()?;
    // SAFETY: `base` is the start of a live 96-byte shared mapping (page-aligned): take_seat's
    // caller clears the seat before unmapping it, and this process only reaches these 8 bytes
    // through 64-bit atomics.
    let head = unsafe { AtomicU64::from_ptr(base.cast()) };
    place::give_back(head, id).then_some(id)
}

/// The outcome of a non-blocking `flock(2)` attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    Acquired,
    WouldBlock,
}

fn flock(file: &File, op: libc::c_int) -> io::Result<Lock> {
    loop {
        // SAFETY: flock(2) only reads its two integer arguments; the descriptor is owned by
        // `file`, which is borrowed for the duration of the call, so it is open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(Lock::Acquired);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(Lock::WouldBlock),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// `flock(fd, LOCK_SH | LOCK_NB)`: every live participant holds a shared lock on the race file.
pub fn try_lock_shared(file: &File) -> io::Result<Lock> {
    flock(file, libc::LOCK_SH | libc::LOCK_NB)
}

/// `flock(fd, LOCK_EX | LOCK_NB)`: succeeds only when no process holds the file locked, that is
/// when no participant is alive.
pub fn try_lock_exclusive(file: &File) -> io::Result<Lock> {
    flock(file, libc::LOCK_EX | libc::LOCK_NB)
}

/// `flock(fd, LOCK_UN)`.
pub fn unlock(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_UN).map(drop)
}

/// `fcntl(2)` record lock on one byte `at` (`F_SETLK` with `F_WRLCK`, or `F_UNLCK`), or the
/// test for one (`F_GETLK`). POSIX record locks belong to the process: the kernel drops them
/// when it ends, however it ends (SIGKILL included), which is what tells its place is free.
fn record_lock(
    file: &File,
    cmd: libc::c_int,
    kind: libc::c_int,
    at: u64,
) -> io::Result<libc::flock> {
    // SAFETY: a zeroed flock is a valid value to fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = at as libc::off_t;
    fl.l_len = 1;
    loop {
        // SAFETY: fcntl(2) with F_SETLK/F_GETLK reads (and for F_GETLK writes) the flock struct,
        // which is valid and exclusively borrowed; the descriptor is owned by `file`, borrowed for
        // the call, so it is open.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl) };
        if rc != -1 {
            return Ok(fl);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Locks byte `at` of `file` for this process (`F_SETLK`, `F_WRLCK`, non-blocking). Bytes past
/// the end of the file may be locked: the file does not change.
pub fn lock_byte(file: &File, at: u64) -> io::Result<Lock> {
    match record_lock(file, libc::F_SETLK, libc::F_WRLCK, at) {
        Ok(_) => Ok(Lock::Acquired),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {
            Ok(Lock::WouldBlock)
        }
        Err(e) => Err(e),
    }
}

/// Unlocks byte `at` of `file` (`F_UNLCK`).
pub fn unlock_byte(file: &File, at: u64) -> io::Result<()> {
    record_lock(file, libc::F_SETLK, libc::F_UNLCK, at).map(drop)
}

/// The pid of another process holding byte `at` of `file` locked (`F_GETLK`), `None` when no
/// other process does (this process's own locks never conflict with it).
pub fn byte_holder(file: &File, at: u64) -> io::Result<Option<u32>> {
    let fl = record_lock(file, libc::F_GETLK, libc::F_WRLCK, at)?;
    Ok((fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid as u32))
}

/// Which of the two names a first instance creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The race file under its real name, once published.
    Published = 0,
    /// The temporary name it is prepared under before `link(2)` publishes it.
    Temporary = 1,
}

/// The paths this instance created (leaked C strings), or null. The signal handler reads them
/// and unlinks the files; [`forget_created`] clears one before a normal removal.
static CREATED: [AtomicPtr<libc::c_char>; 2] = [
    AtomicPtr::new(std::ptr::null_mut()),
    AtomicPtr::new(std::ptr::null_mut()),
];

/// Remembers `path` as created by this instance so that an interrupt removes it.
pub fn remember_created(slot: Slot, path: &Path) {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return; // A path with a NUL byte cannot have been created in the first place.
    };
    // The previous string (if any) is leaked on purpose: a signal handler may be reading it.
    let _previous = CREATED[slot as usize].swap(c.into_raw(), Ordering::SeqCst);
}

/// Forgets a created path (before this instance removes the file itself, or hands it over).
pub fn forget_created(slot: Slot) {
    CREATED[slot as usize].swap(std::ptr::null_mut(), Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP held pending (`pthread_sigmask(3)`) while this lives: for the
/// instant between publishing the race file and remembering its name.
pub struct HeldSignals {
    old: libc::sigset_t,
    held: bool,
}

/// Holds the interrupting signals until the returned guard is dropped.
pub fn hold_signals() -> HeldSignals {
    // SAFETY: sigemptyset(3)/sigaddset(3) fill in zeroed sets we own, with valid signal numbers;
    // pthread_sigmask(3) reads `set` and writes the previous mask into `old`, both valid.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        let held = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) == 0;
        HeldSignals { old, held }
    }
}

impl Drop for HeldSignals {
    fn drop(&mut self) {
        if self.held {
            // SAFETY: restores the mask saved by hold_signals (a valid sigset_t); a signal that
            // arrived meanwhile is delivered now, with the created name already remembered.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
        }
    }
}

fn write_stderr(msg: &[u8]) {
    // SAFETY: write(2) reads `msg.len()` bytes from a live slice; it is async-signal-safe.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}

/// The race course this instance is racing in (none when its loop does not run), and its id:
/// what the signal handler reads to say how far it got.
static RACING: Remembered = Remembered::new();

/// Remembers that this instance races as `id` in the race course mapped at `base`, so that an
/// interrupt mid-race says its id and winnings so far.
///
/// The caller must call [`stop_racing`] before `base` is unmapped.
pub fn start_racing(base: *mut u8, id: i32) {
    RACING.set(base, id);
}

/// Forgets the race course mapped at `base`: its loop ended, or the mapping is about to go.
pub fn stop_racing(base: *mut u8) {
    RACING.clear(base);
}

/// `(id, winnings[id-1], total)` of the race this instance runs, if its loop runs.
/// Async-signal-safe.
fn racing_now() -> Option<(i32, i64, i64)> {
    let (base, id) = RACING.take()?;
    if !(1..=crate::MAX_PARTICIPANTS).contains(&id) {
        return None;
    }
    let at = |offset: usize| {
        // SAFETY: `base` is the start of a live 96-byte shared mapping (page-aligned):
        // start_racing's caller clears it before unmapping. `offset` is `total` (8) or
        // `winnings[id-1]` (16 + 8 * (id-1) <= 88), 8-byte aligned and inside the mapping, and
        // this process reaches these bytes only through 64-bit atomics.
        unsafe { AtomicI64::from_ptr(base.add(offset).cast()) }.load(Ordering::Relaxed)
    };
    Some((id, at(16 + 8 * (id as usize - 1)), at(8)))
}

/// A message built without allocating (in a signal handler).
struct Msg {
    buf: [u8; 256],
    len: usize,
}

impl Msg {
    fn new() -> Msg {
        Msg {
            buf: [0; 256],
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> &mut Msg {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    /// The decimal digits of `n`.
    fn num(&mut self, n: i64) -> &mut Msg {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = n.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if n < 0 {
            self.push(b"-");
        }
        self.push(&digits[i..])
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    if sig != libc::SIGBUS && DEFER.load(Ordering::SeqCst) {
        PENDING.store(sig, Ordering::SeqCst);
        return;
    }
    // The place first, so the others see the count go up before the file (if ours) goes. Not on
    // SIGBUS: the mapping is what faulted.
    let (gave_back, racing) = if sig == libc::SIGBUS {
        let _ = (SEAT.take(), RACING.take());
        (None, None)
    } else {
        (give_back_seat(), racing_now())
    };
    let mut removed = false;
    for slot in &CREATED {
        let path = slot.swap(std::ptr::null_mut(), Ordering::SeqCst);
        removed |= !path.is_null() && {
            // SAFETY: `path` is a NUL-terminated string leaked by remember_created and never
            // freed; unlink(2) is async-signal-safe.
            unsafe { libc::unlink(path) == 0 }
        };
    }
    const REMOVED: &[u8] = b"removed the race file this instance created";
    let mut msg = Msg::new();
    match (sig, removed) {
        (libc::SIGBUS, true) => {
            msg.push(b"error: the race file was truncated while mapped (SIGBUS); removed it")
        }
        (libc::SIGBUS, false) => msg.push(
            b"error: the race file was truncated while mapped (SIGBUS); remove it if no race \
              is running",
        ),
        _ => match (racing, gave_back) {
            (Some((id, winnings, total)), _) => {
                msg.push(b"race: interrupted mid-race as id ")
                    .num(id.into())
                    .push(b"; its winnings so far ")
                    .num(winnings)
                    .push(b" (total ")
                    .num(total)
                    .push(b")");
                if removed {
                    msg.push(b"; ").push(REMOVED);
                }
                &mut msg
            }
            _ if removed => msg.push(b"race: interrupted; ").push(REMOVED),
            (None, Some(id)) => msg
                .push(b"race: interrupted while waiting; gave back place id ")
                .num(id.into()),
            (None, None) => msg.push(b"race: interrupted"),
        },
    };
    msg.push(b"\n");
    write_stderr(msg.bytes());
    let status = if sig == libc::SIGBUS { 1 } else { 128 + sig };
    // SAFETY: _exit(2) is async-signal-safe and never returns.
    unsafe { libc::_exit(status) }
}

/// Installs the handler for SIGINT, SIGTERM, SIGHUP and SIGBUS (`sigaction(2)`): remove the file
/// this instance created (if any), say why on stderr, and exit 128+signal (1 for SIGBUS).
pub fn install_handlers() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGBUS] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value to fill in.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: sa_mask is a valid sigset_t owned by `sa`.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is fully initialised and the handler only calls async-signal-safe
        // functions (unlink, write, _exit) and lock-free atomics.
        let rc = unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The calling thread's CPU time (`clock_gettime(2)` with `CLOCK_THREAD_CPUTIME_ID`): unlike the
/// wall clock, it does not count the time other processes had the CPU, nor this process's other
/// threads (the watcher).
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO; // Cannot fail for this clock on Linux.
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Starts the machine code that follows at a 64-byte boundary, so that a short loop right after
/// it lies in one 64-byte line of the instruction cache whatever code the linker put before its
/// function. Called first in a function that is never inlined, it aligns the function itself:
/// the assembler raises the alignment of the function's section (rustc gives each function its
/// own) to 64 and pads with NOPs only if the compiler put instructions before it. This is what
/// `__attribute__((aligned(64)))` does for the C racer; Rust's `#[repr(align)]` on functions is
/// not stable, and cargo cannot give one crate `-C llvm-args=-align-loops=64`.
#[inline(always)]
pub fn align_code_to_cache_line() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `.p2align 6` is an assembler directive, not an instruction: at most the NOPs it
    // pads with run, which read and write no register, flag, stack or memory. (Not declared
    // `nomem`, so that the compiler keeps the function's first load after it, not before it.)
    unsafe {
        std::arch::asm!(".p2align 6", options(nostack, preserves_flags));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_lock_fails_while_another_descriptor_holds_shared() {
        let dir = tempfile::Builder::new()
            .prefix("race-sys-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let a = File::open(&path).unwrap();
        let b = File::open(&path).unwrap();
        assert_eq!(try_lock_exclusive(&b).unwrap(), Lock::Acquired);
        unlock(&b).unwrap();
        assert_eq!(try_lock_shared(&a).unwrap(), Lock::Acquired);
        assert_eq!(try_lock_exclusive(&b).unwrap(), Lock::WouldBlock);
        assert_eq!(try_lock_shared(&b).unwrap(), Lock::Acquired);
        dir.close().unwrap();
    }
}
