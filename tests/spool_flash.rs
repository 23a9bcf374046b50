//! The spool over `NorFlashStorage` (feature `_mock-flash`): threshold flush as
//! one batch, oldest-first reads wherever records live, persisted
//! acknowledgements across a reset, shutdown flush with progress and cancel,
//! eviction accounting.

use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::{Error, Spool};
use sensor_spool::storage::mock_flash::{MockFlash, Tear};
use sensor_spool::storage::{NorFlashStorage, Storage};

const SECTORS: usize = 64;
type P = Pool<Tier<32, SECTORS, 2>, Tier<64, 0, 0>, Tier<128, 0, 0>>;
type Flash = MockFlash<4, 1024>;
type Fs = NorFlashStorage<Flash, 1024>;
type S = Spool<P, 4, SECTORS, 4, Fs, 4>;

const TSD: SensorKey = SensorKey { source: 1, id: 1 };
const EVT: SensorKey = SensorKey { source: 1, id: 2 };
const EVT2: SensorKey = SensorKey { source: 2, id: 9 };
const RATE: u32 = 1000;
const T0: u64 = 1_700_000_000_000;

fn spool(flash: Flash) -> S {
    let mut s = Spool::new(
        P::new(),
        NorFlashStorage::<_, 1024>::new(flash).unwrap(),
        OverflowPolicy::DropOldestUnsent,
    );
    s.register(TSD, RATE).unwrap();
    s.register(EVT, 0).unwrap();
    s.register(EVT2, 0).unwrap();
    s.recover_storage().unwrap();
    s
}

fn value(key: SensorKey, n: u32) -> u32 {
    n.wrapping_mul(2_654_435_761) ^ key.id
}

/// Writes `n` records per sensor, numbered from `from`.
fn write(s: &mut S, from: u32, n: u32) {
    for k in from..from + n {
        let h = s.lookup(TSD).unwrap();
        s.write(h, value(TSD, k), T0 + k as u64 * RATE as u64)
            .unwrap();
        let h = s.lookup(EVT).unwrap();
        s.write(h, value(EVT, k), T0 + k as u64 * 7000).unwrap();
        if k % 3 == 0 {
            let h = s.lookup(EVT2).unwrap();
            s.write(h, value(EVT2, k / 3), T0 + k as u64 * 1000)
                .unwrap();
        }
    }
}

/// Reads `n` records of `key`, checking they are records `from..from + n`.
fn read_check(s: &mut S, key: SensorKey, from: u32, n: u32) {
    let h = s.lookup(key).unwrap();
    for k in from..from + n {
        let r = s
            .read(h)
            .unwrap_or_else(|e| panic!("{key:?} record {k}: {e:?}"));
        assert_eq!(r.seq, k, "{key:?}: out of order");
        assert_eq!(r.value, value(key, k), "{key:?} record {k}");
        if key == TSD {
            assert_eq!(r.time_ms, T0 + k as u64 * RATE as u64, "TSD time of {k}");
        } else if key == EVT {
            assert_eq!(r.time_ms, (T0 + k as u64 * 7000) / 1000 * 1000);
        }
    }
}

