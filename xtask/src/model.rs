//! The shape every step has: `measure(&Ctx) -> Evidence`, `analyze(&Evidence) -> Findings`,
//! `explain(&Findings, &Evidence) -> Explained`, with a type at each boundary ([`Step`]).
//!
//! - *measure* runs programs, traces them and snapshots /proc; everything the answers rest on is
//!   in the step's `Evidence`, which is serialisable: `--save-evidence DIR` writes it as
//!   `DIR/stepN.json`, `--evidence DIR` reads it back and runs nothing.
//! - *analyze* is pure: typed facts (bits, thresholds, which mmap holds which symbol, shared
//!   frames, lost updates). Unit tests assert Findings on recorded Evidence.
//! - *explain* turns Findings (and the Evidence they came from) into the narrative
//!   ([`Block`]s: text, evidence excerpts, the assignment's questions with their answers) and the
//!   step's pictures. The terminal ([`crate::out::render`]) and `cargo xtask report` render the
//!   same [`StepReport`]; `--json` prints it, with its `findings` object.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::build;
use crate::report::charts::Picture;

/// One step of the lab, in three parts with typed boundaries.
pub trait Step {
    /// 1 to 6.
    const NUMBER: u8;
    /// The assignment's name for the step.
    const TITLE: &'static str;
    /// Everything read from the run.
    type Evidence: Serialize + DeserializeOwned;
    /// What the evidence establishes.
    type Findings: Serialize;
    /// Runs, traces and reads the machine. Progress goes to stderr ([`crate::out::progress`]).
    fn measure(ctx: &Ctx) -> anyhow::Result<Self::Evidence>;
    /// Decides, from the evidence alone. No I/O.
    fn analyze(evidence: &Self::Evidence) -> anyhow::Result<Self::Findings>;
    /// The narrative and the pictures.
    fn explain(findings: &Self::Findings, evidence: &Self::Evidence) -> Explained;
}

/// What [`Step::explain`] returns.
pub struct Explained {
    pub blocks: Vec<Block>,
    pub pictures: Vec<Picture>,
}

/// Runs a step: measures (or loads recorded evidence), saves the evidence if asked, analyzes
/// and explains.
pub fn run<S: Step>(ctx: &Ctx) -> anyhow::Result<StepReport> {
    let evidence: S::Evidence = match &ctx.replay {
        Some(dir) => load_evidence(dir, S::NUMBER)?,
        None => S::measure(ctx)?,
    };
    if let Some(dir) = &ctx.save {
        save_evidence(dir, S::NUMBER, &evidence)?;
    }
    let findings = S::analyze(&evidence)?;
    let explained = S::explain(&findings, &evidence);
    Ok(StepReport {
        step: S::NUMBER,
        title: S::TITLE.to_string(),
        blocks: explained.blocks,
        findings: serde_json::to_value(&findings).context("cannot serialise the findings")?,
        pictures: explained.pictures,
    })
}

/// The file recorded evidence of step `n` lives in.
pub fn evidence_file(dir: &Path, n: u8) -> PathBuf {
    dir.join(format!("step{n}.json"))
}

/// What `--save-evidence` writes: the step, a format version, and the step's evidence.
#[derive(Serialize, Deserialize)]
struct Recorded<E> {
    step: u8,
    version: u32,
    evidence: E,
}

const EVIDENCE_VERSION: u32 = 1;

fn save_evidence<E: Serialize>(dir: &Path, n: u8, evidence: &E) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create evidence directory {}", dir.display()))?;
    let path = evidence_file(dir, n);
    let text = serde_json::to_string_pretty(&Recorded {
        step: n,
        version: EVIDENCE_VERSION,
        evidence,
    })?;
    std::fs::write(&path, text + "\n")
        .with_context(|| format!("cannot write evidence {}", path.display()))
}

/// Reads recorded evidence of step `n` from `dir`; a missing or odd field is an error naming it.
pub fn load_evidence<E: DeserializeOwned>(dir: &Path, n: u8) -> anyhow::Result<E> {
    let path = evidence_file(dir, n);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read recorded evidence {}", path.display()))?;
    let recorded: Recorded<E> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not step {n}'s evidence", path.display()))?;
    if recorded.step != n || recorded.version != EVIDENCE_VERSION {
        anyhow::bail!(
            "{} holds step {} evidence version {}, not step {n} version {EVIDENCE_VERSION}",
            path.display(),
            recorded.step,
            recorded.version
        );
    }
    Ok(recorded.evidence)
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
}

/// What a step needs: where the workspace and the binaries are, how long to run, and where
/// evidence is saved to or replayed from.
pub struct Ctx {
    /// The workspace root.
    pub root: PathBuf,
    /// Cargo's target directory (honours `CARGO_TARGET_DIR`, from `cargo metadata`).
    pub target_dir: PathBuf,
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
        let root = build::workspace_root();
        let target_dir = build::target_dir(&root)?;
        Ok(Ctx {
            root,
            target_dir,
            quick,
            save: None,
            replay: None,
            options: StepOptions::default(),
        })
    }

    /// Builds these packages in release mode (with their binaries); use [`Ctx::bin`] for paths.
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

/// The result of one step, rendered by the terminal and by the report; `--json` prints it.
#[derive(Serialize)]
pub struct StepReport {
    pub step: u8,
    pub title: String,
    /// The narrative, in order.
    pub blocks: Vec<Block>,
    /// The step's typed findings, serialised.
    pub findings: serde_json::Value,
    /// Drawn from typed picture data by the step's `report::charts` module.
    #[serde(skip)]
    pub pictures: Vec<Picture>,
}

impl StepReport {
    /// The assignment's questions with this run's answers.
    pub fn answers(&self) -> impl Iterator<Item = &Answer> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Answer(a) => Some(a),
            _ => None,
        })
    }

    /// The raw evidence excerpts.
    pub fn evidence(&self) -> impl Iterator<Item = &Evidence> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Evidence(e) => Some(e),
            _ => None,
        })
    }
}

/// One piece of a step's narrative.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    /// A sub-heading.
    Heading { title: String },
    /// Prose (may span lines); computed numbers are formatted into it.
    Text { text: String },
    /// A preformatted excerpt of raw evidence (strace lines, a table, maps lines).
    Evidence(Evidence),
    /// One question of the assignment and this run's answer.
    Answer(Answer),
}

impl Block {
    pub fn heading(title: impl Into<String>) -> Block {
        Block::Heading {
            title: title.into(),
        }
    }

    pub fn text(text: impl Into<String>) -> Block {
        Block::Text { text: text.into() }
    }

    pub fn evidence(title: impl Into<String>, text: impl Into<String>) -> Block {
        Block::Evidence(Evidence {
            title: title.into(),
            text: text.into(),
        })
    }

    pub fn answer(question: impl Into<String>, answer: impl Into<String>) -> Block {
        Block::Answer(Answer {
            question: question.into(),
            answer: answer.into(),
        })
    }
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
