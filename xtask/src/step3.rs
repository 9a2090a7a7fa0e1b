//! Step 3: write to a persistent data structure with mmap.
//!
//! Under strace: `persist put --sync` into an existing table (stores into a `MAP_SHARED`
//! mapping, then `msync`), a `persist load` into a fresh, tiny table that must grow many times
//! (`ftruncate` + `mremap`), and `persist put --private` (`MAP_PRIVATE`). After each, this
//! process reads the file with plain `read(2)` and looks for the new bytes. Every count printed
//! is computed from the traces and the file's bytes.
//!
//! `data` shape (for the report's picture):
//! `{"write_calls_on_table_fd":N,"msync_calls":N,"ftruncate_calls":N,"mremap_or_remaps":N,
//!   "private_write_reached_file":bool,"shared_write_reached_file":bool}`
//! (plus `"file_lengths"`: the lengths the load's ftruncates set, in order).

use std::path::Path;

use anyhow::{bail, Context as _};
use serde_json::json;

use crate::model::{Answer, Ctx, Evidence, StepReport};
use crate::out;
use crate::say;
use crate::step2::{persist, persist_any, sample_tsv, table_calls, Rng, WRITE_CALLS};
use crate::strace::{self, Syscall};

const FILTER: &str = "openat,close,mmap,munmap,mremap,msync,ftruncate,fallocate,flock,fsync,\
                      fdatasync,write,pwrite64,writev,pwritev,pwritev2,read,pread64";

/// Whether `needle` occurs in the file, read with plain `read(2)` (std::fs::read).
fn file_contains(path: &Path, needle: &[u8]) -> anyhow::Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes.windows(needle.len()).any(|w| w == needle))
}

struct Counts {
    writes: usize,
    /// Descriptors written that are not the table's.
    other_fds: std::collections::BTreeSet<i64>,
    msyncs: usize,
    ftruncates: usize,
    remaps: usize,
}

fn count(calls: &[Syscall], mine: &[&Syscall]) -> Counts {
    let is = |c: &&Syscall, names: &[&str]| names.contains(&c.name.as_str());
    let writes = mine.iter().filter(|c| is(c, WRITE_CALLS)).count();
    Counts {
        writes,
        other_fds: calls
            .iter()
            .filter(|c| is(c, WRITE_CALLS) && !mine.iter().any(|m| std::ptr::eq(*m, *c)))
            .filter_map(|c| c.arg_i64(0))
            .collect(),
        msyncs: mine.iter().filter(|c| c.name == "msync").count(),
        ftruncates: mine.iter().filter(|c| c.name == "ftruncate").count(),
        // A remap is an mremap, or a second mmap of the same descriptor.
        remaps: mine.iter().filter(|c| c.name == "mremap").count()
            + mine
                .iter()
                .filter(|c| c.name == "mmap")
                .count()
                .saturating_sub(1),
    }
}

