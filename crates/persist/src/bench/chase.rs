//! The machine's memory limits, measured by pointer chasing: the nodes of a buffer (one
//! 64-byte cache line each) are linked into one random cycle, and a chase loads the next
//! node's index from the current node — each load depends on the one before, so the time per
//! step is the latency of one load that misses the caches (the prefetchers cannot guess a
//! random successor). `k` chases interleaved are independent: how much faster per load they
//! go is the memory-level parallelism (misses the core keeps in flight at once).

use std::time::Duration;

use super::sys::{thread_cpu_ns, AnonMap, Pages};
use super::{ChaseRun, MlpPoint, PageKind};

/// Words (u64) per node: one 64-byte line.
pub const NODE_WORDS: usize = 8;

/// xorshift64*: a fast, seedable generator for the permutation and the start nodes.
fn rng(mut s: u64) -> impl FnMut() -> u64 {
    s |= 1;
    move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Links the `words.len() / 8` nodes of `words` into one random cycle (Sattolo's algorithm,
/// which draws uniformly among the permutations made of a single cycle): the first word of
/// node `i` holds the word index of its successor. Returns the number of nodes.
pub fn link_cycle(words: &mut [u64], seed: u64) -> usize {
    let n = words.len() / NODE_WORDS;
    assert!(n <= u32::MAX as usize, "at most 2^32 nodes");
    let mut next: Vec<u32> = (0..n as u32).collect();
    let mut draw = rng(seed);
    for i in (1..n).rev() {
        // j < i (never i itself): that is what makes the permutation one cycle.
        let j = (draw() % i as u64) as usize;
        next.swap(i, j);
    }
    for (node, &succ) in words.chunks_exact_mut(NODE_WORDS).zip(&next) {
        node[0] = u64::from(succ) * NODE_WORDS as u64;
    }
    n
}

/// `K` interleaved chases of `steps` steps each from the word indices `at`; returns where
/// each ended. Every load's address comes from the load before it in the same chase.
#[inline(never)]
pub fn chase<const K: usize>(words: &[u64], mut at: [usize; K], steps: u64) -> [usize; K] {
    for _ in 0..steps {
        for p in at.iter_mut() {
            *p = words[*p] as usize;
        }
    }
    at
}

/// Nanoseconds per load of `k` interleaved chases (k in 1, 2, 4, 8, 16, 32, 64) from random
/// nodes: the best of `rounds` windows of at least `window` each (the best, because another
/// process can only make a window slower). Time is this thread's CPU time, so that a window
/// in which another process held the CPU does not count the wait as load latency.
pub fn ns_per_load(words: &[u64], k: usize, window: Duration, rounds: u32, seed: u64) -> f64 {
    let n = (words.len() / NODE_WORDS).max(1) as u64;
    let mut draw = rng(seed);
    let mut starts = [0usize; 64];
    for s in starts.iter_mut() {
        *s = (draw() % n) as usize * NODE_WORDS;
    }
    // Steps per timed call: ~64k loads, so the clock is read rarely.
    let steps = (65_536 / k as u64).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..rounds.max(1) {
        let t0 = thread_cpu_ns();
        let window = window.as_nanos() as u64;
        let mut loads = 0u64;
        while thread_cpu_ns() - t0 < window || loads == 0 {
            macro_rules! run {
                ($k:literal) => {{
                    let mut at = [0usize; $k];
                    at.copy_from_slice(&starts[..$k]);
                    let end = chase::<$k>(words, at, steps);
                    starts[..$k].copy_from_slice(&end);
                }};
            }
            match k {
                1 => run!(1),
                2 => run!(2),
                4 => run!(4),
                8 => run!(8),
                16 => run!(16),
                32 => run!(32),
                64 => run!(64),
                _ => panic!("k must be a power of two up to 64, not {k}"),
            }
            loads += steps * k as u64;
        }
        best = best.min((thread_cpu_ns() - t0) as f64 / loads as f64);
    }
    std::hint::black_box(&starts);
    best
}

/// The interleavings measured for the memory-level parallelism.
pub const MLP_KS: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// How long and how often each chase is timed.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub window: Duration,
    pub rounds: u32,
}

/// A buffer of `bytes` with `pages`, linked into one cycle, and what smaps says it got.
pub struct ChaseBuffer {
    map: AnonMap,
    /// `AnonHugePages` of the mapping in `/proc/self/smaps`, in bytes (`None`: not found).
    pub huge_bytes: Option<u64>,
}

impl ChaseBuffer {
    /// Maps, advises, links (which touches every page) and reads smaps.
    pub fn new(bytes: u64, pages: Pages, seed: u64) -> std::io::Result<ChaseBuffer> {
        let mut map = AnonMap::new(bytes as usize, pages)?;
        link_cycle(map.words_mut(), seed);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        let huge_bytes = smaps_kib(&smaps, map.addr(), "AnonHugePages").map(|kib| kib * 1024);
        Ok(ChaseBuffer { map, huge_bytes })
    }

    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn words(&mut self) -> &[u64] {
        self.map.words_mut()
    }
}

/// One latency measurement: a fresh buffer of `bytes` with `pages`, its huge pages checked in
/// smaps (a 2 MiB run that got less than 90% of its bytes in huge pages is not a 2 MiB figure:
/// `ns_per_load` is `None` and `why_not` says so), then `k` = 1 chase timed. `thp` is the
/// content of `/sys/kernel/mm/transparent_hugepage/enabled`.
pub fn latency(
    buffer: super::BufferKind,
    bytes: u64,
    pages: PageKind,
    thp: &str,
    timing: Timing,
) -> (ChaseRun, Option<ChaseBuffer>) {
    let mut run = ChaseRun {
        buffer,
        pages,
        bytes,
        huge_bytes: None,
        ns_per_load: None,
        why_not: None,
    };
    if pages == PageKind::Huge && thp.contains("[never]") {
        run.why_not = Some(format!(
            "transparent huge pages are off (/sys/kernel/mm/transparent_hugepage/enabled: {thp})"
        ));
        return (run, None);
    }
    let sys_pages = match pages {
        PageKind::Small => Pages::Small,
        PageKind::Huge => Pages::Huge,
    };
    let mut buf = match ChaseBuffer::new(bytes, sys_pages, 0xc4a5e ^ bytes) {
        Ok(b) => b,
        Err(e) => {
            run.why_not = Some(format!("cannot map {} MiB: {e}", bytes >> 20));
            return (run, None);
        }
    };
    run.bytes = buf.len();
    run.huge_bytes = buf.huge_bytes;
    if pages == PageKind::Huge {
        let got = buf.huge_bytes.unwrap_or(0);
        if (got as f64) < 0.9 * buf.len() as f64 {
            run.why_not = Some(format!(
                "MADV_HUGEPAGE got {} of {} MiB in 2 MiB pages (AnonHugePages in \
                 /proc/self/smaps; THP {thp}): not a 2 MiB-page figure",
                got >> 20,
                buf.len() >> 20
            ));
            return (run, Some(buf));
        }
    }
    let words = buf.words();
    // Warm-up: the page tables and the TLB's state of a chase already under way.
    ns_per_load(words, 1, timing.window / 4, 1, 1);
    run.ns_per_load = Some(ns_per_load(words, 1, timing.window, timing.rounds, 2));
    (run, Some(buf))
}

/// ns per load for every k of [`MLP_KS`] over `buf`.
pub fn mlp_curve(buf: &mut ChaseBuffer, timing: Timing) -> Vec<MlpPoint> {
    let words = buf.words();
    MLP_KS
        .iter()
        .map(|&k| MlpPoint {
            k: k as u32,
            ns_per_load: ns_per_load(words, k, timing.window, timing.rounds, 3 + k as u64),
        })
        .collect()
}

/// The value of `field` (e.g. `AnonHugePages`, `FilePmdMapped`), in KiB, of the mapping of
/// `/proc/PID/smaps` text that contains `addr`; `None` if no mapping holds it or it lacks the
/// field.
pub fn smaps_kib(smaps: &str, addr: usize, field: &str) -> Option<u64> {
    let mut inside = false;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
                continue;
            }
        }
        if inside && first.strip_suffix(':') == Some(field) {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// Size in bytes of the largest data or unified cache of CPU 0 (the last-level cache), from
/// `/sys/devices/system/cpu/cpu0/cache/index*/{level,type,size}`, and of its level-2 cache.
pub fn caches() -> (Option<u64>, Option<u64>) {
    let mut llc: Option<(u32, u64)> = None;
    let mut l2 = None;
    for i in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        if kind.trim() == "Instruction" {
            continue;
        }
        let (Ok(level), Some(bytes)) = (level.trim().parse::<u32>(), parse_cache_size(&size))
        else {
            continue;
        };
        if level == 2 {
            l2 = Some(bytes);
        }
        if llc.map_or(true, |(l, _)| level > l) {
            llc = Some((level, bytes));
        }
    }
    (llc.map(|(_, b)| b), l2)
}

