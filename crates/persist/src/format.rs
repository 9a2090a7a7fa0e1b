//! The on-disk format: constants, the header, records, slots and the hash function.
//!
//! Everything here is plain safe code over byte slices: every offset read from the file is
//! checked against the bounds established by [`Header::parse`] before it is used, so a hostile
//! file can make a lookup fail with [`Invalid`] but never read outside the mapping.
//! The layout is documented byte by byte in the crate docs (`lib.rs`).

use std::fmt;

/// The first eight bytes of every table.
pub const MAGIC: [u8; 8] = *b"DISKTBL\0";
/// The format version this build writes (3: fingerprint and key length in the slot, an 8-byte
/// record head, any slot count). Version 2 tables are still read ([`VERSION_READ_ONLY`]).
pub const VERSION: u32 = 3;
/// The previous version, which this build opens read-only (`persist compact` upgrades it).
pub const VERSION_READ_ONLY: u32 = 2;
/// Length of the header; the arena starts right after it.
pub const HEADER_LEN: u64 = 64;
/// Length of a version 2 record's fixed part (key length, value length, check, reserved).
pub const RECORD_HEAD_V2: u64 = 16;
/// Length of a version 3 record's short head (check, key length u16, value length u16).
pub const RECORD_HEAD: u64 = 8;
/// Length of a version 3 record's long head (check, 0xffff, 0xffff, key length u32, value
/// length u32), for a key of 65,535 bytes or more or a value over 65,535 bytes.
pub const RECORD_HEAD_LONG: u64 = 16;
/// The short head's key length that marks a long head.
pub const LONG_HEAD: u16 = 0xffff;
/// Header flag: a writer has the table open (or was killed before closing it).
pub const FLAG_DIRTY: u32 = 1;
/// Header flag: this file was compacted into a new one renamed over its path; readers that
/// still have it open reopen the path, and no writer writes it again.
pub const FLAG_RETIRED: u32 = 2;
/// The smallest slot array (version 2: 2^3; version 3: 8 slots).
pub const MIN_SLOTS_LOG2: u32 = 3;
/// The largest version 2 slot array (2^32 slots of 8 bytes = 32 GiB).
pub const MAX_SLOTS_LOG2: u32 = 32;
/// The smallest version 3 slot array.
pub const MIN_SLOTS: u64 = 8;
/// The largest version 3 slot array (the count is 32 bits of the slot descriptor).
pub const MAX_SLOTS: u64 = u32::MAX as u64;
/// Record offsets are stored divided by 8 in 32 bits: the arena ends below 32 GiB.
pub const MAX_FILE_LEN: u64 = 8 * (u32::MAX as u64);
/// The low half of a slot that marks a deleted entry (offset 8 lies inside the header).
pub const TOMBSTONE: u32 = 1;

// Byte offsets of the header fields.
pub const H_MAGIC: usize = 0;
pub const H_VERSION: usize = 8;
pub const H_HEADER_LEN: usize = 12;
pub const H_FILE_LEN: usize = 16;
pub const H_SLOTS: usize = 24;
pub const H_ARENA_END: usize = 32;
pub const H_LIVE: usize = 40;
pub const H_USED: usize = 48;
pub const H_FLAGS: usize = 56;
pub const H_LIVE_WORDS: usize = 60;

const SEED_KEY: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED_CHECK: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// Why a file is not a valid table. Shown as `FILE is not a valid table: REASON`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! invalid {
    ($($arg:tt)*) => { Invalid(format!($($arg)*)) };
}
pub(crate) use invalid;

/// The 64-bit hash of the format (a multiply-rotate over 8-byte words, finished with
/// MurmurHash3's fmix64). It is part of the file format: changing it needs a new version.
/// Inline: a lookup's three hashes are short serial multiply chains, and only inlined can the
/// core run the key's two (its hash and its check's half) side by side.
#[inline(always)]
pub fn hash_with(seed: u64, bytes: &[u8]) -> u64 {
    const P1: u64 = 0x9fb2_1c65_1e98_df25;
    const P2: u64 = 0xff51_afd7_ed55_8ccd;
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(P1);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(P1).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        h = (h ^ tail_word(bytes, rest.len()))
            .wrapping_mul(P1)
            .rotate_left(29);
    }
    fmix64(h ^ (h >> 31).wrapping_mul(P2))
}

/// The last `n` (1..=7) bytes of `bytes` as a little-endian word, zero-extended: what copying
/// them into a zeroed `[u8; 8]` gives, without a call to `memcpy` on every lookup. When there
/// are 8 bytes or more, the word ending at the end is loaded and shifted down; else the bytes
/// are gathered by 4, 2 and 1.
#[inline(always)]
fn tail_word(bytes: &[u8], n: usize) -> u64 {
    debug_assert!((1..8).contains(&n) && n <= bytes.len());
    let len = bytes.len();
    if len >= 8 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[len - 8..]);
        return u64::from_le_bytes(w) >> (8 * (8 - n));
    }
    let mut w = 0u64;
    let mut at = 0;
    if n >= 4 {
        w = u64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
        at = 4;
    }
    if n - at >= 2 {
        w |= u64::from(u16::from_le_bytes([bytes[at], bytes[at + 1]])) << (8 * at);
        at += 2;
    }
    if n > at {
        w |= u64::from(bytes[at]) << (8 * at);
    }
    w
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of a key: its low bits choose the home slot, its high 32 bits are the slot's tag.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    hash_with(SEED_KEY, key)
}

/// The record check: 32 bits over key and value, so a flipped byte in a record is detected.
pub fn record_check(key: &[u8], value: &[u8]) -> u32 {
    record_check_seeded(check_seed(key), value)
}

/// The key's half of [`record_check`]. A lookup computes it from the key it was given, before
/// the record is fetched (the record it accepts holds that very key), so that only the value's
/// half is left to do once the record arrives.
#[inline]
pub fn check_seed(key: &[u8]) -> u64 {
    hash_with(SEED_CHECK, key)
}

/// [`record_check`] given the key's half, [`check_seed`].
#[inline]
pub fn record_check_seeded(seed: u64, value: &[u8]) -> u32 {
    let b = hash_with(SEED_CHECK ^ seed, value);
    (b ^ (b >> 32)) as u32
}

/// `a == b`, for the short keys a lookup compares most: up to 16 bytes as two (overlapping)
/// words each, without a call to `memcmp`; longer ones as `==` does.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if !(4..=16).contains(&n) {
        return a == b;
    }
    let word = |s: &[u8], at: usize| -> u64 {
        if n >= 8 {
            let mut w = [0u8; 8];
            w.copy_from_slice(&s[at..at + 8]);
            u64::from_le_bytes(w)
        } else {
            let mut w = [0u8; 4];
            w.copy_from_slice(&s[at..at + 4]);
            u64::from(u32::from_le_bytes(w))
        }
    };
    let last = if n >= 8 { n - 8 } else { n - 4 };
    (word(a, 0) ^ word(b, 0)) | (word(a, last) ^ word(b, last)) == 0
}

/// Rounds up to a multiple of 8.
pub fn align8(n: u64) -> Option<u64> {
    n.checked_add(7).map(|v| v & !7)
}

