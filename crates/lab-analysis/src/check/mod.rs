//! The check's judgments: pure functions from typed evidence (tables before and after, traces,
//! how each run ended, the race counters, a disassembly) to a verdict with a one-line reason and
//! the evidence lines that decided it. No I/O here, so recorded evidence tests every rule and
//! `run-step 2|3 --program` / `run-step 5 --racer` can call the same functions.
//!
//! Imports only lab-trace and the pure trace readers of [`crate::disktable`]
//! (`printed_numbers`, `is_table`, `fault::locate`).

use lab_trace::fds;
use lab_trace::{Syscall, Trace};
use serde::{Deserialize, Serialize};

pub use crate::step5::disasm::{locked_instructions, InsnKind, LockedInsn};
use crate::verdict::{plural, signed_thousands};
pub use crate::verdict::{thousands, Check, Verdict};

use crate::disktable::fault;
use crate::disktable::program::{is_table, printed_numbers};
pub use crate::disktable::watched::FileEvents;

/// What the course's writer must add per run.
pub const APPEND: i64 = 300;
/// The course's count, the number a hard-coded reader prints whatever the table.
pub const COURSE_COUNT: i64 = 1083;
/// The course's file size, the length a hard-coded reader maps whatever the table.
pub const COURSE_FILE_BYTES: u64 = 114_340;
/// Numbers a reader may print before the values (a header such as `count = 1083`).
const HEADER_NUMBERS: usize = 4;

/// How one run of a submitted program ended, as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ending {
    Exited {
        code: i32,
    },
    /// Killed by a signal it raised or was sent (not by the lab).
    Signalled {
        signal: String,
    },
    /// Still running at its deadline; killed with everything it started.
    TimedOut {
        seconds: f64,
        /// Its first process had exited, but processes it started still ran.
        main_exited: bool,
        /// How many of its processes the lab killed then (`None`: not counted).
        killed: Option<usize>,
    },
    /// Printed more than the lab keeps; killed.
    Flooded {
        bytes: u64,
    },
    /// Its system calls filled the trace beyond the lab's bound; killed.
    TraceFlooded {
        bytes: u64,
    },
}

impl Ending {
    /// Why the run is a failure by itself, if it is.
    fn failure(&self) -> Option<String> {
        match self {
            Ending::Exited { code: 0 } => None,
            Ending::Exited { code } => Some(format!("exited with status {code}")),
            Ending::Signalled { signal } => Some(format!("was killed by {signal}")),
            Ending::TimedOut {
                seconds,
                main_exited: true,
                killed,
            } => Some(format!(
                "exited but left {} running; killed after {seconds:.0} s",
                killed.map_or("processes".to_string(), |n| plural(n as u64, "process"))
            )),
            Ending::TimedOut {
                seconds, killed, ..
            } => Some(format!(
                "was still running after {seconds:.0} s and was killed{}",
                killed.filter(|n| *n > 1).map_or(String::new(), |n| format!(
                    " ({})",
                    plural(n as u64, "process")
                ))
            )),
            Ending::Flooded { bytes } => Some(format!(
                "flooded its output ({} bytes, more than the lab keeps) and was killed",
                thousands(*bytes)
            )),
            Ending::TraceFlooded { bytes } => Some(format!(
                "made so many system calls that its trace passed {} bytes; killed",
                thousands(*bytes)
            )),
        }
    }
}

/// How many ints a file of this length holds after the 8-byte count.
pub fn capacity(file_bytes: u64) -> u64 {
    file_bytes.saturating_sub(8) / 4
}

// ---------------------------------------------------------------------------------------------
// System calls outside the scratch directory

/// Calls that create, change or remove a path (and the argument index of each path).
const PATH_WRITES: &[(&str, &[usize])] = &[
    ("creat", &[0]),
    ("truncate", &[0]),
    ("unlink", &[0]),
    ("unlinkat", &[1]),
    ("rmdir", &[0]),
    ("mkdir", &[0]),
    ("mkdirat", &[1]),
    ("rename", &[0, 1]),
    ("renameat", &[1, 3]),
    ("renameat2", &[1, 3]),
    ("link", &[1]),
    ("linkat", &[3]),
    ("symlink", &[1]),
    ("symlinkat", &[2]),
    ("chmod", &[0]),
    ("fchmodat", &[1]),
    ("chown", &[0]),
    ("fchownat", &[1]),
];

/// The strace filter that sees every call [`outside_writes`] looks for.
pub const PATH_WRITE_FILTER: &str = "creat,truncate,unlink,unlinkat,rmdir,mkdir,mkdirat,rename,\
                                     renameat,renameat2,link,linkat,symlink,symlinkat,chmod,\
                                     fchmodat,chown,fchownat";

/// Successful calls of `trace` that opened for writing, created, changed or removed a path
/// outside `scratch` (relative paths are taken from `cwd`; `/dev/null`, its own standard streams,
/// terminals and /proc of the program itself are allowed). Each is the strace line.
pub fn outside_writes(trace: &Trace, scratch: &str, cwd: &str) -> Vec<String> {
    let inside = |path: &str| -> bool {
        let full = if path.starts_with('/') {
            normalise(path)
        } else {
            normalise(&format!("{cwd}/{path}"))
        };
        full == scratch
            || full.starts_with(&format!("{scratch}/"))
            || matches!(
                full.as_str(),
                "/dev/null" | "/dev/tty" | "/dev/zero" | "/dev/stdout" | "/dev/stderr"
            )
            || full.starts_with("/dev/pts/")
            || full.starts_with("/dev/fd/")
            || full.starts_with("/proc/self/")
    };
    let mut out = Vec::new();
    for c in trace.calls.iter().filter(|c| c.ok()) {
        let paths: Vec<&str> = match c.name.as_str() {
            "open" | "openat" => {
                let (path_at, flags_at) = if c.name == "openat" { (1, 2) } else { (0, 1) };
                let writes = c.arg_flags(flags_at).iter().any(|f| {
                    matches!(
                        *f,
                        "O_WRONLY" | "O_RDWR" | "O_CREAT" | "O_TRUNC" | "O_APPEND"
                    )
                });
                // openat relative to a descriptor other than the cwd: its directory is unknown.
                let dir_known = c.name == "open"
                    || c.arg_plain(0).is_some_and(|a| a == "AT_FDCWD")
                    || c.arg_str(path_at).is_some_and(|p| p.starts_with('/'));
                if writes && dir_known {
                    c.arg_str(path_at).into_iter().collect()
                } else {
                    Vec::new()
                }
            }
            name => PATH_WRITES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, at)| at.iter().filter_map(|i| c.arg_str(*i)).collect())
                .unwrap_or_default(),
        };
        if paths.iter().any(|p| !inside(p)) {
            out.push(c.raw.clone());
        }
    }
    out
}

/// `/a/./b/../c` → `/a/c`, lexically.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

// ---------------------------------------------------------------------------------------------
// The table's calls

