//! The race loops as the CPU executes them: the pure reading of `objdump -d`'s listing (xtask
//! captures it): the loop (from the last backward jump), its locked instructions, and
//! its accesses to `total` (the loops' first argument, `%rdi` in the x86-64 System V ABI).

use serde::{Deserialize, Serialize};

/// The listing of the first function whose symbol contains `name`, from objdump's output.
pub fn function_in(objdump: &str, name: &str) -> Option<String> {
    let mut lines = objdump
        .lines()
        .skip_while(|l| !(l.ends_with(">:") && l.contains(name)));
    let head = lines.next()?;
    let body: Vec<&str> = lines
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.contains("int3"))
        .collect();
    Some(format!("{head}\n{}", body.join("\n")))
}

/// Every lock-prefixed instruction in objdump's output, each after its function's header line.
pub fn locked_in(objdump: &str) -> String {
    let mut out = String::new();
    let mut head = "";
    for line in objdump.lines() {
        if line.ends_with(">:") {
            head = line;
        } else if line.contains("\tlock ") {
            if !head.is_empty() {
                out.push_str(head);
                out.push('\n');
                head = "";
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// One instruction of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Insn {
    pub address: u64,
    /// Mnemonic and operands (`lock xadd %rax,(%rdi)`), the symbolic target dropped.
    pub text: String,
}

impl Insn {
    pub fn is_locked(&self) -> bool {
        self.text.starts_with("lock ")
    }

    /// Whether it reads or writes memory at `(%rdi)`: `total` in the race loops.
    pub fn touches_first_argument(&self) -> bool {
        self.text.contains("(%rdi)")
    }
}

/// The instructions of a listing (`  5ae90:\tincq   (%rsi)`), in order.
pub fn parse(listing: &str) -> Vec<Insn> {
    listing
        .lines()
        .filter_map(|l| {
            let (addr, rest) = l.trim().split_once(':')?;
            let address = u64::from_str_radix(addr.trim(), 16).ok()?;
            let text = rest
                .split('<')
                .next()?
                .split_whitespace()
                .collect::<Vec<_>>();
            if text.is_empty() {
                return None;
            }
            Some(Insn {
                address,
                text: text.join(" "),
            })
        })
        .collect()
}

/// A Rust symbol as a reader writes it: `_ZN4race11race_atomic17he24556813dddd656E` (the
/// legacy mangling: `_ZN`, then length-prefixed path parts, then `E`) becomes
/// `race::race_atomic`, the `17h<16 hex digits>` hash part dropped. Anything else is returned
/// as it is (a C symbol, a v0-mangled `_R…` one).
pub fn demangle(symbol: &str) -> String {
    let Some(mut rest) = symbol.strip_prefix("_ZN") else {
        return symbol.to_string();
    };
    let mut parts = Vec::new();
    while !rest.starts_with('E') {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Some(len) = rest[..digits].parse::<usize>().ok().filter(|_| digits > 0) else {
            return symbol.to_string();
        };
        let Some(part) = rest.get(digits..digits + len) else {
            return symbol.to_string();
        };
        rest = &rest[digits + len..];
        let is_hash = part.len() == 17
            && part.starts_with('h')
            && part[1..].bytes().all(|b| b.is_ascii_hexdigit());
        if !is_hash {
            parts.push(
                part.replace("$LT$", "<")
                    .replace("$GT$", ">")
                    .replace("..", "::"),
            );
        }
    }
    if rest != "E" || parts.is_empty() {
        return symbol.to_string();
    }
    parts.join("::")
}

/// The function's name: the symbol in its header line (`0000… <_ZN4race11race_atomic17h…E>:`).
pub fn symbol(listing: &str) -> Option<&str> {
    let head = listing.lines().next()?;
    head.split_once('<')?.1.strip_suffix(">:")
}

/// The loop: from the target of the last backward jump through that jump.
pub fn loop_body(insns: &[Insn]) -> Option<&[Insn]> {
    let (at, target) = insns
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, insn)| Some((i, backward_target(insn)?)))?;
    let from = insns.iter().position(|i| i.address == target)?;
    insns.get(from..=at)
}

/// Where a jump back (to itself or before it) goes: the top of a loop it closes.
fn backward_target(insn: &Insn) -> Option<u64> {
    let mut parts = insn.text.split_whitespace();
    let op = parts.next()?;
    let target = u64::from_str_radix(parts.next()?, 16).ok()?;
    (op.starts_with('j') && target <= insn.address).then_some(target)
}

/// `offsetof(struct RaceCourse, total)`.
const TOTAL_OFFSET: &str = "0x8";

/// What an instruction of [`LockedInsn`] does to memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsnKind {
    /// Lock-prefixed: one atomic read-modify-write.
    #[default]
    Locked,
    /// `xchg` with a memory operand: atomic without a prefix (a spin lock's instruction).
    Xchg,
    /// A write to total (`0x8(%reg)`) without a lock: a store of a load-and-store pair, or a
    /// plain read-modify-write (`addq $1,0x8(%rax)`): either races.
    Plain,
}

