//! `race` beside the course's own racer (`common::COURSE_RACER`, compiled with `cc -g -O0` in
//! each test's directory): it takes no lock, is first when `stat` fails, decrements
//! `participants` without an atomic, never says it finished, and its first instance unlinks the
//! file when its own loop is done. Mixed races both ways with 2 and 3 participants, and the
//! arrival its plain decrement can lose, detected from either side.
//!
//! Participants are started one after the other, each once the count shows the previous one
//! arrived: started at once, the course's racers may lose an arrival among themselves (the last
//! two tests make that happen on purpose).

mod common;

use std::fs::File;

use common::*;
use race::Report;

/// Each test's target: the course racer's loop (`cc -O0`) takes well under a second for it.
const TARGET: i64 = 4_000_000;

/// Waits until the file says `participants == p` (with `total` still 0).
fn wait_count(dir: &Dir, p: i32) {
    let file = dir.file();
    wait_until(&format!("participants == {p}"), || {
        header(&file) == Some((p, 0))
    });
}

/// Our racer in an N-racer atomic race to `target`.
fn ours_to(dir: &Dir, n: usize, target: i64) -> std::process::Command {
    let mut c = dir.race();
    c.args([&n.to_string(), "--json", "--mode", "atomic", "--target"])
        .arg(target.to_string());
    c
}

/// Our racer as a participant of an N-racer race to [`TARGET`].
fn ours(dir: &Dir, n: usize, mode: &str) -> std::process::Command {
    let mut c = dir.race();
    c.args([
        &n.to_string(),
        "--json",
        "--mode",
        mode,
        "--target",
        &TARGET.to_string(),
    ]);
    c
}

/// Course racers and ours in the order given (`true` = ours), the first creating the race.
/// Returns the outputs in that order, after every process has exited successfully.
fn mixed(dir: &mut Dir, order: &[bool]) -> Vec<std::process::Output> {
    let n = order.len();
    let mut started = Vec::new();
    for (i, &is_ours) in order.iter().enumerate() {
        let cmd = if is_ours {
            ours(dir, n, "racy")
        } else {
            let mut c = dir.course_racer(TARGET, &[]);
            c.arg(n.to_string());
            c
        };
        started.push(dir.spawn(cmd).0);
        // The first sets participants = n and takes id n; each arrival takes one more. (Once the
        // last has arrived, the race is on: nothing to wait for.)
        if i + 1 < n {
            wait_count(dir, (n - 1 - i) as i32);
        }
    }
    started
        .into_iter()
        .map(|i| {
            let out = dir.wait(i);
            assert!(
                out.status.success(),
                "participant {i} failed: {:?}",
                out.status
            );
            out
        })
        .collect()
}

/// Checks an N-racer race led by our racer, with course racers where `order` says `false`.
fn our_leader(name: &str, order: &[bool]) {
    assert!(order[0], "our racer leads");
    let mut dir = Dir::new(name);
    let outs = mixed(&mut dir, order);
    let n = order.len();
    let leader: Report = report(&outs[0]);
    assert!(leader.first);
    assert_eq!(leader.id, n as i32, "the first takes id N");
    let s = leader.summary.clone().expect("our first instance sums up");
    assert_eq!(s.participants, n as i32);
    assert!(
        s.still_held_by.is_empty(),
        "every course racer had left: {s:?}"
    );
    assert!(
        s.ended_early.is_empty(),
        "a course racer that finished is not reported as ending early: {s:?}"
    );
    let mut ids = vec![leader.id];
    for (out, &is_ours) in outs.iter().zip(order).skip(1) {
        let (id, total, winnings) = if is_ours {
            let r = report(out);
            (r.id, r.total, r.winnings)
        } else {
            course_line(out)
        };
        if is_ours {
            // Ours reports the total its loop saw when it stopped: at least the target.
            assert!(total >= TARGET, "{id} stopped at {total}");
        } else {
            // The course's racer prints `total` read again after its loop: another racer's
            // late store of an older count (a lost update) can have lowered it since.
            assert!(total > 0, "{id} printed total {total}");
        }
        assert_eq!(
            s.winnings[id as usize - 1],
            winnings,
            "the summary holds racer {id}'s own count"
        );
        ids.push(id);
    }
    ids.sort();
    assert_eq!(ids, (1..=n as i32).collect::<Vec<_>>(), "distinct ids");
    assert!(s.total >= TARGET);
    assert_eq!(s.sum_of_winnings, s.winnings.iter().sum::<i64>());
    assert_eq!(s.lost_updates, s.sum_of_winnings - s.total);
    assert!(!dir.file().exists(), "our first instance removed the file");
    eprintln!(
        "{name}: {} lost of {} ({:.1}%), leader raced {:.3} s",
        s.lost_updates,
        s.sum_of_winnings,
        s.lost_percent(),
        leader.seconds
    );
}

