//! The data of step 2's pictures, built from the [`Findings`] (xtask draws them): the course's
//! table file (count, capacity, the mapping, the pages the print read in) and the persist
//! table's pages resident before and after the lookups.

use super::lookups::Eviction;
use super::{Evidence, Findings};
use crate::disktable::picture::{LayoutPicture, LayoutRow};

/// Step 2's picture data: the course's table (when its count could be read) and the residency.
#[derive(Debug, Clone, PartialEq)]
pub struct Pictures {
    pub table: Option<LayoutPicture>,
    pub residency: ResidencyPicture,
}

/// The picture data of these findings.
pub fn pictures(f: &Findings, e: &Evidence) -> Pictures {
    Pictures {
        table: course_layout(f, e),
        residency: ResidencyPicture {
            pages_total: f.lookups.pages_total,
            before: f.lookups.pages_resident_before,
            after: f.lookups.pages_resident_after,
            lookups: f.lookups.lookups,
            evicted: f.lookups.eviction == Eviction::Fadvise,
            page_size: e.page_size,
        },
    }
}

/// The persist table's pages resident before and after the lookups.
#[derive(Debug, Clone, PartialEq)]
pub struct ResidencyPicture {
    pub pages_total: u64,
    pub before: u64,
    pub after: u64,
    pub lookups: u64,
    pub evicted: bool,
    /// Bytes per page, for the axis.
    pub page_size: u64,
}

/// The course's table: its count, its capacity, the mapping and the pages the print read in.
fn course_layout(f: &Findings, e: &Evidence) -> Option<LayoutPicture> {
    let c = &f.course;
    let count = c.count?;
    Some(LayoutPicture {
        file: "step2-table.svg".into(),
        title: "table.bin: count, capacity, the mapping, the pages printing read in".into(),
        caption: {
            let used_pages = c.count_needs_bytes.map(|b| b.div_ceil(e.page_size.max(1)));
            let touched_only =
                used_pages.is_some_and(|u| c.print.resident_pages.iter().all(|p| *p < u));
            let read_in = if c.print.evicted == Some(true) {
                format!(
                    "Printing the table through its mapping read in {} of its {} pages{}",
                    c.print.resident_pages.len(),
                    c.print.pages.unwrap_or(0),
                    if touched_only {
                        format!(", only those holding the count and its {count} values")
                    } else {
                        String::new()
                    }
                )
            } else {
                format!(
                    "{} of its {} pages were resident after printing, but {} already were \
                     before it (the eviction did not drop them), so the shading does not show \
                     what printing read in",
                    c.print.resident_pages.len(),
                    c.print.pages.unwrap_or(0),
                    crate::known(c.print.resident_before)
                )
            };
            format!(
                "{read_in}; the rest of the {}-byte file is room for {} more values.",
                c.file_bytes,
                c.spare_values.unwrap_or(0),
            )
        },
        page_size: e.page_size,
        rows: vec![LayoutRow {
            label: format!("table.bin, count {count}"),
            file_bytes: c.file_bytes,
            used_bytes: c
                .count_needs_bytes
                .unwrap_or(c.file_bytes)
                .min(c.file_bytes),
            map_len: c.print.map_len,
            resident_pages: c.print.resident_pages.clone(),
            fault: None,
        }],
        window: None,
    })
}
