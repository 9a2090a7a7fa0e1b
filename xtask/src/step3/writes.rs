//! `persist put --sync`, a growing load and a private mapping under strace (measure); the
//! analysis is `lab_analysis::step3::writes`'s.

use lab_analysis::step3::writes::{Evidence, Load, Write, GROW, SHARED};
use std::path::Path;

use anyhow::{bail, Context as _};

use crate::disktable_steps::parse_persist;
use crate::disktable_steps::run;
use crate::disktable_steps::run::Spec;
use crate::disktable_steps::sample_tsv;
use crate::disktable_steps::Rng;
use crate::model::Ctx;
use crate::step2::lookups::persist;

/// Runs the three writes in `dir`.
pub fn measure(ctx: &Ctx, dir: &Path, traces: &Path, n: u64) -> anyhow::Result<Evidence> {
    let tag = format!("{:08x}", Rng::seeded_from_clock().next() as u32);
    let shared = dir.join(SHARED);
    let s = shared.to_string_lossy().into_owned();
    persist(ctx, dir, &["create", &s], None)?;
    let tsv = dir.join("sample.tsv");
    std::fs::write(&tsv, sample_tsv(100)).context("cannot write the sample entries")?;
    persist(ctx, dir, &["load", &s], Some(&tsv))?;
    let (key, value) = (
        format!("lab-key-{tag}"),
        format!("written-through-mmap-{tag}"),
    );
    let put = traced_put(ctx, dir, traces, &shared, &["--sync"], &key, &value)?;

    let grow = dir.join(GROW);
    let g = grow.to_string_lossy().into_owned();
    persist(ctx, dir, &["create", "--slots", "8", &g], None)?;
    let created_bytes = std::fs::metadata(&grow)?.len();
    std::fs::write(&tsv, sample_tsv(n)).context("cannot write the sample entries")?;
    crate::out::progress(&format!("persist load of {n} keys under strace"));
    let bin = ctx.bin("persist");
    let (run, stdout) = run::run(
        &Spec {
            stdin: Some(&tsv),
            ..Spec::new(&bin, &["--json", "load", &g], dir)
        },
        traces,
    )?;
    if !run.ended.success() {
        bail!(
            "persist load failed under strace ({}): {}",
            run.ended,
            run.error_line()
        );
    }
    let doc = parse_persist("load", &stdout)?;
    let (verify, out, err) = run::run_untraced(&Spec::new(&bin, &["verify", &g], dir))?;
    let load = Load {
        n,
        created_bytes,
        run,
        doc,
        final_bytes: std::fs::metadata(&grow)?.len(),
        verify_output: if verify.success() { out } else { err }.trim().to_string(),
        verify,
    };

    let (pkey, pvalue) = (format!("private-key-{tag}"), format!("private-value-{tag}"));
    let private = traced_put(ctx, dir, traces, &shared, &["--private"], &pkey, &pvalue)?;
    let (lookup, out, err) = run::run_untraced(&Spec::new(&bin, &["get", &s, &pkey], dir))?;
    Ok(Evidence {
        key,
        value,
        put,
        load,
        private_key: pkey,
        private_value: pvalue,
        private,
        lookup_after_private_output: if lookup.success() { out } else { err }.trim().to_string(),
        lookup_after_private: lookup,
    })
}

fn traced_put(
    ctx: &Ctx,
    dir: &Path,
    traces: &Path,
    table: &Path,
    flags: &[&str],
    key: &str,
    value: &str,
) -> anyhow::Result<Write> {
    let in_file_before = file_contains(table, value.as_bytes())?;
    let t = table.to_string_lossy();
    let mut args = vec!["--json", "put"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[&t, key, value]);
    let bin = ctx.bin("persist");
    let (run, stdout) = run::run(&Spec::new(&bin, &args, dir), traces)?;
    if !run.ended.success() {
        bail!(
            "persist put {} failed under strace ({}): {}",
            flags.join(" "),
            run.ended,
            run.error_line()
        );
    }
    Ok(Write {
        doc: parse_persist("put", &stdout)?,
        run,
        in_file_before,
        in_file_after: file_contains(table, value.as_bytes())?,
    })
}

/// Whether `needle` occurs in the file, read with plain `read(2)` (std::fs::read).
fn file_contains(path: &Path, needle: &[u8]) -> anyhow::Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes.windows(needle.len()).any(|w| w == needle))
}
