//! PCP's MMV instrumentation library (`libpcp_mmv.so.1`, the same soname
//! and the same registry API in PCP 6.0, 6.3 and 7.2), loaded with `dlopen`
//! at run time: the library has no link-time dependency on it. The file
//! is described with libpcp_mmv's registry calls and created by
//! `mmv_stats_start` (in `$PCP_TMP_DIR/mmv`, as libpcp finds
//! `PCP_TMP_DIR`); the value slots `mmv_lookup_value_desc` returns point
//! into the shared mapping, where numbers are then updated with atomic
//! instructions (the mmv PMDA reads them with aligned 64-bit loads) and
//! strings with `mmv_set_string`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::AtomicI64;

/// The soname loaded.
pub(crate) const SONAME: &str = "libpcp_mmv.so.1";

/// `mmv_metric_type_t` values used here (PCP's `PM_TYPE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Type {
    /// `MMV_TYPE_I64`: a signed 64-bit number.
    I64 = 2,
    /// `MMV_TYPE_U64`: an unsigned 64-bit number.
    U64 = 3,
    /// `MMV_TYPE_STRING`: a string of up to 255 bytes.
    String = 6,
}

/// `mmv_metric_sem_t` values (PCP's `PM_SEM_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Semantics {
    /// Only ever grows.
    Counter = 1,
    /// A value at this moment.
    Instant = 3,
    /// Changes rarely (a name, a date).
    Discrete = 4,
}

/// PCP's `pmUnits`: one 32-bit word of bit-fields. On little-endian
/// machines (the only ones this is built for) the compiler lays them out
/// from the low bits: 8 bits PCP reserves, then scaleCount, scaleTime,
/// scaleSpace, dimCount, dimTime, dimSpace, 4 bits each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Units(u32);

impl Units {
    /// No unit (a string, an instance count).
    pub(crate) const NONE: Units = Units(0);
    /// Events (dimCount 1, `PM_COUNT_ONE`).
    pub(crate) const COUNT: Units = Units(1 << 20);
    /// Seconds (dimTime 1, `PM_TIME_SEC` = 3).
    pub(crate) const SECONDS: Units = Units((1 << 24) | (3 << 12));
}

/// `PM_INDOM_NULL`: a metric with a single value.
pub(crate) const NO_INDOM: u32 = u32::MAX;
/// `MMV_FLAG_NOPREFIX`: metric names are taken as they are (not prefixed
/// with the file's name).
const FLAG_NOPREFIX: c_int = 0x1;
/// `MMV_FLAG_PROCESS`: the PMDA drops the file once its process is gone.
const FLAG_PROCESS: c_int = 0x2;

type RegistryFn = unsafe extern "C" fn(*const c_char, c_int, c_int) -> *mut c_void;
type AddIndomFn = unsafe extern "C" fn(*mut c_void, c_int, *const c_char, *const c_char) -> c_int;
type AddInstanceFn = unsafe extern "C" fn(*mut c_void, c_int, c_int, *const c_char) -> c_int;
type AddMetricFn = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    c_int,
    c_int,
    c_int,
    Units,
    c_int,
    *const c_char,
    *const c_char,
) -> c_int;
type StartFn = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
type LookupFn = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *mut c_void;
type SetStringFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *const c_char, c_int);
type GetConfigFn = unsafe extern "C" fn(*const c_char) -> *mut c_char;

/// The functions of libpcp_mmv used here.
struct Api {
    registry: RegistryFn,
    add_indom: AddIndomFn,
    add_instance: AddInstanceFn,
    add_metric: AddMetricFn,
    start: StartFn,
    lookup: LookupFn,
    set_string: SetStringFn,
    /// libpcp's `pmGetOptionalConfig` (libpcp_mmv's dependency), for
    /// naming the directory in messages; absent in very old releases.
    optional_config: Option<GetConfigFn>,
}

