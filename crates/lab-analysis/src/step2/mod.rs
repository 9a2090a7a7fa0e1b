//! Step 2: read a persistent data structure from a file with mmap.
//!
//! First the course's own step: `table.bin` (`struct disktable { long count; int value[]; }`),
//! shaped like the course's file (count 1083, 114,340 bytes) unless `--table FILE` names one,
//! printed by `disktable print` through one mapping under strace, with mincore showing which
//! pages the print read in ([`course`]). `--program PATH [-- ARGS]` runs someone else's reader
//! next to a copy of the table and judges it from its trace and output
//! ([`crate::disktable::program`]). Then the lab's extension, `persist`, a hash table in a
//! file: random lookups through one read-only mapping after the file was evicted from the page
//! cache ([`lookups`]), and the same table used through its mapping inside a memory cgroup
//! smaller than it, while reading the whole file into memory there is killed ([`cgroup`]).
//!
//! measure runs it all and keeps the traces and documents ([`Evidence`]); analyze decides from
//! them alone ([`Findings`]); explain formats the findings. `cargo xtask bench persist` is
//! [`bench`]. A production reader would map once and keep the mapping (remapping only when the
//! file grew), check a magic number and version before trusting the count, and read with
//! `MADV_RANDOM` or `MADV_SEQUENTIAL` as its access pattern says.
use serde::{Deserialize, Serialize};

use crate::check::{judge_reader, ReaderRun};
use crate::disktable::program::{self};
use crate::{Block, Step};
pub mod cgroup;
pub mod course;
pub mod glance;
pub mod lookups;
pub mod picture;

/// Step 2 in the measure → analyze → explain shape.
pub struct Step2;

/// Everything step 2 read from the machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    pub page_size: u64,
    pub course: course::Evidence,
    /// `--program`: someone else's reader.
    pub program: Option<program::Evidence>,
    /// `--program`: the reader run again on the step's table and on a table of another count
    /// and size, as the TA's check runs it (absent in recordings made before it was kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub program_runs: Vec<ReaderRun>,
    pub lookups: lookups::Evidence,
    pub cgroup: cgroup::Evidence,
}

/// What the evidence establishes (`--json`'s `findings`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Findings {
    pub course: course::Findings,
    pub program: Option<program::Findings>,
    pub lookups: lookups::Findings,
    pub cgroup: cgroup::Findings,
}

impl Step for Step2 {
    const NUMBER: u8 = 2;
    const TITLE: &'static str = "Read a persistent data structure from a file with mmap";
    type Evidence = Evidence;
    type Findings = Findings;
    type Pictures = picture::Pictures;

    fn analyze(e: &Evidence) -> anyhow::Result<Findings> {
        Ok(Findings {
            course: course::analyze(&e.course, e.page_size),
            program: e.program.as_ref().map(|pe| {
                let mut f = program::analyze(pe);
                if !e.program_runs.is_empty() {
                    f.verdict = Some(judge_reader(Some(pe.path.clone()), &e.program_runs));
                }
                f
            }),
            lookups: lookups::analyze(&e.lookups),
            cgroup: cgroup::analyze(&e.cgroup),
        })
    }

    fn explain(f: &Findings, e: &Evidence) -> Vec<Block> {
        // With --program the course's questions are answered for that program first; the
        // course's block is then the lab's reference run, and says so.
        let mut blocks = Vec::new();
        let program = f.program.as_ref().zip(e.program.as_ref());
        if let Some((pf, pe)) = program {
            blocks.push(course::program_answer(pf, pe));
        }
        let who = match program {
            Some(_) => course::Who::Reference,
            None => course::Who::Course,
        };
        blocks.extend(course::explain(&f.course, &e.course, who));
        if let Some((pf, pe)) = program {
            blocks.extend(program::explain(pf, pe));
        }
        blocks.extend(lookups::explain(&f.lookups, &e.lookups));
        blocks.extend(cgroup::explain(&f.cgroup, &e.cgroup));
        if e.program.is_none() {
            blocks.push(Block::text(
                "Your own reader: cargo xtask run-step 2 --program ./reader [-- ARGS] runs it \
                 next to a copy of the table (table.bin) under strace and judges it.",
            ));
        }
        blocks
    }

    fn pictures(f: &Findings, e: &Evidence) -> picture::Pictures {
        picture::pictures(f, e)
    }

    fn glance(f: &Findings) -> Vec<crate::Glance> {
        glance::glance(f)
    }
}

#[cfg(test)]
mod tests;
