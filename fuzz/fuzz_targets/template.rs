//! Fuzz target: see `tikrelay::fuzzing::template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tikrelay::fuzzing::template(data));
