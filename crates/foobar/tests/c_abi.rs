//! libfoobar.so is a real C library with the course's interface: C programs written against the
//! course's `foobar.h` link with `cc prog.c -L DIR -lfoobar` and run with `LD_LIBRARY_PATH=DIR`,
//! one using setbaz/getbaz/bazaddr as the course's foo and bar do, one naming `baz` directly
//! (a COPY relocation); and `dlopen` (through libloading) resolves all four symbols.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The libfoobar.so cargo built for this test: `<target>/<profile>/deps/`, where this test
/// executable also lives.
fn built_so() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let so = deps.join("libfoobar.so");
    assert!(
        so.is_file(),
        "cargo did not build {} (crate-type must include cdylib)",
        so.display()
    );
    so
}

fn header_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Prints `MAPS <line>` for every line of /proc/self/maps, so the test can place addresses.
const DUMP_MAPS: &str = r#"
static void dump_maps(void) {
    char line[4096];
    FILE *f = fopen("/proc/self/maps", "r");
    while (f && fgets(line, sizeof line, f))
        printf("MAPS %s", line);
    if (f)
        fclose(f);
}
"#;

/// Written against the course's header the way the course's foo.c and bar.c use it: setbaz,
/// getbaz (once with an argument, as bar.c calls it), bazaddr; never `baz` itself.
const COURSE_CLIENT: &str = r#"
int main(void) {
    setbaz(17);
    printf("baz at %p is %d\n", (void *)bazaddr(), getbaz());
    int r = setbaz(5);
    printf("setbaz returned %d, getbaz %d, *bazaddr %d\n", r, getbaz(), *bazaddr());
    printf("bar set baz at %p to %d\n", (void *)bazaddr(), getbaz(r));
    dump_maps();
    return getbaz() == 5 ? 0 : 3;
}
"#;

/// Refers to `baz` directly: linked with a COPY relocation, so `baz` lives in the executable.
const BAZ_CLIENT: &str = r#"
int main(void) {
    setbaz(17);
    printf("getbaz=%d baz=%d\n", getbaz(), baz);
    baz = 99;                          /* write the variable directly ... */
    printf("getbaz=%d\n", getbaz());  /* ... and the library sees it */
    printf("&baz %p bazaddr %p\n", (void *)&baz, (void *)bazaddr());
    dump_maps();
    return getbaz() == 99 ? 0 : 3;
}
"#;

/// Compiles `body` in a fresh directory as a student would: the course's `#include "foobar.h"`
/// beside the program, `libfoobar.so` in `lib/`, `cc prog.c -L lib -lfoobar`; runs it with
/// `LD_LIBRARY_PATH=lib`. Returns the program's stdout and its path.
fn compile_and_run(name: &str, body: &str) -> (String, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("foobar-test-{name}-"))
        .tempdir()
        .unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    std::fs::copy(built_so(), lib.join("libfoobar.so")).unwrap();
    std::fs::copy(header_dir().join("foobar.h"), dir.path().join("foobar.h")).unwrap();
    let src = format!("#include <stdio.h>\n#include \"foobar.h\"\n{DUMP_MAPS}{body}");
    std::fs::write(dir.path().join("prog.c"), src).unwrap();
    let out = Command::new("cc")
        .current_dir(dir.path())
        .args(["prog.c", "-L", "lib", "-lfoobar", "-o", "prog"])
        .output()
        .expect("cc is installed (the C toolchain is part of the lab)");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(dir.path().join("prog"))
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "client exited {}: {}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let exe = dir.path().join("prog");
    // The directory goes; the path stays meaningful for matching maps lines.
    (String::from_utf8(run.stdout).unwrap(), exe)
}

