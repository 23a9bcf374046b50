//! Recovery of the spool's flash parts after a power cut, checked against a
//! model: exactly the records written and not acknowledged come back, in order,
//! with their values and times, including records acknowledged while they were
//! still in RAM (no acknowledgement mark is written for those).

use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::{Error, Spool};
use sensor_spool::storage::mock_flash::MockFlash;
use sensor_spool::storage::{LogEntry, NorFlashStorage, Storage};
use std::collections::VecDeque;

const SECTORS: usize = 64;
type P = Pool<Tier<32, SECTORS, 2>, Tier<64, 0, 0>, Tier<128, 0, 0>>;
type Flash = MockFlash<4, 1024>;
type Fs = NorFlashStorage<Flash, 1024>;
type S = Spool<P, 4, SECTORS, 4, Fs, 4>;

const TSD: SensorKey = SensorKey { source: 1, id: 1 };
const EVT: SensorKey = SensorKey { source: 1, id: 2 };
const EVT2: SensorKey = SensorKey { source: 2, id: 9 };
const KEYS: [SensorKey; 3] = [TSD, EVT, EVT2];
const RATE: u32 = 1000;
const T0: u64 = 1_700_000_000_000;

fn spool(flash: Flash) -> (S, u32) {
    let mut s = Spool::new(
        P::new(),
        NorFlashStorage::<_, 1024>::new(flash).unwrap(),
        OverflowPolicy::DropOldestUnsent,
    );
    s.register(TSD, RATE).unwrap();
    s.register(EVT, 0).unwrap();
    s.register(EVT2, 0).unwrap();
    let n = s.recover_storage().unwrap();
    (s, n)
}

/// Power cut: RAM is gone, the flash image stays; reboot and recover.
fn power_cycle(s: S, cut: u64) -> (S, u32) {
    let image = s.storage().flash().image().to_vec();
    drop(s);
    spool(Flash::from_image(&image, cut))
}

