//! `race N`: run N instances (in N terminals, or N background jobs) that race on counters in one
//! shared file mapping, and see how many updates the racy `total++` loses.
//!
//! The first instance creates `racecourse.bin` (or `--file`), every instance takes an id from the
//! count-down in it, all wait until everyone is there, then each increments `total` and its own
//! `winnings[id-1]` until `total` reaches the target. Each prints its id, the total it saw and
//! its winnings; the first also prints the sum of all winnings against the total once the others
//! have left, then removes the file. The course's own C racer can take either role beside it.
//! `cargo xtask run-step 5` runs the sweep. See the library docs (`race::Course`) for the
//! protocol, and for what a production system would do instead (not share counters through a
//! file at all; a real process-shared barrier; counters on separate cache lines).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use race::{
    Arrivals, Course, Departure, Left, Mode, RaceError, Report, Role, Summary, Waits,
    DEFAULT_TARGET, FINISH_STALL, MAX_PARTICIPANTS,
};

const EXAMPLES: &str = "\
Examples:
  race 4                     # in four terminals: the first creates racecourse.bin, all race
  for i in 1 2 3; do race 3 & done; wait
                             # three racers as background jobs of one shell
  race 2 --mode atomic       # fetch_add instead of load+store: no lost updates
  race 2 --target 10000000 --file /tmp/rc.bin --json
                             # a shorter race in another file, one JSON document per instance
  ./racer 2 & race 2         # with the course's own C racer: it creates racecourse.bin, race
                             # joins (either may come first; both race to 1,000,000,000)

While waiting, each instance shows who has arrived (ids 3, 2 of 3). One stopped while waiting
(Ctrl-C, SIGTERM) gives its place back: the count goes up again, the race still waits for N,
and the next one to join takes that id. One that ends mid-race (killed) is reported by the
others and in the summary ('racer id K (pid P) ended before the race finished'). The first
instance removes the file when the race ends, or when interrupted (Ctrl-C) alone or mid-race;
interrupted while others wait, it hands over: the first of them to finish sums up and removes
the file. One killed (SIGKILL) while waiting is noticed by the others ('id K left before the
start (killed)'): its place is free again and the race still waits for N live racers. When the
creator is killed mid-race, the first of the others to finish sums up (naming the creator and
its last winnings) and removes the file. Interrupted mid-race, a racer says its id and winnings
so far. A race whose count
never reaches 0 although everyone is there (the course's racer decrements participants
without a lock and can lose an arrival) is reported after --arrival-timeout.
Exit status: 0 done, 1 runtime error (stale or foreign file, race under way, timeout), 2 usage.";

/// Race N processes on counters in a shared, memory-mapped file (struct RaceCourse).
#[derive(Parser)]
#[command(name = "race", version, after_help = EXAMPLES)]
struct Cli {
    /// Number of participants, 1 to 10 (used by the first instance; joiners take the file's).
    #[arg(value_parser = parse_participants, allow_negative_numbers = true)]
    participants: i32,
    /// The race file.
    #[arg(long, default_value = "racecourse.bin")]
    file: PathBuf,
    /// racy: load then store (the C program's total++, loses updates); atomic: fetch_add.
    #[arg(long, value_enum, default_value_t = ModeArg::Racy)]
    mode: ModeArg,
    /// Race until total reaches this (a whole number from 1 to 4611686018427387903).
    #[arg(long, default_value_t = DEFAULT_TARGET, value_parser = parse_target,
          allow_negative_numbers = true)]
    target: i64,
    /// Give up when the others have not all arrived after this many seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    join_timeout: u64,
    /// With no arrival for this many seconds, look in /proc whether everyone is there: then an
    /// arrival was lost and the race can never start (say so and stop).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    arrival_timeout: u64,
    /// Print one JSON document on stdout: {"id","total","winnings",...,"summary"?}.
    #[arg(long)]
    json: bool,
}