/// The `(perms, path)` of the maps line (from the client's `MAPS` dump) holding `addr`.
fn mapping_of(out: &str, addr: u64) -> (String, String) {
    out.lines()
        .filter_map(|l| l.strip_prefix("MAPS "))
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (s, e) = f.first()?.split_once('-')?;
            let (s, e) = (
                u64::from_str_radix(s, 16).ok()?,
                u64::from_str_radix(e, 16).ok()?,
            );
            (s <= addr && addr < e).then(|| (f[1].to_string(), f.get(5).unwrap_or(&"").to_string()))
        })
        .unwrap_or_else(|| panic!("{addr:#x} is in no mapping"))
}

fn hex_after(out: &str, prefix: &str) -> u64 {
    let rest = out
        .lines()
        .find_map(|l| l.split_once(prefix).map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no {prefix:?} in {out}"));
    let word = rest.split_whitespace().next().unwrap();
    u64::from_str_radix(word.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn a_client_of_the_course_header_links_with_dash_l_and_runs() {
    let (out, _) = compile_and_run("course", COURSE_CLIENT);
    let addr = hex_after(&out, "baz at ");
    assert!(out.contains(&format!("baz at {addr:#x} is 17\n")), "{out}");
    assert!(
        out.contains("setbaz returned 5, getbaz 5, *bazaddr 5\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("bar set baz at {addr:#x} to 5\n")),
        "{out}"
    );
    // bazaddr() points into the library's own private data mapping.
    let (perms, path) = mapping_of(&out, addr);
    assert_eq!(perms, "rw-p", "{out}");
    assert!(path.ends_with("/lib/libfoobar.so"), "{path}");
}

#[test]
fn a_client_that_names_baz_shares_its_copy_with_the_library() {
    let (out, exe) = compile_and_run("baz", BAZ_CLIENT);
    assert!(out.starts_with("getbaz=17 baz=17\ngetbaz=99\n"), "{out}");
    let amp = hex_after(&out, "&baz ");
    let via = hex_after(&out, "bazaddr ");
    assert_eq!(amp, via, "the library uses the client's copy: {out}");
    // The COPY relocation put baz in the executable's own writable data, not in the library.
    let (perms, path) = mapping_of(&out, amp);
    assert_eq!(perms, "rw-p", "{out}");
    assert_eq!(Path::new(&path), exe, "{out}");
}

#[test]
fn dlopen_resolves_setbaz_getbaz_bazaddr_and_baz() {
    let so = built_so();
    // SAFETY: libfoobar.so has no initialisers beyond the Rust runtime's; loading it runs
    // nothing unexpected.
    let lib = unsafe { libloading::Library::new(&so) }.expect("dlopen libfoobar.so");
    // SAFETY: the types match foobar.h: void setbaz(int), int getbaz(void), int baz.
    unsafe {
        let setbaz: libloading::Symbol<'_, extern "C" fn(i32) -> i32> =
            lib.get(b"setbaz\0").unwrap();
        let getbaz: libloading::Symbol<'_, extern "C" fn() -> i32> = lib.get(b"getbaz\0").unwrap();
        let bazaddr: libloading::Symbol<'_, extern "C" fn() -> *mut i32> =
            lib.get(b"bazaddr\0").unwrap();
        let baz: libloading::Symbol<'_, *mut i32> = lib.get(b"baz\0").unwrap();
        assert_eq!(setbaz(1234), 1234);
        assert_eq!(getbaz(), 1234);
        assert_eq!(baz.read_volatile(), 1234);
        assert_eq!(bazaddr(), *baz, "bazaddr() is the address of baz");
        baz.write_volatile(-8);
        assert_eq!(getbaz(), -8);
    }
}

#[test]
fn the_header_declares_the_course_interface() {
    let h = std::fs::read_to_string(header_dir().join("foobar.h")).unwrap();
    for decl in [
        "extern int baz;",
        "int getbaz();",
        "int setbaz(int newbaz);",
        "int* bazaddr();",
    ] {
        assert!(h.contains(decl), "foobar.h lacks {decl}");
    }
}
