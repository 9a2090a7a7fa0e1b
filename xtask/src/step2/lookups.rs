//! `persist` lookups through one read-only mapping after the file was evicted, under strace
//! (measure); the analysis is `lab_analysis::step2::lookups`'s.

use lab_analysis::step2::lookups::{Evidence, TABLE};
use std::path::Path;

use anyhow::{bail, Context as _};

use crate::disktable_steps::parse_persist;
use crate::disktable_steps::run;
use crate::disktable_steps::run::Spec;
use crate::disktable_steps::sample_kv;
use crate::disktable_steps::sample_tsv;
use crate::disktable_steps::Rng;
use crate::model::Ctx;

use persist::doc::{Got, Loaded, ResidencyDoc};

/// Builds the sample table of `entries` entries at `dir/sample.tbl`.
pub fn build_table(ctx: &Ctx, dir: &Path, entries: u64) -> anyhow::Result<Loaded> {
    let table = dir.join(TABLE);
    let t = table.to_string_lossy().into_owned();
    persist(ctx, dir, &["create", &t], None)?;
    let tsv = dir.join("sample.tsv");
    std::fs::write(&tsv, sample_tsv(entries))
        .with_context(|| format!("cannot write {}", tsv.display()))?;
    crate::out::progress(&format!("persist load: {entries} entries"));
    let out = persist(ctx, dir, &["--json", "load", &t], Some(&tsv))?;
    let _ = std::fs::remove_file(&tsv);
    parse_persist("load", &out)
}

/// Evicts the table, looks `lookups` random keys up under strace, reads the residency.
pub fn measure(
    ctx: &Ctx,
    dir: &Path,
    traces: &Path,
    load: Loaded,
    lookups: u64,
) -> anyhow::Result<Evidence> {
    let t = dir.join(TABLE).to_string_lossy().into_owned();
    let evict: ResidencyDoc = parse_persist(
        "residency",
        &persist(ctx, dir, &["--json", "residency", "--evict", &t], None)?,
    )?;
    let mut rng = Rng::seeded_from_clock();
    let picked: Vec<u64> = (0..lookups)
        .map(|_| rng.below(load.stats.entries))
        .collect();
    let mut args: Vec<String> = vec!["--json".into(), "get".into(), t.clone()];
    args.extend(picked.iter().map(|&i| sample_kv(i).0));
    let bin = ctx.bin("persist");
    let (get, stdout) = run::run(
        &Spec {
            args,
            ..Spec::new(&bin, &[], dir)
        },
        traces,
    )?;
    if !get.ended.success() {
        bail!(
            "persist get failed under strace ({}): {}",
            get.ended,
            get.error_line()
        );
    }
    let got: Got = parse_persist("get", &stdout)?;
    let after: ResidencyDoc = parse_persist(
        "residency",
        &persist(ctx, dir, &["--json", "residency", &t], None)?,
    )?;
    Ok(Evidence {
        load,
        evict: evict.residency,
        picked,
        get,
        got,
        after: after.residency,
    })
}

/// Runs `persist ARGS` in `dir` (stdin from a file), returns its stdout; fails with its stderr.
pub fn persist(
    ctx: &Ctx,
    dir: &Path,
    args: &[&str],
    stdin: Option<&Path>,
) -> anyhow::Result<String> {
    let bin = ctx.bin("persist");
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(args).current_dir(dir);
    cmd.stdin(match stdin {
        Some(p) => std::fs::File::open(p)
            .with_context(|| format!("cannot open {}", p.display()))?
            .into(),
        None => std::process::Stdio::null(),
    });
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "persist {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
