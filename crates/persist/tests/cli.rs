//! The `persist` binary: commands, errors and exit statuses, and the system-call properties
//! (reads through the mapping only, writes through MAP_SHARED only) checked live with strace.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fails, ok, persist, tempdir, BIN};
use lab_trace::fds::{file_calls, READ_CALLS, WRITE_CALLS};
use lab_trace::Syscall;

#[test]
fn create_put_get_list_del_round_trip() {
    let d = tempdir("roundtrip");
    let t = d.path().join("t.tbl");
    let t = t.to_str().unwrap();
    assert!(ok(&["create", t]).contains("created"));
    ok(&["put", t, "hello", "world"]);
    ok(&["put", t, "empty", ""]);
    assert_eq!(ok(&["get", t, "hello"]), "world\n");
    assert_eq!(ok(&["get", t, "hello", "empty"]), "world\n\n");
    ok(&["put", t, "hello", "there"]);
    assert_eq!(ok(&["get", t, "hello"]), "there\n");
    let mut lines: Vec<String> = ok(&["list", t]).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["empty\t", "hello\tthere"]);
    ok(&["del", t, "hello"]);
    fails(&["get", t, "hello"], 1, "error: key not found: hello");
    fails(&["del", t, "hello"], 1, "error: key not found: hello");
    assert!(ok(&["verify", t]).contains("valid table: 1 entries, 1 deleted"));
}

#[test]
fn usage_errors_are_one_line_exit_2_and_touch_nothing() {
    let d = tempdir("usage");
    let t = d.path().join("t.tbl");
    let t = t.to_str().unwrap();
    for args in [
        &[][..],
        &["frobnicate", t],
        &["create"],
        &["put", t, "key-without-value"],
        &["get", t],
        &["get", t, "k", "--sync"],
        &["--bogus", "list", t],
    ] {
        let out = persist(args, b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("--help"),
            "names the help to read: {args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!Path::new(t).exists(), "{args:?} created the table");
    }
}

#[test]
fn json_documents_are_single_and_complete() {
    let d = tempdir("json");
    let t = d.path().join("t.tbl");
    let t = t.to_str().unwrap();
    ok(&["create", t]);
    let put: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "put", t, "a", "1"])).unwrap();
    assert_eq!(put["mode"], "shared");
    assert_eq!(put["replaced"], false);
    let get: serde_json::Value = serde_json::from_str(&ok(&["--json", "get", t, "a"])).unwrap();
    assert_eq!(get["results"][0]["value"], "1");
    assert!(get["faults"]["minor"].is_u64());
    assert!(get["pages_resident_after"].as_u64().unwrap() >= 1);
    for cmd in ["list", "stats", "verify"] {
        let v: serde_json::Value = serde_json::from_str(&ok(&["--json", cmd, t])).unwrap();
        assert!(v.is_object(), "{cmd}");
    }
    let res: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "residency", "--evict", t])).unwrap();
    assert_eq!(res["residency"]["pages_total"], 1);
}

#[test]
fn bad_input_gets_one_line_errors_and_documented_statuses() {
    let d = tempdir("errors");
    let t = d.path().join("t.tbl");
    let ts = t.to_str().unwrap();
    fails(
        &["get", ts, "k"],
        1,
        "no such file; create it with `persist create",
    );
    fails(
        &["put", ts, "k", "v"],
        1,
        "create it first with `persist create",
    );
    ok(&["create", ts]);
    fails(&["create", ts], 1, "already exists");
    fails(&["frobnicate"], 2, "unrecognized subcommand");
    fails(&["get", ts], 2, "required");
    fails(&["create", "--slots", "0", ts], 2, "--slots");
    let empty = d.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    fails(
        &["get", empty.to_str().unwrap(), "k"],
        1,
        "is not a valid table: the file is empty",
    );
    let foreign = d.path().join("foreign");
    std::fs::write(&foreign, vec![7u8; 5000]).unwrap();
    fails(
        &["list", foreign.to_str().unwrap()],
        1,
        "is not a valid table: bad magic",
    );
    let out = persist(&["load", ts], b"a\t1\nno tab here\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "stdin line 2 has no tab: expected KEY<TAB>VALUE (1 lines before it were stored)"
    ));
    assert_eq!(ok(&["get", ts, "a"]), "1\n");
    let help = ok(&["--help"]);
    assert!(help.contains("Examples:") && help.contains("Exit status"));
    // The table is left as it was: nothing else was created next to it.
    let mut names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["empty", "foreign", "t.tbl"], "no stray files");
}

