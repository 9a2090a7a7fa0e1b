//! The context every step runs in, and the structured result each step returns (which
//! `cargo xtask report` renders; the human output is printed as the step runs).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::build;

/// What a step needs: where the workspace and the binaries are, and how long to run.
pub struct Ctx {
    /// The workspace root.
    pub root: PathBuf,
    /// Cargo's target directory (honours `CARGO_TARGET_DIR`, from `cargo metadata`).
    pub target_dir: PathBuf,
    /// The short version: small targets, few iterations.
    pub quick: bool,
}

impl Ctx {
    pub fn new(quick: bool) -> anyhow::Result<Ctx> {
        let root = build::workspace_root();
        let target_dir = build::target_dir(&root)?;
        Ok(Ctx {
            root,
            target_dir,
            quick,
        })
    }

    /// Builds these packages in release mode (with their binaries) and returns nothing; use
    /// [`Ctx::bin`] for the paths.
    pub fn build_release(&self, packages: &[&str]) -> anyhow::Result<()> {
        build::cargo_build_release(&self.root, packages)
    }

    /// The path of a release binary built by [`Ctx::build_release`].
    pub fn bin(&self, name: &str) -> PathBuf {
        self.target_dir.join("release").join(name)
    }

    /// A fresh scratch directory under the target directory, removed when dropped.
    pub fn scratch(&self, what: &str) -> anyhow::Result<Scratch> {
        Scratch::new(&self.target_dir.join("xtask-scratch"), what)
    }
}

/// A scratch directory that is removed (with everything in it) when dropped.
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
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create scratch directory {}", path.display()))?;
        Ok(Scratch { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The structured result of one step: the assignment's questions with the answers computed from
/// this run, the evidence behind them, and the numbers a picture can be drawn from.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: u8,
    pub title: String,
    pub answers: Vec<Answer>,
    pub evidence: Vec<Evidence>,
    /// Step-specific numbers for pictures; the shape of each step's is documented in its module.
    pub data: serde_json::Value,
}

/// One question of the assignment and the answer this run's measurements give.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub question: String,
    pub answer: String,
}

/// A block of raw evidence (strace lines, tags, maps, a table), shown preformatted.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub title: String,
    pub text: String,
}
