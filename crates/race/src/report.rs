//! The `--json` document of `race`, defined once: the binary serialises it, `cargo xtask` (or
//! any other consumer) deserialises it. Every field is required when reading except `summary`,
//! which only the first instance prints: a missing field is an error that names it, never a 0.

use serde::{Deserialize, Serialize};

/// How `total` is incremented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A relaxed load, then a relaxed store of value+1: the C program's `total++`, a real lost
    /// update when two processes interleave, without undefined behaviour.
    Racy,
    /// `fetch_add` on `total`: a locked read-modify-write that loses nothing.
    Atomic,
}

impl Mode {
    /// `racy` or `atomic`, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Racy => "racy",
            Mode::Atomic => "atomic",
        }
    }
}

/// What one instance prints with `--json`: `{"id","total","winnings",…,"summary"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Its number in the race, 1 to N (`winnings[id-1]` is its own).
    pub id: i32,
    /// The value of `total` it saw when its loop stopped (at least the target).
    pub total: i64,
    /// Its own `winnings[id-1]` when its loop stopped.
    pub winnings: i64,
    pub mode: Mode,
    pub target: i64,
    /// Whether this instance created the race (and so reports the summary).
    pub first: bool,
    /// How long its race loop ran, wall clock.
    pub seconds: f64,
    /// The CPU time its race loop took (the loop thread's own: not the watcher's).
    pub cpu_seconds: f64,
    /// The first instance's view of the whole race, once it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

/// What the first instance reads from the file once the race is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub participants: i32,
    /// `total` in the file when the summary was taken.
    pub total: i64,
    /// `winnings[0..participants]`, by id-1.
    pub winnings: Vec<i64>,
    pub sum_of_winnings: i64,
    /// `sum_of_winnings - total`: increments of `total` that another process overwrote.
    pub lost_updates: i64,
    /// Processes that still had the file mapped read-write when the summary was taken (nothing
    /// had moved for a while): racers that never left, whose last increments may be missing.
    /// Empty when every other participant had left.
    pub still_held_by: Vec<u32>,
    /// Racers that stopped holding the file before the race finished (killed, crashed): their
    /// `winnings` are what they made before, not a result. Absent when there were none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ended_early: Vec<Departure>,
}

/// A racer that stopped holding the race file before the race finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Departure {
    pub pid: u32,
    /// Its id, when one `winnings` slot alone stopped moving when it left.
    pub id: Option<i32>,
    /// `total` when the watcher saw it gone.
    pub total: i64,
    /// Its `winnings[id-1]` as it left them, when the id is known.
    pub winnings: Option<i64>,
    /// It was the race's creator (then another racer took the summary over). Absent when not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creator: bool,
}

impl Summary {
    /// The summary of a race with these counters.
    pub fn new(total: i64, winnings: Vec<i64>, still_held_by: Vec<u32>) -> Summary {
        let sum_of_winnings = winnings.iter().sum();
        Summary {
            participants: winnings.len() as i32,
            total,
            sum_of_winnings,
            lost_updates: sum_of_winnings - total,
            winnings,
            still_held_by,
            ended_early: Vec::new(),
        }
    }

    /// The lost updates as a share of the increments made (sum of winnings), in percent.
    pub fn lost_percent(&self) -> f64 {
        if self.sum_of_winnings > 0 {
            100.0 * self.lost_updates as f64 / self.sum_of_winnings as f64
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            id: 2,
            total: 1000,
            winnings: 600,
            mode: Mode::Racy,
            target: 1000,
            first: true,
            seconds: 0.5,
            cpu_seconds: 0.25,
            summary: Some(Summary::new(1000, vec![500, 600], vec![])),
        }
    }

    #[test]
    fn round_trips_and_computes_the_lost_updates() {
        let r = report();
        let s = r.summary.as_ref().unwrap();
        assert_eq!(
            (s.participants, s.sum_of_winnings, s.lost_updates),
            (2, 1100, 100)
        );
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""mode":"racy""#), "{text}");
        assert_eq!(serde_json::from_str::<Report>(&text).unwrap(), r);
    }

    #[test]
    fn a_joiner_has_no_summary() {
        let mut r = report();
        r.summary = None;
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("summary"), "{text}");
        assert_eq!(serde_json::from_str::<Report>(&text).unwrap(), r);
    }

    #[test]
    fn a_missing_field_is_an_error_naming_it() {
        let mut v = serde_json::to_value(report()).unwrap();
        v.as_object_mut().unwrap().remove("winnings");
        let e = serde_json::from_value::<Report>(v).unwrap_err().to_string();
        assert!(e.contains("missing field `winnings`"), "{e}");
        let mut v = serde_json::to_value(report()).unwrap();
        v["summary"].as_object_mut().unwrap().remove("lost_updates");
        let e = serde_json::from_value::<Report>(v).unwrap_err().to_string();
        assert!(e.contains("missing field `lost_updates`"), "{e}");
        let mut v = serde_json::to_value(report()).unwrap();
        v["mode"] = "fast".into();
        assert!(serde_json::from_value::<Report>(v).is_err());
    }
}
