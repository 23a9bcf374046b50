//! MM1 semantics of the legacy C API against a hand-computed model, plus GPS co-logging,
//! the two-word EVT read, mirror saturation and the native API.
#![cfg(feature = "ffi")]

mod ffi_support;

use SpoolStatus::*;
use ffi_support::*;
use sensor_spool::ffi::*;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicU32, Ordering};

fn read(a: &mut Arrays, e: u16) -> [u32; 2] {
    let mut v = [0xFFFF_FFFFu32; 2];
    // SAFETY: registered arrays, two-word buffer.
    unsafe { read_tsd_evt(a.csb(), a.csd(), e, v.as_mut_ptr()) };
    v
}

fn write_t(a: &mut Arrays, e: u16, v: u32, t: u32) {
    // SAFETY: registered arrays.
    unsafe { write_tsd_evt_time(a.csb(), a.csd(), e, v, t) };
    assert_eq!(spool_last_status(), SPOOL_OK);
}

#[test]
fn read_pending_erase_revert_follow_mm1() {
    let _g = serial();
    init(0);
    let mut a = Arrays::new(10, &[1000, 1000]);
    assert_eq!(a.register(0), SPOOL_OK);
    assert_eq!(
        a.counts(0),
        (0, 0),
        "registration overwrites garbage mirrors"
    );
    for v in 1..=5 {
        write_t(&mut a, 0, v, 1000 + v);
    }
    assert_eq!(a.counts(0), (5, 0));
    assert_eq!(a.csd_at(0).last_value, 5);
    assert_eq!(a.csd_at(0).last_sample_time, 1005 * 1000);
    assert_eq!(read(&mut a, 0)[0], 1);
    assert_eq!(read(&mut a, 0)[0], 2);
    assert_eq!(read(&mut a, 0)[0], 3);
    assert_eq!(a.counts(0), (5, 3));
    // NACK: lossless rewind.
    // SAFETY: registered arrays.
    unsafe { revert_tsd_evt_pending_data(a.csb(), a.csd(), 2) };
    assert_eq!(a.counts(0), (5, 0));
    assert_eq!(read(&mut a, 0)[0], 1);
    assert_eq!(read(&mut a, 0)[0], 2);
    // ACK exactly one of the two pending.
    assert_eq!(
        // SAFETY: registered arrays.
        unsafe { atomic_erase_records(a.csb(), a.csd(), 0, 1) },
        SPOOL_OK
    );
    assert_eq!(a.counts(0), (4, 1));
    // Patched uploader idiom: no_pending = n, erase_tsd_evt, erases n.
    assert_eq!(read(&mut a, 0)[0], 3);
    assert_eq!(a.counts(0), (4, 2));
    a.set_no_pending(0, 1);
    // SAFETY: registered arrays.
    unsafe { erase_tsd_evt(a.csb(), a.csd(), 0) };
    assert_eq!(
        a.counts(0),
        (3, 1),
        "erased exactly the one the firmware asked for"
    );
    // Impossible legacy state (pending >> samples) is clamped, not trusted.
    a.set_no_pending(0, 26214);
    // SAFETY: registered arrays.
    unsafe { erase_tsd_evt(a.csb(), a.csd(), 0) };
    assert_eq!(a.counts(0), (2, 0));
    assert_eq!(read(&mut a, 0)[0], 4);
    assert_eq!(read(&mut a, 0)[0], 5);
    // Read past the end: 0, no counter change.
    assert_eq!(read(&mut a, 0)[0], 0);
    assert_eq!(spool_last_status(), SPOOL_ERR_NO_DATA);
    assert_eq!(a.counts(0), (2, 2));
    // Entry 1 never written: reads 0, counts stay 0.
    assert_eq!(read(&mut a, 1)[0], 0);
    assert_eq!(a.counts(1), (0, 0));
    // Original ACK path: erase every entry's pending.
    // SAFETY: registered arrays.
    unsafe { erase_tsd_evt_pending_data(a.csb(), a.csd(), 2) };
    assert_eq!(a.counts(0), (0, 0));
    assert!(is_all_ram_empty());
    let s = stats().store;
    assert_eq!((s.written, s.acked, s.stored, s.dropped), (5, 5, 0, 0));
    assert_eq!(spool_check(), SPOOL_OK);
}

#[test]
fn evt_two_word_read_returns_timestamp_first() {
    let _g = serial();
    // ABI 3: the flag is the default and accepted.
    init(SPOOL_CFG_EVT_READ_TWO_WORDS);
    let mut a = Arrays::new(10, &[0, 1000]);
    assert_eq!(a.register(0), SPOOL_OK);
    write_t(&mut a, 0, 42, 1_700_000_000);
    write_t(&mut a, 1, 7, 1_700_000_000);
    assert_eq!(read(&mut a, 0), [1_700_000_000, 42]);
    assert_eq!(
        read(&mut a, 1),
        [7, 0xFFFF_FFFF],
        "TSD writes one word only"
    );
    assert_eq!(read(&mut a, 0), [0, 0], "EVT past the end: both words 0");
}

