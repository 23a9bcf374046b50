//! The `csd` mirrors as the firmware reads them (issue "Drop-in for real iMatrix firmware",
//! items 1 and 2):
//!
//! * every entry whose sensor changed is re-mirrored, whatever changed it: a write to
//!   another sensor that overflowed RAM and dropped this sensor's records, a storage
//!   eviction, entries sharing one sensor id;
//! * a `no_pending` lowered by the firmware is honoured with MM1's meaning (un-read: the
//!   next read returns the record at the new offset, nothing is erased that was not
//!   handed out); a raised one is refused and counted.
#![cfg(feature = "ffi")]

mod ffi_support;

use SpoolStatus::*;
use ffi_support::*;
use sensor_spool::ffi::*;
use std::collections::HashMap;

const SOURCE: u8 = 1;

fn write(a: &Arrays, e: u16, v: u32) {
    // SAFETY: registered arrays.
    unsafe { write_tsd_evt_time(a.csb(), a.csd(), e, v, 1_700_000_000) };
}

fn read(a: &Arrays, e: u16) -> u32 {
    let mut v = [0xFFFF_FFFFu32; 2];
    // SAFETY: registered arrays, two-word buffer.
    unsafe { read_tsd_evt(a.csb(), a.csd(), e, v.as_mut_ptr()) };
    v[0]
}

fn atomic_erase(a: &Arrays, e: u16, n: u16) -> SpoolStatus {
    // SAFETY: registered arrays.
    unsafe { atomic_erase_records(a.csb(), a.csd(), e, n) }
}

fn mirror_stats() -> SpoolMirrorStats {
    let mut m = SpoolMirrorStats::default();
    // SAFETY: writable.
    assert_eq!(unsafe { spool_mirror_stats(&mut m) }, SPOOL_OK);
    m
}

/// The store's (stored, pending) of the sensor `(source, id)`, saturated as the mirrors.
fn truth(source: u8, id: u32) -> (u16, u16) {
    let mut s = SpoolSensorStats::default();
    let h = (u64::from(source) << 32) | u64::from(id);
    // SAFETY: writable.
    match unsafe { spool_sensor_stats(h, &mut s) } {
        SPOOL_OK => (
            u16::try_from(s.stored).unwrap_or(u16::MAX),
            u16::try_from(s.pending).unwrap_or(u16::MAX),
        ),
        SPOOL_ERR_UNKNOWN_SENSOR => (0, 0),
        other => panic!("spool_sensor_stats: {other:?}"),
    }
}

/// Every entry of `a` shows its sensor's true counters.
#[track_caller]
fn assert_mirrored(a: &Arrays, ids: &[u32], what: &str) {
    for (e, &id) in ids.iter().enumerate() {
        assert_eq!(
            a.counts(e),
            truth(SOURCE, id),
            "{what}: entry {e} (id {id})"
        );
    }
}