/// How a run reached `table.bin`, from its trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableAccess {
    pub opened: bool,
    /// The length of each successful mmap of the table's descriptor.
    pub mmap_lengths: Vec<u64>,
    /// Each successful mmap or mremap of the table, in order: the file offset its mapping
    /// reaches (offset + length).
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// System calls that read the table: read(), pread() … and transfers out of it
    /// (copy_file_range, sendfile, splice), in any thread or child, through any name.
    pub reads: usize,
    /// System calls that wrote it: write(), pwrite() … and transfers into it.
    pub writes: usize,
    /// Successful ftruncate, fallocate, truncate(2) and opens with O_TRUNC of the table.
    pub ftruncates: usize,
    pub mremaps: usize,
    /// The names of the calls that read it, in order of first use.
    #[serde(default)]
    pub read_calls: Vec<String>,
    /// The names of the calls that wrote it, in order of first use.
    #[serde(default)]
    pub write_calls: Vec<String>,
    /// Renames or links onto the table's name (another file put in its place) or of it.
    #[serde(default)]
    pub renames: usize,
    /// io_uring calls anywhere in the run (what goes through a ring cannot be traced).
    #[serde(default)]
    pub uring: usize,
    /// Kernel AIO calls anywhere in the run (io_submit's reads and writes are no read or write
    /// call, and raise no inotify event).
    #[serde(default)]
    pub aio: usize,
    /// Processes started with `CLONE_UNTRACED` (clone/clone3): `strace -f` does not follow them.
    #[serde(default)]
    pub untraced_clones: usize,
}

/// One mapping of the table: how far into the file it reaches, and whether an mremap made it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// Its file offset plus its length.
    pub end: u64,
    pub by_mremap: bool,
}

/// The table's mappings made by `calls` (the table's own calls, in order): an mmap reaches its
/// offset plus its length; an mremap of one of them keeps that mapping's offset, at its new
/// length.
fn mappings(calls: &[&Syscall]) -> Vec<Mapping> {
    let mut offsets: Vec<(u64, u64)> = Vec::new();
    let mut out = Vec::new();
    for c in calls.iter().filter(|c| c.ok()) {
        let (offset, len) = match c.name.as_str() {
            "mmap" => (c.arg_u64(5).unwrap_or(0), c.arg_u64(1)),
            "mremap" => (
                offsets
                    .iter()
                    .rev()
                    .find(|(start, _)| Some(*start) == c.arg_u64(0))
                    .map_or(0, |&(_, off)| off),
                c.arg_u64(2),
            ),
            _ => continue,
        };
        let (Some(start), Some(len)) = (c.ret_u64(), len) else {
            continue;
        };
        offsets.push((start, offset));
        out.push(Mapping {
            end: offset.saturating_add(len),
            by_mremap: c.name == "mremap",
        });
    }
    out
}

impl TableAccess {
    pub fn of(trace: &Trace) -> TableAccess {
        let calls = fds::file_calls(&trace.calls, is_table);
        let ok = |name: &str| calls.iter().filter(|c| c.name == name && c.ok()).count();
        let io = fds::io(&calls, is_table);
        TableAccess {
            renames: io.renames,
            uring: fds::uring_calls(&trace.calls),
            aio: fds::aio_calls(&trace.calls),
            untraced_clones: fds::untraced_clones(&trace.calls).len(),
            opened: calls
                .iter()
                .any(|c| matches!(c.name.as_str(), "open" | "openat" | "creat") && c.ok()),
            mmap_lengths: calls
                .iter()
                .filter(|c| c.name == "mmap" && c.ok())
                .filter_map(|c| c.arg_u64(1))
                .collect(),
            mappings: mappings(&calls),
            reads: io.reads,
            writes: io.writes,
            read_calls: io.read_names,
            write_calls: io.write_names,
            // Every way the file's length is set: an open with O_TRUNC truncates it too.
            ftruncates: ok("ftruncate")
                + ok("fallocate")
                + ok("truncate")
                + calls
                    .iter()
                    .filter(|c| {
                        matches!(c.name.as_str(), "open" | "openat")
                            && c.ok()
                            && c.arg_flags(usize::from(c.name == "openat") + 1)
                                .contains(&"O_TRUNC")
                    })
                    .count(),
            mremaps: ok("mremap"),
        }
    }

    /// `N read() calls` (`what`) when `names` are all `plain`, else `N system calls (pread64,
    /// copy_file_range)`.
    fn calls(n: usize, names: &[String], plain: &str, what: &str) -> String {
        if names.iter().all(|c| c == plain) {
            plural(n as u64, what)
        } else {
            format!("{} ({})", plural(n as u64, "system call"), names.join(", "))
        }
    }

    /// Why the run cannot be judged by its trace: it started a process the tracer does not
    /// follow, or used io_uring or kernel AIO.
    fn untraceable_failure(&self) -> Option<String> {
        if self.untraced_clones > 0 {
            return Some(
                "started a process the tracer cannot follow (clone with CLONE_UNTRACED): what \
                 it did to the table cannot be checked"
                    .to_string(),
            );
        }
        let (n, what, how) = if self.uring > 0 {
            (
                self.uring,
                "io_uring",
                "what goes through a submission ring",
            )
        } else if self.aio > 0 {
            (self.aio, "kernel AIO", "what io_submit reads or writes")
        } else {
            return None;
        };
        Some(format!(
            "used {what} ({}): {how} makes no read or write call a trace can show, so the \
             check cannot tell how it reached the table",
            plural(n as u64, &format!("{what} call"))
        ))
    }

    fn describe(&self) -> String {
        // `3 read()`, or `3 read() (pread64, copy_file_range)` when not all were read().
        let named = |n: usize, names: &[String], plain: &str| {
            if names.iter().all(|c| c == plain) {
                format!("{n} {plain}()")
            } else {
                format!("{n} {plain}() ({})", names.join(", "))
            }
        };
        format!(
            "{} ({}), {}, {}, {} ftruncate, {} mremap{}",
            plural(self.mmap_lengths.len() as u64, "mmap"),
            if self.mmap_lengths.is_empty() {
                "none".to_string()
            } else {
                self.mmap_lengths
                    .iter()
                    .map(|l| format!("{} bytes", thousands(*l)))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            named(self.reads, &self.read_calls, "read"),
            named(self.writes, &self.write_calls, "write"),
            self.ftruncates,
            self.mremaps,
            if self.renames > 0 {
                format!(", {}", plural(self.renames as u64, "rename or link"))
            } else {
                String::new()
            }
        )
    }
}

// ---------------------------------------------------------------------------------------------
// step2.reader

/// One table the reader was given: what the lab wrote, and what the run showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReaderRun {
    /// What kind of table (`count 0`, `the course's shape`, …).
    pub label: String,
    pub count: i64,
    pub file_bytes: u64,
    /// value\[0..count) as the lab wrote them.
    pub values: Vec<i32>,
    pub stdout: String,
    pub access: TableAccess,
    pub ending: Ending,
    pub outside_writes: Vec<String>,
    /// What an inotify watch on the table saw (`None`: not watched, in older evidence).
    #[serde(default)]
    pub events: Option<FileEvents>,
    /// Run without strace (only the inotify watch saw it): its trace is empty.
    #[serde(default)]
    pub untraced: bool,
}

impl ReaderRun {
    fn table(&self) -> String {
        format!(
            "the \"{}\" table (count {}, {} bytes)",
            self.label,
            thousands(self.count.max(0) as u64),
            thousands(self.file_bytes)
        )
    }
}

/// How a reader's output lines up with the table's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Printed {
    /// Numbers printed from where the values start (or all it printed, if they never start).
    from_start: usize,
    /// How many of value\[0..count), in order from value\[0\], it printed.
    matched: usize,
    /// Numbers printed before the values (a header).
    before: usize,
    /// What it printed after every value is a footer (a summary line such as `total: 1083
    /// values`), not more values: see [`footer`].
    footer: bool,
}

