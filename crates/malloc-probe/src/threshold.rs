//! `threshold`: the exact heap→mmap switch, with the three effects that blur it separated, each
//! measured in fresh child processes whose top chunk is under control.

use malloc_probe::{ChildOut, Dynamic, Threshold};

use crate::probe::{self, ChildOpts, CHUNK_STEP};

/// The highest request the bisection tries (glibc caps the dynamic threshold at 32 MiB).
pub const HIGH: usize = 64 << 20;

/// The environment settings that fix the threshold (and switch the dynamic one off).
pub fn explicit_setting() -> Option<String> {
    let mut parts = Vec::new();
    if let Ok(t) = std::env::var("GLIBC_TUNABLES") {
        if t.contains("mmap_threshold") {
            parts.push(format!("GLIBC_TUNABLES={t}"));
        }
    }
    if let Ok(v) = std::env::var("MALLOC_MMAP_THRESHOLD_") {
        parts.push(format!("MALLOC_MMAP_THRESHOLD_={v}"));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn largest_heap(probes: &[ChildOut], below: usize) -> Option<&ChildOut> {
    probes
        .iter()
        .filter(|c| c.row.region == "heap" && c.row.request < below)
        .max_by_key(|c| c.row.request)
}

pub fn measure(progress: &dyn Fn(&str)) -> anyhow::Result<Threshold> {
    let drained = ChildOpts {
        drain: true,
        ..ChildOpts::default()
    };
    progress("bisecting the switch with a drained top chunk (one fresh process per probe)");
    let (r, probes) = probe::bisect(drained, 16, HIGH)?;
    let heap = largest_heap(&probes, r)
        .ok_or_else(|| anyhow::anyhow!("no heap probe below {r}"))?
        .row
        .clone();
    let threshold_chunk_size = heap.chunk_size + CHUNK_STEP;

    progress("the same request right after a heap growth");
    let with_room = probe::run_child(
        r,
        ChildOpts {
            drain: true,
            grow_first: Some(heap.request),
            ..ChildOpts::default()
        },
    )?;

    progress("freeing an mmapped block, then bisecting again");
    let freed_request = r.saturating_mul(4).min(HIGH / 4);
    let after_free = ChildOpts {
        drain: true,
        free_first: Some(freed_request),
        ..ChildOpts::default()
    };
    let same = probe::run_child(r, after_free)?;
    let (r2, probes2) = probe::bisect(after_free, 16, HIGH)?;
    let heap2 = largest_heap(&probes2, r2)
        .ok_or_else(|| anyhow::anyhow!("no heap probe below {r2}"))?
        .row
        .clone();
    let freed_mapped_length = same.freed_first.as_ref().and_then(|f| f.mapped_length);
    Ok(Threshold {
        drained_probes: probes,
        threshold_request: r,
        largest_heap_request: heap.request,
        largest_heap_chunk_size: heap.chunk_size,
        threshold_chunk_size,
        with_room,
        dynamic: Dynamic {
            freed_request,
            freed_mapped_length,
            same_request_after_free: same,
            new_threshold_request: r2,
            new_threshold_chunk_size: heap2.chunk_size + CHUNK_STEP,
            moved: r2 != r,
            probes: probes2.len(),
        },
        explicit_setting: explicit_setting(),
    })
}
