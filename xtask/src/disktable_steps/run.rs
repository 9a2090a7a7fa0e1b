//! Running one program under `strace -f` in a working directory, with a deadline: how it
//! ended, its stderr and its trace go into a `lab_analysis::disktable::traced::TracedRun` (stdout
//! is returned apart, for the caller to parse or keep).

use lab_analysis::disktable::traced::{Ended, TracedRun};
use std::io::Read;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use lab_trace::Trace;

/// The system calls steps 2 and 3 trace: opening and closing the table, its length (every stat
/// call: by descriptor, or by name — `?` for those an architecture lacks), mapping and
/// growing it, every way of reading or writing a descriptor (copying between descriptors
/// included), renames onto its name, io_uring and kernel AIO (which the check cannot see
/// through), and clone/clone3 (whose `CLONE_UNTRACED` starts a process `strace -f` misses).
pub const FILTER: &str = "openat,open,creat,close,dup,dup2,dup3,fcntl,fstat,newfstatat,statx,\
                          ?stat,?lstat,?fstatat64,\
                          lseek,mmap,munmap,mremap,msync,madvise,mincore,ftruncate,fallocate,\
                          fadvise64,flock,fsync,fdatasync,read,pread64,readv,preadv,preadv2,\
                          write,pwrite64,writev,pwritev,pwritev2,copy_file_range,sendfile,\
                          splice,tee,rename,renameat,renameat2,link,linkat,io_uring_setup,\
                          io_uring_enter,io_uring_register,io_setup,io_submit,io_getevents,\
                          io_pgetevents,io_cancel,io_destroy,clone,clone3";

/// At most this much of a program's stdout or stderr is kept (the rest is read and dropped).
const KEEP_BYTES: usize = 8 << 20;

/// What to run.
pub struct Spec<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    /// The working directory.
    pub cwd: &'a Path,
    /// A file to read stdin from (otherwise /dev/null).
    pub stdin: Option<&'a Path>,
    /// Killed (with its whole process group) if still running after this long.
    pub deadline: Duration,
    /// Keep `LD_LIBRARY_PATH` (someone else's program may need it). Otherwise it is removed:
    /// `cargo run` sets it for xtask, and the loader's search through it would fill the trace.
    pub keep_library_path: bool,
}

impl<'a> Spec<'a> {
    pub fn new(program: &'a Path, args: &[&str], cwd: &'a Path) -> Spec<'a> {
        Spec {
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
            cwd,
            stdin: None,
            deadline: Duration::from_secs(60),
            keep_library_path: false,
        }
    }
}

/// Runs `spec` under `strace -f -e trace=FILTER`, the trace written into `traces`; returns the
/// run and its stdout. A program killed by a signal or at its deadline is a result, not an error.
pub fn run(spec: &Spec<'_>, traces: &Path) -> anyhow::Result<(TracedRun, String)> {
    run_with(spec, traces, false)
}

/// Like [`run`], under `strace -y`: someone else's program, whose reads and writes of the table
/// must be seen in every thread and child and through every name it opens the table by.
pub fn run_with_fd_paths(spec: &Spec<'_>, traces: &Path) -> anyhow::Result<(TracedRun, String)> {
    run_with(spec, traces, true)
}

