//! Step 5's lines of `== Answers at a glance` (5.1–5.6), from the findings alone.
//!
//! Two measures, never mixed: *ns per increment of total* (the final participant's runtime over
//! the target) and *ns per increment made* (CPU time over every increment any racer made).

use super::analyze::{Findings, RaceFinding, RuntimeTrend};
use super::Mode;
use crate::report::Glance;

/// 5.1 sum vs total, 5.2 by participants, 5.3 the final participant's runtime, 5.4 why, 5.5 the
/// runtime with a locked increment, 5.6 how that varies.
pub fn glance(f: &Findings) -> Vec<Glance> {
    vec![
        sum_vs_total(f),
        by_participants(f),
        runtime("5.3", f, f.lost.lossy_mode),
        why(f),
        runtime("5.5", f, Mode::Atomic),
        atomic_trend(f),
    ]
}

fn lossy(f: &Findings) -> Vec<&RaceFinding> {
    f.races
        .iter()
        .filter(|r| r.mode == f.lost.lossy_mode)
        .collect()
}

fn pct(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn busy(f: &Findings) -> &'static str {
    if !f.shortages.iter().any(|s| s.busy()) {
        ""
    } else {
        " (busy: racers were short of CPU)"
    }
}

fn sum_vs_total(f: &Findings) -> Glance {
    let l = &f.lost;
    let text = match l.share_range {
        Some((lo, hi)) if l.multi > 0 => format!(
            "{}with 2+ {}racers the winnings sum to more than total in {} of {} races: {}-{} of \
             the increments made were lost from total",
            match l.alone_exact {
                Some(true) => "alone, sum = total; ",
                Some(false) => "alone, sum != total; ",
                None => "",
            },
            match l.lossy_mode {
                Mode::Racer => String::new(),
                m => format!("{} ", m.name()),
            },
            l.multi_lossy,
            l.multi,
            pct(lo),
            pct(hi)
        ),
        _ => "not measured: no race of 2 or more participants finished".into(),
    };
    Glance::new("5.1", text)
}

fn by_participants(f: &Findings) -> Glance {
    let races = lossy(f);
    let each: Vec<String> = races
        .iter()
        .map(|r| {
            format!(
                "{}: {}",
                r.participants,
                r.lost_share.map_or("unknown".into(), pct)
            )
        })
        .collect();
    let text = if each.is_empty() {
        "not measured: no race finished".to_string()
    } else {
        format!(
            "lost share of increments made, by participants: {}{}",
            each.join(", "),
            busy(f)
        )
    };
    Glance::new("5.2", text)
}

fn trend(f: &Findings, mode: Mode) -> Option<&RuntimeTrend> {
    f.runtime
        .iter()
        .find(|t| t.mode == mode && !t.points.is_empty())
}

fn runtime(number: &str, f: &Findings, mode: Mode) -> Glance {
    let text = match trend(f, mode) {
        None => format!("not measured: no {} race finished", mode.name()),
        Some(t) => {
            let each: Vec<String> = t
                .points
                .iter()
                .map(|p| format!("{}: {:.3} s", p.participants, p.seconds))
                .collect();
            let target = t.target.map_or(String::new(), |t| format!(" to {t}"));
            format!(
                "{}{target}, by participants: {}{}",
                mode.name(),
                each.join(", "),
                busy(f)
            )
        }
    };
    Glance::new(number, text)
}

fn why(f: &Findings) -> Glance {
    let text = match &f.racy_loop {
        Some(l) if l.locked.is_empty() => format!(
            "total++ is a load and a separate store ({} instructions, 0 locked): racers that \
             load the same value store the same +1, so total loses what each winnings counted",
            l.instructions.len()
        ),
        Some(l) => format!(
            "the racy loop has {} locked instruction(s) ({}): losses then do not come from total",
            l.locked.len(),
            l.locked.join(", ")
        ),
        None => "not measured: the race loop was not disassembled".into(),
    };
    Glance::new("5.4", crate::report::shorten(&text, 185))
}

fn atomic_trend(f: &Findings) -> Glance {
    let text = match trend(f, Mode::Atomic) {
        None => "not measured: no atomic race finished".to_string(),
        Some(t) => {
            let each: Vec<String> = t
                .points
                .iter()
                .map(|p| format!("{}: {:.2}", p.participants, p.ns_per_increment))
                .collect();
            let lost = if f.lost.atomic_lossy.is_empty() {
                format!("none lost in {} atomic races", f.lost.atomic_races)
            } else {
                format!("LOST updates with {:?} participants", f.lost.atomic_lossy)
            };
            format!(
                "ns per increment of total by participants: {}; {lost}{}",
                each.join(", "),
                busy(f)
            )
        }
    };
    Glance::new("5.6", text)
}
