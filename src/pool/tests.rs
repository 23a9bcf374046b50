//! Unit tests of the pool (run under miri too).

use super::*;
use std::boxed::Box;
use std::vec::Vec;

type Small = Pool<Tier<64, 40, 2>, Tier<128, 0, 0>, Tier<512, 3, 1>>;

fn assert_all_free<S: TierSpec, M: TierSpec, L: TierSpec>(p: &Pool<S, M, L>) {
    for s in p.stats() {
        assert_eq!(s.in_use, 0);
    }
    assert_eq!(p.check(), Ok(()));
}

#[test]
fn geometry_consts() {
    assert_eq!(DefaultPool::block_size(0), 256);
    assert_eq!(DefaultPool::block_size(2), 4096);
    assert_eq!(DefaultPool::block_size(3), 0);
    assert_eq!(DefaultPool::capacity(1), 16);
    assert_eq!(DefaultPool::MAX_BLOCK, 4096);
    assert_eq!(DefaultPool::tier_of_size(0), Some(0));
    assert_eq!(DefaultPool::tier_of_size(256), Some(0));
    assert_eq!(DefaultPool::tier_of_size(257), Some(1));
    assert_eq!(DefaultPool::tier_of_size(4096), Some(2));
    assert_eq!(DefaultPool::tier_of_size(4097), None);
}

#[test]
fn static_pool_alloc_free_and_alignment() {
    static POOL: DefaultPool = DefaultPool::new();
    let mut a = POOL.alloc(0).unwrap();
    let b = POOL.alloc(256).unwrap();
    assert_eq!((a.tier(), a.id().index()), (0, 0));
    assert_eq!((b.tier(), b.id().index()), (0, 1));
    assert_eq!(a.len(), 256);
    assert_eq!(a.as_ptr().addr() % 8, 0);
    a.fill(0xAB);
    assert!(b.iter().all(|&x| x == 0));
    assert_eq!(POOL.stats()[0].in_use, 2);
    assert_eq!(POOL.stats()[0].peak, 2);
    drop(a);
    let c = POOL.alloc(1).unwrap();
    assert_eq!(c.id().index(), 0, "lowest free block is reused");
    assert!(c.iter().all(|&x| x == 0xAB), "blocks are not cleared");
    drop((b, c));
    assert_all_free(&POOL);
    assert_eq!(POOL.stats()[0].peak, 2);
    POOL.reset_peak();
    assert_eq!(POOL.stats()[0].peak, 0);
}

#[test]
fn too_large_vs_exhausted_and_fallback() {
    let p = Box::new(DefaultPool::new());
    assert_eq!(p.alloc(4097).unwrap_err(), AllocError::TooLarge);
    let big: Vec<_> = (0..8).map(|_| p.alloc(4096).unwrap()).collect();
    assert_eq!(p.alloc(3000).unwrap_err(), AllocError::Exhausted);
    assert_eq!(p.stats()[2].failed_allocs, 1);
    drop(big);
    // fill tier 1, next 1 KiB request falls back to tier 2
    let mid: Vec<_> = (0..16).map(|_| p.alloc(1000).unwrap()).collect();
    let fb = p.alloc(1000).unwrap();
    assert_eq!(fb.tier(), 2);
    assert_eq!(fb.len(), 4096);
    let s = p.stats();
    assert_eq!(
        (s[1].fallbacks, s[1].failed_allocs, s[2].fallbacks),
        (1, 0, 0)
    );
    assert_eq!((s[1].in_use, s[2].in_use, s[2].peak), (16, 1, 8));
    drop((mid, fb));
    assert_all_free(&p);
}

#[test]
fn zero_count_tier_and_multiword_tier() {
    let p = Box::new(Small::new());
    // 40 blocks over two words
    let v: Vec<_> = (0..40).map(|_| p.alloc(64).unwrap()).collect();
    for (i, b) in v.iter().enumerate() {
        assert_eq!(b.id(), BlockId::new(0, i as u16));
    }
    assert_eq!(p.stats()[0].in_use, 40);
    // tier 0 full -> tier 1 (0 blocks) -> tier 2
    let f = p.alloc(1).unwrap();
    assert_eq!(f.tier(), 2);
    // 65..128 prefers empty tier 1, served by tier 2
    let g = p.alloc(100).unwrap();
    assert_eq!(g.tier(), 2);
    let s = p.stats();
    assert_eq!((s[0].fallbacks, s[1].fallbacks, s[1].capacity), (1, 1, 0));
    let h = p.alloc(512).unwrap();
    assert_eq!(p.alloc(100).unwrap_err(), AllocError::Exhausted);
    assert_eq!(p.stats()[1].failed_allocs, 1);
    assert_eq!(p.check(), Ok(()));
    drop((v, f, g, h));
    assert_all_free(&p);
    let mut p = p;
    assert_eq!(p.alloc_in(1), Err(AllocError::Exhausted));
    assert_eq!(p.alloc_in(3), Err(AllocError::TooLarge));
}

