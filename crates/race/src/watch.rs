//! Who ended before the race finished: while its own loop runs, each of our racers watches the
//! others from a second thread.
//!
//! Liveness is the kernel's record, as everywhere in this crate ([`crate::holders`]): before its
//! loop a racer lists the processes that map the file read-write (the racers), then every
//! [`TICK`] it reads only their `/proc/PID/maps` again. One that no longer maps the file has
//! ended. If that happened before anyone saw `total` reach the target (our racers record it in
//! the count-down's word, [`crate::place::mark_reached`], and the watcher records what it sees),
//! it ended before the race finished: killed, or crashed. Its id is the one `winnings` slot that
//! stops moving from then on (the file does not record who holds which id); when the slots do not
//! say it unambiguously, the id is left unknown rather than guessed.
//!
//! A racer whose stale store pushed `total` back below the target after someone saw it reached
//! is not a departure (that is the lost update of racy mode, not a death): hence the mark. Our
//! racers set it before they leave; the course's racer cannot, so one of those (told apart by
//! `/proc/PID/exe`) is reported only when even the sum of winnings, which never goes back, is
//! short of the target: certain, but blind to a course racer killed late in a racy race.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::report::Departure;
use crate::{holders, place, Course};

/// How often the watcher looks.
pub const TICK: Duration = Duration::from_millis(20);

/// How many ticks after a departure the watcher waits for exactly one `winnings` slot to stay
/// still, naming the id.
const ATTRIBUTION_TICKS: u32 = 10;

/// A departure seen, whose id is being worked out.
struct Pending {
    departure: Departure,
    /// Slots as they were when it was seen gone.
    at: Vec<i64>,
    ticks: u32,
}

impl Pending {
    /// The departure, with its id and final winnings when exactly one slot not yet `named` has
    /// stayed still since it was seen gone (that id is then named); the id unknown otherwise.
    fn settle(mut self, now: &[i64], named: &mut Vec<i32>) -> Departure {
        if let [id] = still_slots(&self.at, now, named)[..] {
            named.push(id);
            self.departure.id = Some(id);
            self.departure.winnings = Some(now[id as usize - 1]);
        }
        self.departure
    }
}

impl Course {
    /// The winnings of ids 1..=n.
    fn winnings_now(&self, n: usize) -> Vec<i64> {
        (0..n)
            .map(|i| self.winnings(i).load(Ordering::Relaxed))
            .collect()
    }

    /// Watches the other racers (`racing`: their pids, and whether each is one of ours) until
    /// `stop`; calls `report` for each that ends before the race finished (once its id is
    /// worked out; `creator` is the pid of the race's creator, if known) and returns them all.
    pub(crate) fn watch(
        &self,
        mut racing: Vec<(u32, bool)>,
        creator: Option<u32>,
        target: i64,
        stop: &AtomicBool,
        report: &(dyn Fn(&Departure) + Sync),
    ) -> Vec<Departure> {
        let n = (self.expected.max(self.id) as usize).min(10);
        let mut pending: Vec<Pending> = Vec::new();
        let mut done = Vec::new();
        let mut named: Vec<i32> = vec![self.id];
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(TICK);
            let total = self.total().load(Ordering::Relaxed);
            if total >= target {
                place::mark_reached(self.head());
            }
            let reached = self.marks().reached;
            let now = self.winnings_now(n);
            for p in &mut pending {
                p.ticks += 1;
            }
            let (ready, waiting): (Vec<Pending>, Vec<Pending>) =
                pending.into_iter().partition(|p| {
                    p.ticks >= ATTRIBUTION_TICKS || still_slots(&p.at, &now, &named).len() <= 1
                });
            pending = waiting;
            for p in ready {
                let departure = p.settle(&now, &mut named);
                report(&departure);
                done.push(departure);
            }
            let (gone, alive): (Vec<_>, Vec<_>) = racing
                .into_iter()
                .partition(|&(pid, _)| !holders::pid_maps_writable(pid, &self.key));
            racing = alive;
            // Ours mark REACHED before they leave normally. Another racer (the course's) may have
            // seen total at the target and left although total is lower now (a stale store of
            // racy mode moved it back): it surely left early only if even the sum of winnings,
            // which never goes back and stays above total less the racers between their two
            // increments, is short of the target.
            let sum: i64 = now.iter().sum();
            let early = |ours: bool| ours || sum + (n as i64) < target;
            if !reached {
                // Slots read after it was seen gone: its own is final.
                let after = self.winnings_now(n);
                let gone = gone.into_iter().filter(|&(_, ours)| early(ours));
                pending.extend(gone.map(|(pid, _)| Pending {
                    departure: Departure {
                        pid,
                        id: None,
                        total,
                        winnings: None,
                        creator: creator == Some(pid),
                    },
                    at: after.clone(),
                    ticks: 0,
                }));
            }
        }
        // Those still being worked out when our loop ended: report them, id unknown if need be.
        let now = self.winnings_now(n);
        for p in pending {
            let departure = p.settle(&now, &mut named);
            report(&departure);
            done.push(departure);
        }
        done
    }
}

/// The ids whose slot did not move between `at` and `now`, other than those already `named`.
fn still_slots(at: &[i64], now: &[i64], named: &[i32]) -> Vec<i32> {
    (1..=at.len() as i32)
        .filter(|id| !named.contains(id))
        .filter(|&id| at[id as usize - 1] == now[id as usize - 1])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_slot_that_stopped_names_the_racer() {
        // Ids 1..=3; 3 is this racer; 2 stopped, 1 kept going.
        assert_eq!(still_slots(&[5, 9, 7], &[8, 9, 7], &[3]), vec![2]);
        // Two stopped (one merely descheduled): no single answer.
        assert_eq!(still_slots(&[5, 9, 7], &[5, 9, 8], &[3]), vec![1, 2]);
        // An id already named is not named again.
        assert_eq!(
            still_slots(&[5, 9, 7], &[8, 9, 7], &[3, 2]),
            Vec::<i32>::new()
        );
    }
}
