//! `cargo xtask`: builds the lab's binaries, runs each step under strace, and explains what this
//! machine did, computed from this run's measurements.
//!
//! Run `cargo xtask run-step N` (N = 1..=6), `cargo xtask run-all`, either with `--quick` for the
//! short version CI runs, and `cargo xtask bench NAME` for the benchmarks.
//!
//! Every step is *measure* (here: run, trace, read /proc into typed Evidence, [`model::Measure`]),
//! then `lab_analysis`'s *analyze* (pure: Evidence → Findings) and *explain* (Findings → the
//! narrative), then the rendering here (terminal, report, pictures drawn from the Findings), so
//! `--save-evidence DIR` / `--evidence DIR` record a run and explain it again without running
//! anything. The evidence readers (strace, /proc, ELF) live in `crates/lab-trace`; the binaries'
//! `--json` documents are types of their own crates.
//!
//! Modules: one per step (`step1` … `step6`, measuring); `build` (cargo, target dir, binaries),
//! `model` (Measure, Ctx, run), `evidence` (save/load), `out` (the terminal rendering), `charts`
//! (the pictures), `report` (HTML/Markdown).

#![forbid(unsafe_code)]

mod build;
mod charts;

mod disktable_steps;
mod evidence;
mod model;
mod out;
mod report;
mod step1;
mod step2;
mod step3;
mod step4;
mod step5;
mod step6;
mod sys;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// The number of steps.
pub const STEPS: u8 = 6;

/// Developer tasks for mmap-lab.
#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    after_help = "Examples:
  cargo xtask run-all                 every step, explained from this run, ending with
                                      the answers at a glance (--verbose: the raw evidence too)
  cargo xtask run-step 1              malloc's switch to mmap, under strace
  cargo xtask run-step 5 --quick      the race, short version (what CI runs)
  cargo xtask run-step 4 --foo ./foo --bar ./bar   explain someone else's foo and bar
  cargo xtask run-step 5 --racer ./racer           race someone else's racer
  cargo xtask run-step 6 --quick      the channel under strace, against pipes and sockets
  cargo xtask run-step 1 --save-evidence ev/       record what was measured
  cargo xtask run-step 1 --evidence ev/            explain it again, running nothing
  cargo xtask bench persist --json    persist vs LMDB, pread, HashMap (one JSON document)
  cargo xtask report --quick --check  the lab report, checked in headless Chromium"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags every step takes.
#[derive(Args, Debug, Clone, Default)]
struct Common {
    /// A short version: small targets, few iterations (what CI runs).
    #[arg(long)]
    quick: bool,
    /// Print the step's report (with its `findings`) as JSON on stdout; human output to stderr.
    #[arg(long)]
    json: bool,
    /// Write what was measured to DIR/stepN.json.
    #[arg(long, value_name = "DIR", conflicts_with = "evidence")]
    save_evidence: Option<PathBuf>,
    /// Explain the evidence recorded in DIR (by --save-evidence); run nothing.
    #[arg(long, value_name = "DIR")]
    evidence: Option<PathBuf>,
    /// Also print the raw material: every strace line, every table row, the programs' JSON.
    #[arg(long, short)]
    verbose: bool,
}

