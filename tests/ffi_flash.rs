//! Storage behind the C API, driven only through C entry points: a NOR flash region given
//! as C callbacks (`spool_flash_t`, a RAM part written in Rust as `extern "C"` functions),
//! checked against a model of what the uploader is owed.
//!
//! * threshold spill from `process_memory`, then reads in write order across flash and RAM;
//! * the legacy shutdown flush polled to 101 with a cancel in the middle;
//! * power cut (`spool_deinit` + `spool_init` on the same flash bytes), then recovery
//!   delivers exactly the unacknowledged records, in order (explicit `spool_recover` and the
//!   implicit recovery of the first data call), pending ones unsent again;
//! * a spool directory (host build) survives the same cycle.
#![cfg(feature = "ffi")]

mod ffi_support;

use SpoolStatus::*;
use ffi_support::*;
use sensor_spool::ffi::*;
use std::collections::VecDeque;

const T0: u32 = 1_700_000_000;
/// Entries of the test arrays: TSD 1 s, EVT, TSD 2 s.
const RATES: [u32; 3] = [1000, 0, 2000];
const SOURCE: u8 = 4;
const FLASH_SIZE: u32 = 64 * 1024;

/// What the uploader is owed per entry: (utc seconds, value), oldest first, and how many of
/// them are pending (read, not acknowledged).
#[derive(Default)]
struct Model {
    owed: [VecDeque<(u32, u32)>; 3],
    pending: [usize; 3],
    next: [u32; 3],
}

impl Model {
    fn total(&self) -> usize {
        self.owed.iter().map(VecDeque::len).sum()
    }
}

/// Writes one record to entry `e` (legacy `write_tsd_evt_time`), in the model too.
fn write(a: &Arrays, m: &mut Model, e: usize) {
    let i = m.next[e];
    m.next[e] += 1;
    let value = (e as u32 + 1) * 1_000_000 + i;
    let t = match RATES[e] {
        0 => T0 + 3 * i,
        r => T0 + i * (r / 1000),
    };
    // SAFETY: registered arrays, entry in range.
    unsafe { write_tsd_evt_time(a.csb(), a.csd(), e as u16, value, t) };
    assert_eq!(spool_last_status(), SPOOL_OK, "write {e}/{i}");
    m.owed[e].push_back((t, value));
}

/// Writes `n` records round-robin over the entries, calling `process_memory` every 64.
fn write_many(a: &Arrays, m: &mut Model, n: usize) {
    for k in 0..n {
        write(a, m, k % 3);
        if k % 64 == 63 {
            process_memory(k as u32);
        }
    }
}

/// Reads one record of entry `e` with legacy `read_tsd_evt` and checks it against the
/// model (EVT: two words, time and value).
fn read_check(a: &Arrays, m: &mut Model, e: usize) {
    let mut w = [0xDEAD_BEEFu32; 2];
    // SAFETY: registered arrays, two-word buffer.
    unsafe { read_tsd_evt(a.csb(), a.csd(), e as u16, w.as_mut_ptr()) };
    assert_eq!(spool_last_status(), SPOOL_OK, "read {e}");
    let (t, v) = m.owed[e][m.pending[e]];
    if RATES[e] == 0 {
        assert_eq!(
            (w[0], w[1]),
            (t, v),
            "entry {e}: EVT record {}",
            m.pending[e]
        );
    } else {
        assert_eq!(w[0], v, "entry {e}: TSD record {}", m.pending[e]);
    }
    m.pending[e] += 1;
}

/// Acknowledges `n` pending records of entry `e` (`atomic_erase_records`).
fn ack(a: &Arrays, m: &mut Model, e: usize, n: usize) {
    // SAFETY: registered arrays.
    let s = unsafe { atomic_erase_records(a.csb(), a.csd(), e as u16, n as u16) };
    assert_eq!(s, SPOOL_OK);
    m.owed[e].drain(..n);
    m.pending[e] -= n;
}

/// Checks the csd mirrors and the store counters against the model (the only records).
fn check_counts(a: &Arrays, m: &Model) {
    check_counts_plus(a, m, 0);
}

