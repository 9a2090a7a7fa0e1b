//! `cargo xtask bench race` from the outside: its usage errors, and `--quick --json`'s one
//! document on stdout (DESIGN.md's shape) with the progress and the table on stderr.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn xtask(args: &[&str]) -> (std::process::Output, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

#[test]
fn an_unknown_option_is_a_one_line_usage_error() {
    for (args, named) in [
        (&["bench", "race", "--bogus"][..], "'--bogus'"),
        (&["bench", "race", "--json", "--target", "5"], "'--target'"),
    ] {
        let (out, _) = xtask(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(named),
            "{stderr}"
        );
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

/// Real races of both racers (target 10^7, 3 runs a cell): stdout is exactly one JSON document
/// with DESIGN.md's fields, one row per cell with consistent medians and ratios; stderr has the
/// verdict, the table and where the loops lie; the scratch directory is gone.
#[test]
fn quick_json_prints_one_document_of_the_designed_shape() {
    if !common::tools_present(
        "quick_json_prints_one_document_of_the_designed_shape",
        &[common::CC, common::OBJDUMP],
    ) {
        return;
    }
    let (out, pid) = xtask(&["bench", "race", "--quick", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    assert_eq!(keys(&doc), ["rows", "target"]);
    assert_eq!(doc["target"], 10_000_000);
    let rows = doc["rows"].as_array().unwrap();
    let cells: Vec<(u64, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["participants"].as_u64().unwrap(),
                r["mode"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        cells,
        [(1, "racy"), (2, "racy"), (1, "atomic"), (2, "atomic")]
    );
    for row in rows {
        assert_eq!(
            keys(row),
            [
                "c_cpu_ns",
                "c_wall_ns",
                "mode",
                "participants",
                "ratio_cpu",
                "ratio_wall",
                "runs",
                "rust_cpu_ns",
                "rust_wall_ns"
            ]
        );
        assert_eq!(row["runs"], 3);
        let ns = |k: &str| row[k].as_f64().unwrap();
        for k in ["rust_cpu_ns", "c_cpu_ns", "rust_wall_ns", "c_wall_ns"] {
            assert!(ns(k) > 0.0 && ns(k).is_finite(), "{k}: {row}");
        }
        assert!((ns("ratio_cpu") - ns("rust_cpu_ns") / ns("c_cpu_ns")).abs() < 1e-9);
        assert!((ns("ratio_wall") - ns("rust_wall_ns") / ns("c_wall_ns")).abs() < 1e-9);
    }
    assert!(
        stderr.contains("Goal Rust/C cpu <= 1.05x: met in "),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches(" | met |").count() + stderr.matches(" | not met |").count(),
        4
    );
    assert_eq!(stderr.matches(", 1 64-byte line (").count(), 4, "{stderr}");
    // The target directory: where cargo put xtask (target/debug/xtask).
    let target_dir = Path::new(env!("CARGO_BIN_EXE_xtask"))
        .parent()
        .and_then(Path::parent)
        .unwrap();
    let scratch = target_dir.join("xtask-scratch");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("bench-race-{pid}-"))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
