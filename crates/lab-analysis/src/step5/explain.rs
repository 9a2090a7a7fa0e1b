//! Step 5's narrative: formats the findings (every number comes from [`super::analyze`]).

use std::fmt::Write as _;

use super::analyze::{Findings, LoopFinding, Outcome, ProtocolFinding, RaceFinding};
use super::answers::{self, cpu_list, racer_name};
use super::{Evidence, Mode, COURSE_FILE};
use crate::Block;

pub fn explain(f: &Findings, ev: &Evidence) -> Vec<Block> {
    let mut blocks: Vec<Block> = busy(f).map(Block::text).into_iter().collect();
    protocol(&mut blocks, f, ev);
    sizing(&mut blocks, f, ev);
    sweep(&mut blocks, f, ev);
    observer(&mut blocks, f);
    loops(&mut blocks, f, ev);
    if let Some(j) = &f.racer {
        blocks.extend(j.check.blocks("this racer"));
    }
    blocks.push(Block::heading("Answers, from the measurements above"));
    blocks.extend(answers::answers(f, ev));
    blocks
}

fn protocol(blocks: &mut Vec<Block>, f: &Findings, ev: &Evidence) {
    match (&ev.protocol, &f.protocol) {
        (super::Traced::Traced { command, calls }, Some(p)) => {
            blocks.push(Block::heading(format!(
                "The protocol's system calls on {COURSE_FILE} (strace of `{command}`)"
            )));
            let lines: Vec<&str> = calls.iter().map(|c| c.raw.as_str()).collect();
            blocks.push(Block::raw(
                format!("strace of `{command}`: the calls on the race file"),
                lines.join("\n"),
            ));
            blocks.push(Block::text(protocol_text(p)));
        }
        (super::Traced::Unavailable { reason }, _) => {
            blocks.push(Block::heading("The protocol's system calls"));
            blocks.push(Block::text(format!("(no trace: {reason})")));
        }
        _ => {}
    }
}

fn protocol_text(p: &ProtocolFinding) -> String {
    let mut s = String::from("This trace shows: ");
    let mut parts = Vec::new();
    if p.looked_first {
        parts.push(format!(
            "a stat of {COURSE_FILE} failed (ENOENT), so it led"
        ));
    }
    match &p.created {
        Some((name, flags)) => parts.push(format!(
            "it created {name} with {flags} ({})",
            if p.exclusive {
                "O_EXCL: creation fails if the name exists, so only one instance can lead"
            } else {
                "no O_EXCL: an instance that also found no file would open the same file and \
                 lead too"
            }
        )),
        None => parts.push("no open with O_CREAT".to_string()),
    }
    if p.flock {
        parts.push("took a flock on it".to_string());
    }
    match &p.sized_by {
        Some((how, size)) => parts.push(format!("sized it to {size} bytes with {how}")),
        None => parts.push("did not size it".to_string()),
    }
    match &p.mapped {
        Some((len, flags)) => parts.push(format!("mapped {len} bytes with {flags}")),
        None => parts.push("did not mmap it".to_string()),
    }
    if p.linked {
        parts.push(format!(
            "published it under {COURSE_FILE} with link(2) once participants was set"
        ));
    }
    parts.push(if p.unlinked {
        format!("unlinked {COURSE_FILE} at the end")
    } else {
        format!("never unlinked {COURSE_FILE}")
    });
    s += &parts.join("; ");
    s.push('.');
    s
}

fn sizing(blocks: &mut Vec<Block>, f: &Findings, ev: &Evidence) {
    blocks.push(Block::heading("How long the races are"));
    let s = &f.sizing;
    let mut t = match s.how {
        "calibrated" => {
            let runs: Vec<String> = s
                .calibration
                .iter()
                .map(|r| {
                    format!(
                        "1 {} racer to {} in {:.4} s",
                        r.mode.name(),
                        r.target,
                        r.seconds
                    )
                })
                .collect();
            format!(
                "Targets calibrated on this machine so that a race of one lasts about {:.1} s: {}. \
                 Chosen: racy target {}, atomic target {} (`--target N` overrides).",
                s.goal_seconds.unwrap_or(0.0),
                runs.join(", "),
                opt(s.racy_target),
                opt(s.atomic_target)
            )
        }
        "given" => format!(
            "Target {} for both modes, from --target.",
            opt(s.racy_target.or(s.atomic_target))
        ),
        _ => {
            let totals: Vec<String> = f
                .races
                .iter()
                .filter_map(|r| r.total)
                .map(|t| t.to_string())
                .collect();
            format!(
                "The target is fixed in {}'s code; the totals the lab read at the end: {}.",
                racer_name(ev),
                if totals.is_empty() {
                    "none".into()
                } else {
                    totals.join(", ")
                }
            )
        }
    };
    if let Some((n, mode, secs)) = s.shortest {
        let _ = write!(
            t,
            " The shortest race ({n} {}) lasted {secs:.3} s for its final participant{}.",
            mode.name(),
            match s.goal_seconds {
                Some(goal) if secs < 0.8 * goal => format!(
                    ", less than the {goal:.1} s aimed at: the machine ran faster than during \
                     calibration"
                ),
                _ => String::new(),
            }
        );
    }
    blocks.push(Block::text(t));
}