/// Item 1, RAM only: the uploader's sensor (entry 1) has everything it wrote pending, so
/// when RAM is full its next write drops the oldest unsent sector of the *other* sensor
/// (entry 0). Entry 0's `no_samples` must follow. Then the README's upload loop on entry 0
/// (`n = no_samples - no_pending`, read n, `atomic_erase_records(n)`) reads only real
/// records, in order, and acknowledges exactly them. Before the fix entry 0 kept its old
/// `no_samples`: the loop read zeros past the end and the ACK failed with
/// `SPOOL_ERR_ACK_TOO_MANY`, erasing nothing.
#[test]
fn a_drop_of_another_sensor_is_mirrored_and_the_upload_loop_acks_exactly() {
    let _g = serial();
    init(0);
    let ids = [10, 11];
    let a = Arrays::new(10, &[1000, 1000]);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let total = stats().store.sectors_total;
    // Entry 0 fills about half of RAM, unread.
    let mut n0 = 0u32;
    while stats().store.sectors_used * 2 < total {
        n0 += 1;
        write(&a, 0, n0);
    }
    // Entry 1 writes and reads each record (all pending) until a write drops data.
    let mut n1 = 0u32;
    while stats().store.dropped == 0 {
        n1 += 1;
        write(&a, 1, n1);
        assert_eq!(read(&a, 1), n1);
        assert!(n1 < 100_000, "RAM never overflowed");
    }
    assert_eq!(
        a.counts(1),
        (n1 as u16, n1 as u16),
        "nothing of entry 1 dropped"
    );
    assert_mirrored(&a, &ids, "after the cross-sensor drop");
    let dropped = stats().store.dropped as u32;
    assert_eq!(u32::from(a.counts(0).0), n0 - dropped);
    // The README upload loop on entry 0.
    let c = a.csd_at(0);
    let n = c.no_samples - c.no_pending;
    let got: Vec<u32> = (0..n).map(|_| read(&a, 0)).collect();
    let want: Vec<u32> = (dropped + 1..=n0).collect();
    assert_eq!(got, want, "only real records, oldest surviving first");
    assert_eq!(atomic_erase(&a, 0, n), SPOOL_OK);
    assert_eq!(a.counts(0), (0, 0));
    assert!(mirror_stats().refreshes > 0);
    assert_eq!(spool_check(), SPOOL_OK);
}

/// Item 1: entries sharing one sensor id (two entries of one array, and an entry of a
/// second array) all show that sensor's counters after every call through any of them,
/// through the MM2 façade and through the native API.
#[test]
fn entries_sharing_an_id_are_all_mirrored() {
    let _g = serial();
    init(0);
    let a = Arrays::new(0, &[1000, 1000, 1000]);
    let ids = [7, 7, 8];
    for (e, &id) in ids.iter().enumerate() {
        a.set_id(e, id);
    }
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let b = Arrays::new(7, &[1000]);
    assert_eq!(b.register(SOURCE), SPOOL_OK);
    let check = |what: &str| {
        assert_mirrored(&a, &ids, what);
        assert_mirrored(&b, &[7], what);
    };
    for v in 1..=6 {
        write(&a, (v % 2) as u16, v);
        check("write");
    }
    write(&a, 2, 100);
    check("write to the other sensor");
    assert_eq!(read(&a, 1), 1);
    assert_eq!(read(&b, 0), 2);
    check("reads");
    assert_eq!(a.counts(0), (6, 2));
    assert_eq!(atomic_erase(&a, 0, 1), SPOOL_OK);
    check("atomic erase");
    // SAFETY: element pointers of a registered pair.
    let mm2 = unsafe {
        let csb = a.csb().cast::<Csb>().add(1).cast::<ControlSensorBlock>();
        let csd = a.csd().cast::<Csd>().add(1).cast::<ControlSensorData>();
        imx(imx_write_tsd(
            u32::from(SOURCE),
            csb,
            csd,
            Data32::from_bits(9),
        ))
    };
    assert_eq!(mm2, SPOOL_OK);
    check("MM2 write");
    let h = (u64::from(SOURCE) << 32) | 7;
    assert_eq!(spool_write(h, 10, 0), SPOOL_OK);
    assert_eq!(spool_ack(h, 1), SPOOL_OK);
    check("native write and ack");
    // SAFETY: registered arrays.
    unsafe { revert_tsd_evt_pending_data(b.csb(), b.csd(), 1) };
    check("revert");
    // SAFETY: registered arrays.
    unsafe { reset_csd_entry(a.csd(), 1) };
    check("reset_csd_entry");
    assert_eq!(a.counts(0), (0, 0));
    assert_eq!(a.counts(2), (1, 0));
    // An id changed at run time to an existing one: picked up by the next main-loop call.
    write(&a, 0, 1);
    a.set_id(2, 7);
    process_memory(0);
    assert_mirrored(&a, &[7, 7, 7], "id changed at run time");
    assert_eq!(spool_check(), SPOOL_OK);
}

