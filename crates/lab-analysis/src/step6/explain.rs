//! Step 6's narrative: formats the findings (every number comes from [`super::analyze`]).

use channel::bench::{
    fmt_ns, fmt_rate, fmt_ratio, fmt_size, render_goal, render_machine, CellValue, GoalId,
    GoalOutcome, Metric, Placement, Transport,
};

use super::analyze::{
    CellCalls, Findings, Integrity, Syscalls, Timeouts, COMPARE_SIZE, NO_CALLS_BELOW,
};
use super::{Evidence, Traces};
use crate::Block;

pub fn explain(f: &Findings, ev: &Evidence) -> Vec<Block> {
    let mut blocks: Vec<Block> = busy(f).map(Block::text).into_iter().collect();
    syscalls(&mut blocks, f, ev);
    table(&mut blocks, f, ev);
    stream(&mut blocks, f, ev);
    blocks.push(Block::heading("Answers, from the measurements above"));
    blocks.push(Block::answer(
        "Does a message cost a system call?",
        per_message_answer(f),
    ));
    blocks.push(Block::answer(
        "How much faster than a pipe and a Unix socket?",
        faster_answer(f),
    ));
    blocks.push(Block::answer(
        "How close to the cache-line floor?",
        floor_answer(f),
    ));
    blocks.push(Block::answer(
        "What does one CPU change?",
        one_cpu_answer(f),
    ));
    blocks.push(Block::answer(
        "Why did step 5's counters lose updates while this channel loses none?",
        integrity_answer(&f.integrity),
    ));
    goals(&mut blocks, f);
    blocks
}

/// A busy machine, said before the answers with its figure: other processes (or the
/// hypervisor) took at least [`BUSY_CPU`](super::analyze::BUSY_CPU) of the CPUs the benchmark could use.
fn busy(f: &Findings) -> Option<String> {
    let l = f.load.filter(|l| l.busy)?;
    Some(format!(
        "Busy machine: while channel bench ran ({:.0} s), other processes used {:.2} CPU of the \
         {} it could use{} (the benchmark itself {:.2}; load average {:.2} before, {:.2} after). \
         Every timing below includes its processes waiting for a CPU those held: the round \
         trips and ratios are this busy machine's, and no cause is read from them.",
        l.seconds,
        l.others,
        l.allowed,
        if l.steal >= 0.05 {
            format!(" and the hypervisor stole {:.2}", l.steal)
        } else {
            String::new()
        },
        l.bench,
        l.loadavg_before,
        l.loadavg_after
    ))
}

/// Why no cause is given for a timing, when the machine was not measured quiet (`None`: it
/// was, and a cause may be read from the timings).
fn no_cause(f: &Findings) -> Option<String> {
    match f.load {
        Some(l) if !l.busy => None,
        Some(l) => Some(format!(
            "the machine was busy (other processes used {:.2} CPU of {} while the benchmark \
             ran: see above), so the figure includes waiting for a CPU and no cause is read \
             from it",
            l.others + l.steal,
            l.allowed
        )),
        None => Some(
            "whether other processes used the CPUs was not recorded in this run, so no cause \
             is read from the figure"
                .to_string(),
        ),
    }
}

fn place(p: Placement) -> &'static str {
    match p {
        Placement::TwoCpus => "two CPUs",
        Placement::OneCpu => "one CPU",
    }
}

fn value(v: &CellValue) -> String {
    match v.metric {
        Metric::RttMedianNs => fmt_ns(v.value),
        Metric::BytesPerS => format!("{}B/s", fmt_rate(v.value)),
    }
}

/// "12.3x faster" or "1.50x slower" for a ratio of theirs over ours.
fn times_faster(r: f64) -> String {
    if r >= 1.0 {
        format!("{} faster", fmt_ratio(r))
    } else {
        format!("{} slower", fmt_ratio(1.0 / r))
    }
}

