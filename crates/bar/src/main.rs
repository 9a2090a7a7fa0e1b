//! `bar`: sets `baz` in libfoobar.so to 1, then counts it up (foo never sees it).
//!
//! Step 4 of mmap-lab. It links libfoobar.so dynamically (`DT_NEEDED libfoobar.so`, RUNPATH
//! `$ORIGIN/deps:$ORIGIN`), prints its pid and the addresses of `setbaz`, `getbaz` and `baz` with
//! the `/proc/self/maps` line each lies in, then one `baz = VALUE` line per observation. Run
//! `target/release/foo` and `target/release/bar` in two terminals, or `cargo xtask run-step 4`
//! to see under strace how the loader mapped the library. Everything but the role lives in the
//! `foobar-demo` crate, shared with `foo`.
//!
//! A production program would share state between processes on purpose (a `MAP_SHARED`
//! mapping) instead of relying on a library global, which is private to each process.

fn main() -> std::process::ExitCode {
    foobar_demo::main(foobar_demo::Role::Bar)
}