/// Item 1 with storage: sensor 0's records spill to a small flash part; sensor 1 then
/// writes (and `process_memory` spills) until the full part evicts its oldest sector,
/// which holds sensor 0's records. Sensor 0's mirrors must follow without any call on
/// entry 0, and its upload loop must read exactly the surviving records.
#[test]
fn a_flash_eviction_of_another_sensor_is_mirrored() {
    let _g = serial();
    let mut flash = RamFlash::new(3 * 4096, 1, 4096);
    assert_eq!(init_flash(0, flash.callbacks(), 30), SPOOL_OK);
    let ids = [20, 21];
    let a = Arrays::new(20, &[1000, 1000]);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut n0 = 0u32;
    while storage_stats().in_storage == 0 {
        n0 += 1;
        write(&a, 0, n0);
        process_memory(0);
        assert!(n0 < 50_000, "never spilled");
    }
    // Stop writing entry 0 once a batch of it is in storage.
    let mut n1 = 0u32;
    while storage_stats().lost == 0 {
        n1 += 1;
        write(&a, 1, n1);
        process_memory(0);
        assert_mirrored(&a, &ids, "while entry 1 writes");
        assert!(n1 < 500_000, "never evicted");
    }
    assert_mirrored(&a, &ids, "after the eviction");
    let (stored, pending) = a.counts(0);
    assert!(stored < n0 as u16, "entry 0 lost records: {stored} of {n0}");
    let got: Vec<u32> = (0..stored - pending).map(|_| read(&a, 0)).collect();
    let first = n0 - u32::from(stored) + 1;
    assert_eq!(
        got,
        (first..=n0).collect::<Vec<_>>(),
        "the newest records survive"
    );
    assert_eq!(atomic_erase(&a, 0, stored), SPOOL_OK);
    assert_mirrored(&a, &ids, "after the ACK");
    assert_eq!(spool_check(), SPOOL_OK);
    assert_eq!(spool_deinit(), SPOOL_OK);
}

/// Item 2: the validation idiom (read k, then `no_pending -= k`) un-reads: the upload
/// that follows reads the same records again, and its ACK erases exactly those. Before the
/// fix the library kept its own pending count and re-mirrored it: the upload read records
/// k.. and the ACK erased records 0..k-1, which had never been sent.
#[test]
fn lowering_no_pending_unreads_like_mm1() {
    let _g = serial();
    init(0);
    let a = Arrays::new(30, &[1000, 1000]);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    for v in 1..=10 {
        write(&a, 0, v);
    }
    // validate_test_data_pattern: read 5, restore the pending count.
    let seen: Vec<u32> = (0..5).map(|_| read(&a, 0)).collect();
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    let c = a.csd_at(0);
    a.set_no_pending(0, c.no_pending - 5);
    // The upload: reads 4, ACKs 4.
    let sent: Vec<u32> = (0..4).map(|_| read(&a, 0)).collect();
    assert_eq!(
        sent,
        [1, 2, 3, 4],
        "MM1: reads restart at offset no_pending"
    );
    assert_eq!(a.counts(0), (10, 4));
    assert_eq!(atomic_erase(&a, 0, 4), SPOOL_OK);
    assert_eq!(a.counts(0), (6, 0));
    assert_eq!(read(&a, 0), 5, "record 5 was un-read, not erased");
    // Partial: 3 pending, lowered by 2: the next read is the record at offset 1.
    assert_eq!((read(&a, 0), read(&a, 0)), (6, 7));
    a.set_no_pending(0, 1);
    assert_eq!(read(&a, 0), 6);
    assert_eq!(a.counts(0), (6, 2));
    // take_data_state_snapshot through the MM2 count: un-read shows as new samples.
    a.set_no_pending(0, 0);
    // SAFETY: element pointers of a registered pair.
    let fresh = unsafe { imx_get_new_sample_count(u32::from(SOURCE), a.csb(), a.csd()) };
    assert_eq!(fresh, 6);
    assert_eq!(a.counts(0), (6, 0));
    let m = mirror_stats();
    assert_eq!(
        (m.pending_lowered, m.records_unread, m.pending_refused),
        (3, 9, 0)
    );
    assert_eq!(spool_check(), SPOOL_OK);
}

