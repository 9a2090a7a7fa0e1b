//! Step 4's explain: the narrative, the assignment's questions with this run's answers, and the
//! picture, formatted from the findings (and raw excerpts of the evidence). Nothing is decided
//! here.

use std::fmt::Write as _;

use lab_trace::smaps::Sharing;

use super::analyze::{
    ClientFinding, Contents, CounterSummary, Findings, MapCall, ProgramFindings, Role, StartCost,
};
use super::evidence::{Eviction, Evidence, Ready, Source};
use crate::Block;

pub fn explain(f: &Findings, ev: &Evidence) -> Vec<Block> {
    let mut blocks = vec![Block::text(intro(f))];
    for p in &f.programs {
        blocks.extend(program_blocks(p));
    }
    blocks.push(Block::answer(
        "What mmap calls during the start-up of foo and bar correspond to loading the shared \
         library?",
        which_calls(f),
    ));
    blocks.push(Block::answer(
        "Is there more than one per program? How do the allocated regions map to the addresses \
         of the functions and the baz global variable?",
        how_many(f),
    ));
    blocks.push(Block::heading("The flags, and why they differ"));
    blocks.push(Block::answer(
        "Are there any differences in the flags used? What motivates the difference in flags \
         used?",
        flags(f),
    ));
    blocks.push(Block::heading("Code shared in RAM, baz private"));
    blocks.push(Block::raw(
        "baz read from each process's memory (/proc/PID/mem) at the same moments",
        samples_table(f, ev),
    ));
    blocks.push(Block::raw(
        "/proc/PID/smaps of the library",
        smaps_table(ev),
    ));
    blocks.push(Block::evidence(
        "/proc/PID/pagemap: the library's pages and the physical frames they map",
        frames_table(f),
    ));
    blocks.push(Block::answer(
        "Do foo and bar share the library's code in RAM while each keeps its own baz?",
        sharing(f),
    ));
    blocks.push(Block::heading("Loading the library into RAM"));
    blocks.push(Block::evidence("page cache and faults", loading_table(f)));
    blocks.push(Block::answer(
        "\"If the library is not already in memory, it will need to be loaded into RAM\": does \
         it, and does the second program load it again?",
        loading(f),
    ));
    blocks.push(Block::heading(
        "A C client that names baz: a COPY relocation",
    ));
    if let ClientFinding::Ran {
        command, output, ..
    } = &f.client
    {
        blocks.push(Block::evidence(
            "the C client: build and output",
            format!("{command}\n{output}"),
        ));
    }
    blocks.push(Block::answer(
        "Where does baz live for a C client that refers to it directly?",
        client(f),
    ));
    blocks
}

fn intro(f: &Findings) -> String {
    let how = |p: &ProgramFindings| {
        let env = match (&p.runpath, &p.ld_library_path) {
            (Some(r), _) => format!("RUNPATH {r}"),
            (None, Some(l)) => format!("no RUNPATH, run with LD_LIBRARY_PATH={l}"),
            (None, None) => "no RUNPATH, no LD_LIBRARY_PATH".into(),
        };
        let ready = match p.ready {
            Ready::FirstObservation => "ready at its first observation".to_string(),
            Ready::Blocked { ms } => {
                format!("ready {ms} ms after start, once it had mapped the library and slept")
            }
            Ready::StillRunning { ms } => {
                format!("mapped the library but had not slept {ms} ms after start")
            }
        };
        format!("{} ({}, pid {}; {env}; {ready})", p.name, p.path, p.pid)
    };
    let who = match f.source {
        Source::Ours => "our foo and bar",
        Source::Given => "the programs given with --foo and --bar",
    };
    format!(
        "Ran {who}, one after the other and then side by side, each under strace -f -e \
         trace={}: {} and {}. The library is the one exporting \
         baz that /proc/PID/maps shows; setbaz, getbaz and baz are placed from its dynamic \
         symbols (.dynsym) plus its load address, and baz's value is read from each process's \
         memory, not from what the programs print.",
        super::FILTER,
        how(&f.programs[0]),
        how(&f.programs[1])
    )
}

fn role_text(m: &MapCall) -> String {
    let kind = match m.role {
        Role::Bss => "zero-filled anonymous memory, for what has no bytes in the file",
        Role::Code => "code: read+execute, never written, so it can be shared",
        Role::Data => {
            "data: read+write, and MAP_PRIVATE makes a write copy the page for this process \
             only (copy-on-write)"
        }
        Role::ReadOnly => "read-only",
    };
    let mut s = format!("{kind}; {}", contents_text(m.contents.as_ref()));
    if m.reservation {
        s = format!(
            "the reservation: the kernel picks the address and the length spans the whole \
             object, so the later MAP_FIXED maps land at the right distances from it; its own \
             first part stays as {s}"
        );
    } else if m.fixed {
        s.push_str("; MAP_FIXED: placed at an exact address inside the reservation");
    }
    s
}

