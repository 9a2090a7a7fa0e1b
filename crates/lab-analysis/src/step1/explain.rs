//! Findings → the narrative: evidence tables, the assignment's four questions and the course's
//! hints, each answer formatted from [`Findings`] (nothing here decides anything).

use std::fmt::Write as _;

use super::analyze::{
    DynamicThreshold, Findings, FreeBit, FreedInto, LargeMalloc, LargeMallocOutcome, PageEdge,
    Sweep, SyscallMade, TcacheComparison, ThresholdEffects, FLAG_NAMES,
};
use super::{Evidence, Outcome};
use crate::Block;

pub fn explain(f: &Findings, evidence: &Evidence) -> Vec<Block> {
    let mut blocks = vec![Block::text(setting(f, evidence))];
    if let Some(error) = &f.foreign_allocator {
        blocks.extend(refusal(error));
        blocks.extend(super::beyond::blocks(f, evidence));
        return blocks;
    }
    if !f.failed_runs.is_empty() {
        blocks.push(Block::heading(
            "Probe runs that failed (what they measure is not measured)",
        ));
        blocks.extend(
            f.failed_runs
                .iter()
                .map(|why| Block::text(format!("{why}."))),
        );
    }
    if let Some(s) = &f.sweep {
        blocks.extend(sweep_blocks(f, s));
    }
    if let Some(fb) = &f.free_bit {
        blocks.push(Block::heading("malloc-probe free-bit"));
        blocks.push(Block::raw(
            "free-bit: A = malloc(x), B = malloc(24) carved right after it; free(A); tags before \
             -> after",
            free_bit_table(fb),
        ));
    }
    if let Some(c) = &f.tcache_comparison {
        blocks.extend(tcache_blocks(c));
    }
    if let Some(b) = large_malloc_block(f) {
        blocks.push(b);
    }
    if let Some(t) = &f.threshold_effects {
        blocks.push(Block::heading(
            "malloc-probe threshold (each probe in a fresh process, top chunk drained)",
        ));
        blocks.push(Block::evidence(
            "threshold: probes around the switch, the top chunk, the dynamic threshold",
            threshold_text(f, t),
        ));
    }
    if let Some(e) = &f.page_edge {
        blocks.push(Block::heading(
            "malloc-probe --mark alloc at a page edge, under strace",
        ));
        blocks.push(Block::evidence(
            "Page edge: the extra 8 bytes of an mmapped chunk",
            page_edge_text(e),
        ));
    }
    blocks.push(Block::heading("Answers (computed from this run)"));
    let or_not_measured =
        |question: &str, answer: fn(&Findings) -> String| match f.not_measured(question) {
            Some(why) => format!("Not measured in this run: {why}."),
            None => answer(f),
        };
    blocks.push(Block::answer(Q_FREE, or_not_measured("1.1", answer_free)));
    blocks.push(Block::answer(
        Q_MMAP_BIT,
        or_not_measured("1.2", answer_mmap_bit),
    ));
    blocks.push(Block::answer(
        Q_THRESHOLD,
        or_not_measured("1.3", answer_threshold),
    ));
    blocks.push(Block::answer(
        Q_LENGTH,
        or_not_measured("1.4", answer_length),
    ));
    blocks.push(Block::answer(Q_TCACHE, answer_tcache(f)));
    blocks.push(Block::answer(Q_HINT, answer_hint(f)));
    blocks.extend(super::beyond::blocks(f, evidence));
    blocks
}

const Q_FREE: &str = "Which bit (and value) corresponds to free/in-use?";
const Q_MMAP_BIT: &str = "Which bit corresponds to heap/mmap?";
const Q_THRESHOLD: &str = "At what exact size does malloc switch from the heap to mmap?";
const Q_LENGTH: &str =
    "For a request of x bytes, does malloc ask mmap for x bytes or something different?";
const Q_TCACHE: &str = "The course runs this step with GLIBC_TUNABLES=glibc.malloc.tcache_count=0 \
                        \"to more easily observe malloc\": what does that change?";
const Q_HINT: &str = "The course's hint: free a 1000-byte chunk, or malloc 10000 bytes after it.";

