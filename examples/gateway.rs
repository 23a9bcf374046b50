//! A simulated vehicle gateway running the library the way firmware does.
//!
//! ```text
//! cargo run --release --example gateway               # ~30 s, simulated NOR flash
//! cargo run --release --example gateway -- --help     # flags
//! cargo run --release --example gateway -- --storage files --dir /tmp/spool
//! ```
//!
//! * Sensors on simulated time (100 ms ticks): host sensors at 1 Hz and decoded CAN
//!   signals at 10 Hz (TSD), GPS-tagged events (EVT: the event plus latitude,
//!   longitude and speed with the same timestamp, like the legacy
//!   `add_gps_location`).
//! * An uploader that drives the legacy transaction (`imatrix_upload.c`,
//!   `LOAD_SAMPLES_PACKET`): per sensor `n = min(fit, available)` calls to
//!   `Spool::read` (records become pending), one packet in flight; on ACK
//!   `Spool::ack(h, n)` per sensor with exactly the count it contributed
//!   (`erase_specific_samples`), on NACK or 30 s timeout `Spool::revert`
//!   (`revert_packet_reads`). The link goes down for long stretches.
//! * RAM spills to storage past the flush threshold (simulated NOR flash by default,
//!   `--storage files` for `FileStorage`, `--storage ram` for none).
//! * A ledger kept outside the library (`gateway/ledger.rs`) checks every delivered
//!   record and proves at the end that every sample was delivered exactly once and
//!   in order, or is counted by the library as rejected, dropped or evicted.
//!   Exit code 1 if the proof fails, 2 on bad flags.
//! * `--max-unspilled-ms MS` sets the durability window (`Spool::tick` every
//!   100 ms tick) and `--power-cut-every X` cuts power while driving without the
//!   shutdown flush: the records then in RAM are lost, the proof checks that each
//!   was written inside the window of the last tick, and the report gives the
//!   flash cost of the window (bytes programmed per payload byte, erases per hour,
//!   years to wear out a 100k-cycle part).

#[path = "gateway/args.rs"]
mod args;
#[path = "gateway/flash.rs"]
mod flash;
#[path = "gateway/ledger.rs"]
mod ledger;

use args::{Args, CutEvery, StorageKind};
use flash::SimFlash;
use ledger::Ledger;
use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::{Kind, SensorKey};
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::{Error, SensorHandle, Spool};
use sensor_spool::storage::file::FileConfig;
use sensor_spool::storage::{FileStorage, NoStorage, NorFlashStorage, Storage};
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// RAM geometry of the gateway: 1,024 sectors of 64 bytes (64 KiB, the Linux
/// budget), up to 1,024 sensors, 8 distinct sample rates.
const GW_SECTORS: usize = 1024;
const GW_SENSORS: usize = 1024;
const GW_RATES: usize = 8;
type GwPool =
    Pool<Tier<64, GW_SECTORS, { GW_SECTORS.div_ceil(32) }>, Tier<128, 0, 0>, Tier<256, 0, 0>>;
/// `SPILL = GW_SENSORS`: every sensor has a flash part (records spilled to storage).
type GwSpool<S> = Spool<GwPool, GW_SENSORS, GW_SECTORS, GW_RATES, S, GW_SENSORS>;

/// The flash storage: 512-byte staging buffer, 64 frames remembered as
/// CRC-verified (hundreds of sensors read from the same frames in turn; with
/// the default 4 most reads would verify a 4 KiB frame again).
type GwFlash = NorFlashStorage<SimFlash, 512, 32>;

/// Simulation tick (ms): the CAN sample period.
const TICK_MS: u64 = 100;
/// Vehicle clock at the start (UTC ms, 2026-11-22T00:00:00Z).
const T0_MS: u64 = 1_795_305_600_000;
/// Upload response timeout (legacy `IMX_UPLOAD_REQUEST_TIMEOUT`).
const UPLOAD_TIMEOUT_MS: u64 = 30_000;
/// Per-sensor block header in an upload packet (legacy block header, bytes).
const BLOCK_HEADER: u32 = 20;
/// Longest drain after the driving phase (vehicle time) before giving up.
const MAX_DRAIN_MS: u64 = 72 * 3600 * 1000;

/// xorshift64* PRNG (deterministic per seed).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
    /// Log-uniform in [lo, hi): many short values, some very long ones.
    fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        (a + (b - a) * self.unit()).exp() as u64
    }
}

/// One sensor as the firmware sees it.
struct Sensor {
    handle: SensorHandle,
    ledger: usize,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ack,
    Nack,
    Timeout,
}

/// The packet in flight: how many records each sensor contributed
/// (`packet_contents.entry_counts`), and the records themselves.
struct Packet {
    sent_ms: u64,
    resp_ms: u64,
    outcome: Outcome,
    entries: Vec<(usize, u32)>,
    records: Vec<(usize, u32, u64)>,
}

