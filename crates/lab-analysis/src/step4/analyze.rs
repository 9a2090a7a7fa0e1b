//! Step 4's analyze: from the evidence alone, which mmap calls loaded the library, which of
//! them holds setbaz/getbaz/baz and with what protection, how the flags differ, which counters
//! of smaps show the code's sharing, which physical frames are shared, what each process's baz
//! held, what loading cost when the library was not in the page cache, and where a C client's
//! baz lives.

use std::collections::{BTreeMap, HashMap};

use anyhow::bail;
use serde::Serialize;

use lab_trace::elf::Sections;
use lab_trace::loader::{self, LibLoad};
use lab_trace::pagemap::PageEntry;
use lab_trace::smaps::{self, Counters, Sharing};

use super::evidence::{Client, Eviction, Evidence, Library, ProgramRun, Ready, Source};
use super::SYMBOLS;

/// Everything step 4 concludes. `programs`, `code_shared` and `baz_private` are the documented
/// `--json` findings (DESIGN.md, Step 4); the rest carries what the explanation shows.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    pub programs: Vec<ProgramFindings>,
    /// The library's code pages resident in both processes are the same physical frames
    /// (pagemap); `None` when the frame numbers are unreadable (not root) or none compare.
    pub code_shared: Option<bool>,
    /// The page holding baz is a different frame in each process; `None` when unreadable.
    pub baz_private: Option<bool>,
    pub source: Source,
    /// Both programs mapped the same file (device and inode).
    pub same_library: bool,
    /// Both made the same sequence of loader calls (lengths, protections, flags, offsets).
    pub same_calls: bool,
    pub frames: Frames,
    pub values: Values,
    pub loading: Loading,
    pub client: ClientFinding,
}

/// One program.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramFindings {
    pub name: String,
    /// The library exporting baz, as /proc/PID/maps names it.
    pub library: String,
    /// How many mmap calls loaded it (file maps and anonymous MAP_FIXED maps).
    pub mmaps: usize,
    /// setbaz, getbaz and baz: the load bias plus their `.dynsym` value.
    pub symbols: BTreeMap<String, SymbolPlace>,
    /// baz read from the process's memory at each sample.
    pub baz_values: Vec<i64>,
    pub pid: u32,
    pub path: String,
    /// The DT_NEEDED entry that named the library (`None`: loaded some other way).
    pub needed_as: Option<String>,
    pub runpath: Option<String>,
    pub ld_library_path: Option<String>,
    /// How the lab knew the program had loaded the library and reached its loop.
    pub ready: Ready,
    /// The strace lines of the load: the failed openat attempts, the openat that found it,
    /// the mmaps, the close and the mprotects.
    pub trace: Vec<String>,
    /// The `openat` that found it, and how many failed first (the search path).
    pub open: Option<String>,
    pub failed_opens: usize,
    pub fd: Option<i64>,
    /// The load bias, from the trace's reservation (else from /proc/PID/maps). A number here;
    /// `--json` prints it as `"0x…"`, like every address in the findings.
    #[serde(serialize_with = "as_hex")]
    pub base: u64,
    pub maps: Vec<MapCall>,
    pub mprotects: Vec<Mprotect>,
    pub sharing: SmapsReading,
    /// Our programs print their symbols' addresses: whether those agree with the placement.
    pub printed_agrees: Option<bool>,
    pub printed_values: Vec<i64>,
    /// The program's own dynamic relocation against baz, and the library's.
    pub baz_relocation: Option<String>,
    pub library_baz_relocation: Option<String>,
    /// Set when the trace shows no load of the library by ld.so: what of the file the process
    /// maps instead (its /proc/PID/maps lines of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_loaded: Option<String>,
    /// Where baz really is in this process, read from its memory (`None`: not found; then baz
    /// is taken to be the library's own, `symbols.baz`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baz_home: Option<BazHomeFinding>,
    /// Set when no mapping of the library's load holds baz's address: why. Then nothing was
    /// read at that address (`baz_values` is empty) and no frame of it is compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baz_unmapped: Option<String>,
}

/// Where a process's baz is: the address ld.so resolved the library's own relocation against
/// baz to (read from its GOT slot in /proc/PID/mem).
#[derive(Debug, Clone, Serialize)]
pub struct BazHomeFinding {
    pub address: String,
    /// The library's GOT slot that was read (`None`: the library has no relocation against
    /// baz and reaches its own directly).
    pub got_slot: Option<String>,
    /// The file whose data holds it (/proc/PID/maps' name).
    pub object: String,
    /// It is the program's own copy (`R_X86_64_COPY`, in the executable's .bss), not the
    /// library's baz: each program has its own, copy-on-write private, whatever the library's
    /// code shares.
    pub in_program: bool,
    /// The /proc/PID/maps line that holds it.
    pub maps_line: Option<String>,
}

