//! The count-down's places: taking an id, giving it back when leaving before the start, and who
//! has arrived, over the first 8 bytes of the race course read as one word.
//!
//! Those 8 bytes are `int participants` and the 4 bytes of padding C puts before `long total`.
//! C code never reads or writes the padding (the course's racer only does
//! `participants -= 1`), so our racers keep their bookkeeping there ([`Marks`]): the ids given
//! back out of order, and whether the target was reached. Reading the two halves as ONE 64-bit
//! atomic makes "decrement the count and take an id" and "give the id back and raise the count"
//! single compare-and-swaps, so two of our racers can never take the same id.
//!
//! The count-down hands out ids from the top: the first takes N, the next N-1, … Every id not
//! held is *free*, and the free ids are always `{1 ..= run} ∪ vacant`, where
//! `run = participants - |vacant|` and every vacant id lies above `run`. A racer that leaves
//! while waiting puts its id back: if it is `run + 1` the run just grows (the course's racer,
//! which takes `id = participants`, will take it next), otherwise it is marked vacant, and our
//! racers take vacant ids first. Either way `participants` goes up by one, so the race waits for
//! N again. Only a course racer arriving while an id is vacant takes an id that is held (it
//! cannot know about the marks); our racers drain the vacancies first to make that rare.
//!
//! Pure functions on atomics, with no system call: the signal handler that gives a place back
//! on Ctrl-C calls [`give_back`], which is async-signal-safe (lock-free atomics only).

use std::sync::atomic::{AtomicU64, Ordering};

/// The ids 1..=10 as bits 0..=9 of the marks: ids given back out of order, free again.
const VACANT: u32 = (1 << 10) - 1;
/// Set by the first of our racers that sees `total` reach the target: from then on a racer that
/// leaves ended normally.
const REACHED: u32 = 1 << 31;
/// Set by our first instance when it leaves before the start while others wait: the race goes
/// on without its creator, and one of the others summarises and removes the file.
const CREATOR_LEFT: u32 = 1 << 30;
/// Set by the one racer that took the creator's duties over.
const TAKEN_OVER: u32 = 1 << 29;
/// Set by our first instance when it sets the count: the creator is one of ours, and holds the
/// creator's record lock (`crate::CREATOR_BYTE`) until it has removed the file. A course racer
/// that creates the file leaves the padding 0.
const OURS: u32 = 1 << 28;
/// Set by whoever takes the summary (the creator, or the one that took its duties over): nobody
/// else sums up.
const SUMMED: u32 = 1 << 27;
/// Ids given back for a racer that was found dead while waiting (bits 10..=19: id 1 is bit 10),
/// so that every waiter says "killed"; cleared when the id is taken again.
const KILLED: u32 = VACANT << 10;

/// `(participants, marks)` from the word.
fn unpack(word: u64) -> (i32, u32) {
    let b = word.to_ne_bytes();
    (
        i32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
    )
}

fn pack(participants: i32, marks: u32) -> u64 {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&participants.to_ne_bytes());
    b[4..].copy_from_slice(&marks.to_ne_bytes());
    u64::from_ne_bytes(b)
}

/// The vacant ids merged into the run where they touch it: id `run + 1` is not a vacancy but
/// the next id of the count-down.
fn normalise(participants: i32, marks: u32) -> u32 {
    let mut marks = marks;
    loop {
        let run = participants - (marks & VACANT).count_ones() as i32;
        let bit = id_bit(run + 1);
        if bit == 0 || marks & bit == 0 {
            return marks;
        }
        marks &= !bit;
    }
}

/// The mark of `id` (0 outside 1..=10).
fn id_bit(id: i32) -> u32 {
    if (1..=10).contains(&id) {
        1 << (id - 1)
    } else {
        0
    }
}

/// The state of the count-down, as one reading of the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    /// `participants`: how many the race still waits for.
    pub waiting_for: i32,
    /// Ids given back out of order (bit `id - 1`).
    vacant: u32,
    /// Some racer saw `total` reach the target.
    pub reached: bool,
    /// The creator left before the start; someone must summarise and remove the file.
    pub creator_left: bool,
    /// The creator is one of our racers (it holds the creator's record lock while it lives).
    pub creator_ours: bool,
    /// Someone has taken the summary, or taken the creator's duties over.
    pub claimed: bool,
    /// Ids given back because their racer was found dead while waiting (bit `id - 1`).
    killed: u32,
}

impl Marks {
    /// Reads the word.
    pub fn read(word: &AtomicU64) -> Marks {
        Marks::of(word.load(Ordering::Acquire))
    }

    /// The marks of one value of the word.
    pub fn of(word: u64) -> Marks {
        let (p, m) = unpack(word);
        Marks {
            waiting_for: p,
            vacant: m & VACANT,
            reached: m & REACHED != 0,
            creator_left: m & CREATOR_LEFT != 0,
            creator_ours: m & OURS != 0,
            claimed: m & (TAKEN_OVER | SUMMED) != 0,
            killed: (m & KILLED) >> 10,
        }
    }

