//! The build script of foo and bar (both name this file as `build` in their Cargo.toml):
//! records a RUNPATH of `$ORIGIN/deps:$ORIGIN` in the executable, so the dynamic loader finds
//! libfoobar.so from any working directory: in `deps/` beside the program (where cargo always
//! builds it, also for `cargo build -p foo` alone in a fresh target dir), or beside the program
//! itself (a program copied elsewhere with its library).
//!
//! `deps/` comes first on purpose: cargo refreshes the copy it "uplifts" to `target/release/`
//! only when foobar itself is built (`-p foobar` or the whole workspace), so after `cargo build
//! -p foo` that copy can be stale, while `deps/libfoobar.so` is always the one foo was just
//! linked against (we hit exactly this: an old uplifted copy without `getbaz`).
//! `--enable-new-dtags` makes it a DT_RUNPATH (searched after LD_LIBRARY_PATH) rather than the
//! older DT_RPATH.

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--enable-new-dtags,-rpath,$ORIGIN/deps:$ORIGIN");
    println!("cargo:rerun-if-changed=../foobar-demo/bin-build.rs");
}
