//! persist as a store (issue 14): readers in other processes take no lock and, looping through
//! lookups while a writer loads, grows, rehashes, overwrites, deletes and compacts, never see
//! a wrong value or go back in time; a lookup completes while another process holds the
//! writer lock; a compaction killed at any instant loses nothing; writers still exclude each
//! other, and one that waited on a file a compaction replaced writes to the new one.
//!
//! The reader processes are this test binary run again (`--exact` on the same test, with
//! `PERSIST_READER` set), so a reader is real code in a separate process with its own mapping.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, persist, tempdir, Rng, BIN};
use persist::{Table, TableMut, WriteOptions};

/// Keys `key-0 .. key-STABLE` are put before the readers start and never deleted.
const STABLE: u64 = 2_000;
/// Keys up to this one may be deleted, re-put, or inserted while the readers read.
const ALL: u64 = 12_000;

fn key(i: u64) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// The value of `key-i` at `version`: names its key and version, padded to a length that
/// depends on both (so records differ in size and a torn or misplaced one cannot pass).
fn value(i: u64, version: u64) -> Vec<u8> {
    format!(
        "key-{i}={version}|{}",
        "p".repeat(((version * 7 + i) % 61) as usize)
    )
    .into_bytes()
}

/// The version a value of `key-i` carries, if it is one of its values.
fn version_of(i: u64, v: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(v).ok()?;
    let rest = text.strip_prefix(&format!("key-{i}="))?;
    let (ver, _) = rest.split_once('|')?;
    let ver: u64 = ver.parse().ok()?;
    (value(i, ver) == v).then_some(ver)
}

/// What one reader checks of one answer; returns a violation.
struct Seen {
    last: HashMap<u64, u64>,
}

impl Seen {
    fn check(&mut self, i: u64, got: Option<&[u8]>) -> Result<(), String> {
        let Some(v) = got else {
            if i < STABLE {
                return Err(format!("key-{i} is never deleted, yet a lookup missed it"));
            }
            return Ok(());
        };
        let Some(ver) = version_of(i, v) else {
            return Err(format!(
                "key-{i} has a value that is not one of its own: {:?}",
                String::from_utf8_lossy(v)
            ));
        };
        let last = self.last.entry(i).or_insert(0);
        if ver < *last {
            return Err(format!(
                "key-{i} went back in time: version {ver} after {last}"
            ));
        }
        *last = ver;
        Ok(())
    }
}

/// The reader process: lookups, batched lookups and full scans until `stop` exists; prints a
/// progress line every 500 operations and a summary at the end, exits 1 on a violation.
fn reader_main(file: &Path, stop: &Path, seed: u64) {
    let t = Table::open(file).expect("reader opens the table");
    let mut rng = Rng(seed | 1);
    let mut seen = Seen {
        last: HashMap::new(),
    };
    let (mut gets, mut scans) = (0u64, 0u64);
    let mut out = std::io::stdout();
    let fail = |msg: String| -> ! {
        let _ = writeln!(std::io::stdout(), "violation: {msg}");
        std::process::exit(1);
    };
    let mut op = 0u64;
    while !stop.exists() {
        op += 1;
        match op % 64 {
            0 => {
                // A full scan: stable keys once each, every value one of its key's.
                let mut stable = vec![0u32; STABLE as usize];
                let mut bad = None;
                t.for_each(|k, v| {
                    let text = String::from_utf8_lossy(k);
                    let i: u64 = match text.strip_prefix("key-").and_then(|n| n.parse().ok()) {
                        Some(i) => i,
                        None => return bad = Some(format!("a scan listed key {text:?}")),
                    };
                    if i < STABLE {
                        stable[i as usize] += 1;
                    }
                    if let Err(e) = seen.check(i, Some(v)) {
                        bad = Some(e);
                    }
                })
                .unwrap_or_else(|e| fail(format!("scan failed: {e}")));
                if let Some(e) = bad {
                    fail(e);
                }
                if let Some(i) = stable.iter().position(|n| *n != 1) {
                    fail(format!("a scan listed key-{i} {} times", stable[i]));
                }
                scans += 1;
            }
            1..=8 => {
                let ids: Vec<u64> = (0..16).map(|_| rng.below(ALL)).collect();
                let keys: Vec<Vec<u8>> = ids.iter().map(|&i| key(i)).collect();
                let got = t
                    .get_many(&keys)
                    .unwrap_or_else(|e| fail(format!("get_many failed: {e}")));
                for (&i, v) in ids.iter().zip(got) {
                    seen.check(i, v).unwrap_or_else(|e| fail(e));
                }
                gets += 16;
            }
            _ => {
                let i = rng.below(ALL);
                let got = t
                    .get(&key(i))
                    .unwrap_or_else(|e| fail(format!("get key-{i} failed: {e}")));
                seen.check(i, got).unwrap_or_else(|e| fail(e));
                gets += 1;
            }
        }
        if op % 500 == 0 {
            let _ = writeln!(out, "progress {gets}");
            let _ = out.flush();
        }
    }
    let _ = writeln!(
        out,
        "done gets={gets} scans={scans} mappings={}",
        t.mappings()
    );
}

