//! Step 4's picture: the libfoobar.so segments of foo and bar side by side.

use plotters::prelude::*;
use serde_json::Value;

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// Step 4

pub(super) struct Segment {
    start: u64,
    end: u64,
    perms: String,
    offset: String,
    path: String,
    /// The flags of the mmap call that produced this range, if the trace has one.
    mmap: Option<String>,
}

pub(super) struct Program {
    name: String,
    pid: String,
    segments: Vec<Segment>,
    symbols: Vec<(String, u64)>,
}

pub(super) fn step4_program(p: &Value) -> Result<Program, String> {
    let name = p
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let pid = p.get("pid").map(|v| v.to_string()).unwrap_or_default();
    let maps = p
        .get("maps")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{name} has no `maps` list"))?;
    let mut all: Vec<Segment> = maps
        .iter()
        .filter_map(|m| {
            Some(Segment {
                start: addr(m.get("start")?)?,
                end: addr(m.get("end")?)?,
                perms: m.get("perms")?.as_str()?.to_string(),
                offset: m
                    .get("offset")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                path: m
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                mmap: None,
            })
        })
        .filter(|s| s.end > s.start)
        .collect();
    all.sort_by_key(|s| s.start);
    // The library's own lines, plus anonymous lines that continue them without a gap (.bss).
    let mut segments: Vec<Segment> = Vec::new();
    for s in all {
        let is_lib = s.path.contains("libfoobar");
        let continues = segments
            .last()
            .is_some_and(|last| last.end == s.start && s.path.is_empty());
        if is_lib || continues {
            segments.push(s);
        }
    }
    if !segments.iter().any(|s| s.path.contains("libfoobar")) {
        return Err(format!("{name}'s maps have no libfoobar.so line"));
    }
    // Which traced mmap produced each range: the last call whose result covers its start.
    if let Some(mmaps) = p.get("mmaps").and_then(Value::as_array) {
        for seg in &mut segments {
            seg.mmap = mmaps
                .iter()
                .rfind(|m| {
                    let (Some(r), Some(l)) =
                        (m.get("result").and_then(addr), m.get("len").and_then(num))
                    else {
                        return false;
                    };
                    r <= seg.start && seg.start < r.saturating_add(l as u64)
                })
                .map(|m| {
                    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("?");
                    // Shortened to fit the box: PROT_READ|PROT_EXEC -> READ|EXEC.
                    format!(
                        "mmap {}, {}, fd {}",
                        s("prot").replace("PROT_", ""),
                        s("flags").replace("MAP_", ""),
                        m.get("fd").map(|v| v.to_string()).unwrap_or_default()
                    )
                });
        }
    }
    let symbols = p
        .get("symbols")
        .and_then(Value::as_array)
        .map(|syms| {
            syms.iter()
                .filter_map(|s| {
                    Some((
                        s.get("name")?.as_str()?.to_string(),
                        addr(s.get("address")?)?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Program {
        name,
        pid,
        segments,
        symbols,
    })
}

fn perms_color(perms: &str, path: &str) -> RGBColor {
    if path.is_empty() {
        RGBColor(205, 235, 205)
    } else if perms.starts_with("r-x") {
        RGBColor(255, 204, 140)
    } else if perms.starts_with("rw") {
        RGBColor(170, 220, 170)
    } else if perms.starts_with("r--") {
        RGBColor(185, 210, 240)
    } else {
        RGBColor(225, 225, 225)
    }
}

/// Step 4: the libfoobar.so segments in foo's and bar's address space, side by side, with their
/// permissions, the mmap that produced each, and where setbaz, getbaz and baz fall.
pub(super) fn step4_address_space(data: &Value) -> Picture {
    const FILE: &str = "step4-address-space.svg";
    const TITLE: &str = "libfoobar.so in the address space of foo and bar";
    let Some(raw) = data.get("programs").and_then(Value::as_array) else {
        return Picture::none(FILE, TITLE, "step 4 data has no `programs` list".into());
    };
    let mut programs = Vec::new();
    let mut problems = Vec::new();
    for p in raw {
        match step4_program(p) {
            Ok(p) => programs.push(p),
            Err(e) => problems.push(e),
        }
    }
    if programs.is_empty() {
        let why = if problems.is_empty() {
            "step 4 data lists no programs".to_string()
        } else {
            problems.join("; ")
        };
        return Picture::none(FILE, TITLE, why);
    }
    const ROW: i32 = 78;
    const TOP: i32 = 80;
    let col_w: i32 = 700;
    let box_w: i32 = 470;
    let rows = programs.iter().map(|p| p.segments.len()).max().unwrap_or(0) as i32;
    let outside: Vec<Vec<&(String, u64)>> = programs
        .iter()
        .map(|p| {
            p.symbols
                .iter()
                .filter(|(_, a)| !p.segments.iter().any(|s| s.start <= *a && *a < s.end))
                .collect()
        })
        .collect();
    let footer_lines = outside.iter().map(Vec::len).max().unwrap_or(0) as i32 + 2;
    let width = 20 + col_w * programs.len() as i32;
    let height = TOP + rows * ROW + footer_lines * 18 + 20;
    let c_client = data.get("c_client");
    let segments_drawn: usize = programs.iter().map(|p| p.segments.len()).sum();
    let svg = render((width as u32, height as u32), |root| {
        let title = (FONT, 20).into_font();
        let small = (FONT, 15).into_font();
        let bold = (FONT, 18).into_font();
        root.draw(&Text::new(
            "Step 4: libfoobar.so mapped into each program (low addresses at the top)",
            (20, 12),
            title,
        ))
        .map_err(err)?;
        for (k, p) in programs.iter().enumerate() {
            let x0 = 20 + col_w * k as i32;
            let base = p.segments.first().map(|s| s.start).unwrap_or(0);
            root.draw(&Text::new(
                format!("{} (pid {}): library base {base:#x}", p.name, p.pid),
                (x0, 48),
                bold.clone(),
            ))
            .map_err(err)?;
            for (i, s) in p.segments.iter().enumerate() {
                let y0 = TOP + ROW * i as i32;
                let y1 = y0 + ROW - 8;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + box_w, y1)],
                    perms_color(&s.perms, &s.path).filled(),
                ))
                .map_err(err)?;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + box_w, y1)],
                    RGBColor(90, 90, 90).stroke_width(1),
                ))
                .map_err(err)?;
                let what = if s.path.is_empty() {
                    "anonymous".to_string()
                } else {
                    format!("file offset {}", s.offset)
                };
                let lines = [
                    format!(
                        "{}  {:#x}-{:#x}  ({})",
                        s.perms,
                        s.start,
                        s.end,
                        bytes((s.end - s.start) as f64)
                    ),
                    format!("{what}  (+{:#x} from base)", s.start - base),
                    s.mmap
                        .clone()
                        .unwrap_or_else(|| "no traced mmap covers this start".into()),
                ];
                for (j, line) in lines.iter().enumerate() {
                    root.draw(&Text::new(
                        clip(line, 62),
                        (x0 + 6, y0 + 5 + 19 * j as i32),
                        small.clone(),
                    ))
                    .map_err(err)?;
                }
                // The symbols inside this range, at their relative position, kept apart.
                let mut inside: Vec<&(String, u64)> = p
                    .symbols
                    .iter()
                    .filter(|(_, a)| s.start <= *a && *a < s.end)
                    .collect();
                inside.sort_by_key(|(_, a)| *a);
                let mut last_y = i32::MIN;
                for (name, a) in inside {
                    let frac = (a - s.start) as f64 / (s.end - s.start) as f64;
                    let y_at = y0 + (frac * f64::from(y1 - y0)) as i32;
                    let y_label = y_at.max(last_y + 16);
                    last_y = y_label;
                    root.draw(&PathElement::new(
                        [(x0 + box_w - 30, y_at), (x0 + box_w + 14, y_label)],
                        MARK.stroke_width(2),
                    ))
                    .map_err(err)?;
                    root.draw(&Circle::new((x0 + box_w - 30, y_at), 4, MMAP.filled()))
                        .map_err(err)?;
                    root.draw(&Text::new(
                        format!("{name} {a:#x}"),
                        (x0 + box_w + 18, y_label - 7),
                        (FONT, 16).into_font(),
                    ))
                    .map_err(err)?;
                }
            }
            let mut y = TOP + rows * ROW + 8;
            for (name, a) in &outside[k] {
                root.draw(&Text::new(
                    format!("{name} at {a:#x} is outside libfoobar.so"),
                    (x0, y),
                    small.clone(),
                ))
                .map_err(err)?;
                y += 18;
            }
        }
        if let Some(c) = c_client {
            let a = c.get("baz_address").and_then(Value::as_str).unwrap_or("?");
            let inside = match c.get("inside_libfoobar").and_then(Value::as_bool) {
                Some(true) => "inside libfoobar.so",
                Some(false) => "outside libfoobar.so",
                None => "(not determined)",
            };
            let reloc = c.get("relocation").and_then(Value::as_str).unwrap_or("?");
            root.draw(&Text::new(
                format!("C client: baz at {a}, {inside} (relocation {reloc})"),
                (20, height - 24),
                (FONT, 16).into_font(),
            ))
            .map_err(err)?;
        }
        Ok(())
    });
    let mut caption = programs
        .iter()
        .map(|p| {
            let placed: Vec<String> = p
                .symbols
                .iter()
                .map(
                    |(n, a)| match p.segments.iter().find(|s| s.start <= *a && *a < s.end) {
                        Some(s) => format!("{n} in {}", s.perms),
                        None => format!("{n} outside the library"),
                    },
                )
                .collect();
            format!(
                "{}: {} ranges ({})",
                p.name,
                p.segments.len(),
                if placed.is_empty() {
                    "no symbol addresses".to_string()
                } else {
                    placed.join(", ")
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    caption.push_str(
        ". Orange: read+execute, blue: read-only, green: read+write, pale green: anonymous \
         continuation. Boxes have equal height; symbol dots sit at their relative position.",
    );
    caption.push_str(match data.get("shared_code_pfns").and_then(Value::as_bool) {
        Some(true) => {
            " Page frame numbers (pagemap) show foo's and bar's code pages of the library are the \
             same physical RAM."
        }
        Some(false) => {
            " Page frame numbers (pagemap) differ: in this run the code pages were NOT the same \
             physical RAM."
        }
        None => " Page frame numbers were not readable, so RAM sharing is not shown here.",
    });
    let values: Vec<String> = raw
        .iter()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let vals: Vec<String> = p
                .get("baz_values")?
                .as_array()?
                .iter()
                .take(8)
                .map(|v| v.to_string())
                .collect();
            (!vals.is_empty()).then(|| format!("{name} {}", vals.join(", ")))
        })
        .collect();
    if !values.is_empty() {
        caption.push_str(&format!(
            " baz as each program observed it: {}.",
            values.join("; ")
        ));
    }
    if !problems.is_empty() {
        caption.push_str(&format!(" Not drawn: {}.", problems.join("; ")));
    }
    Picture {
        file: FILE.into(),
        title: TITLE.into(),
        caption,
        svg,
        // Two rectangles (fill and outline) per range, plus the background.
        marks: ("rect", 2 * segments_drawn + 1),
    }
}
