//! `xtask check DIR` against readers and writers that reach table.bin around the trace's
//! (pid, fd) bookkeeping (review 30): a thread's pread, a forked child's read, a reopen through
//! /proc/self/fd, copy_file_range, a rename over the table, io_uring, and programs that map only
//! when they see a tracer; and around the tracer itself (review 31): kernel AIO, and a child
//! started with CLONE_UNTRACED, which `strace -f` does not follow. Each must FAIL with its true
//! cause; a reader whose forked child maps and a writer whose thread does everything are correct
//! and must PASS. Real C programs, built by the submission's Makefile, one program per check
//! (`--reader` / `--writer`).

mod common;

use std::process::{Command, Stdio};

use serde_json::Value;

fn can_build(test: &str) -> bool {
    common::tools_present(test, &[common::CC, common::MAKE, common::STRACE])
}

/// `xtask check DIR --json --NAME NAME` on a submission holding `fixture.c` as `NAME.c`: the
/// check's verdict, reason and evidence lines, and xtask's exit status.
fn check(fixture: &str, name: &str) -> (String, String, Vec<String>, Option<i32>) {
    let dir = common::submission(&[(fixture, name)]);
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("check")
        .arg(dir.path())
        .arg("--json")
        .arg(format!("--{name}"))
        .arg(name)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{fixture}: not one JSON document ({e}); stderr: {stderr}"));
    let id = if name == "reader" {
        "step2.reader"
    } else {
        "step3.writer"
    };
    let c = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("{fixture}: no {id} in {doc}"));
    let evidence = c["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    (
        c["verdict"].as_str().unwrap().to_string(),
        c["reason"].as_str().unwrap().to_string(),
        evidence,
        out.status.code(),
    )
}

/// Asserts `fixture` (as `name`) fails with a reason holding every one of `causes`.
fn fails_because(fixture: &str, name: &str, causes: &[&str]) {
    if !can_build(fixture) {
        return;
    }
    let (verdict, reason, evidence, status) = check(fixture, name);
    assert_eq!(
        verdict,
        "fail",
        "{fixture}: {reason}\n{}",
        evidence.join("\n")
    );
    for cause in causes {
        assert!(
            reason.contains(cause),
            "{fixture}: {cause:?} not in {reason:?}"
        );
    }
    assert_eq!(status, Some(1), "{fixture}: a failed check exits 1");
}

#[test]
fn a_reader_whose_thread_preads_the_table_fails() {
    fails_because(
        "reader_thread_pread",
        "reader",
        &["read the table with 1 system call (pread64) instead of mapping it"],
    );
}

#[test]
fn a_reader_whose_forked_child_reads_the_inherited_descriptor_fails() {
    fails_because(
        "reader_child_read",
        "reader",
        &[
            "read the table with",
            "read() call",
            "instead of mapping it",
        ],
    );
}

#[test]
fn a_reader_that_reopens_the_table_through_proc_self_fd_fails() {
    fails_because(
        "reader_procfd",
        "reader",
        &["read the table with 1 read() call instead of mapping it"],
    );
}

#[test]
fn a_reader_that_copies_the_table_with_copy_file_range_fails() {
    fails_because(
        "reader_copy_range",
        "reader",
        &["(copy_file_range) instead of mapping it"],
    );
}

#[test]
fn a_reader_that_maps_only_when_traced_fails_on_its_untraced_run() {
    fails_because(
        "reader_tracer",
        "reader",
        &["when it ran without strace", "inotify saw the file read"],
    );
}

#[test]
fn a_reader_that_reads_through_io_uring_fails_as_untraceable() {
    let enabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map_or(true, |s| s.trim() == "0");
    if !enabled {
        common::skip(
            "a_reader_that_reads_through_io_uring_fails_as_untraceable",
            "needs io_uring (kernel.io_uring_disabled is not 0)",
        );
        return;
    }
    fails_because(
        "reader_uring",
        "reader",
        &[
            "used io_uring",
            "cannot tell how it reached the table",
            "inotify saw table.bin read",
        ],
    );
}

