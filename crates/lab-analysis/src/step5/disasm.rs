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
const TOTAL_OFFSET: i64 = 8;

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
    /// Its memory operand is `0x8(%reg)` (total's offset) or, for a locked one, `(%reg)` or
    /// `0x0(%reg)`; never a stack or frame slot (`%rsp`, `%rbp` when it holds the frame).
    pub on_total: bool,
    #[serde(default)]
    pub kind: InsnKind,
    /// Its function is the toolchain's runtime: the C library's (a static binary carries
    /// libc's own locks, stdio's `lock cmpxchg` among them) or Rust's std (linked into every
    /// Rust binary: its mutexes' `xchg`, its reference counts' `lock decq`): shown, never
    /// counted as the racer's.
    #[serde(default)]
    pub library: bool,
    /// The function whose loop calls this one's (a small out-of-line atomic, followed one call
    /// deep): the instruction is listed as in that loop, the caller's own use of an atomic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub called_from: Option<String>,
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

/// A memory operand without an index register (`0x8(%rax)`, `(%rdi)`, `0x0(%rbp)`,
/// `-0x10(%rbp)`): its displacement and its base register.
fn base_and_displacement(operand: &str) -> Option<(i64, &str)> {
    let (displacement, rest) = operand.split_once("(%")?;
    let base = rest.strip_suffix(')')?;
    if base.contains(',') {
        return None;
    }
    let (negative, magnitude) = match displacement.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, displacement),
    };
    let value = match magnitude {
        "" => 0,
        m => i64::from_str_radix(m.strip_prefix("0x")?, 16).ok()?,
    };
    Some((if negative { -value } else { value }, base))
}

/// Whether a function keeps its frame in `%rbp`: it sets it up (`mov %rsp,%rbp`) or reaches
/// locals below it (`-0x10(%rbp)`, gcc -O0). Otherwise `%rbp` is one more general register
/// (g++ -O2 keeps `&rc->total` in it: `lock addq $0x1,0x0(%rbp)`).
fn keeps_frame_in_rbp(insns: &[Insn]) -> bool {
    insns.iter().any(|i| {
        i.text == "mov %rsp,%rbp"
            || i.text
                .split([' ', ','])
                .any(|op| base_and_displacement(op).is_some_and(|(d, base)| d < 0 && base == "rbp"))
    })
}

/// What a memory operand reaches, as the check reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `0x8(%reg)`: offset 8 from a pointer, total's offset in `struct RaceCourse`.
    Total,
    /// `(%reg)` or `0x0(%reg)`: a bare pointer (to total itself, or to another counter).
    Pointer,
    /// Anything else: another offset, an indexed operand, a stack or frame slot (`%rsp`, and
    /// `%rbp` when it holds the frame), which is never total.
    Other,
}

fn target(operand: &str, frame_in_rbp: bool) -> Target {
    let Some((displacement, base)) = base_and_displacement(operand) else {
        return Target::Other;
    };
    let frame = matches!(base, "rsp" | "esp") || (frame_in_rbp && matches!(base, "rbp" | "ebp"));
    match displacement {
        _ if frame => Target::Other,
        TOTAL_OFFSET => Target::Total,
        0 => Target::Pointer,
        _ => Target::Other,
    }
}

/// Mnemonics that write their last (AT&T: destination) operand.
const WRITES: &[&str] = &[
    "mov", "add", "sub", "inc", "dec", "adc", "sbb", "neg", "not", "or", "and", "xor", "xadd",
    "cmpxchg",
];

/// A function of the listing: its name (the symbol in its header line), its first byte, its
/// instructions.
struct Function<'a> {
    name: &'a str,
    start: u64,
    insns: Vec<Insn>,
}

