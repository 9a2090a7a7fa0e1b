//! Untrusted files: empty, truncated at every length, random bytes, flipped bits in the header
//! and the body (a seeded mutation test, bounded in iterations, that CI runs), and a file
//! truncated by another process while mapped. Always an error, never a panic, a hang or an
//! out-of-bounds read. Also growth from a fresh table, many times over.

mod common;

use std::path::Path;

use common::{build, tempdir, Rng};
use persist::{Error, Table, TableMut, WriteOptions};

/// Exercises every read path on the file: open, verify, get of every known key, list, and a
/// write. Returns whether verify accepted it. Panics only if an accepted table returns wrong
/// values (a crash or panic inside the library fails the test by itself).
fn exercise(path: &Path, kv: &[(Vec<u8>, Vec<u8>)]) -> bool {
    let t = match Table::open(path) {
        Ok(t) => t,
        Err(e) => {
            assert_invalid(&e);
            return false;
        }
    };
    let verified = t.verify();
    for (k, v) in kv {
        match t.get(k) {
            Ok(Some(got)) if verified.is_ok() => assert_eq!(got, &v[..], "verified table"),
            Ok(None) if verified.is_ok() => panic!("verified table lost {k:?}"),
            Ok(_) => {}
            Err(e) => assert_invalid(&e),
        }
    }
    let _ = t.get(b"no such key");
    let mut n = 0;
    if let Err(e) = t.for_each(|_, _| n += 1) {
        assert_invalid(&e);
    }
    drop(t);
    if let Ok(mut w) = TableMut::open(path, WriteOptions::default()) {
        if let Err(e) = w.put(b"new key", b"new value") {
            assert_invalid(&e);
        }
    }
    verified.is_ok()
}

fn assert_invalid(e: &Error) {
    let msg = e.to_string();
    assert!(
        matches!(e, Error::Invalid { .. }) && msg.contains("is not a valid table: "),
        "unexpected error kind: {msg}"
    );
}

#[test]
fn empty_and_short_files_are_invalid() {
    let d = tempdir("short");
    let p = d.path().join("t");
    for len in [0usize, 1, 8, 63] {
        std::fs::write(&p, vec![0u8; len]).unwrap();
        let e = Table::open(&p).err().expect("invalid");
        assert_invalid(&e);
        let e = TableMut::open(&p, WriteOptions::default())
            .err()
            .expect("invalid");
        assert_invalid(&e);
    }
}

#[test]
fn truncated_at_every_length_is_rejected() {
    let d = tempdir("truncate");
    let good = d.path().join("good");
    let kv = build(&good, 40);
    let bytes = std::fs::read(&good).unwrap();
    let p = d.path().join("t");
    // Every length through the header and the first slots, then a stride, then each side of
    // the boundaries the header names (slot array, arena end, end of file).
    let field = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let (slots_off, count) = common::slot_array(&bytes);
    let slots_end = slots_off + 8 * count;
    let mut lengths: Vec<usize> = (0..256).chain((256..bytes.len()).step_by(37)).collect();
    for b in [slots_off, slots_end, field(32), bytes.len()] {
        lengths.extend(
            [b.saturating_sub(1), b, b + 1]
                .iter()
                .filter(|&&l| l < bytes.len()),
        );
    }
    for len in lengths {
        // As is: the header's length no longer matches.
        std::fs::write(&p, &bytes[..len]).unwrap();
        assert!(!exercise(&p, &kv), "accepted a file cut to {len} bytes");
        // And with the header patched to claim the cut length (so only the bounds checks stand
        // between a lookup and the end of the mapping).
        if len >= 64 {
            let mut cut = bytes[..len].to_vec();
            cut[16..24].copy_from_slice(&(len as u64).to_le_bytes());
            std::fs::write(&p, &cut).unwrap();
            exercise(&p, &kv);
        }
    }
}

#[test]
fn random_bytes_are_rejected() {
    let d = tempdir("random");
    let p = d.path().join("t");
    let mut rng = Rng(common::seed());
    for i in 0..300 {
        let len = (rng.below(20_000) + 1) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && len >= 8 {
            b[..8].copy_from_slice(&persist::MAGIC); // get past the magic check half the time
        }
        std::fs::write(&p, &b).unwrap();
        assert!(!exercise(&p, &[]), "accepted {len} random bytes");
    }
}

