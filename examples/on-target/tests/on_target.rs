//! On-target tests of the pool, the store and `NorFlashStorage` (over a RAM-backed NOR
//! flash), run on Cortex-M under QEMU by `cargo test` (see `.cargo/config.toml`).
//! Prints one line per test and `N passed, 0 failed` last; a failed assertion exits QEMU
//! with status 1 through `panic-semihosting`.
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprintln};
use critical_section::Mutex;
use panic_semihosting as _;

use sensor_spool::pool::{AllocError, FreeError, Pool, Tier};
use sensor_spool::profile::{self, WicedSpool};
use sensor_spool::record::SensorKey;
use sensor_spool::spool::{ENTRY_SIZE, Error};
use sensor_spool::storage::{
    self, LogEntry, NorFlashStorage, RecordKind, Run, RunInfo, RunMeta, Storage,
};
use sensor_spool_on_target::{RamFlash, Test, run};

/// A small pool (fits next to the WICED store in 64 KiB): 32 x 32 B, 8 x 128 B, 2 x 512 B.
type SmallPool = Pool<Tier<32, 32, 1>, Tier<128, 8, 1>, Tier<512, 2, 1>>;

static POOL: SmallPool = SmallPool::new();
static SPOOL: Mutex<RefCell<WicedSpool>> = Mutex::new(RefCell::new(profile::wiced()));

/// Runs `f` with the global WICED store, reset to empty first.
fn with_spool<R>(f: impl FnOnce(&mut WicedSpool) -> R) -> R {
    critical_section::with(|cs| {
        let mut s = SPOOL.borrow_ref_mut(cs);
        *s = profile::wiced();
        f(&mut s)
    })
}

fn pool_tiers_and_fallback() {
    let a = POOL.alloc(20).unwrap();
    let b = POOL.alloc(100).unwrap();
    let c = POOL.alloc(512).unwrap();
    assert_eq!((a.tier(), b.tier(), c.tier()), (0, 1, 2));
    assert!(a.len() >= 20 && b.len() >= 100 && c.len() >= 512);
    assert_eq!(a.as_ptr() as usize % 8, 0);
    assert_eq!(POOL.alloc(513).err(), Some(AllocError::TooLarge));
    // exhaust tier 2, then tier 1 falls back to nothing bigger
    let c2 = POOL.alloc(300).unwrap();
    assert_eq!(POOL.alloc(300).err(), Some(AllocError::Exhausted));
    // tier 1 full -> served by... tier 2 is full too: exhausted, counted
    let mut held: heapless::Vec<_, 8> = heapless::Vec::new();
    for _ in 0..7 {
        held.push(POOL.alloc(128).unwrap()).ok().unwrap();
    }
    assert_eq!(POOL.alloc(128).err(), Some(AllocError::Exhausted));
    drop(c2);
    let fb = POOL.alloc(128).unwrap(); // falls back to the freed 512 B block
    assert_eq!(fb.tier(), 2);
    let st = POOL.stats();
    assert_eq!(st[1].in_use, 8);
    assert_eq!(st[1].fallbacks, 1);
    assert!(st[1].failed_allocs >= 1);
    assert_eq!(st[2].in_use, 2);
    drop((a, b, c, fb, held));
    let st = POOL.stats();
    assert_eq!(st.iter().map(|t| t.in_use).sum::<u32>(), 0);
    assert_eq!(st[1].peak, 8);
    assert_eq!(POOL.check(), Ok(()));
    POOL.reset_peak();
}

fn pool_bad_frees_change_nothing() {
    let blk = POOL.alloc(10).unwrap();
    let p = blk.into_raw().as_ptr();
    let mut local = 0u8;
    // SAFETY: a pointer this pool never handed out is never dereferenced (documented).
    assert_eq!(
        unsafe { POOL.free_raw(&mut local) },
        Err(FreeError::Foreign)
    );
    // SAFETY: an interior pointer of a live block is rejected without being dereferenced.
    assert_eq!(
        unsafe { POOL.free_raw(p.wrapping_add(4)) },
        Err(FreeError::Foreign)
    );
    // SAFETY: `p` came from `into_raw` and no handle or reference to it remains.
    assert_eq!(unsafe { POOL.free_raw(p) }, Ok(()));
    // SAFETY: an already freed block is rejected without being dereferenced.
    assert_eq!(unsafe { POOL.free_raw(p) }, Err(FreeError::DoubleFree));
    assert_eq!(POOL.stats()[0].in_use, 0);
    assert!(POOL.stats()[0].invalid_frees >= 1);
    assert_eq!(POOL.check(), Ok(()));
}

