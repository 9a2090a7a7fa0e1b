//! The HTML rendering: one self-contained page (inline CSS, inline SVG, one inline script that
//! checks the page on load and writes its verdict into the DOM for `--check`). All text from the
//! run is escaped with [`escape`]; the SVG comes from plotters, which escapes its own text.

use std::fmt::Write as _;

use super::{Outcome, Report, Section};
use lab_analysis::Block;

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text and shows its `backtick spans` as `<code>` (when the backticks pair up).
pub fn with_code(s: &str) -> String {
    if s.matches('`').count() % 2 != 0 {
        return escape(s);
    }
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", escape(part))
            } else {
                escape(part)
            }
        })
        .collect()
}

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 0 20px 40px;
       color: #1d1d1f; line-height: 1.45; background: #fff; }
h1 { margin: 24px 0 4px; } h2 { margin-top: 36px; border-bottom: 2px solid #ddd; }
.sub { color: #555; margin: 0 0 12px; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; }
.status-ok { color: #17692b; font-weight: 600; } .status-failed { color: #b3261e; font-weight: 600; }
.error { background: #fdecea; border-left: 4px solid #b3261e; padding: 8px 12px; white-space: pre-wrap; }
dt { font-weight: 600; margin-top: 10px; } dd { margin: 2px 0 8px 18px; white-space: pre-wrap; }
.pics { display: flex; flex-wrap: wrap; gap: 0 24px; align-items: flex-start; }
figure { margin: 12px 0; flex: 0 1 auto; max-width: 100%; } figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figure .scroll { overflow-x: auto; max-width: 100%; } figure .scroll svg { max-width: none; }
code { background: #f1f1f4; padding: 0 3px; border-radius: 3px; font-size: 0.92em; }
figcaption { color: #444; font-size: 0.92em; }
.nopic { color: #8a5a00; background: #fff7e0; padding: 6px 10px; }
pre { background: #f6f8fa; border: 1px solid #e4e6ea; padding: 8px; overflow: auto; max-height: 420px;
      font-size: 12.5px; line-height: 1.35; }
.meta { color: #555; font-size: 0.9em; }
.top { display: flex; flex-wrap: wrap; gap: 0 32px; } .top h2 { margin-top: 20px; }
.top table { font-size: 0.86em; }
#check-verdict { color: #555; font-size: 0.85em; white-space: pre-wrap; }
@media print { pre { max-height: none; overflow: visible; white-space: pre-wrap; } details { display: block; } }
"#;

/// The self-check, run by the browser on `load`: every picture must be an `<svg>` of non-zero
/// size holding at least the expected number of data marks inside its box, and no script or
/// resource error may have fired. The verdict goes into `<body data-check>` and
/// `#check-verdict`, where `--dump-dom` shows it.
const SCRIPT: &str = r#"
(function () {
  var errors = [];
  var loaded = false;
  function verdict() {
    var problems = errors.map(function (m) { return 'page error: ' + m; });
    var figs = document.querySelectorAll('figure.chart');
    var expected = parseInt(document.body.getAttribute('data-pictures'), 10);
    if (figs.length !== expected) {
      problems.push('expected ' + expected + ' pictures, found ' + figs.length);
    }
    for (var i = 0; i < figs.length; i++) {
      var fig = figs[i];
      var name = fig.getAttribute('data-name');
      var svg = fig.querySelector('svg');
      if (!svg) { problems.push(name + ': no <svg>'); continue; }
      var box = svg.getBoundingClientRect();
      if (!(box.width > 0 && box.height > 0)) {
        problems.push(name + ': drawn at zero size (' + box.width + 'x' + box.height + ')');
        continue;
      }
      var w = svg.width.baseVal.value, h = svg.height.baseVal.value;
      var marks = svg.querySelectorAll(fig.getAttribute('data-marks'));
      var drawn = 0;
      for (var j = 0; j < marks.length; j++) {
        var b = marks[j].getBBox();
        if ((b.width > 0 || b.height > 0) && b.x >= -1 && b.y >= -1 &&
            b.x + b.width <= w + 1 && b.y + b.height <= h + 1) { drawn++; }
      }
      var need = parseInt(fig.getAttribute('data-min-marks'), 10);
      if (!(drawn >= need)) {
        problems.push(name + ': ' + drawn + ' data marks drawn inside the picture, expected ' + need);
      }
      var texts = svg.querySelectorAll('text'), words = 0;
      for (var k = 0; k < texts.length; k++) { if (texts[k].textContent.trim()) words++; }
      if (words === 0) { problems.push(name + ': no text (axes, labels)'); }
    }
    document.body.setAttribute('data-check', problems.length ? 'fail' : 'ok');
    document.getElementById('check-verdict').textContent = problems.length
      ? 'Browser self-check FAILED:\n' + problems.join('\n')
      : 'Browser self-check: ok, ' + figs.length + ' pictures rendered with their marks, no page errors.';
  }
  window.addEventListener('error', function (e) {
    var what = e.message || ('cannot load ' + ((e.target && (e.target.src || e.target.href)) || 'a resource'));
    errors.push(what);
    if (loaded) { verdict(); }
  }, true);
  window.addEventListener('load', function () { loaded = true; verdict(); });
})();
"#;

/// The whole page.
pub fn render(report: &Report) -> String {
    let pictures: usize = report
        .sections
        .iter()
        .flat_map(|s| &s.pictures)
        .filter(|p| p.svg.is_ok())
        .count();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>mmap-lab report</title>\n<style>{STYLE}</style>\n<script>{SCRIPT}</script>\n\
         </head>\n<body data-check=\"pending\" data-pictures=\"{pictures}\">\n"
    );
    let _ = write!(
        h,
        "<h1>mmap-lab report</h1>\n<p class=\"sub\">Homework 6: mmap and shared memory. Every \
         answer below was computed from this run's measurements on the machine described here \
         ({}, generated {}).</p>\n",
        if report.quick {
            "short run, <code>--quick</code>"
        } else {
            "full run"
        },
        escape(&report.generated)
    );
    h.push_str("<section id=\"glance\">\n<h2>Answers at a glance</h2>\n<ul class=\"glance\">\n");
    for g in report.glance() {
        let line = g.line();
        let rest = line.strip_prefix(g.number.as_str()).unwrap_or(&line);
        let _ = writeln!(h, "<li><b>{}</b>{}</li>", escape(&g.number), escape(rest));
    }
    h.push_str("</ul>\n</section>\n");
    h.push_str("<div class=\"top\">\n<div>\n<h2 id=\"summary\">Steps</h2>\n<table>\n");
    h.push_str("<tr><th>Step</th><th>Title</th><th>Result</th><th>Time</th></tr>\n");
    for s in &report.sections {
        let (class, result) = match &s.outcome {
            Outcome::Done(_) => ("status-ok", "ok".to_string()),
            Outcome::Failed(e) => ("status-failed", format!("failed: {}", first_line(e))),
        };
        let _ = writeln!(
            h,
            "<tr><td><a href=\"#step-{n}\">{n}</a></td><td>{}</td><td class=\"{class}\">{}</td>\
             <td>{:.1} s</td></tr>",
            escape(&s.title),
            escape(&result),
            s.seconds,
            n = s.step
        );
    }
    h.push_str("</table>\n</div>\n<div>\n<h2 id=\"machine\">Machine</h2>\n<table>\n");
    for (k, v) in &report.machine {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    h.push_str("</table>\n</div>\n</div>\n");
    let machine_line = report.machine_line();
    for s in &report.sections {
        section(&mut h, s, &machine_line);
    }
    h.push_str("<section id=\"glossary\">\n<h2>Glossary</h2>\n<dl class=\"glossary\">\n");
    for t in lab_analysis::glossary::TERMS {
        let _ = writeln!(
            h,
            "<dt>{}</dt><dd>{}</dd>",
            escape(t.term),
            escape(t.meaning)
        );
    }
    h.push_str("</dl>\n</section>\n");
    h.push_str(
        "<hr>\n<p id=\"check-verdict\">Browser self-check has not run.</p>\n</body>\n</html>\n",
    );
    h
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn section(h: &mut String, s: &Section, machine: &str) {
    let _ = write!(
        h,
        "<section id=\"step-{n}\">\n<h2>Step {n}: {}</h2>\n<p class=\"meta\">Measured on {} \
         in {:.1} s.</p>\n",
        escape(&s.title),
        escape(machine),
        s.seconds,
        n = s.step
    );
    let report = match &s.outcome {
        Outcome::Failed(e) => {
            let _ = write!(
                h,
                "<p class=\"error\">This step failed, so it has no answers: {}</p>\n</section>\n",
                escape(e)
            );
            return;
        }
        Outcome::Done(r) => r,
    };
    // What the answers rest on (the setting, a busy machine) comes before them, as on the
    // terminal.
    for b in report
        .blocks
        .iter()
        .take_while(|b| !matches!(b, Block::Heading { .. }))
    {
        if let Block::Text { text } = b {
            let _ = writeln!(h, "<p class=\"lead\">{}</p>", with_code(text));
        }
    }
    h.push_str("<h3>Questions and answers</h3>\n<dl>\n");
    if report.answers().next().is_none() {
        h.push_str("<dt>(this step reported no answers)</dt>\n");
    }
    for a in report.answers() {
        let _ = write!(
            h,
            "<dt>{}</dt>\n<dd>{}</dd>\n",
            with_code(&a.question),
            with_code(&a.answer)
        );
    }
    h.push_str("</dl>\n");
    if !s.pictures.is_empty() {
        h.push_str("<h3>Pictures</h3>\n<div class=\"pics\">\n");
    }
    for p in &s.pictures {
        match &p.svg {
            Ok(svg) => {
                let _ = write!(
                    h,
                    "<figure class=\"chart\" data-name=\"{}\" data-marks=\"{}\" \
                     data-min-marks=\"{}\"{}>\n<div class=\"scroll\">\n{svg}\n</div>\n<figcaption><b>{}.</b> {}</figcaption>\n\
                     </figure>\n",
                    escape(&p.file),
                    escape(p.marks.0),
                    p.marks.1,
                    // As wide as its picture, so that the caption wraps under it; the picture
                    // keeps its natural size and scrolls in a narrower window.
                    svg_width(svg)
                        .map(|w| format!(" style=\"width: {w}px\""))
                        .unwrap_or_default(),
                    escape(&p.title),
                    escape(&p.caption)
                );
            }
            Err(why) => {
                let _ = writeln!(
                    h,
                    "<p class=\"nopic\">No picture “{}”: {}</p>",
                    escape(&p.title),
                    escape(why)
                );
            }
        }
    }
    if !s.pictures.is_empty() {
        h.push_str("</div>\n");
    }
    let numbers = scalars(&report.findings);
    if !numbers.is_empty() {
        h.push_str("<h3>Numbers</h3>\n<table>\n");
        for (k, v) in numbers {
            let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
        }
        h.push_str("</table>\n");
    }
    if report.evidence().next().is_some() {
        h.push_str("<h3>Evidence</h3>\n");
    }
    for e in report.evidence() {
        // Raw material (every strace line, every table row) is folded away, as the terminal
        // shows it only with --verbose.
        let (open, close) = if e.raw {
            ("<details><summary>", "</summary>")
        } else {
            ("<h4>", "</h4>")
        };
        let _ = write!(
            h,
            "{open}{}{close}\n<pre>{}</pre>\n{}",
            escape(&e.title),
            escape(&e.text),
            if e.raw { "</details>\n" } else { "" }
        );
    }
    let _ = write!(
        h,
        "<details><summary>Raw data of step {} (JSON)</summary>\n<pre>{}</pre>\n</details>\n\
         </section>\n",
        s.step,
        escape(&serde_json::to_string_pretty(&report.findings).unwrap_or_default())
    );
}

/// The `width` of an SVG document's root element, in pixels.
fn svg_width(svg: &str) -> Option<u32> {
    let root = &svg[svg.find("<svg")?..];
    let root = &root[..root.find('>')?];
    let at = root.find(" width=\"")? + " width=\"".len();
    let len = root[at..].find('"')?;
    root[at..at + len].parse().ok()
}

/// The top-level scalar fields of a step's data, as (name, value) rows.
pub fn scalars(data: &serde_json::Value) -> Vec<(String, String)> {
    let Some(obj) = data.as_object() else {
        return Vec::new();
    };
    obj.iter()
        .filter_map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => "null".into(),
                _ => return None,
            };
            Some((k.clone(), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_break_out() {
        assert_eq!(
            escape(r#"a<b>&"c"'d'"#),
            "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;"
        );
        assert_eq!(escape("plain 0x7f ü"), "plain 0x7f ü");
    }

    #[test]
    fn page_is_self_contained_and_escaped() {
        let r = super::super::tests::sample();
        let page = render(&r);
        // No external resource of any kind.
        for bad in [
            "src=\"http",
            "href=\"http",
            "url(",
            "@import",
            "<link",
            "<img",
        ] {
            assert!(!page.contains(bad), "page contains {bad:?}");
        }
        // The evidence's hostile text is shown as text, never as markup.
        assert!(!page.contains("<script>alert(1)</script>"));
        assert!(page.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("openat(AT_FDCWD, &quot;a&lt;b&gt;&amp;c&quot;, O_RDONLY) = 3"));
        assert!(page.contains("<dt>Question &lt;1&gt; &amp; &quot;more&quot;?</dt>"));
        assert!(page.contains("<dd>Answer 1: 0x21 &lt; 0x22 &amp;&amp; <code>tick</code> *star*"));
        // Exactly one script (the self-check), and the picture count it checks against.
        let pictures: usize = r.sections.iter().map(|s| s.pictures.len()).sum();
        assert_eq!(page.matches("<script>").count(), 1);
        assert!(page.contains(&format!("data-pictures=\"{pictures}\"")));
        assert_eq!(page.matches("<figure class=\"chart\"").count(), pictures);
        assert_eq!(page.matches("<svg width=").count(), pictures);
        // The failed step has its section and its error.
        assert!(page.contains(
            "This step failed, so it has no answers: step 3 is not built yet &lt;oops&gt;"
        ));
        assert!(page.contains(
            "<td class=\"status-failed\">failed: step 3 is not built yet &lt;oops&gt;</td>"
        ));
        // Each section says what it was measured on.
        assert_eq!(
            page.matches("Measured on Linux 6.1.0 x86_64 · glibc 2.36")
                .count(),
            r.sections.len()
        );
        // The numbers table holds the step's scalar data.
        assert!(page.contains("<tr><th>threshold_request</th><td>131049</td></tr>"));
        assert!(page.contains("data-marks=\"circle\" data-min-marks=\"8\" style=\"width: 1100px\""));
    }

    #[test]
    fn the_page_starts_with_the_answers_at_a_glance() {
        let r = super::super::tests::sample();
        let page = render(&r);
        let glance = page
            .find("<h2>Answers at a glance</h2>")
            .expect("no glance block");
        assert!(glance < page.find("id=\"summary\"").unwrap());
        assert!(glance < page.find("<section id=\"step-1\"").unwrap());
        let items = page.matches("<li><b>").count();
        assert_eq!(items, lab_analysis::report::QUESTIONS.len());
        // Step 3 failed: its questions say so instead of showing an answer.
        assert!(page.contains("<li><b>3.2</b> naive writer: not measured: step 3 did not run</li>"));
    }

    #[test]
    fn the_page_ends_with_a_glossary_of_every_term() {
        let page = render(&super::super::tests::sample());
        let glossary = &page[page.find("<section id=\"glossary\">").expect("no glossary")..];
        for t in lab_analysis::glossary::TERMS {
            assert!(
                glossary.contains(&format!(
                    "<dt>{}</dt><dd>{}</dd>",
                    escape(t.term),
                    escape(t.meaning)
                )),
                "{} missing",
                t.term
            );
        }
        assert!(glossary.contains("<dt>COPY relocation</dt>"));
        assert!(glossary.contains("<dt>futex</dt>"));
    }

    #[test]
    fn backtick_spans_become_code() {
        assert_eq!(
            with_code("run `a < b` then `c`"),
            "run <code>a &lt; b</code> then <code>c</code>"
        );
        // An unpaired backtick is just text.
        assert_eq!(with_code("it`s <x>"), "it`s &lt;x&gt;");
    }

    #[test]
    fn scalars_skip_lists_and_objects() {
        let rows =
            scalars(&serde_json::json!({"a": 1, "b": [1], "c": {"d": 2}, "e": "x", "f": null}));
        assert_eq!(
            rows,
            vec![
                ("a".to_string(), "1".to_string()),
                ("e".to_string(), "x".to_string()),
                ("f".to_string(), "null".to_string())
            ]
        );
    }
}
