//! Step 3's lines of `== Answers at a glance` (3.1–3.3), from the findings alone.

use super::appends::Purpose;
use super::Findings;
use crate::disktable::fault::Region;
use crate::report::Glance;

/// 3.1 +300 per run persisted, 3.2 why the naive writer crashes, 3.3 how the fix grows the file.
pub fn glance(f: &Findings) -> Vec<Glance> {
    // With --program these are the lab's own runs, and the writer's verdict goes on 3.1.
    crate::step2::glance::for_program(vec![persisted(f), naive(f), fix(f)], f.program.as_ref())
}

fn persisted(f: &Findings) -> Glance {
    let runs: Vec<_> = f
        .appends
        .runs
        .iter()
        .filter(|r| r.purpose == Purpose::Append300 && r.succeeded)
        .collect();
    // Chains of runs that followed each other: "1083 -> 1383 -> 1683, then 28783 -> 29083".
    let mut chains: Vec<Vec<String>> = Vec::new();
    let mut last = None;
    for r in &runs {
        let show = crate::known::<i64>;
        if last.is_none() || last != r.count_before {
            chains.push(vec![show(r.count_before)]);
        }
        if let Some(chain) = chains.last_mut() {
            chain.push(show(r.count_after));
        }
        last = r.count_after;
    }
    let counts: Vec<String> = chains.iter().map(|c| c.join(" -> ")).collect();
    let calls: usize = runs
        .iter()
        .map(|r| r.read_calls_on_table + r.write_calls_on_table)
        .sum();
    let text = if runs.is_empty() {
        "not measured: no append of 300 succeeded".to_string()
    } else {
        format!(
            "{} over {} runs of append 300 ({}), with {calls} read/write calls on the table",
            if f.appends.each_run_added_300 {
                "+300 each time"
            } else {
                "NOT +300 each time"
            },
            runs.len(),
            crate::report::shorten(&counts.join(", then "), 90)
        )
    };
    Glance::new("3.1", text)
}

fn naive(f: &Findings) -> Glance {
    let mut parts = Vec::new();
    for r in &f.naive.runs {
        let Some(fault) = &r.fault else { continue };
        if parts
            .iter()
            .any(|(s, _): &(String, String)| *s == fault.signal)
        {
            continue;
        }
        let place = match fault.region {
            Region::PastMapping => "past the mapping",
            Region::MappedPastEof => "in a mapped page past EOF",
            Region::InsideFile => "inside the file (unexpected)",
            Region::Elsewhere => "outside the table's mapping",
        };
        let at = fault
            .offset
            .map_or(String::new(), |o| format!(" (offset {o})"));
        parts.push((
            fault.signal.clone(),
            format!("{} {place}{at}", fault.signal),
        ));
    }
    let text = match parts.first() {
        None => "not measured: no naive run was killed by a signal".to_string(),
        Some(_) => format!(
            "it stores past the end of the {} B file, never grown: {}",
            f.naive.runs.first().map_or(0, |r| r.file_bytes_before),
            parts
                .iter()
                .map(|(_, p)| p.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    Glance::new("3.2", crate::report::shorten(&text, 180))
}

fn fix(f: &Findings) -> Glance {
    let text = match &f.appends.fix {
        None => "not measured: no run grew the file".to_string(),
        Some(g) => format!(
            "{} to {} B, then mremap {} -> {} B ({}); the appends then ran with no signal",
            if g.truncate_first {
                "ftruncate first"
            } else {
                "ftruncate (after the mremap)"
            },
            g.file_bytes,
            g.old_len,
            g.new_len,
            g.flags
        ),
    };
    Glance::new("3.3", text)
}
