use super::*;
use lab_trace::strace::parse_trace;

/// A reader's trace: opens table.bin, maps `len` bytes of it, and makes `reads` read() calls.
fn reader_trace(len: u64, reads: usize) -> Trace {
    let mut text = String::from(
        "7 openat(AT_FDCWD, \"table.bin\", O_RDONLY) = 3\n\
         7 fstat(3, {st_mode=S_IFREG|0644, st_size=100, ...}) = 0\n",
    );
    if len > 0 {
        text.push_str(&format!(
            "7 mmap(NULL, {len}, PROT_READ, MAP_SHARED, 3, 0) = 0x7f0000000000\n"
        ));
    }
    for _ in 0..reads {
        text.push_str("7 read(3, \"\\0\\0\\0\\0\", 4) = 4\n");
    }
    text.push_str("7 write(1, \"0\\n\", 2) = 2\n7 +++ exited with 0 +++\n");
    parse_trace(&text)
}

fn reader_run(count: i64, cap: usize, stdout: &str, trace: &Trace) -> ReaderRun {
    ReaderRun {
        label: "t".into(),
        count,
        file_bytes: 8 + 4 * cap as u64,
        values: (0..count as i32).collect(),
        stdout: stdout.into(),
        access: TableAccess::of(trace),
        ending: Ending::Exited { code: 0 },
        outside_writes: Vec::new(),
        events: None,
        untraced: false,
    }
}

fn lines(n: usize) -> String {
    (0..n).map(|i| format!("{i}\n")).collect()
}

#[test]
fn a_reader_that_prints_exactly_count_values_through_one_mmap_passes() {
    let t = reader_trace(428, 0);
    let runs = [
        reader_run(5, 105, &format!("count = 5\n{}", lines(5)), &t),
        reader_run(0, 10, "count = 0\n", &t),
        reader_run(3, 3, "value[0] = 0\nvalue[1] = 1\nvalue[2] = 2\n", &t),
    ];
    let c = judge_reader(Some("r".into()), &runs);
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert_eq!(c.evidence.len(), 3);
}

#[test]
fn a_reader_that_trusts_the_file_size_is_named() {
    let t = reader_trace(114_340, 0);
    let mut run = reader_run(1083, 28_583, &lines(28_583), &t);
    run.values = (0..1083).collect();
    let c = judge_reader(None, &[run]);
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(
        c.reason,
        "printed 28,583 values for a table of count 1,083: it trusts the file size, not count"
    );
}

#[test]
fn a_hard_coded_count_or_size_is_named() {
    let t = reader_trace(114_340, 0);
    let c = judge_reader(None, &[reader_run(5, 400, &lines(1083), &t)]);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason.ends_with("the course's count 1083 is hard-coded"),
        "{}",
        c.reason
    );
    let mut crashed = reader_run(0, 0, "", &t);
    crashed.ending = Ending::Signalled {
        signal: "SIGBUS".into(),
    };
    let c = judge_reader(None, &[crashed]);
    assert!(
        c.reason
            .starts_with("was killed by SIGBUS on the \"t\" table (count 0, 8 bytes)"),
        "{}",
        c.reason
    );
    assert!(c.reason.contains("hard-coded size"), "{}", c.reason);
}

#[test]
fn read_calls_and_extra_mmaps_fail() {
    let c = judge_reader(None, &[reader_run(3, 3, &lines(3), &reader_trace(0, 4))]);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason.starts_with("read the table with 4 read() calls"),
        "{}",
        c.reason
    );
    let mut t = reader_trace(20, 0);
    t.calls.push(t.calls[2].clone());
    let c = judge_reader(None, &[reader_run(3, 3, &lines(3), &t)]);
    assert!(
        c.reason.starts_with("mapped the table 2 times"),
        "{}",
        c.reason
    );
}

#[test]
fn a_hang_a_flood_and_a_write_outside_fail_with_their_reason() {
    let t = reader_trace(20, 0);
    let mut run = reader_run(3, 3, &lines(3), &t);
    run.ending = Ending::TimedOut {
        seconds: 10.0,
        main_exited: true,
        killed: Some(50),
    };
    let c = judge_reader(None, &[run.clone()]);
    assert!(
        c.reason.starts_with("exited but left 50 processes running"),
        "{}",
        c.reason
    );
    run.ending = Ending::Flooded { bytes: 20 << 20 };
    assert!(judge_reader(None, &[run.clone()])
        .reason
        .starts_with("flooded its output"));
    run.ending = Ending::Exited { code: 0 };
    run.outside_writes = vec!["7 openat(AT_FDCWD, \"/etc/x\", O_WRONLY|O_CREAT, 0644) = 4".into()];
    assert!(judge_reader(None, &[run])
        .reason
        .starts_with("wrote outside its scratch directory"));
}

