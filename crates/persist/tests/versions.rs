//! Format versions (issue 25): a version 2 table — the committed fixture made by the version 2
//! build, and tables written here by an independent version 2 writer — opens read-only (get,
//! list, stats, verify), every write command refuses it in one line naming `persist compact`
//! and leaves its bytes alone, and `persist compact` upgrades it to version 3 with every entry
//! byte for byte. Version 1 and damaged version 2 files stay refused cleanly.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{fails, ok, persist, tempdir, Rng};
use persist::{key_hash, record_check, Error, Table, TableMut, WriteOptions};

/// `persist create t; load` of 40 keys, an empty value, a key and value with tabs, newlines,
/// backslashes and a carriage return, non-UTF-8 bytes; one key overwritten, one deleted (so
/// the file holds an old slot array, garbage and a tombstone). Made by the version 2 build.
const FIXTURE: &str = "tests/fixtures/v2-small.tbl";
/// `persist list` of the fixture, by the version 2 build.
const FIXTURE_LIST: &str = "tests/fixtures/v2-small.list";

fn fixture_copy(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("v2.tbl");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE), &p).unwrap();
    p
}

/// The entries of a `persist list` output (its escapes undone).
fn parse_list(text: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    fn unescape(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut it = b.iter();
        while let Some(&c) = it.next() {
            if c != b'\\' {
                out.push(c);
                continue;
            }
            out.push(match it.next() {
                Some(b't') => b'\t',
                Some(b'n') => b'\n',
                Some(b'r') => b'\r',
                Some(b'\\') => b'\\',
                other => panic!("bad escape {other:?}"),
            });
        }
        out
    }
    text.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let tab = l.iter().position(|&c| c == b'\t').expect("a tab");
            (unescape(&l[..tab]), unescape(&l[tab + 1..]))
        })
        .collect()
}

fn entries(t: &Table) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut all = BTreeMap::new();
    t.for_each(|k, v| assert!(all.insert(k.to_vec(), v.to_vec()).is_none()))
        .unwrap();
    all
}

fn upgrade_message(p: &str) -> String {
    format!(
        "error: {p} is a version 2 table; run 'persist compact {p}' to upgrade it (read-only \
         until then)\n"
    )
}