struct Reader {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    finished: bool,
}

impl Drop for Reader {
    /// A failing test must not leave its reader processes running.
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn_reader(test: &str, file: &Path, stop: &Path, seed: u64) -> Reader {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("PERSIST_READER", file)
        .env("PERSIST_READER_STOP", stop)
        .env("PERSIST_READER_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Reader {
        child,
        lines,
        finished: false,
    }
}

/// Runs the reader if this process is one (see the module docs); returns whether it was.
fn run_as_reader() -> bool {
    let Some(file) = std::env::var_os("PERSIST_READER") else {
        return false;
    };
    let stop = std::env::var_os("PERSIST_READER_STOP").unwrap();
    let seed = std::env::var("PERSIST_READER_SEED")
        .unwrap()
        .parse()
        .unwrap();
    reader_main(Path::new(&file), Path::new(&stop), seed);
    true
}

impl Reader {
    /// Waits (bounded) for the next progress line; returns its gets count.
    fn progress(&self, what: &str) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with("progress ") => return l[9..].parse().unwrap(),
                Ok(l) if l.starts_with("violation") || l.starts_with("done") => {
                    panic!("{what}: reader said {l}")
                }
                Ok(_) => {} // the test harness's own lines ("running 1 test", ...)
                Err(_) => panic!("{what}: no progress from a reader within 60 s"),
            }
        }
    }

    /// Waits for the reader to finish; returns its summary line.
    fn finish(mut self) -> String {
        let status = self.child.wait().unwrap();
        self.finished = true;
        let lines: Vec<String> = self.lines.iter().collect(); // until the pipe closes
        let violations: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("violation"))
            .collect();
        assert!(violations.is_empty(), "{violations:?}");
        assert!(status.success(), "reader failed: {status:?} {lines:?}");
        lines
            .into_iter()
            .rev()
            .find(|l| l.starts_with("done "))
            .expect("a summary line")
    }
}

