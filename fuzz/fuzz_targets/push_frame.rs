//! Fuzz target: see `tikrelay::fuzzing::push_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tikrelay::fuzzing::push_frame(data));
