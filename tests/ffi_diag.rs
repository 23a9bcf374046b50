//! Diagnostics: `spool_version` / `spool_version_numbers` against Cargo.toml, and the exact
//! text of `spool_dump` for known store and pool states (before and after init).
#![cfg(feature = "ffi")]

mod ffi_support;

use SpoolStatus::*;
use ffi_support::*;
use sensor_spool::ffi::*;
use std::ffi::{CStr, c_char, c_void};
use std::ptr::{NonNull, null_mut};

/// `version = "..."` of the `[package]` table of Cargo.toml, parsed from the file.
fn cargo_toml_version() -> (u32, u32, u32, String) {
    // Embedded at compile time (also works under miri's isolation).
    let toml = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    let mut in_package = false;
    for line in toml.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_package = l == "[package]";
            continue;
        }
        if in_package && let Some(rest) = l.strip_prefix("version") {
            let v = rest
                .trim()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"')
                .to_string();
            let n: Vec<u32> = v.split('.').map(|p| p.parse().expect("numeric")).collect();
            assert_eq!(n.len(), 3, "MAJOR.MINOR.PATCH");
            return (n[0], n[1], n[2], v);
        }
    }
    panic!("no [package] version in Cargo.toml");
}

#[test]
fn version_matches_cargo_toml() {
    let _g = serial();
    let (ma, mi, pa, s) = cargo_toml_version();
    // SAFETY: spool_version returns a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(spool_version()) };
    assert_eq!(v.to_str(), Ok(s.as_str()));
    let (mut a, mut b, mut c) = (u32::MAX, u32::MAX, u32::MAX);
    // SAFETY: valid out-pointers, or NULL.
    unsafe {
        assert_eq!(
            spool_version_numbers(&mut a, &mut b, &mut c),
            SPOOL_OK,
            "works before init"
        );
        assert_eq!((a, b, c), (ma, mi, pa));
        let (mut x, mut y) = (7u32, 8u32);
        assert_eq!(
            spool_version_numbers(null_mut(), &mut x, &mut y),
            SPOOL_ERR_NULL
        );
        assert_eq!(
            spool_version_numbers(&mut x, null_mut(), &mut y),
            SPOOL_ERR_NULL
        );
        assert_eq!(
            spool_version_numbers(&mut x, &mut y, null_mut()),
            SPOOL_ERR_NULL
        );
        assert_eq!((x, y), (7, 8), "nothing written on error");
    }
}

/// Collects the dump: each callback call must be exactly one line ending in '\n' with a NUL
/// after it.
unsafe extern "C" fn collect(ctx: *mut c_void, s: *const c_char, len: usize) {
    // SAFETY: ctx is the `Vec<String>` passed by `dump()`; `s` is valid for `len + 1` bytes.
    let (out, bytes) = unsafe {
        (
            &mut *ctx.cast::<Vec<String>>(),
            std::slice::from_raw_parts(s.cast::<u8>(), len + 1),
        )
    };
    assert_eq!(bytes[len], 0, "NUL-terminated");
    let line = std::str::from_utf8(&bytes[..len]).expect("ASCII");
    assert!(
        line.ends_with('\n') && line.matches('\n').count() == 1,
        "one line: {line:?}"
    );
    out.push(line.to_string());
}

fn dump() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // SAFETY: `collect` matches the callback contract; ctx points at `out` for the call.
    let r = unsafe { spool_dump(Some(collect), (&raw mut out).cast()) };
    assert_eq!(r, SPOOL_OK);
    out
}

const POOL_LINES_IDLE: [&str; 3] = [
    "pool tier 0: block 256 B, in use 0/32, peak 0, failed 0, invalid frees 0, fallbacks 0\n",
    "pool tier 1: block 1024 B, in use 0/16, peak 0, failed 0, invalid frees 0, fallbacks 0\n",
    "pool tier 2: block 4096 B, in use 0/8, peak 0, failed 0, invalid frees 0, fallbacks 0\n",
];