/// Flags that point a step at someone else's programs and files, or size it.
#[derive(Args, Debug, Clone, Default)]
struct Options {
    /// Step 5: race to this total (default: calibrated so a race lasts about a second).
    #[arg(long, value_name = "N")]
    target: Option<i64>,
    /// Step 4: the first program to explain (with --bar), instead of our foo.
    #[arg(long, value_name = "PATH", requires = "bar")]
    foo: Option<PathBuf>,
    /// Step 4: the second program to explain (with --foo), instead of our bar.
    #[arg(long, value_name = "PATH", requires = "foo")]
    bar: Option<PathBuf>,
    /// Step 5: race someone else's racer (its first argument is the participant count;
    /// arguments after `--` follow it).
    #[arg(long, value_name = "PATH")]
    racer: Option<PathBuf>,
    /// Steps 2–3: use this disktable (a copy, for step 3) instead of a generated one.
    #[arg(long, value_name = "FILE")]
    table: Option<PathBuf>,
    /// Steps 2–3: run someone else's reader/writer next to table.bin, under strace.
    #[arg(long, value_name = "PATH")]
    program: Option<PathBuf>,
    /// Arguments for --racer or --program.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

impl From<Options> for model::StepOptions {
    fn from(o: Options) -> model::StepOptions {
        model::StepOptions {
            target: o.target,
            foo: o.foo,
            bar: o.bar,
            racer: o.racer,
            table: o.table,
            program: o.program,
            args: o.args,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one step of the lab and explain the evidence.
    RunStep {
        /// The step, 1 to 6.
        #[arg(value_parser = clap::value_parser!(u8).range(1..=STEPS as i64))]
        step: u8,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: Options,
    },
    /// Run every step in order.
    RunAll {
        #[command(flatten)]
        common: Common,
    },
    /// Run a benchmark: `persist` (against LMDB, pread, a HashMap) or `race` (Rust vs C racer).
    Bench {
        /// What to benchmark: persist or race.
        name: String,
        /// A short run (fewer keys and rounds).
        #[arg(long)]
        quick: bool,
        /// `bench persist`: print its one JSON document ({"keys", "machine", "rows"}).
        #[arg(long)]
        json: bool,
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
    if let Cmd::RunStep { step, options, .. } = &cli.cmd {
        if let Err(problem) = check_options(*step, options) {
            out::error(&format!("{problem} (see 'cargo xtask run-step --help')"));
            return ExitCode::from(2);
        }
    }
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out::error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn context(common: &Common, options: model::StepOptions) -> anyhow::Result<model::Ctx> {
    if common.json {
        out::to_stderr();
    }
    if common.verbose {
        out::verbose();
    }
    let mut ctx = model::Ctx::new(common.quick)?;
    ctx.save = common.save_evidence.clone();
    ctx.replay = common.evidence.clone();
    ctx.options = options;
    Ok(ctx)
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::RunStep {
            step,
            common,
            options,
        } => {
            let ctx = context(&common, options.into())?;
            let shown = run_step(&ctx, step)?;
            if common.json {
                out::json(&shown.report)?;
            }
            Ok(())
        }
        Cmd::RunAll { common } => {
            let ctx = context(&common, model::StepOptions::default())?;
            let mut reports = Vec::new();
            for step in 1..=STEPS {
                reports.push(run_step(&ctx, step)?.report);
            }
            let glance = lab_analysis::at_a_glance(&reports.iter().collect::<Vec<_>>());
            out::glance(&glance);
            if common.json {
                out::json(&serde_json::json!({ "steps": reports, "glance": glance }))?;
            }
            Ok(())
        }
        Cmd::Bench { name, quick, json } => {
            if json {
                out::to_stderr();
            }
            let ctx = model::Ctx::new(quick)?;
            match name.as_str() {
                "persist" => step2::bench::run(&ctx, step2::bench::Options { quick, json }),
                "race" if json => anyhow::bail!("--json is for `bench persist` only"),
                "race" => step5::bench(&ctx),
                other => anyhow::bail!("unknown benchmark {other:?}; try `persist` or `race`"),
            }
        }
        Cmd::Report { quick, check } => report::run(quick, check),
    }
}

/// A flag that points a step at programs or files is only for the steps that use it.
fn check_options(step: u8, o: &Options) -> Result<(), String> {
    let wrong =
        |flag: &str, steps: &str| Err(format!("{flag} is for step {steps}, not step {step}"));
    if o.target.is_some() && step != 5 {
        return wrong("--target", "5");
    }
    if (o.foo.is_some() || o.bar.is_some()) && step != 4 {
        return wrong("--foo/--bar", "4");
    }
    if o.racer.is_some() && step != 5 {
        return wrong("--racer", "5");
    }
    if let Some(racer) = &o.racer {
        if o.target.is_some() {
            return Err("--target is for our racer; --racer's target is fixed in its code".into());
        }
        if !racer.is_file() {
            return Err(format!("--racer {} is not a file", racer.display()));
        }
    }
    if o.target.is_some_and(|t| t < 1) {
        return Err("--target must be at least 1".into());
    }
    if (o.table.is_some() || o.program.is_some()) && !matches!(step, 2 | 3) {
        return wrong("--table/--program", "2 or 3");
    }
    if !o.args.is_empty() && o.racer.is_none() && o.program.is_none() {
        return wrong("arguments after --", "5 with --racer or 2-3 with --program");
    }
    Ok(())
}

/// Runs one step, printing its human explanation, and returns its structured result.
pub fn run_step(ctx: &model::Ctx, step: u8) -> anyhow::Result<charts::Shown> {
    out::heading(&format!("Step {step}"));
    let report = match step {
        1 => model::run::<lab_analysis::step1::Step1>(ctx),
        2 => model::run::<lab_analysis::step2::Step2>(ctx),
        3 => model::run::<lab_analysis::step3::Step3>(ctx),
        4 => model::run::<lab_analysis::step4::Step4>(ctx),
        5 => model::run::<lab_analysis::step5::Step5>(ctx),
        6 => model::run::<lab_analysis::step6::Step6>(ctx),
        _ => anyhow::bail!("there is no step {step}; steps are 1 to {STEPS}"),
    }?;
    out::render(&report.report);
    Ok(report)
}