#[test]
fn threshold_flush_is_one_batch_and_reads_stay_in_order() {
    let mut s = spool(Flash::new(16, 1));
    write(&mut s, 0, 600);
    let sp = s.spill_stats();
    let fs = s.storage().flash().stats();
    eprintln!("spill: {sp:?}, flash: {fs:?}");
    assert!(sp.batches > 0 && sp.flushed > 0, "no flush happened");
    // One program operation per frame (frames fit the 1 KiB staging buffer):
    // the batches and the sequence-number reservations.
    // A batch that does not fit the rest of a sector is split over two
    // frames (the reservation frames shift where sectors fill up).
    let reserves = s.storage().stats().reserves as u64;
    assert!(reserves > 0);
    let frames = sp.batches as u64 + reserves;
    assert!(
        (frames..=frames + sp.batches as u64).contains(&fs.programs),
        "{} programs for {frames} frames",
        fs.programs
    );
    assert_eq!(sp.errors, 0);
    // RAM stays below the threshold after every write.
    assert!(s.stats().sectors_used as usize * 100 <= 80 * SECTORS + 100);
    assert_eq!(s.check(), Ok(()));
    let st = s.sensor_stats(s.lookup(TSD).unwrap()).unwrap();
    assert_eq!(st.count, 600);
    // Everything comes back oldest first, from flash then RAM.
    read_check(&mut s, TSD, 0, 600);
    read_check(&mut s, EVT, 0, 600);
    read_check(&mut s, EVT2, 0, 200);
    for k in [TSD, EVT, EVT2] {
        assert_eq!(s.read(s.lookup(k).unwrap()), Err(Error::NoData));
    }
    // Revert: the same records again.
    let h = s.lookup(TSD).unwrap();
    assert_eq!(s.revert(h).unwrap(), 600);
    read_check(&mut s, TSD, 0, 10);
    assert_eq!(s.ack(h, 11), Err(Error::AckTooMany));
    s.ack(h, 10).unwrap();
    read_check(&mut s, TSD, 10, 590);
    assert_eq!(s.ack_all(h).unwrap(), 590);
    assert_eq!(s.sensor_stats(h).unwrap().count, 0);
    assert_eq!(s.check(), Ok(()));
}

#[test]
fn acknowledgements_and_flushed_records_survive_a_reset() {
    let mut s = spool(Flash::new(16, 1));
    write(&mut s, 0, 500);
    let h = s.lookup(EVT).unwrap();
    read_check(&mut s, EVT, 0, 120);
    s.ack(h, 100).unwrap(); // 20 stay pending
    let in_flash = s.spill_stats().in_storage;
    assert!(in_flash > 0);
    // Power cut: RAM is gone, the flash image stays.
    let image = s.storage().flash().image().to_vec();
    drop(s);
    let mut s = spool(Flash::from_image(&image, 2));
    assert_eq!(s.check(), Ok(()));
    let st = s.sensor_stats(s.lookup(EVT).unwrap()).unwrap();
    assert!(st.count > 0);
    // The acknowledged 100 never come back; the pending 20 do (NACK on reset).
    read_check(&mut s, EVT, 100, st.count);
    let n = s.sensor_stats(s.lookup(TSD).unwrap()).unwrap().count;
    read_check(&mut s, TSD, 0, n);
    // New records continue the sequence after the flushed ones.
    let next = s.sensor_stats(s.lookup(TSD).unwrap()).unwrap().next_seq;
    assert!(next > 0);
    let h = s.lookup(TSD).unwrap();
    s.write(h, 1, T0).unwrap();
    assert_eq!(s.sensor_stats(h).unwrap().next_seq, next + 1);
}

#[test]
fn shutdown_flush_reports_progress_then_101_and_cancel_is_safe() {
    let mut s = spool(Flash::new(32, 1));
    s.set_flush_threshold(100);
    write(&mut s, 0, 100);
    assert_eq!(s.spill_stats().batches, 0);
    assert!(s.flush_progress() <= 100);
    // Cancel after one step: consistent, nothing lost.
    s.flush_all_start();
    let p1 = s.flush_all_step().unwrap();
    s.cancel_flush();
    assert_eq!(s.check(), Ok(()));
    assert!(p1 > 0 && p1 <= 100, "first step progress {p1}");
    assert!(s.stats().sectors_used > 0, "cancel left RAM records in RAM");
    // Run it to the end: progress never goes down and ends at 101.
    s.flush_all_start();
    let mut last = 0;
    let mut steps = 0;
    let mut seen = Vec::new();
    loop {
        let p = s.flush_all_step().unwrap();
        seen.push(p);
        assert!(p >= last, "progress went back {last} -> {p}");
        last = p;
        steps += 1;
        if p == 101 {
            break;
        }
        assert!(steps < 1000);
    }
    eprintln!("shutdown flush: {steps} steps, progress {seen:?}");
    assert_eq!(s.stats().sectors_used, 0);
    assert_eq!(s.check(), Ok(()));
    let image = s.storage().flash().image().to_vec();
    let mut s = spool(Flash::from_image(&image, 3));
    read_check(&mut s, TSD, 0, 100);
    read_check(&mut s, EVT, 0, 100);
    read_check(&mut s, EVT2, 0, 34);
}

