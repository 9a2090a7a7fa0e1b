//! The persist table used through its mapping inside a memory cgroup smaller than it, and read
//! whole into memory there (measure: finding a writable cgroup, making one, running in it); the
//! analysis is `lab_analysis::step2::cgroup`'s.

use lab_analysis::step2::cgroup::{Child, Counters, Evidence, Ran, Role, Version};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cgroupfs::{join, keyed, own_path, parse_mounts, stale};
use crate::disktable_steps::parse_persist;
use crate::disktable_steps::run;
use crate::disktable_steps::run::Spec;
use crate::disktable_steps::sample_kv;
use crate::model::Ctx;

const PREFIX: &str = "mmap-lab-";

/// Runs the demonstration on the sample table `dir/TABLE` (or says why it cannot).
pub fn measure(ctx: &Ctx, dir: &Path, table: &Path, entries: u64) -> anyhow::Result<Evidence> {
    let table_bytes = std::fs::metadata(table)
        .with_context(|| format!("cannot stat {}", table.display()))?
        .len();
    // A quarter of the table, and room for the process itself.
    let limit = (table_bytes / 4).max(6 << 20);
    if limit >= table_bytes {
        return Ok(Evidence::Skipped {
            reason: format!(
                "the table ({table_bytes} bytes) is too small for a limit below it that leaves \
                 room for the process ({limit} bytes)"
            ),
        });
    }
    let place = match find_place() {
        Ok(p) => p,
        Err(reason) => return Ok(Evidence::Skipped { reason }),
    };
    remove_stale(&place.dir);
    let persist = ctx.bin("persist");
    let t = table.to_string_lossy().into_owned();
    let mut rng = crate::disktable_steps::Rng::seeded_from_clock();
    let mut get_args = vec!["--json".to_string(), "get".into(), t.clone()];
    get_args.extend((0..20).map(|_| sample_kv(rng.below(entries)).0));
    let deadline = Duration::from_secs(if ctx.quick { 10 } else { 30 });
    let keys = dir.join("keys.txt");
    let key_lines: String = (0..entries).map(|i| sample_kv(i).0 + "\n").collect();
    std::fs::write(&keys, key_lines).with_context(|| format!("cannot write {}", keys.display()))?;
    let every_key = vec![
        "-c".to_string(),
        "xargs -a \"$1\" \"$2\" get \"$3\" | wc -l".into(),
        "sh".into(),
        keys.display().to_string(),
        persist.display().to_string(),
        t.clone(),
    ];
    let runs: [(Role, &Path, Vec<String>); 4] = [
        (Role::Lookups, &persist, get_args),
        (Role::EveryKey, Path::new("sh"), every_key),
        (
            Role::Scan,
            &persist,
            vec!["--json".into(), "verify".into(), t.clone()],
        ),
        (
            Role::ReadAll,
            Path::new("dd"),
            vec![
                format!("if={t}"),
                "of=/dev/null".into(),
                format!("bs={table_bytes}"),
                "count=1".into(),
            ],
        ),
    ];
    let mut children = Vec::new();
    for (role, program, args) in runs {
        crate::out::progress(&format!(
            "cgroup limit {} MiB: {} {}",
            limit >> 20,
            program.display(),
            args.first().map_or("", String::as_str)
        ));
        let cg = match Cgroup::create(&place, limit) {
            Ok(cg) => cg,
            Err(reason) => return Ok(Evidence::Skipped { reason }),
        };
        let eviction = evict(ctx, dir, &t)?;
        let mut child = run_in(&cg, role, program, &args, dir, deadline)?;
        child.eviction = Some(eviction);
        children.push(child);
    }
    Ok(Evidence::Ran(Ran {
        version: place.version,
        parent: place.dir.display().to_string(),
        limit_bytes: limit,
        table_bytes,
        entries,
        children,
    }))
}

/// Drops the table from the page cache; what mincore saw before and after.
fn evict(ctx: &Ctx, dir: &Path, table: &str) -> anyhow::Result<persist::Residency> {
    let out = super::lookups::persist(ctx, dir, &["--json", "residency", "--evict", table], None)?;
    Ok(parse_persist::<persist::doc::ResidencyDoc>("residency", &out)?.residency)
}