#[test]
fn dump_exact_content() {
    let _g = serial();
    let v = env!("CARGO_PKG_VERSION");
    // Before init: version, "not initialized", the pool, the boundary counters.
    let before = dump();
    let head = format!("sensor-spool {v} (abi {SPOOL_ABI_VERSION})\n");
    let mut want = vec![head.clone(), "store: not initialized\n".to_string()];
    want.extend(POOL_LINES_IDLE.iter().map(|s| s.to_string()));
    want.push("pool: stray frees 0\n".into());
    want.push("ffi: calls 1, rejected null 0, not initialized 0, not registered 0, index 0, other 0, store errors 0, gps 0\n".into());
    assert_eq!(before, want);

    // A known state: arrays (TSD 1000 ms, EVT) under source 1, 4 + 3 records, 2 + 1 read;
    // a native EVT sensor 9:1 with one record; one pool block held and a foreign free.
    init(0);
    let a = Arrays::new(100, &[1000, 0]);
    assert_eq!(a.register(1), SPOOL_OK);
    let (csb, csd) = (a.csb(), a.csd());
    // Two words: EVT reads store {utc, value} (ABI 3).
    let mut w = [0u32; 2];
    let mut h = 0;
    let mut blk: *mut c_void = null_mut();
    // SAFETY: registered arrays and valid out-pointers.
    unsafe {
        for i in 0..4 {
            write_tsd_evt_time(csb, csd, 0, 10 + i, 1_700_000_000 + i);
        }
        for i in 0..3 {
            write_tsd_evt_time(csb, csd, 1, 20 + i, 1_700_000_100 + i);
        }
        read_tsd_evt(csb, csd, 0, w.as_mut_ptr());
        read_tsd_evt(csb, csd, 0, w.as_mut_ptr());
        read_tsd_evt(csb, csd, 1, w.as_mut_ptr());
        assert_eq!(spool_sensor_open(9, 1, 0, &mut h), SPOOL_OK);
        assert_eq!(spool_write(h, 5, 1000), SPOOL_OK);
        assert_eq!(spool_pool_alloc(300, &mut blk), SPOOL_OK);
        let mut x = 0u64;
        assert_eq!(spool_pool_free((&raw mut x).cast()), SPOOL_ERR_FOREIGN_PTR);
        assert_eq!(spool_ack(h, 5), SPOOL_ERR_ACK_TOO_MANY);
    }
    let d = dump();
    let want: Vec<String> = [
        head.as_str(),
        "store: sensors 3, sectors 3/376, stored 8, pending 3, written 8, acked 0, dropped 0, refused 0\n",
        "sensor 1:100 TSD 1000 ms: stored 4, pending 2, available 2, lost 0\n",
        "sensor 1:101 EVT: stored 3, pending 1, available 2, lost 0\n",
        "sensor 9:1 EVT: stored 1, pending 0, available 1, lost 0\n",
        POOL_LINES_IDLE[0],
        "pool tier 1: block 1024 B, in use 1/16, peak 1, failed 0, invalid frees 0, fallbacks 0\n",
        POOL_LINES_IDLE[2],
        "pool: stray frees 1\n",
        // The dump before init, spool_config_default, spool_init, register, 7 writes,
        // 3 reads, open, write, pool alloc, pool free (foreign), ack (too many), this dump.
        // The C pool's calls are not counted (the pool is independent of the store's state).
        "ffi: calls 18, rejected null 0, not initialized 0, not registered 0, index 0, other 0, store errors 1, gps 0\n",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(d, want);
    // SAFETY: the block from spool_pool_alloc above.
    assert_eq!(unsafe { spool_pool_free(blk) }, SPOOL_OK);
    assert_eq!(spool_deinit(), SPOOL_OK);
}

/// The callback may call the library (it runs outside the critical section); a NULL
/// callback is rejected and counted.
#[test]
fn dump_callback_may_reenter_and_null_is_rejected() {
    let _g = serial();
    init(0);
    unsafe extern "C" fn reenter(ctx: *mut c_void, _s: *const c_char, _len: usize) {
        // SAFETY: ctx points at the u32 counter of the test.
        unsafe { *ctx.cast::<u32>() += 1 };
        let mut h = 0;
        // SAFETY: valid out-pointer.
        let r = unsafe { spool_sensor_open(2, 2, 0, &mut h) };
        assert_eq!(r, SPOOL_OK, "library callable from the dump callback");
    }
    let mut n = 0u32;
    assert_eq!(
        // SAFETY: `reenter` matches the contract; ctx points at `n`.
        unsafe { spool_dump(Some(reenter), (&raw mut n).cast()) },
        SPOOL_OK
    );
    // version, store, 1 sensor (opened by the first callback), 3 pool tiers, stray, ffi.
    assert_eq!(n, 8);
    let before = stats().ffi;
    assert_eq!(
        // SAFETY: NULL callback is rejected before use; ctx is never dereferenced.
        unsafe { spool_dump(None, NonNull::<u8>::dangling().as_ptr().cast()) },
        SPOOL_ERR_NULL
    );
    let after = stats().ffi;
    assert_eq!(after.rejected_null, before.rejected_null + 1);
    assert_eq!(after.calls, before.calls + 1);
    assert_eq!(spool_deinit(), SPOOL_OK);
}
