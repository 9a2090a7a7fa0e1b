//! The judgment of a racer: `step5.racer` (racy, must lose updates) or `step5.atomic-racer`
//! (must lose none, with a locked instruction on total in its loop), from the races the lab
//! watched and the racer's locked instructions. The TA's check (`crate::check`) and
//! `run-step 5 --racer` use the same function.

use serde::Serialize;

use super::disasm::{demangle, InsnKind, LockedInsn};
pub use super::Overlap;
use crate::verdict::{plural, signed_thousands, thousands, Check, Verdict};

/// How a race ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RaceOutcome {
    Finished,
    /// Nothing in the race file moved for `stalled_seconds`; every instance was killed.
    Hung {
        stalled_seconds: f64,
    },
    /// An instance failed (`how`: `exit status 1`, `killed by SIGSEGV`, …).
    Failed {
        how: String,
    },
    /// The race file never appeared (`reason`).
    NoRace {
        reason: String,
    },
}

/// One race of the submitted racer, as the lab's read-only mapping saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Race {
    pub participants: usize,
    pub outcome: RaceOutcome,
    /// `participants` and `total` at the end (`None`: the lab never mapped the file).
    pub participants_left: Option<i32>,
    pub total: Option<i64>,
    /// winnings\[0..participants).
    pub winnings: Vec<i64>,
    /// The last instance started, from its start to its end.
    pub final_participant_seconds: Option<f64>,
    pub outside_writes: Vec<String>,
    /// What the lab's reads of the winnings showed while the race ran (`None`: not sampled).
    pub overlap: Option<Overlap>,
}

/// A race counts as raced when in at least this many intervals two or more ids made increments.
/// Instances that hand the counter on one after the other show one such interval per handoff:
/// at most 2 in the course's races of up to 3. Measured here (2 vCPUs, load 4.4): 12 to 35 for
/// the genuine racers; pinned to one CPU (taking turns by time slices) 5 to 21; an `xchg` spin
/// lock's 1 to 2.
pub const MIN_TOGETHER: usize = 3;

impl Race {
    pub fn lost(&self) -> Option<i64> {
        self.total.map(|t| self.winnings.iter().sum::<i64>() - t)
    }

