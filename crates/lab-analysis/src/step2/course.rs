//! The course's step 2: print every value of `table.bin` through one mapping, its length from
//! `fstat`, trusting `count` bounded by the file's size. Runs `disktable print --json --evict
//! --advice random table.bin` under strace: the trace shows fstat, the one mmap and no read of
//! the table; mincore (in the trace and in the document) shows which pages the print read in.

use std::collections::HashSet;

use lab_trace::fds::{self, READ_CALLS, WRITE_CALLS};
use lab_trace::strace::Syscall;
use persist::disktable::PrintReport;
use serde::{Deserialize, Serialize};

use crate::disktable::excerpt;
use crate::disktable::program::{self, is_table};
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
    /// A stat of the table (fstat, newfstatat, statx on its descriptor, or stat, lstat,
    /// newfstatat, statx of its name) before the first mmap: the length came from it.
    pub fstat_before_mmap: bool,
    /// Which call that was (the last one before the mmap, preferring one whose size strace
    /// printed).
    pub fstat_call: Option<String>,
    /// The size it printed (`st_size=` or statx's `stx_size=`).
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
    /// The eviction before the mmap (`--evict`: posix_fadvise(POSIX_FADV_DONTNEED) in the
    /// trace) worked: mincore found no page resident right after mmap. `Some(false)`: pages
    /// stayed (tmpfs, where a file's pages are its only copy, or any file whose pages DONTNEED
    /// leaves), so the residency after printing does not show what printing read in.
    pub evicted: Option<bool>,
    /// Pages resident after printing that were not before (after - before).
    pub pages_came_in: Option<u64>,
    /// Only the needed pages were read in (resident after ≤ needed), when the eviction worked
    /// (`None` otherwise: the pages were there before printing).
    pub read_only_needed_pages: Option<bool>,
}

impl PrintFindings {
    /// Where the mapping's length came from: the one phrase the answer and the glance both use.
    pub fn length_source(&self) -> String {
        length_source(self.fstat_call.as_deref(), self.fstat_size)
    }
}

/// `length N B from fstat (CALL) before mmap`, or why not.
pub fn length_source(call: Option<&str>, size: Option<u64>) -> String {
    match (call, size) {
        (Some(call), Some(size)) => format!("length {size} B from fstat ({call}) before mmap"),
        (Some(call), None) => format!("fstat ({call}) before mmap, its size not in the trace line"),
        (None, _) => "NO fstat of the table before its mmap".into(),
    }
}

/// The stat calls a length can come from: on a descriptor, or of a name.
const STAT_CALLS: &[&str] = &["fstat", "newfstatat", "statx", "fstatat64", "stat", "lstat"];

/// The stat of the table that came last before its first successful mmap (preferring one
/// whose size strace printed), or `None` when none did or there is no mmap. By descriptor
/// (the calls [`fds::file_calls`] gives for the table) or by name (`stat("table.bin")`,
/// `newfstatat(AT_FDCWD, "table.bin")`, `statx(AT_FDCWD, "table.bin")`).
pub fn stat_before_mmap(
    all: &[Syscall],
    is_file: impl Fn(&str) -> bool + Copy,
) -> Option<&Syscall> {
    let mine: HashSet<*const Syscall> = fds::file_calls(all, is_file)
        .into_iter()
        .map(|c| c as *const Syscall)
        .collect();
    let end = all
        .iter()
        .position(|c| c.name == "mmap" && c.ok() && mine.contains(&(c as *const Syscall)))?;
    let named = |c: &Syscall| {
        let path = match c.name.as_str() {
            "stat" | "lstat" => c.arg_str(0),
            _ => c.arg_str(1),
        };
        path.is_some_and(|p| !p.is_empty() && is_file(p))
    };
    let stats: Vec<&Syscall> = all[..end]
        .iter()
        .filter(|c| STAT_CALLS.contains(&c.name.as_str()) && c.ok())
        .filter(|c| mine.contains(&(*c as *const Syscall)) || named(c))
        .collect();
    stats
        .iter()
        .rev()
        .find(|c| stat_size(&c.raw).is_some())
        .or(stats.last())
        .copied()
}

