//! What xtask's unit tests share: skipping a test that needs an outside tool this machine
//! lacks — a one-line notice, or a failure under CI, which must have every tool (`.ci/run`
//! installs them).

use std::io::Write as _;

/// Skips `test` for `why` with a one-line notice on stderr (straight to stderr: libtest hides
/// what `eprintln!` prints in a passing test); under `CI` it fails the test instead.
pub fn skip(test: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {why} (CI must have it)"
    );
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}

/// Waits (at most 10 s) until process `pid` is gone or a zombie (killed, waiting for whoever
/// adopted it to reap it); fails the test if it still runs then.
pub fn wait_gone(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let state = lab_trace::procstat::ProcessStat::read(pid).map(|s| s.state);
        if !matches!(state, Ok(s) if s != 'Z' && s != 'X') {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} still runs ({state:?})"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
