//! Three-tier bitmap block pool.
//!
//! A [`Pool`] owns three [`Tier`]s of fixed-size blocks (block sizes strictly ascending,
//! counts set by const generics; [`DefaultPool`] = 32 x 256 B, 16 x 1 KiB, 8 x 4 KiB).
//! Each tier keeps one `u32` bitmap word per 32 blocks (a set bit = block in use).
//! The pool never allocates from the heap; a pool is usually a `static`:
//!
//! ```
//! use sensor_spool::pool::{AllocError, DefaultPool};
//!
//! static POOL: DefaultPool = DefaultPool::new();
//!
//! let mut block = POOL.alloc(300).unwrap();       // smallest tier that fits: 1 KiB
//! assert_eq!(block.len(), 1024);
//! block[0] = 42;
//! assert_eq!(POOL.stats()[1].in_use, 1);
//! drop(block);                                    // freed on drop
//! assert_eq!(POOL.stats()[1].in_use, 0);
//! assert_eq!(POOL.alloc(5000).unwrap_err(), AllocError::TooLarge);
//! assert_eq!(POOL.check(), Ok(()));
//! ```
//!
//! # Two ways to own a block
//!
//! * **Shared path** (`&self`, any thread, interrupt handlers): [`Pool::alloc`] returns an
//!   owning [`Block`] handle that frees on drop, so safe code cannot double free.
//!   [`Block::into_raw`] / [`Pool::free_raw`] / [`Block::from_raw`] carry blocks across
//!   the C API, where `free_raw` validates every pointer.
//! * **Index path** (`&mut self`, used by the store): [`Pool::alloc_in`], [`Pool::free_id`],
//!   [`Pool::block`], [`Pool::block_mut`] work on [`BlockId`]s. Index-allocated blocks are
//!   tracked in a second bitmap, apart from handle blocks: [`Pool::block`] only returns
//!   blocks owned by the index path and [`Pool::free_raw`] refuses them, so a `&[u8]` from
//!   `block(&self, ..)` can never alias a live [`Block`] handle.
//!
//! # Allocation policy
//!
//! [`Pool::alloc`] takes the *preferred* tier, the smallest whose block size is at least
//! `size` (size 0 is treated like 1: it gets a block of the smallest tier, like C `malloc(0)`
//! returning a unique pointer). Within a tier the lowest free block is taken. If the
//! preferred tier has no free block, the next larger tiers are tried in order; success
//! there counts one `fallbacks` on the preferred tier, failure counts one `failed_allocs`
//! on the preferred tier and returns [`AllocError::Exhausted`] (transient). A size larger
//! than the largest block returns [`AllocError::TooLarge`] (permanent) and is not counted
//! in any tier. A handle's slice is always the whole block (its tier's block size).
//!
//! # Timing, interrupts, concurrency
//!
//! Alloc and free are bounded time: alloc scans at most the bitmap words of three tiers
//! (find-first-zero with `trailing_zeros`), free computes the tier from the address.
//! Nothing blocks and no lock is held, so both are callable from an interrupt handler.
//! On targets with 32-bit compare-and-swap (x86_64, `thumbv7m`, `thumbv7em`) a bitmap
//! word is updated with one CAS loop (alloc) or one `fetch_and` (free); a retry happens
//! only when another context completed an operation on the same word meanwhile. On
//! targets without CAS (`riscv32imc`) each word update is a load/modify/store inside a
//! short `critical_section::with` (the crate's critical-section provider).
//! The index path takes `&mut self` and uses plain (non-atomic, `get_mut`) access.
//!
//! # Statistics and check
//!
//! [`Pool::stats`] copies [`TierStats`] per tier in O(number of bitmap words), without
//! walking blocks. `in_use` is computed from the bitmap (population count), so "set bits
//! == blocks in use" holds by construction. The other counters are updated with relaxed
//! atomics next to the bitmap update, not in the same atomic step: while other contexts
//! allocate and free concurrently, a snapshot may be momentarily inconsistent (for
//! example `in_use` one above `peak` between an allocation's bit update and its peak
//! update). Stats and [`Pool::check`] are exact when the pool is quiescent. For tiers of
//! more than 32 blocks under concurrent use, `peak` may over-estimate the true maximum
//! by the number of concurrent operations (it sums words read at slightly different
//! times); it never under-estimates the number of blocks in use at a quiescent point.
//! Counters wrap at `u32::MAX`.

mod bits;

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

/// Number of tiers in a [`Pool`].
pub const TIERS: usize = 3;

/// The default geometry: 32 x 256 B, 16 x 1 KiB, 8 x 4 KiB (56 KiB of blocks).
pub type DefaultPool = Pool<Tier<256, 32, 1>, Tier<1024, 16, 1>, Tier<4096, 8, 1>>;

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AllocError {
    /// Permanent: the request is larger than the largest block (for [`Pool::alloc_in`]:
    /// the tier number is not below [`TIERS`]). Retrying cannot succeed.
    TooLarge,
    /// Transient: every tier that could serve the request is full right now
    /// (for [`Pool::alloc_in`]: that tier is full, or has no blocks at all).
    Exhausted,
}

/// Why a free was rejected. A rejected free changes nothing but the
/// `invalid_frees` counter (or [`Pool::stray_frees`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FreeError {
    /// The pointer (or id) is not the start of a block this path may free: outside every
    /// tier, inside a block but not at its start, or a block owned by the other path
    /// (an index-path block passed to [`Pool::free_raw`], a handle block passed to
    /// [`Pool::free_id`]), or an id out of range.
    Foreign,
    /// The block is already free.
    DoubleFree,
}

