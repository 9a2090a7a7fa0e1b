//! Step 1 of mmap-lab: where glibc malloc switches from the heap to mmap, read from the
//! boundary tags of real allocations.
//!
//! `malloc-probe` calls glibc's `malloc`/`free` directly (not Rust's allocator) and reads the
//! size field glibc keeps in the 8 bytes before each pointer: the chunk size with three flag bits
//! (`PREV_INUSE`, `IS_MMAPPED`, `NON_MAIN_ARENA`). Whether a block lies in the brk heap or in an
//! mmap region is read from `/proc/self/maps`, never inferred from the bit. Subcommands:
//! `alloc SIZE...`, `sweep`, `free-bit`, `threshold` and `thread-arena` (a second thread's
//! chunk carries NON_MAIN_ARENA and lives in an mmapped heap); every one takes `--json`, and
//! `--mark` writes a marker (`write(-1, "malloc N")`) before each malloc so strace can pair calls.
//! `--allocator PATH.so kernel-calls` runs a ladder of marked mallocs and frees under another
//! allocator (LD_PRELOAD), reading no tag: what it asks the kernel for is for strace to see.
//! Run `cargo run -p malloc-probe -- threshold`, or `cargo xtask run-step 1` for the traced tour.
//!
//! Measurements go into storage reserved beforehand and are printed afterwards, because Rust's
//! own allocations use the same glibc heap. A production system would not read allocator
//! metadata at all: it would use `malloc_usable_size(3)`, `mallinfo2(3)` or `malloc_info(3)`,
//! set `M_MMAP_THRESHOLD` with `mallopt(3)` if it cared, and watch with tools such as heaptrack.

/// Prints one line on stdout. The first write error is kept (and later lines skipped) for
/// [`out::finish`] to report: `malloc-probe alloc 24 >/dev/full` must not exit 0.
macro_rules! say {
    () => { say!("") };
    ($($arg:tt)*) => {{
        out::line(format_args!($($arg)*));
    }};
}

/// A line on stderr, best effort: `eprintln!` panics when stderr cannot be written
/// (`2>/dev/full`), and a progress note is not worth that.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// stdout with its first write error remembered.
mod out {
    use std::io::{self, Write as _};
    use std::sync::Mutex;

    static FAILED: Mutex<Option<io::Error>> = Mutex::new(None);

    /// Writes one line unless an earlier write failed.
    pub fn line(args: std::fmt::Arguments<'_>) {
        let mut failed = FAILED.lock().unwrap_or_else(|e| e.into_inner());
        if failed.is_none() {
            if let Err(e) = writeln!(io::stdout().lock(), "{args}") {
                *failed = Some(e);
            }
        }
    }

    /// Flushes stdout and returns the first write error, if any. A reader that went away
    /// (`| head`) is not an error: the output ends quietly.
    pub fn finish() -> io::Result<()> {
        let flushed = io::stdout().lock().flush();
        let mut failed = FAILED.lock().unwrap_or_else(|e| e.into_inner());
        match failed.take().map_or(flushed, Err) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        }
    }
}

mod arena;
mod ladder;
mod maps;
mod probe;
mod sys;
mod threshold;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use malloc_probe::tag;
use malloc_probe::{
    AllocFindings, AllocReport, Allocator, FreeBitFindings, FreeBitReport, Row, SweepFindings,
    SweepReport, ThresholdFindings, ThresholdReport,
};

use probe::Prober;

const EXAMPLES: &str = "\
Examples:
  malloc-probe alloc 24 1000 200000      # three blocks: address, tag, flags, region
  malloc-probe alloc 128K 1MiB --json    # sizes take K, M, G, T (or KiB ... TiB) suffixes
  malloc-probe sweep                     # 16 B .. 4 MiB: where IS_MMAPPED flips
  malloc-probe free-bit                  # which bit says 'previous chunk in use'
  malloc-probe threshold                 # the exact switch, as a request and a chunk size
  MALLOC_MMAP_THRESHOLD_=65536 malloc-probe threshold   # a tuned threshold is found too
  strace -e trace=brk,mmap,munmap,write malloc-probe --mark alloc 200000
  malloc-probe thread-arena              # a second thread's chunk: NON_MAIN_ARENA, its heap
  strace -f -e trace=mmap,munmap,madvise,brk,write \
    malloc-probe --allocator /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 kernel-calls --json
                                         # jemalloc's kernel calls, malloc by malloc