/// [`check_counts`] with `others` records of other sensors in the store.
fn check_counts_plus(a: &Arrays, m: &Model, others: usize) {
    for e in 0..3 {
        assert_eq!(
            a.counts(e),
            (m.owed[e].len() as u16, m.pending[e] as u16),
            "entry {e}: no_samples / no_pending"
        );
    }
    assert_eq!(stats().store.stored, (m.total() + others) as u64);
    assert_eq!(spool_check(), SPOOL_OK);
}

/// Reads every owed record of every entry, checks it, and acknowledges it.
fn drain(a: &Arrays, m: &mut Model) {
    drain_plus(a, m, 0);
}

/// [`drain`] with `others` records of other sensors in the store.
fn drain_plus(a: &Arrays, m: &mut Model, others: usize) {
    for e in 0..3 {
        while m.pending[e] < m.owed[e].len() {
            read_check(a, m, e);
        }
        let mut w = [0u32; 2];
        // SAFETY: registered arrays, two-word buffer.
        unsafe { read_tsd_evt(a.csb(), a.csd(), e as u16, w.as_mut_ptr()) };
        assert_eq!(
            spool_last_status(),
            SPOOL_ERR_NO_DATA,
            "entry {e}: nothing more"
        );
        // SAFETY: registered arrays.
        unsafe { erase_tsd_evt(a.csb(), a.csd(), e as u16) };
        m.owed[e].clear();
        m.pending[e] = 0;
    }
    check_counts_plus(a, m, others);
}

fn assert_flash_contract(f: &RamFlash) {
    assert_eq!(f.violations, 0, "misaligned or out-of-bounds flash calls");
    assert_eq!(
        f.reprogrammed, 0,
        "a 32-byte chunk programmed twice between erases"
    );
}

fn ram_sectors() -> (u32, u32) {
    let s = stats().store;
    (s.sectors_used, s.sectors_total)
}

#[test]
fn process_memory_spills_at_the_threshold_and_reads_stay_in_order() {
    let _g = serial();
    let mut flash = RamFlash::new(FLASH_SIZE, 1, 4096);
    assert_eq!(
        init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 50),
        SPOOL_OK
    );
    let a = Arrays::new(10, &RATES);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut m = Model::default();
    // Below the threshold: process_memory has nothing to do.
    write_many(&a, &mut m, 30);
    process_memory(0);
    assert_eq!(
        storage_stats().flushed,
        0,
        "below the threshold nothing spills"
    );
    // Fill RAM past 50 % of its sectors; process_memory (every 64 writes) spills.
    let (_, total) = ram_sectors();
    while storage_stats().flushed == 0 {
        write_many(&a, &mut m, 64);
        assert!(m.total() < 40_000, "never spilled");
    }
    let st = storage_stats();
    assert_eq!(st.kind, SPOOL_STORAGE_FLASH);
    assert_eq!(st.recovered, 1, "empty flash: recovery found nothing");
    assert!(st.in_storage > 0 && st.batches > 0 && st.errors == 0);
    let (used, _) = ram_sectors();
    assert!(
        used * 100 < 50 * total,
        "after the spill RAM is below the threshold: {used}/{total}"
    );
    // MM2 stats describe RAM only: records in flash do not count as payload of RAM sectors.
    let mut mm2 = Mm2Stats::default();
    // SAFETY: writable.
    assert_eq!(unsafe { imx(imx_get_memory_stats(&mut mm2)) }, SPOOL_OK);
    assert!(
        (1..=100).contains(&mm2.space_efficiency_percent),
        "space efficiency {}% with {} records in storage",
        mm2.space_efficiency_percent,
        st.in_storage
    );
    // One batch per call: a call above the threshold moves one batch, never more.
    let b0 = storage_stats().batches;
    process_memory(1);
    assert!(storage_stats().batches <= b0 + 1);
    // Newer records go to RAM behind the flash ones; pending ones too.
    write_many(&a, &mut m, 500);
    check_counts(&a, &m);
    for e in 0..3 {
        for _ in 0..5 {
            read_check(&a, &mut m, e);
        }
    }
    ack(&a, &mut m, 0, 3);
    check_counts(&a, &m);
    drain(&a, &mut m);
    assert_eq!(storage_stats().in_storage, 0);
    assert!(is_all_ram_empty());
    assert_eq!(spool_deinit(), SPOOL_OK);
    assert_flash_contract(&flash);
    eprintln!(
        "ffi flash threshold: {} records written, {} flushed in {} batches; flash: {} programs, {} erases",
        m.next.iter().sum::<u32>(),
        st.flushed,
        st.batches,
        flash.programs,
        flash.erases
    );
}