/// What a mapping holds, named from the library's own headers.
fn contents_text(contents: Option<&Contents>) -> String {
    let Some(c) = contents else {
        return "which sections it holds: not recorded with this evidence".into();
    };
    let mut parts: Vec<&str> = Vec::new();
    if c.headers {
        parts.push("the ELF and program headers");
    }
    parts.extend(c.sections.iter().map(String::as_str));
    if parts.is_empty() {
        "holds no section of the library".into()
    } else {
        format!("holds {} (the library's section headers)", parts.join(", "))
    }
}

fn program_blocks(p: &ProgramFindings) -> Vec<Block> {
    let mut blocks = vec![Block::heading(format!(
        "{} (pid {}): how {} was loaded",
        p.name, p.pid, p.library
    ))];
    if p.trace.is_empty() {
        blocks.push(Block::text(format!(
            "The trace shows no openat of {} followed by mmaps on its descriptor: ld.so did not \
             load it in this process, as far as the trace shows ({}).",
            p.library,
            p.not_loaded.as_deref().map_or(
                "how it came to be mapped was not measured".to_string(),
                |w| { format!("the process maps {w}") }
            )
        )));
    } else {
        blocks.push(Block::raw(
            format!("strace of {} (pid {}): loading the library", p.name, p.pid),
            p.trace.join("\n"),
        ));
    }
    let mut text = String::new();
    for (i, m) in p.maps.iter().enumerate() {
        let holds = if m.holds.is_empty() {
            String::new()
        } else {
            format!(" <- holds {}", m.holds.join(", "))
        };
        let _ = writeln!(
            text,
            "#{} {}-{} ({} bytes) {} {}{holds}\n     {}",
            i + 1,
            m.start,
            m.end,
            m.len,
            m.prot,
            m.flags,
            role_text(m)
        );
    }
    for (name, s) in &p.symbols {
        let _ = writeln!(
            text,
            "{name} = {}: {}, {}; now the /proc/{}/maps line {}",
            s.address,
            s.mmap
                .map_or("in no mmap of the trace".into(), |k| format!("mmap #{k}")),
            s.prot,
            p.pid,
            s.maps_line.as_deref().unwrap_or("(none)")
        );
    }
    if let Some(line) = copied_baz_line(p) {
        let _ = writeln!(text, "{line}");
    }
    for m in &p.mprotects {
        let _ = writeln!(
            text,
            "{} turns part of {} into {}: RELRO, the GOT and other data the loader had to \
             relocate, made read-only once relocation is done",
            m.raw,
            m.inside
                .map_or("a range outside the load's mmaps".into(), |k| format!(
                    "mmap #{k}"
                )),
            m.prot
        );
    }
    // The same mappings are the answers' (how many, which holds what, the flags): here in full,
    // with the maps lines, for --verbose only.
    blocks.push(Block::raw(
        format!(
            "{}: each mmap, what it holds, the symbols' /proc/{}/maps lines",
            p.name, p.pid
        ),
        text.trim_end(),
    ));
    match p.printed_agrees {
        Some(true) => blocks.push(Block::text(format!(
            "{} printed the same addresses for setbaz, getbaz and baz.",
            p.name
        ))),
        Some(false) => blocks.push(Block::text(format!(
            "{} printed DIFFERENT addresses from these: compare its start line.",
            p.name
        ))),
        None => {}
    }
    blocks
}

fn which_calls(f: &Findings) -> String {
    let mut s = String::new();
    for p in &f.programs {
        let Some(open) = &p.open else {
            match &p.not_loaded {
                Some(what) => {
                    let _ = writeln!(
                        s,
                        "{}: no openat of the library followed by the loader's mmaps; it maps {what}.",
                        p.name
                    );
                }
                None => {
                    let _ = writeln!(s, "{}: no openat of the library followed by mmaps.", p.name);
                }
            }
            continue;
        };
        let fd = p.fd.unwrap_or(-1);
        let found = match (&p.needed_as, &p.runpath, &p.ld_library_path) {
            (Some(n), Some(r), _) => format!("DT_NEEDED {n}, searched along RUNPATH {r}"),
            (Some(n), None, Some(l)) => format!("DT_NEEDED {n}, found through LD_LIBRARY_PATH={l}"),
            (Some(n), None, None) => format!("DT_NEEDED {n}"),
            (None, ..) => "not in DT_NEEDED".into(),
        };
        let anon = p.maps.iter().filter(|m| m.role == Role::Bss).count();
        let _ = writeln!(
            s,
            "{}: {found}: {open} after {} failed attempts; the mmap calls on fd {fd} before \
             close({fd}) are the load: {} of them{}, then {} mprotect call(s) inside its range.",
            p.name,
            p.failed_opens,
            p.mmaps - anon,
            if anon > 0 {
                format!(" plus {anon} anonymous MAP_FIXED map(s)")
            } else {
                String::new()
            },
            p.mprotects.len()
        );
    }
    s.trim_end().to_string()
}

