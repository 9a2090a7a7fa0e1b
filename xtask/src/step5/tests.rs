//! Step 5's findings on recorded evidence (`xtask/tests/evidence/*/step5.json`, made with
//! `--save-evidence`), and the launcher against C racers that hang or fail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::launch::{self, Bounds, Launch};
use lab_analysis::step5::analyze::{analyze, Cause, Findings, Outcome};
use lab_analysis::step5::{End, Evidence, Mode, Observation, Step5, COURSE_FILE};
use lab_analysis::Block;

fn recorded(name: &str) -> (Evidence, Findings) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/evidence")
        .join(name);
    let ev: Evidence = crate::evidence::load(&dir, 5).unwrap();
    let f = analyze(&ev).unwrap();
    (ev, f)
}

/// `taskset -c 0 cargo xtask run-step 5 --quick`: an affinity mask of one CPU. Every race of 2
/// or 3 has more racers than CPUs; they got about that one CPU, and the other processes' share
/// of it was measured small, so no shortage is blamed on them.
#[test]
fn one_cpu_mask_every_loss_by_preemption() {
    let (_, f) = recorded("one-cpu-taskset");
    assert_eq!(f.mask, vec![0]);
    assert_eq!(f.more_racers_than_cpus.len(), 4);
    for r in f.races.iter().filter(|r| r.participants > 1) {
        let cpu = r.cpu.expect("races of 0.2 s are long enough to count");
        assert_eq!(cpu.allowed, 1);
        assert!(cpu.racers <= 1.05, "{cpu:?}");
        assert!(cpu.others < 0.2, "{cpu:?}");
    }
    assert!(f.shortages.is_empty(), "{:?}", f.shortages);
    // Racy races still lost updates: preemption alone does it.
    assert_eq!((f.lost.multi, f.lost.multi_lossy), (2, 2));
    assert!(f.lost.share_range.unwrap().0 > 0.1);
    assert_eq!(f.lost.mean_share_own_cpu, None);
    assert!(f.lost.mean_share_taking_turns.is_some());
    assert_eq!(f.lost.alone_exact, Some(true));
    assert!(f.lost.atomic_lossy.is_empty());
}

/// Two CPUs, but another process (a test of another crate, at 100%) held one during the run:
/// the racers got about one CPU and the measured busy time of the others covers the gap.
#[test]
fn two_cpus_with_one_busy_blames_only_what_was_measured() {
    let (_, f) = recorded("two-cpus-one-busy");
    assert_eq!(f.mask, vec![0, 1]);
    assert_eq!(
        f.more_racers_than_cpus,
        vec![(3, Mode::Racy), (3, Mode::Atomic)]
    );
    assert_eq!(f.shortages.len(), 4);
    for s in &f.shortages {
        assert_eq!(s.cause, Cause::OtherProcesses, "{s:?}");
        assert!(s.cpu.others > 0.8 && s.cpu.racers < 1.0, "{s:?}");
    }
    assert_eq!(f.lost.mean_share_own_cpu, None);
    assert_eq!(f.lost.multi_lossy, 2);
}

