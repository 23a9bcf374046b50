//! The example's own ledger of every sample, kept outside the library, and the
//! end-of-run proof built from it.
//!
//! Every sample a sensor writes gets the next per-sensor sequence number `k`
//! (0, 1, 2, ...). The value written is `k ^ salt(sensor)`, so a delivered record
//! names exactly which sample it is and of which sensor (a record of another
//! sensor decodes to a number far outside the range written). The time written is
//! known too: TSD samples are taken on a fixed schedule (`t0 + k * period`), EVT
//! times are kept per sample.
//!
//! A record counts as **delivered** when the simulated cloud acknowledged the
//! packet that carried it and the uploader acknowledged it to the store. The
//! ledger checks each delivered record on the spot: right sensor, written before,
//! strictly after the previous delivered one of its sensor (so no duplicate and
//! no reordering), right time. Samples skipped between two delivered ones are
//! **missing**; at the end their number per sensor must equal what the library
//! says it lost (writes rejected, records dropped from RAM on overflow, records
//! evicted from storage), and the store must be empty.

use sensor_spool::record::SensorKey;

/// Per-sensor salt mixed into the value (splitmix64 of the key).
pub fn salt(key: SensorKey) -> u32 {
    let mut z = ((key.source as u64) << 32 | key.id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u32 | 0x8000_0000
}

/// What the ledger knows about one sensor.
pub struct SensorLedger {
    /// Key.
    pub key: SensorKey,
    /// Value salt.
    pub salt: u32,
    /// TSD period in ms (0: EVT).
    pub period_ms: u32,
    /// Time of sample 0 (TSD), ms.
    pub t0_ms: u64,
    /// EVT: UTC seconds of every sample written.
    pub evt_times: Vec<u32>,
    /// EVT: write time in ms of every sample (the window check of power cuts).
    pub evt_ms: Vec<u64>,
    /// Samples written (attempted): the next sequence number.
    pub written: u32,
    /// Writes the store refused (`Error::Full`).
    pub rejected: u32,
    /// Samples delivered.
    pub delivered: u64,
    /// Next sample number expected (one past the last delivered).
    pub next: u32,
    /// Samples skipped between delivered ones (and, at the end, after the last).
    pub missing: u64,
}

/// A check that failed, with enough detail to find it.
#[derive(Debug, Clone)]
pub struct Violation(pub String);

/// The ledger of all sensors.
pub struct Ledger {
    /// Per sensor, in registration order.
    pub sensors: Vec<SensorLedger>,
    /// Delivered records that were duplicates or out of order.
    pub order_errors: u64,
    /// Delivered records whose value decodes to no written sample of that sensor.
    pub value_errors: u64,
    /// Delivered records with the wrong timestamp.
    pub time_errors: u64,
    /// First few violations, for the report.
    pub examples: Vec<Violation>,
}

impl Ledger {
    /// Empty ledger.
    pub fn new() -> Self {
        Self {
            sensors: Vec::new(),
            order_errors: 0,
            value_errors: 0,
            time_errors: 0,
            examples: Vec::new(),
        }
    }

    /// Adds a sensor; returns its index.
    pub fn add(&mut self, key: SensorKey, period_ms: u32, t0_ms: u64) -> usize {
        self.sensors.push(SensorLedger {
            key,
            salt: salt(key),
            period_ms,
            t0_ms,
            evt_times: Vec::new(),
            evt_ms: Vec::new(),
            written: 0,
            rejected: 0,
            delivered: 0,
            next: 0,
            missing: 0,
        });
        self.sensors.len() - 1
    }

    /// The next sample of sensor `s`: its value (and records its time for EVT).
    pub fn next_sample(&mut self, s: usize, time_ms: u64) -> u32 {
        let l = &mut self.sensors[s];
        let k = l.written;
        l.written += 1;
        if l.period_ms == 0 {
            l.evt_times.push((time_ms / 1000) as u32);
            l.evt_ms.push(time_ms);
        }
        k ^ l.salt
    }

    /// Sample number and write time (ms) of a value of sensor `s`, if it names a
    /// sample written.
    pub fn sample_of(&self, s: usize, value: u32) -> Option<(u32, u64)> {
        let l = &self.sensors[s];
        let k = value ^ l.salt;
        if k >= l.written {
            return None;
        }
        let t = if l.period_ms == 0 {
            *l.evt_ms.get(k as usize)?
        } else {
            l.t0_ms + k as u64 * l.period_ms as u64
        };
        Some((k, t))
    }

    /// The last sample of `s` was refused by the store.
    pub fn rejected(&mut self, s: usize) {
        self.sensors[s].rejected += 1;
    }

    fn violation(&mut self, msg: String) {
        if self.examples.len() < 8 {
            self.examples.push(Violation(msg));
        }
    }

    /// Sensor `s` delivered a record with `value` and `time_ms`.
    pub fn deliver(&mut self, s: usize, value: u32, time_ms: u64) {
        let l = &self.sensors[s];
        let k = value ^ l.salt;
        if k >= l.written {
            self.value_errors += 1;
            let msg = format!(
                "sensor {}:{} delivered value {value:#010x}, which is no sample it wrote ({} written)",
                l.key.source, l.key.id, l.written
            );
            self.violation(msg);
            return;
        }
        if k < l.next {
            self.order_errors += 1;
            let msg = format!(
                "sensor {}:{} delivered sample {k} again or out of order (next expected {})",
                l.key.source, l.key.id, l.next
            );
            self.violation(msg);
            return;
        }
        let time_ok = if l.period_ms == 0 {
            time_ms / 1000 == l.evt_times[k as usize] as u64
        } else {
            time_ms == l.t0_ms + k as u64 * l.period_ms as u64
        };
        if !time_ok {
            self.time_errors += 1;
            let expect = if l.period_ms == 0 {
                l.evt_times[k as usize] as u64 * 1000
            } else {
                l.t0_ms + k as u64 * l.period_ms as u64
            };
            let msg = format!(
                "sensor {}:{} sample {k}: time {time_ms} ms, written at {expect} ms",
                l.key.source, l.key.id
            );
            self.violation(msg);
        }
        let l = &mut self.sensors[s];
        l.missing += (k - l.next) as u64;
        l.next = k + 1;
        l.delivered += 1;
    }

    /// End of run: samples after the last delivered one are missing too.
    pub fn close(&mut self) {
        for l in &mut self.sensors {
            l.missing += (l.written - l.next) as u64;
            l.next = l.written;
        }
    }

    /// Totals: (written, delivered, missing, rejected by the store).
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        self.sensors.iter().fold((0, 0, 0, 0), |t, l| {
            (
                t.0 + l.written as u64,
                t.1 + l.delivered,
                t.2 + l.missing,
                t.3 + l.rejected as u64,
            )
        })
    }
}
