#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pcp_secure_fuzz::nss_pbe(data));