/// The answer's first line: more than one mmap per program, said for the programs ld.so loaded
/// the library into, and each other program named with what it maps instead.
fn how_many_head(f: &Findings, counts: &[String]) -> String {
    let loaded: Vec<&ProgramFindings> = f.programs.iter().filter(|p| p.mmaps > 0).collect();
    let more = !loaded.is_empty() && loaded.iter().all(|p| p.mmaps > 1);
    let why_more = " — one per loadable segment, because each segment needs different \
                    permissions and mmap gives one protection per mapping";
    if loaded.len() == f.programs.len() {
        format!(
            "{}: mmaps of the library per program: {}{}\n",
            if more { "Yes" } else { "No" },
            counts.join(", "),
            if more {
                format!("{why_more}.")
            } else {
                ".".to_string()
            }
        )
    } else {
        // A program ld.so did not load the library into has no answer here: said per program.
        let mut s = match loaded.as_slice() {
            [] => "Not measured: no program's trace shows the library loaded by ld.so".to_string(),
            _ => format!(
                "{} for {}: mmaps of the library: {}{}",
                if more { "Yes" } else { "No" },
                loaded
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" and "),
                loaded
                    .iter()
                    .map(|p| format!("{} {}", p.name, p.mmaps))
                    .collect::<Vec<_>>()
                    .join(", "),
                if more { why_more } else { "" }
            ),
        };
        for p in f.programs.iter().filter(|p| p.mmaps == 0) {
            let _ = write!(
                s,
                ". {} did not load the library the way the loader does: its trace shows no \
                 openat of it followed by the loader's mmaps, and it maps {}",
                p.name,
                p.not_loaded
                    .as_deref()
                    .unwrap_or("nothing of the file that the trace accounts for")
            );
        }
        s.push_str(".\n");
        s
    }
}

fn how_many(f: &Findings) -> String {
    let counts: Vec<String> = f
        .programs
        .iter()
        .map(|p| format!("{} {}", p.name, p.mmaps))
        .collect();
    let mut s = how_many_head(f, &counts);
    for (k, p) in f.programs.iter().enumerate() {
        if k > 0 && f.same_calls {
            // The same calls: only where its symbols landed differs.
            let _ = writeln!(
                s,
                "{}: the same {} maps at its own load address.",
                p.name, p.mmaps
            );
        } else {
            let _ = writeln!(s, "{}: {} maps.", p.name, p.mmaps);
        }
        for (i, m) in p.maps.iter().enumerate() {
            if k > 0 && f.same_calls {
                break;
            }
            let _ = writeln!(
                s,
                "  #{} {}-{} {} {}{}",
                i + 1,
                m.start,
                m.end,
                m.prot,
                m.flags,
                if m.holds.is_empty() {
                    String::new()
                } else {
                    format!(" <- holds {}", m.holds.join(", "))
                }
            );
        }
        for (name, sym) in &p.symbols {
            let _ = writeln!(
                s,
                "  {name} = {} in {} ({})",
                sym.address,
                sym.mmap
                    .map_or("no mmap of the trace".into(), |k| format!("mmap #{k}")),
                sym.prot
            );
        }
    }
    let bases: Vec<String> = f
        .programs
        .iter()
        .map(|p| format!("{:#x}", p.base))
        .collect();
    let _ = write!(
        s,
        "{} made {} (lengths, protections, flags, file offsets) at {} load addresses ({}){}.",
        names(f),
        if f.same_calls {
            "the same sequence of calls"
        } else {
            "DIFFERENT sequences of calls (compare the traces above)"
        },
        if bases.windows(2).all(|w| w[0] == w[1]) {
            "the same (no address randomisation here?)"
        } else {
            "different"
        },
        bases.join(" vs "),
        if f.same_library {
            ""
        } else {
            "; and they mapped DIFFERENT files"
        }
    );
    s
}

fn names(f: &Findings) -> String {
    f.programs
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}

