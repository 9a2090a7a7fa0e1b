//! Step 2's pictures, drawn from their typed data (`lab_analysis::step2::picture`): the course's table
//! file (count, capacity, the mapping, the pages the print read in) and the persist table's
//! pages resident before and after the lookups. [`layout`] also draws step 3's naive writers.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    bytes, err, render, round_ticks, ticked, Legend, Picture, Swatch, FONT, HEAP, MMAP, MMAP_LEN,
};
use lab_analysis::disktable::picture::{LayoutPicture, LayoutRow};
use lab_analysis::step2::picture::{Pictures, ResidencyPicture};

/// Both pictures of step 2, drawn from their data.
pub fn pictures(p: &Pictures) -> Vec<Picture> {
    let mut out = Vec::new();
    if let Some(t) = &p.table {
        out.push(layout(t));
    }
    out.push(residency(&p.residency));
    out
}

const FILE_GREY: RGBColor = RGBColor(200, 200, 200);
const RESIDENT: RGBColor = RGBColor(44, 160, 44);

const SIGBUS_COLOUR: RGBColor = RGBColor(148, 103, 189);
const RULE: RGBColor = RGBColor(20, 20, 20);

fn signal_colour(signal: &str) -> RGBColor {
    match signal {
        "SIGSEGV" => MMAP,
        "SIGBUS" => SIGBUS_COLOUR,
        _ => RULE,
    }
}

