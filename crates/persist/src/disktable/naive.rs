//! The naive writer: step 3 as a first attempt writes it, kept to show why it crashes.
//!
//! It maps the file (`MAP_SHARED`, no `ftruncate`, no `mremap`) and runs the C loop
//! `t->value[t->count] = t->count; t->count++;` N times with plain machine stores. While the
//! stores stay inside the file, nothing is wrong. Past the file's end, what happens depends on
//! where the store lands, page by page (the kernel maps whole pages):
//!
//! - in the mapping's last page, past the end of the file (the page holds the file's last
//!   bytes, so it exists): the store lands in memory, but the file does not grow, so it is
//!   never saved. The count, in the first page, is saved: the file now claims values it does
//!   not hold.
//! - in a mapped page wholly past the end of the file (the mapping asked for more than the
//!   file): there is no file page to map, so the kernel sends SIGBUS (`BUS_ADRERR`).
//! - past the end of the mapping: no mapping at all, so SIGSEGV (`SEGV_MAPERR`). (Whether a
//!   C program gets SIGSEGV there depends on what the kernel placed after its mapping: a
//!   read-only mapping gives SIGSEGV too, a writable one is silently overwritten. We reserve
//!   the page after the mapping and release it, so it is certainly unmapped.)

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

use serde::{Deserialize, Serialize};

use super::sys;
use super::{capacity, check, fmt_hex, io_err, open_existing, value_offset, Error, Reason};

/// How the naive writer maps the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NaiveMode {
    /// Map the file's length (from fstat) and store all N values: past the end of the mapping
    /// the store raises SIGSEGV (after the stores that fit in its last page past EOF).
    File,
    /// Map the length the N values need, more than the file: the first store into a page
    /// wholly past the end of the file raises SIGBUS.
    Beyond,
    /// Map the file's length and stop at the mapping's end: the stores past EOF in its last
    /// page all land, the program exits 0, and none of them is in the file.
    Tail,
}

impl NaiveMode {
    pub fn name(self) -> &'static str {
        match self {
            NaiveMode::File => "file",
            NaiveMode::Beyond => "beyond",
            NaiveMode::Tail => "tail",
        }
    }
}

impl std::str::FromStr for NaiveMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "file" => Ok(NaiveMode::File),
            "beyond" => Ok(NaiveMode::Beyond),
            "tail" => Ok(NaiveMode::Tail),
            _ => Err(format!("unknown mode {s:?} (file, beyond or tail)")),
        }
    }
}

/// `disktable append --naive --json`: the layout, printed before the first store (the process
/// may not live to print anything after). Addresses are `0x…` strings; `*_offset` fields are
/// bytes from the start of the mapping (= of the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NaivePlan {
    pub mode: NaiveMode,
    pub page_size: u64,
    /// The file's length from fstat(2), and what it holds.
    pub file_bytes: u64,
    pub capacity: u64,
    pub count_before: u64,
    /// Values asked for, and how many stores this mode makes (`tail` stops at the mapping end).
    pub n: u64,
    pub stores: u64,
    /// The mapping: its address, the length asked of mmap, and where its last page ends.
    pub map_start: String,
    pub map_len: u64,
    pub map_end: String,
    pub map_end_offset: u64,
    /// Where the file ends in the mapping, and where the first page wholly past it starts.
    pub file_end: String,
    pub first_page_past_eof: String,
    pub first_page_past_eof_offset: u64,
    /// Whether the page right after the mapping is mapped (mincore(2)), just before storing.
    pub page_after_mapping_mapped: bool,
    /// Stores that land inside the file, and after those, stores that land in the mapping's
    /// last page past the end of the file (in memory only).
    pub stores_in_file: u64,
    pub stores_past_eof_in_last_page: u64,
    /// The value index, address and offset of the first store with no file page behind it,
    /// and the signal the layout predicts for it (`SIGBUS` in a mapped page past EOF, `SIGSEGV`
    /// past the mapping); all `null` when every store has a page.
    #[serde(deserialize_with = "Option::deserialize")]
    pub fault_index: Option<u64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub fault_address: Option<String>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub fault_offset: Option<u64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub expected_signal: Option<String>,
}

/// What the naive writer observed when it survived its stores (the crashing modes never get
/// here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaiveOutcome {
    pub stores: u64,
    /// Stores past the end of the file that read back correctly through the mapping.
    pub past_eof_read_back: u64,
    /// The file's length (fstat) after the stores: unchanged, so those values are not in it.
    pub file_bytes_after: u64,
    /// The count now in the file.
    pub count_after: u64,
}