/// Where one symbol lies.
#[derive(Debug, Clone, Serialize)]
pub struct SymbolPlace {
    pub address: String,
    /// The protection of its page once loading was done (`PROT_READ|PROT_EXEC`).
    pub prot: String,
    /// Which of the loader's mmap calls holds it (1-based, in trace order).
    pub mmap: Option<usize>,
    /// The /proc/PID/maps line that holds it.
    pub maps_line: Option<String>,
}

/// One mmap call of the load.
#[derive(Debug, Clone, Serialize)]
pub struct MapCall {
    pub raw: String,
    pub len: u64,
    pub prot: String,
    pub flags: String,
    pub fd: i64,
    pub offset: String,
    /// The range it produced.
    pub start: String,
    pub end: String,
    pub role: Role,
    /// The first call, without MAP_FIXED: it reserves the whole span.
    pub reservation: bool,
    pub fixed: bool,
    pub denywrite: bool,
    pub private: bool,
    /// The symbols it finally holds.
    pub holds: Vec<String>,
    /// What of the library it finally holds, from the library's own headers (`null`: the
    /// evidence did not record the library's sections).
    pub contents: Option<Contents>,
}

/// What of the library's file one mapping finally holds: the parts that the loader's later
/// MAP_FIXED maps did not replace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contents {
    /// The ELF header and the program headers (the file's first bytes).
    pub headers: bool,
    /// The sections (`SHF_ALLOC`) whose addresses lie in it, in the library's order; a
    /// section two mappings share (.bss: the file's last page, then anonymous) is in both.
    pub sections: Vec<String>,
}

/// The kind of mapping, read off its protection and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// read+execute (code).
    Code,
    /// read-only.
    ReadOnly,
    /// read+write, from the file.
    Data,
    /// anonymous: memory the file has no bytes for (the rest of .bss).
    Bss,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mprotect {
    pub raw: String,
    pub prot: String,
    /// Which mmap's range it changes (1-based).
    pub inside: Option<usize>,
}