#[test]
fn flipped_bits_in_header_and_body_never_crash_or_lie() {
    let d = tempdir("flip");
    let good = d.path().join("good");
    let kv = build(&good, 300);
    let bytes = std::fs::read(&good).unwrap();
    let p = d.path().join("t");
    let mut rng = Rng(common::seed());
    let mut rejected = 0;
    // Every bit of the header once.
    for bit in 0..64 * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&p, &b).unwrap();
        if !exercise(&p, &kv) {
            rejected += 1;
        }
    }
    assert!(
        rejected > 300,
        "only {rejected} of 512 header bit flips were noticed"
    );
    // Then random flips (1 to 4 bits) anywhere in the file.
    let mut body_rejected = 0;
    for _ in 0..1500 {
        let mut b = bytes.clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(b.len() as u64) as usize;
            b[at] ^= 1 << rng.below(8);
        }
        std::fs::write(&p, &b).unwrap();
        if !exercise(&p, &kv) {
            body_rejected += 1;
        }
    }
    assert!(body_rejected > 0, "no body flip was ever noticed");
}

#[test]
fn a_file_truncated_by_another_process_while_mapped_gives_an_error() {
    let d = tempdir("sigbus-lib");
    let p = d.path().join("t");
    let kv = build(&p, 2000);
    let t = Table::open(&p).unwrap();
    assert_eq!(t.get(b"k1999").unwrap(), Some(&kv[1999].1[..]));
    // Another process truncates the file while we have it mapped.
    let status = std::process::Command::new("truncate")
        .args(["-s", "100"])
        .arg(&p)
        .status()
        .unwrap();
    assert!(status.success());
    let mut errors = 0;
    for (k, _) in &kv {
        match t.get(k) {
            Err(e) => {
                assert!(
                    e.to_string()
                        .contains("another process truncated it to 100 bytes"),
                    "{e}"
                );
                errors += 1;
            }
            Ok(v) => panic!("a lookup after truncation returned {v:?}"),
        }
    }
    assert_eq!(errors, kv.len());
    drop(t);

    // The writer: truncated under its MAP_SHARED mapping, a put fails cleanly too.
    let p2 = d.path().join("w");
    build(&p2, 500);
    let mut w = TableMut::open(&p2, WriteOptions::default()).unwrap();
    std::process::Command::new("truncate")
        .args(["-s", "0"])
        .arg(&p2)
        .status()
        .unwrap();
    let e = w.put(b"k1", b"x").expect_err("truncated");
    assert!(e.to_string().contains("truncated it to 0 bytes"), "{e}");
}

#[test]
fn grows_many_times_from_a_fresh_table() {
    let d = tempdir("grow");
    let p = d.path().join("t");
    let mut t = TableMut::create(&p, 3).unwrap();
    let n = 40_000u64;
    let mut model = std::collections::HashMap::new();
    for i in 0..n {
        let (k, v) = (
            format!("key-{i}").into_bytes(),
            format!("value-{i}").into_bytes(),
        );
        t.put(&k, &v).unwrap();
        model.insert(k, v);
        if i % 3 == 0 && i > 0 {
            let k = format!("key-{}", i - 1).into_bytes();
            assert_eq!(t.put(&k, b"replaced").unwrap(), model.contains_key(&k));
            model.insert(k, b"replaced".to_vec());
        }
        if i % 7 == 0 {
            let k = format!("key-{i}").into_bytes();
            assert!(t.delete(&k).unwrap());
            model.remove(&k);
        }
    }
    let ws = t.write_stats();
    assert!(ws.file_growths >= 10, "{ws:?}");
    assert!(ws.rehashes >= 12, "{ws:?}");
    t.close().unwrap();
    let t = Table::open(&p).unwrap();
    let report = t.verify().unwrap();
    assert!(!report.dirty && report.counts_match);
    for i in 0..n {
        let k = format!("key-{i}").into_bytes();
        let got = t.get(&k).unwrap();
        assert_eq!(got, model.get(&k).map(Vec::as_slice), "key-{i}");
    }
    assert_eq!(report.entries, model.len() as u64);
    assert_eq!(
        t.stats().unwrap().file_bytes,
        std::fs::metadata(&p).unwrap().len()
    );
}

