//! The course's table file as xtask observed it from outside ([`TableState`]: its length, its
//! count, and whether value\[i\] = i, read with plain `read(2)`, never through the programs
//! judged), and where the step's table came from ([`TableSource`]).

use persist::disktable::{self, CreateReport, Reason};
use serde::{Deserialize, Serialize};

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
