//! The experiments. Each measures first (raw numbers into storage reserved beforehand, so Rust's
//! own allocations do not disturb the heap being measured) and explains afterwards.

use anyhow::{bail, Context as _};
use malloc_probe::tag::{self, Tag, MALLOC_ALIGNMENT, MINSIZE, SIZE_SZ};
use malloc_probe::{ChildOut, Drain, Fastbins, FreeAttempt, LargeMallocAttempt, MappedLength, Row};

use crate::maps::{MapsSnapshot, Region, MAPS_CAPACITY};
use crate::sys::{self, Block, Glibc};

/// What follows `malloc(N)` in the error of a malloc that returned NULL.
pub const NO_MEMORY: &str = "returned NULL: not enough memory for this request";

/// The largest request accepted (malloc would fail long before).
pub const MAX_REQUEST: usize = 1 << 40;

/// The top chunk: where it is and how many bytes it has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopChunk {
    pub addr: usize,
    pub size: u64,
}

/// One malloc as measured, before any interpretation (no allocation needed to hold it).
#[derive(Debug, Clone, Copy)]
pub struct Raw {
    pub request: usize,
    pub addr: usize,
    pub tag: Tag,
    pub prev_size: u64,
    /// The top chunk right after this malloc, when it could be located and verified.
    pub top: Option<TopChunk>,
    pub brk_before: usize,
    pub brk_after: usize,
    /// The chunk was carved from the top chunk (it starts where the top started).
    pub from_top: bool,
}

/// Measures mallocs in this process.
pub struct Prober {
    pub glibc: Glibc,
    pub heap_start: usize,
    pub page: usize,
    mark: bool,
    top_addr: Option<usize>,
    /// Storage for /proc/self/maps, reserved before measuring and never freed while measuring
    /// (freeing an mmapped buffer would move the dynamic mmap threshold under study).
    pub maps: MapsSnapshot,
}

impl Prober {
    /// Checks the allocator and finds the heap. Fails with a clear reason on a foreign malloc.
    /// `blocks` is how many blocks the run will keep (each mmapped one adds a maps line).
    pub fn new(mark: bool, blocks: usize) -> anyhow::Result<Prober> {
        let glibc = match Glibc::detect() {
            Ok(g) => g,
            Err(e) => bail!(
                "{}: its blocks carry no ptmalloc boundary tags, so malloc-probe will not read \
                 them; run it without LD_PRELOAD, on a glibc build",
                e.reason
            ),
        };
        // Make sure the brk heap exists (Rust's start-up has normally created it already).
        let warm = glibc.malloc(1).context("malloc(1) returned NULL")?;
        glibc.free(warm);
        // Reserved now, before anything is measured: reading maps later allocates nothing.
        let mut maps = MapsSnapshot::with_capacity(MAPS_CAPACITY + 128 * blocks);
        maps.read_self()?;
        let heap_start = match maps.heap() {
            Some(h) => h.start as usize,
            None => bail!(
                "this process has no [heap] mapping in /proc/self/maps; glibc malloc \
                           without a brk heap is not supported"
            ),
        };
        Ok(Prober {
            glibc,
            heap_start,
            page: sys::page_size(),
            mark,
            top_addr: None,
            maps,
        })
    }

    /// Whether a chunk at `chunk` lies in the brk heap right now (the live program break; the
    /// reported region still comes from /proc/self/maps).
    pub fn in_brk_heap(&self, addr: usize) -> bool {
        addr >= self.heap_start && addr < sys::program_break()
    }

    /// Reads the chunk at `chunk` and accepts it as the top chunk only if it ends exactly at
    /// the program break (the main arena's top always does).
    pub fn top_at(&self, chunk: usize) -> Option<TopChunk> {
        let size = self.glibc.heap_word(self.heap_start, chunk + SIZE_SZ)? & !tag::FLAG_MASK;
        let end = chunk.checked_add(size as usize)?;
        (end == sys::program_break() && size >= MINSIZE as u64)
            .then_some(TopChunk { addr: chunk, size })
    }

