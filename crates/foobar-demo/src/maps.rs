//! Which mapping of `/proc/self/maps` (`proc(5)`) an address lies in, as foo and bar's start
//! event prints it. The lines are parsed by `lab_trace::maps`, the lab's one maps reader.

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
        assert_eq!(find("not a maps line\n", 0), None);
        assert_eq!(find("zz-10 r--p 0 0:0 0\n", 1), None);
    }
}