#[test]
fn writes_outside_the_scratch_directory_are_found() {
    let trace = parse_trace(
        "\
1 openat(AT_FDCWD, \"table.bin\", O_RDWR) = 3
1 openat(AT_FDCWD, \"/etc/ld.so.cache\", O_RDONLY|O_CLOEXEC) = 3
1 openat(AT_FDCWD, \"/dev/null\", O_WRONLY) = 4
1 openat(AT_FDCWD, \"/dev/stdout\", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 4
1 openat(AT_FDCWD, \"../../../home/x\", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 5
1 openat(AT_FDCWD, \"/s/tmp/f\", O_WRONLY|O_CREAT, 0644) = 6
1 unlink(\"racecourse.bin\") = 0
1 unlink(\"/etc/passwd\") = -1 EACCES (Permission denied)
1 rename(\"a\", \"/var/b\") = 0
1 mkdirat(AT_FDCWD, \"/s/run/../../outside\", 0755) = 0
",
    );
    let found = outside_writes(&trace, "/s", "/s/run");
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("../../../home/x"));
    assert!(found[1].starts_with("1 rename"));
    assert!(found[2].contains("/s/run/../../outside"));
}

fn snapshot(count: i64, values: Vec<i32>, cap: u64) -> TableSnapshot {
    TableSnapshot {
        file_bytes: 8 + 4 * cap,
        count: Some(count),
        values,
    }
}

fn writer_run(before: TableSnapshot, after: TableSnapshot, trace: &str) -> WriterRun {
    WriterRun {
        start: "the course's shape".into(),
        run: 3,
        before,
        after,
        trace: parse_trace(trace),
        ending: Ending::Exited { code: 0 },
        outside_writes: Vec::new(),
        page_size: 4096,
        events: None,
        untraced: false,
    }
}

const GROW: &str = "\
7 openat(AT_FDCWD, \"table.bin\", O_RDWR) = 3
7 mmap(NULL, 4340, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = 0x7f0000000000
7 ftruncate(3, 5540) = 0
7 mremap(0x7f0000000000, 4340, 5540, MREMAP_MAYMOVE) = 0x7f1000000000
7 +++ exited with 0 +++
";

#[test]
fn a_writer_run_that_grows_with_ftruncate_and_mremap_passes() {
    let old = [3, 6, 1].repeat(361);
    let mut new = old.clone();
    new.extend(1083..1383);
    let r = writer_run(snapshot(1083, old, 1083), snapshot(1383, new, 1383), GROW);
    let ok = judge_writer_run(&r).unwrap();
    assert_eq!(ok.grew, Some((4340, 5540)));
    assert!(ok.had_to_grow && ok.mremap);
    let start = WriterStart {
        label: "w".into(),
        count_before: 1083,
        file_bytes_before: 4340,
        runs: vec![ok, ok],
        failed: None,
    };
    assert_eq!(
        judge_writer(None, std::slice::from_ref(&start), 2).verdict,
        Verdict::Pass
    );
    let once = WriterStart {
        runs: vec![ok],
        ..start
    };
    assert_eq!(judge_writer(None, &[once], 2).verdict, Verdict::NotTested);
}

#[test]
fn a_writer_that_rewrites_forgets_or_writes_fails_with_its_reason() {
    let old = [3, 6, 1].repeat(361);
    let mut rewritten: Vec<i32> = (0..1383).collect();
    let r = writer_run(
        snapshot(1083, old.clone(), 1083),
        snapshot(1383, rewritten.clone(), 1383),
        GROW,
    );
    assert_eq!(
        judge_writer_run(&r).unwrap_err(),
        "changed value[0] from 3 to 0 in run 3 from the course's shape: earlier values must \
         stay as they were"
    );
    rewritten.truncate(1083);
    let r = writer_run(
        snapshot(1083, old.clone(), 1083),
        snapshot(1083, old.clone(), 1383),
        GROW,
    );
    assert!(judge_writer_run(&r)
        .unwrap_err()
        .starts_with("count stayed 1,083 in run 3"));
    let r = writer_run(
        snapshot(1083, old.clone(), 1083),
        snapshot(1383, old.clone(), 1383),
        &GROW.replace("7 ftruncate", "7 write(3, \"\\0\", 4) = 4\n7 ftruncate"),
    );
    assert!(judge_writer_run(&r)
        .unwrap_err()
        .starts_with("made 1 write() call on the table"));
}

#[test]
fn a_naive_writer_is_named_with_its_signal_and_run() {
    let trace = "\
7 openat(AT_FDCWD, \"table.bin\", O_RDWR) = 3
7 mmap(NULL, 114340, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = 0x7f0000000000
7 --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x7f000001c000} ---
7 +++ killed by SIGSEGV +++
";
    let mut r = writer_run(
        snapshot(28_383, Vec::new(), 28_583),
        snapshot(28_383, Vec::new(), 28_583),
        trace,
    );
    r.run = 92;
    r.ending = Ending::Signalled {
        signal: "SIGSEGV".into(),
    };
    let why = judge_writer_run(&r).unwrap_err();
    assert!(
        why.starts_with("killed by SIGSEGV in run 92 from the course's shape (a store at 0x7f000001c000, 0 bytes past the mapping's end"),
        "{why}"
    );
    assert!(
        why.ends_with("instead of growing the file with ftruncate + mremap"),
        "{why}"
    );
    // Stores past the file's end that did not fault: count outruns the file.
    let r = writer_run(
        snapshot(100, (0..100).collect(), 200),
        snapshot(400, (0..200).collect(), 200),
        GROW.replace("7 ftruncate(3, 5540) = 0\n7 mremap(0x7f0000000000, 4340, 5540, MREMAP_MAYMOVE) = 0x7f1000000000\n", "").as_str(),
    );
    assert!(judge_writer_run(&r)
        .unwrap_err()
        .starts_with("count says 400 but the file holds only 200 values"));
}

fn race(participants: usize, total: i64, winnings: Vec<i64>) -> Race {
    Race {
        participants,
        outcome: RaceOutcome::Finished,
        participants_left: Some(0),
        total: Some(total),
        winnings,
        final_participant_seconds: Some(0.5),
        outside_writes: Vec::new(),
        overlap: (participants > 1).then_some(Overlap {
            moving: 50,
            together: 40,
        }),
    }
}

/// A plain `total++` (load, add, store) in main's loop.
const PLAIN: &str = "\
0000000000001040 <main>:
    10b0:\tmov    0x8(%rax),%rdx
    10b4:\tadd    $0x1,%rdx
    10b8:\tmov    %rdx,0x8(%rax)
    10bc:\taddq   $0x1,0x10(%rax,%rcx,8)
    10c2:\tcmpq   $0x98967f,0x8(%rax)
    10c6:\tjle    10b0 <main+0x70>
    10c8:\tret
";

/// `(*total)++` through a pointer to total, at -O0 (gcc 12): the stores go through `(%rax)`,
/// the pointers live on the stack.
const POINTER: &str = "\
00000000000011a9 <main>:
    1211:\tmov    -0x10(%rbp),%rax
    1215:\tmov    (%rax),%rax
    1218:\tlea    0x1(%rax),%rdx
    121c:\tmov    -0x10(%rbp),%rax
    1220:\tmov    %rdx,(%rax)
    1223:\taddl   $0x1,-0x1c(%rbp)
    1227:\tmov    -0x10(%rbp),%rax
    122b:\tmov    (%rax),%rax
    122e:\tcmp    $0xf423f,%rax
    1234:\tjle    1211 <main+0x68>
    1236:\tret
";

/// A spin lock: `xchg` in a loop, then a plain total++ under it.
const SPIN: &str = "\
0000000000001040 <main>:
    10b0:\tmov    $0x1,%edx
    10b5:\txchg   %edx,(%rbx)
    10b7:\ttest   %edx,%edx
    10b9:\tjne    10b0 <main+0x70>
    10bb:\taddq   $0x1,0x8(%rax)
    10c0:\tmovl   $0x0,(%rbx)
    10c6:\tcmpq   $0x98967f,0x8(%rax)
    10ca:\tjle    10b0 <main+0x70>
    10cc:\tret
";

/// A static binary: libc's stdio lock, nothing in main's loop.
const STATIC: &str = "\
0000000000001040 <main>:
    10b0:\taddq   $0x1,0x10(%rax,%rcx,8)
    10b6:\tjmp    10b0 <main+0x70>
0000000000002000 <__vfprintf_internal>:
    2000:\tlock cmpxchg %edx,(%rdi)
    2004:\tjne    2000 <__vfprintf_internal>
";

const LOCKED: &str = "\
0000000000001040 <main>:
    1040:\tpush   %rbx
    10a0:\tcmpq   $0x98967f,0x8(%rax)
    10a8:\tjg     10c0 <main+0x80>
    10b0:\tlock incq 0x8(%rax)
    10b5:\taddq   $0x1,0x10(%rax,%rdx,8)
    10bb:\tcmpq   $0x98967f,0x8(%rax)
    10be:\tjle    10b0 <main+0x70>
    10c0:\tlock decl (%rbx)
    10c3:\tret
";

#[test]
fn locked_instructions_are_found_in_loops() {
    let l = locked_instructions(LOCKED, &|_| false);
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].text, "lock incq 0x8(%rax)");
    assert!(l[0].in_loop && l[0].on_total);
    assert_eq!(l[0].function, "main");
    assert!(!l[1].in_loop);
    assert!(l[0].locks_total() && !l[0].races_total());
    // The plain total++'s store (not its load, not the winnings' indexed add, not the compare).
    // Through a pointer: a plain write, total's or not (the code cannot say); the stack's
    // `-0x1c(%rbp)` is neither.
    let q = locked_instructions(POINTER, &|_| false);
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].text, "mov %rdx,(%rax)");
    assert!(q[0].writes_through_pointer() && !q[0].races_total() && !q[0].locks_total());
    let p = locked_instructions(PLAIN, &|_| false);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].text, "mov %rdx,0x8(%rax)");
    assert!(p[0].races_total());
    let x = locked_instructions(SPIN, &|_| false);
    assert!(
        x.iter().any(|i| i.spins() && i.text == "xchg %edx,(%rbx)"),
        "{x:?}"
    );
    let lib = locked_instructions(STATIC, &|f| f == "__vfprintf_internal");
    assert_eq!(lib.len(), 1);
    assert!(lib[0].library && !lib[0].locks_total());
}

#[test]
fn racers_are_judged_by_their_losses_and_their_code() {
    let racy = [
        race(1, 100, vec![100]),
        race(2, 100, vec![80, 70]),
        race(3, 100, vec![50, 50, 50]),
    ];
    let atomic = [
        race(1, 100, vec![100]),
        race(2, 100, vec![60, 40]),
        race(3, 101, vec![50, 30, 21]),
    ];
    let locks = locked_instructions(LOCKED, &|_| false);
    let plain = locked_instructions(PLAIN, &|_| false);
    let c = judge_racer(None, RacerKind::Racy, &racy, Ok(&plain));
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!(c.reason.contains("50 with 2"), "{}", c.reason);
    assert!(c.reason.contains("40 of 50 with 2"), "{}", c.reason);
    assert!(c.reason.contains("`mov %rdx,0x8(%rax)`"), "{}", c.reason);
    // A lossy race that did not race (review 31: dropped without a word) is named.
    let mut one_counted = racy.clone();
    one_counted[1].overlap = Some(Overlap {
        moving: 21,
        together: 2,
    });
    let c = judge_racer(None, RacerKind::Racy, &one_counted, Ok(&plain));
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!(
        c.reason
            .contains("50 lost with 2 not counted: in the race of 2 participants"),
        "{}",
        c.reason
    );
    let c = judge_racer(None, RacerKind::Atomic, &racy, Ok(&locks));
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(
        c.reason,
        "lost 50 updates with 2 participants: total is not incremented atomically"
    );
    let c = judge_racer(None, RacerKind::Atomic, &atomic, Ok(&locks));
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    let c = judge_racer(None, RacerKind::Atomic, &atomic, Ok(&[]));
    assert_eq!(c.verdict, Verdict::Fail);
    let c = judge_racer(None, RacerKind::Racy, &atomic, Ok(&locks));
    assert!(
        c.reason.starts_with("lost no update with 2 or 3"),
        "{}",
        c.reason
    );
    let c = judge_racer(None, RacerKind::Atomic, &atomic, Err("no objdump"));
    assert_eq!(c.verdict, Verdict::NotTested);
    let c = judge_racer(None, RacerKind::Racy, &racy, Err("no objdump"));
    assert_eq!(c.verdict, Verdict::NotTested);
    let skeleton = [race(1, 0, vec![0])];
    let c = judge_racer(None, RacerKind::Racy, &skeleton, Ok(&[]));
    assert_eq!(
        c.reason,
        "total stayed 0 with 1 participant: the race loop never increments total"
    );
    assert!(c
        .evidence
        .iter()
        .any(|e| e.starts_with("1 participant: finished; total 0")));
}

/// Review 30's cheats: what was measured decides, not a pattern the code can plant.
#[test]
fn racers_that_did_not_race_or_faked_their_losses_fail_with_the_true_cause() {
    let locks = locked_instructions(LOCKED, &|_| false);
    // A2: every instance but the leader returns at the start; the leader counts alone.
    let alone = [
        race(1, 100, vec![100]),
        race(2, 100, vec![0, 100]),
        race(3, 100, vec![0, 0, 100]),
    ];
    let c = judge_racer(None, RacerKind::Atomic, &alone, Ok(&locks));
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason.starts_with(
            "lost no update, but in the race of 2 participants, 1 participant made no increment \
             (winnings by id: [0, 100])"
        ),
        "{}",
        c.reason
    );
    // Instances that hand the counter on instead of racing.
    let mut turns = [race(1, 100, vec![100]), race(2, 100, vec![50, 50])];
    turns[1].overlap = Some(Overlap {
        moving: 60,
        together: 1,
    });
    let c = judge_racer(None, RacerKind::Atomic, &turns, Ok(&locks));
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason.contains("took turns instead of racing"),
        "{}",
        c.reason
    );
    // A2 static: the only lock is libc's.
    let atomic = [race(1, 100, vec![100]), race(2, 100, vec![60, 40])];
    let lib = locked_instructions(STATIC, &|f| f == "__vfprintf_internal");
    let c = judge_racer(None, RacerKind::Atomic, &atomic, Ok(&lib));
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason
            .contains("the 1 locked instructions it carries are the C library's"),
        "{}",
        c.reason
    );
    // A3: lock incq on total, the winnings over-counted.
    let faked = [race(1, 100, vec![100]), race(2, 100, vec![60, 41])];
    let c = judge_racer(None, RacerKind::Racy, &faked, Ok(&locks));
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason
            .contains("its loop increments total with `lock incq 0x8(%rax)`"),
        "{}",
        c.reason
    );
    // Review 31: A3 plus a plain store of a constant to total in the same loop (one that never
    // runs): the constant store is no increment, and a locked one on total fails a racy racer.
    let listing = "\
0000000000001040 <main>:
    10b0:\tlock incq 0x8(%rax)
    10b5:\tcmpq   $0x0,0x8(%rax)
    10ba:\tjns    10c4 <main+0x84>
    10bc:\tmovq   $0x0,0x8(%rax)
    10c4:\tcmpq   $0x98967f,0x8(%rax)
    10cc:\tjle    10b0 <main+0x70>
    10ce:\tret
