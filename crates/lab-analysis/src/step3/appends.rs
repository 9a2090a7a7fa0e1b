//! The course's step 3, done right: `disktable append table.bin` adds 300 values per run
//! (value\[i\] = i) through a `MAP_SHARED` mapping, and grows the file only when its capacity
//! runs out: `ftruncate(2)` first, then `mremap(2)` with `MREMAP_MAYMOVE`, which may move the
//! mapping. Several runs under strace: three of 300, one that fills the file to 100 values
//! short of its capacity, then 300 (which must grow) and 300 more (which must not).

use lab_trace::fds::{self, READ_CALLS, WRITE_CALLS};
use persist::disktable::AppendReport;
use serde::{Deserialize, Serialize};

use crate::disktable::fault;
use crate::disktable::fault::Growth;
use crate::disktable::program::{self, is_table};
use crate::disktable::table::TableState;
use crate::disktable::traced::TracedRun;
use crate::step2::course::Who;
use crate::Block;

/// Why a run was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The course's run: 300 more.
    Append300,
    /// Brings count to 100 short of the capacity, so the next 300 must grow the file.
    Fill,
}

/// One `disktable --json append table.bin N` under strace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub purpose: Purpose,
    pub n: u64,
    pub before: TableState,
    pub run: TracedRun,
    /// Its document (`None` when it failed).
    pub report: Option<AppendReport>,
    pub after: TableState,
}

/// What one run shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunFindings {
    pub purpose: Purpose,
    pub n: u64,
    pub succeeded: bool,
    pub error: Option<String>,
    pub count_before: Option<i64>,
    pub count_after: Option<i64>,
    pub capacity_before: u64,
    pub file_bytes_before: u64,
    pub file_bytes_after: u64,
    /// count + n exceeded the capacity: the file had to grow.
    pub needed_growth: bool,
    /// The file grew.
    pub grew: bool,
    pub ftruncate_calls: usize,
    pub mremap_calls: usize,
    /// The first ftruncate + mremap of the run.
    pub growth: Option<Growth>,
    pub read_calls_on_table: usize,
    pub write_calls_on_table: usize,
    /// After the run: value\[i\] = i for every i < count, all in the file.
    pub values_ok: bool,
    /// disktable's own document agrees with the trace (grew, moved).
    pub report_agrees: Option<bool>,
}

/// What the runs establish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub runs: Vec<RunFindings>,
    /// Every run grew the file exactly when count + n exceeded its capacity.
    pub grew_only_when_full: bool,
    /// Every 300-run added 300, value\[i\] = i.
    pub each_run_added_300: bool,
    /// No read or write call touched the table in any run.
    pub only_mmap: bool,
    /// The first growth: the fix for the naive writer.
    pub fix: Option<Growth>,
}

/// Decides, from the evidence alone.
pub fn analyze(runs: &[Run]) -> Findings {
    let runs: Vec<RunFindings> = runs.iter().map(analyze_run).collect();
    let ok: Vec<&RunFindings> = runs.iter().filter(|r| r.succeeded).collect();
    Findings {
        grew_only_when_full: !ok.is_empty() && ok.iter().all(|r| r.grew == r.needed_growth),
        each_run_added_300: ok.iter().any(|r| r.purpose == Purpose::Append300)
            && ok.iter().filter(|r| r.purpose == Purpose::Append300).all(|r| {
                r.values_ok
                    && matches!((r.count_before, r.count_after), (Some(b), Some(a)) if a - b == 300)
            }),
        only_mmap: ok
            .iter()
            .all(|r| r.read_calls_on_table + r.write_calls_on_table == 0),
        fix: runs.iter().find_map(|r| r.growth.clone()),
        runs,
    }
}

