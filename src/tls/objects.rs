//! The SSL-object table: the `SSL *` handles our `SSL_new` gave out (for
//! pmproxy's HTTPS clients, made from our server context) and each one's
//! TLS state. Any other `SSL *` is libssl's own and is never looked into.
//!
//! Every OpenSSL user in a process the library is loaded into calls through
//! our `SSL_*` definitions, so "is this one ours?" must be cheap: while no
//! object of ours exists (curl, python, a pmcd client) the answer comes
//! from one atomic load, without a lock.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::tls::memory_server::MemoryServer;

/// One object's state; the handle is this allocation's address, which no
/// live libssl object can share.
pub(crate) type Object = Mutex<MemoryServer>;

/// The process-wide table of our SSL objects.
pub(crate) struct Objects {
    live: AtomicUsize,
    map: Mutex<HashMap<usize, Arc<Object>>>,
}

static OBJECTS: std::sync::LazyLock<Objects> = std::sync::LazyLock::new(|| Objects {
    live: AtomicUsize::new(0),
    map: Mutex::new(HashMap::new()),
});

/// The table.
pub(crate) fn objects() -> &'static Objects {
    &OBJECTS
}

/// An object's state, whatever a panic elsewhere left behind (its fields
/// stay consistent: every change is one assignment).
pub(crate) fn lock(object: &Object) -> MutexGuard<'_, MemoryServer> {
    object.lock().unwrap_or_else(|p| p.into_inner())
}

impl Objects {
    fn map(&self) -> MutexGuard<'_, HashMap<usize, Arc<Object>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new object and returns its handle (never 0).
    pub(crate) fn insert(&self, state: MemoryServer) -> usize {
        let object = Arc::new(Mutex::new(state));
        let handle = Arc::as_ptr(&object) as usize;
        let mut map = self.map();
        map.insert(handle, object);
        self.live.store(map.len(), Ordering::Release);
        handle
    }

    /// The object behind `handle`, or `None` for a handle that is not ours.
    pub(crate) fn get(&self, handle: usize) -> Option<Arc<Object>> {
        if handle == 0 || self.live.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.map().get(&handle).cloned()
    }

    /// Removes `handle`'s object and returns it, if it is ours.
    pub(crate) fn remove(&self, handle: usize) -> Option<Arc<Object>> {
        if handle == 0 || self.live.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut map = self.map();
        let object = map.remove(&handle);
        self.live.store(map.len(), Ordering::Release);
        object
    }
}
