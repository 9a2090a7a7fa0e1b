//! Step 3's findings on recorded evidence (`xtask/tests/evidence/NAME/step3.json`).
//!
//! Here: the Findings and the narrative; the pictures, the measurement and live runs are
//! tested in xtask's `step3::tests`.

use std::path::Path;

use persist::disktable::NaiveMode;

use crate::disktable::fault::Region;
use crate::step3::appends::Purpose;
use crate::step3::{Evidence, Findings, Step3};
use crate::Step as _;

/// Recorded evidence of step 3 from `xtask/tests/evidence/NAME`.
pub(crate) fn fixture(name: &str) -> Evidence {
    let dir = Path::new(crate::testkit::XTASK_DIR)
        .join("tests/evidence")
        .join(name);
    crate::testkit::load(&dir, 3).unwrap()
}

fn findings(name: &str) -> Findings {
    Step3::analyze(&fixture(name)).unwrap()
}

fn text(e: &Evidence, f: &Findings) -> String {
    Step3::explain(f, e)
        .iter()
        .map(|b| format!("{b:?}\n"))
        .collect()
}

#[test]
fn appends_add_300_and_grow_only_when_capacity_runs_out() {
    let a = findings("course-table").appends;
    assert_eq!(a.runs.len(), 6);
    assert!(a.runs.iter().all(|r| r.succeeded && r.values_ok));
    assert!(a.grew_only_when_full && a.each_run_added_300 && a.only_mmap);
    let grew: Vec<bool> = a.runs.iter().map(|r| r.grew).collect();
    assert_eq!(grew, [false, false, false, false, true, false]);
    assert_eq!(a.runs[3].purpose, Purpose::Fill);
    assert_eq!(
        (a.runs[4].count_before, a.runs[4].capacity_before),
        (Some(28_483), 28_583)
    );
    assert_eq!((a.runs[4].ftruncate_calls, a.runs[4].mremap_calls), (1, 1));
    assert_eq!(a.runs[4].report_agrees, Some(true));
    let fix = a.fix.as_ref().expect("the growth");
    assert!(fix.truncate_first);
    assert_eq!(fix.flags, "MREMAP_MAYMOVE");
    assert_eq!(
        (fix.old_len, fix.file_bytes, fix.new_len),
        (114_340, 229_376, 229_376)
    );
}

#[test]
fn the_naive_writer_dies_of_sigsegv_past_the_mapping_and_sigbus_past_the_file() {
    let n = findings("course-table").naive;
    let modes: Vec<(NaiveMode, u64)> = n.runs.iter().map(|r| (r.mode, r.n)).collect();
    assert_eq!(
        modes,
        [
            (NaiveMode::File, 300),
            (NaiveMode::File, 27_800),
            (NaiveMode::Beyond, 27_800),
            (NaiveMode::Tail, 27_800)
        ]
    );
    assert_eq!(n.signals, ["SIGSEGV", "SIGBUS"]);
    assert!(n.every_fault_as_expected);
    // 300 values fit: no signal, count 1083 -> 1383.
    assert_eq!(
        (n.runs[0].signal.as_ref(), n.runs[0].count_after),
        (None, Some(1383))
    );
    // Past the mapping: SIGSEGV at its end, 348 bytes past the end of the 114,340-byte file.
    let segv = n.runs[1].fault.as_ref().unwrap();
    assert_eq!(
        (segv.signal.as_str(), segv.region),
        ("SIGSEGV", Region::PastMapping)
    );
    assert_eq!(segv.code.as_deref(), Some("SEGV_MAPERR"));
    assert_eq!(
        (segv.past_map_end, segv.past_file_end),
        (Some(0), Some(348))
    );
    assert_eq!(
        n.runs[1].fault_address,
        Some(format!("{:#x}", segv.address))
    );
    // In a mapped page wholly past the end of the file: SIGBUS, a page before the mapping's end.
    let bus = n.runs[2].fault.as_ref().unwrap();
    assert_eq!(
        (bus.signal.as_str(), bus.region),
        ("SIGBUS", Region::MappedPastEof)
    );
    assert_eq!(
        (bus.past_map_end, bus.past_file_end),
        (Some(-4096), Some(348))
    );
    assert!(n.runs.iter().all(|r| r.prediction_held == Some(true)));
    // The 87 slots of the last page past EOF took stores that count claims but the file lacks.
    for r in &n.runs[1..] {
        assert_eq!(r.slots_past_eof_in_last_page, 87);
        assert_eq!(r.values_counted_not_in_file, 87, "{:?}", r.mode);
        assert_eq!(r.file_bytes_after, 114_340);
        assert!(r
            .print_after_error
            .as_deref()
            .is_some_and(|e| e.contains("count 28670 needs 114688 bytes")));
    }
    assert_eq!(n.runs[3].signal, None, "tail stops at the mapping's end");
}

