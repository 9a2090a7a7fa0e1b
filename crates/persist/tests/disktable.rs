//! The `disktable` binary end to end: the course's table, print, append and growth, damaged
//! tables, a table truncated while mapped, the naive writer's crash (signal and address), the
//! system calls (under strace, when it is installed), C programs reading and extending our
//! files, and output errors.

mod bounded;
mod tmpfs;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use lab_trace::fds::{file_calls, READ_CALLS, WRITE_CALLS};
use lab_trace::Syscall;
use persist::disktable::{AppendReport, CreateReport, NaivePlan, PrintReport};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_disktable");
const COURSE_BYTES: u64 = 114_340;

fn tempdir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("disktable-test-{name}-"))
        .tempdir()
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("disktable runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs, asserts success, returns stdout.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "disktable {args:?}: {:?} {}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn json<T: serde::de::DeserializeOwned>(args: &[&str]) -> T {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Runs, asserts exit status `code` with exactly one stderr line `error: …` containing
/// `needle`, no panic; returns that line.
fn fails(args: &[&str], code: i32, needle: &str) -> String {
    let out = run(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "disktable {args:?}: {err}");
    assert!(err.starts_with("error: "), "{args:?}: {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn course(dir: &TempDir, name: &str) -> PathBuf {
    let p = dir.path().join(name);
    ok(&["create", "--course", s(&p)]);
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The file read with std (not the code under test): count and value[i].
struct Bytes(Vec<u8>);

impl Bytes {
    fn of(p: &Path) -> Bytes {
        Bytes(std::fs::read(p).unwrap())
    }
    fn count(&self) -> i64 {
        i64::from_le_bytes(self.0[..8].try_into().unwrap())
    }
    fn value(&self, i: usize) -> i32 {
        i32::from_le_bytes(self.0[8 + 4 * i..12 + 4 * i].try_into().unwrap())
    }
}

/// Writes a file of `len` bytes whose first (up to) 8 bytes are `count`.
fn raw(dir: &TempDir, name: &str, count: i64, len: usize) -> PathBuf {
    let mut bytes = vec![0u8; len];
    let n = len.min(8);
    bytes[..n].copy_from_slice(&count.to_le_bytes()[..n]);
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

// ---------------------------------------------------------------------------------------------

#[test]
fn the_course_table_has_its_shape_and_print_trusts_count() {
    let d = tempdir("course");
    let p = d.path().join("table.bin");
    let c: CreateReport = json(&["create", "--course", "--json", s(&p)]);
    assert_eq!(
        c,
        CreateReport {
            count: 1083,
            capacity: 28_583,
            filled: 8000,
            file_bytes: COURSE_BYTES
        }
    );
    let b = Bytes::of(&p);
    assert_eq!(b.0.len() as u64, COURSE_BYTES);
    assert_eq!(b.count(), 1083);
    assert!((0..8000).all(|i| b.value(i) == i as i32));
    assert!((8000..28_583).all(|i| b.value(i) == 0));

    let lines = ok(&["print", s(&p)]);
    let printed: Vec<i32> = lines.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(printed, (0..1083).collect::<Vec<_>>());

    let r: PrintReport = json(&["print", "--json", s(&p)]);
    assert_eq!(
        (r.count, r.capacity, r.file_bytes),
        (1083, 28_583, COURSE_BYTES)
    );
    assert_eq!(r.values, printed);
    assert_eq!(r.map_len, COURSE_BYTES);
    assert_eq!(r.pages, 28);
    assert!(r.map_address.starts_with("0x"));
}

#[test]
fn print_with_random_advice_reads_in_only_the_pages_it_touches() {
    let d = tempdir("resident");
    let p = course(&d, "t.bin");
    let r: PrintReport = json(&["print", "--json", "--evict", "--advice", "random", s(&p)]);
    // fadvise cannot evict on tmpfs; then everything is resident from the start.
    if r.resident_pages_before == 0 {
        // Without --evict the freshly read pages are all resident.
        let warm: PrintReport = json(&["print", "--json", s(&p)]);
        assert_eq!(warm.resident_pages_before, 2, "{warm:?}");
        // count and 1083 values: bytes 0..4340, two pages of 28.
        assert_eq!(r.resident_pages_after, 2, "{r:?}");
    } else {
        use std::io::Write as _;
        // Straight to stderr: libtest hides what eprintln! prints in a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "notice: the page cache could not be emptied here (tmpfs?); residency not checked"
        );
    }
}

#[test]
fn print_never_changes_the_file() {
    let d = tempdir("readonly");
    let good = course(&d, "good.bin");
    let bad = raw(&d, "bad.bin", 1_000_000, 4096);
    for p in [&good, &bad] {
        let before = std::fs::read(p).unwrap();
        let mtime = std::fs::metadata(p).unwrap().modified().unwrap();
        let _ = run(&["print", s(p)]);
        let _ = run(&["print", "--json", "--evict", s(p)]);
        assert_eq!(std::fs::read(p).unwrap(), before);
        assert_eq!(std::fs::metadata(p).unwrap().modified().unwrap(), mtime);
    }
    // A read-only file prints: print opens O_RDONLY and maps PROT_READ.
    let mut perm = std::fs::metadata(&good).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o444);
    std::fs::set_permissions(&good, perm).unwrap();
    assert_eq!(ok(&["print", s(&good)]).lines().count(), 1083);
}

#[test]
fn append_grows_only_when_the_capacity_runs_out() {
    let d = tempdir("growth");
    let p = course(&d, "t.bin");
    // 1083 + 91 x 300 = 28,383 fit in 28,583; the 92nd run needs 28,683.
    for run in 1..=92u64 {
        let r: AppendReport = json(&["append", "--json", s(&p)]);
        assert_eq!(r.count_before, 1083 + 300 * (run - 1));
        assert_eq!(r.count_after, r.count_before + 300);
        assert_eq!(r.grew, run == 92, "run {run}: {r:?}");
        if run < 92 {
            assert_eq!(r.file_bytes, COURSE_BYTES);
            assert_eq!(r.map_address_before, r.map_address_after);
        } else {
            // ftruncate to twice the length, in whole pages; mremap to match.
            assert_eq!(r.file_bytes_before, COURSE_BYTES);
            assert_eq!(r.file_bytes, 229_376);
            assert_eq!(r.capacity_after, (229_376 - 8) / 4);
            assert_eq!(r.moved, r.map_address_before != r.map_address_after);
        }
    }
    let b = Bytes::of(&p);
    assert_eq!(b.0.len(), 229_376);
    assert_eq!(b.count(), 1083 + 92 * 300);
    assert!((0..28_683).all(|i| b.value(i) == i as i32));
    // The room the growth made is used before growing again.
    let r: AppendReport = json(&["append", "--json", s(&p), "28659"]);
    assert!(!r.grew);
    assert_eq!(r.count_after, 57_342);
    let r: AppendReport = json(&["append", "--json", s(&p), "0"]);
    assert!(!r.grew);
    let r: AppendReport = json(&["append", "--json", s(&p), "1"]);
    assert!(r.grew);
    assert_eq!(ok(&["print", s(&p)]).lines().count(), 57_343);
    // The human line says what happened.
    let line = ok(&["append", s(&p)]);
    assert!(
        line.starts_with("count 57343 -> 57643; no growth"),
        "{line}"
    );
}

#[test]
fn create_makes_the_asked_shape_and_refuses_an_existing_file() {
    let d = tempdir("create");
    let p = d.path().join("t.bin");
    let c: CreateReport = json(&[
        "create",
        "--json",
        "--count",
        "3",
        "--capacity",
        "10",
        s(&p),
    ]);
    assert_eq!(
        (c.count, c.capacity, c.file_bytes, c.filled),
        (3, 10, 48, 3)
    );
    assert_eq!(ok(&["print", s(&p)]), "0\n1\n2\n");
    let before = std::fs::read(&p).unwrap();
    fails(&["create", "--course", s(&p)], 1, "already exists");
    assert_eq!(std::fs::read(&p).unwrap(), before);
    let q = d.path().join("empty.bin");
    let c: CreateReport = json(&["create", "--json", s(&q)]);
    assert_eq!((c.count, c.file_bytes), (0, 4096));
    assert_eq!(ok(&["print", s(&q)]), "");
}

#[test]
fn damaged_tables_are_one_line_errors_naming_the_reason() {
    let d = tempdir("damaged");
    let cases = [
        (
            raw(&d, "empty", 0, 0),
            "the file is 0 bytes, shorter than the 8-byte count",
        ),
        (
            raw(&d, "short", 7, 7),
            "the file is 7 bytes, shorter than the 8-byte count",
        ),
        (raw(&d, "negative", -1, 4096), "count is -1, negative"),
        (
            raw(&d, "toolarge", 1084, 4340),
            "count 1084 needs 4344 bytes but the file has 4340 (room for 1083 values)",
        ),
        (
            raw(&d, "overflow", 1 << 62, 4096),
            "count 4611686018427387904 overflows: 8 + 4 x count does not fit in 64 bits",
        ),
        (
            raw(&d, "max", i64::MAX, 4096),
            "count 9223372036854775807 overflows: 8 + 4 x count does not fit in 64 bits",
        ),
    ];
    for (p, reason) in &cases {
        let before = std::fs::read(p).unwrap();
        let expect = format!("error: {} is not a valid disktable: {reason}", p.display());
        for args in [
            vec!["print", s(p)],
            vec!["print", "--json", s(p)],
            vec!["append", s(p)],
            vec!["append", "--naive", s(p)],
        ] {
            let line = fails(&args, 1, reason);
            assert_eq!(line.trim_end(), expect, "{args:?}");
        }
        assert_eq!(&std::fs::read(p).unwrap(), &before, "{}", p.display());
    }
}

/// Every failure to open names the user's path once and the OS cause once (issue 22: "Is a
/// directory (os error 21): Is a directory (os error 21)").
#[test]
fn open_errors_name_the_path_and_the_cause_once() {
    let d = tempdir("open-errors");
    let dir = s(d.path());
    let missing = d.path().join("missing.bin");
    let nowhere = d.path().join("no/such/dir/t.bin");
    let enoent = "No such file or directory (os error 2)";
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["append", dir],
            format!("error: {dir} is a directory, not a table file"),
        ),
        (
            vec!["print", dir],
            format!("error: {dir} is a directory, not a table file"),
        ),
        (
            vec!["print", "/dev/null"],
            "error: /dev/null is a character device, not a table file".into(),
        ),
        (
            vec!["print", s(&missing)],
            format!("error: cannot open {}: {enoent}", missing.display()),
        ),
        (
            vec!["print", "--json", "--evict", s(&missing)],
            format!("error: cannot open {}: {enoent}", missing.display()),
        ),
        (
            vec!["append", s(&missing)],
            format!("error: cannot open {}: {enoent}", missing.display()),
        ),
        (
            vec!["append", "--naive", s(&missing)],
            format!("error: cannot open {}: {enoent}", missing.display()),
        ),
        (
            vec!["create", s(&nowhere)],
            format!("error: cannot open {}: {enoent}", nowhere.display()),
        ),
    ];
    for (args, expect) in cases {
        let line = fails(&args, 1, "");
        assert_eq!(line.trim_end(), expect, "{args:?}");
    }
    assert!(!missing.exists());
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    let d = tempdir("usage");
    let p = d.path().join("t.bin");
    for (args, needle) in [
        (vec![], "subcommand"),
        (vec!["print"], "<FILE>"),
        (vec!["append", s(&p), "abc"], "'abc'"),
        (vec!["append", s(&p), "-5"], "-5"),
        (vec!["append", "--naive=bogus", s(&p)], "bogus"),
        (vec!["create", "--course", "--count", "5", s(&p)], "--count"),
        (
            vec!["create", "--count", "10", "--fill", "5", s(&p)],
            "--fill 5 is less than --count 10",
        ),
        (
            vec!["create", "--count", "10", "--file-bytes", "20", s(&p)],
            "cannot hold 10 values",
        ),
        (
            vec!["create", "--capacity", "18446744073709551615", s(&p)],
            "too large",
        ),
        (
            vec!["create", "--fill", "3000000000", s(&p)],
            "does not fit in an int",
        ),
    ] {
        let err = fails(&args, 2, needle);
        assert!(err.contains("--help"), "{err}");
    }
    assert!(!p.exists(), "a usage error created the file");
}

#[test]
fn help_explains_the_commands_and_the_naive_modes() {
    let help = ok(&["--help"]);
    assert!(
        help.contains("disktable create --course table.bin"),
        "{help}"
    );
    assert!(help.contains("Exit status"), "{help}");
    let help = ok(&["append", "--help"]);
    for word in [
        "file",
        "beyond",
        "tail",
        "SIGSEGV",
        "SIGBUS",
        "ftruncate",
        "mremap",
    ] {
        assert!(help.contains(word), "append --help lacks {word}");
    }
}

/// `print --pause-after-map` maps, then waits; the test cuts the file, then lets it read on.
fn print_after_truncation(table_len: u64, cut_to: u64, json: bool) -> Output {
    let d = tempdir("truncated");
    let p = d.path().join("t.bin");
    let count = ((table_len - 8) / 4).to_string();
    ok(&[
        "create",
        "--count",
        &count,
        "--file-bytes",
        &table_len.to_string(),
        s(&p),
    ]);
    let mut args = vec!["print", "--pause-after-map", s(&p)];
    if json {
        args.push("--json");
    }
    let mut child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert_eq!(line, "mapped\n");
    // Another process's view: a separate open file description, no lock.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(cut_to)
        .unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let mut out = child.wait_with_output().unwrap();
    out.stderr = rest.into_bytes();
    out
}

#[test]
fn a_table_truncated_while_mapped_is_a_clear_error_not_a_sigbus_death() {
    for (cut_to, json) in [(4096, false), (0, true), (8192, false)] {
        let out = print_after_truncation(8 * 4096, cut_to, json);
        let err = text(&out.stderr);
        assert_eq!(out.status.signal(), None, "killed: {err}");
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains("is not a valid disktable: the file shrank while mapped"),
            "{err}"
        );
        assert!(err.contains(&format!("now {cut_to} bytes")), "{err}");
        assert!(err.contains("raised SIGBUS, caught"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        if json {
            assert!(out.stdout.is_empty(), "no JSON for a failed print");
        }
    }
    // Cut inside the last page: no SIGBUS (the page still exists), the length check catches it.
    let out = print_after_truncation(8 * 4096, 8 * 4096 - 100, false);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("shrank while mapped (now 32668 bytes; count 8190 needs 32768)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// The naive writer.
// ---------------------------------------------------------------------------------------------

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// Whether strace runs here (installed, and ptrace permitted); prints why not.
fn strace_works() -> bool {
    let ok = Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        use std::io::Write as _;
        // Straight to stderr: libtest hides what eprintln! prints in a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "notice: strace is not installed or ptrace is not permitted; trace checks skipped"
        );
    }
    ok
}

/// Runs disktable ARGS under `strace -e trace=SYSCALLS` (all signals are shown); returns the
/// output and the trace.
fn traced(dir: &TempDir, syscalls: &str, args: &[&str]) -> (Output, String) {
    let log = dir.path().join("trace.txt");
    let out = Command::new("strace")
        .args([
            "-qq",
            "-o",
            s(&log),
            "-e",
            &format!("trace={syscalls}"),
            BIN,
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out, std::fs::read_to_string(&log).unwrap())
}

/// The first fault signal of a trace (lab-trace's parser): its name, `si_code` and `si_addr`.
fn signal_line(trace: &str) -> Option<(String, String, u64)> {
    let trace = lab_trace::strace::parse_trace(trace);
    let fault = trace.fault()?;
    Some((fault.name.clone(), fault.code.clone()?, fault.addr?))
}

fn naive(args: &[&str]) -> (Output, NaivePlan) {
    let out = run(args);
    let plan = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out.stderr)));
    (out, plan)
}

