//! Random sequences of legacy C calls (valid and hostile) against a plain per-entry model
//! (`VecDeque` of values + pending count): after every call the mirrored `no_samples` /
//! `no_pending`, the returned values and statuses must match the model exactly.
#![cfg(feature = "ffi")]

mod ffi_support;

use SpoolStatus::*;
use ffi_support::*;
use proptest::prelude::*;
use sensor_spool::ffi::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

const ENTRIES: u16 = 4;

#[derive(Clone, Debug)]
enum Op {
    Write(u16, u32),
    Read(u16),
    Erase(u16),
    AtomicErase(u16, u16),
    Revert(u16),
    ErasePending(u16),
    PatchedErase(u16, u16),
    Reset(u16),
}

fn op() -> impl Strategy<Value = Op> {
    // Entries up to ENTRIES + 1 so some calls are out of range.
    let e = 0..ENTRIES + 2;
    prop_oneof![
        4 => (e.clone(), 1..u32::MAX).prop_map(|(e, v)| Op::Write(e, v)),
        3 => e.clone().prop_map(Op::Read),
        1 => e.clone().prop_map(Op::Erase),
        2 => (e.clone(), 0..6u16).prop_map(|(e, n)| Op::AtomicErase(e, n)),
        1 => (0..ENTRIES + 2).prop_map(Op::Revert),
        1 => (0..ENTRIES + 2).prop_map(Op::ErasePending),
        1 => (e.clone(), 0..6u16).prop_map(|(e, n)| Op::PatchedErase(e, n)),
        1 => e.prop_map(Op::Reset),
    ]
}

#[derive(Default, Clone)]
struct Entry {
    values: VecDeque<u32>,
    pending: usize,
}