";
    let code = locked_instructions(listing, &|_| false);
    assert!(!code.iter().any(|i| i.races_total()), "{code:?}");
    let c = judge_racer(None, RacerKind::Racy, &faked, Ok(&code));
    assert_eq!(c.verdict, Verdict::Fail, "{}", c.reason);
    assert!(
        c.reason.contains("with `lock incq 0x8(%rax)`"),
        "{}",
        c.reason
    );
    // C3: an xchg spin lock, named as such.
    let spin = locked_instructions(SPIN, &|_| false);
    let c = judge_racer(None, RacerKind::Atomic, &atomic, Ok(&spin));
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason
            .contains("but by a spin lock (`xchg %edx,(%rbx)` in a loop of main)"),
        "{}",
        c.reason
    );
}

#[test]
fn numbers_read_with_thousands_separators() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(1083), "1,083");
    assert_eq!(thousands(114_340), "114,340");
    assert_eq!(thousands(1_000_000), "1,000,000");
}

#[test]
fn a_reader_printing_none_of_the_values_is_counted_whole() {
    let t = reader_trace(428, 0);
    let mut run = reader_run(3, 100, "7\n8\n9\n10\n", &t);
    run.values = vec![1, 2, 3];
    let c = judge_reader(None, &[run]);
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(
        c.reason,
        "printed 4 values for a table of count 3 (value[0] is 1, it printed something else there)"
    );
}

