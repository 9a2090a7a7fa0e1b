//! The edges of issue 32, each with real processes, files and threads: a closed stdout is an
//! error before anything happens; a reader never gets an error while a writer compacts and
//! grows; a file size limit (RLIMIT_FSIZE) is one error line, not a SIGXFSZ death, and leaves
//! nothing behind; compaction keeps the slot array when the entries fit in it.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{ok, tempdir, Rng, BIN};
use persist::{Table, TableMut, WriteOptions};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `sh -c SCRIPT persist ARGS...` (the script runs the binary as "$0" "$@"), killed if
/// it takes longer than 30 s.
fn sh(script: &str, args: &[&str]) -> Output {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("sh -c {script:?} {args:?} did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

/// Asserts `out` is a failure with status 1 and one `error:` line containing `needle`.
fn one_error(out: &Output, needle: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "status {:?}: {err}", out.status);
    assert!(err.starts_with("error: "), "{err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    err
}

#[test]
fn a_closed_stdout_is_an_error_before_the_table_is_touched() {
    let dir = tempdir("closed-stdout");
    let t = dir.path().join("t.tbl");
    let closed = r#"exec "$0" "$@" >&-"#;
    // create: no file made.
    let out = sh(closed, &["create", s(&t)]);
    one_error(&out, "cannot write to stdout: Bad file descriptor");
    assert!(
        !t.exists(),
        "create with stdout closed made {}",
        t.display()
    );
    ok(&["create", s(&t)]);
    ok(&["put", s(&t), "k1", "v1"]);
    for args in [
        vec!["get", s(&t), "k1"],
        vec!["list", s(&t)],
        vec!["stats", s(&t)],
        vec!["verify", s(&t)],
        vec!["--json", "get", s(&t), "k1"],
    ] {
        let out = sh(closed, &args);
        one_error(&out, "cannot write to stdout");
    }
    // A write refused: the table is unchanged.
    let out = sh(closed, &["put", s(&t), "k1", "changed"]);
    one_error(&out, "cannot write to stdout");
    let out = sh(closed, &["del", s(&t), "k1"]);
    one_error(&out, "cannot write to stdout");
    assert_eq!(ok(&["get", s(&t), "k1"]), "v1\n");
    // disktable (the same crate's other program) likewise makes no file.
    let course = dir.path().join("table.bin");
    let out = Command::new("sh")
        .args([
            "-c",
            r#"exec "$0" "$@" >&-"#,
            env!("CARGO_BIN_EXE_disktable"),
        ])
        .args(["create", "--course", s(&course)])
        .output()
        .unwrap();
    one_error(&out, "cannot write to stdout: Bad file descriptor");
    assert!(
        !course.exists(),
        "disktable create with stdout closed made a file"
    );
    // stdout redirected to /dev/null is open: that works as before.
    let out = sh(r#"exec "$0" "$@" >/dev/null"#, &["get", s(&t), "k1"]);
    assert!(out.status.success(), "{out:?}");
}

/// A key's value names the key, so a reader can tell a right value from a wrong or torn one.
fn value_for(key: &[u8], len: usize) -> Vec<u8> {
    let mut v = key.to_vec();
    v.push(b'=');
    v.resize(v.len().max(len), b'#');
    v
}

fn is_value_of(key: &[u8], v: &[u8]) -> bool {
    v.len() > key.len()
        && v.starts_with(key)
        && v[key.len()] == b'='
        && v[key.len() + 1..].iter().all(|&b| b == b'#')
}

/// Readers follow a writer that compacts and then grows the new file at once: the reader that
/// opens the compacted file may fstat it before the growth and load a header written after it.
/// It must map again, not report the file truncated. Bounded: 4 s, or the first error.
#[test]
fn readers_get_no_error_while_a_writer_compacts_and_grows() {
    const KEYS: u64 = 600;
    /// Keys below this are never deleted: a reader must always find them.
    const KEPT: u64 = 200;
    // On tmpfs when there is one: a compaction's fsync there costs nothing, so the 4 s hold
    // hundreds of compactions rather than a handful.
    let shm = Path::new("/dev/shm");
    let dir = tempfile::Builder::new()
        .prefix("persist-test-compact-grow-")
        .tempdir_in(if shm.is_dir() { shm } else { Path::new("/tmp") })
        .unwrap();
    let path = dir.path().join("t.tbl");
    let key = |i: u64| format!("key-{i}").into_bytes();
    {
        let mut t = TableMut::create(&path, 10).unwrap();
        for i in 0..KEYS {
            t.put(&key(i), &value_for(&key(i), 40)).unwrap();
        }
        t.close().unwrap();
    }
    let seed = common::seed();
    let stop = AtomicBool::new(false);
    let limit = Duration::from_secs(4);
    let (compactions, errors) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..2u64)
            .map(|r| {
                let (stop, path) = (&stop, &path);
                s.spawn(move || -> Result<u64, String> {
                    let t = Table::open(path).map_err(|e| e.to_string())?;
                    let mut rng = Rng(seed ^ ((r + 1) * 0x9e37_79b9));
                    let mut gets = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let i = rng.below(KEYS);
                        let k = key(i);
                        let got = if r == 0 {
                            t.get(&k)
                        } else {
                            t.get_many(&[&k]).map(|v| v[0])
                        };
                        match got {
                            Ok(Some(v)) if is_value_of(&k, v) => {}
                            Ok(None) if i >= KEPT => {}
                            Ok(other) => {
                                stop.store(true, Ordering::Relaxed);
                                return Err(format!(
                                    "key-{i}: wrong value {:?}",
                                    other.map(String::from_utf8_lossy)
                                ));
                            }
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                return Err(format!("after {gets} gets: {e}"));
                            }
                        }
                        gets += 1;
                    }
                    Ok(gets)
                })
            })
            .collect();
        let opts = WriteOptions {
            auto_compact: false,
            ..WriteOptions::default()
        };
        let mut t = TableMut::open(&path, opts).unwrap();
        let mut rng = Rng(seed);
        let mut compactions = 0u64;
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
            t.compact().unwrap();
            compactions += 1;
            // Grow the fresh file at once: one value longer than its headroom (an eighth of
            // the ~130 KiB it holds; one key holds it, so the table does not swell), then a
            // few ordinary puts and deletes.
            let size = t.stats().file_bytes;
            t.put(b"big", &value_for(b"big", 32 << 10)).unwrap();
            assert!(t.stats().file_bytes > size, "the long value grew the file");
            for _ in 0..100 {
                let i = rng.below(KEYS);
                if i >= KEPT && rng.below(50) == 0 {
                    t.delete(&key(i)).unwrap();
                } else {
                    let len = rng.below(300) as usize;
                    t.put(&key(i), &value_for(&key(i), len)).unwrap();
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        t.close().unwrap();
        let errors: Vec<String> = readers
            .into_iter()
            .filter_map(|r| r.join().unwrap().err())
            .collect();
        (compactions, errors)
    });
    eprintln!("{compactions} compactions, each followed by growth");
    assert!(errors.is_empty(), "readers got errors: {errors:?}");
    assert!(compactions > 0);
}

