//! Alloc+free pair cost of the block pool against its peers, measured side by side in
//! one run: glibc `malloc`/`free`, embassy's `atomic-pool` 2.0 and heapless 0.9's
//! object pool, at 256 B, 1 KiB and 4 KiB. Prints ns per pair and the ratios. The
//! last column is the store's exclusive index path (`&mut Pool`, no atomics).
//!
//! Every implementation gets the same treatment: the request size goes through
//! `black_box` where the API takes a run-time size (pool, malloc), and the block's data
//! pointer goes through `black_box` before the free, so neither call can be optimised away.
//!
//! Two more rows give the physical floor in the same rounds: the two atomic
//! read-modify-writes a pair must make on a bitmap word that several blocks share (claim a
//! bit with compare-and-swap, release it with `fetch_and`), bare; and a single one (the
//! floor of a one-state-per-block design whose release is a plain store). The shared
//! path's cost over the two-RMW floor is everything it adds (dispatch, statistics,
//! checks); `malloc / 3` against the floor tells whether ">= 3x faster than malloc" is
//! reachable at all by a pool shared between threads and interrupt handlers.
//!
//! `cargo bench --bench pool` (about 5-10 s). A plain fixed-work timing loop is used
//! instead of criterion/divan: what matters here are the ratios between implementations
//! measured in the same process, interleaved round by round so that machine noise hits
//! every implementation alike; each figure is the median of the rounds.
//!
//! For instruction counts: `cargo bench --bench pool --no-run`, then
//! `valgrind --tool=callgrind target/release/deps/pool-* --only <impl> <size> <pairs>`
//! (impl = pool | malloc | atomic-pool | heapless | pool-index | floor-2rmw | floor-1rmw) at two
//! pair counts; the difference in
//! total instructions divided by the difference in pairs is the cost of one pair.

// The peer crates' pool macros declare public, undocumented types.
#![allow(missing_docs)]
// ... and atomic-pool's macro computes `(n + 31) / 32`.
#![allow(clippy::manual_div_ceil)]

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use heapless::object_pool;
use heapless::pool::object::ObjectBlock;
use sensor_spool::pool::DefaultPool;

unsafe extern "C" {
    fn malloc(n: usize) -> *mut u8;
    fn free(p: *mut u8);
}

static POOL: DefaultPool = DefaultPool::new();

atomic_pool::pool!(Ap256: [MaybeUninit<[u8; 256]>; 32]);
atomic_pool::pool!(Ap1k: [MaybeUninit<[u8; 1024]>; 16]);
atomic_pool::pool!(Ap4k: [MaybeUninit<[u8; 4096]>; 8]);

object_pool!(Hp256: [u8; 256]);
object_pool!(Hp1k: [u8; 1024]);
object_pool!(Hp4k: [u8; 4096]);

const SIZES: [usize; 3] = [256, 1024, 4096];
const IMPLS: [&str; 7] = [
    "pool",
    "malloc",
    "atomic-pool",
    "heapless",
    "pool-index",
    "floor-2rmw",
    "floor-1rmw",
];

/// The word the floor loops work on (see [`floor_two_rmw_pairs`]).
static FLOOR_WORD: AtomicU32 = AtomicU32::new(0);

#[inline(never)]
fn pool_pairs(size: usize, n: u64) {
    for _ in 0..n {
        let b = POOL.alloc(black_box(size)).unwrap();
        black_box(b.as_ptr());
        drop(b);
    }
}

/// The store's exclusive path: `alloc_in` / `block_mut` / `free_id` on `&mut Pool`
/// (plain loads and stores, no atomic read-modify-write).
#[inline(never)]
fn pool_index_pairs(pool: &mut DefaultPool, size: usize, n: u64) {
    for _ in 0..n {
        let tier = DefaultPool::tier_of_size(black_box(size)).unwrap();
        let id = pool.alloc_in(tier).unwrap();
        black_box(pool.block_mut(id).unwrap().as_mut_ptr());
        pool.free_id(id).unwrap();
    }
}

/// Physical floor of a bitmap pool usable from several threads and interrupt handlers:
/// per pair, the two atomic read-modify-writes on a bitmap word shared by 32 blocks
/// (claim the lowest clear bit with a compare-and-swap, clear it with `fetch_and`) and
/// nothing else: no size dispatch, no pointer, no statistics, no validation.
#[inline(never)]
fn floor_two_rmw_pairs(n: u64) {
    for _ in 0..n {
        let cur = FLOOR_WORD.load(Ordering::Relaxed);
        let bit = (!cur).trailing_zeros() & 31;
        let _ = FLOOR_WORD.compare_exchange_weak(
            cur,
            cur | 1 << bit,
            Ordering::Acquire,
            Ordering::Relaxed,
        );
        black_box(bit);
        FLOOR_WORD.fetch_and(!(1 << bit), Ordering::Release);
    }
}

/// Floor of any pool shared between contexts without per-thread caches: one atomic
/// read-modify-write per pair (the claim), the release a plain store. A bitmap word
/// shared by several blocks cannot be released this way (a concurrent claim of another
/// bit of the word would be lost); this is what a one-byte-per-block state map costs.
#[inline(never)]
fn floor_one_rmw_pairs(n: u64) {
    for _ in 0..n {
        let _ = FLOOR_WORD.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed);
        black_box(&FLOOR_WORD);
        FLOOR_WORD.store(0, Ordering::Release);
    }
}

