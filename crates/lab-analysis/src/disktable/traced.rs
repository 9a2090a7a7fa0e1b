//! One program run under `strace -f` in a working directory, with a deadline, as recorded: how
//! it ended, its stderr and its trace (xtask's `disktable_steps::run` runs it).

use lab_trace::Trace;
use serde::{Deserialize, Serialize};

/// How a traced program ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// The exit status of a normal exit.
    pub code: Option<i32>,
    /// The signal that ended it (`SIGSEGV`), by name.
    pub signal: Option<String>,
    /// Whether it outlived its deadline and was killed (SIGKILL to its process group).
    pub timed_out: bool,
}

impl Ended {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.signal, self.timed_out) {
            (_, _, true) => write!(f, "killed at its deadline"),
            (Some(c), _, _) => write!(f, "exit status {c}"),
            (None, Some(s), _) => write!(f, "killed by {s}"),
            (None, None, _) => write!(f, "ended (status unknown)"),
        }
    }
}

/// One program run under strace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracedRun {
    /// The program and its arguments, as run.
    pub argv: Vec<String>,
    pub ended: Ended,
    /// What it printed on stderr (at most 8 MiB).
    pub stderr: String,
    /// Recorded as strace's own lines ([`trace_text`]), parsed back when read.
    #[serde(with = "trace_text")]
    pub trace: Trace,
}

/// A [`Trace`] recorded as the strace lines it was parsed from (calls, with each signal at its
/// place, then the exits): a fraction of the size of the parsed form, readable, and parsed
/// again by the same pure parser when the evidence is loaded.
pub mod trace_text {
    use lab_trace::Trace;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(trace: &Trace, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_text(trace))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Trace, D::Error> {
        let text = String::deserialize(d)?;
        Ok(lab_trace::strace::parse_trace(&text))
    }

    /// The trace's lines, in order.
    pub fn to_text(trace: &Trace) -> String {
        let mut out = String::new();
        let mut signals = trace.signals.iter().peekable();
        for (i, call) in trace.calls.iter().enumerate() {
            while let Some(s) = signals.next_if(|s| s.after_calls <= i) {
                out.push_str(&s.raw);
                out.push('\n');
            }
            out.push_str(&call.raw);
            out.push('\n');
        }
        for line in signals
            .map(|s| &s.raw)
            .chain(trace.exits.iter().map(|e| &e.raw))
        {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

impl TracedRun {
    /// The command line, for showing.
    pub fn command(&self) -> String {
        self.argv.join(" ")
    }

    /// The first line of stderr, trimmed (a binary's `error: …`).
    pub fn error_line(&self) -> String {
        self.stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .or_else(|| self.stderr.lines().next())
            .unwrap_or("")
            .trim()
            .to_string()
    }
}
