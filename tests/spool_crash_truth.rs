//! Crash-truth regressions of the spool over NOR flash (feature `_mock-flash`):
//! what an acknowledgement, a clear, a failed flash call and a finished shutdown
//! flush leave behind, checked after a power cycle (the flash image mounted
//! again by a new spool).
//!
//! Each test failed on the code before its fix (see the commit messages).

use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::Spool;
use sensor_spool::storage::mock_flash::{Fault, MockFlash, Tear};
use sensor_spool::storage::{LogEntry, NorFlashStorage, Storage};

const SECTORS: usize = 64;
type P = Pool<Tier<32, SECTORS, 2>, Tier<64, 0, 0>, Tier<128, 0, 0>>;
type Flash = MockFlash<4, 1024>;
type Fs = NorFlashStorage<Flash, 1024>;
type S = Spool<P, 4, SECTORS, 4, Fs, 4>;

const EVT: SensorKey = SensorKey { source: 1, id: 2 };
const EVT2: SensorKey = SensorKey { source: 2, id: 9 };
const T0: u64 = 1_700_000_000_000;

fn spool(flash: Flash) -> S {
    let mut s = Spool::new(
        P::new(),
        NorFlashStorage::<_, 1024>::new(flash).unwrap(),
        OverflowPolicy::DropOldestUnsent,
    );
    s.register(EVT, 0).unwrap();
    s.register(EVT2, 0).unwrap();
    s.recover_storage().unwrap();
    s
}

/// Power cycle: RAM is gone, the flash keeps its contents (and its strict-mode
/// bookkeeping).
fn reboot(s: S) -> S {
    let mut flash = s.storage().flash().clone();
    flash.revive();
    spool(flash)
}

fn value(key: SensorKey, n: u32) -> u32 {
    n.wrapping_mul(2_654_435_761) ^ key.id
}

fn write(s: &mut S, key: SensorKey, from: u32, n: u32) {
    let h = s.lookup(key).unwrap();
    for k in from..from + n {
        s.write(h, value(key, k), T0 + k as u64 * 1000).unwrap();
    }
}

/// Reads everything unsent of `key`; returns the sequence numbers.
fn drain(s: &mut S, key: SensorKey) -> Vec<u32> {
    let h = s.lookup(key).unwrap();
    let mut got = Vec::new();
    while let Ok(r) = s.read(h) {
        assert_eq!(r.value, value(key, r.seq), "record {} corrupted", r.seq);
        got.push(r.seq);
        assert!(got.len() < 100_000);
    }
    got
}

/// A flash call that reports failure after its data landed: the records of
/// that batch stay in RAM; acknowledging them there must persist a mark, or
/// the frame brings them back after a reboot.
#[test]
fn records_of_a_failed_append_that_landed_do_not_come_back_once_acknowledged() {
    let mut s = spool(Flash::new(16, 1));
    s.set_flush_threshold(100);
    write(&mut s, EVT, 0, 40);
    // The next flash operation (the batch's program: the first write after
    // the mount, its sequence-number reservation, opened the fresh sector)
    // lands in full and reports an error.
    let next = s.storage().flash().ops();
    s.storage_mut().flash_mut().fail_at(next, Fault::All, false);
    assert!(s.flush().is_err(), "the driver reported a failure");
    assert_eq!(s.spill_stats().errors, 1);
    let h = s.lookup(EVT).unwrap();
    assert_eq!(s.sensor_stats(h).unwrap().in_ram, 40, "records stay in RAM");
    // Deliver all 40 from RAM and acknowledge them.
    assert_eq!(drain(&mut s, EVT), (0..40).collect::<Vec<_>>());
    s.ack(h, 40).unwrap();
    let mut s = reboot(s);
    let back = drain(&mut s, EVT);
    assert!(back.is_empty(), "acknowledged records came back: {back:?}");
    // And new records continue after them.
    write(&mut s, EVT, 40, 1);
    let r = s.read(s.lookup(EVT).unwrap()).unwrap();
    assert!(r.seq >= 40, "sequence number {} reused", r.seq);
}

/// The same batch written again after the failure: after a reboot each
/// record comes back once.
#[test]
fn a_batch_retried_after_a_failure_that_landed_comes_back_once() {
    let mut s = spool(Flash::new(16, 1));
    s.set_flush_threshold(100);
    write(&mut s, EVT, 0, 40);
    let next = s.storage().flash().ops();
    s.storage_mut().flash_mut().fail_at(next, Fault::All, false);
    assert!(s.flush().is_err());
    write(&mut s, EVT, 40, 40);
    s.flush_all().unwrap();
    let mut s = reboot(s);
    assert_eq!(drain(&mut s, EVT), (0..80).collect::<Vec<_>>());
}

