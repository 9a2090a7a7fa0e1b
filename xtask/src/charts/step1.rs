//! Step 1's pictures, drawn from their typed data (`lab_analysis::step1::picture`): request against chunk size
//! and mmap length with the threshold marked, and what `tcache_count=0` changed in free-bit.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    byte_unit, bytes, dot_mark, err, line_marks, place_legend, plot_rect, render, round_ticks,
    ticked, Legend, Picture, Swatch, FONT, HEAP, MARK, MMAP, OTHER_MODES,
};
use lab_analysis::step1::analyze::FreedInto;
use lab_analysis::step1::picture::{
    ChunkRow, ChunksPicture, FreeBitColumn, FreeBitPicture, Pictures, ThreadHeapPicture,
};

/// The pictures of step 1, drawn from their data: the chunk chart when the sweep ran, the
/// free-bit comparison when both free-bit runs did.
pub fn pictures(p: &Pictures) -> Vec<Picture> {
    let mut out = Vec::new();
    if let Some(c) = &p.chunks {
        out.push(chunks(c));
    }
    if let Some(f) = &p.free_bit {
        out.push(free_bit(f));
    }
    if let Some(t) = &p.thread_heap {
        out.push(thread_heap(t));
    }
    out
}

/// The shade of reserved, `PROT_NONE` address space.
const RESERVED: RGBColor = RGBColor(210, 210, 210);

/// A second thread's heap, to scale: its reservation as one bar, the read-write part in use at
/// its start (drawn at least a few pixels wide so it can be seen) and the `---p` rest.
pub fn thread_heap(p: &ThreadHeapPicture) -> Picture {
    const FILE: &str = "step1-thread-heap.svg";
    const TITLE: &str = "A second thread's heap: a small read-write part in a large reservation";
    if p.reservation_bytes == 0 || p.rw_bytes > p.reservation_bytes {
        return Picture::none(
            FILE,
            TITLE,
            format!(
                "the heap's read-write part ({} bytes) does not fit its reservation ({} bytes)",
                p.rw_bytes, p.reservation_bytes
            ),
        );
    }
    let (left, right, width) = (40i32, 1060i32, 1100u32);
    let span = f64::from(right - left);
    let rw_px = ((p.rw_bytes as f64 / p.reservation_bytes as f64) * span).max(4.0) as i32;
    let svg = render((width, 260), |root| {
        let font = |px: f64| (FONT, px).into_font();
        root.draw(&Text::new(TITLE, (left, 12), font(20.0)))
            .map_err(err)?;
        let (top, bottom) = (70, 130);
        root.draw(&Rectangle::new(
            [(left, top), (left + rw_px, bottom)],
            HEAP.filled(),
        ))
        .map_err(err)?;
        root.draw(&Rectangle::new(
            [(left + rw_px, top), (right, bottom)],
            RESERVED.filled(),
        ))
        .map_err(err)?;
        root.draw(&Rectangle::new(
            [(left, top), (right, bottom)],
            MARK.stroke_width(1),
        ))
        .map_err(err)?;
        let label = |text: String, x: i32, y: i32, h: HPos| {
            Text::new(
                text,
                (x, y),
                font(14.0).color(&MARK).pos(Pos::new(h, VPos::Top)),
            )
        };
        root.draw(&label(
            format!("{:#x}: rw-p, {} in use", p.start, bytes(p.rw_bytes as f64)),
            left,
            bottom + 8,
            HPos::Left,
        ))
        .map_err(err)?;
        root.draw(&label(
            format!(
                "---p: reserved, not usable yet — {} in all up to {:#x}",
                bytes(p.reservation_bytes as f64),
                p.start + p.reservation_bytes
            ),
            right,
            bottom + 30,
            HPos::Right,
        ))
        .map_err(err)?;
        let bit = |set: bool| if set { "set" } else { "clear" };
        root.draw(&label(
            format!(
                "NON_MAIN_ARENA: {} in the second thread's chunk, {} in the main thread's",
                bit(p.a_bit_thread),
                bit(p.a_bit_main)
            ),
            left,
            top - 28,
            HPos::Left,
        ))
        .map_err(err)?;
        let legend = Legend::new(13.0)
            .add(Swatch::Fill(HEAP), "rw-p: read-write, the heap in use")
            .add(
                Swatch::Fill(RESERVED),
                "---p: reserved (PROT_NONE), not usable yet",
            );
        Ok(legend.svg((f64::from(left), f64::from(bottom) + 58.0)))
    });
    let caption = format!(
        "The second thread's arena lives in an mmapped heap of its own: {} read-write at {:#x}, \
         inside a reservation of {} ({:.2}% in use) that the kernel will not back until glibc \
         makes more of it read-write.",
        bytes(p.rw_bytes as f64),
        p.start,
        bytes(p.reservation_bytes as f64),
        100.0 * p.rw_bytes as f64 / p.reservation_bytes as f64
    );
    Picture {
        file: FILE.into(),
        title: TITLE.into(),
        caption,
        svg,
        marks: ("rect", 3),
    }
}

