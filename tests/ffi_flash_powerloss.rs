//! Power cuts and flash driver faults through the C API: the legacy call flow
//! (`write_tsd_evt_time`, `process_memory`, `read_tsd_evt`, `atomic_erase_records`,
//! the shutdown flush) over `spool_flash_t` callbacks backed by the fault-injecting
//! mock flash (ECC-strict write units, every tear model), for two part geometries
//! (16-byte units / 4 KiB erase, 8-byte units / 2 KiB erase).
//!
//! For every program/erase of the workload: (a) power is cut during it (then
//! `spool_deinit`, `spool_init` on the same part, re-registration, `spool_recover`);
//! (b) the driver fails it after applying all, part or none of it, once or for good,
//! and the firmware goes on calling the library for a while before it reboots.
//! After the reboot: no record acknowledged with `SPOOL_OK` comes back, every record
//! delivered is genuine, in order and delivered once, and no unit was programmed twice
//! (the ECC-strict mock panics inside the callback, which aborts the test binary).
//!
//! Prints `ffi flash power-loss <geometry>: <n> cut points, <m> fault points`.
#![cfg(all(feature = "ffi", feature = "_mock-flash"))]

mod ffi_support;

use SpoolStatus::*;
use ffi_support::*;
use sensor_spool::ffi::*;
use sensor_spool::storage::mock_flash::{Fault, MockFlash, Tear};

const T0: u32 = 1_700_000_000;
/// Entries: TSD 1 s, EVT, TSD 2 s.
const RATES: [u32; 3] = [1000, 0, 2000];
const SOURCE: u8 = 4;
const FLASH_SIZE: usize = 16 * 1024;

/// The value of record `i` of entry `e`: it encodes both, so a delivered value tells
/// which record it is.
fn value(e: usize, i: u32) -> u32 {
    (e as u32 + 1) * 1_000_000 + i
}

unsafe fn mock<'a, const W: usize, const E: usize>(
    ctx: *mut core::ffi::c_void,
) -> &'a mut MockFlash<W, E> {
    // SAFETY: ctx comes from `callbacks` of a live boxed part; the library calls one
    // callback at a time.
    unsafe { &mut *ctx.cast::<MockFlash<W, E>>() }
}

unsafe extern "C" fn mock_read<const W: usize, const E: usize>(
    ctx: *mut core::ffi::c_void,
    offset: u32,
    buf: *mut u8,
    len: u32,
) -> core::ffi::c_int {
    use embedded_storage::nor_flash::ReadNorFlash;
    // SAFETY: see `mock`; the library passes `len` writable bytes.
    let (f, dst) = unsafe {
        (
            mock::<W, E>(ctx),
            std::slice::from_raw_parts_mut(buf, len as usize),
        )
    };
    if f.read(offset, dst).is_ok() { 0 } else { -1 }
}

unsafe extern "C" fn mock_program<const W: usize, const E: usize>(
    ctx: *mut core::ffi::c_void,
    offset: u32,
    buf: *const u8,
    len: u32,
) -> core::ffi::c_int {
    use embedded_storage::nor_flash::NorFlash;
    // SAFETY: see `mock`; the library passes `len` readable bytes.
    let (f, src) = unsafe {
        (
            mock::<W, E>(ctx),
            std::slice::from_raw_parts(buf, len as usize),
        )
    };
    if f.write(offset, src).is_ok() { 0 } else { -5 }
}

unsafe extern "C" fn mock_erase<const W: usize, const E: usize>(
    ctx: *mut core::ffi::c_void,
    offset: u32,
    len: u32,
) -> core::ffi::c_int {
    use embedded_storage::nor_flash::NorFlash;
    // SAFETY: see `mock`.
    let f = unsafe { mock::<W, E>(ctx) };
    if f.erase(offset, offset + len).is_ok() {
        0
    } else {
        -5
    }
}

fn callbacks<const W: usize, const E: usize>(part: &mut Box<MockFlash<W, E>>) -> SpoolFlash {
    SpoolFlash {
        read: Some(mock_read::<W, E>),
        program: Some(mock_program::<W, E>),
        erase: Some(mock_erase::<W, E>),
        ctx: (&mut **part as *mut MockFlash<W, E>).cast(),
        size: FLASH_SIZE as u32,
        write_size: W as u32,
        erase_size: E as u32,
    }
}

/// What the uploader knows: per entry, the index after the last record acknowledged
/// with `SPOOL_OK`, and the next index to write.
#[derive(Default)]
struct Uploader {
    acked: [u32; 3],
    next: [u32; 3],
}

