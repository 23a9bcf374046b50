//! The C block pool: a separate `static` pool (not the store's), with a
//! raw-pointer API. Its geometry is [`CPool`]: `DefaultPool` on hosts (std), a small pool
//! with the same block sizes on microcontrollers (no_std). Every free is validated by the pool (foreign pointers and double frees
//! are rejected, counted and change nothing). Usable before `spool_init`.

use super::types::{SPOOL_POOL_TIERS, SpoolStatus, SpoolTierStats, status_of};
use crate::pool::{AllocError, FreeError, TIERS};
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};

const _: () = assert!(TIERS == SPOOL_POOL_TIERS);

/// Geometry of the C block pool on hosts: 32 x 256 B, 16 x 1 KiB, 8 x 4 KiB (56 KiB).
#[cfg(feature = "std")]
pub(crate) type CPool = crate::pool::DefaultPool;
/// Geometry of the C block pool on microcontrollers: the same block sizes (so the same
/// sizes fit and the same requests are too large) with 8 x 256 B, 2 x 1 KiB, 1 x 4 KiB
/// (8 KiB), so the library fits a 64 KiB-RAM part next to the WICED-profile store.
#[cfg(not(feature = "std"))]
pub(crate) type CPool = crate::pool::Pool<
    crate::pool::Tier<256, 8, 1>,
    crate::pool::Tier<1024, 2, 1>,
    crate::pool::Tier<4096, 1, 1>,
>;

/// The pool behind `spool_pool_*`. The pool's shared path takes `&self` and is
/// synchronised internally, so it needs no lock of its own.
static C_POOL: CPool = CPool::new();

/// Allocates a block of at least `size` bytes from the smallest fitting tier (falling back
/// to a larger one when it is full) and stores its address in `*out`. Blocks are 8-byte
/// aligned. `SPOOL_ERR_INVALID_ARGUMENT` for `size == 0`, `SPOOL_ERR_TOO_LARGE` when no tier
/// is that big (permanent), `SPOOL_ERR_EXHAUSTED` when every fitting tier is full (transient).
/// Bounded time; callable from an interrupt handler; not counted.
///
/// # Safety
///
/// `out` must be NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_pool_alloc(size: usize, out: *mut *mut c_void) -> SpoolStatus {
    if out.is_null() {
        return SpoolStatus::SPOOL_ERR_NULL;
    }
    if size == 0 {
        return SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT;
    }
    match C_POOL.alloc(size) {
        Ok(block) => {
            let p = block.into_raw().as_ptr().cast::<c_void>();
            // SAFETY: `out` is non-NULL and writable per the contract.
            unsafe { out.write_unaligned(p) };
            SpoolStatus::SPOOL_OK
        }
        Err(AllocError::TooLarge) => SpoolStatus::SPOOL_ERR_TOO_LARGE,
        Err(_) => SpoolStatus::SPOOL_ERR_EXHAUSTED,
    }
}

/// Returns a block to the pool. `SPOOL_ERR_NULL` for NULL, `SPOOL_ERR_FOREIGN_PTR` for a
/// pointer that is not the start of a block of this pool, `SPOOL_ERR_DOUBLE_FREE` for a
/// block that is already free; a rejected free changes nothing but the pool's
/// `invalid_frees` counter. Bounded time; callable from an interrupt handler; not counted.
///
/// # Safety
///
/// If `ptr` is a block obtained from `spool_pool_alloc` and not yet freed, the caller must
/// not use it after this call. Any other value is safe to pass: it is never dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_pool_free(ptr: *mut c_void) -> SpoolStatus {
    if ptr.is_null() {
        return SpoolStatus::SPOOL_ERR_NULL;
    }
    status_of({
        // SAFETY: forwarded caller contract: a live block is given up; any other pointer is
        // validated by the pool and never dereferenced.
        unsafe { C_POOL.free_raw(ptr.cast::<u8>()) }.map_err(|e| match e {
            FreeError::DoubleFree => SpoolStatus::SPOOL_ERR_DOUBLE_FREE,
            _ => SpoolStatus::SPOOL_ERR_FOREIGN_PTR,
        })
    })
}

