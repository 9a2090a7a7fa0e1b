//! The report's pictures, drawn as SVG with `plotters` from a step's `data` (the shapes are
//! documented in each step's module). A missing or odd field gives "no picture" with the reason,
//! never a panic.

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

pub mod step1;
mod step2;
mod step4;
pub mod step5;

use step2::step2_pages;
use step4::step4_address_space;

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

/// The pictures of one step (empty for a step that has none).
pub fn pictures(step: u8, data: &Value) -> Vec<Picture> {
    match step {
        2 => vec![step2_pages(data)],
        4 => vec![step4_address_space(data)],
        _ => Vec::new(),
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

/// A number, or a "0x…" hex string, or a decimal string.
pub fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16).ok().map(|v| v as f64),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

/// An address: a "0x…" hex string or a number.
pub fn addr(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let s = s.trim();
            let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
            u64::from_str_radix(hex, 16).ok()
        }
        _ => None,
    }
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
    use serde_json::json;

    pub(crate) fn step2_data() -> Value {
        json!({"entries": 100000, "file_bytes": 10_002_432, "pages_total": 2442,
               "pages_resident_before": 0, "pages_resident_after": 37, "lookups": 1000,
               "mmap_calls": 1, "read_calls_on_table_fd": 0, "minor_faults": 40,
               "major_faults": 37, "eviction": "fadvise"})
    }

    pub(crate) fn step4_data() -> Value {
        let program = |name: &str, base: u64| {
            let line = |s: u64, e: u64, perms: &str, off: &str, path: &str| {
                json!({"start": format!("{:#x}", base + s), "end": format!("{:#x}", base + e),
                       "perms": perms, "offset": off, "path": path})
            };
            let lib = "/work/target/release/deps/libfoobar.so";
            json!({
                "name": name, "pid": 4242,
                "maps": [
                    line(0x0, 0x5000, "r--p", "0x0", lib),
                    line(0x5000, 0x40000, "r-xp", "0x5000", lib),
                    line(0x40000, 0x4b000, "r--p", "0x40000", lib),
                    line(0x4b000, 0x4e000, "r--p", "0x4a000", lib),
                    line(0x4e000, 0x4f000, "rw-p", "0x4d000", lib),
                    line(0x4f000, 0x50000, "rw-p", "0x0", ""),
                    line(0x90000, 0x91000, "rw-p", "0x0", ""),
                    json!({"start": "0x5600000", "end": "0x5601000", "perms": "r--p",
                           "offset": "0x0", "path": "/usr/bin/foo"}),
                ],
                "symbols": [
                    {"name": "setbaz", "address": format!("{:#x}", base + 0x6010)},
                    {"name": "getbaz", "address": format!("{:#x}", base + 0x6020)},
                    {"name": "baz", "address": format!("{:#x}", base + 0x4f010)},
                ],
                "mmaps": [
                    {"raw": "mmap(NULL, 331776, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3, 0) = 0x..",
                     "addr": "NULL", "len": 0x50000, "prot": "PROT_READ",
                     "flags": "MAP_PRIVATE|MAP_DENYWRITE", "fd": 3, "offset": "0x0",
                     "result": format!("{:#x}", base)},
                    {"raw": "mmap(...)", "addr": format!("{:#x}", base + 0x5000), "len": 0x3b000,
                     "prot": "PROT_READ|PROT_EXEC", "flags": "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE",
                     "fd": 3, "offset": "0x5000", "result": format!("{:#x}", base + 0x5000)},
                ],
                "baz_values": [17, 17],
            })
        };
        json!({
            "programs": [program("foo", 0x7f10_0000_0000), program("bar", 0x7f20_0000_0000)],
            "shared_code_pfns": true,
            "c_client": {"baz_address": "0x55550000a010", "inside_libfoobar": false,
                         "relocation": "R_X86_64_COPY"},
        })
    }

    fn count(svg: &str, tag: &str) -> usize {
        svg.matches(&format!("<{tag}")).count()
    }

    #[test]
    fn odd_data_gives_no_picture_with_a_reason() {
        for (step, data, why) in [
            (2, json!({"pages_total": 10}), "lacks pages_total"),
            (
                2,
                json!({"pages_total": 0, "pages_resident_before": 0,
                       "pages_resident_after": 0}),
                "0 pages",
            ),
            (4, json!({"programs": []}), "lists no programs"),
            (
                4,
                json!({"programs": [{"name": "foo", "maps": []}]}),
                "foo's maps have no libfoobar",
            ),
            (
                4,
                json!({"programs": [{"name": "foo"}]}),
                "foo has no `maps`",
            ),
        ] {
            let pics = pictures(step, &data);
            let reason = pics[0]
                .svg
                .as_ref()
                .err()
                .unwrap_or_else(|| panic!("step {step} drew a picture from {data}"));
            assert!(
                reason.contains(why),
                "step {step}: {reason:?} lacks {why:?}"
            );
        }
        assert!(pictures(3, &json!({})).is_empty());
    }

    #[test]
    fn step2_bars_and_caption_come_from_the_numbers() {
        let p = &pictures(2, &step2_data())[0];
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.contains("resident after 1000 lookups: 37 (1.5%)"));
        assert!(p.caption.contains("Of 2442 pages, 0 were resident"));
        // Total and "after" are drawn; "before" is 0 pages.
        assert_eq!(p.marks, ("rect", 3));
        assert!(count(svg, "rect") >= 3);
    }

    #[test]
    fn step4_places_symbols_in_their_segments() {
        let p = &pictures(4, &step4_data())[0];
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.contains("foo (pid 4242): library base 0x7f1000000000"));
        assert!(svg.contains("bar (pid 4242): library base 0x7f2000000000"));
        assert!(svg.contains("setbaz 0x7f1000006010"));
        assert!(svg.contains("baz 0x7f200004f010"));
        assert!(svg.contains("mmap READ|EXEC, PRIVATE|FIXED|DENYWRITE, fd 3"));
        assert!(svg.contains("C client: baz at 0x55550000a010, outside libfoobar.so"));
        // 6 ranges each (5 of the library, 1 anonymous continuation; the far one is left out).
        assert_eq!(p.marks, ("rect", 25));
        assert!(p
            .caption
            .contains("foo: 6 ranges (setbaz in r-xp, getbaz in r-xp, baz in rw-p)"));
        assert_eq!(count(svg, "circle"), 6);
        assert!(p.caption.contains("are the same physical RAM"));
        assert!(p
            .caption
            .contains("baz as each program observed it: foo 17, 17; bar 17, 17."));
    }

    #[test]
    fn step4_symbol_outside_the_library_is_listed() {
        let mut d = step4_data();
        d["programs"][0]["symbols"][2]["address"] = json!("0x55550000a010");
        let p = &pictures(4, &d)[0];
        let svg = p.svg.as_ref().unwrap();
        assert!(svg.contains("baz at 0x55550000a010 is outside libfoobar.so"));
        assert!(p.caption.contains("baz outside the library"));
    }

    #[test]
    fn numbers_and_addresses_parse() {
        assert_eq!(num(&json!("0x10")), Some(16.0));
        assert_eq!(num(&json!("12.5")), Some(12.5));
        assert_eq!(num(&json!(null)), None);
        assert_eq!(addr(&json!("0x7fff0000")), Some(0x7fff_0000));
        assert_eq!(addr(&json!("7fff")), None);
        assert_eq!(bytes(131072.0), "128 KiB");
        assert_eq!(bytes(1.5 * 1024.0 * 1024.0), "1.5 MiB");
        assert_eq!(bytes(24.0), "24 B");
    }
}
