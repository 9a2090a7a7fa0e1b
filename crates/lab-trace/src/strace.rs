//! Reading `strace(1)` output: system calls, signals and exits, as typed values.
//!
//! We run `strace -f -o FILE -e trace=LIST -- PROG ARGS` and parse FILE line by line. With `-f`
//! every line starts with the pid. A call interrupted by another thread's line is split into
//! `name(args <unfinished ...>` and `<... name resumed>rest) = ret`; [`parse`] joins the halves.
//! Signals (`--- SIGBUS {si_signo=SIGBUS, si_code=BUS_ADRERR, si_addr=0x7f…} ---`) and exits
//! (`+++ exited with 0 +++`, `+++ killed by SIGSEGV (core dumped) +++`) are parsed by
//! [`parse_trace`] into [`Signal`] and [`Exit`]. Parsing is pure: recorded traces test it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One system call as strace printed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Syscall {
    /// The thread that made the call (strace `-f` prefix), if printed.
    pub pid: Option<u32>,
    pub name: String,
    /// The arguments as strace printed them, split at top-level commas.
    pub args: Vec<String>,
    /// The return value (`= 0x7f…` or `= 3`), `None` for `= ?`.
    pub ret: Option<i64>,
    /// The error name for a failed call (`ENOENT`), if any.
    pub errno: Option<String>,
    /// The path of the descriptor it returned, under `strace -y` (`= 3</tmp/t.bin>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret_path: Option<String>,
    /// The whole line (joined, for a resumed call), for showing as evidence.
    pub raw: String,
}

impl Syscall {
    /// Argument `i` as a number: decimal, `0x` hex, or `NULL` (0); a descriptor annotated by
    /// `strace -y` (`3</tmp/t.bin>`) is its number.
    pub fn arg_u64(&self, i: usize) -> Option<u64> {
        self.arg_i64(i).map(|v| v as u64)
    }

    /// Argument `i` as an integer (fds like `-1`, or `3</tmp/t.bin>` under `strace -y`).
    pub fn arg_i64(&self, i: usize) -> Option<i64> {
        parse_number(split_fd_path(self.args.get(i)?.trim()).0)
    }

    /// Argument `i` without the path `strace -y` adds to a descriptor (`AT_FDCWD</tmp>` →
    /// `AT_FDCWD`, `3</tmp/t.bin>` → `3`).
    pub fn arg_plain(&self, i: usize) -> Option<&str> {
        Some(split_fd_path(self.args.get(i)?.trim()).0)
    }

    /// The path `strace -y` printed for descriptor argument `i` (`3</tmp/t.bin>` →
    /// `/tmp/t.bin`); `None` in a trace recorded without `-y`, or for a closed descriptor.
    pub fn fd_path(&self, i: usize) -> Option<&str> {
        split_fd_path(self.args.get(i)?.trim()).1
    }

    /// Every descriptor argument `strace -y` annotated, as (argument index, path).
    pub fn fd_paths(&self) -> impl Iterator<Item = (usize, &str)> {
        (0..self.args.len()).filter_map(|i| Some((i, self.fd_path(i)?)))
    }