#[test]
fn the_naive_writer_dies_of_sigsegv_past_the_mapping() {
    let d = tempdir("naive-file");
    let p = course(&d, "t.bin");
    // 1083 + 27,800 values: 27,500 fit in the file, 87 more in its last page, then the end.
    let args = ["append", "--naive", "--json", s(&p), "27800"];
    let (out, plan) = naive(&args);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{:?}", out.status);
    assert!(!out.status.core_dumped(), "core dumps are disabled first");
    assert_eq!(plan.expected_signal.as_deref(), Some("SIGSEGV"));
    assert_eq!(
        (plan.stores_in_file, plan.stores_past_eof_in_last_page),
        (27_500, 87)
    );
    assert_eq!(plan.fault_offset, Some(114_688));
    assert_eq!(plan.fault_offset, Some(plan.map_end_offset));
    assert!(!plan.page_after_mapping_mapped);
    // The stderr lines show the mapping and the file's end before the stores.
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("at {}-{}", plan.map_start, plan.map_end)),
        "{err}"
    );
    assert!(
        err.contains(&format!("the file ends at {}", plan.file_end)),
        "{err}"
    );
    // The count, in the first page, was saved store by store; the file did not grow.
    let b = Bytes::of(&p);
    assert_eq!(b.0.len() as u64, COURSE_BYTES);
    assert_eq!(b.count(), 28_670);
    assert_eq!(b.value(28_582), 28_582);
    fails(
        &["print", s(&p)],
        1,
        "count 28670 needs 114688 bytes but the file has 114340",
    );
    assert!(!d.path().join("core").exists());

    if strace_works() {
        let q = course(&d, "u.bin");
        let (out, trace) = traced(
            &d,
            "mmap,munmap",
            &["append", "--naive", "--json", s(&q), "27800"],
        );
        assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
        let plan: NaivePlan = serde_json::from_slice(&out.stdout).unwrap();
        let (sig, code, addr) = signal_line(&trace).expect("a signal line");
        assert_eq!(
            (sig.as_str(), code.as_str()),
            ("SIGSEGV", "SEGV_MAPERR"),
            "{trace}"
        );
        // si_addr is the mapping's end: 348 bytes past the file's end, 0 past the mapping.
        assert_eq!(addr, hex(&plan.map_end));
        assert_eq!(addr - hex(&plan.file_end), 348);
        assert!(
            trace.contains(&format!(
                "mmap({}, 114340, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED",
                plan.map_start
            )),
            "{trace}"
        );
    }
}

