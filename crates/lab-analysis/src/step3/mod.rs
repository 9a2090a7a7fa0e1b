//! Step 3: write to a persistent data structure with mmap.
//!
//! First the course's own step on a copy of `table.bin` (shaped like the course's unless
//! `--table FILE` names one): `disktable append` adds 300 values per run through a `MAP_SHARED`
//! mapping and grows the file (ftruncate, then mremap with `MREMAP_MAYMOVE`) only when its
//! capacity runs out ([`appends`]); the naive writer that crashes after a few runs, run in a
//! child under strace, with the signal and the fault address located against the mapping's and
//! the file's end ([`naive`]); and `--program PATH [-- ARGS]`, someone else's writer, judged
//! ([`crate::disktable::program`]). Then the lab's extension, `persist`: a put through a
//! `MAP_SHARED` mapping seen by a plain read, a load that grows the file, and the `MAP_PRIVATE`
//! contrast ([`writes`]).
//!
//! A production writer would also `msync(2)` before reporting success when the data must
//! survive a power cut, and would not let a reader hold a pointer across a remap.
use serde::{Deserialize, Serialize};

use crate::check::WriterSeries;
use crate::disktable::picture::LayoutPicture;
use crate::disktable::program::{self};
use crate::disktable::table::TableSource;
use crate::step2::course::Who;
use crate::{Block, Step};
pub mod appends;
pub mod glance;
pub mod naive;
pub mod picture;
pub mod writes;

/// The writer's findings, with the check's verdict on its runs when they were recorded: then
/// `values_ok` speaks of the values the first run added (and the earlier ones it left alone),
/// not of every value of the table.
fn judged(pe: &program::Evidence, runs: Option<&WriterSeries>) -> program::Findings {
    let mut f = program::analyze(pe);
    if let Some(runs) = runs {
        f.values_ok = runs.first_run_ok();
        f.appended_300 = f.count_grew_by == Some(program::APPEND) && f.values_ok;
        f.verdict = Some(runs.judge(&pe.path));
    }
    f
}

/// Step 3 in the measure → analyze → explain shape.
pub struct Step3;

/// Everything step 3 read from the machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    pub page_size: u64,
    pub source: TableSource,
    pub appends: Vec<appends::Run>,
    pub naive: Vec<naive::Run>,
    /// `--program`: someone else's writer.
    pub program: Option<program::Evidence>,
    /// `--program`: the writer run again and again from a copy of the table until the file
    /// had to grow (absent in recordings made before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_runs: Option<WriterSeries>,
    pub writes: writes::Evidence,
}

/// What the evidence establishes (`--json`'s `findings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub appends: appends::Findings,
    pub naive: naive::Findings,
    pub program: Option<program::Findings>,
    pub writes: writes::Findings,
}

impl Step for Step3 {
    const NUMBER: u8 = 3;
    const TITLE: &'static str = "Write to a persistent data structure with mmap";
    type Evidence = Evidence;
    type Findings = Findings;
    type Pictures = Option<LayoutPicture>;

    fn analyze(e: &Evidence) -> anyhow::Result<Findings> {
        Ok(Findings {
            appends: appends::analyze(&e.appends),
            naive: naive::analyze(&e.naive, e.page_size),
            program: e
                .program
                .as_ref()
                .map(|pe| judged(pe, e.program_runs.as_ref())),
            writes: writes::analyze(&e.writes),
        })
    }

    fn explain(f: &Findings, e: &Evidence) -> Vec<Block> {
        let mut blocks = vec![Block::text(format!("The table: {}.", e.source.describe()))];
        // With --program the course's questions are answered for that writer first; the lab's
        // own runs are then its reference, and say so.
        let program = f.program.as_ref().zip(e.program.as_ref());
        let who = match program {
            Some((pf, _)) => {
                blocks.extend(appends::program_answers(pf));
                Who::Reference
            }
            None => Who::Course,
        };
        blocks.extend(naive::explain(&f.naive, &e.naive, who));
        blocks.extend(appends::explain(&f.appends, &e.appends, who));
        match program {
            Some((pf, pe)) => blocks.extend(program::explain(pf, pe)),
            _ => blocks.push(Block::text(
                "Your own writer: cargo xtask run-step 3 --program ./writer [-- ARGS] runs it \
                 next to a copy of the table (table.bin) under strace and judges it.",
            )),
        }
        blocks.extend(writes::explain(&f.writes, &e.writes));
        blocks
    }

    fn pictures(f: &Findings, e: &Evidence) -> Option<LayoutPicture> {
        picture::naive_layout(f, e)
    }

    fn glance(f: &Findings) -> Vec<crate::Glance> {
        glance::glance(f)
    }
}

#[cfg(test)]
mod tests;
