//! The data of step 4's picture, built from the [`Findings`] (xtask draws it): the library's
//! pages in foo and in bar beside the physical frames they map, one row per mapping.

// foo, bar and baz are the assignment's names, not placeholders.
#![allow(clippy::disallowed_names)]

use super::Findings;

/// What the picture draws.
#[derive(Debug, Clone)]
pub struct Step4Picture {
    pub programs: Vec<Program>,
    pub rows: Vec<Row>,
    /// Whether any frame number was readable (root).
    pub frames_readable: bool,
    pub code_shared: Option<bool>,
    pub baz_private: Option<bool>,
    /// The frame holding baz in each program.
    pub baz_frames: Vec<Option<u64>>,
    /// baz as read from each program's memory.
    pub values: Vec<Vec<i64>>,
    /// One line about the C client, if it ran.
    pub client: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub pid: u32,
    pub base: u64,
    pub library: String,
}

/// One mapping of the library, at the same offset from the load address in both programs.
#[derive(Debug, Clone)]
pub struct Row {
    /// Offsets from the load address.
    pub start: u64,
    pub end: u64,
    pub perms: String,
    /// The loader's mmap that made it (`mmap #2 READ|EXEC, PRIVATE|FIXED`).
    pub mmap: Option<String>,
    /// Symbols inside, with their offset from the load address.
    pub symbols: Vec<(String, u64)>,
    pub pages: u64,
    /// Frames both map at the same page.
    pub same: Vec<u64>,
    /// Per program: frames of its own where the other maps another (private copies), frames
    /// only it has resident, and pages not resident.
    pub own: Vec<Vec<u64>>,
    pub alone: Vec<usize>,
    pub not_resident: Vec<u64>,
    /// The row holds baz's page.
    pub holds_baz: bool,
}

impl Step4Picture {
    pub fn from_findings(f: &Findings) -> Step4Picture {
        let parse = lab_trace::parse_hex;
        let first = &f.programs[0];
        let base0 = first.base;
        let rows = f
            .frames
            .rows
            .iter()
            .map(|r| Row {
                start: r.start,
                end: r.end,
                perms: r.perms.clone(),
                mmap: r.mmap.and_then(|k| {
                    let m = first.maps.get(k - 1)?;
                    Some(format!(
                        "mmap #{k} {}, {}",
                        m.prot.replace("PROT_", ""),
                        m.flags.replace("MAP_", "")
                    ))
                }),
                symbols: r
                    .symbols
                    .iter()
                    .filter_map(|n| {
                        let a = parse(&first.symbols.get(n)?.address)?;
                        Some((n.clone(), a.checked_sub(base0)?))
                    })
                    .collect(),
                pages: r.pages,
                same: r.same.clone(),
                own: r.sides.iter().map(|s| s.different.clone()).collect(),
                alone: r.sides.iter().map(|s| s.alone.len()).collect(),
                not_resident: r.sides.iter().map(|s| s.not_resident).collect(),
                holds_baz: r.symbols.iter().any(|n| n == "baz"),
            })
            .collect();
        Step4Picture {
            programs: f
                .programs
                .iter()
                .map(|p| Program {
                    name: p.name.clone(),
                    pid: p.pid,
                    base: p.base,
                    library: p.library.clone(),
                })
                .collect(),
            rows,
            frames_readable: f.frames.readable,
            code_shared: f.code_shared,
            baz_private: f.baz_private,
            baz_frames: f.frames.baz_frames.clone(),
            values: f.programs.iter().map(|p| p.baz_values.clone()).collect(),
            client: match &f.client {
                super::ClientFinding::Ran {
                    baz_address,
                    inside_library,
                    relocation,
                    ..
                } => Some(format!(
                    "C client: baz at {}, {} the library (relocation {})",
                    baz_address.as_deref().unwrap_or("an unprinted address"),
                    if *inside_library { "inside" } else { "outside" },
                    relocation.as_deref().unwrap_or("none")
                )),
                super::ClientFinding::Skipped { .. } => None,
            },
        }
    }
}
