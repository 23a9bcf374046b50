//! Fault-injecting mock NOR flash (feature `_mock-flash`; test support,
//! **not covered by semver**).
//!
//! [`MockFlash<W, E>`] is a RAM-backed `NorFlash` with `WRITE_SIZE = W`,
//! `ERASE_SIZE = E` (const generics) and `READ_SIZE = 1`, any number of sectors.
//!
//! - **Enforces** alignment of every program and erase, erase-before-write
//!   (programming can only clear bits) and, unless [`MockFlash::multiwrite`] is
//!   set, **write-once units**: programming a unit twice between erases panics.
//!   In **ECC-strict mode** ([`MockFlash::ecc_strict`], on by default) a unit
//!   counts as programmed as soon as a program operation covering it *starts*,
//!   even if that operation was cut before any bit changed and the unit still
//!   reads erased (parts with ECC per write unit, such as STM32 H7/L4/U5, forbid
//!   programming such a unit again); a torn erase leaves every unit of the
//!   sector programmed in that sense (it must be erased again before use).
//! - **Counts** reads, bytes read, program operations, bytes programmed, erases
//!   in total and per sector ([`MockStats`], [`MockFlash::erase_counts`]).
//! - **Cuts power** during the k-th program/erase ([`MockFlash::cut_after`]):
//!   that operation is applied partly, as the [`Tear`] model says
//!   ([`MockFlash::set_tear`]), returns [`MockError::PowerCut`], and every later
//!   operation fails with [`MockError::Dead`] until [`MockFlash::revive`].
//!   The randomness comes from a seeded xorshift.
//! - **Driver faults** ([`MockFlash::fail_at`]): the k-th program/erase reports
//!   [`MockError::Failed`] after applying all, part or none of its change
//!   ([`Fault`]), once or for good (every later program and erase fails too,
//!   reads keep working): real drivers report verify and timeout errors after the
//!   data landed.
//! - **Forks** ([`MockFlash::set_fork`]): before each program/erase, a copy of
//!   the image as it would be if power had been cut during that operation
//!   (under the current [`Tear`] model) is pushed to [`MockFlash::take_forks`];
//!   the operation then completes normally. One run then yields a power-cut
//!   image for every operation index. [`MockFlash::take_fork_flashes`] powers them up
//!   with the strict-mode bookkeeping the cut left behind.

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
    /// The driver reported a failure ([`MockFlash::fail_at`]); the operation may
    /// have been applied in full, in part or not at all.
    Failed,
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

/// How an operation cut by a power loss leaves the flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// A random subset of the bit changes (program: bits cleared; erase: bits set).
    RandomBits,
    /// Nothing changed: cut at the operation's first instant (an erase leaves
    /// the sector's header and frames intact; a program leaves its units
    /// reading erased).
    NoChange,
    /// Program: the first k units complete, the rest untouched; erase: the
    /// first k bytes erased (k uniform over the operation).
    Prefix,
    /// Program: a complete prefix, then the unit at the cut with a random
    /// subset of its bits; erase: every bit set but a few (almost done).
    PrefixPartial,
    /// Each 256-byte page of the operation complete or untouched at random.
    Pages,
    /// Program: every bit but a few applied (almost done); erase: the last k
    /// bytes erased, the first ones (the sector header) intact.
    Suffix,
    /// One of the above, chosen at random for each cut.
    Mixed,
}

impl Tear {
    /// Every model but [`Tear::Mixed`].
    pub const ALL: [Tear; 6] = [
        Tear::RandomBits,
        Tear::NoChange,
        Tear::Prefix,
        Tear::PrefixPartial,
        Tear::Pages,
        Tear::Suffix,
    ];
}

/// What a failing operation ([`MockFlash::fail_at`]) did before it reported
/// [`MockError::Failed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Applied in full (a verify or timeout error after the data landed).
    All,
    /// Applied in part, as a [`Tear`] of the current model would.
    Part,
    /// Nothing applied.
    Nothing,
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

/// A scheduled driver fault.
#[derive(Clone, Copy, Debug)]
struct FailAt {
    op: u64,
    fault: Fault,
    permanent: bool,
}

