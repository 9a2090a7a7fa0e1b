//! `/proc/PID/maps` (`proc(5)`): one line per mapping, `start-end perms offset dev inode [path]`.
//!
//! [`MapsLine::parse`] reads one line without allocating (the path borrows the text), so a
//! program that must not call malloc between an allocation and the read (malloc-probe) can use
//! it on a buffer it filled beforehand. [`Maps`] is the owned, serialisable snapshot the rest of
//! the lab keeps as evidence.

use serde::{Deserialize, Serialize};

/// One line of a maps file, borrowing its path from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapsLine<'a> {
    pub start: u64,
    pub end: u64,
    /// `r-xp`, `rw-s`, …
    pub perms: [u8; 4],
    /// Offset in the file of the first byte.
    pub offset: u64,
    /// Device (`major:minor`, hex) of the file, `(0, 0)` for anonymous memory.
    pub dev: (u32, u32),
    pub inode: u64,
    /// The file, `[heap]`, `[stack]`, `[vdso]`…; empty for anonymous memory. A deleted file
    /// ends in ` (deleted)`, as the kernel prints it.
    pub path: &'a str,
}

fn hex_u64(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

fn next_field<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start_matches(' ');
    let end = s.find(' ').unwrap_or(s.len());
    let (field, tail) = s.split_at(end);
    *rest = tail;
    (!field.is_empty()).then_some(field)
}

impl<'a> MapsLine<'a> {
    /// Parses one line; `None` if it is not a maps line. Never allocates.
    pub fn parse(line: &'a str) -> Option<MapsLine<'a>> {
        let mut rest = line.trim_end_matches(['\n', '\r']);
        let (start, end) = next_field(&mut rest)?.split_once('-')?;
        let perms: [u8; 4] = next_field(&mut rest)?.as_bytes().try_into().ok()?;
        let offset = hex_u64(next_field(&mut rest)?)?;
        let (major, minor) = next_field(&mut rest)?.split_once(':')?;
        let inode = next_field(&mut rest)?.parse().ok()?;
        Some(MapsLine {
            start: hex_u64(start)?,
            end: hex_u64(end)?,
            perms,
            offset,
            dev: (
                u32::from_str_radix(major, 16).ok()?,
                u32::from_str_radix(minor, 16).ok()?,
            ),
            inode,
            // The path starts after the padding and may itself contain spaces.
            path: rest.trim_start_matches(' '),
        })
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The permissions as text (`r-xp`).
    pub fn perms_str(&self) -> &str {
        std::str::from_utf8(&self.perms).unwrap_or("????")
    }

    /// Whether the mapping is anonymous memory (no file, no `[name]`).
    pub fn is_anonymous(&self) -> bool {
        self.path.is_empty()
    }

    pub fn to_owned_mapping(&self) -> Mapping {
        Mapping {
            start: self.start,
            end: self.end,
            perms: self.perms_str().to_string(),
            offset: self.offset,
            dev: self.dev,
            inode: self.inode,
            path: self.path.to_string(),
        }
    }
}

/// One mapping, owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    pub dev: (u32, u32),
    pub inode: u64,
    pub path: String,
}

impl Mapping {
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The path's last component (`libc.so.6`), or the whole `[heap]`-style name.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The line as the kernel prints it (padding aside).
    pub fn line(&self) -> String {
        format!(
            "{:x}-{:x} {} {:08x} {:02x}:{:02x} {} {}",
            self.start,
            self.end,
            self.perms,
            self.offset,
            self.dev.0,
            self.dev.1,
            self.inode,
            self.path
        )
        .trim_end()
        .to_string()
    }
}

/// A snapshot of a process's mappings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maps {
    pub mappings: Vec<Mapping>,
}

impl Maps {
    /// Parses the text of a maps file; lines that are not maps lines are skipped.
    pub fn parse(text: &str) -> Maps {
        Maps {
            mappings: text
                .lines()
                .filter_map(MapsLine::parse)
                .map(|m| m.to_owned_mapping())
                .collect(),
        }
    }

