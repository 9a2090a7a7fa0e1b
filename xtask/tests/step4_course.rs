//! `cargo xtask run-step 4 --foo PATH --bar PATH` on C programs built the course's way
//! (`gcc -g -shared -fPIC foobar.c -o foobar.so`, `gcc -g foo.c foobar.so -o foo`: DT_NEEDED
//! foobar.so, no SONAME, no RUNPATH), what each of the library's mappings holds (its own section
//! headers, one for one with `readelf -lW`'s section-to-segment mapping), and its failure paths.
//! Needs `cc`, `strace` and `readelf`: without them (outside CI) each test says it skipped.

mod common;

use std::path::Path;
use std::process::{Command, Output};

const FOOBAR_H: &str = "int getbaz();\nint setbaz(int newbaz);\nint* bazaddr();\n";
const FOOBAR_C: &str = "#include \"foobar.h\"\nint baz;\n\
    int getbaz() { return baz; }\n\
    int setbaz(int newbaz) { baz = newbaz; return baz; }\n\
    int* bazaddr() { return &baz; }\n";
const FOO_C: &str = "#include <stdio.h>\n#include <unistd.h>\n#include \"foobar.h\"\n\
    int main() {\n    setbaz(17);\n    while (1) {\n\
    printf(\"baz at %p is %d\\n\", (void *)bazaddr(), getbaz());\n        sleep(1);\n    }\n}\n";
const BAR_C: &str = "#include <stdio.h>\n#include <unistd.h>\n#include \"foobar.h\"\n\
    int main() {\n    for (int i = 0;; i++) {\n        setbaz(i);\n\
    printf(\"baz at %p is %d\\n\", (void *)bazaddr(), getbaz());\n        sleep(1);\n    }\n}\n";
/// Sleeps forever and loads no library that exports baz.
const IDLE_C: &str = "#include <unistd.h>\nint main() { for (;;) pause(); }\n";

/// Whether cc, strace and readelf are here; outside CI a missing one skips the test with a notice.
fn tools_present(test: &str) -> bool {
    common::tools_present(test, &[common::CC, common::STRACE, common::READELF])
}

/// The course's files, built as the course builds them.
fn build_course(dir: &Path) {
    for (name, text) in [
        ("foobar.h", FOOBAR_H),
        ("foobar.c", FOOBAR_C),
        ("foo.c", FOO_C),
        ("bar.c", BAR_C),
        ("idle.c", IDLE_C),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    common::cc(
        dir,
        &["-g", "-shared", "-fPIC", "foobar.c", "-o", "foobar.so"],
    );
    common::cc(dir, &["-g", "foo.c", "foobar.so", "-o", "foo"]);
    common::cc(dir, &["-g", "bar.c", "foobar.so", "-o", "bar"]);
    common::cc(dir, &["-g", "idle.c", "-o", "idle"]);
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("CARGO", env!("CARGO"))
        .output()
        .unwrap()
}

fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("xtask-step4-course-")
        .tempdir()
        .unwrap();
    dir
}