fn summary_field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn readers_in_other_processes_never_see_a_wrong_value_during_any_write() {
    const TEST: &str = "readers_in_other_processes_never_see_a_wrong_value_during_any_write";
    if run_as_reader() {
        return;
    }
    let d = tempdir("concurrent");
    let path = d.path().join("t.tbl");
    let stop = d.path().join("stop");
    let mut version = 1u64;
    let mut w = TableMut::create(&path, 3).unwrap();
    for i in 0..STABLE {
        w.put(&key(i), &value(i, version)).unwrap();
    }
    let mut rng = Rng(common::seed());
    let readers: Vec<Reader> = (0..2)
        .map(|n| spawn_reader(TEST, &path, &stop, rng.next() + n))
        .collect();
    // Every reader makes progress while this process holds the writer lock: they take none.
    for r in &readers {
        r.progress("while the writer holds its lock");
    }
    let mut present: HashMap<u64, u64> = (0..STABLE).map(|i| (i, 1)).collect();
    let mut compactions = 0;
    let growths_before = w.write_stats();
    for round in 0..6 {
        // Inserts of new keys (growth and rehash), overwrites, deletes and re-puts.
        for _ in 0..2_500 {
            version += 1;
            let i = match rng.below(4) {
                0 => rng.below(STABLE),
                _ => STABLE + rng.below(ALL - STABLE),
            };
            if i >= STABLE && present.contains_key(&i) && rng.below(3) == 0 {
                assert!(w.delete(&key(i)).unwrap());
                present.remove(&i);
            } else {
                w.put(&key(i), &value(i, version)).unwrap();
                present.insert(i, version);
            }
        }
        if round % 2 == 1 {
            w.compact().unwrap();
            compactions += 1;
        }
        for r in &readers {
            r.progress(&format!("round {round}"));
        }
    }
    let ws = w.write_stats();
    assert!(ws.file_growths > growths_before.file_growths, "{ws:?}");
    assert!(ws.rehashes > growths_before.rehashes, "{ws:?}");
    assert!(ws.compactions >= compactions, "{ws:?}");
    w.close().unwrap();
    std::fs::write(&stop, b"").unwrap();
    for r in readers {
        let line = r.finish();
        eprintln!("reader: {line}");
        assert!(summary_field(&line, "gets") > 1000, "{line}");
        assert!(summary_field(&line, "scans") > 0, "{line}");
        assert!(
            summary_field(&line, "mappings") >= 2,
            "the reader followed the growth and the compactions: {line}"
        );
    }
    // And the final table is exactly the model.
    let t = Table::open(&path).unwrap();
    let report = t.verify().unwrap();
    assert_eq!(report.entries, present.len() as u64);
    for i in 0..ALL {
        let want = present.get(&i).map(|&v| value(i, v));
        assert_eq!(t.get(&key(i)).unwrap(), want.as_deref(), "key-{i}");
    }
}

#[test]
fn a_get_completes_while_another_process_holds_the_writer_lock() {
    let d = tempdir("nolock");
    let path = d.path().join("t.tbl");
    let ps = path.to_str().unwrap();
    common::build(&path, 100);
    let mut w = TableMut::open(&path, WriteOptions::default()).unwrap();
    w.put(b"k1", b"new").unwrap();
    // This process holds the writers' flock: a reader process must not wait for it.
    let mut child = Command::new(BIN)
        .args(["get", ps, "k1", "k99"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        let pid = child.id().to_string();
        let waiting = std::fs::read_to_string("/proc/locks")
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("->") && l.split_whitespace().any(|w| w == pid));
        assert!(!waiting, "the reader is waiting for a lock (/proc/locks)");
        assert!(
            Instant::now() < deadline,
            "the reader has not finished in 30 s while a writer holds the lock"
        );
        std::thread::yield_now();
    };
    let out = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "new\nv99-xxxxxxxx\n"
    );
    // list and stats too.
    assert!(ok(&["list", ps]).contains("k1\tnew\n"));
    assert!(ok(&["stats", ps]).contains("entries         100"));
    w.close().unwrap();
}

#[test]
fn readers_holding_the_old_file_keep_a_valid_mapping_and_follow_a_compaction() {
    let d = tempdir("follow");
    let path = d.path().join("t.tbl");
    let mut w = TableMut::create(&path, 3).unwrap();
    for i in 0..500u64 {
        w.put(&key(i), &value(i, 1)).unwrap();
        w.put(&key(i), &value(i, 2)).unwrap();
    }
    let t = Table::open(&path).unwrap();
    let before = t.get(&key(7)).unwrap().unwrap();
    assert_eq!(before, value(7, 2));
    let old_inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    let garbage = w.stats().garbage_bytes;
    assert!(garbage > 500 * 32, "{garbage}");
    let c = w.compact().unwrap();
    assert_eq!(c.entries, 500);
    assert!(c.arena_bytes_after < c.arena_bytes_before, "{c:?}");
    assert_eq!(w.stats().garbage_bytes, 0, "{c:?}");
    let new_inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    assert_ne!(old_inode, new_inode, "renamed over, not rewritten in place");
    w.put(&key(7), &value(7, 3)).unwrap();
    // The slice handed out before still reads the old value: its mapping is alive.
    assert_eq!(before, value(7, 2));
    // The reader moves to the new file and sees the new value.
    assert_eq!(t.get(&key(7)).unwrap(), Some(&value(7, 3)[..]));
    assert_eq!(t.get(&key(8)).unwrap(), Some(&value(8, 2)[..]));
    assert!(t.mappings() >= 2);
    w.close().unwrap();
    assert!(!persist::compact_path(&path).exists());
    t.verify().unwrap();
}

