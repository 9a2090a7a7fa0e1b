//! Step 2: read a persistent data structure from a file with mmap.
//!
//! Builds a sample table with `persist load`, evicts it from the page cache
//! (`persist residency --evict`: fsync + `posix_fadvise(POSIX_FADV_DONTNEED)`, since
//! `/proc/sys/vm/drop_caches` needs root), looks random keys up under strace
//! (`persist --json get FILE K1 K2 ...`), and shows from this run: the single mmap of the table's
//! descriptor, that no read/pread touched it, the page faults the lookups took (getrusage, as
//! printed by `persist`), and with mincore how few of the file's pages became resident.
//!
//! `data` shape (for the report's picture):
//! `{"entries":N,"file_bytes":N,"pages_total":N,"pages_resident_before":N,
//!   "pages_resident_after":N,"lookups":N,"mmap_calls":N,"read_calls_on_table_fd":N,
//!   "minor_faults":N,"major_faults":N,"eviction":"fadvise"|"none"}`
//!
//! Also here: [`bench`] (`cargo xtask bench persist`) and the strace helper [`table_calls`]
//! that step 3 shares.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::model::{Answer, Ctx, Evidence, StepReport};
use crate::out;
use crate::say;
use crate::strace::{self, Syscall};

/// System calls that read a descriptor.
pub const READ_CALLS: &[&str] = &["read", "pread64", "readv", "preadv", "preadv2"];
/// System calls that write a descriptor.
pub const WRITE_CALLS: &[&str] = &["write", "pwrite64", "writev", "pwritev", "pwritev2"];

/// The calls of a trace that concern the file at `path`: its `openat`, every call whose
/// descriptor argument is the descriptor that openat returned (until it is closed), the
/// `mmap`s of that descriptor, and the `mremap`/`munmap`/`msync`/`madvise` of the addresses
/// those mmaps returned. Tracked per process.
pub fn table_calls<'a>(calls: &'a [Syscall], path: &Path) -> Vec<&'a Syscall> {
    use std::collections::HashSet;
    let want = path.to_string_lossy();
    let mut fds: HashSet<(Option<u32>, i64)> = HashSet::new();
    let mut addrs: HashSet<(Option<u32>, u64)> = HashSet::new();
    let mut out = Vec::new();
    for c in calls {
        let pid = c.pid;
        let fd_arg = |i: usize| c.arg_i64(i).is_some_and(|fd| fds.contains(&(pid, fd)));
        let hit = match c.name.as_str() {
            "openat" | "open" => {
                let idx = usize::from(c.name == "openat");
                if c.arg_str(idx) == Some(&*want) && c.ok() {
                    if let Some(fd) = c.ret {
                        fds.insert((pid, fd));
                    }
                    true
                } else {
                    false
                }
            }
            "mmap" => {
                let mine = fd_arg(4);
                if mine && c.ok() {
                    if let Some(a) = c.ret_u64() {
                        addrs.insert((pid, a));
                    }
                }
                mine
            }
            "mremap" => {
                let mine = c.arg_u64(0).is_some_and(|a| addrs.contains(&(pid, a)));
                if mine && c.ok() {
                    if let (Some(old), Some(new)) = (c.arg_u64(0), c.ret_u64()) {
                        addrs.remove(&(pid, old));
                        addrs.insert((pid, new));
                    }
                }
                mine
            }
            "munmap" | "msync" | "madvise" | "mincore" => {
                c.arg_u64(0).is_some_and(|a| addrs.contains(&(pid, a)))
            }
            "close" => {
                let mine = fd_arg(0);
                if mine {
                    if let Some(fd) = c.arg_i64(0) {
                        fds.remove(&(pid, fd));
                    }
                }
                mine
            }
            _ => fd_arg(0),
        };
        if hit {
            out.push(c);
        }
    }
    out
}