/// A version 2 table, written the way the version 2 build wrote it, by code independent of
/// the library: a 64-byte header, 2^log2 8-byte slots (tag = high half of the key hash, home =
/// its low bits, linear probing), records of a 16-byte head (key length, value length, check,
/// 0), key and value, 8-aligned; the 32-bit record check is the one both versions share.
fn write_v2(path: &Path, kv: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let log2 = (kv.len() as u64 * 2 + 2)
        .next_power_of_two()
        .trailing_zeros()
        .max(3);
    let count = 1usize << log2;
    let slots_off = 64usize;
    let mut b = vec![0u8; slots_off + 8 * count];
    let mut live_bytes = 0u64;
    for (k, v) in kv {
        let check = record_check(k, v);
        let off = b.len();
        b.extend_from_slice(&(k.len() as u32).to_le_bytes());
        b.extend_from_slice(&(v.len() as u32).to_le_bytes());
        b.extend_from_slice(&check.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(k);
        b.extend_from_slice(v);
        b.resize(b.len().div_ceil(8) * 8, 0);
        live_bytes += (b.len() - off) as u64;
        let h = key_hash(k);
        let mut i = (h as usize) & (count - 1);
        while b[slots_off + 8 * i..slots_off + 8 * i + 8] != [0u8; 8] {
            i = (i + 1) & (count - 1);
        }
        let word = (h >> 32) << 32 | (off as u64 / 8);
        b[slots_off + 8 * i..slots_off + 8 * i + 8].copy_from_slice(&word.to_le_bytes());
    }
    let arena_end = b.len() as u64;
    b.resize(b.len().div_ceil(4096) * 4096, 0);
    let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    put(&mut b, 0, b"DISKTBL\0");
    put(&mut b, 8, &2u32.to_le_bytes());
    put(&mut b, 12, &64u32.to_le_bytes());
    let file_len = b.len() as u64;
    put(&mut b, 16, &file_len.to_le_bytes());
    put(
        &mut b,
        24,
        &((slots_off as u64 / 8) << 8 | u64::from(log2)).to_le_bytes(),
    );
    put(&mut b, 32, &arena_end.to_le_bytes());
    put(&mut b, 40, &(kv.len() as u64).to_le_bytes());
    put(&mut b, 48, &(kv.len() as u64).to_le_bytes());
    put(&mut b, 56, &0u32.to_le_bytes());
    put(&mut b, 60, &((live_bytes / 8) as u32).to_le_bytes());
    std::fs::write(path, b).unwrap();
}

#[test]
fn the_v2_fixture_reads_refuses_writes_and_compacts_to_v3() {
    let d = tempdir("v2fixture");
    let p = fixture_copy(d.path());
    let ps = p.to_str().unwrap();
    let want = parse_list(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_LIST)).unwrap(),
    );
    assert_eq!(want.len(), 42);
    assert_eq!(want[&b"empty"[..]], b"");
    // Read-only: every read path works.
    let t = Table::open(&p).unwrap();
    assert_eq!(t.stats().unwrap().version, 2);
    for (k, v) in &want {
        assert_eq!(t.get(k).unwrap(), Some(&v[..]), "{k:?}");
    }
    assert_eq!(t.get(b"key-002").unwrap(), None);
    assert_eq!(entries(&t), want);
    assert_eq!(t.verify().unwrap().entries, 42);
    drop(t);
    assert_eq!(ok(&["get", ps, "key-001"]), "overwritten\n");
    assert!(ok(&["stats", ps]).contains("version         2 (read-only"));
    assert!(ok(&["verify", ps]).contains("valid table: 42 entries"));
    assert_eq!(parse_list(&persist(&["list", ps], b"").stdout), want);
    // Every write refuses in one line naming the upgrade, and leaves the bytes as they were.
    let before = std::fs::read(&p).unwrap();
    for (args, stdin) in [
        (vec!["put", ps, "a", "b"], &b""[..]),
        (vec!["put", "--private", ps, "a", "b"], b""),
        (vec!["del", ps, "key-003"], b""),
        (vec!["load", ps], b"x\ty\n"),
        (vec!["create", ps], b""),
    ] {
        let out = persist(&args, stdin);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), upgrade_message(ps));
        assert_eq!(
            std::fs::read(&p).unwrap(),
            before,
            "{args:?} changed the file"
        );
    }
    match TableMut::open(&p, WriteOptions::default()) {
        Err(Error::OldVersion { version: 2, .. }) => {}
        other => panic!("expected OldVersion, got {:?}", other.err()),
    }
    assert_eq!(std::fs::read(&p).unwrap(), before);
    // compact upgrades it, losing nothing; then writes work.
    ok(&["compact", ps]);
    let t = Table::open(&p).unwrap();
    assert_eq!(t.stats().unwrap().version, 3);
    assert_eq!(entries(&t), want);
    drop(t);
    assert!(ok(&["verify", ps]).contains("valid table: 42 entries"));
    ok(&["put", ps, "a", "b"]);
    assert_eq!(ok(&["get", ps, "a"]), "b\n");
}