#[derive(Default)]
struct Counters {
    packets_ok: u64,
    packets_nack: u64,
    packets_timeout: u64,
    records_sent: u64,
    outages: u64,
    offline_ms: u64,
    longest_outage_ms: u64,
    /// `read` failed although `sensor_stats` said records were available.
    short_reads: u64,
    /// Any other unexpected library error.
    api_errors: u64,
    /// Library loss counters of spools before a power cycle (dropped + rejected + evicted).
    lost_before_reboot: u64,
    /// Records the spool recovered from storage after the power cycle.
    recovered: Option<u32>,
    /// Shutdown flush: batches and progress values seen.
    shutdown_steps: u32,
    /// Records acknowledged by the cloud that the library had meanwhile evicted
    /// from storage (and counted lost) while their packet was in flight.
    evicted_in_flight: u64,
    /// Records the spool before the power cycle moved to storage.
    flushed_before_reboot: u64,
    /// Unacknowledged records the spool held (all in storage) at the power cut.
    stored_at_cut: u64,
    first_api_error: Option<String>,
    /// Sudden power cuts while driving (no shutdown flush).
    cuts: u64,
    /// Records held in RAM only at those cuts (lost with it).
    cut_lost: u64,
    /// Of those, records written at or before the last tick minus the window.
    cut_outside: u64,
    /// Oldest lost record's age at the last tick before its cut (ms).
    cut_max_age_ms: u64,
    /// Cuts after which recovery did not find exactly the records not in RAM.
    cut_recovery_mismatch: u64,
    /// First violation at a cut, for the report.
    first_cut_violation: Option<String>,
    /// Records recovered from storage after the cuts.
    cut_recovered: u64,
    /// Flash counters at the end of the driving phase (wear figures).
    drive_flash: Option<Wear>,
}

impl Counters {
    fn api_error(&mut self, what: &str, e: Error) {
        self.api_errors += 1;
        if self.first_api_error.is_none() {
            self.first_api_error = Some(format!("{what}: {e}"));
        }
    }
}

/// The uploader: link state and the packet in flight.
struct Uploader {
    online: bool,
    /// Vehicle time of the next link change.
    change_ms: u64,
    outage_start: u64,
    inflight: Option<Packet>,
    cursor: usize,
    packet_bytes: u32,
    fault_rate: f64,
    /// The link never goes down.
    always_online: bool,
}

impl Uploader {
    fn schedule(&mut self, now: u64, rng: &mut Rng) {
        self.change_ms = if self.online {
            // online 5 min .. 2 h
            now + rng.log_range(5 * 60_000, 2 * 3_600_000)
        } else {
            // offline 1 min .. 6 h: mostly short, some very long stretches
            now + rng.log_range(60_000, 6 * 3_600_000)
        };
    }
}

/// Everything of one run.
struct Gateway<S: Storage> {
    spool: Box<GwSpool<S>>,
    sensors: Vec<Sensor>,
    host: Vec<usize>,
    can: Vec<usize>,
    /// (event sensor, [lat, lon, speed] sensors)
    events: Vec<usize>,
    gps: [usize; 3],
    ledger: Ledger,
    /// Per sensor: its lost counter from spools before a power cycle.
    lost_before: Vec<u64>,
    /// Per sensor: delivered records the library counted lost (evicted in flight).
    in_flight_lost: Vec<u64>,
    /// Per sensor: records lost with RAM at sudden power cuts.
    cut_lost: Vec<u64>,
    /// Durability window (ms, 0 = off).
    window_ms: u32,
    /// Time of the last `Spool::tick` that returned `Ok`.
    last_tick_ok: Option<u64>,
    up: Uploader,
    rng: Rng,
    c: Counters,
    now: u64,
}

impl<S: Storage> Gateway<S> {
    fn new(storage: S, a: &Args) -> Result<Self, String> {
        let spool = new_spool(storage, a.max_unspilled_ms);
        let mut g = Gateway {
            spool,
            sensors: Vec::new(),
            host: Vec::new(),
            can: Vec::new(),
            events: Vec::new(),
            gps: [0; 3],
            ledger: Ledger::new(),
            lost_before: Vec::new(),
            in_flight_lost: Vec::new(),
            cut_lost: Vec::new(),
            window_ms: a.max_unspilled_ms,
            last_tick_ok: None,
            up: Uploader {
                // The vehicle starts out of coverage (an outage from the first sample).
                online: false,
                change_ms: 0,
                outage_start: 0,
                inflight: None,
                cursor: 0,
                packet_bytes: a.packet_bytes,
                fault_rate: a.fault_rate,
                always_online: a.always_online,
            },
            rng: Rng::new(a.seed),
            c: Counters::default(),
            now: T0_MS,
        };
        let total = a.host_sensors as usize + a.can_signals as usize + a.events as usize + 3;
        if total > GW_SENSORS {
            return Err(format!(
                "{total} sensors requested; the gateway's sensor table holds {GW_SENSORS}"
            ));
        }
        // Legacy sources: 0 host (gateway sensors), 2 CAN controller.
        for i in 0..a.host_sensors {
            let s = g.add(SensorKey::new(0, 100 + i), 1000)?;
            g.host.push(s);
        }
        for i in 0..a.can_signals {
            let s = g.add(SensorKey::new(2, 0x1000 + i), 100)?;
            g.can.push(s);
        }
        // GPS: latitude, longitude, speed as EVT sensors (written with each event).
        for (j, id) in [2u32, 3, 4].into_iter().enumerate() {
            g.gps[j] = g.add(SensorKey::new(0, id), 0)?;
        }
        for i in 0..a.events {
            let s = g.add(SensorKey::new(0, 500 + i), 0)?;
            g.events.push(s);
        }
        // After registration: mount the storage and rebuild the sensors' flash parts
        // (nothing on a fresh partition).
        g.spool
            .recover_storage()
            .map_err(|e| format!("storage mount/recovery failed: {e}"))?;
        let now = g.now;
        g.up.outage_start = now;
        g.c.outages = 1;
        if a.always_online {
            g.up.online = true;
            g.c.outages = 0;
        }
        let Gateway { up, rng, .. } = &mut g;
        up.schedule(now, rng);
        Ok(g)
    }