    /// Argument `i` split as a flag set (`PROT_READ|PROT_WRITE`).
    pub fn arg_flags(&self, i: usize) -> Vec<&str> {
        self.args
            .get(i)
            .map(|a| {
                a.split('|')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Argument `i` as a string literal (`"/etc/ld.so.cache"`), unquoted; escapes kept as printed.
    pub fn arg_str(&self, i: usize) -> Option<&str> {
        let a = self.args.get(i)?.trim();
        let a = a.strip_suffix("...").unwrap_or(a);
        a.strip_prefix('"')?.strip_suffix('"')
    }

    /// The return value as an unsigned address/length.
    pub fn ret_u64(&self) -> Option<u64> {
        self.ret.map(|v| v as u64)
    }

    /// Whether the call succeeded (a return value and no errno).
    pub fn ok(&self) -> bool {
        self.ret.is_some() && self.errno.is_none()
    }
}

/// A number as strace prints it: decimal, `0x` hex, or `NULL` (0).
pub fn parse_number(s: &str) -> Option<i64> {
    if s == "NULL" {
        return Some(0);
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(|v| v as i64);
    }
    s.parse::<i64>().ok()
}

/// A descriptor as `strace -y` prints it, split into its number and its path
/// (`3</tmp/t.bin>` → (`3`, `/tmp/t.bin`); `AT_FDCWD</tmp>` → (`AT_FDCWD`, `/tmp`)); anything
/// else is returned whole, with no path. The path runs to the last `>`, so a `>` inside it
/// is kept. A file whose name was removed or replaced since it was opened is printed
/// `3</tmp/t.bin>(deleted)`: still (`3`, `/tmp/t.bin`).
pub fn split_fd_path(s: &str) -> (&str, Option<&str>) {
    let s = s.strip_suffix("(deleted)").unwrap_or(s);
    let Some(open) = s.find('<') else {
        return (s, None);
    };
    let head = &s[..open];
    let fd_like = !head.is_empty()
        && (head == "AT_FDCWD"
            || head
                .strip_prefix('-')
                .unwrap_or(head)
                .bytes()
                .all(|b| b.is_ascii_digit()));
    match s[open + 1..].strip_suffix('>') {
        Some(path) if fd_like => (head, Some(path)),
        _ => (s, None),
    }
}

/// A whole trace: the calls in order, the signals delivered and how each process ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub calls: Vec<Syscall>,
    pub signals: Vec<Signal>,
    pub exits: Vec<Exit>,
}

/// A signal delivered to a traced process: `--- SIGBUS {si_signo=SIGBUS, …} ---`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub pid: Option<u32>,
    /// `SIGBUS`, `SIGSEGV`, …
    pub name: String,
    /// `si_code` as printed (`BUS_ADRERR`, `SEGV_MAPERR`, `SI_USER`), if printed.
    pub code: Option<String>,
    /// `si_addr`: the faulting address of SIGSEGV/SIGBUS, if printed.
    pub addr: Option<u64>,
    /// How many system calls of the trace came before it (its place in [`Trace::calls`]).
    pub after_calls: usize,
    pub raw: String,
}

/// How a traced process ended: `+++ exited with 1 +++` or `+++ killed by SIGSEGV +++`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub pid: Option<u32>,
    /// The exit status, for a normal exit.
    pub code: Option<i32>,
    /// The signal that killed it (`SIGSEGV`), for a signal death.
    pub killed_by: Option<String>,
    pub raw: String,
}

impl Trace {
    /// The first fault signal (SIGSEGV or SIGBUS) of the trace.
    pub fn fault(&self) -> Option<&Signal> {
        self.signals
            .iter()
            .find(|s| s.name == "SIGSEGV" || s.name == "SIGBUS")
    }
}

/// Parses a whole strace output file into its system calls; see [`parse_trace`] for signals and
/// exits too.
pub fn parse(text: &str) -> Vec<Syscall> {
    parse_trace(text).calls
}

/// Parses a whole strace output file: every system call (an `<unfinished ...>` call is joined
/// with its `resumed` half), every signal and every exit.
pub fn parse_trace(text: &str) -> Trace {
    let mut trace = Trace::default();
    let out = &mut trace.calls;
    // pid -> (index in `out` of nothing yet, the unfinished head text)
    let mut pending: HashMap<Option<u32>, String> = HashMap::new();
    for line in text.lines() {
        let (pid, rest) = split_pid(line);
        let rest = skip_timestamp(rest);
        if let Some(s) = rest.strip_prefix("--- ") {
            if let Some(sig) = parse_signal(pid, s, line, out.len()) {
                trace.signals.push(sig);
            }
            continue;
        }
        if let Some(s) = rest.strip_prefix("+++ ") {
            trace.exits.push(parse_exit(pid, s, line));
            continue;
        }
        if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(pid, head.trim_end().to_string());
            continue;
        }
        if let Some(tail) = rest.strip_prefix("<... ") {
            // `<... mmap resumed>, 3, 0) = 0x…` or `<... mmap resumed> ) = 0`
            let Some(close) = tail.find(" resumed>") else {
                continue;
            };
            let tail = &tail[close + " resumed>".len()..];
            let Some(head) = pending.remove(&pid) else {
                continue;
            };
            let joined = format!("{head}{tail}");
            let raw = match pid {
                Some(p) => format!("{p}  {joined}"),
                None => joined.clone(),
            };
            if let Some(call) = parse_call(pid, &joined, raw) {
                out.push(call);
            }
            continue;
        }
        if let Some(call) = parse_call(pid, rest, line.to_string()) {
            out.push(call);
        }
    }
    trace
}

