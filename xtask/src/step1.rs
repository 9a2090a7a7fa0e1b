//! Step 1 (not built yet).

use crate::model::{Ctx, StepReport};

pub fn run(_ctx: &Ctx) -> anyhow::Result<StepReport> {
    anyhow::bail!("step 1 is not built yet")
}
