//! Model-based property test of the block pool: random sequences of allocations of
//! random sizes, frees through every path, double frees, foreign / misaligned frees and
//! index-path operations, run against a plain model (sets of live blocks + counters).
//! After every step the pool's stats (every field of every tier) and `check()` must match.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

mod pool_support;

use pool_support::Model;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRunner};
use sensor_spool::pool::{Block, BlockId, DefaultPool, FreeError, Pool, TIERS, Tier, TierSpec};

/// A request size, resolved against the pool geometry by the runner.
#[derive(Clone, Debug)]
enum Size {
    Zero,
    Exact(usize),
    PlusOne(usize),
    MinusOne(usize),
    Random(u16),
    TooLarge(u16),
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(Size),
    /// Rebuild the k-th live handle with `from_raw` and drop it.
    Drop(usize),
    /// `free_raw` the k-th live handle.
    FreeRaw(usize),
    /// `free_raw` the k-th live handle twice (second is a double free).
    DoubleFree(usize),
    /// `free_raw` a pointer inside the k-th live handle (or index) block, not at its start.
    Misaligned(usize, u16, bool),
    /// `free_raw` of a pointer outside every tier.
    Outside,
    /// `free_raw` of a block of another pool.
    OtherPool,
    /// Index path.
    AllocIn(usize),
    FreeId(usize),
    FreeIdTwice(usize),
    FreeIdOfHandle(usize),
    FreeIdBogus(u8, u16),
    FreeRawOfIndexBlock(usize),
    ResetPeak,
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![
        1 => Just(Size::Zero),
        2 => (0..TIERS).prop_map(Size::Exact),
        1 => (0..TIERS).prop_map(Size::PlusOne),
        1 => (0..TIERS).prop_map(Size::MinusOne),
        4 => any::<u16>().prop_map(Size::Random),
        1 => any::<u16>().prop_map(Size::TooLarge),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => size().prop_map(Op::Alloc),
        4 => any::<usize>().prop_map(Op::Drop),
        3 => any::<usize>().prop_map(Op::FreeRaw),
        2 => any::<usize>().prop_map(Op::DoubleFree),
        2 => (any::<usize>(), any::<u16>(), any::<bool>()).prop_map(|(k, o, i)| Op::Misaligned(k, o, i)),
        1 => Just(Op::Outside),
        1 => Just(Op::OtherPool),
        4 => (0..TIERS + 1).prop_map(Op::AllocIn),
        3 => any::<usize>().prop_map(Op::FreeId),
        1 => any::<usize>().prop_map(Op::FreeIdTwice),
        1 => any::<usize>().prop_map(Op::FreeIdOfHandle),
        1 => (0u8..5, any::<u16>()).prop_map(|(t, i)| Op::FreeIdBogus(t, i)),
        1 => any::<usize>().prop_map(Op::FreeRawOfIndexBlock),
        1 => Just(Op::ResetPeak),
    ]
}

fn resolve<S: TierSpec, M: TierSpec, L: TierSpec>(s: &Size) -> usize {
    let bs = Pool::<S, M, L>::block_size;
    match *s {
        Size::Zero => 0,
        Size::Exact(t) => bs(t),
        Size::PlusOne(t) => bs(t) + 1,
        Size::MinusOne(t) => bs(t) - 1,
        Size::Random(r) => usize::from(r) % (Pool::<S, M, L>::MAX_BLOCK + 64),
        Size::TooLarge(r) => Pool::<S, M, L>::MAX_BLOCK + 1 + usize::from(r),
    }
}

fn tag(id: BlockId) -> u8 {
    (id.tier() * 61)
        .wrapping_add(id.index() as u8)
        .wrapping_add(1)
}