/// The uploader's event sample: `read_tsd_evt(csb, csd, i, (uint32_t *)&event_sample)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct EventSample {
    utc: u32,
    value: u32,
}

/// Regression (ABI 3): with the default configuration an EVT read fills `{utc, value}` as
/// MM1 did. Before, it filled only `value[0] = value`, so the uploader's
/// `(uint32_t *)&event_sample` read took the value as the time and kept a stale value.
#[test]
fn evt_read_fills_two_words_by_default_as_mm1() {
    let _g = serial();
    init(0);
    let mut a = Arrays::new(10, &[0, 1000]);
    assert_eq!(a.register(0), SPOOL_OK);
    for k in 0..20u32 {
        write_t(&mut a, 0, 100 + k, 1_700_000_000 + k);
    }
    write_t(&mut a, 1, 7, 1_700_000_000);
    // The uploader loop: one stale struct reused across reads.
    let mut event_sample = EventSample { utc: 1, value: 1 };
    let mut got = Vec::new();
    for _ in 0..20 {
        // SAFETY: registered arrays; `event_sample` is two u32 words.
        unsafe {
            read_tsd_evt(
                a.csb(),
                a.csd(),
                0,
                (&mut event_sample as *mut EventSample).cast(),
            )
        };
        got.push(event_sample);
    }
    let want: Vec<EventSample> = (0..20)
        .map(|k| EventSample {
            utc: 1_700_000_000 + k,
            value: 100 + k,
        })
        .collect();
    assert_eq!(got, want, "every EVT read fills {{utc, value}}");
    assert_eq!(a.counts(0), (20, 20));
    assert_eq!(read(&mut a, 1), [7, 0xFFFF_FFFF], "TSD: one word");
    assert_eq!(read(&mut a, 0), [0, 0], "EVT past the end: both words 0");
}

#[test]
fn evt_one_word_read_is_opt_in() {
    let _g = serial();
    init(SPOOL_CFG_EVT_READ_ONE_WORD);
    let mut a = Arrays::new(10, &[0]);
    assert_eq!(a.register(0), SPOOL_OK);
    write_t(&mut a, 0, 42, 1_700_000_000);
    assert_eq!(read(&mut a, 0), [42, 0xFFFF_FFFF]);
    let mut h = 0;
    let mut r = SpoolRecord::default();
    // SAFETY: valid out-pointers.
    unsafe {
        assert_eq!(spool_sensor_open(0, 10, 0, &mut h), SPOOL_OK);
        assert_eq!(spool_revert(h), SPOOL_OK);
        assert_eq!(spool_read(h, &mut r), SPOOL_OK);
    }
    assert_eq!(
        (r.value, r.time_ms, r.kind),
        (42, 1_700_000_000_000, SPOOL_KIND_EVT)
    );
    assert_eq!(
        a.counts(0),
        (1, 1),
        "native calls mirror into registered entries"
    );
}

/// A firmware built against ABI 2 keeps the ABI-2 behaviour (one word unless it asked
/// for two); the one-word flag does not exist there, and both flags together are refused.
#[test]
fn evt_read_width_follows_the_config_abi() {
    let init_with = |abi: u32, flags: u32| {
        let cfg = SpoolConfig {
            abi_version: abi,
            flags,
            ..SpoolConfig::default_config()
        };
        // SAFETY: valid config (version 2 and 3 share the struct).
        unsafe { spool_init(&cfg) }
    };
    for (abi, flags, want) in [
        (2, 0, Some([42, 0xFFFF_FFFF])),
        (2, SPOOL_CFG_EVT_READ_TWO_WORDS, Some([1_700_000_000, 42])),
        (2, SPOOL_CFG_EVT_READ_ONE_WORD, None),
        (3, 0, Some([1_700_000_000, 42])),
        (3, SPOOL_CFG_EVT_READ_TWO_WORDS, Some([1_700_000_000, 42])),
        (3, SPOOL_CFG_EVT_READ_ONE_WORD, Some([42, 0xFFFF_FFFF])),
        (
            3,
            SPOOL_CFG_EVT_READ_ONE_WORD | SPOOL_CFG_EVT_READ_TWO_WORDS,
            None,
        ),
        (4, 0, None),
    ] {
        let _g = serial();
        let st = init_with(abi, flags);
        let Some(want) = want else {
            assert_eq!(st, SPOOL_ERR_INVALID_ARGUMENT, "abi {abi} flags {flags}");
            continue;
        };
        assert_eq!(st, SPOOL_OK, "abi {abi} flags {flags}");
        let mut a = Arrays::new(10, &[0]);
        assert_eq!(a.register(0), SPOOL_OK);
        write_t(&mut a, 0, 42, 1_700_000_000);
        assert_eq!(read(&mut a, 0), want, "abi {abi} flags {flags}");
    }
    assert_eq!(SPOOL_ABI_VERSION, 3);
}

