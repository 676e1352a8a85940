//! # libpcp_secure
//!
//! A replacement for the TLS layer of Performance Co-Pilot's libpcp, built on
//! rustls (ring). Preloaded into (or linked ahead of libpcp in) unchanged
//! PCP 6 programs, it takes over the secure upgrade of PCP connections and
//! the data path of every TLS descriptor; plain descriptors behave exactly
//! as before.
//!
//! Modules, by what they do:
//! - [`config`]: `tls.conf` and environment settings;
//! - [`certs`], [`suites`], [`store`]: certificates, cipher suites and the
//!   shared server/client TLS contexts;
//! - [`ack`], [`handshake`], [`diagnose`]: the secure upgrade and its errors;
//! - [`verify`], [`trust`], [`prompt`], [`certinfo`]: how a client decides
//!   to trust a server (CA, saved certificates, asking the user);
//! - [`session`], [`io`], [`select`], [`sock`]: per-descriptor state and I/O;
//! - [`next`]: the libpcp/libc definitions we stand in front of;
//! - [`ffi`]: the exported C ABI, behind one panic boundary.

pub mod ack;
pub mod certinfo;
pub mod certs;
pub mod config;
pub mod diagnose;
pub mod error;
pub mod ffi;
pub mod handshake;
pub mod io;
pub mod keylog;
pub mod log;
pub mod next;
pub mod nssconf;
pub mod nssdb;
pub mod pcp;
pub mod program;
pub mod prompt;
pub mod redial;
pub mod select;
pub mod session;
pub mod sock;
pub mod store;
pub mod suites;
pub mod trust;
pub mod verify;

pub use ffi::version_str;
