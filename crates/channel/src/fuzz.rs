//! The fuzzing entry point: [`check_ring`] treats its input as a ring file and runs what
//! `channel info`, `recv` and `send` do on it. The libFuzzer target in `fuzz/` (outside the
//! workspace) calls it, and `tests/fuzz_corpus.rs` replays the committed corpus
//! (`fuzz/corpus/channel_ring/`) through it in every `cargo test`, so a case the fuzzer once
//! found stays fixed.
//!
//! Whatever the bytes, nothing may panic, hang, overflow or read out of bounds; beyond that it
//! checks properties that make a wrong answer a crash:
//! - [`inspect`] and [`Receiver::open`] agree on whether the file is a ring;
//! - every error is one a hostile file may cause ([`Error::NotARing`], [`Error::Corrupt`]),
//!   never an I/O error or a panic;
//! - a received message fits the ring ([`max_message`]); the receiver never releases past
//!   what the sender published, so a side leaving removes the file only when `head == tail`;
//! - a ring drained cleanly (`head == tail`) takes a new message, the receiver gets exactly
//!   that message and then the end of the stream, and the last side out removes the file
//!   (issue 22: the end of a stream is `head == tail`, or the ring is damaged).
//!
//! No wait can hang: every side runs with an interrupt flag that is always set, so a wait
//! returns [`Error::Interrupted`] after its first look at the ring.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::ring::{inspect, max_message, Error, Options, Receiver, Sender};

/// Always set: every wait ends after one look (see the module docs).
static NEVER_WAIT: AtomicBool = AtomicBool::new(true);

fn options() -> Options {
    Options {
        interrupt: Some(&NEVER_WAIT),
        create: false,
        spin: Some(std::time::Duration::ZERO),
        ..Options::default()
    }
}

/// Errors a hostile file may cause. Anything else (an I/O error on a scratch file, say) is a
/// finding.
fn expected(e: &Error) -> bool {
    matches!(
        e,
        Error::NotARing { .. } | Error::Corrupt { .. } | Error::Interrupted
    )
}

fn must(e: &Error, what: &str) {
    assert!(expected(e), "{what}: unexpected error {e}");
}

/// Takes everything there (bounded), keeping every other message and releasing in batches
/// as `channel recv` does. Returns the messages and whether the drain ended without an error
/// other than [`Error::Interrupted`] (nothing more for now).
fn receive_all(rx: &mut Receiver) -> (Vec<Vec<u8>>, bool) {
    let max = max_message(rx.capacity()) as usize;
    // A record takes at least 8 bytes: no more than capacity / 8 per lap, and no drain takes
    // more than one lap (head never passes tail by more than the capacity).
    let bound = rx.capacity() / 8 + 2;
    let mut messages = Vec::new();
    let mut clean = true;
    for turn in 0..bound {
        match rx.recv() {
            Ok(Some(m)) => {
                assert!(
                    m.len() <= max,
                    "a message of {} bytes in a ring taking {max}",
                    m.len()
                );
                messages.push(m.to_vec());
                if turn % 2 == 0 {
                    m.keep();
                }
            }
            Ok(None) => break,
            Err(e) => {
                must(&e, "recv");
                clean = matches!(e, Error::Interrupted);
                break;
            }
        }
        if turn % 7 == 0 {
            rx.release();
        }
    }
    rx.release();
    assert_eq!(rx.kept(), 0, "release left bytes kept");
    (messages, clean)
}

/// Joins as the only side, drains and leaves: what `channel recv` does with a ring whose
/// sender is gone. Returns whether the file opened as a ring.
fn receive_alone(path: &Path) -> bool {
    let mut rx = match Receiver::open(path, options()) {
        Ok(rx) => rx,
        Err(e) => {
            must(&e, "Receiver::open");
            return false;
        }
    };
    receive_all(&mut rx);
    match rx.close() {
        Ok(leave) => assert!(
            !leave.removed || leave.unread == 0,
            "removed a ring with {} unread bytes",
            leave.unread
        ),
        Err(e) => must(&e, "Receiver::close"),
    }
    true
}

/// How far [`check_ring`] got with an input: the replay test checks that the seeds reach the
/// stage they were made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Refused as no ring (both by `inspect` and by `Receiver::open`).
    NotARing,
    /// A ring, but a sender could not join, or the drain found it damaged (or full).
    Damaged,
    /// Drained to `head == tail`, then a message sent, received, and the stream ended.
    SentAndReceived,
}

/// Both sides attached: the receiver drains what is there; if that leaves `head == tail`, a
/// message sent now must be the next and only one received, and closing must end the stream
/// and remove the file.
fn send_after_drain(path: &Path) -> Reached {
    let mut rx = match Receiver::open(path, options()) {
        Ok(rx) => rx,
        Err(e) => {
            must(&e, "Receiver::open");
            return Reached::Damaged;
        }
    };
    let mut tx = match Sender::open(path, options()) {
        Ok(tx) => tx,
        Err(e) => {
            must(&e, "Sender::open");
            return Reached::Damaged;
        }
    };
    let (_, clean) = receive_all(&mut rx);
    let drained = inspect(path).is_ok_and(|i| i.head == i.tail);
    if !clean || !drained {
        return Reached::Damaged;
    }
    if let Err(e) = tx.send(b"fuzz") {
        must(&e, "send");
        return Reached::Damaged;
    }
    match rx.recv() {
        Ok(Some(m)) => assert_eq!(&*m, b"fuzz", "a drained ring gave another message"),
        other => panic!("the message sent into a drained ring was not received: {other:?}"),
    }
    tx.close().expect("a sender that sent leaves cleanly");
    match rx.recv() {
        Ok(None) => {}
        other => panic!("no end of the stream after the last message: {other:?}"),
    }
    let leave = rx
        .close()
        .expect("a receiver at the end of a stream leaves cleanly");
    assert!(
        leave.removed,
        "the last side out left a drained ring: {leave:?}"
    );
    Reached::SentAndReceived
}

/// Runs `channel info`, `recv` and `send` on `bytes` as a ring file; panics on a finding.
pub fn check_ring(bytes: &[u8]) -> Reached {
    let scratch = tempfile::Builder::new()
        .prefix("channel-fuzz-")
        .tempdir()
        .expect("cannot create a scratch directory for fuzzing");
    let alone = scratch.path().join("alone");
    let both = scratch.path().join("both");
    std::fs::write(&alone, bytes).expect("cannot write a scratch ring");
    std::fs::write(&both, bytes).expect("cannot write a scratch ring");

    let info = inspect(&alone);
    if let Err(e) = &info {
        must(e, "inspect");
    }
    let opened = receive_alone(&alone);
    assert_eq!(
        info.is_ok(),
        opened,
        "inspect and Receiver::open disagree: {info:?}"
    );
    if opened {
        send_after_drain(&both)
    } else {
        Reached::NotARing
    }
}
