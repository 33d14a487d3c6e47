#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| demo_app_input::fuzzing::bearer_token(data));
