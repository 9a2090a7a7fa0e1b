//! The data of step 5's pictures, built from the [`Findings`] (xtask draws them): lost share,
//! and the final participant's runtime per increment of total, against participants, per mode.

use super::Findings;

/// What the pictures show, one row per race.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub participants: usize,
    /// `racy`, `atomic` or `racer`.
    pub mode: String,
    /// Lost updates over increments made (0..1).
    pub lost_share: Option<f64>,
    /// The final participant's runtime per increment of total, ns.
    pub ns_per_increment: Option<f64>,
}

impl Data {
    pub fn from_findings(f: &Findings) -> Data {
        Data {
            rows: f
                .races
                .iter()
                .map(|r| Row {
                    participants: r.participants,
                    mode: r.mode.name().to_string(),
                    lost_share: r.lost_share,
                    ns_per_increment: r.ns_per_increment,
                })
                .collect(),
        }
    }
}
