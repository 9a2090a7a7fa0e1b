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

/// Runs `program args` in `dir` (which must hold the table as `table.bin`) under `strace -y`.
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
    let (run, stdout) = run::run_with_fd_paths(
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

/// The program's absolute path (it runs in another directory); anything that is not an
/// executable file is an error naming `--program` ([`executable`]).
pub fn resolve(program: &Path) -> anyhow::Result<PathBuf> {
    executable(program).map_err(|why| anyhow::anyhow!("--program {why}"))
}

/// Someone else's program, as a flag names it (`run-step 2|3 --program`, `run-step 5 --racer`,
/// `check --reader` …): an executable regular file, returned as an absolute path with its links
/// resolved (it runs in another directory). `Err`: one line saying why it cannot be run, which
/// starts with the path as given (the caller puts the flag before it) — a missing file, a
/// symbolic link to nothing, a directory or other non-regular file, or a file this user may not
/// execute (no x permission, a `noexec` mount: `access(X_OK)`, which is also what stops root).
/// Checked before anything runs: run under strace, a file that cannot be executed would make
/// strace's own failure look like the program's.
pub fn executable(path: &Path) -> Result<PathBuf, String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(match lab_cli::file::dangling_target(path) {
                Some(target) => format!(
                    "{shown}: a symbolic link to {}, which does not exist",
                    target.display()
                ),
                None => format!("{shown}: no such file"),
            });
        }
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    if let Some(kind) = lab_cli::file::FileKind::of(meta.file_type()) {
        return Err(format!("{shown} is {kind}, not a program"));
    }
    use std::os::unix::fs::PermissionsExt as _;
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "{shown} is not executable (no execute permission; give a compiled program)"
        ));
    }
    if let Err(e) = crate::sys::may_execute(path) {
        return Err(format!("{shown} cannot be executed: {e}"));
    }
    std::fs::canonicalize(path).map_err(|e| format!("{shown}: {e}"))
}
