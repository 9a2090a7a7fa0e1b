//! Larger than memory, shown: the persist table is used through its mapping inside a memory
//! cgroup whose limit is smaller than the table, and the same file read whole into memory in
//! the same kind of cgroup is killed.
//!
//! Three children, each alone in a fresh cgroup (a child of the cgroup this process runs in, so
//! the machine's own accounting still covers it) with the same limit: `persist get` of random
//! keys, `persist verify` (reads every record through the mapping), and `dd bs=SIZE count=1`
//! (one read(2) of the whole file into one buffer of the file's size, as a program that loads
//! its data into memory does). The file is evicted from the page cache before each, so its pages
//! are charged to the child's cgroup as they come in. Page-cache pages of a mapped file are
//! clean and can be dropped under the limit; the buffer is anonymous memory and cannot (swap is
//! limited too), so the kernel's OOM killer ends dd with SIGKILL. The evidence is the cgroup's
//! own counters: limit, peak usage, how often the limit was hit, OOM kills, major faults.
//!
//! cgroup v2 (`memory.max`) where the memory controller can be enabled for a child of our
//! cgroup, else v1 (`memory.limit_in_bytes`); neither (not root, no memory controller): the
//! reason is the evidence and the demonstration is skipped. Every cgroup is removed on every
//! path (Drop), and stale ones a killed run left behind are removed first.

use serde::{Deserialize, Serialize};

use crate::disktable::parse_persist;
use crate::disktable::traced::Ended;
use crate::Block;

/// Which cgroup interface was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Version {
    V1,
    V2,
}

/// What the demonstration measured, or why it could not run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    Skipped { reason: String },
    Ran(Ran),
}

/// The runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ran {
    pub version: Version,
    /// The cgroup the children's cgroups were made in.
    pub parent: String,
    pub limit_bytes: u64,
    pub table_bytes: u64,
    pub entries: u64,
    pub children: Vec<Child>,
}

/// What a child did, and its cgroup's counters when it had ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Child {
    pub role: Role,
    pub argv: Vec<String>,
    pub ended: Ended,
    pub seconds: f64,
    /// Its stdout (persist's JSON document), at most 64 KiB kept.
    pub stdout: String,
    pub stderr: String,
    pub counters: Counters,
    /// `persist residency --evict` of the table just before the child ran: how many of its
    /// pages stayed resident (absent in recordings made before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction: Option<persist::Residency>,
}

/// Which of the three children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `persist get` of random keys, through the mapping.
    Lookups,
    /// Every key looked up with `persist get` (xargs batches), through the mapping: stdout is
    /// the number of values printed.
    EveryKey,
    /// `persist verify`: every record, through the mapping.
    Scan,
    /// `dd`: the whole file read into one buffer.
    ReadAll,
}

/// A memory cgroup's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The limit read back (`memory.limit_in_bytes` / `memory.max`).
    pub limit_bytes: Option<u64>,
    /// Peak usage (`memory.max_usage_in_bytes` / `memory.peak`).
    pub peak_bytes: Option<u64>,
    /// Times the limit was hit (`memory.failcnt` + `memory.memsw.failcnt` / `memory.events`
    /// max).
    pub limit_hits: Option<u64>,
    /// OOM kills (`memory.oom_control` / `memory.events` oom_kill).
    pub oom_kills: Option<u64>,
    /// Major faults (`memory.stat` pgmajfault).
    pub major_faults: Option<u64>,
}

