//! The terms a second-year student may not know, explained once: the report's glossary (`<dl>`)
//! and, on the terminal, a few words at a term's first use in a run ([`first_uses`]).

/// A term, the words that mark its use in the text, and its explanation.
pub struct Term {
    pub term: &'static str,
    /// Case-sensitive words whose first appearance in a run is the term's first use.
    pub marks: &'static [&'static str],
    pub meaning: &'static str,
}

/// Every term, in the order the lab first meets them.
pub const TERMS: &[Term] = &[
    Term {
        term: "boundary tag",
        marks: &["tag"],
        meaning: "the 8 bytes before a malloc'd pointer: the chunk's size, with flag bits in its \
                  three lowest bits",
    },
    Term {
        term: "chunk",
        marks: &["chunk"],
        meaning: "the block malloc hands out: the bytes asked for plus its header, rounded up to \
                  16 bytes",
    },
    Term {
        term: "PREV_INUSE",
        marks: &["PREV_INUSE"],
        meaning: "bit 0 of a chunk's size field: set when the chunk just before it is in use",
    },
    Term {
        term: "IS_MMAPPED",
        marks: &["IS_MMAPPED"],
        meaning: "bit 1 of a chunk's size field: set when malloc got the chunk from its own mmap",
    },
    Term {
        term: "tcache",
        marks: &["tcache"],
        meaning: "glibc's per-thread cache of recently freed small chunks; they stay marked in \
                  use, so reusing them needs no locking",
    },
    Term {
        term: "fastbin",
        marks: &["fastbin"],
        meaning: "glibc's lists of freed small chunks, also left marked in use until a large \
                  malloc consolidates them",
    },
    Term {
        term: "top chunk",
        marks: &["top chunk", "the top"],
        meaning: "the free space at the end of the heap; malloc carves new chunks from it and \
                  grows it with brk",
    },
    Term {
        term: "arena",
        marks: &["arena"],
        meaning: "one heap malloc manages (the main one grows with brk, others are mmapped)",
    },
    Term {
        term: "NON_MAIN_ARENA",
        marks: &["NON_MAIN_ARENA"],
        meaning: "bit 2 of a chunk's size field: set when the chunk belongs to a thread arena, \
                  not to the main arena that grows with brk",
    },
    Term {
        term: "HEAP_MAX",
        marks: &["HEAP_MAX"],
        meaning: "glibc's HEAP_MAX_SIZE (64 MiB on 64-bit): a thread arena's heap reserves this \
                  much address space, aligned to it, and makes only the used part read-write",
    },
    Term {
        term: "LD_PRELOAD",
        marks: &["LD_PRELOAD"],
        meaning: "an environment variable naming shared objects the dynamic loader loads first, \
                  so their malloc and free replace glibc's in the program",
    },
    Term {
        term: "brk",
        marks: &["brk"],
        meaning: "the system call that moves the end of the heap, making it larger or smaller",
    },
    Term {
        term: "page cache",
        marks: &["page cache", "page-cache"],
        meaning: "the kernel's copy of file pages in RAM; a file mapping shows these very pages",
    },
    Term {
        term: "major fault",
        marks: &["major fault", "major pf"],
        meaning: "a page fault the kernel served by reading the disk (a minor one finds the page \
                  in RAM)",
    },
    Term {
        term: "cgroup",
        marks: &["cgroup"],
        meaning: "a control group: the kernel limits and counts the memory of the processes in it",
    },
    Term {
        term: "OOM killer",
        marks: &["OOM"],
        meaning: "the kernel's last resort when memory runs out: it kills a process with SIGKILL",
    },
    Term {
        term: "SIGSEGV",
        marks: &["SIGSEGV"],
        meaning: "the signal for an access to an address no mapping covers (or a forbidden one)",
    },
    Term {
        term: "SIGBUS",
        marks: &["SIGBUS"],
        meaning: "the signal for an access inside a file mapping but to a page wholly past the \
                  file's end",
    },
    Term {
        term: "EOF",
        marks: &["EOF"],
        meaning: "end of file: the file's length; a mapping may reach past it, the file does not",
    },
    Term {
        term: "MAP_SHARED",
        marks: &["MAP_SHARED"],
        meaning: "writes go to the file (page cache) and every process mapping it sees them",
    },
    Term {
        term: "MAP_PRIVATE",
        marks: &["MAP_PRIVATE"],
        meaning: "a write copies the page for this process only (copy-on-write); the file is not \
                  changed",
    },
    Term {
        term: "MAP_FIXED",
        marks: &["MAP_FIXED"],
        meaning: "map at exactly this address, replacing whatever was mapped there",
    },
    Term {
        term: "ftruncate",
        marks: &["ftruncate"],
        meaning: "sets a file's length; growing it adds zero bytes",
    },
    Term {
        term: "mremap",
        marks: &["mremap"],
        meaning: "grows or shrinks a mapping, moving it if MREMAP_MAYMOVE allows",
    },
    Term {
        term: "RELRO",
        marks: &["RELRO"],
        meaning: "relocation read-only: data the loader fixes up at start-up (the GOT), then \
                  makes read-only with mprotect",
    },
    Term {
        term: "GOT",
        marks: &["GOT"],
        meaning: "global offset table: the addresses of a library's symbols, filled in by the \
                  loader, read by code",
    },
    Term {
        term: "PLT",
        marks: &["PLT", ".plt"],
        meaning: "procedure linkage table: small stubs through which calls reach a shared \
                  library's functions",
    },
    Term {
        term: "COPY relocation",
        marks: &["COPY", "R_X86_64_COPY"],
        meaning: "the executable gets its own copy of a library variable in its .bss; the \
                  library then uses that copy",
    },
    Term {
        term: "Rss",
        marks: &["Rss"],
        meaning: "resident set size: the memory of a mapping now in RAM, counted in full in \
                  every process",
    },
    Term {
        term: "Pss",
        marks: &["Pss"],
        meaning: "proportional set size: Rss with each page divided by the number of processes \
                  mapping it",
    },
    Term {
        term: "PFN",
        marks: &["PFN", "frame"],
        meaning: "page frame number: which physical page of RAM a virtual page maps \
                  (/proc/PID/pagemap, visible to root only)",
    },
    Term {
        term: "cache line",
        marks: &["cache line"],
        meaning: "the 64 bytes a CPU cache moves as one unit; a CPU must own a line to write it",
    },
    Term {
        term: "lock prefix",
        marks: &["lock xadd", "lock incq", "locked"],
        meaning: "makes one read-modify-write instruction atomic: no other CPU can touch the \
                  line in between",
    },
    Term {
        term: "futex",
        marks: &["futex"],
        meaning: "fast user-space mutex: a system call to sleep until a word in (shared) memory \
                  changes, and to wake sleepers",
    },
];