static ISR_ALLOCS: AtomicU32 = AtomicU32::new(0);
static ISR_FAILS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // An interrupt allocating and freeing while the main loop does the same.
    match POOL.alloc(24) {
        Ok(mut b) => {
            b[0] = 0xA5;
            ISR_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            ISR_FAILS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn pool_shared_with_interrupt() {
    let mut cp = cortex_m::Peripherals::take().unwrap();
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(2_000);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();
    let mut main_allocs = 0u32;
    let mut spins = 0u32;
    while ISR_ALLOCS.load(Ordering::Relaxed) + ISR_FAILS.load(Ordering::Relaxed) < 500 {
        spins += 1;
        assert!(spins < 50_000_000, "no SysTick interrupts");
        let mut held: heapless::Vec<_, 16> = heapless::Vec::new();
        for i in 0..16u8 {
            if let Ok(mut b) = POOL.alloc(16 + usize::from(i)) {
                b[0] = i;
                held.push(b).ok().unwrap();
                main_allocs += 1;
            }
        }
        for (i, b) in held.iter().enumerate() {
            assert_eq!(b[0], i as u8, "a block changed under its owner");
        }
    }
    cp.SYST.disable_interrupt();
    cp.SYST.disable_counter();
    hprintln!(
        "  pool+interrupt: {} ISR allocs, {} ISR exhausted, {} main allocs",
        ISR_ALLOCS.load(Ordering::Relaxed),
        ISR_FAILS.load(Ordering::Relaxed),
        main_allocs
    );
    let st = POOL.stats();
    assert_eq!(st.iter().map(|t| t.in_use).sum::<u32>(), 0);
    assert_eq!(POOL.check(), Ok(()));
}

fn store_transaction() {
    with_spool(|s| {
        let temp = s.register(SensorKey::new(0, 42), 1000).unwrap();
        let door = s.register(SensorKey::new(0, 7), 0).unwrap();
        for i in 0..100u32 {
            s.write(temp, 1000 + i, 1_700_000_000_000 + u64::from(i) * 1000)
                .unwrap();
        }
        s.write_secs(door, 1, 1_700_000_000).unwrap();
        let r = s.read(temp).unwrap();
        assert_eq!((r.value, r.time_ms), (1000, 1_700_000_000_000));
        assert_eq!(s.read(temp).unwrap().value, 1001);
        assert_eq!(s.ack(temp, 3), Err(Error::AckTooMany));
        assert_eq!(s.revert(temp), Ok(2));
        assert_eq!(s.read(temp).unwrap().value, 1000);
        s.ack(temp, 1).unwrap();
        let st = s.sensor_stats(temp).unwrap();
        assert_eq!((st.count, st.pending, st.available), (99, 0, 99));
        let e = s.read(door).unwrap();
        assert_eq!((e.value, e.utc_seconds()), (1, 1_700_000_000));
        assert_eq!(s.read(door), Err(Error::NoData));
        // drain in order
        for i in 1..100u32 {
            assert_eq!(s.read(temp).unwrap().value, 1000 + i);
        }
        assert_eq!(s.read(temp), Err(Error::NoData));
        assert_eq!(s.ack_all(temp), Ok(99));
        assert_eq!(s.check(), Ok(()));
    });
}

fn store_fills_ram_and_drops_oldest() {
    with_spool(|s| {
        let keys = [
            SensorKey::new(0, 1),
            SensorKey::new(0, 2),
            SensorKey::new(4, 3),
        ];
        let mut hs: heapless::Vec<_, 3> = heapless::Vec::new();
        for k in keys {
            hs.push(s.register(k, 100).unwrap()).unwrap();
        }
        let mut written = [0u32; 3];
        for n in 0..6000u32 {
            let i = (n % 3) as usize;
            written[i] += 1;
            s.write(hs[i], written[i], u64::from(n) * 100).unwrap();
        }
        let g = s.stats();
        assert!(g.dropped > 0, "the WICED RAM is smaller than 6000 samples");
        assert_eq!(g.records + g.dropped, 6000);
        assert_eq!(g.sectors_used, g.sectors_total);
        // every sensor still reads its newest data in order, with no invented value
        for (i, h) in hs.iter().enumerate() {
            let st = s.sensor_stats(*h).unwrap();
            let mut prev = 0;
            for _ in 0..st.count {
                let v = s.read(*h).unwrap().value;
                assert!(v > prev && v <= written[i]);
                prev = v;
            }
            assert_eq!(prev, written[i], "newest record kept");
            s.ack_all(*h).unwrap();
        }
        assert_eq!(s.stats().records, 0);
        assert_eq!(s.check(), Ok(()));
    });
}

fn store_table_limits() {
    with_spool(|s| {
        for id in 0..profile::WICED_SENSORS as u32 {
            s.register(SensorKey::new(1, id), 0).unwrap();
        }
        assert_eq!(
            s.register(SensorKey::new(1, 9999), 0),
            Err(Error::TableFull)
        );
        assert!(s.lookup(SensorKey::new(1, 5)).is_some());
        assert_eq!(s.check(), Ok(()));
    });
}

const SECTOR: usize = 1024;
type Flash = RamFlash<{ 8 * SECTOR }, SECTOR>;
static FLASH: Mutex<RefCell<Flash>> = Mutex::new(RefCell::new(Flash::new()));

fn skey(id: u32) -> storage::SensorKey {
    storage::SensorKey { source: 0, id }
}

// `RunMeta::base_time` is u32 in this storage version and u64 in the next one.
#[allow(clippy::useless_conversion)]
fn run_info(id: u32, first_seq: u32, count: u16) -> RunInfo {
    RunInfo {
        key: skey(id),
        kind: RecordKind::Tsd,
        first_seq,
        count,
        meta: RunMeta {
            base_time: (1000 + first_seq).into(),
            interval: 1,
        },
    }
}

fn nor_flash_storage_append_read_ack_remount() {
    critical_section::with(|cs| {
        let mut flash = FLASH.borrow_ref_mut(cs);
        *flash = Flash::new();
        let mut out = [0u8; 256];
        let stats = {
            let mut st = NorFlashStorage::<_, 256>::new(&mut *flash).unwrap();
            st.mount().unwrap();
            assert!(st.is_persistent());
            // batches of two sensors, 16 TSD records each, until the log wraps
            let mut recs = [0u8; 64];
            let mut evicted = 0u32;
            for b in 0..60u32 {
                for (i, c) in recs.chunks_mut(4).enumerate() {
                    c.copy_from_slice(&(b * 16 + i as u32).to_le_bytes());
                }
                let runs = [
                    Run {
                        info: run_info(1, b * 16, 16),
                        records: &recs,
                    },
                    Run {
                        info: run_info(2, b * 16, 16),
                        records: &recs,
                    },
                ];
                st.append(&runs, |r| evicted += u32::from(r.count)).unwrap();
            }
            let stats = st.stats();
            assert_eq!(stats.batches, 60);
            assert!(stats.evicted_sectors > 0, "60 batches do not fit in 8 KiB");
            assert_eq!(evicted, stats.evicted_records);
            // read sensor 1 from its oldest stored record: continuous up to the newest
            let mut seq = 0u32;
            let mut first = None;
            while let Some(r) = st.read(skey(1), seq, &mut out).unwrap() {
                first.get_or_insert(r.first);
                for (i, c) in out[..r.count * 4].chunks(4).enumerate() {
                    let v = u32::from_le_bytes(c.try_into().unwrap());
                    assert_eq!(v, r.first + i as u32, "record value == its sequence number");
                }
                seq = r.first + r.count as u32;
            }
            assert_eq!(seq, 60 * 16, "read up to the newest record");
            assert!(first.unwrap() > 0, "the oldest records were evicted");
            st.ack(skey(1), 900, |_| {}).unwrap();
            stats
        };

        // remount from the same flash: runs and the ack mark come back
        let mut st = NorFlashStorage::<_, 256>::new(&mut *flash).unwrap();
        st.mount().unwrap();
        let (mut runs, mut acks, mut last_upto) = (0u32, 0u32, 0u32);
        st.recover(|e| match e {
            LogEntry::Run(_) => runs += 1,
            LogEntry::Ack { key, upto } => {
                assert_eq!(key, skey(1));
                acks += 1;
                last_upto = upto;
            }
            LogEntry::Reserve { .. } => {}
        })
        .unwrap();
        assert!(runs > 0);
        assert_eq!((acks, last_upto), (1, 900));
        let r = st.read(skey(2), 959, &mut out).unwrap().unwrap();
        assert_eq!((r.first, r.count), (959, 1));
        hprintln!(
            "  nor: {} runs after remount, {} sectors evicted, {} erases, {} program ops",
            runs,
            stats.evicted_sectors,
            flash.erases,
            flash.programs
        );
    });
}

fn footprint() {
    let wiced = core::mem::size_of::<WicedSpool>();
    let nor = core::mem::size_of::<NorFlashStorage<&mut Flash>>();
    hprintln!(
        "  footprint: WicedSpool {} B (pool {} x {} B sectors, {} sensors x {} B), NorFlashStorage {} B",
        wiced,
        profile::WICED_SECTORS,
        profile::WICED_SECTOR,
        profile::WICED_SENSORS,
        ENTRY_SIZE,
        nor
    );
    assert!(
        wiced <= 12 * 1024,
        "WICED profile exceeds its 12 KiB budget"
    );
}

#[entry]
fn main() -> ! {
    let tests: &[Test] = &[
        ("pool_tiers_and_fallback", pool_tiers_and_fallback),
        (
            "pool_bad_frees_change_nothing",
            pool_bad_frees_change_nothing,
        ),
        ("pool_shared_with_interrupt", pool_shared_with_interrupt),
        ("store_transaction", store_transaction),
        (
            "store_fills_ram_and_drops_oldest",
            store_fills_ram_and_drops_oldest,
        ),
        ("store_table_limits", store_table_limits),
        (
            "nor_flash_storage_append_read_ack_remount",
            nor_flash_storage_append_read_ack_remount,
        ),
        ("footprint", footprint),
    ];
    #[cfg(target_abi = "eabihf")]
    let suite = "thumbv7em-none-eabihf (mps2-an386, Cortex-M4F)";
    #[cfg(not(target_abi = "eabihf"))]
    let suite = "thumbv7m-none-eabi (lm3s6965evb, Cortex-M3)";
    run(suite, tests);
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::nop();
    }
}
