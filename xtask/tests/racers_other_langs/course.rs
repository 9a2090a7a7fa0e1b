// The course's racer protocol in Rust, shared by the Rust racers (`include!`d): no crates, the
// mapping made with mmap(2) declared by hand. The first instance (racecourse.bin missing)
// creates the file 0755 and sizes it, every instance maps it MAP_SHARED, takes
// id = participants, participants -= 1 (a relaxed load and store, as the course's racer),
// and spins while participants > 0. Every field is an atomic: other processes write them.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering::Relaxed};

/// `struct RaceCourse` of the course's racer.h.
#[repr(C)]
struct RaceCourse {
    participants: AtomicI32,
    total: AtomicI64,
    winnings: [AtomicI64; 10],
}

extern "C" {
    fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut u8;
}

const PROT_READ: i32 = 1;
const PROT_WRITE: i32 = 2;
const MAP_SHARED: i32 = 1;

/// The race's target: `RACE_TARGET` when it was compiled, else the course's 10^8.
fn target() -> i64 {
    option_env!("RACE_TARGET")
        .and_then(|t| t.parse().ok())
        .unwrap_or(100_000_000)
}

/// Joins (or creates) the race and waits for its start: the course, this instance's id, and
/// whether it created the file.
fn start_race() -> (&'static RaceCourse, usize, bool) {
    let Some(n) = std::env::args().nth(1).and_then(|a| a.parse::<i32>().ok()) else {
        eprintln!("usage: racer N");
        std::process::exit(2);
    };
    let first = std::fs::metadata("racecourse.bin").is_err();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o755)
        .open("racecourse.bin")
        .unwrap_or_else(|e| fail(&format!("cannot open racecourse.bin: {e}")));
    let size = std::mem::size_of::<RaceCourse>();
    if first {
        file.set_len(size as u64)
            .unwrap_or_else(|e| fail(&format!("cannot size racecourse.bin: {e}")));
    }
    // SAFETY: a fresh shared mapping of the file's first `size` bytes (the file is at least
    // that long); it is never unmapped, so 'static holds, and every field is an atomic.
    let p = unsafe {
        mmap(std::ptr::null_mut(), size, PROT_READ | PROT_WRITE, MAP_SHARED, file.as_raw_fd(), 0)
    };
    if p as isize == -1 {
        fail(&format!("mmap: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `p` is a page-aligned mapping of `size` bytes that outlives the program.
    let rc = unsafe { &*(p as *const RaceCourse) };
    if first {
        rc.participants.store(n, Relaxed);
    }
    let id = rc.participants.load(Relaxed);
    rc.participants.store(id - 1, Relaxed);
    while rc.participants.load(Relaxed) > 0 {
        std::hint::spin_loop();
    }
    (rc, id as usize, first)
}

/// Prints what this instance saw; the leader removes the file.
fn end_race(rc: &RaceCourse, id: usize, first: bool) {
    println!(
        "id {id}: total {}, winnings {}",
        rc.total.load(Relaxed),
        rc.winnings[id - 1].load(Relaxed)
    );
    if first {
        let _ = std::fs::remove_file("racecourse.bin");
    }
}

fn fail(why: &str) -> ! {
    eprintln!("error: {why}");
    std::process::exit(1);
}
