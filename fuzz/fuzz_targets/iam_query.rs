#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_iam_api::fuzz_entry::query(data));
