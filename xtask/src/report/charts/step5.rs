//! Step 5's pictures: lost share and increments per second against participants.

use plotters::prelude::*;
use serde_json::Value;

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// Step 5

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Step5 {
    LostShare,
    Rate,
}

/// Step 5: lost share (or increments per second) against participants, one line per mode.
pub(super) fn step5_chart(data: &Value, which: Step5) -> Picture {
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