#[test]
fn shutdown_flush_polled_to_101_with_a_cancel_in_the_middle() {
    let _g = serial();
    let mut flash = RamFlash::new(FLASH_SIZE, 8, 1024);
    assert_eq!(
        init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 0),
        SPOOL_OK
    );
    let a = Arrays::new(10, &RATES);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut m = Model::default();
    write_many(&a, &mut m, 3000);
    assert_eq!(storage_stats().flushed, 0, "below the default 80 %");
    assert!(!is_all_ram_empty());
    assert_eq!(get_flush_progress(), 101, "no flush requested");
    // Ignition off, then back on after one step.
    flush_all_to_disk();
    let p1 = get_flush_progress();
    assert!((0..=100).contains(&p1), "one batch is not everything: {p1}");
    assert!(storage_stats().in_storage > 0);
    cancel_memory_flush();
    assert_eq!(spool_last_status(), SPOOL_OK);
    let b = storage_stats().batches;
    process_memory(5);
    assert_eq!(storage_stats().batches, b, "cancelled: no more flush work");
    assert!(!is_all_ram_empty(), "the rest stayed in RAM");
    check_counts(&a, &m);
    // The uploader runs meanwhile: reads cross from flash into RAM.
    for _ in 0..4 {
        read_check(&a, &mut m, 1);
    }
    write_many(&a, &mut m, 200);
    // Ignition off again: poll until safe to power off.
    flush_all_to_disk();
    let mut last = 0;
    let mut steps = 0;
    loop {
        process_memory(steps);
        let p = get_flush_progress();
        assert_eq!(spool_last_status(), SPOOL_OK);
        if p == 101 {
            break;
        }
        assert!(p <= 100 && p >= last, "progress goes up: {last} -> {p}");
        last = p;
        steps += 1;
        assert!(steps < 100, "flush never finished");
    }
    assert!(is_all_ram_empty());
    assert_eq!(get_flush_progress(), 101, "finished: stays 101");
    assert_eq!(ram_sectors().0, 0);
    check_counts(&a, &m);
    drain(&a, &mut m);
    assert_eq!(spool_deinit(), SPOOL_OK);
    assert_flash_contract(&flash);
    eprintln!("ffi flash shutdown: finished after {steps} polls (first poll {p1} %)");
}

/// Power cut after a complete shutdown flush, with acknowledged and pending records:
/// after `spool_init` on the same flash bytes and re-registration, `spool_recover` finds
/// exactly the unacknowledged records and they are delivered in order; pending ones are
/// unsent again. A second cut after everything was acknowledged recovers nothing.
#[test]
fn power_cut_then_recovery_delivers_exactly_the_unacked_records() {
    let _g = serial();
    let mut flash = RamFlash::new(FLASH_SIZE, 4, 4096);
    assert_eq!(
        init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 60),
        SPOOL_OK
    );
    let a = Arrays::new(10, &RATES);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut m = Model::default();
    write_many(&a, &mut m, 4000);
    for (e, n) in [(0, 40), (1, 7), (2, 1)] {
        for _ in 0..n {
            read_check(&a, &mut m, e);
        }
    }
    ack(&a, &mut m, 0, 25);
    ack(&a, &mut m, 1, 7);
    flush_all_to_disk();
    while get_flush_progress() != 101 {}
    check_counts(&a, &m);
    let owed = m.total();
    // Power cut: the library's RAM is gone, the flash stays.
    assert_eq!(spool_deinit(), SPOOL_OK);
    m.pending = [0; 3];
    assert_eq!(
        init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 60),
        SPOOL_OK
    );
    let a2 = Arrays::new(10, &RATES);
    assert_eq!(a2.register(SOURCE), SPOOL_OK);
    assert_eq!(
        storage_stats().recovered,
        0,
        "not before the first data call"
    );
    let mut n = u32::MAX;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_recover(&mut n) }, SPOOL_OK);
    assert_eq!(
        n as usize, owed,
        "recovered exactly the unacknowledged records"
    );
    let st = storage_stats();
    assert_eq!((st.recovered, st.recovered_records), (1, n));
    check_counts(&a2, &m);
    // New records continue behind the recovered ones.
    write_many(&a2, &mut m, 90);
    drain(&a2, &mut m);
    // Everything acknowledged: the next boot owes nothing.
    assert_eq!(spool_deinit(), SPOOL_OK);
    assert_eq!(init_flash(0, flash.callbacks(), 60), SPOOL_OK);
    let a3 = Arrays::new(10, &RATES);
    assert_eq!(a3.register(SOURCE), SPOOL_OK);
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_recover(&mut n) }, SPOOL_OK);
    assert_eq!(n, 0);
    assert_eq!(stats().store.stored, 0);
    assert_eq!(spool_deinit(), SPOOL_OK);
    assert_flash_contract(&flash);
    eprintln!("ffi flash power cut: {owed} unacknowledged records recovered in order");
}

