//! Step 4's picture: the library's pages in foo and in bar beside the physical frames they map
//! (pagemap), one row per mapping of the library: the code rows meet in shared frames, the row
//! holding baz splits into two private frames. Drawn from `Step4Picture`, built by
//! `lab_analysis::step4::picture` from the step's findings.

// foo, bar and baz are the assignment's names, not placeholders.
#![allow(clippy::disallowed_names)]

use plotters::prelude::*;

use super::{bytes, clip, err, render, Picture, FONT, MARK, MMAP};
use lab_analysis::step4::picture::{Program, Row, Step4Picture};

const FILE: &str = "step4-frames.svg";
const TITLE: &str = "The library's pages in foo and bar, and the physical frames they map";
const ROW: i32 = 86;
const TOP: i32 = 92;
const BOX_W: i32 = 400;
const MID_X: i32 = 520;
const MID_W: i32 = 300;
const RIGHT_X: i32 = MID_X + MID_W + 100;
const SHARED: RGBColor = RGBColor(255, 204, 140);
const PRIVATE: RGBColor = RGBColor(170, 220, 170);
const ALONE: RGBColor = RGBColor(225, 225, 225);

fn perms_color(perms: &str) -> RGBColor {
    if perms.starts_with("r-x") {
        RGBColor(255, 224, 180)
    } else if perms.starts_with("rw") {
        RGBColor(200, 235, 200)
    } else if perms.starts_with("r--") {
        RGBColor(205, 222, 245)
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

/// The x of each program's column (foo left, bar right).
const XS: [i32; 2] = [20, RIGHT_X];

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
    let rows = p.rows.len() as i32;
    let boxes: Vec<Vec<FrameBox>> = p.rows.iter().map(|r| frame_boxes(p, r)).collect();
    // The background, then per row a filled and an outlined box per program and per frame box.
    let rects = 1 + boxes
        .iter()
        .map(|b| 2 * p.programs.len() + 2 * b.len())
        .sum::<usize>();
    let size = (
        (RIGHT_X + BOX_W + 20) as u32,
        (TOP + rows * ROW + 70) as u32,
    );
    let svg = render(size, |root| {
        header(root, p)?;
        for (i, (r, bx)) in p.rows.iter().zip(&boxes).enumerate() {
            let y0 = TOP + ROW * i as i32;
            for (k, prog) in p.programs.iter().enumerate() {
                pages_box(root, r, prog, k, y0)?;
            }
            frames_column(root, bx, y0)?;
        }
        let small = (FONT, 14).into_font();
        for (j, line) in footer(p).iter().enumerate() {
            let y = TOP + rows * ROW + 4 + 20 * j as i32;
            root.draw(&Text::new(clip(line, 170), (20, y), small.clone()))
                .map_err(err)?;
        }
        Ok(())
    });
    Picture {
        file: FILE.into(),
        title: TITLE.into(),
        caption: caption(p),
        svg,
        marks: ("rect", rects),
    }
}

fn header(root: &Area<'_>, p: &Step4Picture) -> Result<(), String> {
    let bold = (FONT, 17).into_font();
    root.draw(&Text::new(
        "Step 4: the library's pages (left: foo, right: bar) and the RAM frames they map \
         (middle)",
        (20, 12),
        (FONT, 20).into_font(),
    ))
    .map_err(err)?;
    for (x, prog) in XS.iter().zip(&p.programs) {
        let label = format!(
            "{} (pid {}): loaded at {:#x}",
            prog.name, prog.pid, prog.base
        );
        root.draw(&Text::new(label, (*x, 44), bold.clone()))
            .map_err(err)?;
    }
    let middle = if p.frames_readable {
        "physical frames (pagemap PFNs)"
    } else {
        "physical frames: hidden (not root)"
    };
    root.draw(&Text::new(middle, (MID_X, 44), bold))
        .map_err(err)?;
    root.draw(&Text::new(
        clip(&p.programs[0].library, 150),
        (20, 66),
        (FONT, 14).into_font(),
    ))
    .map_err(err)?;
    Ok(())
}

/// One program's box for one mapping: its addresses, the mmap that made it, its symbols.
fn pages_box(root: &Area<'_>, r: &Row, prog: &Program, k: usize, y0: i32) -> Result<(), String> {
    let (x0, y1) = (XS[k], y0 + ROW - 10);
    let corners = [(x0, y0), (x0 + BOX_W, y1)];
    root.draw(&Rectangle::new(corners, perms_color(&r.perms).filled()))
        .map_err(err)?;
    root.draw(&Rectangle::new(
        corners,
        RGBColor(90, 90, 90).stroke_width(1),
    ))
    .map_err(err)?;
    let symbols: Vec<String> = r
        .symbols
        .iter()
        .map(|(n, a)| format!("{n} {:#x}", prog.base + a))
        .collect();
    let lines = [
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
        format!(
            "{} pages, {} not resident{}{}",
            r.pages,
            r.not_resident[k],
            if symbols.is_empty() { "" } else { "; " },
            symbols.join(", ")
        ),
    ];
    let small = (FONT, 14).into_font();
    for (j, line) in lines.iter().enumerate() {
        let at = (x0 + 6, y0 + 5 + 19 * j as i32);
        root.draw(&Text::new(clip(line, 58), at, small.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// The frame boxes of one row, stacked, each joined to the program(s) that map its frames.
fn frames_column(root: &Area<'_>, bx: &[FrameBox], y0: i32) -> Result<(), String> {
    let y1 = y0 + ROW - 10;
    let small = (FONT, 14).into_font();
    if bx.is_empty() {
        let at = (MID_X + 6, y0 + 28);
        root.draw(&Text::new("no frame resident in both", at, small))
            .map_err(err)?;
        return Ok(());
    }
    let slot = (y1 - y0) / bx.len() as i32;
    for (j, b) in bx.iter().enumerate() {
        let (by0, by1) = (y0 + slot * j as i32 + 2, y0 + slot * (j as i32 + 1) - 2);
        let corners = [(MID_X, by0), (MID_X + MID_W, by1)];
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
            clip(&b.label, 44),
            (MID_X + 5, ym - 8),
            small.clone(),
        ))
        .map_err(err)?;
        for &k in &b.from {
            let (xa, xb) = if k == 0 {
                (XS[0] + BOX_W, MID_X)
            } else {
                (RIGHT_X, MID_X + MID_W)
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

fn caption(p: &Step4Picture) -> String {
    let mut s = format!(
        "{} mappings of the library per program, at the same offsets from each load address. ",
        p.rows.len()
    );
    let shared: usize = p
        .rows
        .iter()
        .filter(|r| r.perms == "r-xp")
        .map(|r| r.same.len())
        .sum();
    s.push_str(&match p.code_shared {
        Some(true) => format!(
            "Code: all {shared} pages resident in both map the same physical frames (orange). "
        ),
        Some(false) => "Code: some pages resident in both map DIFFERENT frames. ".into(),
        None if !p.frames_readable => {
            "Frame numbers read as 0 (not root), so frames cannot be compared. ".into()
        }
        None => "No code page was resident in both. ".into(),
    });
    let f: Vec<String> = p
        .programs
        .iter()
        .zip(&p.baz_frames)
        .map(|(prog, fr)| {
            format!(
                "{} in {}",
                fr.map_or("?".into(), |x| format!("{x:#x}")),
                prog.name
            )
        })
        .collect();
    s.push_str(&match p.baz_private {
        Some(true) => format!("baz: two private frames ({}, red outline). ", f.join(", ")),
        Some(false) => format!("baz: the SAME frame ({}). ", f.join(", ")),
        None => "baz's frames unreadable. ".into(),
    });
    s.push_str(
        "Orange: frames both map; green: each program's own copies (written pages); grey: \
         frames only one program has resident.",
    );
    s
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
        assert_eq!(pic.marks, ("rect", count(svg, "rect")));
        // The course's foobar.so: header, code, rodata, RELRO, data.
        assert_eq!(p.rows.len(), 5);
        assert!(svg.contains("1 shared frame(s)"));
        let [Some(a), Some(b)] = p.baz_frames[..] else {
            panic!("frames unreadable in a root recording")
        };
        assert!(svg.contains(&format!("foo: 1 private frame(s) {a:#x} (baz)")));
        assert!(svg.contains(&format!("bar: 1 private frame(s) {b:#x} (baz)")));
        assert!(svg.contains("mmap #2 READ|EXEC, PRIVATE|FIXED|DENYWRITE"));
        assert!(pic
            .caption
            .contains("Code: all 1 pages resident in both map the same"));
        assert!(pic.caption.contains(&format!(
            "baz: two private frames ({a:#x} in foo, {b:#x} in bar"
        )));
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
        assert!(pic.caption.contains("Frame numbers read as 0 (not root)"));
        p.rows.clear();
        let none = draw(&p);
        assert!(none
            .svg
            .unwrap_err()
            .contains("0 mapping(s) of the library"));
    }
}