/// Which invariant [`Pool::check`] found broken, and in which tier (0 = smallest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PoolCheckError {
    /// A bit is set in the in-use bitmap (or the index-ownership bitmap) past the tier's capacity.
    BitPastCapacity {
        /// Tier number.
        tier: u8,
        /// Bit number (block index) of the first such bit.
        bit: u32,
    },
    /// A block is marked as owned by the index path but its in-use bit is clear.
    IndexBlockNotInUse {
        /// Tier number.
        tier: u8,
        /// Block index.
        index: u16,
    },
    /// `in_use > peak`.
    PeakBelowInUse {
        /// Tier number.
        tier: u8,
        /// Blocks in use (set bits).
        in_use: u32,
        /// Recorded peak.
        peak: u32,
    },
    /// `peak > capacity`.
    PeakAboveCapacity {
        /// Tier number.
        tier: u8,
        /// Recorded peak.
        peak: u32,
        /// Number of blocks in the tier.
        capacity: u32,
    },
}

impl PoolCheckError {
    /// The tier in which the invariant broke.
    pub const fn tier(&self) -> u8 {
        match *self {
            Self::BitPastCapacity { tier, .. }
            | Self::IndexBlockNotInUse { tier, .. }
            | Self::PeakBelowInUse { tier, .. }
            | Self::PeakAboveCapacity { tier, .. } => tier,
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "request larger than the largest block",
            Self::Exhausted => "no free block in any fitting tier",
        })
    }
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Foreign => "pointer is not the start of a block of this pool",
            Self::DoubleFree => "block is already free",
        })
    }
}

impl fmt::Display for PoolCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BitPastCapacity { tier, bit } => {
                write!(f, "tier {tier}: bit {bit} set past capacity")
            }
            Self::IndexBlockNotInUse { tier, index } => {
                write!(f, "tier {tier}: index block {index} not marked in use")
            }
            Self::PeakBelowInUse { tier, in_use, peak } => {
                write!(f, "tier {tier}: in_use {in_use} > peak {peak}")
            }
            Self::PeakAboveCapacity {
                tier,
                peak,
                capacity,
            } => write!(f, "tier {tier}: peak {peak} > capacity {capacity}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for AllocError {}
#[cfg(feature = "std")]
impl std::error::Error for FreeError {}
#[cfg(feature = "std")]
impl std::error::Error for PoolCheckError {}

/// Identifies one block: tier number (0 = smallest) and index within the tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId {
    tier: u8,
    index: u16,
}

impl BlockId {
    /// Makes an id. Any value is accepted; pool methods validate ids.
    pub const fn new(tier: u8, index: u16) -> Self {
        Self { tier, index }
    }
    /// Tier number, 0 = smallest blocks.
    pub const fn tier(self) -> u8 {
        self.tier
    }
    /// Index of the block within its tier.
    pub const fn index(self) -> u16 {
        self.index
    }
}

/// Statistics of one tier, as copied by [`Pool::stats`]. C-compatible layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TierStats {
    /// Size of each block in bytes.
    pub block_size: u32,
    /// Number of blocks in the tier.
    pub capacity: u32,
    /// Blocks currently allocated (handle and index path together); free = capacity - in_use.
    pub in_use: u32,
    /// Highest `in_use` seen since creation or the last [`Pool::reset_peak`].
    pub peak: u32,
    /// Allocations that preferred this tier and failed with `Exhausted` (every fitting
    /// tier full), plus [`Pool::alloc_in`] failures on this tier.
    pub failed_allocs: u32,
    /// Rejected frees whose address or id lies in this tier (misaligned, already free,
    /// owned by the other path).
    pub invalid_frees: u32,
    /// Allocations that preferred this tier, found it full and were served by a larger tier.
    pub fallbacks: u32,
}

/// Block storage, aligned to 8 bytes so blocks can hold any record type up to `u64`.
#[repr(C, align(8))]
struct Aligned<const B: usize>([u8; B]);

/// One tier: `COUNT` blocks of `BLOCK` bytes and `WORDS` bitmap words.
///
/// `WORDS` must equal `COUNT.div_ceil(32)` and `BLOCK` must be a non-zero multiple of 8;
/// both are checked at compile time when the tier is constructed. `COUNT` may be 0
/// (a tier that never serves a block; allocations fall through to the next tier) and at
/// most 65536.
///
/// ```
/// use sensor_spool::pool::{Pool, Tier};
/// // 40 blocks need 2 bitmap words; an empty middle tier is allowed.
/// static P: Pool<Tier<64, 40, 2>, Tier<128, 0, 0>, Tier<512, 70, 3>> = Pool::new();
/// assert_eq!(P.alloc(100).unwrap().len(), 512);
/// ```
///
/// A wrong word count does not compile:
///
/// ```compile_fail
/// use sensor_spool::pool::{Pool, Tier};
/// static P: Pool<Tier<64, 40, 1>, Tier<128, 8, 1>, Tier<512, 8, 1>> = Pool::new();
/// ```
///
/// Neither do block sizes that are not strictly ascending:
///
/// ```compile_fail
/// use sensor_spool::pool::{Pool, Tier};
/// static P: Pool<Tier<256, 8, 1>, Tier<256, 8, 1>, Tier<512, 8, 1>> = Pool::new();
/// ```
pub struct Tier<const BLOCK: usize, const COUNT: usize, const WORDS: usize> {
    used: [AtomicU32; WORDS],
    index_owned: [AtomicU32; WORDS],
    counters: Counters,
    blocks: [UnsafeCell<Aligned<BLOCK>>; COUNT],
}