/// Runs `program args` inside `cg` (a shell writes its own pid into cgroup.procs, then execs),
/// then reads the cgroup's counters.
fn run_in(
    cg: &Cgroup,
    role: Role,
    program: &Path,
    args: &[String],
    dir: &Path,
    deadline: Duration,
) -> anyhow::Result<Child> {
    let mut sh_args = vec![
        "-c".to_string(),
        "echo $$ > \"$0\" && exec \"$@\"".into(),
        cg.dir.join("cgroup.procs").display().to_string(),
        program.display().to_string(),
    ];
    sh_args.extend(args.iter().cloned());
    let start = Instant::now();
    let (ended, mut stdout, stderr) = run::run_untraced(&Spec {
        args: sh_args,
        deadline,
        ..Spec::new(Path::new("sh"), &[], dir)
    })?;
    let seconds = start.elapsed().as_secs_f64();
    stdout.truncate(64 << 10);
    let mut argv = vec![program.display().to_string()];
    argv.extend(args.iter().cloned());
    Ok(Child {
        role,
        argv,
        ended,
        seconds,
        stdout,
        stderr,
        counters: cg.counters(),
        eviction: None,
    })
}

/// Where children may be made: our own cgroup, in the interface that allows a memory limit.
struct Place {
    version: Version,
    dir: PathBuf,
}

/// Finds a cgroup we may make memory-limited children in, or says why there is none.
fn find_place() -> Result<Place, String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}"));
    let mountinfo = read("/proc/self/mountinfo")?;
    let own = read("/proc/self/cgroup")?;
    let mounts = parse_mounts(&mountinfo);
    let mut why = Vec::new();
    if let (Some(root), Some(path)) = (&mounts.v2, own_path(&own, None)) {
        let dir = join(root, &path);
        let controllers =
            std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            return Ok(Place {
                version: Version::V2,
                dir,
            });
        }
        match std::fs::write(dir.join("cgroup.subtree_control"), "+memory") {
            Ok(()) => {
                return Ok(Place {
                    version: Version::V2,
                    dir,
                })
            }
            Err(e) => why.push(format!(
                "cgroup v2 at {}: cannot enable the memory controller for children ({e})",
                dir.display()
            )),
        }
    } else {
        why.push("no cgroup v2 hierarchy".into());
    }
    match (&mounts.v1_memory, own_path(&own, Some("memory"))) {
        (Some(root), Some(path)) => {
            let dir = join(root, &path);
            let probe = dir.join(format!("{PREFIX}probe-{}", std::process::id()));
            match std::fs::create_dir(&probe) {
                Ok(()) => {
                    let _ = std::fs::remove_dir(&probe);
                    return Ok(Place {
                        version: Version::V1,
                        dir,
                    });
                }
                Err(e) => why.push(format!(
                    "cgroup v1 memory at {}: cannot make a child ({e}; needs root)",
                    dir.display()
                )),
            }
        }
        _ => why.push("no cgroup v1 memory hierarchy".into()),
    }
    Err(why.join("; "))
}

/// Removes `mmap-lab-PID-N` cgroups whose process is gone (rmdir only removes empty ones).
fn remove_stale(parent: &Path) {
    for dir in stale(parent, PREFIX) {
        let _ = std::fs::remove_dir(dir);
    }
}

/// A memory cgroup of ours, removed when dropped.
struct Cgroup {
    version: Version,
    dir: PathBuf,
}

