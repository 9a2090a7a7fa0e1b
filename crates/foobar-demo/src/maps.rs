//! Which mapping of `/proc/self/maps` (`proc(5)`) an address lies in, and the address's place in
//! the mapped file, as foo and bar's start event prints them. The lines are parsed by
//! `lab_trace::maps`, the lab's one maps reader.

use foobar_events::MapLine;
use lab_trace::maps::MapsLine;

/// The line of `maps` (the text of a maps file) whose mapping holds `addr`.
pub fn find(maps: &str, addr: usize) -> Option<MapLine> {
    maps.lines().find_map(|text| {
        let m = MapsLine::parse(text)?;
        m.contains(addr as u64).then(|| MapLine {
            start: format!("{:#x}", m.start),
            end: format!("{:#x}", m.end),
            perms: m.perms_str().to_string(),
            offset: format!("{:#x}", m.offset),
            path: m.path.to_string(),
            line: text.trim_end().to_string(),
        })
    })
}

/// The place of `addr` in the file mapped there: `addr - start + offset` of the maps line that
/// holds it. The loader maps each segment of a library at some address, but always from the
/// same offset in the file, so this is the same in every process. `None` for an address in no
/// file's mapping (anonymous memory, `[heap]`, `[stack]`: inode 0).
pub fn file_offset(maps: &str, addr: usize) -> Option<u64> {
    maps.lines().find_map(|text| {
        let m = MapsLine::parse(text)?;
        let addr = addr as u64;
        (m.contains(addr) && m.inode != 0).then(|| addr - m.start + m.offset)
    })
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
    fn the_place_in_the_file_is_the_offset_into_the_mapping_plus_its_file_offset() {
        assert_eq!(file_offset(MAPS, 0x7f3b2c6d3120), Some(0x1120));
        assert_eq!(file_offset(MAPS, 0x7f3b2c6d6008), Some(0x2008));
        assert_eq!(file_offset(MAPS, 0x55d0c8a00010), Some(0x10));
        // No file: the stack, anonymous memory, or no mapping at all.
        assert_eq!(file_offset(MAPS, 0x7ffd1a2c0000), None);
        assert_eq!(file_offset(MAPS, 0x7ffd1a2f0000), None);
        assert_eq!(file_offset(MAPS, 0x10), None);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert_eq!(find("not a maps line\n", 0), None);
        assert_eq!(find("zz-10 r--p 0 0:0 0\n", 1), None);
    }
}
