//! Running malloc-probe: the traced sweep, free-bit with and without the tcache, the threshold
//! (plain and tuned) and the page edge. Every run's arguments, extra environment and JSON
//! document go into the [`Evidence`]; nothing is decided here except which requests to try.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::Context as _;
use serde::de::DeserializeOwned;

use crate::model::Ctx;
use crate::out;
use lab_analysis::step1::allocator::{self, AllocatorEvidence};
use lab_analysis::step1::analyze::{tunable_value, MMAP_THRESHOLD_TUNABLE};
use lab_analysis::step1::wire::{KernelCallsReport, SweepReport, ThresholdReport};
use lab_analysis::step1::{EnvVar, Evidence, FailedRun, Measured, Outcome, Refusal, Run, Traced};

/// The strace filter: the allocator's system calls, plus `write` for the probe's markers.
pub const FILTER: &str = "brk,mmap,munmap,write";

/// The filter for another allocator's ladder: also how it gives memory back on free.
pub const ALLOCATOR_FILTER: &str = "brk,mmap,munmap,madvise,mremap,write";

/// The course runs step 1 with this tunable ("to more easily observe malloc").
pub const NO_TCACHE: &str = "glibc.malloc.tcache_count=0";

pub fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
    ctx.build_release(&["malloc-probe"])?;
    lab_trace::run::check()?;
    let scratch = ctx.scratch("step1")?;
    let probe = Probe {
        path: ctx.bin("malloc-probe"),
        environment: malloc_environment(std::env::vars()),
    };
    let mut evidence = measure_with(&probe, ctx.quick, scratch.path()).map_err(|e| {
        // The sweep failed: name the settings that may have caused it.
        let settings = lab_analysis::step1::unmeasured::settings(
            &probe.environment,
            &[],
            address_space_limit(),
        );
        if settings.is_empty() {
            e
        } else {
            e.context(format!("under {}", settings.join(" ")))
        }
    })?;
    if let Some(path) = &ctx.options.allocator {
        evidence.allocator = Some(measure_allocator(&probe, path, scratch.path())?);
    }
    Ok(evidence)
}

/// `malloc-probe --allocator PATH kernel-calls` under strace: the coarse ladder, then finer
/// rounds around the switch while [`allocator::next_round`] asks for one (each in a fresh
/// process).
pub fn measure_allocator(
    probe: &Probe,
    path: &Path,
    scratch: &Path,
) -> anyhow::Result<AllocatorEvidence> {
    let shown = path.display().to_string();
    let soname = lab_trace::elf::ElfInfo::read(path)
        .ok()
        .and_then(|elf| elf.soname);
    let name = allocator::name_of(soname.as_deref().unwrap_or(&shown));
    let mut rounds: Vec<Traced<KernelCallsReport>> = Vec::new();
    let mut ladders = Vec::new();
    let mut sizes: Option<String> = None;
    loop {
        let mut args = vec!["--json", "--allocator", &shown, "kernel-calls"];
        if let Some(s) = &sizes {
            args.extend(["--sizes", s]);
        }
        out::progress(&format!(
            "step 1: malloc-probe --allocator {name} kernel-calls (round {}), under strace",
            rounds.len() + 1
        ));
        let run: Traced<KernelCallsReport> =
            probe.traced_with(ALLOCATOR_FILTER, &args, vec![], scratch)?;
        ladders.push(allocator::ladder(&run).context("cannot pair the ladder with its trace")?);
        rounds.push(run);
        match allocator::next_round(&ladders) {
            Some(next) => {
                let next: Vec<String> = next.iter().map(u64::to_string).collect();
                sizes = Some(next.join(","));
            }
            None => break,
        }
    }
    Ok(AllocatorEvidence {
        path: shown,
        name,
        rounds,
    })
}

/// The variables of `vars` that change how malloc behaves or which malloc runs.
pub fn malloc_environment(vars: impl Iterator<Item = (String, String)>) -> Vec<EnvVar> {
    let mut env: Vec<EnvVar> = vars
        .filter(|(k, _)| k == "GLIBC_TUNABLES" || k == "LD_PRELOAD" || k.starts_with("MALLOC_"))
        .map(|(k, v)| EnvVar::new(k, v))
        .collect();
    env.sort_by(|a, b| a.name.cmp(&b.name));
    env
}

/// `GLIBC_TUNABLES` with `tunable` (`name=value`) added after what `environment` already sets
/// (glibc takes the last entry of a name), unless it is already the last word on it.
pub fn with_tunable(environment: &[EnvVar], tunable: &str) -> EnvVar {
    let name = tunable.split('=').next().unwrap_or(tunable);
    match environment.iter().find(|v| v.name == "GLIBC_TUNABLES") {
        Some(v) if tunable_value(&v.value, name) == tunable.split_once('=').map(|t| t.1) => {
            v.clone()
        }
        Some(v) if !v.value.is_empty() => {
            EnvVar::new("GLIBC_TUNABLES", format!("{}:{tunable}", v.value))
        }
        _ => EnvVar::new("GLIBC_TUNABLES", tunable),
    }
}

