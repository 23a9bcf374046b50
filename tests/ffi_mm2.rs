//! The MM2 façade (`imx_write_tsd`, `imx_write_evt`, `imx_read_bulk_samples`, ...): one test
//! per MM2 bug class of the reference (§3.8) showing the façade is immune, interop with
//! the MM1 calls on the same arrays, the stats, and a model-based test.
#![cfg(feature = "ffi")]
// SAFETY (whole file): every unsafe block calls an exported C function with per-sensor
// pointers into live, registered test arrays (or deliberately wrong ones the library must
// reject before dereferencing) and out-buffers of the documented sizes.
#![allow(clippy::undocumented_unsafe_blocks)]

mod ffi_support;

use SpoolStatus::*;
use ffi_support::*;
use proptest::prelude::*;
use sensor_spool::ffi::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

const CAN: u32 = 4;
const GATEWAY: u32 = 0;

/// `&csb[e]` of an array pair.
fn csb_at(a: &Arrays, e: usize) -> *mut ControlSensorBlock {
    a.csb().cast::<Csb>().wrapping_add(e).cast()
}

/// `&csd[e]` of an array pair.
fn csd_at(a: &Arrays, e: usize) -> *mut ControlSensorData {
    a.csd().cast::<Csd>().wrapping_add(e).cast()
}

/// `imx_read_bulk_samples` into a fresh buffer of `cap` elements: (status, samples read).
fn read_bulk(src: u32, a: &Arrays, e: usize, cap: u32, n: u32) -> (SpoolStatus, Vec<TsdEvtValue>) {
    let marker = TsdEvtValue {
        value: 0xDEAD_BEEF,
        timestamp: u64::MAX,
    };
    let mut buf = vec![marker; cap as usize];
    let mut filled: u16 = 0xFFFF;
    let r = unsafe {
        imx(imx_read_bulk_samples(
            src,
            csb_at(a, e),
            csd_at(a, e),
            buf.as_mut_ptr(),
            cap,
            n,
            &mut filled,
        ))
    };
    if r == SPOOL_OK || r == SPOOL_ERR_NO_DATA {
        assert!(u32::from(filled) <= cap.min(n), "filled within bounds");
        assert!(
            buf[filled as usize..].iter().all(|s| *s == marker),
            "nothing written past filled_count"
        );
        buf.truncate(filled as usize);
    } else {
        assert_eq!(filled, 0xFFFF, "filled_count untouched on error");
        assert!(buf.iter().all(|s| *s == marker), "array untouched on error");
        buf.clear();
    }
    (r, buf)
}

fn count(src: u32, a: &Arrays, e: usize) -> u32 {
    unsafe { imx_get_new_sample_count(src, csb_at(a, e), csd_at(a, e)) }
}

fn pending(src: u32, a: &Arrays, e: usize) -> bool {
    unsafe { imx_has_pending_data(src, csb_at(a, e), csd_at(a, e)) }
}

fn erase(src: u32, a: &Arrays, e: usize) -> SpoolStatus {
    unsafe { imx(imx_erase_all_pending(src, csb_at(a, e), csd_at(a, e))) }
}

fn revert(src: u32, a: &Arrays, e: usize) -> SpoolStatus {
    unsafe { imx(imx_revert_all_pending(src, csb_at(a, e), csd_at(a, e))) }
}

fn tsd(src: u32, a: &Arrays, e: usize, v: u32) -> SpoolStatus {
    unsafe {
        imx(imx_write_tsd(
            src,
            csb_at(a, e),
            csd_at(a, e),
            Data32::from_bits(v),
        ))
    }
}

fn evt(src: u32, a: &Arrays, e: usize, v: u32, ms: u64) -> SpoolStatus {
    unsafe {
        imx(imx_write_evt(
            src,
            csb_at(a, e),
            csd_at(a, e),
            Data32::from_bits(v),
            ms,
        ))
    }
}

fn values(s: &[TsdEvtValue]) -> Vec<u32> {
    s.iter().map(|s| s.value).collect()
}

fn mm2_stats() -> Mm2Stats {
    let mut s = Mm2Stats::default();
    assert_eq!(unsafe { imx(imx_get_memory_stats(&mut s)) }, SPOOL_OK);
    s
}

