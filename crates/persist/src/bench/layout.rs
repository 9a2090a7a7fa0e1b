//! Misses per get from the table's layout: the distinct 64-byte lines one lookup reads, as the
//! table's own lookup walks them ([`Table::lines_read`]), so the count follows the format
//! (version 3's slots and record heads, or a version 2 table's) without a second copy of it.

use crate::Table;

/// Cache line size the count is made in.
pub const LINE: u64 = 64;

/// Distinct lines a lookup of `key` touches: the slots it probes, from the key's home slot to
/// the one naming its record, and the record's lines (head, key, value). The header's line,
/// read by every lookup and so always cached, is not counted.
pub fn lines_touched(table: &Table, key: &[u8]) -> Result<u32, String> {
    match table.lines_read(key, LINE) {
        Ok(Some(n)) => Ok(n),
        Ok(None) => Err("a key of the benchmark is missing".into()),
        Err(e) => Err(e.to_string()),
    }
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
        for i in 0..100u32 {
            let n = lines_touched(&table, format!("key-{i}").as_bytes()).unwrap();
            // A slot line and a record line at least; a 200-byte value spans 4 lines or more.
            let most = if i == 7 { 8 } else { 4 };
            assert!((2..=most).contains(&n), "key-{i}: {n} lines");
            if i == 7 {
                assert!(n >= 5, "the long record spans its lines: {n}");
            }
        }
        assert!(lines_touched(&table, b"absent").is_err());
    }
}