/// Which malloc, and the environment the probe ran in.
fn setting(f: &Findings, evidence: &Evidence) -> String {
    let mut s = match &f.glibc {
        Some(a) => format!(
            "glibc {} (malloc from {}), page size {}.",
            a.glibc_version, a.malloc_object, a.page_size
        ),
        None => "The probe did not read any tag.".to_string(),
    };
    if evidence.environment.is_empty() {
        s.push_str(" No malloc setting in the environment (GLIBC_TUNABLES, MALLOC_*, LD_PRELOAD).");
    } else {
        let vars: Vec<String> = evidence.environment.iter().map(|v| v.to_string()).collect();
        let _ = write!(
            s,
            " Malloc settings every run inherited: {}.",
            vars.join(" ")
        );
    }
    if let Some(limit) = evidence.address_space_limit {
        let _ = write!(
            s,
            " Every run had an address-space limit: RLIMIT_AS={} (ulimit -v {}).",
            super::unmeasured::size(limit),
            limit / 1024
        );
    }
    if let Outcome::Refused(r) = &evidence.outcome {
        let ended = r.status.map_or(
            "ended with no exit status (a signal ended it)".into(),
            |c| format!("exited with status {c}"),
        );
        let _ = write!(s, " `malloc-probe {}` {ended}.", r.args.join(" "));
    }
    s
}

fn refusal(error: &str) -> Vec<Block> {
    let why = format!(
        "The probe refused to read boundary tags: {error}. Tags are glibc's ptmalloc metadata; \
         another allocator (musl, an LD_PRELOADed jemalloc or shim) lays out its blocks \
         differently, so reading the 8 bytes before a pointer would print nonsense."
    );
    let no = |q: &str| {
        Block::answer(
            q,
            "Not answered in this run: malloc-probe refused to read tags of a malloc that is not \
             glibc's (see above).",
        )
    };
    let mut blocks = vec![
        Block::heading("malloc-probe refused this process's malloc"),
        Block::text(why),
    ];
    blocks.extend([Q_FREE, Q_MMAP_BIT, Q_THRESHOLD, Q_LENGTH, Q_TCACHE, Q_HINT].map(no));
    blocks
}

/// `PREV_INUSE | IS_MMAPPED`, as heap debuggers print a size field's flags.
pub fn flag_names(tag: u64) -> String {
    let names: Vec<&str> = (0..3)
        .filter(|b| (tag >> b) & 1 == 1)
        .map(|b| FLAG_NAMES[b])
        .collect();
    if names.is_empty() {
        "-".to_string()
    } else {
        names.join(" | ")
    }
}

fn sweep_blocks(f: &Findings, s: &Sweep) -> Vec<Block> {
    let mut table = format!(
        "{:>9}  {:<6} {:<18} {:>9}  {:>7}  {:>9} {:<24} {}\n",
        "request x", "region", "syscall", "length L", "L - x", "tag", "flags", "glibc formula"
    );
    let mut raw = String::new();
    for r in &s.rows {
        let (syscall, len) = match &r.syscall {
            SyscallMade::Mmap { length, .. } => ("mmap".to_string(), Some(*length)),
            SyscallMade::Brk { growth } => (format!("brk +{growth}"), None),
            SyscallMade::None => ("none".to_string(), None),
        };
        let check = f
            .mmap_lengths
            .iter()
            .find(|m| m.request == r.request && Some(m.length) == len)
            .map(|m| {
                format!(
                    "{} (pointer = mmap + {})",
                    if m.length == m.formula_length {
                        "ok"
                    } else {
                        "MISMATCH"
                    },
                    m.pointer_offset
                )
            })
            .unwrap_or_default();
        let dash = || "-".to_string();
        let _ = writeln!(
            table,
            "{:>9}  {:<6} {:<18} {:>9}  {:>7}  {:>9} {:<24} {}",
            r.request,
            r.region,
            syscall,
            len.map(|l| l.to_string()).unwrap_or_else(dash),
            len.map(|l| (l as i64 - r.request as i64).to_string())
                .unwrap_or_else(dash),
            format!("{:#x}", r.tag),
            flag_names(r.tag),
            check
        );
        for c in &r.calls {
            let _ = writeln!(raw, "[malloc {}] {c}", r.request);
        }
    }
    let mut blocks = vec![
        Block::heading("malloc-probe --mark sweep, under strace -e trace=brk,mmap,munmap,write"),
        Block::raw(
            "Sweep: request -> syscall -> length (paired through write(-1) markers)",
            table,
        ),
        Block::raw("Raw strace lines, per malloc", raw),
    ];
    if let Some(m) = &s.marker_example {
        blocks.push(Block::text(format!("(a marker line looks like: {m})")));
    }
    if let Some(fm) = &f.formula {
        if fm.formula_holds < fm.mmaps {
            blocks.push(Block::text(format!(
                "Note: {} of {} mmap lengths contradict glibc's formula; see the MISMATCH rows.",
                fm.mmaps - fm.formula_holds,
                fm.mmaps
            )));
        }
    }
    blocks
}

