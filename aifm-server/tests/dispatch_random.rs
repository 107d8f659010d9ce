//! The fuzz target's random-request driver, run by quickcheck on a bounded number of
//! random inputs (a few seconds): the same sessions as `fuzz/fuzz_targets/dispatch.rs`
//! explores for hours, checked on every CI run.

use quickcheck::{QuickCheck, TestResult};

#[test]
fn random_sessions_never_break_the_server() {
    fn prop(data: Vec<u8>) -> TestResult {
        aifm_server::fuzzing::drive(&data);
        TestResult::passed()
    }
    QuickCheck::new()
        .rng(quickcheck::Gen::new(4096))
        .tests(300)
        .quickcheck(prop as fn(Vec<u8>) -> TestResult);
}

/// Inputs the fuzzer found interesting once stay checked here.
#[test]
fn fixed_sessions_never_break_the_server() {
    for seed in 0..64u64 {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let data: Vec<u8> = (0..2048)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        aifm_server::fuzzing::drive(&data);
    }
}