/// The shade of the zoomed window on the whole sweep.
const ZOOM: RGBColor = RGBColor(255, 236, 179);

/// How many bytes malloc took beyond the request: the mapping's length (or, without one, the
/// chunk size) minus the request; negative if odd data says less.
fn over(r: &ChunkRow) -> f64 {
    let taken = if r.mmapped {
        r.mmap_len.unwrap_or(r.chunk_size)
    } else {
        r.chunk_size
    };
    taken as f64 - r.request as f64
}

/// A byte count near a round KiB: `128 KiB − 23 B`, `64 KiB + 8 B`, `4 KiB`.
fn near_kib(v: u64) -> String {
    let k = ((v as f64 / 1024.0).round() as u64).max(1) * 1024;
    match v.cmp(&k) {
        std::cmp::Ordering::Equal => bytes(k as f64),
        std::cmp::Ordering::Less => format!("{} − {} B", bytes(k as f64), k - v),
        std::cmp::Ordering::Greater => format!("{} + {} B", bytes(k as f64), v - k),
    }
}

/// The zoomed panel's window: 1 KiB before the threshold to 7 KiB after it, where the fine
/// sweep lies.
fn zoom_window(t: f64) -> (f64, f64) {
    ((t - 1024.0).max(0.0), t + 7.0 * 1024.0)
}

/// Step 1: what malloc took beyond the request (L − x, linear) against the request, over the
/// whole sweep and zoomed on the threshold where the fine sweep lies; heap and mmapped chunks
/// coloured, the threshold marked.
pub fn chunks(p: &ChunksPicture) -> Picture {
    const FILE: &str = "step1-chunks.svg";
    const TITLE: &str = "What malloc takes beyond the request: L − x against the request x";
    let rows: Vec<&ChunkRow> = p
        .rows
        .iter()
        .filter(|r| r.request > 0 && r.chunk_size > 0)
        .collect();
    if rows.is_empty() {
        return Picture::none(
            FILE,
            TITLE,
            format!("step 1 has no allocation to draw ({} rows)", p.rows.len()),
        );
    }
    let skipped = p.skipped + p.rows.len() - rows.len();
    let threshold = p.threshold_request.map(|t| t as f64);
    let xmax = rows
        .iter()
        .map(|r| r.request as f64)
        .chain(threshold)
        .fold(1.0, f64::max)
        * 1.04;
    let ymax = rows.iter().map(|r| over(r)).fold(16.0, f64::max) * 1.25;
    let ymin = rows.iter().map(|r| over(r)).fold(0.0, f64::min);
    let zoom = threshold.map(zoom_window);
    let in_zoom = |r: &&ChunkRow, (lo, hi): (f64, f64)| {
        let x = r.request as f64;
        x >= lo && x <= hi
    };
    let zoomed = zoom.map_or(0, |w| rows.iter().filter(|r| in_zoom(r, w)).count());
    let svg = render((1100, 520), |root| {
        root.draw(&Text::new(
            "Step 1: bytes malloc takes beyond the request (mmap length or chunk size − request)",
            (20, 10),
            (FONT, 19).into_font(),
        ))
        .map_err(err)?;
        let body = root.margin(30, 0, 0, 0);
        let (left, right) = match zoom {
            Some(_) => body.split_horizontally(560),
            None => (body.clone(), body.margin(0, 0, 0, 1100)),
        };
        let mut legend_at = None;
        let mut marks_px = Vec::new();
        let mut panels = vec![(left, (0.0, xmax), "the whole sweep")];
        if let Some(w) = zoom {
            panels.push((right, w, "zoomed on the threshold"));
        }
        for (i, (area, window, what)) in panels.iter().enumerate() {
            let panel = Panel {
                window: *window,
                y: (ymin, ymax),
                threshold,
                // The whole sweep shows where the zoom is, and holds the legend.
                zoom: zoom.filter(|_| i == 0),
            };
            let plot = panel.draw(area, what, &rows, &mut marks_px)?;
            if i == 0 {
                legend_at = Some(plot);
            }
        }
        let mut legend = Legend::new(13.0)
            .add(Swatch::Dot(HEAP), "heap chunk: chunk size − x")
            .add(Swatch::Dot(MMAP), "mmapped: mmap length − x");
        if let Some(t) = p.threshold_request {
            legend = legend.add(Swatch::Line(MARK), format!("threshold: x = {t} B"));
        }
        if zoom.is_some() {
            legend = legend.add(Swatch::Fill(ZOOM), "zoomed on the right");
        }
        let at = place_legend(
            legend_at.unwrap_or((0.0, 0.0, 500.0, 400.0)),
            legend.size(),
            &marks_px,
        );
        Ok(legend.svg(at))
    });
    Picture {
        file: FILE.into(),
        title: TITLE.into(),
        caption: chunks_caption(p, &rows, skipped, zoomed),
        svg,
        marks: ("circle", rows.len()),
    }
}

