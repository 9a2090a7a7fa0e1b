//! The data of step 1 (malloc-probe), without the probe: the decoding of a glibc boundary tag
//! ([`tag`]) and the `--json` document of every subcommand ([`report`]), defined once so that
//! the binary serialises them and `cargo xtask` (or anything else) deserialises them. A field
//! that is missing when reading is an error that names it, never a default: fields that may
//! have no value are present as `null`.
//!
//! The measuring itself (calling glibc's `malloc` and reading the words before the pointer)
//! lives in the `malloc-probe` binary, which must not allocate between a `malloc` it measures
//! and the reads that follow; run `malloc-probe --help`, or `cargo xtask run-step 1`.
//!
//! A production system would not read allocator metadata at all: it would ask the allocator
//! (`malloc_usable_size(3)`, `mallinfo2(3)`, `malloc_info(3)`).

pub mod preload;
pub mod report;
pub mod tag;

pub use report::*;
