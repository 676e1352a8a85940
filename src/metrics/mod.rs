//! TLS health as PCP metrics, published through PCP's own instrumentation
//! API (MMV: libpcp_mmv writes a memory-mapped file, the mmv PMDA that
//! Debian's pmcd runs serves it). Under `mmv.pcp_secure.PROGRAM.`, where
//! PROGRAM is `pmcd` or `pmproxy` (one file per daemon, so the two on one
//! host never collide) or, for any other program, its name and process id
//! (`pmlogger_1234`):
//!
//! | metric | type | what |
//! |---|---|---|
//! | `handshakes.completed` | counter | TLS handshakes completed |
//! | `handshakes.failed` | counter | TLS handshakes (secure upgrades) that failed |
//! | `handshakes.failures` | counter, by reason | the failed ones by kind ([`Reason`]) |
//! | `handshakes.resumed` | counter | completed handshakes that resumed a session |
//! | `handshakes.protocol` | counter, by version | completed handshakes by TLS version |
//! | `sessions.open` | instant | TLS sessions open now |
//! | `certificate.subject` | string | the served certificate's subject |
//! | `certificate.expires_in` | instant, s | seconds until it ends (negative: expired) |
//! | `certificate.not_after` | discrete, s | when it ends (seconds since 1970) |
//! | `certificate.ca_subject`, `.ca_expires_in`, `.ca_not_after` | | the same of its CA, when known |
//! | `certificate.reloaded` | discrete, s | when it was last (re)loaded (seconds since 1970) |
//! | `certificate.reloads` | counter | how often it was loaded (1 at start) |
//!
//! Programs that serve TLS (a server context is installed: pmcd, pmproxy)
//! publish by default; any other only with `PCP_SECURE_METRICS=1`, and
//! `PCP_SECURE_METRICS=0` turns publishing off everywhere. Publishing is
//! optional: where libpcp_mmv cannot be loaded or its directory is not
//! writable, the library works as before and says so once at debug level.
//!
//! State: the one published file lives in a single `OnceLock` owned by this
//! module ([`published`]). It is set once (on the first event that may
//! publish) and never changed: every later update goes to the shared
//! mapping itself (atomic numbers; strings under the lock in
//! [`Published`]). It cannot live in the certificate store or the session
//! table, because it is fed by both and by pmproxy's SSL objects, and it
//! must outlive a server context that is shut down. A clock thread started
//! with the first certificate refreshes the `expires_in` figures once a
//! second (the PMDA only reads memory, so nothing else would).

mod certificate;
mod mmv;
mod reason;

pub use reason::Reason;

use std::sync::atomic::Ordering;
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

use rustls::ProtocolVersion;

use crate::error::Error;
use crate::tls::config::{self, MetricsSetting, Role};
use mmv::{Indom, Metric, Semantics, Slot, Type, Units, NO_INDOM};

/// Something the metrics count.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event<'a> {
    /// A TLS handshake completed at our end `role`.
    Established {
        /// Which end we are.
        role: Role,
        /// The TLS version negotiated.
        version: Option<ProtocolVersion>,
        /// Whether a session was resumed.
        resumed: bool,
    },
    /// A secure upgrade failed at our end `role`.
    Failed {
        /// Which end we are.
        role: Role,
        /// Why.
        reason: Reason,
    },
    /// A TLS session that completed its handshake ended.
    Closed,
    /// The served certificate was loaded (at start or after a renewal).
    Certificate {
        /// The certificate served (DER).
        leaf: &'a [u8],
        /// The CA that issued it, when known (DER).
        ca: Option<&'a [u8]>,
    },
}

impl Event<'_> {
    /// The completion of `conn`'s handshake at our end `role`.
    pub(crate) fn established(role: Role, conn: &rustls::CommonState) -> Event<'static> {
        Event::Established {
            role,
            version: conn.protocol_version(),
            resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        }
    }

    /// The failure `err` of a secure upgrade at our end `role`.
    pub(crate) fn failed(role: Role, err: &Error) -> Event<'static> {
        Event::Failed {
            role,
            reason: Reason::of(err, role),
        }
    }

    /// Whether this event makes a program that serves TLS publish.
    fn is_server_side(&self) -> bool {
        match self {
            Event::Established { role, .. } | Event::Failed { role, .. } => *role == Role::Server,
            Event::Certificate { .. } => true,
            Event::Closed => false,
        }
    }
}