#[test]
fn free_raw_validation() {
    let p = Box::new(DefaultPool::new());
    let other = Box::new(DefaultPool::new());
    let b = p.alloc(1024).unwrap();
    let id = b.id();
    let raw = b.into_raw();
    assert_eq!(p.locate(raw.as_ptr()), Some(id));
    // SAFETY: misaligned and foreign pointers are never dereferenced.
    unsafe {
        assert_eq!(
            p.free_raw(raw.as_ptr().wrapping_add(8)),
            Err(FreeError::Foreign)
        );
        assert_eq!(p.free_raw(core::ptr::null_mut()), Err(FreeError::Foreign));
        let mut local = 0u8;
        assert_eq!(p.free_raw(&mut local), Err(FreeError::Foreign));
        let o = other.alloc(1).unwrap().into_raw();
        assert_eq!(p.free_raw(o.as_ptr()), Err(FreeError::Foreign));
        assert_eq!(other.free_raw(o.as_ptr()), Ok(()));
    }
    let s = p.stats();
    assert_eq!((s[1].invalid_frees, s[1].in_use), (1, 1));
    assert_eq!(p.stray_frees(), 3);
    // SAFETY: raw came from into_raw and is freed exactly once; the second call is a double free.
    unsafe {
        assert_eq!(p.free_raw(raw.as_ptr()), Ok(()));
        assert_eq!(p.free_raw(raw.as_ptr()), Err(FreeError::DoubleFree));
    }
    assert_eq!(p.stats()[1].invalid_frees, 2);
    assert_all_free(&p);
    assert_all_free(&other);
}

#[test]
fn into_raw_from_raw_roundtrip() {
    let p = Box::new(DefaultPool::new());
    let mut b = p.alloc(4000).unwrap();
    b[4095] = 7;
    let raw = b.into_raw();
    assert_eq!(p.stats()[2].in_use, 1);
    // SAFETY: raw comes from into_raw on p and is rebuilt once.
    let b = unsafe { Block::from_raw(&*p, raw) };
    assert_eq!(b[4095], 7);
    assert_eq!(b.id(), BlockId::new(2, 0));
    drop(b);
    assert_all_free(&p);
}

#[test]
fn index_path_is_separate_from_handles() {
    let mut p = Box::new(DefaultPool::new());
    let id = p.alloc_in(0).unwrap();
    assert_eq!(id, BlockId::new(0, 0));
    p.block_mut(id).unwrap()[0] = 9;
    let h = p.alloc(10).unwrap();
    assert_eq!(h.id(), BlockId::new(0, 1), "handle skips index block");
    assert_eq!(p.block(id).unwrap()[0], 9);
    assert_eq!(
        p.block(h.id()),
        None,
        "handle blocks are not visible to block()"
    );
    let hid = h.id();
    let raw = h.into_raw();
    let iptr = p.block(id).unwrap().as_ptr() as *mut u8;
    // SAFETY: iptr is an index block: rejected, never dereferenced.
    assert_eq!(unsafe { p.free_raw(iptr) }, Err(FreeError::Foreign));
    assert_eq!(
        p.free_id(hid),
        Err(FreeError::Foreign),
        "handle block via free_id"
    );
    assert_eq!(p.free_id(BlockId::new(0, 500)), Err(FreeError::Foreign));
    assert_eq!(p.free_id(BlockId::new(9, 0)), Err(FreeError::Foreign));
    assert_eq!(p.stats()[0].invalid_frees, 3);
    assert_eq!(p.free_id(id), Ok(()));
    assert_eq!(p.free_id(id), Err(FreeError::DoubleFree));
    assert_eq!(p.block(id), None);
    assert_eq!(p.block_mut(id), None);
    // SAFETY: raw comes from into_raw and is freed once.
    assert_eq!(unsafe { p.free_raw(raw.as_ptr()) }, Ok(()));
    for _ in 0..8 {
        p.alloc_in(2).unwrap();
    }
    assert_eq!(p.alloc_in(2), Err(AllocError::Exhausted));
    let s = p.stats();
    assert_eq!((s[2].in_use, s[2].peak, s[2].failed_allocs), (8, 8, 1));
    assert_eq!(p.check(), Ok(()));
}