#[test]
fn churn_reuses_the_slot_array_instead_of_doubling_it() {
    let d = tempdir("churn");
    let p = d.path().join("t");
    let mut t = TableMut::create(&p, 4).unwrap();
    for i in 0..20_000u32 {
        let k = format!("churn-{i}");
        t.put(k.as_bytes(), b"v").unwrap();
        if i >= 5 {
            assert!(t.delete(format!("churn-{}", i - 5).as_bytes()).unwrap());
        }
    }
    let stats = t.stats();
    assert_eq!(stats.entries, 5);
    assert!(stats.slot_count <= 32, "{stats:?}");
    assert!(
        t.write_stats().rehashes > 100,
        "tombstones were cleaned by rehashing"
    );
    t.close().unwrap();
    let report = Table::open(&p).unwrap().verify().unwrap();
    assert_eq!(report.entries, 5);
}

/// Verify reads the file in order (records by offset, then the slot array again) instead of
/// probing at random: it must still catch every slot-level lie a probe would meet — a wrong
/// tag, a key in two slots, and a key past an empty slot from its home — naming it.
#[test]
fn verify_names_a_wrong_tag_a_duplicate_and_an_unreachable_key() {
    let d = tempdir("slots");
    let p = d.path().join("t");
    let mut w = TableMut::create(&p, 6).unwrap();
    for i in 0..12 {
        w.put(format!("k{i}").as_bytes(), b"v").unwrap();
    }
    w.close().unwrap();
    let orig = std::fs::read(&p).unwrap();
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (off, count) = common::slot_array(&orig);
    let slot = |b: &[u8], i: usize| word(b, off + (i % count) * 8);
    let set = |b: &mut Vec<u8>, i: usize, v: u64| {
        let at = off + (i % count) * 8;
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    };
    // A full slot followed by two empty ones (12 keys in 64 slots: there is one).
    let i = (0..count)
        .find(|&i| slot(&orig, i) > 1 && slot(&orig, i + 1) == 0 && slot(&orig, i + 2) == 0)
        .expect("a full slot followed by two empty ones");
    let full = slot(&orig, i);
    let verify_err = |b: &[u8]| {
        std::fs::write(&p, b).unwrap();
        Table::open(&p).unwrap().verify().unwrap_err().to_string()
    };
    let mut b = orig.clone();
    set(&mut b, i, full ^ (1 << 32));
    let e = verify_err(&b);
    assert!(e.contains(&format!("slot {i} has tag")), "{e}");
    let mut b = orig.clone();
    set(&mut b, i + 1, full);
    let e = verify_err(&b);
    assert!(e.contains("hold the same key"), "{e}");
    let mut b = orig.clone();
    set(&mut b, i, 0);
    set(&mut b, i + 2, full);
    let e = verify_err(&b);
    assert!(e.contains("where a lookup cannot reach it"), "{e}");
    std::fs::write(&p, &orig).unwrap();
    assert_eq!(Table::open(&p).unwrap().verify().unwrap().entries, 12);
}