/// The length of a version 3 record's head for these lengths: 8 bytes (short), or 16 (long)
/// for a key of 65,535 bytes or more or a value over 65,535 bytes.
pub fn record_head(key_len: usize, val_len: usize) -> u64 {
    if key_len < usize::from(LONG_HEAD) && val_len <= usize::from(u16::MAX) {
        RECORD_HEAD
    } else {
        RECORD_HEAD_LONG
    }
}

/// The bytes a version 3 record of this key and value takes in the arena (a multiple of 8).
pub fn record_len(key_len: usize, val_len: usize) -> Option<u64> {
    record_head(key_len, val_len)
        .checked_add(key_len as u64)?
        .checked_add(val_len as u64)
        .and_then(align8)
}

/// Writes a whole version 3 record (head, key, value, zero padding) into `out`, which is
/// exactly [`record_len`] bytes.
pub fn encode_record(key: &[u8], value: &[u8], out: &mut [u8]) {
    let check = record_check(key, value);
    out[0..4].copy_from_slice(&check.to_le_bytes());
    let k0 = if record_head(key.len(), value.len()) == RECORD_HEAD {
        out[4..6].copy_from_slice(&(key.len() as u16).to_le_bytes());
        out[6..8].copy_from_slice(&(value.len() as u16).to_le_bytes());
        RECORD_HEAD as usize
    } else {
        out[4..6].copy_from_slice(&LONG_HEAD.to_le_bytes());
        out[6..8].copy_from_slice(&LONG_HEAD.to_le_bytes());
        out[8..12].copy_from_slice(&(key.len() as u32).to_le_bytes());
        out[12..16].copy_from_slice(&(value.len() as u32).to_le_bytes());
        RECORD_HEAD_LONG as usize
    };
    out[k0..k0 + key.len()].copy_from_slice(key);
    out[k0 + key.len()..k0 + key.len() + value.len()].copy_from_slice(value);
    out[k0 + key.len() + value.len()..].fill(0);
}

/// Decodes a record head of `version` from the bytes at its start: (head length, key length,
/// value length, check), or `None` if `b` is shorter than the head it starts.
pub fn decode_head(version: u32, b: &[u8]) -> Option<(u64, u64, u64, u32)> {
    let w = |at| read_u32(b, at).map(u64::from);
    let u16_at = |at: usize| {
        Some(u64::from(u16::from_le_bytes([
            *b.get(at)?,
            *b.get(at + 1)?,
        ])))
    };
    if version == VERSION_READ_ONLY {
        Some((RECORD_HEAD_V2, w(0)?, w(4)?, w(8)? as u32))
    } else if u16_at(4)? == u64::from(LONG_HEAD) {
        Some((RECORD_HEAD_LONG, w(8)?, w(12)?, w(0)? as u32))
    } else {
        Some((RECORD_HEAD, u16_at(4)?, u16_at(6)?, w(0)? as u32))
    }
}

/// Encodes the slot word for a record at `offset` (a multiple of 8) with this tag
/// ([`Header::tag`]).
pub fn slot_word(tag: u32, offset: u64) -> u64 {
    (u64::from(tag) << 32) | (offset / 8)
}

/// Encodes a version 3 slot descriptor: the array's offset / 8 in the high half and its slot
/// count in the low half, in one word so that a single 8-byte store switches to a new array.
pub fn slots_desc(offset: u64, count: u64) -> u64 {
    ((offset / 8) << 32) | (count & 0xffff_ffff)
}

/// Decodes a slot descriptor of `version` into (offset, count), or why it is out of range.
fn decode_desc(version: u32, desc: u64) -> Result<(u64, u64), Invalid> {
    if version == VERSION_READ_ONLY {
        let log2 = (desc & 0xff) as u32;
        if !(MIN_SLOTS_LOG2..=MAX_SLOTS_LOG2).contains(&log2) {
            return Err(invalid!(
                "slot array of 2^{log2} slots is out of range \
                 (2^{MIN_SLOTS_LOG2}..=2^{MAX_SLOTS_LOG2})"
            ));
        }
        Ok(((desc >> 8).saturating_mul(8), 1u64 << log2))
    } else {
        let count = desc & 0xffff_ffff;
        if count < MIN_SLOTS {
            return Err(invalid!(
                "slot array of {count} slots is out of range ({MIN_SLOTS}..={MAX_SLOTS})"
            ));
        }
        Ok(((desc >> 32) * 8, count))
    }
}

/// The home slot of a version 3 key with hash `h` in an array of `count` slots: the high bits
/// of `h` scaled to the count (Lemire's range reduction: a multiply, no division, any count).
#[inline]
pub fn home_v3(h: u64, count: u64) -> u64 {
    ((u128::from(h) * u128::from(count)) >> 64) as u64
}

/// The tag of a version 3 slot: a 24-bit fingerprint (the low bits of the key's hash, which
/// the home slot hardly depends on) over the key's length capped at 255. A probe for an absent
/// key, or a fingerprint collision with a key of another length, is decided by the slot alone.
#[inline]
pub fn tag_v3(h: u64, key_len: usize) -> u32 {
    ((h as u32) << 8) | key_len.min(255) as u32
}

/// Reads a little-endian u32 at `at`; `None` if out of bounds.
pub fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads a little-endian u64 at `at`; `None` if out of bounds.
pub fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(s);
    Some(u64::from_le_bytes(w))
}

/// A validated header: every field is within the bounds the rest of the code relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The length of the table the last writer mapped and recorded; the file may be longer
    /// (free space past it), never shorter.
    pub file_len: u64,
    /// The format version: [`VERSION`], or [`VERSION_READ_ONLY`] (no writer writes it).
    pub version: u32,
    /// The slot descriptor word as loaded (a reader compares it again before trusting a slot:
    /// see [`View::stale`]).
    pub desc: u64,
    pub slots_off: u64,
    /// The number of slots (version 2: a power of two).
    pub slots: u64,
    pub arena_end: u64,
    pub live: u64,
    pub used: u64,
    /// Bytes held by live records (a hint like the counts: it decides when to compact).
    pub live_bytes: u64,
    pub flags: u32,
}

impl Header {
    /// Number of slots.
    pub fn slot_count(&self) -> u64 {
        self.slots
    }

    /// The home slot of a key with hash `h`.
    #[inline]
    pub fn home(&self, h: u64) -> u64 {
        if self.version == VERSION_READ_ONLY {
            h & (self.slots - 1)
        } else {
            home_v3(h, self.slots)
        }
    }

    /// The tag a slot holding a key with hash `h` and length `key_len` carries.
    #[inline]
    pub fn tag(&self, h: u64, key_len: usize) -> u32 {
        if self.version == VERSION_READ_ONLY {
            (h >> 32) as u32
        } else {
            tag_v3(h, key_len)
        }
    }

    /// The slot after `i` in probe order (wrapping round).
    #[inline]
    pub fn next(&self, i: u64) -> u64 {
        if i + 1 >= self.slots {
            0
        } else {
            i + 1
        }
    }

    /// Slot `i`'s distance from slot `start` in probe order.
    pub fn distance(&self, start: u64, i: u64) -> u64 {
        (i + self.slots - start) % self.slots
    }