/// What every recording of our racer shows: the sizing, the loops, the protocol, the observer.
#[test]
fn our_racer_recordings_agree_on_the_mechanism() {
    for name in ["one-cpu-taskset", "two-cpus-one-busy"] {
        let (ev, f) = recorded(name);
        assert_eq!(f.sizing.how, "calibrated");
        let (racy, atomic) = (
            f.sizing.racy_target.unwrap(),
            f.sizing.atomic_target.unwrap(),
        );
        assert!(
            racy > atomic && atomic >= 1_000_000,
            "{name}: {racy} {atomic}"
        );
        // Calibrated for 0.2 s (quick): the shortest race lasted at least ~0.1 s.
        assert!(f.sizing.shortest.unwrap().2 > 0.1, "{name}");
        let a = f.atomic_loop.as_ref().unwrap();
        assert_eq!(a.locked, vec!["lock xadd %rax,(%rdi)"], "{name}");
        let r = f.racy_loop.as_ref().unwrap();
        assert!(r.locked.is_empty());
        assert_eq!(r.total_accesses, vec!["mov %rax,(%rdi)", "mov (%rdi),%rax"]);
        let p = f.protocol.as_ref().unwrap();
        assert!(p.looked_first && p.exclusive && p.flock && p.linked && p.unlinked);
        assert_eq!(p.sized_by, Some(("lseek+write".to_string(), 96)));
        assert_eq!(p.mapped, Some((96, "MAP_SHARED".to_string())));
        assert_eq!(f.observer.read_after_unlink, ev.races.len());
        assert!(f
            .observer
            .deleted_line
            .as_ref()
            .unwrap()
            .ends_with("(deleted)"));
        for r in &f.races {
            assert_eq!(r.outcome, Outcome::Finished);
            assert_eq!(r.summary_agrees, Some(true));
            assert_eq!(r.total, r.target);
            assert_eq!(
                r.lost_updates.unwrap(),
                r.sum_of_winnings.unwrap() - r.total.unwrap()
            );
            assert!(r.file_removed);
        }
        // Every mode has a runtime by participants, and atomic costs more per increment.
        assert_eq!(f.runtime.len(), 2);
        assert!(f.atomic_vs_racy.iter().all(|p| p.atomic_ns > p.racy_ns));
        assert_eq!(
            f.cache_line.as_ref().unwrap().ids_with_total,
            vec![1, 2, 3, 4, 5, 6]
        );
    }
}

/// The course's racer (no lock, no O_EXCL, ftruncate), raced by `--racer`.
#[test]
fn course_racer_follows_the_course_protocol() {
    let (_, f) = recorded("course-racer");
    assert_eq!(f.sizing.how, "in the racer");
    let p = f.protocol.as_ref().unwrap();
    assert!(p.looked_first && !p.exclusive && !p.flock && !p.linked && p.unlinked);
    assert_eq!(
        p.created,
        Some(("racecourse.bin".to_string(), "O_RDWR|O_CREAT".to_string()))
    );
    assert_eq!(p.sized_by, Some(("ftruncate".to_string(), 96)));
    assert_eq!(f.their_locked, Some(Vec::new()));
    assert_eq!(f.lost.lossy_mode, Mode::Racer);
    assert_eq!(f.lost.multi_lossy, 2);
    assert_eq!(f.runtime.len(), 1);
    assert_eq!(f.runtime[0].mode, Mode::Racer);
    for r in &f.races {
        assert_eq!(r.mode, Mode::Racer);
        assert!(r.total.unwrap() >= 400_000_000);
        assert!(r.final_participant_seconds.unwrap() > 0.0);
        assert_eq!(r.summary_agrees, None);
    }
    assert!(f.atomic_vs_racy.is_empty());
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            use std::io::Write as _;
            // Straight to stderr: libtest hides what eprintln! prints in a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: no C compiler (apt-get install gcc)"
            );
            None
        }
        other => panic!("cc failed: {other:?}"),
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

#[test]
fn a_hanging_racer_is_killed_after_the_bound_and_reported() {
    let dir = tempfile::Builder::new()
        .prefix("xtask-step5-hang-")
        .tempdir()
        .unwrap();
    let Some(exe) = cc(dir.path(), "hang", HANGING_RACER) else {
        return;
    };
    let race_dir = dir.path().join("race");
    std::fs::create_dir(&race_dir).unwrap();
    let run = launch::race(&Launch {
        program: &exe,
        participants: 2,
        args: Vec::new(),
        dir: &race_dir,
        trace: None,
        bounds: Bounds {
            appear: Duration::from_secs(10),
            stall: Duration::from_millis(300),
            limit: Duration::from_secs(60),
        },
    })
    .unwrap();
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
    assert!(!race_dir.join(COURSE_FILE).exists());
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
