//! The data of step 3's picture, built from the [`Findings`] (xtask draws it): each naive
//! writer's file and mapping and where its store faulted, plus the file after `disktable
//! append` grew it.

use super::{Evidence, Findings};
use crate::disktable::picture::{LayoutPicture, LayoutRow};
use crate::disktable::program::relative;

/// The naive runs that crossed the end of the file, and the grown file.
pub fn naive_layout(f: &Findings, e: &Evidence) -> Option<LayoutPicture> {
    let mut rows: Vec<LayoutRow> =
        f.naive
            .runs
            .iter()
            .zip(&e.naive)
            .filter(|(r, _)| r.fault.is_some() || r.values_counted_not_in_file > 0)
            .map(|(r, ev)| {
                let count = r.count_before.unwrap_or(0).max(0) as u64;
                LayoutRow {
                    label: format!(
                        "--naive={} {}: {}",
                        r.mode.name(),
                        r.n,
                        r.signal.as_deref().unwrap_or("no signal")
                    ),
                    file_bytes: r.file_bytes_before,
                    used_bytes: persist::disktable::value_offset(count).min(r.file_bytes_before),
                    map_len: r
                        .fault
                        .as_ref()
                        .and_then(|fl| fl.mapping.map(|m| m.len))
                        .or(ev.plan.as_ref().map(|p| p.map_len)),
                    resident_pages: Vec::new(),
                    fault: r.fault.as_ref().and_then(|fl| {
                        fl.offset.map(|o| (o, r.signal.clone().unwrap_or_default()))
                    }),
                }
            })
            .collect();
    if let Some(g) = &f.appends.fix {
        rows.push(LayoutRow {
            label: "disktable append: ftruncate + mremap".into(),
            file_bytes: g.file_bytes,
            used_bytes: 0,
            map_len: Some(g.new_len),
            resident_pages: Vec::new(),
            fault: None,
        });
    }
    if rows.is_empty() {
        return None;
    }
    let faults: Vec<String> = f
        .naive
        .runs
        .iter()
        .filter_map(|r| {
            let fl = r.fault.as_ref()?;
            Some(format!(
                "{} ({}) {}, {}",
                fl.signal,
                r.mode.name(),
                relative(fl.past_map_end, "the mapping's end"),
                relative(fl.past_file_end, "the file's end")
            ))
        })
        .collect();
    Some(LayoutPicture {
        file: "step3-naive.svg".into(),
        title: "The naive writer: where its stores faulted, against the mapping and the file"
            .into(),
        caption: format!(
            "Grey: the file; blue: count and the values before the run; orange outline: the \
             mapping's pages; red: the faulting store. {}.{}",
            if faults.is_empty() {
                "No store faulted".to_string()
            } else {
                faults.join("; ")
            },
            match &f.appends.fix {
                Some(g) => format!(
                    " The fix (last row): ftruncate to {} bytes, then mremap to {} bytes{}.",
                    g.file_bytes,
                    g.new_len,
                    if g.moved() {
                        ", which moved the mapping"
                    } else {
                        ""
                    }
                ),
                None => String::new(),
            }
        ),
        page_size: e.page_size,
        rows,
    })
}
