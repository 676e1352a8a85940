//! The bodies of the fuzz targets, one function per target, shared by the
//! cargo-fuzz binaries in `fuzz/fuzz_targets/` and by `tests/fuzz_smoke.rs`
//! (which includes this file with `#[path]`, so plain `cargo test` runs the
//! same checks over seeded random inputs without cargo-fuzz).
//!
//! Every body must never panic on any input; the asserts in them are the
//! properties the fuzzer checks beyond "no panic".
//!
//! Only the public API of `pcp_secure` is used.

use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::sync::OnceLock;

use pcp_secure::api::certs::ServerContext;
use pcp_secure::api::certs::{self, provider};
use pcp_secure::api::connection::{ack_body_len, ack_encode, ack_status, pcp};
use pcp_secure::api::settings::TlsConf;
use pcp_secure::api::trust::CertInfo;
use pcp_secure::api::trust::TrustStore;
use pcp_secure::api::trust::{entry_key, parse_trust_store, split_host_port};
use rustls::pki_types::CertificateDer;

/// Target `ack`: the secure-ack status PDU as `ack::read` takes it off the
/// wire: a 12-byte header checked by `body_len`, then the body it announces
/// decoded by `status`.
pub fn ack(data: &[u8]) {
    let Some((header, rest)) = data.split_first_chunk::<{ pcp::PDU_HEADER_LEN }>() else {
        return;
    };
    let Ok(len) = ack_body_len(header) else {
        return;
    };
    let total = len + pcp::PDU_HEADER_LEN;
    assert!(
        total == pcp::PDU_ERROR_LEN || total == pcp::PDU_XERROR_LEN,
        "body_len accepted a PDU of {total} bytes"
    );
    let Some(body) = rest.get(..len) else {
        return; // ack::read would wait for (and time out on) the rest
    };
    let status = ack_status(body);
    if total == pcp::PDU_ERROR_LEN {
        // The short form round-trips through encode (bar the "from" field).
        let pdu = ack_encode(status);
        assert_eq!(pdu[..8], header[..8]);
        assert_eq!(pdu[12..], body[..]);
    }
}

/// Target `tls_conf`: any text parses; every value is non-empty and free of
/// white space and `#`; the settings written back out parse to the same
/// settings; and the cipher settings either give a provider or an error.
pub fn tls_conf(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let conf = TlsConf::parse(&text);
    let _ = conf.verify_clients();
    let fields = [
        ("tls-cert-file", &conf.cert_file),
        ("tls-key-file", &conf.key_file),
        ("tls-ciphers", &conf.ciphers),
        ("tls-ciphersuites", &conf.ciphersuites),
        ("tls-ca-cert-file", &conf.ca_cert_file),
        ("tls-ca-cert-dir", &conf.ca_cert_dir),
        ("tls-client-cert-file", &conf.client_cert_file),
        ("tls-client-key-file", &conf.client_key_file),
        ("tls-verify-clients", &conf.verify_clients),
    ];
    let mut written = String::new();
    for (key, value) in fields {
        if let Some(value) = value {
            assert!(
                !value.is_empty() && !value.contains(|c: char| c == '#' || c.is_whitespace()),
                "{key} has the value {value:?}"
            );
            written.push_str(&format!("{key} = {value}\n"));
        }
    }
    assert_eq!(
        TlsConf::parse(&written),
        conf,
        "written back as {written:?}"
    );
    if let Ok(provider) = provider(&conf) {
        assert!(!provider.cipher_suites.is_empty());
    }
}

/// Target `trust_store`: any text either parses or is refused with a reason;
/// what parses, saved entry by entry into a fresh store (on tmpfs when there
/// is one, so the fsyncs cost nothing) and loaded back, gives the same
/// entries (later entries for the same host or CA label replace earlier ones,
/// as `save` does).
pub fn trust_store(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(entries) = parse_trust_store(&text) else {
        return;
    };
    if entries.is_empty() {
        return;
    }
    let dir = scratch_dir();
    let store = TrustStore::in_dir(dir.path());
    let mut expected: Vec<(bool, String, Vec<u8>)> = Vec::new();
    // At most a few entries: each save is a read-modify-write of the file.
    for entry in entries.iter().take(4) {
        // A server is saved under its key (host, or host:port off 44321).
        let (saved, name) = if entry.ca {
            (store.save_ca(&entry.host, &entry.der), entry.host.clone())
        } else {
            let (host, port) = split_host_port(&entry.host);
            (store.save(host, port, &entry.der), entry_key(&entry.host))
        };
        saved.unwrap_or_else(|e| panic!("saving {:?}: {e}", entry.host));
        expected.retain(|(ca, host, _)| (*ca, host) != (entry.ca, &name));
        expected.push((entry.ca, name, entry.der.to_vec()));
    }
    let loaded = store.load().unwrap_or_else(|e| {
        let text = std::fs::read_to_string(store.file()).unwrap_or_default();
        panic!("the store we wrote does not load: {e}\n--- file ---\n{text}")
    });
    let loaded: Vec<(bool, String, Vec<u8>)> = loaded
        .into_iter()
        .map(|e| (e.ca, e.host, e.der.to_vec()))
        .collect();
    assert_eq!(loaded, expected, "entries changed across save and load");
}

