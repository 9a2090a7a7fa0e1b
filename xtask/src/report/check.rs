//! `cargo xtask report --check`: renders the page in headless Chromium and fails if the page has
//! errors or a picture is empty.
//!
//! Three browser runs, each with a fresh profile and a time limit (the whole process group is
//! killed past it):
//! 1. `--dump-dom` with console logging on stderr, on a copy of the page with [`PICTURE_CHECK`]
//!    added: the page's own script has by then checked every picture and written its verdict
//!    into `<body data-check>` and `#check-verdict`, and the picture check has added what it
//!    found (text over text, a picture without its legend, text too small to read at the size
//!    the picture is shown); uncaught errors also show as `CONSOLE` lines on stderr.
//! 2. `--screenshot` of the report.
//! 3. `--screenshot` of a blank page of the same size, as the reference for "blank": PNG
//!    compresses a uniform image to almost nothing, so a report screenshot that is not several
//!    times larger than the blank one shows (nearly) nothing. This avoids decoding PNG (which
//!    needs an inflate implementation) while still measuring the blank case on this browser
//!    rather than guessing a byte count.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// The window the screenshots are taken in.
pub const WINDOW: (u32, u32) = (1200, 1600);
/// How much larger than a blank page's screenshot the report's must be.
pub const BLANK_FACTOR: u64 = 3;
const TIMEOUT: Duration = Duration::from_secs(90);
/// How long the browser's helper processes may outlive it before they are killed.
const HELPERS_TIMEOUT: Duration = Duration::from_secs(10);
const NAMES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// Finds a Chromium on `PATH`.
pub fn find_browser() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in NAMES {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "--check needs Chromium, which is not installed (looked for {} on PATH); install it \
         with `apt-get install chromium` (Debian/Ubuntu) or run without --check",
        NAMES.join(", ")
    )
}

/// The smallest text, in CSS pixels as shown, a picture may hold.
pub const MIN_FONT_PX: f64 = 11.0;

/// Run on `load` after the page's own check: for every picture, its text elements' boxes (from
/// the DOM) must not overlap one another, it must hold a legend (`g.legend`), and its smallest
/// text, at the size the picture is shown, must be at least [`MIN_FONT_PX`]. Problems are added
/// to the page's verdict, which then fails.
pub const PICTURE_CHECK: &str = r#"
(function () {
  function text(t) { return t.textContent.trim(); }
  function check() {
    var problems = [];
    var figs = document.querySelectorAll('figure.chart');
    for (var i = 0; i < figs.length; i++) {
      var name = figs[i].getAttribute('data-name');
      var svg = figs[i].querySelector('svg');
      if (!svg) { continue; }
      if (!svg.querySelector('g.legend')) { problems.push(name + ': no legend inside the picture'); }
      var texts = Array.prototype.filter.call(svg.querySelectorAll('text'), function (t) { return text(t); });
      var boxes = texts.map(function (t) { return t.getBoundingClientRect(); });
      var overlaps = 0;
      for (var a = 0; a < boxes.length; a++) {
        for (var b = a + 1; b < boxes.length; b++) {
          var p = boxes[a], q = boxes[b];
          // One pixel of slack: glyph boxes of neighbouring lines may touch.
          if (p.left < q.right - 1 && q.left < p.right - 1 && p.top < q.bottom - 1 && q.top < p.bottom - 1) {
            if (overlaps++ < 3) {
              problems.push(name + ': text "' + text(texts[a]) + '" overlaps "' + text(texts[b]) + '"');
            }
          }
        }
      }
      var scale = svg.getBoundingClientRect().width / svg.width.baseVal.value;
      var smallest = Infinity, which = '';
      texts.forEach(function (t) {
        var px = parseFloat(getComputedStyle(t).fontSize) * scale;
        if (px < smallest) { smallest = px; which = text(t); }
      });
      if (smallest < MIN_FONT_PX) {
        problems.push(name + ': text "' + which + '" is ' + smallest.toFixed(1) +
          ' px as shown, less than MIN_FONT_PX px');
      }
    }
    if (!problems.length) { return; }
    var verdict = document.getElementById('check-verdict');
    if (document.body.getAttribute('data-check') !== 'fail') {
      verdict.textContent = 'Browser self-check FAILED:';
    }
    document.body.setAttribute('data-check', 'fail');
    verdict.textContent += '\n' + problems.join('\n');
  }
  window.addEventListener('load', check);
})();
"#;

