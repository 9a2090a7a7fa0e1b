//! A check's verdict on a submitted program: pass, fail or not tested, with a one-line reason
//! and the evidence lines that decided it. Shared by the TA's check ([`crate::check`]) and
//! run-step's judgments of `--program` / `--racer` (steps 2, 3 and 5).

use serde::{Deserialize, Serialize};

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    NotTested,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotTested => "not-tested",
        }
    }
}

/// One judged "Demonstrate" of the course (the `checks` rows of `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub id: String,
    pub program: Option<String>,
    pub verdict: Verdict,
    /// One line.
    pub reason: String,
    pub evidence: Vec<String>,
}

impl Check {
    /// The verdict as the step's narrative shows it: `Verdict (the TA's check of WHAT): PASS:
    /// reason` and the evidence that decided it.
    pub fn blocks(&self, what: &str) -> Vec<crate::Block> {
        let mut blocks = vec![crate::Block::text(format!(
            "Verdict (the TA's check of {what}, {}): {}: {}",
            self.id,
            self.verdict.name().to_uppercase(),
            self.reason
        ))];
        if !self.evidence.is_empty() {
            blocks.push(crate::Block::evidence(
                "What decided it",
                self.evidence
                    .iter()
                    .map(|l| format!("{l}\n"))
                    .collect::<String>(),
            ));
        }
        blocks
    }

    pub fn not_tested(id: &str, program: Option<String>, reason: impl Into<String>) -> Check {
        Check {
            id: id.to_string(),
            program,
            verdict: Verdict::NotTested,
            reason: reason.into(),
            evidence: Vec::new(),
        }
    }
}

/// `1,083`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn signed_thousands(n: i64) -> String {
    if n < 0 {
        format!("-{}", thousands(n.unsigned_abs()))
    } else {
        thousands(n as u64)
    }
}

pub fn plural(n: u64, what: &str) -> String {
    let s = if n == 1 {
        what.to_string()
    } else if what.ends_with("ss") {
        format!("{what}es")
    } else {
        format!("{what}s")
    };
    format!("{} {s}", thousands(n))
}
