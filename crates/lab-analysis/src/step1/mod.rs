//! Step 1: where glibc malloc switches from the heap to mmap, read from boundary tags and strace.
//!
//! - xtask's `step1::measure` runs `malloc-probe --mark sweep` under
//!   `strace -e trace=brk,mmap,munmap,write` (the probe writes `write(-1, "malloc N")` before each
//!   malloc, so [`lab_trace::markers`] pairs every brk/mmap with its malloc), then `free-bit`
//!   twice — as the environment has it and under the course's
//!   `GLIBC_TUNABLES=glibc.malloc.tcache_count=0` — then `threshold` (each probe in a fresh
//!   process), `threshold` again with a tuned `MALLOC_MMAP_THRESHOLD_`, and two requests at a page
//!   edge, traced, and `thread-arena` (a second thread's chunk and its heap); with
//!   `--allocator PATH`, the [`allocator`] ladders under strace. Everything goes into
//!   [`Evidence`]: the probe's JSON documents, the traces, and the environment each run had. A malloc that is not glibc's is refused by the probe; that
//!   refusal is evidence too.
//! - [`analyze`](analyze::analyze) decides, from the evidence alone: the in-use bit, the mmap
//!   bit, the threshold (as a request and a chunk size), each request's system call and mapped
//!   length and how the length follows from the request, and what `tcache_count=0` changed.
//! - [`explain`](explain::explain) formats those findings: the assignment's four questions and
//!   the course's hints, with the evidence tables; [`beyond`] adds the thread arena and another
//!   allocator's switch.
//!
//! Run it with `cargo xtask run-step 1` (`--quick` for a shorter sweep). A production program
//! would not read malloc's metadata: it would tune with `mallopt(3)` and measure with
//! `malloc_info(3)` or heaptrack.

pub mod allocator;
pub mod analyze;
pub mod beyond;
pub mod explain;
pub mod glance;
pub mod picture;
pub mod unmeasured;
pub mod wire;

use lab_trace::Trace;
use serde::{Deserialize, Serialize};

use crate::{Block, Step};

pub use analyze::Findings;

/// Step 1 in the measure → analyze → explain shape.
pub struct Step1;

impl Step for Step1 {
    const NUMBER: u8 = 1;
    const TITLE: &'static str = "Find the cut-off for a large memory allocation";
    type Evidence = Evidence;
    type Findings = Findings;
    type Pictures = picture::Pictures;

    fn analyze(evidence: &Evidence) -> anyhow::Result<Findings> {
        analyze::analyze(evidence)
    }

    fn explain(findings: &Findings, evidence: &Evidence) -> Vec<Block> {
        explain::explain(findings, evidence)
    }

    fn pictures(findings: &Findings, _: &Evidence) -> picture::Pictures {
        picture::pictures(findings)
    }

    fn glance(findings: &Findings) -> Vec<crate::Glance> {
        glance::glance(findings)
    }
}

/// One environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

impl EnvVar {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl std::fmt::Display for EnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// Everything step 1 read from the machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    /// The malloc settings every probe run inherited (`GLIBC_TUNABLES`, `MALLOC_*`,
    /// `LD_PRELOAD`); empty when none was set.
    pub environment: Vec<EnvVar>,
    pub outcome: Outcome,
    /// `malloc-probe thread-arena`: a chunk from a second thread and its arena's heap. Evidence
    /// recorded before it existed has none: it loads as "not measured".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_arena: Option<Run<wire::ThreadArenaReport>>,
    /// `--allocator PATH`: the allocator's traced ladders; absent when not asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocator: Option<allocator::AllocatorEvidence>,
    /// The soft `RLIMIT_AS` (`ulimit -v`, in bytes) every probe run inherited; absent when
    /// unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_space_limit: Option<u64>,
    /// The probe runs that failed (after the sweep), each with its one-line error: what they
    /// would have measured is "not measured", with that reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedRun>,
}

/// What the probe did: measured, or refused a malloc that is not glibc's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Measured(Box<Measured>),
    Refused(Refusal),
}

/// The probe's runs. Only the sweep is certain: each other run is absent when it failed (its
/// error is in [`Evidence::failed`]) or could not be placed (no threshold to tune, no mmapped
/// request to put a page edge beside).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    /// `--mark sweep` under strace: growing requests, then a fine sweep around the switch.
    pub sweep: Traced<wire::SweepReport>,
    /// `free-bit` in the inherited environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bit: Option<Run<wire::FreeBitReport>>,
    /// `free-bit` with `glibc.malloc.tcache_count=0` added to `GLIBC_TUNABLES`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bit_no_tcache: Option<Run<wire::FreeBitReport>>,
    /// `threshold`: the bisection in fresh processes, the top chunk and the dynamic threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Run<wire::ThresholdReport>>,
    /// `threshold` with `MALLOC_MMAP_THRESHOLD_` set to half the measured threshold chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuned_threshold: Option<Run<wire::ThresholdReport>>,
    /// `--mark alloc` of two requests 8 bytes apart at a page edge, under strace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_edge: Option<Traced<wire::AllocReport>>,
}

/// One probe run: its arguments, the variables set for it on top of [`Evidence::environment`],
/// and its JSON document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run<D> {
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub doc: D,
}

/// A probe run under `strace -f -e trace=brk,mmap,munmap,write`, with its trace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Traced<D> {
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub doc: D,
    pub trace: Trace,
}

/// The probe refused to read tags: malloc in its process is not glibc's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    pub args: Vec<String>,
    /// The probe's exit status.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub status: Option<i32>,
    /// Its one-line error, as printed.
    pub error: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malloc-probe refused: {}", self.error)
    }
}

impl std::error::Error for Refusal {}

/// A probe run that ended without its document: its arguments, the variables set for it on top
/// of [`Evidence::environment`], its exit status and its one-line error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRun {
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    /// The exit status (`null`: a signal ended it).
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub status: Option<i32>,
    pub error: String,
}

impl FailedRun {
    /// The probe's subcommand (`threshold`, `free-bit`, ...): its first argument that is not a
    /// flag or a flag's value.
    pub fn subcommand(&self) -> &str {
        let mut skip = false;
        for a in &self.args {
            if skip {
                skip = false;
            } else if a == "--max" || a == "--allocator" || a == "--sizes" {
                skip = true;
            } else if !a.starts_with('-') {
                return a;
            }
        }
        ""
    }
}

impl std::fmt::Display for FailedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.status.map_or("a signal ended it".to_string(), |c| {
            format!("exit status {c}")
        });
        write!(
            f,
            "malloc-probe {} failed ({status}): {}",
            self.args.join(" "),
            self.error
        )
    }
}

impl std::error::Error for FailedRun {}

#[cfg(test)]
mod tests;
