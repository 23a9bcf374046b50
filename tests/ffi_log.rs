//! The log hook (`spool_set_log`): every event class fires with its arguments, the level
//! filters, and without a hook nothing is reported.
#![cfg(feature = "ffi")]

mod ffi_support;

use SpoolStatus::*;
use ffi_support::*;
use sensor_spool::ffi::*;
use std::sync::Mutex;

type Event = (u32, u32, u32, u32, u32);
static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());

extern "C" fn hook(level: u32, event: u32, a: u32, b: u32, c: u32) {
    EVENTS.lock().unwrap().push((level, event, a, b, c));
}

/// Takes the events logged so far.
fn take() -> Vec<Event> {
    std::mem::take(&mut *EVENTS.lock().unwrap())
}

/// The events of one kind.
fn of(ev: &[Event], kind: u32) -> Vec<Event> {
    ev.iter().copied().filter(|e| e.1 == kind).collect()
}

const SOURCE: u8 = 3;

fn el_csb(a: &Arrays, e: usize) -> *mut ControlSensorBlock {
    a.csb().cast::<Csb>().wrapping_add(e).cast()
}

fn el_csd(a: &Arrays, e: usize) -> *mut ControlSensorData {
    a.csd().cast::<Csd>().wrapping_add(e).cast()
}

#[test]
fn rejections_thresholds_drops_and_full_are_logged() {
    let _g = serial();
    spool_deinit();
    take();
    assert_eq!(spool_set_log(Some(hook), 0), SPOOL_ERR_INVALID_ARGUMENT);
    assert_eq!(spool_set_log(Some(hook), 4), SPOOL_ERR_INVALID_ARGUMENT);
    assert_eq!(spool_set_log(Some(hook), SPOOL_LOG_INFO), SPOOL_OK);
    init(0);
    let a = Arrays::new(100, &[1000, 0]);
    let other = Arrays::new(500, &[1000]);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    assert!(take().is_empty(), "a clean start logs nothing");

    // unregistered arrays, element pointer plus index, wrong MM2 source
    // SAFETY: pointers of live arrays (only compared by the library when not registered).
    unsafe { write_tsd_evt(other.csb(), other.csd(), 0, 1, false) };
    // SAFETY: as above: `&csb[1], &csd[1], 1`, the shape MM1 turned into element 2.
    unsafe { write_tsd_evt(el_csb(&a, 1), el_csd(&a, 1), 1, 1, false) };
    // SAFETY: element pointers of a registered pair.
    let r = unsafe { imx_write_tsd(9, el_csb(&a, 0), el_csd(&a, 0), Data32::from_bits(1)) };
    assert_eq!(imx(r), SPOOL_ERR_SOURCE_MISMATCH);
    // SAFETY: element pointers of live, unregistered arrays (only compared).
    let r = unsafe {
        imx_write_tsd(
            9,
            el_csb(&other, 0),
            el_csd(&other, 0),
            Data32::from_bits(1),
        )
    };
    assert_eq!(imx(r), SPOOL_ERR_NOT_REGISTERED);
    let ev = take();
    let nr = SPOOL_ERR_NOT_REGISTERED as u32;
    assert_eq!(
        of(&ev, SPOOL_LOG_EV_REJECTED),
        vec![
            (
                SPOOL_LOG_WARN,
                SPOOL_LOG_EV_REJECTED,
                nr,
                u32::from(SPOOL_LOG_REASON_UNREGISTERED),
                0
            ),
            (
                SPOOL_LOG_WARN,
                SPOOL_LOG_EV_REJECTED,
                nr,
                u32::from(SPOOL_LOG_REASON_ELEMENT_POINTER),
                1
            ),
            (
                SPOOL_LOG_WARN,
                SPOOL_LOG_EV_REJECTED,
                SPOOL_ERR_SOURCE_MISMATCH as u32,
                u32::from(SPOOL_LOG_REASON_WRONG_SOURCE),
                u32::from(SOURCE)
            ),
            (
                SPOOL_LOG_WARN,
                SPOOL_LOG_EV_REJECTED,
                nr,
                u32::from(SPOOL_LOG_REASON_UNREGISTERED),
                0
            ),
        ]
    );
    assert_eq!(ev.len(), 4);

    // RAM fills: the 80 % line once, then drops of the oldest unsent records
    let total = stats().store.sectors_total;
    let mut i = 0u32;
    while stats().store.dropped == 0 {
        // SAFETY: registered arrays, entry in range.
        unsafe { write_tsd_evt_time(a.csb(), a.csd(), 0, i, 1_700_000_000 + i) };
        i += 1;
        assert!(i < 1_000_000);
    }
    let ev = take();
    let high = of(&ev, SPOOL_LOG_EV_RAM_HIGH);
    assert_eq!(high.len(), 1, "{ev:?}");
    let (lvl, _, used, tot, pct) = high[0];
    assert_eq!((lvl, tot), (SPOOL_LOG_WARN, total));
    assert!((SPOOL_LOG_THRESHOLD_PCT..100).contains(&pct) && used * 100 / total == pct);
    assert_eq!(
        of(&ev, SPOOL_LOG_EV_DROPPED),
        vec![(
            SPOOL_LOG_WARN,
            SPOOL_LOG_EV_DROPPED,
            1,
            100,
            u32::from(SOURCE)
        )]
    );

    // everything read (pending): the next write is refused, RAM full
    let stored = stats().store.stored;
    let mut w = [0u32; 2];
    for _ in 0..stored {
        // SAFETY: registered arrays, two-word buffer.
        unsafe { read_tsd_evt(a.csb(), a.csd(), 0, w.as_mut_ptr()) };
    }
    take();
    // (the last sector may still have room for a few records)
    for k in 0..64 {
        // SAFETY: as above.
        unsafe { write_tsd_evt_time(a.csb(), a.csd(), 0, k, 1_700_000_000) };
        if spool_last_status() != SPOOL_OK {
            break;
        }
    }
    assert_eq!(spool_last_status(), SPOOL_ERR_FULL);
    assert_eq!(
        take(),
        vec![(SPOOL_LOG_WARN, SPOOL_LOG_EV_RAM_FULL, total, 0, 0)]
    );

    // acknowledged: back under the line (INFO)
    // SAFETY: registered arrays.
    unsafe { erase_tsd_evt(a.csb(), a.csd(), 0) };
    let ev = take();
    assert_eq!(of(&ev, SPOOL_LOG_EV_RAM_LOW).len(), 1, "{ev:?}");
    assert_eq!(of(&ev, SPOOL_LOG_EV_RAM_LOW)[0].0, SPOOL_LOG_INFO);

    // statistics on request
    let used = stats().store.sectors_used;
    imx_print_memory_statistics();
    let ev = take();
    assert_eq!(ev.len(), 1);
    let (lvl, kind, u, t, peak) = ev[0];
    assert_eq!(
        (lvl, kind, u, t),
        (SPOOL_LOG_INFO, SPOOL_LOG_EV_MEMORY_STATS, used, total)
    );
    assert!(peak >= used);

    // the level filters: ERROR only, a rejection (WARN) is not passed on
    assert_eq!(spool_set_log(Some(hook), SPOOL_LOG_ERROR), SPOOL_OK);
    // SAFETY: as above.
    unsafe { write_tsd_evt(other.csb(), other.csd(), 0, 1, false) };
    imx_print_memory_statistics();
    assert!(take().is_empty());
    // no hook: nothing
    assert_eq!(spool_set_log(None, SPOOL_LOG_INFO), SPOOL_OK);
    // SAFETY: as above.
    unsafe { write_tsd_evt(other.csb(), other.csd(), 0, 1, false) };
    assert_eq!(spool_last_status(), SPOOL_ERR_NOT_REGISTERED);
    assert!(take().is_empty());
    assert_eq!(spool_deinit(), SPOOL_OK);
}

