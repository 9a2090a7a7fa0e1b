//! Step 5 of the mmap lab: inter-process communication through a shared file mapping, and the
//! updates it loses.
//!
//! Several processes map one 96-byte file, `struct RaceCourse { int participants; long total;
//! long winnings[10]; }`, `MAP_SHARED`, and race: each increments `total`, then its own
//! `winnings[id-1]`, until `total` reaches the target. With [`Mode::Racy`] the increment of
//! `total` is a load and a separate store (what `total++` compiles to in C), so two processes
//! that load the same value both store value+1 and one increment is lost: the sum of the
//! winnings ends above the total. [`Mode::Atomic`] uses `fetch_add` and loses nothing. Run it
//! with `race 4` in four terminals, or `cargo xtask run-step 5` for the sweep.
//!
//! The layout is byte for byte the C struct ([`RaceCourse`], 96 bytes on x86-64), so the
//! course's own C racer and this one share a race, in either role. The fields are reached only
//! through atomics over a raw mapping ([`Course`]): no `&[u8]` or `&RaceCourse` ever covers bytes
//! another process writes.
//!
//! # The protocol, and the course's racer beside it
//!
//! The course's racer is the first instance when `stat("racecourse.bin")` fails; it creates the
//! file with `open(O_CREAT|O_RDWR)` (no `O_EXCL`), sizes it with `ftruncate`, maps it and sets
//! `participants = N`; every instance takes `id = participants`, does a plain
//! `participants -= 1` and spins while `participants > 0`; the first unlinks the file at the end.
//! It takes no lock and says nothing when it is done. This crate plays along:
//!
//! 1. Our first instance creates the file exclusively (`O_CREAT|O_EXCL`, under a temporary name
//!    in the same directory), takes a shared `flock(2)`, sizes it with `lseek(2)` + `write(2)`,
//!    maps it, stores `participants = N`, takes its id, and only then publishes it under its name
//!    with `link(2)` (which fails if the name exists: still exclusive). A course racer that
//!    `stat`s the name therefore never finds a short file or a zero count: it would not wait,
//!    and would take a bus error or id 0.
//! 2. Every instance takes `id = participants` and decrements it with a compare-and-swap that
//!    never goes below zero; all wait until it reaches zero (or the race is seen to have started:
//!    `total != 0`). A course racer's plain decrement can overwrite ours (or another's), and then
//!    the count never reaches zero: when nothing has arrived for a while and as many racers as
//!    expected map the file, we say so ([`RaceError::LostArrival`]) instead of spinning forever.
//!    A racer that leaves while waiting (Ctrl-C, SIGTERM, an error) gives its place back: the
//!    count goes up again and its id is free for the next arrival ([`place`]). The first
//!    instance leaving while others wait hands over ([`Course::leave`], [`Course::take_over`]).
//!    A racer killed while waiting (SIGKILL: no handler runs) cannot give its place back
//!    itself: each of our racers holds an `fcntl(2)` record lock on a byte past the end of the
//!    file for its place ([`id_byte`]), which the kernel drops when the process ends. A waiter
//!    that finds arrived places nobody holds locked, and exactly that many fewer racers mapping
//!    the file than have arrived, gives them back for the dead (marked killed, so every waiter
//!    says so): the race starts only with N live racers.
//! 3. Race to the target. Nobody writes `participants` again: a course racer still spinning
//!    would read a count going back up as "not everyone is here" and never start. The first
//!    instance learns that the race is over from `total` reaching the target and from who still
//!    maps the file ([`holders`]), and summarises without waiting for racers that never leave.
//!    During its loop each racer watches the others ([`watch`]): one that stops mapping the file
//!    before the target was reached ended early, and is reported, not counted as a finisher.
//!    Our creator holds a record lock too ([`CREATOR_BYTE`]) until it has removed the file: a
//!    joiner that finishes while nobody holds it and nobody summed up yet takes the creator's
//!    duties over (one compare-and-swap decides who), waits for the others, sums up (naming the
//!    creator among those that ended early) and removes the file. Whoever sums up marks it, so
//!    there is never a second summary.
//!
//! Liveness (is a file a live race or a stale one left by a crash?) is who has it open or mapped,
//! read from `/proc` as `fuser` and `lsof` do ([`holders`]); the shared `flock` our racers hold is
//! only a fast path that avoids scanning `/proc` while one of ours is there.
//!
//! A production system would not share counters through a file at all (threads, or a
//! `memfd`/POSIX shm segment with a versioned header, a real barrier such as a futex or a pthread
//! barrier with `PTHREAD_PROCESS_SHARED`, and per-participant counters on their own cache lines
//! instead of spinning and false sharing), and would record live participants' pids in the
//! shared header rather than infer liveness from `/proc`.

pub mod holders;
pub mod place;
pub mod report;
mod sys;
pub mod watch;

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use holders::{FileKey, Holder};
pub use report::{Departure, Mode, Report, Summary};
pub use sys::install_handlers;

/// The shared struct, exactly as the assignment's C declares it. It is never instantiated over
/// the mapping; it fixes the offsets ([`std::mem::offset_of!`]) that [`Course`] uses.
#[repr(C)]
pub struct RaceCourse {
    pub participants: libc::c_int,
    pub total: libc::c_long,
    pub winnings: [libc::c_long; 10],
}

/// The size of the race file: `sizeof(struct RaceCourse)`.
pub const COURSE_SIZE: usize = std::mem::size_of::<RaceCourse>();
/// The most participants a race can have (the length of `winnings`).
pub const MAX_PARTICIPANTS: i32 = 10;
/// The default target of `total` (the assignment's one billion).
pub const DEFAULT_TARGET: i64 = 1_000_000_000;

/// The byte (past the end of the 96-byte file: the file does not change) our creator holds an
/// `fcntl(2)` record lock on while it lives and until it has removed the file: the kernel drops
/// the lock when the process ends, however it ends, so the others can tell it was killed.
pub const CREATOR_BYTE: u64 = 4096;

/// The byte whose record lock the holder of place `id` keeps while it lives (see
/// [`CREATOR_BYTE`]): a place whose lock nobody holds, while fewer racers map the file than have
/// arrived, belonged to a racer that died waiting.
pub fn id_byte(id: i32) -> u64 {
    CREATOR_BYTE + id as u64
}

