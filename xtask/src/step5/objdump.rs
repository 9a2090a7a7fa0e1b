//! Capturing the race loops as the CPU executes them: `objdump -d` of a binary. Reading the
//! listing is `lab_analysis::step5::disasm`'s.

use std::path::Path;
use std::process::Command;

use lab_analysis::step5::disasm::{self, function_in, locked_in, LockedInsn};
use lab_analysis::step5::Listing;

/// `objdump -d --no-show-raw-insn BINARY`, or why it cannot be had.
pub(crate) fn objdump(binary: &Path) -> Result<String, String> {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(binary)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "objdump is not installed (apt-get install binutils)".to_string()
            } else {
                format!("cannot run objdump: {e}")
            }
        })?;
    if !out.status.success() {
        return Err(format!(
            "objdump -d {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The listings of the first functions whose symbol contains each of `names` (e.g. `race_racy`
/// in `_ZN4race9race_racy17h…E`), padding left out.
pub fn functions(binary: &Path, names: &[&str]) -> Vec<Listing> {
    let text = match objdump(binary) {
        Ok(t) => t,
        Err(reason) => {
            return names
                .iter()
                .map(|_| Listing::Unavailable {
                    reason: reason.clone(),
                })
                .collect();
        }
    };
    names
        .iter()
        .map(|name| match function_in(&text, name) {
            Some(text) => Listing::Text {
                binary: binary.to_path_buf(),
                text,
            },
            None => Listing::Unavailable {
                reason: format!("objdump shows no function {name} in {}", binary.display()),
            },
        })
        .collect()
}

/// Every lock-prefixed instruction of `binary`, each after its function's header line, and
/// the same instructions read as the check reads them (in a loop? on total?).
pub fn locked_instructions(binary: &Path) -> (Listing, Option<Vec<LockedInsn>>) {
    match objdump(binary) {
        Ok(text) => (
            Listing::Text {
                binary: binary.to_path_buf(),
                text: locked_in(&text),
            },
            Some(disasm::locked_instructions(&text)),
        ),
        Err(reason) => (Listing::Unavailable { reason }, None),
    }
}
