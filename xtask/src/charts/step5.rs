//! Step 5's pictures, drawn from typed data ([`Data`], built from the step's findings): lost
//! share, and the final participant's runtime per increment of total, against participants, one
//! line per mode.

use plotters::prelude::*;

use super::{err, render, Picture, FONT, HEAP, MMAP, OTHER_MODES};
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
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FONT, 15))
            .draw()
            .map_err(err)?;
        Ok(())
    });
    Picture {
        file: file.into(),
        title: title.into(),
        caption: format!("Measured ({desc}): {}.", caption(&series, which)),
        svg,
        // One dot per measurement.
        marks: ("circle", points),
    }
}

fn caption(series: &Series, which: Which) -> String {
    series
        .iter()
        .map(|(mode, pts)| {
            let vals: Vec<String> = pts
                .iter()
                .map(|(n, v)| match which {
                    Which::LostShare => format!("{n:.0}: {v:.1}%"),
                    Which::Runtime => format!("{n:.0}: {v:.2} ns"),
                })
                .collect();
            format!("{mode} — {}", vals.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
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
        assert!(lost.contains("\nracy\n") && lost.contains("\natomic\n"));
        assert_eq!(pics[0].marks, ("circle", 8));
        assert!(pics[0]
            .caption
            .contains("racy — 1: 0.0%, 2: 10.0%, 3: 20.0%, 4: 30.0%"));
        assert!(pics[1].caption.contains("atomic — 1: 2.00 ns, 2: 4.00 ns"));
        // Two lines (one per mode) plus the two legend strokes.
        assert!(count(lost, "polyline") >= 4);
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
