//! Step 4's lines of `== Answers at a glance` (4.1–4.3), from the findings alone.

use super::analyze::{Findings, MapCall, ProgramFindings, Role};
use crate::report::Glance;

/// 4.1 which mmap calls load the library, 4.2 which holds the functions and baz, 4.3 the flags.
pub fn glance(f: &Findings) -> Vec<Glance> {
    let Some(first) = f.programs.first() else {
        return ["4.1", "4.2", "4.3"]
            .iter()
            .map(|n| Glance::new(n, "not measured: no program loaded the library"))
            .collect();
    };
    vec![calls(f), holds(f, first), flags(first)]
}

fn library_name(p: &ProgramFindings) -> &str {
    p.library.rsplit('/').next().unwrap_or(&p.library)
}

fn calls(f: &Findings) -> Glance {
    let each: Vec<String> = f
        .programs
        .iter()
        .map(|p| match p.fd {
            Some(fd) => format!(
                "{}: {} mmaps of fd {fd} (openat of {})",
                p.name,
                p.mmaps,
                library_name(p)
            ),
            None => format!("{}: no load of {} by ld.so", p.name, library_name(p)),
        })
        .collect();
    let same = if f.same_calls && f.programs.len() > 1 {
        "; the same calls in both"
    } else {
        ""
    };
    Glance::new("4.1", format!("{}{same}", each.join("; ")))
}

/// `r-x` for `PROT_READ|PROT_EXEC`.
pub(crate) fn prot_short(prot: &str) -> String {
    let has = |p: &str| prot.split('|').any(|x| x.trim() == p);
    [("PROT_READ", 'r'), ("PROT_WRITE", 'w'), ("PROT_EXEC", 'x')]
        .iter()
        .map(|(p, c)| if has(p) { *c } else { '-' })
        .collect()
}

fn placement(p: &ProgramFindings) -> String {
    let mut parts = Vec::new();
    for (i, m) in p.maps.iter().enumerate() {
        if m.holds.is_empty() {
            continue;
        }
        parts.push(format!(
            "{} in #{} ({}, offset {})",
            m.holds.join(", "),
            i + 1,
            prot_short(&m.prot),
            m.offset
        ));
    }
    if parts.is_empty() {
        "no symbol placed in a mapping".into()
    } else {
        parts.join(", ")
    }
}

fn holds(f: &Findings, first: &ProgramFindings) -> Glance {
    let mine = placement(first);
    let others: Vec<String> = f.programs[1..]
        .iter()
        .map(|p| {
            let theirs = placement(p);
            if theirs == mine {
                format!("{}: the same", p.name)
            } else {
                format!("{}: {theirs}", p.name)
            }
        })
        .collect();
    let mut text = format!("{} mmaps; {}: {mine}", first.mmaps, first.name);
    for o in others {
        text.push_str("; ");
        text.push_str(&o);
    }
    Glance::new("4.2", text)
}

fn role(m: &MapCall) -> &'static str {
    match m.role {
        _ if m.reservation => "reservation",
        Role::Code => "code",
        Role::ReadOnly => "read-only",
        Role::Data => "data, copy-on-write",
        Role::Bss => ".bss, anonymous",
    }
}

fn flags(p: &ProgramFindings) -> Glance {
    let each: Vec<String> = p
        .maps
        .iter()
        .enumerate()
        .map(|(i, m)| format!("#{} {} {}", i + 1, prot_short(&m.prot), role(m)))
        .collect();
    let fixed = p.maps.iter().filter(|m| m.fixed).count();
    let private = p.maps.iter().all(|m| m.private);
    let relro: Vec<String> = p
        .mprotects
        .iter()
        .map(|m| {
            let inside = m
                .inside
                .map_or("outside the mmaps".into(), |i| format!("#{i}"));
            format!("mprotect {inside} -> {} (RELRO)", prot_short(&m.prot))
        })
        .collect();
    let mut text = format!(
        "{}; {}{fixed} MAP_FIXED into the reservation",
        each.join(", "),
        if private { "all MAP_PRIVATE, " } else { "" }
    );
    for r in relro {
        text.push_str("; ");
        text.push_str(&r);
    }
    Glance::new("4.3", crate::report::shorten(&text, 185))
}
