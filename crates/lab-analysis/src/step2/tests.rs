//! Step 2's findings on recorded evidence (`xtask/tests/evidence/NAME/step2.json`).
//!
//! Here: the Findings and the narrative; the pictures, the measurement and live runs are
//! tested in xtask's `step2::tests`.

use std::path::Path;

use crate::step2::cgroup::{self, Role as CgRole};
use crate::step2::lookups::Eviction;
use crate::step2::{Evidence, Findings, Step2};
use crate::Block;
use crate::Step as _;

/// Recorded evidence of step 2 from `xtask/tests/evidence/NAME`.
pub(crate) fn fixture(name: &str) -> Evidence {
    let dir = Path::new(crate::testkit::XTASK_DIR)
        .join("tests/evidence")
        .join(name);
    crate::testkit::load(&dir, 2).unwrap()
}

fn findings(name: &str) -> Findings {
    Step2::analyze(&fixture(name)).unwrap()
}

fn text(blocks: &[Block]) -> String {
    blocks.iter().map(|b| format!("{b:?}\n")).collect()
}

#[test]
fn the_course_table_is_printed_through_one_mapping_reading_two_pages() {
    let f = findings("course-table");
    let c = &f.course;
    assert_eq!(c.table, "course-shaped");
    assert_eq!(
        (c.count, c.capacity, c.file_bytes),
        (Some(1083), 28_583, 114_340)
    );
    assert_eq!(c.count_needs_bytes, Some(4340));
    assert_eq!(
        c.spare_values,
        Some(27_500),
        "the file is longer than count needs"
    );
    assert_eq!(c.invalid, None);
    assert!(c.values_are_indices);
    let p = &c.print;
    assert!(p.succeeded && p.fstat_before_mmap);
    assert_eq!(p.fstat_size, Some(114_340));
    assert_eq!((p.mmap_calls, p.map_len), (1, Some(114_340)));
    assert!(p.mapped_whole_file);
    assert_eq!((p.read_calls_on_table, p.write_calls_on_table), (0, 0));
    assert_eq!(p.values_printed, Some(1083));
    assert!(p.printed_count_values);
    assert_eq!(p.mincore_calls, 2);
    assert_eq!((p.pages, p.pages_needed), (Some(28), Some(2)));
    assert_eq!(p.resident_pages, [0, 1]);
    assert_eq!(p.read_only_needed_pages, Some(true));
    assert!(f.program.is_none());
}

#[test]
fn persist_lookups_map_once_and_read_nothing() {
    let l = findings("course-table").lookups;
    assert_eq!(l.mmap_calls, 1);
    assert_eq!(l.read_calls_on_table_fd, 0);
    assert!(l.read_calls_elsewhere > 0, "the loader reads its libraries");
    assert!(l.wrong_values.is_empty());
    assert_eq!(l.eviction, Eviction::Fadvise);
    assert_eq!(l.pages_resident_before, 0);
    assert!(l.pages_added > 0 && l.pages_added <= 3 * l.lookups + 1);
    assert!(l.contradictions.is_empty(), "{:?}", l.contradictions);
}

#[test]
fn in_a_small_cgroup_reading_the_file_into_memory_is_oom_killed() {
    let cgroup::Findings::Ran(r) = findings("course-table").cgroup else {
        panic!("this machine's recording ran the cgroup demonstration");
    };
    assert_eq!(r.version, cgroup::Version::V1);
    assert!(r.table_larger_than_limit && r.limit_bytes < r.table_bytes);
    let by = |role| r.children.iter().find(|c| c.role == role).unwrap();
    let lookups = by(CgRole::Lookups);
    assert!(lookups.completed && lookups.peak_within_limit == Some(true));
    let read_all = by(CgRole::ReadAll);
    assert!(read_all.oom_killed, "{read_all:?}");
    assert_eq!(read_all.signal.as_deref(), Some("SIGKILL"));
    assert_eq!(read_all.oom_kills, Some(1));
    // Every entry read through the mapping (every key looked up) under the limit, which was
    // reached again and again: clean pages dropped, the process lived.
    let every = by(CgRole::EveryKey);
    assert!(every.completed, "{every:?}");
    assert_eq!(every.entries_checked, Some(100_000));
    assert_eq!(every.peak_within_limit, Some(true));
    assert!(every.limit_hits.is_some_and(|n| n > 0));
    // `persist verify` reads the file in order (slot array, then records by offset), so it
    // checks every entry under the limit too (in hash order it thrashed to its deadline).
    let scan = by(CgRole::Scan);
    assert!(scan.completed && !scan.timed_out, "{scan:?}");
    assert_eq!(scan.entries_checked, Some(100_000));
    assert_eq!(scan.peak_within_limit, Some(true));
    assert!(r.demonstrated);
    let answer = crate::step2::cgroup::explain(
        &findings("course-table").cgroup,
        &fixture("course-table").cgroup,
    );
    let t = text(&answer);
    assert!(
        t.contains("scan completed in") && t.contains("checking all 100000 entries"),
        "{t}"
    );
}

