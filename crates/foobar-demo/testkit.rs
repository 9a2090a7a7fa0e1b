//! Test helpers shared by the integration tests of foo and bar (each includes this file with
//! `#[path]`), so the two programs are tested by one piece of code.

#![allow(dead_code)] // Each test crate uses a different subset.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

/// How long to wait for a line the program should print at once.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// A temporary directory for one test (the programs run with it as working directory, to show
/// they find libfoobar.so from anywhere), removed when dropped (also when the test fails).
pub fn tempdir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("foobar-demo-{name}-"))
        .tempdir()
        .unwrap()
}

/// A command for `exe` running in `dir`. cargo test puts target directories on
/// LD_LIBRARY_PATH, which would beat the RUNPATH we are testing: remove it.
pub fn command(exe: &Path, dir: &TempDir) -> Command {
    let mut c = Command::new(exe);
    c.current_dir(dir.path()).env_remove("LD_LIBRARY_PATH");
    c
}

/// A running program whose stdout lines arrive on a channel; killed and reaped when dropped.
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the program");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next stdout line, waiting at most [`LINE_TIMEOUT`]; `None` at end of output.
    pub fn next_line(&self) -> Option<String> {
        match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok(l) => Some(l),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no output for {LINE_TIMEOUT:?}"),
        }
    }

    /// The next stdout line parsed as JSON (the program runs with `--json`). Every line must
    /// also read as the typed event xtask reads (`foobar_events::Event`).
    pub fn next_json(&self) -> Option<Value> {
        self.next_line().map(|l| {
            if let Err(e) = serde_json::from_str::<foobar_events::Event>(&l) {
                panic!("not a foobar_events::Event: {e}: {l}");
            }
            serde_json::from_str(&l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}"))
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `sig` to the program.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet (we hold
        // the Child), so the pid cannot have been reused.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill failed: {}", std::io::Error::last_os_error());
    }

    /// Waits for the exit, returning the status code and stderr.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        let status = self.child.wait().unwrap();
        (status.code(), stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of /proc/PID/maps: (start, end, perms, path).
pub fn maps_of(pid: i32) -> Vec<(u64, u64, String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (s, e) = f.next()?.split_once('-')?;
            let perms = f.next()?.to_string();
            let path = f.nth(3).unwrap_or("").to_string();
            Some((
                u64::from_str_radix(s, 16).ok()?,
                u64::from_str_radix(e, 16).ok()?,
                perms,
                path,
            ))
        })
        .collect()
}

pub fn hex(v: &Value) -> u64 {
    let s = v.as_str().expect("a hex string");
    u64::from_str_radix(s.strip_prefix("0x").expect("0x prefix"), 16).unwrap()
}

/// Checks a `start` event against the live /proc/PID/maps of the process: every address lies
/// in a libfoobar.so mapping, functions in `r-xp`, baz in `rw-p`, and the printed map line is
/// that mapping.
pub fn check_start_event(start: &Value, program: &str, live_pid: Option<i32>) {
    assert_eq!(start["event"], "start");
    assert_eq!(start["program"], program);
    let pid = start["pid"].as_i64().unwrap() as i32;
    if let Some(live) = live_pid {
        assert_eq!(pid, live, "printed pid is the process's pid");
    }
    let maps = live_pid.map(maps_of);
    let symbols = start["symbols"].as_array().unwrap();
    let names: Vec<&str> = symbols
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["setbaz", "getbaz", "baz", "bazaddr"]);
    assert_eq!(
        symbols[2]["address"], symbols[3]["address"],
        "bazaddr() answers the address the program reaches baz at (through the GOT)"
    );
    for sym in symbols {
        let addr = hex(&sym["address"]);
        let data = sym["name"] == "baz" || sym["name"] == "bazaddr";
        let want = if data { "rw-p" } else { "r-xp" };
        let map = &sym["map"];
        assert_eq!(map["perms"], want, "{sym}");
        assert!(
            map["path"].as_str().unwrap().ends_with("/libfoobar.so"),
            "{sym}"
        );
        assert!(
            hex(&map["start"]) <= addr && addr < hex(&map["end"]),
            "{sym}"
        );
        assert_eq!(
            hex(&sym["file_offset"]),
            addr - hex(&map["start"]) + hex(&map["offset"]),
            "the place in the file is address - start + offset: {sym}"
        );
        if let Some(maps) = &maps {
            let live = maps
                .iter()
                .find(|(s, e, ..)| *s <= addr && addr < *e)
                .unwrap_or_else(|| panic!("{addr:#x} is in no mapping of {pid}"));
            assert_eq!(live.2, want, "live mapping of {}", sym["name"]);
            assert!(live.3.ends_with("/libfoobar.so"), "live mapping {live:?}");
        }
    }
}

/// `name -> libfoobar.so+0x…` offset, from a start event.
pub fn places(start: &Value) -> Vec<(String, u64)> {
    start["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                hex(&s["file_offset"]),
            )
        })
        .collect()
}