fn into_name(i: FreedInto) -> &'static str {
    match i {
        FreedInto::Bin => "a bin",
        FreedInto::Tcache => "tcache",
        FreedInto::Fastbin => "fastbin",
        FreedInto::Unclear => "?",
    }
}

fn free_bit_table(fb: &FreeBit) -> String {
    let mut t = format!(
        "{:>6} {:>7}  {:>8} -> {:<8}  {:>17}  {:<8}  A's 2nd word after free\n",
        "x", "chunk A", "tag B", "after", "B.prev_size = A?", "A went to"
    );
    for a in &fb.attempts {
        let _ = writeln!(
            t,
            "{:>6} {:>7}  {:>8} -> {:<8}  {:>17}  {:<8}  {} ({})",
            a.request,
            a.chunk_size,
            format!("{:#x}", a.tag_b_before),
            format!("{:#x}", a.tag_b_after),
            if a.prev_size_written { "yes" } else { "no" },
            into_name(a.freed_into),
            a.second_word_after,
            a.second_word_points_into
        );
    }
    t
}

fn tcache_blocks(c: &TcacheComparison) -> Vec<Block> {
    let mut t = format!(
        "{:>6} {:>7}  {:<22}  {:<22}  {}\n",
        "x",
        "chunk A",
        "default: changed? A in",
        "tcache_count=0: same",
        "B's tag (tcache_count=0)"
    );
    let yn = |b: bool| if b { "yes" } else { "no" };
    for s in &c.sizes {
        let _ = writeln!(
            t,
            "{:>6} {:>7}  {:<3}   {:<16}  {:<3}   {:<16}  {:#x} -> {:#x}",
            s.request,
            s.chunk_size,
            yn(s.default_changed),
            into_name(s.default_into),
            yn(s.no_tcache_changed),
            into_name(s.no_tcache_into),
            s.no_tcache_tag_b.0,
            s.no_tcache_tag_b.1
        );
    }
    vec![
        Block::heading(format!(
            "malloc-probe free-bit again, with GLIBC_TUNABLES={} (the course's setting)",
            c.tunables
        )),
        Block::evidence(
            "free-bit with and without the tcache: did free(A) clear A's in-use bit (in B's tag)?",
            t,
        ),
    ]
}

/// Both runs' "free a small chunk, then malloc a large one", one row each.
fn large_malloc_block(f: &Findings) -> Option<Block> {
    let runs = [
        ("default", f.free_bit.as_ref()?),
        ("tcache_count=0", f.free_bit_no_tcache.as_ref()?),
    ];
    let l = &runs[0].1.large_malloc;
    let mut t = format!(
        "{:<15} {:<9}  {:<27}  {:<11}  {:<15}  A's 2nd word after malloc\n",
        "run", "A went to", "tag B: in use/free/malloc", "B.prev_size", "fastbin chunks"
    );
    for (name, fb) in runs {
        let l = &fb.large_malloc;
        let tags: Vec<String> = l.tag_b.iter().map(|t| format!("{t:#x}")).collect();
        let fast = match l.fastbin_chunks {
            Some([a, b, c]) => format!("{a} -> {b} -> {c}"),
            None => "?".to_string(),
        };
        let _ = writeln!(
            t,
            "{name:<15} {:<9}  {:<27}  {:<11}  {:<15}  {} ({})",
            into_name(l.freed_into),
            tags.join(" -> "),
            format!("{:#x}", l.prev_size_after_malloc),
            fast,
            l.second_word_after_malloc,
            l.second_word_after_malloc_points_into
        );
    }
    Some(Block::evidence(
        format!(
            "free-bit, then: A = malloc({}) with B after it, free(A), malloc({}); B's tag after \
             each step, B.prev_size and A's 2nd word after the malloc (fastbins counted by \
             mallinfo2)",
            l.request, l.large_request
        ),
        t,
    ))
}

