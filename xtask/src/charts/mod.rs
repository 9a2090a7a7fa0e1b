//! The report's pictures, drawn as SVG with `plotters` from a step's picture data (built by
//! `lab_analysis::stepN::picture` from the findings; nothing here decides anything). A missing or odd field gives "no picture" with the reason,
//! never a panic.

use plotters::coord::Shift;
use plotters::prelude::*;

pub mod step1;
pub mod step2;
pub mod step3;
pub mod step4;
pub mod step5;
pub mod step6;

/// A step's report with its pictures, as the terminal and the HTML report show it.
pub struct Shown {
    pub report: lab_analysis::StepReport,
    pub pictures: Vec<Picture>,
}

/// One picture: the SVG, or why there is none.
pub struct Picture {
    /// The file name the Markdown twin links (`step1-chunks.svg`).
    pub file: String,
    pub title: String,
    /// What the picture shows, with counts computed from the data.
    pub caption: String,
    /// The SVG document, or the reason there is no picture.
    pub svg: Result<String, String>,
    /// The browser check: CSS selector of the data marks and how many must be drawn.
    pub marks: (&'static str, usize),
}

impl Picture {
    fn none(file: &str, title: &str, reason: String) -> Picture {
        Picture {
            file: file.into(),
            title: title.into(),
            caption: String::new(),
            svg: Err(reason),
            marks: ("*", 0),
        }
    }
}

const HEAP: RGBColor = RGBColor(31, 119, 180);
const MMAP: RGBColor = RGBColor(214, 39, 40);
const MMAP_LEN: RGBColor = RGBColor(255, 127, 14);
const MARK: RGBColor = RGBColor(40, 40, 40);
const OTHER_MODES: [RGBColor; 3] = [
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
const FONT: &str = "sans-serif";

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing failed: {e}")
}

/// Bytes for an axis label: 4 KiB, 128 KiB, 1.5 MiB.
pub fn bytes(v: f64) -> String {
    if v >= 1024.0 * 1024.0 {
        let m = v / (1024.0 * 1024.0);
        if (m - m.round()).abs() < 0.05 {
            format!("{m:.0} MiB")
        } else {
            format!("{m:.1} MiB")
        }
    } else if v >= 1024.0 {
        let k = v / 1024.0;
        if (k - k.round()).abs() < 0.05 {
            format!("{k:.0} KiB")
        } else {
            format!("{k:.1} KiB")
        }
    } else {
        format!("{v:.0} B")
    }
}

/// Draws a picture; `draw` returns SVG markup of its own (the legend) laid over the drawing.
fn render(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<String, String>,
) -> Result<String, String> {
    let mut buf = String::new();
    let overlay;
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        overlay = draw(&root)?;
        root.present().map_err(err)?;
    }
    match buf.rfind("</svg>") {
        Some(end) => buf.insert_str(end, &overlay),
        None => return Err("drawing failed: the SVG has no end tag".into()),
    }
    Ok(buf)
}

/// Round tick positions in `[lo, hi]`: the multiples of a step of 1, 2 or 5 × 10^k `unit`s,
/// the smallest such step that gives at most `max` ticks. Empty for an empty or odd range.
pub fn round_ticks(lo: f64, hi: f64, unit: f64, max: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && unit.is_finite() && unit > 0.0 && hi > lo) {
        return Vec::new();
    }
    let max = max.max(1) as f64;
    let span = (hi - lo) / unit;
    let mut k = (span / max).log10().floor() as i32 - 1;
    loop {
        for m in [1.0, 2.0, 5.0] {
            let step = unit * m * 10f64.powi(k);
            let (first, last) = ((lo / step).ceil(), (hi / step).floor());
            if last - first + 1.0 <= max {
                return (first as i64..=last as i64)
                    .map(|i| i as f64 * step)
                    .collect();
            }
        }
        k += 1;
    }
}

/// A linear axis whose ticks (and grid lines) are exactly the given values.
pub struct Ticked {
    range: plotters::coord::types::RangedCoordf64,
    ticks: Vec<f64>,
}

/// A linear axis over `lo..hi` ticked at `ticks` (from [`round_ticks`]).
pub fn ticked(lo: f64, hi: f64, ticks: Vec<f64>) -> Ticked {
    Ticked {
        range: (lo..hi).into(),
        ticks,
    }
}

