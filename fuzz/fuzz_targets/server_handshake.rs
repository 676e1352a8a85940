#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcp_secure_fuzz::server_handshake(data));
