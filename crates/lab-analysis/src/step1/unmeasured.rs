//! Why a question of step 1 has no answer in this run, in one line: a probe run that failed (its
//! error read as the probe words it) or a sweep with no mmapped row, with the malloc settings in
//! force named (`MALLOC_*`, `GLIBC_TUNABLES`, `LD_PRELOAD`, `RLIMIT_AS`) when the evidence has them.

use serde::Serialize;

use super::{EnvVar, FailedRun};

/// A question (`1.1` … `1.4`) this run could not answer, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotMeasured {
    pub question: String,
    pub reason: String,
}

/// The malloc settings a run had: the inherited environment with the run's own variables over
/// it (a later value of a name wins), and the address-space limit.
pub fn settings(environment: &[EnvVar], extra: &[EnvVar], limit: Option<u64>) -> Vec<String> {
    let mut vars: Vec<&EnvVar> = Vec::new();
    for v in environment.iter().chain(extra) {
        vars.retain(|w| w.name != v.name);
        vars.push(v);
    }
    let mut out: Vec<String> = vars.iter().map(|v| v.to_string()).collect();
    if let Some(l) = limit {
        out.push(format!("RLIMIT_AS={} (ulimit -v {})", size(l), l / 1024));
    }
    out
}

/// `n` bytes as the lab says a size: `64 MiB` when it is a whole number of MiB, else bytes.
pub fn size(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// " under A B" for these settings, or nothing.
fn under(settings: &[String]) -> String {
    if settings.is_empty() {
        String::new()
    } else {
        format!(" under {}", settings.join(" "))
    }
}

/// The request of "malloc(N) returned NULL" in a probe's error.
fn null_request(error: &str) -> Option<u64> {
    let (before, _) = error.split_once(") returned NULL")?;
    before.rsplit_once("malloc(")?.1.parse().ok()
}

/// The N of the probe's "no request up to N bytes was served by mmap".
fn no_mmap_up_to(error: &str) -> Option<u64> {
    let (_, after) = error.split_once("no request up to ")?;
    let (n, rest) = after.split_once(' ')?;
    rest.starts_with("bytes was served by mmap")
        .then(|| n.parse().ok())
        .flatten()
}

/// "with MALLOC_MMAP_MAX_=0 malloc never used mmap up to 64 MiB" (or without a setting).
fn never_mmapped(settings: &[String], up_to: u64) -> String {
    if settings.is_empty() {
        format!(
            "malloc never used mmap up to {} (no malloc setting in the environment)",
            size(up_to)
        )
    } else {
        format!(
            "with {} malloc never used mmap up to {}",
            settings.join(" "),
            size(up_to)
        )
    }
}

/// One line: why `run` gave no document.
pub fn why_failed(run: &FailedRun, environment: &[EnvVar], limit: Option<u64>) -> String {
    let settings = settings(environment, &run.env, limit);
    let what = run.subcommand();
    if let Some(n) = null_request(&run.error) {
        return match limit {
            Some(l) => format!(
                "malloc({}) returned NULL under this address-space limit (RLIMIT_AS={}): \
                 `{what}` stopped there",
                size(n),
                size(l)
            ),
            None => format!(
                "malloc({}) returned NULL{} (out of memory): `{what}` stopped there",
                size(n),
                under(&settings)
            ),
        };
    }
    if let Some(hi) = no_mmap_up_to(&run.error) {
        return format!(
            "{}: there is no threshold to find",
            never_mmapped(&settings, hi)
        );
    }
    if run.error.contains("cannot control the heap") {
        return format!(
            "`{what}` could not drain the top chunk{} (a block the size of the top came from \
             elsewhere in the heap), so the switch cannot be isolated",
            under(&settings)
        );
    }
    let status = run.status.map_or("a signal ended it".to_string(), |c| {
        format!("exit status {c}")
    });
    format!(
        "`malloc-probe {}` failed{} ({status}): {}",
        run.args.join(" "),
        under(&settings),
        run.error
    )
}

/// Why the sweep shows no mmapped chunk (1.2 and 1.4 need one): mmap never used up to the
/// largest request tried (the sweep's or a failed bisection's), with the settings in force.
pub fn why_no_mmap(
    largest_sweep_request: u64,
    failed: &[FailedRun],
    environment: &[EnvVar],
    limit: Option<u64>,
) -> String {
    let up_to = failed
        .iter()
        .filter(|f| f.env.is_empty())
        .filter_map(|f| no_mmap_up_to(&f.error))
        .fold(largest_sweep_request, u64::max);
    never_mmapped(&settings(environment, &[], limit), up_to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(args: &[&str], env: Vec<EnvVar>, error: &str) -> FailedRun {
        FailedRun {
            args: args.iter().map(|a| a.to_string()).collect(),
            env,
            status: Some(1),
            error: error.into(),
        }
    }

    #[test]
    fn a_null_under_an_address_space_limit_names_the_limit_and_the_request() {
        let run = failed(
            &["--json", "threshold"],
            vec![],
            "child malloc-probe probe-one 67108864 failed (exit status: 1): error: \
             malloc(67108864) returned NULL: not enough memory for this request",
        );
        let why = why_failed(&run, &[], Some(60_000 * 1024));
        assert_eq!(
            why,
            "malloc(64 MiB) returned NULL under this address-space limit \
             (RLIMIT_AS=61440000 bytes): `threshold` stopped there"
        );
        assert!(why_failed(&run, &[], None).contains("(out of memory)"));
    }

    #[test]
    fn no_mmap_names_the_setting_that_disabled_it() {
        let env = [EnvVar::new("MALLOC_MMAP_MAX_", "0")];
        let run = failed(
            &["--json", "threshold"],
            vec![],
            "no request up to 67108864 bytes was served by mmap (is mmap disabled, e.g. \
             GLIBC_TUNABLES=glibc.malloc.mmap_max=0?)",
        );
        assert_eq!(
            why_failed(&run, &env, None),
            "with MALLOC_MMAP_MAX_=0 malloc never used mmap up to 64 MiB: there is no threshold \
             to find"
        );
        assert_eq!(
            why_no_mmap(4 << 20, &[run], &env, None),
            "with MALLOC_MMAP_MAX_=0 malloc never used mmap up to 64 MiB"
        );
        assert_eq!(
            why_no_mmap(1 << 20, &[], &[], None),
            "malloc never used mmap up to 1 MiB (no malloc setting in the environment)"
        );
    }

    #[test]
    fn a_heap_out_of_control_and_an_unknown_error_keep_the_settings_and_the_error() {
        let env = [EnvVar::new("MALLOC_TOP_PAD_", "1048576")];
        let tuned = EnvVar::new("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536");
        let run = failed(
            &["--json", "threshold"],
            vec![tuned],
            "child malloc-probe probe-one 131049 failed (exit status: 1): error: the filler \
             block did not come from the top chunk (0x1 != 0x2); cannot control the heap here",
        );
        let why = why_failed(&run, &env, None);
        assert!(why.starts_with("`threshold` could not drain the top chunk under MALLOC_TOP_PAD_=1048576 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536 "), "{why}");
        let odd = failed(&["--json", "free-bit"], vec![], "something else");
        assert_eq!(
            why_failed(&odd, &env, None),
            "`malloc-probe --json free-bit` failed under MALLOC_TOP_PAD_=1048576 (exit status \
             1): something else"
        );
        assert_eq!(odd.subcommand(), "free-bit");
    }
}