#[test]
fn a_v2_table_of_binary_keys_upgrades_byte_exact_through_a_symlink() {
    let d = tempdir("v2binary");
    let p = d.path().join("real.tbl");
    let mut rng = Rng(common::seed());
    let mut kv = BTreeMap::new();
    kv.insert(Vec::new(), b"the empty key".to_vec());
    kv.insert(b"empty value".to_vec(), Vec::new());
    kv.insert(vec![0u8; 300], vec![0xffu8; 70_000]); // long lengths
    while kv.len() < 500 {
        let k: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
        let v: Vec<u8> = (0..rng.below(100)).map(|_| rng.next() as u8).collect();
        kv.insert(k, v);
    }
    write_v2(&p, &kv);
    let t = Table::open(&p).unwrap();
    assert_eq!(t.stats().unwrap().version, 2);
    assert_eq!(t.verify().unwrap().entries, 500);
    for (k, v) in &kv {
        assert_eq!(t.get(k).unwrap(), Some(&v[..]));
    }
    drop(t);
    let link = d.path().join("link.tbl");
    symlink("real.tbl", &link).unwrap();
    fails(
        &["put", link.to_str().unwrap(), "k", "v"],
        1,
        "persist compact",
    );
    ok(&["compact", link.to_str().unwrap()]);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let t = Table::open(&p).unwrap();
    assert_eq!(t.stats().unwrap().version, 3);
    assert_eq!(entries(&t), kv);
    assert_eq!(t.verify().unwrap().entries, 500);
    drop(t);
    let mut w = TableMut::open(&link, WriteOptions::default()).unwrap();
    w.put(b"after", b"upgrade").unwrap();
    w.close().unwrap();
    assert_eq!(
        Table::open(&p).unwrap().get(b"after").unwrap(),
        Some(&b"upgrade"[..])
    );
}

/// Damaged version 2 files are refused as cleanly as damaged version 3 ones: every length the
/// fixture can be cut to, every byte of it flipped (each read path, never a panic), and a
/// version 1 header.
#[test]
fn damaged_v2_files_and_version_1_are_refused_cleanly() {
    let d = tempdir("v2hostile");
    let good = std::fs::read(fixture_copy(d.path())).unwrap();
    let p = d.path().join("t.tbl");
    let read_all = |p: &Path| -> Result<(), Error> {
        let t = Table::open(p)?;
        t.verify()?;
        t.for_each(|_, _| {})?;
        for k in [&b"key-001"[..], b"key-040", b"nope", b""] {
            t.get(k)?;
        }
        Ok(())
    };
    let check = |e: Error| {
        let msg = e.to_string();
        assert!(msg.contains("is not a valid table: "), "{msg}");
    };
    for len in (0..good.len()).step_by(13) {
        std::fs::write(&p, &good[..len]).unwrap();
        check(read_all(&p).expect_err("a cut file"));
    }
    // Every byte of the header, a stride through the records and slots.
    for at in (0..64).chain((64..good.len()).step_by(5)) {
        let mut b = good.clone();
        b[at] ^= 0x5a;
        std::fs::write(&p, &b).unwrap();
        if let Err(e) = read_all(&p) {
            check(e);
        }
    }
    let mut v1 = good.clone();
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(&p, &v1).unwrap();
    let e = read_all(&p).expect_err("version 1");
    assert!(e.to_string().contains("unsupported version 1"), "{e}");
    fails(
        &["compact", p.to_str().unwrap()],
        1,
        "unsupported version 1",
    );
    assert_eq!(std::fs::read(&p).unwrap(), v1);
}