/// After a shutdown flush that reached 101, writing goes on: the threshold
/// spill must work again without `cancel_flush` (RAM use stays at the 80 %
/// line instead of filling up to the overflow path).
#[test]
fn threshold_spill_resumes_after_a_finished_shutdown_flush() {
    let mut s = spool(Flash::new(16, 1));
    write(&mut s, EVT, 0, 10);
    s.flush_all().unwrap();
    let line = (SECTORS as u32 * 80).div_ceil(100);
    let mut peak = 0;
    for k in 10..1000 {
        write(&mut s, EVT, k, 1);
        peak = peak.max(s.stats().sectors_used);
    }
    assert!(
        peak <= line,
        "RAM use reached {peak} of {SECTORS} sectors (threshold {line})"
    );
    let h = s.lookup(EVT).unwrap();
    let st = s.sensor_stats(h).unwrap();
    assert!(st.count > st.in_ram, "everything stayed in RAM");
    assert_eq!(st.lost, 0);
}

/// `clear` whose mark opens a sector that evicts the cleared records: they
/// were cleared, not lost.
#[test]
fn a_clear_whose_mark_evicts_its_own_records_does_not_count_them_lost() {
    // Small flash: 4 sectors, so the mark's sector opening evicts.
    let mut found = false;
    for fill in 1..1200u32 {
        let mut s = spool(Flash::new(4, 1));
        write(&mut s, EVT, 0, fill);
        s.flush_all().unwrap();
        // After a reboot the next frame opens a sector (the newest sector's
        // tail keeps room for marks until then).
        let mut s = reboot(s);
        let h = s.lookup(EVT).unwrap();
        let stored = s.sensor_stats(h).unwrap().count;
        let lost0 = s.spill_stats().lost;
        let before = s.storage().stats().evicted_sectors;
        let n = s.clear(h).unwrap();
        let evicted = s.storage().stats().evicted_sectors - before;
        assert_eq!(n, stored, "clear returns every record it dropped");
        assert_eq!(
            s.spill_stats().lost,
            lost0,
            "cleared records counted lost (fill {fill})"
        );
        assert_eq!(s.sensor_stats(h).unwrap().lost as u32, lost0);
        if evicted > 0 {
            found = true;
            break;
        }
    }
    assert!(found, "no fill made the clear's mark evict");
}

/// Records evicted while pending and then acknowledged: the acknowledgement
/// writes a mark that covers them (an eviction can fail to reach the medium,
/// a file can come back after a crash: a mark must cover every acknowledged
/// record either way).
#[test]
fn acknowledging_records_evicted_in_flight_writes_a_mark() {
    let mut checked = 0;
    for fill in (200..1200u32).step_by(97) {
        let mut s = spool(Flash::new(4, 1));
        s.set_flush_threshold(100);
        write(&mut s, EVT, 0, fill);
        s.flush_all().unwrap();
        let h = s.lookup(EVT).unwrap();
        // Hand out everything stored, then fill the flash with another sensor
        // until some of them are evicted while pending.
        let handed = drain(&mut s, EVT);
        let mut k = 0;
        while s.evicted_in_flight(h).unwrap() == 0 && k < 5000 {
            write(&mut s, EVT2, k, 50);
            s.flush_all().unwrap();
            k += 50;
        }
        let gone = s.evicted_in_flight(h).unwrap();
        if gone == 0 {
            continue;
        }
        // Acknowledge exactly the evicted ones (the oldest handed out).
        s.ack(h, gone).unwrap();
        let mut marks = Vec::new();
        s.storage_mut()
            .recover(|e| {
                if let LogEntry::Ack { key, upto } = e
                    && key == EVT
                {
                    marks.push(upto);
                }
            })
            .unwrap();
        assert!(
            marks.iter().any(|&u| u >= handed[0] + gone),
            "fill {fill}: no mark covers the {gone} acknowledged records: {marks:?}"
        );
        checked += 1;
    }
    assert!(checked > 0);
    eprintln!("evicted in flight then acknowledged: {checked} cases");
}

