//! Step 5: processes racing on counters in a shared file mapping.
//!
//! Not implemented yet: this binary says so and exits 1 rather than pretend to work.

fn main() {
    eprintln!("error: race is not implemented yet");
    std::process::exit(1);
}
