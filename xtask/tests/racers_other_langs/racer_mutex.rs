// A cheat: "atomic" by a mutex of its own over participants (0 once the race has begun), its
// lock a swap (`xchg`) in a loop, total incremented plainly under it. It loses nothing, but it is
// a spin lock, not the lock incq on total the course asks for: it must FAIL naming the spin lock.
include!("course.rs");

/// A mutex whose word lives in the shared file.
struct SharedMutex<'a>(&'a AtomicI32);

/// Holds the lock until dropped.
struct Guard<'a>(&'a AtomicI32);

impl SharedMutex<'_> {
    fn lock(&self) -> Guard<'_> {
        while self.0.swap(1, std::sync::atomic::Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
        Guard(self.0)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.store(0, std::sync::atomic::Ordering::Release);
    }
}

fn main() {
    let (rc, id, first) = start_race();
    let mine = &rc.winnings[id - 1];
    let target = target();
    let mutex = SharedMutex(&rc.participants);
    loop {
        let guard = mutex.lock();
        let t = rc.total.load(Relaxed);
        if t >= target {
            break;
        }
        rc.total.store(t + 1, Relaxed);
        drop(guard);
        mine.store(mine.load(Relaxed) + 1, Relaxed);
    }
    end_race(rc, id, first);
}
