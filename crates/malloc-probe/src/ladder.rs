//! `--allocator PATH` and `kernel-calls`: another allocator, measured without reading its
//! metadata.
//!
//! `--allocator PATH` checks that PATH is an ELF shared object, then runs this same program
//! again with `LD_PRELOAD=PATH` (the loader then binds `malloc`/`free` to PATH's) and waits for
//! it: a signal that kills it (an allocator that crashes at load) becomes a one-line error naming
//! the signal. `kernel-calls` mallocs a ladder of sizes, several times each, then frees every
//! block, writing a marker before each call (`write(-1, "malloc N")`, `write(-1, "free N")`) so
//! strace pairs each call with the system calls it made. Nothing here decides anything: which
//! malloc asked the kernel for memory is read from the trace (`lab_analysis::step1::allocator`).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use malloc_probe::{KernelCallsReport, LadderMalloc};

use crate::sys::{self, AnyMalloc, Block};

/// Set in the re-executed probe's environment to the allocator it was started with.
const PRELOADED_ENV: &str = "MALLOC_PROBE_PRELOADED";

/// The default ladder: 1 KiB, 2 KiB, … 64 MiB (a fine search between two of them is the
/// caller's, with `--sizes`).
pub fn default_ladder() -> Vec<usize> {
    (10..=26).map(|k| 1usize << k).collect()
}

/// Whether this process is the one re-executed under `LD_PRELOAD=allocator`.
pub fn is_preloaded(allocator: &Path) -> bool {
    std::env::var_os(PRELOADED_ENV).is_some_and(|v| Path::new(&v) == allocator)
}

/// Runs this program again, with the same arguments, under `LD_PRELOAD=allocator`, and waits
/// at most `timeout` (an allocator that hangs at load is killed). Its stdout and stderr are ours.
/// Returns its exit status; a death by signal is an error that names the signal.
pub fn run_preloaded(allocator: &Path, timeout: Duration) -> anyhow::Result<u8> {
    let me = std::env::current_exe().context("cannot find malloc-probe's own executable")?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut cmd = Command::new(&me);
    cmd.args(&args)
        .env("LD_PRELOAD", allocator)
        .env(PRELOADED_ENV, allocator);
    sys::without_core_dumps(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {} again under LD_PRELOAD", me.display()))?;
    let deadline = Instant::now() + timeout;
    // Polled: std has no wait with a timeout; the ladder itself takes well under a second.
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for the probe")? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the probe under LD_PRELOAD={} did not finish within {} s and was killed (the \
                 allocator hangs)",
                allocator.display(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(signal) = status.signal() {
        bail!(
            "the probe died of {} under LD_PRELOAD={} (the allocator crashed it)",
            signal_name(signal),
            allocator.display()
        );
    }
    Ok(status.code().map_or(1, |c| c.clamp(0, 255) as u8))
}

/// `SIGABRT (signal 6)`.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    format!("{name} (signal {signal})")
}

/// The ladder: `repeat` mallocs of each size in `sizes`, then every block freed in the same
/// order, each call preceded by its marker. The storage for the results is reserved first, so
/// nothing else allocates between a marker and its call.
pub fn kernel_calls(
    sizes: &[usize],
    repeat: usize,
    preloaded: Option<&Path>,
) -> anyhow::Result<KernelCallsReport> {
    let heap = AnyMalloc;
    let malloc_object = heap.object();
    if let Some(p) = preloaded {
        let resolved = std::fs::canonicalize(&malloc_object).unwrap_or_default();
        if resolved != p {
            bail!(
                "{} was preloaded but does not provide malloc: malloc still comes from \
                 {malloc_object}",
                p.display()
            );
        }
    }
    let n = sizes.len() * repeat;
    let mut blocks: Vec<(usize, Option<Block>)> = Vec::with_capacity(n);
    let mut buf = [0u8; 48];
    for &size in sizes {
        for _ in 0..repeat {
            sys::mark(malloc_probe::tag::fmt_marker(&mut buf, b"malloc ", size));
            blocks.push((size, heap.malloc(size)));
        }
    }
    let mut addresses: Vec<(usize, Option<usize>)> = Vec::with_capacity(n);
    for (size, block) in blocks {
        addresses.push((size, block.as_ref().map(Block::addr)));
        if let Some(b) = block {
            sys::mark(malloc_probe::tag::fmt_marker(&mut buf, b"free ", size));
            heap.free(b);
        }
    }
    sys::mark(b"done 0");
    Ok(KernelCallsReport {
        preloaded: preloaded.map(|p| p.display().to_string()),
        malloc_object,
        repeat,
        mallocs: addresses
            .into_iter()
            .map(|(request, a)| LadderMalloc {
                request,
                address: a.map(|a| format!("{a:#x}")),
            })
            .collect(),
        page_size: sys::page_size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named() {
        assert_eq!(signal_name(libc::SIGABRT), "SIGABRT (signal 6)");
        assert_eq!(signal_name(64), "signal 64");
    }
}