#[test]
fn a_child_that_ran_out_of_time_is_blamed_on_dropped_pages_only_when_it_faulted() {
    let cgroup::Findings::Ran(mut r) = findings("course-table").cgroup else {
        panic!("this machine's recording ran the cgroup demonstration");
    };
    let scan = r
        .children
        .iter_mut()
        .find(|c| c.role == CgRole::Scan)
        .unwrap();
    (scan.completed, scan.timed_out) = (false, true);
    let mut answer_with = |faults: Option<u64>| {
        r.children
            .iter_mut()
            .find(|c| c.role == CgRole::Scan)
            .unwrap()
            .major_faults = faults;
        cgroup::answer(&r)
    };
    let t = answer_with(Some(1200));
    assert!(
        t.contains("(1200 major faults: pages it needed were dropped"),
        "{t}"
    );
    let t = answer_with(Some(0));
    assert!(
        t.contains("with no major fault") && !t.contains("were dropped under"),
        "{t}"
    );
    let t = answer_with(None);
    assert!(
        t.contains("were not read: why is not measured") && !t.contains("were dropped under"),
        "{t}"
    );
    assert!(!t.contains('?'), "{t}");
}

#[test]
fn without_a_writable_cgroup_the_demonstration_says_why_it_was_skipped() {
    let e = fixture("cgroup-not-writable");
    let f = Step2::analyze(&e).unwrap();
    let cgroup::Findings::Skipped { reason } = &f.cgroup else {
        panic!("skipped");
    };
    assert!(reason.contains("cannot enable the memory controller"));
    let t = text(&cgroup::explain(&f.cgroup, &e.cgroup));
    assert!(t.contains("Skipped: cgroup v2 at"), "{t}");
}

#[test]
fn a_damaged_table_is_refused_and_the_reason_reported() {
    let f = findings("damaged-table");
    let c = &f.course;
    assert_eq!(c.table.rsplit('/').next(), Some("damaged.bin"));
    assert_eq!((c.count, c.file_bytes), (Some(5000), 4096));
    assert!(c
        .invalid
        .as_deref()
        .is_some_and(|r| r.contains("count 5000 needs 20008 bytes")));
    assert!(!c.print.succeeded);
    assert!(c
        .print
        .error
        .as_deref()
        .is_some_and(|e| e.contains("is not a valid disktable")));
    assert_eq!(c.print.values_printed, None);
}

/// The course's print with the residency mincore measured replaced: (right after mmap, after
/// printing).
fn print_with_residency(before: u64, after: u64) -> (crate::step2::course::Findings, Evidence) {
    let mut e = fixture("course-table");
    let report = e.course.report.as_mut().unwrap();
    (report.resident_pages_before, report.resident_pages_after) = (before, after);
    (Step2::analyze(&e).unwrap().course, e)
}

fn course_answers(f: &crate::step2::course::Findings, e: &Evidence) -> String {
    text(&crate::step2::course::explain(
        f,
        &e.course,
        crate::step2::course::Who::Course,
    ))
}

#[test]
fn evicted_is_said_only_when_mincore_found_no_page_right_after_mmap() {
    // The recording: DONTNEED worked (0 resident), printing read the 2 pages count lies in.
    let (f, e) = print_with_residency(0, 2);
    assert_eq!(f.print.evicted, Some(true));
    assert_eq!(f.print.read_only_needed_pages, Some(true));
    let t = course_answers(&f, &e);
    assert!(
        t.contains("had evicted the file") && t.contains("only those were read"),
        "{t}"
    );
    // Evicted, and more came in than printing touches: said, with no cause it did not measure.
    let (f, e) = print_with_residency(0, 5);
    assert_eq!(f.print.read_only_needed_pages, Some(false));
    let t = course_answers(&f, &e);
    assert!(
        t.contains("3 more than those came in (this run does not measure"),
        "{t}"
    );
    assert!(!t.contains("read-ahead, or another process"), "{t}");
    // tmpfs: the pages stayed (8 of 28 before and after); nothing was evicted, nothing came in.
    let (f, e) = print_with_residency(8, 8);
    assert_eq!(f.print.evicted, Some(false));
    assert_eq!(f.print.pages_came_in, Some(0));
    assert_eq!(f.print.read_only_needed_pages, None);
    let t = course_answers(&f, &e);
    assert!(
        t.contains("found 8 of 28 pages resident right after mmap"),
        "{t}"
    );
    assert!(
        t.contains("the eviction did not drop them") && t.contains("(none came in)"),
        "{t}"
    );
    assert!(
        !t.contains("evicted first") && !t.contains("had evicted"),
        "{t}"
    );
    let pictures = Step2::pictures(&Step2::analyze(&e).unwrap(), &e);
    let caption = pictures.table.unwrap().caption;
    assert!(
        caption.contains("does not show what printing read in"),
        "{caption}"
    );
}

