//! A program running under strace for step 4: started, watched through /proc, stopped with
//! SIGINT and reaped, and killed and reaped on every other path (Drop). strace leads a process
//! group of its own, started and ended through [`crate::interrupt`], so a Ctrl-C or SIGTERM of
//! the lab kills the program too (foo and bar run until they are stopped).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use foobar_events::Event;

use crate::sys;
use lab_analysis::step4::evidence::{Faults, Printed, PrintedSymbol};
use lab_trace::procstat::ProcessStat;

/// What strace records: enough to see the loader at work (its reads of the ELF headers too).
pub use lab_analysis::step4::FILTER;
/// How long a program may take to start, to load its library or to stop.
pub const WAIT: Duration = Duration::from_secs(30);
/// How often /proc is polled while waiting for a condition.
const POLL: Duration = Duration::from_millis(5);

/// How to start one program.
#[derive(Debug, Clone)]
pub struct Launch {
    /// `foo` or `bar`.
    pub name: &'static str,
    pub path: PathBuf,
    pub args: Vec<String>,
    /// `LD_LIBRARY_PATH` for the program (`None`: removed from its environment).
    pub ld_library_path: Option<String>,
    /// Our programs print JSON events on stdout (`--json`); others print text we do not read.
    pub events: bool,
}

/// A program running under `strace -f`.
pub struct Running {
    pub name: &'static str,
    /// The program file.
    pub path: PathBuf,
    /// When strace was started.
    started: Instant,
    strace: Child,
    /// The traced program (strace's child).
    pub pid: u32,
    pub trace_file: PathBuf,
    stdout_file: Option<PathBuf>,
    stderr_file: PathBuf,
    lines: Option<mpsc::Receiver<String>>,
    pub printed: Printed,
    /// strace's status, once it has been reaped.
    status: Option<ExitStatus>,
}

impl Running {
    /// Starts `launch` under strace in `dir` and finds the program's own pid.
    pub fn start(launch: &Launch, dir: &Path) -> anyhow::Result<Running> {
        let trace_file = dir.join(format!("{}.strace", launch.name));
        let stderr_file = dir.join(format!("{}.stderr", launch.name));
        let stdout_file = dir.join(format!("{}.stdout", launch.name));
        let mut cmd = lab_trace::run::command(&launch.path, &launch.args, FILTER, &trace_file);
        cmd.current_dir(dir).stdin(Stdio::null()).stderr(
            std::fs::File::create(&stderr_file)
                .with_context(|| format!("cannot create {}", stderr_file.display()))?,
        );
        match &launch.ld_library_path {
            Some(p) => cmd.env("LD_LIBRARY_PATH", p),
            None => cmd.env_remove("LD_LIBRARY_PATH"),
        };
        if launch.events {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(
                std::fs::File::create(&stdout_file)
                    .with_context(|| format!("cannot create {}", stdout_file.display()))?,
            );
        }
        let mut strace = crate::interrupt::spawn_group(&mut cmd)
            .with_context(|| format!("cannot start strace {}", launch.path.display()))?;
        let lines = match strace.stdout.take() {
            Some(stdout) => {
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
                Some(rx)
            }
            None => None,
        };
        let mut running = Running {
            name: launch.name,
            path: launch.path.clone(),
            started: Instant::now(),
            pid: 0,
            strace,
            trace_file,
            stdout_file: (!launch.events).then_some(stdout_file),
            stderr_file,
            lines,
            printed: Printed::default(),
            status: None,
        };
        running.pid = running.find_child(&launch.path)?;
        Ok(running)
    }

    /// strace's child that runs `program` (strace forks short-lived test children of its own
    /// first, so the first child is not necessarily the tracee): the one whose /proc/PID/exe
    /// is the program, or (a script, say) one that is no longer strace after a second.
    fn find_child(&mut self, program: &Path) -> anyhow::Result<u32> {
        let strace_pid = self.strace.id();
        let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let strace_exe = exe(strace_pid);
        let program = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
        let t0 = Instant::now();
        loop {
            for pid in children_of(strace_pid) {
                let e = exe(pid);
                if e.as_deref() == Some(program.as_path())
                    || (t0.elapsed() > Duration::from_secs(1) && e.is_some() && e != strace_exe)
                {
                    return Ok(pid);
                }
            }
            if let Some(status) = self.ended()? {
                // strace writes a tracee's calls only once it runs the program: lines in the
                // trace mean the program ran (and ended at once), none that it never started.
                let ran =
                    std::fs::read_to_string(&self.trace_file).is_ok_and(|t| !t.trim().is_empty());
                if ran {
                    return Err(self.ended_error("looked for its process"));
                }
                bail!(
                    "{}: strace ended ({status}) before starting it{}",
                    self.name,
                    self.stderr_said()
                );
            }
            if t0.elapsed() > WAIT {
                bail!("{}: strace started no process in {WAIT:?}", self.name);
            }
            std::thread::sleep(POLL);
        }
    }

