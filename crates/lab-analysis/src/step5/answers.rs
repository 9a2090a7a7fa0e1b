//! The assignment's and the course's questions, answered from [`Findings`]: each function
//! formats one answer and decides nothing the findings do not say.

use std::fmt::Write as _;

use super::analyze::{of_mode, Cause, Findings, Outcome, RaceFinding, RuntimeTrend};
use super::{Evidence, Mode, Racer};
use crate::verdict::Verdict;
use crate::Block;

pub fn answers(f: &Findings, ev: &Evidence) -> Vec<Block> {
    vec![
        Block::answer(
            "What do you observe about the sum of winnings vs. the reported total?",
            sum_vs_total(f),
        ),
        Block::answer(
            "How does this vary with the number of participants?",
            by_participants(f),
        ),
        Block::answer(
            format!(
                "What do the CPUs the racers had ({} allowed) do to the result?",
                f.mask.len()
            ),
            cpus(f),
        ),
        Block::answer(
            "Why does it matter that total and winnings share a cache line?",
            cache_line(f),
        ),
        Block::answer(
            "Time the final participant: how does its runtime vary with the number of \
             participants?",
            runtime(f, ev),
        ),
        Block::answer(
            "Replace total++ with an atomic lock incq: what happens to the runtime, and how does \
             it vary with the number of participants?",
            atomic(f, ev),
        ),
    ]
}

/// How the participants of a mode are called.
fn who(mode: Mode) -> &'static str {
    match mode {
        Mode::Racer => "instances of the racer",
        Mode::Racy => "racy participants",
        Mode::Atomic => "atomic participants",
    }
}

/// One of them.
fn one(mode: Mode) -> &'static str {
    match mode {
        Mode::Racer => "instance of the racer",
        Mode::Racy => "racy participant",
        Mode::Atomic => "atomic participant",
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// What kept a race from being a race of all its participants (`None`: it ran to its end):
/// "in the race of 2, instance 1 (id 2 by arrival, pid 4242) was killed by signal 6 (SIGABRT)".
fn not_raced(r: &RaceFinding) -> Option<String> {
    let of = format!("the race of {}", r.participants);
    Some(match &r.outcome {
        Outcome::Finished => return None,
        Outcome::Failed { failures } => {
            let each: Vec<String> = failures
                .iter()
                .map(|x| {
                    format!(
                        "instance {} (id {} by arrival, pid {}) {}",
                        x.started, x.id, x.pid, x.how
                    )
                })
                .collect();
            format!("in {of}, {}", each.join(" and "))
        }
        Outcome::Hung {
            pids,
            stalled_seconds,
        } => format!(
            "in {of}, nothing moved for {stalled_seconds:.1} s and the lab killed {} process(es)",
            pids.len()
        ),
        Outcome::NoRace { reason } => format!("{of} never began: {reason}"),
    })
}

/// The races that were not races of all their participants, said once in the first answer
/// (empty when every race ran to its end).
fn not_raced_sentence(f: &Findings) -> String {
    let each: Vec<String> = f.races.iter().filter_map(not_raced).collect();
    if each.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "Not every race ran to its end with all its participants: {}. Such a race's counters \
         are not a race of its participants (the others raced on without the one that died, or \
         nothing raced), so no loss or share below is taken from it. ",
        each.join("; ")
    );
    if f.lost.multi == 0 {
        let _ = write!(
            s,
            "No race of 2 or more {} ran to its end with its counters read: this run measured no \
             lost update. ",
            who(f.lost.lossy_mode)
        );
    }
    s
}

