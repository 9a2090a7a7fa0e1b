//! The `--json` documents of the `persist` command, one type per command, defined once here so
//! that the binary prints them and `cargo xtask` reads them with the same types. Every field is
//! required when reading: a missing one is an error naming it, never a default (an `Option` is
//! present, as `null` or a value). The one exception is `compact_scratch` (added later to
//! `verify` and `stats`): documents recorded before it existed, such as the lab's recorded
//! evidence, read as "no scratch file", which is what that persist would have had to say.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{CompactStats, Residency, Scratch, Stats, VerifyReport, WriteStats};

/// For `Option` fields (`#[serde(deserialize_with = "required")]`): present, as `null` or a
/// value, or an error naming the field (serde's default would read a missing one as `None`).
pub fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// Page faults of the command (`getrusage(2)`, from its start to the document).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCount {
    /// Served without I/O (page already in the page cache, or a fresh zero page).
    pub minor: u64,
    /// Needed I/O to read the page in.
    pub major: u64,
}

impl FaultCount {
    /// The faults since `start`.
    pub fn since(start: crate::Faults) -> FaultCount {
        let now = crate::faults();
        FaultCount {
            minor: now.minor.saturating_sub(start.minor),
            major: now.major.saturating_sub(start.major),
        }
    }
}

/// How a writer mapped the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `MAP_SHARED`: the stores reach the file.
    Shared,
    /// `MAP_PRIVATE`: the stores stay in the process.
    Private,
}

/// What a write command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteOp {
    Put,
    Del,
    Load,
    Compact,
}

/// `persist --json create FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub file: PathBuf,
    pub created: bool,
    pub stats: Stats,
}

/// One key of `persist --json get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetResult {
    /// The key (bytes that are not UTF-8 replaced with U+FFFD).
    pub key: String,
    /// The value (bytes that are not UTF-8 replaced with U+FFFD).
    pub value: String,
    pub value_bytes: u64,
}

/// `persist --json get FILE KEY...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Got {
    pub file: PathBuf,
    pub lookups: u64,
    pub results: Vec<GetResult>,
    pub faults: FaultCount,
    /// Pages of the mapping.
    pub pages_total: u64,
    /// Pages of the file in the page cache after the lookups (`mincore(2)`).
    pub pages_resident_after: u64,
}

/// `persist --json put` and `persist --json del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub file: PathBuf,
    pub op: WriteOp,
    /// The key (bytes that are not UTF-8 replaced with U+FFFD).
    pub key: String,
    /// For a put: whether it replaced a value (`null` for a del).
    #[serde(deserialize_with = "required")]
    pub replaced: Option<bool>,
    pub mode: Mode,
    /// `msync(MS_SYNC)` before returning (never for a private mapping).
    pub synced: bool,
    /// For a put: the value the writing process read back through its own mapping (bytes
    /// that are not UTF-8 replaced with U+FFFD).
    #[serde(deserialize_with = "required")]
    pub readback: Option<String>,
    pub write_stats: WriteStats,
    pub stats: Stats,
}

/// One entry of `persist --json list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The key (bytes that are not UTF-8 replaced with U+FFFD).
    pub key: String,
    /// The value (bytes that are not UTF-8 replaced with U+FFFD).
    pub value: String,
}

/// `persist --json list FILE` (entries in file order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub file: PathBuf,
    pub count: u64,
    pub entries: Vec<Entry>,
}

/// `persist --json stats FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsDoc {
    pub file: PathBuf,
    pub stats: Stats,
    pub pages_total: u64,
    pub pages_resident: u64,
    pub faults: FaultCount,
    /// `FILE.persist-compact` beside the table, if there: left by an interrupted compaction
    /// (or, as `stats` takes no lock, made by one running now); the next writer removes it.
    /// Missing in documents older than the field: read as `None` (see the module docs).
    #[serde(default)]
    pub compact_scratch: Option<Scratch>,
}

/// `persist --json verify FILE` (an invalid table is an error, exit 1, no document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub file: PathBuf,
    pub valid: bool,
    pub report: VerifyReport,
    pub faults: FaultCount,
    /// `FILE.persist-compact` beside the table, if there: left by an interrupted compaction
    /// (`verify` looks while holding the lock, so none is running); the next writer removes it.
    /// Missing in documents older than the field: read as `None` (see the module docs).
    #[serde(default)]
    pub compact_scratch: Option<Scratch>,
}

/// `persist --json load FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loaded {
    pub file: PathBuf,
    pub op: WriteOp,
    pub puts: u64,
    pub mode: Mode,
    pub synced: bool,
    pub write_stats: WriteStats,
    pub stats: Stats,
}

/// `persist --json compact FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compacted {
    pub file: PathBuf,
    pub op: WriteOp,
    pub compact: CompactStats,
    pub write_stats: WriteStats,
}

/// `persist --json residency [--evict] FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidencyDoc {
    pub file: PathBuf,
    pub residency: Residency,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_field_is_an_error_naming_it_and_null_is_none() {
        let stats = r#"{"file_bytes": 4096, "entries": 1, "used_slots": 1, "slot_count": 64,
            "slots_offset": 64, "arena_end": 600, "live_record_bytes": 24,
            "garbage_bytes": 0, "dirty": false}"#;
        let ws = r#"{"file_growths": 0, "rehashes": 0, "compactions": 0}"#;
        let doc = |readback: &str| {
            format!(
                r#"{{"file": "t", "op": "del", "key": "k", "replaced": null, "mode": "shared",
                "synced": false, {readback} "write_stats": {ws}, "stats": {stats}}}"#
            )
        };
        let e = serde_json::from_str::<Written>(&doc("")).unwrap_err();
        assert!(e.to_string().contains("readback"), "{e}");
        let w: Written = serde_json::from_str(&doc(r#""readback": null,"#)).unwrap();
        assert_eq!((w.op, w.replaced, w.readback), (WriteOp::Del, None, None));
        let e = serde_json::from_str::<Stats>(&stats.replace(r#""dirty": false"#, r#""x": 1"#))
            .unwrap_err();
        assert!(e.to_string().contains("dirty"), "{e}");
    }

    #[test]
    fn a_verify_document_recorded_before_compact_scratch_reads_as_none() {
        let doc = |scratch: &str| {
            format!(
                r#"{{"file": "t", "valid": true, "report": {{"entries": 1, "deleted": 0,
                "slot_count": 64, "file_len": 4096, "arena_end": 600, "live_record_bytes": 24,
                "dirty": false, "counts_match": true}}, "faults": {{"minor": 1, "major": 0}}
                {scratch}}}"#
            )
        };
        let old: Verified = serde_json::from_str(&doc("")).unwrap();
        assert_eq!(old.compact_scratch, None);
        let new: Verified = serde_json::from_str(&doc(
            r#", "compact_scratch": {"path": "t.persist-compact", "bytes": 9}"#,
        ))
        .unwrap();
        assert_eq!(new.compact_scratch.map(|s| s.bytes), Some(9));
        // Everything else is still required.
        let e = serde_json::from_str::<Verified>(&doc("").replace(r#""valid": true,"#, ""))
            .unwrap_err();
        assert!(e.to_string().contains("valid"), "{e}");
    }
}
