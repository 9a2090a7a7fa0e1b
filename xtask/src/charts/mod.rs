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

fn render(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<String, String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
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

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_parse() {
        assert_eq!(bytes(131072.0), "128 KiB");
        assert_eq!(bytes(1.5 * 1024.0 * 1024.0), "1.5 MiB");
        assert_eq!(bytes(24.0), "24 B");
    }
}
