//! Fixed-work callgrind driver for the store's hot path: one record's write + read +
//! ack(1) cycle through the native API, the cycle of `benches/store.rs`, on the same
//! WICED-like spool, in four kinds, each in its own `#[inline(never)]` function:
//!
//! * `cg_cycle_tsd_empty` / `cg_cycle_evt_empty`: empty queue, so every cycle takes a
//!   sector from the pool and returns it;
//! * `cg_cycle_tsd_backlog` / `cg_cycle_evt_backlog`: 100 records queued, so a sector is
//!   taken / returned every 8 (TSD) / 4 (EVT) cycles;
//! * `cg_cycle_deque`: `heapless::Deque` push_back + pop_front of the same record (peer);
//! * `cg_cycle_pool`: the pool's `alloc_in(0)` + `free_id` alone.
//!
//! ```text
//! cargo build --release --example cg_store
//! valgrind --tool=callgrind --toggle-collect='*cg_cycle_tsd_empty*' target/release/examples/cg_store
//! ```
//!
//! (The four store functions differ by a constant so the compiler cannot merge them.)
//! The collected total divided by `N` is the instruction count of one cycle, the same
//! run to run (no clock, no randomness). `scripts/cg-store.sh` runs every kind and
//! prints the table.

use heapless::Deque;
use sensor_spool::profile::{self, WicedPool, WicedSpool};
use sensor_spool::record::SensorKey;
use sensor_spool::spool::SensorHandle;
use std::hint::black_box;

/// Cycles per measured function.
const N: u32 = 100_000;
/// Records kept queued in the backlog kinds.
const BACKLOG: u32 = 100;

#[derive(Clone, Copy)]
struct Rec {
    value: u32,
    time_ms: u64,
}

#[inline(always)]
fn cycle(s: &mut WicedSpool, h: SensorHandle, t: &mut u64, v: u32) -> u32 {
    *t += 1000;
    s.write(black_box(h), black_box(v), *t).unwrap();
    let r = s.read(black_box(h)).unwrap();
    s.ack(black_box(h), 1).unwrap();
    r.value ^ r.time_ms as u32
}

#[inline(never)]
fn cg_cycle_tsd_empty(s: &mut WicedSpool, h: SensorHandle, t: &mut u64) -> u32 {
    let mut acc = 0u32;
    for v in 0..N {
        acc = acc.wrapping_add(cycle(s, h, t, v) ^ 1);
    }
    acc
}

#[inline(never)]
fn cg_cycle_evt_empty(s: &mut WicedSpool, h: SensorHandle, t: &mut u64) -> u32 {
    let mut acc = 0u32;
    for v in 0..N {
        acc = acc.wrapping_add(cycle(s, h, t, v) ^ 2);
    }
    acc
}

#[inline(never)]
fn cg_cycle_tsd_backlog(s: &mut WicedSpool, h: SensorHandle, t: &mut u64) -> u32 {
    let mut acc = 0u32;
    for v in 0..N {
        acc = acc.wrapping_add(cycle(s, h, t, v) ^ 3);
    }
    acc
}

#[inline(never)]
fn cg_cycle_evt_backlog(s: &mut WicedSpool, h: SensorHandle, t: &mut u64) -> u32 {
    let mut acc = 0u32;
    for v in 0..N {
        acc = acc.wrapping_add(cycle(s, h, t, v) ^ 4);
    }
    acc
}

#[inline(never)]
fn cg_cycle_deque(q: &mut Deque<Rec, 128>, t: &mut u64) -> u32 {
    let mut acc = 0u32;
    for v in 0..N {
        *t += 1000;
        q.push_back(Rec {
            value: black_box(v),
            time_ms: *t,
        })
        .ok()
        .unwrap();
        let r = q.pop_front().unwrap();
        acc = acc.wrapping_add(r.value ^ r.time_ms as u32);
    }
    acc
}

#[inline(never)]
fn cg_cycle_pool(p: &mut WicedPool) -> u32 {
    let mut acc = 0u32;
    for _ in 0..N {
        let id = p.alloc_in(0).unwrap();
        p.free_id(black_box(id)).unwrap();
        acc = acc.wrapping_add(id.index() as u32);
    }
    acc
}

fn main() {
    let t0 = 1_700_000_000_000u64;
    let mut sum = 0u32;

    let mut s: Box<WicedSpool> = Box::new(profile::wiced());
    let tsd = s.register(SensorKey::new(0, 1), 1000).unwrap();
    let evt = s.register(SensorKey::new(0, 2), 0).unwrap();
    let (mut tt, mut te) = (t0, t0);
    sum = sum.wrapping_add(cg_cycle_tsd_empty(&mut s, tsd, &mut tt));
    sum = sum.wrapping_add(cg_cycle_evt_empty(&mut s, evt, &mut te));
    assert_eq!(s.stats().records, 0);
    assert_eq!(s.pool().stats()[0].in_use, 0);
    assert_eq!(s.check(), Ok(()));

    let mut b: Box<WicedSpool> = Box::new(profile::wiced());
    let tsd = b.register(SensorKey::new(0, 1), 1000).unwrap();
    let evt = b.register(SensorKey::new(0, 2), 0).unwrap();
    let (mut tt, mut te) = (t0, t0);
    for v in 0..BACKLOG {
        tt += 1000;
        b.write(tsd, v, tt).unwrap();
        te += 1000;
        b.write(evt, v, te).unwrap();
    }
    sum = sum.wrapping_add(cg_cycle_tsd_backlog(&mut b, tsd, &mut tt));
    sum = sum.wrapping_add(cg_cycle_evt_backlog(&mut b, evt, &mut te));
    assert_eq!(b.sensor_stats(tsd).unwrap().count, BACKLOG);
    assert_eq!(b.sensor_stats(evt).unwrap().count, BACKLOG);
    assert_eq!(b.check(), Ok(()));

    let mut q: Deque<Rec, 128> = Deque::new();
    let mut tq = t0;
    for v in 0..BACKLOG {
        tq += 1000;
        q.push_back(Rec {
            value: v,
            time_ms: tq,
        })
        .ok()
        .unwrap();
    }
    sum = sum.wrapping_add(cg_cycle_deque(&mut q, &mut tq));

    let mut p: Box<WicedPool> = Box::new(WicedPool::new());
    sum = sum.wrapping_add(cg_cycle_pool(&mut p));

    println!("cg_store: {N} cycles per kind; checksum {sum:#010x}");
}
