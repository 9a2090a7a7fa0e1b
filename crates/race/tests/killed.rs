//! Racers killed (SIGKILL) or interrupted at the worst moments, by real signals to real `race`
//! processes: one killed while waiting gives its place back (the others notice and wait for a
//! new one, so the race starts with N live racers); the creator killed mid-race still gets a
//! summary (from the first of the others to finish) and its file removed; one interrupted
//! mid-race says its id and winnings. Every wait is for a condition (a stderr line, the file's
//! count, the counters) with a timeout.

mod common;

use common::*;

/// Waits until every racer's own `winnings` slot moves (each is in its loop, its watcher has
/// listed the others), then stops them all (SIGSTOP): the race is frozen mid-way.
fn freeze_mid_race(dir: &Dir, idx: &[usize], course: &std::fs::File, target: i64) {
    let n = idx.len();
    wait_until("everyone racing", || {
        course_of(course).2[..n].iter().all(|&w| w > 0)
    });
    for &i in idx {
        kill(dir.pid(i), libc::SIGSTOP);
    }
    let (_, total, _) = course_of(course);
    assert!(total < target, "the race ended before it could be frozen");
}

/// A race of 3: the creator (id 3) and a joiner (id 2) wait; one of them (the creator when
/// `creator`) is killed with SIGKILL. The other must say so and wait for a new one; then two more
/// arrive, taking the freed id and id 1. Returns the three live racers (the survivor first).
fn kill_one_waiting(dir: &mut Dir, creator: bool, target: i64) -> [usize; 3] {
    let (first, frx, id) = arrive(dir, 3, target);
    assert_eq!(id, 3);
    let (joiner, jrx, id) = arrive(dir, 3, target);
    assert_eq!(id, 2);
    wait_line(&frx, "2 of 3 arrived (ids 3, 2)");
    wait_line(&jrx, "2 of 3 arrived (ids 3, 2)");
    let (victim, victim_id, survivor, srx, survivor_id) = if creator {
        (first, 3, joiner, jrx, 2)
    } else {
        (joiner, 2, first, frx, 3)
    };
    kill(dir.pid(victim), libc::SIGKILL);
    // Noticed while the victim is still a zombie (not reaped: it maps nothing any more).
    wait_line(
        &srx,
        &format!(
            "race: id {victim_id} left before the start (killed); 1 of 3 arrived (id \
             {survivor_id}); waiting for 2 more participants"
        ),
    );
    assert_eq!(dir.wait(victim).status.code(), None, "killed by a signal");
    assert_eq!(header(&dir.file()), Some((2, 0)), "the count went up again");
    let (again, _, id) = arrive(dir, 3, target);
    assert_eq!(id, victim_id, "the place of the killed racer is free again");
    wait_line(
        &srx,
        "2 of 3 arrived (ids 3, 2); waiting for 1 more participant",
    );
    let (third, _, id) = arrive(dir, 3, target);
    assert_eq!(id, 1);
    [survivor, again, third]
}

#[test]
fn a_racer_killed_while_waiting_gives_its_place_back_and_the_race_waits_for_n_live_ones() {
    let mut dir = Dir::new("killed-waiting");
    let target = 2_000_000;
    let racers = kill_one_waiting(&mut dir, false, target);
    // Three live racers, three finishers: nobody counted who did not race.
    let reports = finish(&mut dir, &racers, target);
    assert_eq!(reports[0].summary.as_ref().unwrap().winnings.len(), 3);
    assert!(!dir.file().exists());
}

#[test]
fn the_creator_killed_while_waiting_is_replaced_and_one_of_the_others_sums_up() {
    let mut dir = Dir::new("creator-killed-waiting");
    let target = 2_000_000;
    let racers = kill_one_waiting(&mut dir, true, target);
    let reports = reports(&mut dir, &racers);
    assert!(reports.iter().all(|r| !r.first), "the creator is gone");
    let s = the_summary(&reports);
    assert_eq!(s.participants, 3);
    assert_eq!((s.total, s.sum_of_winnings), (target, target));
    assert!(
        s.ended_early.is_empty(),
        "the dead creator never raced: {s:?}"
    );
    assert!(!dir.file().exists(), "the one that summed up removed it");
}

#[test]
fn the_creator_killed_mid_race_is_summed_up_by_another_and_the_file_removed() {
    let mut dir = Dir::new("creator-killed-racing");
    let target = 60_000_000;
    let (first, _frx, creator_id) = arrive(&mut dir, 3, target);
    let (b, brx, _) = arrive(&mut dir, 3, target);
    let (c, crx, _) = arrive(&mut dir, 3, target);
    let course = std::fs::File::open(dir.file()).unwrap();
    freeze_mid_race(&dir, &[first, b, c], &course, target);
    let creator_pid = dir.pid(first) as u32;
    kill(creator_pid as i32, libc::SIGKILL);
    assert_eq!(dir.wait(first).status.code(), None);
    for i in [b, c] {
        kill(dir.pid(i), libc::SIGCONT);
    }
    let said = format!(
        "racer id {creator_id} (pid {creator_pid}, the race's creator) ended before the race \
         finished"
    );
    wait_line(&brx, &said);
    wait_line(&crx, &said);
    let reports = reports(&mut dir, &[b, c]);
    let s = the_summary(&reports);
    assert_eq!(s.total, target);
    assert_eq!(s.ended_early.len(), 1, "{s:?}");
    let d = &s.ended_early[0];
    assert_eq!(
        (d.pid, d.id, d.creator),
        (creator_pid, Some(creator_id), true)
    );
    assert_eq!(d.winnings, Some(s.winnings[creator_id as usize - 1]));
    assert!(d.total < target);
    assert!(!dir.file().exists(), "no file left for the next race");
    // The next race starts afresh in the same directory.
    let (next, _, id) = arrive(&mut dir, 1, 1000);
    assert_eq!(id, 1);
    finish(&mut dir, &[next], 1000);
}

