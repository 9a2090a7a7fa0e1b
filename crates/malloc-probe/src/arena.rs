//! `thread-arena`: a block malloc'd by a second thread comes from another arena than the main
//! thread's, and its tag says so (NON_MAIN_ARENA, bit 2). The thread arena's memory is not the
//! brk heap but a "heap" glibc mmaps itself: a reservation of HEAP_MAX_SIZE bytes, aligned to
//! that size, of which only the used part is read-write (`new_heap` in malloc/arena.c). Both are
//! read here from this run: the tags, and `/proc/self/maps` while both blocks are alive.

use anyhow::Context as _;
use malloc_probe::tag::Tag;
use malloc_probe::{ArenaChunk, ThreadArenaFindings, ThreadArenaReport};

use crate::probe::Prober;

/// The request of both blocks: small, so each comes from its thread's arena, never from mmap.
pub const REQUEST: usize = 1000;

/// One block in each thread, their tags, and the maps.
pub fn measure(p: &Prober) -> anyhow::Result<ThreadArenaReport> {
    let glibc = &p.glibc;
    let main = glibc
        .malloc(REQUEST)
        .context("malloc returned NULL in the main thread")?;
    let main_chunk = (main.addr(), glibc.tag(&main));
    main.leak();
    let thread_chunk = std::thread::scope(|s| {
        s.spawn(|| {
            let block = glibc.malloc(REQUEST)?;
            let seen = (block.addr(), glibc.tag(&block));
            // Kept: the thread's arena and heap stay, and so does the block, for the maps read.
            block.leak();
            Some(seen)
        })
        .join()
    })
    .map_err(|_| anyhow::anyhow!("the second thread panicked"))?
    .context("malloc returned NULL in the second thread")?;
    let maps = std::fs::read_to_string("/proc/self/maps")
        .context("cannot read /proc/self/maps (is /proc mounted?)")?;
    let maps: Vec<String> = maps.lines().map(str::to_string).collect();
    let chunk = |(addr, tag): (usize, Tag)| ArenaChunk {
        address: format!("{addr:#x}"),
        tag: format!("{:#x}", tag.0),
    };
    Ok(ThreadArenaReport {
        findings: ThreadArenaFindings::of(
            main_chunk.1,
            thread_chunk.1,
            thread_chunk.0 as u64,
            &maps,
        ),
        allocator: crate::allocator(p),
        request: REQUEST,
        main_chunk: chunk(main_chunk),
        thread_chunk: chunk(thread_chunk),
        maps,
    })
}
