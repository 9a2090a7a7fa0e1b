//! The persist benchmark (issues 14 and 25): one run, the same N keys (default 1,000,000) in the same
//! random order for every method, measured against its peers:
//!
//! - `get`: random lookups with everything in memory — persist through the mapping, batched
//!   (`Table::get_many_into_depth`), through `pread(2)` on the same file, LMDB (heed), and an in-memory
//!   `std::collections::HashMap<Vec<u8>, Vec<u8>>`;
//! - `get-cold`: the same lookups right after the file was evicted from the page cache
//!   (`fsync` + `posix_fadvise(DONTNEED)`, checked with `mincore`);
//! - `load`: every key into an empty store (LMDB: one transaction);
//! - `put`: single overwrites, each visible to other processes when it returns (LMDB: a commit
//!   per put, `MDB_NOSYNC`);
//! - `get-during-load`: 1 and 2 reader processes looking keys up, first alone, then while a
//!   writer loads N new keys into the same store (persist: growth and rehash under them).
//!
//! - `limits`: the machine's bounds in the same run (`limits.rs`, `persist::bench::chase`): one
//!   dependent load beyond the LLC and at the table's size, with 4 KiB and 2 MiB pages, the
//!   memory-level parallelism, misses per get (perf_event_open, else the layout, else timing),
//!   and from them each lookup's bound; the batched method's keys per call are sized by the
//!   MLP, its lookups in flight (`get_many_into_depth`) by timing depths 4-32 on the table;
//! - `files`: the persist table and LMDB's file right after the load.
//!
//! It prints issue 25's goals as met or not met (never asserted), each figure beside its bound,
//! then the limits and the table (`persist::bench::render`); `--json` prints the one document
//! instead (`persist::bench::BenchReport`, which `cargo xtask bench persist` reads). Progress
//! goes to stderr.
//!
//! `cargo run --release --manifest-path bench/persist-bench/Cargo.toml -- DIR [--quick]`
//!
//! A production benchmark would pin CPUs, repeat on an idle machine and report the spread
//! (criterion); here every in-process measurement runs several interleaved rounds and keeps
//! the best, and the machine's load average is printed beside the numbers.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions};
use persist::bench::{
    self, chase, BenchReport, ColdStart, Files, GoalInputs, Machine, Method, Op, Row, Setup,
};
use persist::pread::PreadTable;
use persist::{Access, Table, TableMut, WriteOptions};

mod limits;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "\
usage: persist-bench DIR [--keys N] [--quick] [--lookups N] [--rounds N] [--json]

  DIR         a scratch directory (created; the benchmark's files are removed at the end)
  --keys N    keys in every store (default 1,000,000; --quick: 100,000)
  --quick     a small, fast run (CI smoke test): fewer keys, lookups, rounds and puts
  --lookups N random lookups per round and method (default 2,000,000; --quick: 200,000)
  --rounds N  rounds of the in-memory lookups, best kept (default 3; --quick: 1)
  --json      print one JSON document (persist::bench::BenchReport) instead of the table

examples:
  persist-bench /tmp/pb                 # the full benchmark (1M keys, a few minutes)
  persist-bench /tmp/pb --quick --json  # the small run, as JSON";

struct Args {
    dir: PathBuf,
    keys: u64,
    lookups: u64,
    rounds: u32,
    cold_lookups: u64,
    puts: u64,
    /// How long reader processes read alone before the writer starts.
    alone_window: Duration,
    /// Each pointer chase of the machine's limits: the best of `rounds` windows of `window`.
    chase: chase::Timing,
    quick: bool,
    json: bool,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut dir = None;
    let (mut keys, mut lookups, mut rounds) = (None, None, None);
    let (mut quick, mut json) = (false, false);
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match a.as_str() {
            "--keys" => keys = Some(num("--keys")?),
            "--lookups" => lookups = Some(num("--lookups")?),
            "--rounds" => rounds = Some(num("--rounds")?.min(100) as u32),
            "--quick" => quick = true,
            "--json" => json = true,
            d if dir.is_none() && !d.starts_with('-') => dir = Some(PathBuf::from(d)),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let dir = dir.ok_or("missing DIR (a scratch directory)")?;
    let keys = keys.unwrap_or(if quick { 100_000 } else { 1_000_000 });
    if keys > 4_000_000 {
        return Err(
            "--keys is limited to 4,000,000 (keys have 7 digits, and the load during \
                    reads adds as many again)"
                .into(),
        );
    }
    Ok(Args {
        dir,
        keys,
        lookups: lookups.unwrap_or(if quick { 200_000 } else { 2_000_000 }),
        rounds: rounds.unwrap_or(if quick { 1 } else { 3 }),
        cold_lookups: if quick { 2_000 } else { 10_000 }.min(keys),
        puts: if quick { 20_000 } else { 100_000 }.min(keys),
        alone_window: Duration::from_millis(if quick { 300 } else { 1000 }),
        chase: chase::Timing {
            window: Duration::from_millis(if quick { 10 } else { 100 }),
            rounds: if quick { 3 } else { 5 },
        },
        quick,
        json,
    })
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--reader") {
        // A reader process of the get-during-load measurement (see `reader_main`).
        if let Err(e) = reader_main(&argv[1..]) {
            let _ = writeln!(std::io::stderr(), "error: reader: {e}");
            std::process::exit(1);
        }
        return;
    }
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        let _ = writeln!(std::io::stdout(), "{USAGE}");
        return;
    }
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e} (see 'persist-bench --help')");
            std::process::exit(2);
        }
    };
    let result = run(&args);
    let _ = std::fs::remove_dir_all(args.dir.join("persist-bench-run"));
    match result.and_then(|report| print(&args, &report)) {
        Ok(()) => {}
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            std::process::exit(1);
        }
    }
}

