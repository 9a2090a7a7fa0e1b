//! Writes the seed corpus of the `persist_file` target into DIR (default
//! `fuzz/corpus/persist_file`): small real tables made by the library, and hostile variants of
//! them, among them the cases issue 10 found. Each seed is a few KiB.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --bin make-seeds -- fuzz/corpus/persist_file`

use std::path::{Path, PathBuf};

use persist::TableMut;

fn table(dir: &Path, name: &str, slots_log2: u32, f: impl FnOnce(&mut TableMut)) -> Vec<u8> {
    let path = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&path);
    let mut w = TableMut::create(&path, slots_log2).expect("create");
    f(&mut w);
    w.close().expect("close");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::remove_file(&path).expect("remove");
    bytes
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn main() {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus/persist_file".into())
        .into();
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    seeds.push(("empty", table(&dir, "empty", 3, |_| {})));
    let one = table(&dir, "one", 3, |w| {
        w.put(b"k0", b"v0").unwrap();
    });
    seeds.push(("one-key", one.clone()));
    seeds.push((
        "tombstones",
        table(&dir, "tomb", 4, |w| {
            for i in 0..6 {
                w.put(format!("k{i}").as_bytes(), b"value").unwrap();
            }
            w.put(b"k2", b"overwritten").unwrap();
            w.delete(b"k3").unwrap();
            w.delete(b"k4").unwrap();
        }),
    ));
    // Version 3's long record head (a value over 65,535 bytes) beside short ones, and a key
    // longer than the 255 the slot's length byte holds.
    seeds.push((
        "long-head",
        table(&dir, "long", 3, |w| {
            w.put(b"short", b"v").unwrap();
            w.put(&[b'k'; 300], &[0xa5; 66_000]).unwrap();
            w.put(b"", b"the empty key").unwrap();
        }),
    ));
    seeds.push((
        "rehashed",
        table(&dir, "rehashed", 3, |w| {
            for i in 0..20 {
                w.put(
                    format!("key-{i:07}").as_bytes(),
                    format!("value {i}").as_bytes(),
                )
                .unwrap();
            }
        }),
    ));
    // A writer that never closed (DIRTY set): made by leaking the writer.
    {
        let path = dir.join(".dirty.tmp");
        let _ = std::fs::remove_file(&path);
        let mut w = TableMut::create(&path, 3).unwrap();
        w.put(b"k0", b"v0").unwrap();
        w.put(b"k1", b"v1").unwrap();
        std::mem::forget(w);
        seeds.push(("dirty", std::fs::read(&path).unwrap()));
        std::fs::remove_file(&path).unwrap();
    }
    // Issue 10 item 3, as the fuzzer found it: one key, `live` (byte 40) set to 0, clean.
    let mut live0 = one.clone();
    put_u64(&mut live0, 40, 0);
    seeds.push(("issue10-item3-live-0", live0));
    // Issue 10 item 3's sibling: every slot a tombstone, counts saying nothing is used.
    let mut tomb = table(&dir, "alltomb", 3, |_| {});
    let desc = u64::from_le_bytes(tomb[24..32].try_into().unwrap());
    let off = ((desc >> 32) * 8) as usize;
    for i in 0..(desc & 0xffff_ffff) as usize {
        put_u64(&mut tomb, off + 8 * i, 1);
    }
    seeds.push(("all-tombstones", tomb));
    // A file longer than its header records (a failed growth, issue 10 item 2).
    let mut longer = one.clone();
    longer.extend(std::iter::repeat_n(0u8, 4096));
    seeds.push(("longer-than-header", longer));
    // Issue 10 item 4's header, in a file too short to hold what it claims.
    let mut claims = one.clone();
    put_u64(&mut claims, 24, (64 / 8) << 32 | 1 << 31);
    put_u64(&mut claims, 40, 1 << 31);
    put_u64(&mut claims, 48, 1 << 31);
    seeds.push(("claims-2pow31-slots", claims));

    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes).expect("write seed");
        println!("{name}: {} bytes", bytes.len());
    }
}
