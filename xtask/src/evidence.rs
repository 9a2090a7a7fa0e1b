//! Recorded evidence: `--save-evidence DIR` writes a step's Evidence as `DIR/stepN.json` (with
//! the step and a format version), `--evidence DIR` reads it back so the step is explained
//! again without running anything.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The file recorded evidence of step `n` lives in.
pub fn file(dir: &Path, n: u8) -> PathBuf {
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

pub fn save<E: Serialize>(dir: &Path, n: u8, evidence: &E) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create evidence directory {}", dir.display()))?;
    let path = file(dir, n);
    let text = serde_json::to_string_pretty(&Recorded {
        step: n,
        version: EVIDENCE_VERSION,
        evidence,
    })?;
    std::fs::write(&path, text + "\n")
        .with_context(|| format!("cannot write evidence {}", path.display()))
}

/// Reads recorded evidence of step `n` from `dir`; a missing or odd field is an error naming it.
pub fn load<E: DeserializeOwned>(dir: &Path, n: u8) -> anyhow::Result<E> {
    let path = file(dir, n);
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The recorded evidence `tests/evidence/NAME/stepN.json`.
    pub fn fixture<E: DeserializeOwned>(name: &str, n: u8) -> E {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/evidence")
            .join(name);
        load(&dir, n).unwrap_or_else(|e| panic!("fixture {name}: {e:#}"))
    }
}
