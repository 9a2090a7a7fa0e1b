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
