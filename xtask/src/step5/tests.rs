//! Step 5's findings on recorded evidence (`xtask/tests/evidence/*/step5.json`, made with
//! `--save-evidence`), and the launcher against C racers that hang or fail.
//!
//! Here: what xtask adds (the pictures, the measurement, live runs, reading recorded files);
//! the Findings and the narrative alone are asserted in `lab_analysis::step5`'s tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::launch::{self, Bounds, Launch};

use lab_analysis::step5::analyze::{analyze, Findings};
use lab_analysis::step5::{End, Evidence, Observation, Step5, COURSE_FILE};
use lab_analysis::Block;

fn recorded(name: &str) -> (Evidence, Findings) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/evidence")
        .join(name);
    let ev: Evidence = crate::evidence::load(&dir, 5).unwrap();
    let f = analyze(&ev).unwrap();
    (ev, f)
}

/// A C racer built with `cc` into `dir`, or `None` (with a notice) when there is no compiler.
fn cc(dir: &Path, name: &str, source: &str) -> Option<PathBuf> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let exe = dir.join(name);
    match std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
    {
        Ok(s) if s.success() => Some(exe),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::testing::skip(name, "no C compiler (apt-get install gcc)");
            None
        }
        other => panic!("cc failed: {other:?}"),
    }
}

/// The explanation renders every recording: six answers, two pictures, the findings as JSON
/// with the contract's fields.
#[test]
fn every_recording_explains() {
    for name in ["one-cpu-taskset", "two-cpus-one-busy", "course-racer"] {
        let (ev, f) = recorded(name);
        let e = crate::model::tests::explained::<Step5>(&f, &ev);
        let answers = e
            .blocks
            .iter()
            .filter(|b| matches!(b, Block::Answer(_)))
            .count();
        assert_eq!(answers, 6, "{name}");
        assert_eq!(e.pictures.len(), 2);
        assert!(e.pictures.iter().all(|p| p.svg.is_ok()), "{name}");
        let json = serde_json::to_value(&f).unwrap();
        for key in [
            "participants",
            "mode",
            "total",
            "sum_of_winnings",
            "lost_updates",
            "final_participant_seconds",
        ] {
            assert!(json["races"][0].get(key).is_some(), "{name}: {key}");
        }
    }
}

/// A racer that creates the file and sets participants = N, but never counts itself down: the
/// others spin forever, nothing in the file moves.
const HANGING_RACER: &str = r#"
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
struct RaceCourse { int participants; long total; long winnings[10]; };
int main(int argc, char **argv) {
    struct stat st;
    int first = stat("racecourse.bin", &st) != 0;
    int fd = open("racecourse.bin", O_CREAT | O_RDWR, 0755);
    if (first) ftruncate(fd, sizeof(struct RaceCourse));
    volatile struct RaceCourse *rc = mmap(0, 96, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (first) rc->participants = atoi(argv[1]);
    while (rc->participants > 0)
        ;
    return 0;
}
"#;

/// The course's protocol (`racer.h`) with the arrival's plain load and store 20 ms apart:
/// instances that arrive together lose arrivals (the count stays above 0 and everyone spins), so
/// the lab must start each one after the one before has arrived.
const SLOW_ARRIVAL_RACER: &str = concat!(
    "#define ARRIVAL_DELAY_US 20000\n#include \"",
    env!("CARGO_MANIFEST_DIR"),
    "/tests/submissions/racer.h\"\n",
    r#"
int main(int argc, char **argv) {
    int id, first;
    volatile struct RaceCourse *rc = start_race(argc, argv, &id, &first);
    while (rc->total < 1000000) { rc->total++; rc->winnings[id - 1]++; }
    return end_race(rc, id, first);
}
"#
);

/// The course's protocol (the check's fixtures' `racer.h`), and before leaving the race each
/// instance forks a helper that writes its pid to `helper-PID` and waits for a signal forever,
/// holding the race file's mapping (the instance leaves once the file is written).
const FORKING_RACER: &str = concat!(
    "#include \"",
    env!("CARGO_MANIFEST_DIR"),
    "/tests/submissions/racer.h\"\n",
    r#"
int main(int argc, char **argv) {
    int id, first;
    volatile struct RaceCourse *rc = start_race(argc, argv, &id, &first);
    while (rc->total < 100000) { rc->total++; rc->winnings[id - 1]++; }
    int ready[2];
    pipe(ready);
    if (fork() == 0) {
        char name[64];
        snprintf(name, sizeof name, "helper-%d", (int)getpid());
        fclose(fopen(name, "w"));
        write(ready[1], "", 1);
        for (;;) pause();
    }
    char byte;
    read(ready[0], &byte, 1); /* the helper's file is written: it is not killed before */
    return end_race(rc, id, first);
}
"#
);

/// `source` built with `cc` and raced by `participants` instances in `DIR/race` (a stall of
/// `stall` kills them); the directory and the run, or `None` without a compiler.
fn race_c(
    name: &str,
    source: &str,
    participants: usize,
    stall: Duration,
) -> Option<(tempfile::TempDir, lab_analysis::step5::RaceRun)> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("xtask-step5-{name}-"))
        .tempdir()
        .unwrap();
    let exe = cc(dir.path(), name, source)?;
    let race_dir = dir.path().join("race");
    std::fs::create_dir(&race_dir).unwrap();
    let run = launch::race(&Launch {
        program: &exe,
        participants,
        args: Vec::new(),
        dir: &race_dir,
        trace: None,
        bounds: Bounds {
            appear: Duration::from_secs(10),
            stall,
            limit: Duration::from_secs(60),
        },
    })
    .unwrap();
    Some((dir, run))
}