/// Decides, from the evidence alone.
pub fn analyze(e: &Evidence, page: u64) -> Findings {
    let s = &e.state;
    let check = s.check();
    let calls = fds::file_calls(&e.print.trace.calls, is_table);
    let mmap = calls.iter().find(|c| c.name == "mmap" && c.ok()).copied();
    let fstat = stat_before_mmap(&e.print.trace.calls, is_table);
    let arg = |i: usize| {
        mmap.and_then(|m| m.args.get(i))
            .map(|a| a.trim().to_string())
    };
    let map_len = mmap.and_then(|m| m.arg_u64(1));
    let r = e.report.as_ref();
    let pages_needed = check.as_ref().ok().map(|needs| needs.div_ceil(page));
    // The print's --evict asked the kernel to drop the file's pages; mincore right after the
    // mmap says whether it did.
    let fadvised = calls
        .iter()
        .any(|c| c.name == "fadvise64" && c.ok() && c.raw.contains("POSIX_FADV_DONTNEED"));
    let evicted = r.map(|r| fadvised && r.resident_pages_before == 0);
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
            fstat_before_mmap: fstat.is_some(),
            fstat_call: fstat.map(|c| c.name.clone()),
            fstat_size: fstat.and_then(|c| stat_size(&c.raw)),
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
            evicted,
            pages_came_in: r.map(|r| {
                r.resident_pages_after
                    .saturating_sub(r.resident_pages_before)
            }),
            read_only_needed_pages: r
                .zip(pages_needed)
                .filter(|_| evicted == Some(true))
                .map(|(r, need)| r.resident_pages_after <= need),
        },
    }
}

/// The size a stat line printed: `st_size=N` (fstat, newfstatat, stat, lstat) or `stx_size=N`
/// (statx).
fn stat_size(raw: &str) -> Option<u64> {
    ["st_size=", "stx_size="].iter().find_map(|key| {
        let rest = &raw[raw.find(key)? + key.len()..];
        rest[..rest.find([',', '}'])?].trim().parse().ok()
    })
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

/// The narrative; `who` says whether its answers are the course's or the lab's reference run
/// beside someone else's program.
pub fn explain(f: &Findings, e: &Evidence, who: Who) -> Vec<Block> {
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
            who.question(
                "Print every value of the table through one mmap",
                "print every value of the table through one mmap",
            ),
            format!(
                "disktable refused the table ({}): {}",
                e.print.ended,
                p.error.as_deref().unwrap_or("")
            ),
        ));
        return blocks;
    }
    blocks.push(Block::answer(
        who.question(
            "How do you print every value without a hardcoded size or element count?",
            "how does it print every value without a hardcoded size or element count?",
        ),
        format!(
            "{}{}; {} mmap of {} bytes ({}, {}){}; {} read and {} write calls on the table. It \
             printed {} values{}: count from the file, bounded by its size.",
            who.prefix(),
            p.length_source(),
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
        who.question(
            "Which pages did printing read in?",
            "which pages did its print read in?",
        ),
        format!("{}{}", who.prefix(), pages_answer(p, &count)),
    ));
    blocks
}

