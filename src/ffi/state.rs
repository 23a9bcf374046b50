//! The one global store of the C API, the registration table of firmware arrays, and
//! field access into those arrays through their registered layouts.

use super::flash::FfiStorage;
use super::store::{Generation, Handle, Key, Kind, Store};
use super::types::{
    FfiResult, SPOOL_ABI_VERSION, SPOOL_CFG_EVT_READ_ONE_WORD, SPOOL_CFG_EVT_READ_TWO_WORDS,
    SPOOL_FIELD_ABSENT, SpoolConfigV1, SpoolFfiStats, SpoolGpsConfig, SpoolLayout,
    SpoolMirrorStats, SpoolStatus,
};
use core::cell::RefCell;
use core::ptr::NonNull;
use critical_section::Mutex;

/// Maximum number of registered (csb, csd) array pairs (host, mgc, CAN controller,
/// controls / sensors / variables, ...).
/// 16 on a host (gateway), 8 on a microcontroller (WICED firmware registers 3-5 pairs;
/// each slot costs 56 bytes of RAM).
#[cfg(feature = "std")]
pub(crate) const MAX_REGISTRATIONS: usize = 16;
/// See above: 8 without `std`.
#[cfg(not(feature = "std"))]
pub(crate) const MAX_REGISTRATIONS: usize = 8;

/// Upload sources that can have an MM2 GPS configuration at the same time
/// (`imx_init_gps_config_for_source`; a gateway has one GPS receiver, usually configured
/// for one or two sources).
pub(crate) const MM2_GPS_SOURCES: usize = 2;

/// Flags `spool_init` accepts from an ABI-1 or ABI-2 configuration.
const KNOWN_FLAGS_V2: u32 = SPOOL_CFG_EVT_READ_TWO_WORDS;
/// Flags `spool_init` accepts from an ABI-3 configuration.
const KNOWN_FLAGS: u32 = SPOOL_CFG_EVT_READ_TWO_WORDS | SPOOL_CFG_EVT_READ_ONE_WORD;

/// Whether a legacy EVT read fills two words `{utc, value}` under a validated
/// configuration: the default since ABI 3 (MM1's layout), opt-in before.
fn evt_two_words(cfg: &SpoolConfigV1) -> bool {
    if cfg.abi_version >= SPOOL_ABI_VERSION {
        cfg.flags & SPOOL_CFG_EVT_READ_ONE_WORD == 0
    } else {
        cfg.flags & SPOOL_CFG_EVT_READ_TWO_WORDS != 0
    }
}

/// A validated layout (every offset checked against its struct size).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    raw: SpoolLayout,
}

/// Returns `Some(offset)` when `offset .. offset + width` lies inside `size`.
fn field(offset: u32, width: u32, size: u32) -> Option<u32> {
    match offset.checked_add(width) {
        Some(end) if end <= size => Some(offset),
        _ => None,
    }
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    // Half-open ranges (start, len); both checked to fit in u32 before.
    let (a0, a1) = (a.0 as u64, a.0 as u64 + a.1 as u64);
    let (b0, b1) = (b.0 as u64, b.0 as u64 + b.1 as u64);
    a0 < b1 && b0 < a1
}

impl Layout {
    /// Validates a layout descriptor.
    pub(crate) fn new(raw: &SpoolLayout) -> FfiResult<Layout> {
        let bad = SpoolStatus::SPOOL_ERR_BAD_LAYOUT;
        if raw.csb_size == 0 || raw.csd_size == 0 {
            return Err(bad);
        }
        field(raw.csb_id_offset, 4, raw.csb_size).ok_or(bad)?;
        field(raw.csb_sample_rate_offset, 4, raw.csb_size).ok_or(bad)?;
        // The csd fields the library writes, as (offset, width); must not overlap.
        let mut written: heapless::Vec<(u32, u32), 5> = heapless::Vec::new();
        let mut add = |off: u32, width: u32| -> FfiResult<()> {
            field(off, width, raw.csd_size).ok_or(bad)?;
            if written.iter().any(|&w| overlaps(w, (off, width))) {
                return Err(bad);
            }
            written.push((off, width)).map_err(|_| bad)
        };
        add(raw.csd_no_samples_offset, 2)?;
        add(raw.csd_no_pending_offset, 2)?;
        if raw.csd_last_sample_time_offset != SPOOL_FIELD_ABSENT {
            if raw.csd_last_sample_time_size != 4 && raw.csd_last_sample_time_size != 8 {
                return Err(bad);
            }
            add(
                raw.csd_last_sample_time_offset,
                raw.csd_last_sample_time_size,
            )?;
        }
        if raw.csd_last_value_offset != SPOOL_FIELD_ABSENT {
            add(raw.csd_last_value_offset, 4)?;
        }
        if raw.csd_ds_offset != SPOOL_FIELD_ABSENT {
            if raw.csd_ds_size == 0 {
                return Err(bad);
            }
            add(raw.csd_ds_offset, raw.csd_ds_size)?;
        }
        Ok(Layout { raw: *raw })
    }
}

/// One registered (csb, csd) array pair.
pub(crate) struct Registration {
    csb: NonNull<u8>,
    csd: NonNull<u8>,
    count: u16,
    layout: Layout,
    source: u8,
}

// SAFETY: the pointers are only dereferenced while the global critical section is held
// (so by one thread at a time), and `spool_register_sensors` requires the firmware to keep
// the arrays alive and in place until `spool_deinit`; the firmware's own accesses to the
// fields the library writes are documented as the legacy (unlocked) reads of MM1.
unsafe impl Send for Registration {}

