//! `== Answers at a glance` on recorded evidence (`xtask/tests/evidence/NAME/stepN.json`): every
//! line carries this run's figures, stays within [`GLANCE_MAX`] characters, and says "not
//! measured" where the run did not measure (a refused malloc, a damaged table, a sweep without
//! an mmap row, no atomic race, a step that did not run).

use std::path::Path;

use crate::report::{at_a_glance, Glance, StepReport, GLANCE_MAX, QUESTIONS};
use crate::{step1, step2, step3, step4, step5, Step};

fn explained<S: Step>(set: &str) -> (S::Findings, StepReport) {
    let dir = Path::new(crate::testkit::XTASK_DIR)
        .join("tests/evidence")
        .join(set);
    let evidence: S::Evidence = crate::testkit::load(&dir, S::NUMBER)
        .unwrap_or_else(|e| panic!("{set} step {}: {e:#}", S::NUMBER));
    let e = crate::report::<S>(&evidence).unwrap_or_else(|e| panic!("{set}: {e:#}"));
    (e.findings, e.report)
}

fn line<'a>(lines: &'a [Glance], n: &str) -> &'a str {
    &lines
        .iter()
        .find(|g| g.number == n)
        .unwrap_or_else(|| panic!("no {n}"))
        .text
}

#[test]
fn step1_lines_carry_the_measured_bits_and_threshold() {
    let (f, r) = explained::<step1::Step1>("glibc-2.36-default");
    let g = &r.glance;
    assert!(
        line(g, "1.1").starts_with("bit 0 (0x1, PREV_INUSE)"),
        "{g:?}"
    );
    let s = f.sweep.as_ref().unwrap();
    assert!(line(g, "1.2").contains(&format!("all {} mmapped", s.mmap_rows)));
    assert!(line(g, "1.2").contains(&format!("all {} heap", s.heap_rows)));
    let (tr, tc) = (
        f.threshold_request.unwrap(),
        f.threshold_chunk_size.unwrap(),
    );
    assert!(line(g, "1.3").contains(&format!("malloc({tr})")));
    assert!(line(g, "1.3").contains(&format!("chunk {tc} B")));
    assert!(line(g, "1.3").contains(&format!("malloc({})", tr - 1)));
    let fm = f.formula.as_ref().unwrap();
    assert!(line(g, "1.4").contains(&format!("{}..{} B", fm.overhead_min, fm.overhead_max)));

    // The threshold moved with the setting: the line follows the measurement, not a text.
    let (f2, r2) = explained::<step1::Step1>("glibc-2.36-mmap-threshold-65536");
    assert_ne!(f2.threshold_request, f.threshold_request);
    let tr2 = f2.threshold_request.unwrap();
    assert!(line(&r2.glance, "1.3").contains(&format!("malloc({tr2})")));
}

#[test]
fn a_sweep_without_an_mmap_row_is_not_measured_never_a_contradiction() {
    let (mut f, _) = explained::<step1::Step1>("glibc-2.36-default");
    let s = f.sweep.as_mut().unwrap();
    s.rows.retain(|r| r.region == "heap");
    s.mmap_rows = 0;
    s.bits_following_region.clear();
    f.is_mmapped_bit = None;
    let g = step1::Step1::glance(&f);
    assert!(
        line(&g, "1.2").starts_with("not measured in the sweep"),
        "{g:?}"
    );
    let blocks = step1::Step1::explain(&f, &explained_evidence());
    let text = serde_json::to_string(&blocks).unwrap();
    assert!(!text.contains("contradicts glibc's IS_MMAPPED"), "{text}");
    assert!(text.contains("Not measured in the sweep"), "{text}");
}

fn explained_evidence() -> step1::Evidence {
    let dir = Path::new(crate::testkit::XTASK_DIR).join("tests/evidence/glibc-2.36-default");
    crate::testkit::load(&dir, 1).unwrap()
}

