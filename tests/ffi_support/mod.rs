//! Shared helpers of the FFI tests: firmware-like csb/csd arrays (the stand-in `common.h`
//! structs mirrored in Rust), their layout descriptor, and a lock that serializes tests,
//! since they all share the library's one global store.
#![allow(dead_code)]

use sensor_spool::ffi::*;
use std::mem::offset_of;
use std::sync::{Mutex, MutexGuard};

/// `imx_control_sensor_block_t` (2018 layout, the fields before the bitfield matter).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Csb {
    pub name: [u8; 32],
    pub id: u32,
    pub sample_rate: u32,
    pub poll_rate: u32,
    pub batch: u16,
    pub pct: u16,
    pub bits: u32,
    pub default_value: u32,
    pub warn: [u32; 6],
}

/// `control_sensor_data_t` (MM1 field list).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Csd {
    pub last_sample_time: u64,
    pub no_samples: u16,
    pub no_pending: u16,
    pub errors: u32,
    pub last_poll_time: u32,
    pub condition_started_time: u32,
    pub last_raw_value: u32,
    pub last_value: u32,
    pub ds: [u32; 3],
    pub bits: u32,
}

impl Csb {
    pub fn new(id: u32, sample_rate: u32) -> Csb {
        Csb {
            name: [0; 32],
            id,
            sample_rate,
            poll_rate: 0,
            batch: 0,
            pct: 0,
            bits: 0,
            default_value: 0,
            warn: [0; 6],
        }
    }
}

impl Default for Csd {
    fn default() -> Csd {
        // Garbage in the mirrored fields, to see the library overwrite them.
        Csd {
            last_sample_time: 0,
            no_samples: 0xAAAA,
            no_pending: 0x5555,
            errors: 0,
            last_poll_time: 0,
            condition_started_time: 0,
            last_raw_value: 0,
            last_value: 0,
            ds: [7; 3],
            bits: 0,
        }
    }
}

/// The layout of [`Csb`] / [`Csd`] as a firmware would fill it with `offsetof`.
pub fn layout() -> SpoolLayout {
    SpoolLayout {
        csb_size: size_of::<Csb>() as u32,
        csb_id_offset: offset_of!(Csb, id) as u32,
        csb_sample_rate_offset: offset_of!(Csb, sample_rate) as u32,
        csd_size: size_of::<Csd>() as u32,
        csd_no_samples_offset: offset_of!(Csd, no_samples) as u32,
        csd_no_pending_offset: offset_of!(Csd, no_pending) as u32,
        csd_last_sample_time_offset: offset_of!(Csd, last_sample_time) as u32,
        csd_last_sample_time_size: 8,
        csd_last_value_offset: offset_of!(Csd, last_value) as u32,
        csd_ds_offset: offset_of!(Csd, ds) as u32,
        csd_ds_size: 12,
    }
}

/// One array pair, allocated once and only ever accessed through raw pointers derived
/// from that allocation (like C firmware arrays), so the pointers the library keeps from
/// registration stay valid under Rust's aliasing rules. Freed on drop: the library may
/// still hold the pointers then, but every test holds the [`serial`] lock while its arrays
/// live and starts with `spool_deinit`, so nothing dereferences them afterwards.
pub struct Arrays {
    csb: *mut Csb,
    csd: *mut Csd,
    n: usize,
}

