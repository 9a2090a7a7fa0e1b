//! Step 5's pictures, drawn from typed data ([`Data`], built from the step's findings): lost
//! share, and the final participant's runtime per increment of total, against participants, one
//! line per mode.

use plotters::prelude::*;

use super::{
    dot_mark, err, line_marks, place_legend, plot_rect, render, Legend, Picture, Swatch, FONT,
    HEAP, MMAP, OTHER_MODES,
};
use lab_analysis::step5::picture::Data;

/// Both pictures.
pub fn pictures(data: &Data) -> Vec<Picture> {
    vec![chart(data, Which::LostShare), chart(data, Which::Runtime)]
}

#[derive(Clone, Copy, PartialEq)]
enum Which {
    LostShare,
    Runtime,
}

/// mode -> [(participants, value)], in the order the modes first appear.
type Series = Vec<(String, Vec<(f64, f64)>)>;

fn series(data: &Data, which: Which) -> Series {
    let mut series: Series = Vec::new();
    for r in &data.rows {
        let v = match which {
            Which::LostShare => r.lost_share.map(|s| s * 100.0),
            Which::Runtime => r.ns_per_increment,
        };
        let Some(v) = v.filter(|v| v.is_finite()) else {
            continue;
        };
        let point = (r.participants as f64, v);
        match series.iter_mut().find(|(m, _)| *m == r.mode) {
            Some((_, pts)) => pts.push(point),
            None => series.push((r.mode.clone(), vec![point])),
        }
    }
    for (_, pts) in &mut series {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    series
}

fn chart(data: &Data, which: Which) -> Picture {
    let (file, title, desc) = match which {
        Which::LostShare => (
            "step5-lost-updates.svg",
            "Lost updates against the number of participants",
            "lost updates (% of increments made)",
        ),
        Which::Runtime => (
            "step5-runtime.svg",
            "The final participant's runtime per increment of total",
            "ns per increment (= s for a race to 10^9)",
        ),
    };
    let series = series(data, which);
    let points: usize = series.iter().map(|(_, p)| p.len()).sum();
    if points == 0 {
        return Picture::none(file, title, format!("no race has a value for: {desc}"));
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
        let mut marks_px = Vec::new();
        let mut legend = Legend::new(14.0);
        for (i, (mode, pts)) in series.iter().enumerate() {
            let wider = 2 * (n - 1 - i) as u32;
            let color = colour(mode, i);
            chart
                .draw_series(LineSeries::new(
                    pts.iter().copied(),
                    color.stroke_width(2 + wider),
                ))
                .map_err(err)?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|p| Circle::new(*p, 4 + wider, color.filled())),
                )
                .map_err(err)?;
            let px: Vec<(i32, i32)> = pts.iter().map(|p| chart.backend_coord(p)).collect();
            marks_px.extend(line_marks(&px, 3.0 + f64::from(wider)));
            marks_px.extend(px.iter().map(|p| dot_mark(*p, 7.0 + f64::from(wider))));
            legend = legend.add(Swatch::Line(color), mode.clone());
        }
        let at = place_legend(plot_rect(&chart), legend.size(), &marks_px);
        Ok(legend.svg(at))
    });
    Picture {
        file: file.into(),
        title: title.into(),
        caption: caption(&series, which),
        svg,
        // One dot per measurement.
        marks: ("circle", points),
    }
}

fn colour(mode: &str, i: usize) -> RGBColor {
    match mode {
        "racy" => MMAP,
        "atomic" => HEAP,
        _ => OTHER_MODES[i % OTHER_MODES.len()],
    }
}

fn participants(n: f64) -> String {
    if n == 1.0 {
        "1 participant".to_string()
    } else {
        format!("{n:.0} participants")
    }
}

