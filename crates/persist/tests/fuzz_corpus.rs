//! Replays the fuzzer's committed corpus (`fuzz/corpus/persist_file/`, seeds and the cases
//! the fuzzer found) through `persist::fuzz::fuzz_one`, the same code the libFuzzer target
//! runs, so every `cargo test` re-checks them without the fuzzer's toolchain.

use std::path::PathBuf;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/persist_file")
}

#[test]
fn every_corpus_file_runs_clean_through_fuzz_one() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("the fuzz corpus is in the repository")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for must in [
        "issue10-item3-live-0",
        "all-tombstones",
        "one-key",
        "rehashed",
    ] {
        assert!(
            files.iter().any(|p| p.file_name().unwrap() == must),
            "seed {must} is missing from {}",
            corpus().display()
        );
    }
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        eprintln!("replaying {} ({} bytes)", path.display(), bytes.len());
        persist::fuzz::fuzz_one(&bytes);
    }
}

#[test]
fn hostile_variants_of_the_seeds_run_clean() {
    // A few cheap mutations of every seed (bytes of the header and of the first slots set to
    // extremes), so a normal test run goes a little beyond the committed inputs.
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for at in (16..bytes.len().min(200)).step_by(8) {
            for v in [0u64, 1, u64::MAX, 1 << 31] {
                let mut b = bytes.clone();
                if at + 8 <= b.len() {
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
                persist::fuzz::fuzz_one(&b);
            }
        }
    }
}
