//! `cargo xtask bench persist [--quick] [--json]`: builds `bench/persist-bench` (its own
//! workspace, so LMDB's C code never slows `cargo test --workspace`) in release mode and runs
//! it in a scratch directory with `--json`. Its one document is read into
//! `persist::bench::BenchReport` (the type the benchmark prints; a missing field is an error
//! naming it), then printed as it is (`--json`) or rendered by `persist::bench::render`: issue
//! 25's goals met or not, each figure beside its bound, the machine's limits measured in the
//! same run, the files, and every row against LMDB, pread and an in-memory HashMap. `--quick`
//! is passed through.

use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use persist::bench::BenchReport;

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

/// Builds and runs the benchmark.
pub fn run(ctx: &Ctx, opts: Options) -> anyhow::Result<()> {
    if !opts.json {
        out::heading("Benchmark: persist against LMDB, pread and an in-memory HashMap");
    }
    let root = ctx.layout.source_root("bench persist")?;
    let manifest = root.join("bench/persist-bench/Cargo.toml");
    let target = ctx.work_dir().join("persist-bench");
    out::progress("building bench/persist-bench (release; the first build compiles LMDB)");
    let status = crate::build::cargo()
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .current_dir(root)
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
    let output = cmd
        .arg("--json")
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !output.status.success() {
        bail!("persist-bench failed ({})", output.status);
    }
    let doc = parse(&output.stdout)?;
    if opts.json {
        return out::json(&doc);
    }
    crate::say!("{}", persist::bench::render(&doc).trim_end());
    Ok(())
}

/// Reads persist-bench's document; a missing field or a row without a rate is an error.
pub fn parse(stdout: &[u8]) -> anyhow::Result<BenchReport> {
    let doc: BenchReport = serde_json::from_slice(stdout).map_err(|e| {
        anyhow::anyhow!("persist-bench --json printed a document xtask cannot read: {e}")
    })?;
    if let Some(row) = doc
        .rows
        .iter()
        .find(|r| !r.per_s.is_finite() || r.per_s < 0.0)
    {
        bail!(
            "persist-bench --json: {:?} {:?} has no valid rate ({})",
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
    use persist::bench::{
        ChaseRun, Files, GoalInputs, LimitsSetup, Machine, Method, MissCount, Op, PageKind, Row,
        Setup,
    };

    fn report(per_s: f64) -> BenchReport {
        let rows = vec![Row {
            method: Method::Lmdb,
            op: Op::Get,
            per_s,
            readers: 1,
            alone_per_s: None,
            per_cpu_s: None,
            alone_per_cpu_s: None,
            note: String::new(),
        }];
        let limits_setup = LimitsSetup {
            llc_bytes: Some(32 << 20),
            l2_hit_ns: Some(4.0),
            window_ms: 10,
            rounds: 1,
            runs: vec![ChaseRun {
                buffer: persist::bench::BufferKind::BeyondLlc,
                pages: PageKind::Small,
                bytes: 256 << 20,
                huge_bytes: Some(0),
                ns_per_load: Some(150.0),
                why_not: None,
            }],
            mlp_pages: PageKind::Small,
            mlp_curve: Vec::new(),
            table_pmd_bytes: None,
            table_mapped_bytes: 4096,
            misses: MissCount {
                method: None,
                per_get: None,
                detail: "not counted".into(),
            },
            seconds: 1.0,
        };
        let limits = persist::bench::limits(&limits_setup);
        let files = Files {
            persist_bytes: 4096,
            lmdb_bytes: 4096,
        };
        BenchReport {
            keys: 1000,
            machine: Machine {
                cpu: "x".into(),
                logical_cpus: 2,
                mem_total_bytes: 1 << 30,
                kernel: "6.1".into(),
                page_size: 4096,
                transparent_hugepage: "madvise".into(),
                filesystem: "ext4".into(),
                load_average_1m: 0.5,
            },
            goals: persist::bench::goals(&GoalInputs {
                rows: &rows,
                files: &files,
                limits: &limits,
                one_miss_ns: None,
                get_cpu_ns: None,
                batched_cpu_ns: None,
                cached_get_cpu_ns: None,
                cold: &[],
                cold_lookups: 0,
            }),
            rows,
            files,
            limits,
            setup: Setup {
                quick: true,
                lookups: 10,
                rounds: 1,
                batch: 16,
                batch_why: "not measured".into(),
                cold_lookups: 10,
                puts: 10,
                table_bytes: 4096,
                get_cpu_ns: None,
                batched_cpu_ns: None,
                persist_allocated_bytes: 4096,
                lmdb_allocated_bytes: 4096,
                cold: Vec::new(),
                limits: limits_setup,
            },
        }
    }

    #[test]
    fn the_document_is_the_benchmarks_own_type() {
        let doc = parse(&serde_json::to_vec(&report(2.0e6)).unwrap()).unwrap();
        assert_eq!(doc, report(2.0e6));
        let mut v = serde_json::to_value(report(2.0e6)).unwrap();
        v["rows"][0].as_object_mut().unwrap().remove("per_s");
        let e = parse(&serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("per_s"), "{e}");
        let mut v = serde_json::to_value(report(2.0e6)).unwrap();
        v.as_object_mut().unwrap().remove("keys");
        let e = parse(&serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("keys"), "{e}");
        let e = parse(&serde_json::to_vec(&report(-1.0)).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no valid rate"), "{e}");
        // The machine's limits are part of the document: without them it is refused.
        let mut v = serde_json::to_value(report(2.0e6)).unwrap();
        v["limits"].as_object_mut().unwrap().remove("mlp");
        let e = parse(&serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("mlp"), "{e}");
    }
}
