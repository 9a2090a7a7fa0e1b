//! Step 6's pictures, drawn from typed data ([`Data`], built from the benchmark's rows): the
//! median round trip and the one-way throughput against message size, one line per transport,
//! log scales on both axes. Two CPUs solid with filled dots, one CPU dashed with open dots.

use channel::bench::{fmt_ns, fmt_rate, Placement, Transport};
use lab_analysis::step6::picture::{Data, Line, Point};
use plotters::prelude::*;

use super::{
    bounds, bytes, err, render, Legend, Picture, Swatch, FONT, HEAP, MARK, MMAP, MMAP_LEN,
    OTHER_MODES,
};

/// Both pictures.
pub fn pictures(data: &Data) -> Vec<Picture> {
    vec![chart(data, Which::Latency), chart(data, Which::Throughput)]
}

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Latency,
    Throughput,
}

impl Which {
    fn value(self, p: &Point) -> f64 {
        match self {
            Which::Latency => p.rtt_median_ns,
            Which::Throughput => p.bytes_per_s,
        }
    }

    fn fmt(self, v: f64) -> String {
        match self {
            Which::Latency => fmt_ns(v),
            Which::Throughput => format!("{}B/s", fmt_rate(v)),
        }
    }
}

fn colour(t: Transport) -> RGBColor {
    match t {
        Transport::Cacheline => MARK,
        Transport::RingSpin => HEAP,
        Transport::RingWait => OTHER_MODES[0],
        Transport::Pipe => MMAP,
        Transport::UnixSocket => MMAP_LEN,
    }
}

/// (line, its finite positive points as (size, value)).
fn series(data: &Data, which: Which) -> Vec<(&Line, Vec<(f64, f64)>)> {
    data.lines
        .iter()
        .map(|l| {
            let pts = l
                .points
                .iter()
                .map(|p| (p.size as f64, which.value(p)))
                .filter(|(_, v)| v.is_finite() && *v > 0.0)
                .collect::<Vec<_>>();
            (l, pts)
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect()
}

fn chart(data: &Data, which: Which) -> Picture {
    let (file, title, desc) = match which {
        Which::Latency => (
            "step6-latency.svg",
            "Round trip against message size",
            "median round trip (log scale)",
        ),
        Which::Throughput => (
            "step6-throughput.svg",
            "One-way throughput against message size",
            "bytes per second, one way (log scale)",
        ),
    };
    let series = series(data, which);
    let points: usize = series.iter().map(|(_, p)| p.len()).sum();
    if points == 0 {
        return Picture::none(
            file,
            title,
            format!("no benchmark row has a value for: {desc}"),
        );
    }
    let (xmin, xmax) = bounds(series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)));
    let (ymin, ymax) = bounds(series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)));
    let one_cpu = series.iter().any(|(l, _)| l.placement == Placement::OneCpu);
    let svg = render((900, 500), |root| {
        // The legend gets its own column: on log-log axes the lines fill every corner.
        let (plot, side) = root.split_horizontally(730);
        let mut chart = ChartBuilder::on(&plot)
            .caption(format!("Step 6: {}", title.to_lowercase()), (FONT, 18))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(100)
            .build_cartesian_2d(
                (xmin / 1.6..xmax * 1.6).log_scale().base(4.0),
                (ymin / 2.0..ymax * 2.0).log_scale(),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("message size (log scale)")
            .y_desc(desc)
            .x_label_formatter(&|v| bytes(*v))
            .y_label_formatter(&|v| which.fmt(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()
            .map_err(err)?;
        let mut named: Vec<Transport> = Vec::new();
        for (line, pts) in &series {
            let c = colour(line.transport);
            let two = line.placement == Placement::TwoCpus;
            // ring-spin drawn wider: where ring-wait never sleeps, their lines coincide.
            let wide = line.transport == Transport::RingSpin;
            let style = c.stroke_width(if wide { 4 } else { 2 });
            if two {
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), style))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(DashedLineSeries::new(pts.iter().copied(), 6, 4, style))
                    .map_err(err)?;
            }
            if !named.contains(&line.transport) {
                named.push(line.transport);
            }
            chart
                .draw_series(pts.iter().map(|p| {
                    let s = if two { c.filled() } else { c.stroke_width(2) };
                    Circle::new(*p, if wide { 5 } else { 4 }, s)
                }))
                .map_err(err)?;
        }
        legend(&side, &named, one_cpu)
    });
    Picture {
        file: file.into(),
        title: title.into(),
        caption: caption(&series, which),
        svg,
        // One dot per measured cell.
        marks: ("circle", points),
    }
}

