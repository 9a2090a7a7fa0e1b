//! `disktable`: the course's steps 2 and 3 — `struct disktable { long count; int value[]; }` in
//! a file, printed and extended through `mmap(2)` only — and the first attempt that crashes.
//!
//! `disktable create --course table.bin` makes a table shaped like the course's (count 1083,
//! 114,340 bytes, more values after count, then zeros); `disktable print table.bin` prints
//! value\[0..count), its length from `fstat(2)`, through one read-only mapping; `disktable
//! append table.bin` adds 300 values, growing the file with `ftruncate` + `mremap` only when its
//! capacity runs out; `disktable append --naive table.bin` is the first attempt that maps the
//! file and stores past its end. The format and the JSON documents live in
//! [`persist::disktable`]; `cargo xtask run-step 2` and `3` trace these commands.
//!
//! A production tool would refuse files without a magic number, and `msync` before reporting an
//! append as done.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use persist::disktable::{
    self, Advice, AppendReport, CreateReport, NaiveMode, NaivePlan, PrintReport, Shape, Table,
};

const EXAMPLES: &str = "\
The file: struct disktable { long count; int value[]; } - an 8-byte count, then 4-byte ints,
little-endian. A valid table holds at least `count` values: 8 + 4 x count <= its length.

Examples:
  disktable create --course table.bin     # like the course's: count 1083, 114340 bytes
  disktable print table.bin               # value[0..count), one per line
  disktable print --json table.bin        # {\"count\", \"capacity\", \"values\", ...}
  disktable append table.bin              # 300 more; grows only when capacity runs out
  disktable append --json table.bin 30000 # {\"count_before\", \"count_after\", \"grew\", ...}
  disktable append --naive table.bin      # the first attempt: stores past the file's end
  strace -e trace=openat,fstat,mmap,mremap,ftruncate,read,write disktable append table.bin

A FIFO, directory, device or socket is refused at once (exit 1). create and append reserve
their space first (fallocate): on a full disk they say so and leave nothing behind (create
removes its file; append leaves the table as it was). print streams, whatever the count.

Exit status: 0 success; 1 runtime failure (not a valid disktable, not a regular file, no space
left, I/O); 2 usage error.
The naive writer dies of SIGSEGV or SIGBUS on purpose when its stores leave the file.";

const APPEND_EXAMPLES: &str = "\
Examples (on a table made by `disktable create --course table.bin`):
  disktable append table.bin                       # 300 more (value[i] = i)
  disktable append --json table.bin 27500          # exactly to capacity: no growth
  disktable append --naive table.bin 27800         # killed by SIGSEGV past the mapping's end
  disktable append --naive=beyond table.bin 27800  # killed by SIGBUS in a page past EOF
  disktable append --naive=tail table.bin 27800    # exits 0; 87 values past EOF are lost
  strace -e trace=mmap,munmap disktable append --naive table.bin 27800  # signal, si_addr";

const NAIVE_HELP: &str = "\
The first attempt at step 3, kept to show why it crashes. It maps the file (MAP_SHARED; no
ftruncate, no mremap, no lock) and runs `t->value[t->count] = t->count; t->count++;` N times
with plain machine stores. Before the first store it prints on stderr the mapping's address
range, where the file ends in it, and which store will fault with which signal (with --json,
that layout is the JSON document, printed before storing). Core dumps are disabled first.
While the stores stay inside the file all is well. Past the file's end:
  file    map the file's length (fstat). Stores in the mapping's last page past EOF land in
          memory but are never saved; the first store past the mapping's end raises SIGSEGV
          (the page after the mapping is kept unmapped, so it faults rather than landing in
          whatever the kernel placed there).
  beyond  map the length count+N values need, more than the file (a second mmap once the
          count is known). The first store into a page wholly past EOF raises SIGBUS.
  tail    like file, but stop at the mapping's end: every store past EOF lands, the program
          exits 0, the count in the file grows, and the file does not: it now claims values
          it does not hold (print reports it as not valid).