/// The counters of one tier.
struct Counters {
    /// No bit is set in a bitmap word above this index (raised by every allocation,
    /// lowered by the index path's scan), so the index path's peak bound scans only
    /// the words that can hold blocks. Unused for single-word tiers.
    top_word: AtomicU32,
    peak: AtomicU32,
    failed_allocs: AtomicU32,
    invalid_frees: AtomicU32,
    fallbacks: AtomicU32,
}

// SAFETY: all shared state except the block bytes is atomic. A block's bytes are only
// accessed by the single owner of its in-use bit: a `Block` handle (or the raw pointer it
// was turned into), or the index path (`&mut Pool`, or `&Pool` for reading a block whose
// index-ownership bit is set, which nothing on the shared path can clear or take). The
// bit is taken with Acquire and released with Release ordering, so ownership transfers
// between threads are synchronised. Hence sharing `&Tier` between threads is sound.
unsafe impl<const BLOCK: usize, const COUNT: usize, const WORDS: usize> Sync
    for Tier<BLOCK, COUNT, WORDS>
{
}

impl<const BLOCK: usize, const COUNT: usize, const WORDS: usize> Tier<BLOCK, COUNT, WORDS> {
    const VALID: () = {
        assert!(
            WORDS == COUNT.div_ceil(32),
            "Tier: WORDS must be COUNT.div_ceil(32)"
        );
        assert!(
            BLOCK > 0 && BLOCK.is_multiple_of(8),
            "Tier: BLOCK must be a non-zero multiple of 8"
        );
        assert!(BLOCK <= u32::MAX as usize, "Tier: BLOCK must fit in u32");
        assert!(COUNT <= 1 << 16, "Tier: COUNT must be at most 65536");
        assert!(core::mem::size_of::<Aligned<BLOCK>>() == BLOCK);
    };

    /// An empty tier (every block free, counters zero).
    #[allow(clippy::new_without_default)] // `Tier` is only built through `Pool::new`.
    pub const fn new() -> Self {
        let () = Self::VALID;
        Self {
            used: [const { AtomicU32::new(0) }; WORDS],
            index_owned: [const { AtomicU32::new(0) }; WORDS],
            counters: Counters {
                top_word: AtomicU32::new(0),
                peak: AtomicU32::new(0),
                failed_allocs: AtomicU32::new(0),
                invalid_frees: AtomicU32::new(0),
                fallbacks: AtomicU32::new(0),
            },
            blocks: [const { UnsafeCell::new(Aligned([0; BLOCK])) }; COUNT],
        }
    }

    /// Bits of word `w` that correspond to existing blocks.
    #[inline(always)]
    const fn valid_mask(w: usize) -> u32 {
        let rem = COUNT - w * 32;
        if rem >= 32 {
            u32::MAX
        } else {
            (1u32 << rem) - 1
        }
    }

    /// Pointer to block `i`.
    ///
    /// # Safety
    /// `i < COUNT`.
    #[inline(always)]
    unsafe fn block_ptr(&self, i: usize) -> NonNull<u8> {
        debug_assert!(i < COUNT);
        let base = UnsafeCell::raw_get(self.blocks.as_ptr()).cast::<u8>();
        // SAFETY: i < COUNT (caller), so `i * BLOCK` is an offset inside the block array
        // (blocks are exactly BLOCK bytes apart, `size_of::<Aligned<BLOCK>>() == BLOCK`);
        // the result is derived from a reference, so it is not null.
        unsafe { NonNull::new_unchecked(base.add(i * BLOCK)) }
    }