/// Two requests 8 bytes apart on either side of `x + 24 = k pages`, above the threshold chunk
/// size and above what the top chunk held at start-up (a fresh process's top serves any request
/// that fits, mmap threshold or not): the mapping's extra word decides whether one more page is
/// mapped.
pub fn page_edge_requests(threshold_chunk_size: u64, top_at_start: u64, page: u64) -> [u64; 2] {
    let k = (threshold_chunk_size.max(top_at_start) + 2 * page).div_ceil(page);
    [k * page - 24, k * page - 16]
}

/// The top chunk's size before the sweep's first malloc: that malloc's chunk plus what it left.
fn top_at_start(sweep: &SweepReport) -> u64 {
    sweep
        .allocations
        .first()
        .and_then(|r| Some(r.top_size? + r.chunk_size))
        .unwrap_or(0)
}

/// This process's soft `RLIMIT_AS` (`ulimit -v`) in bytes, which every probe inherits; `None`
/// when unlimited.
pub fn address_space_limit() -> Option<u64> {
    use rustix::process::{getrlimit, Resource};
    getrlimit(Resource::As).current
}

/// A probe run's document, or `None` when the probe ran and failed: then its [`FailedRun`]
/// (with the run's own variables) goes to `failed` and the measurement goes on. Any other error
/// (the probe could not be started, strace failed, an unreadable document) ends it.
fn unless_failed<T>(
    run: anyhow::Result<T>,
    extra: &[EnvVar],
    failed: &mut Vec<FailedRun>,
) -> anyhow::Result<Option<T>> {
    match run {
        Ok(doc) => Ok(Some(doc)),
        Err(e) => {
            let mut f = e.downcast::<FailedRun>()?;
            f.env = extra.to_vec();
            out::progress(&format!("step 1: {f}; going on without it"));
            failed.push(f);
            Ok(None)
        }
    }
}

/// Runs every experiment with `probe`. The first run tells whether the probe accepts this
/// process's malloc; a refusal ends the measurement and is recorded as the outcome, and so does
/// (as an error) a sweep that fails. Each later run that fails is recorded in
/// [`Evidence::failed`] and leaves what it measures "not measured"; the others still run.
pub fn measure_with(probe: &Probe, quick: bool, scratch: &Path) -> anyhow::Result<Evidence> {
    let environment = probe.environment.clone();
    let address_space_limit = address_space_limit();
    let max = if quick { "1MiB" } else { "4MiB" };
    out::progress("step 1: malloc-probe --mark sweep, under strace");
    let sweep: Traced<SweepReport> = match probe.traced(
        &["--json", "--mark", "sweep", "--max", max],
        vec![],
        scratch,
    ) {
        Ok(sweep) => sweep,
        Err(e) => {
            return match e.downcast::<Refusal>() {
                Ok(refusal) => Ok(Evidence {
                    environment,
                    thread_arena: None,
                    allocator: None,
                    address_space_limit,
                    failed: Vec::new(),
                    outcome: Outcome::Refused(refusal),
                }),
                Err(e) => Err(e),
            }
        }
    };
    let mut failed = Vec::new();
    out::progress("step 1: malloc-probe free-bit");
    let free_bit = unless_failed(probe.run(&["--json", "free-bit"], vec![]), &[], &mut failed)?;
    let no_tcache = with_tunable(&environment, NO_TCACHE);
    out::progress(&format!("step 1: malloc-probe free-bit with {no_tcache}"));
    let free_bit_no_tcache = unless_failed(
        probe.run(&["--json", "free-bit"], vec![no_tcache.clone()]),
        &[no_tcache],
        &mut failed,
    )?;
    out::progress("step 1: malloc-probe threshold (one fresh process per probe)");
    let threshold: Option<Run<ThresholdReport>> = unless_failed(
        probe.run(&["--json", "threshold"], vec![]),
        &[],
        &mut failed,
    )?;
    let page = (sweep.doc.allocator.page_size as u64).max(1);
    let tuned_threshold = match &threshold {
        Some(t) => {
            let half = (t.doc.threshold.threshold_chunk_size / 2).max(page);
            let tuned = with_tunable(&environment, &format!("{MMAP_THRESHOLD_TUNABLE}={half}"));
            out::progress(&format!("step 1: malloc-probe threshold with {tuned}"));
            unless_failed(
                probe.run(&["--json", "threshold"], vec![tuned.clone()]),
                &[tuned],
                &mut failed,
            )?
        }
        // No threshold to halve.
        None => None,
    };
    // Beside the threshold's chunk size, or the sweep's smallest mmapped chunk without it; no
    // page edge when nothing was mmapped.
    let mmapped_chunk = threshold
        .as_ref()
        .map(|t| t.doc.threshold.threshold_chunk_size)
        .or_else(|| {
            let mmapped = sweep.doc.allocations.iter().filter(|r| r.region == "mmap");
            mmapped.map(|r| r.chunk_size).min()
        });
    let page_edge = match mmapped_chunk {
        Some(chunk) => {
            let edge =
                page_edge_requests(chunk, top_at_start(&sweep.doc), page).map(|x| x.to_string());
            out::progress("step 1: malloc-probe --mark alloc at a page edge, under strace");
            unless_failed(
                probe.traced(
                    &["--json", "--mark", "alloc", &edge[0], &edge[1]],
                    vec![],
                    scratch,
                ),
                &[],
                &mut failed,
            )?
        }
        None => None,
    };
    out::progress("step 1: malloc-probe thread-arena");
    let thread_arena = unless_failed(
        probe.run(&["--json", "thread-arena"], vec![]),
        &[],
        &mut failed,
    )?;
    Ok(Evidence {
        environment,
        thread_arena,
        allocator: None,
        address_space_limit,
        failed,
        outcome: Outcome::Measured(Box::new(Measured {
            sweep,
            free_bit,
            free_bit_no_tcache,
            threshold,
            tuned_threshold,
            page_edge,
        })),
    })
}

