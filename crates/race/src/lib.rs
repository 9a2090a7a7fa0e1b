//! Step 5 of the mmap lab: inter-process communication through a shared file mapping, and the
//! updates it loses.
//!
//! Several processes map one 96-byte file, `struct RaceCourse { int participants; long total;
//! long winnings[10]; }`, `MAP_SHARED`, and race: each increments `total`, then its own
//! `winnings[id-1]`, until `total` reaches the target. With `Mode::Racy` the increment of `total`
//! is a load and a separate store (what `total++` compiles to in C), so two processes that load
//! the same value both store value+1 and one increment is lost: the sum of the winnings ends
//! above the total. `Mode::Atomic` uses `fetch_add` and loses nothing. Run it with `race 4` in
//! four terminals, or `cargo xtask run-step 5` for the sweep.
//!
//! The layout is byte for byte the C struct ([`RaceCourse`], 96 bytes on x86-64), so a C racer
//! (`crates/race/c/racer.c`) and this one can share a race. The fields are reached only through
//! atomics over a raw mapping ([`Course`]): no `&[u8]` or `&RaceCourse` ever covers bytes
//! another process writes. The protocol:
//!
//! 1. The first instance creates the file exclusively (`O_CREAT|O_EXCL`), takes a shared
//!    `flock(2)` (which every live participant holds: that is how a stale file is told from a live
//!    race), sizes the file with `lseek(2)` + `write(2)`, maps it and stores `participants = N`.
//! 2. Every instance, the first included, takes `id = participants` and decrements it with a
//!    compare-and-swap that never goes below zero; all wait until it reaches zero (or the race is
//!    seen to have started: `total != 0`).
//! 3. Race to the target; then each increments `participants` again to say "finished", and the
//!    first waits for N of those, reports the sum of the winnings against the total and removes
//!    the file.
//!
//! A production system would not share counters through a file at all (threads, or a
//! `memfd`/POSIX shm segment with a versioned header, a real barrier such as a futex or a pthread
//! barrier with `PTHREAD_PROCESS_SHARED`, and per-participant counters on their own cache lines
//! instead of spinning and false sharing), and would record live participants' pids rather than
//! infer liveness from `flock`.

mod sys;

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

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

/// How `total` is incremented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A relaxed load, then a relaxed store of value+1: the C program's `total++`, a real lost
    /// update when two processes interleave, without undefined behaviour.
    Racy,
    /// `fetch_add` on `total`: a locked read-modify-write that loses nothing.
    Atomic,
}

/// Why a race could not be entered or finished. Every message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RaceError {
    #[error("a race has 1 to {MAX_PARTICIPANTS} participants, not {n}")]
    Participants { n: i32 },
    #[error("cannot create race file {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot open race file {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot size, lock or map race file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path} is {size} bytes, not the {COURSE_SIZE} of a race course; it is not a race file \
         (remove it, or choose another with --file)"
    )]
    WrongSize { path: PathBuf, size: u64 },
    #[error(
        "{path} holds participants = {participants}, outside 0..={MAX_PARTICIPANTS}; it is not a \
         race file (remove it, or choose another with --file)"
    )]
    Foreign { path: PathBuf, participants: i32 },
    #[error(
        "{path} is a stale race file: it waits for {participants} more participants but no \
         process holds it (a previous run crashed?); remove {path} and start again"
    )]
    StaleWaiting { path: PathBuf, participants: i32 },
    #[error(
        "{path} is an empty race course (no participant count, no total) that no process holds; \
         remove {path} and start again"
    )]
    StaleEmpty { path: PathBuf },
    #[error(
        "{path} holds a race that ended (total {total}) but was never removed; remove {path} and \
         start again"
    )]
    StaleFinished { path: PathBuf, total: i64 },
    #[error(
        "a race is already under way in {path} (total {total}); wait for it to end, or choose \
         another file with --file"
    )]
    UnderWay { path: PathBuf, total: i64 },
    #[error(
        "{path} did not become a joinable race within {secs} s (no participant count was set); \
         remove {path} if no race is running"
    )]
    NotReady { path: PathBuf, secs: u64 },
    #[error(
        "{path} still waits for {missing} more participants after {secs} s; start the others \
         sooner, or raise --join-timeout"
    )]
    JoinTimeout {
        path: PathBuf,
        missing: i32,
        secs: u64,
    },
    #[error(
        "{path} was removed while waiting for the others: the first instance gave up or was \
         interrupted; start a new race"
    )]
    LeaderGone { path: PathBuf },
}

