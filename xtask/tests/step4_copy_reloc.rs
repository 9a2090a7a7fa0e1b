//! `run-step 4 --foo PATH --bar PATH` on C programs that name `baz` directly, built the course's
//! way (`gcc -g -shared -fPIC foobar.c -o foobar.so`, `gcc -g foo.c foobar.so -o foo`, PIE by
//! default, and `-no-pie`): the linker gives such a program an `R_X86_64_COPY` of baz, which
//! puts baz in the program's own .dynsym and .bss. The library is still foobar.so, loaded by
//! ld.so; baz lives in each program's own data. And programs that crash or return early: one
//! `error:` line naming the program, how far it got and how it ended.
//! The C sources are in tests/step4_programs. Needs `cc`, `strace` and `readelf`: without them
//! (outside CI) each test says it skipped.

// foo, bar and baz are the assignment's names, not placeholders.
#![allow(clippy::disallowed_names)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PROGRAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/step4_programs");

fn tools_present(test: &str) -> bool {
    common::tools_present(test, &[common::CC, common::STRACE, common::READELF])
}

/// Builds foobar.so and each `(source, extra cc flags, output)` in a fresh directory, the
/// course's way.
fn build(programs: &[(&str, &[&str], &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("xtask-step4-copy-")
        .tempdir()
        .unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    for entry in std::fs::read_dir(PROGRAMS).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let cc = |args: &[&str]| common::cc(&dir, args);
    cc(&["-g", "-shared", "-fPIC", "foobar.c", "-o", "foobar.so"]);
    for (source, flags, output) in programs {
        let mut args = vec!["-g"];
        args.extend_from_slice(flags);
        args.extend([*source, "foobar.so", "-o", *output]);
        cc(&args);
    }
    (tmp, dir)
}

/// `run-step 4 --quick` with `--foo ./FOO --bar ./BAR` from `dir`, plus `extra` arguments.
fn run_step4(dir: &Path, foo: &str, bar: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run-step", "4", "--quick", "--foo", foo, "--bar", bar])
        .args(extra)
        .env("CARGO", env!("CARGO"))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The type readelf gives `file`'s dynamic relocation against baz (`R_X86_64_COPY`), if any.
fn readelf_baz_relocation(file: &Path) -> Option<String> {
    let out = Command::new("readelf")
        .arg("-rW")
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            // Offset, Info, Type, Symbol's value, Symbol's name (+ addend).
            (words.len() >= 5 && words[4] == "baz").then(|| words[2].to_string())
        })
}

fn is_root() -> bool {
    rustix::process::geteuid().as_raw() == 0
}

/// The findings of a run that must succeed, and its saved evidence.
fn findings(dir: &Path, foo: &str, bar: &str) -> (serde_json::Value, serde_json::Value) {
    let saved = dir.join(format!("evidence-{foo}-{bar}").replace("./", ""));
    let out = run_step4(
        dir,
        foo,
        bar,
        &["--json", "--save-evidence", saved.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(
        common::left_running(dir).is_empty(),
        "{:?}",
        common::left_running(dir)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(saved.join("step4.json")).unwrap()).unwrap();
    (report["findings"].clone(), evidence["evidence"].clone())
}

/// Asserts what both runs share: the library is foobar.so, loaded by ld.so (mmaps), its own
/// relocation against baz is what readelf says, the code is one copy (root), baz is private.
fn assert_library_loaded(f: &serde_json::Value, dir: &Path) {
    let lib = dir.join("foobar.so");
    let lib_reloc = readelf_baz_relocation(&lib);
    assert_eq!(lib_reloc.as_deref(), Some("R_X86_64_GLOB_DAT"));
    for p in f["programs"].as_array().unwrap() {
        assert_eq!(p["library"], lib.to_str().unwrap(), "{p}");
        assert!(p["mmaps"].as_u64().unwrap() >= 4, "{p}");
        assert!(p["not_loaded"].is_null(), "{p}");
        assert_eq!(p["library_baz_relocation"], lib_reloc.as_deref().unwrap());
        let path = Path::new(p["path"].as_str().unwrap());
        assert_eq!(
            p["baz_relocation"].as_str(),
            readelf_baz_relocation(path).as_deref(),
            "{p}"
        );
    }
    // Frame numbers need CAP_SYS_ADMIN: as root they prove the sharing, otherwise unknown.
    if is_root() {
        assert_eq!(f["code_shared"], true, "{f}");
        assert_eq!(f["baz_private"], true, "{f}");
    } else {
        assert!(
            f["code_shared"].is_null() && f["baz_private"].is_null(),
            "{f}"
        );
    }
}

/// The address a program printed for baz (`baz at 0x… is N`, line-buffered).
fn printed_baz_address(ev: &serde_json::Value, i: usize) -> String {
    let stdout = ev["programs"][i]["printed"]["stdout"].as_str().unwrap();
    let line = stdout
        .lines()
        .next()
        .unwrap_or_else(|| panic!("{stdout:?}"));
    line.split_whitespace().nth(2).unwrap().to_string()
}

fn values(f: &serde_json::Value, i: usize) -> Vec<i64> {
    f["programs"][i]["baz_values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

/// Review (step 4 with programs that name baz): the executable's COPY of baz made the lab take
/// foo itself for the library ("mmaps": 0, code NOT shared). Now the library is foobar.so and
/// baz is read where each program keeps it: its own .bss (the address it prints itself).
#[test]
fn programs_naming_baz_directly_keep_baz_in_their_own_data() {
    if !tools_present("programs_naming_baz_directly_keep_baz_in_their_own_data") {
        return;
    }
    let (_tmp, dir) = build(&[
        ("foo_direct.c", &[], "foo"),
        ("bar_direct.c", &[], "bar"),
        ("foo_direct.c", &["-no-pie"], "foo_nopie"),
        ("bar_direct.c", &["-no-pie"], "bar_nopie"),
        ("foo_bazaddr.c", &[], "foo_bazaddr"),
    ]);
    for (foo, bar) in [("./foo", "./bar"), ("./foo_nopie", "./bar_nopie")] {
        let (f, ev) = findings(&dir, foo, bar);
        assert_library_loaded(&f, &dir);
        for (i, program) in [foo, bar].iter().enumerate() {
            let p = &f["programs"][i];
            assert_eq!(p["baz_relocation"], "R_X86_64_COPY", "{p}");
            let home = &p["baz_home"];
            assert_eq!(home["in_program"], true, "{p}");
            assert_eq!(
                home["object"],
                dir.join(program.trim_start_matches("./")).to_str().unwrap()
            );
            assert!(home["got_slot"].is_string(), "{p}");
            // Where the lab read baz is where the program itself says baz is.
            assert_eq!(home["address"], printed_baz_address(&ev, i), "{p}");
        }
        assert!(values(&f, 0).len() >= 3 && values(&f, 0).iter().all(|&v| v == 17));
        let bar_values = values(&f, 1);
        assert!(bar_values.windows(2).all(|w| w[1] >= w[0]) && bar_values[0] <= 1);
        assert!(bar_values.last() > bar_values.first(), "{bar_values:?}");
    }

    // The course's foo (bazaddr(), no relocation against baz) beside a bar with a COPY: foo
    // uses the library's baz, bar its own; still two variables.
    let (f, ev) = findings(&dir, "./foo_bazaddr", "./bar_nopie");
    assert_library_loaded(&f, &dir);
    let (foo, bar) = (&f["programs"][0], &f["programs"][1]);
    assert!(foo["baz_relocation"].is_null(), "{foo}");
    assert_eq!(foo["baz_home"]["in_program"], false, "{foo}");
    assert_eq!(
        foo["baz_home"]["object"],
        dir.join("foobar.so").to_str().unwrap()
    );
    assert_eq!(foo["baz_home"]["address"], foo["symbols"]["baz"]["address"]);
    assert_eq!(foo["baz_home"]["address"], printed_baz_address(&ev, 0));
    assert_eq!(bar["baz_home"]["in_program"], true, "{bar}");
    assert_eq!(bar["baz_home"]["address"], printed_baz_address(&ev, 1));
    assert!(values(&f, 0).iter().all(|&v| v == 17));
}

/// One `error:` line that names the program, its path, what it had loaded and how it ended
/// (`common::one_error_line`: exit status 1, no panic, nothing left running).
fn assert_ended_error(out: &Output, dir: &Path, program: &str, says: &[&str]) {
    let line = common::one_error_line(out, dir);
    let path = dir.join(program);
    // With its pid when the lab had found its process before it ended.
    assert!(
        line.starts_with(&format!("error: foo ({}", path.display())),
        "{line}"
    );
    let loaded = format!("having loaded {}", dir.join("foobar.so").display());
    for s in says.iter().copied().chain([loaded.as_str()]) {
        assert!(line.contains(s), "{line:?} lacks {s:?}");
    }
    assert!(!line.contains("No such file"), "{line}");
}

/// Review (step 4 with a foo that crashes): a foo that crashed right after setbaz(17) was said
/// to end "before loading a library that exports baz", and one that crashed after 0.3 s gave
/// "cannot read /proc/NNN/maps". Now: the program, what it loaded, the signal or exit status.
#[test]
fn a_foo_that_crashes_or_returns_is_named_with_how_it_ended() {
    if !tools_present("a_foo_that_crashes_or_returns_is_named_with_how_it_ended") {
        return;
    }
    let (_tmp, dir) = build(&[
        ("crash_at_once.c", &[], "crash_at_once"),
        ("crash_later.c", &[], "crash_later"),
        ("exit_later.c", &[], "exit_later"),
        ("bar_direct.c", &[], "bar"),
    ]);
    let out = run_step4(&dir, "./crash_at_once", "./bar", &[]);
    assert_ended_error(&out, &dir, "crash_at_once", &["was killed by SIGSEGV"]);
    // It ran its loop for 0.3 s: the lab was reading its /proc files when it died.
    let out = run_step4(&dir, "./crash_later", "./bar", &[]);
    assert_ended_error(
        &out,
        &dir,
        "crash_later",
        &[
            "was killed by SIGSEGV",
            "while the lab was reading its /proc files",
        ],
    );
    let out = run_step4(&dir, "./exit_later", "./bar", &["--json"]);
    assert_ended_error(&out, &dir, "exit_later", &["exited with status 3"]);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
