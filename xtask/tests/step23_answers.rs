//! Steps 2 and 3 answer only what their own measurements show.
//!
//! - The lab's `disktable print --evict` on a tmpfs (mounted under a temporary directory when
//!   root, else /dev/shm), where posix_fadvise(POSIX_FADV_DONTNEED) drops nothing, and on the
//!   disk the build lives on: the course answer says "evicted" only where mincore shows it
//!   worked, and the length's stat call (statx, newfstatat) is the same fact in the answer and
//!   in the glance.
//! - `run-step 2|3 --program` with the course's C fixtures (a reader that hard-codes the count, a
//!   correct one; a writer that never grows the file, a correct one): the course's question is
//!   answered for the program, consistent with the TA's verdict, and the lab's own runs say they
//!   are the lab's reference.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lab_analysis::disktable::table::{TableSource, TableState};
use lab_analysis::disktable::traced::{Ended, TracedRun};
use lab_analysis::step2::course;
use lab_analysis::step2::Step2;
use lab_analysis::{Block, Step as _};

/// The calls the course's print is judged on (a subset of the steps' own filter).
const FILTER: &str = "openat,close,fstat,newfstatat,statx,?stat,?lstat,mmap,munmap,madvise,\
                      mincore,fadvise64,read,pread64,write";

fn release_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_xtask"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("release")
}

/// The lab's `disktable`, built in release mode as the steps build it (at once when it is).
fn disktable() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "-p", "persist"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --release -p persist failed");
    release_dir().join("disktable")
}

/// A tmpfs: one mounted under a temporary directory (unmounted on drop) when root, else a
/// directory under /dev/shm when that is a tmpfs, else `None`.
struct Tmpfs {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Tmpfs {
    fn new() -> Option<Tmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("step23-tmpfs-")
            .tempdir()
            .unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "step23", "--"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Tmpfs { dir, mounted });
        }
        let shm = tempfile::Builder::new()
            .prefix("step23-")
            .tempdir_in("/dev/shm")
            .ok()?;
        (fs_type(shm.path()) == "tmpfs").then_some(Tmpfs {
            dir: shm,
            mounted: false,
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.path()).status();
        }
    }
}