/// Target `certinfo`: any bytes as a DER certificate are described, never
/// fatal.
pub fn certinfo(data: &[u8]) {
    let info = CertInfo::of(&CertificateDer::from(data));
    assert_eq!(info.lines().len(), 6);
    assert_eq!(info.sha256.len(), 32 * 3 - 1);
}

/// Target `peer_certificate`: any DER as the certificate a peer presents,
/// through the checks the library makes outside webpki's path building:
/// whether it is X.509 version 1 and whether it may link a chain, its host
/// name (the subject CN for version 1, the subjectAltName otherwise), and
/// the version 1 issuer check against the fuzz CA (dates, signature, CRL).
/// A version 1 certificate never links a chain.
pub fn peer_certificate(data: &[u8]) {
    use pcp_secure::api::trust::{is_version1, may_issue, server_name_check, version1_issuer};
    use rustls::pki_types::{ServerName, UnixTime};
    let cert = CertificateDer::from(data);
    if is_version1(&cert) {
        assert!(
            !may_issue(&cert),
            "a version 1 certificate may link a chain"
        );
    }
    for name in ["localhost", "127.0.0.1"] {
        let name = ServerName::try_from(name).expect("a valid name");
        let _ = server_name_check(&cert, &name);
    }
    let _ = version1_issuer(&cert, anchors(), UnixTime::now());
}

fn anchors() -> &'static certs::Anchors {
    static ANCHORS: OnceLock<certs::Anchors> = OnceLock::new();
    ANCHORS.get_or_init(|| {
        certs::load_roots(pki().conf.ca_cert_file.as_deref(), None)
            .expect("the fuzz CA loads")
            .expect("the fuzz CA is configured")
    })
}

/// Target `server_handshake`: the bytes a client would send, fed to a fresh
/// server connection of a context built once (CA-signed server certificate,
/// the CA configured so client certificates are verified). The first byte
/// picks `connection(require_cert)`; the rest is the client's stream.
pub fn server_handshake(data: &[u8]) {
    let (require, stream) = match data.split_first() {
        Some((first, rest)) => (first & 1 == 1, rest),
        None => (false, data),
    };
    let mut conn = server()
        .connection(require)
        .expect("a connection from a context that built");
    let mut input = Cursor::new(stream);
    let mut output = Vec::new();
    let mut plaintext = [0u8; 4096];
    while (input.position() as usize) < stream.len() {
        match conn.read_tls(&mut input) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => break,
        }
        let state = conn.process_new_packets();
        // Send what the server has to say (alerts included), as a peer would.
        while conn.wants_write() {
            output.clear();
            if conn.write_tls(&mut output).is_err() {
                break;
            }
        }
        if state.is_err() {
            break;
        }
        // Drain application data so the plaintext buffer never fills.
        while let Ok(n) = conn.reader().read(&mut plaintext) {
            if n == 0 {
                break;
            }
        }
    }
    let _ = conn.is_handshaking();
}

/// Target `pem_files`: the bytes as the file that `tls-cert-file`,
/// `tls-key-file` and `tls-ca-cert-file` name (certificates, keys, CRLs):
/// `certs::load_chain`, `load_key`, `load_roots`, then a whole
/// `ServerContext::build` from it; errors are fine, panics are not.
pub fn pem_files(data: &[u8]) {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let path = DIR.get_or_init(scratch_dir).path().join("tls.pem");
    std::fs::write(&path, data).expect("writing the PEM file");
    let path = path.to_string_lossy().into_owned();
    let chain = certs::load_chain("tls-cert-file", &path);
    if let Ok(chain) = &chain {
        assert!(!chain.is_empty());
    }
    let _ = certs::load_key("tls-key-file", &path);
    let _ = certs::load_roots(Some(&path), None);
    let conf = TlsConf {
        cert_file: Some(path.clone()),
        key_file: Some(path.clone()),
        ca_cert_file: Some(path),
        ..TlsConf::default()
    };
    if let Ok(server) = ServerContext::build(&conf) {
        let _ = server.connection(true).expect("a connection");
    }
}