On the course's table (count 1083, room for 28583) the first 91 runs of 300 fit; the 92nd
reaches the end. `disktable append --naive table.bin 27800` gets there at once.";

/// The course's table.bin (struct disktable { long count; int value[]; }), through mmap only.
#[derive(Parser)]
#[command(name = "disktable", version, after_help = EXAMPLES, arg_required_else_help = false)]
struct Cli {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new table (the file must not exist), written through a MAP_SHARED mapping.
    ///
    /// Without options: count 0 in one page.
    /// --course: like the course's table.bin (count 1083, value[i] = i for i < 8000, then
    /// zeros; 114340 bytes, room for 28583 values).
    #[command(verbatim_doc_comment)]
    Create {
        /// The new table file.
        file: PathBuf,
        /// Shape it like the course's table.bin.
        #[arg(long, conflicts_with_all = ["count", "fill", "file_bytes", "capacity"])]
        course: bool,
        /// The count stored in the file.
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// Store value[i] = i for i < FILL (at least --count; the rest is zeros).
        #[arg(long)]
        fill: Option<u64>,
        /// The file's length in bytes [default: whole pages, enough for the values].
        #[arg(long, conflicts_with = "capacity")]
        file_bytes: Option<u64>,
        /// Room for this many values: --file-bytes 8 + 4 x CAPACITY.
        #[arg(long)]
        capacity: Option<u64>,
    },
    /// Print value[0..count), one per line, through one read-only mapping.
    Print {
        /// The table file.
        file: PathBuf,
        /// First drop the file's pages from the page cache (fsync, then posix_fadvise
        /// DONTNEED), so the resident page counts in --json show what this print read in.
        #[arg(long)]
        evict: bool,
        /// The madvise(2) hint for the mapping (random: read in only the touched pages).
        #[arg(long, value_enum, default_value_t = AdviceArg::Normal)]
        advice: AdviceArg,
        /// Testing aid: after mapping, print `mapped` on stderr and wait for a line on stdin.
        #[arg(long, hide = true)]
        pause_after_map: bool,
    },
    /// Append N values, value[i] = i, growing the file (ftruncate + mremap) only when full.
    #[command(after_help = APPEND_EXAMPLES)]
    Append {
        /// The table file.
        file: PathBuf,
        /// How many values to add.
        #[arg(default_value_t = disktable::DEFAULT_APPEND)]
        n: u64,
        /// Run the naive writer instead (MODE: file, the default; beyond; tail). It crashes on
        /// purpose: see `disktable append --help`.
        #[arg(long, value_name = "MODE", value_enum, num_args = 0..=1, require_equals = true,
              default_missing_value = "file", long_help = NAIVE_HELP)]
        naive: Option<NaiveArg>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AdviceArg {
    Normal,
    Random,
    Sequential,
}

#[derive(Clone, Copy, ValueEnum)]
enum NaiveArg {
    File,
    Beyond,
    Tail,
}

