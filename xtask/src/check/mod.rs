//! `check DIR`: a TA's check of a student's submission.
//!
//! DIR is copied to a scratch directory (DIR itself is never written), built there with `make`
//! when it has a Makefile, and its programs (`reader`, `writer`, `racer`, `racer_atomic`, or the
//! ones the flags name) are judged with hidden variation: tables made fresh for every check with
//! random counts, sizes and values ([`reader`], [`writer`]), races with 1, 2 and 3 participants
//! ([`racer`]). Every program runs confined ([`sandbox`]); the verdicts come from
//! [`judge`]'s pure functions over what the runs showed, and are printed for the TA ([`render`]:
//! lines, `--json`, `--markdown FILE`).

pub use lab_analysis::check as judge;
mod probe;
mod racer;
pub(crate) mod reader;
mod render;
pub(crate) mod sandbox;
pub(crate) mod tables;
mod watch;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use lab_trace::Trace;
use serde::Serialize;

use judge::{Check, Ending};
use sandbox::{Sandbox, Stop};

/// `check DIR [--reader P] [--writer P] [--racer P] [--atomic-racer P] [--probe P] [--json]
/// [--markdown FILE]`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// The submission: a directory with the student's sources (and a Makefile) or programs.
    #[arg(value_name = "DIR", value_parser = crate::CallerPath)]
    pub dir: PathBuf,
    /// The step-2 reader (default: `reader` in DIR after make, or in its bin/, build/, out/).
    #[arg(long, value_name = "P")]
    pub reader: Option<PathBuf>,
    /// The step-3 writer (default: `writer`).
    #[arg(long, value_name = "P")]
    pub writer: Option<PathBuf>,
    /// The step-5 racer, `total++` (default: `racer`).
    #[arg(long, value_name = "P")]
    pub racer: Option<PathBuf>,
    /// The step-5 racer with `lock incq` on total (default: `racer_atomic`).
    #[arg(long, value_name = "P")]
    pub atomic_racer: Option<PathBuf>,
    /// The step-1 probe (default: `probe`).
    #[arg(long, value_name = "P")]
    pub probe: Option<PathBuf>,
    /// Print one JSON document on stdout: {"submission", "build", "skipped", "checks"}.
    #[arg(long)]
    pub json: bool,
    /// Also write the result as Markdown to FILE (for the TA's records); a FILE that cannot be
    /// written is refused before anything runs.
    #[arg(long, value_name = "FILE", value_parser = crate::CallerPath)]
    pub markdown: Option<PathBuf>,
}

/// What `make` did.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub ran: bool,
    /// Its exit status (`None`: not run, or killed).
    pub status: Option<i32>,
    /// The last lines of its output.
    pub log_tail: String,
    /// All of its output, searched for the error lines of a program it did not build.
    #[serde(skip)]
    pub log: String,
}

/// The whole result (the `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub submission: String,
    pub build: Build,
    /// What could not be read in DIR and was left out of the copy: each path in DIR with why.
    pub skipped: Vec<String>,
    pub checks: Vec<Check>,
}

impl Report {
    /// Every check was not-tested: the submission held none of the programs (or none could be
    /// run), which must not look like a pass.
    pub fn nothing_tested(&self) -> bool {
        self.checks
            .iter()
            .all(|c| c.verdict == judge::Verdict::NotTested)
    }
}

/// `make` is killed after this long.
const MAKE_DEADLINE: Duration = Duration::from_secs(120);
/// The programs' names in a submission, by check.
const NAMES: [(&str, &str); 5] = [
    ("step1.probe", "probe"),
    ("step2.reader", "reader"),
    ("step3.writer", "writer"),
    ("step5.racer", "racer"),
    ("step5.atomic-racer", "racer_atomic"),
];
/// A submission larger than this is not copied.
const MAX_SUBMISSION_BYTES: u64 = 256 << 20;
/// Where a Makefile commonly puts what it builds: the course's names are looked for there too
/// (after DIR itself).
const BUILD_DIRS: [&str; 3] = ["bin", "build", "out"];

