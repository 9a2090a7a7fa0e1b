//! Step 4: how the dynamic loader maps a shared library into two programs, and what they share.
//!
//! `cargo xtask run-step 4` explains our foo and bar (crates/foo, crates/bar, linked against
//! libfoobar.so); `cargo xtask run-step 4 --foo PATH --bar PATH` explains any two programs that
//! load a library exporting `baz`, e.g. the course's foo and bar (`gcc -g -shared -fPIC
//! foobar.c -o foobar.so`, `gcc -g foo.c foobar.so -o foo`: DT_NEEDED foobar.so, no RUNPATH; the
//! lab runs them with their directory on LD_LIBRARY_PATH, as the course's `LD_LIBRARY_PATH=.`).
//!
//! - xtask's `step4::measure` finds the library the first program will load (DT_NEEDED
//!   along ld.so's search path), evicts it from the page cache (fsync + POSIX_FADV_DONTNEED,
//!   mincore to count), starts foo under `strace -f -e trace=openat,read,pread64,mmap,mprotect,munmap,close`,
//!   waits until it has loaded the library and reached its loop, records its faults and the
//!   library's resident pages, does the same for bar, then reads baz from both processes'
//!   memory (/proc/PID/mem, at the library's load address plus baz's `.dynsym` value) at the
//!   same moments over a few seconds, snapshots maps, smaps and pagemap, stops both with SIGINT
//!   and reaps them (killed and reaped on every other path), and builds a C client that names
//!   baz with `cc`.
//! - [`analyze`](analyze::analyze) (pure) finds the load in each trace (the openat, the mmaps on
//!   its descriptor until close, RELRO's mprotect), places setbaz/getbaz/baz in the mmaps,
//!   compares the calls, reads smaps' sharing evidence (Shared_Clean and Shared_Dirty, Pss
//!   against Rss: `Counters::sharing`), compares the physical frames, the values, the faults and
//!   page-cache counts, and the client's relocation.
//! - [`explain`](explain::explain) formats the answers and the picture of pages and frames
//!   (`charts::step4`).
//!
//! `--json` findings (DESIGN.md): `{"programs": [{"name", "library", "mmaps", "symbols":
//! {"setbaz"|"getbaz"|"baz": {"address", "prot", …}}, "baz_values", …}], "code_shared":
//! bool|null, "baz_private": bool|null, …}` (null: frame numbers unreadable, i.e. not root).
//! Each program's `"baz_home"` says where its baz really is: the address ld.so wrote into the
//! library's GOT slot for baz (read from /proc/PID/mem), in the program's own .bss when the
//! program has an `R_X86_64_COPY` of baz (it names baz directly); values and frames of baz are
//! taken there.
//!
//! A production investigation would use `LD_DEBUG=files`, `perf trace` or eBPF rather than
//! strace (which slows every syscall), `/proc/PID/smaps_rollup` for totals, and would not evict
//! a library other processes depend on.

// foo, bar and baz are the assignment's names, not placeholders.
#![allow(clippy::disallowed_names)]

pub mod analyze;
pub mod evidence;
pub mod explain;
pub mod glance;
pub mod picture;

pub use analyze::{ClientFinding, Findings};
pub use evidence::Evidence;

use crate::{Block, Step};

/// The system calls the programs are traced for.
pub const FILTER: &str = "openat,read,pread64,mmap,mprotect,munmap,close";

/// The library's symbols the step looks for in `.dynsym`.
pub const SYMBOLS: [&str; 4] = ["setbaz", "getbaz", "baz", "bazaddr"];

/// Step 4 in the measure → analyze → explain shape.
pub struct Step4;

impl Step for Step4 {
    const NUMBER: u8 = 4;
    const TITLE: &'static str = "Observe the operation of a shared library";
    type Evidence = Evidence;
    type Findings = Findings;
    type Pictures = picture::Step4Picture;

    fn analyze(evidence: &Evidence) -> anyhow::Result<Findings> {
        analyze::analyze(evidence)
    }

    fn explain(findings: &Findings, evidence: &Evidence) -> Vec<Block> {
        explain::explain(findings, evidence)
    }

    fn pictures(findings: &Findings, _: &Evidence) -> picture::Step4Picture {
        picture::Step4Picture::from_findings(findings)
    }
    fn glance(findings: &Findings) -> Vec<crate::Glance> {
        glance::glance(findings)
    }
}

#[cfg(test)]
mod tests;
