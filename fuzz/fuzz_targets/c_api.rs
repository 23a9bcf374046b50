//! `c_api`: sequences of C API calls, valid and hostile, against a plain model.
//!
//! Every input starts from `spool_deinit()` (the C API has one global store) and drives
//! the legacy calls (`write_tsd_evt[_time]`, `read_tsd_evt`, `erase_tsd_evt`,
//! `atomic_erase_records`, `revert_/erase_tsd_evt_pending_data`, `reset_csd_entry`,
//! `imx_init_data_store_entry`, the flush family), the native `spool_*` calls and the C
//! block pool with firmware-like csb/csd arrays, including NULL pointers, calls before
//! `spool_init` and after `spool_deinit`, unregistered and mismatched arrays, entries
//! and `no_items` past the registration, counts at their limits, unknown handles,
//! conflicting sample rates, the firmware changing `id` / `sample_rate` / `no_pending`
//! behind the library's back, and double / foreign pool frees.
//!
//! After every call: the status (or `spool_last_status()` for `void` calls) is exactly
//! the model's, values read are the model's, out-parameters are untouched on error,
//! the mirrored `no_samples` / `no_pending` of every entry are what the model expects
//! (ABI 3: every entry of a changed sensor is mirrored, entries sharing an id included,
//! and a `no_pending` the firmware lowered is honoured as MM1's un-read before the
//! library changes that sensor; a raised one is refused),
//! per-sensor and store stats match, `spool_check()` and `spool_pool_check()` pass.
//! Once the store overflows (drops or refuses a record) the exact model ends there
//! (which records are dropped depends on RAM sector boundaries); invariants are still
//! checked. At the end every pool block is freed and the pool is empty again.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sensor_spool::ffi::*;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::c_void;
use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, Ordering};

use SpoolStatus::*;

/// `imx_control_sensor_block_t` stand-in (fields before the bitfield matter).
#[repr(C)]
#[derive(Clone, Copy)]
struct Csb {
    name: [u8; 32],
    id: u32,
    sample_rate: u32,
    poll_rate: u32,
}

/// `control_sensor_data_t` stand-in (MM1 field list).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Csd {
    last_sample_time: u64,
    no_samples: u16,
    no_pending: u16,
    errors: u32,
    last_value: u32,
    ds: [u32; 3],
}

