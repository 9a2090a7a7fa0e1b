//! Where human output goes. Steps print their explanation with [`say!`]; normally that is stdout,
//! but `cargo xtask report` sends it to stderr (as progress) so stdout carries only the result.

use std::sync::atomic::{AtomicBool, Ordering};

static TO_STDERR: AtomicBool = AtomicBool::new(false);

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

/// A one-line error on stderr (best effort: stderr may be closed or full).
pub fn error(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "error: {msg}");
}

/// Prints a value as one JSON document on stdout.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value)?;
    writeln!(std::io::stdout().lock(), "{text}")
        .map_err(|e| anyhow::anyhow!("cannot write the JSON report to stdout: {e}"))
}

/// Prints a step's narrative: headings, prose, evidence excerpts (indented), and each question
/// of the assignment with this run's answer.
pub fn render(report: &lab_analysis::StepReport) {
    use lab_analysis::Block;
    for block in &report.blocks {
        match block {
            Block::Heading { title } => subheading(title),
            Block::Text { text } => write_line(format_args!("{text}")),
            Block::Evidence(e) => {
                write_line(format_args!("{}:", e.title));
                for line in e.text.lines() {
                    write_line(format_args!("    {line}"));
                }
            }
            Block::Answer(a) => {
                write_line(format_args!("\nQ: {}", a.question));
                write_line(format_args!("A: {}", a.answer));
            }
        }
    }
}
