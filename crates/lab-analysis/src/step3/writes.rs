//! The lab's extension of step 3: writes to a `persist` table through its mapping, under
//! strace. `persist put --sync` into an existing table (stores into a `MAP_SHARED` mapping,
//! then `msync`), `persist load` into a fresh, tiny table that must grow many times
//! (`ftruncate` + `mremap`), and `persist put --private` (`MAP_PRIVATE`). After each, this
//! process reads the file with plain `read(2)` and looks for the new bytes.
use std::collections::BTreeSet;
use std::path::Path;

use lab_trace::fds::{self, WRITE_CALLS};
use lab_trace::Syscall;
use serde::{Deserialize, Serialize};

use crate::disktable::excerpt;
use crate::disktable::traced::Ended;
use crate::disktable::traced::TracedRun;
use crate::Block;

use persist::doc::{Loaded, Written};

pub const SHARED: &str = "shared.tbl";

pub const GROW: &str = "grow.tbl";

/// A traced write and what a plain read of the file found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Write {
    pub run: TracedRun,
    pub doc: Written,
    /// The new value was in the file (read with read(2)) before the write, and after it.
    pub in_file_before: bool,
    pub in_file_after: bool,
}

/// The load that grows a tiny table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Load {
    pub n: u64,
    pub created_bytes: u64,
    pub run: TracedRun,
    pub doc: Loaded,
    pub final_bytes: u64,
    /// `persist verify` of the grown table.
    pub verify: Ended,
    pub verify_output: String,
}

/// Everything the writes showed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    pub key: String,
    pub value: String,
    pub put: Write,
    pub load: Load,
    pub private_key: String,
    pub private_value: String,
    pub private: Write,
    /// `persist get` of the private key afterwards: how it ended and what it printed.
    pub lookup_after_private: Ended,
    pub lookup_after_private_output: String,
}

/// System calls of one traced write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Calls {
    pub write_calls_on_table: usize,
    /// Descriptors written that are not the table's.
    pub other_fds_written: BTreeSet<i64>,
    pub msync_calls: usize,
    pub ftruncate_calls: usize,
    /// mremaps, plus mmaps of the table after the first.
    pub remaps: usize,
    /// The first mmap's flags.
    pub map_flags: Option<String>,
}

fn calls_of<'a>(run: &'a TracedRun, table: &str) -> (Vec<&'a Syscall>, Calls) {
    let all = &run.trace.calls;
    let mine = fds::file_calls(all, |p| {
        Path::new(p).file_name().is_some_and(|n| n == table)
    });
    let calls = Calls {
        write_calls_on_table: fds::count(&mine, WRITE_CALLS),
        other_fds_written: all
            .iter()
            .filter(|c| WRITE_CALLS.contains(&c.name.as_str()))
            .filter(|c| !mine.iter().any(|m| std::ptr::eq(*m, *c)))
            .filter_map(|c| c.arg_i64(0))
            .collect(),
        msync_calls: fds::count(&mine, &["msync"]),
        ftruncate_calls: fds::count(&mine, &["ftruncate"]),
        remaps: fds::count(&mine, &["mremap"]) + fds::count(&mine, &["mmap"]).saturating_sub(1),
        map_flags: mine
            .iter()
            .find(|c| c.name == "mmap")
            .and_then(|c| c.args.get(3))
            .map(|s| s.trim().to_string()),
    };
    (mine, calls)
}

/// What the writes establish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub put: Calls,
    /// The value reached the file (absent before, present after, read with read(2)).
    pub shared_write_reached_file: bool,
    pub load: Calls,
    pub load_keys: u64,
    /// The lengths the load's ftruncates set, in order.
    pub file_lengths: Vec<u64>,
    pub created_bytes: u64,
    pub final_bytes: u64,
    pub rehashes: u64,
    pub grown_table_verifies: bool,
    pub private: Calls,
    /// What the private writer read back through its own mapping.
    pub private_readback: Option<String>,
    pub private_write_reached_file: bool,
    pub private_key_found_afterwards: bool,
    /// write/pwrite calls on the table in all three runs.
    pub write_calls_on_table: usize,
}

/// Decides, from the evidence alone.
pub fn analyze(e: &Evidence) -> Findings {
    let (_, put) = calls_of(&e.put.run, SHARED);
    let (load_calls, load) = calls_of(&e.load.run, GROW);
    let (_, private) = calls_of(&e.private.run, SHARED);
    Findings {
        shared_write_reached_file: !e.put.in_file_before && e.put.in_file_after,
        file_lengths: load_calls
            .iter()
            .filter(|c| c.name == "ftruncate")
            .filter_map(|c| c.arg_u64(1))
            .collect(),
        load_keys: e.load.n,
        created_bytes: e.load.created_bytes,
        final_bytes: e.load.final_bytes,
        rehashes: e.load.doc.write_stats.rehashes,
        grown_table_verifies: e.load.verify.success(),
        private_readback: e.private.doc.readback.clone(),
        private_write_reached_file: e.private.in_file_after,
        private_key_found_afterwards: e.lookup_after_private.success(),
        write_calls_on_table: put.write_calls_on_table
            + load.write_calls_on_table
            + private.write_calls_on_table,
        put,
        load,
        private,
    }
}

