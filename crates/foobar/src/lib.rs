//! `libfoobar.so`: the shared library of the assignment's step 4, a real C library with the
//! course's interface (see `foobar.h`): `int setbaz(int newbaz)`, `int getbaz()`,
//! `int *bazaddr()` and the global `int baz`.
//!
//! Build it with `cargo build -p foobar`; cargo writes `target/debug/libfoobar.so` (and, when
//! another package depends on it, `target/debug/deps/libfoobar.so`). A C program written against
//! the course's header uses it with `cc prog.c -I crates/foobar -L target/debug -lfoobar` and
//! runs with `LD_LIBRARY_PATH=target/debug`; `foo` and `bar` link it dynamically.
//! The point of the step is what the dynamic loader does with it: the code is mapped read+exec
//! and shared in RAM between every process, while `baz` lives in a private copy-on-write data
//! mapping, so each process has its own.
//!
//! A production library would keep its state behind functions (no exported mutable global: a
//! C client that names `baz` gets a COPY relocation, which freezes the variable's size into
//! every executable), version its symbols and its SONAME (`libfoobar.so.1`), and be thread safe;
//! `baz` here is a plain `int` on purpose, because that is what the assignment studies.

// foo, bar and baz are the assignment's names, not placeholders.
#![allow(clippy::disallowed_names)]

use std::ffi::c_int;

/// The library's global variable, exported under the C name `baz`.
///
/// It is a C `int` that C programs read and write directly, so it has to be a `static mut`.
/// Rust code in this crate reaches it only through raw-pointer volatile accesses (never a
/// reference), so a C program writing it behind our back is not undefined behaviour here.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut baz: c_int = 0;

/// `int setbaz(int newbaz)`: sets [`baz`] to `newbaz` and returns the new value.
#[no_mangle]
pub extern "C" fn setbaz(newbaz: c_int) -> c_int {
    // SAFETY: `baz` is a valid, aligned `int` for the whole life of the library; the write goes
    // through a raw pointer (no reference is created). Concurrent use from several threads is
    // not supported, exactly as for the C global it stands for (documented in foobar.h).
    unsafe { std::ptr::addr_of_mut!(baz).write_volatile(newbaz) };
    newbaz
}

/// `int getbaz(void)`: returns the current value of [`baz`].
#[no_mangle]
pub extern "C" fn getbaz() -> c_int {
    // SAFETY: as in `setbaz`: a raw-pointer read of a valid, aligned `int`.
    unsafe { std::ptr::addr_of!(baz).read_volatile() }
}

/// `int *bazaddr()`: the address of [`baz`] as this library's code reaches it (through the
/// GOT: if an executable holds a COPY of `baz`, that copy's address).
#[no_mangle]
pub extern "C" fn bazaddr() -> *mut c_int {
    // Taking the address creates no reference and reads nothing.
    std::ptr::addr_of_mut!(baz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setbaz_then_getbaz_round_trips_and_bazaddr_points_at_baz() {
        assert_eq!(setbaz(17), 17);
        assert_eq!(getbaz(), 17);
        assert_eq!(setbaz(-5), -5);
        assert_eq!(getbaz(), -5);
        // SAFETY: a raw-pointer read of the valid `int` that setbaz just wrote.
        assert_eq!(unsafe { bazaddr().read_volatile() }, -5);
        assert_eq!(bazaddr(), std::ptr::addr_of_mut!(baz));
    }
}
