//! Beyond glibc's main arena, explained: a second thread's arena (NON_MAIN_ARENA and its
//! mmapped heap) and another allocator's kernel calls, each answer first in one plain sentence
//! with its figures, then the evidence (the ladder's strace lines only under `--verbose`).

use std::fmt::Write as _;

use super::allocator::{self, AllocatorEvidence, AllocatorFindings, LadderStep};
use super::analyze::tunable_value;
use super::analyze::Findings;
use super::wire::{parse_hex, ThreadArenaReport, ThreadHeap};
use super::{EnvVar, Evidence};
use crate::Block;

pub const Q_THREAD: &str =
    "Where does a second thread's malloc come from, and what do its chunk's flags say?";
pub const Q_ALLOCATOR: &str =
    "Where does another allocator start asking the kernel for each request?";

/// The blocks of both experiments that ran (none for evidence recorded before them).
pub fn blocks(f: &Findings, evidence: &Evidence) -> Vec<Block> {
    let mut blocks = Vec::new();
    if let (Some(_), Some(run)) = (&f.thread_arena, &evidence.thread_arena) {
        blocks.push(Block::heading("malloc-probe thread-arena"));
        blocks.push(Block::evidence(
            "thread-arena: one malloc per thread, their tags, the thread heap's mappings",
            thread_text(&run.doc),
        ));
        let env: Vec<EnvVar> = evidence
            .environment
            .iter()
            .chain(&run.env)
            .cloned()
            .collect();
        blocks.push(Block::answer(Q_THREAD, answer_thread(&run.doc, &env)));
    }
    if let (Some(a), Some(e)) = (&f.allocator, &evidence.allocator) {
        blocks.push(Block::heading(format!(
            "malloc-probe --allocator {} kernel-calls, under strace",
            a.name
        )));
        blocks.push(Block::evidence(
            "allocator, threshold found, bytes mapped per request, returned on free, documented",
            summary_table(a),
        ));
        blocks.push(Block::evidence(
            format!(
                "{}: each size, how many mallocs made their own kernel call",
                a.name
            ),
            ladder_table(e),
        ));
        blocks.push(Block::raw(
            format!("{}: the kernel calls of every malloc and free", a.name),
            ladder_raw(e),
        ));
        blocks.push(Block::answer(Q_ALLOCATOR, answer_allocator(a, e)));
    }
    blocks
}