/// One panel of the chunk chart: L − x over a window of requests.
struct Panel {
    window: (f64, f64),
    y: (f64, f64),
    threshold: Option<f64>,
    /// The zoom window to shade; set on the panel that holds the legend, whose marks are
    /// collected for placing it.
    zoom: Option<(f64, f64)>,
}

impl Panel {
    /// Draws the panel; returns its plotting area, and adds what it drew to `marks` when it
    /// holds the legend.
    fn draw(
        &self,
        area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
        what: &str,
        rows: &[&ChunkRow],
        marks: &mut Vec<super::Rect>,
    ) -> Result<super::Rect, String> {
        let ((x0, x1), (ymin, ymax)) = (self.window, self.y);
        let whole = self.zoom.is_some();
        let xt = round_ticks(x0, x1, byte_unit(x1), 6);
        let yt = round_ticks(ymin, ymax, byte_unit(ymax), 6);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{what} (linear)"), (FONT, 16))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(if whole { 70 } else { 60 })
            .build_cartesian_2d(ticked(x0, x1, xt), ticked(ymin, ymax, yt))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("request x passed to malloc")
            .y_desc("L − x (bytes beyond the request)")
            .x_label_formatter(&|v| bytes(*v))
            .y_label_formatter(&|v| bytes(*v))
            .bold_line_style(RGBColor(225, 225, 225))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(err)?;
        let px = |chart: &plotters::chart::ChartContext<'_, _, _>, a: (f64, f64), b: (f64, f64)| {
            let (a, b): ((i32, i32), (i32, i32)) =
                (chart.backend_coord(&a), chart.backend_coord(&b));
            (a, b)
        };
        if let Some(w) = self.zoom {
            chart
                .draw_series([Rectangle::new(
                    [(w.0, ymin), (w.1, ymax)],
                    ZOOM.mix(0.6).filled(),
                )])
                .map_err(err)?;
            let (a, b) = px(&chart, (w.0, ymax), (w.1, ymin));
            let f = f64::from;
            marks.push((f(a.0), f(a.1), f(b.0), f(b.1)));
        }
        if let Some(t) = self.threshold {
            chart
                .draw_series(LineSeries::new(
                    [(t, ymin), (t, ymax)],
                    MARK.stroke_width(2),
                ))
                .map_err(err)?;
            if whole {
                let (a, b) = px(&chart, (t, ymin), (t, ymax));
                marks.extend(line_marks(&[a, b], 2.0));
            }
        }
        let size = if whole { 4 } else { 3 };
        for r in rows {
            let at = (r.request as f64, over(r));
            if at.0 < x0 || at.0 > x1 {
                continue;
            }
            let colour = if r.mmapped { MMAP } else { HEAP };
            chart
                .draw_series([Circle::new(at, size, colour.filled())])
                .map_err(err)?;
            if whole {
                marks.push(dot_mark(chart.backend_coord(&at), 6.0));
            }
        }
        Ok(plot_rect(&chart))
    }
}