    /// The first lines of what the program wrote to stderr.
    pub fn stderr_text(&self) -> String {
        first_lines(&std::fs::read_to_string(&self.stderr_file).unwrap_or_default())
    }

    /// What it wrote to stderr, on one line after `: ` (nothing if it wrote nothing).
    fn stderr_said(&self) -> String {
        let text = self.stderr_text();
        if text.is_empty() {
            String::new()
        } else {
            format!(": {}", text.lines().collect::<Vec<_>>().join(" / "))
        }
    }

    /// Whether the program prints JSON events (ours).
    pub fn has_events(&self) -> bool {
        self.lines.is_some()
    }

    /// strace's status once it has exited (it exits when its tracee has), reaped with whatever
    /// was left in its group; `None` while it runs.
    fn ended(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.status.is_none() && crate::interrupt::exited(&self.strace)? {
            let status = crate::interrupt::end_group(&mut self.strace)?;
            self.status = Some(status);
        }
        Ok(self.status)
    }

    /// Whether the program is still running (strace exits when its tracee has).
    pub fn alive(&mut self) -> bool {
        matches!(self.ended(), Ok(None))
    }

    /// Fails with [`Running::ended_error`] if the program has ended.
    pub fn check_alive(&mut self, doing: &str) -> anyhow::Result<()> {
        if self.alive() {
            return Ok(());
        }
        Err(self.ended_error(doing))
    }

    /// The one-line error for a program that ended while the lab was `doing` something: the
    /// program, how far it got (the libraries its trace shows ld.so loading), how it ended
    /// (exit status or signal) and what it wrote to stderr (the loader's "cannot open shared
    /// object file").
    fn ended_error(&self, doing: &str) -> anyhow::Error {
        let how = match self.status.map(how_ended) {
            Some(h) if h.starts_with("killed") => format!("was {h}"),
            Some(h) => h,
            None => "ended".into(),
        };
        let pid = match self.pid {
            0 => String::new(),
            pid => format!(", pid {pid}"),
        };
        let said = self.stderr_said();
        // A program that said why it ended needs no hint; one that crashed or returned does.
        let hint = if said.is_empty() {
            format!(
                "; --{} takes a program that keeps running until it is stopped",
                self.name
            )
        } else {
            String::new()
        };
        let page = sys::page_size();
        let progress = match lab_trace::run::parse_file(&self.trace_file) {
            Ok(trace) => {
                let loaded: Vec<String> = lab_trace::loader::lib_loads(&trace.calls, page)
                    .iter()
                    .map(|l| l.path.clone())
                    .collect();
                if loaded.is_empty() {
                    "before ld.so loaded any library (no openat followed by mmaps in its trace)"
                        .to_string()
                } else {
                    format!(
                        "having loaded {} (ld.so's openat and mmaps in its trace)",
                        loaded.join(", ")
                    )
                }
            }
            Err(e) => format!("how far it got unknown (its trace is unreadable: {e})"),
        };
        anyhow::anyhow!(
            "{} ({}{pid}) {how} (found ended {} ms after its start), {progress}, while the lab \
             {doing}{hint}{said}",
            self.name,
            self.path.display(),
            self.started.elapsed().as_millis(),
        )
    }

    /// `err`, a failed read of the program's /proc files, unless the program has ended: then
    /// waits (bounded) for strace to end too (it reaps the program first) and returns
    /// [`Running::ended_error`] instead, which says what the missing /proc file does not.
    pub fn gone(&mut self, err: anyhow::Error, doing: &str) -> anyhow::Error {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.alive() {
            err
        } else {
            self.ended_error(doing)
        }
    }

    /// Reads the program's /proc/PID/stat; if that fails, [`Running::gone`].
    pub fn stat(&mut self, doing: &str) -> anyhow::Result<(char, Faults)> {
        read_stat(self.pid).map_err(|e| self.gone(e, doing))
    }

    /// Takes in the JSON events our programs printed so far, without waiting.
    pub fn drain_events(&mut self) -> anyhow::Result<()> {
        while let Some(line) = self.lines.as_ref().and_then(|l| l.try_recv().ok()) {
            self.take_event(&line)?;
        }
        Ok(())
    }

