//! Sequence numbers are unique for the life of the store (issue: numbers
//! reused after a power cut or a restart). Every record a spool hands out
//! (`read`) is checked against every record handed out before, across power
//! cuts at every flash operation and clean restarts, over NOR flash and over
//! files: a number handed out twice must be the same record (a redelivery of
//! an unacknowledged one), never a new record under an old number.
//!
//! The first tests failed on the code before reservations (the sequence
//! restarted after the records stored, or at 0 with nothing stored).

#[path = "file_common/mod.rs"]
mod file_common;

use file_common::{FaultFs, TempDir, small_cfg};
use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::Spool;
use sensor_spool::storage::mock_flash::{MockFlash, Tear};
use sensor_spool::storage::{FileStorage, NorFlashStorage, Storage};
use std::collections::HashMap;

const SECTORS: usize = 64;
type P = Pool<Tier<32, SECTORS, 2>, Tier<64, 0, 0>, Tier<128, 0, 0>>;
type Flash = MockFlash<4, 1024>;
type Fs = NorFlashStorage<Flash, 1024>;
type S<St> = Spool<P, 4, SECTORS, 4, St, 4>;

const KEYS: [SensorKey; 2] = [
    SensorKey { source: 1, id: 2 },
    SensorKey { source: 2, id: 9 },
];
const T0: u64 = 1_700_000_000_000;

fn spool<St: Storage>(st: St) -> S<St> {
    let mut s = Spool::new(P::new(), st, OverflowPolicy::DropOldestUnsent);
    for k in KEYS {
        s.register(k, 0).unwrap();
    }
    s.recover_storage().unwrap();
    s
}

/// Every record handed out so far: `(sensor, seq) -> value`. Values are a
/// test-wide write counter, unique per record.
#[derive(Default)]
struct Delivered {
    seen: HashMap<(usize, u32), u32>,
    next_value: u32,
}

impl Delivered {
    fn check(&mut self, j: usize, seq: u32, value: u32, ctx: &str) {
        if let Some(&v) = self.seen.get(&(j, seq)) {
            assert_eq!(
                v, value,
                "{ctx}: sensor {j} number {seq} handed out for two records"
            );
        }
        self.seen.insert((j, seq), value);
    }
}

/// One step of the workload: writes to both sensors; every 7th step reads a
/// few records of each and acknowledges some of them (all from RAM or flash,
/// whatever holds them); every 23rd a threshold-style flush.
fn step<St: Storage>(s: &mut S<St>, d: &mut Delivered, k: u32, ctx: &str) {
    step_until(s, d, k, ctx, &|_| false)
}

/// [`step`], stopping as soon as `cut` says the power is gone (nothing runs
/// after a power cut).
fn step_until<St: Storage>(
    s: &mut S<St>,
    d: &mut Delivered,
    k: u32,
    ctx: &str,
    cut: &dyn Fn(&S<St>) -> bool,
) {
    for (j, key) in KEYS.iter().enumerate() {
        if j == 1 && !k.is_multiple_of(3) {
            continue;
        }
        let h = s.lookup(*key).unwrap();
        let v = d.next_value;
        d.next_value += 1;
        let _ = s.write(h, v, T0 + k as u64 * 1000);
        if cut(s) {
            return;
        }
    }
    if k % 7 == 6 {
        for (j, key) in KEYS.iter().enumerate() {
            let h = s.lookup(*key).unwrap();
            for _ in 0..4 {
                match s.read(h) {
                    Ok(_) if cut(s) => return,
                    Ok(r) => d.check(j, r.seq, r.value, ctx),
                    Err(_) => break,
                }
            }
            let pending = s.sensor_stats(h).unwrap().pending + s.evicted_in_flight(h).unwrap();
            let n = if k.is_multiple_of(2) {
                pending
            } else {
                pending / 2
            };
            if n > 0 && s.ack(h, n).is_err() {
                let _ = s.revert(h);
            }
        }
    }
    if k % 23 == 22 {
        let _ = s.flush();
    }
}

/// Reads everything a rebooted spool holds, checking every number.
fn drain<St: Storage>(s: &mut S<St>, d: &mut Delivered, ctx: &str) -> u32 {
    let mut n = 0;
    for (j, key) in KEYS.iter().enumerate() {
        let h = s.lookup(*key).unwrap();
        while let Ok(r) = s.read(h) {
            d.check(j, r.seq, r.value, ctx);
            n += 1;
            assert!(n < 100_000);
        }
    }
    n
}

#[test]
fn numbers_handed_out_from_ram_are_not_reused_after_a_power_cut() {
    let mut s = spool(Fs::new(Flash::new(8, 1)).unwrap());
    let mut d = Delivered::default();
    let h = s.lookup(KEYS[0]).unwrap();
    for v in 0..10 {
        s.write(h, v, T0).unwrap();
    }
    for _ in 0..10 {
        let r = s.read(h).unwrap();
        d.check(0, r.seq, r.value, "before");
    }
    s.ack(h, 10).unwrap();
    // Power cut: nothing of the sensor ever reached flash as records.
    let mut flash = s.storage().flash().clone();
    flash.revive();
    let mut s = spool(Fs::new(flash).unwrap());
    let h = s.lookup(KEYS[0]).unwrap();
    s.write(h, 100, T0).unwrap();
    let r = s.read(h).unwrap();
    assert!(
        r.seq >= 10,
        "number {} handed out again after a power cut",
        r.seq
    );
    d.check(0, r.seq, r.value, "after");
}

