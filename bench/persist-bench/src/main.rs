//! The persist benchmark: random `get` on a table of N keys (default 1,000,000) resident in the
//! page cache, in one run, against two peers on the same keys in the same random order:
//! `persist::pread::PreadTable` (the same file and probing, but `pread(2)` instead of the
//! mapping) and LMDB through the heed crate (a B+tree in a read-only mapping).
//!
//! Run it with `cargo xtask bench persist` (which builds this crate in release mode and prints
//! the table), or `cargo run --release --manifest-path bench/persist-bench/Cargo.toml -- DIR`.
//! Prints one JSON document on stdout; progress on stderr.
//!
//! A production benchmark would pin CPUs, repeat on an idle machine and report spread
//! (criterion); here every method runs several interleaved rounds and the best is kept.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use heed::types::Bytes;
use heed::{Database, EnvOpenOptions};
use persist::pread::PreadTable;
use persist::{Access, Table, TableMut};

/// How much of the mapping at `map` the kernel maps with 2 MiB pages: `FilePmdMapped` of its
/// entry in /proc/self/smaps (0 if absent).
fn file_pmd_mapped_kb(map: &[u8]) -> u64 {
    let start = map.as_ptr() as usize;
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = a <= start && start < b;
                    continue;
                }
            }
        }
        if inside {
            if let Some(v) = line.strip_prefix("FilePmdMapped:") {
                return v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            }
        }
    }
    0
}

struct Args {
    dir: PathBuf,
    keys: u64,
    lookups: u64,
    rounds: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::new(),
        keys: 1_000_000,
        lookups: 2_000_000,
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--keys" => args.keys = num("--keys")?.max(1),
            "--lookups" => args.lookups = num("--lookups")?.max(1),
            "--rounds" => args.rounds = num("--rounds")?.clamp(1, 100) as u32,
            "-h" | "--help" => {
                return Err(
                    "usage: persist-bench DIR [--keys N] [--lookups N] [--rounds N]\n\
                            example: persist-bench /tmp/pb --keys 1000000 --lookups 2000000"
                        .into(),
                )
            }
            d if args.dir.as_os_str().is_empty() && !d.starts_with('-') => args.dir = d.into(),
            other => return Err(format!("unexpected argument {other:?}; try --help")),
        }
    }
    if args.dir.as_os_str().is_empty() {
        return Err("missing DIR (an empty scratch directory); try --help".into());
    }
    Ok(args)
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:07}").into_bytes()
}

/// The same key as [`key`], written into a stack buffer: the timed loops build each key from
/// its index so that fetching the key costs no cache miss (a `Vec<Vec<u8>>` of 1M keys would
/// add two random memory accesses to every lookup of every method).
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

