//! Where a store faulted, relative to the table's mapping and the table file's end, from a
//! trace alone: the fault signal's `si_addr`, the table's mmap/mremap/munmap calls before it,
//! and the file's length then (the last ftruncate before it, or its length at the start).
//!
//! The kernel maps a file in whole pages. A store into the mapping's last page past the end of
//! the file lands (the page exists: it holds the file's last bytes) but is never written to the
//! file. A store into a mapped page wholly past the end of the file has no file page behind it:
//! SIGBUS (`BUS_ADRERR`). A store past the end of the mapping has no mapping: SIGSEGV
//! (`SEGV_MAPERR`).

use lab_trace::{Syscall, Trace};
use serde::{Deserialize, Serialize};

/// Addresses as `"0x…"` in `--json` findings.
pub mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        text.strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a 0x… address")))
    }
}

/// One mapping of the table: its start and the length asked of mmap/mremap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    #[serde(with = "hex")]
    pub start: u64,
    pub len: u64,
}

impl Mapping {
    /// The end of its last page.
    pub fn end(&self, page: u64) -> u64 {
        self.start + self.len.div_ceil(page) * page
    }
}

/// Where the faulting address lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Region {
    /// In a page that holds bytes of the file: a store there should not fault.
    InsideFile,
    /// In the mapping, in a page wholly past the end of the file: SIGBUS.
    MappedPastEof,
    /// Past the end of the mapping: SIGSEGV.
    PastMapping,
    /// Below every mapping of the table, or no mapping was seen: not the table's fault.
    Elsewhere,
}

impl Region {
    /// The signal the rule above predicts for a store here.
    pub fn expected_signal(self) -> Option<&'static str> {
        match self {
            Region::MappedPastEof => Some("SIGBUS"),
            Region::PastMapping => Some("SIGSEGV"),
            Region::InsideFile | Region::Elsewhere => None,
        }
    }

    /// Why a store here raises (or not) its signal.
    pub fn why(self) -> &'static str {
        match self {
            Region::MappedPastEof => {
                "the page is inside the mapping but wholly past the end of the file: there is \
                 no file page to map, so the kernel sends SIGBUS"
            }
            Region::PastMapping => {
                "the address is past the end of the mapping: no mapping covers it, so the \
                 kernel sends SIGSEGV"
            }
            Region::InsideFile => "the page holds bytes of the file: a store there should land",
            Region::Elsewhere => "the address is not in or just past the table's mapping",
        }
    }
}

/// A fault located against the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub signal: String,
    /// `si_code` (`SEGV_MAPERR`, `BUS_ADRERR`).
    pub code: Option<String>,
    #[serde(with = "hex")]
    pub address: u64,
    /// The table mapping the address is in, or the nearest one below it.
    pub mapping: Option<Mapping>,
    /// The file's length when the store was made.
    pub file_bytes: u64,
    pub region: Region,
    /// address - mapping start (the offset in the file the store aimed at).
    pub offset: Option<u64>,
    /// address - the end of the mapping's last page (negative: inside it).
    pub past_map_end: Option<i64>,
    /// address - (mapping start + file length) (negative: inside the file).
    pub past_file_end: Option<i64>,
    /// Whether the signal is the one [`Region::expected_signal`] predicts.
    pub as_expected: bool,
}

/// Locates the trace's first SIGSEGV/SIGBUS against the table, whose calls `table_calls`
/// selects ([`lab_trace::fds::file_calls`]); `file_bytes` is the file's length when the run
/// started. `None` if no fault signal was delivered.
pub fn locate(
    trace: &Trace,
    is_table: impl Fn(&str) -> bool,
    file_bytes: u64,
    page: u64,
) -> Option<Fault> {
    let sig = trace.fault()?;
    let before = &trace.calls[..sig.after_calls.min(trace.calls.len())];
    let mine: Vec<&Syscall> = lab_trace::fds::file_calls(before, is_table)
        .into_iter()
        .filter(|c| sig.pid.is_none() || c.pid == sig.pid)
        .collect();
    let maps = live_mappings(&mine);
    let file_bytes = mine
        .iter()
        .rev()
        .find(|c| c.name == "ftruncate" && c.ok())
        .and_then(|c| c.arg_u64(1))
        .unwrap_or(file_bytes);
    let address = sig.addr?;
    let mapping = maps
        .iter()
        .filter(|m| m.start <= address)
        .min_by_key(|m| (address >= m.end(page), address - m.start))
        .copied();
    let region = match mapping {
        None => Region::Elsewhere,
        Some(m) if address >= m.end(page) => Region::PastMapping,
        Some(m) if address - m.start >= file_bytes.div_ceil(page) * page => Region::MappedPastEof,
        Some(_) => Region::InsideFile,
    };
    Some(Fault {
        signal: sig.name.clone(),
        code: sig.code.clone(),
        address,
        mapping,
        file_bytes,
        region,
        offset: mapping.map(|m| address - m.start),
        past_map_end: mapping.map(|m| address as i64 - m.end(page) as i64),
        past_file_end: mapping.map(|m| address as i64 - (m.start + file_bytes) as i64),
        as_expected: region.expected_signal() == Some(sig.name.as_str()),
    })
}