#[test]
fn a_reader_that_reads_through_kernel_aio_fails_as_untraceable() {
    fails_because(
        "reader_aio",
        "reader",
        &["used kernel AIO", "cannot tell how it reached the table"],
    );
}

#[test]
fn a_writer_that_pwrites_through_kernel_aio_fails_as_untraceable() {
    fails_because(
        "writer_aio",
        "writer",
        &["used kernel AIO", "cannot tell how it reached the table"],
    );
}

#[test]
fn a_writer_whose_untraced_clone_pwrites_the_values_fails() {
    fails_because(
        "writer_untraced_clone",
        "writer",
        &[
            "started a process the tracer cannot follow (clone with CLONE_UNTRACED)",
            "what it did to the table cannot be checked",
        ],
    );
}

#[test]
fn a_writer_whose_thread_pwrites_the_values_fails() {
    fails_because(
        "writer_thread_pwrite",
        "writer",
        &["made 2 system calls (pwrite64) on the table in run 1"],
    );
}

#[test]
fn a_writer_that_renames_a_written_copy_over_the_table_fails() {
    fails_because(
        "writer_rename",
        "writer",
        &[
            "put another file in table.bin's place in run 1",
            "1 rename or link",
        ],
    );
}

#[test]
fn a_writer_that_pwrites_only_when_untraced_fails_on_its_untraced_run() {
    fails_because(
        "writer_tracer",
        "writer",
        &["which ran without strace", "inotify saw the file written"],
    );
}

#[test]
fn a_reader_whose_forked_child_maps_and_prints_passes() {
    if !can_build("reader_child_maps") {
        return;
    }
    let (verdict, reason, evidence, status) = check("reader_child_maps", "reader");
    assert_eq!(verdict, "pass", "{reason}\n{}", evidence.join("\n"));
    assert!(
        reason.contains("no read event on the file (inotify)"),
        "{reason}"
    );
    // Every run's evidence line says what inotify saw; the untraced one is marked.
    assert!(evidence
        .iter()
        .all(|l| l.contains("inotify: 0 read and 0 write/truncate events on the file")));
    assert!(evidence.iter().any(|l| l.starts_with("untraced run, ")));
    assert_eq!(status, Some(0));
}

#[test]
fn a_writer_whose_thread_maps_grows_and_stores_passes() {
    if !can_build("writer_thread_maps") {
        return;
    }
    let (verdict, reason, evidence, status) = check("writer_thread_maps", "writer");
    assert_eq!(verdict, "pass", "{reason}\n{}", evidence.join("\n"));
    assert!(
        reason.contains("without strace raised no write event on the file (inotify)"),
        "{reason}"
    );
    assert!(
        evidence
            .iter()
            .any(|l| l.contains("without strace: inotify: 0 read and 0 write/truncate events")),
        "{}",
        evidence.join("\n")
    );
    assert_eq!(status, Some(0));
}

// The judgments themselves, on typed evidence (no program runs): the inotify rules.

mod judged {
    use lab_analysis::check::{
        judge_writer_run, Ending, FileEvents, TableSnapshot, WriterRun, APPEND,
    };
    use lab_trace::strace::parse_trace;

    fn table(count: i64, cap: usize) -> TableSnapshot {
        TableSnapshot {
            file_bytes: 8 + 4 * cap as u64,
            count: Some(count),
            values: (0..count.min(cap as i64) as i32).collect(),
        }
    }

    /// A run from count 100 (room for 1,000) to count 400, its trace `trace`.
    fn run(trace: &str, events: FileEvents, untraced: bool, after_cap: usize) -> WriterRun {
        WriterRun {
            start: "t".into(),
            run: 2,
            before: table(100, 1000),
            after: table(100 + APPEND, after_cap),
            trace: parse_trace(trace),
            ending: Ending::Exited { code: 0 },
            outside_writes: Vec::new(),
            page_size: 4096,
            events: Some(events),
            untraced,
        }
    }