fn syscalls(blocks: &mut Vec<Block>, f: &Findings, ev: &Evidence) {
    blocks.push(Block::heading(
        "System calls per message (strace -f, each cell run twice)",
    ));
    let (cells, traced) = match (&f.syscalls, &ev.traces) {
        (Syscalls::Counted { cells, .. }, Traces::Traced { cells: traced }) => (cells, traced),
        (Syscalls::Unavailable { reason }, _) | (_, Traces::Unavailable { reason }) => {
            blocks.push(Block::text(format!("(no trace: {reason})")));
            return;
        }
    };
    blocks.push(Block::text(
        "Each benchmark cell ran under strace -f twice, with few and with many round trips (a \
         round trip is one message there and one back). The difference of the two runs' \
         counts, divided by the extra messages, is what one message costs: start-up, the \
         ring's set-up and the exit cancel out.",
    ));
    let mut lines = vec![format!(
        "{:<12} {:<9} {:>13} {:>9}  calls per message (runner+peer)",
        "transport", "placement", "round trips", "per msg"
    )];
    for c in cells {
        let round_trips = format!("{}, {}", c.round_trips[0], c.round_trips[1]);
        if !c.measured {
            lines.push(format!(
                "{:<12} {:<9} {:>13} {:>9}  not measured: the long run made fewer calls than the \
                 short one ({}; noise as large as a call per {} messages)",
                c.transport.name(),
                c.placement.name(),
                round_trips,
                "-",
                shrank(c),
                (1.0 / NO_CALLS_BELOW).round()
            ));
            continue;
        }
        lines.push(format!(
            "{:<12} {:<9} {:>13} {:>9.3}  {}",
            c.transport.name(),
            c.placement.name(),
            round_trips,
            // A difference of counts: -0.0004 is none, not "-0.000".
            if c.total_per_message.abs() < 0.0005 {
                0.0
            } else {
                c.total_per_message
            },
            rates(c)
        ));
    }
    blocks.push(Block::evidence(
        "strace -f -e trace=all, counted per process: the long run minus the short one",
        lines.join("\n"),
    ));
    for cell in traced {
        if let Some(long) = cell.runs.last().filter(|r| !r.sample.is_empty()) {
            blocks.push(Block::raw(
                format!("from the middle of `{}`", long.command),
                long.sample.join("\n"),
            ));
        }
    }
}

/// "clock_nanosleep 1 fewer over 20 extra messages": what shrank in a cell not measured.
fn shrank(c: &CellCalls) -> String {
    let parts: Vec<String> = c
        .shrank
        .iter()
        .map(|(key, fewer)| format!("{key} {fewer} fewer"))
        .collect();
    format!(
        "{} over {} extra messages",
        parts.join(", "),
        c.extra_messages
    )
}

/// "write 1.00 + read 1.00", or "none".
fn rates(c: &CellCalls) -> String {
    let shown: Vec<String> = c
        .per_message
        .iter()
        .filter(|r| r.per_message.abs() >= 0.005)
        .take(5)
        .map(|r| format!("{} {}", r.key, per(r.per_message)))
        .collect();
    if c.none_per_message {
        if shown.is_empty() {
            "none".to_string()
        } else {
            format!(
                "none (differences under one call in twenty messages: {})",
                shown.join(", ")
            )
        }
    } else {
        shown.join(" + ")
    }
}

fn table(blocks: &mut Vec<Block>, f: &Findings, ev: &Evidence) {
    blocks.push(Block::heading(format!(
        "The benchmark (channel bench --json{})",
        if ev.quick { " --quick" } else { "" }
    )));
    blocks.push(Block::text(format!(
        "Measured on {}. Round trips are ping-pong (median and 99th percentile); throughput is \
         one way. Timings on a shared machine are noisy: they are evidence of this run, not \
         constants.",
        render_machine(&f.machine)
    )));
    // On one CPU the spinning "floor" waits for the scheduler, and an implausible two-CPU floor
    // bounds nothing: no row is compared with either.
    let floor_ok = |p: Placement| p == Placement::TwoCpus && implausible_floor(f).is_none();
    for placement in &f.placements {
        let mut lines = vec![format!(
            "{:<12} {:>7} {:>10} {:>10} {:>8} {:>9} {:>11} {:>9}",
            "transport",
            "size",
            "rtt med",
            "rtt p99",
            "vs pipe",
            "vs floor",
            "bytes/s",
            "tput/pipe"
        )];
        for (r, q) in ev.bench.rows.iter().zip(&f.ratios) {
            if r.placement != *placement {
                continue;
            }
            let opt = |v: Option<f64>| v.map(fmt_ratio).unwrap_or_else(|| "-".into());
            lines.push(format!(
                "{:<12} {:>7} {:>10} {:>10} {:>8} {:>9} {:>11} {:>9}",
                r.transport.name(),
                fmt_size(r.size),
                fmt_ns(r.rtt_ns.median),
                fmt_ns(r.rtt_ns.p99),
                opt(q.rtt_speedup_vs_pipe),
                opt(q.rtt_vs_floor.filter(|_| floor_ok(*placement))),
                format!("{}B/s", fmt_rate(r.bytes_per_s)),
                opt(q.throughput_vs_pipe),
            ));
        }
        // The primary placement's table decides the answers; the other one is raw material.
        let block = if *placement == f.primary {
            Block::evidence
        } else {
            Block::raw
        };
        blocks.push(block(
            format!(
                "{}: the two processes on {} (vs pipe: the pipe's median round trip over this \
                 one; vs floor: this one over the cache line's cell, measured at another moment, \
                 so a change of the machine's speed between the two shows here too)",
                placement.name(),
                place(*placement)
            ),
            lines.join("\n"),
        ));
    }
}

