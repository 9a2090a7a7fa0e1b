//! `cargo xtask install [--root DIR]`: builds the lab in release mode and installs it as
//! `DIR/bin/mmap-lab`, with every program it runs in `DIR/lib/mmap-lab/` (malloc-probe,
//! persist, disktable, foo, bar and the `libfoobar.so` their RUNPATH `$ORIGIN` finds beside
//! them, race, channel). The installed `mmap-lab` finds them beside its own executable
//! ([`crate::build::Layout::Installed`]), never through `PATH`, and needs neither cargo nor
//! the source tree to run. DIR defaults as `cargo install`'s root does: `$CARGO_INSTALL_ROOT`,
//! else `$CARGO_HOME`, else `~/.cargo`; `--debug` installs the dev profile's builds, as
//! `cargo install --debug` does (quick to make where `cargo test` has built them already).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::build::{self, Layout, Profile, INSTALLED_NAME, PROGRAMS, PROGRAMS_DIR};
use crate::say;

/// Builds (in this profile) and installs under `root` (or the default root).
pub fn run(root: Option<PathBuf>, profile: Profile) -> anyhow::Result<()> {
    let layout = Layout::detect()?;
    let Layout::Workspace {
        root: source,
        target_dir,
    } = &layout
    else {
        bail!(
            "an installed mmap-lab cannot rebuild itself: run `cargo xtask install` in the \
             mmap-lab repository"
        );
    };
    let prefix = match root {
        Some(dir) => dir,
        None => default_root()?,
    };
    let packages: Vec<&str> = std::iter::once("xtask")
        .chain(PROGRAMS.iter().map(|(package, _)| *package))
        .collect();
    build::cargo_build(source, &packages, profile)?;
    let built = target_dir.join(profile.dir());
    let programs = prefix.join(PROGRAMS_DIR);
    let bin = prefix.join("bin");
    for dir in [&programs, &bin] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for file in PROGRAMS.iter().flat_map(|(_, files)| files.iter()) {
        install_file(&built.join(file), &programs.join(file))?;
    }
    // Last: an mmap-lab never stands without its programs.
    let exe = bin.join(INSTALLED_NAME);
    install_file(&built.join("xtask"), &exe)?;
    say!(
        "installed {} (the programs it runs are in {})",
        exe.display(),
        programs.display()
    );
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| same_dir(&dir, &bin)));
    if !on_path {
        say!(
            "{} is not on PATH: add it (export PATH=\"{}:$PATH\") or run {} by its path",
            bin.display(),
            bin.display(),
            exe.display()
        );
    }
    Ok(())
}

/// `cargo install`'s default root: `$CARGO_INSTALL_ROOT`, `$CARGO_HOME`, `~/.cargo`.
fn default_root() -> anyhow::Result<PathBuf> {
    let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = nonempty("CARGO_INSTALL_ROOT").or_else(|| nonempty("CARGO_HOME")) {
        return std::path::absolute(&dir)
            .with_context(|| format!("cannot resolve {}", Path::new(&dir).display()));
    }
    let home = nonempty("HOME").context("HOME is not set: give the install root with --root")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// Copies `from` to `to` through a temporary name in `to`'s directory and a rename, so a
/// running `mmap-lab` or program is replaced whole, never half-written.
fn install_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    if !from.is_file() {
        bail!("{} was not built", from.display());
    }
    let name = to.file_name().context("an install path has no file name")?;
    let tmp = to.with_file_name(format!(
        ".{}.installing-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let copied = std::fs::copy(from, &tmp)
        .with_context(|| format!("cannot copy {} to {}", from.display(), tmp.display()))
        .and_then(|_| {
            std::fs::rename(&tmp, to).with_context(|| format!("cannot install {}", to.display()))
        });
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