/// Draws files and mappings: per row, the file (grey), the bytes count uses (blue), the
/// mapping's pages (an orange outline), resident pages (green squares), the end of the file's
/// last page (a black rule) and a fault (a narrow mark coloured by its signal). Only
/// `p.window` is drawn when it is set, bars clipped to it; ticks fall on round multiples of
/// pages.
pub fn layout(p: &LayoutPicture) -> Picture {
    if p.rows.is_empty() || p.page_size == 0 {
        return Picture::none(&p.file, &p.title, "nothing was mapped".into());
    }
    let page = p.page_size as f64;
    let end = p
        .rows
        .iter()
        .flat_map(|r| {
            let map_end = r
                .map_len
                .map_or(0, |l| l.div_ceil(p.page_size) * p.page_size);
            let fault = r.fault.as_ref().map_or(0, |f| f.0 + p.page_size);
            [r.file_bytes, map_end, fault]
        })
        .max()
        .unwrap_or(1) as f64
        + page;
    let (lo, hi) = match p.window {
        Some((a, b)) if b > a => (a as f64, b as f64),
        _ => (0.0, end),
    };
    let rows = p.rows.len();
    let marks = p.rows.iter().map(|r| row_marks(r, page, (lo, hi))).sum();
    let signals: Vec<&str> = {
        let mut v: Vec<&str> = p
            .rows
            .iter()
            .filter_map(|r| r.fault.as_ref())
            .map(|f| f.1.as_str())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let height = 120 + 92 * rows.max(2) as u32;
    let svg = render((1000, height), |root| {
        let (plot, side) = root.split_horizontally(740);
        let ticks = round_ticks(lo, hi, page, 8);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&p.title, (FONT, 17))
            .margin(15)
            .x_label_area_size(44)
            .y_label_area_size(10)
            .build_cartesian_2d(ticked(lo, hi, ticks), 0.0..rows as f64)
            .map_err(err)?;
        let desc = if p.window.is_some() {
            format!(
                "byte offset in the file, zoomed on the file's end (bars start at 0; page = {})",
                bytes(page)
            )
        } else {
            format!("byte offset in the file (page = {})", bytes(page))
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(desc)
            .x_label_formatter(&|v| bytes(*v))
            .bold_line_style(RGBColor(225, 225, 225))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(err)?;
        // A faint rule at every page boundary when there are few enough to tell apart.
        if (hi - lo) / page <= 64.0 {
            let first = (lo / page).ceil() as u64;
            let last = (hi / page).floor() as u64;
            chart
                .draw_series((first..=last).map(|k| {
                    let x = k as f64 * page;
                    PathElement::new([(x, 0.0), (x, rows as f64)], RGBColor(215, 215, 215))
                }))
                .map_err(err)?;
        }
        for (i, r) in p.rows.iter().enumerate() {
            let y = (rows - 1 - i) as f64;
            draw_row(&mut chart, r, y, page, (lo, hi))?;
        }
        let mut legend = Legend::new(13.0)
            .add(Swatch::Fill(FILE_GREY), "the file")
            .add(Swatch::Fill(HEAP), "count and values")
            .add(Swatch::Outline(MMAP_LEN), "the mapping's pages");
        if p.rows.iter().any(|r| !r.resident_pages.is_empty()) {
            legend = legend.add(Swatch::Fill(RESIDENT), "page resident (mincore)");
        }
        legend = legend.add(Swatch::Line(RULE), "end of the file's last page");
        for s in &signals {
            legend = legend.add(
                Swatch::Fill(signal_colour(s)),
                format!("store that got {s}"),
            );
        }
        let (xs, _) = side.get_pixel_range();
        Ok(legend.svg((f64::from(xs.start) + 4.0, 50.0)))
    });
    Picture {
        file: p.file.clone(),
        title: p.title.clone(),
        caption: p.caption.clone(),
        svg,
        marks: ("rect", marks),
    }
}

/// How many of a row's rectangles lie (partly) inside the window.
fn row_marks(r: &LayoutRow, page: f64, (lo, hi): (f64, f64)) -> usize {
    let visible = |a: f64, b: f64| b > lo && a < hi;
    usize::from(visible(0.0, r.file_bytes as f64))
        + usize::from(r.used_bytes > 0 && visible(0.0, r.used_bytes as f64))
        + r.resident_pages
            .iter()
            .filter(|pg| visible(**pg as f64 * page, (**pg + 1) as f64 * page))
            .count()
        + usize::from(r.map_len.is_some_and(|l| visible(0.0, l as f64)))
        + usize::from(
            r.fault
                .as_ref()
                .is_some_and(|f| visible(f.0 as f64, f.0 as f64 + 1.0)),
        )
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<super::Ticked, plotters::coord::types::RangedCoordf64>,
>;

fn draw_row(
    chart: &mut Chart<'_, '_>,
    r: &LayoutRow,
    y: f64,
    page: f64,
    (lo, hi): (f64, f64),
) -> Result<(), String> {
    // A bar clipped to the window, or nothing when it lies outside.
    let bar = |x0: f64, x1: f64, lo_y: f64, hi_y: f64, style: ShapeStyle| {
        let (a, b) = (x0.max(lo), x1.min(hi));
        (b > a).then(|| Rectangle::new([(a, y + lo_y), (b, y + hi_y)], style))
    };
    let mut rects = vec![bar(
        0.0,
        r.file_bytes as f64,
        0.30,
        0.55,
        FILE_GREY.filled(),
    )];
    if r.used_bytes > 0 {
        rects.push(bar(0.0, r.used_bytes as f64, 0.30, 0.55, HEAP.filled()));
    }
    if let Some(len) = r.map_len {
        let map_end = (len as f64 / page).ceil() * page;
        rects.push(bar(0.0, map_end, 0.22, 0.63, MMAP_LEN.stroke_width(2)));
    }
    for &pg in &r.resident_pages {
        let x = pg as f64 * page;
        rects.push(bar(
            x + page * 0.2,
            x + page * 0.8,
            0.08,
            0.18,
            RESIDENT.filled(),
        ));
    }
    let mark_w = (hi - lo) / 120.0;
    if let Some((offset, signal)) = &r.fault {
        let x = *offset as f64;
        rects.push(bar(
            x,
            x + mark_w,
            0.10,
            0.72,
            signal_colour(signal).filled(),
        ));
    }
    chart
        .draw_series(rects.into_iter().flatten())
        .map_err(err)?;
    let rule = (r.file_bytes as f64 / page).ceil() * page;
    if rule >= lo && rule <= hi {
        chart
            .draw_series([PathElement::new(
                [(rule, y + 0.04), (rule, y + 0.76)],
                RULE.stroke_width(2),
            )])
            .map_err(err)?;
    }
    let style = TextStyle::from((FONT, 14).into_font());
    let mut label = format!("{}: file {} bytes", r.label, r.file_bytes);
    if let Some(len) = r.map_len {
        label.push_str(&format!(", mapping {len} bytes"));
    }
    chart
        .draw_series([Text::new(label, (lo, y + 0.95), style.clone())])
        .map_err(err)?;
    if let Some((offset, signal)) = &r.fault {
        let x = (*offset as f64 + 2.0 * mark_w).clamp(lo, hi);
        chart
            .draw_series([Text::new(
                format!("{signal} at offset {offset}"),
                (x, y + 0.40),
                style
                    .color(&signal_colour(signal))
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            )])
            .map_err(err)?;
    }
    Ok(())
}

/// The persist table's pages: in the file, resident before and after the lookups.
pub fn residency(p: &ResidencyPicture) -> Picture {
    const FILE: &str = "step2-pages.svg";
    const TITLE: &str = "persist: pages of the table resident in RAM, before and after the lookups";
    if p.pages_total == 0 {
        return Picture::none(FILE, TITLE, "the table has 0 pages".into());
    }
    let total = p.pages_total as f64;
    let pct = |v: u64| 100.0 * v as f64 / total;
    let bars = [
        (
            format!("pages in the file: {}", p.pages_total),
            p.pages_total,
            FILE_GREY,
        ),
        (
            format!(
                "resident before the lookups: {} ({:.1}%)",
                p.before,
                pct(p.before)
            ),
            p.before,
            HEAP,
        ),
        (
            format!(
                "resident after {} lookups: {} ({:.1}%)",
                p.lookups,
                p.after,
                pct(p.after)
            ),
            p.after,
            MMAP_LEN,
        ),
    ];
    let drawn = bars.iter().filter(|b| b.1 > 0).count();
    let xmax = bars.iter().map(|b| b.1 as f64).fold(total, f64::max) * 1.02;
    let svg = render((900, 300), |root| {
        let (plot, side) = root.split_horizontally(680);
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                "Step 2: page-cache residency of the mapped table",
                (FONT, 18),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(10)
            .build_cartesian_2d(ticked(0.0, xmax, round_ticks(0.0, xmax, 1.0, 8)), 0.0..3.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(format!("pages ({} each)", bytes(p.page_size as f64)))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .bold_line_style(RGBColor(225, 225, 225))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (i, (label, v, color)) in bars.iter().enumerate() {
            let y = 2.0 - i as f64;
            chart
                .draw_series([Rectangle::new(
                    [(0.0, y + 0.12), (*v as f64, y + 0.55)],
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
        let legend = Legend::new(13.0)
            .add(Swatch::Fill(FILE_GREY), "pages in the file")
            .add(Swatch::Fill(HEAP), "resident before the lookups")
            .add(Swatch::Fill(MMAP_LEN), "resident after them");
        let (xs, _) = side.get_pixel_range();
        Ok(legend.svg((f64::from(xs.start) + 4.0, 50.0)))
    });
    Picture {
        file: FILE.into(),
        title: TITLE.into(),
        caption: format!(
            "Only the pages the lookups touched were read in: {} of {} ({:.1}%) after {} \
             lookups, {} before{}.",
            p.after,
            p.pages_total,
            pct(p.after),
            p.lookups,
            p.before,
            if p.evicted {
                " (the file was dropped from the page cache first)"
            } else {
                " (the file could not be dropped from the page cache first)"
            }
        ),
        svg,
        // The background and one rectangle per non-empty bar.
        marks: ("rect", drawn + 1),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use lab_analysis::step2::Step2;
    use lab_analysis::Step as _;

    /// The report's sample section for step 2: a recorded run's findings and its first
    /// picture (the report's own tests count one picture for this section).
    pub(crate) fn sample_report(mut report: lab_analysis::StepReport) -> super::super::Shown {
        let e = crate::evidence::tests::fixture::<lab_analysis::step2::Evidence>("course-table", 2);
        let f = Step2::analyze(&e).unwrap();
        report.findings = serde_json::to_value(&f).unwrap();
        let pictures = pictures(&lab_analysis::step2::picture::pictures(&f, &e))
            .into_iter()
            .take(1)
            .collect();
        super::super::Shown { report, pictures }
    }

    fn count(svg: &str, tag: &str) -> usize {
        svg.matches(&format!("<{tag}")).count()
    }

    #[test]
    fn residency_bars_and_caption_come_from_the_numbers() {
        let p = residency(&ResidencyPicture {
            pages_total: 2442,
            before: 0,
            after: 37,
            lookups: 1000,
            evicted: true,
            page_size: 4096,
        });
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.contains("resident after 1000 lookups: 37 (1.5%)"));
        assert_eq!(
            p.caption,
            "Only the pages the lookups touched were read in: 37 of 2442 (1.5%) after 1000 \
             lookups, 0 before (the file was dropped from the page cache first)."
        );
        assert!(svg.contains("<g class=\"legend\">"));
        // Round ticks in pages: 0, 500, … 2000.
        for tick in ["\n500\n", "\n1000\n", "\n2000\n"] {
            assert!(svg.contains(tick), "{tick:?}");
        }
        assert_eq!(p.marks, ("rect", 3));
        assert!(count(svg, "rect") >= 3);
        let none = residency(&ResidencyPicture {
            pages_total: 0,
            before: 0,
            after: 0,
            lookups: 1,
            evicted: false,
            page_size: 4096,
        });
        assert!(none.svg.unwrap_err().contains("0 pages"));
    }

    /// Step 3's case: zoomed on the file's end, the two signals in their own colours beside
    /// the rule at the end of the file's last page, bars outside the window not counted.
    #[test]
    fn a_window_draws_the_pages_round_the_end_and_tells_the_signals_apart() {
        let row = |label: &str, map_len, signal: &str| LayoutRow {
            label: label.into(),
            file_bytes: 114_340,
            used_bytes: 4340,
            map_len: Some(map_len),
            resident_pages: vec![0],
            fault: Some((114_688, signal.into())),
        };
        let p = layout(&LayoutPicture {
            file: "n.svg".into(),
            title: "n".into(),
            caption: String::new(),
            page_size: 4096,
            rows: vec![
                row("file", 114_340, "SIGSEGV"),
                row("beyond", 115_540, "SIGBUS"),
            ],
            window: Some((25 * 4096, 31 * 4096)),
        });
        let svg = p.svg.as_ref().unwrap();
        // Per row: file and mapping in the window, the fault; count and page 0 are left of it.
        assert_eq!(p.marks, ("rect", 2 * 3));
        for tick in ["\n100 KiB\n", "\n104 KiB\n", "\n124 KiB\n"] {
            assert!(svg.contains(tick), "{tick:?}");
        }
        assert!(svg.contains("zoomed on the file&apos;s end"), "{svg}");
        for (signal, colour) in [("SIGSEGV", "#D62728"), ("SIGBUS", "#9467BD")] {
            assert!(svg.contains(&format!("store that got {signal}</text>")));
            assert!(svg.contains(&format!("fill=\"{colour}\"")), "{colour}");
        }
        assert!(svg.contains("end of the file&apos;s last page</text>"));
    }

    #[test]
    fn layout_draws_file_mapping_resident_pages_and_fault() {
        let p = layout(&LayoutPicture {
            file: "t.svg".into(),
            title: "t".into(),
            caption: String::new(),
            page_size: 4096,
            rows: vec![LayoutRow {
                label: "naive file".into(),
                file_bytes: 114_340,
                used_bytes: 4340,
                map_len: Some(114_340),
                resident_pages: vec![0, 1],
                fault: Some((114_688, "SIGSEGV".into())),
            }],
            window: None,
        });
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.contains("SIGSEGV at offset 114688"));
        assert!(svg.contains("naive file: file 114340 bytes, mapping 114340 bytes"));
        // file, used, mapping, 2 resident pages, fault.
        assert_eq!(p.marks, ("rect", 6));
        assert!(count(svg, "rect") >= 6);
        // Round ticks in whole pages: 0, 20 KiB, 40 KiB, … (not 19.5/39.1 KiB).
        for tick in ["\n0 B\n", "\n20 KiB\n", "\n40 KiB\n", "\n100 KiB\n"] {
            assert!(svg.contains(tick), "{tick:?}");
        }
        assert!(svg.contains("page resident (mincore)</text>"));
        let empty = layout(&LayoutPicture {
            rows: Vec::new(),
            ..LayoutPicture {
                file: "e.svg".into(),
                title: "e".into(),
                caption: String::new(),
                page_size: 4096,
                rows: Vec::new(),
                window: None,
            }
        });
        assert!(empty.svg.is_err());
    }
}