    /// Whether a writer has the table open or was killed before closing it.
    pub fn dirty(&self) -> bool {
        self.flags & FLAG_DIRTY != 0
    }

    /// Whether the file was compacted into a new one (see [`FLAG_RETIRED`]).
    pub fn retired(&self) -> bool {
        self.flags & FLAG_RETIRED != 0
    }

    /// Arena bytes that hold nothing live: overwritten and deleted records, old slot arrays
    /// (what compaction gives back). Computed from hints, so only ever a heuristic.
    pub fn garbage(&self) -> u64 {
        (self.arena_end - HEADER_LEN)
            .saturating_sub(self.slot_count() * 8)
            .saturating_sub(self.live_bytes)
    }

    /// Whether the counts can be true of this slot array (`live <= used < slots`). Counts read
    /// from a file are untrusted even when DIRTY is clear: a writer recounts unless this holds.
    pub fn counts_plausible(&self) -> bool {
        self.live <= self.used && self.used < self.slot_count()
    }

    /// Byte offset one past the slot array.
    pub fn slots_end(&self) -> u64 {
        self.slots_off + self.slot_count() * 8
    }

    /// Parses and validates the header. `actual_len` is the file's length now.
    pub fn parse(b: &[u8], actual_len: u64) -> Result<Header, Invalid> {
        if actual_len == 0 {
            return Err(invalid!("the file is empty"));
        }
        if actual_len < HEADER_LEN || b.len() < HEADER_LEN as usize {
            return Err(invalid!(
                "the file is {actual_len} bytes, shorter than the {HEADER_LEN}-byte header"
            ));
        }
        if b[H_MAGIC..H_MAGIC + 8] != MAGIC {
            return Err(invalid!(
                "bad magic {:02x?} (expected \"DISKTBL\\0\"): not a persist table",
                &b[H_MAGIC..H_MAGIC + 8]
            ));
        }
        let field32 = |at| read_u32(b, at).unwrap_or(0);
        let field64 = |at| read_u64(b, at).unwrap_or(0);
        let version = field32(H_VERSION);
        if version != VERSION && version != VERSION_READ_ONLY {
            return Err(invalid!(
                "unsupported version {version} (this build reads versions \
                 {VERSION_READ_ONLY} and {VERSION})"
            ));
        }
        let header_len = field32(H_HEADER_LEN);
        if u64::from(header_len) != HEADER_LEN {
            return Err(invalid!(
                "header length field is {header_len}, expected {HEADER_LEN}"
            ));
        }
        let flags = field32(H_FLAGS);
        if flags & !(FLAG_DIRTY | FLAG_RETIRED) != 0 {
            return Err(invalid!("unknown header flags {flags:#x}"));
        }
        let file_len = field64(H_FILE_LEN);
        if file_len < HEADER_LEN || file_len % 8 != 0 || file_len > MAX_FILE_LEN {
            return Err(invalid!(
                "header records an impossible length of {file_len} bytes"
            ));
        }
        if actual_len < file_len {
            return Err(invalid!(
                "the file is {actual_len} bytes but its header records {file_len}: it was truncated"
            ));
        }
        // A longer file is fine: growth sizes the file before it records the new length, so a
        // writer killed in between, or a growth whose mremap failed, leaves free space past
        // `file_len` that nothing references (the next writer records it). Nothing ever
        // shrinks a table: a reader may have it mapped.
        let arena_end = field64(H_ARENA_END);
        if arena_end < HEADER_LEN || arena_end > file_len || arena_end % 8 != 0 {
            return Err(invalid!(
                "arena end {arena_end} lies outside the table (64..={file_len})"
            ));
        }
        let desc = field64(H_SLOTS);
        let (slots_off, slots) = decode_desc(version, desc)?;
        let slots_end = slots.checked_mul(8).and_then(|n| n.checked_add(slots_off));
        match slots_end {
            Some(end) if slots_off >= HEADER_LEN && end <= arena_end => {}
            _ => {
                return Err(invalid!(
                    "slot array at offset {slots_off} with {slots} slots does not fit \
                     in the arena (which ends at {arena_end})"
                ))
            }
        }
        // The counts are hints, never trusted: a writer checks them before relying on them and
        // recounts when they are impossible; `verify` compares them with the slots.
        let live = field64(H_LIVE);
        let used = field64(H_USED);
        let live_bytes = u64::from(field32(H_LIVE_WORDS)) * 8;
        Ok(Header {
            file_len,
            version,
            desc,
            slots_off,
            slots,
            arena_end,
            live,
            used,
            live_bytes,
            flags,
        })
    }

    /// The header a lookup needs, from the words a writer changes (slot descriptor, arena end,
    /// flags), loaded in that order with acquire loads, for a reader whose mapping's fixed
    /// fields were validated when it was mapped. `None` when anything needs a closer look
    /// (retired, past the mapping, out of range): the caller then takes the full path.
    #[inline]
    pub fn load_live<'a, M: Mem<'a>>(mem: M, file_len: u64) -> Option<Header> {
        let version = mem.word(H_VERSION as u64) as u32;
        let desc = mem.word(H_SLOTS as u64);
        let arena_end = mem.word(H_ARENA_END as u64);
        let flags = mem.word(H_FLAGS as u64);
        if version != VERSION && version != VERSION_READ_ONLY {
            return None;
        }
        let (slots_off, slots) = decode_desc(version, desc).ok()?;
        let slots_end = slots_off.checked_add(slots.checked_mul(8)?)?;
        let ok = slots_off >= HEADER_LEN
            && slots_end <= arena_end
            && arena_end <= file_len
            && arena_end <= mem.len()
            && arena_end % 8 == 0
            && flags as u32 & !FLAG_DIRTY == 0;
        ok.then_some(Header {
            file_len,
            version,
            desc,
            slots_off,
            slots,
            arena_end,
            live: 0,
            used: 0,
            live_bytes: 0,
            flags: flags as u32,
        })
    }

    /// Loads the header words from `mem` and parses them. On a shared mapping a writer may be
    /// changing them meanwhile: the words are loaded in the reverse of the order a writer
    /// publishes them (slot descriptor, arena end, file length), each an acquire load, so a
    /// descriptor seen implies an arena end and a length at least as new.
    pub fn load<'a, M: Mem<'a>>(mem: M, actual_len: u64) -> Result<Header, Invalid> {
        let mut b = [0u8; HEADER_LEN as usize];
        if mem.len() < HEADER_LEN {
            return Header::parse(&b[..mem.len() as usize], actual_len);
        }
        for at in [
            H_SLOTS,
            H_ARENA_END,
            H_FILE_LEN,
            0,
            8,
            H_LIVE,
            H_USED,
            H_FLAGS,
        ] {
            b[at..at + 8].copy_from_slice(&mem.word(at as u64).to_le_bytes());
        }
        Header::parse(&b, actual_len)
    }