/// Power cut without a shutdown flush: what the threshold spill had moved to flash is
/// recovered (the implicit recovery of the first data call), the oldest records of each
/// sensor in order; what was only in RAM is gone.
#[test]
fn power_cut_without_shutdown_flush_recovers_the_spilled_prefix() {
    let _g = serial();
    let mut flash = RamFlash::new(FLASH_SIZE, 1, 256);
    assert_eq!(
        init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 30),
        SPOOL_OK
    );
    let a = Arrays::new(10, &RATES);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut m = Model::default();
    write_many(&a, &mut m, 3000);
    let in_storage = storage_stats().in_storage as usize;
    assert!(in_storage > 0 && in_storage < m.total());
    assert_eq!(spool_deinit(), SPOOL_OK);
    assert_eq!(
        init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 30),
        SPOOL_OK
    );
    let a2 = Arrays::new(10, &RATES);
    assert_eq!(a2.register(SOURCE), SPOOL_OK);
    // The first data call recovers: read entry 0 once, then the counters show the rest.
    read_check(&a2, &mut m, 0);
    assert_eq!(storage_stats().recovered_records as usize, in_storage);
    let s0 = a2.counts(0).0 as usize;
    m.owed[0].truncate(s0);
    for e in 1..3 {
        let (n, _) = a2.counts(e);
        m.owed[e].truncate(n as usize);
    }
    assert_eq!(
        m.total(),
        in_storage,
        "each sensor's oldest records, nothing else"
    );
    drain(&a2, &mut m);
    assert_eq!(spool_deinit(), SPOOL_OK);
    assert_flash_contract(&flash);
}

/// A flash part that fails every program / erase: the spill is refused, the records stay
/// in RAM, the status says `SPOOL_ERR_STORAGE`, nothing is lost or invented.
#[test]
fn a_failing_part_keeps_the_records_in_ram() {
    let _g = serial();
    let mut flash = RamFlash::new(FLASH_SIZE, 1, 4096);
    flash.fail_after = Some(0);
    assert_eq!(init_flash(0, flash.callbacks(), 10), SPOOL_OK);
    let a = Arrays::new(10, &RATES);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut m = Model::default();
    write_many(&a, &mut m, 1000);
    process_memory(0);
    assert_eq!(spool_last_status(), SPOOL_ERR_STORAGE);
    flush_all_to_disk();
    assert!(get_flush_progress() <= 100);
    assert_eq!(spool_last_status(), SPOOL_ERR_STORAGE);
    cancel_memory_flush();
    let st = storage_stats();
    assert!(st.errors > 0 && st.in_storage == 0);
    check_counts(&a, &m);
    assert_eq!(spool_deinit(), SPOOL_OK);
}