/// Loads `soname` and finds the functions; the text says what is missing.
fn load(soname: &str) -> Result<Api, String> {
    let name = CString::new(soname).map_err(|_| format!("\"{soname}\" is not a library name"))?;
    // SAFETY: a NUL-terminated name; dlopen has no other precondition. The
    // handle is never closed, so the functions found stay valid.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!("{soname} cannot be loaded ({})", dl_error()));
    }
    let find = |symbol: &CStr| -> Result<*mut c_void, String> {
        // SAFETY: a live handle and a NUL-terminated name.
        let found = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
        if found.is_null() {
            Err(format!(
                "{soname} has no function {}",
                symbol.to_string_lossy()
            ))
        } else {
            Ok(found)
        }
    };
    // SAFETY: (each transmute below) the symbol is libpcp_mmv's (or
    // libpcp's) function of that name, whose C prototype in PCP 6.0 to 7.2
    // (mmv_stats.h, pmapi.h) is the one the target type spells; function
    // and data pointers have the same size here.
    unsafe {
        Ok(Api {
            registry: std::mem::transmute::<*mut c_void, RegistryFn>(find(c"mmv_stats_registry")?),
            add_indom: std::mem::transmute::<*mut c_void, AddIndomFn>(find(
                c"mmv_stats_add_indom",
            )?),
            add_instance: std::mem::transmute::<*mut c_void, AddInstanceFn>(find(
                c"mmv_stats_add_instance",
            )?),
            add_metric: std::mem::transmute::<*mut c_void, AddMetricFn>(find(
                c"mmv_stats_add_metric",
            )?),
            start: std::mem::transmute::<*mut c_void, StartFn>(find(c"mmv_stats_start")?),
            lookup: std::mem::transmute::<*mut c_void, LookupFn>(find(c"mmv_lookup_value_desc")?),
            set_string: std::mem::transmute::<*mut c_void, SetStringFn>(find(c"mmv_set_string")?),
            optional_config: find(c"pmGetOptionalConfig")
                .ok()
                .map(|f| std::mem::transmute::<*mut c_void, GetConfigFn>(f)),
        })
    }
}

/// The dynamic loader's last error, in words.
fn dl_error() -> String {
    // SAFETY: dlerror takes no arguments; the text it returns (if any) is
    // NUL-terminated and valid until the next dl* call on this thread.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        "no reason given".into()
    } else {
        // SAFETY: checked non-NULL, NUL-terminated (above).
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    }
}

/// One metric to describe.
pub(crate) struct Metric {
    /// Full name, as pminfo shows it after `mmv.`.
    pub(crate) name: String,
    /// Item number, unique in the file.
    pub(crate) item: u32,
    /// Value type.
    pub(crate) kind: Type,
    /// Semantics.
    pub(crate) semantics: Semantics,
    /// Units.
    pub(crate) units: Units,
    /// Instance domain serial, or [`NO_INDOM`].
    pub(crate) indom: u32,
    /// One-line help.
    pub(crate) short: &'static str,
    /// Longer help (under 256 bytes).
    pub(crate) long: &'static str,
}

/// One instance domain to describe.
pub(crate) struct Indom {
    /// Serial, unique in the file (not 0).
    pub(crate) serial: u32,
    /// Instance names, numbered from 0 in this order.
    pub(crate) instances: Vec<&'static str>,
    /// One-line help.
    pub(crate) short: &'static str,
    /// Longer help.
    pub(crate) long: &'static str,
}

/// The file described and created.
pub(crate) struct File {
    api: Api,
    /// The mapping's start, as `mmv_stats_start` returned it.
    addr: *mut c_void,
    /// Every string handed to the registry: libpcp_mmv keeps the pointers.
    _strings: Vec<CString>,
}