fn threshold_text(f: &Findings, t: &ThresholdEffects) -> String {
    let mut s = String::new();
    for p in &t.near {
        let _ = writeln!(
            s,
            "malloc({:>7}) with top = {} -> {:<4} tag {:<9} chunk {:>7}  brk grew {}",
            p.request,
            p.top
                .map_or("(not recorded)".to_string(), |t| format!("{t} bytes")),
            p.region,
            p.tag,
            p.chunk_size,
            p.brk_growth
        );
    }
    let w = &t.with_room;
    let grew = match (w.grow_request, w.grow_brk_growth, w.top_after_growth) {
        (Some(g), Some(b), Some(top)) => {
            format!("after malloc({g}) grew the heap by {b} bytes the top had {top} bytes")
        }
        _ => "with no heap growth recorded before it".to_string(),
    };
    let _ = writeln!(
        s,
        "{grew}: malloc({}) -> {} (chunk {})",
        w.request, w.region, w.chunk_size
    );
    let d = &t.dynamic;
    let freed = match (d.freed_mapped_length, d.freed_region.as_deref()) {
        (Some(len), _) => format!("an mmapped {}-byte block (mapping {len})", d.freed_request),
        (None, Some(region)) => format!(
            "a {}-byte block from the {region}, not mmapped",
            d.freed_request
        ),
        (None, None) => format!("a {}-byte block (its region not recorded)", d.freed_request),
    };
    let asked = f
        .threshold_request
        .map_or("the same request".to_string(), |r| format!("malloc({r})"));
    let _ = writeln!(
        s,
        "after free() of {freed}, {asked} -> {}; the switch {} request {} (chunk {})",
        d.region_after_free,
        if d.moved { "moved to" } else { "stayed at" },
        d.new_threshold_request,
        d.new_threshold_chunk_size
    );
    match &t.tuned {
        Some(tu) => {
            let _ = writeln!(
                s,
                "with GLIBC_TUNABLES={}: threshold_request {} and chunk size {} ({})",
                tu.tunables.as_deref().unwrap_or("(unset)"),
                tu.threshold_request,
                tu.threshold_chunk_size,
                if tu.follows {
                    "the probe follows the setting"
                } else {
                    "UNEXPECTED: differs from the setting"
                }
            );
        }
        None => s.push_str("with glibc.malloc.mmap_threshold set: not measured (the run failed)\n"),
    }
    s
}

fn page_edge_text(e: &PageEdge) -> String {
    [&e.below, &e.above]
        .iter()
        .map(|a| match &a.raw {
            Some(raw) => format!("malloc({}) -> {raw}\n", a.request),
            None => format!("malloc({}) -> no mmap ({})\n", a.request, a.region),
        })
        .collect()
}

fn answer_free(f: &Findings) -> String {
    let (Some(b), Some(fb)) = (f.prev_inuse_bit, &f.free_bit) else {
        return "No free changed exactly one bit of the neighbour's tag in this run: this \
                contradicts glibc's PREV_INUSE behaviour (see the table)."
            .to_string();
    };
    let silent = match (fb.largest_silent_chunk, &fb.shared_second_word) {
        (Some(c), Some(key)) => format!(
            "Freeing chunks of up to {c} bytes changed no bit at all: they went to the tcache, \
             which keeps them marked in use (free wrote the same value, {key}, into the second \
             word of each: the tcache's key). "
        ),
        (Some(c), None) => format!(
            "Freeing chunks of up to {c} bytes changed no bit at all: free kept them marked in \
             use. "
        ),
        (None, _) => String::new(),
    };
    let first = fb
        .first_change
        .map(|(x, c)| {
            format!(
                "freeing a {x}-byte request (chunk {c}) cleared bit {b} in its neighbour's tag and \
                 wrote A's size into the neighbour's prev_size. "
            )
        })
        .unwrap_or_default();
    format!(
        "Bit {b} (value {:#x}, {}) of the NEXT chunk's tag: 1 = the previous chunk is in use, \
         0 = free. {silent}{}{first}A's own tag stayed the same in {} of {} frees: a chunk's tag \
         describes its size and its predecessor, not itself.",
        1u64 << b,
        FLAG_NAMES.get(b as usize).unwrap_or(&"?"),
        if first.is_empty() { "" } else { "Then " },
        fb.own_tag_unchanged,
        fb.attempts.len()
    )
}

