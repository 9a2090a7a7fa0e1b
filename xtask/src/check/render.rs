//! The check's result for the TA: one line per check (id, verdict, reason) with its evidence
//! indented, `--json` (one document on stdout), `--markdown FILE` (a copy for the records).

use anyhow::Context as _;

use super::judge::Verdict;
use super::{CheckArgs, Report};

/// Prints the report as asked, and writes the Markdown copy.
pub fn emit(report: &Report, args: &CheckArgs) -> anyhow::Result<()> {
    if args.json {
        crate::out::json(report)?;
    } else {
        for line in human(report).lines() {
            crate::say!("{line}");
        }
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, markdown(report))
            .with_context(|| format!("cannot write --markdown {}", path.display()))?;
    }
    Ok(())
}

fn build_line(report: &Report) -> String {
    let b = &report.build;
    if !b.ran {
        "build: no Makefile; the programs were taken as they are".into()
    } else {
        match b.status {
            Some(0) => "build: make succeeded".into(),
            Some(s) => format!("build: make FAILED with status {s}"),
            None => "build: make was killed (it hung or flooded its output)".into(),
        }
    }
}

/// The line naming what was left out of the copy because it cannot be read (`None`: nothing).
fn skipped_line(report: &Report) -> Option<String> {
    (!report.skipped.is_empty()).then(|| {
        format!(
            "skipped, as it cannot be read: {}",
            report.skipped.join("; ")
        )
    })
}

/// The closing line: how many checks failed, or that nothing was tested at all (which exits 1,
/// as a failure does: it is no pass).
fn summary_line(report: &Report) -> String {
    let failed = report
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .count();
    if report.nothing_tested() {
        format!(
            "nothing was tested: none of the {} checks found a program it could run",
            report.checks.len()
        )
    } else {
        format!("{} of {} checks failed", failed, report.checks.len())
    }
}

/// The terminal form.
pub fn human(report: &Report) -> String {
    let mut out = format!("check of {}\n{}\n", report.submission, build_line(report));
    if let Some(line) = skipped_line(report) {
        out.push_str(&format!("{line}\n"));
    }
    if report.build.ran && report.build.status != Some(0) {
        for l in report.build.log_tail.lines() {
            out.push_str(&format!("    {l}\n"));
        }
    }
    for c in &report.checks {
        out.push_str(&format!(
            "{:<20} {:<11} {}\n",
            c.id,
            c.verdict.name(),
            c.reason
        ));
        if let Some(p) = &c.program {
            out.push_str(&format!("    program: {p}\n"));
        }
        for e in &c.evidence {
            out.push_str(&format!("    {e}\n"));
        }
    }
    out.push_str(&format!("{}\n", summary_line(report)));
    out
}

/// The Markdown copy.
pub fn markdown(report: &Report) -> String {
    let mut out = format!(
        "# Check of `{}`\n\n{}\n\n{}{}\n\n| check | verdict | reason |\n|---|---|---|\n",
        report.submission,
        build_line(report),
        skipped_line(report).map_or(String::new(), |l| format!("{l}\n\n")),
        summary_line(report)
    );
    for c in &report.checks {
        out.push_str(&format!(
            "| `{}` | **{}** | {} |\n",
            c.id,
            c.verdict.name(),
            c.reason.replace('|', "\\|")
        ));
    }
    if report.build.ran {
        out.push_str(&format!(
            "\n## Build log (tail)\n\n```\n{}\n```\n",
            report.build.log_tail
        ));
    }
    for c in &report.checks {
        out.push_str(&format!("\n## {} — {}\n\n", c.id, c.verdict.name()));
        if let Some(p) = &c.program {
            out.push_str(&format!("Program: `{p}`\n\n"));
        }
        out.push_str(&format!("{}\n\n", c.reason));
        for e in &c.evidence {
            out.push_str(&format!("- {}\n", e.replace('\n', " ")));
        }
    }
    out
}
