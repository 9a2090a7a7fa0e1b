//! What step 4 reads from the run: everything its answers rest on, serialisable, so a run can
//! be recorded (`--save-evidence`) and explained again elsewhere (`--evidence`).

use serde::{Deserialize, Serialize};

use lab_trace::elf::{DynSymbol, Sections};
use lab_trace::maps::Maps;
use lab_trace::pagemap::PageEntry;
use lab_trace::smaps::SmapsEntry;
use lab_trace::Trace;

/// One run of step 4: two programs that load the same library, side by side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    pub page_size: u64,
    /// Our foo and bar, or the programs given with `--foo`/`--bar`.
    pub source: Source,
    /// The library's pages in the page cache before the first program started, and the
    /// eviction that should have emptied it.
    pub page_cache: PageCache,
    /// The two programs, in the order they were started (foo, then bar).
    pub programs: Vec<ProgramRun>,
    /// baz read from both processes' memory at the same moments, while both ran.
    pub samples: Vec<Sample>,
    /// A C client that names `baz` directly, built against the library foo loaded.
    pub client: Client,
}

/// Whose programs ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The lab's foo and bar (crates/foo, crates/bar), built here.
    Ours,
    /// `--foo PATH --bar PATH`.
    Given,
}

/// The library file in the page cache around the eviction (`mincore(2)` counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCache {
    /// The file the first program was expected to load (its DT_NEEDED entries along ld.so's
    /// search path, the one that exports `baz`), if one was found before the run.
    pub library: Option<String>,
    pub pages_total: u64,
    /// Resident before the eviction.
    pub resident_before: u64,
    pub eviction: Eviction,
    /// Resident after the eviction, just before the first program started.
    pub resident_after: u64,
    /// Why `mincore(2)` cannot be believed for this file, when it cannot: since Linux 5.2 it
    /// reports every page of a file resident to a caller that neither owns the file nor may
    /// open it for writing (`can_do_mincore` in mm/mincore.c). Then every count of resident
    /// pages here and in [`ProgramRun::resident_when_ready`] is that, not a measurement.
    /// `None`: it can (or the evidence was recorded before the lab checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mincore_blind: Option<String>,
}

/// What `fsync(2)` + `posix_fadvise(POSIX_FADV_DONTNEED)` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Eviction {
    /// Both calls succeeded (whether pages were dropped shows in `resident_after`).
    Asked,
    /// A call failed.
    Failed { error: String },
    /// Not attempted.
    NotTried { why: String },
}

/// One program's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgramRun {
    /// `foo` or `bar`: its part in the step.
    pub name: String,
    pub path: String,
    /// From the program's ELF file: DT_NEEDED, DT_RUNPATH, DT_RPATH.
    pub needed: Vec<String>,
    pub runpath: Option<String>,
    pub rpath: Option<String>,
    /// The program's own dynamic relocation against `baz`, if it has one.
    pub baz_relocation: Option<String>,
    /// `LD_LIBRARY_PATH` as the program ran with it (`None`: unset).
    pub ld_library_path: Option<String>,
    /// The program's pid (not strace's).
    pub pid: u32,
    /// What showed it had loaded the library and started its work.
    pub ready: Ready,
    /// `/proc/PID/stat` fault counters when it was ready, and after the sampling.
    pub faults_ready: Faults,
    pub faults_end: Faults,
    /// The library's pages in the page cache when this program was ready (`mincore(2)`).
    pub resident_when_ready: Option<u64>,
    /// The library exporting `baz`, as this process mapped it.
    pub library: Library,
    /// Where this process's baz really lives, read from its memory (`None`: not found, or
    /// evidence recorded before the lab looked: then baz is taken to be the library's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baz_home: Option<BazHome>,
    /// `/proc/PID/maps` while both ran.
    pub maps: Maps,
    /// `/proc/PID/smaps` entries of the library's file, while both ran.
    pub smaps: Vec<SmapsEntry>,
    /// `/proc/PID/pagemap` entries of every page of the library's mappings (and of an anonymous
    /// mapping right after them), while both ran.
    pub pages: Vec<Page>,
    /// What the program printed (our foo and bar print JSON events; others' output is kept as
    /// text and not interpreted).
    pub printed: Printed,
    /// `strace -f -e trace=openat,read,pread64,mmap,mprotect,munmap,close` of the whole run.
    pub trace: Trace,
    /// How it ended when stopped (`exited with status 0`, `killed by SIGINT`).
    pub ended: String,
}