/// Runs `persist ARGS` (optionally feeding stdin) and returns its output; fails with its
/// stderr if it exits non-zero.
pub fn persist(ctx: &Ctx, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<Output> {
    let out = persist_any(ctx, args, stdin)?;
    if !out.status.success() {
        bail!(
            "persist {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Runs `persist ARGS` and returns its output whatever its exit status.
pub fn persist_any(ctx: &Ctx, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<Output> {
    let bin = ctx.bin("persist");
    let mut cmd = Command::new(&bin);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if let Some(input) = stdin {
        // The child consumes stdin as we write; a failed write means it exited early, which
        // its status and stderr will tell.
        if let Some(mut pipe) = child.stdin.take() {
            let _ = pipe.write_all(input);
        }
    }
    child
        .wait_with_output()
        .with_context(|| format!("cannot wait for {}", bin.display()))
}

/// Parses a `--json` document printed by persist.
pub fn json_of(out: &Output) -> anyhow::Result<Value> {
    serde_json::from_slice(&out.stdout).context("persist printed invalid JSON")
}

/// A small deterministic PRNG (xorshift64*), seeded per run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn seeded_from_clock() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x1234_5678);
        Rng::new(t ^ u64::from(std::process::id()) << 32)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The sample table's key and value for entry `i`.
pub fn sample_kv(i: u64) -> (String, String) {
    (
        format!("key-{i:07}"),
        format!("value-{i}-{:08x}", i.wrapping_mul(2_654_435_761) as u32),
    )
}

/// Tab-separated `KEY\tVALUE\n` lines for entries `0..n`.
pub fn sample_tsv(n: u64) -> Vec<u8> {
    let mut s = Vec::with_capacity(n as usize * 32);
    for i in 0..n {
        let (k, v) = sample_kv(i);
        s.extend_from_slice(k.as_bytes());
        s.push(b'\t');
        s.extend_from_slice(v.as_bytes());
        s.push(b'\n');
    }
    s
}

fn num(v: &Value, path: &[&str]) -> anyhow::Result<u64> {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .with_context(|| format!("persist's JSON has no number at {}", path.join(".")))
}

pub fn run(ctx: &Ctx) -> anyhow::Result<StepReport> {
    strace::check()?;
    ctx.build_release(&["persist"])?;
    let scratch = ctx.scratch("step2")?;
    let table = scratch.path().join("sample.tbl");
    let table_s = table.to_string_lossy().into_owned();
    let entries: u64 = if ctx.quick { 20_000 } else { 100_000 };
    let lookups: u64 = if ctx.quick { 10 } else { 20 };

    out::subheading("Build a sample table");
    persist(ctx, &["create", &table_s], None)?;
    let loaded = json_of(&persist(
        ctx,
        &["--json", "load", &table_s],
        Some(&sample_tsv(entries)),
    )?)?;
    let file_bytes = num(&loaded, &["stats", "file_bytes"])?;
    let n_entries = num(&loaded, &["stats", "entries"])?;
    say!(
        "persist load wrote {n_entries} entries: the file is {file_bytes} bytes ({} KiB).",
        file_bytes / 1024
    );

    out::subheading("Drop it from the page cache");
    let res = json_of(&persist(
        ctx,
        &["--json", "residency", "--evict", &table_s],
        None,
    )?)?;
    let r = &res["residency"];
    let pages_total = num(r, &["pages_total"])?;
    let resident_loaded = num(r, &["pages_resident_before"])?;
    let resident_before = num(r, &["pages_resident_after"])?;
    let eviction_asked = r["eviction"].as_str().unwrap_or("none");
    // Eviction counts only if mincore shows it worked.
    let eviction = if eviction_asked == "fadvise" && resident_before < resident_loaded {
        "fadvise"
    } else {
        "none"
    };
    say!("mincore before: {resident_loaded} of {pages_total} pages resident (just written).",);
    match eviction {
        "fadvise" => say!(
            "fsync + posix_fadvise(POSIX_FADV_DONTNEED) (drop_caches needs root): now \
             {resident_before} of {pages_total} pages resident."
        ),
        _ => say!(
            "Eviction did not work here ({}): {resident_before} of {pages_total} pages are \
             still resident, so the lookups below will find their pages in memory and take \
             minor, not major, faults.",
            r["note"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("mincore shows no change")
        ),
    }

    out::subheading(&format!("Look up {lookups} random keys under strace"));
    let mut rng = Rng::seeded_from_clock();
    let picked: Vec<u64> = (0..lookups).map(|_| rng.below(entries)).collect();
    let keys: Vec<String> = picked.iter().map(|&i| sample_kv(i).0).collect();
    let mut args: Vec<&str> = vec!["--json", "get", &table_s];
    args.extend(keys.iter().map(String::as_str));
    let filter = "openat,close,mmap,munmap,mremap,madvise,mincore,flock,fstat,newfstatat,statx,\
                  lseek,read,pread64,readv,preadv,preadv2,write";
    let traced = strace::run(&ctx.bin("persist"), &args, filter, scratch.path())?;
    if !traced.status.success() {
        bail!("persist get failed under strace: {}", traced.stderr.trim());
    }
    let got: Value =
        serde_json::from_str(&traced.stdout).context("persist get printed invalid JSON")?;
    let results = got["results"]
        .as_array()
        .context("persist get JSON has no results")?;
    let mut wrong = Vec::new();
    for (&i, res) in picked.iter().zip(results) {
        let (k, v) = sample_kv(i);
        if res["value"].as_str() != Some(v.as_str()) {
            wrong.push(k);
        }
    }
    if results.len() != picked.len() || !wrong.is_empty() {
        bail!("persist get returned wrong values for {wrong:?}");
    }
    let minor = num(&got, &["faults", "minor"])?;
    let major = num(&got, &["faults", "major"])?;

    let mine = table_calls(&traced.calls, &table);
    let mmaps: Vec<&&Syscall> = mine.iter().filter(|c| c.name == "mmap").collect();
    let reads: Vec<&&Syscall> = mine
        .iter()
        .filter(|c| READ_CALLS.contains(&c.name.as_str()))
        .collect();
    let reads_elsewhere = traced
        .calls
        .iter()
        .filter(|c| READ_CALLS.contains(&c.name.as_str()))
        .count();
    let trace_text: String = mine.iter().map(|c| format!("{}\n", c.raw)).collect();
    say!("Every system call on the table's descriptor or its mapping:");
    for c in &mine {
        say!("  {}", c.raw);
    }
    let fd = mine.first().and_then(|c| c.ret).unwrap_or(-1);
    say!(
        "=> {} mmap of descriptor {fd}, {} read/pread of it (the process made {reads_elsewhere} \
         reads in all, the others on other descriptors: the loader reading its libraries).",
        mmaps.len(),
        reads.len()
    );
    if let Some(m) = mmaps.first() {
        say!(
            "   The mmap asked for {} bytes, {}, {}: the whole file, read-only, shared with the \
             page cache.",
            m.arg_u64(1).unwrap_or(0),
            m.args.get(2).map(String::as_str).unwrap_or("?"),
            m.args.get(3).map(String::as_str).unwrap_or("?"),
        );
    }
    if mmaps.len() != 1 || !reads.is_empty() {
        say!(
            "!! This contradicts the design (one mmap, no reads): {} mmaps, {} reads.",
            mmaps.len(),
            reads.len()
        );
    }

    out::subheading("What the lookups brought into memory");
    let after = json_of(&persist(ctx, &["--json", "residency", &table_s], None)?)?;
    let resident_after = num(&after["residency"], &["pages_resident_before"])?;
    let added = resident_after.saturating_sub(resident_before);
    say!(
        "getrusage around open + {lookups} lookups: {minor} minor faults, {major} major faults \
         (a major fault is one that waited for the disk)."
    );
    say!(
        "mincore after: {resident_after} of {pages_total} pages resident ({:.1}%), {added} more \
         than before the lookups: about {:.1} pages per lookup (the header page, then a slot \
         page and a record page each; MADV_RANDOM turned off read-around).",
        100.0 * resident_after as f64 / pages_total.max(1) as f64,
        added as f64 / lookups as f64
    );
    if eviction == "fadvise" && major == 0 {
        say!("!! No major fault although the file had been evicted: something else read it back.");
    }
    if added > 3 * lookups + 1 {
        say!(
            "!! More pages came in than a lookup touches (at most 2 each + the header): \
             read-around was not disabled, or another process read the file."
        );
    }

    let answers = vec![
        Answer {
            question: "How does `persist get` read the table?".into(),
            answer: format!(
                "Through {} mmap of the whole file ({} bytes) on descriptor {fd}; {} read/pread \
                 calls on that descriptor. Values are slices of the mapping.",
                mmaps.len(),
                file_bytes,
                reads.len()
            ),
        },
        Answer {
            question: "How much of the file did the lookups load?".into(),
            answer: format!(
                "{lookups} lookups in a {entries}-entry table made {added} pages resident \
                 ({resident_before} before, {resident_after} after, of {pages_total}); \
                 {major} major and {minor} minor faults."
            ),
        },
        Answer {
            question: "Was the table evicted from the page cache first?".into(),
            answer: match eviction {
                "fadvise" => format!(
                    "Yes, with fsync + posix_fadvise(DONTNEED): {resident_loaded} -> \
                     {resident_before} resident pages (mincore)."
                ),
                _ => format!(
                    "No: eviction was not effective here ({resident_loaded} -> \
                     {resident_before} resident pages)."
                ),
            },
        },
    ];
    let evidence = vec![
        Evidence {
            title: "strace of persist get: the table's descriptor and mapping".into(),
            text: trace_text,
        },
        Evidence {
            title: "persist --json get (faults and residency)".into(),
            text: serde_json::to_string_pretty(&json!({
                "faults": got["faults"],
                "pages_total": got["pages_total"],
                "pages_resident_after": got["pages_resident_after"],
                "lookups": got["lookups"],
            }))?,
        },
        Evidence {
            title: "persist --json residency --evict".into(),
            text: serde_json::to_string_pretty(&res)?,
        },
    ];
    Ok(crate::model::legacy(
        2,
        "Read a persistent data structure from a file with mmap",
        answers,
        evidence,
        json!({
            "entries": n_entries,
            "file_bytes": file_bytes,
            "pages_total": pages_total,
            "pages_resident_before": resident_before,
            "pages_resident_after": resident_after,
            "lookups": lookups,
            "mmap_calls": mmaps.len(),
            "read_calls_on_table_fd": reads.len(),
            "minor_faults": minor,
            "major_faults": major,
            "eviction": eviction,
        }),
    ))
}

/// `cargo xtask bench persist`: builds `bench/persist-bench` (its own workspace, so LMDB's C
/// code never slows `cargo test --workspace`) in release mode and runs it: random `get` on
/// 1,000,000 keys resident in the page cache, through the mapping, through pread on the same
/// file, and through LMDB (heed). Prints lookups per second and the ratios against the goals.
pub fn bench(ctx: &Ctx) -> anyhow::Result<()> {
    out::heading("Benchmark: persist lookups (mmap vs pread vs LMDB)");
    let manifest = ctx.root.join("bench/persist-bench/Cargo.toml");
    let target = ctx.target_dir.join("persist-bench");
    out::progress("building bench/persist-bench (release; the first build compiles LMDB)");
    let status = crate::build::cargo()
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&ctx.root)
        .status()
        .context("cannot run cargo build for bench/persist-bench")?;
    if !status.success() {
        bail!("cargo build --manifest-path {} failed", manifest.display());
    }
    let scratch = ctx.scratch("bench-persist")?;
    let bin = target.join("release").join("persist-bench");
    let (keys, lookups) = ("1000000", "2000000");
    out::progress(&format!(
        "running {} (builds two 1M-key tables and an LMDB, then 3 rounds)",
        bin.display()
    ));
    let output = Command::new(&bin)
        .arg(scratch.path())
        .args(["--keys", keys, "--lookups", lookups, "--rounds", "3"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !output.status.success() {
        bail!("persist-bench failed ({})", output.status);
    }
    let r: Value =
        serde_json::from_slice(&output.stdout).context("persist-bench printed invalid JSON")?;
    let f = |path: &[&str]| -> f64 {
        let mut cur = &r;
        for p in path {
            cur = &cur[*p];
        }
        cur.as_f64().unwrap_or(f64::NAN)
    };
    let rate = |m: &str| f(&["lookups_per_sec", m]);
    let (m, m4, p, l) = (rate("mmap"), rate("mmap_4k"), rate("pread"), rate("lmdb"));
    say!(
        "{keys} keys ({} MiB table, {} MiB LMDB), {lookups} random lookups per round, best of \
         {} rounds; all files resident (mincore: table {}/{} pages, LMDB {}/{} pages).",
        f(&["table_bytes"]) as u64 >> 20,
        f(&["lmdb_bytes"]) as u64 >> 20,
        f(&["rounds"]),
        f(&["resident", "table", "pages_resident_before"]),
        f(&["resident", "table", "pages_total"]),
        f(&["resident", "lmdb", "pages_resident_before"]),
        f(&["resident", "lmdb", "pages_total"]),
    );
    say!();
    say!("| method                          | lookups/s  | ns/lookup | mmap is x faster |");
    say!("|---------------------------------|-----------:|----------:|-----------------:|");
    for (name, v) in [
        ("persist mmap (MADV_HUGEPAGE)", m),
        ("persist mmap (4 KiB pages)", m4),
        ("persist pread (same file)", p),
        ("LMDB via heed", l),
    ] {
        say!(
            "| {name:<31} | {v:>10.0} | {:>9.0} | {:>16.2} |",
            1e9 / v,
            m / v
        );
    }
    say!();
    say!(
        "2 MiB pages: FilePmdMapped {} kB for the default mapping, {} kB for the 4 KiB one \
         (/proc/self/smaps of the benchmark).",
        f(&["file_pmd_mapped_kb", "mmap"]),
        f(&["file_pmd_mapped_kb", "mmap_4k"])
    );
    let goal = |name: &str, ratio: f64, want: f64| {
        say!(
            "Goal mmap >= {want}x {name}: {ratio:.2}x -> {}",
            if ratio >= want { "met" } else { "NOT met" }
        )
    };
    goal("pread", m / p, 3.0);
    goal("LMDB", m / l, 1.5);
    say!(
        "With 4 KiB pages instead: {:.2}x pread, {:.2}x LMDB.",
        m4 / p,
        m4 / l
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_calls_follow_the_descriptor_and_mapping() {
        let text = "\
10 openat(AT_FDCWD, \"/lib/libc.so.6\", O_RDONLY|O_CLOEXEC) = 3
10 read(3, \"\\177ELF\", 832) = 832
10 close(3) = 0
10 openat(AT_FDCWD, \"/s/t.tbl\", O_RDONLY|O_CLOEXEC) = 3
10 flock(3, LOCK_SH) = 0
10 mmap(NULL, 8192, PROT_READ, MAP_SHARED, 3, 0) = 0x7f0000000000
10 mremap(0x7f0000000000, 8192, 16384, MREMAP_MAYMOVE) = 0x7f1000000000
10 msync(0x7f1000000000, 16384, MS_SYNC) = 0
10 write(1, \"v\\n\", 2) = 2
10 close(3) = 0
10 read(3, \"x\", 1) = 1
";
        let calls = strace::parse(text);
        let mine = table_calls(&calls, Path::new("/s/t.tbl"));
        let names: Vec<&str> = mine.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["openat", "flock", "mmap", "mremap", "msync", "close"],
            "the libc read before and the read after close are another file's"
        );
    }

    #[test]
    fn sample_keys_are_distinct_and_tsv_has_one_line_each() {
        assert_ne!(sample_kv(1), sample_kv(2));
        let tsv = sample_tsv(3);
        assert_eq!(tsv.iter().filter(|b| **b == b'\n').count(), 3);
        assert!(tsv.starts_with(b"key-0000000\tvalue-0-"));
    }
}