#[test]
fn a_sensor_with_nothing_on_media_continues_after_a_clean_restart() {
    let mut s = spool(Fs::new(Flash::new(8, 1)).unwrap());
    let h = s.lookup(KEYS[1]).unwrap();
    for v in 0..50 {
        s.write(h, v, T0).unwrap();
    }
    // Delivered and acknowledged from RAM: no record, no mark ever on flash.
    while s.read(h).is_ok() {}
    s.ack_all(h).unwrap();
    s.flush_all().unwrap();
    let flash = s.storage().flash().clone();
    let mut s = spool(Fs::new(flash).unwrap());
    let h = s.lookup(KEYS[1]).unwrap();
    s.write(h, 1, T0).unwrap();
    let r = s.read(h).unwrap();
    assert!(r.seq >= 50, "restarted at {}", r.seq);
}

/// Unacknowledged records on flash and more handed out from RAM, then a
/// power cut: the RAM records went to storage before they were handed out,
/// so everything handed out comes back in order and the sequence continues
/// right after it (no gap, nothing counted lost).
#[test]
fn records_handed_out_past_stored_ones_are_stored_first() {
    let mut s = spool(Fs::new(Flash::new(8, 1)).unwrap());
    let mut d = Delivered::default();
    let h = s.lookup(KEYS[0]).unwrap();
    for v in 0..60 {
        s.write(h, v, T0).unwrap();
    }
    s.flush_all().unwrap();
    for v in 60..100 {
        s.write(h, v, T0).unwrap();
    }
    let batches = s.spill_stats().batches;
    // The uploader reads everything (flash, then RAM) and acknowledges nothing.
    for _ in 0..100 {
        let r = s.read(h).unwrap();
        d.check(0, r.seq, r.value, "before");
    }
    assert_eq!(
        s.spill_stats().batches,
        batches + 1,
        "RAM records stored first"
    );
    assert_eq!(s.sensor_stats(h).unwrap().in_ram, 0);
    let mut flash = s.storage().flash().clone();
    flash.revive();
    let mut s = spool(Fs::new(flash).unwrap());
    let h = s.lookup(KEYS[0]).unwrap();
    assert_eq!(s.sensor_stats(h).unwrap().count, 100);
    for v in 1000..1015 {
        s.write(h, v, T0).unwrap();
    }
    let mut got = Vec::new();
    while let Ok(r) = s.read(h) {
        d.check(0, r.seq, r.value, "after");
        got.push((r.seq, r.value));
    }
    let want: Vec<(u32, u32)> = (0..100)
        .map(|v| (v, v))
        .chain((100..115).map(|k| (k, k + 900)))
        .collect();
    assert_eq!(got, want);
    assert_eq!(s.spill_stats().lost, 0);
    s.ack(h, 115).unwrap();
    assert_eq!(s.check(), Ok(()));
    // Another power cut: nothing acknowledged comes back.
    let mut flash = s.storage().flash().clone();
    flash.revive();
    let mut s = spool(Fs::new(flash).unwrap());
    assert_eq!(drain(&mut s, &mut d, "second cut"), 0);
}

/// The sweep: a power cut at every flash operation of a workload (tear models
/// rotating), then more work on the rebooted spool and a clean restart; every
/// record handed out anywhere is checked against all earlier ones.
#[test]
fn power_cut_at_every_flash_operation_never_reuses_a_number() {
    const STEPS: u32 = if cfg!(debug_assertions) { 600 } else { 3000 };
    let mut s = spool(Fs::new(Flash::new(6, 1)).unwrap());
    let mut d = Delivered::default();
    for k in 0..STEPS {
        step(&mut s, &mut d, k, "reference");
    }
    let total = s.storage().flash().ops();
    let mut cases = 0u64;
    let stride = 1;
    for cut in (0..total).step_by(stride) {
        let ctx = format!("cut at {cut}");
        let mut flash = Flash::new(6, 1);
        flash.set_tear(Tear::ALL[cut as usize % Tear::ALL.len()]);
        flash.cut_after(Some(cut));
        let mut s = spool(Fs::new(flash).unwrap());
        let mut d = Delivered::default();
        let mut k = 0;
        let dead = |s: &S<Fs>| s.storage().flash().is_dead();
        while !dead(&s) && k < STEPS {
            step_until(&mut s, &mut d, k, &ctx, &dead);
            k += 1;
        }
        // Power cut, reboot, more work, then a clean restart.
        let mut flash = s.storage().flash().clone();
        flash.revive();
        let mut s = spool(Fs::new(flash).unwrap());
        assert_eq!(s.check(), Ok(()), "{ctx}: after recovery");
        for k in k..k + 120 {
            step(&mut s, &mut d, k, &ctx);
        }
        let flash = s.storage().flash().clone();
        let mut s = spool(Fs::new(flash).unwrap());
        drain(&mut s, &mut d, &ctx);
        cases += 1;
    }
    eprintln!("sequence uniqueness: {cases} cut points over {total} flash operations");
    assert!(cases >= total && total > 100, "{cases} cut points");
}

/// Files: restarts without a shutdown flush (RAM lost) and clean ones.
#[test]
fn files_never_reuse_a_number_across_restarts() {
    let dir = TempDir::new("sequnique");
    let cfg = small_cfg(dir.path());
    let fs = FaultFs::default();
    let open = || spool(FileStorage::with_fs(fs.clone(), cfg.clone()).unwrap());
    let mut d = Delivered::default();
    let mut k = 0;
    for round in 0..12 {
        let ctx = format!("round {round}");
        let mut s = open();
        for _ in 0..150 {
            step(&mut s, &mut d, k, &ctx);
            k += 1;
        }
        if round % 3 == 2 {
            s.flush_all().unwrap();
        }
        drop(s);
    }
    let mut s = open();
    drain(&mut s, &mut d, "end");
    eprintln!(
        "files: {} records handed out over 12 restarts",
        d.seen.len()
    );
}
