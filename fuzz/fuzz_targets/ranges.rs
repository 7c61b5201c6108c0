#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_oci_api::fuzz_entry::ranges(data));
