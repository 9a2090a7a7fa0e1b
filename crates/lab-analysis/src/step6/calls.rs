//! Counting a traced `channel bench` cell's system calls, per process. Pure: a parsed
//! [`Trace`] in, [`Counts`] out, so recorded traces test it.
//!
//! The runner is the process strace started (`channel bench ...`); the peer is the one that
//! executed `channel bench-peer`. A call is counted under a [`key`]: its name, and for `futex`
//! and `fcntl` the operation and how it ended, because those are the calls that tell waiting
//! apart from working: `futex(FUTEX_WAIT) = 0` (woken), `futex(FUTEX_WAIT) = -1 ETIMEDOUT`
//! (nobody woke it), `futex(FUTEX_WAKE) = 1` (woke one sleeper).

use std::collections::{BTreeMap, BTreeSet};

use lab_trace::{Syscall, Trace};
use serde::{Deserialize, Serialize};

/// The calls of one traced run, by process and [`key`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub runner: BTreeMap<String, u64>,
    pub peer: BTreeMap<String, u64>,
    /// Calls of any other process (none expected: the bench starts only its peer).
    pub other: BTreeMap<String, u64>,
}

/// Which process made a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    Runner,
    Peer,
    Other,
}

impl Counts {
    pub fn side(&self, side: Side) -> &BTreeMap<String, u64> {
        match side {
            Side::Runner => &self.runner,
            Side::Peer => &self.peer,
            Side::Other => &self.other,
        }
    }

    /// All calls of all processes.
    pub fn total(&self) -> u64 {
        [Side::Runner, Side::Peer, Side::Other]
            .iter()
            .flat_map(|&s| self.side(s).values())
            .sum()
    }

    /// How many calls of any process have this key.
    pub fn of(&self, key: &str) -> u64 {
        [Side::Runner, Side::Peer, Side::Other]
            .iter()
            .filter_map(|&s| self.side(s).get(key))
            .sum()
    }
}

/// The key a call is counted under: `read`, `futex(FUTEX_WAKE) = 1`,
/// `futex(FUTEX_WAIT) = -1 ETIMEDOUT`, `fcntl(F_OFD_GETLK)`.
pub fn key(call: &Syscall) -> String {
    let op = |i: usize| {
        call.args
            .get(i)
            .map(|a| a.trim().to_string())
            .unwrap_or_default()
    };
    match call.name.as_str() {
        "futex" => {
            let outcome = match (&call.errno, call.ret) {
                (Some(e), _) => format!("-1 {e}"),
                (None, Some(r)) => r.to_string(),
                (None, None) => "?".to_string(),
            };
            format!("futex({}) = {outcome}", op(1))
        }
        "fcntl" => format!("fcntl({})", op(1)),
        name => name.to_string(),
    }
}

/// Is this a futex wait (`FUTEX_WAIT`, with or without `_PRIVATE` or `_BITSET`)?
pub fn is_futex_wait(key: &str) -> bool {
    key.starts_with("futex(FUTEX_WAIT")
}

/// Is this a futex wake?
pub fn is_futex_wake(key: &str) -> bool {
    key.starts_with("futex(FUTEX_WAKE")
}

/// Which process is which: the peer executed `channel bench-peer`; the runner is the process
/// strace started (the first pid of the trace).
fn sides(trace: &Trace) -> (Option<u32>, Option<u32>) {
    let runner = trace.calls.first().and_then(|c| c.pid);
    let peer = trace
        .calls
        .iter()
        .find(|c| c.name == "execve" && c.raw.contains("\"bench-peer\""))
        .and_then(|c| c.pid);
    (runner, peer)
}

/// Counts every call of a traced `channel bench` run.
pub fn count(trace: &Trace) -> Counts {
    let (runner, peer) = sides(trace);
    let mut counts = Counts::default();
    for call in &trace.calls {
        let map = if call.pid.is_some() && call.pid == peer {
            &mut counts.peer
        } else if call.pid == runner {
            &mut counts.runner
        } else {
            &mut counts.other
        };
        *map.entry(key(call)).or_insert(0) += 1;
    }
    counts
}

/// The keys whose count (all processes) grew by at least `extra_round_trips / 4` from the
/// short run to the long one: the calls a cell makes per message, not its set-up.
pub fn growing(short: &Counts, long: &Counts, extra_round_trips: u64) -> BTreeSet<String> {
    let least = (extra_round_trips / 4).max(1);
    [&long.runner, &long.peer, &long.other]
        .iter()
        .flat_map(|m| m.keys())
        .filter(|k| long.of(k).saturating_sub(short.of(k)) >= least)
        .cloned()
        .collect()
}