#[test]
fn private_put_does_not_reach_the_file() {
    let d = tempdir("private");
    let t = d.path().join("t.tbl");
    let ts = t.to_str().unwrap();
    ok(&["create", ts]);
    ok(&["put", ts, "k", "shared-value"]);
    let before = std::fs::read(&t).unwrap();
    let out: serde_json::Value = serde_json::from_str(&ok(&[
        "--json",
        "put",
        "--private",
        ts,
        "k",
        "private-value",
    ]))
    .unwrap();
    assert_eq!(out["mode"], "private");
    assert_eq!(
        out["readback"], "private-value",
        "the writer sees its change"
    );
    assert_eq!(
        std::fs::read(&t).unwrap(),
        before,
        "the file is byte-for-byte unchanged"
    );
    assert_eq!(ok(&["get", ts, "k"]), "shared-value\n");
}

/// Runs `persist ARGS` under strace; returns the calls (lab-trace's parser) and the exit status.
fn strace(dir: &Path, args: &[&str], stdin: &[u8]) -> (Vec<Syscall>, std::process::ExitStatus) {
    use std::io::Write;
    let out = dir.join(format!("trace-{}", args.join("-").len()));
    let mut child = Command::new("strace")
        .arg("-o")
        .arg(&out)
        .args([
            "-e",
            "trace=openat,close,mmap,mremap,munmap,msync,ftruncate,read,pread64,readv,preadv,\
             write,pwrite64,writev,pwritev",
            "--",
            BIN,
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace is installed (CI installs it)");
    let mut pipe = child.stdin.take().unwrap();
    let _ = pipe.write_all(stdin);
    drop(pipe);
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    (lab_trace::strace::parse(&text), status)
}

/// The calls on the table at `path`: its descriptor and its mapping (lab-trace follows both).
fn on_table_fd<'a>(calls: &'a [Syscall], path: &str) -> Vec<&'a Syscall> {
    file_calls(calls, |p| p == path)
}

/// How many of `calls` are among `names`.
fn count<'a>(calls: impl IntoIterator<Item = &'a Syscall>, names: &[&str]) -> usize {
    calls
        .into_iter()
        .filter(|c| names.contains(&c.name.as_str()))
        .count()
}

const READS: &[&str] = READ_CALLS;
const WRITES: &[&str] = WRITE_CALLS;

#[test]
fn reads_go_through_the_mapping_only() {
    let d = tempdir("strace-read");
    let t = d.path().join("t.tbl");
    let ts = t.to_str().unwrap();
    common::build(&t, 2000);
    for args in [
        vec!["get", ts, "k7", "k1999"],
        vec!["list", ts],
        vec!["verify", ts],
    ] {
        let (calls, status) = strace(d.path(), &args, b"");
        assert!(status.success(), "{args:?}");
        let mine = on_table_fd(&calls, ts);
        assert_eq!(
            count(mine.iter().copied(), &["mmap"]),
            1,
            "{args:?}: one mmap: {mine:#?}"
        );
        assert_eq!(
            count(mine.iter().copied(), READS),
            0,
            "{args:?}: no read of the table: {mine:#?}"
        );
        assert!(
            count(&calls, &["write"]) >= 1,
            "the output itself is written"
        );
    }
}

#[test]
fn writes_go_through_map_shared_only_and_another_process_reads_them() {
    let d = tempdir("strace-write");
    let t = d.path().join("t.tbl");
    let ts = t.to_str().unwrap();
    ok(&["create", ts]);
    let (calls, status) = strace(
        d.path(),
        &["put", "--sync", ts, "needle-key", "needle-value"],
        b"",
    );
    assert!(status.success());
    let mine = on_table_fd(&calls, ts);
    assert_eq!(
        count(mine.iter().copied(), WRITES),
        0,
        "no write of the table: {mine:#?}"
    );
    assert!(mine
        .iter()
        .any(|c| c.name == "mmap" && c.raw.contains("MAP_SHARED")));
    assert!(calls.iter().any(|c| c.name == "msync"), "--sync msyncs");
    // A separate process reading with plain read(2) sees the bytes.
    let cat = Command::new("cat").arg(&t).output().unwrap();
    assert!(cat.stdout.windows(12).any(|w| w == b"needle-value"));

    // Growth: thousands of keys into a fresh table, still no write, many ftruncate+mremap.
    let tsv: String = (0..5000).map(|i| format!("key{i}\tvalue{i}\n")).collect();
    let (calls, status) = strace(d.path(), &["load", ts], tsv.as_bytes());
    assert!(status.success());
    let mine = on_table_fd(&calls, ts);
    assert_eq!(count(mine.iter().copied(), WRITES), 0);
    let ftruncates = count(mine.iter().copied(), &["ftruncate"]);
    assert!(ftruncates >= 5, "grew {ftruncates} times: {mine:#?}");
    assert_eq!(count(&calls, &["mremap"]), ftruncates, "each growth remaps");
    assert_eq!(ok(&["get", ts, "key4999"]), "value4999\n");

    // MAP_PRIVATE: no write either, and the bytes never reach the file.
    let (calls, status) = strace(
        d.path(),
        &["put", "--private", ts, "pk", "private-bytes"],
        b"",
    );
    assert!(status.success());
    assert!(calls
        .iter()
        .any(|c| c.name == "mmap" && c.raw.contains("MAP_PRIVATE")));
    assert_eq!(count(on_table_fd(&calls, ts), WRITES), 0);
    let cat = Command::new("cat").arg(&t).output().unwrap();
    assert!(!cat.stdout.windows(13).any(|w| w == b"private-bytes"));
}