/// The legend, in its own column: one entry per transport, then what the dashes mean.
fn legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    transports: &[Transport],
    one_cpu: bool,
) -> Result<String, String> {
    let grey = RGBColor(110, 110, 110);
    let mut legend = Legend::new(14.0);
    for &t in transports {
        legend = legend.add(Swatch::Line(colour(t)), t.name());
    }
    legend = legend.add(Swatch::Line(grey), "two CPUs");
    if one_cpu {
        legend = legend.add(Swatch::Dashed(grey), "one CPU");
    }
    let (xs, _) = area.get_pixel_range();
    Ok(legend.svg((f64::from(xs.start) + 2.0, 45.0)))
}

/// One sentence on what to notice: at the smallest size (round trip) or the largest
/// (throughput), the best and the worst transport of the first placement measured.
fn caption(series: &[(&Line, Vec<(f64, f64)>)], which: Which) -> String {
    let Some(placement) = series.first().map(|(l, _)| l.placement) else {
        return String::new();
    };
    let lines: Vec<&(&Line, Vec<(f64, f64)>)> = series
        .iter()
        .filter(|(l, _)| l.placement == placement)
        .collect();
    // The smallest size (round trip) or the largest (throughput) that two or more transports
    // were measured at, else any.
    let mut sizes: Vec<f64> = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    if which == Which::Throughput {
        sizes.reverse();
    }
    let at_size = |size: f64| -> Vec<(&Line, f64)> {
        lines
            .iter()
            .filter_map(|(l, p)| Some((*l, p.iter().find(|q| q.0 == size)?.1)))
            .collect()
    };
    let Some(size) = sizes
        .iter()
        .copied()
        .find(|s| at_size(*s).len() >= 2)
        .or(sizes.first().copied())
    else {
        return String::new();
    };
    let at = at_size(size);
    // Best: the shortest round trip, the highest throughput.
    let better = |a: f64, b: f64| match which {
        Which::Latency => a < b,
        Which::Throughput => a > b,
    };
    let best = at.iter().fold(None, |m: Option<&(&Line, f64)>, x| match m {
        Some(m) if !better(x.1, m.1) => Some(m),
        _ => Some(x),
    });
    let worst = at.iter().fold(None, |m: Option<&(&Line, f64)>, x| match m {
        Some(m) if !better(m.1, x.1) => Some(m),
        _ => Some(x),
    });
    let (Some(best), Some(worst)) = (best, worst) else {
        return String::new();
    };
    let verb = match which {
        Which::Latency => "answers in",
        Which::Throughput => "moves",
    };
    let ratio = match which {
        Which::Latency => worst.1 / best.1,
        Which::Throughput => best.1 / worst.1,
    };
    format!(
        "At {} on {}, {} {verb} {} where {} {verb} {} ({ratio:.0}× apart){}.",
        bytes(size),
        placement.name().replace('-', " "),
        best.0.transport.name(),
        which.fmt(best.1),
        worst.0.transport.name(),
        which.fmt(worst.1),
        if series.iter().any(|(l, _)| l.placement != placement) {
            "; the other lines: the same transports placed otherwise (see the legend)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use channel::bench::{BenchReport, Machine, Row, Rtt};

    fn row(t: Transport, p: Placement, size: u64, median: f64, bytes_per_s: f64) -> Row {
        Row {
            transport: t,
            placement: p,
            size,
            rtt_ns: Rtt {
                median,
                p99: median * 2.0,
            },
            msgs_per_s: bytes_per_s / size as f64,
            bytes_per_s,
            futex: None,
        }
    }

    /// A small benchmark: the floor, ring-spin and pipe at three sizes on two CPUs, ring-wait
    /// and pipe on one.
    pub(crate) fn sample() -> BenchReport {
        use Placement::*;
        use Transport::*;
        let mut rows = vec![row(Cacheline, TwoCpus, 8, 390.0, 2e7)];
        for (i, size) in [64u64, 4096, 1 << 20].into_iter().enumerate() {
            let k = 10f64.powi(i as i32);
            rows.push(row(RingSpin, TwoCpus, size, 500.0 * k, 1e8 * k));
            rows.push(row(Pipe, TwoCpus, size, 30_000.0 * k, 1e7 * k));
            rows.push(row(RingWait, OneCpu, size, 4_000.0 * k, 1e7 * k));
            rows.push(row(Pipe, OneCpu, size, 4_000.0 * k, 5e7 * k));
        }
        BenchReport {
            machine: Machine {
                cpu_model: "Test CPU".into(),
                cpus_online: 2,
                cpus_allowed: vec![0, 1],
                kernel: "Linux test".into(),
            },
            rows,
            floor_runs: Vec::new(),
        }
    }

    /// A report's step 6 section: the sample's pictures, and findings in the `--json` shape.
    pub(crate) fn sample_report(mut report: lab_analysis::StepReport) -> super::super::Shown {
        let b = sample();
        report.findings = serde_json::json!({
            "goals": channel::bench::goals(&b),
            "ratios": channel::bench::ratios(&b),
        });
        let pictures = pictures(&Data::from_report(&b));
        super::super::Shown { report, pictures }
    }

    fn count(svg: &str, tag: &str) -> usize {
        svg.matches(&format!("<{tag}")).count()
    }

    #[test]
    fn one_line_per_transport_and_placement_on_log_scales() {
        let d = Data::from_report(&sample());
        assert_eq!(d.lines.len(), 5);
        assert_eq!(d.lines[1].points.len(), 3);
        assert!(d.lines[1].points.windows(2).all(|w| w[0].size < w[1].size));
        let pics = pictures(&d);
        assert_eq!(pics.len(), 2);
        let lat = pics[0].svg.as_ref().unwrap();
        for name in ["ring-spin", "ring-wait", "pipe", "cacheline", "one CPU"] {
            assert!(lat.contains(name), "{name}");
        }
        // 1 + 4 * 3 dots.
        assert_eq!(pics[0].marks, ("circle", 13));
        assert_eq!(pics[1].marks, ("circle", 13));
        assert!(
            pics[0].caption.starts_with(
                "At 64 B on two cpus, ring-spin answers in 500 ns where pipe answers in 30.0 µs \
                 (60× apart)"
            ),
            "{}",
            pics[0].caption
        );
        assert!(
            pics[1]
                .caption
                .starts_with("At 1 MiB on two cpus, ring-spin moves"),
            "{}",
            pics[1].caption
        );
        assert!(lat.contains("<g class=\"legend\">"));
        // Solid lines for two CPUs, dashes (many short segments) for one.
        assert!(count(lat, "polyline") >= 3);
    }

    #[test]
    fn missing_values_are_left_out_and_none_gives_a_reason() {
        let mut b = sample();
        b.rows[1].rtt_ns.median = f64::NAN;
        b.rows[2].rtt_ns.median = 0.0;
        assert_eq!(pictures(&Data::from_report(&b))[0].marks, ("circle", 11));
        b.rows.clear();
        for p in pictures(&Data::from_report(&b)) {
            let reason = p.svg.err().unwrap();
            assert!(reason.contains("no benchmark row"), "{reason}");
        }
    }
}