impl plotters::coord::ranged1d::Ranged for Ticked {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.range.map(value, limit)
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // The ticks only: no light grid between them.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.range.range()
    }
}

/// The unit a byte axis reaching `hi` counts in: MiB from 2 MiB, KiB from 2 KiB, else bytes.
pub fn byte_unit(hi: f64) -> f64 {
    if hi >= 2.0 * 1024.0 * 1024.0 {
        1024.0 * 1024.0
    } else if hi >= 2.0 * 1024.0 {
        1024.0
    } else {
        1.0
    }
}

/// A conservative estimate of how wide `s` is drawn in a sans-serif font of `px` pixels: every
/// character counted at least as wide as it is in common sans-serif fonts (Arial, DejaVu Sans,
/// Liberation Sans), so that a box sized from it holds the text.
pub fn text_width(s: &str, px: f64) -> f64 {
    s.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 0.34,
            ' ' | 'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '-' | '/' => 0.45,
            'm' | 'w' | 'M' | 'W' | '@' | '%' => 1.0,
            'A'..='Z' | '&' | '…' | '—' => 0.8,
            _ => 0.64,
        })
        .sum::<f64>()
        * px
}

/// A rectangle in pixels: (left, top, right, bottom).
pub type Rect = (f64, f64, f64, f64);

fn overlaps(a: Rect, b: Rect) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// Where a legend of `size` goes inside `plot`: the first of the corners (top right, top left,
/// bottom right, bottom left), then the middles of the edges, that covers none of `marks`;
/// if every place covers some, the one covering fewest.
pub fn place_legend(plot: Rect, size: (f64, f64), marks: &[Rect]) -> (f64, f64) {
    const PAD: f64 = 8.0;
    let (l, t) = (plot.0 + PAD, plot.1 + PAD);
    let (r, b) = (plot.2 - PAD - size.0, plot.3 - PAD - size.1);
    let (cx, cy) = ((l + r) / 2.0, (t + b) / 2.0);
    let places = [
        (r, t),
        (l, t),
        (r, b),
        (l, b),
        (cx, t),
        (cx, b),
        (r, cy),
        (l, cy),
    ];
    let covered = |(x, y): (f64, f64)| {
        let me = (x, y, x + size.0, y + size.1);
        marks.iter().filter(|m| overlaps(me, **m)).count()
    };
    places
        .iter()
        .copied()
        .min_by_key(|p| covered(*p))
        .unwrap_or((l, t))
}

/// The pixels a polyline through `points` covers, as small squares every few pixels (for
/// [`place_legend`]).
pub fn line_marks(points: &[(i32, i32)], half: f64) -> Vec<Rect> {
    let mut out = Vec::new();
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (
            (f64::from(w[0].0), f64::from(w[0].1)),
            (f64::from(w[1].0), f64::from(w[1].1)),
        );
        let n = ((x1 - x0).hypot(y1 - y0) / 4.0).ceil().max(1.0) as usize;
        for i in 0..=n {
            let f = i as f64 / n as f64;
            let (x, y) = (x0 + (x1 - x0) * f, y0 + (y1 - y0) * f);
            out.push((x - half, y - half, x + half, y + half));
        }
    }
    out
}

/// A point's mark as a square of `half` pixels around it.
pub fn dot_mark((x, y): (i32, i32), half: f64) -> Rect {
    let (x, y) = (f64::from(x), f64::from(y));
    (x - half, y - half, x + half, y + half)
}

/// What a legend entry shows beside its words.
#[derive(Clone, Copy)]
pub enum Swatch {
    Dot(RGBColor),
    Ring(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
    Fill(RGBColor),
    Outline(RGBColor),
}

/// A legend drawn inside the picture as `<g class="legend">` (the browser check looks for it).
pub struct Legend {
    pub entries: Vec<(Swatch, String)>,
    pub font: f64,
}

const SWATCH_W: f64 = 26.0;

impl Legend {
    pub fn new(font: f64) -> Legend {
        Legend {
            entries: Vec::new(),
            font,
        }
    }

    pub fn add(mut self, swatch: Swatch, label: impl Into<String>) -> Legend {
        self.entries.push((swatch, label.into()));
        self
    }

    fn line_h(&self) -> f64 {
        (self.font * 1.5).ceil()
    }