#[test]
fn on_a_page_aligned_file_nothing_lands_past_the_end_without_a_fault() {
    let e = fixture("page-aligned-table");
    let f = Step3::analyze(&e).unwrap();
    let n = &f.naive;
    assert!(n.runs.iter().all(|r| r.slots_past_eof_in_last_page == 0));
    let segv = n.runs[1].fault.as_ref().unwrap();
    assert_eq!((segv.past_map_end, segv.past_file_end), (Some(0), Some(0)));
    let bus = n.runs[2].fault.as_ref().unwrap();
    assert_eq!(bus.region, Region::MappedPastEof);
    assert_eq!(n.runs[3].values_counted_not_in_file, 0);
    assert!(text(&e, &f).contains("The file ends on a page boundary"));
}

#[test]
fn a_damaged_table_stops_the_writers_with_its_reason() {
    let e = fixture("damaged-table");
    let f = Step3::analyze(&e).unwrap();
    assert!(f.naive.runs.is_empty());
    assert_eq!(f.appends.runs.len(), 1);
    assert!(!f.appends.runs[0].succeeded);
    assert!(!f.appends.each_run_added_300 && !f.appends.grew_only_when_full);
    let t = text(&e, &f);
    assert!(
        t.contains("No run succeeded: error: table.bin is not a valid disktable"),
        "{t}"
    );
    assert!(t.contains("Not run: the table is not valid"));
}

#[test]
fn a_naive_c_writer_is_caught_with_its_signal_and_address() {
    let e = fixture("c-naive-writer");
    let f = Step3::analyze(&e).unwrap();
    let p = f.program.as_ref().expect("--program was given");
    assert!(p.mapped_table);
    assert_eq!((p.read_calls_on_table, p.write_calls_on_table), (0, 0));
    assert_eq!(p.signal.as_deref(), Some("SIGBUS"));
    let fault = p.fault.as_ref().unwrap();
    assert_eq!(fault.region, Region::MappedPastEof);
    assert!(fault.as_expected);
    assert_eq!(p.fault_address, Some(format!("{:#x}", fault.address)));
    assert_eq!((p.count_before, p.count_grew_by), (Some(28_583), Some(87)));
    assert!(!p.values_ok && !p.appended_300);
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(json["program"]["signal"], "SIGBUS");
    assert_eq!(json["program"]["count_before"], 28_583);
    assert!(json["program"]["fault_address"]
        .as_str()
        .unwrap()
        .starts_with("0x"));
}

#[test]
fn persist_writes_reach_the_file_only_through_a_shared_mapping() {
    let w = findings("course-table").writes;
    assert_eq!(w.write_calls_on_table, 0);
    assert!(w.shared_write_reached_file);
    assert_eq!(w.put.msync_calls, 1);
    assert!(w.load.ftruncate_calls > 0 && w.load.remaps >= w.load.ftruncate_calls);
    assert_eq!(w.file_lengths.len(), w.load.ftruncate_calls);
    assert!(w.grown_table_verifies);
    assert_eq!(w.private.map_flags.as_deref(), Some("MAP_PRIVATE"));
    assert!(!w.private_write_reached_file && !w.private_key_found_afterwards);
    assert!(w.private_readback.is_some());
}

#[test]
fn with_a_program_the_course_questions_are_answered_for_it_and_the_lab_says_it_is_the_reference() {
    let e = fixture("c-naive-writer");
    let f = Step3::analyze(&e).unwrap();
    let answers: Vec<(String, String)> = Step3::explain(&f, &e)
        .into_iter()
        .filter_map(|b| match b {
            crate::Block::Answer(a) => Some((a.question, a.answer)),
            _ => None,
        })
        .collect();
    let answer = |q: &str| {
        let found: Vec<&String> = answers
            .iter()
            .filter(|(x, _)| x == q)
            .map(|(_, a)| a)
            .collect();
        assert_eq!(found.len(), 1, "{q}: {answers:?}");
        found[0].clone()
    };
    // The writer filled the file and stopped short: +87, not +300, and it never grew the file.
    let added = answer("Does each run add 300 values, using only mmap?");
    assert!(added.starts_with("Your writer "), "{added}");
    assert!(
        added.contains("count 28583 -> 28670 (+87)") && added.contains("NOT 300 values"),
        "{added}"
    );
    let grows = answer("When does the file grow?");
    assert!(
        grows.contains("needed more room than the file had and made 0 ftruncate and 0 mremap"),
        "{grows}"
    );
    assert!(
        !grows.contains("ftruncate to"),
        "the lab's growth is not the writer's: {grows}"
    );
    // The lab's own runs: labelled as its reference, in the question and in the answer.
    for (q, a) in answers.iter().filter(|(_, a)| a.contains("ftruncate to")) {
        assert!(
            q.starts_with("The lab's reference disktable, not your program: "),
            "{q}"
        );
        assert!(a.starts_with("The lab's reference disktable: "), "{a}");
    }
    let glance = Step3::glance(&f);
    assert!(
        glance
            .iter()
            .all(|g| g.text.starts_with("lab's disktable: ")),
        "{glance:?}"
    );
}
