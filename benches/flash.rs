//! Side-by-side flash cost of `NorFlashStorage` vs `sequential-storage` 8.0.2
//! (queue) and `sensor-db` 0.1.0, on the same fault-free mock flash
//! (`storage::mock_flash::MockFlash`), with the same workload: 100,000 8-byte
//! samples from 4 sensors, batches of B samples of one sensor, 64 x 4 KiB
//! sectors (the ring wraps about three times), and an uploader that drains
//! and acknowledges everything every 1,000 samples.
//!
//! Run: `cargo bench --bench flash --features _mock-flash`
//!
//! Peers: `sequential-storage` needs `MultiwriteNorFlash` to pop (it rewrites
//! the item header) and `sensor-db` programs each page twice (two-phase
//! commit), so both run on the mock in multiwrite mode; the `rewrites` column
//! counts words programmed twice, which a plain (ECC) `NorFlash` forbids.
//! `sequential-storage` is async: driven with `embassy_futures::block_on`.
//! `sensor-db` has no persisted drain position, so its rows have no drain cost;
//! it is synced after every batch so batches are durable like the others'.

use embedded_storage::nor_flash::{self as bnor, NorFlash as _, ReadNorFlash as _};
use embedded_storage_async::nor_flash as anor;
use sensor_spool::storage::mock_flash::{MockError, MockFlash, MockStats};
use sensor_spool::storage::{
    NorFlashStorage, RecordKind, Run, RunInfo, RunMeta, SensorKey, Storage,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

const SECTORS: usize = 64;
const E: usize = 4096;
const SAMPLES: u32 = 100_000;
const SENSORS: u32 = 4;
const DRAIN_EVERY: u32 = 1_000;

/// Shared handle to a mock flash: the systems own a handle, the bench keeps
/// another to read the counters. Implements the blocking traits and the
/// `embedded-storage-async` ones (for `sequential-storage`).
#[derive(Clone)]
struct Shared<const W: usize>(Rc<RefCell<MockFlash<W, E>>>);

impl<const W: usize> Shared<W> {
    fn new(multiwrite: bool) -> Self {
        let mut f = MockFlash::<W, E>::new(SECTORS, 1);
        f.multiwrite = multiwrite;
        Shared(Rc::new(RefCell::new(f)))
    }
    fn stats(&self) -> MockStats {
        self.0.borrow().stats()
    }
    fn spread(&self) -> u32 {
        let f = self.0.borrow();
        let ec = f.erase_counts();
        ec.iter().max().unwrap() - ec.iter().min().unwrap()
    }
}

impl<const W: usize> bnor::ErrorType for Shared<W> {
    type Error = MockError;
}

impl<const W: usize> bnor::ReadNorFlash for Shared<W> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockError> {
        self.0.borrow_mut().read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.borrow().capacity()
    }
}

impl<const W: usize> bnor::NorFlash for Shared<W> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), MockError> {
        self.0.borrow_mut().erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockError> {
        self.0.borrow_mut().write(offset, bytes)
    }
}

impl<const W: usize> bnor::MultiwriteNorFlash for Shared<W> {}

impl<const W: usize> anor::ReadNorFlash for Shared<W> {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockError> {
        self.0.borrow_mut().read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.borrow().capacity()
    }
}

impl<const W: usize> anor::NorFlash for Shared<W> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), MockError> {
        self.0.borrow_mut().erase(from, to)
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockError> {
        self.0.borrow_mut().write(offset, bytes)
    }
}

impl<const W: usize> anor::MultiwriteNorFlash for Shared<W> {}

fn sample(sensor: u32, seq: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(1_700_000_000 + seq).to_le_bytes());
    b[4..].copy_from_slice(&(seq.wrapping_mul(2_654_435_761) ^ sensor).to_le_bytes());
    b
}