    /// Width and height in pixels, from the words' conservative width.
    pub fn size(&self) -> (f64, f64) {
        let words = self
            .entries
            .iter()
            .map(|(_, l)| text_width(l, self.font))
            .fold(0.0, f64::max);
        (
            (8.0 + SWATCH_W + 8.0 + words + 8.0).ceil(),
            (6.0 + self.line_h() * self.entries.len() as f64 + 4.0).ceil(),
        )
    }

    /// The legend's SVG with its top left corner at `(x, y)`.
    pub fn svg(&self, (x, y): (f64, f64)) -> String {
        let (w, h) = self.size();
        let mut s = format!(
            "<g class=\"legend\">\n<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{w:.0}\" \
             height=\"{h:.0}\" fill=\"#FFFFFF\" fill-opacity=\"0.92\" stroke=\"#B4B4B4\"/>\n"
        );
        for (i, (swatch, label)) in self.entries.iter().enumerate() {
            let cy = y + 6.0 + self.line_h() * (i as f64 + 0.5);
            let (sx, mid) = (x + 8.0, x + 8.0 + SWATCH_W / 2.0);
            let c = |c: &RGBColor| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
            s.push_str(&match swatch {
                Swatch::Dot(k) => format!(
                    "<circle cx=\"{mid:.1}\" cy=\"{cy:.1}\" r=\"5\" fill=\"{}\"/>\n",
                    c(k)
                ),
                Swatch::Ring(k) => format!(
                    "<circle cx=\"{mid:.1}\" cy=\"{cy:.1}\" r=\"5\" fill=\"none\" \
                     stroke=\"{}\" stroke-width=\"2\"/>\n",
                    c(k)
                ),
                Swatch::Line(k) | Swatch::Dashed(k) => format!(
                    "<line x1=\"{sx:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\" \
                     stroke=\"{}\" stroke-width=\"3\"{}/>\n",
                    sx + SWATCH_W,
                    c(k),
                    if matches!(swatch, Swatch::Dashed(_)) {
                        " stroke-dasharray=\"6 4\""
                    } else {
                        ""
                    }
                ),
                Swatch::Fill(k) | Swatch::Outline(k) => format!(
                    "<rect x=\"{sx:.1}\" y=\"{:.1}\" width=\"{SWATCH_W:.0}\" height=\"12\" {}/>\n",
                    cy - 6.0,
                    if matches!(swatch, Swatch::Fill(_)) {
                        format!("fill=\"{}\"", c(k))
                    } else {
                        format!("fill=\"none\" stroke=\"{}\" stroke-width=\"2\"", c(k))
                    }
                ),
            });
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" font-family=\"{FONT}\" font-size=\"{:.0}\" \
                 fill=\"#000000\">{}</text>\n",
                sx + SWATCH_W + 8.0,
                cy + self.font * 0.35,
                self.font,
                escape_xml(label)
            ));
        }
        s.push_str("</g>\n");
        s
    }
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The pixel rectangle of a chart's plotting area.
fn plot_rect<DB: DrawingBackend, CT: plotters::coord::CoordTranslate>(
    chart: &ChartContext<'_, DB, CT>,
) -> Rect {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    (
        f64::from(xs.start),
        f64::from(ys.start),
        f64::from(xs.end),
        f64::from(ys.end),
    )
}

