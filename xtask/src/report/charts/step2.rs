//! Step 2's picture: pages resident against pages in the file.

use plotters::prelude::*;
use serde_json::Value;

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// Step 2

/// Step 2: pages of the table file, and how many were resident before and after the lookups.
pub(super) fn step2_pages(data: &Value) -> Picture {
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