fn stream(blocks: &mut Vec<Block>, f: &Findings, ev: &Evidence) {
    let i = &f.integrity;
    blocks.push(Block::heading(format!(
        "Nothing lost: {} numbered lines through a {} ring",
        i.lines,
        fmt_size(i.capacity)
    )));
    blocks.push(Block::evidence(
        "two processes, started together",
        ev.stream.commands.join("\n"),
    ));
    blocks.push(Block::text(format!(
        "The sender sent {} messages; the receiver printed {}, of which {} equal, number and \
         every byte, to the line sent at their place ({} lost){}. {} bytes of payload went \
         through a data area of {} bytes: it was reused about {:.0} times, records wrapping at \
         ever-different offsets. The stream took {:.2} s.",
        i.sent,
        i.received,
        i.matched,
        i.lost,
        match &i.first_mismatch {
            Some(m) => format!("; the first that was not: {m}"),
            None => String::new(),
        },
        ev.stream.received_bytes,
        i.capacity,
        i.laps,
        i.seconds
    )));
}

fn per_message_answer(f: &Findings) -> String {
    let (cells, spinning, pipe) = match &f.syscalls {
        Syscalls::Unavailable { reason } => {
            return format!("Not measured: strace could not run ({reason}).")
        }
        Syscalls::Counted {
            cells,
            spinning_makes_none,
            pipe_write_read,
        } => (cells, spinning_makes_none, pipe_write_read),
    };
    let mut s = Vec::new();
    match spinning {
        Some(true) => s.push(
            "While a side spins, a message costs no system call at all (cacheline and \
             ring-spin: none per message in the counts above): publishing is a release store \
             into the shared pages and receiving an acquire load from them, plain memory \
             operations the kernel never sees."
                .to_string(),
        ),
        Some(false) => {
            let spinning = |c: &&CellCalls| {
                matches!(c.transport, Transport::Cacheline | Transport::RingSpin)
                    && !c.none_per_message
            };
            let name = |c: &CellCalls| format!("{} on {}", c.transport.name(), place(c.placement));
            let calls: Vec<String> = cells
                .iter()
                .filter(spinning)
                .filter(|c| c.measured)
                .map(|c| format!("{}: {}", name(c), rates(c)))
                .collect();
            let unmeasured: Vec<String> = cells
                .iter()
                .filter(spinning)
                .filter(|c| !c.measured)
                .map(name)
                .collect();
            let none: Vec<String> = cells
                .iter()
                .filter(|c| matches!(c.transport, Transport::Cacheline | Transport::RingSpin))
                .filter(|c| c.none_per_message)
                .map(name)
                .collect();
            if !none.is_empty() {
                s.push(format!(
                    "{}: no system call per message in the counts above.",
                    none.join(", ")
                ));
            }
            if !calls.is_empty() {
                s.push(format!(
                    "A spinning cell made system calls per message, contrary to the design: {}.",
                    calls.join("; ")
                ));
            }
            if !unmeasured.is_empty() {
                s.push(format!(
                    "Not measured for {}: its long run made fewer calls than its short one (see \
                     the table), so the difference is noise, not a cost per message.",
                    unmeasured.join(", ")
                ));
            }
        }
        None => {}
    }
    if let Some((w, r)) = pipe {
        s.push(format!(
            "The pipe costs {} write and {} read per message: every message is copied into \
             the kernel by its sender and out by its receiver.",
            per(*w),
            per(*r)
        ));
    }
    if let Some(sock) = cells.iter().find(|c| c.transport == Transport::UnixSocket) {
        s.push(format!("The Unix socket: {}.", rates(sock)));
    }
    for c in cells.iter().filter(|c| c.transport == Transport::RingWait) {
        s.push(ring_wait_sentence(c));
    }
    s.join(" ")
}