/// Runs the naive writer on `path`: checks the table like every command, disables core dumps
/// (the crash is the point; no core file should be left behind), maps it as `mode` says, calls
/// `announce` with the layout (so it is printed before anything can fault), then stores.
/// Returns only if no store faulted.
pub fn naive_append<E: From<Error>>(
    path: impl AsRef<Path>,
    n: u64,
    mode: NaiveMode,
    announce: impl FnOnce(&NaivePlan) -> Result<(), E>,
) -> Result<NaiveOutcome, E> {
    let path = path.as_ref();
    let invalid = |reason| Error::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    // O_RDWR, no lock: a first attempt takes none.
    let file = open_existing(path, true)?;
    let st = sys::fstat(file.as_fd()).map_err(io_err(path, "fstat"))?;
    if st.len < super::COUNT_BYTES {
        return Err(invalid(Reason::TooShort { len: st.len }).into());
    }
    let page = sys::page_size() as u64;
    let file_bytes = st.len;
    sys::disable_core_dumps().map_err(io_err(path, "setrlimit"))?;
    // Map the file's length (from fstat) and check the count like any reader.
    let start =
        sys::map_naive(file.as_fd(), file_bytes as usize, true).map_err(io_err(path, "mmap"))?;
    // SAFETY: `start` is the page-aligned start of a live MAP_SHARED mapping of at least 8
    // bytes of the file (the length was checked above), never unmapped; another process may
    // write it concurrently, which an atomic allows.
    let count_cell = unsafe { AtomicI64::from_ptr(start as *mut i64) };
    let raw_count = count_cell.load(Ordering::Acquire);
    check(file_bytes, raw_count).map_err(invalid)?;
    let count = raw_count as u64;
    if count
        .checked_add(n)
        .map_or(true, |e| e > i32::MAX as u64 + 1)
    {
        return Err(Error::TooMany {
            path: path.to_path_buf(),
            n,
            why: format!("value[i] = i does not fit in an int past {}", i32::MAX),
        }
        .into());
    }
    // beyond: now that the count is known, map again, as long as count+n values need (more
    // than the file). The first mapping stays; the naive writer ends with the process.
    let needed = value_offset(count + n);
    let (start, len) = if mode == NaiveMode::Beyond && needed > file_bytes {
        let s =
            sys::map_naive(file.as_fd(), needed as usize, true).map_err(io_err(path, "mmap"))?;
        (s, needed)
    } else {
        (start, file_bytes)
    };
    let plan = plan(mode, page, file_bytes, count, n, start as u64, len);
    let plan = NaivePlan {
        page_after_mapping_mapped: sys::range_is_mapped(start + plan.map_end_offset as usize, 1),
        ..plan
    };
    announce(&plan)?;

    // SAFETY: as for `count_cell` above, for the mapping the stores use.
    let count_cell = unsafe { AtomicI64::from_ptr(start as *mut i64) };
    for i in count..count + plan.stores {
        let addr = start + value_offset(i) as usize;
        // SAFETY: `addr` is 4-aligned and lies in our own file mapping or past it, in the page
        // we unmapped; no Rust object lives there. A store with no page behind it ends the
        // process with SIGBUS or SIGSEGV, which is this mode's purpose.
        unsafe { sys::store_i32_may_fault(addr, i as i32) };
        count_cell.store(i as i64 + 1, Ordering::Release);
    }
    // Survived: read the stores past EOF back through the mapping, then fstat the file.
    let mut read_back = 0;
    for i in count.max(capacity(file_bytes))..count + plan.stores {
        let addr = start + value_offset(i) as usize;
        // SAFETY: these stores just completed, so the address is in a mapped, writable page of
        // our mapping, 4-aligned; an atomic load tolerates other writers.
        let v = unsafe { AtomicI32::from_ptr(addr as *mut i32) }.load(Ordering::Relaxed);
        if v == i as i32 {
            read_back += 1;
        }
    }
    let after = sys::fstat(file.as_fd()).map_err(io_err(path, "fstat"))?;
    Ok(NaiveOutcome {
        stores: plan.stores,
        past_eof_read_back: read_back,
        file_bytes_after: after.len,
        count_after: count_cell.load(Ordering::Acquire) as u64,
    })
}

