//! foo and bar at the same time: foo only ever sees 17 while bar counts up from 1, because each
//! process has its own copy-on-write copy of libfoobar.so's data. And a live strace of foo shows
//! the loader opening libfoobar.so and mapping it with the descriptor openat returned.
//!
//! bar is found beside foo (`target/<profile>/bar`): run `cargo test -p foo -p bar` or
//! `cargo test --workspace`, which build both before running any test.

#[path = "../../foobar-demo/testkit.rs"]
mod testkit;

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{command, tempdir, Running};

const FOO: &str = env!("CARGO_BIN_EXE_foo");

fn bar() -> PathBuf {
    let bar = Path::new(FOO).with_file_name("bar");
    assert!(
        bar.is_file(),
        "{} is not built: run `cargo test -p foo -p bar` (or --workspace) so both exist",
        bar.display()
    );
    bar
}

#[test]
fn foo_keeps_17_while_bar_counts_up() {
    let dir = tempdir("together");
    let mut foo_cmd = command(Path::new(FOO), &dir);
    foo_cmd.args(["--json", "--interval-ms", "2"]);
    let mut bar_cmd = command(&bar(), &dir);
    bar_cmd.args(["--json", "--interval-ms", "2", "--count", "40"]);
    let foo = Running::spawn(foo_cmd);
    let bar = Running::spawn(bar_cmd);

    // Both alive: every printed address lies in a libfoobar.so mapping of that very process,
    // with the right permissions.
    let (foo_start, bar_start) = (foo.next_json().unwrap(), bar.next_json().unwrap());
    testkit::check_start_event(&foo_start, "foo", Some(foo.pid()));
    testkit::check_start_event(&bar_start, "bar", Some(bar.pid()));
    // Addresses may differ (ASLR) or not; the places in the file are the same.
    testkit::check_same_places(&foo_start, &bar_start);
    let mut foo_values = vec![foo.next_json().unwrap()["baz"].as_i64().unwrap()];

    // bar counts 1..=40 while foo runs...
    let (bar_values, stop) = testkit::observations(&bar);
    assert_eq!(bar_values, (1..=40).collect::<Vec<_>>());
    assert_eq!(stop.unwrap()["reason"], "count");
    assert_eq!(bar.wait().0, Some(0));
    // ...and foo, still running after bar has finished counting, saw only 17 throughout.
    foo_values.push(foo.next_json().unwrap()["baz"].as_i64().unwrap());
    foo.signal(libc::SIGINT);
    let (rest, stop) = testkit::observations(&foo);
    foo_values.extend(rest);
    assert_eq!(stop.unwrap()["reason"], "SIGINT");
    assert_eq!(foo.wait().0, Some(0));
    assert!(foo_values.len() >= 2);
    assert!(foo_values.iter().all(|&v| v == 17), "{foo_values:?}");
}

#[test]
fn live_strace_shows_the_loader_mapping_libfoobar() {
    let dir = tempdir("strace");
    let trace = dir.path().join("foo.strace");
    let out = Command::new("strace")
        .arg("-o")
        .arg(&trace)
        .args(["-e", "trace=openat,mmap,close", "--"])
        .arg(FOO)
        .args(["--count", "1", "--interval-ms", "0"])
        .current_dir(dir.path())
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("strace is installed (CI installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    // lab-trace's loader analysis: the openat of libfoobar.so and the mmaps on its descriptor
    // until close. (The page size only rounds the reservation, used for the anonymous .bss map
    // and RELRO's mprotect, which this test does not look at.)
    let loads = lab_trace::loader::lib_loads(&lab_trace::strace::parse(&text), 4096);
    let load = loads
        .iter()
        .find(|l| l.path.ends_with("/libfoobar.so"))
        .unwrap_or_else(|| panic!("no load of libfoobar.so in:\n{text}"));
    // It is mapped read+exec once for the code, and MAP_FIXED into the first, reserving mapping.
    let after: Vec<&str> = load.mmaps.iter().map(|m| m.raw.as_str()).collect();
    assert!(after.len() >= 2, "{after:?}");
    assert!(!after[0].contains("MAP_FIXED"), "{}", after[0]);
    assert!(
        after[1..].iter().all(|l| l.contains("MAP_FIXED")),
        "{after:?}"
    );
    assert_eq!(
        after
            .iter()
            .filter(|l| l.contains("PROT_READ|PROT_EXEC"))
            .count(),
        1,
        "{after:?}"
    );
    assert!(
        after.iter().any(|l| l.contains("PROT_READ|PROT_WRITE")),
        "{after:?}"
    );
}
