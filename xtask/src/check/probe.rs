//! `step1.probe`: the probe run once under strace (mmap, munmap, brk), with the course's
//! `GLIBC_TUNABLES=glibc.malloc.tcache_count=0`, in a directory of its own.

use std::path::Path;
use std::time::Duration;

use super::judge::{self, Check, ProbeRun};
use super::sandbox::Sandbox;

/// A probe still running after this long is killed.
const DEADLINE: Duration = Duration::from_secs(10);

pub fn check(sandbox: &Sandbox, program: &Path, shown: Option<String>) -> anyhow::Result<Check> {
    let dir = sandbox.scratch().join("probe");
    std::fs::create_dir_all(&dir)?;
    let filter = format!("mmap,munmap,brk,open,openat,{}", judge::PATH_WRITE_FILTER);
    let run = super::run_traced(
        sandbox,
        program,
        &[],
        &dir,
        DEADLINE,
        super::Tracing {
            filter: &filter,
            env: &[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")],
        },
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(judge::judge_probe(
        shown,
        &ProbeRun {
            stdout: run.stdout,
            trace: run.trace,
            ending: run.ending,
            outside_writes: run.outside_writes,
        },
    ))
}
