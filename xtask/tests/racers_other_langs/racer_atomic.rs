// The atomic racer in Rust: fetch_add on total (`lock incq 0x8(%reg)` at -O, an out-of-line
// `AtomicI64::fetch_add` holding `lock xadd` at opt-level 0).
include!("course.rs");

fn main() {
    let (rc, id, first) = start_race();
    let mine = &rc.winnings[id - 1];
    let target = target();
    while rc.total.load(Relaxed) < target {
        rc.total.fetch_add(1, Relaxed);
        mine.store(mine.load(Relaxed) + 1, Relaxed);
    }
    end_race(rc, id, first);
}