/// MM2 bug: events written under `IMX_UPLOAD_CAN_DEVICE`, ACKed under another source, so
/// the sectors were never freed. Here every call under the wrong source is refused with
/// `SPOOL_ERR_SOURCE_MISMATCH` and changes nothing; the right source frees the data.
#[test]
fn source_mismatch_cannot_leave_data_unfreed() {
    let _g = serial();
    init(0);
    let can = Arrays::new(500, &[0, 1000]);
    let gw = Arrays::new(500, &[0]);
    assert_eq!(can.register(CAN as u8), SPOOL_OK);
    assert_eq!(gw.register(GATEWAY as u8), SPOOL_OK);
    for i in 0..10 {
        assert_eq!(
            evt(CAN, &can, 0, i, 1_700_000_000_000 + u64::from(i) * 1000),
            SPOOL_OK
        );
    }
    assert_eq!(
        evt(GATEWAY, &gw, 0, 99, 5_000),
        SPOOL_OK,
        "same id, other source"
    );
    // Writes and reads under the wrong source: refused, nothing stored or marked pending.
    assert_eq!(evt(GATEWAY, &can, 0, 1, 1), SPOOL_ERR_SOURCE_MISMATCH);
    assert_eq!(tsd(GATEWAY, &can, 1, 1), SPOOL_ERR_SOURCE_MISMATCH);
    assert_eq!(
        read_bulk(GATEWAY, &can, 0, 16, 16).0,
        SPOOL_ERR_SOURCE_MISMATCH
    );
    assert_eq!(count(GATEWAY, &can, 0), 0);
    assert_eq!(spool_last_status(), SPOOL_ERR_SOURCE_MISMATCH);
    assert_eq!(count(CAN, &can, 0), 10);
    let (r, got) = read_bulk(CAN, &can, 0, 16, 16);
    assert_eq!((r, values(&got)), (SPOOL_OK, (0..10).collect::<Vec<_>>()));
    assert_eq!(got[3].timestamp, 1_700_000_003_000);
    assert_eq!(can.counts(0), (10, 10));
    // The ACK under the wrong source: refused, the data stays pending, not lost.
    let before = stats().store;
    assert_eq!(erase(GATEWAY, &can, 0), SPOOL_ERR_SOURCE_MISMATCH);
    assert_eq!(revert(GATEWAY, &can, 0), SPOOL_ERR_SOURCE_MISMATCH);
    assert!(!pending(GATEWAY, &can, 0));
    assert_eq!(spool_last_status(), SPOOL_ERR_SOURCE_MISMATCH);
    assert_eq!(stats().store, before, "nothing changed");
    assert!(pending(CAN, &can, 0));
    // The gateway sensor with the same id is another sensor: its ACK/NACK never touches
    // the CAN sensor's pending records (pending state per upload source).
    assert_eq!(read_bulk(GATEWAY, &gw, 0, 4, 4).1.len(), 1);
    assert_eq!(erase(GATEWAY, &gw, 0), SPOOL_OK);
    assert_eq!(can.counts(0), (10, 10));
    assert!(pending(CAN, &can, 0));
    // The right source frees everything.
    assert_eq!(erase(CAN, &can, 0), SPOOL_OK);
    assert!(!pending(CAN, &can, 0));
    assert_eq!(can.counts(0), (0, 0));
    let s = stats().store;
    assert_eq!(
        (s.stored, s.pending, s.sectors_used),
        (0, 0, 0),
        "all sectors freed"
    );
    assert_eq!(s.acked, 11);
    assert_eq!(spool_check(), SPOOL_OK);
    assert_eq!(spool_deinit(), SPOOL_OK);
}

