//! Fault-injecting mock NOR flash (feature `_mock-flash`; test support,
//! **not covered by semver**).
//!
//! [`MockFlash<W, E>`] is a RAM-backed `NorFlash` with `WRITE_SIZE = W`,
//! `ERASE_SIZE = E` (const generics) and `READ_SIZE = 1`, any number of sectors.
//!
//! - **Enforces** alignment of every program and erase, erase-before-write
//!   (programming can only clear bits) and, unless [`MockFlash::multiwrite`] is
//!   set, **write-once words**: programming a word twice between erases panics.
//! - **Counts** reads, bytes read, program operations, bytes programmed, erases
//!   in total and per sector ([`MockStats`], [`MockFlash::erase_counts`]).
//! - **Cuts power** after the k-th program/erase ([`MockFlash::cut_after`]): that
//!   operation applies a random subset of its intended bit changes (torn writes
//!   clear a random subset of the bits they should clear; torn erases set a random
//!   subset of the bits they should set), returns [`MockError::PowerCut`], and
//!   every later operation fails with [`MockError::Dead`] until
//!   [`MockFlash::revive`]. The randomness comes from a seeded xorshift.
//! - **Forks** ([`MockFlash::set_fork`]): before each program/erase, a copy of
//!   the image as it would be if power had been cut during that operation is
//!   pushed to [`MockFlash::take_forks`]; the operation then completes normally.
//!   One run then yields a power-cut image for every operation index.
//!
//! Model of a cut: a word whose bits did not change in an interrupted program
//! counts as never programmed (it reads erased and may be programmed later);
//! a word with any changed bit counts as programmed. After a torn erase, a
//! word that reads all `0xFF` counts as erased.

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Errors of the mock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MockError {
    /// Offset or length not aligned.
    NotAligned,
    /// Outside the flash.
    OutOfBounds,
    /// Power was cut during this operation.
    PowerCut,
    /// Power is off (a cut happened earlier).
    Dead,
}

impl NorFlashError for MockError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            MockError::NotAligned => NorFlashErrorKind::NotAligned,
            MockError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// Operation counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MockStats {
    /// Read calls.
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Program (write) calls.
    pub programs: u64,
    /// Bytes programmed.
    pub bytes_programmed: u64,
    /// Sector erases.
    pub erases: u64,
    /// Words programmed again without an erase (only possible with
    /// [`MockFlash::multiwrite`]; a plain `NorFlash` forbids it).
    pub rewrites: u64,
}

/// The mock flash (see the module docs).
#[derive(Clone, Debug)]
pub struct MockFlash<const W: usize, const E: usize> {
    data: Vec<u8>,
    written: Vec<bool>,
    erase_counts: Vec<u32>,
    /// Allow programming a word more than once (AND semantics), like
    /// `MultiwriteNorFlash` parts; off by default.
    pub multiwrite: bool,
    stats: MockStats,
    ops: u64,
    cut_at: Option<u64>,
    dead: bool,
    rng: u64,
    fork: bool,
    forks: Vec<Vec<u8>>,
}

impl<const W: usize, const E: usize> MockFlash<W, E> {
    /// A fully erased flash of `sectors` sectors; `seed` drives torn operations.
    pub fn new(sectors: usize, seed: u64) -> Self {
        Self::from_image(&vec![0xFF; sectors * E], seed)
    }

    /// A flash holding `image` (length a multiple of `E`). Words that are not
    /// all `0xFF` count as programmed.
    pub fn from_image(image: &[u8], seed: u64) -> Self {
        assert!(
            W > 0 && E.is_multiple_of(W) && image.len().is_multiple_of(E),
            "mock geometry"
        );
        let written = image
            .chunks(W)
            .map(|w| w.iter().any(|&b| b != 0xFF))
            .collect();
        Self {
            data: image.to_vec(),
            written,
            erase_counts: vec![0; image.len() / E],
            multiwrite: false,
            stats: MockStats::default(),
            ops: 0,
            cut_at: None,
            dead: false,
            rng: seed | 1,
            fork: false,
            forks: Vec::new(),
        }
    }

    /// The raw bytes.
    pub fn image(&self) -> &[u8] {
        &self.data
    }

