//! The narrative a step's explain returns, rendered by xtask on the terminal and in the report,
//! and printed by `--json` as it is.

use serde::Serialize;

/// The result of one step: the narrative and the typed findings, serialised.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: u8,
    pub title: String,
    /// The narrative, in order.
    pub blocks: Vec<Block>,
    /// The step's typed findings, serialised.
    pub findings: serde_json::Value,
    /// This step's lines of `== Answers at a glance` (course questions it answers).
    pub glance: Vec<Glance>,
}

impl StepReport {
    /// The assignment's questions with this run's answers.
    pub fn answers(&self) -> impl Iterator<Item = &Answer> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Answer(a) => Some(a),
            _ => None,
        })
    }

    /// The raw evidence excerpts.
    pub fn evidence(&self) -> impl Iterator<Item = &Excerpt> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Evidence(e) => Some(e),
            _ => None,
        })
    }
}

/// One piece of a step's narrative.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    /// A sub-heading.
    Heading { title: String },
    /// Prose (may span lines); computed numbers are formatted into it.
    Text { text: String },
    /// A preformatted excerpt of raw evidence (strace lines, a table, maps lines).
    Evidence(Excerpt),
    /// One question of the assignment and this run's answer.
    Answer(Answer),
}

impl Block {
    pub fn heading(title: impl Into<String>) -> Block {
        Block::Heading {
            title: title.into(),
        }
    }

    pub fn text(text: impl Into<String>) -> Block {
        Block::Text { text: text.into() }
    }

    pub fn evidence(title: impl Into<String>, text: impl Into<String>) -> Block {
        Block::Evidence(Excerpt {
            title: title.into(),
            text: text.into(),
            raw: false,
        })
    }

    /// Raw material (every strace line, every table row, JSON lines): shown with `--verbose`
    /// only; by default one line says it is there.
    pub fn raw(title: impl Into<String>, text: impl Into<String>) -> Block {
        Block::Evidence(Excerpt {
            title: title.into(),
            text: text.into(),
            raw: true,
        })
    }

    /// Whether this block is raw material (shown with `--verbose` only).
    pub fn is_raw(&self) -> bool {
        matches!(self, Block::Evidence(e) if e.raw)
    }

    pub fn answer(question: impl Into<String>, answer: impl Into<String>) -> Block {
        Block::Answer(Answer {
            question: question.into(),
            answer: answer.into(),
        })
    }
}

/// One question of the assignment and the answer this run's measurements give.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub question: String,
    pub answer: String,
}

/// A block of raw evidence (strace lines, tags, maps, a table), shown preformatted.
#[derive(Debug, Clone, Serialize)]
pub struct Excerpt {
    pub title: String,
    pub text: String,
    /// Raw material: rendered only with `--verbose`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
}

/// The course's questions, numbered as `== Answers at a glance` lists them, with the step that
/// answers each.
pub const QUESTIONS: [(&str, u8, &str); 17] = [
    ("1.1", 1, "free/in-use bit"),
    ("1.2", 1, "heap/mmap bit"),
    ("1.3", 1, "switch to mmap"),
    ("1.4", 1, "x vs mmap length"),
    ("2.1", 2, "table via mmap"),
    ("3.1", 3, "+300 persisted"),
    ("3.2", 3, "naive writer"),
    ("3.3", 3, "the fix"),
    ("4.1", 4, "mmaps of the library"),
    ("4.2", 4, "which holds what"),
    ("4.3", 4, "flags and why"),
    ("5.1", 5, "winnings vs total"),
    ("5.2", 5, "by participants"),
    ("5.3", 5, "final runtime"),
    ("5.4", 5, "why they differ"),
    ("5.5", 5, "with lock incq"),
    ("5.6", 5, "lock incq by participants"),
];

/// The longest line `== Answers at a glance` prints, number and label included.
pub const GLANCE_MAX: usize = 200;

/// At most `max` characters, an ellipsis marking the cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// One line of `== Answers at a glance`: a course question's number and this run's answer,
/// with its figures (computed from the step's findings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Glance {
    pub number: String,
    pub text: String,
}

impl Glance {
    pub fn new(number: &str, text: impl Into<String>) -> Glance {
        Glance {
            number: number.to_string(),
            text: text.into(),
        }
    }

    /// The line as printed: `1.3 switch to mmap: …`.
    pub fn line(&self) -> String {
        let label = QUESTIONS
            .iter()
            .find(|(n, _, _)| *n == self.number)
            .map_or("", |(_, _, label)| label);
        format!("{} {label}: {}", self.number, self.text)
    }
}

/// `== Answers at a glance` for these steps' reports: one line per course question, in order;
/// a question whose step did not run, or whose figure this run did not measure, says so.
pub fn at_a_glance(reports: &[&StepReport]) -> Vec<Glance> {
    QUESTIONS
        .iter()
        .map(
            |(number, step, _)| match reports.iter().find(|r| r.step == *step) {
                None => Glance::new(number, format!("not measured: step {step} did not run")),
                Some(r) => r
                    .glance
                    .iter()
                    .find(|g| g.number == *number)
                    .cloned()
                    .unwrap_or_else(|| Glance::new(number, "not measured in this run")),
            },
        )
        .collect()
}
