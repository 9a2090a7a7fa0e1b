//! `cargo xtask`: builds the lab's binaries, runs each step under strace, and explains what this
//! machine did, computed from this run's measurements.
//!
//! Run `cargo xtask run-step N` (N = 1..=6), `cargo xtask run-all`, either with `--quick` for the
//! short version CI runs, and `cargo xtask bench NAME` for the benchmarks. `cargo xtask install`
//! installs the lab as `mmap-lab` ([`install`]): the same commands, from any directory, with no
//! cargo and no source tree ([`build::Layout`]). Path arguments are the caller's: relative to the
//! directory the command was run in, made absolute as the command line is parsed ([`CallerPath`]).
//!
//! Every step is *measure* (here: run, trace, read /proc into typed Evidence, [`model::Measure`]),
//! then `lab_analysis`'s *analyze* (pure: Evidence → Findings) and *explain* (Findings → the
//! narrative), then the rendering here (terminal, report, pictures drawn from the Findings), so
//! `--save-evidence DIR` / `--evidence DIR` record a run and explain it again without running
//! anything. The evidence readers (strace, /proc, ELF) live in `crates/lab-trace`; the binaries'
//! `--json` documents are types of their own crates.
//!
//! Modules: one per step (`step1` … `step6`, measuring); `build` (where the programs are: cargo's
//! target dir or beside an installed `mmap-lab`; building them), `install`,
//! `model` (Measure, Ctx, run), `evidence` (save/load), `out` (the terminal rendering), `charts`
//! (the pictures), `report` (HTML/Markdown), `check` (`check DIR`: a TA's check of a student's
//! submission), `interrupt` (Ctrl-C, SIGTERM, SIGHUP: the children in groups of their own killed
//! and the scratch removed before the lab exits).

#![forbid(unsafe_code)]

mod build;
mod cgroupfs;
mod charts;
mod check;
mod disktable_steps;
mod evidence;
#[cfg(test)]
mod help_tests;
mod install;
mod interrupt;
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
#[cfg(test)]
mod testing;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
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
  cargo xtask run-step 1 --allocator /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
                                      ... and where jemalloc starts asking the kernel
  cargo xtask run-step 5 --quick      the race, short version (what CI runs)
  cargo xtask run-step 4 --foo ./foo --bar ./bar   explain someone else's foo and bar
  cargo xtask run-step 5 --racer ./racer           race someone else's racer
  cargo xtask run-step 6 --quick      the channel under strace, against pipes and sockets
  cargo xtask run-step 1 --save-evidence ev/       record what was measured
  cargo xtask run-step 1 --evidence ev/            explain it again, running nothing
  cargo xtask bench persist --json    persist vs LMDB, pread, HashMap (one JSON document)
  cargo xtask bench race              the Rust racer vs the C racer, goal Rust/C <= 1.05x
  cargo xtask report --quick --check  the lab report, checked in headless Chromium
  cargo xtask check ~/student42       judge a student's submission (exit 1 if a check failed)
  cargo xtask install                 mmap-lab (and the programs it runs) into ~/.cargo