/// Where the library's own `.dynsym` says `name` is in the file: its value (an address relative
/// to the load base) turned into a file offset through the PT_LOAD segment that holds it
/// (`value - p_vaddr + p_offset`). With GNU ld's layout the two are often equal; lld (rustc's
/// default linker on x86-64 Linux) places the code segment a page above its file offset.
pub fn dynsym_file_offset(library: &Path, name: &str) -> u64 {
    use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};
    let data = std::fs::read(library).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let value = file
        .dynamic_symbols()
        .find(|s| s.name() == Ok(name) && s.is_definition())
        .unwrap_or_else(|| panic!("{name} is not defined in {}", library.display()))
        .address();
    let segment = file
        .segments()
        .find(|s| s.address() <= value && value < s.address() + s.size())
        .unwrap_or_else(|| panic!("{name} at {value:#x} is in no PT_LOAD segment"));
    value - segment.address() + segment.file_range().0
}

/// Two start events (two processes) name the same places in libfoobar.so, whatever their
/// addresses, and each place is where the library's dynamic symbol table puts the symbol.
pub fn check_same_places(a: &Value, b: &Value) {
    let (pa, pb) = (places(a), places(b));
    assert_eq!(pa, pb, "the same place in the file in both processes");
    let library = a["symbols"][0]["map"]["path"].as_str().unwrap();
    for (name, offset) in &pa {
        let symbol = if name == "bazaddr" { "baz" } else { name };
        assert_eq!(
            *offset,
            dynsym_file_offset(Path::new(library), symbol),
            "{name}: printed libfoobar.so+{offset:#x}"
        );
    }
}

/// The `baz` values of the remaining `observation` events (numbered without gaps), and the
/// `stop` event, until the run's output ends.
pub fn observations(run: &Running) -> (Vec<i64>, Option<Value>) {
    let mut values = Vec::new();
    let mut last_n = None;
    while let Some(v) = run.next_json() {
        match v["event"].as_str() {
            Some("observation") => {
                let n = v["n"].as_u64().unwrap();
                if let Some(last) = last_n {
                    assert_eq!(n, last + 1, "observations are numbered without gaps");
                }
                last_n = Some(n);
                values.push(v["baz"].as_i64().unwrap());
            }
            Some("stop") => return (values, Some(v)),
            other => panic!("unexpected event {other:?}"),
        }
    }
    (values, None)
}

// ---- ELF: the program links libfoobar.so dynamically --------------------------------------

/// `(DT_NEEDED entries, DT_RUNPATH)` of an ELF executable, read with the object crate.
pub fn dynamic_section(exe: &Path) -> (Vec<String>, Option<String>) {
    use object::read::elf::{Dyn as _, FileHeader as _};
    let data = std::fs::read(exe).unwrap();
    let header = object::elf::FileHeader64::<object::Endianness>::parse(&*data).unwrap();
    let endian = header.endian().unwrap();
    let sections = header.sections(endian, &*data).unwrap();
    let (dynamic, link) = sections
        .dynamic(endian, &*data)
        .unwrap()
        .expect("a dynamically linked executable");
    let strings = sections.strings(endian, &*data, link).unwrap();
    let mut needed = Vec::new();
    let mut runpath = None;
    for d in dynamic {
        let s = || String::from_utf8_lossy(d.string(endian, strings).unwrap()).into_owned();
        match d.tag32(endian) {
            Some(object::elf::DT_NEEDED) => needed.push(s()),
            Some(object::elf::DT_RUNPATH) => runpath = Some(s()),
            _ => {}
        }
    }
    (needed, runpath)
}