/// Up to `max` raw lines from the middle of the trace, of the calls with these keys.
pub fn sample(trace: &Trace, keys: &BTreeSet<String>, max: usize) -> Vec<String> {
    if keys.is_empty() {
        return Vec::new();
    }
    let chosen: Vec<&Syscall> = trace
        .calls
        .iter()
        .filter(|c| keys.contains(&key(c)))
        .collect();
    chosen
        .iter()
        .skip(chosen.len() / 2)
        .take(max)
        .map(|c| c.raw.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from `strace -f channel bench --only pipe --size 64 --messages 2` (trimmed) and
    /// a ring-wait run on one CPU.
    const PIPE: &str = r#"22300 execve("/t/release/channel", ["/t/release/channel", "bench", "--only", "pipe"], 0x7ffd /* 30 vars */) = 0
22300 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
22300 clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=0x7f, stack_size=0x9000}, 88 <unfinished ...>
22301 execve("/t/release/channel", ["/t/release/channel", "bench-peer", "--transport", "pipe"], 0x7ffd /* 30 vars */ <unfinished ...>
22300 <... clone3 resumed>) = 22301
22301 <... execve resumed>) = 0
22301 write(1, "\1\0\0\0\0\0\0\0", 8) = 8
22300 read(4, "\1\0\0\0\0\0\0\0", 8) = 8
22300 write(3, "\2\0\0\0\245\245"..., 64) = 64
22301 read(0, "\2\0\0\0\245\245"..., 64) = 64
22301 write(1, "\2\0\0\0\245\245"..., 64) = 64
22300 read(4, "\2\0\0\0\245\245"..., 64) = 64
22300 write(3, "\2\0\0\0\245\245"..., 64) = 64
22301 read(0, "\2\0\0\0\245\245"..., 64) = 64
22301 write(1, "\2\0\0\0\245\245"..., 64) = 64
22300 read(4, "\2\0\0\0\245\245"..., 64) = 64
22301 futex(0x7f3083602180, FUTEX_WAIT, 1, {tv_sec=0, tv_nsec=100000000} <unfinished ...>
22300 futex(0x7fd3e20ef180, FUTEX_WAKE, 1) = 1
22301 <... futex resumed>) = 0
22301 futex(0x7f3083602180, FUTEX_WAIT, 1, {tv_sec=0, tv_nsec=100000000}) = -1 ETIMEDOUT (Connection timed out)
22301 fcntl(3, F_OFD_GETLK, {l_type=F_UNLCK, l_whence=SEEK_SET, l_start=0, l_len=1, l_pid=0}) = 0
22301 +++ exited with 0 +++
22300 wait4(22301, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 22301
22300 +++ exited with 0 +++
"#;

    #[test]
    fn calls_are_counted_per_process_with_futex_outcomes() {
        let trace = lab_trace::strace::parse_trace(PIPE);
        let c = count(&trace);
        assert_eq!(c.runner.get("write"), Some(&2));
        assert_eq!(c.runner.get("read"), Some(&3));
        assert_eq!(c.peer.get("read"), Some(&2));
        assert_eq!(c.peer.get("write"), Some(&3));
        // The peer's execve is counted as the peer's (the pid that ran bench-peer).
        assert_eq!(c.peer.get("execve"), Some(&1));
        assert_eq!(c.runner.get("execve"), Some(&1));
        assert_eq!(c.runner.get("futex(FUTEX_WAKE) = 1"), Some(&1));
        assert_eq!(c.peer.get("futex(FUTEX_WAIT) = 0"), Some(&1));
        assert_eq!(c.peer.get("futex(FUTEX_WAIT) = -1 ETIMEDOUT"), Some(&1));
        assert_eq!(c.peer.get("fcntl(F_OFD_GETLK)"), Some(&1));
        assert!(c.other.is_empty());
        assert_eq!(c.of("write"), 5);
        assert_eq!(c.total(), 19);
        assert!(is_futex_wait("futex(FUTEX_WAIT_BITSET_PRIVATE) = 0"));
        assert!(is_futex_wake("futex(FUTEX_WAKE) = 0"));
    }

    #[test]
    fn the_sample_is_of_the_growing_calls_from_the_middle() {
        let trace = lab_trace::strace::parse_trace(PIPE);
        let long = count(&trace);
        let mut short = long.clone();
        short.runner.insert("write".into(), 0);
        short.peer.insert("write".into(), 1);
        // write grew by 4 over 2 extra round trips; read and everything else did not grow.
        let keys = growing(&short, &long, 2);
        assert_eq!(keys.iter().collect::<Vec<_>>(), ["write"]);
        let s = sample(&trace, &keys, 3);
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|l| l.contains(" write(")), "{s:?}");
        // Growth below a quarter of the extra round trips is set-up noise, not per message.
        assert!(growing(&short, &long, 40).is_empty());
        assert!(sample(&trace, &BTreeSet::new(), 3).is_empty());
    }
}