fn fd_names(fds: &std::collections::BTreeSet<i64>) -> String {
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

fn show(calls: &[&Syscall], limit: usize) -> String {
    let mut s = String::new();
    for c in calls.iter().take(limit) {
        s.push_str(&c.raw);
        s.push('\n');
    }
    if calls.len() > limit {
        s.push_str(&format!("... {} more\n", calls.len() - limit));
    }
    s
}

pub fn run(ctx: &Ctx) -> anyhow::Result<StepReport> {
    strace::check()?;
    ctx.build_release(&["persist"])?;
    let scratch = ctx.scratch("step3")?;
    let bin = ctx.bin("persist");
    let mut rng = Rng::seeded_from_clock();
    let tag = format!("{:08x}", rng.next() as u32);

    // --- 1. put --sync through MAP_SHARED -------------------------------------------------
    out::subheading("put --sync: store into a MAP_SHARED mapping");
    let table = scratch.path().join("shared.tbl");
    let t = table.to_string_lossy().into_owned();
    persist(ctx, &["create", &t], None)?;
    persist(ctx, &["load", &t], Some(&sample_tsv(100)))?;
    let (key, value) = (
        format!("lab-key-{tag}"),
        format!("written-through-mmap-{tag}"),
    );
    let before = file_contains(&table, value.as_bytes())?;
    let traced = strace::run(
        &bin,
        ["--json", "put", "--sync", &t, &key, &value],
        FILTER,
        scratch.path(),
    )?;
    if !traced.status.success() {
        bail!("persist put failed under strace: {}", traced.stderr.trim());
    }
    let put_calls = table_calls(&traced.calls, &table);
    let put = count(&traced.calls, &put_calls);
    let shared_reached = !before && file_contains(&table, value.as_bytes())?;
    let put_trace = show(&put_calls, 40);
    say!("System calls on the table's descriptor and mapping:");
    for line in put_trace.lines() {
        say!("  {line}");
    }
    say!(
        "=> {} write/pwrite on the table's descriptor (the process wrote only to {}), {} msync.",
        put.writes,
        fd_names(&put.other_fds),
        put.msyncs
    );
    say!(
        "This process then read the file with plain read(): {:?} {}.",
        value,
        if shared_reached {
            "is in the file (it was not before the put): the stores reached the page cache"
        } else if before {
            "was already in the file before the put, so this proves nothing"
        } else {
            "is NOT in the file: this contradicts MAP_SHARED"
        }
    );
    if put.msyncs == 0 {
        say!("!! --sync was given but the trace shows no msync.");
    }

    // --- 2. growth ------------------------------------------------------------------------
    let n: u64 = if ctx.quick { 20_000 } else { 50_000 };
    out::subheading(&format!("Growth: load {n} keys into a fresh table"));
    let grow = scratch.path().join("grow.tbl");
    let g = grow.to_string_lossy().into_owned();
    persist(ctx, &["create", "--slots", "8", &g], None)?;
    let created_len = std::fs::metadata(&grow)?.len();
    let tsv = sample_tsv(n);
    let tsv_path = scratch.path().join("grow.tsv");
    std::fs::write(&tsv_path, &tsv)?;
    let out_path = scratch.path().join("load.strace");
    let status = strace::command(&bin, ["--json", "load", &g], FILTER, &out_path)
        .stdin(std::fs::File::open(&tsv_path)?)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .context("cannot run persist load under strace")?;
    if !status.status.success() {
        bail!(
            "persist load failed under strace: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        );
    }
    let load_json: serde_json::Value =
        serde_json::from_slice(&status.stdout).context("persist load printed invalid JSON")?;
    let load_all = strace::parse_file(&out_path)?;
    let load_calls = table_calls(&load_all, &grow);
    let load = count(&load_all, &load_calls);
    let lengths: Vec<u64> = load_calls
        .iter()
        .filter(|c| c.name == "ftruncate")
        .filter_map(|c| c.arg_u64(1))
        .collect();
    let final_len = std::fs::metadata(&grow)?.len();
    let growth: Vec<&Syscall> = load_calls
        .iter()
        .copied()
        .filter(|c| c.name == "ftruncate" || c.name == "mremap")
        .collect();
    say!("The first growth steps (ftruncate, then mremap to the new length):");
    for line in show(&growth, 8).lines() {
        say!("  {line}");
    }
    say!(
        "=> the file grew {} times ({} ftruncate, {} remaps) from {created_len} to {final_len} \
         bytes; {} write/pwrite on its descriptor during {n} puts. Slot array rehashed {} times.",
        lengths.len(),
        load.ftruncates,
        load.remaps,
        load.writes,
        load_json["write_stats"]["rehashes"]
    );
    let verify = persist_any(ctx, &["verify", &g], None)?;
    say!(
        "persist verify: {}",
        String::from_utf8_lossy(if verify.status.success() {
            &verify.stdout
        } else {
            &verify.stderr
        })
        .trim()
    );
    if !verify.status.success() {
        bail!("the grown table does not verify");
    }

    // --- 3. MAP_PRIVATE contrast ------------------------------------------------------------
    out::subheading("put --private: the MAP_PRIVATE contrast");
    let (pkey, pvalue) = (format!("private-key-{tag}"), format!("private-value-{tag}"));
    let ptraced = strace::run(
        &bin,
        ["--json", "put", "--private", &t, &pkey, &pvalue],
        FILTER,
        scratch.path(),
    )?;
    if !ptraced.status.success() {
        bail!("persist put --private failed: {}", ptraced.stderr.trim());
    }
    let pjson: serde_json::Value =
        serde_json::from_str(&ptraced.stdout).context("persist put printed invalid JSON")?;
    let pcalls = table_calls(&ptraced.calls, &table);
    let pcount = count(&ptraced.calls, &pcalls);
    let pmmap = pcalls.iter().find(|c| c.name == "mmap");
    let readback = pjson["readback"].as_str().unwrap_or("");
    let private_reached = file_contains(&table, pvalue.as_bytes())?;
    let lookup = persist_any(ctx, &["get", &t, &pkey], None)?;
    for line in show(&pcalls, 12).lines() {
        say!("  {line}");
    }
    say!(
        "=> mapped {}; inside that process the key read back as {readback:?}; {} writes on the \
         descriptor.",
        pmmap
            .and_then(|m| m.args.get(3))
            .map(String::as_str)
            .unwrap_or("(no mmap seen)"),
        pcount.writes
    );
    say!(
        "Afterwards, plain read() of the file {} {pvalue:?}, and a new `persist get` says: {}",
        if private_reached {
            "FINDS"
        } else {
            "does not find"
        },
        String::from_utf8_lossy(if lookup.status.success() {
            &lookup.stdout
        } else {
            &lookup.stderr
        })
        .trim()
    );
    if private_reached {
        say!("!! The private write reached the file: this contradicts MAP_PRIVATE.");
    }

    let write_calls = put.writes + load.writes + pcount.writes;
    let answers = vec![
        Answer {
            question: "How does a write reach the file?".into(),
            answer: format!(
                "By stores into a MAP_SHARED mapping: {write_calls} write/pwrite calls on the \
                 table's descriptor in all traced runs, yet a plain read() by another process \
                 {} the new value{}.",
                if shared_reached { "saw" } else { "did NOT see" },
                if put.msyncs > 0 {
                    format!("; --sync added {} msync", put.msyncs)
                } else {
                    String::new()
                }
            ),
        },
        Answer {
            question: "What happens when the table is full?".into(),
            answer: format!(
                "The file is grown with ftruncate and remapped: {} ftruncate and {} remaps \
                 while loading {n} keys, {created_len} -> {final_len} bytes.",
                load.ftruncates, load.remaps
            ),
        },
        Answer {
            question: "What does MAP_PRIVATE change?".into(),
            answer: format!(
                "The writing process sees its change ({readback:?}) but the file does not: \
                 the value is {} in the file afterwards.",
                if private_reached { "present" } else { "absent" }
            ),
        },
    ];
    Ok(crate::model::legacy(
        3,
        "Write to a persistent data structure with mmap",
        answers,
        vec![
            Evidence {
                title: "strace of persist put --sync (table descriptor and mapping)".into(),
                text: put_trace,
            },
            Evidence {
                title: format!("strace of persist load ({n} keys): growth"),
                text: show(&growth, 60),
            },
            Evidence {
                title: "strace of persist put --private".into(),
                text: show(&pcalls, 40),
            },
        ],
        json!({
            "write_calls_on_table_fd": write_calls,
            "msync_calls": put.msyncs + load.msyncs + pcount.msyncs,
            "ftruncate_calls": load.ftruncates,
            "mremap_or_remaps": load.remaps,
            "private_write_reached_file": private_reached,
            "shared_write_reached_file": shared_reached,
            "file_lengths": lengths,
        }),
    ))
}