/// Runs the check; the exit status is 0 when nothing failed and something was tested, 1 when a
/// check failed, nothing was tested or the lab could not run, 2 for usage errors.
pub fn main(args: CheckArgs) -> ExitCode {
    if let Err(problem) = usage(&args) {
        crate::out::error(&format!(
            "{problem} (see '{} check --help')",
            crate::program_name()
        ));
        return ExitCode::from(2);
    }
    if args.json {
        crate::out::to_stderr();
    }
    match run(&args) {
        Ok(report) => {
            if let Err(e) = render::emit(&report, &args) {
                crate::out::error(&format!("{e:#}"));
                return ExitCode::FAILURE;
            }
            if report.nothing_tested()
                || report
                    .checks
                    .iter()
                    .any(|c| c.verdict == judge::Verdict::Fail)
            {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            crate::out::error(&format!("{e:#}"));
            match e.downcast_ref::<Usage>() {
                Some(_) => ExitCode::from(2),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// A usage error found only once the submission was built (a flag naming no program).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(args: &CheckArgs) -> Result<(), String> {
    match std::fs::metadata(&args.dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", args.dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{}: no such directory", args.dir.display()))
        }
        Err(e) => return Err(format!("{}: {e}", args.dir.display())),
    }
    // A program a flag names must be in DIR or here, unless make may still build it.
    let has_makefile = ["Makefile", "makefile", "GNUmakefile"]
        .iter()
        .any(|m| args.dir.join(m).is_file());
    let flags = [
        ("--reader", &args.reader),
        ("--writer", &args.writer),
        ("--racer", &args.racer),
        ("--atomic-racer", &args.atomic_racer),
        ("--probe", &args.probe),
    ];
    // Without a Makefile nothing will change: what it names must be a program already.
    for (option, flag) in flags {
        let Some(p) = flag.as_deref().filter(|_| !has_makefile) else {
            continue;
        };
        match named(&args.dir, p) {
            Some(c) => crate::disktable_steps::program::executable(&c)
                .map(drop)
                .map_err(|why| format!("{option} {why}"))?,
            None => {
                return Err(format!(
                    "{option} {}: no such program (neither in {} nor here)",
                    p.display(),
                    args.dir.display()
                ))
            }
        }
    }
    if let Some(md) = &args.markdown {
        markdown_usage(md).map_err(|why| format!("--markdown {}: {why}", md.display()))?;
    }
    Ok(())
}

/// Why `--markdown FILE` could not be written at the end of the check, found before it starts:
/// a directory, an existing file that is not a regular one ([`not_regular`]), no such
/// directory, or no permission to write there ([`writable`]).
fn markdown_usage(md: &Path) -> Result<(), String> {
    if md.is_dir() {
        return Err("is a directory".into());
    }
    if let Some(kind) = not_regular(md) {
        return Err(format!("is {kind}, not a regular file"));
    }
    let parent = md
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => writable(md, parent),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("{}: {e}", parent.display()))
        }
        _ => Err("no such directory".into()),
    }
}

/// What an existing `file` (symbolic links followed) is when the Markdown copy must not go
/// there: a FIFO (opening it blocks until someone reads, after a check of minutes), a socket (no
/// file can be opened), a block device (it would be overwritten), a character device other than
/// `/dev/null`. `None` for a regular file, for no file at all, for `/dev/null`, and for this
/// process's own stdout or stderr (`--markdown /dev/stdout`, whatever fd 1 is).
fn not_regular(file: &Path) -> Option<lab_cli::file::FileKind> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(file).ok()?;
    let same = |other: Option<std::fs::Metadata>| {
        other.is_some_and(|o| o.dev() == m.dev() && o.ino() == m.ino())
    };
    let stream = |fd: std::os::fd::BorrowedFd<'_>| {
        fd.try_clone_to_owned()
            .ok()
            .and_then(|fd| std::fs::File::from(fd).metadata().ok())
    };
    if m.is_dir()
        || same(std::fs::metadata("/dev/null").ok())
        || same(stream(std::os::fd::AsFd::as_fd(&std::io::stdout())))
        || same(stream(std::os::fd::AsFd::as_fd(&std::io::stderr())))
    {
        return None;
    }
    lab_cli::file::FileKind::of(m.file_type())
}

