//! Fuzz target: see `tikrelay::fuzzing::theme_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tikrelay::fuzzing::theme_json(data));
