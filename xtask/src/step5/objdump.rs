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
/// the instructions that bear on a racer as the check reads them (in a loop? on total? the C
/// library's?).
pub fn locked_instructions(binary: &Path) -> (Listing, Option<Vec<LockedInsn>>) {
    match objdump(binary) {
        Ok(text) => (
            Listing::Text {
                binary: binary.to_path_buf(),
                text: locked_in(&text),
            },
            Some(race_instructions(&text)),
        ),
        Err(reason) => (Listing::Unavailable { reason }, None),
    }
}

/// [`disasm::locked_instructions`] of `objdump`'s text, the toolchain's runtime marked. In a
/// Rust binary (it carries std's `lang_start`), every function but `main` and those of the
/// program's own crate ([`disasm::rust_program_crate`]: std, core and alloc are linked into
/// every Rust binary, their mutexes and reference counts locked). In a C or C++ one
/// statically linked (it defines `__libc_start_main`), every function whose name
/// `nm` finds defined in the C library's archive (`cc -print-file-name=libc.a`). A dynamic
/// binary carries none of libc's code. When the archive cannot be read, a static binary's
/// functions are all marked library except `main` and those whose names libc does not use
/// cannot be told apart: then only `main` counts as its own.
pub fn race_instructions(objdump: &str) -> Vec<LockedInsn> {
    if let Some(own) = disasm::rust_program_crate(objdump) {
        return disasm::locked_instructions(objdump, &|f| {
            disasm::rust_runtime_function(f, own.as_deref())
        });
    }
    if !objdump.lines().any(|l| l.ends_with("<__libc_start_main>:")) {
        return disasm::locked_instructions(objdump, &|_| false);
    }
    match c_library_symbols() {
        Some(libc) => disasm::locked_instructions(objdump, &|f| libc.contains(f)),
        None => disasm::locked_instructions(objdump, &|f| f != "main"),
    }
}

/// The functions libc.a, libgcc.a and libgcc_eh.a define (`nm --defined-only`), or `None`
/// without cc, nm or libc.a.
fn c_library_symbols() -> Option<std::collections::HashSet<String>> {
    let quiet = |cmd: &mut Command| -> Option<String> {
        let out = cmd
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let mut names = std::collections::HashSet::new();
    // libc.a, and the compiler's runtime (the unwinder a static binary carries is libgcc_eh's).
    for (i, name) in ["libc.a", "libgcc.a", "libgcc_eh.a"].iter().enumerate() {
        let archive = quiet(Command::new("cc").arg(format!("-print-file-name={name}")))?;
        let archive = archive.trim();
        let listing = Path::new(archive)
            .is_absolute()
            .then(|| quiet(Command::new("nm").args(["--defined-only", archive])))
            .flatten();
        match listing {
            Some(listing) => names.extend(listing.lines().filter_map(|l| {
                let mut f = l.split_whitespace();
                let (_, kind, name) = (f.next()?, f.next()?, f.next()?);
                matches!(kind, "T" | "t" | "W" | "w" | "i").then(|| name.to_string())
            })),
            // Without libc.a nothing can be told apart.
            None if i == 0 => return None,
            None => {}
        }
    }
    Some(names)
}

/// The size of a line of the instruction cache, the unit a loop's placement is judged in.
pub const CODE_LINE: u64 = 64;

/// Where a function and its loop lie in a binary (addresses from `objdump -d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopPlacement {
    /// The function's first byte.
    pub function: u64,
    /// The loop's first byte (the target of its backward jump).
    pub start: u64,
    /// One past the loop's last byte (the instruction after its backward jump).
    pub end: u64,
}

impl LoopPlacement {
    /// The loop's length in bytes.
    pub fn bytes(&self) -> u64 {
        self.end - self.start
    }

    /// How many [`CODE_LINE`]-byte lines the loop touches.
    pub fn lines(&self) -> u64 {
        (self.end - 1) / CODE_LINE - self.start / CODE_LINE + 1
    }