fn answer_mmap_bit(f: &Findings) -> String {
    let Some(s) = &f.sweep else {
        return "The sweep did not run.".to_string();
    };
    if s.mmap_rows == 0 || s.heap_rows == 0 {
        let (what, of) = if s.mmap_rows == 0 {
            ("no request of the sweep was mmapped", "the threshold")
        } else {
            ("no request of the sweep came from the heap", "the heap")
        };
        return format!(
            "Not measured in the sweep: {what} ({} heap rows, {} mmap rows), so no bit can be \
             seen to follow the region; the sweep ended before {of} (see 1.3's probes).",
            s.heap_rows, s.mmap_rows
        );
    }
    match f.is_mmapped_bit {
        Some(b) => format!(
            "Bit {b} (value {:#x}, {}): it is set in all {} allocations that /proc/self/maps \
             places in an anonymous mmap region and clear in all {} that lie in [heap]; no other \
             low bit follows the region.",
            1u64 << b,
            FLAG_NAMES.get(b as usize).unwrap_or(&"?"),
            s.mmap_rows,
            s.heap_rows
        ),
        None => format!(
            "No single bit followed the region in this run ({} heap rows, {} mmap rows; bits \
             that did: {:?}): this contradicts glibc's IS_MMAPPED = bit 1.",
            s.heap_rows, s.mmap_rows, s.bits_following_region
        ),
    }
}

fn answer_threshold(f: &Findings) -> String {
    let (Some(tr), Some(tc), Some(t)) = (
        f.threshold_request,
        f.threshold_chunk_size,
        &f.threshold_effects,
    ) else {
        return "The bisection's heap and mmap probes overlap, so this run gives no single \
                switch (see the threshold table)."
            .to_string();
    };
    let w = &t.with_room;
    let d = &t.dynamic;
    let room = if w.region == "heap" {
        "the heap".to_string()
    } else {
        format!(
            "{} anyway (the top was smaller than the chunk plus 32 bytes)",
            w.region
        )
    };
    let setting = match &t.explicit_setting {
        Some(s) => format!(" The environment fixed the threshold here ({s})."),
        None => String::new(),
    };
    let dynamic = dynamic_effect(d, t.explicit_setting.as_deref());
    let sweep = f.sweep.as_ref().map(sweep_switch).unwrap_or_default();
    let drained = match (
        t.top_after_drain,
        t.largest_heap_request,
        t.largest_heap_chunk_size,
    ) {
        (Some(top), Some(h), Some(hc)) => format!(
            "with the top chunk drained to {top} bytes, malloc({h}) still came from the heap as \
             a {hc}-byte chunk and malloc({tr}) was mmapped"
        ),
        (None, Some(h), Some(hc)) => format!(
            "with the top chunk drained (its size not recorded), malloc({h}) still came from \
             the heap as a {hc}-byte chunk and malloc({tr}) was mmapped"
        ),
        _ => format!("malloc({tr}) was mmapped with the top chunk drained"),
    };
    let effects_1_2 = match (w.top_after_growth, w.grow_brk_growth, w.grow_chunk_size) {
        (Some(top), Some(grew), Some(chunk)) => format!(
            "(1) the top chunk serves any request that fits — right after a heap growth the top \
             had {top} bytes and malloc({}) came from {room}; (2) each brk growth adds padding, \
             which is why the top was that large (the heap grew by {grew} bytes for a \
             {chunk}-byte chunk)",
            w.request
        ),
        _ => format!(
            "(1) the top chunk serves any request that fits and (2) each brk growth adds \
             padding — not measured in this run: the probe recorded no heap growth before \
             malloc({}), which came from {room}",
            w.request
        ),
    };
    let tuned = match &t.tuned {
        Some(tu) => match tu.setting {
            Some(v) => format!(
                "With the tunable glibc.malloc.mmap_threshold={v} the probe found a chunk size \
                 of {} ({}).",
                tu.threshold_chunk_size,
                if tu.follows {
                    "the setting"
                } else {
                    "NOT the setting"
                }
            ),
            None => format!(
                "The run meant to set glibc.malloc.mmap_threshold had no such setting \
                 (GLIBC_TUNABLES {}) and found a chunk size of {}.",
                tu.tunables.as_deref().unwrap_or("unset"),
                tu.threshold_chunk_size
            ),
        },
        None => "The run with glibc.malloc.mmap_threshold set failed (see above): not measured."
            .to_string(),
    };
    format!(
        "malloc switches to mmap at a request of {tr} bytes, i.e. a chunk size of {tc} ({tc:#x}): \
         {drained} (glibc compares the chunk size, request + 8 rounded up to 16, with the \
         threshold).{setting} Three effects blur this: {effects_1_2}; (3) {dynamic}.{sweep} \
         {tuned}"
    )
}

