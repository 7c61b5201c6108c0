#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_sigv4::fuzz_entry::dates(data));