/// Asserts `exe` needs libfoobar.so through RUNPATH `$ORIGIN/deps:$ORIGIN`, and that setbaz,
/// getbaz and baz are undefined in it (imported), never defined (the Rust rlib not linked).
pub fn check_links_libfoobar_dynamically(exe: &Path) {
    use object::{Object as _, ObjectSymbol as _};
    let (needed, runpath) = dynamic_section(exe);
    assert!(needed.iter().any(|n| n == "libfoobar.so"), "{needed:?}");
    assert_eq!(runpath.as_deref(), Some("$ORIGIN/deps:$ORIGIN"));
    let data = std::fs::read(exe).unwrap();
    let file = object::File::parse(&*data).unwrap();
    for name in ["setbaz", "getbaz", "baz", "bazaddr"] {
        let dynsym = file
            .dynamic_symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("{name} is not in .dynsym"));
        assert!(
            dynsym.is_undefined(),
            "{name} is defined in {}",
            exe.display()
        );
        assert!(
            !file
                .symbols()
                .any(|s| s.name() == Ok(name) && !s.is_undefined()),
            "{name} has a definition in .symtab: the rlib was linked statically"
        );
    }
}

// ---- the checks each program runs on itself ------------------------------------------------

/// `--json` from an unrelated working directory. While the program runs (no --count, so it is
/// alive while we read its /proc/PID/maps), the start event's addresses are checked against the
/// live mappings and the first observations against `expected`; then a second run with
/// `--count N` prints exactly N observations and a stop event with reason `count`, exit 0.
pub fn check_json_run(exe: &Path, program: &str, expected: &[i64]) {
    let dir = tempdir(&format!("{program}-json"));
    let mut cmd = command(exe, &dir);
    cmd.args(["--json", "--interval-ms", "1"]);
    let run = Running::spawn(cmd);
    let start = run.next_json().expect("a start event");
    check_start_event(&start, program, Some(run.pid()));
    let mut values = Vec::new();
    while values.len() < expected.len() {
        let v = run.next_json().expect("an observation");
        values.push(v["baz"].as_i64().unwrap());
    }
    assert_eq!(values, expected);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait().0, Some(0));

    let mut cmd = command(exe, &dir);
    cmd.args(["--json", "--interval-ms", "1", "--count"])
        .arg(expected.len().to_string());
    let run = Running::spawn(cmd);
    check_start_event(&run.next_json().expect("a start event"), program, None);
    let (values, stop) = observations(&run);
    assert_eq!(values, expected);
    let stop = stop.expect("a stop event");
    assert_eq!(stop["reason"], "count");
    assert_eq!(stop["observations"], expected.len());
    assert_eq!(run.wait().0, Some(0));
}