    /// Encodes a fresh version 3 header into `b` (at least 64 bytes), magic included.
    pub fn encode(&self, b: &mut [u8]) {
        b[H_MAGIC..H_MAGIC + 8].copy_from_slice(&MAGIC);
        b[H_VERSION..H_VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
        b[H_HEADER_LEN..H_HEADER_LEN + 4].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b[H_FILE_LEN..H_FILE_LEN + 8].copy_from_slice(&self.file_len.to_le_bytes());
        let desc = slots_desc(self.slots_off, self.slots);
        b[H_SLOTS..H_SLOTS + 8].copy_from_slice(&desc.to_le_bytes());
        b[H_ARENA_END..H_ARENA_END + 8].copy_from_slice(&self.arena_end.to_le_bytes());
        b[H_LIVE..H_LIVE + 8].copy_from_slice(&self.live.to_le_bytes());
        b[H_USED..H_USED + 8].copy_from_slice(&self.used.to_le_bytes());
        b[H_FLAGS..H_FLAGS + 4].copy_from_slice(&self.flags.to_le_bytes());
        let words = u32::try_from(self.live_bytes / 8).unwrap_or(u32::MAX);
        b[H_LIVE_WORDS..H_LIVE_WORDS + 4].copy_from_slice(&words.to_le_bytes());
    }
}

/// A record read from the arena, bounds-checked.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub check: u32,
    /// Bytes the record takes in the arena.
    pub len: u64,
    /// Bytes of it a lookup reads: head, key and value, without the padding.
    pub used: u64,
}

impl<'a> Record<'a> {
    /// Whether the stored check matches the key and value.
    pub fn check_ok(&self) -> bool {
        self.check == record_check(self.key, self.value)
    }
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Empty,
    Deleted,
    /// A record at this byte offset whose key hash has this high half.
    Full {
        tag: u32,
        offset: u64,
    },
}

impl Slot {
    pub fn decode(word: u64) -> Slot {
        let low = word as u32;
        match low {
            0 if word == 0 => Slot::Empty,
            TOMBSTONE => Slot::Deleted,
            _ => Slot::Full {
                tag: (word >> 32) as u32,
                offset: u64::from(low) * 8,
            },
        }
    }
}

/// Table bytes: a plain slice (the writer's own mapping, which nobody else writes, or a copy)
/// or a shared mapping that another process may be writing, read through atomics.
///
/// Words (header fields and slots, which a writer changes in place) are read with [`word`]:
/// an acquire load on a shared mapping. Byte ranges ([`bytes`]) are only ever taken of
/// published records, which nothing writes again, so a slice over them is sound even while a
/// writer works elsewhere in the file.
///
/// [`word`]: Mem::word
/// [`bytes`]: Mem::bytes
pub trait Mem<'a>: Copy {
    /// Length in bytes.
    fn len(&self) -> u64;
    /// The little-endian word at `at` (8-aligned), or 0 if it is out of bounds.
    fn word(&self, at: u64) -> u64;
    /// `len` bytes at `at`, or `None` if out of bounds.
    fn bytes(&self, at: u64, len: u64) -> Option<&'a [u8]>;
    /// Asks the CPU to start fetching the cache line holding byte `at` (a hint: nothing is
    /// read, any `at` is allowed). Bytes that are not a mapping have nothing to fetch.
    #[inline]
    fn prefetch(&self, _at: u64) {}
}

impl<'a> Mem<'a> for &'a [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn word(&self, at: u64) -> u64 {
        usize::try_from(at)
            .ok()
            .and_then(|at| read_u64(self, at))
            .unwrap_or(0)
    }

    fn bytes(&self, at: u64, len: u64) -> Option<&'a [u8]> {
        let at = usize::try_from(at).ok()?;
        let end = at.checked_add(usize::try_from(len).ok()?)?;
        self.get(at..end)
    }
}

/// A read-only view of table bytes with a validated header. Every lookup is bounds-checked.
#[derive(Clone, Copy)]
pub struct View<M> {
    pub mem: M,
    pub hdr: Header,
}

/// Where a probe for a key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The key is in this slot, its record at this offset.
    Found { index: u64, offset: u64 },
    /// The key is absent; this is where it would be inserted (the first deleted slot on the
    /// probe path, else the empty slot that ended it), and whether that slot is empty.
    Absent { index: u64, empty: bool },
    /// The key is absent and the probe went all the way round without meeting an empty slot
    /// (every slot live or deleted): the array is over-full, which only a file whose counts
    /// lied to its writer can be. A writer rehashes before inserting.
    Saturated,
}

/// The error of a lookup whose slot array was replaced under it ([`View::stale`]): the
/// reader retries on the new array, so this never reaches a caller unless the array keeps
/// being replaced.
pub fn stale_view() -> Invalid {
    invalid!("{STALE}")
}

/// A record whose check does not match its bytes.
fn corrupted(offset: u64) -> Invalid {
    invalid!("the record at offset {offset} fails its check (corrupted bytes)")
}

/// The reason [`stale_view`] gives.
pub const STALE: &str = "the slot array was replaced during the lookup, again and again";