/// The recording's cgroup findings with the child that read every key given these counters and
/// every eviction leaving `left` pages resident (`None`: not recorded).
fn cgroup_answer(hits: Option<u64>, major: Option<u64>, left: Option<u64>) -> String {
    let mut e = fixture("course-table");
    let cgroup::Evidence::Ran(ran) = &mut e.cgroup else {
        panic!("this machine's recording ran the cgroup demonstration");
    };
    for c in &mut ran.children {
        c.eviction = left.map(|left| persist::Residency {
            pages_total: 4096,
            pages_resident_before: 4096,
            eviction: "fadvise".into(),
            pages_resident_after: left,
            note: String::new(),
        });
        if c.role == CgRole::EveryKey {
            (c.counters.limit_hits, c.counters.major_faults) = (hits, major);
        }
    }
    let f = Step2::analyze(&e).unwrap();
    text(&cgroup::explain(&f.cgroup, &e.cgroup))
}

#[test]
fn pages_dropped_at_the_limit_are_claimed_only_with_limit_hits_and_major_faults() {
    let t = cgroup_answer(Some(4674), Some(4835), Some(0));
    assert!(
        t.contains(
            "read pages in on demand (4835 major faults) and dropped clean ones at the \
                    limit (reached 4674 times"
        ),
        "{t}"
    );
    assert!(
        t.contains("the file evicted from the page cache before each"),
        "{t}"
    );
    let t = cgroup_answer(Some(12), Some(0), Some(0));
    assert!(
        t.contains("reached the limit 12 times") && t.contains("no major fault"),
        "{t}"
    );
    assert!(!t.contains("dropped clean ones"), "{t}");
    // tmpfs: nothing evicted, the limit never reached, no major fault.
    let t = cgroup_answer(Some(0), Some(0), Some(4096));
    assert!(
        t.contains("never reached the limit (0 major faults)"),
        "{t}"
    );
    assert!(
        t.contains("the eviction left 4096 of the table's 4096 pages in memory"),
        "{t}"
    );
    assert!(
        t.contains("left up to 4096 of its 4096 pages resident"),
        "{t}"
    );
    assert!(
        !t.contains("dropped clean ones") && !t.contains("file evicted"),
        "{t}"
    );
    let t = cgroup_answer(None, None, None);
    assert!(
        t.contains("were not read, so this run does not show pages dropped"),
        "{t}"
    );
    assert!(
        t.contains("(how many of its pages stayed was not recorded)"),
        "{t}"
    );
}

#[test]
fn with_a_program_the_course_question_is_answered_for_it_and_the_lab_says_it_is_the_reference() {
    let e = fixture("c-reader-read");
    let f = Step2::analyze(&e).unwrap();
    let answers: Vec<(String, String)> = Step2::explain(&f, &e)
        .into_iter()
        .filter_map(|b| match b {
            Block::Answer(a) => Some((a.question, a.answer)),
            _ => None,
        })
        .collect();
    let course_q = "How do you print every value without a hardcoded size or element count?";
    let theirs: Vec<_> = answers.iter().filter(|(q, _)| q == course_q).collect();
    assert_eq!(theirs.len(), 1, "{answers:?}");
    assert!(
        theirs[0].1.starts_with("Your reader ")
            && theirs[0].1.contains("it did NOT map table.bin: 1084 read"),
        "{theirs:?}"
    );
    assert!(!theirs[0].1.contains("fstat"), "{theirs:?}");
    for (q, a) in answers.iter().filter(|(_, a)| a.contains("fstat")) {
        assert!(
            q.starts_with("The lab's reference disktable, not your program: "),
            "{q}"
        );
        assert!(a.starts_with("The lab's reference disktable: "), "{a}");
    }
    let glance = Step2::glance(&f);
    assert!(
        glance[0].text.starts_with("lab's disktable: "),
        "{glance:?}"
    );
}

#[test]
fn lookups_after_an_eviction_that_did_not_work_claim_no_read_around() {
    let mut e = fixture("course-table");
    // tmpfs: DONTNEED left every page resident.
    e.lookups.evict.pages_resident_after = e.lookups.evict.pages_resident_before;
    let f = Step2::analyze(&e).unwrap();
    assert_eq!(f.lookups.eviction, Eviction::None);
    let t = text(&crate::step2::lookups::explain(&f.lookups, &e.lookups));
    assert!(
        t.contains("this does not show how much the lookups read in"),
        "{t}"
    );
    assert!(!t.contains("MADV_RANDOM turned read-around off"), "{t}");
}
