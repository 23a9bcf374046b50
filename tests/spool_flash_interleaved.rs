//! Flash bytes read per delivered record with 16 interleaved sensors through
//! `Spool` over `NorFlashStorage` on a strict write-once `MockFlash` (64 x 4 KiB
//! sectors), for 1-sample flushes (one-run frames), 32-sample flushes (frames
//! of 16 two-record runs) and threshold spills: reads cost at most twice the
//! records' on-flash size (record + run header + frame overhead share),
//! recovery reads every used byte of the log at most once, and no public call
//! does more than one sector's worth of flash I/O.

use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::Spool;
use sensor_spool::storage::inspect::{FrameBody, FrameStatus, Item, SectorState};
use sensor_spool::storage::mock_flash::{MockFlash, MockStats};
use sensor_spool::storage::{NorFlashStorage, Storage};

const E: usize = 4096;
const SECTORS: usize = 64;
const SENSORS: usize = 16;
type Flash = MockFlash<4, E>;
type P = Pool<Tier<32, 64, 2>, Tier<64, 0, 0>, Tier<128, 0, 0>>;
/// The spool over the flash log with `R` run references (32: the default).
type S<const R: usize = 32> = Spool<P, SENSORS, 64, 4, NorFlashStorage<Flash, 512, 4, R>, SENSORS>;
const T0: u64 = 1_700_000_000_000;

fn key(j: usize) -> SensorKey {
    SensorKey::new(1, 100 + j as u32)
}

fn value(j: usize, k: u32) -> u32 {
    k.wrapping_mul(2_654_435_761) ^ j as u32
}

#[derive(Clone, Copy, Debug)]
enum Workload {
    /// Every sample flushed at once: one one-record run per frame.
    OneSample,
    /// Two samples per sensor, then a flush: 16 runs of 2 per frame.
    ThirtyTwo,
    /// No explicit flush: threshold spills (and a final flush).
    Threshold,
}

/// Worst flash I/O of one call (bytes read + bytes programmed + erased bytes).
#[derive(Clone, Copy, Debug, Default)]
struct Worst {
    read: u64,
    write: u64,
    ack: u64,
}

fn io(a: MockStats, b: MockStats) -> u64 {
    (b.bytes_read - a.bytes_read)
        + (b.bytes_programmed - a.bytes_programmed)
        + (b.erases - a.erases) * E as u64
}

fn spool<const R: usize>() -> S<R> {
    let mut f = Flash::new(SECTORS, 7);
    f.ecc_strict = true;
    let mut s: S<R> = Spool::new(
        P::new(),
        NorFlashStorage::new(f).unwrap(),
        OverflowPolicy::DropOldestUnsent,
    );
    for j in 0..SENSORS {
        s.register(key(j), 0).unwrap();
    }
    s.recover_storage().unwrap();
    s
}

fn fill<const R: usize>(s: &mut S<R>, w: Workload, per: u32, worst: &mut Worst) {
    for k in 0..per {
        for j in 0..SENSORS {
            let h = s.lookup(key(j)).unwrap();
            let a = s.storage().flash().stats();
            s.write(h, value(j, k), T0 + k as u64 * 1000).unwrap();
            match w {
                Workload::OneSample => {
                    s.flush_all().unwrap();
                }
                Workload::ThirtyTwo if k % 2 == 1 && j == SENSORS - 1 => {
                    s.flush_all().unwrap();
                }
                _ => {}
            }
            worst.write = worst.write.max(io(a, s.storage().flash().stats()));
        }
    }
    s.flush_all().unwrap();
}

/// Batch frame bytes and records in the live log, and used bytes (sector
/// headers and frames of the live sectors).
fn on_flash<const R: usize>(s: &S<R>) -> (u64, u64, u64) {
    let img = s.storage().flash().image().to_vec();
    let mut st = NorFlashStorage::<_>::new(Flash::from_image(&img, 1)).unwrap();
    st.mount().unwrap();
    let (mut frames, mut records, mut used) = (0u64, 0u64, 0u64);
    st.inspect(|i| match i {
        Item::Sector(r) if r.state == SectorState::Live => used += r.frames_end as u64,
        Item::Frame(f)
            if f.live
                && f.status == FrameStatus::Good
                && matches!(f.body, FrameBody::Batch { .. }) =>
        {
            frames += f.len as u64
        }
        Item::Run(r) if r.live => records += r.info.count as u64,
        _ => {}
    })
    .unwrap();
    (frames, records, used)
}

