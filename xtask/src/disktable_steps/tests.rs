//! `--program` on small C programs written for these tests, compiled with `cc` and run under
//! the real strace next to a course-shaped table: two readers (one maps, one uses read()), a
//! writer that grows the file with ftruncate + mremap, and a naive writer that maps past the
//! end of the file and dies of SIGBUS.

use std::path::{Path, PathBuf};

use crate::disktable_steps::program;
use lab_analysis::disktable::program::Role;
use lab_analysis::disktable::program::TABLE_NAME;

const HEADER: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
struct disktable { long count; int value[]; };
"#;

/// Maps table.bin and prints value[0..count), bounded by the file; with the argument `all`,
/// prints every value the file has room for (trusting the size, not count).
const READER_MMAP: &str = r#"
int main(int argc, char **argv) {
    int fd = open("table.bin", O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) { perror("table.bin"); return 1; }
    struct disktable *t = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED) { perror("mmap"); return 1; }
    long room = (st.st_size - (long)sizeof(long)) / (long)sizeof(int);
    long n = argc > 1 && strcmp(argv[1], "all") == 0 ? room : (t->count < room ? t->count : room);
    for (long i = 0; i < n; i++) printf("%d\n", t->value[i]);
    return 0;
}
"#;

/// Reads table.bin with read(2), one value per call.
const READER_READ: &str = r#"
int main(void) {
    int fd = open("table.bin", O_RDONLY);
    long count;
    if (fd < 0 || read(fd, &count, sizeof count) != sizeof count) { perror("table.bin"); return 1; }
    for (long i = 0; i < count; i++) {
        int v;
        if (read(fd, &v, sizeof v) != sizeof v) return 1;
        printf("value[%ld] = %d\n", i, v);
    }
    return 0;
}
"#;

/// Adds 300 values through the mapping, growing the file first when it is full.
const WRITER: &str = r#"
int main(void) {
    int fd = open("table.bin", O_RDWR);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) { perror("table.bin"); return 1; }
    size_t len = st.st_size;
    struct disktable *t = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED) { perror("mmap"); return 1; }
    size_t need = sizeof(long) + (t->count + 300) * sizeof(int);
    if (need > len) {
        if (ftruncate(fd, need * 2) < 0) { perror("ftruncate"); return 1; }
        t = mremap(t, len, need * 2, MREMAP_MAYMOVE);
        if (t == MAP_FAILED) { perror("mremap"); return 1; }
    }
    for (int k = 0; k < 300; k++) { t->value[t->count] = t->count; t->count++; }
    return 0;
}
"#;

/// Maps as much as count + 300 values need, without growing the file: SIGBUS past its end.
const NAIVE_WRITER: &str = r#"
int main(void) {
    int fd = open("table.bin", O_RDWR);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) { perror("table.bin"); return 1; }
    struct disktable *head = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    size_t need = sizeof(long) + (head->count + 300) * sizeof(int);
    struct disktable *t = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (t == MAP_FAILED) { perror("mmap"); return 1; }
    for (int k = 0; k < 300; k++) { t->value[t->count] = t->count; t->count++; }
    return 0;
}
"#;

/// A table like the course's: count, value[i] = i for i < fill, zeros to `file_bytes`.
fn write_table(dir: &Path, count: i64, fill: usize, file_bytes: usize) {
    let mut bytes = count.to_le_bytes().to_vec();
    for i in 0..fill as i32 {
        bytes.extend_from_slice(&i.to_le_bytes());
    }
    bytes.resize(file_bytes, 0);
    std::fs::write(dir.join(TABLE_NAME), bytes).unwrap();
}

/// Compiles `src` with cc; `None` (after a one-line notice) when cc or strace is missing and
/// this is not CI.
fn compile(dir: &Path, name: &str, src: &str) -> Option<PathBuf> {
    if let Err(e) = lab_trace::run::check() {
        crate::testing::skip(name, &e.to_string());
        return None;
    }
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, format!("{HEADER}{src}")).unwrap();
    let exe = dir.join(name);
    match std::process::Command::new("cc")
        .arg("-O0")
        .arg("-o")
        .arg(&exe)
        .arg(&c)
        .status()
    {
        Ok(s) if s.success() => Some(exe),
        Ok(s) => panic!("cc {name}.c failed: {s}"),
        Err(e) => {
            crate::testing::skip(
                name,
                &format!("cc is not installed (apt-get install gcc): {e}"),
            );
            None
        }
    }
}

/// Runs `exe args` as `role` next to a fresh table; returns the findings and the evidence.
fn judge(
    exe: &Path,
    args: &[&str],
    role: Role,
    table: (i64, usize, usize),
) -> (
    lab_analysis::disktable::program::Findings,
    lab_analysis::disktable::program::Evidence,
) {
    let tmp = crate::report::tests::tempdir("program");
    let dir = tmp.path().join("run");
    std::fs::create_dir(&dir).unwrap();
    write_table(&dir, table.0, table.1, table.2);
    let traces = super::run::traces_dir(tmp.path()).unwrap();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let e = program::measure(role, exe, &args, &dir, &traces).unwrap();
    (lab_analysis::disktable::program::analyze(&e), e)
}