Relative paths are relative to the directory the command runs in."
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
    #[arg(long, value_name = "DIR", conflicts_with = "evidence", value_parser = CallerPath)]
    save_evidence: Option<PathBuf>,
    /// Explain the evidence recorded in DIR (by --save-evidence); run nothing.
    #[arg(long, value_name = "DIR", value_parser = CallerPath)]
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
    #[arg(long, value_name = "PATH", requires = "bar", value_parser = CallerPath)]
    foo: Option<PathBuf>,
    /// Step 4: the second program to explain (with --foo), instead of our bar.
    #[arg(long, value_name = "PATH", requires = "foo", value_parser = CallerPath)]
    bar: Option<PathBuf>,
    /// Step 5: race someone else's racer (its first argument is the participant count;
    /// arguments after `--` follow it).
    #[arg(long, value_name = "PATH", value_parser = CallerPath)]
    racer: Option<PathBuf>,
    /// Steps 2–3: use this disktable (a copy, for step 3) instead of a generated one.
    #[arg(long, value_name = "FILE", value_parser = CallerPath)]
    table: Option<PathBuf>,
    /// Steps 2–3: run someone else's reader/writer next to table.bin, under strace.
    #[arg(long, value_name = "PATH", value_parser = CallerPath)]
    program: Option<PathBuf>,
    /// Step 1: also measure this allocator (LD_PRELOAD; e.g. libjemalloc.so.2): where it
    /// starts asking the kernel for each request, read from strace alone.
    #[arg(long, value_name = "PATH.so", value_parser = CallerPath)]
    allocator: Option<PathBuf>,
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
            allocator: o.allocator,
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
    /// Run every step in order, then the answers at a glance.
    ///
    /// A step that fails does not stop the later ones: its error is said under its heading, its
    /// questions read "not measured: step N failed: …" in the glance, and the exit status is 1.
    /// Exit status 0: every step ran (a question one could not measure says "not measured" and
    /// why); 2: usage. A missing strace, an --evidence DIR that is not a directory or an interrupt
    /// stops at once.
    RunAll {
        #[command(flatten)]
        common: Common,
    },
    /// Run a benchmark: `persist` (against LMDB, pread, a HashMap) or `race` (Rust vs C racer).
    Bench {
        /// What to benchmark.
        name: Bench,
        /// A short run (persist: fewer keys and rounds; race: target 10^7, 3 runs per cell).
        #[arg(long)]
        quick: bool,
        /// Print one JSON document on stdout, everything else on stderr: `bench persist`'s
        /// {"keys", "machine", "rows"}, `bench race`'s {"target", "rows"}.
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
    /// A TA's check of a student's submission: pass / fail / not-tested per "Demonstrate".
    ///
    /// Copies DIR to a scratch directory, builds it with its Makefile, and judges its probe
    /// (step1.probe), reader (step2.reader), writer (step3.writer) and racers (step5.racer,
    /// step5.atomic-racer) on tables and races made fresh for this check, each with a one-line
    /// reason and the evidence that decided it. Exit 0 when no check failed and one was tested,
    /// 1 when one failed or nothing was tested, 2 for usage.
    #[command(
        after_help = "Programs are found by name in DIR after make -k (reader, writer, racer,
racer_atomic, probe), or else in its bin/, build/ or out/, unless a flag names them. What cannot
be read in DIR is left out of the copy and named. Each runs confined (its own cgroup when root,
rlimits otherwise), killed with everything it started at its deadline. DIR is never written;
nothing is written in the current directory except --markdown FILE.

Examples:
  cargo xtask check ~/student42
  cargo xtask check ~/student42 --json > verdicts.json
  cargo xtask check . --racer bin/racer --atomic-racer bin/racer_lock --markdown check.md"
    )]
    Check(check::CheckArgs),
    /// Build the lab in release mode and install it as DIR/bin/mmap-lab, the programs it runs in
    /// DIR/lib/mmap-lab; `mmap-lab` then does what `cargo xtask` does, from any directory.
    Install {
        /// The install root (default as `cargo install`: $CARGO_INSTALL_ROOT, $CARGO_HOME or
        /// ~/.cargo).
        #[arg(long, value_name = "DIR", value_parser = CallerPath)]
        root: Option<PathBuf>,
        /// Install the dev profile's builds instead of release ones (as `cargo install --debug`).
        #[arg(long)]
        debug: bool,
    },
}

/// The benchmarks `cargo xtask bench` knows; any other name is a usage error (exit 2).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Bench {
    /// persist against LMDB, pread and a HashMap.
    Persist,
    /// The Rust racer against the C racer: ns per increment, Rust/C per cell against the goal
    /// of at most 1.05x, and where both racers' loops lie in 64-byte lines.
    Race,
}