static POSITION_CALLS: AtomicU32 = AtomicU32::new(0);

unsafe extern "C" fn position(ctx: *mut core::ffi::c_void, out: *mut SpoolPosition) -> bool {
    POSITION_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: ctx is the live SpoolPosition the test registered; out is valid for writes.
    unsafe { *out = *(ctx as *const SpoolPosition) };
    true
}

unsafe extern "C" fn clock() -> u32 {
    1_234_567
}

#[test]
fn add_gps_location_writes_gps_entries_before_the_event() {
    let _g = serial();
    let cfg = SpoolConfig {
        abi_version: SPOOL_ABI_VERSION,
        flags: SPOOL_CFG_EVT_READ_TWO_WORDS,
        utc_now: Some(clock),
        ..SpoolConfig::default_config()
    };
    // SAFETY: valid config.
    assert_eq!(unsafe { spool_init(&cfg) }, SPOOL_OK);
    // Entries: lat, lon, alt, speed (EVT), the event (EVT), and a GPS id *after* the event.
    let mut a = Arrays::new(0, &[0, 0, 0, 0, 0, 0]);
    let ids = [501, 502, 503, 504, 900, 501];
    for (e, id) in ids.into_iter().enumerate() {
        a.set_id(e, id);
    }
    assert_eq!(a.register(0), SPOOL_OK);
    let pos: *mut SpoolPosition = Box::into_raw(Box::new(SpoolPosition {
        latitude: 45.5,
        longitude: -122.25,
        altitude: 30.0,
        speed: 88.0,
    }));
    let gps = SpoolGpsConfig {
        latitude_id: 501,
        longitude_id: 502,
        altitude_id: 503,
        speed_id: SPOOL_ID_NONE,
        get_position: Some(position),
        ctx: pos.cast(),
    };
    // SAFETY: `pos` outlives every call below; registered arrays.
    unsafe {
        assert_eq!(spool_set_gps(&gps), SPOOL_OK);
        write_tsd_evt(a.csb(), a.csd(), 4, 1, true);
    }
    assert_eq!(spool_last_status(), SPOOL_OK);
    let counts: Vec<_> = (0..6).map(|e| a.counts(e)).collect();
    assert_eq!(
        counts,
        vec![(1, 0), (1, 0), (1, 0), (0, 0), (1, 0), (1, 0)],
        "speed not configured; entry 5 is after the event (not written) but shares the \
         latitude sensor's id, so it mirrors that sensor"
    );
    assert_eq!(read(&mut a, 0), [1_234_567, 45.5f32.to_bits()]);
    assert_eq!(read(&mut a, 1), [1_234_567, (-122.25f32).to_bits()]);
    assert_eq!(read(&mut a, 2), [1_234_567, 30.0f32.to_bits()]);
    assert_eq!(read(&mut a, 4), [1_234_567, 1]);
    assert_eq!(stats().ffi.gps_records, 3);
    // With the speed sensor configured (CAN builds) speed is co-logged too.
    let with_speed = SpoolGpsConfig {
        speed_id: 504,
        ..gps
    };
    // SAFETY: valid config; `pos` outlives the calls; registered arrays.
    unsafe {
        assert_eq!(spool_set_gps(&with_speed), SPOOL_OK);
        write_tsd_evt(a.csb(), a.csd(), 4, 9, true);
    }
    assert_eq!(read(&mut a, 3), [1_234_567, 88.0f32.to_bits()]);
    assert_eq!(a.counts(0), (2, 1));
    assert_eq!(stats().ffi.gps_records, 7);
    // SAFETY: registered arrays.
    unsafe { revert_tsd_evt_pending_data(a.csb(), a.csd(), 6) };
    // No fix (latitude 0): only the event is written.
    // SAFETY: `pos` is a live heap allocation only read by the callback during calls.
    unsafe { (*pos).latitude = 0.0 };
    // SAFETY: as above.
    unsafe { write_tsd_evt(a.csb(), a.csd(), 4, 2, true) };
    assert_eq!(a.counts(0), (2, 0));
    assert_eq!(a.counts(4), (3, 0));
    // Without the flag the callback is not even called.
    let before = POSITION_CALLS.load(Ordering::Relaxed);
    // SAFETY: registered arrays.
    unsafe { write_tsd_evt(a.csb(), a.csd(), 4, 3, false) };
    assert_eq!(POSITION_CALLS.load(Ordering::Relaxed), before);
    assert_eq!(spool_deinit(), SPOOL_OK);
    // SAFETY: no longer registered anywhere; allocated by Box::into_raw above.
    drop(unsafe { Box::from_raw(pos) });
}

