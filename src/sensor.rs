//! Invariant-checked per-sensor state: three monotonic sequence numbers.
//!
//! A sensor's queue is described by three `u32` sequence numbers, compared with
//! serial-number (wrapping) arithmetic:
//!
//! ```text
//!   erased <= read <= written          (all differences taken mod 2^32)
//!   |  pending  |  available  |
//!   |--------- count ---------|
//! ```
//!
//! * `count = written - erased`: records stored (legacy `no_samples`);
//! * `pending = read - erased`: records handed out by `read` and not yet acknowledged
//!   (legacy `no_pending`);
//! * `available = written - read`: records not yet sent.
//!
//! Only the three numbers are stored, so `pending > count` (the legacy "count=0
//! pending=26214" state), an underflow on erase, or a wrap of a counter cannot be
//! represented. Every mutating method checks its precondition first and returns a
//! [`SeqError`] **without changing anything** when it does not hold. The numbers are valid
//! while fewer than 2^31 records of one sensor are stored ([`MAX_COUNT`]).
//!
//! The legacy `u16` `no_samples` / `no_pending` fields are produced by saturating
//! conversions ([`SeqState::legacy_no_samples`], [`SeqState::legacy_no_pending`]): they
//! stop at 65535 and never wrap.
#![forbid(unsafe_code)]

/// Largest number of records one sensor may hold at once (serial-number arithmetic
/// needs the span to stay below 2^31).
pub const MAX_COUNT: u32 = (1 << 31) - 1;

/// Why a sequence-number operation was refused (nothing was changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SeqError {
    /// `read` with nothing available (every stored record is already pending or the
    /// sensor is empty): the legacy over-read past the end.
    NoData,
    /// `ack(n)` / `remove` with `n` larger than the pending (or unsent) records.
    TooMany,
    /// The sensor already holds [`MAX_COUNT`] records.
    Full,
    /// The numbers are not ordered `erased <= read <= written` (only from
    /// [`SeqState::from_raw`] / [`SeqState::check`]).
    Order,
}

impl core::fmt::Display for SeqError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SeqError::NoData => "no unsent record",
            SeqError::TooMany => "more records than pending/unsent",
            SeqError::Full => "sensor holds the maximum number of records",
            SeqError::Order => "sequence numbers not ordered erased <= read <= written",
        })
    }
}

/// What happens when a write needs a RAM sector and the pool tier is exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OverflowPolicy {
    /// Free one sector of the **oldest unsent** records (never a pending record), then
    /// store the new record. See [`crate::spool`] ("Overflow") for exactly which sector.
    #[default]
    DropOldestUnsent,
    /// Refuse the new record with `Error::Full`; stored records are untouched.
    RejectNew,
}

/// The three sequence numbers of one sensor. 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SeqState {
    written: u32,
    read: u32,
    erased: u32,
}

impl SeqState {
    /// An empty sensor whose next record gets sequence number 0.
    pub const fn new() -> Self {
        Self {
            written: 0,
            read: 0,
            erased: 0,
        }
    }

    /// A state from raw numbers, or [`SeqError::Order`] if they break
    /// `erased <= read <= written` (serial arithmetic, span < 2^31).
    pub const fn from_raw(erased: u32, read: u32, written: u32) -> Result<Self, SeqError> {
        let s = Self {
            written,
            read,
            erased,
        };
        match s.check() {
            Ok(()) => Ok(s),
            Err(e) => Err(e),
        }
    }

    /// Sequence number of the next record to be written.
    pub const fn written(&self) -> u32 {
        self.written
    }
    /// Sequence number of the next record to be read (first unsent).
    pub const fn read(&self) -> u32 {
        self.read
    }
    /// Sequence number of the oldest stored record (first unacknowledged).
    pub const fn erased(&self) -> u32 {
        self.erased
    }
    /// Records stored (`written - erased`).
    pub const fn count(&self) -> u32 {
        self.written.wrapping_sub(self.erased)
    }
    /// Records read and not yet acknowledged (`read - erased`).
    pub const fn pending(&self) -> u32 {
        self.read.wrapping_sub(self.erased)
    }
    /// Records not yet read (`written - read`).
    pub const fn available(&self) -> u32 {
        self.written.wrapping_sub(self.read)
    }
    /// Legacy `no_samples`: `count` saturated to `u16`.
    pub const fn legacy_no_samples(&self) -> u16 {
        sat_u16(self.count())
    }
    /// Legacy `no_pending`: `pending` saturated to `u16`.
    pub const fn legacy_no_pending(&self) -> u16 {
        sat_u16(self.pending())
    }

    /// Verifies `erased <= read <= written` with a span below 2^31.
    pub const fn check(&self) -> Result<(), SeqError> {
        if self.count() > MAX_COUNT || self.pending() > self.count() {
            Err(SeqError::Order)
        } else {
            Ok(())
        }
    }

    /// Appends one record; returns its sequence number.
    pub fn write(&mut self) -> Result<u32, SeqError> {
        if self.count() >= MAX_COUNT {
            return Err(SeqError::Full);
        }
        let seq = self.written;
        self.written = seq.wrapping_add(1);
        Ok(seq)
    }