    /// Counters.
    pub fn stats(&self) -> MockStats {
        self.stats
    }

    /// Resets the counters (not the erase counts).
    pub fn reset_stats(&mut self) {
        self.stats = MockStats::default();
    }

    /// Erases per sector since creation.
    pub fn erase_counts(&self) -> &[u32] {
        &self.erase_counts
    }

    /// Program and erase operations performed (including a torn one).
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// Cuts power during the program/erase operation with index `k` (0-based,
    /// counted from creation); `None` disables.
    pub fn cut_after(&mut self, k: Option<u64>) {
        self.cut_at = k;
    }

    /// Whether power has been cut.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Powers the flash on again after a cut (contents stay as they are).
    pub fn revive(&mut self) {
        self.dead = false;
        self.cut_at = None;
    }

    /// Enables or disables forking (see the module docs).
    pub fn set_fork(&mut self, on: bool) {
        self.fork = on;
    }

    /// Takes the power-cut images collected since the last call.
    pub fn take_forks(&mut self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.forks)
    }

    fn next_rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn rand_byte(&mut self) -> u8 {
        (self.next_rand() >> 56) as u8
    }

    /// Applies a random subset of the bit clears of programming `bytes` at
    /// `off` to `data`; returns per-word "changed" flags via `mark`.
    fn torn_program(&mut self, data: &mut [u8], off: usize, bytes: &[u8], mark: bool) {
        for (i, &b) in bytes.iter().enumerate() {
            let old = data[off + i];
            let clear = old & !b;
            let keep = clear & self.rand_byte();
            data[off + i] = old & !keep;
            if mark && keep != 0 {
                self.written[(off + i) / W] = true;
            }
        }
    }

    /// Applies a random subset of the bit sets of erasing `[from, to)`.
    fn torn_erase(&mut self, data: &mut [u8], from: usize, to: usize) {
        for byte in &mut data[from..to] {
            let set = !*byte;
            *byte |= set & self.rand_byte();
        }
    }

    fn fix_written_after_erase(&mut self, from: usize, to: usize) {
        for w in from / W..to / W {
            self.written[w] = self.data[w * W..(w + 1) * W].iter().any(|&b| b != 0xFF);
        }
    }

    /// Bookkeeping common to program and erase; `Ok(true)` = cut now.
    fn begin_op(&mut self) -> Result<bool, MockError> {
        if self.dead {
            return Err(MockError::Dead);
        }
        let cut = self.cut_at == Some(self.ops);
        self.ops += 1;
        Ok(cut)
    }
}

impl<const W: usize, const E: usize> ErrorType for MockFlash<W, E> {
    type Error = MockError;
}