#[test]
fn eviction_is_oldest_first_and_counted() {
    // 4 KiB of flash for far more data: the oldest sectors are evicted.
    let mut s = spool(Flash::new(4, 1));
    write(&mut s, 0, 3000);
    let st = s.sensor_stats(s.lookup(EVT).unwrap()).unwrap();
    let h = s.lookup(EVT).unwrap();
    let first = s.read(h).unwrap();
    eprintln!(
        "eviction: EVT count {} lost {}, first readable seq {}",
        st.count, st.lost, first.seq
    );
    assert!(first.seq > 0, "nothing was evicted");
    assert!(st.lost > 0);
    let rest = s.sensor_stats(h).unwrap().available;
    read_check(&mut s, EVT, first.seq + 1, rest);
    assert_eq!(s.check(), Ok(()));
}

/// Power cut at every program/erase of a spool workload (writes with threshold
/// flushes, evictions, reads, acknowledgements, and now and then a full drain
/// that acknowledges records still in RAM, which writes no mark): after remount
/// and `recover_storage`, every sensor's records come back in order and
/// genuine, none that was acknowledged before the cut comes back or is counted
/// as owed. (Completeness of flushed records under cuts is checked by the
/// storage-level sweeps in `flash_powerloss.rs`.)
#[test]
fn power_cut_anywhere_in_a_spool_workload() {
    // Unoptimized builds run a shorter workload (still evicting).
    const STEPS: u32 = if cfg!(debug_assertions) { 1500 } else { 4000 };
    /// `acked[j]`: sequence number after the last record of sensor `j` whose
    /// acknowledgement returned `Ok`.
    fn run(s: &mut S, acked: &mut [u32; 3], steps: u32) {
        let keys = [TSD, EVT, EVT2];
        for k in 0..steps {
            write(s, k, 1);
            if k % 40 == 39 {
                // Every 10th time: drain everything, RAM records included.
                let budget = if k % 400 == 399 { u32::MAX } else { 25 };
                for (j, key) in keys.iter().enumerate() {
                    let h = s.lookup(*key).unwrap();
                    let mut n = 0;
                    let mut last = None;
                    while n < budget {
                        match s.read(h) {
                            Ok(r) => last = Some(r.seq),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                    if s.ack(h, n).is_ok()
                        && let Some(l) = last
                    {
                        acked[j] = l + 1;
                    }
                    if s.storage().flash().is_dead() {
                        return;
                    }
                }
            }
            if s.storage().flash().is_dead() {
                return;
            }
        }
    }
    // Count the program/erase operations of the whole workload.
    let mut s = spool(Flash::new(8, 1));
    let mut acked = [0u32; 3];
    run(&mut s, &mut acked, STEPS);
    let total = s.storage().flash().ops();
    let mut cuts = 0;
    for k in 0..total {
        let mut flash = Flash::new(8, 1);
        flash.cut_after(Some(k));
        // Every tear model in turn (ECC-strict: the flash that powers up again
        // remembers which units the cut operation had started to program).
        flash.set_tear(Tear::ALL[k as usize % Tear::ALL.len()]);
        let mut s = spool(flash);
        let mut acked = [0u32; 3];
        run(&mut s, &mut acked, STEPS);
        assert!(s.storage().flash().is_dead());
        let mut flash = s.storage().flash().clone();
        flash.revive();
        let mut s = spool(flash);
        assert_eq!(s.check(), Ok(()));
        for (j, key) in [TSD, EVT, EVT2].into_iter().enumerate() {
            let h = s.lookup(key).unwrap();
            // Nothing acknowledged before the cut is owed again (the
            // acknowledgement in flight at the cut may or may not have landed).
            let st = s.sensor_stats(h).unwrap();
            let start = st.next_seq - st.count;
            assert!(
                st.count == 0 || start >= acked[j],
                "cut {k}: {key:?} owes {}..{} after recovery, acknowledged up to {}",
                start,
                st.next_seq,
                acked[j]
            );
            let mut last: Option<u32> = None;
            while let Ok(r) = s.read(h) {
                // In order, genuine, never one acknowledged before the cut.
                assert!(last.is_none_or(|l| r.seq > l), "cut {k}: order");
                assert_eq!(
                    r.value,
                    value(key, r.seq),
                    "cut {k}: {key:?} record {}",
                    r.seq
                );
                assert!(
                    r.seq >= acked[j],
                    "cut {k}: acknowledged record {} back",
                    r.seq
                );
                last = Some(r.seq);
            }
        }
        cuts += 1;
    }
    eprintln!("flash power-loss spool workload: {cuts} cut points, {total} flash operations");
}

/// Storage fails (flash dead) while sensors hold flash parts; the overflow
/// policy then drops the oldest unsent RAM records, which sit right after the
/// flash part. The store stays consistent after every write, and once the flash
/// works again every sensor delivers its flash records, then the dropped ones
/// counted lost, then its RAM records, all in order.
#[test]
fn ram_drop_after_a_flash_part_while_storage_fails() {
    let mut s = spool(Flash::new(16, 1));
    write(&mut s, 0, 300);
    assert!(s.spill_stats().in_storage > 0, "no flash part");
    let before = s.spill_stats();
    // Every program/erase from now on fails.
    let ops = s.storage().flash().ops();
    s.storage_mut().flash_mut().cut_after(Some(ops));
    for k in 300..900 {
        let h = s.lookup(EVT).unwrap();
        s.write(h, value(EVT, k), T0 + k as u64 * 7000).unwrap();
        assert_eq!(s.check(), Ok(()), "after EVT write {k}");
    }
    assert!(
        s.spill_stats().errors > before.errors,
        "storage never failed"
    );
    assert_eq!(s.spill_stats().flushed, before.flushed);
    s.storage_mut().flash_mut().revive();
    // EVT: flash records, then a gap (dropped), then RAM records, in order.
    // Records missing right after pending ones are counted lost once the
    // uploader has acknowledged what it holds (read says NoData until then).
    let h = s.lookup(EVT).unwrap();
    let st = s.sensor_stats(h).unwrap();
    let (mut expect, mut got, mut acked) = (0u32, 0u32, 0u32);
    loop {
        match s.read(h) {
            Ok(r) => {
                assert!(
                    r.seq >= expect,
                    "EVT out of order: {} after {expect}",
                    r.seq
                );
                assert_eq!(r.value, value(EVT, r.seq), "EVT record {}", r.seq);
                expect = r.seq + 1;
                got += 1;
            }
            Err(Error::NoData) => {
                let pending = s.sensor_stats(h).unwrap().pending;
                if pending == 0 {
                    break;
                }
                acked += s.ack_all(h).unwrap();
                assert_eq!(s.check(), Ok(()));
            }
            Err(e) => panic!("EVT read after record {expect}: {e:?}"),
        }
    }
    assert_eq!(expect, 900, "EVT: newest record missing");
    let after = s.sensor_stats(h).unwrap();
    eprintln!("EVT: before reads {st:?}, after {after:?}, delivered {got}");
    assert!(got < 900 && after.lost > 0, "nothing was dropped");
    assert_eq!(got + after.lost as u32, 900, "EVT: delivered + lost");
    assert_eq!(acked, got);
    assert_eq!(after.count, 0);
    assert_eq!(s.check(), Ok(()));
    // The storage unmounted itself on the first failure and was mounted again.
    assert!(s.spill_stats().remounts >= 1);
    // The other sensors lost nothing.
    read_check(&mut s, TSD, 0, 300);
    read_check(&mut s, EVT2, 0, 100);
}

/// A flash failure at every program/erase index of a spool workload, with the
/// spool kept running: the flash stays dead for a while (flushes, flash reads
/// and acknowledgements fail; writes go on in RAM), then works again and the
/// spool mounts it again by itself. After a final drain, per sensor: every
/// record delivered is genuine and in order, none acknowledged is delivered
/// again, and acknowledged + counted lost == written, exactly.
#[test]
fn flash_failure_anywhere_then_the_spool_carries_on() {
    const STEPS: u32 = if cfg!(debug_assertions) { 800 } else { 2000 };
    const DEAD_FOR: u32 = 150;
    const KEYS: [SensorKey; 3] = [TSD, EVT, EVT2];

    #[derive(Default)]
    struct Uploader {
        /// Sequence number after the last acknowledged record, per sensor.
        acked_upto: [u32; 3],
        /// Records acknowledged that the library had not counted lost.
        acked: [u32; 3],
    }

    impl Uploader {
        /// Reads up to `budget` records of sensor `j` and acknowledges them;
        /// reverts if the acknowledgement fails. Returns whether it read nothing.
        fn session(&mut self, s: &mut S, j: usize, budget: u32, k: u64) -> bool {
            let key = KEYS[j];
            let h = s.lookup(key).unwrap();
            let mut n = 0;
            let mut last: Option<u32> = None;
            while n < budget {
                match s.read(h) {
                    Ok(r) => {
                        assert!(
                            r.seq >= self.acked_upto[j] && last.is_none_or(|l| r.seq > l),
                            "cut {k}: {key:?} record {} out of order (acked up to {}, last {last:?})",
                            r.seq,
                            self.acked_upto[j]
                        );
                        assert_eq!(r.value, value(key, r.seq), "cut {k}: {key:?} {}", r.seq);
                        last = Some(r.seq);
                        n += 1;
                    }
                    Err(Error::NoData | Error::Storage) => break,
                    Err(e) => panic!("cut {k}: {key:?} read: {e:?}"),
                }
            }
            let gone = s.evicted_in_flight(h).unwrap();
            let pending = s.sensor_stats(h).unwrap().pending + gone;
            if pending == 0 {
                return true;
            }
            match s.ack(h, pending) {
                Ok(()) => {
                    self.acked[j] += pending - gone.min(pending);
                    if let Some(l) = last {
                        self.acked_upto[j] = l + 1;
                    }
                }
                Err(Error::Storage) => {
                    s.revert(h).unwrap();
                }
                Err(e) => panic!("cut {k}: {key:?} ack: {e:?}"),
            }
            false
        }
    }

    fn run(s: &mut S, up: &mut Uploader, k: u64) {
        let mut dead_since: Option<u32> = None;
        for step in 0..STEPS {
            write(s, step, 1);
            if step % 40 == 39 {
                for j in 0..3 {
                    up.session(s, j, 25, k);
                }
            }
            assert_eq!(s.check(), Ok(()), "cut {k}: step {step}");
            if s.storage().flash().is_dead() {
                let since = *dead_since.get_or_insert(step);
                if step >= since + DEAD_FOR {
                    s.storage_mut().flash_mut().revive();
                }
            }
        }
        // Drain: records missing after pending ones are counted once those
        // are acknowledged, so sessions go on until one reads nothing.
        // A failure during the drain: the flash works again at once.
        for (j, key) in KEYS.iter().enumerate() {
            let mut sessions = 0;
            loop {
                if s.storage().flash().is_dead() {
                    s.storage_mut().flash_mut().revive();
                }
                if up.session(s, j, u32::MAX, k) {
                    break;
                }
                sessions += 1;
                assert!(sessions < 100, "cut {k}: {key:?} never drains");
            }
        }
    }

    let mut s = spool(Flash::new(8, 1));
    run(&mut s, &mut Uploader::default(), u64::MAX);
    let total = s.storage().flash().ops();
    let (mut cuts, mut remounts, mut lost_total) = (0u64, 0u64, 0u64);
    for k in 0..total {
        let mut flash = Flash::new(8, 1);
        flash.cut_after(Some(k));
        let mut s = spool(flash);
        let mut up = Uploader::default();
        run(&mut s, &mut up, k);
        assert!(
            !s.storage().flash().is_dead(),
            "cut {k}: flash never revived"
        );
        for (j, key) in KEYS.iter().enumerate() {
            let st = s.sensor_stats(s.lookup(*key).unwrap()).unwrap();
            assert_eq!(st.count, 0, "cut {k}: {key:?} not drained");
            assert_eq!(
                up.acked[j] + st.lost as u32,
                st.next_seq,
                "cut {k}: {key:?}: acknowledged {} + lost {} != written",
                up.acked[j],
                st.lost
            );
            lost_total += st.lost as u64;
        }
        remounts += s.spill_stats().remounts as u64;
        cuts += 1;
    }
    assert!(remounts >= cuts, "some failure did not lead to a remount");
    eprintln!(
        "flash failure while running: {cuts} failure points, {total} flash operations, \
         {remounts} remounts, {lost_total} records counted lost in all"
    );
}