/// Target `nss_pbe`: NSS key4.db decryption (`nssdb::fuzz_decrypt`): the DER
/// reader, PBES2 (PBKDF2 + AES-CBC, with NSS's 14-byte IV), PBE-SHA1-3DES,
/// PBMAC1 and the PKCS#8 rebuild of an EC key, under the empty password.
/// The input is split by [`nss_pbe_parts`]; a key may only come out of a
/// value that decrypted.
pub fn nss_pbe(data: &[u8]) {
    let Some((salt, value, mac)) = nss_pbe_parts(data) else {
        return;
    };
    let (decrypted, rebuilt) = pcp_secure::api::nssdb::fuzz_decrypt(salt, value, mac);
    assert!(
        decrypted || !rebuilt,
        "a key was rebuilt from a value that did not decrypt"
    );
}

/// Splits an `nss_pbe` input into (global salt, encrypted value, integrity
/// entry): a byte whose low bit picks a 48-byte salt (else 20 bytes), the
/// salt, the entry's length (2 bytes, big-endian; cut to what is left), the
/// entry, then the value (last, so that mutating it keeps the framing).
pub fn nss_pbe_parts(data: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (&pick, rest) = data.split_first()?;
    let salt_len = if pick & 1 == 1 { 48 } else { 20 };
    let salt = rest.get(..salt_len)?;
    let (len, rest) = rest[salt_len..].split_first_chunk::<2>()?;
    let (mac, value) = rest.split_at(usize::from(u16::from_be_bytes(*len)).min(rest.len()));
    Some((salt, value, mac))
}

/// The inverse of [`nss_pbe_parts`] (the salt must be 20 or 48 bytes).
pub fn nss_pbe_input(salt: &[u8], value: &[u8], mac: &[u8]) -> Vec<u8> {
    assert!(salt.len() == 20 || salt.len() == 48);
    let mut out = vec![u8::from(salt.len() == 48)];
    out.extend_from_slice(salt);
    out.extend_from_slice(
        &u16::try_from(mac.len())
            .expect("entry length")
            .to_be_bytes(),
    );
    out.extend_from_slice(mac);
    out.extend_from_slice(value);
    out
}

