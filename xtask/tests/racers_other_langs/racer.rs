// The racy racer in Rust: a relaxed load of total, then a relaxed store of it plus one (a lost
// update when another instance stored in between; no undefined behaviour).
include!("course.rs");

fn main() {
    let (rc, id, first) = start_race();
    let mine = &rc.winnings[id - 1];
    let target = target();
    while rc.total.load(Relaxed) < target {
        let t = rc.total.load(Relaxed);
        rc.total.store(t + 1, Relaxed);
        mine.store(mine.load(Relaxed) + 1, Relaxed);
    }
    end_race(rc, id, first);
}