fn sum_vs_total(f: &Findings) -> String {
    let l = &f.lost;
    let mode = who(l.lossy_mode);
    let mut s = String::new();
    let totals: Vec<i64> = f.races.iter().filter_map(|r| r.total).collect();
    if totals.is_empty() {
        return nothing_seen(f);
    }
    if f.races.iter().all(|r| r.target.is_none()) {
        let _ = write!(
            s,
            "The racer's target is in its code; the races ended with total {}. ",
            if totals.windows(2).all(|w| w[0] == w[1]) && !totals.is_empty() {
                format!("= {} in every race read", totals[0])
            } else {
                format!("{totals:?}")
            }
        );
    } else if l.off_target.is_empty() {
        s += "Every race ended with total at its target. ";
    } else {
        let _ = write!(
            s,
            "{} race(s) ended with total != target ({}). ",
            l.off_target.len(),
            l.off_target
                .iter()
                .map(|(n, m, t)| format!("{n} {}: {t}", m.name()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    match l.alone_exact {
        Some(true) => {
            let _ = write!(
                s,
                "Alone (1 {}) the sum of winnings equalled the total: nothing to race against. ",
                one(l.lossy_mode)
            );
        }
        Some(false) => {
            let _ = write!(
                s,
                "Alone (1 {}) the sum of winnings was NOT the total, which no interleaving \
                 explains (another writer of the file?). ",
                one(l.lossy_mode)
            );
        }
        None => {}
    }
    s += &not_raced_sentence(f);
    if let Some((lo, hi)) = l.share_range {
        let _ = write!(
            s,
            "With 2 or more {mode} the sum of winnings exceeded the total in {} of {} \
             races: between {} and {} of the increments made were lost. Each participant's own \
             winnings are exact (only it writes them), but `total++` is a load and a separate \
             store: when two racers load the same value, both store value+1 and one increment of \
             total disappears. ",
            l.multi_lossy,
            l.multi,
            pct(lo),
            pct(hi)
        );
    }
    if l.multi_lossy < l.multi {
        let why = match &f.racer {
            Some(j) if j.never_incremented => {
                "total stayed 0: the racer never increments total, so there was nothing to lose"
                    .to_string()
            }
            _ if !l.idle_racers.is_empty() => format!(
                "in {} of them racers made no increment ({}), so there was no race to lose an \
                 update in",
                l.idle_racers.len(),
                l.idle_racers
                    .iter()
                    .map(|(n, idle)| format!("{idle} of {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(j) if j.locked_on_total.is_some() && j.check.verdict == Verdict::Pass => format!(
                "its loop increments total with `{}`, one locked read-modify-write: no other \
                 racer can come between its load and its store",
                j.locked_on_total.as_deref().unwrap_or_default()
            ),
            _ => "no two racers stood between their load and their store at the same time".into(),
        };
        let _ = write!(
            s,
            "In {} of {} race(s) of 2 or more {mode} no update was lost: {why}. ",
            l.multi - l.multi_lossy,
            l.multi
        );
    }
    if l.atomic_races > 0 {
        if l.atomic_lossy.is_empty() {
            let _ = write!(
                s,
                "In atomic mode (fetch_add) sum = total in all {} races: nothing lost.",
                l.atomic_races
            );
        } else {
            let _ = write!(
                s,
                "Unexpected: atomic mode lost updates with {:?} participants, which contradicts \
                 fetch_add's guarantee; look for a foreign writer of the file.",
                l.atomic_lossy
            );
        }
    }
    s.trim_end().to_string()
}

/// No race's counters were read: say what happened instead of an empty comparison.
fn nothing_seen(f: &Findings) -> String {
    let why: Vec<String> = f
        .races
        .iter()
        .map(|r| match not_raced(r) {
            Some(t) => t,
            None => format!(
                "the race of {} ended without the lab seeing its counters",
                r.participants
            ),
        })
        .collect();
    let created = match &f.protocol {
        Some(p) if p.created.is_none() => {
            " The traced run of 1 never opened racecourse.bin with O_CREAT: this racer made no \
             race file."
        }
        _ => "",
    };
    format!(
        "Nothing was raced: the lab read no race's counters ({}).{created} There is no total \
         and no sum of winnings to compare.",
        why.join("; ")
    )
}

fn by_participants(f: &Findings) -> String {
    let l = &f.lost;
    let shares: Vec<String> = of_mode(&f.races, l.lossy_mode)
        .map(|r| {
            let share = match (&r.outcome, r.lost_share) {
                (Outcome::Finished, Some(share)) => pct(share),
                (Outcome::Finished, None) => "not read".to_string(),
                (Outcome::Failed { .. }, _) => "none (a participant died)".to_string(),
                (Outcome::Hung { .. }, _) => "none (killed: nothing moved)".to_string(),
                (Outcome::NoRace { .. }, _) => "none (no race)".to_string(),
            };
            format!("{}: {share}", r.participants)
        })
        .collect();
    if of_mode(&f.races, l.lossy_mode).all(|r| r.lost_share.is_none() || !r.outcome.raced()) {
        return format!(
            "Not measured: the lab read no race's counters, so there is no lost share by number \
             of {} (see the answer above).",
            who(l.lossy_mode)
        );
    }
    let mut s = format!(
        "Lost share by number of {}: {}. ",
        who(l.lossy_mode),
        shares.join(", ")
    );
    match (l.mean_share_own_cpu, l.mean_share_taking_turns) {
        (Some(a), Some(b)) => {
            let verdict = if b > a * 1.05 {
                "more: a racer preempted between its load and its store later writes back an \
                 old total, undoing every increment the others made while it was off the CPU"
            } else if b < a * 0.95 {
                "less, against the expectation that preempted racers writing back old totals lose \
                 more (a racer alone on a CPU for a whole time slice loses nothing in it)"
            } else {
                "about as much"
            };
            let _ = write!(
                s,
                "Races in which every racer had a CPU (racers' CPUs ≈ participants) lost {} on \
                 average; races whose racers took turns on fewer CPUs lost {}: {verdict}. ",
                pct(a),
                pct(b)
            );
        }
        (Some(a), None) => {
            let _ = write!(
                s,
                "Every racer had a CPU of its own in these races; they lost {} on average. ",
                pct(a)
            );
        }
        (None, Some(b)) => {
            let _ = write!(
                s,
                "In no race of 2 or more did every racer have a CPU (see the racers column): they \
                 took turns, and lost {} on average, by racers preempted between load and store. ",
                pct(b)
            );
        }
        (None, None) => {}
    }
    if !l.idle_racers.is_empty() {
        let _ = write!(
            s,
            "Some racers won nothing ({}): the race ended before they got a CPU.",
            l.idle_racers
                .iter()
                .map(|(n, idle)| format!("{idle} of {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s.trim_end().to_string()
}

fn cpus(f: &Findings) -> String {
    let allowed = f.mask.len();
    let mut s = format!(
        "The racers' affinity mask allows CPU(s) {} ({allowed}), so at most {allowed} racer(s) \
         run at the same instant. ",
        cpu_list(&f.mask)
    );
    let unmeasured = f
        .races
        .iter()
        .filter(|r| r.participants > 1 && r.cpu.is_none())
        .count();
    if unmeasured > 0 {
        let _ = write!(
            s,
            "{unmeasured} race(s) of 2 or more were shorter than {} clock ticks, too short to \
             count their CPUs. ",
            super::analyze::MIN_TICKS
        );
    }
    let per_race: Vec<String> = f
        .races
        .iter()
        .filter_map(|r| {
            let c = r.cpu?;
            let short = f
                .shortages
                .iter()
                .any(|sh| sh.participants == r.participants && sh.mode == r.mode && sh.busy());
            Some(format!(
                "{} {} {:.2} + {:.2}{}",
                r.participants,
                r.mode.name(),
                c.racers,
                c.others,
                if short { "*" } else { "" }
            ))
        })
        .collect();
    if !per_race.is_empty() {
        let lab = f
            .races
            .iter()
            .filter_map(|r| r.cpu.map(|c| c.lab))
            .fold(0.0, f64::max);
        let _ = write!(
            s,
            "Measured per race, in CPUs of the {allowed} allowed, racers + other \
             processes (their busy time on those CPUs; the lab itself used at most {lab:.2}): \
             {}. ",
            per_race.join(", ")
        );
    }
    if !f.more_racers_than_cpus.is_empty() {
        let _ = write!(
            s,
            "{} race(s) had more racers than the {allowed} CPU(s) of their mask: their racers \
             could only take turns. ",
            f.more_racers_than_cpus.len()
        );
    }
    s += &shortages(f);
    let _ = write!(
        s,
        "In racy mode a loss needs two racers between their load and their store at once: {}",
        if allowed == 1 {
            "with one CPU allowed that happens only when a racer is preempted between the two, \
             so every loss here comes from preemption, none from parallel CPUs."
                .to_string()
        } else {
            format!(
                "on {allowed} CPUs that happens in parallel for up to {allowed} racers, and by \
                 preemption for every racer beyond {allowed}."
            )
        }
    );
    s
}

/// What the races short of CPU lacked, grouped by the measurement that covers it: those that
/// other processes or steal explain are the ones marked * (the busy-machine header's).
fn shortages(f: &Findings) -> String {
    if f.shortages.is_empty() {
        return if f.races.iter().any(|r| r.cpu.is_some()) {
            format!("Every race got about min(racers, {}) CPUs. ", f.mask.len())
        } else {
            String::new()
        };
    }
    let mut s = String::new();
    for (cause, why) in [
        (
            Cause::OtherProcesses,
            "other processes' measured busy time on the racers' CPUs covers the gap, so the \
             racers took turns and more of their losses come from preemption than from parallel \
             CPUs",
        ),
        (
            Cause::Steal,
            "the hypervisor's steal time covers the gap: the virtual CPUs were not running",
        ),
        (
            Cause::Unexplained,
            "neither other processes nor steal time cover the gap: the CPUs sat partly idle \
             (racers waiting)",
        ),
    ] {
        let races: Vec<String> = f
            .shortages
            .iter()
            .filter(|sh| sh.cause == cause)
            .map(|sh| format!("{} {}", sh.participants, sh.mode.name()))
            .collect();
        if !races.is_empty() {
            let _ = write!(
                s,
                "{} race(s) ({}{}) had at least {} CPU less than min(racers, {}): {why}. ",
                races.len(),
                races.join(", "),
                if cause.busy() { "; marked *" } else { "" },
                super::analyze::SHORT_GAP,
                f.mask.len()
            );
        }
    }
    s
}

fn cache_line(f: &Findings) -> String {
    let Some(c) = &f.cache_line else {
        return "The kernel does not report the cache-line size here (no sysfs entry), so which \
                winnings share total's line cannot be computed."
            .to_string();
    };
    let ids: Vec<String> = c.ids_with_total.iter().map(|i| i.to_string()).collect();
    let mut s = format!(
        "With {}-byte cache lines, `total` (offset 8) shares its line with `participants` and \
         the winnings of ids {}. A CPU must own a line exclusively to write it, so with racers \
         on two CPUs the line moves between them at (nearly) every increment, and a racer's \
         stores to its own winnings steal the line from the others just like its stores to \
         total do (false sharing). ",
        c.bytes,
        ids.join(", ")
    );
    let racy = f.runtime.iter().find(|t| t.mode == Mode::Racy);
    let pair = of_mode(&f.races, Mode::Racy).find(|r| r.participants == 2);
    if let (Some((one, two)), Some(cpu)) =
        (racy.and_then(|t| t.ns_per_made), pair.and_then(|r| r.cpu))
    {
        let _ = write!(
            s,
            "Measured: {one:.2} ns per increment made alone (the line stays in one CPU's cache) \
             against {two:.2} ns with two racers, which had {:.2} CPUs between them. ",
            cpu.racers
        );
        if cpu.racers < 1.5 {
            let _ = write!(
                s,
                "With about one CPU the two mostly took turns and the line seldom moved, so this \
                 run does not show the ping-pong ({}). ",
                if f.mask.len() < 2 {
                    "their affinity mask allowed one CPU".to_string()
                } else {
                    format!("other processes used {:.2} CPU of theirs", cpu.others)
                }
            );
        }
    }
    if let Some(cpu) = racy.and_then(|t| t.starved_baseline) {
        let _ = write!(
            s,
            "Not compared with a racer alone: the racy race of 1 had only {cpu:.2} of a CPU, \
             so its time per increment is no baseline. "
        );
    }
    s += "It also widens the window between a racer's load and its store of total (the store \
          waits for the line), which is where updates are lost. Padding each counter to its own \
          line would remove the false sharing, but the struct's layout is the assignment's.";
    s
}

fn trend_text(t: &RuntimeTrend, allowed: usize) -> String {
    let pts: Vec<String> = t
        .points
        .iter()
        .map(|p| {
            format!(
                "{}: {:.3} s{}",
                p.participants,
                p.seconds,
                if p.short_of_cpu.is_some_and(Cause::busy) {
                    "*"
                } else {
                    ""
                }
            )
        })
        .collect();
    let mut s = format!(
        "{} (target {}): {}",
        t.mode.name(),
        t.target
            .map_or("in the racer".to_string(), |t| t.to_string()),
        pts.join(", ")
    );
    if let Some(r) = t.two_over_one {
        let _ = write!(s, "; 2 participants took {r:.1}x as long as 1");
    } else if let Some(cpu) = t.starved_baseline {
        let _ = write!(
            s,
            "; the race of 1 is no baseline: its racer had only {cpu:.2} of a CPU, so nothing \
             is compared with it"
        );
    }
    match t.beyond_cpus {
        Some((lo, hi)) if hi - lo >= 0.0005 => {
            let _ = write!(
                s,
                "; with more participants than the {allowed} allowed CPU(s), between {lo:.3} \
                 and {hi:.3} s"
            );
        }
        Some((lo, _)) => {
            let _ = write!(
                s,
                "; with more participants than the {allowed} allowed CPU(s), {lo:.3} s"
            );
        }
        None => {}
    }
    if let (Some((one, two)), Some(work)) = (
        t.ns_per_made,
        t.points
            .iter()
            .find(|p| p.participants == 2)
            .map(|p| p.made_per_total),
    ) {
        let _ = write!(
            s,
            ". With 2, the racers made {work:.2} increments per increment of total{}, at \
             {two:.2} ns per increment made against {one:.2} alone",
            if work > 1.005 {
                " (lost ones are made again)"
            } else {
                " (nothing lost, nothing redone)"
            }
        );
    }
    s
}

fn runtime(f: &Findings, ev: &Evidence) -> String {
    // The atomic races' runtimes are the next answer's: each printed once.
    let shown: Vec<&RuntimeTrend> = f
        .runtime
        .iter()
        .filter(|t| t.mode != Mode::Atomic)
        .collect();
    if shown.is_empty() {
        return format!(
            "Not measured: no race of {} ran to its end with every participant and its counters \
             read, so there is no runtime to compare{}.",
            who(f.lost.lossy_mode),
            if f.races.iter().any(|r| !r.outcome.raced()) {
                " (see the first answer)"
            } else {
                ""
            }
        );
    }
    let allowed = f.mask.len();
    let trends: Vec<String> = shown.iter().map(|t| trend_text(t, allowed)).collect();
    let starred = shown.iter().any(|t| {
        t.points
            .iter()
            .any(|p| p.short_of_cpu.is_some_and(Cause::busy))
    });
    // "The race runs at the speed of N CPUs however many join" only when two or more races
    // beyond the CPUs, none short of CPU, took about the same time.
    let flat_beyond = shown.iter().all(|t| {
        let beyond: Vec<_> = t
            .points
            .iter()
            .filter(|p| p.participants > allowed)
            .collect();
        beyond.len() >= 2
            && beyond.iter().all(|p| p.short_of_cpu.is_none())
            && matches!(t.beyond_cpus, Some((lo, hi)) if lo > 0.0 && hi / lo <= 1.25)
    });
    format!(
        "The final participant's runtime, {}. It is the last instance of {} the lab started, \
         from its start to its end, as `time` reports it.{}{}",
        trends.join(". "),
        racer_name(ev),
        if flat_beyond {
            format!(
                " Racers beyond the {allowed} allowed CPU(s) take turns: the races beyond them \
                 took about the same time, the speed of {allowed} CPU(s)."
            )
        } else {
            String::new()
        },
        if starred {
            " (*: other processes (or the hypervisor) took at least 0.3 CPU its racers could \
             have used: that runtime reflects the busy machine, not the race alone.)"
        } else {
            ""
        }
    )
}

fn atomic(f: &Findings, ev: &Evidence) -> String {
    let mut s = String::new();
    // Only a racer whose atomic verdict passed is known to increment total with its lock (a
    // locked instruction in a loop that never runs proves nothing).
    let given = f
        .racer
        .as_ref()
        .filter(|j| j.check.verdict == Verdict::Pass)
        .and_then(|j| j.locked_on_total.as_deref());
    if let (Some(insn), Some(t)) = (given, f.runtime.iter().find(|t| t.mode == Mode::Racer)) {
        let _ = write!(
            s,
            "{} increments total with `{insn}`: by participants, {}. ",
            racer_name(ev),
            trend_text(t, f.mask.len())
        );
    }
    if !f.atomic_vs_racy.is_empty() {
        let pairs: Vec<String> = f
            .atomic_vs_racy
            .iter()
            .map(|p| {
                format!(
                    "{}: {:.2} vs {:.2} ns ({:.1}x)",
                    p.participants,
                    p.atomic_ns,
                    p.racy_ns,
                    p.atomic_ns / p.racy_ns.max(1e-9)
                )
            })
            .collect();
        let _ = write!(
            s,
            "Per increment of total (the final participant's runtime over the target), atomic vs \
             racy by participants: {}. ",
            pairs.join(", ")
        );
        if let Some(t) = f.runtime.iter().find(|t| t.mode == Mode::Atomic) {
            let _ = write!(s, "By participants, {}. ", trend_text(t, f.mask.len()));
        }
    }
    match &f.atomic_loop {
        Some(l) if l.locked.len() == 1 => {
            let _ = write!(
                s,
                "Our atomic mode's loop ({}) executes exactly one locked instruction per \
                 increment, `{}`: a read-modify-write of total the CPU performs atomically, \
                 holding the cache line for its duration — the course's `lock incq` is the same \
                 kind (xadd also returns the old value, which the loop needs to stop at the \
                 target). ",
                super::disasm::demangle(&l.symbol),
                l.locked[0]
            );
        }
        Some(l) => {
            let _ = write!(
                s,
                "Our atomic loop ({}) has {} locked instructions: {:?}. ",
                super::disasm::demangle(&l.symbol),
                l.locked.len(),
                l.locked
            );
        }
        None => s += "(No disassembly of the atomic loop: see above.) ",
    }
    if let Some(l) = &f.racy_loop {
        if l.locked.is_empty() {
            let _ = write!(
                s,
                "The racy loop has no locked instruction: total is read and written by separate \
                 instructions ({}), and another CPU's store can land between them.",
                l.total_accesses
                    .iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if let Some(locked) = &f.their_locked {
        let _ = write!(
            s,
            " {} has {} lock-prefixed instruction(s){}",
            racer_name(ev),
            locked.len(),
            if locked.is_empty() {
                ": its total++ takes no lock, so its updates can be lost".to_string()
            } else {
                format!(": {}", locked.join("; "))
            }
        );
    }
    s.trim().to_string()
}

pub fn racer_name(ev: &Evidence) -> String {
    match &ev.racer {
        Racer::Ours { .. } => "race".to_string(),
        Racer::Theirs { program, .. } => program.display().to_string(),
    }
}

pub fn cpu_list(cpus: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", cpus[i], cpus[j])
        } else {
            cpus[i].to_string()
        });
        i = j + 1;
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(",")
    }
}
