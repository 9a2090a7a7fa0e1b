//! `step1.probe`: the probe run once under strace (mmap, munmap, brk), with the course's
//! `GLIBC_TUNABLES=glibc.malloc.tcache_count=0`, in a directory of its own.
//!
//! A recorder compiled here with `cc` ([`RECORDER`]) is preloaded (`LD_PRELOAD`): it adds a
//! per-run pad (16 to 240 bytes) to every malloc/calloc request and writes each pointer it
//! returns with the 8 bytes before it, one file per process. The judge then knows which printed
//! addresses malloc returned (a probe's own `mmap` is not one) and the tag malloc really wrote
//! (a constant `0x21` no longer matches). A statically linked probe ignores LD_PRELOAD: it is
//! judged on strace alone, and the verdict says so.

use std::path::Path;
use std::time::Duration;

use super::judge::{self, Check, MallocReturn, ProbeRun};
use super::sandbox::Sandbox;

/// A probe still running after this long is killed.
const DEADLINE: Duration = Duration::from_secs(10);

/// The preloaded recorder. `__libc_malloc`/`__libc_calloc` are glibc's own entry points, so it
/// calls no interposed function; it formats by hand (stdio would allocate).
const RECORDER: &str = r#"
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
static int fd = -2;
static size_t pad;
static void init(void) {
    const char *p = getenv("LAB_MALLOC_PAD"), *dir = getenv("LAB_MALLOC_LOG");
    char path[4096];
    size_t n = 0;
    fd = -1;
    if (p) pad = strtoul(p, NULL, 10);
    if (!dir) return;
    while (dir[n] && n < 4000) { path[n] = dir[n]; n++; }
    char digits[24];
    int d = 0;
    for (unsigned long pid = (unsigned long)getpid(); pid || !d; pid /= 10) digits[d++] = '0' + pid % 10;
    path[n++] = '.';
    while (d) path[n++] = digits[--d];
    path[n] = 0;
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}
static void record(void *ptr) {
    if (fd < 0 || !ptr) return;
    char line[40];
    int n = 0;
    unsigned long v[2] = {(unsigned long)ptr, ((unsigned long *)ptr)[-1]};
    for (int k = 0; k < 2; k++) {
        for (int s = 60; s >= 0; s -= 4) line[n++] = "0123456789abcdef"[(v[k] >> s) & 15];
        line[n++] = k ? '\n' : ' ';
    }
    (void)!write(fd, line, n);
}
void *malloc(size_t size) {
    if (fd == -2) init();
    void *p = __libc_malloc(size + pad);
    record(p);
    return p;
}
void *calloc(size_t n, size_t size) {
    if (fd == -2) init();
    void *p = __libc_calloc(1, n * size + pad);
    record(p);
    return p;
}
"#;

pub fn check(sandbox: &Sandbox, program: &Path, shown: Option<String>) -> anyhow::Result<Check> {
    let dir = sandbox.scratch().join("probe");
    std::fs::create_dir_all(&dir)?;
    let filter = format!("mmap,munmap,brk,open,openat,{}", judge::PATH_WRITE_FILTER);
    let recorder = build_recorder(sandbox.scratch());
    let log = dir.join(".malloc-log");
    let pad = pad().to_string();
    let (log_s, pad_s, preload);
    let mut env = vec![("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")];
    if let Some(so) = &recorder {
        log_s = log.display().to_string();
        pad_s = pad.clone();
        preload = so.display().to_string();
        env.extend([
            ("LD_PRELOAD", preload.as_str()),
            ("LAB_MALLOC_LOG", log_s.as_str()),
            ("LAB_MALLOC_PAD", pad_s.as_str()),
        ]);
    }
    let run = super::run_traced(
        sandbox,
        program,
        &[],
        &dir,
        DEADLINE,
        super::Tracing {
            filter: &filter,
            env: &env,
        },
    )?;
    // The probe's own process: the first of the trace.
    let pid = run.trace.calls.first().and_then(|c| c.pid);
    let returns = pid.and_then(|pid| {
        let text = std::fs::read_to_string(format!("{}.{pid}", log.display())).ok()?;
        Some(
            text.lines()
                .filter_map(|l| {
                    let (a, t) = l.split_once(' ')?;
                    Some(MallocReturn {
                        address: u64::from_str_radix(a, 16).ok()?,
                        tag: u64::from_str_radix(t, 16).ok()?,
                    })
                })
                .collect(),
        )
    });
    let _ = std::fs::remove_dir_all(&dir);
    Ok(judge::judge_probe(
        shown,
        &ProbeRun {
            stdout: run.stdout,
            trace: run.trace,
            ending: run.ending,
            outside_writes: run.outside_writes,
            pad: if returns.is_some() {
                pad.parse().unwrap_or(0)
            } else {
                0
            },
            returns,
        },
    ))
}

/// This run's pad: a multiple of 16 from 16 to 240, from the clock.
fn pad() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    16 * (1 + nanos % 15)
}

/// The recorder, compiled with cc into the scratch directory (`None`: no cc, or it failed: the
/// probe is then judged on strace alone).
fn build_recorder(scratch: &Path) -> Option<std::path::PathBuf> {
    let src = scratch.join("malloc-recorder.c");
    let so = scratch.join("malloc-recorder.so");
    std::fs::write(&src, RECORDER).ok()?;
    let ok = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg(&src)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(so)
}