impl<const W: usize, const E: usize> ReadNorFlash for MockFlash<W, E> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockError> {
        if self.dead {
            return Err(MockError::Dead);
        }
        let o = offset as usize;
        let end = o.checked_add(bytes.len()).ok_or(MockError::OutOfBounds)?;
        if end > self.data.len() {
            return Err(MockError::OutOfBounds);
        }
        bytes.copy_from_slice(&self.data[o..end]);
        self.stats.reads += 1;
        self.stats.bytes_read += bytes.len() as u64;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const W: usize, const E: usize> NorFlash for MockFlash<W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), MockError> {
        let (f, t) = (from as usize, to as usize);
        if !f.is_multiple_of(E) || !t.is_multiple_of(E) || f > t {
            return Err(MockError::NotAligned);
        }
        if t > self.data.len() {
            return Err(MockError::OutOfBounds);
        }
        let cut = self.begin_op()?;
        if self.fork {
            let mut img = self.data.clone();
            self.torn_erase(&mut img, f, t);
            self.forks.push(img);
        }
        if cut {
            let mut data = core::mem::take(&mut self.data);
            self.torn_erase(&mut data, f, t);
            self.data = data;
            self.fix_written_after_erase(f, t);
            self.dead = true;
            return Err(MockError::PowerCut);
        }
        self.data[f..t].fill(0xFF);
        self.written[f / W..t / W].fill(false);
        for s in f / E..t / E {
            self.erase_counts[s] += 1;
            self.stats.erases += 1;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockError> {
        let o = offset as usize;
        if !o.is_multiple_of(W) || !bytes.len().is_multiple_of(W) {
            return Err(MockError::NotAligned);
        }
        if o + bytes.len() > self.data.len() {
            return Err(MockError::OutOfBounds);
        }
        let rewrites = self.written[o / W..(o + bytes.len()) / W]
            .iter()
            .filter(|&&w| w)
            .count();
        if rewrites > 0 {
            assert!(
                self.multiwrite,
                "mock flash: word at offset {} programmed twice without erase",
                o + W * self.written[o / W..].iter().position(|&w| w).unwrap_or(0)
            );
        }
        let cut = self.begin_op()?;
        if self.fork {
            let mut img = self.data.clone();
            self.torn_program(&mut img, o, bytes, false);
            self.forks.push(img);
        }
        if cut {
            let mut data = core::mem::take(&mut self.data);
            self.torn_program(&mut data, o, bytes, true);
            self.data = data;
            self.dead = true;
            return Err(MockError::PowerCut);
        }
        for (i, &b) in bytes.iter().enumerate() {
            self.data[o + i] &= b;
        }
        self.written[o / W..(o + bytes.len()) / W].fill(true);
        self.stats.programs += 1;
        self.stats.bytes_programmed += bytes.len() as u64;
        self.stats.rewrites += rewrites as u64;
        Ok(())
    }
}

/// Implemented so peers that need it can run on the mock; the strict
/// write-once check still applies unless [`MockFlash::multiwrite`] is set.
impl<const W: usize, const E: usize> MultiwriteNorFlash for MockFlash<W, E> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_once_alignment_and_counters() {
        let mut f = MockFlash::<4, 256>::new(2, 1);
        assert_eq!(f.write(2, &[0; 4]), Err(MockError::NotAligned));
        assert_eq!(f.write(0, &[0; 3]), Err(MockError::NotAligned));
        assert_eq!(f.write(512, &[0; 4]), Err(MockError::OutOfBounds));
        f.write(4, &[1, 2, 3, 4]).unwrap();
        let mut b = [0u8; 8];
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4]);
        let r = std::panic::catch_unwind(move || {
            let mut g = f.clone();
            g.write(4, &[0; 4])
        });
        assert!(r.is_err(), "double write must panic");
        let mut f = MockFlash::<4, 256>::new(2, 1);
        f.write(0, &[0; 8]).unwrap();
        f.erase(0, 256).unwrap();
        f.write(0, &[0; 8]).unwrap();
        assert_eq!(
            f.stats(),
            MockStats {
                reads: 0,
                bytes_read: 0,
                programs: 2,
                bytes_programmed: 16,
                erases: 1,
                rewrites: 0
            }
        );
        assert_eq!(f.erase_counts(), &[1, 0]);
    }

    #[test]
    fn torn_write_is_a_subset_and_kills_power() {
        let mut f = MockFlash::<1, 256>::new(1, 7);
        f.cut_after(Some(0));
        assert_eq!(f.write(0, &[0x00; 64]), Err(MockError::PowerCut));
        assert!(f.is_dead());
        assert_eq!(f.write(64, &[0; 1]), Err(MockError::Dead));
        let img = f.image().to_vec();
        let changed = img[..64].iter().filter(|&&b| b != 0xFF).count();
        assert!(changed > 0 && img[..64].iter().any(|&b| b != 0x00));
        assert!(img[64..].iter().all(|&b| b == 0xFF));
        f.revive();
        // Words left untouched by the torn write may be programmed.
        let first_ff = img.iter().position(|&b| b == 0xFF).unwrap() as u32;
        f.write(first_ff, &[0]).unwrap();
    }

    #[test]
    fn torn_erase_and_forks() {
        let mut f = MockFlash::<4, 256>::new(2, 3);
        f.write(0, &[0; 256]).unwrap();
        f.set_fork(true);
        f.erase(0, 256).unwrap();
        let forks = f.take_forks();
        assert_eq!(forks.len(), 1);
        let t = &forks[0][..256];
        assert!(t.iter().any(|&b| b != 0xFF) && t.iter().any(|&b| b != 0));
        assert!(f.image()[..256].iter().all(|&b| b == 0xFF));
    }
}