/// The course's question answered for someone else's reader (`--program`), from its own trace
/// and the TA's check of it, so that it cannot contradict the verdict.
pub fn program_answer(pf: &program::Findings, pe: &program::Evidence) -> Block {
    let calls = fds::file_calls(&pe.run.trace.calls, is_table);
    let stat = stat_before_mmap(&pe.run.trace.calls, is_table);
    let lengths: Vec<String> = calls
        .iter()
        .filter(|c| c.name == "mmap" && c.ok())
        .map(|c| crate::known(c.arg_u64(1)))
        .collect();
    let access = if !pf.opened_table {
        "it never opened table.bin".to_string()
    } else if !pf.mapped_table {
        format!(
            "it did NOT map table.bin: {} read and {} write calls on it",
            pf.read_calls_on_table, pf.write_calls_on_table
        )
    } else {
        format!(
            "{}; {} mmap of the table{}; {} read and {} write calls on it",
            length_source(
                stat.map(|c| c.name.as_str()),
                stat.and_then(|c| stat_size(&c.raw))
            ),
            pf.mmap_calls_on_table,
            if lengths.is_empty() {
                String::new()
            } else {
                format!(" ({} bytes)", lengths.join(", "))
            },
            pf.read_calls_on_table,
            pf.write_calls_on_table
        )
    };
    let judged = match &pf.verdict {
        Some(v) => format!(
            "The TA's check, which runs it on this table and on one of another count and size: \
             {}: {}.",
            v.verdict.name().to_uppercase(),
            v.reason
        ),
        None => "Whether its count or size is hard-coded shows only on a table of another count \
                 and size, which this recording did not run it on."
            .to_string(),
    };
    Block::answer(
        "How do you print every value without a hardcoded size or element count?",
        format!("Your reader {}: {access}. {judged}", pf.path),
    )
}

/// Whose answers the course's block gives: the course's own (no `--program`), or the lab's
/// reference run beside someone else's program, said so in the question and the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Course,
    Reference,
}

impl Who {
    /// The course's question, or the question about the lab's reference disktable.
    pub fn question(self, course: &str, reference: &str) -> String {
        match self {
            Who::Course => course.to_string(),
            Who::Reference => {
                format!("The lab's reference disktable, not your program: {reference}")
            }
        }
    }

    /// What an answer starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            Who::Course => "",
            Who::Reference => "The lab's reference disktable: ",
        }
    }
}