#[test]
fn our_first_instance_and_a_course_racer() {
    our_leader("ours-course", &[true, false]);
}

#[test]
fn our_first_instance_a_course_racer_and_ours() {
    our_leader("ours-course-ours", &[true, false, true]);
}

/// Checks an N-racer race led by the course's racer, with ours where `order` says `true`. The
/// test watches as the lab does: it keeps a read-only descriptor on the file (not a racer), so
/// the counters stay readable after the course's first instance unlinks the file.
fn course_leader(name: &str, order: &[bool]) {
    assert!(!order[0], "the course's racer leads");
    let mut dir = Dir::new(name);
    let n = order.len();
    let mut c = dir.course_racer(TARGET, &[]);
    c.arg(n.to_string());
    let first = dir.spawn(c).0;
    wait_count(&dir, n as i32 - 1);
    let watch = File::open(dir.file()).unwrap();
    let mut started = vec![first];
    for (i, &is_ours) in order.iter().enumerate().skip(1) {
        let cmd = if is_ours {
            ours(&dir, n, "racy")
        } else {
            let mut c = dir.course_racer(TARGET, &[]);
            c.arg(n.to_string());
            c
        };
        started.push(dir.spawn(cmd).0);
        if i + 1 < n {
            wait_count(&dir, (n - 1 - i) as i32);
        }
    }
    let outs: Vec<_> = started
        .into_iter()
        .map(|i| {
            let out = dir.wait(i);
            assert!(
                out.status.success(),
                "participant {i} failed: {:?}",
                out.status
            );
            out
        })
        .collect();
    let (participants, total, winnings) = course_of(&watch);
    assert_eq!(participants, 0, "nobody wrote participants after the start");
    let (leader_id, _, leader_w) = course_line(&outs[0]);
    assert_eq!(leader_id, n as i32);
    assert_eq!(winnings[n - 1], leader_w);
    let mut ids = vec![leader_id];
    for (out, &is_ours) in outs.iter().zip(order).skip(1) {
        let (id, seen, w) = if is_ours {
            let r = report(out);
            assert!(
                !r.first && r.summary.is_none(),
                "a joiner reports no summary"
            );
            (r.id, r.total, r.winnings)
        } else {
            course_line(out)
        };
        // Ours reports the total its loop stopped at; the course's racer re-reads `total`
        // after its loop, and another racer's late store of an older count can lower it.
        assert!(
            if is_ours { seen >= TARGET } else { seen > 0 },
            "{id} saw {seen}"
        );
        assert_eq!(
            winnings[id as usize - 1],
            w,
            "racer {id}'s count is in the file"
        );
        ids.push(id);
    }
    ids.sort();
    assert_eq!(ids, (1..=n as i32).collect::<Vec<_>>(), "distinct ids");
    assert!(
        !dir.file().exists(),
        "the course's first instance unlinked it"
    );
    let sum: i64 = winnings.iter().sum();
    eprintln!(
        "{name}: {} lost of {sum} ({:.1}%)",
        sum - total,
        100.0 * (sum - total) as f64 / sum as f64
    );
}

#[test]
fn a_course_racer_first_and_ours() {
    course_leader("course-ours", &[false, true]);
}

#[test]
fn a_course_racer_first_ours_and_another_course_racer() {
    course_leader("course-ours-course", &[false, true, false]);
}

#[test]
fn atomic_in_both_loses_nothing() {
    let mut dir = Dir::new("atomic");
    let leader = dir.spawn(ours(&dir, 2, "atomic")).0;
    wait_count(&dir, 1);
    let mut c = dir.course_racer(TARGET, &["-DATOMIC"]);
    c.arg("2");
    let joiner = dir.spawn(c).0;
    let (lo, jo) = (dir.wait(leader), dir.wait(joiner));
    assert!(lo.status.success() && jo.status.success());
    let s = report(&lo).summary.expect("summary");
    let (id, _, w) = course_line(&jo);
    assert_eq!(s.winnings[id as usize - 1], w);
    assert_eq!(s.lost_updates, 0, "{s:?}");
    // The course's loop checks, then adds: racers that pass the check together overshoot.
    assert!(s.total >= TARGET && s.sum_of_winnings == s.total);
}