/// Whether `file` can be written (or, when it does not exist yet, created in `dir`), asked
/// without creating anything: a check that runs for minutes must not find out only at its end
/// that its Markdown copy has nowhere to go. `access(W_OK)` answers for the real user and sees a
/// read-only mount, which stops root too; a kernel-made file system (`/proc`, `/sys`) may let
/// root pass `access` but holds no file of ours.
fn writable(file: &Path, dir: &Path) -> Result<(), String> {
    let (asked, cannot) = if std::fs::metadata(file).is_ok() {
        (file, "cannot write it".to_string())
    } else {
        (dir, format!("cannot create it in {}", dir.display()))
    };
    crate::sys::may_write(asked).map_err(|e| format!("{cannot}: {e}"))?;
    match crate::sys::pseudo_file_system(asked) {
        Some(fs) => Err(format!(
            "{cannot}: it is on {fs}, a file system made by the kernel"
        )),
        None => Ok(()),
    }
}

/// The scratch directory of one check, removed (with everything in it) when dropped, or by the
/// lab's interrupt handling when a signal ends the check first.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        // What a check that was killed left behind.
        for stale in sandbox::stale(&std::env::temp_dir()) {
            let _ = std::fs::remove_dir_all(stale);
        }
        let path = std::env::temp_dir().join(format!("{}{}", sandbox::PREFIX, std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        // Canonical, so the paths in traces compare with it (the temporary directory may be
        // reached through a symbolic link): resolved before it is made and registered.
        let path = std::fs::canonicalize(std::env::temp_dir())
            .map(|tmp| tmp.join(path.file_name().unwrap_or_default()))
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        crate::interrupt::create_dir(&path)
            .with_context(|| format!("cannot create scratch directory {}", path.display()))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        crate::interrupt::remove_dir(&self.0);
    }
}

fn run(args: &CheckArgs) -> anyhow::Result<Report> {
    lab_trace::run::check()?;
    let scratch = Scratch::new()?;
    let sandbox = Sandbox::new(&scratch.0)?;
    let sub = scratch.0.join("submission");
    let mut copy = Copy::default();
    copy_tree(&args.dir, &sub, &mut copy)
        .with_context(|| format!("cannot copy {} to a scratch directory", args.dir.display()))?;
    let skipped: Vec<String> = copy
        .skipped
        .iter()
        .map(|(path, why)| format!("{}: {why}", args.dir.join(path).display()))
        .collect();
    if !skipped.is_empty() {
        crate::out::progress(&format!(
            "left out of the copy, as they cannot be read: {}",
            skipped.join("; ")
        ));
    }
    crate::out::progress(&format!(
        "checking {} ({})",
        args.dir.display(),
        sandbox.describe()
    ));
    let build = make(&sandbox, &sub)?;
    let mut checks = Vec::new();
    let flags = [
        &args.probe,
        &args.reader,
        &args.writer,
        &args.racer,
        &args.atomic_racer,
    ];
    for ((id, name), flag) in NAMES.iter().zip(flags) {
        let unreadable = unread(&copy.skipped, name).filter(|_| flag.is_none());
        let program = match (find(&sub, name, flag.as_deref()), unreadable) {
            (Ok(p), _) => p,
            // Its source or program could not be read: nothing to judge.
            (Err(why), Some((path, cause))) => {
                checks.push(Check::not_tested(
                    id,
                    None,
                    format!("{why}: {} could not be read ({cause})", path.display()),
                ));
                continue;
            }
            // A program the TA named must be there: a usage error.
            (Err(why), _) if flag.is_some() => {
                let option = id.split('.').nth(1).unwrap_or(id);
                return Err(Usage(format!("--{option} {why}")).into());
            }
            // The submission's Makefile did not build it: that is the submission's failure.
            // A program whose build failed (make -k built the others) is failed with make's
            // error lines for it.
            (Err(why), _)
                if build.ran
                    && build.status != Some(0)
                    && (*id != "step1.probe" || !build_errors(&build.log, name).is_empty()) =>
            {
                let errors = build_errors(&build.log, name);
                checks.push(Check {
                    id: id.to_string(),
                    program: None,
                    verdict: judge::Verdict::Fail,
                    reason: format!(
                        "{why}: make {}{}",
                        build.status.map_or("was killed".to_string(), |s| format!(
                            "failed with status {s}"
                        )),
                        errors.first().map_or(String::new(), |e| format!(": {e}"))
                    ),
                    evidence: if errors.is_empty() {
                        build.log_tail.lines().map(str::to_string).collect()
                    } else {
                        errors
                    },
                });
                continue;
            }
            (Err(why), _) => {
                checks.push(Check::not_tested(id, None, why));
                continue;
            }
        };
        let shown = Some(shown_path(&program, &sub, &args.dir));
        crate::out::progress(&format!("{id}: {}", program.display()));
        let mut check = match *id {
            "step1.probe" => probe::check(&sandbox, &program, shown)?,
            "step2.reader" => reader::check(&sandbox, &program, shown)?,
            "step3.writer" => writer::check(&sandbox, &program, shown)?,
            "step5.racer" => racer::check(&sandbox, &program, shown, judge::RacerKind::Racy)?,
            _ => racer::check(&sandbox, &program, shown, judge::RacerKind::Atomic)?,
        };
        if let (None, Ok(rel)) = (flag, program.strip_prefix(&sub)) {
            if rel.parent().is_some_and(|d| !d.as_os_str().is_empty()) {
                check.evidence.insert(
                    0,
                    format!(
                        "found as {} (no {name} at the top of the submission)",
                        rel.display()
                    ),
                );
            }
        }
        checks.push(check);
    }
    Ok(Report {
        submission: args.dir.display().to_string(),
        build,
        skipped,
        checks,
    })
}

