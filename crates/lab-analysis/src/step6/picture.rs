//! The data of step 6's pictures, built from the benchmark's rows in the evidence (xtask draws
//! them): the median round trip and the one-way throughput against message size, one line per
//! transport and placement.

use channel::bench::{BenchReport, Placement, Transport};

/// What the pictures show: one line per transport and placement.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub transport: Transport,
    pub placement: Placement,
    /// By increasing size.
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub size: u64,
    pub rtt_median_ns: f64,
    pub bytes_per_s: f64,
}

impl Data {
    pub fn from_report(report: &BenchReport) -> Data {
        let mut lines: Vec<Line> = Vec::new();
        for r in &report.rows {
            let point = Point {
                size: r.size,
                rtt_median_ns: r.rtt_ns.median,
                bytes_per_s: r.bytes_per_s,
            };
            match lines
                .iter_mut()
                .find(|l| l.transport == r.transport && l.placement == r.placement)
            {
                Some(l) => l.points.push(point),
                None => lines.push(Line {
                    transport: r.transport,
                    placement: r.placement,
                    points: vec![point],
                }),
            }
        }
        for l in &mut lines {
            l.points.sort_by_key(|p| p.size);
        }
        Data { lines }
    }
}
