//! Findings asserted on evidence recorded by `run-step 4 --save-evidence` (xtask/tests/evidence),
//! and on variants of it built here.
//!
//! Here: what xtask adds (the pictures, the measurement, live runs, reading recorded files);
//! the Findings and the narrative alone are asserted in `lab_analysis::step4`'s tests.

use std::path::Path;

use super::Step4;

use lab_analysis::step4::analyze::analyze;
use lab_analysis::step4::evidence::Evidence;
use lab_analysis::Block;

pub(crate) fn fixture(name: &str) -> Evidence {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/evidence")
        .join(name);
    crate::evidence::load(&dir, 4).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

#[test]
fn a_missing_field_is_an_error_naming_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/evidence/foobar-course-c");
    let text = std::fs::read_to_string(dir.join("step4.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["evidence"]["programs"][1]
        .as_object_mut()
        .unwrap()
        .remove("faults_ready");
    let tmp = crate::report::tests::tempdir("step4-missing");
    std::fs::write(tmp.path().join("step4.json"), doc.to_string()).unwrap();
    let e = crate::evidence::load::<Evidence>(tmp.path(), 4).unwrap_err();
    assert!(
        format!("{e:#}").contains("missing field `faults_ready`"),
        "{e:#}"
    );
}

#[test]
fn explain_answers_every_question_and_draws_the_frames() {
    let ev = fixture("foobar-ours-root");
    let f = analyze(&ev).unwrap();
    let explained = crate::model::tests::explained::<Step4>(&f, &ev);
    let answers = explained
        .blocks
        .iter()
        .filter(|b| matches!(b, Block::Answer(_)))
        .count();
    assert_eq!(answers, 6);
    assert_eq!(explained.pictures.len(), 1);
    assert!(explained.pictures[0].svg.is_ok());
}
