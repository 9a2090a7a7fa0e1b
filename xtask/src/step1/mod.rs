//! Step 1's measurement: `malloc-probe` under strace, its free-bit, threshold, page-edge and
//! thread-arena runs, and with `--allocator` the allocator's ladders ([`measure`]), and the
//! step's pictures. The evidence, its analysis and its narrative are
//! `lab_analysis::step1`'s.

mod measure;

use lab_analysis::step1::picture::Pictures;
use lab_analysis::step1::{Evidence, Step1};

use crate::charts::{self, Picture};
use crate::model::{Ctx, Measure};

impl Measure for Step1 {
    fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
        measure::measure(ctx)
    }

    fn draw(p: &Pictures) -> Vec<Picture> {
        charts::step1::pictures(p)
    }
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod beyond_tests;
