//! Step 4's measure: evict the library from the page cache, start foo then bar under strace,
//! read /proc while both run (stat, maps, smaps, pagemap, and baz from mem), stop them, and
//! build the C client.

use std::collections::HashMap;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use lab_trace::elf::ElfInfo;
use lab_trace::loader;
use lab_trace::maps::Maps;

use super::client;
use super::running::{Launch, Running, WAIT};
use crate::model::Ctx;
use crate::{out, sys};
use lab_analysis::step4::evidence::{
    BazHome, Eviction, Evidence, Faults, Library, Page, PageCache, ProgramRun, Ready, Sample,
    Source,
};
use lab_analysis::step4::SYMBOLS;

/// How often the lab polls /proc while it waits for a program to load its library.
const POLL: Duration = Duration::from_millis(5);
/// What the lab does while a program starts (for the error when it ends then).
const NOT_READY: &str = "waited for it to map a library that exports baz and wait in its loop";
/// What the lab does while both run.
const SAMPLING: &str = "was reading its /proc files";

pub fn measure(ctx: &Ctx) -> anyhow::Result<Evidence> {
    lab_trace::run::check()?;
    let page = sys::page_size();
    let (source, launches) = plan(ctx)?;
    let elfs = launches
        .iter()
        .map(|l| read_elf(l.name, &l.path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let expected = expected_library(&launches[0], &elfs[0]);
    let scratch = ctx.scratch("step4")?;

    out::progress(&match &expected {
        Some(p) => format!(
            "evicting {} from the page cache (fsync + posix_fadvise DONTNEED)",
            p.display()
        ),
        None => "no library exporting baz found before the run: nothing to evict".into(),
    });
    let page_cache = page_cache(expected.as_deref());
    let mut finder = Finder::default();
    let mut runs = Vec::new();
    for (launch, elf) in launches.iter().zip(&elfs) {
        out::progress(&format!("starting {} under strace", launch.name));
        let mut r = Running::start(launch, scratch.path())?;
        let started = wait_ready(&mut r, &elf.needed, &mut finder)?;
        let resident_when_ready = expected
            .as_deref()
            .and_then(|p| persist::page_cache_residency(p, false).ok())
            .map(|r| r.pages_resident_before);
        runs.push((r, started, resident_when_ready));
    }
    out::progress("both running: reading baz from /proc/PID/mem, and maps, smaps, pagemap");
    let (samples, snapshots) = sample(&mut runs, ctx.quick, source, page)?;
    let mut ended = Vec::new();
    for (r, _, _) in &mut runs {
        ended.push(r.stop()?);
    }

    let mut programs = Vec::new();
    for (((r, started, resident), snap), ((launch, elf), ended)) in runs
        .into_iter()
        .zip(snapshots)
        .zip(launches.iter().zip(elfs).zip(ended))
    {
        let trace = lab_trace::run::parse_file(&r.trace_file)?;
        programs.push(ProgramRun {
            name: launch.name.to_string(),
            path: launch.path.display().to_string(),
            baz_relocation: elf.relocation_against("baz").map(str::to_string),
            needed: elf.needed,
            runpath: elf.runpath,
            rpath: elf.rpath,
            ld_library_path: launch.ld_library_path.clone(),
            pid: r.pid,
            ready: started.ready,
            faults_ready: started.faults,
            faults_end: snap.faults_end,
            resident_when_ready: resident,
            library: started.library,
            baz_home: snap.baz_home,
            maps: snap.maps,
            smaps: snap.smaps,
            pages: snap.pages,
            printed: r.printed.clone(),
            trace,
            ended,
        });
    }
    out::progress("compiling the C client with cc");
    let client = client::build_and_run(scratch.path(), &programs[0].library.path);
    Ok(Evidence {
        page_size: page,
        source,
        page_cache,
        programs,
        samples,
        client,
    })
}

/// Which two programs run, and how.
fn plan(ctx: &Ctx) -> anyhow::Result<(Source, Vec<Launch>)> {
    let o = &ctx.options;
    if let (Some(foo), Some(bar)) = (&o.foo, &o.bar) {
        let launches = [("foo", foo), ("bar", bar)]
            .into_iter()
            .map(|(name, path)| given(name, path))
            .collect::<anyhow::Result<Vec<_>>>()?;
        return Ok((Source::Given, launches));
    }
    ctx.build_release(&["foobar", "foo", "bar"])?;
    // --count bounds both runs even if the lab itself were killed.
    let args: Vec<String> = ["--json", "--interval-ms", "150", "--count", "1000"]
        .map(String::from)
        .to_vec();
    let launches = ["foo", "bar"]
        .into_iter()
        .map(|name| {
            let path = ctx.bin(name);
            if !path.is_file() {
                bail!(
                    "{} was not built; run `cargo build --release -p foo -p bar`",
                    path.display()
                );
            }
            Ok(Launch {
                name,
                path,
                args: args.clone(),
                // cargo run puts target dirs on LD_LIBRARY_PATH, which would beat the RUNPATH
                // and could load a debug libfoobar.so: trace what a user gets.
                ld_library_path: None,
                events: true,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((Source::Ours, launches))
}

/// Someone else's program: run with its own directory on `LD_LIBRARY_PATH` when it has no
/// RUNPATH/RPATH and a library it needs lies beside it (the course's `LD_LIBRARY_PATH=.`).
fn given(name: &'static str, path: &Path) -> anyhow::Result<Launch> {
    let path = std::fs::canonicalize(path)
        .with_context(|| format!("--{name} {}: no such program", path.display()))?;
    if !path.is_file() {
        bail!("--{name} {}: not a file", path.display());
    }
    let elf = read_elf(name, &path)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let ld_library_path = if elf.runpath.is_some() || elf.rpath.is_some() {
        None
    } else if elf.needed.iter().any(|n| dir.join(n).is_file()) {
        Some(dir.display().to_string())
    } else {
        std::env::var("LD_LIBRARY_PATH").ok()
    };
    Ok(Launch {
        name,
        path,
        args: Vec::new(),
        ld_library_path,
        events: false,
    })
}

fn read_elf(name: &str, path: &Path) -> anyhow::Result<ElfInfo> {
    ElfInfo::read(path).with_context(|| format!("--{name}"))
}

/// The file the program will load that exports `baz`: its DT_NEEDED entries along ld.so's
/// search path (`loader::search_path`), the first that exists and exports `baz`.
fn expected_library(launch: &Launch, elf: &ElfInfo) -> Option<PathBuf> {
    let origin = launch.path.parent()?.display().to_string();
    elf.needed.iter().find_map(|needed| {
        loader::search_path(
            needed,
            elf.runpath.as_deref(),
            elf.rpath.as_deref(),
            launch.ld_library_path.as_deref(),
            &origin,
        )
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .filter(|p| ElfInfo::read(p).is_ok_and(|i| i.symbol("baz").is_some()))
        .and_then(|p| std::fs::canonicalize(p).ok())
    })
}

/// Evicts `library` from the page cache and counts its resident pages around it.
fn page_cache(library: Option<&Path>) -> PageCache {
    let Some(path) = library else {
        return PageCache {
            library: None,
            pages_total: 0,
            resident_before: 0,
            eviction: Eviction::NotTried {
                why: "no file exporting baz was found along the program's search path before \
                      it ran"
                    .into(),
            },
            resident_after: 0,
            mincore_blind: None,
        };
    };
    let count = || persist::page_cache_residency(path, false);
    let blind = mincore_blind(path);
    let before = match count() {
        Ok(r) => r,
        Err(e) => {
            return PageCache {
                library: Some(path.display().to_string()),
                pages_total: 0,
                resident_before: 0,
                eviction: Eviction::NotTried {
                    why: format!("cannot count its pages in the page cache: {e}"),
                },
                resident_after: 0,
                mincore_blind: blind,
            }
        }
    };
    let eviction = match evict(path) {
        Ok(()) => Eviction::Asked,
        Err(e) => Eviction::Failed {
            error: e.to_string(),
        },
    };
    PageCache {
        library: Some(path.display().to_string()),
        pages_total: before.pages_total,
        resident_before: before.pages_resident_before,
        eviction,
        resident_after: count().map_or(before.pages_resident_before, |r| r.pages_resident_before),
        mincore_blind: blind,
    }
}

/// Why `mincore(2)` would lie about `path` to this process, if it would: since Linux 5.2 it
/// reveals a file's page cache only to a caller that owns the file (or has CAP_FOWNER) or may
/// open it for writing (`can_do_mincore` in mm/mincore.c), and reports every page resident to
/// anyone else. Root is taken to have CAP_FOWNER; the write check is `faccessat(W_OK,
/// AT_EACCESS)`, the effective ids as the kernel uses them.
pub fn mincore_blind(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let euid = rustix::process::geteuid().as_raw();
    let owner = std::fs::metadata(path).ok()?.uid();
    if euid == 0 || owner == euid {
        return None;
    }
    let writable = rustix::fs::accessat(
        rustix::fs::CWD,
        path,
        rustix::fs::Access::WRITE_OK,
        rustix::fs::AtFlags::EACCESS,
    )
    .is_ok();
    (!writable).then(|| {
        format!(
            "the lab runs as uid {euid}, the file belongs to uid {owner} and uid {euid} may not \
             open it for writing"
        )
    })
}

/// `fsync(2)` (a dirty page cannot be dropped), then `posix_fadvise(2)` POSIX_FADV_DONTNEED:
/// drops the file's clean pages that no process maps. Needs no privilege.
fn evict(path: &Path) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    f.sync_all()?;
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)?;
    Ok(())
}

/// What was true when a program was ready.
struct Started {
    ready: Ready,
    faults: Faults,
    library: Library,
    /// Where baz is in this process (see [`Finder::baz_home`]).
    baz_home: Option<BazHome>,
}

/// The ELF files the processes map, read once each.
#[derive(Default)]
struct Finder {
    elf: HashMap<String, Option<ElfInfo>>,
}

impl Finder {
    /// The mapped library that exports `baz`, if the process maps one yet: a shared object
    /// other than the program itself (`exe`, its /proc/PID/exe). A program that names `baz`
    /// directly defines it too (the `R_X86_64_COPY` relocation puts baz in its own .dynsym
    /// and .bss), but the library is the object the copy came from.
    fn library(&mut self, maps: &Maps, exe: &str) -> Option<Library> {
        let mut paths: Vec<&str> = maps
            .mappings
            .iter()
            .filter(|m| m.path.starts_with('/') && m.inode != 0 && m.path != exe)
            .map(|m| m.path.as_str())
            .collect();
        paths.dedup();
        let path = paths.into_iter().find(|p| {
            self.elf
                .entry(p.to_string())
                .or_insert_with(|| ElfInfo::read(Path::new(p)).ok())
                .as_ref()
                .is_some_and(|i| i.symbol("baz").is_some())
        })?;
        let info = self.elf.get(path)?.as_ref()?;
        let first_load_vaddr = std::fs::read(path)
            .ok()
            .and_then(|d| loader::first_load_vaddr(&d))?;
        let page = sys::page_size();
        let first = maps
            .mappings
            .iter()
            .filter(|m| m.path == path)
            .min_by_key(|m| m.start)?;
        Some(Library {
            path: path.to_string(),
            dev: first.dev,
            inode: first.inode,
            symbols: info
                .symbols
                .iter()
                .filter(|s| s.defined && SYMBOLS.contains(&s.name.as_str()))
                .cloned()
                .collect(),
            first_load_vaddr,
            baz_relocation: info.relocation_against("baz").map(str::to_string),
            // The lowest mapping is the reservation: the first PT_LOAD, at base + its vaddr.
            base: first.start.checked_sub(first_load_vaddr / page * page)?,
            sections: Some(info.sections.clone()),
        })
    }

    /// Where baz is in process `pid`: what the library's own relocation against baz (its GOT
    /// slot) holds, read from /proc/PID/mem, since ld.so wrote there the address every use of
    /// baz goes through: the program's copy when the program has an `R_X86_64_COPY` of it, the
    /// library's own baz otherwise. A library without such a relocation reaches its own baz.
    /// `None` when the slot is not where the loader puts the GOT (the file mapped some other
    /// way) or the address it holds is in no writable mapping of a file.
    fn baz_home(&self, pid: u32, lib: &Library, maps: &Maps, exe: &str) -> Option<BazHome> {
        let info = self.elf.get(&lib.path)?.as_ref()?;
        let reloc = info.relocations.iter().find(|r| {
            r.symbol == "baz"
                && ["GLOB_DAT", "_64", "ABS64"]
                    .iter()
                    .any(|k| r.kind.ends_with(k))
        });
        let (address, got_slot) = match reloc {
            Some(r) => {
                let slot = lib.base + r.offset;
                if !loaded_at(maps, lib, r.offset, slot) {
                    return None;
                }
                let mut bytes = [0u8; 8];
                std::fs::File::open(format!("/proc/{pid}/mem"))
                    .ok()?
                    .read_exact_at(&mut bytes, slot)
                    .ok()?;
                (u64::from_ne_bytes(bytes), Some(slot))
            }
            None => (lib.base + info.symbol("baz")?.value, None),
        };
        let object = data_object(maps, address)?;
        Some(BazHome {
            address,
            got_slot,
            in_program: object == exe,
            object: object.to_string(),
            page: None,
        })
    }
}

/// The library's address `vaddr` (its GOT slot) lies at `addr` in a mapping of the library at
/// the file offset its section headers give: where the loader puts it, not in a mapping of the
/// file made some other way.
fn loaded_at(maps: &Maps, lib: &Library, vaddr: u64, addr: u64) -> bool {
    let Some(file_offset) = lib.sections.as_ref().and_then(|s| {
        s.loaded
            .iter()
            .find(|x| !x.nobits && x.addr <= vaddr && vaddr < x.addr + x.size)
            .map(|x| x.offset + (vaddr - x.addr))
    }) else {
        return false;
    };
    maps.find(addr).is_some_and(|m| {
        m.inode == lib.inode && m.path == lib.path && m.offset + (addr - m.start) == file_offset
    })
}

/// The file whose data holds `addr`: a writable mapping of it, or the anonymous mapping right
/// after one (the rest of its .bss, as the kernel or the loader maps it).
fn data_object(maps: &Maps, addr: u64) -> Option<&str> {
    let m = maps.find(addr)?;
    let file_data = |m: &lab_trace::maps::Mapping| {
        m.path.starts_with('/') && m.inode != 0 && m.perms.starts_with("rw")
    };
    if file_data(m) {
        return Some(&m.path);
    }
    if !m.path.is_empty() {
        return None;
    }
    maps.mappings
        .iter()
        .find(|prev| prev.end == m.start && file_data(prev))
        .map(|prev| prev.path.as_str())
}

/// Waits (bounded) until the program has loaded the library and reached its loop: our programs
/// say so (their first observation); for others, the library is in /proc/PID/maps and the
/// process then sleeps.
fn wait_ready(r: &mut Running, needed: &[String], finder: &mut Finder) -> anyhow::Result<Started> {
    let t0 = Instant::now();
    let mut ready = None;
    let mut library = None;
    let mut asleep_without_library: Option<Instant> = None;
    let deadline = t0 + WAIT;
    let exe = std::fs::read_link(format!("/proc/{}/exe", r.pid)).map_or_else(
        |_| r.path.display().to_string(),
        |p| p.display().to_string(),
    );
    if r.has_events() {
        r.wait_events("its first observation", |p| !p.values.is_empty())?;
        ready = Some(Ready::FirstObservation);
    }
    loop {
        r.check_alive(NOT_READY)?;
        let maps = Maps::read(r.pid).ok();
        if library.is_none() {
            library = maps.as_ref().and_then(|m| finder.library(m, &exe));
        }
        let (state, _) = r.stat(NOT_READY)?;
        let ms = t0.elapsed().as_millis() as u64;
        // Asleep without the library: it has reached its loop and will not load one.
        if library.is_none() && state == 'S' {
            let since = *asleep_without_library.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(500) {
                bail!(
                    "{} ({}) runs but maps no library that exports baz (its DT_NEEDED: {})",
                    r.name,
                    r.pid,
                    needed.join(", ")
                );
            }
        } else {
            asleep_without_library = None;
        }
        if library.is_some() && ready.is_none() {
            if state == 'S' {
                ready = Some(Ready::Blocked { ms });
            } else if Instant::now() > t0 + Duration::from_secs(5) {
                ready = Some(Ready::StillRunning { ms });
            }
        }
        if let (Some(ready), Some(library)) = (ready, &library) {
            let (_, faults) = r.stat(NOT_READY)?;
            // Relocation is done by now: ld.so resolves GLOB_DAT slots before main.
            let baz_home = Maps::read(r.pid)
                .ok()
                .and_then(|m| finder.baz_home(r.pid, library, &m, &exe));
            return Ok(Started {
                ready,
                faults,
                library: library.clone(),
                baz_home,
            });
        }
        if Instant::now() > deadline {
            bail!(
                "{} ({}) mapped no library that exports baz within {WAIT:?}",
                r.name,
                r.pid
            );
        }
        std::thread::sleep(POLL);
    }
}

/// What was read from one process while both ran.
struct Snapshot {
    maps: Maps,
    baz_home: Option<BazHome>,
    smaps: Vec<lab_trace::smaps::SmapsEntry>,
    pages: Vec<Page>,
    faults_end: Faults,
}

/// Reads baz from both processes at regular moments while they run, and snapshots their maps,
/// smaps and pagemap after the second moment.
fn sample(
    runs: &mut [(Running, Started, Option<u64>)],
    quick: bool,
    source: Source,
    page: u64,
) -> anyhow::Result<(Vec<Sample>, Vec<Snapshot>)> {
    // Our bar counts every 150 ms; the course's programs act once a second.
    let (period, n) = match (source, quick) {
        (Source::Ours, true) => (Duration::from_millis(200), 5),
        (Source::Ours, false) => (Duration::from_millis(200), 10),
        (Source::Given, true) => (Duration::from_millis(1000), 3),
        (Source::Given, false) => (Duration::from_millis(1000), 6),
    };
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut snapshots = Vec::new();
    for i in 0..n {
        // The sampling schedule, not a synchronisation: each read takes what is there.
        let at = t0 + period * i;
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let ms = t0.elapsed().as_millis() as u64;
        let baz = runs
            .iter()
            .map(|(r, s, _)| read_baz(r.pid, &s.library, s.baz_home.as_ref()))
            .collect();
        samples.push(Sample { ms, baz });
        if i == 1 {
            for (r, s, _) in runs.iter_mut() {
                let snap = snapshot(r.pid, &s.library, s.baz_home.as_ref(), page);
                // A read of /proc fails when the program has ended: say how it ended.
                snapshots.push(snap.map_err(|e| r.gone(e, SAMPLING))?);
            }
        }
        for (r, _, _) in runs.iter_mut() {
            r.check_alive(SAMPLING)?;
            r.drain_events()?;
        }
    }
    for ((r, _, _), snap) in runs.iter_mut().zip(&mut snapshots) {
        snap.faults_end = r.stat(SAMPLING)?.1;
    }
    Ok((samples, snapshots))
}

/// baz's value in process `pid` (`proc(5)`, /proc/PID/mem): where the library's GOT slot says
/// it is ([`Finder::baz_home`]), else at the library's load bias plus baz's value in `.dynsym`.
/// Nothing is read unless the address lies in that object's data (for the library's own baz:
/// as a loader maps it, [`in_library_data`]): a program that mapped the file some other way
/// has no baz there.
fn read_baz(pid: u32, lib: &Library, home: Option<&BazHome>) -> Option<i64> {
    let maps = Maps::read(pid).ok()?;
    let addr = match home {
        Some(h) if data_object(&maps, h.address) == Some(h.object.as_str()) => h.address,
        Some(_) => return None,
        None => {
            let addr = lib.base + lib.symbols.iter().find(|s| s.name == "baz")?.value;
            if !in_library_data(&maps, lib, addr) {
                return None;
            }
            addr
        }
    };
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut buf = [0u8; 4];
    f.read_exact_at(&mut buf, addr).ok()?;
    Some(i64::from(i32::from_ne_bytes(buf)))
}

/// `addr` lies in a writable mapping of the library's file, or in the anonymous mapping right
/// after one (the rest of its .bss, as the loader maps it).
fn in_library_data(maps: &Maps, lib: &Library, addr: u64) -> bool {
    let of_lib = |m: &lab_trace::maps::Mapping| m.inode == lib.inode && m.path == lib.path;
    let writable = |m: &lab_trace::maps::Mapping| m.perms.starts_with("rw");
    let Some(m) = maps.find(addr) else {
        return false;
    };
    if of_lib(m) {
        return writable(m);
    }
    m.path.is_empty()
        && maps
            .mappings
            .iter()
            .any(|prev| prev.end == m.start && of_lib(prev) && writable(prev))
}

fn snapshot(
    pid: u32,
    lib: &Library,
    home: Option<&BazHome>,
    page: u64,
) -> anyhow::Result<Snapshot> {
    let maps = Maps::read(pid).with_context(|| format!("cannot read /proc/{pid}/maps"))?;
    let smaps = lab_trace::smaps::read(pid)
        .with_context(|| format!("cannot read /proc/{pid}/smaps"))?
        .into_iter()
        .filter(|e| e.mapping.inode == lib.inode && e.mapping.path == lib.path)
        .collect();
    // The library's mappings, and an anonymous one right after them (the rest of .bss).
    let mut ranges: Vec<(u64, u64)> = maps
        .mappings
        .iter()
        .filter(|m| m.inode == lib.inode && m.path == lib.path)
        .map(|m| (m.start, m.end))
        .collect();
    if let Some(&(_, end)) = ranges.iter().max_by_key(|r| r.1) {
        if let Some(next) = maps.mappings.iter().find(|m| m.start == end) {
            // Only the loader's .bss: after a writable mapping of the file.
            if next.path.is_empty() && in_library_data(&maps, lib, next.start) {
                ranges.push((next.start, next.end));
            }
        }
    }
    let mut pages = Vec::new();
    for (start, end) in ranges {
        let entries = lab_trace::pagemap::read(pid, start, end, page)
            .with_context(|| format!("cannot read /proc/{pid}/pagemap"))?;
        pages.extend(entries.into_iter().enumerate().map(|(i, entry)| Page {
            addr: start + i as u64 * page,
            entry,
        }));
    }
    // The page of baz where it really is (the program's copy, with a COPY relocation).
    let baz_home = match home {
        Some(h) => {
            let at = h.address / page * page;
            let entry = lab_trace::pagemap::read(pid, at, at + page, page)
                .with_context(|| format!("cannot read /proc/{pid}/pagemap"))?;
            Some(BazHome {
                page: entry.first().copied(),
                ..h.clone()
            })
        }
        None => None,
    };
    Ok(Snapshot {
        maps,
        baz_home,
        smaps,
        pages,
        faults_end: Faults::default(),
    })
}