const COURSE: (i64, usize, usize) = (1083, 8000, 114_340);

#[test]
fn a_reader_that_maps_prints_every_value_without_reads() {
    let tmp = crate::report::tests::tempdir("cc");
    let Some(exe) = compile(tmp.path(), "reader_mmap", READER_MMAP) else {
        return;
    };
    let (f, e) = judge(&exe, &[], Role::Reader, COURSE);
    assert!(f.opened_table && f.mapped_table, "{f:?}");
    assert_eq!((f.read_calls_on_table, f.write_calls_on_table), (0, 0));
    assert!(f.printed_all_values);
    assert!(!f.printed_past_count);
    assert_eq!(f.printed_numbers, 1083);
    assert_eq!((f.count_before, f.count_after), (Some(1083), Some(1083)));
    assert_eq!((f.signal.as_deref(), f.exit_code), (None, Some(0)));
    assert_eq!(e.after, e.before, "a reader changes nothing");
    // With `-- all` it trusts the file's size and prints the zeros past count too.
    let (all, _) = judge(&exe, &["all"], Role::Reader, COURSE);
    assert!(all.printed_all_values && all.printed_past_count);
    assert_eq!(all.printed_numbers, 28_583);
}

#[test]
fn a_reader_that_uses_read_is_seen_not_to_map() {
    let tmp = crate::report::tests::tempdir("cc");
    let Some(exe) = compile(tmp.path(), "reader_read", READER_READ) else {
        return;
    };
    let (f, _) = judge(&exe, &[], Role::Reader, COURSE);
    assert!(f.opened_table && !f.mapped_table, "{f:?}");
    assert_eq!(f.read_calls_on_table, 1 + 1083);
    assert!(
        f.printed_all_values,
        "value[i] = v lines are read by their last number"
    );
    assert_eq!(f.signal, None);
}

#[test]
fn a_writer_that_grows_the_file_adds_300() {
    let tmp = crate::report::tests::tempdir("cc");
    let Some(exe) = compile(tmp.path(), "writer", WRITER) else {
        return;
    };
    // 100 values short of full: the writer must ftruncate and mremap.
    let (f, _) = judge(&exe, &[], Role::Writer, (28_483, 28_483, 114_340));
    assert!(f.mapped_table, "{f:?}");
    assert_eq!(
        (f.ftruncate_calls_on_table, f.mremap_calls_on_table),
        (1, 1)
    );
    assert_eq!(f.write_calls_on_table, 0);
    assert_eq!(f.count_grew_by, Some(300));
    assert!(f.values_ok && f.appended_300);
    assert!(f.file_bytes_after > f.file_bytes_before);
    assert_eq!(f.signal, None);
}

#[test]
fn a_naive_writer_dies_of_sigbus_in_a_page_past_the_file() {
    let tmp = crate::report::tests::tempdir("cc");
    let Some(exe) = compile(tmp.path(), "naive", NAIVE_WRITER) else {
        return;
    };
    // Full: every store lands past the end of the file.
    let (f, e) = judge(&exe, &[], Role::Writer, (28_583, 28_583, 114_340));
    assert_eq!(f.signal.as_deref(), Some("SIGBUS"), "{f:?}");
    let fault = f.fault.as_ref().expect("the fault located");
    assert_eq!(
        fault.region,
        lab_analysis::disktable::fault::Region::MappedPastEof
    );
    assert!(fault.as_expected);
    // The first store with no file page behind it: the page after the file's last page.
    assert_eq!(fault.offset, Some(114_688));
    assert_eq!(fault.past_file_end, Some(348));
    assert_eq!(f.fault_address, Some(format!("{:#x}", fault.address)));
    // The 87 stores in the last page landed in memory and were counted (-O0 stores count at
    // every step), not saved.
    assert_eq!(f.count_grew_by, Some(87));
    assert!(!f.values_ok && !f.appended_300);
    assert_eq!(f.file_bytes_after, f.file_bytes_before);
    let text: String = lab_analysis::disktable::program::explain(&f, &e)
        .iter()
        .map(|b| format!("{b:?}"))
        .collect();
    assert!(text.contains("SIGBUS (BUS_ADRERR)"), "{text}");
}

#[test]
fn a_missing_program_is_an_error_naming_it() {
    let tmp = crate::report::tests::tempdir("program");
    write_table(tmp.path(), 1, 1, 16);
    let e = program::measure(
        Role::Reader,
        Path::new("./no/such/reader"),
        &[],
        tmp.path(),
        tmp.path(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("--program ./no/such/reader: no such file"),
        "{e}"
    );
}
