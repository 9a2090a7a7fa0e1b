//! `cargo xtask bench persist [--quick] [--json]`: builds `bench/persist-bench` (its own
//! workspace, so LMDB's C code never slows `cargo test --workspace`) in release mode and runs
//! it in a scratch directory. Without `--json` the benchmark prints its own table (lookups,
//! loads, puts against LMDB, pread and an in-memory HashMap, with the goals); with `--json` its
//! one JSON document is checked against the shape DESIGN.md gives (`{"keys", "machine",
//! "rows": [{"method", "op", "per_s"}]}`, a missing field is an error naming it) and printed
//! whole. `--quick` is passed through.

use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::model::Ctx;
use crate::out;

/// How to run the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// A short run (fewer keys and rounds).
    pub quick: bool,
    /// Print the benchmark's JSON document instead of its table.
    pub json: bool,
}

/// persist-bench's `--json` document (DESIGN.md, "persist as a store").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchDoc {
    pub keys: u64,
    /// The machine it ran on (kernel, CPU, cores, …), as the benchmark describes it.
    pub machine: serde_json::Map<String, serde_json::Value>,
    pub rows: Vec<BenchRow>,
}

/// One measurement: `method` (`persist-mmap`, `persist-mmap-batched`, `persist-pread`, `lmdb`,
/// `hashmap`) doing `op` (`get`, `get-cold`, `load`, `put`, `get-during-load`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    pub method: String,
    pub op: String,
    pub per_s: f64,
}

/// Builds and runs the benchmark.
pub fn run(ctx: &Ctx, opts: Options) -> anyhow::Result<()> {
    if !opts.json {
        out::heading("Benchmark: persist against LMDB, pread and an in-memory HashMap");
    }
    let manifest = ctx.root.join("bench/persist-bench/Cargo.toml");
    let target = ctx.target_dir.join("persist-bench");
    out::progress("building bench/persist-bench (release; the first build compiles LMDB)");
    let status = crate::build::cargo()
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&ctx.root)
        // Cargo's chatter must not reach a `--json` stdout.
        .stdout(Stdio::null())
        .status()
        .context("cannot run cargo build for bench/persist-bench")?;
    if !status.success() {
        bail!("cargo build --manifest-path {} failed", manifest.display());
    }
    let scratch = ctx.scratch("bench-persist")?;
    let bin = target.join("release").join("persist-bench");
    let mut cmd = Command::new(&bin);
    cmd.arg(scratch.path())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if opts.quick {
        cmd.arg("--quick");
    }
    if !opts.json {
        let status = cmd
            .stdout(Stdio::inherit())
            .status()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        if !status.success() {
            bail!("persist-bench failed ({status})");
        }
        return Ok(());
    }
    let output = cmd
        .arg("--json")
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !output.status.success() {
        bail!("persist-bench failed ({})", output.status);
    }
    parse(&output.stdout)?;
    // Checked against the designed shape; printed whole, with the fields beyond it
    // (readers, notes) that the benchmark adds.
    let whole: serde_json::Value = serde_json::from_slice(&output.stdout)
        .context("persist-bench --json printed invalid JSON")?;
    out::json(&whole)
}

/// Reads persist-bench's document; a missing field or a row without a rate is an error.
pub fn parse(stdout: &[u8]) -> anyhow::Result<BenchDoc> {
    let doc: BenchDoc = serde_json::from_slice(stdout).map_err(|e| {
        anyhow::anyhow!("persist-bench --json printed a document xtask cannot read: {e}")
    })?;
    if let Some(row) = doc
        .rows
        .iter()
        .find(|r| !r.per_s.is_finite() || r.per_s < 0.0)
    {
        bail!(
            "persist-bench --json: {} {} has no valid rate ({})",
            row.method,
            row.op,
            row.per_s
        );
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_the_designed_shape() {
        let doc = parse(
            br#"{"keys": 1000000, "machine": {"cpu": "x"},
                 "rows": [{"method": "persist-mmap", "op": "get", "per_s": 5.1e6},
                          {"method": "lmdb", "op": "get", "per_s": 2.0e6}]}"#,
        )
        .unwrap();
        assert_eq!(doc.keys, 1_000_000);
        assert_eq!(doc.rows[1].method, "lmdb");
        let e = parse(br#"{"keys": 1, "machine": {}, "rows": [{"method": "lmdb", "op": "get"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("per_s"), "{e}");
        let e = parse(br#"{"machine": {}, "rows": []}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("keys"), "{e}");
    }
}