#[test]
fn a_lost_arrival_is_reported_by_our_first_instance() {
    let mut dir = Dir::new("lost-ours");
    let mut r = ours(&dir, 3, "racy");
    r.args(["--arrival-timeout", "1"]);
    let (leader, lrx) = dir.spawn(r);
    wait_count(&dir, 2);
    // One course racer reads 2 and holds its store back until the other has stored 1; then it
    // stores 1 as well: two racers took id 2 and the count can never reach 0.
    let mut slow = dir.course_racer(TARGET, &["-DLOSE_ARRIVAL"]);
    slow.arg("3");
    let slow = dir.spawn(slow).0;
    let slow_pid = dir.pid(slow);
    wait_until("the slow racer to map the file", || {
        std::fs::read_to_string(format!("/proc/{slow_pid}/maps"))
            .is_ok_and(|m| m.contains("racecourse.bin"))
    });
    let mut fast = dir.course_racer(TARGET, &[]);
    fast.arg("3");
    let fast = dir.spawn(fast).0;
    let out = dir.wait(leader);
    assert_eq!(out.status.code(), Some(1));
    let err = rest(&lrx);
    assert!(
        err.contains("can never start") && err.contains("An arrival was lost"),
        "{err}"
    );
    assert!(
        err.contains(&slow_pid.to_string()) && err.contains(&dir.pid(fast).to_string()),
        "names the racers still spinning: {err}"
    );
    assert!(err.contains("3 racers have it mapped"), "{err}");
    assert!(!dir.file().exists(), "our first instance removed its file");
    // The course racers spin forever: Dir kills them.
}

#[test]
fn a_lost_arrival_is_reported_by_our_joiner() {
    let mut dir = Dir::new("lost-joiner");
    let mut leader = dir.course_racer(TARGET, &[]);
    leader.arg("3");
    dir.spawn(leader);
    wait_count(&dir, 2);
    let mut slow = dir.course_racer(TARGET, &["-DLOSE_ARRIVAL"]);
    slow.arg("3");
    let slow = dir.spawn(slow).0;
    let slow_pid = dir.pid(slow);
    wait_until("the slow racer to map the file", || {
        std::fs::read_to_string(format!("/proc/{slow_pid}/maps"))
            .is_ok_and(|m| m.contains("racecourse.bin"))
    });
    let mut r = ours(&dir, 3, "racy");
    r.args(["--arrival-timeout", "1"]);
    let (joiner, jrx) = dir.spawn(r);
    let out = dir.wait(joiner);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = rest(&jrx);
    assert!(
        err.contains("can never start") && err.contains("participants still says 1"),
        "{err}"
    );
    assert!(
        dir.file().exists(),
        "a joiner leaves the course's file alone"
    );
}

#[test]
fn a_course_racers_file_being_set_up_is_not_stale() {
    // The course's first instance mid-set-up: the file exists, empty, held open, no count yet.
    // Our racer must wait for it, not call it stale.
    let mut dir = Dir::new("setup");
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.file())
        .unwrap();
    let (j, _jrx) = dir.spawn(ours(&dir, 2, "racy"));
    let pid = dir.pid(j);
    let file = dir.file();
    wait_until("our racer to open the file", || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == file))
    });
    // Size it and set the count as the course's racer does, then take id 2 by hand.
    holder.set_len(96).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&holder, &1i32.to_ne_bytes(), 0).unwrap();
    // Our racer takes id 1 and the race starts with one racer racing (id 2 never races).
    let out = dir.wait(j);
    assert!(out.status.success(), "{:?}", out.status);
    let r = report(&out);
    assert_eq!((r.id, r.winnings, r.first), (1, TARGET, false));
}

#[test]
fn a_course_racer_killed_mid_race_is_reported_by_ours() {
    let mut dir = Dir::new("course-killed");
    let target = 60_000_000;
    let (ours_i, orx) = dir.spawn(ours_to(&dir, 2, target));
    wait_count(&dir, 1);
    let mut c = dir.course_racer(target, &["-DATOMIC"]);
    c.arg("2");
    let (course_i, _) = dir.spawn(c);
    // Both in their loops (each slot moves), then frozen, and the course racer killed.
    let file = File::open(dir.file()).unwrap();
    wait_until("both racing", || {
        course_of(&file).2[..2].iter().all(|&w| w > 0)
    });
    for i in [ours_i, course_i] {
        kill(dir.pid(i), libc::SIGSTOP);
    }
    let (_, total, w) = course_of(&file);
    assert!(w[0] + w[1] < target && total < target, "frozen too late");
    let victim = dir.pid(course_i) as u32;
    kill(victim as i32, libc::SIGKILL);
    assert_eq!(dir.wait(course_i).status.code(), None);
    kill(dir.pid(ours_i), libc::SIGCONT);
    wait_line(
        &orx,
        &format!("racer id 1 (pid {victim}) ended before the race finished"),
    );
    let out = dir.wait(ours_i);
    assert!(out.status.success());
    let s = report(&out).summary.expect("our first instance sums up");
    assert_eq!(s.ended_early.len(), 1, "{s:?}");
    assert_eq!(
        (s.ended_early[0].pid, s.ended_early[0].id),
        (victim, Some(1))
    );
    assert!(!dir.file().exists());
}