/// How the batched method looks keys up: `keys` per `get_many_into_depth` call (sized by the
/// MLP curve), `depth` lookups in flight (chosen by measurement: `limits::choose_depth`).
#[derive(Clone, Copy)]
struct Batch {
    keys: usize,
    depth: usize,
}

fn progress(msg: &str) {
    let _ = writeln!(std::io::stderr(), "[persist-bench] {msg}");
}

// ----- keys, values, orders -------------------------------------------------------------------

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:07}").into_bytes()
}

/// The same key as [`key`], written into a stack buffer: the timed loops build each key from
/// its index, so fetching the key costs no cache miss for any method.
#[inline]
fn key_into(i: u32, buf: &mut [u8; 11]) -> &[u8] {
    buf[..4].copy_from_slice(b"key-");
    let mut n = i;
    for d in buf[4..].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    &buf[..]
}

fn value(i: u64) -> Vec<u8> {
    format!("value-{i}-{:08x}", i.wrapping_mul(2_654_435_761) as u32).into_bytes()
}

/// The value a `put` writes: different bytes, same length.
fn value2(i: u64) -> Vec<u8> {
    format!("VALUE-{i}-{:08x}", i.wrapping_mul(2_654_435_761) as u32).into_bytes()
}

/// xorshift64*.
fn rng(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `n` random key indices below `keys`, from `seed`: the order every method follows.
pub fn random_order(seed: u64, n: u64, keys: u64) -> Vec<u32> {
    let mut next = rng(seed);
    (0..n).map(|_| (next() % keys) as u32).collect()
}

/// A random permutation of `lo..hi` (the load order).
fn permutation(seed: u64, lo: u64, hi: u64) -> Vec<u32> {
    let mut v: Vec<u32> = (lo as u32..hi as u32).collect();
    let mut next = rng(seed);
    for i in (1..v.len()).rev() {
        v.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    v
}

const LOOKUP_SEED: u64 = 0x5eed_1234_abcd_ef01;

// ----- the machine ------------------------------------------------------------------------------

fn machine(dir: &Path) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem_total_bytes = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let filesystem = read("/proc/mounts")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, at, fs) = (f.next()?, f.next()?, f.next()?);
            canon.starts_with(at).then(|| (at.len(), fs.to_string()))
        })
        .max_by_key(|(n, _)| *n)
        .map_or_else(|| "unknown".into(), |(_, fs)| fs);
    Machine {
        cpu,
        logical_cpus: std::thread::available_parallelism().map_or(0, |n| n.get() as u64),
        mem_total_bytes,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        page_size: persist::page_size() as u64,
        transparent_hugepage: read("/sys/kernel/mm/transparent_hugepage/enabled")
            .trim()
            .to_string(),
        filesystem,
        load_average_1m: read("/proc/loadavg")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0),
    }
}

// ----- LMDB -------------------------------------------------------------------------------------

fn lmdb_open(dir: &Path, read_ahead: bool) -> Res<(Env, Database<Bytes, Bytes>)> {
    std::fs::create_dir_all(dir)?;
    let mut opts = EnvOpenOptions::new();
    opts.map_size(8 << 30).max_dbs(1);
    let mut flags = EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC;
    if !read_ahead {
        flags |= EnvFlags::NO_READ_AHEAD;
    }
    // SAFETY: NO_SYNC/NO_META_SYNC trade durability on power loss for speed, which is what
    // the comparison wants (persist does not sync either unless asked); NO_READ_AHEAD only
    // changes madvise. heed's `open` requires that the environment is not opened twice in
    // this process and that no other process truncates it: each directory is private to this
    // run, and every Env is closed (`lmdb_close`) before the same directory is opened again.
    let env = unsafe {
        opts.flags(flags);
        opts.open(dir)?
    };
    let mut wtxn = env.write_txn()?;
    let db: Database<Bytes, Bytes> = env.create_database(&mut wtxn, None)?;
    wtxn.commit()?;
    Ok((env, db))
}

