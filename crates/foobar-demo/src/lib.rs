//! The code `foo` and `bar` share (step 4 of mmap-lab): each is a three-line `main` that calls
//! [`main`] with its [`Role`]. Kept in this one small crate so neither program repeats it:
//! printing the pid and the addresses of `setbaz`, `getbaz` and `baz`, and what `bazaddr()`
//! answers, with the `/proc/self/maps` line each lies in, the observation loop, `--count`/`--interval-ms`,
//! `--json` (one JSON object per line) and a clean stop on Ctrl-C.
//!
//! The calls into libfoobar.so are declared in [`sys`] with `#[link(name = "foobar")]`, so the
//! programs link the real shared library (`DT_NEEDED libfoobar.so`); the `foobar` crate is a
//! dependency only so that cargo builds the `.so` first, and is never linked in.
//!
//! Run `cargo run -p foo` in one terminal and `cargo run -p bar` in another: foo sets baz to 17
//! and keeps seeing 17 while bar counts its own baz up from 1 — each process has its own
//! copy-on-write copy of the library's data, while the code is one copy in RAM. Ctrl-C stops
//! either one; it then exits with status 0 (stopping is the normal end of a run that goes on
//! until Ctrl-C), as it does after `--count N` observations. SIGTERM and SIGHUP (the terminal
//! closed) are treated the same way. A write to stdout that fails (`>/dev/full`) is an error,
//! exit 1; a reader that went away (`| head`) ends the run quietly.
//!
//! A production program would not poll a global: it would share state on purpose (a
//! `MAP_SHARED` mapping or a socket), and it would install its signal handling once in a
//! runtime rather than block signals by hand.

// foo, bar and baz are the assignment's names, not placeholders.
#![allow(clippy::disallowed_names)]

pub mod maps;
pub mod sys;

/// A line on stderr, best effort: a full or closed stderr (`2>/dev/full`) must not turn a
/// progress note into a panic. (`eprintln!` panics when the write fails.)
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser};
use foobar_events::{Event, StopReason, Symbol};

/// Which program is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sets baz to 17, then observes it.
    Foo,
    /// Sets baz to 1, then increments it between observations.
    Bar,
}

impl Role {
    /// The program's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Foo => "foo",
            Role::Bar => "bar",
        }
    }

    fn about(self) -> &'static str {
        match self {
            Role::Foo => {
                "Sets baz in libfoobar.so to 17, then keeps observing it and prints every value \
                 (run bar beside it: does foo ever see bar's values?). First prints the pid, the addresses of \
                 setbaz, getbaz and baz, and what bazaddr() returns, each with the /proc/self/maps \
                 line it lies in and its place in the file (libfoobar.so+0x…, the same in every \
                 process)."
            }
            Role::Bar => {
                "Sets baz in libfoobar.so to 1, then increments it periodically and prints every \
                 value (run foo beside it: does foo see these?). First prints the pid, the addresses of \
                 setbaz, getbaz and baz, and what bazaddr() returns, each with the /proc/self/maps \
                 line it lies in and its place in the file (libfoobar.so+0x…, the same in every \
                 process)."
            }
        }
    }

    fn after_help(self) -> String {
        let n = self.name();
        format!(
            "Examples:\n  \
             {n}                                 run until Ctrl-C, one observation a second\n  \
             {n} --count 5 --interval-ms 100     five observations, 100 ms apart\n  \
             {n} --json --count 3                one JSON object per line\n  \
             strace -e trace=openat,mmap,mprotect {n} --count 1\n                                    \
             see the loader map libfoobar.so\n\n\
             Output: `pid: N`, then `setbaz: 0x…`, `getbaz: 0x…`, `baz: 0x…` and `bazaddr: 0x…`\n\
             (what the library's bazaddr() returns: where its own code finds baz), each followed\n\
             by its place in the file, `libfoobar.so+0x…` (address - start + offset of its\n\
             mapping: the same in every process, wherever the library is loaded, so equal\n\
             places in foo and bar are the same code or variable of the same file) and its\n\
             /proc/self/maps line, then one `baz = VALUE` line per observation.\n\
             Ctrl-C (SIGINT), SIGTERM or SIGHUP stops it cleanly with exit status 0; usage errors\n\
             exit 2; a failed write to stdout (a full disk) exits 1."
        )
    }
}

/// The options foo and bar share.
#[derive(Debug, Args)]
struct Opts {
    /// Stop after N observations (default: run until Ctrl-C).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Milliseconds between observations (0 = as fast as possible).
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    interval_ms: u64,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    opts: Opts,
}