// The C layout on the 64-bit Linux targets this lab runs on: int (4) + padding (4) + 11 longs.
const _: () = {
    assert!(
        std::mem::size_of::<libc::c_long>() == 8,
        "long must be 64-bit"
    );
    assert!(COURSE_SIZE == 96);
    assert!(std::mem::offset_of!(RaceCourse, participants) == 0);
    assert!(std::mem::offset_of!(RaceCourse, total) == 8);
    assert!(std::mem::offset_of!(RaceCourse, winnings) == 16);
    assert!(std::mem::align_of::<RaceCourse>() == 8);
};

/// Why a race could not be entered or finished. Every message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RaceError {
    #[error("participants must be a number from 1 to {MAX_PARTICIPANTS}, not {n}")]
    Participants { n: i32 },
    #[error("cannot create race file {path}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot open race file {path}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot size, lock or map race file {path}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path} is a symbolic link to {target}, which does not exist; remove the link or point \
         --file at a file in an existing, writable directory"
    )]
    DanglingSymlink { path: PathBuf, target: PathBuf },
    #[error(
        "{path} vanished each of the {attempts} times this instance tried to create or join it \
         (another program keeps removing it?)"
    )]
    Vanishing { path: PathBuf, attempts: u32 },
    #[error(
        "{path} is {size} bytes, not the {COURSE_SIZE} of a race course, and no process has it \
         open; it is not a race file (remove it, or choose another with --file)"
    )]
    WrongSize { path: PathBuf, size: u64 },
    #[error(
        "{path} holds participants = {participants}, outside 0..={MAX_PARTICIPANTS}; it is not a \
         race file (remove it, or choose another with --file)"
    )]
    Foreign { path: PathBuf, participants: i32 },
    #[error(
        "{path} is a stale race file: it waits for {} but no process has it open or \
         mapped (a previous run crashed?); remove {path} and start again",
        participants_text(*participants, true)
    )]
    StaleWaiting { path: PathBuf, participants: i32 },
    #[error(
        "{path} is an empty race course (no participant count, no total) that no process has \
         open or mapped; remove {path} and start again"
    )]
    StaleEmpty { path: PathBuf },
    #[error(
        "{path} holds a race that ended (total {total}) but was never removed, and no process \
         has it open or mapped; remove {path} and start again"
    )]
    StaleFinished { path: PathBuf, total: i64 },
    #[error(
        "a race is already under way in {path} (total {total}); wait for it to end, or choose \
         another file with --file"
    )]
    UnderWay { path: PathBuf, total: i64 },
    #[error(
        "the race in {path} has all its participants and is about to start; wait for it to \
         end, or choose another file with --file"
    )]
    Full { path: PathBuf },
    #[error(
        "{path} did not become joinable within {secs} s: participants stayed {participants} \
         with total 0 while process(es) {pids} had it open (a full race that has not started, \
         or a first instance that never set the count); choose another file with --file"
    )]
    NotJoinable {
        path: PathBuf,
        participants: i32,
        pids: String,
        secs: u64,
    },
    #[error(
        "{path} still waits for {} after {secs} s ({present} racer(s) have it mapped); \
         start the others sooner, or raise --join-timeout", participants_text(*missing, true)
    )]
    JoinTimeout {
        path: PathBuf,
        missing: i32,
        present: usize,
        secs: u64,
    },
    #[error(
        "the race in {path} can never start: no arrival for {secs} s, participants still says \
         {participants}, yet {present} racers have it mapped (this one and pids {pids}; {expected} \
         expected). \
         An arrival was lost: a racer's plain `participants -= 1` (the course's racer takes no \
         lock) overwrote another racer's decrement, or two instances both found no file and both \
         set the count. Stop the racers still spinning (kill {pids}), remove {path} if it is \
         left, and start again"
    )]
    LostArrival {
        path: PathBuf,
        participants: i32,
        present: usize,
        expected: i32,
        pids: String,
        secs: u64,
    },
    /// SIGINT, SIGTERM or SIGHUP arrived while waiting for the others: the caller leaves
    /// ([`Course::leave`]).
    #[error("interrupted by signal {sig} while waiting for the others")]
    Interrupted { sig: i32 },
    #[error(
        "{path} was removed while waiting for the others: the first instance gave up (see its \
         message) or was interrupted; start a new race"
    )]
    LeaderGone { path: PathBuf },
}

impl RaceError {
    /// The same error, naming `path` (the race file's real name) instead of the temporary name
    /// it was prepared under: a user never sees the temporary name.
    fn at(self, path: &Path) -> RaceError {
        match self {
            RaceError::Io { source, .. } => RaceError::Io {
                path: path.to_path_buf(),
                source,
            },
            RaceError::UnderWay { total, .. } => RaceError::UnderWay {
                path: path.to_path_buf(),
                total,
            },
            other => other,
        }
    }

    fn io(path: &Path, source: io::Error) -> RaceError {
        RaceError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `1 participant`, `2 participants`; with `more`, `1 more participant`.
pub fn participants_text(n: i32, more: bool) -> String {
    let more = if more { " more" } else { "" };
    let s = if n == 1 { "" } else { "s" };
    format!("{n}{more} participant{s}")
}

/// What leaving before the start did ([`Course::leave`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Gave its place back; the others keep waiting.
    GaveBack,
    /// Gave its place back and nobody else was there: removed the file.
    Removed,
    /// The creator gave its place back while others waited: the file stays, and the first of
    /// them to finish the race sums up and removes it.
    HandedOver,
}

/// Whether this instance created the race or joined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    First,
    Joiner,
}

/// Progress while waiting for the others, for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrivals {
    /// How many participants the race still waits for (`participants` in the file).
    pub waiting_for: i32,
    /// The race's N: the first instance's own; a joiner's is its command line's (or its id, if
    /// higher), since the file does not record N.
    pub expected: i32,
    /// The ids that have arrived, highest first (this instance's among them).
    pub arrived: Vec<i32>,
    /// The ids that arrived and left since the last report (they gave their place back, or
    /// died waiting and another racer gave it back for them: see `killed`).
    pub left: Vec<i32>,
    /// Those of `left` whose racer was found dead (killed) while waiting.
    pub killed: Vec<i32>,
}