/// Converts the byte ranges of the file that hold data (see `sys::data_ranges`) into ranges
/// of slot indices of the array at `slots_off` with `count` slots: slots outside them lie in
/// holes and read as empty, so scans skip them.
pub fn slot_ranges(data: &[(u64, u64)], slots_off: u64, count: u64) -> Vec<(u64, u64)> {
    let end = slots_off + count * 8;
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(a, b) in data {
        let (a, b) = (a.max(slots_off), b.min(end));
        if a >= b {
            continue;
        }
        let (first, last) = ((a - slots_off) / 8, (b - slots_off).div_ceil(8));
        match out.last_mut() {
            Some(prev) if prev.1 >= first => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

impl<'a, M: Mem<'a>> View<M> {
    /// The raw word of slot `i` (`i` < slot count, guaranteed by the validated header).
    pub fn slot_word(&self, i: u64) -> u64 {
        self.mem.word(self.hdr.slots_off + i * 8)
    }

    /// The address of slot `i`'s word in `base` (for prefetching; never dereferenced here).
    pub fn slot_at(&self, i: u64) -> u64 {
        self.hdr.slots_off + i * 8
    }

    /// The record at `offset`, bounds-checked against the arena (and never overlapping the
    /// current slot array, which a writer may be changing).
    pub fn record(&self, offset: u64) -> Result<Record<'a>, Invalid> {
        // A record reached through a slot loaded after the header may lie past the arena end
        // the header said: a writer published both meanwhile. The arena end is then loaded
        // again (after the slot, so it covers the record), bounded by the bytes we have.
        let mut end = self.hdr.arena_end;
        let mut fresh_end = |want: u64| {
            if want > end {
                let now = self.mem.word(H_ARENA_END as u64);
                if now > end && now <= self.mem.len() && now % 8 == 0 {
                    end = now;
                }
            }
            end
        };
        if offset < HEADER_LEN
            || offset % 8 != 0
            || offset.saturating_add(RECORD_HEAD) > fresh_end(offset.saturating_add(RECORD_HEAD))
        {
            return Err(invalid!(
                "a slot points at offset {offset}, outside the arena (64..{})",
                self.hdr.arena_end
            ));
        }
        let Some(head) = self.mem.bytes(offset, RECORD_HEAD) else {
            return Err(invalid!("the record at offset {offset} is out of bounds"));
        };
        let u16_at = |at: usize| u64::from(u16::from_le_bytes([head[at], head[at + 1]]));
        let (head_len, kl, vl, check) =
            if self.hdr.version == VERSION_READ_ONLY || u16_at(4) == u64::from(LONG_HEAD) {
                // Version 2's head, or version 3's long head: 16 bytes.
                let long_end = offset.saturating_add(RECORD_HEAD_LONG);
                let long = match self.mem.bytes(offset, RECORD_HEAD_LONG) {
                    Some(b) if long_end <= fresh_end(long_end) => b,
                    _ => {
                        return Err(invalid!(
                            "the record at offset {offset} runs past the arena end {}",
                            self.hdr.arena_end
                        ))
                    }
                };
                let w = |at| u64::from(read_u32(long, at).unwrap_or(0));
                if self.hdr.version == VERSION_READ_ONLY {
                    (RECORD_HEAD_V2, w(0), w(4), w(8) as u32)
                } else {
                    (RECORD_HEAD_LONG, w(8), w(12), w(0) as u32)
                }
            } else {
                let check = read_u32(head, 0).unwrap_or(0);
                (RECORD_HEAD, u16_at(4), u16_at(6), check)
            };
        let total = head_len + kl + vl; // at most 16 + 2^33: no overflow
        let end = fresh_end(offset + total);
        if offset + total > end {
            return Err(invalid!(
                "the record at offset {offset} ({kl}-byte key, {vl}-byte value) runs past the \
                 arena end {end}"
            ));
        }
        if offset < self.hdr.slots_end() && offset + total > self.hdr.slots_off {
            return Err(invalid!(
                "the record at offset {offset} overlaps the slot array"
            ));
        }
        let k0 = offset + head_len;
        let (Some(key), Some(value)) = (self.mem.bytes(k0, kl), self.mem.bytes(k0 + kl, vl)) else {
            return Err(invalid!("the record at offset {offset} is out of bounds"));
        };
        Ok(Record {
            key,
            value,
            check,
            len: align8(total).unwrap_or(total),
            used: total,
        })
    }

    /// Whether the slot array this view probes was replaced since its descriptor was loaded.
    ///
    /// A writer reuses the space of a replaced array for records (version 3), so a slot word
    /// read from it is trusted only if the descriptor is still the same when checked *after*
    /// the word was loaded (an acquire load each; the writer stores the new descriptor before
    /// any store into the old array, each a release store). A stale view's answer is thrown
    /// away and the lookup runs again on the new array.
    #[inline]
    pub fn stale(&self) -> bool {
        self.mem.word(H_SLOTS as u64) != self.hdr.desc
    }

    /// For a batch: starts fetching the record at `offset`, its first line and, when it starts
    /// in the second half of a line (where most records run on into the next), its second:
    /// the value's length is in the head, so the value's loads would wait for the first line.
    /// (Measured: a batch of 64 at depth 16 took 0.92-0.94x the time it took without the
    /// second line's prefetch, in interleaved runs on the benchmark's table.)
    #[inline]
    pub fn prefetch_record(&self, offset: u64) {
        self.mem.prefetch(offset);
        if offset % 64 >= 32 {
            self.mem.prefetch(offset + 64);
        }
    }

    /// For prefetching: the record offset of the first slot from `h`'s home (within a few
    /// slots, before an empty one) whose tag matches, if it lies in the bytes. Never trusted:
    /// the lookup itself checks everything again.
    #[inline]
    pub fn candidate(&self, h: u64, key_len: usize) -> Option<u64> {
        let tag = self.hdr.tag(h, key_len);
        let mut i = self.hdr.home(h);
        for _ in 0..8 {
            let word = self.slot_word(i);
            if word == 0 {
                return None;
            }
            let offset = (word & 0xffff_ffff) * 8;
            if (word >> 32) as u32 == tag && offset >= HEADER_LEN && offset < self.mem.len() {
                return Some(offset);
            }
            i = self.hdr.next(i);
        }
        None
    }

    /// Probes for `key` (with hash `h`). The loop is bounded by the slot count, so even a
    /// corrupt table with no empty slot cannot make it spin forever.
    pub fn probe(&self, key: &[u8], h: u64) -> Result<Probe, Invalid> {
        let tag = self.hdr.tag(h, key.len());
        let mut i = self.hdr.home(h);
        let mut first_deleted = None;
        for _ in 0..self.hdr.slot_count() {
            match Slot::decode(self.slot_word(i)) {
                Slot::Empty => {
                    if self.stale() {
                        return Err(stale_view());
                    }
                    return Ok(match first_deleted {
                        Some(d) => Probe::Absent {
                            index: d,
                            empty: false,
                        },
                        None => Probe::Absent {
                            index: i,
                            empty: true,
                        },
                    });
                }
                Slot::Deleted => {
                    first_deleted.get_or_insert(i);
                }
                Slot::Full { tag: t, offset } if t == tag => {
                    if self.stale() {
                        return Err(stale_view());
                    }
                    let rec = self.record(offset)?;
                    if rec.key == key {
                        return Ok(Probe::Found { index: i, offset });
                    }
                }
                Slot::Full { .. } => {}
            }
            i = self.hdr.next(i);
        }
        if self.stale() {
            return Err(stale_view());
        }
        Ok(Probe::Saturated)
    }

    /// The distinct `line`-byte lines of the file that [`View::get_hashed`] reads for `key`
    /// (the header's line, read by every lookup, not counted): the slots it probes from the
    /// home slot to the one naming the key's record, and that record's bytes (head, key,
    /// value). `None` when the key is absent. The benchmark's misses per get, from the layout.
    pub fn lines_read(&self, key: &[u8], h: u64, line: u64) -> Result<Option<u32>, Invalid> {
        let line = line.max(1);
        let tag = self.hdr.tag(h, key.len());
        let mut lines = std::collections::BTreeSet::new();
        let mut i = self.hdr.home(h);
        for _ in 0..self.hdr.slot_count() {
            let word = self.slot_word(i);
            lines.insert((self.hdr.slots_off + i * 8) / line);
            if word == 0 {
                break;
            }
            if (word >> 32) as u32 == tag && word as u32 != TOMBSTONE {
                let offset = (word & 0xffff_ffff) * 8;
                let rec = self.record(offset)?;
                let end = offset + rec.used.max(1);
                lines.extend(offset / line..=(end - 1) / line);
                if rec.key == key {
                    return Ok(Some(lines.len() as u32));
                }
            }
            i = self.hdr.next(i);
        }
        Ok(None)
    }

    /// Looks `key` up; the value is borrowed from the bytes (zero copy) and its check verified.
    ///
    /// (Prefetching the line after the home slot's, or a record's second line, changed nothing
    /// here for a single lookup — 1.00x in an interleaved A/B on the benchmark's table: the
    /// core's own adjacent-line prefetch already fetches them — so only a batch prefetches.)
    pub fn get(&self, key: &[u8]) -> Result<Option<&'a [u8]>, Invalid> {
        self.get_hashed(key, key_hash(key))
    }

    /// [`View::get`] with the key's hash already computed: the home slot's line, where the
    /// tag (fingerprint and key length) settles every slot but the key's, then the record.
    #[inline]
    pub fn get_hashed(&self, key: &[u8], h: u64) -> Result<Option<&'a [u8]>, Invalid> {
        // Independent of the slot and the record: the core computes it while they are fetched.
        let seed = check_seed(key);
        let tag = self.hdr.tag(h, key.len());
        let mut i = self.hdr.home(h);
        for _ in 0..self.hdr.slot_count() {
            let word = self.slot_word(i);
            if word == 0 {
                break;
            }
            if (word >> 32) as u32 == tag && word as u32 != TOMBSTONE {
                if self.stale() {
                    return Err(stale_view());
                }
                if let Some(value) = self.record_value((word & 0xffff_ffff) * 8, key, seed)? {
                    return Ok(Some(value));
                }
            }
            i = self.hdr.next(i);
        }
        if self.stale() {
            return Err(stale_view());
        }
        Ok(None)
    }

    /// The value of the record at `offset` if its key is `key` (its check verified; `seed` is
    /// [`check_seed`] of `key`), `None` if
    /// it holds another key. The common case (a version 3 short head wholly inside the arena
    /// end this view loaded) reads the head as one word and checks it here; anything else
    /// (a long head, version 2, a record past that end, one overlapping the slot array) goes
    /// through [`View::record`], which checks everything and names the damage.
    #[inline]
    fn record_value(
        &self,
        offset: u64,
        key: &[u8],
        seed: u64,
    ) -> Result<Option<&'a [u8]>, Invalid> {
        let short = self.hdr.version == VERSION
            && offset >= HEADER_LEN
            && offset % 8 == 0
            && offset + RECORD_HEAD <= self.hdr.arena_end;
        let head = if short { self.mem.word(offset) } else { 0 };
        let (kl, vl) = ((head >> 32) & 0xffff, head >> 48);
        let k0 = offset + RECORD_HEAD;
        let end = k0 + kl + vl;
        if !short
            || kl == u64::from(LONG_HEAD)
            || end > self.hdr.arena_end
            || (offset < self.hdr.slots_end() && end > self.hdr.slots_off)
        {
            let rec = self.record(offset)?;
            return if rec.key != key {
                Ok(None)
            } else if rec.check_ok() {
                Ok(Some(rec.value))
            } else {
                Err(corrupted(offset))
            };
        }
        if kl != key.len() as u64 {
            return Ok(None);
        }
        let (Some(k), Some(value)) = (self.mem.bytes(k0, kl), self.mem.bytes(k0 + kl, vl)) else {
            return Err(invalid!("the record at offset {offset} is out of bounds"));
        };
        if !same_bytes(k, key) {
            return Ok(None);
        }
        if head as u32 != record_check_seeded(seed, value) {
            return Err(corrupted(offset));
        }
        Ok(Some(value))
    }

    /// The slots in `ranges` read in one pass in index order (the slot array front to back),
    /// with the live ones sorted by the offset of their record: the order the records lie in
    /// the file. Memory: 8 bytes per live slot.
    pub fn scan_slots(&self, ranges: &[(u64, u64)]) -> SlotScan {
        let count = self.hdr.slot_count();
        let mut scan = SlotScan {
            live: Vec::new(),
            deleted: 0,
            first_empty: None,
        };
        // Slots outside `ranges` lie in holes: empty.
        let mut next = 0;
        for &(a, b) in ranges {
            let (a, b) = (a.min(count), b.min(count));
            if a > next && scan.first_empty.is_none() {
                scan.first_empty = Some(next);
            }
            next = next.max(b);
            for i in a..b {
                match Slot::decode(self.slot_word(i)) {
                    Slot::Empty => {
                        scan.first_empty.get_or_insert(i);
                    }
                    Slot::Deleted => scan.deleted += 1,
                    Slot::Full { offset, .. } => scan.live.push(LiveSlot::new(offset, i)),
                }
            }
        }
        if next < count {
            scan.first_empty.get_or_insert(next);
        }
        scan.live.sort_unstable();
        scan
    }

    /// Every live record in file order (ascending offset, so a scan reads the file front to
    /// back once, whatever the hashes), visiting only the slots in `ranges` (index ranges, see
    /// [`slot_ranges`]; the others are known to be empty). Each record is bounds-checked and
    /// its check verified.
    pub fn iter(&self, ranges: &[(u64, u64)]) -> impl Iterator<Item = Result<Record<'a>, Invalid>>
    where
        M: 'a,
    {
        let view = *self;
        let live = self.scan_slots(ranges).live;
        // Sorted by offset, two slots naming one record are neighbours.
        let mut prev = None;
        live.into_iter().map(move |slot| {
            LiveSlot::distinct(prev.replace(slot), slot)?;
            view.checked_record(slot.offset())
        })
    }

    /// The record at `offset` ([`View::record`]) whose check passes.
    pub fn checked_record(&self, offset: u64) -> Result<Record<'a>, Invalid> {
        let r = self.record(offset)?;
        if r.check_ok() {
            Ok(r)
        } else {
            Err(corrupted(offset))
        }
    }

    /// Counts the live and used (live + deleted) slots among `ranges`.
    pub fn count_slots(&self, ranges: &[(u64, u64)]) -> (u64, u64) {
        let count = self.hdr.slot_count();
        let (mut live, mut used) = (0u64, 0u64);
        for &(a, b) in ranges {
            for i in a.min(count)..b.min(count) {
                match Slot::decode(self.slot_word(i)) {
                    Slot::Empty => {}
                    Slot::Deleted => used += 1,
                    Slot::Full { .. } => {
                        live += 1;
                        used += 1;
                    }
                }
            }
        }
        (live, used)
    }

    /// Step 2 of [`View::verify`]: the record slot `i` points at, in bounds, outside the slot
    /// array, passing its check.
    fn verify_record(&self, i: u64, offset: u64) -> Result<Record<'a>, Invalid> {
        let rec = self.record(offset)?;
        if offset < self.hdr.slots_end() && offset + rec.len > self.hdr.slots_off {
            return Err(invalid!(
                "slot {i} points at offset {offset}, inside the slot array"
            ));
        }
        if !rec.check_ok() {
            return Err(corrupted(offset));
        }
        Ok(rec)
    }

    /// Step 3 of [`View::verify`]: the slots in probe order from the empty slot `start` (so
    /// runs of full slots are whole), with `keyed` ([`LiveSlot::keyed`], sorted) giving each
    /// full slot's key's home and tag.
    fn verify_runs(
        &self,
        ranges: &[(u64, u64)],
        start: u64,
        keyed: &[LiveSlot],
    ) -> Result<(), Invalid> {
        let count = self.hdr.slot_count();
        let mut keyed = keyed.iter().peekable();
        // The run of full or deleted slots being walked: where it began (rotated position),
        // and the (home, tag) of its keys, with their slots.
        let mut run_start = 0u64;
        let mut run: std::collections::HashMap<(u64, u32), u64> = Default::default();
        let mut prev = None;
        // The slots in [start, count) then [0, start), as (a, b) index ranges.
        let parts = [(start, count), (0, start)];
        let spans = parts.iter().flat_map(|&(lo, hi)| {
            ranges
                .iter()
                .map(move |&(a, b)| (a.max(lo), b.min(hi)))
                .filter(|&(a, b)| a < b)
        });
        for (a, b) in spans {
            for i in a..b {
                let pos = self.hdr.distance(start, i);
                if prev.map(|p: u64| p + 1) != Some(pos) {
                    // A gap (a hole of the file: empty slots) ends the run.
                    run.clear();
                    run_start = pos;
                }
                prev = Some(pos);
                let (tag, offset) = match Slot::decode(self.slot_word(i)) {
                    Slot::Empty => {
                        run.clear();
                        run_start = pos + 1;
                        continue;
                    }
                    Slot::Deleted => continue,
                    Slot::Full { tag, offset } => (tag, offset),
                };
                let Some(k) = keyed.next().filter(|k| k.position() == pos) else {
                    return Err(invalid!("slot {i} changed during the check"));
                };
                let home = k.home(tag);
                let home_pos = if home < count {
                    self.hdr.distance(start, home)
                } else {
                    0
                };
                if home >= count || home_pos < run_start || home_pos > pos {
                    return Err(self.unreachable(i, offset, tag));
                }
                if let Some(&j) = run.get(&(home, tag)) {
                    // Same home and tag: the same key, or a 52-bit or longer hash collision.
                    let rec = self.record(offset)?;
                    let other = match Slot::decode(self.slot_word(j)) {
                        Slot::Full { offset, .. } => self.record(offset)?,
                        _ => return Err(invalid!("slot {j} changed during the check")),
                    };
                    if other.key == rec.key {
                        return Err(invalid!(
                            "slots {j} and {i} hold the same key \"{}\"",
                            shown(rec.key)
                        ));
                    }
                }
                run.insert((home, tag), i);
            }
        }
        if keyed.next().is_some() {
            return Err(invalid!("the slot array changed during the check"));
        }
        Ok(())
    }

    /// Why the key in slot `i` cannot be found: a tag that is not its key's, or a home slot
    /// outside the run of full slots that holds it. (Only read when the check failed.)
    fn unreachable(&self, i: u64, offset: u64, tag: u32) -> Invalid {
        let rec = match self.record(offset) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let want = self.hdr.tag(key_hash(rec.key), rec.key.len());
        if want != tag {
            return invalid!("slot {i} has tag {tag:#x} but its key hashes to {want:#x}");
        }
        invalid!(
            "slot {i} holds key \"{}\" where a lookup cannot reach it",
            shown(rec.key)
        )
    }

    /// Checks everything: every slot's record is in bounds, outside the slot array, passes its
    /// check, has the slot's tag, is reachable by a lookup of its key and is the only slot for
    /// that key; the counts match unless a writer was killed (dirty).
    ///
    /// Only the slots in `ranges` are visited (the others lie in holes of the file and read as
    /// empty), so the work is bounded by what the file holds, not by what its header claims.
    ///
    /// The file is read in order, never at random, so that a table larger than the memory the
    /// process may use is checked in one pass over it: (1) the slot array front to back,
    /// collecting the live slots (8 bytes each), sorted by record offset; (2) the records in
    /// file order, each checked and its key hashed, the 8 bytes becoming the slot's position
    /// and its key's home slot and tag; (3) the slot array front to back again (from an empty
    /// slot, so that no run of full slots is cut in two), checking that each key's home lies in
    /// the run of full slots that holds it (so a lookup's probe reaches it: it stops only at an
    /// empty slot), that the slot carries the key's tag, and that no earlier slot of the run
    /// holds the same key.
    pub fn verify(&self, ranges: &[(u64, u64)]) -> Result<VerifyReport, Invalid> {
        let count = self.hdr.slot_count();
        let SlotScan {
            live: mut slots,
            deleted,
            first_empty,
        } = self.scan_slots(ranges);
        let live = slots.len() as u64;
        let start = first_empty.unwrap_or(0);
        let mut live_bytes = 0u64;
        for slot in &mut slots {
            let rec = self.verify_record(slot.index(), slot.offset())?;
            live_bytes += rec.len;
            *slot = LiveSlot::keyed(start, &self.hdr, slot.index(), rec.key);
        }
        if first_empty.is_some() {
            slots.sort_unstable();
            self.verify_runs(ranges, start, &slots)?;
        }
        let counts_match = live == self.hdr.live && live + deleted == self.hdr.used;
        if !counts_match && !self.hdr.dirty() {
            return Err(invalid!(
                "the header counts {} live and {} used slots, but the slots hold {live} live \
                 and {} used",
                self.hdr.live,
                self.hdr.used,
                live + deleted
            ));
        }
        if live + deleted >= count || first_empty.is_none() {
            return Err(invalid!("the slot array has no empty slot"));
        }
        Ok(VerifyReport {
            entries: live,
            deleted,
            slot_count: count,
            file_len: self.hdr.file_len,
            arena_end: self.hdr.arena_end,
            live_record_bytes: live_bytes,
            dirty: self.hdr.dirty(),
            counts_match,
        })
    }
}