/// What ended a write to stdout.
enum Out {
    /// The reader went away (`foo | head -3`): stop quietly, status 0.
    Closed,
    Failed(anyhow::Error),
}

impl From<std::io::Error> for Out {
    fn from(e: std::io::Error) -> Out {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Out::Closed
        } else {
            Out::Failed(anyhow::Error::new(e).context("cannot write to stdout"))
        }
    }
}

impl From<anyhow::Error> for Out {
    fn from(e: anyhow::Error) -> Out {
        Out::Failed(e)
    }
}

/// The whole program: parses the command line, runs, and maps errors to `error: …` and an exit
/// status (2 for usage errors, 1 for run-time failures).
pub fn main(role: Role) -> ExitCode {
    let cmd = Cli::command()
        .name(role.name())
        .bin_name(role.name())
        .about(role.about())
        .after_help(role.after_help());
    let opts = match cmd
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli.opts,
        // --help/--version print to stdout and exit 0; usage errors are one line, exit 2.
        Err(e) => return lab_cli::report(&e, role.name()),
    };
    match run(role, &opts) {
        Ok(()) | Err(Out::Closed) => ExitCode::SUCCESS,
        Err(Out::Failed(e)) => {
            note!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn emit(json: bool, event: &Event, text: impl FnOnce() -> String) -> Result<(), Out> {
    let mut stdout = std::io::stdout().lock();
    if json {
        let line = serde_json::to_string(event).context("cannot encode JSON")?;
        writeln!(stdout, "{line}")?;
    } else {
        writeln!(stdout, "{}", text())?;
    }
    // Line by line, so a reader (a pipe, xtask) sees each observation as it happens.
    stdout.flush()?;
    Ok(())
}

fn run(role: Role, opts: &Opts) -> Result<(), Out> {
    sys::block_stop_signals().context("cannot block SIGINT/SIGTERM/SIGHUP (sigprocmask)")?;
    let program = role.name().to_string();
    let pid = std::process::id();
    let maps_text = std::fs::read_to_string("/proc/self/maps")
        .context("cannot read /proc/self/maps (is /proc mounted?)")?;
    let symbols: Vec<Symbol> = sys::addresses()
        .into_iter()
        .map(|(name, addr)| Symbol {
            name: name.to_string(),
            address: format!("{addr:#x}"),
            map: maps::find(&maps_text, addr),
            file_offset: maps::file_offset(&maps_text, addr).map(|o| format!("{o:#x}")),
        })
        .collect();
    let start = Event::Start {
        program: program.clone(),
        pid,
        symbols,
    };
    let Event::Start { symbols, .. } = &start else {
        unreachable!("just built")
    };
    emit(opts.json, &start, || {
        let mut s = format!("pid: {pid}");
        for sym in symbols {
            let line = sym
                .map
                .as_ref()
                .map_or("(in no mapping of /proc/self/maps)", |m| m.line.as_str());
            let place = sym.place().unwrap_or_else(|| "(in no file)".to_string());
            s.push_str(&format!("\n{}: {}  {place}  {line}", sym.name, sym.address));
        }
        s
    })?;

    let first = match role {
        Role::Foo => 17,
        Role::Bar => 1,
    };
    sys::set_baz(first);
    let forever = opts.count.is_none();
    note!(
        "{program}: set baz to {first}; {} every {} ms{}",
        match role {
            Role::Foo => "observing it",
            Role::Bar => "incrementing it",
        },
        opts.interval_ms,
        if forever { " until Ctrl-C" } else { "" }
    );

    let mut n = 0u64;
    let reason = loop {
        if opts.count.is_some_and(|c| n >= c) {
            break StopReason::Count;
        }
        if n > 0 {
            if let Some(stop) = sys::wait_for_stop(opts.interval_ms)
                .context("cannot wait for the next observation (sigtimedwait)")?
            {
                break stop;
            }
            if role == Role::Bar {
                sys::set_baz(sys::get_baz().wrapping_add(1));
            }
        }
        n += 1;
        let baz = sys::read_baz();
        emit(
            opts.json,
            &Event::Observation {
                program: program.clone(),
                pid,
                n,
                baz,
            },
            || format!("baz = {baz}"),
        )?;
    };
    if opts.json {
        emit(
            true,
            &Event::Stop {
                program: program.clone(),
                pid,
                observations: n,
                reason,
            },
            String::new,
        )?;
    } else {
        note!(
            "{program}: stopped after {n} observation{} ({})",
            if n == 1 { "" } else { "s" },
            reason.name()
        );
    }
    Ok(())
}
