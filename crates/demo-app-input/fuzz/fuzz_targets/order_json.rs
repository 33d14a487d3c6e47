#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| demo_app_input::fuzzing::order_json(data));
