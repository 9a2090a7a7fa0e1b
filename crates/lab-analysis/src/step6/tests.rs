//! Step 6's findings on recorded evidence (`xtask/tests/evidence/*/step6.json`, made with
//! `--save-evidence`), and the stream runner against programs that hang or fail.
//!
//! Here: the Findings and the narrative; the pictures, the measurement and live runs are
//! tested in xtask's `step6::tests`.

use std::path::{Path, PathBuf};

use channel::bench::{GoalId, Placement, Transport};

use crate::step6::analyze::{analyze, CellCalls, Findings, Syscalls, Timeouts};
use crate::step6::Evidence;

fn dir(name: &str) -> PathBuf {
    Path::new(crate::testkit::XTASK_DIR)
        .join("tests/evidence")
        .join(name)
}

pub(crate) fn fixture(name: &str) -> Evidence {
    crate::testkit::load(&dir(name), 6).unwrap()
}

fn recorded(name: &str) -> (Evidence, Findings) {
    let ev = fixture(name);
    let f = analyze(&ev).unwrap();
    (ev, f)
}

fn cells(f: &Findings) -> &[CellCalls] {
    match &f.syscalls {
        Syscalls::Counted { cells, .. } => cells,
        Syscalls::Unavailable { reason } => panic!("not traced: {reason}"),
    }
}

fn cell(f: &Findings, t: Transport, p: Placement) -> &CellCalls {
    cells(f)
        .iter()
        .find(|c| c.transport == t && c.placement == p)
        .unwrap_or_else(|| panic!("no {t:?} {p:?} cell"))
}

fn goal(f: &Findings, id: GoalId) -> Option<bool> {
    f.goals.iter().find(|g| g.id() == id).unwrap().met()
}

fn rate(c: &CellCalls, key: &str) -> f64 {
    c.per_message
        .iter()
        .find(|r| r.key == key)
        .map_or(0.0, |r| r.per_message)
}

/// `cargo xtask run-step 6 --save-evidence` on two CPUs (full run): spinning costs no call,
/// a pipe a write and a read per message, ring-wait sleeps only on one CPU; the ring beats
/// pipe and socket by far; 1.70x the floor (the goal of 1.5x not met in this recording).
#[test]
fn two_cpus_no_call_while_spinning_and_the_ring_far_ahead() {
    let (_, f) = recorded("channel-two-cpus");
    let Syscalls::Counted {
        spinning_makes_none,
        pipe_write_read,
        ..
    } = &f.syscalls
    else {
        panic!("not traced")
    };
    assert_eq!(*spinning_makes_none, Some(true));
    let (w, r) = pipe_write_read.unwrap();
    assert!((w - 1.0).abs() < 0.01 && (r - 1.0).abs() < 0.01, "{w} {r}");
    let sock = cell(&f, Transport::UnixSocket, Placement::TwoCpus);
    assert!((rate(sock, "sendto") - 1.0).abs() < 0.01);
    assert!((rate(sock, "recvfrom") - 1.0).abs() < 0.01);
    // Per message, split by side: the runner sends once and receives once per round trip.
    let pipe = cell(&f, Transport::Pipe, Placement::TwoCpus);
    let write = pipe.per_message.iter().find(|r| r.key == "write").unwrap();
    assert!((write.runner - 0.5).abs() < 0.01 && (write.peer - 0.5).abs() < 0.01);

    let awake = cell(&f, Transport::RingWait, Placement::TwoCpus);
    assert!(!awake.slept && awake.none_per_message, "{awake:?}");
    let asleep = cell(&f, Transport::RingWait, Placement::OneCpu);
    assert!(asleep.slept && !asleep.none_per_message);
    assert!(asleep.futex_waits_per_message > 0.3);
    assert!(asleep.wakes_within_waits);
    assert_eq!(asleep.timeouts, Timeouts::None);
    // A wake that found nobody asleep pairs with a wait that returned EAGAIN.
    assert!(asleep.wakes_woke_none.abs_diff(asleep.waits_changed) <= 10);

    assert_eq!(f.primary, Placement::TwoCpus);
    assert_eq!(f.placements, vec![Placement::TwoCpus, Placement::OneCpu]);
    assert_eq!(f.faster.len(), 4);
    assert!(f.faster.iter().all(|r| r.ratio > 100.0), "{:?}", f.faster);
    let floor = f.floor.as_ref().unwrap();
    let spin = floor.spin.unwrap();
    assert!((spin.ratio - 1.7).abs() < 0.01, "{spin:?}");
    assert_eq!(goal(&f, GoalId::SpinNearFloor), Some(false));
    assert_eq!(goal(&f, GoalId::SpinVsPipe), Some(true));
    assert_eq!(goal(&f, GoalId::OneCpuVsPipe), Some(true));
    assert_eq!(goal(&f, GoalId::ThroughputVsPipe), Some(true));
    assert!(f.throughput.iter().all(|r| r.numerator.size == 1 << 20));

    let one = f.one_cpu.as_ref().unwrap();
    assert_eq!(one.spin_worse_than_wait, Some(true));
    assert!(one.spin_over_wait.unwrap().ratio > 100.0);
    assert_eq!(one.faster_on_one, [Transport::Pipe, Transport::UnixSocket]);
    assert_eq!(one.slowdown.len(), 5);

    let i = &f.integrity;
    assert!(i.all_intact_in_order);
    assert_eq!(
        (i.lines, i.sent, i.received, i.matched, i.lost),
        (50_000, 50_000, 50_000, 50_000, 0)
    );
    assert_eq!(i.end_reason.as_deref(), Some("closed"));
    assert!(i.laps > 1000.0);
}

