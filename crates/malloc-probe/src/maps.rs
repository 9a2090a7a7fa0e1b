//! Which mapping an address lies in, from `/proc/self/maps` (proc(5)): the region of a chunk is
//! read from the kernel's view, never inferred from the chunk's IS_MMAPPED bit.

use anyhow::Context as _;

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
    pub perms: String,
    /// The pathname column: a file, `[heap]`, `[stack]`, or empty for anonymous memory.
    pub path: String,
}

/// A snapshot of the process's mappings.
#[derive(Debug, Clone)]
pub struct Maps {
    pub lines: Vec<Mapping>,
}

/// Where an address lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// The `[heap]` mapping (grown with brk).
    Heap,
    /// An anonymous mapping: what mmap(MAP_ANONYMOUS) returns.
    Mmap,
    /// Anything else (a file, the stack) or unmapped.
    Other,
}

impl Region {
    pub fn name(self) -> &'static str {
        match self {
            Region::Heap => "heap",
            Region::Mmap => "mmap",
            Region::Other => "other",
        }
    }
}

impl Maps {
    /// Reads `/proc/self/maps`. This allocates: call it after measuring, never in between.
    pub fn read_self() -> anyhow::Result<Maps> {
        let text = std::fs::read_to_string("/proc/self/maps")
            .context("cannot read /proc/self/maps (is /proc mounted?)")?;
        Ok(Maps::parse(&text))
    }

    /// Parses the text of a maps file; lines it cannot read are skipped.
    pub fn parse(text: &str) -> Maps {
        let lines = text.lines().filter_map(parse_line).collect();
        Maps { lines }
    }

    /// The mapping that contains `addr`.
    pub fn find(&self, addr: usize) -> Option<&Mapping> {
        self.lines.iter().find(|m| m.start <= addr && addr < m.end)
    }

    /// The `[heap]` mapping, if the process has one.
    pub fn heap(&self) -> Option<&Mapping> {
        self.lines.iter().find(|m| m.path == "[heap]")
    }

    /// The region `addr` lies in.
    pub fn region(&self, addr: usize) -> Region {
        match self.find(addr) {
            Some(m) if m.path == "[heap]" => Region::Heap,
            Some(m) if m.path.is_empty() => Region::Mmap,
            _ => Region::Other,
        }
    }

    /// A short description of the mapping holding `addr` (`libc.so.6`, `[heap]`, `anonymous`).
    pub fn describe(&self, addr: usize) -> String {
        match self.find(addr) {
            Some(m) if m.path.is_empty() => "anonymous mapping".to_string(),
            Some(m) => m.path.rsplit('/').next().unwrap_or(&m.path).to_string(),
            None => "no mapping: not an address".to_string(),
        }
    }
}

fn parse_line(line: &str) -> Option<Mapping> {
    // 55d7a3e4c000-55d7a3e6d000 rw-p 00000000 00:00 0          [heap]
    let mut fields = line.splitn(6, ' ').filter(|s| !s.is_empty());
    let range = fields.next()?;
    let perms = fields.next()?.to_string();
    let (a, b) = range.split_once('-')?;
    let start = usize::from_str_radix(a, 16).ok()?;
    let end = usize::from_str_radix(b, 16).ok()?;
    // offset, dev, inode, then the (possibly absent) path after padding.
    let rest: Vec<&str> = line.split_whitespace().skip(5).collect();
    Some(Mapping {
        start,
        end,
        perms,
        path: rest.join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SAMPLE: &str = "\
55d7a2a00000-55d7a2a21000 r--p 00000000 08:01 123  /usr/bin/malloc-probe
55d7a3e4c000-55d7a3e6d000 rw-p 00000000 00:00 0                          [heap]
7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 
7f1c2b000000-7f1c2b028000 r--p 00000000 08:01 456                        /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn classifies_heap_anonymous_and_files() {
        let maps = Maps::parse(SAMPLE);
        assert_eq!(maps.lines.len(), 5);
        assert_eq!(maps.region(0x55d7a3e4c010), Region::Heap);
        assert_eq!(
            maps.region(0x55d7a3e6d000),
            Region::Other,
            "end is exclusive"
        );
        assert_eq!(maps.region(0x7f1c2a000010), Region::Mmap);
        assert_eq!(maps.region(0x7f1c2b000010), Region::Other);
        assert_eq!(maps.region(0x7ffd1c000010), Region::Other);
        assert_eq!(maps.region(0x10), Region::Other);
        assert_eq!(maps.describe(0x7f1c2b000010), "libc.so.6");
        assert_eq!(maps.heap().unwrap().start, 0x55d7a3e4c000);
    }

    #[test]
    fn live_maps_know_our_own_code() {
        let maps = Maps::read_self().unwrap();
        let code = live_maps_know_our_own_code as fn() as usize;
        let exe = std::env::current_exe().unwrap();
        let m = maps.find(code).expect("our code is mapped");
        assert_eq!(Path::new(&m.path), exe);
        assert!(m.perms.contains('x'));
        assert_eq!(maps.region(code), Region::Other);
    }
}