/// The functions of `objdump -d` output, in order.
fn functions(objdump: &str) -> Vec<Function<'_>> {
    let mut out: Vec<Function<'_>> = Vec::new();
    let mut chunk = String::new();
    let flush = |out: &mut Vec<Function<'_>>, chunk: &mut String| {
        if let Some(f) = out.last_mut() {
            f.insns = parse(chunk);
        }
        chunk.clear();
    };
    for line in objdump.lines() {
        if let Some(head) = line.strip_suffix(">:") {
            flush(&mut out, &mut chunk);
            let (address, name) = head.split_once('<').unwrap_or(("", "?"));
            out.push(Function {
                name,
                start: u64::from_str_radix(address.trim(), 16).unwrap_or(u64::MAX),
                insns: Vec::new(),
            });
        } else {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    flush(&mut out, &mut chunk);
    out
}

/// A function called from a loop is followed when it is at most this long: an out-of-line
/// atomic (`std::__atomic_ref<long>::fetch_add` at g++ -O0 is 15 instructions), not a
/// library routine that happens to lock something.
const SMALL_FUNCTION: usize = 40;

/// The lock-prefixed instructions, the `xchg`s with memory and the plain writes of total in loops
/// of `objdump -d --no-show-raw-insn` output, with whether each lies in a loop of its function
/// (from a backward jump's target to the jump) and aims at total. `library` says which functions
/// are the toolchain's runtime (their instructions are kept, marked). A loop's direct call of a
/// small function ([`SMALL_FUNCTION`]) holding a locked instruction or an `xchg` (an
/// out-of-line atomic: libstdc++'s `fetch_add` at -O0) is followed one level deep: that
/// instruction is listed once more as in the caller's loop (`called_from`), the caller's own.
pub fn locked_instructions(objdump: &str, library: &dyn Fn(&str) -> bool) -> Vec<LockedInsn> {
    let functions = functions(objdump);
    let mut out = Vec::new();
    for f in &functions {
        let own = instructions_of(f, library(f.name));
        // Calls from this function's loops into small functions with an atomic instruction.
        let mut followed: Vec<LockedInsn> = Vec::new();
        for callee in called_from_loops(f, &functions) {
            for insn in instructions_of(callee, library(f.name)) {
                let twin = followed
                    .iter()
                    .any(|i| i.function == insn.function && i.text == insn.text);
                if insn.kind != InsnKind::Plain && !twin {
                    followed.push(LockedInsn {
                        in_loop: true,
                        called_from: Some(f.name.to_string()),
                        ..insn
                    });
                }
            }
        }
        out.extend(own);
        out.extend(followed);
    }
    // Said once: a followed instruction outside its own function's loops is listed only as in
    // its caller's loop.
    let followed: Vec<(String, String)> = out
        .iter()
        .filter(|i| i.called_from.is_some())
        .map(|i| (i.function.clone(), i.text.clone()))
        .collect();
    out.retain(|i| {
        i.called_from.is_some()
            || i.in_loop
            || !followed.contains(&(i.function.clone(), i.text.clone()))
    });
    out
}

/// The small functions ([`SMALL_FUNCTION`]) `f` calls directly from a loop.
fn called_from_loops<'a>(f: &Function<'_>, functions: &'a [Function<'a>]) -> Vec<&'a Function<'a>> {
    let loops = loops(&f.insns);
    let mut callees: Vec<&Function<'_>> = Vec::new();
    for insn in &f.insns {
        let in_loop = within(&loops, insn.address);
        let Some(to) = insn
            .text
            .strip_prefix("call ")
            .and_then(|t| u64::from_str_radix(t.trim(), 16).ok())
        else {
            continue;
        };
        let callee = functions.iter().find(|c| {
            let length = c.insns.iter().filter(|i| !is_padding(i)).count();
            c.start == to && length <= SMALL_FUNCTION
        });
        if let Some(callee) =
            callee.filter(|c| in_loop && !callees.iter().any(|k| k.start == c.start))
        {
            callees.push(callee);
        }
    }
    callees
}

/// Padding between functions (`int3`, `nop`s), not code that runs.
fn is_padding(insn: &Insn) -> bool {
    insn.text == "int3" || insn.text.starts_with("nop") || insn.text.starts_with("cs nop")
}