/// A key in a message on stderr: as on stdout, and besides every other control character and
/// every byte that is not part of valid UTF-8 written `\xNN`, so that no key can corrupt the
/// terminal and two keys never read the same (`caf\xe9` is the Latin-1 `café`).
/// `get`, `put` and `del` name keys this way, and so does `verify` when a slot's key is wrong.
pub fn shown(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    let hex = |out: &mut String, bytes: &[u8]| {
        for b in bytes {
            out.push_str(&format!("\\x{b:02x}"));
        }
    };
    for chunk in key.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => hex(&mut out, c.encode_utf8(&mut [0; 4]).as_bytes()),
                c => out.push(c),
            }
        }
        hex(&mut out, chunk.invalid());
    }
    out
}

/// A live slot a scan found: its record's offset / 8 in the high half and the slot's index in
/// the low half of one word, so that sorting the words sorts by offset (file order). Both fit:
/// a slot stores `offset / 8` in 32 bits, and an array has at most 2^32 slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveSlot(u64);

impl LiveSlot {
    /// For a scan in offset order: an error if `slot` names the same record as the live slot
    /// before it. Such a table lost the entry one of the two held (verify rejects it); a scan
    /// must not pass the record twice, or a compaction would quietly write a table without the
    /// lost entry.
    pub fn distinct(prev: Option<LiveSlot>, slot: LiveSlot) -> Result<(), Invalid> {
        match prev {
            Some(p) if p.offset() == slot.offset() => Err(invalid!(
                "slots {} and {} both name the record at offset {}",
                p.index(),
                slot.index(),
                slot.offset()
            )),
            _ => Ok(()),
        }
    }

