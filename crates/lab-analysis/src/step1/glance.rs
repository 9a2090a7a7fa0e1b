//! Step 1's lines of `== Answers at a glance` (1.1–1.4), from the findings alone.

use super::analyze::{Findings, FLAG_NAMES};
use crate::report::{shorten, Glance, GLANCE_MAX};

/// 1.1 the free/in-use bit, 1.2 the heap/mmap bit, 1.3 the switch, 1.4 x against L.
pub fn glance(f: &Findings) -> Vec<Glance> {
    if let Some(why) = &f.foreign_allocator {
        let why = crate::report::shorten(why, 100);
        return ["1.1", "1.2", "1.3", "1.4"]
            .iter()
            .map(|n| {
                Glance::new(
                    n,
                    format!("not measured: the probe refused this malloc ({why})"),
                )
            })
            .collect();
    }
    let answers = [free_bit(f), mmap_bit(f), switch(f), length(f)];
    answers
        .into_iter()
        .map(|g| match f.not_measured(&g.number) {
            Some(why) => {
                let head = Glance::new(&g.number, "not measured: ");
                let room = GLANCE_MAX.saturating_sub(head.line().chars().count());
                Glance::new(&g.number, head.text + &shorten(why, room))
            }
            None => g,
        })
        .collect()
}

fn bit_name(b: u32) -> String {
    format!(
        "bit {b} ({:#x}, {})",
        1u64 << b,
        FLAG_NAMES.get(b as usize).unwrap_or(&"?")
    )
}

fn free_bit(f: &Findings) -> Glance {
    let change = f.free_bit.as_ref().and_then(|fb| fb.first_change);
    let text = match (f.prev_inuse_bit, change) {
        (Some(b), Some((x, c))) => format!(
            "{} of the NEXT chunk's tag, 1 = in use, 0 = free; free(malloc({x})) (chunk {c} B) \
             cleared it",
            bit_name(b)
        ),
        (Some(b), None) => format!(
            "{} of the NEXT chunk's tag, 1 = in use, 0 = free",
            bit_name(b)
        ),
        (None, _) => "not measured: no free changed exactly one bit of the neighbour's tag".into(),
    };
    Glance::new("1.1", text)
}

fn mmap_bit(f: &Findings) -> Glance {
    let text = match (&f.sweep, f.is_mmapped_bit) {
        (None, _) => "not measured: the sweep did not run".into(),
        (Some(s), _) if s.mmap_rows == 0 || s.heap_rows == 0 => format!(
            "not measured in the sweep: it had {} heap and {} mmap rows (both are needed)",
            s.heap_rows, s.mmap_rows
        ),
        (Some(s), Some(b)) => format!(
            "{}: set in all {} mmapped chunks, clear in all {} heap chunks of the sweep",
            bit_name(b),
            s.mmap_rows,
            s.heap_rows
        ),
        (Some(s), None) => format!(
            "no single bit followed heap/mmap over {} heap and {} mmap rows (bits that did: {:?})",
            s.heap_rows, s.mmap_rows, s.bits_following_region
        ),
    };
    Glance::new("1.2", text)
}

fn switch(f: &Findings) -> Glance {
    let text = match (f.threshold_request, f.threshold_chunk_size) {
        (Some(r), Some(c)) => format!(
            "malloc({r}) is the first request mmapped (chunk {c} B = {} KiB); malloc({}) still \
             came from the heap",
            c as f64 / 1024.0,
            r - 1
        ),
        _ => "not measured: the threshold probes found no switch".into(),
    };
    Glance::new("1.3", text)
}

fn length(f: &Findings) -> Glance {
    let text = match &f.formula {
        Some(fm) if fm.mmaps > 0 => {
            let lead = match fm.length_is_request {
                0 => "never x".to_string(),
                n => format!("x itself in {n} of {} mmaps", fm.mmaps),
            };
            let rule = fm
                .added_bytes
                .map(|(lo, hi)| {
                    format!(
                        ", i.e. x + {}..{} header bytes rounded up to a {} B page",
                        lo + 1,
                        hi,
                        fm.page_size
                    )
                })
                .unwrap_or_default();
            format!(
                "{lead}: L - x = {}..{} B over {} mmaps{rule}",
                fm.overhead_min, fm.overhead_max, fm.mmaps
            )
        }
        _ => "not measured: no request of the sweep was mmapped".into(),
    };
    Glance::new("1.4", text)
}