/// A busy machine, said before the answers: the races whose racers other processes (or the
/// hypervisor) kept from CPU they could have used.
fn busy(f: &Findings) -> Option<String> {
    let busy: Vec<String> = f
        .shortages
        .iter()
        .filter(|s| s.busy())
        .map(|s| match s.mode {
            Mode::Racer => format!("{} racers", s.participants),
            mode => format!("{} {}", s.participants, mode.name()),
        })
        .collect();
    if busy.is_empty() {
        return None;
    }
    let most = f
        .shortages
        .iter()
        .filter(|s| s.busy())
        .map(|s| s.cpu.others.max(s.cpu.steal))
        .fold(0.0, f64::max);
    Some(format!(
        "Busy machine: in {} of {} races ({}) other processes (or the hypervisor) took CPU the \
         racers could have used, up to {most:.2} CPU of the {} allowed. Their runtimes (marked * \
         below) reflect the busy machine, and their lost shares include losses by preemption.",
        busy.len(),
        f.races.len(),
        busy.join(", "),
        f.mask.len()
    ))
}

fn opt(v: Option<i64>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

fn sweep(blocks: &mut Vec<Block>, f: &Findings, ev: &Evidence) {
    let counts: Vec<String> = {
        let mut c: Vec<usize> = f.races.iter().map(|r| r.participants).collect();
        c.dedup();
        c.iter().map(|n| n.to_string()).collect()
    };
    blocks.push(Block::heading(format!(
        "The sweep: {} races of {} ({} participants), the first instance alone, the others \
         once it had set the file up",
        f.races.len(),
        racer_name(ev),
        counts.join(", ")
    )));
    blocks.push(Block::text(format!(
        "The racers may run on CPU(s) {} ({} in their affinity mask, read from \
         /proc/PID/status); /proc/stat lists {} online; cache line {}. CPUs below are CPU-seconds \
         per second of the race, to the clock tick (1/{} s): the racers' own (utime + stime from \
         /proc/PID/stat), and the busy time of their CPUs in /proc/stat that neither they nor the \
         lab used (other processes).",
        cpu_list(&f.mask),
        f.mask.len(),
        ev.machine.cpus_online,
        ev.machine.cache_line.map_or(
            "size unknown (sysfs does not say)".to_string(),
            |l| format!("{l} bytes")
        ),
        ev.machine.clock_ticks_per_second
    )));
    blocks.push(Block::evidence(
        "The races (final s: the last instance started, from its start to its end, as `time` \
         would report it; ns/total: ns per increment of total, final s over the target)",
        table(&f.races),
    ));
    let mut by_id = String::new();
    for r in &f.races {
        let _ = writeln!(
            by_id,
            "{:>2} {:<6} winnings by id: {:?}; each instance's runtime (s): {}",
            r.participants,
            r.mode.name(),
            r.winnings,
            r.instance_seconds
                .iter()
                .map(|s| format!("{s:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    blocks.push(Block::raw("Winnings by id and runtimes, per race", by_id));
    failures(blocks, f, ev);
    if let Some(r) = ev
        .races
        .iter()
        .filter(|r| r.mode == Mode::Racy)
        .max_by_key(|r| r.participants)
    {
        let lines: Vec<&str> = r.run.instances.iter().map(|i| i.stdout.trim()).collect();
        blocks.push(Block::raw(
            format!("The {} racy racers' own --json lines", r.participants),
            lines.join("\n"),
        ));
    }
}

/// The races that did not finish, with what their instances said.
fn failures(blocks: &mut Vec<Block>, f: &Findings, ev: &Evidence) {
    for (r, rec) in f.races.iter().zip(&ev.races) {
        let text =
            match &r.outcome {
                Outcome::Finished => continue,
                Outcome::Hung {
                    pids,
                    stalled_seconds,
                } => format!(
                "Nothing in {COURSE_FILE} moved for {stalled_seconds:.1} s while process(es) {} \
                 still ran: the lab killed them. Counters when killed: participants {}, total {}.",
                pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
                match &rec.run.observer {
                    super::Observation::Mapped { last, .. } => last.participants.to_string(),
                    super::Observation::Missed { .. } => "unknown".into(),
                },
                opt(r.total)
            ),
                Outcome::Failed { failures } => failures
                    .iter()
                    .map(|x| {
                        format!(
                            "instance {} of {} (id {} by arrival, pid {}) {}{}",
                            x.started,
                            r.participants,
                            x.id,
                            x.pid,
                            x.how,
                            if x.said.is_empty() {
                                " (it wrote nothing on stderr)".to_string()
                            } else {
                                format!("; its last line on stderr: {}", x.said)
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                Outcome::NoRace { reason } => format!("No race: {reason}."),
            };
        blocks.push(Block::evidence(
            format!(
                "The race of {} ({}) did not finish",
                r.participants,
                r.mode.name()
            ),
            text,
        ));
    }
}

fn table(races: &[RaceFinding]) -> String {
    let mut t = format!(
        "{:>4} {:>6} {:>13} {:>13} {:>15} {:>13} {:>7} {:>8} {:>8} {:>7} {:>7}  {}\n",
        "N",
        "mode",
        "target",
        "total",
        "sum of winnings",
        "lost",
        "lost %",
        "final s",
        "ns/total",
        "racers",
        "others",
        "outcome"
    );
    let num = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    let f3 = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
    for r in races {
        let _ = writeln!(
            t,
            "{:>4} {:>6} {:>13} {:>13} {:>15} {:>13} {:>7} {:>8} {:>8} {:>7} {:>7}  {}",
            r.participants,
            r.mode.name(),
            num(r.target),
            num(r.total),
            num(r.sum_of_winnings),
            num(r.lost_updates),
            r.lost_share
                .map_or("-".into(), |s| format!("{:.2}%", 100.0 * s)),
            f3(r.final_participant_seconds, 3),
            f3(r.ns_per_increment, 2),
            f3(r.cpu.map(|c| c.racers), 2),
            f3(r.cpu.map(|c| c.others), 2),
            match &r.outcome {
                Outcome::Finished => "finished".to_string(),
                Outcome::Hung { .. } => "hung, killed".to_string(),
                Outcome::Failed { failures } => format!("{} failed", failures.len()),
                Outcome::NoRace { .. } => "no race".to_string(),
            }
        );
    }
    t
}

fn observer(blocks: &mut Vec<Block>, f: &Findings) {
    let o = &f.observer;
    blocks.push(Block::heading("The lab's own mapping of the race file"));
    let mut t = format!(
        "The lab mapped {COURSE_FILE} read-only (PROT_READ, MAP_SHARED) as an observer in {} of \
         {} races and watched the counters change through the mapping, with no system call. ",
        o.mapped, o.races
    );
    if o.read_after_unlink > 0 {
        let _ = write!(
            t,
            "In {} of them it read the final total and winnings after the first instance had \
             unlinked the file: unlink(2) removes the name, not the file; the mapping keeps the \
             file's pages (the page cache) and reads them until it is unmapped.",
            o.read_after_unlink
        );
    }
    blocks.push(Block::text(t));
    if let Some(line) = &o.deleted_line {
        blocks.push(Block::raw(
            "The lab's /proc/self/maps line of its mapping after the unlink",
            line.clone(),
        ));
    }
    for (n, mode, why) in &o.missed {
        blocks.push(Block::text(format!(
            "The race of {n} ({}): the lab could not map the file ({why}).",
            mode.name()
        )));
    }
}

fn loops(blocks: &mut Vec<Block>, f: &Findings, ev: &Evidence) {
    blocks.push(Block::heading("The race loops, disassembled (objdump -d)"));
    for (name, listing, finding) in [
        ("race_racy", &ev.disassembly.racy, &f.racy_loop),
        ("race_atomic", &ev.disassembly.atomic, &f.atomic_loop),
    ] {
        match listing {
            super::Listing::Text { text, binary } => {
                blocks.push(Block::raw(
                    format!("{name} in {}", binary.display()),
                    text.clone(),
                ));
                if let Some(l) = finding {
                    blocks.push(Block::text(loop_text(l)));
                }
            }
            super::Listing::Unavailable { reason } => {
                blocks.push(Block::text(format!("({name}: {reason})")))
            }
        }
    }
    if let Some(super::Listing::Text { text, binary }) = &ev.disassembly.theirs {
        blocks.push(Block::evidence(
            format!("Lock-prefixed instructions in {}", binary.display()),
            if text.is_empty() {
                "(none)".to_string()
            } else {
                text.clone()
            },
        ));
    }
}

fn loop_text(l: &LoopFinding) -> String {
    format!(
        "The loop of {} runs from {:#x} to {:#x}: {} instructions, {} locked ({}); the ones that \
         touch total (the first argument, %rdi): {}.",
        super::disasm::demangle(&l.symbol),
        l.start,
        l.end,
        l.instructions.len(),
        l.locked.len(),
        if l.locked.is_empty() {
            "none".to_string()
        } else {
            l.locked.join(", ")
        },
        if l.total_accesses.is_empty() {
            "none".to_string()
        } else {
            l.total_accesses
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    )
}