/// Effect 3: what freeing a block did to the switch, from what that block was.
fn dynamic_effect(d: &DynamicThreshold, explicit_setting: Option<&str>) -> String {
    match d.freed_mapped_length {
        Some(len) if d.moved => format!(
            "freeing an mmapped chunk raises the threshold — after freeing a {len}-byte mapping \
             the switch moved to request {} (chunk {}{})",
            d.new_threshold_request,
            d.new_threshold_chunk_size,
            if d.raised_to_freed_length {
                ", the freed mapping's length"
            } else {
                ""
            }
        ),
        Some(len) => format!(
            "after freeing a {len}-byte mapping the switch did NOT move ({})",
            match explicit_setting {
                Some(_) => "an explicit setting turns the dynamic threshold off",
                None => "no setting in the environment explains this",
            }
        ),
        None => format!(
            "the dynamic threshold (freeing an mmapped chunk raises it) could not be shown: the \
             {}-byte block the probe freed first {}, so no mapping was freed{}; the switch {} \
             request {}",
            d.freed_request,
            match d.freed_region.as_deref() {
                Some("mmap") => "was mmapped but its mapping's length was not recorded".to_string(),
                Some(region) => format!("came from the {region}, below the threshold in force"),
                None => "was not recorded".to_string(),
            },
            match explicit_setting {
                Some(s) => format!(" (the threshold in force is the environment's, {s})"),
                None => String::new(),
            },
            if d.moved { "moved to" } else { "stayed at" },
            d.new_threshold_request
        ),
    }
}

/// Where the single-process sweep showed the switch, or why it did not.
fn sweep_switch(s: &Sweep) -> String {
    match (s.largest_heap_request, s.smallest_mmap_request) {
        (Some(h), Some(m)) => format!(
            " In the single-process sweep the switch appeared between requests {h} and {m}."
        ),
        (Some(h), None) => format!(
            " The single-process sweep did not reach the switch: none of its {} requests, up to \
             {h}, was mmapped.",
            s.heap_rows
        ),
        (None, Some(m)) => format!(
            " The single-process sweep did not show the switch: all {} of its requests, from \
             {m} up, were mmapped.",
            s.mmap_rows
        ),
        (None, None) => " The single-process sweep recorded no request.".to_string(),
    }
}

fn answer_length(f: &Findings) -> String {
    let Some(fm) = &f.formula else {
        return "No malloc in this run made an mmap call, so the question cannot be answered \
                here."
            .to_string();
    };
    let page = fm.page_size;
    let exact = if fm.length_is_request == 0 {
        "never x itself".to_string()
    } else {
        format!(
            "L was x itself in {} of {} calls",
            fm.length_is_request, fm.mmaps
        )
    };
    let added = match fm.added_bytes {
        Some((lo, hi)) => format!(
            "Every pair fits L = x + h rounded up to whole pages for any h with {lo} < h ≤ {hi}, \
             and for no other h: malloc adds a few header bytes to x, then rounds to pages. "
        ),
        None => "No single number of added bytes fits every pair. ".to_string(),
    };
    let example = f
        .mmap_lengths
        .first()
        .map(|m| {
            format!(
                "Example: malloc({}) -> `{}` (L = {}). ",
                m.request, m.raw, m.length
            )
        })
        .unwrap_or_default();
    let edge = f.page_edge.as_ref().map(edge_sentence).unwrap_or_default();
    let below = f
        .sweep
        .as_ref()
        .map(|s| {
            if s.unpaired_mmap_rows > 0 {
                format!(
                    "{} mmap-region rows had no paired mmap call (unexpected).",
                    s.unpaired_mmap_rows
                )
            } else {
                format!(
                    "Below the switch, {} mallocs grew the heap with brk and the rest made no \
                     system call at all.",
                    s.brk_rows
                )
            }
        })
        .unwrap_or_default();
    format!(
        "Something different: {exact}. For {} mmapped requests the length L exceeded x by {} to \
         {} bytes. {added}glibc's L = align_up(align_up(x + 8, 16) + 8, page {page}): x plus the \
         8-byte size field rounded to 16 (the chunk), plus 8 more because an mmapped chunk has \
         no next chunk to lend it a prev_size word, rounded up to whole pages. This held for {} \
         of {} calls, and the chunk's tag recorded the same L in {} of {}; the pointer was 16 \
         bytes (prev_size + size) past the start of the mapping in {} of {}. {example}{edge}{below}",
        fm.mmaps,
        fm.overhead_min,
        fm.overhead_max,
        fm.formula_holds,
        fm.mmaps,
        fm.tag_agrees,
        fm.mmaps,
        fm.pointer_16,
        fm.mmaps,
    )
}

