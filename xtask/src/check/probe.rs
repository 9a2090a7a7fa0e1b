//! `step1.probe`: the probe run once under strace (mmap, munmap, brk), with the course's
//! `GLIBC_TUNABLES=glibc.malloc.tcache_count=0`, in a directory of its own.
//!
//! A recorder compiled here with `cc` ([`RECORDER`]) is preloaded (`LD_PRELOAD`): it adds a
//! per-run pad (16 to 240 bytes, and 1 to 8 pages on requests of 64 KiB or more) to every
//! malloc/calloc/realloc/memalign/valloc/pvalloc request and writes each pointer it returns with
//! the 8 bytes before it, one file per process. The judge then knows which printed
//! addresses malloc returned (a probe's own `mmap` is not one) and the tag malloc really wrote
//! (a constant `0x21` no longer matches). A statically linked probe ignores LD_PRELOAD: it is
//! judged on strace alone, and the verdict says so. A dynamically linked one (`PT_INTERP`) that
//! left no log ran without the recorder, and is not taken for a static one.

use std::path::Path;
use std::time::Duration;

use super::judge::{self, Check, MallocReturn, ProbeRun};
use super::sandbox::Sandbox;

/// The recorder's file name, in the scratch directory (the parent of the probe's).
const RECORDER_SO: &str = "malloc-recorder.so";

/// A probe still running after this long is killed.
const DEADLINE: Duration = Duration::from_secs(10);

/// The preloaded recorder. `__libc_malloc`/`__libc_calloc` are glibc's own entry points, so it
/// calls no interposed function; it formats by hand (stdio would allocate).
const RECORDER: &str = r#"
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static int fd = -2;
static size_t pad, pad_pages;
static void init(void) {
    const char *p = getenv("LAB_MALLOC_PAD"), *pages = getenv("LAB_MALLOC_PAD_PAGES");
    const char *dir = getenv("LAB_MALLOC_LOG");
    char path[4096];
    size_t n = 0;
    fd = -1;
    if (p) pad = strtoul(p, NULL, 10);
    if (pages) pad_pages = strtoul(pages, NULL, 10);
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
/* The request as passed on: the pad, and whole pages more for a request malloc may mmap. */
static size_t padded(size_t size) {
    if (fd == -2) init();
    return size + pad + (size >= 65536 ? pad_pages * 4096 : 0);
}
static void *record(void *ptr) {
    if (fd < 0 || !ptr) return ptr;
    int saved = errno;
    char line[40];
    int n = 0;
    unsigned long v[2] = {(unsigned long)ptr, ((unsigned long *)ptr)[-1]};
    for (int k = 0; k < 2; k++) {
        for (int s = 60; s >= 0; s -= 4) line[n++] = "0123456789abcdef"[(v[k] >> s) & 15];
        line[n++] = k ? '\n' : ' ';
    }
    (void)!write(fd, line, n);
    errno = saved;
    return ptr;
}
void *malloc(size_t size) { return record(__libc_malloc(padded(size))); }
void *calloc(size_t n, size_t size) {
    if (size && n > (size_t)-1 / size) { errno = ENOMEM; return NULL; }
    return record(__libc_calloc(1, padded(n * size)));
}
void *realloc(void *p, size_t size) {
    if (p && !size) return __libc_realloc(p, 0);
    return record(__libc_realloc(p, padded(size)));
}
void *memalign(size_t align, size_t size) { return record(__libc_memalign(align, padded(size))); }
void *aligned_alloc(size_t align, size_t size) { return memalign(align, size); }
/* glibc serves these without calling memalign by its symbol: interposed too. */
void *valloc(size_t size) { return memalign((size_t)getpagesize(), size); }
void *pvalloc(size_t size) {
    size_t page = (size_t)getpagesize();
    if (size > (size_t)-1 - page) { errno = ENOMEM; return NULL; }
    return memalign(page, size ? (size + page - 1) & ~(page - 1) : page);
}
int posix_memalign(void **out, size_t align, size_t size) {
    if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
    void *p = memalign(align, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
"#;

pub fn check(sandbox: &Sandbox, program: &Path, shown: Option<String>) -> anyhow::Result<Check> {
    let dir = sandbox.scratch().join("probe");
    std::fs::create_dir_all(&dir)?;
    let filter = format!(
        "mmap,mremap,munmap,brk,open,openat,{}",
        judge::PATH_WRITE_FILTER
    );
    let recorder = build_recorder(sandbox.scratch());
    let log = dir.join(".malloc-log");
    let (pad, pad_pages) = pad();
    let (log_s, pad_s, pages_s, preload);
    let mut env = vec![("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")];
    if recorder.is_some() {
        log_s = log.display().to_string();
        pad_s = pad.to_string();
        pages_s = pad_pages.to_string();
        // ld.so splits LD_PRELOAD at spaces and colons, which the scratch path (under TMPDIR)
        // may hold: the recorder is named from the probe's directory, its working directory.
        preload = format!("../{RECORDER_SO}");
        env.extend([
            ("LD_PRELOAD", preload.as_str()),
            ("LAB_MALLOC_LOG", log_s.as_str()),
            ("LAB_MALLOC_PAD", pad_s.as_str()),
            ("LAB_MALLOC_PAD_PAGES", pages_s.as_str()),
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
    // A dynamically linked probe always gets the recorder from ld.so: no log means it ran
    // without it. A static one ignores LD_PRELOAD.
    let unrecorded = match (&returns, dynamic(program)) {
        (None, true) if recorder.is_some() => Some(judge::Unrecorded::NotReached),
        (None, true) => Some(judge::Unrecorded::NotBuilt),
        _ => None,
    };
    Ok(judge::judge_probe(
        shown,
        &ProbeRun {
            stdout: run.stdout,
            trace: run.trace,
            ending: run.ending,
            outside_writes: run.outside_writes,
            pad: if returns.is_some() { pad } else { 0 },
            pad_pages: if returns.is_some() { pad_pages } else { 0 },
            returns,
            unrecorded,
        },
    ))
}

/// Whether `program` is dynamically linked: its ELF file asks for an interpreter (ld.so,
/// `PT_INTERP`), which honours LD_PRELOAD.
fn dynamic(program: &Path) -> bool {
    use object::read::elf::{FileHeader as _, ProgramHeader as _};
    let Ok(data) = std::fs::read(program) else {
        return false;
    };
    let Ok(header) = object::elf::FileHeader64::<object::Endianness>::parse(&*data) else {
        return false;
    };
    let Ok(endian) = header.endian() else {
        return false;
    };
    header.program_headers(endian, &*data).is_ok_and(|headers| {
        headers
            .iter()
            .any(|h| h.p_type(endian) == object::elf::PT_INTERP)
    })
}

/// This run's pad, from the clock: a multiple of 16 from 16 to 240 bytes on every request, and 1
/// to 8 pages more on requests of 64 KiB or more (so that an mmapped chunk's length, too, is not
/// the usual one).
fn pad() -> (u64, u64) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    (16 * (1 + nanos % 15), 1 + (nanos / 15) % 8)
}

/// The recorder, compiled with cc into the scratch directory (`None`: no cc, or it failed: the
/// probe is then judged on strace alone).
fn build_recorder(scratch: &Path) -> Option<std::path::PathBuf> {
    let src = scratch.join("malloc-recorder.c");
    let so = scratch.join(RECORDER_SO);
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