/// Every loop of a function: (the target of a backward jump, the jump).
fn loops(insns: &[Insn]) -> Vec<(u64, u64)> {
    insns
        .iter()
        .filter_map(|i| Some((backward_target(i)?, i.address)))
        .collect()
}

/// Whether `address` lies in one of `loops` ([`loops`]).
fn within(loops: &[(u64, u64)], address: u64) -> bool {
    loops
        .iter()
        .any(|(from, to)| *from <= address && address <= *to)
}

/// The instructions of one function that can make a racer atomic or racy.
fn instructions_of(f: &Function<'_>, library: bool) -> Vec<LockedInsn> {
    let loops = loops(&f.insns);
    let frame_in_rbp = keeps_frame_in_rbp(&f.insns);
    let mut out = Vec::new();
    for insn in &f.insns {
        let in_loop = within(&loops, insn.address);
        let operand = insn.text.rsplit(',').next().unwrap_or("").trim();
        let operand = operand.rsplit(' ').next().unwrap_or(operand);
        let aims = target(operand, frame_in_rbp);
        let mnemonic = insn.text.split_whitespace().next().unwrap_or("");
        // A constant stored (`movq $0x0,0x8(%rax)`) resets a counter; it increments nothing.
        let constant_store = mnemonic.starts_with("mov")
            && insn
                .text
                .split_whitespace()
                .nth(1)
                .is_some_and(|ops| ops.starts_with('$'));
        let (kind, on_total) = if insn.is_locked() {
            (InsnKind::Locked, aims != Target::Other)
        } else if mnemonic.starts_with("xchg") && insn.text.contains('(') {
            (InsnKind::Xchg, aims == Target::Total)
        } else if constant_store || !in_loop || !WRITES.iter().any(|w| mnemonic.starts_with(w)) {
            continue;
        } else if aims == Target::Total {
            (InsnKind::Plain, true)
        } else if aims == Target::Pointer {
            // A counter reached through a pointer to itself (`long *t = &rc->total`).
            (InsnKind::Plain, false)
        } else {
            continue;
        };
        out.push(LockedInsn {
            function: f.name.to_string(),
            text: insn.text.clone(),
            in_loop,
            on_total,
            kind,
            library,
            called_from: None,
        });
    }
    out
}

/// The crates of the Rust toolchain's runtime, linked into every Rust binary: code whose
/// symbols name only these is never a racer's own.
const RUST_RUNTIME: &[&str] = &[
    "std",
    "core",
    "alloc",
    "compiler_builtins",
    "std_detect",
    "panic_unwind",
    "panic_abort",
    "unwind",
    "rustc_demangle",
    "addr2line",
    "gimli",
    "object",
    "miniz_oxide",
    "adler",
    "adler2",
    "hashbrown",
    "memchr",
    "cfg_if",
    "libc",
    "__rustc",
];

/// The crates a Rust symbol names: the first part of a legacy one (`_ZN5racer4main17h…E`:
/// `racer`), every crate root of a v0 one (`C` or `Cs<hash>_`, then a length-prefixed name:
/// its path's crate, the crates of its generic arguments, and the crate that instantiated it).
/// None for a symbol that is not Rust's.
pub fn rust_crates(symbol: &str) -> Vec<String> {
    let symbol = symbol.split('@').next().unwrap_or(symbol);
    if symbol.starts_with("_ZN") {
        let demangled = demangle(symbol);
        return match demangled.split_once("::") {
            Some((first, _)) if demangled != symbol => vec![first.to_string()],
            _ => Vec::new(),
        };
    }
    let Some(body) = symbol.strip_prefix("_R") else {
        return Vec::new();
    };
    let bytes = body.as_bytes();
    let mut crates = Vec::new();
    for (at, _) in body.match_indices('C') {
        let mut i = at + 1;
        // The disambiguator: `s`, base-62 digits, `_`.
        if bytes.get(i) == Some(&b's') {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
            if bytes.get(i + 1 + digits) != Some(&b'_') {
                continue;
            }
            i += digits + 2;
        }
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let Some(len) = body[i..i + digits]
            .parse::<usize>()
            .ok()
            .filter(|_| digits > 0)
        else {
            continue;
        };
        i += digits;
        // A name that starts with `_` or a digit is set apart by one `_`.
        if bytes.get(i) == Some(&b'_')
            && bytes
                .get(i + 1)
                .is_some_and(|b| *b == b'_' || b.is_ascii_digit())
        {
            i += 1;
        }
        if let Some(name) = body.get(i..i + len) {
            if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                crates.push(name.to_string());
            }
        }
    }
    crates
}