/// Polls `cond` until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::yield_now();
    }
    cond()
}

#[test]
fn writers_exclude_each_other_with_flock() {
    let d = tempdir("flock");
    let t = d.path().join("t.tbl");
    let ts = t.to_str().unwrap();
    ok(&["create", ts]);
    let holder = persist::TableMut::open(&t, persist::WriteOptions::default()).unwrap();
    fails(
        &["put", "--no-wait", ts, "k", "v"],
        1,
        "is locked by another writer; retry later, or drop --no-wait",
    );
    // Without --no-wait the second writer blocks in flock until the first lets go.
    let mut child = Command::new(BIN)
        .args(["put", ts, "k", "v"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let blocked = wait_for(Duration::from_secs(10), || {
        // /proc/locks lists a waiter as `N: -> FLOCK ADVISORY WRITE PID ...`.
        std::fs::read_to_string("/proc/locks")
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("->") && l.split_whitespace().any(|w| w == pid))
    });
    assert!(blocked, "the second writer should be waiting for the lock");
    assert!(child.try_wait().unwrap().is_none(), "still waiting");
    holder.close().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(ok(&["get", ts, "k"]), "v\n");
}

#[test]
fn truncation_by_another_process_while_mapped_is_a_clear_error() {
    use std::io::{BufRead, BufReader, Write};
    let d = tempdir("sigbus-cli");
    let t = d.path().join("t.tbl");
    let ts = t.to_str().unwrap();
    common::build(&t, 3000);
    let mut child = Command::new(BIN)
        .args(["get", "--pause-after-map", ts, "k1", "k2999"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "mapped");
    // This test process is the other process: it truncates the file under the mapping.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&t)
        .unwrap()
        .set_len(4096)
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "exit 1, not a signal death: {rest}");
    assert!(
        rest.contains(
            "is not a valid table: another process truncated it to 4096 bytes while it \
                       was mapped"
        ),
        "{rest}"
    );
}

#[test]
fn compact_gives_space_back_and_keeps_every_entry() {
    let d = tempdir("compact-cli");
    let t = d.path().join("t.tbl");
    let ts = t.to_str().unwrap();
    ok(&["create", ts]);
    let tsv: String = (0..3)
        .flat_map(|round| (0..2000).map(move |i| format!("k{i}\tround{round}-{i}\n")))
        .collect();
    assert!(persist(&["load", ts], tsv.as_bytes()).status.success());
    ok(&["del", ts, "k7"]);
    let before: serde_json::Value = serde_json::from_str(&ok(&["--json", "stats", ts])).unwrap();
    assert!(before["stats"]["garbage_bytes"].as_u64().unwrap() > 0);
    let c: serde_json::Value = serde_json::from_str(&ok(&["--json", "compact", ts])).unwrap();
    assert_eq!(c["compact"]["entries"], 1999);
    assert!(
        c["compact"]["arena_bytes_after"].as_u64() < c["compact"]["arena_bytes_before"].as_u64()
    );
    assert_eq!(c["write_stats"]["compactions"], 1);
    let after: serde_json::Value = serde_json::from_str(&ok(&["--json", "stats", ts])).unwrap();
    assert_eq!(after["stats"]["garbage_bytes"], 0);
    assert_eq!(after["stats"]["entries"], 1999);
    assert_eq!(ok(&["get", ts, "k0", "k1999"]), "round2-0\nround2-1999\n");
    fails(&["get", ts, "k7"], 1, "key not found: k7");
    ok(&["verify", ts]);
    assert!(ok(&["compact", ts]).starts_with(&format!("compacted {ts}: 1999 entries")));
    // Nothing is left next to the table.
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["t.tbl"]);
    // Errors: a missing file, a locked one with --no-wait.
    fails(
        &["compact", d.path().join("nope").to_str().unwrap()],
        1,
        "no such file",
    );
    let holder = persist::TableMut::open(&t, persist::WriteOptions::default()).unwrap();
    fails(
        &["compact", "--no-wait", ts],
        1,
        "is locked by another writer",
    );
    holder.close().unwrap();
}