#[test]
fn winnings_short_of_total_fail_both_racers() {
    let races = [race(1, 100, vec![100]), race(2, 100, vec![40, 40])];
    for kind in [RacerKind::Racy, RacerKind::Atomic] {
        let c = judge_racer(None, kind, &races, Ok(&[]));
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(
            c.reason
                .starts_with("the winnings of the race of 2 participants add up to 20 less"),
            "{}",
            c.reason
        );
    }
}

const PROBE_TRACE: &str = "\
9 brk(NULL) = 0x555555559000
9 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7fb0000
9 brk(0x55555557a000) = 0x55555557a000
9 mmap(NULL, 266240, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7d9e000
9 +++ exited with 0 +++
";

fn probe(stdout: &str) -> ProbeRun {
    ProbeRun {
        stdout: stdout.into(),
        trace: parse_trace(PROBE_TRACE),
        ending: Ending::Exited { code: 0 },
        outside_writes: Vec::new(),
        returns: None,
        pad: 0,
        pad_pages: 0,
        unrecorded: None,
    }
}

#[test]
fn a_probe_is_judged_against_the_mmaps_strace_saw() {
    let ok = "malloc(16) = 0x5555555592a0, tag 21\nmalloc(262144) = 0x7ffff7d9e010, tag 41002\n";
    let c = judge_probe(None, &probe(ok));
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!(
        c.reason.contains("(first: 0x41002 for 266,240 bytes)"),
        "{}",
        c.reason
    );
    let wrong = "malloc(16) = 0x5555555592a0, tag 21\nmalloc(262144) = 0x7ffff7d9e010, tag 0\n";
    let c = judge_probe(None, &probe(wrong));
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason.contains("does not hold its tag 0x41002"),
        "{}",
        c.reason
    );
    let small = "malloc(16) = 0x5555555592a0, tag 21\n";
    let c = judge_probe(None, &probe(small));
    assert!(c.reason.contains("none from mmap"), "{}", c.reason);
    let c = judge_probe(None, &probe("hello\n"));
    assert!(c.reason.starts_with("printed no address"), "{}", c.reason);
}