    /// Marks the next unsent record pending; returns its sequence number.
    pub fn read_next(&mut self) -> Result<u32, SeqError> {
        if self.available() == 0 {
            return Err(SeqError::NoData);
        }
        let seq = self.read;
        self.read = seq.wrapping_add(1);
        Ok(seq)
    }

    /// Acknowledges exactly the `n` oldest pending records (`n <= pending`).
    pub fn ack(&mut self, n: u32) -> Result<(), SeqError> {
        if n > self.pending() {
            return Err(SeqError::TooMany);
        }
        self.erased = self.erased.wrapping_add(n);
        Ok(())
    }

    /// Acknowledges every pending record; returns how many.
    pub fn ack_all(&mut self) -> u32 {
        let n = self.pending();
        self.erased = self.read;
        n
    }

    /// Makes every pending record unsent again (lossless); returns how many.
    pub fn revert(&mut self) -> u32 {
        let n = self.pending();
        self.read = self.erased;
        n
    }

    /// Drops the `n` oldest records when none is pending (overflow, head of the queue):
    /// `erased` and `read` both advance by `n`.
    pub fn drop_oldest(&mut self, n: u32) -> Result<(), SeqError> {
        if self.pending() != 0 || n > self.count() {
            return Err(SeqError::TooMany);
        }
        self.erased = self.erased.wrapping_add(n);
        self.read = self.erased;
        Ok(())
    }

    /// Removes `n` unsent records from the middle or end of the queue (overflow, a whole
    /// RAM sector after the pending ones): the records after them are renumbered `n` lower,
    /// so `written` goes back by `n`. Requires `n <= available`.
    pub fn remove_unsent(&mut self, n: u32) -> Result<(), SeqError> {
        if n > self.available() {
            return Err(SeqError::TooMany);
        }
        self.written = self.written.wrapping_sub(n);
        Ok(())
    }
}

const fn sat_u16(v: u32) -> u16 {
    if v > u16::MAX as u32 {
        u16::MAX
    } else {
        v as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_counters() {
        let mut s = SeqState::new();
        for _ in 0..5 {
            s.write().unwrap();
        }
        assert_eq!(s.read_next(), Ok(0));
        assert_eq!(s.read_next(), Ok(1));
        assert_eq!((s.count(), s.pending(), s.available()), (5, 2, 3));
        assert_eq!(s.ack(3), Err(SeqError::TooMany));
        assert_eq!((s.count(), s.pending(), s.available()), (5, 2, 3));
        s.ack(1).unwrap();
        assert_eq!(s.revert(), 1);
        assert_eq!(s.read_next(), Ok(1));
        assert_eq!(s.ack_all(), 1);
        assert_eq!((s.count(), s.pending(), s.available()), (3, 0, 3));
    }

    #[test]
    fn wraps_across_u32() {
        let mut s = SeqState::from_raw(u32::MAX - 1, u32::MAX - 1, u32::MAX - 1).unwrap();
        for _ in 0..4 {
            s.write().unwrap();
        }
        assert_eq!(s.written(), 2);
        assert_eq!(s.count(), 4);
        assert_eq!(s.read_next(), Ok(u32::MAX - 1));
        assert_eq!(s.read_next(), Ok(u32::MAX));
        assert_eq!(s.read_next(), Ok(0));
        s.ack(3).unwrap();
        assert_eq!((s.count(), s.pending()), (1, 0));
        assert_eq!(s.check(), Ok(()));
    }

    #[test]
    fn impossible_states_are_refused() {
        // pending > count, e.g. legacy "count=0 pending=26214"
        assert_eq!(SeqState::from_raw(0, 26214, 0), Err(SeqError::Order));
        assert_eq!(SeqState::from_raw(10, 5, 20), Err(SeqError::Order));
        assert_eq!(SeqState::from_raw(0, 0, 1 << 31), Err(SeqError::Order));
        let mut s = SeqState::new();
        assert_eq!(s.read_next(), Err(SeqError::NoData));
        assert_eq!(s.ack(1), Err(SeqError::TooMany));
        assert_eq!(s, SeqState::new());
    }

    #[test]
    fn legacy_mirrors_saturate() {
        let s = SeqState::from_raw(0, 70_000, 100_000).unwrap();
        assert_eq!(s.legacy_no_samples(), u16::MAX);
        assert_eq!(s.legacy_no_pending(), u16::MAX);
        let s = SeqState::from_raw(0, 7, 9).unwrap();
        assert_eq!((s.legacy_no_samples(), s.legacy_no_pending()), (9, 7));
    }

    #[test]
    fn overflow_removals() {
        let mut s = SeqState::from_raw(0, 2, 10).unwrap();
        assert_eq!(s.drop_oldest(1), Err(SeqError::TooMany)); // pending exist
        assert_eq!(s.remove_unsent(9), Err(SeqError::TooMany));
        s.remove_unsent(8).unwrap();
        assert_eq!((s.count(), s.pending(), s.available()), (2, 2, 0));
        s.ack_all();
        s.write().unwrap();
        s.drop_oldest(1).unwrap();
        assert_eq!(s.count(), 0);
    }
}
