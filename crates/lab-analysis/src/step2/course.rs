//! The course's step 2: print every value of `table.bin` through one mapping, its length from
//! `fstat`, trusting `count` bounded by the file's size. Runs `disktable print --json --evict
//! --advice random table.bin` under strace: the trace shows fstat, the one mmap and no read of
//! the table; mincore (in the trace and in the document) shows which pages the print read in.

use lab_trace::fds::{self, READ_CALLS, WRITE_CALLS};
use persist::disktable::PrintReport;
use serde::{Deserialize, Serialize};

use crate::disktable::excerpt;
use crate::disktable::program::is_table;
use crate::disktable::table::TableSource;
use crate::disktable::table::TableState;
use crate::disktable::traced::TracedRun;
use crate::Block;

/// The course's table and one print of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    pub source: TableSource,
    /// The table as this process read it before the print.
    pub state: TableState,
    /// `disktable --json print --evict --advice random table.bin` under strace.
    pub print: TracedRun,
    /// Its document (`None` when it refused the table).
    pub report: Option<PrintReport>,
}

/// What the table and its print establish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Findings {
    /// `course-shaped` or the `--table` path.
    pub table: String,
    pub file_bytes: u64,
    pub count: Option<i64>,
    /// How many values the file has room for: (length - 8) / 4.
    pub capacity: u64,
    /// Bytes count needs (8 + 4 x count), when valid.
    pub count_needs_bytes: Option<u64>,
    /// Room past count: the file is longer than count needs.
    pub spare_values: Option<u64>,
    /// Why the table is not valid, if it is not.
    pub invalid: Option<String>,
    pub values_are_indices: bool,
    pub print: PrintFindings,
}

/// What the trace and the document of the print show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrintFindings {
    pub succeeded: bool,
    /// Its `error: …` line when it refused the table.
    pub error: Option<String>,
    /// fstat (or statx) of the table's descriptor before the first mmap: the length came from it.
    pub fstat_before_mmap: bool,
    /// st_size as fstat printed it.
    pub fstat_size: Option<u64>,
    pub mmap_calls: usize,
    pub map_len: Option<u64>,
    pub map_prot: Option<String>,
    pub map_flags: Option<String>,
    pub mapped_whole_file: bool,
    pub read_calls_on_table: usize,
    pub write_calls_on_table: usize,
    pub mincore_calls: usize,
    pub values_printed: Option<u64>,
    /// The document's values equal value\[0..count) with value\[i\] = i.
    pub printed_count_values: bool,
    pub pages: Option<u64>,
    /// Pages that count and value\[0..count) lie in.
    pub pages_needed: Option<u64>,
    pub resident_before: Option<u64>,
    pub resident_after: Option<u64>,
    /// The pages the last mincore in the trace found resident, by index.
    pub resident_pages: Vec<u64>,
    /// Only the needed pages were read in (resident after ≤ needed).
    pub read_only_needed_pages: Option<bool>,
}

/// Decides, from the evidence alone.
pub fn analyze(e: &Evidence, page: u64) -> Findings {
    let s = &e.state;
    let check = s.check();
    let calls = fds::file_calls(&e.print.trace.calls, is_table);
    let first_mmap = calls.iter().position(|c| c.name == "mmap" && c.ok());
    let is_stat = |n: &str| matches!(n, "fstat" | "newfstatat" | "statx");
    let fstat = calls[..first_mmap.unwrap_or(0)]
        .iter()
        .find(|c| is_stat(&c.name) && c.ok());
    let mmap = first_mmap.map(|i| calls[i]);
    let arg = |i: usize| {
        mmap.and_then(|m| m.args.get(i))
            .map(|a| a.trim().to_string())
    };
    let map_len = mmap.and_then(|m| m.arg_u64(1));
    let r = e.report.as_ref();
    let pages_needed = check.as_ref().ok().map(|needs| needs.div_ceil(page));
    let printed_count_values = r.is_some_and(|r| {
        s.count == Some(r.values.len() as i64)
            && r.values
                .iter()
                .enumerate()
                .all(|(i, v)| i64::from(*v) == i as i64)
    });
    Findings {
        table: match &e.source {
            TableSource::Course { .. } => "course-shaped".into(),
            TableSource::Given { path } => path.clone(),
        },
        file_bytes: s.file_bytes,
        count: s.count,
        capacity: s.capacity(),
        count_needs_bytes: check.as_ref().ok().copied(),
        spare_values: check
            .as_ref()
            .ok()
            .map(|_| s.capacity() - s.count.unwrap_or(0) as u64),
        invalid: check.as_ref().err().map(|r| r.to_string()),
        values_are_indices: s.values_are_indices(),
        print: PrintFindings {
            succeeded: e.print.ended.success(),
            error: (!e.print.ended.success()).then(|| e.print.error_line()),
            fstat_before_mmap: fstat.is_some() && mmap.is_some(),
            fstat_size: fstat.and_then(|c| st_size(&c.raw)),
            mmap_calls: calls.iter().filter(|c| c.name == "mmap" && c.ok()).count(),
            map_len,
            map_prot: arg(2),
            map_flags: arg(3),
            mapped_whole_file: map_len == Some(s.file_bytes),
            read_calls_on_table: fds::count(&calls, READ_CALLS),
            write_calls_on_table: fds::count(&calls, WRITE_CALLS),
            mincore_calls: fds::count(&calls, &["mincore"]),
            values_printed: r.map(|r| r.values.len() as u64),
            printed_count_values,
            pages: r.map(|r| r.pages),
            pages_needed,
            resident_before: r.map(|r| r.resident_pages_before),
            resident_after: r.map(|r| r.resident_pages_after),
            resident_pages: calls
                .iter()
                .rev()
                .find(|c| c.name == "mincore" && c.ok())
                .and_then(|c| c.args.get(2))
                .map(|v| mincore_pages(v))
                .unwrap_or_default(),
            read_only_needed_pages: r
                .zip(pages_needed)
                .map(|(r, need)| r.resident_pages_after <= need),
        },
    }
}

