//! The course's table printed by `disktable print` under strace, with mincore (measure); the
//! analysis is `lab_analysis::step2::course`'s.

use lab_analysis::step2::course::Evidence;
use std::path::Path;

use crate::disktable_steps::run;
use crate::disktable_steps::run::Spec;
use crate::disktable_steps::table;
use crate::model::Ctx;
use lab_analysis::disktable::program::TABLE_NAME;

/// Makes `dir/table.bin` (a copy of `--table FILE`, or course-shaped) and prints it under strace.
pub fn measure(ctx: &Ctx, dir: &Path, traces: &Path) -> anyhow::Result<Evidence> {
    let bin = ctx.bin("disktable");
    let source = table::prepare(&bin, ctx.options.table.as_deref(), &dir.join(TABLE_NAME))?;
    let state = crate::disktable_steps::table::read_state(&dir.join(TABLE_NAME))?;
    let (print, stdout) = run::run(
        &Spec::new(
            &bin,
            &[
                "--json", "print", "--evict", "--advice", "random", TABLE_NAME,
            ],
            dir,
        ),
        traces,
    )?;
    let report = if print.ended.success() {
        Some(serde_json::from_str(&stdout).map_err(|e| {
            anyhow::anyhow!("disktable print --json printed a document xtask cannot read: {e}")
        })?)
    } else {
        None
    };
    Ok(Evidence {
        source,
        state,
        print,
        report,
    })
}
