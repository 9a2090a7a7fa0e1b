//! CPU time, read from `/proc` (`proc(5)`): how busy each CPU was (`/proc/stat`), how much CPU a
//! process used and where it last ran (`/proc/PID/stat`), and which CPUs it may run on
//! (`Cpus_allowed_list` in `/proc/PID/status`, the affinity mask of `sched_setaffinity(2)`).
//!
//! Two snapshots of `/proc/stat` around an experiment say how much CPU time every process on a
//! CPU used in between ([`CpuTimes::busy`]); the experiment's own processes' `utime + stime`
//! ([`ProcessStat::cpu_ticks`]) taken out of it leaves what the machine's other processes used.
//! A zombie's `/proc/PID/stat` still holds its final times, so a parent reads them after the
//! child exited and before it reaps it.
//!
//! All times are in clock ticks (`USER_HZ`, `sysconf(_SC_CLK_TCK)`, 100 on Linux). The parsers
//! take text and do no I/O; [`read_stat`], [`ProcessStat::read`] and [`read_cpus_allowed`] are
//! the thin readers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A line of `/proc/stat` or `/proc/PID/stat` that does not say what `proc(5)` says it does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {line:?}")]
pub struct ParseError {
    pub what: String,
    pub line: String,
}

fn bad(what: &str, line: &str) -> ParseError {
    ParseError {
        what: what.to_string(),
        line: line.chars().take(200).collect(),
    }
}

/// One `cpu` line of `/proc/stat`: time spent in each state since boot, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    /// The CPU number (`cpu3`), or `None` for the first line (`cpu`), the sum over all CPUs.
    pub cpu: Option<u32>,
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    /// Time a hypervisor ran something else while this virtual CPU wanted to run.
    pub steal: u64,
}

impl CpuTimes {
    /// Time some process (or the kernel on its behalf) ran: user, nice, system, irq, softirq.
    /// (`guest` time is already counted in `user`.)
    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq
    }

    /// The change from `earlier` to `self` (saturating: counters never go back, but a CPU taken
    /// offline and back can reset its line).
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            cpu: self.cpu,
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }
}

/// The `cpu` and `cpuN` lines of `/proc/stat`, in order (the sum first). Older kernels print
/// fewer columns; the missing ones are 0 (they did not exist), but fewer than four is an error.
pub fn parse_stat(text: &str) -> Result<Vec<CpuTimes>, ParseError> {
    let mut cpus = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next().and_then(|n| n.strip_prefix("cpu")) else {
            continue;
        };
        let cpu = if name.is_empty() {
            None
        } else {
            Some(name.parse().map_err(|_| bad("odd cpu name", line))?)
        };
        let values: Vec<u64> = fields
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad("non-numeric cpu time", line))?;
        if values.len() < 4 {
            return Err(bad("fewer than 4 cpu times", line));
        }
        let at = |i: usize| values.get(i).copied().unwrap_or(0);
        cpus.push(CpuTimes {
            cpu,
            user: at(0),
            nice: at(1),
            system: at(2),
            idle: at(3),
            iowait: at(4),
            irq: at(5),
            softirq: at(6),
            steal: at(7),
        });
    }
    if cpus.is_empty() {
        return Err(bad("no cpu lines in /proc/stat", text));
    }
    Ok(cpus)
}