/// What copying the submission found: the bytes copied so far, and each entry left out (its
/// path in DIR, and why it could not be read).
#[derive(Default)]
struct Copy {
    bytes: u64,
    skipped: Vec<(PathBuf, String)>,
}

/// The entry left out of the copy that held program `name` or its source (`reader`,
/// `reader.c`, or a directory above one), if one was.
fn unread<'a>(skipped: &'a [(PathBuf, String)], name: &str) -> Option<(&'a Path, &'a str)> {
    skipped
        .iter()
        .find(|(path, _)| {
            let file = path.file_name().unwrap_or_default().to_string_lossy();
            file == name || file.strip_prefix(name).is_some_and(|r| r.starts_with('.'))
        })
        .map(|(path, why)| (path.as_path(), why.as_str()))
}

/// The lines of make's output that tell why `name` was not built: the compiler's errors in
/// `name.c` (or another file of that stem) and make's `[…: name] Error` and `No rule to make
/// target` lines for it (at most 5).
fn build_errors(log: &str, name: &str) -> Vec<String> {
    let source = |l: &str| {
        l.split(':').next().is_some_and(|file| {
            let stem = Path::new(file).file_stem().unwrap_or_default();
            stem == name && l.contains("error")
        })
    };
    let make = |l: &str| {
        (l.contains("***")
            && (l.contains(&format!(": {name}]")) || l.contains(&format!("'{name}'"))))
            || (l.contains("No rule to make target") && l.contains(&format!("'{name}")))
    };
    log.lines()
        .filter(|l| source(l) || make(l))
        .take(5)
        .map(str::to_string)
        .collect()
}

/// Copies `from` into `to` (files, directories, symbolic links as links), bounded in size. A
/// `.git` directory is left out; so is any entry that cannot be read (a TA who is not root may
/// not read all of a student's directory), noted in `copy.skipped` with why.
fn copy_tree(from: &Path, to: &Path, copy: &mut Copy) -> anyhow::Result<()> {
    copy_dir(from, to, Path::new(""), copy)
}

/// Why a read failed, as a TA reads it: `Permission denied`, without `(os error 13)`.
fn cause(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.split_once(" (os error") {
        Some((why, _)) => why.to_string(),
        None => text,
    }
}

/// [`copy_tree`] of `from`, which is `rel` in DIR.
fn copy_dir(from: &Path, to: &Path, rel: &Path, copy: &mut Copy) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        // DIR itself must be readable; a directory in it is left out.
        Err(e) if !rel.as_os_str().is_empty() => {
            copy.skipped.push((rel.to_path_buf(), cause(&e)));
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", from.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let kind = entry.file_type()?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let rel = rel.join(entry.file_name());
        if kind.is_symlink() {
            let target = std::fs::read_link(&src)?;
            std::os::unix::fs::symlink(&target, &dst)
                .with_context(|| format!("cannot copy the link {}", src.display()))?;
        } else if kind.is_dir() {
            if entry.file_name() != ".git" {
                copy_dir(&src, &dst, &rel, copy)?;
            }
        } else if kind.is_file() {
            // What cannot be opened is left out; a failure to write the copy is the lab's.
            if let Err(e) = std::fs::File::open(&src) {
                copy.skipped.push((rel, cause(&e)));
                continue;
            }
            copy.bytes += entry.metadata()?.len();
            if copy.bytes > MAX_SUBMISSION_BYTES {
                anyhow::bail!("the submission is larger than 256 MiB");
            }
            std::fs::copy(&src, &dst).with_context(|| format!("cannot copy {}", src.display()))?;
        }
    }
    Ok(())
}