/// Valid `nss_pbe` inputs made with [`nss`] and what `fuzz_decrypt` must
/// say of each (decrypted, key rebuilt): the empty password's encryptions
/// of "password-check" and of EC scalars, as NSS writes them, with their
/// PBMAC1 integrity entries.
pub fn nss_pbe_seeds() -> Vec<(Vec<u8>, (bool, bool))> {
    use nss::{Hmac, Prf};
    let salt20: Vec<u8> = (1..=20).collect();
    let salt48: Vec<u8> = (101..=148).collect();
    let check = b"password-check";
    let scalar32 = [0x42u8; 32];
    let scalar33 = [0x42u8; 33];
    let scalar48 = [0x43u8; 48];
    let aes256 = |pw: &[u8], plain: &[u8]| {
        nss::pbes2_aes(pw, &[7; 32], 1, Some(32), Prf::Sha256, &[9; 14], plain)
    };
    let mac256 = |pw: &[u8], object: u32, attr: u32, data: &[u8]| {
        nss::pbmac1(pw, &[8; 32], 1, Some(32), Hmac::Sha256, object, attr, data)
    };
    let pw20 = nss::password_key(&salt20, b"");
    let pw48 = nss::password_key(&salt48, b"");
    let mut out = Vec::new();
    let mut push = |salt: &[u8], value: Vec<u8>, mac: Vec<u8>, expect| {
        out.push((nss_pbe_input(salt, &value, &mac), expect));
    };

    // NSS >= 3.49: PBES2, AES-256-CBC with the 14-byte IV, PBKDF2-SHA256.
    push(
        &salt20,
        aes256(&pw20, check),
        mac256(&pw20, 0, nss::CKA_VALUE, check),
        (true, true),
    );
    // Older databases: PBE-SHA1-3DES.
    let des = nss::pbe_sha1_3des(&pw20, &[6; 20], 1, check);
    push(
        &salt20,
        des,
        mac256(&pw20, 0, nss::CKA_VALUE, check),
        (true, true),
    );
    // NSS >= 3.118: 48-byte salt (SHA-384 password key), a P-384 scalar.
    push(
        &salt48,
        aes256(&pw48, &scalar48),
        mac256(&pw48, 0, nss::CKA_VALUE, &scalar48),
        (true, true),
    );
    // 3DES with several iterations and a short salt; PBMAC1 with
    // HMAC-SHA-512 and no key length (64 bytes by default).
    let des = nss::pbe_sha1_3des(&pw48, &[5; 8], 3, check);
    let mac = nss::pbmac1(
        &pw48,
        &[4; 16],
        2,
        None,
        Hmac::Sha512,
        0,
        nss::CKA_VALUE,
        check,
    );
    push(&salt48, des, mac, (true, true));
    // AES-128 with a plain 16-byte IV, PBKDF2 with its default PRF
    // (HMAC-SHA-1) and no key length; PBMAC1 with HMAC-SHA-1.
    let aes128 = nss::pbes2_aes(&pw20, &[3; 16], 2, None, Prf::Sha1, &[2; 16], &scalar32);
    let mac = nss::pbmac1(
        &pw20,
        &[1; 20],
        1,
        Some(20),
        Hmac::Sha1,
        0,
        nss::CKA_VALUE,
        &scalar32,
    );
    push(&salt20, aes128, mac, (true, true));
    // A scalar too large for P-256: decrypts and authenticates, but no key.
    push(
        &salt20,
        aes256(&pw20, &scalar33),
        mac256(&pw20, 0, nss::CKA_VALUE, &scalar33),
        (true, false),
    );
    // The entry is the code of the encrypted value as a clear attribute
    // (object 1, CKA_MODULUS), not of its plaintext: no key.
    let value = aes256(&pw20, check);
    let mac = mac256(&pw20, 1, nss::CKA_MODULUS, &value);
    push(&salt20, value, mac, (true, false));
    out
}

/// NSS's encryption and integrity codes as key4.db holds them, written from
/// the format's description independently of the library's reader (which
/// is private anyway), to make `nss_pbe` seeds.
pub mod nss {
    use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
    use aws_lc_rs::{digest, hmac, pbkdf2};
    use std::num::NonZeroU32;

    /// CKA_VALUE.
    pub const CKA_VALUE: u32 = 0x11;
    /// CKA_MODULUS.
    pub const CKA_MODULUS: u32 = 0x120;

