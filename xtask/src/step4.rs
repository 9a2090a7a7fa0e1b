//! Step 4: how the dynamic loader maps libfoobar.so into foo and bar, and what they share.
//!
//! `cargo xtask run-step 4` builds foobar, foo and bar in release mode, starts foo and bar at the
//! same time, each under `strace -f -e trace=openat,mmap,mprotect,munmap,close`, and while both
//! run (synchronised on the JSON lines they print, never on sleeps) reads their
//! `/proc/PID/maps`, `/proc/PID/smaps` and `/proc/PID/pagemap`. Then it stops them with SIGINT,
//! parses the traces and answers the assignment's questions from them: which mmap calls loaded
//! libfoobar.so (those on the descriptor that its `openat` returned, up to its `close`, plus an
//! anonymous MAP_FIXED map and `mprotect` calls that fall inside the first, reserving mapping),
//! how many, which address range each produced and which of setbaz/getbaz/baz lies in which,
//! and how the flags differ. The sharing question is answered from the values each program saw
//! (foo only 17, bar counting) and from smaps (Shared_Clean/Pss of the code, Private_Dirty of
//! the data) and, as root, from the physical frame numbers in pagemap. Last, a C client compiled
//! here with `cc` refers to `baz` directly: its relocations (read with the `object` crate) show an
//! `R_X86_64_COPY`, so its `baz` lives in the executable, while foo reaches `baz` through the GOT.
//!
//! The `data` of the report:
//!
//! ```json
//! {"programs": [{"name": "foo", "pid": 123,
//!    "maps": [{"start": "0x…", "end": "0x…", "perms": "r-xp", "offset": "0x…",
//!              "path": "…/libfoobar.so"}],                      // only libfoobar.so's lines
//!    "symbols": [{"name": "setbaz", "address": "0x…"}, …],      // setbaz, getbaz, baz
//!    "mmaps": [{"raw": "strace line", "addr": "0x…", "len": 4096, "prot": "PROT_READ|PROT_EXEC",
//!               "flags": "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE", "fd": 3, "offset": "0x…",
//!               "result": "0x…"}],                               // the loads, in trace order
//!    "baz_values": [17, 17, …]},
//!   {"name": "bar", …}],
//!  "shared_code_pfns": true,        // null when the frame numbers cannot be read
//!  "c_client": {"baz_address": "0x…", "inside_libfoobar": false, "relocation": "R_X86_64_COPY"}}
//! ```
//!
//! A production investigation would use `ltrace`/`LD_DEBUG=files`, `perf trace` or eBPF rather
//! than strace (which slows every syscall), and `/proc/PID/smaps_rollup` for totals.

// foo, bar and baz are the assignment's names, not placeholders.
#![allow(clippy::disallowed_names)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::model::{Answer, Ctx, Evidence, StepReport};
use crate::out;
use crate::say;
use crate::strace::{self, Syscall};
use crate::sys;
use lab_trace::loader::{file_name, lib_loads, range, LibLoad};

/// What strace records: enough to see the loader at work.
const FILTER: &str = "openat,mmap,mprotect,munmap,close";
const LIB: &str = "libfoobar.so";
/// How long to wait for a line that foo or bar should print promptly.
const WAIT: Duration = Duration::from_secs(30);

// ---- the trace: how the loader brought a library in ------------------------------------------

/// What one loader mapping is for, read off its protection and flags.
pub fn role_of(m: &Syscall, first: bool) -> String {
    let prot = m.arg_flags(2);
    let flags = m.arg_flags(3);
    let anon = flags.contains(&"MAP_ANONYMOUS");
    let fixed = flags.contains(&"MAP_FIXED");
    let mut s = if anon {
        "zero-filled anonymous memory: the rest of .bss, which has no bytes in the file".to_string()
    } else if prot.contains(&"PROT_EXEC") {
        "code (.text, .plt): read+execute, never written, so it can be shared".to_string()
    } else if prot.contains(&"PROT_WRITE") {
        "data (.data, .bss, .got, …): read+write, and MAP_PRIVATE makes a write copy the page \
         for this process only (copy-on-write)"
            .to_string()
    } else {
        "read-only data (ELF headers, .dynsym, .rodata, …)".to_string()
    };
    if first && !fixed {
        s = format!(
            "the reservation: the kernel picks the address and the length spans the whole \
             object, so the later MAP_FIXED maps land at the right distances from it; its own \
             first part stays as {s}"
        );
    } else if fixed {
        s.push_str("; MAP_FIXED: placed at an exact address inside the reservation");
    }
    s
}

// ---- /proc ----------------------------------------------------------------------------------

/// One line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapLine {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    pub path: String,
    pub line: String,
}

pub fn parse_maps(text: &str) -> Vec<MapLine> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (s, e) = f.next()?.split_once('-')?;
            let perms = f.next()?.to_string();
            let offset = u64::from_str_radix(f.next()?, 16).ok()?;
            let path = f.skip(2).collect::<Vec<_>>().join(" ");
            Some(MapLine {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                perms,
                offset,
                path,
                line: l.to_string(),
            })
        })
        .collect()
}

/// The blocks of /proc/PID/smaps for libfoobar.so: the header line and the counters we show.
pub fn smaps_of_lib(text: &str) -> Vec<(String, Vec<(String, u64)>)> {
    const KEYS: [&str; 7] = [
        "Rss",
        "Pss",
        "Shared_Clean",
        "Shared_Dirty",
        "Private_Clean",
        "Private_Dirty",
        "Anonymous",
    ];
    let mut out: Vec<(String, Vec<(String, u64)>)> = Vec::new();
    let mut keep = false;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            keep = line.trim_end().ends_with(&format!("/{LIB}"));
            if keep {
                out.push((line.to_string(), Vec::new()));
            }
        } else if keep {
            if let Some((k, v)) = line.split_once(':') {
                if KEYS.contains(&k) {
                    let kb = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    if let Some(last) = out.last_mut() {
                        last.1.push((k.to_string(), kb));
                    }
                }
            }
        }
    }
    out
}