/// Reads every record, `chunk` records of one sensor at a time, sensors in
/// turn, each chunk acknowledged; returns flash bytes read by the `read`
/// calls and by the `ack` calls.
fn read_all<const R: usize>(s: &mut S<R>, per: u32, chunk: u32, worst: &mut Worst) -> (u64, u64) {
    s.storage_mut().flash_mut().reset_stats();
    let mut next = [0u32; SENSORS];
    let (mut reads, mut ack_reads) = (0u64, 0u64);
    while next.iter().any(|&n| n < per) {
        for (j, n) in next.iter_mut().enumerate() {
            let h = s.lookup(key(j)).unwrap();
            let c = chunk.min(per - *n);
            for _ in 0..c {
                let a = s.storage().flash().stats();
                let r = s.read(h).unwrap();
                let b = s.storage().flash().stats();
                reads += b.bytes_read - a.bytes_read;
                worst.read = worst.read.max(io(a, b));
                assert_eq!((r.seq, r.value), (*n, value(j, *n)));
                *n += 1;
            }
            if c > 0 {
                let a = s.storage().flash().stats();
                s.ack(h, c).unwrap();
                let b = s.storage().flash().stats();
                ack_reads += b.bytes_read - a.bytes_read;
                worst.ack = worst.ack.max(io(a, b));
            }
        }
    }
    assert_eq!(s.check(), Ok(()));
    (reads, ack_reads)
}

/// What one workload measured.
#[derive(Debug)]
struct Measured {
    /// Bytes read by `read` calls per delivered record over its on-flash size.
    ratio: f64,
    /// Bytes `recover_storage` read over the used bytes of the log.
    recovery: f64,
    worst: Worst,
}

fn measure<const R: usize>(w: Workload, per: u32, chunk: u32) -> Measured {
    let mut worst = Worst::default();
    let mut s = spool::<R>();
    fill(&mut s, w, per, &mut worst);
    let (frames, records, used) = on_flash(&s);
    assert_eq!(records, SENSORS as u64 * per as u64, "{w:?}: all stored");
    // Recovery of the same image.
    let img = s.storage().flash().image().to_vec();
    let mut f = Flash::from_image(&img, 3);
    f.ecc_strict = true;
    let mut r: S<R> = Spool::new(
        P::new(),
        NorFlashStorage::new(f).unwrap(),
        OverflowPolicy::DropOldestUnsent,
    );
    for j in 0..SENSORS {
        r.register(key(j), 0).unwrap();
    }
    r.storage_mut().flash_mut().reset_stats();
    assert_eq!(r.recover_storage().unwrap() as u64, records);
    let rec_read = r.storage().flash().stats().bytes_read;
    let recovery = rec_read as f64 / used as f64;
    let (read, ack_read) = read_all(&mut s, per, chunk, &mut worst);
    let share = frames as f64 / records as f64;
    let per_rec = read as f64 / records as f64;
    let ratio = per_rec / share;
    eprintln!(
        "{w:?}, {chunk} record(s) per sensor in turn: {records} records in {frames} B of batch frames \
         ({share:.1} B each); read calls read {read} B = {per_rec:.1} B per record = {ratio:.2}x \
         on-flash size (ack calls {ack_read} B more); recovery read {rec_read} B of {used} B used = \
         {recovery:.3}x; worst flash I/O of one call: read {} B, write {} B, ack {} B",
        worst.read, worst.write, worst.ack
    );
    Measured {
        ratio,
        recovery,
        worst,
    }
}