impl Printed {
    /// Every value in order, nothing but a header and a footer around them.
    fn exact(&self, count: usize) -> bool {
        self.matched == count && (self.from_start == count || self.footer)
    }
}

/// Whether the numbers stdout holds after the first `consumed` of `printed_numbers(stdout)[kind]`
/// are a footer: at most [`HEADER_NUMBERS`] of them, each on a line that holds words too (a
/// value printed past count is a bare number, as the values are: invented, not a footer).
fn footer(stdout: &str, kind: usize, consumed: usize) -> bool {
    let (mut seen, mut after) = (0, 0);
    for line in stdout.lines() {
        let [all, last] = printed_numbers(line);
        let n = if kind == 0 { all.len() } else { last.len() };
        // Every number of a line wholly after the values counts, whichever sequence lined up.
        let past = match (seen + n).saturating_sub(consumed.max(seen)) {
            0 => 0,
            p if seen >= consumed => p.max(all.len()),
            p => p,
        };
        if past > 0 {
            if !line.chars().any(|c| c.is_ascii_alphabetic()) {
                return false;
            }
            after += past;
        }
        seen += n;
    }
    after <= HEADER_NUMBERS
}

fn line_up(stdout: &str, values: &[i32]) -> Printed {
    let values: Vec<i64> = values.iter().map(|v| i64::from(*v)).collect();
    let mut best: Option<Printed> = None;
    for (kind, seq) in printed_numbers(stdout).iter().enumerate() {
        let mut starts: Vec<usize> = match values.first() {
            Some(v0) => seq
                .iter()
                .enumerate()
                .filter(|(_, x)| *x == v0)
                .map(|(i, _)| i)
                .take(16)
                .collect(),
            None => Vec::new(),
        };
        if starts.is_empty() {
            // Nothing lines up (or nothing to line up): everything it printed counts.
            starts.push(0);
        }
        for p in starts {
            let matched = seq[p..]
                .iter()
                .zip(&values)
                .take_while(|(a, b)| a == b)
                .count();
            let from_start = seq.len() - p;
            let this = Printed {
                from_start,
                matched,
                before: p,
                footer: matched == values.len()
                    && (1..=HEADER_NUMBERS).contains(&(from_start - matched))
                    && footer(stdout, kind, p + matched),
            };
            let exact = |x: &Printed| x.exact(values.len());
            best = Some(match best {
                None => this,
                Some(b) if exact(&b) => b,
                Some(_) if exact(&this) => this,
                Some(b)
                    if (this.matched, usize::MAX - this.before)
                        > (b.matched, usize::MAX - b.before) =>
                {
                    this
                }
                Some(b) => b,
            });
        }
    }
    best.unwrap_or(Printed {
        from_start: 0,
        matched: 0,
        before: 0,
        footer: false,
    })
}

/// When the reader printed every value but not in table order (after a header of at most
/// [`HEADER_NUMBERS`]): whether it printed them in reverse, and the first it printed.
fn out_of_order(stdout: &str, values: &[i32]) -> Option<(bool, i64)> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let values: Vec<i64> = values.iter().map(|v| i64::from(*v)).collect();
    let mut sorted = values.clone();
    sorted.sort_unstable();
    for seq in printed_numbers(stdout) {
        for window in (0..=HEADER_NUMBERS).filter_map(|p| seq.get(p..p + n)) {
            if window == values.as_slice() {
                continue;
            }
            if window.iter().rev().eq(values.iter()) {
                return Some((true, window[0]));
            }
            let mut w = window.to_vec();
            w.sort_unstable();
            if w == sorted {
                return Some((false, window[0]));
            }
        }
    }
    None
}

/// Why one reader run fails, if it does.
fn reader_run_failure(r: &ReaderRun) -> Option<String> {
    let table = r.table();
    if let Some(line) = r.outside_writes.first() {
        return Some(format!("wrote outside its scratch directory: {line}"));
    }
    let hard_size = r
        .access
        .mmap_lengths
        .iter()
        .any(|l| *l == COURSE_FILE_BYTES && r.file_bytes != COURSE_FILE_BYTES);
    if let Some(why) = r.ending.failure() {
        let hint = if hard_size {
            format!(
                ": it maps {} bytes whatever the file's size (a hard-coded size)",
                thousands(COURSE_FILE_BYTES)
            )
        } else {
            String::new()
        };
        return Some(format!("{why} on {table}{hint}"));
    }
    let events = r.events.unwrap_or_default();
    if let Some(why) = r.access.untraceable_failure() {
        let seen = if events.access > 0 {
            " (and inotify saw table.bin read by a system call, not through a mapping)"
        } else {
            ""
        };
        return Some(format!("{why}{seen}, on {table}"));
    }
    if r.untraced {
        if events.access > 0 {
            return Some(format!(
                "read table.bin with system calls when it ran without strace (inotify saw the \
                 file read by a system call; loads through a mapping raise no such event): it \
                 behaves differently when it is not traced, on {table}"
            ));
        }
        if events.modify > 0 || events.replaced {
            return Some(format!(
                "changed table.bin when it ran without strace (inotify), on {table}"
            ));
        }
    } else {
        if !r.access.opened {
            return Some(format!("never opened table.bin, on {table}"));
        }
        if r.access.reads > 0 {
            return Some(format!(
                "read the table with {} instead of mapping it, on {table}",
                TableAccess::calls(r.access.reads, &r.access.read_calls, "read", "read() call")
            ));
        }
        if events.access > 0 {
            return Some(format!(
                "read table.bin by system calls the trace does not show (inotify saw the file \
                 read by a system call; loads through a mapping raise no such event), on {table}"
            ));
        }
        if events.modify > 0 || events.replaced || r.access.writes > 0 || r.access.renames > 0 {
            return Some(format!(
                "changed table.bin ({}; {}), on {table}: a reader only reads",
                TableAccess::calls(
                    r.access.writes,
                    &r.access.write_calls,
                    "write",
                    "write() call"
                ),
                events.describe()
            ));
        }
    }
    match r.access.mmap_lengths.len() {
        _ if r.untraced => {}
        0 => return Some(format!("never mapped the table, on {table}")),
        1 => {}
        n => {
            return Some(format!(
                "mapped the table {n} times; one mmap is enough, on {table}"
            ))
        }
    }
    output_failure(r, hard_size)
}