fn ring_wait_sentence(c: &CellCalls) -> String {
    let mut s = if !c.measured {
        format!(
            "ring-wait on {}: calls per message not measured (the long run made fewer calls than \
             the short one: {}); the long run of {} round trips made {} futex waits and {} wakes",
            place(c.placement),
            shrank(c),
            c.round_trips[1],
            c.waits,
            c.wakes
        )
    } else if c.slept {
        format!(
            "ring-wait on {}: {} futex waits and {} futex wakes per message — a side \
             that finds nothing to do sleeps in FUTEX_WAIT, and the other wakes it after \
             publishing",
            place(c.placement),
            per(c.futex_waits_per_message),
            per(c.futex_wakes_per_message)
        )
    } else {
        format!(
            "ring-wait on {}: no futex call per message — nobody slept, the answer came within \
             the spin budget ({} waits and {} wakes in the whole long run of {} round trips)",
            place(c.placement),
            c.waits,
            c.wakes,
            c.round_trips[1]
        )
    };
    if c.wakes_within_waits {
        s.push_str(&format!(
            "; no more wakes than waits ({} against {}): a side calls FUTEX_WAKE only when the \
             waiting flag says the other sleeps",
            c.wakes, c.waits
        ));
    } else {
        s.push_str(&format!(
            "; {} wakes against {} waits in the long run: more wakes than sleeps",
            c.wakes, c.waits
        ));
    }
    if c.wakes_woke_none > 0 || c.waits_changed > 0 {
        s.push_str(&format!(
            ". {} wakes found nobody asleep yet and {} waits returned at once (EAGAIN): the \
             waker cleared the flag between the sleeper's announcement and its FUTEX_WAIT, and \
             the kernel, seeing the word changed, did not let it sleep",
            c.wakes_woke_none, c.waits_changed
        ));
    }
    match c.timeouts {
        Timeouts::NoWaits => {}
        Timeouts::None => s.push_str(&format!(
            ". None of the {} waits ended by timeout: no wake-up was lost",
            c.waits
        )),
        Timeouts::Few => s.push_str(&format!(
            ". {} of the {} waits ended by timeout (ETIMEDOUT) rather than a wake",
            c.waits_timed_out, c.waits
        )),
        Timeouts::Most => s.push_str(&format!(
            ". But {} of the {} waits ended by timeout (ETIMEDOUT), not by a wake: the \
             sleeper was not woken when the message arrived, contrary to the design",
            c.waits_timed_out, c.waits
        )),
    }
    s.push('.');
    s
}

fn faster_answer(f: &Findings) -> String {
    if f.faster.is_empty() {
        return format!(
            "Not measured: no {} rows of the ring with a pipe or socket on {}.",
            fmt_size(COMPARE_SIZE),
            place(f.primary)
        );
    }
    let mut s = format!(
        "{} messages on {}: ",
        fmt_size(COMPARE_SIZE),
        place(f.primary)
    );
    let parts: Vec<String> = f
        .faster
        .iter()
        .map(|r| {
            format!(
                "{}'s round trip {} against {}'s {} ({})",
                r.denominator.transport.name(),
                value(&r.denominator),
                r.numerator.transport.name(),
                value(&r.numerator),
                times_faster(r.ratio)
            )
        })
        .collect();
    s.push_str(&parts.join("; "));
    s.push('.');
    if let Some(l) = f.load.filter(|l| l.busy) {
        s.push_str(&format!(
            " Measured while other processes used {:.2} CPU of {} (see above): the times are \
             this busy machine's.",
            l.others + l.steal,
            l.allowed
        ));
    }
    if let Some(first) = f.throughput.first() {
        let parts: Vec<String> = f
            .throughput
            .iter()
            .map(|r| {
                format!(
                    "{} {} ({} the pipe's {})",
                    r.numerator.transport.name(),
                    value(&r.numerator),
                    fmt_ratio(r.ratio),
                    value(&r.denominator)
                )
            })
            .collect();
        s.push_str(&format!(
            " One way at {}: {}.",
            fmt_size(first.numerator.size),
            parts.join(", ")
        ));
    }
    s
}