/// One sentence on what to notice, from the data: where the switch happens and what each side
/// takes beyond the request.
fn chunks_caption(p: &ChunksPicture, rows: &[&ChunkRow], skipped: usize, zoomed: usize) -> String {
    let range = |mmapped: bool| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.mmapped == mmapped)
            .map(|r| over(r))
            .collect();
        let lo = v.iter().copied().fold(f64::MAX, f64::min);
        let hi = v.iter().copied().fold(f64::MIN, f64::max);
        (!v.is_empty()).then_some((lo, hi))
    };
    let span = |(lo, hi): (f64, f64)| {
        if lo == hi {
            bytes(lo)
        } else {
            format!("{} to {}", bytes(lo), bytes(hi))
        }
    };
    let heap = range(false);
    let mapped = range(true);
    let mut caption = match (p.threshold_request, mapped) {
        (Some(t), Some(m)) => format!(
            "The switch to mmap happens at a request of {t} B ({}): from there malloc maps the \
             request plus its header rounded up to whole pages, so the mapping exceeds the \
             request by {} in a saw-tooth that falls as x grows within a page{}.",
            near_kib(t),
            span(m),
            heap.map(|h| format!(", while a heap chunk takes only {} more", span(h)))
                .unwrap_or_default()
        ),
        (None, Some(m)) => format!(
            "No threshold was measured; the mmapped chunks take {} beyond the request.",
            span(m)
        ),
        (_, None) => "No request was mmapped in this sweep, so the switch to mmap was not \
                      measured here."
            .to_string(),
    };
    if zoomed > 0 {
        caption.push_str(&format!(
            " Right: the {zoomed} requests within 1 KiB before and 7 KiB after the threshold."
        ));
    }
    if skipped > 0 {
        caption.push_str(&format!(
            " {skipped} rows are not drawn (no size or region)."
        ));
    }
    caption
}

fn into_colour(i: FreedInto) -> RGBColor {
    match i {
        FreedInto::Bin => MMAP,
        FreedInto::Tcache => OTHER_MODES[1],
        FreedInto::Fastbin => OTHER_MODES[0],
        FreedInto::Unclear => MARK,
    }
}

fn into_label(i: FreedInto) -> &'static str {
    match i {
        FreedInto::Bin => "bin",
        FreedInto::Tcache => "tcache",
        FreedInto::Fastbin => "fastbin",
        FreedInto::Unclear => "?",
    }
}

/// Two rows of dots, one per request: filled where free(A) cleared A's in-use bit, hollow where
/// it changed nothing, coloured by where free put A.
pub fn free_bit(p: &FreeBitPicture) -> Picture {
    const FILE: &str = "step1-free-bit.svg";
    const TITLE: &str = "free(A): did A's in-use bit change, with and without the tcache?";
    if p.columns.is_empty() {
        return Picture::none(FILE, TITLE, "free-bit made no attempt in both runs".into());
    }
    let n = p.columns.len();
    let rows = [("default", 1.0), ("tcache_count=0", 0.0)];
    let large = p.columns.iter().find(|c| c.then_malloc.is_some());
    let x_desc = match large {
        Some(c) => format!(
            "request x (chunk size); \"{}\": free(malloc({})), then malloc({})",
            c.label(),
            c.request,
            c.then_malloc.unwrap_or(0)
        ),
        None => "request x (chunk size)".to_string(),
    };
    let svg = render((1100, 300), |root| {
        let (plot, side) = root.split_horizontally(890);
        let mut chart = ChartBuilder::on(&plot)
            .caption(TITLE, (FONT, 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(130)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, -0.6..1.6)
            .map_err(err)?;
        let columns = p.columns.clone();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n)
            .y_labels(2)
            .x_desc(x_desc.as_str())
            .x_label_formatter(&|v| {
                let i = v.round();
                match columns.get(i as usize) {
                    Some(c) if (v - i).abs() < 0.01 && i >= 0.0 => c.label(),
                    _ => String::new(),
                }
            })
            .y_label_formatter(
                &|v: &f64| match rows.iter().find(|r| (r.1 - *v).abs() < 0.01) {
                    Some(r) => r.0.to_string(),
                    None => String::new(),
                },
            )
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (i, c) in p.columns.iter().enumerate() {
            for ((changed, into), y) in [(c.default, 1.0), (c.no_tcache, 0.0)] {
                let colour = into_colour(into);
                let style = if changed {
                    colour.filled()
                } else {
                    colour.stroke_width(3)
                };
                let x = i as f64;
                chart
                    .draw_series([Circle::new((x, y), 9, style)])
                    .map_err(err)?;
                let label_style = (FONT, 14)
                    .into_font()
                    .color(&colour)
                    .pos(Pos::new(HPos::Center, VPos::Top));
                chart
                    .draw_series([Text::new(into_label(into), (x, y - 0.18), label_style)])
                    .map_err(err)?;
            }
        }
        let mut legend = Legend::new(13.0)
            .add(Swatch::Dot(MARK), "in-use bit cleared")
            .add(Swatch::Ring(MARK), "bit unchanged");
        for into in [FreedInto::Tcache, FreedInto::Fastbin, FreedInto::Bin] {
            let used = p
                .columns
                .iter()
                .any(|c| c.default.1 == into || c.no_tcache.1 == into);
            if used {
                legend = legend.add(
                    Swatch::Fill(into_colour(into)),
                    format!("A went to: {}", into_label(into)),
                );
            }
        }
        let (xs, _) = side.get_pixel_range();
        Ok(legend.svg((f64::from(xs.start) + 4.0, 40.0)))
    });
    let caption = free_bit_caption(p);
    Picture {
        file: FILE.into(),
        title: TITLE.into(),
        caption,
        svg,
        marks: ("circle", 2 * n),
    }
}