fn main() -> ExitCode {
    let cli: Cli = match lab_cli::parse() {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    match run(cli) {
        Ok(status) => status,
        Err(e) => {
            // `disktable print t.bin | head`: a closed stdout is not worth an error.
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A usage error found after parsing: one line, exit 2, like clap's own.
fn usage(command: &str, problem: &str) -> ExitCode {
    eprintln!("error: {problem} (see 'disktable {command} --help')");
    ExitCode::from(2)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every command reports on stdout: refuse a closed one (`>&-`, which Rust's runtime would
    // quietly point at /dev/null) before the table is made or read (see lab_cli::out).
    lab_cli::out::stdout_usable().context(WRITE_ERR)?;
    // Past `ulimit -f` a write fails with EFBIG (one error line), not SIGXFSZ.
    lab_cli::out::ignore_file_size_signal().context("cannot ignore SIGXFSZ")?;
    match cli.cmd {
        Cmd::Create {
            file,
            course,
            count,
            fill,
            file_bytes,
            capacity,
        } => {
            let shape = if course {
                Ok(Shape::COURSE)
            } else {
                let file_bytes = match capacity {
                    Some(c) => match disktable::bytes_needed(c) {
                        Some(b) => Some(b),
                        None => {
                            return Ok(usage("create", &format!("--capacity {c} is too large")))
                        }
                    },
                    None => file_bytes,
                };
                Shape::new(count, fill, file_bytes)
            };
            let shape = match shape {
                Ok(s) => s,
                Err(problem) => return Ok(usage("create", &problem)),
            };
            let report = disktable::create(&file, shape)?;
            if cli.json {
                print_json(&report)?;
            } else {
                print_text(&created(&file, &report))?;
            }
        }
        Cmd::Print {
            file,
            evict,
            advice,
            pause_after_map,
        } => {
            if evict {
                disktable::evict(&file)?;
            }
            let advice = match advice {
                AdviceArg::Normal => Advice::Normal,
                AdviceArg::Random => Advice::Random,
                AdviceArg::Sequential => Advice::Sequential,
            };
            let table = Table::open_read(&file, advice)?;
            if pause_after_map {
                eprintln!("mapped");
                let mut line = String::new();
                io::stdin()
                    .read_line(&mut line)
                    .context("cannot read stdin")?;
            }
            if cli.json {
                print_values_json(&table)?;
            } else {
                print_values(&table)?;
            }
        }
        Cmd::Append { file, n, naive } => match naive {
            None => {
                let report = disktable::append(&file, n)?;
                if cli.json {
                    print_json(&report)?;
                } else {
                    print_text(&appended(&report))?;
                }
            }
            Some(mode) => {
                let mode = match mode {
                    NaiveArg::File => NaiveMode::File,
                    NaiveArg::Beyond => NaiveMode::Beyond,
                    NaiveArg::Tail => NaiveMode::Tail,
                };
                let json = cli.json;
                let outcome = disktable::naive_append(&file, n, mode, |plan| {
                    for line in announce(&file, plan) {
                        eprintln!("naive append: {line}");
                    }
                    if json {
                        print_json(plan)
                    } else {
                        Ok(())
                    }
                })?;
                eprintln!(
                    "naive append: survived {} stores; {} of them past the end of the file read \
                     back from the mapping; the file is {} bytes (fstat), count is now {}",
                    outcome.stores,
                    outcome.past_eof_read_back,
                    outcome.file_bytes_after,
                    outcome.count_after
                );
                if !json {
                    print_text(&format!("count is now {}\n", outcome.count_after))?;
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// The naive writer's layout, for a human, before it stores.
fn announce(file: &std::path::Path, p: &NaivePlan) -> Vec<String> {
    let mut lines = vec![
        format!(
            "{} is {} bytes (fstat): room for {} values, count {}",
            file.display(),
            p.file_bytes,
            p.capacity,
            p.count_before
        ),
        format!(
            "mode {}: mmap {} bytes MAP_SHARED at {}-{} ({} pages; no ftruncate, no mremap)",
            p.mode.name(),
            p.map_len,
            p.map_start,
            p.map_end,
            p.map_end_offset / p.page_size
        ),
        format!(
            "the file ends at {} (offset {}); its last page ends at {}; the page after the \
             mapping is {}",
            p.file_end,
            p.file_bytes,
            p.first_page_past_eof,
            if p.page_after_mapping_mapped {
                "mapped"
            } else {
                "unmapped"
            }
        ),
        format!(
            "storing value[{}..{}): {} inside the file, then {} past its end in its last page \
             (these land in memory but are never saved)",
            p.count_before,
            p.count_before + p.stores,
            p.stores_in_file,
            p.stores_past_eof_in_last_page
        ),
    ];
    match (&p.expected_signal, &p.fault_address, p.fault_index) {
        (Some(sig), Some(addr), Some(i)) => lines.push(format!(
            "expect {sig} at the store of value[{i}] at {addr} (offset {}): {}",
            p.fault_offset.unwrap_or(0),
            if sig == "SIGBUS" {
                "a mapped page wholly past the end of the file"
            } else {
                "past the end of the mapping"
            }
        )),
        _ => lines.push("every store has a page behind it: expect no signal".into()),
    }
    lines
}

fn created(file: &std::path::Path, r: &CreateReport) -> String {
    format!(
        "created {}: count {}, value[i] = i for i < {}, {} bytes (room for {} values)\n",
        file.display(),
        r.count,
        r.filled,
        r.file_bytes,
        r.capacity
    )
}

fn appended(r: &AppendReport) -> String {
    let mut s = format!("count {} -> {}; ", r.count_before, r.count_after);
    if r.grew {
        s.push_str(&format!(
            "capacity {} ran out: ftruncate {} -> {} bytes, mremap {} -> {}{}\n",
            r.capacity_before,
            r.file_bytes_before,
            r.file_bytes,
            r.map_address_before,
            r.map_address_after,
            if r.moved { " (moved)" } else { " (in place)" }
        ));
    } else {
        s.push_str(&format!(
            "no growth: {} bytes hold {} values\n",
            r.file_bytes, r.capacity_after
        ));
    }
    s
}

/// Streams what `write` writes to stdout through a 64 KiB buffer. If `write` fails (the table
/// shrank under the mapping, stdout closed), what is still buffered is dropped, not flushed: a
/// print that fails early prints nothing, one that fails late stops mid-way (its JSON is then
/// not a complete document), and in both cases the exit status says so.
fn stream_stdout(
    write: impl FnOnce(&mut BufWriter<io::StdoutLock<'static>>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let done = write(&mut out).and_then(|()| out.flush().context(WRITE_ERR));
    if done.is_err() {
        let _ = out.into_parts();
    }
    done
}

const WRITE_ERR: &str = "cannot write to stdout";

/// `print`: value\[0..count), one per line, streamed chunk by chunk from the mapping.
fn print_values(table: &Table) -> anyhow::Result<()> {
    stream_stdout(|out| {
        table.for_each_chunk(|chunk| {
            for v in chunk {
                writeln!(out, "{v}").context(WRITE_ERR)?;
            }
            Ok(())
        })
    })
}

/// `print --json`: the [`PrintReport`] document, its values streamed as [`print_values`] streams
/// the text (never collected: a count of 2^33 would need 34 GB).
fn print_values_json(table: &Table) -> anyhow::Result<()> {
    let report = |resident_pages_after| PrintReport {
        count: table.count(),
        capacity: table.capacity(),
        values: Vec::new(),
        file_bytes: table.file_bytes(),
        map_address: disktable::fmt_hex(table.map_address()),
        map_len: table.map_len(),
        pages: table.map_len().div_ceil(disktable::page_size() as u64),
        resident_pages_before: table.resident_pages_at_map(),
        resident_pages_after,
    };
    stream_stdout(|out| {
        let (head, _) = report(0).json_around_values();
        out.write_all(head.as_bytes()).context(WRITE_ERR)?;
        let mut sep = "\n    ";
        table.for_each_chunk(|chunk| {
            for v in chunk {
                write!(out, "{sep}{v}").context(WRITE_ERR)?;
                sep = ",\n    ";
            }
            Ok::<(), anyhow::Error>(())
        })?;
        if table.count() > 0 {
            out.write_all(b"\n  ").context(WRITE_ERR)?;
        }
        let (_, tail) = report(table.resident_pages()?).json_around_values();
        out.write_all(tail.as_bytes()).context(WRITE_ERR)?;
        out.write_all(b"\n").context(WRITE_ERR)
    })
}

fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .context(WRITE_ERR)
}

/// Prints one JSON document (and a newline) on stdout, flushed.
fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(v).context("cannot encode JSON")?;
    text.push('\n');
    print_text(&text)
}
