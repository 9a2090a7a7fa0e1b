//! `--program PATH [-- ARGS]`: someone else's reader (step 2) or writer (step 3), judged from
//! evidence. It runs under strace in a scratch directory holding a copy of the table as
//! `table.bin`; this module then reads from the trace whether it mapped the table and how many
//! read/write calls touched it, compares the numbers it printed with the file's values, checks
//! the file afterwards (did count grow by 300 with value\[i\] = i), and locates a crash.
use std::path::Path;

use lab_trace::fds;
use serde::{Deserialize, Serialize};

use super::fault::{self, Fault};
use super::table::TableState;
use super::traced::TracedRun;
use crate::Block;

/// The file name the program finds in its working directory.
pub const TABLE_NAME: &str = "table.bin";

/// What a writer run should add (the course's step 3).
pub const APPEND: i64 = 300;

/// Whether the program is judged as a reader (step 2) or a writer (step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Reader,
    Writer,
}

/// One run of someone else's program.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    pub role: Role,
    /// The program as given, and where it was found.
    pub path: String,
    pub page_size: u64,
    /// The table before the run, and (for a reader) value\[0..count) then.
    pub before: TableState,
    pub values_before: Vec<i32>,
    pub run: TracedRun,
    /// What it printed on stdout (at most 8 MiB).
    pub stdout: String,
    pub after: TableState,
}

/// Whether a path a program opened is the table: by its file name, so under `strace -y` (which
/// prints the file behind each descriptor, however it was opened) every route to it counts.
pub fn is_table(path: &str) -> bool {
    Path::new(path).file_name().is_some_and(|n| n == TABLE_NAME)
}

/// What the run establishes (the `program` object of `--json`'s findings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub role: Role,
    pub path: String,
    /// An openat/open of `table.bin` succeeded.
    pub opened_table: bool,
    /// A successful mmap of the table's descriptor.
    pub mapped_table: bool,
    pub mmap_calls_on_table: usize,
    pub read_calls_on_table: usize,
    pub write_calls_on_table: usize,
    pub ftruncate_calls_on_table: usize,
    pub mremap_calls_on_table: usize,
    /// Numbers found in its stdout.
    pub printed_numbers: usize,
    /// Whether value\[0..count) of the file (before the run) appears, in order, in what it
    /// printed.
    pub printed_all_values: bool,
    /// Whether it printed the values past `count` as well (it trusted the file's size, not count).
    pub printed_past_count: bool,
    pub count_before: Option<i64>,
    pub count_after: Option<i64>,
    /// count_after - count_before.
    pub count_grew_by: Option<i64>,
    /// After the run: value\[i\] = i for every i < count, and the file holds them all.
    pub values_ok: bool,
    pub file_bytes_before: u64,
    pub file_bytes_after: u64,
    /// For a writer: count grew by 300 and values_ok.
    pub appended_300: bool,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The signal that ended it.
    pub signal: Option<String>,
    /// si_addr of its SIGSEGV/SIGBUS ("0x…").
    pub fault_address: Option<String>,
    /// The fault against the table's mapping and the file's end.
    pub fault: Option<Fault>,
    /// The judgment the TA's check makes of such a program (steps 2, 3: filled in by the step
    /// from its further runs; `None` when they were not recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::verdict::Check>,
}

/// Decides, from the evidence alone.
pub fn analyze(e: &Evidence) -> Findings {
    let calls = fds::file_calls(&e.run.trace.calls, is_table);
    let count = |names: &[&str]| fds::count(&calls, names);
    let io = fds::io(&calls, is_table);
    let mmaps = calls.iter().filter(|c| c.name == "mmap" && c.ok()).count();
    let numbers = printed_numbers(&e.stdout);
    let file_values: Vec<i64> = e.values_before.iter().map(|v| i64::from(*v)).collect();
    // Only a reader's output is compared (a writer's evidence keeps no values).
    let matched = match e.role {
        Role::Reader => numbers.iter().find(|seq| contains_run(seq, &file_values)),
        Role::Writer => None,
    };
    let printed_all_values = matched.is_some();
    // Printed as many numbers as the file has room for, from value[0] on: it trusted the
    // file's size, not count.
    let printed_past_count = matched.is_some()
        && e.before.capacity() > file_values.len() as u64
        && numbers.iter().any(|seq| {
            find_run(seq, &file_values)
                .is_some_and(|start| (seq.len() - start) as u64 >= e.before.capacity())
        });
    let grew_by = match (e.before.count, e.after.count) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    let values_ok = e.after.values_are_indices();
    let fault = fault::locate(&e.run.trace, is_table, e.before.file_bytes, e.page_size);
    Findings {
        role: e.role,
        path: e.path.clone(),
        opened_table: calls
            .iter()
            .any(|c| matches!(c.name.as_str(), "openat" | "open" | "creat") && c.ok()),
        mapped_table: mmaps > 0,
        mmap_calls_on_table: mmaps,
        read_calls_on_table: io.reads,
        write_calls_on_table: io.writes,
        ftruncate_calls_on_table: count(&["ftruncate"]),
        mremap_calls_on_table: count(&["mremap"]),
        // Counted the way that found the values (per line for `value[3] = 3`).
        printed_numbers: matched.or(numbers.first()).map_or(0, Vec::len),
        printed_all_values,
        printed_past_count,
        count_before: e.before.count,
        count_after: e.after.count,
        count_grew_by: grew_by,
        values_ok,
        file_bytes_before: e.before.file_bytes,
        file_bytes_after: e.after.file_bytes,
        appended_300: grew_by == Some(APPEND) && values_ok,
        exit_code: e.run.ended.code,
        timed_out: e.run.ended.timed_out,
        signal: e.run.ended.signal.clone(),
        fault_address: fault.as_ref().map(|f| format!("{:#x}", f.address)),
        fault,
        verdict: None,
    }
}