/// `taskset -c 0 cargo xtask run-step 6 --quick`: one CPU only. No floor, comparisons on one
/// CPU, where the spinning ring is thousands of times slower than a pipe (the goals against
/// pipe and socket not met) and ring-wait about a pipe's equal.
#[test]
fn one_cpu_mask_the_spinning_ring_loses_to_a_pipe() {
    let (_, f) = recorded("one-cpu-taskset");
    assert_eq!(f.placements, vec![Placement::OneCpu]);
    assert_eq!(f.primary, Placement::OneCpu);
    assert!(f.floor.is_none());
    assert_eq!(goal(&f, GoalId::SpinNearFloor), None);
    assert_eq!(goal(&f, GoalId::SpinVsPipe), Some(false));
    assert_eq!(goal(&f, GoalId::SpinVsSocket), Some(false));
    assert_eq!(goal(&f, GoalId::OneCpuVsPipe), Some(true));
    let spin_vs_pipe = f
        .faster
        .iter()
        .find(|r| {
            r.denominator.transport == Transport::RingSpin
                && r.numerator.transport == Transport::Pipe
        })
        .unwrap();
    assert!(spin_vs_pipe.ratio < 0.01, "{spin_vs_pipe:?}");
    let one = f.one_cpu.as_ref().unwrap();
    assert_eq!(one.spin_worse_than_wait, Some(true));
    assert!(one.wait_over_pipe.unwrap().ratio < 2.0);
    assert!(one.slowdown.is_empty() && one.faster_on_one.is_empty());
    // Traced on one CPU: the spinners with few round trips, and still no call per message.
    assert!(cells(&f).iter().all(|c| c.placement == Placement::OneCpu));
    assert_eq!(
        cell(&f, Transport::RingSpin, Placement::OneCpu).round_trips,
        [2, 12]
    );
    assert!(cell(&f, Transport::RingSpin, Placement::OneCpu).none_per_message);
    assert!(cell(&f, Transport::RingWait, Placement::OneCpu).slept);
    assert!(f.integrity.all_intact_in_order);
}

/// With the floor goal's alternated runs, "how close to the floor" is the median measured
/// run's (floor and ring back to back), not two cells of the table that may lie in two of the
/// machine's states: a table with a 120 ns floor beside a ring cell caught at 571 ns says
/// 1.46x, from the runs (the one that changed speed left out), not 4.76x.
#[test]
fn the_floor_answer_comes_from_the_alternated_runs_when_there_are_any() {
    use channel::bench::FloorRun;
    let mut ev = fixture("channel-two-cpus");
    for row in &mut ev.bench.rows {
        if row.placement == Placement::TwoCpus && row.transport == Transport::RingSpin {
            row.rtt_ns.median = 571.0;
        }
        if row.placement == Placement::TwoCpus && row.transport == Transport::Cacheline {
            row.rtt_ns.median = 120.0;
        }
    }
    ev.bench.floor_runs = vec![
        FloorRun::new(130.0, 190.0).with_floor_after(128.0),
        FloorRun::new(130.0, 531.0).with_floor_after(401.0),
        FloorRun::new(140.0, 200.0).with_floor_after(141.0),
        FloorRun::new(120.0, 190.0).with_floor_after(121.0),
    ];
    let f = analyze(&ev).unwrap();
    let floor = f.floor.as_ref().unwrap();
    let spin = floor.spin.unwrap();
    assert!((spin.ratio - 190.0 / 130.0).abs() < 1e-9, "{spin:?}");
    assert_eq!(floor.spin_from_runs, Some(4));
    let text: String = crate::step6::explain::explain(&f, &ev)
        .into_iter()
        .filter_map(|b| match b {
            crate::Block::Answer(a) => Some(a.answer),
            _ => None,
        })
        .collect();
    assert!(
        text.contains("the median measured run of 4 alternated runs"),
        "{text}"
    );
    assert!(!text.contains("4.76"), "{text}");
}

