//! Step 4's picture: the library's pages in foo and in bar beside the physical frames they map
//! (pagemap), one row per mapping of the library: the code rows meet in shared frames, the row
//! holding baz splits into two private frames. Drawn from `Step4Picture`, built by
//! `lab_analysis::step4::picture` from the step's findings.

// foo, bar and baz are the assignment's names, not placeholders.
#![allow(clippy::disallowed_names)]

use plotters::prelude::*;

use super::{bytes, err, render, text_width, Legend, Picture, Swatch, FONT, MARK, MMAP};
use lab_analysis::step4::picture::{Program, Row, Step4Picture};

const FILE: &str = "step4-frames.svg";
const TITLE: &str = "The library's pages in foo and bar, and the physical frames they map";
/// Every text's size as asked of plotters, which draws it at [`DRAWN`] times that: 12 px at
/// the picture's natural width, above the 11 px a reader needs.
const TEXT: f64 = 15.0;
/// How plotters scales a font size into the SVG's `font-size` (15 → 12.1).
const DRAWN: f64 = 0.81;
const LINE: i32 = 20;
const TOP: i32 = 92;
const GAP: i32 = 90;
const SHARED: RGBColor = RGBColor(255, 204, 140);
const PRIVATE: RGBColor = RGBColor(170, 220, 170);
const ALONE: RGBColor = RGBColor(225, 225, 225);
const CODE: RGBColor = RGBColor(255, 224, 180);
const DATA: RGBColor = RGBColor(200, 235, 200);
const READ_ONLY: RGBColor = RGBColor(205, 222, 245);

fn perms_color(perms: &str) -> RGBColor {
    if perms.starts_with("r-x") {
        CODE
    } else if perms.starts_with("rw") {
        DATA
    } else if perms.starts_with("r--") {
        READ_ONLY
    } else {
        RGBColor(235, 235, 235)
    }
}

fn frames_text(v: &[u64]) -> String {
    match v {
        [] => String::new(),
        [one] => format!("{one:#x}"),
        [a, .., b] => format!("{a:#x} … {b:#x}"),
    }
}

/// One box of the frames column: a colour, a label, which programs point at it.
struct FrameBox {
    color: RGBColor,
    label: String,
    from: Vec<usize>,
    baz: bool,
}

