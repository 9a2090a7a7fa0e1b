//! The machine the steps ran on: kernel, glibc, CPU, cores, memory, strace, privileges, date.
//! Read from /proc and from `getconf`/`strace -V`; a value that cannot be read is "unknown".

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// (label, value) rows describing this machine.
pub fn probe() -> Vec<(String, String)> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let unknown = || "unknown".to_string();
    let kernel = match (
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
    ) {
        (Some(os), Some(rel)) => format!("{os} {rel} {}", std::env::consts::ARCH),
        _ => unknown(),
    };
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let meminfo = read("/proc/meminfo").unwrap_or_default();
    let status = read("/proc/self/status").unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| unknown());
    let uid = field(&status, "Uid").and_then(|v| v.split_whitespace().nth(1).map(str::to_string));
    vec![
        ("Kernel".into(), kernel),
        (
            "Kernel build".into(),
            read("/proc/sys/kernel/version").unwrap_or_else(unknown),
        ),
        ("glibc".into(), glibc().unwrap_or_else(unknown)),
        (
            "CPU".into(),
            field(&cpuinfo, "model name").unwrap_or_else(unknown),
        ),
        ("Cores".into(), cores),
        (
            "Memory".into(),
            field(&meminfo, "MemTotal")
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map(|kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
                .unwrap_or_else(unknown),
        ),
        (
            "strace".into(),
            first_line("strace", &["-V"]).unwrap_or_else(|| "not found".into()),
        ),
        (
            "Privileges".into(),
            match uid.as_deref() {
                Some("0") => "root (uid 0)".into(),
                Some(u) => format!("uid {u} (not root)"),
                None => unknown(),
            },
        ),
        ("Date".into(), now_utc()),
    ]
}

/// The value of `key: value` in /proc-style text (first match).
fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

fn first_line(prog: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

/// The C library version: `getconf GNU_LIBC_VERSION` ("glibc 2.36"), else `ldd --version`.
fn glibc() -> Option<String> {
    if let Some(v) = first_line("getconf", &["GNU_LIBC_VERSION"]) {
        return Some(v.strip_prefix("glibc ").unwrap_or(&v).to_string());
    }
    let line = first_line("ldd", &["--version"])?;
    line.split_whitespace().last().map(str::to_string)
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    iso8601(secs)
}

/// Seconds since the epoch as an ISO 8601 UTC time (days to civil date: Howard Hinnant's
/// `civil_from_days`).
fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_795_667_106), "2026-11-26T04:25:06Z");
    }

    #[test]
    fn proc_fields() {
        let text = "processor\t: 0\nmodel name\t: Some CPU @ 2.00GHz\nflags\t: fpu\n";
        assert_eq!(
            field(text, "model name").as_deref(),
            Some("Some CPU @ 2.00GHz")
        );
        assert_eq!(field(text, "model"), None);
    }

    #[test]
    fn probe_reads_this_machine() {
        let rows = probe();
        let get = |k: &str| rows.iter().find(|(l, _)| l == k).map(|(_, v)| v.clone());
        assert!(get("Kernel").unwrap().starts_with("Linux "));
        let cores: usize = get("Cores").unwrap().parse().unwrap();
        assert!(cores >= 1);
        // This test binary runs on glibc, so the version is a dotted number.
        let glibc = get("glibc").unwrap();
        assert!(glibc.starts_with("2."), "glibc version {glibc:?}");
    }
}
