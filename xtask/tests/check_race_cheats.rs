//! Review 30's cheats against `cargo xtask check DIR`: racers and probes that planted a pattern
//! instead of behaving. Each is judged on what the lab measured in the run (every participant's
//! share of the increments, two or more making them in the same interval between the lab's
//! reads; the pointers malloc returned, recorded by a preloaded recorder, with padded requests),
//! and fails with the true cause; a genuine probe built `-static` or `-no-pie` still passes.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::verdict;
use serde_json::Value;

fn can_build() -> bool {
    common::tools_present(
        "check_race_cheats",
        &[common::CC, common::MAKE, common::STRACE, common::OBJDUMP],
    )
}

/// `cc FLAGS -o DIR/out DIR/src` (the Makefile's TARGET); whether it built.
fn cc(dir: &Path, flags: &[&str], src: &str, out: &str) -> bool {
    Command::new("cc")
        .args(flags)
        .args(["-O2", "-DTARGET=50000000L", "-o"])
        .arg(dir.join(out))
        .arg(dir.join(src))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `xtask check DIR --json ARGS`: each check's (verdict, reason) by id.
fn check(dir: &Path, args: &[&str]) -> Value {
    common::check_json(None, dir, args)
}

fn check_in(tmp: Option<&Path>, dir: &Path, args: &[&str]) -> Value {
    common::check_json(tmp, dir, args)
}

#[test]
fn racers_and_a_probe_that_planted_a_pattern_fail_with_the_true_cause() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[
        ("racer_dead_lock", "racer_atomic"),
        ("racer_faked_losses", "racer"),
        ("probe_handmade_mmap", "probe"),
    ]);
    let doc = check(sub.path(), &[]);
    // A2: the leader counted alone; the lock incq of never_called() never ran.
    let (v, why) = verdict(&doc, "step5.atomic-racer");
    assert_eq!(v, "fail", "{why}");
    assert!(
        why.contains("1 participant made no increment (winnings by id: [0, 50,000,000])"),
        "{why}"
    );
    // A3: lock incq on total, the losses counted in the winnings only.
    let (v, why) = verdict(&doc, "step5.racer");
    assert_eq!(v, "fail", "{why}");
    assert!(
        why.contains("but its loop increments total with `lock incq"),
        "{why}"
    );
    // A4: the mmapped chunk was the probe's own mmap.
    let (v, why) = verdict(&doc, "step1.probe");
    assert_eq!(v, "fail", "{why}");
    assert!(why.contains("was never returned by malloc"), "{why}");
}

#[test]
fn a_spin_lock_is_named_and_a_genuine_probe_passes_with_its_tags_read() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[("racer_spinlock", "racer_atomic"), ("probe_ok", "probe")]);
    let doc = check(sub.path(), &[]);
    let (v, why) = verdict(&doc, "step5.atomic-racer");
    assert_eq!(v, "fail", "{why}");
    assert!(
        why.starts_with("lost no update (") && why.contains("but by a spin lock (`xchg"),
        "{why}"
    );
    let (v, why) = verdict(&doc, "step1.probe");
    assert_eq!(v, "pass", "{why}");
    assert!(
        why.contains("every chunk was returned by malloc and each tag is the one malloc wrote"),
        "{why}"
    );
    // malloc's pointers, with the usual tags typed in: the padded requests changed them.
    let sub = common::submission(&[("probe_hardcoded_tags", "probe")]);
    let doc = check(sub.path(), &[]);
    let (v, why) = verdict(&doc, "step1.probe");
    assert_eq!(v, "fail", "{why}");
    assert!(
        why.contains("does not hold its tag") && why.contains("padded by"),
        "{why}"
    );
}

/// A genuine racy racer that increments total through a pointer to it (`mov %rdx,(%rax)` at
/// -O0, not total's offset 0x8(%reg)) and locks nothing passes: its losses are a race's.
#[test]
fn a_racy_racer_counting_through_a_pointer_to_total_passes() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[("racer_pointer", "racer")]);
    let doc = check(sub.path(), &[]);
    let (v, why) = verdict(&doc, "step5.racer");
    assert_eq!(v, "pass", "{why}");
    assert!(
        why.contains("writes through a pointer without a lock (`mov %rdx,(%rax)`)"),
        "{why}"
    );
}

#[test]
fn static_and_non_pie_builds_are_judged_on_their_own_code() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[
        ("racer_dead_lock", "racer_dead_lock"),
        ("racer_racy", "racer_racy"),
        ("probe_ok", "probe_ok"),
    ]);
    let d = sub.path();
    if !cc(d, &["-static"], "racer_dead_lock.c", "racer_static")
        || !cc(d, &["-static"], "probe_ok.c", "probe_static")
    {
        common::skip(
            "static_and_non_pie_builds_are_judged_on_their_own_code",
            "cc -static cannot link here (no libc.a: apt-get install libc6-dev)",
        );
        return;
    }
    assert!(cc(d, &["-no-pie"], "probe_ok.c", "probe_nopie"));
    assert!(cc(d, &["-static"], "racer_racy.c", "racy_static"));
    // A2 static: glibc's stdio lock (`lock cmpxchg` in __vfprintf_internal) is not its own.
    let doc = check(
        d,
        &[
            "--atomic-racer",
            "racer_static",
            "--probe",
            "probe_static",
            "--racer",
            "racy_static",
        ],
    );
    let (v, why) = verdict(&doc, "step5.atomic-racer");
    assert_eq!(v, "fail", "{why}");
    assert!(why.contains("made no increment"), "{why}");
    // Its own main is still its own in a static binary (libc's and libgcc's code is not).
    let (v, why) = verdict(&doc, "step5.racer");
    assert_eq!(v, "pass", "{why}");
    assert!(why.contains("writes total without a lock (`mov"), "{why}");
    // C2: a static probe's heap lies below 4 GiB; LD_PRELOAD cannot record its mallocs.
    let (v, why) = verdict(&doc, "step1.probe");
    assert_eq!(v, "pass", "{why}");
    assert!(why.contains("malloc's returns were not recorded"), "{why}");
    let doc = check(d, &["--probe", "probe_nopie"]);
    let (v, why) = verdict(&doc, "step1.probe");
    assert_eq!(v, "pass", "{why}");
    assert!(why.contains("each tag is the one malloc wrote"), "{why}");
}