fn floor_answer(f: &Findings) -> String {
    let Some(floor) = &f.floor else {
        return "Not measured: the floor is two processes passing one word on one cache line \
                between two CPUs, and this run had no two-cpus rows."
            .to_string();
    };
    let Some(spin) = &floor.spin else {
        return "Not measured: no ring-spin row at the compared size on two CPUs.".to_string();
    };
    if let Some(why) = implausible_floor(f) {
        return format!("Not measured: {why}.");
    }
    let mut s = format!(
        "The floor — one 8-byte word passed back and forth on one cache line — is {} per round \
         trip on two CPUs{}. ring-spin's {} round trip is {} = {} the floor ({} more)",
        value(&spin.denominator),
        match floor.spin_from_runs {
            Some(n) => format!(
                " (the median measured run of {n} alternated runs, floor and ring back to back)"
            ),
            None => String::new(),
        },
        fmt_size(spin.numerator.size),
        value(&spin.numerator),
        fmt_ratio(spin.ratio),
        fmt_ns(floor.spin_overhead_ns.unwrap_or(f64::NAN)),
    );
    match no_cause(f) {
        None => s.push_str(
            ": per message the ring moves more lines between the CPUs than one word does — the \
             record's header and payload, the index the sender publishes and the one the \
             receiver hands back (the machine was quiet while the benchmark ran).",
        ),
        Some(why) => s.push_str(&format!("; {why}.")),
    }
    if let Some(w) = &floor.wait {
        s.push_str(&format!(
            " ring-wait: {} = {} the floor.",
            value(&w.numerator),
            fmt_ratio(w.ratio)
        ));
    }
    s
}

/// Why this run's "floor" (one word on one cache line, two CPUs) is not a floor, if it is not:
/// slower than the ring it should bound from below, or than a pipe's round trip through the
/// kernel. Then nothing is compared with it (the goal included).
fn implausible_floor(f: &Findings) -> Option<String> {
    let floor = f.floor.as_ref()?;
    let spin = floor.spin.as_ref()?;
    let floor_ns = spin.denominator.value;
    if spin.ratio < 1.0 {
        return Some(format!(
            "the measured floor ({}) was slower than ring-spin's {} round trip ({}), so it bounds \
             nothing (the machine changed speed between the cells, or another process held a \
             CPU: which was not measured)",
            value(&spin.denominator),
            fmt_size(spin.numerator.size),
            value(&spin.numerator)
        ));
    }
    let pipe = f.faster.iter().find(|r| {
        r.numerator.transport == Transport::Pipe && r.numerator.placement == Placement::TwoCpus
    })?;
    (pipe.numerator.value <= floor_ns).then(|| {
        format!(
            "the measured floor ({}) was slower than a pipe's round trip ({}), which goes \
             through the kernel: it bounds nothing (the machine changed speed between the \
             cells, or another process held a CPU: which was not measured)",
            value(&spin.denominator),
            value(&pipe.numerator)
        )
    })
}

fn one_cpu_answer(f: &Findings) -> String {
    let Some(one) = &f.one_cpu else {
        return "Not measured: no one-cpu rows in this run.".to_string();
    };
    let mut s = String::new();
    match (&one.spin_over_wait, one.spin_worse_than_wait) {
        (Some(r), Some(true)) => s.push_str(&format!(
            "On one CPU, ring-spin's round trip takes {} against ring-wait's {}: spinning is {} \
             worse. A spinner waits for something only the other process can do, and that \
             process cannot run until the scheduler preempts the spinner, so every hand-off \
             costs a time slice; ring-wait (no spinning on one CPU) sleeps in FUTEX_WAIT at \
             once and the kernel runs the peer.",
            value(&r.numerator),
            value(&r.denominator),
            fmt_ratio(r.ratio)
        )),
        (Some(r), _) => {
            s.push_str(&format!(
                "On one CPU, ring-spin's round trip took {} against ring-wait's {}: here \
                 spinning was not worse ({} of ring-wait's).",
                value(&r.numerator),
                value(&r.denominator),
                fmt_ratio(r.ratio)
            ));
            if unwoken_on_one_cpu(f) {
                s.push_str(
                    " ring-wait's sleepers were not woken there (most of its futex waits in \
                     the trace ended by timeout): the futex path did not do its job in this \
                     run.",
                );
            }
        }
        _ => s.push_str("On one CPU ring-spin and ring-wait were not both measured."),
    }
    if let Some(r) = &one.wait_over_pipe {
        s.push_str(&format!(
            " ring-wait on one CPU: {} = {} a pipe's {} there.",
            value(&r.numerator),
            fmt_ratio(r.ratio),
            value(&r.denominator)
        ));
    }
    let (faster, slower) = (&one.faster_on_one, &one.slower_on_one);
    if !faster.is_empty() && !slower.is_empty() {
        s.push_str(&format!(
            " Faster on one CPU: {}; slower: {}",
            names(faster),
            names(slower)
        ));
        match no_cause(f) {
            None => s.push_str(&format!(
                ". A transport that sleeps in the kernel pays, on two CPUs, for waking a process \
                 on the other CPU (an interrupt to it, which may first have to leave its idle \
                 state: the CPUs were idle {:.2} of their time while the benchmark ran); on one \
                 CPU that wake-up is a context switch. A transport that spins on two CPUs cannot \
                 spin usefully on one.",
                f.load.map_or(0.0, |l| l.idle / l.allowed.max(1) as f64)
            )),
            Some(why) => s.push_str(&format!("; {why}.")),
        }
    }
    if !one.slowdown.is_empty() {
        let parts: Vec<String> = one
            .slowdown
            .iter()
            .map(|r| {
                format!(
                    "{} {} -> {} ({})",
                    r.numerator.transport.name(),
                    value(&r.denominator),
                    value(&r.numerator),
                    fmt_ratio(r.ratio)
                )
            })
            .collect();
        s.push_str(&format!(
            " Round trip on two CPUs -> on one: {}.",
            parts.join(", ")
        ));
    }
    s
}