/// The pagemap entries (`proc(5)`, /proc/PID/pagemap) of the pages in `[start, end)`.
fn pagemap(pid: i32, start: u64, end: u64, page: u64) -> std::io::Result<Vec<u64>> {
    let f = std::fs::File::open(format!("/proc/{pid}/pagemap"))?;
    let n = ((end - start) / page) as usize;
    let mut buf = vec![0u8; n * 8];
    f.read_exact_at(&mut buf, start / page * 8)?;
    Ok(buf
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

const PM_PRESENT: u64 = 1 << 63;
const PM_PFN_MASK: u64 = (1 << 55) - 1;

/// For every present page of the `perms` mappings of libfoobar.so: (page offset in the file,
/// frame number). The frame number reads as 0 without CAP_SYS_ADMIN.
fn lib_pfns(
    pid: i32,
    maps: &[MapLine],
    perms: &str,
    page: u64,
) -> std::io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for m in maps.iter().filter(|m| m.perms == perms) {
        for (i, e) in pagemap(pid, m.start, m.end, page)?.into_iter().enumerate() {
            if e & PM_PRESENT != 0 {
                out.push((m.offset / page + i as u64, e & PM_PFN_MASK));
            }
        }
    }
    Ok(out)
}

/// The pagemap entry of the page holding `addr`.
fn pfn_of(pid: i32, addr: u64, page: u64) -> std::io::Result<Option<u64>> {
    let base = addr / page * page;
    let e = pagemap(pid, base, base + page, page)?[0];
    Ok((e & PM_PRESENT != 0).then_some(e & PM_PFN_MASK))
}

// ---- relocations -----------------------------------------------------------------------------

/// The dynamic relocation that targets symbol `name` in the ELF file at `path`, by type name.
pub fn relocation_against(path: &Path, name: &str) -> anyhow::Result<Option<String>> {
    use object::{Object as _, ObjectSymbol as _, ObjectSymbolTable as _};
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{} is not an ELF file", path.display()))?;
    let (Some(relocs), Some(dynsym)) = (file.dynamic_relocations(), file.dynamic_symbol_table())
    else {
        return Ok(None);
    };
    for (_, r) in relocs {
        // Dynamic relocations index .dynsym, not .symtab.
        let object::RelocationTarget::Symbol(idx) = r.target() else {
            continue;
        };
        let Ok(sym) = dynsym.symbol_by_index(idx) else {
            continue;
        };
        if sym.name() != Ok(name) {
            continue;
        }
        if let object::RelocationFlags::Elf { r_type } = r.flags() {
            return Ok(Some(reloc_name(file.architecture(), r_type)));
        }
    }
    Ok(None)
}

fn reloc_name(arch: object::Architecture, r_type: u32) -> String {
    use object::elf;
    if arch == object::Architecture::X86_64 {
        let name = match r_type {
            elf::R_X86_64_64 => "R_X86_64_64",
            elf::R_X86_64_COPY => "R_X86_64_COPY",
            elf::R_X86_64_GLOB_DAT => "R_X86_64_GLOB_DAT",
            elf::R_X86_64_JUMP_SLOT => "R_X86_64_JUMP_SLOT",
            elf::R_X86_64_RELATIVE => "R_X86_64_RELATIVE",
            _ => "",
        };
        if !name.is_empty() {
            return name.to_string();
        }
    }
    format!("type {r_type} ({arch:?})")
}

// ---- running foo and bar -------------------------------------------------------------------

/// foo or bar running under strace; stopped, killed and reaped on every path (Drop).
struct Prog {
    name: &'static str,
    strace: Child,
    lines: mpsc::Receiver<String>,
    trace: PathBuf,
    stderr: PathBuf,
    /// The traced program's own pid (from its start line), not strace's.
    pid: Option<i32>,
    start: Option<Value>,
    values: Vec<i64>,
    stop: Option<Value>,
}

impl Prog {
    fn spawn(name: &'static str, bin: &Path, dir: &Path, args: &[String]) -> anyhow::Result<Prog> {
        let trace = dir.join(format!("{name}.strace"));
        let stderr = dir.join(format!("{name}.stderr"));
        let err_file = std::fs::File::create(&stderr)
            .with_context(|| format!("cannot create {}", stderr.display()))?;
        let mut child = strace::command(bin, args, FILTER, &trace)
            // cargo run puts target dirs on LD_LIBRARY_PATH, which would beat foo's RUNPATH and
            // could load a debug libfoobar.so: trace what a user gets.
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err_file)
            .spawn()
            .with_context(|| format!("cannot start strace {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Prog {
            name,
            strace: child,
            lines,
            trace,
            stderr,
            pid: None,
            start: None,
            values: Vec::new(),
            stop: None,
        })
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Reads the next event line; `Ok(false)` at the end of output.
    fn pump(&mut self, deadline: Instant) -> anyhow::Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match self.lines.recv_timeout(left) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(false),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("{} printed nothing for {WAIT:?}", self.name)
            }
        };
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} printed a line that is not JSON: {line}", self.name))?;
        match v["event"].as_str() {
            Some("start") => {
                self.pid = v["pid"].as_i64().map(|p| p as i32);
                self.start = Some(v);
            }
            Some("observation") => self.values.push(v["baz"].as_i64().unwrap_or(i64::MIN)),
            Some("stop") => self.stop = Some(v),
            _ => bail!("{} printed an unknown event: {line}", self.name),
        }
        Ok(true)
    }

    /// Reads events until `done(self)` holds.
    fn pump_until(&mut self, what: &str, done: impl Fn(&Prog) -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            if !self.pump(deadline)? {
                bail!(
                    "{} ended before {what}: {}",
                    self.name,
                    self.stderr_text().trim()
                );
            }
        }
        Ok(())
    }

    /// Stops the program with SIGINT (its Ctrl-C path), reads the rest of its output and waits
    /// for strace, which exits when its tracee has.
    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.pid {
            sys::kill(pid as u32, sys::Signal::INT)
                .with_context(|| format!("cannot send SIGINT to {} ({pid})", self.name))?;
        }
        let deadline = Instant::now() + WAIT;
        while self.pump(deadline)? {}
        let status = self.strace.wait().context("cannot wait for strace")?;
        self.pid = None;
        if !status.success() {
            bail!(
                "{} under strace ended with {status}: {}",
                self.name,
                self.stderr_text().trim()
            );
        }
        if self.stop.is_none() {
            bail!("{} did not report its stop", self.name);
        }
        Ok(())
    }
}

impl Drop for Prog {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.strace.try_wait() {
            return;
        }
        // Kill the traced program first: killing strace alone would detach it and leave it
        // running. Its pid is known from its start line, or from strace's children.
        let pid = self.pid.or_else(|| {
            let id = self.strace.id();
            std::fs::read_to_string(format!("/proc/{id}/task/{id}/children"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        if let Some(pid) = pid {
            let _ = sys::kill(pid as u32, sys::Signal::KILL);
        }
        let _ = self.strace.kill();
        let _ = self.strace.wait();
    }
}

// ---- the C client -----------------------------------------------------------------------------

const CLIENT_C: &str = r#"/* A C client that names baz directly (step 4 of mmap-lab). */
#include <stdio.h>
#include <string.h>
#include "foobar.h"

/* Prints the /proc/self/maps line holding p. */
static void maps_line(const void *p) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    unsigned long a = (unsigned long)p, s, e;
    if (!f) { printf("?\n"); return; }
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s <= a && a < e) {
            fputs(line, stdout);
            fclose(f);
            return;
        }
    }
    printf("?\n");
    fclose(f);
}

