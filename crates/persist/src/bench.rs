//! The `--json` document of the persist benchmark (`bench/persist-bench`), defined once here
//! so that the benchmark writes it and `cargo xtask bench persist` reads it with the same types
//! (xtask depends on this crate, not on the benchmark, which builds LMDB).
//!
//! `{"keys": N, "machine": {...}, "rows": [{"method": M, "op": OP, "per_s": X, ...}], ...}`:
//! one row per method and operation (and, for reads during a load, per number of reader
//! processes), all measured in the same run on the same keys in the same random order. The
//! goals of issue 14 are computed from the rows ([`goals`]) and printed met or not met; they
//! are never asserted.

use serde::{Deserialize, Serialize};

/// How the keys were looked up or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// `persist::Table::get` through the mapping (or `TableMut::put` for writes).
    PersistMmap,
    /// `persist::Table::get_many`: batches whose cache misses overlap.
    PersistMmapBatched,
    /// The same file and probing through `pread(2)` (`persist::pread::PreadTable`).
    PersistPread,
    /// LMDB through the heed crate.
    Lmdb,
    /// An in-memory `std::collections::HashMap<Vec<u8>, Vec<u8>>`.
    Hashmap,
}

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Random lookups, everything in memory (page cache warm).
    Get,
    /// Random lookups right after the file was evicted from the page cache
    /// (`posix_fadvise(DONTNEED)`, checked with `mincore`).
    GetCold,
    /// Bulk load of every key into an empty store (LMDB: one transaction).
    Load,
    /// Single overwrites of existing keys, each visible to other processes when it returns
    /// (LMDB: a commit per put, without sync).
    Put,
    /// Random lookups by reader processes while a writer loads as many new keys again.
    GetDuringLoad,
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub method: Method,
    pub op: Op,
    /// Operations per second (for several reader processes: their sum).
    pub per_s: f64,
    /// Reader processes measured together (1 for lookups in the benchmark itself, 0 for
    /// writes).
    pub readers: u32,
    /// For `get-during-load`: the same reader processes' rate just before the writer started.
    #[serde(deserialize_with = "crate::doc::required")]
    pub alone_per_s: Option<f64>,
    /// How it was measured, in words (e.g. "commit per put, MDB_NOSYNC").
    pub note: String,
}

/// What the benchmark ran on (printed with the results: the numbers mean little without it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub logical_cpus: u64,
    pub mem_total_bytes: u64,
    pub kernel: String,
    pub page_size: u64,
    /// `/sys/kernel/mm/transparent_hugepage/enabled`, e.g. "always [madvise] never".
    pub transparent_hugepage: String,
    /// File system type of the benchmark's directory (from /proc/mounts).
    pub filesystem: String,
    /// 1-minute load average when the benchmark started: how busy the machine was.
    pub load_average_1m: f64,
}

/// How a cold-lookup run started: the file's pages in the page cache before and after the
/// eviction (mincore), and the major faults the lookups then took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdStart {
    pub method: Method,
    pub pages_total: u64,
    pub pages_resident_before: u64,
    pub pages_resident_after: u64,
    pub major_faults: u64,
}

/// A goal of issue 14, computed from the rows of this run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    pub goal: String,
    /// The measured ratio (`None` if a row it needs is missing).
    #[serde(deserialize_with = "crate::doc::required")]
    pub ratio: Option<f64>,
    pub target: f64,
    pub met: bool,
}

/// Sizes and counts of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    pub quick: bool,
    /// Random lookups per round, per method (the same order for every method).
    pub lookups: u64,
    /// Rounds, interleaving the methods; the best round of each is kept.
    pub rounds: u32,
    pub batch: u32,
    pub cold_lookups: u64,
    pub puts: u64,
    pub table_bytes: u64,
    pub lmdb_bytes: u64,
    pub cold: Vec<ColdStart>,
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub keys: u64,
    pub machine: Machine,
    pub rows: Vec<Row>,
    pub goals: Vec<Goal>,
    pub setup: Setup,
}

impl BenchReport {
    /// The row of `method` and `op` with `readers` reader processes, if measured.
    pub fn row(&self, method: Method, op: Op, readers: u32) -> Option<&Row> {
        find(&self.rows, method, op, readers)
    }
}

fn find(rows: &[Row], method: Method, op: Op, readers: u32) -> Option<&Row> {
    rows.iter()
        .find(|r| r.method == method && r.op == op && r.readers == readers)
}