/// The page with [`PICTURE_CHECK`] added at the end of its body.
pub fn with_picture_check(page: &str) -> String {
    let script = format!(
        "<script>{}</script>\n",
        PICTURE_CHECK.replace("MIN_FONT_PX", &MIN_FONT_PX.to_string())
    );
    match page.rfind("</body>") {
        Some(at) => format!("{}{script}{}", &page[..at], &page[at..]),
        None => format!("{page}{script}"),
    }
}

/// What a successful check measured.
pub struct Checked {
    pub pictures: usize,
    pub png_bytes: u64,
    pub blank_png_bytes: u64,
}

/// Renders `html` in the browser, checks the page's verdict, its console and its screenshot
/// (written to `screenshot`). `scratch` holds the browser profiles and is the caller's to remove.
pub fn check(
    browser: &Path,
    html: &Path,
    screenshot: &Path,
    scratch: &Path,
) -> anyhow::Result<Checked> {
    let url = file_url(html)?;
    crate::out::progress("report: rendering the page in headless Chromium (DOM and console)");
    let page =
        std::fs::read_to_string(html).with_context(|| format!("cannot read {}", html.display()))?;
    std::fs::create_dir_all(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let checked = scratch.join("checked.html");
    std::fs::write(&checked, with_picture_check(&page))
        .with_context(|| format!("cannot write {}", checked.display()))?;
    let dom = run_browser(
        browser,
        &["--dump-dom", "--enable-logging=stderr", "--v=0"],
        &file_url(&checked)?,
        &scratch.join("profile-dom"),
    )?;
    let mut problems = Vec::new();
    let pictures = match parse_verdict(&dom.stdout) {
        Verdict::Ok { pictures } => pictures,
        Verdict::Failed(lines) => {
            problems.extend(lines);
            0
        }
        Verdict::Missing(why) => {
            problems.push(why);
            0
        }
    };
    problems.extend(console_errors(&dom.stderr));

    crate::out::progress("report: taking the screenshot");
    let shot_arg = format!("--screenshot={}", screenshot.display());
    let size_arg = format!("--window-size={},{}", WINDOW.0, WINDOW.1);
    run_browser(
        browser,
        &[&shot_arg, &size_arg, "--hide-scrollbars"],
        &url,
        &scratch.join("profile-shot"),
    )?;
    let png_bytes = png_file(screenshot)?;

    let blank = scratch.join("blank.html");
    std::fs::write(
        &blank,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body></body></html>\n",
    )
    .with_context(|| format!("cannot write {}", blank.display()))?;
    let blank_shot = scratch.join("blank.png");
    run_browser(
        browser,
        &[
            &format!("--screenshot={}", blank_shot.display()),
            &size_arg,
            "--hide-scrollbars",
        ],
        &file_url(&blank)?,
        &scratch.join("profile-blank"),
    )?;
    let blank_png_bytes = png_file(&blank_shot)?;
    if png_bytes < BLANK_FACTOR * blank_png_bytes {
        problems.push(format!(
            "the screenshot looks blank: {png_bytes} bytes, less than {BLANK_FACTOR} times a \
             blank page's {blank_png_bytes} bytes"
        ));
    }
    if !problems.is_empty() {
        bail!(
            "the page rendered with problems ({}): {}",
            html.display(),
            problems.join("; ")
        );
    }
    Ok(Checked {
        pictures,
        png_bytes,
        blank_png_bytes,
    })
}

struct BrowserOutput {
    stdout: String,
    stderr: String,
}

/// Runs the browser headless on `url` with a fresh profile, within [`TIMEOUT`].
fn run_browser(
    browser: &Path,
    args: &[&str],
    url: &str,
    profile: &Path,
) -> anyhow::Result<BrowserOutput> {
    std::fs::create_dir_all(profile)
        .with_context(|| format!("cannot create {}", profile.display()))?;
    let out_path = profile.with_extension("stdout");
    let err_path = profile.with_extension("stderr");
    let out =
        File::create(&out_path).with_context(|| format!("cannot create {}", out_path.display()))?;
    let err =
        File::create(&err_path).with_context(|| format!("cannot create {}", err_path.display()))?;
    let mut command = Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let mut child = crate::interrupt::spawn_group(&mut command)
        .with_context(|| format!("cannot run {}", browser.display()))?;
    let started = Instant::now();
    let timed_out = loop {
        match crate::interrupt::exited(&child) {
            Ok(true) => break false,
            Ok(false) if started.elapsed() > TIMEOUT => break true,
            Ok(false) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                let _ = crate::interrupt::end_group(&mut child);
                return Err(e).context("cannot wait for the browser");
            }
        }
    };
    if timed_out {
        let _ = crate::interrupt::end_group(&mut child);
        bail!(
            "{} did not finish within {} s; killed it",
            browser.display(),
            TIMEOUT.as_secs()
        );
    }
    // The browser's helpers (zygote, crashpad) can outlive it for a moment and still write into
    // the profile: wait until no live process is left in its group (the browser, unreaped, keeps
    // the group id its own), then reap it, which ends any straggler with the group.
    let deadline = Instant::now() + HELPERS_TIMEOUT;
    while crate::interrupt::live_members(&[child.id()]) > 0 && Instant::now() <= deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = crate::interrupt::end_group(&mut child).context("cannot wait for the browser")?;
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    if !status.success() {
        let last: Vec<&str> = stderr.lines().rev().take(3).collect();
        bail!(
            "{} failed ({status}): {}",
            browser.display(),
            last.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    Ok(BrowserOutput { stdout, stderr })
}

/// `file://` URL of a file (absolute; bytes outside the unreserved set percent-encoded).
pub fn file_url(path: &Path) -> anyhow::Result<String> {
    let abs = std::path::absolute(path)
        .with_context(|| format!("cannot make {} absolute", path.display()))?;
    let mut url = String::from("file://");
    for b in abs.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(char::from(*b))
            }
            _ => url.push_str(&format!("%{b:02X}")),
        }
    }
    Ok(url)
}

