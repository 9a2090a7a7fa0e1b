//! Finding the workspace and cargo's target directory, and building release binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo binary that runs us (`$CARGO`), or `cargo`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Cargo's target directory, as `cargo metadata` reports it (so `CARGO_TARGET_DIR` and
/// `build.target-dir` are honoured).
pub fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let output = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed invalid JSON")?;
    let dir = meta["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// `cargo build --release -p P...`: builds these packages' binaries and libraries.
pub fn cargo_build_release(root: &Path, packages: &[&str]) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--quiet"])
        .current_dir(root);
    for p in packages {
        cmd.args(["-p", p]);
    }
    crate::out::progress(&format!("building {} (release)", packages.join(", ")));
    let status = cmd.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p {} failed", packages.join(" -p "));
    }
    Ok(())
}
