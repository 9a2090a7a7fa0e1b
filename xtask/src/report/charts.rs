//! The report's pictures, drawn as SVG with `plotters` from a step's `data` (the shapes are
//! documented in each step's module). A missing or odd field gives "no picture" with the reason,
//! never a panic.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// One picture: the SVG, or why there is none.
pub struct Picture {
    /// The file name the Markdown twin links (`step1-chunks.svg`).
    pub file: String,
    pub title: String,
    /// What the picture shows, with counts computed from the data.
    pub caption: String,
    /// The SVG document, or the reason there is no picture.
    pub svg: Result<String, String>,
    /// The browser check: CSS selector of the data marks and how many must be drawn.
    pub marks: (&'static str, usize),
}

impl Picture {
    fn none(file: &str, title: &str, reason: String) -> Picture {
        Picture {
            file: file.into(),
            title: title.into(),
            caption: String::new(),
            svg: Err(reason),
            marks: ("*", 0),
        }
    }
}

/// The pictures of one step (empty for a step that has none).
pub fn pictures(step: u8, data: &Value) -> Vec<Picture> {
    match step {
        1 => vec![step1_chunks(data)],
        2 => vec![step2_pages(data)],
        4 => vec![step4_address_space(data)],
        5 => vec![
            step5_chart(data, Step5::LostShare),
            step5_chart(data, Step5::Rate),
        ],
        _ => Vec::new(),
    }
}

const HEAP: RGBColor = RGBColor(31, 119, 180);
const MMAP: RGBColor = RGBColor(214, 39, 40);
const MMAP_LEN: RGBColor = RGBColor(255, 127, 14);
const MARK: RGBColor = RGBColor(40, 40, 40);
const OTHER_MODES: [RGBColor; 3] = [
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
const FONT: &str = "sans-serif";

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing failed: {e}")
}

/// A number, or a "0x…" hex string, or a decimal string.
pub fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16).ok().map(|v| v as f64),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

/// An address: a "0x…" hex string or a number.
pub fn addr(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let s = s.trim();
            let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
            u64::from_str_radix(hex, 16).ok()
        }
        _ => None,
    }
}

/// Bytes for an axis label: 4 KiB, 128 KiB, 1.5 MiB.
pub fn bytes(v: f64) -> String {
    if v >= 1024.0 * 1024.0 {
        let m = v / (1024.0 * 1024.0);
        if (m - m.round()).abs() < 0.05 {
            format!("{m:.0} MiB")
        } else {
            format!("{m:.1} MiB")
        }
    } else if v >= 1024.0 {
        let k = v / 1024.0;
        if (k - k.round()).abs() < 0.05 {
            format!("{k:.0} KiB")
        } else {
            format!("{k:.1} KiB")
        }
    } else {
        format!("{v:.0} B")
    }
}