/// The records of one sensor the uploader is still owed, oldest first.
#[derive(Default)]
struct Model {
    /// (seq, value, time_ms) of every written, unacknowledged record.
    owed: VecDeque<(u32, u32, u64)>,
    /// Records of `owed` handed out (pending).
    pending: usize,
    next_seq: u32,
    /// Samples written so far (TSD time grid).
    samples: u64,
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

fn write(s: &mut S, m: &mut Model, key: SensorKey, value: u32) {
    let t = if key == TSD {
        T0 + m.samples * RATE as u64
    } else {
        T0 + m.samples * 3000
    };
    m.samples += 1;
    let h = s.lookup(key).unwrap();
    s.write(h, value, t).unwrap();
    m.owed.push_back((m.next_seq, value, t));
    m.next_seq = m.next_seq.wrapping_add(1);
}

fn read(s: &mut S, m: &mut Model, key: SensorKey, n: usize, ctx: &str) {
    let h = s.lookup(key).unwrap();
    for _ in 0..n {
        let Some(&(seq, value, t)) = m.owed.get(m.pending) else {
            assert_eq!(
                s.read(h),
                Err(Error::NoData),
                "{ctx}: {key:?} read past the end"
            );
            return;
        };
        let r = match s.read(h) {
            Ok(r) => r,
            // Reading stops before a restart's skipped numbers when records
            // before them are pending and the part already steps over one
            // such gap: the uploader acknowledges (or reverts) first.
            Err(Error::NoData)
                if m.pending > 0
                    && m.owed.get(m.pending - 1).map(|o| o.0.wrapping_add(1)) != Some(seq) =>
            {
                return;
            }
            Err(e) => panic!("{ctx}: {key:?} record {seq}: {e:?}"),
        };
        assert_eq!(
            (r.seq, r.value, r.time_ms),
            (seq, value, t),
            "{ctx}: {key:?} record"
        );
        m.pending += 1;
    }
}

fn ack(s: &mut S, m: &mut Model, key: SensorKey, n: usize) {
    let h = s.lookup(key).unwrap();
    let st = s.sensor_stats(h);
    s.ack(h, n as u32).unwrap_or_else(|e| {
        panic!(
            "{key:?} ack {n}: {e:?}, spool {st:?}, model pending {} owed {:?}",
            m.pending,
            m.owed.iter().map(|o| o.0).collect::<Vec<_>>()
        )
    });
    m.owed.drain(..n);
    m.pending -= n;
}

/// Every sensor's counts match the model.
fn check_counts(s: &S, models: &[Model; 3], ctx: &str) {
    assert_eq!(s.check(), Ok(()), "{ctx}");
    for (key, m) in KEYS.iter().zip(models) {
        let st = s.sensor_stats(s.lookup(*key).unwrap()).unwrap();
        assert_eq!(
            (st.count, st.pending),
            (m.owed.len() as u32, m.pending as u32),
            "{ctx}: {key:?} count, pending"
        );
        assert_eq!(st.lost, 0, "{ctx}: {key:?} lost");
    }
}

/// After a reboot: pending records are unsent again; every sensor continues
/// its sequence at or after every number it handed out (a restart skips at
/// most one reservation step of numbers).
fn after_reboot(s: &S, models: &mut [Model; 3], recovered: u32, ctx: &str) {
    let owed: usize = models.iter().map(|m| m.owed.len()).sum();
    assert_eq!(recovered as usize, owed, "{ctx}: records recovered");
    for (key, m) in KEYS.iter().zip(models.iter_mut()) {
        m.pending = 0;
        let st = s.sensor_stats(s.lookup(*key).unwrap()).unwrap();
        let skipped = st.next_seq.wrapping_sub(m.next_seq);
        assert!(
            skipped <= 4096,
            "{ctx}: {key:?} next seq {} before {} or too far",
            st.next_seq,
            m.next_seq
        );
        m.next_seq = st.next_seq;
    }
    check_counts(s, models, ctx);
}

/// The reported case: acknowledgements of records still in RAM write no mark,
/// so recovery took the flash part from the latest mark and counted the
/// RAM-acknowledged records as owed (then lost, as storage has none of them).
#[test]
fn records_acknowledged_in_ram_do_not_come_back_after_a_power_cut() {
    let (mut s, _) = spool(Flash::new(16, 1));
    let mut m: [Model; 3] = Default::default();
    let [tsd, _, _] = &mut m;
    // 100 records to flash, all read and acknowledged: one mark, upto 100.
    for k in 0..100 {
        write(&mut s, tsd, TSD, k);
    }
    s.flush_all().unwrap();
    read(&mut s, tsd, TSD, 100, "flash part");
    ack(&mut s, tsd, TSD, 100);
    // 50 records acknowledged while in RAM: no mark.
    for k in 100..150 {
        write(&mut s, tsd, TSD, k);
    }
    read(&mut s, tsd, TSD, 50, "RAM part");
    ack(&mut s, tsd, TSD, 50);
    // 50 more go to flash as a run starting at 150 (no mark after it); 10 of
    // them are read (pending) when the power goes.
    for k in 150..200 {
        write(&mut s, tsd, TSD, k);
    }
    s.flush_all().unwrap();
    read(&mut s, tsd, TSD, 10, "pending at the cut");
    check_counts(&s, &m, "before the cut");
    let (mut s, recovered) = power_cycle(s, 1);
    after_reboot(&s, &mut m, recovered, "after the cut");
    assert_eq!(recovered, 50);
    let [tsd, _, _] = &mut m;
    read(&mut s, tsd, TSD, 51, "recovered");
    assert_eq!(s.spill_stats().lost, 0);
    ack(&mut s, tsd, TSD, 50);
    check_counts(&s, &m, "drained");
}

/// A sensor whose runs were all evicted but whose last mark survived continues
/// its sequence after the mark, so that mark never hides its new records.
#[test]
fn a_surviving_mark_without_runs_does_not_hide_new_records() {
    let (mut s, _) = spool(Flash::new(4, 1));
    let mut m: [Model; 3] = Default::default();
    let [tsd, evt, _] = &mut m;
    for k in 0..40 {
        write(&mut s, evt, EVT, k);
    }
    s.flush_all().unwrap();
    // TSD data (drained as it goes) fills the log until the next sector is
    // open, then EVT's mark is written there; more TSD data evicts the sector
    // holding EVT's run but not the one with its mark.
    let head = s.storage().stats().head_seq;
    let mut marked = false;
    let mut k = 0;
    loop {
        for _ in 0..20 {
            write(&mut s, tsd, TSD, k);
            k += 1;
        }
        s.flush_all().unwrap();
        let n = tsd.owed.len();
        read(&mut s, tsd, TSD, n, "tsd");
        ack(&mut s, tsd, TSD, n);
        if !marked {
            if s.storage().stats().head_seq != head {
                read(&mut s, evt, EVT, 40, "evt");
                ack(&mut s, evt, EVT, 40);
                marked = true;
            }
            continue;
        }
        let (mut runs, mut marks) = (0, 0);
        s.storage_mut()
            .recover(|e| match e {
                LogEntry::Run(r) if r.key.id == EVT.id => runs += 1,
                LogEntry::Ack { key, .. } if key.id == EVT.id => marks += 1,
                _ => {}
            })
            .unwrap();
        if runs == 0 {
            assert_eq!(marks, 1, "the mark went with the run");
            break;
        }
        assert!(k < 100_000);
    }
    let (mut s, recovered) = power_cycle(s, 1);
    after_reboot(&s, &mut m, recovered, "reboot 1");
    let [_, evt2, _] = &mut m;
    assert!(evt2.next_seq >= 40, "EVT continues after its mark");
    for k in 0..5 {
        write(&mut s, evt2, EVT, 1000 + k);
    }
    s.flush_all().unwrap();
    let (mut s, recovered) = power_cycle(s, 2);
    after_reboot(&s, &mut m, recovered, "reboot 2");
    assert_eq!(recovered, 5);
    let [_, evt, _] = &mut m;
    read(&mut s, evt, EVT, 6, "EVT after reboot 2");
}

/// Random workload with power cycles (shutdown flush, cut, recovery) against
/// the model: reads, acknowledgements of flash and RAM records, NACKs, threshold
/// and explicit flushes. Storage is large enough that nothing is evicted.
#[test]
fn random_workload_with_power_cycles_matches_the_model() {
    let cases = if cfg!(debug_assertions) { 40 } else { 200 };
    let mut cycles = 0;
    let mut gaps = 0u32;
    for case in 0..cases {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((case as u64 + 1) * 0x1000_0001));
        let (mut s, _) = spool(Flash::new(64, 1));
        let mut m: [Model; 3] = Default::default();
        let mut vals = 0u32;
        for step in 0..120 {
            let ctx = format!("case {case} step {step}");
            for (j, key) in KEYS.iter().enumerate() {
                for _ in 0..rng.below(12) {
                    vals = vals.wrapping_add(0x9E37_79B9);
                    write(&mut s, &mut m[j], *key, vals);
                }
                match rng.below(6) {
                    0 => {}
                    1 => {
                        let h = s.lookup(*key).unwrap();
                        let n = s.revert(h).unwrap();
                        assert_eq!(n as usize, m[j].pending, "{ctx}: revert");
                        m[j].pending = 0;
                    }
                    _ => {
                        let avail = (m[j].owed.len() - m[j].pending) as u64;
                        let n = rng.below(avail + 2) as usize;
                        read(&mut s, &mut m[j], *key, n, &ctx);
                        let a = rng.below(m[j].pending as u64 + 1) as usize;
                        if a == m[j].pending && a > 0 && rng.below(2) == 0 {
                            // Acknowledging one more than pending changes nothing.
                            let h = s.lookup(*key).unwrap();
                            assert_eq!(s.ack(h, a as u32 + 1), Err(Error::AckTooMany));
                        }
                        ack(&mut s, &mut m[j], *key, a);
                    }
                }
            }
            match rng.below(20) {
                0..=2 => {
                    s.flush().unwrap();
                }
                3 => {
                    s.flush_all().unwrap();
                }
                4 => {
                    s.flush_all().unwrap();
                    let before: Vec<u32> = KEYS
                        .iter()
                        .map(|k| s.sensor_stats(s.lookup(*k).unwrap()).unwrap().next_seq)
                        .collect();
                    let (s2, recovered) = power_cycle(s, step);
                    s = s2;
                    after_reboot(&s, &mut m, recovered, &ctx);
                    for (k, b) in KEYS.iter().zip(before) {
                        let next = s.sensor_stats(s.lookup(*k).unwrap()).unwrap().next_seq;
                        gaps += (next != b) as u32;
                    }
                    cycles += 1;
                }
                _ => {}
            }
            check_counts(&s, &m, &ctx);
        }
        // Drain: everything owed comes back exactly once, in order.
        for (j, key) in KEYS.iter().enumerate() {
            let h = s.lookup(*key).unwrap();
            s.revert(h).unwrap();
            m[j].pending = 0;
            // In rounds: reading stops at a restart's skipped numbers while
            // records before them are pending (see `read`).
            for _ in 0..8 {
                let n = m[j].owed.len();
                read(&mut s, &mut m[j], *key, n + 1, "drain");
                let p = m[j].pending;
                ack(&mut s, &mut m[j], *key, p);
                if m[j].owed.is_empty() {
                    break;
                }
            }
            assert!(m[j].owed.is_empty(), "case {case}: {key:?} not drained");
        }
        check_counts(&s, &m, "drained");
        assert_eq!(s.spill_stats().lost, 0, "case {case}: nothing evicted");
        assert_eq!(s.storage().stats().evicted_records, 0);
    }
    eprintln!(
        "spill recovery model: {cases} cases, {cycles} power cycles, {gaps} sequences that skipped numbers at a restart"
    );
}