/// Runs `persist ARGS` (byte strings, not UTF-8 ones) with `stdin`.
fn persist_os(args: &[&[u8]], stdin: &[u8]) -> std::process::Output {
    use std::ffi::OsStr;
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut child = Command::new(BIN)
        .args(args.iter().map(|a| OsStr::from_bytes(a)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// Like [`persist_os`], asserting success; returns stdout.
fn ok_os(args: &[&[u8]], stdin: &[u8]) -> Vec<u8> {
    let out = persist_os(args, stdin);
    assert!(
        out.status.success(),
        "{:?}: {}",
        args.iter()
            .map(|a| String::from_utf8_lossy(a))
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Keys (and values) are byte strings on the command line too: a Latin-1 key `load` stored is
/// got, replaced and deleted by name; stdout shows it as it is, stderr as `caf\xe9`; `--json`
/// stays valid JSON (U+FFFD for the bytes that are not UTF-8, as the doc types say).
#[test]
fn keys_that_are_not_utf8_are_put_got_and_deleted_from_the_command_line() {
    let d = tempdir("latin1");
    let t = d.path().join("u.tbl");
    let t = t.to_str().unwrap().as_bytes();
    let key: &[u8] = b"caf\xe9";
    ok_os(&[b"create", t], b"");
    ok_os(&[b"load", t], b"caf\xe9\tlatin1\n");
    assert_eq!(ok_os(&[b"list", t], b""), b"caf\xe9\tlatin1\n");
    assert_eq!(ok_os(&[b"get", t, key], b""), b"latin1\n");
    // Replaced, with a value that is not UTF-8 either; the line names the key byte for byte.
    assert_eq!(
        ok_os(&[b"put", t, key, b"x\xff"], b""),
        b"caf\xe9: replaced\n"
    );
    assert_eq!(ok_os(&[b"get", t, key], b""), b"x\xff\n");
    assert_eq!(
        ok_os(&[b"put", t, b"k\xe9\t2", b"v"], b""),
        b"k\xe9\\t2: inserted\n"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&ok_os(&[b"--json", b"put", t, key, b"y\xfe"], b"")).unwrap();
    assert_eq!(doc["key"], "caf\u{fffd}");
    assert_eq!(doc["readback"], "y\u{fffd}");
    let doc: serde_json::Value =
        serde_json::from_slice(&ok_os(&[b"--json", b"get", t, key], b"")).unwrap();
    assert_eq!(doc["results"][0]["key"], "caf\u{fffd}");
    assert_eq!(doc["results"][0]["value_bytes"], 2);

    // list | load into a second table: the same bytes, found by the same names.
    let t2 = d.path().join("copy.tbl");
    let t2 = t2.to_str().unwrap().as_bytes();
    ok_os(&[b"create", t2], b"");
    ok_os(&[b"load", t2], &ok_os(&[b"list", t], b""));
    assert_eq!(ok_os(&[b"get", t2, key, b"k\xe9\t2"], b""), b"y\xfe\nv\n");

    // Deleted; then a missing key's error shows it escaped, on one line.
    assert_eq!(ok_os(&[b"del", t, key], b""), b"caf\xe9: deleted\n");
    for cmd in [&b"get"[..], b"del"] {
        let out = persist_os(&[cmd, t, key], b"");
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(out.stderr, b"error: key not found: caf\\xe9\n");
    }
    // A key with a terminal escape, a backslash, a tab and a newline: nothing raw on stderr.
    let out = persist_os(&[b"get", t, b"a\x1b[31mb\\c\td\ne"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: key not found: a\\x1b[31mb\\\\c\\td\\ne\n"
    );
    assert_eq!(ok_os(&[b"list", t], b""), b"k\xe9\\t2\tv\n");
    for cmd in ["get", "put", "del"] {
        let help = ok(&[cmd, "--help"]);
        assert!(help.contains("byte string"), "{cmd} --help: {help}");
    }
}