/// Byte ranges `[start, end)` of an array of `count` elements of `size` bytes at `addr`.
fn array_range(addr: usize, size: u32, count: u16) -> Option<(usize, usize)> {
    let len = usize::try_from(size)
        .ok()?
        .checked_mul(usize::from(count))?;
    let end = addr.checked_add(len)?;
    // `isize::MAX` is the largest object Rust pointer arithmetic may span.
    if len > isize::MAX as usize {
        return None;
    }
    Some((addr, end))
}

fn ranges_overlap(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

impl Registration {
    fn csb_range(&self) -> (usize, usize) {
        // Validated at registration; cannot fail.
        array_range(
            self.csb.as_ptr() as usize,
            self.layout.raw.csb_size,
            self.count,
        )
        .unwrap_or((0, 0))
    }

    fn csd_range(&self) -> (usize, usize) {
        array_range(
            self.csd.as_ptr() as usize,
            self.layout.raw.csd_size,
            self.count,
        )
        .unwrap_or((0, 0))
    }

    /// Number of registered entries.
    pub(crate) fn count(&self) -> u16 {
        self.count
    }

    /// Checks `entry < count`.
    pub(crate) fn entry(&self, entry: u16) -> FfiResult<u16> {
        if entry < self.count {
            Ok(entry)
        } else {
            Err(SpoolStatus::SPOOL_ERR_INDEX)
        }
    }

    /// Byte position of a field of element `entry` (both checked at registration).
    fn pos(size: u32, entry: u16, offset: u32) -> Option<usize> {
        usize::try_from(size)
            .ok()?
            .checked_mul(usize::from(entry))?
            .checked_add(usize::try_from(offset).ok()?)
    }

    fn read_csb_u32(&self, entry: u16, offset: u32) -> Option<u32> {
        if entry >= self.count {
            return None;
        }
        let pos = Self::pos(self.layout.raw.csb_size, entry, offset)?;
        // SAFETY: `entry < count` and `offset + 4 <= csb_size` (checked by `Layout::new`), so
        // `pos .. pos + 4` lies inside the registered csb array of `count * csb_size` bytes,
        // which the firmware keeps alive while registered. Unaligned read: no alignment needed.
        Some(unsafe { self.csb.as_ptr().add(pos).cast::<u32>().read_unaligned() })
    }

    fn csd_ptr(&self, entry: u16, offset: u32, width: u32) -> Option<*mut u8> {
        if entry >= self.count || offset == SPOOL_FIELD_ABSENT {
            return None;
        }
        field(offset, width, self.layout.raw.csd_size)?;
        let pos = Self::pos(self.layout.raw.csd_size, entry, offset)?;
        // SAFETY: `entry < count` and `offset + width <= csd_size`, so `pos` is inside the
        // registered csd array (no wrap: the array's byte range was checked at registration).
        Some(unsafe { self.csd.as_ptr().add(pos) })
    }

    fn read_csd_u16(&self, entry: u16, offset: u32) -> Option<u16> {
        let p = self.csd_ptr(entry, offset, 2)?;
        // SAFETY: `p .. p + 2` is inside the registered csd array (see `csd_ptr`).
        Some(unsafe { p.cast::<u16>().read_unaligned() })
    }

    fn write_csd_u16(&self, entry: u16, offset: u32, v: u16) {
        if let Some(p) = self.csd_ptr(entry, offset, 2) {
            // SAFETY: `p .. p + 2` is inside the registered csd array (see `csd_ptr`).
            unsafe { p.cast::<u16>().write_unaligned(v) }
        }
    }

    fn write_csd_u32(&self, entry: u16, offset: u32, v: u32) {
        if let Some(p) = self.csd_ptr(entry, offset, 4) {
            // SAFETY: `p .. p + 4` is inside the registered csd array (see `csd_ptr`).
            unsafe { p.cast::<u32>().write_unaligned(v) }
        }
    }

    fn write_csd_u64(&self, entry: u16, offset: u32, v: u64) {
        if let Some(p) = self.csd_ptr(entry, offset, 8) {
            // SAFETY: `p .. p + 8` is inside the registered csd array (see `csd_ptr`).
            unsafe { p.cast::<u64>().write_unaligned(v) }
        }
    }

    /// The store key and kind of `csb[entry]`, read now (the firmware may change ids and
    /// rates after registration, as legacy code read them on every call).
    pub(crate) fn sensor(&self, entry: u16) -> FfiResult<(Key, Kind, u32)> {
        let l = &self.layout.raw;
        let id = self
            .read_csb_u32(entry, l.csb_id_offset)
            .ok_or(SpoolStatus::SPOOL_ERR_INDEX)?;
        let rate = self
            .read_csb_u32(entry, l.csb_sample_rate_offset)
            .ok_or(SpoolStatus::SPOOL_ERR_INDEX)?;
        let kind = if rate == 0 { Kind::Evt } else { Kind::Tsd };
        Ok((
            Key {
                source: self.source,
                id,
            },
            kind,
            rate,
        ))
    }

    /// The sensor id of `csb[entry]`.
    pub(crate) fn id(&self, entry: u16) -> Option<u32> {
        self.read_csb_u32(entry, self.layout.raw.csb_id_offset)
    }

    /// `csd[entry].no_pending` as the firmware sees it now.
    pub(crate) fn csd_no_pending(&self, entry: u16) -> Option<u16> {
        self.read_csd_u16(entry, self.layout.raw.csd_no_pending_offset)
    }

    /// Writes the saturated counters into `csd[entry]`.
    pub(crate) fn mirror_counts(&self, entry: u16, stored: u32, pending: u32) {
        let l = &self.layout.raw;
        let sat = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        self.write_csd_u16(entry, l.csd_no_samples_offset, sat(stored));
        self.write_csd_u16(entry, l.csd_no_pending_offset, sat(pending));
    }

    /// Updates `last_value` / `last_sample_time` (where present) after a write.
    pub(crate) fn mirror_last(&self, entry: u16, value: u32, utc_s: u32) {
        let l = &self.layout.raw;
        self.write_csd_u32(entry, l.csd_last_value_offset, value);
        if utc_s != 0 {
            if l.csd_last_sample_time_size == 8 {
                self.write_csd_u64(
                    entry,
                    l.csd_last_sample_time_offset,
                    u64::from(utc_s) * 1000,
                );
            } else {
                self.write_csd_u32(entry, l.csd_last_sample_time_offset, utc_s);
            }
        }
    }

    /// If `ds` points at `csd[i].ds` of this registration, returns `(i, ds_size)`.
    pub(crate) fn ds_entry(&self, ds: usize) -> Option<(u16, u32)> {
        let l = &self.layout.raw;
        if l.csd_ds_offset == SPOOL_FIELD_ABSENT {
            return None;
        }
        let (start, end) = self.csd_range();
        if ds < start || ds >= end {
            return None;
        }
        let rel = ds - start;
        let size = usize::try_from(l.csd_size).ok()?;
        let (i, off) = (rel.checked_div(size)?, rel.checked_rem(size)?);
        if off != usize::try_from(l.csd_ds_offset).ok()? {
            return None;
        }
        Some((u16::try_from(i).ok()?, l.csd_ds_size))
    }

    /// Zeroes `csd[entry].ds` (the firmware-owned legacy chain descriptor).
    pub(crate) fn zero_ds(&self, entry: u16) {
        let l = &self.layout.raw;
        if let Some(p) = self.csd_ptr(entry, l.csd_ds_offset, l.csd_ds_size)
            && let Ok(n) = usize::try_from(l.csd_ds_size)
        {
            // SAFETY: `p .. p + csd_ds_size` is inside the registered csd array.
            unsafe { core::ptr::write_bytes(p, 0, n) }
        }
    }

    /// The upload source the arrays were registered under.
    pub(crate) fn source(&self) -> u8 {
        self.source
    }

    /// The entry `e` with `csb == &csb_array[e]` and `csd == &csd_array[e]` (MM2 per-sensor
    /// pointers), if both point at the same element of this registration.
    pub(crate) fn element(&self, csb: usize, csd: usize) -> Option<u16> {
        let (start, end) = self.csb_range();
        if csb < start || csb >= end {
            return None;
        }
        let size = usize::try_from(self.layout.raw.csb_size).ok()?;
        let rel = csb.checked_sub(start)?;
        if rel.checked_rem(size)? != 0 {
            return None;
        }
        let entry = u16::try_from(rel.checked_div(size)?).ok()?;
        let csd_at = usize::try_from(self.layout.raw.csd_size)
            .ok()?
            .checked_mul(usize::from(entry))?
            .checked_add(self.csd.as_ptr() as usize)?;
        (entry < self.count && csd_at == csd).then_some(entry)
    }

    /// `true` if this registration is exactly (csb, csd).
    fn is(&self, csb: usize, csd: usize) -> bool {
        self.csb.as_ptr() as usize == csb && self.csd.as_ptr() as usize == csd
    }
}

/// GPS configuration as stored (the context pointer is only handed back to the firmware).
pub(crate) struct Gps(pub SpoolGpsConfig);

// SAFETY: `ctx` is never dereferenced by the library, only passed back to the firmware's
// callback, which the firmware documents as callable from any thread that calls the library.
unsafe impl Send for Gps {}

/// Shutdown-flush bookkeeping at the C boundary.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Flush {
    /// `flush_all_to_disk` was called and not cancelled.
    pub requested: bool,
}

