//! `/proc/PID/smaps` (`proc(5)`): each mapping's line followed by `Key: value kB` counters.
//!
//! Sharing shows in more than one place, and the lab must read them all: a page mapped by two
//! processes counts in `Shared_Clean` if it is clean and in `Shared_Dirty` if it is dirty (a
//! library's page-cache pages are dirty right after the library was written, e.g. just built),
//! and `Pss` divides each page by the number of processes mapping it, so `Pss < Rss` is sharing
//! whatever the dirty state. [`Counters::sharing`] says which counter showed it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::maps::{Mapping, MapsLine};

/// One mapping of smaps with its counters (kB, as the kernel prints them; `VmFlags` aside).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmapsEntry {
    pub mapping: Mapping,
    pub counters: Counters,
}

/// The `Key: N kB` counters of one mapping (or a sum of several).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters(pub BTreeMap<String, u64>);

/// Where sharing showed in a mapping's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sharing {
    /// `Shared_Clean` is non-zero.
    SharedClean,
    /// `Shared_Dirty` is non-zero (and `Shared_Clean` is not).
    SharedDirty,
    /// Only `Pss < Rss` shows it (e.g. counters rounded to 0 kB).
    PssBelowRss,
    /// Resident, but no counter shows another process mapping these pages.
    NotShared,
    /// Nothing resident: the counters say nothing either way.
    NotResident,
}

impl Counters {
    /// A counter in kB; 0 if the kernel did not print it.
    pub fn kb(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    pub fn rss(&self) -> u64 {
        self.kb("Rss")
    }

    pub fn pss(&self) -> u64 {
        self.kb("Pss")
    }

    pub fn shared(&self) -> u64 {
        self.kb("Shared_Clean") + self.kb("Shared_Dirty")
    }

    /// Adds another mapping's counters to these.
    pub fn add(&mut self, other: &Counters) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }

    /// Which counter shows that these pages are mapped by more than one process.
    pub fn sharing(&self) -> Sharing {
        if self.rss() == 0 {
            Sharing::NotResident
        } else if self.kb("Shared_Clean") > 0 {
            Sharing::SharedClean
        } else if self.kb("Shared_Dirty") > 0 {
            Sharing::SharedDirty
        } else if self.pss() < self.rss() {
            Sharing::PssBelowRss
        } else {
            Sharing::NotShared
        }
    }
}

/// Parses the text of an smaps file.
pub fn parse(text: &str) -> Vec<SmapsEntry> {
    let mut out: Vec<SmapsEntry> = Vec::new();
    for line in text.lines() {
        if let Some(m) = MapsLine::parse(line) {
            out.push(SmapsEntry {
                mapping: m.to_owned_mapping(),
                counters: Counters::default(),
            });
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Some(kb) = value
            .trim()
            .strip_suffix("kB")
            .and_then(|v| v.trim().parse().ok())
        else {
            continue; // VmFlags, THPeligible, ProtectionKey: not sizes
        };
        if let Some(last) = out.last_mut() {
            last.counters.0.insert(key.trim().to_string(), kb);
        }
    }
    out
}

/// Reads `/proc/PID/smaps`.
pub fn read(pid: impl std::fmt::Display) -> std::io::Result<Vec<SmapsEntry>> {
    Ok(parse(&std::fs::read_to_string(format!(
        "/proc/{pid}/smaps"
    ))?))
}

/// The sum of the counters of the entries that `keep` selects.
pub fn total<'a>(
    entries: impl IntoIterator<Item = &'a SmapsEntry>,
    keep: impl Fn(&Mapping) -> bool,
) -> Counters {
    let mut sum = Counters::default();
    for e in entries.into_iter().filter(|e| keep(&e.mapping)) {
        sum.add(&e.counters);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from foo while bar ran, right after libfoobar.so was built: its page-cache
    /// pages were still dirty, so the code's sharing shows in Shared_Dirty, not Shared_Clean.
    const DIRTY_LIB: &str = "\
7f3b2c6d3000-7f3b2c6f3000 r-xp 00001000 fd:01 2099                       /t/release/deps/libfoobar.so
Size:                128 kB
KernelPageSize:        4 kB
Rss:                 128 kB
Pss:                  64 kB
Shared_Clean:          0 kB
Shared_Dirty:        124 kB
Private_Clean:         0 kB
Private_Dirty:         4 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me de sd
7f3b2c6f6000-7f3b2c6f7000 rw-p 00022000 fd:01 2099                       /t/release/deps/libfoobar.so
Size:                  4 kB
Rss:                   4 kB
Pss:                   4 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         4 kB
Anonymous:             4 kB
THPeligible:    0
VmFlags: rd wr mr mw me ac sd
";

    #[test]
    fn sharing_of_dirty_page_cache_shows_in_shared_dirty_and_pss() {
        let entries = parse(DIRTY_LIB);
        assert_eq!(entries.len(), 2);
        let code = &entries[0].counters;
        assert_eq!(code.rss(), 128);
        assert_eq!(code.kb("Shared_Dirty"), 124);
        assert_eq!(code.sharing(), Sharing::SharedDirty);
        assert!(code.pss() * 2 <= code.rss());
        assert_eq!(entries[1].counters.sharing(), Sharing::NotShared);
        assert_eq!(entries[1].mapping.perms, "rw-p");
        let all = total(&entries, |m| m.path.ends_with("libfoobar.so"));
        assert_eq!(all.rss(), 132);
        assert_eq!(all.shared(), 124);
    }

    #[test]
    fn clean_sharing_pss_only_and_nothing_resident() {
        let c = |pairs: &[(&str, u64)]| {
            Counters(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
        };
        assert_eq!(
            c(&[("Rss", 8), ("Pss", 4), ("Shared_Clean", 8)]).sharing(),
            Sharing::SharedClean
        );
        assert_eq!(c(&[("Rss", 8), ("Pss", 6)]).sharing(), Sharing::PssBelowRss);
        assert_eq!(c(&[("Rss", 0)]).sharing(), Sharing::NotResident);
    }

    #[test]
    fn live_smaps_of_ourselves() {
        let entries = read("self").unwrap();
        assert!(entries.iter().any(|e| e.counters.rss() > 0));
    }
}