#[test]
fn the_naive_writer_dies_of_sigbus_in_a_mapped_page_past_eof() {
    let d = tempdir("naive-beyond");
    let p = course(&d, "t.bin");
    let (out, plan) = naive(&["append", "--naive=beyond", "--json", s(&p), "27800"]);
    assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{:?}", out.status);
    assert_eq!(plan.expected_signal.as_deref(), Some("SIGBUS"));
    assert_eq!(plan.map_len, 8 + 4 * (1083 + 27_800));
    assert_eq!(plan.fault_offset, Some(plan.first_page_past_eof_offset));
    assert!(plan.fault_offset < Some(plan.map_end_offset));
    assert_eq!(Bytes::of(&p).count(), 28_670);

    if strace_works() {
        let q = course(&d, "u.bin");
        let (out, trace) = traced(
            &d,
            "mmap",
            &["append", "--naive=beyond", "--json", s(&q), "27800"],
        );
        assert_eq!(out.status.signal(), Some(libc::SIGBUS));
        let plan: NaivePlan = serde_json::from_slice(&out.stdout).unwrap();
        let (sig, code, addr) = signal_line(&trace).expect("a signal line");
        assert_eq!(
            (sig.as_str(), code.as_str()),
            ("SIGBUS", "BUS_ADRERR"),
            "{trace}"
        );
        // si_addr: the first page wholly past the file's end, inside the mapping.
        assert_eq!(addr, hex(&plan.first_page_past_eof));
        assert_eq!(addr - hex(&plan.file_end), 348);
        assert_eq!(hex(&plan.map_end) - addr, 4096);
        assert!(
            trace.contains(", 115540, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED"),
            "{trace}"
        );
    }
}

