//! malloc-probe's `--json` documents, as xtask reads them: the types of the probe's own library
//! (`malloc_probe::report`), where every field is required (an `Option` present as `null` or a
//! value) and an unknown field is an error, so a document that does not fit is an error that
//! names the field, never a silent default.

pub use malloc_probe::{
    AllocReport, Allocator, ArenaChunk, ChildOut, Dynamic, Fastbins, FreeAttempt, FreeBitReport,
    KernelCallsReport, LadderMalloc, LargeMallocAttempt, Row, SweepReport, ThreadArenaFindings,
    ThreadArenaReport, ThreadHeap, ThresholdReport,
};

/// The documents that list allocations: `alloc` and `sweep`.
pub trait Allocations {
    fn allocations(&self) -> &[Row];
}

impl Allocations for AllocReport {
    fn allocations(&self) -> &[Row] {
        &self.allocations
    }
}

impl Allocations for SweepReport {
    fn allocations(&self) -> &[Row] {
        &self.allocations
    }
}

/// A tag or address as the probe prints it ("0x…").
pub use lab_trace::parse_hex;

#[cfg(test)]
mod tests {

    #[derive(Debug, serde::Deserialize)]
    struct Probe {
        #[serde(deserialize_with = "lab_trace::nullable")]
        status: Option<i32>,
    }

    #[test]
    fn a_missing_option_is_an_error_that_names_it() {
        let p: Probe = serde_json::from_str(r#"{"status": null}"#).unwrap();
        assert_eq!(p.status, None);
        let e = serde_json::from_str::<Probe>("{}").unwrap_err();
        assert!(e.to_string().contains("missing field `status`"), "{e}");
    }
}