/// `(id, winnings, total)` from `race: interrupted mid-race as id K; its winnings so far W
/// (total T)...`.
fn interrupted_line(text: &str) -> (i32, i64, i64) {
    let parse = || -> Option<(i32, i64, i64)> {
        let rest = text.split("race: interrupted mid-race as id ").nth(1)?;
        let (id, rest) = rest.split_once("; its winnings so far ")?;
        let (w, rest) = rest.split_once(" (total ")?;
        let (t, _) = rest.split_once(')')?;
        Some((id.parse().ok()?, w.parse().ok()?, t.parse().ok()?))
    };
    parse().unwrap_or_else(|| panic!("no mid-race interrupt line in {text:?}"))
}

/// A race of two, frozen mid-way; `sig` goes to the creator (`creator`) or the joiner, which
/// alone runs again to handle it and ends with `128 + sig`. The others stay stopped, so the
/// counters stand still.
struct Interrupted {
    dir: Dir,
    /// The racer not interrupted (still stopped), and its stderr.
    other: usize,
    orx: std::sync::mpsc::Receiver<String>,
    course: std::fs::File,
    /// The interrupted racer's id, and everything it said after its id.
    id: i32,
    said: String,
}

fn interrupt_mid_race(name: &str, creator: bool, sig: i32) -> Interrupted {
    let mut dir = Dir::new(name);
    let target = 60_000_000;
    let (first, frx, first_id) = arrive(&mut dir, 2, target);
    let (joiner, jrx, joiner_id) = arrive(&mut dir, 2, target);
    let course = std::fs::File::open(dir.file()).unwrap();
    freeze_mid_race(&dir, &[first, joiner], &course, target);
    let (victim, vrx, id, other, orx) = if creator {
        (first, frx, first_id, joiner, jrx)
    } else {
        (joiner, jrx, joiner_id, first, frx)
    };
    kill(dir.pid(victim), sig);
    kill(dir.pid(victim), libc::SIGCONT);
    assert_eq!(dir.wait(victim).status.code(), Some(128 + sig));
    Interrupted {
        dir,
        other,
        orx,
        course,
        id,
        said: rest(&vrx),
    }
}

#[test]
fn a_racer_interrupted_mid_race_says_its_id_and_winnings() {
    let mut t = interrupt_mid_race("interrupted-racing", false, libc::SIGINT);
    let (id, winnings, total) = interrupted_line(&t.said);
    let (_, now_total, now_winnings) = course_of(&t.course);
    assert_eq!(id, t.id);
    assert_eq!(
        winnings,
        now_winnings[id as usize - 1],
        "its winnings as it left them"
    );
    assert!(winnings > 0);
    assert_eq!(total, now_total);
    kill(t.dir.pid(t.other), libc::SIGCONT);
    wait_line(&t.orx, &format!("racer id {id} (pid "));
    let out = t.dir.wait(t.other);
    assert!(out.status.success());
    let s = report(&out).summary.expect("the first sums up");
    assert_eq!(s.ended_early.len(), 1, "{s:?}");
    assert_eq!(s.ended_early[0].winnings, Some(winnings));
    assert!(!t.dir.file().exists());
}

#[test]
fn the_creator_interrupted_mid_race_removes_the_file_and_another_sums_up() {
    let mut t = interrupt_mid_race("creator-interrupted-racing", true, libc::SIGTERM);
    let (id, winnings, _) = interrupted_line(&t.said);
    assert_eq!(id, t.id);
    assert_eq!(winnings, course_of(&t.course).2[id as usize - 1]);
    assert!(
        t.said
            .contains("removed the race file this instance created"),
        "{}",
        t.said
    );
    assert!(
        !t.dir.file().exists(),
        "Ctrl-C of the first instance removes the file"
    );
    kill(t.dir.pid(t.other), libc::SIGCONT);
    wait_line(&t.orx, "the race's creator is gone");
    let out = t.dir.wait(t.other);
    assert!(out.status.success());
    let s = report(&out).summary.expect("the one left sums up");
    assert_eq!(s.total, 60_000_000);
    assert_eq!(s.ended_early.len(), 1, "{s:?}");
    assert!(s.ended_early[0].creator);
    assert_eq!(s.ended_early[0].winnings, Some(winnings));
}