/// What /proc/PID/smaps says of the library's pages in one process.
#[derive(Debug, Clone, Serialize)]
pub struct SmapsReading {
    /// The read+execute mappings: the code.
    pub code: CounterSummary,
    /// The read+write mappings: .data/.bss.
    pub data: CounterSummary,
    /// Mappings with pages this process wrote and now owns (`Anonymous` > 0).
    pub written: Vec<Written>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CounterSummary {
    pub rss_kb: u64,
    pub pss_kb: u64,
    pub shared_clean_kb: u64,
    pub shared_dirty_kb: u64,
    pub private_clean_kb: u64,
    pub private_dirty_kb: u64,
    pub anonymous_kb: u64,
    /// Which counter shows that another process maps these pages.
    pub sharing: Sharing,
    /// Rss/Pss rounded: about how many processes map the resident pages.
    pub mappers: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub perms: String,
    pub offset: String,
    pub anonymous_kb: u64,
}

/// The library's pages beside the physical frames they map, per mapping (/proc/PID/maps line
/// of the first program), relative to each process's load bias.
#[derive(Debug, Clone, Serialize)]
pub struct Frames {
    /// Whether any frame number was readable (they read as 0 without CAP_SYS_ADMIN).
    pub readable: bool,
    /// Code pages present in both with readable frames, and how many of them are the same.
    pub code_pages_compared: usize,
    pub code_pages_same: usize,
    /// The frame holding baz in each process.
    pub baz_frames: Vec<Option<u64>>,
    /// pagemap flags of baz's page, readable without root: mapped by this process only, and
    /// anonymous (a private copy, not the file's page).
    pub baz_exclusive: Vec<Option<bool>>,
    pub baz_anonymous: Vec<Option<bool>>,
    pub rows: Vec<FrameRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FrameRow {
    /// Offsets from the load bias.
    pub start: u64,
    pub end: u64,
    pub perms: String,
    /// The mmap call (1-based) that produced its start.
    pub mmap: Option<usize>,
    pub symbols: Vec<String>,
    pub pages: u64,
    /// Frames both processes map at the same page.
    pub same: Vec<u64>,
    /// Per program.
    pub sides: Vec<RowSide>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RowSide {
    /// Frames this process maps where the other maps a different frame (private copies).
    pub different: Vec<u64>,
    /// Frames of pages only this process has resident.
    pub alone: Vec<u64>,
    /// Resident pages that are anonymous (written: copy-on-write copies).
    pub anonymous: u64,
    pub not_resident: u64,
    /// Resident, frame number hidden.
    pub hidden: u64,
}

/// baz as both processes held it at the same moments.
#[derive(Debug, Clone, Serialize)]
pub struct Values {
    pub samples: usize,
    /// Samples where both reads succeeded, and those where the two values differed: one
    /// variable cannot hold two values at once.
    pub both_read: usize,
    pub differed: usize,
    /// The first program's value, if it never changed.
    pub first_constant: Option<i64>,
    /// How often the second program's value changed from one sample to the next.
    pub second_changes: usize,
}

/// The seed's claim "if the library is not already in memory, it will need to be loaded into
/// RAM", and that the second program reuses those pages.
#[derive(Debug, Clone, Serialize)]
pub struct Loading {
    pub library: Option<String>,
    /// The file evicted is the one the programs loaded.
    pub matches_loaded: bool,
    pub pages_total: u64,
    pub eviction: Eviction,
    /// `mincore(2)` counts, `None` when they cannot be believed ([`Loading::mincore_blind`]).
    pub resident_before_eviction: Option<u64>,
    pub resident_after_eviction: Option<u64>,
    /// The eviction was asked for and left no page resident (`None`: not measured, mincore
    /// cannot be believed for this file).
    pub evicted: Option<bool>,
    /// Why mincore's counts of this file are no measurement, when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mincore_blind: Option<String>,
    pub starts: Vec<StartCost>,
    /// The first program's start read pages of the library from disk.
    pub first_from_disk: Option<bool>,
    /// The second program's start read none: it mapped the pages already in RAM.
    pub second_from_cache: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StartCost {
    pub name: String,
    /// Faults by the time the program was ready (`/proc/PID/stat`).
    pub majflt: u64,
    pub minflt: u64,
    /// Major faults after that, while both ran.
    pub majflt_later: u64,
    /// The library's resident pages before this program started and once it was ready.
    pub resident_before: Option<u64>,
    pub resident_after: Option<u64>,
    pub pages_read: Option<u64>,
}

/// Where a C client that names baz keeps it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ClientFinding {
    Ran {
        command: String,
        relocation: Option<String>,
        baz_address: Option<String>,
        /// The /proc/self/maps line of the client's baz.
        baz_line: Option<String>,
        inside_library: bool,
        getbaz_in_library: bool,
        /// setbaz is seen by the client's baz and the client's write by getbaz: one baz.
        one_baz: Option<bool>,
        output: String,
    },
    Skipped {
        why: String,
    },
}

pub fn analyze(ev: &Evidence) -> anyhow::Result<Findings> {
    if ev.programs.len() != 2 {
        bail!(
            "step 4 evidence must hold two programs; it holds {}",
            ev.programs.len()
        );
    }
    let page = ev.page_size;
    let loads: Vec<Option<LibLoad>> = ev.programs.iter().map(|p| load_of(p, page)).collect();
    let programs: Vec<ProgramFindings> = ev
        .programs
        .iter()
        .zip(&loads)
        .enumerate()
        .map(|(i, (p, load))| program(ev, i, p, load.as_ref()))
        .collect();
    let frames = frames(ev, &programs, &loads);
    let code_shared = (frames.code_pages_compared > 0)
        .then_some(frames.code_pages_same == frames.code_pages_compared);
    let baz_private = match frames.baz_frames[..] {
        [Some(a), Some(b)] => Some(a != b),
        _ => None,
    };
    let shape = |l: &Option<LibLoad>| -> Vec<(Option<u64>, String, String, Option<String>)> {
        l.as_ref().map_or(Vec::new(), |l| {
            l.all_maps()
                .iter()
                .map(|m| (m.arg_u64(1), arg(m, 2), arg(m, 3), m.args.get(5).cloned()))
                .collect()
        })
    };
    let (a, b) = (&ev.programs[0].library, &ev.programs[1].library);
    Ok(Findings {
        code_shared,
        baz_private,
        source: ev.source,
        same_library: a.inode == b.inode && a.dev == b.dev,
        same_calls: !shape(&loads[0]).is_empty() && shape(&loads[0]) == shape(&loads[1]),
        values: values(&programs),
        loading: loading(ev),
        client: client(ev),
        frames,
        programs,
    })
}

fn arg(c: &lab_trace::Syscall, i: usize) -> String {
    c.args
        .get(i)
        .map_or(String::new(), |a| a.trim().to_string())
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// Serialises an address as the findings print addresses: `"0x…"`.
fn as_hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(*v))
}

/// The load of the library in the program's trace: the one whose reservation is where
/// /proc/PID/maps shows the library, else the one of the same file name.
fn load_of(p: &ProgramRun, page: u64) -> Option<LibLoad> {
    let loads = loader::lib_loads(&p.trace.calls, page);
    let lib = &p.library;
    let at = lib.base + lib.first_load_vaddr / page * page;
    loads
        .iter()
        .find(|l| l.reservation(page).is_some_and(|(s, _)| s == at))
        .or_else(|| {
            loads
                .iter()
                .find(|l| loader::file_name(&l.path) == loader::file_name(&lib.path))
        })
        .cloned()
}

fn role_of(m: &lab_trace::Syscall) -> Role {
    let prot = m.arg_flags(2);
    if m.arg_flags(3).contains(&"MAP_ANONYMOUS") {
        Role::Bss
    } else if prot.contains(&"PROT_EXEC") {
        Role::Code
    } else if prot.contains(&"PROT_WRITE") {
        Role::Data
    } else {
        Role::ReadOnly
    }
}

/// `r-xp` → `PROT_READ|PROT_EXEC`.
pub fn perms_to_prot(perms: &str) -> String {
    let b = perms.as_bytes();
    let mut p = Vec::new();
    for (i, name) in [(0, "PROT_READ"), (1, "PROT_WRITE"), (2, "PROT_EXEC")] {
        if b.get(i).is_some_and(|c| *c != b'-') {
            p.push(name);
        }
    }
    if p.is_empty() {
        "PROT_NONE".into()
    } else {
        p.join("|")
    }
}

fn program(ev: &Evidence, i: usize, p: &ProgramRun, load: Option<&LibLoad>) -> ProgramFindings {
    let page = ev.page_size;
    let lib = &p.library;
    let base = load
        .and_then(|l| l.base(lib.first_load_vaddr, page))
        .unwrap_or(lib.base);
    let mut symbols = BTreeMap::new();
    for name in SYMBOLS.iter().filter(|n| **n != "bazaddr") {
        let Some(sym) = lib.symbols.iter().find(|s| s.name == *name) else {
            continue;
        };
        let address = base + sym.value;
        let line = p.maps.find(address);
        let prot = load
            .and_then(|l| l.prot_at(address, page))
            .or_else(|| {
                line.filter(|m| same_file(m, lib))
                    .map(|m| perms_to_prot(&m.perms))
            })
            .unwrap_or_else(|| "in no mapping of the library".into());
        symbols.insert(
            name.to_string(),
            SymbolPlace {
                address: hex(address),
                prot,
                mmap: load.and_then(|l| l.holder_of(address, page)).map(|k| k + 1),
                maps_line: line.map(|m| m.line()),
            },
        );
    }
    let maps = load.map_or(Vec::new(), |l| {
        map_calls(l, &symbols, page, lib.sections.as_ref(), base)
    });
    let not_loaded = load.is_none().then(|| file_mappings(p));
    let baz_home = p.baz_home.as_ref().map(|h| BazHomeFinding {
        address: hex(h.address),
        got_slot: h.got_slot.map(hex),
        object: h.object.clone(),
        in_program: h.in_program,
        maps_line: p.maps.find(h.address).map(|m| m.line()),
    });
    // The library's own baz must lie in its load only where the process uses it.
    let baz_unmapped = symbols
        .get("baz")
        .and_then(|s| lab_trace::parse_hex(&s.address))
        .filter(|_| baz_home.is_none())
        .and_then(|a| baz_outside(p, load, a, base, page));
    let printed_agrees = (!p.printed.symbols.is_empty()).then(|| {
        symbols.iter().all(|(name, place)| {
            p.printed
                .symbols
                .iter()
                .any(|s| &s.name == name && hex(s.address) == place.address)
        })
    });
    ProgramFindings {
        name: p.name.clone(),
        library: lib.path.clone(),
        mmaps: maps.len(),
        // A value read where the library's load maps nothing is not baz's.
        baz_values: ev
            .samples
            .iter()
            .filter(|_| baz_unmapped.is_none())
            .filter_map(|s| s.baz.get(i).copied().flatten())
            .collect(),
        pid: p.pid,
        path: p.path.clone(),
        needed_as: p
            .needed
            .iter()
            .find(|n| loader::file_name(n) == loader::file_name(&lib.path))
            .or_else(|| {
                let opened = load.map(|l| loader::file_name(&l.path))?;
                p.needed.iter().find(|n| loader::file_name(n) == opened)
            })
            .cloned(),
        runpath: p.runpath.clone().or_else(|| p.rpath.clone()),
        ld_library_path: p.ld_library_path.clone(),
        ready: p.ready,
        trace: load.map_or(Vec::new(), |l| trace_excerpt(&p.trace.calls, l)),
        open: load.map(|l| strip_pid(&l.open.raw)),
        failed_opens: load.map_or(0, |l| l.failed_opens.len()),
        fd: load.map(|l| l.fd),
        base,
        mprotects: load.map_or(Vec::new(), |l| {
            l.mprotects
                .iter()
                .map(|m| Mprotect {
                    raw: strip_pid(&m.raw),
                    prot: arg(m, 2),
                    inside: m
                        .arg_u64(0)
                        .and_then(|a| l.holder_of(a, page))
                        .map(|k| k + 1),
                })
                .collect()
        }),
        maps,
        sharing: smaps_reading(p),
        symbols,
        printed_agrees,
        printed_values: p.printed.values.clone(),
        baz_relocation: p.baz_relocation.clone(),
        library_baz_relocation: lib.baz_relocation.clone(),
        baz_home,
        not_loaded,
        baz_unmapped,
    }
}

/// What of the library's file the process maps, for a program ld.so did not load it into.
fn file_mappings(p: &ProgramRun) -> String {
    let lines: Vec<String> = p
        .maps
        .mappings
        .iter()
        .filter(|m| same_file(m, &p.library))
        .map(|m| {
            format!(
                "{:#x}-{:#x} {} at file offset {:#x}",
                m.start, m.end, m.perms, m.offset
            )
        })
        .collect();
    match lines.len() {
        0 => "nothing of the file".to_string(),
        1 => format!(
            "the file in 1 mapping that no load by ld.so accounts for: {}",
            lines[0]
        ),
        n => format!(
            "the file in {n} mappings that no load by ld.so accounts for: {}",
            lines.join(", ")
        ),
    }
}

/// Why baz's address `a` lies in no mapping of the library's load, if it does not: a load in
/// the trace holds it in one of its mmaps (the anonymous .bss map included); without one, a
/// writable mapping of the file itself must hold it. Offsets are from the load bias `base`.
fn baz_outside(
    p: &ProgramRun,
    load: Option<&LibLoad>,
    a: u64,
    base: u64,
    page: u64,
) -> Option<String> {
    let held = match load {
        Some(l) => l.holder_of(a, page).is_some(),
        None => p
            .maps
            .find(a)
            .is_some_and(|m| same_file(m, &p.library) && m.perms.starts_with("rw")),
    };
    if held {
        return None;
    }
    let end = p
        .maps
        .mappings
        .iter()
        .filter(|m| same_file(m, &p.library))
        .map(|m| m.end)
        .max();
    let what = match (end, p.maps.find(a)) {
        (Some(end), Some(m)) => format!(
            "its mappings of the file end at +{:#x}, and the address lies in {}",
            end.saturating_sub(base),
            if m.path.is_empty() {
                "an anonymous mapping of its own".to_string()
            } else {
                m.path.clone()
            }
        ),
        (Some(end), None) => format!(
            "its mappings of the file end at +{:#x}, and nothing is mapped there",
            end.saturating_sub(base)
        ),
        (None, _) => "it maps no part of the file".to_string(),
    };
    Some(format!(
        "{} maps nothing of the library at baz's address {a:#x} (+{:#x}): {what}",
        p.name,
        a.saturating_sub(base)
    ))
}

/// The strace lines of a load, in trace order: the failed opens, the open, the loader's reads
/// of the ELF headers and its mmaps on the descriptor until the close, the mprotects.
fn trace_excerpt(calls: &[lab_trace::Syscall], l: &LibLoad) -> Vec<String> {
    let mut lines: Vec<&lab_trace::Syscall> = l.failed_opens.iter().collect();
    let start = calls.iter().position(|c| c == &l.open);
    let end = l
        .close
        .as_ref()
        .and_then(|c| calls.iter().position(|x| x == c));
    match (start, end) {
        (Some(s), Some(e)) if s < e => lines.extend(calls[s..=e].iter().filter(|c| {
            c.pid == l.open.pid
                && (c.raw == l.open.raw
                    || l.all_maps().contains(c)
                    || (matches!(c.name.as_str(), "read" | "pread64" | "close")
                        && c.arg_i64(0) == Some(l.fd)))
        })),
        _ => {
            lines.push(&l.open);
            lines.extend(l.all_maps());
            lines.extend(l.close.iter());
        }
    }
    lines.extend(l.mprotects.iter());
    lines.into_iter().map(|c| c.raw.clone()).collect()
}

/// A strace line without its pid prefix.
fn strip_pid(raw: &str) -> String {
    match raw.split_once(' ') {
        Some((pid, rest)) if pid.chars().all(|c| c.is_ascii_digit()) => rest.to_string(),
        _ => raw.to_string(),
    }
}

fn map_calls(
    l: &LibLoad,
    symbols: &BTreeMap<String, SymbolPlace>,
    page: u64,
    sections: Option<&Sections>,
    base: u64,
) -> Vec<MapCall> {
    let contents = sections.map(|s| contents_of(l, s, base, page));
    l.all_maps()
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let flags = m.arg_flags(3);
            let (start, end) = loader::range(m, page).unwrap_or((0, 0));
            MapCall {
                raw: strip_pid(&m.raw),
                len: m.arg_u64(1).unwrap_or(0),
                prot: arg(m, 2),
                flags: arg(m, 3),
                fd: m.arg_i64(4).unwrap_or(-1),
                offset: hex(m.arg_u64(5).unwrap_or(0)),
                start: hex(start),
                end: hex(end),
                role: role_of(m),
                reservation: k == 0 && !flags.contains(&"MAP_FIXED"),
                fixed: flags.contains(&"MAP_FIXED"),
                denywrite: flags.contains(&"MAP_DENYWRITE"),
                private: flags.contains(&"MAP_PRIVATE"),
                holds: symbols
                    .iter()
                    .filter(|(_, s)| s.mmap == Some(k + 1))
                    .map(|(n, _)| n.clone())
                    .collect(),
                contents: contents.as_ref().map(|c| c[k].clone()),
            }
        })
        .collect()
}

