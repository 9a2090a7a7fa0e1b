//! Step 1's pictures, drawn from their typed data (`lab_analysis::step1::picture`): request against chunk size
//! and mmap length with the threshold marked, and what `tcache_count=0` changed in free-bit.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{bounds, bytes, err, render, Picture, FONT, HEAP, MARK, MMAP, MMAP_LEN, OTHER_MODES};
use lab_analysis::step1::analyze::FreedInto;
use lab_analysis::step1::picture::{
    ChunkRow, ChunksPicture, FreeBitColumn, FreeBitPicture, Pictures,
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
    out
}

/// Step 1: request size (x) against chunk size and mmap length (y), both log scale; heap chunks
/// and mmapped chunks coloured, the threshold marked.
pub fn chunks(p: &ChunksPicture) -> Picture {
    const FILE: &str = "step1-chunks.svg";
    const TITLE: &str = "Request size against chunk size and mmap length";
    // A log scale needs positive values.
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
    let heap = rows.iter().filter(|r| !r.mmapped).count();
    let mapped = rows.len() - heap;
    let lens = rows.iter().filter(|r| r.mmap_len.is_some()).count();
    let xs = rows.iter().map(|r| r.request as f64).chain(threshold);
    let ys = rows
        .iter()
        .flat_map(|r| [Some(r.chunk_size), r.mmap_len, Some(r.request)])
        .flatten()
        .map(|v| v as f64);
    let ((xmin, xmax), (ymin, ymax)) = (bounds(xs), bounds(ys));
    let svg = render((900, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Step 1: malloc request vs chunk size and mmap length",
                (FONT, 20),
            )
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(
                (xmin / 1.6..xmax * 1.6).log_scale().base(4.0),
                (ymin / 1.6..ymax * 1.6).log_scale().base(4.0),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("request passed to malloc (bytes, log scale)")
            .y_desc("bytes (log scale)")
            .x_label_formatter(&|v| bytes(*v))
            .y_label_formatter(&|v| bytes(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(err)?;
        let grey = RGBColor(160, 160, 160);
        chart
            .draw_series(LineSeries::new([(xmin, xmin), (xmax, xmax)], grey))
            .map_err(err)?
            .label("size = request")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], grey));
        chart
            .draw_series(rows.iter().filter_map(|r| {
                r.mmap_len.map(|l| {
                    TriangleMarker::new((r.request as f64, l as f64), 9, MMAP_LEN.stroke_width(2))
                })
            }))
            .map_err(err)?
            .label(format!("length passed to mmap ({lens})"))
            .legend(|(x, y)| TriangleMarker::new((x + 8, y), 7, MMAP_LEN.stroke_width(2)));
        for (mmapped, colour, what, n) in
            [(false, HEAP, "heap", heap), (true, MMAP, "mmapped", mapped)]
        {
            chart
                .draw_series(rows.iter().filter(|r| r.mmapped == mmapped).map(|r| {
                    Circle::new((r.request as f64, r.chunk_size as f64), 4, colour.filled())
                }))
                .map_err(err)?
                .label(format!("chunk size, {what} chunk ({n})"))
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
        }
        if let Some(t) = threshold {
            chart
                .draw_series(LineSeries::new(
                    [(t, ymin / 1.5), (t, ymax * 1.5)],
                    MARK.stroke_width(2),
                ))
                .map_err(err)?;
            let (label, x, anchor) = threshold_label(t, p.threshold_chunk_size, (xmin, xmax));
            let style = (FONT, 17)
                .into_font()
                .color(&MARK)
                .pos(Pos::new(anchor, VPos::Bottom));
            chart
                .draw_series([Text::new(label, (x, ymin * 1.1), style)])
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
        file: FILE.into(),
        title: TITLE.into(),
        caption: chunks_caption(p, &rows, skipped),
        svg,
        marks: ("circle", rows.len()),
    }
}

/// The threshold line's label and where it goes: right of the line in the left half of the
/// picture, left of it otherwise.
fn threshold_label(t: f64, chunk: Option<u64>, (xmin, xmax): (f64, f64)) -> (String, f64, HPos) {
    let label = match chunk {
        Some(c) => format!("threshold: request {t:.0} B (chunk {c} B)"),
        None => format!("threshold: request {t:.0} B"),
    };
    let right_half = t.ln() - (xmin / 1.6).ln() > ((xmax * 1.6).ln() - (xmin / 1.6).ln()) / 2.0;
    if right_half {
        (label, t / 1.05, HPos::Right)
    } else {
        (label, t * 1.05, HPos::Left)
    }
}

fn chunks_caption(p: &ChunksPicture, rows: &[&ChunkRow], skipped: usize) -> String {
    let heap = rows.iter().filter(|r| !r.mmapped).count();
    let lens = rows.iter().filter(|r| r.mmap_len.is_some()).count();
    let mut caption = format!(
        "{} allocations: {heap} from the heap (blue), {} mmapped (red); {lens} with the length \
         malloc passed to mmap (orange triangles, around the red dot when the chunk size equals \
         it), paired from the strace.",
        rows.len(),
        rows.len() - heap
    );
    match p.threshold_request {
        Some(t) => caption.push_str(&format!(
            " The black line marks this run's threshold: a request of {t} bytes{}.",
            p.threshold_chunk_size
                .map(|c| format!(" (chunk size {c})"))
                .unwrap_or_default()
        )),
        None => caption.push_str(" This run's data gives no threshold, so none is marked."),
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
    let svg = render((1000, 300), |root| {
        let mut chart = ChartBuilder::on(root)
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
            .axis_desc_style((FONT, 15))
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
                let label_style = (FONT, 13)
                    .into_font()
                    .color(&colour)
                    .pos(Pos::new(HPos::Center, VPos::Top));
                chart
                    .draw_series([Text::new(into_label(into), (x, y - 0.18), label_style)])
                    .map_err(err)?;
            }
        }
        Ok(())
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

/// What the free-bit picture shows, with the requests whose free changed the bit in each run.
fn free_bit_caption(p: &FreeBitPicture) -> String {
    let changed = |row: fn(&FreeBitColumn) -> (bool, FreedInto)| -> Vec<String> {
        p.columns
            .iter()
            .filter(|c| c.then_malloc.is_none() && row(c).0)
            .map(|c| c.request.to_string())
            .collect()
    };
    let mut caption = format!(
        "A filled dot: free(malloc(x)) cleared A's in-use bit (PREV_INUSE in the next chunk's \
         tag); a ring: it changed nothing. The word under each dot says where free put A, \
         judged from what free wrote into A. Default run: the bit changed for x = {}; with \
         GLIBC_TUNABLES={}: for x = {}.",
        or_none(&changed(|c| c.default)),
        p.tunables,
        or_none(&changed(|c| c.no_tcache))
    );
    if let Some(c) = p.columns.iter().find(|c| c.then_malloc.is_some()) {
        let state = |(cleared, _): (bool, FreedInto)| if cleared { "cleared" } else { "still set" };
        caption.push_str(&format!(
            " Last column: A = malloc({}) freed, then malloc({}); the dot shows A's bit after \
             that malloc and the word where A was then — default run: {}; with GLIBC_TUNABLES={}: \
             {}.",
            c.request,
            c.then_malloc.unwrap_or(0),
            state(c.default),
            p.tunables,
            state(c.no_tcache)
        ));
    }
    caption
}

fn or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
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
        // 8 rows plus the two legend dots (heap, mmap; the triangle legend is a polygon).
        assert_eq!(count(svg, "circle"), 8 + 2);
        // 3 mmapped rows with a length, plus the legend's triangle.
        assert_eq!(count(svg, "polygon"), 3 + 1);
        assert!(svg.contains("threshold: request 131049 B (chunk 131072 B)"));
        assert!(p.caption.contains("5 from the heap"));
        assert!(p.caption.contains("3 mmapped"));
        assert_eq!(p.marks, ("circle", 8));
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
        assert!(p.caption.contains("gives no threshold"));
        assert!(p.caption.contains("2 rows are not drawn"));
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
        assert_eq!(count(svg, "circle"), 8);
        assert!(svg.contains(">\n24 + 10000\n<"), "{svg}");
        assert!(svg.contains("free(malloc(24)), then malloc(10000)"));
        assert!(p.caption.contains(
            "Last column: A = malloc(24) freed, then malloc(10000); the dot shows A's bit after \
             that malloc and the word where A was then — default run: still set; with \
             GLIBC_TUNABLES=glibc.malloc.tcache_count=0: cleared."
        ));
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
        assert!(p
            .caption
            .contains("Default run: the bit changed for x = 1048; with GLIBC_TUNABLES=glibc.malloc.tcache_count=0: for x = 1000, 1048."));
    }
}
