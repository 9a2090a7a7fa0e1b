//! Racers that leave: before the start (Ctrl-C, SIGTERM), they give their place back and the race
//! still waits for N; killed mid-race, the others report them. Real processes and real signals;
//! every wait is for a condition (a stderr line, the file's count, `total`) with a timeout.

mod common;

use common::*;

#[test]
fn a_racer_interrupted_while_waiting_gives_its_place_back() {
    let mut dir = Dir::new("leave");
    let target = 2_000_000;
    let (first, frx, id) = arrive(&mut dir, 3, target);
    assert_eq!(id, 3);
    let (quitter, qrx, id) = arrive(&mut dir, 3, target);
    assert_eq!(id, 2);
    // The joiner's waiting line reads right, and the first's shows who is there.
    wait_line(
        &qrx,
        "race: 2 of 3 arrived (ids 3, 2); waiting for 1 more participant",
    );
    wait_line(
        &frx,
        "2 of 3 arrived (ids 3, 2); waiting for 1 more participant",
    );
    kill(dir.pid(quitter), libc::SIGINT);
    assert_eq!(dir.wait(quitter).status.code(), Some(130));
    assert!(
        rest(&qrx).contains("interrupted while waiting; gave back place id 2"),
        "the leaver says what it did"
    );
    // The count went up again: the race waits for two more, and the first says who left.
    wait_line(
        &frx,
        "race: id 2 left; 1 of 3 arrived (id 3); waiting for 2 more participants",
    );
    assert_eq!(header(&dir.file()), Some((2, 0)));
    let (second, _, id) = arrive(&mut dir, 3, target);
    assert_eq!(id, 2, "the replacement takes the place given back");
    let (third, _, id) = arrive(&mut dir, 3, target);
    assert_eq!(id, 1);
    let reports = finish(&mut dir, &[first, second, third], target);
    assert!(reports[0].first);
    assert!(!dir.file().exists(), "the first removed the file");
}

#[test]
fn an_earlier_arrival_leaving_leaves_a_place_the_next_one_takes() {
    let mut dir = Dir::new("vacancy");
    let target = 2_000_000;
    let (first, frx, _) = arrive(&mut dir, 4, target);
    let (quitter, qrx, _) = arrive(&mut dir, 4, target);
    wait_line(
        &qrx,
        "2 of 4 arrived (ids 4, 3); waiting for 2 more participants",
    );
    let (kept, krx, id) = arrive(&mut dir, 4, target);
    assert_eq!(id, 2);
    // A joiner's line updates as others arrive, not only the first's.
    wait_line(
        &qrx,
        "3 of 4 arrived (ids 4, 3, 2); waiting for 1 more participant",
    );
    wait_line(
        &frx,
        "3 of 4 arrived (ids 4, 3, 2); waiting for 1 more participant",
    );
    wait_line(
        &krx,
        "3 of 4 arrived (ids 4, 3, 2); waiting for 1 more participant",
    );
    // id 3 leaves (SIGTERM) while id 2, who came after it, stays: its place is vacant.
    kill(dir.pid(quitter), libc::SIGTERM);
    assert_eq!(dir.wait(quitter).status.code(), Some(143));
    wait_line(
        &krx,
        "race: id 3 left; 2 of 4 arrived (ids 4, 2); waiting for 2 more participants",
    );
    wait_line(&frx, "id 3 left; 2 of 4 arrived (ids 4, 2)");
    let (filler, _, id) = arrive(&mut dir, 4, target);
    assert_eq!(id, 3, "the next one takes the vacant place, not a held one");
    wait_line(
        &krx,
        "race: 3 of 4 arrived (ids 4, 3, 2); waiting for 1 more participant",
    );
    let (last, _, id) = arrive(&mut dir, 4, target);
    assert_eq!(id, 1);
    finish(&mut dir, &[first, kept, filler, last], target);
    assert!(!dir.file().exists());
}

