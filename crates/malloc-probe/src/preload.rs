//! Checking an `--allocator PATH` before it is preloaded: the dynamic loader only warns about
//! an `LD_PRELOAD` entry it cannot use (missing, not ELF, another class or machine) and runs the
//! program with its own malloc, which would measure glibc while claiming another allocator.
//! `malloc-probe --allocator` and `cargo xtask run-step 1 --allocator` both refuse such a path
//! up front, as a usage error (exit status 2).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use lab_trace::elf::PreloadKind;

/// Why `--allocator PATH` cannot be preloaded, checked before running anything (a usage error:
/// the loader itself would only warn and run the program with its own malloc).
pub fn check_shared_object(path: &Path) -> Result<PathBuf, String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("--allocator {shown} does not exist"))
        }
        Err(e) => return Err(format!("--allocator {shown} cannot be read: {e}")),
    };
    if meta.is_dir() {
        return Err(format!(
            "--allocator {shown} is a directory, not a shared object (.so)"
        ));
    }
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(path)
        .and_then(|f| f.take(64).read_to_end(&mut head))
        .map_err(|e| format!("--allocator {shown} cannot be read: {e}"))?;
    match lab_trace::elf::preload_kind(&head) {
        PreloadKind::Preloadable => {}
        PreloadKind::NotElf => {
            return Err(format!(
                "--allocator {shown} is not an ELF file, so not a shared object (.so)"
            ))
        }
        PreloadKind::NotSharedObject => {
            return Err(format!(
                "--allocator {shown} is an ELF file but not a 64-bit little-endian shared object"
            ))
        }
        PreloadKind::OtherMachine(m) => {
            return Err(format!(
                "--allocator {shown} is built for another machine (ELF e_machine {m})"
            ))
        }
    }
    std::fs::canonicalize(path).map_err(|e| format!("--allocator {shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_native_shared_object_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not an ELF file at all\n").unwrap();
        let e = check_shared_object(&text).unwrap_err();
        assert!(e.contains("not an ELF file"), "{e}");
        let e = check_shared_object(dir.path()).unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
        let e = check_shared_object(&dir.path().join("absent.so")).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        let exe = std::env::current_exe().unwrap();
        // A test binary is an ELF executable of this machine; a PIE one is ET_DYN like a .so.
        let r = check_shared_object(&exe);
        assert!(
            r.is_ok() || r.as_ref().unwrap_err().contains("not a 64-bit"),
            "{r:?}"
        );
    }
}