/// Reads and parses `/proc/stat`.
pub fn read_stat() -> std::io::Result<Vec<CpuTimes>> {
    let text = std::fs::read_to_string("/proc/stat")?;
    parse_stat(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The fields of `/proc/PID/stat` the lab uses (numbered as in `proc(5)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStat {
    /// (1)
    pub pid: u32,
    /// (2) the command name, without its parentheses.
    pub comm: String,
    /// (3) `R` running, `S` sleeping, `Z` zombie (exited, not yet reaped), …
    pub state: char,
    /// (4)
    pub ppid: u32,
    /// (14) user-mode CPU time, clock ticks (all its threads).
    pub utime: u64,
    /// (15) kernel-mode CPU time, clock ticks.
    pub stime: u64,
    /// (20)
    pub num_threads: u64,
    /// (22) when it started, clock ticks after boot.
    pub starttime: u64,
    /// (39) the CPU it last ran on.
    pub processor: Option<u32>,
}

impl ProcessStat {
    /// Parses one `/proc/PID/stat` line. The command name may hold spaces and parentheses, so
    /// it runs from the first `(` to the last `)`.
    pub fn parse(text: &str) -> Result<ProcessStat, ParseError> {
        let (line, pid, comm, rest) = split_process_stat(text)?;
        let field = |n: usize| rest.get(n - 3).copied();
        let num = |n: usize| number(&rest, n, line);
        let state = field(3)
            .and_then(|s| s.chars().next())
            .ok_or_else(|| bad("no state", line))?;
        Ok(ProcessStat {
            pid,
            comm: comm.to_string(),
            state,
            ppid: num(4)? as u32,
            utime: num(14)?,
            stime: num(15)?,
            num_threads: num(20)?,
            starttime: num(22)?,
            processor: field(39).and_then(|f| f.parse().ok()),
        })
    }

    /// Reads `/proc/PID/stat`.
    pub fn read(pid: u32) -> std::io::Result<ProcessStat> {
        let path = PathBuf::from(format!("/proc/{pid}/stat"));
        let text = std::fs::read_to_string(&path)?;
        ProcessStat::parse(&text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// `utime + stime`: the CPU time it used, clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime + self.stime
    }

    /// Exited, waiting for its parent to reap it (its times are final).
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// A `/proc/PID/stat` line split after the command name, which may hold spaces and
/// parentheses (it runs from the first `(` to the last `)`): the trimmed line, the pid, the
/// name, and fields 3 onwards (`rest[0]` is field 3).
fn split_process_stat(text: &str) -> Result<(&str, u32, &str, Vec<&str>), ParseError> {
    let line = text.trim_end();
    let open = line.find('(').ok_or_else(|| bad("no (comm)", line))?;
    let close = line.rfind(')').ok_or_else(|| bad("no (comm)", line))?;
    if close < open {
        return Err(bad("no (comm)", line));
    }
    let pid = line[..open]
        .trim()
        .parse()
        .map_err(|_| bad("odd pid", line))?;
    Ok((
        line,
        pid,
        &line[open + 1..close],
        line[close + 1..].split_whitespace().collect(),
    ))
}

/// Field `n` (numbered as in `proc(5)`, 3 or more) of a split stat line, as a number.
fn number(rest: &[&str], n: usize, line: &str) -> Result<u64, ParseError> {
    rest.get(n - 3)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| bad(&format!("field {n} missing or not a number"), line))
}

/// The page-fault counters of `/proc/PID/stat`: (10) `minflt`, faults served without I/O, and
/// (12) `majflt`, faults that read the page from disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageFaults {
    pub minflt: u64,
    pub majflt: u64,
}

impl PageFaults {
    /// Parses them from one `/proc/PID/stat` line.
    pub fn parse(text: &str) -> Result<PageFaults, ParseError> {
        let (line, _, _, rest) = split_process_stat(text)?;
        Ok(PageFaults {
            minflt: number(&rest, 10, line)?,
            majflt: number(&rest, 12, line)?,
        })
    }
}

/// A CPU list as the kernel prints it (`0-3,8,10-11`; empty is no CPU), sorted.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, ParseError> {
    let text = text.trim();
    let mut cpus = Vec::new();
    if text.is_empty() {
        return Ok(cpus);
    }
    for part in text.split(',') {
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| bad("odd CPU list", text))
        };
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (num(lo)?, num(hi)?);
                if hi < lo || hi - lo > 65_536 {
                    return Err(bad("odd CPU range", text));
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(num(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// The `Cpus_allowed_list:` of a `/proc/PID/status` text: the CPUs it may run on.
pub fn cpus_allowed(status: &str) -> Result<Vec<u32>, ParseError> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .ok_or_else(|| bad("no Cpus_allowed_list", status))?;
    parse_cpu_list(line)
}

/// The affinity mask of process `pid` (`None`: this process), from `/proc/PID/status`.
pub fn read_cpus_allowed(pid: Option<u32>) -> std::io::Result<Vec<u32>> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    let text = std::fs::read_to_string(path)?;
    cpus_allowed(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded on a 2-CPU virtual machine (Linux 6.x).
    const STAT: &str = "cpu  30637 0 8221 123165 355 0 61 17 0 0
cpu0 14785 0 3937 62408 81 0 9 7 0 0
cpu1 15852 0 4284 60757 274 0 51 10 0 0
intr 8123 0 0
ctxt 912345
btime 1700000000
";

    #[test]
    fn reads_every_cpu_line_and_its_busy_time() {
        let cpus = parse_stat(STAT).unwrap();
        assert_eq!(cpus.len(), 3);
        assert_eq!(cpus[0].cpu, None);
        assert_eq!(cpus[2].cpu, Some(1));
        assert_eq!(cpus[1].busy(), 14785 + 3937 + 9);
        assert_eq!(cpus[2].steal, 10);
        let later = CpuTimes {
            user: cpus[1].user + 100,
            idle: cpus[1].idle + 50,
            ..cpus[1]
        };
        let d = later.since(&cpus[1]);
        assert_eq!((d.cpu, d.busy(), d.idle), (Some(0), 100, 50));
    }

    #[test]
    fn short_or_odd_stat_lines_are_errors() {
        assert!(parse_stat("cpu 1 2 3\n").is_err());
        assert!(parse_stat("cpu 1 2 x 4\n").is_err());
        assert!(parse_stat("intr 1\n").is_err());
        // An old kernel's four columns are enough.
        assert_eq!(parse_stat("cpu 1 2 3 4\n").unwrap()[0].idle, 4);
    }

    #[test]
    fn page_faults_after_an_odd_command_name() {
        let text = "4242 (a (b) c) S 4200 4242 4200 0 -1 4194560 123 0 7 0 1 2 0 0 20 0 1 0 \
                    100 2000 50\n";
        assert_eq!(
            PageFaults::parse(text).unwrap(),
            PageFaults {
                minflt: 123,
                majflt: 7
            }
        );
        let s = ProcessStat::parse(text).unwrap();
        assert_eq!((s.comm.as_str(), s.state, s.ppid), ("a (b) c", 'S', 4200));
        assert!(PageFaults::parse("garbage").is_err());
        assert!(PageFaults::parse("1 (x) S 0 0").is_err());
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(PageFaults::parse(&own).unwrap().minflt > 0);
    }

    #[test]
    fn process_stat_with_a_comm_holding_spaces_and_parens() {
        // Recorded from a zombie: state Z, its times still there.
        let z = "6209 (sh) Z 6159 6156 18029 0 -1 4227084 64 0 0 0 14 3 0 0 20 0 1 0 90667 0 0 \
                 18446744073709551615 0 0 0 0 0 0 0 0 65538 1 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";
        let s = ProcessStat::parse(z).unwrap();
        assert_eq!(
            (s.pid, s.comm.as_str(), s.state, s.ppid),
            (6209, "sh", 'Z', 6159)
        );
        assert_eq!((s.utime, s.stime, s.cpu_ticks()), (14, 3, 17));
        assert_eq!(
            (s.num_threads, s.starttime, s.processor),
            (1, 90667, Some(1))
        );
        assert!(s.is_zombie());
        let odd = z.replace("(sh)", "(a) b (c))");
        let s = ProcessStat::parse(&odd).unwrap();
        assert_eq!(s.comm, "a) b (c)");
        assert_eq!(s.utime, 14);
        assert!(ProcessStat::parse("6209 sh Z 1").is_err());
        assert!(ProcessStat::parse("6209 (sh) Z 1 2").is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("0,2-3,8\n").unwrap(), vec![0, 2, 3, 8]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
        let status = "Name:\trace\nCpus_allowed:\t1\nCpus_allowed_list:\t0\n";
        assert_eq!(cpus_allowed(status).unwrap(), vec![0]);
        assert!(cpus_allowed("Name:\trace\n").is_err());
    }

    #[test]
    fn live_readers_agree_with_this_process() {
        let cpus = read_stat().unwrap();
        assert!(cpus[0].cpu.is_none() && cpus.len() >= 2);
        let me = ProcessStat::read(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        // The test harness's main thread waits for this test's thread: sleeping or running.
        assert!(matches!(me.state, 'R' | 'S'), "{me:?}");
        assert!(!me.is_zombie());
        let mask = read_cpus_allowed(None).unwrap();
        assert!(!mask.is_empty());
        assert!(mask.iter().all(|c| cpus.iter().any(|t| t.cpu == Some(*c))));
    }
}