#[test]
fn explains_the_courses_foo_and_bar() {
    if !tools_present("explains_the_courses_foo_and_bar") {
        return;
    }
    let tmp = tempdir();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    build_course(&dir);
    let (foo, bar) = (dir.join("foo"), dir.join("bar"));
    let out = xtask(&[
        "run-step",
        "4",
        "--quick",
        "--json",
        "--foo",
        foo.to_str().unwrap(),
        "--bar",
        bar.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &report["findings"];
    let lib = dir.join("foobar.so");
    for (i, name) in ["foo", "bar"].iter().enumerate() {
        let p = &f["programs"][i];
        assert_eq!(p["name"], *name);
        assert_eq!(p["library"], lib.to_str().unwrap());
        assert_eq!(p["needed_as"], "foobar.so");
        assert_eq!(p["ld_library_path"], dir.to_str().unwrap());
        assert!(p["mmaps"].as_u64().unwrap() >= 4);
        assert_eq!(p["symbols"]["baz"]["prot"], "PROT_READ|PROT_WRITE");
        assert_eq!(p["symbols"]["setbaz"]["prot"], "PROT_READ|PROT_EXEC");
        assert_eq!(p["symbols"]["getbaz"]["prot"], "PROT_READ|PROT_EXEC");
    }
    // baz from each process's memory: foo set 17, bar counts from 0 once a second.
    let values = |i: usize| -> Vec<i64> {
        f["programs"][i]["baz_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    };
    assert!(values(0).len() >= 3 && values(0).iter().all(|&v| v == 17));
    let bar_values = values(1);
    assert!(bar_values.len() >= 3);
    assert!(bar_values.windows(2).all(|w| w[1] >= w[0]) && bar_values[0] <= 1);
    assert!(bar_values.last() > bar_values.first());
    // Frame numbers need CAP_SYS_ADMIN: as root they prove the sharing, otherwise unknown.
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if root {
        assert_eq!(f["code_shared"], true);
        assert_eq!(f["baz_private"], true);
    } else {
        assert!(f["code_shared"].is_null() && f["baz_private"].is_null());
    }
    assert_eq!(f["client"]["outcome"], "ran");
    assert_eq!(f["client"]["relocation"], "R_X86_64_COPY");
    assert_eq!(report["step"], 4);
    assert!(
        common::left_running(&dir).is_empty(),
        "{:?}",
        common::left_running(&dir)
    );
}

/// One `error: …` line at the end of stderr, exit status 1, nothing left running.
fn assert_fails(out: &Output, dir: &Path, says: &str) {
    let line = common::one_error_line(out, dir);
    assert!(line.contains(says), "{line:?} lacks {says:?}");
}

#[test]
fn programs_without_the_library_are_clear_errors() {
    if !tools_present("programs_without_the_library_are_clear_errors") {
        return;
    }
    let tmp = tempdir();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    build_course(&dir);
    let (foo, bar, idle) = (dir.join("foo"), dir.join("bar"), dir.join("idle"));
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // A program that sleeps without the library: found out as soon as it sleeps, and killed.
    let out = xtask(&[
        "run-step",
        "4",
        "--quick",
        "--foo",
        &s(&idle),
        "--bar",
        &s(&bar),
    ]);
    assert_fails(&out, &dir, "maps no library that exports baz");

    // The library cannot be found (no RUNPATH, moved away): the loader's own message.
    std::fs::rename(dir.join("foobar.so"), dir.join("elsewhere.so")).unwrap();
    let out = xtask(&[
        "run-step",
        "4",
        "--quick",
        "--foo",
        &s(&foo),
        "--bar",
        &s(&bar),
    ]);
    assert_fails(&out, &dir, "foobar.so: cannot open shared object file");

    let out = xtask(&[
        "run-step",
        "4",
        "--foo",
        "/nonexistent/foo",
        "--bar",
        &s(&bar),
    ]);
    assert_fails(&out, &dir, "--foo /nonexistent/foo: no such program");
    let out = xtask(&[
        "run-step",
        "4",
        "--foo",
        &s(&dir.join("foo.c")),
        "--bar",
        &s(&bar),
    ]);
    assert_fails(&out, &dir, "is not a 64-bit ELF file");
}

/// `readelf -lW`'s sections of each PT_LOAD segment, in program-header order.
fn readelf_load_sections(lib: &Path) -> Vec<Vec<String>> {
    let out = Command::new("readelf")
        .arg("-lW")
        .arg(lib)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let headers = text
        .split("Program Headers:")
        .nth(1)
        .and_then(|t| t.split("Section to Segment mapping:").next())
        .unwrap();
    // The program headers' types, in order (the first line is the column titles).
    let types: Vec<&str> = headers
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Type") && !l.starts_with('['))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mapping = text.split("Segment Sections...").nth(1).unwrap();
    let mut loads = Vec::new();
    for line in mapping.lines() {
        let mut words = line.split_whitespace();
        let Some(index) = words.next().and_then(|w| w.parse::<usize>().ok()) else {
            continue;
        };
        if types.get(index) == Some(&"LOAD") {
            loads.push(words.map(String::from).collect());
        }
    }
    loads
}

#[test]
fn each_mapping_holds_the_sections_readelf_puts_in_its_segment() {
    if !tools_present("each_mapping_holds_the_sections_readelf_puts_in_its_segment") {
        return;
    }
    let tmp = tempdir();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    build_course(&dir);
    let expected = readelf_load_sections(&dir.join("foobar.so"));
    assert!(expected.len() >= 3, "{expected:?}");

    // Relative paths, from the directory that holds the programs.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run-step", "4", "--quick", "--json"])
        .args(["--foo", "./foo", "--bar", "./foo"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for program in report["findings"]["programs"].as_array().unwrap() {
        let file_backed: Vec<&serde_json::Value> = program["maps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| !m["flags"].as_str().unwrap().contains("MAP_ANONYMOUS"))
            .collect();
        let got: Vec<Vec<String>> = file_backed
            .iter()
            .map(|m| {
                m["contents"]["sections"]
                    .as_array()
                    .unwrap_or_else(|| panic!("no sections recorded: {m}"))
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect()
            })
            .collect();
        assert_eq!(got, expected, "{program}");
        // Only the first mapping (offset 0) holds the ELF and program headers.
        let headers: Vec<bool> = file_backed
            .iter()
            .map(|m| m["contents"]["headers"].as_bool().unwrap())
            .collect();
        assert!(headers[0], "{headers:?}");
        assert!(headers[1..].iter().all(|h| !h), "{headers:?}");
    }
    // The terminal text names them from the headers, not from prose.
    let text = String::from_utf8_lossy(&out.stderr);
    let third = expected[2].join(", ");
    assert!(
        text.contains(&format!(
            "read-only; holds {third} (the library's section headers)"
        )),
        "{text}"
    );
    assert!(!text.contains(".rodata, …"), "{text}");
}

/// Review 30 B3: as a user who neither owns the library nor may write it (root's foobar.so, the
/// lab run as nobody through an installed `mmap-lab`), mincore(2) reports every page of it
/// resident (Linux >= 5.2), so the lab must not count its page cache: the loading answer says
/// "not measured" with the reason and the faults /proc/PID/stat gave, and the findings carry
/// no page counts. Needs root (to become nobody with setpriv): otherwise skipped with a notice.
#[test]
fn a_library_the_user_cannot_write_has_its_page_cache_not_measured() {
    let test = "a_library_the_user_cannot_write_has_its_page_cache_not_measured";
    if !tools_present(test) || !common::tools_present(test, &[common::SETPRIV]) {
        return;
    }
    if rustix::process::geteuid().as_raw() != 0 {
        return common::skip(test, "needs root, to run the lab as nobody with setpriv");
    }
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempdir();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    build_course(&dir);
    // An installed lab: PREFIX/bin/mmap-lab with its (here unused) programs' directory.
    let prefix = dir.join("prefix");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(prefix.join("lib/mmap-lab")).unwrap();
    let lab = prefix.join("bin/mmap-lab");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_xtask"), &lab).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_xtask"), &lab).unwrap();
    }
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"])
        .arg(format!("HOME={}", home.display()))
        .arg(format!("XDG_CACHE_HOME={}", home.display()))
        .arg(&lab)
        .args(["run-step", "4", "--quick", "--json", "--foo"])
        .arg(dir.join("foo"))
        .arg("--bar")
        .arg(dir.join("bar"))
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = &report["findings"]["loading"];
    assert!(
        l["mincore_blind"]
            .as_str()
            .is_some_and(|w| w.contains("uid 65534") && w.contains("belongs to uid 0")),
        "{l}"
    );
    assert!(l["evicted"].is_null(), "{l}");
    assert!(l["resident_after_eviction"].is_null(), "{l}");
    assert!(l["first_from_disk"].is_null(), "{l}");
    assert!(l["starts"][0]["pages_read"].is_null(), "{l}");
    assert!(
        stderr.contains("Not measured in this run: mincore(2) cannot be believed for"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Measured instead, from /proc/PID/stat: foo took"),
        "{stderr}"
    );
    assert!(!stderr.contains("stayed resident"), "{stderr}");
    assert!(
        common::left_running(&dir).is_empty(),
        "{:?}",
        common::left_running(&dir)
    );
}

/// A bar not linked with foobar.so: it read()s the file, maps all of it read-only itself and
/// keeps its own baz (`{LIB}` is replaced by the library's path).
const BAR_MANUAL_C: &str = "#include <stdio.h>\n#include <fcntl.h>\n#include <unistd.h>\n\
    #include <sys/mman.h>\n#include <sys/stat.h>\nstatic int baz;\nint main() {\n\
    int fd = open(\"{LIB}\", O_RDONLY);\n    char hdr[64];\n    struct stat st;\n\
    if (fd < 0 || read(fd, hdr, sizeof hdr) != sizeof hdr || fstat(fd, &st) != 0) return 1;\n\
    void *p = mmap(0, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);\n\
    if (p == MAP_FAILED) return 1;\n    close(fd);\n\
    for (int i = 0;; i++) { baz = i; printf(\"%d\\n\", baz); sleep(1); }\n}\n";

/// Review 30 B4, live: `--bar` a program that maps the library's file itself. It is named as
/// not loaded by ld.so; nothing is read at the library's base + baz (beyond its mapping) and no
/// frame is compared there; foo's baz is still read.
#[test]
fn a_bar_that_maps_the_file_itself_is_not_read_outside_its_mapping() {
    let test = "a_bar_that_maps_the_file_itself_is_not_read_outside_its_mapping";
    if !tools_present(test) {
        return;
    }
    let tmp = tempdir();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    build_course(&dir);
    let lib = dir.join("foobar.so");
    std::fs::write(
        dir.join("bar_manual.c"),
        BAR_MANUAL_C.replace("{LIB}", lib.to_str().unwrap()),
    )
    .unwrap();
    common::cc(&dir, &["-g", "bar_manual.c", "-o", "bar_manual"]);
    let (foo, bar, saved) = (
        dir.join("foo"),
        dir.join("bar_manual"),
        dir.join("evidence"),
    );
    let out = xtask(&[
        "run-step",
        "4",
        "--quick",
        "--json",
        "--foo",
        foo.to_str().unwrap(),
        "--bar",
        bar.to_str().unwrap(),
        "--save-evidence",
        saved.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &report["findings"];
    let (p0, p1) = (&f["programs"][0], &f["programs"][1]);
    assert!(p0["mmaps"].as_u64().unwrap() >= 4, "{p0}");
    assert!(p0["baz_values"].as_array().unwrap().iter().all(|v| v == 17));
    assert_eq!(p1["mmaps"], 0);
    assert!(p1["not_loaded"].as_str().is_some(), "{p1}");
    assert!(p1["baz_unmapped"].as_str().is_some(), "{p1}");
    assert_eq!(p1["baz_values"], serde_json::json!([]));
    assert!(f["baz_private"].is_null(), "{f}");
    // Nothing was read at bar's base + baz: every sample's second value is unread.
    let ev: serde_json::Value =
        serde_json::from_slice(&std::fs::read(saved.join("step4.json")).unwrap()).unwrap();
    let samples = ev["evidence"]["samples"].as_array().unwrap();
    assert!(!samples.is_empty());
    for s in samples {
        assert!(s["baz"][0] == 17 && s["baz"][1].is_null(), "{s}");
    }
    assert!(
        stderr.contains("bar did not load the library the way the loader does"),
        "{stderr}"
    );
    assert!(stderr.contains("No frame of baz is compared"), "{stderr}");
    assert!(!stderr.contains("two private copies"), "{stderr}");
    assert!(
        common::left_running(&dir).is_empty(),
        "{:?}",
        common::left_running(&dir)
    );
}
