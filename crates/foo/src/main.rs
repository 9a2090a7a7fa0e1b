//! Step 4: sets baz in libfoobar.so to 17 and watches it.
//!
//! Not implemented yet: this binary says so and exits 1 rather than pretend to work.

fn main() {
    eprintln!("error: foo is not implemented yet");
    std::process::exit(1);
}