fn analyze_run(r: &Run) -> RunFindings {
    let calls = fds::file_calls(&r.run.trace.calls, is_table);
    let growth = fault::growths(&calls).into_iter().next();
    let grew = r.after.file_bytes > r.before.file_bytes;
    let count_before = r.before.count;
    RunFindings {
        purpose: r.purpose,
        n: r.n,
        succeeded: r.run.ended.success(),
        error: (!r.run.ended.success()).then(|| r.run.error_line()),
        count_before,
        count_after: r.after.count,
        capacity_before: r.before.capacity(),
        file_bytes_before: r.before.file_bytes,
        file_bytes_after: r.after.file_bytes,
        needed_growth: count_before.is_some_and(|c| c.max(0) as u64 + r.n > r.before.capacity()),
        grew,
        ftruncate_calls: fds::count(&calls, &["ftruncate"]),
        mremap_calls: fds::count(&calls, &["mremap"]),
        read_calls_on_table: fds::count(&calls, READ_CALLS),
        write_calls_on_table: fds::count(&calls, WRITE_CALLS),
        values_ok: r.after.values_are_indices(),
        report_agrees: r.report.as_ref().map(|rep| {
            rep.grew == grew
                && growth
                    .as_ref()
                    .map_or(!rep.moved, |g| g.moved() == rep.moved)
        }),
        growth,
    }
}

/// The narrative; `who` says whether its answers are the course's or the lab's reference run
/// beside someone else's writer.
pub fn explain(f: &Findings, runs: &[Run], who: Who) -> Vec<Block> {
    let mut blocks = vec![Block::heading(
        "disktable append: 300 more per run, growing only when capacity runs out",
    )];
    blocks.push(Block::evidence(
        "each run: count, capacity, file, growth calls",
        runs_table(f),
    ));
    if let Some((i, r)) = runs
        .iter()
        .enumerate()
        .find(|(_, r)| !fault::growths(&fds::file_calls(&r.run.trace.calls, is_table)).is_empty())
    {
        let calls = fds::file_calls(&r.run.trace.calls, is_table);
        blocks.push(Block::raw(
            format!(
                "strace of run {} ({}): the table's descriptor and mapping",
                i + 1,
                r.run.command()
            ),
            crate::disktable::excerpt(calls.iter().map(|c| c.raw.as_str()), 30),
        ));
    }
    let succeeded = f.runs.iter().filter(|r| r.succeeded).count();
    if succeeded == 0 {
        blocks.push(Block::answer(
            who.question(
                "Does each run add 300 values, using only mmap?",
                "does each run add 300 values, using only mmap?",
            ),
            format!(
                "{}No run succeeded: {}",
                who.prefix(),
                f.runs
                    .first()
                    .and_then(|r| r.error.as_deref())
                    .unwrap_or("disktable append was not run")
            ),
        ));
        return blocks;
    }
    let needed = f
        .runs
        .iter()
        .filter(|r| r.succeeded && r.needed_growth)
        .count();
    let grown = f.runs.iter().filter(|r| r.grew).count();
    blocks.push(Block::answer(
        who.question(
            "Does each run add 300 values, using only mmap?",
            "does each run add 300 values, using only mmap?",
        ),
        format!(
            "{}{} {succeeded} of {} runs succeeded; {} read and {} write calls on the table in \
             all: {}.",
            who.prefix(),
            if f.each_run_added_300 {
                "Yes: every run of 300 moved count by 300 with value[i] = i."
            } else {
                "NO: some run of 300 did not add 300 values with value[i] = i."
            },
            f.runs.len(),
            f.runs.iter().map(|r| r.read_calls_on_table).sum::<usize>(),
            f.runs.iter().map(|r| r.write_calls_on_table).sum::<usize>(),
            if f.only_mmap {
                "only the mapping"
            } else {
                "NOT only the mapping"
            }
        ),
    ));
    blocks.push(Block::answer(
        who.question("When does the file grow?", "when does the file grow?"),
        format!(
            "{}{needed} of the runs needed more room than the file had, and {grown} grew it: \
             {}.{}",
            who.prefix(),
            if f.grew_only_when_full {
                "growth happened exactly when capacity ran out"
            } else {
                "growth did NOT follow capacity exactly"
            },
            match &f.fix {
                Some(g) => format!(
                    " The growth: ftruncate to {} bytes{}, then mremap({:#x}, {}, {}, {}) = {:#x}: \
                     the mapping {}.",
                    g.file_bytes,
                    if g.truncate_first { " first" } else { "" },
                    g.old_address,
                    g.old_len,
                    g.new_len,
                    g.flags,
                    g.new_address,
                    if g.moved() {
                        "MOVED (MREMAP_MAYMOVE let the kernel put it elsewhere; a pointer into the \
                         old mapping would now be stale)"
                    } else {
                        "grew in place"
                    }
                ),
                None => String::new(),
            }
        ),
    ));
    blocks
}