#[test]
fn storage_errors_and_recovery_are_logged() {
    let _g = serial();
    spool_deinit();
    let mut flash = RamFlash::new(64 * 1024, 4, 4096);
    let cb = flash.callbacks();
    assert_eq!(spool_set_log(Some(hook), SPOOL_LOG_INFO), SPOOL_OK);
    assert_eq!(init_flash(0, cb, 0), SPOOL_OK);
    let a = Arrays::new(100, &[1000]);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    for i in 0..50 {
        // SAFETY: registered arrays, entry in range.
        unsafe { write_tsd_evt_time(a.csb(), a.csd(), 0, i, 1_700_000_000 + i) };
    }
    flush_all_to_disk();
    let mut n = 0;
    while get_flush_progress() != 101 {
        n += 1;
        assert!(n < 1000);
    }
    // a clean first start recovered nothing (RECOVERED 0, ok) at the first data call
    let ev = take();
    assert_eq!(
        of(&ev, SPOOL_LOG_EV_RECOVERED),
        vec![(SPOOL_LOG_INFO, SPOOL_LOG_EV_RECOVERED, 0, 0, 0)],
        "{ev:?}"
    );
    // power cut, boot on the same flash: 50 records recovered
    assert_eq!(spool_deinit(), SPOOL_OK);
    assert_eq!(init_flash(0, cb, 0), SPOOL_OK);
    assert_eq!(a.register(SOURCE), SPOOL_OK);
    let mut got = 0;
    // SAFETY: `got` is writable.
    assert_eq!(unsafe { spool_recover(&mut got) }, SPOOL_OK);
    assert_eq!(got, 50);
    assert_eq!(
        of(&take(), SPOOL_LOG_EV_RECOVERED),
        vec![(SPOOL_LOG_INFO, SPOOL_LOG_EV_RECOVERED, 50, 0, 0)]
    );
    // the part dies: the flush fails, an ERROR event, the records stay in RAM
    for i in 0..20 {
        // SAFETY: as above.
        unsafe { write_tsd_evt_time(a.csb(), a.csd(), 0, i, 1_700_000_100 + i) };
    }
    flash.fail_after = Some(flash.programs + flash.erases);
    flush_all_to_disk();
    let _ = get_flush_progress();
    assert_eq!(spool_last_status(), SPOOL_ERR_STORAGE);
    let ev = take();
    assert!(
        of(&ev, SPOOL_LOG_EV_STORAGE_ERROR).contains(&(
            SPOOL_LOG_ERROR,
            SPOOL_LOG_EV_STORAGE_ERROR,
            SPOOL_ERR_STORAGE as u32,
            0,
            0
        )),
        "{ev:?}"
    );
    assert_eq!(spool_set_log(None, SPOOL_LOG_INFO), SPOOL_OK);
    assert_eq!(spool_deinit(), SPOOL_OK);
    drop(flash);
}