/// The host build's spool directory (`spool_config_t.dir`) through the same cycle.
#[test]
#[cfg_attr(miri, ignore = "file system")]
fn spool_directory_survives_a_power_cut() {
    let _g = serial();
    let dir = std::env::temp_dir().join(format!("ffi_spool_dir_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = std::ffi::CString::new(dir.to_str().expect("utf-8")).expect("no NUL");
    let cfg = || {
        let mut c = SpoolConfig::default_config();
        c.flags = SPOOL_CFG_EVT_READ_TWO_WORDS;
        c.dir = path.as_ptr();
        c
    };
    // SAFETY: valid config, `path` outlives the calls.
    assert_eq!(unsafe { spool_init(&cfg()) }, SPOOL_OK);
    let a = Arrays::new(10, &RATES);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut m = Model::default();
    write_many(&a, &mut m, 900);
    read_check(&a, &mut m, 2);
    ack(&a, &mut m, 2, 1);
    flush_all_to_disk();
    while get_flush_progress() != 101 {}
    assert_eq!(storage_stats().kind, SPOOL_STORAGE_FILES);
    assert_eq!(spool_deinit(), SPOOL_OK);
    // SAFETY: as above.
    assert_eq!(unsafe { spool_init(&cfg()) }, SPOOL_OK);
    let a2 = Arrays::new(10, &RATES);
    assert_eq!(a2.register(SOURCE), SPOOL_OK);
    let mut n = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_recover(&mut n) }, SPOOL_OK);
    assert_eq!(n as usize, m.total());
    drain(&a2, &mut m);
    assert_eq!(spool_deinit(), SPOOL_OK);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One step of the random sequences of `random_sequences_with_power_cuts_match_the_model`.
#[derive(Clone, Debug)]
enum Op {
    /// `n` writes to entry `e`.
    Write(usize, usize),
    /// Up to `n` reads of entry `e`.
    Read(usize, usize),
    /// `atomic_erase_records(e, k)`, `k` a fraction (of 8) of the pending records, or one
    /// more than pending (rejected).
    Ack(usize, u8),
    /// NACK: `revert_tsd_evt_pending_data` over all entries.
    Revert,
    /// `process_memory`.
    Process,
    /// `flush_all_to_disk`.
    Flush,
    /// `get_flush_progress` (one step while a flush runs).
    Poll,
    /// `cancel_memory_flush`.
    Cancel,
    /// Power cut: `spool_deinit`, `spool_init` on the same flash, re-register; recovery
    /// explicit (`spool_recover`) or implicit (first data call).
    PowerCut(bool),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..3usize, 1..1500usize).prop_map(|(e, n)| Op::Write(e, n)),
        3 => (0..3usize, 1..300usize).prop_map(|(e, n)| Op::Read(e, n)),
        2 => (0..3usize, 0..10u8).prop_map(|(e, k)| Op::Ack(e, k)),
        1 => Just(Op::Revert),
        2 => Just(Op::Process),
        1 => Just(Op::Flush),
        2 => Just(Op::Poll),
        1 => Just(Op::Cancel),
        1 => any::<bool>().prop_map(Op::PowerCut),
    ]
}

