//! Step 3's findings on recorded evidence (`xtask/tests/evidence/NAME/step3.json`).
//!
//! Here: what xtask adds (the pictures, the measurement, live runs, reading recorded files);
//! the Findings and the narrative alone are asserted in `lab_analysis::step3`'s tests.

use std::path::Path;

use lab_analysis::step3::{Evidence, Step3};
use lab_analysis::Step as _;

/// Recorded evidence of step 3 from `xtask/tests/evidence/NAME`.
pub(crate) fn fixture(name: &str) -> Evidence {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/evidence")
        .join(name);
    crate::evidence::load(&dir, 3).unwrap()
}

#[test]
fn the_picture_marks_each_fault_and_the_fix() {
    let e = fixture("course-table");
    let f = Step3::analyze(&e).unwrap();
    let p = lab_analysis::step3::picture::naive_layout(&f, &e).unwrap();
    // file (SIGSEGV), beyond (SIGBUS), tail (no signal, values past EOF), the grown file.
    assert_eq!(p.rows.len(), 4);
    assert_eq!(p.rows[0].fault.as_ref().map(|x| x.0), Some(114_688));
    assert_eq!(
        p.rows[1].fault.as_ref().map(|x| x.1.as_str()),
        Some("SIGBUS")
    );
    assert_eq!(p.rows[3].file_bytes, 229_376);
    assert!(p.caption.contains(
        "--naive=file stores past its mapping's last page and gets SIGSEGV, --naive=beyond \
         stores inside its mapping on a page the file does not reach and gets SIGBUS"
    ));
    // The fix row's count bar reaches past the old end of the file, where the naive writer
    // faulted; the picture is zoomed on the pages around that end.
    assert!(p.rows[3].used_bytes > p.rows[0].file_bytes);
    assert_eq!(p.window, Some((25 * 4096, 31 * 4096)));
    let pics = crate::charts::step3::pictures(&lab_analysis::step3::picture::naive_layout(&f, &e));
    assert!(pics[0]
        .svg
        .as_ref()
        .unwrap()
        .contains("SIGBUS at offset 114688"));
}