#[test]
fn the_naive_writers_stores_in_the_last_page_past_eof_land_but_are_not_saved() {
    let d = tempdir("naive-tail");
    let p = course(&d, "t.bin");
    let out = run(&["append", "--naive=tail", s(&p), "27800"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{:?} {err}", out.status);
    assert!(
        err.contains("survived 27587 stores; 87 of them past the end of the file read back"),
        "{err}"
    );
    // The file did not grow; the count says it holds 28,670 values.
    let b = Bytes::of(&p);
    assert_eq!(b.0.len() as u64, COURSE_BYTES);
    assert_eq!(b.count(), 28_670);
    assert_eq!(b.value(28_582), 28_582);
    fails(
        &["print", s(&p)],
        1,
        "count 28670 needs 114688 bytes but the file has 114340",
    );
}

#[test]
fn the_naive_writer_is_fine_while_its_stores_stay_inside_the_file() {
    let d = tempdir("naive-fits");
    let p = course(&d, "t.bin");
    for mode in ["--naive", "--naive=beyond", "--naive=tail"] {
        let (out, plan) = naive(&["append", mode, "--json", s(&p)]);
        assert!(out.status.success(), "{mode}: {}", text(&out.stderr));
        assert_eq!((plan.stores, plan.stores_in_file), (300, 300));
        assert_eq!(plan.expected_signal, None);
    }
    let r: PrintReport = json(&["print", "--json", s(&p)]);
    assert_eq!(r.values, (0..1083 + 900).collect::<Vec<_>>());
}

#[test]
fn run_92_of_the_naive_writer_is_the_one_that_crashes() {
    // The course: "after running the program a few times, you'll encounter a segmentation
    // fault". On its table: runs 1 to 91 fit; the 92nd leaves the file.
    let d = tempdir("naive-runs");
    let p = course(&d, "t.bin");
    // Fill the first 91 runs' worth with the correct writer (fast), then run the naive one.
    let r: AppendReport = json(&["append", "--json", s(&p), "27300"]);
    assert!(!r.grew);
    let (out, plan) = naive(&["append", "--naive", "--json", s(&p)]);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
    assert_eq!(
        (plan.stores_in_file, plan.stores_past_eof_in_last_page),
        (200, 87)
    );
}

// ---------------------------------------------------------------------------------------------
// System calls: mmap only on the table.
// ---------------------------------------------------------------------------------------------

/// For a trace, the calls on the file at `path` (lab-trace follows its descriptor and mapping).
fn calls_on(trace: &str, path: &Path) -> Vec<Syscall> {
    let calls = lab_trace::strace::parse(trace);
    let path = path.to_str().unwrap();
    file_calls(&calls, |p| p == path)
        .into_iter()
        .cloned()
        .collect()
}

const TRACED: &str = "openat,close,read,pread64,readv,preadv,write,pwrite64,writev,pwritev,\
                      mmap,mremap,munmap,ftruncate,fstat,newfstatat,flock,fadvise64,madvise";

fn count(calls: &[Syscall], names: &[&str]) -> usize {
    lab_trace::fds::count(&calls.iter().collect::<Vec<_>>(), names)
}

#[test]
fn print_append_and_create_touch_the_table_only_through_mmap() {
    if !strace_works() {
        return;
    }
    let d = tempdir("strace");
    let p = d.path().join("t.bin");
    let io = [READ_CALLS, WRITE_CALLS].concat();

    let (out, trace) = traced(&d, TRACED, &["create", "--course", s(&p)]);
    assert!(out.status.success());
    let calls = calls_on(&trace, &p);
    assert_eq!(count(&calls, &io), 0, "{calls:?}");
    assert_eq!(count(&calls, &["ftruncate"]), 1, "{calls:?}");
    assert_eq!(count(&calls, &["mmap"]), 1, "{calls:?}");

    let (out, trace) = traced(&d, TRACED, &["print", s(&p)]);
    assert!(out.status.success());
    let calls = calls_on(&trace, &p);
    assert_eq!(count(&calls, &io), 0, "{calls:?}");
    let mmaps: Vec<_> = calls.iter().filter(|c| c.name == "mmap").collect();
    assert_eq!(mmaps.len(), 1, "{calls:?}");
    assert!(
        mmaps[0].raw.contains("114340, PROT_READ, MAP_SHARED"),
        "{mmaps:?}"
    );
    // The length came from fstat (glibc's fstat is the newfstatat system call).
    assert!(count(&calls, &["fstat", "newfstatat"]) >= 1, "{calls:?}");
    assert!(
        trace.lines().any(|l| l.contains("st_size=114340")),
        "{trace}"
    );
    assert_eq!(count(&calls, &["ftruncate", "mremap"]), 0, "{calls:?}");

    // 27,500 values fill the capacity exactly: no growth.
    let (out, trace) = traced(&d, TRACED, &["append", s(&p), "27500"]);
    assert!(out.status.success());
    let calls = calls_on(&trace, &p);
    assert_eq!(count(&calls, &io), 0, "{calls:?}");
    assert_eq!(count(&calls, &["ftruncate", "mremap"]), 0, "{calls:?}");

    let (out, trace) = traced(&d, TRACED, &["append", s(&p)]);
    assert!(out.status.success());
    let calls = calls_on(&trace, &p);
    assert_eq!(count(&calls, &io), 0, "{calls:?}");
    let grow: Vec<_> = calls
        .iter()
        .filter(|c| c.name == "ftruncate")
        .map(|c| c.raw.as_str())
        .collect();
    assert_eq!(grow.len(), 1, "{calls:?}");
    assert!(grow[0].contains(", 229376)"), "{grow:?}");
    // mremap takes the address, not the descriptor: find it by its flag.
    let remaps: Vec<_> = trace.lines().filter(|l| l.starts_with("mremap(")).collect();
    assert_eq!(remaps.len(), 1, "{trace}");
    assert!(
        remaps[0].contains("114340, 229376, MREMAP_MAYMOVE)"),
        "{remaps:?}"
    );
    // ftruncate comes before mremap: the file is long enough before the mapping covers it.
    let pos = |needle: &str| trace.find(needle).unwrap();
    assert!(pos("ftruncate(") < pos("mremap("));
}

// ---------------------------------------------------------------------------------------------
// C programs on our files: the layout is C's `struct disktable`.
// ---------------------------------------------------------------------------------------------

const C_PROGRAM: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct disktable { long count; int value[]; };

int main(int argc, char **argv) {
    int fd = open("table.bin", O_RDWR);
    if (fd < 0) { perror("open"); return 1; }
    struct stat st;
    if (fstat(fd, &st) != 0) { perror("fstat"); return 1; }
    size_t len = st.st_size;
    struct disktable *t = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED) { perror("mmap"); return 1; }
    if (argc > 1 && strcmp(argv[1], "append") == 0) {
        long want = t->count + 300;
        size_t need = sizeof(struct disktable) + want * sizeof(int);
        if (need > len) {
            if (ftruncate(fd, need) != 0) { perror("ftruncate"); return 1; }
            t = mremap(t, len, need, MREMAP_MAYMOVE);
            if (t == MAP_FAILED) { perror("mremap"); return 1; }
            len = need;
        }
        for (long i = t->count; i < want; i++) t->value[i] = (int)i;
        t->count = want;
        return 0;
    }
    for (long i = 0; i < t->count; i++) printf("%d\n", t->value[i]);
    return 0;
}
"#;

/// Compiles C_PROGRAM with `cc` into the directory; `None` (with a notice) if there is no cc.
fn compile_c(dir: &TempDir) -> Option<PathBuf> {
    let src = dir.path().join("disktable.c");
    std::fs::write(&src, C_PROGRAM).unwrap();
    let exe = dir.path().join("disktable-c");
    match Command::new("cc")
        .args(["-O1", "-D_GNU_SOURCE", "-o", s(&exe), s(&src)])
        .output()
    {
        Ok(out) if out.status.success() => Some(exe),
        Ok(out) => panic!("cc failed: {}", text(&out.stderr)),
        Err(_) => {
            eprintln!("notice: no C compiler (cc) found; C interoperability not checked");
            None
        }
    }
}

#[test]
fn a_c_program_with_struct_disktable_reads_and_extends_our_files() {
    let d = tempdir("c");
    let Some(exe) = compile_c(&d) else {
        return;
    };
    let p = course(&d, "table.bin");
    let c_print = Command::new(&exe).current_dir(d.path()).output().unwrap();
    assert!(c_print.status.success());
    assert_eq!(text(&c_print.stdout), ok(&["print", s(&p)]));
    // The C writer (the fixed one: ftruncate + mremap when needed), then our reader.
    let r: AppendReport = json(&["append", "--json", s(&p), "27400"]);
    assert_eq!(r.count_after, 28_483);
    for _ in 0..2 {
        let st = Command::new(&exe)
            .arg("append")
            .current_dir(d.path())
            .status()
            .unwrap();
        assert!(st.success());
    }
    let r: PrintReport = json(&["print", "--json", s(&p)]);
    assert_eq!(r.count, 29_083);
    assert_eq!(r.values, (0..29_083).collect::<Vec<_>>());
    assert_eq!(r.file_bytes, 8 + 4 * 29_083);
    // And our append continues what C wrote.
    let r: AppendReport = json(&["append", "--json", s(&p)]);
    assert!(r.grew);
    let c_print = Command::new(&exe).current_dir(d.path()).output().unwrap();
    assert_eq!(text(&c_print.stdout).lines().count(), 29_383);
}

// ---------------------------------------------------------------------------------------------
// Output errors.
// ---------------------------------------------------------------------------------------------

fn to_dev_full(args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(full)
        .output()
        .unwrap()
}

#[test]
fn a_full_stdout_is_a_one_line_error() {
    let d = tempdir("full");
    let p = course(&d, "t.bin");
    let q = d.path().join("new.bin");
    for args in [
        vec!["print", s(&p)],
        vec!["print", "--json", s(&p)],
        vec!["append", "--json", s(&p)],
        vec!["create", "--json", "--course", s(&q)],
    ] {
        let out = to_dev_full(&args);
        let err = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(out.status.signal(), None, "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // The naive writer prints its plan before storing: a failed print stores nothing.
    let before = std::fs::read(&p).unwrap();
    let out = to_dev_full(&["append", "--naive", "--json", s(&p), "27800"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", out.status);
    assert_eq!(std::fs::read(&p).unwrap(), before);
}

#[test]
fn a_closed_stdout_ends_print_quietly() {
    let d = tempdir("pipe");
    let p = d.path().join("t.bin");
    ok(&["create", "--count", "300000", s(&p)]);
    let mut child = Command::new(BIN)
        .args(["print", s(&p)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "0\n");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        text(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// A sparse table in `dir`: `count` in the first 8 bytes, room for `capacity` values
/// (ftruncate; nothing else written, so it takes almost no space).
fn sparse(dir: &Path, name: &str, count: u64, capacity: u64) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(8 + 4 * capacity).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &count.to_le_bytes(), 0).unwrap();
    p
}

/// Takes the first `n` bytes of `disktable ARGS`'s stdout, then closes the pipe: the command
/// must end by itself (bounded), cleanly, as `| head -c N` would make it. Returns the bytes.
fn first_bytes_then_close(args: &[&str], n: usize) -> Vec<u8> {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = bounded::drain(child.stderr.take());
    let mut first = vec![0u8; n];
    let mut stdout = child.stdout.take().unwrap();
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = bounded::wait_bounded(&mut child, &format!("disktable {args:?}"));
    let err = text(&err.join().unwrap());
    assert_eq!(status.signal(), None, "{args:?}: {status:?} {err}");
    assert_eq!(status.code(), Some(0), "{args:?}: {err}");
    assert!(err.is_empty(), "{args:?}: {err}");
    first
}

/// Issue 22: `--json print` of a table of count 2^33 collected every value first and died of a
/// 34 GB allocation (SIGABRT). Both prints stream, and end quietly when the reader goes away.
#[test]
fn print_streams_a_table_of_2_pow_33_values_and_stops_at_a_closed_pipe() {
    let d = tempdir("sparse");
    let count = 1u64 << 33;
    let p = sparse(d.path(), "t.bin", count, count);
    let json = first_bytes_then_close(&["--json", "print", s(&p)], 1 << 20);
    let head = format!(
        "{{\n  \"count\": {count},\n  \"capacity\": {count},\n  \"values\": [\n    0,\n    0,\n"
    );
    assert!(json.starts_with(head.as_bytes()), "{}", text(&json[..200]));
    let plain = first_bytes_then_close(&["print", s(&p)], 1 << 20);
    assert!(
        plain.iter().all(|b| b"0\n".contains(b)),
        "sparse: all zeros"
    );

    // A count the file cannot hold is a damaged table, before anything is printed.
    let short = raw(&d, "short.bin", count as i64, 4096);
    for args in [vec!["--json", "print", s(&short)], vec!["print", s(&short)]] {
        let line = fails(&args, 1, "");
        assert_eq!(
            line.trim_end(),
            format!(
                "error: {} is not a valid disktable: count {count} needs {} bytes but the file \
                 has 4096 (room for 1022 values)",
                short.display(),
                8 + 4 * count
            )
        );
    }
}

/// The streamed JSON is the document `PrintReport` describes, byte for byte as serde_json
/// pretty-prints it, for an empty table, a one-value table and the course's.
#[test]
fn the_streamed_json_is_the_print_report_exactly() {
    let d = tempdir("json-exact");
    let empty = d.path().join("empty.bin");
    ok(&["create", s(&empty)]);
    let one = d.path().join("one.bin");
    ok(&["create", "--count", "1", s(&one)]);
    let course = course(&d, "course.bin");
    for p in [&empty, &one, &course] {
        let out = ok(&["--json", "print", s(p)]);
        let report: PrintReport =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(report.values.len() as u64, report.count);
        assert!(report
            .values
            .iter()
            .enumerate()
            .all(|(i, v)| *v == i as i32));
        assert_eq!(out, serde_json::to_string_pretty(&report).unwrap() + "\n");
    }
}

// ---------------------------------------------------------------------------------------------
// A full file system.
// ---------------------------------------------------------------------------------------------

/// Fills the file system of `dir` with a file `filler` until a write fails for lack of space.
fn fill_up(dir: &Path) {
    let mut filler = std::fs::File::create(dir.join("filler")).unwrap();
    while filler.write_all(&[7u8; 4096]).is_ok() {}
}

/// Issue 22: on a full file system `create` and `append` said "the file shrank while mapped"
/// (their stores into unallocated pages raised SIGBUS). They reserve the space first, name the
/// full disk, and leave nothing behind: create's new file is gone, append's table is as it was.
#[test]
fn a_full_disk_is_named_and_leaves_no_file_and_no_change() {
    let fs = match tmpfs::Tmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(why) => return tmpfs::skip_unless_ci("disktable on a full disk", &why),
    };
    let dir = fs.path();

    // create: more than the file system holds, values or room for them.
    let new = dir.join("new.bin");
    for (args, bytes) in [
        (["--count", "300000"], 1_200_128),
        (["--capacity", "1000000"], 4_000_008),
    ] {
        let line = fails(&["create", args[0], args[1], s(&new)], 1, "");
        assert_eq!(
            line.trim_end(),
            format!(
                "error: {}: no space left on device: cannot reserve {bytes} bytes for the new \
                 table; it was removed",
                new.display()
            )
        );
        assert!(!new.exists());
    }

    // append that must grow: a half-size table, the rest filled.
    let t = dir.join("t.bin");
    ok(&["create", "--count", "1000", "--capacity", "100000", s(&t)]);
    fill_up(dir);
    let before = std::fs::read(&t).unwrap();
    let line = fails(&["append", s(&t), "200000"], 1, "");
    assert_eq!(
        line.trim_end(),
        format!(
            "error: {}: no space left on device: cannot reserve 802904 bytes for 200000 more \
             values; the table is unchanged (count 1000)",
            t.display()
        )
    );
    assert_eq!(std::fs::read(&t).unwrap(), before, "the table is as it was");
    assert_eq!(ok(&["print", s(&t)]).lines().count(), 1000);

    // append into a sparse table's hole (no growth): the stores would land in pages the full
    // file system cannot give.
    std::fs::remove_file(dir.join("filler")).unwrap();
    let holes = sparse(dir, "holes.bin", 0, 100_000);
    fill_up(dir);
    let before = std::fs::read(&holes).unwrap();
    let line = fails(&["append", s(&holes), "50000"], 1, "");
    assert_eq!(
        line.trim_end(),
        format!(
            "error: {}: no space left on device: cannot reserve 200000 bytes for 50000 more \
             values; the table is unchanged (count 0)",
            holes.display()
        )
    );
    assert_eq!(std::fs::read(&holes).unwrap(), before);

    // Once there is room again, the same appends work.
    std::fs::remove_file(dir.join("filler")).unwrap();
    ok(&["append", s(&holes), "50000"]);
    assert_eq!(ok(&["print", s(&holes)]).lines().count(), 50_000);
}

/// Where twice the length does not fit but what the values need does, append grows by that.
#[test]
fn an_append_that_cannot_double_on_a_nearly_full_disk_grows_by_what_it_needs() {
    let fs = match tmpfs::Tmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(why) => return tmpfs::skip_unless_ci("disktable on a nearly full disk", &why),
    };
    let t = fs.path().join("t.bin");
    ok(&["create", "--count", "1000", "--capacity", "100000", s(&t)]); // 400008 bytes
    std::fs::write(fs.path().join("filler"), vec![7u8; 500 << 10]).unwrap();
    let r: AppendReport = json(&["append", "--json", s(&t), "99500"]);
    assert_eq!(
        (r.count_before, r.count_after, r.grew),
        (1000, 100_500, true)
    );
    // 8 + 4 x 100500 = 402008 bytes, in whole pages; doubling would have needed 802816.
    assert_eq!(r.file_bytes, 405_504);
    assert_eq!(std::fs::metadata(&t).unwrap().len(), 405_504);
    let printed = ok(&["print", s(&t)]);
    assert_eq!(printed.lines().count(), 100_500);
    assert_eq!(printed.lines().last(), Some("100499"));
}