/// What one instance's race produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The value of `total` this instance saw when it stopped (at least the target).
    pub total_seen: i64,
    /// Its own `winnings[id-1]`.
    pub winnings: i64,
    /// How long its race loop ran (wall clock).
    pub seconds: f64,
    /// The CPU time its race loop took (this thread's: excludes the watcher and the time other
    /// processes ran).
    pub cpu_seconds: f64,
    /// The other racers it saw end before the race finished.
    pub departures: Vec<Departure>,
}

/// How long to wait for things that take a few system calls in a racer: a joiner waits this
/// long for the first instance to size the file and set `participants`.
pub const EARLY_JOIN_WAIT: Duration = Duration::from_secs(5);

/// How long the first instance waits, once nothing moves in the file, for racers that still
/// have it mapped to leave before it summarises without them.
pub const FINISH_STALL: Duration = Duration::from_secs(2);

/// The bounds of waiting for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// The whole wait for everyone to arrive.
    pub join: Duration,
    /// How long without an arrival before asking `/proc` whether everyone is in fact there
    /// (then an arrival was lost).
    pub arrival: Duration,
}

/// A race file mapped `MAP_SHARED`, with this instance's id in it.
pub struct Course {
    path: PathBuf,
    file: File,
    map: MmapRaw,
    key: FileKey,
    role: Role,
    id: i32,
    /// The N this instance was started with: the race's for the first, a hint for a joiner.
    expected: i32,
    removed: bool,
    /// It holds an id and the race has not started: leaving now gives the place back.
    waiting: AtomicBool,
    /// A joiner that took the creator's duties over (or the last to leave a race whose creator
    /// left): it removes the file.
    summariser: bool,
}

/// Whether anyone else has the file: a flock held by one of our racers, or else `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Liveness {
    /// One of our racers holds the shared lock (`/proc` was not consulted).
    Locked,
    /// These processes have it open or mapped.
    Held(Vec<Holder>),
    Nobody,
}

impl Liveness {
    fn alive(&self) -> bool {
        !matches!(self, Liveness::Nobody)
    }

    fn pids(&self) -> String {
        match self {
            Liveness::Locked => "(one of ours, by its lock)".to_string(),
            Liveness::Held(h) => holders::pid_list(h),
            Liveness::Nobody => "none".to_string(),
        }
    }
}