/// An instruction of a racer's code that can make it atomic or racy: every lock-prefixed one,
/// every `xchg` with memory, and, in loops, every plain write to total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedInsn {
    pub function: String,
    pub text: String,
    /// Between a backward jump and its target (any loop of its function).
    pub in_loop: bool,
    /// Its memory operand is `0x8(%reg)` (total's offset) or, for a locked one, `(%reg)`.
    pub on_total: bool,
    #[serde(default)]
    pub kind: InsnKind,
    /// Its function is the C library's (a static binary carries libc's own locks, stdio's
    /// `lock cmpxchg` among them): shown, never counted as the racer's.
    #[serde(default)]
    pub library: bool,
}

impl LockedInsn {
    /// A locked read-modify-write of total in a loop of the submission's own code.
    pub fn locks_total(&self) -> bool {
        self.kind == InsnKind::Locked && self.in_loop && self.on_total && !self.library
    }

    /// A plain (unlocked) write of total in a loop of the submission's own code.
    pub fn races_total(&self) -> bool {
        self.kind == InsnKind::Plain && self.in_loop && self.on_total && !self.library
    }

    /// A plain (unlocked) write through a bare pointer (`(%reg)`) in a loop of the submission's
    /// own code: total's, if the code keeps a pointer to total itself, or another counter's
    /// (winnings) — the code alone cannot tell which.
    pub fn writes_through_pointer(&self) -> bool {
        self.kind == InsnKind::Plain && self.in_loop && !self.on_total && !self.library
    }

    /// An `xchg` with memory in a loop of the submission's own code (a spin lock).
    pub fn spins(&self) -> bool {
        self.kind == InsnKind::Xchg && self.in_loop && !self.library
    }
}

/// `(%reg)`: a memory operand that is a bare pointer in a general register (not the stack's).
fn through_pointer(operand: &str) -> bool {
    operand
        .strip_prefix("(%")
        .and_then(|r| r.strip_suffix(')'))
        .is_some_and(|r| !r.contains(',') && !matches!(r, "rsp" | "rbp" | "esp" | "ebp"))
}

/// Mnemonics that write their last (AT&T: destination) operand.
const WRITES: &[&str] = &[
    "mov", "add", "sub", "inc", "dec", "adc", "sbb", "neg", "not", "or", "and", "xor", "xadd",
    "cmpxchg",
];