#[test]
fn a_writer_waiting_on_a_compacted_file_writes_to_the_new_one() {
    let d = tempdir("waiter");
    let path = d.path().join("t.tbl");
    let ps = path.to_str().unwrap();
    common::build(&path, 200);
    let mut holder = TableMut::open(&path, WriteOptions::default()).unwrap();
    let child = Command::new(BIN)
        .args(["put", ps, "from-waiter", "yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("->") && l.split_whitespace().any(|w| w == pid))
    {
        assert!(Instant::now() < deadline, "the second writer never waited");
        std::thread::yield_now();
    }
    // Two writers exclude each other: --no-wait fails clearly.
    common::fails(
        &["put", "--no-wait", ps, "k", "v"],
        1,
        "is locked by another writer",
    );
    holder.compact().unwrap();
    holder.put(b"from-holder", b"yes").unwrap();
    holder.close().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both writes are in the file the path names (the waiter noticed the rename).
    assert_eq!(ok(&["get", ps, "from-waiter", "from-holder"]), "yes\nyes\n");
    ok(&["verify", ps]);
}

#[test]
fn compaction_killed_at_random_points_loses_nothing() {
    let d = tempdir("kill-compact");
    let base = d.path().join("base.tbl");
    let mut w = TableMut::create_with(
        &base,
        3,
        WriteOptions {
            auto_compact: false,
            ..WriteOptions::default()
        },
    )
    .unwrap();
    let n = 20_000u64;
    for v in 1..=3 {
        for i in 0..n {
            w.put(&key(i), &value(i, v)).unwrap();
        }
    }
    for i in (0..n).step_by(5) {
        w.delete(&key(i)).unwrap();
    }
    w.close().unwrap();
    let bytes = std::fs::read(&base).unwrap();
    let path = d.path().join("t.tbl");
    let ps = path.to_str().unwrap().to_string();
    let scratch = persist::compact_path(&path);
    let mut rng = Rng(common::seed());
    // How long an uninterrupted compaction takes, to spread the kills over it.
    std::fs::write(&path, &bytes).unwrap();
    let t0 = Instant::now();
    ok(&["compact", &ps]);
    let full = t0.elapsed();
    let (mut before, mut after) = (0, 0);
    for round in 0..12 {
        std::fs::write(&path, &bytes).unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        let mut child = Command::new(BIN)
            .args(["compact", &ps])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = full.mul_f64(rng.below(1000) as f64 / 1000.0);
        let start = Instant::now();
        while start.elapsed() < delay {
            std::hint::spin_loop();
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        let replaced =
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap()) != inode;
        if status.signal() == Some(libc::SIGKILL) && !replaced {
            before += 1;
        } else {
            after += 1;
        }
        let verify = persist(&["verify", &ps], b"");
        assert!(
            verify.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let t = Table::open(&path).unwrap();
        for i in 0..n {
            let want = (i % 5 != 0).then(|| value(i, 3));
            assert_eq!(
                t.get(&key(i)).unwrap(),
                want.as_deref(),
                "round {round}: key-{i}"
            );
        }
        drop(t);
        // The next writer removes what a killed compaction left, and the table goes on.
        ok(&["put", &ps, "after", "ok"]);
        assert!(!scratch.exists(), "round {round}: the scratch file is left");
    }
    assert!(
        before > 0,
        "no kill landed before the rename ({after} after)"
    );
}

#[test]
fn automatic_compaction_under_kills_keeps_every_returned_put() {
    let d = tempdir("kill-auto");
    let path = d.path().join("t.tbl");
    let ps = path.to_str().unwrap().to_string();
    let mut rng = Rng(common::seed());
    let mut compacted_rounds = 0;
    for round in 0..6 {
        let _ = std::fs::remove_file(&path);
        ok(&["create", &ps]);
        // 100 keys overwritten over and over: the arena fills with garbage and the writer
        // compacts on its own (every ~1 MiB) while being killed at a random moment.
        let mut child = Command::new(BIN)
            .args(["load", "--echo", &ps])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let mut buf = Vec::new();
            for v in 1..=600u64 {
                for i in 0..100u64 {
                    buf.extend_from_slice(&key(i));
                    buf.push(b'\t');
                    buf.extend_from_slice(&value(i, v));
                    buf.push(b'\n');
                }
                if stdin.write_all(&buf).is_err() {
                    return;
                }
                buf.clear();
            }
        });
        let kill_after = 20_000 + rng.below(35_000);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut echoed = 0u64;
        let mut line = String::new();
        while echoed < kill_after {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            echoed += 1;
        }
        let _ = child.kill();
        child.wait().unwrap();
        while {
            line.clear();
            out.read_line(&mut line).unwrap() > 0
        } {
            echoed += 1;
        }
        feeder.join().unwrap();
        // Puts go in order key-0..key-99 per version: the echoed count says which version of
        // each key has returned.
        let verify = persist(&["verify", &ps], b"");
        assert!(
            verify.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let t = Table::open(&path).unwrap();
        for i in 0..100u64 {
            let returned = echoed / 100 + u64::from(i < echoed % 100);
            let got = t.get(&key(i)).unwrap();
            let ver = got.and_then(|v| version_of(i, v)).unwrap_or(0);
            assert!(
                ver >= returned,
                "round {round}: key-{i} holds version {ver} but version {returned} returned"
            );
        }
        // Every record is at least 32 bytes: an arena smaller than that many per put means
        // space came back.
        let stats = t.stats().unwrap();
        if stats.arena_end < echoed * 32 {
            compacted_rounds += 1;
        }
        drop(t);
        ok(&["put", &ps, "after", "ok"]);
        assert!(!persist::compact_path(&path).exists());
    }
    assert!(
        compacted_rounds > 0,
        "the writer never compacted on its own"
    );
}

#[test]
fn space_comes_back_after_many_overwrites_of_one_key() {
    let d = tempdir("space");
    let path = d.path().join("t.tbl");
    let mut w = TableMut::create(&path, 3).unwrap();
    for v in 0..300_000u64 {
        w.put(b"the-key", format!("value-{v}").as_bytes()).unwrap();
    }
    let ws = w.write_stats();
    w.close().unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    // Without compaction the arena holds 300,000 records of 32 bytes (9.6 MB, a 16 MiB
    // file); with it, the file stays within the 1 MiB threshold's doubling.
    assert!(len <= 4 << 20, "{len} bytes for one entry ({ws:?})");
    assert!(ws.compactions >= 1, "{ws:?}");
    assert_eq!(
        Table::open(&path).unwrap().get(b"the-key").unwrap(),
        Some(&b"value-299999"[..])
    );
}

#[test]
fn a_reader_remaps_when_a_writer_grew_the_file_past_its_mapping() {
    let d = tempdir("remap");
    let path = d.path().join("t.tbl");
    let mut w = TableMut::create(&path, 3).unwrap();
    w.put(b"first", b"1").unwrap();
    let t = Table::open(&path).unwrap();
    let mapped = t.mapped_len();
    for i in 0..20_000u64 {
        w.put(&key(i), &value(i, 1)).unwrap();
    }
    assert!(std::fs::metadata(&path).unwrap().len() > mapped * 16);
    // The writer holds its lock all along; the reader maps the grown file on its own.
    assert_eq!(t.get(&key(19_999)).unwrap(), Some(&value(19_999, 1)[..]));
    assert_eq!(t.get(b"first").unwrap(), Some(&b"1"[..]));
    assert!(t.mapped_len() > mapped);
    assert_eq!(t.mappings(), 2);
    w.close().unwrap();
}

#[test]
fn get_many_answers_in_the_order_asked_with_absent_keys_as_none() {
    let d = tempdir("get-many");
    let path = d.path().join("t.tbl");
    let kv = common::build(&path, 1000);
    let t = Table::open(&path).unwrap();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for i in (0..1000).rev().step_by(7) {
        keys.push(kv[i].0.clone());
        keys.push(format!("absent-{i}").into_bytes());
    }
    let got = t.get_many(&keys).unwrap();
    assert_eq!(got.len(), keys.len());
    for (k, v) in keys.iter().zip(&got) {
        assert_eq!(*v, t.get(k).unwrap(), "{}", String::from_utf8_lossy(k));
    }
    assert_eq!(got.iter().filter(|v| v.is_some()).count(), keys.len() / 2);
    assert!(t.get_many::<&[u8]>(&[]).unwrap().is_empty());
}

/// Version 3 reuses a replaced slot array's space for new records while readers may still be
/// probing it. A reader thread looks up keys whose put has returned (single gets, pipelined
/// batches at several depths, and scans) while the writer inserts from an 8-slot table through
/// a rehash after another: every answer must be the key's value, never "absent", a wrong value
/// or an error.
#[test]
fn readers_probing_a_replaced_slot_array_never_see_a_wrong_or_missing_value() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let d = tempdir("reuse");
    let path = d.path().join("t.tbl");
    let n = 30_000u64;
    let mut w = TableMut::create(&path, 3).unwrap();
    w.put(&key(0), &value(0, 0)).unwrap();
    let done = AtomicU64::new(1);
    let finished = AtomicBool::new(false);
    let (checked, rehashes) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let t = Table::open(&path).unwrap();
            let mut rng = Rng(common::seed());
            let (mut checked, mut out) = (0u64, Vec::new());
            while !finished.load(Ordering::Acquire) {
                let upto = done.load(Ordering::Acquire);
                let i = rng.below(upto);
                assert_eq!(t.get(&key(i)).unwrap(), Some(&value(i, 0)[..]), "key {i}");
                let keys: Vec<Vec<u8>> = (0..16).map(|_| key(rng.below(upto))).collect();
                t.get_many_into_depth(&keys, &mut out, 1 + (i as usize % 12))
                    .unwrap();
                for (k, v) in keys.iter().zip(&out) {
                    assert!(v.is_some(), "{} absent", String::from_utf8_lossy(k));
                }
                if checked % 500 == 0 {
                    let mut seen = 0u64;
                    t.for_each(|_, _| seen += 1).unwrap();
                    assert!(seen >= upto, "a scan saw {seen} of at least {upto} keys");
                }
                checked += 17;
            }
            checked
        });
        for i in 1..n {
            w.put(&key(i), &value(i, 0)).unwrap();
            done.store(i + 1, Ordering::Release);
        }
        finished.store(true, Ordering::Release);
        (reader.join().unwrap(), w.write_stats().rehashes)
    });
    assert!(rehashes >= 10, "only {rehashes} rehashes");
    assert!(checked > 0);
    // The replaced arrays' space holds records: the arena is little more than records + slots.
    let s = w.stats();
    assert!(
        s.garbage_bytes * 10 < s.arena_end,
        "garbage {} of an arena of {}",
        s.garbage_bytes,
        s.arena_end
    );
    w.close().unwrap();
    assert_eq!(Table::open(&path).unwrap().verify().unwrap().entries, n);
}