#[test]
fn instances_are_started_one_arrival_at_a_time() {
    let Some((_dir, run)) = race_c("arrive", SLOW_ARRIVAL_RACER, 4, Duration::from_secs(5)) else {
        return;
    };
    assert_eq!(run.instances.len(), 4);
    for i in &run.instances {
        assert_eq!(i.end, End::Exited { code: 0 }, "{:?}", run.instances);
    }
    match &run.observer {
        Observation::Mapped { last, .. } => {
            assert_eq!(last.participants, 0, "an arrival was lost");
            assert!(last.total >= 1_000_000, "{last:?}");
        }
        other => panic!("{other:?}"),
    }
}

/// An instance that forked a helper and exited leaves nothing running once the race returns:
/// its process group is killed as it is reaped.
#[test]
fn what_an_instance_left_running_ends_with_the_race() {
    let Some((dir, run)) = race_c("forks", FORKING_RACER, 2, Duration::from_secs(10)) else {
        return;
    };
    for i in &run.instances {
        assert_eq!(i.end, End::Exited { code: 0 }, "{:?}", run.instances);
    }
    let helpers: Vec<u32> = std::fs::read_dir(dir.path().join("race"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("helper-")?.parse().ok()
        })
        .collect();
    // Each instance forked before it exited; the helper wrote its file before anything else.
    assert_eq!(helpers.len(), 2, "{:?}", run.instances);
    for pid in helpers {
        crate::testing::wait_gone(pid);
    }
}

#[test]
fn a_hanging_racer_is_killed_after_the_bound_and_reported() {
    let Some((dir, run)) = race_c("hang", HANGING_RACER, 2, Duration::from_millis(300)) else {
        return;
    };
    assert_eq!(run.instances.len(), 2);
    for i in &run.instances {
        assert!(matches!(i.end, End::Hung { stalled_seconds } if stalled_seconds >= 0.3));
        assert!(i.stat.is_some(), "its CPU time was read before the kill");
    }
    match &run.observer {
        Observation::Mapped { last, .. } => assert_eq!(last.participants, 2),
        other => panic!("{other:?}"),
    }
    // Nobody unlinked it: the lab did, and says so.
    assert!(run.file_left);
    assert!(!dir.path().join("race").join(COURSE_FILE).exists());
}

#[test]
fn a_racer_that_fails_at_once_is_reported_not_waited_for() {
    let dir = tempfile::Builder::new()
        .prefix("xtask-step5-fail-")
        .tempdir()
        .unwrap();
    let run = launch::race(&Launch {
        program: Path::new("/bin/false"),
        participants: 3,
        args: Vec::new(),
        dir: dir.path(),
        trace: None,
        bounds: Bounds::RACE,
    })
    .unwrap();
    // The others are not started once the first ended without setting up a race.
    assert_eq!(run.instances.len(), 1);
    assert_eq!(run.instances[0].end, End::Exited { code: 1 });
    assert!(matches!(run.observer, Observation::Missed { .. }));
    let missing = launch::race(&Launch {
        program: &dir.path().join("no-such-racer"),
        participants: 1,
        args: Vec::new(),
        dir: dir.path(),
        trace: None,
        bounds: Bounds::RACE,
    });
    let e = missing.err().unwrap().to_string();
    assert!(
        e.starts_with("cannot start") && e.contains("no-such-racer"),
        "{e}"
    );
}

/// Whether `tool` runs (`tool --version`); without it the test is skipped with a notice, or
/// fails under `CI=true`.
fn have_tool(tool: &str, install: &str) -> bool {
    let runs = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        crate::testing::skip(tool, &format!("not installed ({install})"));
    }
    runs
}

/// Both racers as `cargo xtask bench race` builds them (ours in release mode, the C one with
/// `cc -O2`): each function's race loop lies in one 64-byte line, and the function starts at a
/// 64-byte boundary, which is what keeps it there in any build. Split over two lines the loop
/// ran 1.4-1.8x slower (racy, one racer, AMD EPYC; 1.67x the C loop on an Intel Xeon).
#[test]
fn both_racers_loops_each_lie_in_one_64_byte_line() {
    if !have_tool("objdump", "apt-get install binutils") || !have_tool("cc", "apt-get install gcc")
    {
        return;
    }
    let ctx = crate::model::Ctx::new(false).unwrap();
    ctx.build_release(&["race"]).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("xtask-step5-placement-")
        .tempdir()
        .unwrap();
    let c_racer = super::bench::build_c_racer(dir.path()).unwrap();
    for exe in [ctx.bin("race"), c_racer] {
        let loops = super::bench::raced_loops(&exe);
        assert_eq!(loops.len(), 2);
        for raced in loops {
            let listing = raced.listing.as_deref().unwrap_or("");
            let p = raced.placement.unwrap_or_else(|reason| {
                panic!(
                    "{} in {}: {reason}\n{listing}",
                    raced.function,
                    exe.display()
                )
            });
            assert_eq!(
                p.lines(),
                1,
                "{} in {}: {}\n{listing}",
                raced.function,
                exe.display(),
                p.describe()
            );
            assert_eq!(p.function % 64, 0, "{}\n{listing}", p.describe());
        }
    }
}