    /// The top chunk: where it was last seen if it is still there, else at `brk - keepcost`
    /// (mallinfo2(3)); either way verified by reading its tag.
    pub fn top(&mut self) -> Option<TopChunk> {
        if let Some(t) = self.top_addr.and_then(|a| self.top_at(a)) {
            return Some(t);
        }
        let keep = sys::mallinfo_keepcost()?;
        let t = self.top_at(sys::program_break().checked_sub(keep)?)?;
        self.top_addr = Some(t.addr);
        Some(t)
    }

    /// Writes a marker for strace, if asked to.
    pub fn marker(&self, what: &[u8], n: usize) {
        if self.mark {
            let mut buf = [0u8; 48];
            sys::mark(tag::fmt_marker(&mut buf, what, n));
        }
    }

    /// malloc(request), measured. Allocates nothing on the Rust side.
    pub fn measure(&mut self, request: usize) -> anyhow::Result<(Block, Raw)> {
        let top_before = self.top().map(|t| t.addr);
        self.marker(b"malloc ", request);
        let brk_before = sys::program_break();
        let Some(block) = self.glibc.malloc(request) else {
            bail!("malloc({request}) {NO_MEMORY}");
        };
        let t = self.glibc.tag(&block);
        let prev_size = self.glibc.prev_size(&block);
        let chunk = block.addr() - 2 * SIZE_SZ;
        if !t.is_mmapped() && self.in_brk_heap(chunk) {
            let next = chunk + t.chunk_size() as usize;
            if self.top_at(next).is_some() {
                self.top_addr = Some(next);
            }
        }
        let top = self.top();
        let addr = block.addr();
        Ok((
            block,
            Raw {
                request,
                addr,
                tag: t,
                prev_size,
                top,
                brk_before,
                brk_after: sys::program_break(),
                from_top: top_before == Some(chunk),
            },
        ))
    }

    /// Finds the top chunk by allocating small blocks until one is carved from it (a block from
    /// a free list is not followed by the top). The blocks are kept (leaked) on purpose.
    pub fn locate_top(&mut self) -> anyhow::Result<TopChunk> {
        for _ in 0..64 {
            let (block, raw) = self.measure(1000)?;
            block.leak();
            if let Some(top) = raw.top {
                return Ok(top);
            }
        }
        bail!("cannot locate the top chunk: 64 small blocks all came from free lists")
    }

    /// Uses up the top chunk with one block so that exactly MINSIZE bytes remain: afterwards
    /// no request can be carved from the top and malloc must choose between brk and mmap.
    ///
    /// malloc serves a request from a free chunk that fits before it looks at the top, so a free
    /// chunk at least as large as the top (left by a large buffer freed while a top pad, e.g.
    /// `MALLOC_TOP_PAD_`, or huge-page-aligned heap growth, kept the top large) takes the filler
    /// instead: that block is kept, which uses the free chunk up, and the top is drained again,
    /// up to [`DRAIN_TRIES`] times.
    pub fn drain_top(&mut self) -> anyhow::Result<Drain> {
        let mut missed = None;
        for _ in 0..DRAIN_TRIES {
            let before = self.locate_top()?;
            let size = before.size as usize;
            if size < 2 * MINSIZE {
                return Ok(Drain {
                    top_before: before.size,
                    filler_request: 0,
                    top_after: before.size,
                });
            }
            // request2size(size - MINSIZE - SIZE_SZ) == size - MINSIZE: leaves MINSIZE bytes.
            let filler = size - MINSIZE - SIZE_SZ;
            let (block, raw) = self.measure(filler)?;
            block.leak();
            if raw.addr - 2 * SIZE_SZ == before.addr {
                return Ok(Drain {
                    top_before: before.size,
                    filler_request: filler,
                    top_after: raw.top.map(|t| t.size).unwrap_or(0),
                });
            }
            missed = Some((raw.addr - 2 * SIZE_SZ, before.addr));
        }
        let (got, top) = missed.unwrap_or_default();
        bail!(
            "the filler block did not come from the top chunk in {DRAIN_TRIES} tries (0x{got:x} \
             != 0x{top:x}); cannot control the heap here"
        )
    }
}

/// How many times [`Prober::drain_top`] drains again after a free chunk took the filler.
pub const DRAIN_TRIES: usize = 16;

