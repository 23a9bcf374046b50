//! `pool_ops`: random block-pool operations, valid and hostile (double frees through
//! both paths, foreign and misaligned pointers, blocks of another pool, index ids that
//! were never handed out), against a plain model of live blocks and counters. After
//! every operation every field of every tier's stats, the stray-free counter and
//! `check()` must match the model; at the end everything is freed and the pool is empty.
//!
//! Three geometries (chosen by the first input byte): the default pool, a pool with
//! multi-word bitmaps and an empty tier, and a tiny pool that is exhausted quickly.
#![no_main]

#[path = "../../tests/pool_support/mod.rs"]
mod pool_support;

use pool_support::Model;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sensor_spool::pool::{Block, BlockId, DefaultPool, FreeError, Pool, TIERS, Tier, TierSpec};
use std::ptr::NonNull;

/// A request size, resolved against the pool geometry.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Size {
    Zero,
    Exact(u8),
    PlusOne(u8),
    MinusOne(u8),
    Random(u16),
    TooLarge(u16),
    Huge,
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum Op {
    Alloc(Size),
    /// Rebuild the k-th live handle with `from_raw` and drop it.
    Drop(u8),
    /// `free_raw` the k-th live handle.
    FreeRaw(u8),
    /// `free_raw` the k-th live handle twice (the second is a double free).
    DoubleFree(u8),
    /// `free_raw` a pointer inside a live block, not at its start.
    Misaligned(u8, u16, bool),
    /// `free_raw` of a pointer outside every tier.
    Outside,
    /// `free_raw` of NULL / a small integer / the last address.
    Wild(u8),
    /// `free_raw` of a block of another pool.
    OtherPool,
    /// `free_raw` one byte before / after the end of a tier's block area.
    Edge(u8, bool),
    /// Index path.
    AllocIn(u8),
    FreeId(u8),
    FreeIdTwice(u8),
    FreeIdOfHandle(u8),
    FreeIdBogus(u8, u16),
    FreeRawOfIndexBlock(u8),
    /// `free_raw` of a handle block that was freed earlier (stale pointer).
    FreeStale(u8),
    ResetPeak,
}

#[derive(Arbitrary, Debug)]
struct Input {
    geometry: u8,
    ops: Vec<Op>,
}

fn resolve<S: TierSpec, M: TierSpec, L: TierSpec>(s: Size) -> usize {
    let bs = |t: u8| Pool::<S, M, L>::block_size(usize::from(t) % TIERS);
    match s {
        Size::Zero => 0,
        Size::Exact(t) => bs(t),
        Size::PlusOne(t) => bs(t) + 1,
        Size::MinusOne(t) => bs(t) - 1,
        Size::Random(r) => usize::from(r) % (Pool::<S, M, L>::MAX_BLOCK + 64),
        Size::TooLarge(r) => Pool::<S, M, L>::MAX_BLOCK + 1 + usize::from(r),
        Size::Huge => usize::MAX,
    }
}

fn tag(id: BlockId) -> u8 {
    (id.tier() * 61)
        .wrapping_add(id.index() as u8)
        .wrapping_add(1)
}

fn pick<T: Copy>(v: &[T], k: u8) -> Option<(usize, T)> {
    if v.is_empty() {
        None
    } else {
        let i = usize::from(k) % v.len();
        Some((i, v[i]))
    }
}

