//! libFuzzer target: the input is a ring file; `channel::fuzz::check_ring` inspects it,
//! drains it as a receiver, sends into it and drains it again, and panics on any wrong answer.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    channel::fuzz::check_ring(bytes);
});