/// `32768K`, `1M`, `512` (bytes) as sysfs writes a cache size.
pub fn parse_cache_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.chars().last()? {
        'K' | 'k' => (&t[..t.len() - 1], 1 << 10),
        'M' | 'm' => (&t[..t.len() - 1], 1 << 20),
        'G' | 'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chase_visits_every_node_once_per_lap_and_takes_a_positive_time() {
        // 4096 nodes = 256 KiB; the cycle must be one cycle through all of them.
        let mut words = vec![0u64; 4096 * NODE_WORDS];
        let n = link_cycle(&mut words, 42);
        assert_eq!(n, 4096);
        let mut seen = vec![false; n];
        let mut at = 0usize;
        for step in 0..n {
            assert_eq!(at % NODE_WORDS, 0, "a node index is a whole line");
            let node = at / NODE_WORDS;
            assert!(
                !seen[node],
                "node {node} seen twice, at step {step}: not one cycle"
            );
            seen[node] = true;
            at = chase::<1>(&words, [at], 1)[0];
        }
        assert_eq!(at, 0, "back at the start after exactly n steps");
        assert!(seen.iter().all(|&s| s));
        // Interleaved chases follow the same links.
        let [a, b] = chase::<2>(&words, [0, 0], 5);
        assert_eq!(a, b);
        assert_eq!(a, chase::<1>(&words, [0], 5)[0]);
        for k in MLP_KS {
            let ns = ns_per_load(&words, k, Duration::from_millis(2), 1, 7);
            assert!(ns.is_finite() && ns > 0.0, "k={k}: {ns}");
        }
    }

    #[test]
    fn a_chase_buffer_is_one_cycle_over_its_mapping() {
        let mut b = ChaseBuffer::new(2 << 20, Pages::Small, 9).unwrap();
        assert_eq!(b.len(), 2 << 20);
        assert_eq!(b.huge_bytes, Some(0), "MADV_NOHUGEPAGE: no huge pages");
        let words = b.words();
        let n = words.len() / NODE_WORDS;
        let mut at = 0;
        for _ in 0..n - 1 {
            at = words[at] as usize;
            assert_ne!(at, 0, "the cycle closed early");
        }
        assert_eq!(words[at], 0);
    }

    #[test]
    fn a_huge_page_figure_is_not_measured_when_thp_is_off() {
        let timing = Timing {
            window: Duration::from_millis(1),
            rounds: 1,
        };
        let thp = "always madvise [never]";
        let (run, buf) = latency(
            super::super::BufferKind::Table,
            2 << 20,
            PageKind::Huge,
            thp,
            timing,
        );
        assert!(buf.is_none());
        assert_eq!(run.ns_per_load, None);
        assert!(run.why_not.unwrap().contains("[never]"));
        // 4 KiB pages need no THP: a figure, and no huge page in the buffer.
        let (run, _) = latency(
            super::super::BufferKind::Table,
            2 << 20,
            PageKind::Small,
            thp,
            timing,
        );
        assert!(run.ns_per_load.is_some_and(|ns| ns.is_finite() && ns > 0.0));
        assert_eq!(run.huge_bytes, Some(0));
        assert_eq!(run.why_not, None);
    }

    #[test]
    fn smaps_fields_are_read_from_the_mapping_holding_the_address() {
        let smaps = "\
7f0000000000-7f0000400000 rw-p 00000000 00:00 0
Size:               4096 kB
AnonHugePages:      2048 kB
7f0000400000-7f0000600000 r--s 00000000 fd:01 1234    /tmp/t.tbl
Size:               2048 kB
FilePmdMapped:      2048 kB
AnonHugePages:         0 kB
VmFlags: rd sh mr mw me ms hg
";
        assert_eq!(
            smaps_kib(smaps, 0x7f00_0000_1000, "AnonHugePages"),
            Some(2048)
        );
        assert_eq!(smaps_kib(smaps, 0x7f00_0040_0000, "AnonHugePages"), Some(0));
        assert_eq!(
            smaps_kib(smaps, 0x7f00_0040_0000, "FilePmdMapped"),
            Some(2048)
        );
        assert_eq!(smaps_kib(smaps, 0x7f00_0000_1000, "FilePmdMapped"), None);
        assert_eq!(smaps_kib(smaps, 0x1000, "AnonHugePages"), None);
    }

    #[test]
    fn cache_sizes_are_read_as_sysfs_writes_them() {
        assert_eq!(parse_cache_size("32768K\n"), Some(32 << 20));
        assert_eq!(parse_cache_size("1M"), Some(1 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("x"), None);
        assert_eq!(parse_cache_size(""), None);
    }
}
