//! Gives libfoobar.so a SONAME, so that programs linked against it record `DT_NEEDED
//! libfoobar.so` whatever path the linker found it by.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfoobar.so");
    println!("cargo:rerun-if-changed=build.rs");
}
