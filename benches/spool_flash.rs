//! Flash cost at the level users call: the `Spool` over `NorFlashStorage` (not the
//! storage layer), side by side in one run with `sequential-storage` 8.0.2 (queue)
//! and `sensor-db` 0.1.0, each on its own mock flash (`storage::mock_flash::MockFlash`,
//! 64 x 4 KiB sectors, `WRITE_SIZE` 8).
//!
//! Run: `cargo bench --bench spool_flash --features _mock-flash`
//! (`SPOOL_BENCH_QUICK=1`: 10,000 samples instead of 100,000, for a CI smoke run).
//!
//! Workload (W1-like): 100,000 samples of 8 bytes (UTC seconds + value) from 16
//! sensors written round robin, 8 TSD sensors (one sample a second) and 8 EVT
//! sensors; an uploader reads and acknowledges everything every 1,000 samples.
//!
//! Scenarios:
//! - `flush every 1` / `flush every 32`: the firmware makes its samples durable every
//!   1 / 32 samples (our spool: `flush_all_start` + `flush_all_step` until 101; the
//!   peers: one push, or a `sync`).
//! - `threshold spill`: no explicit flush; the spool spills at its default 80 % RAM
//!   threshold (the peers, which have no RAM tier, get one push / sync per batch of
//!   the spool's average spill size, at most 256 samples).
//! - `fill, reboot, read-out`: the same writes with no uploader (the ring wraps and
//!   evicts), a clean shutdown (`flush_all` / last push / `sync`), the store is
//!   dropped, a new one is built over the same flash (`recover_storage` / `mount`),
//!   and everything it still holds is read out and acknowledged.
//!
//! Our store runs on a strict write-once mock (`multiwrite = false`, ECC-strict).
//! The peers need `MultiwriteNorFlash` (sequential-storage rewrites item headers to
//! pop, sensor-db programs each page twice), so they run in multiwrite mode and the
//! `words re-programmed` column counts what a plain `NorFlash` forbids.
//!
//! Every public call is metered: the flash is wrapped in a counter and the bytes
//! read + programmed are diffed around each call, so the "worst call" column is the
//! most flash I/O any single `write` / `read` / `ack` / `flush_all_step` /
//! `recover_storage` (peers: `push` / `pop` / `append` / `sync` / `read_from` /
//! `mount`) did. Only the public API is used; the numbers move as the storage and
//! spill code change.

use embedded_storage::nor_flash::{self as bnor};
use embedded_storage_async::nor_flash as anor;
use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::{Error, SensorHandle, Spool};
use sensor_spool::storage::NorFlashStorage;
use sensor_spool::storage::mock_flash::{MockError, MockFlash, MockStats};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// Flash geometry: 64 sectors of 4 KiB, 8-byte write units.
const SECTORS: usize = 64;
const E: usize = 4096;
const W: usize = 8;
/// 16 sensors round robin: even ids TSD (1 s), odd ids EVT.
const SENSORS: usize = 16;
const RATE_MS: u32 = 1000;
const DRAIN_EVERY: u64 = 1_000;
const T0: u64 = 1_700_000_000_000;
/// Payload bytes per sample for the bytes-programmed ratio (UTC seconds + value).
const PAYLOAD: u64 = 8;
/// Entries per sensor-db `read_from` call (an upload packet).
const READ_FROM_MAX: u32 = 32;
/// Largest peer item / sync batch (samples) in the threshold and fill scenarios.
const PEER_MAX_BATCH: u64 = 256;

/// The spool's RAM: one pool tier of 64 sectors of 64 B (4 KiB; 8 EVT or 16 TSD
/// records per sector), so the default 80 % threshold (52 sectors) is crossed
/// between two uploads.
const RAM_SECTORS: usize = 64;
const RAM_SECTOR: usize = 64;
type P = Pool<Tier<RAM_SECTOR, RAM_SECTORS, 2>, Tier<128, 0, 0>, Tier<256, 0, 0>>;
/// `NorFlashStorage` staging buffer (the default).
const BUF: usize = 512;
type Fs = NorFlashStorage<Shared, BUF>;
type Ours = Spool<P, SENSORS, RAM_SECTORS, 1, Fs, SENSORS>;

fn samples() -> u64 {
    match std::env::var("SPOOL_BENCH_QUICK") {
        Ok(v) if !v.is_empty() && v != "0" => 10_000,
        _ => 100_000,
    }
}

// ------------------------------------------------------------------------------------------
// The metered flash
// ------------------------------------------------------------------------------------------

/// Shared handle to a mock flash: the store owns one handle, the bench keeps
/// another to read the counters around every call. Blocking and async traits.
#[derive(Clone)]
struct Shared<const ES: usize = E>(Rc<RefCell<MockFlash<W, ES>>>);

impl<const ES: usize> Shared<ES> {
    /// The same capacity (`SECTORS` x `E`) in sectors of `ES` bytes.
    fn new(multiwrite: bool) -> Self {
        let mut f = MockFlash::<W, ES>::new(SECTORS * E / ES, 1);
        f.multiwrite = multiwrite;
        Shared(Rc::new(RefCell::new(f)))
    }
    fn stats(&self) -> MockStats {
        self.0.borrow().stats()
    }
    fn spread(&self) -> u32 {
        let f = self.0.borrow();
        let ec = f.erase_counts();
        ec.iter().max().unwrap_or(&0) - ec.iter().min().unwrap_or(&0)
    }
    /// Bytes in use: per sector, up to its last programmed (non-0xFF) byte.
    /// What any log reader that finds where a sector's frames end by reading
    /// past them reads at least: every used byte once, and a frame header's
    /// worth (4 B) after the last programmed byte where it fits.
    fn recovery_floor(&self) -> u64 {
        let f = self.0.borrow();
        f.image()
            .chunks(ES)
            .map(|s| {
                let end = s.iter().rposition(|&b| b != 0xFF).map_or(0, |p| p + 1);
                (end + if end + 4 <= ES { 4 } else { 0 }) as u64
            })
            .sum()
    }

