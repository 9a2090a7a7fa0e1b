//! Running a program under `strace(1)` and parsing what it wrote.
//!
//! We run `strace -f -o FILE -e trace=LIST -- PROG ARGS` and parse FILE line by line. With `-f`
//! every line starts with the pid. A call interrupted by another thread's line is split into
//! `name(args <unfinished ...>` and `<... name resumed>rest) = ret`; [`parse`] joins the halves.
//! Signals (`--- SIGINT {...} ---`) and exits (`+++ exited with 0 +++`) are kept as raw lines.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, Context as _};

/// One system call as strace printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The whole line (joined, for a resumed call), for showing as evidence.
    pub raw: String,
}

impl Syscall {
    /// Argument `i` as a number: decimal, `0x` hex, or `NULL` (0).
    pub fn arg_u64(&self, i: usize) -> Option<u64> {
        parse_number(self.args.get(i)?.trim()).map(|v| v as u64)
    }

    /// Argument `i` as an integer (fds like `-1`).
    pub fn arg_i64(&self, i: usize) -> Option<i64> {
        parse_number(self.args.get(i)?.trim())
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

fn parse_number(s: &str) -> Option<i64> {
    if s == "NULL" {
        return Some(0);
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(|v| v as i64);
    }
    s.parse::<i64>().ok()
}

/// Parses a whole strace output file. Lines that are not system calls (signals, exits) are
/// skipped; an `<unfinished ...>` call is joined with its `resumed` half.
pub fn parse(text: &str) -> Vec<Syscall> {
    let mut out = Vec::new();
    // pid -> (index in `out` of nothing yet, the unfinished head text)
    let mut pending: HashMap<Option<u32>, String> = HashMap::new();
    for line in text.lines() {
        let (pid, rest) = split_pid(line);
        let rest = skip_timestamp(rest);
        if rest.starts_with("+++") || rest.starts_with("---") {
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
    out
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
    let mut words = ret_text.split_whitespace();
    let ret = words.next().and_then(parse_number);
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

/// Checks once that strace is installed and allowed to trace; the error says how to fix it.
pub fn check() -> anyhow::Result<()> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let out = Command::new("strace")
                .args(["-o", "/dev/null", "-e", "trace=none", "--", "true"])
                .stdin(Stdio::null())
                .output();
            match out {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(
                    "strace is not installed; install it with `apt-get install strace` \
                     (Debian/Ubuntu) or `dnf install strace` (Fedora)"
                        .into(),
                ),
                Err(e) => Err(format!("cannot run strace: {e}")),
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => {
                    let msg = String::from_utf8_lossy(&o.stderr);
                    if msg.contains("Operation not permitted") {
                        Err(format!(
                            "strace is not allowed to trace here ({}); allow ptrace \
                             (kernel.yama.ptrace_scope, or CAP_SYS_PTRACE in a container)",
                            msg.lines().next().unwrap_or("").trim()
                        ))
                    } else {
                        Err(format!("strace failed: {}", msg.trim()))
                    }
                }
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// A command that runs `prog args` under `strace -f -o out -e trace=filter`.
/// The caller spawns it (several can run at once) and then [`parse_file`]s `out`.
pub fn command<I, S>(prog: &Path, args: I, filter: &str, out: &Path) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("strace");
    cmd.arg("-f")
        .arg("-o")
        .arg(out)
        .arg("-e")
        .arg(format!("trace={filter}"))
        .arg("--")
        .arg(prog);
    cmd.args(args);
    cmd
}

/// Reads and parses a strace output file.
pub fn parse_file(path: &Path) -> anyhow::Result<Vec<Syscall>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read strace output {}", path.display()))?;
    Ok(parse(&text))
}

/// The result of [`run`].
pub struct Traced {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub calls: Vec<Syscall>,
}

/// Runs `prog args` to completion under strace (stdin closed) and parses the trace.
/// The trace file is written into `scratch`.
pub fn run<I, S>(prog: &Path, args: I, filter: &str, scratch: &Path) -> anyhow::Result<Traced>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    check()?;
    let out = scratch.join(format!(
        "{}.strace",
        prog.file_name().and_then(OsStr::to_str).unwrap_or("prog")
    ));
    let output = command(prog, args, filter, &out)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run strace on {}", prog.display()))?;
    let calls = parse_file(&out)?;
    if output.status.code().is_none() {
        bail!("{} under strace died: {}", prog.display(), output.status);
    }
    Ok(Traced {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        calls,
    })
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
    fn live_trace_of_true_shows_its_mmaps() {
        // A live run of the real strace: the loader maps libc into /bin/true.
        let dir = tempfile::Builder::new()
            .prefix("xtask-strace-test-")
            .tempdir()
            .unwrap();
        let traced = run(
            Path::new("/bin/true"),
            [] as [&str; 0],
            "openat,mmap",
            dir.path(),
        );
        let traced = traced.expect("strace runs (CI installs it)");
        assert!(traced.status.success());
        assert!(traced
            .calls
            .iter()
            .any(|c| c.name == "openat" && c.arg_str(1).is_some_and(|p| p.contains("libc.so"))));
        assert!(traced.calls.iter().any(|c| c.name == "mmap" && c.ok()));
    }
}