/// One measured malloc as a `--json` row, its region read from `maps`.
pub fn row_from_raw(raw: &Raw, maps: &MapsSnapshot, page: usize) -> Row {
    let region = maps.region(raw.addr);
    let chunk = raw.addr - 2 * SIZE_SZ;
    let (mapped_length, page_aligned, predicted) = if region == Region::Mmap {
        let len = raw.tag.chunk_size() + raw.prev_size;
        let start = chunk.wrapping_sub(raw.prev_size as usize);
        (
            Some(len),
            Some(start % page == 0),
            tag::mmap_len(raw.request, page) as u64,
        )
    } else {
        (None, None, tag::request2size(raw.request) as u64)
    };
    let measured = mapped_length.unwrap_or(raw.tag.chunk_size());
    // A chunk carved from the top, or mmapped, has exactly the predicted size; one taken from
    // a free list may be up to MINSIZE - 16 larger (a smaller remainder is not split off).
    let matches = if region == Region::Mmap || raw.from_top {
        measured == predicted
    } else {
        measured >= predicted && measured < predicted + MINSIZE as u64
    };
    Row {
        request: raw.request,
        address: format!("{:#x}", raw.addr),
        tag: format!("{:#x}", raw.tag.0),
        chunk_size: raw.tag.chunk_size(),
        prev_inuse: raw.tag.prev_inuse(),
        is_mmapped: raw.tag.is_mmapped(),
        non_main_arena: raw.tag.non_main_arena(),
        flags: raw.tag.flag_names(),
        region: region.name().to_string(),
        top_size: raw.top.map(|t| t.size),
        brk_growth: raw.brk_after.saturating_sub(raw.brk_before),
        mapped_length,
        page_aligned,
        predicted_size: predicted,
        from_top: raw.from_top,
        matches_glibc_arithmetic: matches && page_aligned != Some(false),
        phase: None,
    }
}

pub fn mapped_lengths(rows: &[Row], page: usize) -> Vec<MappedLength> {
    rows.iter()
        .filter_map(|r| {
            let len = r.mapped_length?;
            Some(MappedLength {
                request: r.request,
                address: r.address.clone(),
                mapped_length: len,
                overhead: len.saturating_sub(r.request as u64),
                header: (2 * SIZE_SZ) as u64,
                predicted: tag::mmap_len(r.request, page) as u64,
                matches: r.matches_glibc_arithmetic,
            })
        })
        .collect()
}

/// `alloc SIZE...`: these sizes in order, never freed.
pub fn alloc(p: &mut Prober, sizes: &[usize]) -> anyhow::Result<Vec<Row>> {
    let mut raws = Vec::with_capacity(sizes.len());
    let mut keep = Vec::with_capacity(sizes.len());
    for &s in sizes {
        let (b, r) = p.measure(s)?;
        keep.push(b);
        raws.push(r);
    }
    p.marker(b"done ", sizes.len());
    p.maps.read_self()?;
    let maps = &p.maps;
    // The blocks stay allocated until the process exits: "never freeing".
    keep.into_iter().for_each(Block::leak);
    Ok(raws.iter().map(|r| row_from_raw(r, maps, p.page)).collect())
}

/// The sizes of the coarse sweep: 16, 24, 32, 48, 64, ... up to `max`.
pub fn coarse_sizes(max: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut k = 4;
    while k < 48 && (1usize << k) <= max {
        v.push(1 << k);
        let mid = 3usize << (k - 1);
        if mid <= max {
            v.push(mid);
        }
        k += 1;
    }
    v
}