/// Everything behind the global lock.
pub(crate) struct State {
    /// `spool_init` succeeded and `spool_deinit` was not called since.
    pub initialized: bool,
    /// Copy of the configuration (the fields used after init).
    pub config: SpoolConfigV1,
    /// The store.
    pub store: Store,
    /// Registered arrays.
    pub regs: heapless::Vec<Registration, MAX_REGISTRATIONS>,
    /// GPS co-logging, if configured.
    pub gps: Option<Gps>,
    /// Boundary counters.
    pub ffi: SpoolFfiStats,
    /// Status of the last call (for `spool_last_status`).
    pub last_status: SpoolStatus,
    /// Shutdown flush state.
    pub flush: Flush,
    /// Legacy EVT reads fill two words (see `evt_two_words`).
    pub evt_two_words: bool,
    /// The store's generation when every entry was last known to be mirrored.
    mirrored_gen: Generation,
    /// The store's overflow-drop count when the last victim was re-mirrored.
    mirrored_drops: u8,
    /// 256-bit filter of the keys that more than one registered entry maps to (see
    /// `key_bit`); a false positive only costs a scan.
    shared: [u32; 8],
    /// Mirror counters (`spool_mirror_stats`).
    pub mirror_stats: SpoolMirrorStats,
    /// MM2 GPS entries per upload source (`imx_init_gps_config_for_source`): source,
    /// registration index, entries of latitude / longitude / altitude / speed (`u16::MAX`
    /// = absent). Up to `MM2_GPS_SOURCES` sources.
    mm2_gps: heapless::Vec<(u8, u8, [u16; 4]), MM2_GPS_SOURCES>,
    /// A storage write failed for lack of space and no batch reached storage since.
    pub disk_full: bool,
    /// The log hook and its level (`spool_set_log`); kept across `spool_deinit`.
    pub log: Option<(LogFnPtr, u8)>,
    /// RAM use was at or above the log's threshold line at the last event check.
    pub log_high: bool,
    /// The store's drop counter at the last `SPOOL_LOG_EV_DROPPED`.
    pub log_drops: u8,
    /// Reason and detail of the rejection in progress (`SPOOL_LOG_EV_REJECTED`).
    pub log_reason: (u8, u16),
}