    fn add(&mut self, key: SensorKey, rate_ms: u32) -> Result<usize, String> {
        let handle = self
            .spool
            .register(key, rate_ms)
            .map_err(|e| format!("register {key:?}: {e}"))?;
        // TSD sample k is taken at T0 + k * period (first sample at T0).
        let ledger = self.ledger.add(key, rate_ms, self.now);
        self.lost_before.push(0);
        self.in_flight_lost.push(0);
        self.cut_lost.push(0);
        self.sensors.push(Sensor {
            handle,
            ledger,
            kind: Kind::from_sample_rate(rate_ms),
        });
        Ok(self.sensors.len() - 1)
    }

    fn write(&mut self, s: usize) {
        let sen = &self.sensors[s];
        let v = self.ledger.next_sample(sen.ledger, self.now);
        match self.spool.write(sen.handle, v, self.now) {
            Ok(()) => {}
            Err(Error::Full) => self.ledger.rejected(sen.ledger),
            Err(e) => {
                self.ledger.rejected(sen.ledger);
                self.c.api_error("write", e);
            }
        }
    }

    /// One tick of the sensors (called with `self.now` at the tick's time).
    fn sample(&mut self, tick: u64, event_prob: f64) {
        for i in 0..self.can.len() {
            self.write(self.can[i]);
        }
        if tick.is_multiple_of(10) {
            for i in 0..self.host.len() {
                self.write(self.host[i]);
            }
        }
        for i in 0..self.events.len() {
            if self.rng.unit() < event_prob {
                self.write(self.events[i]);
                for j in 0..3 {
                    self.write(self.gps[j]);
                }
            }
        }
    }

    /// Link changes and the uploader state machine at `self.now`.
    fn upload_step(&mut self, faults: bool) {
        let now = self.now;
        if now >= self.up.change_ms && faults && !self.up.always_online {
            self.up.online = !self.up.online;
            if self.up.online {
                let d = now - self.up.outage_start;
                self.c.offline_ms += d;
                self.c.longest_outage_ms = self.c.longest_outage_ms.max(d);
            } else {
                self.c.outages += 1;
                self.up.outage_start = now;
                // A response due after the link went down never arrives.
                if let Some(p) = self.up.inflight.as_mut()
                    && p.outcome != Outcome::Timeout
                {
                    p.outcome = Outcome::Timeout;
                    p.resp_ms = p.sent_ms + UPLOAD_TIMEOUT_MS;
                }
            }
            let Gateway { up, rng, .. } = self;
            up.schedule(now, rng);
        }
        if let Some(p) = &self.up.inflight
            && now >= p.resp_ms
        {
            let p = self.up.inflight.take().unwrap();
            self.response(p);
        }
        if self.up.inflight.is_none() && (self.up.online || !faults) {
            self.load_packet(faults);
        }
    }

    /// `LOAD_SAMPLES_PACKET`: per sensor with data, `n = min(fit, available)` reads.
    fn load_packet(&mut self, faults: bool) {
        let n = self.sensors.len();
        let mut room = self.up.packet_bytes;
        let mut entries = Vec::new();
        let mut records = Vec::new();
        let start = self.up.cursor;
        for k in 0..n {
            let s = (start + k) % n;
            let sen = &self.sensors[s];
            let st = match self.spool.sensor_stats(sen.handle) {
                Ok(st) => st,
                Err(e) => {
                    self.c.api_error("sensor_stats", e);
                    continue;
                }
            };
            if st.available == 0 {
                continue;
            }
            let size = sen.kind.record_size() as u32;
            if room < BLOCK_HEADER + size {
                self.up.cursor = s; // packet full: this sensor goes first next time
                break;
            }
            let fit = (room - BLOCK_HEADER) / size;
            let want = fit.min(st.available);
            let mut got = 0;
            for _ in 0..want {
                match self.spool.read(sen.handle) {
                    Ok(r) => {
                        records.push((s, r.value, r.time_ms));
                        got += 1;
                    }
                    Err(Error::NoData) => {
                        self.c.short_reads += 1;
                        break;
                    }
                    Err(e) => {
                        self.c.api_error("read", e);
                        break;
                    }
                }
            }
            if got > 0 {
                entries.push((s, got));
                room -= BLOCK_HEADER + got * size;
            }
            self.up.cursor = (s + 1) % n;
        }
        if entries.is_empty() {
            return;
        }
        let rtt = self.rng.range(100, 500);
        let (outcome, resp_ms) = {
            let x = self.rng.unit();
            if !faults || x >= self.up.fault_rate {
                (Outcome::Ack, self.now + rtt)
            } else if x < self.up.fault_rate / 2.0 {
                (Outcome::Nack, self.now + rtt)
            } else {
                (Outcome::Timeout, self.now + UPLOAD_TIMEOUT_MS)
            }
        };
        self.c.records_sent += records.len() as u64;
        self.up.inflight = Some(Packet {
            sent_ms: self.now,
            resp_ms,
            outcome,
            entries,
            records,
        });
    }

