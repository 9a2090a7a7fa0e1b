//! `step3.writer`: the writer run again and again, each run in the same directory as the last,
//! from three starting tables (a table whose last page is nearly full, a writer.c-like table,
//! the course's shape) until the file has grown at least twice. Each run is judged as it
//! ends ([`judge::judge_writer_run`]); the first that fails ends the check. Every run is watched
//! by inotify on the table; one run per start (the first that has room, after a traced run that
//! had room and made no ftruncate) runs without strace, judged by the table and inotify alone.

use std::path::Path;
use std::time::{Duration, Instant};

use super::judge::{self, Check, WriterRun, WriterStart};
use super::sandbox::Sandbox;
use super::tables::{self, Table};
use crate::disktable_steps::Rng;
use lab_analysis::disktable::program::TABLE_NAME;

/// A writer run still running after this long is killed.
const DEADLINE: Duration = Duration::from_secs(10);
/// The file must have grown this many times from each start.
pub const GROWTHS: usize = 2;
/// At most this many runs from one start (a writer that grows its file by large steps).
const MAX_RUNS: usize = 400;
/// At most this long from one start.
const MAX_TIME: Duration = Duration::from_secs(90);

pub fn check(sandbox: &Sandbox, program: &Path, shown: Option<String>) -> anyhow::Result<Check> {
    let mut rng = Rng::seeded_from_clock();
    let page = crate::sys::page_size();
    let starts = [
        tables::nearly_full(&mut rng, page),
        Table::writer_c(),
        Table::course(),
    ];
    let mut judged = Vec::new();
    for (i, table) in starts.iter().enumerate() {
        let start = from(sandbox, program, table, i, page)?;
        let failed = start.failed.is_some();
        judged.push(start);
        if failed {
            break;
        }
    }
    Ok(judge::judge_writer(shown, &judged, GROWTHS))
}

fn from(
    sandbox: &Sandbox,
    program: &Path,
    table: &Table,
    index: usize,
    page: u64,
) -> anyhow::Result<WriterStart> {
    let dir = sandbox.scratch().join(format!("writer-{index}"));
    std::fs::create_dir_all(&dir)?;
    table.write(&dir.join(TABLE_NAME))?;
    let start = runs(
        sandbox,
        program,
        &[TABLE_NAME.to_string()],
        &dir,
        &table.label,
        GROWTHS,
        page,
    );
    let _ = std::fs::remove_dir_all(&dir);
    start
}

/// Runs `program args` again and again in `dir` (which holds the table as `table.bin`, labelled
/// `label`), each run judged as it ends, until the file has grown `growths` times, a run fails,
/// or the bounds ([`MAX_RUNS`], [`MAX_TIME`]) are reached. `run-step 3 --program` runs its
/// writer through this too.
pub fn runs(
    sandbox: &Sandbox,
    program: &Path,
    args: &[String],
    dir: &Path,
    label: &str,
    growths: usize,
    page: u64,
) -> anyhow::Result<WriterStart> {
    let path = dir.join(TABLE_NAME);
    let mut before = tables::snapshot(&path)?;
    let mut start = WriterStart {
        label: label.to_string(),
        count_before: before.count.unwrap_or(0),
        file_bytes_before: before.file_bytes,
        runs: Vec::new(),
        failed: None,
    };
    let filter = super::table_filter();
    let began = Instant::now();
    // One run per start goes without strace, watched by inotify alone: the first whose
    // table has room for 300 more values after a traced run that had room too and made no
    // ftruncate (so an inotify write event can only be a write by system call).
    let mut untraced_done = false;
    let mut quiet_before = false;
    while start.growths() < growths && start.runs.len() < MAX_RUNS && began.elapsed() < MAX_TIME {
        let n = start.runs.len() + 1;
        let room = before
            .count
            .is_some_and(|c| c + judge::APPEND <= judge::capacity(before.file_bytes) as i64);
        let untraced = !untraced_done && quiet_before && room;
        untraced_done |= untraced;
        let watch = super::watch::Watch::start(&path)?;
        let run = super::run_confined(
            sandbox,
            program,
            args,
            dir,
            DEADLINE,
            (!untraced).then_some(super::Tracing {
                filter: &filter,
                env: &[],
            }),
        )?;
        let events = watch.finish()?;
        let after = tables::snapshot(&path)?;
        quiet_before = !untraced
            && room
            && judge::TableAccess::of(&run.trace).ftruncates == 0
            && events.modify == 0;
        let evidence = WriterRun {
            start: label.to_string(),
            run: n,
            before,
            after: after.clone(),
            trace: run.trace,
            ending: run.ending,
            outside_writes: run.outside_writes,
            page_size: page,
            events: Some(events),
            untraced,
        };
        match judge::judge_writer_run(&evidence) {
            Ok(ok) => start.runs.push(ok),
            Err(why) => {
                start.failed = Some((n, why));
                break;
            }
        }
        before = after;
    }
    Ok(start)
}