/// What each of the load's mappings finally holds: a section goes to every mapping that
/// finally holds one of its pages ([`LibLoad::holder_of`]); the headers to the file-backed
/// mapping of offset 0 that still holds its own first page.
fn contents_of(l: &LibLoad, sections: &Sections, base: u64, page: u64) -> Vec<Contents> {
    let maps = l.all_maps();
    let mut contents: Vec<Contents> = maps
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let file_backed = !m.arg_flags(3).contains(&"MAP_ANONYMOUS");
            let start = loader::range(m, page).map(|(s, _)| s);
            Contents {
                headers: file_backed
                    && m.arg_u64(5) == Some(0)
                    && m.arg_u64(1).is_some_and(|len| len >= sections.header_bytes)
                    && start.is_some_and(|s| l.holder_of(s, page) == Some(k)),
                sections: Vec::new(),
            }
        })
        .collect();
    for section in &sections.loaded {
        let (first, end) = (base + section.addr, base + section.addr + section.size);
        // Its first byte, then the start of each further page it reaches.
        let pages = std::iter::successors(Some(first), |a| Some((a / page + 1) * page))
            .take_while(|a| *a < end);
        let mut holders: Vec<usize> = pages.filter_map(|a| l.holder_of(a, page)).collect();
        holders.sort_unstable();
        holders.dedup();
        for k in holders {
            if let Some(c) = contents.get_mut(k) {
                c.sections.push(section.name.clone());
            }
        }
    }
    contents
}

