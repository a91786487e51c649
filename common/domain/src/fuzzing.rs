//! The runner every fuzz target shares (the `fuzzing` feature, test builds only):
//! `FUZZ_CASES` cases per target (256 by default), the count printed, nothing
//! persisted into the source tree, a failure reported with its shrunk input.

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseResult, TestRunner};

/// Cases per target: `FUZZ_CASES`, or 256 when unset or unparseable.
pub fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.trim().parse().ok()).filter(|&n| n > 0).unwrap_or(256)
}

/// Runs `test` on [`cases`] inputs from `strategy`; a failure (or panic) fails the
/// calling test with the shrunk input.
pub fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> TestCaseResult) {
    let cases = cases();
    eprintln!("fuzz {name}: {cases} cases");
    // No failure persistence: nothing may be written into the source tree.
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("fuzz {name}: {e}");
    }
}