/// MM2 bug: the same sensor written by the TSD sampler and the EVT path (sector-type
/// mismatch, reads then returned "NO DATA"). Here the kind is the sensor's
/// (`sample_rate`), a write through the other path is refused and stores nothing, and every
/// accepted record reads back.
#[test]
fn tsd_evt_mixup_on_one_sensor_is_refused() {
    let _g = serial();
    init(0);
    let a = Arrays::new(2, &[0, 1000]); // GPS latitude as an event sensor, a TSD sensor
    assert_eq!(a.register(GATEWAY as u8), SPOOL_OK);
    let mut want_evt = Vec::new();
    let mut want_tsd = Vec::new();
    for i in 0..20u32 {
        // The sampler (TSD path) and the event path both hit both sensors.
        let t = 1_700_000_000_000 + u64::from(i) * 1000;
        assert_eq!(
            tsd(GATEWAY, &a, 0, 1000 + i),
            SPOOL_ERR_CONFLICT,
            "TSD write on EVT sensor"
        );
        assert_eq!(evt(GATEWAY, &a, 0, i, t), SPOOL_OK);
        want_evt.push((i, t));
        assert_eq!(
            evt(GATEWAY, &a, 1, 2000 + i, t),
            SPOOL_ERR_CONFLICT,
            "EVT write on TSD sensor"
        );
        assert_eq!(tsd(GATEWAY, &a, 1, 3000 + i), SPOOL_OK);
        want_tsd.push(3000 + i);
        // MM1 writes on the same arrays follow the sensor's kind too.
        unsafe { write_tsd_evt_time(a.csb(), a.csd(), 0, 100 + i, 1_800_000_000 + i) };
        want_evt.push((100 + i, (1_800_000_000 + u64::from(i)) * 1000));
    }
    assert_eq!(a.counts(0), (40, 0));
    assert_eq!(a.counts(1), (20, 0));
    let (r, got) = read_bulk(GATEWAY, &a, 0, 100, 100);
    assert_eq!(r, SPOOL_OK);
    let got: Vec<(u32, u64)> = got.iter().map(|s| (s.value, s.timestamp)).collect();
    assert_eq!(got, want_evt, "every event back, with its time");
    let (r, got) = read_bulk(GATEWAY, &a, 1, 100, 100);
    assert_eq!((r, values(&got)), (SPOOL_OK, want_tsd));
    let f = stats().ffi;
    assert_eq!(f.store_errors, 40, "the 40 refused writes are counted");
    assert_eq!(spool_check(), SPOOL_OK);
    assert_eq!(spool_deinit(), SPOOL_OK);
}

/// MM2 bug: the read position was lost when the last record of a sector was read. Here
/// reads that end exactly at sector ends (16 TSD samples / 8 events per 64-byte LINUX
/// sector), interleaved with writes, ACKs and NACKs, return every record once, in order.
#[test]
fn read_position_survives_sector_ends() {
    let _g = serial();
    init(0);
    let a = Arrays::new(10, &[1000, 0]);
    assert_eq!(a.register(CAN as u8), SPOOL_OK);
    for (e, per) in [(0usize, 16u32), (1, 8)] {
        let mut next_write = 0u32;
        let mut next_read = 0u32;
        let mut write = |n: u32| {
            for _ in 0..n {
                let r = if e == 0 {
                    tsd(CAN, &a, e, next_write)
                } else {
                    evt(CAN, &a, e, next_write, u64::from(next_write) * 1000)
                };
                assert_eq!(r, SPOOL_OK);
                next_write += 1;
            }
        };
        write(per); // exactly one full sector
        for round in 0..6 {
            // Read exactly to the sector end, NACK, read again, ACK.
            let n = count(CAN, &a, e);
            let (r, got) = read_bulk(CAN, &a, e, 64, n);
            assert_eq!(r, SPOOL_OK);
            let want: Vec<u32> = (next_read..next_read + n).collect();
            assert_eq!(values(&got), want, "round {round}");
            assert_eq!(
                read_bulk(CAN, &a, e, 64, 1).0,
                SPOOL_ERR_NO_DATA,
                "no read past the end"
            );
            assert_eq!(revert(CAN, &a, e), SPOOL_OK);
            // Re-read in two chunks, the first ending on the sector boundary.
            let first = per - (next_read % per);
            let (_, g1) = read_bulk(CAN, &a, e, 64, first.min(n));
            write(per); // the writer fills the next sector meanwhile
            let (_, g2) = read_bulk(CAN, &a, e, 64, n - g1.len() as u32);
            let again: Vec<u32> = values(&g1).into_iter().chain(values(&g2)).collect();
            assert_eq!(again, want, "round {round}: after NACK");
            assert_eq!(erase(CAN, &a, e), SPOOL_OK);
            next_read += n;
            // A partial sector next time round.
            write(round + 1);
        }
        assert_eq!(count(CAN, &a, e), next_write - next_read);
    }
    assert_eq!(spool_check(), SPOOL_OK);
    assert_eq!(spool_deinit(), SPOOL_OK);
}