fn summary(c: &Counters) -> CounterSummary {
    CounterSummary {
        rss_kb: c.rss(),
        pss_kb: c.pss(),
        shared_clean_kb: c.kb("Shared_Clean"),
        shared_dirty_kb: c.kb("Shared_Dirty"),
        private_clean_kb: c.kb("Private_Clean"),
        private_dirty_kb: c.kb("Private_Dirty"),
        anonymous_kb: c.kb("Anonymous"),
        sharing: c.sharing(),
        mappers: (c.pss() > 0).then(|| (c.rss() as f64 / c.pss() as f64).round() as u64),
    }
}

fn smaps_reading(p: &ProgramRun) -> SmapsReading {
    let of = |perms: &str| smaps::total(&p.smaps, |m| m.perms == perms);
    SmapsReading {
        code: summary(&of("r-xp")),
        data: summary(&of("rw-p")),
        written: p
            .smaps
            .iter()
            .filter(|e| e.counters.kb("Anonymous") > 0)
            .map(|e| Written {
                perms: e.mapping.perms.clone(),
                offset: hex(e.mapping.offset),
                anonymous_kb: e.counters.kb("Anonymous"),
            })
            .collect(),
    }
}

/// Every program's pagemap entries by address, and where each program loaded the library.
struct PageIndex {
    bases: Vec<u64>,
    entries: Vec<HashMap<u64, PageEntry>>,
}

