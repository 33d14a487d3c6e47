#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| demo_app::fuzzing::idempotency_key(data));