    /// `_imatrix_upload_response_hdl`.
    fn response(&mut self, p: Packet) {
        match p.outcome {
            Outcome::Ack => {
                self.c.packets_ok += 1;
                for &(s, n) in &p.entries {
                    let h = self.sensors[s].handle;
                    // Records read for this packet may have been evicted from storage
                    // while it was in flight (the storage was full): the library then
                    // counted them lost (an over-count of loss, never an under-count:
                    // the cloud got them) and still accepts them in `ack(n)`, so the
                    // uploader acknowledges exactly what it sent.
                    let gone = self.spool.evicted_in_flight(h).unwrap_or(0).min(n);
                    self.c.evicted_in_flight += gone as u64;
                    self.in_flight_lost[self.sensors[s].ledger] += gone as u64;
                    // erase_specific_samples(csb, csd, i, n)
                    if let Err(e) = self.spool.ack(h, n) {
                        self.c.api_error("ack", e);
                    }
                }
                for &(s, v, t) in &p.records {
                    self.ledger.deliver(self.sensors[s].ledger, v, t);
                }
            }
            Outcome::Nack | Outcome::Timeout => {
                if p.outcome == Outcome::Nack {
                    self.c.packets_nack += 1;
                } else {
                    self.c.packets_timeout += 1;
                }
                // revert_packet_reads()
                for &(s, _) in &p.entries {
                    if let Err(e) = self.spool.revert(self.sensors[s].handle) {
                        self.c.api_error("revert", e);
                    }
                }
            }
        }
    }

    fn status(&self, phase: &str) -> String {
        let st = self.spool.stats();
        let sp = self.spool.spill_stats();
        let h = (self.now - T0_MS) / 1000;
        format!(
            "[{phase} {:>3}:{:02}:{:02}] link {} | RAM {:>6} rec | storage {:>8} rec | uploads ok {} nack {} timeout {} | dropped {} rejected {} | flushes {} | evicted {}",
            h / 3600,
            h / 60 % 60,
            h % 60,
            if self.up.online { "up  " } else { "DOWN" },
            st.records.wrapping_sub(sp.in_storage),
            sp.in_storage,
            self.c.packets_ok,
            self.c.packets_nack,
            self.c.packets_timeout,
            st.dropped,
            st.rejected,
            sp.batches,
            sp.lost,
        )
    }

    /// Ignition off and a power cut: the packet in flight is abandoned (reverted),
    /// the shutdown flush (`flush_all_to_disk` / `get_flush_progress`) moves every RAM
    /// record to storage until the progress says 101 (safe to power off), RAM is lost,
    /// and a new spool over the same storage registers the sensors again and recovers
    /// the flushed records (`recover_storage`).
    fn power_cycle(&mut self, take: fn(&mut S) -> S, live: &mut Live) -> Result<(), String> {
        if let Some(p) = self.up.inflight.take() {
            self.c.packets_timeout += 1;
            for &(s, _) in &p.entries {
                if let Err(e) = self.spool.revert(self.sensors[s].handle) {
                    self.c.api_error("revert", e);
                }
            }
        }
        self.spool.flush_all_start();
        loop {
            match self.spool.flush_all_step() {
                Ok(101) => break,
                Ok(p) => {
                    self.c.shutdown_steps += 1;
                    live.show(&format!("[shutdown] flush progress {p:>3} %"), false);
                }
                Err(e) => return Err(format!("shutdown flush failed: {e}")),
            }
            if self.c.shutdown_steps > 10_000_000 {
                return Err("shutdown flush does not finish".into());
            }
        }
        self.c.shutdown_steps += 1;
        // The loss counters of this spool die with it: carry them over.
        let st = self.spool.stats();
        let sp = self.spool.spill_stats();
        self.c.lost_before_reboot += st.dropped as u64 + st.rejected as u64 + sp.lost as u64;
        self.c.flushed_before_reboot += sp.flushed as u64;
        self.c.stored_at_cut = st.records as u64;
        for sen in &self.sensors {
            let lost = self.spool.sensor_stats(sen.handle).map_or(0, |s| s.lost);
            self.lost_before[sen.ledger] += lost as u64;
        }
        // Power cut: RAM is gone, the storage is what the next boot finds.
        let n = self.reboot(take)?;
        self.c.recovered = Some(n);
        Ok(())
    }

    /// A new spool over the storage the old one leaves behind (RAM is gone):
    /// registers the sensors again and recovers; returns the records recovered.
    fn reboot(&mut self, take: fn(&mut S) -> S) -> Result<u32, String> {
        let storage = take(self.spool.storage_mut());
        let mut spool = new_spool(storage, self.window_ms);
        for sen in &mut self.sensors {
            let l = &self.ledger.sensors[sen.ledger];
            sen.handle = spool
                .register(l.key, l.period_ms)
                .map_err(|e| format!("register after reboot: {e}"))?;
        }
        self.spool = spool;
        self.last_tick_ok = None;
        self.spool
            .recover_storage()
            .map_err(|e| format!("recovery after reboot failed: {e}"))
    }

