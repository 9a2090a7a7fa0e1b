//! Reading `/proc/self/maps` (`proc(5)`): which mapping an address lies in.

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapLine {
    /// First address, as `0x…`.
    pub start: String,
    /// One past the last address, as `0x…`.
    pub end: String,
    /// `r-xp`, `rw-p`, …
    pub perms: String,
    /// Offset in the file, as `0x…`.
    pub offset: String,
    /// The file (or `[heap]`, …); empty for an anonymous mapping.
    pub path: String,
    /// The line as the kernel printed it.
    pub line: String,
    range: (usize, usize),
}

impl MapLine {
    /// Parses `start-end perms offset dev inode [path]`.
    pub fn parse(line: &str) -> Option<MapLine> {
        let mut f = line.split_whitespace();
        let (start, end) = f.next()?.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        let perms = f.next()?.to_string();
        let offset = u64::from_str_radix(f.next()?, 16).ok()?;
        let _dev = f.next()?;
        let _inode = f.next()?;
        let path = f.collect::<Vec<_>>().join(" ");
        Some(MapLine {
            start: format!("{start:#x}"),
            end: format!("{end:#x}"),
            perms,
            offset: format!("{offset:#x}"),
            path,
            line: line.trim_end().to_string(),
            range: (start, end),
        })
    }

    /// The line as foo and bar's start event carries it.
    pub fn to_event(&self) -> foobar_events::MapLine {
        foobar_events::MapLine {
            start: self.start.clone(),
            end: self.end.clone(),
            perms: self.perms.clone(),
            offset: self.offset.clone(),
            path: self.path.clone(),
            line: self.line.clone(),
        }
    }

    /// Whether `addr` lies in this mapping.
    pub fn contains(&self, addr: usize) -> bool {
        self.range.0 <= addr && addr < self.range.1
    }
}

/// The mapping of `maps` (the text of a maps file) that holds `addr`.
pub fn find(maps: &str, addr: usize) -> Option<MapLine> {
    maps.lines()
        .filter_map(MapLine::parse)
        .find(|m| m.contains(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c8a00000-55d0c8a07000 r--p 00000000 fd:01 1311 /t/release/foo
7f3b2c6d3000-7f3b2c6d4000 r-xp 00001000 fd:01 2099 /t/release/libfoobar.so
7f3b2c6d6000-7f3b2c6d7000 rw-p 00002000 fd:01 2099 /t/release/lib foo bar.so
7ffd1a2c0000-7ffd1a2e1000 rw-p 00000000 00:00 0                          [stack]
7ffd1a2f0000-7ffd1a2f1000 rw-p 00000000 00:00 0
";

    #[test]
    fn finds_the_mapping_of_an_address() {
        let m = find(MAPS, 0x7f3b2c6d3120).unwrap();
        assert_eq!(m.perms, "r-xp");
        assert_eq!(m.offset, "0x1000");
        assert_eq!(m.start, "0x7f3b2c6d3000");
        assert_eq!(m.end, "0x7f3b2c6d4000");
        assert_eq!(m.path, "/t/release/libfoobar.so");
        assert!(m.line.starts_with("7f3b2c6d3000-"));
    }

    #[test]
    fn end_is_exclusive_and_paths_keep_spaces() {
        assert_eq!(find(MAPS, 0x7f3b2c6d4000), None);
        assert_eq!(
            find(MAPS, 0x7f3b2c6d6008).unwrap().path,
            "/t/release/lib foo bar.so"
        );
        assert_eq!(find(MAPS, 0x7ffd1a2c0000).unwrap().path, "[stack]");
        assert_eq!(find(MAPS, 0x7ffd1a2f0000).unwrap().path, "");
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert_eq!(MapLine::parse("not a maps line"), None);
        assert_eq!(MapLine::parse("zz-10 r--p 0 0:0 0"), None);
    }
}