// SAFETY: the mapping is shared memory that lives as long as the process
// (it is never unmapped); the API is a set of function pointers; the
// strings are never changed. Every write into the mapping through a
// `File` is an atomic operation or `mmv_set_string` under the caller's
// lock (see `Slot`).
unsafe impl Send for File {}
// SAFETY: as for Send.
unsafe impl Sync for File {}

/// A value slot inside the mapping.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot(*mut c_void);

// SAFETY: a slot points into the process-long shared mapping; writes
// through it are atomic (numbers) or serialised by the caller (strings).
unsafe impl Send for Slot {}
// SAFETY: as for Send.
unsafe impl Sync for Slot {}

impl Slot {
    /// The slot's 64-bit number, for atomic updates.
    pub(crate) fn number(self) -> &'static AtomicI64 {
        // SAFETY: `File::slot` only hands out non-NULL slots aligned to 8
        // bytes inside the mapping, which is never unmapped; the first 8
        // bytes of an MMV value are its pmAtomValue, which the PMDA reads
        // as a 64-bit integer; nothing else in this process writes them.
        unsafe { AtomicI64::from_ptr(self.0.cast::<i64>()) }
    }
}

impl File {
    /// Describes `metrics` and `indoms` and creates the MMV file `name`
    /// (a name in `$PCP_TMP_DIR/mmv`, or an absolute path) through
    /// `soname`, with PCP cluster number `cluster`; the text says why not.
    pub(crate) fn create(
        soname: &str,
        name: &str,
        cluster: u32,
        metrics: &[Metric],
        indoms: &[Indom],
    ) -> Result<File, String> {
        let api = load(soname)?;
        let mut strings = Vec::new();
        let mut keep = |text: &str| -> Result<*const c_char, String> {
            let c = CString::new(text).map_err(|_| format!("\"{text}\" holds a NUL byte"))?;
            let ptr = c.as_ptr();
            strings.push(c);
            Ok(ptr)
        };
        let file = keep(name)?;
        let as_int = |n: u32| c_int::from_ne_bytes(n.to_ne_bytes());
        // SAFETY: a NUL-terminated name kept alive with the File (the
        // registry keeps the pointer); no other precondition.
        let registry =
            unsafe { (api.registry)(file, as_int(cluster), FLAG_NOPREFIX | FLAG_PROCESS) };
        if registry.is_null() {
            return Err(format!(
                "mmv_stats_registry failed ({})",
                std::io::Error::last_os_error()
            ));
        }
        let check = |what: &str, status: c_int| {
            if status < 0 {
                Err(format!(
                    "{what} failed ({})",
                    std::io::Error::last_os_error()
                ))
            } else {
                Ok(())
            }
        };
        for indom in indoms {
            let (short, long) = (keep(indom.short)?, keep(indom.long)?);
            // SAFETY: the live registry; strings kept alive with the File.
            check("mmv_stats_add_indom", unsafe {
                (api.add_indom)(registry, as_int(indom.serial), short, long)
            })?;
            for (id, instance) in indom.instances.iter().enumerate() {
                let instance = keep(instance)?;
                let id = c_int::try_from(id).map_err(|_| "too many instances".to_string())?;
                // Its status is not looked at: PCP 6 reports EINVAL even when
                // the instance was added (fixed in 7). Every instance's value
                // slot is looked up once the file exists, which is the check.
                // SAFETY: as above.
                unsafe { (api.add_instance)(registry, as_int(indom.serial), id, instance) };
            }
        }
        for m in metrics {
            let (metric, short, long) = (keep(&m.name)?, keep(m.short)?, keep(m.long)?);
            // SAFETY: as above; the enums are C ints of PCP's values.
            check("mmv_stats_add_metric", unsafe {
                (api.add_metric)(
                    registry,
                    metric,
                    as_int(m.item),
                    m.kind as c_int,
                    m.semantics as c_int,
                    m.units,
                    as_int(m.indom),
                    short,
                    long,
                )
            })?;
        }
        // SAFETY: the live, fully described registry. It is never freed
        // (that would unmap and remove the file while slots point into it).
        let addr = unsafe { (api.start)(registry) };
        if addr.is_null() {
            let why = std::io::Error::last_os_error();
            return Err(format!(
                "the MMV file \"{name}\" cannot be created in {} ({why})",
                Self::directory(&api)
            ));
        }
        Ok(File {
            api,
            addr,
            _strings: strings,
        })
    }