/// Review 30's A4 (a hand-made mmap, a hard-coded heap tag) against malloc's recorded returns,
/// and C2 (a static or non-PIE probe's heap below 4 GiB).
#[test]
fn a_probe_is_judged_against_what_malloc_returned() {
    let returns = |list: &[(u64, u64)]| {
        Some(
            list.iter()
                .map(|&(address, tag)| MallocReturn { address, tag })
                .collect::<Vec<_>>(),
        )
    };
    let ok = "malloc(16) = 0x5555555592a0, tag 61\nmalloc(262144) = 0x7ffff7d9e010, tag 41002\n";
    let mut run = probe(ok);
    run.pad = 64;
    run.returns = returns(&[(0x5555555592a0, 0x61), (0x7ffff7d9e010, 0x41002)]);
    let c = judge_probe(None, &run);
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!(
        c.reason.contains("each tag is the one malloc wrote"),
        "{}",
        c.reason
    );
    // The mmap was the probe's own: malloc never returned that pointer.
    run.returns = returns(&[(0x5555555592a0, 0x61)]);
    let c = judge_probe(None, &run);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason.starts_with(
            "the mmapped chunk 0x7ffff7d9e010 was never returned by malloc: the mmap of 266,240"
        ),
        "{}",
        c.reason
    );
    // 0x21 printed whatever malloc wrote (its request padded to a 0x60-byte chunk).
    let hard = "malloc(16) = 0x5555555592a0, tag 21\nmalloc(262144) = 0x7ffff7d9e010, tag 41002\n";
    let mut run = probe(hard);
    run.pad = 64;
    run.returns = returns(&[(0x5555555592a0, 0x61), (0x7ffff7d9e010, 0x41002)]);
    let c = judge_probe(None, &run);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason
            .starts_with("the line of the heap chunk 0x5555555592a0 does not hold the size malloc wrote before it (0x60"),
        "{}",
        c.reason
    );
    // A static / non-PIE program: its heap lies below 4 GiB.
    let trace = PROBE_TRACE
        .replace("0x555555559000", "0x5814000")
        .replace("0x55555557a000", "0x5835000");
    let run = ProbeRun {
        trace: parse_trace(&trace),
        ..probe("malloc(24) = 0x58146d0 tag 0x21\nmalloc(262144) = 0x7ffff7d9e010, tag 0x41002\n")
    };
    let c = judge_probe(None, &run);
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!(
        c.reason
            .starts_with("printed 1 heap chunk and 1 mmapped chunk"),
        "{}",
        c.reason
    );
}

