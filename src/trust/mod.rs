//! Trust decisions for a client: the verifier that judges a server's
//! certificate (CA, saved certificates, NSS "P" entries, the allow-list
//! environment variables), the per-user trust store, the trust-on-first-use
//! question, and how certificates are described to a person.

pub(crate) mod certinfo;
pub(crate) mod exposure;
pub(crate) mod prompt;
pub(crate) mod signature;
pub(crate) mod store;
pub(crate) mod verify;
pub(crate) mod version1;