/// Did most of ring-wait's futex waits on one CPU end by timeout in the trace?
fn unwoken_on_one_cpu(f: &Findings) -> bool {
    match &f.syscalls {
        Syscalls::Counted { cells, .. } => cells.iter().any(|c| {
            c.transport == Transport::RingWait
                && c.placement == Placement::OneCpu
                && c.timeouts == Timeouts::Most
        }),
        Syscalls::Unavailable { .. } => false,
    }
}

/// A rate from a difference of counts: "0.00", never "-0.00".
fn per(x: f64) -> String {
    if x.abs() < 0.005 {
        "0.00".to_string()
    } else {
        format!("{x:.2}")
    }
}

fn names(ts: &[Transport]) -> String {
    ts.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

fn integrity_answer(i: &Integrity) -> String {
    let mut s = format!(
        "{} of {} lines arrived intact and in order through the {} ring ({} lost, after about \
         {:.0} laps of its data area)",
        i.matched,
        i.lines,
        fmt_size(i.capacity),
        i.lost,
        i.laps
    );
    if i.all_intact_in_order {
        s.push_str(". ");
    } else {
        s.push_str(&format!(
            ", contrary to the design{}. ",
            i.first_mismatch
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    s.push_str(
        "In step 5 every racer updated the same field, total, with a load and a separate \
         store: several writers of one word, and an increment made between another racer's \
         load and store was overwritten. In the ring every field has exactly one writer: the \
         sender alone writes the records and the tail, the receiver alone writes the head. \
         Nothing is read, modified and written back by two processes. And the order is \
         explicit: the sender writes a record's bytes, then publishes it with a release store; \
         the receiver's acquire load of what was published makes every byte written before it \
         visible; the receiver hands the space back with a release store of head, which the \
         sender acquire-loads before it reuses those bytes.",
    );
    s
}

fn goals(blocks: &mut Vec<Block>, f: &Findings) {
    blocks.push(Block::heading(
        "The channel's goals, computed from this run's numbers",
    ));
    // A goal against an implausible floor is not measured, whatever the benchmark's verdict.
    let floor_why = implausible_floor(f);
    let against_floor = |g: &GoalOutcome| g.id() == GoalId::SpinNearFloor && floor_why.is_some();
    let lines: Vec<String> = f
        .goals
        .iter()
        .map(|g| match g {
            GoalOutcome::Measured(goal) if against_floor(g) => format!(
                "[not measured] {}: {}",
                goal.statement,
                floor_why.as_deref().unwrap_or_default()
            ),
            _ => render_goal(g),
        })
        .collect();
    blocks.push(Block::evidence("goals", lines.join("\n")));
    let met = f
        .goals
        .iter()
        .filter(|g| !against_floor(g) && g.met() == Some(true))
        .count();
    let measured = f
        .goals
        .iter()
        .filter(|g| !against_floor(g) && g.met().is_some())
        .count();
    blocks.push(Block::text(format!(
        "{met} of {measured} measured goals met ({} not measurable in this run). Goals are \
         printed, never asserted: a busy or slower machine prints \"not met\" with its own \
         numbers.",
        f.goals.len() - measured
    )));
}
