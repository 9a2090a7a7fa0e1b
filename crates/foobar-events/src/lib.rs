//! The `--json` events `foo` and `bar` print (step 4 of mmap-lab), one JSON object per line,
//! defined once: the programs (through `foobar-demo`) serialise them, `cargo xtask` and tests
//! deserialise them.
//!
//! Why a crate of its own: `foobar-demo` links libfoobar.so (`#[link(name = "foobar")]`), and
//! a reader of the events must not. Hiding that behind a cargo feature of `foobar-demo` would
//! not hold: cargo unifies a package's features across everything built together, so `cargo
//! test --workspace` would switch the feature back on for xtask. This crate depends on serde
//! alone.
//!
//! Every field is required when reading, an `Option` as `null` or a value; unknown fields are
//! errors. A production program would version such a stream (a `"version"` field, or a schema).

// foo, bar and baz are the assignment's names, not placeholders.
#![allow(clippy::disallowed_names)]

use serde::{Deserialize, Serialize};

/// One line of `foo --json` or `bar --json`: `{"event": "start"|"observation"|"stop", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// First line: where this process sees the library's symbols.
    Start {
        /// `foo` or `bar`.
        program: String,
        pid: u32,
        /// `setbaz`, `getbaz`, `baz`, then `bazaddr` (the address `bazaddr()` returns).
        symbols: Vec<Symbol>,
    },
    /// One reading of `baz` (numbered from 1, without gaps).
    Observation {
        program: String,
        pid: u32,
        n: u64,
        baz: i32,
    },
    /// Last line of a run that ended normally.
    Stop {
        program: String,
        pid: u32,
        observations: u64,
        reason: StopReason,
    },
}

/// What ended a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// `--count N` observations were made.
    #[serde(rename = "count")]
    Count,
    #[serde(rename = "SIGINT")]
    Interrupt,
    #[serde(rename = "SIGTERM")]
    Terminate,
    #[serde(rename = "SIGHUP")]
    Hangup,
}

impl StopReason {
    /// `count` or the signal's name, as printed.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Count => "count",
            StopReason::Interrupt => "SIGINT",
            StopReason::Terminate => "SIGTERM",
            StopReason::Hangup => "SIGHUP",
        }
    }
}

/// One symbol of libfoobar.so as the process sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Symbol {
    pub name: String,
    /// `0x…`.
    pub address: String,
    /// The `/proc/self/maps` line holding the address (`null` if none does).
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub map: Option<MapLine>,
    /// Its place in the mapped file, `0x…`: address − start of the mapping + the mapping's file
    /// offset. The same in every process that maps the file, wherever it is loaded (`null`
    /// when the address is in no file's mapping). Printed as `libfoobar.so+0x…`.
    #[serde(deserialize_with = "lab_trace::nullable")]
    pub file_offset: Option<String>,
}

impl Symbol {
    /// The address as a number (`None` if it is not `0x…` hex, which the programs never print).
    pub fn address_value(&self) -> Option<u64> {
        u64::from_str_radix(self.address.strip_prefix("0x")?, 16).ok()
    }

    /// `libfoobar.so+0x10d40`: the mapped file's name and the place in it, if the address is in
    /// a file's mapping.
    pub fn place(&self) -> Option<String> {
        let offset = self.file_offset.as_ref()?;
        let map = self.map.as_ref()?;
        let name = map.path.rsplit('/').next().unwrap_or(&map.path);
        Some(format!("{name}+{offset}"))
    }
}

/// One line of `/proc/PID/maps`, as printed in a start event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapLine {
    /// First address, `0x…`.
    pub start: String,
    /// One past the last address, `0x…`.
    pub end: String,
    /// `r-xp`, `rw-p`, …
    pub perms: String,
    /// Offset in the file, `0x…`.
    pub offset: String,
    /// The file (or `[heap]`, …); empty for an anonymous mapping.
    pub path: String,
    /// The line as the kernel printed it.
    pub line: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"event":"start","program":"foo","pid":42,"symbols":[{"name":"baz","address":"0x7f00000010","map":{"start":"0x7f00000000","end":"0x7f00001000","perms":"rw-p","offset":"0x4b000","path":"/t/libfoobar.so","line":"7f00000000-7f00001000 rw-p 0004b000 fe:00 5 /t/libfoobar.so"},"file_offset":"0x4b010"},{"name":"bazaddr","address":"0x10","map":null,"file_offset":null}]}"#;

    #[test]
    fn reads_each_event_the_programs_print() {
        let e: Event = serde_json::from_str(START).unwrap();
        let Event::Start { symbols, pid, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*pid, 42);
        assert_eq!(symbols[0].address_value(), Some(0x7f00000010));
        assert_eq!(symbols[0].map.as_ref().unwrap().perms, "rw-p");
        assert_eq!(symbols[1].map, None);
        assert_eq!(symbols[0].place().as_deref(), Some("libfoobar.so+0x4b010"));
        assert_eq!(symbols[1].place(), None);
        assert_eq!(serde_json::to_string(&e).unwrap(), START, "round trip");
        let obs: Event = serde_json::from_str(
            r#"{"event":"observation","program":"bar","pid":7,"n":3,"baz":3}"#,
        )
        .unwrap();
        assert!(matches!(obs, Event::Observation { n: 3, baz: 3, .. }));
        let stop: Event = serde_json::from_str(
            r#"{"event":"stop","program":"bar","pid":7,"observations":3,"reason":"SIGHUP"}"#,
        )
        .unwrap();
        assert!(matches!(
            stop,
            Event::Stop {
                reason: StopReason::Hangup,
                ..
            }
        ));
    }

    #[test]
    fn a_missing_or_odd_field_is_an_error_naming_it() {
        let missing = START.replace(r#","map":null"#, "");
        let e = serde_json::from_str::<Event>(&missing)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `map`"), "{e}");
        let e = serde_json::from_str::<Event>(
            r#"{"event":"observation","program":"bar","pid":7,"n":3}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing field `baz`"), "{e}");
        let e = serde_json::from_str::<Event>(
            r#"{"event":"observation","program":"bar","pid":7,"n":3,"baz":1,"extra":0}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `extra`"), "{e}");
        assert!(serde_json::from_str::<Event>(
            r#"{"event":"stop","program":"bar","pid":7,"observations":3,"reason":"SIGKILL"}"#
        )
        .is_err());
    }
}
