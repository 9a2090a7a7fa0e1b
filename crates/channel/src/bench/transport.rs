//! What the benchmark's two processes share: the message protocol, the cache-line mailbox, and
//! reading one fixed-size message from a byte stream.
//!
//! Every benchmark message starts with an 8-byte command (little-endian): echo it back, take it
//! without reply (one-way), or quit. Messages are at least 8 bytes. The peer announces it is
//! ready with one 8-byte `READY` message before anything is timed.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

/// Reply with the same bytes.
pub const CMD_ECHO: u64 = 1;
/// No reply.
pub const CMD_ONEWAY: u64 = 2;
/// Stop (ring peers reply with their futex statistics first).
pub const CMD_QUIT: u64 = 3;
/// The peer's first message.
pub const CMD_READY: u64 = 4;

/// The command of a message.
pub fn command(msg: &[u8]) -> u64 {
    msg.get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or(0)
}

/// Writes the command into the first 8 bytes.
pub fn set_command(msg: &mut [u8], cmd: u64) {
    msg[..8].copy_from_slice(&cmd.to_le_bytes());
}

/// Reads one `buf.len()`-byte message; `Ok(false)` on a clean end of stream before its first
/// byte.
pub fn read_message(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if crate::interrupt_flag().load(Ordering::Relaxed) {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Size of the cache-line mailbox file: one page.
pub const MAILBOX_LEN: u64 = 4096;
/// Mailbox value: empty (the consumer took the last word).
pub const MAILBOX_EMPTY: u64 = 0;
/// Mailbox value written once by the peer when it is ready.
pub const MAILBOX_READY: u64 = u64::MAX - 1;
/// Mailbox value: quit.
pub const MAILBOX_QUIT: u64 = u64::MAX;

/// One 64-bit word in a shared file mapping, on a cache line of its own: the floor. The
/// producer stores a non-zero word and waits for it to become zero again; the consumer waits
/// for a non-zero word and stores zero. Each message is one cache-line transfer each way.
pub struct Mailbox {
    map: MmapRaw,
    _file: File,
}

impl Mailbox {
    /// Creates the mailbox file (one page of zeros).
    pub fn create(path: &Path) -> io::Result<Mailbox> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        file.set_len(MAILBOX_LEN)?;
        Mailbox::map(file)
    }

    /// Opens an existing mailbox file.
    pub fn open(path: &Path) -> io::Result<Mailbox> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        if file.metadata()?.len() != MAILBOX_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a {MAILBOX_LEN}-byte mailbox", path.display()),
            ));
        }
        Mailbox::map(file)
    }

    fn map(file: File) -> io::Result<Mailbox> {
        let map = MmapOptions::new()
            .len(MAILBOX_LEN as usize)
            .map_raw(&file)?;
        Ok(Mailbox { map, _file: file })
    }

    /// The word.
    pub fn word(&self) -> &AtomicU64 {
        // SAFETY: offset 0 of a live, page-aligned mapping of at least 8 bytes owned by `self`;
        // both processes access this word only through atomics.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().cast()) }
    }
}

/// Spins until `done` holds; every 2^20 turns (milliseconds) runs `check`, which may give up.
pub fn spin_until(
    mut done: impl FnMut() -> bool,
    mut check: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut turns: u32 = 0;
    while !done() {
        turns = turns.wrapping_add(1);
        if turns % (1 << 20) == 0 {
            check()?;
        }
        std::hint::spin_loop();
    }
    Ok(())
}

/// Fails when Ctrl-C was pressed.
pub fn check_interrupt() -> anyhow::Result<()> {
    if crate::interrupt_flag().load(Ordering::Relaxed) {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_message_tells_a_clean_end_from_a_cut_message() {
        let mut buf = [0u8; 4];
        let mut r: &[u8] = b"abcdef";
        assert!(read_message(&mut r, &mut buf).unwrap());
        assert_eq!(&buf, b"abcd");
        let err = read_message(&mut r, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut empty: &[u8] = b"";
        assert!(!read_message(&mut empty, &mut buf).unwrap());
    }

    #[test]
    fn commands_round_trip() {
        let mut m = [0u8; 16];
        set_command(&mut m, CMD_ONEWAY);
        assert_eq!(command(&m), CMD_ONEWAY);
        assert_eq!(command(&m[..4]), 0);
    }
}