    /// The durability window's poll, once per simulation tick.
    fn tick(&mut self) {
        match self.spool.tick(self.now) {
            Ok(_) => self.last_tick_ok = Some(self.now),
            Err(e) => self.c.api_error("tick", e),
        }
    }

    /// A sudden power cut while driving: no shutdown flush, the packet in flight
    /// never gets its response, and every record held only in RAM is lost. Each
    /// of those must have been written after the last good tick minus the window
    /// (`Spool::tick`'s guarantee). The spool reboots from storage, which must
    /// give back exactly the records that were not in RAM.
    fn power_cut(&mut self, take: fn(&mut S) -> S) -> Result<(), String> {
        self.c.cuts += 1;
        self.up.inflight = None;
        let window = u64::from(self.window_ms);
        let last = self.last_tick_ok;
        let mut in_ram = 0u64;
        for si in 0..self.sensors.len() {
            let (h, l) = (self.sensors[si].handle, self.sensors[si].ledger);
            let n = self
                .spool
                .sensor_stats(h)
                .map_err(|e| format!("sensor_stats at the cut: {e}"))?
                .in_ram;
            in_ram += u64::from(n);
            for off in 0..n {
                let r = self
                    .spool
                    .peek_stored(h, off)
                    .map_err(|e| format!("peek_stored at the cut: {e}"))?;
                self.c.cut_lost += 1;
                self.cut_lost[l] += 1;
                let Some((k, t)) = self.ledger.sample_of(l, r.value) else {
                    self.c.cut_outside += 1;
                    self.c.first_cut_violation.get_or_insert_with(|| {
                        format!("cut {}: RAM held a value no sensor wrote", self.c.cuts)
                    });
                    continue;
                };
                let Some(last) = last else {
                    // No tick since the boot: nothing is promised yet.
                    continue;
                };
                let age = last.saturating_sub(t);
                self.c.cut_max_age_ms = self.c.cut_max_age_ms.max(age);
                if window == 0 || age >= window {
                    self.c.cut_outside += 1;
                    let key = self.ledger.sensors[l].key;
                    self.c.first_cut_violation.get_or_insert_with(|| {
                        format!(
                            "cut {}: sensor {}:{} sample {k} lost, written {age} ms before the last tick (window {window} ms)",
                            self.c.cuts, key.source, key.id
                        )
                    });
                }
            }
        }
        // The loss counters of this spool die with it: carry them over.
        let st = self.spool.stats();
        let sp = self.spool.spill_stats();
        self.c.lost_before_reboot += st.dropped as u64 + st.rejected as u64 + sp.lost as u64;
        self.c.flushed_before_reboot += sp.flushed as u64;
        for sen in &self.sensors {
            let lost = self.spool.sensor_stats(sen.handle).map_or(0, |s| s.lost);
            self.lost_before[sen.ledger] += lost as u64;
        }
        let held = u64::from(st.records);
        let n = self.reboot(take)?;
        self.c.cut_recovered += u64::from(n);
        if u64::from(n) != held - in_ram {
            self.c.cut_recovery_mismatch += 1;
        }
        Ok(())
    }
}

/// A spool over `storage` with the durability window set.
fn new_spool<S: Storage>(storage: S, window_ms: u32) -> Box<GwSpool<S>> {
    let mut spool = Box::new(GwSpool::new(
        GwPool::new(),
        storage,
        OverflowPolicy::DropOldestUnsent,
    ));
    spool.set_max_unspilled_ms(window_ms);
    spool
}

/// Live status printer: `\r`-updated on a terminal, a plain line every 5 s otherwise.
struct Live {
    tty: bool,
    quiet: bool,
    last: Instant,
    width: usize,
}

impl Live {
    fn show(&mut self, line: &str, force: bool) {
        if self.quiet {
            return;
        }
        let every = if self.tty { 0.2 } else { 5.0 };
        if !force && self.last.elapsed().as_secs_f64() < every {
            return;
        }
        self.last = Instant::now();
        let mut err = std::io::stderr().lock();
        if self.tty {
            let pad = self.width.saturating_sub(line.len());
            let _ = write!(err, "\r{line}{:pad$}", "");
            self.width = line.len();
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn end(&mut self) {
        if self.tty && !self.quiet {
            eprintln!();
        }
    }
}

/// Extra report lines about a storage back end.
/// (storage, records spilled to storage over the whole run)
type Extra<S> = fn(&S, u64) -> Vec<String>;
/// The storage as the next boot finds it (moved out of the old spool); `None` for
/// RAM-only runs (no power cycle).
type Take<S> = Option<fn(&mut S) -> S>;
/// Flash wear counters: (bytes programmed, erases, erase sectors).
type Wear = (u64, u64, u64);
/// The storage's wear counters (`None` for storage that is not a flash part).
type WearOf<S> = fn(&S) -> Option<Wear>;

fn flash_wear(s: &GwFlash) -> Option<Wear> {
    let f = s.flash().stats();
    let sectors = (s.flash().data().len() / flash::ERASE_SIZE) as u64;
    Some((f.bytes_programmed, f.erases, sectors))
}

/// Writes what the storage holds to a path (`--save-image`).
type Save<S> = fn(&S, &std::path::Path) -> std::io::Result<()>;

/// `--save-image` of the flash: the part's bytes, as a dump reads them.
fn save_flash(s: &GwFlash, p: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(p, s.flash().data())
}

/// `--save-image` of the files: a copy of the spool directory.
fn save_files(s: &FileStorage, p: &std::path::Path) -> std::io::Result<()> {
    fn copy(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                copy(&e.path(), &to.join(e.file_name()))?;
            } else {
                std::fs::copy(e.path(), to.join(e.file_name()))?;
            }
        }
        Ok(())
    }
    copy(&s.config().root, p)
}

