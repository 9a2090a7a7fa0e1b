//! How the dynamic loader (`ld.so(8)`) brought a shared object into a process, read from a
//! trace of `openat,mmap,mprotect,munmap,close`: the `openat` that found the file (after the
//! failed attempts of the search path), the `mmap`s on its descriptor until `close` (the first
//! reserves the whole span, the MAP_FIXED ones place the segments inside it), an anonymous
//! MAP_FIXED map for the part of .bss past the file's pages, and the `mprotect`s of RELRO.

use serde::{Deserialize, Serialize};

use crate::strace::Syscall;

/// How the dynamic loader loaded one shared object into one process, read from a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibLoad {
    /// The path that `openat` succeeded on.
    pub path: String,
    /// The `openat` attempts on the same file name that failed first (the RUNPATH search).
    pub failed_opens: Vec<Syscall>,
    pub open: Syscall,
    pub fd: i64,
    /// The `mmap` calls on `fd` before it was closed, in order; the first reserves the span.
    pub mmaps: Vec<Syscall>,
    /// Anonymous MAP_FIXED maps inside the reservation (the part of .bss past the file's pages).
    pub anon: Vec<Syscall>,
    pub close: Option<Syscall>,
    /// Later `mprotect` calls inside the reservation (RELRO: made read-only after relocation).
    pub mprotects: Vec<Syscall>,
}

impl LibLoad {
    /// The address range of the first mmap (the loader's reservation for the whole object).
    pub fn reservation(&self, page: u64) -> Option<(u64, u64)> {
        range(self.mmaps.first()?, page)
    }

    /// The file mmaps and anonymous maps, in the order they were made.
    pub fn all_maps(&self) -> Vec<&Syscall> {
        let mut v: Vec<&Syscall> = self.mmaps.iter().chain(&self.anon).collect();
        v.sort_by_key(|c| self.index_of(c));
        v
    }

    fn index_of(&self, c: &Syscall) -> usize {
        // Anonymous maps come after the file maps they complete.
        self.mmaps
            .iter()
            .position(|m| m == c)
            .unwrap_or(self.mmaps.len() + self.anon.iter().position(|m| m == c).unwrap_or(0))
    }

    /// The index in [`LibLoad::all_maps`] of the mapping that finally holds `addr`: the last one
    /// made that covers it (MAP_FIXED maps replace parts of the reservation).
    pub fn holder_of(&self, addr: u64, page: u64) -> Option<usize> {
        self.all_maps()
            .iter()
            .rposition(|m| range(m, page).is_some_and(|(s, e)| s <= addr && addr < e))
    }

    /// The protection of the page holding `addr` once loading was done: the `PROT_…` argument of
    /// the mmap that holds it ([`LibLoad::holder_of`]), replaced by the last `mprotect` that
    /// covers it (RELRO).
    pub fn prot_at(&self, addr: u64, page: u64) -> Option<String> {
        let maps = self.all_maps();
        let mut prot = maps.get(self.holder_of(addr, page)?)?.args.get(2)?.trim();
        for m in &self.mprotects {
            let covers = m.arg_u64(0).zip(m.arg_u64(1)).is_some_and(|(a, l)| {
                let end = a + l.div_ceil(page) * page;
                a <= addr && addr < end
            });
            if covers && m.ok() {
                prot = m.args.get(2).map_or(prot, |p| p.trim());
            }
        }
        Some(prot.to_string())
    }

    /// The load bias (`l_addr` of `dlinfo(3)`): the address the object's virtual address 0 was
    /// mapped at. The reservation maps the first `PT_LOAD` segment, whose virtual address
    /// (`first_load_vaddr`, rounded down to a page) is 0 for the shared objects linkers make.
    pub fn base(&self, first_load_vaddr: u64, page: u64) -> Option<u64> {
        let (start, _) = self.reservation(page)?;
        start.checked_sub(first_load_vaddr / page * page)
    }
}

/// The virtual address of the first `PT_LOAD` program header of an ELF file (`elf(5)`), which
/// the loader's reservation maps; `None` if `data` is not a 64-bit ELF file or has no PT_LOAD.
pub fn first_load_vaddr(data: &[u8]) -> Option<u64> {
    use object::read::elf::{FileHeader as _, ProgramHeader as _};
    let header = object::elf::FileHeader64::<object::Endianness>::parse(data).ok()?;
    let endian = header.endian().ok()?;
    header
        .program_headers(endian, data)
        .ok()?
        .iter()
        .find(|ph| ph.p_type(endian) == object::elf::PT_LOAD)
        .map(|ph| ph.p_vaddr(endian))
}

