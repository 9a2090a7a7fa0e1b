//! The lab's analysis, as a library: for every step, the typed [`Step::Evidence`] a run
//! recorded, the pure [`Step::analyze`] (Evidence → Findings), [`Step::explain`] (Findings
//! → the narrative: [`Block`]s of text, evidence excerpts and the assignment's answers) and
//! [`Step::pictures`] (Findings → the typed data the pictures are drawn from).
//!
//! Data flows one way: `xtask` measures (runs the programs, traces them, reads /proc) into an
//! Evidence, this crate analyzes and explains it, and `xtask` renders the [`StepReport`] (the
//! terminal, the HTML/Markdown report) and draws the pictures from their data. Nothing here
//! runs a program or reads a file: an Evidence recorded on one machine is explained the same
//! on another. The evidence readers (strace, /proc, ELF) are `lab-trace`'s; the programs'
//! `--json` documents are their own crates' types.
//!
//! Modules: one per step (`step1` … `step6`), `disktable` (what steps 2 and 3 share: the
//! course's table, faults, someone else's program), `report` (the narrative's types).

#![forbid(unsafe_code)]

pub mod check;
pub mod disktable;
#[cfg(test)]
mod glance_tests;
pub mod glossary;
pub mod report;
pub mod step1;
pub mod step2;
pub mod step3;
pub mod step4;
pub mod step5;
pub mod step6;
#[cfg(test)]
mod text_tests;
pub mod verdict;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use report::{at_a_glance, Answer, Block, Excerpt, Glance, StepReport};

/// One step of the lab, after its measurement: the typed evidence, what it establishes and
/// how that reads.
pub trait Step {
    /// 1 to 6.
    const NUMBER: u8;
    /// The assignment's name for the step.
    const TITLE: &'static str;
    /// Everything read from the run (serialisable: recorded runs are replayed).
    type Evidence: Serialize + DeserializeOwned;
    /// What the evidence establishes (`--json`'s `findings`).
    type Findings: Serialize;
    /// Decides, from the evidence alone. No I/O.
    fn analyze(evidence: &Self::Evidence) -> anyhow::Result<Self::Findings>;
    /// The typed data the step's pictures are drawn from (xtask draws them; nothing here knows
    /// how a picture looks).
    type Pictures;
    /// The narrative: text, evidence excerpts, the assignment's questions with their answers.
    fn explain(findings: &Self::Findings, evidence: &Self::Evidence) -> Vec<Block>;
    /// The picture data, built from the findings (and the evidence they came from).
    fn pictures(findings: &Self::Findings, evidence: &Self::Evidence) -> Self::Pictures;
    /// This step's lines of `== Answers at a glance`, from its findings (none by default: step
    /// 6 answers no course question).
    fn glance(_findings: &Self::Findings) -> Vec<Glance> {
        Vec::new()
    }
}

/// A step analyzed and explained: its findings, its report and the data of its pictures.
pub struct Explained<S: Step> {
    pub findings: S::Findings,
    pub report: StepReport,
    pub pictures: S::Pictures,
}

/// Analyzes and explains one step's evidence: its findings, its report and its picture data.
pub fn report<S: Step>(evidence: &S::Evidence) -> anyhow::Result<Explained<S>> {
    let findings = S::analyze(evidence)?;
    let blocks = answers_first(S::explain(&findings, evidence));
    let glance = S::glance(&findings);
    let pictures = S::pictures(&findings, evidence);
    let report = StepReport {
        step: S::NUMBER,
        title: S::TITLE.to_string(),
        blocks,
        findings: serde_json::to_value(&findings)
            .map_err(|e| anyhow::anyhow!("cannot serialise the findings: {e}"))?,
        glance,
    };
    Ok(Explained {
        findings,
        report,
        pictures,
    })
}

/// The narrative in the order a student reads it: what comes before the first heading (the
/// setting, a busy machine) first, then every answer, then the evidence that decides them.
/// Headings left with nothing under them (an "Answers" heading whose answers moved up) go.
pub fn answers_first(blocks: Vec<Block>) -> Vec<Block> {
    let lead = blocks
        .iter()
        .position(|b| matches!(b, Block::Heading { .. }))
        .unwrap_or(blocks.len());
    let (mut out, mut answers, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for (i, b) in blocks.into_iter().enumerate() {
        match b {
            Block::Answer(_) => answers.push(b),
            _ if i < lead => out.push(b),
            _ => rest.push(b),
        }
    }
    if !answers.is_empty() {
        out.push(Block::heading("Answers"));
        out.append(&mut answers);
    }
    let n = rest.len();
    for i in 0..n {
        let empty_heading = matches!(rest[i], Block::Heading { .. })
            && (i + 1 == n || matches!(rest[i + 1], Block::Heading { .. }));
        if !empty_heading {
            out.push(rest[i].clone());
        }
    }
    out
}

/// The recorded evidence the tests read: `xtask/tests/evidence/NAME/stepN.json`, each written
/// by `cargo xtask run-step N --save-evidence DIR` (a step, a version, the evidence).
/// A figure for a sentence: the value, or "unknown" when it was not measured (never a bare `?`).
pub(crate) fn known<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "unknown".to_string(), |v| v.to_string())
}

#[cfg(test)]
pub(crate) mod testkit {
    use std::path::Path;

    /// The xtask crate's directory, where the recordings live.
    pub const XTASK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../xtask");

    /// Step `n`'s evidence recorded in `dir`.
    pub fn load<E: serde::de::DeserializeOwned>(dir: &Path, n: u8) -> anyhow::Result<E> {
        let path = dir.join(format!("step{n}.json"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut doc: serde_json::Value = serde_json::from_str(&text)?;
        anyhow::ensure!(
            doc["step"] == n && doc["version"] == 1,
            "{}: not step {n}",
            path.display()
        );
        Ok(serde_json::from_value(doc["evidence"].take())?)
    }
}