fn run<S: Storage>(
    storage: S,
    a: &Args,
    describe: &str,
    extra: Extra<S>,
    take: Take<S>,
    save: Option<Save<S>>,
    wear: WearOf<S>,
) -> Result<bool, String> {
    let wall = Instant::now();
    let mut g = Gateway::new(storage, a)?;
    println!(
        "gateway: {} host sensors @1 Hz, {} CAN signals @10 Hz, {} GPS-tagged event sensors (+3 GPS), storage {describe}, fault rate {}, seed {}",
        a.host_sensors, a.can_signals, a.events, a.fault_rate, a.seed
    );
    println!(
        "RAM: {GW_SECTORS} sectors x 64 B; uploader: {} B packets, one in flight, {} s timeout",
        a.packet_bytes,
        UPLOAD_TIMEOUT_MS / 1000
    );
    let mut live = Live {
        tty: std::io::stderr().is_terminal(),
        quiet: a.quiet,
        last: Instant::now(),
        width: 0,
    };
    // Mean one event per sensor every 3 minutes.
    let event_prob = TICK_MS as f64 / 180_000.0;
    let ticks_limit = a
        .vehicle_hours
        .map(|h| (h * 3_600_000.0 / TICK_MS as f64) as u64);
    let mut tick = 0u64;
    let (mut next_cut_ms, mut next_cut_rec) = match a.power_cut_every {
        Some(CutEvery::Ms(ms)) => (T0_MS + ms, u64::MAX),
        Some(CutEvery::Records(n)) => (u64::MAX, n),
        None => (u64::MAX, u64::MAX),
    };
    loop {
        if let Some(limit) = ticks_limit {
            if tick >= limit {
                break;
            }
        } else if tick.is_multiple_of(10) && wall.elapsed().as_secs_f64() >= a.duration_s {
            break;
        }
        g.now = T0_MS + tick * TICK_MS;
        g.sample(tick, event_prob);
        g.upload_step(true);
        // A sudden cut lands after this tick's writes, before its poll.
        if let Some(take) = take {
            let written = g.ledger.totals().0;
            if g.now >= next_cut_ms || written >= next_cut_rec {
                g.power_cut(take)?;
                match a.power_cut_every {
                    Some(CutEvery::Ms(ms)) => next_cut_ms += ms,
                    Some(CutEvery::Records(n)) => next_cut_rec = written + n,
                    None => {}
                }
            }
        }
        g.tick();
        if tick.is_multiple_of(64) {
            live.show(&g.status("drive"), false);
        }
        tick += 1;
    }
    let drive_wall = wall.elapsed().as_secs_f64();
    let drive_ms = tick * TICK_MS;
    g.c.drive_flash = wear(g.spool.storage());
    if !g.up.online {
        let d = g.now - g.up.outage_start;
        g.c.offline_ms += d;
        g.c.longest_outage_ms = g.c.longest_outage_ms.max(d);
    }
    live.show(&g.status("drive"), true);
    live.end();
    // Ignition off: shutdown flush, power cut, reboot, recovery.
    if let Some(take) = take.filter(|_| !a.no_power_cycle) {
        g.power_cycle(take, &mut live)?;
        live.show(&format!("[shutdown] flush progress 101 (safe to power off); rebooted, {} records recovered from storage", g.c.recovered.unwrap_or(0)), true);
        live.end();
    }
    // Link back: drain everything (no new samples, no faults).
    g.up.online = true;
    let drain_start = g.now;
    while g.now - drain_start < MAX_DRAIN_MS {
        g.now += TICK_MS;
        g.upload_step(false);
        if g.up.inflight.is_none() && g.spool.stats().records == 0 {
            break;
        }
        live.show(&g.status("drain"), false);
    }
    live.show(&g.status("drain"), true);
    live.end();
    let drain_ms = g.now - drain_start;
    let wall = wall.elapsed().as_secs_f64();
    let ok = report(&mut g, drive_ms, drain_ms, drive_wall, wall, extra);
    if let (Some(path), Some(save)) = (&a.save_image, save) {
        save(g.spool.storage(), path)
            .map_err(|e| format!("--save-image {}: {e}", path.display()))?;
        println!(
            "saved the storage to {} (see spool-inspect)",
            path.display()
        );
    }
    Ok(ok)
}

