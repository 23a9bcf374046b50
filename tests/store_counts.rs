//! Exact operation counts of the store's hot path (no timings): the pool allocations,
//! frees and sector lookups of a write + read + ack(1) cycle, and the storage calls the
//! spill hooks make while nothing is in flash. A change that adds work to the cycle
//! (an extra sector lookup, a sector kept or taken more often, a storage round trip on
//! every read) fails here, on any machine and under any load.
//!
//! The cycle of `benches/store.rs` and `examples/cg_store.rs`: one record written, read
//! (marked pending) and acknowledged, on an empty queue (every cycle takes a sector
//! from the pool and returns it: a sector goes back as soon as all its records are
//! acknowledged) and with 100 records queued (a sector every 8 TSD / 4 EVT cycles).

use std::cell::Cell;

use sensor_spool::pool::{Pool, Tier};
use sensor_spool::ram::SectorPool;
use sensor_spool::record::SensorKey;
use sensor_spool::sensor::OverflowPolicy;
use sensor_spool::spool::{RamOnly, SensorHandle, Spool};
use sensor_spool::storage::{
    Batch, LogEntry, ReadOut, RunInfo, Storage, StorageError, StorageStats,
};

type Inner = Pool<Tier<32, 64, 2>, Tier<64, 0, 0>, Tier<128, 0, 0>>;

/// Tier 0 of a pool (64 sectors of 32 bytes: 8 TSD or 4 EVT records), counting calls.
#[derive(Default)]
struct Counting {
    pool: Inner,
    allocs: u32,
    frees: u32,
    reads: Cell<u32>,
    writes: u32,
}

impl SectorPool for Counting {
    const SECTOR_SIZE: usize = 32;
    const SECTORS: usize = 64;
    fn alloc_sector(&mut self) -> Option<u16> {
        self.allocs += 1;
        self.pool.alloc_sector()
    }
    fn free_sector(&mut self, index: u16) -> bool {
        self.frees += 1;
        self.pool.free_sector(index)
    }
    fn sector(&self, index: u16) -> Option<&[u8]> {
        self.reads.set(self.reads.get() + 1);
        self.pool.sector(index)
    }
    fn sector_mut(&mut self, index: u16) -> Option<&mut [u8]> {
        self.writes += 1;
        self.pool.sector_mut(index)
    }
    fn pool_ok(&self) -> bool {
        self.pool.pool_ok()
    }
}

/// A persistent back end that stores nothing and counts every call.
#[derive(Default)]
struct CountingStorage {
    appends: u32,
    reads: u32,
    acks: u32,
    appended_records: u32,
}

