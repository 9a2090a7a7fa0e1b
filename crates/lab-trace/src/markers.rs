//! Pairing a program's operations with the system calls they caused, through markers the program
//! writes into its own trace.
//!
//! A marker is a `write(2)` to descriptor -1 of the text `WORD N`, e.g. `write(-1, "malloc 131072",
//! 13) = -1 EBADF`: it fails at once and does nothing else, but strace prints it in order with
//! every other call. malloc-probe writes `malloc N` before each malloc, `free N` before a free and
//! `done N` at the end, so every `brk`/`mmap`/`munmap` between two markers belongs to the
//! operation the first one names ([`segments`]).
//!
//! Pure functions over parsed calls, tested on recorded traces.

use serde::{Deserialize, Serialize};

use crate::strace::Syscall;

/// A marker line's text: `malloc 131072` is `Marker { word: "malloc", n: 131072 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker<'a> {
    pub word: &'a str,
    pub n: u64,
}

/// The marker a call carries, if it is one: `write(-1, "WORD N", len)`.
pub fn marker(call: &Syscall) -> Option<Marker<'_>> {
    if call.name != "write" || call.arg_i64(0) != Some(-1) {
        return None;
    }
    let (word, n) = call.arg_str(1)?.split_once(' ')?;
    Some(Marker {
        word,
        n: n.parse().ok()?,
    })
}

/// One marked operation and the calls made after its marker, before the next marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The marker's word (`malloc`, `free`, `done`).
    pub word: String,
    /// The marker's number (for `malloc`: the request size).
    pub n: u64,
    /// The calls kept (see [`segments`]), in order.
    pub calls: Vec<Syscall>,
    /// The program break before the operation: the result of the last successful `brk` seen
    /// before its marker, if any.
    pub brk_before: Option<u64>,
}

impl Segment {
    /// The successful anonymous `mmap` whose mapping starts at most `within` bytes before `addr`
    /// (the block malloc returned lies just past its mapping's start).
    pub fn anonymous_mmap_before(&self, addr: u64, within: u64) -> Option<&Syscall> {
        self.calls.iter().find(|c| {
            c.name == "mmap"
                && c.ok()
                && c.arg_flags(3).contains(&"MAP_ANONYMOUS")
                && c.ret_u64()
                    .and_then(|start| addr.checked_sub(start))
                    .is_some_and(|d| d < within)
        })
    }

    /// How far `brk` moved the program break during this operation (0 if it did not move or the
    /// break before it is unknown).
    pub fn brk_growth(&self) -> u64 {
        let last = self
            .calls
            .iter()
            .rev()
            .filter(|c| c.name == "brk" && c.ok())
            .find_map(Syscall::ret_u64);
        match (self.brk_before, last) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => 0,
        }
    }
}

/// Splits `calls` at the markers: one [`Segment`] per marker, holding the calls named in `keep`
/// made after it and before the next marker. Calls before the first marker belong to no segment.
/// The program break is followed through every `brk` (kept or not).
pub fn segments(calls: &[Syscall], keep: &[&str]) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut brk: Option<u64> = None;
    for c in calls {
        if let Some(m) = marker(c) {
            out.push(Segment {
                word: m.word.to_string(),
                n: m.n,
                calls: Vec::new(),
                brk_before: brk,
            });
            continue;
        }
        if c.name == "brk" && c.ok() {
            brk = c.ret_u64().or(brk);
        }
        if keep.contains(&c.name.as_str()) {
            if let Some(s) = out.last_mut() {
                s.calls.push(c.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strace::parse;

    /// Recorded from `strace -f -e trace=brk,mmap,munmap,write malloc-probe --mark alloc 24
    /// 200000 100000` (addresses shortened), plus the JSON printing after `done`.
    const TRACE: &str = "\
500 brk(NULL)                          = 0x55d000000000
500 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000200000
500 write(-1, \"malloc 24\", 9)          = -1 EBADF (Bad file descriptor)
500 write(-1, \"malloc 200000\", 13)     = -1 EBADF (Bad file descriptor)
500 mmap(NULL, 204800, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
500 write(-1, \"malloc 100000\", 13)     = -1 EBADF (Bad file descriptor)
500 brk(0x55d000044000)                = 0x55d000044000
500 write(-1, \"done 3\", 6)             = -1 EBADF (Bad file descriptor)
500 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000100000
500 write(1, \"{\", 1) = 1
";

    #[test]
    fn markers_are_writes_to_minus_one() {
        let calls = parse(TRACE);
        let found: Vec<Marker<'_>> = calls.iter().filter_map(marker).collect();
        assert_eq!(
            found,
            vec![
                Marker {
                    word: "malloc",
                    n: 24
                },
                Marker {
                    word: "malloc",
                    n: 200000
                },
                Marker {
                    word: "malloc",
                    n: 100000
                },
                Marker { word: "done", n: 3 },
            ]
        );
        // A write to stdout is not a marker, nor is a marker without a number.
        let odd = parse("1 write(-1, \"malloc lots\", 11) = -1 EBADF (Bad file descriptor)\n");
        assert_eq!(marker(&odd[0]), None);
    }

    #[test]
    fn each_malloc_gets_the_calls_it_caused() {
        let segs = segments(&parse(TRACE), &["brk", "mmap", "munmap"]);
        let words: Vec<(&str, u64)> = segs.iter().map(|s| (s.word.as_str(), s.n)).collect();
        assert_eq!(
            words,
            [
                ("malloc", 24),
                ("malloc", 200000),
                ("malloc", 100000),
                ("done", 3)
            ]
        );
        assert!(segs[0].calls.is_empty(), "the top chunk served it");
        let m = segs[1]
            .anonymous_mmap_before(0x7f0000000010, 4096)
            .expect("paired mmap");
        assert_eq!(m.arg_u64(1), Some(204800));
        assert!(segs[1]
            .anonymous_mmap_before(0x7f0000200010, 4096)
            .is_none());
        assert_eq!(segs[2].brk_before, Some(0x55d000000000));
        assert_eq!(segs[2].brk_growth(), 0x44000);
        // The mmap before the first marker (start-up) belongs to nobody; the one after `done`
        // (printing the JSON) belongs to `done`, not to the last malloc.
        assert_eq!(segs[3].calls.len(), 1);
        assert!(segs[..3]
            .iter()
            .all(|s| s.calls.iter().all(|c| c.ret_u64() != Some(0x7f0000100000))));
    }

    #[test]
    fn a_refused_brk_does_not_move_the_break() {
        // brk(2) returns the unchanged break when it cannot grow the heap.
        let text = "\
1 brk(NULL) = 0x1000
1 write(-1, \"malloc 1\", 8) = -1 EBADF (Bad file descriptor)
1 brk(0x9000) = 0x1000
";
        let segs = segments(&parse(text), &["brk"]);
        assert_eq!(segs[0].brk_growth(), 0);
    }
}