    /// Takes in events until `done` holds of what was printed (bounded by [`WAIT`]).
    pub fn wait_events(
        &mut self,
        what: &str,
        done: impl Fn(&Printed) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        while !done(&self.printed) {
            let Some(lines) = &self.lines else {
                bail!("{} prints no events to wait for", self.name)
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(l) => l,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "{} printed nothing for {WAIT:?} while we waited for {what}",
                        self.name
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("{} ended before {what}{}", self.name, self.stderr_said())
                }
            };
            self.take_event(&line)?;
        }
        Ok(())
    }

    /// After the program ended: takes in every event left in the pipe (bounded).
    fn finish_events(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        while let Some(lines) = &self.lines {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => self.take_event(&line)?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn take_event(&mut self, line: &str) -> anyhow::Result<()> {
        let event: Event = serde_json::from_str(line)
            .with_context(|| format!("{} printed an unexpected line: {line}", self.name))?;
        match event {
            Event::Start { symbols, .. } => {
                for s in symbols {
                    let address = s.address_value().with_context(|| {
                        format!(
                            "{} printed a bad address for {}: {}",
                            self.name, s.name, s.address
                        )
                    })?;
                    self.printed.symbols.push(PrintedSymbol {
                        name: s.name,
                        address,
                    });
                }
            }
            Event::Observation { baz, .. } => self.printed.values.push(i64::from(baz)),
            Event::Stop { .. } => {}
        }
        Ok(())
    }

    /// Stops the program with SIGINT (Ctrl-C), waits (bounded) for strace to end with it and
    /// says how it ended; SIGKILL if it does not stop in time.
    pub fn stop(&mut self) -> anyhow::Result<String> {
        if self.status.is_some() {
            return Ok("had already ended".into());
        }
        self.signal(sys::Signal::INT);
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.ended()? {
                break status;
            }
            if Instant::now() > deadline {
                self.kill();
                bail!(
                    "{} did not stop within {WAIT:?} of SIGINT; killed",
                    self.name
                );
            }
            self.drain_events()?;
            std::thread::sleep(POLL);
        };
        self.finish_events()?;
        if let Some(f) = &self.stdout_file {
            self.printed.stdout = first_lines(&std::fs::read_to_string(f).unwrap_or_default());
        }
        self.printed.stderr = self.stderr_text();
        Ok(how_ended(status))
    }

    /// Sends `sig` to the traced program, if it is still strace's child (not a reused pid).
    fn signal(&self, sig: sys::Signal) {
        if self.pid != 0 && parent_of(self.pid) == Some(self.strace.id()) {
            let _ = sys::kill(self.pid, sig);
        }
    }
}

impl Running {
    /// Kills the program and strace (its whole group) and reaps strace, unless it was reaped.
    fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        // The program first, in case it left the group: killing strace alone would detach it
        // and leave it running.
        self.signal(sys::Signal::KILL);
        if let Ok(status) = crate::interrupt::end_group(&mut self.strace) {
            self.status = Some(status);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `exited with status N` or `killed by SIGSEGV`: strace exits with its tracee's status and
/// re-raises a signal that killed it.
fn how_ended(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by {}", signal_name(sig)),
        _ => status.to_string(),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        1 => "SIGHUP".into(),
        2 => "SIGINT".into(),
        3 => "SIGQUIT".into(),
        4 => "SIGILL".into(),
        5 => "SIGTRAP".into(),
        6 => "SIGABRT".into(),
        7 => "SIGBUS".into(),
        8 => "SIGFPE".into(),
        9 => "SIGKILL".into(),
        11 => "SIGSEGV".into(),
        13 => "SIGPIPE".into(),
        15 => "SIGTERM".into(),
        31 => "SIGSYS".into(),
        n => format!("signal {n}"),
    }
}

fn first_lines(text: &str) -> String {
    let mut out: String = text.lines().take(12).collect::<Vec<_>>().join("\n");
    if text.lines().count() > 12 {
        out.push_str("\n…");
    }
    out
}

/// The children of `pid` (`/proc/PID/task/PID/children`, else a scan of /proc).
fn children_of(pid: u32) -> Vec<u32> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| parent_of(p) == Some(pid))
        .collect()
}

/// `ppid` from /proc/PID/stat.
fn parent_of(pid: u32) -> Option<u32> {
    ProcessStat::read(pid).ok().map(|s| s.ppid)
}

/// The state letter and the fault counters of /proc/PID/stat (`proc(5)`).
fn read_stat(pid: u32) -> anyhow::Result<(char, Faults)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    let stat = ProcessStat::parse(&text)?;
    Ok((stat.state, Faults::parse(&text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_stat_has_a_state_faults_and_a_parent() {
        let (state, own) = read_stat(std::process::id()).unwrap();
        assert!(state.is_ascii_alphabetic(), "{state}");
        assert!(own.minflt > 0);
        assert!(parent_of(std::process::id()).is_some_and(|p| p > 0));
    }
}
