//! Step 2's findings on recorded evidence (`xtask/tests/evidence/NAME/step2.json`).
//!
//! Here: what xtask adds (the pictures, the measurement, live runs, reading recorded files);
//! the Findings and the narrative alone are asserted in `lab_analysis::step2`'s tests.

use std::path::Path;

use lab_analysis::step2::{Evidence, Step2};
use lab_analysis::Block;
use lab_analysis::Step as _;

/// Recorded evidence of step 2 from `xtask/tests/evidence/NAME`.
pub(crate) fn fixture(name: &str) -> Evidence {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/evidence")
        .join(name);
    crate::evidence::load(&dir, 2).unwrap()
}

fn text(blocks: &[Block]) -> String {
    blocks.iter().map(|b| format!("{b:?}\n")).collect()
}

#[test]
fn a_c_reader_that_uses_read_is_judged_from_its_trace_and_output() {
    let e = fixture("c-reader-read");
    let f = Step2::analyze(&e).unwrap();
    let p = f.program.as_ref().expect("--program was given");
    assert!(p.opened_table && !p.mapped_table);
    assert_eq!(p.read_calls_on_table, 1 + 1083);
    assert_eq!(p.write_calls_on_table, 0);
    assert!(p.printed_all_values && !p.printed_past_count);
    assert_eq!(p.printed_numbers, 1083);
    assert_eq!((p.count_before, p.count_after), (Some(1083), Some(1083)));
    assert_eq!(
        (p.signal.as_deref(), p.fault_address.as_deref()),
        (None, None)
    );
    // `--json` carries DESIGN.md's fields.
    let json = serde_json::to_value(&f).unwrap();
    let program = &json["program"];
    for key in [
        "mapped_table",
        "read_calls_on_table",
        "write_calls_on_table",
        "printed_all_values",
        "count_before",
        "count_after",
        "values_ok",
        "signal",
        "fault_address",
    ] {
        assert!(program.get(key).is_some(), "findings.program lacks {key}");
    }
    assert_eq!(program["mapped_table"], false);
    assert_eq!(program["signal"], serde_json::Value::Null);
    let t = text(&crate::model::tests::explained::<Step2>(&f, &e).blocks);
    assert!(t.contains("It did NOT map table.bin: 1084 read"), "{t}");
}

#[test]
fn explain_and_pictures_come_from_the_findings() {
    let e = fixture("course-table");
    let f = Step2::analyze(&e).unwrap();
    let x = crate::model::tests::explained::<Step2>(&f, &e);
    let t = text(&x.blocks);
    assert!(
        t.contains("length 114340 B from fstat (newfstatat) before mmap"),
        "{t}"
    );
    assert!(t.contains("count and value[0..1083) lie in 2 pages"), "{t}");
    assert!(t.contains("--program ./reader"));
    assert_eq!(x.pictures.len(), 2);
    assert!(x.pictures.iter().all(|p| p.svg.is_ok()));
    assert!(x.pictures[0]
        .caption
        .contains("read in 2 of its 28 pages, only those holding the count and its 1083 values"));
}
