//! Helpers shared by the integration tests of `race`: a temporary directory that kills and reaps
//! the processes started in it, the C racers (ours and the course's, compiled with `cc` into that
//! directory), and readers of the race file.

#![allow(dead_code)] // Each test crate uses a different subset.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use race::Report;
use tempfile::TempDir;

/// The course's racer, exactly to its protocol (DESIGN.md, "The course's programs"): the first
/// instance is the one for which `stat` fails; it creates the file with `open(O_CREAT|O_RDWR,
/// 0755)` (no `O_EXCL`), sizes it with `ftruncate`, maps it `MAP_SHARED` and sets `participants`;
/// every instance takes `id = participants`, does a plain `participants -= 1` and spins while
/// `participants > 0`; no lock, ever; the race loop is `total++` then `winnings[id-1]++` to a
/// target fixed in the program (`-DTARGET=…`, so tests are short); the first unlinks the file at
/// the end. `-DATOMIC` makes `total++` a locked add (the course's `lock incq`). `-DLOSE_ARRIVAL`
/// pulls the load and the store of `participants -= 1` apart until another racer's decrement
/// lands between them: the lost arrival that plain decrement allows, made certain.
pub const COURSE_RACER: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TARGET
#define TARGET 1000000000L
#endif

struct RaceCourse {
    int participants;
    long total;
    long winnings[10];
};

int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    struct stat st;
    int first = stat("racecourse.bin", &st) != 0;
    int fd = open("racecourse.bin", O_CREAT | O_RDWR, 0755);
    if (first && ftruncate(fd, sizeof(struct RaceCourse)) != 0)
        return 1;
    struct RaceCourse *rc =
        mmap(NULL, sizeof(struct RaceCourse), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (first)
        rc->participants = n;
    int id = rc->participants;
#ifdef LOSE_ARRIVAL
    int p = rc->participants;
    while (rc->participants == p)
        ;
    rc->participants = p - 1;
#else
    rc->participants -= 1;
#endif
    while (rc->participants > 0)
        ;
    while (rc->total < TARGET) {
#ifdef ATOMIC
        __atomic_fetch_add(&rc->total, 1, __ATOMIC_SEQ_CST);
#else
        rc->total++;
#endif
        rc->winnings[id - 1]++;
    }
    printf("id %d: total %ld, winnings %ld\n", id, rc->total, rc->winnings[id - 1]);
    if (first)
        unlink("racecourse.bin");
    return 0;
}
"#;

/// `(id, total, winnings)` from the course racer's output line `id I: total T, winnings W`.
pub fn course_line(out: &Output) -> (i32, i64, i64) {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.trim();
    let parse = || -> Option<(i32, i64, i64)> {
        let rest = line.strip_prefix("id ")?;
        let (id, rest) = rest.split_once(": total ")?;
        let (total, w) = rest.split_once(", winnings ")?;
        Some((id.parse().ok()?, total.parse().ok()?, w.parse().ok()?))
    };
    parse().unwrap_or_else(|| panic!("not a course racer line: {line:?}"))
}

/// `(participants, total, winnings[0..10])` read with pread(2) from an open descriptor: the
/// page cache every mapping shares, readable after the file was unlinked.
pub fn course_of(f: &std::fs::File) -> (i32, i64, [i64; 10]) {
    let mut b = [0u8; 96];
    f.read_exact_at(&mut b, 0).unwrap();
    let long = |o: usize| i64::from_ne_bytes(b[o..o + 8].try_into().unwrap());
    let mut w = [0i64; 10];
    for (i, x) in w.iter_mut().enumerate() {
        *x = long(16 + 8 * i);
    }
    (i32::from_ne_bytes(b[0..4].try_into().unwrap()), long(8), w)
}

pub const RACE: &str = env!("CARGO_BIN_EXE_race");
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A temporary directory removed on drop (with any process we started killed first).
pub struct Dir {
    tmp: TempDir,
    children: Vec<Option<Child>>,
}

