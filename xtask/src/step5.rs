//! Step 5 (not built yet).

use crate::model::{Ctx, StepReport};

pub fn run(_ctx: &Ctx) -> anyhow::Result<StepReport> {
    anyhow::bail!("step 5 is not built yet")
}

pub fn bench(_ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("this benchmark is not built yet")
}