/// Counts `event`, when this program publishes metrics. The library's own
/// unit tests never publish (their process would write into the system's
/// MMV directory); the MMV file is tested there with a private path.
pub(crate) fn record(event: Event<'_>) {
    if cfg!(test) {
        return;
    }
    if let Some(published) = published(&event) {
        published.apply(&event);
    }
}

/// Counts the end of `session`, when it had completed its handshake (a
/// session still accepting, or refused, was never counted open).
pub(crate) fn record_close(session: &crate::tls::session::Session) {
    if matches!(PUBLISHED.get(), Some(Some(_)))
        && !session.is_accepting()
        && session.with_connection(|_| ()).is_some()
    {
        record(Event::Closed);
    }
}

/// The program's published file (see the module documentation for why it
/// is a `OnceLock` of its own): `None` inside when it does not publish.
static PUBLISHED: OnceLock<Option<Published>> = OnceLock::new();

/// The program's published file: set up on the first event that may
/// publish (see the module documentation), `None` when it does not.
fn published(event: &Event<'_>) -> Option<&'static Published> {
    if let Some(p) = PUBLISHED.get() {
        return p.as_ref();
    }
    let publish = match config::metrics_setting() {
        MetricsSetting::Off => false,
        MetricsSetting::Servers => event.is_server_side(),
        MetricsSetting::Everywhere => !matches!(event, Event::Closed),
    };
    if !publish {
        return None;
    }
    PUBLISHED
        .get_or_init(|| {
            let name = file_name(&program());
            Published::start(mmv::SONAME, &format!("pcp_secure.{name}"), &name)
                .map_err(|why| {
                    crate::log::debug!("TLS metrics are not published: {why}; TLS works as before")
                })
                .ok()
        })
        .as_ref()
}

/// This program's name, as it appears in metric names: letters, digits
/// and `_` only, starting with a letter.
fn program() -> String {
    sanitise(&crate::interpose::program::name().unwrap_or_default())
}

/// `name` with every character but letters, digits and `_` made `_`,
/// and `program` when it would not start with a letter.
fn sanitise(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if clean.starts_with(|c: char| c.is_ascii_alphabetic()) {
        clean
    } else {
        "program".into()
    }
}

/// The name under `mmv.pcp_secure.` for `program`: the daemons (one per
/// host) by name, any other program with its process id.
fn file_name(program: &str) -> String {
    match program {
        "pmcd" | "pmproxy" => program.to_string(),
        other => format!("{other}_{}", std::process::id()),
    }
}

/// A PCP cluster number for the file `name` (1 to 4095), the same for the
/// same name, so that the metrics keep their PMIDs across restarts.
fn cluster(name: &str) -> u32 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    1 + hash % 4095
}

/// Instance domain serials.
const REASONS: u32 = 1;
const VERSIONS: u32 = 2;
/// The instances of `handshakes.protocol`.
const VERSION_NAMES: [&str; 2] = ["TLSv1.2", "TLSv1.3"];

