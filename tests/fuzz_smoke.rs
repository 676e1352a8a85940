//! The fuzz targets' bodies (`fuzz/src/lib.rs`) run under plain `cargo test`
//! over their seeds, seeded mutations of them and random bytes, so CI checks
//! them without cargo-fuzz. The real fuzzing is `fuzz/run`.

// The fuzz crate's public target bodies, used here as a private module.
#[allow(unreachable_pub)]
#[path = "../fuzz/src/lib.rs"]
mod bodies;

/// xorshift64*: a fixed seed, so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// A few flips, overwrites, insertions or truncations of `seed`.
    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut out = seed.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len());
            match self.below(4) {
                0 if !out.is_empty() => out[at] ^= 1 << self.below(8),
                1 if !out.is_empty() => out[at] = self.next() as u8,
                2 => out.insert(at.min(out.len()), self.next() as u8),
                _ => out.truncate(at),
            }
        }
        out
    }
}

/// Runs `body` on every seed of `target`, `rounds` mutations of them and
/// `rounds` random inputs of up to `max` bytes.
fn exercise(target: &str, body: fn(&[u8]), rounds: usize, max: usize) {
    let seeds: Vec<Vec<u8>> = bodies::seeds()
        .into_iter()
        .filter(|(t, _)| *t == target)
        .map(|(_, b)| b)
        .collect();
    assert!(!seeds.is_empty(), "no seeds for {target}");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for seed in &seeds {
        body(seed);
    }
    for _ in 0..rounds {
        let seed = &seeds[rng.below(seeds.len())];
        body(&rng.mutate(seed));
        body(&rng.bytes(max));
    }
}

#[test]
fn ack_survives_any_bytes() {
    exercise("ack", bodies::ack, 2000, 24);
}

/// A 20-byte (PCP 1.x numbered) secure-ack PDU whose code is so negative that
/// `pcp::error_from_v1` (`code + 1000 - 12345`) overflows.
fn hits_v1_status_overflow(data: &[u8]) -> bool {
    data.len() >= 16
        && data[..8] == [0, 0, 0, 20, 0, 0, 0x70, 0]
        && i32::from_be_bytes([data[12], data[13], data[14], data[15]])
            .checked_add(1000 - 12345)
            .is_none()
}

/// Regression (found by fuzzing): a server (or anything in the middle) that
/// sent the 20-byte secure-ack PDU with a status code at or below
/// `i32::MIN + 11344` made `pcp::error_from_v1` overflow: a panic with
/// overflow checks, a wrapped positive status without.
#[test]
fn ack_v1_status_near_i32_min_does_not_overflow() {
    let mut pdu = vec![0, 0, 0, 20, 0, 0, 0x70, 0, 0, 0, 0, 0];
    pdu.extend_from_slice(&i32::MIN.to_be_bytes());
    pdu.extend_from_slice(&[0; 4]);
    assert!(hits_v1_status_overflow(&pdu));
    let status = pcp_secure::api::connection::ack_status(&pdu[12..]);
    assert!(status < 0, "an error status came back as {status}");
}

#[test]
fn tls_conf_survives_any_text() {
    exercise("tls_conf", bodies::tls_conf, 500, 256);
}

#[test]
fn trust_store_survives_any_text() {
    exercise("trust_store", bodies::trust_store, 200, 512);
}

#[test]
fn certinfo_survives_any_der() {
    exercise("certinfo", bodies::certinfo, 500, 512);
}

#[test]
fn peer_certificate_survives_any_der() {
    exercise("peer_certificate", bodies::peer_certificate, 500, 1024);
}

/// The fuzzer starts on both branches: version 3 seeds and one that the
/// library reads as version 1.
#[test]
fn peer_certificate_seeds_include_version1() {
    let seeds: Vec<Vec<u8>> = bodies::seeds()
        .into_iter()
        .filter(|(t, _)| *t == "peer_certificate")
        .map(|(_, b)| b)
        .collect();
    let v1 = |b: &Vec<u8>| pcp_secure::api::trust::is_version1(b);
    assert!(seeds.iter().any(v1), "no version 1 seed");
    assert!(!seeds.iter().all(v1), "no version 3 seed");
}

#[test]
fn pem_files_survive_any_bytes() {
    exercise("pem_files", bodies::pem_files, 200, 1024);
}

#[test]
fn server_handshake_survives_any_client_bytes() {
    exercise("server_handshake", bodies::server_handshake, 300, 2048);
}

#[test]
fn nss_pbe_survives_any_bytes() {
    exercise("nss_pbe", bodies::nss_pbe, 1000, 256);
}

/// The `nss_pbe` seeds are what NSS writes and the library reads them:
/// each decrypts (and rebuilds a key when it should) through
/// `nssdb::fuzz_decrypt`; a changed integrity code or global salt gives no
/// key. So the fuzzer starts from inputs that get past the decryption.
#[test]
fn nss_pbe_seeds_decrypt() {
    let seeds = bodies::nss_pbe_seeds();
    assert!(seeds.iter().filter(|(_, (_, rebuilt))| *rebuilt).count() >= 5);
    for (n, (input, expected)) in seeds.iter().enumerate() {
        let (salt, value, mac) = bodies::nss_pbe_parts(input).expect("a seed splits");
        assert_eq!(
            pcp_secure::api::nssdb::fuzz_decrypt(salt, value, mac),
            *expected,
            "seed {n}: (decrypted, rebuilt)"
        );
        let mut bad_mac = mac.to_vec();
        *bad_mac.last_mut().unwrap() ^= 1;
        assert_eq!(
            pcp_secure::api::nssdb::fuzz_decrypt(salt, value, &bad_mac),
            (true, false),
            "seed {n} with a changed integrity code"
        );
        let mut bad_salt = salt.to_vec();
        bad_salt[0] ^= 1;
        assert!(
            !pcp_secure::api::nssdb::fuzz_decrypt(&bad_salt, value, mac).1,
            "seed {n} gave a key under another global salt"
        );
    }
}

/// The seeds' PBE-SHA1-3DES derivation (`fuzz/src/lib.rs`, written apart
/// from the library's) gives the library's known answer.
#[test]
fn nss_pbe_seed_3des_derivation_matches_the_library() {
    let pw = bodies::nss::password_key(&[5; 20], b"secret");
    let (key, iv) = bodies::nss::legacy_key_iv(&pw, &[9; 20], 1);
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        hex(&key),
        "4058f6228aa8fac0d97c67227ada654bec81bd348649e1e0"
    );
    assert_eq!(hex(&iv), "8c129d2f552fa9cb");
}

/// Regression (found by fuzzing): a certificate whose subject held a line
/// break rewrote the trust store when it was saved (the subject went raw
/// into a `# subject:` comment), so a server certificate with the common
/// name "x\n# ca: evil" accepted for "pmcd.example" was read back as a
/// trusted CA labelled "evil", and the prompt showed the injected lines.
#[test]
fn trust_store_subject_line_break_is_not_injected() {
    use rcgen::{CertificateParams, DnType, KeyPair};
    use rustls::pki_types::CertificateDer;

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["pmcd.example".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "x\n# ca: evil");
    let der = CertificateDer::from(params.self_signed(&key).unwrap().der().to_vec());

    let dir = tempfile::tempdir().unwrap();
    let store = pcp_secure::api::trust::TrustStore::in_dir(dir.path());
    store.save("pmcd.example", None, &der).unwrap();
    let entries = store.load().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].host.as_str(), entries[0].ca),
        ("pmcd.example", false),
        "saved as a server certificate of pmcd.example, read back as {:?}",
        entries[0]
    );
}
