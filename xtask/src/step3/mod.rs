//! Step 3's measurement (the course's appends, the naive writer, `--program`, persist's writes)
//! and its pictures. The evidence, its analysis and its narrative are `lab_analysis::step3`'s.

mod appends;
mod naive;
mod writes;

use lab_analysis::disktable::picture::LayoutPicture;
use lab_analysis::disktable::program::{Role, TABLE_NAME};
use lab_analysis::step3::{Evidence, Step3};

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
    let persist_dir = subdir(scratch.path(), "persist")?;
    let n = if ctx.quick { 20_000 } else { 50_000 };
    let writes = writes::measure(ctx, &persist_dir, &traces, n)?;
    Ok(Evidence {
        page_size: crate::sys::page_size(),
        source,
        appends,
        naive,
        program,
        writes,
    })
}

#[cfg(test)]
pub(crate) mod tests;