impl Course {
    /// Creates the race at `path` for `n` participants, or joins the one there, and takes an id.
    /// A joiner that finds the file before it is sized or has a count waits up to
    /// [`EARLY_JOIN_WAIT`]. `n` is a joiner's hint of the race's size (the file's count rules).
    pub fn enter(path: &Path, n: i32) -> Result<Course, RaceError> {
        if !(1..=MAX_PARTICIPANTS).contains(&n) {
            return Err(RaceError::Participants { n });
        }
        // Creating and joining can each find the other's case (the file vanished between the
        // two attempts): retry a few times.
        const ATTEMPTS: u32 = 5;
        for _ in 0..ATTEMPTS {
            if let Some(course) = Self::create(path, n)? {
                return Ok(course);
            }
            if let Some(course) = Self::join(path, n)? {
                return Ok(course);
            }
            // The name exists (creating failed) but cannot be opened (joining failed): a
            // symbolic link to nowhere says so at once.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_symlink() && !path.exists() {
                    return Err(RaceError::DanglingSymlink {
                        path: path.to_path_buf(),
                        target: std::fs::read_link(path).unwrap_or_default(),
                    });
                }
            }
        }
        Err(RaceError::Vanishing {
            path: path.to_path_buf(),
            attempts: ATTEMPTS,
        })
    }

    /// The first instance. `None` if the name exists.
    fn create(path: &Path, n: i32) -> Result<Option<Course>, RaceError> {
        let create_err = |source: io::Error| RaceError::Create {
            path: path.to_path_buf(),
            source,
        };
        let name = path.file_name().ok_or_else(|| {
            create_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path names no file",
            ))
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if path.exists() || std::fs::symlink_metadata(path).is_ok() {
            return Ok(None);
        }
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.new", std::process::id()));
        let tmp = dir.join(tmp_name);
        // A leftover of a crashed run with this same pid is ours to replace.
        let _ = std::fs::remove_file(&tmp);
        let file = match exclusive(&tmp) {
            Ok(f) => f,
            Err(e) => return Err(create_err(e)),
        };
        sys::remember_created(sys::Slot::Temporary, &tmp);
        let course = Course::prepare(&tmp, file, n).map_err(|e| {
            sys::forget_created(sys::Slot::Temporary);
            let _ = std::fs::remove_file(&tmp);
            e.at(path)
        })?;
        // Publish: link(2) fails with EEXIST if the name appeared meanwhile. SIGINT between the
        // link and remembering the name would leave the file behind: hold the signals off.
        let published = {
            let _held = sys::hold_signals();
            let r = std::fs::hard_link(&tmp, path);
            if r.is_ok() {
                sys::remember_created(sys::Slot::Published, path);
            }
            r
        };
        sys::forget_created(sys::Slot::Temporary);
        let _ = std::fs::remove_file(&tmp);
        match published {
            Ok(()) => {
                let mut course = course;
                course.path = path.to_path_buf();
                Ok(Some(course))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let mut course = course;
                course.removed = true; // The temporary name is gone and the real one is not ours.
                Ok(None)
            }
            // A file system without hard links: create the name itself exclusively (a course
            // racer that looks in the few microseconds before the count is set can misread it).
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
                let mut course = course;
                course.removed = true;
                drop(course);
                let file = match exclusive(path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
                    Err(e) => return Err(create_err(e)),
                };
                sys::remember_created(sys::Slot::Published, path);
                Course::prepare(path, file, n).map(Some)
            }
            Err(e) => Err(create_err(e)),
        }
    }

    /// Readies a freshly created file at `path`: `flock(LOCK_SH)`, `lseek` + `write` to size it,
    /// `mmap(MAP_SHARED)`, `participants = n`, take id n. On failure the caller removes it.
    fn prepare(path: &Path, file: File, n: i32) -> Result<Course, RaceError> {
        let io_err = |e| RaceError::io(path, e);
        lock_shared(&file).map_err(io_err)?;
        // lseek(2) to the last byte and write(2) one zero: the assignment's way of sizing.
        let mut w: &File = &file;
        w.seek(SeekFrom::Start(COURSE_SIZE as u64 - 1))
            .map_err(io_err)?;
        w.write_all(&[0]).map_err(io_err)?;
        let mut course = Course::map(path, file, Role::First, n)?;
        // The creator's lock: while it is held the creator lives. Without it (no record locks
        // here) the others cannot tell a killed creator, and do not try.
        let ours = sys::lock_byte(&course.file, CREATOR_BYTE).ok() == Some(sys::Lock::Acquired);
        place::start_count(course.head(), n, ours);
        course.id = course.take_id().ok_or_else(|| RaceError::UnderWay {
            path: path.to_path_buf(),
            total: course.total().load(Ordering::Relaxed),
        })?;
        Ok(course)
    }

    /// Maps an open file of (at least) [`COURSE_SIZE`] bytes.
    fn map(path: &Path, file: File, role: Role, expected: i32) -> Result<Course, RaceError> {
        let io_err = |e| RaceError::io(path, e);
        let mut key = FileKey::of(&file, path).map_err(io_err)?;
        // mmap(2) PROT_READ|PROT_WRITE, MAP_SHARED: stores reach the page cache every racer sees.
        let map = MmapOptions::new()
            .len(COURSE_SIZE)
            .map_raw(&file)
            .map_err(io_err)?;
        key.maps_dev = holders::own_maps_dev(map.as_ptr() as u64);
        Ok(Course {
            path: path.to_path_buf(),
            file,
            map,
            key,
            role,
            id: 0,
            expected,
            removed: false,
            waiting: AtomicBool::new(false),
            summariser: false,
        })
    }

    /// A joiner: open the existing file and decide what it holds. `None` if it is not there.
    fn join(path: &Path, n: i32) -> Result<Option<Course>, RaceError> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(RaceError::Open {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let io_err = |e| RaceError::io(path, e);
        let key = FileKey::of(&file, path).map_err(io_err)?;
        let deadline = Instant::now() + EARLY_JOIN_WAIT;
        let mut file = Some(file);
        let mut course: Option<Course> = None;
        // /proc is scanned at most every 50 ms while waiting.
        let mut seen: Option<(Instant, Liveness)> = None;
        loop {
            let f = match (&course, &file) {
                (Some(c), _) => &c.file,
                (None, Some(f)) => f,
                (None, None) => unreachable!("either the file or the course holds it"),
            };
            let size = f.metadata().map_err(io_err)?.len();
            if size > COURSE_SIZE as u64 {
                return Err(RaceError::WrongSize {
                    path: path.to_path_buf(),
                    size,
                });
            }
            if size < COURSE_SIZE as u64 {
                // A course racer creates the file, then sizes it: a short file is being set up
                // only while someone has it open.
                if !look(&mut seen, f, &key, false).map_err(io_err)?.alive() || course.is_some() {
                    return Err(RaceError::WrongSize {
                        path: path.to_path_buf(),
                        size,
                    });
                }
            } else if course.is_none() {
                let f = file.take().expect("not mapped yet");
                course = Some(Course::map(path, f, Role::Joiner, n)?);
            }
            if let Some(c) = course.as_mut() {
                if Course::try_join(c, path, &mut seen)? {
                    return Ok(course);
                }
            }
            if Instant::now() >= deadline {
                let participants = course.as_ref().map_or(0, |c| c.participants());
                let pids = seen.as_ref().map_or_else(String::new, |(_, l)| l.pids());
                return Err(RaceError::NotJoinable {
                    path: path.to_path_buf(),
                    participants,
                    pids,
                    secs: EARLY_JOIN_WAIT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A joiner's verdict on the mapped file: an error that refuses it, `true` when it took a
    /// participant id (joined), `false` to wait and look again.
    fn try_join(
        c: &mut Course,
        path: &Path,
        seen: &mut Option<(Instant, Liveness)>,
    ) -> Result<bool, RaceError> {
        let io_err = |e| RaceError::io(path, e);
        let p = c.participants();
        let total = c.total().load(Ordering::Relaxed);
        if !(0..=MAX_PARTICIPANTS).contains(&p) {
            return Err(RaceError::Foreign {
                path: path.to_path_buf(),
                participants: p,
            });
        }
        // Every verdict that refuses the file rests on a fresh look.
        let mut alive = look(seen, &c.file, &c.key, false).map_err(io_err)?.alive();
        if !alive {
            alive = look(seen, &c.file, &c.key, true).map_err(io_err)?.alive();
        }
        match (total != 0, alive, p) {
            (true, true, _) => {
                return Err(RaceError::UnderWay {
                    path: path.to_path_buf(),
                    total,
                })
            }
            (true, false, _) => {
                return Err(RaceError::StaleFinished {
                    path: path.to_path_buf(),
                    total,
                })
            }
            (false, false, 0) => {
                return Err(RaceError::StaleEmpty {
                    path: path.to_path_buf(),
                })
            }
            (false, false, p) => {
                return Err(RaceError::StaleWaiting {
                    path: path.to_path_buf(),
                    participants: p,
                })
            }
            // p == 0 while one of our racers holds its lock: they set the count before
            // locking, so everyone is there.
            (false, true, 0) if matches!(seen, Some((_, Liveness::Locked))) => {
                return Err(RaceError::Full {
                    path: path.to_path_buf(),
                })
            }
            // p == 0 with someone there: a course racer between `ftruncate` and setting
            // the count, or a full race of course racers about to start. Wait and see.
            (false, true, 0) => {}
            (false, true, _) => {
                if sys::try_lock_shared(&c.file).map_err(io_err)? == sys::Lock::Acquired {
                    if let Some(id) = c.take_id() {
                        c.id = id;
                        return Ok(true);
                    }
                    // Everyone arrived between our load and our swap: the race is on.
                    sys::unlock(&c.file).map_err(io_err)?;
                }
            }
        }
        Ok(false)
    }

    /// The other processes that map the file read-write (or have it open for writing, not yet
    /// mapped): the racers, observers excluded.
    pub fn other_racers(&self) -> Vec<Holder> {
        let mut h = holders::scan(&self.key);
        h.retain(Holder::is_racer);
        h
    }

    /// The count-down: `id = participants; participants -= 1` (or a vacant id, see [`place`]),
    /// atomically, never below 1 → 0. Once it holds an id, this instance gives it back if it
    /// leaves before the start (Ctrl-C, SIGTERM, an error): [`sys::take_seat`].
    fn take_id(&self) -> Option<i32> {
        let id = place::take(self.head(), || self.total().load(Ordering::Relaxed) != 0)?;
        self.waiting.store(true, Ordering::SeqCst);
        sys::take_seat(self.map.as_mut_ptr(), id);
        // The place's lock, while this racer lives. One that gave this place back a moment ago
        // may still hold it until it exits (it was interrupted): a bounded retry. Meanwhile this
        // racer maps the file, so the others count it alive and reclaim nothing.
        for _ in 0..2000 {
            match sys::lock_byte(&self.file, id_byte(id)) {
                Ok(sys::Lock::WouldBlock) => std::thread::sleep(Duration::from_millis(1)),
                _ => break,
            }
        }
        Some(id)
    }

    /// The race started: leaving is no longer giving a place back.
    fn seated(&self) {
        self.waiting.store(false, Ordering::SeqCst);
        sys::leave_seat(self.map.as_mut_ptr());
    }

    /// Leaves before the start (an error while waiting): gives the place back, so the race still
    /// waits for N. Nothing happens once the race started.
    fn give_back(&self) {
        sys::leave_seat(self.map.as_mut_ptr());
        if self.waiting.swap(false, Ordering::SeqCst) {
            // The lock first, so that the next holder of the place can take it at once.
            let _ = sys::unlock_byte(&self.file, id_byte(self.id));
            place::give_back(self.head(), self.id);
        }
    }

    /// Places whose racers died while waiting (SIGKILL, a crash: nothing gave the place back),
    /// given back now, so the race still waits for N live racers: those arrived ids, other than
    /// this racer's, whose place lock ([`id_byte`]) nobody holds, when exactly as many fewer
    /// racers map the file than have arrived. A course racer holds no lock: when the unlocked
    /// places outnumber the missing racers, which are dead cannot be told, and none is given
    /// back. The give-back is one compare-and-swap from the word read before looking, so a
    /// racer arriving or leaving meanwhile makes it look again, and a place is never given back
    /// twice. Returns the ids given back.
    fn reclaim_dead(&self, expected: i32) -> Vec<i32> {
        let word = self.head().load(Ordering::Acquire);
        let arrived = place::Marks::of(word).arrived(expected);
        let unlocked: Vec<i32> = arrived
            .iter()
            .copied()
            .filter(|&id| {
                id != self.id && matches!(sys::byte_holder(&self.file, id_byte(id)), Ok(None))
            })
            .collect();
        if unlocked.is_empty() {
            return unlocked;
        }
        let live = self.other_racers().len() + 1;
        let missing = arrived.len().saturating_sub(live);
        if missing == 0 || unlocked.len() != missing {
            return Vec::new();
        }
        if place::give_back_dead(self.head(), word, &unlocked) {
            unlocked
        } else {
            Vec::new()
        }
    }

    /// Whether our creator is gone: it left before the start (and said so), or it was one of
    /// ours and nobody holds its lock any more ([`CREATOR_BYTE`]: killed, or it ended).
    pub fn creator_gone(&self) -> bool {
        let m = self.marks();
        m.creator_left
            || (self.role == Role::Joiner
                && m.creator_ours
                && matches!(sys::byte_holder(&self.file, CREATOR_BYTE), Ok(None)))
    }

    /// The pid of our creator, while it lives (it holds [`CREATOR_BYTE`]).
    fn creator_pid(&self) -> Option<u32> {
        match self.role {
            Role::First => Some(std::process::id()),
            Role::Joiner => sys::byte_holder(&self.file, CREATOR_BYTE).ok().flatten(),
        }
    }

    fn ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset + 8 <= COURSE_SIZE);
        // SAFETY: the mapping is COURSE_SIZE bytes long and every offset used is a field offset
        // of RaceCourse, so the result stays inside the mapping.
        unsafe { self.map.as_mut_ptr().add(offset) }
    }

    /// `participants` and the padding after it, as one 64-bit atomic over the shared mapping
    /// (see [`place`]). Every access to these 8 bytes in this process goes through it, so no
    /// two atomics of different sizes overlap.
    fn head(&self) -> &AtomicU64 {
        let ptr = self.ptr(std::mem::offset_of!(RaceCourse, participants));
        // SAFETY: the pointer is page-aligned (offset 0 of the mapping), valid for reads and
        // writes for as long as `self.map` lives (the borrow of self), and every access to these
        // bytes in this process is atomic (a C racer's plain accesses are its own business).
        unsafe { AtomicU64::from_ptr(ptr.cast()) }
    }

    /// `participants`: how many the race still waits for.
    pub fn participants(&self) -> i32 {
        place::Marks::read(self.head()).waiting_for
    }

    /// The count-down as it stands: who is still awaited, who gave a place back.
    pub fn marks(&self) -> place::Marks {
        place::Marks::read(self.head())
    }

    /// `total`, as an atomic over the shared mapping.
    pub fn total(&self) -> &AtomicI64 {
        let ptr = self.ptr(std::mem::offset_of!(RaceCourse, total));
        // SAFETY: offset 8 of a page-aligned mapping is 8-byte aligned, valid while `self.map`
        // lives, and all accesses to it in this process are atomic.
        unsafe { AtomicI64::from_ptr(ptr.cast()) }
    }

    /// `winnings[index]` (index = id - 1), as an atomic over the shared mapping.
    pub fn winnings(&self, index: usize) -> &AtomicI64 {
        assert!(index < MAX_PARTICIPANTS as usize, "winnings index {index}");
        let ptr = self.ptr(std::mem::offset_of!(RaceCourse, winnings) + 8 * index);
        // SAFETY: 16 + 8*index < 96 for index < 10, 8-byte aligned, valid while `self.map`
        // lives, and all accesses to it in this process are atomic.
        unsafe { AtomicI64::from_ptr(ptr.cast()) }
    }

    pub fn id(&self) -> i32 {
        self.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits until every participant has arrived (`participants == 0`, or the race is seen to
    /// have started), calling `show` each time the count changes. Bounded by `waits.join`; when
    /// no one has arrived for `waits.arrival` and as many racers as expected map the file, an
    /// arrival was lost and the race can never start ([`RaceError::LostArrival`]). A joiner also
    /// stops if the file it mapped is removed or replaced (our first instance gave up).
    ///
    /// SIGINT, SIGTERM and SIGHUP are deferred meanwhile: one ends the wait with
    /// [`RaceError::Interrupted`], for the caller to [`Course::leave`].
    pub fn wait_for_start(
        &self,
        waits: Waits,
        show: impl FnMut(Arrivals),
    ) -> Result<(), RaceError> {
        sys::defer_interrupts(true);
        let r = self.await_everyone(waits, show);
        // One that arrives from now on (or arrived as the race started) acts at once.
        sys::defer_interrupts(false);
        r
    }

    fn await_everyone(
        &self,
        waits: Waits,
        mut show: impl FnMut(Arrivals),
    ) -> Result<(), RaceError> {
        let start = Instant::now();
        let mut last = i32::MIN;
        let mut last_marks: Option<place::Marks> = None;
        let expected = self.expected.max(self.id);
        let mut last_arrival = start;
        let mut last_check = start;
        let mut last_scan = start;
        let mut present = 1;
        let mut last_reclaim = start;
        loop {
            // Spin briefly (the assignment's while loop), then sleep a little: ten racers share
            // two cores here, and waiters that never sleep would slow the ones that still start.
            for _ in 0..2000 {
                let marks = self.marks();
                let p = marks.waiting_for;
                if p <= 0 || self.total().load(Ordering::Relaxed) != 0 {
                    self.seated();
                    return Ok(());
                }
                if Some(marks) != last_marks {
                    last = p;
                    last_arrival = Instant::now();
                    let arrived = marks.arrived(expected);
                    let left: Vec<i32> = last_marks.map_or_else(Vec::new, |m| {
                        let before = m.arrived(expected);
                        before
                            .into_iter()
                            .filter(|id| !arrived.contains(id))
                            .collect()
                    });
                    let killed = left
                        .iter()
                        .copied()
                        .filter(|&id| marks.was_killed(id))
                        .collect();
                    last_marks = Some(marks);
                    show(Arrivals {
                        waiting_for: p,
                        expected,
                        arrived,
                        left,
                        killed,
                    });
                }
                std::hint::spin_loop();
            }
            if let Some(sig) = sys::pending_interrupt() {
                return Err(RaceError::Interrupted { sig });
            }
            let now = Instant::now();
            if now.duration_since(last_check) >= Duration::from_millis(100) {
                last_check = now;
                if self.role == Role::Joiner && !self.still_at_path() {
                    return Err(RaceError::LeaderGone {
                        path: self.path.clone(),
                    });
                }
                // A racer killed while waiting: its place back, at most every 250 ms (a look is
                // a few fcntl calls, and a /proc scan only when a place has no lock).
                if now.duration_since(last_reclaim) >= Duration::from_millis(250) {
                    last_reclaim = now;
                    if !self.reclaim_dead(expected).is_empty() {
                        continue; // The next spin shows who left.
                    }
                }
                let quiet = now.duration_since(last_arrival);
                if quiet >= waits.arrival && now.duration_since(last_scan) >= waits.arrival {
                    last_scan = now;
                    let racers = self.other_racers();
                    present = racers.len() + 1;
                    if present >= self.expected as usize {
                        return Err(RaceError::LostArrival {
                            path: self.path.clone(),
                            participants: last,
                            present,
                            expected: self.expected,
                            pids: holders::pid_list(&racers),
                            secs: quiet.as_secs(),
                        });
                    }
                }
                if now.duration_since(start) >= waits.join {
                    return Err(RaceError::JoinTimeout {
                        path: self.path.clone(),
                        missing: last.max(0),
                        present,
                        secs: waits.join.as_secs(),
                    });
                }
            }
            std::thread::sleep(wait_nap(now.duration_since(last_arrival)));
        }
    }

    /// True while `path` still names the file this instance mapped (same device and inode).
    fn still_at_path(&self) -> bool {
        match (std::fs::metadata(&self.path), self.file.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    /// Races to `target`. Writes only `total` and `winnings[id-1]` (and, at the end, the mark
    /// that the target was reached): never `participants`. Meanwhile a second thread watches
    /// the other racers and calls `departed` for each that ends before the race finished
    /// ([`watch`]).
    pub fn race(&self, mode: Mode, target: i64, departed: &(dyn Fn(&Departure) + Sync)) -> Outcome {
        let index = (self.id - 1) as usize;
        let total = self.total();
        let win = self.winnings(index);
        let stop = AtomicBool::new(false);
        // The others, listed before this racer's loop starts (a racer killed at once is on it).
        let racing: Vec<(u32, bool)> = self
            .other_racers()
            .iter()
            .map(|h| (h.pid, holders::same_program(h.pid)))
            .collect();
        let creator = self.creator_pid();
        std::thread::scope(|s| {
            // Alone, there is nobody to watch: no thread. The watcher holds the interrupting
            // signals, so they reach this thread, whose loop then stands still while the handler
            // reads its winnings: the figure it prints is the one it leaves in the file.
            let watcher = (!racing.is_empty()).then(|| {
                s.spawn(|| {
                    let _held = sys::hold_signals();
                    self.watch(racing, creator, target, &stop, departed)
                })
            });
            let start = Instant::now();
            let cpu_start = sys::thread_cpu_time();
            // An interrupt mid-race says this racer's id and winnings so far.
            sys::start_racing(self.map.as_mut_ptr(), self.id);
            let total_seen = match mode {
                Mode::Racy => race_racy(total, win, target),
                Mode::Atomic => race_atomic(total, win, target),
            };
            sys::stop_racing(self.map.as_mut_ptr());
            let seconds = start.elapsed().as_secs_f64();
            let cpu_seconds = (sys::thread_cpu_time().saturating_sub(cpu_start)).as_secs_f64();
            place::mark_reached(self.head());
            stop.store(true, Ordering::Release);
            Outcome {
                total_seen,
                winnings: win.load(Ordering::Relaxed),
                seconds,
                cpu_seconds,
                departures: watcher
                    .map(|w| w.join().unwrap_or_default())
                    .unwrap_or_default(),
            }
        })
    }

    /// The first instance, after its own race: waits until no other racer maps the file (each
    /// leaves when its loop is done), then reads the result. When nothing in the file has moved
    /// for `stall` and `total` has reached `target`, it summarises without the racers that are
    /// still there (they are named in [`Summary::still_held_by`]); after `10 * stall` without
    /// movement it summarises whatever the file holds.
    pub fn wait_for_end(&self, target: i64, stall: Duration) -> Summary {
        let summary = self.await_end(target, stall);
        // Taken: a racer that finishes later (still mapped, stalled) does not sum up again.
        place::mark_summed(self.head());
        summary
    }

    fn await_end(&self, target: i64, stall: Duration) -> Summary {
        // Our racers hold a shared flock until they leave: while `LOCK_EX` fails one is still
        // there, and /proc need not be scanned. Our own lock must go first.
        let _ = sys::unlock(&self.file);
        let n = self.expected as usize;
        let snapshot = || {
            let w: Vec<i64> = (0..n)
                .map(|i| self.winnings(i).load(Ordering::Relaxed))
                .collect();
            (self.total().load(Ordering::Relaxed), w)
        };
        let mut last = snapshot();
        let mut moved = Instant::now();
        let mut last_scan: Option<Instant> = None;
        loop {
            let ours_there = match sys::try_lock_exclusive(&self.file) {
                Ok(sys::Lock::Acquired) => {
                    let _ = sys::unlock(&self.file);
                    false
                }
                Ok(sys::Lock::WouldBlock) => true,
                Err(_) => false,
            };
            let scan_due = last_scan.map_or(true, |t| t.elapsed() >= Duration::from_millis(20));
            if !ours_there && scan_due {
                last_scan = Some(Instant::now());
                if self.other_racers().is_empty() {
                    let (total, w) = snapshot();
                    return Summary::new(total, w, Vec::new());
                }
            }
            let now = snapshot();
            if now != last {
                last = now;
                moved = Instant::now();
            } else {
                let quiet = moved.elapsed();
                if (quiet >= stall && last.0 >= target) || quiet >= 10 * stall {
                    let still: Vec<u32> = self.other_racers().iter().map(|h| h.pid).collect();
                    let (total, w) = snapshot();
                    return Summary::new(total, w, still);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Leaves before the start (interrupted while waiting): gives the place back; the file is
    /// removed if nobody else is there and this instance created it (or its creator left
    /// already), else a creator hands its duties over to the others.
    pub fn leave(&mut self) -> io::Result<Left> {
        self.give_back();
        let creator = self.role == Role::First;
        if creator {
            // Marked before looking, so that a racer still there sees it.
            place::mark_creator_left(self.head());
        }
        let alone = self.other_racers().is_empty();
        if alone && (creator || self.creator_gone()) {
            self.summariser = true;
            self.remove()?;
            return Ok(Left::Removed);
        }
        if creator {
            sys::forget_created(sys::Slot::Published);
            self.removed = true;
            return Ok(Left::HandedOver);
        }
        Ok(Left::GaveBack)
    }

    /// After its race, a joiner takes the creator's duties over if the creator is gone (it left
    /// before the start, or was killed: [`Course::creator_gone`]) and nobody took them or summed
    /// up yet: then it sums up ([`Course::wait_for_end`]) and removes the file. `true` for the
    /// one that does.
    pub fn take_over(&mut self) -> bool {
        if self.role == Role::First || self.marks().claimed || !self.creator_gone() {
            return false;
        }
        if !place::take_over(self.head()) {
            return false;
        }
        self.summariser = true;
        sys::remember_created(sys::Slot::Published, &self.path);
        true
    }

    /// The first instance (or the one that took its duties over) removes the file, if the path
    /// still names it.
    pub fn remove(&mut self) -> io::Result<()> {
        if !(self.role == Role::First || self.summariser) || self.removed {
            return Ok(());
        }
        sys::forget_created(sys::Slot::Published);
        self.removed = true;
        if self.still_at_path() {
            std::fs::remove_file(&self.path)?;
        }
        Ok(())
    }
}

impl Drop for Course {
    /// One that leaves before the start gives its place back; a first instance that fails after
    /// creating the file removes it (no file left behind).
    fn drop(&mut self) {
        self.give_back();
        let _ = self.remove();
    }
}

/// `open(path, O_RDWR|O_CREAT|O_EXCL, 0644)`.
fn exclusive(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
}

/// Whether a process other than this one has `file` (which this process does not lock): the
/// flock fast path, then `/proc`.
fn liveness(file: &File, key: &FileKey) -> io::Result<Liveness> {
    match sys::try_lock_exclusive(file)? {
        sys::Lock::WouldBlock => Ok(Liveness::Locked),
        sys::Lock::Acquired => {
            sys::unlock(file)?;
            let h = holders::scan(key);
            Ok(if h.is_empty() {
                Liveness::Nobody
            } else {
                Liveness::Held(h)
            })
        }
    }
}

/// [`liveness`], remembered for 50 ms unless `fresh` (a joiner waiting scans /proc at most that
/// often).
fn look(
    seen: &mut Option<(Instant, Liveness)>,
    file: &File,
    key: &FileKey,
    fresh: bool,
) -> io::Result<Liveness> {
    if let Some((at, l)) = seen {
        if !fresh && at.elapsed() < Duration::from_millis(50) {
            return Ok(l.clone());
        }
    }
    let l = liveness(file, key)?;
    *seen = Some((Instant::now(), l.clone()));
    Ok(l)
}

/// Takes the shared lock of a live participant. Only a joiner testing for liveness holds the
/// exclusive lock, for a few microseconds, so a short bounded retry suffices.
fn lock_shared(file: &File) -> io::Result<()> {
    for _ in 0..1000 {
        if sys::try_lock_shared(file)? == sys::Lock::Acquired {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        "another process keeps an exclusive flock on it",
    ))
}

/// The racy loop: `while (total < target) { total++; winnings++; }` with each `++` a relaxed
/// load and a separate relaxed store. On x86-64 this is six instructions: `mov` load, `cmp`,
/// `jl`, `inc`, `mov` store for `total`, and one non-locked `incq (mem)` for the winnings (the
/// C racer's loop is the same six, with `add $1`). Returns the total it saw when it stopped.
///
/// The function starts at a 64-byte boundary ([`sys::align_code_to_cache_line`]), so its
/// 17-byte loop lies in one 64-byte line whatever code comes before it in the binary: split
/// over two lines, the same loop ran 1.4-1.8x slower per increment (AMD EPYC), and made a
/// 1.67x gap to the C racer on an Intel Xeon. `cargo xtask bench race`
/// prints where the loops lie, and xtask's tests check it on the release build.
#[inline(never)]
pub fn race_racy(total: &AtomicI64, win: &AtomicI64, target: i64) -> i64 {
    sys::align_code_to_cache_line();
    loop {
        let t = total.load(Ordering::Relaxed);
        if t >= target {
            return t;
        }
        total.store(t.wrapping_add(1), Ordering::Relaxed);
        win.store(
            win.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

/// The atomic loop: `fetch_add` on `total` (a `lock xadd`); an increment that lands at or past
/// the target is taken back, so `total` ends exactly at the target and equals the sum of the
/// winnings. `winnings[id-1]` has a single writer (this racer), so it needs no locked
/// instruction: a relaxed load and store, as in the racy loop (and `winnings[id-1]++` in C).
/// Placed at a 64-byte boundary, like [`race_racy`].
#[inline(never)]
pub fn race_atomic(total: &AtomicI64, win: &AtomicI64, target: i64) -> i64 {
    sys::align_code_to_cache_line();
    loop {
        let t = total.fetch_add(1, Ordering::Relaxed);
        if t >= target {
            total.fetch_sub(1, Ordering::Relaxed);
            return t;
        }
        win.store(
            win.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

/// How long a waiting racer sleeps between its spins, given how long no one has arrived: 100 µs
/// just after an arrival (the next racer of a batch started together comes soon), growing to
/// 2 ms after a quiet 32 ms, so that racers waiting for a TA's next terminal cost about a tenth
/// of a CPU each instead of half of one, and still see the last arrival within 2 ms — nothing
/// against a race of a second or more, which is how long step 5 sizes its races.
fn wait_nap(quiet: Duration) -> Duration {
    (quiet / 16).clamp(Duration::from_micros(100), Duration::from_millis(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiting racer naps 100 µs right after an arrival and at most 2 ms when the room has
    /// been quiet: it sees the last arrival within 2 ms, and costs little CPU while it waits.
    #[test]
    fn a_waiting_racer_naps_longer_the_longer_no_one_arrives() {
        let nap = |ms| super::wait_nap(Duration::from_millis(ms));
        assert_eq!(nap(0), Duration::from_micros(100));
        assert_eq!(nap(8), Duration::from_micros(500));
        assert_eq!(nap(32), Duration::from_millis(2));
        assert_eq!(nap(60_000), Duration::from_millis(2));
    }

    /// A temporary directory for one test, removed when dropped (also when the test fails).
    fn temp(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("race-lib-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn a_bad_count_is_an_error_and_creates_nothing() {
        let dir = temp("count");
        let path = dir.path().join("rc.bin");
        for n in [0, 11, -1] {
            let e = Course::enter(&path, n).err().unwrap();
            assert!(matches!(e, RaceError::Participants { .. }), "{e}");
        }
        assert!(!path.exists());
        dir.close().unwrap();
    }

    #[test]
    fn two_handles_count_down_race_and_the_first_sums_up() {
        let dir = temp("two");
        let path = dir.path().join("rc.bin");
        let mut first = Course::enter(&path, 2).unwrap();
        assert_eq!((first.role(), first.id()), (Role::First, 2));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 96);
        assert_eq!(first.participants(), 1);
        let second = Course::enter(&path, 2).unwrap();
        assert_eq!((second.role(), second.id()), (Role::Joiner, 1));
        assert_eq!(first.participants(), 0);
        // A third finds the race gathered and is turned away at once (total is still 0).
        let third = Course::enter(&path, 2);
        assert!(
            matches!(third, Err(RaceError::Full { .. })),
            "a full race is not joinable"
        );
        let waits = Waits {
            join: Duration::from_secs(30),
            arrival: Duration::from_secs(30),
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                second.wait_for_start(waits, |_| {}).unwrap();
                second.race(Mode::Atomic, 10_000, &|_| {});
                drop(second); // leaves: unmaps, closes, unlocks
            });
            first.wait_for_start(waits, |_| {}).unwrap();
            first.race(Mode::Atomic, 10_000, &|_| {});
        });
        let summary = first.wait_for_end(10_000, Duration::from_secs(30));
        assert_eq!(summary.total, 10_000);
        assert_eq!(summary.sum_of_winnings, 10_000);
        assert_eq!(summary.lost_updates, 0);
        assert_eq!(summary.still_held_by, Vec::<u32>::new());
        assert_eq!(
            first.participants(),
            0,
            "nobody writes participants after the start"
        );
        first.remove().unwrap();
        assert!(!path.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(
            leftovers.is_empty(),
            "no temporary file left: {leftovers:?}"
        );
        dir.close().unwrap();
    }

    #[test]
    fn racy_loop_counts_to_the_target_alone() {
        let total = AtomicI64::new(0);
        let win = AtomicI64::new(0);
        assert_eq!(race_racy(&total, &win, 1000), 1000);
        assert_eq!(total.load(Ordering::Relaxed), 1000);
        assert_eq!(win.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn atomic_loop_ends_exactly_at_the_target() {
        let total = AtomicI64::new(0);
        let win = AtomicI64::new(0);
        assert_eq!(race_atomic(&total, &win, 1000), 1000);
        assert_eq!(total.load(Ordering::Relaxed), 1000);
        assert_eq!(win.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn atomic_loop_loses_nothing_between_threads() {
        let total = AtomicI64::new(0);
        let wins = [AtomicI64::new(0), AtomicI64::new(0)];
        std::thread::scope(|s| {
            for w in &wins {
                let total = &total;
                s.spawn(move || race_atomic(total, w, 200_000));
            }
        });
        let sum: i64 = wins.iter().map(|w| w.load(Ordering::Relaxed)).sum();
        assert_eq!(total.load(Ordering::Relaxed), 200_000);
        assert_eq!(sum, 200_000);
    }

    #[test]
    fn a_racy_loop_that_starts_behind_is_not_stopped_early() {
        // A racer that loaded an old total keeps going from there: total can move backwards.
        let total = AtomicI64::new(990);
        let win = AtomicI64::new(5);
        assert_eq!(race_racy(&total, &win, 1000), 1000);
        assert_eq!(win.load(Ordering::Relaxed), 15);
    }
}