/// Issue 14's goals, from the rows: single random get ≥ 2.5× LMDB and ≥ 1× the in-memory
/// HashMap; batched get ≥ 8× LMDB; bulk load ≥ LMDB in one transaction; reader throughput
/// during a load ≥ 0.8× alone (for each number of reader processes measured).
pub fn goals(rows: &[Row]) -> Vec<Goal> {
    use Method::*;
    use Op::*;
    let rate = |m, op, readers| find(rows, m, op, readers).map(|r| r.per_s);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let goal = |goal: String, ratio: Option<f64>, target: f64| Goal {
        goal,
        ratio,
        target,
        met: ratio.is_some_and(|r| r >= target),
    };
    let mut out = vec![
        goal(
            "single random get >= 2.5x LMDB".into(),
            ratio(rate(PersistMmap, Get, 1), rate(Lmdb, Get, 1)),
            2.5,
        ),
        goal(
            "single random get >= 1x in-memory HashMap".into(),
            ratio(rate(PersistMmap, Get, 1), rate(Hashmap, Get, 1)),
            1.0,
        ),
        goal(
            "batched get >= 8x LMDB".into(),
            ratio(rate(PersistMmapBatched, Get, 1), rate(Lmdb, Get, 1)),
            8.0,
        ),
        goal(
            "bulk load >= LMDB in one transaction".into(),
            ratio(rate(PersistMmap, Load, 0), rate(Lmdb, Load, 0)),
            1.0,
        ),
    ];
    let mut during: Vec<&Row> = rows
        .iter()
        .filter(|r| r.method == PersistMmap && r.op == GetDuringLoad)
        .collect();
    during.sort_by_key(|r| r.readers);
    for r in during {
        out.push(goal(
            format!(
                "reader throughput during a load >= 0.8x alone ({} reader process{})",
                r.readers,
                if r.readers == 1 { "" } else { "es" }
            ),
            ratio(Some(r.per_s), r.alone_per_s),
            0.8,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: Method, op: Op, per_s: f64, readers: u32, alone: Option<f64>) -> Row {
        Row {
            method,
            op,
            per_s,
            readers,
            alone_per_s: alone,
            note: String::new(),
        }
    }

    #[test]
    fn goals_are_ratios_of_the_rows_and_say_when_a_row_is_missing() {
        use Method::*;
        use Op::*;
        let rows = vec![
            row(PersistMmap, Get, 10.0, 1, None),
            row(Lmdb, Get, 4.0, 1, None),
            row(Hashmap, Get, 12.5, 1, None),
            row(PersistMmapBatched, Get, 33.0, 1, None),
            row(PersistMmap, Load, 5.0, 0, None),
            row(PersistMmap, GetDuringLoad, 9.0, 2, Some(10.0)),
            row(PersistMmap, GetDuringLoad, 7.0, 1, Some(10.0)),
        ];
        let g = goals(&rows);
        assert_eq!(g[0].ratio, Some(2.5));
        assert!(g[0].met);
        assert_eq!(g[1].ratio, Some(0.8));
        assert!(!g[1].met);
        assert_eq!(g[2].ratio, Some(8.25));
        assert!(g[2].met);
        assert_eq!(g[3].ratio, None, "no LMDB load row");
        assert!(!g[3].met);
        assert!(g[4].goal.contains("(1 reader process)"));
        assert!(!g[4].met);
        assert!(g[5].goal.contains("(2 reader processes)"));
        assert!(g[5].met);
    }

    #[test]
    fn the_document_round_trips_and_names_methods_in_kebab_case() {
        let report = BenchReport {
            keys: 3,
            machine: Machine {
                cpu: "x".into(),
                logical_cpus: 2,
                mem_total_bytes: 1,
                kernel: "6".into(),
                page_size: 4096,
                transparent_hugepage: "never".into(),
                filesystem: "ext4".into(),
                load_average_1m: 0.5,
            },
            rows: vec![row(
                Method::PersistMmapBatched,
                Op::GetDuringLoad,
                1.0,
                2,
                None,
            )],
            goals: vec![],
            setup: Setup {
                quick: true,
                lookups: 1,
                rounds: 1,
                batch: 64,
                cold_lookups: 1,
                puts: 1,
                table_bytes: 1,
                lmdb_bytes: 1,
                cold: vec![],
            },
        };
        let text = serde_json::to_string(&report).unwrap();
        assert!(text.contains(r#""method":"persist-mmap-batched","op":"get-during-load""#));
        let back: BenchReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        // A missing required field is an error, never a default.
        let broken = text.replace(r#""per_s":1.0,"#, "");
        assert!(serde_json::from_str::<BenchReport>(&broken).is_err());
    }
}
