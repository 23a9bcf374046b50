//! Model-based property test of the whole store: random writes to TSD and EVT sensors,
//! reads, peeks, ack(n), ack_all, revert, clear and pool overflow (a 12-sector pool, so
//! overflow is frequent), against a plain per-sensor `VecDeque` model. Every returned
//! record and every counter is compared after every step, and `check()` must pass.
//!
//! Cases: `PROPTEST_CASES` (default 2,000; 4 under miri when the environment is not
//! visible, i.e. without `-Zmiri-disable-isolation`); the count is printed.

use std::collections::VecDeque;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sensor_spool::pool::{Pool, Tier};
use sensor_spool::ram::{gap_decode, gap_encode};
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::{Error, RamOnly, SensorHandle, Spool};

// Under miri the runs are short, so the pool is smaller to reach overflow in a few ops.
const CAP: usize = if cfg!(miri) { 4 } else { 12 };
type SmallPool = Pool<Tier<32, CAP, 1>, Tier<64, 0, 0>, Tier<128, 0, 0>>;
type SmallSpool = Spool<SmallPool, 8, CAP, 4>;

/// (key, sample rate ms); rate 0 = EVT. Listed in key order.
const SENSORS: [(SensorKey, u32); 4] = [
    (SensorKey { source: 0, id: 10 }, 1000),
    (SensorKey { source: 0, id: 20 }, 0),
    (SensorKey { source: 1, id: 5 }, 250),
    (SensorKey { source: 2, id: 1 }, 0),
];
const T0: u64 = 1_700_000_000_000;

#[derive(Clone, Debug)]
enum Op {
    Write { s: usize, value: u32, gap: u32 },
    Read(usize),
    Peek(usize, u32),
    Ack(usize, u32),
    AckAll(usize),
    Revert(usize),
    Clear(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..SENSORS.len();
    let gap = prop_oneof![8 => 0u32..3, 1 => 3u32..40, 1 => 400u32..3000];
    prop_oneof![
        16 => (s.clone(), any::<u32>(), gap).prop_map(|(s, value, gap)| Op::Write { s, value, gap }),
        5 => s.clone().prop_map(Op::Read),
        1 => (s.clone(), 0u32..6).prop_map(|(s, o)| Op::Peek(s, o)),
        2 => (s.clone(), 0u32..7).prop_map(|(s, n)| Op::Ack(s, n)),
        1 => s.clone().prop_map(Op::AckAll),
        1 => s.clone().prop_map(Op::Revert),
        1 => s.prop_map(Op::Clear),
    ]
}

#[derive(Clone, Debug, Default)]
struct MSensor {
    rate: u32,
    n: u32,
    erased: u32,
    recs: VecDeque<(u32, u64)>,
    pending: usize,
    clock: u64,
    lost: u16,
}

impl MSensor {
    fn written(&self) -> u32 {
        self.erased.wrapping_add(self.recs.len() as u32)
    }
    fn sectors(&self) -> u32 {
        if self.recs.is_empty() {
            return 0;
        }
        let head = self.erased & !(self.n - 1);
        self.written().wrapping_sub(head).div_ceil(self.n)
    }
    /// (k, start index in recs, count) of the oldest sector with only unsent records.
    fn droppable(&self) -> Option<(u32, usize, usize)> {
        let len = self.recs.len() as u32;
        if len == 0 {
            return None;
        }
        let off = self.erased & (self.n - 1);
        if self.pending == 0 {
            return Some((0, 0, (self.n - off).min(len) as usize));
        }
        let k = (self.pending as u32 + off).div_ceil(self.n);
        let start = k * self.n - off;
        if start >= len {
            return None;
        }
        Some((k, start as usize, self.n.min(len - start) as usize))
    }
    fn drop_sector(&mut self) -> usize {
        let (k, start, cnt) = self.droppable().unwrap();
        if k == 0 {
            self.recs.drain(..cnt);
            self.erased = self.erased.wrapping_add(cnt as u32);
        } else {
            MID_DROPS.with(|m| m.set(m.get() + 1));
            self.recs.drain(start..start + cnt);
            if self.rate != 0 && start < self.recs.len() {
                // The next sector's gap absorbs the dropped one; it is re-coded.
                let p_last = self.recs[start - 1].1;
                let x_first = self.recs[start].1;
                let merged = ((x_first - p_last - self.rate as u64) / self.rate as u64) as u32;
                let shift = (merged - gap_decode(gap_encode(merged))) as u64 * self.rate as u64;
                for r in self.recs.iter_mut().skip(start) {
                    r.1 -= shift;
                }
            }
        }
        cnt
    }
}

struct Model {
    s: Vec<MSensor>,
    policy: OverflowPolicy,
    dropped: u32,
    rejected: u32,
}

impl Model {
    fn used(&self) -> u32 {
        self.s.iter().map(|m| m.sectors()).sum()
    }