#[test]
fn interleaved_sensors_read_at_most_twice_their_on_flash_size() {
    // (workload, records per sensor, records read per sensor in turn,
    // ceiling of bytes read per record over on-flash size, of recovery reads
    // over used bytes). The read goal (2x) holds for one record per sensor in
    // turn with one-run and 16-run frames; the other ceilings, and the
    // recovery ones (goal 1.0x: every byte of the log is read once but the
    // newest sector's frame headers, and the last window load of a sector
    // reads the erased bytes between its last frame and its tail; floor
    // 1.002-1.005x, tests/flash_recovery_reads.rs; 1.028-1.075x before
    // mount's sector headers were not read again and window loads stopped
    // at the tail), are the figures measured (regression bounds, see
    // docs/storage.md).
    let cases = [
        (Workload::OneSample, 300, 1, 2.0, 1.02),
        (Workload::ThirtyTwo, 300, 1, 2.0, 1.045),
        (Workload::Threshold, 600, 1, 2.5, 1.035),
        (Workload::OneSample, 300, 10, 5.8, 1.02),
        (Workload::ThirtyTwo, 300, 10, 6.5, 1.045),
        (Workload::Threshold, 600, 10, 2.3, 1.035),
        // Each sensor drained in its turn (the uploader of the benchmark):
        // one-run frames cost the frames of the other 15 sensors walked per
        // record (frame header and the id's low byte, 5 B each; 8.2x when
        // the whole id was read, 15.2x when the run header was read too), the others their run headers; threshold spills:
        // 14.0x (300 per sensor) before the sector bit was set after a
        // streamed frame and a run's records went to the window. Multi-run
        // frames: 14.4x (16-run) and 5.2x (threshold) before a packed run
        // header was read 8 bytes at a time instead of 16 or 30 (9.8x and
        // 2.3x, 10 records at a time).
        (Workload::OneSample, 300, 300, 6.6, 1.02),
        (Workload::ThirtyTwo, 300, 300, 8.9, 1.045),
        (Workload::Threshold, 600, 600, 4.1, 1.035),
    ];
    for (w, per, chunk, max_ratio, max_rec) in cases {
        let m = measure::<32>(w, per, chunk);
        assert!(m.ratio <= max_ratio, "{w:?} chunk {chunk}: {m:?}");
        assert!(m.recovery <= max_rec, "{w:?} chunk {chunk}: {m:?}");
        // One read call: the frames of one sector verified (the one read
        // and those before it not verified yet) plus the frame headers
        // walked to it: 3,523 B measured (4,145 B before packed run headers
        // were read 8 bytes at a time, 5,080 B before the drain read
        // changes; threshold spills), so a quarter sector over one sector is the regression
        // bound (the walk itself is not bounded by one sector).
        assert!(
            m.worst.read <= (E + E / 4) as u64,
            "{w:?} chunk {chunk}: {m:?}"
        );
        // Writes and acknowledgements (write side): at most two sector
        // openings (erase, evicted sector's runs, headers) and their frames;
        // an acknowledgement that opens a sector with copies reads the
        // victim's run headers to measure the copies, then its owed records
        // to copy them, and programs the copies: 9,316 B measured (12,464 B
        // before them; threshold spills), three sectors plus the headers walked.
        assert!(m.worst.write <= 3 * E as u64, "{w:?} chunk {chunk}: {m:?}");
        assert!(
            m.worst.ack <= (3 * E + E / 4) as u64,
            "{w:?} chunk {chunk}: {m:?}"
        );
    }
}

/// A small read index (`RUNS` 1 and 4; threshold frames then hold more runs
/// than the references, so recovery reads their run headers again): the same
/// records, in order, read and recovered (`measure` checks both); only the
/// flash bytes read differ.
#[test]
fn few_run_references_change_costs_not_answers() {
    for (w, per, chunk) in [
        (Workload::OneSample, 60, 1),
        (Workload::ThirtyTwo, 60, 10),
        (Workload::Threshold, 300, 1),
    ] {
        let one = measure::<1>(w, per, chunk);
        let four = measure::<4>(w, per, chunk);
        assert!(
            one.ratio > 0.0 && four.ratio > 0.0,
            "{w:?}: {one:?} {four:?}"
        );
    }
}