    /// Whether place `id` was given back because its racer was found dead while waiting.
    pub fn was_killed(&self, id: i32) -> bool {
        self.killed & id_bit(id) != 0
    }

    /// The ids that have arrived in a race of `n`: those above the run of free ids, less the
    /// vacant ones, highest first.
    pub fn arrived(&self, n: i32) -> Vec<i32> {
        let run = self.waiting_for - self.vacant.count_ones() as i32;
        ((run + 1).max(1)..=n.min(10))
            .rev()
            .filter(|&id| self.vacant & id_bit(id) == 0)
            .collect()
    }
}

/// Takes a place: `participants -= 1` and the id that goes with it (a vacant id if there is
/// one, else `participants`), in one compare-and-swap. `None` when the race is full or
/// `started()` says it began.
pub fn take(word: &AtomicU64, started: impl Fn() -> bool) -> Option<i32> {
    let mut w = word.load(Ordering::Acquire);
    loop {
        let (p, marks) = unpack(w);
        if p <= 0 || started() {
            return None;
        }
        let vacant = marks & VACANT;
        let (id, marks) = if vacant != 0 {
            let bit = vacant.trailing_zeros();
            (bit as i32 + 1, marks & !(1 << bit))
        } else {
            (p, marks)
        };
        let marks = marks & !(id_bit(id) << 10);
        let new = pack(p - 1, normalise(p - 1, marks));
        match word.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some(id),
            Err(now) => w = now,
        }
    }
}

/// Gives place `id` back before the start: `participants += 1`, and `id` marked vacant unless
/// it is the next id of the count-down. `false` (and nothing changed) when the count is already
/// 0: everyone arrived, the race is on, and leaving now is ending mid-race.
pub fn give_back(word: &AtomicU64, id: i32) -> bool {
    let bit = id_bit(id);
    let mut w = word.load(Ordering::Acquire);
    loop {
        let (p, marks) = unpack(w);
        if p <= 0 {
            return false;
        }
        let new = pack(p + 1, normalise(p + 1, marks | bit));
        match word.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => w = now,
        }
    }
}