/// The malloc-probe binary and the malloc environment it runs in.
pub struct Probe {
    pub path: PathBuf,
    /// Set on every run (normally what xtask inherited, so setting it again changes nothing).
    pub environment: Vec<EnvVar>,
}

impl Probe {
    fn apply(&self, cmd: &mut Command, extra: &[EnvVar]) {
        for v in self.environment.iter().chain(extra) {
            cmd.env(&v.name, &v.value);
        }
    }

    /// Runs `malloc-probe ARGS` with `extra` set, and reads its JSON document.
    pub fn run<D: DeserializeOwned>(
        &self,
        args: &[&str],
        extra: Vec<EnvVar>,
    ) -> anyhow::Result<Run<D>> {
        let mut cmd = Command::new(&self.path);
        cmd.args(args).stdin(Stdio::null());
        self.apply(&mut cmd, &extra);
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", self.path.display()))?;
        let doc = document(args, out.status, &out.stdout, &out.stderr)?;
        Ok(Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            env: extra,
            doc,
        })
    }

    /// Like [`Probe::run`], under `strace -e trace=`[`FILTER`], keeping the trace.
    pub fn traced<D: DeserializeOwned>(
        &self,
        args: &[&str],
        extra: Vec<EnvVar>,
        scratch: &Path,
    ) -> anyhow::Result<Traced<D>> {
        self.traced_with(FILTER, args, extra, scratch)
    }

    /// Like [`Probe::traced`], with another strace filter.
    pub fn traced_with<D: DeserializeOwned>(
        &self,
        filter: &str,
        args: &[&str],
        extra: Vec<EnvVar>,
        scratch: &Path,
    ) -> anyhow::Result<Traced<D>> {
        let t = lab_trace::run::run_command(&self.path, filter, scratch, |cmd| {
            cmd.args(args);
            self.apply(cmd, &extra);
        })?;
        let doc = document(args, t.status, t.stdout.as_bytes(), t.stderr.as_bytes())?;
        Ok(Traced {
            args: args.iter().map(|a| a.to_string()).collect(),
            env: extra,
            doc,
            trace: t.trace,
        })
    }
}

/// The probe's JSON document; a failed run is a [`FailedRun`], and the probe's refusal of a
/// foreign malloc is a [`Refusal`].
fn document<D: DeserializeOwned>(
    args: &[&str],
    status: ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
) -> anyhow::Result<D> {
    if !status.success() {
        let stderr = String::from_utf8_lossy(stderr);
        let error = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .map(|l| l.trim_start_matches("error: ").trim().to_string())
            .unwrap_or_else(|| stderr.trim().to_string());
        // malloc-probe's refusal: "malloc comes from X, not from glibc (…): its blocks carry no
        // ptmalloc boundary tags, so malloc-probe will not read them; …" (exit status 1).
        if status.code() == Some(1) && error.contains("no ptmalloc boundary tags") {
            return Err(Refusal {
                args: args.iter().map(|a| a.to_string()).collect(),
                status: status.code(),
                error,
            }
            .into());
        }
        return Err(FailedRun {
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            status: status.code(),
            error,
        }
        .into());
    }
    serde_json::from_slice(stdout).with_context(|| {
        format!(
            "malloc-probe {} printed an unreadable document",
            args.join(" ")
        )
    })
}
