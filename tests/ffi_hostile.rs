//! Hostile callers: every exported C function with NULL pointers, an index past the
//! registered count, unregistered arrays, calls before init, double init, `no_items` past
//! the registration, counts at the u16 / u32 limits. Each call must return its error
//! status (or, for the `void` legacy functions, leave it in `spool_last_status()`), be
//! counted in the boundary stats, and leave the store and the firmware arrays untouched.
#![cfg(feature = "ffi")]
// SAFETY (whole file): every unsafe block calls an exported C function with pointers that
// are NULL, point at live test arrays / buffers of the documented size, or are deliberately
// foreign; the library must reject the latter before dereferencing them, which is the point
// of these tests. Per-block comments would repeat this for each of ~100 table rows.
#![allow(clippy::undocumented_unsafe_blocks)]

mod ffi_support;

use SpoolStatus::*;
use ffi_support::*;
use sensor_spool::ffi::*;
use std::ptr::{null, null_mut};

/// The world every case starts from: arrays `a` registered (TSD, EVT, TSD), arrays `b`
/// of the same shape not registered, some data written and partly read, a native handle.
struct World {
    a: Arrays,
    b: Arrays,
    h: SpoolSensor,
    rec: SpoolRecord,
    word: [u32; 2],
    pool_ptr: *mut core::ffi::c_void,
}

const A_SOURCE: u8 = 1;
const A_SOURCE32: u32 = A_SOURCE as u32;

fn world() -> World {
    init(SPOOL_CFG_EVT_READ_TWO_WORDS);
    let a = Arrays::new(100, &[1000, 0, 500]);
    let b = Arrays::new(200, &[1000, 0, 500]);
    assert_eq!(a.register(A_SOURCE), SPOOL_OK);
    let (csb, csd) = (a.csb(), a.csd());
    let mut v = [0u32; 2];
    // SAFETY: registered arrays, valid out-buffer of two words.
    unsafe {
        for i in 0..4 {
            write_tsd_evt_time(csb, csd, 0, 10 + i, 1_700_000_000 + i);
        }
        for i in 0..3 {
            write_tsd_evt_time(csb, csd, 1, 20 + i, 1_700_000_100 + i);
        }
        read_tsd_evt(csb, csd, 0, v.as_mut_ptr());
        read_tsd_evt(csb, csd, 0, v.as_mut_ptr());
        read_tsd_evt(csb, csd, 1, v.as_mut_ptr());
    }
    assert_eq!(spool_last_status(), SPOOL_OK);
    assert_eq!(a.counts(0), (4, 2));
    assert_eq!(a.counts(1), (3, 1));
    let mut h = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_sensor_open(9, 1, 0, &mut h) }, SPOOL_OK);
    assert_eq!(spool_write(h, 5, 1), SPOOL_OK);
    World {
        a,
        b,
        h,
        rec: SpoolRecord::default(),
        word: [0xDEAD_BEEF; 2],
        pool_ptr: null_mut(),
    }
}

/// Everything a rejected call must leave unchanged.
#[derive(Debug, PartialEq)]
struct Snapshot {
    store: SpoolStoreStats,
    sensors: Vec<SpoolSensorStats>,
    a_csd: Vec<Csd>,
    b_csd: Vec<Csd>,
    rec: SpoolRecord,
    word: [u32; 2],
}

fn snapshot(w: &World) -> Snapshot {
    let mut sensors = Vec::new();
    // The sensors of `world()`: arrays `a` (source 1, ids 100..=102) and the native one.
    let handles = [1u64 << 32 | 100, 1 << 32 | 101, 1 << 32 | 102, 9 << 32 | 1];
    for h in handles {
        let mut s = SpoolSensorStats::default();
        // SAFETY: valid out-pointer.
        if unsafe { spool_sensor_stats(h, &mut s) } == SPOOL_OK {
            sensors.push(s);
        }
    }
    Snapshot {
        store: stats().store,
        sensors,
        a_csd: w.a.csd_vec(),
        b_csd: w.b.csd_vec(),
        rec: w.rec,
        word: w.word,
    }
}

/// The boundary counter an error status is counted in.
fn counter(f: &SpoolFfiStats, s: SpoolStatus) -> u64 {
    match s {
        SPOOL_ERR_NULL => f.rejected_null,
        SPOOL_ERR_NOT_INITIALIZED => f.rejected_not_initialized,
        SPOOL_ERR_NOT_REGISTERED => f.rejected_not_registered,
        SPOOL_ERR_INDEX => f.rejected_index,
        SPOOL_ERR_INVALID_ARGUMENT
        | SPOOL_ERR_BAD_LAYOUT
        | SPOOL_ERR_OVERLAP
        | SPOOL_ERR_REGISTRY_FULL
        | SPOOL_ERR_ALREADY_INITIALIZED
        | SPOOL_ERR_BAD_GEOMETRY
        | SPOOL_ERR_BUSY => f.rejected_other,
        _ => f.store_errors,
    }
}

type Call = fn(&mut World) -> SpoolStatus;

/// Runs a `void` legacy call and returns the status it left behind.
fn void(f: impl FnOnce()) -> SpoolStatus {
    f();
    spool_last_status()
}

/// `&csb[e]` of an array pair (MM2 per-sensor pointer; `e` may be past the end).
fn el_csb(a: &Arrays, e: usize) -> *mut ControlSensorBlock {
    a.csb().cast::<Csb>().wrapping_add(e).cast()
}

/// `&csd[e]` of an array pair.
fn el_csd(a: &Arrays, e: usize) -> *mut ControlSensorData {
    a.csd().cast::<Csd>().wrapping_add(e).cast()
}

fn bad_layout(edit: fn(&mut SpoolLayout)) -> SpoolLayout {
    let mut l = layout();
    edit(&mut l);
    l
}

