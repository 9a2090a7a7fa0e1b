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
