//! Step 5's findings on recorded evidence (`xtask/tests/evidence/*/step5.json`, made with
//! `--save-evidence`), and the launcher against C racers that hang or fail.
//!
//! Here: the Findings and the narrative; the pictures, the measurement and live runs are
//! tested in xtask's `step5::tests`.

use std::path::Path;

use crate::step5::analyze::{analyze, Cause, Findings, Outcome};
use crate::step5::{Evidence, Mode};

fn recorded(name: &str) -> (Evidence, Findings) {
    let dir = Path::new(crate::testkit::XTASK_DIR)
        .join("tests/evidence")
        .join(name);
    let ev: Evidence = crate::testkit::load(&dir, 5).unwrap();
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
