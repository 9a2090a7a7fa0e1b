//! Step 2's pictures, drawn from their typed data (`lab_analysis::step2::picture`): the course's table
//! file (count, capacity, the mapping, the pages the print read in) and the persist table's
//! pages resident before and after the lookups. [`layout`] also draws step 3's naive writers.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{bytes, err, render, Picture, FONT, HEAP, MMAP, MMAP_LEN};
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

/// Draws files and mappings: per row, the file (grey), the bytes count uses (blue), the
/// mapping's pages (an orange outline), resident pages (green squares) and a fault (red, with
/// its signal).
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
    let rows = p.rows.len();
    let mut marks = 0usize;
    for r in &p.rows {
        marks += 1 + usize::from(r.used_bytes > 0) + r.resident_pages.len();
        marks += usize::from(r.map_len.is_some()) + usize::from(r.fault.is_some());
    }
    let height = 140 + 90 * rows as u32;
    let svg = render((960, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&p.title, (FONT, 18))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(10)
            .build_cartesian_2d(0.0..end, 0.0..rows as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(format!("byte offset in the file (page = {})", bytes(page)))
            .x_label_formatter(&|v| bytes(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (i, r) in p.rows.iter().enumerate() {
            let y = (rows - 1 - i) as f64;
            draw_row(&mut chart, r, y, page)?;
        }
        Ok(())
    });
    Picture {
        file: p.file.clone(),
        title: p.title.clone(),
        caption: p.caption.clone(),
        svg,
        marks: ("rect", marks),
    }
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_row(chart: &mut Chart<'_, '_>, r: &LayoutRow, y: f64, page: f64) -> Result<(), String> {
    let bar = |x0: f64, x1: f64, lo: f64, hi: f64, style: ShapeStyle| {
        Rectangle::new([(x0, y + lo), (x1, y + hi)], style)
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
    if let Some((offset, _)) = &r.fault {
        let x = *offset as f64;
        rects.push(bar(x, x + page * 0.5, 0.12, 0.72, MMAP.filled()));
    }
    chart.draw_series(rects).map_err(err)?;
    let style = TextStyle::from((FONT, 13).into_font());
    let mut label = format!("{}: file {} bytes", r.label, r.file_bytes);
    if let Some(len) = r.map_len {
        label.push_str(&format!(", mapping {len} bytes"));
    }
    chart
        .draw_series([Text::new(label, (0.0, y + 0.92), style.clone())])
        .map_err(err)?;
    if let Some((offset, signal)) = &r.fault {
        chart
            .draw_series([Text::new(
                format!("{signal} at offset {offset}"),
                (*offset as f64, y + 0.75),
                style.pos(Pos::new(HPos::Center, VPos::Bottom)),
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
        Ok(())
    });
    Picture {
        file: FILE.into(),
        title: TITLE.into(),
        caption: format!(
            "Of {} pages, {} were resident before the lookups and {} after ({:.1}% of the file): \
             only the pages the lookups touched were read in.{}",
            p.pages_total,
            p.before,
            p.after,
            pct(p.after),
            if p.evicted {
                " The file was dropped from the page cache first (fadvise)."
            } else {
                " The file could not be dropped from the page cache first."
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
        });
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.contains("resident after 1000 lookups: 37 (1.5%)"));
        assert!(p.caption.contains("Of 2442 pages, 0 were resident"));
        assert_eq!(p.marks, ("rect", 3));
        assert!(count(svg, "rect") >= 3);
        let none = residency(&ResidencyPicture {
            pages_total: 0,
            before: 0,
            after: 0,
            lookups: 1,
            evicted: false,
        });
        assert!(none.svg.unwrap_err().contains("0 pages"));
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
        });
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.contains("SIGSEGV at offset 114688"));
        assert!(svg.contains("naive file: file 114340 bytes, mapping 114340 bytes"));
        // file, used, mapping, 2 resident pages, fault.
        assert_eq!(p.marks, ("rect", 6));
        assert!(count(svg, "rect") >= 6);
        let empty = layout(&LayoutPicture {
            rows: Vec::new(),
            ..LayoutPicture {
                file: "e.svg".into(),
                title: "e".into(),
                caption: String::new(),
                page_size: 4096,
                rows: Vec::new(),
            }
        });
        assert!(empty.svg.is_err());
    }
}