impl Arrays {
    /// `rates[i]` is the sample rate of entry `i` (0 = EVT); ids are `base_id + i`.
    pub fn new(base_id: u32, rates: &[u32]) -> Arrays {
        let csb: Box<[Csb]> = rates
            .iter()
            .enumerate()
            .map(|(i, &r)| Csb::new(base_id + i as u32, r))
            .collect();
        let csd = vec![Csd::default(); rates.len()].into_boxed_slice();
        Arrays {
            csb: Box::into_raw(csb).cast(),
            csd: Box::into_raw(csd).cast(),
            n: rates.len(),
        }
    }
    pub fn csb(&self) -> *mut ControlSensorBlock {
        self.csb.cast()
    }
    pub fn csd(&self) -> *mut ControlSensorData {
        self.csd.cast()
    }
    pub fn count(&self) -> u16 {
        self.n as u16
    }
    fn csd_p(&self, e: usize) -> *mut Csd {
        assert!(e < self.n);
        // SAFETY: in bounds of the leaked allocation.
        unsafe { self.csd.add(e) }
    }
    /// A copy of `csd[e]`.
    pub fn csd_at(&self, e: usize) -> Csd {
        // SAFETY: in bounds, initialized, no live reference to it.
        unsafe { self.csd_p(e).read() }
    }
    /// A copy of the whole csd array.
    pub fn csd_vec(&self) -> Vec<Csd> {
        (0..self.n).map(|e| self.csd_at(e)).collect()
    }
    /// The firmware writing `csd[e].no_pending` (patched uploader idiom).
    pub fn set_no_pending(&self, e: usize, v: u16) {
        // SAFETY: in bounds; a plain field write through the raw pointer.
        unsafe { (*self.csd_p(e)).no_pending = v }
    }
    /// The firmware changing `csb[e].id`.
    pub fn set_id(&self, e: usize, id: u32) {
        assert!(e < self.n);
        // SAFETY: in bounds; a plain field write through the raw pointer.
        unsafe { (*self.csb.add(e)).id = id }
    }
    /// `&csd[e].ds` as the legacy `data_store_info_t *`.
    pub fn ds_ptr(&self, e: usize) -> *mut DataStoreInfo {
        // SAFETY: in bounds; no reference is created.
        unsafe { std::ptr::addr_of_mut!((*self.csd_p(e)).ds).cast() }
    }
    /// `&csd[e].errors` (a pointer into csd that is not a ds field).
    pub fn errors_ptr(&self, e: usize) -> *mut DataStoreInfo {
        // SAFETY: in bounds; no reference is created.
        unsafe { std::ptr::addr_of_mut!((*self.csd_p(e)).errors).cast() }
    }
    pub fn register(&self, source: u8) -> SpoolStatus {
        let l = layout();
        // SAFETY: both arrays hold `n` elements of the sizes in `l` and are never freed.
        unsafe { spool_register_sensors(self.csb(), self.csd(), self.count(), &l, source) }
    }
    /// (no_samples, no_pending) of entry `e` as the firmware sees them.
    pub fn counts(&self, e: usize) -> (u16, u16) {
        let c = self.csd_at(e);
        (c.no_samples, c.no_pending)
    }
}

impl Drop for Arrays {
    fn drop(&mut self) {
        // SAFETY: both pointers come from `Box::into_raw` of boxed slices of `n` elements.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.csb, self.n,
            )));
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.csd, self.n,
            )));
        }
    }
}

static LOCK: Mutex<()> = Mutex::new(());

/// Serializes tests and resets the library (`spool_deinit`) before each one.
pub fn serial() -> MutexGuard<'static, ()> {
    let g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(spool_deinit(), SpoolStatus::SPOOL_OK);
    g
}

/// `spool_init` with the default config plus `flags`.
pub fn init(flags: u32) {
    let mut cfg = std::mem::MaybeUninit::<SpoolConfig>::uninit();
    assert_eq!(
        // SAFETY: `cfg` is writable; it is initialized on SPOOL_OK.
        unsafe { spool_config_default(cfg.as_mut_ptr()) },
        SpoolStatus::SPOOL_OK
    );
    // SAFETY: initialized by spool_config_default.
    let mut cfg = unsafe { cfg.assume_init() };
    cfg.flags = flags;
    // SAFETY: valid config.
    assert_eq!(unsafe { spool_init(&cfg) }, SpoolStatus::SPOOL_OK);
}

/// A stats snapshot (panics if the store is not initialized).
pub fn stats() -> SpoolStats {
    let mut s = SpoolStats::default();
    // SAFETY: `s` is writable.
    assert_eq!(unsafe { spool_stats(&mut s) }, SpoolStatus::SPOOL_OK);
    s
}

/// A NOR flash part in RAM behind the C callbacks of `spool_flash_t` (what a firmware's
/// driver does): erased bytes read 0xFF, programming only clears bits, every call checks
/// the alignment and bounds the header documents, and counts itself. Programming a
/// 32-byte chunk twice between erases is a contract violation the library must never
/// commit: counted in `reprogrammed`. `fail_after` makes every call after that many
/// program/erase calls fail (a dying part).
pub struct RamFlash {
    pub bytes: Vec<u8>,
    pub write_size: u32,
    pub erase_size: u32,
    pub reads: u64,
    pub programs: u64,
    pub erases: u64,
    pub violations: u64,
    pub reprogrammed: u64,
    pub fail_after: Option<u64>,
    dirty: Vec<bool>,
}

impl RamFlash {
    /// An erased part of `size` bytes.
    pub fn new(size: u32, write_size: u32, erase_size: u32) -> Box<RamFlash> {
        Box::new(RamFlash {
            bytes: vec![0xFF; size as usize],
            write_size,
            erase_size,
            reads: 0,
            programs: 0,
            erases: 0,
            violations: 0,
            reprogrammed: 0,
            fail_after: None,
            dirty: vec![false; size as usize / 32],
        })
    }

