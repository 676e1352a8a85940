//! TLS contexts and settings: `tls.conf` and the environment, certificates
//! and cipher suites, the shared client and server contexts, the secure
//! upgrade (secure-ack, handshake, redial, server handshakes advanced as
//! bytes arrive) and its errors, the per-descriptor
//! sessions, the fd transport and the data path.

pub(crate) mod accept;
pub(crate) mod ack;
pub(crate) mod certs;
pub(crate) mod client_auth;
pub(crate) mod config;
pub(crate) mod diagnose;
pub(crate) mod groups;
pub(crate) mod handshake;
pub(crate) mod io;
pub(crate) mod keylog;
pub(crate) mod memory_server;
pub(crate) mod objects;
pub(crate) mod redial;
pub(crate) mod renewal;
pub(crate) mod session;
pub(crate) mod store;
pub(crate) mod suites;
pub(crate) mod transport;
