//! # libpcp_secure
//!
//! A replacement for the TLS layer of Performance Co-Pilot's libpcp, built on
//! rustls (aws-lc-rs). Preloaded into (or linked ahead of libpcp in) unchanged
//! PCP 6 and 7 programs, it takes over the secure upgrade of PCP
//! connections, PCP 7.2's HTTPS push client and the data path of every TLS
//! descriptor of its own; every other descriptor stays libpcp's.
//!
//! The layers, each a folder:
//! - [`ffi`] (the C boundary: every export, behind one panic boundary, and
//!   the list they are checked against) and [`interpose`] (the definitions
//!   the exports stand in front of, the `select` hook, facts about the
//!   program we are loaded into);
//! - [`tls`]: settings (`tls.conf` and the environment), certificates,
//!   cipher suites, the shared TLS contexts, the secure upgrade and its
//!   errors, the per-descriptor sessions, the fd transport and the data path;
//! - [`trust`]: how a client decides to trust a server (CA, saved
//!   certificates, asking the user) and how certificates are described;
//! - [`nssdb`]: the reader of NSS `sql:` certificate databases;
//! - [`metrics`]: TLS health published as PCP metrics (MMV);
//! - [`api`]: the small Rust interface the `pcp-secure` tool, the tests and
//!   the fuzz targets use.

pub mod api;
mod error;
pub mod ffi;
mod interpose;
mod log;
mod metrics;
mod nssdb;
mod pcp;
mod tls;
mod trust;
