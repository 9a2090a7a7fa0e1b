//! Where human output goes. Steps print their explanation with [`say!`]; normally that is stdout,
//! but `cargo xtask report` sends it to stderr (as progress) so stdout carries only the result.

use std::sync::atomic::{AtomicBool, Ordering};

static TO_STDERR: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);
/// The glossary's terms already explained in this run (each is explained at its first use).
static EXPLAINED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

/// Shows raw material (every strace line, every table row, JSON lines) from now on.
pub fn verbose() {
    VERBOSE.store(true, Ordering::Relaxed);
}

/// Sends all later [`say!`] output to stderr instead of stdout.
pub fn to_stderr() {
    TO_STDERR.store(true, Ordering::Relaxed);
}

#[doc(hidden)]
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    // Output is best effort: a closed pipe (`| head`) must not turn into a panic.
    if TO_STDERR.load(Ordering::Relaxed) {
        let _ = writeln!(std::io::stderr().lock(), "{args}");
    } else {
        let _ = writeln!(std::io::stdout().lock(), "{args}");
    }
}

/// Prints one line of a step's human explanation.
#[macro_export]
macro_rules! say {
    () => { $crate::out::write_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::out::write_line(format_args!($($arg)*)) };
}

/// Prints a section heading.
pub fn heading(title: &str) {
    write_line(format_args!(
        "\n== {title} {}",
        "=".repeat(70usize.saturating_sub(title.len()))
    ));
}

/// Prints a sub-heading.
pub fn subheading(title: &str) {
    write_line(format_args!("\n-- {title}"));
}

/// Progress for long runs: always stderr.
pub fn progress(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "[xtask] {msg}");
}

/// A one-line error on stderr (best effort: stderr may be closed or full). Not after a signal:
/// then the interrupt's line is the only one ([`crate::interrupt::settle`]).
pub fn error(msg: &str) {
    use std::io::Write;
    crate::interrupt::settle();
    let _ = writeln!(std::io::stderr().lock(), "error: {msg}");
}

/// Prints a value as one JSON document on stdout.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value)?;
    writeln!(std::io::stdout().lock(), "{text}")
        .map_err(|e| anyhow::anyhow!("cannot write the JSON report to stdout: {e}"))
}

/// Prints a step's narrative: the answers first (each question with this run's answer), then
/// the evidence that decides them; raw excerpts only with `--verbose` (otherwise one line says
/// what they hold).
pub fn render(report: &lab_analysis::StepReport) {
    let mut seen = EXPLAINED.lock().unwrap_or_else(|e| e.into_inner());
    for line in lines(report, VERBOSE.load(Ordering::Relaxed), &mut seen) {
        write_line(format_args!("{line}"));
    }
}

/// The line that explains the glossary's terms first used in `line`, if any.
fn explain_terms(line: &str, seen: &mut Vec<&'static str>) -> Option<String> {
    let terms = lab_analysis::glossary::first_uses(line, seen);
    (!terms.is_empty()).then(|| {
        let each: Vec<String> = terms
            .iter()
            .map(|t| format!("{}: {}", t.term, t.meaning))
            .collect();
        format!("   ({})", each.join("; "))
    })
}

/// The lines [`render`] prints.
pub fn lines(
    report: &lab_analysis::StepReport,
    verbose: bool,
    seen: &mut Vec<&'static str>,
) -> Vec<String> {
    use lab_analysis::Block;
    let mut out = Vec::new();
    let mut hidden = Vec::new();
    // A heading is printed with the first block under it that is shown: a section whose only
    // content is raw material disappears without --verbose.
    let mut heading: Option<&str> = None;
    for block in &report.blocks {
        if let Block::Heading { title } = block {
            heading = Some(title);
            continue;
        }
        if block.is_raw() && !verbose {
            if let Block::Evidence(e) = block {
                let n = e.text.lines().count();
                let lines = if n == 1 { "line" } else { "lines" };
                hidden.push(format!("{} ({n} {lines})", e.title));
            }
            continue;
        }
        if let Some(title) = heading.take() {
            out.push(format!("\n-- {title}"));
        }
        // Each glossary term is explained after the first line that uses it (prose, a
        // question, an answer, an excerpt's title; not inside raw lines).
        let mut said = |out: &mut Vec<String>, line: String| {
            let terms = explain_terms(&line, seen);
            out.push(line);
            out.extend(terms);
        };
        match block {
            Block::Heading { .. } => {}
            Block::Text { text } => {
                for line in text.lines() {
                    said(&mut out, line.to_string());
                }
            }
            Block::Evidence(e) => {
                said(&mut out, format!("{}:", e.title));
                out.extend(e.text.lines().map(|l| format!("    {l}")));
            }
            Block::Answer(a) => {
                said(&mut out, format!("\nQ: {}", a.question));
                for (i, line) in a.answer.lines().enumerate() {
                    let prefix = if i == 0 { "A: " } else { "" };
                    said(&mut out, format!("{prefix}{line}"));
                }
            }
        }
    }
    if !hidden.is_empty() {
        out.push(format!(
            "\n(--verbose adds the raw material: {})",
            hidden.join("; ")
        ));
    }
    out
}

/// Prints `== Answers at a glance`: one line per course question.
pub fn glance(lines: &[lab_analysis::Glance]) {
    heading("Answers at a glance");
    for g in lines {
        write_line(format_args!("{}", g.line()));
    }
}