/// Gives back, in one compare-and-swap from the value `seen`, the places `ids` whose racers were
/// found dead while waiting (each as [`give_back`] would, and marked killed). `false`, with
/// nothing changed, if the word is no longer `seen` (someone arrived or left meanwhile: look
/// again) or the count is 0 (the race started).
pub fn give_back_dead(word: &AtomicU64, seen: u64, ids: &[i32]) -> bool {
    let (mut p, mut marks) = unpack(seen);
    if p <= 0 {
        return false;
    }
    for &id in ids {
        p += 1;
        marks = normalise(p, marks | id_bit(id) | (id_bit(id) << 10));
    }
    word.compare_exchange(seen, pack(p, marks), Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Sets `participants` (the first instance, before anyone can join), clearing the marks; `ours`
/// when the creator holds the creator's record lock (see [`OURS`]).
pub fn start_count(word: &AtomicU64, n: i32, ours: bool) {
    word.store(pack(n, if ours { OURS } else { 0 }), Ordering::Release);
}

/// Records that the creator left before the start (see [`CREATOR_LEFT`]).
pub fn mark_creator_left(word: &AtomicU64) {
    word.fetch_or(pack(0, CREATOR_LEFT), Ordering::AcqRel);
}

/// Takes the creator's duties over (summarise, remove the file) once the caller found the
/// creator gone: `true` for exactly one caller, and never once someone summed up.
pub fn take_over(word: &AtomicU64) -> bool {
    let mut w = word.load(Ordering::Acquire);
    loop {
        let (p, marks) = unpack(w);
        if marks & (TAKEN_OVER | SUMMED) != 0 {
            return false;
        }
        let new = pack(p, marks | TAKEN_OVER);
        match word.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => w = now,
        }
    }
}

/// Records that the summary was taken (see [`SUMMED`]).
pub fn mark_summed(word: &AtomicU64) {
    word.fetch_or(pack(0, SUMMED), Ordering::AcqRel);
}

/// Records that `total` reached the target.
pub fn mark_reached(word: &AtomicU64) {
    word.fetch_or(pack(0, REACHED), Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(n: i32) -> AtomicU64 {
        let w = AtomicU64::new(0);
        start_count(&w, n, true);
        w
    }

    #[test]
    fn ids_come_down_from_n() {
        let w = word(3);
        assert_eq!(take(&w, || false), Some(3));
        assert_eq!(take(&w, || false), Some(2));
        assert_eq!(Marks::read(&w).arrived(3), vec![3, 2]);
        assert_eq!(take(&w, || false), Some(1));
        assert_eq!(Marks::read(&w).waiting_for, 0);
        assert_eq!(take(&w, || false), None, "full");
    }

    #[test]
    fn the_last_arrival_leaving_gives_its_id_to_the_next() {
        let w = word(3);
        take(&w, || false);
        assert_eq!(take(&w, || false), Some(2));
        assert!(give_back(&w, 2));
        let m = Marks::read(&w);
        assert_eq!((m.waiting_for, m.arrived(3)), (2, vec![3]));
        // The next takes 2 again, as the course's racer (id = participants) would.
        assert_eq!(take(&w, || false), Some(2));
        assert_eq!(take(&w, || false), Some(1));
    }

    #[test]
    fn an_earlier_arrival_leaving_leaves_a_vacancy_that_is_filled_first() {
        let w = word(4);
        assert_eq!(take(&w, || false), Some(4));
        assert_eq!(take(&w, || false), Some(3));
        assert_eq!(take(&w, || false), Some(2));
        assert!(give_back(&w, 3));
        let m = Marks::read(&w);
        assert_eq!((m.waiting_for, m.arrived(4)), (2, vec![4, 2]));
        assert_eq!(take(&w, || false), Some(3), "the vacancy first");
        assert_eq!(take(&w, || false), Some(1));
        assert_eq!(Marks::read(&w).arrived(4), vec![4, 3, 2, 1]);
    }

    #[test]
    fn vacancies_touching_the_run_merge_into_it() {
        let w = word(4);
        for _ in 0..3 {
            take(&w, || false);
        }
        // Held 4, 3, 2; 3 leaves (vacant), then 2 leaves: the run is 1..=3 again.
        assert!(give_back(&w, 3));
        assert!(give_back(&w, 2));
        let m = Marks::read(&w);
        assert_eq!((m.waiting_for, m.vacant), (3, 0));
        assert_eq!(take(&w, || false), Some(3));
    }

    #[test]
    fn nothing_is_given_back_once_everyone_arrived() {
        let w = word(1);
        assert_eq!(take(&w, || false), Some(1));
        assert!(!give_back(&w, 1));
        assert_eq!(Marks::read(&w).waiting_for, 0);
    }

    #[test]
    fn reached_is_kept_beside_the_count() {
        let w = word(2);
        take(&w, || false);
        mark_reached(&w);
        let m = Marks::read(&w);
        assert!(m.reached);
        assert_eq!(m.waiting_for, 1);
        assert_eq!(take(&w, || true), None, "started");
    }

    #[test]
    fn one_racer_takes_over_and_never_after_the_summary() {
        let w = word(3);
        assert!(Marks::read(&w).creator_ours);
        mark_creator_left(&w);
        assert!(Marks::read(&w).creator_left);
        assert!(take_over(&w));
        assert!(!take_over(&w), "only one");
        assert!(Marks::read(&w).claimed);
        assert_eq!(Marks::read(&w).waiting_for, 3, "the count is untouched");
        let w = word(3);
        mark_summed(&w);
        assert!(!take_over(&w), "the creator summed up already");
    }

    #[test]
    fn a_dead_racers_place_is_given_back_once_and_marked_killed() {
        let w = word(3);
        take(&w, || false);
        assert_eq!(take(&w, || false), Some(2));
        let seen = w.load(Ordering::Acquire);
        assert!(give_back_dead(&w, seen, &[2]));
        let m = Marks::read(&w);
        assert_eq!((m.waiting_for, m.arrived(3)), (2, vec![3]));
        assert!(m.was_killed(2) && !m.was_killed(3));
        assert!(
            !give_back_dead(&w, seen, &[2]),
            "a second look finds the word changed"
        );
        assert_eq!(Marks::read(&w).waiting_for, 2);
        // The next to arrive takes the place, and it is no longer marked.
        assert_eq!(take(&w, || false), Some(2));
        assert!(!Marks::read(&w).was_killed(2));
        // An earlier arrival found dead leaves a vacancy, filled first.
        let w = word(4);
        for _ in 0..3 {
            take(&w, || false);
        }
        assert!(give_back_dead(&w, w.load(Ordering::Acquire), &[3]));
        assert_eq!(Marks::read(&w).arrived(4), vec![4, 2]);
        assert_eq!(take(&w, || false), Some(3));
        assert_eq!(Marks::read(&w).waiting_for, 1);
    }

    #[test]
    fn threads_taking_and_giving_back_never_share_an_id() {
        for _ in 0..50 {
            let w = word(6);
            let ids: Vec<i32> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..6)
                    .map(|i| {
                        let w = &w;
                        s.spawn(move || {
                            let mut id = take(w, || false).unwrap();
                            if i % 2 == 0 && give_back(w, id) {
                                id = loop {
                                    if let Some(id) = take(w, || false) {
                                        break id;
                                    }
                                };
                            }
                            id
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut sorted = ids.clone();
            sorted.sort();
            assert_eq!(sorted, vec![1, 2, 3, 4, 5, 6], "{ids:?}");
            assert_eq!(Marks::read(&w).waiting_for, 0);
        }
    }
}
