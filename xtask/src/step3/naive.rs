//! The naive writer's runs under strace (measure); the analysis is
//! `lab_analysis::step3::naive`'s.

use lab_analysis::step3::naive::Run;
use std::path::Path;
use std::time::Duration;

use persist::disktable::{NaiveMode, NaivePlan};

use crate::disktable_steps::run;
use crate::disktable_steps::run::Spec;
use crate::disktable_steps::subdir;
use crate::disktable_steps::table;
use lab_analysis::disktable::program::TABLE_NAME;

/// Runs the naive writer on copies of `base` in subdirectories of `scratch`.
pub fn measure(bin: &Path, base: &Path, scratch: &Path, traces: &Path) -> anyhow::Result<Vec<Run>> {
    let start = crate::disktable_steps::table::read_state(base)?;
    let Some(count) = start.count.filter(|_| start.check().is_ok()) else {
        return Ok(Vec::new());
    };
    // Past the file's end, stores still land up to the end of its last page (no signal): to
    // cross into the next page, go 300 values past the values that page still holds.
    let page = crate::sys::page_size();
    let page_end = start.file_bytes.div_ceil(page) * page;
    let cross = (persist::disktable::capacity(page_end) - count as u64) + 300;
    let mut runs = Vec::new();
    for (i, (mode, n)) in [
        (NaiveMode::File, 300),
        (NaiveMode::File, cross),
        (NaiveMode::Beyond, cross),
        (NaiveMode::Tail, cross),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = subdir(scratch, &format!("naive-{i}-{}", mode.name()))?;
        table::copy(base, &dir.join(TABLE_NAME))?;
        crate::out::progress(&format!("disktable append --naive={} {n}", mode.name()));
        runs.push(measure_one(bin, &dir, traces, mode, n)?);
    }
    Ok(runs)
}

fn measure_one(
    bin: &Path,
    dir: &Path,
    traces: &Path,
    mode: NaiveMode,
    n: u64,
) -> anyhow::Result<Run> {
    let table = dir.join(TABLE_NAME);
    let before = crate::disktable_steps::table::read_state(&table)?;
    let naive = format!("--naive={}", mode.name());
    let (run, stdout) = run::run(
        &Spec::new(
            bin,
            &["--json", "append", &naive, TABLE_NAME, &n.to_string()],
            dir,
        ),
        traces,
    )?;
    // The plan is printed (and flushed) before the first store, so a crashed run has it too.
    let plan = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<NaivePlan>()
        .next()
        .transpose()
        .map_err(|e| {
            anyhow::anyhow!("disktable append --naive --json printed a plan xtask cannot read: {e}")
        })?;
    let after = crate::disktable_steps::table::read_state(&table)?;
    let (print_after, _, stderr) = run::run_untraced(&Spec {
        deadline: Duration::from_secs(30),
        ..Spec::new(bin, &["print", TABLE_NAME], dir)
    })?;
    Ok(Run {
        mode,
        n,
        before,
        run,
        plan,
        after,
        print_after,
        print_after_error: stderr.lines().next().unwrap_or("").to_string(),
    })
}
