//! Fuzz target: see `tikrelay::fuzzing::normalise`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tikrelay::fuzzing::normalise(data));