    /// Blocks in use: population count of the bitmap.
    #[inline]
    fn in_use(&self) -> u32 {
        self.used
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones())
            .sum()
    }

    // The index path (the store's, `&mut Pool`) stays generic: it is the store's hot path,
    // where the tier's geometry as constants and plain (`get_mut`) access pay, and a
    // firmware instantiates it for the store's tier only.

    /// Index path: allocates the lowest free block and marks it index-owned.
    fn alloc_index(&mut self) -> Option<u16> {
        for w in 0..WORDS {
            let used = self.used[w].get_mut();
            let free = !*used & Self::valid_mask(w);
            if free != 0 {
                let bit = free.trailing_zeros();
                *used |= 1 << bit;
                *self.index_owned[w].get_mut() |= 1 << bit;
                let peak = *self.counters.peak.get_mut();
                // Popcount only when it may raise the peak: `in_use` is at most the index
                // of the highest set bit of the tier plus one, and blocks are taken lowest
                // first, so that bound stays close to `in_use`. Skip the population count
                // (~15 instructions per word without a popcount instruction) while the
                // bound does not exceed the peak.
                let high = if WORDS == 1 {
                    32 - (*used).leading_zeros()
                } else {
                    // Highest non-empty word: scan down from `top_word` (no bit above
                    // it) to `w` (not empty now); then lower `top_word` to it (`&mut`:
                    // nothing allocates meanwhile).
                    let mut top = (*self.counters.top_word.get_mut() as usize).clamp(w, WORDS - 1);
                    let mut top_bits = *self.used[top].get_mut();
                    while top_bits == 0 && top > w {
                        top -= 1;
                        top_bits = *self.used[top].get_mut();
                    }
                    *self.counters.top_word.get_mut() = top as u32;
                    (top as u32) * 32 + 32 - top_bits.leading_zeros()
                };
                if high > peak {
                    let in_use = self.in_use();
                    *self.counters.peak.get_mut() = peak.max(in_use);
                }
                return Some((w * 32) as u16 + bit as u16);
            }
        }
        let f = self.counters.failed_allocs.get_mut();
        *f = f.wrapping_add(1);
        None
    }

    /// Index path: frees an index-owned block.
    fn free_index(&mut self, index: u16) -> Result<(), FreeError> {
        let i = usize::from(index);
        let r = if i >= COUNT {
            Err(FreeError::Foreign)
        } else {
            let (w, mask) = (i / 32, 1u32 << (i % 32));
            let owned = self.index_owned[w].get_mut();
            if *owned & mask != 0 {
                *owned &= !mask;
                *self.used[w].get_mut() &= !mask;
                Ok(())
            } else if *self.used[w].get_mut() & mask != 0 {
                Err(FreeError::Foreign)
            } else {
                Err(FreeError::DoubleFree)
            }
        };
        if r.is_err() {
            let f = self.counters.invalid_frees.get_mut();
            *f = f.wrapping_add(1);
        }
        r
    }

    /// Index path: the bytes of an index-owned block.
    fn index_block(&self, index: u16) -> Option<&[u8]> {
        let i = usize::from(index);
        if i >= COUNT || self.index_owned[i / 32].load(Ordering::Relaxed) & (1 << (i % 32)) == 0 {
            return None;
        }
        // SAFETY: i < COUNT. The block is owned by the index path (its ownership bit is
        // set). That bit only changes under `&mut Pool`, which cannot exist while the
        // returned `&[u8]` (tied to `&self`) lives; the shared path never hands out an
        // index-owned block (`alloc` only takes clear in-use bits, `free_raw` refuses
        // index-owned blocks, `Block::from_raw` requires a pointer from `Block::into_raw`).
        // So no `&mut` to these bytes can exist meanwhile.
        Some(unsafe { core::slice::from_raw_parts(self.block_ptr(i).as_ptr(), BLOCK) })
    }

    /// Index path: the bytes of an index-owned block, mutably.
    fn index_block_mut(&mut self, index: u16) -> Option<&mut [u8]> {
        let i = usize::from(index);
        if i >= COUNT || *self.index_owned[i / 32].get_mut() & (1 << (i % 32)) == 0 {
            return None;
        }
        // SAFETY: as in `index_block`, and `&mut self` excludes every other access to
        // index-owned blocks for the lifetime of the returned slice.
        Some(unsafe { core::slice::from_raw_parts_mut(self.block_ptr(i).as_ptr(), BLOCK) })
    }
}

mod sealed {
    use super::{AtomicU32, Counters};

    /// The geometry of one tier as data, and references to its state: every tier
    /// operation is implemented once, on this type (not per `Tier<BLOCK, COUNT, WORDS>`
    /// type), so a firmware links one copy of each operation it uses and none of the
    /// others. Not part of the public API.
    pub struct TierRef<'a> {
        pub(in crate::pool) used: &'a [AtomicU32],
        pub(in crate::pool) index_owned: &'a [AtomicU32],
        pub(in crate::pool) counters: &'a Counters,
        /// First byte of the block array; its provenance covers every block.
        pub(in crate::pool) base: *mut u8,
        /// Block size in bytes (a non-zero multiple of 8).
        pub(in crate::pool) block: usize,
        /// Number of blocks (`used.len() == count.div_ceil(32)`).
        pub(in crate::pool) count: usize,
    }

    /// How [`super::Pool`] reaches a tier; implemented only by [`super::Tier`]. Statically
    /// dispatched (no vtable), so only the operations a firmware calls are linked.
    pub trait TierOps: Sync {
        /// The shared path's view (geometry as data).
        fn view(&self) -> TierRef<'_>;
        /// Index path, see `Tier`.
        fn alloc_index(&mut self) -> Option<u16>;
        /// Index path, see `Tier`.
        fn free_index(&mut self, index: u16) -> Result<(), super::FreeError>;
        /// Index path, see `Tier`.
        fn index_block(&self, index: u16) -> Option<&[u8]>;
        /// Index path, see `Tier`.
        fn index_block_mut(&mut self, index: u16) -> Option<&mut [u8]>;
    }
}
use sealed::{TierOps, TierRef};

/// A tier type usable in a [`Pool`]; implemented only by [`Tier`].
pub trait TierSpec: sealed::TierOps + Sized {
    /// Block size in bytes.
    const BLOCK: usize;
    /// Number of blocks.
    const COUNT: usize;
    /// An empty tier (used by [`Pool::new`]).
    #[allow(clippy::declare_interior_mutable_const)] // used by value only, never borrowed
    const NEW: Self;
}

impl<const BLOCK: usize, const COUNT: usize, const WORDS: usize> TierSpec
    for Tier<BLOCK, COUNT, WORDS>
{
    const BLOCK: usize = BLOCK;
    const COUNT: usize = COUNT;
    #[allow(clippy::declare_interior_mutable_const)]
    const NEW: Self = Self::new();
}