/// `stat -f -c %T`: the file system's type name.
fn fs_type(dir: &Path) -> String {
    let out = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A course-shaped table made in `dir` by the lab's disktable, printed as step 2 prints it
/// (`--json print --evict --advice random`) under strace, and analysed.
fn print_in(dir: &Path) -> (course::Findings, course::Evidence) {
    let bin = disktable();
    let created = Command::new(&bin)
        .args(["--json", "create", "--course", "table.bin"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let trace_file = dir.join("print.strace");
    let args = [
        "--json",
        "print",
        "--evict",
        "--advice",
        "random",
        "table.bin",
    ];
    let out = lab_trace::run::command(&bin, args, FILTER, &trace_file)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let trace = lab_trace::run::parse_file(&trace_file).unwrap();
    std::fs::remove_file(&trace_file).unwrap();
    let report: persist::disktable::PrintReport = serde_json::from_slice(&out.stdout).unwrap();
    let e = course::Evidence {
        source: TableSource::Given {
            path: dir.join("table.bin").display().to_string(),
        },
        state: TableState {
            file_bytes: report.file_bytes,
            count: Some(report.count as i64),
            index_prefix: report.count,
        },
        print: TracedRun {
            argv: std::iter::once(bin.display().to_string())
                .chain(args.iter().map(|a| a.to_string()))
                .collect(),
            ended: Ended {
                code: Some(0),
                signal: None,
                timed_out: false,
            },
            stderr: String::new(),
            trace,
        },
        report: Some(report),
    };
    (course::analyze(&e, 4096), e)
}

fn answers(blocks: &[Block]) -> Vec<(String, String)> {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Answer(a) => Some((a.question.clone(), a.answer.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn on_tmpfs_the_print_does_not_claim_an_eviction_that_did_not_happen() {
    const TEST: &str = "on_tmpfs_the_print_does_not_claim_an_eviction_that_did_not_happen";
    if !common::tools_present(TEST, &[common::STRACE]) {
        return;
    }
    let Some(tmpfs) = Tmpfs::new() else {
        common::skip(TEST, "needs a tmpfs: root to mount one, or /dev/shm");
        return;
    };
    let (f, e) = print_in(tmpfs.dir.path());
    let p = &f.print;
    // The table's pages stay in memory on tmpfs, whatever DONTNEED asked.
    assert!(p.resident_before.unwrap() > 0, "{p:?}");
    assert_eq!(p.evicted, Some(false));
    assert_eq!(p.read_only_needed_pages, None, "not measurable here");
    assert_eq!(p.fstat_size, Some(114_340), "{:?}", p.fstat_call);
    let text = format!(
        "{:?}",
        answers(&course::explain(&f, &e, course::Who::Course))
    );
    assert!(!text.contains("evicted first"), "{text}");
    assert!(!text.contains("had evicted the file"), "{text}");
    assert!(!text.contains("read-ahead, or another process"), "{text}");
    assert!(text.contains("the eviction did not drop them"), "{text}");
    assert!(
        text.contains(&format!(
            "{} were resident after printing",
            p.resident_after.unwrap()
        )),
        "{text}"
    );
    drop(tmpfs);

    // The same print on the disk the build lives on, where DONTNEED drops the clean pages.
    let disk = tempfile::Builder::new()
        .prefix("step23-disk-")
        .tempdir_in(release_dir())
        .unwrap();
    if fs_type(disk.path()) == "tmpfs" {
        common::skip(TEST, "(its disk half) needs the target directory off tmpfs");
        return;
    }
    let (f, e) = print_in(disk.path());
    assert_eq!(f.print.evicted, Some(true), "{:?}", f.print);
    assert_eq!(f.print.resident_before, Some(0));
    let text = format!(
        "{:?}",
        answers(&course::explain(&f, &e, course::Who::Course))
    );
    assert!(text.contains("had evicted the file"), "{text}");
}

#[test]
fn the_length_in_the_answer_and_the_glance_is_one_fact() {
    const TEST: &str = "the_length_in_the_answer_and_the_glance_is_one_fact";
    if !common::tools_present(TEST, &[common::STRACE]) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("step23-len-")
        .tempdir_in(release_dir())
        .unwrap();
    let (f, e) = print_in(dir.path());
    let p = &f.print;
    // Whichever call this libc and Rust use (statx, newfstatat), its size is read.
    assert!(p.fstat_before_mmap);
    assert_eq!(p.fstat_size, Some(114_340), "{:?}", p.fstat_call);
    let phrase = p.length_source();
    assert!(
        phrase.starts_with("length 114340 B from fstat ("),
        "{phrase}"
    );
    let text = format!(
        "{:?}",
        answers(&course::explain(&f, &e, course::Who::Course))
    );
    assert!(text.contains(&phrase), "{text}");
    assert!(!text.contains("NO fstat"), "{text}");
    // The glance (2.1), from the whole step's findings: a recorded step 2 with this print.
    let recorded =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/evidence/course-table/step2.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(recorded).unwrap()).unwrap();
    let mut step: lab_analysis::step2::Evidence =
        serde_json::from_value(doc["evidence"].take()).unwrap();
    step.course = e;
    let findings = Step2::analyze(&step).unwrap();
    let glance = Step2::glance(&findings);
    assert!(glance[0].text.contains(&phrase), "{glance:?}");
    assert!(!glance[0].text.contains("no fstat"), "{glance:?}");
}

/// `xtask run-step STEP --quick --json --program PROGRAM`: the answers (question, answer), the
/// program's verdict and reason, and the glance lines.
struct Run {
    answers: Vec<(String, String)>,
    verdict: String,
    reason: String,
    glance: Vec<String>,
}

fn run_step(step: u8, program: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "run-step",
            &step.to_string(),
            "--quick",
            "--json",
            "--program",
        ])
        .arg(program)
        .env("CARGO", env!("CARGO"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run-step {step} --program {}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let verdict = &doc["findings"]["program"]["verdict"];
    Run {
        answers: doc["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["kind"] == "answer")
            .map(|b| (text(&b["question"]), text(&b["answer"])))
            .collect(),
        verdict: text(&verdict["verdict"]).to_uppercase(),
        reason: text(&verdict["reason"]),
        glance: doc["glance"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| text(&g["text"]))
            .collect(),
    }
}

impl Run {
    /// The one answer to the course's question `q`.
    fn answer(&self, q: &str) -> &str {
        let found: Vec<&str> = self
            .answers
            .iter()
            .filter(|(x, _)| x == q)
            .map(|(_, a)| a.as_str())
            .collect();
        assert_eq!(found.len(), 1, "{q}: {:?}", self.answers);
        found[0]
    }

    /// The program's answer carries its verdict; every answer about the lab's own runs says so.
    fn check(&self, course_q: &str, who: &str) {
        let a = self.answer(course_q);
        assert!(a.starts_with(who), "{a}");
        assert!(
            a.contains(&format!("{}: {}", self.verdict, self.reason)),
            "{a}"
        );
        for (q, a) in &self.answers {
            if q.starts_with("The lab's reference disktable, not your program: ") {
                continue;
            }
            assert!(
                !a.contains("disktable") && !a.contains("count from the file, bounded"),
                "an answer about the lab's run not labelled as such: {q} {a}"
            );
        }
        assert!(
            self.glance[0].starts_with(&format!("yours: {}; lab's disktable: ", self.verdict)),
            "{:?}",
            self.glance
        );
    }
}

/// The course's C fixtures, compiled as the course's Makefile compiles them.
fn compiled(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("step23-c-")
        .tempdir()
        .unwrap();
    for name in names {
        let status = Command::new("cc")
            .args(["-O2", "-Wall", "-I", common::FIXTURES, "-o"])
            .arg(dir.path().join(name))
            .arg(Path::new(common::FIXTURES).join(format!("{name}.c")))
            .arg("-pthread")
            .status()
            .unwrap();
        assert!(status.success(), "cc {name}.c");
    }
    dir
}

#[test]
fn with_a_program_the_course_answers_are_its_own_and_agree_with_the_verdict() {
    const TEST: &str = "with_a_program_the_course_answers_are_its_own_and_agree_with_the_verdict";
    if !common::tools_present(TEST, &[common::CC, common::STRACE]) {
        return;
    }
    let c = compiled(&["reader_hardcoded", "reader_ok", "writer_naive", "writer_ok"]);
    const PRINT_Q: &str = "How do you print every value without a hardcoded size or element count?";
    const ADD_Q: &str = "Does each run add 300 values, using only mmap?";
    const GROW_Q: &str = "When does the file grow?";

    // It maps 114340 bytes and prints 1083 values, both hard-coded: no fstat, and a FAIL.
    let r = run_step(2, &c.path().join("reader_hardcoded"));
    assert_eq!(r.verdict, "FAIL");
    r.check(PRINT_Q, "Your reader ");
    assert!(
        r.answer(PRINT_Q)
            .contains("NO fstat of the table before its mmap"),
        "{:?}",
        r.answers
    );

    let r = run_step(2, &c.path().join("reader_ok"));
    assert_eq!(r.verdict, "PASS");
    r.check(PRINT_Q, "Your reader ");
    assert!(
        r.answer(PRINT_Q).contains("length 114340 B from fstat ("),
        "{:?}",
        r.answers
    );

    // It never grows the file: its first run adds 300, the check's later runs fail.
    let r = run_step(3, &c.path().join("writer_naive"));
    assert_eq!(r.verdict, "FAIL");
    r.check(ADD_Q, "Your writer ");
    let grows = r.answer(GROW_Q);
    assert!(
        grows.starts_with("Your writer ") && grows.contains("0 ftruncate and 0 mremap"),
        "{grows}"
    );

    let r = run_step(3, &c.path().join("writer_ok"));
    assert_eq!(r.verdict, "PASS");
    r.check(ADD_Q, "Your writer ");
    assert!(
        r.answer(GROW_Q).starts_with("Your writer "),
        "{:?}",
        r.answers
    );
}