#[test]
fn check_reports_each_invariant() {
    let p = Box::new(Pool::<Tier<64, 8, 1>, Tier<128, 40, 2>, Tier<256, 1, 1>>::new());
    assert_eq!(p.check(), Ok(()));
    p.s.used[0].store(1 << 9, Ordering::Relaxed);
    assert_eq!(
        p.check(),
        Err(PoolCheckError::BitPastCapacity { tier: 0, bit: 9 })
    );
    p.s.used[0].store(0, Ordering::Relaxed);
    p.m.used[1].store(1 << 8, Ordering::Relaxed);
    assert_eq!(
        p.check(),
        Err(PoolCheckError::BitPastCapacity { tier: 1, bit: 40 })
    );
    p.m.used[1].store(0, Ordering::Relaxed);
    p.m.index_owned[1].store(1, Ordering::Relaxed);
    let e = p.check().unwrap_err();
    assert_eq!(e, PoolCheckError::IndexBlockNotInUse { tier: 1, index: 32 });
    assert_eq!(e.tier(), 1);
    p.m.index_owned[1].store(0, Ordering::Relaxed);
    p.l.used[0].store(1, Ordering::Relaxed);
    assert_eq!(
        p.check(),
        Err(PoolCheckError::PeakBelowInUse {
            tier: 2,
            in_use: 1,
            peak: 0
        })
    );
    p.l.used[0].store(0, Ordering::Relaxed);
    p.l.counters.peak.store(2, Ordering::Relaxed);
    assert_eq!(
        p.check(),
        Err(PoolCheckError::PeakAboveCapacity {
            tier: 2,
            peak: 2,
            capacity: 1
        })
    );
    assert!(std::format!("{}", p.check().unwrap_err()).contains("tier 2"));
    p.l.counters.peak.store(0, Ordering::Relaxed);
    assert_eq!(p.check(), Ok(()));
}

#[test]
fn blocks_are_send_and_pool_is_sync() {
    fn sync<T: Sync>() {}
    fn send<T: Send>() {}
    sync::<DefaultPool>();
    send::<DefaultPool>();
    send::<Block<'static>>();
    sync::<Block<'static>>();
}

#[test]
fn block_moves_to_another_thread() {
    static POOL: DefaultPool = DefaultPool::new();
    let mut b = POOL.alloc(100).unwrap();
    b[0] = 5;
    std::thread::spawn(move || {
        assert_eq!(b[0], 5);
        drop(b);
    })
    .join()
    .unwrap();
    assert_eq!(POOL.stats()[0].in_use, 0);
}

/// The index path skips the population count while a cheap bound shows the peak cannot
/// rise; the peak must still equal the model's maximum of blocks in use, with holes
/// below, handle blocks in higher words and frees in between (3-word tier, 70 blocks).
#[test]
fn index_path_peak_is_exact_on_multiword_tiers() {
    type P3 = Pool<Tier<64, 70, 3>, Tier<128, 0, 0>, Tier<256, 0, 0>>;
    let mut p = Box::new(P3::new());
    let mut ids = Vec::new();
    let (mut in_use, mut peak) = (0u32, 0u32);
    let mut x = 0x1234_5678u32;
    let mut steps = 0u32;
    // Fewer rounds under miri (interpreted); the grow/shrink phases scale with them.
    let rounds: u32 = if cfg!(miri) { 480 } else { 4000 };
    let phase = rounds / 8;
    for round in 0..rounds {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let grow = (round / phase).is_multiple_of(2);
        if (grow && !x.is_multiple_of(4)) || ids.is_empty() {
            match p.alloc_in(0) {
                Ok(id) => {
                    ids.push(id);
                    in_use += 1;
                }
                Err(e) => assert_eq!(e, AllocError::Exhausted),
            }
        } else {
            let id = ids.swap_remove(x as usize % ids.len());
            p.free_id(id).unwrap();
            in_use -= 1;
        }
        peak = peak.max(in_use);
        let s = p.stats()[0];
        assert_eq!((s.in_use, s.peak), (in_use, peak), "round {round}");
        steps += 1;
    }
    // A handle block high up (word 2) must count when the index path allocates in word 0.
    while let Some(id) = ids.pop() {
        p.free_id(id).unwrap();
    }
    p.reset_peak();
    let raw: Vec<_> = (0..66).map(|_| p.alloc(64).unwrap().into_raw()).collect();
    for &ptr in &raw[..65] {
        // SAFETY: `ptr` comes from `Block::into_raw` of this pool and is not used again.
        unsafe { p.free_raw(ptr.as_ptr()) }.unwrap();
    }
    // block 65 (word 2) stays allocated
    p.reset_peak();
    assert_eq!(p.stats()[0].peak, 1);
    let a = p.alloc_in(0).unwrap();
    assert_eq!(a.index(), 0);
    assert_eq!(p.stats()[0].peak, 2, "the handle in word 2 counts");
    p.free_id(a).unwrap();
    // SAFETY: as above.
    unsafe { p.free_raw(raw[65].as_ptr()) }.unwrap();
    assert_all_free(&p);
    std::eprintln!("pool index-path peak: {steps} steps");
}