static CASES: AtomicU64 = AtomicU64::new(0);

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let _g = serial();
    init(SPOOL_CFG_EVT_READ_TWO_WORDS);
    // Entries 0, 2 TSD; 1, 3 EVT.
    let a = Arrays::new(500, &[1000, 0, 250, 0]);
    prop_assert_eq!(a.register(3), SPOOL_OK);
    let mut m = vec![Entry::default(); ENTRIES as usize];
    let (csb, csd) = (a.csb(), a.csd());
    let valid = |e: u16| e < ENTRIES;
    for op in ops {
        match *op {
            Op::Write(e, v) => {
                // SAFETY: registered, live arrays (and a two-word `v` for reads).
                unsafe { write_tsd_evt_time(csb, csd, e, v, 1_700_000_000) };
                if valid(e) {
                    prop_assert_eq!(spool_last_status(), SPOOL_OK);
                    m[e as usize].values.push_back(v);
                } else {
                    prop_assert_eq!(spool_last_status(), SPOOL_ERR_INDEX);
                }
            }
            Op::Read(e) => {
                let mut v = [0xAAAA_AAAAu32; 2];
                // SAFETY: registered, live arrays (and a two-word `v` for reads).
                unsafe { read_tsd_evt(csb, csd, e, v.as_mut_ptr()) };
                if !valid(e) {
                    prop_assert_eq!(spool_last_status(), SPOOL_ERR_INDEX);
                    prop_assert_eq!(v, [0xAAAA_AAAA; 2]);
                    continue;
                }
                let en = &mut m[e as usize];
                let got = if e % 2 == 1 { v[1] } else { v[0] };
                match en.values.get(en.pending) {
                    Some(&want) => {
                        prop_assert_eq!(spool_last_status(), SPOOL_OK);
                        prop_assert_eq!(got, want);
                        if e % 2 == 1 {
                            prop_assert_eq!(v[0], 1_700_000_000);
                        }
                        en.pending += 1;
                    }
                    None => {
                        prop_assert_eq!(spool_last_status(), SPOOL_ERR_NO_DATA);
                        prop_assert_eq!(got, 0);
                    }
                }
            }
            Op::Erase(e) => {
                // SAFETY: registered, live arrays (and a two-word `v` for reads).
                unsafe { erase_tsd_evt(csb, csd, e) };
                if valid(e) {
                    let en = &mut m[e as usize];
                    en.values.drain(..en.pending);
                    en.pending = 0;
                } else {
                    prop_assert_eq!(spool_last_status(), SPOOL_ERR_INDEX);
                }
            }
            Op::AtomicErase(e, n) => {
                // SAFETY: registered, live arrays (and a two-word `v` for reads).
                let r = unsafe { atomic_erase_records(csb, csd, e, n) };
                if !valid(e) {
                    prop_assert_eq!(r, SPOOL_ERR_INDEX);
                } else if usize::from(n) <= m[e as usize].pending {
                    prop_assert_eq!(r, SPOOL_OK);
                    let en = &mut m[e as usize];
                    en.values.drain(..usize::from(n));
                    en.pending -= usize::from(n);
                } else {
                    prop_assert_eq!(r, SPOOL_ERR_ACK_TOO_MANY);
                }
            }
            Op::Revert(n) => {
                // SAFETY: registered, live arrays (and a two-word `v` for reads).
                unsafe { revert_tsd_evt_pending_data(csb, csd, n) };
                if n <= ENTRIES {
                    prop_assert_eq!(spool_last_status(), SPOOL_OK);
                    for en in m.iter_mut().take(n as usize) {
                        en.pending = 0;
                    }
                } else {
                    prop_assert_eq!(spool_last_status(), SPOOL_ERR_INDEX);
                }
            }
            Op::ErasePending(n) => {
                // SAFETY: registered, live arrays (and a two-word `v` for reads).
                unsafe { erase_tsd_evt_pending_data(csb, csd, n) };
                if n <= ENTRIES {
                    for en in m.iter_mut().take(n as usize) {
                        en.values.drain(..en.pending);
                        en.pending = 0;
                    }
                } else {
                    prop_assert_eq!(spool_last_status(), SPOOL_ERR_INDEX);
                }
            }
            Op::PatchedErase(e, n) => {
                if !valid(e) {
                    continue;
                }
                // erase_specific_samples(): no_pending = n; erase_tsd_evt; restore.
                let original = a.counts(e as usize).1;
                a.set_no_pending(e as usize, n);
                // SAFETY: registered, live arrays (and a two-word `v` for reads).
                unsafe { erase_tsd_evt(csb, csd, e) };
                let en = &mut m[e as usize];
                let k = usize::from(n).min(en.pending);
                en.values.drain(..k);
                en.pending -= k;
                prop_assert_eq!(a.counts(e as usize).1 as usize, en.pending);
                a.set_no_pending(e as usize, original.saturating_sub(k as u16));
            }
            Op::Reset(e) => {
                // SAFETY: registered, live arrays (and a two-word `v` for reads).
                unsafe { reset_csd_entry(csd, e) };
                if valid(e) {
                    m[e as usize] = Entry::default();
                } else {
                    prop_assert_eq!(spool_last_status(), SPOOL_ERR_INDEX);
                }
            }
        }
        for (i, en) in m.iter().enumerate() {
            prop_assert_eq!(
                a.counts(i),
                (en.values.len() as u16, en.pending as u16),
                "entry {} after {:?}",
                i,
                op
            );
        }
        prop_assert_eq!(spool_check(), SPOOL_OK);
    }
    let s = stats().store;
    prop_assert_eq!(s.written, s.acked + s.stored + s.dropped);
    prop_assert_eq!(
        s.stored,
        m.iter().map(|e| e.values.len() as u64).sum::<u64>()
    );
    CASES.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Case count from `PROPTEST_CASES` (default 256); the count actually run is printed.
#[test]
fn legacy_calls_match_the_model() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::default());
    // Shorter sequences under miri, where every call (and the `spool_check` after it) is
    // interpreted: 1..12 keeps the ffi miri entries under 90 s together (scripts/ci.d/60-ffi.sh).
    let len = if cfg!(miri) { 1..12 } else { 1..120 };
    let result = runner.run(&prop::collection::vec(op(), len), |ops| run(&ops));
    eprintln!("ffi legacy model: {} cases", CASES.load(Ordering::Relaxed));
    if let Err(e) = result {
        panic!("{e}");
    }
}