Exit status: 0 done, 1 runtime failure (malloc failed, the allocator crashed the probe: the
error names the signal), 2 usage (a bad size, an --allocator that does not exist or is not a
64-bit shared object of this machine).";

/// Reads glibc malloc's boundary tags to find the heap/mmap switch (lab step 1).
#[derive(Parser)]
#[command(name = "malloc-probe", version, after_help = EXAMPLES)]
struct Cli {
    /// Print one JSON document on stdout instead of the human explanation.
    #[arg(long, global = true)]
    json: bool,
    /// Write a marker `write(-1, "malloc N")` before each malloc, for strace.
    #[arg(long, global = true)]
    mark: bool,
    /// Run under this allocator instead (LD_PRELOAD=PATH, an ELF shared object such as
    /// libjemalloc.so.2). Subcommands that read glibc's tags then refuse; `kernel-calls` does not
    /// read any.
    #[arg(long, global = true, value_name = "PATH.so")]
    allocator: Option<std::path::PathBuf>,
    /// (testing) How long the probe under --allocator may run, in seconds, before it is killed.
    #[arg(long, global = true, hide = true, default_value_t = 60)]
    allocator_timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Allocate exactly these sizes, in order, never freeing; one row per allocation.
    Alloc {
        /// Request sizes in bytes (decimal, 0x hex, or with a K/KiB/M/MiB suffix).
        #[arg(required = true, value_parser = parse_size)]
        sizes: Vec<usize>,
    },
    /// Grow the request from 16 bytes to --max, then sweep finely around the switch.
    Sweep {
        /// The largest request.
        #[arg(long, default_value = "4MiB", value_parser = parse_size)]
        max: usize,
    },
    /// Work out which bit of the tag says free/in-use (the naive way first), then free a
    /// 24-byte chunk and malloc 10000 bytes after it (the course's other hint).
    FreeBit,
    /// Find the exact heap/mmap switch, separating the top chunk and the dynamic threshold.
    Threshold,
    /// malloc a ladder of sizes (several times each), then free every block, with a marker
    /// before each call and no tag read: under strace, the kernel calls of any allocator.
    KernelCalls {
        /// The sizes, ascending (default: 1KiB, 2KiB, ... 64MiB).
        #[arg(long, value_delimiter = ',', value_parser = parse_size)]
        sizes: Option<Vec<usize>>,
        /// How many mallocs of each size.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        repeat: u16,
    },
    /// malloc from the main thread and from a second thread: the second chunk's NON_MAIN_ARENA
    /// bit and its arena's heap (an mmapped, aligned reservation) in /proc/self/maps.
    ThreadArena,
    /// (internal) One measurement in a fresh process, for `threshold`.
    #[command(hide = true)]
    ProbeOne {
        #[arg(value_parser = parse_size)]
        request: usize,
        #[arg(long, value_parser = parse_size)]
        free_first: Option<usize>,
        #[arg(long)]
        drain: bool,
        #[arg(long, value_parser = parse_size)]
        grow_first: Option<usize>,
    },
}

/// Parses `4096`, `0x1000`, `4K`, `4KiB`, `1M`, `1MiB`, `1G`, `1T`, `1TiB` (the limit, 1 TiB,
/// is said in TiB, so TiB is read too).
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, mult) = [
        ("KiB", 1usize << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("TiB", 1 << 40),
        ("K", 1 << 10),
        ("M", 1 << 20),
        ("G", 1 << 30),
        ("T", 1 << 40),
        ("k", 1 << 10),
    ]
    .iter()
    .find_map(|(suf, m)| t.strip_suffix(suf).map(|n| (n, *m)))
    .unwrap_or((t, 1));
    let n = match num.strip_prefix("0x") {
        Some(h) => usize::from_str_radix(h, 16),
        None => num.parse::<usize>(),
    }
    .map_err(|_| format!("{s:?} is not a size; write bytes like 4096, 0x1000, 128K or 1MiB"))?;
    let v = n
        .checked_mul(mult)
        .filter(|&v| v <= probe::MAX_REQUEST)
        .ok_or_else(|| format!("{s:?} is too large; the limit is 1 TiB"))?;
    Ok(v)
}