/// Why a reader run's output fails (`hard_size`: it mapped the course's size of another file).
fn output_failure(r: &ReaderRun, hard_size: bool) -> Option<String> {
    let table = r.table();
    let count = r.count.max(0) as usize;
    let p = line_up(&r.stdout, &r.values);
    let exact = match count {
        // At most a header (`count = 0`) and a footer.
        0 => p.from_start <= HEADER_NUMBERS,
        _ => p.exact(count) && p.before <= HEADER_NUMBERS,
    };
    if exact {
        return None;
    }
    if let Some((reversed, first)) = out_of_order(&r.stdout, &r.values) {
        return Some(format!(
            "printed {} but not in table order{} (first: {first}; value[0] is {}), on {table}",
            plural(count as u64, "value"),
            if reversed { ": in reverse" } else { "" },
            r.values[0]
        ));
    }
    let cap = capacity(r.file_bytes) as usize;
    let trusts_size = match count {
        0 => (cap..=cap + HEADER_NUMBERS).contains(&p.from_start) && cap > HEADER_NUMBERS,
        _ => p.from_start == cap && cap != count && p.matched == count.min(cap),
    };
    let why = if trusts_size {
        ": it trusts the file size, not count"
    } else if p.from_start == COURSE_COUNT as usize && r.count != COURSE_COUNT {
        ": the course's count 1083 is hard-coded"
    } else if hard_size {
        ": it maps 114,340 bytes whatever the file's size (a hard-coded size)"
    } else {
        ""
    };
    let mismatch = if p.matched < count && p.matched < p.from_start {
        format!(
            " (value[{}] is {}, it printed something else there)",
            p.matched, r.values[p.matched]
        )
    } else {
        String::new()
    };
    Some(format!(
        "printed {} for a table of count {}{why}{mismatch}",
        plural(p.from_start as u64, "value"),
        thousands(count as u64),
    ))
}

/// `step2.reader`: every table printed exactly (value\[0..count)), through one mmap, no read().
pub fn judge_reader(program: Option<String>, runs: &[ReaderRun]) -> Check {
    let mut evidence = Vec::new();
    let mut failure = None;
    for r in runs {
        let p = line_up(&r.stdout, &r.values);
        let verdict = reader_run_failure(r);
        evidence.push(format!(
            "{}{}: count {}, {} bytes: printed {} ({} of value[0..count) in order{}); {}{}; {}",
            if r.untraced { "untraced run, " } else { "" },
            r.label,
            thousands(r.count.max(0) as u64),
            thousands(r.file_bytes),
            plural(p.from_start as u64, "number"),
            thousands(p.matched as u64),
            if p.footer {
                format!(
                    ", then a footer of {}",
                    plural((p.from_start - p.matched) as u64, "number")
                )
            } else {
                String::new()
            },
            if r.untraced {
                "no strace".to_string()
            } else {
                r.access.describe()
            },
            r.events
                .map_or(String::new(), |e| format!("; {}", e.describe())),
            verdict
                .as_deref()
                .map_or("ok".to_string(), |w| format!("FAIL: {w}")),
        ));
        for line in &r.outside_writes {
            evidence.push(format!("  strace: {line}"));
        }
        if failure.is_none() {
            failure = verdict;
        }
    }
    match (failure, runs.is_empty()) {
        (_, true) => Check {
            id: "step2.reader".into(),
            program,
            verdict: Verdict::NotTested,
            reason: "no table was run".into(),
            evidence,
        },
        (Some(reason), _) => Check {
            id: "step2.reader".into(),
            program,
            verdict: Verdict::Fail,
            reason,
            evidence,
        },
        (None, _) => Check {
            id: "step2.reader".into(),
            program,
            verdict: Verdict::Pass,
            reason: format!(
                "printed exactly value[0..count) of {}, each through one mmap with no read(){}",
                plural(runs.iter().filter(|r| !r.untraced).count() as u64, "table"),
                if runs.iter().any(|r| r.untraced) {
                    ", and the same without strace with no read event on the file (inotify)"
                } else {
                    ""
                }
            ),
            evidence,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// step3.writer

/// A table file at one moment, as the lab read it with plain read(2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableSnapshot {
    pub file_bytes: u64,
    /// The 8-byte count (`None`: the file is shorter than 8 bytes).
    pub count: Option<i64>,
    /// value\[0..min(count, capacity)).
    pub values: Vec<i32>,
}

/// One run of the writer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriterRun {
    /// Which starting table (`the course's shape`, …) and which run from it (1, 2, …).
    pub start: String,
    pub run: usize,
    pub before: TableSnapshot,
    pub after: TableSnapshot,
    pub trace: Trace,
    pub ending: Ending,
    pub outside_writes: Vec<String>,
    pub page_size: u64,
    /// What an inotify watch on the table saw (`None`: not watched).
    pub events: Option<FileEvents>,
    /// Run without strace (its trace is empty): judged by the table and the watch alone.
    pub untraced: bool,
}

/// What a run that passed did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterRunOk {
    pub count_after: i64,
    /// The file grew (`Some((from, to))` bytes).
    pub grew: Option<(u64, u64)>,
    /// It had to: count + 300 did not fit before.
    pub had_to_grow: bool,
    /// It grew by mremap (else by a fresh mmap).
    pub mremap: bool,
    /// It ran without strace, watched by inotify only.
    #[serde(default)]
    pub untraced: bool,
    /// What inotify saw in that untraced run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<FileEvents>,
}

/// Why a writer run fails by how it reached the table (`at` names the run): a process the
/// tracer cannot follow, io_uring or kernel AIO, another file in the table's place, write calls,
/// write events by system call (inotify) its trace does not explain or that an untraced run
/// raised, no mmap.
fn writer_access_failure(r: &WriterRun, access: &TableAccess, at: &str) -> Option<String> {
    let events = r.events.unwrap_or_default();
    if let Some(why) = access.untraceable_failure() {
        let seen = if events.modify > 0 && access.ftruncates == 0 {
            " (and inotify saw table.bin written by a system call, not through the mapping)"
        } else {
            ""
        };
        return Some(format!("{why}{seen}, in {at}"));
    }
    if access.renames > 0 || events.replaced {
        return Some(format!(
            "put another file in table.bin's place in {at} ({}): it must store through the \
             mapping of the table itself",
            if access.renames > 0 {
                plural(access.renames as u64, "rename or link")
            } else {
                "inotify: its inode changed".to_string()
            }
        ));
    }
    if access.writes > 0 {
        return Some(format!(
            "made {} on the table in {at}: it must store through the mapping",
            TableAccess::calls(access.writes, &access.write_calls, "write", "write() call")
        ));
    }
    if r.untraced && events.modify > 0 && r.after.file_bytes == r.before.file_bytes {
        return Some(format!(
            "changed table.bin with system calls in {at}, which ran without strace: inotify saw \
             the file written although it did not have to grow and the traced run before it \
             made no ftruncate and the file kept its size (stores through a mapping raise no \
             event): it behaves differently when it is not traced"
        ));
    }
    if !r.untraced && events.modify > 0 && access.ftruncates == 0 {
        return Some(format!(
            "changed table.bin by system calls the trace does not show in {at} (inotify saw the \
             file written; no write() or ftruncate was traced)"
        ));
    }
    if access.mmap_lengths.is_empty() && !r.untraced {
        return Some(format!("never mapped the table in {at}"));
    }
    None
}

