//! The edges of issue 22, each reproduced with real files, links and processes: compaction
//! keeps the file's identity (the path through symlinks, mode, owner, group); readers during a
//! writer's growth never call a valid table truncated; `list | load` round-trips any bytes;
//! `verify` and `stats` name the scratch file an interrupted compaction left.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{fails, is_root, ok, persist, skip, tempdir, Rng, Tmpfs, BIN};
use persist::doc::{Loaded, StatsDoc, Verified};
use persist::{Table, TableMut, WriteOptions};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Keys of [`garbage_table`].
const KEYS: u64 = 1500;

fn key(i: u64) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

fn value(i: u64, round: u64) -> Vec<u8> {
    format!("{i}-{round}-").repeat(40).into_bytes()
}

/// A table at `path` whose arena (about 2 MiB) is three quarters garbage: each key written
/// four times (rounds 0..4). Enough for a writer to compact it on its own when it must grow.
fn garbage_table(path: &Path) {
    let opts = WriteOptions {
        auto_compact: false,
        ..WriteOptions::default()
    };
    let mut t = TableMut::create_with(path, 3, opts).unwrap();
    for round in 0..4 {
        for i in 0..KEYS {
            t.put(&key(i), &value(i, round)).unwrap();
        }
    }
    t.close().unwrap();
}

/// Asserts the table `path` names holds every key of [`garbage_table`] with its last value.
fn holds_all(path: &Path, what: &str) {
    let t = Table::open(path).unwrap();
    for i in 0..KEYS {
        assert_eq!(
            t.get(&key(i)).unwrap(),
            Some(&value(i, 3)[..]),
            "{what}: key-{i} through {}",
            path.display()
        );
    }
    let v = persist(&["verify", s(path)], b"");
    assert!(
        v.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&v.stderr)
    );
}

#[derive(Debug, Clone, Copy)]
enum Way {
    /// `persist compact PATH`.
    Explicit,
    /// A `persist load PATH` that must grow the file, and compacts instead.
    Automatic,
}

/// Compacts the table `path` names, one way or the other.
fn compact_via(way: Way, path: &Path) {
    match way {
        Way::Explicit => {
            ok(&["compact", s(path)]);
        }
        Way::Automatic => {
            let doc = load_growing(path);
            assert!(
                doc.write_stats.compactions >= 1,
                "the load compacted: {:?}",
                doc.write_stats
            );
        }
    }
}

/// `persist --json load PATH` of enough new bytes to grow the file past its free space (a
/// writer compacts instead when it may); asserts success.
fn load_growing(path: &Path) -> Loaded {
    let st = Table::open(path).unwrap().stats().unwrap();
    let lines = (st.file_bytes - st.arena_end) / 1000 + 20;
    let mut tsv = Vec::new();
    for j in 0..lines {
        tsv.extend_from_slice(format!("fill-{j}\t{}\n", "f".repeat(1000)).as_bytes());
    }
    let out = persist(&["--json", "load", s(path)], &tsv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Names in `dir` of scratch files a compaction left.
fn scratch_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".persist-compact"))
        .collect()
}