    fn used_bytes(&self) -> u64 {
        let f = self.0.borrow();
        f.image()
            .chunks(ES)
            .map(|s| {
                s.iter()
                    .rposition(|&b| b != 0xFF)
                    .map_or(0, |p| p as u64 + 1)
            })
            .sum()
    }
}

impl<const ES: usize> bnor::ErrorType for Shared<ES> {
    type Error = MockError;
}

impl<const ES: usize> bnor::ReadNorFlash for Shared<ES> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockError> {
        self.0.borrow_mut().read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.borrow().capacity()
    }
}

impl<const ES: usize> bnor::NorFlash for Shared<ES> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = ES;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), MockError> {
        self.0.borrow_mut().erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockError> {
        self.0.borrow_mut().write(offset, bytes)
    }
}

impl<const ES: usize> bnor::MultiwriteNorFlash for Shared<ES> {}

impl<const ES: usize> anor::ReadNorFlash for Shared<ES> {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockError> {
        bnor::ReadNorFlash::read(self, offset, bytes)
    }
    fn capacity(&self) -> usize {
        bnor::ReadNorFlash::capacity(self)
    }
}

impl<const ES: usize> anor::NorFlash for Shared<ES> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = ES;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), MockError> {
        bnor::NorFlash::erase(self, from, to)
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockError> {
        bnor::NorFlash::write(self, offset, bytes)
    }
}

impl<const ES: usize> anor::MultiwriteNorFlash for Shared<ES> {}

fn delta(a: MockStats, b: MockStats) -> MockStats {
    MockStats {
        reads: b.reads - a.reads,
        bytes_read: b.bytes_read - a.bytes_read,
        programs: b.programs - a.programs,
        bytes_programmed: b.bytes_programmed - a.bytes_programmed,
        erases: b.erases - a.erases,
        rewrites: b.rewrites - a.rewrites,
    }
}

fn add(a: &mut MockStats, d: MockStats) {
    a.reads += d.reads;
    a.bytes_read += d.bytes_read;
    a.programs += d.programs;
    a.bytes_programmed += d.bytes_programmed;
    a.erases += d.erases;
    a.rewrites += d.rewrites;
}

/// Per public call kind: calls, summed flash counters, and the most flash I/O
/// (bytes read + bytes programmed) one call did.
#[derive(Clone, Copy)]
struct CallStats {
    name: &'static str,
    calls: u64,
    sum: MockStats,
    worst: u64,
}

/// Diffs the flash counters around every public call.
struct Meter<const ES: usize = E> {
    flash: Shared<ES>,
    calls: Vec<CallStats>,
}

impl<const ES: usize> Meter<ES> {
    fn new(flash: &Shared<ES>) -> Self {
        Meter {
            flash: flash.clone(),
            calls: Vec::new(),
        }
    }
    fn call<R>(&mut self, name: &'static str, f: impl FnOnce() -> R) -> R {
        let before = self.flash.stats();
        let r = f();
        let d = delta(before, self.flash.stats());
        let i = match self.calls.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.calls.push(CallStats {
                    name,
                    calls: 0,
                    sum: MockStats::default(),
                    worst: 0,
                });
                self.calls.len() - 1
            }
        };
        let c = &mut self.calls[i];
        c.calls += 1;
        add(&mut c.sum, d);
        c.worst = c.worst.max(d.bytes_read + d.bytes_programmed);
        r
    }
    fn sum(&self, names: &[&str]) -> MockStats {
        let mut s = MockStats::default();
        for c in self.calls.iter().filter(|c| names.contains(&c.name)) {
            add(&mut s, c.sum);
        }
        s
    }
    fn worst(&self) -> (u64, &'static str) {
        self.calls
            .iter()
            .map(|c| (c.worst, c.name))
            .max_by_key(|&(w, _)| w)
            .unwrap_or((0, "-"))
    }
}

// ------------------------------------------------------------------------------------------
// Workload
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Durable every n samples.
    Flush(u64),
    /// The spool's threshold spill only.
    Threshold,
    /// Fill without uploads, clean shutdown, reboot, recover, read out.
    Reboot,
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Scenario::Flush(n) => format!("flush every {n}"),
            Scenario::Threshold => "threshold spill".into(),
            Scenario::Reboot => "fill, reboot, read-out".into(),
        }
    }
    fn drains(self) -> bool {
        self != Scenario::Reboot
    }
    /// Samples per push / sync for the peers.
    fn peer_batch(self, spill_avg: u64) -> u64 {
        match self {
            Scenario::Flush(n) => n,
            _ => spill_avg.clamp(1, PEER_MAX_BATCH),
        }
    }
}

fn key(j: usize) -> SensorKey {
    SensorKey::new(1, 100 + j as u32)
}

fn is_tsd(j: usize) -> bool {
    j.is_multiple_of(2)
}

fn value(j: usize, k: u64) -> u32 {
    (k as u32).wrapping_mul(2_654_435_761) ^ j as u32
}

fn time_ms(k: u64) -> u64 {
    T0 + k * RATE_MS as u64
}