/// Review 30: 8 of 9 alternated runs within 1.5x and one whose floor cell took 8 ms: the floor
/// goal is "not measured" (never "not met"), and the goals' count says so.
#[test]
fn a_floor_goal_with_an_outlier_run_is_counted_as_not_measurable() {
    use channel::bench::FloorRun;
    let mut ev = fixture("channel-two-cpus");
    ev.bench.floor_runs = (0..9)
        .map(|i| match i {
            4 => FloorRun::new(8.0e6, 150.0).with_floor_after(130.0),
            _ => FloorRun::new(130.0, 170.0).with_floor_after(131.0),
        })
        .collect();
    let f = analyze(&ev).unwrap();
    assert_eq!(goal(&f, GoalId::SpinNearFloor), None);
    let text: String = crate::step6::explain::explain(&f, &ev)
        .into_iter()
        .filter_map(|b| match b {
            crate::Block::Text { text } => Some(text),
            crate::Block::Evidence(e) => Some(e.text),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("[not measured] ring-spin 64 B round trip within 1.5x"),
        "{text}"
    );
    assert!(
        text.contains("8 of 9 runs measured, all within 1.50x"),
        "{text}"
    );
    assert!(
        text.contains("4 of 4 measured goals met (1 not measurable in this run)"),
        "{text}"
    );
    assert!(!text.contains("changed speed between its cells"), "{text}");
}

/// All of a cell's blocks as one string (answers, texts, evidence).
fn all_text(f: &Findings, ev: &Evidence) -> String {
    crate::step6::explain::explain(f, ev)
        .into_iter()
        .map(|b| match b {
            crate::Block::Answer(a) => a.answer,
            crate::Block::Text { text } => text,
            crate::Block::Evidence(e) => e.text,
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A traced cell whose short and long runs made these calls (all by the runner).
fn traced(
    transport: Transport,
    placement: Placement,
    round_trips: [u64; 2],
    short: &[(&str, u64)],
    long: &[(&str, u64)],
) -> crate::step6::TracedCell {
    let run = |n: u64, calls: &[(&str, u64)]| crate::step6::TracedRun {
        command: format!("strace -f channel bench --messages {n}"),
        round_trips: n,
        counts: crate::step6::calls::Counts {
            runner: calls.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            ..Default::default()
        },
        sample: Vec::new(),
    };
    crate::step6::TracedCell {
        transport,
        placement,
        size: 64,
        runs: vec![run(round_trips[0], short), run(round_trips[1], long)],
    }
}

/// Review 32 (strace -c): ring-spin made 466 calls for 100 round trips and 454 for 600 — the
/// harness's clock_nanosleep and wait4 a few down. That is no call per message (the answer's
/// words), not "the long run made fewer calls (noise)" in the table; ring-wait on one CPU, with
/// the same harness wobble, is about one futex call per message. A fall of one call in 20
/// messages (a cell of 2 and 12 round trips) is as large as the costs measured: not measured.
#[test]
fn a_harness_call_a_few_down_is_zero_and_the_table_agrees_with_the_answer() {
    let harness_short = [("clock_nanosleep", 20), ("wait4", 15), ("mmap", 431)];
    let harness_long = [("clock_nanosleep", 13), ("wait4", 10), ("mmap", 431)];
    let spin = traced(
        Transport::RingSpin,
        Placement::TwoCpus,
        [100, 600],
        &harness_short,
        &harness_long,
    );
    let futex = |n: u64| {
        [
            ("futex(FUTEX_WAIT) = -1 EAGAIN", n),
            ("futex(FUTEX_WAKE) = 0", n),
        ]
    };
    let wait_one_cpu = traced(
        Transport::RingWait,
        Placement::OneCpu,
        [100, 600],
        &[&harness_short[..], &futex(100)[..]].concat(),
        &[&harness_long[..], &futex(597)[..]].concat(),
    );
    let coarse = traced(
        Transport::Cacheline,
        Placement::OneCpu,
        [2, 12],
        &[("clock_nanosleep", 3), ("mmap", 400)],
        &[("clock_nanosleep", 2), ("mmap", 400)],
    );
    let mut ev = fixture("channel-two-cpus");
    ev.traces = crate::step6::Traces::Traced {
        cells: vec![spin, wait_one_cpu],
    };
    let f = analyze(&ev).unwrap();
    let spin = cell(&f, Transport::RingSpin, Placement::TwoCpus);
    assert!((spin.total_per_message + 0.012).abs() < 1e-9, "{spin:?}");
    assert!(spin.measured && spin.shrank.is_empty(), "{spin:?}");
    assert!(spin.none_per_message);
    let Syscalls::Counted {
        spinning_makes_none,
        ..
    } = &f.syscalls
    else {
        panic!("not traced")
    };
    assert_eq!(*spinning_makes_none, Some(true));
    let wait = cell(&f, Transport::RingWait, Placement::OneCpu);
    assert!(wait.measured && wait.slept, "{wait:?}");
    assert!((wait.total_per_message - 0.982).abs() < 1e-9, "{wait:?}");
    let t = all_text(&f, &ev);
    assert!(!t.contains("not measured: the long run"), "{t}");
    assert!(t.contains("none per message in the counts above"), "{t}");
    assert!(
        t.contains("ring-wait on one CPU: 0.50 futex waits and 0.50 futex wakes"),
        "{t}"
    );

    ev.traces = crate::step6::Traces::Traced {
        cells: vec![coarse],
    };
    let f = analyze(&ev).unwrap();
    let c = cell(&f, Transport::Cacheline, Placement::OneCpu);
    assert!(!c.measured && !c.none_per_message, "{c:?}");
    assert_eq!(
        c.shrank,
        [
            ("clock_nanosleep".to_string(), 1),
            ("all calls".to_string(), 1)
        ]
    );
    let t = all_text(&f, &ev);
    assert!(
        t.contains(
            "not measured: the long run made fewer calls than the short one (clock_nanosleep 1 \
             fewer, all calls 1 fewer over 20 extra messages"
        ),
        "{t}"
    );
    assert!(t.contains("Not measured for cacheline on one CPU"), "{t}");
}

/// `channel bench`'s window with `bench`, `others` and `idle` CPUs of 2 over 10 s (100 Hz).
fn load_of(bench: f64, others: f64, idle: f64) -> crate::step6::BenchLoad {
    use lab_trace::procstat::CpuTimes;
    let ticks = |cpus: f64| (cpus * 1000.0).round() as u64;
    let cpu = |n: u32, user: u64, idle: u64| CpuTimes {
        cpu: Some(n),
        user,
        nice: 0,
        system: 0,
        idle,
        iowait: 0,
        irq: 0,
        softirq: 0,
        steal: 0,
    };
    let busy = ticks(bench) + ticks(others);
    crate::step6::BenchLoad {
        clock_ticks_per_second: 100,
        seconds: 10.0,
        before: vec![cpu(0, 0, 0), cpu(1, 0, 0)],
        after: vec![
            cpu(0, busy / 2, ticks(idle) / 2),
            cpu(1, busy - busy / 2, ticks(idle) - ticks(idle) / 2),
        ],
        bench_ticks: ticks(bench),
        lab_ticks: 0,
        loadavg_before: 4.81,
        loadavg_after: 5.1,
    }
}

/// Review 32: with two `yes` hogging both CPUs, step 6 printed "738x faster" and explained the
/// two-CPU pipe cost by a CPU leaving its idle state. A busy machine is now said first with its
/// figure, and the floor's and one CPU's cause sentences only when the machine was measured
/// quiet (never in a recording that did not measure it).
#[test]
fn a_busy_machine_is_said_first_and_causes_only_when_measured_quiet() {
    let mut ev = fixture("channel-two-cpus");
    ev.load = Some(load_of(0.9, 1.05, 0.05));
    let f = analyze(&ev).unwrap();
    let l = f.load.unwrap();
    assert!(l.busy && (l.others - 1.05).abs() < 0.01, "{l:?}");
    let blocks = crate::answers_first(crate::step6::explain::explain(&f, &ev));
    let crate::Block::Text { text: first } = &blocks[0] else {
        panic!("{:?}", blocks[0])
    };
    assert!(
        first.starts_with(
            "Busy machine: while channel bench ran (10 s), other processes used 1.05 CPU of the \
             2 it could use (the benchmark itself 0.90; load average 4.81 before, 5.10 after)"
        ),
        "{first}"
    );
    let t = all_text(&f, &ev);
    assert!(!t.contains("leave its idle state"), "{t}");
    assert!(!t.contains("the ring moves more lines"), "{t}");
    assert!(
        t.contains("so the figure includes waiting for a CPU"),
        "{t}"
    );
    assert!(
        t.contains("Measured while other processes used 1.05 CPU of 2"),
        "{t}"
    );

    ev.load = Some(load_of(1.2, 0.02, 0.78));
    let f = analyze(&ev).unwrap();
    assert!(!f.load.unwrap().busy);
    let t = all_text(&f, &ev);
    assert!(!t.contains("Busy machine"), "{t}");
    assert!(t.contains("the ring moves more lines"), "{t}");
    assert!(
        t.contains("leave its idle state: the CPUs were idle 0.39"),
        "{t}"
    );

    ev.load = None;
    let f = analyze(&ev).unwrap();
    let t = all_text(&f, &ev);
    assert!(
        !t.contains("Busy machine") && !t.contains("leave its idle state"),
        "{t}"
    );
    assert!(
        t.contains("whether other processes used the CPUs was not recorded in this run"),
        "{t}"
    );
}
