//! The machine's limits, measured in the same run as the lookups (`persist::bench::chase`
//! does the chasing), the batch size they suggest, and the misses one get takes.

use std::time::Instant;

use persist::bench::chase;
use persist::bench::{BufferKind, MissCount, MissMethod, MlpPoint, PageKind};
use persist::Table;

use crate::{key_into, progress, Args, Res};

/// What the chases measured (the raw material of `persist::bench::LimitsSetup`).
pub struct Chases {
    pub llc_bytes: Option<u64>,
    pub l2_hit_ns: Option<f64>,
    pub runs: Vec<persist::bench::ChaseRun>,
    pub mlp_pages: PageKind,
    pub mlp_curve: Vec<MlpPoint>,
    pub seconds: f64,
}

/// Chases over half the L2 cache (the plausibility floor), over a buffer beyond the LLC (4x
/// it, at least 256 MiB; `--quick`: 2x, at least 64 MiB) and over one the size of the table,
/// each with 4 KiB and 2 MiB pages; then k interleaved chases over the table-size buffer with
/// the pages the table is mapped with (or the other kind, if those were not obtained). A
/// beyond-LLC buffer is unmapped after its chase; the table-size ones after the k chases.
pub fn measure(args: &Args, table_bytes: u64, table_pages: PageKind, thp: &str) -> Chases {
    let t0 = Instant::now();
    let (llc_bytes, l2_bytes) = chase::caches();
    let timing = args.chase;
    // Half the L2 cache, in a plain vector: every load an L2 (or L1) hit.
    let l2_hit_ns = l2_bytes.map(|l2| {
        let mut words = vec![0u64; (l2 / 2 / 8) as usize];
        chase::link_cycle(&mut words, 7);
        chase::ns_per_load(&words, 1, timing.window / 4, timing.rounds, 1)
    });
    let (factor, floor) = if args.quick {
        (2, 64 << 20)
    } else {
        (4, 256 << 20)
    };
    let beyond = llc_bytes.map_or(floor, |l| (factor * l).max(floor));
    let mut runs = Vec::new();
    // The table-size buffers stay mapped until the k chases have run over one of them.
    let mut table_buffers = Vec::new();
    for (buffer, bytes) in [
        (BufferKind::BeyondLlc, beyond),
        (BufferKind::Table, table_bytes),
    ] {
        for pages in [PageKind::Small, PageKind::Huge] {
            progress(&format!(
                "limits: pointer chase over {} MiB ({buffer:?}), {} pages",
                bytes >> 20,
                if pages == PageKind::Huge {
                    "2 MiB"
                } else {
                    "4 KiB"
                }
            ));
            let (run, buf) = chase::latency(buffer, bytes, pages, thp, timing);
            if let (BufferKind::Table, Some(buf), Some(_)) = (buffer, buf, run.ns_per_load) {
                table_buffers.push((pages, buf));
            }
            runs.push(run);
        }
    }
    // k chases with the pages the table has; with the other kind if those were not obtained.
    table_buffers.sort_by_key(|(pages, _)| *pages != table_pages);
    let (mlp_pages, mlp_curve) = match table_buffers.first_mut() {
        Some((pages, buf)) => {
            progress("limits: k interleaved chases (memory-level parallelism)");
            (*pages, chase::mlp_curve(buf, timing))
        }
        None => (table_pages, Vec::new()),
    };
    drop(table_buffers);
    Chases {
        llc_bytes,
        l2_hit_ns,
        runs,
        mlp_pages,
        mlp_curve,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// Keys per `get_many_into_depth` call: the smallest k whose interleaved chases come within 10% of
/// the best rate (the misses the core keeps in flight: a batch of that many keys has one miss
/// per key in flight at each step of the lookup), at least 8; 64 when the MLP was not
/// measured.
pub fn choose_batch(curve: &[MlpPoint]) -> (usize, String) {
    let Some(best) = curve.iter().map(|p| p.ns_per_load).min_by(f64::total_cmp) else {
        return (64, "64 keys (memory-level parallelism not measured)".into());
    };
    let knee = curve
        .iter()
        .filter(|p| p.ns_per_load <= 1.1 * best)
        .map(|p| p.k)
        .min()
        .unwrap_or(1);
    let batch = (knee as usize).max(8);
    (
        batch,
        format!(
            "{batch} keys per get_many_into_depth call: k = {knee} interleaved chases came within 10% of \
             the best rate ({best:.1} ns per load){}",
            if (knee as usize) < batch {
                ", raised to 8"
            } else {
                ""
            }
        ),
    )
}

/// Lookups in flight per `get_many_into_depth` call ([`persist::Table::get_many_into_depth`]),
/// chosen by measurement: each candidate depth looks up the same random keys in batches of
/// `batch`, alternated over two rounds, timed in CPU time; the fastest wins (ties to the
/// smaller). The text lists every depth's figure.
pub fn choose_depth(table: &Table, keys: u64, batch: usize) -> Res<(usize, String)> {
    const DEPTHS: [usize; 4] = [4, 8, 16, 32];
    const LOOKUPS: usize = 200_000;
    let order = crate::random_order(0xde9_7a5e, LOOKUPS as u64, keys);
    let mut best = [f64::INFINITY; DEPTHS.len()];
    let mut names = vec![[0u8; 11]; batch];
    let mut out = Vec::with_capacity(batch);
    for _round in 0..2 {
        for (b, &depth) in best.iter_mut().zip(&DEPTHS) {
            let cpu0 = persist::bench::sys::thread_cpu_ns();
            for chunk in order.chunks(batch) {
                for (name, &i) in names.iter_mut().zip(chunk) {
                    key_into(i, name);
                }
                table.get_many_into_depth(&names[..chunk.len()], &mut out, depth)?;
                std::hint::black_box(&out);
            }
            let ns = (persist::bench::sys::thread_cpu_ns() - cpu0) as f64 / LOOKUPS as f64;
            *b = b.min(ns);
        }
    }
    let mut pick = 0;
    for (i, ns) in best.iter().enumerate() {
        if *ns < best[pick] {
            pick = i;
        }
    }
    let each: Vec<String> = DEPTHS
        .iter()
        .zip(&best)
        .map(|(d, ns)| format!("{d}: {ns:.0} ns"))
        .collect();
    Ok((
        DEPTHS[pick],
        format!(
            "depth {} (lookups in flight; CPU ns per key, best of 2 alternated rounds of \
             {LOOKUPS}: {})",
            DEPTHS[pick],
            each.join(", ")
        ),
    ))
}

/// Misses per `Table::get`: counted by `perf_event_open` when the machine allows it; else the
/// distinct lines a lookup touches, as the table's own lookup reads them, for a sample of the
/// lookup order; else (a key the lookup cannot find) by timing: (random get ns - cached get ns)
/// / the table-size latency. `detail` says which and why.
pub fn misses(
    table: &Table,
    sample: &[u32],
    perf: &Result<f64, String>,
    get_ns: f64,
    cached_get_ns: f64,
    table_latency_ns: Option<f64>,
) -> Res<MissCount> {
    let timing = table_latency_ns.map(|lat| ((get_ns - cached_get_ns) / lat).max(0.0));
    let timing_text = match timing {
        Some(m) => format!(
            "by timing, ({get_ns:.0} CPU ns per random get - {cached_get_ns:.0} per cached \
             get) / the table-size latency = {m:.2}"
        ),
        None => "by timing: not measured (no plausible table-size latency)".into(),
    };
    let perf_why = match perf {
        Ok(m) => {
            return Ok(MissCount {
                method: Some(MissMethod::PerfLastLevel),
                per_get: Some(*m),
                detail: format!(
                    "perf_event_open: last-level cache read misses counted around the get \
                     loop: {m:.2} per get; {timing_text}"
                ),
            })
        }
        Err(e) => e,
    };
    let mut kb = [0u8; 11];
    let mut total = 0u64;
    let mut walked = Ok(());
    for &i in sample {
        match persist::bench::layout::lines_touched(table, key_into(i, &mut kb)) {
            Ok(n) => total += u64::from(n),
            Err(e) => {
                walked = Err(e);
                break;
            }
        }
    }
    let why = perf_why;
    Ok(match walked {
        Ok(()) if !sample.is_empty() => {
            let m = total as f64 / sample.len() as f64;
            MissCount {
                method: Some(MissMethod::Layout),
                per_get: Some(m),
                detail: format!(
                    "{why}; from the layout: {m:.2} distinct 64-byte lines per get (the slots \
                     probed from the key's home slot + the record's head, key and value), the \
                     mean over {} keys of the lookup order — an upper bound on misses (a line \
                     already cached is no miss; the header's line, read by every get, is not \
                     counted); {timing_text}",
                    sample.len()
                ),
            }
        }
        other => MissCount {
            method: timing.map(|_| MissMethod::Timing),
            per_get: timing,
            detail: format!(
                "{why}; the layout count failed ({}); {timing_text}",
                other.err().unwrap_or_else(|| "no keys".into())
            ),
        },
    })
}
