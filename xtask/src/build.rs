//! Where the lab's programs come from, and building them.
//!
//! Two layouts ([`Layout`]): `cargo xtask` builds the programs with cargo and finds them in the
//! target directory's `release/` (`cargo metadata` knows where that is, so `CARGO_TARGET_DIR`
//! and `build.target-dir` are honoured); an installed `mmap-lab` (`cargo xtask install`) finds
//! them in `PREFIX/lib/mmap-lab/`, beside its own executable `PREFIX/bin/mmap-lab`, and never
//! runs cargo or reads the source tree. Neither looks a program up through `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// The name of the installed driver (`PREFIX/bin/mmap-lab`); an executable of this name runs
/// as an installed lab.
pub const INSTALLED_NAME: &str = "mmap-lab";

/// Where, under the install prefix, the programs the lab runs are kept (not `bin/`: names such
/// as `foo`, `bar` and `race` do not belong on anyone's `PATH`).
pub const PROGRAMS_DIR: &str = "lib/mmap-lab";

/// Every package whose programs the lab runs, with the files each puts in `release/`.
/// `foo` and `bar` find `libfoobar.so` beside them through their RUNPATH (`$ORIGIN`).
pub const PROGRAMS: &[(&str, &[&str])] = &[
    ("malloc-probe", &["malloc-probe"]),
    ("persist", &["persist", "disktable"]),
    ("foobar", &["libfoobar.so"]),
    ("foo", &["foo"]),
    ("bar", &["bar"]),
    ("race", &["race"]),
    ("channel", &["channel"]),
];

/// Where the programs are, and where the lab may write its own files.
#[derive(Debug, Clone)]
pub enum Layout {
    /// `cargo xtask`: the workspace, and cargo's target directory.
    Workspace { root: PathBuf, target_dir: PathBuf },
    /// `mmap-lab`: the programs' directory (`PREFIX/lib/mmap-lab`) and a work directory for
    /// scratch files and the report (`$XDG_CACHE_HOME/mmap-lab`, or `~/.cache/mmap-lab`).
    Installed {
        programs: PathBuf,
        work_dir: PathBuf,
    },
}

impl Layout {
    /// The layout this executable runs in: installed when its name is [`INSTALLED_NAME`].
    pub fn detect() -> anyhow::Result<Layout> {
        if let Some(programs) = installed_programs()? {
            return Ok(Layout::Installed {
                programs,
                work_dir: cache_dir()?,
            });
        }
        let root = workspace_root();
        let target_dir = target_dir(&root)?;
        Ok(Layout::Workspace { root, target_dir })
    }

    /// Where the lab writes its own files (scratch directories, the report): cargo's target
    /// directory, or an installed lab's work directory.
    pub fn work_dir(&self) -> &Path {
        match self {
            Layout::Workspace { target_dir, .. } => target_dir,
            Layout::Installed { work_dir, .. } => work_dir,
        }
    }

    /// The path of one of the lab's programs (a file named in [`PROGRAMS`]).
    pub fn program(&self, name: &str) -> PathBuf {
        match self {
            Layout::Workspace { target_dir, .. } => target_dir.join("release").join(name),
            Layout::Installed { programs, .. } => programs.join(name),
        }
    }

    /// Makes these packages' programs ready: `cargo build --release` in the workspace; in an
    /// installed lab, a check that the install holds them.
    pub fn build_release(&self, packages: &[&str]) -> anyhow::Result<()> {
        match self {
            Layout::Workspace { root, .. } => cargo_build_release(root, packages),
            Layout::Installed { programs, .. } => {
                for file in packages.iter().flat_map(|p| files_of(p)) {
                    if !programs.join(file).is_file() {
                        bail!(
                            "{} is missing from this installation; reinstall with \
                             `cargo xtask install` in the mmap-lab repository",
                            programs.join(file).display()
                        );
                    }
                }
                Ok(())
            }
        }
    }

    /// The source tree, for the tasks that build from it (the benchmarks).
    pub fn source_root(&self, task: &str) -> anyhow::Result<&Path> {
        match self {
            Layout::Workspace { root, .. } => Ok(root),
            Layout::Installed { .. } => bail!(
                "{task} builds from the source tree: run `cargo xtask {task}` in the mmap-lab \
                 repository"
            ),
        }
    }
}

/// The files a package puts in `release/` (its name, for a package not in [`PROGRAMS`]).
fn files_of(package: &str) -> Vec<&str> {
    PROGRAMS
        .iter()
        .find(|(p, _)| *p == package)
        .map_or_else(|| vec![package], |(_, files)| files.to_vec())
}

/// `PREFIX/lib/mmap-lab` when this executable is `PREFIX/bin/mmap-lab`.
fn installed_programs() -> anyhow::Result<Option<PathBuf>> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    if exe.file_name() != Some(std::ffi::OsStr::new(INSTALLED_NAME)) {
        return Ok(None);
    }
    let prefix = exe.parent().and_then(Path::parent).with_context(|| {
        format!(
            "{} is not in a PREFIX/bin directory; install it with `cargo xtask install`",
            exe.display()
        )
    })?;
    let programs = prefix.join(PROGRAMS_DIR);
    if !programs.is_dir() {
        bail!(
            "{} has no programs beside it ({} is missing); reinstall with `cargo xtask install`",
            exe.display(),
            programs.display()
        );
    }
    Ok(Some(programs))
}

/// `$XDG_CACHE_HOME/mmap-lab`, or `$HOME/.cache/mmap-lab`: on a real file system (not /tmp,
/// often tmpfs, where the page cache cannot be dropped), the user's own.
fn cache_dir() -> anyhow::Result<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").and_then(absolute) {
        return Ok(dir.join(INSTALLED_NAME));
    }
    let home = std::env::var_os("HOME")
        .and_then(absolute)
        .context("neither XDG_CACHE_HOME nor HOME names a directory for mmap-lab's files")?;
    Ok(home.join(".cache").join(INSTALLED_NAME))
}

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
    cargo_build(root, packages, Profile::Release)
}

/// A cargo build profile, and the directory under the target directory it builds into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Release,
    /// `dev` (`cargo install --debug`'s).
    Debug,
}

impl Profile {
    /// The directory under the target directory: `release` or `debug`.
    pub fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

/// `cargo build [--release] -p P...`: builds these packages' binaries and libraries.
pub fn cargo_build(root: &Path, packages: &[&str], profile: Profile) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "--quiet"]).current_dir(root);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    for p in packages {
        cmd.args(["-p", p]);
    }
    crate::out::progress(&format!(
        "building {} ({})",
        packages.join(", "),
        profile.dir()
    ));
    let status = cmd.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!(
            "cargo build ({}) -p {} failed",
            profile.dir(),
            packages.join(" -p ")
        );
    }
    Ok(())
}