/// Item 2: a lowered `no_pending` followed by an ACK of more than is still handed out
/// erases nothing; a raised (or garbage) value is refused, counted, and never trusted.
#[test]
fn nothing_is_erased_that_was_not_handed_out_and_raises_are_refused() {
    let _g = serial();
    init(0);
    let a = Arrays::new(40, &[1000]);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    for v in 1..=8 {
        write(&a, 0, v);
    }
    assert_eq!((read(&a, 0), read(&a, 0), read(&a, 0)), (1, 2, 3));
    a.set_no_pending(0, 0);
    assert_eq!(atomic_erase(&a, 0, 3), SPOOL_ERR_ACK_TOO_MANY);
    assert_eq!(a.counts(0), (8, 0), "nothing erased");
    // Raised: 2 handed out, the firmware writes 6.
    assert_eq!((read(&a, 0), read(&a, 0)), (1, 2));
    a.set_no_pending(0, 6);
    assert_eq!(read(&a, 0), 3, "the raise moved nothing");
    assert_eq!(a.counts(0), (8, 3), "the mirror is written back");
    assert_eq!(mirror_stats().pending_refused, 1);
    a.set_no_pending(0, 0x5555);
    assert_eq!(atomic_erase(&a, 0, 4), SPOOL_ERR_ACK_TOO_MANY);
    assert_eq!(a.counts(0), (8, 3));
    assert_eq!(mirror_stats().pending_refused, 2);
    assert_eq!(atomic_erase(&a, 0, 3), SPOOL_OK);
    assert_eq!(a.counts(0), (5, 0));
    assert_eq!(read(&a, 0), 4);
    assert_eq!(spool_check(), SPOOL_OK);
}

/// Item 2 with item 1: a lowered `no_pending` is not overwritten by the refresh another
/// sensor's overflow causes; it is honoured first.
#[test]
fn a_lowered_no_pending_survives_a_refresh_caused_by_another_sensor() {
    let _g = serial();
    init(0);
    let a = Arrays::new(50, &[1000, 1000]);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    // Both sensors exist before the edit (a new sensor alone refreshes every entry).
    write(&a, 1, 1);
    assert_eq!(read(&a, 1), 1);
    let total = stats().store.sectors_total;
    let mut n0 = 0u32;
    while stats().store.sectors_used * 2 < total {
        n0 += 1;
        write(&a, 0, n0);
    }
    assert_eq!((read(&a, 0), read(&a, 0)), (1, 2));
    a.set_no_pending(0, 0);
    let refreshes = mirror_stats().refreshes;
    let mut n1 = 1u32;
    while stats().store.dropped == 0 {
        n1 += 1;
        write(&a, 1, n1);
        assert_eq!(read(&a, 1), n1);
    }
    assert_eq!(
        mirror_stats().refreshes,
        refreshes,
        "the drop re-mirrors only the victim's entries (no full refresh)"
    );
    assert_mirrored(&a, &[50, 51], "after the drop");
    assert_eq!(a.counts(0).1, 0, "the firmware's lowering stands");
    assert_eq!(read(&a, 0), 1, "and reads restart at the oldest record");
    assert_eq!(mirror_stats().records_unread, 2);
    assert_eq!(spool_check(), SPOOL_OK);
}