/// A flash driver that fails at operation `k` after writing all, part or none
/// of it, once or for good; the firmware keeps running (writes, uploads,
/// acknowledgements, flushes; failed acknowledgements are reverted) for a
/// while on the failing flash, then reboots. After recovery: the mount
/// succeeds, no record acknowledged before the reboot comes back, every record
/// delivered is genuine, in order and delivered once.
#[test]
fn driver_fault_anywhere_then_more_calls_then_a_reboot() {
    const STEPS: u32 = if cfg!(debug_assertions) { 1500 } else { 6000 };
    const AFTER: u32 = 60;
    const KEYS: [SensorKey; 2] = [EVT, EVT2];
    /// Runs the workload from `from`; returns the next step. `acked[j]`: the
    /// sequence number after sensor j's last acknowledged record.
    fn run(s: &mut S, acked: &mut [u32; 2], from: u32, steps: u32) -> u32 {
        for k in from..from + steps {
            let h = s.lookup(EVT).unwrap();
            let _ = s.write(h, value(EVT, k), T0 + k as u64 * 1000);
            if k % 2 == 0 {
                let h = s.lookup(EVT2).unwrap();
                let _ = s.write(h, value(EVT2, k / 2), T0 + k as u64 * 1000);
            }
            if k % 30 == 29 {
                for (j, key) in KEYS.iter().enumerate() {
                    let h = s.lookup(*key).unwrap();
                    let mut last = None;
                    for _ in 0..20 {
                        match s.read(h) {
                            Ok(r) => last = Some(r.seq),
                            Err(_) => break,
                        }
                    }
                    let gone = s.evicted_in_flight(h).unwrap();
                    let n = s.sensor_stats(h).unwrap().pending + gone;
                    if n == 0 {
                        continue;
                    }
                    if s.ack(h, n).is_ok() {
                        if let Some(l) = last {
                            acked[j] = l + 1;
                        }
                    } else {
                        s.revert(h).unwrap();
                    }
                }
            }
            if k % 97 == 96 {
                let _ = s.flush_all();
                s.cancel_flush();
            }
        }
        from + steps
    }
    // The value written as record `seq` of sensor j.
    fn expected(j: usize, seq: u32) -> u32 {
        value(KEYS[j], seq)
    }
    let mut s = spool(Flash::new(6, 1));
    let mut acked = [0u32; 2];
    run(&mut s, &mut acked, 0, STEPS);
    let total = s.storage().flash().ops();
    let faults = [Fault::All, Fault::Part, Fault::Nothing];
    let mut cases = 0u64;
    for case in 0..total * 6 {
        let k = case / 6;
        let fault = faults[case as usize % 3];
        let permanent = (case / 3) % 2 == 1;
        let mut flash = Flash::new(6, 1);
        flash.set_tear(Tear::ALL[k as usize % Tear::ALL.len()]);
        flash.fail_at(k, fault, permanent);
        let mut s = spool(flash);
        let mut acked = [0u32; 2];
        let mut step = 0;
        while s.storage().flash().ops() <= k && step < STEPS {
            step = run(&mut s, &mut acked, step, 1);
        }
        run(&mut s, &mut acked, step, AFTER);
        assert_eq!(s.check(), Ok(()), "fault {k}");
        // Reboot.
        let mut flash = s.storage().flash().clone();
        flash.revive();
        let mut s = spool(flash);
        assert_eq!(s.check(), Ok(()), "fault {k}: after recovery");
        for (j, key) in KEYS.iter().enumerate() {
            let h = s.lookup(*key).unwrap();
            let mut last: Option<u32> = None;
            while let Ok(r) = s.read(h) {
                assert!(
                    r.seq >= acked[j],
                    "fault {k} ({fault:?}, permanent {permanent}): {key:?} acknowledged record {} back (acked up to {})",
                    r.seq,
                    acked[j]
                );
                assert!(last.is_none_or(|l| r.seq > l), "fault {k}: order");
                assert_eq!(r.value, expected(j, r.seq), "fault {k}: record {}", r.seq);
                last = Some(r.seq);
            }
        }
        cases += 1;
    }
    eprintln!("flash driver faults: {cases} fault points, {total} flash operations");
}

/// `durable_upto`: everything before it survives a power cut (stored or
/// acknowledged); the threshold spill moves it forward, a failed spill does not.
#[test]
fn durable_upto_tells_what_a_power_cut_cannot_take() {
    let mut s = spool(Flash::new(16, 1));
    let h = s.lookup(EVT).unwrap();
    assert_eq!(s.durable_upto(h).unwrap(), 0);
    write(&mut s, EVT, 0, 30);
    assert_eq!(s.durable_upto(h).unwrap(), 0, "all in RAM");
    s.flush_all().unwrap();
    assert_eq!(s.durable_upto(h).unwrap(), 30);
    write(&mut s, EVT, 30, 10);
    let next = s.storage().flash().ops();
    s.storage_mut()
        .flash_mut()
        .fail_at(next, Fault::Nothing, false);
    s.flush_all_start();
    assert!(s.flush_all_step().is_err(), "the program failed");
    s.cancel_flush();
    assert_eq!(
        s.durable_upto(h).unwrap(),
        30,
        "a failed spill moves nothing"
    );
    let upto = s.durable_upto(h).unwrap();
    let mut s = reboot(s);
    let back = drain(&mut s, EVT);
    assert_eq!(
        back,
        (0..upto).collect::<Vec<_>>(),
        "every durable record is back"
    );
}