/// Judges one writer run: `Ok` with what it did, or the one-line reason it fails.
pub fn judge_writer_run(r: &WriterRun) -> Result<WriterRunOk, String> {
    let at = format!("run {} from {}", r.run, r.start);
    if let Some(line) = r.outside_writes.first() {
        return Err(format!(
            "wrote outside its scratch directory in {at}: {line}"
        ));
    }
    let access = TableAccess::of(&r.trace);
    if let Ending::Signalled { signal } = &r.ending {
        let place = fault::locate(&r.trace, is_table, r.before.file_bytes, r.page_size)
            .map(|f| {
                let rel = |d: Option<i64>, what: &str| match d {
                    Some(d) if d >= 0 => format!("{} bytes past {what}", thousands(d as u64)),
                    Some(d) => format!("{} bytes before {what}", thousands(d.unsigned_abs())),
                    None => format!("? from {what}"),
                };
                format!(
                    " (a store at {:#x}, {} and {}): it stores past the mapping instead of \
                     growing the file with ftruncate + mremap",
                    f.address,
                    rel(f.past_map_end, "the mapping's end"),
                    rel(f.past_file_end, "the file's end")
                )
            })
            .unwrap_or_default();
        return Err(format!("killed by {signal} in {at}{place}"));
    }
    if let Some(why) = r.ending.failure() {
        return Err(format!("{why} in {at}"));
    }
    if let Some(why) = writer_access_failure(r, &access, &at) {
        return Err(why);
    }
    let (Some(before), Some(after)) = (r.before.count, r.after.count) else {
        return Err(format!("left a file shorter than its 8-byte count in {at}"));
    };
    if after == before {
        return Err(format!(
            "count stayed {} in {at}: it forgets to update count",
            signed_thousands(before)
        ));
    }
    if after != before + APPEND {
        return Err(format!(
            "count went from {} to {} in {at}, not +300",
            signed_thousands(before),
            signed_thousands(after)
        ));
    }
    let cap = capacity(r.after.file_bytes) as i64;
    if after > cap {
        return Err(format!(
            "count says {} but the file holds only {} values after {at}: it stored {} values \
             past the file's end (lost, or into memory the table's mapping does not cover) \
             instead of growing the file with ftruncate + mremap",
            thousands(after as u64),
            thousands(cap as u64),
            thousands((after - cap) as u64)
        ));
    }
    if let Some(i) =
        (0..r.before.values.len()).find(|&i| r.after.values.get(i) != r.before.values.get(i))
    {
        return Err(format!(
            "changed value[{i}] from {} to {} in {at}: earlier values must stay as they were",
            r.before.values[i],
            r.after.values.get(i).map_or("?".into(), |v| v.to_string())
        ));
    }
    if let Some(i) =
        (before..after).find(|&i| r.after.values.get(i as usize).map(|v| i64::from(*v)) != Some(i))
    {
        return Err(format!(
            "value[{i}] is {} after {at}, not {i}: each added value must equal its index",
            r.after
                .values
                .get(i as usize)
                .map_or("?".into(), |v| v.to_string())
        ));
    }
    let grew = (r.after.file_bytes > r.before.file_bytes)
        .then_some((r.before.file_bytes, r.after.file_bytes));
    let mremap = growth(r, &access, &at)?;
    Ok(WriterRunOk {
        count_after: after,
        grew,
        had_to_grow: before + APPEND > capacity(r.before.file_bytes) as i64,
        mremap,
        untraced: r.untraced,
        events: r.events.filter(|_| r.untraced),
    })
}

/// Whether a writer run's change of size is right: a grown file grown with ftruncate and reached
/// by a mapping (`Ok(true)`: by an mremap), no shrunk file.
fn growth(r: &WriterRun, access: &TableAccess, at: &str) -> Result<bool, String> {
    let mut mremap = false;
    if r.after.file_bytes > r.before.file_bytes && !r.untraced {
        if access.ftruncates == 0 {
            return Err(format!(
                "the file grew without ftruncate in {at} (grow it with ftruncate, then remap)"
            ));
        }
        // Every store must land in a mapping that covers the grown file. The order of the
        // calls does not change which mapping can: one made after the ftruncate at the new
        // size covers the new pages at once; one made before it, larger than the file (a
        // window), covers them once the ftruncate has grown the file into it; a store past
        // the file's end before that is a SIGBUS, failed above. A mapping reaches the whole
        // of its last page; the last one that reaches the grown end is the one in use.
        let page = r.page_size.max(1);
        let grown = r.after.file_bytes;
        let reach = |m: &Mapping| m.end.div_ceil(page).saturating_mul(page);
        match access.mappings.iter().rev().find(|m| reach(m) >= grown) {
            Some(m) => mremap = m.by_mremap,
            None => {
                return Err(format!(
                    "the file grew to {} bytes in {at} but no mapping of the table reaches it \
                     (the largest reaches {} bytes): the table was neither remapped (mremap) \
                     nor mapped again at the grown size",
                    thousands(grown),
                    thousands(access.mappings.iter().map(reach).max().unwrap_or(0))
                ));
            }
        }
    } else if r.after.file_bytes < r.before.file_bytes {
        return Err(format!(
            "the file shrank from {} to {} bytes in {at}",
            thousands(r.before.file_bytes),
            thousands(r.after.file_bytes)
        ));
    }
    Ok(mremap)
}

/// The runs from one starting table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterStart {
    pub label: String,
    pub count_before: i64,
    pub file_bytes_before: u64,
    /// The runs that passed, in order.
    pub runs: Vec<WriterRunOk>,
    /// The run that failed and why.
    pub failed: Option<(usize, String)>,
}

impl WriterStart {
    pub fn growths(&self) -> usize {
        self.runs.iter().filter(|r| r.grew.is_some()).count()
    }
}

/// A writer run again and again from one table until the file had to grow `growths` times
/// (`run-step 3 --program`'s evidence; each run was judged by [`judge_writer_run`] as it ended).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterSeries {
    pub growths: usize,
    pub start: WriterStart,
}

impl WriterSeries {
    /// Its first run passed every rule of [`judge_writer_run`]: +300 values equal to their
    /// index, earlier values unchanged.
    pub fn first_run_ok(&self) -> bool {
        !self.start.runs.is_empty()
    }

    /// The verdict on the whole series.
    pub fn judge(&self, program: &str) -> Check {
        judge_writer(
            Some(program.to_string()),
            std::slice::from_ref(&self.start),
            self.growths,
        )
    }
}

