//! libfoobar.so is a real C library: a C program built with `cc` against `foobar.h` and the
//! built `.so` links, runs, and sees setbaz/getbaz/baz work together; and `dlopen` (through
//! libloading) resolves all three symbols.

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

const CLIENT: &str = r#"
#include <stdio.h>
#include "foobar.h"

int main(void) {
    setbaz(17);
    printf("getbaz=%d baz=%d\n", getbaz(), baz);
    baz = 99;                      /* write the variable directly ... */
    printf("getbaz=%d\n", getbaz()); /* ... and the library sees it */
    return getbaz() == 99 ? 0 : 3;
}
"#;

#[test]
fn a_c_program_links_against_the_so_and_runs() {
    let so = built_so();
    let dir = tempfile::Builder::new()
        .prefix("foobar-test-cc-")
        .tempdir()
        .unwrap();
    let src = dir.path().join("client.c");
    std::fs::write(&src, CLIENT).unwrap();
    let exe = dir.path().join("client");
    let lib_dir = so.parent().unwrap();
    let out = Command::new("cc")
        .arg(&src)
        .arg("-I")
        .arg(header_dir())
        .arg("-L")
        .arg(lib_dir)
        .arg("-lfoobar")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("cc is installed (the C toolchain is part of the lab)");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // cargo test puts target dirs on LD_LIBRARY_PATH, which beats the RUNPATH and could hand
    // the client an older uplifted copy; the test is about the .so named above.
    let run = Command::new(&exe)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "client exited {}: {}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "getbaz=17 baz=17\ngetbaz=99\n"
    );
}

#[test]
fn dlopen_resolves_setbaz_getbaz_and_baz() {
    let so = built_so();
    // SAFETY: libfoobar.so has no initialisers beyond the Rust runtime's; loading it runs
    // nothing unexpected.
    let lib = unsafe { libloading::Library::new(&so) }.expect("dlopen libfoobar.so");
    // SAFETY: the types match foobar.h: void setbaz(int), int getbaz(void), int baz.
    unsafe {
        let setbaz: libloading::Symbol<'_, extern "C" fn(i32)> = lib.get(b"setbaz\0").unwrap();
        let getbaz: libloading::Symbol<'_, extern "C" fn() -> i32> = lib.get(b"getbaz\0").unwrap();
        let baz: libloading::Symbol<'_, *mut i32> = lib.get(b"baz\0").unwrap();
        setbaz(1234);
        assert_eq!(getbaz(), 1234);
        assert_eq!(baz.read_volatile(), 1234);
        baz.write_volatile(-8);
        assert_eq!(getbaz(), -8);
    }
}

#[test]
fn the_header_declares_the_three_symbols() {
    let h = std::fs::read_to_string(header_dir().join("foobar.h")).unwrap();
    for decl in [
        "extern int baz;",
        "void setbaz(int value);",
        "int getbaz(void);",
    ] {
        assert!(h.contains(decl), "foobar.h lacks {decl}");
    }
}