/// `sweep`: growing requests, then a finer sweep between the last heap and the first mmap row.
pub fn sweep(p: &mut Prober, max: usize) -> anyhow::Result<Vec<Row>> {
    let coarse = coarse_sizes(max);
    // Reserve everything before measuring: at most 4 refinement rounds of 16.
    let mut raws: Vec<(Raw, bool)> = Vec::with_capacity(coarse.len() + 80);
    let mut keep: Vec<Block> = Vec::with_capacity(coarse.len() + 80);
    let mut fine: [usize; 16] = [0; 16];
    for &s in &coarse {
        let (b, r) = p.measure(s)?;
        keep.push(b);
        raws.push((r, false));
    }
    let in_heap = |p: &Prober, r: &Raw| p.in_brk_heap(r.addr);
    let flip = raws
        .windows(2)
        .position(|w| in_heap(p, &w[0].0) && !in_heap(p, &w[1].0));
    if let Some(i) = flip {
        let (mut lo, mut hi) = (raws[i].0.request, raws[i + 1].0.request);
        for _round in 0..4 {
            if hi - lo <= 8 {
                break;
            }
            let step = ((hi - lo) / 16).max(8);
            let mut n = 0;
            let mut s = lo + step;
            while s < hi && n < fine.len() {
                fine[n] = s;
                n += 1;
                s += step;
            }
            let mut new = None;
            for &s in &fine[..n] {
                let (b, r) = p.measure(s)?;
                keep.push(b);
                let heap = in_heap(p, &r);
                raws.push((r, true));
                if heap {
                    lo = s;
                } else if new.is_none() {
                    new = Some(s);
                }
            }
            match new {
                Some(h) if h > lo => hi = h,
                _ => break,
            }
        }
    }
    p.marker(b"done ", raws.len());
    p.maps.read_self()?;
    let maps = &p.maps;
    keep.into_iter().for_each(Block::leak);
    Ok(raws
        .iter()
        .map(|(r, fine)| {
            let mut row = row_from_raw(r, maps, p.page);
            row.phase = Some(if *fine { "fine" } else { "coarse" }.to_string());
            row
        })
        .collect())
}

/// The bit that is set exactly in the rows whose region is mmap, if exactly one does.
pub fn mmapped_bit(rows: &[Row]) -> (Option<u32>, Vec<u32>) {
    let heap = rows.iter().any(|r| r.region == "heap");
    let mmap = rows.iter().any(|r| r.region == "mmap");
    if !heap || !mmap {
        return (None, vec![]);
    }
    let candidates: Vec<u32> = (0..3)
        .filter(|&b| {
            rows.iter()
                .filter(|r| r.region == "heap" || r.region == "mmap")
                .all(|r| {
                    r.tag_value()
                        .is_some_and(|t| t.bit(b) == (r.region == "mmap"))
                })
        })
        .collect();
    let bit = (candidates.len() == 1).then(|| candidates[0]);
    (bit, candidates)
}

#[derive(Clone, Copy, Default)]
struct RawAttempt {
    req: usize,
    a: usize,
    b_is_neighbour: bool,
    ta0: u64,
    ta1: u64,
    tb0: u64,
    tb1: u64,
    bprev: u64,
    w0: [u64; 2],
    w1: [u64; 2],
}

/// A = malloc(req) carved from the top chunk and B = malloc(24) carved right after it, both
/// measured; B stays allocated (leaked) so that freeing A can neither merge A into the top nor
/// reuse B. Returns A, its measurement and the address of B's chunk (A's physical neighbour,
/// where A's in-use bit lives).
fn place_pair(p: &mut Prober, req: usize) -> anyhow::Result<(Block, Raw, usize)> {
    // A must be carved from the top chunk, so that B can be carved right after it.
    let mut got = None;
    for _ in 0..TRIES {
        let top_before = p.top().map(|t| t.addr);
        let (a, ra) = p.measure(req)?;
        if top_before == Some(a.addr() - 2 * SIZE_SZ) {
            got = Some((a, ra));
            break;
        }
        a.leak(); // came from a free list: keep it, try again
    }
    let Some((a, ra)) = got else {
        bail!("{TRIES} blocks of {req} bytes all came from free lists; cannot run the experiment");
    };
    let next = a.addr() - 2 * SIZE_SZ + ra.tag.chunk_size() as usize;
    for _ in 0..TRIES {
        let (b, _) = p.measure(24)?;
        let b_is_neighbour = b.addr() - 2 * SIZE_SZ == next;
        // Kept allocated: B must stay in use, and the others must not be reused.
        b.leak();
        if b_is_neighbour {
            return Ok((a, ra, next));
        }
    }
    bail!("{TRIES} blocks of 24 bytes all came from free lists; cannot place B after A")
}

