//! `--program PATH [-- ARGS]`: running someone else's reader (step 2) or writer (step 3) under
//! strace in a scratch directory holding a copy of the table as `table.bin`. Judging the run is
//! `lab_analysis::disktable::program`'s.

use lab_analysis::disktable::program::{Evidence, Role, TABLE_NAME};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::disktable_steps::run;
use crate::disktable_steps::run::Spec;
use crate::disktable_steps::table;

/// A program still running after this long is killed.
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `program args` in `dir` (which must hold the table as `table.bin`) under strace.
pub fn measure(
    role: Role,
    program: &Path,
    args: &[String],
    dir: &Path,
    traces: &Path,
) -> anyhow::Result<Evidence> {
    let resolved = resolve(program)?;
    let table_path = dir.join(TABLE_NAME);
    let before = crate::disktable_steps::table::read_state(&table_path)?;
    let values_before = match role {
        Role::Reader => table::read_values(&table_path)?,
        Role::Writer => Vec::new(),
    };
    crate::out::progress(&format!(
        "running {} {} in {} under strace",
        resolved.display(),
        args.join(" "),
        dir.display()
    ));
    let (run, stdout) = run::run(
        &Spec {
            program: &resolved,
            args: args.to_vec(),
            cwd: dir,
            stdin: None,
            deadline: DEADLINE,
            keep_library_path: true,
        },
        traces,
    )?;
    let after = crate::disktable_steps::table::read_state(&table_path)?;
    Ok(Evidence {
        role,
        path: program.display().to_string(),
        page_size: crate::sys::page_size(),
        before,
        values_before,
        run,
        stdout,
        after,
    })
}

/// The program's absolute path (it runs in another directory); a missing file is an error.
pub fn resolve(program: &Path) -> anyhow::Result<PathBuf> {
    if program.components().count() == 1 && !program.exists() {
        // A bare name: found on PATH, as `strace NAME` finds it.
        return Ok(program.to_path_buf());
    }
    std::fs::canonicalize(program).map_err(|e| {
        anyhow::anyhow!(
            "--program {}: {}",
            program.display(),
            if e.kind() == std::io::ErrorKind::NotFound {
                "no such file".to_string()
            } else {
                e.to_string()
            }
        )
    })
}