/// The integers a program printed, read two ways: every integer in order, and the last integer
/// of each line (for `value[3] = 3`). Tokens are maximal runs of digits with an optional `-`.
pub fn printed_numbers(stdout: &str) -> [Vec<i64>; 2] {
    let ints = |s: &str| -> Vec<i64> {
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let neg = bytes[i] == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if bytes[i].is_ascii_digit() || neg {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if let Ok(v) = s[start..i].parse() {
                    out.push(v);
                }
            } else {
                i += 1;
            }
        }
        out
    };
    let all = ints(stdout);
    let last_per_line = stdout
        .lines()
        .filter_map(|l| ints(l).last().copied())
        .collect();
    [all, last_per_line]
}

fn find_run(hay: &[i64], needle: &[i64]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains_run(hay: &[i64], needle: &[i64]) -> bool {
    find_run(hay, needle).is_some()
}

/// The narrative for the program's run.
pub fn explain(f: &Findings, e: &Evidence) -> Vec<Block> {
    let mut blocks = vec![Block::heading(format!(
        "Your {}: {}",
        match f.role {
            Role::Reader => "reader",
            Role::Writer => "writer",
        },
        e.run.command()
    ))];
    let calls = fds::file_calls(&e.run.trace.calls, is_table);
    let mut shown: String = calls
        .iter()
        .take(40)
        .map(|c| format!("{}\n", c.raw))
        .collect();
    if calls.len() > 40 {
        shown.push_str(&format!("... {} more\n", calls.len() - 40));
    }
    for s in &e.run.trace.signals {
        shown.push_str(&format!("{}\n", s.raw));
    }
    blocks.push(Block::evidence(
        "strace: every call on table.bin's descriptor and mapping",
        if shown.is_empty() {
            "(no call touched table.bin)\n".to_string()
        } else {
            shown
        },
    ));
    let access = if !f.opened_table {
        "It never opened table.bin.".to_string()
    } else if f.mapped_table {
        format!(
            "It mapped table.bin ({} mmap) and made {} read and {} write calls on it{}.",
            f.mmap_calls_on_table,
            f.read_calls_on_table,
            f.write_calls_on_table,
            if f.read_calls_on_table + f.write_calls_on_table == 0 {
                ": everything went through the mapping"
            } else {
                ": not only through the mapping"
            }
        )
    } else {
        format!(
            "It did NOT map table.bin: {} read and {} write calls on its descriptor.",
            f.read_calls_on_table, f.write_calls_on_table
        )
    };
    blocks.push(Block::answer("How did it reach the table?", access));
    let count_before = f.count_before.map_or("?".into(), |c| c.to_string());
    let printed = printed_answer(f);
    if f.role == Role::Reader {
        blocks.push(Block::answer(
            "Did it print every value of the table?",
            printed,
        ));
    }
    if f.role == Role::Writer {
        let grew = match f.count_grew_by {
            Some(d) => format!(
                "count {count_before} -> {} ({d:+}); {}: {}; \
                 the file {} -> {} bytes ({} ftruncate, {} mremap).{}",
                f.count_after.map_or("?".into(), |c| c.to_string()),
                if f.verdict.is_some() {
                    "the values it added equal their index and earlier values are unchanged"
                } else {
                    "value[i] = i for every i < count"
                },
                if f.values_ok { "yes" } else { "NO" },
                f.file_bytes_before,
                f.file_bytes_after,
                f.ftruncate_calls_on_table,
                f.mremap_calls_on_table,
                if f.appended_300 {
                    " It added exactly 300 values."
                } else {
                    " That is not 300 more values with value[i] = i."
                }
            ),
            None => "The file has no count after the run.".into(),
        };
        blocks.push(Block::answer(
            "Did count grow by 300 with value[i] = i?",
            grew,
        ));
    }
    blocks.push(Block::answer("Did it crash?", crash_answer(f)));
    if let Some(v) = &f.verdict {
        blocks.extend(v.blocks("this program"));
    }
    blocks
}

/// "Did it print every value of the table?": a reader that went on past count, or that the
/// check failed on another table, is not a plain yes.
fn printed_answer(f: &Findings) -> String {
    let count_before = f.count_before.map_or("?".into(), |c| c.to_string());
    let failed = f
        .verdict
        .as_ref()
        .filter(|v| v.verdict == crate::verdict::Verdict::Fail);
    if f.printed_past_count {
        format!(
            "No: the {count_before} values of the file appear in order among the {} numbers it \
             printed, and it went on past count: it trusted the file's size, not count.",
            f.printed_numbers
        )
    } else if let (true, Some(v)) = (f.printed_all_values, failed) {
        format!(
            "On this table yes (the {count_before} values appear in order among the {} numbers \
             it printed), but not on every table: {}.",
            f.printed_numbers, v.reason
        )
    } else if f.printed_all_values {
        format!(
            "Yes: the {count_before} values of the file appear in order among the {} numbers it \
             printed.",
            f.printed_numbers
        )
    } else {
        format!(
            "No: it printed {} numbers; value[0..{count_before}) of the file does not appear \
             among them in order.",
            f.printed_numbers
        )
    }
}

fn crash_answer(f: &Findings) -> String {
    if f.timed_out {
        return "It was still running after 30 s and was killed.".into();
    }
    let Some(sig) = &f.signal else {
        return format!(
            "No: it exited with status {}.",
            f.exit_code.map_or("?".into(), |c| c.to_string())
        );
    };
    match &f.fault {
        Some(fault) => describe_fault(sig, fault),
        None => format!("It was killed by {sig} (no fault address in the trace)."),
    }
}

/// `N bytes past WHAT` or `N bytes before WHAT`, for a signed distance.
pub fn relative(d: Option<i64>, what: &str) -> String {
    match d {
        Some(d) if d >= 0 => format!("{d} bytes past {what}"),
        Some(d) => format!("{} bytes before {what}", -d),
        None => format!("? from {what}"),
    }
}

/// One sentence on a fault: the address against the mapping's and the file's end, and why.
pub fn describe_fault(signal: &str, f: &Fault) -> String {
    let rel = relative;
    format!(
        "Yes: {signal} ({}) at {:#x}, {} and {} ({} bytes; mapping {}). {}: {}.",
        f.code.as_deref().unwrap_or("no si_code"),
        f.address,
        rel(f.past_map_end, "the end of the mapping"),
        rel(f.past_file_end, "the end of the file"),
        f.file_bytes,
        f.mapping.map_or("not seen".into(), |m| format!(
            "{:#x}, {} bytes",
            m.start, m.len
        )),
        if f.as_expected {
            "As expected"
        } else {
            "NOT what the page rule predicts"
        },
        f.region.why()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threads_pread_under_strace_y_is_a_read_of_the_table() {
        use super::super::traced::{Ended, TracedRun};
        let state = TableState {
            file_bytes: 48,
            count: Some(5),
            index_prefix: 5,
        };
        let trace = lab_trace::strace::parse_trace(
            "\
20 openat(AT_FDCWD</w>, \"table.bin\", O_RDONLY) = 3</w/table.bin>
20 mmap(NULL, 48, PROT_READ, MAP_SHARED, 3</w/table.bin>, 0) = 0x7f0000000000
21 pread64(3</w/table.bin>, \"\\5\"..., 48, 0) = 48
22 copy_file_range(3</w/table.bin>, [0], 5</w/copy>, [0], 48, 0) = 48
20 write(1<pipe:[9]>, \"0 1 2 3 4\\n\", 10) = 10
20 +++ exited with 0 +++
",
        );
        let e = Evidence {
            role: Role::Reader,
            path: "reader".into(),
            page_size: 4096,
            before: state.clone(),
            values_before: vec![0, 1, 2, 3, 4],
            run: TracedRun {
                argv: vec!["reader".into()],
                ended: Ended {
                    code: Some(0),
                    signal: None,
                    timed_out: false,
                },
                stderr: String::new(),
                trace,
            },
            stdout: "0 1 2 3 4\n".into(),
            after: state,
        };
        let f = analyze(&e);
        assert!(f.mapped_table && f.printed_all_values);
        assert_eq!((f.read_calls_on_table, f.write_calls_on_table), (2, 0));
        let text = format!("{:?}", explain(&f, &e));
        assert!(
            text.contains("made 2 read and 0 write calls on it: not only through the mapping"),
            "{text}"
        );
    }

    #[test]
    fn numbers_are_read_per_token_and_per_line() {
        let [all, last] = printed_numbers("count = 3\nvalue[0] = 0\nvalue[1] = 1\nvalue[2] = 2\n");
        assert_eq!(all, [3, 0, 0, 1, 1, 2, 2]);
        assert_eq!(last, [3, 0, 1, 2]);
        assert!(contains_run(&last, &[0, 1, 2]));
        assert!(!contains_run(&all, &[0, 1, 2]));
        let [all, _] = printed_numbers("0 1 2 -7\n");
        assert_eq!(all, [0, 1, 2, -7]);
        assert!(contains_run(&all, &[]));
    }
}
