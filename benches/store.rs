//! Store benchmark: one record's write + read + ack(1) cycle through the native API,
//! against `heapless::Deque` push_back + pop_front of the same record, in the same run.
//!
//! Prints criterion's estimates, then an interleaved side-by-side measurement (median of
//! 15 rounds) with the ratio store / deque (target <= 2.5x) and the store's cycles per
//! second beside the legacy rewrite's claimed 937,500 ops/s (aim: >= 20x).
//!
//! `cargo bench --bench store` (add `-- --quick` for a short criterion run).

use std::hint::black_box;
use std::time::Instant;

use criterion::Criterion;
use heapless::Deque;
use sensor_spool::profile::{self, WicedSpool};
use sensor_spool::record::SensorKey;
use sensor_spool::spool::SensorHandle;

#[derive(Clone, Copy)]
struct Rec {
    value: u32,
    time_ms: u64,
}

const LEGACY_OPS: f64 = 937_500.0;

struct Bench {
    spool: Box<WicedSpool>,
    tsd: SensorHandle,
    evt: SensorHandle,
    deque: Deque<Rec, 64>,
    t: u64,
}

impl Bench {
    fn new() -> Self {
        let mut spool = Box::new(profile::wiced());
        let tsd = spool.register(SensorKey::new(0, 1), 1000).unwrap();
        let evt = spool.register(SensorKey::new(0, 2), 0).unwrap();
        Self {
            spool,
            tsd,
            evt,
            deque: Deque::new(),
            t: 1_700_000_000_000,
        }
    }

    #[inline(always)]
    fn store_cycle(&mut self, h: SensorHandle, v: u32) -> u32 {
        self.t += 1000;
        let s = &mut *self.spool;
        s.write(h, black_box(v), self.t).unwrap();
        let r = s.read(h).unwrap();
        s.ack(h, 1).unwrap();
        r.value
    }

    #[inline(always)]
    fn deque_cycle(&mut self, v: u32) -> u32 {
        self.t += 1000;
        self.deque
            .push_back(Rec {
                value: black_box(v),
                time_ms: self.t,
            })
            .ok()
            .unwrap();
        let r = self.deque.pop_front().unwrap();
        black_box(r.time_ms);
        r.value
    }
}

fn median_ns(mut f: impl FnMut(u32) -> u32, iters: u32) -> f64 {
    let start = Instant::now();
    let mut acc = 0u32;
    for i in 0..iters {
        acc = acc.wrapping_add(f(i));
    }
    black_box(acc);
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn side_by_side() {
    let mut b = Bench::new();
    let iters = 2_000_000;
    let (mut st, mut se, mut dq) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        let (tsd, evt) = (b.tsd, b.evt);
        st.push(median_ns(|i| b.store_cycle(tsd, i), iters));
        se.push(median_ns(|i| b.store_cycle(evt, i), iters));
        dq.push(median_ns(|i| b.deque_cycle(i), iters));
    }
    // the pool's share: one sector alloc + free through the index path
    let mut pool = Box::new(profile::WicedPool::new());
    let mut pl = Vec::new();
    for _ in 0..15 {
        pl.push(median_ns(
            |_| {
                let id = pool.alloc_in(0).unwrap();
                pool.free_id(black_box(id)).unwrap();
                id.index() as u32
            },
            iters,
        ));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // steady state with a backlog: 100 records queued, so one cycle takes/returns a
    // sector only every 8 (TSD) / 4 (EVT) cycles
    let mut bb = Bench::new();
    let (tsd, evt) = (bb.tsd, bb.evt);
    for i in 0..100 {
        bb.t += 1000;
        bb.spool.write(tsd, i, bb.t).unwrap();
        bb.spool.write(evt, i, bb.t).unwrap();
    }
    let (mut bt, mut be) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        bt.push(median_ns(|i| bb.store_cycle(tsd, i), iters));
        be.push(median_ns(|i| bb.store_cycle(evt, i), iters));
    }
    assert_eq!(bb.spool.sensor_stats(tsd).unwrap().count, 100);
    assert_eq!(bb.spool.check(), Ok(()));
    let (st, se, dq, pl) = (med(&mut st), med(&mut se), med(&mut dq), med(&mut pl));
    let (bt, be) = (med(&mut bt), med(&mut be));
    assert_eq!(b.spool.check(), Ok(()));
    println!("\n== store figures (median of 15 rounds x {iters} cycles, same run) ==");
    println!("heapless::Deque push_back+pop_front : {dq:8.2} ns/cycle");
    println!(
        "pool alloc_in(0)+free_id (in cycle)  : {pl:8.2} ns/cycle = {:.2}x deque (an empty-queue cycle takes and returns one sector: \
         with the deque's own work, {:.2}x deque is the floor of that cycle)",
        pl / dq,
        (pl + dq) / dq
    );
    for (name, ns) in [
        ("TSD, empty queue  ", st),
        ("EVT, empty queue  ", se),
        ("TSD, 100 backlog  ", bt),
        ("EVT, 100 backlog  ", be),
    ] {
        let ops = 1e9 / ns;
        println!(
            "store {name} write+read+ack(1): {ns:8.2} ns/cycle = {:.2}x deque (target <= 2.5x); \
             {:.0} cycles/s = {:.1}x legacy claim of 937,500 ops/s (aim >= 20x)",
            ns / dq,
            ops,
            ops / LEGACY_OPS
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut b = Bench::new();
    let mut g = c.benchmark_group("cycle");
    let (tsd, evt) = (b.tsd, b.evt);
    let mut v = 0u32;
    g.bench_function("store_tsd_write_read_ack", |bn| {
        bn.iter(|| {
            v = v.wrapping_add(1);
            b.store_cycle(tsd, v)
        })
    });
    g.bench_function("store_evt_write_read_ack", |bn| {
        bn.iter(|| {
            v = v.wrapping_add(1);
            b.store_cycle(evt, v)
        })
    });
    g.bench_function("heapless_deque_push_pop", |bn| {
        bn.iter(|| {
            v = v.wrapping_add(1);
            b.deque_cycle(v)
        })
    });
    g.finish();
    c.final_summary();
    side_by_side();
}