#[test]
fn mirrors_saturate_instead_of_wrapping() {
    let _g = serial();
    init(0);
    let a = Arrays::new(10, &[1000]);
    assert_eq!(a.register(0), SPOOL_OK);
    let mut written = 0u64;
    // Write until the store refuses or we pass u16::MAX records.
    for v in 0..70_000u32 {
        // SAFETY: registered arrays.
        unsafe { write_tsd_evt_time(a.csb(), a.csd(), 0, v, 0) };
        if spool_last_status() != SPOOL_OK {
            break;
        }
        written += 1;
    }
    let s = stats().store;
    assert_eq!(s.written, written);
    let expect = u16::try_from(s.stored).unwrap_or(u16::MAX);
    assert_eq!(a.counts(0), (expect, 0));
    assert!(a.counts(0).1 <= a.counts(0).0);
    assert_eq!(s.written, s.stored + s.dropped + s.acked);
    eprintln!(
        "mirror saturation: stored {} of {} written",
        s.stored, written
    );
}

#[test]
fn reset_and_init_ds() {
    let _g = serial();
    init(0);
    let mut a = Arrays::new(10, &[1000, 0]);
    assert_eq!(a.register(0), SPOOL_OK);
    write_t(&mut a, 0, 1, 0);
    write_t(&mut a, 0, 2, 0);
    let _ = read(&mut a, 0);
    // SAFETY: registered arrays.
    unsafe {
        imx_init_data_store_entry(a.ds_ptr(1));
    }
    assert_eq!(spool_last_status(), SPOOL_OK);
    assert_eq!(a.csd_at(1).ds, [0; 3]);
    assert_eq!(a.csd_at(0).ds, [7; 3]);
    assert_eq!(a.counts(0), (2, 1), "init_ds does not touch the store");
    // SAFETY: registered csd.
    unsafe { reset_csd_entry(a.csd(), 0) };
    assert_eq!(a.counts(0), (0, 0));
    let s = stats().store;
    assert_eq!((s.written, s.dropped, s.stored), (2, 2, 0));
    assert_eq!(spool_check(), SPOOL_OK);
}

#[test]
fn flush_protocol_ram_only() {
    let _g = serial();
    init(0);
    let mut a = Arrays::new(10, &[1000]);
    assert_eq!(a.register(0), SPOOL_OK);
    write_t(&mut a, 0, 1, 0);
    assert!(!is_all_ram_empty());
    assert_eq!(get_flush_progress(), 101, "no flush requested");
    flush_all_to_disk();
    process_memory(1000);
    let p = get_flush_progress();
    assert!(p <= 101);
    cancel_memory_flush();
    assert_eq!(get_flush_progress(), 101);
    assert_eq!(spool_last_status(), SPOOL_OK);
    assert_eq!(a.counts(0), (1, 0));
    let _ = null_mut::<u8>();
}

#[test]
fn pool_alloc_free_double_free() {
    let _g = serial();
    let mut p = null_mut();
    let mut s0 = [SpoolTierStats::default(); SPOOL_POOL_TIERS];
    let mut s1 = s0;
    // SAFETY: valid out-pointers; the block is freed once, then the double free is rejected.
    unsafe {
        assert_eq!(spool_pool_stats(s0.as_mut_ptr(), s0.len()), SPOOL_OK);
        assert_eq!(spool_pool_alloc(100, &mut p), SPOOL_OK);
        assert!(!p.is_null());
        let b = p.cast::<u8>();
        b.write_bytes(0xA5, 100);
        assert_eq!(spool_pool_free(b.add(8).cast()), SPOOL_ERR_FOREIGN_PTR);
        assert_eq!(spool_pool_free(p), SPOOL_OK);
        assert_eq!(spool_pool_free(p), SPOOL_ERR_DOUBLE_FREE);
        assert_eq!(spool_pool_stats(s1.as_mut_ptr(), s1.len()), SPOOL_OK);
    }
    assert_eq!(s1[0].in_use, s0[0].in_use);
    assert_eq!(s1[0].invalid_frees, s0[0].invalid_frees + 2);
    assert_eq!(spool_pool_check(), SPOOL_OK);
}