/// For each line of a run's text, the terms first used on it (each term once per run, in the
/// order of `TERMS`). `seen` carries what earlier steps already explained.
pub fn first_uses(line: &str, seen: &mut Vec<&'static str>) -> Vec<&'static Term> {
    let mut found = Vec::new();
    for t in TERMS {
        if seen.contains(&t.term) {
            continue;
        }
        if t.marks.iter().any(|m| contains_word(line, m)) {
            seen.push(t.term);
            found.push(t);
        }
    }
    found
}

/// `word` in `line` not inside a longer word (`tag` is not in `stage`, `GOT` not in `GOTO`).
fn contains_word(line: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_term_is_explained_once_at_its_first_use() {
        let mut seen = Vec::new();
        let first = first_uses("the tcache kept it; a fastbin too", &mut seen);
        let names: Vec<&str> = first.iter().map(|t| t.term).collect();
        assert_eq!(names, ["tcache", "fastbin"]);
        assert!(first_uses("tcache again", &mut seen).is_empty());
        assert!(first_uses("a stage of GOTO", &mut seen).is_empty());
        let got: Vec<&str> = first_uses("the GOT, then RELRO", &mut seen)
            .iter()
            .map(|t| t.term)
            .collect();
        assert_eq!(got, ["RELRO", "GOT"]);
    }

    #[test]
    fn the_course_terms_are_all_there() {
        for term in [
            "tcache",
            "fastbin",
            "top chunk",
            "arena",
            "RELRO",
            "GOT",
            "PLT",
            "COPY relocation",
            "Pss",
            "Rss",
            "PFN",
            "page cache",
            "cgroup",
            "futex",
            "SIGBUS",
            "SIGSEGV",
            "MAP_SHARED",
            "MAP_PRIVATE",
        ] {
            assert!(TERMS.iter().any(|t| t.term == term), "{term} missing");
        }
        for t in TERMS {
            assert!(!t.marks.is_empty() && t.meaning.len() < 160, "{}", t.term);
        }
    }
}
