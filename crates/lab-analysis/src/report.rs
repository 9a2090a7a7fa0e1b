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
        })
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
}