/// `SIGBUS {si_signo=SIGBUS, si_code=BUS_ADRERR, si_addr=0x7f…} ---`
fn parse_signal(pid: Option<u32>, s: &str, raw: &str, after_calls: usize) -> Option<Signal> {
    let name = s.split_whitespace().next()?;
    if !name.starts_with("SIG") {
        return None;
    }
    let field = |key: &str| {
        let start = s.find(key)? + key.len();
        let rest = &s[start..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim().to_string())
    };
    Some(Signal {
        pid,
        name: name.to_string(),
        code: field("si_code="),
        addr: field("si_addr=")
            .and_then(|a| parse_number(&a))
            .map(|a| a as u64),
        after_calls,
        raw: raw.to_string(),
    })
}

/// `exited with 0 +++` or `killed by SIGSEGV (core dumped) +++`
fn parse_exit(pid: Option<u32>, s: &str, raw: &str) -> Exit {
    let code = s
        .strip_prefix("exited with ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    let killed_by = s
        .strip_prefix("killed by ")
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string);
    Exit {
        pid,
        code,
        killed_by,
        raw: raw.to_string(),
    }
}

fn split_pid(line: &str) -> (Option<u32>, &str) {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && line[digits..].starts_with(' ') {
        if let Ok(pid) = line[..digits].parse() {
            return (Some(pid), line[digits..].trim_start());
        }
    }
    // `[pid  1234] ` form (strace without -o).
    if let Some(r) = line.strip_prefix("[pid ") {
        if let Some(end) = r.find(']') {
            if let Ok(pid) = r[..end].trim().parse() {
                return (Some(pid), r[end + 1..].trim_start());
            }
        }
    }
    (None, line)
}

fn skip_timestamp(s: &str) -> &str {
    // `-t`/`-tt` (12:34:56[.123456]) or `-ttt` (1700000000.123456) prefixes.
    let first = s.split(' ').next().unwrap_or("");
    let looks_like_time = !first.is_empty()
        && first
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b':' || b == b'.')
        && first.bytes().any(|b| b == b':' || b == b'.');
    if looks_like_time {
        s[first.len()..].trim_start()
    } else {
        s
    }
}