/// `free-bit`: the naive experiment first (a small A), then growing sizes of A until freeing it
/// changes a bit in the tag of the chunk right after A; then [`large_malloc_after_free`] with
/// `large` = (the small request, the large one).
///
/// "B" is always A's physical neighbour, the chunk at `A + chunksize(A)`: that is where A's
/// in-use bit lives. malloc(24) is repeated until the neighbour is an allocated block (B) and
/// not the top chunk, so that freeing A cannot merge it into the top.
pub fn free_bit(
    p: &mut Prober,
    sizes: &[usize],
    large: (usize, usize),
) -> anyhow::Result<(Vec<FreeAttempt>, LargeMallocAttempt)> {
    let mut raws = [RawAttempt::default(); 32];
    let n = sizes.len().min(raws.len());
    let hs = p.heap_start;
    for (slot, &req) in raws.iter_mut().zip(&sizes[..n]) {
        let (a, ra, next) = place_pair(p, req)?;
        let g = &p.glibc;
        let word = |addr: usize| g.heap_word(hs, addr).unwrap_or(0);
        let mut r = RawAttempt {
            req,
            a: a.addr(),
            b_is_neighbour: true,
            ta0: ra.tag.0,
            tb0: word(next + SIZE_SZ),
            w0: [word(a.addr()), word(a.addr() + 8)],
            ..RawAttempt::default()
        };
        let a_addr = a.addr();
        p.marker(b"free ", req);
        p.glibc.free(a);
        let g = &p.glibc;
        let word = |addr: usize| g.heap_word(hs, addr).unwrap_or(0);
        // A is freed but still inside [heap] (an allocated chunk follows it, so it cannot merge
        // into the top and be trimmed); heap_word checks the bounds anyway.
        r.ta1 = word(a_addr - SIZE_SZ);
        r.tb1 = word(next + SIZE_SZ);
        r.bprev = word(next);
        r.w1 = [word(a_addr), word(a_addr + 8)];
        *slot = r;
    }
    let raw_large = large_malloc_after_free(p, large.0, large.1)?;
    p.maps.read_self()?;
    let maps = &p.maps;
    let attempts = raws[..n]
        .iter()
        .map(|r| FreeAttempt {
            request_a: r.req,
            chunk_size_a: Tag(r.ta0).chunk_size(),
            address_a: format!("{:#x}", r.a),
            b_is_fresh_block: r.b_is_neighbour,
            tag_a_before: format!("{:#x}", r.ta0),
            tag_a_after: format!("{:#x}", r.ta1),
            tag_b_before: format!("{:#x}", r.tb0),
            tag_b_after: format!("{:#x}", r.tb1),
            b_changed_bits: tag::changed_bits(Tag(r.tb0), Tag(r.tb1)),
            a_changed_bits: tag::changed_bits(Tag(r.ta0), Tag(r.ta1)),
            b_prev_size_after: format!("{:#x}", r.bprev),
            a_words_before: [format!("{:#x}", r.w0[0]), format!("{:#x}", r.w0[1])],
            a_words_after: [format!("{:#x}", r.w1[0]), format!("{:#x}", r.w1[1])],
            a_word1_points_into: maps.describe(r.w1[1] as usize),
        })
        .collect();
    Ok((attempts, raw_large.report(maps)))
}

/// What [`large_malloc_after_free`] read, before any interpretation (no allocation to hold it).
#[derive(Clone, Copy)]
struct RawLarge {
    req: usize,
    a: usize,
    ta: u64,
    /// B's tag: A in use, after free(A), after the large malloc.
    tb: [u64; 3],
    /// B's prev_size after free(A) and after the large malloc.
    bprev: [u64; 2],
    /// A's first two words at the same three moments as `tb`.
    w: [[u64; 2]; 3],
    large_req: usize,
    large: usize,
    large_tag: u64,
    fast: [Option<(usize, usize)>; 3],
}

