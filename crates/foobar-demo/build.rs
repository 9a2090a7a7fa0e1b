//! Tells the linker where cargo put libfoobar.so when building it as a dependency:
//! `<target>/<profile>/deps`, three levels above this build script's `OUT_DIR`
//! (`<target>/<profile>/build/foobar-demo-HASH/out`). The search path is passed on to the
//! packages that depend on this one (foo and bar), whose `-lfoobar` (from `#[link]` in
//! `src/sys.rs`) then finds it.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let deps = out
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is <target>/<profile>/build/<pkg>/out")
        .join("deps");
    println!("cargo:rustc-link-search=native={}", deps.display());
    println!("cargo:rerun-if-changed=build.rs");
}
