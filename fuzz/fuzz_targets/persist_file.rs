//! libFuzzer target: the input is a table file; `persist::fuzz::fuzz_one` opens, looks up,
//! lists, verifies, puts and deletes on it and panics on any wrong answer.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    persist::fuzz::fuzz_one(bytes);
});