    /// Why this race was no race (`None`: every participant made increments and, when sampled,
    /// two or more made them at the same time in at least [`MIN_TOGETHER`] intervals).
    pub fn not_raced(&self) -> Option<String> {
        let n = plural(self.participants as u64, "participant");
        let idle = self.winnings.iter().filter(|w| **w <= 0).count();
        if self.total.is_some() && idle > 0 {
            return Some(format!(
                "in the race of {n}, {} made no increment (winnings by id: [{}]): those \
                 instances never raced",
                plural(idle as u64, "participant"),
                self.winnings
                    .iter()
                    .map(|w| signed_thousands(*w))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        match self.overlap {
            Some(o) if o.together < MIN_TOGETHER => Some(format!(
                "in the race of {n}, the winnings of two or more ids grew together in only {} \
                 of the {} intervals between the lab's reads in which any grew: the instances \
                 took turns instead of racing",
                o.together, o.moving
            )),
            _ => None,
        }
    }
}

/// Which racer the check expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RacerKind {
    /// `total++`: loses updates with two or more participants.
    Racy,
    /// `lock incq` on total: loses none.
    Atomic,
}

/// `step5.racer` (`kind` Racy) or `step5.atomic-racer` (Atomic): races with 1, 2 and 3
/// participants, and for the atomic one its locked instructions (`Err`: why none could be read).
pub fn judge_racer(
    program: Option<String>,
    kind: RacerKind,
    races: &[Race],
    code: Result<&[LockedInsn], &str>,
) -> Check {
    let id = match kind {
        RacerKind::Racy => "step5.racer",
        RacerKind::Atomic => "step5.atomic-racer",
    };
    let mut evidence = race_lines(races);
    let check = |verdict, reason: String, evidence: Vec<String>| Check {
        id: id.into(),
        program: program.clone(),
        verdict,
        reason,
        evidence,
    };
    if let Some(reason) = race_failure(races) {
        return check(Verdict::Fail, reason, evidence);
    }
    let contested: Vec<&Race> = races.iter().filter(|r| r.participants >= 2).collect();
    if contested.is_empty() {
        return check(
            Verdict::NotTested,
            "no race with two or more participants ran".into(),
            evidence,
        );
    }
    // More in total than the winnings account for: two racers took one id, or a racer's
    // winnings were overwritten. Not the course's race.
    if let Some(r) = races.iter().find(|r| r.lost().is_some_and(|l| l < 0)) {
        return check(
            Verdict::Fail,
            format!(
                "the winnings of the race of {} add up to {} less than total: two racers shared \
                 an id, or winnings were overwritten",
                plural(r.participants as u64, "participant"),
                thousands(r.lost().unwrap_or(0).unsigned_abs())
            ),
            evidence,
        );
    }
    let runtimes = races
        .iter()
        .map(|r| {
            format!(
                "{}: {}",
                r.participants,
                r.final_participant_seconds
                    .map_or("not timed".into(), |s| format!("{s:.2} s"))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    evidence.push(format!(
        "final participant's runtime by participants: {runtimes}"
    ));
    if let Ok(code) = code {
        evidence.extend(code_lines(code));
    }
    let (verdict, reason) = match kind {
        RacerKind::Racy => racy_verdict(&contested, code),
        RacerKind::Atomic => atomic_verdict(&contested, code),
    };
    check(verdict, reason, evidence)
}

/// The measured overlap of the contested races (`2: together in 40 of 52 reads, 3: …`).
fn together(races: &[&Race]) -> String {
    let sampled: Vec<String> = races
        .iter()
        .filter_map(|r| {
            let o = r.overlap?;
            Some(format!(
                "{} of {} with {}",
                o.together, o.moving, r.participants
            ))
        })
        .collect();
    if sampled.is_empty() {
        "every participant made a share of the increments".into()
    } else {
        format!(
            "every participant made a share, two or more in the same interval between the lab's \
             reads in {}",
            sampled.join(", ")
        )
    }
}

/// The racy racer: updates lost in a race that raced, with a plain write of total in a loop of
/// its own code.
fn racy_verdict(contested: &[&Race], code: Result<&[LockedInsn], &str>) -> (Verdict, String) {
    let lossy: Vec<&&Race> = contested
        .iter()
        .filter(|r| r.lost().is_some_and(|l| l > 0))
        .collect();
    let raced: Vec<&&Race> = lossy
        .iter()
        .copied()
        .filter(|r| r.not_raced().is_none())
        .collect();
    if lossy.is_empty() {
        let why = contested.iter().find_map(|r| r.not_raced());
        return (
            Verdict::Fail,
            match why {
                Some(why) => format!("lost no update with 2 or 3 participants, and {why}"),
                None => "lost no update with 2 or 3 participants: total is not incremented the \
                         racy way (a load and a separate store)"
                    .into(),
            },
        );
    }
    if raced.is_empty() {
        let why = lossy.iter().find_map(|r| r.not_raced()).unwrap_or_default();
        return (
            Verdict::Fail,
            format!("its winnings exceed total, but {why}: no race lost those updates"),
        );
    }
    let losses = raced
        .iter()
        .map(|r| {
            format!(
                "{} with {}",
                signed_thousands(r.lost().unwrap_or(0)),
                r.participants
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    // A race that lost updates but did not race is said, not dropped without a word.
    let uncounted: Vec<String> = lossy
        .iter()
        .filter_map(|r| {
            Some(format!(
                "{} lost with {} not counted: {}",
                signed_thousands(r.lost()?),
                r.participants,
                r.not_raced()?
            ))
        })
        .collect();
    let losses = if uncounted.is_empty() {
        losses
    } else {
        format!("{losses}; {}", uncounted.join("; "))
    };
    let code = match code {
        Ok(c) => c,
        Err(why) => {
            return (
                Verdict::NotTested,
                format!("lost updates ({losses}), but its code could not be read: {why}"),
            )
        }
    };
    let locked = code.iter().find(|i| i.locks_total());
    if let Some(l) = locked {
        // A racy racer has no locked increment of total: losses beside one were made up
        // elsewhere (a plain store that never runs can sit in the same loop).
        return (
            Verdict::Fail,
            format!(
                "its winnings exceed total ({losses}), but its loop increments total with `{}`, \
                 a locked read-modify-write that cannot lose an update: the winnings count \
                 increments total never got",
                l.text
            ),
        );
    }
    let raced = together(&raced.iter().map(|r| **r).collect::<Vec<_>>());
    if let Some(plain) = code.iter().find(|i| i.races_total()) {
        return (
            Verdict::Pass,
            format!(
                "lost updates with two or more participants ({losses}) while they raced ({}), \
                 and its loop writes total without a lock (`{}`): a plain total++ races",
                raced, plain.text
            ),
        );
    }
    if let Some(p) = code.iter().find(|i| i.writes_through_pointer()) {
        return (
            Verdict::Pass,
            format!(
                "lost updates with two or more participants ({losses}) while they raced ({}), \
                 and its loop writes through a pointer without a lock (`{}`) and locks nothing: \
                 a plain increment of total through a pointer races",
                raced, p.text
            ),
        );
    }
    (
        Verdict::Fail,
        format!(
            "its winnings exceed total ({losses}), but no loop of its own code writes total \
             (offset 8 of struct RaceCourse) with a plain store: these are not a total++ race's \
             losses"
        ),
    )
}

/// The atomic racer: no update lost in races where every participant made increments at the
/// same time as another, and a locked instruction on total in a loop of its own code.
fn atomic_verdict(contested: &[&Race], code: Result<&[LockedInsn], &str>) -> (Verdict, String) {
    if let Some(r) = contested.iter().find(|r| r.lost().is_some_and(|l| l > 0)) {
        return (
            Verdict::Fail,
            format!(
                "lost {} updates with {} participants: total is not incremented atomically",
                signed_thousands(r.lost().unwrap_or(0)),
                r.participants
            ),
        );
    }
    let not_raced = contested.iter().find_map(|r| r.not_raced());
    // A spin lock is named whether or not the racers took turns (its holder tends to keep it).
    if let Some(x) = code.ok().and_then(|c| c.iter().find(|i| i.spins())) {
        return (
            Verdict::Fail,
            format!(
                "lost no update ({}), but by a spin lock (`{}` in a loop of {}), not the lock \
                 incq on total the course asks for",
                not_raced.unwrap_or_else(|| together(contested)),
                x.text,
                demangle(&x.function)
            ),
        );
    }
    if let Some(why) = not_raced {
        return (
            Verdict::Fail,
            format!("lost no update, but {why}: a counter no one else touches loses nothing"),
        );
    }
    let measured = together(contested);
    let code = match code {
        Ok(c) => c,
        Err(why) => {
            return (
                Verdict::NotTested,
                format!("lost no update ({measured}), but its code could not be read: {why}"),
            )
        }
    };
    if let Some(l) = code.iter().find(|i| i.locks_total()) {
        return (
            Verdict::Pass,
            format!(
                "lost no update with 2 and 3 participants ({measured}), and its loop increments \
                 total with `{}`",
                l.text
            ),
        );
    }
    let library: Vec<&LockedInsn> = code
        .iter()
        .filter(|i| i.library && i.kind != InsnKind::Plain)
        .collect();
    (
        Verdict::Fail,
        format!(
            "lost no update ({measured}), but no loop of its own code has a locked instruction \
             on total (the course asks for lock incq){}",
            match library.first() {
                Some(l) => format!(
                    "; the {} locked instructions it carries are the C library's or Rust std's \
                     (`{}` in {})",
                    library.len(),
                    l.text,
                    demangle(&l.function)
                ),
                None => String::new(),
            }
        ),
    )
}

/// The code's instructions that bear on the verdict, as evidence (at most 12).
fn code_lines(code: &[LockedInsn]) -> Vec<String> {
    let own: Vec<&LockedInsn> = code.iter().filter(|i| !i.library).collect();
    let mut out: Vec<String> = own
        .iter()
        .take(12)
        .map(|l| {
            format!(
                "objdump: <{}> {}{}{}{}",
                demangle(&l.function),
                l.text,
                match l.kind {
                    InsnKind::Locked => "",
                    InsnKind::Xchg => " (xchg: implicitly locked)",
                    InsnKind::Plain => " (no lock)",
                },
                match (&l.called_from, l.in_loop) {
                    (Some(caller), _) => format!(" (called from a loop of {})", demangle(caller)),
                    (None, true) => " (in a loop)".into(),
                    (None, false) => String::new(),
                },
                if l.on_total { " (on total)" } else { "" }
            )
        })
        .collect();
    let library = code.len() - own.len();
    if library > 0 {
        out.push(format!(
            "objdump: {} in the C library's or Rust std's functions, not counted",
            plural(library as u64, "locked instruction")
        ));
    }
    out
}

/// One evidence line per race: how it ended, total against the winnings, the final runtime.
fn race_lines(races: &[Race]) -> Vec<String> {
    races
        .iter()
        .map(|r| {
            format!(
                "{}: {}; total {}, sum of winnings {}, lost {}; final participant {}",
                plural(r.participants as u64, "participant"),
                match &r.outcome {
                    RaceOutcome::Finished => "finished".to_string(),
                    RaceOutcome::Hung { stalled_seconds } => {
                        format!("no progress for {stalled_seconds:.0} s, killed")
                    }
                    RaceOutcome::Failed { how } => how.clone(),
                    RaceOutcome::NoRace { reason } => reason.clone(),
                },
                r.total.map_or(
                    "not seen (it ended before the lab mapped the file)".into(),
                    signed_thousands
                ),
                r.total.map_or("unknown".into(), |_| signed_thousands(
                    r.winnings.iter().sum()
                )),
                r.lost().map_or("unknown".into(), signed_thousands),
                r.final_participant_seconds
                    .map_or("not timed".into(), |s| format!("{s:.3} s")),
            )
        })
        .collect()
}

/// Why the races fail the check whatever the racer's kind: it wrote outside its directory, one
/// hung, failed or never raced, or total never moved.
fn race_failure(races: &[Race]) -> Option<String> {
    for r in races {
        let n = plural(r.participants as u64, "participant");
        if let Some(line) = r.outside_writes.first() {
            return Some(format!(
                "wrote outside its scratch directory (race of {n}): {line}"
            ));
        }
        match &r.outcome {
            RaceOutcome::Finished => {}
            RaceOutcome::Hung { stalled_seconds }
                if r.total == Some(0) && r.participants_left == Some(0) =>
            {
                return Some(format!(
                    "total stayed 0 for {stalled_seconds:.0} s with {n}: the race loop never \
                         increments total"
                ))
            }
            RaceOutcome::Hung { stalled_seconds } => {
                return Some(format!(
                    "the race of {n} made no progress for {stalled_seconds:.0} s (participants \
                         {}, total {}) and was killed",
                    crate::known(r.participants_left),
                    r.total.map_or("unknown".into(), signed_thousands)
                ))
            }
            RaceOutcome::Failed { how } => {
                return Some(format!("an instance {how} in the race of {n}"))
            }
            RaceOutcome::NoRace { reason } => return Some(format!("no race with {n}: {reason}")),
        }
        if r.total == Some(0) {
            return Some(format!(
                "total stayed 0 with {n}: the race loop never increments total"
            ));
        }
    }
    None
}

/// What the lab makes of someone else's racer (`run-step 5 --racer`): the check's verdict on
/// the races it ran, as the atomic racer when its code has a locked instruction on total in a
/// loop, as the racy one otherwise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RacerJudgment {
    pub kind: RacerKind,
    /// The locked instruction on total in a loop (`lock incq 0x8(%rax)`), if it has one.
    pub locked_on_total: Option<String>,
    /// total stayed 0 in a race it ran: its loop never increments total.
    pub never_incremented: bool,
    pub check: Check,
}

/// Judges `records` (races of someone else's racer) and its locked instructions (`None`: its
/// code could not be read) with [`judge_racer`].
pub fn judge_their_racer(
    program: &str,
    records: &[super::RaceRecord],
    locked: Option<&[LockedInsn]>,
) -> RacerJudgment {
    let races: Vec<Race> = records.iter().map(race_of).collect();
    let locked_on_total = locked
        .into_iter()
        .flatten()
        .find(|l| l.locks_total())
        .map(|l| l.text.clone());
    let kind = match locked_on_total {
        Some(_) => RacerKind::Atomic,
        None => RacerKind::Racy,
    };
    let check = judge_racer(
        Some(program.to_string()),
        kind,
        &races,
        locked.ok_or("no disassembly of it was recorded (objdump missing or failed)"),
    );
    RacerJudgment {
        kind,
        locked_on_total,
        never_incremented: races.iter().any(|r| r.total == Some(0)),
        check,
    }
}

/// One race of the step's sweep, as the check sees a race.
fn race_of(record: &super::RaceRecord) -> Race {
    use super::{End, Observation};
    let run = &record.run;
    let hung = run.instances.iter().find_map(|i| match i.end {
        End::Hung { stalled_seconds } => Some(stalled_seconds),
        _ => None,
    });
    let failed = run.instances.iter().find_map(|i| match i.end {
        End::Exited { code: 0 } | End::Hung { .. } => None,
        End::Exited { code } => Some(format!("exited with status {code}")),
        End::Signalled { signal } => Some(format!("was killed by signal {signal}")),
    });
    let last = match &run.observer {
        Observation::Mapped { last, .. } => Some(last),
        Observation::Missed { .. } => None,
    };
    let outcome = match (hung, failed, &run.observer) {
        (Some(stalled_seconds), _, _) => RaceOutcome::Hung { stalled_seconds },
        (None, Some(how), _) => RaceOutcome::Failed { how },
        (None, None, Observation::Missed { reason }) if record.participants > 1 => {
            RaceOutcome::NoRace {
                reason: reason.clone(),
            }
        }
        _ => RaceOutcome::Finished,
    };
    let n = record.participants;
    Race {
        participants: n,
        final_participant_seconds: run
            .instances
            .last()
            .filter(|_| outcome == RaceOutcome::Finished)
            .map(|i| i.ended - i.started),
        outcome,
        participants_left: last.map(|c| c.participants),
        total: last.map(|c| c.total),
        winnings: last
            .map(|c| c.winnings.iter().take(n).copied().collect())
            .unwrap_or_default(),
        outside_writes: Vec::new(),
        overlap: run.overlap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step5::Evidence;

    fn course_racer() -> Evidence {
        let dir =
            std::path::Path::new(crate::testkit::XTASK_DIR).join("tests/evidence/course-racer");
        crate::testkit::load(&dir, 5).unwrap()
    }

    /// The recorded course racer (a plain total++) lost updates with 2 and 3: the racy racer's
    /// pass; the same races with a locked instruction on total in its loop are the atomic
    /// racer's fail (it lost updates), and one whose total stayed 0 never increments.
    #[test]
    fn their_racer_is_judged_by_its_races_and_its_locked_instructions() {
        let mut ev = course_racer();
        let plain = LockedInsn {
            function: "main".into(),
            text: "mov %rdx,0x8(%rax)".into(),
            in_loop: true,
            on_total: true,
            kind: crate::step5::disasm::InsnKind::Plain,
            library: false,
            called_from: None,
        };
        let j = judge_their_racer("racer", &ev.races, Some(std::slice::from_ref(&plain)));
        assert_eq!((j.kind, j.check.verdict), (RacerKind::Racy, Verdict::Pass));
        assert!(
            j.check.reason.starts_with("lost updates with two or more"),
            "{j:?}"
        );
        // The same losses from a loop with no plain write of total: not a total++ race.
        let j = judge_their_racer("racer", &ev.races, Some(&[]));
        assert_eq!((j.kind, j.check.verdict), (RacerKind::Racy, Verdict::Fail));
        assert!(!j.never_incremented);
        let lock = LockedInsn {
            function: "main".into(),
            text: "lock incq 0x8(%rax)".into(),
            in_loop: true,
            on_total: true,
            kind: crate::step5::disasm::InsnKind::Locked,
            library: false,
            called_from: None,
        };
        let j = judge_their_racer("racer", &ev.races, Some(std::slice::from_ref(&lock)));
        assert_eq!(j.kind, RacerKind::Atomic);
        assert_eq!(j.locked_on_total.as_deref(), Some("lock incq 0x8(%rax)"));
        assert_eq!(j.check.verdict, Verdict::Fail);
        for r in &mut ev.races {
            if let crate::step5::Observation::Mapped { last, .. } = &mut r.run.observer {
                last.total = 0;
                last.winnings.iter_mut().for_each(|w| *w = 0);
            }
        }
        let j = judge_their_racer("racer", &ev.races, None);
        assert!(j.never_incremented);
        assert_eq!(j.check.verdict, Verdict::Fail);
        assert!(j.check.reason.contains("total stayed 0"), "{j:?}");
    }
}