fn frame_boxes(p: &Step4Picture, r: &Row) -> Vec<FrameBox> {
    let mut boxes = Vec::new();
    if !r.same.is_empty() {
        boxes.push(FrameBox {
            color: SHARED,
            label: format!("{} shared frame(s) {}", r.same.len(), frames_text(&r.same)),
            from: (0..p.programs.len()).collect(),
            baz: false,
        });
    }
    for (k, own) in r.own.iter().enumerate().filter(|(_, o)| !o.is_empty()) {
        let baz = r.holds_baz
            && p.baz_frames
                .get(k)
                .copied()
                .flatten()
                .is_some_and(|f| own.contains(&f));
        boxes.push(FrameBox {
            color: PRIVATE,
            label: format!(
                "{}: {} private frame(s) {}{}",
                p.programs[k].name,
                own.len(),
                frames_text(own),
                if baz { " (baz)" } else { "" }
            ),
            from: vec![k],
            baz,
        });
    }
    for (k, n) in r.alone.iter().enumerate().filter(|(_, n)| **n > 0) {
        boxes.push(FrameBox {
            color: ALONE,
            label: format!("{}: {n} frame(s) only it maps", p.programs[k].name),
            from: vec![k],
            baz: false,
        });
    }
    boxes
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// One program's lines for one mapping: its addresses, the mmap that made it, its pages, then
/// its symbols two to a line (never cut).
fn pages_lines(r: &Row, prog: &Program, k: usize) -> Vec<String> {
    let mut lines = vec![
        format!(
            "{} {:#x}-{:#x} (+{:#x}, {})",
            r.perms,
            prog.base + r.start,
            prog.base + r.end,
            r.start,
            bytes((r.end - r.start) as f64)
        ),
        r.mmap
            .clone()
            .unwrap_or_else(|| "anonymous, or no traced mmap".into()),
        format!("{} pages, {} not resident", r.pages, r.not_resident[k]),
    ];
    let symbols: Vec<String> = r
        .symbols
        .iter()
        .map(|(n, a)| format!("{n} {:#x}", prog.base + a))
        .collect();
    for pair in symbols.chunks(2) {
        lines.push(pair.join(", "));
    }
    lines
}

/// Where everything goes, sized from the conservative width of the texts it must hold.
struct Layout {
    box_w: i32,
    mid_x: i32,
    mid_w: i32,
    right_x: i32,
    /// Per row: its top and height.
    rows: Vec<(i32, i32)>,
    width: i32,
}

impl Layout {
    fn xs(&self) -> [i32; 2] {
        [20, self.right_x]
    }
}

/// The width of a text plotters draws at `px` (asked), conservatively.
fn width_of(s: &str, px: f64) -> i32 {
    text_width(s, px * DRAWN).ceil() as i32
}

fn layout(p: &Step4Picture, boxes: &[Vec<FrameBox>], footer: &[String]) -> Layout {
    let mut box_w = 0;
    let mut rows = Vec::new();
    let mut y = TOP;
    for (i, r) in p.rows.iter().enumerate() {
        let mut lines = 0;
        for (k, prog) in p.programs.iter().enumerate() {
            let l = pages_lines(r, prog, k);
            lines = lines.max(l.len() as i32);
            box_w = l.iter().map(|s| width_of(s, TEXT)).fold(box_w, i32::max);
        }
        let frames = boxes[i].len().max(1) as i32;
        let h = (10 + LINE * lines).max(frames * (LINE + 8) + 4);
        rows.push((y, h));
        y += h + 10;
    }
    for prog in &p.programs {
        box_w = box_w.max(width_of(&header_label(prog), 17.0));
    }
    let box_w = box_w + 14;
    let mid_w = boxes
        .iter()
        .flatten()
        .map(|b| width_of(&b.label, TEXT))
        .fold(
            width_of("physical frames: hidden (not root)", 17.0),
            i32::max,
        )
        + 14;
    let mid_x = 20 + box_w + GAP;
    let right_x = mid_x + mid_w + GAP;
    let footer_w = footer
        .iter()
        .map(|l| width_of(l, TEXT) + 40)
        .chain([width_of(&p.programs[0].library, TEXT) + 40])
        .fold(0, i32::max);
    Layout {
        box_w,
        mid_x,
        mid_w,
        right_x,
        rows,
        width: (right_x + box_w + 20).max(footer_w),
    }
}

fn header_label(prog: &Program) -> String {
    format!(
        "{} (pid {}): loaded at {:#x}",
        prog.name, prog.pid, prog.base
    )
}

pub fn draw(p: &Step4Picture) -> Picture {
    if p.programs.len() != 2 || p.rows.is_empty() {
        return Picture::none(
            FILE,
            TITLE,
            format!(
                "step 4 found {} program(s) and {} mapping(s) of the library to draw",
                p.programs.len(),
                p.rows.len()
            ),
        );
    }
    let boxes: Vec<Vec<FrameBox>> = p.rows.iter().map(|r| frame_boxes(p, r)).collect();
    // The background, then per row a filled and an outlined box per program and per frame box.
    let rects = 1 + boxes
        .iter()
        .map(|b| 2 * p.programs.len() + 2 * b.len())
        .sum::<usize>();
    let footer = footer(p);
    let lay = layout(p, &boxes, &footer);
    let legend = legend(p);
    let body_end = lay.rows.last().map_or(TOP, |(y, h)| y + h);
    let legend_y = body_end + 12 + LINE * footer.len() as i32 + 10;
    let size = (
        lay.width as u32,
        (legend_y as f64 + legend.size().1 + 16.0) as u32,
    );
    let svg = render(size, |root| {
        header(root, p, &lay)?;
        for (i, (r, bx)) in p.rows.iter().zip(&boxes).enumerate() {
            let (y0, h) = lay.rows[i];
            for (k, prog) in p.programs.iter().enumerate() {
                pages_box(root, r, prog, k, (y0, h), &lay)?;
            }
            frames_column(root, bx, (y0, h), &lay)?;
        }
        let small = (FONT, TEXT as u32).into_font();
        for (j, line) in footer.iter().enumerate() {
            let y = body_end + 12 + LINE * j as i32;
            root.draw(&Text::new(line.clone(), (20, y), small.clone()))
                .map_err(err)?;
        }
        Ok(legend.svg((20.0, f64::from(legend_y))))
    });
    Picture {
        file: FILE.into(),
        title: TITLE.into(),
        caption: caption(p),
        svg,
        marks: ("rect", rects),
    }
}

fn legend(p: &Step4Picture) -> Legend {
    let mut l = Legend::new(13.0)
        .add(Swatch::Fill(CODE), "code pages (r-x)")
        .add(Swatch::Fill(READ_ONLY), "read-only pages (r--)")
        .add(Swatch::Fill(DATA), "writable pages (rw-)")
        .add(Swatch::Fill(SHARED), "frame both programs map")
        .add(
            Swatch::Fill(PRIVATE),
            "a program's own frame (a written page)",
        );
    if p.rows.iter().any(|r| r.alone.iter().any(|n| *n > 0)) {
        l = l.add(Swatch::Fill(ALONE), "frame only one program has resident");
    }
    if p.baz_private.is_some() {
        l = l.add(Swatch::Outline(MMAP), "the frame holding baz");
    }
    l
}

fn header(root: &Area<'_>, p: &Step4Picture, lay: &Layout) -> Result<(), String> {
    let bold = (FONT, 17).into_font();
    root.draw(&Text::new(
        "Step 4: the library's pages (left: foo, right: bar) and the RAM frames they map \
         (middle)",
        (20, 12),
        (FONT, 20).into_font(),
    ))
    .map_err(err)?;
    for (x, prog) in lay.xs().iter().zip(&p.programs) {
        root.draw(&Text::new(header_label(prog), (*x, 44), bold.clone()))
            .map_err(err)?;
    }
    let middle = if p.frames_readable {
        "physical frames (pagemap PFNs)"
    } else {
        "physical frames: hidden (not root)"
    };
    root.draw(&Text::new(middle, (lay.mid_x, 44), bold))
        .map_err(err)?;
    root.draw(&Text::new(
        p.programs[0].library.clone(),
        (20, 66),
        (FONT, TEXT as u32).into_font(),
    ))
    .map_err(err)?;
    Ok(())
}

/// One program's box for one mapping: its addresses, the mmap that made it, its symbols.
fn pages_box(
    root: &Area<'_>,
    r: &Row,
    prog: &Program,
    k: usize,
    (y0, h): (i32, i32),
    lay: &Layout,
) -> Result<(), String> {
    let x0 = lay.xs()[k];
    let corners = [(x0, y0), (x0 + lay.box_w, y0 + h)];
    root.draw(&Rectangle::new(corners, perms_color(&r.perms).filled()))
        .map_err(err)?;
    root.draw(&Rectangle::new(
        corners,
        RGBColor(90, 90, 90).stroke_width(1),
    ))
    .map_err(err)?;
    let small = (FONT, TEXT as u32).into_font();
    for (j, line) in pages_lines(r, prog, k).into_iter().enumerate() {
        let at = (x0 + 6, y0 + 5 + LINE * j as i32);
        root.draw(&Text::new(line, at, small.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// The frame boxes of one row, stacked, each joined to the program(s) that map its frames.
fn frames_column(
    root: &Area<'_>,
    bx: &[FrameBox],
    (y0, h): (i32, i32),
    lay: &Layout,
) -> Result<(), String> {
    let y1 = y0 + h;
    let small = (FONT, TEXT as u32).into_font();
    let (mid_x, mid_w) = (lay.mid_x, lay.mid_w);
    if bx.is_empty() {
        let at = (mid_x + 6, y0 + h / 2 - 8);
        root.draw(&Text::new("no frame resident in both", at, small))
            .map_err(err)?;
        return Ok(());
    }
    let slot = h / bx.len() as i32;
    for (j, b) in bx.iter().enumerate() {
        let (by0, by1) = (y0 + slot * j as i32 + 2, y0 + slot * (j as i32 + 1) - 2);
        let corners = [(mid_x, by0), (mid_x + mid_w, by1)];
        root.draw(&Rectangle::new(corners, b.color.filled()))
            .map_err(err)?;
        let outline = if b.baz {
            MMAP.stroke_width(3)
        } else {
            RGBColor(90, 90, 90).stroke_width(1)
        };
        root.draw(&Rectangle::new(corners, outline)).map_err(err)?;
        let ym = (by0 + by1) / 2;
        root.draw(&Text::new(
            b.label.clone(),
            (mid_x + 6, ym - 8),
            small.clone(),
        ))
        .map_err(err)?;
        for &k in &b.from {
            let (xa, xb) = if k == 0 {
                (lay.xs()[0] + lay.box_w, mid_x)
            } else {
                (lay.right_x, mid_x + mid_w)
            };
            root.draw(&PathElement::new(
                [(xa, (y0 + y1) / 2), (xb, ym)],
                MARK.stroke_width(2),
            ))
            .map_err(err)?;
        }
    }
    Ok(())
}

fn footer(p: &Step4Picture) -> Vec<String> {
    let mut lines = vec![p
        .programs
        .iter()
        .zip(&p.values)
        .map(|(prog, v)| {
            format!(
                "{}'s baz: {}",
                prog.name,
                v.iter()
                    .take(10)
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("   ")];
    if let Some(c) = &p.client {
        lines.push(c.clone());
    }
    lines
}

/// One sentence on what to notice: the code shared, baz's page private (or what was not
/// measured).
fn caption(p: &Step4Picture) -> String {
    let names: Vec<&str> = p.programs.iter().map(|x| x.name.as_str()).collect();
    let both = names.join(" and ");
    let code = match p.code_shared {
        Some(true) => {
            format!("Both programs ({both}) map the library's code to the same physical frames")
        }
        Some(false) => {
            format!("Both programs ({both}) map some of the library's code to DIFFERENT frames")
        }
        None if !p.frames_readable => {
            "The frame numbers are hidden (not root), so sharing was not measured".to_string()
        }
        None => "No code page was resident in both, so sharing was not measured".to_string(),
    };
    let baz = match (p.baz_private, &p.baz_frames[..]) {
        (Some(true), [Some(a), Some(b)]) => format!(
            ", but each has its own frame for the page holding baz ({a:#x} in {}, {b:#x} in \
             {}, red outline): writing baz copied that page",
            names[0], names[1]
        ),
        (Some(true), _) => ", but each has its own frame for the page holding baz".to_string(),
        (Some(false), _) => ", and the page holding baz is the SAME frame in both".to_string(),
        (None, _) => String::new(),
    };
    format!("{code}{baz}.")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use lab_analysis::step4::Step4;

    fn picture(name: &str) -> Step4Picture {
        use lab_analysis::Step as _;
        let ev = crate::evidence::tests::fixture::<lab_analysis::step4::Evidence>(name, 4);
        Step4Picture::from_findings(&Step4::analyze(&ev).unwrap())
    }

    /// The report's sample step 4: findings and picture from recorded evidence.
    pub(crate) fn sample_report(mut report: lab_analysis::StepReport) -> super::super::Shown {
        use lab_analysis::Step as _;
        let ev =
            crate::evidence::tests::fixture::<lab_analysis::step4::Evidence>("foobar-ours-root", 4);
        let f = Step4::analyze(&ev).unwrap();
        report.findings = serde_json::to_value(&f).unwrap();
        let pictures = vec![draw(&Step4Picture::from_findings(&f))];
        super::super::Shown { report, pictures }
    }

    fn count(svg: &str, tag: &str) -> usize {
        svg.matches(&format!("<{tag}")).count()
    }

    #[test]
    fn pages_beside_frames_shared_code_and_two_private_baz_frames() {
        let p = picture("foobar-course-c");
        let pic = draw(&p);
        let svg = pic.svg.as_ref().unwrap();
        let drawing = &svg[..svg.find("<g class=\"legend\">").unwrap()];
        assert_eq!(pic.marks, ("rect", count(drawing, "rect")));
        // The course's foobar.so: header, code, rodata, RELRO, data.
        assert_eq!(p.rows.len(), 5);
        assert!(svg.contains("1 shared frame(s)"));
        let [Some(a), Some(b)] = p.baz_frames[..] else {
            panic!("frames unreadable in a root recording")
        };
        assert!(svg.contains(&format!("foo: 1 private frame(s) {a:#x} (baz)")));
        assert!(svg.contains(&format!("bar: 1 private frame(s) {b:#x} (baz)")));
        assert!(svg.contains("mmap #2 READ|EXEC, PRIVATE|FIXED|DENYWRITE"));
        assert_eq!(
            pic.caption,
            format!(
                "Both programs (foo and bar) map the library's code to the same physical \
                 frames, but each has its own frame for the page holding baz ({a:#x} in foo, \
                 {b:#x} in bar, red outline): writing baz copied that page."
            )
        );
        // Readable at its natural size: no text under 11 px.
        let sizes: Vec<f64> = svg
            .split("font-size=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
            .collect();
        assert!(sizes.len() > 40);
        assert!(sizes.iter().all(|px| *px >= 11.0), "{sizes:?}");
        // Nothing cut: every symbol is drawn whole, in a box sized from its text.
        assert!(svg.contains("setbaz 0x"));
        assert!(!svg.contains('…'));
        let boxes: Vec<Vec<FrameBox>> = p.rows.iter().map(|r| frame_boxes(&p, r)).collect();
        let lay = layout(&p, &boxes, &footer(&p));
        for (r, prog) in p.rows.iter().zip(p.programs.iter().cycle()) {
            for line in pages_lines(r, prog, 0) {
                assert!(width_of(&line, TEXT) + 12 <= lay.box_w, "{line}");
            }
        }
        // plotters escapes the apostrophe.
        assert!(svg.contains("foo&apos;s baz: 17, 17, 17"), "{svg}");
    }

    #[test]
    fn hidden_frames_and_nothing_to_draw_are_said() {
        let mut p = picture("foobar-ours-root");
        p.frames_readable = false;
        p.code_shared = None;
        let pic = draw(&p);
        assert!(pic
            .svg
            .as_ref()
            .unwrap()
            .contains("physical frames: hidden (not root)"));
        assert!(pic
            .caption
            .starts_with("The frame numbers are hidden (not root), so sharing was not measured"));
        p.rows.clear();
        let none = draw(&p);
        assert!(none
            .svg
            .unwrap_err()
            .contains("0 mapping(s) of the library"));
    }
}