    fn write(&mut self, i: usize, value: u32, t: u64) -> Result<(), Error> {
        let needs = |m: &MSensor| m.recs.is_empty() || m.written() & (m.n - 1) == 0;
        if needs(&self.s[i]) && self.used() as usize == CAP {
            if self.policy == OverflowPolicy::RejectNew {
                self.rejected += 1;
                self.s[i].lost = self.s[i].lost.saturating_add(1);
                return Err(Error::Full);
            }
            let victim = if self.s[i].droppable().is_some() {
                Some(i)
            } else {
                let mut best: Option<(usize, u32)> = None;
                for (j, m) in self.s.iter().enumerate() {
                    if m.droppable().is_some() && best.is_none_or(|(_, b)| m.sectors() > b) {
                        best = Some((j, m.sectors()));
                    }
                }
                best.map(|b| b.0)
            };
            let Some(v) = victim else {
                self.rejected += 1;
                self.s[i].lost = self.s[i].lost.saturating_add(1);
                return Err(Error::Full);
            };
            let cnt = self.s[v].drop_sector();
            self.dropped += cnt as u32;
            self.s[v].lost = self.s[v].lost.saturating_add(cnt as u16);
        }
        let m = &mut self.s[i];
        let time = if m.rate == 0 {
            t / 1000 * 1000
        } else if m.recs.is_empty() {
            t
        } else {
            let expected = m.recs.back().unwrap().1 + m.rate as u64;
            if m.written() & (m.n - 1) != 0 {
                expected
            } else {
                let gap = (t.saturating_sub(expected) / m.rate as u64) as u32;
                expected + gap_decode(gap_encode(gap)) as u64 * m.rate as u64
            }
        };
        m.recs.push_back((value, time));
        Ok(())
    }
}

fn compare(spool: &SmallSpool, hs: &[SensorHandle], model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(spool.check(), Ok(()));
    for (h, m) in hs.iter().zip(&model.s) {
        let st = spool.sensor_stats(*h).unwrap();
        let len = m.recs.len() as u32;
        prop_assert_eq!(st.count, len);
        prop_assert_eq!(st.pending, m.pending as u32);
        prop_assert_eq!(st.available, len - m.pending as u32);
        prop_assert_eq!(st.next_seq, m.written());
        prop_assert_eq!(st.lost, m.lost);
        prop_assert_eq!(st.sectors, m.sectors());
        prop_assert_eq!(st.no_samples as u32, len.min(65535));
        prop_assert_eq!(st.no_pending as usize, m.pending.min(65535));
        let unsent: Vec<(u32, u32, u64)> = spool
            .iter(*h)
            .unwrap()
            .map(|r| (r.seq, r.value, r.time_ms))
            .collect();
        let want: Vec<(u32, u32, u64)> = m
            .recs
            .iter()
            .enumerate()
            .skip(m.pending)
            .map(|(i, r)| (m.erased.wrapping_add(i as u32), r.0, r.1))
            .collect();
        prop_assert_eq!(unsent, want);
        for (i, r) in m.recs.iter().enumerate().take(m.pending) {
            let got = spool.peek_stored(*h, i as u32).unwrap();
            prop_assert_eq!((got.value, got.time_ms), *r);
        }
    }
    let g = spool.stats();
    prop_assert_eq!(
        g.records,
        model.s.iter().map(|m| m.recs.len() as u32).sum::<u32>()
    );
    prop_assert_eq!(
        g.pending,
        model.s.iter().map(|m| m.pending as u32).sum::<u32>()
    );
    prop_assert_eq!(g.sectors_used, model.used());
    prop_assert_eq!(g.dropped, model.dropped);
    prop_assert_eq!(g.rejected, model.rejected);
    Ok(())
}

fn run_case(reject: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let policy = if reject {
        OverflowPolicy::RejectNew
    } else {
        OverflowPolicy::DropOldestUnsent
    };
    let mut spool: SmallSpool = Spool::new(SmallPool::new(), RamOnly, policy);
    let mut hs = Vec::new();
    let mut model = Model {
        s: Vec::new(),
        policy,
        dropped: 0,
        rejected: 0,
    };
    for (i, (key, rate)) in SENSORS.iter().enumerate() {
        hs.push(spool.register(*key, *rate).unwrap());
        model.s.push(MSensor {
            rate: *rate,
            n: if *rate == 0 { 4 } else { 8 },
            clock: T0 + i as u64 * 7,
            ..MSensor::default()
        });
    }
    for op in ops {
        match *op {
            Op::Write { s, value, gap } => {
                let m = &mut model.s[s];
                m.clock += if m.rate == 0 {
                    // events: irregular, sub-second part is truncated by the store
                    gap as u64 * 997 + 13
                } else {
                    m.rate as u64 * (1 + gap as u64)
                };
                let t = m.clock;
                let want = model.write(s, value, t);
                prop_assert_eq!(spool.write(hs[s], value, t), want, "write {:?}", op);
            }
            Op::Read(s) => {
                let m = &mut model.s[s];
                let got = spool.read(hs[s]);
                if m.pending == m.recs.len() {
                    prop_assert_eq!(got, Err(Error::NoData));
                } else {
                    let r = m.recs[m.pending];
                    let seq = m.erased.wrapping_add(m.pending as u32);
                    m.pending += 1;
                    let got = got.unwrap();
                    prop_assert_eq!((got.seq, got.value, got.time_ms), (seq, r.0, r.1));
                }
            }
            Op::Peek(s, o) => {
                let m = &model.s[s];
                let got = spool.peek(hs[s], o);
                match m.recs.get(m.pending + o as usize) {
                    None => prop_assert_eq!(got, Err(Error::NoData)),
                    Some(r) => {
                        let got = got.unwrap();
                        prop_assert_eq!((got.value, got.time_ms), *r);
                    }
                }
            }
            Op::Ack(s, n) => {
                let m = &mut model.s[s];
                let got = spool.ack(hs[s], n);
                if n as usize > m.pending {
                    prop_assert_eq!(got, Err(Error::AckTooMany));
                } else {
                    prop_assert_eq!(got, Ok(()));
                    m.recs.drain(..n as usize);
                    m.pending -= n as usize;
                    m.erased = m.erased.wrapping_add(n);
                }
            }
            Op::AckAll(s) => {
                let m = &mut model.s[s];
                prop_assert_eq!(spool.ack_all(hs[s]), Ok(m.pending as u32));
                m.recs.drain(..m.pending);
                m.erased = m.erased.wrapping_add(m.pending as u32);
                m.pending = 0;
            }
            Op::Revert(s) => {
                let m = &mut model.s[s];
                prop_assert_eq!(spool.revert(hs[s]), Ok(m.pending as u32));
                m.pending = 0;
            }
            Op::Clear(s) => {
                let m = &mut model.s[s];
                prop_assert_eq!(spool.clear(hs[s]), Ok(m.recs.len() as u32));
                m.erased = m.erased.wrapping_add(m.recs.len() as u32);
                m.recs.clear();
                m.pending = 0;
            }
        }
        compare(&spool, &hs, &model)?;
    }
    let g = spool.stats();
    TOTALS.with(|t| {
        let mut t = t.borrow_mut();
        t[0] += g.dropped as u64;
        t[1] += g.rejected as u64;
        t[2] += ops.len() as u64;
        t[3] += MID_DROPS.with(|m| m.replace(0));
    });
    Ok(())
}

thread_local! {
    static TOTALS: std::cell::RefCell<[u64; 4]> = const { std::cell::RefCell::new([0; 4]) };
    static MID_DROPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[test]
fn store_matches_model() {
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        // Under miri without -Zmiri-disable-isolation the environment is not visible.
        .unwrap_or(if cfg!(miri) { 4 } else { 2000 });
    let max_ops = if cfg!(miri) { 40 } else { 250 };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::cell::Cell::new(0u32);
    let result = runner.run(
        &(any::<bool>(), proptest::collection::vec(op(), 1..max_ops)),
        |(reject, ops)| {
            counter.set(counter.get() + 1);
            run_case(reject, &ops)
        },
    );
    let t = TOTALS.with(|t| *t.borrow());
    eprintln!(
        "store model: {} cases, {} ({} case runs incl. shrinking); {} ops, \
         {} records dropped by overflow ({} mid-queue sector drops), {} writes rejected",
        cases,
        if result.is_ok() { "passed" } else { "FAILED" },
        counter.get(),
        t[2],
        t[0],
        t[3],
        t[1]
    );
    result.unwrap();
}

/// `sensor_at(i)` is the `i`-th sensor in key order (what `sensors()` yields),
/// whatever order the sensors were registered in; `None` past the end.
#[test]
fn sensor_at_is_the_key_order() {
    let mut s = SmallSpool::new(SmallPool::new(), RamOnly, OverflowPolicy::RejectNew);
    // Registered in reverse key order, so table positions move on each insert.
    let mut keys: Vec<SensorKey> = SENSORS.iter().map(|&(k, _)| k).collect();
    keys.sort();
    for &(k, rate) in SENSORS.iter().rev() {
        s.register(k, rate).unwrap();
    }
    for (i, &k) in keys.iter().enumerate() {
        let h = s.sensor_at(i).expect("registered");
        assert_eq!(h.key(), k, "index {i}");
        assert_eq!(Some(h), s.sensors().nth(i));
        assert_eq!(s.lookup(k), Some(h));
    }
    assert_eq!(s.sensor_at(keys.len()), None);
}
