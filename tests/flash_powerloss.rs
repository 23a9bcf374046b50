//! Power-loss tests of `NorFlashStorage` against a model (feature `_mock-flash`).
//!
//! - (a) exhaustive sweep: for a workload that wraps the ring several times, a
//!   torn image is taken at **every** program/erase index and mounted from the
//!   raw bytes; every committed acknowledgement and flushed record must be there
//!   in order, nothing invented or corrupted, batches atomic;
//! - (b) real cuts (the flash returns an error mid-operation and stays dead),
//!   then up to 3 nested cuts during the writes that follow each remount;
//! - (c) the geometry matrix WRITE_SIZE 1, 4, 8, 16, 32 x ERASE_SIZE 256 B,
//!   4 KiB, 128 KiB.
//!
//! Each test prints `flash power-loss <name>: <n> cut points`; scripts/test.sh sums them.

mod flash_common;

use flash_common::{Flash, Model, Op, Rng, Store, sweep};
use sensor_spool::storage::Storage;
use sensor_spool::storage::mock_flash::Tear;
fn count(name: &str, cuts: u64, evicted: u64, sectors: u64) {
    eprintln!(
        "flash power-loss {name}: {cuts} cut points, {evicted} sectors evicted ({sectors} in the ring)"
    );
    assert!(
        evicted >= sectors,
        "{name}: the workload must wrap the flash"
    );
}

macro_rules! matrix {
    ($($name:ident: $w:literal, $e:literal, $sectors:literal, $ops:literal;)*) => {$(
        #[test]
        fn $name() {
            let (cuts, evicted) = sweep::<$w, $e>($sectors, $ops, 0x5EED ^ ($w * 131 + $e) as u64);
            count(stringify!($name), cuts, evicted, $sectors);
        }
    )*};
}

matrix! {
    sweep_w1_e256: 1, 256, 8, 5000;
    sweep_w4_e256: 4, 256, 8, 5000;
    sweep_w8_e256: 8, 256, 8, 5000;
    sweep_w16_e256: 16, 256, 8, 5000;
    sweep_w32_e256: 32, 256, 8, 5000;
    sweep_w1_e4k: 1, 4096, 4, 1500;
    sweep_w4_e4k: 4, 4096, 4, 1500;
    sweep_w8_e4k: 8, 4096, 4, 1500;
    sweep_w16_e4k: 16, 4096, 4, 1500;
    sweep_w32_e4k: 32, 4096, 4, 1500;
    sweep_w1_e128k: 1, 131072, 2, 250;
    sweep_w4_e128k: 4, 131072, 2, 250;
    sweep_w8_e128k: 8, 131072, 2, 250;
    sweep_w16_e128k: 16, 131072, 2, 250;
    sweep_w32_e128k: 32, 131072, 2, 250;
    sweep_long_w8_e512: 8, 512, 16, 40000;
    // Typical parts: 16-byte ECC units with 2 KiB sectors (STM32H7-like), 8-byte
    // units with 4 KiB sectors (STM32L4/U5-like).
    sweep_long_w16_e2k: 16, 2048, 8, 25000;
    sweep_long_w8_e4k: 8, 4096, 8, 25000;
}

/// Runs the workload on a fresh flash with a real power cut at op `k`, checks
/// the image, then remounts and cuts again during the next writes (nested up
/// to `depth` times). Returns the number of cut points checked, or `None` when
/// the workload finished before op `k`.
fn real_cut<const W: usize, const E: usize>(
    sectors: usize,
    ops: usize,
    seed: u64,
    k: u64,
    depth: usize,
    rng: &mut Rng,
) -> Option<u64> {
    let mut flash = Flash::<W, E>::new(sectors, seed);
    flash.set_tear(Tear::Mixed);
    let mut st = Store::<W, E>::new(flash).unwrap();
    st.mount().unwrap();
    let mut m = Model::new(seed, st.max_batch_bytes().min(3 * (20 + 8 * 48)));
    st.flash_mut().cut_after(Some(k));
    let mut inflight = None;
    for _ in 0..ops {
        let op = m.next_op();
        if m.apply(&mut st, &op).is_err() {
            inflight = Some(op);
            break;
        }
    }
    if !st.flash().is_dead() {
        return None;
    }
    let obs = m.check::<W, E>(st.flash().image(), inflight.as_ref());
    m.resolve(inflight.as_ref(), &obs);
    let mut cuts = 1;
    // Nested cuts: power fails again during the first writes after remount
    // (sealing the damaged sector, erasing and opening the next one, ...).
    // The same flash powers up again, so ECC-strict bookkeeping carries over.
    let mut flash = st.into_inner();
    for _ in 0..depth {
        flash.revive();
        let mut st = Store::<W, E>::new(flash).unwrap();
        st.mount().unwrap();
        let at = st.flash().ops() + rng.below(4);
        st.flash_mut().cut_after(Some(at));
        let mut inflight: Option<Op> = None;
        for _ in 0..8 {
            let op = m.next_op();
            if m.apply(&mut st, &op).is_err() {
                inflight = Some(op);
                break;
            }
        }
        let obs = m.check::<W, E>(st.flash().image(), inflight.as_ref());
        m.resolve(inflight.as_ref(), &obs);
        cuts += 1;
        flash = st.into_inner();
        if inflight.is_none() {
            break;
        }
    }
    Some(cuts)
}

fn real_cut_sweep<const W: usize, const E: usize>(name: &str, sectors: usize, ops: usize) {
    let ops = flash_common::scale(ops);
    let mut rng = Rng(0xC0FFEE ^ W as u64);
    let mut cuts = 0;
    let mut k = 0;
    while let Some(c) = real_cut::<W, E>(sectors, ops, 0xABC, k, 3, &mut rng) {
        cuts += c;
        k += 1;
    }
    let mut st = Store::<W, E>::new(Flash::<W, E>::new(sectors, 0xABC)).unwrap();
    st.mount().unwrap();
    let mut m = Model::new(0xABC, st.max_batch_bytes().min(3 * (20 + 8 * 48)));
    for _ in 0..ops {
        let op = m.next_op();
        m.apply(&mut st, &op).unwrap();
    }
    count(
        name,
        cuts,
        st.stats().evicted_sectors as u64,
        sectors as u64,
    );
}

#[test]
fn real_cuts_nested_w4_e256() {
    real_cut_sweep::<4, 256>("real+nested w4 e256", 4, 300);
}

#[test]
fn real_cuts_nested_w1_e256() {
    real_cut_sweep::<1, 256>("real+nested w1 e256", 4, 300);
}

#[test]
fn real_cuts_nested_w32_e4k() {
    real_cut_sweep::<32, 4096>("real+nested w32 e4k", 2, 120);
}