impl PageIndex {
    /// The resident entries, one per program, of the page `rel` bytes past each load address.
    fn at(&self, rel: u64) -> Vec<Option<PageEntry>> {
        self.bases
            .iter()
            .zip(&self.entries)
            .map(|(b, idx)| idx.get(&(b + rel)).copied().filter(|e| e.present()))
            .collect()
    }
}

fn frames(ev: &Evidence, programs: &[ProgramFindings], loads: &[Option<LibLoad>]) -> Frames {
    let page = ev.page_size;
    // Each process's pages inside its own mappings of the library (and the .bss its load
    // made): a page beyond them is some other memory, never the library's.
    let index = PageIndex {
        bases: programs.iter().map(|p| p.base).collect(),
        entries: ev
            .programs
            .iter()
            .zip(loads)
            .map(|(p, load)| {
                let ranges = frame_lines(p, load.as_ref(), page);
                p.pages
                    .iter()
                    .filter(|pg| ranges.iter().any(|r| r.0 <= pg.addr && pg.addr < r.1))
                    .map(|pg| (pg.addr, pg.entry))
                    .collect()
            })
            .collect(),
    };
    let readable = index
        .entries
        .iter()
        .flat_map(|i| i.values())
        .any(|e| e.pfn().is_some());
    let (mut code_compared, mut code_same) = (0, 0);
    let mut rows = Vec::new();
    for (start, end, perms) in frame_lines(&ev.programs[0], loads[0].as_ref(), page) {
        let (row, compared, same) = frame_row(
            &index,
            (start, end, perms),
            &programs[0],
            loads[0].as_ref(),
            page,
        );
        if row.perms == "r-xp" {
            code_compared += compared;
            code_same += same;
        }
        rows.push(row);
    }
    let mut baz_entries: Vec<Option<PageEntry>> = programs[0]
        .symbols
        .get("baz")
        .and_then(|s| lab_trace::parse_hex(&s.address))
        .map_or(vec![None; index.bases.len()], |a| {
            index.at((a - index.bases[0]) / page * page)
        });
    // Where the process really keeps baz (its own copy, with a COPY relocation): that page.
    for (e, p) in baz_entries.iter_mut().zip(&ev.programs) {
        if let Some(h) = &p.baz_home {
            *e = h.page.filter(|e| e.present());
        }
    }
    // No frame is taken for a baz the process's load does not map.
    for (e, p) in baz_entries.iter_mut().zip(programs) {
        if p.baz_unmapped.is_some() {
            *e = None;
        }
    }
    Frames {
        readable,
        code_pages_compared: code_compared,
        code_pages_same: code_same,
        baz_frames: baz_entries
            .iter()
            .map(|e| e.and_then(|e| e.pfn()))
            .collect(),
        baz_exclusive: baz_entries
            .iter()
            .map(|e| e.map(|e| e.exclusive()))
            .collect(),
        baz_anonymous: baz_entries
            .iter()
            .map(|e| e.map(|e| !e.file_or_shared()))
            .collect(),
        rows,
    }
}

