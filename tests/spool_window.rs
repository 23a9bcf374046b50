//! The durability window (`Spool::set_max_unspilled_ms`, `Spool::tick`) over
//! NOR flash (feature `_mock-flash`): a model test with random writes across
//! sensors, ticks of a ms clock, uploads (read, then ack or revert), and power
//! cuts at random points **without** the shutdown flush, between calls or in
//! the middle of a flash operation. After each recovery, every record the
//! model still expects is either back or was written inside the window of the
//! last tick that returned `Ok` (written after `T - window`): a power cut
//! loses nothing older. No acknowledged record comes back, none is invented.

use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::{Error, Spool};
use sensor_spool::storage::NorFlashStorage;
use sensor_spool::storage::mock_flash::MockFlash;
use std::collections::HashMap;

const SECTORS: usize = 64;
type P = Pool<Tier<32, SECTORS, 2>, Tier<64, 0, 0>, Tier<128, 0, 0>>;
type Flash = MockFlash<4, 1024>;
type Fs = NorFlashStorage<Flash, 1024>;
type S = Spool<P, 4, SECTORS, 4, Fs, 4>;

/// Two TSD sensors (100 ms and 1 s) and two EVT sensors.
const SENSORS: [(SensorKey, u32); 4] = [
    (SensorKey { source: 0, id: 1 }, 100),
    (SensorKey { source: 0, id: 2 }, 1000),
    (SensorKey { source: 1, id: 7 }, 0),
    (SensorKey { source: 2, id: 9 }, 0),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// The value of sensor `s`'s `k`-th record: names the record by itself.
fn value(s: usize, k: u32) -> u32 {
    ((s as u32) << 24) | k
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Written, not acknowledged: the store owes it.
    Owed,
    /// Acknowledged by the uploader.
    Acked,
    /// Lost at a power cut (inside the window: allowed).
    Lost,
}

struct Rec {
    written_ms: u64,
    state: State,
}

fn boot(flash: Flash, window_ms: u32, threshold: u8) -> S {
    let mut s = Spool::new(
        P::new(),
        NorFlashStorage::<_, 1024>::new(flash).expect("geometry"),
        OverflowPolicy::DropOldestUnsent,
    );
    for (key, rate) in SENSORS {
        s.register(key, rate).expect("register");
    }
    s.recover_storage().expect("recovery");
    s.set_max_unspilled_ms(window_ms);
    s.set_flush_threshold(threshold);
    s
}

/// Totals over all cases, for the report.
#[derive(Default, Debug)]
struct Totals {
    cases: u64,
    cuts: u64,
    torn_cuts: u64,
    written: u64,
    lost_in_window: u64,
    recovered: u64,
    acked: u64,
    window_spills: u64,
}

/// One case: `epochs` boots of the spool over one flash, each ended by a power
/// cut without the shutdown flush.
fn case(seed: u64, t: &mut Totals) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let window_ms = [1_000u32, 3_000, 10_000][rng.below(3) as usize];
    // High threshold most of the time: the window, not RAM pressure, spills.
    let threshold = if rng.chance(800) { 100 } else { 80 };
    let mut flash = Flash::new(96, seed);
    let mut model: Vec<Vec<Rec>> = (0..SENSORS.len()).map(|_| Vec::new()).collect();
    let mut now: u64 = 1_000 + rng.below(100_000);
    let epochs = 2 + rng.below(4);
    for _ in 0..epochs {
        let mut s = boot(flash, window_ms, threshold);
        // What the store gives back after the boot: every owed record must be
        // there, or have been lost inside the window (checked by the caller
        // of the previous epoch's cut, below).
        let mut last_ok_tick: Option<u64> = None;
        let steps = 200 + rng.below(1500);
        // A cut in the middle of a flash operation in some epochs.
        let torn = rng.chance(400);
        if torn {
            let ops = s.storage().flash().ops();
            s.storage_mut()
                .flash_mut()
                .cut_after(Some(ops + 1 + rng.below(40)));
        }
        let mut handed: Vec<Vec<u32>> = (0..SENSORS.len()).map(|_| Vec::new()).collect();
        for _ in 0..steps {
            if s.storage().flash().is_dead() {
                break;
            }
            now += 1 + rng.below(150);
            match rng.below(10) {
                0..=5 => {
                    let i = rng.below(SENSORS.len() as u64) as usize;
                    let h = s.lookup(SENSORS[i].0).expect("sensor");
                    let k = model[i].len() as u32;
                    match s.write(h, value(i, k), now) {
                        Ok(()) => model[i].push(Rec {
                            written_ms: now,
                            state: State::Owed,
                        }),
                        Err(e) => panic!("seed {seed}: write failed: {e}"),
                    }
                    t.written += 1;
                }
                6 | 7 => {
                    let before = s.spill_stats().batches;
                    if s.tick(now).is_ok() && !s.storage().flash().is_dead() {
                        last_ok_tick = Some(now);
                    }
                    if s.spill_stats().batches != before {
                        t.window_spills += 1;
                    }
                }
                8 => {
                    // Upload: read a few records of a sensor.
                    let i = rng.below(SENSORS.len() as u64) as usize;
                    let h = s.lookup(SENSORS[i].0).expect("sensor");
                    for _ in 0..1 + rng.below(20) {
                        match s.read(h) {
                            Ok(r) => {
                                let (si, k) = ((r.value >> 24) as usize, r.value & 0xFF_FFFF);
                                assert_eq!(si, i, "seed {seed}: record of another sensor");
                                let rec = model[i].get(k as usize).unwrap_or_else(|| {
                                    panic!("seed {seed}: invented record {k} of sensor {i}")
                                });
                                assert_eq!(
                                    rec.state,
                                    State::Owed,
                                    "seed {seed}: sensor {i} record {k} handed out again"
                                );
                                handed[i].push(k);
                            }
                            Err(Error::NoData) => break,
                            Err(_) => break,
                        }
                    }
                }
                _ => {
                    // Response: ACK (most of the time) or NACK.
                    let i = rng.below(SENSORS.len() as u64) as usize;
                    let h = s.lookup(SENSORS[i].0).expect("sensor");
                    if handed[i].is_empty() {
                        continue;
                    }
                    if rng.chance(850) {
                        let n = handed[i].len() as u32;
                        if s.ack(h, n).is_ok() {
                            for &k in &handed[i] {
                                model[i][k as usize].state = State::Acked;
                                t.acked += 1;
                            }
                            handed[i].clear();
                        }
                    } else if s.revert(h).is_ok() {
                        handed[i].clear();
                    }
                }
            }
        }
        // Nothing may have been dropped or evicted: every loss below is the cut's.
        let st = s.stats();
        let sp = s.spill_stats();
        assert_eq!(
            (st.dropped, st.rejected, sp.lost),
            (0, 0, 0),
            "seed {seed}: the test's geometry must not overflow"
        );
        // Power cut, no shutdown flush: RAM is gone.
        t.cuts += 1;
        t.torn_cuts += u64::from(s.storage().flash().is_dead());
        let mut f = s.storage().flash().clone();
        f.revive();
        flash = f;
        // Recovery, then read everything back (reverted afterwards).
        let mut s2 = boot(flash.clone(), window_ms, threshold);
        let mut back: HashMap<(usize, u32), u32> = HashMap::new();
        for (i, (key, _)) in SENSORS.iter().enumerate() {
            let h = s2.lookup(*key).expect("sensor");
            let mut prev: Option<u32> = None;
            loop {
                match s2.read(h) {
                    Ok(r) => {
                        let (si, k) = ((r.value >> 24) as usize, r.value & 0xFF_FFFF);
                        assert_eq!(si, i, "seed {seed}: record of another sensor");
                        assert!(
                            (k as usize) < model[i].len(),
                            "seed {seed}: invented record {k} of sensor {i}"
                        );
                        assert!(
                            prev.is_none_or(|p| p < k),
                            "seed {seed}: sensor {i} records out of order"
                        );
                        prev = Some(k);
                        *back.entry((i, k)).or_default() += 1;
                    }
                    Err(Error::NoData) => break,
                    Err(e) => panic!("seed {seed}: read after recovery: {e}"),
                }
            }
        }
        let cutoff = last_ok_tick.map(|t| t.saturating_sub(u64::from(window_ms)));
        for (i, recs) in model.iter_mut().enumerate() {
            for (k, rec) in recs.iter_mut().enumerate() {
                let present = back.contains_key(&(i, k as u32));
                match rec.state {
                    State::Acked => assert!(
                        !present,
                        "seed {seed}: acknowledged record {k} of sensor {i} came back"
                    ),
                    State::Lost => assert!(!present, "seed {seed}: lost record came back"),
                    State::Owed if present => t.recovered += 1,
                    State::Owed => {
                        // Lost at the cut: must have been written inside the
                        // window of the last tick that returned Ok.
                        if let Some(c) = cutoff {
                            assert!(
                                rec.written_ms > c,
                                "seed {seed}: sensor {i} record {k} written at {} ms lost; \
                                 last good tick {} ms, window {window_ms} ms",
                                rec.written_ms,
                                last_ok_tick.unwrap_or(0)
                            );
                        }
                        rec.state = State::Lost;
                        t.lost_in_window += 1;
                    }
                }
            }
        }
        // The next epoch boots from this flash (nothing of the check persisted:
        // reads mark pending in RAM only).
        drop(s2);
        now += 1 + rng.below(5_000);
    }
    t.cases += 1;
}

