//! Four threads hammer one `static` pool with alloc/free pairs (handles and raw
//! pointers, every tier, fallbacks); each thread stamps its blocks and verifies the
//! stamp before freeing, which would catch a block handed to two owners at once.
//! At the end every block is free, `check()` is clean and the stats are consistent.

use sensor_spool::pool::{Block, DefaultPool, TIERS};

static POOL: DefaultPool = DefaultPool::new();

const THREADS: usize = 4;
#[cfg(not(miri))]
const PAIRS: usize = 100_000;
#[cfg(miri)]
const PAIRS: usize = 200;

/// Runs until `PAIRS` blocks have been allocated and freed; returns the number of
/// transient allocation failures seen.
fn worker(t: usize) -> u32 {
    let mut held: Vec<Block<'static>> = Vec::new();
    let mut pairs = 0;
    let mut exhausted = 0;
    let mut x = 0x9E37_79B9u32.wrapping_mul(t as u32 + 1);
    let mut i = 0usize;
    while pairs < PAIRS {
        i += 1;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let size = [1, 256, 257, 1024, 1025, 4096][(x % 6) as usize];
        let stamp = (t * 64 + i % 64) as u8;
        match POOL.alloc(size) {
            Ok(mut b) => {
                // Every allocated block is freed below or at the end: one pair.
                pairs += 1;
                assert!(b.len() >= size);
                let n = b.len();
                b[0] = stamp;
                b[n / 2] = stamp;
                b[n - 1] = stamp;
                // Keep up to two blocks for a while so blocks cross between tiers.
                if x & 0x100 != 0 && held.len() < 2 {
                    held.push(b);
                    continue;
                }
                std::hint::black_box(&mut b);
                assert_eq!((b[0], b[n / 2], b[n - 1]), (stamp, stamp, stamp));
                if x & 0x200 != 0 {
                    let p = b.into_raw();
                    // SAFETY: p came from into_raw on POOL and is freed exactly once.
                    unsafe { POOL.free_raw(p.as_ptr()) }.unwrap();
                }
            }
            // With at most 3 blocks held per thread the 4 KiB tier (8 blocks) may run
            // out for a moment; that is a legal transient failure.
            Err(e) => {
                assert_eq!(e, sensor_spool::pool::AllocError::Exhausted);
                exhausted += 1;
            }
        }
        if x & 0x400 != 0
            && let Some(b) = held.pop()
        {
            let n = b.len();
            assert_eq!(b[0], b[n - 1]);
        }
    }
    held.clear();
    assert_eq!(pairs, PAIRS);
    exhausted
}

#[test]
fn pool_four_threads_alloc_free_pairs() {
    let handles: Vec<_> = (0..THREADS)
        .map(|t| std::thread::spawn(move || worker(t)))
        .collect();
    let exhausted: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let stats = POOL.stats();
    eprintln!(
        "pool threads: {THREADS} threads x {PAIRS} alloc/free pairs, {exhausted} transient \
         Exhausted, stats {stats:?}"
    );
    // Only 4 KiB requests can fail (tier 2 has 8 blocks, up to 12 may be wanted) and
    // they have no larger tier to fall back to.
    assert_eq!(stats[2].failed_allocs, exhausted);
    assert_eq!(stats[0].failed_allocs + stats[1].failed_allocs, 0);
    assert!(stats.iter().all(|s| s.fallbacks == 0));
    assert_eq!(POOL.check(), Ok(()));
    for (t, s) in stats.iter().enumerate() {
        assert_eq!(s.in_use, 0, "tier {t} not empty");
        assert!(s.peak <= s.capacity);
        assert!(s.peak >= 1, "tier {t} never used");
        assert_eq!(s.invalid_frees, 0);
        assert_eq!(s.capacity as usize, DefaultPool::capacity(t));
    }
    assert_eq!(stats.len(), TIERS);
    assert_eq!(POOL.stray_frees(), 0);
    // Every block can be allocated again: nothing leaked.
    let all: Vec<_> = (0..56).map(|_| POOL.alloc(1).unwrap()).collect();
    assert_eq!(
        POOL.alloc(1).unwrap_err(),
        sensor_spool::pool::AllocError::Exhausted
    );
    drop(all);
    assert_eq!(POOL.check(), Ok(()));
}

/// Bursts that overfill the smallest tier from 4 threads at once: fallbacks and
/// failures happen concurrently and every one must be counted exactly once.
#[test]
fn pool_contended_bursts_count_fallbacks_and_failures() {
    static BURST_POOL: DefaultPool = DefaultPool::new();
    #[cfg(not(miri))]
    const ROUNDS: usize = 2_000;
    #[cfg(miri)]
    const ROUNDS: usize = 5;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let (mut fallbacks, mut failed) = (0u32, 0u32);
                let mut blocks = Vec::with_capacity(40);
                for r in 0..ROUNDS {
                    for _ in 0..40 {
                        match BURST_POOL.alloc(200) {
                            Ok(mut b) => {
                                if b.tier() != 0 {
                                    fallbacks += 1;
                                }
                                b[0] = (t * 20 + r) as u8;
                                blocks.push(b);
                            }
                            Err(_) => failed += 1,
                        }
                    }
                    for b in blocks.drain(..) {
                        assert_eq!(b[0], (t * 20 + r) as u8);
                    }
                }
                (fallbacks, failed)
            })
        })
        .collect();
    let (fallbacks, failed) = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let s = BURST_POOL.stats();
    eprintln!("pool bursts: {fallbacks} fallbacks, {failed} failures observed; stats {s:?}");
    assert_eq!(s[0].fallbacks, fallbacks);
    assert_eq!(s[0].failed_allocs, failed);
    assert_eq!(
        s[1].fallbacks + s[2].fallbacks + s[1].failed_allocs + s[2].failed_allocs,
        0
    );
    assert!(s.iter().all(|t| t.in_use == 0 && t.peak <= t.capacity));
    assert_eq!(BURST_POOL.check(), Ok(()));
}