/// One sentence on what to notice: per mode, the value at the fewest and the most
/// participants (or that it lost none).
fn caption(series: &Series, which: Which) -> String {
    let fmt = |v: f64| match which {
        Which::LostShare => format!("{v:.1}%"),
        Which::Runtime => format!("{v:.2} ns"),
    };
    let mut grows = false;
    let parts: Vec<String> = series
        .iter()
        .filter_map(|(mode, pts)| {
            let (first, last) = (pts.first()?, pts.last()?);
            grows |= last.1 > first.1 && last.0 > first.0;
            Some(match which {
                Which::LostShare if pts.iter().all(|p| p.1 == 0.0) => {
                    format!("{mode} loses none")
                }
                Which::LostShare => format!(
                    "{mode} loses {} with {} and {} with {:.0}",
                    fmt(first.1),
                    participants(first.0),
                    fmt(last.1),
                    last.0
                ),
                Which::Runtime => format!(
                    "{mode}: {} with {}, {} with {:.0}",
                    fmt(first.1),
                    participants(first.0),
                    fmt(last.1),
                    last.0
                ),
            })
        })
        .collect();
    let lead = match (which, grows) {
        (Which::LostShare, true) => "More participants lose more updates",
        (Which::LostShare, false) => "Lost updates",
        (Which::Runtime, true) => {
            "With more participants each increment of the total takes longer (ns per increment \
             of total)"
        }
        (Which::Runtime, false) => "ns per increment of total",
    };
    format!("{lead}: {}.", parts.join("; "))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use lab_analysis::step5::picture::Row;

    /// Four participant counts in two modes: racy loses 10% more per extra racer.
    pub(crate) fn sample() -> Data {
        let mut rows = Vec::new();
        for n in 1..=4usize {
            rows.push(Row {
                participants: n,
                mode: "racy".into(),
                lost_share: Some((n - 1) as f64 * 0.1),
                ns_per_increment: Some(n as f64),
            });
            rows.push(Row {
                participants: n,
                mode: "atomic".into(),
                lost_share: Some(0.0),
                ns_per_increment: Some(2.0 * n as f64),
            });
        }
        Data { rows }
    }

    /// A report's step 5 section with the sample's pictures and findings in the `--json` shape.
    pub(crate) fn sample_report(mut report: lab_analysis::StepReport) -> super::super::Shown {
        let d = sample();
        report.findings = serde_json::json!({
            "races": d.rows.iter().map(|r| serde_json::json!({
                "participants": r.participants, "mode": r.mode, "lost_share": r.lost_share,
                "ns_per_increment": r.ns_per_increment,
            })).collect::<Vec<_>>(),
        });
        let pictures = pictures(&d);
        super::super::Shown { report, pictures }
    }

    fn count(svg: &str, tag: &str) -> usize {
        svg.matches(&format!("<{tag}")).count()
    }

    #[test]
    fn one_line_per_mode() {
        let pics = pictures(&sample());
        assert_eq!(pics.len(), 2);
        let lost = pics[0].svg.as_ref().unwrap();
        assert_eq!(pics[0].marks, ("circle", 8));
        assert_eq!(
            pics[0].caption,
            "More participants lose more updates: racy loses 0.0% with 1 participant and \
             30.0% with 4; atomic loses none."
        );
        assert!(pics[1]
            .caption
            .contains("atomic: 2.00 ns with 1 participant, 8.00 ns with 4"));
        // One line per mode, and the legend's two strokes.
        assert!(count(lost, "polyline") >= 2);
        let legend = &lost[lost.find("<g class=\"legend\">").unwrap()..];
        assert_eq!(legend.matches("<line ").count(), 2);
        assert!(lost.contains(">racy</text>") && lost.contains(">atomic</text>"));
    }

    #[test]
    fn missing_values_are_left_out_and_none_gives_a_reason() {
        let mut d = sample();
        d.rows[0].ns_per_increment = None;
        d.rows[1].ns_per_increment = Some(f64::NAN);
        assert_eq!(pictures(&d)[1].marks, ("circle", 6));
        let empty = Data { rows: Vec::new() };
        for p in pictures(&empty) {
            let reason = p.svg.err().unwrap();
            assert!(reason.contains("no race has a value"), "{reason}");
        }
    }
}
