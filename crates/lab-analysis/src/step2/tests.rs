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
