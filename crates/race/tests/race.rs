//! The `race` binary, live: real processes, a real MAP_SHARED file, and our C twin racer built
//! with `cc -O2` sharing the same race (the course's own racer is in `course_racer.rs`). Each
//! test runs in its own temporary directory; no test sleeps for synchronisation: they wait for a
//! condition (a line printed, a file state, a descriptor in /proc) with a timeout.

mod common;

use std::os::unix::fs::FileExt;
use std::process::Command;

use common::*;
use race::Report;

/// Runs `n` instances (made by `make(i)`) at once with `--json` and checks the race's invariants;
/// returns the reports, the first instance's first.
fn race_all(
    dir: &mut Dir,
    make: impl Fn(&Dir, usize) -> Command,
    n: usize,
    target: i64,
) -> Vec<Report> {
    let idx: Vec<usize> = (0..n).map(|i| dir.spawn(make(dir, i)).0).collect();
    let mut reports: Vec<Report> = idx
        .into_iter()
        .map(|i| {
            let out = dir.wait(i);
            assert!(out.status.success(), "racer {i} failed: {:?}", out.status);
            report(&out)
        })
        .collect();
    reports.sort_by_key(|r| !r.first);
    assert_eq!(reports.iter().filter(|r| r.first).count(), 1);
    let mut ids: Vec<i32> = reports.iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(
        ids,
        (1..=n as i32).collect::<Vec<_>>(),
        "each takes a distinct id"
    );
    let s = reports[0].summary.clone().expect("the first sums up");
    assert_eq!(s.participants, n as i32);
    assert_eq!(s.total, target, "the race ends with total at the target");
    assert!(s.still_held_by.is_empty(), "everyone left: {s:?}");
    assert!(s.ended_early.is_empty(), "nobody ended early: {s:?}");
    for r in &reports {
        assert!(r.total >= target);
        assert_eq!(
            s.winnings[r.id as usize - 1],
            r.winnings,
            "the summary holds each one's winnings"
        );
    }
    let sum: i64 = s.winnings.iter().sum();
    assert_eq!(s.sum_of_winnings, sum);
    assert_eq!(s.lost_updates, sum - target);
    assert!(!dir.file().exists(), "the first instance removes the file");
    reports
}

fn args<'a>(c: &'a mut Command, n: usize, mode: &str, target: i64) -> &'a mut Command {
    c.arg(n.to_string())
        .args(["--mode", mode, "--target", &target.to_string()])
}

#[test]
fn one_racer_counts_exactly_and_removes_its_file() {
    let mut dir = Dir::new("one");
    let r = race_all(
        &mut dir,
        |d, _| {
            let mut c = d.race();
            args(&mut c, 1, "racy", 100_000).arg("--json");
            c
        },
        1,
        100_000,
    );
    assert_eq!((r[0].id, r[0].winnings), (1, 100_000));
    assert_eq!(r[0].summary.as_ref().unwrap().lost_updates, 0);
}