/// A usage error found after parsing (exit status 2, like clap's own).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The re-executed probe (under `--allocator`) failed with this status and said why itself.
#[derive(Debug)]
struct Exited(u8);

impl std::fmt::Display for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the probe under LD_PRELOAD exited with status {}",
            self.0
        )
    }
}

impl std::error::Error for Exited {}

fn main() -> ExitCode {
    let cli: Cli = match lab_cli::parse() {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    let result = run(cli).and_then(|()| out::finish().context("cannot write to stdout"));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(Exited(status)) = e.downcast_ref::<Exited>() {
                return ExitCode::from(*status);
            }
            note!("error: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn allocator(p: &Prober) -> Allocator {
    Allocator {
        malloc_object: p.glibc.malloc_object.clone(),
        glibc_version: p.glibc.version.clone(),
        page_size: p.page,
        explicit_threshold: threshold::explicit_setting(),
    }
}

/// Prints the one JSON document (a write error is reported by [`out::finish`]).
fn emit(doc: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(doc).context("cannot encode JSON")?;
    say!("{text}");
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let preloaded = match &cli.allocator {
        Some(path) => {
            let path = malloc_probe::preload::check_shared_object(path).map_err(Usage)?;
            if !ladder::is_preloaded(&path) {
                let timeout = std::time::Duration::from_secs(cli.allocator_timeout);
                return match ladder::run_preloaded(&path, timeout)? {
                    0 => Ok(()),
                    status => Err(Exited(status).into()),
                };
            }
            Some(path)
        }
        None => None,
    };
    if let Cmd::KernelCalls { sizes, repeat } = &cli.cmd {
        let sizes = sizes.clone().unwrap_or_else(ladder::default_ladder);
        if sizes.is_empty() || sizes.len() > 4096 {
            return Err(Usage("--sizes takes 1 to 4096 sizes".into()).into());
        }
        let report = ladder::kernel_calls(&sizes, usize::from(*repeat), preloaded.as_deref())?;
        if cli.json {
            return emit(&report);
        }
        return print_kernel_calls(&report);
    }
    let blocks = match &cli.cmd {
        Cmd::Alloc { sizes } => sizes.len().min(100_000),
        _ => 0,
    };
    let mut p = Prober::new(cli.mark, blocks)?;
    match cli.cmd {
        Cmd::Alloc { sizes } => run_alloc(&mut p, &sizes, cli.json),
        Cmd::Sweep { max } => run_sweep(&mut p, max, cli.json),
        Cmd::FreeBit => run_free_bit(&mut p, cli.json),
        Cmd::Threshold => run_threshold(p, cli.json),
        Cmd::ThreadArena => run_thread_arena(&p, cli.json),
        Cmd::KernelCalls { .. } => unreachable!("kernel-calls runs before the prober exists"),
        Cmd::ProbeOne {
            request,
            free_first,
            drain,
            grow_first,
        } => {
            let out = probe::probe_one(
                &mut p,
                request,
                probe::ChildOpts {
                    free_first,
                    drain,
                    grow_first,
                },
            )?;
            emit(&out)
        }
    }
}

/// `alloc SIZE...`: each request's tag, region and mapped length.
fn run_alloc(p: &mut Prober, sizes: &[usize], json: bool) -> anyhow::Result<()> {
    if sizes.len() > 100_000 {
        return Err(Usage(format!(
            "{} sizes is too many; give at most 100000",
            sizes.len()
        ))
        .into());
    }
    let rows = probe::alloc(p, sizes)?;
    let lens = probe::mapped_lengths(&rows, p.page);
    if json {
        return emit(&AllocReport {
            allocator: allocator(p),
            allocations: rows,
            findings: AllocFindings {
                mapped_lengths: lens,
            },
        });
    }
    print_header(p);
    print_rows(&rows);
    print_mapped(&lens);
    Ok(())
}

/// `sweep --max N`: growing requests, then a fine sweep around the switch to mmap.
fn run_sweep(p: &mut Prober, max: usize, json: bool) -> anyhow::Result<()> {
    if max < 16 {
        return Err(Usage(format!(
            "--max {max} is below the first request of 16 bytes; use e.g. --max 4MiB"
        ))
        .into());
    }
    let rows = probe::sweep(p, max)?;
    let lens = probe::mapped_lengths(&rows, p.page);
    let (bit, candidates) = probe::mmapped_bit(&rows);
    let last_heap = rows
        .iter()
        .filter(|r| r.region == "heap")
        .map(|r| r.request)
        .max();
    let first_mmap = rows
        .iter()
        .filter(|r| r.region == "mmap")
        .map(|r| r.request)
        .min();
    if json {
        return emit(&SweepReport {
            allocator: allocator(p),
            allocations: rows,
            findings: SweepFindings {
                is_mmapped_bit: bit,
                bits_following_region: candidates,
                largest_heap_request: last_heap,
                smallest_mmap_request: first_mmap,
                mapped_lengths: lens,
            },
        });
    }
    print_header(p);
    print_rows(&rows);
    say!();
    match bit {
        Some(b) => say!(
            "Finding: bit {b} (value {:#x}, {}) is set in every row whose region is mmap \
             and clear in every heap row: it is the mmap bit.",
            1u64 << b,
            tag::FLAG_NAMES[b as usize]
        ),
        None => say!(
            "Finding: no single low bit follows the region in this run (bits that do: \
             {candidates:?}); this contradicts glibc's IS_MMAPPED = bit 1."
        ),
    }
    if let (Some(h), Some(m)) = (last_heap, first_mmap) {
        say!(
            "In this one process the largest heap request was {h} and the smallest mmap \
             request {m}: these overlap or blur because the top chunk serves large \
             requests while it has room (see the top column); `malloc-probe threshold` \
             separates that effect."
        );
    }
    print_mapped(&lens);
    Ok(())
}

/// `threshold`: the bisection in fresh processes (this process's prober is dropped first).
fn run_threshold(p: Prober, json: bool) -> anyhow::Result<()> {
    if !json {
        print_header(&p);
    }
    drop(p);
    let t = threshold::measure(&|m| {
        if !json {
            note!("[malloc-probe] {m}");
        }
    })?;
    if json {
        let probe = Prober::new(false, 0)?;
        return emit(&ThresholdReport {
            allocator: allocator(&probe),
            findings: ThresholdFindings::of(&t),
            threshold: t,
        });
    }
    print_threshold(&t);
    Ok(())
}

/// `kernel-calls` without `--json`: the ladder as run (the kernel calls are strace's to show).
fn print_kernel_calls(r: &malloc_probe::KernelCallsReport) -> anyhow::Result<()> {
    say!("malloc from {}, page size {}", r.malloc_object, r.page_size);
    let nulls = r.mallocs.iter().filter(|m| m.address.is_none()).count();
    say!(
        "{} mallocs ({} of each size), then as many frees, each after a marker \
         write(-1, \"malloc N\") / write(-1, \"free N\"); {nulls} returned NULL.",
        r.mallocs.len(),
        r.repeat
    );
    say!("Run it under strace -f -e trace=brk,mmap,munmap,madvise,write to see each call's.");
    for m in &r.mallocs {
        say!(
            "{:>10}  {}",
            m.request,
            m.address.as_deref().unwrap_or("NULL")
        );
    }
    Ok(())
}

/// `thread-arena`: the two tags and the thread's heap.
fn run_thread_arena(p: &Prober, json: bool) -> anyhow::Result<()> {
    let r = arena::measure(p)?;
    if json {
        return emit(&r);
    }
    let f = &r.findings;
    let flags = |t: &str| {
        lab_trace::parse_hex(t).map_or_else(|| "?".to_string(), |v| tag::Tag(v).flag_names())
    };
    say!(
        "main thread:   malloc({}) = {}  tag {} ({})",
        r.request,
        r.main_chunk.address,
        r.main_chunk.tag,
        flags(&r.main_chunk.tag)
    );
    say!(
        "second thread: malloc({}) = {}  tag {} ({})",
        r.request,
        r.thread_chunk.address,
        r.thread_chunk.tag,
        flags(&r.thread_chunk.tag)
    );
    say!(
        "Finding: NON_MAIN_ARENA (bit 2, 0x4) is {} in the second thread's chunk and {} in the \
         main thread's.",
        if f.a_bit_thread { "set" } else { "clear" },
        if f.a_bit_main { "set" } else { "clear" }
    );
    match (&f.heap_mapping, f.heap_reservation_bytes) {
        (Some(m), Some(bytes)) => say!(
            "The thread's chunk lies in the anonymous read-write mapping {m}; with the PROT_NONE \
             (---p) rest after it, its heap reserves {bytes} bytes ({} MiB) of address space.",
            bytes >> 20
        ),
        _ => say!("No anonymous read-write mapping holds the thread's chunk."),
    }
    Ok(())
}

fn print_header(p: &Prober) {
    say!(
        "glibc {} (malloc from {}), page size {}",
        p.glibc.version,
        p.glibc.malloc_object,
        p.page
    );
}

fn print_rows(rows: &[Row]) {
    say!(
        "{:>9}  {:<16} {:>10}  {:>9}  {:<24} {:<6} {:>9}  {:>9}",
        "request",
        "address (%p)",
        "tag (%x)",
        "chunk",
        "flags",
        "region",
        "top left",
        "brk grew"
    );
    let mut phase = None;
    for r in rows {
        if r.phase.is_some() && r.phase != phase {
            say!("-- {} sweep", r.phase.as_deref().unwrap_or(""));
            phase = r.phase.clone();
        }
        let top = r
            .top_size
            .map(|t| t.to_string())
            .unwrap_or_else(|| "?".into());
        let check = if r.matches_glibc_arithmetic {
            ""
        } else {
            "  (!) not glibc's arithmetic"
        };
        say!(
            "{:>9}  {:<16} {:>10}  {:>9}  {:<24} {:<6} {:>9}  {:>9}{}",
            r.request,
            r.address,
            r.tag,
            r.chunk_size,
            r.flags,
            r.region,
            top,
            r.brk_growth,
            check
        );
    }
}

fn print_mapped(lens: &[malloc_probe::MappedLength]) {
    if lens.is_empty() {
        return;
    }
    say!("\nMapped lengths (mmapped chunks keep the mapping's length in their size field):");
    say!(
        "{:>9}  {:>10}  {:>8}  {:>10}  formula align_up(align_up(x+8,16)+8, page)",
        "request x",
        "mapped L",
        "L - x",
        "predicted"
    );
    let mut bad = 0;
    for l in lens {
        say!(
            "{:>9}  {:>10}  {:>8}  {:>10}  {}",
            l.request,
            l.mapped_length,
            l.overhead,
            l.predicted,
            if l.matches { "ok" } else { "MISMATCH" }
        );
        bad += usize::from(!l.matches);
    }
    if bad == 0 {
        say!("Every mmapped row: pointer 16 bytes past a page boundary, length = the formula.");
    } else {
        say!("{bad} row(s) contradict glibc's arithmetic: see the marked rows.");
    }
}

fn run_free_bit(p: &mut Prober, json_out: bool) -> anyhow::Result<()> {
    // A small block first (the naive experiment), then sizes growing past the tcache limit.
    let sizes = [24, 100, 1000, 1032, 1048, 1100, 1500, 4000];
    // Then the course's other hint: a fastbin-sized A freed, then a large-bin request.
    let (attempts, large_malloc) = probe::free_bit(p, &sizes, (24, 10_000))?;
    let first = attempts.iter().position(|a| !a.b_changed_bits.is_empty());
    let bit = first.and_then(|i| match attempts[i].b_changed_bits.as_slice() {
        [b] => Some(*b),
        _ => None,
    });
    let largest_silent = attempts
        .iter()
        .take(first.unwrap_or(attempts.len()))
        .map(|a| a.chunk_size_a)
        .max();
    if json_out {
        let findings = FreeBitFindings {
            prev_inuse_bit: bit,
            in_use_value: bit.map(|_| 1),
            free_value: bit.map(|_| 0),
            largest_chunk_freed_without_change: largest_silent,
            first_request_that_changed_the_bit: first.map(|i| attempts[i].request_a),
            large_malloc_cleared_the_bit: bit.and_then(|b| large_malloc.malloc_cleared(b)),
        };
        return emit(&FreeBitReport {
            allocator: allocator(p),
            attempts,
            large_malloc,
            findings,
        });
    }
    print_attempts(p, &attempts);
    print_free_bit_findings(&attempts, first, bit, largest_silent);
    print_large_malloc(&large_malloc, bit);
    Ok(())
}

/// free-bit's table of attempts and what the naive one (a small block) showed.
fn print_attempts(p: &Prober, attempts: &[malloc_probe::FreeAttempt]) {
    print_header(p);
    say!(
        "\nEach attempt: A = malloc(x) and B = malloc(24), both carved from the top chunk so B \
         is A's neighbour; read the tags, free(A), read again."
    );
    say!(
        "{:>6} {:>7}  {:>8} -> {:<8}  {:>8} -> {:<8}  {:>12}  A's 2nd word after free",
        "x",
        "chunk A",
        "tag A",
        "after",
        "tag B",
        "after",
        "B.prev_size"
    );
    for a in attempts {
        say!(
            "{:>6} {:>7}  {:>8} -> {:<8}  {:>8} -> {:<8}  {:>12}  {} ({})",
            a.request_a,
            a.chunk_size_a,
            a.tag_a_before,
            a.tag_a_after,
            a.tag_b_before,
            a.tag_b_after,
            a.b_prev_size_after,
            a.a_words_after[1],
            a.a_word1_points_into
        );
    }
    let naive = &attempts[0];
    say!(
        "\nThe naive attempt (x = {}): A's tag {} -> {} and B's tag {} -> {}: {}.",
        naive.request_a,
        naive.tag_a_before,
        naive.tag_a_after,
        naive.tag_b_before,
        naive.tag_b_after,
        if naive.b_changed_bits.is_empty() && naive.a_changed_bits.is_empty() {
            "nothing changed"
        } else {
            "something changed, unlike what tcache predicts"
        }
    );
}

/// Why the small frees changed nothing, and what the first free that changed B's tag shows.
fn print_free_bit_findings(
    attempts: &[malloc_probe::FreeAttempt],
    first: Option<usize>,
    bit: Option<u32>,
    largest_silent: Option<u64>,
) {
    let naive = &attempts[0];
    // The second word of a freed chunk: a tcache entry's `key`, or a bin's `bk` pointer.
    let silent: Vec<&malloc_probe::FreeAttempt> = attempts
        .iter()
        .take(first.unwrap_or(attempts.len()))
        .collect();
    let key = &naive.a_words_after[1];
    let same_key = silent.iter().filter(|a| &a.a_words_after[1] == key).count();
    say!(
        "Why: a chunk's own tag never says whether *it* is free; A's in-use bit is the \
         PREV_INUSE bit of the *next* chunk (B). And freeing a small chunk puts it in the \
         per-thread tcache (or a fastbin), which keeps it marked in use so it can be handed out \
         again quickly."
    );
    if same_key == silent.len() && same_key > 1 {
        say!(
            "Evidence: A's second word after the free is {key} ({}) in all {same_key} \
             attempts that changed nothing: one value shared by all of them is glibc's \
             per-process random tcache key (glibc >= 2.34), written by free() into tcache \
             entries only.",
            naive.a_word1_points_into
        );
    } else {
        say!(
            "A's second word after the free is {key} ({}); it matches in {same_key} of the {} \
             attempts that changed nothing.",
            naive.a_word1_points_into,
            silent.len()
        );
    }
    if let Some(i) = first {
        say!(
            "After the first free that changed B, A's second word points into {} \
             ({}): a bk pointer to a bin of libc's main_arena, i.e. A is really free.",
            attempts[i].a_word1_points_into,
            attempts[i].a_words_after[1]
        );
    }
    match (first, bit) {
        (Some(i), Some(b)) => {
            let a = &attempts[i];
            say!(
                "The experiment that works: x = {} (chunk {} bytes, larger than every chunk \
                 that changed nothing, the largest being {}): free(A) turned B's tag {} into {} \
                 — bit {b} (value {:#x}) went 1 -> 0, and B.prev_size now reads {} (A's size \
                 {:#x}): the chunk went to a real bin.",
                a.request_a,
                a.chunk_size_a,
                largest_silent.unwrap_or(0),
                a.tag_b_before,
                a.tag_b_after,
                1u64 << b,
                a.b_prev_size_after,
                a.chunk_size_a
            );
            say!(
                "Finding: bit {b} ({}) of a chunk's tag is 1 when the PREVIOUS chunk is in use \
                 and 0 when it is free.",
                tag::FLAG_NAMES.get(b as usize).unwrap_or(&"?")
            );
        }
        _ => say!(
            "Finding: no attempt changed exactly one bit of B's tag (changes: {:?}); this \
             contradicts glibc's PREV_INUSE behaviour.",
            attempts
                .iter()
                .map(|a| &a.b_changed_bits)
                .collect::<Vec<_>>()
        ),
    }
}

/// The second half of the course's hint, as measured.
fn print_large_malloc(l: &malloc_probe::LargeMallocAttempt, bit: Option<u32>) {
    let fast = |f: &Option<malloc_probe::Fastbins>| match f {
        Some(f) => format!("{} chunks, {} bytes", f.chunks, f.bytes),
        None => "? (no mallinfo2)".to_string(),
    };
    say!(
        "\nThen A = malloc({}) (chunk {}) with B after it, free(A), then malloc({}):",
        l.request_a,
        l.chunk_size_a,
        l.large_request
    );
    say!(
        "  {:<22} {:>8}  {:>12}  {:<34}  fastbins (mallinfo2)",
        "",
        "tag B",
        "B.prev_size",
        "A's words"
    );
    for (when, tag, prev, words, f) in [
        (
            "A in use",
            &l.tag_b_before,
            "",
            &l.a_words_before,
            &l.fastbins_before_free,
        ),
        (
            "after free(A)",
            &l.tag_b_after_free,
            l.b_prev_size_after_free.as_str(),
            &l.a_words_after_free,
            &l.fastbins_after_free,
        ),
        (
            "after the large malloc",
            &l.tag_b_after_malloc,
            l.b_prev_size_after_malloc.as_str(),
            &l.a_words_after_malloc,
            &l.fastbins_after_malloc,
        ),
    ] {
        say!(
            "  {when:<22} {tag:>8}  {prev:>12}  {:<34}  {}",
            format!("{} {}", words[0], words[1]),
            fast(f)
        );
    }
    say!(
        "  malloc({}) returned {} ({} chunk, tag {}); A's second word then points into {}.",
        l.large_request,
        l.large_address,
        l.large_region,
        l.large_tag,
        l.a_word1_after_malloc_points_into
    );
    let fastbins = match (&l.fastbins_after_free, &l.fastbins_after_malloc) {
        (Some(a), Some(b)) => format!(
            "; the fastbins held {} chunk(s) before malloc({}) and {} after",
            a.chunks, l.large_request, b.chunks
        ),
        _ => String::new(),
    };
    let verdict = match bit.map(|b| (b, l.malloc_cleared(b))) {
        Some((b, Some(true))) => format!(
            "free(A) left bit {b} of B's tag set; malloc({}) cleared it, and B.prev_size now \
             reads {} (A's size is {:#x}){fastbins}.",
            l.large_request, l.b_prev_size_after_malloc, l.chunk_size_a
        ),
        Some((b, Some(false))) => format!(
            "bit {b} of B's tag stayed set through free(A) and malloc({}){fastbins}: A is still \
             marked in use.",
            l.large_request
        ),
        Some((b, None)) => format!("free(A) itself already cleared bit {b} of B's tag."),
        None => "the in-use bit was not found, so this cannot be judged.".to_string(),
    };
    say!("Finding: {verdict}");
}

fn print_threshold(t: &malloc_probe::Threshold) {
    let drain = t.drained_probes.first().and_then(|c| c.drain.as_ref());
    say!("1. Top chunk drained in each fresh process, then one malloc(x):");
    if let Some(d) = drain {
        say!(
            "   (top chunk {} bytes, filled by a {}-byte block, leaving {} bytes)",
            d.top_before,
            d.filler_request,
            d.top_after
        );
    }
    say!(
        "{:>9}  {:<16} {:>10}  {:>9}  {:<24} {:<6} {:>9}",
        "request",
        "address",
        "tag",
        "chunk",
        "flags",
        "region",
        "brk grew"
    );
    for c in &t.drained_probes {
        let r = &c.row;
        say!(
            "{:>9}  {:<16} {:>10}  {:>9}  {:<24} {:<6} {:>9}",
            r.request,
            r.address,
            r.tag,
            r.chunk_size,
            r.flags,
            r.region,
            r.brk_growth
        );
    }
    say!(
        "   -> threshold_request = {}: the smallest request served by mmap when the heap has no \
         room; {} still came from the heap as a {}-byte chunk.",
        t.threshold_request,
        t.largest_heap_request,
        t.largest_heap_chunk_size
    );
    say!(
        "   -> threshold_chunk_size = {} (= {:#x}): the next chunk size after {}; glibc compares \
         the chunk size, not the request, with the threshold.",
        t.threshold_chunk_size,
        t.threshold_chunk_size,
        t.largest_heap_chunk_size
    );
    print_with_room(t);
    print_dynamic(t);
}

/// Part 2 of `threshold`: the same request right after the heap grew.
fn print_with_room(t: &malloc_probe::Threshold) {
    let w = &t.with_room;
    say!("\n2. The same request right after the heap grew (top padding):");
    if let Some(g) = &w.grow {
        say!(
            "   malloc({}) grew the heap by {} bytes for a {}-byte chunk, leaving the top with {} \
             bytes",
            g.request,
            g.brk_growth,
            g.chunk_size,
            g.top_size
                .map(|t| t.to_string())
                .unwrap_or_else(|| "?".into())
        );
    }
    say!(
        "   then malloc({}) -> {} chunk of {} bytes ({}), top left {}",
        w.row.request,
        w.row.region,
        w.row.chunk_size,
        w.row.flags,
        w.row
            .top_size
            .map(|t| t.to_string())
            .unwrap_or_else(|| "?".into())
    );
    if w.row.region == "heap" {
        say!(
            "   -> above the threshold, yet from the heap: the top had room, and the top is \
             carved before mmap is considered. Its chunk size {} {} threshold_chunk_size.",
            w.row.chunk_size,
            if w.row.chunk_size == t.threshold_chunk_size {
                "confirms"
            } else {
                "CONTRADICTS"
            }
        );
    } else {
        let top = w.grow.as_ref().and_then(|g| g.top_size).unwrap_or(0);
        say!(
            "   -> the top had {top} bytes, less than the chunk ({}) plus MINSIZE that carving \
             needs, so it was mmapped again: the padding of one growth cannot hold a request \
             this large.",
            t.threshold_chunk_size
        );
    }
}

/// Part 3 of `threshold`: freeing an mmapped chunk moves the threshold.
fn print_dynamic(t: &malloc_probe::Threshold) {
    let d = &t.dynamic;
    say!(
        "\n3. The dynamic threshold: malloc({}){}, free it, then:",
        d.freed_request,
        if d.freed_mapped_length.is_some() {
            " (mmapped)"
        } else {
            ""
        }
    );
    if let Some(f) = &d.same_request_after_free.freed_first {
        match f.mapped_length {
            Some(l) => say!(
                "   the freed block was {} with a {l}-byte mapping",
                f.region
            ),
            None => say!(
                "   the freed block came from the {}, not mmapped: no mapping was freed, so this \
                 run cannot show the dynamic threshold",
                f.region
            ),
        }
    }
    let s = &d.same_request_after_free.row;
    say!(
        "   malloc({}) with a drained top -> {} ({}), before the free it was mmap",
        s.request,
        s.region,
        s.flags
    );
    say!(
        "   bisection again ({} probes): new threshold_request = {}, chunk size {}",
        d.probes,
        d.new_threshold_request,
        d.new_threshold_chunk_size
    );
    if d.moved {
        say!(
            "   -> freeing an mmapped chunk raised the threshold to that chunk's size{}.",
            match d.freed_mapped_length {
                Some(l) if l == d.new_threshold_chunk_size => format!(" ({l}, exactly)"),
                Some(l) => format!(
                    " (freed {l}, but the new threshold is {}: unexpected)",
                    d.new_threshold_chunk_size
                ),
                None => String::new(),
            }
        );
    } else if d.freed_mapped_length.is_none() {
        say!("   -> the threshold did not move (no mmapped block was freed)");
    } else {
        say!(
            "   -> the threshold did not move{}",
            match &t.explicit_setting {
                Some(s) =>
                    format!(": {s} sets it explicitly, which turns the dynamic threshold off"),
                None => ": unexpected for glibc's default settings".to_string(),
            }
        );
    }
}