impl RaceError {
    fn io(path: &Path, source: io::Error) -> RaceError {
        RaceError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Whether this instance created the race or joined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    First,
    Joiner,
}

/// Progress while waiting for the others, for the caller to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrivals {
    /// How many participants the race still waits for (`participants` in the file).
    pub waiting_for: i32,
    /// For the first instance, the N it created the race with; joiners do not know it.
    pub expected: Option<i32>,
}

/// What one instance's race produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The value of `total` this instance saw when it stopped (at least the target).
    pub total_seen: i64,
    /// Its own `winnings[id-1]`.
    pub winnings: i64,
    /// How long its race loop ran (wall clock).
    pub seconds: f64,
    /// The CPU time this process spent in its race loop (excludes time other processes ran).
    pub cpu_seconds: f64,
}

/// What the first instance reports once it sees every participant finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub participants: i32,
    pub total: i64,
    /// `winnings[0..participants]`, by id-1.
    pub winnings: Vec<i64>,
    pub sum_of_winnings: i64,
    /// `sum_of_winnings - total`: increments of `total` that another process overwrote.
    pub lost_updates: i64,
}

/// A race file mapped `MAP_SHARED`, with this instance's id in it.
pub struct Course {
    path: PathBuf,
    file: File,
    map: MmapRaw,
    role: Role,
    id: i32,
    expected: Option<i32>,
    removed: bool,
}

/// How long a joiner waits for the first instance to size the file and set `participants`.
pub const EARLY_JOIN_WAIT: Duration = Duration::from_secs(5);

impl Course {
    /// Creates the race at `path` for `n` participants, or joins the one there, and takes an id.
    /// A joiner that finds the file before it is sized or has a count waits up to
    /// [`EARLY_JOIN_WAIT`].
    pub fn enter(path: &Path, n: i32) -> Result<Course, RaceError> {
        if !(1..=MAX_PARTICIPANTS).contains(&n) {
            return Err(RaceError::Participants { n });
        }
        // Creating and joining can each find the other's case (the file vanished between our
        // two opens): retry a few times.
        for _ in 0..5 {
            match Self::create(path, n)? {
                Some(course) => return Ok(course),
                None => match Self::join(path)? {
                    Some(course) => return Ok(course),
                    None => continue,
                },
            }
        }
        Err(RaceError::NotReady {
            path: path.to_path_buf(),
            secs: EARLY_JOIN_WAIT.as_secs(),
        })
    }