/// A path argument as the caller meant it: relative to the directory the command was run in,
/// made absolute as the command line is parsed, so that nothing run later from another
/// directory (a scratch directory, a program's own) can read it differently.
#[derive(Clone, Copy, Debug)]
pub struct CallerPath;

impl clap::builder::TypedValueParser for CallerPath {
    type Value = PathBuf;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<PathBuf, clap::Error> {
        let flag = arg.map_or_else(|| "a path".to_string(), ToString::to_string);
        let invalid = |what: String| {
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, what + "\n").with_cmd(cmd)
        };
        if value.is_empty() {
            return Err(invalid(format!("{flag} is an empty path")));
        }
        std::path::absolute(value).map_err(|e| {
            invalid(format!(
                "cannot resolve {flag} {}: {e}",
                Path::new(value).display()
            ))
        })
    }
}

/// The name the lab answers to: `mmap-lab` when installed, `cargo xtask` otherwise.
fn program_name() -> &'static str {
    let installed = std::env::current_exe()
        .is_ok_and(|exe| exe.file_name() == Some(OsStr::new(build::INSTALLED_NAME)));
    if installed {
        build::INSTALLED_NAME
    } else {
        "cargo xtask"
    }
}

/// Parses the command line under the lab's name (lab_cli's one-line usage errors).
fn parse(name: &'static str) -> Result<Cli, ExitCode> {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let mut cmd = Cli::command();
    if name != "cargo xtask" {
        // The examples, as the installed lab takes them (benchmarks build from the sources).
        let examples = cmd.get_after_help().map(|help| {
            help.to_string()
                .lines()
                .filter(|line| !line.contains(" bench ") && !line.contains(" install "))
                .collect::<Vec<_>>()
                .join("\n")
                .replace("cargo xtask", name)
        });
        cmd = cmd
            .name(name)
            .bin_name(name)
            .mut_subcommand("install", |install| install.hide(true));
        if let Some(examples) = examples {
            cmd = cmd.after_help(examples);
        }
    }
    cmd.try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
        .map_err(|e| lab_cli::report(&e, name))
}

fn main() -> ExitCode {
    let status = lab();
    // A signal that came while the lab ended: its cleanup decides the line and the status.
    interrupt::settle();
    status
}