/// The log hook's function pointer (see `spool_set_log`).
pub(crate) type LogFnPtr = unsafe extern "C" fn(level: u32, event: u32, a: u32, b: u32, c: u32);

/// The bit of `key` in `State::shared`.
fn key_bit(key: Key) -> (usize, u32) {
    let h = (key.id ^ (u32::from(key.source) << 24)).wrapping_mul(0x9E37_79B1) >> 24;
    ((h >> 5) as usize, 1u32 << (h & 31))
}

/// A counter as `no_samples` / `no_pending` show it (saturated).
fn shown(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

impl State {
    /// The configuration before `spool_init`: all zero (`abi_version` 0 is never valid,
    /// and the copy is only read once initialised), so the global state lands in .bss.
    const NO_CONFIG: SpoolConfigV1 = SpoolConfigV1 {
        abi_version: 0,
        flags: 0,
        utc_now: None,
    };

    const fn new() -> State {
        State {
            initialized: false,
            config: State::NO_CONFIG,
            store: Store::new(),
            regs: heapless::Vec::new(),
            gps: None,
            ffi: SpoolFfiStats {
                calls: 0,
                rejected_null: 0,
                rejected_not_initialized: 0,
                rejected_not_registered: 0,
                rejected_index: 0,
                rejected_other: 0,
                store_errors: 0,
                gps_records: 0,
            },
            last_status: SpoolStatus::SPOOL_OK,
            flush: Flush { requested: false },
            evt_two_words: false,
            mirrored_gen: Generation::ZERO,
            mirrored_drops: 0,
            shared: [0; 8],
            mirror_stats: SpoolMirrorStats {
                pending_lowered: 0,
                records_unread: 0,
                pending_refused: 0,
                refreshes: 0,
            },
            mm2_gps: heapless::Vec::new(),
            disk_full: false,
            log: None,
            log_high: false,
            log_drops: 0,
            log_reason: (0, 0),
        }
    }

    /// Back to the state before `spool_init` (registrations, GPS, counters, store all cleared).
    pub(crate) fn reset(&mut self) {
        self.initialized = false;
        self.config = State::NO_CONFIG;
        self.store.reset();
        self.regs.clear();
        self.gps = None;
        self.ffi = SpoolFfiStats::default();
        self.last_status = SpoolStatus::SPOOL_OK;
        self.flush = Flush::default();
        self.evt_two_words = false;
        self.mirrored_gen = Generation::ZERO;
        self.mirrored_drops = 0;
        self.shared = [0; 8];
        self.mirror_stats = SpoolMirrorStats::default();
        self.mm2_gps.clear();
        self.disk_full = false;
        self.log_high = false;
        self.log_drops = 0;
        self.log_reason = (0, 0);
    }

    /// Sets the MM2 GPS entries of the registration `idx`'s upload source.
    pub(crate) fn set_mm2_gps(&mut self, idx: usize, entries: [u16; 4]) -> FfiResult<()> {
        let source = self.reg(idx)?.source();
        let i = u8::try_from(idx).map_err(|_| SpoolStatus::SPOOL_ERR_INDEX)?;
        self.mm2_gps.retain(|g| g.0 != source);
        self.mm2_gps
            .push((source, i, entries))
            .map_err(|_| SpoolStatus::SPOOL_ERR_REGISTRY_FULL)
    }

    /// The MM2 GPS registration index and entries of an upload source.
    pub(crate) fn mm2_gps(&self, source: u32) -> Option<(usize, [u16; 4])> {
        self.mm2_gps
            .iter()
            .find(|g| u32::from(g.0) == source)
            .map(|g| (usize::from(g.1), g.2))
    }

    /// Validates and applies a configuration (`storage`: the back end built from it, not
    /// mounted yet; `threshold_pct`: `spool_config_t.flush_threshold_pct`).
    pub(crate) fn init(
        &mut self,
        cfg: &SpoolConfigV1,
        storage: FfiStorage,
        threshold_pct: u32,
    ) -> FfiResult<()> {
        if self.initialized {
            return Err(SpoolStatus::SPOOL_ERR_ALREADY_INITIALIZED);
        }
        let known = if cfg.abi_version >= SPOOL_ABI_VERSION {
            KNOWN_FLAGS
        } else {
            KNOWN_FLAGS_V2
        };
        let both = SPOOL_CFG_EVT_READ_ONE_WORD | SPOOL_CFG_EVT_READ_TWO_WORDS;
        if cfg.flags & !known != 0 || cfg.flags & both == both {
            return Err(SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT);
        }
        // The store is fresh: nothing reaches it before init, and deinit resets it.
        self.store.attach(storage, threshold_pct)?;
        self.config = *cfg;
        self.evt_two_words = evt_two_words(cfg);
        self.flush = Flush::default();
        self.initialized = true;
        Ok(())
    }

    /// `ready`, then, with storage attached and not yet recovered, the recovery of the
    /// previous run's records (mirrored into every registered csd array). Every call that
    /// touches records goes through here. A failed recovery detaches the storage and is
    /// not reported here (see `spool_recover` / `spool_storage_stats`).
    pub(crate) fn live(&mut self) -> FfiResult<()> {
        self.ready()?;
        if self.store.recovery_due() {
            let _ = self.recover();
        }
        Ok(())
    }

    /// Runs the recovery now (see `Store::recover`) and mirrors every registered entry.
    pub(crate) fn recover(&mut self) -> FfiResult<u32> {
        let r = self.store.recover();
        self.refresh_all();
        if self.log.is_some() && self.store.persistent() | r.is_err() {
            let (n, e) = match r {
                Ok(n) => (n, 0),
                Err(e) => (0, e as u32),
            };
            self.emit(
                super::log::SPOOL_LOG_INFO,
                super::log::SPOOL_LOG_EV_RECOVERED,
                n,
                e,
                0,
            );
        }
        r
    }

    /// Fails with `SPOOL_ERR_NOT_INITIALIZED` before `spool_init`.
    pub(crate) fn ready(&self) -> FfiResult<()> {
        if self.initialized {
            Ok(())
        } else {
            Err(SpoolStatus::SPOOL_ERR_NOT_INITIALIZED)
        }
    }

    /// Registers an array pair after validating it.
    pub(crate) fn register(
        &mut self,
        csb: NonNull<u8>,
        csd: NonNull<u8>,
        count: u16,
        layout: &SpoolLayout,
        source: u8,
    ) -> FfiResult<()> {
        self.ready()?;
        if count == 0 {
            return Err(SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT);
        }
        let layout = Layout::new(layout)?;
        let bad = SpoolStatus::SPOOL_ERR_BAD_LAYOUT;
        let csb_r = array_range(csb.as_ptr() as usize, layout.raw.csb_size, count).ok_or(bad)?;
        let csd_r = array_range(csd.as_ptr() as usize, layout.raw.csd_size, count).ok_or(bad)?;
        if ranges_overlap(csb_r, csd_r) {
            return Err(SpoolStatus::SPOOL_ERR_OVERLAP);
        }
        for r in &self.regs {
            for other in [r.csb_range(), r.csd_range()] {
                if ranges_overlap(other, csb_r) || ranges_overlap(other, csd_r) {
                    return Err(SpoolStatus::SPOOL_ERR_OVERLAP);
                }
            }
        }
        self.regs
            .push(Registration {
                csb,
                csd,
                count,
                layout,
                source,
            })
            .map_err(|_| SpoolStatus::SPOOL_ERR_REGISTRY_FULL)?;
        // With storage, before recovery: make every entry's sensor known to the store, so
        // that recovery finds it (a failure, e.g. a full table, leaves that entry to be
        // registered at its first write, as without storage).
        if self.store.recovery_due()
            && let Some(reg) = self.regs.last()
        {
            for e in 0..count {
                if let Ok((key, kind, rate)) = reg.sensor(e) {
                    let _ = self.store.open(key, kind, rate);
                }
            }
        }
        // Start the mirrors from the store's view (0 / 0 for new sensors).
        if let Some(idx) = self.regs.len().checked_sub(1) {
            for e in 0..count {
                self.mirror(idx, e);
            }
        }
        // The new entries may share ids with earlier ones (or each other).
        self.recompute_shared();
        self.refresh_if_moved();
        Ok(())
    }

    /// Index of the registration (csb, csd).
    pub(crate) fn find(&self, csb: usize, csd: usize) -> FfiResult<usize> {
        self.regs
            .iter()
            .position(|r| r.is(csb, csd))
            .ok_or(SpoolStatus::SPOOL_ERR_NOT_REGISTERED)
    }

    /// `(registration index, entry)` of the element pair `(&csb[e], &csd[e])`.
    pub(crate) fn find_element(&self, csb: usize, csd: usize) -> FfiResult<(usize, u16)> {
        self.regs
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.element(csb, csd).map(|e| (i, e)))
            .ok_or(SpoolStatus::SPOOL_ERR_NOT_REGISTERED)
    }

    /// Index of the registration whose csd array starts at `csd`.
    pub(crate) fn find_csd(&self, csd: usize) -> FfiResult<usize> {
        self.regs
            .iter()
            .position(|r| r.csd.as_ptr() as usize == csd)
            .ok_or(SpoolStatus::SPOOL_ERR_NOT_REGISTERED)
    }

    /// Registration by index.
    pub(crate) fn reg(&self, idx: usize) -> FfiResult<&Registration> {
        self.regs
            .get(idx)
            .ok_or(SpoolStatus::SPOOL_ERR_NOT_REGISTERED)
    }

    /// The store handle of `csb[entry]` if the sensor exists.
    pub(crate) fn handle_of(&self, idx: usize, entry: u16) -> FfiResult<Option<Handle>> {
        let (key, _, _) = self.reg(idx)?.sensor(entry)?;
        Ok(self.store.find(key))
    }

    /// The store handle of `csb[entry]`, registering the sensor with the store if new.
    pub(crate) fn open_entry(&mut self, idx: usize, entry: u16) -> FfiResult<Handle> {
        let (key, kind, rate) = self.reg(idx)?.sensor(entry)?;
        self.store.open(key, kind, rate)
    }

    /// Mirrors the store's counters of `csb[entry]`'s sensor into `csd[entry]`.
    pub(crate) fn mirror(&self, idx: usize, entry: u16) {
        if let Ok(h) = self.handle_of(idx, entry) {
            self.mirror_with(idx, entry, h);
        } else if let Ok(reg) = self.reg(idx) {
            reg.mirror_counts(entry, 0, 0);
        }
    }

    /// `mirror` when the caller already looked up the sensor of `csb[entry]` (`h`).
    fn mirror_with(&self, idx: usize, entry: u16, h: Option<Handle>) {
        let Ok(reg) = self.reg(idx) else { return };
        let (stored, pending) = match h.map(|h| self.store.sensor_stats(h)) {
            Some(Ok(s)) => (s.stored, s.pending),
            _ => (0, 0),
        };
        reg.mirror_counts(entry, stored, pending);
    }

    /// The key of `csb[entry]` of registration `idx`.
    fn key_at(&self, idx: usize, entry: u16) -> Option<Key> {
        let r = self.regs.get(idx)?;
        Some(Key {
            source: r.source(),
            id: r.id(entry)?,
        })
    }

    /// `true` if `key` may be shared by several registered entries.
    fn is_shared(&self, key: Key) -> bool {
        let (w, b) = key_bit(key);
        self.shared.get(w).is_some_and(|v| v & b != 0)
    }

    /// Recomputes the filter of shared keys (O(entries), reads only the ids); `true` if
    /// it changed (an id was changed at run time so that entries now share it).
    pub(crate) fn recompute_shared(&mut self) -> bool {
        let mut seen = [0u32; 8];
        let mut dup = [0u32; 8];
        for r in &self.regs {
            for e in 0..r.count() {
                let Some(id) = r.id(e) else { continue };
                let (w, b) = key_bit(Key {
                    source: r.source(),
                    id,
                });
                if let (Some(s), Some(d)) = (seen.get_mut(w), dup.get_mut(w)) {
                    if *s & b != 0 {
                        *d |= b;
                    }
                    *s |= b;
                }
            }
        }
        let changed = dup != self.shared;
        self.shared = dup;
        changed
    }

    /// Calls `f(self, idx, entry)` for every registered entry whose key is `key`.
    fn for_key(&mut self, key: Key, mut f: impl FnMut(&mut State, usize, u16)) {
        for idx in 0..self.regs.len() {
            let count = self.regs.get(idx).map_or(0, Registration::count);
            for e in 0..count {
                if self.key_at(idx, e) == Some(key) {
                    f(self, idx, e);
                }
            }
        }
    }

    /// Reads the firmware's `csd[entry].no_pending` and, if the firmware changed it since
    /// the library wrote it, applies MM1's meaning: lowered by `k` (below the saturated
    /// count the library wrote), the last `k` records handed out become unsent again, so
    /// the next read returns the record at the new offset; raised, or a lowering the
    /// store cannot apply, is refused and counted (the next mirror writes the true value
    /// back). Must run before the store changes the sensor (the comparison is with the
    /// count the mirror still shows).
    pub(crate) fn reconcile(&mut self, idx: usize, entry: u16) {
        if let Ok(h) = self.handle_of(idx, entry) {
            self.reconcile_with(idx, entry, h);
        }
    }

    /// `reconcile` when the caller already looked up the sensor of `csb[entry]` (`h`).
    fn reconcile_with(&mut self, idx: usize, entry: u16, h: Option<Handle>) {
        let Some(fw) = self.reg(idx).ok().and_then(|r| r.csd_no_pending(entry)) else {
            return;
        };
        let pending = match h.map(|h| self.store.sensor_stats(h)) {
            Some(Ok(s)) => s.pending,
            Some(Err(_)) => return,
            None => 0,
        };
        let now = shown(pending);
        if fw == now {
            return;
        }
        let ms = &mut self.mirror_stats;
        match h {
            Some(h) if fw < now => {
                let k = u32::from(now - fw);
                if self.store.unread(h, k).is_ok() {
                    let ms = &mut self.mirror_stats;
                    ms.pending_lowered = ms.pending_lowered.wrapping_add(1);
                    ms.records_unread = ms.records_unread.wrapping_add(u64::from(k));
                } else {
                    let ms = &mut self.mirror_stats;
                    ms.pending_refused = ms.pending_refused.wrapping_add(1);
                }
            }
            _ => ms.pending_refused = ms.pending_refused.wrapping_add(1),
        }
    }

    /// Before a call changes the sensor of `csb[entry]`: honours (or refuses) what the
    /// firmware wrote into `no_pending` of that entry (unless `skip_self`: `erase_tsd_evt`
    /// reads it as its count) and of every other entry sharing its id.
    pub(crate) fn enter(&mut self, idx: usize, entry: u16, skip_self: bool) {
        let Some(key) = self.key_at(idx, entry) else {
            return;
        };
        if self.is_shared(key) {
            self.for_key(key, |st, i, e| {
                if !(skip_self && i == idx && e == entry) {
                    st.reconcile(i, e);
                }
            });
        } else if !skip_self {
            self.reconcile(idx, entry);
        }
    }

    /// After a call changed the sensor of `csb[entry]`: mirrors that entry and every other
    /// entry sharing its id, then every registered entry if the call changed other
    /// sensors too (see `Generation`). O(1) extra on the common path.
    pub(crate) fn settle(&mut self, idx: usize, entry: u16) {
        match self.key_at(idx, entry) {
            Some(key) if self.is_shared(key) => self.for_key(key, |st, i, e| st.mirror(i, e)),
            _ => self.mirror(idx, entry),
        }
        self.refresh_if_moved();
    }

    /// `enter(idx, entry, false)` when the caller already looked up the sensor of
    /// `csb[entry]` (`h`): one lookup less on the hot paths (write, read, ACK).
    /// The write path's start: opens `entry`'s sensor (registering it on first use)
    /// and applies the firmware's `no_pending` edits with its handle; if opening
    /// fails, the entry's edits are applied and its mirror written before the
    /// error is returned.
    pub(crate) fn open_and_enter(&mut self, idx: usize, entry: u16) -> FfiResult<Handle> {
        match self.open_entry(idx, entry) {
            Ok(h) => {
                self.enter_with(idx, entry, Some(h));
                Ok(h)
            }
            Err(e) => {
                self.enter(idx, entry, false);
                self.settle(idx, entry);
                Err(e)
            }
        }
    }

    pub(crate) fn enter_with(&mut self, idx: usize, entry: u16, h: Option<Handle>) {
        match self.key_at(idx, entry) {
            Some(key) if self.is_shared(key) => self.for_key(key, |st, i, e| st.reconcile(i, e)),
            Some(_) => self.reconcile_with(idx, entry, h),
            None => {}
        }
    }

    /// `settle` when the caller already looked up the sensor of `csb[entry]` (`h`).
    pub(crate) fn settle_with(&mut self, idx: usize, entry: u16, h: Option<Handle>) {
        match self.key_at(idx, entry) {
            Some(key) if self.is_shared(key) => self.for_key(key, |st, i, e| st.mirror(i, e)),
            _ => self.mirror_with(idx, entry, h),
        }
        self.refresh_if_moved();
    }

    /// Before a native-API call on sensor `h`: `enter` for every entry of that sensor.
    pub(crate) fn enter_handle(&mut self, h: Handle) {
        if let Ok(key) = self.store.key_of(h) {
            self.for_key(key, |st, i, e| st.reconcile(i, e));
        }
    }

    /// After a native-API call on sensor `h`: mirrors every entry of that sensor, then
    /// everything if other sensors changed.
    pub(crate) fn settle_handle(&mut self, h: Handle) {
        if let Ok(key) = self.store.key_of(h) {
            self.for_key(key, |st, i, e| st.mirror(i, e));
        }
        self.refresh_if_moved();
    }

    /// Refreshes every entry if the store's generation moved since the last refresh, or
    /// the entries of the victim of an overflow drop (one drop since the last check: the
    /// usual case, a write that found RAM full), O(entries) reads of ids.
    pub(crate) fn refresh_if_moved(&mut self) {
        if self.store.generation() != self.mirrored_gen {
            self.refresh_all();
            return;
        }
        let (drops, victim) = self.store.last_drop();
        if drops == self.mirrored_drops {
            return;
        }
        match victim {
            Some(key) if drops.wrapping_sub(self.mirrored_drops) == 1 => {
                self.mirrored_drops = drops;
                self.for_key(key, |st, i, e| st.reconcile(i, e));
                self.for_key(key, |st, i, e| st.mirror(i, e));
            }
            _ => self.refresh_all(),
        }
    }

    /// Re-mirrors every registered entry (after calls that can touch any sensor): first
    /// honours every firmware-lowered `no_pending`, then writes every mirror.
    pub(crate) fn refresh_all(&mut self) {
        self.recompute_shared();
        for idx in 0..self.regs.len() {
            let count = self.regs.get(idx).map_or(0, Registration::count);
            for e in 0..count {
                self.reconcile(idx, e);
            }
        }
        for idx in 0..self.regs.len() {
            let count = self.regs.get(idx).map_or(0, Registration::count);
            for e in 0..count {
                self.mirror(idx, e);
            }
        }
        self.mirrored_gen = self.store.generation();
        self.mirrored_drops = self.store.last_drop().0;
        let ms = &mut self.mirror_stats;
        ms.refreshes = ms.refreshes.wrapping_add(1);
    }

    /// Counts a finished call.
    fn note(&mut self, status: SpoolStatus) {
        let f = &mut self.ffi;
        f.calls = f.calls.wrapping_add(1);
        let c = match status {
            SpoolStatus::SPOOL_OK | SpoolStatus::SPOOL_ERR_NO_DATA => None,
            SpoolStatus::SPOOL_ERR_NULL => Some(&mut f.rejected_null),
            SpoolStatus::SPOOL_ERR_NOT_INITIALIZED => Some(&mut f.rejected_not_initialized),
            SpoolStatus::SPOOL_ERR_NOT_REGISTERED => Some(&mut f.rejected_not_registered),
            SpoolStatus::SPOOL_ERR_INDEX => Some(&mut f.rejected_index),
            SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT
            | SpoolStatus::SPOOL_ERR_BAD_LAYOUT
            | SpoolStatus::SPOOL_ERR_OVERLAP
            | SpoolStatus::SPOOL_ERR_REGISTRY_FULL
            | SpoolStatus::SPOOL_ERR_ALREADY_INITIALIZED
            | SpoolStatus::SPOOL_ERR_BAD_GEOMETRY
            | SpoolStatus::SPOOL_ERR_BUSY => Some(&mut f.rejected_other),
            _ => Some(&mut f.store_errors),
        };
        if status == SpoolStatus::SPOOL_ERR_NO_SPACE {
            self.disk_full = true;
        }

        if let Some(c) = c {
            *c = c.wrapping_add(1);
        }
        self.last_status = status;
        if self.log.is_some() {
            self.log_call(status);
        }
    }
}

