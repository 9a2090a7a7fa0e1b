//! Readers against a writer in another process that rehashes again and again and fills each
//! replaced slot array's space with new records (format version 3): `persist load` from an
//! 8-slot table, while reader threads of this process, with their own mapping, look up keys
//! stored before the load (always their value), keys that are never stored (always absent,
//! including ones whose length and prefix match the loaded keys), batches of both, and scan
//! the table (every entry exactly once, with its value).

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{ok, tempdir, Rng, BIN};
use persist::Table;

fn known(i: u64) -> (Vec<u8>, Vec<u8>) {
    let k = format!("known-{i}");
    let v = format!("kv-{i}-{}", "k".repeat((i % 23) as usize));
    (k.into_bytes(), v.into_bytes())
}

fn loaded(i: u64) -> (Vec<u8>, Vec<u8>) {
    let k = format!("n-{i:06}");
    let v = format!("nv-{i}-{}", "n".repeat((i % 17) as usize));
    (k.into_bytes(), v.into_bytes())
}

/// Keys the load never stores: some of the loaded keys' length and prefix.
fn absent(i: u64) -> Vec<u8> {
    if i % 2 == 0 {
        format!("n-{:06}", 900_000 + i % 99_999).into_bytes()
    } else {
        format!("absent-{i}").into_bytes()
    }
}

const KNOWN: u64 = 400;

#[test]
fn readers_in_another_process_than_a_rehashing_writer_never_see_wrong_or_phantom_keys() {
    const LOADED: u64 = 60_000;
    let d = tempdir("reuse-procs");
    let path = d.path().join("t.tbl");
    let ps = path.to_str().unwrap();
    ok(&["create", "--slots", "8", ps]);
    let tsv = |f: fn(u64) -> (Vec<u8>, Vec<u8>), n: u64| {
        let mut b = Vec::new();
        for i in 0..n {
            let (k, v) = f(i);
            b.extend_from_slice(&k);
            b.push(b'\t');
            b.extend_from_slice(&v);
            b.push(b'\n');
        }
        b
    };
    assert!(common::persist(&["load", ps], &tsv(known, KNOWN))
        .status
        .success());
    let (gets, absents, scans) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let finished = AtomicBool::new(false);
    let mut writer = Command::new(BIN)
        .args(["load", ps])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    std::thread::scope(|s| {
        for r in 0..2u64 {
            let (path, finished) = (&path, &finished);
            let (gets, absents, scans) = (&gets, &absents, &scans);
            s.spawn(move || {
                let (g, n) = read_until_finished(path, finished, common::seed() ^ r);
                gets.fetch_add(g, Ordering::Relaxed);
                absents.fetch_add(g, Ordering::Relaxed);
                scans.fetch_add(n, Ordering::Relaxed);
            });
        }
        // Feed the writer in pieces, so the load (and its rehashes) spans the readers' work.
        let all = tsv(loaded, LOADED);
        for piece in all.chunks(64 * 1024) {
            stdin.write_all(piece).unwrap();
        }
        drop(stdin);
        let out = writer.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        finished.store(true, Ordering::Release);
    });
    let t = Table::open(&path).unwrap();
    assert_eq!(t.verify().unwrap().entries, KNOWN + LOADED);
    for i in (0..LOADED).step_by(97) {
        assert_eq!(t.get(&loaded(i).0).unwrap(), Some(&loaded(i).1[..]));
    }
    let (g, a, s) = (gets.into_inner(), absents.into_inner(), scans.into_inner());
    std::io::stderr()
        .write_all(format!("reuse: {g} known gets, {a} absent gets, {s} scans\n").as_bytes())
        .unwrap();
    assert!(g > 0 && s >= 2);
}

/// One reader: lookups of known and absent keys, batches of both, and scans, until the load
/// has finished (and one pass more). Returns (lookups of each kind, scans).
fn read_until_finished(path: &Path, finished: &AtomicBool, seed: u64) -> (u64, u64) {
    let t = Table::open(path).unwrap();
    let mut rng = Rng(seed);
    let (mut g, mut n) = (0u64, 0u64);
    let mut out = Vec::new();
    let mut round = 0u64;
    // At least one full pass after the load ended, so a reader started late still
    // checks something.
    let mut last = false;
    while !last {
        last = finished.load(Ordering::Acquire);
        round += 1;
        let i = rng.below(KNOWN);
        let (k, v) = known(i);
        assert_eq!(t.get(&k).unwrap(), Some(&v[..]), "known key {i}");
        let a = absent(rng.next());
        assert_eq!(t.get(&a).unwrap(), None, "{}", String::from_utf8_lossy(&a));
        let mixed: Vec<Vec<u8>> = (0..32)
            .map(|j| {
                if j % 2 == 0 {
                    known(rng.below(KNOWN)).0
                } else {
                    absent(rng.next())
                }
            })
            .collect();
        t.get_many_into_depth(&mixed, &mut out, 1 + (round as usize % 16))
            .unwrap();
        for (j, (k, got)) in mixed.iter().zip(&out).enumerate() {
            let name = String::from_utf8_lossy(k);
            if j % 2 == 0 {
                let i: u64 = name["known-".len()..].parse().unwrap();
                assert_eq!(*got, Some(&known(i).1[..]), "batched {name}");
            } else {
                assert_eq!(*got, None, "batched absent {name}");
            }
        }
        g += 17;
        if round % 200 == 0 || last {
            let mut seen = HashSet::new();
            t.for_each(|k, v| {
                let name = String::from_utf8_lossy(k).into_owned();
                let want = if let Some(i) = name.strip_prefix("known-") {
                    known(i.parse().unwrap()).1
                } else if let Some(i) = name.strip_prefix("n-") {
                    loaded(i.parse().unwrap()).1
                } else {
                    panic!("a scan saw a key nobody stored: {name}");
                };
                assert_eq!(v, &want[..], "scan value of {name}");
                assert!(seen.insert(name.clone()), "a scan saw {name} twice");
            })
            .unwrap();
            for i in 0..KNOWN {
                assert!(
                    seen.contains(&format!("known-{i}")),
                    "scan missed known-{i}"
                );
            }
            n += 1;
        }
    }
    (g, n)
}
