#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_types::fuzz_entry::manifest(data));
