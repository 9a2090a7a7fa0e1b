//! The data of the layout picture steps 2 and 3 share (xtask draws it): files and their
//! mappings over byte offsets, page boundaries, resident pages and where a store faulted.

/// One file and its mapping, drawn as a row of bars over byte offsets.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutRow {
    pub label: String,
    /// The file's length.
    pub file_bytes: u64,
    /// Bytes count and value\[0..count) take (8 + 4 x count), at most the file.
    pub used_bytes: u64,
    /// The mapping's length (mmap's argument), if the file was mapped.
    pub map_len: Option<u64>,
    /// Pages found resident (mincore), by index.
    pub resident_pages: Vec<u64>,
    /// Where a store faulted: offset from the mapping's start, and the signal.
    pub fault: Option<(u64, String)>,
}

/// Files and mappings over byte offsets, page boundaries marked.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutPicture {
    pub file: String,
    pub title: String,
    pub caption: String,
    pub page_size: u64,
    pub rows: Vec<LayoutRow>,
    /// The byte range to draw (bars clipped to it), when the interesting part is a few pages
    /// of a long file; `None` draws from offset 0 to past the longest row.
    pub window: Option<(u64, u64)>,
}
