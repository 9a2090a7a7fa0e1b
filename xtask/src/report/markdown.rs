//! The Markdown twin of the HTML page: the same content, the pictures linked as the `.svg` files
//! written beside it, evidence in fenced code blocks whose fence is longer than any backtick run
//! in the text.

use std::fmt::Write as _;

use super::{html::scalars, Outcome, Report};

/// Escapes inline text so that Markdown shows it literally (no emphasis, links, HTML or tables).
pub fn escape_inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// Multi-line inline text: each line escaped (its paired `backtick spans` kept as code spans),
/// lines joined with hard breaks.
fn paragraph(s: &str) -> String {
    s.lines()
        .map(line_with_code)
        .collect::<Vec<_>>()
        .join("  \n")
}

/// One line, escaped, with its `backtick spans` as Markdown code spans (when they pair up).
fn line_with_code(s: &str) -> String {
    if s.matches('`').count() % 2 != 0 {
        return escape_inline(s);
    }
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 && !part.is_empty() {
                // A code span shows its content literally; pad when it touches a backtick or
                // starts or ends with a space, as CommonMark strips one space from each side.
                format!("`` {part} ``")
            } else {
                escape_inline(part)
            }
        })
        .collect()
}

/// A fenced code block that the text cannot close early.
pub fn fenced(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{}\n{fence}\n", text.trim_end_matches('\n'))
}

/// The whole Markdown document.
pub fn render(report: &Report) -> String {
    let mut m = String::new();
    let _ = write!(
        m,
        "# mmap-lab report\n\nHomework 6: mmap and shared memory. Every answer below was computed \
         from this run's measurements on the machine described here ({}, generated {}).\n",
        if report.quick {
            "short run, `--quick`"
        } else {
            "full run"
        },
        escape_inline(&report.generated)
    );
    glance(&mut m, report);
    m.push_str("\n## Machine\n\n| | |\n|---|---|\n");
    for (k, v) in &report.machine {
        let _ = writeln!(m, "| {} | {} |", escape_inline(k), escape_inline(v));
    }
    m.push_str("\n## Steps\n\n| Step | Title | Result | Time |\n|---|---|---|---|\n");
    for s in &report.sections {
        let result = match &s.outcome {
            Outcome::Done(_) => "ok".to_string(),
            Outcome::Failed(e) => format!("failed: {}", e.lines().next().unwrap_or("")),
        };
        let _ = writeln!(
            m,
            "| {} | {} | {} | {:.1} s |",
            s.step,
            escape_inline(&s.title),
            escape_inline(&result),
            s.seconds
        );
    }
    let machine = report.machine_line();
    for s in &report.sections {
        let _ = write!(
            m,
            "\n## Step {}: {}\n\n*Measured on {} in {:.1} s.*\n\n",
            s.step,
            escape_inline(&s.title),
            escape_inline(&machine),
            s.seconds
        );
        let r = match &s.outcome {
            Outcome::Failed(e) => {
                let _ = writeln!(
                    m,
                    "**This step failed, so it has no answers:**\n\n{}",
                    fenced(e)
                );
                continue;
            }
            Outcome::Done(r) => r,
        };
        m.push_str("### Questions and answers\n\n");
        if r.answers().next().is_none() {
            m.push_str("(this step reported no answers)\n\n");
        }
        for a in r.answers() {
            let _ = write!(
                m,
                "**{}**\n\n{}\n\n",
                paragraph(&a.question),
                paragraph(&a.answer)
            );
        }
        if !s.pictures.is_empty() {
            m.push_str("### Pictures\n\n");
        }
        for p in &s.pictures {
            match &p.svg {
                Ok(_) => {
                    let _ = write!(
                        m,
                        "![{}]({})\n\n*{}.* {}\n\n",
                        escape_inline(&p.title),
                        p.file,
                        escape_inline(&p.title),
                        paragraph(&p.caption)
                    );
                }
                Err(why) => {
                    let _ = write!(
                        m,
                        "*No picture “{}”: {}*\n\n",
                        escape_inline(&p.title),
                        escape_inline(why)
                    );
                }
            }
        }
        let numbers = scalars(&r.findings);
        if !numbers.is_empty() {
            m.push_str("### Numbers\n\n| field | value |\n|---|---|\n");
            for (k, v) in numbers {
                let _ = writeln!(m, "| {} | {} |", escape_inline(&k), escape_inline(&v));
            }
            m.push('\n');
        }
        if r.evidence().next().is_some() {
            m.push_str("### Evidence\n\n");
        }
        for e in r.evidence() {
            let _ = write!(
                m,
                "#### {}\n\n{}\n",
                escape_inline(&e.title),
                fenced(&e.text)
            );
        }
    }
    glossary(&mut m);
    m
}

/// `## Answers at a glance`: one line per course question.
fn glance(m: &mut String, report: &Report) {
    m.push_str("\n## Answers at a glance\n\n");
    for g in report.glance() {
        let _ = writeln!(m, "- {}", escape_inline(&g.line()));
    }
}

/// `## Glossary`: the terms the answers use.
fn glossary(m: &mut String) {
    m.push_str("\n## Glossary\n\n");
    for t in lab_analysis::glossary::TERMS {
        let _ = writeln!(
            m,
            "- **{}**: {}",
            escape_inline(t.term),
            escape_inline(t.meaning)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_text_is_literal() {
        assert_eq!(
            escape_inline("a*b_c `d` <e> [f](g) | h & i"),
            r"a\*b\_c \`d\` \<e\> \[f\](g) \| h &amp; i"
        );
    }

    #[test]
    fn code_spans_survive_escaping() {
        assert_eq!(
            line_with_code("run `a*b` then *c*"),
            r"run `` a*b `` then \*c\*"
        );
        assert_eq!(line_with_code("it`s"), r"it\`s");
    }

    #[test]
    fn fence_outlasts_the_text() {
        assert_eq!(fenced("x"), "```text\nx\n```\n");
        let f = fenced("a\n```\nb ```` c\n");
        assert!(f.starts_with("`````text\n"));
        assert!(f.ends_with("\n`````\n"));
    }

    #[test]
    fn twin_has_the_same_content() {
        let r = super::super::tests::sample();
        let md = render(&r);
        assert!(md.starts_with("# mmap-lab report"));
        for s in &r.sections {
            assert!(md.contains(&format!("## Step {}: ", s.step)));
        }
        // Answers escaped, evidence fenced past its own ``` line.
        assert!(md
            .contains(r"Answer 1: 0x21 \< 0x22 &amp;&amp; `` tick `` \*star\* \_under\_ \|pipe\|"));
        assert!(md.contains("````text\nmmap(NULL, 135168"));
        assert!(md.contains("</pre><script>alert(1)</script>\n````\n"));
        // Pictures linked as files, failure shown.
        assert!(md.contains("](step1-chunks.svg)"));
        assert!(md.contains("](step5-runtime.svg)"));
        assert!(md.contains("**This step failed, so it has no answers:**\n\n```text\nstep 3 is not built yet <oops>\n```"));
        assert!(md.contains("| threshold\\_request | 131049 |"));
        assert_eq!(
            md.matches("*Measured on Linux 6.1.0 x86\\_64").count(),
            r.sections.len()
        );
    }
}