impl<const BLOCK: usize, const COUNT: usize, const WORDS: usize> TierOps
    for Tier<BLOCK, COUNT, WORDS>
{
    #[inline(always)]
    fn view(&self) -> TierRef<'_> {
        TierRef {
            used: &self.used,
            index_owned: &self.index_owned,
            counters: &self.counters,
            base: UnsafeCell::raw_get(self.blocks.as_ptr()).cast::<u8>(),
            block: BLOCK,
            count: COUNT,
        }
    }
    fn alloc_index(&mut self) -> Option<u16> {
        Tier::alloc_index(self)
    }
    fn free_index(&mut self, index: u16) -> Result<(), FreeError> {
        Tier::free_index(self, index)
    }
    fn index_block(&self, index: u16) -> Option<&[u8]> {
        Tier::index_block(self, index)
    }
    fn index_block_mut(&mut self, index: u16) -> Option<&mut [u8]> {
        Tier::index_block_mut(self, index)
    }
}

impl<'a> TierRef<'a> {
    /// Bits of word `w` that correspond to existing blocks.
    #[inline(always)]
    fn valid_mask(&self, w: usize) -> u32 {
        let rem = self.count.saturating_sub(w * 32);
        if rem >= 32 {
            u32::MAX
        } else {
            (1u32 << rem) - 1
        }
    }

    /// Pointer to block `i`.
    ///
    /// # Safety
    /// `i < self.count`.
    #[inline(always)]
    unsafe fn block_ptr(&self, i: usize) -> NonNull<u8> {
        debug_assert!(i < self.count);
        // SAFETY: i < count (caller), so `i * block` is an offset inside the block array
        // (blocks are exactly `block` bytes apart, `size_of::<Aligned<BLOCK>>() == BLOCK`);
        // the base is derived from a reference, so the result is not null.
        unsafe { NonNull::new_unchecked(self.base.add(i * self.block)) }
    }

    /// Blocks in use: population count of the bitmap.
    #[inline]
    fn in_use(&self) -> u32 {
        self.used
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones())
            .sum()
    }

    /// Shared-path allocation from this tier only; counts nothing but `peak`.
    fn take(&self, tier: u8) -> Option<Block<'a>> {
        let c = self.counters;
        // Read before the bitmap update so no load waits behind the atomic operation;
        // a stale value only costs an extra (re-checked) `raise`.
        let peak = c.peak.load(Ordering::Relaxed);
        let used: &'a [AtomicU32] = self.used;
        for (w, word) in used.iter().enumerate() {
            if let Some((bit, new)) = bits::take_first_zero(word, self.valid_mask(w)) {
                if used.len() == 1 {
                    // popcount(new) <= index of the highest set bit + 1: skip the
                    // population count while that bound does not exceed the peak
                    // (the common case once the tier has been used).
                    if 32 - new.leading_zeros() > peak {
                        bits::raise(&c.peak, new.count_ones());
                    }
                } else {
                    // Keep "every word above `top_word` is zero" for the index path.
                    bits::raise(&c.top_word, w as u32);
                    bits::raise(&c.peak, self.in_use());
                }
                let i = w * 32 + bit as usize;
                return Some(Block {
                    // SAFETY: bit is a valid bit of word w, so i < count.
                    ptr: unsafe { self.block_ptr(i) },
                    word,
                    info: Block::pack(self.block, tier, i),
                    _bytes: PhantomData,
                });
            }
        }
        None
    }

    /// Block index of the block starting at `addr`: `None` if outside this tier,
    /// `Some(Err(()))` if inside but not at a block start.
    #[inline]
    fn locate(&self, addr: usize) -> Option<Result<usize, ()>> {
        let off = addr.wrapping_sub(self.base.addr());
        if off >= self.count.saturating_mul(self.block) {
            return None;
        }
        // Checked: `block` is never 0 (`Tier::VALID`), but the division stays panic-free.
        match (off.checked_div(self.block), off.checked_rem(self.block)) {
            (Some(i), Some(0)) => Some(Ok(i)),
            (Some(_), Some(_)) => Some(Err(())),
            _ => None,
        }
    }

    fn count_failed(&self) {
        bits::count(&self.counters.failed_allocs);
    }

    fn count_fallback(&self) {
        bits::count(&self.counters.fallbacks);
    }

    fn free_addr(&self, addr: usize) -> Option<Result<(), FreeError>> {
        let r = match self.locate(addr)? {
            Err(()) => Err(FreeError::Foreign),
            Ok(i) => {
                let mask = 1u32 << (i % 32);
                match (self.index_owned.get(i / 32), self.used.get(i / 32)) {
                    // Index-owned bits only change under `&mut Pool`, so this read cannot
                    // race with a change while we hold `&self`.
                    (Some(owned), _) if owned.load(Ordering::Relaxed) & mask != 0 => {
                        Err(FreeError::Foreign)
                    }
                    (Some(_), Some(word)) if bits::clear_bit(word, mask) => Ok(()),
                    (Some(_), Some(_)) => Err(FreeError::DoubleFree),
                    _ => Err(FreeError::Foreign),
                }
            }
        };
        if r.is_err() {
            bits::count(&self.counters.invalid_frees);
        }
        Some(r)
    }

    fn locate_id(&self, addr: usize, tier: u8) -> Option<BlockId> {
        match self.locate(addr)? {
            Ok(i) => Some(BlockId::new(tier, i as u16)),
            Err(()) => None,
        }
    }

    fn handle_at(&self, index: usize, tier: u8) -> Option<Block<'a>> {
        let used: &'a [AtomicU32] = self.used;
        let word = used.get(index / 32).filter(|_| index < self.count)?;
        debug_assert!(
            self.index_owned[index / 32].load(Ordering::Relaxed) & (1 << (index % 32)) == 0,
            "Block::from_raw: block belongs to the index path"
        );
        Some(Block {
            // SAFETY: index < count checked above.
            ptr: unsafe { self.block_ptr(index) },
            word,
            info: Block::pack(self.block, tier, index),
            _bytes: PhantomData,
        })
    }

    fn stats(&self) -> TierStats {
        let c = self.counters;
        TierStats {
            block_size: self.block as u32,
            capacity: self.count as u32,
            in_use: self.in_use(),
            peak: c.peak.load(Ordering::Relaxed),
            failed_allocs: c.failed_allocs.load(Ordering::Relaxed),
            invalid_frees: c.invalid_frees.load(Ordering::Relaxed),
            fallbacks: c.fallbacks.load(Ordering::Relaxed),
        }
    }

    fn reset_peak(&self) {
        self.counters.peak.store(self.in_use(), Ordering::Relaxed);
    }

    fn check(&self, tier: u8) -> Result<(), PoolCheckError> {
        for (w, (used, owned)) in self.used.iter().zip(self.index_owned).enumerate() {
            let valid = self.valid_mask(w);
            let used = used.load(Ordering::Relaxed);
            let owned = owned.load(Ordering::Relaxed);
            let past = (used | owned) & !valid;
            if past != 0 {
                return Err(PoolCheckError::BitPastCapacity {
                    tier,
                    bit: (w * 32) as u32 + past.trailing_zeros(),
                });
            }
            let orphan = owned & !used;
            if orphan != 0 {
                return Err(PoolCheckError::IndexBlockNotInUse {
                    tier,
                    index: (w * 32) as u16 + orphan.trailing_zeros() as u16,
                });
            }
        }
        let in_use = self.in_use();
        let peak = self.counters.peak.load(Ordering::Relaxed);
        if in_use > peak {
            return Err(PoolCheckError::PeakBelowInUse { tier, in_use, peak });
        }
        if peak > self.count as u32 {
            return Err(PoolCheckError::PeakAboveCapacity {
                tier,
                peak,
                capacity: self.count as u32,
            });
        }
        Ok(())
    }
}