/// Review 31: a line that prints every plausible tag beside a pointer credits none of them, while
/// the course's formats (tag with or without 0x, `%#lx`, a decimal request size before the
/// pointer, words around them) still give one tag.
#[test]
fn a_chunk_line_gives_one_tag_not_every_candidate() {
    let returns = vec![
        MallocReturn {
            address: 0x5555555592a0,
            tag: 0x61,
        },
        MallocReturn {
            address: 0x7ffff7d9e010,
            tag: 0x41002,
        },
    ];
    let recorded = |stdout: &str| ProbeRun {
        pad: 64,
        returns: Some(returns.clone()),
        ..probe(stdout)
    };
    for ok in [
        "0x5555555592a0 61\n0x7ffff7d9e010 41002\n",
        "malloc(16) = 0x5555555592a0, tag 0x61\nmalloc(262144) = 0x7ffff7d9e010, tag 0x41002\n",
        "malloc(16) = 0x5555555592a0 tag=61\nmalloc(262144) = 0x7ffff7d9e010 tag=41002 (mmapped)\n",
        "0x5555555592a0 (chunk 0x555555559290) 61\n0x7ffff7d9e010 (0x7ffff7d9e010) 0x41002\n",
    ] {
        let c = judge_probe(None, &recorded(ok));
        assert_eq!(c.verdict, Verdict::Pass, "{ok}: {c:?}");
    }
    let every: String = (0x21..0x2000u64)
        .step_by(0x10)
        .map(|t| format!(" {t:#x}"))
        .collect();
    let cheat = format!(
        "malloc(16) = 0x5555555592a0, tag{every}\nmalloc(262144) = 0x7ffff7d9e010, tag 0x41002\n"
    );
    let c = judge_probe(None, &recorded(&cheat));
    assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
    assert!(
        c.reason.starts_with(
            "line 1 prints 510 numbers besides the address 0x5555555592a0: which is the tag?"
        ),
        "{}",
        c.reason
    );
    // Two tags are already one too many, unrecorded too.
    let two =
        "malloc(16) = 0x5555555592a0, tag 21\nmalloc(262144) = 0x7ffff7d9e010, tag 41002 42002\n";
    let c = judge_probe(None, &probe(two));
    assert!(
        c.reason
            .starts_with("line 2 prints 2 numbers besides the address 0x7ffff7d9e010"),
        "{}",
        c.reason
    );
}