fn lab() -> ExitCode {
    let name = program_name();
    let cli = match parse(name) {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    // Ctrl-C, SIGTERM, SIGHUP: the children in groups of their own killed, the scratch removed.
    if let Err(e) = interrupt::install() {
        out::error(&format!("cannot handle interrupts: {e}"));
        return ExitCode::FAILURE;
    }
    if let Cmd::Check(args) = cli.cmd {
        return check::main(args);
    }
    if let Cmd::RunStep { step, options, .. } = &cli.cmd {
        if let Err(problem) = check_options(*step, options) {
            out::error(&format!("{problem} (see '{name} run-step --help')"));
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
        Cmd::RunAll { common } => run_all(&common),
        Cmd::Bench { name, quick, json } => {
            if json {
                out::to_stderr();
            }
            let ctx = model::Ctx::new(quick)?;
            match name {
                Bench::Persist => step2::bench::run(&ctx, step2::bench::Options { quick, json }),
                Bench::Race => step5::bench(&ctx, json),
            }
        }
        Cmd::Report { quick, check } => report::run(quick, check),
        Cmd::Install { root, debug } => {
            let profile = if debug {
                build::Profile::Debug
            } else {
                build::Profile::Release
            };
            install::run(root, profile)
        }
        // main() runs it, for its own exit statuses (1: a check failed, 2: usage).
        Cmd::Check(_) => anyhow::bail!("check is run by main, not here"),
    }
}

/// A step of `run-all` that could not answer, and why (one line).
#[derive(serde::Serialize)]
struct StepFailure {
    step: u8,
    error: String,
}

/// `run-all`: every step in order, then the answers at a glance. A step that fails does not stop
/// the later ones: its error is said under its heading, its questions read "not measured: step N
/// failed: …" in the glance, and the run ends with one `error:` line and exit status 1. What no
/// step could get past stops at once: strace missing, `--evidence DIR` not a directory, an
/// interrupt (its cleanup ends the lab with 128 + the signal).
fn run_all(common: &Common) -> anyhow::Result<()> {
    let ctx = context(common, model::StepOptions::default())?;
    match &ctx.replay {
        Some(dir) if !dir.is_dir() => {
            anyhow::bail!("--evidence {} is not a directory", dir.display())
        }
        Some(_) => {}
        None => lab_trace::run::check()?,
    }
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for step in 1..=STEPS {
        match run_step(&ctx, step) {
            Ok(shown) => reports.push(shown.report),
            Err(e) => {
                // A signal during the step: no failure is reported, the cleanup ends the lab.
                interrupt::settle();
                let error = format!("{e:#}").replace('\n', " ");
                out::write_line(format_args!("Step {step} could not answer: {error}"));
                failures.push(StepFailure { step, error });
            }
        }
    }
    let mut glance = lab_analysis::at_a_glance(&reports.iter().collect::<Vec<_>>());
    for g in &mut glance {
        let failed = failures
            .iter()
            .find(|f| g.number.split('.').next() == Some(f.step.to_string().as_str()));
        if let Some(f) = failed {
            let head = format!("not measured: step {} failed: ", f.step);
            // The glance line (number, label, text) stays within its 200 characters.
            let used = lab_analysis::Glance::new(&g.number, head.as_str()).line();
            let room = lab_analysis::report::GLANCE_MAX.saturating_sub(used.chars().count());
            *g = lab_analysis::Glance::new(&g.number, head + &cut(&f.error, room));
        }
    }
    out::glance(&glance);
    if common.json {
        out::json(&serde_json::json!({
            "steps": reports,
            "glance": glance,
            "failed": failures,
        }))?;
    }
    match failures.as_slice() {
        [] => Ok(()),
        [f] => anyhow::bail!(
            "step {} failed, its questions read \"not measured\": {}",
            f.step,
            f.error
        ),
        _ => {
            let steps: Vec<String> = failures.iter().map(|f| f.step.to_string()).collect();
            anyhow::bail!(
                "steps {} failed, their questions read \"not measured\" (the reasons are under \
                 each step's heading)",
                steps.join(", ")
            )
        }
    }
}

/// `text` cut to at most `max` characters, an ellipsis marking the cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
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
    if o.allocator.is_some() && step != 1 {
        return wrong("--allocator", "1");
    }
    if let Some(allocator) = &o.allocator {
        malloc_probe::preload::check_shared_object(allocator)?;
    }
    if let Some(racer) = &o.racer {
        if o.target.is_some() {
            return Err("--target is for our racer; --racer's target is fixed in its code".into());
        }
        disktable_steps::program::executable(racer).map_err(|why| format!("--racer {why}"))?;
    }
    if o.target.is_some_and(|t| t < 1) {
        return Err("--target must be at least 1".into());
    }
    if (o.table.is_some() || o.program.is_some()) && !matches!(step, 2 | 3) {
        return wrong("--table/--program", "2 or 3");
    }
    if let Some(program) = &o.program {
        disktable_steps::program::resolve(program).map_err(|e| e.to_string())?;
    }
    if !o.args.is_empty() && o.racer.is_none() && o.program.is_none() {
        return wrong("arguments after --", "5 with --racer or 2-3 with --program");
    }
    Ok(())
}

/// Runs one step, printing its human explanation, and returns its structured result.
pub fn run_step(ctx: &model::Ctx, step: u8) -> anyhow::Result<charts::Shown> {
    // After a signal (run-all: during the step before), no further step starts.
    interrupt::settle();
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