impl Cgroup {
    fn create(place: &Place, limit: u64) -> Result<Cgroup, String> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = place.dir.join(format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cg = Cgroup {
            version: place.version,
            dir,
        };
        let limit = limit.to_string();
        let mut settings: Vec<(&str, &str)> = vec![match cg.version {
            Version::V1 => ("memory.limit_in_bytes", &limit),
            Version::V2 => ("memory.max", &limit),
        }];
        // With swap, anonymous memory could escape the limit there: limit it too. (Without
        // swap v1 is left alone: a memory+swap limit takes over memory.failcnt's counting.)
        if swap_total() != Some(0) {
            settings.push(match cg.version {
                Version::V1 => ("memory.memsw.limit_in_bytes", &limit),
                Version::V2 => ("memory.swap.max", "0"),
            });
        }
        for (i, (file, value)) in settings.iter().enumerate() {
            let path = cg.dir.join(file);
            match std::fs::write(&path, value) {
                Ok(()) => {}
                // The swap limit exists only with swap accounting: without it there is none.
                Err(_) if i == 1 && !path.exists() => {}
                Err(e) => return Err(format!("cannot write {}: {e}", path.display())),
            }
        }
        Ok(cg)
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(file)).ok()
    }

    fn counters(&self) -> Counters {
        let num = |file: &str| self.read(file).and_then(|s| s.trim().parse().ok());
        let stat = self.read("memory.stat").unwrap_or_default();
        match self.version {
            Version::V1 => {
                let oom = self.read("memory.oom_control").unwrap_or_default();
                Counters {
                    limit_bytes: num("memory.limit_in_bytes"),
                    peak_bytes: num("memory.max_usage_in_bytes"),
                    // With swap limited too, the memory+swap limit may be the one hit.
                    limit_hits: match (num("memory.failcnt"), num("memory.memsw.failcnt")) {
                        (Some(a), b) => Some(a + b.unwrap_or(0)),
                        (None, b) => b,
                    },
                    oom_kills: keyed(&oom, "oom_kill"),
                    major_faults: keyed(&stat, "total_pgmajfault").or(keyed(&stat, "pgmajfault")),
                }
            }
            Version::V2 => {
                let events = self.read("memory.events").unwrap_or_default();
                Counters {
                    limit_bytes: num("memory.max"),
                    peak_bytes: num("memory.peak"),
                    limit_hits: keyed(&events, "max"),
                    oom_kills: keyed(&events, "oom_kill"),
                    major_faults: keyed(&stat, "pgmajfault"),
                }
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Its processes have been reaped; the kernel may take a moment to drop them from the
        // list. rmdir succeeds once it is empty.
        let start = Instant::now();
        while std::fs::remove_dir(&self.dir).is_err() && start.elapsed() < Duration::from_secs(5) {
            if !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// SwapTotal from /proc/meminfo, in kB.
fn swap_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("SwapTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_and_own_path_are_read_from_proc_text() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 30 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let m = parse_mounts(mountinfo);
        assert_eq!(m.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(
            m.v1_memory.as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        let own = "9:name=systemd:/\n4:memory:/process_api/b628\n1:cpu:/\n0::/\n";
        assert_eq!(
            own_path(own, Some("memory")).as_deref(),
            Some("/process_api/b628")
        );
        assert_eq!(own_path(own, None).as_deref(), Some("/"));
        assert_eq!(own_path("0::/user.slice\n", Some("memory")), None);
        assert_eq!(
            join(Path::new("/sys/fs/cgroup/memory"), "/process_api/b628"),
            Path::new("/sys/fs/cgroup/memory/process_api/b628")
        );
    }

    #[test]
    fn a_cgroup_made_here_is_removed_when_dropped_and_stale_ones_too() {
        let place = match find_place() {
            Ok(p) => p,
            Err(reason) => {
                use std::io::Write as _;
                // Straight to stderr: libtest hides what eprintln! prints in a passing test.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped: no memory cgroup can be made here ({reason})"
                );
                return;
            }
        };
        let cg = Cgroup::create(&place, 8 << 20).unwrap();
        let dir = cg.dir.clone();
        assert!(dir.join("cgroup.procs").exists());
        assert_eq!(cg.counters().limit_bytes, Some(8 << 20));
        drop(cg);
        assert!(!dir.exists(), "{} left behind", dir.display());
        // One named after a process that is gone is removed by the next run.
        let stale = place.dir.join(format!("{PREFIX}{}-0", u32::MAX - 1));
        std::fs::create_dir(&stale).unwrap();
        remove_stale(&place.dir);
        assert!(!stale.exists(), "{} left behind", stale.display());
    }

    #[test]
    fn keyed_counters() {
        assert_eq!(
            keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", "oom_kill"),
            Some(1)
        );
        assert_eq!(
            keyed("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n", "max"),
            Some(12)
        );
        assert_eq!(keyed("cache 1\n", "pgmajfault"), None);
    }
}