/// Review 31: the heap evidence names the size malloc wrote that the line printed, when the
/// address was returned more than once.
#[test]
fn a_reused_address_is_judged_by_the_tag_it_printed() {
    let mut run = probe(
        "malloc(16) = 0x5555555592a0, tag 0x61\nmalloc(262144) = 0x7ffff7d9e010, tag 0x41002\n",
    );
    run.pad = 64;
    run.returns = Some(
        [
            (0x5555555592a0, 0x31),
            (0x5555555592a0, 0x61),
            (0x7ffff7d9e010, 0x41002),
        ]
        .iter()
        .map(|&(address, tag)| MallocReturn { address, tag })
        .collect(),
    );
    let c = judge_probe(None, &run);
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!(
        c.evidence.iter().any(|e| e
            == "0x5555555592a0: heap chunk returned by malloc, which wrote size 0x60: printed"),
        "{:?}",
        c.evidence
    );
}

/// Review 31: a dynamically linked probe whose mallocs never reached the preloaded recorder is
/// not taken for a static one.
#[test]
fn a_dynamic_probe_that_dodged_the_recorder_does_not_pass() {
    let ok = "malloc(16) = 0x5555555592a0, tag 21\nmalloc(262144) = 0x7ffff7d9e010, tag 41002\n";
    let run = ProbeRun {
        unrecorded: Some(Unrecorded::NotReached),
        ..probe(ok)
    };
    let c = judge_probe(None, &run);
    assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
    assert!(
        c.reason.starts_with(
            "it is dynamically linked, but no malloc call reached the preloaded recorder: it \
             ran without LD_PRELOAD"
        ),
        "{}",
        c.reason
    );
    let run = ProbeRun {
        unrecorded: Some(Unrecorded::NotBuilt),
        ..probe(ok)
    };
    assert_eq!(judge_probe(None, &run).verdict, Verdict::NotTested);
    let c = judge_probe(None, &probe(ok));
    assert!(c.reason.ends_with("(a static binary)"), "{}", c.reason);
}

