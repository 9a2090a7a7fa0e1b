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
    Arrivals, Course, Mode, Report, Role, Summary, Waits, DEFAULT_TARGET, FINISH_STALL,
    MAX_PARTICIPANTS,
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

The first instance removes the file when the race ends, or when interrupted (Ctrl-C). A race
whose count never reaches 0 although everyone is there (the course's racer decrements
participants without a lock and can lose an arrival) is reported after --arrival-timeout.
Exit status: 0 done, 1 runtime error (stale or foreign file, race under way, timeout), 2 usage.";

/// Race N processes on counters in a shared, memory-mapped file (struct RaceCourse).
#[derive(Parser)]
#[command(name = "race", version, after_help = EXAMPLES)]
struct Cli {
    /// Number of participants, 1 to 10 (used by the first instance; joiners take the file's).
    #[arg(value_parser = clap::value_parser!(i32).range(1..=MAX_PARTICIPANTS as i64))]
    participants: i32,
    /// The race file.
    #[arg(long, default_value = "racecourse.bin")]
    file: PathBuf,
    /// racy: load then store (the C program's total++, loses updates); atomic: fetch_add.
    #[arg(long, value_enum, default_value_t = ModeArg::Racy)]
    mode: ModeArg,
    /// Race until total reaches this.
    #[arg(long, default_value_t = DEFAULT_TARGET,
          value_parser = clap::value_parser!(i64).range(1..=i64::MAX / 2))]
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
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
            "race: created {file} for {} participants; I am id {id}",
            cli.participants
        ),
        Role::Joiner => note!("race: joined the race in {file}; I am id {id}"),
    }
    let waits = Waits {
        join: Duration::from_secs(cli.join_timeout),
        arrival: Duration::from_secs(cli.arrival_timeout),
    };
    course.wait_for_start(waits, |a: Arrivals| match a.expected {
        Some(n) => {
            let ids: Vec<String> = ((a.waiting_for + 1)..=n)
                .rev()
                .map(|i| i.to_string())
                .collect();
            note!(
                "race: {} of {n} arrived (ids {}); waiting for {} more",
                n - a.waiting_for,
                ids.join(", "),
                a.waiting_for
            );
        }
        None => note!("race: waiting for {} more participants", a.waiting_for),
    })?;
    note!(
        "race: everyone is here; id {id} racing to {} ({})",
        cli.target,
        mode.name()
    );
    let outcome = course.race(mode, cli.target);
    let summary = if role == Role::First {
        let s = course.wait_for_end(cli.target, FINISH_STALL);
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
        s += &summary_lines(sum);
    }
    s
}

fn summary_lines(s: &Summary) -> String {
    let by_id: Vec<String> = s
        .winnings
        .iter()
        .enumerate()
        .map(|(i, w)| format!("id {}: {w}", i + 1))
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
    if !s.still_held_by.is_empty() {
        out += &format!(
            "(taken while process(es) {:?} still mapped the file: their last increments may be \
             missing)\n",
            s.still_held_by
        );
    }
    out
}
