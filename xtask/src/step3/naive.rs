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
    let cross = crossing(start.file_bytes, count, crate::sys::page_size());
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

/// How many values to append, from `count` in a file of `file_bytes`, for the stores to cross
/// out of the file's last page: past the file's end they still land up to the end of that page
/// (no signal), so go 300 values past what that page still holds — not 300 past the file's
/// capacity, which on a file ending early in its page never leaves it.
fn crossing(file_bytes: u64, count: i64, page: u64) -> u64 {
    let page_end = file_bytes.div_ceil(page) * page;
    persist::disktable::capacity(page_end).saturating_sub(count.max(0) as u64) + 300
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

#[cfg(test)]
mod tests {
    use super::crossing;

    #[test]
    fn the_crash_demonstration_crosses_out_of_the_files_last_page() {
        // writer.c's output: count 1083 in exactly 4,340 bytes (capacity = count). 300 values
        // from its end stay in its last page (up to 5,540 < 8,192): no signal. Crossing:
        // 2,046 ints fit below 8,192, so 963 + 300.
        assert_eq!(crossing(4340, 1083, 4096), 1263);
        let last = 8 + 4 * (1083 + crossing(4340, 1083, 4096));
        assert!(last > 8192 + 4 * 299, "{last}");
        // The course's shape: 114,340 bytes, count 1083: 87 ints of room past the file's end.
        assert_eq!(crossing(114_340, 1083, 4096), 28_670 - 1083 + 300);
        // A page-aligned file has no room past its end: capacity - count + 300, as before.
        assert_eq!(crossing(16_384, 1000, 4096), 4094 - 1000 + 300);
    }
}
