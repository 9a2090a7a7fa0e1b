//! Step 1: where glibc malloc switches from the heap to mmap, read from boundary tags.
//!
//! Not implemented yet: this binary says so and exits 1 rather than pretend to work.

fn main() {
    eprintln!("error: malloc-probe is not implemented yet");
    std::process::exit(1);
}