/// `Access::Random` reads the slot array in at open (`MADV_WILLNEED`), so cold lookups fault
/// only on their records; `Access::RandomPages` (what `persist get` uses) reads nothing it
/// does not touch. Measured with mincore after evicting the file.
#[test]
fn random_access_reads_the_slot_array_in_and_random_pages_does_not() {
    let d = tempdir("willneed");
    let path = d.path().join("t.tbl");
    common::build(&path, 20_000);
    let stats = Table::open(&path).unwrap().stats().unwrap();
    let page = persist::page_size() as u64;
    let array_pages = (stats.slot_count * 8).div_ceil(page);
    assert!(array_pages >= 20, "{array_pages}");
    let evict = || {
        let r = persist::page_cache_residency(&path, true).unwrap();
        r.pages_resident_after == 0
    };
    if !evict() {
        return common::skip("willneed", "posix_fadvise(DONTNEED) evicts nothing here");
    }
    let t = Table::open_for(&path, persist::Access::RandomPages).unwrap();
    t.stats().unwrap();
    assert!(
        (t.resident_pages().unwrap() as u64) < 4,
        "RandomPages read around the header"
    );
    drop(t);
    assert!(evict());
    let t = Table::open_for(&path, persist::Access::Random).unwrap();
    // The read-in is asynchronous: wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while (t.resident_pages().unwrap() as u64) < array_pages && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        t.resident_pages().unwrap() as u64 >= array_pages,
        "{} of the slot array's {array_pages} pages resident",
        t.resident_pages().unwrap()
    );
}
