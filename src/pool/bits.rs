//! Atomic bitmap-word primitives used by the pool.
//!
//! Two implementations with the same signatures:
//!
//! * [`cas`] (targets with 32-bit compare-and-swap: x86_64, `thumbv7m`, `thumbv7em`, ...):
//!   one `compare_exchange_weak` loop per allocation, one `fetch_and` per free. No lock is
//!   taken, nothing blocks. A retry only happens when another thread or an interrupt
//!   handler changed the same bitmap word between the load and the swap, i.e. when
//!   another allocation or free *completed*; on a single core the number of retries is
//!   bounded by the number of interrupts that touch the pool during the call.
//! * [`cs`] (targets without compare-and-swap, e.g. `riscv32imc`): the same operations
//!   as a plain load / modify / store inside one short `critical_section::with`.
//!   It is also compiled for host unit tests so both variants are tested.
//!
//! Orderings: taking a bit is `Acquire` and clearing it is `Release`, so everything the
//! previous owner wrote into a block happens-before the next owner's use of it.
//! Statistics counters are `Relaxed`.

use core::sync::atomic::AtomicU32;

#[cfg(target_has_atomic = "32")]
pub(super) use cas::{clear_bit, count, raise, take_first_zero};
#[cfg(not(target_has_atomic = "32"))]
pub(super) use cs::{clear_bit, count, raise, take_first_zero};

/// Compare-and-swap implementation.
#[cfg(target_has_atomic = "32")]
pub(super) mod cas {
    use super::AtomicU32;
    use core::sync::atomic::Ordering;

    /// Sets the lowest clear bit of `word` among the bits of `valid`.
    /// Returns the bit number and the new word value, or `None` if every valid bit is set.
    #[inline(always)]
    pub(in crate::pool) fn take_first_zero(word: &AtomicU32, valid: u32) -> Option<(u32, u32)> {
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            let free = !cur & valid;
            if free == 0 {
                return None;
            }
            let bit = free.trailing_zeros();
            let new = cur | (1 << bit);
            match word.compare_exchange_weak(cur, new, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some((bit, new)),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Clears the bits of `mask` in `word`; returns whether they were all set before.
    /// Clearing a clear bit changes nothing, so a failed (double) free is a no-op.
    #[inline(always)]
    pub(in crate::pool) fn clear_bit(word: &AtomicU32, mask: u32) -> bool {
        word.fetch_and(!mask, Ordering::Release) & mask == mask
    }

    /// Adds one to a statistics counter (wrapping).
    #[inline]
    pub(in crate::pool) fn count(counter: &AtomicU32) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Raises `counter` to at least `value`.
    #[inline(always)]
    pub(in crate::pool) fn raise(counter: &AtomicU32, value: u32) {
        if value > counter.load(Ordering::Relaxed) {
            counter.fetch_max(value, Ordering::Relaxed);
        }
    }
}

/// Critical-section implementation for targets without compare-and-swap.
#[cfg(any(test, not(target_has_atomic = "32")))]
pub(super) mod cs {
    use super::AtomicU32;
    use core::sync::atomic::Ordering;

    /// Sets the lowest clear bit of `word` among the bits of `valid`.
    /// Returns the bit number and the new word value, or `None` if every valid bit is set.
    #[inline]
    pub(in crate::pool) fn take_first_zero(word: &AtomicU32, valid: u32) -> Option<(u32, u32)> {
        critical_section::with(|_| {
            let cur = word.load(Ordering::Acquire);
            let free = !cur & valid;
            if free == 0 {
                return None;
            }
            let bit = free.trailing_zeros();
            let new = cur | (1 << bit);
            word.store(new, Ordering::Relaxed);
            Some((bit, new))
        })
    }

    /// Clears the bits of `mask` in `word`; returns whether they were all set before.
    #[inline]
    pub(in crate::pool) fn clear_bit(word: &AtomicU32, mask: u32) -> bool {
        critical_section::with(|_| {
            let cur = word.load(Ordering::Relaxed);
            if cur & mask != mask {
                return false;
            }
            word.store(cur & !mask, Ordering::Release);
            true
        })
    }

    /// Adds one to a statistics counter (wrapping).
    #[inline]
    pub(in crate::pool) fn count(counter: &AtomicU32) {
        critical_section::with(|_| {
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
        });
    }

    /// Raises `counter` to at least `value`.
    #[inline]
    pub(in crate::pool) fn raise(counter: &AtomicU32, value: u32) {
        if value > counter.load(Ordering::Relaxed) {
            critical_section::with(|_| {
                if value > counter.load(Ordering::Relaxed) {
                    counter.store(value, Ordering::Relaxed);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AtomicU32;
    use core::sync::atomic::Ordering;

    macro_rules! variant_tests {
        ($m:ident) => {
            mod $m {
                use super::*;
                use crate::pool::bits::$m::*;

                #[test]
                fn take_until_full_then_none() {
                    let w = AtomicU32::new(0);
                    for expect in 0..5 {
                        let (bit, new) = take_first_zero(&w, 0b1_1111).unwrap();
                        assert_eq!(bit, expect);
                        assert_eq!(new, (1 << (expect + 1)) - 1);
                    }
                    assert_eq!(take_first_zero(&w, 0b1_1111), None);
                    assert_eq!(w.load(Ordering::Relaxed), 0b1_1111);
                    assert_eq!(take_first_zero(&w, 0), None);
                }

                #[test]
                fn lowest_hole_first_and_clear_detects_double() {
                    let w = AtomicU32::new(0b1011);
                    assert_eq!(take_first_zero(&w, u32::MAX), Some((2, 0b1111)));
                    assert!(clear_bit(&w, 0b10));
                    assert!(!clear_bit(&w, 0b10));
                    assert_eq!(w.load(Ordering::Relaxed), 0b1101);
                    assert_eq!(take_first_zero(&w, u32::MAX), Some((1, 0b1111)));
                }

                #[test]
                fn counters() {
                    let c = AtomicU32::new(u32::MAX);
                    count(&c);
                    assert_eq!(c.load(Ordering::Relaxed), 0);
                    raise(&c, 7);
                    raise(&c, 3);
                    assert_eq!(c.load(Ordering::Relaxed), 7);
                }
            }
        };
    }
    variant_tests!(cas);
    variant_tests!(cs);
}