/// The three-tier block pool. `S`, `M`, `L` are [`Tier`]s with strictly ascending block
/// sizes (checked at compile time). See the [module docs](self).
pub struct Pool<S, M, L> {
    s: S,
    m: M,
    l: L,
    stray_frees: AtomicU32,
}

impl<S: TierSpec, M: TierSpec, L: TierSpec> Default for Pool<S, M, L> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: TierSpec, M: TierSpec, L: TierSpec> fmt::Debug for Pool<S, M, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("tiers", &self.stats())
            .field("stray_frees", &self.stray_frees())
            .finish()
    }
}

impl<S: TierSpec, M: TierSpec, L: TierSpec> Pool<S, M, L> {
    const VALID: () = assert!(
        S::BLOCK < M::BLOCK && M::BLOCK < L::BLOCK,
        "Pool: tier block sizes must be strictly ascending"
    );

    /// Largest block size (largest request [`Pool::alloc`] can serve).
    pub const MAX_BLOCK: usize = L::BLOCK;

    /// An empty pool. `const`, so a pool can be a `static`.
    pub const fn new() -> Self {
        let () = Self::VALID;
        Self {
            s: S::NEW,
            m: M::NEW,
            l: L::NEW,
            stray_frees: AtomicU32::new(0),
        }
    }

    /// Block size of `tier` in bytes (0 if `tier >= TIERS`).
    pub const fn block_size(tier: usize) -> usize {
        match tier {
            0 => S::BLOCK,
            1 => M::BLOCK,
            2 => L::BLOCK,
            _ => 0,
        }
    }

    /// Number of blocks in `tier` (0 if `tier >= TIERS`).
    pub const fn capacity(tier: usize) -> usize {
        match tier {
            0 => S::COUNT,
            1 => M::COUNT,
            2 => L::COUNT,
            _ => 0,
        }
    }

    /// The preferred tier for a request of `size` bytes: the smallest whose block size is
    /// at least `size` (0 for size 0), or `None` if `size > MAX_BLOCK`. Ignores whether the
    /// tier has blocks.
    pub const fn tier_of_size(size: usize) -> Option<usize> {
        if size <= S::BLOCK {
            Some(0)
        } else if size <= M::BLOCK {
            Some(1)
        } else if size <= L::BLOCK {
            Some(2)
        } else {
            None
        }
    }

