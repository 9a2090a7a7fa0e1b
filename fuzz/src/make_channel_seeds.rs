//! Writes the seed corpus of the `channel_ring` target into DIR (default
//! `fuzz/corpus/channel_ring`): small real rings made by the library (4 KiB of data, so each
//! seed is 8 KiB), and hostile variants of them, among them the damaged rings issue 22 found.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --bin make-channel-seeds -- fuzz/corpus/channel_ring`

use std::path::{Path, PathBuf};

use channel::{Options, Receiver, Sender};

/// Byte offsets of the ring's header (DESIGN.md, step 6): tail, the closed flag, head, data.
const TAIL: usize = 128;
const CLOSED: usize = 144;
const HEAD: usize = 256;
const DATA: usize = 4096;

fn opts(capacity: u64) -> Options {
    Options {
        capacity,
        ..Options::default()
    }
}

/// A ring made in `dir` by `f` (which gets the path and leaves the ring in the state wanted),
/// read back as bytes and removed.
fn ring(dir: &Path, name: &str, f: impl FnOnce(&Path)) -> Vec<u8> {
    let path = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&path);
    f(&path);
    let bytes = std::fs::read(&path).expect("the seed ring exists");
    std::fs::remove_file(&path).expect("remove");
    bytes
}

/// A closed ring of 4 KiB holding `messages`, unread.
fn closed_with(dir: &Path, name: &str, messages: &[&[u8]]) -> Vec<u8> {
    ring(dir, name, |path| {
        let mut tx = Sender::open(path, opts(4096)).unwrap();
        for m in messages {
            tx.send(m).unwrap();
        }
        tx.close().unwrap();
    })
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn main() {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus/channel_ring".into())
        .into();
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    // An open ring, nobody sent yet (the sender still attached when it was copied).
    seeds.push((
        "empty-open",
        ring(&dir, "empty", |path| {
            let tx = Sender::open(path, opts(4096)).unwrap();
            std::fs::copy(path, path.with_extension("copy")).unwrap();
            drop(tx);
            std::fs::rename(path.with_extension("copy"), path).unwrap();
        }),
    ));
    let two = closed_with(&dir, "two", &[b"one\n", b"two\n"]);
    seeds.push(("two-messages-closed", two.clone()));
    seeds.push(("empty-message-closed", closed_with(&dir, "zero", &[b""])));
    let max = vec![b'm'; channel::max_message(4096) as usize];
    seeds.push(("max-message-closed", closed_with(&dir, "max", &[&max])));
    // Records that wrapped: a padding record at the end of the data area, then a message at 0.
    seeds.push((
        "wrapped-with-padding",
        ring(&dir, "wrapped", |path| {
            let mut tx = Sender::open(path, opts(4096)).unwrap();
            let mut rx = Receiver::open(path, opts(4096)).unwrap();
            for i in 0..5u8 {
                tx.send(&[i; 700]).unwrap();
                drop(rx.try_recv().unwrap());
            }
            tx.send(&[9; 1500]).unwrap();
            tx.send(b"after the wrap").unwrap();
            tx.close().unwrap();
            drop(rx.try_recv().unwrap());
            drop(rx); // Unread bytes remain: the ring stays.
        }),
    ));
    // A larger ring of many small messages, half of them received.
    seeds.push((
        "16k-half-read",
        ring(&dir, "half", |path| {
            let mut tx = Sender::open(path, opts(16384)).unwrap();
            let mut rx = Receiver::open(path, opts(16384)).unwrap();
            for i in 0..200u32 {
                tx.send(format!("message {i}\n").as_bytes()).unwrap();
            }
            for _ in 0..100 {
                drop(rx.try_recv().unwrap());
            }
            tx.close().unwrap();
            drop(rx);
        }),
    ));
    // Drained and closed, kept (head == tail): the end of a stream.
    let mut drained = two.clone();
    put_u64(&mut drained, HEAD, get_u64(&two, TAIL));
    seeds.push(("drained-closed", drained));
    // A sender killed after publishing a record, before storing tail.
    let mut killed = two.clone();
    put_u64(&mut killed, TAIL, 16);
    put_u64(&mut killed, CLOSED, 0);
    seeds.push(("sender-killed-before-tail", killed));
    // Issue 22 item 2: head past tail at the end of a stream.
    let mut passed = two.clone();
    put_u64(&mut passed, HEAD, get_u64(&two, TAIL) + 16);
    seeds.push(("issue22-head-past-tail", passed));
    // Issue 22 item 2: tail says records are there, the stamp at head is wrong.
    let mut unstamped = two.clone();
    put_u64(&mut unstamped, DATA, 0x1234);
    seeds.push(("issue22-unstamped-at-head", unstamped));
    // A record header claiming a huge length.
    let mut huge = two.clone();
    put_u64(
        &mut huge,
        DATA,
        (get_u64(&two, DATA) & !0xffff_ffff) | 0x7fff_fff0,
    );
    seeds.push(("record-length-huge", huge));
    // Positions near the end of u64.
    let mut far = two.clone();
    put_u64(&mut far, HEAD, u64::MAX - 7);
    put_u64(&mut far, TAIL, u64::MAX - 7);
    seeds.push(("positions-near-u64-max", far));
    // Not rings at all, or rings with a bad fixed header.
    seeds.push(("short-file", b"MMLABRNG".to_vec()));
    let mut magic = two.clone();
    magic[..8].copy_from_slice(b"#!/bin/s");
    seeds.push(("bad-magic", magic));
    let mut version = two.clone();
    version[8] = 2;
    seeds.push(("version-2", version));
    let mut capacity = two.clone();
    put_u64(&mut capacity, 16, 5000);
    seeds.push(("capacity-not-power-of-two", capacity));
    let mut longer = two.clone();
    longer.extend_from_slice(&[0; 8]);
    seeds.push(("longer-than-capacity", longer));

    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes).expect("write seed");
        println!("{name}: {} bytes", bytes.len());
    }
}