/// The metrics, named relative to `pcp_secure.PROGRAM.`.
fn metrics(prefix: &str) -> Vec<Metric> {
    let m = |item: u32,
             name: &str,
             kind: Type,
             semantics: Semantics,
             units: Units,
             indom: u32,
             short: &'static str,
             long: &'static str| Metric {
        name: format!("{prefix}{name}"),
        item,
        kind,
        semantics,
        units,
        indom,
        short,
        long,
    };
    use Semantics::{Counter, Discrete, Instant};
    use Type::{String as Str, I64, U64};
    vec![
        m(1, "handshakes.completed", U64, Counter, Units::COUNT, NO_INDOM,
          "TLS handshakes completed",
          "TLS handshakes this program completed, as server and as client (libpcp_secure)."),
        m(2, "handshakes.failed", U64, Counter, Units::COUNT, NO_INDOM,
          "TLS handshakes (secure upgrades) that failed",
          "Secure upgrades that failed, before or during the TLS handshake; handshakes.failures says why."),
        m(3, "handshakes.failures", U64, Counter, Units::COUNT, REASONS,
          "failed TLS handshakes by reason",
          "Failed secure upgrades, each counted under one reason: untrusted_issuer, name_mismatch, expired, no_client_cert, timeout, protocol_error, refused_upgrade or other."),
        m(4, "handshakes.resumed", U64, Counter, Units::COUNT, NO_INDOM,
          "TLS handshakes that resumed a session",
          "Completed TLS handshakes that resumed an earlier session instead of a full handshake."),
        m(5, "handshakes.protocol", U64, Counter, Units::COUNT, VERSIONS,
          "completed TLS handshakes by protocol version",
          "Completed TLS handshakes by the TLS version negotiated."),
        m(6, "sessions.open", I64, Instant, Units::COUNT, NO_INDOM,
          "TLS sessions open",
          "TLS sessions of this program that completed their handshake and are not closed yet."),
        m(7, "certificate.subject", Str, Discrete, Units::NONE, NO_INDOM,
          "subject of the served TLS certificate",
          "The subject of the certificate this program serves (tls-cert-file or tls-nssdb); empty before one is loaded."),
        m(8, "certificate.expires_in", I64, Instant, Units::SECONDS, NO_INDOM,
          "seconds until the served TLS certificate expires",
          "Seconds from now until the served certificate's notAfter; negative once it has expired. Refreshed every second."),
        m(9, "certificate.not_after", I64, Discrete, Units::SECONDS, NO_INDOM,
          "end of the served TLS certificate's validity",
          "The served certificate's notAfter, in seconds since 1970-01-01 UTC; 0 before one is loaded."),
        m(10, "certificate.ca_subject", Str, Discrete, Units::NONE, NO_INDOM,
          "subject of the CA that issued the served certificate",
          "The issuing CA's subject, when known (the next certificate of the served chain, or the tls-ca-cert-file certificate that issued it); else empty."),
        m(11, "certificate.ca_expires_in", I64, Instant, Units::SECONDS, NO_INDOM,
          "seconds until the issuing CA's certificate expires",
          "Seconds from now until the issuing CA certificate's notAfter, when the CA is known; else 0. Refreshed every second."),
        m(12, "certificate.ca_not_after", I64, Discrete, Units::SECONDS, NO_INDOM,
          "end of the issuing CA certificate's validity",
          "The issuing CA certificate's notAfter in seconds since 1970-01-01 UTC, when known; else 0."),
        m(13, "certificate.reloaded", I64, Discrete, Units::SECONDS, NO_INDOM,
          "time of the last load of the served certificate",
          "When the served certificate was last loaded (at start, or after its files changed), in seconds since 1970-01-01 UTC."),
        m(14, "certificate.reloads", U64, Counter, Units::COUNT, NO_INDOM,
          "loads of the served certificate",
          "How often the served certificate was loaded: 1 at start, one more for each renewal taken up without a restart."),
    ]
}

/// The instance domains.
fn indoms() -> Vec<Indom> {
    vec![
        Indom {
            serial: REASONS,
            instances: Reason::ALL.iter().map(|r| r.name()).collect(),
            short: "reasons a TLS handshake fails",
            long: "Kinds of secure upgrade failures, as libpcp_secure tells them apart.",
        },
        Indom {
            serial: VERSIONS,
            instances: VERSION_NAMES.to_vec(),
            short: "TLS protocol versions",
            long: "The TLS versions libpcp_secure negotiates.",
        },
    ]
}

/// The certificate figures, each a slot of the file.
struct CertificateSlots {
    subject: Slot,
    expires_in: Slot,
    not_after: Slot,
    ca_subject: Slot,
    ca_expires_in: Slot,
    ca_not_after: Slot,
    reloaded: Slot,
    reloads: Slot,
}

/// The published file and the slots of its values.
struct Published {
    file: mmv::File,
    completed: Slot,
    failed: Slot,
    failures: Vec<Slot>,
    resumed: Slot,
    versions: Vec<Slot>,
    open: Slot,
    /// Held while the strings are written (the only non-atomic updates).
    certificate: Mutex<CertificateSlots>,
    /// Starts the clock thread once.
    clock: Once,
}

