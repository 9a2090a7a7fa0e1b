//! Step 1's picture: request against chunk size and mmap length, threshold marked.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// Step 1

struct ChunkRow {
    request: f64,
    chunk: f64,
    mmap: bool,
    mmap_len: Option<f64>,
}

/// Step 1: request size (x) against chunk size and mmap length (y), both log scale; heap chunks
/// and mmapped chunks coloured, the threshold marked.
pub(super) fn step1_chunks(data: &Value) -> Picture {
    const FILE: &str = "step1-chunks.svg";
    const TITLE: &str = "Request size against chunk size and mmap length";
    let Some(raw) = data.get("rows").and_then(Value::as_array) else {
        return Picture::none(FILE, TITLE, "step 1 data has no `rows` list".into());
    };
    let mut skipped = 0;
    let rows: Vec<ChunkRow> = raw
        .iter()
        .filter_map(|r| {
            let row = (|| {
                let request = num(r.get("request")?)?;
                let chunk = num(r.get("chunk_size")?)?;
                let mmap = match r.get("region")?.as_str()? {
                    "heap" => false,
                    "mmap" => true,
                    _ => return None,
                };
                let mmap_len = r.get("mmap_len").and_then(num).filter(|v| *v > 0.0);
                (request > 0.0 && chunk > 0.0).then_some(ChunkRow {
                    request,
                    chunk,
                    mmap,
                    mmap_len,
                })
            })();
            if row.is_none() {
                skipped += 1;
            }
            row
        })
        .collect();
    if rows.is_empty() {
        return Picture::none(
            FILE,
            TITLE,
            format!(
                "step 1 data has no usable rows ({} rows, none with request, chunk_size and region \
                 heap/mmap)",
                raw.len()
            ),
        );
    }
    let threshold = data.get("threshold_request").and_then(num);
    let threshold_chunk = data.get("threshold_chunk_size").and_then(num);
    let heap = rows.iter().filter(|r| !r.mmap).count();
    let mapped = rows.len() - heap;
    let lens = rows.iter().filter(|r| r.mmap_len.is_some()).count();

    let xs = rows.iter().map(|r| r.request).chain(threshold);
    let ys = rows
        .iter()
        .flat_map(|r| [Some(r.chunk), r.mmap_len, Some(r.request)])
        .flatten();
    let (xmin, xmax) = bounds(xs);
    let (ymin, ymax) = bounds(ys);
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
        chart
            .draw_series(LineSeries::new(
                [(xmin, xmin), (xmax, xmax)],
                RGBColor(160, 160, 160),
            ))
            .map_err(err)?
            .label("size = request")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RGBColor(160, 160, 160)));
        chart
            .draw_series(rows.iter().filter_map(|r| {
                r.mmap_len
                    .map(|l| TriangleMarker::new((r.request, l), 9, MMAP_LEN.stroke_width(2)))
            }))
            .map_err(err)?
            .label(format!("length passed to mmap ({lens})"))
            .legend(|(x, y)| TriangleMarker::new((x + 8, y), 7, MMAP_LEN.stroke_width(2)));
        chart
            .draw_series(
                rows.iter()
                    .filter(|r| !r.mmap)
                    .map(|r| Circle::new((r.request, r.chunk), 4, HEAP.filled())),
            )
            .map_err(err)?
            .label(format!("chunk size, heap chunk ({heap})"))
            .legend(|(x, y)| Circle::new((x + 8, y), 4, HEAP.filled()));
        chart
            .draw_series(
                rows.iter()
                    .filter(|r| r.mmap)
                    .map(|r| Circle::new((r.request, r.chunk), 4, MMAP.filled())),
            )
            .map_err(err)?
            .label(format!("chunk size, mmapped chunk ({mapped})"))
            .legend(|(x, y)| Circle::new((x + 8, y), 4, MMAP.filled()));
        if let Some(t) = threshold {
            chart
                .draw_series(LineSeries::new(
                    [(t, ymin / 1.5), (t, ymax * 1.5)],
                    MARK.stroke_width(2),
                ))
                .map_err(err)?;
            let label = match threshold_chunk {
                Some(c) => format!("threshold: request {t:.0} B (chunk {c:.0} B)"),
                None => format!("threshold: request {t:.0} B"),
            };
            // Right of the line in the left half of the picture, left of it otherwise.
            let right_half =
                t.ln() - (xmin / 1.6).ln() > ((xmax * 1.6).ln() - (xmin / 1.6).ln()) / 2.0;
            let (x, anchor) = if right_half {
                (t / 1.05, HPos::Right)
            } else {
                (t * 1.05, HPos::Left)
            };
            chart
                .draw_series([Text::new(
                    label,
                    (x, ymin * 1.1),
                    (FONT, 17)
                        .into_font()
                        .color(&MARK)
                        .pos(Pos::new(anchor, VPos::Bottom)),
                )])
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
    let mut caption = format!(
        "{} allocations: {heap} from the heap (blue), {mapped} mmapped (red); {lens} with the \
         length malloc passed to mmap (orange triangles, around the red dot when the chunk size \
         equals it), paired from the strace.",
        rows.len()
    );
    match threshold {
        Some(t) => caption.push_str(&format!(
            " The black line marks this run's threshold: a request of {t:.0} bytes{}.",
            threshold_chunk
                .map(|c| format!(" (chunk size {c:.0})"))
                .unwrap_or_default()
        )),
        None => caption.push_str(" This run's data gives no threshold, so none is marked."),
    }
    if skipped > 0 {
        caption.push_str(&format!(
            " {skipped} rows lacked a field and are not drawn."
        ));
    }
    Picture {
        file: FILE.into(),
        title: TITLE.into(),
        caption,
        svg,
        marks: ("circle", rows.len()),
    }
}