/// xorshift64*.
fn rng(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&args.dir)?;
    let table_path = args.dir.join("bench.tbl");
    let small_path = args.dir.join("bench-4k.tbl");
    let lmdb_dir = args.dir.join("lmdb");
    let _ = std::fs::remove_file(&table_path);
    let _ = std::fs::remove_file(&small_path);
    let _ = std::fs::remove_dir_all(&lmdb_dir);
    std::fs::create_dir_all(&lmdb_dir)?;
    let keys: Vec<Vec<u8>> = (0..args.keys).map(key).collect();

    eprintln!("[bench] building the persist table ({} keys)", args.keys);
    let t0 = Instant::now();
    let mut w = TableMut::create(&table_path, persist::DEFAULT_SLOTS_LOG2)?;
    for (i, k) in keys.iter().enumerate() {
        w.put(k, &value(i as u64))?;
    }
    let ws = w.write_stats();
    w.close()?;
    let build_persist = t0.elapsed().as_secs_f64();
    // The same table built and read without MADV_HUGEPAGE (4 KiB pages), for comparison.
    let small_opts = persist::WriteOptions {
        huge_pages: false,
        ..Default::default()
    };
    let mut w = TableMut::create_with(&small_path, persist::DEFAULT_SLOTS_LOG2, small_opts)?;
    for (i, k) in keys.iter().enumerate() {
        w.put(k, &value(i as u64))?;
    }
    w.close()?;

    eprintln!("[bench] building the LMDB environment");
    let t0 = Instant::now();
    // SAFETY: heed requires that the environment is not opened twice in this process and that
    // no other process truncates it; the directory is fresh and private to this run.
    let env = unsafe {
        EnvOpenOptions::new()
            .map_size(4 << 30)
            .max_dbs(1)
            .open(&lmdb_dir)?
    };
    let mut wtxn = env.write_txn()?;
    let db: Database<Bytes, Bytes> = env.create_database(&mut wtxn, None)?;
    for (i, k) in keys.iter().enumerate() {
        db.put(&mut wtxn, k, &value(i as u64))?;
    }
    wtxn.commit()?;
    let build_lmdb = t0.elapsed().as_secs_f64();

    if args.keys > 10_000_000 {
        return Err("--keys is limited to 10,000,000 (keys have 7 digits)".into());
    }
    let mut kb = [0u8; 11];
    if key_into(1234, &mut kb) != key(1234) {
        return Err("key_into disagrees with key".into());
    }
    // The same random order for everyone.
    let mut next = rng(0x5eed_1234_abcd_ef01);
    let order: Vec<u32> = (0..args.lookups)
        .map(|_| (next() % args.keys) as u32)
        .collect();

    let table = Table::open(&table_path)?;
    let small = Table::open_for(&small_path, Access::Normal)?;
    let mut pread = PreadTable::open(&table_path)?;
    let rtxn = env.read_txn()?;

    // Warm-up: one pass over every key through each path, checking every value once.
    eprintln!("[bench] warming the page cache and checking values");
    for (i, k) in keys.iter().enumerate() {
        let want = value(i as u64);
        if table.get(k)? != Some(&want[..]) || small.get(k)? != Some(&want[..]) {
            return Err(format!("mmap lookup of {:?} is wrong", String::from_utf8_lossy(k)).into());
        }
        if pread.get(k)? != Some(&want[..]) {
            return Err(
                format!("pread lookup of {:?} is wrong", String::from_utf8_lossy(k)).into(),
            );
        }
        if db.get(&rtxn, k)? != Some(&want[..]) {
            return Err(format!("LMDB lookup of {:?} is wrong", String::from_utf8_lossy(k)).into());
        }
    }
    let res_table = persist::page_cache_residency(&table_path, false)?;
    let res_lmdb = persist::page_cache_residency(lmdb_dir.join("data.mdb"), false)?;

    let pmd_kb = [
        file_pmd_mapped_kb(table.bytes()),
        file_pmd_mapped_kb(small.bytes()),
    ];
    let mut best = [f64::MAX; 4];
    for round in 0..args.rounds {
        eprintln!("[bench] round {}/{}", round + 1, args.rounds);
        // mmap
        let t0 = Instant::now();
        let mut sum = 0usize;
        let mut kb = [0u8; 11];
        for &i in &order {
            sum += table.get(key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
        }
        black_box(sum);
        best[0] = best[0].min(t0.elapsed().as_secs_f64());
        // pread
        let t0 = Instant::now();
        let mut sum = 0usize;
        let mut kb = [0u8; 11];
        for &i in &order {
            sum += pread.get(key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
        }
        black_box(sum);
        best[1] = best[1].min(t0.elapsed().as_secs_f64());
        // LMDB
        let t0 = Instant::now();
        let mut sum = 0usize;
        let mut kb = [0u8; 11];
        for &i in &order {
            sum += db.get(&rtxn, key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
        }
        black_box(sum);
        best[2] = best[2].min(t0.elapsed().as_secs_f64());
        // mmap with 4 KiB pages
        let t0 = Instant::now();
        let mut sum = 0usize;
        let mut kb = [0u8; 11];
        for &i in &order {
            sum += small.get(key_into(i, &mut kb))?.map_or(0, <[u8]>::len);
        }
        black_box(sum);
        best[3] = best[3].min(t0.elapsed().as_secs_f64());
    }
    small.check()?;
    table.check()?;
    drop(rtxn);

    let n = args.lookups as f64;
    let rate = |s: f64| n / s;
    let (m, p, l, m4) = (rate(best[0]), rate(best[1]), rate(best[2]), rate(best[3]));
    let doc = serde_json::json!({
        "keys": args.keys,
        "lookups_per_round": args.lookups,
        "rounds": args.rounds,
        "table_bytes": std::fs::metadata(&table_path)?.len(),
        "lmdb_bytes": std::fs::metadata(lmdb_dir.join("data.mdb"))?.len(),
        "table_growths": ws.file_growths,
        "table_rehashes": ws.rehashes,
        "build_seconds": {"persist": build_persist, "lmdb": build_lmdb},
        "resident": {"table": res_table, "lmdb": res_lmdb},
        "file_pmd_mapped_kb": {"mmap": pmd_kb[0], "mmap_4k": pmd_kb[1]},
        "lookups_per_sec": {"mmap": m, "mmap_4k": m4, "pread": p, "lmdb": l},
        "ns_per_lookup": {"mmap": 1e9 / m, "mmap_4k": 1e9 / m4, "pread": 1e9 / p, "lmdb": 1e9 / l},
        "ratio_mmap_over_pread": m / p,
        "ratio_mmap_over_lmdb": m / l,
        "ratio_mmap_4k_over_pread": m4 / p,
        "ratio_mmap_4k_over_lmdb": m4 / l,
        "goals": {"mmap_over_pread_at_least": 3.0, "mmap_over_lmdb_at_least": 1.5},
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