int main(void) {
    printf("baz: %p ", (void *)&baz);
    maps_line(&baz);
    printf("getbaz: %p ", (void *)&getbaz);
    maps_line((void *)&getbaz);
    setbaz(42);
    printf("after setbaz(42): baz = %d, getbaz() = %d\n", baz, getbaz());
    baz = 7;
    printf("after baz = 7: getbaz() = %d\n", getbaz());
    return 0;
}
"#;

struct Client {
    baz_address: u64,
    baz_line: String,
    getbaz_line: String,
    output: String,
    relocation: Option<String>,
    compile: String,
}

/// Compiles and runs the C client against the libfoobar.so in `lib_dir`.
fn c_client(ctx: &Ctx, dir: &Path, lib_dir: &Path) -> anyhow::Result<Client> {
    let src = dir.join("client.c");
    let exe = dir.join("client");
    std::fs::write(&src, CLIENT_C).context("cannot write client.c")?;
    let include = ctx.root.join("crates/foobar");
    let args: Vec<String> = vec![
        src.display().to_string(),
        "-I".into(),
        include.display().to_string(),
        "-L".into(),
        lib_dir.display().to_string(),
        "-lfoobar".into(),
        format!("-Wl,-rpath,{}", lib_dir.display()),
        "-o".into(),
        exe.display().to_string(),
    ];
    let out = std::process::Command::new("cc")
        .args(&args)
        .output()
        .context("cannot run cc; install a C compiler (apt-get install gcc)")?;
    if !out.status.success() {
        bail!(
            "cc failed to build the C client: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let run = std::process::Command::new(&exe)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .context("cannot run the C client")?;
    let output = String::from_utf8_lossy(&run.stdout).into_owned();
    if !run.status.success() {
        bail!(
            "the C client failed ({}): {}",
            run.status,
            String::from_utf8_lossy(&run.stderr).trim()
        );
    }
    let line_of = |name: &str| {
        output
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_string)
            .with_context(|| format!("the C client printed no {name} line: {output}"))
    };
    let baz = line_of("baz")?;
    let getbaz = line_of("getbaz")?;
    let (addr, baz_line) = baz.split_once(' ').context("bad baz line")?;
    let baz_address = u64::from_str_radix(addr.trim_start_matches("0x"), 16)
        .with_context(|| format!("bad address {addr}"))?;
    let getbaz_line = getbaz.split_once(' ').map_or("", |x| x.1).to_string();
    Ok(Client {
        baz_address,
        baz_line: baz_line.to_string(),
        getbaz_line,
        relocation: relocation_against(&exe, "baz")?,
        output,
        compile: format!("cc {}", args.join(" ")),
    })
}

// ---- the step --------------------------------------------------------------------------------

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

fn symbols_of(start: &Value) -> Vec<(String, u64)> {
    start["symbols"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    let name = s["name"].as_str()?.to_string();
                    let addr = u64::from_str_radix(s["address"].as_str()?.strip_prefix("0x")?, 16);
                    Some((name, addr.ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What we read from /proc while a program ran.
struct Live {
    maps: Vec<MapLine>,
    smaps: Vec<(String, Vec<(String, u64)>)>,
    code_pfns: std::io::Result<Vec<(u64, u64)>>,
    baz_pfn: std::io::Result<Option<u64>>,
}

fn read_live(pid: i32, baz: Option<u64>, page: u64) -> anyhow::Result<Live> {
    let maps_text = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .with_context(|| format!("cannot read /proc/{pid}/maps"))?;
    let maps: Vec<MapLine> = parse_maps(&maps_text)
        .into_iter()
        .filter(|m| m.path.ends_with(&format!("/{LIB}")))
        .collect();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .map(|t| smaps_of_lib(&t))
        .unwrap_or_default();
    Ok(Live {
        code_pfns: lib_pfns(pid, &maps, "r-xp", page),
        baz_pfn: baz.map_or(Ok(None), |a| pfn_of(pid, a, page)),
        maps,
        smaps,
    })
}

/// Per program: everything the answers are computed from.
struct Seen {
    name: &'static str,
    pid: i32,
    symbols: Vec<(String, u64)>,
    live: Live,
    load: Option<LibLoad>,
    all_loads: Vec<LibLoad>,
    values: Vec<i64>,
}

pub fn run(ctx: &Ctx) -> anyhow::Result<StepReport> {
    strace::check()?;
    ctx.build_release(&["foobar", "foo", "bar"])?;
    let page = sys::page_size();
    let scratch = ctx.scratch("step4")?;
    let (foo_bin, bar_bin) = (ctx.bin("foo"), ctx.bin("bar"));
    for b in [&foo_bin, &bar_bin] {
        if !b.is_file() {
            bail!(
                "{} was not built; run `cargo build --release -p foo -p bar`",
                b.display()
            );
        }
    }
    // How long bar counts before we look; --count bounds both runs even if we were killed.
    let bar_before = if ctx.quick { 5 } else { 25 };
    let args = |interval: u32| -> Vec<String> {
        [
            "--json",
            "--interval-ms",
            &interval.to_string(),
            "--count",
            "3000",
        ]
        .map(String::from)
        .to_vec()
    };

    out::subheading("Running foo and bar at the same time, each under strace");
    out::progress("starting foo and bar under strace");
    let mut foo = Prog::spawn("foo", &foo_bin, scratch.path(), &args(20))?;
    let mut bar = Prog::spawn("bar", &bar_bin, scratch.path(), &args(20))?;
    foo.pump_until("printing its addresses", |p| p.start.is_some())?;
    bar.pump_until("printing its addresses", |p| p.start.is_some())?;
    bar.pump_until("counting", |p| p.values.len() >= bar_before)?;
    let foo_seen = foo.values.len();
    foo.pump_until("observing while bar counted", |p| p.values.len() > foo_seen)?;

    let (foo_pid, bar_pid) = (foo.pid.unwrap_or(0), bar.pid.unwrap_or(0));
    let foo_syms = symbols_of(foo.start.as_ref().unwrap_or(&Value::Null));
    let bar_syms = symbols_of(bar.start.as_ref().unwrap_or(&Value::Null));
    let baz_of = |s: &[(String, u64)]| s.iter().find(|x| x.0 == "baz").map(|x| x.1);
    out::progress("both running: reading /proc/PID/{maps,smaps,pagemap}");
    let foo_live = read_live(foo_pid, baz_of(&foo_syms), page)?;
    let bar_live = read_live(bar_pid, baz_of(&bar_syms), page)?;
    // Values after the /proc reads too: foo still sees 17 while bar has gone on counting.
    let (fv, bv) = (foo.values.len(), bar.values.len());
    bar.pump_until("counting on", |p| p.values.len() > bv)?;
    foo.pump_until("observing on", |p| p.values.len() > fv)?;
    foo.stop()?;
    bar.stop()?;

    let mut seen = Vec::new();
    for (p, syms, live) in [(&foo, foo_syms, foo_live), (&bar, bar_syms, bar_live)] {
        let calls = strace::parse_file(&p.trace)?;
        let all_loads = lib_loads(&calls, page);
        let load = all_loads
            .iter()
            .find(|l| file_name(&l.path) == LIB)
            .cloned();
        seen.push(Seen {
            name: p.name,
            pid: if p.name == "foo" { foo_pid } else { bar_pid },
            symbols: syms,
            live,
            load,
            all_loads,
            values: p.values.clone(),
        });
    }
    drop(foo);
    drop(bar);

    let lib_path = seen[0]
        .load
        .as_ref()
        .map(|l| PathBuf::from(&l.path))
        .context("the trace of foo shows no openat of libfoobar.so that was mapped")?;
    let lib_dir = lib_path.parent().unwrap_or(Path::new("/")).to_path_buf();
    out::progress("compiling the C client with cc");
    let client = c_client(ctx, scratch.path(), &lib_dir)?;
    let foo_reloc = relocation_against(&foo_bin, "baz")?;
    let lib_reloc = relocation_against(&lib_path, "baz")?;

    Ok(explain(page, &seen, &client, foo_reloc, lib_reloc))
}

fn explain(
    page: u64,
    seen: &[Seen],
    client: &Client,
    foo_reloc: Option<String>,
    lib_reloc: Option<String>,
) -> StepReport {
    let mut answers = Vec::new();
    let mut evidence = Vec::new();
    let mut programs = Vec::new();

    // Q1 and Q2: the loads, per program.
    let mut q1 = String::new();
    let mut q2 = String::new();
    for s in seen {
        out::subheading(&format!(
            "{} (pid {}): how libfoobar.so was loaded",
            s.name, s.pid
        ));
        let mut raw = String::new();
        let Some(load) = &s.load else {
            say!("  the trace shows no mapped openat of {LIB}: the theory does not match this run");
            let _ = writeln!(
                q1,
                "{}: no openat of {LIB} followed by mmaps in the trace.",
                s.name
            );
            continue;
        };
        for c in &load.failed_opens {
            let _ = writeln!(raw, "{}", c.raw);
        }
        let _ = writeln!(raw, "{}", load.open.raw);
        for m in load.all_maps() {
            let _ = writeln!(raw, "{}", m.raw);
        }
        if let Some(c) = &load.close {
            let _ = writeln!(raw, "{}", c.raw);
        }
        for m in &load.mprotects {
            let _ = writeln!(raw, "{}", m.raw);
        }
        for l in raw.lines() {
            say!("  {l}");
        }
        evidence.push(Evidence {
            title: format!("strace of {} (pid {}): loading {LIB}", s.name, s.pid),
            text: raw,
        });
        let maps = load.all_maps();
        let _ = writeln!(
            q1,
            "{}: openat(\"{}\") returned fd {} (after {} failed attempts along the RUNPATH); \
             the mmap calls on fd {} before close({}) are the load: {} of them{}, then {} \
             mprotect call(s) inside the library's range.",
            s.name,
            load.path,
            load.fd,
            load.failed_opens.len(),
            load.fd,
            load.fd,
            load.mmaps.len(),
            if load.anon.is_empty() {
                String::new()
            } else {
                format!(" plus {} anonymous MAP_FIXED map(s)", load.anon.len())
            },
            load.mprotects.len()
        );
        say!();
        let _ = writeln!(q2, "{}: {} maps.", s.name, maps.len());
        for (i, m) in maps.iter().enumerate() {
            let (a, e) = range(m, page).unwrap_or((0, 0));
            let held: Vec<&str> = s
                .symbols
                .iter()
                .filter(|(_, addr)| load.holder_of(*addr, page) == Some(i))
                .map(|(n, _)| n.as_str())
                .collect();
            let held_txt = if held.is_empty() {
                String::new()
            } else {
                format!(" <- holds {}", held.join(", "))
            };
            let line = format!(
                "  #{} {:#x}-{:#x} ({} bytes) {} {}{}",
                i + 1,
                a,
                e,
                m.arg_u64(1).unwrap_or(0),
                m.args.get(2).map_or("", String::as_str),
                m.args.get(3).map_or("", String::as_str),
                held_txt
            );
            say!("{line}");
            say!("       {}", role_of(m, i == 0));
            let _ = writeln!(q2, "{line}");
        }
        let mut places = Vec::new();
        for (name, addr) in &s.symbols {
            let map = s
                .live
                .maps
                .iter()
                .find(|m| m.start <= *addr && *addr < m.end);
            let held = load.holder_of(*addr, page).map(|i| i + 1);
            let p = format!(
                "{name} = {addr:#x}: mmap #{} of the trace, now the /proc/{}/maps line {}",
                held.map_or("?".to_string(), |i| i.to_string()),
                s.pid,
                map.map_or("(none)".to_string(), |m| m.line.clone())
            );
            say!("  {p}");
            places.push(p);
        }
        for m in &load.mprotects {
            let a = m.arg_u64(0).unwrap_or(0);
            let target = load
                .holder_of(a, page)
                .map_or("?".to_string(), |i| (i + 1).to_string());
            say!(
                "  {} turns part of mmap #{target} into {}: RELRO, the GOT and other data the \
                 loader had to relocate, made read-only once relocation is done",
                m.raw
                    .split_whitespace()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join(" "),
                m.args.get(2).map_or("", String::as_str)
            );
        }
        let _ = writeln!(q2, "  {}", places.join("\n  "));
        programs.push(json!({
            "name": s.name,
            "pid": s.pid,
            "maps": s.live.maps.iter().map(|m| json!({
                "start": hex(m.start), "end": hex(m.end), "perms": m.perms,
                "offset": hex(m.offset), "path": m.path,
            })).collect::<Vec<_>>(),
            "symbols": s.symbols.iter().map(|(n, a)| json!({"name": n, "address": hex(*a)}))
                .collect::<Vec<_>>(),
            "mmaps": maps.iter().map(|m| json!({
                "raw": m.raw,
                "addr": hex(m.arg_u64(0).unwrap_or(0)),
                "len": m.arg_u64(1).unwrap_or(0),
                "prot": m.args.get(2).cloned().unwrap_or_default(),
                "flags": m.args.get(3).cloned().unwrap_or_default(),
                "fd": m.arg_i64(4).unwrap_or(-1),
                "offset": hex(m.arg_u64(5).unwrap_or(0)),
                "result": hex(m.ret_u64().unwrap_or(0)),
            })).collect::<Vec<_>>(),
            "baz_values": s.values,
        }));
    }
    answers.push(Answer {
        question: "What mmap calls during the start-up of foo and bar correspond to loading the \
                   shared library?"
            .into(),
        answer: q1.trim_end().to_string(),
    });

    // Is there more than one, and do foo and bar agree?
    let shapes: Vec<Vec<String>> = seen
        .iter()
        .map(|s| {
            s.load.as_ref().map_or(Vec::new(), |l| {
                l.all_maps()
                    .iter()
                    .map(|m| {
                        format!(
                            "{} {} {} off {}",
                            m.arg_u64(1).unwrap_or(0),
                            m.args.get(2).map_or("", String::as_str),
                            m.args.get(3).map_or("", String::as_str),
                            m.args.get(5).map_or("", String::as_str)
                        )
                    })
                    .collect()
            })
        })
        .collect();
    let same_shape = shapes.len() == 2 && shapes[0] == shapes[1] && !shapes[0].is_empty();
    let bases: Vec<u64> = seen
        .iter()
        .filter_map(|s| s.load.as_ref()?.reservation(page).map(|r| r.0))
        .collect();
    let same_base = bases.len() == 2 && bases[0] == bases[1];
    let _ = writeln!(
        q2,
        "Yes, more than one per program: one per loadable segment, because each segment needs \
         different permissions and mmap gives one protection per mapping. foo and bar made {} \
         (lengths, protections, flags, file offsets), at {} ({}).",
        if same_shape {
            "the same sequence of calls"
        } else {
            "DIFFERENT sequences of calls (unexpected; compare the traces above)"
        },
        if same_base {
            "the same base address in both (no ASLR here?)"
        } else {
            "different base addresses"
        },
        bases
            .iter()
            .map(|b| hex(*b))
            .collect::<Vec<_>>()
            .join(" vs ")
    );
    say!();
    say!(
        "foo and bar: {}; base addresses {}",
        if same_shape {
            "same calls, same flags"
        } else {
            "the calls DIFFER"
        },
        bases
            .iter()
            .map(|b| hex(*b))
            .collect::<Vec<_>>()
            .join(" vs ")
    );
    answers.push(Answer {
        question: "Is there more than one per program? How do the allocated regions map to the \
                   addresses of the functions and the baz global variable?"
            .into(),
        answer: q2.trim_end().to_string(),
    });

    // Q3: the flags.
    out::subheading("The flags, and why they differ");
    let mut q3 = String::new();
    if let Some(load) = seen.first().and_then(|s| s.load.as_ref()) {
        let maps = load.all_maps();
        let all_private = maps.iter().all(|m| m.arg_flags(3).contains(&"MAP_PRIVATE"));
        let fixed = maps
            .iter()
            .filter(|m| m.arg_flags(3).contains(&"MAP_FIXED"))
            .count();
        let denywrite = maps
            .iter()
            .filter(|m| m.arg_flags(3).contains(&"MAP_DENYWRITE"))
            .count();
        let prots: Vec<String> = maps
            .iter()
            .map(|m| m.args.get(2).cloned().unwrap_or_default())
            .collect();
        let _ = writeln!(
            q3,
            "Protections differ per mapping ({}): mmap can give a mapping only one protection, \
             so the loader maps each ELF segment separately with the permissions of its program \
             header, code read+execute, constants read-only, data read+write.",
            prots.join(", ")
        );
        for (i, m) in maps.iter().enumerate() {
            let _ = writeln!(q3, "  #{}: {}", i + 1, role_of(m, i == 0));
        }
        let _ = writeln!(
            q3,
            "Flags: {} of {} maps are MAP_PRIVATE{}; {} are MAP_FIXED (every map after the \
             first: the first, without MAP_FIXED, reserves the whole span where the kernel \
             likes, the others are placed at fixed distances inside it, as the segments' \
             virtual addresses require); {} carry MAP_DENYWRITE (historically: refuse writes to \
             a file that is being executed; the kernel now ignores it, mmap(2)).",
            maps.iter()
                .filter(|m| m.arg_flags(3).contains(&"MAP_PRIVATE"))
                .count(),
            maps.len(),
            if all_private {
                " (no write ever reaches the file or another process: a written page is \
                 copied first)"
            } else {
                ""
            },
            fixed,
            denywrite
        );
        if load.anon.is_empty() {
            // Show another library of the same trace that needed one, if any.
            let other = seen[0]
                .all_loads
                .iter()
                .find(|l| !l.anon.is_empty())
                .map(|l| {
                    format!(
                        " ({} in the same trace did: {})",
                        file_name(&l.path),
                        l.anon[0].raw
                    )
                });
            let _ = writeln!(
                q3,
                "No anonymous map for {LIB}: its .bss fits in the last file-backed page, which \
                 the loader zeroes; a library with a larger .bss gets a MAP_ANONYMOUS|MAP_FIXED \
                 map for the rest{}.",
                other.unwrap_or_default()
            );
        } else {
            let _ = writeln!(
                q3,
                "{} anonymous MAP_FIXED map(s) complete .bss with zero pages not backed by the file.",
                load.anon.len()
            );
        }
        let _ =
            writeln!(
            q3,
            "After relocation, {} mprotect call(s) inside {LIB} ({}) make RELRO read-only: the \
             GOT and other data the loader had to write once are then protected against \
             overwriting.",
            load.mprotects.len(),
            load.mprotects
                .iter()
                .map(|m| m.raw.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    for l in q3.lines() {
        say!("{l}");
    }
    answers.push(Answer {
        question: "Are there any differences in the flags used? What motivates the difference in \
                   flags used?"
            .into(),
        answer: q3.trim_end().to_string(),
    });

    // Q4: sharing.
    out::subheading("Code shared in RAM, baz private");
    let mut q4 = String::new();
    let foo_vals = &seen[0].values;
    let bar_vals = &seen[1].values;
    let foo_all_17 = !foo_vals.is_empty() && foo_vals.iter().all(|&v| v == 17);
    let bar_counts = !bar_vals.is_empty()
        && bar_vals.first() == Some(&1)
        && bar_vals.windows(2).all(|w| w[1] == w[0] + 1);
    let _ = writeln!(
        q4,
        "Values: foo made {} observations, {}; bar counted {} (from {} to {}). {}",
        foo_vals.len(),
        if foo_all_17 {
            "all 17".to_string()
        } else {
            format!("NOT all 17: {foo_vals:?}")
        },
        if bar_counts {
            "up one by one"
        } else {
            "IRREGULARLY"
        },
        bar_vals.first().copied().unwrap_or(0),
        bar_vals.last().copied().unwrap_or(0),
        if foo_all_17 && bar_counts {
            "Each process has its own baz: the data mapping is MAP_PRIVATE, so bar's writes \
             copied its page and never reached foo."
        } else {
            "This contradicts private copy-on-write data: look at the values above."
        }
    );
    let mut smaps_txt = String::new();
    for s in seen {
        for (head, kv) in &s.live.smaps {
            let _ = writeln!(smaps_txt, "{} {head}", s.name);
            let _ = writeln!(
                smaps_txt,
                "    {}",
                kv.iter()
                    .map(|(k, v)| format!("{k} {v} kB"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let field = |s: &Seen, perms: &str, key: &str| -> u64 {
        s.live
            .smaps
            .iter()
            .filter(|(h, _)| h.split_whitespace().nth(1) == Some(perms))
            .flat_map(|(_, kv)| kv.iter().filter(|(k, _)| k == key).map(|(_, v)| *v))
            .sum()
    };
    for s in seen {
        let (rss, pss, shared) = (
            field(s, "r-xp", "Rss"),
            field(s, "r-xp", "Pss"),
            field(s, "r-xp", "Shared_Clean"),
        );
        let (dirty, anon) = (
            field(s, "rw-p", "Private_Dirty"),
            field(s, "rw-p", "Anonymous"),
        );
        let _ = writeln!(
            q4,
            "{} smaps: code (r-xp) Rss {rss} kB of which Shared_Clean {shared} kB, Pss {pss} kB{}; \
             data (rw-p) Private_Dirty {dirty} kB, Anonymous {anon} kB{}.",
            s.name,
            if shared > 0 && pss < rss {
                " (Pss < Rss: the resident code pages are counted shared with another process)"
            } else {
                " (no sign of sharing in these counters)"
            },
            if anon > 0 {
                " (written data pages became private anonymous copies)"
            } else {
                ""
            }
        );
    }
    for s in seen {
        let written: Vec<String> = s
            .live
            .smaps
            .iter()
            .filter_map(|(h, kv)| {
                let anon = kv.iter().find(|(k, _)| k == "Anonymous")?.1;
                let mut f = h.split_whitespace();
                let (_, perms, off) = (f.next()?, f.next()?, f.next()?);
                (anon > 0).then(|| format!("{perms} at file offset 0x{off}: {anon} kB"))
            })
            .collect();
        if !written.is_empty() {
            let _ = writeln!(
                q4,
                "{}: pages of {LIB} that this process wrote and so owns as private copies: {} \
                 (an r--p one is RELRO: written by the loader's relocations, then mprotected).",
                s.name,
                written.join("; ")
            );
        }
    }
    // Frame numbers.
    let pfns = |s: &Seen| -> Option<Vec<(u64, u64)>> { s.live.code_pfns.as_ref().ok().cloned() };
    let shared_code_pfns: Option<bool>;
    let mut pfn_txt = String::new();
    match (pfns(&seen[0]), pfns(&seen[1])) {
        (Some(a), Some(b)) if a.iter().chain(&b).any(|(_, f)| *f != 0) => {
            let common: Vec<(u64, u64, u64)> = a
                .iter()
                .filter_map(|(off, fa)| {
                    b.iter()
                        .find(|(o, _)| o == off)
                        .map(|(_, fb)| (*off, *fa, *fb))
                })
                .collect();
            let same = common.iter().filter(|(_, x, y)| x == y).count();
            for (off, x, y) in common.iter().take(8) {
                let _ = writeln!(
                    pfn_txt,
                    "file page {off:#x}: foo PFN {x:#x}, bar PFN {y:#x}{}",
                    if x == y {
                        "  same frame"
                    } else {
                        "  DIFFERENT"
                    }
                );
            }
            if common.len() > 8 {
                let _ = writeln!(pfn_txt, "… {} more pages", common.len() - 8);
            }
            shared_code_pfns = if common.is_empty() {
                None
            } else {
                Some(same == common.len())
            };
            let _ = writeln!(
                q4,
                "pagemap: of the {} code pages resident in both, {} have the same physical frame \
                 number in foo and in bar{}.",
                common.len(),
                same,
                if same == common.len() && same > 0 {
                    ": one copy of the code in RAM, mapped at different virtual addresses"
                } else {
                    ""
                }
            );
        }
        (Some(_), Some(_)) => {
            shared_code_pfns = None;
            let _ = writeln!(
                q4,
                "pagemap: the frame numbers read as 0 (the kernel hides them without \
                 CAP_SYS_ADMIN; run as root to compare them)."
            );
        }
        (x, _) => {
            shared_code_pfns = None;
            let why = match (&seen[0].live.code_pfns, x) {
                (Err(e), _) => e.to_string(),
                _ => "unreadable".into(),
            };
            let _ = writeln!(q4, "pagemap: cannot read /proc/PID/pagemap ({why}).");
        }
    }
    if let (Ok(Some(a)), Ok(Some(b))) = (&seen[0].live.baz_pfn, &seen[1].live.baz_pfn) {
        if *a != 0 || *b != 0 {
            let _ = writeln!(
                pfn_txt,
                "page of baz: foo PFN {a:#x}, bar PFN {b:#x}{}",
                if a == b {
                    "  SAME (unexpected)"
                } else {
                    "  different frames"
                }
            );
            let _ = writeln!(
                q4,
                "The page holding baz is frame {a:#x} in foo and {b:#x} in bar: {}.",
                if a == b {
                    "the SAME frame, which contradicts copy-on-write"
                } else {
                    "two private copies"
                }
            );
        }
    }
    for l in q4.lines() {
        say!("{l}");
    }
    say!("{smaps_txt}");
    if !pfn_txt.is_empty() {
        say!("{pfn_txt}");
    }
    evidence.push(Evidence {
        title: format!("/proc/PID/smaps of {LIB} in foo and bar"),
        text: smaps_txt,
    });
    if !pfn_txt.is_empty() {
        evidence.push(Evidence {
            title: "/proc/PID/pagemap frame numbers".into(),
            text: pfn_txt,
        });
    }
    evidence.push(Evidence {
        title: "values observed".into(),
        text: format!("foo: {foo_vals:?}\nbar: {bar_vals:?}\n"),
    });
    answers.push(Answer {
        question: "Do foo and bar share the library's code pages in RAM while each keeps its own \
                   baz?"
            .into(),
        answer: q4.trim_end().to_string(),
    });

    // Q5: the C client.
    out::subheading("A C client that names baz: a COPY relocation");
    let lib_maps: Vec<MapLine> = parse_maps(&client.baz_line);
    let inside = lib_maps
        .first()
        .is_some_and(|m| m.path.ends_with(&format!("/{LIB}")));
    let client_agrees = client
        .output
        .contains("after setbaz(42): baz = 42, getbaz() = 42")
        && client.output.contains("after baz = 7: getbaz() = 7");
    let baz_home = lib_maps.first().map_or("?".to_string(), |m| m.path.clone());
    let q5 = format!(
        "The C client's relocation against baz is {}; foo's is {}; libfoobar.so's own is {}. \
         The client's baz is at {:#x}, in {} ({}){}. {}",
        client.relocation.as_deref().unwrap_or("none"),
        foo_reloc.as_deref().unwrap_or("none"),
        lib_reloc.as_deref().unwrap_or("none"),
        client.baz_address,
        baz_home,
        if inside {
            "inside libfoobar.so"
        } else {
            "outside libfoobar.so"
        },
        if client.getbaz_line.trim_end().ends_with(&format!("/{LIB}")) {
            ", while its getbaz is in libfoobar.so's code"
        } else {
            ""
        },
        match (client.relocation.as_deref(), inside) {
            (Some("R_X86_64_COPY"), false) => format!(
                "The compiler addressed baz as if it were the executable's own variable, so the \
                 linker reserved it in the executable's .bss and the loader copied the library's \
                 initial value there; the library itself reaches baz through its GOT, which the \
                 loader points at the executable's copy: {} foo (Rust, PIE) instead loads baz's \
                 address from its GOT and uses the library's own copy.",
                if client_agrees {
                    "setbaz(42) is seen by the client's baz and the client's `baz = 7` by getbaz(), \
                     so there is one baz, the executable's."
                } else {
                    "yet setbaz/getbaz and the client's baz DISAGREE in the output above, so two \
                     copies are in use."
                }
            ),
            (r, _) => format!(
                "No COPY relocation ({r:?}) / baz inside the library: this toolchain did not \
                 copy baz into the executable."
            ),
        }
    );
    say!("  {}", client.compile);
    for l in client.output.lines() {
        say!("  client: {l}");
    }
    say!("{q5}");
    evidence.push(Evidence {
        title: "C client: build, output, relocations".into(),
        text: format!(
            "{}\n{}relocation against baz: client {}, foo {}, libfoobar.so {}\n",
            client.compile,
            client.output,
            client.relocation.as_deref().unwrap_or("none"),
            foo_reloc.as_deref().unwrap_or("none"),
            lib_reloc.as_deref().unwrap_or("none"),
        ),
    });
    answers.push(Answer {
        question: "Where does baz live for a C client that refers to it directly?".into(),
        answer: q5,
    });

    crate::model::legacy(
        4,
        "Observe the operation of a shared library",
        answers,
        evidence,
        json!({
            "programs": programs,
            "shared_code_pfns": shared_code_pfns,
            "c_client": {
                "baz_address": hex(client.baz_address),
                "inside_libfoobar": inside,
                "relocation": client.relocation.clone().unwrap_or_default(),
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../crates/lab-trace/tests/fixtures/strace-foo.txt");

    #[test]
    fn finds_the_load_of_libfoobar_in_a_real_trace_of_foo() {
        let calls = strace::parse(FIXTURE);
        let loads = lib_loads(&calls, 4096);
        let names: Vec<&str> = loads.iter().map(|l| file_name(&l.path)).collect();
        assert_eq!(names, ["libfoobar.so", "libgcc_s.so.1", "libc.so.6"]);
        let l = &loads[0];
        assert_eq!(l.fd, 3);
        assert_eq!(
            l.failed_opens.len(),
            9,
            "the RUNPATH search before deps/ succeeded"
        );
        assert_eq!(l.mmaps.len(), 4);
        assert!(l.anon.is_empty());
        assert!(l.close.is_some());
        assert_eq!(
            l.reservation(4096),
            Some((0x7fc211eb0000, 0x7fc211eb0000 + 0x4f000))
        );
        let first = &l.mmaps[0];
        assert!(!first.arg_flags(3).contains(&"MAP_FIXED"));
        assert!(l.mmaps[1..]
            .iter()
            .all(|m| m.arg_flags(3).contains(&"MAP_FIXED")));
        assert_eq!(l.mmaps[1].arg_flags(2), ["PROT_READ", "PROT_EXEC"]);
        // RELRO: one mprotect inside libfoobar.so (the others belong to libc, libgcc_s, foo).
        assert_eq!(l.mprotects.len(), 1);
        assert_eq!(l.mprotects[0].arg_u64(0), Some(0x7fc211efa000));
        // libc needed an anonymous map for its .bss; the ld.so.cache mapping is no library.
        assert_eq!(loads[2].anon.len(), 1);
        assert_eq!(loads[2].anon[0].ret_u64(), Some(0x7fc211e79000));
    }

    #[test]
    fn holder_is_the_last_mapping_covering_the_address() {
        let calls = strace::parse(FIXTURE);
        let l = &lib_loads(&calls, 4096)[0];
        // In the reservation's first page: still the reservation.
        assert_eq!(l.holder_of(0x7fc211eb0100, 4096), Some(0));
        // Code: the PROT_EXEC map replaced that part of the reservation.
        assert_eq!(l.holder_of(0x7fc211ec1d00, 4096), Some(1));
        // .data/.bss: the last read+write map.
        assert_eq!(l.holder_of(0x7fc211efd944, 4096), Some(3));
        assert_eq!(l.holder_of(0x7fc211f00000, 4096), None);
    }

    #[test]
    fn roles_follow_the_protection_and_flags() {
        let calls = strace::parse(FIXTURE);
        let l = &lib_loads(&calls, 4096)[0];
        assert!(role_of(&l.mmaps[0], true).starts_with("the reservation"));
        assert!(role_of(&l.mmaps[1], false).starts_with("code"));
        assert!(role_of(&l.mmaps[3], false).contains("copy-on-write"));
        assert!(role_of(&l.mmaps[3], false).contains("MAP_FIXED"));
    }

    #[test]
    fn parses_maps_and_smaps_of_the_library() {
        let maps = parse_maps(
            "7f0000000000-7f0000001000 r-xp 00010000 fe:00 5318512   /t/deps/libfoobar.so\n\
             7f0000002000-7f0000003000 rw-p 00000000 00:00 0\n",
        );
        assert_eq!(maps.len(), 2);
        assert_eq!(maps[0].offset, 0x10000);
        assert_eq!(maps[0].path, "/t/deps/libfoobar.so");
        assert_eq!(maps[1].path, "");
        let smaps = smaps_of_lib(
            "7f0000000000-7f0000001000 r-xp 00010000 fe:00 5318512   /t/deps/libfoobar.so\n\
             Size:                  4 kB\n\
             Rss:                   4 kB\n\
             Pss:                   2 kB\n\
             Shared_Clean:          4 kB\n\
             VmFlags: rd ex mr mw me\n\
             7f0000002000-7f0000003000 rw-p 00000000 00:00 0\n\
             Rss:                   4 kB\n",
        );
        assert_eq!(smaps.len(), 1);
        assert_eq!(
            smaps[0].1,
            [
                ("Rss".to_string(), 4),
                ("Pss".to_string(), 2),
                ("Shared_Clean".to_string(), 4)
            ]
        );
    }

    fn seen_from_fixture(name: &'static str, values: Vec<i64>) -> Seen {
        let calls = strace::parse(FIXTURE);
        let all_loads = lib_loads(&calls, 4096);
        Seen {
            name,
            pid: 9925,
            symbols: vec![
                ("setbaz".into(), 0x7fc211ec1d00),
                ("getbaz".into(), 0x7fc211ec1cd0),
                ("baz".into(), 0x7fc211efe944),
            ],
            live: Live {
                maps: parse_maps(
                    "7fc211ec1000-7fc211efa000 r-xp 00010000 fe:00 1 /t/deps/libfoobar.so\n",
                ),
                smaps: Vec::new(),
                code_pfns: Ok(vec![(0x10, 0)]),
                baz_pfn: Ok(None),
            },
            load: all_loads.first().cloned(),
            all_loads,
            values,
        }
    }

    fn client(relocation: &str) -> Client {
        Client {
            baz_address: 0x55f72be5a058,
            baz_line: "55f72be5a000-55f72be5b000 rw-p 00003000 fe:00 2 /s/client".into(),
            getbaz_line: "7f00-7f01 r-xp 00010000 fe:00 1 /t/deps/libfoobar.so".into(),
            output: "after setbaz(42): baz = 42, getbaz() = 42\nafter baz = 7: getbaz() = 7\n"
                .into(),
            relocation: Some(relocation.into()),
            compile: "cc client.c".into(),
        }
    }

    #[test]
    fn the_report_data_has_the_documented_shape() {
        let seen = [
            seen_from_fixture("foo", vec![17, 17, 17]),
            seen_from_fixture("bar", vec![1, 2, 3, 4]),
        ];
        let r = explain(4096, &seen, &client("R_X86_64_COPY"), None, None);
        assert_eq!(r.step, 4);
        assert_eq!(r.answers().count(), 5);
        let p = &r.findings["programs"][0];
        assert_eq!(p["name"], "foo");
        assert_eq!(p["pid"], 9925);
        assert_eq!(p["maps"][0]["perms"], "r-xp");
        assert_eq!(p["maps"][0]["offset"], "0x10000");
        assert_eq!(p["symbols"][2]["name"], "baz");
        assert_eq!(p["symbols"][2]["address"], "0x7fc211efe944");
        let m = &p["mmaps"][1];
        assert_eq!(m["addr"], "0x7fc211ec1000");
        assert_eq!(m["len"], 233472);
        assert_eq!(m["prot"], "PROT_READ|PROT_EXEC");
        assert_eq!(m["flags"], "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE");
        assert_eq!(m["fd"], 3);
        assert_eq!(m["offset"], "0x10000");
        assert_eq!(m["result"], "0x7fc211ec1000");
        assert!(m["raw"].as_str().unwrap().contains("mmap(0x7fc211ec1000"));
        assert_eq!(p["mmaps"][0]["addr"], "0x0");
        assert_eq!(r.findings["programs"][1]["baz_values"], json!([1, 2, 3, 4]));
        // Frame numbers read as zero: unknown, not "shared".
        assert_eq!(r.findings["shared_code_pfns"], Value::Null);
        assert_eq!(
            r.findings["c_client"],
            json!({"baz_address": "0x55f72be5a058", "inside_libfoobar": false,
                   "relocation": "R_X86_64_COPY"})
        );
        // Where each symbol lies comes from the trace: functions in the exec map (#2), baz in
        // the last read+write map (#4).
        assert!(r
            .answers()
            .nth(1)
            .unwrap()
            .answer
            .contains("setbaz = 0x7fc211ec1d00: mmap #2"));
        assert!(r
            .answers()
            .nth(1)
            .unwrap()
            .answer
            .contains("baz = 0x7fc211efe944: mmap #4"));
        assert!(r.answers().nth(3).unwrap().answer.contains("all 17"));
    }

    #[test]
    fn a_contradicting_run_is_reported_as_such() {
        // If foo had seen bar's values, or the client had no COPY relocation, the answers must
        // say so instead of reciting the theory.
        let seen = [
            seen_from_fixture("foo", vec![17, 2, 3]),
            seen_from_fixture("bar", vec![1, 2, 3]),
        ];
        let r = explain(4096, &seen, &client("R_X86_64_GLOB_DAT"), None, None);
        assert!(
            r.answers().nth(3).unwrap().answer.contains("NOT all 17"),
            "{}",
            r.answers().nth(3).unwrap().answer
        );
        assert!(r.answers().nth(3).unwrap().answer.contains("contradicts"));
        assert!(r
            .answers()
            .nth(4)
            .unwrap()
            .answer
            .contains("No COPY relocation"));
    }

    #[test]
    fn reads_relocations_of_a_real_binary() {
        // The running test binary is a PIE: it has dynamic relocations, and none against baz.
        let exe = std::env::current_exe().unwrap();
        assert_eq!(relocation_against(&exe, "baz").unwrap(), None);
        assert!(relocation_against(Path::new("/nonexistent/x"), "baz").is_err());
    }
}