#[test]
fn a_reader_footer_passes_but_a_value_past_count_or_a_reversed_table_fails() {
    let t = reader_trace(428, 0);
    let footer = |text: &str| reader_run(5, 105, &format!("{}{text}", lines(5)), &t);
    let ok = [
        footer("total: 5 values\n"),
        footer("Done. 5 values printed from table.bin (428 bytes)\n"),
        reader_run(5, 105, &format!("count = 5\n{}total 5\n", lines(5)), &t),
    ];
    let c = judge_reader(None, &ok);
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!(c.evidence[0].contains("then a footer of 1 number"), "{c:?}");
    // One value too many, printed as the values are: invented, not a footer.
    let c = judge_reader(None, &[footer("5\n")]);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason
            .starts_with("printed 6 values for a table of count 5"),
        "{}",
        c.reason
    );
    // A footer of more than a few numbers is more than a summary.
    let c = judge_reader(None, &[footer("sums: 1 2 3 4 5\n")]);
    assert_eq!(c.verdict, Verdict::Fail);
    let reversed: String = (0..5).rev().map(|i| format!("{i}\n")).collect();
    let c = judge_reader(None, &[reader_run(5, 105, &reversed, &t)]);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.reason.starts_with(
            "printed 5 values but not in table order: in reverse (first: 4; value[0] is 0)"
        ),
        "{}",
        c.reason
    );
    let shuffled = "1\n0\n2\n3\n4\n";
    let c = judge_reader(None, &[reader_run(5, 105, shuffled, &t)]);
    assert!(
        c.reason
            .starts_with("printed 5 values but not in table order (first: 1;"),
        "{}",
        c.reason
    );
    let c = judge_reader(None, &[reader_run(1, 105, "0\n", &t)]);
    assert!(c.evidence[0].contains("printed 1 number (1 of"), "{c:?}");
}

#[test]
fn a_writer_that_grows_before_its_one_mapping_or_inside_a_window_passes() {
    let old: Vec<i32> = (0..1000).collect();
    let mut new = old.clone();
    new.extend(1000..1300);
    let grow_first = "\
7 openat(AT_FDCWD, \"table.bin\", O_RDWR) = 3
7 ftruncate(3, 5208) = 0
7 mmap(NULL, 5208, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = 0x7f0000000000
7 +++ exited with 0 +++
";
    let window = "\
7 openat(AT_FDCWD, \"table.bin\", O_RDWR) = 3
7 mmap(NULL, 1073741824, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = 0x7f0000000000
7 ftruncate(3, 5208) = 0
7 +++ exited with 0 +++
";
    for trace in [grow_first, window] {
        let r = writer_run(
            snapshot(1000, old.clone(), 1000),
            snapshot(1300, new.clone(), 1300),
            trace,
        );
        let ok = judge_writer_run(&r).unwrap();
        assert_eq!(ok.grew, Some((4008, 5208)));
        assert!(!ok.mremap);
    }
    // Mapped at the old size, grown, never mapped again: nothing reaches the new values.
    let naive = "\
7 openat(AT_FDCWD, \"table.bin\", O_RDWR) = 3
7 mmap(NULL, 4008, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = 0x7f0000000000
7 ftruncate(3, 9208) = 0
7 +++ exited with 0 +++
";
    let r = writer_run(snapshot(1000, old, 1000), snapshot(1300, new, 2300), naive);
    let why = judge_writer_run(&r).unwrap_err();
    assert!(
        why.starts_with(
            "the file grew to 9,208 bytes in run 3 from the course's shape but no \
                         mapping of the table reaches it (the largest reaches 4,096 bytes)"
        ),
        "{why}"
    );
}

#[test]
fn a_probe_line_with_flag_bits_or_the_tag_in_decimal_too_is_not_ambiguous() {
    // 0x41002 = 266,242: the same tag twice; 0 and 1: the in-use and mmapped bits.
    let twice = "0x5555555592a0: size=33 (0x21)\n0x7ffff7d9e010: size=266242 (0x41002)\n";
    let bits = "0x5555555592a0 tag=0x21 prev_inuse=1 is_mmapped=0\n\
                0x7ffff7d9e010 tag=0x41002 prev_inuse=0 is_mmapped=1\n";
    for out in [twice, bits] {
        let c = judge_probe(None, &probe(out));
        assert_eq!(c.verdict, Verdict::Pass, "{out}: {c:?}");
    }
    // Two different tags on one line still are.
    let two = "0x5555555592a0 tag=0x21 or 0x31\n0x7ffff7d9e010 tag=0x41002\n";
    let c = judge_probe(None, &probe(two));
    assert!(
        c.reason.starts_with("line 1 prints 2 numbers"),
        "{}",
        c.reason
    );
    // Only in decimal: failed, saying so.
    let decimal = "0x5555555592a0 size 33\n0x7ffff7d9e010 size 266242\n";
    let c = judge_probe(None, &probe(decimal));
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(
        c.reason,
        "the line of the mmapped chunk 0x7ffff7d9e010 prints 266242, its tag 0x41002 (mmap \
         length 266,240 | IS_MMAPPED) in decimal: print the tag in hex, with %lx"
    );
}