/// The global store. `critical_section::Mutex` gives `Sync`; the `RefCell` is borrowed
/// with `try_borrow_mut`, so a re-entrant call gets `SPOOL_ERR_BUSY` instead of a panic.
static STATE: Mutex<RefCell<State>> = Mutex::new(RefCell::new(State::new()));

/// Runs `f` on the global state inside the critical section and counts the outcome.
pub(crate) fn call<R>(f: impl FnOnce(&mut State) -> FfiResult<R>) -> FfiResult<R> {
    critical_section::with(|cs| match STATE.borrow(cs).try_borrow_mut() {
        Ok(mut st) => {
            let r = f(&mut st);
            st.note(match &r {
                Ok(_) => SpoolStatus::SPOOL_OK,
                Err(e) => *e,
            });
            r
        }
        Err(_) => Err(SpoolStatus::SPOOL_ERR_BUSY),
    })
}

/// Like `call` but does not count the call (used by `spool_deinit`, which resets the counters).
pub(crate) fn call_uncounted<R>(f: impl FnOnce(&mut State) -> FfiResult<R>) -> FfiResult<R> {
    critical_section::with(|cs| match STATE.borrow(cs).try_borrow_mut() {
        Ok(mut st) => f(&mut st),
        Err(_) => Err(SpoolStatus::SPOOL_ERR_BUSY),
    })
}