    /// Where libpcp_mmv puts its files, for messages.
    fn directory(api: &Api) -> String {
        let Some(config) = api.optional_config else {
            return "$PCP_TMP_DIR/mmv".into();
        };
        // SAFETY: libpcp's function with a NUL-terminated name; it returns
        // NULL or a NUL-terminated string it owns.
        let dir = unsafe { config(c"PCP_TMP_DIR".as_ptr()) };
        if dir.is_null() {
            return "$PCP_TMP_DIR/mmv".into();
        }
        // SAFETY: checked non-NULL; NUL-terminated (above).
        let dir = unsafe { CStr::from_ptr(dir) }.to_string_lossy();
        format!("\"{dir}/mmv\"")
    }

    /// The value slot of `metric` (instance `instance`, if it has an
    /// instance domain); the text says why there is none.
    pub(crate) fn slot(&self, metric: &str, instance: Option<&str>) -> Result<Slot, String> {
        let name = CString::new(metric).map_err(|_| format!("\"{metric}\" holds a NUL byte"))?;
        let inst = instance
            .map(|i| CString::new(i).map_err(|_| format!("\"{i}\" holds a NUL byte")))
            .transpose()?;
        // SAFETY: the live mapping; NUL-terminated names (or NULL for no
        // instance); the function returns NULL or a pointer into the mapping.
        let found = unsafe {
            (self.api.lookup)(
                self.addr,
                name.as_ptr(),
                inst.as_ref().map_or(std::ptr::null(), |i| i.as_ptr()),
            )
        };
        if found.is_null() || found.align_offset(8) != 0 {
            return Err(format!(
                "no usable value for {metric}{} in the MMV file",
                instance.map(|i| format!("[{i}]")).unwrap_or_default()
            ));
        }
        Ok(Slot(found))
    }

    /// Sets the string metric at `slot` to `text` (cut to 250 bytes at a
    /// character boundary). The caller serialises calls.
    pub(crate) fn set_string(&self, slot: Slot, text: &str) {
        let mut end = text.len().min(250);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let Ok(text) = CString::new(&text[..end]) else {
            return;
        };
        let len = c_int::try_from(text.as_bytes().len()).unwrap_or(0);
        // SAFETY: the live mapping, a slot of a string metric found in it,
        // a NUL-terminated text of `len` (< MMV_STRINGMAX - 1) bytes.
        unsafe { (self.api.set_string)(self.addr, slot.0, text.as_ptr(), len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_named() {
        let err = File::create("libpcp_mmv_absent.so.9", "/nonexistent/x", 0, &[], &[])
            .err()
            .expect("no such library");
        assert!(
            err.contains("libpcp_mmv_absent.so.9 cannot be loaded"),
            "{err}"
        );
    }

    #[test]
    fn units_are_the_bit_fields_pcp_declares() {
        // pmUnits {dimSpace, dimTime, dimCount, scaleSpace, scaleTime,
        // scaleCount} packed from bit 31 down, 4 bits each, above 8 spare.
        let pack = |dim: [u32; 3], scale: [u32; 3]| {
            (dim[0] << 28)
                | (dim[1] << 24)
                | (dim[2] << 20)
                | (scale[0] << 16)
                | (scale[1] << 12)
                | (scale[2] << 8)
        };
        assert_eq!(Units::COUNT.0, pack([0, 0, 1], [0, 0, 0]));
        assert_eq!(Units::SECONDS.0, pack([0, 1, 0], [0, 3, 0]));
    }
}