/// Runs one op sequence against a fresh pool of geometry `<S, M, L>` and the model.
fn run<S: TierSpec, M: TierSpec, L: TierSpec>(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut pool = Box::new(Pool::<S, M, L>::new());
    let other = Box::new(DefaultPool::new());
    let mut model = Model::<S, M, L>::new();
    // Live handle blocks, kept as raw pointers so `&mut pool` stays available.
    let mut handles: Vec<(BlockId, NonNull<u8>)> = Vec::new();
    let mut index: Vec<BlockId> = Vec::new();

    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Alloc(s) => {
                let size = resolve::<S, M, L>(s);
                let got = pool.alloc(size).map(|mut b| {
                    prop_assert!(b.len() >= size.max(1));
                    let id = b.id();
                    let n = b.len();
                    b[0] = tag(id);
                    b[n - 1] = tag(id);
                    Ok((id, b.into_raw()))
                });
                let got = match got {
                    Ok(r) => Ok(r?),
                    Err(e) => Err(e),
                };
                let want = model.alloc(size);
                prop_assert_eq!(got.map(|(id, _)| id), want, "step {} alloc({})", step, size);
                if let Ok(h) = got {
                    prop_assert_eq!(pool.locate(h.1.as_ptr()), Some(h.0));
                    handles.push(h);
                }
            }
            Op::Drop(k) | Op::FreeRaw(k) | Op::DoubleFree(k) if !handles.is_empty() => {
                let (id, ptr) = handles.swap_remove(k % handles.len());
                // SAFETY: ptr came from into_raw on this pool and is rebuilt once.
                let b = unsafe { Block::from_raw(&*pool, ptr) };
                prop_assert_eq!(b.id(), id);
                prop_assert_eq!((b[0], b[b.len() - 1]), (tag(id), tag(id)));
                model.release(id);
                if matches!(op, Op::Drop(_)) {
                    drop(b);
                } else {
                    let p = b.into_raw().as_ptr();
                    // SAFETY: p came from into_raw; it is not used after the first free.
                    prop_assert_eq!(unsafe { pool.free_raw(p) }, Ok(()));
                    if matches!(op, Op::DoubleFree(_)) {
                        // SAFETY: the block is free; free_raw never dereferences.
                        prop_assert_eq!(unsafe { pool.free_raw(p) }, Err(FreeError::DoubleFree));
                        model.invalid(id.tier());
                    }
                }
            }
            Op::Misaligned(k, off, into_index) => {
                let target = if *into_index && !index.is_empty() {
                    let id = index[k % index.len()];
                    Some((id, pool.block(id).unwrap().as_ptr() as *mut u8))
                } else if !handles.is_empty() {
                    let (id, p) = handles[k % handles.len()];
                    Some((id, p.as_ptr()))
                } else {
                    None
                };
                if let Some((id, p)) = target {
                    let bs = Pool::<S, M, L>::block_size(usize::from(id.tier()));
                    let off = 1 + usize::from(*off) % (bs - 1);
                    // SAFETY: misaligned pointers are rejected and never dereferenced.
                    let r = unsafe { pool.free_raw(p.wrapping_add(off)) };
                    prop_assert_eq!(r, Err(FreeError::Foreign));
                    model.invalid(id.tier());
                }
            }
            Op::Outside => {
                let mut local = 0u64;
                // SAFETY: foreign pointers are rejected and never dereferenced.
                let r = unsafe { pool.free_raw((&raw mut local).cast()) };
                prop_assert_eq!(r, Err(FreeError::Foreign));
                model.stray += 1;
            }
            Op::OtherPool => {
                let p = other.alloc(1).unwrap().into_raw();
                // SAFETY: p belongs to `other`, so `pool` rejects it without dereferencing.
                let r = unsafe { pool.free_raw(p.as_ptr()) };
                prop_assert_eq!(r, Err(FreeError::Foreign));
                model.stray += 1;
                // SAFETY: p came from into_raw on `other` and is freed once.
                prop_assert_eq!(unsafe { other.free_raw(p.as_ptr()) }, Ok(()));
            }
            Op::AllocIn(t) => {
                let got = pool.alloc_in(*t);
                prop_assert_eq!(got, model.alloc_in(*t), "step {} alloc_in({})", step, t);
                if let Ok(id) = got {
                    let b = pool.block_mut(id).unwrap();
                    let n = b.len();
                    b[0] = tag(id);
                    b[n - 1] = tag(id);
                    let p = pool.block(id).unwrap().as_ptr();
                    prop_assert_eq!(pool.locate(p), Some(id));
                    index.push(id);
                }
            }
            Op::FreeId(k) | Op::FreeIdTwice(k) if !index.is_empty() => {
                let id = index.swap_remove(k % index.len());
                let b = pool.block(id).unwrap();
                prop_assert_eq!((b[0], b[b.len() - 1]), (tag(id), tag(id)));
                prop_assert_eq!(pool.free_id(id), Ok(()));
                model.release(id);
                prop_assert_eq!(pool.block(id), None);
                if matches!(op, Op::FreeIdTwice(_)) {
                    prop_assert_eq!(pool.free_id(id), Err(FreeError::DoubleFree));
                    model.invalid(id.tier());
                }
            }
            Op::FreeIdOfHandle(k) if !handles.is_empty() => {
                let (id, _) = handles[k % handles.len()];
                prop_assert_eq!(pool.block(id), None, "handle block visible to block()");
                prop_assert_eq!(pool.free_id(id), Err(FreeError::Foreign));
                model.invalid(id.tier());
            }
            Op::FreeIdBogus(t, i) => {
                let id = BlockId::new(*t, *i);
                let (tu, iu) = (usize::from(*t), usize::from(*i));
                let want = if tu >= TIERS {
                    Err(FreeError::Foreign)
                } else if iu >= Pool::<S, M, L>::capacity(tu) || handles.iter().any(|h| h.0 == id) {
                    model.invalid(*t);
                    Err(FreeError::Foreign)
                } else if index.contains(&id) {
                    model.release(id);
                    index.retain(|&x| x != id);
                    Ok(())
                } else {
                    model.invalid(*t);
                    Err(FreeError::DoubleFree)
                };
                prop_assert_eq!(pool.free_id(id), want);
            }
            Op::FreeRawOfIndexBlock(k) if !index.is_empty() => {
                let id = index[k % index.len()];
                let p = pool.block(id).unwrap().as_ptr() as *mut u8;
                // SAFETY: index blocks are rejected by free_raw and not dereferenced.
                prop_assert_eq!(unsafe { pool.free_raw(p) }, Err(FreeError::Foreign));
                model.invalid(id.tier());
            }
            Op::ResetPeak => {
                pool.reset_peak();
                for s in &mut model.stats {
                    s.peak = s.in_use;
                }
            }
            _ => {} // op needs a live block and there is none
        }
        prop_assert_eq!(
            pool.stats(),
            model.stats,
            "stats after step {}: {:?}",
            step,
            op
        );
        prop_assert_eq!(pool.stray_frees(), model.stray);
        prop_assert_eq!(pool.check(), Ok(()), "check after step {}", step);
    }
    // Clean up: everything back, pool empty and consistent.
    for (id, ptr) in handles.drain(..) {
        // SAFETY: each ptr came from into_raw on this pool and is rebuilt once.
        drop(unsafe { Block::from_raw(&*pool, ptr) });
        model.release(id);
    }
    for id in index.drain(..) {
        prop_assert_eq!(pool.free_id(id), Ok(()));
        model.release(id);
    }
    prop_assert_eq!(pool.stats(), model.stats);
    prop_assert!(pool.stats().iter().all(|s| s.in_use == 0));
    prop_assert_eq!(pool.check(), Ok(()));
    prop_assert!(other.stats().iter().all(|s| s.in_use == 0));
    Ok(())
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    Config {
        cases,
        failure_persistence: None,
        // ChaCha dominates the run time of an unoptimised test build; XorShift is
        // plenty for generating op sequences (PROPTEST_RNG_ALGORITHM still overrides).
        rng_algorithm: if std::env::var_os("PROPTEST_RNG_ALGORITHM").is_some() {
            Config::default().rng_algorithm
        } else {
            RngAlgorithm::XorShift
        },
        ..Config::default()
    }
}

