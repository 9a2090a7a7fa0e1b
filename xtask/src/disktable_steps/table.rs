//! The course's table file as xtask observes it from outside: its length, its count, and whether
//! value\[i\] = i — read with plain `read(2)` by this process, never through the programs it
//! judges.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use persist::disktable::{self, CreateReport, Reason};
use serde::{Deserialize, Serialize};

/// At most this many values are read back from a table (a 256 MiB prefix).
const MAX_VALUES: u64 = 64 << 20;

/// A table file at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    /// Its length (fstat).
    pub file_bytes: u64,
    /// The 8-byte count, if the file has 8 bytes.
    pub count: Option<i64>,
    /// How many values, from value\[0\] on, equal their index (stopping at the first that does
    /// not, at `count`, or at the end of the file).
    pub index_prefix: u64,
}

impl TableState {
    /// Reads `path` (the count and value\[0..count), bounded by the file's length).
    pub fn read(path: &Path) -> anyhow::Result<TableState> {
        let (file_bytes, count, values) = read_table(path)?;
        let index_prefix = values
            .iter()
            .enumerate()
            .take_while(|(i, v)| i64::from(**v) == *i as i64)
            .count() as u64;
        Ok(TableState {
            file_bytes,
            count,
            index_prefix,
        })
    }

    /// How many values the file holds.
    pub fn capacity(&self) -> u64 {
        disktable::capacity(self.file_bytes)
    }

    /// Whether the file is a valid table (persist's own rule: count bounded by the length).
    pub fn check(&self) -> Result<u64, Reason> {
        disktable::check(self.file_bytes, self.count.unwrap_or(0)).and_then(|needs| {
            match self.count {
                Some(_) => Ok(needs),
                None => Err(Reason::TooShort {
                    len: self.file_bytes,
                }),
            }
        })
    }

    /// Whether value\[i\] = i for every i < count, and the file holds them all.
    pub fn values_are_indices(&self) -> bool {
        self.check().is_ok() && self.count.is_some_and(|c| self.index_prefix == c as u64)
    }
}

/// value\[0..min(count, capacity)) of the table at `path` (empty if count < 0).
pub fn read_values(path: &Path) -> anyhow::Result<Vec<i32>> {
    Ok(read_table(path)?.2)
}

fn read_table(path: &Path) -> anyhow::Result<(u64, Option<i64>, Vec<i32>)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let file_bytes = file
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    if file_bytes < disktable::COUNT_BYTES {
        return Ok((file_bytes, None, Vec::new()));
    }
    let mut head = [0u8; 8];
    file.read_exact(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let count = i64::from_le_bytes(head);
    let n = u64::try_from(count)
        .unwrap_or(0)
        .min(disktable::capacity(file_bytes))
        .min(MAX_VALUES);
    let mut bytes = vec![0u8; (n * disktable::VALUE_BYTES) as usize];
    file.read_exact(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let values = bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((file_bytes, Some(count), values))
}

/// Where the step's table came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TableSource {
    /// `disktable create --course`: shaped like the course's table.bin.
    Course { created: CreateReport },
    /// `--table FILE`, copied.
    Given { path: String },
}

impl TableSource {
    pub fn describe(&self) -> String {
        match self {
            TableSource::Course { created } => format!(
                "a table shaped like the course's table.bin (disktable create --course: count \
                 {}, value[i] = i for i < {}, {} bytes)",
                created.count, created.filled, created.file_bytes
            ),
            TableSource::Given { path } => format!("{path} (--table), copied"),
        }
    }
}

/// Puts the step's table at `dest`: a copy of `given`, or a new course-shaped table made with
/// `disktable create --course --json`.
pub fn prepare(
    disktable_bin: &Path,
    given: Option<&Path>,
    dest: &Path,
) -> anyhow::Result<TableSource> {
    if let Some(given) = given {
        std::fs::copy(given, dest).with_context(|| {
            format!(
                "cannot copy --table {} to {}",
                given.display(),
                dest.display()
            )
        })?;
        return Ok(TableSource::Given {
            path: given.display().to_string(),
        });
    }
    let out = std::process::Command::new(disktable_bin)
        .arg("--json")
        .arg("create")
        .arg("--course")
        .arg(dest)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", disktable_bin.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "disktable create --course failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let created: CreateReport = serde_json::from_slice(&out.stdout)
        .context("disktable create --json printed a document xtask cannot read")?;
    Ok(TableSource::Course { created })
}