/// The table's mappings still alive after `calls` (mmap, mremap, munmap, in order).
pub fn live_mappings(calls: &[&Syscall]) -> Vec<Mapping> {
    let mut live: Vec<Mapping> = Vec::new();
    for c in calls.iter().filter(|c| c.ok()) {
        match c.name.as_str() {
            "mmap" => {
                if let (Some(start), Some(len)) = (c.ret_u64(), c.arg_u64(1)) {
                    live.retain(|m| !(m.start >= start && m.start < start + len));
                    live.push(Mapping { start, len });
                }
            }
            "mremap" => {
                if let (Some(old), Some(len), Some(new)) = (c.arg_u64(0), c.arg_u64(2), c.ret_u64())
                {
                    live.retain(|m| m.start != old);
                    live.push(Mapping { start: new, len });
                }
            }
            "munmap" => {
                if let Some(start) = c.arg_u64(0) {
                    live.retain(|m| m.start != start);
                }
            }
            _ => {}
        }
    }
    live
}

/// The first growth of the table in a trace: `ftruncate` then `mremap` (with `MREMAP_MAYMOVE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Growth {
    /// ftruncate's new length.
    pub file_bytes: u64,
    /// mremap: old address and length, new length, flags, new address.
    #[serde(with = "hex")]
    pub old_address: u64,
    pub old_len: u64,
    pub new_len: u64,
    pub flags: String,
    #[serde(with = "hex")]
    pub new_address: u64,
    /// Whether the ftruncate came before the mremap.
    pub truncate_first: bool,
}

impl Growth {
    pub fn moved(&self) -> bool {
        self.old_address != self.new_address
    }
}