#[test]
fn a_refused_malloc_and_a_damaged_table_are_not_measured() {
    let (_, r) = explained::<step1::Step1>("preloaded-malloc-shim");
    assert_eq!(r.glance.len(), 4);
    assert!(
        r.glance.iter().all(|g| g.text.starts_with("not measured")),
        "{:?}",
        r.glance
    );
    let (_, r) = explained::<step2::Step2>("damaged-table");
    assert!(line(&r.glance, "2.1").starts_with("not measured: the print failed"));
    let (_, r) = explained::<step3::Step3>("damaged-table");
    assert!(
        r.glance.iter().all(|g| g.text.starts_with("not measured")),
        "{:?}",
        r.glance
    );
}

#[test]
fn steps_2_to_4_lines_carry_their_figures() {
    let (f, r) = explained::<step2::Step2>("course-table");
    let p = &f.course.print;
    assert!(line(&r.glance, "2.1")
        .starts_with(&format!("{} values printed", p.values_printed.unwrap())));
    assert!(line(&r.glance, "2.1").contains(&format!("{} B from fstat", p.fstat_size.unwrap())));
    let (f, r) = explained::<step3::Step3>("course-table");
    assert!(line(&r.glance, "3.1").starts_with("+300 each time"));
    assert!(
        line(&r.glance, "3.2").contains("SIGSEGV") && line(&r.glance, "3.2").contains("SIGBUS")
    );
    let fix = f.appends.fix.as_ref().unwrap();
    assert!(line(&r.glance, "3.3").contains(&format!("{} -> {} B", fix.old_len, fix.new_len)));
    let (f, r) = explained::<step4::Step4>("foobar-ours-root");
    assert!(line(&r.glance, "4.1").contains(&format!("foo: {} mmaps", f.programs[0].mmaps)));
    assert!(
        line(&r.glance, "4.2").contains("baz in #4 (rw-"),
        "{:?}",
        r.glance
    );
    assert!(line(&r.glance, "4.3").contains("(RELRO)"));
}

#[test]
fn step5_lines_carry_lost_shares_and_runtimes_and_say_what_did_not_run() {
    let (f, r) = explained::<step5::Step5>("two-cpus-one-busy");
    let g = &r.glance;
    let (lo, hi) = f.lost.share_range.unwrap();
    assert!(
        line(g, "5.1").contains(&format!("{:.1}%-{:.1}%", lo * 100.0, hi * 100.0)),
        "{g:?}"
    );
    assert!(line(g, "5.2").ends_with("(busy: racers were short of CPU)"));
    let atomic = f
        .runtime
        .iter()
        .find(|t| t.mode == step5::Mode::Atomic)
        .unwrap();
    assert!(line(g, "5.5").contains(&format!("1: {:.3} s", atomic.points[0].seconds)));
    assert!(line(g, "5.6").starts_with("ns per increment of total"));
    let (_, r) = explained::<step5::Step5>("course-racer");
    assert_eq!(
        line(&r.glance, "5.5"),
        "not measured: no atomic race finished"
    );
}

#[test]
fn the_block_has_every_question_once_within_200_characters() {
    let reports = [
        explained::<step1::Step1>("glibc-2.36-default").1,
        explained::<step2::Step2>("course-table").1,
        explained::<step3::Step3>("c-naive-writer").1,
        explained::<step4::Step4>("foobar-course-c").1,
        explained::<step5::Step5>("one-cpu-taskset").1,
    ];
    let all = at_a_glance(&reports.iter().collect::<Vec<_>>());
    let numbers: Vec<&str> = all.iter().map(|g| g.number.as_str()).collect();
    let expected: Vec<&str> = QUESTIONS.iter().map(|q| q.0).collect();
    assert_eq!(numbers, expected);
    for g in &all {
        assert!(
            g.line().chars().count() <= GLANCE_MAX,
            "too long: {}",
            g.line()
        );
        assert!(!g.text.contains("not measured"), "{}", g.line());
    }
    // Steps 2 to 5 did not run: their lines say so, step 1's are this run's.
    let only_1 = at_a_glance(&[&reports[0]]);
    assert_eq!(only_1.len(), QUESTIONS.len());
    assert_eq!(only_1[0], all[0]);
    assert_eq!(only_1[4].text, "not measured: step 2 did not run");
    assert_eq!(only_1[16].text, "not measured: step 5 did not run");
}