/// The page's own verdict, read from the DOM after its scripts ran.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Ok { pictures: usize },
    Failed(Vec<String>),
    Missing(String),
}

/// Reads `<body data-check="…" data-pictures="N">` and `#check-verdict` from a dumped DOM.
pub fn parse_verdict(dom: &str) -> Verdict {
    let Some(body_at) = dom.find("<body") else {
        return Verdict::Missing("the browser printed no page (no <body> in --dump-dom)".into());
    };
    let body_tag = &dom[body_at..dom[body_at..].find('>').map_or(dom.len(), |e| body_at + e)];
    let attr = |name: &str| {
        let key = format!("{name}=\"");
        let start = body_tag.find(&key)? + key.len();
        let len = body_tag[start..].find('"')?;
        Some(&body_tag[start..start + len])
    };
    let text = verdict_text(dom);
    match attr("data-check") {
        Some("ok") => Verdict::Ok {
            pictures: attr("data-pictures")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        },
        Some("fail") => Verdict::Failed(
            text.lines()
                .skip(1)
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect(),
        ),
        Some(other) => Verdict::Missing(format!(
            "the page's self-check did not run (data-check=\"{other}\"): its script failed \
             before the load event"
        )),
        None => Verdict::Missing("the page has no data-check verdict".into()),
    }
}

/// The text of `<p id="check-verdict">`, unescaped.
fn verdict_text(dom: &str) -> String {
    let Some(at) = dom.find("id=\"check-verdict\"") else {
        return String::new();
    };
    let rest = &dom[at..];
    let Some(open_end) = rest.find('>') else {
        return String::new();
    };
    let inner = &rest[open_end + 1..];
    let inner = &inner[..inner.find("</").unwrap_or(inner.len())];
    inner
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Uncaught errors and failed loads that Chromium logged from the page's console.
pub fn console_errors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .filter(|l| {
            l.contains("Uncaught")
                || l.contains("Failed to load resource")
                || l.contains("Refused to")
        })
        .map(|l| {
            let msg = l.split_once("] ").map_or(l, |(_, m)| m);
            format!("console: {msg}")
        })
        .collect()
}