#[test]
fn human_output_names_id_total_winnings_and_the_sum() {
    let dir = Dir::new("human");
    let out = dir.race().args(["1", "--target", "5000"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("id 1: total 5000, winnings 5000"), "{text}");
    assert!(
        text.contains("sum of winnings 5000 vs total 5000: 0 increments"),
        "{text}"
    );
}

#[test]
fn atomic_mode_loses_no_update() {
    let mut dir = Dir::new("atomic");
    let target = 2_000_000;
    let r = race_all(
        &mut dir,
        |d, _| {
            let mut c = d.race();
            args(&mut c, 3, "atomic", target).arg("--json");
            c
        },
        3,
        target,
    );
    let s = r[0].summary.as_ref().unwrap();
    assert_eq!((s.lost_updates, s.sum_of_winnings), (0, target));
}

#[test]
fn racy_mode_loses_updates_when_two_race() {
    // 100 million increments per racer-run: each racer loops for a good fraction of a second,
    // long enough for the two to overlap (on two cores, or by preemption on one).
    let mut dir = Dir::new("racy");
    let target = 100_000_000;
    let r = race_all(
        &mut dir,
        |d, _| {
            let mut c = d.race();
            args(&mut c, 2, "racy", target).arg("--json");
            c
        },
        2,
        target,
    );
    let lost = r[0].summary.as_ref().unwrap().lost_updates;
    assert!(lost > 0, "two racy racers lost no update: {:?}", r[0]);
}

#[test]
fn c_leader_and_rust_joiner_share_one_race() {
    let mut dir = Dir::new("c-leader");
    let target = 3_000_000;
    // The C racer first, alone until it waits; then the Rust joiner.
    let mut c = dir.racer();
    args(&mut c, 2, "racy", target);
    let (leader, lrx) = dir.spawn(c);
    wait_line(&lrx, "waiting for 1 more");
    let mut r = dir.race();
    args(&mut r, 2, "racy", target).arg("--json");
    let (joiner, _jrx) = dir.spawn(r);
    let (lo, jo) = (dir.wait(leader), dir.wait(joiner));
    assert!(lo.status.success() && jo.status.success());
    let (l, j) = (report(&lo), report(&jo));
    assert_eq!((l.id, j.id), (2, 1));
    let s = l.summary.expect("the C leader sums up");
    assert_eq!(
        s.winnings[0], j.winnings,
        "C read the Rust racer's winnings[0]"
    );
    assert_eq!(s.winnings[1], l.winnings);
    assert_eq!(s.total, target);
    assert!(!dir.file().exists());
}

#[test]
fn rust_leader_and_c_joiner_share_one_race() {
    let mut dir = Dir::new("rust-leader");
    let target = 3_000_000;
    let mut r = dir.race();
    args(&mut r, 2, "atomic", target).arg("--json");
    let (leader, lrx) = dir.spawn(r);
    wait_line(&lrx, "waiting for 1 more");
    let mut c = dir.racer();
    args(&mut c, 2, "atomic", target);
    let (joiner, _jrx) = dir.spawn(c);
    let (lo, jo) = (dir.wait(leader), dir.wait(joiner));
    assert!(lo.status.success() && jo.status.success());
    let (l, j) = (report(&lo), report(&jo));
    assert_eq!((l.id, j.id), (2, 1));
    let s = l.summary.expect("the Rust leader sums up");
    assert_eq!(
        s.winnings[0], j.winnings,
        "Rust read the C racer's winnings[0]"
    );
    assert_eq!(
        s.sum_of_winnings, target,
        "atomic in both languages: nothing lost"
    );
    assert_eq!(s.lost_updates, 0);
    assert!(!dir.file().exists());
}

#[test]
fn bad_participant_counts_are_usage_errors_and_create_nothing() {
    let dir = Dir::new("usage");
    let usage = |args: &[&str]| {
        let out = dir.race().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "race {args:?}");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.starts_with("error: "), "race {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "race {args:?}: {err}");
        assert!(out.stdout.is_empty());
        err
    };
    for bad in ["0", "11", "-1", "-3", "abc", ""] {
        let err = usage(&[bad]);
        assert!(
            err.contains("participants must be a number from 1 to 10"),
            "race {bad:?}: {err}"
        );
        assert!(!err.contains("'--"), "no advice to write `-- {bad}`: {err}");
    }
    assert!(usage(&["2", "--mode", "fast"]).contains("possible values: racy, atomic"));
    // A negative target is a value that breaks the rule, said as such; not clap's advice to
    // write `-- -3` (which would make -3 a participant count).
    for bad in ["-3", "0", "abc", "4611686018427387904"] {
        let err = usage(&["2", "--target", bad]);
        assert!(
            err.contains(
                "the target must be a whole number of increments from 1 to 4611686018427387903"
            ),
            "--target {bad}: {err}"
        );
        assert!(!err.contains("-- -3"), "{err}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn help_has_examples() {
    let out = Command::new(RACE).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Examples:")
            && text.contains("race 2 --mode atomic")
            && text.contains("gives its place back")
            && text.contains("ended before the race finished"),
        "{text}"
    );
}

/// Runs `race 2` against a prepared file and returns (exit code, stderr), checking that the
/// error is one line.
fn against(dir: &Dir) -> (Option<i32>, String) {
    let out = dir.race().args(["2", "--target", "1000"]).output().unwrap();
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_file_of_the_wrong_size_is_refused_and_kept() {
    let dir = Dir::new("size");
    std::fs::write(dir.file(), vec![7u8; 200]).unwrap();
    let (code, err) = against(&dir);
    assert_eq!(code, Some(1));
    assert!(err.contains("is 200 bytes, not the 96"), "{err}");
    assert_eq!(
        std::fs::read(dir.file()).unwrap(),
        vec![7u8; 200],
        "not ours: left untouched"
    );
}

#[test]
fn a_short_file_nobody_holds_is_refused() {
    let dir = Dir::new("short");
    let f = std::fs::File::create(dir.file()).unwrap();
    f.set_len(10).unwrap();
    drop(f);
    let (code, err) = against(&dir);
    assert_eq!(code, Some(1));
    assert!(err.contains("is 10 bytes, not the 96"), "{err}");
    assert!(err.contains("no process has it open"), "{err}");
}

#[test]
fn an_empty_file_left_by_a_crashed_course_racer_is_refused_at_once() {
    // The course's racer creates the file, then sizes it: killed in between, it leaves 0 bytes.
    // Nobody has the file open, so it is no race being set up, however young it is.
    let dir = Dir::new("empty");
    std::fs::File::create(dir.file()).unwrap();
    let (code, err) = against(&dir);
    assert_eq!(code, Some(1));
    assert!(err.contains("is 0 bytes, not the 96"), "{err}");
}

#[test]
fn a_dangling_file_symlink_says_what_is_wrong() {
    let dir = Dir::new("dangling");
    let link = dir.path().join("rc.bin");
    std::os::unix::fs::symlink(dir.path().join("nowhere/rc.bin"), &link).unwrap();
    let out = dir
        .race()
        .args(["2", "--file"])
        .arg(&link)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a symbolic link to") && err.contains("which does not exist"),
        "{err}"
    );
    assert!(!err.contains("within"), "no talk of waiting: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("rc.bin")],
        "nothing created"
    );
}

/// Runs `race 1` with stdout or stderr on /dev/full.
fn to_dev_full(dir: &Dir, json: bool, stdout_full: bool) -> std::process::Output {
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let mut c = dir.race();
    c.args(["1", "--target", "1000"]);
    if json {
        c.arg("--json");
    }
    if stdout_full {
        c.stdout(full()).stderr(std::process::Stdio::piped());
    } else {
        c.stdout(std::process::Stdio::piped()).stderr(full());
    }
    c.output().unwrap()
}

#[test]
fn a_full_stdout_is_a_one_line_error_and_status_1() {
    let dir = Dir::new("full-stdout");
    for json in [false, true] {
        let out = to_dev_full(&dir, json, true);
        assert_eq!(out.status.code(), Some(1), "json {json}");
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        assert_eq!(
            last, "error: cannot write the result to stdout: No space left on device (os error 28)",
            "json {json}: {err}"
        );
        assert!(!dir.file().exists(), "the race file is removed anyway");
    }
}

#[test]
fn a_full_stderr_is_no_panic() {
    let dir = Dir::new("full-stderr");
    for json in [false, true] {
        let out = to_dev_full(&dir, json, false);
        // Progress notes are best effort; the result still reaches stdout.
        assert_eq!(out.status.code(), Some(0), "json {json}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("1000"), "{text}");
        assert!(!dir.file().exists());
    }
}

#[test]
fn a_stale_waiting_race_is_refused_without_hanging() {
    let dir = Dir::new("stale");
    write_course(&dir.file(), 2, 0, &[]);
    let (code, err) = against(&dir);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("stale race file") && err.contains("remove"),
        "{err}"
    );
    assert_eq!(
        header(&dir.file()),
        Some((2, 0)),
        "the count-down was not touched"
    );
}

#[test]
fn a_finished_race_left_behind_is_refused() {
    let dir = Dir::new("finished");
    write_course(&dir.file(), 2, 1000, &[600, 700]);
    let (code, err) = against(&dir);
    assert_eq!(code, Some(1));
    assert!(err.contains("ended (total 1000)"), "{err}");
}

#[test]
fn a_foreign_96_byte_file_is_refused() {
    let dir = Dir::new("foreign");
    write_course(&dir.file(), 77, 0, &[]);
    let (code, err) = against(&dir);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("participants = 77") && err.contains("not a race file"),
        "{err}"
    );
}