fn fd_names(fds: &BTreeSet<i64>) -> String {
    if fds.is_empty() {
        return "no descriptor".into();
    }
    fds.iter()
        .map(|fd| match fd {
            1 => "1 (stdout)".to_string(),
            2 => "2 (stderr)".to_string(),
            fd => format!("descriptor {fd}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The narrative.
pub fn explain(f: &Findings, e: &Evidence) -> Vec<Block> {
    let mut blocks = put_blocks(f, e);
    blocks.extend(load_blocks(f, e));
    blocks.extend(private_blocks(f, e));
    blocks.extend(answers(f));
    blocks
}

/// The traced calls on `table` of a run, at most `limit` lines.
fn shown(run: &TracedRun, table: &str, limit: usize) -> String {
    let (mine, _) = calls_of(run, table);
    excerpt(mine.iter().map(|c| c.raw.as_str()), limit)
}

fn put_blocks(f: &Findings, e: &Evidence) -> Vec<Block> {
    vec![
        Block::heading("persist put --sync: stores into a MAP_SHARED mapping"),
        Block::raw(
            "strace of persist put --sync: the table's descriptor and mapping",
            shown(&e.put.run, SHARED, 40),
        ),
        Block::text(format!(
            "=> {} write/pwrite on the table's descriptor (the process wrote only to {}), {} \
             msync. This process then read the file with plain read(): {:?} {}.",
            f.put.write_calls_on_table,
            fd_names(&f.put.other_fds_written),
            f.put.msync_calls,
            e.value,
            if f.shared_write_reached_file {
                "is in the file (it was not before the put): the stores reached the page cache"
            } else if e.put.in_file_before {
                "was already in the file before the put, so this proves nothing"
            } else {
                "is NOT in the file: this contradicts MAP_SHARED"
            }
        )),
    ]
}

fn load_blocks(f: &Findings, e: &Evidence) -> Vec<Block> {
    let growth_calls = {
        let (mine, _) = calls_of(&e.load.run, GROW);
        excerpt(
            mine.iter()
                .filter(|c| c.name == "ftruncate" || c.name == "mremap")
                .map(|c| c.raw.as_str()),
            12,
        )
    };
    vec![
        Block::heading(format!(
            "Growth: persist load of {} keys into a tiny table",
            f.load_keys
        )),
        Block::raw(
            "strace of persist load: ftruncate, then mremap",
            growth_calls,
        ),
        Block::text(format!(
            "=> the file grew {} times ({} ftruncate, {} remaps) from {} to {} bytes; {} \
             write/pwrite on its descriptor. Slot array rehashed {} times. persist verify: {}",
            f.file_lengths.len(),
            f.load.ftruncate_calls,
            f.load.remaps,
            f.created_bytes,
            f.final_bytes,
            f.load.write_calls_on_table,
            f.rehashes,
            e.load.verify_output
        )),
    ]
}

fn private_blocks(f: &Findings, e: &Evidence) -> Vec<Block> {
    vec![
        Block::heading("persist put --private: the MAP_PRIVATE contrast"),
        Block::raw(
            "strace of persist put --private",
            shown(&e.private.run, SHARED, 12),
        ),
        Block::text(format!(
            "=> mapped {}; inside that process the key read back as {:?}; {} writes on the \
             descriptor. Afterwards plain read() of the file {} {:?}, and a new `persist get` \
             says: {}",
            f.private.map_flags.as_deref().unwrap_or("(no mmap seen)"),
            f.private_readback.as_deref().unwrap_or(""),
            f.private.write_calls_on_table,
            if f.private_write_reached_file {
                "FINDS"
            } else {
                "does not find"
            },
            e.private_value,
            e.lookup_after_private_output
        )),
    ]
}

fn answers(f: &Findings) -> Vec<Block> {
    vec![
        Block::answer(
            "How does a write reach the file?",
            format!(
                "By stores into a MAP_SHARED mapping: {} write/pwrite calls on the table's \
                 descriptor in all traced runs, yet a plain read() by another process {} the new \
                 value{}.",
                f.write_calls_on_table,
                if f.shared_write_reached_file {
                    "saw"
                } else {
                    "did NOT see"
                },
                if f.put.msync_calls > 0 {
                    format!("; --sync added {} msync", f.put.msync_calls)
                } else {
                    String::new()
                }
            ),
        ),
        Block::answer(
            "What happens when the table is full?",
            format!(
                "The file is grown with ftruncate and remapped: {} ftruncate and {} remaps while \
                 loading {} keys, {} -> {} bytes{}.",
                f.load.ftruncate_calls,
                f.load.remaps,
                f.load_keys,
                f.created_bytes,
                f.final_bytes,
                if f.grown_table_verifies {
                    "; the grown table verifies"
                } else {
                    "; the grown table does NOT verify"
                }
            ),
        ),
        Block::answer(
            "What does MAP_PRIVATE change?",
            format!(
                "The writing process sees its change ({:?}) but the file does not: the value is \
                 {} in the file afterwards{}.",
                f.private_readback.as_deref().unwrap_or(""),
                if f.private_write_reached_file {
                    "present"
                } else {
                    "absent"
                },
                if f.private_write_reached_file {
                    " — this contradicts MAP_PRIVATE"
                } else {
                    ""
                }
            ),
        ),
    ]
}