#[test]
fn a_power_cut_loses_only_records_inside_the_window() {
    let cases: u64 = std::env::var("SPOOL_WINDOW_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        // Unoptimized builds (the plain `cargo test` step) are ~20x slower.
        .unwrap_or(if cfg!(debug_assertions) { 60 } else { 1000 });
    let mut t = Totals::default();
    for seed in 1..=cases {
        case(seed, &mut t);
    }
    eprintln!(
        "durability window: {} cases, {} power cuts ({} during a flash operation), {} records written, \
         {} acknowledged, {} records found again after cuts (counted per cut), {} lost inside the window, {} ticks that spilled",
        t.cases,
        t.cuts,
        t.torn_cuts,
        t.written,
        t.acked,
        t.recovered,
        t.lost_in_window,
        t.window_spills
    );
    assert_eq!(t.cases, cases);
    assert!(
        t.window_spills > 100,
        "the window spilled too rarely: {t:?}"
    );
    assert!(
        t.torn_cuts > 10,
        "too few cuts during a flash operation: {t:?}"
    );
}

/// Without a window (the default) and with the uploader keeping RAM below the
/// threshold, nothing reaches flash; with a window, every record older than it
/// at the last tick survives a cut.
#[test]
fn without_a_window_nothing_reaches_flash_below_the_threshold() {
    for window in [0u32, 2_000] {
        let mut s = boot(Flash::new(32, 1), window, 80);
        let h = s.lookup(SENSORS[2].0).expect("sensor");
        let mut now = 10_000u64;
        for k in 0..100u32 {
            now += 100;
            s.write(h, value(2, k), now).expect("write");
            s.tick(now).expect("tick");
        }
        assert_eq!(s.max_unspilled_ms(), window);
        let mut f = s.storage().flash().clone();
        f.revive();
        let mut s2 = boot(f, window, 80);
        let n = s2.sensor_stats(h).expect("stats").count;
        if window == 0 {
            assert_eq!(n, 0, "no window: everything was in RAM");
        } else {
            // Written at 10_100 .. 20_000; the last tick at 20_000: everything
            // written up to 18_000 must be back.
            assert!(n >= 80, "{n} records back");
            let r = s2.read(h).expect("oldest record back");
            assert_eq!(r.value, value(2, 0));
        }
    }
}