    /// The callbacks for this part (`ctx` = the box's address: keep the box alive and in
    /// place while the library may call them).
    pub fn callbacks(self: &mut Box<RamFlash>) -> SpoolFlash {
        SpoolFlash {
            read: Some(flash_read),
            program: Some(flash_program),
            erase: Some(flash_erase),
            ctx: (&mut **self as *mut RamFlash).cast(),
            size: self.bytes.len() as u32,
            write_size: self.write_size,
            erase_size: self.erase_size,
        }
    }

    fn dead(&self) -> bool {
        self.fail_after
            .is_some_and(|n| self.programs + self.erases >= n)
    }

    fn range(&mut self, offset: u32, len: u32) -> Option<std::ops::Range<usize>> {
        let end = offset as usize + len as usize;
        if end > self.bytes.len() {
            self.violations += 1;
            return None;
        }
        Some(offset as usize..end)
    }
}

/// `ctx` to the part.
///
/// # Safety
///
/// `ctx` comes from [`RamFlash::callbacks`] of a live part, called by the library while it
/// holds its lock (one call at a time).
unsafe fn part<'a>(ctx: *mut core::ffi::c_void) -> &'a mut RamFlash {
    // SAFETY: see the function's contract.
    unsafe { &mut *ctx.cast::<RamFlash>() }
}

unsafe extern "C" fn flash_read(
    ctx: *mut core::ffi::c_void,
    offset: u32,
    buf: *mut u8,
    len: u32,
) -> core::ffi::c_int {
    // SAFETY: ctx from `callbacks`.
    let f = unsafe { part(ctx) };
    f.reads += 1;
    let Some(r) = f.range(offset, len) else {
        return -1;
    };
    // SAFETY: the library passes a buffer of `len` writable bytes.
    unsafe { std::ptr::copy_nonoverlapping(f.bytes[r].as_ptr(), buf, len as usize) };
    0
}

unsafe extern "C" fn flash_program(
    ctx: *mut core::ffi::c_void,
    offset: u32,
    buf: *const u8,
    len: u32,
) -> core::ffi::c_int {
    // SAFETY: ctx from `callbacks`.
    let f = unsafe { part(ctx) };
    if f.dead() {
        return -5;
    }
    f.programs += 1;
    if !offset.is_multiple_of(SPOOL_FLASH_PROGRAM_ALIGN)
        || !len.is_multiple_of(SPOOL_FLASH_PROGRAM_ALIGN)
        || !offset.is_multiple_of(f.write_size)
    {
        f.violations += 1;
        return -2;
    }
    let Some(r) = f.range(offset, len) else {
        return -1;
    };
    // SAFETY: the library passes `len` readable bytes.
    let src = unsafe { std::slice::from_raw_parts(buf, len as usize) };
    for chunk in r.clone().step_by(32) {
        if std::mem::replace(&mut f.dirty[chunk / 32], true) {
            f.reprogrammed += 1;
        }
    }
    for (d, s) in f.bytes[r].iter_mut().zip(src) {
        *d &= *s;
    }
    0
}

unsafe extern "C" fn flash_erase(
    ctx: *mut core::ffi::c_void,
    offset: u32,
    len: u32,
) -> core::ffi::c_int {
    // SAFETY: ctx from `callbacks`.
    let f = unsafe { part(ctx) };
    if f.dead() {
        return -5;
    }
    f.erases += 1;
    if len != f.erase_size || !offset.is_multiple_of(f.erase_size) {
        f.violations += 1;
        return -2;
    }
    let Some(r) = f.range(offset, len) else {
        return -1;
    };
    for c in r.clone().step_by(32) {
        f.dirty[c / 32] = false;
    }
    f.bytes[r].fill(0xFF);
    0
}

/// `spool_init` with the default config plus `flags` and this flash region.
pub fn init_flash(flags: u32, flash: SpoolFlash, threshold_pct: u32) -> SpoolStatus {
    let mut cfg = SpoolConfig::default_config();
    cfg.flags = flags;
    cfg.flash = flash;
    cfg.flush_threshold_pct = threshold_pct;
    // SAFETY: valid config; the flash callbacks' part outlives the library's use (tests
    // call `spool_deinit` before dropping it).
    unsafe { spool_init(&cfg) }
}

/// The storage counters.
pub fn storage_stats() -> SpoolStorageStats {
    let mut s = SpoolStorageStats::default();
    assert_eq!(
        // SAFETY: `s` is writable.
        unsafe { spool_storage_stats(&mut s) },
        SpoolStatus::SPOOL_OK
    );
    s
}

/// Checks an MM2 `imx_result_t` against the status the call left (`spool_last_status`)
/// and returns that status, so tests can assert the precise reason.
pub fn imx(r: ImxResult) -> SpoolStatus {
    let s = spool_last_status();
    assert_eq!(
        r,
        imx_code(s),
        "imx_result_t {r:?} does not match the last status {s:?}"
    );
    s
}