fn run_model<S: TierSpec, M: TierSpec, L: TierSpec>(name: &str, max_ops: usize) {
    static TOTAL: AtomicUsize = AtomicUsize::new(0);
    let cases = AtomicUsize::new(0);
    // Miri interprets every step (~1000x slower): shorter sequences there.
    let max_ops = if cfg!(miri) { max_ops / 8 } else { max_ops };
    let mut runner = TestRunner::new(config());
    let result = runner.run(&prop::collection::vec(op(), 1..max_ops), |ops| {
        cases.fetch_add(1, Ordering::Relaxed);
        run::<S, M, L>(&ops)
    });
    let n = cases.load(Ordering::Relaxed);
    TOTAL.fetch_add(n, Ordering::Relaxed);
    eprintln!("pool model ({name}): {n} cases run");
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn pool_model_default_geometry() {
    run_model::<Tier<256, 32, 1>, Tier<1024, 16, 1>, Tier<4096, 8, 1>>(
        "default 32x256/16x1K/8x4K",
        120,
    );
}

#[test]
fn pool_model_multiword_and_empty_tier() {
    // 40 blocks (2 words), an empty tier, 70 blocks (3 words).
    run_model::<Tier<64, 40, 2>, Tier<128, 0, 0>, Tier<512, 70, 3>>("40x64/0x128/70x512", 300);
}