impl RawLarge {
    fn report(&self, maps: &MapsSnapshot) -> LargeMallocAttempt {
        let hex = |v: u64| format!("{v:#x}");
        let words = |w: [u64; 2]| [hex(w[0]), hex(w[1])];
        let fast = |f: Option<(usize, usize)>| f.map(|(chunks, bytes)| Fastbins { chunks, bytes });
        LargeMallocAttempt {
            request_a: self.req,
            chunk_size_a: Tag(self.ta).chunk_size(),
            address_a: format!("{:#x}", self.a),
            tag_b_before: hex(self.tb[0]),
            tag_b_after_free: hex(self.tb[1]),
            tag_b_after_malloc: hex(self.tb[2]),
            b_changed_bits_by_free: tag::changed_bits(Tag(self.tb[0]), Tag(self.tb[1])),
            b_changed_bits_by_malloc: tag::changed_bits(Tag(self.tb[1]), Tag(self.tb[2])),
            b_prev_size_after_free: hex(self.bprev[0]),
            b_prev_size_after_malloc: hex(self.bprev[1]),
            a_words_before: words(self.w[0]),
            a_words_after_free: words(self.w[1]),
            a_words_after_malloc: words(self.w[2]),
            a_word1_after_free_points_into: maps.describe(self.w[1][1] as usize),
            a_word1_after_malloc_points_into: maps.describe(self.w[2][1] as usize),
            large_request: self.large_req,
            large_address: format!("{:#x}", self.large),
            large_tag: hex(self.large_tag),
            large_region: maps.region(self.large).name().to_string(),
            fastbins_before_free: fast(self.fast[0]),
            fastbins_after_free: fast(self.fast[1]),
            fastbins_after_malloc: fast(self.fast[2]),
        }
    }
}

/// The course's "malloc 10000 bytes after it": A = malloc(small) with B after it (as in
/// [`free_bit`]), free(A), then malloc(large) — the block is kept — and B's tag, B's prev_size
/// and A's first words reread right after each call, with the fastbins (mallinfo2(3)) around
/// them. Nothing allocates between a call and its reads; mallinfo2 is called before the reads
/// that follow the free, so a change between those reads and the ones after the large malloc is
/// the large malloc's doing.
fn large_malloc_after_free(p: &mut Prober, small: usize, large: usize) -> anyhow::Result<RawLarge> {
    let (a, ra, next) = place_pair(p, small)?;
    let hs = p.heap_start;
    let a_addr = a.addr();
    // B's tag, B's prev_size and A's two words; A's words stay inside [heap] (B follows A).
    let read = |p: &Prober| {
        let word = |addr: usize| p.glibc.heap_word(hs, addr).unwrap_or(0);
        (
            word(next + SIZE_SZ),
            word(next),
            [word(a_addr), word(a_addr + 8)],
        )
    };
    let (tb0, _, w0) = read(p);
    let fast0 = sys::mallinfo_fastbins();
    p.marker(b"free ", small);
    p.glibc.free(a);
    let fast1 = sys::mallinfo_fastbins();
    let (tb1, bprev1, w1) = read(p);
    p.marker(b"malloc ", large);
    let Some(big) = p.glibc.malloc(large) else {
        bail!("malloc({large}) {NO_MEMORY}");
    };
    let (tb2, bprev2, w2) = read(p);
    let large_tag = p.glibc.tag(&big).0;
    let fast2 = sys::mallinfo_fastbins();
    let large_addr = big.addr();
    // Kept: freeing it would change the bins just read.
    big.leak();
    Ok(RawLarge {
        req: small,
        a: a_addr,
        ta: ra.tag.0,
        tb: [tb0, tb1, tb2],
        bprev: [bprev1, bprev2],
        w: [w0, w1, w2],
        large_req: large,
        large: large_addr,
        large_tag,
        fast: [fast0, fast1, fast2],
    })
}

/// How many blocks `free-bit` may take from free lists (and keep) before one comes from the top.
const TRIES: usize = 100_000;

/// Options of one child run.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildOpts {
    pub free_first: Option<usize>,
    pub drain: bool,
    pub grow_first: Option<usize>,
}

/// The body of the hidden `probe-one` subcommand, run in a fresh process.
pub fn probe_one(p: &mut Prober, request: usize, o: ChildOpts) -> anyhow::Result<ChildOut> {
    let freed_first = match o.free_first {
        Some(f) => {
            let (b, raw) = p.measure(f)?;
            p.maps.read_self()?;
            let maps = &p.maps;
            let row = row_from_raw(&raw, maps, p.page);
            p.marker(b"free ", f);
            p.glibc.free(b);
            Some(row)
        }
        None => None,
    };
    let drain = if o.drain { Some(p.drain_top()?) } else { None };
    let mut grow = None;
    if let Some(g) = o.grow_first {
        let (b, raw) = p.measure(g)?;
        b.leak();
        grow = Some(raw);
    }
    let (b, raw) = p.measure(request)?;
    b.leak();
    p.maps.read_self()?;
    let maps = &p.maps;
    Ok(ChildOut {
        freed_first,
        drain,
        grow: grow.map(|r| row_from_raw(&r, maps, p.page)),
        row: row_from_raw(&raw, maps, p.page),
    })
}