fn edge_sentence(e: &PageEdge) -> String {
    match (e.below.length, e.above.length) {
        (Some(l1), Some(l2)) if l2 > l1 => format!(
            "At a page edge the extra word shows: malloc({}) mapped {l1} bytes but malloc({}), \
             8 bytes more, mapped {l2} ({} more page(s) of {}) although x + 16 = {} still fits \
             in {l1}. ",
            e.below.request,
            e.above.request,
            (l2 - l1).div_ceil(e.page_size.max(1)),
            e.page_size,
            e.above.request + 16
        ),
        (Some(l1), Some(l2)) => format!(
            "At a page edge malloc({}) mapped {l1} and malloc({}) mapped {l2}: no extra page \
             (unexpected for glibc's formula). ",
            e.below.request, e.above.request
        ),
        _ => "The page-edge requests were not mmapped here, so that edge could not be shown. "
            .to_string(),
    }
}

fn list(v: &[u64]) -> String {
    let s: Vec<String> = v.iter().map(u64::to_string).collect();
    if s.is_empty() {
        "none".to_string()
    } else {
        s.join(", ")
    }
}

/// What the tcache answers say when a free-bit run gave nothing.
fn free_bit_missing(f: &Findings) -> String {
    if f.failed_runs.is_empty() {
        "free-bit did not run.".to_string()
    } else {
        "not measured in this run: a free-bit run failed (see the failed runs above).".to_string()
    }
}

fn answer_tcache(f: &Findings) -> String {
    let Some(c) = &f.tcache_comparison else {
        return free_bit_missing(f);
    };
    let chunks = |reqs: &[u64]| -> String {
        let v: Vec<u64> = c
            .sizes
            .iter()
            .filter(|s| reqs.contains(&s.request))
            .map(|s| s.chunk_size)
            .collect();
        list(&v)
    };
    let baseline = match &c.baseline_tunables {
        Some(t) => format!(" (the default run already had GLIBC_TUNABLES={t})"),
        None => String::new(),
    };
    let mut s = format!(
        "Compared with the default run{baseline}, under GLIBC_TUNABLES={}: ",
        c.tunables
    );
    if c.now_change.is_empty() {
        s.push_str("no request changed the in-use bit that did not already change. ");
    } else {
        let _ = write!(
            s,
            "freeing requests {} (chunks {}) now clears A's in-use bit (B's tag loses PREV_INUSE \
             and B's prev_size gets A's size); with the tcache they changed nothing. ",
            list(&c.now_change),
            chunks(&c.now_change)
        );
    }
    if !c.still_silent.is_empty() {
        let fast = c.still_silent_into.iter().all(|i| *i == FreedInto::Fastbin);
        let consolidated = f
            .free_bit_no_tcache
            .as_ref()
            .map(|fb| fb.large_malloc.outcome)
            == Some(LargeMallocOutcome::ClearedByMalloc);
        let _ = write!(
            s,
            "Requests {} (chunks {}) still change nothing{}{}. ",
            list(&c.still_silent),
            chunks(&c.still_silent),
            if fast {
                ": free put them on a fastbin — it wrote only their first word (the fd link) and \
                 left the second as it was — and fastbin chunks stay marked in use"
            } else {
                ""
            },
            if fast && consolidated {
                " until a large malloc consolidates them (see the course's hint below)"
            } else {
                ""
            }
        );
    }
    if !c.change_in_both.is_empty() {
        let _ = write!(
            s,
            "Requests {} changed the bit in both runs{}. ",
            list(&c.change_in_both),
            if c.default_used_tcache {
                " (the tcache, which took the smaller ones, did not keep them)"
            } else {
                ""
            }
        );
    }
    if !c.stopped_changing.is_empty() {
        let _ = write!(
            s,
            "Unexpected: requests {} changed it only WITH the tcache. ",
            list(&c.stopped_changing)
        );
    }
    s.trim_end().to_string()
}