/// `participants`: the same sentence for `0`, `11`, `-1` and `abc`, naming the rule.
fn parse_participants(text: &str) -> Result<i32, String> {
    match text.trim().parse::<i32>() {
        Ok(n) if (1..=MAX_PARTICIPANTS).contains(&n) => Ok(n),
        _ => Err(format!(
            "participants must be a number from 1 to {MAX_PARTICIPANTS}"
        )),
    }
}

/// The largest `--target`: total never overflows, even with ten racers' stale stores past it.
const MAX_TARGET: i64 = i64::MAX / 2;

/// `--target`: a negative or zero target is a value that breaks the rule, said as such (not
/// clap's advice to write `-- -3`, which would make it a participant count).
fn parse_target(text: &str) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(t) if (1..=MAX_TARGET).contains(&t) => Ok(t),
        _ => Err(format!(
            "the target must be a whole number of increments from 1 to {MAX_TARGET}"
        )),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Racy,
    Atomic,
}

/// A line on stderr. Best effort: a closed stderr must not turn into a panic mid-race.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    let cli: Cli = match lab_cli::parse() {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    match run(&cli) {
        Ok(status) => status,
        Err(e) => {
            note!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Interrupted while waiting: leave (give the place back, remove or hand over the file), say
/// what was done, and end with status 128 + the signal.
fn leave(course: &mut Course, sig: i32) -> anyhow::Result<ExitCode> {
    let id = course.id();
    let file = course.path().display().to_string();
    let left = course
        .leave()
        .with_context(|| format!("cannot remove {file}"))?;
    match left {
        Left::GaveBack => note!("race: interrupted while waiting; gave back place id {id}"),
        Left::Removed if course.role() == Role::First => {
            note!("race: interrupted; removed the race file this instance created")
        }
        Left::Removed => note!(
            "race: interrupted while waiting; gave back place id {id}; nobody else was there \
             and the creator had left: removed {file}"
        ),
        Left::HandedOver => note!(
            "race: interrupted while waiting; gave back place id {id}; the others are still \
             there: the race goes on without its creator, and the first of them to finish sums \
             up and removes {file}"
        ),
    }
    Ok(ExitCode::from(128 + sig as u8))
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    race::install_handlers().context("cannot install signal handlers")?;
    let mode = match cli.mode {
        ModeArg::Racy => Mode::Racy,
        ModeArg::Atomic => Mode::Atomic,
    };
    let mut course = Course::enter(&cli.file, cli.participants)?;
    let id = course.id();
    let role = course.role();
    let file = cli.file.display();
    match role {
        Role::First => note!(
            "race: created {file} for {}; I am id {id}",
            race::participants_text(cli.participants, false)
        ),
        Role::Joiner => note!("race: joined the race in {file}; I am id {id}"),
    }
    let waits = Waits {
        join: Duration::from_secs(cli.join_timeout),
        arrival: Duration::from_secs(cli.arrival_timeout),
    };
    match course.wait_for_start(waits, |a: Arrivals| note!("{}", waiting_line(&a))) {
        Ok(()) => {}
        Err(RaceError::Interrupted { sig }) => return leave(&mut course, sig),
        Err(e) => return Err(e.into()),
    }
    note!(
        "race: everyone is here; id {id} racing to {} ({})",
        cli.target,
        mode.name()
    );
    let target = cli.target;
    let outcome = course.race(mode, target, &|d: &Departure| {
        note!("race: {}", departure_text(d, target));
    });
    let summary = if role == Role::First || course.take_over() {
        if role == Role::Joiner {
            note!(
                "race: the race's creator is gone (left or killed); id {id} sums up and removes \
                 {file} once the others are done"
            );
        }
        let mut s = course.wait_for_end(cli.target, FINISH_STALL);
        s.ended_early = outcome.departures.clone();
        if !s.still_held_by.is_empty() {
            note!(
                "race: nothing moved for {} s while process(es) {:?} still mapped {file}: \
                 summarised without waiting for them",
                FINISH_STALL.as_secs(),
                s.still_held_by
            );
        }
        course
            .remove()
            .with_context(|| format!("cannot remove {file}"))?;
        Some(s)
    } else {
        None
    };
    // Leave the race (unmap, close, drop the lock) before printing: the first instance waits
    // for that, and a slow terminal must not hold it up.
    drop(course);
    let report = Report {
        id,
        total: outcome.total_seen,
        winnings: outcome.winnings,
        mode,
        target: cli.target,
        first: role == Role::First,
        seconds: outcome.seconds,
        cpu_seconds: outcome.cpu_seconds,
        summary,
    };
    let text = if cli.json {
        serde_json::to_string(&report)? + "\n"
    } else {
        human(&report)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // The reader went away (`race 1 | head -0`): nothing left to say to it.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write the result to stdout"),
    }
    .map(|()| ExitCode::SUCCESS)
}

/// `racer id 2 (pid 812) ended before the race finished (total 5000 of 100000; its winnings
/// stopped at 1700)`.
fn departure_text(d: &Departure, target: i64) -> String {
    let creator = if d.creator {
        ", the race's creator"
    } else {
        ""
    };
    let who = match d.id {
        Some(id) => format!("racer id {id} (pid {}{creator})", d.pid),
        None => format!("racer pid {} (id unknown{creator})", d.pid),
    };
    let winnings = d
        .winnings
        .map_or(String::new(), |w| format!("; its winnings stopped at {w}"));
    format!(
        "{who} ended before the race finished (total {} of {target}{winnings})",
        d.total
    )
}

/// `race: 2 of 3 arrived (ids 3, 2); waiting for 1 more participant`, after `id 2 left; ` when
/// one gave its place back.
fn waiting_line(a: &Arrivals) -> String {
    let list = |ids: &[i32]| {
        let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
        ids.join(", ")
    };
    let ids = |ids: &[i32], how: &str| match ids.len() {
        0 => String::new(),
        1 => format!("id {} left{how}; ", ids[0]),
        _ => format!("ids {} left{how}; ", list(ids)),
    };
    let (killed, gave_back): (Vec<i32>, Vec<i32>) =
        a.left.iter().partition(|id| a.killed.contains(id));
    let left = ids(&gave_back, "") + &ids(&killed, " before the start (killed)");
    let arrived = match a.arrived.len() {
        1 => format!("id {}", a.arrived[0]),
        _ => format!("ids {}", list(&a.arrived)),
    };
    format!(
        "race: {left}{} of {} arrived ({arrived}); waiting for {}",
        a.arrived.len(),
        a.expected,
        race::participants_text(a.waiting_for, true)
    )
}

fn human(r: &Report) -> String {
    let mut s = format!(
        "id {}: total {}, winnings {} ({:.3} s, {} mode)\n",
        r.id,
        r.total,
        r.winnings,
        r.seconds,
        r.mode.name()
    );
    if let Some(sum) = &r.summary {
        s += &summary_lines(sum, r.target);
    }
    s
}

fn summary_lines(s: &Summary, target: i64) -> String {
    let early = |id: usize| s.ended_early.iter().any(|d| d.id == Some(id as i32));
    let by_id: Vec<String> = s
        .winnings
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let note = if early(i + 1) { " (ended early)" } else { "" };
            format!("id {}: {w}{note}", i + 1)
        })
        .collect();
    let mut out = format!("winnings by id: {}\n", by_id.join(", "));
    out += &format!(
        "sum of winnings {} vs total {}: {} increments of total lost ({:.2}% of {} made) by {} \
         participants\n",
        s.sum_of_winnings,
        s.total,
        s.lost_updates,
        s.lost_percent(),
        s.sum_of_winnings,
        s.participants
    );
    for d in &s.ended_early {
        out += &format!(
            "{}: what it made is in the sum, but it did not finish the race\n",
            departure_text(d, target)
        );
    }
    if !s.still_held_by.is_empty() {
        out += &format!(
            "(taken while process(es) {:?} still mapped the file: their last increments may be \
             missing)\n",
            s.still_held_by
        );
    }
    out
}