/// Sample `i` of the run: (sensor, its sample number).
fn at(i: u64) -> (usize, u64) {
    ((i % SENSORS as u64) as usize, i / SENSORS as u64)
}

/// The 8 payload bytes of a sample for the peers: UTC seconds, value.
fn sample_bytes(j: usize, k: u64) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&((time_ms(k) / 1000) as u32).to_le_bytes());
    b[4..].copy_from_slice(&value(j, k).to_le_bytes());
    b
}

// ------------------------------------------------------------------------------------------
// Results
// ------------------------------------------------------------------------------------------

struct Row {
    scenario: String,
    system: String,
    written: u64,
    /// Every flash counter from the first write to the end of the read-out.
    total: MockStats,
    /// Batches put on flash (spill batches / pushes / syncs) and the program
    /// operations of the calls that write them.
    batches: u64,
    batch_programs: u64,
    /// Flash bytes programmed per record put on flash by the write path
    /// (frames, headers, reservations; not acknowledgements).
    on_flash: Option<f64>,
    /// Records put on flash by the write path.
    to_flash: u64,
    erase_spread: u32,
    delivered: u64,
    /// Records delivered from flash (ours: flushed - lost in storage).
    from_flash: u64,
    /// Unacknowledged records `recover_storage` found after the reboot (ours).
    recovered: Option<u64>,
    /// Records the new spool counted lost during the read-out, and of them
    /// those counted during `ack` calls (ours).
    readout_lost: Option<(u64, u64)>,
    /// Flash bytes read by the uploader's calls (read / ack / pop / read_from).
    drain_read: u64,
    /// Bytes read by mount + recovery after the reboot, and the flash in use then.
    mount: Option<(u64, u64)>,
    /// Records counted lost (eviction, RAM drops) before the reboot / the end.
    lost_counted: Option<u64>,
    /// Records whose value or time came back wrong.
    bad: u64,
    calls: Vec<CallStats>,
    worst: (u64, &'static str),
    nanos: u128,
    /// Ours: the index-less read floor summed over the drains (see
    /// [`read_floor`]): (bytes, records in storage it covers).
    read_floor: Option<(u64, u64)>,
    /// Ours, after the reboot: the recovery floor in bytes (see
    /// [`Shared::recovery_floor`]).
    recovery_floor: Option<u64>,
}

impl Row {
    fn read_per_delivered(&self) -> Option<f64> {
        (self.from_flash > 0).then(|| self.drain_read as f64 / self.from_flash as f64)
    }
    fn lost_draining(&self) -> Option<i64> {
        self.lost_counted
            .map(|l| self.written as i64 - self.delivered as i64 - l as i64)
    }
}

// ------------------------------------------------------------------------------------------
// sensor-spool: Spool over NorFlashStorage
// ------------------------------------------------------------------------------------------

fn new_spool(flash: &Shared) -> (Ours, Vec<SensorHandle>) {
    let st = NorFlashStorage::<_, BUF>::new(flash.clone()).expect("geometry");
    let mut s: Ours = Spool::new(P::new(), st, OverflowPolicy::DropOldestUnsent);
    let hs = (0..SENSORS)
        .map(|j| {
            s.register(key(j), if is_tsd(j) { RATE_MS } else { 0 })
                .expect("register")
        })
        .collect();
    (s, hs)
}

/// Bytes of a run header a reader must look at to pass a run that is not its
/// sensor's: lead (kind and count), source and at least one byte of the id.
const FLOOR_PASS: u64 = 3;

/// The read floor of the drain about to run, for any log format without an
/// index whose runs are whole in themselves (each names its sensor): the
/// uploader reads sensor by sensor, so a reader of sensor `j` must look at
/// every run (of any sensor) between its first and its last owed run, at
/// least [`FLOOR_PASS`] bytes each, and read its own records. Measured on a
/// copy of the flash: the live runs in log order, the spool's owed numbers.
/// Returns (bytes, records in storage).
fn read_floor(flash: &Shared, s: &Ours, hs: &[SensorHandle]) -> (u64, u64) {
    use sensor_spool::storage::{LogEntry, RunInfo, Storage};
    let image = flash.0.borrow().clone();
    let mut st = NorFlashStorage::<_, BUF>::new(image).expect("geometry");
    st.mount().expect("mount of a copy");
    let mut runs: Vec<RunInfo> = Vec::new();
    st.recover(|e| {
        if let LogEntry::Run(r) = e {
            runs.push(r);
        }
    })
    .expect("walk of a copy");
    let (mut bytes, mut records) = (0u64, 0u64);
    for (j, &h) in hs.iter().enumerate() {
        let st = s.sensor_stats(h).expect("sensor");
        let first = st.next_seq - st.count;
        let owed = |r: &RunInfo| r.key == key(j) && r.first_seq + r.count as u32 > first;
        let (Some(a), Some(b)) = (runs.iter().position(owed), runs.iter().rposition(owed)) else {
            continue;
        };
        for r in &runs[a..=b] {
            bytes += FLOOR_PASS;
            if owed(r) {
                let n = (r.first_seq + r.count as u32 - first.max(r.first_seq)) as u64;
                bytes += n * r.kind.record_size() as u64;
                records += n;
            }
        }
    }
    (bytes, records)
}

/// Reads everything every sensor has, then acknowledges it: (delivered, bad,
/// records the spool counted lost during the `ack` calls).
fn drain(s: &mut Ours, hs: &[SensorHandle], m: &mut Meter) -> (u64, u64, u64) {
    let (mut delivered, mut bad, mut ack_lost) = (0u64, 0u64, 0u64);
    for (j, &h) in hs.iter().enumerate() {
        let mut n = 0u32;
        loop {
            match m.call("read", || s.read(h)) {
                Ok(r) => {
                    n += 1;
                    let k = r.seq as u64;
                    let want_t = if is_tsd(j) {
                        time_ms(k)
                    } else {
                        time_ms(k) / 1000 * 1000
                    };
                    if r.value != value(j, k) || r.time_ms != want_t {
                        bad += 1;
                    }
                }
                Err(Error::NoData) => break,
                Err(e) => panic!("read of sensor {j}: {e:?}"),
            }
        }
        if n > 0 {
            let before = lost_counted(s);
            m.call("ack", || s.ack(h, n)).expect("ack");
            ack_lost += lost_counted(s) - before;
        }
        delivered += n as u64;
    }
    (delivered, bad, ack_lost)
}

fn flush_all(s: &mut Ours, m: &mut Meter) {
    s.flush_all_start();
    while m
        .call("flush step", || s.flush_all_step())
        .expect("flush step")
        != 101
    {}
}

fn lost_counted(s: &Ours) -> u64 {
    let st = s.stats();
    s.spill_stats().lost as u64 + st.dropped as u64 + st.rejected as u64
}

fn ours(sc: Scenario, n: u64) -> Row {
    let flash = Shared::new(false);
    let (mut s, hs) = new_spool(&flash);
    s.recover_storage().expect("mount of the empty flash");
    let mut m = Meter::new(&flash);
    let start = flash.stats();
    let t = Instant::now();
    let (mut delivered, mut bad) = (0u64, 0u64);
    let mut floor = (0u64, 0u64);
    for i in 0..n {
        let (j, k) = at(i);
        m.call("write", || s.write(hs[j], value(j, k), time_ms(k)))
            .expect("write");
        if let Scenario::Flush(every) = sc
            && (i + 1).is_multiple_of(every)
        {
            flush_all(&mut s, &mut m);
        }
        if sc.drains() && (i + 1).is_multiple_of(DRAIN_EVERY) {
            let (fb, fr) = read_floor(&flash, &s, &hs);
            floor = (floor.0 + fb, floor.1 + fr);
            let (d, b, _) = drain(&mut s, &hs, &mut m);
            delivered += d;
            bad += b;
        }
    }
    let mut mount = None;
    let mut recovered = None;
    let mut recovery_floor = None;
    let mut readout_lost = None;
    let (batches, flushed, lost, spill_lost);
    if sc == Scenario::Reboot {
        // Clean shutdown, then a new spool over the same flash.
        flush_all(&mut s, &mut m);
        let sp = s.spill_stats();
        (batches, flushed) = (sp.batches as u64, sp.flushed as u64);
        lost = lost_counted(&s);
        spill_lost = sp.lost as u64;
        drop(s);
        let (mut s2, hs2) = new_spool(&flash);
        let used = flash.used_bytes();
        recovery_floor = Some(flash.recovery_floor());
        let before = m.sum(&["recover"]).bytes_read;
        let found = m
            .call("recover", || s2.recover_storage())
            .expect("recover_storage");
        recovered = Some(found as u64);
        mount = Some((m.sum(&["recover"]).bytes_read - before, used));
        let (fb, fr) = read_floor(&flash, &s2, &hs2);
        floor = (floor.0 + fb, floor.1 + fr);
        let (d, b, in_acks) = drain(&mut s2, &hs2, &mut m);
        delivered += d;
        bad += b;
        // What the new spool counts lost while reading out (an acknowledgement
        // mark opening a sector on a full ring evicts the oldest one) is not
        // "counted before the reboot": it stays in the lost-while-draining figure.
        readout_lost = Some((lost_counted(&s2), in_acks));
    } else {
        let (fb, fr) = read_floor(&flash, &s, &hs);
        floor = (floor.0 + fb, floor.1 + fr);
        let (d, b, _) = drain(&mut s, &hs, &mut m);
        delivered += d;
        bad += b;
        let sp = s.spill_stats();
        (batches, flushed) = (sp.batches as u64, sp.flushed as u64);
        lost = lost_counted(&s);
        spill_lost = sp.lost as u64;
    }
    let nanos = t.elapsed().as_nanos();
    // The write path: every call but `ack` (marks) and `recover` (no programs). A
    // `read` can program too: a reservation frame, or a spill of the sensor's RAM
    // records when more than one batch of them would be handed out from RAM.
    let wp = m.sum(&["write", "flush step", "read"]);
    Row {
        scenario: sc.name(),
        system: "sensor-spool Spool + NorFlashStorage (strict)".into(),
        written: n,
        total: delta(start, flash.stats()),
        batches,
        batch_programs: wp.programs,
        on_flash: (flushed > 0).then(|| wp.bytes_programmed as f64 / flushed as f64),
        to_flash: flushed,
        erase_spread: flash.spread(),
        delivered,
        from_flash: flushed.saturating_sub(spill_lost),
        recovered,
        readout_lost,
        drain_read: m.sum(&["read", "ack"]).bytes_read,
        mount,
        lost_counted: Some(lost),
        bad,
        worst: m.worst(),
        calls: m.calls,
        nanos,
        read_floor: Some(floor),
        recovery_floor,
    }
}

// ------------------------------------------------------------------------------------------
// sequential-storage 8.0.2 queue
// ------------------------------------------------------------------------------------------

fn seq_storage(sc: Scenario, n: u64, spill_avg: u64) -> Row {
    use sequential_storage::cache::{Cache, Uncached};
    use sequential_storage::queue::{QueueConfig, QueueStorage};
    type Q = QueueStorage<Shared, Cache<Uncached, Uncached, Uncached, ()>>;
    let flash = Shared::new(true);
    let cfg = || const { QueueConfig::new(0..(SECTORS * E) as u32) };
    let mut q: Q = QueueStorage::new(flash.clone(), cfg(), Cache::new_uncached());
    let mut m = Meter::new(&flash);
    let start = flash.stats();
    let t = Instant::now();
    let batch = sc.peer_batch(spill_avg);
    let mut item: Vec<u8> = Vec::with_capacity(batch as usize * 8);
    let (mut delivered, mut pushes, mut bad) = (0u64, 0u64, 0u64);
    let mut pop_all = |q: &mut Q, m: &mut Meter| {
        let mut buf = [0u8; E];
        let mut got = 0u64;
        while let Some(d) = m
            .call("pop", || embassy_futures::block_on(q.pop(&mut buf)))
            .expect("pop")
        {
            got += (d.len() / 8) as u64;
            if !d.len().is_multiple_of(8) {
                bad += 1;
            }
        }
        got
    };
    for i in 0..n {
        let (j, k) = at(i);
        item.extend_from_slice(&sample_bytes(j, k));
        if (i + 1).is_multiple_of(batch) || i + 1 == n {
            m.call("push", || embassy_futures::block_on(q.push(&item, true)))
                .expect("push");
            pushes += 1;
            item.clear();
        }
        if sc.drains() && (i + 1).is_multiple_of(DRAIN_EVERY) {
            delivered += pop_all(&mut q, &mut m);
        }
    }
    let mut mount = None;
    if sc == Scenario::Reboot {
        drop(q);
        let used = flash.used_bytes();
        // No mount: the queue finds its state on the first operation (in the pops).
        let mut q2: Q = QueueStorage::new(flash.clone(), cfg(), Cache::new_uncached());
        mount = Some((0, used));
        delivered += pop_all(&mut q2, &mut m);
    } else {
        delivered += pop_all(&mut q, &mut m);
    }
    let nanos = t.elapsed().as_nanos();
    let wp = m.sum(&["push"]);
    Row {
        scenario: sc.name(),
        system: "sequential-storage 8.0.2 queue (multiwrite)".into(),
        written: n,
        total: delta(start, flash.stats()),
        batches: pushes,
        batch_programs: wp.programs,
        on_flash: Some(wp.bytes_programmed as f64 / n as f64),
        to_flash: n,
        erase_spread: flash.spread(),
        delivered,
        from_flash: delivered,
        recovered: None,
        readout_lost: None,
        drain_read: m.sum(&["pop"]).bytes_read,
        mount,
        // Overwritten items are not reported.
        lost_counted: if sc == Scenario::Reboot {
            None
        } else {
            Some(0)
        },
        bad,
        worst: m.worst(),
        calls: m.calls,
        nanos,
        read_floor: None,
        recovery_floor: None,
    }
}

// ------------------------------------------------------------------------------------------
// sensor-db 0.1.0
// ------------------------------------------------------------------------------------------

/// sensor-db with `PAGE`-byte pages on sectors of `ES` bytes (same capacity).
fn sensor_db<const PAGE: usize, const ES: usize>(sc: Scenario, n: u64, spill_avg: u64) -> Row {
    use sensor_db::db::{LogPosition, Replicated, SensorDb};
    type Db<const PAGE: usize, const ES: usize> = SensorDb<Shared<ES>, PAGE, SECTORS>;
    let sectors = (SECTORS * E / ES) as u16;
    let flash = Shared::<ES>::new(true);
    let mut db: Db<PAGE, ES> = SensorDb::new(flash.clone(), 0, sectors, 0).expect("sensor-db");
    db.format().expect("format");
    let mut m = Meter::new(&flash);
    let start = flash.stats();
    let t = Instant::now();
    let batch = sc.peer_batch(spill_avg);
    let (mut delivered, mut syncs, mut bad) = (0u64, 0u64, 0u64);
    // Its drain position lives in RAM (`read_from` cursor + `note_spooled`).
    let mut cursor = LogPosition::BEGINNING;
    let mut read_all = |db: &mut Db<PAGE, ES>, m: &mut Meter<ES>, cursor: &mut LogPosition| {
        let mut got = 0u64;
        loop {
            let c = m
                .call("read_from", || {
                    db.read_from(*cursor, READ_FROM_MAX, |_, _, p| {
                        if p.len() != 8 {
                            bad += 1;
                        }
                        Ok(true)
                    })
                })
                .expect("read_from");
            *cursor = c.next;
            db.note_spooled(c.next, Replicated::singles(c.entries));
            got += c.entries as u64;
            if c.exhausted || c.entries == 0 {
                break got;
            }
        }
    };
    for i in 0..n {
        let (j, k) = at(i);
        m.call("append", || {
            db.append(j as u16, time_ms(k), &sample_bytes(j, k))
        })
        .expect("append");
        if (i + 1).is_multiple_of(batch) || i + 1 == n {
            m.call("sync", || db.sync()).expect("sync");
            syncs += 1;
        }
        if sc.drains() && (i + 1).is_multiple_of(DRAIN_EVERY) {
            delivered += read_all(&mut db, &mut m, &mut cursor);
        }
    }
    let mut mount = None;
    let lost;
    if sc == Scenario::Reboot {
        lost = db.spool_stats().dropped_unspooled as u64;
        drop(db);
        let used = flash.used_bytes();
        let mut db2: Db<PAGE, ES> = SensorDb::new(flash.clone(), 0, sectors, 0).expect("sensor-db");
        let before = m.sum(&["mount"]).bytes_read;
        m.call("mount", || db2.mount()).expect("mount");
        mount = Some((m.sum(&["mount"]).bytes_read - before, used));
        let mut c2 = LogPosition::BEGINNING;
        delivered += read_all(&mut db2, &mut m, &mut c2);
    } else {
        delivered += read_all(&mut db, &mut m, &mut cursor);
        lost = db.spool_stats().dropped_unspooled as u64;
    }
    let nanos = t.elapsed().as_nanos();
    let wp = m.sum(&["append", "sync"]);
    Row {
        scenario: sc.name(),
        system: format!(
            "sensor-db 0.1.0 ({} pages{}, multiwrite, one append per sample)",
            if PAGE >= 1024 {
                format!("{} KiB", PAGE / 1024)
            } else {
                format!("{PAGE} B")
            },
            if ES == E {
                String::new()
            } else {
                format!(" on {} x {} KiB sectors", SECTORS * E / ES, ES / 1024)
            }
        ),
        written: n,
        total: delta(start, flash.stats()),
        batches: syncs,
        batch_programs: wp.programs,
        on_flash: Some(wp.bytes_programmed as f64 / n as f64),
        to_flash: n,
        erase_spread: flash.spread(),
        delivered,
        from_flash: delivered,
        recovered: None,
        readout_lost: None,
        drain_read: m.sum(&["read_from"]).bytes_read,
        mount,
        lost_counted: Some(lost),
        bad,
        worst: m.worst(),
        calls: m.calls,
        nanos,
        read_floor: None,
        recovery_floor: None,
    }
}

// ------------------------------------------------------------------------------------------
// Output
// ------------------------------------------------------------------------------------------

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "n/a".into(), f)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "not met" }
}