fn answer_hint(f: &Findings) -> String {
    let thousand = match f
        .tcache_comparison
        .as_ref()
        .and_then(|c| c.free_1000.as_ref())
    {
        Some(s) => {
            format!(
            "Free a 1000-byte chunk: without the tcache, free(malloc(1000)) (chunk {}) {} — B's \
             tag went {:#x} -> {:#x}, and A went to {}; in the default run the same free {} (A \
             went to {}).",
            s.chunk_size,
            if s.no_tcache_changed { "cleared A's in-use bit" } else { "changed no bit" },
            s.no_tcache_tag_b.0,
            s.no_tcache_tag_b.1,
            into_name(s.no_tcache_into),
            if s.default_changed { "cleared it too" } else { "changed nothing" },
            into_name(s.default_into)
        )
        }
        None => "Free a 1000-byte chunk: free-bit made no 1000-byte attempt in this run.".into(),
    };
    let large = match (&f.free_bit_no_tcache, &f.free_bit) {
        (Some(no), Some(default)) => format!(
            "Malloc 10000 bytes after it: {} In the default run, {}",
            large_sentence(&no.large_malloc, "without the tcache"),
            large_sentence(&default.large_malloc, "")
        ),
        _ => format!("Malloc 10000 bytes after it: {}", free_bit_missing(f)),
    };
    format!("{thousand} {large}")
}

/// One run's small free followed by the large malloc, as measured.
fn large_sentence(l: &LargeMalloc, run: &str) -> String {
    let [t0, t1, t2] = l.tag_b;
    let counted = match l.fastbin_chunks {
        Some([a, b, c]) => format!("mallinfo2 counted {a} -> {b} -> {c} fastbin chunks"),
        None => "mallinfo2 was not available to count the fastbins".to_string(),
    };
    let run = if run.is_empty() {
        String::new()
    } else {
        format!("{run}, ")
    };
    let freed = format!(
        "{run}free(malloc({})) (chunk {}) put A {} and left B's tag at {t1:#x}",
        l.request,
        l.chunk_size,
        into_phrase(l.freed_into)
    );
    match l.outcome {
        LargeMallocOutcome::ClearedByMalloc => format!(
            "{freed}; malloc({}) then turned it into {t2:#x} — PREV_INUSE cleared — wrote {:#x}{} \
             into B's prev_size, and left A's second word pointing into {} ({}). {counted}{}",
            l.large_request,
            l.prev_size_after_malloc,
            if l.prev_size_is_a_after_malloc {
                " (A's size)"
            } else {
                ""
            },
            l.second_word_after_malloc_points_into,
            l.second_word_after_malloc,
            if l.fastbins_emptied_by_malloc == Some(true) {
                ": the large request emptied the fastbins (glibc's malloc_consolidate), and only \
                 then was the small chunk marked free."
            } else {
                "."
            }
        ),
        LargeMallocOutcome::StillInUse => format!(
            "{freed}, and malloc({}) left it at {t2:#x}: A stays marked in use{}; {counted}.",
            l.large_request,
            match (l.freed_into, l.a_untouched_by_malloc) {
                (FreedInto::Tcache, true) => {
                    " — the tcache held it and the large malloc did not touch it (A's words \
                     stayed as free left them)"
                }
                (_, true) => {
                    " — the large malloc did not touch it (A's words stayed as free left them)"
                }
                _ => "",
            }
        ),
        LargeMallocOutcome::ClearedByFree => format!(
            "{run}free(malloc({})) already cleared the bit itself (B's tag {t0:#x} -> {t1:#x}), \
             so malloc({}) had nothing left to clear (B's tag then {t2:#x}; {counted}).",
            l.request, l.large_request
        ),
        LargeMallocOutcome::Unclear => format!(
            "{run}B's tag went {t0:#x} -> {t1:#x} (free) -> {t2:#x} (malloc({})): not a single \
             PREV_INUSE change ({counted}); see the table.",
            l.large_request
        ),
    }
}

/// Where free put A, as a phrase.
fn into_phrase(i: FreedInto) -> &'static str {
    match i {
        FreedInto::Bin => "into a bin",
        FreedInto::Tcache => "into the tcache",
        FreedInto::Fastbin => "on a fastbin",
        FreedInto::Unclear => "somewhere its words do not tell",
    }
}