/// The lock-prefixed instructions, the `xchg`s with memory and the plain writes of total in loops
/// of `objdump -d --no-show-raw-insn` output, with whether each lies in a loop of its function
/// (from a backward jump's target to the jump) and aims at total. `library` says which functions
/// are the C library's (their instructions are kept, marked).
pub fn locked_instructions(objdump: &str, library: &dyn Fn(&str) -> bool) -> Vec<LockedInsn> {
    let mut out = Vec::new();
    let mut function = "";
    let mut chunk = String::new();
    let mut flush = |function: &str, chunk: &mut String| {
        let insns = parse(chunk);
        let loops: Vec<(u64, u64)> = insns
            .iter()
            .filter_map(|i| Some((backward_target(i)?, i.address)))
            .collect();
        for insn in &insns {
            let in_loop = loops
                .iter()
                .any(|(from, to)| *from <= insn.address && insn.address <= *to);
            let operand = insn.text.rsplit(',').next().unwrap_or("").trim();
            let operand = operand.rsplit(' ').next().unwrap_or(operand);
            let at_total =
                operand.starts_with(&format!("{TOTAL_OFFSET}(%")) && !operand.contains(',');
            let mnemonic = insn.text.split_whitespace().next().unwrap_or("");
            // A constant stored (`movq $0x0,0x8(%rax)`) resets a counter; it increments nothing.
            let constant_store = mnemonic.starts_with("mov")
                && insn
                    .text
                    .split_whitespace()
                    .nth(1)
                    .is_some_and(|ops| ops.starts_with('$'));
            let (kind, on_total) = if insn.is_locked() {
                (InsnKind::Locked, at_total || operand.starts_with("(%"))
            } else if mnemonic.starts_with("xchg") && insn.text.contains('(') {
                (InsnKind::Xchg, at_total)
            } else if constant_store || !in_loop || !WRITES.iter().any(|w| mnemonic.starts_with(w))
            {
                continue;
            } else if at_total {
                (InsnKind::Plain, true)
            } else if through_pointer(operand) {
                // A counter reached through a pointer to itself (`long *t = &rc->total`).
                (InsnKind::Plain, false)
            } else {
                continue;
            };
            out.push(LockedInsn {
                function: function.to_string(),
                text: insn.text.clone(),
                in_loop,
                on_total,
                kind,
                library: library(function),
            });
        }
        chunk.clear();
    };
    for line in objdump.lines() {
        if let Some(head) = line.strip_suffix(">:") {
            flush(function, &mut chunk);
            function = head.split_once('<').map_or("?", |(_, f)| f);
        } else {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    flush(function, &mut chunk);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded: `objdump -d --no-show-raw-insn target/release/race` (rustc 1.95, x86-64).
    pub const ATOMIC: &str = "000000000005ae80 <_ZN4race11race_atomic17h33cc7d830b521e8eE>:
   5ae80:\tmov    $0x1,%eax
   5ae85:\tlock xadd %rax,(%rdi)
   5ae8a:\tcmp    %rdx,%rax
   5ae8d:\tjge    5aea2 <_ZN4race11race_atomic17h33cc7d830b521e8eE+0x22>
   5ae8f:\tnop
   5ae90:\tincq   (%rsi)
   5ae93:\tmov    $0x1,%eax
   5ae98:\tlock xadd %rax,(%rdi)
   5ae9d:\tcmp    %rdx,%rax
   5aea0:\tjl     5ae90 <_ZN4race11race_atomic17h33cc7d830b521e8eE+0x10>
   5aea2:\tlock decq (%rdi)
   5aea6:\tret";

    #[test]
    fn the_atomic_loop_has_one_locked_instruction() {
        let insns = parse(ATOMIC);
        assert_eq!(insns.len(), 12);
        assert_eq!(insns[1].text, "lock xadd %rax,(%rdi)");
        assert_eq!(insns[3].text, "jge 5aea2");
        let body = loop_body(&insns).unwrap();
        assert_eq!(body.first().unwrap().address, 0x5ae90);
        assert_eq!(body.last().unwrap().address, 0x5aea0);
        let locked: Vec<&Insn> = body.iter().filter(|i| i.is_locked()).collect();
        assert_eq!(locked.len(), 1);
        assert!(locked[0].touches_first_argument());
        assert_eq!(
            symbol(ATOMIC),
            Some("_ZN4race11race_atomic17h33cc7d830b521e8eE")
        );
    }

    #[test]
    fn no_backward_jump_no_loop() {
        assert_eq!(loop_body(&parse("  1dc0:\tret")), None);
        assert_eq!(parse("garbage\n\n"), vec![]);
    }

    #[test]
    fn picks_functions_and_locked_lines_from_objdump_output() {
        let text = format!(
            "\nDisassembly of section .text:\n\n0000000000001000 <main>:\n    1000:\tlock incq (%rax)\n    \
             1004:\tret\n\n{ATOMIC}\n   5aea7:\tint3\n\n0000000000060000 <other>:\n   60000:\tret\n"
        );
        let f = function_in(&text, "race_atomic").unwrap();
        assert!(f.starts_with("000000000005ae80 <_ZN4race11race_atomic"));
        assert!(f.ends_with("5aea6:\tret"), "{f}");
        assert!(function_in(&text, "race_racy").is_none());
        let locked = locked_in(&text);
        assert_eq!(locked.lines().count(), 6, "{locked}");
        assert!(locked.starts_with("0000000000001000 <main>:\n    1000:\tlock incq (%rax)\n"));
        assert_eq!(parse(&locked).iter().filter(|i| i.is_locked()).count(), 4);
    }

    #[test]
    fn rust_symbols_are_demangled_without_their_hash() {
        use super::demangle;
        assert_eq!(
            demangle("_ZN4race11race_atomic17he24556813dddd656E"),
            "race::race_atomic"
        );
        assert_eq!(
            demangle("_ZN4race9race_racy17h99dd0f98146c8318E"),
            "race::race_racy"
        );
        assert_eq!(
            demangle("_ZN3std2io5stdio6_print17h0123456789abcdefE"),
            "std::io::stdio::_print"
        );
        // Not the legacy mangling, or damaged: as it is.
        assert_eq!(demangle("race_racy"), "race_racy");
        assert_eq!(demangle("_ZN4race99toolongE"), "_ZN4race99toolongE");
        assert_eq!(demangle("_ZN4race9race_racy"), "_ZN4race9race_racy");
    }
}
