#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcp_secure_fuzz::peer_certificate(data));