/// Checks the options that name files (`--table`, `--program`) before anything runs.
pub fn check_options(options: &crate::model::StepOptions) -> anyhow::Result<()> {
    if let Some(table) = &options.table {
        match std::fs::metadata(table) {
            Ok(m) if m.is_file() => {}
            Ok(_) => anyhow::bail!("--table {}: not a regular file", table.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                anyhow::bail!("--table {}: no such file", table.display())
            }
            Err(e) => anyhow::bail!("--table {}: {e}", table.display()),
        }
    }
    if let Some(program) = &options.program {
        super::program::resolve(program)?;
    }
    Ok(())
}

/// Copies the table `from` to `to` (a fresh file for one experiment).
pub fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_table(
        dir: &Path,
        count: i64,
        values: &[i32],
        file_bytes: usize,
    ) -> std::path::PathBuf {
        let mut bytes = count.to_le_bytes().to_vec();
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.resize(file_bytes, 0);
        let path = dir.join("t.bin");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_count_and_the_index_prefix() {
        let tmp = crate::report::tests::tempdir("table-state");
        let path = write_table(tmp.path(), 3, &[0, 1, 2, 3, 4], 100);
        let s = TableState::read(&path).unwrap();
        assert_eq!((s.file_bytes, s.count, s.index_prefix), (100, Some(3), 3));
        assert_eq!(s.capacity(), 23);
        assert!(s.values_are_indices());
        assert_eq!(read_values(&path).unwrap(), [0, 1, 2]);

        let path = write_table(tmp.path(), 4, &[0, 1, 7, 3], 24);
        let s = TableState::read(&path).unwrap();
        assert_eq!(s.index_prefix, 2);
        assert!(!s.values_are_indices());
    }

    #[test]
    fn options_naming_missing_files_are_one_line_errors() {
        let tmp = crate::report::tests::tempdir("table-options");
        let check = |table: Option<&Path>, program: Option<&Path>| {
            check_options(&crate::model::StepOptions {
                table: table.map(Path::to_path_buf),
                program: program.map(Path::to_path_buf),
                ..Default::default()
            })
            .map_err(|e| e.to_string())
        };
        let missing = tmp.path().join("missing.bin");
        let e = check(Some(&missing), None).unwrap_err();
        assert_eq!(e, format!("--table {}: no such file", missing.display()));
        let e = check(Some(tmp.path()), None).unwrap_err();
        assert!(e.ends_with(": not a regular file"), "{e}");
        let e = check(None, Some(&missing)).unwrap_err();
        assert_eq!(e, format!("--program {}: no such file", missing.display()));
        let table = write_table(tmp.path(), 0, &[], 8);
        assert!(check(Some(&table), Some(Path::new("true"))).is_ok());
    }

    #[test]
    fn damaged_tables_are_states_not_errors() {
        let tmp = crate::report::tests::tempdir("table-state");
        let short = write_table(tmp.path(), 0, &[], 8);
        std::fs::write(&short, [1u8, 2, 3]).unwrap();
        let s = TableState::read(&short).unwrap();
        assert_eq!(s.count, None);
        assert!(matches!(s.check(), Err(Reason::TooShort { len: 3 })));

        // count claims more than the file holds: read only what is there.
        let path = write_table(tmp.path(), 1000, &[0, 1], 16);
        let s = TableState::read(&path).unwrap();
        assert_eq!((s.count, s.index_prefix), (Some(1000), 2));
        assert!(matches!(s.check(), Err(Reason::CountTooLarge { .. })));
        assert!(!s.values_are_indices());

        let path = write_table(tmp.path(), -5, &[], 16);
        assert!(TableState::read(&path).unwrap().check().is_err());
        assert!(read_values(&path).unwrap().is_empty());
    }
}
