//! Step 6's measurement: benchmark cells of `channel` under strace, `channel bench --json` and
//! the checked stream ([`measure`], [`stream`]), and the step's pictures. The evidence, its
//! analysis and its narrative are `lab_analysis::step6`'s.

mod measure;
pub mod stream;

use lab_analysis::step6::picture::Data;
use lab_analysis::step6::{Evidence, Step6};

use crate::charts::{self, Picture};
use crate::model::{Ctx, Measure};

impl Measure for Step6 {
    fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
        measure::measure(ctx)
    }

    /// Latency and throughput against message size, from the benchmark's report.
    fn draw(p: &Data) -> Vec<Picture> {
        charts::step6::pictures(p)
    }
}

#[cfg(test)]
mod tests;