/// Reads up to `budget` records of entry `e`; returns the index after the last one.
fn read_some(a: &Arrays, e: usize, budget: usize) -> (usize, Option<u32>) {
    let mut n = 0;
    let mut last = None;
    while n < budget {
        let mut w = [0u32; 2];
        // SAFETY: registered arrays, two-word buffer.
        unsafe { read_tsd_evt(a.csb(), a.csd(), e as u16, w.as_mut_ptr()) };
        if spool_last_status() != SPOOL_OK {
            break;
        }
        let v = if RATES[e] == 0 { w[1] } else { w[0] };
        let i = v.wrapping_sub(value(e, 0));
        last = Some(i);
        n += 1;
    }
    (n, last)
}

/// One step of the firmware's main loop.
fn step(a: &Arrays, up: &mut Uploader, k: u32) {
    let e = (k % 3) as usize;
    let i = up.next[e];
    up.next[e] += 1;
    let t = match RATES[e] {
        0 => T0 + 3 * i,
        r => T0 + i * (r / 1000),
    };
    // SAFETY: registered arrays, entry in range.
    unsafe { write_tsd_evt_time(a.csb(), a.csd(), e as u16, value(e, i), t) };
    if k % 16 == 15 {
        process_memory(k);
    }
    if k % 45 == 44 {
        for e in 0..3 {
            let (n, last) = read_some(a, e, 8);
            if n == 0 {
                continue;
            }
            // SAFETY: registered arrays.
            let s = unsafe { atomic_erase_records(a.csb(), a.csd(), e as u16, n as u16) };
            if s == SPOOL_OK {
                if let Some(l) = last {
                    up.acked[e] = up.acked[e].max(l + 1);
                }
            } else {
                // NACK: the records become unsent again.
                // SAFETY: registered arrays.
                unsafe { revert_tsd_evt_pending_data(a.csb(), a.csd(), 3) };
            }
        }
    }
    if k % 500 == 499 {
        flush_all_to_disk();
        for _ in 0..64 {
            if get_flush_progress() == 101 {
                break;
            }
        }
        cancel_memory_flush();
    }
}

/// Boots on `part`, runs `steps` steps of the workload (stopping early once power is
/// cut), then `after` more steps; returns the uploader's view.
fn session<const W: usize, const E: usize>(
    part: &mut Box<MockFlash<W, E>>,
    steps: u32,
    after: u32,
) -> Uploader {
    assert_eq!(init_flash(0, callbacks(part), 60), SPOOL_OK);
    let a = Arrays::new(10, &RATES);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut up = Uploader::default();
    let mut k = 0;
    while k < steps && !part.is_dead() {
        step(&a, &mut up, k);
        k += 1;
    }
    if !part.is_dead() {
        for j in 0..after {
            step(&a, &mut up, k + j);
        }
    }
    assert_eq!(spool_deinit(), SPOOL_OK);
    drop(a);
    up
}

/// Reboots on `part` and checks what comes back against the uploader's view.
fn check_after_reboot<const W: usize, const E: usize>(
    part: &mut Box<MockFlash<W, E>>,
    up: &Uploader,
    what: &str,
) {
    part.revive();
    assert_eq!(init_flash(0, callbacks(part), 60), SPOOL_OK);
    let a = Arrays::new(10, &RATES);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut n = 0u32;
    // SAFETY: valid out-pointer.
    let recovered = unsafe { spool_recover(&mut n) };
    assert_eq!(recovered, SPOOL_OK, "{what}: recovery");
    for (e, &rate) in RATES.iter().enumerate() {
        let mut last: Option<u32> = None;
        loop {
            let mut w = [0u32; 2];
            // SAFETY: registered arrays, two-word buffer.
            unsafe { read_tsd_evt(a.csb(), a.csd(), e as u16, w.as_mut_ptr()) };
            if spool_last_status() != SPOOL_OK {
                break;
            }
            let v = if rate == 0 { w[1] } else { w[0] };
            let i = v.wrapping_sub(value(e, 0));
            assert!(i < up.next[e], "{what}: entry {e}: invented value {v:#x}");
            assert!(
                i >= up.acked[e],
                "{what}: entry {e}: acknowledged record {i} back (acknowledged up to {})",
                up.acked[e]
            );
            assert!(last.is_none_or(|l| i > l), "{what}: entry {e}: order");
            if rate == 0 {
                assert_eq!(w[0], T0 + 3 * i, "{what}: entry {e}: EVT time of {i}");
            }
            last = Some(i);
        }
    }
    assert_eq!(spool_check(), SPOOL_OK, "{what}");
    assert_eq!(spool_deinit(), SPOOL_OK);
}