/// The mock flash (see the module docs).
#[derive(Clone, Debug)]
pub struct MockFlash<const W: usize, const E: usize> {
    data: Vec<u8>,
    /// Per unit: programmed since its last erase (strict mode: a program
    /// operation covering it started).
    written: Vec<bool>,
    erase_counts: Vec<u32>,
    /// Allow programming a word more than once (AND semantics), like
    /// `MultiwriteNorFlash` parts; off by default.
    pub multiwrite: bool,
    /// ECC-strict write units (see the module docs); on by default.
    pub ecc_strict: bool,
    stats: MockStats,
    ops: u64,
    cut_at: Option<u64>,
    dead: bool,
    tear: Tear,
    fail: Option<FailAt>,
    failing: bool,
    rng: u64,
    fork: bool,
    forks: Vec<Vec<u8>>,
    fork_touched: Vec<Vec<(usize, usize)>>,
}

impl<const W: usize, const E: usize> MockFlash<W, E> {
    /// A fully erased flash of `sectors` sectors; `seed` drives torn operations.
    pub fn new(sectors: usize, seed: u64) -> Self {
        Self::from_image(&vec![0xFF; sectors * E], seed)
    }

    /// A flash holding `image` (length a multiple of `E`). Units that are not
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
            ecc_strict: true,
            stats: MockStats::default(),
            ops: 0,
            cut_at: None,
            dead: false,
            tear: Tear::RandomBits,
            fail: None,
            failing: false,
            rng: seed | 1,
            fork: false,
            forks: Vec::new(),
            fork_touched: Vec::new(),
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

    /// How cut operations are applied (default [`Tear::RandomBits`]).
    pub fn set_tear(&mut self, tear: Tear) {
        self.tear = tear;
    }

    /// The program/erase operation with index `k` reports [`MockError::Failed`]
    /// after applying what `fault` says; with `permanent`, every later program
    /// and erase fails too (applying nothing) until [`MockFlash::revive`].
    pub fn fail_at(&mut self, k: u64, fault: Fault, permanent: bool) {
        self.fail = Some(FailAt {
            op: k,
            fault,
            permanent,
        });
    }

    /// Whether power has been cut.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Powers the flash on again after a cut or a permanent driver fault
    /// (contents and strict-mode bookkeeping stay as they are).
    pub fn revive(&mut self) {
        self.dead = false;
        self.failing = false;
        self.cut_at = None;
        self.fail = None;
    }

    /// Enables or disables forking (see the module docs).
    pub fn set_fork(&mut self, on: bool) {
        self.fork = on;
    }

    /// Takes the power-cut images collected since the last call.
    pub fn take_forks(&mut self) -> Vec<Vec<u8>> {
        self.fork_touched.clear();
        core::mem::take(&mut self.forks)
    }