impl Dir {
    pub fn new(name: &str) -> Dir {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("race-test-{name}-"))
            .tempdir()
            .unwrap();
        Dir {
            tmp,
            children: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn file(&self) -> PathBuf {
        self.path().join("racecourse.bin")
    }

    pub fn race(&self) -> Command {
        let mut c = Command::new(RACE);
        c.current_dir(self.path());
        c
    }

    /// Builds the course's racer (see [`COURSE_RACER`]) racing to `target`, with extra `cc`
    /// flags (`-DATOMIC`, `-DLOSE_ARRIVAL`), into this directory, as the course builds it
    /// (`cc -g`, no optimisation). It always uses `racecourse.bin` in its working directory.
    pub fn course_racer(&self, target: i64, flags: &[&str]) -> Command {
        let name = format!("course-racer{}", flags.concat().replace(['-', '='], "_"));
        let exe = self.path().join(&name);
        if !exe.exists() {
            let src = self.path().join("course-racer.c");
            std::fs::write(&src, COURSE_RACER).unwrap();
            let out = Command::new("cc")
                .args(["-g", "-O0"])
                .arg(format!("-DTARGET={target}L"))
                .args(flags)
                .arg("-o")
                .arg(&exe)
                .arg(&src)
                .output()
                .expect("cc is needed to build the course's racer");
            assert!(
                out.status.success(),
                "cc failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut c = Command::new(exe);
        c.current_dir(self.path());
        c
    }

    /// Builds the C racer with `cc -O2` into this directory.
    pub fn racer(&self) -> Command {
        let exe = self.path().join("racer");
        if !exe.exists() {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("c/racer.c");
            let out = Command::new("cc")
                .args(["-O2", "-Wall", "-Werror", "-o"])
                .arg(&exe)
                .arg(&src)
                .output()
                .expect("cc is needed to build the C racer");
            assert!(
                out.status.success(),
                "cc failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut c = Command::new(exe);
        c.current_dir(self.path());
        c
    }

    /// Starts a process with piped stdout/stderr; the stderr lines arrive on the returned channel.
    pub fn spawn(&mut self, mut cmd: Command) -> (usize, mpsc::Receiver<String>) {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining even when nobody listens, so the child never sees a broken pipe.
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        self.children.push(Some(child));
        (self.children.len() - 1, rx)
    }

    pub fn pid(&self, i: usize) -> i32 {
        self.children[i].as_ref().expect("not waited for yet").id() as i32
    }

    /// Waits for child `i` (bounded) and returns its output (stderr already consumed by the
    /// channel, so only stdout and status here).
    pub fn wait(&mut self, i: usize) -> Output {
        let mut child = self.children[i].take().expect("waited for once");
        let deadline = Instant::now() + TIMEOUT;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child {i} did not exit within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.stderr.take();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Dir {
    /// Runs before the fields are dropped: the children are gone before `tmp` removes the
    /// directory.
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits (bounded) until a line containing `needle` arrives; returns all lines seen so far.
pub fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!("no line containing {needle:?} within {TIMEOUT:?}; saw {seen:?}"),
        }
    }
}

pub fn rest(rx: &mpsc::Receiver<String>) -> String {
    let mut s = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// Polls `cond` until it holds (bounded).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// (participants, total) as the file says, read with pread(2) (the page cache every mapping
/// shares).
pub fn header(path: &Path) -> Option<(i32, i64)> {
    let f = std::fs::File::open(path).ok()?;
    let mut b = [0u8; 16];
    f.read_exact_at(&mut b, 0).ok()?;
    Some((
        i32::from_ne_bytes(b[0..4].try_into().unwrap()),
        i64::from_ne_bytes(b[8..16].try_into().unwrap()),
    ))
}

/// A 96-byte race course with these fields, as a crashed or foreign run would leave it.
pub fn write_course(path: &Path, participants: i32, total: i64, winnings: &[i64]) {
    let mut b = vec![0u8; 96];
    b[0..4].copy_from_slice(&participants.to_ne_bytes());
    b[8..16].copy_from_slice(&total.to_ne_bytes());
    for (i, w) in winnings.iter().enumerate() {
        b[16 + 8 * i..24 + 8 * i].copy_from_slice(&w.to_ne_bytes());
    }
    std::fs::write(path, b).unwrap();
}

/// The one JSON document a racer printed, as the typed report (a missing field fails).
pub fn report(out: &Output) -> Report {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no stdout; status {:?}", out.status));
    assert!(
        lines.next().is_none(),
        "more than one JSON document: {text}"
    );
    serde_json::from_str(first).unwrap_or_else(|e| panic!("not a race report: {e}: {first}"))
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid of a child this test started and has not reaped.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0);
}

/// `race N --json --mode atomic --target T` in `dir`.
pub fn racer(dir: &Dir, n: usize, target: i64) -> Command {
    let mut c = dir.race();
    c.args([&n.to_string(), "--json", "--mode", "atomic", "--target"])
        .arg(target.to_string());
    c
}

/// Starts a racer and waits until it has its id (its "I am id K" line); returns its index, its
/// stderr and K.
pub fn arrive(dir: &mut Dir, n: usize, target: i64) -> (usize, mpsc::Receiver<String>, i32) {
    let (i, rx) = dir.spawn(racer(dir, n, target));
    let seen = wait_line(&rx, "I am id ");
    let id = seen
        .last()
        .and_then(|l| l.rsplit("I am id ").next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no id in {seen:?}"));
    (i, rx, id)
}

/// Waits for the racers at `idx` to end successfully and returns their reports, the first
/// instance's first; checks the atomic race's books: distinct ids 1..=n, total = target = sum.
pub fn finish(dir: &mut Dir, idx: &[usize], target: i64) -> Vec<Report> {
    let mut reports = reports(dir, idx);
    reports.sort_by_key(|r| !r.first);
    let mut ids: Vec<i32> = reports.iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, (1..=idx.len() as i32).collect::<Vec<_>>());
    let s = reports[0].summary.as_ref().expect("the first sums up");
    assert_eq!(s.participants, idx.len() as i32);
    assert_eq!((s.total, s.sum_of_winnings), (target, target));
    assert!(s.ended_early.is_empty(), "{s:?}");
    for r in &reports {
        assert_eq!(s.winnings[r.id as usize - 1], r.winnings, "id {}", r.id);
    }
    reports
}

/// The one summary among the reports of a race's racers (exactly one prints it, never two,
/// never none), checked to hold each one's winnings.
pub fn the_summary(reports: &[Report]) -> &race::Summary {
    let summaries: Vec<_> = reports.iter().filter_map(|r| r.summary.as_ref()).collect();
    assert_eq!(summaries.len(), 1, "exactly one sums up: {reports:?}");
    let s = summaries[0];
    for r in reports {
        assert_eq!(s.winnings[r.id as usize - 1], r.winnings, "id {}", r.id);
    }
    s
}

/// The reports of the racers at `idx` (each must end successfully).
pub fn reports(dir: &mut Dir, idx: &[usize]) -> Vec<Report> {
    idx.iter()
        .map(|&i| {
            let out = dir.wait(i);
            assert!(out.status.success(), "racer {i}: {:?}", out.status);
            report(&out)
        })
        .collect()
}