/// `8388608 B (8 MiB)`, or plain bytes when not a whole KiB/MiB.
pub fn sized(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{n} bytes ({} MiB)", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{n} bytes ({} KiB)", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// The thread heap of a `thread-arena` document, re-found in its recorded maps.
pub fn thread_heap(doc: &ThreadArenaReport) -> Option<ThreadHeap> {
    let addr = parse_hex(&doc.thread_chunk.address)?;
    ThreadHeap::find(doc.maps.iter().map(String::as_str), addr)
}

/// The tunable that caps how many arenas glibc creates (mallopt(3) `M_ARENA_MAX`).
pub const ARENA_MAX_TUNABLE: &str = "glibc.malloc.arena_max";

/// The arena limit the probe ran with, as the variable that set it (`GLIBC_TUNABLES=…` wins
/// over `MALLOC_ARENA_MAX`, as for the mmap threshold), with its value; `None` when neither
/// set one.
pub fn arena_max_setting(env: &[EnvVar]) -> Option<(String, u64)> {
    let last = |name: &str| env.iter().rev().find(|v| v.name == name);
    let tunable = last("GLIBC_TUNABLES").and_then(|v| {
        let value = tunable_value(&v.value, ARENA_MAX_TUNABLE)?;
        Some((format!("GLIBC_TUNABLES={}", v.value), value.parse().ok()?))
    });
    tunable.or_else(|| {
        let v = last("MALLOC_ARENA_MAX")?;
        Some((v.to_string(), v.value.trim().parse().ok()?))
    })
}

/// The answer to [`Q_THREAD`] from one `thread-arena` run and the environment it ran with
/// (the inherited malloc settings, then the run's own).
pub fn answer_thread(doc: &ThreadArenaReport, env: &[EnvVar]) -> String {
    let f = &doc.findings;
    let bit = |set: bool| if set { "set" } else { "clear" };
    let mut s = format!(
        "The second thread's malloc({}) has NON_MAIN_ARENA (bit 2, value 0x4) {} (tag {}), the \
         main thread's {} (tag {})",
        doc.request,
        bit(f.a_bit_thread),
        doc.thread_chunk.tag,
        bit(f.a_bit_main),
        doc.main_chunk.tag
    );
    let setting = arena_max_setting(env);
    let limit = match &setting {
        Some((var, 1)) => format!("the probe ran with {var}, one arena at most"),
        Some((var, n)) => format!("the probe ran with {var}, at most {n} arenas"),
        None => "the environment set no arena limit (neither MALLOC_ARENA_MAX nor \
                 glibc.malloc.arena_max in GLIBC_TUNABLES)"
            .to_string(),
    };
    let holder = |addr: &str| {
        let addr = parse_hex(addr)?;
        doc.maps
            .iter()
            .filter_map(|l| lab_trace::maps::MapsLine::parse(l))
            .find(|m| m.contains(addr))
            .map(|m| (m.start, m.end, m.path.to_string()))
    };
    let thread_in = holder(&doc.thread_chunk.address);
    if let Some(own) = mmapped_on_its_own(doc, thread_in.as_ref(), &limit) {
        s.push_str(&own);
        return s;
    }
    match (thread_heap(doc), f.heap_reservation_bytes, &thread_in) {
        (Some(h), Some(bytes), _) => {
            // glibc aligns every thread heap to HEAP_MAX (64 MiB on 64-bit), the size it
            // reserves: the measured reservation is that size.
            let _ = write!(
                s,
                ": it lies in a thread heap of its own, the anonymous mapping {:#x}-{:#x} ({} \
                 read-write) inside a reservation of {} that {}",
                h.rw.0,
                h.rw.1,
                sized(h.rw.1 - h.rw.0),
                sized(bytes),
                if bytes > 0 && h.rw.0 % bytes == 0 {
                    "starts on a multiple of its size (glibc's HEAP_MAX alignment)".to_string()
                } else {
                    format!(
                        "does not start on a multiple of its size ({:#x} is {} past one)",
                        h.rw.0,
                        sized(h.rw.0 % bytes.max(1))
                    )
                }
            );
            if f.a_bit_thread != f.a_bit_main && h.reserved.is_some() {
                s.push_str(", the HEAP_MAX reservation glibc maps for each thread arena.");
            } else {
                s.push_str(", which contradicts glibc's thread arenas: see the mappings below.");
            }
        }
        (_, _, Some((start, end, path))) if path == "[heap]" => {
            let beside = if holder(&doc.main_chunk.address).as_ref() == thread_in.as_ref() {
                ", the same mapping as the main thread's chunk"
            } else {
                ""
            };
            let _ = write!(
                s,
                ": it lies in [heap] ({start:#x}-{end:#x}), the main arena's brk heap{beside}, so \
                 the second thread was served by the main arena; {limit}"
            );
            s.push_str(match setting {
                Some((_, 1)) if !f.a_bit_thread => {
                    ": with one arena allowed glibc gives every thread the main arena, as \
                     measured."
                }
                Some(_) if !f.a_bit_thread => {
                    ": the limit allows thread arenas, so this run did not show why the thread \
                     got the main arena."
                }
                None if !f.a_bit_thread => {
                    ", so this run did not show why the thread got the main arena (glibc makes \
                     a thread arena unless a limit or a failed mapping stops it; neither was \
                     measured here)."
                }
                _ => ", yet the tag says NON_MAIN_ARENA: the tag and the mapping disagree.",
            });
        }
        (_, _, Some((start, end, path))) => {
            let what = if path.is_empty() {
                "an anonymous mapping".to_string()
            } else {
                path.clone()
            };
            let _ = write!(
                s,
                ": it lies in {what} ({start:#x}-{end:#x}), neither [heap] nor a thread heap's \
                 read-write mapping; {limit}."
            );
        }
        (_, _, None) => {
            let _ = write!(
                s,
                "; no mapping of the recorded /proc/self/maps holds the thread's chunk, so where \
                 it came from was not measured; {limit}."
            );
        }
    }
    s
}

/// The end of [`answer_thread`] when the second thread's chunk has IS_MMAPPED (bit 1): no
/// arena's heap holds it, it has a mapping of its own (glibc's fallback when neither a new
/// thread heap nor the main arena's brk heap could be had, e.g. under an address-space limit).
fn mmapped_on_its_own(
    doc: &ThreadArenaReport,
    holder: Option<&(u64, u64, String)>,
    limit: &str,
) -> Option<String> {
    parse_hex(&doc.thread_chunk.tag).filter(|t| t & 0x2 != 0)?;
    let within = holder.map_or(String::new(), |(start, end, _)| {
        format!(", the anonymous mapping {start:#x}-{end:#x}")
    });
    Some(format!(
        "; its tag has IS_MMAPPED (0x2): the chunk is a mapping of its own{within}, not part \
         of any arena's heap, so this run shows no thread arena at all; {limit}."
    ))
}

fn thread_text(doc: &ThreadArenaReport) -> String {
    let flags = |t: &str| {
        parse_hex(t).map_or_else(|| "?".into(), |v| malloc_probe::tag::Tag(v).flag_names())
    };
    let mut s = format!(
        "{:<14} {:<16} {:>8}  flags\n",
        "thread", "malloc returned", "tag"
    );
    for (who, c) in [("main", &doc.main_chunk), ("second", &doc.thread_chunk)] {
        let _ = writeln!(
            s,
            "{who:<14} {:<16} {:>8}  {}",
            c.address,
            c.tag,
            flags(&c.tag)
        );
    }
    if let Some(h) = thread_heap(doc) {
        let line = |start: u64| {
            doc.maps
                .iter()
                .find(|l| lab_trace::maps::MapsLine::parse(l).is_some_and(|m| m.start == start))
                .cloned()
                .unwrap_or_default()
        };
        let _ = writeln!(s, "/proc/self/maps around the second thread's chunk:");
        let _ = writeln!(s, "  {}   <- read-write: the heap in use", line(h.rw.0));
        if let Some((start, end)) = h.reserved {
            let _ = writeln!(
                s,
                "  {}   <- ---p: reserved, not usable yet ({} counted, up to {:#x})",
                line(start),
                sized(end - start),
                end
            );
        }
        let _ = write!(
            s,
            "  heap start {:#x} is a multiple of {:#x}; reservation {} bytes",
            h.rw.0,
            h.start_alignment,
            h.reservation_bytes()
        );
    }
    s
}

/// The answer: the switch with its call, the bytes per request and the free, then the
/// documented figure and whether the measurement agrees.
fn answer_allocator(a: &AllocatorFindings, e: &AllocatorEvidence) -> String {
    let Some(switch) = a.switch_request else {
        return format!(
            "{} never made a kernel call for every malloc of one size: {}; there is no switch to \
             report (documented: {}).",
            a.name,
            allocator::no_switch_reason(e),
            a.documented
        );
    };
    let call = a.syscall.map_or("a kernel call", |c| c.name());
    let mut s = format!(
        "{} made its own {call} for every malloc from {} on",
        a.name,
        sized(switch)
    );
    let lo = allocator::search_bracket(e).and_then(|(lo, _)| lo);
    if let Some(lo) = lo {
        let _ = write!(s, " ({lo} did not: the switch lies in ({lo}, {switch}])");
    }
    if let Some(first) = a.mapped_per_request.first() {
        let _ = write!(
            s,
            "; malloc({}) asked for {}",
            first.request,
            sized(first.bytes)
        );
    }
    match a.returned_on_free {
        Some(allocator::Returned::Kept) => s.push_str("; free kept that memory (no system call)"),
        Some(r) => {
            let _ = write!(s, "; free gave it back with {}", r.name());
        }
        None => {}
    }
    let _ = write!(s, ". Documented: {}", a.documented);
    match allocator::documented_threshold(&a.name) {
        Some(d) if lo.map_or(d == switch, |lo| (lo..=switch).contains(&d)) => {
            let _ = write!(s, " — the measurement agrees with {}.", sized(d));
        }
        Some(d) => {
            let _ = write!(
                s,
                " — the measured switch differs from the documented {}: it is {} it.",
                sized(d),
                if switch > d { "above" } else { "below" }
            );
        }
        None => s.push('.'),
    }
    s
}

/// The table: one row per allocator measured.
fn summary_table(a: &AllocatorFindings) -> String {
    let threshold = a.switch_request.map_or("none found".to_string(), |t| {
        format!("{t} ({})", a.syscall.map_or("?", |c| c.name()))
    });
    let mapped = match (a.mapped_per_request.first(), a.mapped_per_request.last()) {
        (Some(f), Some(l)) if f != l => format!(
            "{} -> {} .. {} -> {}",
            f.request, f.bytes, l.request, l.bytes
        ),
        (Some(f), _) => format!("{} -> {}", f.request, f.bytes),
        _ => "-".to_string(),
    };
    format!(
        "{:<10} {:<20} {:<46} {:<8} documented\n{:<10} {:<20} {:<46} {:<8} {}",
        "allocator",
        "threshold found",
        "bytes mapped per request (x -> bytes)",
        "on free",
        a.name,
        threshold,
        mapped,
        a.returned_on_free.map_or("-", |r| r.name()),
        a.documented
    )
}

fn ladder_rounds(e: &AllocatorEvidence) -> Vec<Vec<LadderStep>> {
    e.rounds
        .iter()
        .filter_map(|r| allocator::ladder(r).ok())
        .collect()
}

fn ladder_table(e: &AllocatorEvidence) -> String {
    let mut s = format!(
        "{} ({})\n{:>5}  {:>10}  {:>12}  {:<5} {:>12}  {}\n",
        e.name, e.path, "round", "request", "own call", "call", "bytes (med)", "on free"
    );
    for (i, round) in ladder_rounds(e).iter().enumerate() {
        for step in round {
            let mut bytes: Vec<u64> = step
                .calls
                .iter()
                .filter_map(|c| c.call.map(|k| k.1))
                .collect();
            bytes.sort_unstable();
            let median = bytes
                .get(bytes.len().saturating_sub(1) / 2)
                .map_or("-".to_string(), u64::to_string);
            let call = step
                .calls
                .iter()
                .find_map(|c| c.call.map(|k| k.0.name()))
                .unwrap_or("-");
            let freed: Vec<&str> = step
                .calls
                .iter()
                .filter_map(|c| c.freed)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(allocator::Returned::name)
                .collect();
            let _ = writeln!(
                s,
                "{:>5}  {:>10}  {:>12}  {:<5} {:>12}  {}{}",
                i + 1,
                step.request,
                format!("{} of {}", step.with_call, step.mallocs),
                call,
                median,
                if freed.is_empty() {
                    "-".to_string()
                } else {
                    freed.join("/")
                },
                if step.nulls > 0 {
                    format!("  ({} NULL)", step.nulls)
                } else {
                    String::new()
                }
            );
        }
    }
    s.trim_end().to_string()
}

fn ladder_raw(e: &AllocatorEvidence) -> String {
    let mut s = String::new();
    for (i, round) in ladder_rounds(e).iter().enumerate() {
        for c in round.iter().flat_map(|st| &st.calls) {
            if c.raw.is_empty() {
                continue;
            }
            let _ = writeln!(s, "round {} malloc({}):", i + 1, c.request);
            for line in &c.raw {
                let _ = writeln!(s, "  {line}");
            }
        }
    }
    if s.is_empty() {
        s.push_str("no malloc or free made a kernel call");
    }
    s.trim_end().to_string()
}