/// `step3.writer`: the starting tables' runs, each judged by [`judge_writer_run`]. Passes when no
/// run failed and every start saw the file grow at least twice (`min_growths`).
pub fn judge_writer(program: Option<String>, starts: &[WriterStart], min_growths: usize) -> Check {
    let mut evidence = Vec::new();
    let mut failure = None;
    let mut short = Vec::new();
    for s in starts {
        let grown: Vec<String> = s
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.grew.map(|(a, b)| {
                    format!(
                        "run {}: {} -> {} bytes{}",
                        i + 1,
                        thousands(a),
                        thousands(b),
                        if r.mremap {
                            " (ftruncate + mremap)"
                        } else {
                            " (ftruncate + mmap)"
                        }
                    )
                })
            })
            .collect();
        evidence.push(format!(
            "{}: count {} in {} bytes; {} passed (count {}); grew {}{}{}",
            s.label,
            signed_thousands(s.count_before),
            thousands(s.file_bytes_before),
            plural(s.runs.len() as u64, "run"),
            s.runs
                .last()
                .map_or("unchanged".to_string(), |r| signed_thousands(r.count_after)),
            plural(grown.len() as u64, "time"),
            if grown.is_empty() {
                String::new()
            } else {
                format!(": {}", grown.join("; "))
            },
            s.runs
                .iter()
                .enumerate()
                .filter_map(|(i, r)| Some((i, r.events?)))
                .map(|(i, e)| format!("; run {} without strace: {}", i + 1, e.describe()))
                .collect::<String>()
        ));
        if let Some((run, why)) = &s.failed {
            evidence.push(format!("  run {run}: FAIL: {why}"));
            failure.get_or_insert_with(|| why.clone());
        } else if s.growths() < min_growths {
            short.push(s.label.clone());
        }
    }
    let id = "step3.writer".to_string();
    if let Some(reason) = failure {
        return Check {
            id,
            program,
            verdict: Verdict::Fail,
            reason,
            evidence,
        };
    }
    if starts.is_empty() {
        return Check {
            id,
            program,
            verdict: Verdict::NotTested,
            reason: "no table was run".into(),
            evidence,
        };
    }
    let runs: usize = starts.iter().map(|s| s.runs.len()).sum();
    let growths: usize = starts.iter().map(WriterStart::growths).sum();
    let untraced = starts
        .iter()
        .flat_map(|s| &s.runs)
        .filter(|r| r.untraced)
        .count();
    if !short.is_empty() {
        return Check {
            id,
            program,
            verdict: Verdict::NotTested,
            reason: format!(
                "every run was right, but the file did not grow {min_growths} times within the \
                 lab's run bound from {}",
                short.join(", ")
            ),
            evidence,
        };
    }
    Check {
        id,
        program,
        verdict: Verdict::Pass,
        reason: format!(
            "{} from {} each added 300 values equal to their index, left earlier values \
             alone, grew the file {} with ftruncate and a new mapping, no write() and no \
             signal{}",
            plural(runs as u64, "run"),
            plural(starts.len() as u64, "table"),
            plural(growths as u64, "time"),
            if untraced > 0 {
                format!(
                    "; {} without strace raised no write event on the file (inotify)",
                    plural(untraced as u64, "run")
                )
            } else {
                String::new()
            }
        ),
        evidence,
    }
}

pub use crate::step5::judge::{judge_racer, Overlap, Race, RaceOutcome, RacerKind, MIN_TOGETHER};

// ---------------------------------------------------------------------------------------------
// step1.probe

/// One run of the step-1 probe: what it printed and its trace (mmap, munmap, brk).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeRun {
    pub stdout: String,
    pub trace: Trace,
    pub ending: Ending,
    pub outside_writes: Vec<String>,
    /// What malloc (and calloc) returned in the probe's process, as a preloaded recorder saw
    /// it: each address with the boundary tag malloc had just written before it (`None`: not
    /// recorded; a statically linked probe ignores LD_PRELOAD).
    pub returns: Option<Vec<MallocReturn>>,
    /// The bytes the recorder added to every request, so that a tag printed from a constant
    /// differs from the one malloc wrote (0: none).
    pub pad: u64,
    /// The pages it added too to requests of 64 KiB or more (an mmapped chunk's length changes).
    pub pad_pages: u64,
    /// Why nothing was recorded when the probe is dynamically linked (`None`: recorded, or a
    /// static binary, which ignores LD_PRELOAD).
    pub unrecorded: Option<Unrecorded>,
}

/// Why a dynamically linked probe's mallocs were not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unrecorded {
    /// The recorder was preloaded, yet no malloc call of the probe's process reached it (it
    /// opens its log at the first): it ran without LD_PRELOAD (it re-executed itself without
    /// it, say), or called no malloc.
    NotReached,
    /// The recorder could not be built (`cc`), so it was not preloaded.
    NotBuilt,
}

/// One pointer malloc returned, and the 8 bytes before it then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MallocReturn {
    pub address: u64,
    pub tag: u64,
}

/// A chunk the probe printed, placed by the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Its address is 16 bytes past an anonymous mmap of `len` bytes: an mmapped chunk, whose
    /// tag must be `len | IS_MMAPPED`. `from_malloc`: the recorder saw malloc return it (`None`:
    /// nothing recorded).
    Mmapped {
        address: u64,
        len: u64,
        tag_ok: bool,
        from_malloc: Option<bool>,
        /// The mapping was made by an mremap of an earlier one (a realloc that grew it).
        remapped: bool,
        /// The tag as the line printed it in decimal (`%lu`), when it did.
        decimal: Option<u64>,
    },
    /// Its address is inside the heap (brk) and, when recorded, malloc returned it; `tag_ok`:
    /// the line holds a tag with IS_MMAPPED clear (when recorded: malloc's own size).
    Heap {
        address: u64,
        tag_ok: bool,
        /// The size malloc wrote, when recorded.
        wrote: Option<u64>,
        /// The tag as the line printed it in decimal (`%lu`), when it did.
        decimal: Option<u64>,
    },
}

/// glibc's IS_MMAPPED bit of a boundary tag.
const IS_MMAPPED: u64 = 0x2;

/// A chunk line the check cannot credit: besides the chunk's address it prints `numbers`
/// candidate tags (a chunk line gives one address and ONE tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ambiguous {
    /// Its line number (from 1).
    line: usize,
    address: u64,
    numbers: usize,
}

/// The hex numbers of a line (`0x5555…`, `%x`'s `21002`, decimal sizes read as hex too), each
/// with whether it was written with `0x`.
fn hex_tokens(line: &str) -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    for token in line.split(|c: char| !(c.is_ascii_hexdigit() || c == 'x' || c == 'X')) {
        let (digits, prefixed) = match token
            .strip_prefix("0x")
            .or_else(|| token.strip_prefix("0X"))
        {
            Some(d) => (d, true),
            None => (token, false),
        };
        if digits.is_empty() || digits.len() > 16 {
            continue;
        }
        if let Ok(v) = u64::from_str_radix(digits, 16) {
            out.push((v, prefixed));
        }
    }
    out
}

/// The indexes of the numbers of a line whose address is at `at` that may be its tag, each value
/// once (the course prints the address with `%p`, then the tag with `%lx` or `%#lx`): any other number written
/// with `0x`, and one written without it after the address whose last hex digit is 0 to 7 (a
/// tag's size is a multiple of 16 and its flags take 3 bits, so letters such as the `a` of `tag`
/// are words). A number written without `0x` before the address is the request size of
/// `malloc(24) = %p`, not a tag.
///
/// A number below 16 is no tag (a chunk is at least 32 bytes: it is a flag printed on its own,
/// `is_mmapped=1`), and one written without `0x` whose digits read in decimal are another
/// candidate is that same number printed twice (`size=225282 (0x37002)`).
fn tags_of(tokens: &[(u64, bool)], at: usize) -> Vec<usize> {
    let candidates: Vec<usize> = (0..tokens.len())
        .filter(|&i| {
            let (v, prefixed) = tokens[i];
            i != at && v >= 16 && (prefixed || (i > at && v & 0xf < 8))
        })
        .collect();
    let mut out: Vec<usize> = Vec::new();
    for &i in &candidates {
        let (v, prefixed) = tokens[i];
        let twice = !prefixed
            && candidates
                .iter()
                .any(|&j| j != i && as_decimal(v) == Some(tokens[j].0));
        if !twice && !out.iter().any(|&k| tokens[k].0 == v) {
            out.push(i);
        }
    }
    out
}

/// A number read as hex (as [`hex_tokens`] reads every number) whose digits are all decimal:
/// its value read in decimal (`0x225282` → 225,282).
fn as_decimal(v: u64) -> Option<u64> {
    format!("{v:x}").parse().ok()
}