/// MM2 bug: an infinite read loop returning zeroed (erased) records. Here reads never
/// return an erased or pending record: after an ACK only new records come back, a read
/// with nothing unsent says `SPOOL_ERR_NO_DATA` with 0 filled, and a loop that reads until
/// then terminates after exactly the records written.
#[test]
fn erased_records_are_never_read() {
    let _g = serial();
    init(0);
    let a = Arrays::new(30, &[250]);
    assert_eq!(a.register(GATEWAY as u8), SPOOL_OK);
    for v in 1..=40 {
        assert_eq!(tsd(GATEWAY, &a, 0, v), SPOOL_OK);
    }
    assert_eq!(
        values(&read_bulk(GATEWAY, &a, 0, 64, 40).1),
        (1..=40).collect::<Vec<_>>()
    );
    assert_eq!(erase(GATEWAY, &a, 0), SPOOL_OK);
    assert_eq!(count(GATEWAY, &a, 0), 0);
    let (r, got) = read_bulk(GATEWAY, &a, 0, 64, 64);
    assert_eq!(
        (r, got.len()),
        (SPOOL_ERR_NO_DATA, 0),
        "nothing after the ACK"
    );
    for v in 41..=45 {
        assert_eq!(tsd(GATEWAY, &a, 0, v), SPOOL_OK);
    }
    // The uploader loop: read while records come back.
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 100, "read loop does not terminate");
        let (r, got) = read_bulk(GATEWAY, &a, 0, 2, 8);
        if r == SPOOL_ERR_NO_DATA {
            break;
        }
        assert_eq!(r, SPOOL_OK);
        seen.extend(values(&got));
    }
    assert_eq!(
        seen,
        vec![41, 42, 43, 44, 45],
        "only the new records, never zeros"
    );
    assert_eq!(a.counts(0), (5, 5));
    assert!(pending(GATEWAY, &a, 0));
    assert_eq!(erase(GATEWAY, &a, 0), SPOOL_OK);
    assert_eq!(a.counts(0), (0, 0));
    assert_eq!(read_bulk(GATEWAY, &a, 0, 8, 8).0, SPOOL_ERR_NO_DATA);
    // requested_count 0 / array_size 0: OK, nothing read.
    assert_eq!(read_bulk(GATEWAY, &a, 0, 8, 0), (SPOOL_OK, vec![]));
    assert_eq!(read_bulk(GATEWAY, &a, 0, 0, 8), (SPOOL_OK, vec![]));
    let s = stats().store;
    assert_eq!((s.written, s.acked, s.stored), (45, 45, 0));
    assert_eq!(spool_check(), SPOOL_OK);
    assert_eq!(spool_deinit(), SPOOL_OK);
}

/// Interop with MM1 on the same arrays, per-element pointer checks, and the MM2 stats.
#[test]
fn mm1_interop_pointers_and_stats() {
    let _g = serial();
    init(0);
    let a = Arrays::new(70, &[1000, 0, 1000]);
    let b = Arrays::new(70, &[1000]);
    assert_eq!(a.register(CAN as u8), SPOOL_OK);
    let s = mm2_stats();
    assert_eq!(
        (s.active_sensors, s.free_sectors, s.space_efficiency_percent),
        (0, s.total_sectors, 100)
    );
    for v in 0..20 {
        assert_eq!(tsd(CAN, &a, 2, v), SPOOL_OK);
    }
    assert_eq!(evt(CAN, &a, 1, 7, 9_000), SPOOL_OK);
    // MM1 sees the MM2 writes (same sensor) and vice versa.
    let mut w = [0u32; 2];
    unsafe { read_tsd_evt(a.csb(), a.csd(), 2, w.as_mut_ptr()) };
    assert_eq!(w[0], 0);
    assert_eq!(count(CAN, &a, 2), 19);
    assert!(
        pending(CAN, &a, 2),
        "the MM1 read is pending for the sensor's source"
    );
    assert_eq!(a.counts(2), (20, 1));
    assert_eq!(a.csd_at(1).last_value, 7);
    assert_eq!(a.csd_at(1).last_sample_time, 9_000);
    // Element pointers must be the same element of one registered pair.
    let mis = a.csb().cast::<u8>().wrapping_add(1).cast();
    assert_eq!(
        unsafe { imx(imx_write_tsd(CAN, mis, csd_at(&a, 0), Data32::from_bits(1))) },
        SPOOL_ERR_NOT_REGISTERED
    );
    assert_eq!(
        unsafe {
            imx(imx_write_tsd(
                CAN,
                csb_at(&a, 0),
                csd_at(&a, 2),
                Data32::from_bits(1),
            ))
        },
        SPOOL_ERR_NOT_REGISTERED
    );
    assert_eq!(
        unsafe {
            imx(imx_write_tsd(
                CAN,
                csb_at(&a, 3),
                csd_at(&a, 3),
                Data32::from_bits(1),
            ))
        },
        SPOOL_ERR_NOT_REGISTERED
    );
    assert_eq!(tsd(CAN, &b, 0, 1), SPOOL_ERR_NOT_REGISTERED);
    let s = mm2_stats();
    assert_eq!(s.active_sensors, 2);
    // 20 TSD samples = 2 sectors of 16 (80 of 128 bytes); 1 event = 1 sector (8 of 64).
    assert_eq!(s.free_sectors, s.total_sectors - 3);
    assert_eq!(s.space_efficiency_percent, (80 + 8) * 100 / 192);
    assert_eq!(
        (
            s.total_allocations,
            s.allocation_failures,
            s.chain_operations
        ),
        (21, 0, 0)
    );
    assert_eq!(spool_deinit(), SPOOL_OK);
}