/// The rows of the frames picture: the first program's mappings of the library, plus an
/// anonymous mapping right after them if the loader made it inside its reservation (.bss).
fn frame_lines(first: &ProgramRun, load: Option<&LibLoad>, page: u64) -> Vec<(u64, u64, String)> {
    let mut lines: Vec<(u64, u64, String)> = first
        .maps
        .mappings
        .iter()
        .filter(|m| same_file(m, &first.library))
        .map(|m| (m.start, m.end, m.perms.clone()))
        .collect();
    let reservation = load.and_then(|l| l.reservation(page));
    if let (Some(&(_, end, _)), Some((_, res_end))) =
        (lines.iter().max_by_key(|l| l.1), reservation)
    {
        if let Some(next) = first.maps.mappings.iter().find(|m| m.start == end) {
            if next.path.is_empty() && next.end <= res_end {
                lines.push((next.start, next.end, next.perms.clone()));
            }
        }
    }
    lines.sort();
    lines
}

/// One row: its pages compared across the programs. Also returns how many pages had readable
/// frames in both, and how many of those were the same frame.
fn frame_row(
    index: &PageIndex,
    (start, end, perms): (u64, u64, String),
    first: &ProgramFindings,
    load: Option<&LibLoad>,
    page: u64,
) -> (FrameRow, usize, usize) {
    let base = index.bases[0];
    let (rs, re) = (start - base, end - base);
    let mut row = FrameRow {
        start: rs,
        end: re,
        perms,
        mmap: load.and_then(|l| l.holder_of(start, page)).map(|k| k + 1),
        symbols: first
            .symbols
            .iter()
            // A program with its own copy of baz does not use the library's.
            .filter(|(n, _)| *n != "baz" || !first.baz_home.as_ref().is_some_and(|h| h.in_program))
            .filter(|(_, s)| {
                lab_trace::parse_hex(&s.address).is_some_and(|a| start <= a && a < end)
            })
            .map(|(n, _)| n.clone())
            .collect(),
        pages: (re - rs) / page,
        same: Vec::new(),
        sides: vec![RowSide::default(); index.bases.len()],
    };
    let (mut compared, mut same) = (0, 0);
    for rel in (rs..re).step_by(page as usize) {
        let e = index.at(rel);
        let pfns: Vec<Option<u64>> = e.iter().map(|x| x.and_then(|e| e.pfn())).collect();
        if let [Some(a), Some(b)] = pfns[..] {
            compared += 1;
            if a == b {
                same += 1;
                row.same.push(a);
                continue;
            }
        }
        let resident = e.iter().filter(|x| x.is_some()).count();
        for ((side, entry), pfn) in row.sides.iter_mut().zip(&e).zip(&pfns) {
            let Some(entry) = entry else {
                side.not_resident += 1;
                continue;
            };
            side.anonymous += u64::from(!entry.file_or_shared());
            match (pfn, resident) {
                (None, _) => side.hidden += 1,
                (Some(f), 2) => side.different.push(*f),
                (Some(f), _) => side.alone.push(*f),
            }
        }
    }
    (row, compared, same)
}