    /// The first instance: `open(O_RDWR|O_CREAT|O_EXCL)`, `flock(LOCK_SH)`, `lseek` + `write` to
    /// size it, `mmap(MAP_SHARED)`, `participants = n`, take id n. `None` if the file exists.
    fn create(path: &Path, n: i32) -> Result<Option<Course>, RaceError> {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(source) => {
                return Err(RaceError::Create {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        sys::remember_created(path);
        let mut course = Course::from_sized(path, file, Role::First, Some(n), |f| {
            lock_shared(f)?;
            // lseek(2) to the last byte and write(2) one zero: the assignment's way of sizing.
            let mut w: &File = f;
            w.seek(SeekFrom::Start(COURSE_SIZE as u64 - 1))?;
            w.write_all(&[0])?;
            Ok(())
        })?;
        course.participants().store(n, Ordering::Release);
        course.id = course.take_id().ok_or_else(|| RaceError::UnderWay {
            path: path.to_path_buf(),
            total: course.total().load(Ordering::Relaxed),
        })?;
        Ok(Some(course))
    }

    /// Maps an open file of [`COURSE_SIZE`] bytes after running `prepare` on it; on failure of
    /// a first instance the file is removed.
    fn from_sized(
        path: &Path,
        file: File,
        role: Role,
        expected: Option<i32>,
        prepare: impl FnOnce(&File) -> io::Result<()>,
    ) -> Result<Course, RaceError> {
        let cleanup = |e: io::Error| {
            if role == Role::First {
                sys::forget_created();
                let _ = std::fs::remove_file(path);
            }
            RaceError::io(path, e)
        };
        prepare(&file).map_err(cleanup)?;
        // mmap(2) PROT_READ|PROT_WRITE, MAP_SHARED: stores reach the page cache every racer sees.
        let map = MmapOptions::new()
            .len(COURSE_SIZE)
            .map_raw(&file)
            .map_err(cleanup)?;
        Ok(Course {
            path: path.to_path_buf(),
            file,
            map,
            role,
            id: 0,
            expected,
            removed: false,
        })
    }

    /// A joiner: open the existing file and decide what it holds. `None` if it vanished.
    fn join(path: &Path) -> Result<Option<Course>, RaceError> {
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
        let deadline = Instant::now() + EARLY_JOIN_WAIT;
        let mut course: Option<Course> = None;
        let mut file = Some(file);
        loop {
            let f = course.as_ref().map(|c| &c.file).or(file.as_ref());
            let f = f.expect("either the file or the course holds it");
            let meta = f.metadata().map_err(|e| RaceError::io(path, e))?;
            let size = meta.len();
            // A first instance sizes its file microseconds after creating it, holding its lock:
            // a short file that is older than a second and that nobody holds is not a race.
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(1));
            if size < COURSE_SIZE as u64 && old && course.is_none() {
                let f = file.as_ref().expect("not mapped yet");
                if sys::try_lock_exclusive(f).map_err(|e| RaceError::io(path, e))?
                    == sys::Lock::Acquired
                {
                    return Err(RaceError::WrongSize {
                        path: path.to_path_buf(),
                        size,
                    });
                }
            }
            if size > COURSE_SIZE as u64 {
                return Err(RaceError::WrongSize {
                    path: path.to_path_buf(),
                    size,
                });
            }
            if size == COURSE_SIZE as u64 && course.is_none() {
                let f = file.take().expect("not mapped yet");
                course = Some(Course::from_sized(path, f, Role::Joiner, None, |_| Ok(()))?);
            }
            if let Some(c) = course.as_mut() {
                let p = c.participants().load(Ordering::Acquire);
                let total = c.total().load(Ordering::Relaxed);
                if !(0..=MAX_PARTICIPANTS).contains(&p) {
                    return Err(RaceError::Foreign {
                        path: path.to_path_buf(),
                        participants: p,
                    });
                }
                if total != 0 {
                    return Err(if c.anyone_alive()? {
                        RaceError::UnderWay {
                            path: path.to_path_buf(),
                            total,
                        }
                    } else {
                        RaceError::StaleFinished {
                            path: path.to_path_buf(),
                            total,
                        }
                    });
                }
                if p == 0 && old && !c.anyone_alive()? {
                    return Err(RaceError::StaleEmpty {
                        path: path.to_path_buf(),
                    });
                }
                if p > 0 {
                    if !c.anyone_alive()? {
                        return Err(RaceError::StaleWaiting {
                            path: path.to_path_buf(),
                            participants: p,
                        });
                    }
                    if sys::try_lock_shared(&c.file).map_err(|e| RaceError::io(path, e))?
                        == sys::Lock::Acquired
                    {
                        if let Some(id) = c.take_id() {
                            c.id = id;
                            return Ok(course);
                        }
                        // Everyone arrived between our load and our swap: the race is on.
                        sys::unlock(&c.file).map_err(|e| RaceError::io(path, e))?;
                    }
                }
            }
            if Instant::now() >= deadline {
                let f = course.as_ref().map(|c| &c.file).or(file.as_ref());
                let alive = f.map(sys::try_lock_exclusive).transpose();
                let alive =
                    alive.map_err(|e| RaceError::io(path, e))? == Some(sys::Lock::WouldBlock);
                return Err(if size < COURSE_SIZE as u64 && !alive {
                    RaceError::WrongSize {
                        path: path.to_path_buf(),
                        size,
                    }
                } else {
                    RaceError::NotReady {
                        path: path.to_path_buf(),
                        secs: EARLY_JOIN_WAIT.as_secs(),
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// True if some process holds a lock on the file: `flock(LOCK_EX|LOCK_NB)` fails. Only for
    /// an instance that does not hold its own lock yet.
    fn anyone_alive(&self) -> Result<bool, RaceError> {
        match sys::try_lock_exclusive(&self.file).map_err(|e| RaceError::io(&self.path, e))? {
            sys::Lock::WouldBlock => Ok(true),
            sys::Lock::Acquired => {
                sys::unlock(&self.file).map_err(|e| RaceError::io(&self.path, e))?;
                Ok(false)
            }
        }
    }

    /// The count-down: `id = participants; participants -= 1`, atomically, never below 1 → 0.
    fn take_id(&self) -> Option<i32> {
        let p = self.participants();
        let mut cur = p.load(Ordering::Acquire);
        loop {
            if cur <= 0 || self.total().load(Ordering::Relaxed) != 0 {
                return None;
            }
            match p.compare_exchange_weak(cur, cur - 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(cur),
                Err(now) => cur = now,
            }
        }
    }

    fn ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset + 8 <= COURSE_SIZE);
        // SAFETY: the mapping is COURSE_SIZE bytes long and every offset used is a field offset
        // of RaceCourse, so the result stays inside the mapping.
        unsafe { self.map.as_mut_ptr().add(offset) }
    }

    /// `participants`, as an atomic over the shared mapping.
    pub fn participants(&self) -> &AtomicI32 {
        let ptr = self.ptr(std::mem::offset_of!(RaceCourse, participants));
        // SAFETY: the pointer is page-aligned (offset 0 of the mapping), valid for reads and
        // writes for as long as `self.map` lives (the borrow of self), and every access to these
        // bytes, in this process and in the others, is atomic.
        unsafe { AtomicI32::from_ptr(ptr.cast()) }
    }

    /// `total`, as an atomic over the shared mapping.
    pub fn total(&self) -> &AtomicI64 {
        let ptr = self.ptr(std::mem::offset_of!(RaceCourse, total));
        // SAFETY: offset 8 of a page-aligned mapping is 8-byte aligned, valid while `self.map`
        // lives, and all accesses to it in every process are atomic.
        unsafe { AtomicI64::from_ptr(ptr.cast()) }
    }

    /// `winnings[index]` (index = id - 1), as an atomic over the shared mapping.
    pub fn winnings(&self, index: usize) -> &AtomicI64 {
        assert!(index < MAX_PARTICIPANTS as usize, "winnings index {index}");
        let ptr = self.ptr(std::mem::offset_of!(RaceCourse, winnings) + 8 * index);
        // SAFETY: 16 + 8*index < 96 for index < 10, 8-byte aligned, valid while `self.map`
        // lives, and all accesses to it in every process are atomic.
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
    /// have started), calling `show` each time the count changes. Bounded by `timeout`; a joiner
    /// also stops if the file it mapped is removed or replaced (the first instance left).
    pub fn wait_for_start(
        &self,
        timeout: Duration,
        mut show: impl FnMut(Arrivals),
    ) -> Result<(), RaceError> {
        let start = Instant::now();
        let mut last = i32::MIN;
        let mut last_check = start;
        loop {
            // Spin briefly (the assignment's while loop), then sleep a little: ten racers share
            // two cores here, and waiters that never sleep would slow the ones that still start.
            for _ in 0..2000 {
                let p = self.participants().load(Ordering::Acquire);
                if p <= 0 || self.total().load(Ordering::Relaxed) != 0 {
                    return Ok(());
                }
                if p != last {
                    last = p;
                    show(Arrivals {
                        waiting_for: p,
                        expected: self.expected,
                    });
                }
                std::hint::spin_loop();
            }
            let now = Instant::now();
            if now.duration_since(last_check) >= Duration::from_millis(100) {
                last_check = now;
                if self.role == Role::Joiner && !self.still_at_path() {
                    return Err(RaceError::LeaderGone {
                        path: self.path.clone(),
                    });
                }
                if now.duration_since(start) >= timeout {
                    return Err(RaceError::JoinTimeout {
                        path: self.path.clone(),
                        missing: last.max(0),
                        secs: timeout.as_secs(),
                    });
                }
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// True while `path` still names the file this instance mapped (same device and inode).
    fn still_at_path(&self) -> bool {
        match (std::fs::metadata(&self.path), self.file.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    /// Races to `target` and then says "finished" (increments `participants`).
    pub fn race(&self, mode: Mode, target: i64) -> Outcome {
        let index = (self.id - 1) as usize;
        let total = self.total();
        let win = self.winnings(index);
        let start = Instant::now();
        let cpu_start = sys::process_cpu_time();
        let total_seen = match mode {
            Mode::Racy => race_racy(total, win, target),
            Mode::Atomic => race_atomic(total, win, target),
        };
        let seconds = start.elapsed().as_secs_f64();
        let cpu_seconds = (sys::process_cpu_time().saturating_sub(cpu_start)).as_secs_f64();
        let winnings = win.load(Ordering::Relaxed);
        self.participants().fetch_add(1, Ordering::AcqRel);
        Outcome {
            total_seen,
            winnings,
            seconds,
            cpu_seconds,
        }
    }

    /// The first instance: waits until every participant said "finished" and reads the result.
    /// Gives up (`None`) when nothing has moved for `stall`: a participant that left without
    /// racing never says it finished.
    pub fn wait_for_finish(&self, n: i32, stall: Duration) -> Option<Summary> {
        let mut last = (i32::MIN, i64::MIN);
        let mut moved = Instant::now();
        loop {
            let p = self.participants().load(Ordering::Acquire);
            let total = self.total().load(Ordering::Relaxed);
            if p >= n {
                let winnings: Vec<i64> = (0..n as usize)
                    .map(|i| self.winnings(i).load(Ordering::Relaxed))
                    .collect();
                let sum_of_winnings = winnings.iter().sum();
                return Some(Summary {
                    participants: n,
                    total,
                    winnings,
                    sum_of_winnings,
                    lost_updates: sum_of_winnings - total,
                });
            }
            if (p, total) != last {
                last = (p, total);
                moved = Instant::now();
            } else if moved.elapsed() >= stall {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The first instance removes the file (if the path still names it).
    pub fn remove(&mut self) -> io::Result<()> {
        if self.role != Role::First || self.removed {
            return Ok(());
        }
        sys::forget_created();
        self.removed = true;
        if self.still_at_path() {
            std::fs::remove_file(&self.path)?;
        }
        Ok(())
    }
}

impl Drop for Course {
    /// A first instance that fails after creating the file removes it (no file left behind).
    fn drop(&mut self) {
        let _ = self.remove();
    }
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
#[inline(never)]
pub fn race_racy(total: &AtomicI64, win: &AtomicI64, target: i64) -> i64 {
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
#[inline(never)]
pub fn race_atomic(total: &AtomicI64, win: &AtomicI64, target: i64) -> i64 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(first.participants().load(Ordering::SeqCst), 1);
        let second = Course::enter(&path, 2).unwrap();
        assert_eq!((second.role(), second.id()), (Role::Joiner, 1));
        assert_eq!(first.participants().load(Ordering::SeqCst), 0);
        // A third finds the race gathered and is turned away (total is still 0, nobody left).
        let third = Course::enter(&path, 2);
        assert!(
            matches!(third, Err(RaceError::NotReady { .. })),
            "a full race is not joinable"
        );
        std::thread::scope(|s| {
            s.spawn(|| {
                second
                    .wait_for_start(Duration::from_secs(5), |_| {})
                    .unwrap();
                second.race(Mode::Atomic, 10_000)
            });
            first
                .wait_for_start(Duration::from_secs(5), |_| {})
                .unwrap();
            first.race(Mode::Atomic, 10_000);
        });
        let summary = first.wait_for_finish(2, Duration::from_secs(5)).unwrap();
        assert_eq!(summary.total, 10_000);
        assert_eq!(summary.sum_of_winnings, 10_000);
        assert_eq!(summary.lost_updates, 0);
        first.remove().unwrap();
        assert!(!path.exists());
        drop(second);
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