fn render(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<String, String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

// ---------------------------------------------------------------------------------------------
// Step 1

struct ChunkRow {
    request: f64,
    chunk: f64,
    mmap: bool,
    mmap_len: Option<f64>,
}

/// Step 1: request size (x) against chunk size and mmap length (y), both log scale; heap chunks
/// and mmapped chunks coloured, the threshold marked.
fn step1_chunks(data: &Value) -> Picture {
    const FILE: &str = "step1-chunks.svg";
    const TITLE: &str = "Request size against chunk size and mmap length";
    let Some(raw) = data.get("rows").and_then(Value::as_array) else {
        return Picture::none(FILE, TITLE, "step 1 data has no `rows` list".into());
    };
    let mut skipped = 0;
    let rows: Vec<ChunkRow> = raw
        .iter()
        .filter_map(|r| {
            let row = (|| {
                let request = num(r.get("request")?)?;
                let chunk = num(r.get("chunk_size")?)?;
                let mmap = match r.get("region")?.as_str()? {
                    "heap" => false,
                    "mmap" => true,
                    _ => return None,
                };
                let mmap_len = r.get("mmap_len").and_then(num).filter(|v| *v > 0.0);
                (request > 0.0 && chunk > 0.0).then_some(ChunkRow {
                    request,
                    chunk,
                    mmap,
                    mmap_len,
                })
            })();
            if row.is_none() {
                skipped += 1;
            }
            row
        })
        .collect();
    if rows.is_empty() {
        return Picture::none(
            FILE,
            TITLE,
            format!(
                "step 1 data has no usable rows ({} rows, none with request, chunk_size and region \
                 heap/mmap)",
                raw.len()
            ),
        );
    }
    let threshold = data.get("threshold_request").and_then(num);
    let threshold_chunk = data.get("threshold_chunk_size").and_then(num);
    let heap = rows.iter().filter(|r| !r.mmap).count();
    let mapped = rows.len() - heap;
    let lens = rows.iter().filter(|r| r.mmap_len.is_some()).count();

    let xs = rows.iter().map(|r| r.request).chain(threshold);
    let ys = rows
        .iter()
        .flat_map(|r| [Some(r.chunk), r.mmap_len, Some(r.request)])
        .flatten();
    let (xmin, xmax) = bounds(xs);
    let (ymin, ymax) = bounds(ys);
    let svg = render((900, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Step 1: malloc request vs chunk size and mmap length",
                (FONT, 20),
            )
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(
                (xmin / 1.6..xmax * 1.6).log_scale().base(4.0),
                (ymin / 1.6..ymax * 1.6).log_scale().base(4.0),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("request passed to malloc (bytes, log scale)")
            .y_desc("bytes (log scale)")
            .x_label_formatter(&|v| bytes(*v))
            .y_label_formatter(&|v| bytes(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(xmin, xmin), (xmax, xmax)],
                RGBColor(160, 160, 160),
            ))
            .map_err(err)?
            .label("size = request")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RGBColor(160, 160, 160)));
        chart
            .draw_series(rows.iter().filter_map(|r| {
                r.mmap_len
                    .map(|l| TriangleMarker::new((r.request, l), 9, MMAP_LEN.stroke_width(2)))
            }))
            .map_err(err)?
            .label(format!("length passed to mmap ({lens})"))
            .legend(|(x, y)| TriangleMarker::new((x + 8, y), 7, MMAP_LEN.stroke_width(2)));
        chart
            .draw_series(
                rows.iter()
                    .filter(|r| !r.mmap)
                    .map(|r| Circle::new((r.request, r.chunk), 4, HEAP.filled())),
            )
            .map_err(err)?
            .label(format!("chunk size, heap chunk ({heap})"))
            .legend(|(x, y)| Circle::new((x + 8, y), 4, HEAP.filled()));
        chart
            .draw_series(
                rows.iter()
                    .filter(|r| r.mmap)
                    .map(|r| Circle::new((r.request, r.chunk), 4, MMAP.filled())),
            )
            .map_err(err)?
            .label(format!("chunk size, mmapped chunk ({mapped})"))
            .legend(|(x, y)| Circle::new((x + 8, y), 4, MMAP.filled()));
        if let Some(t) = threshold {
            chart
                .draw_series(LineSeries::new(
                    [(t, ymin / 1.5), (t, ymax * 1.5)],
                    MARK.stroke_width(2),
                ))
                .map_err(err)?;
            let label = match threshold_chunk {
                Some(c) => format!("threshold: request {t:.0} B (chunk {c:.0} B)"),
                None => format!("threshold: request {t:.0} B"),
            };
            // Right of the line in the left half of the picture, left of it otherwise.
            let right_half =
                t.ln() - (xmin / 1.6).ln() > ((xmax * 1.6).ln() - (xmin / 1.6).ln()) / 2.0;
            let (x, anchor) = if right_half {
                (t / 1.05, HPos::Right)
            } else {
                (t * 1.05, HPos::Left)
            };
            chart
                .draw_series([Text::new(
                    label,
                    (x, ymin * 1.1),
                    (FONT, 17)
                        .into_font()
                        .color(&MARK)
                        .pos(Pos::new(anchor, VPos::Bottom)),
                )])
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FONT, 15))
            .draw()
            .map_err(err)?;
        Ok(())
    });
    let mut caption = format!(
        "{} allocations: {heap} from the heap (blue), {mapped} mmapped (red); {lens} with the \
         length malloc passed to mmap (orange triangles, around the red dot when the chunk size \
         equals it), paired from the strace.",
        rows.len()
    );
    match threshold {
        Some(t) => caption.push_str(&format!(
            " The black line marks this run's threshold: a request of {t:.0} bytes{}.",
            threshold_chunk
                .map(|c| format!(" (chunk size {c:.0})"))
                .unwrap_or_default()
        )),
        None => caption.push_str(" This run's data gives no threshold, so none is marked."),
    }
    if skipped > 0 {
        caption.push_str(&format!(
            " {skipped} rows lacked a field and are not drawn."
        ));
    }
    Picture {
        file: FILE.into(),
        title: TITLE.into(),
        caption,
        svg,
        marks: ("circle", rows.len()),
    }
}