/// "Which pages did printing read in?": from mincore right after the mmap and after printing,
/// and only when the eviction before it worked does the second figure say what printing read.
fn pages_answer(p: &PrintFindings, count: &str) -> String {
    let (before, after, pages, needed) = (
        p.resident_before.unwrap_or(0),
        p.resident_after.unwrap_or(0),
        p.pages.unwrap_or(0),
        p.pages_needed.unwrap_or(0),
    );
    let came_in = p.pages_came_in.unwrap_or(0);
    let lie_in = format!("count and value[0..{count}) lie in {needed} pages");
    match p.evicted {
        Some(true) => format!(
            "mincore ({} calls in the trace): {before} of {pages} pages resident right after mmap \
             (posix_fadvise(POSIX_FADV_DONTNEED) had evicted the file), {after} after printing; \
             {lie_in}{}.",
            p.mincore_calls,
            match p.read_only_needed_pages {
                Some(true) => ": MADV_RANDOM kept read-ahead off, so only those were read".into(),
                Some(false) => format!(
                    ": {} more than those came in (this run does not measure what read them)",
                    after.saturating_sub(needed)
                ),
                None => String::new(),
            }
        ),
        Some(false) => format!(
            "not shown by this run: mincore ({} calls in the trace) found {before} of {pages} \
             pages resident right after mmap although the print had asked the kernel to drop \
             them (posix_fadvise(POSIX_FADV_DONTNEED)): the eviction did not drop them (on tmpfs \
             a file's pages are its only copy; DONTNEED leaves pages elsewhere too). {after} were \
             resident after printing ({}), so printing found its pages in memory and the figure \
             does not say which it needed; {lie_in}.",
            p.mincore_calls,
            if came_in == 0 {
                "none came in".to_string()
            } else {
                format!("{came_in} came in")
            }
        ),
        None => format!("not measured ({lie_in})."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real strace lines of each stat call (x86_64, strace 6), as the trace shows them.
    const STAT_LINES: &[(&str, u64)] = &[
        (
            "1 statx(3, \"\", AT_STATX_SYNC_AS_STAT|AT_EMPTY_PATH, STATX_ALL, {stx_mask=STATX_ALL|STATX_MNT_ID, stx_attributes=0, stx_mode=S_IFREG|0644, stx_size=114340, ...}) = 0",
            114_340,
        ),
        (
            "1 newfstatat(3, \"\", {st_mode=S_IFREG|0644, st_size=114340, ...}, AT_EMPTY_PATH) = 0",
            114_340,
        ),
        ("1 fstat(3, {st_mode=S_IFREG|0644, st_size=4096, ...}) = 0", 4096),
        (
            "1 stat(\"table.bin\", {st_mode=S_IFREG|0644, st_size=76400, ...}) = 0",
            76_400,
        ),
        (
            "1 lstat(\"table.bin\", {st_mode=S_IFREG|0644, st_size=8, ...}) = 0",
            8,
        ),
        (
            "1 newfstatat(AT_FDCWD, \"table.bin\", {st_mode=S_IFREG|0644, st_size=229376, ...}, 0) = 0",
            229_376,
        ),
        (
            "1 statx(AT_FDCWD, \"table.bin\", AT_STATX_SYNC_AS_STAT, STATX_ALL, {stx_mask=STATX_ALL|STATX_MNT_ID, stx_attributes=0, stx_mode=S_IFREG|0644, stx_size=0, ...}) = 0",
            0,
        ),
    ];

    #[test]
    fn the_size_is_read_from_every_kind_of_stat_line() {
        for (line, size) in STAT_LINES {
            assert_eq!(stat_size(line), Some(*size), "{line}");
        }
        assert_eq!(stat_size("1 close(3) = 0"), None);
        assert_eq!(mincore_pages("[1, 1, 0, 0, 1, ...]"), [0, 1, 4]);
        assert_eq!(mincore_pages("[]"), [] as [u64; 0]);
    }

    #[test]
    fn the_stat_before_the_mmap_is_found_by_descriptor_or_by_name() {
        for (line, size) in STAT_LINES {
            let trace = lab_trace::strace::parse_trace(&format!(
                "1 openat(AT_FDCWD, \"/etc/ld.so.cache\", O_RDONLY) = 3\n\
                 1 newfstatat(3, \"\", {{st_mode=S_IFREG|0644, st_size=37911, ...}}, AT_EMPTY_PATH) = 0\n\
                 1 close(3) = 0\n\
                 1 openat(AT_FDCWD, \"table.bin\", O_RDONLY) = 3\n\
                 {line}\n\
                 1 mmap(NULL, {size}, PROT_READ, MAP_SHARED, 3, 0) = 0x7f0000000000\n\
                 1 newfstatat(3, \"\", {{st_mode=S_IFREG|0644, st_size=1, ...}}, AT_EMPTY_PATH) = 0\n"
            ));
            let stat = stat_before_mmap(&trace.calls, is_table).expect(line);
            assert_eq!(stat.raw, *line);
            assert_eq!(stat_size(&stat.raw), Some(*size));
        }
        // The library's stat and one after the mmap are not the table's length.
        let trace = lab_trace::strace::parse_trace(
            "1 openat(AT_FDCWD, \"/etc/ld.so.cache\", O_RDONLY) = 3\n\
             1 newfstatat(3, \"\", {st_mode=S_IFREG|0644, st_size=37911, ...}, AT_EMPTY_PATH) = 0\n\
             1 close(3) = 0\n\
             1 openat(AT_FDCWD, \"table.bin\", O_RDONLY) = 3\n\
             1 mmap(NULL, 114340, PROT_READ, MAP_SHARED, 3, 0) = 0x7f0000000000\n\
             1 newfstatat(3, \"\", {st_mode=S_IFREG|0644, st_size=1, ...}, AT_EMPTY_PATH) = 0\n",
        );
        assert!(stat_before_mmap(&trace.calls, is_table).is_none());
        assert_eq!(
            length_source(None, None),
            "NO fstat of the table before its mmap"
        );
        assert_eq!(
            length_source(Some("statx"), Some(114_340)),
            "length 114340 B from fstat (statx) before mmap"
        );
    }
}