/// (name, call, expected status). Every exported function appears with every hostile
/// input that applies to its parameters.
fn cases() -> Vec<(&'static str, Call, SpoolStatus)> {
    // SAFETY (all closures): pointers are NULL, or point at live test arrays / buffers;
    // the library must reject the call before dereferencing anything it cannot validate.
    vec![
        // ---- write_tsd_evt
        (
            "write_tsd_evt csb NULL",
            |w| void(|| unsafe { write_tsd_evt(null_mut(), w.a.csd(), 0, 1, false) }),
            SPOOL_ERR_NULL,
        ),
        (
            "write_tsd_evt csd NULL",
            |w| void(|| unsafe { write_tsd_evt(w.a.csb(), null_mut(), 0, 1, false) }),
            SPOOL_ERR_NULL,
        ),
        (
            "write_tsd_evt unregistered",
            |w| void(|| unsafe { write_tsd_evt(w.b.csb(), w.b.csd(), 0, 1, false) }),
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "write_tsd_evt mixed pair",
            |w| void(|| unsafe { write_tsd_evt(w.a.csb(), w.b.csd(), 0, 1, false) }),
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "write_tsd_evt interior csb",
            |w| {
                void(|| unsafe {
                    write_tsd_evt(
                        w.a.csb().cast::<Csb>().add(1).cast(),
                        w.a.csd().cast::<Csd>().add(1).cast(),
                        0,
                        1,
                        false,
                    )
                })
            },
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "write_tsd_evt entry == count",
            |w| void(|| unsafe { write_tsd_evt(w.a.csb(), w.a.csd(), 3, 1, true) }),
            SPOOL_ERR_INDEX,
        ),
        (
            "write_tsd_evt entry u16::MAX",
            |w| void(|| unsafe { write_tsd_evt(w.a.csb(), w.a.csd(), u16::MAX, u32::MAX, false) }),
            SPOOL_ERR_INDEX,
        ),
        // ---- write_tsd_evt_time
        (
            "write_tsd_evt_time csb NULL",
            |w| void(|| unsafe { write_tsd_evt_time(null_mut(), w.a.csd(), 0, 1, 1) }),
            SPOOL_ERR_NULL,
        ),
        (
            "write_tsd_evt_time csd NULL",
            |w| void(|| unsafe { write_tsd_evt_time(w.a.csb(), null_mut(), 0, 1, 1) }),
            SPOOL_ERR_NULL,
        ),
        (
            "write_tsd_evt_time unregistered",
            |w| void(|| unsafe { write_tsd_evt_time(w.b.csb(), w.b.csd(), 0, 1, 1) }),
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "write_tsd_evt_time entry == count",
            |w| void(|| unsafe { write_tsd_evt_time(w.a.csb(), w.a.csd(), 3, 1, u32::MAX) }),
            SPOOL_ERR_INDEX,
        ),
        (
            "write_tsd_evt_time entry u16::MAX",
            |w| void(|| unsafe { write_tsd_evt_time(w.a.csb(), w.a.csd(), u16::MAX, 1, 1) }),
            SPOOL_ERR_INDEX,
        ),
        // ---- read_tsd_evt
        (
            "read_tsd_evt csb NULL",
            |w| void(|| unsafe { read_tsd_evt(null_mut(), w.a.csd(), 0, w.word.as_mut_ptr()) }),
            SPOOL_ERR_NULL,
        ),
        (
            "read_tsd_evt csd NULL",
            |w| void(|| unsafe { read_tsd_evt(w.a.csb(), null_mut(), 0, w.word.as_mut_ptr()) }),
            SPOOL_ERR_NULL,
        ),
        (
            "read_tsd_evt value NULL",
            |w| void(|| unsafe { read_tsd_evt(w.a.csb(), w.a.csd(), 0, null_mut()) }),
            SPOOL_ERR_NULL,
        ),
        (
            "read_tsd_evt unregistered",
            |w| void(|| unsafe { read_tsd_evt(w.b.csb(), w.b.csd(), 0, w.word.as_mut_ptr()) }),
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "read_tsd_evt entry == count",
            |w| void(|| unsafe { read_tsd_evt(w.a.csb(), w.a.csd(), 3, w.word.as_mut_ptr()) }),
            SPOOL_ERR_INDEX,
        ),
        (
            "read_tsd_evt entry u16::MAX",
            |w| {
                void(|| unsafe {
                    read_tsd_evt(w.a.csb(), w.a.csd(), u16::MAX, w.word.as_mut_ptr())
                })
            },
            SPOOL_ERR_INDEX,
        ),
        // ---- erase_tsd_evt
        (
            "erase_tsd_evt csb NULL",
            |w| void(|| unsafe { erase_tsd_evt(null_mut(), w.a.csd(), 0) }),
            SPOOL_ERR_NULL,
        ),
        (
            "erase_tsd_evt csd NULL",
            |w| void(|| unsafe { erase_tsd_evt(w.a.csb(), null_mut(), 0) }),
            SPOOL_ERR_NULL,
        ),
        (
            "erase_tsd_evt unregistered",
            |w| void(|| unsafe { erase_tsd_evt(w.b.csb(), w.b.csd(), 0) }),
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "erase_tsd_evt entry == count",
            |w| void(|| unsafe { erase_tsd_evt(w.a.csb(), w.a.csd(), 3) }),
            SPOOL_ERR_INDEX,
        ),
        (
            "erase_tsd_evt entry u16::MAX",
            |w| void(|| unsafe { erase_tsd_evt(w.a.csb(), w.a.csd(), u16::MAX) }),
            SPOOL_ERR_INDEX,
        ),
        // ---- revert_tsd_evt_pending_data
        (
            "revert_pending csb NULL",
            |w| void(|| unsafe { revert_tsd_evt_pending_data(null_mut(), w.a.csd(), 3) }),
            SPOOL_ERR_NULL,
        ),
        (
            "revert_pending csd NULL",
            |w| void(|| unsafe { revert_tsd_evt_pending_data(w.a.csb(), null_mut(), 3) }),
            SPOOL_ERR_NULL,
        ),
        (
            "revert_pending unregistered",
            |w| void(|| unsafe { revert_tsd_evt_pending_data(w.b.csb(), w.b.csd(), 3) }),
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "revert_pending no_items == count + 1",
            |w| void(|| unsafe { revert_tsd_evt_pending_data(w.a.csb(), w.a.csd(), 4) }),
            SPOOL_ERR_INDEX,
        ),
        (
            "revert_pending no_items u16::MAX",
            |w| void(|| unsafe { revert_tsd_evt_pending_data(w.a.csb(), w.a.csd(), u16::MAX) }),
            SPOOL_ERR_INDEX,
        ),
        // ---- erase_tsd_evt_pending_data
        (
            "erase_pending csb NULL",
            |w| void(|| unsafe { erase_tsd_evt_pending_data(null_mut(), w.a.csd(), 3) }),
            SPOOL_ERR_NULL,
        ),
        (
            "erase_pending csd NULL",
            |w| void(|| unsafe { erase_tsd_evt_pending_data(w.a.csb(), null_mut(), 3) }),
            SPOOL_ERR_NULL,
        ),
        (
            "erase_pending unregistered",
            |w| void(|| unsafe { erase_tsd_evt_pending_data(w.b.csb(), w.b.csd(), 3) }),
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "erase_pending no_items == count + 1",
            |w| void(|| unsafe { erase_tsd_evt_pending_data(w.a.csb(), w.a.csd(), 4) }),
            SPOOL_ERR_INDEX,
        ),
        (
            "erase_pending no_items u16::MAX",
            |w| void(|| unsafe { erase_tsd_evt_pending_data(w.a.csb(), w.a.csd(), u16::MAX) }),
            SPOOL_ERR_INDEX,
        ),
        // ---- atomic_erase_records
        (
            "atomic_erase csb NULL",
            |w| unsafe { atomic_erase_records(null_mut(), w.a.csd(), 0, 1) },
            SPOOL_ERR_NULL,
        ),
        (
            "atomic_erase csd NULL",
            |w| unsafe { atomic_erase_records(w.a.csb(), null_mut(), 0, 1) },
            SPOOL_ERR_NULL,
        ),
        (
            "atomic_erase unregistered",
            |w| unsafe { atomic_erase_records(w.b.csb(), w.b.csd(), 0, 1) },
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "atomic_erase entry == count",
            |w| unsafe { atomic_erase_records(w.a.csb(), w.a.csd(), 3, 1) },
            SPOOL_ERR_INDEX,
        ),
        (
            "atomic_erase entry u16::MAX",
            |w| unsafe { atomic_erase_records(w.a.csb(), w.a.csd(), u16::MAX, 1) },
            SPOOL_ERR_INDEX,
        ),
        (
            "atomic_erase pending + 1",
            |w| unsafe { atomic_erase_records(w.a.csb(), w.a.csd(), 0, 3) },
            SPOOL_ERR_ACK_TOO_MANY,
        ),
        (
            "atomic_erase count u16::MAX",
            |w| unsafe { atomic_erase_records(w.a.csb(), w.a.csd(), 0, u16::MAX) },
            SPOOL_ERR_ACK_TOO_MANY,
        ),
        (
            "atomic_erase nothing pending",
            |w| unsafe { atomic_erase_records(w.a.csb(), w.a.csd(), 2, 1) },
            SPOOL_ERR_ACK_TOO_MANY,
        ),
        // ---- imx_init_data_store_entry
        (
            "init_ds NULL",
            |_| void(|| unsafe { imx_init_data_store_entry(null_mut()) }),
            SPOOL_ERR_NULL,
        ),
        (
            "init_ds foreign pointer",
            |w| void(|| unsafe { imx_init_data_store_entry(w.word.as_mut_ptr().cast()) }),
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "init_ds unregistered csd",
            |w| void(|| unsafe { imx_init_data_store_entry(w.b.ds_ptr(0)) }),
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "init_ds misaligned into csd",
            |w| void(|| unsafe { imx_init_data_store_entry(w.a.errors_ptr(1)) }),
            SPOOL_ERR_NOT_REGISTERED,
        ),
        // ---- reset_csd_entry
        (
            "reset_csd NULL",
            |_| void(|| unsafe { reset_csd_entry(null_mut(), 0) }),
            SPOOL_ERR_NULL,
        ),
        (
            "reset_csd unregistered",
            |w| void(|| unsafe { reset_csd_entry(w.b.csd(), 0) }),
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "reset_csd entry == count",
            |w| void(|| unsafe { reset_csd_entry(w.a.csd(), 3) }),
            SPOOL_ERR_INDEX,
        ),
        (
            "reset_csd entry u16::MAX",
            |w| void(|| unsafe { reset_csd_entry(w.a.csd(), u16::MAX) }),
            SPOOL_ERR_INDEX,
        ),
        // ---- spool_init (already initialized in the world)
        (
            "spool_init NULL",
            |_| unsafe { spool_init(null()) },
            SPOOL_ERR_NULL,
        ),
        (
            "spool_init twice",
            |_| {
                let cfg = SpoolConfig {
                    abi_version: SPOOL_ABI_VERSION,
                    flags: 0,
                    utc_now: None,
                    ..SpoolConfig::default_config()
                };
                unsafe { spool_init(&cfg) }
            },
            SPOOL_ERR_ALREADY_INITIALIZED,
        ),
        // ---- spool_register_sensors
        (
            "register csb NULL",
            |w| unsafe { spool_register_sensors(null(), w.b.csd(), 3, &layout(), 2) },
            SPOOL_ERR_NULL,
        ),
        (
            "register csd NULL",
            |w| unsafe { spool_register_sensors(w.b.csb(), null_mut(), 3, &layout(), 2) },
            SPOOL_ERR_NULL,
        ),
        (
            "register layout NULL",
            |w| unsafe { spool_register_sensors(w.b.csb(), w.b.csd(), 3, null(), 2) },
            SPOOL_ERR_NULL,
        ),
        (
            "register count 0",
            |w| unsafe { spool_register_sensors(w.b.csb(), w.b.csd(), 0, &layout(), 2) },
            SPOOL_ERR_INVALID_ARGUMENT,
        ),
        (
            "register again (overlap)",
            |w| unsafe { spool_register_sensors(w.a.csb(), w.a.csd(), 3, &layout(), 2) },
            SPOOL_ERR_OVERLAP,
        ),
        (
            "register csb == csd",
            |w| unsafe { spool_register_sensors(w.b.csb(), w.b.csb().cast(), 3, &layout(), 2) },
            SPOOL_ERR_OVERLAP,
        ),
        (
            "register overlapping a",
            |w| unsafe {
                spool_register_sensors(
                    w.b.csb(),
                    w.a.csd().cast::<Csd>().add(2).cast(),
                    1,
                    &layout(),
                    2,
                )
            },
            SPOOL_ERR_OVERLAP,
        ),
        (
            "register csb_size 0",
            |w| unsafe {
                spool_register_sensors(w.b.csb(), w.b.csd(), 3, &bad_layout(|l| l.csb_size = 0), 2)
            },
            SPOOL_ERR_BAD_LAYOUT,
        ),
        (
            "register id outside csb",
            |w| unsafe {
                spool_register_sensors(
                    w.b.csb(),
                    w.b.csd(),
                    3,
                    &bad_layout(|l| l.csb_id_offset = l.csb_size - 3),
                    2,
                )
            },
            SPOOL_ERR_BAD_LAYOUT,
        ),
        (
            "register rate offset u32::MAX",
            |w| unsafe {
                spool_register_sensors(
                    w.b.csb(),
                    w.b.csd(),
                    3,
                    &bad_layout(|l| l.csb_sample_rate_offset = u32::MAX),
                    2,
                )
            },
            SPOOL_ERR_BAD_LAYOUT,
        ),
        (
            "register no_samples outside csd",
            |w| unsafe {
                spool_register_sensors(
                    w.b.csb(),
                    w.b.csd(),
                    3,
                    &bad_layout(|l| l.csd_no_samples_offset = l.csd_size - 1),
                    2,
                )
            },
            SPOOL_ERR_BAD_LAYOUT,
        ),
        (
            "register no_pending overlaps no_samples",
            |w| unsafe {
                spool_register_sensors(
                    w.b.csb(),
                    w.b.csd(),
                    3,
                    &bad_layout(|l| l.csd_no_pending_offset = l.csd_no_samples_offset + 1),
                    2,
                )
            },
            SPOOL_ERR_BAD_LAYOUT,
        ),
        (
            "register last_value overlaps no_pending",
            |w| unsafe {
                spool_register_sensors(
                    w.b.csb(),
                    w.b.csd(),
                    3,
                    &bad_layout(|l| l.csd_last_value_offset = l.csd_no_pending_offset),
                    2,
                )
            },
            SPOOL_ERR_BAD_LAYOUT,
        ),
        (
            "register time size 3",
            |w| unsafe {
                spool_register_sensors(
                    w.b.csb(),
                    w.b.csd(),
                    3,
                    &bad_layout(|l| l.csd_last_sample_time_size = 3),
                    2,
                )
            },
            SPOOL_ERR_BAD_LAYOUT,
        ),
        (
            "register ds size 0",
            |w| unsafe {
                spool_register_sensors(
                    w.b.csb(),
                    w.b.csd(),
                    3,
                    &bad_layout(|l| l.csd_ds_size = 0),
                    2,
                )
            },
            SPOOL_ERR_BAD_LAYOUT,
        ),
        (
            "register ds past csd",
            |w| unsafe {
                spool_register_sensors(
                    w.b.csb(),
                    w.b.csd(),
                    3,
                    &bad_layout(|l| l.csd_ds_size = u32::MAX),
                    2,
                )
            },
            SPOOL_ERR_BAD_LAYOUT,
        ),
        (
            "register array past address space",
            |_| unsafe {
                let top = usize::MAX - 64;
                spool_register_sensors(
                    std::ptr::without_provenance(top),
                    std::ptr::without_provenance_mut(top - 0x100000),
                    u16::MAX,
                    &layout(),
                    2,
                )
            },
            SPOOL_ERR_BAD_LAYOUT,
        ),
        (
            "register struct sizes u32::MAX",
            |w| unsafe {
                spool_register_sensors(
                    w.b.csb(),
                    w.b.csd(),
                    u16::MAX,
                    &bad_layout(|l| {
                        l.csb_size = u32::MAX;
                        l.csd_size = u32::MAX
                    }),
                    2,
                )
            },
            // 65535 elements of 4 GiB: on a 32-bit target the array does not fit in the
            // address space (a bad layout); on a 64-bit one it does, and then overlaps the
            // arrays registered before it.
            if cfg!(target_pointer_width = "64") {
                SPOOL_ERR_OVERLAP
            } else {
                SPOOL_ERR_BAD_LAYOUT
            },
        ),
        // ---- spool_set_gps
        (
            "set_gps NULL",
            |_| unsafe { spool_set_gps(null()) },
            SPOOL_ERR_NULL,
        ),
        (
            "set_gps no latitude id",
            |_| {
                unsafe extern "C" fn pos(_: *mut core::ffi::c_void, _: *mut SpoolPosition) -> bool {
                    true
                }
                let g = SpoolGpsConfig {
                    latitude_id: SPOOL_ID_NONE,
                    longitude_id: 1,
                    altitude_id: 2,
                    speed_id: SPOOL_ID_NONE,
                    get_position: Some(pos),
                    ctx: null_mut(),
                };
                unsafe { spool_set_gps(&g) }
            },
            SPOOL_ERR_INVALID_ARGUMENT,
        ),
        // ---- spool_sensor_open
        (
            "sensor_open out NULL",
            |_| unsafe { spool_sensor_open(1, 100, 1000, null_mut()) },
            SPOOL_ERR_NULL,
        ),
        (
            "sensor_open TSD as EVT",
            |_| unsafe {
                let mut h = 0xABCD;
                let r = spool_sensor_open(A_SOURCE, 100, 0, &mut h);
                if h != 0xABCD { SPOOL_ERR_INTERNAL } else { r }
            },
            SPOOL_ERR_CONFLICT,
        ),
        (
            "sensor_open other TSD rate",
            |_| unsafe {
                let mut h = 0xABCD;
                let r = spool_sensor_open(A_SOURCE, 100, 999, &mut h);
                if h != 0xABCD { SPOOL_ERR_INTERNAL } else { r }
            },
            SPOOL_ERR_CONFLICT,
        ),
        // ---- spool_write / read / ack / revert / sensor_stats with bad handles and limits
        (
            "spool_write handle 0",
            |_| spool_write(0, 1, 1),
            SPOOL_ERR_UNKNOWN_SENSOR,
        ),
        (
            "spool_write handle u64::MAX",
            |_| spool_write(u64::MAX, 1, u64::MAX),
            SPOOL_ERR_UNKNOWN_SENSOR,
        ),
        (
            "spool_read out NULL",
            |w| unsafe { spool_read(w.h, null_mut()) },
            SPOOL_ERR_NULL,
        ),
        (
            "spool_read handle source past u8",
            |w| unsafe { spool_read(1 << 40, &mut w.rec) },
            SPOOL_ERR_UNKNOWN_SENSOR,
        ),
        (
            "spool_ack count u32::MAX",
            |w| spool_ack(w.h, u32::MAX),
            SPOOL_ERR_ACK_TOO_MANY,
        ),
        (
            "spool_ack pending + 1",
            |w| spool_ack(w.h, 1),
            SPOOL_ERR_ACK_TOO_MANY,
        ),
        (
            "spool_ack handle 0",
            |_| spool_ack(0, 0),
            SPOOL_ERR_UNKNOWN_SENSOR,
        ),
        (
            "spool_revert handle u32::MAX",
            |_| spool_revert(u32::MAX as u64),
            SPOOL_ERR_UNKNOWN_SENSOR,
        ),
        (
            "spool_sensor_stats out NULL",
            |w| unsafe { spool_sensor_stats(w.h, null_mut()) },
            SPOOL_ERR_NULL,
        ),
        (
            "spool_sensor_stats handle 0",
            |_| unsafe {
                let mut s = SpoolSensorStats::default();
                spool_sensor_stats(0, &mut s)
            },
            SPOOL_ERR_UNKNOWN_SENSOR,
        ),
        (
            "spool_stats out NULL",
            |_| unsafe { spool_stats(null_mut()) },
            SPOOL_ERR_NULL,
        ),
        (
            "spool_config_default out NULL",
            |_| unsafe { spool_config_default(null_mut()) },
            SPOOL_ERR_NULL,
        ),
        // ---- diagnostics
        (
            "spool_version_numbers major NULL",
            |w| unsafe { spool_version_numbers(null_mut(), &mut w.word[0], &mut w.word[1]) },
            SPOOL_ERR_NULL,
        ),
        (
            "spool_version_numbers minor NULL",
            |w| unsafe { spool_version_numbers(&mut w.word[0], null_mut(), &mut w.word[1]) },
            SPOOL_ERR_NULL,
        ),
        (
            "spool_version_numbers patch NULL",
            |w| unsafe { spool_version_numbers(&mut w.word[0], &mut w.word[1], null_mut()) },
            SPOOL_ERR_NULL,
        ),
        (
            "spool_dump write NULL",
            |w| unsafe { spool_dump(None, w.word.as_mut_ptr().cast()) },
            SPOOL_ERR_NULL,
        ),
        // ---- MM2 façade (per-sensor pointers &csb[e], &csd[e] + upload source)
        (
            "imx_write_tsd csb NULL",
            |w| unsafe {
                imx(imx_write_tsd(
                    A_SOURCE32,
                    null_mut(),
                    el_csd(&w.a, 0),
                    Data32::from_bits(1),
                ))
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_write_tsd csd NULL",
            |w| unsafe {
                imx(imx_write_tsd(
                    A_SOURCE32,
                    el_csb(&w.a, 0),
                    null_mut(),
                    Data32::from_bits(1),
                ))
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_write_tsd unregistered",
            |w| unsafe {
                imx(imx_write_tsd(
                    A_SOURCE32,
                    el_csb(&w.b, 0),
                    el_csd(&w.b, 0),
                    Data32::from_bits(1),
                ))
            },
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "imx_write_tsd elements of different entries",
            |w| unsafe {
                imx(imx_write_tsd(
                    A_SOURCE32,
                    el_csb(&w.a, 0),
                    el_csd(&w.a, 2),
                    Data32::from_bits(1),
                ))
            },
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "imx_write_tsd misaligned csb",
            |w| unsafe {
                imx(imx_write_tsd(
                    A_SOURCE32,
                    w.a.csb().cast::<u8>().wrapping_add(4).cast(),
                    el_csd(&w.a, 0),
                    Data32::from_bits(1),
                ))
            },
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "imx_write_tsd entry == count",
            |w| unsafe {
                imx(imx_write_tsd(
                    A_SOURCE32,
                    el_csb(&w.a, 3),
                    el_csd(&w.a, 3),
                    Data32::from_bits(1),
                ))
            },
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "imx_write_tsd wrong source",
            |w| unsafe {
                imx(imx_write_tsd(
                    u32::from(A_SOURCE) + 1,
                    el_csb(&w.a, 0),
                    el_csd(&w.a, 0),
                    Data32::from_bits(1),
                ))
            },
            SPOOL_ERR_SOURCE_MISMATCH,
        ),
        (
            "imx_write_tsd on an EVT sensor",
            |w| unsafe {
                imx(imx_write_tsd(
                    A_SOURCE32,
                    el_csb(&w.a, 1),
                    el_csd(&w.a, 1),
                    Data32::from_bits(1),
                ))
            },
            SPOOL_ERR_CONFLICT,
        ),
        (
            "imx_write_evt csb NULL",
            |w| unsafe {
                imx(imx_write_evt(
                    A_SOURCE32,
                    null_mut(),
                    el_csd(&w.a, 1),
                    Data32::from_bits(1),
                    1,
                ))
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_write_evt on a TSD sensor",
            |w| unsafe {
                imx(imx_write_evt(
                    A_SOURCE32,
                    el_csb(&w.a, 0),
                    el_csd(&w.a, 0),
                    Data32::from_bits(1),
                    u64::MAX,
                ))
            },
            SPOOL_ERR_CONFLICT,
        ),
        (
            "imx_write_evt wrong source",
            |w| unsafe {
                imx(imx_write_evt(
                    u32::MAX,
                    el_csb(&w.a, 1),
                    el_csd(&w.a, 1),
                    Data32::from_bits(1),
                    1,
                ))
            },
            SPOOL_ERR_SOURCE_MISMATCH,
        ),
        (
            "imx_get_new_sample_count csd NULL",
            |w| {
                let n =
                    unsafe { imx_get_new_sample_count(A_SOURCE32, el_csb(&w.a, 0), null_mut()) };
                if n != 0 {
                    SPOOL_ERR_INTERNAL
                } else {
                    spool_last_status()
                }
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_get_new_sample_count wrong source",
            |w| {
                let n = unsafe { imx_get_new_sample_count(0, el_csb(&w.a, 0), el_csd(&w.a, 0)) };
                if n != 0 {
                    SPOOL_ERR_INTERNAL
                } else {
                    spool_last_status()
                }
            },
            SPOOL_ERR_SOURCE_MISMATCH,
        ),
        (
            "imx_read_bulk_samples array NULL",
            |w| unsafe {
                let mut n = 0xABCD;
                let r = imx(imx_read_bulk_samples(
                    A_SOURCE32,
                    el_csb(&w.a, 0),
                    el_csd(&w.a, 0),
                    null_mut(),
                    4,
                    4,
                    &mut n,
                ));
                if n != 0xABCD { SPOOL_ERR_INTERNAL } else { r }
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_read_bulk_samples filled_count NULL",
            |w| unsafe {
                let mut a = [TsdEvtValue::default(); 4];
                imx(imx_read_bulk_samples(
                    A_SOURCE32,
                    el_csb(&w.a, 0),
                    el_csd(&w.a, 0),
                    a.as_mut_ptr(),
                    4,
                    4,
                    null_mut(),
                ))
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_read_bulk_samples wrong source",
            |w| unsafe {
                let mut a = [TsdEvtValue::default(); 4];
                let mut n = 0xABCD;
                let r = imx(imx_read_bulk_samples(
                    9,
                    el_csb(&w.a, 0),
                    el_csd(&w.a, 0),
                    a.as_mut_ptr(),
                    4,
                    4,
                    &mut n,
                ));
                if n != 0xABCD || a != [TsdEvtValue::default(); 4] {
                    SPOOL_ERR_INTERNAL
                } else {
                    r
                }
            },
            SPOOL_ERR_SOURCE_MISMATCH,
        ),
        (
            "imx_read_bulk_samples unregistered",
            |w| unsafe {
                let mut a = [TsdEvtValue::default(); 4];
                let mut n = 0xABCD;
                imx(imx_read_bulk_samples(
                    A_SOURCE32,
                    el_csb(&w.b, 0),
                    el_csd(&w.b, 0),
                    a.as_mut_ptr(),
                    4,
                    4,
                    &mut n,
                ))
            },
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "imx_has_pending_data csb NULL",
            |w| {
                let p = unsafe { imx_has_pending_data(A_SOURCE32, null_mut(), el_csd(&w.a, 0)) };
                if p {
                    SPOOL_ERR_INTERNAL
                } else {
                    spool_last_status()
                }
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_has_pending_data wrong source",
            |w| {
                let p = unsafe { imx_has_pending_data(0, el_csb(&w.a, 0), el_csd(&w.a, 0)) };
                if p {
                    SPOOL_ERR_INTERNAL
                } else {
                    spool_last_status()
                }
            },
            SPOOL_ERR_SOURCE_MISMATCH,
        ),
        (
            "imx_erase_all_pending csd NULL",
            |w| unsafe {
                imx(imx_erase_all_pending(
                    A_SOURCE32,
                    el_csb(&w.a, 0),
                    null_mut(),
                ))
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_erase_all_pending wrong source",
            |w| unsafe { imx(imx_erase_all_pending(0, el_csb(&w.a, 0), el_csd(&w.a, 0))) },
            SPOOL_ERR_SOURCE_MISMATCH,
        ),
        (
            "imx_revert_all_pending unregistered",
            |w| unsafe {
                imx(imx_revert_all_pending(
                    A_SOURCE32,
                    el_csb(&w.b, 0),
                    el_csd(&w.b, 0),
                ))
            },
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "imx_revert_all_pending wrong source",
            |w| unsafe { imx(imx_revert_all_pending(0, el_csb(&w.a, 0), el_csd(&w.a, 0))) },
            SPOOL_ERR_SOURCE_MISMATCH,
        ),
        (
            "imx_get_memory_stats out NULL",
            |_| unsafe { imx(imx_get_memory_stats(null_mut())) },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_read_next_tsd_evt data_out NULL",
            |w| unsafe {
                imx(imx_read_next_tsd_evt(
                    A_SOURCE32,
                    el_csb(&w.a, 0),
                    el_csd(&w.a, 0),
                    null_mut(),
                ))
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_read_next_tsd_evt wrong source",
            |w| unsafe {
                let mut d = TsdEvtData::default();
                imx(imx_read_next_tsd_evt(
                    0,
                    el_csb(&w.a, 0),
                    el_csd(&w.a, 0),
                    &mut d,
                ))
            },
            SPOOL_ERR_SOURCE_MISMATCH,
        ),
        (
            "imx_peek_next_tsd_evt data_out NULL",
            |w| unsafe {
                imx(imx_peek_next_tsd_evt(
                    A_SOURCE32,
                    el_csb(&w.a, 0),
                    el_csd(&w.a, 0),
                    0,
                    null_mut(),
                ))
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_get_sensor_state out NULL",
            |w| unsafe {
                imx(imx_get_sensor_state(
                    A_SOURCE32,
                    el_csb(&w.a, 0),
                    el_csd(&w.a, 0),
                    null_mut(),
                ))
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_get_sensor_state unregistered",
            |w| unsafe {
                let mut st = Mm2SensorState::default();
                imx(imx_get_sensor_state(
                    A_SOURCE32,
                    el_csb(&w.b, 0),
                    el_csd(&w.b, 0),
                    &mut st,
                ))
            },
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "imx_configure_sensor unregistered",
            |w| unsafe {
                imx(imx_configure_sensor(
                    A_SOURCE32,
                    el_csb(&w.b, 0),
                    el_csd(&w.b, 0),
                ))
            },
            SPOOL_ERR_NOT_REGISTERED,
        ),
        (
            "imx_memory_manager_shutdown wrong source",
            |w| unsafe {
                imx(imx_memory_manager_shutdown(
                    0,
                    el_csb(&w.a, 0),
                    el_csd(&w.a, 0),
                    1000,
                ))
            },
            SPOOL_ERR_SOURCE_MISMATCH,
        ),
        (
            "imx_validate_sector_chains csb NULL",
            |w| unsafe {
                imx(imx_validate_sector_chains(
                    A_SOURCE32,
                    null_mut(),
                    el_csd(&w.a, 0),
                ))
            },
            SPOOL_ERR_NULL,
        ),
        (
            "imx_init_gps_config_for_source wrong source",
            |w| unsafe {
                imx(imx_init_gps_config_for_source(
                    0,
                    w.a.csb(),
                    w.a.csd(),
                    2,
                    0,
                    1,
                    0xFFFF,
                    0xFFFF,
                ))
            },
            SPOOL_ERR_SOURCE_MISMATCH,
        ),
        (
            "imx_init_gps_config_for_source no_sensors past the registration",
            |w| unsafe {
                imx(imx_init_gps_config_for_source(
                    A_SOURCE32,
                    w.a.csb(),
                    w.a.csd(),
                    1000,
                    0,
                    1,
                    2,
                    3,
                ))
            },
            SPOOL_ERR_INDEX,
        ),
        (
            "imx_init_gps_config_for_source csd NULL",
            |w| unsafe {
                imx(imx_init_gps_config_for_source(
                    A_SOURCE32,
                    w.a.csb(),
                    null_mut(),
                    2,
                    0,
                    1,
                    2,
                    3,
                ))
            },
            SPOOL_ERR_NULL,
        ),
        // ---- C pool
        (
            "pool_alloc out NULL",
            |_| unsafe { spool_pool_alloc(16, null_mut()) },
            SPOOL_ERR_NULL,
        ),
        (
            "pool_alloc size 0",
            |w| unsafe { spool_pool_alloc(0, &mut w.pool_ptr) },
            SPOOL_ERR_INVALID_ARGUMENT,
        ),
        (
            "pool_alloc size usize::MAX",
            |w| unsafe { spool_pool_alloc(usize::MAX, &mut w.pool_ptr) },
            SPOOL_ERR_TOO_LARGE,
        ),
        (
            "pool_free NULL",
            |_| unsafe { spool_pool_free(null_mut()) },
            SPOOL_ERR_NULL,
        ),
        (
            "pool_free foreign",
            |w| unsafe { spool_pool_free(w.word.as_mut_ptr().cast()) },
            SPOOL_ERR_FOREIGN_PTR,
        ),
        (
            "pool_stats out NULL",
            |_| unsafe { spool_pool_stats(null_mut(), SPOOL_POOL_TIERS) },
            SPOOL_ERR_NULL,
        ),
        (
            "pool_stats len too small",
            |_| unsafe {
                let mut s = [SpoolTierStats::default(); 3];
                spool_pool_stats(s.as_mut_ptr(), 2)
            },
            SPOOL_ERR_INVALID_ARGUMENT,
        ),
    ]
}

/// Every case starts from a freshly built `world()`; under miri (where building the
/// LINUX-profile store dominated the run time: ~380 s for the table) the cases share one
/// world instead. That is sound because every case asserts that it changed nothing, so
/// the world each case sees is identical either way, and every hostile input still runs.
#[test]
fn every_hostile_call_is_rejected_counted_and_changes_nothing() {
    let _g = serial();
    let table = cases();
    let fresh_world_per_case = !cfg!(miri);
    assert_eq!(spool_deinit(), SPOOL_OK);
    let mut w = world();
    for (i, (name, f, expect)) in table.iter().enumerate() {
        if fresh_world_per_case && i > 0 {
            assert_eq!(spool_deinit(), SPOOL_OK);
            w = world();
        }
        let before = snapshot(&w);
        let pool_before = pool_snapshot();
        let f0 = stats().ffi;
        let got = f(&mut w);
        assert_eq!(got, *expect, "{name}: status");
        let f1 = stats().ffi;
        // The C pool is independent of the store's state: its rejections are returned,
        // not counted in the store's call counters.
        let counted = u64::from(!name.starts_with("pool_"));
        assert_eq!(
            f1.calls,
            f0.calls + counted,
            "{name}: exactly one counted call (none for the C pool)"
        );
        assert_eq!(
            counter(&f1, *expect),
            counter(&f0, *expect) + counted,
            "{name}: counted as {expect:?}"
        );
        let after = snapshot(&w);
        assert_eq!(after, before, "{name}: store / arrays / out-params touched");
        assert_eq!(pool_snapshot(), pool_before, "{name}: pool touched");
        assert_eq!(spool_check(), SPOOL_OK, "{name}: check");
        assert_eq!(spool_pool_check(), SPOOL_OK, "{name}: pool check");
    }
    eprintln!("ffi hostile table: {} cases", table.len());
}

fn pool_snapshot() -> [SpoolTierStats; SPOOL_POOL_TIERS] {
    let mut s = [SpoolTierStats::default(); SPOOL_POOL_TIERS];
    // SAFETY: room for SPOOL_POOL_TIERS entries.
    assert_eq!(
        unsafe { spool_pool_stats(s.as_mut_ptr(), s.len()) },
        SPOOL_OK
    );
    s
}

/// Every function that needs an initialized store, called before `spool_init` with
/// otherwise valid arguments: `SPOOL_ERR_NOT_INITIALIZED` (or the documented neutral value
/// of the non-status queries), counted, and nothing written into the arrays.
#[test]
fn calls_before_init_are_rejected_and_counted() {
    let _g = serial();
    let a = Arrays::new(100, &[1000, 0]);
    let untouched = a.csd_vec();
    let (csb, csd) = (a.csb(), a.csd());
    let mut v = [0xDEAD_BEEFu32; 2];
    let mut rec = SpoolRecord::default();
    let mut h: SpoolSensor = 77;
    let mut s = SpoolSensorStats::default();
    let mut st = SpoolStats::default();
    let mut ss = SpoolStorageStats::default();
    let gps = SpoolGpsConfig {
        latitude_id: 1,
        longitude_id: 2,
        altitude_id: SPOOL_ID_NONE,
        speed_id: SPOOL_ID_NONE,
        get_position: None,
        ctx: null_mut(),
    };
    let mut mm2_buf = TsdEvtValue::default();
    let mut mm2_n: u16 = 0xABCD;
    let mut mm2_st = Mm2Stats::default();
    let ni = SPOOL_ERR_NOT_INITIALIZED;
    // SAFETY: valid pointers to live test memory throughout.
    let results: Vec<(&str, SpoolStatus)> = unsafe {
        vec![
            (
                "register",
                spool_register_sensors(csb, csd, 2, &layout(), 1),
            ),
            (
                "write_tsd_evt",
                void(|| write_tsd_evt(csb, csd, 0, 1, true)),
            ),
            (
                "write_tsd_evt_time",
                void(|| write_tsd_evt_time(csb, csd, 0, 1, 1)),
            ),
            (
                "read_tsd_evt",
                void(|| read_tsd_evt(csb, csd, 0, v.as_mut_ptr())),
            ),
            ("erase_tsd_evt", void(|| erase_tsd_evt(csb, csd, 0))),
            (
                "revert_pending",
                void(|| revert_tsd_evt_pending_data(csb, csd, 2)),
            ),
            (
                "erase_pending",
                void(|| erase_tsd_evt_pending_data(csb, csd, 2)),
            ),
            ("atomic_erase", atomic_erase_records(csb, csd, 0, 0)),
            ("process_memory", void(|| process_memory(1000))),
            ("flush_all_to_disk", void(|| flush_all_to_disk())),
            ("cancel_memory_flush", void(|| cancel_memory_flush())),
            ("init_ds", void(|| imx_init_data_store_entry(a.ds_ptr(0)))),
            ("reset_csd", void(|| reset_csd_entry(csd, 0))),
            ("set_gps", spool_set_gps(&gps)),
            ("sensor_open", spool_sensor_open(1, 1, 0, &mut h)),
            ("spool_write", spool_write(1, 1, 1)),
            ("spool_read", spool_read(1, &mut rec)),
            ("spool_ack", spool_ack(1, 0)),
            ("spool_revert", spool_revert(1)),
            ("sensor_stats", spool_sensor_stats(1, &mut s)),
            ("spool_stats", spool_stats(&mut st)),
            ("spool_check", spool_check()),
            ("spool_recover", spool_recover(null_mut())),
            ("storage_stats", spool_storage_stats(&mut ss)),
            (
                "imx_write_tsd",
                imx(imx_write_tsd(1, csb, csd, Data32::from_bits(1))),
            ),
            (
                "imx_write_evt",
                imx(imx_write_evt(1, csb, csd, Data32::from_bits(1), 1)),
            ),
            (
                "imx_read_bulk_samples",
                imx(imx_read_bulk_samples(
                    1,
                    csb,
                    csd,
                    &mut mm2_buf,
                    1,
                    1,
                    &mut mm2_n,
                )),
            ),
            (
                "imx_erase_all_pending",
                imx(imx_erase_all_pending(1, csb, csd)),
            ),
            (
                "imx_revert_all_pending",
                imx(imx_revert_all_pending(1, csb, csd)),
            ),
            (
                "imx_get_memory_stats",
                imx(imx_get_memory_stats(&mut mm2_st)),
            ),
            (
                "imx_get_new_sample_count",
                if imx_get_new_sample_count(1, csb, csd) == 0 {
                    spool_last_status()
                } else {
                    SPOOL_OK
                },
            ),
            (
                "imx_has_pending_data",
                if imx_has_pending_data(1, csb, csd) {
                    SPOOL_OK
                } else {
                    spool_last_status()
                },
            ),
        ]
    };
    for (name, r) in &results {
        assert_eq!(*r, ni, "{name}");
    }
    assert_eq!(
        get_flush_progress(),
        101,
        "nothing held before init: safe to power off"
    );
    assert!(is_all_ram_empty());
    assert_eq!(
        (v, rec, h, s),
        (
            [0xDEAD_BEEF; 2],
            SpoolRecord::default(),
            77,
            SpoolSensorStats::default()
        )
    );
    assert_eq!(ss, SpoolStorageStats::default());
    assert_eq!(a.csd_vec(), untouched, "arrays untouched before init");
    assert_eq!(
        (mm2_buf, mm2_n, mm2_st),
        (TsdEvtValue::default(), 0xABCD, Mm2Stats::default()),
        "MM2 out-params untouched before init"
    );
    init(0);
    let f = stats().ffi;
    assert_eq!(f.rejected_not_initialized, results.len() as u64 + 2);
    assert_eq!(
        f.calls,
        results.len() as u64 + 4,
        "plus get_flush_progress, is_all_ram_empty, spool_config_default, spool_init"
    );
    let st = stats().store;
    assert!(st.sectors_total > 0);
    assert_eq!(
        st,
        SpoolStoreStats {
            sectors_total: st.sectors_total,
            ..SpoolStoreStats::default()
        },
        "an empty store"
    );
    assert_eq!(spool_deinit(), SPOOL_OK);
}

#[test]
fn double_init_and_bad_configs() {
    let _g = serial();
    let mut cfg = SpoolConfig {
        abi_version: SPOOL_ABI_VERSION + 1,
        flags: 0,
        utc_now: None,
        ..SpoolConfig::default_config()
    };
    // SAFETY: valid config pointers.
    unsafe {
        assert_eq!(spool_init(&cfg), SPOOL_ERR_INVALID_ARGUMENT);
        cfg.abi_version = SPOOL_ABI_VERSION;
        cfg.flags = 0x8000_0000;
        assert_eq!(spool_init(&cfg), SPOOL_ERR_INVALID_ARGUMENT);
        assert_eq!(
            spool_check(),
            SPOOL_ERR_NOT_INITIALIZED,
            "a rejected init leaves it uninitialized"
        );
        cfg.flags = 0;
        assert_eq!(spool_init(&cfg), SPOOL_OK);
        assert_eq!(spool_init(&cfg), SPOOL_ERR_ALREADY_INITIALIZED);
        assert_eq!(spool_check(), SPOOL_OK);
    }
    assert_eq!(spool_deinit(), SPOOL_OK);
    assert_eq!(spool_deinit(), SPOOL_OK, "deinit is idempotent");
}

#[test]
fn registry_full() {
    let _g = serial();
    init(0);
    let mut arrays: Vec<Arrays> = (0..17).map(|i| Arrays::new(1000 * i, &[1000])).collect();
    let mut n_ok = 0;
    for a in arrays.iter_mut() {
        match a.register(3) {
            SPOOL_OK => n_ok += 1,
            s => assert_eq!(s, SPOOL_ERR_REGISTRY_FULL),
        }
    }
    assert_eq!(n_ok, 16);
    assert_eq!(stats().ffi.rejected_other, 1);
    assert_eq!(spool_deinit(), SPOOL_OK);
}

unsafe extern "C" fn erased_read(
    _: *mut core::ffi::c_void,
    _: u32,
    buf: *mut u8,
    len: u32,
) -> core::ffi::c_int {
    // SAFETY: the library passes `len` writable bytes.
    unsafe { std::ptr::write_bytes(buf, 0xFF, len as usize) };
    0
}
unsafe extern "C" fn failing_read(
    _: *mut core::ffi::c_void,
    _: u32,
    _: *mut u8,
    _: u32,
) -> core::ffi::c_int {
    -1
}
unsafe extern "C" fn ok_program(
    _: *mut core::ffi::c_void,
    _: u32,
    _: *const u8,
    _: u32,
) -> core::ffi::c_int {
    0
}
unsafe extern "C" fn ok_erase(_: *mut core::ffi::c_void, _: u32, _: u32) -> core::ffi::c_int {
    0
}

/// A valid region whose callbacks ignore `ctx` (NULL) and read as erased.
fn null_ctx_flash() -> SpoolFlash {
    SpoolFlash {
        read: Some(erased_read),
        program: Some(ok_program),
        erase: Some(ok_erase),
        ctx: null_mut(),
        size: 4 * SPOOL_FLASH_SECTOR_SIZE,
        write_size: 4,
        erase_size: 1024,
    }
}

/// Hostile `spool_config_t` storage fields: each rejected `spool_init` returns its status,
/// is counted, and leaves the library uninitialized; the accepted ones (NULL callbacks with
/// garbage geometry = RAM only, NULL `ctx`, an ABI-1 config) initialize it.
#[test]
fn hostile_storage_configs() {
    let _g = serial();
    type Edit = fn(&mut SpoolConfig);
    let bad_geometry: Vec<(&str, Edit)> = vec![
        ("read only", |c| {
            c.flash = null_ctx_flash();
            c.flash.program = None;
            c.flash.erase = None;
        }),
        ("read + program", |c| {
            c.flash = null_ctx_flash();
            c.flash.erase = None;
        }),
        ("program + erase", |c| {
            c.flash = null_ctx_flash();
            c.flash.read = None;
        }),
        ("erase only", |c| {
            c.flash.erase = Some(ok_erase);
        }),
        ("write_size 0", |c| {
            c.flash = null_ctx_flash();
            c.flash.write_size = 0;
        }),
        ("write_size 3", |c| {
            c.flash = null_ctx_flash();
            c.flash.write_size = 3;
        }),
        ("write_size 64", |c| {
            c.flash = null_ctx_flash();
            c.flash.write_size = 64;
        }),
        ("erase_size 0", |c| {
            c.flash = null_ctx_flash();
            c.flash.erase_size = 0;
        }),
        ("erase_size 128", |c| {
            c.flash = null_ctx_flash();
            c.flash.erase_size = 128;
        }),
        ("erase_size 3000", |c| {
            c.flash = null_ctx_flash();
            c.flash.erase_size = 3000;
        }),
        ("erase_size 8192", |c| {
            c.flash = null_ctx_flash();
            c.flash.erase_size = 8192;
        }),
        ("size 0", |c| {
            c.flash = null_ctx_flash();
            c.flash.size = 0;
        }),
        ("size one sector", |c| {
            c.flash = null_ctx_flash();
            c.flash.size = SPOOL_FLASH_SECTOR_SIZE;
        }),
        ("size not a multiple of the sector", |c| {
            c.flash = null_ctx_flash();
            c.flash.size = 3 * SPOOL_FLASH_SECTOR_SIZE + 1024;
        }),
        ("size u32::MAX", |c| {
            c.flash = null_ctx_flash();
            c.flash.size = u32::MAX;
        }),
    ];
    let invalid: Vec<(&str, Edit)> = vec![
        ("flash and dir", |c| {
            c.flash = null_ctx_flash();
            c.dir = c"/tmp".as_ptr();
        }),
        ("threshold 101", |c| c.flush_threshold_pct = 101),
        ("threshold u32::MAX", |c| c.flush_threshold_pct = u32::MAX),
        ("dir empty", |c| c.dir = c"".as_ptr()),
        ("dir not UTF-8", |c| c.dir = c"/tmp/\xff\xfe".as_ptr()),
        ("abi_version 0", |c| c.abi_version = 0),
        ("abi_version 4", |c| c.abi_version = 4),
    ];
    let storage: Vec<(&str, Edit)> = vec![("read fails at mount", |c| {
        c.flash = null_ctx_flash();
        c.flash.read = Some(failing_read);
    })];
    let mut n = 0;
    for (list, expect) in [
        (&bad_geometry, SPOOL_ERR_BAD_GEOMETRY),
        (&invalid, SPOOL_ERR_INVALID_ARGUMENT),
        (&storage, SPOOL_ERR_STORAGE),
    ] {
        for (name, edit) in list {
            let mut cfg = SpoolConfig::default_config();
            edit(&mut cfg);
            // SAFETY: valid config; strings are NUL-terminated literals.
            assert_eq!(unsafe { spool_init(&cfg) }, expect, "{name}");
            assert_eq!(spool_last_status(), expect, "{name}");
            assert_eq!(
                spool_check(),
                SPOOL_ERR_NOT_INITIALIZED,
                "{name}: stays uninitialized"
            );
            n += 1;
        }
    }
    // Counted: the rejected inits plus one NOT_INITIALIZED check each.
    init(0);
    let f = stats().ffi;
    assert_eq!(
        f.rejected_other,
        (bad_geometry.len() + invalid.len()) as u64
    );
    assert_eq!(f.store_errors, storage.len() as u64);
    assert_eq!(f.rejected_not_initialized, n as u64);
    assert_eq!(spool_deinit(), SPOOL_OK);

    // Accepted.
    let accepted: Vec<(&str, Edit, u32)> = vec![
        (
            "NULL callbacks, garbage geometry: RAM only",
            |c| {
                c.flash.size = 1;
                c.flash.write_size = 3;
                c.flash.erase_size = 7;
                c.flash.ctx = std::ptr::without_provenance_mut(0x10);
            },
            SPOOL_STORAGE_NONE,
        ),
        (
            "NULL ctx",
            |c| c.flash = null_ctx_flash(),
            SPOOL_STORAGE_FLASH,
        ),
        (
            "threshold 100, smallest region",
            |c| {
                c.flash = null_ctx_flash();
                c.flash.size = 2 * SPOOL_FLASH_SECTOR_SIZE;
                c.flash.write_size = 32;
                c.flash.erase_size = SPOOL_FLASH_SECTOR_SIZE;
                c.flush_threshold_pct = 100;
            },
            SPOOL_STORAGE_FLASH,
        ),
    ];
    for (name, edit, kind) in accepted {
        let mut cfg = SpoolConfig::default_config();
        edit(&mut cfg);
        // SAFETY: valid config.
        assert_eq!(unsafe { spool_init(&cfg) }, SPOOL_OK, "{name}");
        assert_eq!(storage_stats().kind, kind, "{name}");
        // Flash that reads as erased: nothing to recover.
        let mut k = u32::MAX;
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { spool_recover(&mut k) }, SPOOL_OK, "{name}");
        assert_eq!(k, 0, "{name}");
        assert_eq!(spool_check(), SPOOL_OK, "{name}");
        assert_eq!(spool_deinit(), SPOOL_OK);
    }
    // An ABI-1 firmware passes the shorter struct: only its fields are read.
    #[repr(C)]
    struct ConfigV1 {
        abi_version: u32,
        flags: u32,
        utc_now: Option<unsafe extern "C" fn() -> u32>,
    }
    let v1 = Box::new(ConfigV1 {
        abi_version: 1,
        flags: SPOOL_CFG_EVT_READ_TWO_WORDS,
        utc_now: None,
    });
    // SAFETY: an ABI-1 config is what the contract allows for abi_version 1.
    let s = unsafe { spool_init((&*v1 as *const ConfigV1).cast()) };
    assert_eq!(s, SPOOL_OK, "ABI 1");
    assert_eq!(storage_stats().kind, SPOOL_STORAGE_NONE);
    assert_eq!(spool_deinit(), SPOOL_OK);
    // NULL out-pointers of the new functions.
    init(0);
    // SAFETY: NULL is allowed for `recovered`; `spool_storage_stats` must reject it.
    unsafe {
        assert_eq!(spool_recover(null_mut()), SPOOL_OK);
        assert_eq!(spool_storage_stats(null_mut()), SPOOL_ERR_NULL);
    }
    assert_eq!(spool_deinit(), SPOOL_OK);
    // SAFETY: as above.
    unsafe {
        assert_eq!(spool_recover(null_mut()), SPOOL_ERR_NOT_INITIALIZED);
        assert_eq!(spool_storage_stats(null_mut()), SPOOL_ERR_NULL);
    }
    eprintln!("ffi hostile storage configs: {} rejected, 4 accepted", n);
}
