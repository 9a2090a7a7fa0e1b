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
    eprintln!("[xtask] {msg}");
}
