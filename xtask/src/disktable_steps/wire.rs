//! `persist --json` documents, as xtask reads them.
//!
//! TRANSITIONAL: the `persist` binary builds these documents with `serde_json::json!` and its
//! library exports only some of their parts (`Stats`, `Residency`, `VerifyReport`, serialise
//! only); these mirror the fields steps 2 and 3 read until the library exports the documents as
//! types xtask can deserialise, and this module becomes `pub use persist::…` lines. A missing
//! field is an error that names it, never a default.

use serde::{Deserialize, Deserializer, Serialize};

/// For `Option` fields: present (`null` or a value) or an error naming the field.
fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// The header's numbers (`persist::Stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub file_bytes: u64,
    pub entries: u64,
    pub slot_count: u64,
}

/// `persist::WriteStats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteStats {
    pub file_growths: u64,
    pub rehashes: u64,
}

/// `persist --json load`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    pub puts: u64,
    pub stats: Stats,
    pub write_stats: WriteStats,
}

/// `persist --json put` (and `del`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    /// `shared` or `private`.
    pub mode: String,
    pub synced: bool,
    /// What the writing process read back through its own mapping after the put.
    #[serde(deserialize_with = "required")]
    pub readback: Option<String>,
    pub stats: Stats,
}

/// `persist::Residency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Residency {
    pub pages_total: u64,
    pub pages_resident_before: u64,
    /// `fadvise` if an eviction was asked for and accepted, else `none`.
    pub eviction: String,
    pub pages_resident_after: u64,
    pub note: String,
}

/// `persist --json residency [--evict]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidencyDoc {
    pub residency: Residency,
}

/// One result of `persist --json get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetResult {
    pub key: String,
    pub value: String,
}

/// Page faults (getrusage) around a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    pub minor: u64,
    pub major: u64,
}

/// `persist --json get FILE KEY...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get {
    pub lookups: u64,
    pub results: Vec<GetResult>,
    pub faults: Faults,
    pub pages_total: u64,
    pub pages_resident_after: u64,
}

/// `persist::VerifyReport`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub file_len: u64,
}

/// `persist --json verify FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verify {
    pub valid: bool,
    pub report: VerifyReport,
}

/// Parses a persist `--json` document; the error names the command and the field.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, stdout: &str) -> anyhow::Result<T> {
    serde_json::from_str(stdout).map_err(|e| {
        anyhow::anyhow!("persist --json {what} printed a document xtask cannot read: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_field_is_an_error_naming_it() {
        let e = parse::<Put>(
            "put",
            r#"{"mode": "shared", "synced": true,
                      "stats": {"file_bytes": 4096, "entries": 1, "slot_count": 64}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("readback"), "{e}");
        let ok: Put = parse(
            "put",
            r#"{"mode": "private", "synced": false, "readback": null,
                "stats": {"file_bytes": 4096, "entries": 1, "slot_count": 64, "dirty": false}}"#,
        )
        .unwrap();
        assert_eq!(ok.readback, None);
    }
}
