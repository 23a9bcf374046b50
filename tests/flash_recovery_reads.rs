//! `recover_storage` reads every byte of the log once: a flash wrapper counts
//! the reads of every byte (independently of the storage's own counters) while
//! a spool over `NorFlashStorage` recovers a log of 16 interleaved sensors
//! written three ways (one-sample flushes, 32-sample flushes, threshold
//! spills). In every sector but the newest, each byte up to the last
//! programmed one is read exactly once; the newest sector's frame headers are
//! read twice (mount finds the write position from them, the walk reads them
//! again); past a sector's last programmed byte, the tail kept free for marks
//! is not loaded into the read window (at most the 4-byte probe that finds
//! where the frames end reaches into it).

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use sensor_spool::pool::{Pool, Tier};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::Spool;
use sensor_spool::storage::mock_flash::MockFlash;
use sensor_spool::storage::{NorFlashStorage, Storage};

const E: usize = 4096;
const SECTORS: usize = 64;
const SENSORS: usize = 16;
type Flash = MockFlash<4, E>;
type P = Pool<Tier<32, 64, 2>, Tier<64, 0, 0>, Tier<128, 0, 0>>;
/// A sector's last bytes that batch frames never use (four 20-byte
/// acknowledgement frames, see `NorFlashStorage`'s docs).
const TAIL: usize = 80;
const T0: u64 = 1_700_000_000_000;

/// Counts how often each byte is read.
struct Counted {
    flash: Flash,
    reads: Vec<u32>,
}

impl ErrorType for Counted {
    type Error = <Flash as ErrorType>::Error;
}

impl ReadNorFlash for Counted {
    const READ_SIZE: usize = 1;
    fn read(&mut self, off: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        for c in self.reads.iter_mut().skip(off as usize).take(bytes.len()) {
            *c += 1;
        }
        self.flash.read(off, bytes)
    }
    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}

impl NorFlash for Counted {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = E;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.flash.erase(from, to)
    }
    fn write(&mut self, off: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.flash.write(off, bytes)
    }
}

fn key(j: usize) -> SensorKey {
    SensorKey::new(1, 100 + j as u32)
}

/// A log written through a spool, one sample per sensor in turn, `per` per
/// sensor: a flush every `every` samples (0: threshold spills only).
fn image(every: u32, per: u32) -> Vec<u8> {
    let mut f = Flash::new(SECTORS, 7);
    f.ecc_strict = true;
    let mut s: Spool<P, SENSORS, 64, 4, NorFlashStorage<Flash>, SENSORS> = Spool::new(
        P::new(),
        NorFlashStorage::new(f).unwrap(),
        OverflowPolicy::DropOldestUnsent,
    );
    for j in 0..SENSORS {
        s.register(key(j), 0).unwrap();
    }
    s.recover_storage().unwrap();
    for k in 0..per {
        for j in 0..SENSORS {
            let h = s.lookup(key(j)).unwrap();
            s.write(h, k ^ j as u32, T0 + k as u64 * 1000).unwrap();
            if every > 0 && (k * SENSORS as u32 + j as u32 + 1).is_multiple_of(every) {
                s.flush_all().unwrap();
            }
        }
    }
    s.flush_all().unwrap();
    s.storage().flash().image().to_vec()
}

#[test]
fn recovery_reads_every_byte_of_the_log_once() {
    let mut cases = 0;
    for (name, every, per, max_ratio) in [
        ("flush every sample", 1, 300, 1.02),
        ("flush every 32 samples", 32, 300, 1.045),
        ("threshold spills", 0, 600, 1.035),
    ] {
        let img = image(every, per);
        let mut f = Flash::from_image(&img, 3);
        f.ecc_strict = true;
        let counted = Counted {
            flash: f,
            reads: vec![0; img.len()],
        };
        let mut s: Spool<P, SENSORS, 64, 4, NorFlashStorage<Counted>, SENSORS> = Spool::new(
            P::new(),
            NorFlashStorage::new(counted).unwrap(),
            OverflowPolicy::DropOldestUnsent,
        );
        for j in 0..SENSORS {
            s.register(key(j), 0).unwrap();
        }
        let found = s.recover_storage().unwrap();
        assert_eq!(
            found,
            SENSORS as u32 * per,
            "{name}: every record recovered"
        );
        let reads = &s.storage().flash().reads;
        // The newest sector: the highest number (6 bytes after the 4-byte
        // magic of the sector header).
        let number = |sector: &[u8]| {
            let mut b = [0u8; 8];
            b[..6].copy_from_slice(&sector[4..10]);
            (sector[0] != 0xFF).then(|| u64::from_le_bytes(b))
        };
        let newest = img
            .chunks(E)
            .enumerate()
            .filter_map(|(i, sector)| Some((number(sector)?, i)))
            .max()
            .map(|(_, i)| i)
            .unwrap();
        assert_eq!(
            number(&img[newest * E..]),
            Some(s.storage().stats().head_seq),
            "{name}"
        );
        let (mut used, mut total, mut past_end, mut twice_newest) = (0u64, 0u64, 0u64, 0usize);
        // The floor for a reader that finds where a sector's frames end by
        // reading past them: every used byte once, plus a frame header's
        // worth after the last frame (where it fits before the sector end).
        let mut floor = 0u64;
        for (i, sector) in img.chunks(E).enumerate() {
            let end = sector.iter().rposition(|&b| b != 0xFF).map_or(0, |p| p + 1);
            let r = &reads[i * E..(i + 1) * E];
            used += end as u64;
            floor += end as u64 + if end + 4 <= E { 4 } else { 0 };
            total += r.iter().map(|&c| u64::from(c)).sum::<u64>();
            past_end += r[end..].iter().map(|&c| u64::from(c)).sum::<u64>();
            assert!(
                r[..end].iter().all(|&c| c >= 1),
                "{name}: sector {i}: a used byte not read"
            );
            let twice = r[..end].iter().filter(|&&c| c > 1).count();
            if i == newest {
                twice_newest = twice;
            } else {
                let at: Vec<usize> = (0..end).filter(|&b| r[b] > 1).collect();
                assert_eq!(
                    twice, 0,
                    "{name}: sector {i} (used up to {end}): used bytes read more than once: {at:?}"
                );
            }
            assert!(r[..end].iter().all(|&c| c <= 2), "{name}: sector {i}");
            let reserved = r[end.max(E - TAIL)..].iter().filter(|&&c| c > 0).count();
            assert!(
                reserved <= 4,
                "{name}: sector {i} (used up to {end}): {reserved} bytes of its free tail read"
            );
        }
        // Only the newest sector's frame headers (4 bytes each) are read twice.
        assert_eq!(twice_newest % 4, 0, "{name}: sector {newest}");
        let ratio = total as f64 / used as f64;
        eprintln!(
            "{name}: recovery read {total} B of {used} B used = {ratio:.3}x (floor {:.3}x; {past_end} B \
             past sectors' last programmed byte; {twice_newest} B read twice, frame headers of the newest sector)",
            floor as f64 / used as f64
        );
        assert!(ratio <= max_ratio, "{name}: {ratio:.3}x");
        cases += 1;
    }
    eprintln!("{cases} logs recovered, every byte counted");
}
