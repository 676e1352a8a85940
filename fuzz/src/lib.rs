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

use pcp_secure::certinfo::CertInfo;
use pcp_secure::config::TlsConf;
use pcp_secure::store::ServerContext;
use pcp_secure::trust::{self, TrustStore};
use pcp_secure::{ack, certs, pcp, suites};
use rustls::pki_types::CertificateDer;

/// Target `ack`: the secure-ack status PDU as `ack::read` takes it off the
/// wire: a 12-byte header checked by `body_len`, then the body it announces
/// decoded by `status`.
pub fn ack(data: &[u8]) {
    let Some((header, rest)) = data.split_first_chunk::<{ pcp::PDU_HEADER_LEN }>() else {
        return;
    };
    let Ok(len) = ack::body_len(header) else {
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
    let status = ack::status(body);
    if total == pcp::PDU_ERROR_LEN {
        // The short form round-trips through encode (bar the "from" field).
        let pdu = ack::encode(status);
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
    if let Ok(provider) = suites::provider(&conf) {
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
    let Ok(entries) = trust::parse(&text) else {
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
        let saved = if entry.ca {
            store.save_ca(&entry.host, &entry.der)
        } else {
            store.save(&entry.host, &entry.der)
        };
        saved.unwrap_or_else(|e| panic!("saving {:?}: {e}", entry.host));
        expected.retain(|(ca, host, _)| (*ca, host) != (entry.ca, &entry.host));
        expected.push((entry.ca, entry.host.clone(), entry.der.to_vec()));
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
        out.push(("ack", ack::encode(status).to_vec()));
        let mut x = ack::encode(status).to_vec();
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
        pcp_secure::certinfo::sha256(&client_der),
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
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
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
    out
}