/// Where `ld.so(8)` looks for a `DT_NEEDED` entry, in its order: a name with a slash is used as
/// it is; otherwise each directory of `DT_RPATH` (only when there is no `DT_RUNPATH`), of
/// `LD_LIBRARY_PATH` (an empty entry is the current directory), of `DT_RUNPATH`, then the
/// default directories (`/etc/ld.so.cache` aside, which this does not read). `$ORIGIN` and
/// `${ORIGIN}` stand for `origin`, the directory of the object that needs the library. The
/// `glibc-hwcaps` subdirectories the loader tries first are left out.
pub fn search_path(
    needed: &str,
    runpath: Option<&str>,
    rpath: Option<&str>,
    ld_library_path: Option<&str>,
    origin: &str,
) -> Vec<String> {
    if needed.contains('/') {
        return vec![needed.to_string()];
    }
    let expand = |dir: &str| dir.replace("${ORIGIN}", origin).replace("$ORIGIN", origin);
    let mut dirs: Vec<String> = Vec::new();
    if runpath.is_none() {
        dirs.extend(rpath.into_iter().flat_map(|r| r.split(':')).map(expand));
    }
    if let Some(lp) = ld_library_path {
        dirs.extend(lp.split([':', ';']).map(|d| {
            if d.is_empty() {
                ".".to_string()
            } else {
                expand(d)
            }
        }));
    }
    dirs.extend(runpath.into_iter().flat_map(|r| r.split(':')).map(expand));
    dirs.extend(
        ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
            .iter()
            .map(|d| d.to_string()),
    );
    dirs.retain(|d| !d.is_empty());
    let mut out: Vec<String> = Vec::new();
    for d in dirs {
        let candidate = format!("{}/{needed}", d.trim_end_matches('/'));
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

/// `[result, result + len rounded up to pages)` of a successful mmap.
pub fn range(m: &Syscall, page: u64) -> Option<(u64, u64)> {
    if !m.ok() {
        return None;
    }
    let start = m.ret_u64()?;
    let len = m.arg_u64(1)?;
    Some((start, start + len.div_ceil(page) * page))
}

pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Every shared object the loader mapped in `calls`: an `openat` that succeeded, the `mmap`s on
/// its descriptor until `close`, at least one of them executable (which rules out plain data
/// files such as `/etc/ld.so.cache`).
pub fn lib_loads(calls: &[Syscall], page: u64) -> Vec<LibLoad> {
    let mut loads = Vec::new();
    for (i, open) in calls.iter().enumerate() {
        if open.name != "openat" || !open.ok() {
            continue;
        }
        let (Some(path), Some(fd)) = (open.arg_str(1), open.ret) else {
            continue;
        };
        let name = file_name(path);
        let mut load = LibLoad {
            path: path.to_string(),
            failed_opens: calls[..i]
                .iter()
                .filter(|c| {
                    c.name == "openat"
                        && c.pid == open.pid
                        && !c.ok()
                        && c.arg_str(1).is_some_and(|p| file_name(p) == name)
                })
                .cloned()
                .collect(),
            open: open.clone(),
            fd,
            mmaps: Vec::new(),
            anon: Vec::new(),
            close: None,
            mprotects: Vec::new(),
        };
        let mut end = calls.len();
        for (j, c) in calls.iter().enumerate().skip(i + 1) {
            if c.pid != open.pid {
                continue;
            }
            if c.name == "close" && c.arg_i64(0) == Some(fd) {
                load.close = Some(c.clone());
                end = j;
                break;
            }
            if c.name == "mmap" && c.arg_i64(4) == Some(fd) && c.ok() {
                load.mmaps.push(c.clone());
            } else if c.name == "mmap" && c.arg_flags(3).contains(&"MAP_ANONYMOUS") {
                let inside = load.reservation(page).zip(range(c, page));
                if c.arg_flags(3).contains(&"MAP_FIXED")
                    && inside.is_some_and(|((rs, re), (s, e))| rs <= s && e <= re)
                {
                    load.anon.push(c.clone());
                }
            }
        }
        if !load
            .mmaps
            .iter()
            .any(|m| m.arg_flags(2).contains(&"PROT_EXEC"))
        {
            continue;
        }
        if let Some((rs, re)) = load.reservation(page) {
            load.mprotects = calls[end..]
                .iter()
                .filter(|c| {
                    c.name == "mprotect"
                        && c.pid == open.pid
                        && c.arg_u64(0)
                            .zip(c.arg_u64(1))
                            .is_some_and(|(a, l)| rs <= a && a + l <= re)
                })
                .cloned()
                .collect();
        }
        loads.push(load);
    }
    loads
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strace;

    /// `strace -f -e trace=openat,mmap,mprotect,munmap,close` of our foo, recorded.
    const FIXTURE: &str = include_str!("../tests/fixtures/strace-foo.txt");

    #[test]
    fn finds_the_load_of_libfoobar_in_a_real_trace_of_foo() {
        let calls = strace::parse(FIXTURE);
        let loads = lib_loads(&calls, 4096);
        let names: Vec<&str> = loads.iter().map(|l| file_name(&l.path)).collect();
        assert_eq!(names, ["libfoobar.so", "libgcc_s.so.1", "libc.so.6"]);
        let l = &loads[0];
        assert_eq!(l.fd, 3);
        assert_eq!(l.failed_opens.len(), 9, "the RUNPATH search before deps/");
        assert_eq!(l.mmaps.len(), 4);
        assert!(l.anon.is_empty());
        assert!(l.close.is_some());
        assert_eq!(
            l.reservation(4096),
            Some((0x7fc211eb0000, 0x7fc211eb0000 + 0x4f000))
        );
        assert!(!l.mmaps[0].arg_flags(3).contains(&"MAP_FIXED"));
        assert!(l.mmaps[1..]
            .iter()
            .all(|m| m.arg_flags(3).contains(&"MAP_FIXED")));
        assert_eq!(l.mmaps[1].arg_flags(2), ["PROT_READ", "PROT_EXEC"]);
        // RELRO: one mprotect inside libfoobar.so (the others belong to libc, libgcc_s, foo).
        assert_eq!(l.mprotects.len(), 1);
        assert_eq!(l.mprotects[0].arg_u64(0), Some(0x7fc211efa000));
        // libc needed an anonymous map for its .bss; the ld.so.cache mapping is no library.
        assert_eq!(loads[2].anon.len(), 1);
        assert_eq!(loads[2].anon[0].ret_u64(), Some(0x7fc211e79000));
    }

    #[test]
    fn holder_protection_and_base() {
        let calls = strace::parse(FIXTURE);
        let l = &lib_loads(&calls, 4096)[0];
        // In the reservation's first page: still the reservation.
        assert_eq!(l.holder_of(0x7fc211eb0100, 4096), Some(0));
        assert_eq!(l.prot_at(0x7fc211eb0100, 4096).unwrap(), "PROT_READ");
        // Code: the PROT_EXEC map replaced that part of the reservation.
        assert_eq!(l.holder_of(0x7fc211ec1d00, 4096), Some(1));
        assert_eq!(
            l.prot_at(0x7fc211ec1d00, 4096).unwrap(),
            "PROT_READ|PROT_EXEC"
        );
        // .data/.bss: the last read+write map.
        assert_eq!(l.holder_of(0x7fc211efd944, 4096), Some(3));
        assert_eq!(
            l.prot_at(0x7fc211efd944, 4096).unwrap(),
            "PROT_READ|PROT_WRITE"
        );
        // RELRO: mapped read+write, then mprotected read-only.
        assert_eq!(l.holder_of(0x7fc211efa010, 4096), Some(2));
        assert_eq!(l.prot_at(0x7fc211efa010, 4096).unwrap(), "PROT_READ");
        assert_eq!(l.holder_of(0x7fc211f00000, 4096), None);
        assert_eq!(l.prot_at(0x7fc211f00000, 4096), None);
        assert_eq!(l.base(0, 4096), Some(0x7fc211eb0000));
        assert_eq!(l.base(0x1234, 4096), Some(0x7fc211eaf000));
    }

    #[test]
    fn search_path_follows_ld_so_order() {
        // RUNPATH: LD_LIBRARY_PATH comes first, $ORIGIN is expanded, DT_RPATH is ignored.
        let dirs = search_path(
            "libfoobar.so",
            Some("$ORIGIN/deps:${ORIGIN}"),
            Some("/ignored"),
            Some("/l1::/l2/"),
            "/t/release",
        );
        assert_eq!(
            &dirs[..5],
            [
                "/l1/libfoobar.so",
                "./libfoobar.so",
                "/l2/libfoobar.so",
                "/t/release/deps/libfoobar.so",
                "/t/release/libfoobar.so",
            ]
        );
        assert!(dirs.contains(&"/usr/lib/libfoobar.so".to_string()));
        assert!(!dirs.iter().any(|d| d.starts_with("/ignored")));
        // The course's programs: no RUNPATH, no RPATH, LD_LIBRARY_PATH=. only.
        let dirs = search_path("foobar.so", None, None, Some("."), "/c");
        assert_eq!(dirs[0], "./foobar.so");
        // DT_RPATH counts when there is no RUNPATH, before LD_LIBRARY_PATH.
        let dirs = search_path("x.so", None, Some("$ORIGIN/lib"), Some("/l"), "/o");
        assert_eq!(&dirs[..2], ["/o/lib/x.so", "/l/x.so"]);
        // A name with a slash is a path.
        assert_eq!(
            search_path("./foobar.so", None, None, None, "/o"),
            ["./foobar.so"]
        );
    }

    #[test]
    fn first_load_of_our_own_binary() {
        let data = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // A PIE's first PT_LOAD starts at virtual address 0.
        assert_eq!(first_load_vaddr(&data), Some(0));
        assert_eq!(first_load_vaddr(b"not an ELF file"), None);
    }
}
