//! Step 2's line of `== Answers at a glance` (2.1), from the findings alone.

use super::Findings;
use crate::disktable::program::Findings as ProgramFindings;
use crate::report::{shorten, Glance, GLANCE_MAX};

/// 2.1: the table printed through mmap, its size from fstat and its count from the file.
pub fn glance(f: &Findings) -> Vec<Glance> {
    let c = &f.course;
    let p = &c.print;
    let text = if !p.succeeded {
        let error = crate::report::shorten(p.error.as_deref().unwrap_or("no error line"), 110);
        format!("not measured: the print failed ({error})")
    } else {
        format!(
            "{} values printed (count {} from the file), {}, {} mmap of {} B ({}), {} reads",
            crate::known(p.values_printed),
            crate::known(c.count),
            p.length_source(),
            p.mmap_calls,
            crate::known(p.map_len),
            crate::known(p.map_flags.as_deref()),
            p.read_calls_on_table
        )
    };
    for_program(vec![Glance::new("2.1", text)], f.program.as_ref())
}

/// With `--program` a step's lines speak of the lab's reference run: they say so, the first one
/// leads with the program's verdict, and a line longer than [`GLANCE_MAX`] is cut at its end.
pub(crate) fn for_program(
    mut lines: Vec<Glance>,
    program: Option<&ProgramFindings>,
) -> Vec<Glance> {
    let Some(p) = program else { return lines };
    for (i, line) in lines.iter_mut().enumerate() {
        let verdict = match (&p.verdict, i) {
            (Some(v), 0) => format!("yours: {}; ", v.verdict.name().to_uppercase()),
            _ => String::new(),
        };
        line.text = format!("{verdict}lab's disktable: {}", line.text);
        let label = line.line().chars().count() - line.text.chars().count();
        line.text = shorten(&line.text, GLANCE_MAX - label);
    }
    lines
}