#[test]
fn compaction_through_a_symlink_compacts_the_file_it_points_to() {
    let d = tempdir("symlink");
    let real = d.path().join("real");
    let links = d.path().join("links");
    std::fs::create_dir(&real).unwrap();
    std::fs::create_dir(&links).unwrap();
    // A link on another file system: the scratch file must be made beside the target (a
    // rename across file systems fails), not beside the link.
    let other_fs = Tmpfs::mount("1m");
    if let Err(why) = &other_fs {
        skip("compaction through a link on another file system", why);
    }
    for way in [Way::Explicit, Way::Automatic] {
        for case in ["absolute", "relative", "chain", "other-fs"] {
            let what = format!("{case} link, {way:?} compaction");
            let name = format!("{case}-{way:?}.tbl");
            let target = real.join(&name);
            garbage_table(&target);
            let mut hops = Vec::new();
            let link = match case {
                "absolute" => {
                    let link = links.join(&name);
                    symlink(&target, &link).unwrap();
                    link
                }
                "relative" => {
                    let link = links.join(&name);
                    symlink(Path::new("../real").join(&name), &link).unwrap();
                    link
                }
                "chain" => {
                    let (link, hop) = (links.join(&name), links.join(format!("hop-{name}")));
                    symlink(&target, &hop).unwrap();
                    symlink(format!("hop-{name}"), &link).unwrap();
                    hops.push(hop);
                    link
                }
                _ => match &other_fs {
                    Ok(fs) => {
                        let link = fs.path().join(&name);
                        symlink(&target, &link).unwrap();
                        link
                    }
                    Err(_) => continue,
                },
            };
            hops.push(link.clone());
            let texts: Vec<PathBuf> = hops
                .iter()
                .map(|l| std::fs::read_link(l).unwrap())
                .collect();
            let inode = std::fs::metadata(&target).unwrap().ino();

            compact_via(way, &link);

            for (l, text) in hops.iter().zip(&texts) {
                let meta = std::fs::symlink_metadata(l).unwrap();
                assert!(
                    meta.file_type().is_symlink(),
                    "{what}: {l:?} is still a link"
                );
                assert_eq!(&std::fs::read_link(l).unwrap(), text, "{what}: {l:?}");
            }
            assert_ne!(
                std::fs::metadata(&target).unwrap().ino(),
                inode,
                "{what}: the file the link points to was compacted"
            );
            // One table, whichever path is used.
            ok(&["put", s(&link), "via-link", case]);
            assert_eq!(ok(&["get", s(&target), "via-link"]), format!("{case}\n"));
            ok(&["put", s(&target), "via-target", case]);
            assert_eq!(ok(&["get", s(&link), "via-target"]), format!("{case}\n"));
            holds_all(&link, &what);
            holds_all(&target, &what);
            for dir in [&real, &links] {
                assert_eq!(scratch_files(dir), Vec::<String>::new(), "{what}");
            }
        }
    }
}

/// A table with a second hard link: a compaction (a new file renamed over one name) would
/// leave the other name on the old file, two tables from then on, each missing the other's
/// writes. An explicit compaction refuses with one line; a load that would compact grows the
/// file instead. Both names keep naming one table.
#[test]
fn a_hard_linked_table_is_never_split_by_compaction() {
    let d = tempdir("hardlink");
    for way in [Way::Explicit, Way::Automatic] {
        let what = format!("{way:?} compaction");
        let a = d.path().join(format!("a-{way:?}.tbl"));
        let b = d.path().join(format!("b-{way:?}.tbl"));
        garbage_table(&a);
        std::fs::hard_link(&a, &b).unwrap();
        let inode = std::fs::metadata(&a).unwrap().ino();
        match way {
            Way::Explicit => {
                let err = fails(&["compact", s(&a)], 1, "has 2 hard links");
                assert!(err.contains("nothing was compacted"), "{err}");
            }
            Way::Automatic => {
                let doc = load_growing(&a);
                assert_eq!(doc.write_stats.compactions, 0, "{what}: {doc:?}");
            }
        }
        for name in [&a, &b] {
            assert_eq!(std::fs::metadata(name).unwrap().ino(), inode, "{what}");
        }
        ok(&["put", s(&b), "via-b", "1"]);
        assert_eq!(ok(&["get", s(&a), "via-b"]), "1\n", "{what}");
        holds_all(&a, &what);
        holds_all(&b, &what);
        assert_eq!(scratch_files(d.path()), Vec::<String>::new(), "{what}");
    }
}

