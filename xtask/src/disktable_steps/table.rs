//! The course's table file as xtask observes it from outside: its length, its count, and whether
//! value\[i\] = i — read with plain `read(2)` by this process, never through the programs it
//! judges. Where the step's table comes from (`--table FILE` or `disktable create --course`).

use lab_analysis::disktable::table::{TableSource, TableState};
use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use persist::disktable::{self, CreateReport};

/// At most this many values are read back from a table (a 256 MiB prefix).
const MAX_VALUES: u64 = 64 << 20;

/// Reads `path` (the count and value\[0..count), bounded by the file's length).
pub fn read_state(path: &Path) -> anyhow::Result<TableState> {
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

/// value\[0..min(count, capacity)) of the table at `path` (empty if count < 0).
pub fn read_values(path: &Path) -> anyhow::Result<Vec<i32>> {
    Ok(read_table(path)?.2)
}

/// (file length, count, value\[0..min(count, capacity))) of the table at `path`.
pub fn read_table(path: &Path) -> anyhow::Result<(u64, Option<i64>, Vec<i32>)> {
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
        let s = read_state(&path).unwrap();
        assert_eq!((s.file_bytes, s.count, s.index_prefix), (100, Some(3), 3));
        assert_eq!(s.capacity(), 23);
        assert!(s.values_are_indices());
        assert_eq!(read_values(&path).unwrap(), [0, 1, 2]);

        let path = write_table(tmp.path(), 4, &[0, 1, 7, 3], 24);
        let s = read_state(&path).unwrap();
        assert_eq!(s.index_prefix, 2);
        assert!(!s.values_are_indices());
    }

    #[test]
    fn options_naming_missing_files_are_one_line_errors() {
        let tmp = crate::report::tests::tempdir("table-options");
        let check = |table: Option<&Path>, program: Option<&Path>| {
            super::super::check_options(&crate::model::StepOptions {
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
        let e = check(None, Some(&table)).unwrap_err();
        assert!(e.contains("is not executable"), "{e}");
        // The command line makes every --program absolute (CallerPath): an executable file.
        let exe = std::env::current_exe().unwrap();
        assert!(check(Some(&table), Some(&exe)).is_ok());
    }

    #[test]
    fn damaged_tables_are_states_not_errors() {
        let tmp = crate::report::tests::tempdir("table-state");
        let short = write_table(tmp.path(), 0, &[], 8);
        std::fs::write(&short, [1u8, 2, 3]).unwrap();
        let s = read_state(&short).unwrap();
        assert_eq!(s.count, None);
        assert!(matches!(
            s.check(),
            Err(persist::disktable::Reason::TooShort { len: 3 })
        ));

        // count claims more than the file holds: read only what is there.
        let path = write_table(tmp.path(), 1000, &[0, 1], 16);
        let s = read_state(&path).unwrap();
        assert_eq!((s.count, s.index_prefix), (Some(1000), 2));
        assert!(matches!(
            s.check(),
            Err(persist::disktable::Reason::CountTooLarge { .. })
        ));
        assert!(!s.values_are_indices());

        let path = write_table(tmp.path(), -5, &[], 16);
        assert!(read_state(&path).unwrap().check().is_err());
        assert!(read_values(&path).unwrap().is_empty());
    }
}