fn run_with(spec: &Spec<'_>, traces: &Path, fd_paths: bool) -> anyhow::Result<(TracedRun, String)> {
    lab_trace::run::check()?;
    static N: AtomicU32 = AtomicU32::new(0);
    let trace_file = traces.join(format!("run-{}.strace", N.fetch_add(1, Ordering::Relaxed)));
    let mut cmd = if fd_paths {
        lab_trace::run::command_with_fd_paths(spec.program, &spec.args, FILTER, &trace_file)
    } else {
        lab_trace::run::command(spec.program, &spec.args, FILTER, &trace_file)
    };
    cmd.current_dir(spec.cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !spec.keep_library_path {
        cmd.env_remove("LD_LIBRARY_PATH");
    }
    match spec.stdin {
        Some(path) => cmd.stdin(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => cmd.stdin(Stdio::null()),
    };
    // Its own process group, so a deadline kills strace and everything it started.
    let mut child = crate::interrupt::spawn_group(&mut cmd)
        .with_context(|| format!("cannot run strace on {}", spec.program.display()))?;
    let mut stdout = Drain::start(child.stdout.take(), KEEP_BYTES);
    let mut stderr = Drain::start(child.stderr.take(), KEEP_BYTES);
    let (status, timed_out) = wait_until(&mut child, spec.deadline)?;
    let (stdout, stderr) = (stdout.take(), stderr.take());
    let trace = lab_trace::run::parse_file(&trace_file)?;
    let _ = std::fs::remove_file(&trace_file);
    let mut argv = vec![spec.program.display().to_string()];
    argv.extend(spec.args.iter().cloned());
    let ended = ended(&trace, status, timed_out);
    Ok((
        TracedRun {
            argv,
            ended,
            stderr,
            trace,
        },
        stdout,
    ))
}

/// Runs `spec` without strace (for a child that must be measured alone, e.g. in a cgroup);
/// returns how it ended, its stdout and its stderr.
pub fn run_untraced(spec: &Spec<'_>) -> anyhow::Result<(Ended, String, String)> {
    let mut cmd = std::process::Command::new(spec.program);
    cmd.args(&spec.args)
        .current_dir(spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !spec.keep_library_path {
        cmd.env_remove("LD_LIBRARY_PATH");
    }
    let mut child = crate::interrupt::spawn_group(&mut cmd)
        .with_context(|| format!("cannot run {}", spec.program.display()))?;
    let mut stdout = Drain::start(child.stdout.take(), KEEP_BYTES);
    let mut stderr = Drain::start(child.stderr.take(), KEEP_BYTES);
    let (status, timed_out) = wait_until(&mut child, spec.deadline)?;
    let ended = ended(&Trace::default(), status, timed_out);
    Ok((ended, stdout.take(), stderr.take()))
}

/// A pipe read to its end on a thread: the first `keep` bytes kept, all bytes counted.
pub struct Drain {
    bytes: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Drain {
    pub fn start(pipe: Option<impl Read + Send + 'static>, keep: usize) -> Drain {
        let bytes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&bytes);
        let thread = pipe.map(|mut pipe| {
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let mut buf = [0u8; 1 << 16];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    let room = keep.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                kept
            })
        });
        Drain { bytes, thread }
    }

    /// How many bytes it has read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// What it kept, once the pipe has ended.
    pub fn take(&mut self) -> String {
        let kept = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        String::from_utf8_lossy(&kept).into_owned()
    }
}

/// Waits for `child` (started by [`crate::interrupt::spawn_group`]), killing its process group
/// at the deadline, or as soon as it exits: what it left running there (a helper holding its
/// stdout would keep the drains from ever ending) goes with it.
fn wait_until(
    child: &mut Child,
    deadline: Duration,
) -> anyhow::Result<(std::process::ExitStatus, bool)> {
    let start = Instant::now();
    loop {
        let exited = crate::interrupt::exited(child).context("cannot wait for strace")?;
        let timed_out = !exited && start.elapsed() >= deadline;
        if exited || timed_out {
            let status = crate::interrupt::end_group(child).context("cannot wait for strace")?;
            return Ok((status, timed_out));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How the traced program (the first process of the trace) ended: its `+++` line, or strace's
/// own status (strace exits with the tracee's status and re-raises its fatal signal).
fn ended(trace: &Trace, status: std::process::ExitStatus, timed_out: bool) -> Ended {
    match main_exit(trace) {
        Some(e) if !timed_out => Ended {
            code: e.code,
            signal: e.killed_by.clone(),
            timed_out,
        },
        _ => Ended {
            code: if timed_out { None } else { status.code() },
            signal: status.signal().map(signal_name),
            timed_out,
        },
    }
}

/// The `+++` line of the traced program itself (the first process of the trace), if it has one.
pub fn main_exit(trace: &Trace) -> Option<&lab_trace::Exit> {
    let first_pid = trace
        .calls
        .first()
        .and_then(|c| c.pid)
        .or_else(|| trace.exits.first().and_then(|e| e.pid));
    trace
        .exits
        .iter()
        .find(|e| first_pid.is_none() || e.pid == first_pid)
}

/// The name of a Linux signal number (x86-64 numbering).
pub fn signal_name(n: i32) -> String {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(n)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("signal {n}"), |s| s.to_string())
}

/// A directory for trace files inside a scratch directory.
pub fn traces_dir(scratch: &Path) -> anyhow::Result<PathBuf> {
    let dir = scratch.join("traces");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_follow_linux_numbering() {
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(7), "SIGBUS");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(99), "signal 99");
    }

    #[test]
    fn the_first_process_decides_how_the_run_ended() {
        let trace = lab_trace::strace::parse_trace(
            "\
10 openat(AT_FDCWD, \"table.bin\", O_RDWR) = 3
11 write(1, \"x\", 1) = 1
11 +++ exited with 0 +++
10 --- SIGBUS {si_signo=SIGBUS, si_code=BUS_ADRERR, si_addr=0x7f0000002000} ---
10 +++ killed by SIGBUS +++
",
        );
        let e = ended(&trace, std::process::ExitStatus::from_raw(7), false);
        assert_eq!(e.code, None);
        assert_eq!(e.signal.as_deref(), Some("SIGBUS"));
        assert!(!e.success());
        let timed = ended(&trace, std::process::ExitStatus::from_raw(9), true);
        assert!(timed.timed_out);
        assert_eq!(timed.signal.as_deref(), Some("SIGKILL"));
        assert_eq!(timed.to_string(), "killed at its deadline");
    }

    #[test]
    fn a_trace_survives_its_text_form() {
        let trace = lab_trace::strace::parse_trace(
            "\
10 openat(AT_FDCWD, \"table.bin\", O_RDWR) = 3
10 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0 <unfinished ...>
11 write(1, \"x\", 1) = 1
10 <... mmap resumed>) = 0x7f0000000000
10 --- SIGBUS {si_signo=SIGBUS, si_code=BUS_ADRERR, si_addr=0x7f0000002000} ---
10 close(3) = 0
11 +++ exited with 0 +++
10 +++ killed by SIGBUS +++
",
        );
        let again = lab_trace::strace::parse_trace(
            &lab_analysis::disktable::traced::trace_text::to_text(&trace),
        );
        assert_eq!(again, trace);
        assert_eq!(again.signals[0].after_calls, 3);
    }
}