/// Drives the workload: `append(sensor, first_seq, bytes)` per batch and
/// `drain()` every `DRAIN_EVERY` samples.
fn workload(batch: u32, mut append: impl FnMut(u32, u32, &[u8]), mut drain: impl FnMut()) -> u64 {
    let mut seqs = [0u32; SENSORS as usize];
    let mut buf = Vec::with_capacity(batch as usize * 8);
    let mut done = 0u32;
    let mut batches = 0u64;
    let mut since = 0u32;
    let mut s = 0u32;
    while done < SAMPLES {
        let n = batch.min(SAMPLES - done);
        buf.clear();
        for k in 0..n {
            buf.extend_from_slice(&sample(s, seqs[s as usize] + k));
        }
        append(s, seqs[s as usize], &buf);
        batches += 1;
        seqs[s as usize] += n;
        done += n;
        since += n;
        s = (s + 1) % SENSORS;
        if since >= DRAIN_EVERY {
            since = 0;
            drain();
        }
    }
    batches
}

fn key(s: u32) -> SensorKey {
    SensorKey { source: 1, id: s }
}

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

fn ours<const W: usize>(batch: u32) -> Row {
    ours_with::<W>(batch, true)
}

fn ours_with<const W: usize>(batch: u32, fill: bool) -> Row {
    let flash = Shared::<W>::new(false);
    let st = RefCell::new(NorFlashStorage::<_>::new(flash.clone()).unwrap());
    st.borrow_mut().set_fill_sectors(fill);
    st.borrow_mut().mount().unwrap();
    let mut append = MockStats::default();
    let acked = RefCell::new([0u32; SENSORS as usize]);
    let start = flash.stats();
    let t = Instant::now();
    let batches = workload(
        batch,
        |s, first, bytes| {
            let before = flash.stats();
            let info = RunInfo {
                key: key(s),
                kind: RecordKind::Evt,
                first_seq: first,
                count: (bytes.len() / 8) as u16,
                meta: RunMeta::default(),
            };
            st.borrow_mut()
                .append(
                    &[Run {
                        info,
                        records: bytes,
                    }],
                    |_| {},
                )
                .unwrap();
            add(&mut append, delta(before, flash.stats()));
        },
        || {
            let mut st = st.borrow_mut();
            let mut acked = acked.borrow_mut();
            let mut out = [0u8; 4096];
            for s in 0..SENSORS {
                let mut seq = acked[s as usize];
                while let Some(r) = st.read(key(s), seq, &mut out).unwrap() {
                    seq = r.first + r.count as u32;
                }
                if seq != acked[s as usize] {
                    st.ack(key(s), seq, |_| {}).unwrap();
                    acked[s as usize] = seq;
                }
            }
        },
    );
    Row {
        system: if fill {
            "sensor-spool NorFlashStorage"
        } else {
            "sensor-spool NorFlashStorage (fill_sectors off)"
        },
        w: W,
        batch,
        drain: "read+ack marks",
        nanos: t.elapsed().as_nanos(),
        append,
        total: delta(start, flash.stats()),
        batches,
        erase_spread: flash.spread(),
        usable: E - 16usize.div_ceil(W) * W,
    }
}

fn seq_storage<const W: usize>(batch: u32) -> Row {
    use sequential_storage::cache::Cache;
    use sequential_storage::queue::{QueueConfig, QueueStorage};
    let flash = Shared::<W>::new(true);
    let q = RefCell::new(QueueStorage::new(
        flash.clone(),
        const { QueueConfig::new(0..(SECTORS * E) as u32) },
        Cache::new_uncached(),
    ));
    let mut append = MockStats::default();
    let start = flash.stats();
    let t = Instant::now();
    let batches = workload(
        batch,
        |_, _, bytes| {
            let before = flash.stats();
            embassy_futures::block_on(q.borrow_mut().push(bytes, true)).unwrap();
            add(&mut append, delta(before, flash.stats()));
        },
        || {
            let mut q = q.borrow_mut();
            let mut buf = [0u8; 1024];
            while embassy_futures::block_on(q.pop(&mut buf))
                .unwrap()
                .is_some()
            {}
        },
    );
    Row {
        system: "sequential-storage 8.0.2 queue (multiwrite)",
        w: W,
        batch,
        drain: "pop",
        nanos: t.elapsed().as_nanos(),
        append,
        total: delta(start, flash.stats()),
        batches,
        erase_spread: flash.spread(),
        usable: E - 2 * W.max(4),
    }
}