    const PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
    const PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
    const PBMAC1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0e];
    const HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
    const HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
    const HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
    const AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
    const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
    const PBE_SHA1_3DES: &[u8] = &[
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x05, 0x01, 0x03,
    ];

    /// PBKDF2's pseudo-random function.
    #[derive(Clone, Copy)]
    pub enum Prf {
        /// HMAC-SHA-1, the default: no PRF written.
        Sha1,
        /// HMAC-SHA-256, written out.
        Sha256,
    }

    /// PBMAC1's HMAC.
    #[derive(Clone, Copy)]
    pub enum Hmac {
        /// HMAC-SHA-1.
        Sha1,
        /// HMAC-SHA-256.
        Sha256,
        /// HMAC-SHA-512.
        Sha512,
    }

    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = contents.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend_from_slice(&[0x81, len as u8]);
        } else {
            out.push(0x82);
            out.extend_from_slice(&u16::try_from(len).expect("DER length").to_be_bytes());
        }
        out.extend_from_slice(contents);
        out
    }

    fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    fn oid(contents: &[u8]) -> Vec<u8> {
        tlv(0x06, contents)
    }

    fn octets(contents: &[u8]) -> Vec<u8> {
        tlv(0x04, contents)
    }

    fn uint(n: u32) -> Vec<u8> {
        let bytes = n.to_be_bytes();
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(3);
        let mut contents = Vec::new();
        if bytes[first] & 0x80 != 0 {
            contents.push(0);
        }
        contents.extend_from_slice(&bytes[first..]);
        tlv(0x02, &contents)
    }

    /// The password key: SHA-1 (SHA-384 for a 48-byte salt) of the global
    /// salt and the password.
    pub fn password_key(global_salt: &[u8], password: &[u8]) -> Vec<u8> {
        let alg = if global_salt.len() == 48 {
            &digest::SHA384
        } else {
            &digest::SHA1_FOR_LEGACY_USE_ONLY
        };
        digest::digest(alg, &[global_salt, password].concat())
            .as_ref()
            .to_vec()
    }

    fn pbkdf2(
        alg: pbkdf2::Algorithm,
        pw: &[u8],
        salt: &[u8],
        iterations: u32,
        len: usize,
    ) -> Vec<u8> {
        let mut out = vec![0; len];
        let iterations = NonZeroU32::new(iterations).expect("iterations");
        pbkdf2::derive(alg, iterations, salt, pw, &mut out);
        out
    }

    /// AlgorithmIdentifier of PBKDF2.
    fn pbkdf2_alg(
        salt: &[u8],
        iterations: u32,
        key_len: Option<u32>,
        prf: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut params = vec![octets(salt), uint(iterations)];
        if let Some(len) = key_len {
            params.push(uint(len));
        }
        if let Some(prf) = prf {
            params.push(seq(&[&oid(prf), &tlv(0x05, &[])]));
        }
        let refs: Vec<&[u8]> = params.iter().map(Vec::as_slice).collect();
        seq(&[&oid(PBKDF2), &seq(&refs)])
    }

    /// `plain` encrypted with PBES2: AES-CBC (AES-256 when `key_len` is 32
    /// or, with none, for PRF HMAC-SHA-256; else AES-128) keyed by PBKDF2.
    /// A 14-byte `iv` is stored as NSS does: the real IV is its DER
    /// encoding.
    pub fn pbes2_aes(
        pw: &[u8],
        salt: &[u8],
        iterations: u32,
        key_len: Option<u32>,
        prf: Prf,
        iv: &[u8],
        plain: &[u8],
    ) -> Vec<u8> {
        let (alg, prf_oid) = match prf {
            Prf::Sha1 => (pbkdf2::PBKDF2_HMAC_SHA1, None),
            Prf::Sha256 => (pbkdf2::PBKDF2_HMAC_SHA256, Some(HMAC_SHA256)),
        };
        let aes_len = key_len.map_or(if prf_oid.is_some() { 32 } else { 16 }, |l| l as usize);
        let key = pbkdf2(alg, pw, salt, iterations, aes_len);
        let real_iv = if iv.len() == 14 {
            octets(iv)
        } else {
            iv.to_vec()
        };
        let ciphertext = if aes_len == 32 {
            cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &real_iv)
                .expect("AES-256 key and IV")
                .encrypt_padded_vec_mut::<Pkcs7>(plain)
        } else {
            cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, &real_iv)
                .expect("AES-128 key and IV")
                .encrypt_padded_vec_mut::<Pkcs7>(plain)
        };
        let cipher = if aes_len == 32 {
            AES256_CBC
        } else {
            AES128_CBC
        };
        seq(&[
            &seq(&[
                &oid(PBES2),
                &seq(&[
                    &pbkdf2_alg(salt, iterations, key_len, prf_oid),
                    &seq(&[&oid(cipher), &octets(iv)]),
                ]),
            ]),
            &octets(&ciphertext),
        ])
    }

    /// Key and IV of PBE-SHA1-3DES: h = SHA-1^iterations(pw || salt);
    /// state = salt padded to 20 bytes; out += HMAC-SHA-1(h, state || salt),
    /// state = HMAC-SHA-1(h, state), to 40 bytes; key = out[..24], IV =
    /// out[32..].
    pub fn legacy_key_iv(pw: &[u8], salt: &[u8], iterations: u32) -> ([u8; 24], [u8; 8]) {
        let mut h = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &[pw, salt].concat())
            .as_ref()
            .to_vec();
        for _ in 1..iterations {
            h = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &h)
                .as_ref()
                .to_vec();
        }
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &h);
        let mut state = [0u8; 20].to_vec();
        state[..salt.len()].copy_from_slice(salt);
        let mut out = Vec::new();
        while out.len() < 40 {
            out.extend_from_slice(hmac::sign(&key, &[&state[..], salt].concat()).as_ref());
            state = hmac::sign(&key, &state).as_ref().to_vec();
        }
        let mut des_key = [0; 24];
        des_key.copy_from_slice(&out[..24]);
        let mut iv = [0; 8];
        iv.copy_from_slice(&out[32..40]);
        (des_key, iv)
    }

    /// `plain` encrypted with PBE-SHA1-3DES (salt of at most 20 bytes).
    pub fn pbe_sha1_3des(pw: &[u8], salt: &[u8], iterations: u32, plain: &[u8]) -> Vec<u8> {
        let (key, iv) = legacy_key_iv(pw, salt, iterations);
        let ciphertext = cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .expect("3DES key and IV")
            .encrypt_padded_vec_mut::<Pkcs7>(plain);
        seq(&[
            &seq(&[
                &oid(PBE_SHA1_3DES),
                &seq(&[&octets(salt), &uint(iterations)]),
            ]),
            &octets(&ciphertext),
        ])
    }

    /// The PBMAC1 integrity entry of attribute `attribute` of `object`
    /// holding `plain`: HMAC keyed by PBKDF2-HMAC-SHA-256 over
    /// be32(object) || be32(attribute) || plain.
    #[allow(clippy::too_many_arguments)]
    pub fn pbmac1(
        pw: &[u8],
        salt: &[u8],
        iterations: u32,
        key_len: Option<u32>,
        mac: Hmac,
        object: u32,
        attribute: u32,
        plain: &[u8],
    ) -> Vec<u8> {
        let (alg, alg_oid, default_len) = match mac {
            Hmac::Sha1 => (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, HMAC_SHA1, 20),
            Hmac::Sha256 => (hmac::HMAC_SHA256, HMAC_SHA256, 32),
            Hmac::Sha512 => (hmac::HMAC_SHA512, HMAC_SHA512, 64),
        };
        let len = key_len.map_or(default_len, |l| l as usize);
        let key = pbkdf2(pbkdf2::PBKDF2_HMAC_SHA256, pw, salt, iterations, len);
        let message = [&object.to_be_bytes()[..], &attribute.to_be_bytes(), plain].concat();
        let code = hmac::sign(&hmac::Key::new(alg, &key), &message);
        let null = tlv(0x05, &[]);
        seq(&[
            &seq(&[
                &oid(PBMAC1),
                &seq(&[
                    &pbkdf2_alg(salt, iterations, key_len, Some(HMAC_SHA256)),
                    &seq(&[&oid(alg_oid), &null]),
                ]),
            ]),
            &octets(code.as_ref()),
        ])
    }
}