static MODEL_CASES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Power cuts that found records in flash (the interesting ones).
static MODEL_RECOVERIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Records that went through the flash, all cases.
static MODEL_FLUSHED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn run_model(ops: &[Op]) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert_eq;
    let _g = serial();
    // 512 KiB: every record a sequence can write fits without eviction, so the model owes
    // exactly what was written and not acknowledged.
    let mut flash = RamFlash::new(512 * 1024, 2, 512);
    prop_assert_eq!(
        init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 40),
        SPOOL_OK
    );
    let mut a = Arrays::new(10, &RATES);
    prop_assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut m = Model::default();
    for op in ops {
        match *op {
            Op::Write(e, n) => {
                for _ in 0..n {
                    write(&a, &mut m, e);
                }
            }
            Op::Read(e, n) => {
                for _ in 0..n.min(m.owed[e].len() - m.pending[e]) {
                    read_check(&a, &mut m, e);
                }
            }
            Op::Ack(e, k) => {
                let p = m.pending[e];
                if k == 9 {
                    // SAFETY: registered arrays.
                    let s =
                        unsafe { atomic_erase_records(a.csb(), a.csd(), e as u16, p as u16 + 1) };
                    prop_assert_eq!(s, SPOOL_ERR_ACK_TOO_MANY);
                } else {
                    ack(&a, &mut m, e, p * k as usize / 8);
                }
            }
            Op::Revert => {
                // SAFETY: registered arrays.
                unsafe { revert_tsd_evt_pending_data(a.csb(), a.csd(), 3) };
                prop_assert_eq!(spool_last_status(), SPOOL_OK);
                m.pending = [0; 3];
            }
            Op::Process => {
                process_memory(0);
                prop_assert_eq!(spool_last_status(), SPOOL_OK);
            }
            Op::Flush => flush_all_to_disk(),
            Op::Poll => {
                let p = get_flush_progress();
                prop_assert_eq!(spool_last_status(), SPOOL_OK);
                proptest::prop_assert!(p <= 101);
                if p == 101 {
                    proptest::prop_assert!(is_all_ram_empty() || m.total() > 0);
                }
            }
            Op::Cancel => cancel_memory_flush(),
            Op::PowerCut(explicit) => {
                let in_storage = storage_stats().in_storage as usize;
                MODEL_FLUSHED.fetch_add(
                    u64::from(storage_stats().flushed),
                    std::sync::atomic::Ordering::Relaxed,
                );
                if in_storage > 0 {
                    MODEL_RECOVERIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                prop_assert_eq!(spool_deinit(), SPOOL_OK);
                prop_assert_eq!(
                    init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 40),
                    SPOOL_OK
                );
                a = Arrays::new(10, &RATES);
                prop_assert_eq!(a.register(SOURCE), SPOOL_OK);
                if explicit {
                    let mut n = 0;
                    // SAFETY: valid out-pointer.
                    prop_assert_eq!(unsafe { spool_recover(&mut n) }, SPOOL_OK);
                    prop_assert_eq!(n as usize, in_storage);
                } else {
                    process_memory(0);
                    prop_assert_eq!(storage_stats().recovered_records as usize, in_storage);
                }
                // What was in flash survives: each sensor's oldest owed records; pending
                // ones are unsent again. The rest (RAM) is gone.
                m.pending = [0; 3];
                for e in 0..3 {
                    let k = a.counts(e).0 as usize;
                    proptest::prop_assert!(k <= m.owed[e].len());
                    m.owed[e].truncate(k);
                }
                prop_assert_eq!(m.total(), in_storage);
            }
        }
        check_counts(&a, &m);
        let st = storage_stats();
        prop_assert_eq!(
            (st.lost, st.errors),
            (0, 0),
            "no eviction, no refused flush"
        );
        prop_assert_eq!(stats().store.dropped, 0, "spills instead of dropping");
    }
    MODEL_FLUSHED.fetch_add(
        u64::from(storage_stats().flushed),
        std::sync::atomic::Ordering::Relaxed,
    );
    drain(&a, &mut m);
    prop_assert_eq!(spool_deinit(), SPOOL_OK);
    prop_assert_eq!((flash.violations, flash.reprogrammed), (0, 0));
    MODEL_CASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Random sequences of writes, reads, acknowledgements (and rejected over-acks), NACKs,