/// The first number after the address, written without `0x`, whose digits read in decimal
/// satisfy `is_tag`: the tag printed with `%lu` instead of `%lx`.
fn decimal_tag(tokens: &[(u64, bool)], at: usize, is_tag: impl Fn(u64) -> bool) -> Option<u64> {
    tokens[at + 1..]
        .iter()
        .filter(|(_, prefixed)| !prefixed)
        .filter_map(|&(v, _)| as_decimal(v))
        .find(|&d| is_tag(d))
}

fn probe_chunks(run: &ProbeRun) -> (Vec<Chunk>, Option<Ambiguous>) {
    // Anonymous mappings, in the order they were made: an mmap, or an mremap of one of them
    // (glibc's realloc of an mmapped chunk moves or grows it with mremap: the chunk is then
    // 16 bytes into the new mapping, its size the new length).
    let mut anonymous: Vec<(u64, u64, bool)> = Vec::new();
    for c in run.trace.calls.iter().filter(|c| c.ok()) {
        let made = match c.name.as_str() {
            "mmap" if c.arg_flags(3).contains(&"MAP_ANONYMOUS") => c.arg_u64(1),
            "mremap"
                if anonymous
                    .iter()
                    .any(|&(start, ..)| Some(start) == c.arg_u64(0)) =>
            {
                c.arg_u64(2)
            }
            _ => None,
        };
        if let (Some(start), Some(len)) = (c.ret_u64(), made) {
            anonymous.push((start, len, c.name == "mremap"));
        }
    }
    let brk: Vec<u64> = run
        .trace
        .calls
        .iter()
        .filter(|c| c.name == "brk" && c.ok())
        .filter_map(Syscall::ret_u64)
        .collect();
    let heap = (brk.iter().min().copied(), brk.iter().max().copied());
    let in_heap = |a: u64| matches!(heap, (Some(lo), Some(hi)) if (lo..hi).contains(&a));
    let mmapped = |a: u64| anonymous.iter().find(|(start, ..)| start + 16 == a);
    // Every tag malloc wrote at that address (a freed chunk's address can be returned again).
    let returned = |a: u64| {
        run.returns.as_ref().map(|r| {
            let tags: Vec<u64> = r.iter().filter(|m| m.address == a).map(|m| m.tag).collect();
            (!tags.is_empty()).then_some(tags)
        })
    };
    let mut chunks = Vec::new();
    let mut ambiguous = None;
    for (n, line) in run.stdout.lines().enumerate() {
        let tokens = hex_tokens(line);
        // The address: the first number (written with 0x first, then any) that is 16 bytes into
        // an anonymous mmap or inside the heap, whatever its size (a static or non-PIE
        // program's heap lies below 4 GiB).
        let Some(at) = [true, false].iter().find_map(|&prefixed| {
            tokens
                .iter()
                .position(|&(v, p)| p == prefixed && (mmapped(v).is_some() || in_heap(v)))
        }) else {
            continue;
        };
        let address = tokens[at].0;
        // Another pointer on the line (the same again, or the chunk's start) is not a tag.
        let tags: Vec<u64> = tags_of(&tokens, at)
            .into_iter()
            .map(|i| tokens[i].0)
            .filter(|&v| !in_heap(v) && mmapped(v).is_none())
            .collect();
        let heap_returns = match (mmapped(address), returned(address)) {
            (Some(_), _) => None,
            // Not a pointer malloc returned: not a chunk.
            (None, Some(None)) => continue,
            (None, Some(Some(r))) => Some(r),
            (None, None) => None,
        };
        if tags.len() > 1 {
            // One address and many tags: whichever malloc wrote would be among them.
            ambiguous.get_or_insert(Ambiguous {
                line: n + 1,
                address,
                numbers: tags.len(),
            });
            continue;
        }
        let tag = tags.first().copied();
        if let Some(&first) = mmapped(address) {
            // The mapping at that start when the line was printed: any made there (the chunk
            // may have been printed before and after a realloc grew it in place).
            let (_, len, remapped) = anonymous
                .iter()
                .filter(|(start, ..)| start + 16 == address)
                .find(|&&(_, len, _)| tag == Some(len | IS_MMAPPED))
                .copied()
                .unwrap_or(first);
            chunks.push(Chunk::Mmapped {
                address,
                len,
                remapped,
                tag_ok: tag == Some(len | IS_MMAPPED),
                from_malloc: returned(address).map(|r| r.is_some()),
                decimal: decimal_tag(&tokens, at, |d| d == len | IS_MMAPPED),
            });
            continue;
        }
        let heap_tag_ok = |t: u64| {
            t & IS_MMAPPED == 0
                && match &heap_returns {
                    Some(sizes) => sizes.iter().any(|w| t & !7 == w & !7),
                    None => t & !7 >= 32 && t & 8 == 0,
                }
        };
        chunks.push(Chunk::Heap {
            address,
            tag_ok: tag.is_some_and(heap_tag_ok),
            decimal: decimal_tag(&tokens, at, heap_tag_ok),
            // The size malloc wrote: the one printed when it is among those written at this
            // address (a freed chunk's address can be returned again), else the first.
            wrote: heap_returns.and_then(|w| {
                w.iter()
                    .find(|&&t| tag.is_some_and(|p| p & !7 == t & !7))
                    .or(w.first())
                    .map(|t| t & !7)
            }),
        });
    }
    (chunks, ambiguous)
}

/// The probe's evidence: each chunk it printed (at most 40), and whether malloc's returns were
/// recorded.
fn probe_evidence(chunks: &[Chunk], run: &ProbeRun) -> Vec<String> {
    let mut evidence: Vec<String> = chunks
        .iter()
        .take(40)
        .map(|c| match c {
            Chunk::Mmapped {
                address,
                len,
                tag_ok,
                from_malloc,
                remapped,
                ..
            } => format!(
                "{address:#x}: mmapped ({} bytes from {}{}), tag {:#x} {}",
                thousands(*len),
                if *remapped { "mremap" } else { "mmap" },
                match from_malloc {
                    Some(true) => ", returned by malloc",
                    Some(false) => ", NOT returned by malloc",
                    None => "",
                },
                len | IS_MMAPPED,
                if *tag_ok { "printed" } else { "NOT printed" }
            ),
            Chunk::Heap {
                address,
                tag_ok,
                wrote,
                ..
            } => match wrote {
                Some(size) => format!(
                    "{address:#x}: heap chunk returned by malloc, which wrote size {size:#x}: {}",
                    if *tag_ok { "printed" } else { "NOT printed" }
                ),
                None => format!(
                    "{address:#x}: heap chunk, {}",
                    if *tag_ok {
                        "a tag with IS_MMAPPED clear printed"
                    } else {
                        "NO tag with IS_MMAPPED clear printed"
                    }
                ),
            },
        })
        .collect();
    if chunks.len() > 40 {
        evidence.push(format!("… {} more", chunks.len() - 40));
    }
    evidence.push(match &run.returns {
        Some(r) => format!(
            "malloc's returns recorded by a preloaded recorder: {}, each request padded by {} \
             bytes (and {} from 64 KiB) so that its tags are not the usual ones",
            plural(r.len() as u64, "pointer"),
            run.pad,
            plural(run.pad_pages, "page")
        ),
        None => format!(
            "malloc's returns NOT recorded ({}): its chunks are placed by strace alone, and a \
             tag printed from a constant cannot be told from one read",
            match run.unrecorded {
                Some(Unrecorded::NotReached) => {
                    "a dynamically linked probe that ran without the preloaded recorder"
                }
                Some(Unrecorded::NotBuilt) => "the recorder could not be built",
                None => "a statically linked probe ignores LD_PRELOAD",
            }
        ),
    });
    evidence
}

