//! The library's Rust interface, for the `pcp-secure` tool, the tests and
//! the fuzz targets. Everything else in the crate is private: C programs
//! use the exports of [`crate::ffi`], and Rust code uses what is named here.

#![forbid(unsafe_code)]

/// Settings: `tls.conf` and where it is.
pub mod settings {
    pub use crate::tls::config::{tls_conf_path, Role, TlsConf, DEFAULT_NICKNAME};
}

/// Certificates and keys from PEM files, and the TLS contexts built from
/// settings (as pmcd and the clients build them).
pub mod certs {
    pub use crate::tls::certs::{
        certified_key, load_chain, load_key, load_roots, system_roots, Anchors,
    };
    pub use crate::tls::store::{ClientContext, Identity, ServerContext};
    pub use crate::tls::suites::{module, provider, summary, FIPS_BUILD};
}

/// How a client decides to trust a server, the per-user trust store and
/// certificate descriptions.
pub mod trust {
    pub use crate::trust::certinfo::{sha256, CertInfo};
    pub use crate::trust::signature::{
        tls12 as verify_tls12_signature, tls13 as verify_tls13_signature,
    };
    pub use crate::trust::store::{
        entry_key, parse as parse_trust_store, server_key, split_host_port, Entry, TrustStore,
        DEFAULT_PORT,
    };
    pub use crate::trust::verify::{
        chain_cas, is_name_mismatch, is_untrusted_issuer, may_issue, name_check, out_of_date,
        server_name_check, signed_by, webpki, Assessment, HandshakeScope, Why,
    };
    pub use crate::trust::version1::{is_version1, version1_issuer};
}

/// The pieces of a PCP secure connection, for probing a server the way a
/// client would: the protocol's numbers, the secure-ack status, driving a
/// rustls connection over a descriptor, and explaining its failures.
pub mod connection {
    /// PCP's protocol numbers and error codes.
    pub mod pcp {
        pub use crate::pcp::*;
    }
    pub use crate::tls::ack::{
        body_len as ack_body_len, encode as ack_encode, read as read_ack, status as ack_status,
    };
    pub use crate::tls::diagnose::{certificate as certificate_problem, Peer};
    pub use crate::tls::groups::name as group_name;
    pub use crate::tls::handshake::describe;
    pub use crate::tls::redial::{read_greeting, send_creds, Greeting};
    pub use crate::tls::transport::{
        await_verdict, drive, flush, local_host_name, read_step, Deadline, Failure,
    };
}

/// The NSS `sql:` database reader.
pub mod nssdb {
    pub use crate::nssdb::conf::{client_location, CLIENT_PASSWORD_KEY, PASSWORD_KEY};
    pub use crate::nssdb::{
        directory, exists, fuzz_decrypt, password, Cert, Database, Identity, Level, OpenError,
        Purpose, Unlocked,
    };
}

/// The TLS metrics: the kinds of handshake failure they count.
pub mod metrics {
    pub use crate::metrics::Reason;
}

/// Errors as the library reports them.
pub use crate::error::{Error, Result};

/// "libpcp_secure X.Y.Z (rustls A.B.C, aws-lc-rs D.E.F)" (and the FIPS
/// module's version in the FIPS build).
pub use crate::ffi::version_str;

/// The text of `include/pcp_secure.h`, made from the export list.
pub use crate::ffi::abi::{header, EXPORTS, OPENSSL_EXPORTS};

/// The libpcp and libc definitions the library forwards to.
pub use crate::interpose::next::FORWARDS;

/// What an executable (pmproxy) takes from libssl, read from its ELF
/// dynamic section and symbols.
pub use crate::interpose::program::{ssl_use, SslUse};

/// The OpenSSL functions the library calls: libssl's own for objects that
/// are not ours, libcrypto's on the BIOs and certificates of ours.
pub use crate::interpose::openssl::OPENSSL_FORWARDS;
