//! The course's crash: "After running the program a few times, you'll encounter a segmentation
//! fault. Can you work out why?" The naive writer (`disktable append --naive[=MODE]`, our own
//! code path, run in a child under strace) maps the file and stores past its end. Each run here
//! works on a fresh copy of the table: 300 values (they fit), then as many as cross the end of
//! the file by 300, mapping the file's length (`file`: SIGSEGV past the mapping, after the
//! stores in the last page past EOF), mapping more than the file (`beyond`: SIGBUS in the first
//! page wholly past EOF), and stopping at the mapping's end (`tail`: no signal, the stores past
//! EOF land in memory only and the count now claims values the file does not hold).
//!
//! The signal and `si_addr` come from strace's signal line; where the address lies (against the
//! mapping's end and the file's end) from the trace's mmap calls and the file's length
//! ([`crate::disktable::fault`]). The naive writer's own prediction, printed before its
//! first store, is checked against what happened.

use persist::disktable::{NaiveMode, NaivePlan};
use serde::{Deserialize, Serialize};

use crate::disktable::excerpt;
use crate::disktable::fault;
use crate::disktable::fault::Fault;
use crate::disktable::program::describe_fault;
use crate::disktable::program::is_table;
use crate::disktable::program::relative;
use crate::disktable::table::TableState;
use crate::disktable::traced::Ended;
use crate::disktable::traced::TracedRun;
use crate::step2::course::Who;
use crate::Block;

/// One naive writer run on a fresh copy of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub mode: NaiveMode,
    pub n: u64,
    pub before: TableState,
    pub run: TracedRun,
    /// The layout and prediction it printed before its first store.
    pub plan: Option<NaivePlan>,
    pub after: TableState,
    /// `disktable print` of the file afterwards: how it ended, and its error line.
    pub print_after: Ended,
    pub print_after_error: String,
}

/// What one naive run shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunFindings {
    pub mode: NaiveMode,
    pub n: u64,
    pub count_before: Option<i64>,
    pub capacity_before: u64,
    pub file_bytes_before: u64,
    /// Value slots in the file's last page past its end (the page exists, the file does not).
    pub slots_past_eof_in_last_page: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub fault_address: Option<String>,
    pub fault: Option<Fault>,
    /// What the naive writer predicted before storing, and whether it held.
    pub predicted_signal: Option<String>,
    pub prediction_held: Option<bool>,
    /// The trace's mapping of the table: it mapped without ftruncate or mremap.
    pub ftruncate_calls: usize,
    pub mremap_calls: usize,
    pub count_after: Option<i64>,
    pub file_bytes_after: u64,
    /// count now claims more values than the file holds (they were stored past EOF, in memory).
    pub values_counted_not_in_file: u64,
    /// `disktable print` afterwards refused the file, with this reason.
    pub print_after_error: Option<String>,
}

/// What the naive runs establish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub runs: Vec<RunFindings>,
    /// Signals seen, in order (SIGSEGV, SIGBUS).
    pub signals: Vec<String>,
    /// Every fault lies where the page rule says its signal comes from.
    pub every_fault_as_expected: bool,
}

/// Decides, from the evidence alone.
pub fn analyze(runs: &[Run], page: u64) -> Findings {
    let runs: Vec<RunFindings> = runs.iter().map(|r| analyze_run(r, page)).collect();
    Findings {
        signals: runs.iter().filter_map(|r| r.signal.clone()).collect(),
        every_fault_as_expected: runs
            .iter()
            .filter_map(|r| r.fault.as_ref())
            .all(|f| f.as_expected),
        runs,
    }
}

fn analyze_run(r: &Run, page: u64) -> RunFindings {
    let calls = lab_trace::fds::file_calls(&r.run.trace.calls, is_table);
    let fault = fault::locate(&r.run.trace, is_table, r.before.file_bytes, page);
    let eof_page_end = r.before.file_bytes.div_ceil(page) * page;
    let slots = |bytes: u64| persist::disktable::capacity(bytes);
    let predicted = r.plan.as_ref().map(|p| p.expected_signal.clone());
    let capacity_after = r.after.capacity();
    RunFindings {
        mode: r.mode,
        n: r.n,
        count_before: r.before.count,
        capacity_before: r.before.capacity(),
        file_bytes_before: r.before.file_bytes,
        slots_past_eof_in_last_page: slots(eof_page_end) - slots(r.before.file_bytes),
        exit_code: r.run.ended.code,
        signal: r.run.ended.signal.clone(),
        fault_address: fault.as_ref().map(|f| format!("{:#x}", f.address)),
        predicted_signal: predicted.clone().flatten(),
        prediction_held: predicted.map(|p| p == r.run.ended.signal),
        fault,
        ftruncate_calls: lab_trace::fds::count(&calls, &["ftruncate"]),
        mremap_calls: lab_trace::fds::count(&calls, &["mremap"]),
        count_after: r.after.count,
        file_bytes_after: r.after.file_bytes,
        values_counted_not_in_file: r
            .after
            .count
            .map_or(0, |c| (c.max(0) as u64).saturating_sub(capacity_after)),
        print_after_error: (!r.print_after.success()).then(|| r.print_after_error.clone()),
    }
}