/// `process_memory`, shutdown flush / poll / cancel and power cuts against the model:
/// after every step the csd mirrors and store counters match it, after a power cut exactly
/// the records the flash held are owed (each sensor's oldest, in order), and at the end
/// every owed record is read back in order. Case count from `PROPTEST_CASES` (default 256,
/// capped at 64 here: each case writes thousands of records); the count run is printed.
#[test]
#[cfg_attr(miri, ignore = "thousands of records per case")]
fn random_sequences_with_power_cuts_match_the_model() {
    use proptest::test_runner::{Config, TestRunner};
    let cases = Config::default().cases.min(64);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..40), |ops| {
        run_model(&ops)
    });
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "ffi flash model: {} cases, {} power cuts with records in flash, {} records through flash",
        get(&MODEL_CASES),
        get(&MODEL_RECOVERIES),
        get(&MODEL_FLUSHED)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Sensors first known after the recovery (an array registered late, a native sensor
/// opened late) get their records of the previous run when they are registered, in
/// order, and never records of the previous run under reused sequence numbers.
#[test]
fn sensors_registered_after_recovery_get_their_records() {
    let _g = serial();
    let mut flash = RamFlash::new(FLASH_SIZE, 1, 4096);
    assert_eq!(
        init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 0),
        SPOOL_OK
    );
    let a = Arrays::new(10, &RATES);
    let b = Arrays::new(50, &RATES);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    assert_eq!(b.register(SOURCE), SPOOL_OK);
    let mut h = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_sensor_open(7, 77, 0, &mut h) }, SPOOL_OK);
    let (mut ma, mut mb) = (Model::default(), Model::default());
    write_many(&a, &mut ma, 300);
    write_many(&b, &mut mb, 300);
    for i in 0..20u32 {
        assert_eq!(spool_write(h, 500 + i, u64::from(T0 + i) * 1000), SPOOL_OK);
    }
    read_check(&b, &mut mb, 1);
    ack(&b, &mut mb, 1, 1);
    flush_all_to_disk();
    while get_flush_progress() != 101 {}
    let owed_b = mb.total();
    assert_eq!(spool_deinit(), SPOOL_OK);
    // Boot: only `a` before the recovery.
    assert_eq!(
        init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 0),
        SPOOL_OK
    );
    let a2 = Arrays::new(10, &RATES);
    assert_eq!(a2.register(SOURCE), SPOOL_OK);
    let mut n = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_recover(&mut n) }, SPOOL_OK);
    assert_eq!(n as usize, ma.total());
    // `b` late: its sensors are new to the store at their first data call.
    let b2 = Arrays::new(50, &RATES);
    assert_eq!(b2.register(SOURCE), SPOOL_OK);
    for e in 0..3 {
        // Writing first: the new record goes behind the recovered ones.
        write(&b2, &mut mb, e);
    }
    check_counts_plus(&a2, &ma, mb.total());
    for e in 0..3 {
        assert_eq!(
            b2.counts(e),
            (mb.owed[e].len() as u16, 0),
            "late entry {e}: recovered + the new record"
        );
    }
    assert_eq!(
        storage_stats().recovered_records as usize,
        ma.total() + owed_b
    );
    drain_plus(&b2, &mut mb, ma.total());
    drain(&a2, &mut ma);
    // The native sensor opened late (its 20 records come back with it).
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_sensor_open(7, 77, 0, &mut h) }, SPOOL_OK);
    let mut rec = SpoolRecord::default();
    for i in 0..20u32 {
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { spool_read(h, &mut rec) }, SPOOL_OK);
        assert_eq!(
            (rec.value, rec.time_ms),
            (500 + i, u64::from(T0 + i) * 1000)
        );
    }
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_read(h, &mut rec) }, SPOOL_ERR_NO_DATA);
    assert_eq!(spool_ack(h, 20), SPOOL_OK);
    assert_eq!(spool_check(), SPOOL_OK);
    assert_eq!(stats().store.stored, 0);
    assert_eq!(spool_deinit(), SPOOL_OK);
    assert_flash_contract(&flash);
}

/// `spool_sensor_in_ram`: the records a power cut would take now; a shutdown flush
/// brings it to 0, and exactly the records it counted are the ones lost in a cut.
#[test]
fn sensor_in_ram_counts_what_a_power_cut_would_take() {
    let _g = serial();
    let mut flash = RamFlash::new(FLASH_SIZE, 1, 4096);
    assert_eq!(
        init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 0),
        SPOOL_OK
    );
    let mut h = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_sensor_open(7, 78, 0, &mut h) }, SPOOL_OK);
    let mut n = u32::MAX;
    // SAFETY: NULL is allowed (refused with SPOOL_ERR_NULL).
    let null = unsafe { spool_sensor_in_ram(h, core::ptr::null_mut()) };
    assert_eq!(null, SPOOL_ERR_NULL);
    // SAFETY: valid out-pointer.
    let ok = unsafe { spool_sensor_in_ram(h, &mut n) };
    assert_eq!(ok, SPOOL_OK);
    assert_eq!(n, 0);
    for i in 0..30u32 {
        assert_eq!(spool_write(h, i, u64::from(T0 + i) * 1000), SPOOL_OK);
    }
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_sensor_in_ram(h, &mut n) }, SPOOL_OK);
    assert_eq!(n, 30);
    flush_all_to_disk();
    while get_flush_progress() != 101 {}
    for i in 30..40u32 {
        assert_eq!(spool_write(h, i, u64::from(T0 + i) * 1000), SPOOL_OK);
    }
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_sensor_in_ram(h, &mut n) }, SPOOL_OK);
    assert_eq!(n, 10, "the 30 flushed are durable");
    // Power cut: the 10 in RAM are gone, the 30 come back.
    assert_eq!(spool_deinit(), SPOOL_OK);
    assert_eq!(
        init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 0),
        SPOOL_OK
    );
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_sensor_open(7, 78, 0, &mut h) }, SPOOL_OK);
    let mut back = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_recover(&mut back) }, SPOOL_OK);
    let mut st = core::mem::MaybeUninit::uninit();
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_sensor_stats(h, st.as_mut_ptr()) }, SPOOL_OK);
    // SAFETY: written by the call above.
    assert_eq!(unsafe { st.assume_init() }.stored, 30);
    assert_eq!(spool_deinit(), SPOOL_OK);
}