#[test]
fn joining_a_race_under_way_is_refused() {
    let mut dir = Dir::new("underway");
    // Two racers with a target they will not reach while the test runs.
    let huge = 1i64 << 60;
    let mut a = dir.race();
    args(&mut a, 2, "atomic", huge);
    let (leader, lrx) = dir.spawn(a);
    wait_line(&lrx, "waiting for 1 more");
    let mut b = dir.race();
    args(&mut b, 2, "atomic", huge);
    let (joiner, _jrx) = dir.spawn(b);
    let file = dir.file();
    wait_until("the race to start", || {
        header(&file).is_some_and(|(_, t)| t > 0)
    });
    let (code, err) = against(&dir);
    assert_eq!(code, Some(1));
    assert!(err.contains("already under way"), "{err}");
    // Ctrl-C to both: the first removes its file.
    kill(dir.pid(joiner), libc::SIGINT);
    kill(dir.pid(leader), libc::SIGINT);
    assert_eq!(dir.wait(leader).status.code(), Some(130));
    assert_eq!(dir.wait(joiner).status.code(), Some(130));
    assert!(
        !dir.file().exists(),
        "the interrupted first instance removed the file"
    );
}

#[test]
fn waiting_is_bounded_by_the_join_timeout() {
    let mut dir = Dir::new("timeout");
    let mut a = dir.race();
    a.args(["2", "--join-timeout", "1"]);
    let (leader, lrx) = dir.spawn(a);
    let out = dir.wait(leader);
    assert_eq!(out.status.code(), Some(1));
    let err = rest(&lrx);
    assert!(
        err.contains("still waits for 1 more participant after 1 s"),
        "{err}"
    );
    assert!(
        !dir.file().exists(),
        "the first instance removes the file it created"
    );
}