/// sensor-db with `PAGE`-byte pages (its default use is small pages; 1 KiB pages make it
/// program and erase about 4x more per synced batch than 256 B pages).
fn sensor_db<const W: usize, const PAGE: usize>(batch: u32) -> Row {
    let flash = Shared::<W>::new(true);
    let mut db =
        sensor_db::SensorDb::<_, PAGE, SECTORS>::new(flash.clone(), 0, SECTORS as u16, 0).unwrap();
    db.format().unwrap();
    let db = RefCell::new(db);
    let mut append = MockStats::default();
    let start = flash.stats();
    let t = Instant::now();
    let batches = workload(
        batch,
        |s, first, bytes| {
            let before = flash.stats();
            let mut db = db.borrow_mut();
            // A page takes at most a page of payload: a 256 B page gets the batch
            // in 128-byte (16-sample) appends, then one sync.
            let chunk = if PAGE <= 256 { 128 } else { bytes.len().max(1) };
            for (j, part) in bytes.chunks(chunk).enumerate() {
                db.append(s as u16, first as u64 + (j * chunk / 8) as u64, part)
                    .unwrap();
            }
            db.sync().unwrap();
            add(&mut append, delta(before, flash.stats()));
        },
        // Its drain position (`read_from`) lives in RAM only: nothing to persist.
        || {},
    );
    Row {
        system: if PAGE == 256 {
            "sensor-db 0.1.0 (256 B pages, multiwrite, sync per batch)"
        } else {
            "sensor-db 0.1.0 (1 KiB pages, multiwrite, sync per batch)"
        },
        w: W,
        batch,
        drain: "none (RAM-only cursor)",
        nanos: t.elapsed().as_nanos(),
        append,
        total: delta(start, flash.stats()),
        batches,
        erase_spread: flash.spread(),
        usable: E - 28 - PAGE,
    }
}

/// One result row.
struct Row {
    system: &'static str,
    w: usize,
    batch: u32,
    drain: &'static str,
    append: MockStats,
    total: MockStats,
    batches: u64,
    erase_spread: u32,
    usable: usize,
    nanos: u128,
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a name filter.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut rows = Vec::new();
    macro_rules! rows {
        ($($w:literal),*) => {$(
            for b in [1u32, 32, 64] {
                rows.push(ours::<$w>(b));
                rows.push(seq_storage::<$w>(b));
                rows.push(sensor_db::<$w, 256>(b));
                rows.push(sensor_db::<$w, 1024>(b));
            }
        )*};
    }
    rows!(4, 8, 32);
    rows.push(ours_with::<8>(32, false));
    let payload = SAMPLES as f64 * 8.0;
    println!(
        "\nFlash cost, {SAMPLES} x 8-byte samples, {SENSORS} sensors, {SECTORS} x {E} B sectors, drain every {DRAIN_EVERY} samples\n"
    );
    println!(
        "| system | W | B | append: programmed / payload | append: program ops / batch | drain | total programmed / payload | erases | ceil(programmed / usable) | erase spread | words re-programmed | flash read / sample | ns / sample |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows.iter().filter(|r| {
        filter
            .as_ref()
            .is_none_or(|f| r.system.contains(f.as_str()))
    }) {
        println!(
            "| {} | {} | {} | {:.3}x | {:.2} | {} | {:.3}x | {} | {} | {} | {} | {:.0} B | {:.0} |",
            r.system,
            r.w,
            r.batch,
            r.append.bytes_programmed as f64 / payload,
            r.append.programs as f64 / r.batches as f64,
            r.drain,
            r.total.bytes_programmed as f64 / payload,
            r.total.erases,
            (r.total.bytes_programmed as usize).div_ceil(r.usable),
            r.erase_spread,
            r.total.rewrites,
            r.total.bytes_read as f64 / SAMPLES as f64,
            r.nanos as f64 / SAMPLES as f64,
        );
    }
}