    const MAPS: &str = "\
7 openat(AT_FDCWD</w>, \"table.bin\", O_RDWR) = 3</w/table.bin>
7 mmap(NULL, 4008, PROT_READ|PROT_WRITE, MAP_SHARED, 3</w/table.bin>, 0) = 0x7f0000000000
7 +++ exited with 0 +++
";

    fn written() -> FileEvents {
        FileEvents {
            modify: 1,
            ..FileEvents::default()
        }
    }

    #[test]
    fn a_traced_run_whose_write_events_the_trace_does_not_explain_fails() {
        let why = judge_writer_run(&run(MAPS, written(), false, 1000)).unwrap_err();
        assert!(why.contains("the trace does not show"), "{why}");
        // The same run with an ftruncate in its trace explains the event.
        let truncates = MAPS.replace("7 +++", "7 ftruncate(3</w/table.bin>, 4008) = 0\n7 +++");
        assert!(judge_writer_run(&run(&truncates, written(), false, 1000)).is_ok());
        assert!(judge_writer_run(&run(MAPS, FileEvents::default(), false, 1000)).is_ok());
    }

    #[test]
    fn an_untraced_run_is_failed_by_a_write_event_only_when_the_file_kept_its_size() {
        let why = judge_writer_run(&run("", written(), true, 1000)).unwrap_err();
        assert!(why.contains("which ran without strace"), "{why}");
        // Grown: an ftruncate raises the same event, so it cannot be told from a write.
        assert!(judge_writer_run(&run("", written(), true, 2000)).is_ok());
        let ok = judge_writer_run(&run("", FileEvents::default(), true, 1000)).unwrap();
        assert!(ok.untraced);
    }

    #[test]
    fn a_traced_run_with_an_untraced_clone_or_kernel_aio_fails_whatever_inotify_saw() {
        let grows = MAPS.replace("7 +++", "7 ftruncate(3</w/table.bin>, 4008) = 0\n7 +++");
        let clone = grows.replace(
            "7 +++",
            "7 clone(child_stack=NULL, flags=CLONE_UNTRACED|SIGCHLD) = 8\n7 +++",
        );
        for events in [written(), FileEvents::default()] {
            let why = judge_writer_run(&run(&clone, events, false, 1000)).unwrap_err();
            assert!(
                why.contains("started a process the tracer cannot follow"),
                "{why}"
            );
        }
        // A thread or a fork() is followed: the same run without CLONE_UNTRACED passes.
        let thread = grows.replace(
            "7 +++",
            "7 clone3({flags=CLONE_VM|CLONE_THREAD, exit_signal=0}, 88) = 8\n7 +++",
        );
        assert!(judge_writer_run(&run(&thread, written(), false, 1000)).is_ok());
        let aio = grows.replace("7 +++", "7 io_setup(2, [0x7f81da34d000]) = 0\n7 +++");
        let why = judge_writer_run(&run(&aio, FileEvents::default(), false, 1000)).unwrap_err();
        assert!(why.contains("used kernel AIO (1 kernel AIO call)"), "{why}");
        // A failed io_setup used no AIO.
        let failed = aio.replace(
            "= 0\n7 +++",
            "= -1 EAGAIN (Resource temporarily unavailable)\n7 +++",
        );
        assert!(judge_writer_run(&run(&failed, FileEvents::default(), false, 1000)).is_ok());
    }

    #[test]
    fn another_file_in_the_tables_place_fails_traced_or_not() {
        let replaced = FileEvents {
            replaced: true,
            ..FileEvents::default()
        };
        for untraced in [false, true] {
            let why = judge_writer_run(&run(MAPS, replaced, untraced, 1000)).unwrap_err();
            assert!(
                why.contains("put another file in table.bin's place"),
                "{why}"
            );
        }
    }
}