#[test]
fn truncating_the_file_under_a_waiting_racer_is_a_clear_error() {
    let mut dir = Dir::new("sigbus");
    let mut a = dir.race();
    a.args(["2"]);
    let (leader, lrx) = dir.spawn(a);
    wait_line(&lrx, "waiting for 1 more");
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.file())
        .unwrap()
        .set_len(0)
        .unwrap();
    let out = dir.wait(leader);
    assert_eq!(out.status.code(), Some(1), "an exit, not a signal death");
    assert!(rest(&lrx).contains("truncated while mapped (SIGBUS)"));
    assert!(!dir.file().exists());
}

#[test]
fn a_joiner_that_opens_the_file_before_it_is_sized_waits_for_it() {
    let mut dir = Dir::new("early");
    let file = dir.file();
    // Play a first instance that is slow to size its file: create it empty and hold the lock.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&file)
        .unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: flock(2) on a descriptor this test owns and keeps open.
    let rc = unsafe { libc::flock(fd, libc::LOCK_SH) };
    assert_eq!(rc, 0);
    let mut a = dir.race();
    a.args(["2", "--target", "100000", "--json"]);
    let (early, _erx) = dir.spawn(a);
    let pid = dir.pid(early);
    wait_until("the joiner to open the file", || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == file))
    });
    // Now size it and open the count-down for two, as the first instance would.
    let mut b = vec![0u8; 96];
    b[0..4].copy_from_slice(&2i32.to_ne_bytes());
    f.write_all_at(&b, 0).unwrap();
    wait_until("the early joiner to take id 2", || {
        header(&file) == Some((1, 0))
    });
    let mut c = dir.race();
    c.args(["2", "--target", "100000", "--json"]);
    let (late, _lrx) = dir.spawn(c);
    let (eo, lo) = (dir.wait(early), dir.wait(late));
    assert!(eo.status.success() && lo.status.success());
    let (e, l) = (report(&eo), report(&lo));
    assert_eq!((e.id, l.id), (2, 1));
    let sum = e.winnings + l.winnings;
    assert!(sum >= 100_000);
    // Nobody writes participants after the start (a course racer would read a count going back
    // up as "not everyone is here"): it stays 0.
    assert_eq!(header(&file), Some((0, 100_000)));
}

#[test]
fn an_os_error_is_one_line_naming_the_file_and_its_cause_once() {
    let dir = Dir::new("os-error");
    let missing = dir.path().join("no-such-dir/rc.bin");
    let out = dir
        .race()
        .args(["2", "--file"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "error: cannot create race file {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn a_file_that_cannot_be_sized_is_named_by_its_own_name_and_nothing_is_left() {
    // A file size limit of 10 bytes (RLIMIT_FSIZE, SIGXFSZ ignored): writing the course's last
    // byte fails with EFBIG while the file still has its temporary name.
    let dir = Dir::new("fsize");
    let mut c = dir.race();
    c.args(["2", "--target", "1000"]);
    // SAFETY: between fork and exec the closure only calls setrlimit(2) and signal(2), both
    // async-signal-safe, on values it owns.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            let lim = libc::rlimit {
                rlim_cur: 10,
                rlim_max: 10,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0
                || libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        err.trim_end(),
        "error: cannot size, lock or map race file racecourse.bin: File too large (os error 27)",
        "the race file's own name, not the temporary one, and the cause once"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left behind"
    );
}

#[test]
fn a_directory_as_the_race_file_is_one_line_naming_it_and_the_cause_once() {
    let dir = Dir::new("is-dir");
    std::fs::create_dir(dir.path().join("d")).unwrap();
    let out = dir.race().args(["2", "--file", "d"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: cannot open race file d: Is a directory (os error 21)"
    );
    let out = dir.race().output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "no participant count is a usage error"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
