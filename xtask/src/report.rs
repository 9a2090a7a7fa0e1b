//! `cargo xtask report` (not built yet).

pub fn run(_quick: bool, _check: bool) -> anyhow::Result<()> {
    anyhow::bail!("the report is not built yet")
}
