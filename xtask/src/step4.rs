//! Step 4 (not built yet).

use crate::model::{Ctx, StepReport};

pub fn run(_ctx: &Ctx) -> anyhow::Result<StepReport> {
    anyhow::bail!("step 4 is not built yet")
}