    /// `loop 0x65f10..0x65f21, 17 bytes, 1 64-byte line (function at 0x65f00)`.
    pub fn describe(&self) -> String {
        format!(
            "loop {:#x}..{:#x}, {} bytes, {} {CODE_LINE}-byte line{} (function at {:#x}, \
             {CODE_LINE}-byte aligned: {})",
            self.start,
            self.end,
            self.bytes(),
            self.lines(),
            if self.lines() == 1 { "" } else { "s" },
            self.function,
            if self.function % CODE_LINE == 0 {
                "yes"
            } else {
                "no"
            },
        )
    }
}

/// The placement of the loop of one function's listing ([`functions`]): the loop is read as
/// [`disasm::loop_body`] reads it; `None` when the listing has no loop, or its backward jump
/// is the listing's last instruction (its end is then unknown without the raw bytes).
pub fn loop_placement(listing: &str) -> Option<LoopPlacement> {
    let head = listing.lines().next()?;
    let function = u64::from_str_radix(head.split_whitespace().next()?, 16).ok()?;
    let insns = disasm::parse(listing);
    let body = disasm::loop_body(&insns)?;
    let last = body.last()?.address;
    let end = insns.iter().find(|i| i.address > last)?.address;
    Some(LoopPlacement {
        function,
        start: body.first()?.address,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust racy loop placed as on the Intel machine (a function 16 bytes but not 64
    /// bytes aligned, its 17-byte loop across the line at 0x5aec0), and as it lies when the
    /// function is 64-byte aligned.
    #[test]
    fn a_loop_across_a_line_boundary_touches_two_lines() {
        let split = "000000000005aea0 <_ZN4race9race_racy17h0E>:
   5aea0:\tmov    (%rdi),%rax
   5aea3:\tcmp    %rdx,%rax
   5aea6:\tjge    5aec1 <_ZN4race9race_racy17h0E+0x21>
   5aea8:\tnopl   0x0(%rax,%rax,1)
   5aeb0:\tinc    %rax
   5aeb3:\tmov    %rax,(%rdi)
   5aeb6:\tincq   (%rsi)
   5aeb9:\tmov    (%rdi),%rax
   5aebc:\tcmp    %rdx,%rax
   5aebf:\tjl     5aeb0 <_ZN4race9race_racy17h0E+0x10>
   5aec1:\tret";
        let p = loop_placement(split).unwrap();
        assert_eq!((p.function, p.start, p.end), (0x5aea0, 0x5aeb0, 0x5aec1));
        assert_eq!((p.bytes(), p.lines()), (17, 2));
        assert!(p
            .describe()
            .contains("2 64-byte lines (function at 0x5aea0, 64-byte aligned: no)"));
        let aligned = "0000000000065f00 <_ZN4race9race_racy17h0E>:
   65f00:\tmov    (%rdi),%rax
   65f03:\tcmp    %rdx,%rax
   65f06:\tjge    65f21 <_ZN4race9race_racy17h0E+0x21>
   65f08:\tnopl   0x0(%rax,%rax,1)
   65f10:\tinc    %rax
   65f13:\tmov    %rax,(%rdi)
   65f16:\tincq   (%rsi)
   65f19:\tmov    (%rdi),%rax
   65f1c:\tcmp    %rdx,%rax
   65f1f:\tjl     65f10 <_ZN4race9race_racy17h0E+0x10>
   65f21:\tret";
        let p = loop_placement(aligned).unwrap();
        assert_eq!((p.function, p.start, p.end), (0x65f00, 0x65f10, 0x65f21));
        assert_eq!((p.bytes(), p.lines()), (17, 1));
        assert!(p
            .describe()
            .contains("1 64-byte line (function at 0x65f00, 64-byte aligned: yes)"));
    }

    /// No backward jump, or one with nothing after it: no placement rather than a guess.
    #[test]
    fn no_loop_or_no_end_gives_no_placement() {
        let straight = "0000000000001000 <f>:\n    1000:\tmov    (%rdi),%rax\n    1003:\tret";
        assert_eq!(loop_placement(straight), None);
        let last = "0000000000001000 <f>:\n    1000:\tincq   (%rsi)\n    1003:\tjmp    1000 <f>";
        assert_eq!(loop_placement(last), None);
    }
}