/// Every ftruncate + mremap pair of the table's calls.
pub fn growths(calls: &[&Syscall]) -> Vec<Growth> {
    let mut out = Vec::new();
    let mut last_truncate: Option<u64> = None;
    for c in calls.iter().filter(|c| c.ok()) {
        match c.name.as_str() {
            "ftruncate" => last_truncate = c.arg_u64(1),
            "mremap" => {
                if let (Some(old_address), Some(old_len), Some(new_len), Some(new_address)) =
                    (c.arg_u64(0), c.arg_u64(1), c.arg_u64(2), c.ret_u64())
                {
                    out.push(Growth {
                        file_bytes: last_truncate.unwrap_or(0),
                        old_address,
                        old_len,
                        new_len,
                        flags: c
                            .args
                            .get(3)
                            .map(|s| s.trim().to_string())
                            .unwrap_or_default(),
                        new_address,
                        truncate_first: last_truncate.is_some(),
                    });
                    last_truncate = None;
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;
    /// A recorded trace of `disktable append --naive=file` on the course's table (count 1383).
    const NAIVE_FILE: &str = "\
939   openat(AT_FDCWD, \"n-file.bin\", O_RDWR|O_CLOEXEC) = 3
939   newfstatat(3, \"\", {st_mode=S_IFREG|0644, st_size=114340, ...}, AT_EMPTY_PATH) = 0
939   mmap(NULL, 118784, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7fce3e00e000
939   mmap(0x7fce3e00e000, 114340, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED, 3, 0) = 0x7fce3e00e000
939   munmap(0x7fce3e02a000, 4096)      = 0
939   --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x7fce3e02a000} ---
939   +++ killed by SIGSEGV +++
";
    /// `--naive=beyond`: a second mapping longer than the file.
    const NAIVE_BEYOND: &str = "\
1041  openat(AT_FDCWD, \"n-beyond.bin\", O_RDWR|O_CLOEXEC) = 3
1041  mmap(0x7fcc67f58000, 114340, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED, 3, 0) = 0x7fcc67f58000
1041  munmap(0x7fcc67f74000, 4096)      = 0
1041  mmap(0x7fcc67f3a000, 116740, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED, 3, 0) = 0x7fcc67f3a000
1041  munmap(0x7fcc67f57000, 4096)      = 0
1041  --- SIGBUS {si_signo=SIGBUS, si_code=BUS_ADRERR, si_addr=0x7fcc67f56000} ---
1041  +++ killed by SIGBUS +++
";

    fn is_bin(p: &str) -> bool {
        p.ends_with(".bin")
    }

    #[test]
    fn a_store_past_the_mapping_is_sigsegv() {
        let trace = lab_trace::strace::parse_trace(NAIVE_FILE);
        let f = locate(&trace, is_bin, 114_340, PAGE).unwrap();
        assert_eq!(f.signal, "SIGSEGV");
        assert_eq!(f.code.as_deref(), Some("SEGV_MAPERR"));
        assert_eq!(
            f.mapping,
            Some(Mapping {
                start: 0x7fce3e00e000,
                len: 114_340
            })
        );
        assert_eq!(f.region, Region::PastMapping);
        assert_eq!(f.offset, Some(114_688));
        assert_eq!(f.past_map_end, Some(0));
        assert_eq!(f.past_file_end, Some(348));
        assert!(f.as_expected);
    }

    #[test]
    fn a_store_into_a_mapped_page_past_eof_is_sigbus() {
        let trace = lab_trace::strace::parse_trace(NAIVE_BEYOND);
        let f = locate(&trace, is_bin, 114_340, PAGE).unwrap();
        assert_eq!(f.signal, "SIGBUS");
        assert_eq!(f.mapping.unwrap().start, 0x7fcc67f3a000);
        assert_eq!(f.region, Region::MappedPastEof);
        assert_eq!(f.past_map_end, Some(-4096));
        assert_eq!(f.past_file_end, Some(348));
        assert!(f.as_expected);
    }

    #[test]
    fn a_signal_that_contradicts_the_rule_is_flagged() {
        // SIGBUS reported past the mapping's end: not what the rule predicts.
        let text = NAIVE_FILE.replace("SIGSEGV", "SIGBUS");
        let f = locate(
            &lab_trace::strace::parse_trace(&text),
            is_bin,
            114_340,
            PAGE,
        )
        .unwrap();
        assert_eq!(f.region, Region::PastMapping);
        assert!(!f.as_expected);
        // An ftruncate before the fault sets the file's length at the time of the store.
        let grown = NAIVE_BEYOND.replace(
            "1041  munmap(0x7fcc67f57000",
            "1041  ftruncate(3, 118784) = 0\n1041  munmap(0x7fcc67f57000",
        );
        let f = locate(
            &lab_trace::strace::parse_trace(&grown),
            is_bin,
            114_340,
            PAGE,
        )
        .unwrap();
        assert_eq!(f.file_bytes, 118_784);
        assert_eq!(f.region, Region::InsideFile);
        assert!(locate(
            &lab_trace::strace::parse_trace("1 close(3) = 0\n"),
            is_bin,
            8,
            PAGE
        )
        .is_none());
    }

    #[test]
    fn growth_is_ftruncate_then_mremap() {
        let calls = lab_trace::strace::parse(
            "\
7 openat(AT_FDCWD, \"t.bin\", O_RDWR|O_CLOEXEC) = 3
7 mmap(NULL, 114340, PROT_READ|PROT_WRITE, MAP_SHARED, 3, 0) = 0x7fb868838000
7 ftruncate(3, 229376) = 0
7 mremap(0x7fb868838000, 114340, 229376, MREMAP_MAYMOVE) = 0x7fb868800000
7 munmap(0x7fb868800000, 229376) = 0
",
        );
        let mine = lab_trace::fds::file_calls(&calls, |p| p == "t.bin");
        let g = growths(&mine);
        assert_eq!(g.len(), 1);
        assert!(g[0].truncate_first && g[0].moved());
        assert_eq!((g[0].file_bytes, g[0].new_len), (229_376, 229_376));
        assert_eq!(g[0].flags, "MREMAP_MAYMOVE");
        assert!(live_mappings(&mine).is_empty());
        assert_eq!(
            live_mappings(&mine[..4]),
            [Mapping {
                start: 0x7fb868800000,
                len: 229_376
            }]
        );
    }
}