fn layout() -> SpoolLayout {
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

const IDS: [u32; 4] = [1, 2, 0x0100_0000, u32::MAX];
const RATES: [u32; 4] = [0, 1000, 250, 0];
const ARRAYS: usize = 3;

/// One firmware array pair, accessed only through raw pointers (like C arrays).
struct Arrays {
    csb: *mut Csb,
    csd: *mut Csd,
    n: usize,
}

impl Arrays {
    fn new(ids: &[(u8, u8)]) -> Arrays {
        let csb: Box<[Csb]> = ids
            .iter()
            .map(|&(i, r)| Csb {
                name: [0; 32],
                id: IDS[usize::from(i) % IDS.len()],
                sample_rate: RATES[usize::from(r) % RATES.len()],
                poll_rate: 0,
            })
            .collect();
        let csd: Box<[Csd]> = vec![
            Csd {
                last_sample_time: 0,
                no_samples: 0xAAAA,
                no_pending: 0x5555,
                errors: 0,
                last_value: 0,
                ds: [7; 3],
            };
            ids.len()
        ]
        .into_boxed_slice();
        Arrays {
            csb: Box::into_raw(csb).cast(),
            csd: Box::into_raw(csd).cast(),
            n: ids.len(),
        }
    }
    fn csb(&self) -> *mut ControlSensorBlock {
        self.csb.cast()
    }
    fn csd(&self) -> *mut ControlSensorData {
        self.csd.cast()
    }
    fn csb_at(&self, e: usize) -> Csb {
        assert!(e < self.n);
        // SAFETY: in bounds of the allocation, initialized.
        unsafe { self.csb.add(e).read() }
    }
    fn set_csb(&self, e: usize, id: u32, rate: u32) {
        assert!(e < self.n);
        // SAFETY: in bounds; plain field writes through the raw pointer.
        unsafe {
            (*self.csb.add(e)).id = id;
            (*self.csb.add(e)).sample_rate = rate;
        }
    }
    fn csd_at(&self, e: usize) -> Csd {
        assert!(e < self.n);
        // SAFETY: in bounds, initialized.
        unsafe { self.csd.add(e).read() }
    }
    fn set_no_pending(&self, e: usize, v: u16) {
        assert!(e < self.n);
        // SAFETY: in bounds; plain field write.
        unsafe { (*self.csd.add(e)).no_pending = v }
    }
    fn ds_ptr(&self, e: usize) -> *mut DataStoreInfo {
        assert!(e < self.n);
        // SAFETY: in bounds; no reference is created.
        unsafe { std::ptr::addr_of_mut!((*self.csd.add(e)).ds).cast() }
    }
    fn errors_ptr(&self, e: usize) -> *mut DataStoreInfo {
        assert!(e < self.n);
        // SAFETY: in bounds; no reference is created.
        unsafe { std::ptr::addr_of_mut!((*self.csd.add(e)).errors).cast() }
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

static UTC: AtomicU32 = AtomicU32::new(0);
extern "C" fn utc_now() -> u32 {
    UTC.load(Ordering::Relaxed)
}

/// Which arrays a legacy call gets.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Target {
    Arr(u8),
    /// csb of one pair with csd of another.
    Mixed(u8),
    /// An array pair that is never registered.
    Stranger,
    NullCsb(u8),
    NullCsd(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Init {
        two_words: bool,
        bad_flags: bool,
        bad_abi: bool,
        clock: bool,
        null: bool,
    },
    Deinit,
    Register {
        arr: u8,
        source: u8,
        count: u8,
        bad_layout: u8,
        null: u8,
    },
    SetUtc(u32),
    Write(Target, u16, u32, u32),
    WriteNow(Target, u16, u32),
    Read(Target, u16, bool),
    Erase(Target, u16),
    AtomicErase(Target, u16, u16),
    Revert(Target, u16),
    ErasePending(Target, u16),
    SetNoPending(u8, u16, u16),
    SetCsb(u8, u16, u8, u8),
    Reset(u8, u16, bool),
    InitDs(u8, u16, u8),
    Open(u8, u8, u8, bool),
    NWrite(u8, u32, u64),
    NRead(u8, bool),
    NAck(u8, u32),
    NRevert(u8),
    NStats(u8, bool),
    Stats(bool),
    Process(u32),
    Flush,
    Cancel,
    PoolAlloc(u16, bool),
    PoolFree(u8, u8),
    PoolStats(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    arrays: [Vec<(u8, u8)>; ARRAYS],
    ops: Vec<Op>,
}

#[derive(Default, Clone, Debug)]
struct Sensor {
    /// Stored rate: 0 for EVT, else max(1, rate).
    rate: u32,
    values: VecDeque<(u32, u64)>,
    pending: usize,
}

type Key = (u8, u32);

#[derive(Default)]
struct Model {
    init: bool,
    two_words: bool,
    clock: bool,
    /// Registration order: (array, source, count).
    regs: Vec<(usize, u8, u16)>,
    sensors: BTreeMap<Key, Sensor>,
    /// Expected (no_samples, no_pending) per (array, entry) once registered.
    mirror: HashMap<(usize, usize), (u16, u16)>,
    handles: Vec<u64>,
    /// The library's filter of keys shared by several entries (same hash as
    /// `state::key_bit`): which entries a call settles depends on it.
    shared: [u32; 8],
    /// A sensor was created since the last full refresh (the store's generation moved).
    refresh_due: bool,
}

/// `state::key_bit` of the library.
fn key_bit(k: Key) -> (usize, u32) {
    let h = (k.1 ^ (u32::from(k.0) << 24)).wrapping_mul(0x9E37_79B1) >> 24;
    ((h >> 5) as usize, 1u32 << (h & 31))
}

fn sat(v: usize) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

impl Model {
    fn reg_of(&self, arr: usize) -> Option<(u8, u16)> {
        self.regs
            .iter()
            .find(|r| r.0 == arr)
            .map(|&(_, s, c)| (s, c))
    }
    fn counts(&self, k: Key) -> (u16, u16) {
        self.sensors
            .get(&k)
            .map_or((0, 0), |s| (sat(s.values.len()), sat(s.pending)))
    }
}

struct World {
    arrays: Vec<Arrays>,
    stranger: Arrays,
    m: Model,
    pool: Vec<(*mut u8, usize, u8)>,
    freed: Vec<*mut u8>,
    /// The store dropped or refused a record: exact value checks end.
    overflowed: bool,
}

impl World {
    fn key_of(&self, arr: usize, e: usize) -> Key {
        let src = self.m.reg_of(arr).map_or(0, |r| r.0);
        (src, self.arrays[arr].csb_at(e).id)
    }
    fn rate_of(&self, arr: usize, e: usize) -> u32 {
        self.arrays[arr].csb_at(e).sample_rate
    }
    /// `csd[e]` mirrors the counters of its current sensor.
    fn touch(&mut self, arr: usize, e: usize) {
        let c = self.m.counts(self.key_of(arr, e));
        self.m.mirror.insert((arr, e), c);
    }
    /// Every registered entry whose current key is `k` (native calls).
    fn touch_key(&mut self, k: Key) {
        let regs = self.m.regs.clone();
        for (arr, _, n) in regs {
            for e in 0..usize::from(n) {
                if self.key_of(arr, e) == k {
                    self.touch(arr, e);
                }
            }
        }
    }
    /// Every registered entry (a shutdown-flush step mirrors them all).
    fn touch_all(&mut self) {
        for (arr, e) in self.entries() {
            self.touch(arr, e);
        }
    }
    /// Every registered entry, in the library's order (registrations, then entries).
    fn entries(&self) -> Vec<(usize, usize)> {
        self.m
            .regs
            .iter()
            .flat_map(|&(arr, _, n)| (0..usize::from(n)).map(move |e| (arr, e)))
            .collect()
    }
    /// `csd[e].no_pending` as it is now (the model predicts every write to it).
    fn fw(&self, arr: usize, e: usize) -> u16 {
        self.m.mirror.get(&(arr, e)).map_or(0, |m| m.1)
    }
    fn recompute_shared(&mut self) -> bool {
        let (mut seen, mut dup) = ([0u32; 8], [0u32; 8]);
        for (arr, e) in self.entries() {
            let (w, b) = key_bit(self.key_of(arr, e));
            if seen[w] & b != 0 {
                dup[w] |= b;
            }
            seen[w] |= b;
        }
        let changed = dup != self.m.shared;
        self.m.shared = dup;
        changed
    }
    fn is_shared(&self, k: Key) -> bool {
        let (w, b) = key_bit(k);
        self.m.shared[w] & b != 0
    }
    /// The firmware's `no_pending` of `csd[e]` against the count it shows: lowered by k,
    /// the last k records handed out are unsent again; raised: refused.
    fn reconcile(&mut self, arr: usize, e: usize) {
        let fw = self.fw(arr, e);
        let k = self.key_of(arr, e);
        if let Some(s) = self.m.sensors.get_mut(&k) {
            let shown = sat(s.pending);
            if fw < shown {
                s.pending -= usize::from(shown - fw);
            }
        }
    }
    /// Before a legacy call changes the sensor of `(arr, e)`.
    fn enter(&mut self, arr: usize, e: usize, skip_self: bool) {
        let k = self.key_of(arr, e);
        if self.is_shared(k) {
            for (x, f) in self.entries() {
                if self.key_of(x, f) == k && !(skip_self && (x, f) == (arr, e)) {
                    self.reconcile(x, f);
                }
            }
        } else if !skip_self {
            self.reconcile(arr, e);
        }
    }
    /// Before a native call changes sensor `k`: every entry of it.
    fn enter_key(&mut self, k: Key) {
        for (x, f) in self.entries() {
            if self.key_of(x, f) == k {
                self.reconcile(x, f);
            }
        }
    }
    /// After a legacy call changed the sensor of `(arr, e)`.
    fn settle(&mut self, arr: usize, e: usize) {
        let k = self.key_of(arr, e);
        if self.is_shared(k) {
            self.touch_key(k);
        } else {
            self.touch(arr, e);
        }
        self.refresh_if_moved();
    }
    fn refresh_if_moved(&mut self) {
        if self.m.refresh_due {
            self.refresh_all();
        }
    }
    fn refresh_all(&mut self) {
        self.recompute_shared();
        for (x, f) in self.entries() {
            self.reconcile(x, f);
        }
        self.touch_all();
        self.m.refresh_due = false;
    }
    fn pointers(&self, t: Target) -> (*mut ControlSensorBlock, *mut ControlSensorData) {
        let a = |i: u8| &self.arrays[usize::from(i) % ARRAYS];
        match t {
            Target::Arr(i) => (a(i).csb(), a(i).csd()),
            Target::Mixed(i) => {
                let j = (usize::from(i) % ARRAYS + 1) % ARRAYS;
                (a(i).csb(), self.arrays[j].csd())
            }
            Target::Stranger => (self.stranger.csb(), self.stranger.csd()),
            Target::NullCsb(i) => (std::ptr::null_mut(), a(i).csd()),
            Target::NullCsd(i) => (a(i).csb(), std::ptr::null_mut()),
        }
    }
    /// What `locate` answers for a target: the registered array or the error.
    fn locate(&self, t: Target) -> Result<usize, SpoolStatus> {
        if matches!(t, Target::NullCsb(_) | Target::NullCsd(_)) {
            return Err(SPOOL_ERR_NULL);
        }
        if !self.m.init {
            return Err(SPOOL_ERR_NOT_INITIALIZED);
        }
        match t {
            Target::Arr(i) => {
                let arr = usize::from(i) % ARRAYS;
                self.m
                    .reg_of(arr)
                    .map(|_| arr)
                    .ok_or(SPOOL_ERR_NOT_REGISTERED)
            }
            _ => Err(SPOOL_ERR_NOT_REGISTERED),
        }
    }
    fn entry(&self, arr: usize, e: u16) -> Result<usize, SpoolStatus> {
        let (_, n) = self.m.reg_of(arr).unwrap();
        if e < n {
            Ok(usize::from(e))
        } else {
            Err(SPOOL_ERR_INDEX)
        }
    }
    /// `Spool::register` semantics: same rate = same sensor, another rate = conflict.
    fn open(&mut self, k: Key, rate: u32) -> Result<(), SpoolStatus> {
        let rate = if rate == 0 { 0 } else { rate.max(1) };
        match self.m.sensors.get(&k) {
            Some(s) if s.rate != rate => Err(SPOOL_ERR_CONFLICT),
            Some(_) => Ok(()),
            None => {
                self.m.sensors.insert(
                    k,
                    Sensor {
                        rate,
                        ..Sensor::default()
                    },
                );
                self.m.refresh_due = true;
                Ok(())
            }
        }
    }
    /// Legacy write of `value` at `utc_s`; returns the expected status.
    fn write(&mut self, arr: usize, e: usize, value: u32, utc_s: u32) -> SpoolStatus {
        let k = self.key_of(arr, e);
        self.enter(arr, e, false);
        if let Err(s) = self.open(k, self.rate_of(arr, e)) {
            self.settle(arr, e);
            return s;
        }
        self.push(k, value, u64::from(utc_s) * 1000);
        self.settle(arr, e);
        SPOOL_OK
    }
    fn push(&mut self, k: Key, value: u32, time_ms: u64) {
        let s = self.m.sensors.get_mut(&k).unwrap();
        let t = (time_ms / 1000).min(u64::from(u32::MAX)) * 1000;
        s.values.push_back((value, t));
    }
    /// erase_entry: min(firmware no_pending, pending), all if no_pending == 0xFFFF: the
    /// value the entry holds when the erase runs (what the firmware left, or, in an
    /// `erase_tsd_evt_pending_data` loop, the mirror an earlier entry of the same sensor
    /// wrote), after the other entries of the sensor were reconciled.
    fn erase(&mut self, arr: usize, e: usize) {
        self.enter(arr, e, true);
        let fw = self.fw(arr, e);
        let k = self.key_of(arr, e);
        if let Some(s) = self.m.sensors.get_mut(&k) {
            let n = if fw == u16::MAX {
                s.pending
            } else {
                s.pending.min(usize::from(fw))
            };
            s.values.drain(..n);
            s.pending -= n;
        }
        self.settle(arr, e);
    }
    fn handle(&self, h: u8) -> u64 {
        match self
            .m
            .handles
            .get(usize::from(h) % (self.m.handles.len() + 1))
        {
            Some(&h) => h,
            None => 0xDEAD_0000_0000 | u64::from(h),
        }
    }
    fn handle_key(h: u64) -> Option<Key> {
        u8::try_from(h >> 32).ok().map(|s| (s, h as u32))
    }
}

fn last() -> SpoolStatus {
    spool_last_status()
}

fn stats() -> Result<SpoolStats, SpoolStatus> {
    let mut s = SpoolStats::default();
    // SAFETY: `s` is writable.
    match unsafe { spool_stats(&mut s) } {
        SPOOL_OK => Ok(s),
        e => Err(e),
    }
}

fn pool_stats() -> [SpoolTierStats; 3] {
    let mut t = [SpoolTierStats::default(); 3];
    // SAFETY: room for 3 entries.
    assert_eq!(unsafe { spool_pool_stats(t.as_mut_ptr(), 3) }, SPOOL_OK);
    t
}

fn step(w: &mut World, op: Op) {
    match op {
        Op::Init {
            two_words,
            bad_flags,
            bad_abi,
            clock,
            null,
        } => {
            let mut cfg = std::mem::MaybeUninit::<SpoolConfig>::uninit();
            // SAFETY: writable; initialized on SPOOL_OK.
            assert_eq!(unsafe { spool_config_default(cfg.as_mut_ptr()) }, SPOOL_OK);
            // SAFETY: initialized by spool_config_default.
            let mut cfg = unsafe { cfg.assume_init() };
            // ABI 3: two words is the default, one word the opt-in.
            cfg.flags = if two_words {
                0
            } else {
                SPOOL_CFG_EVT_READ_ONE_WORD
            } | if bad_flags { 0x8000 } else { 0 };
            if bad_abi {
                cfg.abi_version = SPOOL_ABI_VERSION + 1;
            }
            cfg.utc_now = if clock { Some(utc_now) } else { None };
            let p: *const SpoolConfig = if null { std::ptr::null() } else { &cfg };
            // SAFETY: NULL or a valid config; the callback is callable from any thread.
            let r = unsafe { spool_init(p) };
            let want = if null {
                SPOOL_ERR_NULL
            } else if w.m.init {
                SPOOL_ERR_ALREADY_INITIALIZED
            } else if bad_flags || bad_abi {
                SPOOL_ERR_INVALID_ARGUMENT
            } else {
                SPOOL_OK
            };
            assert_eq!(r, want, "spool_init");
            if want == SPOOL_OK {
                w.m.init = true;
                w.m.two_words = two_words;
                w.m.clock = clock;
                w.m.sensors.clear();
                w.m.handles.clear();
                CLEARED.store(0, Ordering::Relaxed);
                // The store restarts empty: mirrors follow on the next touch only.
            }
        }
        Op::Deinit => {
            assert_eq!(spool_deinit(), SPOOL_OK);
            w.m.init = false;
            w.m.regs.clear();
            w.m.sensors.clear();
            w.m.handles.clear();
            w.m.mirror.clear();
            w.m.shared = [0; 8];
            w.m.refresh_due = false;
            w.overflowed = false;
            CLEARED.store(0, Ordering::Relaxed);
        }
        Op::Register {
            arr,
            source,
            count,
            bad_layout,
            null,
        } => {
            let a = usize::from(arr) % ARRAYS;
            let n = w.arrays[a].n as u16;
            let cnt = match count % 4 {
                0 => n,
                1 => 0,
                2 => n.saturating_sub(1).max(1),
                _ => u16::MAX,
            };
            let mut l = layout();
            let bad = match bad_layout % 8 {
                1 => {
                    l.csb_id_offset = l.csb_size - 3;
                    true
                }
                2 => {
                    l.csd_no_pending_offset = l.csd_no_samples_offset + 1;
                    true
                }
                3 => {
                    l.csd_last_sample_time_size = 5;
                    true
                }
                4 => {
                    l.csd_size = 0;
                    true
                }
                5 => {
                    l.csd_ds_offset = u32::MAX - 4;
                    true
                }
                _ => false,
            };
            let (csb, csd) = (w.arrays[a].csb(), w.arrays[a].csd());
            let (csb, csd, lp): (_, _, *const SpoolLayout) = match null % 8 {
                1 => (std::ptr::null_mut(), csd, &l),
                2 => (csb, std::ptr::null_mut(), &l),
                3 => (csb, csd, std::ptr::null()),
                // The csd array passed as csb too: overlap.
                4 => (csd.cast(), csd, &l),
                _ => (csb, csd, &l),
            };
            let src = source % 3;
            // SAFETY: the arrays hold `n` elements of the layout's sizes and outlive the
            // registration (spool_deinit runs before they are freed). Counts above `n` are
            // rejected (u16::MAX overlaps the other arrays or is refused as a bad range)
            // before any element is touched... except when they would be accepted, which
            // the model below excludes by expecting an error only for them.
            let want = if csb.is_null() || csd.is_null() || lp.is_null() {
                SPOOL_ERR_NULL
            } else if !w.m.init {
                SPOOL_ERR_NOT_INITIALIZED
            } else if cnt == 0 {
                SPOOL_ERR_INVALID_ARGUMENT
            } else if bad {
                SPOOL_ERR_BAD_LAYOUT
            } else if null % 8 == 4 || w.m.reg_of(a).is_some() {
                SPOOL_ERR_OVERLAP
            } else if cnt > n {
                // Too long for the arrays: the library cannot know; never call it.
                return;
            } else {
                SPOOL_OK
            };
            // SAFETY: see above; every accepted registration is in bounds.
            let r = unsafe { spool_register_sensors(csb, csd, cnt, lp, src) };
            assert_eq!(r, want, "register arr {a} count {cnt}");
            if r == SPOOL_OK {
                w.m.regs.push((a, src, cnt));
                for e in 0..usize::from(cnt) {
                    w.touch(a, e);
                }
                w.recompute_shared();
                w.refresh_if_moved();
            }
        }
        Op::SetUtc(t) => UTC.store(t, Ordering::Relaxed),
        Op::Write(t, e, v, utc) => {
            let (csb, csd) = w.pointers(t);
            // SAFETY: registered live arrays, NULL, or arrays the library rejects.
            unsafe { write_tsd_evt_time(csb, csd, e, v, utc) };
            let want = match w.locate(t).and_then(|a| Ok((a, w.entry(a, e)?))) {
                Err(s) => s,
                Ok((a, e)) => w.write(a, e, v, utc),
            };
            assert_eq!(last(), want, "write_tsd_evt_time");
        }
        Op::WriteNow(t, e, v) => {
            let (csb, csd) = w.pointers(t);
            // SAFETY: as above; no GPS.
            unsafe { write_tsd_evt(csb, csd, e, v, false) };
            let utc = if w.m.init && w.m.clock {
                UTC.load(Ordering::Relaxed)
            } else {
                0
            };
            let want = match w.locate(t).and_then(|a| Ok((a, w.entry(a, e)?))) {
                Err(s) => s,
                Ok((a, e)) => w.write(a, e, v, utc),
            };
            assert_eq!(last(), want, "write_tsd_evt");
        }
        Op::Read(t, e, null) => {
            let (csb, csd) = w.pointers(t);
            let mut v = [0xAAAA_AAAAu32; 2];
            let p = if null {
                std::ptr::null_mut()
            } else {
                v.as_mut_ptr()
            };
            // SAFETY: as above; `v` holds two words.
            unsafe { read_tsd_evt(csb, csd, e, p) };
            let located = if null {
                Err(SPOOL_ERR_NULL)
            } else {
                w.locate(t).and_then(|a| Ok((a, w.entry(a, e)?)))
            };
            match located {
                Err(s) => {
                    assert_eq!(last(), s, "read_tsd_evt");
                    assert_eq!(v, [0xAAAA_AAAA; 2], "read_tsd_evt wrote on error");
                }
                Ok((a, e)) => {
                    w.enter(a, e, false);
                    let k = w.key_of(a, e);
                    let csb_evt = w.rate_of(a, e) == 0;
                    let two = w.m.two_words;
                    let rec = w.m.sensors.get_mut(&k).and_then(|s| {
                        let r = s.values.get(s.pending).copied();
                        if r.is_some() {
                            s.pending += 1;
                        }
                        r.map(|r| (r, s.rate == 0))
                    });
                    match rec {
                        Some(((val, t), evt)) => {
                            assert_eq!(last(), SPOOL_OK, "read_tsd_evt");
                            if evt && two {
                                assert_eq!(v, [(t / 1000) as u32, val]);
                            } else {
                                assert_eq!(v, [val, 0xAAAA_AAAA]);
                            }
                        }
                        None => {
                            assert_eq!(last(), SPOOL_ERR_NO_DATA, "read_tsd_evt");
                            // Nothing read: the kind of the csb entry decides.
                            if csb_evt && two {
                                assert_eq!(v, [0, 0]);
                            } else {
                                assert_eq!(v, [0, 0xAAAA_AAAA]);
                            }
                        }
                    }
                    w.settle(a, e);
                }
            }
        }
        Op::Erase(t, e) => {
            let (csb, csd) = w.pointers(t);
            // SAFETY: as above.
            unsafe { erase_tsd_evt(csb, csd, e) };
            match w.locate(t).and_then(|a| Ok((a, w.entry(a, e)?))) {
                Err(s) => assert_eq!(last(), s),
                Ok((a, e)) => {
                    w.erase(a, e);
                    assert_eq!(last(), SPOOL_OK, "erase_tsd_evt");
                }
            }
        }
        Op::AtomicErase(t, e, n) => {
            let (csb, csd) = w.pointers(t);
            // SAFETY: as above.
            let r = unsafe { atomic_erase_records(csb, csd, e, n) };
            let want = match w.locate(t).and_then(|a| Ok((a, w.entry(a, e)?))) {
                Err(s) => s,
                Ok((a, e)) => {
                    w.enter(a, e, false);
                    let k = w.key_of(a, e);
                    let n = usize::from(n);
                    let s = match w.m.sensors.get_mut(&k) {
                        None if n == 0 => SPOOL_OK,
                        None => SPOOL_ERR_ACK_TOO_MANY,
                        Some(s) if n <= s.pending => {
                            s.values.drain(..n);
                            s.pending -= n;
                            SPOOL_OK
                        }
                        Some(_) => SPOOL_ERR_ACK_TOO_MANY,
                    };
                    w.settle(a, e);
                    s
                }
            };
            assert_eq!(r, want, "atomic_erase_records");
        }
        Op::Revert(t, n) | Op::ErasePending(t, n) => {
            let (csb, csd) = w.pointers(t);
            let revert = matches!(op, Op::Revert(..));
            // SAFETY: as above.
            unsafe {
                if revert {
                    revert_tsd_evt_pending_data(csb, csd, n)
                } else {
                    erase_tsd_evt_pending_data(csb, csd, n)
                }
            };
            let want = match w.locate(t) {
                Err(s) => s,
                Ok(a) if n > w.m.reg_of(a).unwrap().1 => SPOOL_ERR_INDEX,
                Ok(a) => {
                    for e in 0..usize::from(n) {
                        if revert {
                            w.enter(a, e, true);
                            let k = w.key_of(a, e);
                            if let Some(s) = w.m.sensors.get_mut(&k) {
                                s.pending = 0;
                            }
                            w.settle(a, e);
                        } else {
                            w.erase(a, e);
                        }
                    }
                    SPOOL_OK
                }
            };
            assert_eq!(last(), want, "revert/erase pending");
        }
        Op::SetNoPending(arr, e, v) => {
            let a = usize::from(arr) % ARRAYS;
            let e = usize::from(e) % w.arrays[a].n;
            w.arrays[a].set_no_pending(e, v);
            if let Some(m) = w.m.mirror.get_mut(&(a, e)) {
                m.1 = v;
            }
        }
        Op::SetCsb(arr, e, id, rate) => {
            let a = usize::from(arr) % ARRAYS;
            let e = usize::from(e) % w.arrays[a].n;
            w.arrays[a].set_csb(
                e,
                IDS[usize::from(id) % IDS.len()],
                RATES[usize::from(rate) % RATES.len()],
            );
        }
        Op::Reset(arr, e, null) => {
            let a = usize::from(arr) % ARRAYS;
            let p = if null {
                std::ptr::null_mut()
            } else {
                w.arrays[a].csd()
            };
            // SAFETY: NULL or a live csd array (registered or not).
            unsafe { reset_csd_entry(p, e) };
            let want = if null {
                SPOOL_ERR_NULL
            } else if !w.m.init {
                SPOOL_ERR_NOT_INITIALIZED
            } else {
                match w.m.reg_of(a).map(|_| w.entry(a, e)) {
                    None => SPOOL_ERR_NOT_REGISTERED,
                    Some(Err(s)) => s,
                    Some(Ok(e)) => {
                        w.enter(a, e, true);
                        let k = w.key_of(a, e);
                        if let Some(s) = w.m.sensors.get_mut(&k) {
                            s.values.clear();
                            s.pending = 0;
                        }
                        w.settle(a, e);
                        SPOOL_OK
                    }
                }
            };
            assert_eq!(last(), want, "reset_csd_entry");
        }
        Op::InitDs(arr, e, how) => {
            let a = usize::from(arr) % ARRAYS;
            let e = usize::from(e) % w.arrays[a].n;
            let p = match how % 3 {
                0 => w.arrays[a].ds_ptr(e),
                1 => w.arrays[a].errors_ptr(e),
                _ => std::ptr::null_mut(),
            };
            // SAFETY: NULL or a pointer into a live csd array.
            unsafe { imx_init_data_store_entry(p) };
            let want = if p.is_null() {
                SPOOL_ERR_NULL
            } else if !w.m.init {
                SPOOL_ERR_NOT_INITIALIZED
            } else if how % 3 == 0 && w.m.reg_of(a).is_some_and(|r| e < usize::from(r.1)) {
                SPOOL_OK
            } else {
                SPOOL_ERR_NOT_REGISTERED
            };
            assert_eq!(last(), want, "imx_init_data_store_entry");
            if want == SPOOL_OK {
                assert_eq!(w.arrays[a].csd_at(e).ds, [0; 3]);
            }
        }
        Op::Open(src, id, rate, null) => {
            let k = (src % 4, IDS[usize::from(id) % IDS.len()]);
            let rate = RATES[usize::from(rate) % RATES.len()];
            let mut h = 0xFFFF_FFFF_FFFF_FFFFu64;
            let p = if null { std::ptr::null_mut() } else { &mut h };
            // SAFETY: NULL or writable.
            let r = unsafe { spool_sensor_open(k.0, k.1, rate, p) };
            let want = if null {
                SPOOL_ERR_NULL
            } else if !w.m.init {
                SPOOL_ERR_NOT_INITIALIZED
            } else {
                match w.open(k, rate) {
                    Ok(()) => SPOOL_OK,
                    Err(s) => s,
                }
            };
            assert_eq!(r, want, "spool_sensor_open");
            if r == SPOOL_OK {
                assert_eq!(h, (u64::from(k.0) << 32) | u64::from(k.1));
                w.m.handles.push(h);
            } else {
                assert_eq!(h, u64::MAX, "handle written on error");
            }
        }
        Op::NWrite(h, v, t) => {
            let h = w.handle(h);
            let r = spool_write(h, v, t);
            let k = World::handle_key(h).filter(|k| w.m.sensors.contains_key(k));
            let want = match k {
                _ if !w.m.init => SPOOL_ERR_NOT_INITIALIZED,
                None => {
                    w.refresh_if_moved();
                    SPOOL_ERR_UNKNOWN_SENSOR
                }
                Some(k) => {
                    w.enter_key(k);
                    w.push(k, v, t);
                    w.touch_key(k);
                    w.refresh_if_moved();
                    SPOOL_OK
                }
            };
            assert_eq!(r, want, "spool_write");
        }
        Op::NRead(h, null) => {
            let h = w.handle(h);
            let mut rec = SpoolRecord {
                time_ms: 7,
                value: 7,
                kind: 7,
            };
            let p = if null { std::ptr::null_mut() } else { &mut rec };
            // SAFETY: NULL or writable.
            let r = unsafe { spool_read(h, p) };
            let k = World::handle_key(h).filter(|k| w.m.sensors.contains_key(k));
            let want = match k {
                _ if null => SPOOL_ERR_NULL,
                _ if !w.m.init => SPOOL_ERR_NOT_INITIALIZED,
                None => {
                    w.refresh_if_moved();
                    SPOOL_ERR_UNKNOWN_SENSOR
                }
                Some(k) => {
                    w.enter_key(k);
                    let s = w.m.sensors.get_mut(&k).unwrap();
                    match s.values.get(s.pending).copied() {
                        None => {
                            w.touch_key(k);
                            w.refresh_if_moved();
                            SPOOL_ERR_NO_DATA
                        }
                        Some((val, t)) => {
                            s.pending += 1;
                            let evt = s.rate == 0;
                            assert_eq!(r, SPOOL_OK, "spool_read");
                            assert_eq!(rec.value, val);
                            assert_eq!(rec.kind, if evt { SPOOL_KIND_EVT } else { SPOOL_KIND_TSD });
                            if evt {
                                assert_eq!(rec.time_ms, t, "EVT time");
                            }
                            w.touch_key(k);
                            w.refresh_if_moved();
                            SPOOL_OK
                        }
                    }
                }
            };
            assert_eq!(r, want, "spool_read");
            if r != SPOOL_OK {
                assert_eq!(
                    rec,
                    SpoolRecord {
                        time_ms: 7,
                        value: 7,
                        kind: 7
                    },
                    "spool_read wrote on error"
                );
            }
        }
        Op::NAck(h, _) | Op::NRevert(h) => {
            let h = w.handle(h);
            let ack = matches!(op, Op::NAck(..));
            let n = match op {
                Op::NAck(_, n) if n > 0xFFFF_FF00 => n,
                Op::NAck(_, n) => n % 8,
                _ => 0,
            };
            let r = if ack {
                spool_ack(h, n)
            } else {
                spool_revert(h)
            };
            let k = World::handle_key(h).filter(|k| w.m.sensors.contains_key(k));
            let want = match k {
                _ if !w.m.init => SPOOL_ERR_NOT_INITIALIZED,
                None => {
                    w.refresh_if_moved();
                    SPOOL_ERR_UNKNOWN_SENSOR
                }
                Some(k) => {
                    w.enter_key(k);
                    let s = w.m.sensors.get_mut(&k).unwrap();
                    let st = if !ack {
                        s.pending = 0;
                        SPOOL_OK
                    } else if (n as usize) <= s.pending {
                        s.values.drain(..n as usize);
                        s.pending -= n as usize;
                        SPOOL_OK
                    } else {
                        SPOOL_ERR_ACK_TOO_MANY
                    };
                    w.touch_key(k);
                    w.refresh_if_moved();
                    st
                }
            };
            assert_eq!(r, want, "spool_ack/revert");
        }
        Op::NStats(h, null) => {
            let h = w.handle(h);
            let mut s = SpoolSensorStats {
                stored: 9,
                ..SpoolSensorStats::default()
            };
            let p = if null { std::ptr::null_mut() } else { &mut s };
            // SAFETY: NULL or writable.
            let r = unsafe { spool_sensor_stats(h, p) };
            let k = World::handle_key(h).filter(|k| w.m.sensors.contains_key(k));
            let want = match k {
                _ if null => SPOOL_ERR_NULL,
                _ if !w.m.init => SPOOL_ERR_NOT_INITIALIZED,
                None => SPOOL_ERR_UNKNOWN_SENSOR,
                Some(_) => SPOOL_OK,
            };
            assert_eq!(r, want, "spool_sensor_stats");
            if r != SPOOL_OK {
                assert_eq!(s.stored, 9);
            }
        }
        Op::Stats(null) => {
            if null {
                // SAFETY: NULL is rejected.
                assert_eq!(unsafe { spool_stats(std::ptr::null_mut()) }, SPOOL_ERR_NULL);
            }
        }
        Op::Process(t) => {
            process_memory(t);
            if w.m.init {
                // RAM only: no spill; an id changed at run time may have made entries
                // share a sensor (ids-only check), else only a moved generation refreshes.
                if w.recompute_shared() {
                    w.refresh_all();
                } else {
                    w.refresh_if_moved();
                }
            }
            let want = if w.m.init {
                SPOOL_OK
            } else {
                SPOOL_ERR_NOT_INITIALIZED
            };
            assert_eq!(last(), want);
            assert_eq!(get_flush_progress(), 101);
        }
        Op::Flush | Op::Cancel => {
            if matches!(op, Op::Flush) {
                flush_all_to_disk();
            } else {
                cancel_memory_flush();
            }
            let want = if w.m.init {
                SPOOL_OK
            } else {
                SPOOL_ERR_NOT_INITIALIZED
            };
            assert_eq!(last(), want);
            assert_eq!(get_flush_progress(), 101, "RAM only: always 101");
            if matches!(op, Op::Flush) && w.m.init {
                // The requested flush's step (nothing to move in RAM-only) refreshes every
                // entry (firmware edits of no_pending first).
                w.refresh_all();
            }
            let empty = w.m.sensors.values().all(|s| s.values.is_empty());
            if !w.overflowed {
                assert_eq!(is_all_ram_empty(), empty || !w.m.init);
            }
        }
        Op::PoolAlloc(size, null) => {
            let size = match size % 8 {
                0 => 0,
                1 => 256,
                2 => 257,
                3 => 4096,
                4 => 4097,
                5 => usize::MAX,
                _ => usize::from(size) % 4200,
            };
            let before = pool_stats();
            let mut p: *mut c_void = 1 as *mut c_void;
            let out = if null { std::ptr::null_mut() } else { &mut p };
            // SAFETY: NULL or writable.
            let r = unsafe { spool_pool_alloc(size, out) };
            if null {
                assert_eq!(r, SPOOL_ERR_NULL);
            } else if size == 0 {
                assert_eq!(r, SPOOL_ERR_INVALID_ARGUMENT);
            } else if size > 4096 {
                assert_eq!(r, SPOOL_ERR_TOO_LARGE);
            } else {
                let pref = before
                    .iter()
                    .position(|t| t.block_size as usize >= size)
                    .unwrap();
                let room = before[pref..].iter().any(|t| t.in_use < t.capacity);
                if room {
                    assert_eq!(r, SPOOL_OK, "pool alloc({size})");
                } else {
                    assert_eq!(r, SPOOL_ERR_EXHAUSTED, "pool alloc({size})");
                }
            }
            if r == SPOOL_OK {
                let p = p.cast::<u8>();
                assert!(!p.is_null() && p.addr() % 8 == 0);
                assert!(w.pool.iter().all(|b| b.0 != p), "block handed out twice");
                let tag = (w.pool.len() as u8).wrapping_mul(37).wrapping_add(1);
                // SAFETY: a fresh block of at least `size` bytes.
                unsafe { std::ptr::write_bytes(p, tag, size) };
                w.pool.push((p, size, tag));
                w.freed.retain(|&f| f != p);
            } else {
                assert_eq!(p, 1 as *mut c_void, "out written on error");
            }
        }
        Op::PoolFree(k, how) => {
            let live = !w.pool.is_empty();
            match how % 5 {
                0 if live => {
                    let i = usize::from(k) % w.pool.len();
                    let (p, size, tag) = w.pool.swap_remove(i);
                    // SAFETY: a live block of `size` bytes.
                    let ok = unsafe { std::slice::from_raw_parts(p, size) }
                        .iter()
                        .all(|&b| b == tag);
                    assert!(ok, "pool block overwritten");
                    // SAFETY: a live block, not used afterwards.
                    assert_eq!(unsafe { spool_pool_free(p.cast()) }, SPOOL_OK);
                    w.freed.push(p);
                }
                1 if !w.freed.is_empty() => {
                    let p = w.freed[usize::from(k) % w.freed.len()];
                    // SAFETY: already free; never dereferenced.
                    assert_eq!(unsafe { spool_pool_free(p.cast()) }, SPOOL_ERR_DOUBLE_FREE);
                }
                2 if live => {
                    let (p, _, _) = w.pool[usize::from(k) % w.pool.len()];
                    let off = 1 + usize::from(k) % 7;
                    // SAFETY: not a block start; rejected without dereferencing.
                    let r = unsafe { spool_pool_free(p.wrapping_add(off).cast()) };
                    assert_eq!(r, SPOOL_ERR_FOREIGN_PTR);
                }
                3 => {
                    let mut local = 0u64;
                    // SAFETY: foreign; never dereferenced.
                    let r = unsafe { spool_pool_free((&raw mut local).cast()) };
                    assert_eq!(r, SPOOL_ERR_FOREIGN_PTR);
                }
                _ => {
                    // SAFETY: NULL is rejected.
                    assert_eq!(
                        unsafe { spool_pool_free(std::ptr::null_mut()) },
                        SPOOL_ERR_NULL
                    );
                }
            }
        }
        Op::PoolStats(len) => {
            let mut t = [SpoolTierStats::default(); 4];
            let len = usize::from(len % 5);
            // SAFETY: room for 4 >= len entries.
            let r = unsafe { spool_pool_stats(t.as_mut_ptr(), len) };
            let want = if len < 3 {
                SPOOL_ERR_INVALID_ARGUMENT
            } else {
                SPOOL_OK
            };
            assert_eq!(r, want);
            if r == SPOOL_OK {
                let live = w.pool.len() as u32;
                assert_eq!(t.iter().take(3).map(|t| t.in_use).sum::<u32>(), live);
            }
        }
    }
}

/// Checks the mirrors, the stats and the invariants against the model.
fn check(w: &mut World, i: usize, op: &Op) {
    assert_eq!(spool_pool_check(), SPOOL_OK);
    if !w.m.init {
        assert_eq!(spool_check(), SPOOL_ERR_NOT_INITIALIZED);
        assert_eq!(stats().err(), Some(SPOOL_ERR_NOT_INITIALIZED));
        return;
    }
    assert_eq!(spool_check(), SPOOL_OK, "spool_check after op {i} {op:?}");
    let s = stats().unwrap().store;
    assert_eq!(s.written, s.acked + s.stored + s.dropped);
    if s.refused > 0 || s.dropped > w.cleared() {
        w.overflowed = true;
    }
    if w.overflowed {
        return;
    }
    let stored: usize = w.m.sensors.values().map(|s| s.values.len()).sum();
    let pending: usize = w.m.sensors.values().map(|s| s.pending).sum();
    assert_eq!(s.stored, stored as u64, "stored after op {i} {op:?}");
    assert_eq!(s.pending, pending as u64, "pending after op {i} {op:?}");
    assert_eq!(s.sensors as usize, w.m.sensors.len(), "sensors");
    for (&(src, id), m) in &w.m.sensors {
        let mut st = SpoolSensorStats::default();
        let h = (u64::from(src) << 32) | u64::from(id);
        // SAFETY: writable.
        assert_eq!(unsafe { spool_sensor_stats(h, &mut st) }, SPOOL_OK);
        assert_eq!(
            (
                st.stored as usize,
                st.pending as usize,
                st.available as usize
            ),
            (m.values.len(), m.pending, m.values.len() - m.pending),
            "sensor ({src}, {id}) after op {i} {op:?}"
        );
        assert_eq!(
            st.kind,
            if m.rate == 0 {
                SPOOL_KIND_EVT
            } else {
                SPOOL_KIND_TSD
            }
        );
    }
    for (&(a, e), &want) in &w.m.mirror {
        let c = w.arrays[a].csd_at(e);
        assert_eq!(
            (c.no_samples, c.no_pending),
            want,
            "mirror of array {a} entry {e} after op {i} {op:?}"
        );
    }
}

impl World {
    /// Records discarded by `reset_csd_entry` are counted in `dropped` too; the model
    /// does not count them, so overflow is detected by `refused` and by comparing the
    /// store's `stored` only while `dropped` is explained by resets. Track them here.
    fn cleared(&self) -> u64 {
        CLEARED.load(Ordering::Relaxed)
    }
}

static CLEARED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fuzz_target!(|input: Input| {
    assert_eq!(spool_deinit(), SPOOL_OK);
    CLEARED.store(0, Ordering::Relaxed);
    UTC.store(0, Ordering::Relaxed);
    let arrays: Vec<Arrays> = input
        .arrays
        .iter()
        .map(|v| {
            let v: Vec<(u8, u8)> = if v.is_empty() {
                vec![(0, 1)]
            } else {
                v.iter().take(6).copied().collect()
            };
            Arrays::new(&v)
        })
        .collect();
    let mut w = World {
        arrays,
        stranger: Arrays::new(&[(0, 1), (1, 0)]),
        m: Model::default(),
        pool: Vec::new(),
        freed: Vec::new(),
        overflowed: false,
    };
    if std::env::var_os("C_API_TRACE").is_some() {
        eprintln!("arrays: {:?}", input.arrays);
    }
    for (i, op) in input.ops.iter().take(400).enumerate() {
        // Records a reset discards are "dropped" in the store's stats.
        if let Op::Reset(arr, e, false) = *op {
            let a = usize::from(arr) % ARRAYS;
            if w.m.init
                && let Some((_, n)) = w.m.reg_of(a)
                && e < n
            {
                let k = w.key_of(a, usize::from(e));
                if let Some(s) = w.m.sensors.get(&k) {
                    CLEARED.fetch_add(s.values.len() as u64, Ordering::Relaxed);
                }
            }
        }
        if std::env::var_os("C_API_TRACE").is_some() {
            eprintln!("op {i}: {op:?}");
        }
        step(&mut w, *op);
        check(&mut w, i, op);
        if w.overflowed {
            break;
        }
    }
    // Everything back to the global pool; the store forgets the arrays before they go.
    for (p, _, _) in w.pool.drain(..) {
        // SAFETY: live blocks, freed once.
        assert_eq!(unsafe { spool_pool_free(p.cast()) }, SPOOL_OK);
    }
    assert!(pool_stats().iter().all(|t| t.in_use == 0));
    assert_eq!(spool_deinit(), SPOOL_OK);
});
