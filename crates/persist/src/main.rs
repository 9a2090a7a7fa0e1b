//! Steps 2 and 3: a hash table that lives in a file and is used through mmap.
//!
//! Not implemented yet: this binary says so and exits 1 rather than pretend to work.

fn main() {
    eprintln!("error: persist is not implemented yet");
    std::process::exit(1);
}