/// LEB128 length of `v`.
fn varint_len(v: u64) -> u64 {
    (64 - u64::from((v | 1).leading_zeros())).div_ceil(7)
}

/// Lower bound of bytes programmed / payload when the spool is flushed every
/// `every` samples and every run of a frame is whole in itself: the records,
/// the shortest header that names sensor, first sequence number and count
/// (and a TSD run's times), and a frame header + CRC per flush.
fn program_floor(every: u64, n: u64) -> f64 {
    let mut since = [0u64; SENSORS];
    let mut first = [0u64; SENSORS];
    let mut bytes = 0u64;
    let flush = |since: &mut [u64; SENSORS], first: &[u64; SENSORS]| {
        let mut b = 0;
        for (j, c) in since.iter_mut().enumerate() {
            if *c == 0 {
                continue;
            }
            let k = key(j);
            b += 2 + if *c > 63 { varint_len(*c) } else { 0 };
            b += varint_len(u64::from(k.id)) + varint_len(first[j]);
            b += if is_tsd(j) {
                varint_len(time_ms(first[j])) + varint_len(u64::from(RATE_MS)) + 4 * *c
            } else {
                8 * *c
            };
            *c = 0;
        }
        if b > 0 { b + 8 } else { 0 }
    };
    for i in 0..n {
        let (j, k) = at(i);
        if since[j] == 0 {
            first[j] = k;
        }
        since[j] += 1;
        if (i + 1).is_multiple_of(every) {
            bytes += flush(&mut since, &first);
        }
    }
    bytes += flush(&mut since, &first);
    bytes as f64 / (n * PAYLOAD) as f64
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a system name filter.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let n = samples();
    let t_all = Instant::now();
    let scenarios = [
        Scenario::Flush(1),
        Scenario::Flush(32),
        Scenario::Threshold,
        Scenario::Reboot,
    ];
    // The spool's threshold run first: its average spill batch sizes the peers'
    // batches in the threshold and fill scenarios.
    let thr = ours(Scenario::Threshold, n);
    let spill_avg = if thr.batches > 0 {
        thr.to_flash.div_ceil(thr.batches)
    } else {
        PEER_MAX_BATCH
    };
    let mut thr = Some(thr);
    let mut rows = Vec::new();
    for sc in scenarios {
        rows.push(match sc {
            Scenario::Threshold => thr.take().unwrap_or_else(|| ours(sc, n)),
            _ => ours(sc, n),
        });
        rows.push(seq_storage(sc, n, spill_avg));
        rows.push(sensor_db::<256, E>(sc, n, spill_avg));
        rows.push(sensor_db::<1024, E>(sc, n, spill_avg));
        // sensor-db needs three pages per sector: 4 KiB pages run on 16 KiB sectors.
        rows.push(sensor_db::<4096, { 4 * E }>(sc, n, spill_avg));
    }
    let rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| {
            filter
                .as_ref()
                .is_none_or(|f| r.system.contains(f.as_str()))
        })
        .collect();

    println!(
        "\nSpool-level flash cost: {n} x 8-byte samples, {SENSORS} sensors round robin (8 TSD at 1 s, 8 EVT), \
         {SECTORS} x {E} B sectors, WRITE_SIZE {W}, uploader reads + acks everything every {DRAIN_EVERY} samples \
         (not in the fill scenario)."
    );
    println!(
        "Our spool: pool tier of {RAM_SECTORS} x {RAM_SECTOR} B RAM sectors ({} KiB; {} EVT / {} TSD records per sector), \
         default 80 % flush threshold ({} sectors), NorFlashStorage staging buffer BUF = {BUF} B, strict write-once mock \
         (multiwrite off, ECC-strict). Threshold/fill peers push/sync every {} samples (the spool's average spill batch, \
         capped at {PEER_MAX_BATCH}). sensor-db: 256 B pages (its documented size), 1 KiB pages (as benches/flash.rs) and 4 KiB pages (sensor-db refuses a sector smaller than three pages, so those rows use 16 x 16 KiB sectors, the same 256 KiB).\n",
        RAM_SECTORS * RAM_SECTOR / 1024,
        RAM_SECTOR / 8,
        RAM_SECTOR / 4,
        (80 * RAM_SECTORS).div_ceil(100),
        spill_avg.clamp(1, PEER_MAX_BATCH),
    );
    println!(
        "| scenario | system | bytes programmed / payload | program ops / batch | batches | erases | erase spread | words re-programmed | on-flash B / record | flash bytes read / record delivered from flash | target <= 2x on-flash | mount + recovery bytes read | / used flash (target <= 1.0x) | written / delivered / counted lost | records lost while draining | worst flash I/O in one call | ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let payload = |r: &Row| r.written as f64 * PAYLOAD as f64;
    for r in &rows {
        let rpd = r.read_per_delivered();
        let target = match (rpd, r.on_flash) {
            (Some(x), Some(o)) => format!("{} ({:.1} B)", met(x <= 2.0 * o), 2.0 * o),
            _ => "n/a".into(),
        };
        let (mount_s, ratio_s) = match r.mount {
            Some((b, used)) if b > 0 || !r.system.starts_with("sequential") => (
                format!("{b}"),
                if used > 0 {
                    let x = b as f64 / used as f64;
                    format!("{x:.3}x of {used} B, {}", met(x <= 1.0))
                } else {
                    "n/a".into()
                },
            ),
            Some(_) => ("n/a (no mount)".into(), "n/a".into()),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {:.3}x | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} | {} B ({}) | {:.0} |",
            r.scenario,
            r.system,
            r.total.bytes_programmed as f64 / payload(r),
            if r.batches > 0 {
                r.batch_programs as f64 / r.batches as f64
            } else {
                0.0
            },
            r.batches,
            r.total.erases,
            r.erase_spread,
            r.total.rewrites,
            opt(r.on_flash, |o| format!("{o:.2}")),
            opt(rpd, |x| format!("{x:.1}")),
            target,
            mount_s,
            ratio_s,
            r.written,
            r.delivered,
            opt(r.lost_counted, |l| l.to_string()),
            opt(r.lost_draining(), |l| l.to_string()),
            r.worst.0,
            r.worst.1,
            r.nanos as f64 / 1e6,
        );
    }
    println!("\nFlash I/O by public call (worst = most bytes read + programmed by one call):\n");
    println!("| scenario | system | by call |");
    println!("|---|---|---|");
    for r in &rows {
        let per: Vec<String> = r
            .calls
            .iter()
            .map(|c| {
                format!(
                    "{}: worst {} B, {} calls, {} prog ops, {} B programmed, {} B read, {} erases",
                    c.name,
                    c.worst,
                    c.calls,
                    c.sum.programs,
                    c.sum.bytes_programmed,
                    c.sum.bytes_read,
                    c.sum.erases
                )
            })
            .collect();
        println!("| {} | {} | {} |", r.scenario, r.system, per.join("; "));
    }
    println!();
    println!(
        "Definitions: payload = samples written x {PAYLOAD} B. Batch = a spill / shutdown-flush batch of the spool \
         (SpillStats::batches), a push, or a sync; program ops / batch = program operations of the write path \
         (every call but ack: write, flush step and read, which can spill or reserve; push; append + sync) per batch. \
         On-flash B / record = bytes the write path programmed per record it put on flash (frames, sector headers, \
         reservations; not acknowledgement marks). \
         Records delivered from flash: ours = records flushed - records lost in storage (the rest were read from RAM); \
         peers = all delivered. Flash bytes read counts the uploader's calls only (read + ack; pop; read_from). \
         Mount + recovery: `recover_storage` (ours) or `mount` (sensor-db) of the new store after the reboot; \
         used flash = per sector, bytes up to its last programmed byte, at the reboot. \
         Counted lost = records the store reported lost before the reboot (fill) or by the end (others): ours \
         SpillStats::lost (evicted unacknowledged) + Stats::dropped + Stats::rejected; sensor-db \
         SpoolStats::dropped_unspooled (entries overwritten before note_spooled); sequential-storage reports none (n/a). \
         Records lost while draining = written - delivered - counted lost."
    );
    for r in rows.iter().filter(|r| r.recovered.is_some()) {
        println!(
            "{} / {}: before the reboot {} records written, {} counted lost (evicted unacknowledged); \
             recover_storage found {} unacknowledged records; the read-out delivered {} and the new spool \
             counted {} lost during it ({} of them during ack calls).",
            r.scenario,
            r.system,
            r.written,
            r.lost_counted.unwrap_or(0),
            r.recovered.unwrap_or(0),
            r.delivered,
            r.readout_lost.map_or(0, |l| l.0),
            r.readout_lost.map_or(0, |l| l.1),
        );
    }
    for r in rows.iter().filter(|r| r.bad > 0) {
        if r.bad > 0 {
            println!(
                "WARNING: {} / {}: {} records came back with a wrong value or time",
                r.scenario, r.system, r.bad
            );
        }
    }
    for every in [1u64, 32] {
        let (floor, ours_x) = (
            program_floor(every, n),
            rows.iter()
                .find(|r| {
                    r.scenario == Scenario::Flush(every).name()
                        && r.system.starts_with("sensor-spool")
                })
                .map(|r| r.total.bytes_programmed as f64 / payload(r)),
        );
        println!(
            "Floor, flush every {every}: {floor:.3}x payload for any format whose runs are whole in themselves \
             (each names its sensor, first sequence number and count in the fewest bytes: kind+count 1, source 1, \
             varint id, varint first number, TSD varint base time and interval; 8 B of frame header + CRC per flush; \
             no marks, reservations, sector headers or padding); ours {} (target 1.25x).",
            opt(ours_x, |x| format!("{x:.3}x"))
        );
    }
    for r in rows.iter() {
        let (Some(fl), Some((b, used))) = (r.recovery_floor, r.mount) else {
            continue;
        };
        println!(
            "Recovery floor, {}: {fl} B = {:.4}x the used flash for any log that finds where each sector's frames end \
             by reading past them (every used byte once, plus a 4-byte frame header after a sector's last programmed \
             byte); ours {b} B = {:.4}x ({:.4}x the floor).",
            r.scenario,
            fl as f64 / used.max(1) as f64,
            b as f64 / used.max(1) as f64,
            b as f64 / fl.max(1) as f64
        );
    }
    for (r, (fb, fr)) in rows.iter().filter_map(|r| Some((r, r.read_floor?))) {
        let floor = fb as f64 / fr.max(1) as f64;
        println!(
            "Read floor, {}: {floor:.1} B per stored record read sensor by sensor ({:.1}x the on-flash size) for any \
             log without an index whose runs name their sensor ({FLOOR_PASS} B looked at per run passed between a \
             sensor's first and last owed run, plus its records; {fr} records over the drains); ours {} B (goal 2x on-flash).",
            r.scenario,
            floor / r.on_flash.unwrap_or(f64::NAN),
            opt(r.read_per_delivered(), |x| format!("{x:.1}"))
        );
    }
    println!(
        "Peers: sequential-storage: no mount step (state found by the first pop), overwritten items not reported; \
         sensor-db: drain position in RAM only (read_from, {READ_FROM_MAX} entries a call, + note_spooled)."
    );
    println!();
    // Machine-readable rows (scripts/bench.sh): tab-separated key=value.
    for r in &rows {
        let rpd = r.read_per_delivered();
        let worst_of = |name: &str| {
            r.calls
                .iter()
                .find(|c| c.name == name)
                .map_or("n/a".to_string(), |c| c.worst.to_string())
        };
        let fields = [
            ("scenario", r.scenario.clone()),
            ("system", r.system.clone()),
            ("samples", r.written.to_string()),
            (
                "prog_per_payload",
                format!("{:.3}", r.total.bytes_programmed as f64 / payload(r)),
            ),
            (
                "ops_per_batch",
                format!("{:.2}", r.batch_programs as f64 / r.batches.max(1) as f64),
            ),
            ("batches", r.batches.to_string()),
            ("erases", r.total.erases.to_string()),
            ("spread", r.erase_spread.to_string()),
            ("rewrites", r.total.rewrites.to_string()),
            ("on_flash", opt(r.on_flash, |o| format!("{o:.2}"))),
            ("read_per_record", opt(rpd, |x| format!("{x:.1}"))),
            (
                "read_target",
                match (rpd, r.on_flash) {
                    (Some(x), Some(o)) => met(x <= 2.0 * o).replace(' ', "_"),
                    _ => "n/a".into(),
                },
            ),
            (
                "mount_read",
                match r.mount {
                    Some((b, _)) if b > 0 || !r.system.starts_with("sequential") => b.to_string(),
                    _ => "n/a".into(),
                },
            ),
            (
                "mount_ratio",
                match r.mount {
                    Some((b, used))
                        if used > 0 && (b > 0 || !r.system.starts_with("sequential")) =>
                    {
                        format!("{:.4}", b as f64 / used as f64)
                    }
                    _ => "n/a".into(),
                },
            ),
            (
                "recovery_floor",
                match (r.recovery_floor, r.mount) {
                    (Some(f), Some((_, used))) if used > 0 => {
                        format!("{:.4}", f as f64 / used as f64)
                    }
                    _ => "n/a".into(),
                },
            ),
            ("used", r.mount.map_or("n/a".into(), |(_, u)| u.to_string())),
            ("delivered", r.delivered.to_string()),
            ("lost_counted", opt(r.lost_counted, |l| l.to_string())),
            ("lost_draining", opt(r.lost_draining(), |l| l.to_string())),
            ("worst_io", r.worst.0.to_string()),
            ("worst_call", r.worst.1.replace(' ', "_")),
            ("worst_write", worst_of("write")),
            ("worst_read", worst_of("read")),
            ("worst_ack", worst_of("ack")),
            ("worst_flush_step", worst_of("flush step")),
            ("worst_recover", worst_of("recover")),
            ("recovered", opt(r.recovered, |n| n.to_string())),
            ("readout_lost", opt(r.readout_lost, |l| l.0.to_string())),
            (
                "readout_lost_in_acks",
                opt(r.readout_lost, |l| l.1.to_string()),
            ),
            ("bad", r.bad.to_string()),
        ];
        let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("SPOOL_FLASH_ROW\t{}", line.join("\t"));
    }
    println!(
        "\nspool_flash: {} rows in {:.1} s",
        rows.len(),
        t_all.elapsed().as_secs_f64()
    );
}
