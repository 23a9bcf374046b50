//! Fixed-work driver for callgrind: deterministic instruction counts per operation,
//! so regressions show without timing noise (`scripts/bench.sh` runs it).
//!
//! ```text
//! cargo build --release --example cg
//! valgrind --tool=callgrind --toggle-collect='*cg_op_write*' target/release/examples/cg
//! ```
//!
//! Every operation runs `N` times in its own `#[inline(never)]` function named
//! `cg_op_<name>`; callgrind collects only inside the function named by
//! `--toggle-collect`, so the collected total divided by `N` is the cost of one
//! operation, identical run to run. The work (and `N`) is fixed: no clock, no
//! randomness. The operations:
//!
//! * `write`, `read`, `ack`: one TSD record written, read (marked pending) and
//!   acknowledged, on a RAM-only Linux-profile spool holding a steady backlog of 100
//!   records, so a sector is taken from / returned to the pool every few cycles as in
//!   steady operation;
//! * `evt_cycle`: write + read + ack of one EVT record (same backlog);
//! * `pool_index`: `alloc_in(0)` + `free_id` (the store's exclusive path);
//! * `pool_shared`: `alloc(200)` + drop of the `Block` handle (the shared, ISR-safe
//!   path);
//! * peers: `deque` (`heapless::Deque` push_back + pop_front with the same backlog)
//!   and `malloc` (the system allocator, 200 bytes).
//!
//! Prints one checksum line so the work cannot be optimised away.

use heapless::Deque;
use sensor_spool::pool::DefaultPool;
use sensor_spool::profile::{self, LinuxSpool};
use sensor_spool::record::SensorKey;
use sensor_spool::spool::SensorHandle;
use std::alloc::{Layout, alloc, dealloc};
use std::hint::black_box;

/// Operations per measured function.
const N: u32 = 100_000;
/// Records kept queued per sensor during the store operations.
const BACKLOG: u32 = 100;

#[inline(never)]
fn cg_op_write(s: &mut LinuxSpool, h: SensorHandle, t: &mut u64, v: u32) {
    *t += 1000;
    s.write(black_box(h), black_box(v), *t).unwrap();
}

#[inline(never)]
fn cg_op_read(s: &mut LinuxSpool, h: SensorHandle) -> u32 {
    s.read(black_box(h)).unwrap().value
}

#[inline(never)]
fn cg_op_ack(s: &mut LinuxSpool, h: SensorHandle) {
    s.ack(black_box(h), 1).unwrap();
}

#[inline(never)]
fn cg_op_evt_cycle(s: &mut LinuxSpool, h: SensorHandle, t: &mut u64, v: u32) -> u32 {
    *t += 1000;
    s.write(h, v, *t).unwrap();
    let r = s.read(h).unwrap().value;
    s.ack(h, 1).unwrap();
    r
}

#[inline(never)]
fn cg_op_deque(q: &mut Deque<u32, 128>, v: u32) -> u32 {
    q.push_back(black_box(v)).unwrap();
    q.pop_front().unwrap()
}

#[inline(never)]
fn cg_op_malloc(layout: Layout) -> u32 {
    // SAFETY: `layout` has a non-zero size; the pointer is freed with the same layout.
    unsafe {
        let p = alloc(black_box(layout));
        assert!(!p.is_null());
        dealloc(black_box(p), layout);
    }
    1
}

#[inline(never)]
fn cg_op_pool_index(p: &mut DefaultPool) -> u32 {
    let id = p.alloc_in(0).unwrap();
    p.free_id(black_box(id)).unwrap();
    id.index() as u32
}

#[inline(never)]
fn cg_op_pool_shared(p: &DefaultPool) -> u32 {
    let b = p.alloc(black_box(200)).unwrap();
    b.len() as u32
}

fn main() {
    let mut spool: Box<LinuxSpool> = Box::new(profile::linux());
    let tsd = spool.register(SensorKey::new(0, 1), 1000).unwrap();
    let evt = spool.register(SensorKey::new(0, 2), 0).unwrap();
    let (mut t_tsd, mut t_evt) = (1_700_000_000_000u64, 1_700_000_000_000u64);
    for v in 0..BACKLOG {
        t_tsd += 1000;
        spool.write(tsd, v, t_tsd).unwrap();
        t_evt += 1000;
        spool.write(evt, v, t_evt).unwrap();
    }
    let mut sum = 0u32;
    for v in BACKLOG..BACKLOG + N {
        cg_op_write(&mut spool, tsd, &mut t_tsd, v);
        sum = sum.wrapping_add(cg_op_read(&mut spool, tsd));
        cg_op_ack(&mut spool, tsd);
    }
    for v in BACKLOG..BACKLOG + N {
        sum = sum.wrapping_add(cg_op_evt_cycle(&mut spool, evt, &mut t_evt, v));
    }
    assert_eq!(spool.sensor_stats(tsd).unwrap().count, BACKLOG);
    assert_eq!(spool.check(), Ok(()));
    let mut pool: Box<DefaultPool> = Box::new(DefaultPool::new());
    for _ in 0..N {
        sum = sum.wrapping_add(cg_op_pool_index(&mut pool));
    }
    let shared: Box<DefaultPool> = Box::new(DefaultPool::new());
    for _ in 0..N {
        sum = sum.wrapping_add(cg_op_pool_shared(&shared));
    }
    // Peers, same fixed work: a heapless::Deque push+pop (the store's cycle without
    // sectors, timestamps or sequence numbers) and malloc+free of 200 bytes.
    let mut q: Deque<u32, 128> = Deque::new();
    for v in 0..BACKLOG {
        q.push_back(v).unwrap();
    }
    for v in 0..N {
        sum = sum.wrapping_add(cg_op_deque(&mut q, v));
    }
    let layout = Layout::from_size_align(200, 8).unwrap();
    for _ in 0..N {
        sum = sum.wrapping_add(cg_op_malloc(layout));
    }
    println!(
        "cg: {N} operations each (write, read, ack, evt_cycle, pool_index, pool_shared, deque, malloc); checksum {sum:#010x}"
    );
}