impl Published {
    /// Creates the MMV file `file` (a name in `$PCP_TMP_DIR/mmv`, or an
    /// absolute path) through `soname`, with the metrics of program `name`;
    /// the text says why not.
    fn start(soname: &str, file: &str, name: &str) -> Result<Published, String> {
        let prefix = format!("pcp_secure.{name}.");
        let file = mmv::File::create(soname, file, cluster(name), &metrics(&prefix), &indoms())?;
        let slot = |metric: &str| file.slot(&format!("{prefix}{metric}"), None);
        let each = |metric: &str, instances: &[&str]| -> Result<Vec<Slot>, String> {
            instances
                .iter()
                .map(|i| file.slot(&format!("{prefix}{metric}"), Some(i)))
                .collect()
        };
        let reasons: Vec<&str> = Reason::ALL.iter().map(|r| r.name()).collect();
        let certificate = CertificateSlots {
            subject: slot("certificate.subject")?,
            expires_in: slot("certificate.expires_in")?,
            not_after: slot("certificate.not_after")?,
            ca_subject: slot("certificate.ca_subject")?,
            ca_expires_in: slot("certificate.ca_expires_in")?,
            ca_not_after: slot("certificate.ca_not_after")?,
            reloaded: slot("certificate.reloaded")?,
            reloads: slot("certificate.reloads")?,
        };
        let published = Published {
            completed: slot("handshakes.completed")?,
            failed: slot("handshakes.failed")?,
            failures: each("handshakes.failures", &reasons)?,
            resumed: slot("handshakes.resumed")?,
            versions: each("handshakes.protocol", &VERSION_NAMES)?,
            open: slot("sessions.open")?,
            certificate: Mutex::new(certificate),
            clock: Once::new(),
            file,
        };
        crate::log::debug!("TLS metrics published as mmv.pcp_secure.{name}");
        Ok(published)
    }

    /// Counts one event.
    fn apply(&'static self, event: &Event<'_>) {
        let add = |slot: Slot| {
            slot.number().fetch_add(1, Ordering::Relaxed);
        };
        match *event {
            Event::Established {
                version, resumed, ..
            } => {
                add(self.completed);
                add(self.open);
                if resumed {
                    add(self.resumed);
                }
                let index = match version {
                    Some(ProtocolVersion::TLSv1_2) => Some(0),
                    Some(ProtocolVersion::TLSv1_3) => Some(1),
                    _ => None,
                };
                if let Some(slot) = index.and_then(|i| self.versions.get(i)) {
                    add(*slot);
                }
            }
            Event::Failed { reason, .. } => {
                add(self.failed);
                if let Some(slot) = self.failures.get(reason as usize) {
                    add(*slot);
                }
            }
            Event::Closed => {
                // Never below 0 (a session opened before publishing began).
                let _ =
                    self.open
                        .number()
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                            (n > 0).then(|| n - 1)
                        });
            }
            Event::Certificate { leaf, ca } => self.certificate(leaf, ca),
        }
    }

    /// Publishes the served certificate (and its CA's) and the time.
    fn certificate(&'static self, leaf: &[u8], ca: Option<&[u8]>) {
        let slots = self.certificate.lock().unwrap_or_else(|p| p.into_inner());
        let now = certificate::now();
        let leaf = certificate::Facts::of(leaf);
        let ca = ca.and_then(certificate::Facts::of);
        let set =
            |facts: Option<&certificate::Facts>, subject: Slot, not_after: Slot, left: Slot| {
                let (text, end) = facts.map_or(("", 0), |f| (f.subject.as_str(), f.not_after));
                self.file.set_string(subject, text);
                not_after.number().store(end, Ordering::Relaxed);
                left.number()
                    .store(if end == 0 { 0 } else { end - now }, Ordering::Relaxed);
            };
        set(
            leaf.as_ref(),
            slots.subject,
            slots.not_after,
            slots.expires_in,
        );
        set(
            ca.as_ref(),
            slots.ca_subject,
            slots.ca_not_after,
            slots.ca_expires_in,
        );
        slots.reloaded.number().store(now, Ordering::Relaxed);
        slots.reloads.number().fetch_add(1, Ordering::Relaxed);
        drop(slots);
        self.clock.call_once(|| start_clock(self));
    }

    /// Refreshes the seconds left of both certificates.
    fn tick(&self) {
        let slots = self.certificate.lock().unwrap_or_else(|p| p.into_inner());
        let now = certificate::now();
        for (end, left) in [
            (slots.not_after, slots.expires_in),
            (slots.ca_not_after, slots.ca_expires_in),
        ] {
            let end = end.number().load(Ordering::Relaxed);
            left.number()
                .store(if end == 0 { 0 } else { end - now }, Ordering::Relaxed);
        }
    }
}