/// What the demonstration establishes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Findings {
    Skipped { reason: String },
    Ran(RanFindings),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RanFindings {
    pub version: Version,
    pub limit_bytes: u64,
    pub table_bytes: u64,
    /// The limit is smaller than the table.
    pub table_larger_than_limit: bool,
    pub children: Vec<ChildFindings>,
    /// Lookups and scan through the mapping completed under the limit, reading the whole file
    /// into memory was killed.
    pub demonstrated: bool,
    /// The eviction before every child left no page of the table resident (`None`: not
    /// recorded). `Some(false)` on tmpfs: the pages stay in memory, charged to whoever brought
    /// them in, and the children need not read (or be charged for) any.
    pub evicted: Option<bool>,
    /// The most pages of the table any eviction left resident, of how many.
    pub resident_after_eviction: Option<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildFindings {
    pub role: Role,
    pub command: String,
    pub completed: bool,
    pub signal: Option<String>,
    pub timed_out: bool,
    pub seconds: f64,
    /// For the scan: the entries verify checked.
    pub entries_checked: Option<u64>,
    pub peak_bytes: Option<u64>,
    /// Peak usage stayed within the limit.
    pub peak_within_limit: Option<bool>,
    pub limit_hits: Option<u64>,
    pub oom_kills: Option<u64>,
    pub major_faults: Option<u64>,
    /// Killed by the OOM killer: SIGKILL and the cgroup counted an OOM kill.
    pub oom_killed: bool,
}

/// Decides, from the evidence alone.
pub fn analyze(e: &Evidence) -> Findings {
    let r = match e {
        Evidence::Skipped { reason } => {
            return Findings::Skipped {
                reason: reason.clone(),
            }
        }
        Evidence::Ran(r) => r,
    };
    let children: Vec<ChildFindings> = r
        .children
        .iter()
        .map(|c| ChildFindings {
            role: c.role,
            command: c.argv.join(" "),
            // Every key's value printed, for the lookup of every key (its exit status is wc's).
            completed: c.ended.success()
                && (c.role != Role::EveryKey || c.stdout.trim().parse() == Ok(r.entries)),
            signal: c.ended.signal.clone(),
            timed_out: c.ended.timed_out,
            seconds: c.seconds,
            entries_checked: match c.role {
                Role::Scan if c.ended.success() => {
                    parse_persist::<persist::doc::Verified>("verify", &c.stdout)
                        .ok()
                        .map(|v| v.report.entries)
                }
                Role::EveryKey if c.ended.success() => c.stdout.trim().parse().ok(),
                _ => None,
            },
            peak_bytes: c.counters.peak_bytes,
            peak_within_limit: c.counters.peak_bytes.map(|p| p <= r.limit_bytes),
            limit_hits: c.counters.limit_hits,
            oom_kills: c.counters.oom_kills,
            major_faults: c.counters.major_faults,
            oom_killed: c.ended.signal.as_deref() == Some("SIGKILL")
                && !c.ended.timed_out
                && c.counters.oom_kills.is_some_and(|n| n > 0),
        })
        .collect();
    let by = |role: Role| children.iter().find(|c| c.role == role);
    let demonstrated = r.limit_bytes < r.table_bytes
        && by(Role::Lookups).is_some_and(|c| c.completed)
        && [Role::EveryKey, Role::Scan].iter().any(|&role| {
            by(role).is_some_and(|c| c.completed && c.entries_checked == Some(r.entries))
        })
        && by(Role::ReadAll).is_some_and(|c| c.oom_killed);
    let evictions: Option<Vec<&persist::Residency>> =
        r.children.iter().map(|c| c.eviction.as_ref()).collect();
    let resident_after_eviction = evictions.as_ref().and_then(|ev| {
        ev.iter()
            .map(|e| (e.pages_resident_after, e.pages_total))
            .max()
    });
    Findings::Ran(RanFindings {
        evicted: resident_after_eviction.map(|(left, _)| left == 0),
        resident_after_eviction,
        version: r.version,
        limit_bytes: r.limit_bytes,
        table_bytes: r.table_bytes,
        table_larger_than_limit: r.limit_bytes < r.table_bytes,
        children,
        demonstrated,
    })
}

/// The narrative.
pub fn explain(f: &Findings, e: &Evidence) -> Vec<Block> {
    let mut blocks = vec![Block::heading(
        "Larger than memory: the table through its mapping in a memory cgroup smaller than it",
    )];
    let (r, ev) = match (f, e) {
        (Findings::Ran(r), Evidence::Ran(ev)) => (r, ev),
        (Findings::Skipped { reason }, _) | (_, Evidence::Skipped { reason }) => {
            blocks.push(Block::text(format!("Skipped: {reason}.")));
            return blocks;
        }
    };
    blocks.push(counters_block(r, ev));
    let commands: Vec<String> = ev
        .children
        .iter()
        .map(|c| format!("{}: {}", role_name(c.role), c.argv.join(" ")))
        .collect();
    blocks.push(Block::raw(
        "the children's command lines",
        commands.join("\n"),
    ));
    blocks.push(Block::answer(
        "Does mmap help with files too big for memory?",
        answer(r),
    ));
    blocks
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// The children and their cgroups' counters, as a table.
fn counters_block(r: &RanFindings, ev: &Ran) -> Block {
    let mut table = format!(
        "{:<9} {:<10} {:>8} {:>11} {:>10} {:>9} {:>9}\n",
        "child", "ended", "seconds", "peak", "limit hit", "OOM kills", "major pf"
    );
    for c in &r.children {
        let opt = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
        table.push_str(&format!(
            "{:<9} {:<10} {:>8.2} {:>11} {:>10} {:>9} {:>9}\n",
            role_name(c.role),
            if c.timed_out {
                "deadline".to_string()
            } else if c.completed {
                "exit 0".to_string()
            } else {
                c.signal.clone().unwrap_or_else(|| "failed".into())
            },
            c.seconds,
            c.peak_bytes.map_or("-".into(), mib),
            opt(c.limit_hits),
            opt(c.oom_kills),
            opt(c.major_faults),
        ));
    }
    Block::evidence(
        format!(
            "cgroup {} under {}: limit {} ({} bytes), the table {} — one fresh cgroup per child, \
             {}",
            match r.version {
                Version::V1 => "v1 memory.limit_in_bytes",
                Version::V2 => "v2 memory.max",
            },
            ev.parent,
            mib(r.limit_bytes),
            r.limit_bytes,
            mib(r.table_bytes),
            match (r.evicted, r.resident_after_eviction) {
                (Some(true), _) => "the file evicted from the page cache before each".to_string(),
                (Some(false), Some((left, total))) => format!(
                    "evicting the file from the page cache before each left up to {left} of its \
                     {total} pages resident (the eviction did not work here, as on tmpfs, where a \
                     file's pages are its only copy)"
                ),
                _ => "the file evicted from the page cache before each (how many of its pages \
                      stayed was not recorded)"
                    .into(),
            }
        ),
        table,
    )
}

/// The answer: what ran through the mapping, what reading it all into memory did.
pub(super) fn answer(r: &RanFindings) -> String {
    let by = |role: Role| r.children.iter().find(|c| c.role == role);
    let through_map = [Role::Lookups, Role::EveryKey, Role::Scan]
        .iter()
        .filter_map(|&role| by(role))
        .map(|c| {
            format!(
                "{} {} in {:.2} s with a peak of {}{}",
                role_name(c.role),
                if c.completed {
                    "completed".to_string()
                } else if c.timed_out {
                    match c.major_faults {
                        Some(n) if n > 0 => format!(
                            "did NOT finish before its deadline ({n} major faults: pages it \
                             needed were dropped under the limit before it used them)"
                        ),
                        Some(_) => "did NOT finish before its deadline (with no major fault: \
                                    not for want of pages)"
                            .to_string(),
                        None => "did NOT finish before its deadline (its major faults were not \
                                 read: why is not measured)"
                            .to_string(),
                    }
                } else if c.oom_killed {
                    format!(
                        "was killed by the OOM killer (SIGKILL; the cgroup counted {} OOM kill)",
                        c.oom_kills.unwrap_or(0)
                    )
                } else {
                    format!("FAILED ({})", c.signal.as_deref().unwrap_or("exit status"))
                },
                c.seconds,
                c.peak_bytes.map_or("an unread peak".into(), mib),
                match (c.role, c.entries_checked) {
                    (Role::EveryKey, Some(n)) => format!(", printing the values of {n} keys"),
                    (Role::Scan, Some(n)) => format!(", checking all {n} entries"),
                    _ => String::new(),
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    // The child that read every entry through the mapping.
    let every_entry = [Role::EveryKey, Role::Scan]
        .iter()
        .filter_map(|&role| by(role))
        .find(|c| c.completed);
    let read_all = by(Role::ReadAll).map_or("did not run".to_string(), |c| {
        if c.oom_killed {
            format!(
                "was killed by the OOM killer (SIGKILL; the cgroup counted {} OOM kill) once its \
                 buffer reached the limit",
                c.oom_kills.unwrap_or(0)
            )
        } else if c.completed {
            "was NOT killed: it read the whole file within the limit (swap, or the limit \
             was not enforced)"
                .into()
        } else {
            format!(
                "ended otherwise ({})",
                c.signal.as_deref().unwrap_or("exit status")
            )
        }
    });
    format!(
        "With {} of memory for a {} table: {through_map}. Reading the whole file into one \
             buffer {read_all}. {}",
        mib(r.limit_bytes),
        mib(r.table_bytes),
        if r.demonstrated {
            through_map_answer(r, every_entry)
        } else {
            "This run does not show the whole contrast; the table above says which part \
             differed."
                .to_string()
        }
    ) + &killed_through_map(r)
}

/// What the counters of the child that read every entry through the mapping show: pages read in
/// on demand and dropped at the limit only when it faulted them in (major faults) and reached
/// the limit (hits); else what they do show.
fn through_map_answer(r: &RanFindings, every_entry: Option<&ChildFindings>) -> String {
    const ANON: &str = "a copy in anonymous memory has nowhere to go.";
    let (hits, major) = every_entry.map_or((None, None), |c| (c.limit_hits, c.major_faults));
    match (hits, major) {
        (Some(hits), Some(major)) if hits > 0 && major > 0 => format!(
            "Through the mapping the kernel read pages in on demand ({major} major faults) and \
             dropped clean ones at the limit (reached {hits} times while every entry was read; \
             the process lived); {ANON}"
        ),
        (Some(hits), _) if hits > 0 => format!(
            "Reading every entry through the mapping reached the limit {hits} times and the \
             process lived, with {}: this run does not show pages read back in after the \
             kernel dropped them; {ANON}",
            match major {
                Some(_) => "no major fault".to_string(),
                None => "its major faults not read".to_string(),
            }
        ),
        (Some(_), _) => format!(
            "Reading every entry through the mapping never reached the limit{}{}: this run \
             does not show pages dropped at the limit, only that reading through the mapping \
             fit where a private copy did not; {ANON}",
            match major {
                Some(1) => " (1 major fault)".to_string(),
                Some(n) => format!(" ({n} major faults)"),
                None => String::new(),
            },
            match (r.evicted, r.resident_after_eviction) {
                (Some(false), Some((left, total))) => format!(
                    " — the eviction left {left} of the table's {total} pages in memory, \
                     charged to the cgroup that brought them in, not to the child"
                ),
                _ => String::new(),
            }
        ),
        (None, _) => format!(
            "The limit hits of the child that read every entry through the mapping were not \
             read, so this run does not show pages dropped at the limit; {ANON}"
        ),
    }
}

/// A child that read through the mapping and was OOM-killed anyway: named, and what the
/// conclusion rests on instead.
fn killed_through_map(r: &RanFindings) -> String {
    let through = [Role::Lookups, Role::EveryKey, Role::Scan];
    let of = |c: &&ChildFindings| through.contains(&c.role);
    let killed: Vec<&str> = r
        .children
        .iter()
        .filter(of)
        .filter(|c| c.oom_killed)
        .map(|c| role_name(c.role))
        .collect();
    if killed.is_empty() {
        return String::new();
    }
    let lived: Vec<&str> = r
        .children
        .iter()
        .filter(of)
        .filter(|c| c.completed && c.entries_checked.is_some())
        .map(|c| role_name(c.role))
        .collect();
    if r.demonstrated && !lived.is_empty() {
        format!(
            " The {} child was OOM-killed this time although it read through the mapping (its \
             own buffers, or pages the kernel could not drop fast enough); the conclusion rests \
             on {}, which read every entry and lived.",
            killed.join(" and "),
            lived.join(" and ")
        )
    } else {
        format!(
            " The {} child was OOM-killed although it read through the mapping: this run does \
             not show that a mapping survives at the limit.",
            killed.join(" and ")
        )
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Lookups => "lookups",
        Role::EveryKey => "every key",
        Role::Scan => "scan",
        Role::ReadAll => "read-all",
    }
}