/// How the lab knew a program had loaded the library and reached its loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Ready {
    /// Our programs: their first observation event (printed after `setbaz`).
    FirstObservation,
    /// The library appeared in /proc/PID/maps and then the process slept (state `S` in
    /// /proc/PID/stat: waiting in its loop), after `ms` milliseconds.
    Blocked { ms: u64 },
    /// The library was mapped but the process never slept within the bound.
    StillRunning { ms: u64 },
}

/// `minflt` and `majflt` of `/proc/PID/stat` (`proc(5)`).
pub type Faults = lab_trace::procstat::PageFaults;

/// The library that exports `baz`, as one process mapped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Library {
    /// As /proc/PID/maps names it.
    pub path: String,
    pub dev: (u32, u32),
    pub inode: u64,
    /// Its defined dynamic symbols among setbaz, getbaz, baz and bazaddr (`.dynsym`).
    pub symbols: Vec<DynSymbol>,
    /// The virtual address of its first PT_LOAD segment (0 for what linkers make).
    pub first_load_vaddr: u64,
    /// The library's own dynamic relocation against `baz` (it reaches baz through its GOT).
    pub baz_relocation: Option<String>,
    /// The load bias read from /proc/PID/maps, which the samples of baz used.
    pub base: u64,
    /// Its loaded sections, from its own section headers: what each mapping holds. Absent in
    /// evidence recorded before the lab read them (then: "sections not recorded").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sections: Option<Sections>,
}

/// Where a process's baz is: the address the library's own relocation against baz (its GOT
/// slot, `R_X86_64_GLOB_DAT`) was resolved to by ld.so, read from /proc/PID/mem. With an
/// `R_X86_64_COPY` relocation in the program, that is the program's copy in its own data, not
/// the library's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BazHome {
    /// baz's address in this process.
    pub address: u64,
    /// The GOT slot read (the library's load bias plus the relocation's offset); `None`: the
    /// library has no relocation against baz, so its code reaches its own baz directly.
    pub got_slot: Option<u64>,
    /// The file whose mapping holds the address, as /proc/PID/maps names it (the anonymous
    /// mapping right after a file's data counts as that file's: the rest of its .bss).
    pub object: String,
    /// The object is the program's executable (/proc/PID/exe), not the library.
    pub in_program: bool,
    /// baz's page in /proc/PID/pagemap, read while both ran.
    pub page: Option<PageEntry>,
}

/// One page of a pagemap read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub addr: u64,
    pub entry: PageEntry,
}

/// What a program printed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Printed {
    /// Our programs: the symbol addresses of their start event.
    pub symbols: Vec<PrintedSymbol>,
    /// Our programs: the baz of each observation event.
    pub values: Vec<i64>,
    /// Others' programs: the first lines of stdout (block-buffered into a file, so often
    /// nothing before they are stopped).
    pub stdout: String,
    /// The first lines of stderr.
    pub stderr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintedSymbol {
    pub name: String,
    pub address: u64,
}

/// baz read from each program's memory (`/proc/PID/mem`), one read right after the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the second program was ready.
    pub ms: u64,
    /// One value per program, in the order of [`Evidence::programs`] (`None`: unreadable).
    pub baz: Vec<Option<i64>>,
}

/// The C client that names `baz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Client {
    Ran(ClientRun),
    Skipped { why: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRun {
    /// The `cc` command line.
    pub command: String,
    /// The library it was linked against.
    pub library: String,
    /// What it printed: `baz: 0x…`, `getbaz: 0x…`, the two checks, then its /proc/self/maps.
    pub output: String,
    /// Its dynamic relocation against `baz`.
    pub relocation: Option<String>,
}