/// Checks a PNG's signature and header; returns (width, height).
pub fn png_dimensions(bytes: &[u8]) -> anyhow::Result<(u32, u32)> {
    const SIG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIG || &bytes[12..16] != b"IHDR" {
        bail!("not a PNG file");
    }
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if w == 0 || h == 0 {
        bail!("the PNG is {w}x{h} pixels");
    }
    Ok((w, h))
}

/// The byte size of a screenshot after checking it is a PNG with pixels.
fn png_file(path: &Path) -> anyhow::Result<u64> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("the browser wrote no screenshot {}", path.display()))?;
    png_dimensions(&bytes).with_context(|| format!("bad screenshot {}", path.display()))?;
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse() {
        let ok = "<html><head></head><body data-check=\"ok\" data-pictures=\"5\"><p \
                  id=\"check-verdict\">Browser self-check: ok</p></body></html>";
        assert_eq!(parse_verdict(ok), Verdict::Ok { pictures: 5 });
        let fail = "<body data-check=\"fail\" data-pictures=\"2\">…<p id=\"check-verdict\">\
                    Browser self-check FAILED:\nstep1.svg: 0 data marks &lt;svg&gt;\npage error: x</p>";
        assert_eq!(
            parse_verdict(fail),
            Verdict::Failed(vec![
                "step1.svg: 0 data marks <svg>".into(),
                "page error: x".into()
            ])
        );
        assert!(matches!(
            parse_verdict("<body data-check=\"pending\">"),
            Verdict::Missing(m) if m.contains("did not run")
        ));
        assert!(matches!(parse_verdict(""), Verdict::Missing(_)));
        assert!(matches!(parse_verdict("<body>"), Verdict::Missing(_)));
    }

    #[test]
    fn console_errors_are_found() {
        let log = "[1:1:1126/040631.593498:ERROR:dbus/bus.cc:405] Failed to connect to the bus\n\
                   [1:1:1126/040632.371774:INFO:CONSOLE:2] \"hi\", source: file:///t.html (2)\n\
                   [1:1:1126/040632.390030:INFO:CONSOLE:2] \"Uncaught ReferenceError: f is not \
                   defined\", source: file:///t.html (2)\n";
        assert_eq!(
            console_errors(log),
            vec!["console: \"Uncaught ReferenceError: f is not defined\", source: file:///t.html (2)"]
        );
    }

    #[test]
    fn png_header() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&1200u32.to_be_bytes());
        png.extend_from_slice(&1600u32.to_be_bytes());
        assert_eq!(png_dimensions(&png).unwrap(), (1200, 1600));
        assert!(png_dimensions(b"GIF89a....................").is_err());
        png[16..20].copy_from_slice(&0u32.to_be_bytes());
        assert!(png_dimensions(&png).is_err());
    }

    #[test]
    fn urls_are_encoded() {
        assert_eq!(
            file_url(Path::new("/tmp/a b/r#1.html")).unwrap(),
            "file:///tmp/a%20b/r%231.html"
        );
    }

    /// Whether a test that needs Chromium must fail without it: under CI (`.ci/run` installs
    /// it) or when the user asks with `MMAP_LAB_REQUIRE_BROWSER=1`.
    pub(crate) fn browser_required() -> bool {
        std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
            || std::env::var_os("MMAP_LAB_REQUIRE_BROWSER").is_some_and(|v| v == "1")
    }

    /// The real browser on real pages: the report of synthetic steps passes, and pages with an
    /// empty picture or a script error fail. Without Chromium the test says it skipped and how
    /// to install it, and passes; under CI or `MMAP_LAB_REQUIRE_BROWSER=1` it fails.
    #[test]
    fn chromium_passes_a_good_page_and_fails_broken_ones() {
        let browser = match find_browser() {
            Ok(b) => b,
            Err(e) if browser_required() => {
                panic!("{e:#} (CI and MMAP_LAB_REQUIRE_BROWSER=1 require it)")
            }
            Err(_) => {
                use std::io::Write as _;
                // Straight to stderr: libtest hides what eprintln! prints in a passing test.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped: chromium_passes_a_good_page_and_fails_broken_ones needs Chromium; \
                     install it with `apt-get install chromium` (or set MMAP_LAB_REQUIRE_BROWSER=1 \
                     to make its absence a failure)"
                );
                return;
            }
        };
        let tmp = super::super::tests::tempdir("check-test");
        let dir = tmp.path();
        let report = super::super::tests::sample();
        let written = super::super::write(&report, &dir.join("report")).unwrap();
        let good = check(
            &browser,
            &written.html,
            &dir.join("good.png"),
            &dir.join("s1"),
        );
        assert!(good.is_ok(), "good page failed: {:#}", good.err().unwrap());
        let drawn: usize = report
            .sections
            .iter()
            .map(|s| s.pictures.iter().filter(|p| p.svg.is_ok()).count())
            .sum();
        assert_eq!(good.unwrap().pictures, drawn);

        let page = std::fs::read_to_string(&written.html).unwrap();
        // An empty picture: the step 1 chart with its data dots removed.
        let first_fig = page.find("data-name=\"step1-chunks.svg\"").unwrap();
        let fig_end = first_fig + page[first_fig..].find("</figure>").unwrap();
        let emptied = page[first_fig..fig_end].replace("<circle", "<g");
        let empty = format!("{}{}{}", &page[..first_fig], emptied, &page[fig_end..]);
        let empty_path = dir.join("empty.html");
        std::fs::write(&empty_path, empty).unwrap();
        let e = check(&browser, &empty_path, &dir.join("e.png"), &dir.join("s2"))
            .err()
            .expect("a page with an empty picture passed");
        let msg = format!("{e:#}");
        assert!(
            msg.contains("step1-chunks.svg: 0 data marks drawn inside the picture, expected 8"),
            "{msg}"
        );

        // Step 4's picture without its legend; two tiny texts laid over each other in step 5's.
        let figure = |page: &str, name: &str| {
            let at = page.find(&format!("data-name=\"{name}\"")).unwrap();
            (at, at + page[at..].find("</figure>").unwrap())
        };
        let (a, b) = figure(&page, "step4-frames.svg");
        let no_legend = page[a..b].replace("<g class=\"legend\">", "<g>");
        let bad = format!("{}{}{}", &page[..a], no_legend, &page[b..]);
        let (a, b) = figure(&bad, "step5-lost-updates.svg");
        let tiny = "<text x=\"40\" y=\"40\" font-size=\"5\">tiny</text>";
        let crowded = bad[a..b].replace("</svg>", &format!("{tiny}{tiny}</svg>"));
        let bad = format!("{}{}{}", &bad[..a], crowded, &bad[b..]);
        let bad_path = dir.join("bad-pictures.html");
        std::fs::write(&bad_path, bad).unwrap();
        let e = check(&browser, &bad_path, &dir.join("p.png"), &dir.join("s4"))
            .err()
            .expect("a page with unreadable pictures passed");
        let msg = format!("{e:#}");
        for want in [
            "step4-frames.svg: no legend inside the picture",
            "step5-lost-updates.svg: text \"tiny\" overlaps \"tiny\"",
            "step5-lost-updates.svg: text \"tiny\" is 5.0 px as shown, less than 11 px",
        ] {
            assert!(msg.contains(want), "{want}: {msg}");
        }
        assert!(!msg.contains("step1-chunks.svg"), "{msg}");

        // A script error on the page.
        let broken = page.replace("</body>", "<script>undefinedFunction();</script></body>");
        let broken_path = dir.join("broken.html");
        std::fs::write(&broken_path, broken).unwrap();
        let e = check(&browser, &broken_path, &dir.join("b.png"), &dir.join("s3"))
            .err()
            .expect("a page with a script error passed");
        let msg = format!("{e:#}");
        assert!(msg.contains("undefinedFunction is not defined"), "{msg}");
    }
}