/// Why a printed tag is wrong: an mmapped chunk's line without `len | IS_MMAPPED`, or a heap
/// chunk's without the size malloc wrote (when recorded) or any tag with IS_MMAPPED clear.
fn tag_failure(chunks: &[Chunk], run: &ProbeRun) -> Option<String> {
    if let Some(Chunk::Mmapped {
        address,
        len,
        decimal: Some(printed),
        ..
    }) = chunks
        .iter()
        .find(|c| matches!(c, Chunk::Mmapped { tag_ok: false, .. }))
    {
        return Some(format!(
            "the line of the mmapped chunk {address:#x} prints {printed}, its tag {:#x} (mmap \
             length {} | IS_MMAPPED) in decimal: print the tag in hex, with %lx",
            len | IS_MMAPPED,
            thousands(*len)
        ));
    }
    if let Some(Chunk::Mmapped { address, len, .. }) = chunks
        .iter()
        .find(|c| matches!(c, Chunk::Mmapped { tag_ok: false, .. }))
    {
        return Some(format!(
            "the line of the mmapped chunk {address:#x} does not hold its tag {:#x} (mmap length \
             {} | IS_MMAPPED{}): it prints something else than the 8 bytes before the pointer",
            len | IS_MMAPPED,
            thousands(*len),
            if run.returns.is_some() && run.pad_pages > 0 {
                format!(
                    ", its request padded by {} in this run",
                    plural(run.pad_pages, "page")
                )
            } else {
                String::new()
            }
        ));
    }
    let Some(Chunk::Heap {
        address,
        wrote,
        decimal,
        ..
    }) = chunks
        .iter()
        .find(|c| matches!(c, Chunk::Heap { tag_ok: false, .. }))
    else {
        return None;
    };
    if let Some(printed) = decimal {
        return Some(format!(
            "the line of the heap chunk {address:#x} prints {printed}, its tag {printed:#x} in \
             decimal: print the tag in hex, with %lx"
        ));
    }
    Some(match wrote {
        Some(size) => format!(
            "the line of the heap chunk {address:#x} does not hold the size malloc wrote before \
             it ({size:#x}, its request padded by {} bytes in this run): it prints something \
             else than the 8 bytes before the pointer",
            run.pad
        ),
        None => {
            format!("the line of the heap chunk {address:#x} holds no tag with IS_MMAPPED clear")
        }
    })
}

/// Why the probe's tags cannot be read at all: a chunk line with several candidate tags, or a
/// dynamically linked probe whose mallocs were not recorded.
fn unreadable(ambiguous: Option<Ambiguous>, run: &ProbeRun) -> Option<(Verdict, String)> {
    if let Some(a) = ambiguous {
        return Some((
            Verdict::Fail,
            format!(
                "line {} prints {} numbers besides the address {:#x}: which is the tag? A chunk's \
                 line gives its address (%p) and ONE tag (%lx), the 8 bytes before it",
                a.line,
                thousands(a.numbers as u64),
                a.address
            ),
        ));
    }
    match (run.returns.is_some(), run.unrecorded) {
        (false, Some(Unrecorded::NotReached)) => Some((
            Verdict::Fail,
            "it is dynamically linked, but no malloc call reached the preloaded recorder: it ran \
             without LD_PRELOAD (it re-executed itself without it, say) or called no malloc, so \
             the pointers and tags it printed cannot be set against malloc's"
                .into(),
        )),
        (false, Some(Unrecorded::NotBuilt)) => Some((
            Verdict::NotTested,
            "it is dynamically linked, but the malloc recorder could not be built (cc), so \
             malloc's returns were not recorded"
                .into(),
        )),
        _ => None,
    }
}

/// `step1.probe`: it prints chunks from the heap and from mmap, each with its boundary tag;
/// every mmapped chunk's printed tag is the length strace shows mmap was asked for, with
/// IS_MMAPPED (0x2) set, and every heap chunk's line holds a tag with that bit clear. With
/// malloc's returns recorded (`run.returns`), every mmapped chunk must be one malloc returned,
/// and every heap chunk's printed size the one malloc wrote.
pub fn judge_probe(program: Option<String>, run: &ProbeRun) -> Check {
    let (chunks, ambiguous) = probe_chunks(run);
    let evidence = probe_evidence(&chunks, run);
    let check = |verdict, reason: String, evidence| Check {
        id: "step1.probe".into(),
        program: program.clone(),
        verdict,
        reason,
        evidence,
    };
    if let Some(line) = run.outside_writes.first() {
        return check(
            Verdict::Fail,
            format!("wrote outside its scratch directory: {line}"),
            evidence,
        );
    }
    if let Some(why) = run.ending.failure() {
        return check(Verdict::Fail, format!("it {why}"), evidence);
    }
    if let Some((verdict, why)) = unreadable(ambiguous, run) {
        return check(verdict, why, evidence);
    }
    let mmapped: Vec<&Chunk> = chunks
        .iter()
        .filter(|c| matches!(c, Chunk::Mmapped { .. }))
        .collect();
    let heap = chunks.len() - mmapped.len();
    if chunks.is_empty() {
        return check(
            Verdict::Fail,
            "printed no address that malloc returned (print each chunk's address with %p)".into(),
            evidence,
        );
    }
    if mmapped.is_empty() {
        return check(
            Verdict::Fail,
            format!(
                "printed {} but none from mmap: its allocations never grew past malloc's switch",
                plural(heap as u64, "heap chunk")
            ),
            evidence,
        );
    }
    if let Some(Chunk::Mmapped { address, len, .. }) = mmapped.iter().find(|c| {
        matches!(
            c,
            Chunk::Mmapped {
                from_malloc: Some(false),
                ..
            }
        )
    }) {
        return check(
            Verdict::Fail,
            format!(
                "the mmapped chunk {address:#x} was never returned by malloc: the mmap of {} \
                 bytes before it was made by the probe itself, so its tag shows nothing of \
                 malloc's",
                thousands(*len)
            ),
            evidence,
        );
    }
    if heap == 0 {
        return check(
            Verdict::Fail,
            "printed only mmapped chunks: no heap chunk to set them against".into(),
            evidence,
        );
    }
    if let Some(why) = tag_failure(&chunks, run) {
        return check(Verdict::Fail, why, evidence);
    }
    let Some(Chunk::Mmapped { len, .. }) = mmapped.first() else {
        return check(Verdict::NotTested, "no mmapped chunk".into(), evidence);
    };
    check(
        Verdict::Pass,
        format!(
            "printed {} and {}; each mmapped chunk's tag is its mmap length with IS_MMAPPED set, \
             as strace shows (first: {:#x} for {} bytes){}",
            plural(heap as u64, "heap chunk"),
            plural(mmapped.len() as u64, "mmapped chunk"),
            len | IS_MMAPPED,
            thousands(*len),
            if run.returns.is_some() {
                "; every chunk was returned by malloc and each tag is the one malloc wrote, \
                 its requests padded in this run"
            } else {
                "; malloc's returns were not recorded (a static binary)"
            }
        ),
        evidence,
    )
}

#[cfg(test)]
mod tests;