    /// Takes the power-cut images collected since the last call, each as a
    /// flash that remembers (strict mode) which units the cut operation had
    /// started to program, so that programming them again is caught.
    pub fn take_fork_flashes(&mut self, seed: u64) -> Vec<Self> {
        let touched = core::mem::take(&mut self.fork_touched);
        let forks = core::mem::take(&mut self.forks);
        forks
            .into_iter()
            .zip(touched)
            .map(|(img, t)| {
                let mut f = Self::from_image(&img, seed);
                f.ecc_strict = self.ecc_strict;
                for (from, to) in t {
                    f.written[from / W..to / W].fill(true);
                }
                f
            })
            .collect()
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

    fn below(&mut self, n: usize) -> usize {
        (self.next_rand() % n.max(1) as u64) as usize
    }

    /// A byte with a few (1..=3) of the bits of `mask` cleared: the changes an
    /// almost finished operation has not made yet.
    fn few_of(&mut self, mask: u8) -> u8 {
        let mut m = 0u8;
        for _ in 0..1 + self.below(3) {
            m |= 1 << self.below(8);
        }
        mask & !m
    }

    fn pick(&mut self) -> Tear {
        match self.tear {
            Tear::Mixed => Tear::ALL[self.below(Tear::ALL.len())],
            t => t,
        }
    }

    /// Applies part of programming `bytes` at `off` to `data`, as the tear model says.
    fn torn_program(&mut self, data: &mut [u8], off: usize, bytes: &[u8]) {
        let n = bytes.len();
        let tear = self.pick();
        let cut = self.below(n + 1);
        let cut_unit = cut - cut % W;
        let page_on: Vec<bool> = (0..n.div_ceil(256)).map(|_| self.below(2) == 1).collect();
        let partial_byte = self.rand_byte();
        for (i, &b) in bytes.iter().enumerate() {
            let old = data[off + i];
            let clear = old & !b;
            let keep = match tear {
                Tear::RandomBits => clear & self.rand_byte(),
                Tear::NoChange => 0,
                Tear::Prefix => {
                    if i < cut_unit {
                        clear
                    } else {
                        0
                    }
                }
                Tear::PrefixPartial => {
                    if i < cut_unit {
                        clear
                    } else if i < cut_unit + W {
                        clear & (self.rand_byte() ^ partial_byte)
                    } else {
                        0
                    }
                }
                Tear::Pages => {
                    if page_on[i / 256] {
                        clear
                    } else {
                        0
                    }
                }
                Tear::Suffix => self.few_of(clear),
                Tear::Mixed => clear,
            };
            data[off + i] = old & !keep;
        }
    }

    /// Applies part of erasing `[from, to)`, as the tear model says.
    fn torn_erase(&mut self, data: &mut [u8], from: usize, to: usize) {
        let tear = self.pick();
        let n = to - from;
        let cut = self.below(n + 1);
        let page_on: Vec<bool> = (0..n.div_ceil(256)).map(|_| self.below(2) == 1).collect();
        for i in 0..n {
            let byte = &mut data[from + i];
            let set = !*byte;
            let apply = match tear {
                Tear::RandomBits => set & self.rand_byte(),
                Tear::NoChange => 0,
                Tear::Prefix => {
                    if i < cut {
                        set
                    } else {
                        0
                    }
                }
                Tear::PrefixPartial => self.few_of(set),
                Tear::Pages => {
                    if page_on[i / 256] {
                        set
                    } else {
                        0
                    }
                }
                Tear::Suffix => {
                    if i >= n - cut {
                        set
                    } else {
                        0
                    }
                }
                Tear::Mixed => set,
            };
            *byte |= apply;
        }
    }

    /// After a cut or failed erase of `[from, to)`: strict mode says every unit
    /// must be erased again before it is programmed; otherwise a unit that
    /// reads erased may be programmed.
    fn fix_written_after_erase(&mut self, from: usize, to: usize) {
        for w in from / W..to / W {
            self.written[w] =
                self.ecc_strict || self.data[w * W..(w + 1) * W].iter().any(|&b| b != 0xFF);
        }
    }

    /// After a cut or failed program of `[from, to)`: in strict mode every
    /// unit of the operation counts as programmed, else those with a changed bit.
    fn fix_written_after_program(&mut self, from: usize, to: usize) {
        for w in from / W..to / W {
            self.written[w] = self.written[w]
                || self.ecc_strict
                || self.data[w * W..(w + 1) * W].iter().any(|&b| b != 0xFF);
        }
    }

    /// Bookkeeping common to program and erase: what happens to this operation.
    fn begin_op(&mut self) -> Result<Outcome, MockError> {
        if self.dead {
            return Err(MockError::Dead);
        }
        if self.failing {
            self.ops += 1;
            return Ok(Outcome::Fail(Fault::Nothing));
        }
        let k = self.ops;
        self.ops += 1;
        if self.cut_at == Some(k) {
            return Ok(Outcome::Cut);
        }
        match self.fail {
            Some(f) if f.op == k => {
                self.failing = f.permanent;
                Ok(Outcome::Fail(f.fault))
            }
            _ => Ok(Outcome::Done),
        }
    }
}

/// What happens to one program/erase operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Cut,
    Fail(Fault),
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
        let outcome = self.begin_op()?;
        if self.fork {
            let mut img = self.data.clone();
            self.torn_erase(&mut img, f, t);
            self.forks.push(img);
            self.fork_touched.push(if self.ecc_strict {
                vec![(f, t)]
            } else {
                vec![]
            });
        }
        let full = match outcome {
            Outcome::Done | Outcome::Fail(Fault::All) => true,
            Outcome::Cut | Outcome::Fail(Fault::Part) => {
                let mut data = core::mem::take(&mut self.data);
                self.torn_erase(&mut data, f, t);
                self.data = data;
                self.fix_written_after_erase(f, t);
                false
            }
            Outcome::Fail(Fault::Nothing) => false,
        };
        if full {
            self.data[f..t].fill(0xFF);
            self.written[f / W..t / W].fill(false);
            for s in f / E..t / E {
                self.erase_counts[s] += 1;
                self.stats.erases += 1;
            }
        }
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Cut => {
                self.dead = true;
                Err(MockError::PowerCut)
            }
            Outcome::Fail(_) => Err(MockError::Failed),
        }
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockError> {
        let o = offset as usize;
        if !o.is_multiple_of(W) || !bytes.len().is_multiple_of(W) {
            return Err(MockError::NotAligned);
        }
        if o + bytes.len() > self.data.len() {
            return Err(MockError::OutOfBounds);
        }
        if self.dead {
            return Err(MockError::Dead);
        }
        let end = o + bytes.len();
        let rewrites = self.written[o / W..end / W].iter().filter(|&&w| w).count();
        if rewrites > 0 {
            let at = o + W * self.written[o / W..].iter().position(|&w| w).unwrap_or(0);
            assert!(
                self.multiwrite,
                "mock flash: unit at offset {at} programmed twice without erase{}",
                if self.ecc_strict {
                    " (ECC-strict: a program that started counts, even one cut before any bit changed)"
                } else {
                    ""
                }
            );
        }
        let outcome = self.begin_op()?;
        if self.fork {
            let mut img = self.data.clone();
            self.torn_program(&mut img, o, bytes);
            self.forks.push(img);
            self.fork_touched.push(if self.ecc_strict {
                vec![(o, end)]
            } else {
                vec![]
            });
        }
        match outcome {
            Outcome::Done | Outcome::Fail(Fault::All) => {
                for (i, &b) in bytes.iter().enumerate() {
                    self.data[o + i] &= b;
                }
                self.written[o / W..end / W].fill(true);
                self.stats.programs += 1;
                self.stats.bytes_programmed += bytes.len() as u64;
                self.stats.rewrites += rewrites as u64;
            }
            Outcome::Cut | Outcome::Fail(Fault::Part) => {
                let mut data = core::mem::take(&mut self.data);
                self.torn_program(&mut data, o, bytes);
                self.data = data;
                self.fix_written_after_program(o, end);
            }
            Outcome::Fail(Fault::Nothing) => self.fix_written_after_program(o, end),
        }
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Cut => {
                self.dead = true;
                Err(MockError::PowerCut)
            }
            Outcome::Fail(_) => Err(MockError::Failed),
        }
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
        f.ecc_strict = false;
        f.cut_after(Some(0));
        assert_eq!(f.write(0, &[0x00; 64]), Err(MockError::PowerCut));
        assert!(f.is_dead());
        assert_eq!(f.write(64, &[0; 1]), Err(MockError::Dead));
        let img = f.image().to_vec();
        let changed = img[..64].iter().filter(|&&b| b != 0xFF).count();
        assert!(changed > 0 && img[..64].iter().any(|&b| b != 0x00));
        assert!(img[64..].iter().all(|&b| b == 0xFF));
        f.revive();
        // Not strict: words left untouched by the torn write may be programmed.
        let first_ff = img.iter().position(|&b| b == 0xFF).unwrap() as u32;
        f.write(first_ff, &[0]).unwrap();
    }

    #[test]
    fn strict_mode_forbids_a_second_program_of_a_unit_a_cut_left_erased() {
        let mut f = MockFlash::<16, 256>::new(2, 5);
        f.set_tear(Tear::NoChange);
        f.cut_after(Some(0));
        assert_eq!(f.write(0, &[0; 32]), Err(MockError::PowerCut));
        assert!(f.image()[..32].iter().all(|&b| b == 0xFF), "no bit changed");
        f.revive();
        let mut g = f.clone();
        let r = std::panic::catch_unwind(move || g.write(16, &[0; 16]));
        assert!(r.is_err(), "ECC-strict: the unit's program had started");
        // Units the cut operation did not cover stay programmable; an erase frees all.
        f.write(32, &[0; 16]).unwrap();
        f.erase(0, 256).unwrap();
        f.write(0, &[0; 32]).unwrap();
    }

    #[test]
    fn erase_cut_at_its_first_instant_changes_nothing_but_must_be_redone() {
        let mut f = MockFlash::<4, 256>::new(2, 9);
        f.write(0, &[0x12; 16]).unwrap();
        f.set_tear(Tear::NoChange);
        f.cut_after(Some(1));
        assert_eq!(f.erase(0, 256), Err(MockError::PowerCut));
        assert_eq!(&f.image()[..16], &[0x12; 16], "header intact");
        f.revive();
        let mut g = f.clone();
        let r = std::panic::catch_unwind(move || g.write(64, &[0; 4]));
        assert!(
            r.is_err(),
            "a torn erase must be completed before programming"
        );
        for tear in Tear::ALL {
            let mut f = MockFlash::<4, 256>::new(1, 3);
            f.write(0, &[0; 256]).unwrap();
            f.set_tear(tear);
            f.cut_after(Some(1));
            assert_eq!(f.erase(0, 256), Err(MockError::PowerCut));
            let erased = f.image().iter().filter(|&&b| b == 0xFF).count();
            match tear {
                Tear::NoChange => assert_eq!(erased, 0),
                _ => assert!(erased < 256 || tear != Tear::PrefixPartial),
            }
        }
        let mut f = MockFlash::<4, 1024>::new(1, 3);
        f.write(0, &[0; 1024]).unwrap();
        f.set_tear(Tear::Suffix);
        f.cut_after(Some(1));
        let _ = f.erase(0, 1024);
        assert_eq!(f.image()[0], 0, "suffix erase keeps the start");
    }

    #[test]
    fn tear_models_apply_a_subset_of_the_program() {
        for tear in Tear::ALL {
            let mut seen_partial = false;
            for seed in 1..40 {
                let mut f = MockFlash::<8, 1024>::new(1, seed);
                f.set_tear(tear);
                f.cut_after(Some(0));
                assert_eq!(f.write(0, &[0x00; 512]), Err(MockError::PowerCut));
                let img = &f.image()[..512];
                let zeros = img.iter().filter(|&&b| b == 0).count();
                assert!(f.image()[512..].iter().all(|&b| b == 0xFF));
                if tear == Tear::NoChange {
                    assert_eq!(zeros, 0);
                }
                if tear == Tear::Prefix {
                    let first_ff = img.iter().position(|&b| b == 0xFF).unwrap_or(512);
                    assert!(img[first_ff..].iter().all(|&b| b == 0xFF), "prefix");
                    assert_eq!(first_ff % 8, 0);
                }
                seen_partial |= zeros < 512 && img.iter().any(|&b| b != 0xFF);
            }
            assert!(seen_partial || tear == Tear::NoChange, "{tear:?}");
        }
    }

    #[test]
    fn driver_faults_apply_all_part_or_nothing_once_or_for_good() {
        let mut f = MockFlash::<4, 256>::new(2, 11);
        f.fail_at(0, Fault::All, false);
        assert_eq!(f.write(0, &[0; 8]), Err(MockError::Failed));
        assert_eq!(&f.image()[..8], &[0; 8], "landed despite the error");
        f.write(8, &[0; 4]).unwrap();
        f.fail_at(2, Fault::Nothing, true);
        assert_eq!(f.write(12, &[0; 4]), Err(MockError::Failed));
        assert_eq!(f.erase(256, 512), Err(MockError::Failed), "for good");
        assert!(f.image()[12..16].iter().all(|&b| b == 0xFF));
        let mut b = [0u8; 4];
        f.read(0, &mut b).unwrap();
        f.revive();
        f.erase(0, 256).unwrap();
        f.write(12, &[0; 4]).unwrap();
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