/// `sh -c` running the binary under a file size limit of `blocks` (512 or 1024 bytes each,
/// as the shell counts them): at most 4096 bytes below.
fn limited(blocks: u32) -> String {
    format!(r#"ulimit -f {blocks} && exec "$0" "$@""#)
}

#[test]
fn a_file_size_limit_is_one_error_line_and_leaves_nothing_behind() {
    let dir = tempdir("fsize");
    let t = dir.path().join("t.tbl");
    // create: the file is not left behind empty (it used to be, after a SIGXFSZ death).
    let out = sh(&limited(1), &["create", s(&t)]);
    one_error(&out, "File too large");
    assert!(!t.exists(), "create under ulimit -f left {}", t.display());
    ok(&["create", s(&t)]);
    ok(&["put", s(&t), "k1", "v1"]);
    let size = std::fs::metadata(&t).unwrap().len();
    assert!(size <= 4096, "a fresh table fits in one page: {size}");
    // put: a value that makes the file grow past the limit.
    let long = "a".repeat(5000);
    let out = sh(&limited(4), &["put", s(&t), "k2", &long]);
    one_error(&out, "File too large");
    common::fails(&["get", s(&t), "k2"], 1, "not found");
    assert_eq!(ok(&["get", s(&t), "k1"]), "v1\n");
    // load --echo: every key echoed was stored, and the table stays valid.
    let input: String = (0..3000).map(|i| format!("key{i}\tvalue{i}\n")).collect();
    let mut child = Command::new("sh")
        .args(["-c", &limited(4), BIN, "load", "--echo", s(&t)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The load stops early: it may close stdin before all of it is written.
    let _ = std::io::Write::write_all(&mut stdin, input.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    one_error(&out, "File too large");
    let echoed = String::from_utf8(out.stdout).unwrap();
    assert!(echoed.lines().count() < 3000, "the limit stopped the load");
    for k in echoed.lines() {
        assert!(
            ok(&["get", s(&t), k]).starts_with("value"),
            "{k} was echoed"
        );
    }
    ok(&["verify", s(&t)]);
    // compact: the copy cannot be written; no scratch file stays, the table is intact.
    let big = dir.path().join("big.tbl");
    ok(&["create", s(&big)]);
    let rows: String = (0..2000).map(|i| format!("key{i}\tvalue{i}\n")).collect();
    let out = common::persist(&["load", s(&big)], rows.as_bytes());
    assert!(out.status.success(), "{out:?}");
    let out = sh(&limited(4), &["compact", s(&big)]);
    one_error(&out, "File too large");
    let scratch = persist::compact_path(&big);
    assert!(!scratch.exists(), "compact left {}", scratch.display());
    ok(&["verify", s(&big)]);
    assert_eq!(ok(&["get", s(&big), "key1999"]), "value1999\n");
}

/// A fresh table, its slot array grown by rehashes to anywhere between load 1/2 and 4/5:
/// compacting it must not make the file longer (README: never longer than it was when the
/// entries fit), and a table with nothing to give back keeps its length.
#[test]
fn compaction_never_makes_a_file_longer_when_the_entries_fit() {
    let dir = tempdir("compact-len");
    let mut rng = Rng(common::seed());
    let mut counts: Vec<u64> = (0..12).map(|_| 1 + rng.below(4000)).collect();
    counts.push(10_941);
    for n in counts {
        let path = dir.path().join(format!("t{n}.tbl"));
        let mut t = TableMut::create(&path, 3).unwrap();
        for i in 0..n {
            let k = format!("key-{i}");
            let len = rng.below(60) as usize;
            t.put(k.as_bytes(), &value_for(k.as_bytes(), len)).unwrap();
        }
        let slots_before = t.stats().slot_count;
        let c = t.compact().unwrap();
        assert!(
            c.file_bytes_after <= c.file_bytes_before,
            "{n} entries, {slots_before} slots: file {} -> {} bytes, slots -> {}",
            c.file_bytes_before,
            c.file_bytes_after,
            t.stats().slot_count
        );
        assert_eq!(c.entries, n);
        t.close().unwrap();
        let r = Table::open(&path).unwrap();
        assert!(
            r.verify().is_ok(),
            "{n} entries: the compacted table verifies"
        );
        let k = format!("key-{}", n - 1);
        assert!(is_value_of(
            k.as_bytes(),
            r.get(k.as_bytes()).unwrap().unwrap()
        ));
        drop(r);
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn no_space_during_a_compaction_names_the_table_and_says_it_is_unchanged() {
    let fs = match common::Tmpfs::mount("2m") {
        Ok(fs) => fs,
        Err(why) => return common::skip("full disk during compaction (tmpfs)", &why),
    };
    let t = fs.path().join("t.tbl");
    ok(&["create", s(&t)]);
    let rows: String = (0..4000).map(|i| format!("key{i}\tvalue{i}\n")).collect();
    let out = common::persist(&["load", s(&t)], rows.as_bytes());
    assert!(out.status.success(), "{out:?}");
    // Fill the rest of the file system: the copy cannot be reserved.
    let size = std::fs::metadata(&t).unwrap().len();
    let filler = fs.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![1u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let out = common::persist(&["compact", s(&t)], b"");
    let err = one_error(&out, "no space left on device");
    assert!(
        err.starts_with(&format!("error: {}: no space left on device", t.display())),
        "names the table first: {err}"
    );
    assert!(
        err.contains("nothing was compacted: the table is unchanged"),
        "{err}"
    );
    assert!(!err.contains("nothing was written"), "{err}");
    assert!(!persist::compact_path(&t).exists(), "no scratch file stays");
    assert_eq!(std::fs::metadata(&t).unwrap().len(), size);
    ok(&["verify", s(&t)]);
    assert_eq!(ok(&["get", s(&t), "key3999"]), "value3999\n");
}
