//! `disktable append` runs under strace (measure); the analysis is
//! `lab_analysis::step3::appends`'s.

use lab_analysis::step3::appends::{Purpose, Run};
use std::path::Path;

use crate::disktable_steps::run;
use crate::disktable_steps::run::Spec;
use lab_analysis::disktable::program::TABLE_NAME;

/// At most this many values in the run that fills the file (a `--table` with a huge capacity
/// is not filled).
const MAX_FILL: u64 = 10_000_000;

/// Appends to `dir/table.bin` under strace, as the module says; stops at the first failure.
pub fn measure(bin: &Path, dir: &Path, traces: &Path) -> anyhow::Result<Vec<Run>> {
    let table = dir.join(TABLE_NAME);
    let mut runs: Vec<Run> = Vec::new();
    let mut plan: std::collections::VecDeque<(Purpose, u64)> =
        std::iter::repeat((Purpose::Append300, 300))
            .take(3)
            .collect();
    let mut planned_fill = false;
    while let Some((purpose, n)) = plan.pop_front() {
        let before = crate::disktable_steps::table::read_state(&table)?;
        let args = ["--json", "append", TABLE_NAME, &n.to_string()];
        let (run, stdout) = run::run(&Spec::new(bin, &args, dir), traces)?;
        let report = if run.ended.success() {
            Some(serde_json::from_str(&stdout).map_err(|e| {
                anyhow::anyhow!("disktable append --json printed a document xtask cannot read: {e}")
            })?)
        } else {
            None
        };
        let after = crate::disktable_steps::table::read_state(&table)?;
        let failed = report.is_none();
        runs.push(Run {
            purpose,
            n,
            before,
            run,
            report,
            after: after.clone(),
        });
        if failed {
            break;
        }
        if plan.is_empty() && !planned_fill {
            planned_fill = true;
            let count = after.count.unwrap_or(0).max(0) as u64;
            let fill = after.capacity().saturating_sub(count).saturating_sub(100);
            if fill > 0 && fill <= MAX_FILL {
                plan.extend([
                    (Purpose::Fill, fill),
                    (Purpose::Append300, 300),
                    (Purpose::Append300, 300),
                ]);
            }
        }
    }
    Ok(runs)
}