/// Runs `make` in the copy when it has a Makefile (confined and bounded, as any of its code).
fn make(sandbox: &Sandbox, sub: &Path) -> anyhow::Result<Build> {
    if !["Makefile", "makefile", "GNUmakefile"]
        .iter()
        .any(|m| sub.join(m).is_file())
    {
        return Ok(Build {
            ran: false,
            status: None,
            log_tail: String::new(),
            log: String::new(),
        });
    }
    crate::out::progress("running make in the scratch copy");
    // Keep going past a program that does not compile: the others are judged.
    let job = sandbox.spawn(Path::new("make"), &["-k".to_string()], sub, None, &[])?;
    let finished = job.wait(MAKE_DEADLINE, None)?;
    let mut log = format!("{}{}", finished.stdout, finished.stderr);
    match &finished.stop {
        Stop::Ended => {}
        Stop::TimedOut { seconds, .. } => log.push_str(&format!(
            "\n(make was still running after {seconds:.0} s and was killed)"
        )),
        Stop::Flooded { bytes } | Stop::TraceFlooded { bytes } => {
            log.push_str(&format!("\n(make printed {bytes} bytes and was killed)"))
        }
    }
    let lines: Vec<&str> = log.trim_end().lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    Ok(Build {
        ran: true,
        status: match finished.stop {
            Stop::Ended => finished.status.and_then(|s| s.code()),
            _ => None,
        },
        log_tail: tail,
        log,
    })
}

/// The program for a check: the flag's path (in the copy of DIR, else from the current
/// directory), or `name` in the copy, at its top or in one of [`BUILD_DIRS`]. `Err`: why there
/// is none (naming a file of that name elsewhere in the submission, for the flag that would
/// take it), or why it cannot be run.
fn find(sub: &Path, name: &str, flag: Option<&Path>) -> Result<PathBuf, String> {
    let found = match flag {
        Some(p) => named(sub, p),
        None => std::iter::once(sub.join(name))
            .chain(BUILD_DIRS.iter().map(|d| sub.join(d).join(name)))
            .find(|c| c.is_file()),
    };
    match (found, flag) {
        (Some(c), _) => crate::disktable_steps::program::executable(&c),
        (None, Some(p)) => Err(format!(
            "{}: no such program (neither in the submission after make nor here)",
            p.display()
        )),
        (None, None) => {
            let mut elsewhere = Vec::new();
            files_named(sub, name, 4, &mut elsewhere);
            let option = NAMES
                .iter()
                .find(|(_, n)| *n == name)
                .and_then(|(id, _)| id.split('.').nth(1))
                .unwrap_or(name);
            Err(format!(
                "no program named {name} in the submission (after make){}",
                match elsewhere.first().and_then(|p| p.strip_prefix(sub).ok()) {
                    Some(rel) => format!(
                        "; {} exists: use --{option} {}",
                        rel.display(),
                        rel.display()
                    ),
                    None => String::new(),
                }
            ))
        }
    }
}

/// The regular files named `name` under `dir`, `depth` levels down at most, in name order.
fn files_named(dir: &Path, name: &str, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_file() && e.file_name() == name {
            out.push(e.path());
        } else if kind.is_dir() && depth > 0 {
            files_named(&e.path(), name, depth - 1, out);
        }
    }
}

/// What a flag's path names: in `dir` first, else from the current directory; a regular file
/// before anything else there (a directory, a FIFO, a symbolic link to nothing), which
/// [`executable`](crate::disktable_steps::program::executable) then refuses by name.
fn named(dir: &Path, flag: &Path) -> Option<PathBuf> {
    let candidates = [dir.join(flag), flag.to_path_buf()];
    let file = candidates.iter().find(|c| c.is_file());
    file.or_else(|| candidates.iter().find(|c| c.symlink_metadata().is_ok()))
        .cloned()
}

/// A program as the TA knows it: its path in DIR, or as given.
fn shown_path(program: &Path, sub: &Path, dir: &Path) -> String {
    match program.strip_prefix(sub) {
        Ok(rel) => dir.join(rel).display().to_string(),
        Err(_) => program.display().to_string(),
    }
}

