//! Step 2's measurement (the course's table, `--program`, persist lookups, the cgroup) and its
//! pictures; `bench` is `cargo xtask bench persist`. The evidence, its analysis and its narrative
//! are `lab_analysis::step2`'s.

pub mod bench;
mod cgroup;
mod course;
pub mod lookups;

use lab_analysis::disktable::program::{Role, TABLE_NAME};
use lab_analysis::step2::picture::Pictures;
use lab_analysis::step2::{Evidence, Step2};

use lab_analysis::check::ReaderRun;

use crate::charts::{self, Picture};
use crate::check::reader;
use crate::check::sandbox::Sandbox;
use crate::check::tables::{self, Table};
use crate::disktable_steps::program;
use crate::disktable_steps::run;
use crate::disktable_steps::subdir;
use crate::disktable_steps::table;
use crate::disktable_steps::Rng;
use crate::model::{Ctx, Measure};

impl Measure for Step2 {
    fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
        measure(ctx)
    }

    fn draw(p: &Pictures) -> Vec<Picture> {
        charts::step2::pictures(p)
    }
}

fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
    crate::disktable_steps::check_options(&ctx.options)?;
    lab_trace::run::check()?;
    ctx.build_release(&["persist"])?;
    let scratch = ctx.scratch("step2")?;
    let traces = run::traces_dir(scratch.path())?;
    let course_dir = subdir(scratch.path(), "course")?;
    crate::out::progress("the course's table: disktable print under strace");
    let course = course::measure(ctx, &course_dir, &traces)?;
    let program = match &ctx.options.program {
        Some(path) => {
            let dir = subdir(scratch.path(), "program")?;
            table::copy(&course_dir.join(TABLE_NAME), &dir.join(TABLE_NAME))?;
            Some(program::measure(
                Role::Reader,
                path,
                &ctx.options.args,
                &dir,
                &traces,
            )?)
        }
        None => None,
    };
    let program_runs = match &ctx.options.program {
        Some(path) => program_runs(ctx, path, &course_dir.join(TABLE_NAME), scratch.path())?,
        None => Vec::new(),
    };
    let (entries, lookups) = if ctx.quick {
        (100_000, 10)
    } else {
        (300_000, 20)
    };
    let persist_dir = subdir(scratch.path(), "persist")?;
    let load = lookups::build_table(ctx, &persist_dir, entries)?;
    crate::out::progress("persist get under strace");
    let lookups = lookups::measure(ctx, &persist_dir, &traces, load, lookups)?;
    let cgroup = cgroup::measure(
        ctx,
        &persist_dir,
        &persist_dir.join(lab_analysis::step2::lookups::TABLE),
        lookups.load.stats.entries,
    )?;
    Ok(Evidence {
        page_size: crate::sys::page_size(),
        course,
        program,
        program_runs,
        lookups,
        cgroup,
    })
}

/// `--program`'s reader run as the TA's check runs it, on the step's table and on a table of
/// another count and size (a hard-coded count or size shows there), then on the step's table
/// without strace.
fn program_runs(
    ctx: &Ctx,
    path: &std::path::Path,
    table: &std::path::Path,
    scratch: &std::path::Path,
) -> anyhow::Result<Vec<ReaderRun>> {
    let sandbox = Sandbox::new(&subdir(scratch, "program-runs")?)?;
    let program = program::resolve(path)?;
    let tables = [
        Table::read(table, "the step's table")?,
        tables::random_table(&mut Rng::seeded_from_clock()),
    ];
    let mut runs = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        crate::out::progress(&format!(
            "running {} on {} (count {})",
            path.display(),
            t.label,
            t.count
        ));
        runs.push(reader::run_on(&sandbox, &program, &ctx.options.args, t, i)?);
    }
    // Once more without strace, watched by inotify alone, as the check does.
    if runs
        .iter()
        .all(|r| r.ending == lab_analysis::check::Ending::Exited { code: 0 })
    {
        let i = runs.len();
        runs.push(reader::run_untraced(
            &sandbox,
            &program,
            &ctx.options.args,
            &tables[0],
            i,
        )?);
    }
    Ok(runs)
}

#[cfg(test)]
pub(crate) mod tests;
