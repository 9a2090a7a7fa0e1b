//! The contrast for the benchmark: the same lookups on the same file, but through `pread(2)`
//! into a buffer instead of through the mapping. Two system calls per lookup at least (the slot,
//! then the record), and a copy of the bytes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::format::{
    decode_head, invalid, key_hash, read_u64, record_check, Header, Invalid, Slot, HEADER_LEN,
    RECORD_HEAD,
};
use crate::table::Error;

/// A table read with `pread(2)` (for comparison only: [`crate::Table`] is the real reader).
pub struct PreadTable {
    file: File,
    hdr: Header,
    path: PathBuf,
    buf: Vec<u8>,
}

impl PreadTable {
    /// Opens and validates the header (read with one `pread`).
    pub fn open(path: impl AsRef<Path>) -> Result<PreadTable, Error> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|error| Error::Open {
            path: path.to_path_buf(),
            error,
        })?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut head = [0u8; HEADER_LEN as usize];
        let n = if len >= HEADER_LEN {
            file.read_exact_at(&mut head, 0).map(|_| head.len())
        } else {
            Ok(0)
        }
        .map_err(|error| Error::Io {
            path: path.to_path_buf(),
            op: "pread",
            error,
        })?;
        let hdr = Header::parse(&head[..n], len).map_err(|reason| Error::Invalid {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(PreadTable {
            file,
            hdr,
            path: path.to_path_buf(),
            buf: vec![0; 256],
        })
    }

    fn read_at(&mut self, len: usize, at: u64) -> Result<(), Error> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.file
            .read_exact_at(&mut self.buf[..len], at)
            .map_err(|error| Error::Io {
                path: self.path.clone(),
                op: "pread",
                error,
            })
    }

    fn bad(&self, reason: Invalid) -> Error {
        Error::Invalid {
            path: self.path.clone(),
            reason,
        }
    }

    /// Looks `key` up; the value is copied into an internal buffer and borrowed from it.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<&[u8]>, Error> {
        let h = key_hash(key);
        let tag = self.hdr.tag(h, key.len());
        let mut i = self.hdr.home(h);
        for _ in 0..self.hdr.slot_count() {
            self.read_at(8, self.hdr.slots_off + i * 8)?;
            let word = read_u64(&self.buf, 0).unwrap_or(0);
            match Slot::decode(word) {
                Slot::Empty => return Ok(None),
                Slot::Full { tag: t, offset } if t == tag => {
                    let end = self.hdr.arena_end;
                    if offset < HEADER_LEN || offset.saturating_add(RECORD_HEAD) > end {
                        return Err(self.bad(invalid!("a slot points outside the arena")));
                    }
                    // One pread for a small record (head, key and value), a second if larger.
                    let guess = (end - offset).min(128) as usize;
                    self.read_at(guess, offset)?;
                    let Some((head, kl, vl, check)) =
                        decode_head(self.hdr.version, &self.buf[..guess])
                    else {
                        return Err(self.bad(invalid!("a record runs past the arena end")));
                    };
                    let total = head + kl + vl;
                    if offset + total > end {
                        return Err(self.bad(invalid!("a record runs past the arena end")));
                    }
                    let (k0, kl, total) = (head as usize, kl as usize, total as usize);
                    if total > guess {
                        self.read_at(total, offset)?;
                    }
                    if &self.buf[k0..k0 + kl] == key {
                        let (k, v) = (&self.buf[k0..k0 + kl], &self.buf[k0 + kl..total]);
                        if record_check(k, v) != check {
                            return Err(self.bad(invalid!("a record fails its check")));
                        }
                        return Ok(Some(&self.buf[k0 + kl..total]));
                    }
                }
                _ => {}
            }
            i = self.hdr.next(i);
        }
        Ok(None)
    }
}
