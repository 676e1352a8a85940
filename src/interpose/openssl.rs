//! The real OpenSSL behind our `SSL_*` definitions: libssl's own functions,
//! for every SSL object that is not ours (curl, python's `ssl`, pmproxy's
//! own OpenSSL clients), and the libcrypto functions we use on the memory
//! BIOs pmproxy hands us and for the certificates we hand back.
//!
//! Every process the library is loaded into gets our `SSL_*` definitions,
//! so the forward path must work anywhere: each function is looked up on
//! first use, and again on every later call until it is found (a lookup
//! that failed is never remembered, since libssl may be loaded later).
//! Lookups go to the next definition in the global search order
//! (`dlsym(RTLD_NEXT)`); a libssl that is loaded privately (python's `_ssl`
//! module is opened with `RTLD_LOCAL`) is found among the loaded objects by
//! name and asked directly. A found address is kept in an atomic, so the
//! common case takes no lock.

use std::ffi::{c_int, c_long, c_void, CStr};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, Ordering};

/// One function of libssl or libcrypto, found on first use.
struct Real {
    name: &'static CStr,
    addr: AtomicPtr<c_void>,
}

impl Real {
    const fn new(name: &'static CStr) -> Real {
        Real {
            name,
            addr: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The function's address, or `None` when no loaded object defines it
    /// (asked again next time).
    fn get(&self) -> Option<*mut c_void> {
        let known = self.addr.load(Ordering::Acquire);
        if !known.is_null() {
            return Some(known);
        }
        let found = find(self.name)?;
        self.addr.store(found, Ordering::Release);
        Some(found)
    }
}

/// The next definition of `name` after ours, or libssl's/libcrypto's own
/// where they are not in the global search order.
fn find(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: name is NUL-terminated; RTLD_NEXT is a valid pseudo-handle.
    let next = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    if !next.is_null() {
        return Some(next);
    }
    loaded_openssl()
        .into_iter()
        .find_map(|path| symbol_of(&path, name))
}

/// The paths of the loaded libssl and libcrypto objects.
fn loaded_openssl() -> Vec<std::ffi::CString> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: the loader passes a valid entry; data is the Vec below.
        let (info, found) = unsafe { (&*info, &mut *data.cast::<Vec<std::ffi::CString>>()) };
        if info.dlpi_name.is_null() {
            return 0;
        }
        // SAFETY: dlpi_name is a NUL-terminated path owned by the loader.
        let path = unsafe { CStr::from_ptr(info.dlpi_name) };
        let base = path.to_bytes().rsplit(|&b| b == b'/').next().unwrap_or(&[]);
        if base.starts_with(b"libssl.so") || base.starts_with(b"libcrypto.so") {
            found.push(path.to_owned());
        }
        0
    }
    let mut found: Vec<std::ffi::CString> = Vec::new();
    // SAFETY: the callback only reads the entries it is given and pushes
    // into `found`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut found as *mut Vec<_>).cast()) };
    found
}

/// `name` as defined by (or below) the already loaded object `path`.
fn symbol_of(path: &CStr, name: &CStr) -> Option<*mut c_void> {
    // SAFETY: RTLD_NOLOAD only returns a handle to an object already loaded
    // (adding a reference, dropped again below); path is NUL-terminated.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return None;
    }
    // SAFETY: a valid handle and a NUL-terminated name.
    let sym = unsafe { libc::dlsym(handle, name.as_ptr()) };
    // SAFETY: drops the reference taken above; the object stays loaded
    // (it was loaded before us and is still referenced by its loader).
    unsafe { libc::dlclose(handle) };
    (!sym.is_null()).then_some(sym)
}

