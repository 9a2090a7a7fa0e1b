//! `race N`: run N instances (in N terminals, or N background jobs) that race on counters in one
//! shared file mapping, and see how many updates the racy `total++` loses.
//!
//! The first instance creates `racecourse.bin` (or `--file`), every instance takes an id from the
//! count-down in it, all wait until everyone is there, then each increments `total` and its own
//! `winnings[id-1]` until `total` reaches the target. Each prints its id, the total it saw and
//! its winnings; the first also prints the sum of all winnings against the total, then removes
//! the file. `cargo xtask run-step 5` runs the sweep. See the library docs (`race::Course`) for
//! the protocol, and for what a production system would do instead (not share counters through a
//! file at all; a real process-shared barrier; counters on separate cache lines).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use race::{Arrivals, Course, Mode, Role, DEFAULT_TARGET, MAX_PARTICIPANTS};
use serde::Serialize;

const EXAMPLES: &str = "\
Examples:
  race 4                     # in four terminals: the first creates racecourse.bin, all race
  for i in 1 2 3; do race 3 & done; wait
                             # three racers as background jobs of one shell
  race 2 --mode atomic       # fetch_add instead of load+store: no lost updates
  race 2 --target 10000000 --file /tmp/rc.bin --json
                             # a shorter race in another file, one JSON document per instance

The first instance removes the file when the race ends, or when interrupted (Ctrl-C).
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
    /// Print one JSON document on stdout: {"id","total","winnings",...,"summary"?}.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Racy,
    Atomic,
}

#[derive(Serialize)]
struct Report {
    id: i32,
    total: i64,
    winnings: i64,
    mode: &'static str,
    target: i64,
    first: bool,
    seconds: f64,
    cpu_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<SummaryJson>,
}

#[derive(Serialize)]
struct SummaryJson {
    participants: i32,
    total: i64,
    sum_of_winnings: i64,
    lost_updates: i64,
    winnings: Vec<i64>,
}

/// A line on stderr. Best effort: a closed stderr must not turn into a panic mid-race.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// A line on stdout; a closed stdout (`| head`) is not an error worth a panic either.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// How long the first instance waits for the others to say "finished" once nothing moves.
const FINISH_STALL: Duration = Duration::from_secs(10);

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
    let (mode, mode_name) = match cli.mode {
        ModeArg::Racy => (Mode::Racy, "racy"),
        ModeArg::Atomic => (Mode::Atomic, "atomic"),
    };
    let mut course = Course::enter(&cli.file, cli.participants)?;
    let id = course.id();
    let file = cli.file.display();
    match course.role() {
        Role::First => note!(
            "race: created {file} for {} participants; I am id {id}",
            cli.participants
        ),
        Role::Joiner => {
            note!("race: joined the race in {file} (the first instance set its size); I am id {id}")
        }
    }
    course.wait_for_start(
        Duration::from_secs(cli.join_timeout),
        |a: Arrivals| match a.expected {
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
        },
    )?;
    note!(
        "race: everyone is here; id {id} racing to {} ({mode_name})",
        cli.target
    );
    let outcome = course.race(mode, cli.target);
    let summary = if course.role() == Role::First {
        let s = course.wait_for_finish(cli.participants, FINISH_STALL);
        if s.is_none() {
            note!(
                "race: not every participant reported finishing ({} s without progress); no \
                 summary",
                FINISH_STALL.as_secs()
            );
        }
        course
            .remove()
            .with_context(|| format!("cannot remove {file}"))?;
        s
    } else {
        None
    };
    let report = Report {
        id,
        total: outcome.total_seen,
        winnings: outcome.winnings,
        mode: mode_name,
        target: cli.target,
        first: course.role() == Role::First,
        seconds: outcome.seconds,
        cpu_seconds: outcome.cpu_seconds,
        summary: summary.map(|s| SummaryJson {
            participants: s.participants,
            total: s.total,
            sum_of_winnings: s.sum_of_winnings,
            lost_updates: s.lost_updates,
            winnings: s.winnings,
        }),
    };
    if cli.json {
        say!("{}", serde_json::to_string(&report)?);
    } else {
        print_human(&report);
    }
    Ok(())
}

fn print_human(r: &Report) {
    say!(
        "id {}: total {}, winnings {} ({:.3} s, {} mode)",
        r.id,
        r.total,
        r.winnings,
        r.seconds,
        r.mode
    );
    if let Some(s) = &r.summary {
        let by_id: Vec<String> = s
            .winnings
            .iter()
            .enumerate()
            .map(|(i, w)| format!("id {}: {w}", i + 1))
            .collect();
        say!("winnings by id: {}", by_id.join(", "));
        let share = if s.sum_of_winnings > 0 {
            100.0 * s.lost_updates as f64 / s.sum_of_winnings as f64
        } else {
            0.0
        };
        say!(
            "sum of winnings {} vs total {}: {} increments of total lost ({share:.2}% of {} \
             made) by {} participants",
            s.sum_of_winnings,
            s.total,
            s.lost_updates,
            s.sum_of_winnings,
            s.participants
        );
    }
}