fn flags(f: &Findings) -> String {
    let Some(p) = f.programs.iter().find(|p| !p.maps.is_empty()) else {
        return "The trace shows no load of the library, so there are no flags to compare.".into();
    };
    let maps = &p.maps;
    let count = |pred: fn(&MapCall) -> bool| maps.iter().filter(|m| pred(m)).count();
    let mut s = format!(
        "Protections differ per mapping ({}): mmap can give a mapping only one protection, so \
         the loader maps each ELF segment separately with the permissions of its program \
         header: code read+execute, constants read-only, data read+write.\n",
        maps.iter()
            .map(|m| m.prot.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (i, m) in maps.iter().enumerate() {
        let _ = writeln!(s, "  #{}: {}", i + 1, role_text(m));
    }
    let private = count(|m| m.private);
    let _ = writeln!(
        s,
        "Flags: {private} of {} maps are MAP_PRIVATE{}; {} are MAP_FIXED (every map after the \
         first: the first, without MAP_FIXED, reserves the whole span where the kernel likes, \
         the others are placed at fixed distances inside it, as the segments' virtual addresses \
         require); {} carry MAP_DENYWRITE (historically: refuse writes to a file that is being \
         executed; the kernel now ignores it, mmap(2)).",
        maps.len(),
        if private == maps.len() {
            " (no write ever reaches the file or another process: a written page is copied first)"
        } else {
            ""
        },
        count(|m| m.fixed),
        count(|m| m.denywrite),
    );
    let anon = count(|m| m.role == Role::Bss);
    let _ = writeln!(
        s,
        "{}",
        if anon == 0 {
            "No anonymous map: the library's .bss fits in its last file-backed page, which the \
             loader zeroes; a library with a larger .bss gets a MAP_ANONYMOUS|MAP_FIXED map for \
             the rest."
                .to_string()
        } else {
            format!(
                "{anon} anonymous MAP_FIXED map(s) complete .bss with zero pages the file does \
                 not hold."
            )
        }
    );
    let _ = write!(
        s,
        "After relocation, {} mprotect call(s) inside the library ({}) make RELRO read-only: the \
         GOT and other data the loader had to write once are then protected against \
         overwriting.",
        p.mprotects.len(),
        p.mprotects
            .iter()
            .map(|m| m.raw.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    s
}

fn samples_table(f: &Findings, ev: &Evidence) -> String {
    let mut s = format!(
        "{:>7}  {}\n",
        "ms",
        f.programs
            .iter()
            .map(|p| format!("{:>8}", p.name))
            .collect::<String>()
    );
    for sample in &ev.samples {
        let _ = writeln!(
            s,
            "{:>7}  {}",
            sample.ms,
            sample
                .baz
                .iter()
                .map(|v| format!("{:>8}", v.map_or("unread".into(), |v| v.to_string())))
                .collect::<String>()
        );
    }
    for p in f.programs.iter().filter(|p| !p.printed_values.is_empty()) {
        let _ = writeln!(
            s,
            "{} printed {} observations: {}",
            p.name,
            p.printed_values.len(),
            brief(&p.printed_values)
        );
    }
    s
}

fn brief(v: &[i64]) -> String {
    let shown: Vec<String> = v.iter().take(12).map(i64::to_string).collect();
    if v.len() > 12 {
        format!("{} … {}", shown.join(" "), v[v.len() - 1])
    } else {
        shown.join(" ")
    }
}

fn smaps_table(ev: &Evidence) -> String {
    let mut s = String::new();
    for p in &ev.programs {
        for e in &p.smaps {
            let c = &e.counters;
            let _ = writeln!(
                s,
                "{} {} offset {:#x}: Rss {} kB, Pss {} kB, Shared_Clean {} kB, Shared_Dirty {} \
                 kB, Private_Clean {} kB, Private_Dirty {} kB, Anonymous {} kB",
                p.name,
                e.mapping.perms,
                e.mapping.offset,
                c.rss(),
                c.pss(),
                c.kb("Shared_Clean"),
                c.kb("Shared_Dirty"),
                c.kb("Private_Clean"),
                c.kb("Private_Dirty"),
                c.kb("Anonymous")
            );
        }
    }
    s
}

fn frames_list(v: &[u64]) -> String {
    let shown: Vec<String> = v.iter().take(4).map(|f| format!("{f:#x}")).collect();
    if v.len() > 4 {
        format!("{} … ({} frames)", shown.join(" "), v.len())
    } else {
        shown.join(" ")
    }
}

fn frames_table(f: &Findings) -> String {
    let mut s = String::new();
    if !f.frames.readable {
        s.push_str(
            "frame numbers read as 0: the kernel shows them only to CAP_SYS_ADMIN (run as root)\n",
        );
    }
    for r in &f.frames.rows {
        let _ = writeln!(
            s,
            "+{:#x}..+{:#x} {} ({} pages{}{}): same frame in both: {}",
            r.start,
            r.end,
            r.perms,
            r.pages,
            r.mmap.map_or(String::new(), |k| format!(", mmap #{k}")),
            if r.symbols.is_empty() {
                String::new()
            } else {
                format!(", holds {}", r.symbols.join(", "))
            },
            if !f.frames.readable {
                // Hidden frames compare equal to nothing: that is not "none shared".
                "not measured, frames hidden (needs root)".into()
            } else if r.same.is_empty() {
                "none".into()
            } else {
                frames_list(&r.same)
            }
        );
        for (p, side) in f.programs.iter().zip(&r.sides) {
            if !f.frames.readable {
                let _ = writeln!(
                    s,
                    "    {}: anonymous {}, not resident {}, frame hidden {}",
                    p.name, side.anonymous, side.not_resident, side.hidden
                );
                continue;
            }
            let _ = writeln!(
                s,
                "    {}: own frames {}{}; only here {}; anonymous {}, not resident {}, frame \
                 hidden {}",
                p.name,
                side.different.len(),
                if side.different.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", frames_list(&side.different))
                },
                side.alone.len(),
                side.anonymous,
                side.not_resident,
                side.hidden
            );
        }
    }
    let baz: Vec<String> = f
        .programs
        .iter()
        .zip(&f.frames.baz_frames)
        .map(|(p, fr)| {
            format!(
                "{} {}",
                p.name,
                fr.map_or("not read".into(), |x| format!("{x:#x}"))
            )
        })
        .collect();
    if f.frames.readable {
        let _ = writeln!(s, "frame of baz's page: {}", baz.join(", "));
    } else {
        let _ = writeln!(s, "frame of baz's page: hidden (needs root)");
    }
    s
}

/// Which counter of smaps showed the code's sharing, in words.
fn smaps_sentence(name: &str, c: &CounterSummary) -> String {
    let shown = match c.sharing {
        Sharing::SharedClean => format!(
            "shared: Shared_Clean {} kB (the page-cache pages are clean, as the file is on disk)",
            c.shared_clean_kb
        ),
        Sharing::SharedDirty => format!(
            "shared: Shared_Dirty {} kB, not Shared_Clean: the library's page-cache pages are \
             dirty (the file was written recently, e.g. just built, and not yet written back); \
             dirty or clean, another process maps them",
            c.shared_dirty_kb
        ),
        Sharing::PssBelowRss => "shared: only Pss < Rss shows it".to_string(),
        Sharing::NotShared => "NOT shared by these counters: no Shared_* and Pss = Rss".into(),
        Sharing::NotResident => "no code page resident, so the counters say nothing".into(),
    };
    let pss = match c.mappers {
        Some(n) if n >= 2 && c.sharing != Sharing::NotResident => {
            format!(
                "; Pss {} kB ≈ Rss {} kB / {n}: about {n} processes map these pages",
                c.pss_kb, c.rss_kb
            )
        }
        _ => format!("; Pss {} kB, Rss {} kB", c.pss_kb, c.rss_kb),
    };
    format!("{name}'s code (r-xp): {shown}{pss}")
}

/// For a program whose baz is its own copy: where, and how the lab knows.
fn copied_baz_line(p: &ProgramFindings) -> Option<String> {
    let h = p.baz_home.as_ref().filter(|h| h.in_program)?;
    Some(format!(
        "but {} does not use that baz: the library's GOT slot for baz{} holds {} (read from \
         /proc/{}/mem), {}'s own copy in its data ({}{}; the program's relocation against baz is \
         {}): the library's baz is left unused",
        p.name,
        h.got_slot
            .as_deref()
            .map_or(String::new(), |g| format!(" at {g}")),
        h.address,
        p.pid,
        p.name,
        h.object,
        h.maps_line
            .as_deref()
            .map_or(String::new(), |l| format!(", the maps line {l}")),
        p.baz_relocation.as_deref().unwrap_or("none"),
    ))
}

/// Whether some program keeps its own copy of baz (`R_X86_64_COPY`), found in its memory.
fn baz_copied(f: &Findings) -> bool {
    f.programs
        .iter()
        .any(|p| p.baz_home.as_ref().is_some_and(|h| h.in_program))
}

/// Where baz lives in each program, when some program keeps its own copy (`R_X86_64_COPY`).
fn baz_home_sentence(f: &Findings) -> Option<String> {
    if !baz_copied(f) {
        return None;
    }
    let each: Vec<String> = f
        .programs
        .iter()
        .map(|p| match &p.baz_home {
            Some(h) if h.in_program => format!(
                "{}'s at {}, its own copy in {} ({} in {})",
                p.name,
                h.address,
                h.object,
                p.baz_relocation.as_deref().unwrap_or("no relocation"),
                p.name
            ),
            Some(h) => format!(
                "{}'s at {}, the library's own in {} ({} has no COPY of it)",
                p.name, h.address, h.object, p.name
            ),
            None => format!("{}'s not found", p.name),
        })
        .collect();
    Some(format!(
        "Where baz lives (the address ld.so wrote into the library's GOT slot for baz, read \
         from /proc/PID/mem): {}. With a COPY relocation the linker gave the program its own baz \
         in its .bss and the loader points the library's code at it, so that program's baz is \
         in its own data, private and copy-on-write, even though the library's code can be one \
         copy in RAM; the values and frames of baz below are read where each program's baz is.",
        each.join("; ")
    ))
}

fn sharing(f: &Findings) -> String {
    let mut lines: Vec<String> = baz_home_sentence(f).into_iter().collect();
    lines.extend([
        values_sentence(f),
        code_frames_sentence(f),
        baz_frame_sentence(f),
    ]);
    for p in &f.programs {
        lines.push(format!("{}.", smaps_sentence(&p.name, &p.sharing.code)));
        if !p.sharing.written.is_empty() {
            let written: Vec<String> = p
                .sharing
                .written
                .iter()
                .map(|w| {
                    format!(
                        "{} at file offset {}: {} kB",
                        w.perms, w.offset, w.anonymous_kb
                    )
                })
                .collect();
            lines.push(format!(
                "{}: pages of the library it wrote and so owns as private anonymous copies: {} \
                 (an r--p one is RELRO: written by the loader's relocations, then mprotected).",
                p.name,
                written.join("; ")
            ));
        }
    }
    lines.join("\n")
}

/// What baz held in both processes at the same moments.
fn values_sentence(f: &Findings) -> String {
    let (a, b) = (&f.programs[0], &f.programs[1]);
    let v = &f.values;
    let unmapped: Vec<&str> = f
        .programs
        .iter()
        .filter_map(|p| p.baz_unmapped.as_deref())
        .collect();
    if !unmapped.is_empty() {
        let read = f
            .programs
            .iter()
            .filter(|p| p.baz_unmapped.is_none())
            .map(|p| {
                let held = match p.baz_values.first() {
                    None => "no value read".to_string(),
                    Some(v0) if p.baz_values.iter().all(|v| v == v0) => {
                        format!("{v0} in all {} reads", p.baz_values.len())
                    }
                    Some(_) => format!(
                        "{} values in {} reads",
                        p.baz_values
                            .iter()
                            .collect::<std::collections::BTreeSet<_>>()
                            .len(),
                        p.baz_values.len()
                    ),
                };
                format!(" {} held {held}.", p.name)
            })
            .collect::<String>();
        return format!(
            "Values: not compared: {}, so the lab read nothing there and no second baz is \
             compared.{read}",
            unmapped.join("; ")
        );
    }
    format!(
        "Values: read {} times from both processes' memory, one read right after the other: {} \
         held {}, {} changed {} ({} to {}). {}",
        v.samples,
        a.name,
        v.first_constant
            .map_or("CHANGING values".into(), |c| format!("{c} throughout")),
        b.name,
        count(v.second_changes as u64, "time"),
        b.baz_values
            .first()
            .map_or("no value read".into(), i64::to_string),
        b.baz_values
            .last()
            .map_or("no value read".into(), i64::to_string),
        if v.differed > 0 {
            format!(
                "In {} of {} samples the two held different values at the same moment: two \
                 variables{}, not one shared baz.",
                v.differed,
                v.both_read,
                if baz_copied(f) {
                    ", each where that program's baz lives (see above)"
                } else {
                    " at one library address each"
                }
            )
        } else {
            "The two never held different values at the same moment: this run does not show \
             two copies of baz."
                .into()
        }
    )
}

fn code_frames_sentence(f: &Findings) -> String {
    let fr = &f.frames;
    let said = match f.code_shared {
        Some(true) => format!(
            "{} resident in both: the same physical frame{} in each, one copy of the code in RAM \
             at different virtual addresses.",
            count(fr.code_pages_compared as u64, "code page"),
            if fr.code_pages_compared == 1 { "" } else { "s" }
        ),
        Some(false) => format!(
            "only {} of {} code pages resident in both map the same frame: in this run the code \
             is NOT one copy in RAM.",
            fr.code_pages_same, fr.code_pages_compared
        ),
        None if !fr.readable => "frame numbers are hidden (they read as 0 without \
                                 CAP_SYS_ADMIN; run as root to compare them)."
            .into(),
        None => "no code page was resident in both, so no frames compare.".into(),
    };
    format!("pagemap: {said}")
}

fn baz_frame_sentence(f: &Findings) -> String {
    let (a, b) = (&f.programs[0], &f.programs[1]);
    let fr = &f.frames;
    let frames: Vec<String> = fr
        .baz_frames
        .iter()
        .map(|x| x.map_or("not read".into(), |x| format!("{x:#x}")))
        .collect();
    let unmapped: Vec<&str> = f
        .programs
        .iter()
        .filter(|p| p.baz_unmapped.is_some())
        .map(|p| p.name.as_str())
        .collect();
    if !unmapped.is_empty() {
        let known: Vec<String> = f
            .programs
            .iter()
            .zip(&fr.baz_frames)
            .filter_map(|(p, x)| x.map(|x| format!("{}'s is frame {x:#x}", p.name)))
            .collect();
        return format!(
            "No frame of baz is compared: {} {} no page of the library at baz's address{}.",
            unmapped.join(" and "),
            if unmapped.len() == 1 { "maps" } else { "map" },
            if known.is_empty() {
                String::new()
            } else {
                format!(" ({})", known.join(", "))
            }
        );
    }
    match f.baz_private {
        Some(true) => format!(
            "The page holding baz is frame {} in {} and {} in {}: two private copies \
             (MAP_PRIVATE: the first write copied the page){}.",
            frames[0],
            a.name,
            frames[1],
            b.name,
            if baz_copied(f) {
                "; baz is not shared even where the library's code is"
            } else {
                ""
            }
        ),
        Some(false) => format!(
            "The page holding baz is the SAME frame {} in both: this contradicts copy-on-write.",
            frames[0]
        ),
        None => format!(
            "baz's frame is not readable; pagemap's flags (readable without root) say its page \
             is {} in {} and {} in {}.",
            page_flags(fr.baz_exclusive[0], fr.baz_anonymous[0]),
            a.name,
            page_flags(fr.baz_exclusive[1], fr.baz_anonymous[1]),
            b.name
        ),
    }
}

fn page_flags(exclusive: Option<bool>, anonymous: Option<bool>) -> String {
    match (exclusive, anonymous) {
        (Some(e), Some(a)) => format!(
            "{} and {}",
            if e {
                "mapped by this process only"
            } else {
                "mapped by several"
            },
            if a {
                "anonymous (a private copy)"
            } else {
                "the file's own page"
            }
        ),
        _ => "not resident".into(),
    }
}

fn loading_table(f: &Findings) -> String {
    let l = &f.loading;
    let mut s = format!(
        "library: {}\n",
        l.library.as_deref().unwrap_or("(not found before the run)")
    );
    let eviction = match &l.eviction {
        Eviction::Asked => "fsync + posix_fadvise(POSIX_FADV_DONTNEED)".to_string(),
        Eviction::Failed { error } => format!("eviction failed: {error}"),
        Eviction::NotTried { why } => format!("not evicted: {why}"),
    };
    match (l.resident_before_eviction, l.resident_after_eviction) {
        (Some(before), Some(after)) => {
            let _ = writeln!(
                s,
                "resident before eviction: {before} of {} pages; {eviction}; after: {after}",
                l.pages_total
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "resident pages: not measured ({}); {eviction}",
                l.mincore_blind
                    .as_deref()
                    .unwrap_or("mincore's counts were not recorded")
            );
        }
    }
    for st in &l.starts {
        let resident = match (st.resident_before, st.resident_after) {
            (Some(b), Some(a)) => format!("library pages resident {b} -> {a}"),
            _ => "library pages resident: not measured".to_string(),
        };
        let _ = writeln!(
            s,
            "{}: major faults {}, minor faults {} by the time it was ready ({} more major while \
             both ran); {resident}",
            st.name, st.majflt, st.minflt, st.majflt_later,
        );
    }
    s
}

/// `1 page`, `3 pages`.
fn count(n: impl Into<u64>, what: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A count of resident pages, or "an unmeasured number" (never reached with one: the callers
/// run only when mincore was believed).
fn opt_pages(n: Option<u64>) -> String {
    n.map_or("an unmeasured number".into(), |n| n.to_string())
}

/// What /proc/PID/stat says of one program's start, without the page cache.
fn fault_sentence(st: &StartCost) -> String {
    format!(
        "{} took {} (and {} minor) while starting and {} more while both ran",
        st.name,
        count(st.majflt, "major fault"),
        st.minflt,
        st.majflt_later
    )
}

fn start_sentence(st: &StartCost) -> String {
    format!(
        "{} took {} (and {} minor) while starting, {} more while both ran, and {} of the \
         library came into the page cache",
        st.name,
        count(st.majflt, "major fault"),
        st.minflt,
        st.majflt_later,
        st.pages_read
            .map_or("an unknown number of pages".into(), |n| count(n, "page"))
    )
}

fn loading(f: &Findings) -> String {
    let l = &f.loading;
    let (Some(first), Some(second)) = (l.starts.first(), l.starts.get(1)) else {
        return "No program started.".into();
    };
    if !l.matches_loaded {
        return format!(
            "Not shown: the file evicted before the run ({}) is not the one the programs \
             mapped ({}), so its page counts say nothing about their start.",
            l.library.as_deref().unwrap_or("none"),
            f.programs[0].library
        );
    }
    if let Some(blind) = &l.mincore_blind {
        return format!(
            "Not measured in this run: mincore(2) cannot be believed for {}: {blind}, and since \
             Linux 5.2 mincore then reports every page of such a file resident, so how many of \
             its {} pages were in the page cache before and after the eviction, and when each \
             program was ready, was not measured. The eviction {}. Measured instead, from \
             /proc/PID/stat: {}; {} (/proc/PID/stat does not say which file a major fault \
             read).",
            l.library.as_deref().unwrap_or("the library"),
            l.pages_total,
            match &l.eviction {
                Eviction::Asked => "was asked for (fsync + posix_fadvise(POSIX_FADV_DONTNEED) \
                                    succeeded); whether it dropped the pages was not measured"
                    .to_string(),
                Eviction::Failed { error } => format!("failed ({error})"),
                Eviction::NotTried { why } => format!("was not tried ({why})"),
            },
            fault_sentence(first),
            fault_sentence(second)
        );
    }
    if l.evicted != Some(true) {
        let why = match &l.eviction {
            Eviction::Asked => format!(
                "the eviction was asked for, but {} of {} pages stayed resident (pages another \
                 process maps, or a file on tmpfs, cannot be dropped)",
                opt_pages(l.resident_after_eviction),
                l.pages_total
            ),
            Eviction::Failed { error } => format!("eviction failed ({error})"),
            Eviction::NotTried { why } => format!("eviction was not tried ({why})"),
        };
        return format!(
            "Not shown in this run: {why}, so {} found the library partly or wholly in RAM \
             already. {}; {}.",
            first.name,
            start_sentence(first),
            start_sentence(second)
        );
    }
    let mut s = format!(
        "After fsync + posix_fadvise(POSIX_FADV_DONTNEED), mincore showed {} of the library's \
         {} pages in the page cache. {}",
        opt_pages(l.resident_after_eviction),
        l.pages_total,
        start_sentence(first)
    );
    s.push_str(match (l.first_from_disk, first.majflt) {
        (Some(true), 0) => {
            ": the library was read from disk into RAM as it was loaded, without a major fault: \
             the loader's read(2) of the ELF header (in the trace above: a system call, not a \
             fault) made the kernel read ahead the rest of the file, so its mmaps found the \
             pages in RAM."
        }
        (Some(true), _) => {
            ": the library was read from disk into RAM as it was loaded (the loader's read(2) \
             of the ELF header, in the trace above, and the faults on its mappings; readahead \
             brings neighbouring pages in the same I/O, so pages outnumber major faults)."
        }
        _ => ": no page came in, which contradicts the claim.",
    });
    let _ = write!(s, " Then {}", start_sentence(second));
    s.push_str(match l.second_from_cache {
        Some(true) if second.majflt == 0 => {
            ": it mapped the pages already in RAM (its mmaps and faults only pointed its page \
             tables at them), with no major fault at all."
        }
        Some(true) => {
            ": none of its major faults read the library (its page count did not change); they \
             were on other files."
        }
        _ => ": it needed pages the first program had not touched, and those came from disk.",
    });
    s
}

fn client(f: &Findings) -> String {
    let relocs: Vec<String> = f
        .programs
        .iter()
        .map(|p| {
            format!(
                "{}'s is {}",
                p.name,
                p.baz_relocation.as_deref().unwrap_or("none")
            )
        })
        .collect();
    let lib_reloc = f.programs[0]
        .library_baz_relocation
        .as_deref()
        .unwrap_or("none");
    match &f.client {
        ClientFinding::Skipped { why } => format!(
            "Not shown: the C client was not built ({why}). From the ELF files alone: {}; the \
             library's own is {lib_reloc}.",
            relocs.join(", ")
        ),
        ClientFinding::Ran {
            relocation,
            baz_address,
            baz_line,
            inside_library,
            getbaz_in_library,
            one_baz,
            ..
        } => {
            let head = format!(
                "The C client's relocation against baz is {}; {}; the library's own is \
                 {lib_reloc}. The client's baz is at {}, in {} ({}){}.",
                relocation.as_deref().unwrap_or("none"),
                relocs.join(", "),
                baz_address
                    .as_deref()
                    .unwrap_or("an address it did not print"),
                baz_line.as_deref().unwrap_or("no mapping"),
                if *inside_library {
                    "inside the library"
                } else {
                    "outside the library"
                },
                if *getbaz_in_library {
                    ", while its getbaz is in the library's code"
                } else {
                    ""
                }
            );
            let tail =
                match (relocation.as_deref(), inside_library) {
                    (Some("R_X86_64_COPY"), false) => format!(
                    "The compiler addressed baz as if it were the executable's own variable, so \
                     the linker reserved it in the executable's .bss and the loader copied the \
                     library's initial value there; the library reaches baz through its GOT, \
                     which the loader points at the executable's copy: {} A program that only \
                     calls setbaz/getbaz, or a PIE that loads baz's address from its GOT (our \
                     Rust foo), uses the library's own copy.",
                    match one_baz {
                        Some(true) => "setbaz(42) is seen by the client's baz and the client's \
                                       `baz = 7` by getbaz(), so one baz is in use, the \
                                       executable's.",
                        Some(false) => "yet setbaz/getbaz and the client's baz DISAGREE, so two \
                                        copies are in use.",
                        None => "(the client's checks did not print).",
                    }
                ),
                    (r, _) => format!(
                    "No COPY relocation ({}) or baz inside the library: this toolchain did not \
                     copy baz into the executable.",
                    r.unwrap_or("none")
                ),
                };
            format!("{head} {tail}")
        }
    }
}
