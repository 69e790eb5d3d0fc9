//! Fuzz target: see `tikrelay::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tikrelay::fuzzing::config(data));