/// One sentence on what to notice: from which request free cleared the bit in each run.
fn free_bit_caption(p: &FreeBitPicture) -> String {
    let first = |row: fn(&FreeBitColumn) -> (bool, FreedInto)| -> Option<u64> {
        p.columns
            .iter()
            .filter(|c| c.then_malloc.is_none() && row(c).0)
            .map(|c| c.request)
            .min()
    };
    let from = |v: Option<u64>| v.map_or("for no request".to_string(), |x| format!("from x = {x}"));
    let mut caption = format!(
        "free(A) clears A's in-use bit only when A goes to a bin: with the tcache {}, with \
         {} {}; below that A sits in the tcache or a fastbin and keeps its bit set.",
        from(first(|c| c.default)),
        p.tunables,
        from(first(|c| c.no_tcache))
    );
    if let Some(c) = p.columns.iter().find(|c| c.then_malloc.is_some()) {
        let state = |(cleared, _): (bool, FreedInto)| if cleared { "cleared" } else { "still set" };
        caption.push_str(&format!(
            " Last column: after free(malloc({})) and then malloc({}), A's bit is {} with the \
             tcache and {} without.",
            c.request,
            c.then_malloc.unwrap_or(0),
            state(c.default),
            state(c.no_tcache)
        ));
    }
    caption
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The sweep of the report's sample: eight requests, the threshold at 131049.
    pub(crate) fn sample_picture() -> ChunksPicture {
        let rows = [
            24u64,
            1000,
            65_536,
            131_000,
            131_048,
            131_049,
            200_000,
            1 << 20,
        ]
        .into_iter()
        .map(|request| {
            let mmapped = request >= 131_049;
            let chunk_size = if mmapped {
                (request + 16 + 4095) & !4095
            } else {
                (request + 8 + 15) & !15
            };
            ChunkRow {
                request,
                chunk_size,
                mmapped,
                mmap_len: mmapped.then_some(chunk_size),
            }
        })
        .collect();
        ChunksPicture {
            rows,
            skipped: 0,
            threshold_request: Some(131_049),
            threshold_chunk_size: Some(131_072),
        }
    }

    /// Step 1's entry in the report's sample: the shared synthetic narrative `report`, with
    /// findings and the chunk picture from typed data.
    pub(crate) fn sample_report(mut report: lab_analysis::StepReport) -> super::super::Shown {
        let p = sample_picture();
        report.findings = serde_json::json!({
            "threshold_request": p.threshold_request,
            "threshold_chunk_size": p.threshold_chunk_size,
            "prev_inuse_bit": 0,
            "is_mmapped_bit": 1,
        });
        let pictures = vec![chunks(&p)];
        super::super::Shown { report, pictures }
    }

    fn count(svg: &str, tag: &str) -> usize {
        svg.matches(&format!("<{tag}")).count()
    }

    #[test]
    fn one_dot_per_row_and_the_threshold_marked() {
        let p = chunks(&sample_picture());
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.starts_with("<svg"));
        // 8 rows on the whole sweep, the 3 within the zoom window again, 2 legend dots.
        assert_eq!(count(svg, "circle"), 8 + 3 + 2);
        assert!(svg.contains("threshold: x = 131049 B"));
        assert!(svg.contains("<g class=\"legend\">"));
        // Linear, round ticks: the whole sweep in 200 KiB steps, the zoom in 2 KiB steps.
        for tick in [
            "\n200 KiB\n",
            "\n1000 KiB\n",
            "\n128 KiB\n",
            "\n130 KiB\n",
            "\n4 KiB\n",
        ] {
            assert!(svg.contains(tick), "{tick:?}");
        }
        assert!(!svg.contains("log scale"));
        assert!(p
            .caption
            .starts_with("The switch to mmap happens at a request of 131049 B (128 KiB − 23 B)"));
        // The range comes from the data: the sample's mmapped rows take 23 B (131049 in a
        // 128 KiB chunk) to 4 KiB (1 MiB + 16, rounded up) more.
        assert!(
            p.caption.contains("exceeds the request by 23 B to 4 KiB"),
            "{}",
            p.caption
        );
        assert!(
            p.caption
                .contains("a heap chunk takes only 8 B to 16 B more"),
            "{}",
            p.caption
        );
        assert!(p.caption.contains("the 3 requests within 1 KiB before"));
        assert_eq!(p.marks, ("circle", 8));
    }

    #[test]
    fn near_kib_names_the_offset() {
        assert_eq!(near_kib(131_049), "128 KiB − 23 B");
        assert_eq!(near_kib(65_544), "64 KiB + 8 B");
        assert_eq!(near_kib(4096), "4 KiB");
    }

    #[test]
    fn without_threshold_it_says_so_and_odd_rows_are_counted() {
        let mut d = sample_picture();
        d.threshold_request = None;
        d.rows.push(ChunkRow {
            request: 0,
            chunk_size: 0,
            mmapped: false,
            mmap_len: None,
        });
        d.skipped = 1;
        let p = chunks(&d);
        let svg = p.svg.as_ref().unwrap();
        assert!(!svg.contains("threshold"));
        assert!(p.caption.starts_with("No threshold was measured"));
        assert!(p.caption.contains("2 rows are not drawn"));
        // No mmapped row: the switch was not measured, said as such.
        d.rows.retain(|r| !r.mmapped);
        let p = chunks(&d);
        assert!(
            p.caption.contains("switch to mmap was not measured"),
            "{}",
            p.caption
        );
    }

    #[test]
    fn nothing_to_draw_gives_no_picture_with_a_reason() {
        let p = chunks(&ChunksPicture {
            rows: Vec::new(),
            skipped: 0,
            threshold_request: None,
            threshold_chunk_size: None,
        });
        assert!(p.svg.unwrap_err().contains("no allocation to draw"));
        let f = free_bit(&FreeBitPicture {
            tunables: "x".into(),
            columns: Vec::new(),
        });
        assert!(f.svg.unwrap_err().contains("no attempt"));
    }

    #[test]
    fn free_bit_draws_both_runs_and_names_the_bins() {
        let col = |request, chunk_size, default, no_tcache| FreeBitColumn {
            request,
            chunk_size,
            then_malloc: None,
            default,
            no_tcache,
        };
        let p = free_bit(&FreeBitPicture {
            tunables: "glibc.malloc.tcache_count=0".into(),
            columns: vec![
                col(
                    24,
                    32,
                    (false, FreedInto::Tcache),
                    (false, FreedInto::Fastbin),
                ),
                col(
                    1000,
                    1008,
                    (false, FreedInto::Tcache),
                    (true, FreedInto::Bin),
                ),
                col(1048, 1056, (true, FreedInto::Bin), (true, FreedInto::Bin)),
                FreeBitColumn {
                    then_malloc: Some(10_000),
                    ..col(24, 32, (false, FreedInto::Tcache), (true, FreedInto::Bin))
                },
            ],
        });
        let svg = p.svg.as_ref().unwrap();
        assert_eq!(p.marks, ("circle", 8));
        // 8 dots and the legend's two (filled, ring).
        assert_eq!(count(svg, "circle"), 8 + 2);
        assert!(svg.contains(">\n24 + 10000\n<"), "{svg}");
        assert!(svg.contains("free(malloc(24)), then malloc(10000)"));
        assert!(svg.contains("A went to: fastbin</text>"));
        assert_eq!(
            p.caption,
            "free(A) clears A's in-use bit only when A goes to a bin: with the tcache from x = \
             1048, with glibc.malloc.tcache_count=0 from x = 1000; below that A sits in the \
             tcache or a fastbin and keeps its bit set. Last column: after free(malloc(24)) and \
             then malloc(10000), A's bit is still set with the tcache and cleared without."
        );
        for word in [
            "\nfastbin\n",
            "\ntcache\n",
            "\nbin\n",
            "\ndefault\n",
            "\ntcache_count=0\n",
        ] {
            assert!(svg.contains(word), "{word:?}");
        }
        assert!(svg.contains("1000 (1008)"));
    }
}
