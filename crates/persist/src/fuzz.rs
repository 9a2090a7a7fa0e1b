//! The fuzzing entry point: [`fuzz_one`] treats its input as a table file and runs every
//! command of the library on it. The libFuzzer target in `fuzz/` (outside the workspace) calls
//! it, and `tests/fuzz_corpus.rs` replays the committed corpus (`fuzz/corpus/persist_file/`)
//! through it in every `cargo test`, so a case the fuzzer once found stays fixed.
//!
//! Whatever the bytes, nothing may panic, hang or read out of bounds; beyond that it checks
//! properties that make a wrong answer a crash:
//! - a table that verifies lists exactly the entries a lookup of each key returns;
//! - writes never make a file that opened unopenable (issue 10 item 3: a `del` that wrapped
//!   the live count did), and a put that returned is read back by the next reader;
//! - a table that verified before a put, a delete or a compaction still verifies after it,
//!   with the entries the model says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::table::{Error, Table, TableMut, WriteOptions};

/// Keys every run looks up, puts or deletes besides the ones the file holds.
const PROBE_KEYS: &[&[u8]] = &[b"", b"k0", b"k1", b"key-0000001", b"\xff\x00"];

/// A scratch directory for one run, removed when dropped (also on a panic, which the fuzzer
/// reports anyway).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "persist-fuzz-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create a scratch directory for fuzzing");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every error the library may give for a hostile file. Anything else (an I/O error on a
/// scratch file, say) is a finding.
fn expected(e: &Error) -> bool {
    matches!(
        e,
        Error::Invalid { .. }
            | Error::TooLarge { .. }
            | Error::NoSpace { .. }
            | Error::OldVersion { .. }
    )
}

fn must(e: Error, what: &str) {
    assert!(expected(&e), "{what}: unexpected error {e}");
}

/// A table's entries, as a model to compare with.
type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// What a reader sees of the file: `None` if it does not open; else whether it verifies and
/// its entries (when it does).
fn read_all(path: &Path) -> Option<(bool, Entries)> {
    let t = match Table::open(path) {
        Ok(t) => t,
        Err(e) => {
            must(e, "open");
            return None;
        }
    };
    let verified = t.verify();
    if let Err(e) = &verified {
        assert!(
            matches!(e, Error::Invalid { .. }),
            "verify: unexpected error {e}"
        );
    }
    let mut entries = BTreeMap::new();
    let listed = t.for_each(|k, v| {
        entries.insert(k.to_vec(), v.to_vec());
    });
    for key in PROBE_KEYS {
        if let Err(e) = t.get(key) {
            must(e, "get");
        }
    }
    let _ = t.stats();
    if let Ok(report) = &verified {
        listed.expect("a verified table lists without error");
        assert_eq!(
            report.entries,
            entries.len() as u64,
            "verify counts a key list misses"
        );
        for (k, v) in &entries {
            assert_eq!(
                t.get(k).expect("a verified table answers"),
                Some(&v[..]),
                "a listed entry is not what a lookup returns"
            );
        }
        for key in PROBE_KEYS {
            let got = t.get(key).expect("a verified table answers");
            assert_eq!(got, entries.get(*key).map(Vec::as_slice));
        }
    } else if let Err(e) = listed {
        must(e, "list");
    }
    Some((verified.is_ok(), entries))
}

/// Runs every command on `bytes` as a table file. Panics on a finding (see the module docs).
#[doc(hidden)]
pub fn fuzz_one(bytes: &[u8]) {
    let scratch = Scratch::new();
    let path = scratch.0.join("t.tbl");
    std::fs::write(&path, bytes).expect("cannot write the scratch table");
    let Some((valid, mut model)) = read_all(&path) else {
        // It does not open; a writer must refuse it too.
        if let Ok(w) = TableMut::open(&path, WriteOptions::default()) {
            drop(w);
        }
        return;
    };

    // Writes: a put of a new key, an overwrite, a delete of a key the file holds.
    let opts = WriteOptions {
        wait: false,
        huge_pages: false,
        ..WriteOptions::default()
    };
    let mut w = match TableMut::open(&path, opts) {
        Ok(w) => w,
        Err(e) => return must(e, "open for writing"),
    };
    let first_key = model.keys().next().cloned();
    let mut ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
        (b"k0".to_vec(), Some(b"fuzz value".to_vec())),
        (b"k1".to_vec(), Some(vec![b'v'; 300])),
        (b"k0".to_vec(), Some(b"second".to_vec())),
    ];
    if let Some(k) = first_key {
        ops.push((k, None));
    }
    ops.push((b"k1".to_vec(), None));
    let mut done = Vec::new();
    for (k, v) in ops {
        let r = match &v {
            Some(v) => w.put(&k, v).map(|_| true),
            None => w.delete(&k),
        };
        match r {
            Ok(present) => {
                match &v {
                    Some(v) => {
                        assert_eq!(
                            w.get(&k).ok().flatten(),
                            Some(&v[..]),
                            "the writer does not read back its put"
                        );
                        model.insert(k.clone(), v.clone());
                    }
                    None => {
                        if valid {
                            assert_eq!(present, model.contains_key(&k), "delete of {k:?}");
                        }
                        model.remove(&k);
                    }
                }
                done.push((k, v));
            }
            Err(e) => {
                must(e, "write");
                break;
            }
        }
    }
    let closed = w.close();
    if let Err(e) = closed {
        return must(e, "close");
    }

    // What returned is there, and the file still opens (and verifies if it did).
    let t = Table::open(&path).expect("writes made an openable table unopenable");
    let mut last = BTreeMap::new();
    for (k, v) in &done {
        last.insert(k.clone(), v.clone());
    }
    for (k, v) in &last {
        if v.is_none() && !valid {
            continue; // a damaged table may hold a deleted key twice
        }
        match t.get(k) {
            Ok(got) => assert_eq!(got, v.as_deref(), "a write that returned is lost"),
            Err(e) => {
                assert!(!valid, "a verified table stopped answering: {e}");
                must(e, "get after write");
            }
        }
    }
    drop(t);
    if valid {
        let (still, entries) = read_all(&path).expect("opens");
        assert!(still, "a valid table no longer verifies after writes");
        assert_eq!(entries, model, "the table's entries are not the model's");
    }

    // Compaction: of a valid table, the same entries in a file that verifies; of anything it
    // accepts, a file that verifies.
    let mut w = match TableMut::open(&path, opts) {
        Ok(w) => w,
        Err(e) => return must(e, "open for compaction"),
    };
    match w.compact() {
        Ok(_) => {
            w.close().expect("close after compaction");
            let (ok, entries) = read_all(&path).expect("a compacted table opens");
            assert!(ok, "a compacted table does not verify");
            if valid {
                assert_eq!(entries, model, "compaction changed the entries");
            }
        }
        Err(e) => {
            assert!(!valid, "compaction of a valid table failed: {e}");
            must(e, "compact");
        }
    }
    assert!(
        !crate::table::compact_path(&path).exists(),
        "compaction left its scratch file"
    );
}