/// How often the seconds left are refreshed.
const TICK: Duration = Duration::from_secs(1);

/// Starts the thread that refreshes the seconds left, with every signal
/// blocked in it (the program's signals stay with its own threads).
fn start_clock(published: &'static Published) {
    // SAFETY: sigset_t is plain data that sigfillset initialises;
    // pthread_sigmask is given valid pointers to it and to `old`.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let blocked = unsafe {
        libc::sigfillset(&mut all) == 0
            && libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old) == 0
    };
    let spawned = std::thread::Builder::new()
        .name("pcp_secure-metrics".into())
        .spawn(move || loop {
            published.tick();
            std::thread::sleep(TICK);
        });
    if blocked {
        // SAFETY: restores this thread's mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    }
    if let Err(e) = spawned {
        crate::log::debug!(
            "TLS metrics: the certificate's seconds left are not refreshed (no thread: {e})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names_fit_metric_names() {
        assert_eq!(sanitise("pmcd"), "pmcd");
        assert_eq!(sanitise("pmlogger-push"), "pmlogger_push");
        assert_eq!(sanitise("3rd"), "program");
        assert_eq!(sanitise(""), "program");
        assert_eq!(file_name("pmproxy"), "pmproxy");
        assert_eq!(
            file_name("pminfo"),
            format!("pminfo_{}", std::process::id())
        );
        assert!((1..=4095).contains(&cluster("pmcd")));
        assert_ne!(cluster("pmcd"), cluster("pmproxy"));
    }

    #[test]
    fn help_texts_fit_the_mmv_format() {
        for m in metrics("pcp_secure.pmlogger_4194304.") {
            assert!(m.name.len() < 64, "{}", m.name);
            assert!(m.short.len() < 255 && m.long.len() < 255, "{}", m.name);
        }
        let items: std::collections::HashSet<u32> = metrics("").iter().map(|m| m.item).collect();
        assert_eq!(items.len(), metrics("").len());
    }

    /// The real libpcp_mmv, an MMV file in a private directory: what the
    /// events write is in the file, as PCP's own mmvdump reads it.
    #[test]
    fn events_are_counted_in_the_mmv_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pcp_secure.unit");
        let published = Published::start(mmv::SONAME, path.to_str().unwrap(), "unit")
            .unwrap_or_else(|e| panic!("{e} (run scripts/install-deps)"));
        let p: &'static Published = Box::leak(Box::new(published));
        let tls13 = Event::Established {
            role: Role::Server,
            version: Some(ProtocolVersion::TLSv1_3),
            resumed: false,
        };
        p.apply(&tls13);
        p.apply(&tls13);
        p.apply(&Event::Established {
            role: Role::Client,
            version: Some(ProtocolVersion::TLSv1_2),
            resumed: true,
        });
        p.apply(&Event::Closed);
        for reason in [Reason::Timeout, Reason::Timeout, Reason::UntrustedIssuer] {
            p.apply(&Event::Failed {
                role: Role::Server,
                reason,
            });
        }
        let n = |slot: Slot| slot.number().load(Ordering::Relaxed);
        assert_eq!(n(p.completed), 3);
        assert_eq!(n(p.resumed), 1);
        assert_eq!(n(p.open), 2);
        assert_eq!(n(p.failed), 3);
        assert_eq!(n(p.failures[Reason::Timeout as usize]), 2);
        assert_eq!(n(p.failures[Reason::UntrustedIssuer as usize]), 1);
        assert_eq!(n(p.failures[Reason::Expired as usize]), 0);
        assert_eq!((n(p.versions[0]), n(p.versions[1])), (1, 2));
        for _ in 0..3 {
            p.apply(&Event::Closed);
        }
        assert_eq!(n(p.open), 0, "never below 0");

        let dump = std::process::Command::new("/var/lib/pcp/pmdas/mmv/mmvdump")
            .arg(&path)
            .output()
            .expect("mmvdump runs (run scripts/install-deps)");
        let text = String::from_utf8_lossy(&dump.stdout);
        assert!(dump.status.success(), "{text}");
        for name in [
            "pcp_secure.unit.handshakes.completed",
            "pcp_secure.unit.sessions.open",
            "timeout",
        ] {
            assert!(text.contains(name), "{name} not in mmvdump output:\n{text}");
        }
    }
}
