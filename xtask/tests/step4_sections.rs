//! Step 4 names what each mapping of the library holds from the library's own section headers:
//! on the course's build of foobar.so (`gcc -g -shared -fPIC foobar.c -o foobar.so`), the
//! sections `cargo xtask run-step 4 --foo ./foo --bar ./bar` lists for the loader's file-backed
//! mappings are, one for one, `readelf -lW`'s section-to-segment mapping of its PT_LOAD
//! segments (the third: `.eh_frame_hdr .eh_frame` where that is what readelf puts there). Needs
//! `cc`, `readelf` and `strace`: without them (outside CI) the test says it skipped.

use std::path::Path;
use std::process::Command;

const FOOBAR_C: &str = "int baz;\nint getbaz() { return baz; }\n\
    int setbaz(int newbaz) { baz = newbaz; return baz; }\n\
    int* bazaddr() { return &baz; }\n";
const FOO_C: &str = "#include <stdio.h>\n#include <unistd.h>\n\
    int getbaz(); int setbaz(int); int* bazaddr();\n\
    int main() {\n    setbaz(17);\n    while (1) {\n\
    printf(\"baz at %p is %d\\n\", (void *)bazaddr(), getbaz());\n        sleep(1);\n    }\n}\n";

/// Whether the tools are here; outside CI a missing one skips the test with a notice.
fn tools_present(test: &str) -> bool {
    for (tool, arg, install) in [
        ("cc", "--version", "apt-get install gcc"),
        ("readelf", "--version", "apt-get install binutils"),
        ("strace", "-V", "apt-get install strace"),
    ] {
        if Command::new(tool).arg(arg).output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{tool} is missing (CI must have it)"
            );
            use std::io::Write as _;
            // Straight to stderr: libtest hides what eprintln! prints in a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {test} needs {tool}; install it with `{install}`"
            );
            return false;
        }
    }
    true
}

fn cc(dir: &Path, args: &[&str]) {
    let out = Command::new("cc")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    std::fs::write(dir.join("foobar.c"), FOOBAR_C).unwrap();
    std::fs::write(dir.join("foo.c"), FOO_C).unwrap();
    cc(
        &dir,
        &["-g", "-shared", "-fPIC", "foobar.c", "-o", "foobar.so"],
    );
    cc(&dir, &["-g", "foo.c", "foobar.so", "-o", "foo"]);
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