/// Keys of 255, 256, 65,534, 65,535 and 65,536 bytes (the slot's length field caps at 255;
/// the short head's key length tops out below 0xffff, which marks a long head) with values of
/// 65,535 and 65,536 bytes (the short head's limit and one past it) survive the upgrade from
/// version 2 byte for byte, and then put/get/list/load/compact in version 3.
#[test]
fn edge_lengths_survive_the_upgrade_and_every_v3_path() {
    let d = tempdir("v2edges");
    let p = d.path().join("t.tbl");
    let ps = p.to_str().unwrap();
    let mut kv = BTreeMap::new();
    for (i, kl) in [255usize, 256, 65_534, 65_535, 65_536]
        .into_iter()
        .enumerate()
    {
        for (j, vl) in [0usize, 65_535, 65_536].into_iter().enumerate() {
            let mut k = vec![b'a' + i as u8; kl];
            k[0] = b'0' + j as u8;
            kv.insert(k, vec![b'v' + j as u8; vl]);
        }
    }
    write_v2(&p, &kv);
    ok(&["compact", ps]);
    let t = Table::open(&p).unwrap();
    assert_eq!(t.stats().unwrap().version, 3);
    assert_eq!(entries(&t), kv);
    for (k, v) in &kv {
        assert_eq!(t.get(k).unwrap(), Some(&v[..]), "key of {} bytes", k.len());
    }
    drop(t);
    // Through `list` and `load` into a fresh v3 table, and a compaction of that.
    let listed = persist(&["list", ps], b"");
    assert!(listed.status.success());
    assert_eq!(parse_list(&listed.stdout), kv);
    let q = d.path().join("q.tbl");
    let qs = q.to_str().unwrap();
    ok(&["create", "--slots", "8", qs]);
    assert!(persist(&["load", qs], &listed.stdout).status.success());
    ok(&["compact", qs]);
    ok(&["verify", qs]);
    assert_eq!(entries(&Table::open(&q).unwrap()), kv);
}

/// SIGKILL at random instants of `persist compact` of a version 2 table (the upgrade): after
/// each kill the path holds the whole version 2 table or the whole version 3 one, `verify`
/// accepts it and every entry is there; a scratch file left behind is removed by the next
/// writer (the next compaction, which finishes the upgrade).
#[test]
fn sigkill_during_the_upgrade_leaves_the_whole_v2_or_the_whole_v3_table() {
    use std::os::unix::process::ExitStatusExt;
    let d = tempdir("v2kill");
    let mut rng = Rng(common::seed());
    let mut kv = BTreeMap::new();
    for i in 0..20_000u32 {
        let v = format!("value-{i}-{}", "x".repeat((i % 37) as usize));
        kv.insert(format!("key-{i}").into_bytes(), v.into_bytes());
    }
    let src = d.path().join("src.tbl");
    write_v2(&src, &kv);
    // How long a whole upgrade takes here, so that the kills land all through one (process
    // start included), with a few after it ended.
    let timed = d.path().join("timed.tbl");
    std::fs::copy(&src, &timed).unwrap();
    let t0 = std::time::Instant::now();
    ok(&["compact", timed.to_str().unwrap()]);
    let whole = t0.elapsed().as_micros() as u64 + 1;
    let (mut v2, mut v3, mut killed) = (0, 0, 0);
    for round in 0..25 {
        let p = d.path().join(format!("t{round}.tbl"));
        std::fs::copy(&src, &p).unwrap();
        let ps = p.to_str().unwrap();
        let mut child = std::process::Command::new(common::BIN)
            .args(["compact", ps])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // A random instant of the compaction (this is the kill time, not a synchronisation).
        std::thread::sleep(std::time::Duration::from_micros(rng.below(whole * 11 / 10)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let t = Table::open(&p).unwrap();
        match t.stats().unwrap().version {
            2 => v2 += 1,
            3 => v3 += 1,
            other => panic!("version {other}"),
        }
        assert_eq!(t.verify().unwrap().entries, 20_000, "round {round}");
        assert_eq!(entries(&t), kv, "round {round} ({status:?})");
        drop(t);
        ok(&["verify", ps]);
        // The next writer finishes the job whatever the kill left.
        ok(&["compact", ps]);
        let t = Table::open(&p).unwrap();
        assert_eq!(t.stats().unwrap().version, 3);
        assert_eq!(entries(&t), kv);
        assert!(persist::compact_scratch(&p).is_none(), "round {round}");
        killed += usize::from(status.signal().is_some());
    }
    std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "upgrade: {killed} of 25 compactions killed; {v2} left version 2, {v3} version 3\n"
        )
        .as_bytes(),
    )
    .unwrap();
}
