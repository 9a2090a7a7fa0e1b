//! The tables a check gives the submission: `struct disktable { long count; int value[]; }` files
//! made fresh for every check, with random counts, sizes and values (hidden variation: a program
//! that knows one table cannot know these), and the lab's own reading of a table afterwards.

use std::path::Path;

use anyhow::Context as _;

use super::judge::{capacity, TableSnapshot, COURSE_COUNT, COURSE_FILE_BYTES};
use crate::disktable_steps::table::read_table;
use crate::disktable_steps::Rng;

/// The course's table: value\[i\] = i continues past count up to this index, then zeros.
const COURSE_LAST_INDEX: i64 = 7999;

/// A table to write: its count, its values (as many as the file holds), its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub label: String,
    pub count: i64,
    /// value\[0..capacity).
    pub values: Vec<i32>,
    pub file_bytes: u64,
}

impl Table {
    fn new(label: &str, count: i64, values: Vec<i32>) -> Table {
        Table {
            label: label.to_string(),
            count,
            file_bytes: 8 + 4 * values.len() as u64,
            values,
        }
    }

    /// The course's table.bin: count 1083, 114,340 bytes, value\[i\] = i up to 7999, then zeros.
    pub fn course() -> Table {
        let cap = capacity(COURSE_FILE_BYTES) as i64;
        let values = (0..cap)
            .map(|i| if i <= COURSE_LAST_INDEX { i as i32 } else { 0 })
            .collect();
        Table::new("the course's shape", COURSE_COUNT, values)
    }

    /// A writer.c-like output: count 1083, then 361 × {3, 6, 1}, the file exactly that long.
    pub fn writer_c() -> Table {
        let values = [3, 6, 1].repeat(361);
        Table::new("writer.c's output (values {3, 6, 1})", COURSE_COUNT, values)
    }

    /// The table in the file at `path` (its count and every whole int after it).
    pub fn read(path: &Path, label: &str) -> anyhow::Result<Table> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let Some((count, rest)) = bytes.split_first_chunk::<8>() else {
            anyhow::bail!("{} is shorter than its 8-byte count", path.display());
        };
        let values = rest
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Table::new(label, i64::from_le_bytes(*count), values))
    }

    /// value\[0..count).
    pub fn counted(&self) -> &[i32] {
        &self.values[..(self.count.max(0) as usize).min(self.values.len())]
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut bytes = Vec::with_capacity(self.file_bytes as usize);
        bytes.extend_from_slice(&self.count.to_le_bytes());
        for v in &self.values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
    }
}

fn random_values(rng: &mut Rng, n: u64, span: u64) -> Vec<i32> {
    (0..n)
        .map(|_| rng.below(2 * span) as i64 - span as i64)
        .map(|v| v as i32)
        .collect()
}

/// The step-2 reader's tables, fresh: count 0, count 1, the course's shape, count = capacity,
/// values that are not their indexes, a much larger file, a random count and size.
pub fn reader_tables(rng: &mut Rng) -> Vec<Table> {
    let mut tables = Vec::new();
    let room = rng.below(64);
    tables.push(Table::new("count 0", 0, random_values(rng, room, 1000)));
    let room = 1 + rng.below(100);
    tables.push(Table::new("count 1", 1, random_values(rng, room, 100_000)));
    tables.push(Table::course());
    let n = 500 + rng.below(4500);
    tables.push(Table::new(
        "count = capacity",
        n as i64,
        random_values(rng, n, 1 << 30),
    ));
    tables.push(Table::writer_c());
    // Past the course's 28,583 ints, in a file of a few MiB: a mapping of a hard-coded 114,340
    // bytes cannot reach its values.
    let count = 40_000 + rng.below(40_000);
    let cap = count + 100_000 + rng.below(600_000);
    let mut values: Vec<i32> = (0..count as i32).collect();
    values.extend(random_values(rng, cap - count, 1 << 20));
    tables.push(Table::new("a much larger file", count as i64, values));
    tables.push(random_table(rng));
    tables
}

/// A table of a random count (2 to 3,002, never 1083) and size, its values not their indexes: what a
/// hard-coded count or size gets wrong.
pub fn random_table(rng: &mut Rng) -> Table {
    let mut count = 2 + rng.below(3000);
    // Never the course's count: this table is where a hard-coded 1083 shows.
    if count == COURSE_COUNT as u64 {
        count += 1;
    }
    let cap = count + rng.below(20_000);
    Table::new(
        "a random count and size",
        count as i64,
        random_values(rng, cap, 1 << 30),
    )
}

/// A table whose last page is nearly full: its file ends a few ints before a page boundary, and
/// it has room for fewer than 300 more values, so the next run must grow it and a store past the
/// file's end soon crosses into a page the mapping does not cover.
pub fn nearly_full(rng: &mut Rng, page: u64) -> Table {
    let pages = 2 + rng.below(8);
    let file_bytes = pages * page - 4 * (1 + rng.below(16));
    let cap = capacity(file_bytes);
    let count = cap - rng.below(300);
    let values = (0..cap)
        .map(|i| if i < count { i as i32 } else { 0 })
        .collect();
    Table::new(
        "a table whose last page is nearly full",
        count as i64,
        values,
    )
}

/// The table at `path` as it is now (plain reads).
pub fn snapshot(path: &Path) -> anyhow::Result<TableSnapshot> {
    let (file_bytes, count, values) = read_table(path)?;
    Ok(TableSnapshot {
        file_bytes,
        count,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_have_their_shapes() {
        let course = Table::course();
        assert_eq!((course.count, course.file_bytes), (1083, 114_340));
        assert_eq!(course.values[7999], 7999);
        assert_eq!(course.values[8000], 0);
        let w = Table::writer_c();
        assert_eq!((w.count, w.file_bytes), (1083, 4340));
        assert_eq!(&w.values[..4], &[3, 6, 1, 3]);
        let mut rng = Rng::new(7);
        let tables = reader_tables(&mut rng);
        assert_eq!(tables.len(), 7);
        for t in &tables {
            assert!(t.count as usize <= t.values.len(), "{}", t.label);
            assert_eq!(t.file_bytes, 8 + 4 * t.values.len() as u64);
        }
        assert_eq!(tables[3].count as usize, tables[3].values.len());
        assert!(tables[5].values.len() > 28_583 && tables[5].count > 28_583);
        for seed in 1..50 {
            let t = nearly_full(&mut Rng::new(seed), 4096);
            let room = t.values.len() as i64 - t.count;
            assert!((0..300).contains(&room), "{room}");
            assert!(4096 - t.file_bytes % 4096 <= 64);
        }
    }

    #[test]
    fn a_written_table_reads_back() {
        let dir =
            std::env::temp_dir().join(format!("mmap-lab-check-tables-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("table.bin");
        let t = Table::writer_c();
        t.write(&path).unwrap();
        let s = snapshot(&path).unwrap();
        assert_eq!(s.count, Some(1083));
        assert_eq!(s.values, t.counted());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
