//! Step 4's measurement: foo and bar (ours, or `--foo`/`--bar`) under strace, their maps and
//! smaps, the library's page-cache residency and a C client ([`measure`]), and the step's
//! picture. The evidence, its analysis and its narrative are `lab_analysis::step4`'s.

// foo, bar and baz are the assignment's names, not placeholders.
#![allow(clippy::disallowed_names)]

mod client;
mod measure;
mod running;

use lab_analysis::step4::picture::Step4Picture;
use lab_analysis::step4::{Evidence, Step4};

use crate::charts::{self, Picture};
use crate::model::{Ctx, Measure};

impl Measure for Step4 {
    fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
        measure::measure(ctx)
    }

    /// Where each symbol's mapping sits in each program, and the frames they map.
    fn draw(p: &Step4Picture) -> Vec<Picture> {
        vec![charts::step4::draw(p)]
    }
}

#[cfg(test)]
pub(crate) mod tests;