/// The layout and the prediction, from the numbers alone (pure; `page_after_mapping_mapped`
/// is filled in by the caller).
pub(super) fn plan(
    mode: NaiveMode,
    page: u64,
    file_bytes: u64,
    count: u64,
    n: u64,
    start: u64,
    map_len: u64,
) -> NaivePlan {
    let map_end_offset = map_len.div_ceil(page) * page;
    let eof_page_offset = file_bytes.div_ceil(page) * page;
    // Stores of value[i] at 8 + 4i; a 4-byte store never straddles a page.
    let ints_below = |limit: u64| limit.saturating_sub(super::COUNT_BYTES) / super::VALUE_BYTES;
    let end = count + n;
    let in_file_end = ints_below(file_bytes).clamp(count, end);
    let backed_end = ints_below(eof_page_offset.min(map_end_offset)).clamp(in_file_end, end);
    let stores = match mode {
        NaiveMode::Tail => backed_end - count,
        _ => n,
    };
    let (fault_index, expected_signal) = if count + stores > backed_end {
        let o = value_offset(backed_end);
        let sig = if o < map_end_offset {
            "SIGBUS"
        } else {
            "SIGSEGV"
        };
        (Some(backed_end), Some(sig.to_string()))
    } else {
        (None, None)
    };
    let fault_offset = fault_index.map(value_offset);
    NaivePlan {
        mode,
        page_size: page,
        file_bytes,
        capacity: capacity(file_bytes),
        count_before: count,
        n,
        stores,
        map_start: fmt_hex(start),
        map_len,
        map_end: fmt_hex(start + map_end_offset),
        map_end_offset,
        file_end: fmt_hex(start + file_bytes),
        first_page_past_eof: fmt_hex(start + eof_page_offset),
        first_page_past_eof_offset: eof_page_offset,
        page_after_mapping_mapped: false,
        stores_in_file: in_file_end - count,
        stores_past_eof_in_last_page: backed_end.min(count + stores) - in_file_end,
        fault_index,
        fault_address: fault_offset.map(|o| fmt_hex(start + o)),
        fault_offset,
        expected_signal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 4096;
    const L: u64 = super::super::COURSE_FILE_BYTES; // 114,340: 27 pages + 3,748 bytes

    #[test]
    fn file_mode_on_a_full_course_table_faults_past_the_mapping() {
        let p = plan(NaiveMode::File, P, L, 28_583, 300, 0x10000, L);
        assert_eq!(p.map_end_offset, 28 * P);
        assert_eq!(p.first_page_past_eof_offset, 28 * P);
        assert_eq!(p.stores_in_file, 0);
        // 114,688 - 114,340 = 348 bytes = 87 ints land past EOF.
        assert_eq!(p.stores_past_eof_in_last_page, 87);
        assert_eq!(p.fault_index, Some(28_670));
        assert_eq!(p.fault_offset, Some(28 * P));
        assert_eq!(p.expected_signal.as_deref(), Some("SIGSEGV"));
        assert_eq!(p.fault_address.as_deref(), Some("0x2c000"));
    }

    #[test]
    fn beyond_mode_faults_in_the_first_page_past_eof() {
        let p = plan(NaiveMode::Beyond, P, L, 28_383, 300, 0, 8 + 4 * 28_683);
        assert_eq!(p.map_end_offset, 29 * P);
        assert_eq!(p.stores_in_file, 200);
        assert_eq!(p.stores_past_eof_in_last_page, 87);
        assert_eq!(p.fault_offset, Some(28 * P));
        assert_eq!(p.expected_signal.as_deref(), Some("SIGBUS"));
    }

    #[test]
    fn tail_mode_stops_at_the_mapping_end_and_predicts_no_signal() {
        let p = plan(NaiveMode::Tail, P, L, 28_383, 300, 0, L);
        assert_eq!(p.stores, 287);
        assert_eq!(p.stores_in_file, 200);
        assert_eq!(p.stores_past_eof_in_last_page, 87);
        assert_eq!(p.fault_index, None);
        assert_eq!(p.expected_signal, None);
    }

    #[test]
    fn within_capacity_nothing_faults() {
        for mode in [NaiveMode::File, NaiveMode::Beyond, NaiveMode::Tail] {
            let p = plan(mode, P, L, 1083, 300, 0, L);
            assert_eq!(p.stores, 300);
            assert_eq!(p.stores_in_file, 300);
            assert_eq!(p.stores_past_eof_in_last_page, 0);
            assert_eq!(p.expected_signal, None);
        }
    }

    #[test]
    fn a_page_multiple_file_has_no_tail() {
        let p = plan(NaiveMode::File, P, 2 * P, 2046, 5, 0, 2 * P);
        assert_eq!(p.stores_past_eof_in_last_page, 0);
        assert_eq!(p.fault_offset, Some(2 * P));
        assert_eq!(p.expected_signal.as_deref(), Some("SIGSEGV"));
    }

    #[test]
    fn the_plan_round_trips_through_json_and_a_missing_field_is_an_error() {
        let p = plan(NaiveMode::Tail, P, L, 28_383, 300, 0, L);
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains("\"fault_address\":null"), "{text}");
        assert_eq!(serde_json::from_str::<NaivePlan>(&text).unwrap(), p);
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove("expected_signal");
        let e = serde_json::from_value::<NaivePlan>(v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `expected_signal`"), "{e}");
    }
}