/// `run-step 5 --racer` on the A2 racer: no cause sentence it did not measure, and no
/// per-increment figure from a participant that made no increment (it was 0.03 ns).
#[test]
fn run_step_5_does_not_explain_or_time_a_race_no_one_else_ran() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[("racer_dead_lock", "racer_dead_lock")]);
    assert!(cc(sub.path(), &[], "racer_dead_lock.c", "dead"));
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run-step", "5", "--quick", "--json", "--racer"])
        .arg(sub.path().join("dead"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &doc["findings"];
    assert_eq!(f["racer"]["check"]["verdict"], "fail", "{}", f["racer"]);
    assert!(
        text.contains("so there was no race to lose an update in"),
        "{text}"
    );
    assert!(
        !text.contains("no update was lost: its loop increments"),
        "{text}"
    );
    assert!(!text.contains("increments total with `lock"), "{text}");
    for r in f["races"].as_array().unwrap() {
        let idle = r["winnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_i64() == Some(0));
        if idle {
            assert!(r["ns_per_increment"].is_null(), "{r}");
        }
    }
    for t in f["runtime"].as_array().unwrap() {
        assert!(t["ns_per_made"].is_null(), "{t}");
    }
}

/// Review 31: a probe listing every plausible tag on each line, a dynamic probe that re-executed
/// itself without the recorder, a scratch path with a space and a colon (which ld.so would split
/// LD_PRELOAD at), and a probe whose heap chunks come from valloc/pvalloc.
#[test]
fn a_probe_is_credited_only_for_one_tag_read_under_the_recorder() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[
        ("probe_every_tag", "probe_every_tag"),
        ("probe_reexec", "probe_reexec"),
        ("probe_hardcoded_tags", "probe_hardcoded_tags"),
        ("probe_ok", "probe_ok"),
        ("probe_valloc", "probe_valloc"),
    ]);
    let d = sub.path();
    for p in [
        "probe_every_tag",
        "probe_reexec",
        "probe_hardcoded_tags",
        "probe_ok",
        "probe_valloc",
    ] {
        assert!(cc(d, &[], &format!("{p}.c"), p), "{p}.c did not build");
    }
    let probe = |tmp: Option<&Path>, name: &str| {
        verdict(&check_in(tmp, d, &["--probe", name]), "step1.probe")
    };
    let (v, why) = probe(None, "probe_every_tag");
    assert_eq!(v, "fail", "{why}");
    assert!(
        why.starts_with("line 1 prints 510 numbers besides the address 0x")
            && why.contains("which is the tag?"),
        "{why}"
    );
    let (v, why) = probe(None, "probe_reexec");
    assert_eq!(v, "fail", "{why}");
    assert!(
        why.starts_with(
            "it is dynamically linked, but no malloc call reached the preloaded recorder: it \
             ran without LD_PRELOAD"
        ),
        "{why}"
    );
    let (v, why) = probe(None, "probe_valloc");
    assert_eq!(v, "pass", "{why}");
    assert!(why.contains("each tag is the one malloc wrote"), "{why}");
    let tmp = tempfile::Builder::new()
        .prefix("xtask check: a TMPDIR with spaces ")
        .tempdir()
        .unwrap();
    let (v, why) = probe(Some(tmp.path()), "probe_ok");
    assert_eq!(v, "pass", "{why}");
    assert!(why.contains("each tag is the one malloc wrote"), "{why}");
    let (v, why) = probe(Some(tmp.path()), "probe_hardcoded_tags");
    assert_eq!(v, "fail", "{why}");
    assert!(why.contains("does not hold its tag"), "{why}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the check left files in its TMPDIR"
    );
}

/// A genuine probe that grows one buffer with realloc: past the threshold glibc moves the
/// chunk into a mapping of its own and then grows it with mremap. Each chunk mremap made is an
/// mmapped chunk like the first (the check used to skip them: 1 mmapped chunk instead of 6).
#[test]
fn a_probe_growing_its_chunk_with_realloc_is_credited_for_every_remapped_chunk() {
    if !can_build() {
        return;
    }
    let sub = common::submission(&[("probe_realloc", "probe")]);
    let d = sub.path();
    assert!(cc(d, &[], "probe.c", "probe"));
    let (v, why) = verdict(&check(d, &["--probe", "probe"]), "step1.probe");
    assert_eq!(v, "pass", "{why}");
    assert!(
        why.starts_with("printed 13 heap chunks and 6 mmapped chunks;"),
        "{why}"
    );
}