/// `persist verify` names a key whose slot is wrong the way `get` names a missing one: a byte
/// that is not UTF-8 as `\xNN`, not U+FFFD (two such keys would read the same).
#[test]
fn verify_names_a_key_that_is_not_utf8_with_escapes() {
    let d = tempdir("slots-bytes");
    let p = d.path().join("t");
    let mut w = TableMut::create(&p, 6).unwrap();
    w.put(b"caf\xe9\x01", b"v").unwrap();
    w.close().unwrap();
    let orig = std::fs::read(&p).unwrap();
    let (off, count) = common::slot_array(&orig);
    let at = |i: usize| off + (i % count) * 8;
    let word = |b: &[u8], i: usize| u64::from_le_bytes(b[at(i)..at(i) + 8].try_into().unwrap());
    // The one full slot (the others are empty): copied to the next slot, the key is in two
    // slots; moved two slots on past an empty one, a lookup cannot reach it.
    let i = (0..count)
        .find(|&i| word(&orig, i) > 1)
        .expect("a full slot");
    let full = orig[at(i)..at(i) + 8].to_vec();
    let mut twice = orig.clone();
    twice[at(i + 1)..at(i + 1) + 8].copy_from_slice(&full);
    let mut moved = orig.clone();
    moved[at(i)..at(i) + 8].fill(0);
    moved[at(i + 2)..at(i + 2) + 8].copy_from_slice(&full);
    let path = p.to_str().unwrap();
    for (bytes, what) in [(twice, "hold the same key"), (moved, "where a lookup")] {
        std::fs::write(&p, bytes).unwrap();
        let e = common::fails(&["verify", path], 1, what);
        assert!(e.contains(r#"key "caf\xe9\x01""#), "{e}");
        assert!(!e.contains('\u{fffd}'), "{e}");
    }
}

/// A flipped byte in a value fails the lookup with the record's check, whether the record has a
/// short head (the common case, read as one word by the lookup's fast path) or a long one (a
/// value over 65,535 bytes), through `get` and `get_many`; the untouched keys still answer.
#[test]
fn a_flipped_value_byte_fails_its_check_short_and_long_heads() {
    let d = tempdir("flip-value");
    let p = d.path().join("t");
    let long = vec![b'v'; 70_000];
    let mut w = TableMut::create(&p, 6).unwrap();
    w.put(b"short", b"a short value").unwrap();
    w.put(b"long", &long).unwrap();
    w.put(b"other", b"left alone").unwrap();
    w.close().unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let find = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    for (key, at) in [
        (&b"short"[..], find(b"a short value") + 3),
        (&b"long"[..], find(&long[..64]) + 69_000),
    ] {
        let mut b = bytes.clone();
        b[at] ^= 0x20;
        std::fs::write(&p, &b).unwrap();
        let t = Table::open(&p).unwrap();
        for e in [
            t.get(key).unwrap_err(),
            t.get_many(&[&b"other"[..], key]).unwrap_err(),
        ] {
            assert_invalid(&e);
            assert!(e.to_string().contains("fails its check"), "{e}");
        }
        assert_eq!(t.get(b"other").unwrap(), Some(&b"left alone"[..]));
    }
}

/// Two slots naming one record (the entry the second slot held is lost: verify rejects the
/// table) make every scan fail in one line — `for_each` and a compaction, which would otherwise
/// write a clean-looking table without the lost entry — and the file is left as it was.
#[test]
fn two_slots_naming_one_record_fail_scans_and_compaction_leaves_the_file() {
    let d = tempdir("dup-slot");
    let p = d.path().join("t");
    build(&p, 50);
    let mut b = std::fs::read(&p).unwrap();
    let desc = u64::from_le_bytes(b[24..32].try_into().unwrap());
    let (off, count) = ((desc >> 32) as usize * 8, (desc & 0xffff_ffff) as usize);
    let live: Vec<usize> = (0..count)
        .map(|i| off + i * 8)
        .filter(|&at| b[at..at + 8] != [0; 8])
        .collect();
    let (a, z) = (live[0], live[live.len() - 1]);
    let word: [u8; 8] = b[a..a + 8].try_into().unwrap();
    b[z..z + 8].copy_from_slice(&word);
    std::fs::write(&p, &b).unwrap();

    let t = Table::open(&p).unwrap();
    assert!(t.verify().is_err(), "verify must reject it");
    let e = t.for_each(|_, _| {}).unwrap_err();
    assert_invalid(&e);
    assert!(
        e.to_string().contains("both name the record at offset"),
        "{e}"
    );
    drop(t);
    let mut w = TableMut::open(&p, WriteOptions::default()).unwrap();
    let e = w.compact().unwrap_err();
    assert_invalid(&e);
    assert!(
        e.to_string().contains("both name the record at offset"),
        "{e}"
    );
    drop(w);
    let after = std::fs::read(&p).unwrap();
    assert_eq!(after.len(), b.len());
    assert_eq!(
        after[64..],
        b[64..],
        "the compaction changed the table's body"
    );
    let scratch: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert_eq!(scratch.len(), 1, "a scratch file was left beside the table");
}