/// The text output: `pid: N`, four `NAME: 0x… <maps line>` lines, then `baz = V` lines.
pub fn check_text_run(exe: &Path, program: &str, expected: &[i64]) {
    let dir = tempdir(&format!("{program}-text"));
    let out = command(exe, &dir)
        .args(["--interval-ms", "0", "--count"])
        .arg(expected.len().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5 + expected.len(), "{text}");
    assert!(lines[0]
        .strip_prefix("pid: ")
        .unwrap()
        .parse::<u32>()
        .is_ok());
    let offset_of = |line: &str| {
        let place = line.split_whitespace().nth(2).unwrap_or("");
        let hex = place
            .strip_prefix("libfoobar.so+0x")
            .unwrap_or_else(|| panic!("{line}"));
        u64::from_str_radix(hex, 16).unwrap()
    };
    let library = lines[1].rsplit(' ').next().unwrap();
    for (line, name) in lines[1..4].iter().zip(["setbaz", "getbaz", "baz"]) {
        assert_eq!(
            offset_of(line),
            dynsym_file_offset(Path::new(library), name),
            "{line}"
        );
    }
    for (line, (name, perms)) in lines[1..5].iter().zip([
        ("setbaz", "r-xp"),
        ("getbaz", "r-xp"),
        ("baz", "rw-p"),
        ("bazaddr", "rw-p"),
    ]) {
        assert!(line.starts_with(&format!("{name}: 0x")), "{line}");
        assert!(line.contains(&format!(" {perms} ")), "{line}");
        assert!(line.ends_with("/libfoobar.so"), "{line}");
    }
    let values: Vec<String> = expected.iter().map(|v| format!("baz = {v}")).collect();
    assert_eq!(
        lines[5..],
        values.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(count)"), "{stderr}");
}

/// With no --count it runs until Ctrl-C; SIGINT (and SIGTERM) then stop it with status 0 and a
/// stop event naming the signal.
pub fn check_signal_stops_cleanly(exe: &Path, program: &str, sig: i32, name: &str) {
    let dir = tempdir(&format!("{program}-{name}"));
    let mut cmd = command(exe, &dir);
    cmd.args(["--json", "--interval-ms", "20"]);
    let run = Running::spawn(cmd);
    run.next_json().expect("a start event");
    // Wait until it is observing, then interrupt it.
    let obs = run.next_json().expect("an observation");
    assert_eq!(obs["event"], "observation");
    run.signal(sig);
    let (_, stop) = observations(&run);
    let stop = stop.expect("a stop event after the signal");
    assert_eq!(stop["reason"], name);
    let (code, stderr) = run.wait();
    assert_eq!(code, Some(0), "{stderr}");
}

/// A reader that goes away (`| head -1`) ends the program quietly with status 0.
pub fn check_closed_stdout(exe: &Path, program: &str) {
    let dir = tempdir(&format!("{program}-pipe"));
    let mut child = command(exe, &dir)
        .args(["--interval-ms", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("pid: "), "{first}");
    drop(stdout); // like `| head -1`: the next write gets EPIPE
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("error"),
        "{stderr}"
    );
}

/// Usage errors: one `error:` message naming the problem, status 2; --help has examples.
pub fn check_usage(exe: &Path, program: &str) {
    let dir = tempdir(&format!("{program}-usage"));
    for (args, needle) in [
        (&["--count", "0"][..], "--count"),
        (&["--count", "many"][..], "--count"),
        (&["--interval-ms=-5"][..], "--interval-ms"),
        (&["--interval-ms", "99999999999"][..], "--interval-ms"),
        (&["--bogus"][..], "--bogus"),
    ] {
        let out = command(exe, &dir).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let help = command(exe, &dir).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Examples:") && help.contains(&format!("{program} --count 5")));
}

/// `/dev/full`, opened for writing: every write fails with ENOSPC.
fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
}

/// A stdout that cannot be written (`>/dev/full`, a full disk) is a one-line error on stderr and
/// status 1, in text and JSON, never a panic.
pub fn check_full_stdout(exe: &Path, program: &str) {
    let dir = tempdir(&format!("{program}-full-stdout"));
    for json in [false, true] {
        let mut cmd = command(exe, &dir);
        cmd.args(["--count", "2", "--interval-ms", "0"]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.stdout(dev_full()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "json {json}: {stderr}");
        assert_eq!(
            stderr.trim_end(),
            "error: cannot write to stdout: No space left on device (os error 28)",
            "json {json}"
        );
    }
}

/// A stderr that cannot be written (`2>/dev/full`) loses only the notes: the run completes with
/// status 0 and its stdout intact. With both full, the status still says it failed (1), with no
/// panic (101).
pub fn check_full_stderr(exe: &Path, program: &str) {
    let dir = tempdir(&format!("{program}-full-stderr"));
    let out = command(exe, &dir)
        .args(["--count", "2", "--interval-ms", "0"])
        .stderr(dev_full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("baz = ")).count(),
        2,
        "{text}"
    );
    let out = command(exe, &dir)
        .args(["--count", "2"])
        .stdout(dev_full())
        .stderr(dev_full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