    #[inline(always)]
    fn tier(&self, tier: usize) -> TierRef<'_> {
        match tier {
            0 => self.s.view(),
            1 => self.m.view(),
            _ => self.l.view(),
        }
    }

    /// Allocates a block of at least `size` bytes (see the module docs for the policy).
    /// Bounded time, never blocks, callable from an interrupt handler.
    ///
    /// # Errors
    /// [`AllocError::TooLarge`] if `size > MAX_BLOCK` (permanent);
    /// [`AllocError::Exhausted`] if every fitting tier is full (transient).
    #[inline]
    pub fn alloc(&self, size: usize) -> Result<Block<'_>, AllocError> {
        let pref = if size <= S::BLOCK {
            if let Some(b) = self.s.view().take(0) {
                return Ok(b);
            }
            0
        } else if size <= M::BLOCK {
            if let Some(b) = self.m.view().take(1) {
                return Ok(b);
            }
            1
        } else if size <= L::BLOCK {
            if let Some(b) = self.l.view().take(2) {
                return Ok(b);
            }
            2
        } else {
            return Err(AllocError::TooLarge);
        };
        self.alloc_fallback(pref)
    }

    #[cold]
    fn alloc_fallback(&self, pref: usize) -> Result<Block<'_>, AllocError> {
        for t in pref + 1..TIERS {
            if let Some(b) = self.tier(t).take(t as u8) {
                self.tier(pref).count_fallback();
                return Ok(b);
            }
        }
        self.tier(pref).count_failed();
        Err(AllocError::Exhausted)
    }

    /// Frees the block starting at `ptr`, which normally comes from [`Block::into_raw`]
    /// (the C API's free). Every pointer is validated: a null pointer, a pointer outside
    /// every tier, inside a block but not at its start, to an index-path block
    /// ([`FreeError::Foreign`]) or to a free block ([`FreeError::DoubleFree`]) is rejected,
    /// counted (`invalid_frees` of the tier the address lies in, else [`Pool::stray_frees`])
    /// and changes nothing else. Bounded time, never blocks, callable from an interrupt handler.
    ///
    /// # Errors
    /// See above.
    ///
    /// # Safety
    /// If `ptr` is the start of an allocated handle block of this pool, the caller gives up
    /// that block: no [`Block`] handle for it may still exist (it must have been consumed by
    /// [`Block::into_raw`]), and no pointer or reference into it may be used after this call.
    /// Any other pointer value (null, foreign, misaligned, already free) is safe to pass;
    /// it is never dereferenced.
    pub unsafe fn free_raw(&self, ptr: *mut u8) -> Result<(), FreeError> {
        let addr = ptr.addr();
        for t in 0..TIERS {
            if let Some(r) = self.tier(t).free_addr(addr) {
                return r;
            }
        }
        bits::count(&self.stray_frees);
        Err(FreeError::Foreign)
    }

    /// Invalid frees passed to [`Pool::free_raw`] whose address lies in no tier
    /// (they cannot be attributed to a tier's `invalid_frees`).
    pub fn stray_frees(&self) -> u32 {
        self.stray_frees.load(Ordering::Relaxed)
    }

    /// The id of the block that starts at `ptr` (allocated or not), or `None` if `ptr` is
    /// not the start of a block of this pool. Never dereferences `ptr`.
    pub fn locate(&self, ptr: *const u8) -> Option<BlockId> {
        let addr = ptr.addr();
        (0..TIERS).find_map(|t| self.tier(t).locate_id(addr, t as u8))
    }

    /// Per-tier statistics (index 0 = smallest blocks). O(bitmap words), no block walk.
    /// Exact when no other context is allocating or freeing concurrently.
    pub fn stats(&self) -> [TierStats; TIERS] {
        [
            self.s.view().stats(),
            self.m.view().stats(),
            self.l.view().stats(),
        ]
    }

    /// Sets every tier's `peak` to its current `in_use`.
    pub fn reset_peak(&self) {
        for t in 0..TIERS {
            self.tier(t).reset_peak();
        }
    }

    /// Verifies the invariants of every tier: no bit set past capacity (in-use and
    /// index-ownership bitmaps), every index-owned block is in use,
    /// `in_use <= peak <= capacity` (`in_use` is the bitmap's population count, so
    /// "set bits == in use" holds by construction). Reports the first broken invariant
    /// and its tier; never panics. Exact when the pool is quiescent (see module docs).
    ///
    /// # Errors
    /// The first broken invariant found, smallest tier first.
    pub fn check(&self) -> Result<(), PoolCheckError> {
        for t in 0..TIERS {
            self.tier(t).check(t as u8)?;
        }
        Ok(())
    }

    /// Index path: allocates the lowest free block of exactly `tier` (no fallback) and
    /// marks it as owned by the index path. Counts `failed_allocs` on that tier if full.
    ///
    /// # Errors
    /// [`AllocError::TooLarge`] if `tier >= TIERS`; [`AllocError::Exhausted`] if that tier
    /// has no free block (including a tier of 0 blocks).
    #[inline]
    pub fn alloc_in(&mut self, tier: usize) -> Result<BlockId, AllocError> {
        let index = match tier {
            0 => self.s.alloc_index(),
            1 => self.m.alloc_index(),
            2 => self.l.alloc_index(),
            _ => return Err(AllocError::TooLarge),
        };
        index
            .map(|index| BlockId::new(tier as u8, index))
            .ok_or(AllocError::Exhausted)
    }

    /// Index path: frees a block allocated by [`Pool::alloc_in`].
    ///
    /// # Errors
    /// [`FreeError::Foreign`] if the id is out of range or the block is a handle block
    /// (from [`Pool::alloc`]); [`FreeError::DoubleFree`] if the block is free. Counted in
    /// the tier's `invalid_frees` (an out-of-range tier is not counted); nothing else changes.
    #[inline]
    pub fn free_id(&mut self, id: BlockId) -> Result<(), FreeError> {
        match id.tier {
            0 => self.s.free_index(id.index),
            1 => self.m.free_index(id.index),
            2 => self.l.free_index(id.index),
            _ => Err(FreeError::Foreign),
        }
    }

    /// Index path: the bytes of an index-allocated block, or `None` if `id` is not a
    /// block currently allocated by [`Pool::alloc_in`].
    pub fn block(&self, id: BlockId) -> Option<&[u8]> {
        match id.tier {
            0 => self.s.index_block(id.index),
            1 => self.m.index_block(id.index),
            2 => self.l.index_block(id.index),
            _ => None,
        }
    }

    /// Index path: the bytes of an index-allocated block, mutably, or `None` if `id` is
    /// not a block currently allocated by [`Pool::alloc_in`].
    pub fn block_mut(&mut self, id: BlockId) -> Option<&mut [u8]> {
        match id.tier {
            0 => self.s.index_block_mut(id.index),
            1 => self.m.index_block_mut(id.index),
            2 => self.l.index_block_mut(id.index),
            _ => None,
        }
    }
}