/// Model check of the legacy API with shared ids and firmware edits of `no_pending`:
/// random writes, reads, lowerings, raises, ACKs, erases and reverts over entries
/// mapping to two sensors; after every step every entry shows its sensor's counts and
/// every read returns what MM1 would.
#[test]
fn random_legacy_calls_with_firmware_edits_match_the_model() {
    #[derive(Default)]
    struct Sensor {
        values: Vec<u32>,
        erased: usize,
        pending: usize,
    }
    let _g = serial();
    init(0);
    let ids = [60, 61, 60, 61, 60];
    let a = Arrays::new(0, &[1000; 5]);
    for (e, &id) in ids.iter().enumerate() {
        a.set_id(e, id);
    }
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut model: HashMap<u32, Sensor> = HashMap::new();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // Sensors whose entries the firmware edited since the library last touched them.
    let mut dirty = std::collections::HashSet::new();
    let mut next = 1u32;
    for step in 0..4000 {
        let e = rnd(5) as usize;
        let s = model.entry(ids[e]).or_default();
        let op = rnd(8);
        if op != 5 {
            // Every call on an entry settles every entry of its sensor.
            dirty.remove(&ids[e]);
        }
        match op {
            0..=2 => {
                write(&a, e as u16, next);
                s.values.push(next);
                next += 1;
            }
            3 | 4 => {
                let want = s.values.get(s.erased + s.pending).copied();
                let got = read(&a, e as u16);
                assert_eq!(got, want.unwrap_or(0), "step {step}: read entry {e}");
                if want.is_some() {
                    s.pending += 1;
                }
            }
            5 => {
                if s.pending > 0 {
                    let k = 1 + rnd(s.pending as u64) as usize;
                    s.pending -= k;
                    a.set_no_pending(e, s.pending as u16);
                } else if !dirty.contains(&ids[e]) {
                    // A raise (over a lowering not yet seen it would replace it, which
                    // MM1 would read as a new offset; the model does not go there).
                    a.set_no_pending(e, 1 + rnd(100) as u16);
                }
                dirty.insert(ids[e]);
            }
            6 => {
                let n = rnd(4) as usize;
                let st = atomic_erase(&a, e as u16, n as u16);
                if n <= s.pending {
                    assert_eq!(st, SPOOL_OK, "step {step}");
                    s.erased += n;
                    s.pending -= n;
                } else {
                    assert_eq!(st, SPOOL_ERR_ACK_TOO_MANY, "step {step}");
                }
            }
            _ => {
                if rnd(2) == 0 {
                    // SAFETY: registered arrays.
                    unsafe { revert_tsd_evt_pending_data(a.csb(), a.csd(), 5) };
                    for s in model.values_mut() {
                        s.pending = 0;
                    }
                    dirty.clear();
                } else {
                    // The erase-exactly-n idiom.
                    let n = rnd(s.pending as u64 + 1) as usize;
                    let saved = s.pending;
                    a.set_no_pending(e, n as u16);
                    // SAFETY: registered arrays.
                    unsafe { erase_tsd_evt(a.csb(), a.csd(), e as u16) };
                    a.set_no_pending(e, (saved - n) as u16);
                    s.erased += n;
                    s.pending -= n;
                    dirty.insert(ids[e]);
                }
            }
        }
        // A firmware edit is applied at the next call that touches the sensor; every
        // entry of every other sensor must show the truth.
        for (f, &id) in ids.iter().enumerate() {
            if dirty.contains(&id) || !model.contains_key(&id) {
                continue;
            }
            let m = &model[&id];
            let want = ((m.values.len() - m.erased) as u16, m.pending as u16);
            assert_eq!(a.counts(f), want, "step {step}: entry {f}");
        }
    }
    // Settle every sensor through a call that changes nothing, then compare all.
    for e in 0..5 {
        assert_eq!(atomic_erase(&a, e, 0), SPOOL_OK);
    }
    for (f, &id) in ids.iter().enumerate() {
        let m = &model[&id];
        let want = ((m.values.len() - m.erased) as u16, m.pending as u16);
        assert_eq!(truth(SOURCE, id), want, "store, sensor {id}");
        assert_eq!(a.counts(f), want, "entry {f}");
    }
    let ms = mirror_stats();
    assert!(ms.pending_lowered > 0 && ms.pending_refused > 0, "{ms:?}");
    assert_eq!(spool_check(), SPOOL_OK);
}