fn hms(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

fn report<S: Storage>(
    g: &mut Gateway<S>,
    drive_ms: u64,
    drain_ms: u64,
    drive_wall: f64,
    wall: f64,
    extra: Extra<S>,
) -> bool {
    g.ledger.close();
    let (written, delivered, missing, rejected_seen) = g.ledger.totals();
    let st = g.spool.stats();
    let ss = g.spool.storage().stats();
    println!();
    println!("== report ==");
    println!(
        "vehicle time: {} driving ({:.1} s wall, {:.0}x real time) + {} draining; {:.1} s wall in total",
        hms(drive_ms),
        drive_wall,
        drive_ms as f64 / 1000.0 / drive_wall.max(1e-9),
        hms(drain_ms),
        wall
    );
    println!(
        "link: {} outages, offline {} in total, longest {}",
        g.c.outages,
        hms(g.c.offline_ms),
        hms(g.c.longest_outage_ms)
    );
    println!(
        "uploads: {} ok, {} nack, {} timeout; {} records sent (re-sends included); {} records acknowledged after the library had evicted them in flight",
        g.c.packets_ok,
        g.c.packets_nack,
        g.c.packets_timeout,
        g.c.records_sent,
        g.c.evicted_in_flight
    );
    println!(
        "samples: {written} written, {delivered} delivered ({:.2} M/s of wall time)",
        written as f64 / wall / 1e6
    );
    let sp = g.spool.spill_stats();
    let library_lost =
        g.c.lost_before_reboot + st.dropped as u64 + st.rejected as u64 + sp.lost as u64;
    let cut_lost = g.c.cut_lost;
    println!(
        "library counted (this boot): {} dropped from RAM on overflow, {} writes rejected (example saw {rejected_seen} in all), {} evicted from storage unsent; before the power cycle: {} lost in all",
        st.dropped, st.rejected, sp.lost, g.c.lost_before_reboot
    );
    if let Some(n) = g.c.recovered {
        println!(
            "ignition off: shutdown flush in {} steps to progress 101; {} unacknowledged records held at the power cut, {n} recovered from storage after reboot",
            g.c.shutdown_steps, g.c.stored_at_cut
        );
    }
    if g.spool.storage().is_persistent() {
        println!(
            "storage: {} batches, {} records appended, {} ack marks, {} sectors / {} records evicted, {} bad frames",
            ss.batches, ss.records, ss.acks, ss.evicted_sectors, ss.evicted_records, ss.bad_frames
        );
    }
    let spilled = g.c.flushed_before_reboot + sp.flushed as u64;
    for line in extra(g.spool.storage(), spilled) {
        println!("{line}");
    }
    if g.c.cuts > 0 {
        println!(
            "sudden power cuts (no shutdown flush): {}, durability window {} ms; {} records lost with RAM (oldest {} ms before the last tick), {} recovered from storage",
            g.c.cuts, g.window_ms, g.c.cut_lost, g.c.cut_max_age_ms, g.c.cut_recovered
        );
    }
    if let Some((programmed, erases, sectors)) = g.c.drive_flash {
        let payload: u64 = g
            .ledger
            .sensors
            .iter()
            .map(|l| l.written as u64 * if l.period_ms == 0 { 8 } else { 4 })
            .sum();
        let hours = drive_ms as f64 / 3_600_000.0;
        let per_hour = erases as f64 / hours.max(1e-9);
        let years = if erases == 0 {
            f64::INFINITY
        } else {
            sectors as f64 * 100_000.0 / (per_hour * 24.0 * 365.0)
        };
        println!(
            "flash cost while driving (window {} ms): {programmed} bytes programmed for {payload} bytes of samples written ({:.2} B programmed per payload byte), {erases} erases = {per_hour:.1} erases per hour over {sectors} sectors; a 100k-cycle part wears out in {years:.1} years of driving 24 h a day",
            g.window_ms,
            programmed as f64 / payload.max(1) as f64,
        );
    }
    // The proof.
    let mut ok = true;
    let mut check = |name: &str, pass: bool, detail: String| {
        println!(
            "  [{}] {name}: {detail}",
            if pass { "PASS" } else { "FAIL" }
        );
        ok &= pass;
    };
    println!("proof:");
    check(
        "every delivered record is a sample its sensor wrote",
        g.ledger.value_errors == 0,
        format!("{} foreign or invented records", g.ledger.value_errors),
    );
    check(
        "exactly once and in order per sensor",
        g.ledger.order_errors == 0,
        format!("{} duplicates or reorderings", g.ledger.order_errors),
    );
    check(
        "timestamps as written",
        g.ledger.time_errors == 0,
        format!("{} records with a wrong time", g.ledger.time_errors),
    );
    check(
        "delivered + missing == written",
        delivered + missing == written,
        format!("{delivered} + {missing} == {written}"),
    );
    let eif = g.c.evicted_in_flight;
    check(
        "every missing sample is counted by the library (dropped + rejected + evicted unsent) or was in RAM at a sudden power cut",
        missing + eif == library_lost + cut_lost,
        format!(
            "missing {missing} + delivered but evicted in flight {eif} == library counted {library_lost} + lost with RAM at cuts {cut_lost}"
        ),
    );
    if g.c.cuts > 0 {
        check(
            "every record lost at a sudden power cut was written inside the window of the last tick",
            g.c.cut_outside == 0,
            format!(
                "{} of {cut_lost} lost records older than the window ({} ms){}",
                g.c.cut_outside,
                g.window_ms,
                g.c.first_cut_violation
                    .as_ref()
                    .map(|e| format!("; first: {e}"))
                    .unwrap_or_default()
            ),
        );
        check(
            "recovery after each sudden cut finds exactly the records that were not in RAM only",
            g.c.cut_recovery_mismatch == 0,
            format!(
                "{} of {} cuts disagree",
                g.c.cut_recovery_mismatch, g.c.cuts
            ),
        );
    }
    let mut per_sensor_bad = 0;
    for sen in &g.sensors {
        let l = &g.ledger.sensors[sen.ledger];
        let lost = g.spool.sensor_stats(sen.handle).map_or(0, |s| s.lost);
        // The per-sensor counter saturates at 65535 (legacy u16): such sensors are
        // covered by the total above.
        if lost == u16::MAX {
            continue;
        }
        if l.missing + g.in_flight_lost[sen.ledger]
            != g.lost_before[sen.ledger] + lost as u64 + g.cut_lost[sen.ledger]
        {
            per_sensor_bad += 1;
        }
    }
    check(
        "per sensor: missing == the sensor's lost counter",
        per_sensor_bad == 0,
        format!("{per_sensor_bad} sensors disagree"),
    );
    check(
        "store empty after the drain",
        st.records == 0 && st.pending == 0,
        format!("{} records, {} pending left", st.records, st.pending),
    );
    check(
        "no unexpected library errors",
        g.c.api_errors == 0 && g.c.short_reads == 0,
        format!(
            "{} errors, {} short reads{}",
            g.c.api_errors,
            g.c.short_reads,
            g.c.first_api_error
                .as_ref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        ),
    );
    if let Some(n) = g.c.recovered {
        check(
            "recovery after the power cut finds exactly the records held before it",
            n as u64 == g.c.stored_at_cut,
            format!("held {}, recovered {n}", g.c.stored_at_cut),
        );
    }
    check(
        "Spool::check",
        g.spool.check().is_ok(),
        format!("{:?}", g.spool.check()),
    );
    for v in &g.ledger.examples {
        println!("    {}", v.0);
    }
    println!(
        "{}",
        if ok {
            "PROOF PASSED: every sample delivered exactly once and in order, or counted as lost by the library"
        } else {
            "PROOF FAILED"
        }
    );
    ok
}

fn flash_report(s: &GwFlash, spilled: u64) -> Vec<String> {
    let f = s.flash().stats();
    let (max, min) = s.flash().erase_spread();
    let recs = spilled.max(1) as f64;
    vec![format!(
        "flash: {} program ops, {} bytes programmed ({:.2} B per record spilled), {} erases (per sector: max {max}, min {min}), {} bytes read",
        f.programs,
        f.bytes_programmed,
        f.bytes_programmed as f64 / recs,
        f.erases,
        f.bytes_read
    )]
}

fn files_report(s: &FileStorage, _spilled: u64) -> Vec<String> {
    let f = s.file_stats();
    vec![format!(
        "files: {} files now ({} bytes), {} created, {} evicted, {} fdatasync, {} directory fsync, {} I/O errors",
        f.files, f.bytes, f.files_created, f.files_evicted, f.syncs, f.dir_syncs, f.io_errors
    )]
}

fn main() {
    let a = match args::parse() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{}", args::HELP);
            return;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{}", args::HELP);
            std::process::exit(2);
        }
    };
    let kib = a.storage_kib as usize;
    let result = match a.storage {
        StorageKind::Flash => {
            let sectors = (kib * 1024).div_ceil(flash::ERASE_SIZE).max(2);
            match GwFlash::new(SimFlash::new(sectors)) {
                Ok(s) => run(
                    s,
                    &a,
                    &format!("NOR flash ({sectors} x 4 KiB sectors, simulated)"),
                    flash_report,
                    Some(|s| {
                        // The flash part keeps its contents over the power cycle.
                        // The next boot builds a fresh NorFlashStorage over the same part.
                        let blank = GwFlash::new(SimFlash::new(2)).expect("geometry");
                        let part = std::mem::replace(s, blank).into_inner();
                        GwFlash::new(part).expect("geometry")
                    }),
                    Some(save_flash),
                    flash_wear,
                ),
                Err(e) => Err(format!("NorFlashStorage::new: {e}")),
            }
        }
        StorageKind::Files => {
            let (dir, temp) = match &a.dir {
                Some(d) => (d.clone(), false),
                None => (
                    std::env::temp_dir()
                        .join(format!("sensor-spool-gateway-{}", std::process::id())),
                    true,
                ),
            };
            let mut cfg = FileConfig::new(&dir);
            cfg.disk_limit = (kib as u64 * 1024).max(2 * cfg.file_size as u64);
            cfg.free_space_reserve = 0;
            let r = match FileStorage::new(cfg) {
                Ok(s) => run(
                    s,
                    &a,
                    &format!("files in {} ({kib} KiB limit)", dir.display()),
                    files_report,
                    Some(|s| FileStorage::new(s.config().clone()).expect("reopen the directory")),
                    Some(save_files),
                    |_| None,
                ),
                Err(e) => Err(format!("FileStorage::new({}): {e}", dir.display())),
            };
            if temp {
                let _ = std::fs::remove_dir_all(&dir);
            }
            r
        }
        StorageKind::Ram => run(
            NoStorage,
            &a,
            "none (RAM only)",
            |_, _| Vec::new(),
            None,
            None,
            |_| None,
        ),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