#[test]
fn the_first_interrupted_while_others_wait_hands_the_race_over() {
    let mut dir = Dir::new("handover");
    let target = 2_000_000;
    let (first, frx, _) = arrive(&mut dir, 3, target);
    let (stayer, srx, id) = arrive(&mut dir, 3, target);
    assert_eq!(id, 2);
    // Both have shown the two arrivals (so the joiner's next line reports a change).
    wait_line(&frx, "2 of 3 arrived (ids 3, 2)");
    wait_line(&srx, "2 of 3 arrived (ids 3, 2)");
    kill(dir.pid(first), libc::SIGINT);
    assert_eq!(dir.wait(first).status.code(), Some(130));
    let said = rest(&frx);
    assert!(
        said.contains("gave back place id 3")
            && said.contains("the race goes on without its creator"),
        "{said}"
    );
    // The file stays, the count is up again, and the joiner says who left.
    wait_line(
        &srx,
        "race: id 3 left; 1 of 3 arrived (id 2); waiting for 2 more participants",
    );
    assert_eq!(header(&dir.file()), Some((2, 0)));
    let (c, _, id) = arrive(&mut dir, 3, target);
    assert_eq!(id, 3, "the creator's place, given back");
    let (d, _, id) = arrive(&mut dir, 3, target);
    assert_eq!(id, 1);
    let reports = reports(&mut dir, &[stayer, c, d]);
    assert!(reports.iter().all(|r| !r.first), "the creator is gone");
    let s = the_summary(&reports);
    assert_eq!(s.participants, 3);
    assert_eq!((s.total, s.sum_of_winnings), (target, target));
    assert!(
        !dir.file().exists(),
        "the one that summed up removed the file"
    );
}

#[test]
fn the_last_to_leave_a_race_whose_creator_left_removes_the_file() {
    let mut dir = Dir::new("last-leaves");
    let (first, frx, _) = arrive(&mut dir, 3, 1000);
    let (joiner, jrx, _) = arrive(&mut dir, 3, 1000);
    wait_line(&frx, "2 of 3 arrived (ids 3, 2)");
    wait_line(&jrx, "2 of 3 arrived (ids 3, 2)");
    kill(dir.pid(first), libc::SIGTERM);
    assert_eq!(dir.wait(first).status.code(), Some(143));
    wait_line(&jrx, "id 3 left");
    assert!(dir.file().exists());
    kill(dir.pid(joiner), libc::SIGINT);
    assert_eq!(dir.wait(joiner).status.code(), Some(130));
    assert!(rest(&jrx).contains("nobody else was there and the creator had left: removed"));
    assert!(!dir.file().exists(), "no file left behind");
}

#[test]
fn the_first_interrupted_alone_removes_the_file() {
    let mut dir = Dir::new("first-alone");
    let (first, frx, _) = arrive(&mut dir, 2, 1000);
    wait_line(&frx, "waiting for 1 more participant");
    kill(dir.pid(first), libc::SIGINT);
    assert_eq!(dir.wait(first).status.code(), Some(130));
    assert!(rest(&frx).contains("removed the race file"));
    assert!(!dir.file().exists());
}

#[test]
fn a_racer_killed_mid_race_is_reported_by_the_others_and_not_as_a_finisher() {
    let mut dir = Dir::new("killed");
    // Long enough that the race is still on when all three are stopped below.
    let target = 60_000_000;
    let (first, frx, _) = arrive(&mut dir, 3, target);
    let (victim, _vrx, victim_id) = arrive(&mut dir, 3, target);
    let (other, orx, _) = arrive(&mut dir, 3, target);
    // Each racer's own slot moves only once it is in its loop (its watcher has listed the
    // others by then): wait for all three.
    let course = std::fs::File::open(dir.file()).unwrap();
    wait_until("all three racing", || {
        course_of(&course).2[..3].iter().all(|&w| w > 0)
    });
    // Freeze the race, kill one, let the others go on: the victim surely dies mid-race.
    for i in [first, victim, other] {
        kill(dir.pid(i), libc::SIGSTOP);
    }
    let (_, total, _) = course_of(&course);
    assert!(total < target, "the race ended before it could be frozen");
    let victim_pid = dir.pid(victim) as u32;
    kill(victim_pid as i32, libc::SIGKILL);
    assert_eq!(dir.wait(victim).status.code(), None, "killed by a signal");
    for i in [first, other] {
        kill(dir.pid(i), libc::SIGCONT);
    }
    let said = format!("racer id {victim_id} (pid {victim_pid}) ended before the race finished");
    wait_line(&orx, &said);
    wait_line(&frx, &said);
    let out = dir.wait(first);
    assert!(out.status.success());
    let r = report(&out);
    let s = r.summary.expect("the first sums up");
    assert_eq!(s.ended_early.len(), 1, "{s:?}");
    let d = &s.ended_early[0];
    assert_eq!((d.pid, d.id), (victim_pid, Some(victim_id)));
    assert_eq!(d.winnings, Some(s.winnings[victim_id as usize - 1]));
    assert!(d.total < target);
    assert!(s.still_held_by.is_empty());
    assert!(dir.wait(other).status.success());
    assert!(!dir.file().exists());
}
