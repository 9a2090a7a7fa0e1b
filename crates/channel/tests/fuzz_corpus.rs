//! Replays the fuzzer's committed corpus (`fuzz/corpus/channel_ring/`, seeds and the cases
//! the fuzzer found) through `channel::fuzz::check_ring`, the same code the libFuzzer target
//! runs, so every `cargo test` re-checks them without the fuzzer's toolchain.

use std::path::PathBuf;

use channel::fuzz::Reached;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/channel_ring")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("the fuzz corpus is in the repository")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_runs_clean_through_check_ring() {
    let files = corpus_files();
    // Seeds made for a stage must reach it (so the properties behind it are checked).
    let stages = [
        ("two-messages-closed", Reached::SentAndReceived),
        ("wrapped-with-padding", Reached::SentAndReceived),
        ("16k-half-read", Reached::SentAndReceived),
        ("sender-killed-before-tail", Reached::SentAndReceived),
        ("issue22-head-past-tail", Reached::Damaged),
        ("issue22-unstamped-at-head", Reached::Damaged),
        ("record-length-huge", Reached::Damaged),
        ("positions-near-u64-max", Reached::NotARing),
        ("bad-magic", Reached::NotARing),
    ];
    for (name, _) in stages {
        assert!(
            files.iter().any(|p| p.file_name().unwrap() == name),
            "seed {name} is missing from {}",
            corpus().display()
        );
    }
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let reached = channel::fuzz::check_ring(&bytes);
        eprintln!(
            "replayed {} ({} bytes): {reached:?}",
            path.display(),
            bytes.len()
        );
        let name = path.file_name().unwrap();
        if let Some((_, stage)) = stages.iter().find(|(n, _)| name == *n) {
            assert_eq!(reached, *stage, "{}", path.display());
        }
    }
}

#[test]
fn hostile_variants_of_the_seeds_run_clean() {
    // Cheap mutations of every seed that is a ring: tail, head, the closed flag and the first
    // record headers set to extremes, so a normal test run goes a little beyond the corpus.
    const FIELDS: [usize; 6] = [128, 144, 256, 4096, 4104, 4112];
    for path in corpus_files() {
        let bytes = std::fs::read(&path).unwrap();
        for at in FIELDS.into_iter().filter(|&at| at + 8 <= bytes.len()) {
            for v in [
                0u64,
                8,
                1 << 31,
                0x8000_0002_0000_0003,
                1 << 62,
                u64::MAX - 7,
            ] {
                let mut b = bytes.clone();
                b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                channel::fuzz::check_ring(&b);
            }
        }
    }
}