/// Parses `name(args) = ret [ERRNO (text)]`.
fn parse_call(pid: Option<u32>, s: &str, raw: String) -> Option<Syscall> {
    let open = s.find('(')?;
    let name = &s[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let (args, after) = split_args(&s[open + 1..])?;
    let after = after.trim_start();
    let ret_text = after.strip_prefix('=')?.trim_start();
    // `= 3</tmp/t.bin>` under `strace -y`: the path may hold spaces, so it runs to the `>`
    // before the errno or the end.
    let (ret_word, ret_path, rest) = match ret_text.find('<') {
        Some(open)
            if open > 0
                && ret_text[..open]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'-') =>
        {
            let close = ret_text.rfind('>').filter(|c| *c > open);
            match close {
                Some(c) => (
                    &ret_text[..open],
                    Some(ret_text[open + 1..c].to_string()),
                    &ret_text[c + 1..],
                ),
                None => (ret_text, None, ""),
            }
        }
        _ => {
            let word = ret_text.split_whitespace().next().unwrap_or("");
            let at = ret_text.find(word).unwrap_or(0) + word.len();
            (word, None, &ret_text[at..])
        }
    };
    let ret = parse_number(ret_word);
    let mut words = rest.split_whitespace();
    let errno = words
        .next()
        .filter(|w| {
            w.len() > 1
                && w.starts_with('E')
                && w.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
        .map(str::to_string);
    Some(Syscall {
        pid,
        name: name.to_string(),
        args,
        ret,
        errno,
        ret_path,
        raw,
    })
}

/// Splits the text after `(` into top-level arguments; returns them and the text after `)`.
fn split_args(s: &str) -> Option<(Vec<String>, &str)> {
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' if depth == 0 => {
                let last = s[start..i].trim();
                if !last.is_empty() || !args.is_empty() {
                    args.push(last.to_string());
                }
                return Some((args, &s[i + 1..]));
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                args.push(s[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/strace-sh-ls.txt");

    #[test]
    fn parses_mmap_of_a_library() {
        let calls = parse(FIXTURE);
        let m = calls
            .iter()
            .find(|c| c.name == "mmap" && c.arg_flags(3).contains(&"MAP_FIXED"))
            .expect("a MAP_FIXED mmap in the fixture");
        assert_eq!(m.pid, Some(1879));
        assert_eq!(m.args.len(), 6);
        assert_eq!(m.arg_u64(0), Some(0x7f53a78db000));
        assert_eq!(m.arg_u64(1), Some(1400832));
        assert_eq!(m.arg_flags(2), vec!["PROT_READ", "PROT_EXEC"]);
        assert_eq!(m.arg_i64(4), Some(3));
        assert_eq!(m.arg_u64(5), Some(0x26000));
        assert_eq!(m.ret_u64(), Some(0x7f53a78db000));
        assert!(m.ok());
    }

    #[test]
    fn parses_openat_strings_and_skips_signals() {
        let calls = parse(FIXTURE);
        let open = calls.iter().find(|c| c.name == "openat").unwrap();
        assert_eq!(open.arg_str(1), Some("/etc/ld.so.cache"));
        assert_eq!(open.ret, Some(3));
        assert!(calls.iter().all(|c| !c.raw.contains("SIGCHLD")));
        let read = calls.iter().find(|c| c.name == "read").unwrap();
        assert_eq!(
            read.args.len(),
            3,
            "a string with commas and escapes is one argument"
        );
        assert_eq!(read.ret, Some(832));
    }

    #[test]
    fn joins_unfinished_and_resumed_halves() {
        let text = "\
101 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS <unfinished ...>
102 brk(NULL)                         = 0x55d713dde000
101 <... mmap resumed>, -1, 0) = 0x7f4639352000
";
        let calls = parse(text);
        assert_eq!(calls.len(), 2);
        let m = &calls[1];
        assert_eq!((m.pid, m.name.as_str()), (Some(101), "mmap"));
        assert_eq!(m.args.len(), 6);
        assert_eq!(m.ret_u64(), Some(0x7f4639352000));
    }

    #[test]
    fn parses_errors_timestamps_and_unknown_returns() {
        let calls = parse(
            "7 12:00:01.000001 openat(AT_FDCWD, \"/nope\", O_RDONLY) = -1 ENOENT (No such file or directory)\n\
             7 exit_group(0) = ?\n\
             garbage line\n",
        );
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].ret, Some(-1));
        assert_eq!(calls[0].errno.as_deref(), Some("ENOENT"));
        assert!(!calls[0].ok());
        assert_eq!(calls[1].ret, None);
    }

    #[test]
    fn parses_fault_signals_and_exits() {
        let trace = parse_trace(
            "42 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = 0x7f0000000000\n\
             42 --- SIGBUS {si_signo=SIGBUS, si_code=BUS_ADRERR, si_addr=0x7f0000001000} ---\n\
             42 +++ killed by SIGBUS (core dumped) +++\n\
             43 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=44, si_uid=0} ---\n\
             43 +++ exited with 3 +++\n",
        );
        assert_eq!(trace.calls.len(), 1);
        let bus = trace.fault().unwrap();
        assert_eq!(bus.name, "SIGBUS");
        assert_eq!(bus.code.as_deref(), Some("BUS_ADRERR"));
        assert_eq!(bus.addr, Some(0x7f0000001000));
        assert_eq!(bus.after_calls, 1);
        assert_eq!(trace.signals[1].addr, None);
        assert_eq!(trace.exits[0].killed_by.as_deref(), Some("SIGBUS"));
        assert_eq!(trace.exits[0].code, None);
        assert_eq!(trace.exits[1].code, Some(3));
        assert_eq!(trace.exits[1].pid, Some(43));
    }
}
