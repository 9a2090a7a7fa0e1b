//! Step 3 (not built yet).

use crate::model::{Ctx, StepReport};

pub fn run(_ctx: &Ctx) -> anyhow::Result<StepReport> {
    anyhow::bail!("step 3 is not built yet")
}
