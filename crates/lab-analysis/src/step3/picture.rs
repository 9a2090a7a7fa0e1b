//! The data of step 3's picture, built from the [`Findings`] (xtask draws it): each naive
//! writer's file and mapping and where its store faulted, plus the file after `disktable
//! append` grew it.

use super::{Evidence, Findings};
use crate::disktable::picture::{LayoutPicture, LayoutRow};

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
        // The count the growing run left: its values reach past the old end of the file.
        let count_after = f
            .appends
            .runs
            .iter()
            .find(|r| r.growth.as_ref() == Some(g))
            .and_then(|r| r.count_after)
            .unwrap_or(0)
            .max(0) as u64;
        rows.push(LayoutRow {
            label: format!("disktable append (count {count_after}): ftruncate + mremap"),
            file_bytes: g.file_bytes,
            used_bytes: persist::disktable::value_offset(count_after).min(g.file_bytes),
            map_len: Some(g.new_len),
            resident_pages: Vec::new(),
            fault: None,
        });
    }
    if rows.is_empty() {
        return None;
    }
    let page = e.page_size.max(1);
    let faulted: Vec<&crate::step3::naive::RunFindings> =
        f.naive.runs.iter().filter(|r| r.fault.is_some()).collect();
    let signal_of = |name: &str| {
        faulted
            .iter()
            .find(|r| r.signal.as_deref() == Some(name))
            .map(|r| r.mode.name())
    };
    let caption = match (signal_of("SIGSEGV"), signal_of("SIGBUS")) {
        (Some(segv), Some(bus)) => format!(
            "Both writers store past the file's end, but only the page matters: --naive={segv} \
             stores past its mapping's last page and gets SIGSEGV, --naive={bus} stores inside \
             its mapping on a page the file does not reach and gets SIGBUS."
        ),
        (Some(segv), None) => {
            format!("--naive={segv} stores past its mapping's last page and gets SIGSEGV.")
        }
        (None, Some(bus)) => format!(
            "--naive={bus} stores inside its mapping on a page the file does not reach and \
             gets SIGBUS."
        ),
        (None, None) => "No naive store faulted in this run.".to_string(),
    };
    let caption = match &f.appends.fix {
        Some(g) => format!(
            "{caption} The fix (last row) grows the file first (ftruncate to {} bytes), then \
             the mapping (mremap to {} bytes{}), so the new values land on pages the file has.",
            g.file_bytes,
            g.new_len,
            if g.moved() { ", which moved it" } else { "" }
        ),
        None => caption,
    };
    // Zoomed on the pages around the end of the file, where the stores faulted.
    let ends = rows.iter().flat_map(|r| {
        [Some(r.file_bytes), r.map_len, r.fault.as_ref().map(|x| x.0)]
            .into_iter()
            .flatten()
    });
    let first_end = rows
        .iter()
        .filter(|r| r.fault.is_some())
        .map(|r| r.file_bytes)
        .min()
        .or_else(|| rows.iter().map(|r| r.file_bytes).min());
    let window = first_end.map(|end| {
        let lo = (end / page).saturating_sub(2) * page;
        let last = ends.filter(|v| *v <= end + 4 * page).max().unwrap_or(end);
        (lo, (last.div_ceil(page) + 2) * page)
    });
    Some(LayoutPicture {
        file: "step3-naive.svg".into(),
        title: "The naive writer: where its stores faulted, against the mapping and the file"
            .into(),
        caption,
        window,
        page_size: e.page_size,
        rows,
    })
}