/// Closes an environment and waits until LMDB has let go of its files.
fn lmdb_close(env: Env) {
    let closing = env.prepare_for_closing();
    closing.wait();
}

// ----- measurements -----------------------------------------------------------------------------

/// Runs `f` (which does `n` operations) and returns operations per second.
fn rate(n: u64, f: impl FnOnce() -> Res<()>) -> Res<f64> {
    let t0 = Instant::now();
    f()?;
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

/// Runs `f` (which does `n` operations); returns operations per second (wall clock) and this
/// thread's CPU nanoseconds per operation (what the chases are timed in: a turn another process
/// took on the CPU is not counted).
fn rate_and_cpu(n: u64, f: impl FnOnce() -> Res<()>) -> Res<(f64, f64)> {
    let cpu0 = bench::sys::thread_cpu_ns();
    let per_s = rate(n, f)?;
    Ok((
        per_s,
        (bench::sys::thread_cpu_ns() - cpu0) as f64 / n as f64,
    ))
}

fn row(method: Method, op: Op, per_s: f64, readers: u32, note: &str) -> Row {
    Row {
        method,
        op,
        per_s,
        readers,
        alone_per_s: None,
        per_cpu_s: None,
        alone_per_cpu_s: None,
        note: note.into(),
    }
}

struct Stores {
    table: PathBuf,
    lmdb: PathBuf,
    map: HashMap<Vec<u8>, Vec<u8>>,
}

/// Loads every key into each store, in the same random order; returns the `load` rows.
fn load_all(args: &Args, run: &Path, rows: &mut Vec<Row>) -> Res<Stores> {
    let perm = permutation(0x10ad, 0, args.keys);
    let table = run.join("bench.tbl");
    progress(&format!("load: {} keys into persist", args.keys));
    let per_s = rate(args.keys, || {
        let mut w =
            TableMut::create_with(&table, persist::DEFAULT_SLOTS_LOG2, WriteOptions::default())?;
        for &i in &perm {
            w.put(&key(i.into()), &value(i.into()))?;
        }
        w.close()?;
        Ok(())
    })?;
    rows.push(row(
        Method::PersistMmap,
        Op::Load,
        per_s,
        0,
        "TableMut::put of every key into a new table (grows from 64 slots)",
    ));
    let lmdb = run.join("lmdb");
    progress("load: LMDB, one transaction");
    let (env, db) = lmdb_open(&lmdb, true)?;
    let per_s = rate(args.keys, || {
        let mut wtxn = env.write_txn()?;
        for &i in &perm {
            db.put(&mut wtxn, &key(i.into()), &value(i.into()))?;
        }
        wtxn.commit()?;
        Ok(())
    })?;
    lmdb_close(env);
    rows.push(row(
        Method::Lmdb,
        Op::Load,
        per_s,
        0,
        "one write transaction, MDB_NOSYNC",
    ));
    progress("load: HashMap");
    let mut map = HashMap::new();
    let per_s = rate(args.keys, || {
        for &i in &perm {
            map.insert(key(i.into()), value(i.into()));
        }
        Ok(())
    })?;
    rows.push(row(
        Method::Hashmap,
        Op::Load,
        per_s,
        0,
        "HashMap::insert (std SipHash), starting empty",
    ));
    Ok(Stores { table, lmdb, map })
}

/// What the in-memory lookups measured besides their rows, for the misses per get.
struct HotExtras {
    /// LLC read misses per `Table::get` counted around the get loop (`perf_event_open`), or
    /// why they could not be.
    perf_misses_per_get: Result<f64, String>,
    /// CPU ns per `Table::get` of 64 keys looked up again and again (every line they touch
    /// stays cached): the lookup's work without misses.
    cached_get_ns: f64,
    /// CPU ns per random `Table::get` and per key of `get_many_into` (best round).
    get_cpu_ns: f64,
    batched_cpu_ns: f64,
}

/// In-memory random lookups, every method on the same order, interleaved rounds, best kept.
/// `table` is open with `Table::open` (the mapping whose huge pages the limits checked).
fn hot_gets(
    args: &Args,
    s: &Stores,
    table: &Table,
    batch: Batch,
    rows: &mut Vec<Row>,
) -> Res<HotExtras> {
    let mut pread = PreadTable::open(&s.table)?;
    let (env, db) = lmdb_open(&s.lmdb, true)?;
    let rtxn = env.read_txn()?;
    progress("get: warming the page cache and checking every value through every method");
    for i in 0..args.keys {
        let (k, want) = (key(i), value(i));
        let ok = table.get(&k)? == Some(&want[..])
            && pread.get(&k)? == Some(&want[..])
            && db.get(&rtxn, &k)? == Some(&want[..])
            && s.map.get(&k).map(Vec::as_slice) == Some(&want[..]);
        if !ok {
            return Err(format!("a lookup of {:?} is wrong", String::from_utf8_lossy(&k)).into());
        }
    }
    let order = random_order(LOOKUP_SEED, args.lookups, args.keys);
    let cached_order: Vec<u32> = order
        .iter()
        .take(64)
        .copied()
        .cycle()
        .take(order.len())
        .collect();
    let counter = bench::sys::Counter::open(bench::sys::CacheEvent::LastLevel);
    let mut perf_misses_per_get = Err(match &counter {
        Ok(_) => "no round counted".to_string(),
        Err(e) => format!("perf_event_open: {}", bench::sys::describe_perf_error(e)),
    });
    let mut best = [0f64; 6];
    let mut best_cpu = [f64::INFINITY; 6];
    for round in 0..args.rounds {
        progress(&format!(
            "get: round {}/{}, {} lookups per method",
            round + 1,
            args.rounds,
            args.lookups
        ));
        let n = args.lookups;
        let mut kb = [0u8; 11];
        let mut sum = 0usize;
        let r = [
            rate_and_cpu(n, || {
                if let Ok(c) = &counter {
                    c.start()?;
                }
                for &i in &order {
                    sum += table.get(key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
                }
                if let Ok(c) = &counter {
                    perf_misses_per_get = Ok(c.stop()? as f64 / n as f64);
                }
                Ok(())
            })?,
            rate_and_cpu(n, || {
                let mut keys = vec![[0u8; 11]; batch.keys];
                let mut out = Vec::with_capacity(batch.keys);
                for chunk in order.chunks(batch.keys) {
                    for (slot, &i) in keys.iter_mut().zip(chunk) {
                        key_into(i, slot);
                    }
                    table.get_many_into_depth(&keys[..chunk.len()], &mut out, batch.depth)?;
                    sum += out.iter().map(|v| v.map_or(0, <[u8]>::len)).sum::<usize>();
                }
                Ok(())
            })?,
            rate_and_cpu(n, || {
                for &i in &order {
                    sum += pread.get(key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
                }
                Ok(())
            })?,
            rate_and_cpu(n, || {
                for &i in &order {
                    sum += db.get(&rtxn, key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
                }
                Ok(())
            })?,
            rate_and_cpu(n, || {
                for &i in &order {
                    sum += s.map.get(key_into(i, &mut kb)).map_or(0, Vec::len);
                }
                Ok(())
            })?,
            rate_and_cpu(n, || {
                for &i in &cached_order {
                    sum += table.get(key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
                }
                Ok(())
            })?,
        ];
        black_box(sum);
        for ((b, c), (r, cpu)) in best.iter_mut().zip(best_cpu.iter_mut()).zip(r) {
            *b = b.max(r);
            *c = c.min(cpu);
        }
    }
    table.check()?;
    drop(rtxn);
    lmdb_close(env);
    let rounds = format!("best of {} rounds of {} lookups", args.rounds, args.lookups);
    for (method, per_s, how) in [
        (Method::PersistMmap, best[0], "Table::get, MADV_HUGEPAGE"),
        (
            Method::PersistMmapBatched,
            best[1],
            &format!(
                "Table::get_many_into_depth, batches of {}, depth {}",
                batch.keys, batch.depth
            ) as &str,
        ),
        (Method::PersistPread, best[2], "PreadTable::get, pread(2)"),
        (Method::Lmdb, best[3], "one read transaction"),
        (Method::Hashmap, best[4], "HashMap::get (std SipHash)"),
    ] {
        rows.push(row(method, Op::Get, per_s, 1, &format!("{how}; {rounds}")));
    }
    Ok(HotExtras {
        perf_misses_per_get,
        cached_get_ns: best_cpu[5],
        get_cpu_ns: best_cpu[0],
        batched_cpu_ns: best_cpu[1],
    })
}

/// Single overwrites of existing keys.
fn puts(args: &Args, s: &mut Stores, rows: &mut Vec<Row>) -> Res<()> {
    let order = random_order(0x9075, args.puts, args.keys);
    progress(&format!("put: {} single overwrites per method", args.puts));
    let mut w = TableMut::open(&s.table, WriteOptions::default())?;
    let per_s = rate(args.puts, || {
        for &i in &order {
            w.put(&key(i.into()), &value2(i.into()))?;
        }
        Ok(())
    })?;
    w.close()?;
    rows.push(row(
        Method::PersistMmap,
        Op::Put,
        per_s,
        0,
        "TableMut::put, each visible to every process when it returns",
    ));
    let (env, db) = lmdb_open(&s.lmdb, true)?;
    let per_s = rate(args.puts, || {
        for &i in &order {
            let mut wtxn = env.write_txn()?;
            db.put(&mut wtxn, &key(i.into()), &value2(i.into()))?;
            wtxn.commit()?;
        }
        Ok(())
    })?;
    lmdb_close(env);
    rows.push(row(
        Method::Lmdb,
        Op::Put,
        per_s,
        0,
        "a write transaction and commit per put, MDB_NOSYNC",
    ));
    let per_s = rate(args.puts, || {
        for &i in &order {
            s.map.insert(key(i.into()), value2(i.into()));
        }
        Ok(())
    })?;
    rows.push(row(Method::Hashmap, Op::Put, per_s, 0, "HashMap::insert"));
    Ok(())
}

/// Lookups right after eviction from the page cache, checked with mincore.
fn cold_gets(args: &Args, s: &Stores, batch: Batch, rows: &mut Vec<Row>) -> Res<Vec<ColdStart>> {
    let order = random_order(LOOKUP_SEED ^ 0xc01d, args.cold_lookups, args.keys);
    let n = args.cold_lookups;
    // Both stores written back first (fsync; evicted too): the puts just before left both
    // dirty, and the kernel writing one store's pages back during another method's cold
    // lookups would compete with them for the disk (it fell on whichever method came first).
    for file in [s.table.clone(), s.lmdb.join("data.mdb")] {
        persist::page_cache_residency(&file, true)?;
    }
    let mut starts = Vec::new();
    for method in [
        Method::PersistMmap,
        Method::PersistMmapBatched,
        Method::PersistPread,
        Method::Lmdb,
    ] {
        let file = match method {
            Method::Lmdb => s.lmdb.join("data.mdb"),
            _ => s.table.clone(),
        };
        // Nothing of ours maps the file now: evict it (fsync, then POSIX_FADV_DONTNEED).
        let res = persist::page_cache_residency(&file, true)?;
        progress(&format!(
            "get-cold: {method:?}: {} of {} pages resident after eviction (mincore), {n} lookups",
            res.pages_resident_after, res.pages_total
        ));
        let mut kb = [0u8; 11];
        let mut sum = 0usize;
        let start = persist::faults();
        let (per_s, note) = match method {
            Method::PersistMmap | Method::PersistMmapBatched => {
                let t = Table::open_for(&s.table, Access::Random)?;
                let per_s = rate(n, || {
                    if method == Method::PersistMmap {
                        for &i in &order {
                            sum += t.get(key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
                        }
                    } else {
                        let mut keys = vec![[0u8; 11]; batch.keys];
                        let mut out = Vec::new();
                        for chunk in order.chunks(batch.keys) {
                            for (slot, &i) in keys.iter_mut().zip(chunk) {
                                key_into(i, slot);
                            }
                            t.get_many_into_depth(&keys[..chunk.len()], &mut out, batch.depth)?;
                            sum += out.iter().map(|v| v.map_or(0, <[u8]>::len)).sum::<usize>();
                        }
                    }
                    Ok(())
                })?;
                (per_s, "fresh Table::open_for(Access::Random): the slot array read in (MADV_WILLNEED), MADV_RANDOM for the rest")
            }
            Method::PersistPread => {
                let mut p = PreadTable::open(&s.table)?;
                let per_s = rate(n, || {
                    for &i in &order {
                        sum += p.get(key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
                    }
                    Ok(())
                })?;
                (per_s, "pread(2); the kernel's default read-ahead")
            }
            _ => {
                let (env, db) = lmdb_open(&s.lmdb, false)?;
                let rtxn = env.read_txn()?;
                let per_s = rate(n, || {
                    for &i in &order {
                        sum += db.get(&rtxn, key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
                    }
                    Ok(())
                })?;
                drop(rtxn);
                lmdb_close(env);
                (per_s, "MDB_NORDAHEAD (LMDB's advice for random reads)")
            }
        };
        black_box(sum);
        let majors = persist::faults().major - start.major;
        starts.push(ColdStart {
            method,
            pages_total: res.pages_total,
            pages_resident_before: res.pages_resident_before,
            pages_resident_after: res.pages_resident_after,
            major_faults: majors,
        });
        rows.push(row(
            method,
            Op::GetCold,
            per_s,
            1,
            &format!("{note}; {n} lookups; {majors} major faults"),
        ));
    }
    Ok(starts)
}

// ----- reads during a load (reader processes) -------------------------------------------------

/// A reader's lookups of a chunk of key indices; returns the bytes found (kept alive).
type Lookup = Box<dyn FnMut(&[u32]) -> Res<usize>>;

/// A reader process: `--reader METHOD PATH KEYS PHASE_DIR SEED BATCH`. Opens the store, warms
/// up, prints `ready`, waits for a line on stdin, then counts lookups until `PHASE_DIR/during`
/// exists (alone) and again until `PHASE_DIR/stop` exists (during the load); prints
/// `result ALONE_OPS ALONE_SECS ALONE_CPU_SECS DURING_OPS DURING_SECS DURING_CPU_SECS` (its own
/// CPU time in each window, `CLOCK_PROCESS_CPUTIME_ID`: how much of a CPU it got).
fn reader_main(argv: &[String]) -> Res<()> {
    let [method, path, keys, phase, seed, batch, depth] = argv else {
        return Err("usage: --reader METHOD PATH KEYS PHASE_DIR SEED BATCH DEPTH".into());
    };
    let keys: u64 = keys.parse()?;
    let batch = Batch {
        keys: batch.parse()?,
        depth: depth.parse()?,
    };
    let phase = PathBuf::from(phase);
    let order = random_order(seed.parse()?, 1 << 20, keys);
    let mut lookup: Lookup = match method.as_str() {
        "persist-mmap" => {
            let t: &'static Table = Box::leak(Box::new(Table::open(path)?));
            Box::new(move |ids: &[u32]| {
                let mut kb = [0u8; 11];
                let mut sum = 0;
                for &i in ids {
                    sum += t.get(key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
                }
                Ok(sum)
            })
        }
        "persist-mmap-batched" => {
            let t: &'static Table = Box::leak(Box::new(Table::open(path)?));
            let mut keys = vec![[0u8; 11]; batch.keys];
            let mut out = Vec::with_capacity(batch.keys);
            Box::new(move |ids: &[u32]| {
                let mut sum = 0;
                for chunk in ids.chunks(batch.keys) {
                    for (slot, &i) in keys.iter_mut().zip(chunk) {
                        key_into(i, slot);
                    }
                    t.get_many_into_depth(&keys[..chunk.len()], &mut out, batch.depth)?;
                    sum += out.iter().map(|v| v.map_or(0, <[u8]>::len)).sum::<usize>();
                }
                Ok(sum)
            })
        }
        "lmdb" => {
            let (env, db) = lmdb_open(Path::new(path), true)?;
            let env: &'static Env = Box::leak(Box::new(env));
            Box::new(move |ids: &[u32]| {
                // A fresh read transaction per chunk, as a long-running reader would renew
                // its snapshot (a transaction held forever would pin the writer's old pages).
                let rtxn = env.read_txn()?;
                let mut kb = [0u8; 11];
                let mut sum = 0;
                for &i in ids {
                    sum += db.get(&rtxn, key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
                }
                Ok(sum)
            })
        }
        other => return Err(format!("unknown reader method {other}").into()),
    };
    const CHUNK: usize = 4096;
    let mut sum = 0;
    for chunk in order.chunks(CHUNK).take(64) {
        sum += lookup(chunk)?; // warm-up: page tables and caches
    }
    let mut out = std::io::stdout();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let mut measure = |until: &Path| -> Res<(u64, f64, f64)> {
        let (t0, cpu0) = (Instant::now(), bench::sys::process_cpu_seconds());
        let mut ops = 0u64;
        let mut chunks = order.chunks(CHUNK).cycle();
        while !until.exists() {
            let chunk = chunks.next().unwrap_or(&[]);
            sum += lookup(chunk)?;
            ops += chunk.len() as u64;
        }
        let cpu = bench::sys::process_cpu_seconds() - cpu0;
        Ok((ops, t0.elapsed().as_secs_f64(), cpu))
    };
    let (alone_ops, alone_secs, alone_cpu) = measure(&phase.join("during"))?;
    let (during_ops, during_secs, during_cpu) = measure(&phase.join("stop"))?;
    black_box(sum);
    writeln!(
        out,
        "result {alone_ops} {alone_secs} {alone_cpu} {during_ops} {during_secs} {during_cpu}"
    )?;
    Ok(())
}

struct ReaderProc {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Drop for ReaderProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ReaderProc {
    fn line(&mut self) -> Res<String> {
        let mut l = String::new();
        if self.out.read_line(&mut l)? == 0 {
            return Err("a reader process ended early (its error is above)".into());
        }
        Ok(l.trim_end().to_string())
    }
}

/// Reader processes read alone, then while this process loads `keys` new keys into the same
/// store (a copy of it, so every measurement starts from the same table).
fn reads_during_load(
    args: &Args,
    s: &Stores,
    run: &Path,
    batch: Batch,
    rows: &mut Vec<Row>,
) -> Res<()> {
    let exe = std::env::current_exe()?;
    let new_keys = permutation(0x2e57, args.keys, 2 * args.keys);
    for method in [
        Method::PersistMmap,
        Method::PersistMmapBatched,
        Method::Lmdb,
    ] {
        for readers in [1u32, 2] {
            let phase = run.join("phase");
            let _ = std::fs::remove_dir_all(&phase);
            std::fs::create_dir_all(&phase)?;
            // A copy of the store for this measurement.
            let (store, name) = match method {
                Method::Lmdb => {
                    let dir = run.join("lmdb-during");
                    let _ = std::fs::remove_dir_all(&dir);
                    std::fs::create_dir_all(&dir)?;
                    std::fs::copy(s.lmdb.join("data.mdb"), dir.join("data.mdb"))?;
                    (dir, "lmdb")
                }
                Method::PersistMmapBatched => {
                    let p = run.join("during.tbl");
                    std::fs::copy(&s.table, &p)?;
                    (p, "persist-mmap-batched")
                }
                _ => {
                    let p = run.join("during.tbl");
                    std::fs::copy(&s.table, &p)?;
                    (p, "persist-mmap")
                }
            };
            progress(&format!(
                "get-during-load: {readers} {name} reader process(es), then a writer loads {} \
                 new keys",
                args.keys
            ));
            let mut procs = Vec::new();
            for r in 0..readers {
                let mut child = Command::new(&exe)
                    .arg("--reader")
                    .arg(name)
                    .arg(&store)
                    .arg(args.keys.to_string())
                    .arg(&phase)
                    .arg((LOOKUP_SEED + u64::from(r)).to_string())
                    .arg(batch.keys.to_string())
                    .arg(batch.depth.to_string())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()?;
                let out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
                procs.push(ReaderProc { child, out });
            }
            for p in &mut procs {
                let l = p.line()?;
                if l != "ready" {
                    return Err(format!("reader said {l:?}").into());
                }
            }
            for p in &mut procs {
                let stdin = p.child.stdin.as_mut().ok_or("no stdin")?;
                stdin.write_all(b"go\n")?;
                stdin.flush()?;
            }
            // The readers measure alone for a while (a measurement window, not a wait for
            // anything), then the writer starts.
            std::thread::sleep(args.alone_window);
            std::fs::write(phase.join("during"), b"")?;
            let load = match method {
                Method::Lmdb => {
                    let (env, db) = lmdb_open(&store, true)?;
                    let r = rate(args.keys, || {
                        for chunk in new_keys.chunks(10_000) {
                            let mut wtxn = env.write_txn()?;
                            for &i in chunk {
                                db.put(&mut wtxn, &key(i.into()), &value(i.into()))?;
                            }
                            wtxn.commit()?;
                        }
                        Ok(())
                    });
                    lmdb_close(env);
                    r?
                }
                _ => rate(args.keys, || {
                    let mut w = TableMut::open(&store, WriteOptions::default())?;
                    for &i in &new_keys {
                        w.put(&key(i.into()), &value(i.into()))?;
                    }
                    w.close()?;
                    Ok(())
                })?,
            };
            std::fs::write(phase.join("stop"), b"")?;
            let (mut alone, mut during) = (0.0, 0.0);
            let (mut alone_ops, mut alone_cpu, mut during_ops, mut during_cpu) =
                (0.0, 0.0, 0.0, 0.0);
            for p in &mut procs {
                let l = p.line()?;
                let f: Vec<f64> = l
                    .strip_prefix("result ")
                    .ok_or_else(|| format!("reader said {l:?}"))?
                    .split_whitespace()
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
                let [a_ops, a_s, a_cpu, d_ops, d_s, d_cpu] = f[..] else {
                    return Err(format!("reader said {l:?}").into());
                };
                alone += a_ops / a_s;
                during += d_ops / d_s;
                (alone_ops, alone_cpu) = (alone_ops + a_ops, alone_cpu + a_cpu);
                (during_ops, during_cpu) = (during_ops + d_ops, during_cpu + d_cpu);
            }
            drop(procs);
            let mut r = row(
                method,
                Op::GetDuringLoad,
                during,
                readers,
                &format!(
                    "while a writer loads {} new keys ({:.0} puts/s{}); alone: the same \
                     processes just before",
                    args.keys,
                    load,
                    if method == Method::Lmdb {
                        ", commits of 10,000"
                    } else {
                        ", growth and rehash under the readers"
                    }
                ),
            );
            r.alone_per_s = Some(alone);
            let per_cpu = |ops: f64, cpu: f64| (cpu > 0.0).then(|| ops / cpu);
            r.per_cpu_s = per_cpu(during_ops, during_cpu);
            r.alone_per_cpu_s = per_cpu(alone_ops, alone_cpu);
            rows.push(r);
            let _ = std::fs::remove_dir_all(&store);
            let _ = std::fs::remove_file(&store);
        }
    }
    Ok(())
}

/// The files right after the load (`st_size`) and the blocks allocated to them.
fn files_after_load(s: &Stores) -> Res<(Files, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let persist = std::fs::metadata(&s.table)?;
    let lmdb = std::fs::metadata(s.lmdb.join("data.mdb"))?;
    Ok((
        Files {
            persist_bytes: persist.len(),
            lmdb_bytes: lmdb.len(),
        },
        persist.blocks() * 512,
        lmdb.blocks() * 512,
    ))
}

/// Bytes of the table's mapping mapped with 2 MiB pages (`FilePmdMapped` in smaps).
fn table_pmd_bytes(table: &Table) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    chase::smaps_kib(&smaps, table.mapping_addr(), "FilePmdMapped").map(|k| k * 1024)
}

fn run(args: &Args) -> Res<BenchReport> {
    let run = args.dir.join("persist-bench-run");
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(&run)?;
    let machine = machine(&run);
    let mut rows = Vec::new();
    let mut stores = load_all(args, &run, &mut rows)?;
    let (files, persist_allocated_bytes, lmdb_allocated_bytes) = files_after_load(&stores)?;
    // The files as a reader finds them after they left the page cache (a reboot, memory
    // pressure), not as the writer left them: read back under MADV_HUGEPAGE, a file system
    // with large folios (ext4 on Linux 6.16+) gives the table 2 MiB pages, which the pages the
    // writer's faults made never are. `limits` prints how much of the mapping got them.
    for file in [stores.table.clone(), stores.lmdb.join("data.mdb")] {
        persist::page_cache_residency(&file, true)?;
    }
    let table = Table::open(&stores.table)?;
    progress("limits: reading the table back in through its mapping (every key once)");
    let mut kb = [0u8; 11];
    for i in 0..args.keys as u32 {
        black_box(table.get(key_into(i, &mut kb))?);
    }
    let pmd = table_pmd_bytes(&table);
    let table_pages = match pmd {
        // The MLP is measured with the pages most of the table has.
        Some(b) if b > 0 && b * 2 >= table.mapped_len() => bench::PageKind::Huge,
        _ => bench::PageKind::Small,
    };
    let chases = limits::measure(
        args,
        table.mapped_len(),
        table_pages,
        &machine.transparent_hugepage,
    );
    let (batch, batch_why) = limits::choose_batch(&chases.mlp_curve);
    let (depth, depth_why) = limits::choose_depth(&table, args.keys, batch)?;
    let batch = Batch { keys: batch, depth };
    let batch_why = format!("{batch_why}; {depth_why}");
    progress(&format!(
        "limits: {:.1} s of chases; batch: {batch_why}",
        chases.seconds
    ));
    let hot = hot_gets(args, &stores, &table, batch, &mut rows)?;
    let mut limits_setup = bench::LimitsSetup {
        llc_bytes: chases.llc_bytes,
        l2_hit_ns: chases.l2_hit_ns,
        window_ms: args.chase.window.as_millis() as u64,
        rounds: args.chase.rounds,
        runs: chases.runs,
        mlp_pages: chases.mlp_pages,
        mlp_curve: chases.mlp_curve,
        table_pmd_bytes: table_pmd_bytes(&table).or(pmd),
        table_mapped_bytes: table.mapped_len(),
        misses: bench::MissCount {
            method: None,
            per_get: None,
            detail: String::new(),
        },
        seconds: chases.seconds,
    };
    let table_latency = bench::limits(&limits_setup).one_miss_ns(&limits_setup);
    let sample = random_order(LOOKUP_SEED, args.keys.min(10_000), args.keys);
    limits_setup.misses = limits::misses(
        &table,
        &sample,
        &hot.perf_misses_per_get,
        hot.get_cpu_ns,
        hot.cached_get_ns,
        table_latency,
    )?;
    drop(table);
    puts(args, &mut stores, &mut rows)?;
    let table_bytes = std::fs::metadata(&stores.table)?.len();
    let cold = cold_gets(args, &stores, batch, &mut rows)?;
    reads_during_load(args, &stores, &run, batch, &mut rows)?;
    let limits = bench::limits(&limits_setup);
    let goals = bench::goals(&GoalInputs {
        rows: &rows,
        files: &files,
        limits: &limits,
        one_miss_ns: limits.one_miss_ns(&limits_setup),
        get_cpu_ns: Some(hot.get_cpu_ns),
        batched_cpu_ns: Some(hot.batched_cpu_ns),
        cached_get_cpu_ns: Some(hot.cached_get_ns),
        cold: &cold,
        cold_lookups: args.cold_lookups,
    });
    Ok(BenchReport {
        keys: args.keys,
        machine,
        rows,
        files,
        limits,
        goals,
        setup: Setup {
            quick: args.quick,
            lookups: args.lookups,
            rounds: args.rounds,
            batch: batch.keys as u32,
            batch_why,
            cold_lookups: args.cold_lookups,
            puts: args.puts,
            table_bytes,
            get_cpu_ns: Some(hot.get_cpu_ns),
            batched_cpu_ns: Some(hot.batched_cpu_ns),
            persist_allocated_bytes,
            lmdb_allocated_bytes,
            cold,
            limits: limits_setup,
        },
    })
}

// ----- output -----------------------------------------------------------------------------------

fn print(args: &Args, r: &BenchReport) -> Res<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(r)?)?;
    } else {
        write!(out, "{}", bench::render(r))?;
    }
    Ok(())
}