/// A Rust program's own crate, when `objdump` is a Rust binary's (it carries std's
/// `lang_start`): `Some(Some(crate))` from the symbol its `main` hands to `lang_start`
/// (`lea …(%rip),%rax # 151a0 <_ZN5racer4main17h…E>`), `Some(None)` when `main` names none,
/// `None` for a binary that is not Rust's.
pub fn rust_program_crate(objdump: &str) -> Option<Option<String>> {
    let rust = objdump.lines().any(|l| {
        l.ends_with(">:")
            && l.contains("lang_start")
            && rust_crates(symbol_of(l)).iter().any(|c| c == "std")
    });
    if !rust {
        return None;
    }
    let main = objdump
        .lines()
        .skip_while(|l| !l.ends_with("<main>:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty());
    let own = main
        .filter_map(|l| {
            let (_, sym) = l.rsplit_once('<')?;
            let sym = sym.strip_suffix('>')?;
            let sym = sym.split('+').next()?;
            rust_crates(sym)
                .into_iter()
                .find(|c| !RUST_RUNTIME.contains(&c.as_str()))
        })
        .next();
    Some(own)
}

/// The symbol of a header line (`00… <name>:`).
fn symbol_of(header: &str) -> &str {
    header
        .split_once('<')
        .and_then(|(_, s)| s.strip_suffix(">:"))
        .unwrap_or("")
}

/// Whether a function of a Rust binary is the runtime's, not the program's: everything but
/// `main` and the functions whose symbol names `own` (its crate's, and the runtime's generic
/// code instantiated for its types and closures). When the own crate is unknown, functions
/// naming only [`RUST_RUNTIME`] crates (or none: the C start files) are the runtime's.
pub fn rust_runtime_function(symbol: &str, own: Option<&str>) -> bool {
    if symbol == "main" {
        return false;
    }
    let crates = rust_crates(symbol);
    match own {
        Some(own) => !crates.iter().any(|c| c == own),
        None => crates.iter().all(|c| RUST_RUNTIME.contains(&c.as_str())),
    }
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
    /// g++ 12 -O2 of `std::atomic_ref<long>(rc->total).fetch_add(1)` (recorded, trimmed): the
    /// pointer to total in `%rbp`, which this `main` saves but does not use as a frame pointer.
    const CXX_O2: &str = "00000000000010d0 <main>:
    10d8:\tpush   %rbp
    10d9:\tpush   %rbx
    10da:\tsub    $0xa8,%rsp
    1170:\tcall   1070 <sched_yield@plt>
    1175:\tmov    (%rbx),%eax
    1179:\tjg     1170 <main+0xa0>
    1188:\tlock addq $0x1,0x0(%rbp)
    118e:\tmov    (%rbx,%rcx,8),%rax
    1192:\tadd    $0x1,%rax
    1196:\tmov    %rax,(%rbx,%rcx,8)
    119a:\tmov    0x0(%rbp),%rax
    119e:\tcmp    $0x2faf07f,%rax
    11a4:\tjle    1188 <main+0xb8>
    11a6:\tmov    %ecx,0x8(%rsp)
    11aa:\tret";

    #[test]
    fn a_displacement_of_zero_is_a_bare_pointer_and_rbp_is_a_register_without_a_frame() {
        let l = locked_instructions(CXX_O2, &|_| false);
        assert_eq!(l.len(), 1, "{l:?}");
        assert_eq!(l[0].text, "lock addq $0x1,0x0(%rbp)");
        assert!(l[0].locks_total(), "{l:?}");
        // With a frame in %rbp (`mov %rsp,%rbp`), its slots are never total; %rsp's never are.
        let framed = CXX_O2.replace("10d9:\tpush   %rbx", "10d9:\tmov    %rsp,%rbp");
        let l = locked_instructions(&framed, &|_| false);
        assert!(l.iter().all(|i| !i.on_total), "{l:?}");
        let stack = "0000000000001000 <f>:
    1000:\tmov    %rcx,0x8(%rsp)
    1005:\tlock incq 0x8(%rsp)
    100a:\tmov    %rcx,-0x8(%rbp)
    100e:\tmov    %rcx,(%rbp)
    1012:\tjmp    1000 <f>";
        let l = locked_instructions(stack, &|_| false);
        assert_eq!(l.len(), 1, "{l:?}");
        assert!(!l[0].on_total && !l[0].locks_total(), "{l:?}");
    }

    /// g++ 12 -O0 (recorded, trimmed): the loop calls the out-of-line fetch_add, which holds
    /// the `lock xadd` outside any loop of its own.
    const CXX_O0: &str = "00000000000011b9 <main>:
    11b9:\tpush   %rbp
    11ba:\tmov    %rsp,%rbp
    1399:\tlea    -0xe0(%rbp),%rax
    13ad:\tcall   1578 <_ZNKSt12__atomic_refIlLb1ELb0EE9fetch_addElSt12memory_order>
    13b2:\tmov    -0x38(%rbp),%rax
    13c1:\tmov    %rdx,(%rax)
    13d3:\tcall   153a <_ZNKSt12__atomic_refIlLb1ELb0EE4loadESt12memory_order>
    13e3:\tjne    1399 <main+0x1e0>
    13e5:\tcall   1578 <_ZNKSt12__atomic_refIlLb1ELb0EE9fetch_addElSt12memory_order>
    13ea:\tret

000000000000153a <_ZNKSt12__atomic_refIlLb1ELb0EE4loadESt12memory_order>:
    153a:\tmov    (%rax),%rax
    153d:\tret

0000000000001578 <_ZNKSt12__atomic_refIlLb1ELb0EE9fetch_addElSt12memory_order>:
    1578:\tpush   %rbp
    1579:\tmov    %rsp,%rbp
    1587:\tmov    -0x28(%rbp),%rax
    15a4:\tmov    -0x8(%rbp),%rax
    15a8:\tlock xadd %rdx,(%rax)
    15ad:\tmov    %rdx,%rax
    15b0:\tpop    %rbp
    15b1:\tret
";

    #[test]
    fn a_small_function_called_from_a_loop_is_followed_one_call_deep() {
        let l = locked_instructions(CXX_O0, &|_| false);
        let xadd: Vec<&LockedInsn> = l.iter().filter(|i| i.kind == InsnKind::Locked).collect();
        // Said once: as in main's loop, not again as outside fetch_add's loops.
        assert_eq!(xadd.len(), 1, "{l:?}");
        assert_eq!(xadd[0].text, "lock xadd %rdx,(%rax)");
        assert_eq!(xadd[0].called_from.as_deref(), Some("main"));
        assert!(xadd[0].locks_total(), "{l:?}");
        // The caller's code decides: a library loop's call is the library's.
        let l = locked_instructions(CXX_O0, &|f| f == "main");
        assert!(l.iter().all(|i| !i.locks_total()), "{l:?}");
        // Not followed: a call outside a loop, or into a long function.
        let outside = CXX_O0.replace("13e3:\tjne    1399", "13e3:\tjne    13e5");
        let l = locked_instructions(&outside, &|_| false);
        assert!(
            l.iter()
                .all(|i| i.called_from.is_none() && !i.locks_total()),
            "{l:?}"
        );
        let long = CXX_O0.replace(
            "    15ad:\tmov    %rdx,%rax\n",
            &"    15ad:\tmov    %rdx,%rax\n".repeat(SMALL_FUNCTION),
        );
        let l = locked_instructions(&long, &|_| false);
        assert!(l.iter().all(|i| !i.locks_total()), "{l:?}");
    }

    /// A Rust binary (rustc 1.95 -O, recorded, trimmed): std's functions (v0-mangled, linked
    /// into every Rust binary) lock their mutexes with `xchg` and their reference counts with
    /// `lock decq`; the program's crate is the one `main` hands to `lang_start`.
    const RUST: &str = "0000000000015880 <_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17hf294c639167731bcE>:
   15880:\tret

00000000000151a0 <_ZN12racer_atomic4main17h960505a56ac0947bE>:
   151b0:\tmov    %ebp,0x8(%rsp)
   151b4:\tlock incq 0x8(%rax)
   151b9:\tincq   0x10(%rax,%rcx,8)
   151be:\tjl     151b0 <_ZN12racer_atomic4main17h960505a56ac0947bE+0x10>

0000000000015a00 <main>:
   15a00:\tpush   %rax
   15a07:\tlea    -0x86e(%rip),%rax        # 151a0 <_ZN12racer_atomic4main17h960505a56ac0947bE>
   15a1f:\tcall   *0x41b7b(%rip)        # 575a0 <_DYNAMIC+0x2c8>
   15a26:\tret

000000000001ebc0 <_RINvNtCsgEmfK2I1SDS_4core3ptr13drop_in_placeINtNtB4_6result6ResultINtNtNtNtCsjrHSEGnQ3l9_3std4sync6poison5mutex10MutexGuarduEINtB17_11PoisonErrorB12_EEEB1b_>:
   1ebd0:\txchg   %eax,(%rbx)
   1ebd3:\tjne    1ebd0 <x+0x10>
   1ebd5:\tlock decq (%rax)
   1ebd9:\tret
";

    #[test]
    fn a_rust_binarys_own_crate_is_told_from_std() {
        assert_eq!(
            rust_program_crate(RUST),
            Some(Some("racer_atomic".to_string()))
        );
        assert_eq!(rust_program_crate(CXX_O2), None);
        let own = Some("racer_atomic");
        let l = locked_instructions(RUST, &|f| rust_runtime_function(f, own));
        let counted: Vec<&LockedInsn> = l.iter().filter(|i| !i.library).collect();
        assert_eq!(counted.len(), 1, "{l:?}");
        assert_eq!(counted[0].text, "lock incq 0x8(%rax)");
        assert!(counted[0].locks_total());
        // std's mutex and reference count: shown, not the racer's.
        assert!(l.iter().any(|i| i.library && i.kind == InsnKind::Xchg));
        assert!(l.iter().all(|i| !i.spins()), "{l:?}");
        // v0 crate roots: the path's, the generic arguments', the instantiating crate's.
        assert_eq!(
            rust_crates(
                "_RINvNtCsgEmfK2I1SDS_4core3ptr13drop_in_placeNtCs1a_5racer5GuardECs1a_5racer"
            ),
            ["core", "racer", "racer"]
        );
        assert_eq!(
            rust_crates("_RNvCsfLfy6EI15iL_7___rustc12___rust_alloc"),
            ["__rustc"]
        );
        assert_eq!(rust_crates("_ZN5racer4main17haff304de7d1b0644E"), ["racer"]);
        assert!(rust_crates("main").is_empty() && rust_crates("_start").is_empty());
        // Generic std code instantiated for the racer's own types is its own; `main` too.
        assert!(!rust_runtime_function(
            "_RINvNtCsgEmfK2I1SDS_4core3ptr13drop_in_placeNtCs1a_5racer5GuardECs1a_5racer",
            Some("racer")
        ));
        assert!(!rust_runtime_function("main", Some("racer")));
        assert!(rust_runtime_function("_start", Some("racer")));
        // Own crate unknown: the runtime's crates and C symbols are the runtime's.
        assert!(rust_runtime_function(
            "_ZN3std2io5stdio6_print17h0123456789abcdefE",
            None
        ));
        assert!(!rust_runtime_function(
            "_ZN5racer4main17haff304de7d1b0644E",
            None
        ));
    }
}