/// One traced run of a submitted program: how it ended, its trace, what it printed.
pub struct TracedRun {
    pub ending: Ending,
    pub trace: Trace,
    pub stdout: String,
    pub outside_writes: Vec<String>,
}

/// The system calls a reader or writer run is traced for: the table's (as run-step traces them)
/// and every call that writes a path.
fn table_filter() -> String {
    format!(
        "{},{}",
        crate::disktable_steps::run::FILTER,
        judge::PATH_WRITE_FILTER
    )
}

/// What a run is traced for, and its environment beyond the sandbox's.
struct Tracing<'a> {
    filter: &'a str,
    env: &'a [(&'a str, &'a str)],
}

/// Runs `program args` in `cwd` under strace, confined, killed at `deadline`.
fn run_traced(
    sandbox: &Sandbox,
    program: &Path,
    args: &[String],
    cwd: &Path,
    deadline: Duration,
    tracing: Tracing<'_>,
) -> anyhow::Result<TracedRun> {
    run_confined(sandbox, program, args, cwd, deadline, Some(tracing))
}

/// Runs `program args` in `cwd` confined and killed at `deadline`, under strace when `tracing`
/// says how (else its trace is empty: a run for a program that may notice a tracer).
fn run_confined(
    sandbox: &Sandbox,
    program: &Path,
    args: &[String],
    cwd: &Path,
    deadline: Duration,
    tracing: Option<Tracing<'_>>,
) -> anyhow::Result<TracedRun> {
    let trace_file = sandbox.trace_file();
    let job = sandbox.spawn(
        program,
        args,
        cwd,
        tracing.as_ref().map(|t| (t.filter, trace_file.as_path())),
        tracing.as_ref().map_or(&[], |t| t.env),
    )?;
    let finished = job.wait(deadline, tracing.is_some().then_some(trace_file.as_path()))?;
    let trace = match finished.stop {
        // A flooded trace is not read back.
        Stop::TraceFlooded { .. } => Trace::default(),
        _ if tracing.is_none() => Trace::default(),
        _ => lab_trace::run::parse_file(&trace_file).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(&trace_file);
    let ending = ending(&trace, &finished);
    let outside_writes = judge::outside_writes(
        &trace,
        &sandbox.scratch().display().to_string(),
        &cwd.display().to_string(),
    );
    Ok(TracedRun {
        ending,
        trace,
        stdout: finished.stdout,
        outside_writes,
    })
}

/// How the program (the first process of the trace) ended.
fn ending(trace: &Trace, finished: &sandbox::Finished) -> Ending {
    let exit = crate::disktable_steps::run::main_exit(trace);
    match &finished.stop {
        Stop::TimedOut { seconds, killed } => Ending::TimedOut {
            seconds: *seconds,
            main_exited: exit.is_some(),
            killed: *killed,
        },
        Stop::Flooded { bytes } => Ending::Flooded { bytes: *bytes },
        Stop::TraceFlooded { bytes } => Ending::TraceFlooded { bytes: *bytes },
        Stop::Ended => match exit {
            Some(e) => match (&e.killed_by, e.code) {
                (Some(sig), _) if sig == "SIGKILL" && finished.oom_kills.unwrap_or(0) > 0 => {
                    Ending::Signalled {
                        signal: "SIGKILL (the OOM killer, at the run's 1 GiB memory limit)".into(),
                    }
                }
                (Some(sig), _) => Ending::Signalled {
                    signal: sig.clone(),
                },
                (None, code) => Ending::Exited {
                    code: code.unwrap_or(-1),
                },
            },
            None => {
                use std::os::unix::process::ExitStatusExt as _;
                match finished.status {
                    Some(s) if s.signal().is_some() => Ending::Signalled {
                        signal: crate::disktable_steps::run::signal_name(s.signal().unwrap_or(0)),
                    },
                    Some(s) => Ending::Exited {
                        code: s.code().unwrap_or(-1),
                    },
                    None => Ending::Exited { code: -1 },
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_dev_null_and_our_own_streams_may_take_the_markdown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("check.md");
        assert_eq!(not_regular(&file), None, "no file yet");
        std::fs::write(&file, "old").unwrap();
        assert_eq!(not_regular(&file), None);
        assert_eq!(not_regular(Path::new("/dev/null")), None);
        assert_eq!(
            not_regular(Path::new("/dev/zero")).map(|k| k.to_string()),
            Some("a character device".to_string())
        );
    }
}