impl Storage for CountingStorage {
    fn mount(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
    fn is_persistent(&self) -> bool {
        true
    }
    fn max_batch_bytes(&self) -> usize {
        64 * 1024
    }
    fn append<B: Batch + ?Sized, V: FnMut(RunInfo)>(
        &mut self,
        batch: &B,
        _: V,
    ) -> Result<(), StorageError> {
        self.appends += 1;
        self.appended_records += (0..batch.runs())
            .map(|i| batch.info(i).count as u32)
            .sum::<u32>();
        Ok(())
    }
    fn read(
        &mut self,
        _: sensor_spool::storage::SensorKey,
        _: u32,
        _: &mut [u8],
    ) -> Result<Option<ReadOut>, StorageError> {
        self.reads += 1;
        Ok(None)
    }
    fn ack<V: FnMut(RunInfo)>(
        &mut self,
        _: sensor_spool::storage::SensorKey,
        _: u32,
        _: V,
    ) -> Result<(), StorageError> {
        self.acks += 1;
        Ok(())
    }
    fn evict_oldest<V: FnMut(RunInfo)>(&mut self, _: V) -> Result<bool, StorageError> {
        Ok(false)
    }
    fn recover<V: FnMut(LogEntry)>(&mut self, _: V) -> Result<(), StorageError> {
        Ok(())
    }
    fn stats(&self) -> StorageStats {
        StorageStats::default()
    }
}

type RamSpool = Spool<Counting, 8, 64, 4>;
type FlashSpool = Spool<Counting, 8, 64, 4, CountingStorage, 8>;

const T0: u64 = 1_700_000_000_000;

fn ram_spool() -> Box<RamSpool> {
    Box::new(Spool::new(
        Counting::default(),
        RamOnly,
        OverflowPolicy::DropOldestUnsent,
    ))
}

/// Runs `n` cycles on `h` (1 s apart from `*t`) and checks every record read: the one
/// `backlog` records older than the one just written.
fn cycles<S: Storage, const SPILL: usize>(
    s: &mut Spool<Counting, 8, 64, 4, S, SPILL>,
    h: SensorHandle,
    n: u32,
    backlog: u32,
    t: &mut u64,
) {
    for _ in 0..n {
        *t += 1000;
        let v = (*t / 1000) as u32;
        s.write(h, v, *t).unwrap();
        let r = s.read(h).unwrap();
        let want_t = *t - backlog as u64 * 1000;
        assert_eq!((r.value, r.time_ms), ((want_t / 1000) as u32, want_t));
        s.ack(h, 1).unwrap();
    }
}

/// Per kind and queue state: sectors taken and returned, and sector lookups (one write
/// lookup per write, one read lookup per read), over `N` cycles.
#[test]
fn pool_calls_per_cycle() {
    // Fewer under miri (interpreted; the pool's index path underneath is unsafe code).
    const N: u32 = if cfg!(miri) { 80 } else { 800 };
    let mut report = Vec::new();
    for (evt, backlog, per_sector) in [(false, 0, 8), (true, 0, 4), (false, 100, 8), (true, 100, 4)]
    {
        let mut s = ram_spool();
        let h = s
            .register(SensorKey::new(0, 1), if evt { 0 } else { 1000 })
            .unwrap();
        let mut t = T0;
        for _ in 0..backlog {
            t += 1000;
            s.write(h, (t / 1000) as u32, t).unwrap();
        }
        let before = counts(&s);
        cycles(&mut *s, h, N, backlog, &mut t);
        let after = counts(&s);
        let (allocs, frees, reads, writes) = (
            after.0 - before.0,
            after.1 - before.1,
            after.2 - before.2,
            after.3 - before.3,
        );
        let sectors = if backlog == 0 { N } else { N / per_sector };
        assert_eq!(
            (allocs, frees, reads, writes),
            (sectors, sectors, N, N),
            "evt={evt} backlog={backlog}: (allocs, frees, sector reads, sector writes) over {N} cycles"
        );
        assert_eq!(s.sensor_stats(h).unwrap().count, backlog);
        assert_eq!(s.stats().sectors_used, backlog.div_ceil(per_sector));
        assert_eq!(s.check(), Ok(()));
        report.push(format!(
            "{} backlog {backlog}: {allocs} allocs, {frees} frees, {reads} + {writes} sector lookups / {N} cycles",
            if evt { "EVT" } else { "TSD" }
        ));
    }
    eprintln!("store counts: {}", report.join("; "));
}

/// `(allocs, frees, sector reads, sector writes)` of the spool's counting pool so far.
fn counts<S: Storage, const SPILL: usize>(
    s: &Spool<Counting, 8, 64, 4, S, SPILL>,
) -> (u32, u32, u32, u32) {
    let p = s.pool();
    (p.allocs, p.frees, p.reads.get(), p.writes)
}

/// With a persistent back end and nothing in flash, the cycle makes no storage call;
/// the threshold flush fires on exactly the write that takes the threshold sector.
#[test]
fn spill_hooks_cost_nothing_until_the_threshold() {
    let mut s: Box<FlashSpool> = Box::new(Spool::new(
        Counting::default(),
        CountingStorage::default(),
        OverflowPolicy::DropOldestUnsent,
    ));
    let tsd = s.register(SensorKey::new(0, 1), 1000).unwrap();
    let evt = s.register(SensorKey::new(0, 2), 0).unwrap();
    let (mut tt, mut te) = (T0, T0);
    for _ in 0..100 {
        tt += 1000;
        s.write(tsd, (tt / 1000) as u32, tt).unwrap();
        te += 1000;
        s.write(evt, (te / 1000) as u32, te).unwrap();
    }
    let n = if cfg!(miri) { 40 } else { 500 };
    cycles(&mut *s, tsd, n, 100, &mut tt);
    cycles(&mut *s, evt, n, 100, &mut te);
    let st = s.storage();
    assert_eq!(
        (st.appends, st.reads, st.acks),
        (0, 0, 0),
        "no storage call below the threshold"
    );
    assert_eq!(s.check(), Ok(()));

    // 50 % of 64 sectors = 32: the write that takes the 32nd sector flushes the full ones.
    let mut s: Box<FlashSpool> = Box::new(Spool::new(
        Counting::default(),
        CountingStorage::default(),
        OverflowPolicy::DropOldestUnsent,
    ));
    s.set_flush_threshold(50);
    let h = s.register(SensorKey::new(0, 1), 1000).unwrap();
    let mut t = T0;
    for i in 0..8 * 31 {
        t += 1000;
        s.write(h, i, t).unwrap();
        assert_eq!(s.storage().appends, 0, "record {i}: below the threshold");
    }
    t += 1000;
    s.write(h, 248, t).unwrap(); // takes sector 32
    assert_eq!(
        (s.storage().appends, s.storage().appended_records),
        (1, 248),
        "one batch of the 31 full sectors"
    );
    assert_eq!(s.stats().sectors_used, 1);
    assert_eq!(s.check(), Ok(()));
    eprintln!(
        "store counts: spill hooks: 0 storage calls in 1,000 cycles below the threshold; 1 batch of 248 records at 32 of 64 sectors"
    );
}