/// One line per run.
fn runs_table(f: &Findings) -> String {
    let mut table = format!(
        "{:<6} {:>9} {:>15} {:>9} {:>17} {:<5} {:<22}\n",
        "run", "n", "count", "capacity", "file bytes", "grew", "ftruncate / mremap"
    );
    for (i, r) in f.runs.iter().enumerate() {
        let c = |v: Option<i64>| v.map_or("-".into(), |v| v.to_string());
        table.push_str(&format!(
            "{:<6} {:>9} {:>15} {:>9} {:>17} {:<5} {}\n",
            i + 1,
            r.n,
            format!("{} -> {}", c(r.count_before), c(r.count_after)),
            r.capacity_before,
            format!("{} -> {}", r.file_bytes_before, r.file_bytes_after),
            if r.grew { "yes" } else { "no" },
            if r.succeeded {
                format!("{} / {}", r.ftruncate_calls, r.mremap_calls)
            } else {
                format!("FAILED: {}", r.error.as_deref().unwrap_or(""))
            }
        ));
    }
    table
}

/// The course's questions answered for someone else's writer (`--program`), from its own run
/// and the TA's check of it, so that they cannot contradict the verdict.
pub fn program_answers(pf: &program::Findings) -> Vec<Block> {
    let known = |v: Option<i64>| crate::known(v);
    let through = if pf.read_calls_on_table + pf.write_calls_on_table == 0 {
        "through the mapping alone"
    } else {
        "NOT only through the mapping"
    };
    let first_run = format!(
        "its run here: count {} -> {} ({}), the file {} -> {} bytes, {} read and {} write calls \
         on the table ({through})",
        known(pf.count_before),
        known(pf.count_after),
        pf.count_grew_by.map_or("?".into(), |d| format!("{d:+}")),
        pf.file_bytes_before,
        pf.file_bytes_after,
        pf.read_calls_on_table,
        pf.write_calls_on_table
    );
    let judged = match &pf.verdict {
        Some(v) => format!(
            "The TA's check, which runs it again and again until the file has to grow: {}: {}.",
            v.verdict.name().to_uppercase(),
            v.reason
        ),
        None => "Whether it keeps adding 300 once the file is full shows only over runs that \
                 make the file grow, which this recording did not make."
            .to_string(),
    };
    let needed = pf
        .count_before
        .map(|c| c + program::APPEND > persist::disktable::capacity(pf.file_bytes_before) as i64);
    vec![
        Block::answer(
            "Does each run add 300 values, using only mmap?",
            format!(
                "Your writer {}: {first_run}{}. {judged}",
                pf.path,
                if pf.appended_300 {
                    ": 300 values equal to their index"
                } else {
                    ": NOT 300 values equal to their index"
                }
            ),
        ),
        Block::answer(
            "When does the file grow?",
            format!(
                "Your writer {}: its run here {} more room than the file had and made {} \
                 ftruncate and {} mremap calls on the table (the file {} -> {} bytes).",
                pf.path,
                match needed {
                    Some(true) => "needed",
                    Some(false) => "did not need",
                    None => "(count unread) may have needed",
                },
                pf.ftruncate_calls_on_table,
                pf.mremap_calls_on_table,
                pf.file_bytes_before,
                pf.file_bytes_after
            ),
        ),
    ]
}
