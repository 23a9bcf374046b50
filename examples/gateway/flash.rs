//! A RAM-backed NOR flash for the gateway example: the part a real gateway would
//! hand to `NorFlashStorage` (through `embedded-storage`), with the rules of a plain
//! NOR part enforced (aligned program/erase, program only clears bits, every word
//! programmed at most once between erases) and the costs counted.
//!
//! The library's own fault-injecting mock (`storage::mock_flash`, feature
//! `_mock-flash`) is test support behind a feature; this small device keeps the
//! example runnable with a plain `cargo run --release --example gateway`.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Program granularity of the simulated part (bytes).
pub const WRITE_SIZE: usize = 4;
/// Erase granularity of the simulated part (bytes).
pub const ERASE_SIZE: usize = 4096;

/// Errors of the simulated part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimFlashError {
    /// Offset or length not aligned.
    NotAligned,
    /// Outside the part.
    OutOfBounds,
}

impl NorFlashError for SimFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimFlashError::NotAligned => NorFlashErrorKind::NotAligned,
            SimFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
        }
    }
}

/// Cost counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimFlashStats {
    /// Program operations.
    pub programs: u64,
    /// Bytes programmed.
    pub bytes_programmed: u64,
    /// Sector erases.
    pub erases: u64,
    /// Bytes read.
    pub bytes_read: u64,
}

/// The simulated NOR part.
pub struct SimFlash {
    data: Vec<u8>,
    programmed: Vec<bool>,
    erase_counts: Vec<u32>,
    stats: SimFlashStats,
}

impl SimFlash {
    /// An erased part of `sectors` x [`ERASE_SIZE`] bytes.
    pub fn new(sectors: usize) -> Self {
        let len = sectors * ERASE_SIZE;
        Self {
            data: vec![0xFF; len],
            programmed: vec![false; len / WRITE_SIZE],
            erase_counts: vec![0; sectors],
            stats: SimFlashStats::default(),
        }
    }

    /// The part's bytes (what a dump of the part reads).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Cost counters so far.
    pub fn stats(&self) -> SimFlashStats {
        self.stats
    }

    /// Most and fewest erases of any sector (wear spread).
    pub fn erase_spread(&self) -> (u32, u32) {
        let max = self.erase_counts.iter().copied().max().unwrap_or(0);
        let min = self.erase_counts.iter().copied().min().unwrap_or(0);
        (max, min)
    }

    fn range(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, SimFlashError> {
        let start = offset as usize;
        let end = start.checked_add(len).ok_or(SimFlashError::OutOfBounds)?;
        if end > self.data.len() {
            return Err(SimFlashError::OutOfBounds);
        }
        Ok(start..end)
    }
}

impl ErrorType for SimFlash {
    type Error = SimFlashError;
}

impl ReadNorFlash for SimFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let r = self.range(offset, bytes.len())?;
        bytes.copy_from_slice(&self.data[r]);
        self.stats.bytes_read += bytes.len() as u64;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl NorFlash for SimFlash {
    const WRITE_SIZE: usize = WRITE_SIZE;
    const ERASE_SIZE: usize = ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if !(from as usize).is_multiple_of(ERASE_SIZE)
            || !(to as usize).is_multiple_of(ERASE_SIZE)
            || to < from
        {
            return Err(SimFlashError::NotAligned);
        }
        let r = self.range(from, (to - from) as usize)?;
        self.data[r.clone()].fill(0xFF);
        self.programmed[r.start / WRITE_SIZE..r.end / WRITE_SIZE].fill(false);
        for s in r.start / ERASE_SIZE..r.end / ERASE_SIZE {
            self.erase_counts[s] += 1;
            self.stats.erases += 1;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if !(offset as usize).is_multiple_of(WRITE_SIZE) || !bytes.len().is_multiple_of(WRITE_SIZE)
        {
            return Err(SimFlashError::NotAligned);
        }
        let r = self.range(offset, bytes.len())?;
        for w in r.start / WRITE_SIZE..r.end / WRITE_SIZE {
            assert!(
                !self.programmed[w],
                "NOR rule broken: word at {:#x} programmed twice without an erase",
                w * WRITE_SIZE
            );
            self.programmed[w] = true;
        }
        for (d, s) in self.data[r].iter_mut().zip(bytes) {
            *d &= *s; // programming only clears bits
        }
        self.stats.programs += 1;
        self.stats.bytes_programmed += bytes.len() as u64;
        Ok(())
    }
}
