//! How xtask runs a step around the analysis: *measure* (here: run, trace, read /proc into the
//! step's typed Evidence), then `lab_analysis` analyzes and explains it, then the pictures are
//! drawn from the Findings ([`crate::charts`]).
//!
//! - *measure* runs programs, traces them and snapshots /proc; everything the answers rest on is
//!   in the step's `Evidence`, which is serialisable: `--save-evidence DIR` writes it as
//!   `DIR/stepN.json`, `--evidence DIR` reads it back and runs nothing.
//! - *analyze* and *explain* are `lab_analysis::Step`'s: pure, from the evidence alone.
//! - The terminal ([`crate::out::render`]) and `cargo xtask report` render the same
//!   [`lab_analysis::StepReport`]; `--json` prints it, with its `findings` object.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::build;
use crate::charts::{Picture, Shown};
use crate::evidence;

/// What xtask adds to a step of `lab_analysis`: its measurement and its pictures.
pub trait Measure: lab_analysis::Step {
    /// Runs, traces and reads the machine. Progress goes to stderr ([`crate::out::progress`]).
    fn measure(ctx: &Ctx) -> anyhow::Result<Self::Evidence>;
    /// The step's pictures, drawn from the picture data `lab_analysis` built from the findings.
    fn draw(pictures: &Self::Pictures) -> Vec<Picture>;
}

/// Runs a step: measures (or loads recorded evidence), saves the evidence if asked, analyzes
/// and explains, and draws the pictures.
pub fn run<S: Measure>(ctx: &Ctx) -> anyhow::Result<Shown> {
    let evidence: S::Evidence = match &ctx.replay {
        Some(dir) => evidence::load(dir, S::NUMBER)?,
        None => S::measure(ctx)?,
    };
    if let Some(dir) = &ctx.save {
        evidence::save(dir, S::NUMBER, &evidence)?;
    }
    let explained = lab_analysis::report::<S>(&evidence)?;
    let pictures = S::draw(&explained.pictures);
    Ok(Shown {
        report: explained.report,
        pictures,
    })
}

/// Options that point a step at someone else's programs and files, and size it.
#[derive(Debug, Clone, Default)]
pub struct StepOptions {
    /// Step 5: the race target (otherwise calibrated on this machine).
    pub target: Option<i64>,
    /// Step 4: the two programs to explain (otherwise our foo and bar).
    pub foo: Option<PathBuf>,
    pub bar: Option<PathBuf>,
    /// Step 5: someone else's racer.
    pub racer: Option<PathBuf>,
    /// Steps 2–3: the disktable to use (otherwise one shaped like the course's).
    pub table: Option<PathBuf>,
    /// Steps 2–3: someone else's reader/writer.
    pub program: Option<PathBuf>,
    /// Arguments after `--`, for `--racer` or `--program`.
    pub args: Vec<String>,
    /// Step 1: another allocator to measure (an ELF shared object, preloaded).
    pub allocator: Option<PathBuf>,
}

/// What a step needs: where the programs are, how long to run, and where evidence is saved to
/// or replayed from.
pub struct Ctx {
    /// Where the programs are and where the lab writes: the workspace (`cargo xtask`) or an
    /// installed `mmap-lab` ([`build::Layout`]).
    pub layout: build::Layout,
    /// The short version: small targets, few iterations.
    pub quick: bool,
    /// `--save-evidence DIR`.
    pub save: Option<PathBuf>,
    /// `--evidence DIR`: explain recorded evidence, run nothing.
    pub replay: Option<PathBuf>,
    pub options: StepOptions,
}

impl Ctx {
    pub fn new(quick: bool) -> anyhow::Result<Ctx> {
        Ok(Ctx {
            layout: build::Layout::detect()?,
            quick,
            save: None,
            replay: None,
            options: StepOptions::default(),
        })
    }

    /// Makes these packages' programs ready (in the workspace: builds them in release mode);
    /// use [`Ctx::bin`] for their paths.
    pub fn build_release(&self, packages: &[&str]) -> anyhow::Result<()> {
        self.layout.build_release(packages)
    }

    /// The path of a program made ready by [`Ctx::build_release`].
    pub fn bin(&self, name: &str) -> PathBuf {
        self.layout.program(name)
    }

    /// Where the lab writes its own files: cargo's target directory (`cargo xtask`) or the
    /// installed lab's work directory.
    pub fn work_dir(&self) -> &Path {
        self.layout.work_dir()
    }

    /// A fresh scratch directory under the work directory, removed when dropped.
    pub fn scratch(&self, what: &str) -> anyhow::Result<Scratch> {
        Scratch::new(&self.work_dir().join("xtask-scratch"), what)
    }
}

/// A scratch directory that is removed (with everything in it) when dropped, or by the lab's
/// interrupt handling ([`crate::interrupt`]) when a signal ends the lab first.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(parent: &Path, what: &str) -> anyhow::Result<Scratch> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        // The directories above it that this makes (an installed lab's work directory is made on
        // demand) are removed after it when they are left empty.
        crate::interrupt::create_dir(&path)
            .with_context(|| format!("cannot create scratch directory {}", path.display()))?;
        Ok(Scratch { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        crate::interrupt::remove_dir(&self.path);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A step's narrative and its pictures together, as the tests look at them.
    pub struct Explained {
        pub blocks: Vec<lab_analysis::Block>,
        pub pictures: Vec<Picture>,
    }

    /// What a step shows for these findings: `explain`'s blocks and the pictures drawn.
    pub fn explained<S: Measure>(f: &S::Findings, e: &S::Evidence) -> Explained {
        Explained {
            blocks: S::explain(f, e),
            pictures: S::draw(&S::pictures(f, e)),
        }
    }
}