/// The smallest and largest of positive values (1, 2 if there are none).
fn bounds(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = vals
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (1.0, 2.0)
    } else if lo == hi {
        (lo / 2.0, hi * 2.0)
    } else {
        (lo, hi)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn ticks_are_one_two_or_five_times_a_power_of_ten_units() {
        const KIB: f64 = 1024.0;
        // The old axis read 19.5/39.1/48.8/97.7 KiB; in KiB it is 0, 20, 40, … 100.
        let t = round_ticks(0.0, 117_000.0, KIB, 8);
        assert_eq!(
            t,
            (0..=5).map(|k| k as f64 * 20.0 * KIB).collect::<Vec<_>>()
        );
        assert!(t.iter().all(|v| bytes(*v).ends_with("0 KiB") || *v == 0.0));
        // In pages of 4 KiB over a zoomed window: every page.
        let page = 4096.0;
        let t = round_ticks(25.0 * page, 31.0 * page, page, 8);
        assert_eq!(t, (25..=31).map(|k| k as f64 * page).collect::<Vec<_>>());
        // 1, 2, 5 steps: 0..4096 pages at most 8 ticks -> every 1000.
        assert_eq!(
            round_ticks(0.0, 4096.0, 1.0, 8),
            vec![0.0, 1000.0, 2000.0, 3000.0, 4000.0]
        );
        assert_eq!(round_ticks(0.0, 9.0, 1.0, 4), vec![0.0, 5.0]);
        assert_eq!(
            round_ticks(0.0, 9.0, 1.0, 10),
            (0..=9).map(f64::from).collect::<Vec<_>>()
        );
        // Below one unit: halves.
        assert_eq!(round_ticks(0.0, 1.0, 1.0, 3), vec![0.0, 0.5, 1.0]);
        // A range not starting at a multiple starts at the first multiple inside it.
        assert_eq!(round_ticks(3.0, 21.0, 1.0, 5), vec![5.0, 10.0, 15.0, 20.0]);
        for (lo, hi) in [
            (1.0, 1.0),
            (2.0, 1.0),
            (0.0, f64::NAN),
            (0.0, f64::INFINITY),
        ] {
            assert!(round_ticks(lo, hi, 1.0, 5).is_empty(), "{lo}..{hi}");
        }
        assert!(round_ticks(0.0, 1.0, 0.0, 5).is_empty());
        assert_eq!(byte_unit(1000.0), 1.0);
        assert_eq!(byte_unit(117_000.0), 1024.0);
        assert_eq!(byte_unit(4.0 * 1024.0 * 1024.0), 1024.0 * 1024.0);
    }

    #[test]
    fn the_legend_goes_where_no_mark_is() {
        let plot = (0.0, 0.0, 400.0, 300.0);
        let size = (100.0, 50.0);
        // Nothing drawn: top right.
        assert_eq!(place_legend(plot, size, &[]), (292.0, 8.0));
        // A point in the top right corner: top left.
        let top_right = dot_mark((350, 20), 5.0);
        assert_eq!(place_legend(plot, size, &[top_right]), (8.0, 8.0));
        // A line rising from bottom left to top right, and a point top left: bottom right.
        let mut marks = line_marks(&[(0, 300), (400, 0)], 3.0);
        marks.push(dot_mark((30, 30), 5.0));
        let at = place_legend(plot, size, &marks);
        assert_eq!(at, (292.0, 242.0));
        let me = (at.0, at.1, at.0 + size.0, at.1 + size.1);
        assert!(marks.iter().all(|m| !overlaps(me, *m)));
        // Every place covered: the one covering fewest.
        let everywhere: Vec<Rect> = (0..40)
            .flat_map(|i| (0..30).map(move |j| dot_mark((i * 10, j * 10), 1.0)))
            .filter(|m| !(m.0 > 150.0 && m.2 < 260.0 && m.1 < 60.0))
            .collect();
        let at = place_legend(plot, size, &everywhere);
        assert_eq!(at, (150.0, 8.0));
    }

    #[test]
    fn legends_are_sized_from_their_words_and_marked_for_the_check() {
        let short = Legend::new(13.0).add(Swatch::Dot(HEAP), "heap");
        let long = Legend::new(13.0)
            .add(Swatch::Dot(HEAP), "heap")
            .add(Swatch::Dashed(MMAP), "setbaz 0x7f3f75bbe108 & <more>");
        assert!(long.size().0 > short.size().0 + 150.0);
        assert!(long.size().1 > short.size().1);
        // Conservative: wider than Arial draws it (about 0.55 em per character on average).
        let words = "setbaz 0x7f3f75bbe108, getbaz 0x7f3f75bbe0f9";
        assert!(text_width(words, 12.0) > 0.55 * 12.0 * words.chars().count() as f64);
        let svg = long.svg((10.0, 20.0));
        assert!(svg.starts_with("<g class=\"legend\">"));
        assert!(svg.contains("&amp; &lt;more&gt;"));
        assert!(svg.contains("stroke-dasharray"));
        let drawn = render((200, 100), |_| Ok(long.svg((1.0, 1.0)))).unwrap();
        assert!(drawn.trim_end().ends_with("</g>\n</svg>"), "{drawn}");
    }

    #[test]
    fn numbers_and_addresses_parse() {
        assert_eq!(bytes(131072.0), "128 KiB");
        assert_eq!(bytes(1.5 * 1024.0 * 1024.0), "1.5 MiB");
        assert_eq!(bytes(24.0), "24 B");
    }
}