fn same_file(m: &lab_trace::maps::Mapping, lib: &Library) -> bool {
    m.inode == lib.inode && m.path == lib.path
}

fn values(programs: &[ProgramFindings]) -> Values {
    let (a, b) = (&programs[0].baz_values, &programs[1].baz_values);
    Values {
        samples: a.len().max(b.len()),
        both_read: a.len().min(b.len()),
        differed: a.iter().zip(b).filter(|(x, y)| x != y).count(),
        first_constant: a.first().copied().filter(|f| a.iter().all(|v| v == f)),
        second_changes: b.windows(2).filter(|w| w[0] != w[1]).count(),
    }
}

fn loading(ev: &Evidence) -> Loading {
    let pc = &ev.page_cache;
    let matches_loaded = pc
        .library
        .as_deref()
        .is_some_and(|l| ev.programs.iter().all(|p| p.library.path == l));
    // mincore reports every page of a file resident to a caller it hides the page cache from.
    let seen = pc.mincore_blind.is_none();
    let evicted = seen.then_some(matches!(pc.eviction, Eviction::Asked) && pc.resident_after == 0);
    let mut before = (matches_loaded && seen).then_some(pc.resident_after);
    let starts: Vec<StartCost> = ev
        .programs
        .iter()
        .map(|p| {
            let after = p.resident_when_ready.filter(|_| matches_loaded && seen);
            let cost = StartCost {
                name: p.name.clone(),
                majflt: p.faults_ready.majflt,
                minflt: p.faults_ready.minflt,
                majflt_later: p.faults_end.majflt.saturating_sub(p.faults_ready.majflt),
                resident_before: before,
                resident_after: after,
                pages_read: before.zip(after).map(|(b, a)| a.saturating_sub(b)),
            };
            before = after;
            cost
        })
        .collect();
    let known = evicted == Some(true) && matches_loaded;
    Loading {
        library: pc.library.clone(),
        matches_loaded,
        pages_total: pc.pages_total,
        eviction: pc.eviction.clone(),
        resident_before_eviction: seen.then_some(pc.resident_before),
        resident_after_eviction: seen.then_some(pc.resident_after),
        evicted,
        mincore_blind: pc.mincore_blind.clone(),
        first_from_disk: starts
            .first()
            .and_then(|s| s.pages_read)
            .filter(|_| known)
            .map(|n| n > 0),
        second_from_cache: starts
            .get(1)
            .and_then(|s| s.pages_read)
            .filter(|_| known)
            .map(|n| n == 0),
        starts,
    }
}

fn client(ev: &Evidence) -> ClientFinding {
    let run = match &ev.client {
        Client::Skipped { why } => return ClientFinding::Skipped { why: why.clone() },
        Client::Ran(run) => run,
    };
    let out = &run.output;
    let field = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let maps_text = out.split_once("\nmaps:\n").map_or("", |(_, m)| m);
    let maps = lab_trace::maps::Maps::parse(maps_text);
    let baz = field("baz: ").and_then(lab_trace::parse_hex);
    let getbaz = field("getbaz: ").and_then(lab_trace::parse_hex);
    let in_library = |a: Option<u64>| {
        a.and_then(|a| maps.find(a))
            .is_some_and(|m| loader::file_name(&m.path) == loader::file_name(&run.library))
    };
    let one_baz = match (field("setbaz(42): "), field("baz=7: ")) {
        (Some(set), Some(write)) => Some(set == "baz=42 getbaz=42" && write == "getbaz=7"),
        _ => None,
    };
    ClientFinding::Ran {
        command: run.command.clone(),
        relocation: run.relocation.clone(),
        baz_address: baz.map(hex),
        baz_line: baz.and_then(|a| maps.find(a)).map(|m| m.line()),
        inside_library: in_library(baz),
        getbaz_in_library: in_library(getbaz),
        one_baz,
        output: out
            .split_once("\nmaps:\n")
            .map_or(out.as_str(), |(head, _)| head)
            .to_string(),
    }
}