macro_rules! real_fns {
    ($($(#[$doc:meta])* $fn_name:ident, $ty:ty, $sym:literal;)*) => {
        $(
            $(#[$doc])*
            pub(crate) fn $fn_name() -> Option<$ty> {
                static REAL: Real = Real::new($sym);
                let addr = REAL.get()?;
                // SAFETY: the symbol was found under this name, whose C type is $ty.
                Some(unsafe { std::mem::transmute::<*mut c_void, $ty>(addr) })
            }
        )*

        /// Every OpenSSL function the library calls, by symbol name (for
        /// MATRIX.md and its check).
        pub const OPENSSL_FORWARDS: &[&CStr] = &[$($sym),*];
    };
}

/// `SSL *SSL_new(SSL_CTX *)`
pub(crate) type SslNewFn = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
/// `void SSL_set_accept_state(SSL *)`, `void SSL_free(SSL *)`
pub(crate) type SslVoidFn = unsafe extern "C" fn(*mut c_void);
/// `void SSL_set_bio(SSL *, BIO *, BIO *)`
pub(crate) type SslSetBioFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void);
/// `int SSL_read_ex(SSL *, void *, size_t, size_t *)`
pub(crate) type SslReadExFn =
    unsafe extern "C" fn(*mut c_void, *mut c_void, libc::size_t, *mut libc::size_t) -> c_int;
/// `int SSL_write(SSL *, const void *, int)`
pub(crate) type SslWriteFn = unsafe extern "C" fn(*mut c_void, *const c_void, c_int) -> c_int;
/// `int SSL_get_error(const SSL *, int)`
pub(crate) type SslGetErrorFn = unsafe extern "C" fn(*const c_void, c_int) -> c_int;
/// `X509 *SSL_get1_peer_certificate(const SSL *)`
pub(crate) type SslPeerCertFn = unsafe extern "C" fn(*const c_void) -> *mut c_void;
/// `int BIO_read(BIO *, void *, int)`
type BioReadFn = unsafe extern "C" fn(*mut c_void, *mut c_void, c_int) -> c_int;
/// `int BIO_write(BIO *, const void *, int)`
type BioWriteFn = unsafe extern "C" fn(*mut c_void, *const c_void, c_int) -> c_int;
/// `void BIO_free_all(BIO *)`
type BioFreeAllFn = unsafe extern "C" fn(*mut c_void);
/// `X509 *d2i_X509(X509 **, const unsigned char **, long)`
type D2iX509Fn = unsafe extern "C" fn(*mut *mut c_void, *mut *const u8, c_long) -> *mut c_void;

real_fns! {
    /// libssl's `SSL_new`.
    ssl_new, SslNewFn, c"SSL_new";
    /// libssl's `SSL_set_accept_state`.
    ssl_set_accept_state, SslVoidFn, c"SSL_set_accept_state";
    /// libssl's `SSL_set_bio`.
    ssl_set_bio, SslSetBioFn, c"SSL_set_bio";
    /// libssl's `SSL_read_ex`.
    ssl_read_ex, SslReadExFn, c"SSL_read_ex";
    /// libssl's `SSL_write`.
    ssl_write, SslWriteFn, c"SSL_write";
    /// libssl's `SSL_get_error`.
    ssl_get_error, SslGetErrorFn, c"SSL_get_error";
    /// libssl's `SSL_get1_peer_certificate`.
    ssl_get1_peer_certificate, SslPeerCertFn, c"SSL_get1_peer_certificate";
    /// libssl's `SSL_free`.
    ssl_free, SslVoidFn, c"SSL_free";
    /// libcrypto's `BIO_read` (on pmproxy's memory BIOs).
    bio_read, BioReadFn, c"BIO_read";
    /// libcrypto's `BIO_write` (on pmproxy's memory BIOs).
    bio_write, BioWriteFn, c"BIO_write";
    /// libcrypto's `BIO_free_all` (an SSL object owns its BIOs).
    bio_free_all, BioFreeAllFn, c"BIO_free_all";
    /// libcrypto's `d2i_X509` (the peer certificate handed back).
    d2i_x509, D2iX509Fn, c"d2i_X509";
}

/// One OpenSSL `BIO` that an SSL object of ours owns (pmproxy's memory
/// BIOs, from `SSL_set_bio`), used only through libcrypto's own functions.
#[derive(Debug)]
pub(crate) struct Bio(NonNull<c_void>);

// SAFETY: an OpenSSL BIO may be used from any thread as long as it is not
// used by two at once; each Bio is owned by one SSL object, whose state is
// behind a mutex.
unsafe impl Send for Bio {}

impl Bio {
    /// Takes ownership of `ptr` (NULL gives `None`).
    ///
    /// # Safety
    /// `ptr` is NULL or a live OpenSSL `BIO` whose reference the caller
    /// hands over: nothing else frees it, and it stays valid until
    /// [`Bio::free`].
    pub(crate) unsafe fn adopt(ptr: *mut c_void) -> Option<Bio> {
        NonNull::new(ptr).map(Bio)
    }

    /// The BIO's address.
    pub(crate) fn as_ptr(&self) -> *mut c_void {
        self.0.as_ptr()
    }

    /// Reads what the BIO holds into `buf`; 0 when it is drained (an empty
    /// memory BIO answers -1 with "retry" set) or on any failure.
    pub(crate) fn read(&self, buf: &mut [u8]) -> usize {
        let Some(read) = bio_read() else { return 0 };
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: self is a live BIO (see `adopt`); buf is writable for len bytes.
        let n = unsafe { read(self.as_ptr(), buf.as_mut_ptr().cast(), len) };
        usize::try_from(n).unwrap_or(0)
    }

    /// Appends all of `data` to the BIO; false when libcrypto refuses.
    pub(crate) fn write_all(&self, mut data: &[u8]) -> bool {
        let Some(write) = bio_write() else {
            return false;
        };
        while !data.is_empty() {
            let len = c_int::try_from(data.len()).unwrap_or(c_int::MAX);
            // SAFETY: self is a live BIO; data is readable for len bytes.
            let n = unsafe { write(self.as_ptr(), data.as_ptr().cast(), len) };
            match usize::try_from(n) {
                Ok(n) if n > 0 => data = &data[n.min(data.len())..],
                _ => return false,
            }
        }
        true
    }

    /// Frees the BIO (and any BIOs chained to it), as `SSL_free` does.
    pub(crate) fn free(self) {
        if let Some(free) = bio_free_all() {
            // SAFETY: self owns a live BIO, which is not used afterwards.
            unsafe { free(self.as_ptr()) };
        }
    }
}

/// A new OpenSSL `X509` made from `der` (the caller owns it and frees it
/// with `X509_free`), or NULL when libcrypto is not loaded or cannot
/// parse it.
pub(crate) fn x509_from_der(der: &[u8]) -> *mut c_void {
    let Some(d2i) = d2i_x509() else {
        return std::ptr::null_mut();
    };
    let Ok(len) = c_long::try_from(der.len()) else {
        return std::ptr::null_mut();
    };
    let mut p = der.as_ptr();
    // SAFETY: p points at len readable bytes; d2i_X509 only reads them and
    // advances p; a NULL first argument asks for a new object.
    unsafe { d2i(std::ptr::null_mut(), &mut p, len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_function_is_looked_up_again_and_found_ones_are_kept() {
        static MISSING: Real = Real::new(c"pcp_secure_no_such_function");
        assert_eq!(MISSING.get(), None);
        assert!(MISSING.addr.load(Ordering::Relaxed).is_null());
        static PRESENT: Real = Real::new(c"getpid");
        let found = PRESENT.get().expect("libc's getpid");
        assert_eq!(PRESENT.addr.load(Ordering::Relaxed), found);
    }

    /// libcrypto, loaded into the test process's global scope (the test
    /// binary does not link it), so that the lookups above find it.
    fn load_libcrypto() {
        // SAFETY: a NUL-terminated name; RTLD_GLOBAL only adds the library
        // to the global scope, its constructors are OpenSSL's own.
        let handle = unsafe {
            libc::dlopen(
                c"libcrypto.so.3".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_GLOBAL,
            )
        };
        assert!(
            !handle.is_null(),
            "libcrypto.so.3 is not installed (libssl3)"
        );
    }

    /// A new empty memory BIO.
    fn memory_bio() -> *mut c_void {
        let new = find(c"BIO_new").expect("BIO_new");
        let s_mem = find(c"BIO_s_mem").expect("BIO_s_mem");
        // SAFETY: libcrypto's functions of these types.
        unsafe {
            let s_mem: unsafe extern "C" fn() -> *const c_void = std::mem::transmute(s_mem);
            let new: unsafe extern "C" fn(*const c_void) -> *mut c_void = std::mem::transmute(new);
            new(s_mem())
        }
    }

    /// Everything in `bio` (which stays owned by the server).
    fn drain(bio: *mut c_void) -> Vec<u8> {
        // SAFETY: a live BIO owned by the server under test; this view of
        // it is never freed.
        let view = std::mem::ManuallyDrop::new(unsafe { Bio::adopt(bio) }.unwrap());
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = view.read(&mut buf);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Appends `data` to `bio` (owned by the server).
    fn fill(bio: *mut c_void, data: &[u8]) {
        // SAFETY: as in drain.
        let view = std::mem::ManuallyDrop::new(unsafe { Bio::adopt(bio) }.unwrap());
        assert!(view.write_all(data));
    }

    /// A server connection and a client trusting its certificate.
    fn pair() -> (rustls::ServerConnection, rustls::ClientConnection) {
        use std::sync::Arc;
        let provider = crate::tls::suites::provider(&Default::default()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![der.clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (
            rustls::ServerConnection::new(Arc::new(server)).unwrap(),
            rustls::ClientConnection::new(Arc::new(client), "localhost".try_into().unwrap())
                .unwrap(),
        )
    }

    /// The calls pmproxy makes, in its order, against a rustls client on
    /// the other side of real libcrypto memory BIOs: the handshake (want
    /// read until it is done), a request in, a large reply out, the
    /// client's close_notify (zero return); garbage gets "SSL" and nothing
    /// sent after it; freeing frees each BIO once (glibc aborts on a double
    /// free).
    #[test]
    fn memory_server_serves_pmproxy_through_libcrypto_bios() {
        use crate::tls::memory_server::{MemoryServer, Status};
        use std::io::{Read, Write};
        load_libcrypto();
        let (conn, mut client) = pair();
        let (rbio, wbio) = (memory_bio(), memory_bio());
        let mut server = MemoryServer::new(conn);
        // SAFETY: two fresh BIOs handed over to the server.
        server.set_bios(unsafe { Bio::adopt(rbio) }, unsafe { Bio::adopt(wbio) });
        let mut buf = vec![0u8; 65536];
        let mut rounds = 0;
        while client.is_handshaking() {
            rounds += 1;
            assert!(rounds < 10, "the handshake does not finish");
            let mut out = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut out).unwrap();
            }
            fill(rbio, &out);
            assert_eq!(server.read(&mut buf), None);
            assert_eq!(server.status(), Status::WantRead);
            let back = drain(wbio);
            client.read_tls(&mut back.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        client
            .writer()
            .write_all(b"GET /pmapi/metric HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut out).unwrap();
        }
        fill(rbio, &out);
        let n = server.read(&mut buf).expect("the request");
        assert_eq!(&buf[..n], b"GET /pmapi/metric HTTP/1.1\r\n\r\n");
        assert_eq!(server.status(), Status::None);
        assert_eq!(server.read(&mut buf), None);
        assert_eq!(server.status(), Status::WantRead);

        let reply: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(server.write(&reply), Some(reply.len()));
        let wire = drain(wbio);
        let mut rest = wire.as_slice();
        let mut got = Vec::new();
        while !rest.is_empty() {
            client.read_tls(&mut rest).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut got);
        }
        assert!(
            got == reply,
            "the reply arrives whole ({} bytes)",
            got.len()
        );
        assert_eq!(server.write(&[]), None);
        assert_eq!(server.status(), Status::Syscall);

        client.send_close_notify();
        let mut out = Vec::new();
        client.write_tls(&mut out).unwrap();
        fill(rbio, &out);
        assert_eq!(server.read(&mut buf), None);
        assert_eq!(server.status(), Status::ZeroReturn);
        server.release();

        let (conn, _) = pair();
        let (rbio, wbio) = (memory_bio(), memory_bio());
        let mut hostile = MemoryServer::new(conn);
        // SAFETY: as above; here both directions share one BIO too.
        hostile.set_bios(unsafe { Bio::adopt(rbio) }, unsafe { Bio::adopt(wbio) });
        fill(rbio, b"\x16\x03\x01\x00\x08garbage!");
        assert_eq!(hostile.read(&mut buf), None);
        assert_eq!(hostile.status(), Status::Ssl);
        // rustls answers some malformed input with an alert and some with
        // nothing (pmproxy closes the connection either way): never with
        // anything else.
        let answer = drain(wbio);
        assert!(
            answer.is_empty() || answer[0] == 0x15,
            "nothing or an alert: {answer:?}"
        );
        assert_eq!(
            hostile.write(b"late"),
            None,
            "nothing is sent after a failure"
        );
        hostile.release();

        let (conn, _) = pair();
        let one = memory_bio();
        let mut shared = MemoryServer::new(conn);
        // SAFETY: one BIO for both directions, handed over once.
        shared.set_bios(unsafe { Bio::adopt(one) }, unsafe { Bio::adopt(one) });
        shared.release();
    }
}