/// Runs `probe-one` in a fresh copy of this program (same environment, so tunables apply).
pub fn run_child(request: usize, o: ChildOpts) -> anyhow::Result<ChildOut> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--json").arg("probe-one").arg(request.to_string());
    if let Some(f) = o.free_first {
        cmd.arg("--free-first").arg(f.to_string());
    }
    if o.drain {
        cmd.arg("--drain");
    }
    if let Some(g) = o.grow_first {
        cmd.arg("--grow-first").arg(g.to_string());
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot start a child malloc-probe")?;
    if !out.status.success() {
        bail!(
            "child malloc-probe probe-one {request} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("child malloc-probe printed invalid JSON")
}

/// The smallest request served by mmap under `o`, by bisection between `lo` (heap) and `hi`
/// (mmap), each probe in a fresh process. Returns it and every probe made. When malloc(hi)
/// itself returns NULL (an address-space limit, `ulimit -v`, below `hi`), `hi` is halved until
/// a request is served: the switch lies far below any such limit.
pub fn bisect(o: ChildOpts, lo: usize, hi: usize) -> anyhow::Result<(usize, Vec<ChildOut>)> {
    let mut probes = Vec::new();
    let low = run_child(lo, o)?;
    let low_heap = low.row.region == "heap";
    probes.push(low);
    if !low_heap {
        bail!("even a {lo}-byte request was not served from the heap; cannot bisect");
    }
    let mut hi = hi;
    let high = loop {
        match run_child(hi, o) {
            Ok(high) => break high,
            Err(e)
                if hi / 2 > lo && e.to_string().contains(&format!("malloc({hi}) {NO_MEMORY}")) =>
            {
                hi /= 2
            }
            Err(e) => return Err(e),
        }
    };
    let high_mmap = high.row.region == "mmap";
    probes.push(high);
    if !high_mmap {
        bail!(
            "no request up to {hi} bytes was served by mmap (is mmap disabled, e.g. \
             GLIBC_TUNABLES=glibc.malloc.mmap_max=0?)"
        );
    }
    let (mut lo, mut hi) = (lo, hi);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let c = run_child(mid, o)?;
        match c.row.region.as_str() {
            "heap" => lo = mid,
            "mmap" => hi = mid,
            other => bail!("a {mid}-byte block landed in an unexpected region ({other})"),
        }
        probes.push(c);
    }
    probes.sort_by_key(|c| c.row.request);
    Ok((hi, probes))
}

/// The default alignment step between chunk sizes.
pub const CHUNK_STEP: u64 = MALLOC_ALIGNMENT as u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_sizes_grow_by_half_steps() {
        assert_eq!(coarse_sizes(100), vec![16, 24, 32, 48, 64, 96]);
        let v = coarse_sizes(4 << 20);
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*v.last().unwrap(), 4 << 20);
    }

    fn row(region: &str, tag: u64) -> Row {
        let t = Tag(tag);
        Row {
            request: 0,
            address: "0x0".into(),
            tag: format!("{tag:#x}"),
            chunk_size: t.chunk_size(),
            prev_inuse: t.prev_inuse(),
            is_mmapped: t.is_mmapped(),
            non_main_arena: t.non_main_arena(),
            flags: t.flag_names(),
            region: region.into(),
            top_size: None,
            brk_growth: 0,
            mapped_length: None,
            page_aligned: None,
            predicted_size: 0,
            from_top: false,
            matches_glibc_arithmetic: true,
            phase: None,
        }
    }

    #[test]
    fn mmapped_bit_is_the_one_that_follows_the_region() {
        let rows = [row("heap", 0x21), row("heap", 0x31), row("mmap", 0x21002)];
        assert_eq!(mmapped_bit(&rows), (Some(1), vec![1]));
        // Only heap rows: nothing can be concluded.
        assert_eq!(mmapped_bit(&rows[..2]), (None, vec![]));
        // A bit that does not follow the region is rejected.
        let odd = [row("heap", 0x22), row("mmap", 0x21002)];
        assert_eq!(mmapped_bit(&odd), (None, vec![]));
    }
}
