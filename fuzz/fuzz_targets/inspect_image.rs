//! `inspect_image`: arbitrary bytes as a raw NOR flash dump, read the way
//! `spool-inspect` reads one: `guess_sector_size`, then for that sector size (and
//! three fixed geometries) every write size: `ImageFlash`, `mount`,
//! `NorFlashStorage::inspect`, `recover`, `inspect_records`.
//!
//! Checked:
//! - nothing panics, and nothing is ever written (`ImageFlash` fails every
//!   program and erase; the bytes are compared after);
//! - the live runs the inspection walk reports are exactly the runs `recover`
//!   reports, and `inspect_records` delivers exactly those runs (pieces joined),
//!   each with `count x record size` bytes: the walk sees what the store sees;
//! - every problem offset lies inside the image;
//! - a guessed sector size is a power of two that divides the header positions.
//!
//! Seeds (fuzz/corpus/inspect_image/seed-*) are raw images; CI also runs the
//! `spool-inspect` binary on them (scripts/ci.d/72-inspect.sh).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_spool::storage::inspect::{self, ImageFlash, Item};
use sensor_spool::storage::{LogEntry, NorFlashStorage, RunInfo, Storage};

fn check<const W: usize, const E: usize>(data: &[u8]) {
    let mut st: NorFlashStorage<ImageFlash<'_, W, E>, 512, 4> =
        match NorFlashStorage::new(ImageFlash::new(data)) {
            Ok(s) => s,
            Err(_) => return,
        };
    st.mount().expect("mount of an image never fails");
    let len = st.flash().bytes().len() as u64;
    let mut walked: Vec<RunInfo> = Vec::new();
    let totals = st
        .inspect(|i| match i {
            Item::Run(r) if r.live => walked.push(r.info),
            Item::Problem(p) => assert!(p.offset <= len, "problem offset {p:?} outside"),
            _ => {}
        })
        .expect("inspect");
    assert!(totals.damage <= totals.problems);
    let mut recovered: Vec<RunInfo> = Vec::new();
    st.recover(|e| {
        if let LogEntry::Run(r) = e {
            recovered.push(r)
        }
    })
    .expect("recover");
    let order = |x: &RunInfo| {
        (
            x.key,
            x.first_seq,
            x.count,
            x.meta.base_time,
            x.meta.interval,
        )
    };
    let mut a = walked.clone();
    let mut b = recovered.clone();
    a.sort_by_key(order);
    b.sort_by_key(order);
    assert_eq!(a, b, "inspection walk and recover disagree");
    // Records, in pieces of a small buffer, joined back into the runs.
    let mut buf = [0u8; 40];
    let mut pieces: Vec<RunInfo> = Vec::new();
    st.inspect_records(&mut buf, |info, bytes| {
        assert_eq!(bytes.len(), info.count as usize * info.kind.record_size());
        match pieces.last_mut() {
            Some(p)
                if p.key == info.key
                    && p.kind == info.kind
                    && p.end_seq() == info.first_seq
                    && (p.count as usize + info.count as usize) <= u16::MAX as usize
                    && joinable(p, &info) =>
            {
                p.count += info.count
            }
            _ => pieces.push(info),
        }
    })
    .expect("inspect_records");
    // Joining may also merge two stored runs that happen to continue each other.
    let total = |v: &[RunInfo]| v.iter().map(|r| r.count as u64).sum::<u64>();
    assert_eq!(total(&pieces), total(&recovered), "records delivered");
    assert!(pieces.len() <= recovered.len());
}

/// Whether `next` continues `p` (TSD: the time grid too).
fn joinable(p: &RunInfo, next: &RunInfo) -> bool {
    p.meta.interval == next.meta.interval
        && p.meta
            .base_time
            .wrapping_add(p.count as u64 * p.meta.interval as u64)
            == next.meta.base_time
}

macro_rules! all_w {
    ($data:expr, $e:literal) => {{
        check::<1, $e>($data);
        check::<2, $e>($data);
        check::<4, $e>($data);
        check::<8, $e>($data);
        check::<16, $e>($data);
        check::<32, $e>($data);
    }};
}

fuzz_target!(|data: &[u8]| {
    let copy = data.to_vec();
    if let Some(e) = inspect::guess_sector_size(data) {
        assert!(e.is_power_of_two() && (256..=1 << 20).contains(&e));
        match e {
            256 => all_w!(data, 256),
            512 => all_w!(data, 512),
            1024 => all_w!(data, 1024),
            2048 => all_w!(data, 2048),
            4096 => all_w!(data, 4096),
            8192 => all_w!(data, 8192),
            _ => {}
        }
    }
    check::<1, 256>(data);
    check::<8, 1024>(data);
    check::<4, 4096>(data);
    assert_eq!(data, &copy[..], "the image changed");
});