/// The smallest and largest of positive values (1, 2 if there are none).
fn bounds(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = vals
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (1.0, 2.0)
    } else if lo == hi {
        (lo / 2.0, hi * 2.0)
    } else {
        (lo, hi)
    }
}

// ---------------------------------------------------------------------------------------------
// Step 2

/// Step 2: pages of the table file, and how many were resident before and after the lookups.
fn step2_pages(data: &Value) -> Picture {
    const FILE: &str = "step2-pages.svg";
    const TITLE: &str = "Pages of the table resident in RAM, before and after the lookups";
    let field = |k: &str| data.get(k).and_then(num).filter(|v| *v >= 0.0);
    let (Some(total), Some(before), Some(after)) = (
        field("pages_total"),
        field("pages_resident_before"),
        field("pages_resident_after"),
    ) else {
        return Picture::none(
            FILE,
            TITLE,
            "step 2 data lacks pages_total, pages_resident_before or pages_resident_after".into(),
        );
    };
    if total <= 0.0 {
        return Picture::none(FILE, TITLE, "step 2 data says the table has 0 pages".into());
    }
    let lookups = field("lookups");
    let pct = |v: f64| 100.0 * v / total;
    let bars = [
        (
            format!("pages in the file: {total:.0}"),
            total,
            RGBColor(150, 150, 150),
        ),
        (
            format!(
                "resident before the lookups: {before:.0} ({:.1}%)",
                pct(before)
            ),
            before,
            HEAP,
        ),
        (
            format!(
                "resident after {}: {after:.0} ({:.1}%)",
                lookups
                    .map(|l| format!("{l:.0} lookups"))
                    .unwrap_or_else(|| "the lookups".into()),
                pct(after)
            ),
            after,
            MMAP_LEN,
        ),
    ];
    let drawn = bars.iter().filter(|b| b.1 > 0.0).count();
    let xmax = bars.iter().map(|b| b.1).fold(total, f64::max) * 1.02;
    let svg = render((900, 300), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Step 2: page-cache residency of the mapped table",
                (FONT, 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(10)
            .build_cartesian_2d(0.0..xmax, 0.0..3.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("pages (4 KiB)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(RGBColor(235, 235, 235))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(err)?;
        // Top to bottom: total, before, after.
        for (i, (label, v, color)) in bars.iter().enumerate() {
            let y = 2.0 - i as f64;
            chart
                .draw_series([Rectangle::new(
                    [(0.0, y + 0.12), (*v, y + 0.55)],
                    color.filled(),
                )])
                .map_err(err)?;
            chart
                .draw_series([Text::new(
                    label.clone(),
                    (xmax * 0.005, y + 0.93),
                    (FONT, 14),
                )])
                .map_err(err)?;
        }
        Ok(())
    });
    let caption = format!(
        "Of {total:.0} pages, {before:.0} were resident before the lookups and {after:.0} after \
         ({:.1}% of the file): only the pages the lookups touched were read in.{}",
        pct(after),
        match data.get("eviction").and_then(Value::as_str) {
            Some("fadvise") => " The file was dropped from the page cache first (fadvise).",
            Some("none") => " The file could not be dropped from the page cache first.",
            _ => "",
        }
    );
    Picture {
        file: FILE.into(),
        title: TITLE.into(),
        caption,
        svg,
        // The background and one rectangle per non-empty bar.
        marks: ("rect", drawn + 1),
    }
}

// ---------------------------------------------------------------------------------------------
// Step 4

struct Segment {
    start: u64,
    end: u64,
    perms: String,
    offset: String,
    path: String,
    /// The flags of the mmap call that produced this range, if the trace has one.
    mmap: Option<String>,
}

struct Program {
    name: String,
    pid: String,
    segments: Vec<Segment>,
    symbols: Vec<(String, u64)>,
}

fn step4_program(p: &Value) -> Result<Program, String> {
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
fn step4_address_space(data: &Value) -> Picture {
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

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

// ---------------------------------------------------------------------------------------------
// Step 5

#[derive(Clone, Copy, PartialEq)]
enum Step5 {
    LostShare,
    Rate,
}

/// Step 5: lost share (or increments per second) against participants, one line per mode.
fn step5_chart(data: &Value, which: Step5) -> Picture {
    let (file, title, key, desc) = match which {
        Step5::LostShare => (
            "step5-lost-updates.svg",
            "Lost updates against the number of participants",
            "lost_share",
            "lost updates (% of total)",
        ),
        Step5::Rate => (
            "step5-throughput.svg",
            "Increments per second against the number of participants",
            "increments_per_second",
            "increments of total per second (millions)",
        ),
    };
    let Some(raw) = data.get("rows").and_then(Value::as_array) else {
        return Picture::none(file, title, "step 5 data has no `rows` list".into());
    };
    // mode -> [(participants, value)]
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in raw {
        let (Some(n), Some(v), Some(mode)) = (
            r.get("participants").and_then(num),
            r.get(key).and_then(num),
            r.get("mode").and_then(Value::as_str),
        ) else {
            continue;
        };
        let v = match which {
            Step5::LostShare => v * 100.0,
            Step5::Rate => v / 1e6,
        };
        if !v.is_finite() {
            continue;
        }
        match series.iter_mut().find(|(m, _)| m == mode) {
            Some((_, pts)) => pts.push((n, v)),
            None => series.push((mode.to_string(), vec![(n, v)])),
        }
    }
    for (_, pts) in &mut series {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let points: usize = series.iter().map(|(_, p)| p.len()).sum();
    if points == 0 {
        return Picture::none(
            file,
            title,
            format!("step 5 rows have no participants/{key}/mode values"),
        );
    }
    let nmax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(1.0, f64::max);
    let vmax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0, f64::max);
    let ytop = if vmax > 0.0 { vmax * 1.15 } else { 1.0 };
    let svg = render((560, 400), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Step 5: {}", title.to_lowercase()), (FONT, 17))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5..nmax + 0.5, 0.0..ytop)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("participants (processes)")
            .y_desc(desc)
            .x_labels(nmax as usize + 2)
            .x_label_formatter(&|v| {
                if (v - v.round()).abs() < 1e-6 {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .light_line_style(RGBColor(235, 235, 235))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(err)?;
        // Earlier series drawn wider, so that lines lying on top of each other stay visible.
        let n = series.len();
        for (i, (mode, pts)) in series.iter().enumerate() {
            let wider = 2 * (n - 1 - i) as u32;
            let color = match mode.as_str() {
                "racy" => MMAP,
                "atomic" => HEAP,
                _ => OTHER_MODES[i % OTHER_MODES.len()],
            };
            chart
                .draw_series(LineSeries::new(
                    pts.iter().copied(),
                    color.stroke_width(2 + wider),
                ))
                .map_err(err)?
                .label(mode.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    pts.iter()
                        .map(|p| Circle::new(*p, 4 + wider, color.filled())),
                )
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(match which {
                Step5::LostShare => SeriesLabelPosition::UpperLeft,
                Step5::Rate => SeriesLabelPosition::UpperRight,
            })
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FONT, 15))
            .draw()
            .map_err(err)?;
        Ok(())
    });
    let caption = series
        .iter()
        .map(|(mode, pts)| {
            let vals: Vec<String> = pts
                .iter()
                .map(|(n, v)| match which {
                    Step5::LostShare => format!("{n:.0}: {v:.1}%"),
                    Step5::Rate => format!("{n:.0}: {v:.1} M/s"),
                })
                .collect();
            format!("{mode} — {}", vals.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    Picture {
        file: file.into(),
        title: title.into(),
        caption: format!("Measured ({}): {caption}.", desc),
        svg,
        // One dot per measurement.
        marks: ("circle", points),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn step1_data() -> Value {
        let mut rows = Vec::new();
        for request in [
            24u64,
            1000,
            65_536,
            131_000,
            131_048,
            131_049,
            200_000,
            1 << 20,
        ] {
            let mmap = request >= 131_049;
            let chunk = if mmap {
                (request + 16 + 4095) & !4095
            } else {
                (request + 8 + 15) & !15
            };
            rows.push(json!({
                "request": request,
                "chunk_size": chunk,
                "region": if mmap { "mmap" } else { "heap" },
                "mmap_len": if mmap { json!(chunk) } else { Value::Null },
                "address": "0x55d4c0a012a0",
            }));
        }
        json!({
            "rows": rows,
            "threshold_request": 131_049,
            "threshold_chunk_size": 131_072,
            "prev_inuse_bit": 0,
            "is_mmapped_bit": 1,
        })
    }

    pub(crate) fn step2_data() -> Value {
        json!({"entries": 100000, "file_bytes": 10_002_432, "pages_total": 2442,
               "pages_resident_before": 0, "pages_resident_after": 37, "lookups": 1000,
               "mmap_calls": 1, "read_calls_on_table_fd": 0, "minor_faults": 40,
               "major_faults": 37, "eviction": "fadvise"})
    }

    pub(crate) fn step4_data() -> Value {
        let program = |name: &str, base: u64| {
            let line = |s: u64, e: u64, perms: &str, off: &str, path: &str| {
                json!({"start": format!("{:#x}", base + s), "end": format!("{:#x}", base + e),
                       "perms": perms, "offset": off, "path": path})
            };
            let lib = "/work/target/release/deps/libfoobar.so";
            json!({
                "name": name, "pid": 4242,
                "maps": [
                    line(0x0, 0x5000, "r--p", "0x0", lib),
                    line(0x5000, 0x40000, "r-xp", "0x5000", lib),
                    line(0x40000, 0x4b000, "r--p", "0x40000", lib),
                    line(0x4b000, 0x4e000, "r--p", "0x4a000", lib),
                    line(0x4e000, 0x4f000, "rw-p", "0x4d000", lib),
                    line(0x4f000, 0x50000, "rw-p", "0x0", ""),
                    line(0x90000, 0x91000, "rw-p", "0x0", ""),
                    json!({"start": "0x5600000", "end": "0x5601000", "perms": "r--p",
                           "offset": "0x0", "path": "/usr/bin/foo"}),
                ],
                "symbols": [
                    {"name": "setbaz", "address": format!("{:#x}", base + 0x6010)},
                    {"name": "getbaz", "address": format!("{:#x}", base + 0x6020)},
                    {"name": "baz", "address": format!("{:#x}", base + 0x4f010)},
                ],
                "mmaps": [
                    {"raw": "mmap(NULL, 331776, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3, 0) = 0x..",
                     "addr": "NULL", "len": 0x50000, "prot": "PROT_READ",
                     "flags": "MAP_PRIVATE|MAP_DENYWRITE", "fd": 3, "offset": "0x0",
                     "result": format!("{:#x}", base)},
                    {"raw": "mmap(...)", "addr": format!("{:#x}", base + 0x5000), "len": 0x3b000,
                     "prot": "PROT_READ|PROT_EXEC", "flags": "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE",
                     "fd": 3, "offset": "0x5000", "result": format!("{:#x}", base + 0x5000)},
                ],
                "baz_values": [17, 17],
            })
        };
        json!({
            "programs": [program("foo", 0x7f10_0000_0000), program("bar", 0x7f20_0000_0000)],
            "shared_code_pfns": true,
            "c_client": {"baz_address": "0x55550000a010", "inside_libfoobar": false,
                         "relocation": "R_X86_64_COPY"},
        })
    }

    pub(crate) fn step5_data() -> Value {
        let mut rows = Vec::new();
        for n in 1..=4u64 {
            rows.push(
                json!({"participants": n, "mode": "racy", "total": 1_000_000,
                "sum_of_winnings": 1_000_000 - (n - 1) * 100_000,
                "lost_updates": (n - 1) * 100_000, "lost_share": (n - 1) as f64 * 0.1,
                "seconds": 0.1, "increments_per_second": 1e7 / n as f64}),
            );
            rows.push(
                json!({"participants": n, "mode": "atomic", "total": 1_000_000,
                "sum_of_winnings": 1_000_000, "lost_updates": 0, "lost_share": 0.0,
                "seconds": 0.2, "increments_per_second": 5e6 / n as f64}),
            );
        }
        json!({"cores": 2, "target": 1_000_000, "rows": rows})
    }

    fn count(svg: &str, tag: &str) -> usize {
        svg.matches(&format!("<{tag}")).count()
    }

    #[test]
    fn step1_draws_one_dot_per_row_and_marks_the_threshold() {
        let pics = pictures(1, &step1_data());
        assert_eq!(pics.len(), 1);
        let p = &pics[0];
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.starts_with("<svg"));
        // 8 rows plus 3 legend dots (heap, mmap; the triangle legend is a polygon).
        assert_eq!(count(svg, "circle"), 8 + 2);
        // 3 mmapped rows with a length, plus the legend's triangle.
        assert_eq!(count(svg, "polygon"), 3 + 1);
        assert!(svg.contains("threshold: request 131049 B (chunk 131072 B)"));
        assert!(p.caption.contains("5 from the heap"));
        assert!(p.caption.contains("3 mmapped"));
        assert_eq!(p.marks, ("circle", 8));
    }

    #[test]
    fn step1_without_threshold_says_so_and_odd_rows_are_skipped() {
        let mut d = step1_data();
        d.as_object_mut().unwrap().remove("threshold_request");
        d["rows"]
            .as_array_mut()
            .unwrap()
            .push(json!({"request": "lots", "region": "heap"}));
        let p = &pictures(1, &d)[0];
        let svg = p.svg.as_ref().unwrap();
        assert!(!svg.contains("threshold"));
        assert!(p.caption.contains("gives no threshold"));
        assert!(p.caption.contains("1 rows lacked a field"));
    }

    #[test]
    fn odd_data_gives_no_picture_with_a_reason() {
        for (step, data, why) in [
            (1, json!({}), "no `rows`"),
            (1, json!({"rows": [{"request": 1}]}), "no usable rows"),
            (2, json!({"pages_total": 10}), "lacks pages_total"),
            (
                2,
                json!({"pages_total": 0, "pages_resident_before": 0,
                       "pages_resident_after": 0}),
                "0 pages",
            ),
            (4, json!({"programs": []}), "lists no programs"),
            (
                4,
                json!({"programs": [{"name": "foo", "maps": []}]}),
                "foo's maps have no libfoobar",
            ),
            (
                4,
                json!({"programs": [{"name": "foo"}]}),
                "foo has no `maps`",
            ),
            (
                5,
                json!({"rows": [{"participants": 2}]}),
                "no participants/lost_share/mode",
            ),
            (5, json!(null), "no `rows`"),
        ] {
            let pics = pictures(step, &data);
            let reason = pics[0]
                .svg
                .as_ref()
                .err()
                .unwrap_or_else(|| panic!("step {step} drew a picture from {data}"));
            assert!(
                reason.contains(why),
                "step {step}: {reason:?} lacks {why:?}"
            );
        }
        assert!(pictures(3, &json!({})).is_empty());
    }

    #[test]
    fn step2_bars_and_caption_come_from_the_numbers() {
        let p = &pictures(2, &step2_data())[0];
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.contains("resident after 1000 lookups: 37 (1.5%)"));
        assert!(p.caption.contains("Of 2442 pages, 0 were resident"));
        // Total and "after" are drawn; "before" is 0 pages.
        assert_eq!(p.marks, ("rect", 3));
        assert!(count(svg, "rect") >= 3);
    }

    #[test]
    fn step4_places_symbols_in_their_segments() {
        let p = &pictures(4, &step4_data())[0];
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.contains("foo (pid 4242): library base 0x7f1000000000"));
        assert!(svg.contains("bar (pid 4242): library base 0x7f2000000000"));
        assert!(svg.contains("setbaz 0x7f1000006010"));
        assert!(svg.contains("baz 0x7f200004f010"));
        assert!(svg.contains("mmap READ|EXEC, PRIVATE|FIXED|DENYWRITE, fd 3"));
        assert!(svg.contains("C client: baz at 0x55550000a010, outside libfoobar.so"));
        // 6 ranges each (5 of the library, 1 anonymous continuation; the far one is left out).
        assert_eq!(p.marks, ("rect", 25));
        assert!(p
            .caption
            .contains("foo: 6 ranges (setbaz in r-xp, getbaz in r-xp, baz in rw-p)"));
        assert_eq!(count(svg, "circle"), 6);
        assert!(p.caption.contains("are the same physical RAM"));
        assert!(p
            .caption
            .contains("baz as each program observed it: foo 17, 17; bar 17, 17."));
    }

    #[test]
    fn step4_symbol_outside_the_library_is_listed() {
        let mut d = step4_data();
        d["programs"][0]["symbols"][2]["address"] = json!("0x55550000a010");
        let p = &pictures(4, &d)[0];
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.contains("baz at 0x55550000a010 is outside libfoobar.so"));
        assert!(p.caption.contains("baz outside the library"));
    }

    #[test]
    fn step5_one_line_per_mode() {
        let pics = pictures(5, &step5_data());
        assert_eq!(pics.len(), 2);
        let lost = pics[0].svg.as_ref().unwrap();
        assert!(lost.contains("\nracy\n") && lost.contains("\natomic\n"));
        assert_eq!(pics[0].marks, ("circle", 8));
        assert!(pics[0]
            .caption
            .contains("racy — 1: 0.0%, 2: 10.0%, 3: 20.0%, 4: 30.0%"));
        assert!(pics[1].caption.contains("atomic — 1: 5.0 M/s"));
        // Two lines (one per mode) plus the two legend strokes.
        assert!(count(lost, "polyline") >= 4);
    }

    #[test]
    fn numbers_and_addresses_parse() {
        assert_eq!(num(&json!("0x10")), Some(16.0));
        assert_eq!(num(&json!("12.5")), Some(12.5));
        assert_eq!(num(&json!(null)), None);
        assert_eq!(addr(&json!("0x7fff0000")), Some(0x7fff_0000));
        assert_eq!(addr(&json!("7fff")), None);
        assert_eq!(bytes(131072.0), "128 KiB");
        assert_eq!(bytes(1.5 * 1024.0 * 1024.0), "1.5 MiB");
        assert_eq!(bytes(24.0), "24 B");
    }
}
