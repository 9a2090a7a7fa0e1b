//! `cargo xtask`: builds the lab's binaries, runs each step under strace, and explains what this
//! machine did, computed from this run's measurements.
//!
//! Run `cargo xtask run-step N` (N = 1..=5), `cargo xtask run-all`, either with `--quick` for the
//! short version CI runs, and `cargo xtask bench NAME` for the benchmarks.
//!
//! One module per step (`step1` … `step5`); the shared pieces are `build` (cargo, target dir,
//! binaries), `strace` (running under strace and parsing its lines), `out` (where human output
//! goes) and `model` (the structured result of a step, which `report` renders).

mod build;
mod model;
mod out;
mod report;
mod step1;
mod step2;
mod step3;
mod step4;
mod step5;
mod strace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Developer tasks for mmap-lab.
#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    after_help = "Examples:
  cargo xtask run-all                 every step, explained from this run
  cargo xtask run-step 1              malloc's switch to mmap, under strace
  cargo xtask run-step 5 --quick      the race, short version (what CI runs)
  cargo xtask bench persist           lookups: mmap vs pread vs LMDB
  cargo xtask report --quick --check  the lab report, checked in headless Chromium"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one step of the lab and explain the evidence.
    RunStep {
        /// The step, 1 to 5.
        #[arg(value_parser = clap::value_parser!(u8).range(1..=5))]
        step: u8,
        /// A short version: small targets, few iterations (what CI runs).
        #[arg(long)]
        quick: bool,
    },
    /// Run every step in order.
    RunAll {
        /// A short version: small targets, few iterations (what CI runs).
        #[arg(long)]
        quick: bool,
    },
    /// Run a benchmark: `persist` (lookups: mmap vs pread vs LMDB) or `race` (Rust vs C racer).
    Bench {
        /// What to benchmark: persist or race.
        name: String,
    },
    /// Run every step and write a self-contained HTML report (and a Markdown twin) under target/.
    Report {
        /// A short version: small targets, few iterations.
        #[arg(long)]
        quick: bool,
        /// Render the report in headless Chromium and fail if it has errors or an empty picture.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli: Cli = match lab_cli::parse() {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::RunStep { step, quick } => {
            let ctx = model::Ctx::new(quick)?;
            run_step(&ctx, step).map(drop)
        }
        Cmd::RunAll { quick } => {
            let ctx = model::Ctx::new(quick)?;
            for step in 1..=5 {
                run_step(&ctx, step)?;
            }
            Ok(())
        }
        Cmd::Bench { name } => {
            let ctx = model::Ctx::new(false)?;
            match name.as_str() {
                "persist" => step2::bench(&ctx),
                "race" => step5::bench(&ctx),
                other => anyhow::bail!("unknown benchmark {other:?}; try `persist` or `race`"),
            }
        }
        Cmd::Report { quick, check } => report::run(quick, check),
    }
}

/// Runs one step, printing its human explanation, and returns its structured result.
pub fn run_step(ctx: &model::Ctx, step: u8) -> anyhow::Result<model::StepReport> {
    out::heading(&format!("Step {step}"));
    match step {
        1 => step1::run(ctx),
        2 => step2::run(ctx),
        3 => step3::run(ctx),
        4 => step4::run(ctx),
        5 => step5::run(ctx),
        _ => anyhow::bail!("there is no step {step}; steps are 1 to 5"),
    }
}
