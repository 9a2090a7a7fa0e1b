//! foo as a user runs it: linked to libfoobar.so dynamically, from any working directory,
//! text and JSON output, Ctrl-C, a closed pipe, usage errors. The checks are shared with the
//! other program (crates/foobar-demo/testkit.rs).

#[path = "../../foobar-demo/testkit.rs"]
mod testkit;

use std::path::Path;

const EXE: &str = env!("CARGO_BIN_EXE_foo");

#[test]
fn links_libfoobar_dynamically_never_statically() {
    testkit::check_links_libfoobar_dynamically(Path::new(EXE));
}

#[test]
fn json_run_prints_addresses_in_libfoobar_and_the_values() {
    testkit::check_json_run(Path::new(EXE), "foo", &[17, 17, 17]);
}

#[test]
fn text_run_prints_pid_addresses_with_maps_lines_then_values() {
    testkit::check_text_run(Path::new(EXE), "foo", &[17, 17, 17]);
}

#[test]
fn sigint_stops_it_cleanly() {
    testkit::check_signal_stops_cleanly(Path::new(EXE), "foo", libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_stops_it_cleanly() {
    testkit::check_signal_stops_cleanly(Path::new(EXE), "foo", libc::SIGTERM, "SIGTERM");
}

#[test]
fn a_closed_stdout_ends_it_quietly() {
    testkit::check_closed_stdout(Path::new(EXE), "foo");
}

#[test]
fn usage_errors_exit_2_and_help_has_examples() {
    testkit::check_usage(Path::new(EXE), "foo");
}

#[test]
fn sighup_stops_it_cleanly() {
    testkit::check_signal_stops_cleanly(Path::new(EXE), "foo", libc::SIGHUP, "SIGHUP");
}

#[test]
fn a_full_stdout_is_an_error_not_a_panic() {
    testkit::check_full_stdout(Path::new(EXE), "foo");
}

#[test]
fn a_full_stderr_is_no_panic() {
    testkit::check_full_stderr(Path::new(EXE), "foo");
}

#[test]
fn two_runs_print_the_same_places_in_the_file_wherever_the_library_is_loaded() {
    let dir = testkit::tempdir("foo-places");
    let start = || {
        let out = testkit::command(Path::new(EXE), &dir)
            .args(["--json", "--count", "1", "--interval-ms", "0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8(out.stdout).unwrap();
        let first = text.lines().next().unwrap().to_string();
        serde_json::from_str::<serde_json::Value>(&first).unwrap()
    };
    let (a, b) = (start(), start());
    assert_ne!(a["pid"], b["pid"], "two processes");
    testkit::check_start_event(&a, "foo", None);
    testkit::check_same_places(&a, &b);
}