fn sweep<const W: usize, const E: usize>(name: &str) {
    const STEPS: u32 = if cfg!(debug_assertions) { 4000 } else { 10_000 };
    // Unoptimized builds check every 4th operation.
    let stride = if cfg!(debug_assertions) { 4 } else { 1 };
    const AFTER: u32 = 90;
    let _g = serial();
    let mut part = Box::new(MockFlash::<W, E>::new(FLASH_SIZE / E, 1));
    session(&mut part, STEPS, 0);
    let total = part.ops();
    assert!(
        part.stats().erases > (FLASH_SIZE / E) as u64,
        "the ring must wrap: {} erases",
        part.stats().erases
    );
    let (mut cuts, mut faults) = (0u64, 0u64);
    for k in (0..total).step_by(stride) {
        // (a) power cut during operation k.
        let mut part = Box::new(MockFlash::<W, E>::new(FLASH_SIZE / E, k));
        part.set_tear(Tear::ALL[k as usize % Tear::ALL.len()]);
        part.cut_after(Some(k));
        let up = session(&mut part, STEPS, 0);
        check_after_reboot(&mut part, &up, &format!("{name} cut {k}"));
        cuts += 1;
        // (b) the driver fails operation k; the firmware goes on, then reboots.
        let fault = [Fault::All, Fault::Part, Fault::Nothing][k as usize % 3];
        let permanent = (k / 3) % 2 == 1;
        let mut part = Box::new(MockFlash::<W, E>::new(FLASH_SIZE / E, k));
        part.set_tear(Tear::ALL[(k / 6) as usize % Tear::ALL.len()]);
        part.fail_at(k, fault, permanent);
        let mut up = Uploader::default();
        // Run until just past the fault, then `AFTER` more steps.
        assert_eq!(init_flash(0, callbacks(&mut part), 60), SPOOL_OK);
        let a = Arrays::new(10, &RATES);
        assert_eq!(a.register(SOURCE), SPOOL_OK);
        let mut s = 0;
        while part.ops() <= k && s < STEPS {
            step(&a, &mut up, s);
            s += 1;
        }
        for j in 0..AFTER {
            step(&a, &mut up, s + j);
        }
        assert_eq!(spool_deinit(), SPOOL_OK);
        drop(a);
        check_after_reboot(
            &mut part,
            &up,
            &format!("{name} fault {k} ({fault:?}, permanent {permanent})"),
        );
        faults += 1;
    }
    eprintln!("ffi flash power-loss {name}: {cuts} cut points, {faults} fault points");
}

#[test]
fn c_api_power_cuts_and_driver_faults_w16_e4k() {
    sweep::<16, 4096>("w16 e4k");
}

#[test]
fn c_api_power_cuts_and_driver_faults_w8_e2k() {
    sweep::<8, 2048>("w8 e2k");
}

/// Sequence-number reservations reach the medium through the C API's storage (they did
/// not: the C store's storage wrapper fell back to the trait's store-nothing defaults for
/// `reserve` and `snapshot_due`). Records handed out from RAM and cut by a power cut
/// before any flush must leave a reservation on flash that covers them, so the next boot
/// never numbers new records like the ones the uploader already holds.
#[test]
fn records_handed_out_from_ram_leave_a_reservation_on_flash() {
    use sensor_spool::storage::{LogEntry, NorFlashStorage, SensorKey, Storage};
    let _g = serial();
    let mut part = Box::new(MockFlash::<16, 4096>::new(FLASH_SIZE / 4096, 7));
    assert_eq!(init_flash(0, callbacks(&mut part), 60), SPOOL_OK);
    let mut h = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_sensor_open(7, 78, 0, &mut h) }, SPOOL_OK);
    let mut back = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { spool_recover(&mut back) }, SPOOL_OK);
    for i in 0..30u32 {
        assert_eq!(spool_write(h, i, u64::from(T0 + i) * 1000), SPOOL_OK);
    }
    let mut rec = core::mem::MaybeUninit::uninit();
    for i in 0..10u32 {
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { spool_read(h, rec.as_mut_ptr()) }, SPOOL_OK);
        // SAFETY: written by the call above.
        assert_eq!(unsafe { rec.assume_init() }.value, i);
    }
    // Power cut: nothing was flushed, ten records are with the uploader.
    assert_eq!(spool_deinit(), SPOOL_OK);
    // The C store lays its log out for 32-byte write units whatever the part's (its
    // driver callbacks accept any multiple of the part's own): read it the same way.
    let mut st = NorFlashStorage::<_>::new(MockFlash::<32, 4096>::from_image(part.image(), 1))
        .expect("geometry");
    st.mount().expect("mount");
    let mut upto = None;
    st.recover(|e| {
        if let LogEntry::Reserve { key, upto: u } = e
            && key == SensorKey::new(7, 78)
        {
            upto = Some(upto.map_or(u, |x: u32| x.max(u)));
        }
    })
    .expect("recover");
    let upto = upto.expect("a reservation for the sensor is on flash");
    assert!(
        upto >= 10,
        "the reservation covers the records handed out: {upto}"
    );
}
