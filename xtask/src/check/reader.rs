//! `step2.reader`: the reader run once on each of [`tables::reader_tables`], each in a fresh
//! directory holding the table as `table.bin` (also given as its argument), under `strace -y`
//! and an inotify watch on the table; then once more on the first table with values, without
//! strace, watched by inotify alone (a reader that maps only when it sees a tracer reads the
//! file by system call then, and inotify sees it).

use std::path::Path;
use std::time::Duration;

use super::judge::{self, Check, ReaderRun, TableAccess};
use super::sandbox::Sandbox;
use super::tables::{self, Table};
use crate::disktable_steps::Rng;
use lab_analysis::disktable::program::TABLE_NAME;

/// A reader still running after this long is killed.
const DEADLINE: Duration = Duration::from_secs(10);

pub fn check(sandbox: &Sandbox, program: &Path, shown: Option<String>) -> anyhow::Result<Check> {
    let mut rng = Rng::seeded_from_clock();
    let mut runs = Vec::new();
    for (i, table) in tables::reader_tables(&mut rng).into_iter().enumerate() {
        let r = run_on(sandbox, program, &[TABLE_NAME.to_string()], &table, i)?;
        // A reader that hangs or floods on one table is not run on the others.
        let stop = matches!(
            r.ending,
            judge::Ending::TimedOut { .. }
                | judge::Ending::Flooded { .. }
                | judge::Ending::TraceFlooded { .. }
        );
        runs.push(r);
        if stop {
            break;
        }
    }
    let traced_ok = runs
        .iter()
        .all(|r| r.ending == judge::Ending::Exited { code: 0 });
    let tables = tables::reader_tables(&mut rng);
    if let (true, Some(table)) = (traced_ok, tables.iter().find(|t| t.count > 0)) {
        let args = [TABLE_NAME.to_string()];
        runs.push(run_untraced(sandbox, program, &args, table, runs.len())?);
    }
    Ok(judge::judge_reader(shown, &runs))
}

/// Runs `program args` once under strace in a fresh directory holding `table` as `table.bin`
/// (`reader-INDEX` in the sandbox's scratch, removed after). `run-step 2 --program` runs its
/// reader through this too.
pub fn run_on(
    sandbox: &Sandbox,
    program: &Path,
    args: &[String],
    table: &Table,
    index: usize,
) -> anyhow::Result<ReaderRun> {
    run_with(sandbox, program, args, table, index, true)
}

/// [`run_on`] without strace: only the inotify watch and the output judge it.
pub fn run_untraced(
    sandbox: &Sandbox,
    program: &Path,
    args: &[String],
    table: &Table,
    index: usize,
) -> anyhow::Result<ReaderRun> {
    run_with(sandbox, program, args, table, index, false)
}

/// [`run_on`], or without strace (`traced` false: inotify and the output judge it alone).
fn run_with(
    sandbox: &Sandbox,
    program: &Path,
    args: &[String],
    table: &Table,
    index: usize,
    traced: bool,
) -> anyhow::Result<ReaderRun> {
    let dir = sandbox.scratch().join(format!("reader-{index}"));
    std::fs::create_dir_all(&dir)?;
    table.write(&dir.join(TABLE_NAME))?;
    let filter = super::table_filter();
    let watch = super::watch::Watch::start(&dir.join(TABLE_NAME))?;
    let run = super::run_confined(
        sandbox,
        program,
        args,
        &dir,
        DEADLINE,
        traced.then_some(super::Tracing {
            filter: &filter,
            env: &[],
        }),
    )?;
    let events = watch.finish()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ReaderRun {
        label: table.label.clone(),
        count: table.count,
        file_bytes: table.file_bytes,
        values: table.counted().to_vec(),
        stdout: run.stdout,
        access: TableAccess::of(&run.trace),
        ending: run.ending,
        outside_writes: run.outside_writes,
        events: Some(events),
        untraced: !traced,
    })
}
