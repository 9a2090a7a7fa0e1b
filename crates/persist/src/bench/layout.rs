//! Misses per get from the table's layout: the distinct 64-byte lines one lookup touches,
//! found by walking the lookup's steps in the file itself (read with `pread`, never through
//! the reader's mapping). Every step is checked against the file, so a layout other than the
//! one this walk knows (format version 2: 8-byte slots of tag << 32 | record offset / 8,
//! linear probing from `hash & (slots - 1)`, records of a 16-byte head, key, value) is
//! reported as unknown, never counted wrong.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::Table;

/// Cache line size the count is made in.
pub const LINE: u64 = 64;

fn read_u64(file: &File, at: u64) -> Result<u64, String> {
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, at)
        .map_err(|e| format!("cannot read 8 bytes at {at}: {e}"))?;
    Ok(u64::from_le_bytes(b))
}

/// The slot array's offset and slot count from a version-2 header.
fn slot_array(file: &File) -> Result<(u64, u64), String> {
    let mut head = [0u8; 64];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| format!("cannot read the header: {e}"))?;
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if &head[..8] != b"DISKTBL\0" || version != 2 {
        return Err(format!(
            "the table's format is version {version}, whose lookup this count does not know \
             (it walks version 2's)"
        ));
    }
    let desc = u64::from_le_bytes(head[24..32].try_into().unwrap_or_default());
    Ok(((desc >> 8) * 8, 1u64 << (desc & 0xff).min(40)))
}

/// Distinct lines a lookup of `key` touches: the slots it probes, from the key's home slot to
/// the one naming its record, and the record's lines (head, key, value). The header's line,
/// read by every lookup and so always cached, is not counted. `table` supplies the value's
/// place (the slice `get` returns lies in its mapping), `file` the bytes.
pub fn lines_touched(table: &Table, file: &File, key: &[u8]) -> Result<u32, String> {
    let (slots_off, count) = slot_array(file)?;
    let value = table
        .get(key)
        .map_err(|e| e.to_string())?
        .ok_or("a key of the benchmark is missing")?;
    let value_off = (value.as_ptr() as usize)
        .checked_sub(table.mapping_addr())
        .ok_or("the value is not in the table's mapping")? as u64;
    let record_off = value_off
        .checked_sub(16 + key.len() as u64)
        .ok_or("the value lies before any record")?;
    let head = read_u64(file, record_off)?;
    if head != (key.len() as u64 | (value.len() as u64) << 32) {
        return Err("the record's head does not hold the key's and value's lengths".into());
    }
    let hash = crate::key_hash(key);
    let mut lines = std::collections::BTreeSet::new();
    let mut slot = hash & (count - 1);
    for _ in 0..count {
        let at = slots_off + slot * 8;
        lines.insert(at / LINE);
        let word = read_u64(file, at)?;
        if word == 0 {
            return Err("the probe met an empty slot before the key's record".into());
        }
        if word & 0xffff_ffff == record_off / 8 && word >> 32 == hash >> 32 {
            let end = (value_off + value.len() as u64).max(record_off + 1);
            lines.extend(record_off / LINE..=(end - 1) / LINE);
            return Ok(lines.len() as u32);
        }
        slot = (slot + 1) & (count - 1);
    }
    Err("no slot names the key's record".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TableMut;

    #[test]
    fn a_lookup_touches_its_slot_line_and_its_record_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tbl");
        let mut w = TableMut::create(&path, 4).unwrap();
        let long = vec![b'v'; 200];
        for i in 0..100u32 {
            let value: &[u8] = if i == 7 { &long } else { b"short" };
            w.put(format!("key-{i}").as_bytes(), value).unwrap();
        }
        w.close().unwrap();
        let table = Table::open(&path).unwrap();
        let file = File::open(&path).unwrap();
        for i in 0..100u32 {
            let n = lines_touched(&table, &file, format!("key-{i}").as_bytes()).unwrap();
            // A slot line and a record line at least; a 200-byte value spans 4 lines or more.
            let most = if i == 7 { 8 } else { 4 };
            assert!((2..=most).contains(&n), "key-{i}: {n} lines");
            if i == 7 {
                assert!(n >= 5, "the long record spans its lines: {n}");
            }
        }
        assert!(lines_touched(&table, &file, b"absent").is_err());
        // A file of another version is refused, never counted.
        let mut other = std::fs::read(&path).unwrap();
        other[8] = 9;
        let other_path = dir.path().join("other.tbl");
        std::fs::write(&other_path, other).unwrap();
        let e = slot_array(&File::open(&other_path).unwrap()).unwrap_err();
        assert!(e.contains("version 9"), "{e}");
    }
}