/// The pool queries of the malloc wrapper (here, not in `ffi_diag`, whose dump test
/// expects an untouched pool): any pointer value is safe, only block starts
/// are owned, and `spool_pool_init` is an idempotent flag.
#[test]
fn pool_queries_for_the_malloc_wrapper() {
    let _g = serial();
    assert_eq!(spool_pool_init(), SPOOL_OK);
    assert_eq!(spool_pool_init(), SPOOL_OK);
    assert!(spool_pool_initialized());
    let mut p: *mut std::ffi::c_void = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_pool_alloc(600, &mut p) }, SPOOL_OK);
    assert!(spool_pool_owns(p));
    assert_eq!(spool_pool_block_size(p), 1024);
    let interior = p.cast::<u8>().wrapping_add(8).cast::<std::ffi::c_void>();
    assert!(!spool_pool_owns(interior));
    assert_eq!(spool_pool_block_size(interior), 0);
    let local = 0u64;
    assert!(!spool_pool_owns((&raw const local).cast()));
    assert!(!spool_pool_owns(std::ptr::null()));
    assert!(!spool_pool_owns(std::ptr::without_provenance(usize::MAX)));
    assert_eq!(spool_pool_block_size(std::ptr::null()), 0);
    // SAFETY: the block allocated above.
    assert_eq!(unsafe { spool_pool_free(p) }, SPOOL_OK);
    assert!(spool_pool_owns(p), "a free block still belongs to the pool");
    assert_eq!(spool_pool_block_size(p), 1024);
}

// ---- model-based test

#[derive(Clone, Debug)]
enum Op {
    /// imx_write_tsd on sensor `s` (maybe under the wrong source).
    Tsd {
        s: usize,
        right_source: bool,
        v: u32,
    },
    /// imx_write_evt.
    Evt {
        s: usize,
        right_source: bool,
        v: u32,
        ms: u64,
    },
    /// imx_read_bulk_samples with (array_size, requested_count).
    Read {
        s: usize,
        right_source: bool,
        cap: u32,
        n: u32,
    },
    /// imx_erase_all_pending.
    Erase { s: usize, right_source: bool },
    /// imx_revert_all_pending.
    Revert { s: usize, right_source: bool },
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..4usize;
    let src = prop::bool::weighted(0.85);
    prop_oneof![
        3 => (s.clone(), src, any::<u32>()).prop_map(|(s, right_source, v)| Op::Tsd { s, right_source, v }),
        3 => (s.clone(), src, any::<u32>(), 0..4_000_000_000_000u64)
            .prop_map(|(s, right_source, v, ms)| Op::Evt { s, right_source, v, ms }),
        3 => (s.clone(), src, 0..24u32, 0..24u32)
            .prop_map(|(s, right_source, cap, n)| Op::Read { s, right_source, cap, n }),
        1 => (s.clone(), src).prop_map(|(s, right_source)| Op::Erase { s, right_source }),
        1 => (s, src).prop_map(|(s, right_source)| Op::Revert { s, right_source }),
    ]
}

/// Model of one sensor: stored (value, EVT time or None) oldest first, and how many of
/// them are pending.
#[derive(Default, Debug)]
struct Model {
    recs: VecDeque<(u32, Option<u64>)>,
    pending: usize,
}

