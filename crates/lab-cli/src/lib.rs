//! What every mmap-lab binary shares: the command-line convention, ([`mod@file`]) opening a
//! file that must be a regular one without blocking on a FIFO, and ([`out`]) telling whether the
//! program was started with its stdout closed (`>&-`), which Rust's runtime otherwise hides.
//!
//! The command-line convention: a usage error is ONE line on stderr,
//! `error: PROBLEM (see 'PROG --help')`, with exit status 2; `--help` and `--version` print as
//! usual and exit 0 (also when the reader closes the pipe early, `--help | head -1`; a write that
//! fails otherwise, `--help >/dev/full`, is `error: cannot write to stdout: …`, exit 1).
//!
//! clap's own rendering spreads an error over several lines (the problem, a tip, the usage, a
//! pointer to `--help`). Scripts and students read the first line; this keeps what matters from
//! the others (the tip and which `--help` to read) on that line.
//!
//! ```no_run
//! # #[derive(clap::Parser)] struct Cli {}
//! fn main() -> std::process::ExitCode {
//!     let cli: Cli = match lab_cli::parse() {
//!         Ok(cli) => cli,
//!         Err(status) => return status,
//!     };
//!     // ... run, map runtime errors to `error: …` and exit status 1 ...
//! #   std::process::ExitCode::SUCCESS
//! }
//! ```

pub mod file;
pub mod out;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line; on a usage error prints the one-line message (or the help/version
/// text) and returns the exit status the program should end with.
pub fn parse<T: Parser>() -> Result<T, ExitCode> {
    T::try_parse().map_err(|e| report(&e, T::command().get_name()))
}

/// Prints a clap error the lab's way and returns the exit status: 0 for `--help`/`--version`
/// (printed as clap renders them), 2 for a usage error (one line). `program` names the command
/// whose `--help` to suggest when clap's message does not name a subcommand.
pub fn report(e: &clap::Error, program: &str) -> ExitCode {
    use std::io::Write as _;
    if !e.use_stderr() {
        // `--help >/dev/full` must not claim success: a help text nobody got is an error. A
        // reader that stopped reading (`--help | head -1`) got what it wanted, as after the data
        // commands' output: status 0, nothing said.
        return match e.print() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(err) => {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "error: cannot write to stdout: {err}"
                );
                ExitCode::FAILURE
            }
        };
    }
    // Best effort: with stderr closed or full, the exit status still says what happened.
    let _ = writeln!(std::io::stderr().lock(), "error: {}", one_line(e, program));
    ExitCode::from(2)
}

/// The usage error as one line: clap's first paragraph, its tip if any, and which `--help` to
/// read (the subcommand's, when clap printed a usage line for it).
pub fn one_line(e: &clap::Error, program: &str) -> String {
    // `render` gives the text without terminal colours.
    let text = e.render().to_string();
    let mut problem = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            break;
        }
        problem.push(line.strip_prefix("error:").unwrap_or(line).trim());
    }
    let mut out = problem.join(" ");
    if out.is_empty() {
        out.push_str("invalid command line");
    }
    let lines = || text.lines().map(str::trim);
    if let Some(tip) = lines().find_map(|l| l.strip_prefix("tip:")) {
        out.push_str("; ");
        out.push_str(tip.trim());
    }
    // `Usage: malloc-probe alloc [OPTIONS] <SIZES>...` names the (sub)command the user typed.
    let command = lines()
        .find_map(|l| l.strip_prefix("Usage:"))
        .map(|u| {
            u.split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| program.to_string());
    out.push_str(&format!(" (see '{command} --help')"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Parser, Debug)]
    #[command(name = "probe")]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand, Debug)]
    enum Cmd {
        Alloc {
            #[arg(required = true)]
            sizes: Vec<u64>,
        },
        Sweep,
    }

    fn error(args: &[&str]) -> clap::Error {
        let mut argv = vec!["probe"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap_err()
    }

    #[test]
    fn an_invalid_value_is_one_line_naming_the_value_and_the_help() {
        let line = one_line(&error(&["alloc", "abc"]), "probe");
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("invalid value 'abc' for '<SIZES>...'"),
            "{line}"
        );
        assert!(line.ends_with("(see 'probe --help')"), "{line}");
    }

    #[test]
    fn a_missing_argument_keeps_its_name_and_points_at_the_subcommand_help() {
        let line = one_line(&error(&["alloc"]), "probe");
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains("required arguments were not provided"),
            "{line}"
        );
        assert!(line.contains("<SIZES>"), "{line}");
        assert!(line.ends_with("(see 'probe alloc --help')"), "{line}");
    }

    #[test]
    fn a_tip_is_kept_on_the_same_line() {
        let line = one_line(&error(&["alloc", "-5"]), "probe");
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("unexpected argument '-5' found; "),
            "{line}"
        );
        assert!(line.contains("'-- -5'"), "{line}");
    }

    #[test]
    fn help_is_not_an_error_and_usage_errors_exit_2() {
        assert!(!error(&["--help"]).use_stderr());
        assert_eq!(report(&error(&["--help"]), "probe"), ExitCode::SUCCESS);
        assert_eq!(report(&error(&["bogus"]), "probe"), ExitCode::from(2));
    }
}