    /// Reads `/proc/PID/maps` (`pid` = "self" for our own).
    pub fn read(pid: impl std::fmt::Display) -> std::io::Result<Maps> {
        Ok(Maps::parse(&std::fs::read_to_string(format!(
            "/proc/{pid}/maps"
        ))?))
    }

    /// The mapping that holds `addr`.
    pub fn find(&self, addr: u64) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.contains(addr))
    }

    /// The mappings of the file whose path ends in `/name` (or is `name`).
    pub fn of_file<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Mapping> + 's {
        self.mappings
            .iter()
            .filter(move |m| m.path == name || m.path.ends_with(&format!("/{name}")))
    }

    /// The mappings of the file with this device and inode (how fuser and lsof match).
    pub fn of_inode(&self, dev: (u32, u32), inode: u64) -> impl Iterator<Item = &Mapping> {
        self.mappings
            .iter()
            .filter(move |m| m.inode == inode && m.dev == dev)
    }

    /// The `[heap]` mapping, if the process has one.
    pub fn heap(&self) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.path == "[heap]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c8a00000-55d0c8a07000 r--p 00000000 fd:01 1311                       /t/release/foo
55d7a3e4c000-55d7a3e6d000 rw-p 00000000 00:00 0                          [heap]
7f3b2c6d3000-7f3b2c6d4000 r-xp 00001000 fd:01 2099                       /t/release/libfoobar.so
7f3b2c6d6000-7f3b2c6d7000 rw-s 00002000 fd:01 2100                       /t/lib foo bar.so (deleted)
7f3b2c6d8000-7f3b2c6d9000 rw-p 00000000 00:00 0 
7ffd1a2c0000-7ffd1a2e1000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn parses_every_field_without_allocating() {
        let line = MapsLine::parse(MAPS.lines().nth(2).unwrap()).unwrap();
        assert_eq!(line.start, 0x7f3b2c6d3000);
        assert_eq!(line.end, 0x7f3b2c6d4000);
        assert_eq!(line.perms_str(), "r-xp");
        assert_eq!(line.offset, 0x1000);
        assert_eq!(line.dev, (0xfd, 1));
        assert_eq!(line.inode, 2099);
        assert_eq!(line.path, "/t/release/libfoobar.so");
    }

    #[test]
    fn finds_addresses_end_exclusive_and_keeps_odd_paths() {
        let maps = Maps::parse(MAPS);
        assert_eq!(maps.mappings.len(), 6);
        assert_eq!(
            maps.find(0x7f3b2c6d3120).unwrap().file_name(),
            "libfoobar.so"
        );
        assert_eq!(maps.find(0x7f3b2c6d4000), None, "end is exclusive");
        assert_eq!(
            maps.find(0x7f3b2c6d6008).unwrap().path,
            "/t/lib foo bar.so (deleted)"
        );
        assert!(maps.find(0x7f3b2c6d8000).unwrap().path.is_empty());
        assert_eq!(maps.heap().unwrap().start, 0x55d7a3e4c000);
        assert_eq!(maps.of_file("libfoobar.so").count(), 1);
        assert_eq!(maps.of_inode((0xfd, 1), 2100).count(), 1);
        assert_eq!(
            maps.mappings[2].line(),
            "7f3b2c6d3000-7f3b2c6d4000 r-xp 00001000 fd:01 2099 /t/release/libfoobar.so"
        );
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert_eq!(MapsLine::parse("not a maps line"), None);
        assert_eq!(MapsLine::parse("zz-10 r--p 0 0:0 0"), None);
        assert_eq!(MapsLine::parse("10-20 r--p 0 00:00"), None);
        assert_eq!(Maps::parse("").mappings.len(), 0);
    }

    #[test]
    fn live_maps_know_our_own_code() {
        let maps = Maps::read("self").unwrap();
        let code = live_maps_know_our_own_code as fn() as usize as u64;
        let m = maps.find(code).expect("our code is mapped");
        assert_eq!(
            std::path::Path::new(&m.path),
            std::env::current_exe().unwrap()
        );
        assert!(m.perms.contains('x'));
    }
}