#[test]
fn compaction_keeps_the_files_mode_owner_and_group() {
    let give_away = is_root();
    if !give_away {
        skip(
            "compaction keeps the owner and group (the mode part runs)",
            "not root: cannot give a file to uid 65534",
        );
    }
    let d = tempdir("identity");
    for way in [Way::Explicit, Way::Automatic] {
        for mode in [0o600, 0o640, 0o604, 0o664] {
            let what = format!("mode {mode:o}, {way:?} compaction");
            let path = d.path().join(format!("t-{mode:o}-{way:?}.tbl"));
            garbage_table(&path);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            if give_away {
                // nobody:nogroup, and a group unlike the owner for one case.
                let gid = if mode == 0o640 { 65533 } else { 65534 };
                std::os::unix::fs::chown(&path, Some(65534), Some(gid)).unwrap();
            }
            let before = std::fs::metadata(&path).unwrap();
            compact_via(way, &path);
            let after = std::fs::metadata(&path).unwrap();
            assert_ne!(after.ino(), before.ino(), "{what}: compacted");
            assert_eq!(after.mode() & 0o7777, mode, "{what}: mode");
            assert_eq!(
                (after.uid(), after.gid()),
                (before.uid(), before.gid()),
                "{what}: owner and group"
            );
            holds_all(&path, &what);
        }
    }
}

/// What one kind of reader saw while a writer grew the table.
#[derive(Default)]
struct Tally {
    runs: u64,
    failures: Vec<String>,
}

/// Runs `persist ARGS` with stdout discarded; its exit status and stderr.
fn quiet(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn readers_during_a_writers_growth_never_call_the_table_truncated() {
    let d = tempdir("growth");
    let tsv = d.path().join("in.tsv");
    let mut text = Vec::new();
    for i in 0..30_000 {
        text.extend_from_slice(format!("k{i}\tvalue-{i}-{}\n", "v".repeat(40)).as_bytes());
    }
    std::fs::write(&tsv, text).unwrap();
    // Two verifies: each waits for the load's lock, so one alone checks once per load.
    let readers: [&[&str]; 5] = [
        &["verify"],
        &["verify"],
        &["stats"],
        &["list"],
        &["get", "probe"],
    ];
    let mut tallies: Vec<Tally> = readers.iter().map(|_| Tally::default()).collect();
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < 2 || start.elapsed() < Duration::from_secs(3) {
        let table = d.path().join(format!("t{rounds}.tbl"));
        let ts = s(&table);
        ok(&["create", ts]); // one page: every load grows it a dozen times
        ok(&["put", ts, "probe", "here"]);
        let mut load = Command::new(BIN)
            .args(["load", ts])
            .stdin(std::fs::File::open(&tsv).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for (args, tally) in readers.iter().zip(tallies.iter_mut()) {
                let done = &done;
                scope.spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        let mut full = vec![args[0], ts];
                        full.extend_from_slice(&args[1..]);
                        let out = quiet(&full);
                        tally.runs += 1;
                        if !out.status.success() {
                            tally
                                .failures
                                .push(String::from_utf8_lossy(&out.stderr).into_owned());
                        }
                    }
                });
            }
            let status = load.wait().unwrap();
            done.store(true, Ordering::Relaxed);
            assert!(status.success(), "the load failed");
        });
        let st = Table::open(&table).unwrap().stats().unwrap();
        assert!(st.file_bytes > 1 << 20, "the load grew the table");
        rounds += 1;
    }
    let mut report = String::new();
    for (args, t) in readers.iter().zip(&tallies) {
        report += &format!(
            "{}: {} of {} runs failed{}\n",
            args[0],
            t.failures.len(),
            t.runs,
            t.failures
                .first()
                .map(|f| format!(" (first: {})", f.trim()))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "during growth, {rounds} loads:\n{report}"
    );
    assert!(
        tallies.iter().all(|t| t.failures.is_empty()),
        "readers called a growing table damaged:\n{report}"
    );
    assert!(tallies.iter().all(|t| t.runs > 0), "{report}");
}

#[test]
fn a_table_that_really_is_truncated_is_still_reported() {
    let d = tempdir("truncated");
    let path = d.path().join("t.tbl");
    let ps = s(&path);
    ok(&["create", ps]);
    let mut tsv = Vec::new();
    for i in 0..3000 {
        tsv.extend_from_slice(format!("k{i}\t{i}\n").as_bytes());
    }
    assert!(persist(&["load", ps], &tsv).status.success());
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 4096);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let want = format!("the file is 4096 bytes but its header records {len}: it was truncated");
    for args in [
        &["verify", ps][..],
        &["stats", ps],
        &["list", ps],
        &["get", ps, "k1"],
    ] {
        fails(args, 1, &want);
    }
}