#[inline(never)]
fn malloc_pairs(size: usize, n: u64) {
    for _ in 0..n {
        // SAFETY: plain libc malloc/free of a fresh pointer.
        unsafe {
            let p = malloc(black_box(size));
            black_box(p);
            free(p);
        }
    }
}

#[inline(never)]
fn atomic_pool_pairs(size: usize, n: u64) {
    macro_rules! run {
        ($p:ty) => {
            for _ in 0..n {
                let b = atomic_pool::Box::<$p>::new(MaybeUninit::uninit()).unwrap();
                black_box(b.as_ptr());
                drop(b);
            }
        };
    }
    match size {
        256 => run!(Ap256),
        1024 => run!(Ap1k),
        _ => run!(Ap4k),
    }
}

#[inline(never)]
fn heapless_pairs(size: usize, n: u64) {
    macro_rules! run {
        ($p:ident) => {
            for _ in 0..n {
                let b = $p.request().unwrap();
                black_box(b.as_ptr());
                drop(b);
            }
        };
    }
    match size {
        256 => run!(Hp256),
        1024 => run!(Hp1k),
        _ => run!(Hp4k),
    }
}

fn heapless_setup() {
    // Same block counts as the pool's tiers.
    for _ in 0..32 {
        Hp256.manage(Box::leak(Box::new(ObjectBlock::new([0; 256]))));
    }
    for _ in 0..16 {
        Hp1k.manage(Box::leak(Box::new(ObjectBlock::new([0; 1024]))));
    }
    for _ in 0..8 {
        Hp4k.manage(Box::leak(Box::new(ObjectBlock::new([0; 4096]))));
    }
}

fn run(index_pool: &mut DefaultPool, imp: &str, size: usize, n: u64) {
    match imp {
        "pool-index" => pool_index_pairs(index_pool, size, n),
        "pool" => pool_pairs(size, n),
        "malloc" => malloc_pairs(size, n),
        "atomic-pool" => atomic_pool_pairs(size, n),
        "heapless" => heapless_pairs(size, n),
        "floor-2rmw" => floor_two_rmw_pairs(n),
        "floor-1rmw" => floor_one_rmw_pairs(n),
        _ => panic!("unknown implementation {imp}"),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    heapless_setup();
    let index_pool: &mut DefaultPool = Box::leak(Box::new(DefaultPool::new()));
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--only") {
        // Fixed work for callgrind: --only <impl> <size> <pairs>
        let imp = &args[i + 1];
        let size: usize = args[i + 2].parse().unwrap();
        let n: u64 = args[i + 3].parse().unwrap();
        run(index_pool, imp, size, n);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    const PAIRS: u64 = 2_000_000;
    const ROUNDS: usize = 11;
    let start = Instant::now();
    // warm-up
    for &s in &SIZES {
        for imp in IMPLS {
            run(index_pool, imp, s, PAIRS / 10);
        }
    }
    let mut ns = [[0.0f64; IMPLS.len()]; SIZES.len()];
    for (si, &s) in SIZES.iter().enumerate() {
        let mut samples = vec![Vec::with_capacity(ROUNDS); IMPLS.len()];
        for _ in 0..ROUNDS {
            for (ii, imp) in IMPLS.iter().enumerate() {
                let t = Instant::now();
                run(index_pool, imp, s, PAIRS);
                samples[ii].push(t.elapsed().as_secs_f64() * 1e9 / PAIRS as f64);
            }
        }
        for (ii, v) in samples.iter_mut().enumerate() {
            ns[si][ii] = median(v);
        }
    }
    println!(
        "alloc+free pair, ns (median of {ROUNDS} rounds x {PAIRS} pairs); ratio = peer / pool (>1: pool faster)"
    );
    println!(
        "{:>6} | {:>8} | {:>8} {:>7} | {:>11} {:>7} | {:>8} {:>7} | {:>10} {:>13}",
        "size",
        "pool",
        "malloc",
        "ratio",
        "atomic-pool",
        "ratio",
        "heapless",
        "ratio",
        "pool &mut",
        "malloc/&mut"
    );
    for (si, &s) in SIZES.iter().enumerate() {
        let r = ns[si];
        println!(
            "{:>6} | {:>8.2} | {:>8.2} {:>6.2}x | {:>11.2} {:>6.2}x | {:>8.2} {:>6.2}x | {:>10.2} {:>12.2}x",
            s,
            r[0],
            r[1],
            r[1] / r[0],
            r[2],
            r[2] / r[0],
            r[3],
            r[3] / r[0],
            r[4],
            r[1] / r[4]
        );
    }
    println!(
        "physical floor, ns per pair (bare atomics on one word, same rounds; >= 3x faster than malloc needs <= malloc / 3)"
    );
    println!(
        "{:>11} | {:>6} {:>11} | {:>6} {:>10} | {:>10}",
        "floor size", "2 RMW", "pool / it", "1 RMW", "malloc / it", "malloc / 3"
    );
    for (si, &s) in SIZES.iter().enumerate() {
        let r = ns[si];
        println!(
            "floor {:>5} | {:>6.2} {:>10.2}x | {:>6.2} {:>10.2}x | {:>10.2}",
            s,
            r[5],
            r[0] / r[5],
            r[6],
            r[1] / r[6],
            r[1] / 3.0
        );
    }
    assert_eq!(FLOOR_WORD.load(Ordering::Relaxed), 0);
    assert!(POOL.stats().iter().all(|t| t.in_use == 0));
    assert_eq!(index_pool.check(), Ok(()));
    assert_eq!(POOL.check(), Ok(()));
    println!("({:.1} s)", start.elapsed().as_secs_f64());
}
