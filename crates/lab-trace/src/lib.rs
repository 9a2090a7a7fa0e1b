//! The lab's evidence, read once: everything a step's conclusions rest on passes through here.
//!
//! - [`strace`]: strace output as typed system calls, signals and exits (pure parsing);
//!   [`run`]: running a program under strace, with a check that says how to install it.
//! - [`fds`]: following one file through a trace (descriptor, mappings, mremap).
//! - [`loader`]: how the dynamic loader mapped a shared object, from a trace.
//! - [`maps`], [`smaps`], [`pagemap`]: one reader each for `/proc/PID/maps`, `/proc/PID/smaps`
//!   and `/proc/PID/pagemap`. The maps line parser allocates nothing, so malloc-probe can use it
//!   between a `malloc` and the read without disturbing the heap it measures.
//! - [`elf`]: DT_NEEDED, RUNPATH, dynamic symbols and relocations (with the `object` crate).
//! - [`procstat`]: CPU time from `/proc/stat` and `/proc/PID/stat`, affinity masks.
//! - [`shared`]: a read-only `MAP_SHARED` view of a file other processes write (atomics only).
//!
//! Every parser takes text or bytes and returns types, with no I/O, so recorded inputs test it
//! and recorded evidence from another machine can be analysed here. The readers that do I/O are
//! thin wrappers (`Maps::read`, `smaps::read`, `pagemap::read`, `run::run`).
//!
//! Why not `procfs-core`: its maps parser allocates a `PathBuf` per line (malloc-probe must not
//! allocate), and for smaps the lab needs only the `kB` counters and which of them shows sharing;
//! 100 lines of our own, tested on recorded files, were less than adapting its types.

pub mod elf;
pub mod fds;
pub mod loader;
pub mod maps;
pub mod markers;
pub mod pagemap;
pub mod procstat;
pub mod run;
pub mod shared;
pub mod smaps;
pub mod strace;

pub use strace::{Exit, Signal, Syscall, Trace};

/// An address or tag as the lab's programs print it in their `--json` (`0x` then hex digits);
/// `None` for anything else.
pub fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim().strip_prefix("0x")?, 16).ok()
}

/// For an `Option` field of a `--json` document that must be present, as `null` or a value
/// (`#[serde(deserialize_with = "lab_trace::nullable")]`): serde reads a missing plain `Option`
/// as `None`, while a field with its own `deserialize_with` is required, so a document that
/// lacks it is an error naming the field, never a silent default.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Doc {
        #[serde(deserialize_with = "super::nullable")]
        n: Option<u32>,
    }

    #[test]
    fn nullable_fields_must_be_present() {
        let read = |text: &str| serde_json::from_str::<Doc>(text);
        assert_eq!(read(r#"{"n": null}"#).unwrap(), Doc { n: None });
        assert_eq!(read(r#"{"n": 3}"#).unwrap(), Doc { n: Some(3) });
        let e = read("{}").unwrap_err().to_string();
        assert!(e.contains("missing field `n`"), "{e}");
    }

    #[test]
    fn hex_parses_only_hex() {
        assert_eq!(super::parse_hex("0x21002"), Some(0x21002));
        assert_eq!(super::parse_hex(" 0x7f00 "), Some(0x7f00));
        assert_eq!(super::parse_hex("21002"), None);
        assert_eq!(super::parse_hex("0xzz"), None);
    }
}