static CASES: AtomicU64 = AtomicU64::new(0);

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let _g = serial();
    init(0);
    // Sensors 0, 1: CAN arrays (TSD, EVT); 2, 3: gateway arrays with the same ids.
    let can = Arrays::new(40, &[1000, 0]);
    let gw = Arrays::new(40, &[500, 0]);
    prop_assert_eq!(can.register(CAN as u8), SPOOL_OK);
    prop_assert_eq!(gw.register(GATEWAY as u8), SPOOL_OK);
    let at = |s: usize| -> (&Arrays, usize, u32, bool) {
        match s {
            0 | 1 => (&can, s, CAN, s == 1),
            _ => (&gw, s - 2, GATEWAY, s == 3),
        }
    };
    let mut m: Vec<Model> = (0..4).map(|_| Model::default()).collect();
    for op in ops {
        let (s, right) = match *op {
            Op::Tsd {
                s, right_source, ..
            }
            | Op::Evt {
                s, right_source, ..
            }
            | Op::Read {
                s, right_source, ..
            }
            | Op::Erase { s, right_source }
            | Op::Revert { s, right_source } => (s, right_source),
        };
        let (arr, e, own, is_evt) = at(s);
        let src = if right { own } else { own ^ CAN };
        let mismatch = SPOOL_ERR_SOURCE_MISMATCH;
        let md = &mut m[s];
        match *op {
            Op::Tsd { v, .. } => {
                let r = tsd(src, arr, e, v);
                if !right {
                    prop_assert_eq!(r, mismatch);
                } else if is_evt {
                    prop_assert_eq!(r, SPOOL_ERR_CONFLICT);
                } else {
                    prop_assert_eq!(r, SPOOL_OK);
                    md.recs.push_back((v, None));
                }
            }
            Op::Evt { v, ms, .. } => {
                let r = evt(src, arr, e, v, ms);
                if !right {
                    prop_assert_eq!(r, mismatch);
                } else if !is_evt {
                    prop_assert_eq!(r, SPOOL_ERR_CONFLICT);
                } else {
                    prop_assert_eq!(r, SPOOL_OK);
                    md.recs.push_back((v, Some(ms / 1000 * 1000)));
                }
            }
            Op::Read { cap, n, .. } => {
                let (r, got) = read_bulk(src, arr, e, cap, n);
                let avail = md.recs.len() - md.pending;
                let want_n = (cap.min(n) as usize).min(avail);
                if !right {
                    prop_assert_eq!(r, mismatch);
                } else if cap.min(n) > 0 && avail == 0 {
                    prop_assert_eq!((r, got.len()), (SPOOL_ERR_NO_DATA, 0));
                } else {
                    prop_assert_eq!(r, SPOOL_OK);
                    prop_assert_eq!(got.len(), want_n);
                    for (g, (v, t)) in got.iter().zip(md.recs.iter().skip(md.pending)) {
                        prop_assert_eq!(g.value, *v);
                        if let Some(t) = t {
                            prop_assert_eq!(g.timestamp, *t);
                        }
                    }
                    md.pending += want_n;
                }
            }
            Op::Erase { .. } => {
                let r = erase(src, arr, e);
                if right {
                    prop_assert_eq!(r, SPOOL_OK);
                    md.recs.drain(..md.pending);
                    md.pending = 0;
                } else {
                    prop_assert_eq!(r, mismatch);
                }
            }
            Op::Revert { .. } => {
                let r = revert(src, arr, e);
                if right {
                    prop_assert_eq!(r, SPOOL_OK);
                    md.pending = 0;
                } else {
                    prop_assert_eq!(r, mismatch);
                }
            }
        }
        for (i, md) in m.iter().enumerate() {
            let (arr, e, own, _) = at(i);
            prop_assert_eq!(
                count(own, arr, e) as usize,
                md.recs.len() - md.pending,
                "sensor {} after {:?}",
                i,
                op
            );
            prop_assert_eq!(pending(own, arr, e), md.pending > 0);
            prop_assert_eq!(count(own ^ CAN, arr, e), 0, "wrong source sees nothing");
            prop_assert_eq!(arr.counts(e), (md.recs.len() as u16, md.pending as u16));
        }
        prop_assert_eq!(spool_check(), SPOOL_OK);
    }
    let s = mm2_stats();
    prop_assert_eq!(s.total_allocations, stats().store.written);
    prop_assert_eq!(
        stats().store.stored,
        m.iter().map(|x| x.recs.len() as u64).sum::<u64>()
    );
    prop_assert_eq!(spool_deinit(), SPOOL_OK);
    CASES.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Case count from `PROPTEST_CASES` (default 256); the count actually run is printed.
#[test]
fn mm2_calls_match_the_model() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::default());
    let len = if cfg!(miri) { 1..30 } else { 1..150 };
    let result = runner.run(&prop::collection::vec(op(), len), |ops| run(&ops));
    eprintln!("ffi mm2 model: {} cases", CASES.load(Ordering::Relaxed));
    if let Err(e) = result {
        panic!("{e}");
    }
}