/// `st_size=N` in an fstat line.
fn st_size(raw: &str) -> Option<u64> {
    let rest = &raw[raw.find("st_size=")? + "st_size=".len()..];
    rest[..rest.find([',', '}'])?].trim().parse().ok()
}

/// The resident pages of a mincore vector as strace prints it (`[1, 1, 0, ...]`).
fn mincore_pages(vector: &str) -> Vec<u64> {
    vector
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(str::trim)
        .take_while(|v| *v != "...")
        .enumerate()
        .filter(|(_, v)| *v == "1")
        .map(|(i, _)| i as u64)
        .collect()
}

/// The narrative.
pub fn explain(f: &Findings, e: &Evidence) -> Vec<Block> {
    let count = crate::known(f.count);
    let mut blocks = vec![
        Block::heading("The course's table.bin: struct disktable { long count; int value[]; }"),
        Block::text(format!(
            "The table: {}. It is {} bytes: room for {} values, count {count}{}.",
            e.source.describe(),
            f.file_bytes,
            f.capacity,
            match (&f.invalid, f.spare_values) {
                (Some(why), _) => format!(" — NOT a valid table: {why}"),
                (None, Some(spare)) if spare > 0 => format!(
                    ": count needs {} bytes, so {spare} values' room lies past count (a correct \
                     reader trusts count, bounded by the file's size)",
                    f.count_needs_bytes.unwrap_or(0)
                ),
                _ => String::new(),
            }
        )),
    ];
    let calls = fds::file_calls(&e.print.trace.calls, is_table);
    blocks.push(Block::raw(
        format!(
            "strace of {}: the table's descriptor and mapping",
            e.print.command()
        ),
        excerpt(calls.iter().map(|c| c.raw.as_str()), 30),
    ));
    let p = &f.print;
    if !p.succeeded {
        blocks.push(Block::answer(
            "Print every value of the table through one mmap",
            format!(
                "disktable refused the table ({}): {}",
                e.print.ended,
                p.error.as_deref().unwrap_or("")
            ),
        ));
        return blocks;
    }
    blocks.push(Block::answer(
        "How do you print every value without a hardcoded size or element count?",
        format!(
            "{}; {} mmap of {} bytes ({}, {}){}; {} read and {} write calls on the table. It \
             printed {} values{}: count from the file, bounded by its size.",
            match (p.fstat_before_mmap, p.fstat_size) {
                (true, Some(size)) => format!("fstat gave the length ({size} bytes) before mmap"),
                (true, None) => "fstat came before mmap".into(),
                (false, _) => "NO fstat before the mmap".into(),
            },
            p.mmap_calls,
            crate::known(p.map_len),
            crate::known(p.map_prot.as_deref()),
            crate::known(p.map_flags.as_deref()),
            if p.mapped_whole_file {
                ": the whole file"
            } else {
                ": NOT the whole file"
            },
            p.read_calls_on_table,
            p.write_calls_on_table,
            p.values_printed.unwrap_or(0),
            if p.printed_count_values {
                format!(", exactly value[0..{count}) with value[i] = i")
            } else {
                format!(", which is NOT value[0..{count}) with value[i] = i")
            }
        ),
    ));
    blocks.push(Block::answer(
        "Which pages did printing read in?",
        format!(
            "mincore ({} calls in the trace): {} of {} pages resident right after mmap (the \
             file was evicted first), {} after printing; count and value[0..{count}) lie in {} \
             pages{}.",
            p.mincore_calls,
            p.resident_before.unwrap_or(0),
            p.pages.unwrap_or(0),
            p.resident_after.unwrap_or(0),
            p.pages_needed.unwrap_or(0),
            match p.read_only_needed_pages {
                Some(true) => ": MADV_RANDOM kept read-ahead off, so only those were read",
                Some(false) => ": more came in (read-ahead, or another process read the file)",
                None => "",
            }
        ),
    ));
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn st_size_is_read_from_an_fstat_line() {
        assert_eq!(
            st_size("1 newfstatat(3, \"\", {st_mode=S_IFREG|0644, st_size=114340, ...}, AT_EMPTY_PATH) = 0"),
            Some(114_340)
        );
        assert_eq!(st_size("1 close(3) = 0"), None);
        assert_eq!(mincore_pages("[1, 1, 0, 0, 1, ...]"), [0, 1, 4]);
        assert_eq!(mincore_pages("[]"), [] as [u64; 0]);
    }
}