/// Like `call` but does not count the call or change the last status (pure queries).
pub(crate) fn peek<R>(f: impl FnOnce(&State) -> R) -> FfiResult<R> {
    critical_section::with(|cs| match STATE.borrow(cs).try_borrow() {
        Ok(st) => Ok(f(&st)),
        Err(_) => Err(SpoolStatus::SPOOL_ERR_BUSY),
    })
}

/// Reads the `utc_now` hook (outside the critical section afterwards).
pub(crate) fn utc_now() -> u32 {
    let hook = peek(|st| {
        if st.initialized {
            st.config.utc_now
        } else {
            None
        }
    })
    .ok()
    .flatten();
    match hook {
        // SAFETY: the firmware registered this function pointer in `spool_config_t` and
        // documents it as callable from any thread that calls the library; no arguments.
        Some(f) => unsafe { f() },
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layout with every field at an odd (unaligned) offset.
    fn odd_layout() -> SpoolLayout {
        SpoolLayout {
            csb_size: 11,
            csb_id_offset: 1,
            csb_sample_rate_offset: 5,
            csd_size: 23,
            csd_no_samples_offset: 1,
            csd_no_pending_offset: 3,
            csd_last_sample_time_offset: 5,
            csd_last_sample_time_size: 8,
            csd_last_value_offset: 13,
            csd_ds_offset: 17,
            csd_ds_size: 6,
        }
    }

    #[test]
    fn unaligned_fields_and_saturating_mirrors() {
        let mut csb = [0u8; 11 * 3];
        let mut csd = [0xEEu8; 23 * 3];
        // csb[2].id = 0x01020304, csb[2].sample_rate = 0 (EVT), at odd offsets.
        csb[22 + 1..22 + 5].copy_from_slice(&0x0102_0304u32.to_le_bytes());
        let layout = Layout::new(&odd_layout()).expect("valid layout");
        let reg = Registration {
            csb: NonNull::new(csb.as_mut_ptr()).expect("non-null"),
            csd: NonNull::new(csd.as_mut_ptr()).expect("non-null"),
            count: 3,
            layout,
            source: 7,
        };
        let (key, kind, rate) = reg.sensor(2).expect("entry 2");
        assert_eq!(
            (key.source, key.id, kind, rate),
            (7, 0x0102_0304, Kind::Evt, 0)
        );
        assert_eq!(reg.sensor(3).map(|_| ()), Err(SpoolStatus::SPOOL_ERR_INDEX));
        reg.mirror_counts(1, 70_000, 65_536);
        assert_eq!(
            reg.read_csd_u16(1, 1),
            Some(u16::MAX),
            "no_samples saturates"
        );
        assert_eq!(
            reg.csd_no_pending(1),
            Some(u16::MAX),
            "no_pending saturates"
        );
        reg.mirror_counts(1, 5, 2);
        assert_eq!(
            (reg.read_csd_u16(1, 1), reg.csd_no_pending(1)),
            (Some(5), Some(2))
        );
        reg.mirror_last(1, 0xCAFE_F00D, 3);
        reg.zero_ds(1);
        let e1 = &csd[23..46];
        assert_eq!(e1[0], 0xEE, "byte before no_samples untouched");
        assert_eq!(&e1[5..13], &3000u64.to_le_bytes());
        assert_eq!(&e1[13..17], &0xCAFE_F00Du32.to_le_bytes());
        assert_eq!(&e1[17..23], &[0; 6]);
        assert!(csd[..23].iter().all(|&b| b == 0xEE), "entry 0 untouched");
        assert!(csd[46..].iter().all(|&b| b == 0xEE), "entry 2 untouched");
        assert_eq!(reg.ds_entry(csd.as_ptr() as usize + 23 + 17), Some((1, 6)));
        assert_eq!(reg.ds_entry(csd.as_ptr() as usize + 23 + 16), None);
    }

    #[test]
    fn layout_validation() {
        assert!(Layout::new(&odd_layout()).is_ok());
        let bad = |f: fn(&mut SpoolLayout)| {
            let mut l = odd_layout();
            f(&mut l);
            Layout::new(&l).map(|_| ())
        };
        let e = Err(SpoolStatus::SPOOL_ERR_BAD_LAYOUT);
        assert_eq!(bad(|l| l.csb_id_offset = 8), e);
        assert_eq!(bad(|l| l.csd_no_pending_offset = 2), e);
        assert_eq!(bad(|l| l.csd_last_sample_time_offset = u32::MAX - 2), e);
        assert_eq!(bad(|l| l.csd_ds_size = 7), e);
        assert_eq!(
            bad(|l| l.csd_last_value_offset = 12),
            e,
            "overlaps last_sample_time"
        );
        assert_eq!(
            bad(|l| {
                l.csd_last_sample_time_offset = SPOOL_FIELD_ABSENT;
                l.csd_last_value_offset = SPOOL_FIELD_ABSENT;
                l.csd_ds_offset = SPOOL_FIELD_ABSENT;
            }),
            Ok(())
        );
        assert_eq!(array_range(usize::MAX - 10, 11, 1), None);
        assert_eq!(
            array_range(0x1000, u32::MAX, u16::MAX).is_some(),
            usize::BITS > 32
        );
    }
}