/// An owning handle to one block of a [`Pool`]: dereferences to the block's bytes (the
/// whole block, `len()` = the tier's block size) and frees the block on drop.
///
/// `Block` is `Send` and `Sync`: it owns its bytes exclusively, and freeing is atomic.
pub struct Block<'a> {
    ptr: NonNull<u8>,
    /// The bitmap word holding this block's bit (bit `id.index % 32`).
    word: &'a AtomicU32,
    /// Block length (bits 0..32), index (32..48) and tier (48..56) in one word, so a
    /// `Block` moves with whole-word copies (no store-forwarding stalls on small fields).
    info: u64,
    _bytes: PhantomData<&'a mut [u8]>,
}

// SAFETY: a `Block` is the unique owner of its block's bytes (like `&mut [u8]`, which is
// Send and Sync), and its drop only performs an atomic bit clear on the pool, which is
// `Sync`. Moving or sharing it between threads is therefore sound.
unsafe impl Send for Block<'_> {}
// SAFETY: `&Block` only gives `&[u8]` access; see the `Send` impl.
unsafe impl Sync for Block<'_> {}

impl<'a> Block<'a> {
    /// This block's bit in `word`.
    #[inline(always)]
    fn mask(&self) -> u32 {
        1 << ((self.info >> 32) as u32 % 32)
    }

    #[inline(always)]
    const fn pack(len: usize, tier: u8, index: usize) -> u64 {
        len as u64 | (index as u64) << 32 | (tier as u64) << 48
    }

    #[inline(always)]
    fn byte_len(&self) -> usize {
        self.info as u32 as usize
    }

    /// Id of the block (tier and index).
    pub fn id(&self) -> BlockId {
        BlockId::new(self.tier(), (self.info >> 32) as u16)
    }

    /// Tier number of the block (0 = smallest).
    pub fn tier(&self) -> u8 {
        (self.info >> 48) as u8
    }

    /// Gives up ownership without freeing and returns the block's start address, e.g. to
    /// hand it to C. Free it with [`Pool::free_raw`] or turn it back into a handle with
    /// [`Block::from_raw`].
    ///
    /// Both of those use only the address and re-derive access from the pool. Rust code
    /// that keeps the returned pointer must not dereference it after a `&mut Pool` borrow
    /// (the index path) has been taken meanwhile: under Rust's aliasing rules that borrow
    /// covers the whole pool; rebuild the handle with [`Block::from_raw`] instead.
    pub fn into_raw(self) -> NonNull<u8> {
        let ptr = self.ptr;
        core::mem::forget(self);
        ptr
    }

    /// Rebuilds a handle from a pointer returned by [`Block::into_raw`].
    ///
    /// # Safety
    /// * `ptr` was returned by [`Block::into_raw`] on a handle of this same `pool`, and the
    ///   pool has not been moved since (a `static` pool never moves);
    /// * since then the block has not been freed ([`Pool::free_raw`]) nor rebuilt by
    ///   another `from_raw` call: each `into_raw` is matched by at most one `from_raw` or
    ///   `free_raw`;
    /// * no pointer or reference into the block derived earlier is used while the new
    ///   handle exists (the handle owns the bytes exclusively).
    ///
    /// # Panics
    /// If `ptr` is not the start of a block of `pool` (a violation of the first rule that
    /// can be detected). Not for use on pointers from C: use [`Pool::free_raw`] there.
    pub unsafe fn from_raw<S: TierSpec, M: TierSpec, L: TierSpec>(
        pool: &'a Pool<S, M, L>,
        ptr: NonNull<u8>,
    ) -> Self {
        let Some(id) = pool.locate(ptr.as_ptr()) else {
            panic!("Block::from_raw: pointer is not a block of this pool");
        };
        let t = pool.tier(usize::from(id.tier));
        let block = t.handle_at(usize::from(id.index), id.tier);
        match block {
            Some(b) => {
                debug_assert!(
                    b.word.load(Ordering::Relaxed) & b.mask() != 0,
                    "Block::from_raw: block is free"
                );
                b
            }
            None => panic!("Block::from_raw: pointer is not a block of this pool"),
        }
    }
}

impl Deref for Block<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is the start of a block of `len` bytes that this handle owns
        // exclusively (its in-use bit is set and only this handle will clear it); the
        // memory lives in the pool, borrowed for 'a. Block bytes are initialised (zeroed
        // at construction, only ever written with bytes).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.byte_len()) }
    }
}

impl DerefMut for Block<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the access unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.byte_len()) }
    }
}

impl Drop for Block<'_> {
    #[inline]
    fn drop(&mut self) {
        let was_set = bits::clear_bit(self.word, self.mask());
        debug_assert!(was_set, "pool block freed twice");
    }
}

impl fmt::Debug for Block<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("id", &self.id())
            .field("ptr", &self.ptr)
            .field("len", &self.byte_len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