/// Random bytes, most of them the ones a TSV line gives a meaning to.
fn tricky_bytes(rng: &mut Rng, max_len: u64) -> Vec<u8> {
    const SPECIAL: &[u8] = b"\r\n\t\\\0\xff\x80\xc3antr ";
    (0..rng.below(max_len + 1))
        .map(|_| match rng.below(4) {
            0 => rng.next() as u8,
            _ => SPECIAL[rng.below(SPECIAL.len() as u64) as usize],
        })
        .collect()
}

/// Every entry of the table at `path`, through the library.
fn entries(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut all = BTreeMap::new();
    Table::open(path)
        .unwrap()
        .for_each(|k, v| {
            all.insert(k.to_vec(), v.to_vec());
        })
        .unwrap();
    all
}

#[test]
fn list_then_load_round_trips_any_bytes() {
    let d = tempdir("tsv");
    let mut rng = Rng(common::seed());
    for round in 0..12 {
        let mut want: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for _ in 0..150 {
            want.insert(tricky_bytes(&mut rng, 12), tricky_bytes(&mut rng, 40));
        }
        // And these, whatever random key they replace.
        for (k, v) in [
            (&b""[..], &b"empty key"[..]),
            (b"cr", b"abc\r"),
            (b"crlf", b"abc\r\n"),
            (b"backslash", b"\\"),
            (b"escape-like", b"\\t\\n\\r\\\\"),
            (b"empty", b""),
            (b"tab\tin key", b"tab\tin value"),
            (b"\\", b"key is a backslash"),
            (b"nul\0", b"\0"),
        ] {
            want.insert(k.to_vec(), v.to_vec());
        }
        let a = d.path().join(format!("a{round}.tbl"));
        let b = d.path().join(format!("b{round}.tbl"));
        let mut t = TableMut::create(&a, 3).unwrap();
        for (k, v) in &want {
            t.put(k, v).unwrap();
        }
        t.close().unwrap();
        let listed = persist(&["list", s(&a)], b"");
        assert!(listed.status.success());
        assert_eq!(
            listed.stdout.iter().filter(|b| **b == b'\n').count(),
            want.len(),
            "round {round}: one line per entry"
        );
        ok(&["create", s(&b)]);
        let loaded = persist(&["load", s(&b)], &listed.stdout);
        assert!(
            loaded.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
        assert!(
            entries(&b) == want,
            "round {round}: list | load changed an entry"
        );
    }
    // `get` prints the raw value; `list` the escaped one.
    let a = d.path().join("a0.tbl");
    assert_eq!(persist(&["get", s(&a), "cr"], b"").stdout, b"abc\r\n");
    let listed = persist(&["list", s(&a)], b"").stdout;
    let lines: Vec<&[u8]> = listed.split(|b| *b == b'\n').collect();
    for line in [
        &b"cr\tabc\\r"[..],
        b"crlf\tabc\\r\\n",
        b"backslash\t\\\\",
        b"escape-like\t\\\\t\\\\n\\\\r\\\\\\\\",
        b"tab\\tin key\ttab\\tin value",
        b"\\\\\tkey is a backslash",
        b"\tempty key",
    ] {
        assert!(
            lines.contains(&line),
            "list prints {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn load_reads_plain_tsv_as_before_and_refuses_an_unknown_escape() {
    let d = tempdir("tsv-compat");
    let path = d.path().join("t.tbl");
    let ps = s(&path);
    ok(&["create", ps]);
    // No backslashes: as before. CRLF line ends; a tab in the value; an empty value.
    let out = persist(&["load", ps], b"a\t1\r\nb\t2\tmore\nc\t\n\nd\tx\ry\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: BTreeMap<Vec<u8>, Vec<u8>> = [
        (&b"a"[..], &b"1"[..]),
        (b"b", b"2\tmore"),
        (b"c", b""),
        (b"d", b"x\ry"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_vec(), v.to_vec()))
    .collect();
    assert!(entries(&path) == want);

    for (input, needle) in [
        (
            &b"ok\t1\nwin\tC:\\dir\n"[..],
            "stdin line 2: the value has an unknown escape \\d",
        ),
        (
            b"ok\t1\nend\tvalue\\\n",
            "stdin line 2: the value has a backslash at its end",
        ),
        (
            b"k\\x\tv\n",
            "stdin line 1: the key has an unknown escape \\x",
        ),
    ] {
        let out = persist(&["load", ps], input);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // The lines before the bad one were stored, and nothing else changed.
    assert_eq!(ok(&["get", ps, "ok"]), "1\n");
    assert_eq!(ok(&["get", ps, "a"]), "1\n");

    for cmd in ["list", "load"] {
        let help = ok(&[cmd, "--help"]);
        for needle in ["\\\\", "\\t", "\\n", "\\r"] {
            assert!(help.contains(needle), "{cmd} --help names {needle}: {help}");
        }
    }
}

/// Kills `persist compact FILE` once its scratch file exists; whether the scratch was left.
fn kill_mid_compaction(path: &Path, scratch: &Path) -> bool {
    let mut child = Command::new(BIN)
        .args(["compact", s(path)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let limit = Instant::now() + Duration::from_secs(20);
    while !scratch.exists() && child.try_wait().unwrap().is_none() && Instant::now() < limit {
        std::thread::yield_now();
    }
    let _ = child.kill();
    child.wait().unwrap();
    scratch.exists()
}

/// Writes `bytes` (a table with garbage) to `path` and kills its compaction, again until a kill
/// lands while `scratch` exists and leaves it (at most 20 tries).
fn leave_a_killed_compactions_scratch(path: &Path, bytes: &[u8], scratch: &Path) {
    for _ in 0..20 {
        std::fs::write(path, bytes).unwrap();
        if kill_mid_compaction(path, scratch) {
            return;
        }
    }
    panic!("no kill landed while the scratch file existed");
}

#[test]
fn verify_and_stats_name_the_scratch_file_an_interrupted_compaction_left() {
    let d = tempdir("scratch");
    let base = d.path().join("base.tbl");
    garbage_table(&base);
    let bytes = std::fs::read(&base).unwrap();
    let path = d.path().join("t.tbl");
    let scratch = d.path().join("t.tbl.persist-compact");
    let ps = s(&path);
    leave_a_killed_compactions_scratch(&path, &bytes, &scratch);
    let size = std::fs::symlink_metadata(&scratch).unwrap().len();
    // Through the path and through a link to it (the scratch lies beside the target).
    let links = d.path().join("links");
    std::fs::create_dir(&links).unwrap();
    let link = links.join("t.tbl");
    symlink("../t.tbl", &link).unwrap();
    for p in [ps, s(&link)] {
        for cmd in ["verify", "stats"] {
            let text = ok(&[cmd, p]);
            let line = text
                .lines()
                .find(|l| l.contains("t.tbl.persist-compact"))
                .unwrap_or_else(|| panic!("{cmd} {p} names the scratch file: {text}"));
            assert!(
                line.contains(&format!("{size} bytes"))
                    && line.contains("interrupted compaction")
                    && line.contains("the next writer removes it"),
                "{cmd}: {line}"
            );
        }
        let v: Verified = serde_json::from_str(&ok(&["--json", "verify", p])).unwrap();
        let st: StatsDoc = serde_json::from_str(&ok(&["--json", "stats", p])).unwrap();
        for found in [v.compact_scratch, st.compact_scratch] {
            let found = found.expect("the JSON names the scratch file");
            let real = |p: &Path| std::fs::canonicalize(p).unwrap();
            assert_eq!((real(&found.path), found.bytes), (real(&scratch), size));
        }
    }
    holds_all(&path, "after a killed compaction");
    assert!(scratch.exists(), "readers never remove it");
    // The next writer removes it; then nothing is said.
    ok(&["put", s(&link), "after", "ok"]);
    assert!(!scratch.exists());
    for cmd in ["verify", "stats"] {
        let text = ok(&[cmd, ps]);
        assert!(!text.contains("persist-compact"), "{text}");
    }
    let v: Verified = serde_json::from_str(&ok(&["--json", "verify", ps])).unwrap();
    assert!(v.compact_scratch.is_none());
}

/// A table with nothing to give back keeps its length through a compaction (it used to grow by
/// the eighth of headroom a compacted copy asks for: a one-entry table of a 60,000-byte value
/// went from 61,440 to 69,632 bytes), and one with garbage shrinks; every value is kept.
#[test]
fn compaction_never_makes_a_table_without_garbage_longer() {
    let d = tempdir("compact-no-growth");
    let t = d.path().join("t.tbl");
    let big: Vec<u8> = (0..60_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut w = TableMut::create(&t, 3).unwrap();
    w.put(b"big", &big).unwrap();
    let before = std::fs::metadata(&t).unwrap().len();
    let stats = w.compact().unwrap();
    assert_eq!(stats.file_bytes_before, before);
    assert!(
        stats.file_bytes_after <= before,
        "{} -> {} bytes",
        before,
        stats.file_bytes_after
    );
    assert_eq!(std::fs::metadata(&t).unwrap().len(), stats.file_bytes_after);
    // Garbage still goes: the value overwritten three times, then compacted.
    for _ in 0..3 {
        w.put(b"big", &big).unwrap();
    }
    let grown = std::fs::metadata(&t).unwrap().len();
    let stats = w.compact().unwrap();
    assert!(stats.file_bytes_after < grown, "{stats:?}");
    w.close().unwrap();
    let r = Table::open(&t).unwrap();
    assert_eq!(r.get(b"big").unwrap(), Some(&big[..]));
    ok(&["verify", s(&t)]);
}

/// A table whose file name is 250 bytes (its scratch file cannot be `FILE.persist-compact`,
/// 266 bytes, over NAME_MAX) is compacted by `persist compact` and by a writer on its own; a
/// killed compaction's scratch file (a shortened name, always the same for the table) is named
/// by `verify` and `stats` and removed by the next writer.
#[test]
fn a_table_with_a_250_byte_name_is_compacted_and_its_scratch_file_found() {
    let d = tempdir("longname");
    let base = d.path().join("base.tbl");
    garbage_table(&base);
    let bytes = std::fs::read(&base).unwrap();
    std::fs::remove_file(&base).unwrap();
    let name = format!("{}.tbl", "n".repeat(246));
    assert_eq!(name.len(), 250);
    let path = d.path().join(&name);
    for way in [Way::Explicit, Way::Automatic] {
        std::fs::write(&path, &bytes).unwrap();
        compact_via(way, &path);
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < bytes.len() as u64, "{way:?}: {after} bytes");
        holds_all(&path, &format!("{way:?}"));
        assert!(scratch_files(d.path()).is_empty(), "{way:?}");
    }

    let scratch = persist::compact_path(&path);
    let scratch_name = scratch.file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(scratch.parent(), Some(d.path()));
    assert_eq!(scratch_name.len(), 255, "{scratch_name}");
    assert!(scratch_name.starts_with(&name[..200]), "{scratch_name}");
    leave_a_killed_compactions_scratch(&path, &bytes, &scratch);
    // The file the killed compaction made is the one the library names, and the only one.
    assert_eq!(scratch_files(d.path()), std::slice::from_ref(&scratch_name));
    let size = std::fs::symlink_metadata(&scratch).unwrap().len();
    for cmd in ["verify", "stats"] {
        let text = ok(&[cmd, s(&path)]);
        assert!(
            text.lines()
                .any(|l| l.contains(&scratch_name) && l.contains(&format!("{size} bytes"))),
            "{cmd} names the scratch file: {text}"
        );
    }
    let v: Verified = serde_json::from_str(&ok(&["--json", "verify", s(&path)])).unwrap();
    assert_eq!(v.compact_scratch.map(|sc| sc.path), Some(scratch.clone()));
    holds_all(&path, "after a killed compaction");
    ok(&["put", s(&path), "after", "ok"]);
    assert!(
        scratch_files(d.path()).is_empty(),
        "the next writer removed it"
    );
    assert!(!ok(&["verify", s(&path)]).contains("persist-compact"));
    ok(&["compact", s(&path)]);
    holds_all(&path, "compacted again");
}
