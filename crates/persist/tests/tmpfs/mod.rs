//! A small tmpfs mounted on a fresh directory, for full-disk tests (needs root), and the skip
//! notice for when it cannot be mounted.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped (also when the test
/// fails: the guard's drop runs while the panic unwinds), then the directory removed.
pub struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::Builder::new()
            .prefix("persist-test-tmpfs-")
            .tempdir()
            .map_err(|e| format!("cannot make a directory to mount on: {e}"))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Skips `test` with a one-line notice written straight to stderr (libtest captures
/// `eprintln!` of passing tests, not writes to the handle), or fails it under `CI=true`, where
/// everything must run.
pub fn skip_unless_ci(test: &str, why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} must run under CI=true but cannot: {why}"
    );
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}
