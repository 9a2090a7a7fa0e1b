//! Every `unsafe` of foo and bar: libfoobar.so's C API (`foobar.h`) and the signal calls.

use std::ffi::c_int;

use foobar_events::StopReason;

#[link(name = "foobar")]
extern "C" {
    /// `int setbaz(int newbaz)` in libfoobar.so: returns the new value.
    fn setbaz(newbaz: c_int) -> c_int;
    /// `int getbaz()` in libfoobar.so.
    fn getbaz() -> c_int;
    /// `int *bazaddr()` in libfoobar.so: where the library's code finds `baz`.
    fn bazaddr() -> *mut c_int;
    /// `extern int baz` in libfoobar.so: reached through the GOT (R_X86_64_GLOB_DAT).
    static mut baz: c_int;
}

/// Calls libfoobar.so's `setbaz(value)`; returns what it returned (the new value).
pub fn set_baz(value: i32) -> i32 {
    // SAFETY: setbaz takes an int by value and only stores it in the library's `baz`.
    unsafe { setbaz(value) }
}

/// Calls libfoobar.so's `getbaz()`.
pub fn get_baz() -> i32 {
    // SAFETY: getbaz takes no argument and only loads the library's `baz`.
    unsafe { getbaz() }
}

/// Reads the variable `baz` itself (not through getbaz), as the assignment's foo observes it.
pub fn read_baz() -> i32 {
    // SAFETY: `baz` is an aligned int that lives as long as libfoobar.so stays loaded (for the
    // whole process); the read goes through a raw pointer, so no reference aliases a value that
    // setbaz writes, and this process has a single thread touching it.
    unsafe { std::ptr::addr_of!(baz).read_volatile() }
}

/// The run-time addresses of `setbaz`, `getbaz` and `baz` in this process, and what
/// `bazaddr()` answers (the address the library's own code uses for `baz`).
pub fn addresses() -> [(&'static str, usize); 4] {
    // SAFETY: bazaddr takes nothing and returns an address; it reads and writes nothing.
    let from_library = unsafe { bazaddr() } as usize;
    [
        ("setbaz", setbaz as *const () as usize),
        ("getbaz", getbaz as *const () as usize),
        // Taking the address creates no reference and reads nothing.
        ("baz", std::ptr::addr_of!(baz) as usize),
        ("bazaddr", from_library),
    ]
}

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset(3)/sigaddset(3) initialise the zeroed set we own; the signal numbers
    // are valid, so they cannot fail.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP (`sigprocmask(2)`), so that they stay pending until
/// [`wait_for_stop`] takes them synchronously: Ctrl-C at any instant ends the loop cleanly, with
/// no signal handler and nothing async-signal-unsafe.
pub fn block_stop_signals() -> std::io::Result<()> {
    let set = stop_set();
    // SAFETY: sigprocmask(2) with a valid set and a null old-set pointer; the process has one
    // thread, so this is the mask of the whole program.
    let rc = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Waits up to `ms` milliseconds for SIGINT, SIGTERM or SIGHUP (`sigtimedwait(2)`); `ms = 0` only checks
/// whether one is pending. Returns which arrived, or `None` when the time ran out.
pub fn wait_for_stop(ms: u64) -> std::io::Result<Option<StopReason>> {
    let set = stop_set();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ts = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: sigtimedwait(2) with a valid set, a null info pointer (allowed) and a valid
        // timespec; the signals in the set are blocked (block_stop_signals), as it requires.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
        if sig == libc::SIGINT {
            return Ok(Some(StopReason::Interrupt));
        }
        if sig == libc::SIGTERM {
            return Ok(Some(StopReason::Terminate));
        }
        if sig == libc::SIGHUP {
            return Ok(Some(StopReason::Hangup));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(None),
            // Another signal (e.g. SIGCONT after Ctrl-Z) interrupted the wait: wait the rest.
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}