/// A fresh directory for a store, on tmpfs when the machine has one.
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new().prefix("pcp-fuzz").tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("a temporary directory")
}

/// Certificates made once per process: a CA, a server certificate it signed
/// and a client certificate it signed, as PEM, plus the files of the first
/// two written where `tls.conf` can name them.
struct Pki {
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
    crl_pem: String,
    client_pem: String,
    client_key_pem: String,
    conf: TlsConf,
    /// Holds the files; statics are never dropped, so neither is it.
    _dir: tempfile::TempDir,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "fuzz CA");
        let ca = ca.self_signed(&ca_key).expect("CA certificate");
        let leaf = |name: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.signed_by(&key, &ca, &ca_key).expect("certificate");
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key_pem) = leaf("localhost");
        let (client_pem, client_key_pem) = leaf("client");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let write = |name: &str, text: &str| -> String {
            let path: PathBuf = dir.path().join(name);
            std::fs::write(&path, text).expect("writing a certificate file");
            path.to_string_lossy().into_owned()
        };
        let conf = TlsConf {
            cert_file: Some(write("server.crt", &server_pem)),
            key_file: Some(write("server.key", &server_key_pem)),
            ca_cert_file: Some(write("ca.crt", &ca.pem())),
            ..TlsConf::default()
        };
        let crl = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2026, 1, 1),
            next_update: rcgen::date_time_ymd(2036, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(7u64),
                revocation_time: rcgen::date_time_ymd(2026, 1, 2),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&ca, &ca_key)
        .expect("CRL");
        Pki {
            ca_pem: ca.pem(),
            server_pem: server_pem.clone(),
            server_key_pem: server_key_pem.clone(),
            crl_pem: crl.pem().expect("CRL PEM"),
            client_pem,
            client_key_pem,
            conf,
            _dir: dir,
        }
    })
}

fn server() -> &'static ServerContext {
    static SERVER: OnceLock<ServerContext> = OnceLock::new();
    SERVER.get_or_init(|| ServerContext::build(&pki().conf).expect("the fuzz server context"))
}