    fn new(offset: u64, index: u64) -> LiveSlot {
        LiveSlot(((offset / 8) << 32) | (index & 0xffff_ffff))
    }

    /// The record's byte offset.
    pub fn offset(self) -> u64 {
        (self.0 >> 32) * 8
    }

    /// The slot's index.
    pub fn index(self) -> u64 {
        self.0 & 0xffff_ffff
    }

    /// For [`View::verify`]'s last pass: the slot's position counted from `start` in the
    /// high half (so that sorting gives probe order), and in the low half the key's home slot
    /// mixed with its tag: `home ^ mix(tag)`. [`LiveSlot::home`] recovers the home given the
    /// slot's stored tag; a slot whose tag is not its key's yields a pseudo-random home that
    /// fails the check except with probability (run length) / 2^32, the strength of the
    /// record check itself. This keeps the pass at 8 bytes per entry.
    fn keyed(start: u64, hdr: &Header, index: u64, key: &[u8]) -> LiveSlot {
        let hash = key_hash(key);
        let position = hdr.distance(start, index);
        let home = hdr.home(hash);
        let tag = hdr.tag(hash, key.len());
        LiveSlot((position << 32) | (home ^ u64::from(mix32(tag))) & 0xffff_ffff)
    }

    fn position(self) -> u64 {
        self.0 >> 32
    }