/// `spool_set_max_unspilled_ms`: refused before init and (non-zero) without storage; with
/// flash, `process_memory(now)` moves every RAM record to flash once the window has passed
/// since RAM was last empty, so a power cut without the shutdown flush (`spool_deinit`)
/// loses only records written inside the window of the last `process_memory` call. With
/// the window off (the default) and RAM below the threshold, the same cut loses them all.
#[test]
fn max_unspilled_ms_bounds_what_a_power_cut_loses() {
    let _g = serial();
    assert_eq!(spool_set_max_unspilled_ms(1000), SPOOL_ERR_NOT_INITIALIZED);
    init(0);
    assert_eq!(spool_set_max_unspilled_ms(1000), SPOOL_ERR_UNSUPPORTED);
    assert_eq!(spool_set_max_unspilled_ms(0), SPOOL_OK);
    assert_eq!(spool_deinit(), SPOOL_OK);
    for window in [0u32, 5_000] {
        let mut flash = RamFlash::new(FLASH_SIZE, 1, 4096);
        assert_eq!(
            init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 0),
            SPOOL_OK
        );
        assert_eq!(spool_set_max_unspilled_ms(window), SPOOL_OK);
        let mut h = 0;
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { spool_sensor_open(7, 78, 0, &mut h) }, SPOOL_OK);
        // 300 events, one every 100 ms of the tick clock (uptime ms, not the records' UTC
        // time), `process_memory` after each: 30 s.
        let mut now = 50_000u32;
        for i in 0..300u32 {
            now += 100;
            assert_eq!(spool_write(h, i, u64::from(T0 + i) * 1000), SPOOL_OK);
            process_memory(now);
            assert_eq!(spool_last_status(), SPOOL_OK);
        }
        let mut in_ram = 0;
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { spool_sensor_in_ram(h, &mut in_ram) }, SPOOL_OK);
        // Power cut without the shutdown flush.
        assert_eq!(spool_deinit(), SPOOL_OK);
        assert_eq!(
            init_flash(SPOOL_CFG_EVT_READ_TWO_WORDS, flash.callbacks(), 0),
            SPOOL_OK
        );
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { spool_sensor_open(7, 78, 0, &mut h) }, SPOOL_OK);
        let mut back = 0;
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { spool_recover(&mut back) }, SPOOL_OK);
        assert_eq!(back, 300 - in_ram, "what was not in RAM came back");
        if window == 0 {
            assert_eq!(back, 0, "no window, RAM below the threshold: all in RAM");
        } else {
            // Records written up to the last call's time minus the window (now - 5 s:
            // the first 250) are back; at most the window's 50 records were lost.
            assert!(back >= 250, "{back} records back");
            assert!(in_ram <= 50, "{in_ram} records were in RAM only");
            let mut r = core::mem::MaybeUninit::uninit();
            // SAFETY: valid out-pointer.
            assert_eq!(unsafe { spool_read(h, r.as_mut_ptr()) }, SPOOL_OK);
            // SAFETY: written by the call above.
            assert_eq!(unsafe { r.assume_init() }.value, 0, "oldest record first");
        }
        eprintln!("window {window} ms: {back} of 300 records survived the cut, {in_ram} lost");
        assert_eq!(spool_deinit(), SPOOL_OK);
    }
}