/// Copies the statistics of the `SPOOL_POOL_TIERS` tiers (smallest blocks first) into
/// `out[0 .. SPOOL_POOL_TIERS]`. `len` is the number of elements `out` has room for;
/// less than `SPOOL_POOL_TIERS` gives `SPOOL_ERR_INVALID_ARGUMENT`. Not counted.
///
/// # Safety
///
/// `out` must be NULL or valid for writing `len` `spool_tier_stats_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn spool_pool_stats(out: *mut SpoolTierStats, len: usize) -> SpoolStatus {
    if out.is_null() {
        return SpoolStatus::SPOOL_ERR_NULL;
    }
    if len < SPOOL_POOL_TIERS {
        return SpoolStatus::SPOOL_ERR_INVALID_ARGUMENT;
    }
    for (i, t) in C_POOL.stats().iter().enumerate() {
        let s = SpoolTierStats {
            block_size: t.block_size,
            capacity: t.capacity,
            in_use: t.in_use,
            peak: t.peak,
            failed_allocs: t.failed_allocs,
            invalid_frees: t.invalid_frees,
            fallbacks: t.fallbacks,
        };
        // SAFETY: `i < TIERS <= len`, and `out` is writable for `len` elements.
        unsafe { out.add(i).write_unaligned(s) };
    }
    SpoolStatus::SPOOL_OK
}

/// Set by `spool_pool_init` (load / store only: no compare-and-swap on RISC-V `imc`).
static POOL_INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Declares the C pool in service for the optional malloc wrapper
/// (`c/spool_malloc_wrap.c`), which routes `malloc` / `free` / `calloc` / `realloc` to the
/// pool only after this call. The pool itself needs no initialisation (`spool_pool_alloc`
/// works at any time), so this only sets the flag `spool_pool_initialized` reports.
/// Idempotent, independent of `spool_init` / `spool_deinit`; always `SPOOL_OK`; not counted.
#[unsafe(no_mangle)]
pub extern "C" fn spool_pool_init() -> SpoolStatus {
    POOL_INITIALIZED.store(true, Ordering::Release);
    SpoolStatus::SPOOL_OK
}

/// `true` once `spool_pool_init` has been called. Lock-free; not counted.
#[unsafe(no_mangle)]
pub extern "C" fn spool_pool_initialized() -> bool {
    POOL_INITIALIZED.load(Ordering::Acquire)
}

/// `true` if `ptr` is the start of a block of the C pool (allocated or free): the
/// ownership test of the malloc wrapper's `free`. Address arithmetic only: `ptr` is never
/// dereferenced, any value (NULL included) may be passed. Lock-free; not counted.
#[unsafe(no_mangle)]
pub extern "C" fn spool_pool_owns(ptr: *const c_void) -> bool {
    C_POOL.locate(ptr.cast::<u8>()).is_some()
}

/// The size of the C-pool block that starts at `ptr` (256, 1024 or 4096 with the default
/// geometry), or 0 if `ptr` is not the start of a block of the pool. Never dereferences
/// `ptr`. Lock-free; not counted.
#[unsafe(no_mangle)]
pub extern "C" fn spool_pool_block_size(ptr: *const c_void) -> usize {
    match C_POOL.locate(ptr.cast::<u8>()) {
        Some(id) => CPool::block_size(usize::from(id.tier())),
        None => 0,
    }
}

/// Statistics of tier `tier` of the C pool (for `spool_dump`); `None` past the last tier.
pub(crate) fn pool_tier_stats(tier: usize) -> Option<SpoolTierStats> {
    let t = *C_POOL.stats().get(tier)?;
    Some(SpoolTierStats {
        block_size: t.block_size,
        capacity: t.capacity,
        in_use: t.in_use,
        peak: t.peak,
        failed_allocs: t.failed_allocs,
        invalid_frees: t.invalid_frees,
        fallbacks: t.fallbacks,
    })
}

/// Frees of pointers outside every tier of the C pool (for `spool_dump`).
pub(crate) fn pool_stray_frees() -> u32 {
    C_POOL.stray_frees()
}

/// Checks the pool's invariants (bitmap population == `in_use`, `in_use <= peak <=
/// capacity`, no bit past capacity). `SPOOL_ERR_CORRUPTED` if one is broken. Not counted.
#[unsafe(no_mangle)]
pub extern "C" fn spool_pool_check() -> SpoolStatus {
    status_of(C_POOL.check().map_err(|_| SpoolStatus::SPOOL_ERR_CORRUPTED))
}
