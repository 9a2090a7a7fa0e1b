//! Step 4: sets baz in libfoobar.so to 1 and counts it up.
//!
//! Not implemented yet: this binary says so and exits 1 rather than pretend to work.

fn main() {
    eprintln!("error: bar is not implemented yet");
    std::process::exit(1);
}
