//! Step 5's measurement: the machine, the calibration and the sweep of races of `race` (or
//! `--racer PATH`), each instance timed and observed ([`measure`], [`launch`]), the race loops'
//! listings ([`objdump`]), and the step's pictures; `bench` is `cargo xtask bench race`. The
//! evidence, its analysis and its narrative are `lab_analysis::step5`'s.

mod bench;
pub(crate) mod launch;
mod measure;
pub(crate) mod objdump;

use lab_analysis::step5::picture::Data;
use lab_analysis::step5::{Evidence, Step5};

use crate::charts::{self, Picture};
use crate::model::{Ctx, Measure};

pub use bench::bench;

impl Measure for Step5 {
    fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
        measure::measure(ctx)
    }

    /// Lost updates and time per increment by participants and mode, from the findings.
    fn draw(p: &Data) -> Vec<Picture> {
        charts::step5::pictures(p)
    }
}

#[cfg(test)]
mod tests;
