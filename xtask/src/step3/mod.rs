//! Step 3's measurement (the course's appends, the naive writer, `--program`, persist's writes)
//! and its pictures. The evidence, its analysis and its narrative are `lab_analysis::step3`'s.

mod appends;
mod naive;
mod writes;

use lab_analysis::check::WriterSeries;
use lab_analysis::disktable::picture::LayoutPicture;
use lab_analysis::disktable::program::{Role, TABLE_NAME};
use lab_analysis::step3::{Evidence, Step3};

use crate::check::sandbox::Sandbox;
use crate::check::writer;

use crate::charts::{self, Picture};
use crate::disktable_steps::program;
use crate::disktable_steps::run;
use crate::disktable_steps::subdir;
use crate::disktable_steps::table;
use crate::model::{Ctx, Measure};

impl Measure for Step3 {
    fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
        measure(ctx)
    }

    fn draw(p: &Option<LayoutPicture>) -> Vec<Picture> {
        charts::step3::pictures(p)
    }
}

fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
    crate::disktable_steps::check_options(&ctx.options)?;
    lab_trace::run::check()?;
    ctx.build_release(&["persist"])?;
    let scratch = ctx.scratch("step3")?;
    let traces = run::traces_dir(scratch.path())?;
    let bin = ctx.bin("disktable");
    let base_dir = subdir(scratch.path(), "base")?;
    let base = base_dir.join(TABLE_NAME);
    let source = table::prepare(&bin, ctx.options.table.as_deref(), &base)?;
    let naive = naive::measure(&bin, &base, scratch.path(), &traces)?;
    let appends_dir = subdir(scratch.path(), "appends")?;
    table::copy(&base, &appends_dir.join(TABLE_NAME))?;
    crate::out::progress("disktable append under strace");
    let appends = appends::measure(&bin, &appends_dir, &traces)?;
    let program = match &ctx.options.program {
        Some(path) => {
            let dir = subdir(scratch.path(), "program")?;
            table::copy(&base, &dir.join(TABLE_NAME))?;
            Some(program::measure(
                Role::Writer,
                path,
                &ctx.options.args,
                &dir,
                &traces,
            )?)
        }
        None => None,
    };
    let program_runs = match &ctx.options.program {
        Some(path) => Some(program_runs(ctx, path, &base, scratch.path())?),
        None => None,
    };
    let persist_dir = subdir(scratch.path(), "persist")?;
    let n = if ctx.quick { 20_000 } else { 50_000 };
    let writes = writes::measure(ctx, &persist_dir, &traces, n)?;
    Ok(Evidence {
        page_size: crate::sys::page_size(),
        source,
        appends,
        naive,
        program,
        program_runs,
        writes,
    })
}

/// `--program`'s writer run again and again from a copy of the table, each run judged as the
/// TA's check judges it, until the file has had to grow (once with `--quick`, twice otherwise).
fn program_runs(
    ctx: &Ctx,
    path: &std::path::Path,
    base: &std::path::Path,
    scratch: &std::path::Path,
) -> anyhow::Result<WriterSeries> {
    let growths = if ctx.quick { 1 } else { 2 };
    let sandbox_dir = subdir(scratch, "program-runs")?;
    let dir = subdir(&sandbox_dir, "table")?;
    table::copy(base, &dir.join(TABLE_NAME))?;
    let sandbox = Sandbox::new(&sandbox_dir)?;
    crate::out::progress(&format!(
        "running {} again and again until the file has grown {growths} time(s)",
        path.display()
    ));
    let start = writer::runs(
        &sandbox,
        &program::resolve(path)?,
        &ctx.options.args,
        &dir,
        "the step's table",
        growths,
        crate::sys::page_size(),
    )?;
    Ok(WriterSeries { growths, start })
}

#[cfg(test)]
pub(crate) mod tests;
