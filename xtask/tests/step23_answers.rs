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
