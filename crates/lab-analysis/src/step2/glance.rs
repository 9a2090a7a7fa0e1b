//! Step 2's line of `== Answers at a glance` (2.1), from the findings alone.

use super::Findings;
use crate::report::Glance;

/// 2.1: the table printed through mmap, its size from fstat and its count from the file.
pub fn glance(f: &Findings) -> Vec<Glance> {
    let c = &f.course;
    let p = &c.print;
    let text = if !p.succeeded {
        let error = crate::report::shorten(p.error.as_deref().unwrap_or("no error line"), 110);
        format!("not measured: the print failed ({error})")
    } else {
        let size = match (p.fstat_before_mmap, p.fstat_size) {
            (true, Some(s)) => format!("length {s} B from fstat"),
            _ => "no fstat before mmap".into(),
        };
        format!(
            "{} values printed (count {}, read from the file), {size}, {} mmap of {} B ({}), {} \
             read calls",
            crate::known(p.values_printed),
            crate::known(c.count),
            p.mmap_calls,
            crate::known(p.map_len),
            crate::known(p.map_flags.as_deref()),
            p.read_calls_on_table
        )
    };
    vec![Glance::new("2.1", text)]
}
