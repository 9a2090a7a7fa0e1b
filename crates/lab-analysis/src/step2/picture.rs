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
}

/// The course's table: its count, its capacity, the mapping and the pages the print read in.
fn course_layout(f: &Findings, e: &Evidence) -> Option<LayoutPicture> {
    let c = &f.course;
    let count = c.count?;
    Some(LayoutPicture {
        file: "step2-table.svg".into(),
        title: "table.bin: count, capacity, the mapping, the pages printing read in".into(),
        caption: format!(
            "The file is {} bytes: the 8-byte count ({count}) and value[0..{count}) take {} \
             bytes, room for {} more values follows. disktable print mapped {} bytes and \
             read in {} of its {} pages (mincore): {}.",
            c.file_bytes,
            c.count_needs_bytes.unwrap_or(0),
            c.spare_values.unwrap_or(0),
            c.print.map_len.unwrap_or(0),
            c.print.resident_pages.len(),
            c.print.pages.unwrap_or(0),
            if c.print.resident_pages.is_empty() {
                "none".to_string()
            } else {
                format!("pages {:?}", c.print.resident_pages)
            }
        ),
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
    })
}