/// Seed inputs for each target, by target name: valid messages the fuzzer
/// can mutate from (random bytes alone rarely make a ClientHello or a
/// certificate). `fuzz/examples/mkseeds.rs` writes them into `fuzz/corpus/`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{PrivateKeyDer, ServerName};

    let pki = pki();
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();

    for status in [0, -95, -12345, i32::MIN, i32::MAX] {
        out.push(("ack", ack_encode(status).to_vec()));
        let mut x = ack_encode(status).to_vec();
        x[3] = pcp::PDU_XERROR_LEN as u8;
        x.extend_from_slice(&[0, 0, 0, 0]);
        out.push(("ack", x));
    }

    for text in [
        "# pmcd\ntls-cert-file = /etc/pcp/tls/server.crt\ntls-key-file = /etc/pcp/tls/server.key\ntls-ca-cert-file = /etc/pcp/tls/ca.crt\ntls-verify-clients = true\n",
        "tls-ciphers: ECDHE-RSA-AES128-GCM-SHA256:!aNULL:+HIGH:@STRENGTH\ntls-ciphersuites = TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n",
        "tls-cipherS = DEFAULT # comment\ntls-ca-cert-dir=/etc/ssl/certs\ntls-client-cert-file = c.pem\ntls-client-key-file = k.pem\n",
        "tls-ciphersuites = TLS13_AES_128_GCM_SHA256,-TLS_AES_256_GCM_SHA384\n",
    ] {
        out.push(("tls_conf", text.as_bytes().to_vec()));
    }

    let client_der = CertificateDer::from_pem_slice(pki.client_pem.as_bytes()).expect("client");
    let ca_der = CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).expect("CA");
    let store_text = format!(
        "# host: pmcd.example\n# sha256: {}\n# saved: 2026-01-01T00:00:00Z\n{}\n# ca: my CA\n{}",
        pcp_secure::api::trust::sha256(&client_der),
        pki.client_pem.trim_end(),
        pki.ca_pem
    );
    out.push(("trust_store", store_text.into_bytes()));

    out.push((
        "pem_files",
        format!(
            "{}{}{}{}",
            pki.server_pem, pki.server_key_pem, pki.ca_pem, pki.crl_pem
        )
        .into_bytes(),
    ));
    out.push((
        "pem_files",
        format!("{}{}", pki.client_pem, pki.client_key_pem).into_bytes(),
    ));

    out.push(("peer_certificate", client_der.to_vec()));
    out.push(("peer_certificate", ca_der.to_vec()));
    // The client certificate with its version field set to 1 (the one byte
    // of `[0] { INTEGER 2 }` made 0): a version 1 certificate whose
    // signature no longer verifies, so the fuzzer starts on that branch.
    let mut v1 = client_der.to_vec();
    if let Some(at) = v1
        .windows(5)
        .position(|w| w == [0xa0, 0x03, 0x02, 0x01, 0x02])
    {
        v1[at + 4] = 0;
        out.push(("peer_certificate", v1));
    }
    out.push(("certinfo", client_der.to_vec()));
    out.push(("certinfo", ca_der.to_vec()));
    out.push((
        "certinfo",
        rcgen::CertificateParams::new(vec![
            "a.example".to_string(),
            "192.0.2.1".to_string(),
            "::1".to_string(),
        ])
        .and_then(|p| p.self_signed(&rcgen::KeyPair::generate()?))
        .expect("SAN certificate")
        .der()
        .to_vec(),
    ));

    // ClientHellos (and for TLS 1.3 nothing more can be pre-recorded, since
    // the rest depends on the server's randomness), each behind the byte
    // that picks require_cert.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der).expect("CA as a root");
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    for (versions, with_cert) in [
        (&[&rustls::version::TLS13][..], false),
        (&[&rustls::version::TLS12][..], false),
        (rustls::ALL_VERSIONS, true),
    ] {
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots.clone());
        let config = if with_cert {
            let chain = vec![client_der.clone().into_owned()];
            let key = PrivateKeyDer::from_pem_slice(pki.client_key_pem.as_bytes()).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        let name = ServerName::try_from("localhost").expect("name");
        let mut client =
            rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
        let mut hello = vec![u8::from(with_cert)];
        while client.wants_write() {
            client.write_tls(&mut hello).expect("ClientHello");
        }
        out.push(("server_handshake", hello));
    }

    for (input, _) in nss_pbe_seeds() {
        out.push(("nss_pbe", input));
    }
    out
}