    /// The key's home slot, if the slot's stored `tag` is its key's.
    fn home(self, tag: u32) -> u64 {
        (self.0 & 0xffff_ffff) ^ u64::from(mix32(tag))
    }
}

/// MurmurHash3's 32-bit finaliser: a bijection that spreads every bit.
fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// What one pass over a slot array found ([`View::scan_slots`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotScan {
    /// The live slots, in file order of their records.
    pub live: Vec<LiveSlot>,
    /// Deleted slots (tombstones).
    pub deleted: u64,
    /// The lowest index of an empty slot (`None`: the array is full, which only a damaged
    /// file can be).
    pub first_empty: Option<u64>,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub deleted: u64,
    pub slot_count: u64,
    pub file_len: u64,
    pub arena_end: u64,
    /// Bytes of the arena held by live records (the rest is headers, old slot arrays and
    /// overwritten records).
    pub live_record_bytes: u64,
    /// A writer was killed before closing the table; the next writer recounts.
    pub dirty: bool,
    /// The header's counts match the slots (always true for a table closed cleanly).
    pub counts_match: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_spreads() {
        // The hash is part of the file format: these values must never change.
        assert_eq!(key_hash(b""), key_hash(b""));
        assert_ne!(key_hash(b"a"), key_hash(b"b"));
        assert_ne!(key_hash(b"abcdefgh"), key_hash(b"abcdefgh\0"));
        let mut lows = std::collections::HashSet::new();
        for i in 0..1000u32 {
            lows.insert(key_hash(format!("key{i}").as_bytes()) & 1023);
        }
        assert!(
            lows.len() > 550,
            "1000 keys hit only {} of 1024 slots",
            lows.len()
        );
    }

    #[test]
    fn tail_word_is_the_zero_padded_copy() {
        let bytes: Vec<u8> = (0..24u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(5))
            .collect();
        for len in 1..=bytes.len() {
            let b = &bytes[..len];
            let n = len % 8;
            if n == 0 {
                continue;
            }
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(&b[len - n..]);
            assert_eq!(tail_word(b, n), u64::from_le_bytes(w), "length {len}");
        }
        // Values fixed by the file format (computed before the tail was read word-wise).
        assert_eq!(key_hash(b"key-0000042"), 0x71de_094c_8119_ba59);
        assert_eq!(
            record_check(b"key-0000042", b"value-42-abcdef01x"),
            0xab93_7669
        );
    }

    #[test]
    fn slot_words_round_trip() {
        assert_eq!(
            Slot::decode(slot_word(0xdead_beef, 4096)),
            Slot::Full {
                tag: 0xdead_beef,
                offset: 4096
            }
        );
        assert_eq!(Slot::decode(0), Slot::Empty);
        assert_eq!(Slot::decode(u64::from(TOMBSTONE)), Slot::Deleted);
    }

    #[test]
    fn header_rejects_short_and_foreign_files() {
        assert_eq!(
            Header::parse(&[], 0).unwrap_err().0,
            "the file is empty".to_string()
        );
        assert!(Header::parse(&[0u8; 10], 10)
            .unwrap_err()
            .0
            .contains("shorter than the 64-byte header"));
        assert!(Header::parse(&[0u8; 64], 64)
            .unwrap_err()
            .0
            .contains("bad magic"));
    }

    #[test]
    fn record_len_is_aligned() {
        assert_eq!(record_len(0, 0), Some(8));
        assert_eq!(record_len(1, 0), Some(16));
        assert_eq!(record_len(8, 8), Some(24));
        // The bench's records: an 11-byte key and a 21-byte value in 40 bytes (v2: 48).
        assert_eq!(record_len(11, 21), Some(40));
        assert_eq!(record_len(65_534, 65_535), Some(8 + 131_072));
        assert_eq!(record_len(65_535, 0), Some(16 + 65_536));
        assert_eq!(record_len(0, 65_536), Some(16 + 65_536));
    }

    #[test]
    fn records_round_trip_short_and_long() {
        for (kl, vl) in [
            (0, 0),
            (11, 21),
            (300, 5),
            (65_534, 65_535),
            (65_535, 1),
            (3, 70_000),
        ] {
            let key: Vec<u8> = (0..kl).map(|i| i as u8).collect();
            let value: Vec<u8> = (0..vl).map(|i| (i * 7) as u8).collect();
            let len = record_len(kl, vl).unwrap();
            let mut file = vec![0u8; HEADER_LEN as usize + 8 * 8];
            let mut hdr = Header {
                file_len: 0,
                version: VERSION,
                desc: 0,
                slots_off: HEADER_LEN,
                slots: 8,
                arena_end: 0,
                live: 0,
                used: 0,
                live_bytes: 0,
                flags: 0,
            };
            let at = file.len();
            file.resize(at + len as usize, 0xaa);
            encode_record(&key, &value, &mut file[at..]);
            hdr.arena_end = file.len() as u64;
            hdr.file_len = file.len() as u64;
            let view = View {
                mem: &file[..],
                hdr,
            };
            let rec = view.record(at as u64).unwrap();
            assert_eq!((rec.key, rec.value, rec.len), (&key[..], &value[..], len));
            assert!(rec.check_ok());
        }
    }

    #[test]
    fn same_bytes_agrees_with_eq_for_every_length_and_every_differing_byte() {
        let a: Vec<u8> = (1..=24).collect();
        for n in 0..=24 {
            assert!(same_bytes(&a[..n], &a[..n]), "equal, length {n}");
            for at in 0..n {
                let mut b = a[..n].to_vec();
                b[at] ^= 0x80;
                assert!(!same_bytes(&a[..n], &b), "byte {at} of {n} differs");
            }
            if n > 0 {
                assert!(
                    !same_bytes(&a[..n], &a[..n - 1]),
                    "lengths {n} and {}",
                    n - 1
                );
            }
        }
    }

    #[test]
    fn home_covers_any_count_and_tag_holds_the_length() {
        for count in [8u64, 13, 1000, 1 << 20, u32::MAX as u64] {
            assert_eq!(home_v3(0, count), 0);
            assert_eq!(home_v3(u64::MAX, count), count - 1);
        }
        assert_eq!(tag_v3(0x1234_5678_9abc_def0, 11) & 0xff, 11);
        assert_eq!(tag_v3(0x1234_5678_9abc_def0, 300) & 0xff, 255);
        assert_eq!(tag_v3(0x1234_5678_9abc_def0, 11) >> 8, 0xbc_def0);
    }
}