/// The narrative.
pub fn explain(f: &Findings, runs: &[Run], who: Who) -> Vec<Block> {
    let mut blocks = vec![Block::heading(
        "The crash: a naive writer maps the file and stores past its end",
    )];
    if f.runs.is_empty() {
        blocks.push(Block::text(
            "Not run: the table is not valid, so there is no count to append after.",
        ));
        return blocks;
    }
    let mut shown = String::new();
    for r in runs {
        shown.push_str(&format!("$ {}\n", r.run.command()));
        let calls = lab_trace::fds::file_calls(&r.run.trace.calls, is_table);
        shown.push_str(&excerpt(
            calls
                .iter()
                .filter(|c| c.name != "close")
                .map(|c| c.raw.as_str()),
            6,
        ));
        for s in &r.run.trace.signals {
            shown.push_str(&format!("{}\n", s.raw));
        }
        for e in &r.run.trace.exits {
            shown.push_str(&format!("{}\n", e.raw));
        }
    }
    blocks.push(Block::raw(
        "strace of each naive run (a fresh copy each)",
        shown,
    ));
    // Each run in full (the answer says what the signals were and why).
    let runs: Vec<String> = f.runs.iter().map(describe_run).collect();
    blocks.push(Block::raw(
        "each naive run, where it faulted",
        runs.join("\n"),
    ));
    let contradicted = f
        .runs
        .iter()
        .filter(|r| r.prediction_held == Some(false))
        .count();
    let tail = match f.runs.iter().find(|r| r.values_counted_not_in_file > 0) {
        Some(r) => format!(
            " Stores into the mapping's last page past the end of the file did not fault: {} \
             values landed there in memory only (--naive={}: count {} in a file that holds {}).",
            r.values_counted_not_in_file,
            r.mode.name(),
            crate::known(r.count_after),
            persist::disktable::capacity(r.file_bytes_after)
        ),
        None if f.runs.iter().all(|r| r.slots_past_eof_in_last_page == 0) => {
            " The file ends on a page boundary, so no store could land past its end without \
             faulting."
                .into()
        }
        None => String::new(),
    };
    blocks.push(Block::answer(
        who.question(
            "Why does the program crash after a few runs? (HINT: ftruncate and mremap)",
            "why does its --naive writer crash after a few runs? (HINT: ftruncate and mremap)",
        ),
        format!(
            "It maps the file's length (mmap never grows a file) and stores past it: {} \
             Signals seen: {}; {}{}.{tail} The file's length only changes by ftruncate (these runs made \
             {} ftruncate and {} mremap calls), so the fix is to ftruncate the file first and then \
             mremap the mapping over the new length — what disktable append does below.",
            f.runs
                .iter()
                .filter_map(|r| r.fault.as_ref().map(|fl| (r, fl)))
                .map(|(r, fl)| format!(
                    "{} ({}) at {} and {}: {}.",
                    crate::known(r.signal.as_deref()),
                    r.mode.name(),
                    relative(fl.past_map_end, "the mapping's end"),
                    relative(fl.past_file_end, "the file's end"),
                    fl.region.why()
                ))
                .collect::<Vec<_>>()
                .join(" "),
            if f.signals.is_empty() { "none".to_string() } else { f.signals.join(", ") },
            if f.every_fault_as_expected {
                "each where the page rule puts it"
            } else {
                "NOT all where the page rule puts them"
            },
            if contradicted > 0 {
                format!("; {contradicted} run(s) contradicted the writer's own prediction")
            } else {
                String::new()
            },
            f.runs.iter().map(|r| r.ftruncate_calls).sum::<usize>(),
            f.runs.iter().map(|r| r.mremap_calls).sum::<usize>(),
        ),
    ));
    blocks
}

fn describe_run(r: &RunFindings) -> String {
    let head = format!(
        "--naive={} {} on count {} (room for {}, {} bytes):",
        r.mode.name(),
        r.n,
        crate::known(r.count_before),
        r.capacity_before,
        r.file_bytes_before
    );
    let outcome = match (&r.signal, &r.fault) {
        (Some(sig), Some(fault)) => describe_fault(sig, fault),
        (Some(sig), None) => format!("killed by {sig}, no fault address in the trace."),
        (None, _) => format!(
            "no signal (exit status {}); count {} -> {}, the file {} -> {} bytes.",
            crate::known(r.exit_code),
            crate::known(r.count_before),
            crate::known(r.count_after),
            r.file_bytes_before,
            r.file_bytes_after
        ),
    };
    let mut s = format!("{head} {outcome}");
    if r.values_counted_not_in_file > 0 {
        s.push_str(&format!(
            " The count is now {} but the file ({} bytes, unchanged) holds {} values: {} values \
             were stored in the last page past EOF ({} slots there) and counted, but are not in \
             the file{}.",
            crate::known(r.count_after),
            r.file_bytes_after,
            persist::disktable::capacity(r.file_bytes_after),
            r.values_counted_not_in_file,
            r.slots_past_eof_in_last_page,
            match &r.print_after_error {
                Some(e) => format!("; disktable print now says: {e}"),
                None => String::new(),
            }
        ));
    }
    match r.prediction_held {
        Some(false) => s.push_str(&format!(
            " !! It predicted {}, which did not happen.",
            r.predicted_signal.as_deref().unwrap_or("no signal")
        )),
        Some(true) => s.push_str(" (As the writer predicted from its layout.)"),
        None => {}
    }
    s
}