fn run<S: TierSpec, M: TierSpec, L: TierSpec>(ops: &[Op]) {
    let mut pool = Box::new(Pool::<S, M, L>::new());
    let other = Box::new(DefaultPool::new());
    let mut model = Model::<S, M, L>::new();
    let mut handles: Vec<(BlockId, NonNull<u8>)> = Vec::new();
    let mut index: Vec<BlockId> = Vec::new();
    // Start addresses of handle blocks freed earlier (stale pointers the caller kept).
    let mut stale: Vec<(BlockId, usize)> = Vec::new();

    for (step, &op) in ops.iter().enumerate() {
        match op {
            Op::Alloc(s) => {
                let size = resolve::<S, M, L>(s);
                let got = pool.alloc(size).map(|mut b| {
                    assert!(b.len() >= size.max(1), "block too small for {size}");
                    let id = b.id();
                    let n = b.len();
                    b[0] = tag(id);
                    b[n - 1] = tag(id);
                    (id, b.into_raw())
                });
                let want = model.alloc(size);
                assert_eq!(got.map(|(id, _)| id), want, "step {step} alloc({size})");
                if let Ok(h) = got {
                    assert_eq!(pool.locate(h.1.as_ptr()), Some(h.0));
                    stale.retain(|s| s.0 != h.0);
                    handles.push(h);
                }
            }
            Op::Drop(k) | Op::FreeRaw(k) | Op::DoubleFree(k) if !handles.is_empty() => {
                let (i, _) = pick(&handles, k).unwrap();
                let (id, ptr) = handles.swap_remove(i);
                // SAFETY: ptr came from into_raw on this pool and is rebuilt once.
                let b = unsafe { Block::from_raw(&*pool, ptr) };
                assert_eq!(b.id(), id);
                assert_eq!((b[0], b[b.len() - 1]), (tag(id), tag(id)), "block contents");
                model.release(id);
                stale.push((id, ptr.as_ptr().addr()));
                if matches!(op, Op::Drop(_)) {
                    drop(b);
                } else {
                    let p = b.into_raw().as_ptr();
                    // SAFETY: p came from into_raw; it is not used after the first free.
                    assert_eq!(unsafe { pool.free_raw(p) }, Ok(()));
                    if matches!(op, Op::DoubleFree(_)) {
                        // SAFETY: the block is free; free_raw never dereferences.
                        assert_eq!(unsafe { pool.free_raw(p) }, Err(FreeError::DoubleFree));
                        model.invalid(id.tier());
                    }
                }
            }
            Op::FreeStale(k) => {
                if let Some((_, (id, addr))) = pick(&stale, k) {
                    let p = std::ptr::without_provenance_mut::<u8>(addr);
                    // SAFETY: the block is free (not re-allocated: `stale` drops entries
                    // that were handed out again); free_raw never dereferences.
                    assert_eq!(unsafe { pool.free_raw(p) }, Err(FreeError::DoubleFree));
                    model.invalid(id.tier());
                }
            }
            Op::Misaligned(k, off, into_index) => {
                let target = if into_index && !index.is_empty() {
                    let (_, id) = pick(&index, k).unwrap();
                    Some((id, pool.block(id).unwrap().as_ptr() as *mut u8))
                } else {
                    pick(&handles, k).map(|(_, (id, p))| (id, p.as_ptr()))
                };
                if let Some((id, p)) = target {
                    let bs = Pool::<S, M, L>::block_size(usize::from(id.tier()));
                    let off = 1 + usize::from(off) % (bs - 1);
                    // SAFETY: misaligned pointers are rejected and never dereferenced.
                    let r = unsafe { pool.free_raw(p.wrapping_add(off)) };
                    assert_eq!(r, Err(FreeError::Foreign));
                    model.invalid(id.tier());
                }
            }
            Op::Outside => {
                let mut local = 0u64;
                // SAFETY: foreign pointers are rejected and never dereferenced.
                let r = unsafe { pool.free_raw((&raw mut local).cast()) };
                assert_eq!(r, Err(FreeError::Foreign));
                model.stray += 1;
            }
            Op::Wild(w) => {
                let addr = match w % 4 {
                    0 => 0,
                    1 => usize::from(w),
                    2 => usize::MAX,
                    _ => usize::MAX - usize::from(w),
                };
                // SAFETY: never dereferenced; no pool block lives at these addresses.
                let r = unsafe { pool.free_raw(std::ptr::without_provenance_mut(addr)) };
                assert_eq!(r, Err(FreeError::Foreign));
                model.stray += 1;
            }
            Op::OtherPool => {
                let p = other.alloc(1).unwrap().into_raw();
                // SAFETY: p belongs to `other`, so `pool` rejects it without dereferencing.
                let r = unsafe { pool.free_raw(p.as_ptr()) };
                assert_eq!(r, Err(FreeError::Foreign));
                model.stray += 1;
                // SAFETY: p came from into_raw on `other` and is freed once.
                assert_eq!(unsafe { other.free_raw(p.as_ptr()) }, Ok(()));
            }
            Op::Edge(t, after) => {
                // The first block of the tier's area is known from any live block of that
                // tier: its start minus index * block size.
                let t = usize::from(t) % TIERS;
                let bs = Pool::<S, M, L>::block_size(t);
                let cap = Pool::<S, M, L>::capacity(t);
                let base = handles
                    .iter()
                    .find(|h| usize::from(h.0.tier()) == t)
                    .map(|h| h.1.as_ptr().addr() - usize::from(h.0.index()) * bs);
                if let Some(base) = base {
                    let addr = if after { base + cap * bs } else { base - 1 };
                    let owner = pool.locate(std::ptr::without_provenance(addr));
                    let live = owner
                        .is_some_and(|id| handles.iter().any(|h| h.0 == id) || index.contains(&id));
                    if !live {
                        let before = pool.stats();
                        let stray_before = pool.stray_frees();
                        // SAFETY: not the start of a live block; never dereferenced.
                        let r = unsafe { pool.free_raw(std::ptr::without_provenance_mut(addr)) };
                        match owner {
                            Some(id) => {
                                assert_eq!(r, Err(FreeError::DoubleFree), "edge {addr:#x}");
                                model.invalid(id.tier());
                            }
                            None => {
                                assert_eq!(r, Err(FreeError::Foreign), "edge {addr:#x}");
                                // Counted exactly once: on the tier whose area holds the
                                // address, or as a stray free.
                                let after_stats = pool.stats();
                                let grew: Vec<usize> = (0..TIERS)
                                    .filter(|&u| after_stats[u] != before[u])
                                    .collect();
                                match grew[..] {
                                    [] => {
                                        assert_eq!(pool.stray_frees(), stray_before + 1);
                                        model.stray += 1;
                                    }
                                    [u] => model.invalid(u as u8),
                                    _ => panic!("edge free changed several tiers: {grew:?}"),
                                }
                            }
                        }
                    }
                }
            }
            Op::AllocIn(t) => {
                let t = usize::from(t) % (TIERS + 2);
                let got = pool.alloc_in(t);
                assert_eq!(got, model.alloc_in(t), "step {step} alloc_in({t})");
                if let Ok(id) = got {
                    let b = pool.block_mut(id).unwrap();
                    let n = b.len();
                    b[0] = tag(id);
                    b[n - 1] = tag(id);
                    let p = pool.block(id).unwrap().as_ptr();
                    assert_eq!(pool.locate(p), Some(id));
                    stale.retain(|s| s.0 != id);
                    index.push(id);
                }
            }
            Op::FreeId(k) | Op::FreeIdTwice(k) if !index.is_empty() => {
                let (i, _) = pick(&index, k).unwrap();
                let id = index.swap_remove(i);
                let b = pool.block(id).unwrap();
                assert_eq!((b[0], b[b.len() - 1]), (tag(id), tag(id)));
                assert_eq!(pool.free_id(id), Ok(()));
                model.release(id);
                assert_eq!(pool.block(id), None);
                if matches!(op, Op::FreeIdTwice(_)) {
                    assert_eq!(pool.free_id(id), Err(FreeError::DoubleFree));
                    model.invalid(id.tier());
                }
            }
            Op::FreeIdOfHandle(k) if !handles.is_empty() => {
                let (_, (id, _)) = pick(&handles, k).unwrap();
                assert_eq!(pool.block(id), None, "handle block visible to block()");
                assert_eq!(pool.free_id(id), Err(FreeError::Foreign));
                model.invalid(id.tier());
            }
            Op::FreeIdBogus(t, i) => {
                let t = t % 6;
                let id = BlockId::new(t, i);
                let (tu, iu) = (usize::from(t), usize::from(i));
                let want = if tu >= TIERS {
                    Err(FreeError::Foreign)
                } else if iu >= Pool::<S, M, L>::capacity(tu) || handles.iter().any(|h| h.0 == id) {
                    model.invalid(t);
                    Err(FreeError::Foreign)
                } else if index.contains(&id) {
                    model.release(id);
                    index.retain(|&x| x != id);
                    Ok(())
                } else {
                    model.invalid(t);
                    Err(FreeError::DoubleFree)
                };
                assert_eq!(pool.free_id(id), want, "free_id({id:?})");
            }
            Op::FreeRawOfIndexBlock(k) if !index.is_empty() => {
                let (_, id) = pick(&index, k).unwrap();
                let p = pool.block(id).unwrap().as_ptr() as *mut u8;
                // SAFETY: index blocks are rejected by free_raw and not dereferenced.
                assert_eq!(unsafe { pool.free_raw(p) }, Err(FreeError::Foreign));
                model.invalid(id.tier());
            }
            Op::ResetPeak => {
                pool.reset_peak();
                for s in &mut model.stats {
                    s.peak = s.in_use;
                }
            }
            _ => {} // needs a live block and there is none
        }
        assert_eq!(pool.stats(), model.stats, "stats after step {step}: {op:?}");
        assert_eq!(pool.stray_frees(), model.stray, "stray after step {step}");
        assert_eq!(pool.check(), Ok(()), "check after step {step}");
    }
    for (id, ptr) in handles.drain(..) {
        // SAFETY: each ptr came from into_raw on this pool and is rebuilt once.
        drop(unsafe { Block::from_raw(&*pool, ptr) });
        model.release(id);
    }
    for id in index.drain(..) {
        assert_eq!(pool.free_id(id), Ok(()));
        model.release(id);
    }
    assert_eq!(pool.stats(), model.stats);
    assert!(pool.stats().iter().all(|s| s.in_use == 0));
    assert_eq!(pool.check(), Ok(()));
    assert!(other.stats().iter().all(|s| s.in_use == 0));
}

fuzz_target!(|input: Input| {
    let ops = &input.ops[..input.ops.len().min(1024)];
    match input.geometry % 3 {
        0 => run::<Tier<256, 32, 1>, Tier<1024, 16, 1>, Tier<4096, 8, 1>>(ops),
        1 => run::<Tier<64, 40, 2>, Tier<128, 0, 0>, Tier<512, 70, 3>>(ops),
        _ => run::<Tier<8, 3, 1>, Tier<16, 1, 1>, Tier<24, 2, 1>>(ops),
    }
});
